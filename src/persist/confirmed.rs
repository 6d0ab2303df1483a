//! "A persisted change is only written after a confirmed apply."
//!
//! The rule, read from the journal of the last transaction:
//!
//! 1. It must be `Applied`: applied without `--confirm`, or confirmed. Not
//!    awaiting confirmation (confirm first), not interrupted, failed or
//!    rolled back (apply again), and not absent (apply first).
//! 2. It must be this profile, shown one of two ways:
//!    - **same content**: the file the transaction applied (the journal
//!      records its path as given; a relative path is read from the current
//!      directory) is byte-identical to the profile being persisted, and was
//!      not modified after the transaction started (its mtime is not later
//!      than the journal's creation time). So a copy of the applied file
//!      qualifies, and an edit after the apply does not;
//!    - **in place**: otherwise, this profile's plan against the host as it
//!      is now has no step left to run and no error. That covers a profile
//!      edited without changing what it does (a second `apply` is then a
//!      no-op and writes no new journal) and a setup applied from the TUI.
//!
//! Either way, the setup that boots is one the admin applied and kept (with
//! `--confirm`, one that provably did not cut their access). The journal
//! holds no hash of the profile; the mtime test stands in for one.

use crate::apply::{Journal, TxnState};
use std::path::{Path, PathBuf};

/// Why the profile counts as applied and kept.
#[derive(Debug, PartialEq, Eq)]
pub enum Evidence {
    /// The last transaction applied a byte-identical, unmodified file.
    SameContent { transaction: String },
    /// The profile's plan is entirely in place and the last transaction was kept.
    InPlace { transaction: String },
}

impl Evidence {
    pub fn transaction(&self) -> &str {
        match self {
            Evidence::SameContent { transaction } | Evidence::InPlace { transaction } => {
                transaction
            }
        }
    }
}

/// Check the rule. `text` is the profile's bytes; `in_place` answers whether
/// its plan has nothing left to do on this host (asked only when needed).
pub fn check(
    journal: Option<&Journal>,
    profile: &Path,
    text: &[u8],
    in_place: &mut dyn FnMut() -> bool,
) -> Result<Evidence, String> {
    let shown = profile.display();
    let apply_first = format!(
        "apply it first: `dscproute apply --profile {shown}` (with `--confirm SECS` then `dscproute \
         confirm`, when the change could cut your access), then persist it; persist installs only \
         a setup that was applied and kept"
    );
    let Some(j) = journal else {
        return Err(format!(
            "nothing has been applied on this host yet (no journal): {apply_first}"
        ));
    };
    match j.state {
        TxnState::Applied => {}
        TxnState::PendingConfirm => {
            return Err(format!(
                "transaction {} awaits confirmation: run `dscproute confirm` to keep it, then \
                 persist (persist installs only a setup that was kept)",
                j.id
            ));
        }
        TxnState::Running => {
            return Err(format!(
                "transaction {} was interrupted: run `dscproute rollback`, apply the profile \
                 again, then persist",
                j.id
            ));
        }
        TxnState::Failed => {
            return Err(format!(
                "the last apply (transaction {}) failed and was undone: {apply_first}",
                j.id
            ));
        }
        TxnState::RolledBack => {
            return Err(format!(
                "the last transaction ({}) was rolled back: {apply_first}",
                j.id
            ));
        }
    }
    if same_content(j, text) {
        return Ok(Evidence::SameContent {
            transaction: j.id.clone(),
        });
    }
    if in_place() {
        return Ok(Evidence::InPlace {
            transaction: j.id.clone(),
        });
    }
    Err(format!(
        "the last kept transaction ({}) applied {}, which is not this profile (or was changed \
         since), and this profile's plan is not in place here: {apply_first}",
        j.id, j.profile
    ))
}

/// The journal's profile file, resolved as the apply saw it (relative to
/// the current directory when relative).
fn applied_file(j: &Journal) -> PathBuf {
    let p = Path::new(&j.profile);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    }
}

fn same_content(j: &Journal, text: &[u8]) -> bool {
    let path = applied_file(j);
    // Only a regular file: never block on a FIFO or /dev/stdin.
    let Ok(meta) = std::fs::metadata(&path) else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs());
    if modified.is_none_or(|m| m > j.created_unix) {
        return false;
    }
    std::fs::read(&path).is_ok_and(|b| b == text)
}
