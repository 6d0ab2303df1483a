//! Host A: give the chosen group's packets the DSCP, in mangle OUTPUT (the
//! owner match exists only there and in POSTROUTING; the DSCP target only in
//! mangle). On a host that is also the gateway, mark them for routing here:
//! local packets never pass PREROUTING.

use super::steps::{Ctx, Family, Hook};
use super::{Resolved, Role, Step};
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
            apply: super::Effect::run(vec!["groupadd".into(), name.clone()]),
            undo: super::Effect::run(vec!["groupdel".into(), name.clone()]),
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
            "mangle",
            CHAIN_MARK,
            format!("{fam}: our own chain, so the group's rules are easy to find and remove"),
        ));
        // The group's sockets tag their connection (conntrack mark); every
        // packet of a tagged connection gets the DSCP, also the last ACK or FIN
        // sent after the program closed its socket (no owner left to match).
        if let (Some(mark), Some(mask)) = (r.mark, r.mask) {
            let markmask = format!("{mark:#x}/{mask:#x}");
            let rule = |spec: &[&str], reason: String| {
                let spec: Vec<String> = spec.iter().map(|s| s.to_string()).collect();
                ctx.rule(Role::Marker, f, "mangle", CHAIN_MARK, &spec, reason)
            };
            out.push(rule(
                &[
                    "-m",
                    "owner",
                    "--gid-owner",
                    &gid,
                    "-j",
                    "CONNMARK",
                    "--set-xmark",
                    &markmask,
                ],
                format!(
                    "{fam}: connections opened by sockets of group {} ({gid}) get connection \
                     mark {markmask} (the owner match works only in OUTPUT)",
                    m.group
                ),
            ));
            out.push(rule(
                &[
                    "-m",
                    "connmark",
                    "--mark",
                    &markmask,
                    "-j",
                    "DSCP",
                    "--set-dscp",
                    &format!("{dscp:#04x}"),
                ],
                format!(
                    "{fam}: every packet of those connections leaves with DSCP {dscp}, even after \
                     the socket closed; the DSCP target rewrites only the six DSCP bits, ECN stays"
                ),
            ));
            if also_gateway {
                out.push(rule(
                    &[
                        "-m",
                        "connmark",
                        "--mark",
                        &markmask,
                        "-j",
                        "MARK",
                        "--set-xmark",
                        &markmask,
                    ],
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
            Hook("mangle", "OUTPUT", None),
            CHAIN_MARK,
            format!("{fam}: link the chain into mangle OUTPUT last, once it is complete"),
        ));
    }
    out
}
