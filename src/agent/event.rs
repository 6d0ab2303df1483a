//! What the kernel says changed, as typed values, and the source that
//! delivers them.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

/// One rtnetlink notification, reduced to what the agent decides on.
/// Links carry their name (the kernel sends it with every link message);
/// addresses and routes only an interface index, which `Watch` maps back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A link exists and is up with carrier (sent on creation and on every
    /// change, so it is a state, not a transition).
    LinkUp {
        index: u32,
        name: String,
    },
    /// A link exists but is down or has no carrier.
    LinkDown {
        index: u32,
        name: String,
    },
    /// A link was deleted.
    LinkDel {
        index: u32,
        name: String,
    },
    AddrNew(Addr),
    AddrDel(Addr),
    RouteNew(Route),
    RouteDel(Route),
    RuleNew(Rule),
    RuleDel(Rule),
    /// The kernel dropped notifications (our socket buffer overflowed) or
    /// one could not be read: anything may have changed.
    Lost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addr {
    pub index: u32,
    pub addr: IpAddr,
    pub prefix_len: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub family: Family,
    pub table: u32,
    /// `None` with `dst_len` 0: the default route.
    pub dst: Option<IpAddr>,
    pub dst_len: u8,
    /// Output interface index.
    pub oif: Option<u32>,
    /// iproute2 `proto` number.
    pub proto: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub family: Family,
    pub priority: Option<u32>,
    pub table: u32,
    /// iproute2 `proto` number (0 when the kernel predates FRA_PROTOCOL).
    pub proto: u8,
}

/// Where events come from. `next` blocks at most `timeout` and returns
/// `Ok(None)` when it passed, or earlier when a signal interrupted the wait
/// (so the caller can look at its stop flag). `Err` means the source is
/// broken for good.
pub trait EventSource {
    fn next(&mut self, timeout: Duration) -> io::Result<Option<Event>>;
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.dst {
            Some(dst) if self.dst_len > 0 => write!(f, "{}/{}", dst, self.dst_len)?,
            _ => write!(f, "{} default", self.family)?,
        }
        write!(f, " table {}", self.table)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.priority {
            Some(p) => write!(f, "{} rule pref {p}", self.family)?,
            None => write!(f, "{} rule", self.family)?,
        }
        write!(f, " lookup {} proto {}", self.table, self.proto)
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Event::LinkUp { name, index } => write!(f, "link {name} (index {index}) up"),
            Event::LinkDown { name, index } => write!(f, "link {name} (index {index}) down"),
            Event::LinkDel { name, index } => write!(f, "link {name} (index {index}) deleted"),
            Event::AddrNew(a) => write!(f, "address {}/{} added", a.addr, a.prefix_len),
            Event::AddrDel(a) => write!(f, "address {}/{} deleted", a.addr, a.prefix_len),
            Event::RouteNew(r) => write!(f, "route {r} added"),
            Event::RouteDel(r) => write!(f, "route {r} deleted"),
            Event::RuleNew(r) => write!(f, "{r} added"),
            Event::RuleDel(r) => write!(f, "{r} deleted"),
            Event::Lost => f.write_str("kernel notifications lost"),
        }
    }
}
