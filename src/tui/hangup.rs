//! Noticing that the terminal is gone (SSH session dropped, tmux server
//! killed) and letting go of it without spinning.
//!
//! A hung-up tty reads as end-of-file forever, and crossterm's reader loops
//! on that inside its poll: reading a dead terminal is a busy loop. So the
//! loop asks the kernel instead (`poll` reports POLLHUP on a hung-up tty)
//! and, once it is gone, puts an empty non-blocking pipe on stdin (a read
//! says "nothing yet" and crossterm returns) and /dev/null on stdout and
//! stderr (a late write succeeds instead of failing with EIO).
//!
//! SIGHUP sets a flag while no change is under way. While one is, SIGHUP is
//! ignored instead: the disposition is inherited by the commands the change
//! runs, and a handler would not be (exec resets it to "terminate"), so an
//! iptables-restore in flight would die with the session.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};

static SIGNALLED: AtomicBool = AtomicBool::new(false);
/// The input side failed to read the terminal (set by the input thread).
static UNREADABLE: AtomicBool = AtomicBool::new(false);
static SPARE_IN: AtomicI32 = AtomicI32::new(-1);
static NULL_OUT: AtomicI32 = AtomicI32::new(-1);
/// What SIGHUP does now: 0 untouched, LISTENING or SHIELDED.
static DISPOSITION: AtomicU8 = AtomicU8::new(0);
const LISTENING: u8 = 1;
const SHIELDED: u8 = 2;

/// Why the wizard stops using its terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    /// SIGHUP arrived; the terminal may still be there.
    Signal,
    /// The terminal hung up or cannot be read or written any more.
    Terminal,
}

extern "C" fn on_sighup(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// Open what `let_go` needs, before anything can go wrong, and listen for
/// SIGHUP.
pub fn prepare() -> std::io::Result<()> {
    let mut fds = [-1; 2];
    // SAFETY: pipe2 writes two fds into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // The write end stays open (never written), so a read says EAGAIN, not EOF.
    SPARE_IN.store(fds[0], Ordering::SeqCst);
    let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
    NULL_OUT.store(std::os::fd::IntoRawFd::into_raw_fd(null), Ordering::SeqCst);
    listen();
    Ok(())
}

fn set_disposition(handler: libc::sighandler_t) {
    // SAFETY: a zeroed sigaction with an empty mask and a handler that only
    // stores to an atomic (or SIG_IGN) is valid; SA_RESTART keeps other
    // threads' system calls from failing with EINTR.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGHUP, &sa, std::ptr::null_mut());
    }
}

/// No change under way: SIGHUP sets the flag.
pub fn listen() {
    if DISPOSITION.swap(LISTENING, Ordering::SeqCst) != LISTENING {
        set_disposition(on_sighup as extern "C" fn(libc::c_int) as libc::sighandler_t);
    }
}

/// A change is starting: the commands it runs must survive a hangup.
pub fn shield() {
    if DISPOSITION.swap(SHIELDED, Ordering::SeqCst) != SHIELDED {
        set_disposition(libc::SIG_IGN);
    }
}

/// The input thread could not read the terminal.
pub fn mark_unreadable() {
    UNREADABLE.store(true, Ordering::SeqCst);
}

/// Has the terminal on `fd` hung up (or is `fd` no terminal at all)?
/// Asks without reading, so no input is taken from the input thread.
pub fn hung_up(fd: RawFd) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    };
    // SAFETY: one pollfd we own, no timeout.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
}

/// Is the terminal on `fd` gone, or did SIGHUP arrive?
pub fn check(fd: RawFd) -> Option<Gone> {
    if UNREADABLE.load(Ordering::SeqCst) || hung_up(fd) {
        return Some(Gone::Terminal);
    }
    SIGNALLED.load(Ordering::SeqCst).then_some(Gone::Signal)
}

/// Stop using the dead terminal: stdin becomes an empty non-blocking pipe,
/// stdout and stderr /dev/null. Nothing is closed that someone still reads.
pub fn let_go() {
    let (spare, null) = (
        SPARE_IN.load(Ordering::SeqCst),
        NULL_OUT.load(Ordering::SeqCst),
    );
    // SAFETY: dup2 onto the standard fds with fds opened by `prepare`; a
    // failed dup2 leaves the old fd, which only means writes fail with EIO.
    unsafe {
        if spare >= 0 {
            libc::dup2(spare, libc::STDIN_FILENO);
        }
        if null >= 0 {
            libc::dup2(null, libc::STDOUT_FILENO);
            libc::dup2(null, libc::STDERR_FILENO);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pseudo-terminal pair: (master, slave).
    fn pty() -> (RawFd, RawFd) {
        // SAFETY: the standard openpt sequence on fds we own; ptsname's
        // buffer is copied before the next call.
        unsafe {
            let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
            assert!(m >= 0);
            assert_eq!(libc::grantpt(m), 0);
            assert_eq!(libc::unlockpt(m), 0);
            let name = std::ffi::CStr::from_ptr(libc::ptsname(m)).to_owned();
            let s = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
            assert!(s >= 0);
            (m, s)
        }
    }

    #[test]
    fn a_closed_pty_master_reads_as_hung_up() {
        let (m, s) = pty();
        assert!(!hung_up(s), "a live terminal");
        // SAFETY: closing the master we opened.
        unsafe { libc::close(m) };
        assert!(hung_up(s), "the other side is gone");
        // SAFETY: closing the slave we opened.
        unsafe { libc::close(s) };
    }
}
