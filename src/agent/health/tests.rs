//! The check's state machine against a scripted prober and a moved clock.

use super::*;
use std::collections::{BTreeMap, VecDeque};

/// Answers per interface, in order; records when each probe ran.
#[derive(Default)]
struct Script {
    answers: BTreeMap<String, VecDeque<bool>>,
    calls: Vec<String>,
}

impl Prober for Script {
    fn probe(&mut self, probes: &[&Probe]) -> Vec<bool> {
        probes
            .iter()
            .map(|p| {
                self.calls.push(p.interface.clone());
                self.answers
                    .get_mut(&p.interface)
                    .and_then(VecDeque::pop_front)
                    .unwrap_or(true)
            })
            .collect()
    }
}

fn probe(interface: &str, every_ms: u64, fails: u32) -> Probe {
    Probe {
        class: "torrent".into(),
        interface: interface.into(),
        ping: "10.9.0.1".parse().unwrap(),
        every: Duration::from_millis(every_ms),
        fails,
    }
}

fn script(interface: &str, answers: &[bool]) -> Script {
    let mut s = Script::default();
    s.answers
        .insert(interface.into(), answers.iter().copied().collect());
    s
}

/// Runs the health loop every 100 ms for `secs`; the changes with when.
fn drive(h: &mut Health, s: &mut Script, t0: Instant, secs: u64) -> Vec<(u64, Change)> {
    let mut out = Vec::new();
    for tick in 0..=(secs * 10) {
        let now = t0 + Duration::from_millis(tick * 100);
        for c in h.run_due(now, s) {
            out.push((tick * 100, c));
        }
    }
    out
}

#[test]
fn fails_losses_in_a_row_take_an_uplink_down_and_as_many_answers_bring_it_back() {
    let t0 = Instant::now();
    let mut h = Health::new(vec![probe("wg0", 1000, 3)], t0);
    // Probes at 0,1,2,...: answers, then three losses (1 s, 2 s, 3 s), then
    // answer, loss, then three answers.
    let mut s = script(
        "wg0",
        &[true, false, false, false, true, false, true, true, true],
    );
    let changes = drive(&mut h, &mut s, t0, 9);
    let seen: Vec<(u64, bool)> = changes.iter().map(|(t, c)| (*t, c.up)).collect();
    // Down at the third loss (3 s), detected from the first one (1 s).
    // Back only after three answers in a row (6, 7, 8 s): the answer at 4 s
    // was followed by a loss, so it did not count.
    assert_eq!(seen, vec![(3000, false), (8000, true)]);
    assert_eq!(changes[0].1.first_sign, t0 + Duration::from_secs(1));
    assert!(
        changes[0].1.why.contains("3 times in a row"),
        "{:?}",
        changes[0]
    );
    assert!(h.unhealthy().is_empty());
}

#[test]
fn a_flapping_uplink_never_goes_down_and_a_flapping_dead_one_never_comes_back() {
    let t0 = Instant::now();
    let mut h = Health::new(vec![probe("wg0", 500, 2)], t0);
    let flap: Vec<bool> = (0..20).map(|i| i % 2 == 0).collect();
    let mut s = script("wg0", &flap);
    assert!(drive(&mut h, &mut s, t0, 9).is_empty());

    let mut h = Health::new(vec![probe("wg0", 500, 2)], t0);
    let mut answers = vec![false, false];
    answers.extend((0..18).map(|i| i % 2 == 0));
    let mut s = script("wg0", &answers);
    let changes = drive(&mut h, &mut s, t0, 9);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(!changes[0].1.up);
    assert_eq!(h.unhealthy().len(), 1);
    assert_eq!(h.unhealthy()[0].interface, "wg0");
}

#[test]
fn a_check_never_runs_faster_than_its_period_and_each_keeps_its_own() {
    let t0 = Instant::now();
    let mut h = Health::new(vec![probe("wg0", 2000, 3), probe("wg1", 700, 1)], t0);
    let mut s = Script::default();
    // Woken every 100 ms for 10 s (events, other checks): still one probe
    // of wg0 per 2 s and one of wg1 per 700 ms.
    drive(&mut h, &mut s, t0, 10);
    let count = |i: &str| s.calls.iter().filter(|c| *c == i).count();
    assert_eq!(count("wg0"), 6, "0,2,4,6,8,10 s");
    assert_eq!(count("wg1"), 15, "every 700 ms from 0 to 9.8 s");
    assert_eq!(h.next_due(), Some(t0 + Duration::from_millis(10500)));
}

#[test]
fn ping_is_bound_to_the_uplink_and_waits_half_the_period_at_most_a_second() {
    assert_eq!(
        PingProber::argv(&probe("wg1", 2000, 3)),
        [
            "ping", "-n", "-q", "-c1", "-W", "1.0", "-I", "wg1", "10.9.0.1"
        ]
    );
    // Half the period when shorter: a loss is known before the next probe.
    assert_eq!(PingProber::argv(&probe("wg1", 500, 3))[5], "0.2");
    use crate::runner::{FakeRunner, Output};
    let runner = FakeRunner::new()
        .on(
            &[
                "ping", "-n", "-q", "-c1", "-W", "0.5", "-I", "wg0", "10.9.0.1",
            ],
            Output::ok(""),
        )
        .otherwise(Output::failed(1, ""));
    let mut p = PingProber { runner: &runner };
    let (a, b) = (probe("wg0", 1000, 1), probe("wg1", 1000, 1));
    assert_eq!(p.probe(&[&a, &b]), vec![true, false]);
}

#[test]
fn an_uplink_held_down_by_its_link_needs_its_answers_and_a_repeat_keeps_the_count() {
    let t0 = Instant::now();
    let mut h = Health::new(vec![probe("wg0", 1000, 3)], t0);
    assert!(h.hold_down("torrent", "wg0", "wg0 went down"));
    assert!(!h.hold_down("streaming", "wg0", "not its uplink"));
    let mut s = Script::default();
    // Answers at 0 and 1 s: not yet; a repeated hold-down (the next check
    // still skips it) does not reset the count; the third answer (2 s) does it.
    assert!(h.run_due(t0, &mut s).is_empty());
    assert!(h.run_due(t0 + Duration::from_secs(1), &mut s).is_empty());
    assert!(!h.hold_down("torrent", "wg0", "again"));
    assert!(
        h.unhealthy()[0]
            .why
            .starts_with("wg0 went down; held down until 3 answers in a row (2 so far)")
    );
    let back = h.run_due(t0 + Duration::from_secs(2), &mut s);
    assert_eq!(back.len(), 1);
    assert!(back[0].up);
    assert!(h.unhealthy().is_empty());
}
