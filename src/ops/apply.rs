//! Apply a profile: take the lock, close what a reboot left open, check that
//! nothing awaits confirmation or was interrupted, plan from a fresh read,
//! add the last blockers, then (after the front asked, if it asks) run the
//! plan as one transaction, with stop signals handled. `prepare` and
//! `Ready::run` are the two halves, for a front that asks in between;
//! `apply` is both.

use super::{Host, Kind, engine_kind};
use crate::apply::StepStatus;
use crate::apply::executor::Failure;
use crate::apply::lock::Lock;
use crate::apply::transaction::ArmTimer;
use crate::apply::{ApplyOutcome, EngineError, Event, Journal, Recovered, RollbackOutcome, Scope};
use crate::doctor::ready;
use crate::plan::{self, Plan, PlanOptions};
use crate::profile::Profile;
use crate::runner::signals::{self, OnStop};
use serde::Serialize;
use thiserror::Error;

pub struct Request<'a> {
    pub profile: &'a Profile,
    /// How the profile is named (the journal keeps it; `persist` and
    /// `status` show it).
    pub source: &'a str,
    /// Commit-confirmed: roll back after this many seconds unless confirmed.
    pub confirm_secs: Option<u64>,
    /// The commands the admin saw (the TUI's preview, maybe minutes old):
    /// nothing runs when the fresh plan's differ.
    pub previewed: Option<&'a [String]>,
    /// The agent: when the fresh read finds the VPN unusable
    /// (`plan::vpn_wait`), apply what does not need it
    /// (`PlanOptions::without_vpn`) instead of refusing for its absence.
    pub vpn_may_wait: bool,
}

/// What happens on the way, for progress lines and the TUI's step list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Undoing a transaction a reboot left open, before planning.
    Recovering(Event),
    /// That transaction is closed.
    Recovered(Recovered),
    /// A step of this apply, or of its undo.
    Step(Event),
}

pub enum Prepared {
    /// The host already matches the profile: nothing runs, no journal.
    NothingToDo,
    Ready(Box<Ready>),
}

/// A plan checked against a fresh read of the host, under the lock.
pub struct Ready {
    lock: Lock,
    pub plan: Plan,
    source: String,
    confirm_secs: Option<u64>,
}

#[derive(Debug)]
pub enum Applied {
    NothingToDo,
    /// Every step ran; with a confirm deadline the timer is armed.
    Changed(Journal),
}

#[derive(Debug, Error)]
pub enum ApplyError {
    #[error(
        "apply changes the host's firewall and routing and needs root: run it as root; \
         `dscproute plan` previews without root"
    )]
    NeedsRoot,
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The host does not allow the plan: values that cannot be settled,
    /// the plan's errors, or the last blockers (one sentence each).
    #[error("{}", .0.join("; "))]
    Refused(Vec<String>),
    #[error(
        "the host changed since the preview: nothing was applied; restart dscproute to plan \
         from a fresh read"
    )]
    ChangedSincePreview,
    /// A step failed, or a stop signal (`signal`) refused the next one; the
    /// completed steps were undone (cleanly or not: see the journal).
    #[error("{}", step_failed(journal, failure, signal.as_deref()))]
    StepFailed {
        journal: Box<Journal>,
        failure: Failure,
        signal: Option<String>,
    },
    /// A stop signal came after the last step: the change was rolled back
    /// (`clean`: every step was undone), or the rollback could not run.
    #[error("{}", stopped(signal, journal, *clean, undo_error.as_ref()))]
    Stopped {
        signal: String,
        journal: Box<Journal>,
        clean: bool,
        #[source]
        undo_error: Option<EngineError>,
    },
}

impl ApplyError {
    pub fn kind(&self) -> Kind {
        match self {
            ApplyError::Refused(_) => Kind::Refused,
            ApplyError::NeedsRoot | ApplyError::ChangedSincePreview => Kind::NotNow,
            ApplyError::Engine(e) => engine_kind(e),
            ApplyError::StepFailed { .. } | ApplyError::Stopped { .. } => Kind::Failed,
        }
    }
}

/// No step's undo failed.
fn undone_cleanly(j: &Journal) -> bool {
    !j.steps.iter().any(|s| s.status == StepStatus::UndoFailed)
}

const UNDONE: &str = "the completed steps were undone: the host is as it was";
const LEFT_OVER: &str =
    "some undo steps failed: run `dscproute status` and `dscproute rollback --all`";

fn step_failed(j: &Journal, failure: &Failure, signal: Option<&str>) -> String {
    let tail = if undone_cleanly(j) { UNDONE } else { LEFT_OVER };
    match signal {
        Some(sig) => format!(
            "apply stopped by {sig} before `{}`: {tail}",
            failure.command
        ),
        None => format!(
            "apply failed at `{}`: {}; {tail}",
            failure.command,
            failure.stderr.trim()
        ),
    }
}

fn stopped(signal: &str, j: &Journal, clean: bool, undo_error: Option<&EngineError>) -> String {
    match undo_error {
        _ if clean => format!(
            "apply stopped by {signal} after its last step: transaction {} was rolled back, the \
             host is as it was",
            j.id
        ),
        Some(e) => {
            format!("apply stopped by {signal}: its rollback could not run ({e}): {LEFT_OVER}")
        }
        None => format!("apply stopped by {signal}: {LEFT_OVER}"),
    }
}

/// Everything up to the point where the front may ask: lock, recovery,
/// checks, a fresh plan and its blockers.
pub fn prepare(
    host: &Host,
    req: &Request,
    progress: &mut dyn FnMut(Progress),
) -> Result<Prepared, ApplyError> {
    if !host.is_root {
        return Err(ApplyError::NeedsRoot);
    }
    let engine = host.engine();
    let lock = engine.lock()?;
    let recovered =
        engine.recover_after_reboot(&lock, &mut |e| progress(Progress::Recovering(e)))?;
    if let Some(r) = recovered {
        progress(Progress::Recovered(r));
    }
    engine.check_clear()?;
    // Planned under the lock from a fresh read: what runs is what is there.
    let facts = host.facts_for(req.profile);
    let opts = PlanOptions {
        without_vpn: req.vpn_may_wait && plan::vpn_wait(req.profile, &facts).is_some(),
        ..PlanOptions::default()
    };
    let mut plan =
        plan::plan(req.profile, &facts, opts).map_err(|e| ApplyError::Refused(e.problems))?;
    plan.errors
        .extend(ready::blockers(req.profile, &facts, &plan));
    if !plan.is_applicable() {
        return Err(ApplyError::Refused(plan.errors));
    }
    if let Some(seen) = req.previewed {
        let now: Vec<String> = plan.pending().map(|s| s.apply.display()).collect();
        if now != seen {
            return Err(ApplyError::ChangedSincePreview);
        }
    }
    if plan.is_noop() {
        return Ok(Prepared::NothingToDo);
    }
    Ok(Prepared::Ready(Box::new(Ready {
        lock,
        plan,
        source: req.source.to_string(),
        confirm_secs: req.confirm_secs,
    })))
}

impl Ready {
    /// Run the plan. From here a closed session or a stop signal never
    /// leaves a change half-way (with `Host::catch_signals`): the step
    /// running finishes, the rest is not started and the done ones are
    /// undone, also when the signal came after the last step.
    pub fn run(
        self,
        host: &Host,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Applied, ApplyError> {
        if host.catch_signals {
            signals::guard(OnStop::Abort);
        }
        let engine = host.engine();
        let arm = |j: &Journal| (host.timer.arm)(&host.state, j);
        let confirm = self.confirm_secs.map(|secs| (secs, &arm as ArmTimer));
        let mut events = |e: Event| {
            if matches!(e, Event::Failed { .. } | Event::Undoing { .. }) {
                signals::finish_undo();
            }
            progress(Progress::Step(e));
        };
        let outcome = engine.apply(&self.lock, &self.plan, &self.source, confirm, &mut events)?;
        match outcome {
            ApplyOutcome::Noop => Ok(Applied::NothingToDo),
            ApplyOutcome::Applied(journal) => match signals::received() {
                None => Ok(Applied::Changed(journal)),
                Some(sig) => {
                    signals::finish_undo();
                    let (clean, undo_error) =
                        match engine.rollback(&self.lock, Scope::Last, &mut events) {
                            Ok(RollbackOutcome::RolledBack(_) | RollbackOutcome::Nothing(_)) => {
                                (true, None)
                            }
                            Ok(RollbackOutcome::Partial(_)) => (false, None),
                            Err(e) => (false, Some(e)),
                        };
                    Err(ApplyError::Stopped {
                        signal: signals::name(sig),
                        journal: Box::new(journal),
                        clean,
                        undo_error,
                    })
                }
            },
            ApplyOutcome::Failed { journal, failure } => {
                // Refused by the runner because of a stop signal, not failed.
                let signal = signals::received()
                    .filter(|_| failure.stderr.contains(signals::REFUSAL))
                    .map(signals::name);
                Err(ApplyError::StepFailed {
                    journal: Box::new(journal),
                    failure,
                    signal,
                })
            }
        }
    }
}

/// Prepare and run, for a front that asked before (the TUI's preview).
pub fn apply(
    host: &Host,
    req: &Request,
    progress: &mut dyn FnMut(Progress),
) -> Result<Applied, ApplyError> {
    match prepare(host, req, progress)? {
        Prepared::NothingToDo => Ok(Applied::NothingToDo),
        Prepared::Ready(ready) => ready.run(host, progress),
    }
}

/// `apply --json`: one object, every key always present.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub status: Status,
    /// The host is not as it was before the apply.
    pub changed: bool,
    /// The transaction's id (`null` when none was started).
    pub transaction: Option<String>,
    /// How many steps the transaction holds (0 when none was started).
    pub steps: usize,
    /// With `--confirm`: when the change is rolled back unless confirmed.
    pub confirm_deadline_unix: Option<u64>,
    /// Why the host does not allow the plan (`refused`).
    pub errors: Vec<String>,
    /// The command that failed (`failed`, when one did).
    pub failed_command: Option<String>,
    /// What it said, or what else stopped the apply (`failed`).
    pub stderr: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Changed,
    PendingConfirm,
    /// Nothing to do.
    Ok,
    Refused,
    Failed,
}

impl Report {
    fn empty(status: Status) -> Report {
        Report {
            status,
            changed: false,
            transaction: None,
            steps: 0,
            confirm_deadline_unix: None,
            errors: vec![],
            failed_command: None,
            stderr: None,
        }
    }

    fn of_journal(status: Status, changed: bool, j: &Journal) -> Report {
        Report {
            changed,
            transaction: Some(j.id.clone()),
            steps: j.steps.len(),
            confirm_deadline_unix: j.confirm_deadline_unix,
            ..Report::empty(status)
        }
    }

    /// The report of an apply; `None` when it answered "not now" (exit 4),
    /// which prints no JSON.
    pub fn of(result: &Result<Applied, ApplyError>) -> Option<Report> {
        Some(match result {
            Ok(Applied::NothingToDo) => Report::empty(Status::Ok),
            Ok(Applied::Changed(j)) => {
                let status = match j.confirm_deadline_unix {
                    Some(_) => Status::PendingConfirm,
                    None => Status::Changed,
                };
                Report::of_journal(status, true, j)
            }
            Err(ApplyError::Refused(errors)) => Report {
                errors: errors.clone(),
                ..Report::empty(Status::Refused)
            },
            Err(ApplyError::StepFailed {
                journal, failure, ..
            }) => Report {
                failed_command: Some(failure.command.clone()),
                stderr: Some(failure.stderr.trim().to_string()),
                ..Report::of_journal(Status::Failed, !undone_cleanly(journal), journal)
            },
            Err(ApplyError::Stopped {
                signal,
                journal,
                clean,
                ..
            }) => Report {
                stderr: Some(format!("stopped by {signal}")),
                confirm_deadline_unix: None,
                ..Report::of_journal(Status::Failed, !clean, journal)
            },
            Err(e) if e.kind() == Kind::Failed => Report {
                stderr: Some(e.to_string()),
                ..Report::empty(Status::Failed)
            },
            Err(_) => return None,
        })
    }
}
