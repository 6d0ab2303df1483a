//! Time as a seam: the supervisor never sleeps, it only asks the time and
//! blocks in its event source, so tests drive it with a fake clock.

use std::time::Instant;

pub trait Clock {
    fn now(&self) -> Instant;
}

/// The monotonic clock (immune to wall-clock jumps, e.g. NTP at boot).
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}
