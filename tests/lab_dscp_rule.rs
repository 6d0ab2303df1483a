//! `match = "dscp-rule"` on real kernels: gateway B routes DSCP 7 with `ip
//! rule … dscp 7` (no firewall mark), client A marks as usual. Split routing
//! and the kill switch are proven by traffic (servers' logs and tcpdump),
//! rollback by state snapshots. With iproute2 6.1's `ip` first on PATH (the
//! directory `.ci/run` exports as DSCPROUTE_LAB_OLD_IP_DIR) plan and apply
//! refuse in one line and change nothing. Needs root, Linux ≥ 6.12 and
//! iproute2 ≥ 6.13 on PATH; skips visibly otherwise (fails under
//! DSCPROUTE_LAB=required).

mod common;

use common::topology::{
    GID, LAN2_4, OTHER_GID, SPARE_PORTS, TARGET4, TARGET6, TUNNEL_B4, TUNNEL_B6, Topology,
    UPLINK_B4, UPLINK_B6, apply_ok, assert_group_blocked, assert_reaches, assert_same_state, curl,
    curl_from_ports, dscproute_expect, dscproute_with, json, profile, rollback_last_ok,
    rollback_ok, rule_packets, show, snapshot, status_json, stderr, stdout, topology,
};
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

const PROFILE: &str = "gateway-dscp-rule.toml";
/// Where `.ci/run` puts Debian 12's `ip` (iproute2 6.1).
const OLD_IP_DIR: &str = "DSCPROUTE_LAB_OLD_IP_DIR";

fn required() -> bool {
    std::env::var("DSCPROUTE_LAB").is_ok_and(|v| v == "required")
}

/// Skip visibly (fail when the lab is required) with `reason`.
fn skip(test: &str, reason: &str) -> Option<Topology> {
    assert!(
        !required(),
        "lab test {test} cannot run: {reason} (DSCPROUTE_LAB=required)"
    );
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP lab test {test}: {reason}");
    None
}

/// "6.15.0" / "6.18.44-x" -> (6, 15) / (6, 18).
fn major_minor(s: &str) -> Option<(u32, u32)> {
    let mut p = s.split(['.', '-']);
    Some((p.next()?.parse().ok()?, p.next()?.parse().ok()?))
}

fn first_line(argv: &[&str]) -> String {
    Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
        .unwrap_or_default()
}

/// The lab, when this host's kernel and `ip` know the DSCP rule selector.
fn lab(name: &str) -> Option<Topology> {
    let kernel = first_line(&["uname", "-r"]);
    if major_minor(&kernel).is_none_or(|v| v < (6, 12)) {
        return skip(
            name,
            &format!("Linux {kernel} has no `ip rule dscp` (needs ≥ 6.12)"),
        );
    }
    let banner = first_line(&["ip", "-V"]);
    let version = banner
        .split_once("iproute2-")
        .map(|(_, v)| v.split([',', ' ']).next().unwrap_or(""))
        .unwrap_or("");
    if major_minor(version).is_none_or(|v| v < (6, 13)) {
        return skip(
            name,
            &format!("`ip` is {banner:?}, needs iproute2 ≥ 6.13 (bookworm-backports)"),
        );
    }
    topology(name, &["tcpdump", "curl", "setpriv"])
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn apply_both_hosts(t: &Topology) {
    apply_ok(&t.a, &t.state(&t.a), "marker.toml");
    apply_ok(&t.b, &t.state(&t.b), PROFILE);
}

/// B's policy rules select DSCP 7 directly, and nothing in its firewall
/// marks packets: the routing path carries no mark.
fn assert_no_mark_on_b(t: &Topology) {
    for fam in ["-4", "-6"] {
        let rules = stdout(&t.b.exec_ok(&["ip", fam, "rule"]));
        for want in [
            "9999:\tfrom all lookup main suppress_prefixlength 0 proto 213 dscp 7",
            "10000:\tfrom all lookup vpn proto 213 dscp 7",
            "10001:\tfrom all unreachable proto 213 dscp 7",
        ] {
            assert!(
                rules.contains(want),
                "ip {fam} rule lacks {want:?}:\n{rules}"
            );
        }
        assert!(!rules.contains("fwmark"), "ip {fam} rule:\n{rules}");
    }
    for tool in ["iptables-save", "ip6tables-save"] {
        let save = stdout(&t.b.exec_ok(&[tool]));
        for gone in ["MARK", "--mark", "CONNMARK", "DSCPROUTE-ROUTE"] {
            assert!(!save.contains(gone), "{tool} on B has {gone}:\n{save}");
        }
        assert!(
            save.contains("-A DSCPROUTE-NAT -j MASQUERADE"),
            "{tool}:\n{save}"
        );
    }
}

/// Marker on A, dscp-rule gateway on B: the group's IPv4 and IPv6 reach
/// "vpn" (masqueraded to B's tunnel address), everybody else "isp", the
/// group's traffic to the second LAN stays local, and a 4 MB download
/// through the VPN completes (every packet of the connection carries the
/// DSCP, so none strays). A second apply has nothing to do (the rules as
/// `ip` prints them are recognised); rollback restores both hosts exactly.
#[test]
fn dscp_rule_gateway_splits_by_dscp_and_rolls_back_exactly() {
    let name = "dscp_rule_gateway_splits_by_dscp_and_rolls_back_exactly";
    let Some(t) = lab(name) else {
        return;
    };
    let (before_a, before_b) = (snapshot(&t.a), snapshot(&t.b));
    let plan = dscproute_expect(
        &t.b,
        &t.state(&t.b),
        &["plan", "--profile", &profile(PROFILE)],
        0,
    );
    assert!(
        stdout(&plan).contains("routes on the DSCP itself"),
        "{}",
        show("the preview explains the mode", &plan)
    );

    apply_both_hosts(&t);
    assert_no_mark_on_b(&t);
    for (gid, addr, want) in [
        (GID, TARGET4, "vpn"),
        (OTHER_GID, TARGET4, "isp"),
        (GID, TARGET6, "vpn"),
        (OTHER_GID, TARGET6, "isp"),
        (GID, LAN2_4, "lan2"),
    ] {
        assert_reaches(&t.a, gid, addr, want);
    }
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
    assert_eq!(isp_hits.len(), 2, "{isp_hits:?}");
    assert!(isp_hits.iter().all(|h| !h.is_group()), "{isp_hits:?}");

    let out = curl(
        &t.a,
        GID,
        TARGET4,
        "/big/4",
        &[
            "--max-time",
            "30",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
        ],
    );
    assert!(out.status.success(), "{}", show("4 MB download", &out));
    assert_eq!(stdout(&out), (4u64 << 20).to_string(), "bytes downloaded");
    assert!(t.servers.vpn.hits().iter().any(|h| h.path == "/big/4"));

    // Scrub and masquerade still run in netfilter, and counted the traffic.
    let status = status_json(&t.b, &t.state(&t.b));
    for fam in ["IPv4", "IPv6"] {
        assert!(
            rule_packets(&status, fam, "DSCPROUTE-SCRUB", "--set-dscp") > 0,
            "{status:#}"
        );
        assert!(
            rule_packets(&status, fam, "DSCPROUTE-NAT", "MASQUERADE") > 0,
            "{status:#}"
        );
    }

    let again = dscproute_expect(
        &t.b,
        &t.state(&t.b),
        &["apply", "--profile", &profile(PROFILE), "--yes", "--json"],
        0,
    );
    assert_eq!(
        json(&again)["changed"],
        false,
        "{}",
        show("second apply", &again)
    );

    rollback_ok(&t.b, &t.state(&t.b));
    rollback_ok(&t.a, &t.state(&t.a));
    assert_same_state(&before_b, &snapshot(&t.b), "B after rollback");
    assert_same_state(&before_a, &snapshot(&t.a), "A after rollback");
    t.assert_host_etc_untouched();
}

fn assert_reaches_spare(t: &Topology, addr: &str, want: &str) {
    let out = curl_from_ports(&t.a, GID, SPARE_PORTS, addr, "/", &["--max-time", "5"]);
    assert!(
        out.status.success(),
        "{}",
        show(&format!("group -> {addr}"), &out)
    );
    assert_eq!(stdout(&out), want, "group -> {addr}");
}

/// The VPN's routes vanish: the `unreachable … dscp 7` rule right after the
/// lookup refuses the group's new connections for IPv4 and IPv6 instead of
/// letting them fall through to main; none of their packets reach isp.
#[test]
fn dscp_rule_kill_switch_blocks_the_group_when_the_vpn_route_is_gone() {
    let name = "dscp_rule_kill_switch_blocks_the_group_when_the_vpn_route_is_gone";
    let Some(t) = lab(name) else {
        return;
    };
    apply_both_hosts(&t);
    assert_reaches_spare(&t, TARGET4, "vpn");
    assert_reaches_spare(&t, TARGET6, "vpn");
    // doctor asks the kernel with the DS byte (`ip route get … tos 0x1c`)
    // and replays the `dscp` rules without wg0's routes.
    let out = dscproute_with(
        &t.b,
        &t.state(&t.b),
        &[],
        &["doctor", "--profile", &profile(PROFILE), "--json"],
    );
    let v = json(&out);
    for name in ["route-lookup", "kill-switch"] {
        let c = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {v:#}"));
        assert_eq!(c["status"], "pass", "{name}: {c:#}");
    }

    t.b.exec_ok(&["ip", "-4", "route", "del", "default", "table", "100"]);
    t.b.exec_ok(&["ip", "-6", "route", "del", "default", "table", "100"]);
    assert_group_blocked(&t, &t.path("isp-route-gone.pcap"), "VPN routes deleted");
}

/// Debian 12's `ip` (iproute2 6.1) first on PATH: the probe reads its
/// version, plan shows the steps but refuses with one line naming the fix,
/// apply refuses with that same line, and B is exactly as before.
#[test]
fn dscp_rule_with_iproute2_6_1_refuses_in_one_line_and_changes_nothing() {
    let name = "dscp_rule_with_iproute2_6_1_refuses_in_one_line_and_changes_nothing";
    let Some(dir) = std::env::var_os(OLD_IP_DIR) else {
        skip(name, &format!("{OLD_IP_DIR} is not set (.ci/run sets it)"));
        return;
    };
    let old_ip = Path::new(&dir).join("ip");
    if !old_ip.is_file() {
        skip(name, &format!("{} does not exist", old_ip.display()));
        return;
    }
    let Some(t) = topology(name, &[]) else {
        return;
    };
    let path = format!(
        "{}:{}",
        Path::new(&dir).display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [("PATH".to_string(), path)];
    let state = t.state(&t.b);
    let before = snapshot(&t.b);
    let p = profile(PROFILE);
    let want = "match = \"dscp-rule\" needs iproute2 ≥ 6.13 (this host has 6.1.0): install \
                iproute2 from bookworm-backports, or use match = \"mark\"";

    let plan = dscproute_with(&t.b, &state, &env, &["plan", "--profile", &p, "--json"]);
    assert_eq!(plan.status.code(), Some(3), "{}", show("plan", &plan));
    let v = json(&plan);
    assert_eq!(v["errors"], serde_json::json!([want]), "{v:#}");

    let apply = dscproute_with(&t.b, &state, &env, &["apply", "--profile", &p, "--yes"]);
    assert_eq!(apply.status.code(), Some(3), "{}", show("apply", &apply));
    assert_eq!(
        stderr(&apply),
        format!("dscproute: {want}\n"),
        "{}",
        show("apply", &apply)
    );
    assert_same_state(&before, &snapshot(&t.b), "B after the refusals");
    t.assert_host_etc_untouched();
}

/// Both roles on B in dscp-rule mode: B's own group traffic gets DSCP 7 in
/// mangle OUTPUT and is re-routed by the `dscp` rules (no routing mark
/// anywhere): it reaches vpn from the tunnel address, others reach isp from
/// the uplink address, the second LAN stays local; rollback is exact.
#[test]
fn dscp_rule_with_both_roles_reroutes_local_traffic_by_its_dscp() {
    let name = "dscp_rule_with_both_roles_reroutes_local_traffic_by_its_dscp";
    let Some(t) = lab(name) else {
        return;
    };
    let before = snapshot(&t.b);
    apply_ok(&t.b, &t.state(&t.b), "both-dscp-rule.toml");
    for tool in ["iptables-save", "ip6tables-save"] {
        let save = stdout(&t.b.exec_ok(&[tool]));
        assert!(!save.contains("-j MARK"), "{tool} on B:\n{save}");
    }
    assert_reaches(&t.b, GID, TARGET4, "vpn");
    assert_reaches(&t.b, GID, TARGET6, "vpn");
    assert_reaches(&t.b, OTHER_GID, TARGET4, "isp");
    assert_reaches(&t.b, OTHER_GID, TARGET6, "isp");
    assert_reaches(&t.b, GID, LAN2_4, "lan2");
    let mut peers: Vec<IpAddr> = t.servers.vpn.hits().iter().map(|h| h.ip()).collect();
    peers.sort();
    assert_eq!(peers, vec![ip(TUNNEL_B4), ip(TUNNEL_B6)], "vpn's view");
    let mut peers: Vec<IpAddr> = t.servers.isp.hits().iter().map(|h| h.ip()).collect();
    peers.sort();
    assert_eq!(peers, vec![ip(UPLINK_B4), ip(UPLINK_B6)], "isp's view");
    rollback_ok(&t.b, &t.state(&t.b));
    assert_same_state(&before, &snapshot(&t.b), "B after rollback");
    t.assert_host_etc_untouched();
}

/// B switches from the mark to dscp-rule and back on a live setup: each
/// apply removes what the other mode left (read from the real `ip rule`
/// and iptables-save output), so the way back ends exactly where the mark
/// setup was, and the group reaches vpn in each mode. Rolling back the last
/// switch restores the dscp-rule setup exactly.
#[test]
fn switching_between_mark_and_dscp_rule_leaves_nothing_of_the_other() {
    let name = "switching_between_mark_and_dscp_rule_leaves_nothing_of_the_other";
    let Some(t) = lab(name) else {
        return;
    };
    let state = t.state(&t.b);
    apply_ok(&t.a, &t.state(&t.a), "marker.toml");
    let before = snapshot(&t.b);
    apply_ok(&t.b, &state, "gateway.toml");
    let by_mark = snapshot(&t.b);
    assert_reaches_spare(&t, TARGET4, "vpn");

    apply_ok(&t.b, &state, PROFILE);
    let by_dscp = snapshot(&t.b);
    assert_no_mark_on_b(&t);
    assert_reaches_spare(&t, TARGET4, "vpn");
    assert_reaches_spare(&t, TARGET6, "vpn");
    assert_reaches(&t.a, OTHER_GID, TARGET4, "isp");

    apply_ok(&t.b, &state, "gateway.toml");
    assert_same_state(&by_mark, &snapshot(&t.b), "B back on the mark");
    assert_reaches_spare(&t, TARGET4, "vpn");

    rollback_last_ok(&t.b, &state);
    assert_same_state(&by_dscp, &snapshot(&t.b), "B after undoing the switch back");
    assert_reaches_spare(&t, TARGET4, "vpn");
    // One rollback then removes the whole setup: three transactions.
    rollback_ok(&t.b, &state);
    assert_same_state(
        &before,
        &snapshot(&t.b),
        "B after the rollback of the setup",
    );
    t.assert_host_etc_untouched();
}

/// The same mode on the nftables backend: our table holds only the scrub
/// and a masquerade by output interface (no mark anywhere), iptables holds
/// nothing of ours; the group's traffic goes through the VPN, others
/// direct; with the VPN routes gone the group is refused and not one of its
/// packets reaches isp; rollback leaves B and its `nft list ruleset` as
/// before.
#[test]
fn dscp_rule_on_the_nft_backend_splits_blocks_and_rolls_back() {
    let name = "dscp_rule_on_the_nft_backend_splits_blocks_and_rolls_back";
    let Some(t) = lab(name) else {
        return;
    };
    let state = t.state(&t.b);
    apply_ok(&t.a, &t.state(&t.a), "marker.toml");
    let before = snapshot(&t.b);
    let ruleset_before = stdout(&t.b.exec_ok(&["nft", "list", "ruleset"]));
    apply_ok(&t.b, &state, "gateway-dscp-rule-nft.toml");
    let table = stdout(&t.b.exec_ok(&["nft", "list", "table", "inet", "dscproute"]));
    assert!(
        table.contains("masquerade") && table.contains("dscp set"),
        "{table}"
    );
    assert!(
        !table.contains("mark"),
        "no mark in dscp-rule mode:\n{table}"
    );
    for tool in ["iptables-save", "ip6tables-save"] {
        let save = stdout(&t.b.exec_ok(&[tool]));
        assert!(!save.contains("DSCPROUTE"), "{tool} on B:\n{save}");
    }
    assert_reaches_spare(&t, TARGET4, "vpn");
    assert_reaches_spare(&t, TARGET6, "vpn");
    assert_reaches(&t.a, OTHER_GID, TARGET4, "isp");
    let again = dscproute_expect(
        &t.b,
        &state,
        &["plan", "--profile", &profile("gateway-dscp-rule-nft.toml")],
        0,
    );
    assert!(
        stdout(&again).contains("0 to add, 0 to change"),
        "{}",
        show("second plan", &again)
    );

    t.b.exec_ok(&["ip", "-4", "route", "del", "default", "table", "100"]);
    t.b.exec_ok(&["ip", "-6", "route", "del", "default", "table", "100"]);
    assert_group_blocked(
        &t,
        &t.path("isp-nft-route-gone.pcap"),
        "nft: VPN routes deleted",
    );

    rollback_ok(&t.b, &state);
    assert_same_state(&before, &snapshot(&t.b), "B after rollback (nft)");
    assert_eq!(
        stdout(&t.b.exec_ok(&["nft", "list", "ruleset"])),
        ruleset_before,
        "nft ruleset after rollback"
    );
}
