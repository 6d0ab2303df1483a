//! The use cases, each written once: apply, rollback, confirm, status,
//! doctor and plan. Each takes a typed request and returns a typed result or
//! a typed refusal; the fronts (the CLI, the TUI) turn those into text, JSON,
//! exit statuses and screens, and never sequence the engine themselves.
//!
//! Bad input never gets this far: a request holds a validated `Profile`, so
//! the front that read the file answers for it (exit 2).

pub mod apply;
pub mod confirm;
pub mod converge;
pub mod doctor;
pub mod exec;
pub mod plan;
pub mod rollback;
pub mod status;

#[cfg(test)]
mod tests;

use crate::apply::{Engine, Journal, LoadError, StateDir, timer};
use crate::probe::{HostFacts, Reads};
use crate::runner::{Runner, SystemRunner};
use std::path::PathBuf;
use thiserror::Error;

/// What kind of "no" an operation answered; the CLI's exit status (README,
/// "Exit status") and the TUI's screen follow from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The host does not allow it (preflight errors, conflicts): nothing
    /// was changed (exit 3).
    Refused,
    /// Not now: another change is running, one awaits confirmation or was
    /// interrupted, root is needed, a journal is refused: nothing was
    /// changed (exit 4).
    NotNow,
    /// It ran and failed (exit 1).
    Failed,
}

/// Arms and disarms the confirm timer (`Timer::SYSTEM` starts the real
/// detached process; tests keep it in memory).
#[derive(Clone, Copy)]
pub struct Timer {
    /// Start the timer for a journal with a deadline; returns its pid.
    pub arm: fn(&StateDir, &Journal) -> Result<u32, timer::ArmError>,
    /// Stop the systemd backstop of a transaction that is settled.
    pub disarm: fn(&str),
}

impl Timer {
    pub const SYSTEM: Timer = Timer {
        arm: timer::arm,
        disarm: timer::disarm_backstop,
    };
}

/// The host an operation works on. `Host::system` is this machine; tests
/// build one over a `FakeRunner`, a scratch root and recorded facts.
#[derive(Clone)]
pub struct Host<'a> {
    /// Every command runs through it.
    pub runner: &'a dyn Runner,
    /// The filesystem the plan's files are written under (`/` here).
    pub root: PathBuf,
    /// Where the journal and the lock live.
    pub state: StateDir,
    /// Reads the host's facts (`probe::probe_system_reading` here),
    /// leaving out what `Reads` does not ask for.
    pub probe: &'a (dyn Fn(Reads) -> HostFacts + Sync),
    /// Whether this process may change the host (root).
    pub is_root: bool,
    pub timer: Timer,
    /// Catch stop signals while the host changes (`runner::signals`): a
    /// command's session may end under it. The TUI reads Ctrl-C as a key
    /// and waits for its workers instead.
    pub catch_signals: bool,
}

impl Host<'static> {
    /// This machine, with its journal and lock in `state`.
    pub fn system(state: StateDir, catch_signals: bool) -> Host<'static> {
        Host {
            runner: &SystemRunner,
            root: PathBuf::from("/"),
            state,
            probe: &crate::probe::probe_system_reading,
            is_root: crate::runner::is_root(),
            timer: Timer::SYSTEM,
            catch_signals,
        }
    }
}

impl Host<'_> {
    /// The host's facts with what `profile`'s marker needs besides (a
    /// user's uid, a unit's cgroup, whether a cgroup exists).
    pub fn facts_for(&self, profile: &crate::profile::Profile) -> HostFacts {
        let mut facts = (self.probe)(crate::plan::reads_for(profile));
        crate::probe::resolve_marker(
            &mut facts,
            crate::plan::marker_query(profile),
            self.runner,
            &self.root,
        );
        facts
    }

    fn engine(&self) -> Engine<'_> {
        Engine {
            runner: self.runner,
            root: self.root.clone(),
            state: self.state.clone(),
        }
    }
}

/// A journal that stops a rollback or a confirm.
#[derive(Debug, Error)]
#[error("{}", journal_message(.0))]
pub struct JournalError(#[source] pub LoadError);

impl JournalError {
    /// Unreadable: failed, and `rollback --all` is the way out. Refused
    /// (it holds what dscproute never writes): not now, nothing of it runs.
    pub fn kind(&self) -> Kind {
        match self.0 {
            LoadError::Unreadable(_) => Kind::Failed,
            LoadError::Refused(_) => Kind::NotNow,
        }
    }
}

fn journal_message(e: &LoadError) -> String {
    match e {
        LoadError::Unreadable(_) => format!(
            "{e}: run `dscproute rollback --all` to remove everything of dscproute's by its \
             tags (the journal is then kept aside)"
        ),
        LoadError::Refused(_) => e.to_string(),
    }
}

/// Engine errors are failures (I/O) or "not now" (busy, pending, refused).
fn engine_kind(e: &crate::apply::EngineError) -> Kind {
    if e.is_failure() {
        Kind::Failed
    } else {
        Kind::NotNow
    }
}
