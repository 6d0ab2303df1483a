//! `dscproute apply`: prepare (lock, checks, a fresh plan), ask, run; the
//! sequence itself is `ops::apply`.

use super::{ask, code, exit, fail, print_json};
use crate::apply::{Event, StateDir};
use crate::ops::Host;
use crate::ops::apply::{self as op, Applied, ApplyError, Prepared, Progress, Report, Request};
use crate::output;
use crate::plan;
use crate::profile::Profile;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The profile (TOML) to apply.
    #[arg(long, short)]
    pub profile: PathBuf,
    /// Netfilter backend, overriding the profile's `backend` key.
    #[arg(long, value_parser = ["auto", "nft", "iptables"])]
    pub backend: Option<String>,
    /// Do not ask; required when stdin is not a terminal.
    #[arg(long, short)]
    pub yes: bool,
    /// Commit-confirmed: roll back after SECS seconds unless `dscproute
    /// confirm` runs first (survives SSH hang-up and the apply dying).
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub confirm: Option<u64>,
    /// Print one JSON result object instead of progress text.
    #[arg(long)]
    pub json: bool,
}

/// A progress line for a step event (`None`: nothing worth a line).
pub(super) fn event_line(e: &Event) -> Option<String> {
    Some(match e {
        Event::Started {
            index,
            total,
            command,
        } => format!("[{:>2}/{total}] {command}", index + 1),
        Event::Done { .. } | Event::Undone { .. } => return None,
        Event::Failed { index, failure } => format!(
            "  step {} failed: {}\n  {}",
            index + 1,
            failure.command,
            failure.stderr.trim()
        ),
        Event::Undoing { index, command } => format!("  undo {:>2}: {command}", index + 1),
        Event::UndoFailed { index, failure } => {
            format!("  undo {} FAILED: {}", index + 1, failure.stderr.trim())
        }
    })
}

/// Progress as text lines (none with --json); a closed reboot-time
/// transaction is said on stderr either way.
fn progress(json: bool) -> impl FnMut(Progress) {
    move |p: Progress| match p {
        Progress::Recovered(r) => output::eprint_line(&format!("dscproute: {r}")),
        Progress::Recovering(e) | Progress::Step(e) => {
            if let Some(line) = event_line(&e).filter(|_| !json) {
                output::print(&format!("{line}\n"));
            }
        }
    }
}

pub fn run(state: StateDir, args: &ApplyArgs) -> i32 {
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
    let host = Host::system(state, true);
    let source = args.profile.display().to_string();
    let req = Request {
        profile: &profile,
        source: &source,
        confirm_secs: args.confirm,
        previewed: None,
        vpn_may_wait: false,
    };
    let mut progress = progress(args.json);
    let result = match op::prepare(&host, &req, &mut progress) {
        Ok(Prepared::NothingToDo) => Ok(Applied::NothingToDo),
        Ok(Prepared::Ready(ready)) => {
            if !args.yes {
                output::print(&plan::render_text(&ready.plan, &source));
                let n = ready.plan.pending().count();
                match ask(&format!("\nApply these {n} changes?")) {
                    Some(true) => {}
                    Some(false) => {
                        return fail(exit::FAILED, "apply cancelled: nothing was changed");
                    }
                    None => {
                        return fail(
                            exit::USAGE,
                            "refusing to apply without --yes: stdin is not a terminal, so nobody \
                             can confirm the plan; review it with `dscproute plan` and rerun \
                             with --yes",
                        );
                    }
                }
            }
            ready.run(&host, &mut progress)
        }
        Err(e) => Err(e),
    };
    if args.json
        && let Some(report) = Report::of(&result)
    {
        print_json(&report);
    }
    match result {
        Ok(Applied::NothingToDo) => {
            if !args.json {
                output::print("Nothing to do: this host already matches the profile.\n");
            }
            exit::OK
        }
        Ok(Applied::Changed(j)) => {
            if !args.json {
                output::print(&format!(
                    "Applied {} steps (transaction {}).\n",
                    j.steps.len(),
                    j.id
                ));
                if let Some(secs) = args.confirm {
                    output::print(&format!(
                        "Keep it: run `dscproute confirm` within {secs} s, or it is rolled back \
                         automatically (also if this session dies).\n"
                    ));
                }
            }
            exit::OK
        }
        Err(ApplyError::Refused(errors)) => {
            for e in &errors {
                output::eprint_line(&format!("dscproute: {e}"));
            }
            exit::REFUSED
        }
        Err(e) => {
            if let ApplyError::StepFailed { journal, .. } = &e
                && let Some(u) = &journal.unsaved
            {
                output::eprint_line(&format!("dscproute: {u}"));
            }
            fail(code(e.kind()), &e.to_string())
        }
    }
}
