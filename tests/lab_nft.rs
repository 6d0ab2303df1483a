//! The nftables backend on real kernels (`--backend nft`), in the namespace
//! lab of tests/common/topology.rs: the group's traffic is split by the
//! rules of our one table `inet dscproute`, the kill switch holds, iptables
//! shows nothing of ours, a foreign nft table with its own mark rules is left
//! alone, rollback leaves `nft list ruleset` exactly as before, and a host
//! moved from iptables to nft loses its DSCPROUTE chains. Needs root.

mod common;

use common::topology::{
    GID, Host, OTHER_GID, TARGET4, TARGET6, Topology, assert_reaches, assert_same_state,
    dscproute_expect, fetch_short, profile, show, snapshot, stdout, topology,
};
use std::path::Path;

fn lab(name: &str) -> Option<Topology> {
    topology(name, &["curl", "setpriv", "nft"])
}

fn ruleset(host: &Host) -> String {
    stdout(&host.exec_ok(&["nft", "list", "ruleset"]))
}

fn apply_nft(host: &Host, state: &Path, profile_name: &str) {
    let p = profile(profile_name);
    let out = dscproute_expect(
        host,
        state,
        &["apply", "--profile", &p, "--yes", "--backend", "nft"],
        0,
    );
    assert!(
        stdout(&out).contains("Applied "),
        "{}",
        show("apply --backend nft", &out)
    );
}

fn rollback(host: &Host, state: &Path) {
    let out = dscproute_expect(host, state, &["rollback", "--yes"], 0);
    assert!(
        stdout(&out).contains("Rolled back"),
        "{}",
        show("rollback", &out)
    );
}

/// Another tool's table on the same hooks, with mark rules of its own.
const FOREIGN: &str = "table inet other {
	chain pre {
		type filter hook prerouting priority mangle + 10; policy accept;
		tcp dport 9999 meta mark set meta mark | 0x00010000
	}
}
";

fn iptables_has_ours(host: &Host) -> bool {
    ["iptables-save", "ip6tables-save"]
        .iter()
        .any(|p| stdout(&host.exec_ok(&[p])).contains("DSCPROUTE"))
}

/// Split by traffic on nft, idempotent, iptables untouched, foreign table
/// untouched, rollback leaves the ruleset and the whole host as before.
#[test]
fn nft_backend_splits_the_group_and_rolls_back_exactly() {
    let Some(t) = lab("nft_backend_splits_the_group_and_rolls_back_exactly") else {
        return;
    };
    let foreign = t.path("other.nft");
    std::fs::write(&foreign, FOREIGN).unwrap();
    t.b.exec_ok(&["nft", "-f", foreign.to_str().unwrap()]);
    let foreign_before = stdout(&t.b.exec_ok(&["nft", "list", "table", "inet", "other"]));
    let (rs_a, rs_b) = (ruleset(&t.a), ruleset(&t.b));
    let (snap_a, snap_b) = (snapshot(&t.a), snapshot(&t.b));

    apply_nft(&t.a, &t.state(&t.a), "marker.toml");
    apply_nft(&t.b, &t.state(&t.b), "gateway.toml");
    for h in [&t.a, &t.b] {
        assert!(!iptables_has_ours(h), "iptables shows ours in {}", h.name());
        let ours = stdout(&h.exec_ok(&["nft", "list", "table", "inet", "dscproute"]));
        assert!(ours.contains("comment \"dscproute\""), "{ours}");
    }
    assert_eq!(
        stdout(&t.b.exec_ok(&["nft", "list", "table", "inet", "other"])),
        foreign_before,
        "the foreign table changed"
    );

    for (gid, addr, want) in [
        (GID, TARGET4, "vpn"),
        (OTHER_GID, TARGET4, "isp"),
        (GID, TARGET6, "vpn"),
        (OTHER_GID, TARGET6, "isp"),
    ] {
        assert_reaches(&t.a, gid, addr, want);
    }

    // The table read back equals the one wanted: nothing to do.
    for (h, p) in [(&t.a, "marker.toml"), (&t.b, "gateway.toml")] {
        let plan = dscproute_expect(
            h,
            &t.state(h),
            &["plan", "--profile", &profile(p), "--backend", "nft"],
            0,
        );
        assert!(
            stdout(&plan).contains("0 to add, 0 to change"),
            "{}",
            show("plan after apply", &plan)
        );
    }

    rollback(&t.a, &t.state(&t.a));
    rollback(&t.b, &t.state(&t.b));
    assert_eq!(ruleset(&t.a), rs_a, "nft list ruleset on A after rollback");
    assert_eq!(ruleset(&t.b), rs_b, "nft list ruleset on B after rollback");
    assert_same_state(&snap_a, &snapshot(&t.a), "A after rollback");
    assert_same_state(&snap_b, &snapshot(&t.b), "B after rollback");
}

/// With the VPN's routes gone, the group's connections fail (the kill
/// switch is policy rules, the same on both backends); others still go out.
#[test]
fn nft_backend_kill_switch_holds() {
    let Some(t) = lab("nft_backend_kill_switch_holds") else {
        return;
    };
    apply_nft(&t.a, &t.state(&t.a), "marker.toml");
    apply_nft(&t.b, &t.state(&t.b), "gateway.toml");
    assert_reaches(&t.a, GID, TARGET4, "vpn");
    t.b.exec_ok(&["ip", "-4", "route", "del", "default", "table", "100"]);
    t.b.exec_ok(&["ip", "-6", "route", "del", "default", "table", "100"]);
    for addr in [TARGET4, TARGET6] {
        let got = fetch_short(&t.a, GID, addr);
        assert!(
            got.is_err(),
            "group reached {addr} with the VPN down: {got:?}"
        );
        assert_reaches(&t.a, OTHER_GID, addr, "isp");
    }
}

/// A host set up with iptables, applied again with `--backend nft`: the
/// DSCPROUTE chains go, the table takes over, traffic still splits.
#[test]
fn switching_from_iptables_to_nft_removes_our_chains() {
    let Some(t) = lab("switching_from_iptables_to_nft_removes_our_chains") else {
        return;
    };
    for (h, p) in [(&t.a, "marker.toml"), (&t.b, "gateway.toml")] {
        let out = dscproute_expect(
            h,
            &t.state(h),
            &["apply", "--profile", &profile(p), "--yes"],
            0,
        );
        assert!(stdout(&out).contains("Applied "), "{}", show("apply", &out));
        assert!(iptables_has_ours(h));
    }
    apply_nft(&t.a, &t.state(&t.a), "marker.toml");
    apply_nft(&t.b, &t.state(&t.b), "gateway.toml");
    for h in [&t.a, &t.b] {
        assert!(
            !iptables_has_ours(h),
            "DSCPROUTE chains left in {}",
            h.name()
        );
    }
    assert_reaches(&t.a, GID, TARGET4, "vpn");
    assert_reaches(&t.a, OTHER_GID, TARGET4, "isp");
}
