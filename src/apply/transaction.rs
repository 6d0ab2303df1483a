//! Apply a plan as one transaction, undo it, or keep it. On the first failing
//! step the completed steps are undone in reverse: the host ends as it began.

use super::baseline;
use super::executor::{BatchFailure, Executor, Failure};
use super::journal::JournalStep;
use super::journal::{Journal, LoadError, StepStatus, TxnState, WriteError, now_unix};
use super::journal_check;
use super::lock::{Lock, LockError};
use super::state_dir::StateDir;
use super::timer::ArmError;
use crate::backend::Op;
use crate::backend::iptables::{BatchKey, restore_line};
use crate::plan::Plan;
use crate::runner::Runner;
use std::path::PathBuf;
use thiserror::Error;

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

/// Why the engine did not start, or could not finish, what it was asked.
#[derive(Debug, Error)]
pub enum EngineError {
    /// Another apply/rollback holds the lock (its pid when known).
    #[error(
        "another dscproute apply or rollback is running{}: wait for it to finish",
        .0.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Busy(Option<u32>),
    /// An interrupted transaction must be rolled back first.
    #[error(
        "transaction {0} was interrupted: run `dscproute rollback` to restore the state \
         before it, then apply again"
    )]
    Interrupted(String),
    /// A change awaits confirmation.
    #[error(
        "transaction {id} awaits confirmation ({seconds_left} s left): run `dscproute \
         confirm` to keep it or `dscproute rollback` to undo it first"
    )]
    Pending { id: String, seconds_left: i64 },
    /// `confirm` with no change awaiting confirmation: the last
    /// transaction's id and state, when there is one.
    #[error("nothing awaits confirmation: {}", last_words(.last))]
    NothingToConfirm { last: Option<(String, TxnState)> },
    #[error("cannot create state dir {}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot take the lock: {0}")]
    Lock(#[source] std::io::Error),
    /// The journal on disk cannot be read, or holds what dscproute never
    /// plans (then nothing of it ran).
    #[error(transparent)]
    Journal(#[from] LoadError),
    #[error(transparent)]
    JournalWrite(#[from] WriteError),
    #[error("cannot arm the confirm timer, nothing was changed: {0}")]
    Timer(#[source] ArmError),
    /// A plan step dscproute would refuse to roll back: nothing ran.
    #[error("plan step {index} {reason}: dscproute does not apply it, nothing was changed")]
    UnplannedStep { index: usize, reason: String },
    /// The journal holds something dscproute never plans: nothing of it ran.
    #[error("journal {} {reason}: nothing of it was run", path.display())]
    RefusedJournal { path: PathBuf, reason: String },
}

impl EngineError {
    /// A failure (I/O: the state directory, the journal, the timer), as
    /// opposed to a "not now" (busy, pending, interrupted, nothing to
    /// confirm, a journal or plan that is refused).
    pub fn is_failure(&self) -> bool {
        match self {
            EngineError::StateDir { .. }
            | EngineError::Lock(_)
            | EngineError::JournalWrite(_)
            | EngineError::Timer(_)
            | EngineError::Journal(LoadError::Unreadable(_)) => true,
            EngineError::Busy(_)
            | EngineError::Interrupted(_)
            | EngineError::Pending { .. }
            | EngineError::NothingToConfirm { .. }
            | EngineError::Journal(LoadError::Refused(_))
            | EngineError::UnplannedStep { .. }
            | EngineError::RefusedJournal { .. } => false,
        }
    }
}

fn last_words(last: &Option<(String, TxnState)>) -> String {
    match last {
        Some((id, state)) => format!("the last transaction, {id}, is {}", state_word(*state)),
        None => "no transaction on record".into(),
    }
}

pub enum ApplyOutcome {
    /// Everything was already in place: nothing ran, no journal written.
    Noop,
    Applied(Journal),
    /// A step failed, or the journal could not be written; the completed
    /// steps were undone (see the journal, and its `unsaved` note).
    Failed {
        journal: Journal,
        failure: Failure,
    },
}

/// What a rollback undoes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// The whole setup: the last transaction and what earlier ones (applies,
    /// repairs, profile edits) left in place, back to before dscproute first
    /// changed the host.
    #[default]
    Setup,
    /// Only the last transaction (a change not confirmed in time, or
    /// stopped): the setup from before it stays.
    Last,
}

pub enum RollbackOutcome {
    Nothing(NothingToRollBack),
    /// Everything undone (`unsaved` says when the journal could not record it).
    RolledBack(Journal),
    /// Some undo failed (the journal says which), or everything was undone
    /// but the journal still lists it as applied and could not be moved aside.
    Partial(Journal),
}

/// A transaction a reboot left open (interrupted or unconfirmed), closed
/// before a new apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    pub id: String,
    /// Its state when the host rebooted.
    pub was: TxnState,
    /// Why the journal could not record it, if so.
    pub unsaved: Option<String>,
}

impl std::fmt::Display for Recovered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "transaction {} was {} when the host rebooted: it is rolled back (its rules did not \
             survive the reboot)",
            self.id,
            state_word(self.was)
        )?;
        match &self.unsaved {
            Some(u) => write!(f, "; {u}"),
            None => Ok(()),
        }
    }
}

/// Why a rollback had nothing to undo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NothingToRollBack {
    NoTransaction,
    /// The last transaction (this id) failed and its steps were undone.
    FailedAndUndone(String),
    /// The last transaction (this id) was rolled back already.
    AlreadyRolledBack(String),
}

impl std::fmt::Display for NothingToRollBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NothingToRollBack::NoTransaction => {
                f.write_str("nothing to roll back: dscproute has no transaction on record here")
            }
            NothingToRollBack::FailedAndUndone(id) => write!(
                f,
                "nothing to roll back: the last transaction ({id}) failed and was undone"
            ),
            NothingToRollBack::AlreadyRolledBack(id) => write!(
                f,
                "nothing to roll back: the last transaction ({id}) was already rolled back"
            ),
        }
    }
}

/// What the journal could not say for itself: a batch left unrun, or the
/// step log that could not be written.
enum BatchOutcome {
    Done,
    Refused(BatchFailure),
    NotJournaled(WriteError),
}

/// Arms the confirm timer for a journal; returns the timer's pid.
pub type ArmTimer<'a> = &'a dyn Fn(&Journal) -> Result<u32, ArmError>;

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
        self.state
            .ensure()
            .map_err(|source| EngineError::StateDir {
                path: self.state.path().to_path_buf(),
                source,
            })?;
        Lock::try_acquire(&self.state.lock_file()).map_err(|e| match e {
            LockError::Busy(pid) => EngineError::Busy(pid),
            LockError::Io(e) => EngineError::Lock(e),
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
    ) -> Result<Option<Recovered>, EngineError> {
        let Some(mut j) = Journal::load(&self.state)? else {
            return Ok(None);
        };
        let stale = matches!(j.state, TxnState::Running | TxnState::PendingConfirm)
            && j.boot_id.is_some()
            && j.boot_id != super::journal::boot_id();
        if !stale {
            return Ok(None);
        }
        let was = j.state;
        let clean = self.undo_all(&mut j, events)?;
        j.state = TxnState::RolledBack;
        j.timer_pid = None;
        self.finish(&mut j, clean);
        Ok(Some(Recovered {
            id: j.id,
            was,
            unsaved: j.unsaved,
        }))
    }

    /// Refuse to start over an interrupted or unconfirmed transaction.
    pub fn check_clear(&self) -> Result<Option<Journal>, EngineError> {
        let j = Journal::load(&self.state)?;
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
    /// `check_clear`). With `confirm`, the timer is armed before the first
    /// change. No step runs before its "running" record is on disk; when the
    /// journal cannot be written, what ran is undone from memory. Rules and
    /// routes go as one `ip -batch` per family, iptables steps as one
    /// iptables-restore per table (never across a step of another kind).
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
        let mut j = Journal::new(profile, steps);
        // Never journal what a rollback would refuse to run.
        for (i, js) in j.steps.iter().enumerate() {
            journal_check::check_step(js).map_err(|reason| EngineError::UnplannedStep {
                index: i + 1,
                reason,
            })?;
        }
        if let Some(old) = Journal::load(&self.state)? {
            j.setup = old.carried(j.boot_id.as_deref());
            old.archive(&self.state)?;
        }
        j.save(&self.state)?;
        if let Some((secs, arm)) = confirm {
            j.confirm_deadline_unix = Some(now_unix() + secs);
            j.save(&self.state)?;
            let pid = arm(&j).map_err(EngineError::Timer)?;
            j.timer_pid = Some(pid);
            j.save(&self.state)?;
        }
        let ex = self.executor();
        let total = j.steps.len();
        let mut i = 0;
        while i < total {
            if let Some(range) = ip_run::apply_run_at(&j, i) {
                let end = range.end;
                match self.apply_ip_run(&ex, &mut j, range, events) {
                    RunOutcome::Done => {}
                    RunOutcome::Failed { index, failure } => {
                        return self.fail(j, index, failure, events);
                    }
                    RunOutcome::Unknown { index, failure } => {
                        return self.fail_unknown(j, index, failure, events);
                    }
                    RunOutcome::NotJournaled(e) => return self.not_journaled(j, e, events),
                }
                i = end;
                continue;
            }
            if let Some((key, lines)) = batch_at(&j, i, |js| &js.step.apply)
                && lines.len() > 1
            {
                let end = i + lines.len();
                match self.apply_batch(&ex, &mut j, i, &key, &lines, events) {
                    BatchOutcome::Done => {}
                    BatchOutcome::Refused(f) => return self.fail_batch(j, i..end, f, events),
                    BatchOutcome::NotJournaled(e) => return self.not_journaled(j, e, events),
                }
                i = end;
                continue;
            }
            let effect = j.steps[i].step.apply.clone();
            let saved = match ex.save_before(&effect) {
                Ok(s) => s,
                Err(failure) => return self.fail(j, i, failure, events),
            };
            j.steps[i].saved = saved;
            j.steps[i].status = StepStatus::Running;
            let persistent = effect.is_persistent();
            if let Err(e) = j.record(&self.state, i, persistent) {
                // Not on record, so it must not happen.
                j.steps[i].status = StepStatus::Pending;
                j.steps[i].saved = None;
                return self.not_journaled(j, e, events);
            }
            events(Event::Started {
                index: i,
                total,
                command: effect.display(),
            });
            match ex.run(&effect) {
                Ok(()) => {
                    j.steps[i].status = StepStatus::Done;
                    let recorded = j.record(&self.state, i, persistent);
                    events(Event::Done { index: i });
                    if let Err(e) = recorded {
                        return self.not_journaled(j, e, events);
                    }
                }
                Err(failure) => return self.fail(j, i, failure, events),
            }
            i += 1;
        }
        j.state = if j.confirm_deadline_unix.is_some() {
            TxnState::PendingConfirm
        } else {
            TxnState::Applied
        };
        if let Err(e) = j.save(&self.state) {
            // Applied, but not on record as applied: take it back rather
            // than leave changes the journal does not describe.
            j.state = TxnState::Running;
            return self.not_journaled(j, e, events);
        }
        baseline::note(&self.state, &j);
        Ok(ApplyOutcome::Applied(j))
    }

    /// Steps `first..first + lines.len()` as one iptables-restore call: all
    /// journaled Running before it (the call may or may not happen if the
    /// process dies), Done after it.
    fn apply_batch(
        &self,
        ex: &Executor,
        j: &mut Journal,
        first: usize,
        key: &BatchKey,
        lines: &[String],
        events: &mut dyn FnMut(Event),
    ) -> BatchOutcome {
        let total = j.steps.len();
        let range = first..first + lines.len();
        for k in range.clone() {
            j.steps[k].status = StepStatus::Running;
            if let Err(e) = j.record(&self.state, k, false) {
                // None of the batch ran: none of it is running.
                for s in &mut j.steps[first..=k] {
                    s.status = StepStatus::Pending;
                }
                return BatchOutcome::NotJournaled(e);
            }
        }
        for k in range.clone() {
            events(Event::Started {
                index: k,
                total,
                command: j.steps[k].step.apply.display(),
            });
        }
        if let Err(f) = ex.run_batch(key, lines) {
            return BatchOutcome::Refused(f);
        }
        let mut recorded = Ok(());
        for k in range {
            j.steps[k].status = StepStatus::Done;
            if recorded.is_ok() {
                recorded = j.record(&self.state, k, false);
            }
            events(Event::Done { index: k });
        }
        match recorded {
            Ok(()) => BatchOutcome::Done,
            Err(e) => BatchOutcome::NotJournaled(e),
        }
    }

    /// The journal could not be written: stop, and undo from memory what
    /// ran, as for a failed step.
    fn not_journaled(
        &self,
        mut j: Journal,
        error: WriteError,
        events: &mut dyn FnMut(Event),
    ) -> Result<ApplyOutcome, EngineError> {
        let failure = Failure {
            command: format!("write the journal in {}", self.state.path().display()),
            stderr: error.to_string(),
        };
        let clean = self.undo_all(&mut j, events)?;
        j.state = TxnState::Failed;
        self.finish(&mut j, clean);
        Ok(ApplyOutcome::Failed {
            journal: j,
            failure,
        })
    }

    /// iptables-restore refused a batch: nothing of it was applied (one
    /// nf_tables transaction), so every step of it is Failed, the one it
    /// blamed with its message, and the earlier steps are undone.
    fn fail_batch(
        &self,
        mut j: Journal,
        range: std::ops::Range<usize>,
        f: BatchFailure,
        events: &mut dyn FnMut(Event),
    ) -> Result<ApplyOutcome, EngineError> {
        let (first, last) = (range.start, range.end - 1);
        let culprit = first + f.line.unwrap_or(0);
        let whole = format!(
            "{} refused the whole batch of steps {}-{}, so none of them was applied",
            f.command,
            first + 1,
            last + 1
        );
        let note = match f.line {
            Some(_) => whole,
            None => format!("{whole} (it named no step's line)"),
        };
        let failure = Failure {
            command: j.steps[culprit].step.apply.display(),
            stderr: format!("{}\n({note})", f.stderr.trim_end()),
        };
        for k in range.filter(|&k| k != culprit) {
            let other = Failure {
                command: j.steps[k].step.apply.display(),
                stderr: format!("not applied: {note}"),
            };
            j.steps[k].status = StepStatus::Failed;
            j.steps[k].error = Some(other.to_string());
            events(Event::Failed {
                index: k,
                failure: other,
            });
        }
        self.fail(j, culprit, failure, events)
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
        // Best effort: the journal written once undo is over is what counts.
        let _ = j.record(&self.state, i, false);
        self.undo_failed(j, i, failure, events)
    }

    /// Report step `i`'s failure, undo everything that may have taken
    /// effect and close the transaction as failed.
    fn undo_failed(
        &self,
        mut j: Journal,
        i: usize,
        failure: Failure,
        events: &mut dyn FnMut(Event),
    ) -> Result<ApplyOutcome, EngineError> {
        events(Event::Failed {
            index: i,
            failure: failure.clone(),
        });
        let clean = self.undo_all(&mut j, events)?;
        j.state = TxnState::Failed;
        self.finish(&mut j, clean);
        Ok(ApplyOutcome::Failed {
            journal: j,
            failure,
        })
    }

    /// Undo every step that may have taken effect, newest first. A step that
    /// was only `Running` may never have happened: its undo may fail quietly.
    /// Consecutive iptables undos of one table go as one iptables-restore
    /// call; when that is refused (it changed nothing), they are undone one
    /// by one with the same tolerance. Consecutive rule and route undos go
    /// as one `ip -batch` per family, its failed lines again one by one
    /// (see `ip_run`). Progress is logged as it goes, but a
    /// log that cannot be written (a full disk) does not stop the undo: it
    /// goes on from memory and `finish` reports it.
    fn undo_all(
        &self,
        j: &mut Journal,
        events: &mut dyn FnMut(Event),
    ) -> Result<bool, EngineError> {
        journal_check::check(j).map_err(|reason| EngineError::RefusedJournal {
            path: self.state.current(),
            reason,
        })?;
        let ex = self.executor();
        let mut clean = true;
        let rebooted = j.boot_id.is_some() && j.boot_id != super::journal::boot_id();
        let mut todo = Vec::new();
        for i in (0..j.steps.len()).rev() {
            if !matches!(
                j.steps[i].status,
                StepStatus::Done | StepStatus::Running | StepStatus::UndoFailed
            ) {
                continue;
            }
            if rebooted && !j.steps[i].step.apply.is_persistent() {
                // Rules, routes and sysctls did not survive the reboot.
                j.steps[i].status = StepStatus::Undone;
                j.steps[i].error = Some("gone with the reboot".into());
                let _ = j.record(&self.state, i, false);
                continue;
            }
            todo.push(i);
        }
        let mut n = 0;
        while n < todo.len() {
            let ip = ip_run::undo_run(j, &todo[n..]);
            if ip > 0 {
                clean &= self.undo_ip_run(&ex, j, &todo[n..n + ip], events);
                n += ip;
                continue;
            }
            let run = undo_batch(j, &todo[n..]);
            n += run.len().max(1);
            if let Some((key, steps, lines)) = run.batch() {
                for &i in steps {
                    events(Event::Undoing {
                        index: i,
                        command: j.steps[i].step.undo.display(),
                    });
                }
                if ex.run_batch(&key, &lines).is_ok() {
                    for &i in steps {
                        j.steps[i].status = StepStatus::Undone;
                        events(Event::Undone { index: i });
                        let _ = j.record(&self.state, i, false);
                    }
                } else {
                    for &i in steps {
                        clean &= self.undo_one(&ex, j, i, events);
                    }
                }
            } else {
                let i = todo[n - 1];
                events(Event::Undoing {
                    index: i,
                    command: j.steps[i].step.undo.display(),
                });
                clean &= self.undo_one(&ex, j, i, events);
            }
        }
        Ok(clean)
    }

    /// Write the journal of a transaction that is over. When that fails (a
    /// full disk), the host was still handled from memory: after a clean
    /// undo the journal on disk, which still lists undone changes, moves to
    /// history/ so that no later rollback replays them. `j.unsaved` says
    /// what happened; true when a journal that lists undone changes as
    /// applied is still in place.
    fn finish(&self, j: &mut Journal, clean: bool) -> bool {
        let Err(e) = j.save(&self.state) else {
            return false;
        };
        let current = self.state.current();
        if !clean {
            j.unsaved = Some(format!(
                "the journal could not be updated ({e}): it may list as applied steps that \
                 were undone; free space in {}, check `dscproute status` and remove what is \
                 left with `dscproute rollback --all`",
                self.state.path().display()
            ));
            return true;
        }
        let aside = self.state.history(&j.id);
        let _ = std::fs::remove_file(self.state.step_log());
        let (note, stale) = match std::fs::rename(&current, &aside) {
            Ok(()) => (
                format!(
                    "the journal could not be updated ({e}); as everything was undone, the \
                     outdated journal was moved to {} so that no rollback replays it",
                    aside.display()
                ),
                false,
            ),
            Err(e2) => (
                format!(
                    "the journal could not be updated ({e}) nor moved aside ({e2}): it still \
                     lists changes that were undone; delete {} before running rollback",
                    current.display()
                ),
                true,
            ),
        };
        j.unsaved = Some(note);
        stale
    }

    /// Undo one step on its own (announced by the caller); false when the
    /// undo of a step that surely happened failed.
    fn undo_one(
        &self,
        ex: &Executor,
        j: &mut Journal,
        i: usize,
        events: &mut dyn FnMut(Event),
    ) -> bool {
        let status = j.steps[i].status;
        let mut clean = true;
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
            Err(failure) if already_gone(self.runner, &j.steps[i].step.undo, &failure) => {
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
        let _ = j.record(&self.state, i, false);
        clean
    }

    /// Undo the whole setup, or with `Scope::Last` only the last
    /// transaction (applied, unconfirmed or interrupted).
    pub fn rollback(
        &self,
        _lock: &Lock,
        scope: Scope,
        events: &mut dyn FnMut(Event),
    ) -> Result<RollbackOutcome, EngineError> {
        let Some(mut j) = Journal::load(&self.state)? else {
            return Ok(RollbackOutcome::Nothing(NothingToRollBack::NoTransaction));
        };
        let pending = match scope {
            Scope::Setup => j.setup_needs_undo(),
            Scope::Last => j.needs_undo(),
        };
        if matches!(j.state, TxnState::RolledBack | TxnState::Failed) && !pending {
            return Ok(RollbackOutcome::Nothing(if j.state == TxnState::Failed {
                NothingToRollBack::FailedAndUndone(j.id)
            } else {
                NothingToRollBack::AlreadyRolledBack(j.id)
            }));
        }
        if scope == Scope::Setup && !j.setup.is_empty() {
            // On disk before any undo, so the step log's indexes (and a
            // rollback resumed after a crash) refer to the merged steps.
            j.merge_setup();
            j.save(&self.state)?;
        }
        let clean = self.undo_all(&mut j, events)?;
        j.state = TxnState::RolledBack;
        j.timer_pid = None;
        let stale = self.finish(&mut j, clean);
        baseline::note(&self.state, &j);
        Ok(if clean && !stale {
            RollbackOutcome::RolledBack(j)
        } else {
            RollbackOutcome::Partial(j)
        })
    }

    /// Keep a change that awaits confirmation.
    pub fn confirm(&self, _lock: &Lock) -> Result<Journal, EngineError> {
        let Some(mut j) = Journal::load(&self.state)? else {
            return Err(EngineError::NothingToConfirm { last: None });
        };
        if j.state != TxnState::PendingConfirm {
            return Err(EngineError::NothingToConfirm {
                last: Some((j.id, j.state)),
            });
        }
        // The timer polls the journal and leaves once it is no longer pending;
        // it is never signalled, so a reused pid can never be hit.
        j.state = TxnState::Applied;
        j.timer_pid = None;
        j.confirm_deadline_unix = None;
        j.save(&self.state)?;
        Ok(j)
    }
}

/// The iptables-restore batch starting at step `first`: the longest run of
/// steps whose `effect` is a plain iptables (or ip6tables) command of one
/// table, with their restore lines. `None` when step `first` cannot batch.
fn batch_at(
    j: &Journal,
    first: usize,
    effect: impl Fn(&JournalStep) -> &Op,
) -> Option<(BatchKey, Vec<String>)> {
    let (key, line) = restore_line(effect(&j.steps[first]))?;
    let mut lines = vec![line];
    for js in &j.steps[first + 1..] {
        match restore_line(effect(js)) {
            Some((k, l)) if k == key => lines.push(l),
            _ => break,
        }
    }
    Some((key, lines))
}

/// A run of steps to undo (in undo order) that can go as one batch.
struct UndoRun<'a> {
    steps: &'a [usize],
    key: Option<BatchKey>,
    lines: Vec<String>,
}

impl<'a> UndoRun<'a> {
    fn len(&self) -> usize {
        self.steps.len()
    }

    /// The batch, when it has two steps or more (one goes on its own).
    fn batch(&self) -> Option<(BatchKey, &'a [usize], Vec<String>)> {
        match &self.key {
            Some(k) if self.steps.len() > 1 => Some((k.clone(), self.steps, self.lines.clone())),
            _ => None,
        }
    }
}

/// The undo batch starting at `todo[0]`: following undos that are plain
/// iptables commands of the same table with nothing saved at apply time.
fn undo_batch<'a>(j: &Journal, todo: &'a [usize]) -> UndoRun<'a> {
    let line = |i: usize| {
        let js = &j.steps[i];
        if js.saved.is_some() {
            return None;
        }
        restore_line(&js.step.undo)
    };
    let Some((key, first)) = line(todo[0]) else {
        return UndoRun {
            steps: &todo[..1],
            key: None,
            lines: vec![],
        };
    };
    let mut lines = vec![first];
    for &i in &todo[1..] {
        match line(i) {
            Some((k, l)) if k == key => lines.push(l),
            _ => break,
        }
    }
    UndoRun {
        steps: &todo[..lines.len()],
        key: Some(key),
        lines,
    }
}

/// An undo that failed because its object no longer exists has nothing
/// left to undo (for netfilter, re-read to be sure: see `gone`).
fn already_gone(runner: &dyn Runner, undo: &Op, f: &Failure) -> bool {
    super::gone::already_gone(runner, undo, f)
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

mod ip_run;
use ip_run::RunOutcome;

#[cfg(test)]
mod tests;
