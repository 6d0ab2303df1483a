//! `apply`, `rollback`, `confirm`, `status`: thin fronts over the engine.

use super::{exit, fail};
use crate::apply::status;
use crate::apply::timer;
use crate::apply::{ApplyOutcome, Engine, EngineError, Event, Journal, RollbackOutcome, StateDir};
use crate::output;
use crate::plan::{self, PlanOptions};
use crate::probe;
use crate::profile::Profile;
use crate::runner::SystemRunner;
use crate::runner::signals::{self, OnStop};
use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};

fn engine(state: &StateDir) -> Engine<'static> {
    Engine {
        runner: &SystemRunner,
        root: PathBuf::from("/"),
        state: state.clone(),
    }
}

/// A journal that cannot be read fails (1); one holding what dscproute never
/// plans is refused (4): nothing of it runs.
pub(super) fn journal_error(e: &crate::apply::LoadError) -> i32 {
    let code = match e {
        crate::apply::LoadError::Refused(_) => exit::BLOCKED,
        crate::apply::LoadError::Unreadable(_) => exit::FAILED,
    };
    fail(code, &e.to_string())
}

fn engine_error(e: EngineError) -> i32 {
    let code = match e {
        EngineError::Io(_) => exit::FAILED,
        _ => exit::BLOCKED,
    };
    fail(code, &e.to_string())
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

fn progress(json: bool) -> impl FnMut(Event) {
    move |e: Event| {
        if json {
            return;
        }
        let line = match e {
            Event::Started {
                index,
                total,
                command,
            } => format!("[{:>2}/{total}] {command}", index + 1),
            Event::Done { .. } => return,
            Event::Failed { index, failure } => {
                format!(
                    "  step {} failed: {}\n  {}",
                    index + 1,
                    failure.command,
                    failure.stderr.trim()
                )
            }
            Event::Undoing { index, command } => format!("  undo {:>2}: {command}", index + 1),
            Event::Undone { .. } => return,
            Event::UndoFailed { index, failure } => {
                format!("  undo {} FAILED: {}", index + 1, failure.stderr.trim())
            }
        };
        output::print(&format!("{line}\n"));
    }
}

fn print_json(v: serde_json::Value) {
    output::print(&format!("{v:#}\n"));
}

pub fn apply_cmd(
    state: &StateDir,
    profile_path: &Path,
    yes: bool,
    confirm: Option<u64>,
    json: bool,
) -> i32 {
    let profile = match Profile::load(profile_path) {
        Ok(p) => p,
        Err(e) => return fail(exit::USAGE, &e.to_string()),
    };
    if !crate::runner::is_root() {
        return fail(
            exit::BLOCKED,
            "apply changes the host's firewall and routing and needs root: run it as root; \
             `dscproute plan` previews without root",
        );
    }
    let engine = engine(state);
    let lock = match engine.lock() {
        Ok(l) => l,
        Err(e) => return engine_error(e),
    };
    match engine.recover_after_reboot(&lock, &mut progress(json)) {
        Ok(Some(note)) => output::eprint_line(&format!("dscproute: {note}")),
        Ok(None) => {}
        Err(e) => return engine_error(e),
    }
    if let Err(e) = engine.check_clear() {
        return engine_error(e);
    }
    let facts = probe::probe_system();
    let source = profile_path.display().to_string();
    let plan = match plan::plan(&profile, &facts, PlanOptions::default()) {
        Ok(p) => p,
        Err(e) => {
            for p in &e.problems {
                output::eprint_line(&format!("dscproute: {p}"));
            }
            return exit::REFUSED;
        }
    };
    let mut plan = plan;
    plan.errors
        .extend(crate::doctor::ready::blockers(&profile, &facts, &plan));
    if !plan.is_applicable() {
        if json {
            print_json(
                serde_json::json!({"status": "refused", "changed": false, "errors": plan.errors}),
            );
        }
        for e in &plan.errors {
            output::eprint_line(&format!("dscproute: {e}"));
        }
        return exit::REFUSED;
    }
    if plan.is_noop() {
        if json {
            print_json(serde_json::json!({"status": "ok", "changed": false, "steps": 0}));
        } else {
            output::print("Nothing to do: this host already matches the profile.\n");
        }
        return exit::OK;
    }
    if !yes {
        output::print(&plan::render_text(&plan, &source));
        let n = plan.pending().count();
        match ask(&format!("\nApply these {n} changes?")) {
            Some(true) => {}
            Some(false) => return fail(exit::FAILED, "apply cancelled: nothing was changed"),
            None => {
                return fail(
                    exit::USAGE,
                    "refusing to apply without --yes: stdin is not a terminal, so nobody can \
                     confirm the plan; review it with `dscproute plan` and rerun with --yes",
                );
            }
        }
    }
    // From here a closed terminal, a logout or Ctrl-C never leaves a change
    // half-way: the step running finishes, the rest is not started and the
    // done ones are undone (see runner::signals).
    signals::guard(OnStop::Abort);
    let arm = |j: &Journal| timer::arm(state, j);
    let confirm_arg = confirm.map(|secs| (secs, &arm as crate::apply::transaction::ArmTimer));
    let mut print = progress(json);
    let mut events = |e: Event| {
        if matches!(e, Event::Failed { .. } | Event::Undoing { .. }) {
            signals::finish_undo();
        }
        print(e);
    };
    let outcome = engine.apply(&lock, &plan, &source, confirm_arg, &mut events);
    if let (Some(sig), Ok(ApplyOutcome::Applied(j))) = (signals::received(), &outcome) {
        // The signal came after the last command: undo the whole change.
        signals::finish_undo();
        let sig = signals::name(sig);
        let undone = engine.rollback(&lock, &mut events);
        if json {
            let clean = matches!(
                undone,
                Ok(RollbackOutcome::RolledBack(_) | RollbackOutcome::Nothing(_))
            );
            print_json(serde_json::json!({
                "status": "failed",
                "changed": !clean,
                "transaction": j.id,
                "stderr": format!("stopped by {sig}"),
            }));
        }
        return match undone {
            Ok(RollbackOutcome::RolledBack(_) | RollbackOutcome::Nothing(_)) => fail(
                exit::FAILED,
                &format!(
                    "apply stopped by {sig} after its last step: transaction {} was rolled back, \
                     the host is as it was",
                    j.id
                ),
            ),
            Ok(RollbackOutcome::Partial(_)) => fail(
                exit::FAILED,
                &format!(
                    "apply stopped by {sig}: some undo steps failed: run `dscproute status` and \
                     `dscproute rollback --all`"
                ),
            ),
            Err(e) => engine_error(e),
        };
    }
    match outcome {
        Err(e) => engine_error(e),
        Ok(ApplyOutcome::Noop) => exit::OK,
        Ok(ApplyOutcome::Applied(j)) => {
            if json {
                print_json(serde_json::json!({
                    "status": if confirm.is_some() { "pending_confirm" } else { "changed" },
                    "changed": true,
                    "transaction": j.id,
                    "steps": j.steps.len(),
                    "confirm_deadline_unix": j.confirm_deadline_unix,
                }));
            } else {
                output::print(&format!(
                    "Applied {} steps (transaction {}).\n",
                    j.steps.len(),
                    j.id
                ));
                if let Some(secs) = confirm {
                    output::print(&format!(
                        "Keep it: run `dscproute confirm` within {secs} s, or it is rolled back \
                         automatically (also if this session dies).\n"
                    ));
                }
            }
            exit::OK
        }
        Ok(ApplyOutcome::Failed { journal, failure }) => {
            let clean = !journal
                .steps
                .iter()
                .any(|s| s.status == crate::apply::StepStatus::UndoFailed);
            if json {
                print_json(serde_json::json!({
                    "status": "failed",
                    "changed": !clean,
                    "transaction": journal.id,
                    "failed_command": failure.command,
                    "stderr": failure.stderr.trim(),
                }));
            }
            let tail = if clean {
                "the completed steps were undone: the host is as it was"
            } else {
                "some undo steps failed: run `dscproute status` and `dscproute rollback --all`"
            };
            if let Some(u) = &journal.unsaved {
                output::eprint_line(&format!("dscproute: {u}"));
            }
            if let Some(sig) = signals::received()
                && failure.stderr.contains(signals::REFUSAL)
            {
                return fail(
                    exit::FAILED,
                    &format!(
                        "apply stopped by {} before `{}`: {tail}",
                        signals::name(sig),
                        failure.command
                    ),
                );
            }
            fail(
                exit::FAILED,
                &format!(
                    "apply failed at `{}`: {}; {tail}",
                    failure.command,
                    failure.stderr.trim()
                ),
            )
        }
    }
}

/// How many undos found their object already gone, when any did.
fn already_gone_note(j: &Journal) -> String {
    let n = j
        .steps
        .iter()
        .filter(|s| {
            s.status == crate::apply::StepStatus::Undone
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

/// The journal could not record the end of an undo: say so.
fn unsaved_note(j: &Journal) {
    if let Some(u) = &j.unsaved {
        output::eprint_line(&format!("dscproute: {u}"));
    }
}

/// What to do about a journal that cannot be read.
const UNREADABLE_HINT: &str = "run `dscproute rollback --all` to remove everything of \
                               dscproute's by its tags (the journal is then kept aside)";

pub fn rollback_cmd(state: &StateDir, yes: bool, all: bool, json: bool) -> i32 {
    if !crate::runner::is_root() {
        return fail(
            exit::BLOCKED,
            "rollback changes the host and needs root: run it as root",
        );
    }
    // Nothing on record and nothing to sweep: say so without creating state.
    if !all && matches!(Journal::load(state), Ok(None)) {
        let message = "nothing to roll back: dscproute has no transaction on record here";
        if json {
            print_json(serde_json::json!({"status": "ok", "changed": false, "message": message}));
        } else {
            output::print(&format!("{message}\n"));
        }
        return exit::OK;
    }
    let engine = engine(state);
    let lock = match engine.lock() {
        Ok(l) => l,
        Err(e) => return engine_error(e),
    };
    // `--all` goes on without a readable journal: the tags are enough.
    let journal = match Journal::load(state) {
        Ok(j) => Ok(j),
        Err(e) if all => Err(e),
        Err(e @ crate::apply::LoadError::Unreadable(_)) => {
            return fail(exit::FAILED, &format!("{e}: {UNREADABLE_HINT}"));
        }
        Err(e) => return journal_error(&e),
    };
    if !yes {
        let what = match (&journal, all) {
            (_, true) => "everything dscproute owns on this host".to_string(),
            (Ok(Some(j)), false) if j.needs_undo() => {
                format!("transaction {} ({} steps)", j.id, j.steps.len())
            }
            _ => String::new(),
        };
        if !what.is_empty() {
            match ask(&format!("Roll back {what}?")) {
                Some(true) => {}
                Some(false) => {
                    return fail(exit::FAILED, "rollback cancelled: nothing was changed");
                }
                None => {
                    return fail(
                        exit::USAGE,
                        "refusing to roll back without --yes: stdin is not a terminal",
                    );
                }
            }
        }
    }
    // A logout or Ctrl-C now waits for the rollback to finish.
    signals::guard(OnStop::Finish);
    let mut events = progress(json);
    let (mut changed, mut message, mut code) = match &journal {
        Ok(_) => match engine.rollback(&lock, &mut events) {
            Err(e) => return engine_error(e),
            Ok(RollbackOutcome::Nothing(m)) => (false, m, exit::OK),
            Ok(RollbackOutcome::RolledBack(j)) => {
                timer::disarm_backstop(&j.id);
                unsaved_note(&j);
                (
                    true,
                    format!("Rolled back transaction {}.{}", j.id, already_gone_note(&j)),
                    exit::OK,
                )
            }
            Ok(RollbackOutcome::Partial(j)) => {
                timer::disarm_backstop(&j.id);
                unsaved_note(&j);
                (
                    true,
                    format!(
                        "Rolled back transaction {} partly: some undo steps failed or could not be recorded (see \
                         `dscproute status`).",
                        j.id
                    ),
                    exit::FAILED,
                )
            }
        },
        Err(e) => match crate::apply::sweep::set_aside(state) {
            Ok(kept) => (
                false,
                format!(
                    "The journal was unreadable ({e}); it is kept as {}. Sysctls it changed \
                     (forwarding, rp_filter) cannot be restored without it: check them.",
                    kept.display()
                ),
                exit::OK,
            ),
            Err(m) => (
                false,
                format!("The journal was unreadable ({e}) and could not be set aside: {m}"),
                exit::FAILED,
            ),
        },
    };
    if all {
        let facts = probe::probe_system();
        let dropin = Path::new(crate::plan::ownership::RT_TABLES_DROPIN).exists();
        let effects = crate::apply::sweep::removals(&facts, dropin);
        let ex = crate::apply::executor::Executor {
            runner: &SystemRunner,
            root: PathBuf::from("/"),
        };
        for e in &effects {
            if !json {
                output::print(&format!("  remove: {}\n", e.display()));
            }
        }
        let failures = crate::apply::sweep::run(&ex, &effects);
        changed |= !effects.is_empty();
        message = if effects.is_empty() {
            format!("{message}\nNothing else of dscproute's was found.")
        } else {
            format!(
                "{message}\nRemoved {} tagged items.",
                effects.len() - failures.len()
            )
        };
        for f in &failures {
            output::eprint_line(&format!("dscproute: could not remove: {f}"));
        }
        if !failures.is_empty() {
            code = exit::FAILED;
        }
    }
    if let Some(sig) = signals::received() {
        message = format!(
            "{message}\n(Got {} meanwhile: the rollback was finished first.)",
            signals::name(sig)
        );
    }
    if json {
        print_json(
            serde_json::json!({"status": if code == 0 { "ok" } else { "failed" }, "changed": changed, "message": message}),
        );
    } else {
        output::print(&format!("{}\n", message.trim_start()));
    }
    code
}

pub fn confirm_cmd(state: &StateDir) -> i32 {
    // Read first: with nothing pending, confirm creates no state at all.
    match Journal::load(state) {
        Ok(Some(j)) if j.state == crate::apply::TxnState::PendingConfirm => {}
        Ok(j) => {
            let what = match j {
                Some(j) => format!(
                    "nothing awaits confirmation: the last transaction, {}, is {}",
                    j.id,
                    crate::apply::transaction::state_word(j.state)
                ),
                None => "nothing awaits confirmation: no transaction on record".into(),
            };
            return fail(exit::BLOCKED, &what);
        }
        Err(e @ crate::apply::LoadError::Unreadable(_)) => {
            return fail(exit::FAILED, &format!("{e}: {UNREADABLE_HINT}"));
        }
        Err(e) => return journal_error(&e),
    }
    let engine = engine(state);
    let lock = match engine.lock() {
        Ok(l) => l,
        Err(e) => return engine_error(e),
    };
    match engine.confirm(&lock) {
        Err(e) => engine_error(e),
        Ok(Ok(j)) => {
            timer::disarm_backstop(&j.id);
            output::print(&format!(
                "Kept transaction {}; the rollback timer is disarmed.\n",
                j.id
            ));
            exit::OK
        }
        Ok(Err(m)) => fail(exit::BLOCKED, &m),
    }
}

/// Exit 1 when the status needs a command (unreadable journal, drift, a
/// pending change nothing will roll back); the advice says which.
pub fn status_cmd(state: &StateDir, json: bool) -> i32 {
    let facts = probe::probe_system();
    let s = status::gather_dir(state, &facts, &SystemRunner);
    if json {
        output::print(&format!(
            "{}\n",
            serde_json::to_string_pretty(&s).expect("status serializes")
        ));
    } else {
        output::print(&status::render(&s));
    }
    if s.needs_action() {
        exit::FAILED
    } else {
        exit::OK
    }
}
