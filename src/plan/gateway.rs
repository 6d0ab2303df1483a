//! Host B: packets carrying the DSCP get a firewall mark in mangle PREROUTING
//! (never in nat: it sees only a connection's first packet), marked packets
//! look up our table whose default route is the VPN, and everything around
//! it that the naive recipe forgets (design.md §4): LAN stays local, the kill
//! switch, masquerade, DSCP scrub, forwarding and reverse-path filtering.
//! Order: table name, sysctls, routes, rules, chains; the jumps that start
//! marking come last, so no packet is marked before its path exists.

use super::choose::is_our_dropin;
use super::steps::{Ctx, Hook};
use super::{Resolved, Role, Step, StepState, ValueChange};
use crate::backend::{
    DefaultRoute, Family, MarkMask, Op, OurRule, PolicyAction, PolicyRule, Selector, SysctlKey,
    Table,
};
use crate::ownership::{CHAIN_NAT, CHAIN_ROUTE, CHAIN_SCRUB};
use crate::probe::{HostFacts, conf_key};
use crate::profile::{Gateway, MatchMode, RpFilterPolicy};
use std::net::IpAddr;

/// `routed`: false when none of a class's uplinks is usable, so its table
/// gets no route now (the kill switch blocks, or `kill_switch = false`
/// lets the class fall through to main). `first_uplink`: the class's first
/// uplink, which the marking rule's `! -i` exclusion names whatever uplink
/// is chosen, so that a failover changes only the route.
pub fn steps(
    g: &Gateway,
    r: &Resolved,
    routed: bool,
    first_uplink: &str,
    facts: &HostFacts,
    ctx: &Ctx,
    warnings: &mut Vec<String>,
) -> Vec<Step> {
    let (Some(table), Some(pref)) = (r.table_id, r.priority) else {
        return Vec::new();
    };
    let dscp = g.dscp.value();
    // The mark path needs a mark; `ip rule dscp` routes on the DSCP itself.
    let (selector, sel) = match (g.match_mode, r.mark, r.mask) {
        (MatchMode::DscpRule, ..) => (Selector::Dscp(dscp), Some(dscp)),
        (MatchMode::Mark, Some(value), Some(mask)) => {
            (Selector::Mark(MarkMask { value, mask }), None)
        }
        (MatchMode::Mark, ..) => return Vec::new(),
    };
    // How the reasons name our traffic: "marked IPv4", or "IPv4 with DSCP 7".
    let ours = |what: &str| match sel {
        None => format!("marked {what}"),
        Some(d) => format!("{what} with DSCP {d}"),
    };
    let gw = Role::Gateway;
    let dev = g.interface.as_str();
    let table_label = match &r.table_name {
        Some(n) => format!("{table} ({n})"),
        None => table.to_string(),
    };
    let mut out = Vec::new();

    // Table name: a drop-in file of our own, so rollback removes one file.
    if let Some(name) = &r.table_name {
        let theirs = facts
            .rt_tables
            .iter()
            .any(|t| t.name == *name && !is_our_dropin(&t.source));
        let ours: Vec<_> = facts
            .rt_tables
            .iter()
            .filter(|t| is_our_dropin(&t.source))
            .collect();
        if !theirs {
            let wanted = ours.len() == 1 && ours[0].id == table && ours[0].name == *name;
            let (state, change) = match (wanted, ours.first()) {
                (true, _) => (StepState::InPlace, None),
                (false, Some(old)) => (
                    StepState::Change,
                    Some(ValueChange {
                        from: format!("{} {}", old.id, old.name),
                        to: format!("{table} {name}"),
                    }),
                ),
                (false, None) => (StepState::Add, None),
            };
            out.push(Step {
                role: gw,
                state,
                apply: Op::WriteTableNames {
                    id: table,
                    name: name.clone(),
                },
                // The executor restores the old contents when there were any.
                undo: Op::RemoveTableNames,
                reason: format!(
                    "name routing table {table} {name:?} so `ip route show table {name}` works; \
                     a drop-in of our own leaves the system's rt_tables untouched"
                ),
                change,
            });
        }
    }

    // Kernel switches.
    out.push(ctx.sysctl(
        gw,
        SysctlKey::Ipv4Forwarding,
        1,
        "a gateway forwards packets between its LAN and the VPN".into(),
    ));
    if g.via6.is_some() {
        out.push(ctx.sysctl(
            gw,
            SysctlKey::Ipv6Forwarding,
            1,
            "forward IPv6 too, since the profile gives an IPv6 path (via6)".into(),
        ));
        if facts.sysctl("net.ipv6.conf.all.forwarding") != Some("1") {
            warnings.push(
                "Turning on IPv6 forwarding makes Linux ignore router advertisements on \
                 interfaces with accept_ra=1: if this host configures its own IPv6 uplink by \
                 SLAAC, set accept_ra=2 on that interface first."
                    .into(),
            );
        }
    }
    rp_filter(g, facts, ctx, &mut out, warnings);

    // The table: its default route through the VPN.
    if routed {
        out.push(ctx.ip_route(
            gw,
            Family::V4,
            DefaultRoute {
                via: g.via.map(IpAddr::V4),
                dev: dev.into(),
                table,
            },
            format!(
                "table {table_label}: the default route for {} goes through the VPN on {dev}",
                ours("IPv4")
            ),
        ));
        if let Some(via6) = g.via6 {
            out.push(ctx.ip_route(
                gw,
                Family::V6,
                DefaultRoute {
                    via: Some(IpAddr::V6(via6)),
                    dev: dev.into(),
                    table,
                },
                format!(
                    "table {table_label}: the default route for {} goes through the VPN",
                    ours("IPv6")
                ),
            ));
        }
    }

    // Policy rules, for both families; written top to bottom as the kernel reads them.
    // With the mark they come before the netfilter steps (nothing is marked
    // before its path exists); with `ip rule dscp` they are what starts the
    // routing, so they come last, once masquerade and scrub are in place.
    let mut policy = Vec::new();
    for f in Family::BOTH {
        let fam = f.name();
        policy.push(ctx.ip_rule(
            gw,
            f,
            PolicyRule {
                pref: pref - 1,
                selector,
                action: PolicyAction::LookupMain,
            },
            format!(
                "{fam}: {} to the LAN stay local: main-table routes more specific than a \
                 default route win over the VPN",
                ours("packets")
            ),
        ));
        let how = match g.match_mode {
            MatchMode::Mark => "",
            MatchMode::DscpRule => {
                " (`ip rule dscp`, match = \"dscp-rule\": routed on the DSCP itself, no \
                 firewall mark on the routing path)"
            }
        };
        policy.push(ctx.ip_rule(
            gw,
            f,
            PolicyRule {
                pref,
                selector,
                action: PolicyAction::Lookup(table),
            },
            format!(
                "{fam}: {} look up table {table_label}{how}",
                ours("packets")
            ),
        ));
        let blocked_v6 = f == Family::V6 && g.via6.is_none();
        if g.kill_switch || blocked_v6 {
            let why = if blocked_v6 && !g.kill_switch {
                format!(
                    "IPv6: the profile has no IPv6 path (via6), so {} is blocked rather than \
                     leaked through the main uplink",
                    ours("IPv6")
                )
            } else if blocked_v6 {
                format!(
                    "IPv6: no IPv6 path (via6): {} is blocked here rather than leaked",
                    ours("IPv6")
                )
            } else {
                format!(
                    "{fam}: kill switch: if the VPN route is gone, {} are refused instead of \
                     falling through to the main uplink",
                    ours("packets")
                )
            };
            policy.push(ctx.ip_rule(
                gw,
                f,
                PolicyRule {
                    pref: pref + 1,
                    selector,
                    action: PolicyAction::Unreachable,
                },
                why,
            ));
        }
    }
    if g.match_mode == MatchMode::Mark {
        out.append(&mut policy);
    }
    if !g.kill_switch {
        let families = if g.via6.is_some() {
            "IPv4 and IPv6"
        } else {
            "IPv4"
        };
        warnings.push(format!(
            "kill_switch = false: when the VPN goes down, {} falls back to the main uplink \
             and leaves by your ISP.",
            ours(families)
        ));
    }

    // Netfilter: chains first, filled, then linked.
    for f in Family::BOTH {
        let fam = f.name();
        let routed = f == Family::V4 || g.via6.is_some();
        if let Selector::Mark(mm) = selector {
            marking(ctx, f, first_uplink, dscp, mm, &mut out);
        }
        if g.scrub_dscp && routed {
            out.push(ctx.chain(
                gw,
                f,
                Table::Mangle,
                CHAIN_SCRUB,
                format!("{fam}: our own chain for the DSCP scrub"),
            ));
            out.push(ctx.rule(
                gw,
                f,
                Table::Mangle,
                CHAIN_SCRUB,
                OurRule::ScrubDscp { dscp },
                format!("{fam}: reset DSCP {dscp} to 0 as packets enter the VPN: the signal stays inside your network"),
            ));
        }
        if g.masquerade && routed {
            out.push(ctx.chain(
                gw,
                f,
                Table::Nat,
                CHAIN_NAT,
                format!("{fam}: our own chain for source NAT"),
            ));
            let (rule, why) = match selector {
                Selector::Mark(mm) => (
                    OurRule::Masquerade { mark: mm },
                    format!(
                        "{fam}: marked packets leave {dev} with its address, so replies come back through the VPN"
                    ),
                ),
                // nat POSTROUTING runs after the mangle scrub: the DSCP is gone by then.
                Selector::Dscp(_) => (
                    OurRule::MasqueradeAll,
                    format!(
                        "{fam}: packets leaving {dev} take its address, so replies come back \
                         through the VPN; with no mark, the interface is what tells them apart \
                         (the DSCP is already scrubbed when source NAT runs)"
                    ),
                ),
            };
            out.push(ctx.rule(gw, f, Table::Nat, CHAIN_NAT, rule, why));
        }
    }
    for f in Family::BOTH {
        let fam = f.name();
        let routed = f == Family::V4 || g.via6.is_some();
        if g.masquerade && routed {
            out.push(ctx.jump(
                gw,
                f,
                Hook(Table::Nat, "POSTROUTING", Some(dev)),
                CHAIN_NAT,
                format!("{fam}: link source NAT on {dev}"),
            ));
        }
        if g.scrub_dscp && routed {
            out.push(ctx.jump(
                gw,
                f,
                Hook(Table::Mangle, "POSTROUTING", Some(dev)),
                CHAIN_SCRUB,
                format!("{fam}: link the scrub on {dev}"),
            ));
        }
        if selector.is_mark() {
            out.push(ctx.jump(
                gw,
                f,
                Hook(Table::Mangle, "PREROUTING", None),
                CHAIN_ROUTE,
                format!("{fam}: link the marking chain last: from here on, DSCP {dscp} is routed through {dev}"),
            ));
        }
    }
    out.append(&mut policy);
    out
}

/// A class's uplink other than the one its table routes through now: the
/// scrub and source NAT hooked on its interface too, and its reverse-path
/// filter, so that a later switch to it changes only the route.
pub fn other_uplink(
    g: &Gateway,
    r: &Resolved,
    facts: &HostFacts,
    ctx: &Ctx,
    warnings: &mut Vec<String>,
) -> Vec<Step> {
    let gw = Role::Gateway;
    let dev = g.interface.as_str();
    let dscp = g.dscp.value();
    let mark = match (g.match_mode, r.mark, r.mask) {
        (MatchMode::Mark, Some(value), Some(mask)) => Some(MarkMask { value, mask }),
        _ => None,
    };
    let mut out = Vec::new();
    rp_filter(g, facts, ctx, &mut out, warnings);
    if g.masquerade && mark.is_none() {
        // Routing on the DSCP leaves no mark to tell the class apart.
        warnings.push(format!(
            "masquerade on {dev}, a later uplink of this class, applies to everything leaving \
             {dev} (match = \"dscp-rule\" leaves no mark to match): if {dev} is a direct \
             uplink your firewall already NATs, set masquerade = false for this class"
        ));
    }
    for f in Family::BOTH {
        let fam = f.name();
        if f == Family::V6 && g.via6.is_none() {
            continue;
        }
        if g.scrub_dscp {
            out.push(ctx.chain(
                gw,
                f,
                Table::Mangle,
                CHAIN_SCRUB,
                format!("{fam}: our own chain for the DSCP scrub"),
            ));
            out.push(ctx.rule(
                gw,
                f,
                Table::Mangle,
                CHAIN_SCRUB,
                OurRule::ScrubDscp { dscp },
                format!("{fam}: reset DSCP {dscp} to 0 as packets enter an uplink"),
            ));
            out.push(ctx.jump(
                gw,
                f,
                Hook(Table::Mangle, "POSTROUTING", Some(dev)),
                CHAIN_SCRUB,
                format!("{fam}: link the scrub on {dev} too, a later uplink of this class"),
            ));
        }
        if g.masquerade {
            out.push(ctx.chain(
                gw,
                f,
                Table::Nat,
                CHAIN_NAT,
                format!("{fam}: our own chain for source NAT"),
            ));
            let rule = match mark {
                Some(mm) => OurRule::Masquerade { mark: mm },
                None => OurRule::MasqueradeAll,
            };
            out.push(ctx.rule(
                gw,
                f,
                Table::Nat,
                CHAIN_NAT,
                rule,
                format!("{fam}: packets of this class leave an uplink with its address"),
            ));
            out.push(ctx.jump(
                gw,
                f,
                Hook(Table::Nat, "POSTROUTING", Some(dev)),
                CHAIN_NAT,
                format!("{fam}: link source NAT on {dev} too, a later uplink of this class"),
            ));
        }
    }
    out
}

/// The mark path: DSCP -> firewall mark in mangle PREROUTING, kept on the
/// connection so its last packets (no DSCP left to read) follow it.
fn marking(ctx: &Ctx, f: Family, dev: &str, dscp: u8, mm: MarkMask, out: &mut Vec<Step>) {
    let (gw, fam, mask) = (Role::Gateway, f.name(), mm.mask);
    let markmask = mm.text();
    out.push(ctx.chain(
        gw,
        f,
        Table::Mangle,
        CHAIN_ROUTE,
        format!("{fam}: our own chain for the marking rule"),
    ));
    out.push(ctx.rule(
        gw,
        f,
        Table::Mangle,
        CHAIN_ROUTE,
        OurRule::RestoreMark { mask },
        format!(
            "{fam}: packets of a connection already marked get the mark back, even without \
             the DSCP (a program's last ACK or FIN is sent after its socket closed, with no \
             owner to match): the whole connection stays on the VPN"
        ),
    ));
    out.push(ctx.rule(
        gw,
        f,
        Table::Mangle,
        CHAIN_ROUTE,
        OurRule::DscpMark {
            not_in: dev.into(),
            dscp,
            mark: mm,
        },
        format!(
            "{fam}: forwarded packets carrying DSCP {dscp} get mark {markmask} (value/mask \
             form leaves other bits alone); mangle, because nat sees only a connection's \
             first packet"
        ),
    ));
    out.push(ctx.rule(
        gw,
        f,
        Table::Mangle,
        CHAIN_ROUTE,
        OurRule::SaveMark { mark: mm },
        format!("{fam}: remember the mark on the connection (conntrack), in our bits only"),
    ));
}

/// Replies from the VPN arrive unmarked on the VPN interface; strict
/// reverse-path filtering checks them against main and drops them. The
/// kernel uses max(all, interface).
fn rp_filter(
    g: &Gateway,
    facts: &HostFacts,
    ctx: &Ctx,
    out: &mut Vec<Step>,
    warnings: &mut Vec<String>,
) {
    let dev = &g.interface;
    let all = facts
        .sysctl("net.ipv4.conf.all.rp_filter")
        .and_then(|v| v.parse::<u8>().ok());
    // sysctl(8) writes a dotted interface name (eth0.10) with a slash.
    let key = conf_key("ipv4", dev, "rp_filter");
    let iface = facts.sysctl(&key).and_then(|v| v.parse::<u8>().ok());
    let (Some(all), Some(iface)) = (all, iface) else {
        if facts.link(dev).is_some() {
            warnings.push(format!(
                "could not read rp_filter for all and {dev}: check that it is not strict (1), or \
                 replies from the VPN will be dropped"
            ));
        }
        return;
    };
    let effective = all.max(iface);
    // The interface at 2 is what "loose" leaves behind: show it in place.
    let loosened = iface == 2 && g.rp_filter == RpFilterPolicy::Loose;
    if effective != 1 && !loosened {
        return;
    }
    let reason = if loosened {
        format!(
            "{dev} is loose (2), so replies from the VPN, which arrive unmarked, pass reverse-path \
             filtering (the kernel uses max(all={all}, {dev}=2))"
        )
    } else {
        format!(
            "replies from the VPN arrive on {dev} unmarked and strict reverse-path filtering \
             (max(all={all}, {dev}={iface}) = 1) would drop them: loose (2) on {dev} only"
        )
    };
    match g.rp_filter {
        RpFilterPolicy::Loose => {
            out.push(ctx.sysctl(Role::Gateway, SysctlKey::RpFilter(dev.clone()), 2, reason))
        }
        RpFilterPolicy::Keep => warnings.push(format!(
            "rp_filter is strict for {dev} (max(all={all}, {dev}={iface}) = 1) and the profile \
             says rp_filter = \"keep\": replies from the VPN will be dropped. Use rp_filter = \
             \"loose\"."
        )),
    }
}
