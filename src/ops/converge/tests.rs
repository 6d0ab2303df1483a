//! Check and repair over recorded gateway facts and the recording runner.

use super::super::tests::{Scratch, ok_runner, profile};
use super::*;
use crate::apply::{Journal, TxnState};
use crate::probe::HostFacts;

fn req(p: &Profile) -> Request<'_> {
    Request {
        profile: p,
        source: "gateway.toml",
        confirm_secs: None,
        previewed: None,
        vpn_may_wait: true,
    }
}

/// A clean gateway whose VPN interface is not there yet (a fresh boot).
fn booting() -> Scratch {
    let s = Scratch::new("gateway-clean.json");
    s.facts.lock().unwrap().links.retain(|l| l.name != "wg0");
    s
}

/// The applied gateway, changed by `f` (what an event did to it).
fn applied_but(f: impl FnOnce(&mut HostFacts)) -> Scratch {
    let s = Scratch::new("gateway-applied.json");
    f(&mut s.facts.lock().unwrap());
    s
}

fn check_of(s: &Scratch) -> Found {
    let runner = ok_runner();
    let p = profile("gateway.toml");
    s.with(&runner, |h| check(h, &p)).unwrap()
}

/// Waiting, with all that does not need the VPN in place.
fn waiting(wait: Wait) -> Found {
    Found::Waiting {
        wait,
        missing: vec![],
    }
}

fn wg0(f: &mut HostFacts) -> &mut crate::probe::Link {
    f.links.iter_mut().find(|l| l.name == "wg0").unwrap()
}

#[test]
fn an_applied_gateway_is_whole() {
    assert_eq!(
        check_of(&Scratch::new("gateway-applied.json")),
        Found::Whole
    );
}

#[test]
fn a_clean_gateway_misses_every_step_by_label() {
    let Found::Missing(m) = check_of(&Scratch::new("gateway-clean.json")) else {
        panic!("not missing")
    };
    for want in [
        "route default via 10.8.0.1 dev wg0 table 100",
        "IPv6 route default via fd00::1 dev wg0 table 100",
        "sysctl net.ipv4.conf.wg0.rp_filter=2",
        "IPv4 policy rule pref 10000",
    ] {
        assert!(m.iter().any(|l| l == want), "{want} not in {m:#?}");
    }
    assert!(m.iter().any(|l| l.starts_with("chain DSCPROUTE")), "{m:#?}");
}

#[test]
fn a_missing_down_or_unaddressed_vpn_waits() {
    let gone = applied_but(|f| f.links.retain(|l| l.name != "wg0"));
    assert_eq!(
        check_of(&gone),
        waiting(Wait::InterfaceMissing("wg0".into()))
    );
    let down = applied_but(|f| {
        let l = wg0(f);
        l.flags.retain(|x| x != "UP" && x != "LOWER_UP");
        l.state = "DOWN".into();
    });
    assert_eq!(check_of(&down), waiting(Wait::InterfaceDown("wg0".into())));
    let bare = applied_but(|f| wg0(f).addrs.retain(|a| a.family != "inet"));
    assert_eq!(check_of(&bare), waiting(Wait::NoNextHop("wg0".into())));
}

/// The kernel dropped our table's routes with the link: only they are
/// missing, and only they are added back, journaled as an apply.
#[test]
fn routes_gone_are_missing_alone_and_repaired_alone() {
    let s = applied_but(|f| {
        f.routes_v4.retain(|r| r.table != "100" && r.table != "vpn");
        f.routes_v6.retain(|r| r.table != "100" && r.table != "vpn");
    });
    let routes = vec![
        "route default via 10.8.0.1 dev wg0 table 100".to_string(),
        "IPv6 route default via fd00::1 dev wg0 table 100".to_string(),
    ];
    assert_eq!(check_of(&s), Found::Missing(routes.clone()));
    let runner = ok_runner();
    let p = profile("gateway.toml");
    // The executor reads each sysctl's old value before it writes.
    let sys = s.dir.path().join("root/proc/sys/net");
    for (dir, leaf) in [("ipv4", "ip_forward"), ("ipv6/conf/all", "forwarding")] {
        std::fs::create_dir_all(sys.join(dir)).unwrap();
        std::fs::write(sys.join(dir).join(leaf), "0\n").unwrap();
    }
    let did = s.with(&runner, |h| repair(h, &req(&p))).unwrap();
    assert_eq!(did, routes);
    let calls: Vec<String> = runner.calls().iter().map(|c| c.join(" ")).collect();
    assert_eq!(calls.len(), 2, "{calls:#?}");
    assert!(
        calls
            .iter()
            .all(|c| c.contains("route") && c.contains("table 100"))
    );
    let j = s
        .with(&runner, |h| Journal::load(&h.state))
        .unwrap()
        .expect("journaled");
    assert_eq!(j.state, TxnState::Applied);
    assert_eq!(j.steps.len(), 2);
}

#[test]
fn a_repair_of_a_whole_host_runs_nothing() {
    let s = Scratch::new("gateway-applied.json");
    let runner = ok_runner();
    let p = profile("gateway.toml");
    assert_eq!(
        s.with(&runner, |h| repair(h, &req(&p))).unwrap(),
        Vec::<String>::new()
    );
    assert!(runner.calls().is_empty());
}

#[test]
fn a_repair_while_another_apply_holds_the_lock_is_not_now() {
    let s = Scratch::new("gateway-clean.json");
    let runner = ok_runner();
    let p = profile("gateway.toml");
    let e = s.with(&runner, |h| {
        let _held = h.engine().lock().unwrap();
        repair(h, &req(&p)).unwrap_err()
    });
    assert_eq!(e.kind(), crate::ops::Kind::NotNow, "{e}");
    assert!(runner.calls().is_empty());
}

/// A fresh boot, wg0 not there yet: waiting, and missing everything that
/// does not need wg0 (the kill switch, the lookups, the marking), nothing
/// that does.
#[test]
fn a_boot_before_the_vpn_waits_missing_all_but_the_vpn_steps() {
    let Found::Waiting { wait, missing } = check_of(&booting()) else {
        panic!("not waiting")
    };
    assert_eq!(wait, Wait::InterfaceMissing("wg0".into()));
    for want in [
        "IPv4 kill switch pref 10001",
        "IPv6 kill switch pref 10001",
        "IPv4 policy rule pref 10000",
        "sysctl net.ipv4.ip_forward=1",
        "IPv4 mangle jump PREROUTING -> DSCPROUTE-ROUTE",
    ] {
        assert!(
            missing.iter().any(|l| l == want),
            "{want} not in {missing:#?}"
        );
    }
    assert!(
        !missing
            .iter()
            .any(|l| l.contains("route default") || l.contains("wg0.rp_filter")),
        "{missing:#?}"
    );
}

/// The repair while waiting runs those steps as one journaled apply; a
/// plain apply (the CLI's) still refuses for the missing interface.
#[test]
fn a_repair_while_waiting_applies_the_kill_switch_and_no_route() {
    let s = booting();
    let p = profile("gateway.toml");
    let plain = Request {
        vpn_may_wait: false,
        ..req(&p)
    };
    let runner = ok_runner();
    let e = s.with(&runner, |h| repair(h, &plain)).unwrap_err();
    assert!(
        e.to_string().contains("interface wg0 does not exist"),
        "{e}"
    );
    assert!(runner.calls().is_empty());

    // The executor reads each sysctl's old value before it writes.
    let sys = s.dir.path().join("root/proc/sys/net");
    for (dir, leaf) in [("ipv4", "ip_forward"), ("ipv6/conf/all", "forwarding")] {
        std::fs::create_dir_all(sys.join(dir)).unwrap();
        std::fs::write(sys.join(dir).join(leaf), "0\n").unwrap();
    }
    let did = s.with(&runner, |h| repair(h, &req(&p))).unwrap();
    assert!(
        did.iter().any(|l| l == "IPv4 kill switch pref 10001"),
        "{did:#?}"
    );
    // Commands and the ip -batch lines they were fed, one a line.
    let ran: Vec<String> = runner
        .calls()
        .into_iter()
        .map(|argv| (argv, String::new()))
        .chain(runner.stdins())
        .collect::<Vec<_>>()
        .iter()
        .flat_map(|(argv, stdin)| {
            let mut lines = vec![argv.join(" ")];
            lines.extend(stdin.lines().map(str::to_string));
            lines
        })
        .collect();
    for fam in ["-4", "-6"] {
        let batch = ran.iter().position(|l| l == &format!("ip {fam} -batch -"));
        assert!(batch.is_some(), "{ran:#?}");
    }
    assert_eq!(
        ran.iter()
            .filter(|l| l.contains("rule add pref 10001 fwmark 0x3/0xff unreachable"))
            .count(),
        2,
        "the kill switch, both families: {ran:#?}"
    );
    assert!(
        !ran.iter()
            .any(|l| l.contains("route add") || l.contains("wg0.rp_filter")),
        "{ran:#?}"
    );
    let j = s
        .with(&runner, |h| Journal::load(&h.state))
        .unwrap()
        .expect("journaled");
    assert_eq!(j.state, TxnState::Applied);
    assert_eq!(j.steps.len(), did.len());
}
