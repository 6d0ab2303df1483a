//! Keep a change applied with a confirm deadline: the journal says it is
//! kept, so its timer leaves without rolling back.

use super::{Host, JournalError, Kind, engine_kind};
use crate::apply::{EngineError, Journal, TxnState};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfirmError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Nothing awaits confirmation, the lock is busy, the journal could
    /// not be written.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl ConfirmError {
    pub fn kind(&self) -> Kind {
        match self {
            ConfirmError::Journal(e) => e.kind(),
            ConfirmError::Engine(e) => engine_kind(e),
        }
    }
}

/// Keep the pending change; returns its journal, now applied.
pub fn confirm(host: &Host) -> Result<Journal, ConfirmError> {
    // Read first: with nothing pending, confirm creates no state at all.
    match Journal::load(&host.state).map_err(JournalError)? {
        Some(j) if j.state == TxnState::PendingConfirm => {}
        last => {
            return Err(EngineError::NothingToConfirm {
                last: last.map(|j| (j.id, j.state)),
            }
            .into());
        }
    }
    let engine = host.engine();
    let lock = engine.lock()?;
    let kept = engine.confirm(&lock)?;
    (host.timer.disarm)(&kept.id);
    Ok(kept)
}
