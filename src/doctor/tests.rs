//! Doctor checks from host facts recorded in namespaces
//! (tests/fixtures/plan/), answers of a FakeRunner and made-up samples of
//! the wire: each broken variant must fail the check that names its cause,
//! and only that one among the path checks. No root needed.

use super::*;
use crate::plan::{PlanOptions, plan};
use crate::probe::{CountedRule, HostFacts};
use crate::profile::Profile;
use crate::runner::{FakeRunner, Output};
use std::path::Path;

const DIR: &str = "tests/fixtures/plan";

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn facts(name: &str) -> HostFacts {
    serde_json::from_str(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn profile(name: &str) -> Profile {
    Profile::parse(&read(name), name).unwrap()
}

fn inline(toml: &str) -> Profile {
    Profile::parse(toml, "inline.toml").unwrap_or_else(|e| panic!("{e}"))
}

/// gateway.toml without via6 (marked IPv6 blocked).
const GATEWAY_NO_V6: &str = "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\n\
                             mark = \"0x3\"\ntable = \"vpn\"\ntable_id = 100\npriority = 10000\n";

fn route(dev: &str, via: &str, table: &str) -> Output {
    Output::ok(format!(
        r#"[{{"dst":"x","gateway":"{via}","dev":"{dev}","table":"{table}","flags":[]}}]"#
    ))
}

fn unreachable() -> Output {
    Output::failed(2, "RTNETLINK answers: Network is unreachable\n")
}

/// The kernel's answers on the applied gateway fixture (mark 0x3; LAN eth0
/// 192.168.50.1/24, so the client looked up from is 192.168.50.2).
fn gateway_runner() -> FakeRunner {
    FakeRunner::new()
        .on(
            &["ip", "-j", "route", "get", TARGET4, "mark", "0x3"],
            route("wg0", "10.8.0.1", "vpn"),
        )
        .on(
            &[
                "ip",
                "-j",
                "route",
                "get",
                TARGET4,
                "from",
                "192.168.50.2",
                "iif",
                "eth0",
                "mark",
                "0x3",
            ],
            route("wg0", "10.8.0.1", "vpn"),
        )
        .on(
            &["ip", "-j", "route", "get", "192.168.50.2", "mark", "0x3"],
            Output::ok(r#"[{"dst":"192.168.50.2","dev":"eth0","flags":[]}]"#),
        )
        .on(
            &["ip", "-j", "-6", "route", "get", TARGET6, "mark", "0x3"],
            route("wg0", "fd00::1", "vpn"),
        )
}

fn counted(chain: &str, spec: &str, packets: u64) -> CountedRule {
    CountedRule {
        family: "IPv4",
        table: "mangle".into(),
        chain: chain.into(),
        spec: spec.into(),
        packets,
        bytes: packets * 100,
    }
}

const ROUTE_RULE: &str = "! -i wg0 -m dscp --dscp 0x07 -j MARK --set-xmark 0x3/0xff";
const MARK_RULE: &str = "-m connmark --mark 0x1/0xff -j DSCP --set-dscp 0x07";

fn moving(chain: &str, spec: &str) -> Option<(Vec<CountedRule>, Vec<CountedRule>)> {
    Some((
        vec![counted(chain, spec, 10)],
        vec![counted(chain, spec, 25)],
    ))
}

fn lan_seen() -> WireSample {
    let mut w = WireSample {
        dscp: 7,
        seconds: 0.4,
        ..WireSample::default()
    };
    let l = w.lan_in.entry("eth0".into()).or_default();
    l.with_dscp = 12;
    l.sources.insert("192.168.50.10".parse().unwrap());
    w.vpn_out = wire::Out {
        with_dscp: 0,
        total: 12,
    };
    w
}

/// One doctor run over recorded data.
struct Case {
    profile: Profile,
    facts: HostFacts,
    extras: HostExtras,
    counters: Option<(Vec<CountedRule>, Vec<CountedRule>)>,
    wire: Option<WireSample>,
    runner: FakeRunner,
}

impl Case {
    fn gateway() -> Case {
        Case {
            profile: profile("gateway.toml"),
            facts: facts("gateway-applied.json"),
            extras: HostExtras::default(),
            counters: moving("DSCPROUTE-ROUTE", ROUTE_RULE),
            wire: Some(lan_seen()),
            runner: gateway_runner(),
        }
    }

    fn client() -> Case {
        let mut w = WireSample {
            dscp: 7,
            seconds: 0.3,
            ..WireSample::default()
        };
        w.egress.insert(
            "eth0".into(),
            wire::Out {
                with_dscp: 9,
                total: 10,
            },
        );
        Case {
            profile: profile("client.toml"),
            facts: facts("client-applied.json"),
            extras: HostExtras {
                processes: vec![host::Proc {
                    pid: 4321,
                    comm: "transmission-da".into(),
                    fsgid: Some(1001),
                    ..host::Proc::default()
                }],
                resolv_conf: Some("nameserver 9.9.9.9\n".into()),
                ..HostExtras::default()
            },
            counters: moving("DSCPROUTE-MARK", MARK_RULE),
            wire: Some(w),
            runner: FakeRunner::new(),
        }
    }

    fn run(&self) -> Report {
        let planned = plan(&self.profile, &self.facts, PlanOptions::default());
        let i = Inputs {
            profile: &self.profile,
            profile_path: "p.toml",
            facts: &self.facts,
            plan: planned.as_ref(),
            extras: &self.extras,
            counters: self.counters.clone(),
            wire: self.wire.as_ref(),
        };
        let checks = evaluate(&i, &self.runner);
        let applied = planned
            .as_ref()
            .map_or(Applied::Unknown, |p| applied(p, &self.facts));
        Report::new("p.toml", i.roles(), applied, checks)
    }
}

fn status_of(r: &Report, name: &str) -> Vec<Status> {
    r.checks
        .iter()
        .filter(|c| c.name == name)
        .map(|c| c.status)
        .collect()
}

fn get<'r>(r: &'r Report, name: &str) -> &'r Check {
    r.checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no check {name}:\n{}", render_text(r)))
}

fn failed(r: &Report) -> Vec<&'static str> {
    r.checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.name)
        .collect()
}

#[track_caller]
fn assert_status(r: &Report, name: &str, want: Status) {
    assert_eq!(status_of(r, name), [want], "{name}:\n{}", render_text(r));
}

fn names(r: &Report) -> Vec<&'static str> {
    r.checks.iter().map(|c| c.name).collect()
}

#[test]
fn applied_gateway_passes_every_check_in_order() {
    let c = Case::gateway();
    let r = c.run();
    assert_eq!(
        names(&r),
        [
            "root",
            "tools",
            "kernel",
            "forwarding",
            "rp_filter",
            "src_valid_mark",
            "backend",
            "plan",
            "applied",
            "counters",
            "mark-path",
            "vpn-route",
            "route-lookup",
            "kill-switch",
            "ipv6",
            "dscp-on-wire",
            "scrub",
            "dns",
        ]
    );
    assert!(
        r.checks.iter().all(|c| c.status == Status::Pass),
        "{}",
        render_text(&r)
    );
    assert_eq!(
        (r.exit, r.status, r.applied),
        (0, Status::Pass, Applied::Yes)
    );
    assert!(
        get(&r, "rp_filter")
            .detail
            .contains("max(all=1, wg0=2) = 2 (loose)")
    );
    assert!(
        get(&r, "kill-switch")
            .detail
            .contains("rule 10001: unreachable")
    );
    assert!(get(&r, "counters").detail.contains("15 packets marked"));
    // The only commands the checks run: read-only route lookups.
    let calls: Vec<String> = c.runner.calls().iter().map(|a| a.join(" ")).collect();
    assert_eq!(
        calls,
        [
            "ip -j route get 198.51.100.1 mark 0x3",
            "ip -j route get 198.51.100.1 from 192.168.50.2 iif eth0 mark 0x3",
            "ip -j route get 192.168.50.2 mark 0x3",
            "ip -j -6 route get 2001:db8::1 mark 0x3",
        ]
    );
}

/// Both roles on one host (both.toml: no via6, so IPv6 is blocked): the
/// client-side wire check gives way to the gateway's; IPv6 is "blocked".
#[test]
fn applied_both_roles() {
    let profile = profile("both.toml");
    let facts = facts("both-applied.json");
    let p = plan(&profile, &facts, PlanOptions::default()).unwrap();
    let mark = format!("{:#x}", p.resolved.mark.unwrap());
    let runner = FakeRunner::new()
        .on(
            &["ip", "-j", "route", "get", TARGET4, "mark", &mark],
            route("wg0", "10.8.0.1", "vpn"),
        )
        .on(
            &[
                "ip",
                "-j",
                "route",
                "get",
                TARGET4,
                "from",
                "192.168.50.2",
                "iif",
                "eth0",
                "mark",
                &mark,
            ],
            route("wg0", "10.8.0.1", "vpn"),
        )
        .on(
            &["ip", "-j", "route", "get", "192.168.50.2", "mark", &mark],
            Output::ok(r#"[{"dst":"192.168.50.2","dev":"eth0","flags":[]}]"#),
        )
        .on(
            &["ip", "-j", "-6", "route", "get", TARGET6, "mark", &mark],
            unreachable(),
        );
    let mut counters = moving("DSCPROUTE-MARK", MARK_RULE).unwrap();
    counters.0.push(counted("DSCPROUTE-ROUTE", ROUTE_RULE, 1));
    counters.1.push(counted("DSCPROUTE-ROUTE", ROUTE_RULE, 1));
    let c = Case {
        profile,
        facts,
        extras: HostExtras {
            resolv_conf: Some("nameserver 9.9.9.9\n".into()),
            processes: vec![host::Proc {
                pid: 7,
                comm: "qbittorrent-nox".into(),
                fsgid: Some(1001),
                ..host::Proc::default()
            }],
            ..HostExtras::default()
        },
        counters: Some(counters),
        wire: Some(WireSample {
            dscp: 7,
            seconds: 5.0,
            ..WireSample::default()
        }),
        runner,
    };
    let r = c.run();
    assert_eq!(r.roles, [Role::Gateway, Role::Marker]);
    assert_eq!(r.exit, 0, "{}", render_text(&r));
    assert_status(&r, "applied", Status::Pass);
    assert_status(&r, "counters", Status::Pass);
    assert_status(&r, "group", Status::Pass);
    assert_status(&r, "ipv6", Status::Pass);
    assert!(get(&r, "ipv6").detail.contains("blocked"));
    assert_status(&r, "dscp-on-wire", Status::Warn);
}

#[test]
fn clean_gateway_is_not_applied_and_stops_after_preflight() {
    let mut c = Case::gateway();
    c.facts = facts("gateway-clean.json");
    c.counters = None;
    c.wire = None;
    let r = c.run();
    assert_eq!(r.applied, Applied::No);
    assert_eq!(
        failed(&r),
        ["forwarding", "rp_filter", "applied"],
        "{}",
        render_text(&r)
    );
    assert!(!names(&r).contains(&"route-lookup"));
    let fix = get(&r, "applied").fix.as_deref().unwrap();
    assert!(fix.contains("dscproute apply --profile p.toml"), "{fix}");
    assert_eq!(r.exit, 1);
}

#[test]
fn forwarding_off_fails_forwarding_only_among_the_path_checks() {
    let mut c = Case::gateway();
    c.facts
        .sysctls
        .insert("net.ipv4.ip_forward".into(), "0".into());
    let r = c.run();
    assert_eq!(
        r.applied,
        Applied::Yes,
        "sysctls are judged by their own checks"
    );
    assert_eq!(failed(&r), ["forwarding"], "{}", render_text(&r));
    let f = get(&r, "forwarding");
    assert!(
        f.fix
            .as_deref()
            .unwrap()
            .contains("sysctl -w net.ipv4.ip_forward=1")
    );
}

#[test]
fn strict_rp_filter_kept_by_the_profile_fails_and_points_at_loose() {
    let mut c = Case::gateway();
    c.profile = inline(&format!(
        "{GATEWAY_NO_V6}via6 = \"fd00::1\"\nrp_filter = \"keep\"\n"
    ));
    c.facts
        .sysctls
        .insert("net.ipv4.conf.wg0.rp_filter".into(), "0".into());
    let r = c.run();
    let rp = get(&r, "rp_filter");
    assert_eq!(rp.status, Status::Fail, "{}", render_text(&r));
    assert!(
        rp.detail.contains("max(all=1, wg0=0) = 1 (strict)"),
        "{}",
        rp.detail
    );
    assert!(rp.detail.contains("rp_filter = \"keep\""));
    assert!(rp.fix.as_deref().unwrap().contains("rp_filter = \"loose\""));
    assert!(
        failed(&r).iter().all(|n| *n == "rp_filter"),
        "{}",
        render_text(&r)
    );
}

#[test]
fn missing_vpn_route_fails_vpn_route_and_the_lookup_shows_the_kill_switch() {
    let mut c = Case::gateway();
    c.facts
        .routes_v4
        .retain(|r| !(r.dst == "default" && r.table == "vpn"));
    c.runner = gateway_runner()
        .on(
            &["ip", "-j", "route", "get", TARGET4, "mark", "0x3"],
            unreachable(),
        )
        .on(
            &[
                "ip",
                "-j",
                "route",
                "get",
                TARGET4,
                "from",
                "192.168.50.2",
                "iif",
                "eth0",
                "mark",
                "0x3",
            ],
            unreachable(),
        );
    let r = c.run();
    assert_eq!(r.applied, Applied::Partly);
    assert_eq!(
        failed(&r),
        ["applied", "vpn-route", "route-lookup"],
        "{}",
        render_text(&r)
    );
    assert!(
        get(&r, "vpn-route")
            .detail
            .contains("IPv4 `default via 10.8.0.1 dev wg0`")
    );
    assert!(
        get(&r, "route-lookup")
            .detail
            .contains("kill switch answered")
    );
    assert_status(&r, "kill-switch", Status::Pass);
}

#[test]
fn vpn_interface_gone_fails_vpn_route() {
    let mut c = Case::gateway();
    c.facts.links.retain(|l| l.name != "wg0");
    let r = c.run();
    let v = get(&r, "vpn-route");
    assert_eq!(v.status, Status::Fail);
    assert!(v.detail.starts_with("wg0 does not exist"), "{}", v.detail);
}

#[test]
fn missing_unreachable_rule_fails_the_kill_switch() {
    let mut c = Case::gateway();
    c.facts
        .rules_v4
        .retain(|r| r.action.as_deref() != Some("unreachable"));
    let r = c.run();
    let k = get(&r, "kill-switch");
    assert_eq!(k.status, Status::Fail, "{}", render_text(&r));
    assert!(
        k.detail.contains("would leave through uplink"),
        "{}",
        k.detail
    );
    assert!(k.detail.contains("priority 10001"), "{}", k.detail);
}

#[test]
fn kill_switch_off_by_profile_warns() {
    let mut c = Case::gateway();
    c.profile = inline(&format!(
        "{GATEWAY_NO_V6}via6 = \"fd00::1\"\nkill_switch = false\n"
    ));
    c.facts
        .rules_v4
        .retain(|r| r.action.as_deref() != Some("unreachable"));
    c.facts
        .rules_v6
        .retain(|r| r.action.as_deref() != Some("unreachable"));
    let r = c.run();
    assert_status(&r, "kill-switch", Status::Warn);
    assert_status(&r, "applied", Status::Pass);
    assert_eq!(r.exit, 0, "{}", render_text(&r));
}

#[test]
fn a_kernel_answer_the_model_cannot_explain_is_a_warning() {
    let mut c = Case::gateway();
    c.runner = gateway_runner().on(
        &["ip", "-j", "route", "get", TARGET4, "mark", "0x3"],
        route("uplink", "203.0.113.1", "main"),
    );
    let r = c.run();
    assert_status(&r, "route-lookup", Status::Fail);
    assert_status(&r, "kill-switch", Status::Warn);
}

#[test]
fn ipv6_blocked_without_via6_passes_and_a_leak_fails() {
    let mut c = Case::gateway();
    c.profile = inline(GATEWAY_NO_V6);
    c.runner = gateway_runner().on(
        &["ip", "-j", "-6", "route", "get", TARGET6, "mark", "0x3"],
        unreachable(),
    );
    let r = c.run();
    assert_status(&r, "ipv6", Status::Pass);
    assert!(get(&r, "ipv6").detail.contains("blocked"));
    c.runner = gateway_runner().on(
        &["ip", "-j", "-6", "route", "get", TARGET6, "mark", "0x3"],
        route("uplink", "2001:db8:1::1", "main"),
    );
    let r = c.run();
    let v6 = get(&r, "ipv6");
    assert_eq!(v6.status, Status::Fail);
    assert!(v6.detail.contains("it leaks"), "{}", v6.detail);
}

#[test]
fn wire_verdicts_on_the_gateway() {
    // Unmarked traffic from the LAN, none with DSCP 7: bleached or no marker.
    let mut c = Case::gateway();
    let mut w = WireSample {
        dscp: 7,
        seconds: 5.0,
        ..WireSample::default()
    };
    let l = w.lan_in.entry("eth0".into()).or_default();
    l.other = 40;
    l.other_dscps.insert(0, 40);
    c.wire = Some(w.clone());
    let r = c.run();
    assert_eq!(failed(&r), ["dscp-on-wire"], "{}", render_text(&r));
    let d = &get(&r, "dscp-on-wire").detail;
    assert!(
        d.contains("none with DSCP 7 (seen: DSCP 0 × 40)") && d.contains("bleaching"),
        "{d}"
    );
    assert!(
        !names(&r).contains(&"scrub"),
        "nothing left the VPN: no scrub verdict"
    );

    // On a host with both roles the LAN may have no marker at all: a warning.
    c.profile = inline(&format!(
        "[marker]\ngroup = 0\ndscp = 7\n{GATEWAY_NO_V6}via6 = \"fd00::1\"\n"
    ));
    let r = c.run();
    assert_eq!(status_of(&r, "dscp-on-wire"), [Status::Warn]);

    // Nothing at all: nothing to judge.
    let mut c = Case::gateway();
    c.wire = Some(WireSample {
        dscp: 7,
        seconds: 5.0,
        ..WireSample::default()
    });
    assert_status(&c.run(), "dscp-on-wire", Status::Warn);

    // DSCP 7 still on packets leaving the VPN: the scrub is broken.
    let mut c = Case::gateway();
    let mut w = lan_seen();
    w.vpn_out.with_dscp = 3;
    c.wire = Some(w);
    let r = c.run();
    assert_eq!(failed(&r), ["scrub"], "{}", render_text(&r));
}

#[test]
fn counters_that_do_not_move_warn() {
    let mut c = Case::gateway();
    c.counters = Some((
        vec![counted("DSCPROUTE-ROUTE", ROUTE_RULE, 5)],
        vec![counted("DSCPROUTE-ROUTE", ROUTE_RULE, 5)],
    ));
    let r = c.run();
    assert_status(&r, "counters", Status::Warn);
    assert!(get(&r, "counters").detail.contains("5 since apply"));
}

#[test]
fn applied_client_passes() {
    let r = Case::client().run();
    assert_eq!(
        names(&r),
        [
            "root",
            "tools",
            "kernel",
            "backend",
            "plan",
            "applied",
            "counters",
            "group",
            "mark-path",
            "dscp-on-wire",
            "dns"
        ]
    );
    assert!(
        r.checks.iter().all(|c| c.status == Status::Pass),
        "{}",
        render_text(&r)
    );
    assert!(get(&r, "group").detail.contains("transmission-da"));
    // The kernel check lists what the plan really uses (connection marks too).
    let k = &get(&r, "kernel").detail;
    assert!(k.contains("owner") && k.contains("DSCP"), "{k}");
}

#[test]
fn client_verdicts() {
    // Nobody in the group: a warning, not a failure.
    let mut c = Case::client();
    c.extras.processes.clear();
    assert_status(&c.run(), "group", Status::Warn);

    // Marked in OUTPUT but nothing left with the DSCP: rewritten later.
    let mut c = Case::client();
    c.wire.as_mut().unwrap().egress.clear();
    let r = c.run();
    assert_eq!(failed(&r), ["dscp-on-wire"], "{}", render_text(&r));
    assert!(get(&r, "dscp-on-wire").detail.contains("rewrites the DSCP"));

    // Not marked and not seen: the group was idle.
    c.counters = Some((vec![], vec![]));
    let r = c.run();
    assert_status(&r, "dscp-on-wire", Status::Warn);
    assert_status(&r, "counters", Status::Warn);

    // Not applied at all.
    let mut c = Case::client();
    c.facts = facts("client.json");
    let r = c.run();
    assert_eq!(failed(&r), ["applied"], "{}", render_text(&r));
}

#[test]
fn dns_verdicts() {
    let local = |conf: &str, comm: &str| {
        let mut c = Case::client();
        c.extras.resolv_conf = Some(conf.into());
        c.extras.processes.push(host::Proc {
            pid: 1,
            comm: comm.into(),
            fsgid: Some(0),
            ..host::Proc::default()
        });
        c.run()
    };
    let r = local("nameserver 127.0.0.53\n", "systemd-resolve");
    let d = get(&r, "dns");
    assert_eq!(d.status, Status::Warn);
    assert!(d.detail.contains("127.0.0.53") && d.detail.contains("systemd-resolve"));
    assert!(d.fix.is_some());
    let r = local("nameserver 192.168.50.1\n", "bash");
    assert_eq!(get(&r, "dns").status, Status::Warn);
    assert!(get(&r, "dns").detail.contains("on the local network"));
    let r = local("nameserver 9.9.9.9\n", "bash");
    assert_eq!(get(&r, "dns").status, Status::Pass);

    let mut c = Case::gateway();
    c.extras.processes.push(host::Proc {
        pid: 1,
        comm: "dnsmasq".into(),
        fsgid: Some(0),
        ..host::Proc::default()
    });
    let r = c.run();
    assert_eq!(get(&r, "dns").status, Status::Warn);
    assert!(
        get(&r, "dns")
            .detail
            .starts_with("dnsmasq runs on this gateway")
    );
}

#[test]
fn not_root_fails_root_and_claims_nothing_after_apply() {
    let mut c = Case::gateway();
    c.facts.is_root = false;
    let r = c.run();
    assert_eq!(r.applied, Applied::Unknown);
    assert_status(&r, "root", Status::Fail);
    assert!(!names(&r).contains(&"applied"));
    assert!(!names(&r).contains(&"dscp-on-wire"));
}

#[test]
fn missing_tools_name_their_debian_package() {
    let mut c = Case::gateway();
    c.facts.tools.insert("ip".into(), None);
    c.facts.tools.insert("iptables-save".into(), None);
    // sysctl(8) is not needed: sysctls are written to /proc/sys directly.
    c.facts.tools.insert("sysctl".into(), None);
    let r = c.run();
    let t = get(&r, "tools");
    assert_eq!(t.status, Status::Fail);
    assert!(
        t.detail
            .contains("missing: ip, iptables-save (Debian packages iproute2, iptables)"),
        "{}",
        t.detail
    );
    assert_eq!(t.fix.as_deref(), Some("apt-get install iproute2 iptables"));
}

#[test]
fn kernel_without_an_extension_fails_or_warns() {
    let mut c = Case::gateway();
    c.facts = facts("gateway-clean.json");
    c.facts.xt_matches.retain(|m| m != "dscp");
    c.extras.modules = Some(["xt_mark".to_string()].into_iter().collect());
    let r = c.run();
    let k = get(&r, "kernel");
    assert_eq!(k.status, Status::Fail, "{}", render_text(&r));
    assert!(k.detail.contains("match dscp (xt_dscp)"), "{}", k.detail);
    // Without a module list: unknown, a warning.
    c.extras.modules = None;
    assert_eq!(get(&c.run(), "kernel").status, Status::Warn);
    // Applied rules prove the extension works, list or not.
    let mut c = Case::gateway();
    c.facts.xt_matches.retain(|m| m != "dscp");
    c.extras.modules = Some(Default::default());
    assert_eq!(get(&c.run(), "kernel").status, Status::Pass);
}

#[test]
fn other_users_of_marks_and_backends() {
    let mut c = Case::gateway();
    c.extras.nft_ruleset = Some(
        "table ip mangle {\n\tchain PREROUTING {\n\t\tmeta mark set 0x3\n\t}\n}\n\
         table inet fw4 {\n\tchain mangle_prerouting {\n\t\tmeta mark set 0x10 counter\n\t\t\
         ip dscp set cs1\n\t}\n}\n"
            .into(),
    );
    c.extras.legacy_tables = vec!["filter".into()];
    c.extras.legacy_rules = Some(2);
    let r = c.run();
    let n = get(&r, "nftables");
    assert_eq!(n.status, Status::Warn);
    assert!(
        n.detail.contains("table inet fw4: meta mark set 0x10"),
        "{}",
        n.detail
    );
    assert!(n.detail.contains("ip dscp set cs1"));
    assert!(
        !n.detail.contains("table ip mangle"),
        "iptables-nft's own tables are the plan's"
    );
    assert_eq!(get(&r, "backend").status, Status::Warn);
    assert_eq!(r.exit, 0);
}

#[test]
fn a_profile_that_cannot_be_planned_fails_plan() {
    let mut c = Case::gateway();
    c.profile = inline(
        "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nmark = \"0x3\"\n\
         table = \"vpn\"\ntable_id = 100\npriority = 10000\n",
    );
    // The name is already another number in the system's rt_tables.
    c.facts.rt_tables.insert(
        0,
        crate::probe::RtTable {
            id: 200,
            name: "vpn".into(),
            source: "/etc/iproute2/rt_tables".into(),
        },
    );
    let r = c.run();
    assert_eq!(r.applied, Applied::Unknown);
    assert_eq!(failed(&r), ["plan"], "{}", render_text(&r));
    assert!(get(&r, "plan").detail.contains("already number 200"));
    assert!(!names(&r).contains(&"applied"));
}

#[test]
fn text_and_json_forms() {
    let mut c = Case::gateway();
    c.facts
        .sysctls
        .insert("net.ipv4.ip_forward".into(), "0".into());
    let r = c.run();
    let text = render_text(&r);
    assert!(
        text.starts_with("PASS  root: running as root\n      looked at: the effective user id\n"),
        "{text}"
    );
    assert!(
        text.contains("\nFAIL  forwarding: net.ipv4.ip_forward = 0"),
        "{text}"
    );
    assert!(
        text.contains("\n      fix: sysctl -w net.ipv4.ip_forward=1"),
        "{text}"
    );
    assert!(
        text.trim_end()
            .ends_with("1 failed: something is broken (see FAIL)."),
        "{text}"
    );
    for line in text.lines() {
        assert!(line.chars().count() <= 100, "too wide: {line}");
    }
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["exit"], 1);
    assert_eq!(v["status"], "fail");
    assert_eq!(v["applied"], "yes");
    assert_eq!(v["roles"], serde_json::json!(["gateway"]));
    let f = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "forwarding")
        .unwrap();
    assert_eq!(f["status"], "fail");
    assert!(
        f["looked_at"]
            .as_str()
            .unwrap()
            .contains("net.ipv4.ip_forward")
    );
    assert!(f["fix"].is_string());
    let p = &v["checks"][0];
    assert!(p.get("fix").is_none(), "no fix key on a PASS: {p}");
}

#[test]
fn kernel_gap_names_what_plan_and_apply_refuse_on() {
    let mut f: crate::probe::HostFacts = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/plan/client.json"
        ))
        .unwrap(),
    )
    .unwrap();
    f.kernel = Some("9.9.9-test".into());
    f.xt_matches.clear();
    f.xt_targets.clear();
    f.iptables_save = None;
    f.ip6tables_save = None;
    let profile =
        crate::profile::Profile::parse("[marker]\ngroup = 1001\ndscp = 7\n", "t").unwrap();
    let plan = crate::plan::plan(&profile, &f, crate::plan::PlanOptions::default()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("lib/modules/9.9.9-test");
    std::fs::create_dir_all(&dir).unwrap();
    // A kernel with the owner match but without connmark and the DSCP target.
    std::fs::write(
        dir.join("modules.dep"),
        "kernel/net/netfilter/xt_owner.ko:\n",
    )
    .unwrap();
    let gap = super::kernel_gap(&profile, &f, &plan, root.path()).expect("a gap");
    assert!(
        gap.contains("connmark") || gap.contains("CONNMARK"),
        "{gap}"
    );
    assert!(gap.contains("DSCP"), "{gap}");
    // Every needed module present: no gap.
    std::fs::write(
        dir.join("modules.dep"),
        "kernel/net/netfilter/xt_owner.ko:\nkernel/net/netfilter/xt_connmark.ko:\n\
         kernel/net/netfilter/xt_DSCP.ko:\nkernel/net/netfilter/xt_dscp.ko:\n\
         kernel/net/netfilter/xt_mark.ko:\nkernel/net/netfilter/xt_comment.ko:\n",
    )
    .unwrap();
    assert_eq!(super::kernel_gap(&profile, &f, &plan, root.path()), None);
}

/// Inserts `lines` into mangle PREROUTING (or OUTPUT) of the recorded
/// applied host, before or after our jump.
fn with_mangle(mut c: Case, chain: &str, ahead: bool, lines: &[&str]) -> Case {
    let save = c.facts.iptables_save.take().unwrap();
    let jump = format!("-A {chain} -m comment --comment dscproute -j ");
    let at = save.find(&jump).expect("our jump in the fixture");
    let at = if ahead {
        at
    } else {
        at + save[at..].find('\n').unwrap() + 1
    };
    let added: String = lines.iter().map(|l| format!("{l}\n")).collect();
    c.facts.iptables_save = Some(format!("{}{added}{}", &save[..at], &save[at..]));
    c
}

/// A foreign MARK with a full mask added after our jump: mark-path FAILs
/// naming the rule and both fixes (the plan check says it too).
#[test]
fn a_foreign_mark_after_our_jump_fails_mark_path() {
    let c = with_mangle(
        Case::gateway(),
        "PREROUTING",
        false,
        &["-A PREROUTING -i eth0 -j MARK --set-xmark 0x100/0xffffffff"],
    );
    let r = c.run();
    assert_status(&r, "mark-path", Status::Fail);
    let m = get(&r, "mark-path");
    assert!(
        m.detail.starts_with(
            "iptables -t mangle -A PREROUTING -i eth0 -j MARK --set-xmark 0x100/0xffffffff \
             rewrites mark bits 0xff after dscproute marks the packet"
        ),
        "{}",
        m.detail
    );
    let fix = m.fix.as_deref().unwrap();
    assert!(fix.contains("--set-xmark V/0xffffff00"), "{fix}");
    assert!(failed(&r).contains(&"plan"), "{}", render_text(&r));
    // Ahead of our jump it is harmless: our rule runs after it.
    let c = with_mangle(
        Case::gateway(),
        "PREROUTING",
        true,
        &["-A PREROUTING -i eth0 -j MARK --set-xmark 0x100/0xffffffff"],
    );
    assert_status(&c.run(), "mark-path", Status::Pass);
}

/// Native nftables after us on prerouting, e.g. `meta mark set 0x100` at
/// filter priority: FAIL, named as nft prints it.
#[test]
fn a_native_nft_mark_fails_mark_path() {
    let mut c = Case::gateway();
    c.facts.nft_ruleset = Some(
        "table inet fw {\n\tchain pre {\n\t\ttype filter hook prerouting priority filter; \
         policy accept;\n\t\tiifname \"eth0\" meta mark set 0x00000100\n\t}\n}\n"
            .into(),
    );
    let r = c.run();
    assert_status(&r, "mark-path", Status::Fail);
    assert!(
        get(&r, "mark-path")
            .detail
            .starts_with("nft table inet fw chain pre: iifname \"eth0\" meta mark set 0x00000100"),
        "{}",
        render_text(&r)
    );
}

/// An ACCEPT (or a chain that accepts) ahead of our jump: the packets it
/// takes never reach our chain. FAIL on the gateway and on the client.
#[test]
fn an_accept_ahead_of_our_jump_fails_mark_path() {
    for (case, chain) in [
        (Case::gateway as fn() -> Case, "PREROUTING"),
        (Case::client, "OUTPUT"),
    ] {
        let c = with_mangle(
            case(),
            chain,
            true,
            &[&format!("-A {chain} -p udp -j ACCEPT")],
        );
        let r = c.run();
        assert_status(&r, "mark-path", Status::Fail);
        let m = get(&r, "mark-path");
        assert!(
            m.detail.starts_with(&format!(
                "iptables -t mangle -A {chain} -p udp -j ACCEPT comes before dscproute's jump"
            )),
            "{}",
            m.detail
        );
        assert!(
            m.fix.as_deref().unwrap().contains("! --dscp 7"),
            "{:?}",
            m.fix
        );
        // The plan cannot see it (its jump is in place): only mark-path fails.
        assert_eq!(failed(&r), ["mark-path"], "{}", render_text(&r));
    }
}

/// A user or cgroup marker: doctor names the processes it covers (pid and
/// comm, at most ten and a count), warns when there are none, and fails a
/// unit that has no cgroup.
#[test]
fn who_a_user_or_cgroup_marker_covers() {
    let proc_ = |pid: u32, comm: &str, fsuid: u32, cgroup: &str| host::Proc {
        pid,
        comm: comm.into(),
        fsuid: Some(fsuid),
        cgroup: Some(cgroup.into()),
        ..host::Proc::default()
    };
    let mut c = Case::client();
    c.profile = Profile::parse("[marker]\nuser = 1001\ndscp = 7\n", "u.toml").unwrap();
    c.extras.processes = (1..=12).map(|i| proc_(i, "aria2c", 1001, "x")).collect();
    c.extras.processes.push(proc_(99, "sshd", 0, "x"));
    let r = c.run();
    let d = &get(&r, "user").detail;
    assert!(
        d.starts_with("12 processes run as user 1001 (uid 1001): 1 aria2c, 2 aria2c"),
        "{d}"
    );
    assert!(
        d.ends_with("10 aria2c, and 2 more") && !d.contains("sshd"),
        "{d}"
    );

    let mut c = Case::client();
    c.profile = Profile::parse("[marker]\ncgroup = \"dl\"\ndscp = 7\n", "c.toml").unwrap();
    c.extras.processes = vec![
        proc_(5, "curl", 0, "dl/job-1"),
        proc_(6, "wget", 0, "dl"),
        proc_(7, "other", 0, "dlx"),
    ];
    let r = c.run();
    let d = &get(&r, "cgroup").detail;
    assert_eq!(d, "2 processes run in cgroup dl: 5 curl, 6 wget");
    c.extras.processes.truncate(0);
    let r = c.run();
    assert_status(&r, "cgroup", Status::Warn);
    assert!(
        get(&r, "cgroup")
            .fix
            .as_deref()
            .is_some_and(|f| f.contains("dscproute exec"))
    );

    let mut c = Case::client();
    c.profile = Profile::parse("[marker]\nunit = \"app.service\"\ndscp = 7\n", "s.toml").unwrap();
    let r = c.run();
    assert_status(&r, "unit", Status::Fail);
}
