//! The agent's netlink event source against a real kernel, in a scratch
//! namespace: each change that can break a setup (link down, up, deleted
//! and re-created under the same name; an address added; a route deleted
//! from table 100; a policy rule deleted; both families) arrives as its
//! typed event within 1 s and the watch keeps it, while a route deleted
//! from another table reaches the watch and is dropped. Lab tests need root
//! and skip visibly otherwise (tests/common).

mod common;

use common::Netns;
use dscproute::agent::{Event, EventSource, Family, NetlinkEvents, Watch, WatchSet, netlink};
use std::time::{Duration, Instant};

const WITHIN: Duration = Duration::from_secs(1);

struct Probe<'a> {
    ns: &'a Netns,
    source: NetlinkEvents,
    watch: Watch,
}

impl Probe<'_> {
    /// Runs `argv` in the namespace, then reads events (every one through
    /// the watch, so it learns indices as the agent would) until one
    /// satisfies `want`, within 1 s of starting the command. Returns it with
    /// the watch's verdict.
    fn step(&mut self, argv: &[&str], want: impl Fn(&Event) -> bool) -> (Event, Option<String>) {
        let start = Instant::now();
        self.ns.exec_ok(argv);
        let deadline = start + WITHIN;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "`{}`: no such event within {WITHIN:?}; saw {seen:#?}",
                argv.join(" ")
            );
            let Some(event) = self.source.next(left).expect("netlink socket") else {
                continue;
            };
            let why = self.watch.relevant(&event);
            if want(&event) {
                eprintln!(
                    "{:>4} ms  {}  ->  {event}  ({})",
                    start.elapsed().as_millis(),
                    argv.join(" "),
                    why.as_deref().unwrap_or("dropped")
                );
                return (event, why);
            }
            seen.push(event);
        }
    }

    /// As `step`, and the watch must keep the event.
    fn kept(&mut self, argv: &[&str], want: impl Fn(&Event) -> bool) -> (Event, String) {
        let (event, why) = self.step(argv, want);
        let why = why.unwrap_or_else(|| panic!("the watch dropped {event:?}"));
        (event, why)
    }
}

fn is_link(event: &Event, up: bool) -> bool {
    match event {
        Event::LinkUp { name, .. } => up && name == "vpn0",
        Event::LinkDown { name, .. } => !up && name == "vpn0",
        _ => false,
    }
}

fn route_del(event: &Event, family: Family, table: u32) -> bool {
    matches!(event, Event::RouteDel(r) if r.family == family && r.table == table && r.dst_len == 0)
}

fn rule_del(event: &Event, family: Family) -> bool {
    matches!(event, Event::RuleDel(r)
        if r.family == family && r.priority == Some(10000) && r.proto == 213 && r.table == 100)
}

fn addr_new(event: &Event, addr: &str, index: u32) -> bool {
    matches!(event, Event::AddrNew(a) if a.addr.to_string() == addr && a.index == index)
}

/// A link named `dev` that gets carrier when set up: one end of a veth
/// pair whose other end is up (the lab kernel may lack the dummy driver).
fn add_link(ns: &Netns, dev: &str) {
    let peer = format!("{dev}p");
    ns.exec_ok(&[
        "ip", "link", "add", dev, "type", "veth", "peer", "name", &peer,
    ]);
    ns.exec_ok(&["ip", "link", "set", &peer, "up"]);
}

/// Our table's default routes and rules, as an applied gateway has them.
fn add_ours(ns: &Netns) {
    ns.exec_ok(&[
        "ip", "route", "replace", "default", "via", "10.8.0.1", "dev", "vpn0", "table", "100",
        "proto", "213",
    ]);
    ns.exec_ok(&[
        "ip", "-6", "route", "replace", "default", "via", "fd08::1", "dev", "vpn0", "table", "100",
        "proto", "213",
    ]);
}

#[test]
fn the_kernel_reports_each_change_that_breaks_a_setup_within_a_second() {
    let Some(lab) = common::lab("agent_events", &[]) else {
        return;
    };
    let ns = lab.netns();
    ns.exec_ok(&["sysctl", "-q", "-w", "net.ipv6.conf.default.accept_dad=0"]);
    add_link(&ns, "vpn0");
    add_link(&ns, "other0");
    ns.addr("vpn0", "10.8.0.2/24");
    ns.addr("vpn0", "fd08::2/64");
    ns.addr("other0", "192.0.2.2/24");
    add_ours(&ns);
    ns.exec_ok(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "192.0.2.1",
        "table",
        "200",
    ]);
    for family in ["-4", "-6"] {
        ns.exec_ok(&[
            "ip", family, "rule", "add", "pref", "10000", "fwmark", "0x1/0xff", "lookup", "100",
            "proto", "213",
        ]);
    }

    let (source, watch) = ns.run(|| {
        let source = NetlinkEvents::open().expect("netlink socket");
        let mut watch = Watch::new(WatchSet::new(vec!["vpn0".into()], 100, vec![10000]));
        netlink::learn_indices(&mut watch);
        (source, watch)
    });
    let index = watch.index_of("vpn0").expect("vpn0 exists");
    let mut p = Probe {
        ns: &ns,
        source,
        watch,
    };

    let (_, why) = p.kept(&["ip", "link", "set", "vpn0", "down"], |e| {
        is_link(e, false)
    });
    assert_eq!(why, "link vpn0 down");
    let (_, why) = p.kept(&["ip", "link", "set", "vpn0", "up"], |e| is_link(e, true));
    assert_eq!(why, "link vpn0 up");

    let (_, why) = p.kept(&["ip", "addr", "add", "10.8.0.3/24", "dev", "vpn0"], |e| {
        addr_new(e, "10.8.0.3", index)
    });
    assert_eq!(why, "address 10.8.0.3/24 added on vpn0");
    p.kept(
        &["ip", "addr", "add", "fd08::3/64", "dev", "vpn0", "nodad"],
        |e| addr_new(e, "fd08::3", index),
    );

    // The link down took our routes; the repair would put them back.
    add_ours(&ns);
    let (_, why) = p.kept(&["ip", "route", "del", "default", "table", "100"], |e| {
        route_del(e, Family::V4, 100)
    });
    assert_eq!(why, "route IPv4 default table 100 deleted");
    p.kept(
        &["ip", "-6", "route", "del", "default", "table", "100"],
        |e| route_del(e, Family::V6, 100),
    );
    let (_, why) = p.step(&["ip", "route", "del", "default", "table", "200"], |e| {
        route_del(e, Family::V4, 200)
    });
    assert_eq!(why, None, "another table, another interface");

    let (_, why) = p.kept(&["ip", "-4", "rule", "del", "pref", "10000"], |e| {
        rule_del(e, Family::V4)
    });
    assert_eq!(why, "IPv4 rule pref 10000 lookup 100 proto 213 deleted");
    p.kept(&["ip", "-6", "rule", "del", "pref", "10000"], |e| {
        rule_del(e, Family::V6)
    });

    // A VPN client re-creates its interface: same name, new index.
    let (_, why) = p.kept(
        &["ip", "link", "del", "vpn0"],
        |e| matches!(e, Event::LinkDel { name, .. } if name == "vpn0"),
    );
    assert_eq!(why, "link vpn0 deleted");
    p.kept(
        &[
            "ip", "link", "add", "vpn0", "type", "veth", "peer", "name", "vpn0p",
        ],
        |e| is_link(e, false),
    );
    ns.exec_ok(&["ip", "link", "set", "vpn0p", "up"]);
    let (event, why) = p.kept(&["ip", "link", "set", "vpn0", "up"], |e| is_link(e, true));
    let Event::LinkUp { index: new, .. } = event else {
        unreachable!()
    };
    assert_ne!(new, index, "a new link gets a new index");
    assert_eq!(why, "link vpn0 up");
    assert_eq!(p.watch.index_of("vpn0"), Some(new));
    let (_, why) = p.kept(&["ip", "addr", "add", "10.8.0.2/24", "dev", "vpn0"], |e| {
        addr_new(e, "10.8.0.2", new)
    });
    assert_eq!(why, "address 10.8.0.2/24 added on vpn0");
}
