//! `dscproute doctor`: gather (probe, plan, host files, counters around a
//! few seconds of the wire), evaluate the checks, print them. Exit 0 when
//! nothing failed (warnings allowed), 1 when a check failed, 2 for a bad
//! profile.

use super::{exit, fail};
use crate::apply::StateDir;
use crate::apply::status::{CountedRule, counted_rules};
use crate::doctor::{self, Applied, Check, Inputs, Report, wire};
use crate::output;
use crate::plan::{self, PlanOptions};
use crate::probe;
use crate::profile::Profile;
use crate::runner::{Runner, SystemRunner};
use std::path::Path;
use std::time::Duration;

/// How long the wire is watched at most (it ends early once the DSCP shows).
const WINDOW: Duration = Duration::from_secs(5);

fn our_counters(runner: &dyn Runner) -> Vec<CountedRule> {
    let mut v = Vec::new();
    for (family, tool) in [("IPv4", "iptables-save"), ("IPv6", "ip6tables-save")] {
        if let Ok(out) = runner.run_args(&[tool, "-c"])
            && out.success()
        {
            v.extend(counted_rules(family, &out.stdout));
        }
    }
    v
}

pub fn doctor_cmd(_state: &StateDir, profile_path: &Path, json: bool) -> i32 {
    let profile = match Profile::load(profile_path) {
        Ok(p) => p,
        Err(e) => return fail(exit::USAGE, &e.to_string()),
    };
    let runner = SystemRunner;
    let facts = probe::probe_system();
    let planned = plan::plan(&profile, &facts, PlanOptions::default());
    let extras = doctor::host::gather(Path::new("/"), &facts, &runner);
    let applied = planned
        .as_ref()
        .map_or(Applied::Unknown, |p| doctor::applied(p, &facts));

    let mut counters = None;
    let mut wire_sample = None;
    let mut capture_problem = None;
    if matches!(applied, Applied::Yes | Applied::Partly) {
        let before = our_counters(&runner);
        let vpn = profile.gateway.as_ref().map(|g| g.interface.as_str());
        let dscp = profile
            .gateway
            .as_ref()
            .map(|g| g.dscp)
            .or(profile.marker.as_ref().map(|m| m.dscp))
            .map_or(0, |d| d.value());
        let until = match (&profile.gateway, &profile.marker) {
            (Some(_), _) => Some(wire::Evidence::LanIn),
            (None, Some(_)) => Some(wire::Evidence::Egress),
            _ => None,
        };
        if !json {
            output::eprint_line(&format!(
                "dscproute: watching the wire for DSCP {dscp} (up to {} s)…",
                WINDOW.as_secs()
            ));
        }
        match wire::sample(&facts, vpn, dscp, WINDOW, until) {
            Ok(w) => wire_sample = Some(w),
            Err(e) => capture_problem = Some(e.to_string()),
        }
        counters = Some((before, our_counters(&runner)));
    }

    let source = profile_path.display().to_string();
    let inputs = Inputs {
        profile: &profile,
        profile_path: &source,
        facts: &facts,
        plan: planned.as_ref(),
        extras: &extras,
        counters,
        wire: wire_sample.as_ref(),
    };
    let mut checks = doctor::evaluate(&inputs, &runner);
    if let Some(p) = capture_problem {
        checks.push(Check::warn(
            "dscp-on-wire",
            format!("could not watch the wire: {p}"),
            "an AF_PACKET capture on every interface",
            "run doctor as root",
        ));
    }
    let roles = inputs.roles();
    let report = Report::new(&source, roles, applied, checks);
    if json {
        let text = serde_json::to_string_pretty(&report).expect("report serializes");
        output::print_or_quit(&format!("{text}\n"));
    } else {
        output::print_or_quit(&doctor::render_text(&report));
    }
    if report.exit == 0 {
        exit::OK
    } else {
        exit::FAILED
    }
}
