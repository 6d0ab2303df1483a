//! Failover against a scripted world: one class over wg0 then wg1, link
//! states the script changes, answers to the active checks as functions of
//! the fake time, and a fake `Converge` that routes the class through its
//! first uplink that is up and not held down, as the real planner does.

use super::*;
use crate::agent::converge::ClassChoice;
use crate::agent::health::{Health, Probe, Prober};
use crate::probe::Unhealthy;

const UPLINKS: [&str; 2] = ["wg0", "wg1"];

/// The class's side of the world.
#[derive(Default)]
struct Net {
    /// Link down, by name.
    down: Vec<&'static str>,
    /// The uplink the class's table routes through now (None: no route).
    route: Option<String>,
    held_down: Vec<String>,
    flushed: Vec<Duration>,
    /// When each probe of each uplink ran.
    probes: Vec<(Duration, String)>,
}

type SharedNet = Rc<RefCell<Net>>;

struct ClassHost {
    clock: FakeClock,
    net: SharedNet,
}

impl ClassHost {
    fn chosen(&self) -> Option<String> {
        let n = self.net.borrow();
        UPLINKS
            .iter()
            .find(|u| !n.down.contains(u) && !n.held_down.iter().any(|h| h == *u))
            .map(|u| u.to_string())
    }
}

impl Converge for ClassHost {
    fn check(&mut self) -> Result<Check, ConvergeError> {
        let want = self.chosen();
        Ok(if self.net.borrow().route == want {
            Check::Whole
        } else {
            Check::Missing(vec!["route".into()])
        })
    }

    fn repair(&mut self, _: &[String]) -> Result<Vec<String>, ConvergeError> {
        self.clock.advance(REPAIR_COST);
        let want = self.chosen();
        self.net.borrow_mut().route = want;
        Ok(vec!["route replaced".into()])
    }

    fn set_unhealthy(&mut self, down: Vec<Unhealthy>) {
        self.net.borrow_mut().held_down = down.into_iter().map(|u| u.interface).collect();
    }

    fn choices(&self) -> Vec<ClassChoice> {
        vec![ClassChoice {
            class: "torrent".into(),
            uplink: self.net.borrow().route.clone(),
            why: "first healthy".into(),
            uplinks: UPLINKS.iter().map(|u| u.to_string()).collect(),
        }]
    }

    fn flush(&mut self, _: &str, _: &str) -> Option<String> {
        let at = self.clock.elapsed();
        self.net.borrow_mut().flushed.push(at);
        Some("flushed".into())
    }
}

/// Answers by uplink and time since start.
type Answers = Box<dyn Fn(&str, Duration) -> bool>;

struct ScriptedProber {
    clock: FakeClock,
    net: SharedNet,
    answers: Answers,
}

impl Prober for ScriptedProber {
    fn probe(&mut self, probes: &[&Probe]) -> Vec<bool> {
        let at = self.clock.elapsed();
        probes
            .iter()
            .map(|p| {
                self.net.borrow_mut().probes.push((at, p.interface.clone()));
                !self.net.borrow().down.contains(&p.interface.as_str())
                    && (self.answers)(&p.interface, at)
            })
            .collect()
    }
}

fn checks(every_ms: u64, fails: u32) -> Vec<Probe> {
    UPLINKS
        .iter()
        .map(|u| Probe {
            class: "torrent".into(),
            interface: u.to_string(),
            ping: "10.9.0.1".parse().unwrap(),
            every: ms(every_ms),
            fails,
        })
        .collect()
}

/// When, from, to, detected in.
type Switch = (Duration, Option<String>, Option<String>, Option<Duration>);
/// When, what the kernel says, and how the world changes with it.
type Scripted = (Duration, Event, Box<dyn FnOnce(&mut Net)>);

struct Run {
    switches: Vec<Switch>,
    net: Net,
}

/// Events may change `Net` (link states) as they are delivered.
fn run_failover(probes: Vec<Probe>, answers: Answers, events: Vec<Scripted>, end: Duration) -> Run {
    let clock = FakeClock::new();
    // Set up already, through the first uplink.
    let net: SharedNet = Rc::new(RefCell::new(Net {
        route: some("wg0"),
        ..Net::default()
    }));
    let world = Rc::new(RefCell::new(World::whole()));
    let script = events
        .into_iter()
        .map(|(at, e, change)| {
            let net = net.clone();
            Step {
                at,
                kind: Kind::Deliver(e),
                change: Box::new(move |_: &mut World| change(&mut net.borrow_mut())),
            }
        })
        .collect::<Vec<_>>();
    let source = FakeSource {
        clock: clock.clone(),
        world,
        script: script.into(),
    };
    let host = ClassHost {
        clock: clock.clone(),
        net: net.clone(),
    };
    let prober = ScriptedProber {
        clock: clock.clone(),
        net: net.clone(),
        answers,
    };
    let mut watch = Watch::new(WatchSet::new(
        UPLINKS.iter().map(|u| u.to_string()).collect(),
        100,
        vec![10000],
    ));
    watch.learn("wg0", 7);
    watch.learn("wg1", 8);
    let mut sup = Supervisor::new(source, host, clock.clone(), watch, Timing::default())
        .with_health(Health::new(probes, clock.now()), Box::new(prober));
    let mut switches = Vec::new();
    sup.run(
        || clock.elapsed() >= end,
        |r| {
            if let Report::Switched {
                from,
                to,
                detected_in,
                ..
            } = r
            {
                switches.push((clock.elapsed(), from.clone(), to.clone(), *detected_in));
            }
        },
    );
    drop(sup);
    Run {
        switches,
        net: Rc::try_unwrap(net).ok().unwrap().into_inner(),
    }
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

fn link(index: u32, name: &str, up: bool) -> Event {
    let name = name.to_string();
    if up {
        Event::LinkUp { index, name }
    } else {
        Event::LinkDown { index, name }
    }
}

#[test]
fn a_dead_peer_moves_the_class_after_fails_losses_and_back_after_the_hold_down() {
    // wg0 stops answering from 1.5 s to 5.5 s; every 1 s, 3 losses.
    let answers: Answers = Box::new(|u, at| !(u == "wg0" && at >= ms(1500) && at < ms(5500)));
    let r = run_failover(checks(1000, 3), answers, vec![], secs(12));
    let at: Vec<_> = r
        .switches
        .iter()
        .map(|(t, f, to, _)| (*t, f.clone(), to.clone()))
        .collect();
    // Losses at 2, 3, 4 s: moved at 4 s (+ the repair). Answers at 6, 7, 8 s:
    // back at 8 s, not at the first answer.
    assert_eq!(
        at,
        vec![
            (secs(4) + REPAIR_COST, some("wg0"), some("wg1")),
            (secs(8) + REPAIR_COST, some("wg1"), some("wg0")),
        ],
        "{:?}",
        r.switches
    );
    // Detection counted from the first loss.
    assert_eq!(r.switches[0].3, Some(secs(2)));
    // The class's connections were flushed on each move.
    assert_eq!(r.net.flushed.len(), 2);
}

#[test]
fn a_flapping_uplink_does_not_bounce_traffic() {
    // wg0 loses every other probe: never `fails` in a row.
    let answers: Answers = Box::new(|u, at| u != "wg0" || (at.as_millis() / 1000) % 2 == 0);
    let r = run_failover(checks(1000, 2), answers, vec![], secs(20));
    assert!(r.switches.is_empty(), "{:?}", r.switches);
    assert_eq!(r.net.route, some("wg0"));
}

#[test]
fn a_link_down_moves_at_once_to_the_next_uplink_and_none_left_is_no_route() {
    let r = run_failover(
        vec![],
        Box::new(|_, _| true),
        vec![
            (
                ms(1000),
                link(7, "wg0", false),
                Box::new(|n| n.down.push("wg0")),
            ),
            (
                ms(3000),
                link(8, "wg1", false),
                Box::new(|n| n.down.push("wg1")),
            ),
            (
                ms(5000),
                link(8, "wg1", true),
                Box::new(|n| n.down.retain(|d| *d != "wg1")),
            ),
        ],
        secs(7),
    );
    let moves: Vec<_> = r
        .switches
        .iter()
        .map(|(t, f, to, d)| (*t, f.clone(), to.clone(), *d))
        .collect();
    // One debounce (100 ms) after the event, then the repair.
    let after = ms(100);
    assert_eq!(
        moves,
        vec![
            (
                ms(1000) + after + REPAIR_COST,
                some("wg0"),
                some("wg1"),
                Some(after)
            ),
            (
                ms(3000) + after + REPAIR_COST,
                some("wg1"),
                None,
                Some(after)
            ),
            (
                ms(5000) + after + REPAIR_COST,
                None,
                some("wg1"),
                Some(after)
            ),
        ]
    );
    // Nothing to flush when the class had no route.
    assert_eq!(r.net.flushed.len(), 2);
}

#[test]
fn checks_keep_their_cadence_whatever_else_wakes_the_loop() {
    // A stream of unrelated-but-watched events every 50 ms wakes the loop.
    let events = (1..100u64)
        .map(|i| {
            let e = link(8, "wg1", true);
            (
                ms(i * 50),
                e,
                Box::new(|_: &mut Net| {}) as Box<dyn FnOnce(&mut Net)>,
            )
        })
        .collect();
    let r = run_failover(checks(700, 3), Box::new(|_, _| true), events, secs(5));
    let wg0: Vec<Duration> = r
        .net
        .probes
        .iter()
        .filter(|(_, u)| u == "wg0")
        .map(|(t, _)| *t)
        .collect();
    assert!(wg0.len() >= 7, "{wg0:?}");
    for w in wg0.windows(2) {
        assert!(w[1] - w[0] >= ms(700), "probed faster than every: {wg0:?}");
    }
}

#[test]
fn a_link_that_comes_back_waits_for_its_hold_down() {
    let r = run_failover(
        checks(1000, 2),
        Box::new(|_, _| true),
        vec![
            (
                ms(1500),
                link(7, "wg0", false),
                Box::new(|n| n.down.push("wg0")),
            ),
            (
                ms(2500),
                link(7, "wg0", true),
                Box::new(|n| n.down.retain(|d| *d != "wg0")),
            ),
        ],
        secs(8),
    );
    let moves: Vec<_> = r
        .switches
        .iter()
        .map(|(t, f, to, _)| (*t, f.clone(), to.clone()))
        .collect();
    // Away at once; back only after the answers at 3 s and 4 s, not at the
    // link event (2.5 s).
    assert_eq!(
        moves,
        vec![
            (ms(1600) + REPAIR_COST, some("wg0"), some("wg1")),
            (secs(4) + REPAIR_COST, some("wg1"), some("wg0")),
        ]
    );
}
