//! The command line: each subcommand is a few lines over the library.

mod apply;
mod doctor;
mod explain;
mod facts;
mod packaging;
mod persist;
mod plan;
mod tui;
mod watch;

use crate::output;
use clap::{Parser, Subcommand};
pub use plan::load_facts;
use std::path::PathBuf;

/// Exit statuses, stable for scripts (documented in README).
pub mod exit {
    pub const OK: i32 = 0;
    /// A command ran and failed (e.g. a step of apply).
    pub const FAILED: i32 = 1;
    /// Bad input: usage, an invalid value or profile. Nothing was changed.
    pub const USAGE: i32 = 2;
    /// The host does not allow the plan (preflight or conflict). Nothing was changed.
    pub const REFUSED: i32 = 3;
    /// Not now: another change is running, one awaits confirmation or was
    /// interrupted, root is needed, or the state directory could be changed
    /// by another user. Nothing was changed.
    pub const BLOCKED: i32 = 4;
}

#[derive(Debug, Parser)]
#[command(
    name = "dscproute",
    version,
    about = "Route one group's traffic through a VPN on the gateway, signalled in the DSCP bits",
    long_about = "dscproute carries a routing decision from a client host to its gateway in the \
                  DSCP bits of the IP header: processes of a chosen group get a DSCP value on the \
                  client, and the gateway routes packets carrying that value through a VPN."
)]
pub struct Cli {
    /// Where the journal and lock live [env: DSCPROUTE_STATE_DIR] [default: /var/lib/dscproute]
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain a DSCP value or ToS byte: bits, names, legacy reading, Wi-Fi
    /// priority, and the exact iptables, nft, tcpdump and Wireshark expressions.
    Explain {
        /// A DSCP (7, 0x07, 0b000111, af41, ef, le, …) or, with --tos, a whole byte.
        // A value starting with '-' (`-1`) reaches our parser, which names
        // what is accepted, instead of clap's "unexpected argument".
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// Read VALUE as a whole ToS / traffic-class byte (DSCP << 2 | ECN).
        #[arg(long)]
        tos: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show every command a profile needs on this host, with its reason and
    /// its undo, without changing anything (dry run).
    Plan {
        /// The profile (TOML) to plan.
        #[arg(long, short)]
        profile: PathBuf,
        /// Print the plan as JSON.
        #[arg(long, conflicts_with = "script")]
        json: bool,
        /// Print a standalone POSIX sh script (apply and undo) for a host
        /// without dscproute.
        #[arg(long)]
        script: bool,
        /// Plan against host facts recorded with `dscproute facts --json`
        /// instead of probing this host.
        #[arg(long, value_name = "FILE")]
        facts: Option<PathBuf>,
    },
    /// Apply a profile: run the plan's steps with a journal; on the first
    /// failure undo the completed ones. Needs root.
    Apply {
        #[arg(long, short)]
        profile: PathBuf,
        /// Do not ask; required when stdin is not a terminal.
        #[arg(long, short)]
        yes: bool,
        /// Commit-confirmed: roll back after SECS seconds unless `dscproute
        /// confirm` runs first (survives SSH hang-up and the apply dying).
        #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86400))]
        confirm: Option<u64>,
        /// Print one JSON result object instead of progress text.
        #[arg(long)]
        json: bool,
    },
    /// Undo the last applied, unconfirmed or interrupted transaction exactly.
    Rollback {
        /// Do not ask; required when stdin is not a terminal.
        #[arg(long, short)]
        yes: bool,
        /// Also remove everything dscproute owns, found by its tags, even
        /// without a journal.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Keep a change applied with --confirm and disarm its timer.
    Confirm,
    /// What dscproute has in place here: chains with counters, rules,
    /// routes, changed sysctls, pending confirmation, interrupted transactions.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The interactive wizard (also what `dscproute` alone opens): role,
    /// group, DSCP with a live bit layout, mark and table, gateway, preview,
    /// apply with a confirm countdown, status and rollback.
    Tui {
        /// Preload the answers from a profile.
        #[arg(long, short)]
        profile: Option<PathBuf>,
        /// Use facts recorded with `dscproute facts --json` (a dry run).
        #[arg(long, value_name = "FILE")]
        facts: Option<PathBuf>,
    },
    /// Explore the DS byte bit by bit (the TUI's learn mode).
    Learn,
    /// Check that a setup works and say why not: tools, kernel support,
    /// forwarding, rp_filter, conflicts, and after apply that rules, routes,
    /// counters, the kill switch and the DSCP on the wire are right.
    Doctor {
        #[arg(long, short)]
        profile: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Live per-DSCP view of the traffic on an interface (needs root).
    Watch {
        #[arg(long, short)]
        interface: String,
        /// Show the top source/destination pairs for this DSCP.
        #[arg(long)]
        dscp: Option<String>,
        /// Stop after this many seconds (with --json: print one summary).
        #[arg(long, value_name = "S")]
        seconds: Option<u64>,
        #[arg(long)]
        json: bool,
    },
    /// Install a kept profile to apply at boot (systemd unit dscproute@NAME):
    /// only after an apply that was confirmed (or made without --confirm).
    Persist {
        /// The profile that was applied and kept.
        #[arg(long, short)]
        profile: PathBuf,
        /// Name of the persisted profile and unit instance [default: the file stem].
        #[arg(long)]
        name: Option<String>,
        /// Filesystem root to install under (for tests and image builds).
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
    },
    /// Remove a persisted profile and disable its unit (the running setup
    /// stays; `rollback` removes it).
    Unpersist {
        /// The NAME given to (or chosen by) `persist`.
        name: String,
        /// Filesystem root the profile was installed under.
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
    },
    /// Print the man page (roff) generated from this command line.
    Man,
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
    /// (internal) the detached confirm timer.
    #[command(name = "__confirm-timer", hide = true)]
    ConfirmTimer {
        #[arg(long)]
        txn: String,
        #[arg(long)]
        deadline: u64,
        /// Do not detach (run as a systemd unit).
        #[arg(long)]
        foreground: bool,
    },
    /// Print what dscproute reads about this host (groups, links, routes,
    /// rules, table names, sysctls, tools). Read-only.
    Facts {
        /// Print JSON (the format `plan --facts` reads).
        #[arg(long)]
        json: bool,
    },
}

/// Run the parsed command line; returns the process exit status.
pub fn run(cli: Cli) -> i32 {
    let state = crate::apply::StateDir::resolve(cli.state_dir.as_deref());
    // Root reads and writes the journal and lock of these commands: refuse
    // a state directory another user could change, before anything else.
    let uses_state = matches!(
        cli.command,
        None | Some(
            Command::Apply { .. }
                | Command::Rollback { .. }
                | Command::Confirm
                | Command::Status { .. }
                | Command::ConfirmTimer { .. }
                | Command::Persist { .. }
                | Command::Tui { .. }
                | Command::Learn
        )
    );
    if uses_state && let Err(e) = state.check_trusted() {
        return fail(exit::BLOCKED, &e.to_string());
    }
    match cli.command {
        Some(Command::Explain { value, tos, json }) => explain::explain(&value, tos, json),
        Some(Command::Plan {
            profile,
            json,
            script,
            facts,
        }) => plan::plan_cmd(&profile, json, script, facts.as_deref()),
        Some(Command::Facts { json }) => facts::facts_cmd(json),
        Some(Command::Apply {
            profile,
            yes,
            confirm,
            json,
        }) => apply::apply_cmd(&state, &profile, yes, confirm, json),
        Some(Command::Rollback { yes, all, json }) => apply::rollback_cmd(&state, yes, all, json),
        Some(Command::Confirm) => apply::confirm_cmd(&state),
        Some(Command::Status { json }) => apply::status_cmd(&state, json),
        Some(Command::ConfirmTimer {
            txn,
            deadline,
            foreground,
        }) => crate::apply::timer::run(state, &txn, deadline, foreground),
        None => tui::tui_cmd(&state, None, None, crate::tui::app::ScreenId::Role),
        Some(Command::Tui { profile, facts }) => tui::tui_cmd(
            &state,
            profile.as_deref(),
            facts.as_deref(),
            crate::tui::app::ScreenId::Role,
        ),
        Some(Command::Learn) => tui::tui_cmd(&state, None, None, crate::tui::app::ScreenId::Learn),
        Some(Command::Doctor { profile, json }) => doctor::doctor_cmd(&state, &profile, json),
        Some(Command::Watch {
            interface,
            dscp,
            seconds,
            json,
        }) => watch::watch_cmd(&interface, dscp.as_deref(), seconds, json),
        Some(Command::Persist {
            profile,
            name,
            root,
        }) => persist::persist_cmd(&state, &profile, name.as_deref(), &root),
        Some(Command::Unpersist { name, root }) => persist::unpersist_cmd(&name, &root),
        Some(Command::Man) => packaging::man_cmd(),
        Some(Command::Completions { shell }) => packaging::completions_cmd(shell),
    }
}

pub fn fail(code: i32, message: &str) -> i32 {
    output::eprint_line(&format!("dscproute: {message}"));
    code
}
