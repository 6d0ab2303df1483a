//! `dscproute confirm` (`ops::confirm`), and the hidden timer it disarms.

use super::{code, exit, fail};
use crate::apply::StateDir;
use crate::ops::{self, Host};
use crate::output;
use clap::Args;

pub fn run(state: StateDir) -> i32 {
    match ops::confirm::confirm(&Host::system(state, false)) {
        Ok(j) => {
            output::print(&format!(
                "Kept transaction {}; the rollback timer is disarmed.\n",
                j.id
            ));
            exit::OK
        }
        Err(e) => fail(code(e.kind()), &e.to_string()),
    }
}

#[derive(Debug, Args)]
pub struct TimerArgs {
    #[arg(long)]
    pub txn: String,
    #[arg(long)]
    pub deadline: u64,
    /// Do not detach (run as a systemd unit).
    #[arg(long)]
    pub foreground: bool,
}

pub fn timer(state: StateDir, args: &TimerArgs) -> i32 {
    crate::apply::timer::run(state, &args.txn, args.deadline, args.foreground)
}
