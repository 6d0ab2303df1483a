//! `dscproute agent`: apply the profile if it is not in place, then keep it
//! so (`agent::Supervisor` over rtnetlink events and a drift check) until
//! SIGTERM or SIGINT, which leave the setup in place.

use super::apply::event_line;
use super::{code, exit, fail};
use crate::agent::{
    Exit, Health, HostConverge, NetlinkEvents, PingProber, Probe, Report, Supervisor, SystemClock,
    Timing, Watch, WatchSet, netlink,
};
use crate::apply::StateDir;
use crate::apply::agent_record::{AgentRecord, ClassUplink, LastRepair};
use crate::apply::journal::now_unix;
use crate::apply::lock::{Lock, LockError};
use crate::backend::Op;
use crate::ops::Host;
use crate::ops::apply::{self as op, Applied, ApplyError, Progress, Request};
use crate::ops::converge::{self, Found};
use crate::output;
use crate::plan::{self, PlanOptions};
use crate::probe::{HostFacts, Unhealthy};
use crate::profile::Profile;
use crate::runner::signals::{self, OnStop};
use clap::Args;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The profile (TOML) to keep in place.
    #[arg(long, short)]
    pub profile: PathBuf,
    /// Netfilter backend, overriding the profile's `backend` key.
    #[arg(long, value_parser = ["auto", "nft", "iptables"])]
    pub backend: Option<String>,
    /// Seconds between checks for what the kernel announces no event for
    /// (our iptables chains and jumps).
    #[arg(long, value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub drift_check: u64,
}

fn say(line: &str) {
    // Never fails, never panics: a closed stdout must not stop the agent.
    output::print(&format!("{line}\n"));
}

pub fn run(state: StateDir, args: &AgentArgs) -> i32 {
    let mut profile = match Profile::load(&args.profile) {
        Ok(p) => p,
        Err(e) => return fail(exit::USAGE, &e.to_string()),
    };
    if let Some(b) = args
        .backend
        .as_deref()
        .and_then(crate::profile::Backend::parse)
    {
        profile.backend = b;
    }
    let source = args.profile.display().to_string();
    let host = Host::system(state.clone(), false);
    if !host.is_root {
        return fail(
            exit::BLOCKED,
            "the agent changes the host's firewall and routing and needs root: run it as root",
        );
    }
    if let Err(e) = state.ensure() {
        return fail(exit::BLOCKED, &e.to_string());
    }
    let _agent_lock = match Lock::try_acquire_agent(&state.agent_lock()) {
        Ok(l) => l,
        Err(LockError::Busy(pid)) => {
            let who = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            return fail(
                exit::BLOCKED,
                &format!(
                    "another dscproute agent is running here{who}: one agent per host and state \
                     directory"
                ),
            );
        }
        Err(LockError::Io(e)) => return fail(exit::FAILED, &format!("agent lock: {e}")),
    };
    // From here a stop signal only sets the flag: a repair in progress
    // finishes, then the agent leaves with the setup in place.
    signals::guard(OnStop::Finish);
    // Pending until the event source waits: none slips between the loop's
    // look at the flag and its wait.
    signals::hold_stop_signals();
    // Subscribed before the first check: nothing that happens after it is missed.
    let events = match NetlinkEvents::open() {
        Ok(s) => s,
        Err(e) => {
            return fail(
                exit::FAILED,
                &format!("cannot follow rtnetlink events: {e}"),
            );
        }
    };
    let facts = host.facts_for(&profile);
    let plan = match plan::plan(&profile, &facts, PlanOptions::default()) {
        Ok(p) => p,
        Err(e) => {
            for p in &e.problems {
                output::eprint_line(&format!("dscproute: {p}"));
            }
            return exit::REFUSED;
        }
    };
    if let Some(status) = start(&host, &profile, &source) {
        return status;
    }
    let mut watch = Watch::new(watch_set(&plan));
    netlink::learn_indices(&mut watch);
    let mut record = AgentRecord {
        pid: std::process::id(),
        since_unix: now_unix(),
        profile: source.clone(),
        repairs: 0,
        last_repair: None,
        classes: plan
            .resolved
            .classes
            .iter()
            .map(|c| ClassUplink {
                class: c.name.clone(),
                uplink: c.uplink.clone(),
                since_unix: now_unix(),
                why: c.uplink_why.clone(),
            })
            .collect(),
        held_down: Vec::new(),
    };
    save(&record, &state);
    let timing = Timing {
        drift_period: Duration::from_secs(args.drift_check),
        ..Timing::default()
    };
    // The active checks' verdicts reach the plan through the facts: every
    // probe of the host (check and repair alike) carries them.
    let unhealthy: Mutex<Vec<Unhealthy>> = Mutex::new(Vec::new());
    let probe = |reads| HostFacts {
        unhealthy: unhealthy.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        ..crate::probe::probe_system_reading(reads)
    };
    let health = Health::new(Probe::of(&profile.classes()), std::time::Instant::now());
    let converge = HostConverge::new(
        Host {
            probe: &probe,
            ..Host::system(state.clone(), false)
        },
        profile,
        source,
        &unhealthy,
    );
    let mut sup = Supervisor::new(events, converge, SystemClock, watch, timing).with_health(
        health,
        Box::new(PingProber {
            runner: &crate::runner::SystemRunner,
        }),
    );
    let outcome = sup.run(
        || signals::received().is_some(),
        |r| {
            let line = r.to_string();
            say(&line);
            let held = unhealthy.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if held != record.held_down {
                record.held_down = held;
                save(&record, &state);
            }
            if let Report::Switched { class, to, why, .. } = r {
                let entry = ClassUplink {
                    class: class.clone(),
                    uplink: to.clone(),
                    since_unix: now_unix(),
                    why: why.clone(),
                };
                match record.classes.iter_mut().find(|c| c.class == *class) {
                    Some(c) => *c = entry,
                    None => record.classes.push(entry),
                }
                save(&record, &state);
            }
            if matches!(r, Report::Repaired { .. } | Report::Held { .. }) {
                record.repairs += 1;
                record.last_repair = Some(LastRepair {
                    at_unix: now_unix(),
                    line,
                });
                save(&record, &state);
            }
        },
    );
    AgentRecord::remove(&state);
    match outcome {
        Exit::Stopped => {
            let sig = signals::received().map_or("a stop signal".into(), signals::name);
            say(&format!(
                "stopped by {sig}: the setup stays in place; `dscproute rollback` removes it"
            ));
            exit::OK
        }
        Exit::SourceFailed(e) => fail(exit::FAILED, &format!("rtnetlink events failed: {e}")),
        Exit::Fatal(e) => fail(exit::FAILED, &e),
    }
}

/// The first convergence, answered as `apply --yes` would: `Some(status)`
/// when the agent must not go on. While the VPN is unusable (a boot that
/// starts the agent first), what does not need it goes in place now.
fn start(host: &Host, profile: &Profile, source: &str) -> Option<i32> {
    let waiting = match converge::check(host, profile) {
        Ok(Found::Whole) => {
            say("in place: this host already matches the profile");
            return None;
        }
        // All that can be is in place: the supervisor says what it waits for.
        Ok(Found::Waiting { missing, .. }) if missing.is_empty() => return None,
        Ok(Found::Waiting { .. }) => true,
        Ok(Found::Missing(_)) => false,
        Err(e) => return Some(fail(exit::REFUSED, &e.to_string())),
    };
    let req = Request {
        profile,
        source,
        confirm_secs: None,
        previewed: None,
        vpn_may_wait: true,
    };
    let mut progress = |p: Progress| match p {
        Progress::Recovered(r) => output::eprint_line(&format!("dscproute: {r}")),
        Progress::Recovering(e) | Progress::Step(e) => {
            if let Some(line) = event_line(&e) {
                say(&line);
            }
        }
    };
    match op::apply(host, &req, &mut progress) {
        Ok(Applied::NothingToDo) => None,
        Ok(Applied::Changed(j)) => {
            let meanwhile = match (&profile.gateway, waiting) {
                (Some(g), true) => {
                    let what = if g.kill_switch {
                        "kill switch in place"
                    } else {
                        "in place without the VPN"
                    };
                    format!(
                        " without the VPN: {what}, waiting for {}; the routes through it follow \
                         when it is back",
                        g.interface
                    )
                }
                _ => String::new(),
            };
            say(&format!(
                "applied {} steps (transaction {}){meanwhile}",
                j.steps.len(),
                j.id
            ));
            None
        }
        Err(ApplyError::Refused(errors)) => {
            for e in &errors {
                output::eprint_line(&format!("dscproute: {e}"));
            }
            Some(exit::REFUSED)
        }
        Err(e) => Some(fail(code(e.kind()), &e.to_string())),
    }
}

/// The VPN interface, our table and our policy rules' priorities.
fn watch_set(plan: &plan::Plan) -> WatchSet {
    let r = &plan.resolved;
    let mut priorities: Vec<u32> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.apply {
            Op::PolicyRule { rule, .. } => Some(rule.pref),
            _ => None,
        })
        .collect();
    priorities.sort_unstable();
    priorities.dedup();
    // Every class's uplinks: a failover follows their links.
    let mut interfaces: Vec<String> = r.interface.iter().cloned().collect();
    for c in &r.classes {
        for u in &c.uplinks {
            if !interfaces.contains(u) {
                interfaces.push(u.clone());
            }
        }
    }
    let table = r.table_id.unwrap_or(0);
    let mut set = WatchSet::new(interfaces, table, priorities);
    set.other_tables = r
        .classes
        .iter()
        .filter_map(|c| c.table_id)
        .filter(|t| *t != table)
        .collect();
    set
}

fn save(record: &AgentRecord, state: &StateDir) {
    if let Err(e) = record.save(state) {
        output::eprint_line(&format!(
            "dscproute: cannot write {}: {e} (status will not show this agent)",
            state.agent_file().display()
        ));
    }
}
