//! The nftables backend on real kernels (`--backend nft`), in the namespace
//! lab of tests/common/topology.rs: the group's traffic is split by the
//! rules of our one table `inet dscproute`, the kill switch holds, iptables
//! shows nothing of ours, a foreign nft table with its own mark rules is left
//! alone, rollback leaves `nft list ruleset` exactly as before, and a host
//! moved from iptables to nft loses its DSCPROUTE chains. The scenarios of
//! lab_apply.rs run here on nft too: strict rp_filter, idempotence, SIGKILL
//! at each mutating call, a failure mid-way, a kept confirmation, the lock.
//! Needs root.

mod common;

use common::topology::{
    Blocked, DSCP7_V4, DSCP7_V6, GID, GROUP_PORTS, Host, LAN2_4, LAN2_6, Mode, OTHER_GID, TARGET4,
    TARGET6, TUNNEL_B4, TUNNEL_B6, Topology, Wrappers, assert_reaches, assert_same_state, count,
    dscproute_command, dscproute_expect, dscproute_with, effect_visible, fetch_short, from_ports,
    poll_until, profile, rollback_last_ok, show, snapshot, status_json, stderr, stdout, topology,
};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

fn lab(name: &str) -> Option<Topology> {
    topology(name, &["curl", "setpriv", "nft", "tcpdump", "ss"])
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

    let tunnel = t.path("vpn-eth0.pcap");
    let mut cap_tunnel = t.vpn.capture("eth0", &tunnel, "tcp port 8080");
    for (gid, addr, want) in [
        (GID, TARGET4, "vpn"),
        (OTHER_GID, TARGET4, "isp"),
        (GID, TARGET6, "vpn"),
        (OTHER_GID, TARGET6, "isp"),
    ] {
        assert_reaches(&t.a, gid, addr, want);
    }
    cap_tunnel.wait_for_packets(2 * 6, Duration::from_secs(10));
    cap_tunnel.stop();
    // At the VPN host the group's packets arrive with the DSCP scrubbed to 0.
    for (fam, dscp7) in [("ip", DSCP7_V4), ("ip6", DSCP7_V6)] {
        let towards = format!("{fam} and tcp dst port 8080");
        assert!(count(&tunnel, &towards) > 0, "{fam}: nothing reached vpn");
        assert_eq!(
            count(&tunnel, &format!("{towards} and {dscp7}")),
            0,
            "{fam}: DSCP 7 reached the VPN host (scrub)"
        );
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

/// Client and gateway on one host (B): its own packets are marked in our
/// `type route` output chain (local packets never pass prerouting) and
/// re-routed; masquerade gives them the tunnel address; the LAN stays local.
#[test]
fn nft_backend_both_roles_on_one_host() {
    let Some(t) = lab("nft_backend_both_roles_on_one_host") else {
        return;
    };
    let (rs, snap) = (ruleset(&t.b), snapshot(&t.b));
    apply_nft(&t.b, &t.state(&t.b), "both.toml");
    assert_reaches(&t.b, GID, TARGET4, "vpn");
    assert_reaches(&t.b, GID, TARGET6, "vpn");
    assert_reaches(&t.b, OTHER_GID, TARGET4, "isp");
    assert_reaches(&t.b, OTHER_GID, TARGET6, "isp");
    assert_reaches(&t.b, GID, LAN2_4, "lan2");
    assert_reaches(&t.b, GID, LAN2_6, "lan2");
    let mut peers: Vec<IpAddr> = t.servers.vpn.hits().iter().map(|h| h.ip()).collect();
    peers.sort();
    let tunnel: Vec<IpAddr> = [TUNNEL_B4, TUNNEL_B6]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
    assert_eq!(peers, tunnel, "vpn's view: masqueraded to the tunnel");
    rollback(&t.b, &t.state(&t.b));
    assert_eq!(ruleset(&t.b), rs);
    assert_same_state(&snap, &snapshot(&t.b), "B after rollback");
}

/// The connection marks carry the whole connection: a program's last ACK
/// or FIN (sent after its socket closed, no owner to match) still leaves A
/// with DSCP 7 and never reaches the ISP.
#[test]
fn nft_backend_keeps_the_end_of_a_group_connection_off_the_isp() {
    let Some(t) = lab("nft_backend_keeps_the_end_of_a_group_connection_off_the_isp") else {
        return;
    };
    apply_nft(&t.a, &t.state(&t.a), "marker.toml");
    apply_nft(&t.b, &t.state(&t.b), "gateway.toml");
    let lan0 = t.path("b-lan0.pcap");
    let uplink = t.path("isp-eth0.pcap");
    let group_tcp = format!("tcp portrange {}-{}", GROUP_PORTS.0, GROUP_PORTS.1);
    let cap_lan0 = t.b.capture("lan0", &lan0, &group_tcp);
    let mut cap_uplink = t.isp.capture("eth0", &uplink, "tcp port 8080");
    assert_reaches(&t.a, GID, TARGET4, "vpn");
    assert_reaches(&t.a, GID, TARGET6, "vpn");
    let range = format!(
        "( sport >= :{} and sport <= :{} )",
        GROUP_PORTS.0, GROUP_PORTS.1
    );
    let mut tw = String::new();
    let closed = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        tw = stdout(&t.a.exec_ok(&["ss", "-Htan", "state", "time-wait", &range]));
        tw.lines().count() >= 2
    });
    assert!(closed, "the group's connections did not close:\n{tw}");
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
    let marked = common::read_capture(&lan0, "");
    assert!(
        !marked.is_empty(),
        "no packet of the group seen on B's LAN side"
    );
    assert!(
        leaked.is_empty() && unmarked.is_empty(),
        "reached the ISP:\n{}\nleft A without DSCP 7:\n{}",
        leaked.join("\n"),
        unmarked.join("\n")
    );
}

/// `status --json` shows our table's rules with counters that moved;
/// `rollback --all` (no journal needed) deletes our table and leaves a
/// foreign one alone.
#[test]
fn nft_backend_status_counts_and_rollback_all_sweeps_only_our_table() {
    let Some(t) = lab("nft_backend_status_counts_and_rollback_all_sweeps_only_our_table") else {
        return;
    };
    let foreign = t.path("other.nft");
    std::fs::write(&foreign, FOREIGN).unwrap();
    t.b.exec_ok(&["nft", "-f", foreign.to_str().unwrap()]);
    let before = ruleset(&t.b);
    apply_nft(&t.a, &t.state(&t.a), "marker.toml");
    apply_nft(&t.b, &t.state(&t.b), "gateway.toml");
    assert_reaches(&t.a, GID, TARGET4, "vpn");
    assert_reaches(&t.a, GID, TARGET6, "vpn");
    let status = status_json(&t.b, &t.state(&t.b));
    let rules = status["netfilter"].as_array().expect("netfilter list");
    let counted = |needle: &str| {
        rules
            .iter()
            .filter(|r| {
                r["family"] == "inet"
                    && r["chain"] == "prerouting"
                    && r["spec"].as_str().is_some_and(|s| s.contains(needle))
            })
            .map(|r| r["packets"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    for needle in ["ip dscp 0x07", "ip6 dscp 0x07"] {
        let n = counted(needle);
        assert!(n.len() == 1 && n[0] > 0, "{needle}: {n:?} in {status:#}");
    }
    let text = stdout(&dscproute_expect(&t.b, &t.state(&t.b), &["status"], 0));
    assert!(text.contains("inet dscproute prerouting"), "{text}");

    dscproute_expect(&t.b, &t.state(&t.b), &["rollback", "--all", "--yes"], 0);
    assert_eq!(ruleset(&t.b), before, "rollback --all on B");
}

/// Back from nft to iptables: the table goes, the chains come, traffic
/// still splits.
#[test]
fn switching_from_nft_to_iptables_removes_our_table() {
    let Some(t) = lab("switching_from_nft_to_iptables_removes_our_table") else {
        return;
    };
    apply_nft(&t.a, &t.state(&t.a), "marker.toml");
    apply_nft(&t.b, &t.state(&t.b), "gateway.toml");
    for (h, p) in [(&t.a, "marker.toml"), (&t.b, "gateway.toml")] {
        let out = dscproute_expect(
            h,
            &t.state(h),
            &[
                "apply",
                "--profile",
                &profile(p),
                "--yes",
                "--backend",
                "iptables",
            ],
            0,
        );
        assert!(stdout(&out).contains("Applied "), "{}", show("apply", &out));
        assert!(iptables_has_ours(h));
        assert!(
            !ruleset(h).contains("table inet dscproute"),
            "our table left in {}",
            h.name()
        );
    }
    assert_reaches(&t.a, GID, TARGET4, "vpn");
    assert_reaches(&t.a, OTHER_GID, TARGET4, "isp");
}

/// `plan --script --backend nft` run by sh on a host without dscproute:
/// the heredoc loads our table, traffic splits, `undo` removes it.
#[test]
fn the_nft_script_applies_and_undoes() {
    let Some(t) = lab("the_nft_script_applies_and_undoes") else {
        return;
    };
    let (rs, snap) = (ruleset(&t.b), snapshot(&t.b));
    let out = dscproute_expect(
        &t.b,
        &t.state(&t.b),
        &[
            "plan",
            "--profile",
            &profile("gateway.toml"),
            "--backend",
            "nft",
            "--script",
        ],
        0,
    );
    let script = t.path("gateway.sh");
    std::fs::write(&script, &out.stdout).unwrap();
    apply_nft(&t.a, &t.state(&t.a), "marker.toml");
    let s = script.to_str().unwrap();
    t.b.exec_ok(&["sh", s, "apply"]);
    assert!(ruleset(&t.b).contains("table inet dscproute"));
    assert_reaches(&t.a, GID, TARGET4, "vpn");
    assert_reaches(&t.a, OTHER_GID, TARGET4, "isp");
    t.b.exec_ok(&["sh", s, "undo"]);
    assert_eq!(ruleset(&t.b), rs);
    assert_same_state(&snap, &snapshot(&t.b), "B after the script's undo");
}

/// An `nft` first on dscproute's PATH that, at the `nft -f -` transaction,
/// fails (`fail`), kills dscproute before running it (`kill-before`) or
/// right after it succeeded (`kill-after`), or first creates an empty
/// `table inet dscproute` itself (`race`: someone else's table appearing
/// between the plan and the transaction); everything else passes through.
fn nft_wrapper(t: &Topology) -> std::path::PathBuf {
    let dir = t.path("nft-wrap");
    std::fs::create_dir_all(&dir).unwrap();
    let real = which::which("nft").expect("nft");
    let script = format!(
        r#"#!/bin/sh
real='{}'
if [ "$1 $2" = "-f -" ]; then
  case "$NFT_WRAP" in
    fail) cat > /dev/null; echo "lab wrapper: injected nft failure" >&2; exit 1 ;;
    kill-before) kill -9 "$PPID"; exit 137 ;;
    kill-after) "$real" "$@"; rc=$?; kill -9 "$PPID"; exit "$rc" ;;
    race) "$real" add table inet dscproute || exit 99 ;;
  esac
fi
exec "$real" "$@"
"#,
        real.display()
    );
    let path = dir.join("nft");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

fn wrap_env(dir: &Path, mode: &str) -> Vec<(String, String)> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    vec![
        ("PATH".into(), format!("{}:{path}", dir.display())),
        ("NFT_WRAP".into(), mode.into()),
    ]
}

/// The nft transaction fails: apply exits 1 naming it, the engine undoes
/// the steps before it (sysctls, routes, policy rules), the host is as
/// before and there is nothing left to roll back.
#[test]
fn a_failing_nft_transaction_is_undone_by_the_engine() {
    let Some(t) = lab("a_failing_nft_transaction_is_undone_by_the_engine") else {
        return;
    };
    let state = t.state(&t.b);
    let (rs, snap) = (ruleset(&t.b), snapshot(&t.b));
    let err = failed_nft_apply(&t, &state, "fail");
    assert!(
        err.contains("nft -f -") && err.contains("injected nft failure"),
        "{err}"
    );
    assert_eq!(ruleset(&t.b), rs);
    assert_same_state(&snap, &snapshot(&t.b), "after the failed apply");
    nothing_to_roll_back(&t.b, &state, "rollback");
}

/// The gateway apply on nft with the `nft` wrapper in `mode`: it must exit 1;
/// its stderr.
fn failed_nft_apply(t: &Topology, state: &Path, mode: &str) -> String {
    let p = profile("gateway.toml");
    let out = dscproute_with(
        &t.b,
        state,
        &wrap_env(&nft_wrapper(t), mode),
        &["apply", "--profile", &p, "--yes", "--backend", "nft"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", show("apply", &out));
    stderr(&out)
}

/// `rollback --yes` finds nothing of ours on record.
fn nothing_to_roll_back(host: &Host, state: &Path, ctx: &str) {
    let rb = dscproute_expect(host, state, &["rollback", "--yes"], 0);
    assert!(
        stdout(&rb).contains("nothing to roll back"),
        "{}",
        show(ctx, &rb)
    );
}

/// A table of that name appearing after the plan saw none: the exclusive
/// create fails as a whole (nothing of ours gets into it), the engine undoes
/// the steps before it, and the other table is left as it was.
#[test]
fn a_table_appearing_after_the_plan_is_not_written_into() {
    let Some(t) = lab("a_table_appearing_after_the_plan_is_not_written_into") else {
        return;
    };
    let state = t.state(&t.b);
    let snap = snapshot(&t.b);
    let err = failed_nft_apply(&t, &state, "race");
    assert!(err.contains("File exists"), "{err}");
    let theirs =
        t.b.ns
            .exec_ok(&["nft", "list", "table", "inet", "dscproute"]);
    let theirs = String::from_utf8_lossy(&theirs.stdout).to_string();
    assert!(
        !theirs.contains("chain") && !theirs.contains("comment"),
        "the other table got our chains:\n{theirs}"
    );
    t.b.ns
        .exec_ok(&["nft", "delete", "table", "inet", "dscproute"]);
    assert_same_state(&snap, &snapshot(&t.b), "after the refused create");
    nothing_to_roll_back(&t.b, &state, "rollback");
}

/// dscproute killed just before or just after the nft transaction: status
/// says interrupted, and rollback restores the host exactly (deleting our
/// table when it got in, finding nothing to delete when it did not).
#[test]
fn a_crash_around_the_nft_transaction_is_rolled_back_exactly() {
    let Some(t) = lab("a_crash_around_the_nft_transaction_is_rolled_back_exactly") else {
        return;
    };
    let dir = nft_wrapper(&t);
    let state = t.state(&t.b);
    let (rs, snap) = (ruleset(&t.b), snapshot(&t.b));
    let p = profile("gateway.toml");
    for mode in ["kill-before", "kill-after"] {
        let out = dscproute_with(
            &t.b,
            &state,
            &wrap_env(&dir, mode),
            &["apply", "--profile", &p, "--yes", "--backend", "nft"],
        );
        assert_eq!(out.status.signal(), Some(9), "{}", show(mode, &out));
        assert_eq!(
            ruleset(&t.b).contains("table inet dscproute"),
            mode == "kill-after",
            "{mode}"
        );
        let status = dscproute_expect(&t.b, &state, &["status"], 0);
        assert!(
            stdout(&status).contains("interrupted"),
            "{}",
            show(mode, &status)
        );
        rollback(&t.b, &state);
        assert_eq!(ruleset(&t.b), rs, "{mode}: nft list ruleset after rollback");
        assert_same_state(&snap, &snapshot(&t.b), &format!("{mode}, after rollback"));
    }
}

/// `apply --confirm 3 --backend nft` never confirmed: the detached timer
/// rolls back on its own, our table included, and the host is as before.
#[test]
fn an_unconfirmed_nft_apply_is_rolled_back_by_the_timer() {
    let Some(t) = lab("an_unconfirmed_nft_apply_is_rolled_back_by_the_timer") else {
        return;
    };
    let (rs, snap) = (ruleset(&t.b), snapshot(&t.b));
    let p = profile("gateway.toml");
    let args = [
        "apply",
        "--profile",
        &p,
        "--yes",
        "--confirm",
        "3",
        "--backend",
        "nft",
    ];
    dscproute_expect(&t.b, &t.state(&t.b), &args, 0);
    assert!(ruleset(&t.b).contains("table inet dscproute"));
    let mut last = String::new();
    let back = poll_until(Duration::from_secs(20), Duration::from_millis(200), || {
        last = snapshot(&t.b);
        last == snap && ruleset(&t.b) == rs
    });
    if !back {
        assert_same_state(&snap, &last, "20 s after --confirm 3");
        assert_eq!(ruleset(&t.b), rs, "20 s after --confirm 3");
    }
    // The timer logs its verdict after the last undo, then exits.
    let log = t.state(&t.b).join("timer.log");
    let done = poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
        std::fs::read_to_string(&log)
            .is_ok_and(|l| l.contains("not confirmed in time: rolled back"))
    });
    assert!(done, "{:?}", std::fs::read_to_string(&log));
}

/// The agent's child, killed and reaped however the test ends.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `agent --backend nft`: it applies our table, puts it back when someone
/// deletes it (no rtnetlink event: the drift check), and on SIGTERM exits 0
/// leaving it in place.
#[test]
fn the_agent_keeps_our_nft_table() {
    let Some(t) = lab("the_agent_keeps_our_nft_table") else {
        return;
    };
    apply_nft(&t.a, &t.state(&t.a), "marker.toml");
    let p = profile("gateway.toml");
    let args = [
        "agent",
        "--profile",
        &p,
        "--backend",
        "nft",
        "--drift-check",
        "1",
    ];
    let child = dscproute_command(&t.b, &t.state(&t.b), &[], &args)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the agent");
    let mut agent = Reaped(child);
    let has_table = || ruleset(&t.b).contains("table inet dscproute");
    assert!(
        poll_until(
            Duration::from_secs(20),
            Duration::from_millis(100),
            has_table
        ),
        "the agent did not apply"
    );
    assert_reaches(&t.a, GID, TARGET4, "vpn");
    assert!(!iptables_has_ours(&t.b));
    t.b.exec_ok(&["nft", "delete", "table", "inet", "dscproute"]);
    assert!(
        poll_until(
            Duration::from_secs(10),
            Duration::from_millis(100),
            has_table
        ),
        "the agent did not put our table back"
    );
    assert_reaches(&t.a, GID, TARGET4, "vpn");
    // SAFETY: a signal to our own child, not reaped yet.
    unsafe { libc::kill(agent.0.id() as libc::pid_t, libc::SIGTERM) };
    let mut status = None;
    poll_until(Duration::from_secs(10), Duration::from_millis(20), || {
        status = agent.0.try_wait().expect("wait");
        status.is_some()
    });
    assert_eq!(status.and_then(|s| s.code()), Some(0), "agent exit");
    assert!(has_table(), "SIGTERM leaves the setup in place");
}

/// `doctor --backend nft` on a gateway set up with nft: the table is seen
/// as applied, no check fails, and the counters it samples are the table's.
#[test]
fn doctor_checks_an_nft_gateway() {
    let Some(t) = lab("doctor_checks_an_nft_gateway") else {
        return;
    };
    apply_nft(&t.a, &t.state(&t.a), "marker.toml");
    apply_nft(&t.b, &t.state(&t.b), "gateway.toml");
    assert_reaches(&t.a, GID, TARGET4, "vpn");
    let p = profile("gateway.toml");
    let out = common::topology::dscproute_with(
        &t.b,
        &t.state(&t.b),
        &[],
        &["doctor", "--profile", &p, "--backend", "nft", "--json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("doctor --json");
    let checks = v["checks"].as_array().expect("checks");
    let status = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["status"].as_str().unwrap().to_string())
    };
    let failed: Vec<_> = checks.iter().filter(|c| c["status"] == "fail").collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(status("applied").as_deref(), Some("pass"), "{v:#}");
    let tools = checks.iter().find(|c| c["name"] == "tools").expect("tools");
    assert!(
        tools["detail"].as_str().unwrap().contains("nft"),
        "{tools:#}"
    );
    // Our own table is not "another nftables user of marks".
    assert_eq!(status("nftables").as_deref(), Some("pass"), "{v:#}");
    let counters = checks
        .iter()
        .find(|c| c["name"] == "counters")
        .expect("counters");
    assert!(
        counters["looked_at"]
            .as_str()
            .unwrap()
            .contains("nft list table inet dscproute"),
        "{counters:#}"
    );
}

/// A profile change on nft is one step that replaces the table; rolling it
/// back puts the previous table back exactly (read back from the kernel
/// into the typed model, then written again).
#[test]
fn a_profile_change_replaces_the_table_and_rollback_restores_the_old_one() {
    let Some(t) = lab("a_profile_change_replaces_the_table_and_rollback_restores_the_old_one")
    else {
        return;
    };
    let state = t.state(&t.b);
    apply_nft(&t.b, &state, "gateway.toml");
    let first = ruleset(&t.b);
    assert!(first.contains("masquerade"), "{first}");
    let p = profile("gateway-no-masquerade.toml");
    let plan = dscproute_expect(
        &t.b,
        &state,
        &["plan", "--profile", &p, "--backend", "nft"],
        0,
    );
    assert!(
        stdout(&plan).contains("~ nft -f - <<EOF"),
        "{}",
        show("plan of the change", &plan)
    );
    apply_nft(&t.b, &state, "gateway-no-masquerade.toml");
    let second = ruleset(&t.b);
    assert!(!second.contains("masquerade"), "{second}");
    // The setup holds our table as it is now: status sees no drift.
    let status = dscproute_expect(&t.b, &state, &["status"], 0);
    assert!(
        !stdout(&status).contains("missing or changed"),
        "{}",
        show("status after the change", &status)
    );
    // `--last`: a plain rollback undoes the whole setup, both applies.
    rollback_last_ok(&t.b, &state);
    assert_eq!(ruleset(&t.b), first, "rollback of the change");
    // Applied again, then one rollback: no table left.
    apply_nft(&t.b, &state, "gateway-no-masquerade.toml");
    rollback(&t.b, &state);
    assert!(
        !ruleset(&t.b).contains("table inet dscproute"),
        "{}",
        ruleset(&t.b)
    );
}

// ---------------------------------------------------------------------------
// The scenarios of lab_apply.rs, on the nft backend: strict rp_filter,
// idempotence, a crash at each mutating call, a failure mid-way, a kept
// confirmation and the lock.

/// Everything apply may touch: the snapshot of lab_apply plus the whole nft
/// ruleset (without counters, with handles: a table deleted and loaded again
/// shows new handles, so a silent rewrite is seen).
fn state_of(host: &Host) -> String {
    let nft = stdout(&host.exec_ok(&["nft", "-a", "-s", "list", "ruleset"]));
    format!("{}== nft -a -s list ruleset\n{nft}", snapshot(host))
}

fn gateway_nft_args(p: &str) -> [&str; 6] {
    ["apply", "--profile", p, "--yes", "--backend", "nft"]
}

/// B with all.rp_filter=1 and wg0.rp_filter=1: the nft apply loosens wg0
/// alone (to 2), the group's IPv4 replies get through (B's reverse-path
/// filter drops none), and rollback puts wg0 back to 1: the host and its
/// ruleset as before.
#[test]
fn nft_backend_loosens_strict_rp_filter_on_the_vpn_interface_only() {
    let Some(t) = lab("nft_backend_loosens_strict_rp_filter_on_the_vpn_interface_only") else {
        return;
    };
    t.b.sysctl_w(&[
        "net.ipv4.conf.all.rp_filter=1",
        "net.ipv4.conf.wg0.rp_filter=1",
    ]);
    let (rs, before) = (ruleset(&t.b), state_of(&t.b));
    let plan = dscproute_expect(
        &t.b,
        &t.state(&t.b),
        &[
            "plan",
            "--profile",
            &profile("gateway.toml"),
            "--backend",
            "nft",
        ],
        0,
    );
    assert!(
        stdout(&plan).contains("~ sysctl -q -w net.ipv4.conf.wg0.rp_filter=2   (1 → 2)"),
        "{}",
        show("plan must loosen wg0", &plan)
    );
    apply_nft(&t.a, &t.state(&t.a), "marker.toml");
    apply_nft(&t.b, &t.state(&t.b), "gateway.toml");
    for (key, want) in [
        ("net.ipv4.conf.all.rp_filter", "1"),
        ("net.ipv4.conf.wg0.rp_filter", "2"),
        ("net.ipv4.conf.lan0.rp_filter", "0"),
        ("net.ipv4.conf.up0.rp_filter", "0"),
    ] {
        assert_eq!(t.b.sysctl(key).as_deref(), Some(want), "{key}");
    }
    let drops = t.b.netstat("TcpExt", "IPReversePathFilter");
    assert_reaches(&t.a, GID, TARGET4, "vpn");
    assert_reaches(&t.a, GID, TARGET6, "vpn");
    assert_reaches(&t.a, OTHER_GID, TARGET4, "isp");
    assert_eq!(
        t.b.netstat("TcpExt", "IPReversePathFilter"),
        drops,
        "B's reverse-path filter dropped packets"
    );
    rollback(&t.b, &t.state(&t.b));
    assert_eq!(
        t.b.sysctl("net.ipv4.conf.wg0.rp_filter").as_deref(),
        Some("1")
    );
    assert_eq!(ruleset(&t.b), rs, "nft list ruleset after rollback");
    assert_same_state(&before, &state_of(&t.b), "B after rollback");
}

/// apply; apply again is a no-op (text and `--json`), the host and our
/// table unchanged (same handles: not rewritten); rollback restores the host
/// and the ruleset; a second rollback has nothing to do.
fn nft_apply_twice_then_rollback(host: &Host, state: &Path, profile_name: &str) {
    let p = profile(profile_name);
    let (rs, before) = (ruleset(host), state_of(host));
    let args = ["apply", "--profile", &p, "--yes", "--backend", "nft"];
    let json = |out: &std::process::Output| -> serde_json::Value {
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", show("", out)))
    };
    let first = dscproute_expect(host, state, &[&args[..], &["--json"]].concat(), 0);
    assert_eq!(json(&first)["changed"], true, "{}", show("apply", &first));
    let applied = state_of(host);
    assert!(
        applied.contains("table inet dscproute"),
        "{} after apply:\n{applied}",
        host.name()
    );
    let again = dscproute_expect(host, state, &args, 0);
    assert!(
        stdout(&again).contains("Nothing to do"),
        "{}",
        show("second apply", &again)
    );
    let again = dscproute_expect(host, state, &[&args[..], &["--json"]].concat(), 0);
    assert_eq!(
        json(&again)["changed"],
        false,
        "{}",
        show("apply --json", &again)
    );
    assert_same_state(&applied, &state_of(host), "a no-op apply changed the host");
    let status = dscproute_expect(host, state, &["status"], 0);
    assert!(
        stdout(&status).contains(": applied ("),
        "{}",
        show("status", &status)
    );
    rollback(host, state);
    assert_eq!(ruleset(host), rs, "{}: ruleset after rollback", host.name());
    assert_same_state(&before, &state_of(host), "after rollback");
    let second = dscproute_expect(host, state, &["rollback", "--yes"], 0);
    assert!(
        stdout(&second).contains("nothing to roll back"),
        "{}",
        show("second rollback", &second)
    );
    assert_same_state(&before, &state_of(host), "after a no-op rollback");
}

#[test]
fn a_second_nft_apply_is_a_no_op_on_client_and_gateway() {
    let Some(t) = lab("a_second_nft_apply_is_a_no_op_on_client_and_gateway") else {
        return;
    };
    // Strict rp_filter: the wg0 sysctl is part of the round trip.
    t.b.sysctl_w(&["net.ipv4.conf.all.rp_filter=1"]);
    nft_apply_twice_then_rollback(&t.a, &t.state(&t.a), "marker.toml");
    nft_apply_twice_then_rollback(&t.b, &t.state(&t.b), "gateway.toml");
}

/// B with strict rp_filter (all kinds of steps in the plan), the PATH
/// wrappers (they wrap `nft` too), the state before, and the mutating calls
/// of a full nft-backend gateway apply, counted on a real run that is then
/// rolled back.
fn nft_crash_lab(name: &str) -> Option<(Topology, Wrappers, String, Vec<String>)> {
    let t = lab(name)?;
    t.b.sysctl_w(&["net.ipv4.conf.all.rp_filter=1"]);
    let before = state_of(&t.b);
    let w = Wrappers::install(&t.path("wrap"));
    let p = profile("gateway.toml");
    let out = dscproute_with(
        &t.b,
        &t.state(&t.b),
        &w.env(Mode::Count, 0),
        &gateway_nft_args(&p),
    );
    assert!(out.status.success(), "{}", show("counting apply", &out));
    let calls = w.calls();
    // Counted on the lab's gateway profile: rules and routes in one `ip
    // -batch` per family, all of netfilter in one `nft -f -`; the 3 sysctls
    // are written in-process.
    let kinds = |needle: &str| calls.iter().filter(|c| c.starts_with(needle)).count();
    assert_eq!(
        (
            calls.len(),
            kinds("sysctl "),
            kinds("ip -4 -batch -"),
            kinds("ip -6 -batch -"),
            kinds("nft -f -"),
        ),
        (3, 0, 1, 1, 1),
        "mutating calls:\n{}",
        calls.join("\n")
    );
    let commands: Vec<String> = calls
        .iter()
        .enumerate()
        .flat_map(|(i, c)| w.commands_of(i + 1, c))
        .collect();
    let applied = state_of(&t.b);
    for c in &commands {
        assert!(
            effect_visible(c, &applied),
            "the state does not show `{c}`:\n{applied}"
        );
    }
    rollback(&t.b, &t.state(&t.b));
    let after = state_of(&t.b);
    assert_same_state(&before, &after, "after the counting run");
    for c in &commands {
        assert!(
            !effect_visible(c, &after),
            "`{c}` still shows after rollback"
        );
    }
    Some((t, w, before, calls))
}

/// Kill dscproute at mutating call k of an nft apply (after or before the
/// real command): the effect of call k is there exactly when it ran;
/// status says interrupted, a new apply is refused, rollback restores the
/// host and `nft list ruleset` exactly.
fn nft_crash_and_recover(
    t: &Topology,
    w: &Wrappers,
    before: &str,
    calls: &[String],
    mode: Mode,
    k: usize,
) {
    let state = t.state(&t.b);
    let p = profile("gateway.toml");
    w.reset();
    let out = dscproute_with(&t.b, &state, &w.env(mode, k), &gateway_nft_args(&p));
    let ctx = format!("{mode:?} at mutating call {k} (`{}`)", calls[k - 1]);
    assert_eq!(
        out.status.signal(),
        Some(9),
        "{}",
        show(&format!("{ctx}: apply must die"), &out)
    );
    assert_eq!(w.calls(), calls[..k], "{ctx}: the calls made");
    if mode == Mode::KillAfter {
        assert_eq!(
            w.real_rc().as_deref(),
            Some("0"),
            "{ctx}: the real call failed"
        );
    }
    let crashed = state_of(&t.b);
    assert_ne!(crashed, before, "{ctx}: the crash left no change to undo");
    for c in w.commands_of(k, &calls[k - 1]) {
        assert_eq!(
            effect_visible(&c, &crashed),
            mode == Mode::KillAfter,
            "{ctx}: effect of `{c}` in the state left by the crash:\n{crashed}"
        );
    }
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
    let again = dscproute_expect(&t.b, &state, &gateway_nft_args(&p), 4);
    assert!(
        stderr(&again).contains("interrupted"),
        "{}",
        show(&ctx, &again)
    );
    rollback(&t.b, &state);
    assert_same_state(before, &state_of(&t.b), &format!("{ctx}, after rollback"));
    t.assert_host_etc_untouched();
}

#[test]
fn an_nft_apply_killed_after_each_mutating_call_is_rolled_back_exactly() {
    let Some((t, w, before, calls)) =
        nft_crash_lab("an_nft_apply_killed_after_each_mutating_call_is_rolled_back_exactly")
    else {
        return;
    };
    for k in 1..=calls.len() {
        nft_crash_and_recover(&t, &w, &before, &calls, Mode::KillAfter, k);
    }
}

#[test]
fn an_nft_apply_killed_before_each_mutating_call_is_rolled_back_exactly() {
    let Some((t, w, before, calls)) =
        nft_crash_lab("an_nft_apply_killed_before_each_mutating_call_is_rolled_back_exactly")
    else {
        return;
    };
    for k in 1..=calls.len() {
        nft_crash_and_recover(&t, &w, &before, &calls, Mode::KillBefore, k);
    }
}

/// A failure mid-way through an nft apply: each mutating call failing in
/// turn, and an `ip -batch` failing at its second line after the first took
/// effect. Apply exits 1 naming the failed command, the engine undoes
/// everything (our table included when it got in), the host and the ruleset
/// are as before, and there is nothing left to roll back.
#[test]
fn a_failure_mid_way_through_an_nft_apply_is_undone_by_the_engine() {
    let Some((t, w, before, calls)) =
        nft_crash_lab("a_failure_mid_way_through_an_nft_apply_is_undone_by_the_engine")
    else {
        return;
    };
    let state = t.state(&t.b);
    let p = profile("gateway.toml");
    let batch = 1 + calls
        .iter()
        .position(|c| c == "ip -4 -batch -")
        .expect("an ip -4 batch");
    let mut cases: Vec<(usize, Option<usize>)> = (1..=calls.len()).map(|k| (k, None)).collect();
    cases.push((batch, Some(2)));
    for (k, line) in cases {
        w.reset();
        let env = match line {
            Some(l) => w.env_line(Mode::Fail, k, l),
            None => w.env(Mode::Fail, k),
        };
        let out = dscproute_with(&t.b, &state, &env, &gateway_nft_args(&p));
        let ctx = format!(
            "failure at line {line:?} of mutating call {k} (`{}`)",
            calls[k - 1]
        );
        assert_eq!(out.status.code(), Some(1), "{}", show(&ctx, &out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "lab wrapper: injected failure of mutating call {k}"
            )) && err.contains("the completed steps were undone"),
            "{}",
            show(&ctx, &out)
        );
        if let Some(l) = line {
            assert!(
                err.contains(&format!("line {l} of `ip -4 -batch -`")),
                "{}",
                show(&ctx, &out)
            );
        }
        assert_same_state(&before, &state_of(&t.b), &ctx);
        nothing_to_roll_back(&t.b, &state, &ctx);
    }
}

/// `apply --confirm 8 --backend nft`, then `confirm`: the timer leaves at
/// once (its process is gone, no systemd backstop either), and past the
/// deadline our table and the rest of the setup are still in place.
#[test]
fn a_confirmed_nft_apply_stays_after_the_deadline() {
    let Some(t) = lab("a_confirmed_nft_apply_stays_after_the_deadline") else {
        return;
    };
    let state = t.state(&t.b);
    let p = profile("gateway.toml");
    let args = [&gateway_nft_args(&p)[..], &["--confirm", "8", "--json"]].concat();
    let out = dscproute_expect(&t.b, &state, &args, 0);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("apply --json");
    assert_eq!(v["status"], "pending_confirm", "{v:#}");
    let deadline = v["confirm_deadline_unix"].as_u64().expect("deadline");
    let applied = state_of(&t.b);
    assert!(applied.contains("table inet dscproute"), "{applied}");
    let timer = status_json(&t.b, &state)["timer"].clone();
    assert_eq!(timer["alive"], true, "{timer:#}");
    let pid = timer["pid"].as_u64().expect("timer pid");
    let is_timer = || {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == b"__confirm-timer"))
    };
    assert!(is_timer(), "pid {pid} is not the timer");

    let out = dscproute_expect(&t.b, &state, &["confirm"], 0);
    assert!(
        stdout(&out).contains("Kept transaction"),
        "{}",
        show("confirm", &out)
    );
    let log = || std::fs::read_to_string(state.join("timer.log")).unwrap_or_default();
    assert!(
        poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
            !is_timer() && log().contains("is no longer pending: leaving")
        }),
        "the timer did not leave; its log:\n{}",
        log()
    );
    let status = status_json(&t.b, &state);
    assert!(status.get("timer").is_none(), "{status:#}");
    // Past the deadline, nothing was rolled back.
    let until = std::time::UNIX_EPOCH + Duration::from_secs(deadline + 1);
    poll_until(Duration::from_secs(20), Duration::from_millis(200), || {
        assert_same_state(&applied, &state_of(&t.b), "before the deadline passed");
        std::time::SystemTime::now() >= until
    });
    assert!(std::time::SystemTime::now() >= until);
    assert_same_state(&applied, &state_of(&t.b), "1 s after the deadline");
    let status = dscproute_expect(&t.b, &state, &["status"], 0);
    assert!(
        stdout(&status).contains(": applied ("),
        "{}",
        show("status", &status)
    );
    assert!(!log().contains("rolled back"), "{}", log());
}

/// An nft apply held by the wrappers at its `nft -f -` call (sysctls, rules
/// and routes in place): a second apply and a rollback are refused with exit
/// 4 and change nothing; released, the first apply completes, and rollback
/// restores the host.
#[test]
fn a_second_apply_or_rollback_is_refused_while_an_nft_apply_runs() {
    let Some((t, w, before, calls)) =
        nft_crash_lab("a_second_apply_or_rollback_is_refused_while_an_nft_apply_runs")
    else {
        return;
    };
    let state = t.state(&t.b);
    let p = profile("gateway.toml");
    let k = 1 + calls
        .iter()
        .position(|c| c == "nft -f -")
        .expect("nft -f -");
    w.reset();
    w.arm_block();
    let mut cmd = dscproute_command(&t.b, &state, &w.env(Mode::Block, k), &gateway_nft_args(&p));
    cmd.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let first = Blocked::new(cmd.spawn().expect("start the first apply"), &w);
    assert!(
        poll_until(Duration::from_secs(20), Duration::from_millis(20), || w
            .reached()),
        "the first apply never reached its nft call"
    );
    let held = state_of(&t.b);
    assert!(!held.contains("table inet dscproute"), "{held}");
    assert_ne!(held, before, "nothing ran before the nft call");
    let rb = ["rollback", "--yes"];
    for args in [&gateway_nft_args(&p)[..], &rb] {
        let out = dscproute_expect(&t.b, &state, args, 4);
        assert!(
            stderr(&out).contains("another dscproute apply or rollback is running"),
            "{}",
            show(&args.join(" "), &out)
        );
        assert_same_state(
            &held,
            &state_of(&t.b),
            &format!("after `{}`", args.join(" ")),
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
    assert!(
        out.status.success() && stdout(&out).contains("Applied "),
        "{}",
        show("the first apply", &out)
    );
    assert!(ruleset(&t.b).contains("table inet dscproute"));
    rollback(&t.b, &state);
    assert_same_state(&before, &state_of(&t.b), "after rollback");
}
