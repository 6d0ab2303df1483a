//! Host A: give the packets of the chosen group, user or cgroup the DSCP, in
//! mangle OUTPUT (the owner match exists only there and in POSTROUTING; the
//! socket's cgroup is known there too; the DSCP target only in mangle). On a host that is also the gateway, mark them for routing here:
//! local packets never pass PREROUTING.

use super::steps::{Ctx, Hook};
use super::{Resolved, Role, Step};
use crate::backend::{Family, MarkMask, Op, OurRule, Table};
use crate::ownership::CHAIN_MARK;
use crate::profile::{Marker, Who};

/// The rule that tags the connections of whoever the marker names, and
/// what to say about it; None when the unit's cgroup is not known (the
/// plan then carries an error saying why).
fn tag_rule(
    m: &Marker,
    r: &Resolved,
    ctx: &Ctx,
    mark: MarkMask,
    markmask: &str,
) -> Option<(OurRule, String)> {
    // The cgroup's id where this host was read (not in scripts or recordings).
    let id_of = |path: &str| ctx.facts().cgroups.get(path).copied().flatten();
    Some(match &m.who {
        Who::Group(g) => {
            let gid = r.group.clone().unwrap_or_default();
            (
                OurRule::OwnerConnmark {
                    gid: gid.clone(),
                    mark,
                },
                format!(
                    "connections opened by sockets of group {g} ({gid}) get connection mark \
                     {markmask} (the owner match works only in OUTPUT)"
                ),
            )
        }
        Who::User(u) => {
            let uid = r.user.clone().unwrap_or_default();
            (
                OurRule::UserConnmark {
                    uid: uid.clone(),
                    mark,
                },
                format!(
                    "connections opened by sockets of user {u} ({uid}) get connection mark \
                     {markmask} (the owner match works only in OUTPUT)"
                ),
            )
        }
        Who::Unit(u) => {
            let path = r.cgroup.clone()?;
            (
                OurRule::CgroupConnmark {
                    path: path.clone(),
                    id: id_of(&path),
                    mark,
                },
                format!(
                    "connections opened by sockets of {u} (its cgroup {path}) get connection \
                     mark {markmask}. The kernel binds the cgroup when the rule is added, and a \
                     restart of {u} makes a new one: the comment keeps the cgroup's id, so after \
                     a restart the rule reads as stale and `dscproute apply` (or the agent, \
                     within its drift check) adds it again"
                ),
            )
        }
        Who::Cgroup(path) => (
            OurRule::CgroupConnmark {
                path: path.clone(),
                id: id_of(path),
                mark,
            },
            format!(
                "connections opened by sockets created in cgroup {path} (or below it) get \
                 connection mark {markmask}. The kernel binds the cgroup when the rule is added: \
                 the comment keeps its id, so a cgroup removed and made again reads as stale and \
                 `dscproute apply` (or the agent) adds the rule again"
            ),
        ),
    })
}

pub fn steps(
    m: &Marker,
    r: &Resolved,
    also_gateway: bool,
    for_script: bool,
    ctx: &Ctx,
) -> Vec<Step> {
    let dscp = m.dscp.value();
    let mut out = Vec::new();
    // Only when this host's groups were read and the group is not among
    // them: groupadd fails on an existing group and would undo the plan.
    if let (true, Some(crate::profile::GroupRef::Name(name))) = (m.create_group, m.group())
        && !ctx.facts().groups.is_empty()
        && ctx.facts().group_by_name(name).is_none()
        && !for_script
    {
        out.push(Step {
            role: Role::Marker,
            state: super::StepState::Add,
            apply: Op::GroupAdd { name: name.clone() },
            undo: Op::GroupDel { name: name.clone() },
            reason: format!(
                "create the group {name:?}; run the program in it with `sg {name} -c CMD`, \
                 `setpriv --regid {name} --clear-groups CMD` or `Group={name}` in its unit"
            ),
            change: None,
        });
    }
    for f in Family::BOTH {
        let fam = f.name();
        out.push(ctx.chain(
            Role::Marker,
            f,
            Table::Mangle,
            CHAIN_MARK,
            format!(
                "{fam}: our own chain, so the {}'s rules are easy to find and remove",
                m.who.kind()
            ),
        ));
        // The group's sockets tag their connection (conntrack mark); every
        // packet of a tagged connection gets the DSCP, also the last ACK or FIN
        // sent after the program closed its socket (no owner left to match).
        if let (Some(mark), Some(mask)) = (r.mark, r.mask) {
            let markmask = format!("{mark:#x}/{mask:#x}");
            let mm = MarkMask { value: mark, mask };
            let rule = |rule: OurRule, reason: String| {
                ctx.rule(Role::Marker, f, Table::Mangle, CHAIN_MARK, rule, reason)
            };
            if let Some((tag, why)) = tag_rule(m, r, ctx, mm, &markmask) {
                out.push(rule(tag, format!("{fam}: {why}")));
            }
            out.push(rule(
                OurRule::ConnmarkDscp { mark: mm, dscp },
                format!(
                    "{fam}: every packet of those connections leaves with DSCP {dscp}, even after \
                     the socket closed; the DSCP target rewrites only the six DSCP bits, ECN stays"
                ),
            ));
            if also_gateway {
                out.push(rule(
                    OurRule::ConnmarkMark { mark: mm },
                    format!(
                        "{fam}: local packets never pass PREROUTING, so give them the routing \
                         mark here; iptables re-routes OUTPUT packets whose mark changed"
                    ),
                ));
            }
        }
        out.push(ctx.jump(
            Role::Marker,
            f,
            Hook(Table::Mangle, "OUTPUT", None),
            CHAIN_MARK,
            format!("{fam}: link the chain into mangle OUTPUT last, once it is complete"),
        ));
    }
    out
}
