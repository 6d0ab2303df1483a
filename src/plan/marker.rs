//! Host A: give the chosen group's packets the DSCP, in mangle OUTPUT (the
//! owner match exists only there and in POSTROUTING; the DSCP target only in
//! mangle). On a host that is also the gateway, mark them for routing here:
//! local packets never pass PREROUTING.

use super::steps::{Ctx, Hook};
use super::{Resolved, Role, Step};
use crate::backend::{Family, MarkMask, Op, OurRule, Table};
use crate::ownership::CHAIN_MARK;
use crate::profile::Marker;

pub fn steps(
    m: &Marker,
    r: &Resolved,
    also_gateway: bool,
    for_script: bool,
    ctx: &Ctx,
) -> Vec<Step> {
    let gid = r.group.clone().unwrap_or_default();
    let dscp = m.dscp.value();
    let mut out = Vec::new();
    // Only when this host's groups were read and the group is not among
    // them: groupadd fails on an existing group and would undo the plan.
    if let (true, crate::profile::GroupRef::Name(name)) = (m.create_group, &m.group)
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
            format!("{fam}: our own chain, so the group's rules are easy to find and remove"),
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
            out.push(rule(
                OurRule::OwnerConnmark {
                    gid: gid.clone(),
                    mark: mm,
                },
                format!(
                    "{fam}: connections opened by sockets of group {} ({gid}) get connection \
                     mark {markmask} (the owner match works only in OUTPUT)",
                    m.group
                ),
            ));
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
