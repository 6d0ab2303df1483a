//! This session's transaction as one value: its phase (nothing yet, the
//! apply running, finished, awaiting the admin's confirmation, a decision
//! under way, settled) and the log of its steps as the workers report
//! them. Only valid combinations can be written down: a running apply has
//! no result, a countdown has a transaction and a deadline, a settled change
//! has a decision.

use super::msg::ApplyResult;
use crate::apply::Event;

/// The confirm timer's length when it is on (the default).
pub const CONFIRM_SECS: u64 = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepProgress {
    Pending,
    Running,
    Done,
    Failed,
    Undoing,
    Undone,
    UndoFailed,
}

/// What happens to a change that awaits confirmation, once decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Enter: Effect::Confirm sent.
    Keep,
    /// Any other key, or `r` on the status screen: Effect::Rollback sent.
    Rollback,
    /// The deadline passed: the detached confirm timer rolls it back.
    TimeUp,
}

/// How an apply of this session ended, when nothing is left to decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Refused, or failed and undone: the one-line error.
    Failed(String),
    /// The host already matched the profile.
    Noop,
    /// Applied without a confirm timer: the change stays.
    Applied { transaction: String },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Txn {
    /// Nothing applied or decided in this session.
    #[default]
    Idle,
    /// The apply worker runs the steps.
    Running,
    /// The apply worker is done; nothing awaits a decision.
    Finished(Outcome),
    /// Applied with the confirm timer: every key decides until the deadline.
    AwaitingConfirm {
        transaction: String,
        deadline_unix: u64,
    },
    /// Keep or roll back under way (or the confirm timer rolling back).
    Deciding {
        decision: Decision,
        /// Set when decided at the countdown: its keys still answer there.
        deadline_unix: Option<u64>,
        /// This session's transaction, when its apply changed the host.
        applied: Option<String>,
    },
    /// The confirm or rollback finished with this one-line report.
    Settled {
        decision: Decision,
        outcome: Result<String, String>,
        applied: Option<String>,
    },
}

impl Txn {
    /// Applying or rolling back: quitting now would interrupt it.
    pub fn busy(&self) -> bool {
        matches!(self, Txn::Running | Txn::Deciding { .. })
    }

    /// The countdown is on screen: every key is an answer.
    pub fn waiting_for_confirm(&self) -> bool {
        self.deadline().is_some()
    }

    /// The countdown's deadline, until the change is settled.
    pub fn deadline(&self) -> Option<u64> {
        match self {
            Txn::AwaitingConfirm { deadline_unix, .. } => Some(*deadline_unix),
            Txn::Deciding { deadline_unix, .. } => *deadline_unix,
            _ => None,
        }
    }

    pub fn decision(&self) -> Option<Decision> {
        match self {
            Txn::Deciding { decision, .. } | Txn::Settled { decision, .. } => Some(*decision),
            _ => None,
        }
    }

    /// This session's transaction, when its apply changed the host (kept
    /// through later decisions: the host differs from the facts read).
    pub fn applied(&self) -> Option<&str> {
        match self {
            Txn::Finished(Outcome::Applied { transaction })
            | Txn::AwaitingConfirm { transaction, .. } => Some(transaction),
            Txn::Deciding { applied, .. } | Txn::Settled { applied, .. } => applied.as_deref(),
            _ => None,
        }
    }

    /// Has the host changed since its facts were read (applied, or a
    /// rollback other than of this session's own apply)? Then the preview's
    /// plan is stale and must not be applied.
    pub fn facts_stale(&self) -> bool {
        match self {
            Txn::Settled {
                decision: Decision::Rollback | Decision::TimeUp,
                outcome,
                applied,
            } => match applied {
                // This session's change undone: as before, unless only partly.
                Some(_) => outcome.is_err(),
                // A rollback of an earlier transaction.
                None => true,
            },
            other => other.applied().is_some(),
        }
    }

    /// The apply worker finished.
    pub fn apply_done(&mut self, r: Result<ApplyResult, String>) {
        *self = match r {
            Err(e) => Txn::Finished(Outcome::Failed(e)),
            Ok(r) if r.noop => Txn::Finished(Outcome::Noop),
            Ok(r) => match r.deadline_unix {
                Some(deadline_unix) => Txn::AwaitingConfirm {
                    transaction: r.transaction,
                    deadline_unix,
                },
                None => Txn::Finished(Outcome::Applied {
                    transaction: r.transaction,
                }),
            },
        };
    }

    /// Keep or roll back: at the countdown (which stays until settled), or
    /// from the status screen.
    pub fn decide(&mut self, decision: Decision) {
        let applied = self.applied().map(str::to_string);
        *self = Txn::Deciding {
            decision,
            deadline_unix: self.deadline(),
            applied,
        };
    }

    /// Confirm or rollback finished. Without a decision under way (nor a
    /// countdown) the report concerns no change of this session's.
    pub fn settle(&mut self, outcome: Result<String, String>) {
        let decision = match self {
            Txn::Deciding { decision, .. } => *decision,
            Txn::AwaitingConfirm { .. } => Decision::Rollback,
            _ => return,
        };
        let applied = self.applied().map(str::to_string);
        *self = Txn::Settled {
            decision,
            outcome,
            applied,
        };
    }
}

/// The steps of the last apply (or rollback) as the workers report them:
/// what the apply screen lists.
#[derive(Debug, Default)]
pub struct StepLog {
    /// What is being applied, one line: the signal path with the group by
    /// name and gid (fixed when the apply starts).
    pub subject: String,
    pub commands: Vec<String>,
    pub progress: Vec<StepProgress>,
    /// The failing step's stderr, and any undo that failed.
    pub failure: Option<String>,
}

impl StepLog {
    /// The plan's pending commands, none run yet.
    pub fn planned(subject: String, commands: Vec<String>) -> StepLog {
        StepLog {
            subject,
            progress: vec![StepProgress::Pending; commands.len()],
            commands,
            failure: None,
        }
    }

    /// Make room for step `index` (events of a rollback started elsewhere).
    fn ensure(&mut self, index: usize, command: Option<&str>) {
        while self.progress.len() <= index {
            self.progress.push(StepProgress::Pending);
        }
        while self.commands.len() <= index {
            self.commands.push(String::new());
        }
        if let Some(c) = command
            && self.commands[index].is_empty()
        {
            self.commands[index] = c.to_string();
        }
    }

    /// A worker's event; returns the step it concerns.
    pub fn on_event(&mut self, ev: Event) -> usize {
        let (index, progress) = match ev {
            Event::Started {
                index,
                total,
                command,
            } => {
                self.ensure(total.saturating_sub(1).max(index), None);
                self.ensure(index, Some(&command));
                (index, StepProgress::Running)
            }
            Event::Done { index } => (index, StepProgress::Done),
            Event::Failed { index, failure } => {
                self.failure = Some(failure.stderr.trim().to_string());
                (index, StepProgress::Failed)
            }
            Event::Undoing { index, command } => {
                self.ensure(index, Some(&command));
                (index, StepProgress::Undoing)
            }
            Event::Undone { index } => (index, StepProgress::Undone),
            Event::UndoFailed { index, failure } => {
                let line = format!("undo of step {} failed: {failure}", index + 1);
                self.failure = Some(match self.failure.take() {
                    Some(prev) if !prev.is_empty() => format!("{prev}\n{line}"),
                    _ => line,
                });
                (index, StepProgress::UndoFailed)
            }
        };
        self.ensure(index, None);
        self.progress[index] = progress;
        index
    }

    pub fn count(&self, p: StepProgress) -> usize {
        self.progress.iter().filter(|x| **x == p).count()
    }

    /// Rolled back by someone else (the confirm timer): every done step is undone.
    pub fn all_undone(&mut self) {
        for p in self.progress.iter_mut() {
            if *p == StepProgress::Done {
                *p = StepProgress::Undone;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(deadline: Option<u64>) -> Txn {
        let mut t = Txn::Running;
        t.apply_done(Ok(ApplyResult {
            transaction: "t1".into(),
            noop: false,
            deadline_unix: deadline,
        }));
        t
    }

    #[test]
    fn a_countdown_is_answered_then_settled() {
        let mut t = applied(Some(100));
        assert!(t.waiting_for_confirm() && !t.busy() && t.facts_stale());
        t.decide(Decision::Keep);
        assert!(
            t.waiting_for_confirm() && t.busy(),
            "the countdown stays until settled"
        );
        t.settle(Ok("kept".into()));
        assert_eq!(t.decision(), Some(Decision::Keep));
        assert!(!t.waiting_for_confirm() && !t.busy() && t.facts_stale());
    }

    #[test]
    fn staleness_follows_what_happened_to_the_host() {
        let mut own = applied(Some(100));
        own.decide(Decision::TimeUp);
        own.decide(Decision::Rollback);
        assert_eq!(own.deadline(), Some(100));
        own.settle(Ok("rolled back".into()));
        assert!(!own.facts_stale(), "this session's change fully undone");
        let mut partly = applied(None);
        partly.decide(Decision::Rollback);
        assert_eq!(partly.deadline(), None, "decided on the status screen");
        partly.settle(Err("partly".into()));
        assert!(partly.facts_stale());
        let mut earlier = Txn::Idle;
        earlier.decide(Decision::Rollback);
        assert!(!earlier.facts_stale() && earlier.busy());
        earlier.settle(Ok("rolled back".into()));
        assert!(earlier.facts_stale(), "an earlier transaction was undone");
        let mut kept_elsewhere = Txn::Finished(Outcome::Failed("x".into()));
        assert!(!kept_elsewhere.facts_stale());
        kept_elsewhere.decide(Decision::Keep);
        kept_elsewhere.settle(Ok("kept".into()));
        assert!(!kept_elsewhere.facts_stale(), "confirming changes nothing");
    }

    #[test]
    fn a_report_without_a_decision_changes_nothing() {
        let mut t = Txn::Finished(Outcome::Noop);
        t.settle(Ok("?".into()));
        assert_eq!(t, Txn::Finished(Outcome::Noop));
        let mut c = applied(Some(5));
        c.settle(Ok("rolled back".into()));
        assert_eq!(c.decision(), Some(Decision::Rollback));
    }
}
