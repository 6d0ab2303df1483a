//! The command line: each subcommand is a few lines over the library
//! (`ops` for the use cases): parse the flags (one `Args` struct each),
//! call, print text or JSON, map refusals to exit statuses.

mod agent;
mod apply;
mod confirm;
mod doctor;
mod exec;
mod explain;
mod facts;
mod packaging;
mod persist;
mod plan;
mod recipe;
mod rollback;
mod status;
mod tui;
mod watch;

use crate::ops::Kind;
use crate::output;
use crate::tui::app::ScreenId;
use clap::{Parser, Subcommand};
pub use plan::load_facts;
use serde::Serialize;
use std::io::{BufRead, IsTerminal};
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
    Explain(explain::ExplainArgs),
    /// Show every command a profile needs on this host, with its reason and
    /// its undo, without changing anything (dry run).
    Plan(plan::PlanArgs),
    /// Apply a profile: run the plan's steps with a journal; on the first
    /// failure undo the completed ones. Needs root.
    Apply(apply::ApplyArgs),
    /// Keep a profile in place: apply it if needed, then repair what VPN
    /// reconnects and firewall reloads undo, until SIGTERM or SIGINT (which
    /// leave the setup in place; `rollback` removes it). While the VPN is
    /// unusable (at boot), all that does not need it is in place, the kill
    /// switch too. With `[[class]]`, routes each class through its first
    /// healthy uplink (up, next hop on-link, passing its `check`) and moves
    /// it when that changes. Needs root.
    Agent(agent::AgentArgs),
    /// Undo the last applied, unconfirmed or interrupted transaction exactly.
    Rollback(rollback::RollbackArgs),
    /// Keep a change applied with --confirm and disarm its timer.
    Confirm,
    /// What dscproute has in place here: chains with counters, rules,
    /// routes, changed sysctls, pending confirmation, interrupted transactions.
    Status(status::StatusArgs),
    /// The interactive wizard (also what `dscproute` alone opens): role,
    /// group, DSCP with a live bit layout, mark and table, gateway, preview,
    /// apply with a confirm countdown, status and rollback.
    Tui(tui::TuiArgs),
    /// Explore the DS byte bit by bit (the TUI's learn mode).
    Learn,
    /// Check that a setup works and say why not: tools, kernel support,
    /// forwarding, rp_filter, conflicts, and after apply that rules, routes,
    /// counters, the kill switch and the DSCP on the wire are right.
    Doctor(doctor::DoctorArgs),
    /// Run one command so that its traffic carries the signal: in the
    /// marked group, user, slice or cgroup. Refuses while the client side
    /// is not applied. Needs root (via sudo the command runs as you).
    Exec(exec::ExecArgs),
    /// Live per-DSCP view of the traffic on an interface (needs root).
    Watch(watch::WatchArgs),
    /// Keep a kept profile up, from boot on: install it and enable the
    /// systemd unit dscproute@NAME, which runs `agent` on it. Only after an
    /// apply that was confirmed (or made without --confirm).
    Persist(persist::PersistArgs),
    /// Stop and disable the unit and remove the persisted profile (the setup
    /// stays; `rollback` removes it).
    Unpersist(persist::UnpersistArgs),
    /// Print a self-contained recipe of a profile's client role for a host
    /// that cannot run dscproute: a sh script (linux-sh), an nft -f file
    /// (nftables), PowerShell (windows, --app) or an fw4 include (openwrt,
    /// --src), each with its undo and how to check it on the gateway.
    ClientRecipe(recipe::RecipeArgs),
    /// Print the man page (roff) generated from this command line.
    Man,
    /// Print shell completions.
    Completions(packaging::CompletionsArgs),
    /// (internal) the detached confirm timer.
    #[command(name = "__confirm-timer", hide = true)]
    ConfirmTimer(confirm::TimerArgs),
    /// Print what dscproute reads about this host (groups, links, routes,
    /// rules, table names, sysctls, tools). Read-only.
    Facts(facts::FactsArgs),
}

/// Run the parsed command line; returns the process exit status.
pub fn run(cli: Cli) -> i32 {
    let state = crate::apply::StateDir::resolve(cli.state_dir.as_deref());
    // Root reads and writes the journal and lock of these commands: refuse
    // a state directory another user could change, before anything else.
    let uses_state = matches!(
        cli.command,
        None | Some(
            Command::Apply(_)
                | Command::Agent(_)
                | Command::Rollback(_)
                | Command::Confirm
                | Command::Status(_)
                | Command::ConfirmTimer(_)
                | Command::Persist(_)
                | Command::Tui(_)
                | Command::Learn
        )
    );
    if uses_state && let Err(e) = state.check_trusted() {
        return fail(exit::BLOCKED, &e.to_string());
    }
    match cli.command {
        Some(Command::Explain(args)) => explain::run(&args),
        Some(Command::Plan(args)) => plan::run(state, &args),
        Some(Command::Facts(args)) => facts::run(&args),
        Some(Command::Apply(args)) => apply::run(state, &args),
        Some(Command::Agent(args)) => agent::run(state, &args),
        Some(Command::Rollback(args)) => rollback::run(state, &args),
        Some(Command::Confirm) => confirm::run(state),
        Some(Command::Status(args)) => status::run(state, &args),
        Some(Command::ConfirmTimer(args)) => confirm::timer(state, &args),
        None => tui::run(&state, &tui::TuiArgs::default(), ScreenId::Role),
        Some(Command::Tui(args)) => tui::run(&state, &args, ScreenId::Role),
        Some(Command::Learn) => tui::run(&state, &tui::TuiArgs::default(), ScreenId::Learn),
        Some(Command::Doctor(args)) => doctor::run(state, &args),
        Some(Command::Watch(args)) => watch::run(&args),
        Some(Command::Exec(args)) => exec::run(state, &args),
        Some(Command::Persist(args)) => persist::persist_cmd(&state, &args),
        Some(Command::Unpersist(args)) => persist::unpersist_cmd(&args),
        Some(Command::ClientRecipe(args)) => recipe::run(&args),
        Some(Command::Man) => packaging::man_cmd(),
        Some(Command::Completions(args)) => packaging::completions_cmd(args.shell),
    }
}

pub fn fail(code: i32, message: &str) -> i32 {
    output::eprint_line(&format!("dscproute: {message}"));
    code
}

/// The exit status of an operation's refusal.
fn code(kind: Kind) -> i32 {
    match kind {
        Kind::Refused => exit::REFUSED,
        Kind::NotNow => exit::BLOCKED,
        Kind::Failed => exit::FAILED,
    }
}

/// A report as pretty JSON on stdout. `print` (not `print_or_quit`): on a
/// path that changes the host a closed pipe must not stop the work.
fn print_json(report: &impl Serialize) {
    let text = serde_json::to_string_pretty(report).expect("reports serialize");
    output::print(&format!("{text}\n"));
}

/// Ask on the terminal; `None` when there is no terminal to ask on.
fn ask(question: &str) -> Option<bool> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    output::print(&format!("{question} [y/N] "));
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    Some(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}
