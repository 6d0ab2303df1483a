//! The transaction journal: every step is recorded before and after it runs,
//! with what undo needs (old sysctl values, old file contents). Written
//! durably after every change, so a later rollback can restore the exact
//! prior state whatever moment the process died.
//!
//! Steps are stored as typed operations (`backend::Op`, version 2), so a
//! journal can only express what dscproute plans. Journals of version 1
//! stored the commands; they are read back through `Op::parse`, which
//! accepts only the commands dscproute writes, word for word.

use super::state_dir::StateDir;
use crate::backend::op::clip;
use crate::backend::{Effect, Op};
use crate::plan::{Role, Step, StepState, ValueChange};
use crate::safe_fs::{append_no_follow, read_no_follow, write_durably};
use fold::fold;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::io::Write;
use std::path::PathBuf;
use thiserror::Error;

/// Why a journal on disk cannot be used.
#[derive(Debug, Error)]
pub enum LoadError {
    /// Cannot be read or is not a journal at all.
    #[error(transparent)]
    Unreadable(#[from] Unreadable),
    /// Well formed, but it holds something dscproute never plans: nothing
    /// of it may run.
    #[error("{0}")]
    Refused(String),
}

/// Why the journal file could not be read as a journal.
#[derive(Debug, Error)]
pub enum Unreadable {
    #[error("cannot read journal {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("journal {} is unreadable: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Why the journal (or its step log) could not be written.
#[derive(Debug, Error)]
pub enum WriteError {
    #[error("cannot write journal {}: {source}", path.display())]
    Journal {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove step log: {0}")]
    RemoveStepLog(#[source] std::io::Error),
    #[error("cannot write step log {}: {source}", path.display())]
    StepLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot archive journal: {0}")]
    Archive(#[source] std::io::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TxnState {
    /// Steps are being applied (or the process died while applying).
    Running,
    /// Applied; kept.
    Applied,
    /// Applied; rolled back unless confirmed before the deadline.
    PendingConfirm,
    /// A step failed and the completed steps were undone.
    Failed,
    RolledBack,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    /// Started; may or may not have taken effect.
    Running,
    Done,
    Failed,
    Undone,
    /// Undo was attempted and failed (left for `rollback --all`).
    UndoFailed,
}

/// What undo needs that the plan could not know.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Saved {
    Sysctl {
        key: String,
        old: String,
    },
    File {
        path: String,
        old_contents: Option<String>,
        created_dirs: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalStep {
    #[serde(with = "stored")]
    pub step: Step,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved: Option<Saved>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One line of the step log.
#[derive(Debug, Serialize, Deserialize)]
struct StepRecord {
    txn: String,
    index: usize,
    status: StepStatus,
    saved: Option<Saved>,
    error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub version: u32,
    pub id: String,
    pub created_unix: u64,
    pub profile: String,
    pub state: TxnState,
    #[serde(default)]
    pub confirm_deadline_unix: Option<u64>,
    #[serde(default)]
    pub timer_pid: Option<u32>,
    /// The kernel boot this ran in: after a reboot, rules, routes and
    /// sysctls are gone by themselves and only files need undoing.
    #[serde(default)]
    pub boot_id: Option<String>,
    pub steps: Vec<JournalStep>,
    /// What earlier transactions of the same setup changed and left in
    /// place (applies, repairs, profile edits), folded oldest first: the
    /// rollback of the setup undoes `steps`, then these, newest first, so
    /// one rollback returns the host to before dscproute first changed it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<JournalStep>,
    /// Set when the engine could not bring the journal on disk up to date
    /// (a full disk…) and went on from memory: what to tell the admin.
    #[serde(skip)]
    pub unsaved: Option<String>,
}

fn refused(dir: &StateDir, e: &str) -> LoadError {
    LoadError::Refused(format!(
        "journal {} refused: {e}; dscproute never writes that, so nothing of it runs: inspect \
         it, then move it and current.log out of {} to go on",
        dir.current().display(),
        dir.path().display()
    ))
}

/// This boot's id (/proc/sys/kernel/random/boot_id).
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The journal format written: steps as typed operations.
const VERSION: u32 = 2;

/// A step as the journal stores it: its operations typed, tagged by kind.
mod stored {
    use super::*;

    #[derive(Serialize)]
    struct StepRef<'a> {
        role: Role,
        state: StepState,
        apply: &'a Op,
        undo: &'a Op,
        reason: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        change: &'a Option<ValueChange>,
    }

    #[derive(Deserialize)]
    struct StepOwned {
        role: Role,
        state: StepState,
        apply: Op,
        undo: Op,
        reason: String,
        #[serde(default)]
        change: Option<ValueChange>,
    }

    pub fn serialize<S: Serializer>(s: &Step, ser: S) -> Result<S::Ok, S::Error> {
        StepRef {
            role: s.role,
            state: s.state,
            apply: &s.apply,
            undo: &s.undo,
            reason: &s.reason,
            change: &s.change,
        }
        .serialize(ser)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Step, D::Error> {
        let s = StepOwned::deserialize(d)?;
        Ok(Step {
            role: s.role,
            state: s.state,
            apply: s.apply,
            undo: s.undo,
            reason: s.reason,
            change: s.change,
        })
    }
}

/// Version 1: the same journal with each step's commands as effects.
mod legacy {
    use super::*;

    #[derive(Deserialize)]
    struct Step1 {
        role: Role,
        state: StepState,
        apply: Effect,
        undo: Effect,
        reason: String,
        #[serde(default)]
        change: Option<ValueChange>,
    }

    #[derive(Deserialize)]
    struct JournalStep1 {
        step: Step1,
        status: StepStatus,
        #[serde(default)]
        saved: Option<Saved>,
        #[serde(default)]
        error: Option<String>,
    }

    #[derive(Deserialize)]
    pub struct Journal1 {
        id: String,
        created_unix: u64,
        profile: String,
        state: TxnState,
        #[serde(default)]
        confirm_deadline_unix: Option<u64>,
        #[serde(default)]
        timer_pid: Option<u32>,
        #[serde(default)]
        boot_id: Option<String>,
        steps: Vec<JournalStep1>,
    }

    fn op(i: usize, what: &str, e: &Effect) -> Result<Op, String> {
        Op::parse(e).map_err(|why| format!("step {} {what} `{}`: {why}", i + 1, clip(&e.display())))
    }

    impl Journal1 {
        /// Each step's commands as the operations they spell, or the
        /// first that is not one dscproute writes.
        pub fn upgrade(self) -> Result<Journal, String> {
            let mut steps = Vec::with_capacity(self.steps.len());
            for (i, js) in self.steps.into_iter().enumerate() {
                let s = js.step;
                steps.push(JournalStep {
                    step: Step {
                        role: s.role,
                        state: s.state,
                        apply: op(i, "apply", &s.apply)?,
                        undo: op(i, "undo", &s.undo)?,
                        reason: s.reason,
                        change: s.change,
                    },
                    status: js.status,
                    saved: js.saved,
                    error: js.error,
                });
            }
            Ok(Journal {
                version: VERSION,
                id: self.id,
                created_unix: self.created_unix,
                profile: self.profile,
                state: self.state,
                confirm_deadline_unix: self.confirm_deadline_unix,
                timer_pid: self.timer_pid,
                boot_id: self.boot_id,
                steps,
                setup: Vec::new(),
                unsaved: None,
            })
        }
    }
}

/// Only the version, to know how to read the rest.
#[derive(Deserialize)]
struct Versioned {
    version: u32,
}

impl Journal {
    pub fn new(profile: &str, steps: Vec<Step>) -> Journal {
        let created = now_unix();
        Journal {
            version: VERSION,
            id: format!("{created}-{}", std::process::id()),
            created_unix: created,
            profile: profile.to_string(),
            state: TxnState::Running,
            confirm_deadline_unix: None,
            timer_pid: None,
            boot_id: boot_id(),
            unsaved: None,
            setup: Vec::new(),
            steps: steps
                .into_iter()
                .map(|step| JournalStep {
                    step,
                    status: StepStatus::Pending,
                    saved: None,
                    error: None,
                })
                .collect(),
        }
    }

    /// The last transaction, with its step log folded in, once every step
    /// in it has been checked to be one dscproute plans.
    pub fn load(dir: &StateDir) -> Result<Option<Journal>, LoadError> {
        let path = dir.current();
        match read_no_follow(&path) {
            Ok(text) => {
                let unreadable = |source: serde_json::Error| {
                    LoadError::from(Unreadable::Parse {
                        path: path.clone(),
                        source,
                    })
                };
                let version = serde_json::from_str::<Versioned>(&text)
                    .map_err(unreadable)?
                    .version;
                let mut j = if version == 1 {
                    serde_json::from_str::<legacy::Journal1>(&text)
                        .map_err(unreadable)?
                        .upgrade()
                        .map_err(|e| refused(dir, &e))?
                } else {
                    serde_json::from_str::<Journal>(&text).map_err(unreadable)?
                };
                j.replay(&read_no_follow(&dir.step_log()).unwrap_or_default());
                j.check(dir)?;
                Ok(Some(j))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Unreadable::Read { path, source }.into()),
        }
    }

    /// Refuse a journal holding anything dscproute would not have written.
    pub fn check(&self, dir: &StateDir) -> Result<(), LoadError> {
        super::journal_check::check(self).map_err(|e| refused(dir, &e))
    }

    /// Write the whole journal durably and fold the step log into it.
    pub fn save(&self, dir: &StateDir) -> Result<(), WriteError> {
        let text = serde_json::to_string_pretty(self).expect("journal serializes");
        let path = dir.current();
        write_durably(&path, text.as_bytes())
            .map_err(|source| WriteError::Journal { path, source })?;
        match std::fs::remove_file(dir.step_log()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(WriteError::RemoveStepLog(e)),
            _ => Ok(()),
        }
    }

    /// Record one step's progress by appending a line to the step log:
    /// appends are cheap (no rename, which ext4 flushes) and a torn last line
    /// is ignored on load. Fsynced around steps whose effect outlives a
    /// reboot (files); the others (rules, routes, sysctls) vanish with a
    /// power loss anyway, and the boot id tells rollback so.
    pub fn record(&self, dir: &StateDir, index: usize, durable: bool) -> Result<(), WriteError> {
        let s = &self.steps[index];
        let rec = StepRecord {
            txn: self.id.clone(),
            index,
            status: s.status,
            saved: s.saved.clone(),
            error: s.error.clone(),
        };
        let mut line = serde_json::to_string(&rec).expect("record serializes");
        line.push('\n');
        let path = dir.step_log();
        let err = |source| WriteError::StepLog {
            path: path.clone(),
            source,
        };
        let mut f = append_no_follow(&path).map_err(err)?;
        f.write_all(line.as_bytes()).map_err(err)?;
        if durable {
            f.sync_data().map_err(err)?;
        }
        Ok(())
    }

    /// Keep a finished journal in history before a new one replaces it.
    pub fn archive(&self, dir: &StateDir) -> Result<(), WriteError> {
        let text = serde_json::to_string_pretty(self).expect("journal serializes");
        // Not synced: nothing reads the history back (the next journal
        // carries what an undo needs), and two fsyncs cost apply ~1 ms.
        crate::safe_fs::write_replacing(&dir.history(&self.id), text.as_bytes())
            .map_err(WriteError::Archive)
    }

    /// Apply step-log lines written after the journal; a torn or foreign
    /// line (a crash mid-write, an older transaction) is skipped.
    fn replay(&mut self, log: &str) {
        for line in log.lines() {
            let Ok(r) = serde_json::from_str::<StepRecord>(line) else {
                continue;
            };
            if r.txn != self.id {
                continue;
            }
            if let Some(s) = self.steps.get_mut(r.index) {
                s.status = r.status;
                s.saved = r.saved;
                s.error = r.error;
            }
        }
    }

    pub fn seconds_left(&self) -> Option<i64> {
        self.confirm_deadline_unix
            .map(|d| d as i64 - now_unix() as i64)
    }

    /// Steps of this transaction that may have changed the host and so
    /// need undoing.
    pub fn needs_undo(&self) -> bool {
        self.steps.iter().any(JournalStep::in_effect)
    }

    /// Anything of the whole setup (this transaction or an earlier one)
    /// that may still be in place.
    pub fn setup_needs_undo(&self) -> bool {
        self.needs_undo() || self.setup.iter().any(JournalStep::in_effect)
    }

    /// The setup the next transaction inherits: the earlier setup and what
    /// this transaction left in place, folded (see `fold`). Across a reboot
    /// only what outlives one (files) is carried: the rest went with it.
    pub fn carried(&self, boot_now: Option<&str>) -> Vec<JournalStep> {
        let rebooted = self.boot_id.is_some() && self.boot_id.as_deref() != boot_now;
        let mut setup = Vec::new();
        for js in self.setup.iter().chain(&self.steps) {
            if js.in_effect() && (!rebooted || js.step.apply.is_persistent()) {
                fold(&mut setup, js.clone());
            }
        }
        setup
    }

    /// For the rollback of the whole setup: the earlier transactions' steps
    /// become the first steps of this one, so that undoing it (newest
    /// first) undoes everything, and its step log indexes stay valid.
    pub fn merge_setup(&mut self) {
        if self.setup.is_empty() {
            return;
        }
        let mut all = std::mem::take(&mut self.setup);
        all.append(&mut self.steps);
        self.steps = all;
    }
}

impl JournalStep {
    /// May have changed the host, so needs undoing.
    pub fn in_effect(&self) -> bool {
        matches!(
            self.status,
            StepStatus::Running | StepStatus::Done | StepStatus::UndoFailed
        )
    }
}

mod fold;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::SysctlKey;
    use crate::plan::{Role, Step, StepState};

    fn sysctl(value: u8) -> Op {
        Op::Sysctl {
            key: SysctlKey::Ipv4Forwarding,
            value,
        }
    }

    fn journal() -> Journal {
        let step = Step {
            role: Role::Gateway,
            state: StepState::Change,
            apply: sysctl(1),
            undo: sysctl(0),
            reason: String::new(),
            change: None,
        };
        Journal::new("p", vec![step.clone(), step])
    }

    #[test]
    fn a_step_log_line_is_checked_like_the_journal() {
        let t = tempfile::tempdir().unwrap();
        let dir = StateDir::resolve(Some(t.path()));
        let mut j = journal();
        j.save(&dir).unwrap();
        // What undo would restore, appended later: an unmanaged sysctl.
        j.steps[0].status = StepStatus::Done;
        j.steps[0].saved = Some(Saved::Sysctl {
            key: "kernel.modprobe".into(),
            old: "/tmp/x".into(),
        });
        j.record(&dir, 0, false).unwrap();
        match Journal::load(&dir) {
            Err(LoadError::Refused(m)) => {
                assert!(m.contains("step 1 saved undo data"), "{m}");
                assert!(m.contains(&dir.current().display().to_string()), "{m}");
                assert!(!m.contains('\n'), "one line: {m}");
            }
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn step_log_is_replayed_and_a_torn_line_ignored() {
        let t = tempfile::tempdir().unwrap();
        let dir = StateDir::resolve(Some(t.path()));
        let mut j = journal();
        j.save(&dir).unwrap();
        j.steps[0].status = StepStatus::Done;
        j.record(&dir, 0, true).unwrap();
        j.steps[1].status = StepStatus::Running;
        j.record(&dir, 1, false).unwrap();
        // A crash in the middle of the next append.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.step_log())
            .unwrap();
        f.write_all(br#"{"txn":"x","ind"#).unwrap();
        let back = Journal::load(&dir).unwrap().unwrap();
        assert_eq!(back.steps[0].status, StepStatus::Done);
        assert_eq!(back.steps[1].status, StepStatus::Running);
        // A full save folds the log in and removes it.
        back.save(&dir).unwrap();
        assert!(!dir.step_log().exists());
        assert_eq!(Journal::load(&dir).unwrap().unwrap(), back);
    }

    #[test]
    fn records_of_another_transaction_are_ignored() {
        let t = tempfile::tempdir().unwrap();
        let dir = StateDir::resolve(Some(t.path()));
        let mut old = journal();
        old.id = "old".into();
        old.steps[0].status = StepStatus::Done;
        let j = journal();
        j.save(&dir).unwrap();
        old.record(&dir, 0, false).unwrap();
        assert_eq!(
            Journal::load(&dir).unwrap().unwrap().steps[0].status,
            StepStatus::Pending
        );
    }
}
