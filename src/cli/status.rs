//! `dscproute status` (`ops::status`). Exit 1 when the status needs a
//! command (unreadable journal, drift, a pending change nothing will roll
//! back); the advice says which.

use super::{exit, print_json};
use crate::apply::{StateDir, status};
use crate::ops::{self, Host};
use crate::output;
use clap::Args;

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the status as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(state: StateDir, args: &StatusArgs) -> i32 {
    let s = ops::status::status(&Host::system(state, false));
    if args.json {
        print_json(&s);
    } else {
        output::print(&status::render(&s));
    }
    if s.needs_action() {
        exit::FAILED
    } else {
        exit::OK
    }
}
