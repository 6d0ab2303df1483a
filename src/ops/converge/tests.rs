//! Check and repair over recorded gateway facts and the recording runner.

use super::super::tests::{Scratch, ok_runner, profile};
use super::*;
use crate::apply::{Journal, TxnState};

fn req(p: &Profile) -> Request<'_> {
    Request {
        profile: p,
        source: "gateway.toml",
        confirm_secs: None,
        previewed: None,
    }
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
        Found::Waiting(Wait::InterfaceMissing("wg0".into()))
    );
    let down = applied_but(|f| {
        let l = wg0(f);
        l.flags.retain(|x| x != "UP" && x != "LOWER_UP");
        l.state = "DOWN".into();
    });
    assert_eq!(
        check_of(&down),
        Found::Waiting(Wait::InterfaceDown("wg0".into()))
    );
    let bare = applied_but(|f| wg0(f).addrs.retain(|a| a.family != "inet"));
    assert_eq!(
        check_of(&bare),
        Found::Waiting(Wait::NoNextHop("wg0".into()))
    );
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
