//! Idle cost of the agent's loop on the real event source: the supervisor
//! blocks on an rtnetlink socket for SECONDS (default 10) with a `Converge`
//! that finds everything whole, then prints the CPU time it used, its peak
//! and current RSS and how often it woke up. Read-only: it only listens.
//!
//!     cargo build --release --example agent_idle
//!     target/release/examples/agent_idle 10

use dscproute::agent::{
    Check, Converge, ConvergeError, Event, EventSource, NetlinkEvents, Supervisor, SystemClock,
    Timing, Watch, WatchSet, netlink,
};
use std::time::{Duration, Instant};

struct AlwaysWhole;

impl Converge for AlwaysWhole {
    fn check(&mut self) -> Result<Check, ConvergeError> {
        Ok(Check::Whole)
    }
    fn repair(&mut self, _: &[String]) -> Result<Vec<String>, ConvergeError> {
        Ok(Vec::new())
    }
}

/// Counts wake-ups: a busy loop would show thousands.
struct Counting<S> {
    inner: S,
    wakeups: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<S: EventSource> EventSource for Counting<S> {
    fn next(&mut self, timeout: Duration) -> std::io::Result<Option<Event>> {
        self.wakeups.set(self.wakeups.get() + 1);
        self.inner.next(timeout)
    }
}

fn status_kb(field: &str) -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l.trim_start_matches(field).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

/// User + system CPU time of this process.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis((f[11] + f[12]) * 1000 / tick)
}

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let source = NetlinkEvents::open().expect("netlink socket");
    let mut watch = Watch::new(WatchSet::new(vec!["wg0".into()], 100, vec![10000]));
    netlink::learn_indices(&mut watch);
    let wakeups = std::rc::Rc::new(std::cell::Cell::new(0));
    let source = Counting {
        inner: source,
        wakeups: wakeups.clone(),
    };
    let mut sup = Supervisor::new(source, AlwaysWhole, SystemClock, watch, Timing::default());
    let (cpu0, t0) = (cpu(), Instant::now());
    let end = t0 + Duration::from_secs(seconds);
    let exit = sup.run(|| Instant::now() >= end, |r| println!("{r}"));
    println!(
        "{exit:?} after {:.1} s: cpu {} ms, wake-ups {}, checks {}, VmHWM {}, VmRSS {}",
        t0.elapsed().as_secs_f64(),
        (cpu() - cpu0).as_millis(),
        wakeups.get(),
        sup.stats().checks,
        status_kb("VmHWM:"),
        status_kb("VmRSS:"),
    );
}
