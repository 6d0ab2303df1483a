//! `dscproute agent`: keep a setup converged. The kernel tells us when
//! something we depend on changes (rtnetlink events for links, addresses,
//! routes and policy rules); a `Watch` keeps the events that concern our
//! interfaces, table and rules; the `Supervisor` coalesces a burst of them,
//! asks a `Converge` what is missing and has it repair only that, and checks
//! periodically for what the kernel does not announce (netfilter drift).
//!
//! Seams, so that the loop is tested without a kernel or a clock:
//! - `EventSource`: `NetlinkEvents` on a real socket, a scripted fake in tests;
//! - `Converge`: the use-case layer (probe, plan, run the missing steps);
//! - `Clock`: `SystemClock`, or a fake one the fake source moves forward.

mod clock;
mod converge;
mod event;
mod health;
mod host;
pub mod netlink;
mod supervisor;
mod watch;

pub use clock::{Clock, SystemClock};
pub use converge::{Check, ClassChoice, Converge, ConvergeError, WaitReason};
pub use event::{Addr, Event, EventSource, Family, Route, Rule};
pub use health::{Change, Health, PingProber, Probe, Prober};
pub use host::HostConverge;
pub use netlink::NetlinkEvents;
pub use supervisor::{Exit, Report, Stats, Supervisor, Timing, Trigger};
pub use watch::{Watch, WatchSet};
