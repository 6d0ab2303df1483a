//! The confirm timer: a detached process (own session, stdio on /dev/null,
//! SIGHUP and SIGPIPE ignored) that outlives the terminal, the SSH session
//! and the apply process. At the deadline it rolls back the transaction it
//! was armed for, unless the journal says it was confirmed or undone. It
//! inherits the network and mount namespaces of the apply that started it.

use super::journal::{Journal, TxnState, now_unix};
use super::lock::Lock;
use super::state_dir::StateDir;
use super::transaction::{Engine, Event, RollbackOutcome};
use crate::runner::SystemRunner;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Hidden subcommand the timer runs as.
pub const TIMER_COMMAND: &str = "__confirm-timer";

/// Start the timer for `journal`; returns its pid.
pub fn arm(state: &StateDir, journal: &Journal) -> Result<u32, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let deadline = journal
        .confirm_deadline_unix
        .ok_or("the journal has no confirm deadline")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--state-dir")
        .arg(state.path())
        .arg(TIMER_COMMAND)
        .arg("--txn")
        .arg(&journal.id)
        .arg("--deadline")
        .arg(deadline.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls (setsid, signal).
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            libc::signal(libc::SIGHUP, libc::SIG_IGN);
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the timer: {e}"))?;
    // The started process forks the real timer, prints its pid and exits at
    // once: the timer is then init's child, never our zombie.
    let mut pid = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read;
        let _ = out.read_to_string(&mut pid);
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot start the timer: {e}"))?;
    match pid.trim().parse() {
        Ok(p) if status.success() => Ok(p),
        _ => Err(format!("the timer did not start ({status})")),
    }
}

/// Detach: fork, let the parent print the child's pid and exit, and give the
/// child /dev/null as stdout. Called first thing in the timer process, while
/// it has a single thread.
fn detach() -> std::io::Result<()> {
    // SAFETY: single-threaded at this point; fork, open, dup2, write and
    // _exit are async-signal-safe.
    unsafe {
        match libc::fork() {
            -1 => Err(std::io::Error::last_os_error()),
            0 => {
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
                if null >= 0 {
                    libc::dup2(null, 1);
                    libc::close(null);
                }
                Ok(())
            }
            child => {
                let text = format!("{child}\n");
                libc::write(1, text.as_ptr().cast(), text.len());
                libc::_exit(0);
            }
        }
    }
}

fn log(state: &StateDir, msg: &str) {
    if let Ok(mut f) = super::state_dir::append_no_follow(&state.timer_log()) {
        let _ = writeln!(f, "{} {msg}", now_unix());
    }
}

/// Is the journal still waiting on this transaction?
fn still_pending(state: &StateDir, txn: &str) -> bool {
    matches!(
        Journal::load(state),
        Ok(Some(j)) if j.id == txn && matches!(j.state, TxnState::PendingConfirm | TxnState::Running)
    )
}

/// The timer's main: wait for the deadline, polling the journal so that a
/// confirm or a rollback lets it leave early; then roll back.
pub fn run(state: StateDir, txn: &str, deadline: u64) -> i32 {
    // SAFETY: setting signal dispositions at start-up, single-threaded.
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    if let Err(e) = detach() {
        log(&state, &format!("cannot detach: {e}"));
        return 1;
    }
    log(&state, &format!("armed for {txn}, deadline {deadline}"));
    loop {
        if !still_pending(&state, txn) {
            log(&state, &format!("{txn} is no longer pending: leaving"));
            return 0;
        }
        let now = now_unix();
        if now >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(((deadline - now) * 1000).min(500)));
    }
    let lock = match Lock::wait(&state.lock_file()) {
        Ok(l) => l,
        Err(e) => {
            log(&state, &format!("cannot take the lock: {e:?}"));
            return 1;
        }
    };
    if !still_pending(&state, txn) {
        log(&state, &format!("{txn} was confirmed or undone meanwhile"));
        return 0;
    }
    let engine = Engine {
        runner: &SystemRunner,
        root: PathBuf::from("/"),
        state: state.clone(),
    };
    let mut events = |e: Event| log(&state, &format!("{e:?}"));
    match engine.rollback(&lock, &mut events) {
        Ok(RollbackOutcome::RolledBack(_)) => {
            log(&state, &format!("{txn} not confirmed in time: rolled back"));
            0
        }
        Ok(RollbackOutcome::Partial(_)) => {
            log(
                &state,
                &format!("{txn}: rollback incomplete, see the journal"),
            );
            1
        }
        Ok(RollbackOutcome::Nothing(m)) => {
            log(&state, &m);
            0
        }
        Err(e) => {
            log(&state, &format!("rollback failed: {e}"));
            1
        }
    }
}
