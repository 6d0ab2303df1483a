//! The kernel's event source: an rtnetlink socket subscribed to the link,
//! address, route and rule groups of both families. Blocking (ppoll with a
//! timeout), no async runtime: the agent idles in one `ppoll` call.

use super::event::{Addr, Event, EventSource, Family, Route, Rule};
use super::watch::Watch;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::rule::{RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};
use std::collections::VecDeque;
use std::ffi::CString;
use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// The multicast groups we follow.
const GROUPS: [libc::c_uint; 7] = [
    libc::RTNLGRP_LINK,
    libc::RTNLGRP_IPV4_IFADDR,
    libc::RTNLGRP_IPV6_IFADDR,
    libc::RTNLGRP_IPV4_ROUTE,
    libc::RTNLGRP_IPV6_ROUTE,
    libc::RTNLGRP_IPV4_RULE,
    libc::RTNLGRP_IPV6_RULE,
];

/// Asked for, capped by net.core.rmem_max: a link flap on a router with
/// many routes sends a burst; an overflow is reported as `Event::Lost`.
const RECV_BUFFER: usize = 1 << 20;

/// One datagram; rtnetlink notifications are a few hundred bytes each.
const DATAGRAM: usize = 64 * 1024;

pub struct NetlinkEvents {
    socket: Socket,
    buf: Vec<u8>,
    queue: VecDeque<Event>,
}

impl NetlinkEvents {
    /// Subscribes in the network namespace of the calling thread.
    pub fn open() -> io::Result<NetlinkEvents> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        for group in GROUPS {
            socket.add_membership(group)?;
        }
        // Best effort: the default buffer works, only bursts may overflow.
        let _ = socket.set_rx_buf_sz(RECV_BUFFER);
        socket.set_non_blocking(true)?;
        Ok(NetlinkEvents {
            socket,
            buf: vec![0; DATAGRAM],
            queue: VecDeque::new(),
        })
    }

    /// Reads one datagram into the queue.
    fn read(&mut self) -> io::Result<()> {
        let mut space: &mut [u8] = &mut self.buf;
        // MSG_TRUNC: the real length, so a cut datagram is seen as one.
        match self.socket.recv(&mut space, libc::MSG_TRUNC) {
            Ok(n) if n > self.buf.len() => self.queue.push_back(Event::Lost),
            Ok(n) => decode_datagram(&self.buf[..n], &mut self.queue),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => self.queue.push_back(Event::Lost),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
        Ok(())
    }
}

impl EventSource for NetlinkEvents {
    fn next(&mut self, timeout: Duration) -> io::Result<Option<Event>> {
        if let Some(event) = self.queue.pop_front() {
            return Ok(Some(event));
        }
        let mut fd = libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // Rounded up to the ms: a timeout cut to 0 would spin until the deadline.
        let ms = timeout.as_nanos().div_ceil(1_000_000);
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(ms / 1000).unwrap_or(libc::time_t::MAX),
            tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
        };
        // Stop signals the caller holds (`signals::hold_stop_signals`) are
        // let in during the wait only, atomically: one that came after the
        // caller looked at its stop flag interrupts this wait.
        let mask = crate::runner::signals::unheld_mask();
        // SAFETY: one valid pollfd, a timespec and a sigset, for the call.
        let rc = unsafe { libc::ppoll(&mut fd, 1, &ts, &mask) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            // A signal (SIGTERM): the caller looks at its stop flag.
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            };
        }
        if rc > 0 {
            self.read()?;
        }
        Ok(self.queue.pop_front())
    }
}

/// Tells `watch` the current index of each watched interface that exists,
/// in the calling thread's namespace. Call it after `open`, so that a link
/// re-created in between is seen as an event.
pub fn learn_indices(watch: &mut Watch) {
    let names = watch.set().interfaces.clone();
    for name in names {
        let Ok(c) = CString::new(name.as_str()) else {
            continue;
        };
        // SAFETY: a valid NUL-terminated string; 0 means "no such link".
        let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if index != 0 {
            watch.learn(&name, index);
        }
    }
}

/// Every message of one datagram, in order. Anything unreadable becomes
/// `Event::Lost`: better one check too many than a missed change.
pub fn decode_datagram(mut bytes: &[u8], out: &mut VecDeque<Event>) {
    while !bytes.is_empty() {
        let msg = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
            Ok(m) => m,
            Err(_) => {
                out.push_back(Event::Lost);
                return;
            }
        };
        let len = (msg.header.length as usize).next_multiple_of(4);
        match msg.payload {
            NetlinkPayload::InnerMessage(m) => out.extend(decode(m)),
            NetlinkPayload::Overrun(_) => out.push_back(Event::Lost),
            _ => {}
        }
        if len == 0 || len >= bytes.len() {
            return;
        }
        bytes = &bytes[len..];
    }
}

/// The event a message stands for, if it is one we follow.
pub fn decode(msg: RouteNetlinkMessage) -> Option<Event> {
    use RouteNetlinkMessage as M;
    Some(match msg {
        M::NewLink(l) => {
            let (index, name) = link(&l);
            let carrier = LinkFlags::Up | LinkFlags::LowerUp;
            if l.header.flags.contains(carrier) {
                Event::LinkUp { index, name }
            } else {
                Event::LinkDown { index, name }
            }
        }
        M::DelLink(l) => {
            let (index, name) = link(&l);
            Event::LinkDel { index, name }
        }
        M::NewAddress(a) => Event::AddrNew(addr(&a)?),
        M::DelAddress(a) => Event::AddrDel(addr(&a)?),
        M::NewRoute(r) => Event::RouteNew(route(&r)?),
        M::DelRoute(r) => Event::RouteDel(route(&r)?),
        M::NewRule(r) => Event::RuleNew(rule(&r)?),
        M::DelRule(r) => Event::RuleDel(rule(&r)?),
        _ => return None,
    })
}

fn link(l: &LinkMessage) -> (u32, String) {
    let name = l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    });
    (l.header.index, name.unwrap_or_default())
}

fn family(f: AddressFamily) -> Option<Family> {
    match f {
        AddressFamily::Inet => Some(Family::V4),
        AddressFamily::Inet6 => Some(Family::V6),
        _ => None,
    }
}

fn addr(a: &AddressMessage) -> Option<Addr> {
    // IFA_LOCAL is the interface's own address (IFA_ADDRESS is the peer on
    // a point-to-point link); IPv6 sends only IFA_ADDRESS.
    let find = |local: bool| {
        a.attributes.iter().find_map(|attr| match attr {
            AddressAttribute::Local(ip) if local => Some(*ip),
            AddressAttribute::Address(ip) if !local => Some(*ip),
            _ => None,
        })
    };
    Some(Addr {
        index: a.header.index,
        addr: find(true).or_else(|| find(false))?,
        prefix_len: a.header.prefix_len,
    })
}

fn route(r: &RouteMessage) -> Option<Route> {
    let mut out = Route {
        family: family(r.header.address_family)?,
        // Tables above 255 are only in the attribute.
        table: u32::from(r.header.table),
        dst: None,
        dst_len: r.header.destination_prefix_length,
        oif: None,
        proto: r.header.protocol.into(),
    };
    for attr in &r.attributes {
        match attr {
            RouteAttribute::Table(t) => out.table = *t,
            RouteAttribute::Oif(i) => out.oif = Some(*i),
            RouteAttribute::Destination(RouteAddress::Inet(a)) => out.dst = Some(IpAddr::V4(*a)),
            RouteAttribute::Destination(RouteAddress::Inet6(a)) => out.dst = Some(IpAddr::V6(*a)),
            _ => {}
        }
    }
    Some(out)
}

fn rule(r: &RuleMessage) -> Option<Rule> {
    let mut out = Rule {
        family: family(r.header.family)?,
        priority: None,
        table: u32::from(r.header.table),
        proto: 0,
    };
    for attr in &r.attributes {
        match attr {
            RuleAttribute::Priority(p) => out.priority = Some(*p),
            RuleAttribute::Table(t) => out.table = *t,
            RuleAttribute::Protocol(p) => out.proto = (*p).into(),
            _ => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::NetlinkHeader;
    use netlink_packet_route::route::RouteProtocol;

    fn bytes(msg: RouteNetlinkMessage) -> Vec<u8> {
        let mut m = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        m.finalize();
        let mut buf = vec![0; m.buffer_len()];
        m.serialize(&mut buf);
        buf
    }

    #[test]
    fn a_datagram_of_several_messages_decodes_in_order() {
        let mut l = LinkMessage::default();
        l.header.index = 7;
        l.header.flags = LinkFlags::Up; // no carrier: down for routing
        l.attributes.push(LinkAttribute::IfName("wg0".into()));

        let mut r = RuleMessage::default();
        r.header.family = AddressFamily::Inet6;
        r.attributes.push(RuleAttribute::Priority(10000));
        r.attributes.push(RuleAttribute::Table(1000));
        r.attributes
            .push(RuleAttribute::Protocol(RouteProtocol::Other(213)));

        let mut rt = RouteMessage::default();
        rt.header.address_family = AddressFamily::Inet;
        rt.header.table = 100;
        rt.header.protocol = RouteProtocol::Other(213);
        rt.attributes.push(RouteAttribute::Oif(7));

        let mut datagram = bytes(RouteNetlinkMessage::NewLink(l));
        datagram.extend(bytes(RouteNetlinkMessage::DelRule(r)));
        datagram.extend(bytes(RouteNetlinkMessage::DelRoute(rt)));
        let mut out = VecDeque::new();
        decode_datagram(&datagram, &mut out);
        assert_eq!(
            Vec::from(out),
            [
                Event::LinkDown {
                    index: 7,
                    name: "wg0".into()
                },
                Event::RuleDel(Rule {
                    family: Family::V6,
                    priority: Some(10000),
                    table: 1000,
                    proto: 213
                }),
                Event::RouteDel(Route {
                    family: Family::V4,
                    table: 100,
                    dst: None,
                    dst_len: 0,
                    oif: Some(7),
                    proto: 213
                }),
            ]
        );
    }

    #[test]
    fn the_local_address_wins_over_the_peer() {
        let mut a = AddressMessage::default();
        a.header.index = 3;
        a.header.prefix_len = 32;
        a.attributes
            .push(AddressAttribute::Address("10.8.0.1".parse().unwrap()));
        a.attributes
            .push(AddressAttribute::Local("10.8.0.2".parse().unwrap()));
        let mut out = VecDeque::new();
        decode_datagram(&bytes(RouteNetlinkMessage::NewAddress(a)), &mut out);
        assert_eq!(
            Vec::from(out),
            [Event::AddrNew(Addr {
                index: 3,
                addr: "10.8.0.2".parse().unwrap(),
                prefix_len: 32
            })]
        );
    }

    /// A stop signal must end the idle wait (so SIGTERM is seen at once),
    /// even with SA_RESTART, which `signal(3)` sets as `runner::signals`
    /// installs its handler: poll(2) is never restarted.
    #[test]
    fn a_signal_ends_the_wait() {
        extern "C" fn ignore(_: libc::c_int) {}
        let handler = ignore as extern "C" fn(libc::c_int);
        // SAFETY: the handler does nothing; no one else uses SIGUSR1.
        unsafe { libc::signal(libc::SIGUSR1, handler as libc::sighandler_t) };
        let mut source = NetlinkEvents::open().expect("netlink socket (no root needed)");
        // SAFETY: no preconditions.
        let waiter = unsafe { libc::pthread_self() };
        let done = std::sync::atomic::AtomicBool::new(false);
        let start = std::time::Instant::now();
        std::thread::scope(|s| {
            // Signal until the wait ends: one sent before poll starts is
            // handled and lost, the next one interrupts it.
            s.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    // SAFETY: `waiter` is alive: it joins this scope.
                    unsafe { libc::pthread_kill(waiter, libc::SIGUSR1) };
                    std::thread::sleep(Duration::from_millis(10));
                }
            });
            // Host events may arrive too; the wait ends with `None`.
            while source
                .next(Duration::from_secs(60))
                .expect("poll")
                .is_some()
            {}
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the signal did not end the wait: {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn unreadable_bytes_are_a_lost_event() {
        let mut out = VecDeque::new();
        decode_datagram(&[0xff; 7], &mut out);
        assert_eq!(Vec::from(out), [Event::Lost]);
    }
}
