//! Client recipes on real kernels, in the namespace lab of
//! tests/common/topology.rs: client A runs a recipe instead of dscproute
//! (the linux-sh script with sh, the nftables file with `nft -f`), gateway
//! B runs `dscproute apply`. The group's traffic must reach the test
//! address through the VPN and everybody else's through the ISP, which
//! happens only when DSCP 7 arrives at B; the recipe's undo must restore A
//! exactly (and, for nftables, its `nft list ruleset`). Needs root; skips
//! visibly otherwise.

mod common;

use common::topology::{
    BIN, GID, Host, OTHER_GID, TARGET4, TARGET6, Topology, apply_ok, assert_reaches,
    assert_same_state, profile, rollback_ok, show, snapshot, stdout, topology,
};
use std::path::PathBuf;
use std::process::Command;

fn lab(name: &str) -> Option<Topology> {
    topology(name, &["curl", "setpriv"])
}

/// The recipe of the lab client profile, saved in the test's temp dir.
fn recipe(t: &Topology, target: &str) -> PathBuf {
    let out = Command::new(BIN)
        .args([
            "client-recipe",
            "--profile",
            &profile("marker.toml"),
            "--for",
            target,
        ])
        .output()
        .expect("run dscproute");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        show(&format!("client-recipe --for {target}"), &out)
    );
    let path = t.path(&format!("client-recipe.{target}"));
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

fn nft_ruleset(h: &Host) -> String {
    stdout(&h.exec_ok(&["nft", "list", "ruleset"]))
}

/// The group's IPv4 and IPv6 traffic reaches "vpn", the others' "isp".
fn assert_group_goes_through_the_vpn(t: &Topology) {
    for (gid, addr, want) in [
        (GID, TARGET4, "vpn"),
        (OTHER_GID, TARGET4, "isp"),
        (GID, TARGET6, "vpn"),
        (OTHER_GID, TARGET6, "isp"),
    ] {
        assert_reaches(&t.a, gid, addr, want);
    }
}

/// Packets counted by the rule of our nft table holding `needle`.
fn nft_packets(h: &Host, needle: &str) -> u64 {
    let table = stdout(&h.exec_ok(&["nft", "list", "table", "inet", "dscproute_client"]));
    let line = table
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no rule with {needle:?} in:\n{table}"));
    let after = line.split("counter packets ").nth(1).expect("a counter");
    after.split(' ').next().unwrap().parse().expect("a number")
}

#[test]
fn linux_sh_recipe_marks_the_group_and_its_undo_restores_the_client() {
    let Some(t) = lab("linux_sh_recipe_marks_the_group_and_its_undo_restores_the_client") else {
        return;
    };
    let (before, before_nft) = (snapshot(&t.a), nft_ruleset(&t.a));
    apply_ok(&t.b, &t.state(&t.b), "gateway.toml");
    // Before the recipe: nothing marked, everybody goes through the ISP.
    assert_reaches(&t.a, GID, TARGET4, "isp");

    let script = recipe(&t, "linux-sh");
    let script = script.to_str().unwrap();
    let state = format!(
        "DSCPROUTE_SCRIPT_STATE={}",
        t.path("script-state").display()
    );
    let out = t.a.exec_ok(&["env", &state, "sh", script, "apply"]);
    assert!(
        stdout(&out).contains("8 step(s) applied"),
        "{}",
        show("sh recipe apply", &out)
    );
    assert_group_goes_through_the_vpn(&t);

    t.a.exec_ok(&["env", &state, "sh", script, "undo"]);
    assert_same_state(
        &before,
        &snapshot(&t.a),
        "A after the linux-sh recipe's undo",
    );
    assert_eq!(
        before_nft,
        nft_ruleset(&t.a),
        "undo left nftables tables behind (the mangle tables iptables-nft created)"
    );
    assert_reaches(&t.a, GID, TARGET4, "isp");
    rollback_ok(&t.b, &t.state(&t.b));
}

#[test]
fn nftables_recipe_marks_the_group_and_its_undo_restores_the_client() {
    let Some(t) = lab("nftables_recipe_marks_the_group_and_its_undo_restores_the_client") else {
        return;
    };
    let (before, before_nft) = (snapshot(&t.a), nft_ruleset(&t.a));
    apply_ok(&t.b, &t.state(&t.b), "gateway.toml");

    let file = recipe(&t, "nftables");
    let file = file.to_str().unwrap();
    t.a.exec_ok(&["nft", "-f", file]);
    let loaded = nft_ruleset(&t.a);
    // Loading it again replaces the table instead of adding a second copy.
    t.a.exec_ok(&["nft", "-f", file]);
    assert_eq!(
        loaded,
        nft_ruleset(&t.a),
        "a second load changed the ruleset"
    );
    assert_eq!(loaded.matches("meta skgid 4242").count(), 1, "{loaded}");

    assert_group_goes_through_the_vpn(&t);
    for needle in ["ip dscp set", "ip6 dscp set"] {
        assert!(
            nft_packets(&t.a, needle) > 0,
            "the rule `{needle}` counted nothing"
        );
    }

    t.a.exec_ok(&["nft", "delete", "table", "inet", "dscproute_client"]);
    assert_eq!(before_nft, nft_ruleset(&t.a), "undo left nftables state");
    assert_same_state(
        &before,
        &snapshot(&t.a),
        "A after the nftables recipe's undo",
    );
    assert_reaches(&t.a, GID, TARGET4, "isp");
    rollback_ok(&t.b, &t.state(&t.b));
}
