//! `dscproute apply / rollback / confirm / status` on real kernels: each test
//! builds the namespace lab of tests/common/topology.rs (client A, gateway B
//! with an ISP uplink and a veth "VPN" wg0, a second LAN), applies the lab
//! profiles (tests/fixtures/lab) inside the namespaces and checks where
//! packets really go, what the wire carries, and that rollback — after
//! success, failure, a crash or a missed confirmation — leaves the host
//! exactly as it was. Needs root; skips visibly otherwise.

mod common;

use common::topology::{
    A4, A6, Blocked, DSCP7_V4, DSCP7_V6, GID, GROUP_PORTS, Host, LAN2_4, LAN2_6, Mode, OTHER_GID,
    OTHER_PORTS, SPARE_PORTS, SYN_OR_PSH_V4, SYN_OR_PSH_V6, TARGET4, TARGET6, TUNNEL_B4, TUNNEL_B6,
    Topology, UPLINK_B4, UPLINK_B6, Wrappers, apply_ok, assert_group_blocked, assert_reaches,
    assert_same_state, count, curl, curl_from_ports, dscproute_command, dscproute_expect,
    dscproute_with, effect_visible, fetch_short, from_ports, json, poll_until, profile,
    rollback_ok, rule_packets, show, snapshot, status_json, stderr, stdout, topology,
};
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The lab, or `None` after a visible skip (see common::lab).
fn lab(name: &str, extra_tools: &[&str]) -> Option<Topology> {
    let tools: Vec<&str> = ["tcpdump", "curl", "setpriv"]
        .iter()
        .chain(extra_tools)
        .copied()
        .collect();
    topology(name, &tools)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Apply the marker on A and the given gateway profile on B.
fn apply_both_hosts(t: &Topology, gateway_profile: &str) {
    apply_ok(&t.a, &t.state(&t.a), "marker.toml");
    apply_ok(&t.b, &t.state(&t.b), gateway_profile);
}

fn dropin_in(host: &Host) -> std::path::PathBuf {
    host.etc_iproute2().join("rt_tables.d/dscproute.conf")
}

/// Polls until the snapshot of `host` equals `want` (every 200 ms, bounded).
fn wait_for_state(host: &Host, want: &str, timeout: Duration) -> Result<(), String> {
    let mut last = String::new();
    if poll_until(timeout, Duration::from_millis(200), || {
        last = snapshot(host);
        last == want
    }) {
        Ok(())
    } else {
        Err(last)
    }
}

// ---------------------------------------------------------------------------
// 1. The path of the group's traffic, on the wire.

/// Marker on A, gateway on B: the group's IPv4 and IPv6 traffic to the test
/// address reaches "vpn" (masqueraded to the tunnel address), everybody
/// else's "isp"; the group's traffic to the second LAN stays local; an 8 MB
/// download through the VPN completes; on B's LAN side the group's SYN and
/// data packets carry DSCP 7 (nobody else's do) and on the VPN host they
/// arrive scrubbed to 0; the counters in `status --json` move. Rollback
/// turns forwarding off again and restores both hosts exactly.
#[test]
fn group_traffic_goes_through_the_vpn_and_the_rest_through_the_isp() {
    let Some(t) = lab(
        "group_traffic_goes_through_the_vpn_and_the_rest_through_the_isp",
        &[],
    ) else {
        return;
    };
    let (before_a, before_b) = (snapshot(&t.a), snapshot(&t.b));
    assert_eq!(t.b.sysctl("net.ipv4.ip_forward").as_deref(), Some("0"));
    assert_eq!(
        t.b.sysctl("net.ipv6.conf.all.forwarding").as_deref(),
        Some("0")
    );
    t.assert_host_etc_untouched();

    apply_both_hosts(&t, "gateway.toml");
    assert_eq!(t.b.sysctl("net.ipv4.ip_forward").as_deref(), Some("1"));
    assert_eq!(
        t.b.sysctl("net.ipv6.conf.all.forwarding").as_deref(),
        Some("1")
    );
    assert_eq!(
        std::fs::read_to_string(dropin_in(&t.b)).ok().as_deref(),
        Some("100 vpn\n"),
        "the table name belongs in B's own /etc (its /etc/netns overlay)"
    );
    t.assert_host_etc_untouched();
    let b_out = t.b.exec_ok(&["ip", "route", "show", "table", "vpn"]);
    assert!(
        stdout(&b_out).contains("default via 10.8.0.1 dev wg0"),
        "{}",
        show("table vpn, read by name inside B", &b_out)
    );

    let status_b0 = status_json(&t.b, &t.state(&t.b));
    for fam in ["IPv4", "IPv6"] {
        assert_eq!(
            rule_packets(&status_b0, fam, "DSCPROUTE-ROUTE", "--set-xmark"),
            0,
            "{fam}: nothing marked before any traffic"
        );
    }

    let lan0 = t.path("b-lan0.pcap");
    let tunnel = t.path("vpn-eth0.pcap");
    let mut cap_lan0 = t.b.capture("lan0", &lan0, "tcp port 8080");
    let mut cap_tunnel = t.vpn.capture("eth0", &tunnel, "tcp port 8080");

    let requests = [
        (GID, TARGET4, "vpn"),
        (OTHER_GID, TARGET4, "isp"),
        (GID, TARGET6, "vpn"),
        (OTHER_GID, TARGET6, "isp"),
        (GID, LAN2_4, "lan2"),
        (GID, LAN2_6, "lan2"),
        (OTHER_GID, LAN2_4, "lan2"),
    ];
    for (gid, addr, want) in requests {
        assert_reaches(&t.a, gid, addr, want);
    }
    // At least SYN, SYN-ACK, ACK, request, response and a FIN per exchange.
    cap_lan0.wait_for_packets(requests.len() * 6, Duration::from_secs(10));
    cap_tunnel.wait_for_packets(2 * 6, Duration::from_secs(10));
    cap_lan0.stop();
    cap_tunnel.stop();

    // On B's LAN side: the group's connection openings and data carry DSCP
    // 7, nobody else's packets do. (Packets sent after the client closed its
    // socket are not marked: see the_end_of_a_group_connection_stays_off_the_isp.)
    for (fam, dscp7, owned) in [
        ("ip", DSCP7_V4, SYN_OR_PSH_V4),
        ("ip6", DSCP7_V6, SYN_OR_PSH_V6),
    ] {
        let group = format!("{fam} and {} and {owned}", from_ports(GROUP_PORTS));
        let others = format!("{fam} and {}", from_ports(OTHER_PORTS));
        let n_group = count(&lan0, &group);
        assert!(
            n_group >= 4,
            "{fam}: too few packets of the group on B's lan0"
        );
        assert_eq!(
            count(&lan0, &format!("{group} and {dscp7}")),
            n_group,
            "{fam}: the group's SYN and data packets must carry DSCP 7 on B's LAN side:\n{}",
            common::read_capture(&lan0, &format!("{group} and not {dscp7}")).join("\n")
        );
        assert!(
            count(&lan0, &others) > 0,
            "{fam}: no packet of others on lan0"
        );
        assert_eq!(
            count(&lan0, &format!("{others} and {dscp7}")),
            0,
            "{fam}: others' packets must not carry DSCP 7"
        );
        // At the VPN host: the group's packets arrived, with DSCP scrubbed to 0.
        let towards_vpn = format!("{fam} and tcp dst port 8080");
        assert!(
            count(&tunnel, &towards_vpn) > 0,
            "{fam}: nothing reached vpn"
        );
        assert_eq!(
            count(&tunnel, &format!("{towards_vpn} and {dscp7}")),
            0,
            "{fam}: DSCP 7 leaked into the VPN (scrub did not reset it)"
        );
    }

    // Who saw what: vpn only the group, masqueraded to B's tunnel address
    // (it has no route to the LAN); isp only the others; lan2 all three,
    // straight from A (not through the VPN, not NATed).
    let vpn_hits = t.servers.vpn.hits();
    let mut vpn_peers: Vec<IpAddr> = vpn_hits.iter().map(|h| h.ip()).collect();
    vpn_peers.sort();
    assert_eq!(
        vpn_peers,
        vec![ip(TUNNEL_B4), ip(TUNNEL_B6)],
        "{vpn_hits:?}"
    );
    assert!(vpn_hits.iter().all(|h| h.is_group()), "{vpn_hits:?}");
    let isp_hits = t.servers.isp.hits();
    let mut isp_peers: Vec<IpAddr> = isp_hits.iter().map(|h| h.ip()).collect();
    isp_peers.sort();
    assert_eq!(isp_peers, vec![ip(A4), ip(A6)], "{isp_hits:?}");
    assert!(isp_hits.iter().all(|h| !h.is_group()), "{isp_hits:?}");
    let lan2_hits = t.servers.lan2.hits();
    let mut lan2_peers: Vec<IpAddr> = lan2_hits.iter().map(|h| h.ip()).collect();
    lan2_peers.sort();
    assert_eq!(lan2_peers, vec![ip(A4), ip(A4), ip(A6)], "{lan2_hits:?}");

    // A big download through the VPN completes.
    let out = curl(
        &t.a,
        GID,
        TARGET4,
        "/big/8",
        &[
            "--max-time",
            "30",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
        ],
    );
    assert!(out.status.success(), "{}", show("8 MB download", &out));
    assert_eq!(stdout(&out), (8u64 << 20).to_string(), "bytes downloaded");
    assert!(
        t.servers.vpn.hits().iter().any(|h| h.path == "/big/8"),
        "the download must come from vpn"
    );

    // The counters in `status --json` moved.
    let status_b = status_json(&t.b, &t.state(&t.b));
    for fam in ["IPv4", "IPv6"] {
        assert!(
            rule_packets(&status_b, fam, "DSCPROUTE-ROUTE", "--set-xmark") > 0,
            "{status_b:#}"
        );
        assert!(
            rule_packets(&status_b, fam, "PREROUTING", "DSCPROUTE-ROUTE") > 0,
            "{status_b:#}"
        );
        assert!(
            rule_packets(&status_b, fam, "DSCPROUTE-SCRUB", "--set-dscp") > 0,
            "{status_b:#}"
        );
        assert!(
            rule_packets(&status_b, fam, "DSCPROUTE-NAT", "MASQUERADE") > 0,
            "{status_b:#}"
        );
    }
    let status_a = status_json(&t.a, &t.state(&t.a));
    for fam in ["IPv4", "IPv6"] {
        assert!(
            rule_packets(&status_a, fam, "DSCPROUTE-MARK", "--gid-owner 4242") > 0,
            "{status_a:#}"
        );
    }

    rollback_ok(&t.b, &t.state(&t.b));
    rollback_ok(&t.a, &t.state(&t.a));
    assert_eq!(t.b.sysctl("net.ipv4.ip_forward").as_deref(), Some("0"));
    assert_eq!(
        t.b.sysctl("net.ipv6.conf.all.forwarding").as_deref(),
        Some("0")
    );
    assert_same_state(&before_b, &snapshot(&t.b), "B after rollback");
    assert_same_state(&before_a, &snapshot(&t.a), "A after rollback");
    t.assert_host_etc_untouched();
}

/// Why the gateway masquerades: `vpn` knows only the tunnel subnet. Without
/// masquerade the group's packets do arrive there, from A's LAN address, and
/// no answer can come back.
#[test]
fn without_masquerade_the_vpn_cannot_answer() {
    let Some(t) = lab("without_masquerade_the_vpn_cannot_answer", &[]) else {
        return;
    };
    let no_route = t.vpn.exec(&["ip", "route", "get", A4]);
    assert!(
        !no_route.status.success(),
        "{}",
        show("vpn must have no route to the LAN", &no_route)
    );
    apply_both_hosts(&t, "gateway-no-masquerade.toml");
    let tunnel = t.path("vpn-eth0.pcap");
    let mut cap = t
        .vpn
        .capture("eth0", &tunnel, &format!("tcp and src host {A4}"));
    assert!(
        fetch_short(&t.a, GID, TARGET4).is_err(),
        "without masquerade the group's request must not be answered"
    );
    cap.wait_for_packets(1, Duration::from_secs(5));
    cap.stop();
    assert!(count(&tunnel, "tcp[tcpflags] & tcp-syn != 0") > 0);
    assert_reaches(&t.a, OTHER_GID, TARGET4, "isp");
    assert!(t.servers.vpn.hits().is_empty());
}

// ---------------------------------------------------------------------------
// 2. Strict reverse-path filtering.

/// B with net.ipv4.conf.all.rp_filter=1: the plan loosens wg0 alone (to 2)
/// and the group's traffic gets its replies; rollback restores wg0.
#[test]
fn strict_rp_filter_is_loosened_on_the_vpn_interface_only() {
    let Some(t) = lab(
        "strict_rp_filter_is_loosened_on_the_vpn_interface_only",
        &[],
    ) else {
        return;
    };
    t.b.sysctl_w(&["net.ipv4.conf.all.rp_filter=1"]);
    let before = snapshot(&t.b);
    let plan = dscproute_expect(
        &t.b,
        &t.state(&t.b),
        &["plan", "--profile", &profile("gateway.toml")],
        0,
    );
    assert!(
        stdout(&plan).contains("~ sysctl -q -w net.ipv4.conf.wg0.rp_filter=2   (0 → 2)"),
        "{}",
        show("plan must loosen wg0", &plan)
    );
    apply_both_hosts(&t, "gateway.toml");
    for (key, want) in [
        ("net.ipv4.conf.all.rp_filter", "1"),
        ("net.ipv4.conf.wg0.rp_filter", "2"),
        ("net.ipv4.conf.lan0.rp_filter", "0"),
        ("net.ipv4.conf.up0.rp_filter", "0"),
    ] {
        assert_eq!(t.b.sysctl(key).as_deref(), Some(want), "{key}");
    }
    assert_reaches(&t.a, GID, TARGET4, "vpn");
    assert_reaches(&t.a, GID, TARGET6, "vpn");
    assert_reaches(&t.a, OTHER_GID, TARGET4, "isp");
    rollback_ok(&t.b, &t.state(&t.b));
    assert_eq!(
        t.b.sysctl("net.ipv4.conf.wg0.rp_filter").as_deref(),
        Some("0")
    );
    assert_same_state(&before, &snapshot(&t.b), "B after rollback");
}

/// The trap is real: with rp_filter = "keep" the plan warns, and the
/// group's IPv4 replies are dropped by B (its IPReversePathFilter counter
/// rises); IPv6 has no rp_filter and still works; loosening wg0 by hand
/// fixes IPv4 at once.
#[test]
fn rp_filter_keep_warns_and_the_replies_are_dropped() {
    let Some(t) = lab("rp_filter_keep_warns_and_the_replies_are_dropped", &[]) else {
        return;
    };
    t.b.sysctl_w(&["net.ipv4.conf.all.rp_filter=1"]);
    let plan = dscproute_expect(
        &t.b,
        &t.state(&t.b),
        &["plan", "--profile", &profile("gateway-keep-rp-filter.toml")],
        0,
    );
    let text = stdout(&plan)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        text.contains("rp_filter is strict for wg0")
            && text.contains("replies from the VPN will be dropped"),
        "{}",
        show("plan must warn about strict rp_filter", &plan)
    );
    assert!(
        !text.contains("rp_filter=2"),
        "keep must not loosen anything"
    );
    apply_both_hosts(&t, "gateway-keep-rp-filter.toml");
    assert_eq!(
        t.b.sysctl("net.ipv4.conf.wg0.rp_filter").as_deref(),
        Some("0")
    );

    let drops = t.b.netstat("TcpExt", "IPReversePathFilter");
    let got = fetch_short(&t.a, GID, TARGET4);
    assert!(
        got.is_err(),
        "strict rp_filter must drop the VPN's replies, got {got:?}"
    );
    assert!(
        t.b.netstat("TcpExt", "IPReversePathFilter") > drops,
        "B's reverse-path filter must be what dropped them"
    );
    assert_reaches(&t.a, OTHER_GID, TARGET4, "isp");
    assert_reaches(&t.a, GID, TARGET6, "vpn");

    t.b.sysctl_w(&["net.ipv4.conf.wg0.rp_filter=2"]);
    assert_reaches(&t.a, GID, TARGET4, "vpn");
}

// ---------------------------------------------------------------------------
// 3. The VPN goes down: the kill switch.

/// A request of the group from SPARE_PORTS: working connections end with
/// packets that leak (see the_end_of_a_group_connection_stays_off_the_isp),
/// and those must not be mistaken for the outage's attempts.
fn assert_reaches_spare(t: &Topology, addr: &str, want: &str) {
    let out = curl_from_ports(&t.a, GID, SPARE_PORTS, addr, "/", &["--max-time", "5"]);
    assert!(
        out.status.success(),
        "{}",
        show(&format!("group -> {addr}"), &out)
    );
    assert_eq!(stdout(&out), want, "group -> {addr}");
}

/// The VPN's routes vanish, then its link goes down: the group's new
/// connections fail at once for IPv4 and IPv6 (kill switch), not one of
/// their packets reaches isp, and everybody else still reaches isp.
#[test]
fn vpn_down_blocks_the_group_and_leaks_nothing() {
    let Some(t) = lab("vpn_down_blocks_the_group_and_leaks_nothing", &[]) else {
        return;
    };
    apply_both_hosts(&t, "gateway.toml");
    assert_reaches_spare(&t, TARGET4, "vpn");
    assert_reaches_spare(&t, TARGET6, "vpn");

    // The VPN's routes vanish (what a tunnel daemon going away does).
    t.b.exec_ok(&["ip", "-4", "route", "del", "default", "table", "100"]);
    t.b.exec_ok(&["ip", "-6", "route", "del", "default", "table", "100"]);
    assert_group_blocked(&t, &t.path("isp-route-gone.pcap"), "VPN routes deleted");

    // Put them back: the group goes through the VPN again…
    t.b.exec_ok(&[
        "ip", "-4", "route", "add", "default", "via", "10.8.0.1", "dev", "wg0", "table", "100",
        "proto", "213",
    ]);
    t.b.exec_ok(&[
        "ip", "-6", "route", "add", "default", "via", "fd00::1", "dev", "wg0", "table", "100",
        "proto", "213",
    ]);
    assert_reaches_spare(&t, TARGET4, "vpn");
    assert_reaches_spare(&t, TARGET6, "vpn");
    // …until the link itself goes down.
    t.b.exec_ok(&["ip", "link", "set", "wg0", "down"]);
    assert_group_blocked(&t, &t.path("isp-link-down.pcap"), "wg0 down");
}

/// The counter-proof for the test above: without the kill switch the same
/// outage sends the group's traffic out through the ISP.
#[test]
fn without_kill_switch_the_group_leaks_when_the_vpn_is_down() {
    let Some(t) = lab(
        "without_kill_switch_the_group_leaks_when_the_vpn_is_down",
        &[],
    ) else {
        return;
    };
    let plan = dscproute_expect(
        &t.b,
        &t.state(&t.b),
        &["plan", "--profile", &profile("gateway-no-kill-switch.toml")],
        0,
    );
    assert!(
        stdout(&plan).contains("kill_switch = false"),
        "{}",
        show("plan", &plan)
    );
    apply_both_hosts(&t, "gateway-no-kill-switch.toml");
    assert_reaches(&t.a, GID, TARGET4, "vpn");
    t.b.exec_ok(&["ip", "link", "set", "wg0", "down"]);
    assert_reaches(&t.a, GID, TARGET4, "isp");
    assert_reaches(&t.a, GID, TARGET6, "isp");
}

/// Every packet of a group connection must stay off the ISP uplink, to the
/// very end. The client closes first here (the lab server waits for that),
/// so its last ACK is sent by a socket the process has already closed: the
/// owner match (`--gid-owner` needs a socket with an owner) no longer
/// applies and the ACK leaves A without DSCP 7. B routes it by the main
/// table towards up0; since the connection was masqueraded on wg0, the
/// kernel's NAT drops it and deletes the connection's conntrack entry (the
/// output interface changed). The VPN host, never ACKed, retransmits its
/// FIN; without the conntrack entry B takes it for its own address
/// 10.8.0.2 / fd00::2 and answers with a RST from that address, which
/// follows B's main table out through the ISP: the ISP sees the tunnel
/// address and the destination of the group's connection.
#[test]
fn the_end_of_a_group_connection_stays_off_the_isp() {
    let Some(t) = lab("the_end_of_a_group_connection_stays_off_the_isp", &["ss"]) else {
        return;
    };
    apply_both_hosts(&t, "gateway.toml");
    let lan0 = t.path("b-lan0.pcap");
    let uplink = t.path("isp-eth0.pcap");
    let group_tcp = format!("tcp portrange {}-{}", GROUP_PORTS.0, GROUP_PORTS.1);
    let cap_lan0 = t.b.capture("lan0", &lan0, &group_tcp);
    let mut cap_uplink = t.isp.capture("eth0", &uplink, "tcp port 8080");
    let b_rsts = t.b.netstat("Tcp", "OutRsts");
    assert_reaches(&t.a, GID, TARGET4, "vpn");
    assert_reaches(&t.a, GID, TARGET6, "vpn");
    // Both connections have sent their last ACK once A holds them in TIME-WAIT.
    let range = format!(
        "( sport >= :{} and sport <= :{} )",
        GROUP_PORTS.0, GROUP_PORTS.1
    );
    let mut tw = String::new();
    let closed = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        let out = t.a.exec_ok(&["ss", "-Htan", "state", "time-wait", &range]);
        tw = stdout(&out);
        tw.lines().count() >= 2
    });
    assert!(closed, "the group's connections did not close:\n{tw}");
    // Later packets of others: once they are captured, so is anything earlier.
    assert_reaches(&t.a, OTHER_GID, TARGET4, "isp");
    assert_reaches(&t.a, OTHER_GID, TARGET6, "isp");
    cap_uplink.wait_for_packets(2 * 6, Duration::from_secs(10));
    cap_uplink.stop();
    cap_lan0.stop();
    let leaked = common::read_capture(
        &uplink,
        &format!(
            "{} or host {TUNNEL_B4} or host {TUNNEL_B6}",
            from_ports(GROUP_PORTS)
        ),
    );
    let unmarked = common::read_capture(
        &lan0,
        &format!(
            "{} and ((ip and not {DSCP7_V4}) or (ip6 and not {DSCP7_V6}))",
            from_ports(GROUP_PORTS)
        ),
    );
    assert!(
        leaked.is_empty() && unmarked.is_empty(),
        "packets of the group's connections reached the ISP:\n{}\n\
         packets of the group leaving A without DSCP 7:\n{}\n\
         all of the group's packets on B's LAN side:\n{}\n\
         TCP resets B's own stack sent meanwhile (IPv4): {}",
        leaked.join("\n"),
        unmarked.join("\n"),
        common::read_capture(&lan0, "").join("\n"),
        t.b.netstat("Tcp", "OutRsts") - b_rsts
    );
}

// ---------------------------------------------------------------------------
// 4./5. Idempotence and exact rollback.

/// apply; apply again is a no-op (text and JSON); rollback restores the
/// snapshot byte for byte; a second rollback is a clean no-op.
fn apply_twice_then_rollback(host: &Host, state: &Path, profile_name: &str, check: impl Fn()) {
    let p = profile(profile_name);
    let before = snapshot(host);
    let first = dscproute_expect(
        host,
        state,
        &["apply", "--profile", &p, "--yes", "--json"],
        0,
    );
    let v = json(&first);
    assert_eq!(v["changed"], true, "{v:#}");
    assert!(v["steps"].as_u64().unwrap_or(0) > 0, "{v:#}");
    let applied = snapshot(host);
    assert_ne!(applied, before, "apply changed nothing in {}", host.name());
    check();

    let again = dscproute_expect(host, state, &["apply", "--profile", &p, "--yes"], 0);
    assert!(
        stdout(&again).contains("Nothing to do"),
        "{}",
        show("second apply", &again)
    );
    let again = dscproute_expect(
        host,
        state,
        &["apply", "--profile", &p, "--yes", "--json"],
        0,
    );
    assert_eq!(
        json(&again)["changed"],
        false,
        "{}",
        show("apply --json", &again)
    );
    assert_same_state(&applied, &snapshot(host), "a no-op apply changed the host");
    let plan = dscproute_expect(host, state, &["plan", "--profile", &p], 0);
    assert!(
        stdout(&plan).contains("0 to add, 0 to change"),
        "{}",
        show("plan", &plan)
    );
    let status = dscproute_expect(host, state, &["status"], 0);
    assert!(
        stdout(&status).contains(": applied ("),
        "{}",
        show("status", &status)
    );

    rollback_ok(host, state);
    assert_same_state(
        &before,
        &snapshot(host),
        &format!("{} after rollback", host.name()),
    );
    let second = dscproute_expect(host, state, &["rollback", "--yes"], 0);
    assert!(
        stdout(&second).contains("nothing to roll back"),
        "{}",
        show("second rollback", &second)
    );
    let second = dscproute_expect(host, state, &["rollback", "--yes", "--json"], 0);
    assert_eq!(
        json(&second)["changed"],
        false,
        "{}",
        show("rollback --json", &second)
    );
    assert_same_state(&before, &snapshot(host), "after a no-op rollback");
    let status = dscproute_expect(host, state, &["status"], 0);
    assert!(
        stdout(&status).contains("Nothing of dscproute's is in place"),
        "{}",
        show("status after rollback", &status)
    );
}

#[test]
fn apply_is_idempotent_and_rollback_restores_gateway_and_client_exactly() {
    let Some(t) = lab(
        "apply_is_idempotent_and_rollback_restores_gateway_and_client_exactly",
        &[],
    ) else {
        return;
    };
    // Start with strict rp_filter so the wg0 sysctl is part of the round trip.
    t.b.sysctl_w(&["net.ipv4.conf.all.rp_filter=1"]);
    apply_twice_then_rollback(&t.a, &t.state(&t.a), "marker.toml", || {});
    apply_twice_then_rollback(&t.b, &t.state(&t.b), "gateway.toml", || {
        assert!(dropin_in(&t.b).exists());
        t.assert_host_etc_untouched();
        assert_eq!(
            t.b.sysctl("net.ipv4.conf.wg0.rp_filter").as_deref(),
            Some("2")
        );
    });
    assert!(!dropin_in(&t.b).exists());
    t.assert_host_etc_untouched();
}

/// Both roles on B: B's own processes of the group go through the VPN (they
/// never pass PREROUTING; the mark is set in mangle OUTPUT and the packet
/// re-routed, then masqueraded), others through the ISP, and the group's
/// traffic to the LAN stays local.
#[test]
fn both_roles_on_one_host() {
    let Some(t) = lab("both_roles_on_one_host", &[]) else {
        return;
    };
    apply_twice_then_rollback(&t.b, &t.state(&t.b), "both.toml", || {
        assert_reaches(&t.b, GID, TARGET4, "vpn");
        assert_reaches(&t.b, GID, TARGET6, "vpn");
        assert_reaches(&t.b, OTHER_GID, TARGET4, "isp");
        assert_reaches(&t.b, OTHER_GID, TARGET6, "isp");
        assert_reaches(&t.b, GID, LAN2_4, "lan2");
        assert_reaches(&t.b, GID, LAN2_6, "lan2");
        let mut peers: Vec<IpAddr> = t.servers.vpn.hits().iter().map(|h| h.ip()).collect();
        peers.sort();
        assert_eq!(peers, vec![ip(TUNNEL_B4), ip(TUNNEL_B6)], "vpn's view");
        // Others left by the uplink with its own address.
        let mut peers: Vec<IpAddr> = t.servers.isp.hits().iter().map(|h| h.ip()).collect();
        peers.sort();
        assert_eq!(peers, vec![ip(UPLINK_B4), ip(UPLINK_B6)], "isp's view");
        // lan2 was reached straight from B's LAN address, not via the tunnel.
        let mut peers: Vec<IpAddr> = t.servers.lan2.hits().iter().map(|h| h.ip()).collect();
        peers.sort();
        assert_eq!(
            peers,
            vec![ip("192.168.60.1"), ip("fd60::1")],
            "lan2's view"
        );
        t.assert_host_etc_untouched();
    });
}

// ---------------------------------------------------------------------------
// 6./7. Crashes and failures in the middle of apply.

/// B with strict rp_filter (so all kinds of steps are in the plan), the
/// wrappers installed, the snapshot before, and N: the number of mutating
/// subprocess calls of a full apply, counted on a real run (then rolled back).
fn crash_lab(name: &str) -> Option<(Topology, Wrappers, String, usize)> {
    let t = lab(name, &[])?;
    t.b.sysctl_w(&["net.ipv4.conf.all.rp_filter=1"]);
    let before = snapshot(&t.b);
    let w = Wrappers::install(&t.path("wrap"));
    let p = profile("gateway.toml");
    let out = dscproute_with(
        &t.b,
        &t.state(&t.b),
        &w.env(Mode::Count, 0),
        &["apply", "--profile", &p, "--yes", "--json"],
    );
    assert!(out.status.success(), "{}", show("counting apply", &out));
    let steps = json(&out)["steps"].as_u64().expect("steps") as usize;
    let calls = w.calls();
    let commands: Vec<String> = calls
        .iter()
        .enumerate()
        .flat_map(|(i, c)| w.commands_of(i + 1, c))
        .collect();
    // The table-name file and the 3 sysctls (forwarding of both families,
    // rp_filter on wg0) are written in-process; every other step is one
    // command, the iptables ones batched per table into iptables-restore,
    // rules and routes per family into `ip -batch`.
    assert_eq!(
        commands.len(),
        steps - 4,
        "mutating commands vs steps:\n{}",
        commands.join("\n")
    );
    let batches = calls.iter().filter(|c| c.contains("-restore ")).count();
    let ip_batches = calls.iter().filter(|c| c.ends_with(" -batch -")).count();
    // Counted on the lab's gateway profile: 10 mutating calls, 6 of them
    // iptables-restore batches (a lone iptables step runs as itself), 2 of
    // them `ip -batch` (4 rules and routes each), no sysctl.
    let sysctls = calls.iter().filter(|c| c.starts_with("sysctl ")).count();
    assert_eq!(
        (calls.len(), batches, ip_batches, sysctls),
        (10, 6, 2, 0),
        "mutating calls:\n{}",
        calls.join("\n")
    );
    // The checker below sees the effect of every call of a full apply.
    let applied = snapshot(&t.b);
    for c in &commands {
        assert!(
            effect_visible(c, &applied),
            "the snapshot does not show `{c}`:\n{applied}"
        );
    }
    rollback_ok(&t.b, &t.state(&t.b));
    let after = snapshot(&t.b);
    assert_same_state(&before, &after, "after the counting run");
    for c in &commands {
        assert!(
            !effect_visible(c, &after),
            "`{c}` still shows after rollback"
        );
    }
    Some((t, w, before, calls.len()))
}

/// Kill dscproute at mutating call k (after or before the real command),
/// then: status says interrupted, apply is refused, rollback restores.
fn crash_and_recover(t: &Topology, w: &Wrappers, before: &str, mode: Mode, k: usize) {
    let state = t.state(&t.b);
    let p = profile("gateway.toml");
    w.reset();
    let out = dscproute_with(
        &t.b,
        &state,
        &w.env(mode, k),
        &["apply", "--profile", &p, "--yes"],
    );
    let ctx = format!("{mode:?} at mutating call {k}");
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{}",
        show(&format!("{ctx}: apply must die"), &out)
    );
    let calls = w.calls();
    assert_eq!(calls.len(), k, "{ctx}: calls made:\n{}", calls.join("\n"));
    if mode == Mode::KillAfter {
        assert_eq!(
            w.real_rc().as_deref(),
            Some("0"),
            "{ctx}: the real {} failed",
            calls[k - 1]
        );
    }
    let crashed = snapshot(&t.b);
    assert_ne!(crashed, before, "{ctx}: the crash left no change to undo");
    // Killed after the real command: its effect (all of a batch) is there
    // for rollback to undo. Killed before: none of it happened.
    for c in w.commands_of(k, &calls[k - 1]) {
        assert_eq!(
            effect_visible(&c, &crashed),
            mode == Mode::KillAfter,
            "{ctx}: effect of `{c}` (call `{}`) in the state left by the crash:\n{crashed}",
            calls[k - 1]
        );
    }
    t.assert_host_etc_untouched();

    let status = dscproute_expect(&t.b, &state, &["status"], 0);
    assert!(
        stdout(&status).contains("interrupted"),
        "{}",
        show(&ctx, &status)
    );
    assert_eq!(
        status_json(&t.b, &state)["transaction"]["state"],
        "running",
        "{ctx}"
    );

    let again = dscproute_expect(&t.b, &state, &["apply", "--profile", &p, "--yes"], 4);
    assert!(
        stderr(&again).contains("interrupted"),
        "{}",
        show(&ctx, &again)
    );

    rollback_ok(&t.b, &state);
    assert_same_state(before, &snapshot(&t.b), &format!("{ctx}, after rollback"));
    t.assert_host_etc_untouched();
}

#[test]
fn crash_after_odd_mutating_calls_is_rolled_back_exactly() {
    let Some((t, w, before, n)) =
        crash_lab("crash_after_odd_mutating_calls_is_rolled_back_exactly")
    else {
        return;
    };
    for k in (1..=n).step_by(2) {
        crash_and_recover(&t, &w, &before, Mode::KillAfter, k);
    }
}

#[test]
fn crash_after_even_mutating_calls_is_rolled_back_exactly() {
    let Some((t, w, before, n)) =
        crash_lab("crash_after_even_mutating_calls_is_rolled_back_exactly")
    else {
        return;
    };
    for k in (2..=n).step_by(2) {
        crash_and_recover(&t, &w, &before, Mode::KillAfter, k);
    }
}

#[test]
fn crash_before_a_mutating_call_is_rolled_back_exactly() {
    let Some((t, w, before, n)) = crash_lab("crash_before_a_mutating_call_is_rolled_back_exactly")
    else {
        return;
    };
    for k in [1, 2, n / 2, n - 1, n] {
        crash_and_recover(&t, &w, &before, Mode::KillBefore, k);
    }
}

/// The index of the first call of a full apply that contains `needle`
/// (and that call's commands).
fn w_calls_first(t: &Topology, w: &Wrappers, needle: &str) -> (usize, Vec<String>) {
    w.reset();
    let p = profile("gateway.toml");
    let out = dscproute_with(
        &t.b,
        &t.state(&t.b),
        &w.env(Mode::Count, 0),
        &["apply", "--profile", &p, "--yes"],
    );
    assert!(out.status.success(), "{}", show("counting apply", &out));
    let calls = w.calls();
    let i = calls
        .iter()
        .position(|c| c.contains(needle))
        .unwrap_or_else(|| panic!("no call with {needle:?}: {calls:#?}"));
    let commands = w.commands_of(i + 1, &calls[i]);
    rollback_ok(&t.b, &t.state(&t.b));
    (i, commands)
}

/// A command failing half-way: apply exits 1 naming the command and its
/// message, the engine has undone the completed steps, and there is nothing
/// left to roll back.
#[test]
fn a_failing_step_is_undone_by_the_engine() {
    let Some((t, w, before, n)) = crash_lab("a_failing_step_is_undone_by_the_engine") else {
        return;
    };
    let state = t.state(&t.b);
    let p = profile("gateway.toml");
    // First, second, middle and last call, and the first batch of each
    // kind: the wrapper refuses an iptables-restore batch blaming its last
    // line, as iptables-restore does, and nothing of the batch may stay; it
    // fails an `ip -batch` at its last line after running the others.
    let first_batch = 1 + w_calls_first(&t, &w, "-restore ").0;
    let first_ip_batch = 1 + w_calls_first(&t, &w, "ip -4 -batch -").0;
    let mut ks = vec![1, 2, n / 2, n, first_batch, first_ip_batch];
    ks.sort_unstable();
    ks.dedup();
    for k in ks {
        w.reset();
        let out = dscproute_with(
            &t.b,
            &state,
            &w.env(Mode::Fail, k),
            &["apply", "--profile", &p, "--yes"],
        );
        let ctx = format!("failure at mutating call {k}");
        assert_eq!(out.status.code(), Some(1), "{}", show(&ctx, &out));
        let calls = w.calls();
        let call = calls
            .get(k - 1)
            .unwrap_or_else(|| panic!("{ctx}: only {calls:?}"));
        // A refused batch is reported as the step of the line it blamed.
        let failed = w.commands_of(k, call).pop().expect("a command");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("apply failed at `{failed}`"))
                && err.contains(&format!(
                    "lab wrapper: injected failure of mutating call {k}"
                ))
                && err.contains("the completed steps were undone"),
            "{}",
            show(&ctx, &out)
        );
        // Undo ran through the same wrappers (batched as in apply, except
        // around chain deletions that also drop an empty table).
        assert!(
            k == 1 || calls.len() > k,
            "{ctx}: undo calls missing:\n{}",
            calls.join("\n")
        );
        assert_same_state(&before, &snapshot(&t.b), &ctx);
        t.assert_host_etc_untouched();
        assert_eq!(
            status_json(&t.b, &state)["transaction"]["state"],
            "failed",
            "{ctx}"
        );
        let rb = dscproute_expect(&t.b, &state, &["rollback", "--yes"], 0);
        assert!(
            stdout(&rb).contains("nothing to roll back"),
            "{}",
            show(&ctx, &rb)
        );
    }
}

/// `ip -batch` is not atomic: failing at its second line, the first took
/// effect. Apply names the failed line's command and its line, undoes the
/// first line's step on its own, and the host ends as it began.
#[test]
fn an_ip_batch_failing_at_a_line_is_undone_up_to_that_line() {
    let Some((t, w, before, _)) =
        crash_lab("an_ip_batch_failing_at_a_line_is_undone_up_to_that_line")
    else {
        return;
    };
    let state = t.state(&t.b);
    let p = profile("gateway.toml");
    let (i, commands) = w_calls_first(&t, &w, "ip -4 -batch -");
    assert!(commands.len() > 2, "a short batch: {commands:?}");
    let k = i + 1;
    w.reset();
    let out = dscproute_with(
        &t.b,
        &state,
        &w.env_line(Mode::Fail, k, 2),
        &["apply", "--profile", &p, "--yes"],
    );
    let ctx = format!("failure at line 2 of mutating call {k}");
    assert_eq!(out.status.code(), Some(1), "{}", show(&ctx, &out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("apply failed at `{}`", commands[1]))
            && err.contains("line 2 of `ip -4 -batch -`")
            && err.contains(&format!(
                "lab wrapper: injected failure of mutating call {k}"
            ))
            && err.contains("the completed steps were undone"),
        "{}",
        show(&ctx, &out)
    );
    // Only line 1 ran: its undo runs alone, nothing after the batch started.
    let calls = w.calls();
    let undo_first = commands[0].replacen(" add ", " del ", 1);
    assert_eq!(
        calls[k..].first(),
        Some(&undo_first),
        "{ctx}: calls:\n{}",
        calls.join("\n")
    );
    assert_same_state(&before, &snapshot(&t.b), &ctx);
    t.assert_host_etc_untouched();
    let rb = dscproute_expect(&t.b, &state, &["rollback", "--yes"], 0);
    assert!(
        stdout(&rb).contains("nothing to roll back"),
        "{}",
        show(&ctx, &rb)
    );
}

// ---------------------------------------------------------------------------
// 8. Commit-confirmed.

/// Seconds given to `apply --confirm`: long enough that the check "the
/// change is in place right after apply" cannot race the timer on a busy
/// machine (deadlines have whole-second resolution and the debug-build apply
/// itself takes about a second), short enough to keep the tests quick.
const CONFIRM_SECS: &str = "5";

fn now_unix() -> u64 {
    std::time::UNIX_EPOCH.elapsed().unwrap().as_secs()
}

/// `apply --confirm CONFIRM_SECS --json` on B; returns the deadline (unix seconds).
fn apply_with_confirm(t: &Topology) -> u64 {
    let out = dscproute_expect(
        &t.b,
        &t.state(&t.b),
        &[
            "apply",
            "--profile",
            &profile("gateway.toml"),
            "--yes",
            "--confirm",
            CONFIRM_SECS,
            "--json",
        ],
        0,
    );
    let v = json(&out);
    assert_eq!(v["status"], "pending_confirm", "{v:#}");
    v["confirm_deadline_unix"].as_u64().expect("deadline")
}

fn timer_log(t: &Topology) -> String {
    std::fs::read_to_string(t.state(&t.b).join("timer.log")).unwrap_or_default()
}

fn assert_applied(t: &Topology, ctx: &str) {
    let s = snapshot(&t.b);
    assert!(
        s.contains("DSCPROUTE-ROUTE") && s.contains("net.ipv4.ip_forward = 1"),
        "{ctx}: the change is not in place (now {}):\n{s}\ntimer log:\n{}",
        now_unix(),
        timer_log(t)
    );
}

#[test]
fn unconfirmed_apply_is_rolled_back_by_the_timer() {
    let Some(t) = lab("unconfirmed_apply_is_rolled_back_by_the_timer", &[]) else {
        return;
    };
    let before = snapshot(&t.b);
    let deadline = apply_with_confirm(&t);
    assert_applied(&t, "right after apply --confirm");
    let status = dscproute_expect(&t.b, &t.state(&t.b), &["status"], 0);
    assert!(
        stdout(&status).contains("awaiting confirmation"),
        "{}",
        show("status", &status)
    );
    if let Err(last) = wait_for_state(&t.b, &before, Duration::from_secs(20)) {
        assert_same_state(
            &before,
            &last,
            &format!("20 s after --confirm, timer log:\n{}", timer_log(&t)),
        );
    }
    // The timer logs its verdict just after the last undo: wait for it.
    poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
        timer_log(&t).contains("not confirmed in time: rolled back")
    });
    let log = timer_log(&t);
    assert!(log.contains("armed for"), "{log}");
    // Log lines start with the unix time: the rollback waited for the deadline.
    let rolled_back_at: u64 = log
        .lines()
        .find(|l| l.ends_with("not confirmed in time: rolled back"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no rollback in the timer log:\n{log}"));
    assert!(
        rolled_back_at >= deadline,
        "rolled back before the deadline {deadline}:\n{log}"
    );
    let status = dscproute_expect(&t.b, &t.state(&t.b), &["status"], 0);
    assert!(
        stdout(&status).contains("rolled back"),
        "{}",
        show("status", &status)
    );
    t.assert_host_etc_untouched();
}

/// The apply runs in a pseudo-terminal (util-linux `script`) in its own
/// session; right after it reports, the terminal's owner and its session
/// are killed (SIGHUP, then SIGKILL): the timer still rolls back.
#[test]
fn unconfirmed_apply_is_rolled_back_after_the_terminal_dies() {
    let Some(t) = lab(
        "unconfirmed_apply_is_rolled_back_after_the_terminal_dies",
        &["script"],
    ) else {
        return;
    };
    let before = snapshot(&t.b);
    let inner = dscproute_command(
        &t.b,
        &t.state(&t.b),
        &[],
        &[
            "apply",
            "--profile",
            &profile("gateway.toml"),
            "--yes",
            "--confirm",
            CONFIRM_SECS,
        ],
    );
    let line = std::iter::once(inner.get_program())
        .chain(inner.get_args())
        .map(|a| format!("'{}'", a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qfec", &line, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: setsid is async-signal-safe; no other code runs before exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut script = KillOnDrop(cmd.spawn().expect("start script"));
    let out = script.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("Applied ")) {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("apply under script never reported:\n{}", seen.join("\n")),
        }
    }
    let pgid = script.0.id() as libc::pid_t;
    // SAFETY: signalling the process group we created (script is its leader).
    unsafe {
        libc::kill(-pgid, libc::SIGHUP);
        libc::kill(-pgid, libc::SIGKILL);
    }
    let _ = script.0.wait();
    assert_applied(&t, "after the terminal died");
    if let Err(last) = wait_for_state(&t.b, &before, Duration::from_secs(20)) {
        assert_same_state(
            &before,
            &last,
            &format!("after the terminal died, timer log:\n{}", timer_log(&t)),
        );
    }
    // The timer logs its verdict just after the last undo: wait for it.
    assert!(
        poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
            timer_log(&t).contains("not confirmed in time: rolled back")
        }),
        "{}",
        timer_log(&t)
    );
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn confirmed_apply_stays_after_the_deadline() {
    let Some(t) = lab("confirmed_apply_stays_after_the_deadline", &[]) else {
        return;
    };
    let deadline = apply_with_confirm(&t);
    let out = dscproute_expect(&t.b, &t.state(&t.b), &["confirm"], 0);
    assert!(
        stdout(&out).contains("Kept transaction"),
        "{}",
        show("confirm", &out)
    );
    // The timer notices and leaves…
    assert!(
        poll_until(Duration::from_secs(10), Duration::from_millis(200), || {
            timer_log(&t).contains("is no longer pending: leaving")
        }),
        "timer log:\n{}",
        timer_log(&t)
    );
    // …and past the deadline nothing was rolled back.
    let until = std::time::UNIX_EPOCH + Duration::from_secs(deadline + 2);
    poll_until(Duration::from_secs(20), Duration::from_millis(200), || {
        assert_applied(&t, "before the deadline passed");
        std::time::SystemTime::now() >= until
    });
    assert!(std::time::SystemTime::now() >= until);
    assert_applied(&t, "2 s after the deadline of a confirmed apply");
    let status = dscproute_expect(&t.b, &t.state(&t.b), &["status"], 0);
    assert!(
        stdout(&status).contains(": applied ("),
        "{}",
        show("status", &status)
    );
    assert!(!timer_log(&t).contains("rolled back"), "{}", timer_log(&t));
    rollback_ok(&t.b, &t.state(&t.b));
}

// ---------------------------------------------------------------------------
// 9. One change at a time.

#[test]
fn a_second_apply_or_rollback_is_refused_while_one_runs() {
    let Some(t) = lab("a_second_apply_or_rollback_is_refused_while_one_runs", &[]) else {
        return;
    };
    let before = snapshot(&t.b);
    let state = t.state(&t.b);
    let p = profile("gateway.toml");
    let w = Wrappers::install(&t.path("wrap"));
    w.arm_block();
    let mut cmd = dscproute_command(
        &t.b,
        &state,
        &w.env(Mode::Block, 1),
        &["apply", "--profile", &p, "--yes"],
    );
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let first = Blocked::new(cmd.spawn().expect("start the first apply"), &w);
    assert!(
        poll_until(Duration::from_secs(20), Duration::from_millis(20), || w
            .reached()),
        "the first apply never reached its first mutating call"
    );
    for args in [
        &["apply", "--profile", &p, "--yes"][..],
        &["rollback", "--yes"],
    ] {
        let out = dscproute_expect(&t.b, &state, args, 4);
        assert!(
            stderr(&out).contains("another dscproute apply or rollback is running"),
            "{}",
            show(&args.join(" "), &out)
        );
    }
    let status = dscproute_expect(&t.b, &state, &["status"], 0);
    assert!(
        stdout(&status).contains("still running"),
        "{}",
        show("status", &status)
    );

    assert!(
        w.release(Duration::from_secs(10)),
        "could not release the first apply"
    );
    let out = first.finish(Duration::from_secs(30));
    assert!(out.status.success(), "{}", show("the first apply", &out));
    assert!(
        stdout(&out).contains("Applied "),
        "{}",
        show("the first apply", &out)
    );
    rollback_ok(&t.b, &state);
    assert_same_state(&before, &snapshot(&t.b), "after rollback");
}
