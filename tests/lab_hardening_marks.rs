//! Other rules against our mark (design.md §4.13), in the namespace lab of
//! tests/common/topology.rs: a foreign `MARK --set-mark` with a full mask,
//! or a native nftables `meta mark set`, running after our rule on
//! prerouting rewrites our bits, and an ACCEPT ahead of our jump keeps
//! packets from our chain; either way the group's traffic leaves by the
//! ISP, around the VPN and its kill switch. Plan and apply refuse (exit 3,
//! the rule named, nothing changed); after apply, doctor FAILs naming it.
//! The traffic shows each bypass is real. Needs root; skips visibly
//! otherwise.

mod common;

use common::topology::{
    GID, OTHER_GID, TARGET4, Topology, apply_ok, assert_reaches, dscproute, json, profile, show,
    snapshot, stderr, stdout, topology,
};
use serde_json::Value;

/// What the foreign rule looks like once iptables-save prints it.
const FOREIGN_SAVED: &str =
    "iptables -t mangle -A PREROUTING -i lan0 -j MARK --set-xmark 0x100/0xffffffff";

fn lab(name: &str) -> Option<Topology> {
    topology(name, &["curl", "setpriv"])
}

fn add_foreign_mark(t: &Topology) {
    t.b.exec_ok(&[
        "iptables",
        "-t",
        "mangle",
        "-A",
        "PREROUTING",
        "-i",
        "lan0",
        "-j",
        "MARK",
        "--set-mark",
        "0x100",
    ]);
}

/// `doctor --json` on B: (exit status, the mark-path check).
fn doctor_mark_path(t: &Topology) -> (i32, Value) {
    let out = dscproute(
        &t.b,
        &t.state(&t.b),
        &["doctor", "--profile", &profile("gateway.toml"), "--json"],
    );
    let v = json(&out);
    let check = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "mark-path")
        .unwrap_or_else(|| panic!("no mark-path check: {v:#}"))
        .clone();
    (out.status.code().unwrap_or(-1), check)
}

/// plan and apply on B both exit 3 naming `rule`, and B is unchanged.
fn assert_refused(t: &Topology, rule: &str) {
    let before = snapshot(&t.b);
    let gw = profile("gateway.toml");
    let plan = dscproute(&t.b, &t.state(&t.b), &["plan", "--profile", &gw]);
    assert_eq!(plan.status.code(), Some(3), "{}", show("plan", &plan));
    let text = stdout(&plan);
    assert!(
        text.contains("Errors (apply refuses until they are fixed)"),
        "{text}"
    );
    // The preview wraps lines: compare with white space folded.
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(folded.contains(rule), "{rule} not named:\n{text}");
    assert!(folded.contains("kill switch"), "{text}");

    let apply = dscproute(&t.b, &t.state(&t.b), &["apply", "--profile", &gw, "--yes"]);
    assert_eq!(apply.status.code(), Some(3), "{}", show("apply", &apply));
    let err = stderr(&apply);
    assert!(
        err.lines()
            .any(|l| l.starts_with(&format!("dscproute: {rule} rewrites mark bits 0xff"))),
        "{err}"
    );
    assert_eq!(snapshot(&t.b), before, "a refused apply changed B");
}

/// The foreign MARK is there before apply: plan and apply refuse.
#[test]
fn a_foreign_full_mask_mark_refuses_plan_and_apply() {
    let Some(t) = lab("a_foreign_full_mask_mark_refuses_plan_and_apply") else {
        return;
    };
    add_foreign_mark(&t);
    assert_refused(&t, FOREIGN_SAVED);
}

/// A native nftables table marking on prerouting after iptables' mangle:
/// refused the same way, named as nft prints it.
#[test]
fn a_native_nft_mark_on_prerouting_refuses_plan_and_apply() {
    let Some(t) = lab("a_native_nft_mark_on_prerouting_refuses_plan_and_apply") else {
        return;
    };
    t.b.exec_ok(&["nft", "add", "table", "ip", "foreign"]);
    t.b.exec_ok(&[
        "nft",
        "add",
        "chain",
        "ip",
        "foreign",
        "pre",
        "{",
        "type",
        "filter",
        "hook",
        "prerouting",
        "priority",
        "filter",
        ";",
        "}",
    ]);
    t.b.exec_ok(&[
        "nft", "add", "rule", "ip", "foreign", "pre", "meta", "mark", "set", "0x100",
    ]);
    assert_refused(
        &t,
        "nft table ip foreign chain pre: meta mark set 0x00000100",
    );
}

/// Added after apply: the group's traffic now reaches the ISP (the bypass
/// is real), and doctor FAILs mark-path naming the rule.
#[test]
fn a_foreign_mark_added_after_apply_fails_doctor() {
    let Some(t) = lab("a_foreign_mark_added_after_apply_fails_doctor") else {
        return;
    };
    apply_ok(&t.a, &t.state(&t.a), "marker.toml");
    apply_ok(&t.b, &t.state(&t.b), "gateway.toml");
    assert_reaches(&t.a, GID, TARGET4, "vpn");
    let (_, check) = doctor_mark_path(&t);
    assert_eq!(check["status"], "pass", "{check:#}");

    add_foreign_mark(&t);
    assert_reaches(&t.a, GID, TARGET4, "isp");
    let (code, check) = doctor_mark_path(&t);
    assert_eq!(code, 1);
    assert_eq!(check["status"], "fail", "{check:#}");
    let detail = check["detail"].as_str().unwrap();
    assert!(detail.starts_with(FOREIGN_SAVED), "{detail}");
    assert!(
        check["fix"]
            .as_str()
            .unwrap()
            .contains("--set-xmark V/0xffffff00"),
        "{check:#}"
    );
}

/// An ACCEPT inserted ahead of our jump: the group's packets never reach
/// our chain and leave by the ISP; doctor FAILs mark-path naming it.
#[test]
fn an_accept_ahead_of_our_jump_fails_doctor() {
    let Some(t) = lab("an_accept_ahead_of_our_jump_fails_doctor") else {
        return;
    };
    apply_ok(&t.a, &t.state(&t.a), "marker.toml");
    apply_ok(&t.b, &t.state(&t.b), "gateway.toml");
    assert_reaches(&t.a, GID, TARGET4, "vpn");
    t.b.exec_ok(&[
        "iptables",
        "-t",
        "mangle",
        "-I",
        "PREROUTING",
        "1",
        "-i",
        "lan0",
        "-j",
        "ACCEPT",
    ]);
    assert_reaches(&t.a, GID, TARGET4, "isp");
    assert_reaches(&t.a, OTHER_GID, TARGET4, "isp");
    let (code, check) = doctor_mark_path(&t);
    assert_eq!(code, 1);
    assert_eq!(check["status"], "fail", "{check:#}");
    let detail = check["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "iptables -t mangle -A PREROUTING -i lan0 -j ACCEPT comes before dscproute's jump"
        ),
        "{detail}"
    );
}
