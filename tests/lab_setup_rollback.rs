//! One setup, one rollback (issue 13, lab item 7), on real kernels: whatever
//! sequence of applies happened on the gateway — the first apply, a second
//! apply after the VPN table was flushed (what a VPN restart does), an apply
//! of an edited profile with another mark, priority and table name, and a
//! later apply stopped half-way — one `rollback --yes` leaves the host
//! byte-identical to before the first (iptables and ip6tables, policy
//! rules, every routing table, table names, sysctls). Needs root; skips
//! visibly otherwise.

mod common;

use common::topology::{
    Host, assert_same_state, dscproute, dscproute_expect, profile, show, snapshot, stdout, topology,
};
use std::path::{Path, PathBuf};

/// The lab gateway profile with its mark, priority and table changed.
fn edited_profile(p: PathBuf) -> PathBuf {
    let text = std::fs::read_to_string(profile("gateway.toml")).unwrap();
    let text = text.replace(
        "table = \"vpn\"",
        "table = \"vpn2\"\nmark = \"0x5\"\npriority = 12000",
    );
    let text = text.replace("table_id = 100", "table_id = 101");
    assert!(text.contains("0x5") && text.contains("101"), "{text}");
    std::fs::write(&p, text).unwrap();
    p
}

fn apply(host: &Host, state: &Path, p: &str) -> String {
    let out = dscproute_expect(host, state, &["apply", "--profile", p, "--yes"], 0);
    stdout(&out)
}

#[test]
fn applies_repairs_and_an_edited_profile_are_one_rollback() {
    let Some(t) = topology(
        "applies_repairs_and_an_edited_profile_are_one_rollback",
        &[],
    ) else {
        return;
    };
    let (b, state) = (&t.b, t.state(&t.b));
    // Strict rp_filter, so the sysctls are part of the round trip.
    b.sysctl_w(&[
        "net.ipv4.conf.all.rp_filter=1",
        "net.ipv4.conf.default.rp_filter=1",
        "net.ipv4.conf.wg0.rp_filter=1",
    ]);
    let before = snapshot(b);
    let gw = profile("gateway.toml");
    apply(b, &state, &gw);
    assert_eq!(b.sysctl("net.ipv4.ip_forward").as_deref(), Some("1"));

    // What a VPN restart does to our table; the second apply re-adds it.
    b.exec_ok(&["ip", "-4", "route", "flush", "table", "100"]);
    b.exec_ok(&["ip", "-6", "route", "flush", "table", "100"]);
    let again = apply(b, &state, &gw);
    assert!(!again.contains("Nothing to do"), "{again}");

    // The edited profile: other mark, priority and table.
    let edited = edited_profile(t.path("gateway-edited.toml"));
    let out = apply(b, &state, &edited.display().to_string());
    assert!(!out.contains("Nothing to do"), "{out}");
    let rules = stdout(&b.exec_ok(&["ip", "rule"]));
    assert!(rules.contains("12000:"), "{rules}");
    assert!(
        !rules.contains("10000:"),
        "the old lookup rule went: {rules}"
    );

    // The status counts the whole setup and its sysctls from before.
    let st = dscproute_expect(b, &state, &["status"], 0);
    assert!(
        stdout(&st).contains("The setup holds"),
        "{}",
        show("status", &st)
    );

    // The question lists what rollback will undo, before it asks.
    let applied = snapshot(b);
    let asked = dscproute(b, &state, &["rollback"]);
    assert_eq!(
        asked.status.code(),
        Some(2),
        "{}",
        show("rollback without --yes", &asked)
    );
    let listed = stdout(&asked);
    assert!(
        listed.contains("This undoes, in this order:")
            && listed.contains("restore net.ipv4.ip_forward = 0")
            && listed.contains("table 101"),
        "{}",
        show("rollback's list", &asked)
    );
    assert_same_state(&applied, &snapshot(b), "a rollback that was not confirmed");

    let out = dscproute_expect(b, &state, &["rollback", "--yes"], 0);
    assert!(
        stdout(&out).contains("changes earlier transactions of this setup had left in place"),
        "{}",
        show("rollback", &out)
    );
    assert_same_state(
        &before,
        &snapshot(b),
        "after one rollback of the whole setup",
    );
    let again = dscproute_expect(b, &state, &["rollback", "--yes"], 0);
    assert!(
        stdout(&again).contains("nothing to roll back"),
        "{}",
        show("again", &again)
    );
    t.assert_host_etc_untouched();
}

/// `--last` undoes only the last transaction: after an edited profile, it
/// puts the first profile's setup back; the rollback after it removes that.
#[test]
fn rollback_last_returns_to_the_setup_before_the_last_apply() {
    let Some(t) = topology(
        "rollback_last_returns_to_the_setup_before_the_last_apply",
        &[],
    ) else {
        return;
    };
    let (b, state) = (&t.b, t.state(&t.b));
    let before = snapshot(b);
    apply(b, &state, &profile("gateway.toml"));
    let first = snapshot(b);
    let edited = edited_profile(t.path("gateway-edited.toml"));
    apply(b, &state, &edited.display().to_string());
    assert_ne!(first, snapshot(b));
    dscproute_expect(b, &state, &["rollback", "--last", "--yes"], 0);
    assert_same_state(&first, &snapshot(b), "after rollback --last");
    dscproute_expect(b, &state, &["rollback", "--yes"], 0);
    assert_same_state(&before, &snapshot(b), "after the rollback of the setup");
}

/// `rollback --all` with a corrupt journal still restores the sysctls from
/// before dscproute (kept beside the journal).
#[test]
fn rollback_all_restores_the_sysctls_without_a_journal() {
    let Some(t) = topology("rollback_all_restores_the_sysctls_without_a_journal", &[]) else {
        return;
    };
    let (b, state) = (&t.b, t.state(&t.b));
    b.sysctl_w(&[
        "net.ipv4.conf.all.rp_filter=1",
        "net.ipv4.conf.wg0.rp_filter=1",
    ]);
    let before = snapshot(b);
    apply(b, &state, &profile("gateway.toml"));
    std::fs::write(state.join("current.json"), "{ torn").unwrap();
    let out = dscproute_expect(b, &state, &["rollback", "--all", "--yes"], 0);
    assert!(
        stdout(&out).contains("restore net.ipv4.ip_forward = 0"),
        "{}",
        show("rollback --all", &out)
    );
    assert_same_state(
        &before,
        &snapshot(b),
        "after rollback --all with a corrupt journal",
    );
}
