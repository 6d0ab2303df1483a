//! `dscproute` with no subcommand, `tui` and `learn`: the interactive front.

use super::{exit, fail};
use crate::apply::StateDir;
use crate::profile::Profile;
use crate::tui::app::ScreenId;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Debug, Default, Args)]
pub struct TuiArgs {
    /// Preload the answers from a profile.
    #[arg(long, short)]
    pub profile: Option<PathBuf>,
    /// Use facts recorded with `dscproute facts --json` (a dry run).
    #[arg(long, value_name = "FILE")]
    pub facts: Option<PathBuf>,
}

pub fn run(state: &StateDir, args: &TuiArgs, start: ScreenId) -> i32 {
    let (profile, facts) = (args.profile.as_deref(), args.facts.as_deref());
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        return fail(
            exit::USAGE,
            "the interactive wizard needs a terminal; for scripts use the subcommands (see \
             `dscproute --help`)",
        );
    }
    let profile = match profile {
        Some(p) => match Profile::load(p) {
            Ok(pr) => Some((pr, p.to_path_buf())),
            Err(e) => return fail(exit::USAGE, &e.to_string()),
        },
        None => None,
    };
    let facts = match facts {
        Some(path) => match super::load_facts(Some(path)) {
            Ok(f) => Some(f),
            Err(e) => return fail(exit::USAGE, &e),
        },
        None => None,
    };
    let opts = crate::tui::Options {
        profile,
        facts,
        state: state.clone(),
        start,
    };
    match crate::tui::run(opts) {
        Ok(crate::tui::Ended::Quit) => exit::OK,
        // Said on stderr, which is /dev/null by now if the terminal is gone.
        Ok(crate::tui::Ended::Gone(_)) => fail(
            exit::FAILED,
            "hung up (SIGHUP, or the terminal went away): left the wizard once no change was \
             under way; `dscproute status` shows what is in place",
        ),
        Err(e) => fail(exit::FAILED, &format!("terminal error: {e}")),
    }
}
