//! The nftables backend in a plan: the netfilter steps the iptables planner
//! made become one step that replaces our table `inet dscproute` in one
//! transaction; a leftover of the other backend is planned for removal.

use super::{ClassPlan, Resolved, Role, Step, StepState};
use crate::backend::nft::{self, NftHook, NftRule, NftRuleset};
use crate::backend::{Family, MarkMask, Op};
use crate::probe::HostFacts;
use crate::profile::{Backend, MatchMode, Profile, Who};

/// Why this backend cannot mark the profile's processes, if it cannot: nft
/// looks cgroup paths up below /sys/fs/cgroup, so a unit or cgroup marker
/// needs the cgroup v2 mount there (`/sys/fs/cgroup` or, on a hybrid host,
/// `/sys/fs/cgroup/unified`).
pub fn marker_problem(profile: &Profile, facts: &HostFacts) -> Option<String> {
    let who = &profile.marker.as_ref()?.who;
    if !matches!(who, Who::Unit(_) | Who::Cgroup(_)) {
        return None;
    }
    let mount = facts.cgroup2.as_deref()?;
    nft::cgroup_match(mount, "x").is_none().then(|| {
        format!(
            "marker.{}: nft finds cgroups only below /sys/fs/cgroup and the cgroup v2 hierarchy \
             is mounted at {}: set backend = \"iptables\" (or \"auto\", which picks it)",
            who.kind(),
            crate::text::clip(mount)
        )
    })
}

/// The profile's choice settled against the host, and why, for the preview.
pub fn choose(profile: &Profile, facts: &HostFacts) -> (Backend, String) {
    let ours_in_iptables = [&facts.iptables_save, &facts.ip6tables_save]
        .iter()
        .any(|s| s.as_deref().is_some_and(|t| t.contains(":DSCPROUTE-")));
    match profile.backend {
        Backend::Nft => (Backend::Nft, "backend = \"nft\" in the profile".into()),
        Backend::Iptables => (Backend::Iptables, "backend = \"iptables\"".into()),
        Backend::Auto if marker_problem(profile, facts).is_some() => (
            Backend::Iptables,
            "auto: nft cannot find this host's cgroup v2 mount for the marker".into(),
        ),
        Backend::Auto if ours_in_iptables => (
            Backend::Iptables,
            "auto: this host's setup is already in iptables (DSCPROUTE-* chains), so auto keeps \
             it there; set backend = \"nft\" to move it"
                .into(),
        ),
        Backend::Auto if !facts.has_tool("nft") => {
            (Backend::Iptables, "auto: no nft binary on this host".into())
        }
        Backend::Auto if facts.nft_ruleset.is_none() && facts.is_root => (
            Backend::Iptables,
            "auto: `nft list ruleset` did not work here (no nf_tables?)".into(),
        ),
        Backend::Auto => (
            Backend::Nft,
            "auto: the nft binary is installed and nf_tables answers".into(),
        ),
    }
}

/// Our table for a `[gateway]` profile with these values (tests).
#[cfg(test)]
pub fn desired(profile: &Profile, r: &Resolved) -> NftRuleset {
    let classes: Vec<ClassPlan> = profile
        .gateway
        .iter()
        .map(|g| ClassPlan {
            class: g.into(),
            through: g.clone(),
            chosen: Some(0),
            why: String::new(),
            resolved: r.clone(),
        })
        .collect();
    desired_classes(profile, r, &classes, None)
}

/// Our table as the profile wants it: the client's rules (values in `r`),
/// then each class's.
pub(crate) fn desired_classes(
    profile: &Profile,
    r: &Resolved,
    classes: &[ClassPlan],
    cgroup2: Option<&str>,
) -> NftRuleset {
    let mut t = NftRuleset::default();
    let mark = match (r.mark, r.mask) {
        (Some(value), Some(mask)) => Some(MarkMask { value, mask }),
        _ => None,
    };
    if let (Some(m), Some(mark)) = (&profile.marker, mark) {
        let dscp = m.dscp.value();
        let cgroup = r
            .cgroup
            .as_deref()
            .zip(cgroup2)
            .and_then(|(path, mount)| nft::cgroup_match(mount, path));
        let tag = match (&r.user, &r.group, cgroup) {
            (Some(uid), _, _) => NftRule::SkuidConnmark {
                uid: uid.clone(),
                mark,
            },
            (None, None, Some((path, level))) => NftRule::CgroupConnmark { path, level, mark },
            (None, group, _) => NftRule::SkgidConnmark {
                gid: group.clone().unwrap_or_default(),
                mark,
            },
        };
        t.push(NftHook::Output, tag);
        for family in Family::BOTH {
            t.push(
                NftHook::Output,
                NftRule::ConnmarkDscp { family, mark, dscp },
            );
        }
        let routes_by_mark = classes
            .iter()
            .find(|c| c.class.dscp == m.dscp)
            .is_some_and(|c| c.class.match_mode == MatchMode::Mark);
        if routes_by_mark {
            t.push(NftHook::Output, NftRule::ConnmarkMark { mark });
        }
    }
    for c in classes {
        class_rules(&mut t, c);
    }
    t
}

/// A rule once, even when classes share it.
fn push_once(t: &mut NftRuleset, hook: NftHook, rule: NftRule) {
    if !t.rules().any(|(h, r)| h == hook && *r == rule) {
        t.push(hook, rule);
    }
}

fn class_rules(t: &mut NftRuleset, c: &ClassPlan) {
    let g = &c.through;
    let r = &c.resolved;
    let dscp = g.dscp.value();
    let dev = g.interface.clone();
    // Routing on the DSCP (`dscp-rule`): policy rules select it, so
    // nothing here marks.
    let mark = match (r.mark, r.mask) {
        (Some(value), Some(mask)) if g.match_mode == MatchMode::Mark => {
            Some(MarkMask { value, mask })
        }
        _ => None,
    };
    if let Some(mark) = mark {
        push_once(t, NftHook::Prerouting, NftRule::ConnmarkMark { mark });
        for family in Family::BOTH {
            push_once(
                t,
                NftHook::Prerouting,
                NftRule::DscpMark {
                    family,
                    // Pinned to the first uplink, not the chosen one: a
                    // switch changes only the route (see gateway::steps).
                    not_in: c.class.uplinks[0].interface.clone(),
                    dscp,
                    mark,
                },
            );
        }
        push_once(t, NftHook::Prerouting, NftRule::SaveMark { mark });
    }
    // The uplink routed through first, then the class's others: a later
    // switch to one of them changes only the route.
    let mut outs = vec![(dev, g.via6.is_some())];
    for (i, u) in c.class.uplinks.iter().enumerate() {
        if Some(i) != c.chosen && !outs.iter().any(|(d, _)| *d == u.interface) {
            outs.push((u.interface.clone(), u.via6.is_some()));
        }
    }
    for (out, v6) in outs {
        let routed: &[Family] = if v6 { &Family::BOTH } else { &[Family::V4] };
        if g.scrub_dscp {
            for &family in routed {
                push_once(
                    t,
                    NftHook::Scrub,
                    NftRule::ScrubDscp {
                        family,
                        out: out.clone(),
                        dscp,
                    },
                );
            }
        }
        if g.masquerade {
            let family = (!v6).then_some(Family::V4);
            let rule = match mark {
                Some(mark) => NftRule::Masquerade { family, out, mark },
                None if g.match_mode == MatchMode::DscpRule => {
                    NftRule::MasqueradeAll { family, out }
                }
                None => continue,
            };
            push_once(t, NftHook::Nat, rule);
        }
    }
}

/// Why each rule is there, one line each, for the preview.
pub fn why(hook: NftHook, rule: &NftRule) -> String {
    let what = match rule {
        NftRule::SkgidConnmark { gid, .. } => {
            format!("connections opened by sockets of group {gid} get our connection mark")
        }
        NftRule::SkuidConnmark { uid, .. } => {
            format!("connections opened by sockets of user {uid} get our connection mark")
        }
        NftRule::CgroupConnmark { path, .. } if nft::is_stale(path) => format!(
            "a cgroup that is gone (id {path}; its unit restarted?): replaced by the one there now"
        ),
        NftRule::CgroupConnmark { path, .. } => format!(
            "connections opened by processes in cgroup {path} get our connection mark (nft binds \
             the cgroup when the table is loaded: after a restart of its unit, apply again or let \
             the agent do it)"
        ),
        NftRule::ConnmarkDscp { family, dscp, .. } => format!(
            "{}: every packet of those connections leaves with DSCP {dscp} (ECN kept)",
            family.name()
        ),
        NftRule::ConnmarkMark { .. } if hook == NftHook::Output => {
            "local packets of marked connections get the routing mark (they never pass \
             prerouting)"
                .into()
        }
        NftRule::ConnmarkMark { .. } => {
            "packets of a marked connection get the mark back, even without the DSCP".into()
        }
        NftRule::DscpMark { family, dscp, .. } => format!(
            "{}: forwarded packets carrying DSCP {dscp} get the routing mark (our bits only)",
            family.name()
        ),
        NftRule::SaveMark { .. } => "remember the mark on the connection (conntrack)".into(),
        NftRule::ScrubDscp { family, out, dscp } => format!(
            "{}: reset DSCP {dscp} to 0 as packets leave on {out}",
            family.name()
        ),
        NftRule::Masquerade { out, .. } => {
            format!("marked packets leave {out} with its address, so replies come back")
        }
        NftRule::MasqueradeAll { out, .. } => format!(
            "everything leaving {out} gets its address, so replies come back (routing on the \
             DSCP leaves no mark to match, and the scrub has reset the DSCP by then)"
        ),
    };
    format!("{}: {what}", hook.name())
}

/// Replace the netfilter steps of `steps` with our table's one step.
pub fn convert(
    steps: &mut Vec<Step>,
    want: NftRuleset,
    facts: &HostFacts,
    problems: &mut Vec<String>,
) {
    let is_nf = |s: &Step| matches!(s.apply, Op::Netfilter { .. });
    let role = steps
        .iter()
        .find(|s| is_nf(s))
        .map_or(Role::Gateway, |s| s.role);
    let (nf, mut out): (Vec<Step>, Vec<Step>) = std::mem::take(steps).into_iter().partition(is_nf);
    // What the iptables backend has in place goes (jumps first, chains last);
    // stale rules it found are already removals.
    let (stale, in_place): (Vec<Step>, Vec<Step>) = nf
        .into_iter()
        .filter(|s| s.state != StepState::Add)
        .partition(|s| s.state == StepState::Change);
    let mut removals = stale;
    for s in in_place.into_iter().rev() {
        removals.push(Step {
            role: s.role,
            state: StepState::Change,
            apply: s.undo,
            undo: s.apply,
            reason: "leftover of the iptables backend: goes now that our rules live in table \
                     inet dscproute"
                .into(),
            change: None,
        });
    }
    let read = facts.nft_ruleset.as_deref().map(nft::parse_table);
    // Known absent: created exclusively, which spares the delete.
    let fresh = matches!(read, Some(Ok(None)));
    let (state, undo) = match read {
        None | Some(Ok(None)) => (StepState::Add, Op::NftDelete),
        Some(Ok(Some((mut have, _)))) => {
            nft::numeric_gids(&mut have, facts);
            if have == want {
                (StepState::InPlace, replace(have))
            } else {
                // A rule for a cgroup that is gone matches nothing and nft
                // cannot load it back by its id: the undo leaves it out.
                have.retain_rules(
                    |r| !matches!(r, NftRule::CgroupConnmark { path, .. } if nft::is_stale(path)),
                );
                (StepState::Change, replace(have))
            }
        }
        Some(Err(why)) => {
            problems.push(nft::not_ours(&why));
            (StepState::Add, Op::NftDelete)
        }
    };
    let n = want.rules().count();
    let reason = format!(
        "one nft transaction replaces table inet dscproute ({n} rules, both families): no moment \
         where half of it is in place; rollback deletes exactly this table"
    );
    out.push(Step {
        role,
        state,
        apply: Op::NftTable {
            ruleset: want,
            fresh,
        },
        undo,
        reason,
        change: None,
    });
    out.extend(removals);
    *steps = out;
}

/// Our table as it was, put back whole over whatever is there then.
fn replace(ruleset: NftRuleset) -> Op {
    Op::NftTable {
        ruleset,
        fresh: false,
    }
}

/// On the iptables backend, our nftables table (from the other backend) goes.
pub fn remove_table(steps: &mut Vec<Step>, facts: &HostFacts, warnings: &mut Vec<String>) {
    match facts.nft_ruleset.as_deref().map(nft::parse_table) {
        Some(Ok(Some((have, _)))) => {
            let role = steps.first().map_or(Role::Gateway, |s| s.role);
            steps.push(Step {
                role,
                state: StepState::Change,
                apply: Op::NftDelete,
                undo: replace(have),
                reason: "leftover of the nft backend: table inet dscproute goes now that our \
                         rules live in iptables"
                    .into(),
                change: None,
            });
        }
        Some(Err(why)) => warnings.push(format!("{}; left alone", nft::not_ours(&why))),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
