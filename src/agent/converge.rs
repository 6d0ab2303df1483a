//! The seam between the supervisor and the engine: what is missing, and
//! repairing only that. The use-case layer implements it over probe, plan
//! and the journaled executor (same lock as `apply`).

use std::fmt;
use thiserror::Error;

/// What a check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Check {
    /// Everything is in place.
    Whole,
    /// Nothing can be repaired until the VPN is usable; the kill switch
    /// holds meanwhile.
    Waiting(WaitReason),
    /// These pieces are missing (one label each, for the report line).
    Missing(Vec<String>),
    /// The VPN is unusable, and these pieces that do not need it are
    /// missing (at boot: all but the routes through the VPN): they are put
    /// in place now, so that the kill switch holds while the agent waits.
    MissingWhileWaiting {
        reason: WaitReason,
        missing: Vec<String>,
        /// The profile has a kill switch (it is among what goes in place).
        kill_switch: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WaitReason {
    InterfaceMissing(String),
    InterfaceDown(String),
    NoNextHop(String),
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ConvergeError {
    /// Worth another try later (a command failed, the lock is held).
    #[error("{0}")]
    Transient(String),
    /// The agent cannot go on (the profile or the state directory is
    /// unusable): it exits non-zero.
    #[error("{0}")]
    Fatal(String),
}

pub trait Converge {
    /// Read-only: what is missing now. Called on every relevant event
    /// burst and every periodic tick, so it should be cheap.
    fn check(&mut self) -> Result<Check, ConvergeError>;

    /// Runs only the missing steps (`missing` is what the last `check`
    /// returned; an implementation may re-probe) and says what it did, one
    /// label per step.
    fn repair(&mut self, missing: &[String]) -> Result<Vec<String>, ConvergeError>;

    /// The uplinks the active checks hold down now; the next check and
    /// repair route their classes around them.
    fn set_unhealthy(&mut self, _down: Vec<crate::probe::Unhealthy>) {}

    /// The uplink each class routes through, as the last check planned it
    /// (empty for a profile without classes).
    fn choices(&self) -> Vec<ClassChoice> {
        Vec::new()
    }

    /// Drops the tracked connections of `class` on uplink `from`, which it
    /// left (they re-establish on the new one): what happened, in words.
    fn flush(&mut self, _class: &str, _from: &str) -> Option<String> {
        None
    }
}

/// Where a class's table routes now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassChoice {
    pub class: String,
    /// None: no uplink is usable (blocked, or main with kill_switch = false).
    pub uplink: Option<String>,
    pub why: String,
    /// The class's uplinks in order of preference.
    pub uplinks: Vec<String>,
}

impl WaitReason {
    /// The VPN interface waited for.
    pub fn interface(&self) -> &str {
        match self {
            WaitReason::InterfaceMissing(i)
            | WaitReason::InterfaceDown(i)
            | WaitReason::NoNextHop(i) => i,
        }
    }
}

impl fmt::Display for WaitReason {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            WaitReason::InterfaceMissing(i) => write!(f, "VPN interface {i} does not exist"),
            WaitReason::InterfaceDown(i) => write!(f, "VPN interface {i} is down"),
            WaitReason::NoNextHop(i) => write!(f, "VPN interface {i} has no next hop yet"),
        }
    }
}
