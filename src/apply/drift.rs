//! Drift: what a kept transaction put in place that is missing or changed
//! on the host now (a firewall reload, a VPN link that went down and took
//! its routes, a hand edit). Read from the journal's done steps and the
//! host facts; only the shapes dscproute itself runs are checked.

use super::executor::sysctl_path;
use super::journal::{Journal, StepStatus};
use crate::backend::iptables::rule_text;
use crate::backend::{
    DefaultRoute, Effect, Family, NfCmd, Op, PolicyAction, PolicyRule, SysctlKey, Table, iproute,
};
use crate::ownership::is_our_proto;
use crate::plan::ruleset::Ruleset;
use crate::probe::HostFacts;
use serde::Serialize;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    Missing,
    Changed,
}

/// One thing no longer as the transaction left it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub kind: DriftKind,
    /// What it is, for people: "IPv4 mangle PREROUTING rule `…`".
    pub what: String,
    /// The command that had put it in place.
    pub command: String,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            DriftKind::Missing => "missing",
            DriftKind::Changed => "changed",
        };
        write!(f, "{kind}: {}", self.what)
    }
}

/// Everything the done steps of `journal` created or set that the host no
/// longer shows. `root` is where files and /proc/sys are read ("/").
pub fn find(journal: &Journal, facts: &HostFacts, root: &Path) -> Vec<Drift> {
    let v4 = facts.iptables_save.as_deref().map(Ruleset::parse);
    let v6 = facts.ip6tables_save.as_deref().map(Ruleset::parse);
    let mut out = Vec::new();
    let done: Vec<_> = journal
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Done)
        .collect();
    for (i, js) in done.iter().enumerate() {
        let op = &js.step.apply;
        // A route a later step of the journal replaced or removed (a class
        // that failed over) is not expected any more.
        if route_slot(op).is_some_and(|slot| {
            done[i + 1..]
                .iter()
                .any(|l| route_slot(&l.step.apply) == Some(slot))
        }) {
            continue;
        }
        let found = match op {
            Op::Netfilter { family, table, cmd } => {
                let rs = match family {
                    Family::V4 => v4.as_ref(),
                    Family::V6 => v6.as_ref(),
                };
                netfilter(*family, *table, cmd, rs)
            }
            Op::PolicyRule {
                family,
                add: true,
                rule,
            } => policy_rule(*family, rule, facts),
            Op::Route {
                family,
                add: true,
                route,
            } => default_route(*family, route, facts),
            Op::RouteReplace { family, to, .. } => default_route(*family, to, facts),
            Op::Sysctl { key, value } => sysctl(key, *value, facts, root),
            Op::NftTable { ruleset, .. } => nft_table(ruleset, facts),
            Op::WriteTableNames { .. } => match op.effect() {
                Effect::WriteFile { path, contents } => {
                    match std::fs::read_to_string(root.join(path.trim_start_matches('/'))) {
                        Ok(now) if now == contents => None,
                        Ok(_) => Some((DriftKind::Changed, format!("file {path}"))),
                        Err(_) => Some((DriftKind::Missing, format!("file {path}"))),
                    }
                }
                _ => None,
            },
            _ => None,
        };
        if let Some((kind, what)) = found {
            out.push(Drift {
                kind,
                what,
                command: op.display(),
            });
        }
    }
    out
}

/// The family and table of a step that sets or removes our default route.
fn route_slot(op: &Op) -> Option<(Family, u32)> {
    match op {
        Op::Route { family, route, .. } => Some((*family, route.table)),
        Op::RouteReplace { family, to, .. } => Some((*family, to.table)),
        _ => None,
    }
}

/// Our nftables table as applied; unknown when the ruleset could not be read.
fn nft_table(
    want: &crate::backend::nft::NftRuleset,
    facts: &HostFacts,
) -> Option<(DriftKind, String)> {
    use crate::backend::nft;
    let what = format!("nftables table {} {}", nft::FAMILY, nft::TABLE);
    match nft::parse_table(facts.nft_ruleset.as_deref()?) {
        Ok(None) => Some((DriftKind::Missing, what)),
        Ok(Some((have, _))) if nft::same_table(&have, want, facts) => None,
        _ => Some((DriftKind::Changed, what)),
    }
}

/// A chain we created, a rule we appended or a jump we inserted; unknown
/// when the ruleset could not be read.
fn netfilter(
    family: Family,
    table: Table,
    cmd: &NfCmd,
    rs: Option<&Ruleset>,
) -> Option<(DriftKind, String)> {
    let rs = rs?;
    let (fam, t) = (family.name(), table.name());
    match cmd {
        NfCmd::NewChain { chain } if !rs.has_chain(t, chain) => {
            Some((DriftKind::Missing, format!("{fam} {t} chain {chain}")))
        }
        NfCmd::Append { chain, rule } | NfCmd::Insert { chain, rule, .. } => {
            let text = rule_text(rule);
            (!rs.has_rule(t, chain, &text)).then(|| {
                (
                    DriftKind::Missing,
                    format!("{fam} {t} {chain} rule `{text}`"),
                )
            })
        }
        _ => None,
    }
}

/// A policy rule we added: missing, or its priority taken by another.
fn policy_rule(
    family: Family,
    rule: &PolicyRule,
    facts: &HostFacts,
) -> Option<(DriftKind, String)> {
    let rules = match family {
        Family::V4 => &facts.rules_v4,
        Family::V6 => &facts.rules_v6,
    };
    let looks_up = |r: &crate::probe::Rule, id: u32| {
        r.action.is_none()
            && r.table
                .as_deref()
                .is_some_and(|p| facts.table_id(p) == Some(id))
    };
    let present = rules.iter().any(|r| {
        r.priority == rule.pref
            && is_our_proto(r.protocol.as_deref())
            && crate::plan::selects(r, rule.selector)
            && match rule.action {
                PolicyAction::LookupMain => looks_up(r, 254) && r.suppress_prefixlength == Some(0),
                PolicyAction::Lookup(id) => looks_up(r, id) && r.suppress_prefixlength.is_none(),
                PolicyAction::Unreachable => r.action.as_deref() == Some("unreachable"),
            }
    });
    let taken = rules.iter().any(|r| r.priority == rule.pref);
    (!present).then(|| {
        let kind = if taken {
            DriftKind::Changed
        } else {
            DriftKind::Missing
        };
        (
            kind,
            format!(
                "{} policy rule `{}`",
                family.name(),
                iproute::rule_text(rule)
            ),
        )
    })
}

/// The default route of our table: missing, or another route of ours there.
fn default_route(
    family: Family,
    route: &DefaultRoute,
    facts: &HostFacts,
) -> Option<(DriftKind, String)> {
    let routes = match family {
        Family::V4 => &facts.routes_v4,
        Family::V6 => &facts.routes_v6,
    };
    let via = route.via.map(|a| a.to_string());
    let ours_here = |r: &&crate::probe::Route| {
        r.dst == "default"
            && facts.table_id(&r.table) == Some(route.table)
            && is_our_proto(r.protocol.as_deref())
    };
    let present = routes
        .iter()
        .filter(ours_here)
        .any(|r| r.gateway == via && r.dev.as_deref() == Some(route.dev.as_str()));
    let kind = if routes.iter().any(|r| ours_here(&r)) {
        DriftKind::Changed
    } else {
        DriftKind::Missing
    };
    let mut what = format!("{} route default", family.name());
    if let Some(v) = &via {
        what.push_str(&format!(" via {v}"));
    }
    what.push_str(&format!(" dev {} table {}", route.dev, route.table));
    (!present).then_some((kind, what))
}

/// The value we set, unless changed since.
fn sysctl(
    key: &SysctlKey,
    value: u8,
    facts: &HostFacts,
    root: &Path,
) -> Option<(DriftKind, String)> {
    let (key, want) = (key.key(), value.to_string());
    let now = facts.sysctl(&key).map(str::to_string).or_else(|| {
        std::fs::read_to_string(root.join(sysctl_path(&key)))
            .ok()
            .map(|s| s.trim().to_string())
    });
    match now {
        Some(v) if v == want => None,
        Some(v) => Some((
            DriftKind::Changed,
            format!("sysctl {key} is {v}, was set to {want}"),
        )),
        None => Some((
            DriftKind::Missing,
            format!("sysctl {key} (set to {want}) no longer exists"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Role, Step, StepState};
    use crate::probe::{Route, Rule};

    fn step(argv: &str) -> Step {
        let op = Op::parse(&Effect::run(argv.split(' ').map(str::to_string).collect()))
            .unwrap_or_else(|e| panic!("{argv}: {e}"));
        Step {
            role: Role::Gateway,
            state: StepState::Add,
            apply: op.clone(),
            undo: op,
            reason: String::new(),
            change: None,
        }
    }

    const JUMP: &str =
        "iptables -w -t mangle -I PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE";
    const CHAIN: &str = "iptables -w -t mangle -N DSCPROUTE-ROUTE";
    const RULE: &str = "ip -4 rule add pref 10000 fwmark 0x1/0xff lookup 100 proto 213";
    const UNREACH: &str = "ip -4 rule add pref 10001 fwmark 0x1/0xff unreachable proto 213";
    const ROUTE: &str = "ip -4 route add default via 10.8.0.1 dev wg0 table 100 proto 213";
    const FWD: &str = "sysctl -q -w net.ipv4.ip_forward=1";

    fn journal() -> Journal {
        let mut j = Journal::new(
            "gw.toml",
            [CHAIN, JUMP, RULE, UNREACH, ROUTE, FWD].map(step).to_vec(),
        );
        for s in &mut j.steps {
            s.status = StepStatus::Done;
        }
        j
    }

    fn host() -> HostFacts {
        let mut f = HostFacts {
            iptables_save: Some(
                "*mangle\n:PREROUTING ACCEPT [0:0]\n:DSCPROUTE-ROUTE - [0:0]\n\
                 -A PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE\nCOMMIT\n"
                    .into(),
            ),
            ..HostFacts::default()
        };
        let ours = Some("213".to_string());
        f.rules_v4 = vec![
            Rule {
                priority: 10000,
                fwmark: Some(1),
                fwmask: Some(0xff),
                table: Some("100".into()),
                protocol: ours.clone(),
                ..Rule::default()
            },
            Rule {
                priority: 10001,
                fwmark: Some(1),
                fwmask: Some(0xff),
                action: Some("unreachable".into()),
                protocol: ours.clone(),
                ..Rule::default()
            },
        ];
        f.routes_v4 = vec![Route {
            dst: "default".into(),
            gateway: Some("10.8.0.1".into()),
            dev: Some("wg0".into()),
            table: "100".into(),
            protocol: ours,
            ..Route::default()
        }];
        f.sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
        f
    }

    #[test]
    fn nothing_when_the_host_is_as_applied() {
        assert_eq!(find(&journal(), &host(), Path::new("/nonexistent")), []);
    }

    #[test]
    fn names_each_missing_or_changed_part() {
        let mut f = host();
        f.iptables_save =
            Some("*mangle\n:PREROUTING ACCEPT [0:0]\n:DSCPROUTE-ROUTE - [0:0]\nCOMMIT\n".into());
        f.routes_v4.clear(); // the VPN link went down
        f.rules_v4[1].action = Some("blackhole".into());
        f.sysctls.insert("net.ipv4.ip_forward".into(), "0".into());
        let d: Vec<String> = find(&journal(), &f, Path::new("/nonexistent"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            d,
            [
                "missing: IPv4 mangle PREROUTING rule `-m comment --comment dscproute -j DSCPROUTE-ROUTE`",
                "changed: IPv4 policy rule `pref 10001 fwmark 0x1/0xff unreachable`",
                "missing: IPv4 route default via 10.8.0.1 dev wg0 table 100",
                "changed: sysctl net.ipv4.ip_forward is 0, was set to 1",
            ]
        );
    }

    #[test]
    fn undone_steps_and_unreadable_rulesets_are_not_drift() {
        let mut j = journal();
        j.steps[1].status = StepStatus::Undone;
        let mut f = host();
        f.iptables_save = Some("*mangle\nCOMMIT\n".into());
        let d = find(&j, &f, Path::new("/nonexistent"));
        assert_eq!(d.len(), 1, "only the chain: {d:?}");
        f.iptables_save = None;
        assert_eq!(find(&j, &f, Path::new("/nonexistent")), []);
    }

    #[test]
    fn a_file_we_wrote_is_checked() {
        let t = tempfile::tempdir().unwrap();
        let mut j = journal();
        j.steps = vec![j.steps[0].clone()];
        j.steps[0].step.apply = Op::WriteTableNames {
            id: 100,
            name: "vpn".into(),
        };
        let f = host();
        let d = find(&j, &f, t.path());
        let path = crate::ownership::RT_TABLES_DROPIN;
        assert_eq!(d[0].to_string(), format!("missing: file {path}"));
        let file = t.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, "100 other\n").unwrap();
        assert_eq!(
            find(&j, &f, t.path())[0].to_string(),
            format!("changed: file {path}")
        );
        std::fs::write(&file, "100 vpn\n").unwrap();
        assert_eq!(find(&j, &f, t.path()), []);
    }
}
