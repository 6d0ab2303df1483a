//! `doctor`: gather what the checks read (probe, plan, host files, our
//! counters around a few seconds of the wire), evaluate the checks, and
//! return the report. The wire is watched only when the profile is (at
//! least partly) applied.

use super::Host;
use crate::doctor::{self, Applied, Check, Inputs, Report, wire};
use crate::plan::{self, PlanOptions};
use crate::probe::{CountedRule, counted_rules};
use crate::profile::Profile;
use crate::runner::Runner;
use std::time::Duration;

/// How long the wire is watched at most (it ends early once the DSCP shows).
pub const WINDOW: Duration = Duration::from_secs(5);

pub struct Request<'a> {
    pub profile: &'a Profile,
    /// How the profile is named (the fixes name it in commands).
    pub source: &'a str,
}

/// The wire is about to be watched for this DSCP, for at most this long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watching {
    pub dscp: u8,
    pub window: Duration,
}

fn our_counters(runner: &dyn Runner) -> Vec<CountedRule> {
    let mut v = Vec::new();
    for (family, tool) in [("IPv4", "iptables-save"), ("IPv6", "ip6tables-save")] {
        if let Ok(out) = runner.run_args(&[tool, "-c"])
            && out.success()
        {
            v.extend(counted_rules(family, &out.stdout));
        }
    }
    v.extend(crate::backend::nft::read_counters(runner));
    v
}

/// Every check that applies; `watching` is told before the wire sample.
pub fn doctor(host: &Host, req: &Request, watching: &mut dyn FnMut(Watching)) -> Report {
    let profile = req.profile;
    let mut facts = host.facts_for(profile);
    // A running agent's active checks hold some uplinks down: plan as it does.
    if let Some(a) = crate::apply::agent_record::AgentRecord::running(&host.state) {
        facts.unhealthy = a.held_down;
    }
    let planned = plan::plan(profile, &facts, PlanOptions::default());
    let extras = doctor::host::gather(&host.root, &facts, host.runner);
    let applied = planned
        .as_ref()
        .map_or(Applied::Unknown, |p| doctor::applied(p, &facts));

    let mut counters = None;
    let mut wire_sample = None;
    let mut capture_problem = None;
    if matches!(applied, Applied::Yes | Applied::Partly) {
        let before = our_counters(host.runner);
        let first = doctor::gateway_views(profile, planned.as_ref().ok())
            .into_iter()
            .next();
        let vpn = first.as_ref().map(|v| v.gateway.interface.as_str());
        let dscp = doctor::profile_dscp(profile);
        let until = match (profile.is_gateway(), &profile.marker) {
            (true, _) => Some(wire::Evidence::LanIn),
            (false, Some(_)) => Some(wire::Evidence::Egress),
            _ => None,
        };
        watching(Watching {
            dscp,
            window: WINDOW,
        });
        match wire::sample(&facts, vpn, dscp, WINDOW, until) {
            Ok(w) => wire_sample = Some(w),
            Err(e) => capture_problem = Some(e.to_string()),
        }
        counters = Some((before, our_counters(host.runner)));
    }

    let inputs = Inputs {
        profile,
        profile_path: req.source,
        facts: &facts,
        plan: planned.as_ref(),
        extras: &extras,
        counters,
        wire: wire_sample.as_ref(),
    };
    let mut checks = doctor::evaluate(&inputs, host.runner);
    if let Some(p) = capture_problem {
        checks.push(Check::warn(
            "dscp-on-wire",
            format!("could not watch the wire: {p}"),
            "an AF_PACKET capture on every interface",
            "run doctor as root",
        ));
    }
    Report::new(req.source, inputs.roles(), applied, checks)
}
