//! `dscproute doctor` in the namespace lab of tests/common/topology.rs:
//! it passes on a correctly applied lab, and each broken variant gives exit
//! 1 with a FAIL from the check that names the cause: forwarding off, strict
//! rp_filter kept by the profile, the VPN route gone, the marker not
//! applied, a middle host that bleaches DSCP to 0. Needs root; skips
//! visibly otherwise.

mod common;

use common::shared_dir::SharedDir;
use common::topology::{GID, TARGET4, TARGET6, Topology, apply_ok, dscproute, json, profile, show};
use common::{Netns, veth};
use serde_json::Value;
use std::net::{Ipv4Addr, Ipv6Addr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

const TOOLS: &[&str] = &[
    "iptables",
    "ip6tables",
    "iptables-save",
    "ip6tables-save",
    "nft",
    "sysctl",
    "setpriv",
];

fn lab(name: &str) -> Option<Topology> {
    lab_and_topology(name).map(|(_, t)| t)
}

/// The topology and the lab it was built from (to add namespaces).
fn lab_and_topology(name: &str) -> Option<(common::Lab, Topology)> {
    let lab = common::lab(name, TOOLS)?;
    let t = Topology::build(&lab);
    Some((lab, t))
}

/// Sets the flag when dropped, so a panicking test still stops its sender.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Small UDP packets from sockets of group GID inside `ns` (the thread's
/// fsgid is GID while it creates them: what the owner match tests), to the
/// test addresses every 10 ms, both families, while `f` runs.
fn with_group_traffic<T>(ns: &Netns, f: impl FnOnce() -> T) -> T {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            ns.run(|| {
                // SAFETY: setfsgid changes only the calling thread's fsgid.
                unsafe { libc::setfsgid(GID) };
                let v4 = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("v4 socket");
                let v6 = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).expect("v6 socket");
                // SAFETY: as above.
                unsafe { libc::setfsgid(0) };
                while !stop.load(Ordering::SeqCst) {
                    // Errors (unreachable while something is broken) are fine.
                    let _ = v4.send_to(b"dscproute doctor lab", (TARGET4, 9));
                    let _ = v6.send_to(b"dscproute doctor lab", (TARGET6, 9));
                    thread::sleep(Duration::from_millis(10));
                }
            })
        });
        let _stop = StopOnDrop(&stop);
        f()
    })
}

/// `doctor --profile P --json` in `host`: (exit status, report).
fn doctor(host: &Netns, state: &Path, profile_path: &str) -> (i32, Value) {
    let out = dscproute(
        host,
        state,
        &["doctor", "--profile", profile_path, "--json"],
    );
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 1,
        "{}",
        show("doctor must exit 0 or 1", &out)
    );
    let v = json(&out);
    assert_eq!(v["exit"], code, "{v:#}");
    (code, v)
}

/// The status of each check called `name` (a name may repeat).
fn statuses<'v>(v: &'v Value, name: &str) -> Vec<&'v str> {
    v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["name"] == name)
        .map(|c| c["status"].as_str().unwrap())
        .collect()
}

fn failed(v: &Value) -> Vec<String> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn check<'v>(v: &'v Value, name: &str) -> &'v Value {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {v:#}"))
}

#[track_caller]
fn assert_status(v: &Value, name: &str, want: &str) {
    assert_eq!(statuses(v, name), [want], "check {name}:\n{v:#}");
}

fn apply_both(t: &Topology, gateway_profile: &str) {
    apply_ok(&t.a, &t.state(&t.a), "marker.toml");
    apply_ok(&t.b, &t.state(&t.b), gateway_profile);
}

/// The whole lab applied, the group sending: doctor passes on the gateway
/// and on the client, and the checks that matter say PASS, not just "no FAIL".
#[test]
fn doctor_passes_on_a_correctly_applied_lab() {
    let Some(t) = lab("doctor_passes_on_a_correctly_applied_lab") else {
        return;
    };
    apply_both(&t, "gateway.toml");
    let (code, v) = with_group_traffic(&t.a, || {
        doctor(&t.b, &t.state(&t.b), &profile("gateway.toml"))
    });
    assert_eq!((code, failed(&v)), (0, vec![]), "{v:#}");
    for name in [
        "root",
        "tools",
        "kernel",
        "forwarding",
        "rp_filter",
        "backend",
        "plan",
        "applied",
        "counters",
        "vpn-route",
        "route-lookup",
        "kill-switch",
        "ipv6",
        "dscp-on-wire",
        "scrub",
    ] {
        assert_status(&v, name, "pass");
    }
    assert!(
        check(&v, "dscp-on-wire")["detail"]
            .as_str()
            .unwrap()
            .contains("192.168.50.2"),
        "{v:#}"
    );

    // A process in the group, for the client's group check.
    let mut sleeper =
        t.a.command(&[
            "setpriv",
            "--regid",
            &GID.to_string(),
            "--clear-groups",
            "sleep",
            "60",
        ])
        .spawn()
        .expect("sleep in the group");
    let (code, v) = with_group_traffic(&t.a, || {
        doctor(&t.a, &t.state(&t.a), &profile("marker.toml"))
    });
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!((code, failed(&v)), (0, vec![]), "{v:#}");
    for name in ["applied", "group", "counters", "dscp-on-wire"] {
        assert_status(&v, name, "pass");
    }
    // The text form: one line per check, the summary last.
    let out = dscproute(
        &t.b,
        &t.state(&t.b),
        &["doctor", "--profile", &profile("gateway.toml")],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PASS  forwarding: "), "{text}");
    assert!(
        text.contains("      looked at: net.ipv4.ip_forward"),
        "{text}"
    );
    assert!(
        text.trim_end()
            .lines()
            .last()
            .unwrap()
            .starts_with("Doctor: "),
        "{text}"
    );
}

/// Forwarding switched off after apply: FAIL forwarding (and the forwarded
/// route lookup says why); the rest of the path is still right.
#[test]
fn doctor_fails_when_forwarding_is_off() {
    let Some(t) = lab("doctor_fails_when_forwarding_is_off") else {
        return;
    };
    apply_both(&t, "gateway.toml");
    t.b.sysctl_w(&["net.ipv4.ip_forward=0"]);
    let (code, v) = with_group_traffic(&t.a, || {
        doctor(&t.b, &t.state(&t.b), &profile("gateway.toml"))
    });
    assert_eq!(code, 1, "{v:#}");
    assert_status(&v, "forwarding", "fail");
    let fix = check(&v, "forwarding")["fix"].as_str().unwrap();
    assert!(fix.contains("sysctl -w net.ipv4.ip_forward=1"), "{fix}");
    let lookup = check(&v, "route-lookup")["detail"].as_str().unwrap();
    assert!(lookup.contains("forwarding is off"), "{v:#}");
    for name in [
        "rp_filter",
        "vpn-route",
        "kill-switch",
        "ipv6",
        "dscp-on-wire",
    ] {
        assert_status(&v, name, "pass");
    }
}

/// all.rp_filter = 1 with a profile that keeps it: FAIL rp_filter, which
/// explains max(all, wg0) and points at rp_filter = "loose".
#[test]
fn doctor_fails_on_strict_rp_filter_kept_by_the_profile() {
    let Some(t) = lab("doctor_fails_on_strict_rp_filter_kept_by_the_profile") else {
        return;
    };
    t.b.sysctl_w(&["net.ipv4.conf.all.rp_filter=1"]);
    apply_both(&t, "gateway-keep-rp-filter.toml");
    let (code, v) = with_group_traffic(&t.a, || {
        doctor(
            &t.b,
            &t.state(&t.b),
            &profile("gateway-keep-rp-filter.toml"),
        )
    });
    assert_eq!(code, 1, "{v:#}");
    assert_status(&v, "rp_filter", "fail");
    let c = check(&v, "rp_filter");
    let detail = c["detail"].as_str().unwrap();
    assert!(
        detail.contains("max(all=1, wg0=0) = 1 (strict)"),
        "{detail}"
    );
    assert!(
        c["fix"].as_str().unwrap().contains("rp_filter = \"loose\""),
        "{c:#}"
    );
    for name in [
        "forwarding",
        "applied",
        "vpn-route",
        "route-lookup",
        "kill-switch",
    ] {
        assert_status(&v, name, "pass");
    }
}

/// The VPN's route vanished from table vpn (as a tunnel restart does):
/// FAIL vpn-route; the lookup is refused (the kill switch holds).
#[test]
fn doctor_fails_when_the_vpn_route_is_missing() {
    let Some(t) = lab("doctor_fails_when_the_vpn_route_is_missing") else {
        return;
    };
    apply_both(&t, "gateway.toml");
    t.b.exec_ok(&["ip", "route", "del", "default", "table", "vpn"]);
    let (code, v) = with_group_traffic(&t.a, || {
        doctor(&t.b, &t.state(&t.b), &profile("gateway.toml"))
    });
    assert_eq!(code, 1, "{v:#}");
    assert_status(&v, "vpn-route", "fail");
    let detail = check(&v, "vpn-route")["detail"].as_str().unwrap();
    assert!(
        detail.contains("IPv4 `default via 10.8.0.1 dev wg0`"),
        "{detail}"
    );
    assert_status(&v, "route-lookup", "fail");
    assert!(
        check(&v, "route-lookup")["detail"]
            .as_str()
            .unwrap()
            .contains("kill switch answered"),
        "{v:#}"
    );
    for name in ["forwarding", "rp_filter", "kill-switch", "ipv6"] {
        assert_status(&v, name, "pass");
    }
}

/// No marker on the client: doctor there says it is not applied; the
/// gateway sees the group's traffic arrive without DSCP 7.
#[test]
fn doctor_fails_when_the_marker_is_not_applied() {
    let Some(t) = lab("doctor_fails_when_the_marker_is_not_applied") else {
        return;
    };
    apply_ok(&t.b, &t.state(&t.b), "gateway.toml");
    let (code, v) = doctor(&t.a, &t.state(&t.a), &profile("marker.toml"));
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(failed(&v), ["applied"], "{v:#}");
    assert!(
        check(&v, "applied")["fix"]
            .as_str()
            .unwrap()
            .contains("dscproute apply --profile"),
        "{v:#}"
    );

    let (code, v) = with_group_traffic(&t.a, || {
        doctor(&t.b, &t.state(&t.b), &profile("gateway.toml"))
    });
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(failed(&v), ["dscp-on-wire"], "{v:#}");
    let detail = check(&v, "dscp-on-wire")["detail"].as_str().unwrap();
    assert!(
        detail.contains("none with DSCP 7") && detail.contains("DSCP 0"),
        "{detail}"
    );
}

/// Client C behind A, where A re-marks everything it forwards to DSCP 0
/// (RFC 9435 bleaching): doctor on C passes (its marker works), doctor on
/// the gateway fails dscp-on-wire, naming bleaching.
#[test]
fn doctor_fails_when_a_middle_host_bleaches_dscp() {
    let Some((lab, t)) = lab_and_topology("doctor_fails_when_a_middle_host_bleaches_dscp") else {
        return;
    };
    let c = lab.netns();
    veth(&t.a, "c0", &c, "eth0");
    t.a.addr("c0", "192.168.70.1/24");
    c.addr("eth0", "192.168.70.2/24");
    c.exec_ok(&["ip", "route", "add", "default", "via", "192.168.70.1"]);
    t.b.exec_ok(&[
        "ip",
        "route",
        "add",
        "192.168.70.0/24",
        "via",
        "192.168.50.2",
    ]);
    // A: a router that bleaches DSCP on its way to the gateway.
    t.a.sysctl_w(&["net.ipv4.ip_forward=1"]);
    t.a.exec_ok(&[
        "iptables",
        "-w",
        "-t",
        "mangle",
        "-A",
        "POSTROUTING",
        "-o",
        "eth0",
        "-j",
        "DSCP",
        "--set-dscp",
        "0",
    ]);
    let state_c = t.path("state-c");
    let out = dscproute(
        &c,
        &state_c,
        &["apply", "--profile", &profile("marker.toml"), "--yes"],
    );
    assert!(out.status.success(), "{}", show("apply marker on C", &out));
    apply_ok(&t.b, &t.state(&t.b), "gateway.toml");

    let (code, v) = with_group_traffic(&c, || doctor(&c, &state_c, &profile("marker.toml")));
    assert_eq!(
        (code, failed(&v)),
        (0, vec![]),
        "C's own marker works: {v:#}"
    );
    assert_status(&v, "dscp-on-wire", "pass");

    let (code, v) = with_group_traffic(&c, || {
        doctor(&t.b, &t.state(&t.b), &profile("gateway.toml"))
    });
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(failed(&v), ["dscp-on-wire"], "{v:#}");
    let detail = check(&v, "dscp-on-wire")["detail"].as_str().unwrap();
    assert!(
        detail.contains("bleaching") && detail.contains("DSCP 0"),
        "{detail}"
    );
}

/// Without root: FAIL root, and nothing after apply is claimed.
#[test]
fn doctor_without_root_says_so() {
    let Some(lab) = common::lab("doctor_without_root_says_so", &["setpriv"]) else {
        return;
    };
    let ns = lab.netns();
    let dir = tempfile::tempdir().unwrap();
    // nobody cannot read the checkout when it lives in a private directory.
    let shared = SharedDir::new();
    let (bin, gateway) = (shared.bin(), shared.copy(profile("gateway.toml")));
    let out = common::run(
        ns.command(&[
            "setpriv",
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--inh-caps=-all",
            bin.to_str().unwrap(),
            "--state-dir",
            dir.path().to_str().unwrap(),
            "doctor",
            "--profile",
            gateway.to_str().unwrap(),
            "--json",
        ])
        .current_dir(shared.path()),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        show("doctor as nobody", &out)
    );
    let v = json(&out);
    assert_status(&v, "root", "fail");
    assert!(statuses(&v, "applied").is_empty(), "{v:#}");
    assert!(statuses(&v, "dscp-on-wire").is_empty(), "{v:#}");
}
