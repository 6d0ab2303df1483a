//! Active checks per uplink (`check = { ping, every, fails }`), with
//! hysteresis: `fails` losses in a row take an uplink down, and a down one
//! must answer `fails` times in a row (the hold-down) before its classes
//! route through it again, so a flapping uplink does not bounce traffic.
//! Each check runs at most once per `every`. The state machine is pure (the
//! caller passes the time); `Prober` runs the probes.

use crate::probe::Unhealthy;
use crate::profile::Class;
use crate::runner::Runner;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// One uplink's check, as the profile gives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub class: String,
    pub interface: String,
    pub ping: IpAddr,
    pub every: Duration,
    pub fails: u32,
}

impl Probe {
    /// The checks of every class's uplinks that have one.
    pub fn of(classes: &[Class]) -> Vec<Probe> {
        classes
            .iter()
            .flat_map(|c| {
                c.uplinks.iter().filter_map(|u| {
                    let k = u.check.as_ref()?;
                    Some(Probe {
                        class: c.name.clone(),
                        interface: u.interface.clone(),
                        ping: k.ping,
                        every: Duration::from_millis(k.every_ms),
                        fails: k.fails.max(1),
                    })
                })
            })
            .collect()
    }
}

/// Runs probes; each answer says whether the address answered.
pub trait Prober {
    fn probe(&mut self, probes: &[&Probe]) -> Vec<bool>;
}

/// `ping -c1 -W SECS -I IFACE ADDR` through the Runner, the due probes side
/// by side. ping binds to the interface itself (SO_BINDTODEVICE), so the
/// probe leaves by that uplink whatever the routing tables say; a process
/// per probe every few seconds costs little, needs no raw socket code of
/// ours, and the fake runner records it in tests. The answer is awaited
/// half the period, at most 1 s: a lost probe decides within
/// `every * fails + 1 s` of the loss.
pub struct PingProber<'r> {
    pub runner: &'r dyn Runner,
}

impl PingProber<'_> {
    pub fn argv(p: &Probe) -> Vec<String> {
        let wait = (p.every / 2).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let wait = format!("{:.1}", wait.as_secs_f64());
        let addr = p.ping.to_string();
        [
            "ping",
            "-n",
            "-q",
            "-c1",
            "-W",
            &wait,
            "-I",
            &p.interface,
            &addr,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

impl Prober for PingProber<'_> {
    fn probe(&mut self, probes: &[&Probe]) -> Vec<bool> {
        let runner = self.runner;
        std::thread::scope(|s| {
            let handles: Vec<_> = probes
                .iter()
                .map(|p| {
                    let argv = Self::argv(p);
                    s.spawn(move || runner.run(&argv).is_ok_and(|o| o.success()))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(false))
                .collect()
        })
    }
}

#[derive(Clone, Debug)]
struct State {
    up: bool,
    /// Results in a row that disagree with `up`.
    streak: u32,
    /// When the current streak began (the first loss of a failure).
    streak_from: Option<Instant>,
    next_due: Instant,
    /// Why it is down, when it is.
    down_why: String,
}

/// An uplink that went down or came back by its check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub class: String,
    pub interface: String,
    pub up: bool,
    pub why: String,
    /// The first probe of the streak that decided it.
    pub first_sign: Instant,
}

pub struct Health {
    probes: Vec<Probe>,
    states: Vec<State>,
}

impl Health {
    /// Every uplink counts as healthy until its check says otherwise; the
    /// first probes are due now.
    pub fn new(probes: Vec<Probe>, now: Instant) -> Health {
        let states = probes
            .iter()
            .map(|_| State {
                up: true,
                streak: 0,
                streak_from: None,
                next_due: now,
                down_why: String::new(),
            })
            .collect();
        Health { probes, states }
    }

    pub fn is_empty(&self) -> bool {
        self.probes.is_empty()
    }

    pub fn next_due(&self) -> Option<Instant> {
        self.states.iter().map(|s| s.next_due).min()
    }

    /// Runs the probes due at `started` and returns what changed.
    pub fn run_due(&mut self, started: Instant, prober: &mut dyn Prober) -> Vec<Change> {
        let due: Vec<usize> = (0..self.probes.len())
            .filter(|&i| self.states[i].next_due <= started)
            .collect();
        if due.is_empty() {
            return Vec::new();
        }
        for &i in &due {
            // From the start of this probe: never faster than `every`.
            self.states[i].next_due = started + self.probes[i].every;
        }
        let refs: Vec<&Probe> = due.iter().map(|&i| &self.probes[i]).collect();
        let answers = prober.probe(&refs);
        due.iter()
            .zip(answers)
            .filter_map(|(&i, ok)| self.record(i, ok, started))
            .collect()
    }

    fn record(&mut self, i: usize, ok: bool, at: Instant) -> Option<Change> {
        let p = &self.probes[i];
        let s = &mut self.states[i];
        if ok == s.up {
            s.streak = 0;
            s.streak_from = None;
            return None;
        }
        s.streak += 1;
        let first = *s.streak_from.get_or_insert(at);
        if s.streak < p.fails {
            return None;
        }
        s.up = ok;
        s.streak = 0;
        s.streak_from = None;
        let why = if ok {
            format!("{} answered {} times in a row", p.ping, p.fails)
        } else {
            format!("no answer from {} {} times in a row", p.ping, p.fails)
        };
        s.down_why = why.clone();
        Some(Change {
            class: p.class.clone(),
            interface: p.interface.clone(),
            up: ok,
            why,
            first_sign: first,
        })
    }

    /// `interface` is down for `class` by other means (its link, its
    /// address): it must pass its check `fails` times in a row before the
    /// class comes back, as after failed probes. True when that changed
    /// anything (it has a check and counted as up).
    pub fn hold_down(&mut self, class: &str, interface: &str, why: &str) -> bool {
        let mut any = false;
        for (p, s) in self.probes.iter().zip(&mut self.states) {
            if p.class == class && p.interface == interface && s.up {
                s.up = false;
                s.streak = 0;
                s.streak_from = None;
                s.down_why = why.to_string();
                any = true;
            }
        }
        any
    }

    /// The uplinks held down now, for the plan.
    pub fn unhealthy(&self) -> Vec<Unhealthy> {
        self.probes
            .iter()
            .zip(&self.states)
            .filter(|(_, s)| !s.up)
            .map(|(p, s)| Unhealthy {
                class: p.class.clone(),
                interface: p.interface.clone(),
                why: format!(
                    "{}; held down until {} answers in a row ({} so far)",
                    s.down_why, p.fails, s.streak
                ),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
