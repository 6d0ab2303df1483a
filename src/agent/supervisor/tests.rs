//! The loop against a scripted world: a fake clock that only the fake
//! event source moves (as the real one blocks), a fake host whose state the
//! script changes, and a fake `Converge` over that host.

use super::*;
use crate::agent::event::{Addr, Event, Family, Route, Rule};
use crate::agent::watch::WatchSet;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::rc::Rc;

mod failover;

#[derive(Clone)]
struct FakeClock {
    base: Instant,
    now: Rc<Cell<Instant>>,
}

impl FakeClock {
    fn new() -> FakeClock {
        let base = Instant::now();
        FakeClock {
            base,
            now: Rc::new(Cell::new(base)),
        }
    }

    fn elapsed(&self) -> Duration {
        self.now.get() - self.base
    }

    fn advance(&self, by: Duration) {
        self.now.set(self.now.get() + by);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Instant {
        self.now.get()
    }
}

/// The host as the fake `Converge` sees it.
struct World {
    vpn_exists: bool,
    vpn_up: bool,
    route: bool,
    rule: bool,
    /// The kill switch: needs no VPN, so it is repaired while waiting.
    kill_switch: bool,
    fail_repairs: bool,
    stop: bool,
    /// When each check and each repair attempt ran (since start).
    checks: Vec<Duration>,
    repairs: Vec<Duration>,
}

impl World {
    fn whole() -> World {
        World {
            vpn_exists: true,
            vpn_up: true,
            route: true,
            rule: true,
            kill_switch: true,
            fail_repairs: false,
            stop: false,
            checks: Vec::new(),
            repairs: Vec::new(),
        }
    }
}

type Shared = Rc<RefCell<World>>;

enum Kind {
    /// The kernel sends this event.
    Deliver(Event),
    /// The host changes without an event (a netfilter flush).
    Silent,
    /// A signal interrupts the wait.
    Interrupt,
}

struct Step {
    at: Duration,
    kind: Kind,
    change: Box<dyn FnOnce(&mut World)>,
}

/// Delivers the script in time order, moving the clock as a blocking
/// source would: to the step's time, or by the whole timeout.
struct FakeSource {
    clock: FakeClock,
    world: Shared,
    script: VecDeque<Step>,
}

impl EventSource for FakeSource {
    fn next(&mut self, timeout: Duration) -> io::Result<Option<Event>> {
        let until = self.clock.now() + timeout;
        while self
            .script
            .front()
            .is_some_and(|s| self.clock.base + s.at <= until)
        {
            let step = self.script.pop_front().unwrap();
            let at = self.clock.base + step.at;
            if at > self.clock.now() {
                self.clock.now.set(at);
            }
            (step.change)(&mut self.world.borrow_mut());
            match step.kind {
                Kind::Deliver(e) => return Ok(Some(e)),
                Kind::Interrupt => return Ok(None),
                Kind::Silent => {}
            }
        }
        self.clock.now.set(until);
        Ok(None)
    }
}

const REPAIR_COST: Duration = Duration::from_millis(20);

struct FakeHost {
    clock: FakeClock,
    world: Shared,
}

impl Converge for FakeHost {
    fn check(&mut self) -> Result<Check, ConvergeError> {
        let mut w = self.world.borrow_mut();
        w.checks.push(self.clock.elapsed());
        let waiting = if !w.vpn_exists {
            Some(WaitReason::InterfaceMissing("wg0".into()))
        } else if !w.vpn_up {
            Some(WaitReason::InterfaceDown("wg0".into()))
        } else {
            None
        };
        Ok(if let Some(reason) = waiting {
            if w.kill_switch {
                Check::Waiting(reason)
            } else {
                Check::MissingWhileWaiting {
                    reason,
                    missing: vec!["kill switch".into()],
                    kill_switch: true,
                }
            }
        } else {
            let missing: Vec<String> = [
                (w.route, "route"),
                (w.rule, "rule"),
                (w.kill_switch, "kill switch"),
            ]
            .iter()
            .filter(|(present, _)| !present)
            .map(|(_, what)| what.to_string())
            .collect();
            if missing.is_empty() {
                Check::Whole
            } else {
                Check::Missing(missing)
            }
        })
    }

    fn repair(&mut self, missing: &[String]) -> Result<Vec<String>, ConvergeError> {
        let mut w = self.world.borrow_mut();
        w.repairs.push(self.clock.elapsed());
        self.clock.advance(REPAIR_COST);
        if w.fail_repairs {
            return Err(ConvergeError::Transient("iptables: resource busy".into()));
        }
        // What needs the VPN only when it is usable, as the real planner.
        if w.vpn_exists && w.vpn_up {
            (w.route, w.rule) = (true, true);
        }
        w.kill_switch = true;
        Ok(missing.iter().map(|m| format!("added {m}")).collect())
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn wg0(up: bool) -> Event {
    let (index, name) = (7, "wg0".to_string());
    if up {
        Event::LinkUp { index, name }
    } else {
        Event::LinkDown { index, name }
    }
}

fn route_del(table: u32) -> Event {
    Event::RouteDel(Route {
        family: Family::V4,
        table,
        dst: None,
        dst_len: 0,
        oif: Some(7),
        proto: 213,
    })
}

fn deliver(at: Duration, event: Event, change: impl FnOnce(&mut World) + 'static) -> Step {
    Step {
        at,
        kind: Kind::Deliver(event),
        change: Box::new(change),
    }
}

fn event(at: Duration, event: Event) -> Step {
    deliver(at, event, |_| {})
}

fn silent(at: Duration, change: impl FnOnce(&mut World) + 'static) -> Step {
    Step {
        at,
        kind: Kind::Silent,
        change: Box::new(change),
    }
}

struct Outcome {
    exit: Exit,
    reports: Vec<Report>,
    world: World,
    stats: Stats,
    ended_at: Duration,
}

/// Runs the supervisor over `script` from a `start` world until `end` (or
/// until the script sets `stop`).
fn run(start: World, script: Vec<Step>, end: Duration) -> Outcome {
    let clock = FakeClock::new();
    let world = Rc::new(RefCell::new(start));
    let source = FakeSource {
        clock: clock.clone(),
        world: world.clone(),
        script: script.into(),
    };
    let host = FakeHost {
        clock: clock.clone(),
        world: world.clone(),
    };
    let mut watch = Watch::new(WatchSet::new(vec!["wg0".into()], 100, vec![10000]));
    watch.learn("wg0", 7);
    let mut sup = Supervisor::new(source, host, clock.clone(), watch, Timing::default());
    let mut reports = Vec::new();
    let exit = sup.run(
        || world.borrow().stop || clock.elapsed() >= end,
        |r| reports.push(r.clone()),
    );
    let stats = sup.stats().clone();
    drop(sup);
    Outcome {
        exit,
        reports,
        world: Rc::try_unwrap(world).ok().unwrap().into_inner(),
        stats,
        ended_at: clock.elapsed(),
    }
}

fn kinds(reports: &[Report]) -> Vec<&'static str> {
    reports
        .iter()
        .map(|r| match r {
            Report::Repaired { .. } => "repaired",
            Report::Held { .. } => "held",
            Report::RepairFailed { .. } => "failed",
            Report::Waiting { .. } => "waiting",
            Report::Whole { .. } => "whole",
            Report::CheckFailed { .. } => "check failed",
            Report::Switched { .. } => "switched",
        })
        .collect()
}

#[test]
fn a_link_flap_is_one_repair_after_the_link_is_back() {
    // The kernel drops our routes with the link; the VPN client brings it
    // back 40 ms later and re-adds its address.
    let script = vec![
        deliver(ms(1000), wg0(false), |w| {
            (w.vpn_up, w.route) = (false, false);
        }),
        deliver(ms(1040), wg0(true), |w| w.vpn_up = true),
        event(
            ms(1045),
            Event::AddrNew(Addr {
                index: 7,
                addr: "10.8.0.2".parse().unwrap(),
                prefix_len: 24,
            }),
        ),
    ];
    let out = run(World::whole(), script, secs(3));
    assert_eq!(kinds(&out.reports), ["repaired"], "{:?}", out.reports);
    assert_eq!(out.world.repairs.len(), 1);
    let at = out.world.repairs[0];
    assert!(
        at >= ms(1045) && at <= ms(1045) + Timing::default().debounce,
        "repair at {at:?}: after the link is back and the burst is quiet"
    );
    let line = out.reports[0].to_string();
    assert_eq!(
        line,
        "repaired after link wg0 down (+2 more events) in 20 ms (165 ms after the first event): \
         missing route; did added route"
    );
    assert_eq!(out.stats.repairs, 1);
}

#[test]
fn a_long_outage_waits_once_then_repairs_once() {
    let script = vec![
        deliver(secs(1), wg0(false), |w| {
            (w.vpn_up, w.route) = (false, false)
        }),
        deliver(secs(20), wg0(true), |w| w.vpn_up = true),
    ];
    let out = run(World::whole(), script, secs(30));
    assert_eq!(
        kinds(&out.reports),
        ["waiting", "repaired"],
        "{:?}",
        out.reports
    );
    assert_eq!(
        out.reports[0].to_string(),
        "waiting after link wg0 down: VPN interface wg0 is down; repairing when it is back"
    );
    // Checks went on every 5 s during the outage, silently.
    assert!(out.world.checks.len() >= 5, "{:?}", out.world.checks);
    assert_eq!(out.world.repairs.len(), 1);
    let at = out.world.repairs[0];
    assert!(at > secs(20) && at < secs(21), "repair at {at:?}");
}

#[test]
fn a_burst_of_20_route_deletions_is_one_repair() {
    let mut script = vec![silent(ms(999), |w| w.route = false)];
    script.extend((0..20).map(|i| event(ms(1000 + 5 * i), route_del(100))));
    let out = run(World::whole(), script, secs(3));
    assert_eq!(out.world.repairs.len(), 1, "{:?}", out.world.repairs);
    assert_eq!(
        out.world.checks.len(),
        2,
        "start and one for the burst: {:?}",
        out.world.checks
    );
    match &out.reports[..] {
        [Report::Repaired { trigger, .. }] => assert_eq!(
            *trigger,
            Trigger::Events {
                first: "route IPv4 default table 100 deleted".into(),
                count: 20
            }
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_steady_stream_of_events_cannot_postpone_the_repair_past_max_delay() {
    let mut script = vec![silent(ms(999), |w| w.route = false)];
    script.extend((0..60).map(|i| event(ms(1000 + 50 * i), route_del(100))));
    let out = run(World::whole(), script, secs(5));
    let first = out.world.repairs[0];
    assert!(
        first <= ms(1000) + Timing::default().max_delay,
        "first repair at {first:?}"
    );
    assert_eq!(out.world.repairs.len(), 1, "nothing else went missing");
}

#[test]
fn events_of_other_interfaces_tables_and_rules_trigger_nothing() {
    let other = |up| {
        let (index, name) = (9, "eth1".to_string());
        if up {
            Event::LinkUp { index, name }
        } else {
            Event::LinkDown { index, name }
        }
    };
    let rule = |priority, proto| Rule {
        family: Family::V4,
        priority: Some(priority),
        table: 200,
        proto,
    };
    let ours_added = Route {
        family: Family::V6,
        table: 100,
        dst: None,
        dst_len: 0,
        oif: Some(7),
        proto: 213,
    };
    let script = vec![
        event(ms(500), other(false)),
        event(ms(600), other(true)),
        event(
            ms(700),
            Event::AddrDel(Addr {
                index: 9,
                addr: "192.0.2.1".parse().unwrap(),
                prefix_len: 24,
            }),
        ),
        event(
            ms(800),
            Event::RouteDel(Route {
                table: 200,
                oif: Some(9),
                ..ours_added.clone()
            }),
        ),
        event(ms(900), Event::RuleDel(rule(20000, 3))),
        event(ms(1000), Event::RouteNew(ours_added)),
        event(ms(1100), Event::RuleNew(rule(10000, 213))),
    ];
    let out = run(World::whole(), script, secs(4));
    assert_eq!(out.world.checks, [Duration::ZERO], "only the start check");
    assert!(out.world.repairs.is_empty());
    assert!(out.reports.is_empty(), "{:?}", out.reports);
}

#[test]
fn the_drift_check_runs_on_schedule_and_repairs_silent_drift() {
    let script = vec![silent(secs(7), |w| w.rule = false)];
    let out = run(World::whole(), script, ms(16_500));
    assert_eq!(
        out.world.checks,
        [secs(0), secs(5), secs(10), secs(15) + REPAIR_COST],
        "one check at start, then 5 s after the end of the last one"
    );
    assert_eq!(out.world.repairs, [secs(10)]);
    assert_eq!(
        out.reports[0].to_string(),
        "repaired after periodic check in 20 ms: missing rule; did added rule"
    );
}

#[test]
fn a_missing_interface_is_reported_once_not_on_every_check() {
    let start = World {
        vpn_exists: false,
        route: false,
        ..World::whole()
    };
    let script = vec![deliver(
        ms(31_000),
        Event::LinkUp {
            index: 12,
            name: "wg0".into(),
        },
        |w| w.vpn_exists = true,
    )];
    let out = run(start, script, secs(33));
    assert_eq!(
        kinds(&out.reports),
        ["waiting", "repaired"],
        "{:?}",
        out.reports
    );
    assert!(
        out.world.checks.len() >= 7,
        "checked all along: {:?}",
        out.world.checks
    );
    let at = out.world.repairs[0];
    assert!(at > secs(31) && at < secs(32), "repair at {at:?}");
    match &out.reports[1] {
        Report::Repaired { trigger, .. } => assert_eq!(
            trigger.to_string(),
            "link wg0 re-created (index 7 -> 12), up"
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_stop_flag_ends_the_loop_when_the_signal_arrives() {
    let script = vec![Step {
        at: ms(2345),
        kind: Kind::Interrupt,
        change: Box::new(|w| w.stop = true),
    }];
    let out = run(World::whole(), script, secs(60));
    assert_eq!(out.exit, Exit::Stopped);
    assert_eq!(out.ended_at, ms(2345), "at once, not at the next check");
    assert_eq!(out.world.checks, [Duration::ZERO]);
}

#[test]
fn a_stop_before_the_start_check_changes_nothing() {
    let start = World {
        route: false,
        stop: true,
        ..World::whole()
    };
    let out = run(start, vec![], secs(60));
    assert_eq!(out.exit, Exit::Stopped);
    assert!(out.world.checks.is_empty() && out.world.repairs.is_empty());
}

#[test]
fn a_failing_repair_is_reported_once_and_retried_on_the_drift_check_only() {
    let start = World {
        route: false,
        fail_repairs: true,
        ..World::whole()
    };
    let script = vec![
        // Events right after a failure do not retry at once.
        event(ms(500), route_del(100)),
        event(ms(1500), route_del(100)),
        silent(ms(6000), |w| w.fail_repairs = false),
    ];
    let out = run(start, script, ms(10_500));
    let cost = REPAIR_COST;
    assert_eq!(
        out.world.repairs,
        [secs(0), secs(5) + cost, secs(10) + 2 * cost],
        "start, then every drift check until it works"
    );
    assert_eq!(kinds(&out.reports), ["failed", "repaired"]);
    assert_eq!(
        out.reports[0].to_string(),
        "repair after start failed in 20 ms: missing route: iptables: resource busy; \
         next try in 5000 ms"
    );
    assert_eq!((out.stats.failed_repairs, out.stats.repairs), (2, 1));
}

#[test]
fn a_fatal_error_ends_the_loop() {
    struct Broken;
    impl Converge for Broken {
        fn check(&mut self) -> Result<Check, ConvergeError> {
            Err(ConvergeError::Fatal("profile gone".into()))
        }
        fn repair(&mut self, _: &[String]) -> Result<Vec<String>, ConvergeError> {
            unreachable!()
        }
    }
    let clock = FakeClock::new();
    let source = FakeSource {
        clock: clock.clone(),
        world: Rc::new(RefCell::new(World::whole())),
        script: VecDeque::new(),
    };
    let watch = Watch::new(WatchSet::new(vec![], 100, vec![]));
    let mut sup = Supervisor::new(source, Broken, clock, watch, Timing::default());
    assert_eq!(
        sup.run(|| false, |_| {}),
        Exit::Fatal("profile gone".into())
    );
}

/// A boot: the agent starts before the VPN, nothing is in place. The kill
/// switch goes in at once (reported once, as what was put in place while
/// waiting); checks during the wait change nothing; the route follows the
/// link within the debounce.
#[test]
fn a_boot_before_the_vpn_puts_the_kill_switch_in_place_then_waits() {
    let start = World {
        vpn_exists: false,
        route: false,
        rule: false,
        kill_switch: false,
        ..World::whole()
    };
    let script = vec![deliver(
        secs(12),
        Event::LinkUp {
            index: 7,
            name: "wg0".into(),
        },
        |w| w.vpn_exists = true,
    )];
    let out = run(start, script, secs(14));
    assert_eq!(
        kinds(&out.reports),
        ["held", "repaired"],
        "{:?}",
        out.reports
    );
    assert_eq!(out.world.repairs[0], Duration::ZERO, "at start, not later");
    assert_eq!(
        out.reports[0].to_string(),
        "kill switch in place, waiting for wg0 (VPN interface wg0 does not exist): after start \
         in 20 ms, did added kill switch. The routes through wg0 follow when it is back"
    );
    assert_eq!(out.world.repairs.len(), 2, "{:?}", out.world.repairs);
    let at = out.world.repairs[1];
    assert!(
        at > secs(12) && at <= secs(12) + Timing::default().debounce,
        "route repair at {at:?}"
    );
    assert!(out.world.route && out.world.rule && out.world.kill_switch);
    assert_eq!(out.stats.repairs, 2);
}

/// While waiting, the kill switch is kept too: a firewall reload or a hand
/// that removes it during the outage is repaired on the next check.
#[test]
fn a_kill_switch_lost_while_waiting_is_put_back_on_the_drift_check() {
    let script = vec![
        deliver(secs(1), wg0(false), |w| {
            (w.vpn_up, w.route) = (false, false)
        }),
        silent(secs(3), |w| w.kill_switch = false),
    ];
    let out = run(World::whole(), script, secs(8));
    assert_eq!(
        kinds(&out.reports),
        ["waiting", "held"],
        "{:?}",
        out.reports
    );
    let at = out.world.repairs[0];
    assert!(at > secs(3) && at <= secs(7), "repaired at {at:?}");
    assert!(out.world.kill_switch && !out.world.route);
}
