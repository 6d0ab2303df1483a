//! Stop signals while dscproute changes the host. A SIGTERM (logout, a
//! scope stop), SIGINT (Ctrl-C) or SIGQUIT must never kill a change half-way
//! nor leave a child command to finish after the rollback. So, once
//! `guard` is called:
//! - the signal only sets a flag; the process stays alive;
//! - children are started in their own process group with those signals
//!   ignored: a terminal's Ctrl-C or a session-wide SIGTERM cannot cut an
//!   `iptables` short, so every child runs to its end and reports truly;
//! - with `OnStop::Abort` (apply), the next command after the signal is not
//!   started: it fails with a message, and the engine undoes the completed
//!   steps as after any failure. `finish_undo` turns that off for the undo.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// What a stop signal does to the work in progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnStop {
    /// Refuse the next command (apply: then undo what was done).
    Abort,
    /// Finish the work, then stop (rollback, the confirm timer).
    Finish,
}

/// What the signal handler and the runner share (only atomics: the
/// handler must be async-signal-safe).
pub(super) struct StopState {
    /// The first stop signal received (0: none).
    received: AtomicI32,
    /// Set while a received signal should refuse the next command.
    abort: AtomicBool,
}

impl StopState {
    const fn new() -> StopState {
        StopState {
            received: AtomicI32::new(0),
            abort: AtomicBool::new(false),
        }
    }

    fn record(&self, sig: libc::c_int) {
        let _ = self
            .received
            .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    }

    fn received(&self) -> Option<libc::c_int> {
        match self.received.load(Ordering::SeqCst) {
            0 => None,
            s => Some(s),
        }
    }

    /// Should the next command be refused? Once per process, after a
    /// signal, in `Abort` mode only: the refusal turns abort mode off.
    pub(super) fn take_abort(&self) -> Option<libc::c_int> {
        let sig = self.received()?;
        self.abort
            .compare_exchange(true, false, Ordering::SeqCst, Ordering::SeqCst)
            .ok()
            .map(|_| sig)
    }
}

pub(super) static STATE: StopState = StopState::new();
/// Children run in their own process group, stop signals ignored.
static PROTECT: AtomicBool = AtomicBool::new(false);

/// How a command refused after a stop signal reads (its stderr starts so).
pub const REFUSAL: &str = "not started: dscproute got";

/// The signals `guard` catches.
pub const STOP_SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT];

extern "C" fn on_stop(sig: libc::c_int) {
    STATE.record(sig);
}

/// Catch SIGTERM, SIGINT and SIGQUIT (SIGHUP is ignored) for the rest of
/// the process, and protect children from them.
pub fn guard(mode: OnStop) {
    STATE.abort.store(mode == OnStop::Abort, Ordering::SeqCst);
    protect_children();
    ignore_hangup();
    let handler = on_stop as extern "C" fn(libc::c_int);
    // SAFETY: the handler only touches atomics.
    unsafe {
        for sig in STOP_SIGNALS {
            libc::signal(sig, handler as libc::sighandler_t);
        }
    }
}

/// A closed terminal or SSH session (SIGHUP) must not kill a change
/// half-way: ignore it for the rest of the process (the apply's CLI and the
/// TUI, which notices the dead terminal by its errors and waits for its
/// workers).
pub fn ignore_hangup() {
    // SAFETY: setting a signal disposition; no handler code runs.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
}

/// Start children in their own process group with stop signals ignored
/// (the confirm timer, which waits for signals itself, uses this alone).
pub fn protect_children() {
    PROTECT.store(true, Ordering::SeqCst);
}

pub(super) fn children_protected() -> bool {
    PROTECT.load(Ordering::SeqCst)
}

/// From now on a stop signal no longer refuses commands: undo must finish.
pub fn finish_undo() {
    STATE.abort.store(false, Ordering::SeqCst);
}

/// The stop signal received so far, if any.
pub fn received() -> Option<libc::c_int> {
    STATE.received()
}

/// `SIGTERM`, `SIGINT`… for messages.
pub fn name(sig: libc::c_int) -> String {
    match sig {
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGUSR1 => "SIGUSR1".into(),
        libc::SIGUSR2 => "SIGUSR2".into(),
        libc::SIGALRM => "SIGALRM".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGPWR => "SIGPWR".into(),
        libc::SIGXCPU => "SIGXCPU".into(),
        libc::SIGXFSZ => "SIGXFSZ".into(),
        n => format!("signal {n}"),
    }
}

/// Keep stop signals pending in the calling thread until a wait lets them
/// in (`ppoll` with `unheld_mask`): a signal that lands between a test of
/// `received()` and the wait then interrupts that wait instead of being
/// missed by it. Children inherit the mask: `shield_child` lifts it.
pub fn hold_stop_signals() {
    // SAFETY: a sigset built with sigemptyset/sigaddset, for this thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in STOP_SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// The calling thread's signal mask without the stop signals: the mask a
/// wait uses to let them in (the same as now when they are not held).
pub fn unheld_mask() -> libc::sigset_t {
    // SAFETY: reads this thread's mask into a zeroed sigset, then edits it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_SETMASK, std::ptr::null(), &mut set);
        for sig in STOP_SIGNALS {
            libc::sigdelset(&mut set, sig);
        }
        set
    }
}

/// For `pre_exec`: own process group, stop signals and SIGHUP ignored
/// (and no longer held, see `hold_stop_signals`: a mask is inherited).
/// Only async-signal-safe calls.
pub(super) fn shield_child() -> std::io::Result<()> {
    // SAFETY: setpgid, signal, sigemptyset, sigaddset and sigprocmask are
    // async-signal-safe.
    unsafe {
        libc::setpgid(0, 0);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in STOP_SIGNALS {
            libc::signal(sig, libc::SIG_IGN);
            libc::sigaddset(&mut set, sig);
        }
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signal_refuses_one_command_in_abort_mode_only() {
        let s = StopState::new();
        s.abort.store(true, Ordering::SeqCst);
        assert_eq!(s.take_abort(), None, "no signal yet");
        s.record(libc::SIGTERM);
        s.record(libc::SIGINT);
        assert_eq!(s.received(), Some(libc::SIGTERM), "the first one counts");
        assert_eq!(s.take_abort(), Some(libc::SIGTERM));
        assert_eq!(s.take_abort(), None, "the undo that follows must run");

        let finish = StopState::new();
        finish.record(libc::SIGTERM);
        assert_eq!(finish.take_abort(), None, "rollback finishes its work");
        assert_eq!(name(libc::SIGTERM), "SIGTERM");
        assert_eq!(name(40), "signal 40");
    }
}
