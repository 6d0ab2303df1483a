//! Several classes on one gateway (`[[class]]`), on real kernels: B routes
//! DSCP 7 and DSCP 11 through their own first uplinks (the lab's `vpn` on
//! wg0 and a second VPN namespace `vpn2` on wg1, both serving the test
//! address under their own names), takes a class's second uplink when its
//! first is down at apply time, and one rollback restores B exactly.
//! Needs root; skips visibly otherwise.

mod common;

use common::topology::{
    FIREWALL_TOOLS, GID, HttpServer, OTHER_GID, TARGET4, Topology, apply_ok, assert_same_state,
    dscproute, dscproute_expect, fetch, fetch_short, json, profile, rollback_ok, show, snapshot,
    stdout,
};
use common::{Netns, veth};

/// Sockets of this group are sent unmarked by everyone: the main path.
const PLAIN_GID: u32 = 4244;

/// The lab plus `vpn2` behind B's `wg1` (10.9.0.0/24), answering "vpn2".
struct Lab2 {
    _server: HttpServer,
    t: Topology,
    _vpn2: Netns,
}

fn lab(name: &str) -> Option<Lab2> {
    let tools: Vec<&str> = FIREWALL_TOOLS
        .iter()
        .chain(&["curl", "setpriv"])
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
        _vpn2: vpn2,
    })
}

/// Client A: the lab marker gives gid 4242 DSCP 7 (dscproute's own rules);
/// the test itself gives gid 4243 DSCP 11 with one rule of its own.
fn mark_two_groups(t: &Topology) {
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
}

fn classes_of(t: &Topology, profile_name: &str) -> serde_json::Value {
    let p = profile(profile_name);
    let out = dscproute_expect(
        &t.b,
        &t.state(&t.b),
        &["plan", "--profile", &p, "--json"],
        0,
    );
    json(&out)["resolved"]["classes"].clone()
}

fn own((a, b): (&str, &str)) -> (String, String) {
    (a.to_string(), b.to_string())
}

/// `status --json`: each class and the uplink its table routes through
/// ("blocked" when none).
fn uplinks_in_status(t: &Topology) -> Vec<(String, String)> {
    let s = json(&dscproute_expect(
        &t.b,
        &t.state(&t.b),
        &["status", "--json"],
        0,
    ));
    s["classes"]
        .as_array()
        .unwrap_or_else(|| panic!("no classes in {s:#}"))
        .iter()
        .map(|c| {
            let via = match (c["uplink"].as_str(), c["blocked"].as_bool()) {
                (Some(u), _) => u.to_string(),
                (None, Some(true)) => "blocked".into(),
                _ => "main".into(),
            };
            (c["name"].as_str().unwrap_or("").to_string(), via)
        })
        .collect()
}

#[test]
fn each_class_reaches_the_target_through_its_own_first_uplink() {
    two_classes(
        "each_class_reaches_the_target_through_its_own_first_uplink",
        "classes.toml",
    );
}

/// The same with the nft backend: one table holds both classes.
#[test]
fn each_class_reaches_the_target_through_its_own_first_uplink_nft() {
    two_classes(
        "each_class_reaches_the_target_through_its_own_first_uplink_nft",
        "classes-nft.toml",
    );
}

fn two_classes(name: &str, profile_name: &str) {
    let Some(l) = lab(name) else {
        return;
    };
    let t = &l.t;
    mark_two_groups(t);
    let before = snapshot(&t.b);
    let classes = classes_of(t, profile_name);
    assert_eq!(classes[0]["name"], "torrent");
    assert_eq!(classes[0]["uplink"], "wg0", "{classes:#}");
    assert_eq!(classes[1]["uplink"], "wg1", "{classes:#}");
    assert_ne!(classes[0]["mark"], classes[1]["mark"]);
    assert_ne!(classes[0]["table_id"], classes[1]["table_id"]);
    let p = profile(profile_name);
    let preview = dscproute_expect(&t.b, &t.state(&t.b), &["plan", "--profile", &p], 0);
    for want in [
        "class streaming: DSCP 11 → mark 0x2/0xff",
        "uplink wg1: the first uplink, usable now",
    ] {
        assert!(
            stdout(&preview).contains(want),
            "{want}: {}",
            show("plan", &preview)
        );
    }
    apply_ok(&t.b, &t.state(&t.b), profile_name);

    assert_eq!(fetch(&t.a, GID, TARGET4).as_deref(), Ok("vpn"));
    assert_eq!(fetch(&t.a, OTHER_GID, TARGET4).as_deref(), Ok("vpn2"));
    assert_eq!(fetch(&t.a, PLAIN_GID, TARGET4).as_deref(), Ok("isp"));
    assert_eq!(
        uplinks_in_status(t),
        [("torrent", "wg0"), ("streaming", "wg1")].map(own)
    );
    // Applied again, nothing is left to do: no class takes another's rules.
    let again = dscproute_expect(
        &t.b,
        &t.state(&t.b),
        &["plan", "--profile", &p, "--json"],
        0,
    );
    let summary = &json(&again)["summary"];
    assert_eq!(
        (summary["add"].as_u64(), summary["change"].as_u64()),
        (Some(0), Some(0)),
        "{}",
        show("plan after apply", &again)
    );

    // Doctor asks the kernel's route lookup once per class.
    let doc = dscproute(&t.b, &t.state(&t.b), &["doctor", "--profile", &p, "--json"]);
    let report = json(&doc);
    let lookups: Vec<(String, String)> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["name"] == "route-lookup")
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["detail"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(lookups.len(), 2, "{report:#}");
    for ((status, detail), class) in lookups.iter().zip(["torrent", "streaming"]) {
        assert_eq!(status, "pass", "{detail}");
        assert!(detail.starts_with(&format!("class {class}: ")), "{detail}");
    }

    rollback_ok(&t.b, &t.state(&t.b));
    assert_same_state(&before, &snapshot(&t.b), "rollback of the two classes");
    t.assert_host_etc_untouched();
}

#[test]
fn a_class_whose_first_uplink_is_down_takes_its_second_and_none_blocks() {
    let Some(l) = lab("a_class_whose_first_uplink_is_down_takes_its_second_and_none_blocks") else {
        return;
    };
    let t = &l.t;
    mark_two_groups(t);
    t.b.exec_ok(&["ip", "link", "set", "wg1", "down"]);
    let before = snapshot(&t.b);

    let classes = classes_of(t, "classes.toml");
    assert_eq!(classes[1]["uplink"], "wg0", "{classes:#}");
    assert!(
        classes[1]["uplink_why"]
            .as_str()
            .is_some_and(|w| w.contains("wg1 is down")),
        "{classes:#}"
    );
    apply_ok(&t.b, &t.state(&t.b), "classes.toml");
    assert_eq!(fetch(&t.a, GID, TARGET4).as_deref(), Ok("vpn"));
    assert_eq!(fetch(&t.a, OTHER_GID, TARGET4).as_deref(), Ok("vpn"));
    assert_eq!(
        uplinks_in_status(t),
        [("torrent", "wg0"), ("streaming", "wg0")].map(own)
    );
    assert_eq!(fetch(&t.a, PLAIN_GID, TARGET4).as_deref(), Ok("isp"));
    rollback_ok(&t.b, &t.state(&t.b));
    assert_same_state(&before, &snapshot(&t.b), "rollback after the fallback");

    // Neither uplink usable: both classes are blocked, never sent by the ISP.
    t.b.exec_ok(&["ip", "link", "set", "wg0", "down"]);
    let before = snapshot(&t.b);
    let classes = classes_of(t, "classes.toml");
    assert_eq!(classes[0]["blocked"], true, "{classes:#}");
    assert_eq!(classes[1]["blocked"], true, "{classes:#}");
    apply_ok(&t.b, &t.state(&t.b), "classes.toml");
    assert!(fetch_short(&t.a, GID, TARGET4).is_err());
    assert!(fetch_short(&t.a, OTHER_GID, TARGET4).is_err());
    assert_eq!(
        uplinks_in_status(t),
        [("torrent", "blocked"), ("streaming", "blocked")].map(own)
    );
    assert_eq!(fetch(&t.a, PLAIN_GID, TARGET4).as_deref(), Ok("isp"));
    rollback_ok(&t.b, &t.state(&t.b));
    assert_same_state(&before, &snapshot(&t.b), "rollback of the blocked classes");
}
