//! What comes in (keys, ticks, workers' reports) and what goes out (work
//! for the main loop). Workers never touch the state: their results come
//! back as messages.

use crate::apply::Event as ApplyEvent;
use crate::apply::status::Status;
use crate::probe::HostFacts;
use ratatui::crossterm::event::{KeyEvent, MouseEvent};
use std::path::PathBuf;
use std::time::Instant;

/// Everything that can happen to the app.
#[derive(Debug)]
pub enum Msg {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize(u16, u16),
    /// Once a second, and whenever a worker has nothing to say.
    Tick(Instant),
    Facts(Box<HostFacts>),
    /// This host's users and running units (the Who step's lists).
    WhoLists(Box<crate::tui::who_lists::WhoLists>),
    /// The marker named (`Who`'s text) as resolved on this host: facts
    /// holding only what the resolution found.
    Resolved(String, Box<HostFacts>),
    Apply(ApplyEvent),
    /// The apply worker finished: Ok(transaction id, confirm deadline) or a
    /// one-line error (already undone).
    ApplyDone(Result<ApplyResult, String>),
    /// Confirm or rollback finished, with a one-line report.
    Settled(Result<String, String>),
    Status(Box<Status>),
    /// A watch table (once a second) or the watch's error.
    Watch(Result<String, String>),
    /// `persist` of the kept setup finished (or was refused: one line).
    Persisted(Result<KeptUp, String>),
}

/// What `persist` installed for the agent to keep the setup up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptUp {
    pub name: String,
    /// The persisted profile, as the host sees it.
    pub profile: String,
    /// The unit enabled and started; None where systemd does not run.
    pub unit: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyResult {
    pub transaction: String,
    pub noop: bool,
    pub deadline_unix: Option<u64>,
}

/// Work the main loop does for `update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Probe,
    /// Apply the current plan; with a confirm timer of that many seconds.
    Apply {
        confirm_secs: Option<u64>,
    },
    Confirm,
    /// Roll back the whole setup (the status screen's `r`).
    Rollback,
    /// Roll back only the change awaiting confirmation: the setup from
    /// before it stays (the countdown's answer).
    RollbackLast,
    RefreshStatus,
    /// Persist the kept setup: the agent keeps it up, from boot on.
    Persist,
    SaveProfile(PathBuf),
    ExportScript(PathBuf),
    /// Resolve this profile's marker on this host (a worker, as
    /// `Host::facts_for` does): the preview plans with it.
    ResolveMarker(Box<crate::profile::Profile>),
    /// Write the client recipe for the draft to a file.
    WriteRecipe {
        path: PathBuf,
        target: crate::recipe::Target,
        req: crate::recipe::Request,
    },
    /// Start watching this interface (selected DSCP), or stop (None).
    Watch(Option<(String, u8)>),
    Quit,
}
