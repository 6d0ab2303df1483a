//! `[[class]]` profiles against the recorded gateway: each class its own
//! values, its table through its first usable uplink, blocked when none is.

use super::*;
use crate::backend::{DefaultRoute, Family, PolicyAction};
use crate::probe::{Addr, Route};

/// The clean gateway plus `wg1` (10.9.0.2/24, up), a second VPN.
fn two_vpns() -> HostFacts {
    let mut f = facts("gateway-clean.json");
    let mut wg1 = f.link("wg0").unwrap().clone();
    wg1.name = "wg1".into();
    wg1.index = 99;
    wg1.addrs = vec![Addr {
        family: "inet".into(),
        local: "10.9.0.2".into(),
        prefixlen: 24,
        peer: None,
        scope: "global".into(),
    }];
    f.links.push(wg1);
    f.sysctls
        .insert("net.ipv4.conf.wg1.rp_filter".into(), "1".into());
    f
}

const TWO: &str = r#"
[[class]]
name = "torrent"
dscp = 7
uplinks = [ { interface = "wg0", via = "10.8.0.1", via6 = "fd00::1" },
            { interface = "wg1", via = "10.9.0.1" } ]

[[class]]
name = "streaming"
dscp = 11
uplinks = [ { interface = "wg9", via = "10.7.0.1" },
            { interface = "wg1", via = "10.9.0.1" } ]
"#;

fn routes(p: &Plan) -> Vec<(Family, DefaultRoute)> {
    p.steps
        .iter()
        .filter_map(|s| match &s.apply {
            Op::Route {
                family,
                add: true,
                route,
            } => Some((*family, route.clone())),
            _ => None,
        })
        .collect()
}

fn lookups(p: &Plan) -> Vec<(u32, u32)> {
    p.steps
        .iter()
        .filter_map(|s| match &s.apply {
            Op::PolicyRule {
                family: Family::V4,
                add: true,
                rule,
            } => match rule.action {
                PolicyAction::Lookup(t) => Some((rule.pref, t)),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn two_classes_get_their_own_values_and_their_first_usable_uplink() {
    let p = plan_with(&inline(TWO), &two_vpns());
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    let c = &p.resolved.classes;
    assert_eq!(c.len(), 2);
    assert_eq!((c[0].name.as_str(), c[0].dscp), ("torrent", 7));
    assert_eq!((c[0].mark, c[1].mark), (Some(1), Some(2)));
    assert_eq!((c[0].table_id, c[1].table_id), (Some(100), Some(101)));
    assert_eq!(
        (c[0].table_name.as_deref(), c[1].table_name.as_deref()),
        (None, None)
    );
    assert_eq!((c[0].priority, c[1].priority), (Some(10000), Some(9990)));
    assert_eq!(c[0].uplink.as_deref(), Some("wg0"));
    assert!(
        c[0].uplink_why.contains("the first uplink, usable now"),
        "{}",
        c[0].uplink_why
    );
    // wg9 does not exist: the second uplink takes the class.
    assert_eq!(c[1].uplink.as_deref(), Some("wg1"));
    assert!(
        c[1].uplink_why.contains("wg9 does not exist"),
        "{}",
        c[1].uplink_why
    );
    assert!(!c[0].blocked && !c[1].blocked);
    let r = routes(&p);
    assert!(r.contains(&(
        Family::V4,
        DefaultRoute {
            via: Some("10.8.0.1".parse().unwrap()),
            dev: "wg0".into(),
            table: 100
        }
    )));
    assert!(r.contains(&(
        Family::V4,
        DefaultRoute {
            via: Some("10.9.0.1".parse().unwrap()),
            dev: "wg1".into(),
            table: 101
        }
    )));
    assert_eq!(r.len(), 3, "v4 for both, v6 for torrent: {r:?}");
    assert_eq!(lookups(&p), [(10000, 100), (9990, 101)]);
    // Shared chains, jumps and switches once; each DSCP marked with its own mark.
    let shown: Vec<String> = p.steps.iter().map(|s| s.apply.display()).collect();
    let mut unique = shown.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), shown.len(), "{}", listing(&p));
    for (dscp, mark) in [(7, "0x1/0xff"), (11, "0x2/0xff")] {
        assert!(
            shown
                .iter()
                .any(|s| s.contains(&format!("--dscp {dscp:#04x}"))
                    && s.contains(&format!("--set-xmark {mark}"))),
            "DSCP {dscp} → {mark}:\n{}",
            listing(&p)
        );
    }
    // Source NAT and the scrub hook on every uplink a class lists.
    for dev in ["wg0", "wg1", "wg9"] {
        assert!(
            shown
                .iter()
                .any(|s| s.contains("-I POSTROUTING") && s.contains(&format!("-o {dev} "))),
            "{dev}:\n{}",
            listing(&p)
        );
    }
    let text = render_text(&p, "two.toml");
    assert!(
        text.contains(
            "class streaming: DSCP 11 → mark 0x2/0xff → table 101 at priority 9990 → wg1"
        ),
        "{text}"
    );
    assert!(text.contains("run `dscproute agent`"), "{text}");
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["resolved"]["classes"][1]["uplink"], "wg1");
    assert_eq!(json["resolved"]["classes"][0]["uplinks"][1], "wg1");
}

#[test]
fn a_class_with_no_usable_uplink_is_blocked_by_its_kill_switch() {
    let text = TWO.replace("{ interface = \"wg1\", via = \"10.9.0.1\" } ]\n\"#", "");
    let text = text.replace(
        "uplinks = [ { interface = \"wg9\", via = \"10.7.0.1\" },\n            { interface = \"wg1\", via = \"10.9.0.1\" } ]",
        "uplinks = [ { interface = \"wg9\", via = \"10.7.0.1\" } ]",
    );
    let p = plan_with(&inline(&text), &two_vpns());
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    let c = &p.resolved.classes[1];
    assert_eq!((c.uplink.as_deref(), c.blocked), (None, true));
    assert!(
        routes(&p).iter().all(|(_, r)| r.table != 101),
        "{}",
        listing(&p)
    );
    assert!(
        has(
            &p,
            "ip -4 rule add pref 9991 fwmark 0x2/0xff unreachable proto 213"
        ),
        "{}",
        listing(&p)
    );
    assert!(
        p.warnings.iter().any(|w| w
            .starts_with("class streaming: no usable uplink (wg9 does not exist)")
            && w.contains("blocked by its kill switch")),
        "{:?}",
        p.warnings
    );
    // Without the kill switch it leaves by main: no unreachable rule.
    let open = text.replace(
        "uplinks = [ { interface = \"wg9\", via = \"10.7.0.1\" } ]",
        "uplinks = [ { interface = \"wg9\", via = \"10.7.0.1\" } ]\nkill_switch = false",
    );
    let p = plan_with(&inline(&open), &two_vpns());
    assert!(!has(
        &p,
        "ip -4 rule add pref 9991 fwmark 0x2/0xff unreachable proto 213"
    ));
    assert!(!p.resolved.classes[1].blocked);
}

/// Our rules and routes as they would be once applied.
fn applied(p: &Plan, mut f: HostFacts) -> HostFacts {
    for s in &p.steps {
        match &s.apply {
            Op::PolicyRule {
                family,
                add: true,
                rule,
            } => {
                let crate::backend::Selector::Mark(m) = rule.selector else {
                    continue;
                };
                let (table, action, suppress) = match rule.action {
                    PolicyAction::LookupMain => (Some("main".to_string()), None, Some(0)),
                    PolicyAction::Lookup(t) => (Some(t.to_string()), None, None),
                    PolicyAction::Unreachable => (None, Some("unreachable".to_string()), None),
                };
                let r = Rule {
                    priority: rule.pref,
                    src: Some("all".into()),
                    fwmark: Some(m.value),
                    fwmask: Some(m.mask),
                    table,
                    action,
                    protocol: Some("213".into()),
                    suppress_prefixlength: suppress,
                    ..Rule::default()
                };
                match family {
                    Family::V4 => f.rules_v4.push(r),
                    Family::V6 => f.rules_v6.push(r),
                }
            }
            Op::Route {
                family,
                add: true,
                route,
            } => {
                let r = Route {
                    dst: "default".into(),
                    kind: "unicast".into(),
                    gateway: route.via.map(|v| v.to_string()),
                    dev: Some(route.dev.clone()),
                    table: route.table.to_string(),
                    protocol: Some("213".into()),
                    ..Route::default()
                };
                match family {
                    Family::V4 => f.routes_v4.push(r),
                    Family::V6 => f.routes_v6.push(r),
                }
            }
            _ => {}
        }
    }
    f
}

#[test]
fn one_class_never_removes_another_class_s_rules_or_routes() {
    let profile = inline(TWO);
    let first = plan_with(&profile, &two_vpns());
    let f = applied(&first, two_vpns());
    let again = plan_with(&profile, &f);
    let pending: Vec<String> = again
        .pending()
        .filter(|s| matches!(s.apply, Op::PolicyRule { .. } | Op::Route { .. }))
        .map(|s| s.apply.display())
        .collect();
    assert!(pending.is_empty(), "{pending:?}");
    // The same values again: what is in place stays chosen.
    assert_eq!(again.resolved.classes, first.resolved.classes);
    // wg0 gone: torrent's IPv4 route moves to wg1 in place (one replace);
    // wg1 has no via6, so its IPv6 route goes (blocked); streaming's stay.
    let mut gone = f.clone();
    gone.links.retain(|l| l.name != "wg0");
    let moved = plan_with(&profile, &gone);
    assert_eq!(moved.resolved.classes[0].uplink.as_deref(), Some("wg1"));
    let changed: Vec<(String, String)> = moved
        .pending()
        .filter(|s| {
            matches!(
                s.apply,
                Op::Route { .. } | Op::RouteReplace { .. } | Op::PolicyRule { add: false, .. }
            )
        })
        .map(|s| (s.apply.display(), s.undo.display()))
        .collect();
    let own = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        changed,
        [
            own(
                "ip -4 route replace default via 10.9.0.1 dev wg1 table 100 proto 213",
                "ip -4 route replace default via 10.8.0.1 dev wg0 table 100 proto 213"
            ),
            own(
                "ip -6 route del default via fd00::1 dev wg0 table 100 proto 213",
                "ip -6 route add default via fd00::1 dev wg0 table 100 proto 213"
            )
        ]
    );
}

#[test]
fn nft_table_holds_every_class() {
    let text = format!("backend = \"nft\"\n{TWO}");
    let mut f = two_vpns();
    f.tools.insert("nft".into(), Some("/usr/sbin/nft".into()));
    let p = plan_with(&inline(&text), &f);
    let table = p
        .steps
        .iter()
        .find_map(|s| match &s.apply {
            Op::NftTable { ruleset, .. } => Some(ruleset.table_text()),
            _ => None,
        })
        .expect("one nft step");
    for want in [
        "ip dscp 0x07 counter meta mark set",
        "ip dscp 0x0b counter meta mark set",
        "oifname \"wg0\"",
        "oifname \"wg1\"",
        "oifname \"wg9\"",
    ] {
        assert!(table.contains(want), "{want}:\n{table}");
    }
}

#[test]
fn snapshot_preview_classes() {
    insta::assert_snapshot!(preview("classes.toml", "gateway-clean.json"));
}

#[test]
fn snapshot_json_classes() {
    let p = plan_of("classes.toml", "gateway-clean.json");
    insta::assert_json_snapshot!(p.resolved);
}

#[test]
fn an_uplink_without_its_next_hop_is_skipped_and_a_client_here_takes_its_class_mark() {
    // wg0 is a broadcast link: without `via` it cannot carry a default route.
    let text = format!(
        "[marker]\ngroup = 4242\ndscp = 11\n\n{}",
        TWO.replace(
            "{ interface = \"wg9\", via = \"10.7.0.1\" }",
            "{ interface = \"wg0\" }"
        )
    );
    let p = plan_with(&inline(&text), &two_vpns());
    let c = &p.resolved.classes[1];
    assert_eq!(c.uplink.as_deref(), Some("wg1"));
    assert!(
        c.uplink_why
            .contains("wg0 needs a via: it is not a point-to-point interface"),
        "{}",
        c.uplink_why
    );
    // The client's connections carry the routing mark of DSCP 11's class.
    assert_eq!((p.resolved.dscp, p.resolved.mark), (11, Some(2)));
    assert!(
        has(
            &p,
            "iptables -w -t mangle -A DSCPROUTE-MARK -m connmark --mark 0x2/0xff -j MARK --set-xmark 0x2/0xff"
        ),
        "{}",
        listing(&p)
    );
}

#[test]
fn a_table_name_that_is_another_class_s_number_here_is_refused() {
    let mut f = two_vpns();
    f.rt_tables.push(RtTable {
        id: 120,
        name: "vpn".into(),
        source: "/etc/iproute2/rt_tables".into(),
    });
    let text = TWO
        .replace("dscp = 7\n", "dscp = 7\ntable = \"vpn\"\n")
        .replace("dscp = 11\n", "dscp = 11\ntable = 120\n");
    let e = plan(&inline(&text), &f, PlanOptions::default()).unwrap_err();
    assert_eq!(
        e.problems,
        [
            "classes torrent and streaming both route by table 120 on this host: give one of them \
          another table"
        ]
    );
}

/// `[gateway]` and the same values written as one `[[class]]` plan the
/// same steps, on a clean host and on one where it is applied.
#[test]
fn one_class_plans_the_steps_of_the_same_gateway() {
    let gateway = profile("gateway.toml");
    let g = gateway.gateway.clone().unwrap();
    let class = inline(
        "[[class]]\nname = \"only\"\ndscp = 7\n\
         uplinks = [ { interface = \"wg0\", via = \"10.8.0.1\", via6 = \"fd00::1\" } ]\n\
         mark = 3\nmask = \"0xff\"\ntable = \"vpn\"\ntable_id = 100\npriority = 10000\n",
    );
    assert_eq!(class.classes[0].through(&class.classes[0].uplinks[0]), g);
    for f in [
        "gateway-clean.json",
        "gateway-applied.json",
        "gateway-stale.json",
    ] {
        let (a, b) = (plan_with(&gateway, &facts(f)), plan_with(&class, &facts(f)));
        assert_eq!(a.steps, b.steps, "{f}");
        assert_eq!(a.errors, b.errors, "{f}");
    }
}

/// The agent's active checks reach the plan as `facts.unhealthy`: a class
/// skips an uplink held down (for that class only), in order, and with
/// every uplink down it is blocked.
#[test]
fn an_uplink_held_down_by_its_check_is_skipped_in_order_for_its_class_only() {
    let profile = inline(TWO);
    let held = |class: &str, interface: &str| crate::probe::Unhealthy {
        class: class.into(),
        interface: interface.into(),
        why: "no answer from 10.8.0.1 3 times in a row".into(),
    };
    let mut f = two_vpns();
    f.unhealthy = vec![held("torrent", "wg0")];
    let p = plan_with(&profile, &f);
    let torrent = &p.resolved.classes[0];
    assert_eq!(torrent.uplink.as_deref(), Some("wg1"));
    assert!(
        torrent
            .uplink_why
            .contains("wg0 fails its check: no answer from 10.8.0.1"),
        "{}",
        torrent.uplink_why
    );
    // Another class's view of wg0 is its own.
    f.unhealthy = vec![held("streaming", "wg0")];
    let p = plan_with(&profile, &f);
    assert_eq!(p.resolved.classes[0].uplink.as_deref(), Some("wg0"));
    // Every uplink of torrent held down: no route, blocked.
    f.unhealthy = vec![held("torrent", "wg0"), held("torrent", "wg1")];
    let p = plan_with(&profile, &f);
    assert_eq!(p.resolved.classes[0].uplink, None);
    assert!(p.resolved.classes[0].blocked);
}

/// Routing on the DSCP leaves no mark: source NAT on a later uplink would
/// cover everything leaving it, so the plan warns (a direct uplink the
/// firewall already NATs wants `masquerade = false`); with marks it does not.
#[test]
fn dscp_rule_classes_warn_that_a_later_uplink_is_masqueraded_whole() {
    let text = |m: &str| {
        format!(
            "[[class]]\nname = \"torrent\"\ndscp = 7\n{m}uplinks = [ {{ interface = \"wg0\", via = \
             \"10.8.0.1\" }}, {{ interface = \"wg1\", via = \"10.9.0.1\" }} ]\n"
        )
    };
    let warned = |p: &Plan| {
        p.warnings
            .iter()
            .any(|w| w.contains("applies to everything leaving wg1"))
    };
    let p = plan_with(&inline(&text("match = \"dscp-rule\"\n")), &two_vpns());
    assert!(warned(&p), "{:?}", p.warnings);
    let p = plan_with(&inline(&text("")), &two_vpns());
    assert!(!warned(&p), "{:?}", p.warnings);
}
