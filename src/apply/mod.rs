//! Effects: the executor, the journal, transactions, rollback, the confirm
//! timer and the lock. Everything that changes the host lives here.

pub mod agent_record;
pub mod baseline;
pub mod drift;
pub mod executor;
pub mod gone;
pub mod journal;
pub mod journal_check;
pub mod lock;
pub mod state_dir;
pub mod status;
pub mod sweep;
pub mod timer;
pub mod transaction;
pub mod trust;

pub use journal::{Journal, LoadError, StepStatus, TxnState, Unreadable, WriteError};
pub use state_dir::StateDir;
pub use transaction::{
    ApplyOutcome, Engine, EngineError, Event, NothingToRollBack, Recovered, RollbackOutcome, Scope,
};
