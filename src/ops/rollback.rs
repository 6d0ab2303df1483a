//! Roll back the whole setup exactly (every transaction that left something
//! in place: applies, repairs, profile edits), or with `last` only the last
//! transaction; with `all` also remove everything dscproute owns, found by
//! its tags, even without a readable journal (which is then set aside), and
//! restore the sysctls on record. `prepare` says what would be undone, for a
//! front that asks; `Ready::run` does it; `rollback` is both.

use super::{Host, JournalError, Kind, engine_kind};
use crate::apply::agent_record::AgentRecord;
use crate::apply::baseline;
use crate::apply::executor::{Executor, Failure};
use crate::apply::journal::{JournalStep, Saved};
use crate::apply::lock::Lock;
use crate::apply::{
    EngineError, Event, Journal, LoadError, NothingToRollBack, RollbackOutcome, Scope, StepStatus,
    sweep,
};
use crate::ownership::RT_TABLES_DROPIN;
use crate::runner::signals::{self, OnStop};
use serde::Serialize;
use std::path::PathBuf;
use thiserror::Error;

#[derive(Clone, Copy, Debug, Default)]
pub struct Request {
    /// Also remove everything dscproute owns, found by its tags.
    pub all: bool,
    /// Only the last transaction; the setup from before it stays.
    pub last: bool,
}

impl Request {
    fn scope(&self) -> Scope {
        if self.last { Scope::Last } else { Scope::Setup }
    }
}

/// What a rollback is about to undo, for the front's question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The journal's changes (the whole setup, or with `last` the last
    /// transaction): one line per undo, in the order they run.
    Journal {
        id: String,
        scope: Scope,
        undo: Vec<String>,
    },
    /// Everything dscproute owns on this host (`all`), after the journal's
    /// changes when it is readable.
    Everything { undo: Vec<String> },
}

/// Ready to roll back (under the lock, unless there is nothing at all).
pub struct Ready {
    /// `None`: no journal and no sweep, so no lock (and no state) was taken.
    lock: Option<Lock>,
    /// An error only with `all`, which goes on by the tags alone.
    journal: Result<Option<Journal>, LoadError>,
    all: bool,
    scope: Scope,
}

#[derive(Debug, Error)]
pub enum RollbackError {
    #[error("rollback changes the host and needs root: run it as root")]
    NeedsRoot,
    /// It would put back what the rollback removes.
    #[error(
        "an agent (pid {pid}) keeps {profile} in place and would put back what rollback \
         removes: stop it first (`systemctl stop dscproute@NAME`, or `kill {pid}`: the setup \
         stays), then roll back"
    )]
    AgentRunning { pid: u32, profile: String },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

impl RollbackError {
    pub fn kind(&self) -> Kind {
        match self {
            RollbackError::NeedsRoot | RollbackError::AgentRunning { .. } => Kind::NotNow,
            RollbackError::Engine(e) => engine_kind(e),
            RollbackError::Journal(e) => e.kind(),
        }
    }
}

/// What became of the journal's transaction.
#[derive(Debug)]
pub enum Undo {
    Nothing(NothingToRollBack),
    RolledBack(Journal),
    /// Some undo failed or could not be recorded (the journal says which).
    Partial(Journal),
    /// `all` with an unreadable journal: it was moved aside to `kept`.
    SetAside {
        error: LoadError,
        kept: PathBuf,
    },
    /// `all` with an unreadable journal that could not be moved aside.
    NotSetAside {
        error: LoadError,
        why: String,
    },
}

/// What `all` removed by the tags.
#[derive(Debug, Default)]
pub struct Swept {
    /// Every removal tried, as its command.
    pub removals: Vec<String>,
    pub failures: Vec<Failure>,
}

#[derive(Debug)]
pub struct RolledBack {
    pub undo: Undo,
    /// Changes earlier transactions had left in place, undone with the
    /// last one (the rollback of the whole setup).
    pub earlier: usize,
    /// With `all`.
    pub swept: Option<Swept>,
    /// A stop signal that came meanwhile (the rollback was finished first).
    pub signal: Option<String>,
}

pub fn prepare(host: &Host, req: Request) -> Result<Ready, RollbackError> {
    if !host.is_root {
        return Err(RollbackError::NeedsRoot);
    }
    if let Some(a) = AgentRecord::running(&host.state) {
        return Err(RollbackError::AgentRunning {
            pid: a.pid,
            profile: a.profile,
        });
    }
    // Nothing on record and nothing to sweep: say so without creating state.
    if !req.all && matches!(Journal::load(&host.state), Ok(None)) {
        return Ok(Ready {
            lock: None,
            journal: Ok(None),
            all: false,
            scope: req.scope(),
        });
    }
    let lock = host.engine().lock()?;
    let journal = match Journal::load(&host.state) {
        Ok(j) => Ok(j),
        Err(e) if req.all => Err(e),
        Err(e) => return Err(JournalError(e).into()),
    };
    Ok(Ready {
        lock: Some(lock),
        journal,
        all: req.all,
        scope: req.scope(),
    })
}

impl Ready {
    /// What the front should ask about; `None` when there is nothing to
    /// undo (the rollback then only says so).
    pub fn target(&self) -> Option<Target> {
        let undo = match &self.journal {
            Ok(Some(j)) => undo_lines(j, self.scope),
            _ => Vec::new(),
        };
        match &self.journal {
            _ if self.all => Some(Target::Everything { undo }),
            Ok(Some(j)) if !undo.is_empty() => Some(Target::Journal {
                id: j.id.clone(),
                scope: self.scope,
                undo,
            }),
            _ => None,
        }
    }

    pub fn run(
        self,
        host: &Host,
        progress: &mut dyn FnMut(Event),
    ) -> Result<RolledBack, RollbackError> {
        let Some(lock) = &self.lock else {
            return Ok(RolledBack {
                undo: Undo::Nothing(NothingToRollBack::NoTransaction),
                earlier: 0,
                swept: None,
                signal: None,
            });
        };
        // A logout or Ctrl-C now waits for the rollback to finish.
        if host.catch_signals {
            signals::guard(OnStop::Finish);
        }
        let earlier = match (&self.journal, self.scope) {
            (Ok(Some(j)), Scope::Setup) => j.setup.iter().filter(|s| s.in_effect()).count(),
            _ => 0,
        };
        let undo = match self.journal {
            Ok(_) => match host.engine().rollback(lock, self.scope, progress)? {
                RollbackOutcome::Nothing(n) => Undo::Nothing(n),
                RollbackOutcome::RolledBack(j) => {
                    (host.timer.disarm)(&j.id);
                    Undo::RolledBack(j)
                }
                RollbackOutcome::Partial(j) => {
                    (host.timer.disarm)(&j.id);
                    Undo::Partial(j)
                }
            },
            Err(error) => match sweep::set_aside(&host.state) {
                Ok(kept) => Undo::SetAside { error, kept },
                Err(why) => Undo::NotSetAside { error, why },
            },
        };
        let swept = self.all.then(|| sweep_tags(host));
        Ok(RolledBack {
            undo,
            earlier,
            swept,
            signal: signals::received().map(signals::name),
        })
    }
}

/// What undoing the journal does, one line per step in the order it runs
/// (newest first), for the question before it.
fn undo_lines(j: &Journal, scope: Scope) -> Vec<String> {
    let setup: &[JournalStep] = match scope {
        Scope::Setup => &j.setup,
        Scope::Last => &[],
    };
    setup
        .iter()
        .chain(&j.steps)
        .rev()
        .filter(|js| js.in_effect())
        .map(|js| match &js.saved {
            Some(Saved::Sysctl { key, old }) => format!("restore {key} = {old}"),
            Some(Saved::File {
                path, old_contents, ..
            }) => match old_contents {
                Some(_) => format!("restore {path}"),
                None => format!("remove {path}"),
            },
            _ => js.step.undo.display(),
        })
        .collect()
}

/// Remove what carries our tags, whatever the journal says, and put back
/// the sysctls on record that the journal's undo did not (it was unreadable).
fn sweep_tags(host: &Host) -> Swept {
    let facts = (host.probe)(crate::probe::Reads::ALL);
    let dropin = host
        .root
        .join(RT_TABLES_DROPIN.trim_start_matches('/'))
        .exists();
    let effects = sweep::removals(&facts, dropin);
    let ex = Executor {
        runner: host.runner,
        root: host.root.clone(),
    };
    let mut swept = Swept {
        removals: effects.iter().map(|e| e.display()).collect(),
        failures: sweep::run(&ex, &effects),
    };
    match baseline::load(&host.state) {
        Ok(entries) => {
            for r in baseline::restore(&ex, &host.state, &entries) {
                match r {
                    Ok(line) => swept.removals.push(line),
                    Err(f) => {
                        swept.removals.push(f.command.clone());
                        swept.failures.push(f);
                    }
                }
            }
        }
        Err(why) => {
            swept.removals.push("restore the sysctls on record".into());
            swept.failures.push(Failure {
                command: "restore the sysctls on record".into(),
                stderr: why,
            });
        }
    }
    swept
}

/// Prepare and run, for a front that does not ask.
pub fn rollback(
    host: &Host,
    req: Request,
    progress: &mut dyn FnMut(Event),
) -> Result<RolledBack, RollbackError> {
    prepare(host, req)?.run(host, progress)
}

impl RolledBack {
    /// Everything that was to undo was undone.
    pub fn ok(&self) -> bool {
        !matches!(self.undo, Undo::Partial(_) | Undo::NotSetAside { .. })
            && self.swept.as_ref().is_none_or(|s| s.failures.is_empty())
    }

    pub fn changed(&self) -> bool {
        matches!(self.undo, Undo::RolledBack(_) | Undo::Partial(_))
            || self.swept.as_ref().is_some_and(|s| !s.removals.is_empty())
    }

    /// The transaction that was rolled back, if one was.
    pub fn transaction(&self) -> Option<&str> {
        match &self.undo {
            Undo::RolledBack(j) | Undo::Partial(j) => Some(&j.id),
            _ => None,
        }
    }

    /// Why the journal could not record the end of the undo, if so.
    pub fn unsaved(&self) -> Option<&str> {
        match &self.undo {
            Undo::RolledBack(j) | Undo::Partial(j) => j.unsaved.as_deref(),
            _ => None,
        }
    }

    /// What happened, in a sentence or a few.
    pub fn message(&self) -> String {
        let mut m = match &self.undo {
            Undo::Nothing(n) => n.to_string(),
            Undo::RolledBack(j) if self.earlier > 0 => format!(
                "Rolled back transaction {} and the {} changes earlier transactions of this \
                 setup had left in place: the host is as before dscproute changed it.{}",
                j.id,
                self.earlier,
                already_gone_note(j)
            ),
            Undo::RolledBack(j) => {
                format!("Rolled back transaction {}.{}", j.id, already_gone_note(j))
            }
            Undo::Partial(j) => format!(
                "Rolled back transaction {} partly: some undo steps failed or could not be \
                 recorded (see `dscproute status`).",
                j.id
            ),
            Undo::SetAside { error, kept } => format!(
                "The journal was unreadable ({error}); it is kept as {}. Sysctls it changed \
                 (forwarding, rp_filter) cannot be restored without it: check them.",
                kept.display()
            ),
            Undo::NotSetAside { error, why } => {
                format!("The journal was unreadable ({error}) and could not be set aside: {why}")
            }
        };
        if let Some(s) = &self.swept {
            if s.removals.is_empty() {
                m.push_str("\nNothing else of dscproute's was found.");
            } else {
                let n = s.removals.len() - s.failures.len();
                m.push_str(&format!("\nRemoved {n} tagged items."));
            }
        }
        if let Some(sig) = &self.signal {
            m.push_str(&format!(
                "\n(Got {sig} meanwhile: the rollback was finished first.)"
            ));
        }
        m
    }
}

/// How many undos found their object already gone, when any did.
fn already_gone_note(j: &Journal) -> String {
    let n = j
        .steps
        .iter()
        .filter(|s| {
            s.status == StepStatus::Undone
                && s.error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("already gone"))
        })
        .count();
    match n {
        0 => String::new(),
        n => format!(
            " {n} of its steps were already gone (removed meanwhile: a firewall reload, a \
             link that went down, a hand edit)."
        ),
    }
}

/// `rollback --json`: one object, every key always present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `ok`, or `failed` when an undo or a removal failed.
    pub status: Status,
    pub changed: bool,
    /// The transaction rolled back (`null` when none was).
    pub transaction: Option<String>,
    /// The text output's sentences.
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
}

impl Report {
    pub fn of(r: &RolledBack) -> Report {
        Report {
            status: if r.ok() { Status::Ok } else { Status::Failed },
            changed: r.changed(),
            transaction: r.transaction().map(str::to_string),
            message: r.message(),
        }
    }
}
