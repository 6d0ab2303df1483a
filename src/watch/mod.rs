//! `dscproute watch`: a live per-DSCP view of an interface's traffic.
//!
//! - `parse`: pure header parsing (Ethernet/VLAN or raw IP → DS byte,
//!   addresses, IP length);
//! - `stats`: pure counting per DSCP, top pairs, rates, the summary and its
//!   text form;
//! - `capture`: the AF_PACKET ring (the only `unsafe` here);
//! - `Watch` below ties them together; `doctor` and the TUI reuse it.

pub mod capture;
pub mod parse;
pub mod stats;

pub use capture::{Capture, CaptureError, Packet, ifindex};
pub use parse::{Family, Header, LinkKind, parse_frame};
pub use stats::{Counts, History, Pair, Summary, Tally, render, summarize, tcpdump_command};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// ARPHRD_LOOPBACK: `lo` shows each packet twice (out and in); keep one.
const ARPHRD_LOOPBACK: u16 = 772;

/// Counts one interface's packets as they come.
pub struct Watch {
    interface: String,
    /// Its index when the watch began: a re-created interface gets a new one.
    index: u32,
    /// When the interface was last seen to exist.
    checked: Instant,
    capture: Capture,
    pub tally: Tally,
    history: History,
    started: Instant,
    /// Packets stamped after this (realtime, ns) are not counted: the end of
    /// the window, set by `finish`.
    cutoff_ns: Option<u128>,
}

fn realtime_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// Tally one packet (a free function so the capture can lend packets to it
/// while the Watch's other fields are borrowed).
pub fn count_packet(tally: &mut Tally, p: &Packet) {
    if p.hatype == ARPHRD_LOOPBACK && p.pkttype == capture::PACKET_OUTGOING {
        return;
    }
    match parse_frame(
        LinkKind::from_hatype(p.hatype),
        p.protocol,
        p.data,
        p.wire_len,
    ) {
        Some(h) => tally.add(&h),
        None => tally.add_non_ip(p.wire_len),
    }
}

/// Does `name` still exist with the index it had?
fn still_there(name: &str, index: u32) -> bool {
    ifindex(name).is_ok_and(|i| i == index)
}

impl Watch {
    /// Start capturing on `interface`; pairs are kept for `dscp` (all when `None`).
    pub fn open(interface: &str, dscp: Option<u8>) -> Result<Watch, CaptureError> {
        let index = ifindex(interface)?;
        let capture = Capture::open(Some(index))?;
        let now = Instant::now();
        let tally = Tally::new(dscp);
        let mut history = History::default();
        history.record(now, &tally);
        Ok(Watch {
            interface: interface.to_string(),
            index,
            checked: now,
            capture,
            tally,
            history,
            started: now,
            cutoff_ns: None,
        })
    }

    /// Wait up to `timeout` for packets and count them. Fails with
    /// `InterfaceGone` once the interface is deleted or re-created (a
    /// socket bound to the old one would wait forever).
    pub fn poll(&mut self, timeout: Duration) -> Result<usize, CaptureError> {
        let tally = &mut self.tally;
        let cutoff = self.cutoff_ns;
        let n = self.capture.poll(timeout, &mut |p| {
            let stamp = u128::from(p.sec) * 1_000_000_000 + u128::from(p.nsec);
            if cutoff.is_none_or(|c| stamp <= c) {
                count_packet(tally, p);
            }
        })?;
        // The socket tells when the link goes away; check once a second
        // besides, in case a notice was missed.
        if self.capture.take_link_event() || self.checked.elapsed() >= Duration::from_secs(1) {
            self.checked = Instant::now();
            if !still_there(&self.interface, self.index) {
                return Err(CaptureError::InterfaceGone(self.interface.clone()));
            }
        }
        Ok(n)
    }

    /// Record the totals for the rates (call about once a second).
    pub fn tick(&mut self) {
        self.history.record(Instant::now(), &self.tally);
    }

    /// End the window now: packets the kernel still holds in a block that
    /// is not handed over yet are collected (up to a few block timeouts),
    /// later ones are not counted.
    pub fn finish(&mut self) -> Result<(), CaptureError> {
        self.cutoff_ns = Some(realtime_ns());
        let wait = Duration::from_millis(u64::from(capture::BLOCK_TIMEOUT_MS) * 3);
        let until = Instant::now() + wait;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if left.is_zero() {
                break;
            }
            self.poll(left)?;
        }
        Ok(())
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn summary(&mut self) -> Summary {
        let drops = self.capture.kernel_drops();
        summarize(&stats::SummaryInput {
            interface: &self.interface,
            tally: &self.tally,
            history: &self.history,
            elapsed: self.elapsed(),
            now: Instant::now(),
            kernel_drops: drops,
        })
    }
}

/// A watch running on its own thread, sending a summary every second: the
/// form a TUI panel wants. Stops when dropped.
pub struct LiveWatch {
    pub summaries: mpsc::Receiver<Summary>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LiveWatch {
    pub fn start(interface: &str, dscp: Option<u8>) -> Result<LiveWatch, CaptureError> {
        let mut w = Watch::open(interface, dscp)?;
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut next = Instant::now() + Duration::from_secs(1);
            while !stop2.load(Ordering::Relaxed) {
                let wait = next
                    .saturating_duration_since(Instant::now())
                    .min(Duration::from_millis(200));
                if w.poll(wait).is_err() {
                    break;
                }
                if Instant::now() >= next {
                    w.tick();
                    next += Duration::from_secs(1);
                    if tx.send(w.summary()).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(LiveWatch {
            summaries: rx,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for LiveWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
