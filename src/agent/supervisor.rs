//! The convergence loop. It blocks in its event source until the next
//! thing it must do (never sleeps, never spins), and then:
//! - after a burst of relevant events has been quiet for `debounce` (or at
//!   the latest `max_delay` after its first event), one check and, if
//!   something is missing, one repair;
//! - every `drift_period` without a check, a check too: netfilter changes
//!   come with no rtnetlink event;
//! - while the VPN is unusable, it puts in place what does not need it (the
//!   kill switch, the marking: a boot that starts the agent before the VPN)
//!   and reports "waiting" once; the next relevant event (the link back)
//!   triggers the repair of the rest;
//! - after a failed repair, events wait `retry_after` for the next try, so
//!   a repair that keeps failing cannot loop on its own events.
//!
//! Each outcome worth a line is handed to the caller as a `Report`.

#[cfg(test)]
mod tests;

use super::clock::Clock;
use super::converge::{Check, ClassChoice, Converge, ConvergeError, WaitReason};
use super::event::EventSource;
use super::health::{Change, Health, Prober};
use super::watch::Watch;
use std::fmt;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Quiet time that ends a burst of events (a link down takes routes,
    /// addresses and rules with it in a few ms).
    pub debounce: Duration,
    /// Longest a burst may postpone the check, so that a steady stream of
    /// events cannot starve it.
    pub max_delay: Duration,
    /// Longest time without a check (the drift check).
    pub drift_period: Duration,
    /// After a failed repair, events trigger no new one before this.
    pub retry_after: Duration,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            debounce: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
            drift_period: Duration::from_secs(5),
            retry_after: Duration::from_secs(5),
        }
    }
}

/// What started a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Trigger {
    Start,
    Periodic,
    /// A burst of relevant events: why the first one mattered, and how
    /// many there were.
    Events {
        first: String,
        count: usize,
    },
}

/// One line of output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    Repaired {
        trigger: Trigger,
        missing: Vec<String>,
        did: Vec<String>,
        /// Check and repair.
        took: Duration,
        /// From the first event of the burst to the end of the repair.
        since_event: Option<Duration>,
    },
    /// Reported once per distinct error, retried later.
    RepairFailed {
        trigger: Trigger,
        missing: Vec<String>,
        error: String,
        took: Duration,
        retry_in: Duration,
    },
    /// What does not need the VPN was put in place while it is unusable.
    Held {
        trigger: Trigger,
        reason: WaitReason,
        missing: Vec<String>,
        did: Vec<String>,
        took: Duration,
        kill_switch: bool,
    },
    /// Reported once per distinct reason.
    Waiting {
        trigger: Trigger,
        reason: WaitReason,
    },
    /// Whole again after waiting or failing, without a repair.
    Whole { trigger: Trigger },
    /// Reported once per distinct error.
    CheckFailed { trigger: Trigger, error: String },
    /// A class's table now routes through another uplink (None: none is
    /// usable).
    Switched {
        class: String,
        from: Option<String>,
        to: Option<String>,
        /// The plan's reason for the new choice.
        why: String,
        trigger: Trigger,
        /// From the first sign (event, lost probe) to the decision.
        detected_in: Option<Duration>,
        /// The check and repair that moved the route.
        took: Duration,
        /// What the conntrack flush did.
        flushed: Option<String>,
    },
}

/// Counters for `status`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub checks: u64,
    pub repairs: u64,
    pub failed_repairs: u64,
    /// The last `Repaired`, `Held` or `RepairFailed`.
    pub last_repair: Option<Report>,
}

/// Why `run` returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The stop flag was set (SIGTERM, SIGINT): the setup stays in place.
    Stopped,
    /// The event source broke (the netlink socket failed).
    SourceFailed(String),
    /// `Converge` said the agent cannot go on.
    Fatal(String),
}

/// Where the setup stood at the last check, so that repeated outcomes are
/// reported once.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Unknown,
    Whole,
    Waiting(WaitReason),
    Failing(String),
}

/// Relevant events not yet acted upon.
struct Pending {
    first: String,
    first_at: Instant,
    last_at: Instant,
    count: usize,
}

pub struct Supervisor<S, C, K> {
    source: S,
    converge: C,
    clock: K,
    watch: Watch,
    timing: Timing,
    pending: Option<Pending>,
    next_check: Instant,
    /// Set by a failed repair: events wait until then.
    not_before: Option<Instant>,
    phase: Phase,
    stats: Stats,
    health: Option<(Health, Box<dyn Prober>)>,
    /// Each class's uplink as of the last check that left the host whole.
    choices: Option<Vec<ClassChoice>>,
}

impl<S: EventSource, C: Converge, K: Clock> Supervisor<S, C, K> {
    pub fn new(source: S, converge: C, clock: K, watch: Watch, timing: Timing) -> Self {
        let next_check = clock.now();
        Supervisor {
            source,
            converge,
            clock,
            watch,
            timing,
            pending: None,
            next_check,
            not_before: None,
            phase: Phase::Unknown,
            stats: Stats::default(),
            health: None,
            choices: None,
        }
    }

    /// Runs the uplinks' active checks too; a change of health triggers a
    /// check at once.
    pub fn with_health(mut self, health: Health, prober: Box<dyn Prober>) -> Self {
        if !health.is_empty() {
            self.health = Some((health, prober));
        }
        self
    }

    /// Each class's uplink as of the last whole check.
    pub fn choices(&self) -> &[ClassChoice] {
        self.choices.as_deref().unwrap_or(&[])
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Converges at once, then on events and periodically, until `stop()`
    /// says so (looked at after every check and every wake-up: the real
    /// source wakes up when a signal arrives). Nothing is undone on return.
    /// A signal that lands between the flag test and the wait must
    /// interrupt the wait: `NetlinkEvents` lets held stop signals in during
    /// its `ppoll` only (`signals::hold_stop_signals`).
    pub fn run(&mut self, stop: impl Fn() -> bool, mut report: impl FnMut(&Report)) -> Exit {
        if stop() {
            return Exit::Stopped;
        }
        if let ControlFlow::Break(exit) = self.converge(Trigger::Start, None, &mut report) {
            return exit;
        }
        loop {
            if stop() {
                return Exit::Stopped;
            }
            let now = self.clock.now();
            let health_due = self.health.as_ref().and_then(|(h, _)| h.next_due());
            if health_due.is_some_and(|d| now >= d) {
                if let ControlFlow::Break(exit) = self.probe(now, &mut report) {
                    return exit;
                }
                continue;
            }
            let due = self
                .pending_due()
                .map_or(self.next_check, |d| d.min(self.next_check));
            let due = health_due.map_or(due, |h| h.min(due));
            if now >= due {
                let (trigger, first_at) = match self.pending.take() {
                    Some(p) => (
                        Trigger::Events {
                            first: p.first,
                            count: p.count,
                        },
                        Some(p.first_at),
                    ),
                    None => (Trigger::Periodic, None),
                };
                if let ControlFlow::Break(exit) = self.converge(trigger, first_at, &mut report) {
                    return exit;
                }
                continue;
            }
            match self.source.next(due - now) {
                Ok(Some(event)) => {
                    if let Some(why) = self.watch.relevant(&event) {
                        self.note(why);
                    }
                }
                Ok(None) => {}
                Err(e) => return Exit::SourceFailed(e.to_string()),
            }
        }
    }

    /// The active checks due now; a change of health is acted upon at once.
    fn probe(&mut self, now: Instant, report: &mut dyn FnMut(&Report)) -> ControlFlow<Exit> {
        let Some((health, prober)) = self.health.as_mut() else {
            return ControlFlow::Continue(());
        };
        let changes = health.run_due(now, prober.as_mut());
        let Some(first) = changes.first() else {
            return ControlFlow::Continue(());
        };
        let down = health.unhealthy();
        self.converge.set_unhealthy(down);
        let first_at = changes.iter().map(|c| c.first_sign).min();
        let trigger = Trigger::Events {
            first: describe(first),
            count: changes.len(),
        };
        self.converge(trigger, first_at, report)
    }

    fn note(&mut self, why: String) {
        let now = self.clock.now();
        match &mut self.pending {
            Some(p) => {
                p.last_at = now;
                p.count += 1;
            }
            None => {
                self.pending = Some(Pending {
                    first: why,
                    first_at: now,
                    last_at: now,
                    count: 1,
                })
            }
        }
    }

    fn pending_due(&self) -> Option<Instant> {
        let p = self.pending.as_ref()?;
        let t = &self.timing;
        let due = (p.last_at + t.debounce).min(p.first_at + t.max_delay);
        Some(self.not_before.map_or(due, |nb| due.max(nb)))
    }

    fn converge(
        &mut self,
        trigger: Trigger,
        first_at: Option<Instant>,
        report: &mut dyn FnMut(&Report),
    ) -> ControlFlow<Exit> {
        // Events that arrived so far are covered by this check.
        self.pending = None;
        let why = trigger.clone();
        let started = self.clock.now();
        self.stats.checks += 1;
        match self.converge.check() {
            Ok(Check::Whole) => {
                if matches!(self.phase, Phase::Waiting(_) | Phase::Failing(_)) {
                    report(&Report::Whole { trigger });
                }
                self.phase = Phase::Whole;
            }
            Ok(Check::Waiting(reason)) => {
                if self.phase != Phase::Waiting(reason.clone()) {
                    report(&Report::Waiting {
                        trigger,
                        reason: reason.clone(),
                    });
                }
                self.phase = Phase::Waiting(reason);
            }
            Ok(Check::Missing(missing)) => {
                self.repair(trigger, missing, None, started, first_at, report)?
            }
            Ok(Check::MissingWhileWaiting {
                reason,
                missing,
                kill_switch,
            }) => {
                let waiting = Some((reason, kill_switch));
                self.repair(trigger, missing, waiting, started, first_at, report)?
            }
            Err(ConvergeError::Transient(error)) => {
                if self.phase != Phase::Failing(error.clone()) {
                    report(&Report::CheckFailed {
                        trigger,
                        error: error.clone(),
                    });
                }
                self.phase = Phase::Failing(error);
            }
            Err(ConvergeError::Fatal(e)) => return ControlFlow::Break(Exit::Fatal(e)),
        }
        if self.phase == Phase::Whole {
            self.switches(why, started, first_at, report);
        }
        self.next_check = self.clock.now() + self.timing.drift_period;
        ControlFlow::Continue(())
    }

    /// The uplinks a class skips now are down (link, address or check):
    /// each comes back only after passing its check `fails` times in a row,
    /// however it went down, so a flapping link does not bounce traffic.
    fn hold_down_skipped(&mut self, choices: &[ClassChoice]) {
        let Some((health, _)) = self.health.as_mut() else {
            return;
        };
        let mut changed = false;
        for c in choices {
            let chosen = c
                .uplink
                .as_ref()
                .and_then(|u| c.uplinks.iter().position(|x| x == u))
                .unwrap_or(c.uplinks.len());
            for u in &c.uplinks[..chosen] {
                changed |= health.hold_down(&c.class, u, &format!("{u} went down"));
            }
        }
        if changed {
            self.converge.set_unhealthy(health.unhealthy());
        }
    }

    /// One line per class whose uplink changed since the last whole check,
    /// after its old connections were flushed.
    fn switches(
        &mut self,
        trigger: Trigger,
        started: Instant,
        first_at: Option<Instant>,
        report: &mut dyn FnMut(&Report),
    ) {
        let now = self.converge.choices();
        self.hold_down_skipped(&now);
        let Some(before) = self.choices.replace(now.clone()) else {
            return;
        };
        let took = self.clock.now() - started;
        for c in now {
            let from = before
                .iter()
                .find(|b| b.class == c.class)
                .and_then(|b| b.uplink.clone());
            if from == c.uplink {
                continue;
            }
            let flushed = match &from {
                Some(old) => self.converge.flush(&c.class, old),
                None => None,
            };

            report(&Report::Switched {
                class: c.class,
                from,
                to: c.uplink,
                why: c.why,
                trigger: trigger.clone(),
                detected_in: first_at.map(|f| started.saturating_duration_since(f)),
                took,
                flushed,
            });
        }
    }

    /// Runs the repair of `missing` and reports it; `waiting`: the VPN is
    /// unusable (its reason, and whether the profile has a kill switch).
    fn repair(
        &mut self,
        trigger: Trigger,
        missing: Vec<String>,
        waiting: Option<(WaitReason, bool)>,
        started: Instant,
        first_at: Option<Instant>,
        report: &mut dyn FnMut(&Report),
    ) -> ControlFlow<Exit> {
        match self.converge.repair(&missing) {
            Ok(did) => {
                let end = self.clock.now();
                let took = end - started;
                let line = match waiting {
                    None => {
                        self.phase = Phase::Whole;
                        Report::Repaired {
                            trigger,
                            missing,
                            did,
                            took,
                            since_event: first_at.map(|f| end - f),
                        }
                    }
                    Some((reason, kill_switch)) => {
                        self.phase = Phase::Waiting(reason.clone());
                        Report::Held {
                            trigger,
                            reason,
                            missing,
                            did,
                            took,
                            kill_switch,
                        }
                    }
                };
                report(&line);
                self.stats.repairs += 1;
                self.stats.last_repair = Some(line);
                self.not_before = None;
            }
            Err(ConvergeError::Transient(error)) => {
                let end = self.clock.now();
                let line = Report::RepairFailed {
                    trigger,
                    missing,
                    error: error.clone(),
                    took: end - started,
                    retry_in: self.timing.retry_after,
                };
                if self.phase != Phase::Failing(error.clone()) {
                    report(&line);
                }
                self.stats.failed_repairs += 1;
                self.stats.last_repair = Some(line);
                self.not_before = Some(end + self.timing.retry_after);
                self.phase = Phase::Failing(error);
            }
            Err(ConvergeError::Fatal(e)) => return ControlFlow::Break(Exit::Fatal(e)),
        }
        ControlFlow::Continue(())
    }
}

fn describe(c: &Change) -> String {
    let state = if c.up { "healthy again" } else { "down" };
    format!(
        "uplink {} of class {} {state} ({})",
        c.interface, c.class, c.why
    )
}

fn human(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Trigger::Start => f.write_str("start"),
            Trigger::Periodic => f.write_str("periodic check"),
            Trigger::Events { first, count: 1 } => f.write_str(first),
            Trigger::Events { first, count } => write!(f, "{first} (+{} more events)", count - 1),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Report::Repaired {
                trigger,
                missing,
                did,
                took,
                since_event,
            } => {
                write!(f, "repaired after {trigger} in {}", human(*took))?;
                if let Some(since) = since_event {
                    write!(f, " ({} after the first event)", human(*since))?;
                }
                write!(
                    f,
                    ": missing {}; did {}",
                    missing.join(", "),
                    did.join("; ")
                )
            }
            Report::RepairFailed {
                trigger,
                missing,
                error,
                took,
                retry_in,
            } => write!(
                f,
                "repair after {trigger} failed in {}: missing {}: {error}; next try in {}",
                human(*took),
                missing.join(", "),
                human(*retry_in)
            ),
            Report::Held {
                trigger,
                reason,
                did,
                took,
                kill_switch,
                ..
            } => {
                let what = if *kill_switch {
                    "kill switch in place"
                } else {
                    "in place without the VPN"
                };
                let dev = reason.interface();
                write!(
                    f,
                    "{what}, waiting for {dev} ({reason}): after {trigger} in {}, did {}. The \
                     routes through {dev} follow when it is back",
                    human(*took),
                    did.join("; ")
                )
            }
            Report::Waiting { trigger, reason } => write!(
                f,
                "waiting after {trigger}: {reason}; repairing when it is back"
            ),
            Report::Whole { trigger } => {
                write!(f, "whole again after {trigger}: nothing to repair")
            }
            Report::CheckFailed { trigger, error } => {
                write!(f, "check after {trigger} failed: {error}")
            }
            Report::Switched {
                class,
                from,
                to,
                why,
                detected_in,
                took,
                flushed,
                ..
            } => {
                let name = |u: &Option<String>| u.clone().unwrap_or_else(|| "none".into());
                write!(f, "class {class}: {} -> {}: {why}", name(from), name(to))?;
                if let Some(d) = detected_in {
                    write!(f, "; detected in {}", human(*d))?;
                }
                write!(f, ", switched in {}", human(*took))?;
                if let Some(fl) = flushed {
                    write!(f, "; {fl}")?;
                }
                Ok(())
            }
        }
    }
}
