//! `dscproute agent` failing classes over between uplinks, on real kernels.
//! Gateway B has two VPN uplinks (wg0 → `vpn`, wg1 → `vpn2`, both serving
//! the test address under their own names) and the direct one (up0 →
//! `isp`); tests/fixtures/lab/failover.toml routes DSCP 7 (torrent) through
//! wg0 then wg1, then blocked, and DSCP 11 (streaming) through wg1, wg0, then
//! up0; every VPN uplink is pinged through itself each second, 2 losses =
//! down, 2 answers = back. Proven by traffic, timed:
//! - each class reaches the target through its first uplink;
//! - wg0 link down: torrent moves to wg1 within 1 s (event + debounce +
//!   switch), streaming stays; wg0 back: torrent returns after the hold-down
//!   (2 answers), not at once;
//! - wg1's far end drops everything (its link stays up: only the ping can
//!   tell): streaming moves to wg0 within every × fails + 1 s; undone: back
//!   after the hold-down;
//! - wg0 and wg1 down: torrent is blocked, streaming goes direct (listed);
//! - over the whole run a capture on up0 (no uplink of torrent) sees not one
//!   packet of torrent's group, and sees streaming's when it went direct;
//! - status and the agent's lines say each switch (from → to, why, timing);
//! - SIGTERM, then one `rollback --yes` restores B as before the agent.
//!
//! The agent is killed on every exit path. Root only; skips visibly otherwise.

mod common;

use common::agent::Agent;
use common::topology::{
    FIREWALL_TOOLS, GID, GROUP_PORTS, HttpServer, OTHER_GID, OTHER_PORTS, TARGET4, Topology,
    apply_ok, assert_same_state, count, dscproute, dscproute_expect, fetch, fetch_short,
    from_ports, json, poll_until, profile, rollback_ok, snapshot, stdout,
};
use common::{Netns, veth};
use std::time::{Duration, Instant};

const PROFILE: &str = "failover.toml";
/// The checks' period and losses in a row (failover.toml).
const EVERY: Duration = Duration::from_secs(1);
const FAILS: u32 = 2;
/// Torrent's and streaming's tables (chosen free, in class order).
const TORRENT_TABLE: &str = "100";
const STREAMING_TABLE: &str = "101";

struct Lab2 {
    _server: HttpServer,
    t: Topology,
    vpn2: Netns,
}

fn lab(name: &str) -> Option<Lab2> {
    let tools: Vec<&str> = FIREWALL_TOOLS
        .iter()
        .chain(&["curl", "setpriv", "tcpdump", "ping", "conntrack"])
        .copied()
        .collect();
    let lab = common::lab(name, &tools)?;
    let t = Topology::build(&lab);
    let vpn2 = lab.netns();
    veth(&t.b, "wg1", &vpn2, "eth0");
    t.b.addr("wg1", "10.9.0.2/24");
    vpn2.addr("eth0", "10.9.0.1/24");
    vpn2.addr("lo", "198.51.100.1/32");
    let server = HttpServer::start(&vpn2, "vpn2");
    Some(Lab2 {
        _server: server,
        t,
        vpn2,
    })
}

/// The interface of our default route in `table`, "none" without one.
fn route_dev(t: &Topology, table: &str) -> String {
    let out = stdout(&t.b.exec(&["ip", "-4", "route", "show", "table", table]));
    out.lines()
        .find(|l| l.starts_with("default"))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "dev").nth(1))
        .unwrap_or("none")
        .to_string()
}

/// Polls (every 10 ms) until `table` routes by `dev`; how long it took.
fn time_until_route(t: &Topology, table: &str, dev: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    let ok = poll_until(limit, Duration::from_millis(10), || {
        route_dev(t, table) == dev
    });
    let took = start.elapsed();
    assert!(
        ok,
        "table {table} not through {dev} within {limit:?} (now {})",
        route_dev(t, table)
    );
    eprintln!("table {table} -> {dev} in {} ms", took.as_millis());
    took
}

fn set_link(ns: &Netns, dev: &str, up: bool) {
    ns.exec_ok(&["ip", "link", "set", dev, if up { "up" } else { "down" }]);
}

/// The routes of B's snapshot sorted: link flaps re-create the kernel's own
/// routes in another order, which is not ours to restore.
fn routes_sorted(snap: &str) -> String {
    let mut out = String::new();
    for section in snap.split("== ").filter(|s| !s.is_empty()) {
        let (title, body) = section.split_once('\n').unwrap_or((section, ""));
        let mut lines: Vec<&str> = body.lines().collect();
        if title.starts_with("ip route") || title.starts_with("ip -6 route") {
            lines.sort_unstable();
        }
        out.push_str(&format!("== {title}\n{}\n", lines.join("\n")));
    }
    out
}

#[test]
fn the_agent_moves_each_class_to_its_next_healthy_uplink_and_back() {
    let Some(l) = lab("the_agent_moves_each_class_to_its_next_healthy_uplink_and_back") else {
        return;
    };
    let t = &l.t;
    let state = t.state(&t.b);
    // Client A: gid 4242 DSCP 7 (the lab marker), gid 4243 DSCP 11.
    apply_ok(&t.a, &t.state(&t.a), "marker.toml");
    t.a.exec_ok(&[
        "iptables",
        "-t",
        "mangle",
        "-A",
        "OUTPUT",
        "-m",
        "owner",
        "--gid-owner",
        &OTHER_GID.to_string(),
        "-j",
        "DSCP",
        "--set-dscp",
        "11",
    ]);
    // A link flap keeps wg0's IPv6 address, as a VPN client would put it back.
    t.b.exec_ok(&["sysctl", "-qw", "net.ipv6.conf.wg0.keep_addr_on_down=1"]);
    let before = snapshot(&t.b);
    let pcap = t.path("up0-whole-run.pcap");
    let cap = t.b.capture("up0", &pcap, "tcp port 8080");

    let mut agent = Agent::start(&t.b, &state, &profile(PROFILE), &[]);
    agent.take_line(&["applied"], Duration::from_secs(20));
    assert_eq!(fetch(&t.a, GID, TARGET4).as_deref(), Ok("vpn"));
    assert_eq!(fetch(&t.a, OTHER_GID, TARGET4).as_deref(), Ok("vpn2"));

    // 1. wg0's link down: torrent to wg1 at once (no check needed).
    set_link(&t.b, "wg0", false);
    time_until_route(t, TORRENT_TABLE, "wg1", Duration::from_secs(1));
    let line = agent.take_line(&["class torrent: wg0 -> wg1"], Duration::from_secs(5));
    assert!(line.contains("wg0 is down"), "{line}");
    assert!(line.contains("detected in"), "{line}");
    assert_eq!(fetch(&t.a, GID, TARGET4).as_deref(), Ok("vpn2"));
    assert_eq!(route_dev(t, STREAMING_TABLE), "wg1");
    let s = json(&dscproute_expect(&t.b, &state, &["status", "--json"], 0));
    let torrent = &s["agent"]["classes"][0];
    assert_eq!(
        (torrent["class"].as_str(), torrent["uplink"].as_str()),
        (Some("torrent"), Some("wg1")),
        "{s:#}"
    );
    assert!(
        s["classes"][0]["why"]
            .as_str()
            .is_some_and(|w| w.contains("wg0 is down")),
        "{s:#}"
    );

    // wg0 back: its check failed meanwhile, so torrent waits for 2 answers.
    set_link(&t.b, "wg0", true);
    let back = time_until_route(t, TORRENT_TABLE, "wg0", EVERY * (FAILS + 2));
    assert!(
        back >= EVERY / 2,
        "torrent came back to wg0 after {back:?}: no hold-down"
    );
    agent.take_line(&["class torrent: wg1 -> wg0"], Duration::from_secs(5));
    assert_eq!(fetch(&t.a, GID, TARGET4).as_deref(), Ok("vpn"));

    // 2. vpn2 drops all it gets; wg1 stays up: only the check can tell.
    l.vpn2
        .exec_ok(&["iptables", "-t", "raw", "-A", "PREROUTING", "-j", "DROP"]);
    time_until_route(
        t,
        STREAMING_TABLE,
        "wg0",
        EVERY * FAILS + Duration::from_secs(1),
    );
    let line = agent.take_line(&["class streaming: wg1 -> wg0"], Duration::from_secs(5));
    assert!(line.contains("fails its check"), "{line}");
    assert_eq!(fetch(&t.a, OTHER_GID, TARGET4).as_deref(), Ok("vpn"));
    // doctor plans with what the running agent holds down, and says why.
    let p = profile(PROFILE);
    let doc = json(&dscproute(
        &t.b,
        &state,
        &["doctor", "--profile", &p, "--json"],
    ));
    let uplinks: Vec<&str> = doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["name"] == "uplink")
        .filter_map(|c| c["detail"].as_str())
        .collect();
    assert!(
        uplinks
            .iter()
            .any(|d| d.starts_with("class streaming: routed through wg0")
                && d.contains("wg1 fails its check: no answer from 10.9.0.1")),
        "{doc:#}"
    );
    l.vpn2
        .exec_ok(&["iptables", "-t", "raw", "-F", "PREROUTING"]);
    let back = time_until_route(t, STREAMING_TABLE, "wg1", EVERY * (FAILS + 2));
    assert!(
        back >= EVERY / 2,
        "streaming back after {back:?}: no hold-down"
    );
    assert_eq!(fetch(&t.a, OTHER_GID, TARGET4).as_deref(), Ok("vpn2"));

    // 3. Both VPN uplinks down: torrent blocked, streaming direct (listed).
    set_link(&t.b, "wg0", false);
    set_link(&t.b, "wg1", false);
    time_until_route(t, TORRENT_TABLE, "none", Duration::from_secs(2));
    time_until_route(t, STREAMING_TABLE, "up0", Duration::from_secs(2));
    assert!(fetch_short(&t.a, GID, TARGET4).is_err());
    assert_eq!(fetch(&t.a, OTHER_GID, TARGET4).as_deref(), Ok("isp"));

    // Back up; each class returns to its first uplink after its hold-down.
    set_link(&t.b, "wg0", true);
    set_link(&t.b, "wg1", true);
    time_until_route(t, TORRENT_TABLE, "wg0", Duration::from_secs(5));
    time_until_route(t, STREAMING_TABLE, "wg1", Duration::from_secs(5));
    assert_eq!(fetch(&t.a, GID, TARGET4).as_deref(), Ok("vpn"));

    cap.stop();
    assert!(
        count(&pcap, &from_ports(OTHER_PORTS)) > 0,
        "the capture on up0 saw streaming go direct"
    );
    assert_eq!(
        count(&pcap, &from_ports(GROUP_PORTS)),
        0,
        "packets of torrent left by up0, which it does not list"
    );
    let _ = std::fs::remove_file(&pcap);

    // One rollback, after the agent stops, restores B.
    let (st, _) = agent.term(Duration::from_secs(5));
    assert!(st.success(), "agent exit: {st}");
    rollback_ok(&t.b, &state);
    assert_same_state(
        &routes_sorted(&before),
        &routes_sorted(&snapshot(&t.b)),
        "rollback after failovers",
    );
    t.assert_host_etc_untouched();
}
