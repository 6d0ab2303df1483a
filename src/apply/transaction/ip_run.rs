//! Policy rules and routes in one `ip -batch -` process per family. A run
//! is a stretch of consecutive plan steps that are all rules or routes (so
//! no step of another kind changes order); inside it the two families are
//! independent, so each goes as one batch. `ip -batch` is not atomic: it
//! stops at the first failing line and keeps what ran before it, so that
//! line's step is the failed one, the steps before it are done (and undone
//! like any other) and the steps after it did not run.

use super::{ApplyOutcome, Engine, EngineError, Event};
use crate::apply::executor::{Executor, Failure, IpBatchFailure};
use crate::apply::journal::{Journal, StepStatus, WriteError};
use crate::backend::{Family, iproute};

/// One family's share of a run: step indices and their batch lines.
struct Group {
    family: Family,
    steps: Vec<usize>,
    lines: Vec<String>,
}

/// Split steps (in the order they run) into one group per family, in the
/// order each family first appears.
fn groups(steps: &[usize], op: impl Fn(usize) -> Option<(Family, String)>) -> Vec<Group> {
    let mut out: Vec<Group> = Vec::new();
    for &i in steps {
        let Some((family, line)) = op(i) else {
            continue;
        };
        match out.iter_mut().find(|g| g.family == family) {
            Some(g) => {
                g.steps.push(i);
                g.lines.push(line);
            }
            None => out.push(Group {
                family,
                steps: vec![i],
                lines: vec![line],
            }),
        }
    }
    out
}

/// The run of steps from `first` on whose apply is a rule or route that can
/// batch; `None` unless it holds two steps or more.
pub(super) fn apply_run_at(j: &Journal, first: usize) -> Option<std::ops::Range<usize>> {
    let len = j.steps[first..]
        .iter()
        .take_while(|js| js.saved.is_none() && iproute::batch_line(&js.step.apply).is_some())
        .count();
    (len > 1).then_some(first..first + len)
}

/// The undos at the head of `todo` that are rules or routes that can batch;
/// empty unless two or more.
pub(super) fn undo_run(j: &Journal, todo: &[usize]) -> usize {
    let len = todo
        .iter()
        .take_while(|&&i| {
            j.steps[i].saved.is_none() && iproute::batch_line(&j.steps[i].step.undo).is_some()
        })
        .count();
    if len > 1 { len } else { 0 }
}

/// How a run of applies ended.
pub(super) enum RunOutcome {
    Done,
    /// This step's line failed: the ones before it in its batch are Done,
    /// the rest of the run did not run.
    Failed {
        index: usize,
        failure: Failure,
    },
    /// A batch failed without naming a line: its steps stay Running (any
    /// of them may have taken effect), the rest did not run.
    Unknown {
        index: usize,
        failure: Failure,
    },
    NotJournaled(WriteError),
}

/// ip's message without its `Command failed -:N` lines (said in words).
fn message(f: &IpBatchFailure) -> String {
    f.stderr
        .lines()
        .filter(|l| !l.trim().starts_with("Command failed -:"))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Engine<'_> {
    /// Apply the steps of `range` (see `apply_run_at`): all journaled Running
    /// before the first batch starts, then each family's batch, then the
    /// outcomes. A group of one step runs as its own command.
    pub(super) fn apply_ip_run(
        &self,
        ex: &Executor,
        j: &mut Journal,
        range: std::ops::Range<usize>,
        events: &mut dyn FnMut(Event),
    ) -> RunOutcome {
        let total = j.steps.len();
        for k in range.clone() {
            j.steps[k].status = StepStatus::Running;
            if let Err(e) = j.record(&self.state, k, false) {
                // Nothing of the run started: none of it is running.
                for s in &mut j.steps[range.start..=k] {
                    s.status = StepStatus::Pending;
                }
                return RunOutcome::NotJournaled(e);
            }
        }
        for k in range.clone() {
            events(Event::Started {
                index: k,
                total,
                command: j.steps[k].step.apply.display(),
            });
        }
        let steps: Vec<usize> = range.collect();
        let groups = groups(&steps, |i| iproute::batch_line(&j.steps[i].step.apply));
        let mut recorded = Ok(());
        let mut done = |j: &mut Journal, k: usize, events: &mut dyn FnMut(Event)| {
            j.steps[k].status = StepStatus::Done;
            if recorded.is_ok() {
                recorded = j.record(&self.state, k, false);
            }
            events(Event::Done { index: k });
        };
        for (g, group) in groups.iter().enumerate() {
            let result = match group.steps[..] {
                [k] => ex.run(&j.steps[k].step.apply).map_err(|f| (Some(0), f)),
                _ => ex
                    .run_ip_batch(group.family, &group.lines, false)
                    .map_err(|f| {
                        let failure = Failure {
                            command: f.command.clone(),
                            stderr: message(&f),
                        };
                        (f.failed.first().copied(), failure)
                    }),
            };
            let Err((line, f)) = result else {
                for &k in &group.steps {
                    done(j, k, events);
                }
                continue;
            };
            let later = groups[g + 1..].iter().flat_map(|g| g.steps.iter().copied());
            let outcome = match line {
                Some(n) => {
                    for &k in &group.steps[..n] {
                        done(j, k, events);
                    }
                    let index = group.steps[n];
                    let failure = if group.steps.len() == 1 {
                        f
                    } else {
                        Failure {
                            command: j.steps[index].step.apply.display(),
                            stderr: format!(
                                "{}\n(line {} of `{}`: the lines before it took effect and \
                                 are undone, the lines after it did not run)",
                                f.stderr.trim_end(),
                                n + 1,
                                f.command
                            ),
                        }
                    };
                    self.not_run(j, group.steps[n + 1..].iter().copied().chain(later), events);
                    RunOutcome::Failed { index, failure }
                }
                None => {
                    let index = group.steps[0];
                    let failure = Failure {
                        command: f.command,
                        stderr: format!(
                            "{}\n(it named no line: steps {} may or may not have taken \
                             effect, so each is undone where it did)",
                            f.stderr.trim_end(),
                            step_list(&group.steps)
                        ),
                    };
                    self.not_run(j, later, events);
                    RunOutcome::Unknown { index, failure }
                }
            };
            return match recorded {
                Ok(()) => outcome,
                Err(e) => RunOutcome::NotJournaled(e),
            };
        }
        match recorded {
            Ok(()) => RunOutcome::Done,
            Err(e) => RunOutcome::NotJournaled(e),
        }
    }

    /// A batch failed naming no line: its steps stay Running, so undo
    /// takes back whichever of them took effect and tolerates the others.
    pub(super) fn fail_unknown(
        &self,
        j: Journal,
        index: usize,
        failure: Failure,
        events: &mut dyn FnMut(Event),
    ) -> Result<ApplyOutcome, EngineError> {
        self.undo_failed(j, index, failure, events)
    }

    /// Steps journaled Running that never started: Failed, "not run".
    fn not_run(
        &self,
        j: &mut Journal,
        steps: impl Iterator<Item = usize>,
        events: &mut dyn FnMut(Event),
    ) {
        for k in steps {
            let failure = Failure {
                command: j.steps[k].step.apply.display(),
                stderr: "not run: an earlier rule or route of the same batch failed".into(),
            };
            j.steps[k].status = StepStatus::Failed;
            j.steps[k].error = Some(failure.to_string());
            // Best effort: the journal written once undo is over is what counts.
            let _ = j.record(&self.state, k, false);
            events(Event::Failed { index: k, failure });
        }
    }

    /// Undo `steps` (in undo order, see `undo_run`), one `ip -force -batch`
    /// per family: every line that can go goes. The lines ip reports as
    /// failed (or all, when it named none) are undone again one by one, with
    /// the usual tolerance (a Running step, an object already gone).
    pub(super) fn undo_ip_run(
        &self,
        ex: &Executor,
        j: &mut Journal,
        steps: &[usize],
        events: &mut dyn FnMut(Event),
    ) -> bool {
        for &i in steps {
            events(Event::Undoing {
                index: i,
                command: j.steps[i].step.undo.display(),
            });
        }
        let mut clean = true;
        for group in groups(steps, |i| iproute::batch_line(&j.steps[i].step.undo)) {
            let failed = match group.steps[..] {
                [_] => None,
                _ => match ex.run_ip_batch(group.family, &group.lines, true) {
                    Ok(()) => Some(Vec::new()),
                    Err(f) if f.failed.is_empty() => None,
                    Err(f) => Some(f.failed),
                },
            };
            for (n, &i) in group.steps.iter().enumerate() {
                match &failed {
                    Some(lines) if !lines.contains(&n) => {
                        j.steps[i].status = StepStatus::Undone;
                        events(Event::Undone { index: i });
                        let _ = j.record(&self.state, i, false);
                    }
                    _ => clean &= self.undo_one(ex, j, i, events),
                }
            }
        }
        clean
    }
}

fn step_list(steps: &[usize]) -> String {
    steps
        .iter()
        .map(|i| (i + 1).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
