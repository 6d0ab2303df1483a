//! The agent's stop-signal race is closed: with stop signals held
//! (`hold_stop_signals`), a signal that arrives after the loop looked at its
//! flag and before it waits stays pending, and the event source's wait lets
//! it in at once: `next` returns at once instead of sleeping through its
//! timeout (which a plain `poll` would do, the signal having been handled
//! before it). Own test binary: it installs a signal handler.

use dscproute::agent::{EventSource, NetlinkEvents};
use dscproute::runner::signals;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static GOT: AtomicBool = AtomicBool::new(false);

extern "C" fn note(_: libc::c_int) {
    GOT.store(true, Ordering::SeqCst);
}

#[test]
fn a_stop_signal_before_the_wait_interrupts_the_wait() {
    let mut source = NetlinkEvents::open().expect("rtnetlink socket");
    // SAFETY: a handler that only stores to an atomic; a signal to this thread.
    unsafe {
        libc::signal(
            libc::SIGQUIT,
            note as extern "C" fn(libc::c_int) as libc::sighandler_t,
        );
    }
    signals::hold_stop_signals();
    // The race: the flag was looked at (false), then the signal comes.
    assert!(!GOT.load(Ordering::SeqCst));
    // SAFETY: this thread, a signal with a handler installed above.
    unsafe { libc::pthread_kill(libc::pthread_self(), libc::SIGQUIT) };
    assert!(!GOT.load(Ordering::SeqCst), "held: not handled yet");
    let start = Instant::now();
    let _ = source.next(Duration::from_secs(10)).expect("next");
    let took = start.elapsed();
    assert!(GOT.load(Ordering::SeqCst), "the wait let the signal in");
    assert!(took < Duration::from_secs(1), "the wait slept {took:?}");
}
