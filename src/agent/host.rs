//! `Converge` over the use-case layer: this host, one profile.

use super::converge::{Check, ClassChoice, Converge, ConvergeError, WaitReason};
use crate::ops::Host;
use crate::ops::apply::{ApplyError, Request};
use crate::ops::converge::{self, Found, Wait};
use crate::plan::ResolvedClass;
use crate::probe::Unhealthy;
use crate::profile::Profile;
use crate::runner::{RunError, Runner};
use std::collections::BTreeMap;
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
    /// Each link's global addresses as last seen while it had some (an
    /// uplink that vanished keeps the ones it had: its connections carry
    /// them).
    pub addrs: BTreeMap<String, Vec<String>>,
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
            addrs: BTreeMap::new(),
            no_conntrack: false,
        }
    }
}

impl Converge for HostConverge<'_> {
    fn check(&mut self) -> Result<Check, ConvergeError> {
        let (found, seen) = converge::check_classes(&self.host, &self.profile)
            .map_err(|e| ConvergeError::Transient(e.to_string()))?;
        self.classes = seen.classes;
        for (link, addrs) in seen.addrs {
            if !addrs.is_empty() {
                self.addrs.insert(link, addrs);
            }
        }
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

    fn flush(&mut self, class: &str, from: &str) -> Option<String> {
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
        // With source NAT, a connection through `from` answers to its
        // address: only those are flushed, not one opened since the switch.
        let masquerade = self
            .profile
            .classes()
            .iter()
            .any(|k| k.name == class && k.masquerade);
        let on = match (masquerade, self.addrs.get(from)) {
            (true, Some(a)) => a.iter().map(|a| Some(a.as_str())).collect(),
            _ => vec![None],
        };
        match flush_mark(self.host.runner, mark, mask, &on) {
            Ok(n) => Some(format!(
                "flushed {n} tracked connections of the class{}",
                if on == [None] {
                    String::new()
                } else {
                    format!(" through {from}")
                }
            )),
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

/// The argv deleting the tracked connections carrying `mark` in `mask`,
/// of one family or, with `reply_dst`, those answering to that address.
pub fn flush_argv(ipv6: bool, mark: u32, mask: u32, reply_dst: Option<&str>) -> Vec<String> {
    let fam = if ipv6 { "ipv6" } else { "ipv4" };
    let mut v: Vec<String> = [
        "conntrack",
        "-D",
        "-f",
        fam,
        "-m",
        &format!("{mark:#x}/{mask:#x}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(a) = reply_dst {
        v.extend(["--reply-dst".to_string(), a.to_string()]);
    }
    v
}

/// Deletes the connections with our mark (in both families, or answering
/// to each address in `on`); how many went. conntrack exits 1 when none
/// matched, which is no failure here.
fn flush_mark(
    runner: &dyn Runner,
    mark: u32,
    mask: u32,
    on: &[Option<&str>],
) -> Result<u64, RunError> {
    let mut n = 0;
    for dst in on {
        let families: &[bool] = match dst {
            Some(a) => &[a.contains(':')],
            None => &[false, true],
        };
        for &v6 in families {
            let out = runner.run(&flush_argv(v6, mark, mask, *dst))?;
            n += out
                .stderr
                .split_whitespace()
                .collect::<Vec<_>>()
                .windows(3)
                .find(|w| w[1] == "flow" && w[2] == "entries")
                .and_then(|w| w[0].parse::<u64>().ok())
                .unwrap_or(0);
        }
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
        assert_eq!(flush_mark(&r, 0x10000, 0xff0000, &[None]).unwrap(), 3);
        assert_eq!(r.calls().len(), 2);
        // Through source NAT: only what answers to the old uplink's address.
        let r = FakeRunner::new()
            .on(
                &[
                    "conntrack",
                    "-D",
                    "-f",
                    "ipv4",
                    "-m",
                    "0x1/0xff",
                    "--reply-dst",
                    "10.8.0.2",
                ],
                said(2),
            )
            .on(
                &[
                    "conntrack",
                    "-D",
                    "-f",
                    "ipv6",
                    "-m",
                    "0x1/0xff",
                    "--reply-dst",
                    "fd00::2",
                ],
                said(1),
            );
        let on = [Some("10.8.0.2"), Some("fd00::2")];
        assert_eq!(flush_mark(&r, 1, 0xff, &on).unwrap(), 3);
        assert_eq!(r.calls().len(), 2);
    }
}
