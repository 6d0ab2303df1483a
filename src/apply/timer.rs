//! The confirm timer: a detached process (own session, stdio on /dev/null)
//! that outlives the terminal, the SSH session and the apply process. At
//! the deadline it rolls back the transaction it was armed for, unless the
//! journal says it was confirmed or undone. It inherits the network and
//! mount namespaces of the apply that started it.
//!
//! No catchable signal kills it silently: SIGHUP, SIGPIPE and the stop
//! signals of job control are ignored, and every other signal whose default
//! would end it (SIGTERM from a logout or a scope stop, SIGINT, SIGQUIT,
//! SIGUSR1, real-time signals…) is blocked and waited for: it rolls back at
//! once, then exits. Only SIGKILL (and a fault of its own) can end it
//! without a rollback, so `status` checks that it is alive. Where systemd
//! manages the host and shares our namespaces, a transient systemd timer
//! unit backs it up: it fires just after the deadline, outside the login
//! session, and does nothing when the transaction is no longer pending.

use super::journal::{Journal, TxnState, now_unix};
use super::lock::Lock;
use super::state_dir::StateDir;
use super::transaction::{Engine, Event, RollbackOutcome, Scope};
use crate::runner::{Runner, SystemRunner, signals};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Hidden subcommand the timer runs as.
pub const TIMER_COMMAND: &str = "__confirm-timer";

/// Seconds the systemd backstop fires after the deadline, so that the
/// detached timer, when alive, goes first.
const BACKSTOP_GRACE_SECS: u64 = 2;

/// Ignored: hang-ups and broken pipes (it has no terminal and writes to no
/// pipe), and the job-control stops (a stopped timer would miss its deadline).
const IGNORED: [libc::c_int; 5] = [
    libc::SIGHUP,
    libc::SIGPIPE,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

/// Signals whose default action would end the timer: it rolls back on
/// them. Not the faults (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS):
/// they report a bug of its own, and blocking them is undefined.
fn act_on() -> Vec<libc::c_int> {
    let mut v = vec![
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGABRT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGIO,
        libc::SIGPWR,
        libc::SIGSTKFLT,
    ];
    // libc's SIGRTMIN() skips the ones glibc keeps for itself.
    v.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    v
}

fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set before sigaddset reads it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Ignore `IGNORED` and block `set`. Async-signal-safe (used in pre_exec).
fn shield(set: &libc::sigset_t) {
    // SAFETY: signal and sigprocmask are async-signal-safe; `set` is valid.
    unsafe {
        for s in IGNORED {
            libc::signal(s, libc::SIG_IGN);
        }
        libc::sigprocmask(libc::SIG_BLOCK, set, std::ptr::null_mut());
    }
}

/// Why the confirm timer could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    #[error("cannot find own executable: {0}")]
    Exe(#[source] std::io::Error),
    #[error("the journal has no confirm deadline")]
    NoDeadline,
    #[error("cannot start the timer: {0}")]
    Start(#[source] std::io::Error),
    #[error("the timer did not start ({0})")]
    NotStarted(std::process::ExitStatus),
}

/// Start the timer for `journal`; returns its pid.
pub fn arm(state: &StateDir, journal: &Journal) -> Result<u32, ArmError> {
    let exe = std::env::current_exe().map_err(ArmError::Exe)?;
    let deadline = journal.confirm_deadline_unix.ok_or(ArmError::NoDeadline)?;
    let mut cmd = Command::new(&exe);
    cmd.args(timer_args(state.path(), &journal.id, deadline))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let set = signal_set(&act_on());
    // SAFETY: between fork and exec only async-signal-safe calls (setsid,
    // signal, sigprocmask); the set was built before the fork. The mask and
    // the ignored signals survive exec, so no signal can slip in before the
    // timer's own start-up repeats them.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            shield(&set);
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(ArmError::Start)?;
    // The started process forks the real timer, prints its pid and exits at
    // once: the timer is then init's child, never our zombie.
    let mut pid = String::new();
    if let Some(mut out) = child.stdout.take() {
        use std::io::Read;
        let _ = out.read_to_string(&mut pid);
    }
    let status = child.wait().map_err(ArmError::Start)?;
    let pid = match pid.trim().parse() {
        Ok(p) if status.success() => p,
        _ => return Err(ArmError::NotStarted(status)),
    };
    if systemd_usable() {
        let secs = deadline.saturating_sub(now_unix()) + BACKSTOP_GRACE_SECS;
        let argv = backstop_argv(&exe, &absolute(state.path()), &journal.id, deadline, secs);
        let note = match SystemRunner.run(&argv) {
            Ok(out) if out.success() => format!("backstop {} armed", unit_name(&journal.id)),
            Ok(out) => format!("no systemd backstop: {}", out.stderr.trim()),
            Err(e) => format!("no systemd backstop: {e}"),
        };
        log(state, &note);
    }
    Ok(pid)
}

fn timer_args(state: &Path, txn: &str, deadline: u64) -> Vec<String> {
    vec![
        "--state-dir".into(),
        state.display().to_string(),
        TIMER_COMMAND.into(),
        "--txn".into(),
        txn.into(),
        "--deadline".into(),
        deadline.to_string(),
    ]
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The transient unit backing the timer of transaction `txn` (ids are
/// digits and a dash, valid in unit names).
pub fn unit_name(txn: &str) -> String {
    format!("dscproute-confirm-{txn}")
}

/// `systemd-run` starting the timer in the foreground `secs` from now, as
/// a service of the system manager (outside any login session).
fn backstop_argv(exe: &Path, state: &Path, txn: &str, deadline: u64, secs: u64) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "systemd-run".into(),
        "--quiet".into(),
        "--collect".into(),
        format!("--unit={}", unit_name(txn)),
        format!("--description=dscproute: roll back transaction {txn} unless confirmed"),
        format!("--on-active={secs}s"),
        "--timer-property=AccuracySec=1s".into(),
        "--".into(),
        exe.display().to_string(),
    ];
    v.extend(timer_args(state, txn, deadline));
    v.push("--foreground".into());
    v
}

/// systemd runs this host (sd_booted), `systemd-run` is installed, and we
/// share PID 1's network and mount namespaces: a unit it starts would act
/// on the same firewall and files as we do. Never inside a lab namespace.
pub fn systemd_usable() -> bool {
    let same_ns = |ns: &str| {
        let mine = std::fs::read_link(format!("/proc/self/ns/{ns}"));
        let init = std::fs::read_link(format!("/proc/1/ns/{ns}"));
        matches!((mine, init), (Ok(a), Ok(b)) if a == b)
    };
    Path::new("/run/systemd/system").is_dir()
        && crate::runner::find_program("systemd-run").is_some()
        && same_ns("net")
        && same_ns("mnt")
}

/// Is the systemd backstop of `txn` still waiting? `None` without systemd.
pub fn backstop_active(txn: &str) -> Option<bool> {
    if !systemd_usable() {
        return None;
    }
    let unit = format!("{}.timer", unit_name(txn));
    let out = SystemRunner
        .run_args(&["systemctl", "is-active", "--quiet", &unit])
        .ok()?;
    Some(out.success())
}

/// Stop the backstop of a confirmed or undone transaction (tidiness only:
/// when it fires it finds nothing pending and leaves).
pub fn disarm_backstop(txn: &str) {
    if systemd_usable() {
        let unit = format!("{}.timer", unit_name(txn));
        let _ = SystemRunner.run_args(&["systemctl", "stop", "--quiet", &unit]);
    }
}

/// Is `pid` the timer armed for `txn`? (A reused pid runs something else.)
pub fn alive(pid: u32, txn: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    args.contains(&TIMER_COMMAND.as_bytes()) && args.contains(&txn.as_bytes())
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
    if let Ok(mut f) = crate::safe_fs::append_no_follow(&state.timer_log()) {
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

/// Wait up to `timeout` for one of the blocked signals in `set`.
fn wait_signal(set: &libc::sigset_t, timeout: Duration) -> Option<(libc::c_int, i32)> {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: valid set, timespec and a zeroed siginfo for the kernel to fill.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let sig = libc::sigtimedwait(set, &mut info, &ts);
        (sig > 0).then(|| (sig, info.si_pid()))
    }
}

/// Why the timer rolls back.
enum Cause {
    Deadline,
    Signal(libc::c_int, i32),
}

/// The timer's main: wait for the deadline (or a signal), polling the
/// journal so that a confirm or a rollback lets it leave early; then roll
/// back. `foreground` (the systemd backstop) skips the detaching fork.
pub fn run(state: StateDir, txn: &str, deadline: u64, foreground: bool) -> i32 {
    let set = signal_set(&act_on());
    shield(&set);
    signals::protect_children();
    if !foreground && let Err(e) = detach() {
        log(&state, &format!("cannot detach: {e}"));
        return 1;
    }
    log(&state, &format!("armed for {txn}, deadline {deadline}"));
    let cause = loop {
        if !still_pending(&state, txn) {
            log(&state, &format!("{txn} is no longer pending: leaving"));
            return 0;
        }
        let now = now_unix();
        if now >= deadline {
            break Cause::Deadline;
        }
        let wait = Duration::from_millis(((deadline - now) * 1000).min(500));
        if let Some((sig, from)) = wait_signal(&set, wait) {
            break Cause::Signal(sig, from);
        }
    };
    if let Cause::Signal(sig, from) = cause {
        log(
            &state,
            &format!(
                "got {} from pid {from}: rolling {txn} back now",
                signals::name(sig)
            ),
        );
    }
    // Signals that come meanwhile stay pending: the rollback finishes.
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
    let why = match cause {
        Cause::Deadline => "not confirmed in time".to_string(),
        Cause::Signal(sig, _) => format!("timer got {}", signals::name(sig)),
    };
    match engine.rollback(&lock, Scope::Last, &mut events) {
        Ok(RollbackOutcome::RolledBack(_)) => {
            log(&state, &format!("{txn} {why}: rolled back"));
            0
        }
        Ok(RollbackOutcome::Partial(_)) => {
            log(
                &state,
                &format!("{txn} {why}: rollback incomplete, see the journal"),
            );
            1
        }
        Ok(RollbackOutcome::Nothing(m)) => {
            log(&state, &m.to_string());
            0
        }
        Err(e) => {
            log(&state, &format!("rollback failed: {e}"));
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acts_on_every_signal_that_would_end_it() {
        let set = act_on();
        for s in [
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGALRM,
            libc::SIGPWR,
            libc::SIGRTMAX(),
        ] {
            assert!(set.contains(&s), "{s}");
        }
        for s in IGNORED {
            assert!(!set.contains(&s), "{s} is ignored, not acted on");
        }
        for s in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, libc::SIGCHLD] {
            assert!(!set.contains(&s), "{s}");
        }
    }

    #[test]
    fn backstop_runs_the_timer_in_the_foreground_after_the_deadline() {
        let argv = backstop_argv(
            Path::new("/usr/bin/dscproute"),
            Path::new("/var/lib/dscproute"),
            "1800000000-42",
            1_800_000_120,
            122,
        );
        assert_eq!(
            argv.join(" "),
            "systemd-run --quiet --collect --unit=dscproute-confirm-1800000000-42 \
             --description=dscproute: roll back transaction 1800000000-42 unless confirmed \
             --on-active=122s --timer-property=AccuracySec=1s -- /usr/bin/dscproute \
             --state-dir /var/lib/dscproute __confirm-timer --txn 1800000000-42 \
             --deadline 1800000120 --foreground"
        );
    }

    #[test]
    fn a_pid_is_the_timer_only_when_it_runs_the_timer_of_that_transaction() {
        // This test process is no timer.
        assert!(!alive(std::process::id(), "1-1"));
        assert!(!alive(u32::MAX, "1-1"), "no such process");
    }

    #[test]
    fn a_blocked_signal_is_waited_for_not_fatal() {
        // In a child process: blocking signals in the test harness would
        // leak into other tests.
        // SAFETY: fork in a test; the child only makes async-signal-safe
        // calls (sigprocmask, kill, sigtimedwait, _exit).
        unsafe {
            match libc::fork() {
                -1 => panic!("fork: {}", std::io::Error::last_os_error()),
                0 => {
                    let set = signal_set(&[libc::SIGTERM]);
                    libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                    libc::kill(libc::getpid(), libc::SIGTERM);
                    let got = wait_signal(&set, Duration::from_secs(5));
                    libc::_exit(if matches!(got, Some((libc::SIGTERM, _))) {
                        7
                    } else {
                        1
                    });
                }
                child => {
                    let mut status = 0;
                    libc::waitpid(child, &mut status, 0);
                    assert!(libc::WIFEXITED(status), "killed: status {status:#x}");
                    assert_eq!(libc::WEXITSTATUS(status), 7);
                }
            }
        }
    }
}
