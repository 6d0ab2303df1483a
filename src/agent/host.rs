//! `Converge` over the use-case layer: this host, one profile.

use super::converge::{Check, ClassChoice, Converge, ConvergeError, WaitReason};
use crate::ops::Host;
use crate::ops::apply::{ApplyError, Request};
use crate::ops::converge::{self, Found, Wait};
use crate::plan::ResolvedClass;
use crate::probe::Unhealthy;
use crate::profile::Profile;
use crate::runner::{RunError, Runner};
use std::sync::Mutex;

pub struct HostConverge<'h> {
    /// Its probe must add `unhealthy` to the facts it reads (the agent's
    /// wrapper around `probe_system`), so that repair plans alike.
    pub host: Host<'h>,
    pub profile: Profile,
    /// How the profile is named in the journal.
    pub source: String,
    /// The uplinks the active checks hold down, shared with the probe.
    pub unhealthy: &'h Mutex<Vec<Unhealthy>>,
    /// The classes as the last check planned them.
    pub classes: Vec<ResolvedClass>,
    /// `conntrack` was found missing once (said once, then skipped).
    pub no_conntrack: bool,
}

impl<'h> HostConverge<'h> {
    pub fn new(
        host: Host<'h>,
        profile: Profile,
        source: String,
        unhealthy: &'h Mutex<Vec<Unhealthy>>,
    ) -> Self {
        HostConverge {
            host,
            profile,
            source,
            unhealthy,
            classes: Vec::new(),
            no_conntrack: false,
        }
    }
}

impl Converge for HostConverge<'_> {
    fn check(&mut self) -> Result<Check, ConvergeError> {
        let (found, classes) = converge::check_classes(&self.host, &self.profile)
            .map_err(|e| ConvergeError::Transient(e.to_string()))?;
        self.classes = classes;
        let reason = |w| match w {
            Wait::InterfaceMissing(i) => WaitReason::InterfaceMissing(i),
            Wait::InterfaceDown(i) => WaitReason::InterfaceDown(i),
            Wait::NoNextHop(i) => WaitReason::NoNextHop(i),
        };
        Ok(match found {
            Found::Whole => Check::Whole,
            Found::Missing(m) => Check::Missing(m),
            Found::Waiting { wait, missing } if missing.is_empty() => Check::Waiting(reason(wait)),
            Found::Waiting { wait, missing } => Check::MissingWhileWaiting {
                reason: reason(wait),
                missing,
                kill_switch: self.profile.gateway.as_ref().is_some_and(|g| g.kill_switch),
            },
        })
    }

    fn repair(&mut self, _missing: &[String]) -> Result<Vec<String>, ConvergeError> {
        let req = Request {
            profile: &self.profile,
            source: &self.source,
            confirm_secs: None,
            previewed: None,
            vpn_may_wait: true,
        };
        converge::repair(&self.host, &req).map_err(|e| match e {
            // Root does not come back by waiting.
            ApplyError::NeedsRoot => ConvergeError::Fatal(e.to_string()),
            e => ConvergeError::Transient(e.to_string()),
        })
    }

    fn set_unhealthy(&mut self, down: Vec<Unhealthy>) {
        *self.unhealthy.lock().unwrap_or_else(|p| p.into_inner()) = down;
    }

    fn choices(&self) -> Vec<ClassChoice> {
        choices(&self.classes)
    }

    fn flush(&mut self, class: &str) -> Option<String> {
        let c = self.classes.iter().find(|c| c.name == class)?;
        let (Some(mark), Some(mask)) = (c.mark, c.mask) else {
            return Some(
                "connections not flushed: the class routes on the DSCP itself (match = \
                 \"dscp-rule\"), with no mark to find them by"
                    .into(),
            );
        };
        if self.no_conntrack {
            return None;
        }
        match flush_mark(self.host.runner, mark, mask) {
            Ok(n) => Some(format!("flushed {n} tracked connections of the class")),
            Err(RunError::NotFound { .. }) => {
                self.no_conntrack = true;
                Some(
                    "warning: conntrack is not installed, so the class's open connections stay \
                     on the uplink it left until they end (install conntrack)"
                        .into(),
                )
            }
            Err(e) => Some(format!("warning: conntrack flush failed: {e}")),
        }
    }
}

/// Each class's current uplink as a choice.
pub fn choices(classes: &[ResolvedClass]) -> Vec<ClassChoice> {
    classes
        .iter()
        .map(|c| ClassChoice {
            class: c.name.clone(),
            uplink: c.uplink.clone(),
            why: c.uplink_why.clone(),
            uplinks: c.uplinks.clone(),
        })
        .collect()
}

/// The argv deleting the tracked connections carrying `mark` in `mask`.
pub fn flush_argv(ipv6: bool, mark: u32, mask: u32) -> Vec<String> {
    let fam = if ipv6 { "ipv6" } else { "ipv4" };
    [
        "conntrack",
        "-D",
        "-f",
        fam,
        "-m",
        &format!("{mark:#x}/{mask:#x}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Deletes both families' connections with our mark; how many went.
/// conntrack exits 1 when none matched, which is no failure here.
fn flush_mark(runner: &dyn Runner, mark: u32, mask: u32) -> Result<u64, RunError> {
    let mut n = 0;
    for v6 in [false, true] {
        let out = runner.run(&flush_argv(v6, mark, mask))?;
        n += out
            .stderr
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(3)
            .find(|w| w[1] == "flow" && w[2] == "entries")
            .and_then(|w| w[0].parse::<u64>().ok())
            .unwrap_or(0);
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{FakeRunner, Output};

    #[test]
    fn the_flush_deletes_the_class_mark_in_both_families_and_counts() {
        let said = |n: u32| {
            Output::failed(
                i32::from(n == 0),
                format!(
                    "conntrack v1.4.7 (conntrack-tools): {n} flow entries have been deleted.\n"
                ),
            )
        };
        let r = FakeRunner::new()
            .on(
                &["conntrack", "-D", "-f", "ipv4", "-m", "0x10000/0xff0000"],
                said(3),
            )
            .on(
                &["conntrack", "-D", "-f", "ipv6", "-m", "0x10000/0xff0000"],
                said(0),
            );
        assert_eq!(flush_mark(&r, 0x10000, 0xff0000).unwrap(), 3);
        assert_eq!(r.calls().len(), 2);
    }
}
