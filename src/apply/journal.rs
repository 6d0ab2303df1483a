//! The transaction journal: every step is recorded before and after it runs,
//! with what undo needs (old sysctl values, old file contents). Written
//! durably after every change, so a later rollback can restore the exact
//! prior state whatever moment the process died.

use super::state_dir::{StateDir, write_durably};
use crate::plan::Step;
use serde::{Deserialize, Serialize};

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
    pub step: Step,
    pub status: StepStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved: Option<Saved>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    pub steps: Vec<JournalStep>,
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Journal {
    pub fn new(profile: &str, steps: Vec<Step>) -> Journal {
        let created = now_unix();
        Journal {
            version: 1,
            id: format!("{created}-{}", std::process::id()),
            created_unix: created,
            profile: profile.to_string(),
            state: TxnState::Running,
            confirm_deadline_unix: None,
            timer_pid: None,
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

    pub fn load(dir: &StateDir) -> Result<Option<Journal>, String> {
        let path = dir.current();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("journal {} is unreadable: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read journal {}: {e}", path.display())),
        }
    }

    pub fn save(&self, dir: &StateDir) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).expect("journal serializes");
        write_durably(&dir.current(), text.as_bytes())
            .map_err(|e| format!("cannot write journal {}: {e}", dir.current().display()))
    }

    /// Keep a finished journal in history before a new one replaces it.
    pub fn archive(&self, dir: &StateDir) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).expect("journal serializes");
        write_durably(&dir.history(&self.id), text.as_bytes())
            .map_err(|e| format!("cannot archive journal: {e}"))
    }

    /// Steps that may have changed the host and so need undoing.
    pub fn needs_undo(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.status, StepStatus::Running | StepStatus::Done))
    }

    pub fn seconds_left(&self) -> Option<i64> {
        self.confirm_deadline_unix
            .map(|d| d as i64 - now_unix() as i64)
    }
}
