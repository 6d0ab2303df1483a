//! Apply a plan as one transaction, undo it, or keep it. On the first failing
//! step the completed steps are undone in reverse: the host ends as it began.

use super::executor::{Executor, Failure};
use super::journal::{Journal, StepStatus, TxnState, now_unix};
use super::lock::{Lock, LockError};
use super::state_dir::StateDir;
use crate::plan::Plan;
use crate::runner::Runner;
use std::path::PathBuf;

/// Progress of a transaction, for the CLI's lines and the TUI's step list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Started {
        index: usize,
        total: usize,
        command: String,
    },
    Done {
        index: usize,
    },
    Failed {
        index: usize,
        failure: Failure,
    },
    Undoing {
        index: usize,
        command: String,
    },
    Undone {
        index: usize,
    },
    UndoFailed {
        index: usize,
        failure: Failure,
    },
}

#[derive(Debug, PartialEq, Eq)]
pub enum EngineError {
    /// Another apply/rollback holds the lock.
    Busy(Option<u32>),
    /// An interrupted transaction must be rolled back first.
    Interrupted(String),
    /// A change awaits confirmation.
    Pending {
        id: String,
        seconds_left: i64,
    },
    Io(String),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Busy(Some(pid)) => write!(
                f,
                "another dscproute apply or rollback is running (pid {pid}): wait for it to finish"
            ),
            EngineError::Busy(None) => {
                write!(
                    f,
                    "another dscproute apply or rollback is running: wait for it to finish"
                )
            }
            EngineError::Interrupted(id) => write!(
                f,
                "transaction {id} was interrupted: run `dscproute rollback` to restore the state \
                 before it, then apply again"
            ),
            EngineError::Pending { id, seconds_left } => write!(
                f,
                "transaction {id} awaits confirmation ({seconds_left} s left): run `dscproute \
                 confirm` to keep it or `dscproute rollback` to undo it first"
            ),
            EngineError::Io(e) => f.write_str(e),
        }
    }
}

pub enum ApplyOutcome {
    /// Everything was already in place: nothing ran, no journal written.
    Noop,
    Applied(Journal),
    /// A step failed; the completed ones were undone (see the journal).
    Failed {
        journal: Journal,
        failure: Failure,
    },
}

pub enum RollbackOutcome {
    Nothing(String),
    RolledBack(Journal),
    /// Some undo failed; the journal says which.
    Partial(Journal),
}

/// Arms the confirm timer for a journal; returns the timer's pid.
pub type ArmTimer<'a> = &'a dyn Fn(&Journal) -> Result<u32, String>;

pub struct Engine<'a> {
    pub runner: &'a dyn Runner,
    pub root: PathBuf,
    pub state: StateDir,
}

impl Engine<'_> {
    fn executor(&self) -> Executor<'_> {
        Executor {
            runner: self.runner,
            root: self.root.clone(),
        }
    }

    /// Take the lock; everything that changes the host happens under it.
    pub fn lock(&self) -> Result<Lock, EngineError> {
        self.state.ensure().map_err(|e| {
            EngineError::Io(format!(
                "cannot create state dir {}: {e}",
                self.state.path().display()
            ))
        })?;
        Lock::try_acquire(&self.state.lock_file()).map_err(|e| match e {
            LockError::Busy(pid) => EngineError::Busy(pid),
            LockError::Io(e) => EngineError::Io(format!("cannot take the lock: {e}")),
        })
    }

    /// An interrupted or unconfirmed transaction from before a reboot: its
    /// rules, routes and sysctls went with the reboot and its timer is dead,
    /// so finish what commit-confirmed promised: undo what is left (files).
    /// Lets the boot-time apply of a persisted profile proceed.
    pub fn recover_after_reboot(
        &self,
        _lock: &Lock,
        events: &mut dyn FnMut(Event),
    ) -> Result<Option<String>, EngineError> {
        let Some(mut j) = Journal::load(&self.state).map_err(EngineError::Io)? else {
            return Ok(None);
        };
        let stale = matches!(j.state, TxnState::Running | TxnState::PendingConfirm)
            && j.boot_id.is_some()
            && j.boot_id != super::journal::boot_id();
        if !stale {
            return Ok(None);
        }
        let was = state_word(j.state);
        self.undo_all(&mut j, events)?;
        j.state = TxnState::RolledBack;
        j.timer_pid = None;
        j.save(&self.state).map_err(EngineError::Io)?;
        Ok(Some(format!(
            "transaction {} was {was} when the host rebooted: it is rolled back (its rules \
             did not survive the reboot)",
            j.id
        )))
    }

    /// Refuse to start over an interrupted or unconfirmed transaction.
    pub fn check_clear(&self) -> Result<Option<Journal>, EngineError> {
        let j = Journal::load(&self.state).map_err(EngineError::Io)?;
        match &j {
            Some(j) if j.state == TxnState::Running => Err(EngineError::Interrupted(j.id.clone())),
            Some(j) if j.state == TxnState::PendingConfirm => Err(EngineError::Pending {
                id: j.id.clone(),
                seconds_left: j.seconds_left().unwrap_or(0),
            }),
            _ => Ok(j),
        }
    }

    /// Apply the plan's pending steps (caller holds the lock and has checked
    /// `check_clear`). With `confirm`, the timer is armed before the first change.
    pub fn apply(
        &self,
        _lock: &Lock,
        plan: &Plan,
        profile: &str,
        confirm: Option<(u64, ArmTimer)>,
        events: &mut dyn FnMut(Event),
    ) -> Result<ApplyOutcome, EngineError> {
        let steps: Vec<_> = plan.pending().cloned().collect();
        if steps.is_empty() {
            return Ok(ApplyOutcome::Noop);
        }
        if let Some(old) = Journal::load(&self.state).map_err(EngineError::Io)? {
            old.archive(&self.state).map_err(EngineError::Io)?;
        }
        let mut j = Journal::new(profile, steps);
        j.save(&self.state).map_err(EngineError::Io)?;
        if let Some((secs, arm)) = confirm {
            j.confirm_deadline_unix = Some(now_unix() + secs);
            j.save(&self.state).map_err(EngineError::Io)?;
            let pid = arm(&j).map_err(|e| {
                EngineError::Io(format!(
                    "cannot arm the confirm timer, nothing was changed: {e}"
                ))
            })?;
            j.timer_pid = Some(pid);
            j.save(&self.state).map_err(EngineError::Io)?;
        }
        let ex = self.executor();
        let total = j.steps.len();
        for i in 0..total {
            let effect = j.steps[i].step.apply.clone();
            let saved = match ex.save_before(&effect) {
                Ok(s) => s,
                Err(failure) => return self.fail(j, i, failure, events),
            };
            j.steps[i].saved = saved;
            j.steps[i].status = StepStatus::Running;
            let persistent = effect.is_persistent();
            j.record(&self.state, i, persistent)
                .map_err(EngineError::Io)?;
            events(Event::Started {
                index: i,
                total,
                command: effect.display(),
            });
            match ex.run(&effect) {
                Ok(()) => {
                    j.steps[i].status = StepStatus::Done;
                    j.record(&self.state, i, persistent)
                        .map_err(EngineError::Io)?;
                    events(Event::Done { index: i });
                }
                Err(failure) => return self.fail(j, i, failure, events),
            }
        }
        j.state = if j.confirm_deadline_unix.is_some() {
            TxnState::PendingConfirm
        } else {
            TxnState::Applied
        };
        j.save(&self.state).map_err(EngineError::Io)?;
        Ok(ApplyOutcome::Applied(j))
    }

    fn fail(
        &self,
        mut j: Journal,
        i: usize,
        failure: Failure,
        events: &mut dyn FnMut(Event),
    ) -> Result<ApplyOutcome, EngineError> {
        j.steps[i].status = StepStatus::Failed;
        j.steps[i].error = Some(failure.to_string());
        j.save(&self.state).map_err(EngineError::Io)?;
        events(Event::Failed {
            index: i,
            failure: failure.clone(),
        });
        self.undo_all(&mut j, events)?;
        j.state = TxnState::Failed;
        j.save(&self.state).map_err(EngineError::Io)?;
        Ok(ApplyOutcome::Failed {
            journal: j,
            failure,
        })
    }

    /// Undo every step that may have taken effect, newest first. A step that
    /// was only `Running` may never have happened: its undo may fail quietly.
    fn undo_all(
        &self,
        j: &mut Journal,
        events: &mut dyn FnMut(Event),
    ) -> Result<bool, EngineError> {
        let ex = self.executor();
        let mut clean = true;
        let rebooted = j.boot_id.is_some() && j.boot_id != super::journal::boot_id();
        for i in (0..j.steps.len()).rev() {
            let status = j.steps[i].status;
            if !matches!(
                status,
                StepStatus::Done | StepStatus::Running | StepStatus::UndoFailed
            ) {
                continue;
            }
            if rebooted && !j.steps[i].step.apply.is_persistent() {
                // Rules, routes and sysctls did not survive the reboot.
                j.steps[i].status = StepStatus::Undone;
                j.steps[i].error = Some("gone with the reboot".into());
                continue;
            }
            events(Event::Undoing {
                index: i,
                command: j.steps[i].step.undo.display(),
            });
            match ex.undo(&j.steps[i]) {
                Ok(()) => {
                    j.steps[i].status = StepStatus::Undone;
                    events(Event::Undone { index: i });
                }
                Err(_) if status == StepStatus::Running => {
                    j.steps[i].status = StepStatus::Undone;
                    events(Event::Undone { index: i });
                }
                // Deleting what is already gone (its interface went down…).
                Err(failure) if already_gone(&failure) => {
                    j.steps[i].status = StepStatus::Undone;
                    j.steps[i].error = Some(format!("already gone: {}", failure.stderr.trim()));
                    events(Event::Undone { index: i });
                }
                Err(failure) => {
                    clean = false;
                    j.steps[i].status = StepStatus::UndoFailed;
                    j.steps[i].error = Some(failure.to_string());
                    events(Event::UndoFailed { index: i, failure });
                }
            }
            j.record(&self.state, i, false).map_err(EngineError::Io)?;
        }
        j.save(&self.state).map_err(EngineError::Io)?;
        Ok(clean)
    }

    /// Undo the last transaction (applied, unconfirmed or interrupted).
    pub fn rollback(
        &self,
        _lock: &Lock,
        events: &mut dyn FnMut(Event),
    ) -> Result<RollbackOutcome, EngineError> {
        let Some(mut j) = Journal::load(&self.state).map_err(EngineError::Io)? else {
            return Ok(RollbackOutcome::Nothing(
                "nothing to roll back: dscproute has no transaction on record here".into(),
            ));
        };
        if matches!(j.state, TxnState::RolledBack | TxnState::Failed) && !j.needs_undo() {
            let how = if j.state == TxnState::Failed {
                "failed and was undone"
            } else {
                "was already rolled back"
            };
            return Ok(RollbackOutcome::Nothing(format!(
                "nothing to roll back: the last transaction ({}) {how}",
                j.id
            )));
        }
        let clean = self.undo_all(&mut j, events)?;
        j.state = TxnState::RolledBack;
        j.timer_pid = None;
        j.save(&self.state).map_err(EngineError::Io)?;
        Ok(if clean {
            RollbackOutcome::RolledBack(j)
        } else {
            RollbackOutcome::Partial(j)
        })
    }

    /// Keep a change that awaits confirmation.
    pub fn confirm(&self, _lock: &Lock) -> Result<Result<Journal, String>, EngineError> {
        let Some(mut j) = Journal::load(&self.state).map_err(EngineError::Io)? else {
            return Ok(Err("nothing awaits confirmation".into()));
        };
        if j.state != TxnState::PendingConfirm {
            return Ok(Err(format!(
                "nothing awaits confirmation (the last transaction, {}, is {})",
                j.id,
                state_word(j.state)
            )));
        }
        // The timer polls the journal and leaves once it is no longer pending;
        // it is never signalled, so a reused pid can never be hit.
        j.state = TxnState::Applied;
        j.timer_pid = None;
        j.confirm_deadline_unix = None;
        j.save(&self.state).map_err(EngineError::Io)?;
        Ok(Ok(j))
    }
}

/// An undo that failed because its object no longer exists has nothing
/// left to undo.
fn already_gone(f: &Failure) -> bool {
    let e = f.stderr.to_ascii_lowercase();
    [
        "cannot find device",
        "no such device",
        "no such process",
        "no such file or directory",
        "does a matching rule exist",
        "no chain/target/match by that name",
    ]
    .iter()
    .any(|m| e.contains(m))
}

pub fn state_word(s: TxnState) -> &'static str {
    match s {
        TxnState::Running => "interrupted or still running",
        TxnState::Applied => "applied",
        TxnState::PendingConfirm => "awaiting confirmation",
        TxnState::Failed => "failed and undone",
        TxnState::RolledBack => "rolled back",
    }
}

#[cfg(test)]
mod tests;
