//! `dscproute doctor`: does the setup a profile describes work on this
//! host, and if not, why? Each check looks at something concrete and says
//! PASS, WARN or FAIL, what it looked at, and how to fix a problem.
//!
//! Checks are data, computed by pure functions from what was gathered: the
//! host facts (`probe`), the plan for the profile (its in-place steps say
//! what is applied), a few more host files (`host`), packet counters read
//! before and after a short sample of the wire (`wire`), and `ip route get`
//! answers asked through the `Runner` (so unit tests use the FakeRunner).
//!
//! - `preflight`: root, tools, kernel support, forwarding, rp_filter,
//!   src_valid_mark, the iptables backend, the plan's conflicts, other users
//!   of marks;
//! - `after`: once applied: everything in place, counters moving, the VPN
//!   route, route lookups, the kill switch, IPv6, the group;
//! - `wire`: the DSCP really seen on the wire (reusing `watch`), the scrub;
//! - `firewalls`: fw4 or firewalld filtering forwarding in their own table;
//! - `host`: DNS (a resolver sending the group's queries unmarked);
//! - `ready`: what stops `apply` (a kernel gap, rules it could not read).

pub mod after;
pub mod fib;
pub mod firewalls;
pub mod host;
pub mod preflight;
pub use preflight::kernel_gap;
pub mod ready;
pub mod wire;

use crate::plan::{Plan, PlanError, Role, StepState};
use crate::probe::{CountedRule, HostFacts};
use crate::profile::Profile;
use crate::runner::Runner;
use serde::Serialize;
use std::fmt::Write;

pub use host::HostExtras;
pub use wire::WireSample;

/// IPv4 test destination for route lookups (TEST-NET-2, RFC 5737): never
/// sent to, only looked up.
pub const TARGET4: &str = "198.51.100.1";
/// IPv6 test destination (documentation prefix, RFC 3849).
pub const TARGET6: &str = "2001:db8::1";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl Status {
    pub fn word(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One check's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable short name (`forwarding`, `rp_filter`, `vpn-route`, …).
    pub name: &'static str,
    pub status: Status,
    /// What was found, in one sentence or a few.
    pub detail: String,
    /// What the check looked at: files, commands, counters.
    pub looked_at: String,
    /// How to fix it (WARN and FAIL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(
        name: &'static str,
        detail: impl Into<String>,
        looked_at: impl Into<String>,
    ) -> Check {
        Check {
            name,
            status: Status::Pass,
            detail: detail.into(),
            looked_at: looked_at.into(),
            fix: None,
        }
    }

    pub fn warn(
        name: &'static str,
        detail: impl Into<String>,
        looked_at: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name,
            status: Status::Warn,
            detail: detail.into(),
            looked_at: looked_at.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(
        name: &'static str,
        detail: impl Into<String>,
        looked_at: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name,
            status: Status::Fail,
            detail: detail.into(),
            looked_at: looked_at.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Everything the checks read. Gathering (probe, files, capture) happens
/// before; the checks only ask the runner for `ip route get` answers.
pub struct Inputs<'a> {
    pub profile: &'a Profile,
    /// How the profile was named on the command line (for fix commands).
    pub profile_path: &'a str,
    pub facts: &'a HostFacts,
    pub plan: Result<&'a Plan, &'a PlanError>,
    pub extras: &'a HostExtras,
    /// `iptables-save -c` / `ip6tables-save -c` rules of ours, before and
    /// after the wire sample (None when not applied or not root).
    pub counters: Option<(Vec<CountedRule>, Vec<CountedRule>)>,
    pub wire: Option<&'a WireSample>,
}

impl Inputs<'_> {
    pub fn roles(&self) -> Vec<Role> {
        let mut r = Vec::new();
        if self.profile.is_gateway() {
            r.push(Role::Gateway);
        }
        if self.profile.marker.is_some() {
            r.push(Role::Marker);
        }
        r
    }

    pub fn is_gateway(&self) -> bool {
        self.profile.is_gateway()
    }

    /// The gateway's classes, each through the uplink the plan routes it by
    /// (its first when none is usable), with the values the plan settled.
    /// `[gateway]`: itself, with the plan's values.
    pub fn gateways(&self) -> Vec<GatewayView> {
        gateway_views(self.profile, self.plan.ok())
    }

    /// The first class (or `[gateway]`): what the single-interface checks
    /// (forwarding, the wire sample, the scrub) look at.
    pub fn gateway(&self) -> Option<crate::profile::Gateway> {
        self.gateways().into_iter().next().map(|v| v.gateway)
    }

    pub fn is_marker(&self) -> bool {
        self.profile.marker.is_some()
    }

    pub fn dscp(&self) -> u8 {
        profile_dscp(self.profile)
    }

    pub fn apply_cmd(&self) -> String {
        format!("dscproute apply --profile {}", self.profile_path)
    }
}

/// The DSCP a profile's traffic carries (the gateway's when both roles;
/// the first class's, or the one the client marks with, for `[[class]]`).
pub fn profile_dscp(profile: &Profile) -> u8 {
    let classes = profile.classes();
    let class = profile
        .marker
        .as_ref()
        .and_then(|m| classes.iter().find(|c| c.dscp == m.dscp))
        .or(classes.first());
    class
        .map(|c| c.dscp)
        .or(profile.marker.as_ref().map(|m| m.dscp))
        .map_or(0, |d| d.value())
}

/// One class as the checks see it.
#[derive(Clone, Debug)]
pub struct GatewayView {
    /// None for `[gateway]`, which has no name in the checks' text.
    pub class: Option<String>,
    pub gateway: crate::profile::Gateway,
    pub resolved: crate::plan::Resolved,
    /// No usable uplink: the plan gave its table no route.
    pub blocked: bool,
    /// Why this uplink (or none): the plan's reason, for a class.
    pub why: String,
}

pub fn gateway_views(profile: &Profile, plan: Option<&Plan>) -> Vec<GatewayView> {
    if let Some(g) = &profile.gateway {
        return vec![GatewayView {
            class: None,
            gateway: g.clone(),
            resolved: plan.map(|p| p.resolved.clone()).unwrap_or_default(),
            blocked: false,
            why: String::new(),
        }];
    }
    profile
        .classes
        .iter()
        .map(|c| {
            let rc = plan.and_then(|p| p.resolved.classes.iter().find(|r| r.name == c.name));
            let uplink = rc
                .and_then(|r| r.uplink.as_deref())
                .and_then(|u| c.uplinks.iter().find(|x| x.interface == u))
                .unwrap_or(&c.uplinks[0]);
            let resolved = rc.map_or_else(Default::default, |r| crate::plan::Resolved {
                dscp: r.dscp,
                interface: r.uplink.clone(),
                mark: r.mark,
                mask: r.mask,
                table_id: r.table_id,
                table_name: r.table_name.clone(),
                priority: r.priority,
                ..Default::default()
            });
            GatewayView {
                class: Some(c.name.clone()),
                gateway: c.through(uplink),
                resolved,
                blocked: rc.is_some_and(|r| r.uplink.is_none()),
                why: rc.map(|r| r.uplink_why.clone()).unwrap_or_default(),
            }
        })
        .collect()
}

/// How much of the plan is in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Applied {
    /// Every step is in place.
    Yes,
    /// Some steps are, some are missing.
    Partly,
    /// Nothing of the profile is in place.
    No,
    /// Unknown: no plan, or not root (the firewall could not be read).
    Unknown,
}

/// Is the profile applied here? Sysctls that already had the wanted value
/// say nothing, so only steps that create something count.
pub fn applied(plan: &Plan, facts: &HostFacts) -> Applied {
    if !facts.is_root {
        return Applied::Unknown;
    }
    let creating: Vec<_> = plan
        .steps
        .iter()
        .filter(|s| !after::is_sysctl(s) && !after::is_stale(s))
        .collect();
    let in_place = creating
        .iter()
        .filter(|s| s.state == StepState::InPlace)
        .count();
    if in_place == 0 {
        Applied::No
    } else if in_place == creating.len() {
        Applied::Yes
    } else {
        Applied::Partly
    }
}

/// Run every check that applies to the profile's roles and state.
pub fn evaluate(i: &Inputs, runner: &dyn Runner) -> Vec<Check> {
    let mut out = preflight::checks(i, runner);
    let Ok(plan) = i.plan else {
        return out;
    };
    match applied(plan, i.facts) {
        Applied::Unknown => return out,
        Applied::No => {
            out.push(Check::fail(
                "applied",
                format!(
                    "nothing of this profile is in place on this host ({} steps to add): the \
                     checks after apply were skipped",
                    plan.pending().count()
                ),
                "the plan for the profile against iptables-save, ip rule, ip route",
                format!(
                    "apply it: {} (preview first with `dscproute plan`)",
                    i.apply_cmd()
                ),
            ));
            return out;
        }
        Applied::Yes | Applied::Partly => {}
    }
    out.extend(after::checks(i, plan, runner));
    if let Some(w) = i.wire {
        out.extend(wire::checks(i, w));
    }
    out.push(host::dns_check(i));
    out
}

/// What `doctor --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub profile: String,
    pub roles: Vec<Role>,
    pub applied: Applied,
    /// Worst status of all checks.
    pub status: Status,
    pub pass: usize,
    pub warn: usize,
    pub fail: usize,
    pub checks: Vec<Check>,
    /// 0 when no check failed (warnings allowed), 1 otherwise.
    pub exit: i32,
}

impl Report {
    pub fn new(profile: &str, roles: Vec<Role>, applied: Applied, checks: Vec<Check>) -> Report {
        let count = |s| checks.iter().filter(|c| c.status == s).count();
        let (pass, warn, fail) = (
            count(Status::Pass),
            count(Status::Warn),
            count(Status::Fail),
        );
        let status = checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(Status::Pass);
        Report {
            profile: profile.to_string(),
            roles,
            applied,
            status,
            pass,
            warn,
            fail,
            exit: i32::from(fail > 0),
            checks,
        }
    }
}

const WIDTH: usize = 100;

/// `PASS  name: detail`, then `looked at:` and `fix:` lines, indented.
pub fn render_text(r: &Report) -> String {
    let mut o = String::new();
    for c in &r.checks {
        let head = format!("{}: {}", c.name, c.detail);
        for (n, l) in crate::text::wrap(&head, WIDTH - 6).into_iter().enumerate() {
            let lead = if n == 0 { c.status.word() } else { "" };
            let _ = writeln!(o, "{lead:<4}  {l}");
        }
        for (label, text) in [("looked at", Some(&c.looked_at)), ("fix", c.fix.as_ref())] {
            let Some(text) = text else { continue };
            for (n, l) in crate::text::wrap(&format!("{label}: {text}"), WIDTH - 8)
                .into_iter()
                .enumerate()
            {
                let indent = if n == 0 { "      " } else { "        " };
                let _ = writeln!(o, "{indent}{l}");
            }
        }
    }
    let verdict = match r.status {
        Status::Pass => "all checks pass",
        Status::Warn => "no failure (warnings are worth reading)",
        Status::Fail => "something is broken (see FAIL)",
    };
    let _ = writeln!(
        o,
        "\nDoctor: {} passed, {} warning{}, {} failed: {verdict}.",
        r.pass,
        r.warn,
        if r.warn == 1 { "" } else { "s" },
        r.fail
    );
    o
}

#[cfg(test)]
mod tests;
