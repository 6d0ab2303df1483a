//! `dscproute agent` on the lab gateway (tests/common/topology.rs): started
//! in B's namespace with the client applied on A, it applies the gateway
//! profile and keeps it whole through what a router sees every day, proven
//! by traffic and timed:
//! - a second agent on the same state directory is refused (exit 4);
//! - wg0 down: the group's traffic is refused, IPv4 and IPv6, and not one of
//!   its packets reaches isp (kill switch); wg0 up with its addresses
//!   re-added as a VPN client does: our routes are back within 1 s and the
//!   group reaches "vpn" again;
//! - `ip route flush table 100`: back within 1 s;
//! - `iptables -t mangle -F PREROUTING`, then `nft flush ruleset` (no
//!   rtnetlink event): back within the drift check's period (1 s here) +
//!   1 s each, and the others' traffic still goes direct;
//! - over the whole run, a capture on B's direct uplink sees not one packet
//!   carrying the group's DSCP;
//! - `status --json` names the agent and counts its repairs;
//! - SIGTERM: exit 0 within 5 s, the setup stays, status says no agent; a
//!   restarted agent finds it whole and changes nothing;
//! - then one `rollback --yes` undoes the first apply and every repair:
//!   B's firewall, rules, routes, table names and sysctls are exactly as
//!   before the agent started.
//!
//! And on a hardened gateway (strict rp_filter): wg0 deleted and created
//! again with the same name gets its routes and its loose rp_filter back
//! within 1 s of its addresses.
//!
//! And the boot race: the agent started before the VPN interface exists
//! puts the kill switch and the marking in place at once, so the group's
//! traffic is refused (IPv4 and IPv6) and not one packet with its DSCP
//! leaves by the direct uplink while it waits; wg0 created: its routes
//! within 1 s and the group reaches "vpn"; SIGTERM exits 0; rollback
//! restores B as it was before the agent started.
//!
//! The agent is killed on every exit path (a guard), so no process is left
//! behind. Root only; skips visibly otherwise.

mod common;

use common::agent::Agent;
use common::topology::{
    DSCP7_V4, DSCP7_V6, GID, GROUP_PORTS, OTHER_GID, SPARE_PORTS, TARGET4, TARGET6, Topology,
    apply_ok, assert_group_blocked, assert_reaches, count, curl_from_ports, dscproute_expect,
    poll_until, profile, show, snapshot, status_json, stderr, stdout, topology,
};
use std::time::{Duration, Instant};

fn lab(name: &str) -> Option<Topology> {
    topology(name, &["tcpdump", "curl", "setpriv"])
}

/// Both default routes of table 100 are there.
fn routes_back(t: &Topology) -> bool {
    ["-4", "-6"].iter().all(|fam| {
        stdout(&t.b.exec(&["ip", fam, "route", "show", "table", "100"])).contains("default via")
    })
}

/// Polls `cond` every 10 ms for at most `limit`; returns how long it took.
fn time_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    assert!(
        poll_until(limit, Duration::from_millis(10), &mut cond),
        "{what}: not repaired within {limit:?}"
    );
    let took = start.elapsed();
    eprintln!("{what}: repaired in {} ms", took.as_millis());
    took
}

/// The group reaches `want` over both families (from SPARE_PORTS, apart
/// from the outage's attempts).
fn group_reaches(t: &Topology, want: &str) {
    for addr in [TARGET4, TARGET6] {
        let out = curl_from_ports(&t.a, GID, SPARE_PORTS, addr, "/", &["--max-time", "5"]);
        assert!(
            out.status.success(),
            "{}",
            show(&format!("group -> {addr}"), &out)
        );
        assert_eq!(stdout(&out), want, "group -> {addr}");
    }
}

/// The snapshot with the lines of its route sections sorted: the link
/// flap re-creates wg0's kernel routes in another order, which is not ours
/// to restore (rules and firewall keep their order).
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
fn the_agent_keeps_the_gateway_whole_and_leaves_it_on_sigterm() {
    let Some(t) = lab("the_agent_keeps_the_gateway_whole_and_leaves_it_on_sigterm") else {
        return;
    };
    apply_ok(&t.a, &t.state(&t.a), "marker.toml");
    let state = t.state(&t.b);
    let before = snapshot(&t.b);

    // The whole run: not one packet carrying the group's DSCP on the
    // direct uplink, through the outage, the repairs and the agent's stop.
    let uplink_pcap = t.path("uplink-whole-run.pcap");
    let uplink = t.b.capture("up0", &uplink_pcap, "ip or ip6");
    let mut agent = Agent::start(
        &t.b,
        &state,
        &profile("gateway.toml"),
        &["--drift-check", "1"],
    );
    agent.wait_line("applied", Duration::from_secs(20));
    group_reaches(&t, "vpn");

    // One agent per state directory.
    let p = profile("gateway.toml");
    let second = dscproute_expect(&t.b, &state, &["agent", "--profile", &p], 4);
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another dscproute agent"),
        "{}",
        show("second agent", &second)
    );

    // The VPN link goes down: the kill switch holds, the agent waits.
    t.b.exec_ok(&["ip", "link", "set", "wg0", "down"]);
    agent.wait_line("waiting", Duration::from_secs(5));
    assert_group_blocked(&t, &t.path("isp-link-down.pcap"), "wg0 down");

    // Back up, addresses put back as a VPN client does (IPv6 ones go with
    // the link; IPv4 ones stay, `replace` is what a client runs anyway).
    t.b.exec_ok(&["ip", "link", "set", "wg0", "up"]);
    t.b.exec_ok(&["ip", "addr", "replace", "10.8.0.2/24", "dev", "wg0"]);
    t.b.exec_ok(&[
        "ip",
        "-6",
        "addr",
        "replace",
        "fd00::2/64",
        "dev",
        "wg0",
        "nodad",
    ]);
    let link_up = time_until("wg0 up, addresses back", Duration::from_secs(1), || {
        routes_back(&t)
    });
    group_reaches(&t, "vpn");

    // Someone flushes our table.
    t.b.exec_ok(&["ip", "-4", "route", "flush", "table", "100"]);
    t.b.exec_ok(&["ip", "-6", "route", "flush", "table", "100"]);
    let flushed = time_until("table 100 flushed", Duration::from_secs(1), || {
        routes_back(&t)
    });
    group_reaches(&t, "vpn");

    // A firewall reload drops our jumps: no rtnetlink event, the drift check.
    t.b.exec_ok(&["iptables", "-t", "mangle", "-F", "PREROUTING"]);
    let drift = time_until(
        "mangle PREROUTING flushed",
        Duration::from_secs(1 + 1),
        || {
            stdout(&t.b.exec(&["iptables", "-t", "mangle", "-S", "PREROUTING"]))
                .contains("DSCPROUTE")
        },
    );
    group_reaches(&t, "vpn");

    // A firewall reload that drops every table (ours included).
    t.b.exec_ok(&["nft", "flush", "ruleset"]);
    let reload = time_until("nft flush ruleset", Duration::from_secs(1 + 1), || {
        let mangle = stdout(&t.b.exec(&["iptables", "-t", "mangle", "-S"]));
        let nat6 = stdout(&t.b.exec(&["ip6tables", "-t", "nat", "-S"]));
        mangle.contains("-A PREROUTING") && nat6.contains("-A POSTROUTING")
    });
    group_reaches(&t, "vpn");
    assert_reaches(&t.a, OTHER_GID, TARGET4, "isp");
    assert_reaches(&t.a, OTHER_GID, TARGET6, "isp");
    eprintln!(
        "repair times: link up {} ms, table flush {} ms, mangle flush {} ms, nft flush {} ms",
        link_up.as_millis(),
        flushed.as_millis(),
        drift.as_millis(),
        reload.as_millis()
    );

    // status names the agent and its repairs.
    let st = status_json(&t.b, &state);
    assert_eq!(
        st["agent"]["pid"].as_u64(),
        Some(u64::from(agent.pid())),
        "{st:#}"
    );
    assert!(st["agent"]["repairs"].as_u64().unwrap() >= 3, "{st:#}");
    assert!(
        st["agent"]["last_repair"]["line"]
            .as_str()
            .unwrap()
            .contains("repaired")
    );
    let text = stdout(&dscproute_expect(&t.b, &state, &["status"], 0));
    assert!(text.contains("Agent running"), "{text}");

    // SIGTERM: exit 0 within 5 s, the setup stays in place.
    // A rollback while the agent runs would be undone by it: refused.
    let held = snapshot(&t.b);
    let out = dscproute_expect(&t.b, &state, &["rollback", "--yes"], 4);
    assert!(
        stderr(&out).contains("stop it first"),
        "{}",
        show("rollback under the agent", &out)
    );
    assert_eq!(snapshot(&t.b), held, "a refused rollback changed the host");
    let (st_exit, took) = agent.term(Duration::from_secs(5));
    assert_eq!(st_exit.code(), Some(0), "agent exit after SIGTERM");
    eprintln!("SIGTERM -> exit in {} ms", took.as_millis());
    agent.wait_line("stopped by SIGTERM", Duration::from_secs(1));
    group_reaches(&t, "vpn");
    let st = status_json(&t.b, &state);
    assert!(st["agent"].is_null(), "{st:#}");

    // A restart finds the setup whole: it changes nothing (same last
    // transaction), and stops again the same way.
    let last = st["transaction"]["id"].clone();
    let mut again = Agent::start(&t.b, &state, &profile("gateway.toml"), &[]);
    again.wait_line("in place", Duration::from_secs(10));
    group_reaches(&t, "vpn");
    let (st_exit, _) = again.term(Duration::from_secs(5));
    assert_eq!(
        st_exit.code(),
        Some(0),
        "restarted agent exit after SIGTERM"
    );
    assert_eq!(status_json(&t.b, &state)["transaction"]["id"], last);
    uplink.stop();
    assert!(
        count(&uplink_pcap, "tcp") > 0,
        "the uplink capture saw the others' traffic"
    );
    assert_eq!(
        count(
            &uplink_pcap,
            &format!("(ip and {DSCP7_V4}) or (ip6 and {DSCP7_V6})")
        ),
        0,
        "packets with the group's DSCP left by the direct uplink"
    );

    // Removing the setup is an explicit act: one rollback undoes the first
    // apply and every repair since, sysctls included.
    let out = dscproute_expect(&t.b, &state, &["rollback", "--yes"], 0);
    assert!(
        stdout(&out).contains("earlier transactions of this setup"),
        "{}",
        show("rollback", &out)
    );
    common::topology::assert_same_state(
        &routes_sorted(&before),
        &routes_sorted(&snapshot(&t.b)),
        "after the agent and one rollback",
    );
    t.assert_host_etc_untouched();
}

/// A hardened gateway (strict rp_filter for all, default and wg0): the VPN
/// interface is deleted and created again under the same name, as wg-quick
/// or OpenVPN do, so it comes back with a new index and rp_filter at the
/// strict default. Once its addresses are there, the agent adds the routes
/// back and loosens the new wg0 again, within 1 s, and the group's IPv4
/// replies get through (strict rp_filter would drop them).
#[test]
fn a_recreated_vpn_interface_gets_its_routes_and_loose_rp_filter_back() {
    let Some(t) = lab("a_recreated_vpn_interface_gets_its_routes_and_loose_rp_filter_back") else {
        return;
    };
    t.b.sysctl_w(&[
        "net.ipv4.conf.all.rp_filter=1",
        "net.ipv4.conf.default.rp_filter=1",
        "net.ipv4.conf.wg0.rp_filter=1",
    ]);
    apply_ok(&t.a, &t.state(&t.a), "marker.toml");
    let state = t.state(&t.b);
    let before = snapshot(&t.b);
    let mut agent = Agent::start(&t.b, &state, &profile("gateway.toml"), &[]);
    agent.wait_line("applied", Duration::from_secs(20));
    assert_eq!(
        t.b.sysctl("net.ipv4.conf.wg0.rp_filter").as_deref(),
        Some("2")
    );
    group_reaches(&t, "vpn");

    // Deleting one end of the veth deletes both.
    t.b.exec_ok(&["ip", "link", "del", "wg0"]);
    agent.wait_line("does not exist", Duration::from_secs(5));
    assert_group_blocked(&t, &t.path("isp-wg0-deleted.pcap"), "wg0 deleted");

    common::veth(&t.b, "wg0", &t.vpn, "eth0");
    t.vpn.addr("eth0", "10.8.0.1/24");
    t.vpn.addr("eth0", "fd00::1/64");
    assert_eq!(
        t.b.sysctl("net.ipv4.conf.wg0.rp_filter").as_deref(),
        Some("1"),
        "a new wg0 starts at the strict default"
    );
    t.b.addr("wg0", "10.8.0.2/24");
    t.b.addr("wg0", "fd00::2/64");
    let took = time_until("wg0 re-created", Duration::from_secs(1), || {
        routes_back(&t) && t.b.sysctl("net.ipv4.conf.wg0.rp_filter").as_deref() == Some("2")
    });
    agent.wait_line(
        "did sysctl net.ipv4.conf.wg0.rp_filter=2",
        Duration::from_secs(1),
    );
    group_reaches(&t, "vpn");
    eprintln!(
        "re-created wg0: routes and rp_filter back in {} ms",
        took.as_millis()
    );

    let (st, _) = agent.term(Duration::from_secs(5));
    assert_eq!(st.code(), Some(0));
    // One rollback: the new wg0 back at the strict 1, and everything else.
    dscproute_expect(&t.b, &state, &["rollback", "--yes"], 0);
    assert_eq!(
        t.b.sysctl("net.ipv4.conf.wg0.rp_filter").as_deref(),
        Some("1")
    );
    common::topology::assert_same_state(
        &routes_sorted(&strip_link_local(&before)),
        &routes_sorted(&strip_link_local(&snapshot(&t.b))),
        "after the agent and one rollback",
    );
}

/// Without wg0's link-local address (a re-created veth gets a new MAC).
fn strip_link_local(snap: &str) -> String {
    snap.lines()
        .filter(|l| !(l.starts_with("local fe80::") && l.contains(" dev wg0 ")))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The boot race: systemd starts the agent before the VPN, so wg0 does not
/// exist yet. What does not need wg0 (the kill switch, the lookup rules,
/// the marking chains and jumps, forwarding, the table name) goes in place
/// at once: the group's traffic is refused, IPv4 and IPv6, and none of it
/// leaves by the direct uplink. wg0 comes up: its routes within 1 s.
#[test]
fn an_agent_started_before_the_vpn_holds_the_kill_switch_until_it_comes() {
    let Some(t) = lab("an_agent_started_before_the_vpn_holds_the_kill_switch_until_it_comes")
    else {
        return;
    };
    apply_ok(&t.a, &t.state(&t.a), "marker.toml");
    // Deleting one end of the veth deletes both: no VPN yet.
    t.b.exec_ok(&["ip", "link", "del", "wg0"]);
    let state = t.state(&t.b);
    let before = snapshot(&t.b);

    let uplink_pcap = t.path("uplink-boot.pcap");
    let uplink = t.b.capture("up0", &uplink_pcap, "ip or ip6");
    let mut agent = Agent::start(&t.b, &state, &profile("gateway.toml"), &[]);
    let line = agent.wait_line(
        "kill switch in place, waiting for wg0",
        Duration::from_secs(20),
    );
    assert!(line.starts_with("applied "), "{line}");
    agent.wait_line("VPN interface wg0 does not exist", Duration::from_secs(5));
    for fam in ["-4", "-6"] {
        let rules = stdout(&t.b.exec(&["ip", fam, "rule"]));
        assert!(
            rules.lines().any(|l| l.starts_with("10001:")
                && l.contains(" fwmark ")
                && l.contains(" unreachable")),
            "{fam}: no kill switch while waiting:\n{rules}"
        );
    }
    // Refused by B at once (curl 7: could not connect, ICMP unreachable),
    // not lost on the way (28: timed out).
    for addr in [TARGET4, TARGET6] {
        let refused = curl_from_ports(&t.a, GID, GROUP_PORTS, addr, "/", &["--max-time", "3"]);
        assert_eq!(
            refused.status.code(),
            Some(7),
            "{}",
            show(&format!("group -> {addr} while waiting"), &refused)
        );
    }
    assert_group_blocked(&t, &t.path("isp-boot.pcap"), "before wg0 exists");

    // Kept while waiting too: a kill switch removed by hand is back at once.
    t.b.exec_ok(&["ip", "-4", "rule", "del", "pref", "10001"]);
    let held = time_until(
        "kill switch deleted while waiting",
        Duration::from_secs(1),
        || stdout(&t.b.exec(&["ip", "-4", "rule"])).contains("10001:"),
    );
    let line = agent.wait_line("did IPv4 kill switch pref 10001", Duration::from_secs(1));
    assert!(
        line.starts_with("kill switch in place, waiting for wg0"),
        "{line}"
    );
    assert_group_blocked(&t, &t.path("isp-boot-again.pcap"), "kill switch put back");

    // The VPN comes up as a client brings it: link, then its addresses.
    common::veth(&t.b, "wg0", &t.vpn, "eth0");
    t.vpn.addr("eth0", "10.8.0.1/24");
    t.vpn.addr("eth0", "fd00::1/64");
    t.b.addr("wg0", "10.8.0.2/24");
    t.b.addr("wg0", "fd00::2/64");
    let took = time_until("wg0 came up", Duration::from_secs(1), || routes_back(&t));
    agent.wait_line("repaired", Duration::from_secs(1));
    group_reaches(&t, "vpn");
    assert_reaches(&t.a, OTHER_GID, TARGET4, "isp");
    assert_reaches(&t.a, OTHER_GID, TARGET6, "isp");
    eprintln!(
        "boot: kill switch back in {} ms while waiting; wg0's routes {} ms after its addresses",
        held.as_millis(),
        took.as_millis()
    );

    let (st, _) = agent.term(Duration::from_secs(5));
    assert_eq!(st.code(), Some(0), "agent exit after SIGTERM");
    uplink.stop();
    assert!(
        count(&uplink_pcap, "tcp") > 0,
        "the uplink capture saw the others' traffic"
    );
    assert_eq!(
        count(
            &uplink_pcap,
            &format!("(ip and {DSCP7_V4}) or (ip6 and {DSCP7_V6})")
        ),
        0,
        "packets with the group's DSCP left by the direct uplink"
    );

    dscproute_expect(&t.b, &state, &["rollback", "--yes"], 0);
    assert!(
        !stdout(&t.b.exec(&["ip", "route", "show", "table", "100"])).contains("default"),
        "rollback left the route through wg0"
    );
    // The VPN goes away again (not ours to remove): B as before the agent,
    // from that one rollback.
    t.b.exec_ok(&["ip", "link", "del", "wg0"]);
    common::topology::assert_same_state(
        &routes_sorted(&before),
        &routes_sorted(&snapshot(&t.b)),
        "after the agent at boot and rollback",
    );
    t.assert_host_etc_untouched();
}

/// Bad input (no root or lab needed): a profile that does not parse and an
/// out-of-range drift period exit 2 with one line, and create no state.
#[test]
fn bad_input_exits_2_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[gateway]\ndscp = 99\n").unwrap();
    let good = profile("gateway.toml");
    for args in [
        vec!["agent", "--profile", bad.to_str().unwrap()],
        vec!["agent", "--profile", &good, "--drift-check", "0"],
    ] {
        let out = std::process::Command::new(common::topology::BIN)
            .arg("--state-dir")
            .arg(&state)
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}",
            show(&args.join(" "), &out)
        );
        assert!(out.stdout.is_empty(), "{}", show(&args.join(" "), &out));
        assert!(!state.exists(), "{args:?} created the state dir");
    }
}
