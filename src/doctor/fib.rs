//! A model of the kernel's policy routing over recorded rules and routes,
//! to answer "where would a marked packet go if the VPN were down?" without
//! taking the VPN down. Rules are tried in priority order; a lookup picks
//! the longest matching prefix (lowest metric on ties); `suppress_prefixlength`,
//! `throw` and the rule actions behave as in the kernel. Routes through a
//! device that is "down" are left out, as the kernel removes them.

use crate::probe::{HostFacts, Route, Rule};
use std::net::IpAddr;

/// Where one lookup ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Out through a route of `table`, found by the rule at `pref`.
    Route {
        pref: u32,
        table: String,
        dst: String,
        dev: Option<String>,
        via: Option<String>,
    },
    /// Refused: an `unreachable`/`blackhole`/`prohibit` rule or route.
    Refused { pref: u32, how: String },
    /// For this host itself.
    Local { pref: u32 },
    /// No rule led to a route: the kernel answers "Network is unreachable".
    NoRoute,
}

impl Verdict {
    /// The device a packet would leave through, if any.
    pub fn dev(&self) -> Option<&str> {
        match self {
            Verdict::Route { dev, .. } => dev.as_deref(),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Verdict::Route {
                pref,
                table,
                dst,
                dev,
                via,
            } => {
                let via = via
                    .as_deref()
                    .map(|v| format!(" via {v}"))
                    .unwrap_or_default();
                let dev = dev
                    .as_deref()
                    .map(|d| format!(" dev {d}"))
                    .unwrap_or_default();
                format!("rule {pref} → table {table}: {dst}{via}{dev}")
            }
            Verdict::Refused { pref, how } => format!("rule {pref}: {how}"),
            Verdict::Local { pref } => format!("rule {pref}: local delivery"),
            Verdict::NoRoute => "no route (network unreachable)".into(),
        }
    }
}

/// The packet being looked up.
#[derive(Clone, Copy, Debug)]
pub struct Flow<'a> {
    pub dst: IpAddr,
    pub src: Option<IpAddr>,
    /// Input interface: the LAN interface for forwarded packets, "lo" for
    /// the host's own (the kernel uses the loopback index for those).
    pub iif: &'a str,
    pub mark: u32,
    /// The DS byte.
    pub tos: u8,
}

/// `default`, `10.0.0.0/8`, `10.0.0.1` → (address, prefix length).
pub fn parse_prefix(s: &str, v6: bool) -> Option<(IpAddr, u8)> {
    if s == "default" || s == "all" {
        let unspecified: IpAddr = if v6 {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        };
        return Some((unspecified, 0));
    }
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?),
        None => {
            let a: IpAddr = s.parse().ok()?;
            (a, if a.is_ipv6() { 128 } else { 32 })
        }
    };
    Some((addr, len))
}

/// Is `ip` inside `net/len`?
pub fn contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

fn prefix_matches(sel: Option<&str>, ip: Option<IpAddr>, v6: bool) -> bool {
    match sel {
        None | Some("all") => true,
        Some(s) => match (parse_prefix(s, v6), ip) {
            (Some((n, l)), Some(ip)) => contains(n, l, ip),
            _ => false,
        },
    }
}

fn selector_matches(r: &Rule, f: &Flow, v6: bool) -> bool {
    let mark_ok = r
        .fwmark
        .is_none_or(|m| f.mark & r.fwmask.unwrap_or(u32::MAX) == m);
    let tos_ok = r.tos.as_deref().is_none_or(|t| {
        u8::from_str_radix(t.trim_start_matches("0x"), 16).is_ok_and(|b| b == f.tos)
    });
    // A `dscp` selector we cannot read (a local rt_dsfield name) matches nothing.
    let dscp_ok = r.dscp.is_none() || r.dscp_value() == Some(f.tos >> 2);
    let ok = mark_ok
        && tos_ok
        && dscp_ok
        && prefix_matches(r.src.as_deref(), f.src, v6)
        && prefix_matches(r.dst.as_deref(), Some(f.dst), v6)
        && r.iif.as_deref().is_none_or(|i| i == f.iif)
        // No output interface is known before routing.
        && r.oif.is_none();
    ok != r.not
}

enum TableResult<'r> {
    Hit(&'r Route, u8),
    Miss,
}

fn table_lookup<'r>(
    facts: &HostFacts,
    routes: &'r [Route],
    table: &str,
    dst: IpAddr,
    down: Option<&str>,
    v6: bool,
) -> TableResult<'r> {
    let want = facts.table_id(table);
    let mut best: Option<(&Route, u8)> = None;
    for r in routes {
        let same = match (want, facts.table_id(&r.table)) {
            (Some(a), Some(b)) => a == b,
            _ => r.table == table,
        };
        if !same || (down.is_some() && r.dev.as_deref() == down) {
            continue;
        }
        let Some((net, len)) = parse_prefix(&r.dst, v6) else {
            continue;
        };
        if !contains(net, len, dst) {
            continue;
        }
        let better = match best {
            None => true,
            Some((b, blen)) => {
                len > blen || (len == blen && r.metric.unwrap_or(0) < b.metric.unwrap_or(0))
            }
        };
        if better {
            best = Some((r, len));
        }
    }
    match best {
        Some((r, len)) => TableResult::Hit(r, len),
        None => TableResult::Miss,
    }
}

/// Walk the rules for `flow` as the kernel would, with the routes through
/// `down` gone.
pub fn lookup(facts: &HostFacts, v6: bool, flow: &Flow, down: Option<&str>) -> Verdict {
    let (rules, routes) = if v6 {
        (&facts.rules_v6, &facts.routes_v6)
    } else {
        (&facts.rules_v4, &facts.routes_v4)
    };
    let mut ordered: Vec<&Rule> = rules.iter().collect();
    ordered.sort_by_key(|r| r.priority);
    for r in ordered {
        if !selector_matches(r, flow, v6) {
            continue;
        }
        if let Some(action) = r.action.as_deref() {
            match action {
                "unreachable" | "blackhole" | "prohibit" => {
                    return Verdict::Refused {
                        pref: r.priority,
                        how: action.to_string(),
                    };
                }
                // nop, goto N (rare): go on with the next rule.
                _ => continue,
            }
        }
        let Some(table) = r.table.as_deref() else {
            continue;
        };
        let TableResult::Hit(route, len) = table_lookup(facts, routes, table, flow.dst, down, v6)
        else {
            continue;
        };
        if r.suppress_prefixlength.is_some_and(|n| u32::from(len) <= n) {
            continue;
        }
        match route.kind.as_str() {
            "" | "unicast" => {
                return Verdict::Route {
                    pref: r.priority,
                    table: table.to_string(),
                    dst: route.dst.clone(),
                    dev: route.dev.clone(),
                    via: route.gateway.clone(),
                };
            }
            "local" | "broadcast" | "anycast" | "multicast" => {
                return Verdict::Local { pref: r.priority };
            }
            "throw" => continue,
            how => {
                return Verdict::Refused {
                    pref: r.priority,
                    how: format!("{how} route {}", route.dst),
                };
            }
        }
    }
    Verdict::NoRoute
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        pref: u32,
        mark: Option<(u32, u32)>,
        table: Option<&str>,
        action: Option<&str>,
    ) -> Rule {
        Rule {
            priority: pref,
            src: Some("all".into()),
            fwmark: mark.map(|m| m.0),
            fwmask: mark.map(|m| m.1),
            table: table.map(str::to_string),
            action: action.map(str::to_string),
            ..Rule::default()
        }
    }

    fn route(dst: &str, table: &str, dev: &str, via: Option<&str>) -> Route {
        Route {
            dst: dst.into(),
            kind: "unicast".into(),
            gateway: via.map(str::to_string),
            dev: Some(dev.into()),
            table: table.into(),
            ..Route::default()
        }
    }

    fn gateway_facts(kill_switch: bool) -> HostFacts {
        let mut rules = vec![
            rule(0, None, Some("local"), None),
            Rule {
                suppress_prefixlength: Some(0),
                ..rule(9999, Some((3, 0xff)), Some("main"), None)
            },
            rule(10000, Some((3, 0xff)), Some("100"), None),
        ];
        if kill_switch {
            rules.push(rule(10001, Some((3, 0xff)), None, Some("unreachable")));
        }
        rules.push(rule(32766, None, Some("main"), None));
        HostFacts {
            rules_v4: rules,
            routes_v4: vec![
                route("default", "100", "wg0", Some("10.8.0.1")),
                route("default", "main", "up0", Some("100.64.0.1")),
                route("10.8.0.0/24", "main", "wg0", None),
                route("192.168.50.0/24", "main", "lan0", None),
            ],
            ..HostFacts::default()
        }
    }

    fn flow(dst: &str, mark: u32) -> Flow<'static> {
        Flow {
            dst: dst.parse().unwrap(),
            src: Some("192.168.50.2".parse().unwrap()),
            iif: "lan0",
            mark,
            tos: 0x1c,
        }
    }

    #[test]
    fn marked_goes_to_the_vpn_lan_stays_local_unmarked_to_the_isp() {
        let f = gateway_facts(true);
        assert_eq!(
            lookup(&f, false, &flow("198.51.100.1", 3), None).dev(),
            Some("wg0")
        );
        assert_eq!(
            lookup(&f, false, &flow("192.168.50.9", 3), None).dev(),
            Some("lan0")
        );
        assert_eq!(
            lookup(&f, false, &flow("198.51.100.1", 0), None).dev(),
            Some("up0")
        );
        // Other bits of the mark are not ours to care about.
        assert_eq!(
            lookup(&f, false, &flow("198.51.100.1", 0x4003), None).dev(),
            Some("wg0")
        );
    }

    #[test]
    fn vpn_down_meets_the_kill_switch_or_leaks_without_it() {
        let f = gateway_facts(true);
        assert_eq!(
            lookup(&f, false, &flow("198.51.100.1", 3), Some("wg0")),
            Verdict::Refused {
                pref: 10001,
                how: "unreachable".into()
            }
        );
        let f = gateway_facts(false);
        let v = lookup(&f, false, &flow("198.51.100.1", 3), Some("wg0"));
        assert_eq!(v.dev(), Some("up0"), "{v:?}");
        assert!(
            v.describe().starts_with("rule 32766 → table main"),
            "{}",
            v.describe()
        );
    }

    #[test]
    fn not_rules_throw_routes_and_metrics() {
        let mut f = gateway_facts(true);
        // wg-quick style: everything not marked 0xca6c goes to table 51820.
        f.rules_v4.insert(
            1,
            Rule {
                not: true,
                ..rule(5, Some((0xca6c, u32::MAX)), Some("51820"), None)
            },
        );
        f.routes_v4.push(route("default", "51820", "wgq", None));
        assert_eq!(
            lookup(&f, false, &flow("198.51.100.1", 3), Some("wg0")).dev(),
            Some("wgq")
        );
        // A throw route sends the lookup on to the next rule.
        f.routes_v4.push(Route {
            kind: "throw".into(),
            dev: None,
            ..route("198.51.100.0/24", "51820", "", None)
        });
        assert_eq!(
            lookup(&f, false, &flow("198.51.100.1", 3), Some("wg0")),
            Verdict::Refused {
                pref: 10001,
                how: "unreachable".into()
            }
        );
        // Same prefix: the lower metric wins.
        let mut g = gateway_facts(true);
        g.routes_v4.push(Route {
            metric: Some(5),
            ..route("default", "main", "up1", None)
        });
        g.routes_v4[1].metric = Some(10);
        assert_eq!(
            lookup(&g, false, &flow("198.51.100.1", 0), None).dev(),
            Some("up1")
        );
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            parse_prefix("default", false),
            Some(("0.0.0.0".parse().unwrap(), 0))
        );
        assert_eq!(
            parse_prefix("fd00::/64", true),
            Some(("fd00::".parse().unwrap(), 64))
        );
        assert_eq!(
            parse_prefix("10.0.0.1", false),
            Some(("10.0.0.1".parse().unwrap(), 32))
        );
        assert!(contains(
            "10.0.0.0".parse().unwrap(),
            8,
            "10.9.9.9".parse().unwrap()
        ));
        assert!(!contains(
            "10.0.0.0".parse().unwrap(),
            8,
            "11.0.0.1".parse().unwrap()
        ));
        assert!(!contains(
            "10.0.0.0".parse().unwrap(),
            8,
            "fd00::1".parse().unwrap()
        ));
    }
}
