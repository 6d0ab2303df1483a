//! A signal that lands between the stop-flag test and the source's poll
//! does not interrupt that poll: capping every wait bounds how long such a
//! signal goes unnoticed, at the price of one wake-up per `cap` when idle.

use super::event::{Event, EventSource};
use std::io;
use std::time::Duration;

pub struct Capped<S> {
    pub source: S,
    pub cap: Duration,
}

impl<S: EventSource> EventSource for Capped<S> {
    fn next(&mut self, timeout: Duration) -> io::Result<Option<Event>> {
        self.source.next(timeout.min(self.cap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Asked(Vec<Duration>);

    impl EventSource for Asked {
        fn next(&mut self, timeout: Duration) -> io::Result<Option<Event>> {
            self.0.push(timeout);
            Ok(None)
        }
    }

    #[test]
    fn waits_are_capped_and_short_ones_kept() {
        let mut c = Capped {
            source: Asked(vec![]),
            cap: Duration::from_secs(1),
        };
        c.next(Duration::from_secs(5)).unwrap();
        c.next(Duration::from_millis(100)).unwrap();
        assert_eq!(
            c.source.0,
            [Duration::from_secs(1), Duration::from_millis(100)]
        );
    }
}
