//! `dscproute rollback`: prepare, ask, run (`ops::rollback`).

use super::apply::event_line;
use super::{ask, code, exit, fail, print_json};
use crate::apply::Scope;
use crate::apply::{Event, StateDir};
use crate::ops::Host;
use crate::ops::rollback::{self as op, Report, Request, Target};
use crate::output;
use clap::Args;

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// Do not ask; required when stdin is not a terminal.
    #[arg(long, short)]
    pub yes: bool,
    /// Also remove everything dscproute owns, found by its tags, even
    /// without a journal.
    #[arg(long)]
    pub all: bool,
    /// Undo only the last transaction (an apply, a repair): what earlier
    /// ones left in place stays. Without it, the whole setup is undone.
    #[arg(long, conflicts_with = "all")]
    pub last: bool,
    /// Print one JSON result object instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(state: StateDir, args: &RollbackArgs) -> i32 {
    let host = Host::system(state, true);
    let req = Request {
        all: args.all,
        last: args.last,
    };
    let ready = match op::prepare(&host, req) {
        Ok(r) => r,
        Err(e) => return fail(code(e.kind()), &e.to_string()),
    };
    if !args.yes
        && let Some(target) = ready.target()
    {
        let (what, undo) = match target {
            Target::Everything { undo } => {
                ("everything dscproute owns on this host".to_string(), undo)
            }
            Target::Journal {
                id,
                scope: Scope::Last,
                undo,
            } => (format!("transaction {id} ({} changes)", undo.len()), undo),
            Target::Journal { undo, .. } => {
                (format!("the whole setup ({} changes)", undo.len()), undo)
            }
        };
        if !undo.is_empty() {
            output::print("This undoes, in this order:\n");
            for line in &undo {
                output::print(&format!("  {line}\n"));
            }
        }
        match ask(&format!("Roll back {what}?")) {
            Some(true) => {}
            Some(false) => return fail(exit::FAILED, "rollback cancelled: nothing was changed"),
            None => {
                return fail(
                    exit::USAGE,
                    "refusing to roll back without --yes: stdin is not a terminal",
                );
            }
        }
    }
    let json = args.json;
    let mut progress = |e: Event| {
        if let Some(line) = event_line(&e).filter(|_| !json) {
            output::print(&format!("{line}\n"));
        }
    };
    let done = match ready.run(&host, &mut progress) {
        Ok(d) => d,
        Err(e) => return fail(code(e.kind()), &e.to_string()),
    };
    if let Some(u) = done.unsaved() {
        output::eprint_line(&format!("dscproute: {u}"));
    }
    if let Some(s) = &done.swept {
        if !json {
            for r in &s.removals {
                output::print(&format!("  remove: {r}\n"));
            }
        }
        for f in &s.failures {
            output::eprint_line(&format!("dscproute: could not remove: {f}"));
        }
    }
    if json {
        print_json(&Report::of(&done));
    } else {
        output::print(&format!("{}\n", done.message().trim_start()));
    }
    if done.ok() { exit::OK } else { exit::FAILED }
}
