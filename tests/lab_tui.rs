//! The wizard as an admin on the router uses it, in the namespace lab:
//! started as root on gateway B with a profile, it is walked to the preview
//! by keystrokes in a real pseudo-terminal (tmux), applies with the confirm
//! countdown, the change is kept, and the group's traffic from client A then
//! takes the VPN path; a rollback from the status screen restores B exactly.

mod common;

use common::tmux::Tmux;
use common::topology::{
    GID, OTHER_GID, TARGET4, TARGET6, Topology, apply_ok, assert_reaches, assert_same_state,
    poll_until, profile, snapshot,
};
use std::time::Duration;

const TOOLS: &[&str] = &[
    "iptables",
    "ip6tables",
    "iptables-save",
    "ip6tables-save",
    "nft",
    "sysctl",
    "curl",
    "setpriv",
    "tmux",
];

#[test]
fn the_wizard_applies_keeps_and_rolls_back_on_the_router() {
    let Some(lab) = common::lab(
        "the_wizard_applies_keeps_and_rolls_back_on_the_router",
        TOOLS,
    ) else {
        return;
    };
    let t = Topology::build(&lab);
    apply_ok(&t.a, &t.state(&t.a), "marker.toml");
    // B starts with forwarding off, as a router before its setup.
    let before = snapshot(&t.b);

    let state = t.state(&t.b);
    let cmd = format!(
        "ip netns exec {} {} --state-dir {} tui --profile {}; echo DSCPROUTE-EXITED $?; read x",
        t.b.name(),
        env!("CARGO_BIN_EXE_dscproute"),
        state.display(),
        profile("gateway.toml"),
    );
    let tui = Tmux::start(&cmd, 100, 32).expect("tmux (checked by lab())");
    let s = tui.wait_for("Role");
    assert!(
        !s.contains("DRY RUN"),
        "root on the host: not a dry run\n{s}"
    );
    assert!(
        s.contains("(•) 2. Gateway"),
        "the profile preloads the role\n{s}"
    );
    // Role -> DSCP -> Mark and table -> Gateway -> Preview.
    for (key, next) in [
        ("Enter", "DSCP"),
        ("Enter", "Mark and table"),
        ("Enter", "Gateway"),
    ] {
        tui.keys(&[key]);
        tui.wait_for(&format!("· {next} ·"));
    }
    let s = tui.wait_for("wg0");
    assert!(
        s.contains("▸ wg0"),
        "the profile's interface is selected\n{s}"
    );
    tui.keys(&["Enter"]);
    let s = tui.wait_for("Plan:");
    assert!(s.contains("to add"), "{s}");
    // Nothing is applied without the explicit confirmation on the preview.
    assert_eq!(snapshot(&t.b), before, "the preview changed the host");
    tui.keys(&["a"]);
    tui.wait_for("Apply");
    tui.keys(&["Enter"]);
    tui.wait_for("Keep this change?");
    tui.keys(&["Enter"]);
    tui.wait_for("Kept transaction");

    // The group's traffic now takes the VPN path; everybody else's does not.
    assert_reaches(&t.a, GID, TARGET4, "vpn");
    assert_reaches(&t.a, GID, TARGET6, "vpn");
    assert_reaches(&t.a, OTHER_GID, TARGET4, "isp");

    // Status screen, one confirmation, rolled back exactly.
    tui.keys(&["F3"]);
    tui.wait_for("Netfilter");
    tui.keys(&["r"]);
    tui.wait_for("Roll back");
    tui.keys(&["y"]);
    tui.wait_for("Rolled back");
    let mut now = String::new();
    poll_until(Duration::from_secs(10), Duration::from_millis(200), || {
        now = snapshot(&t.b);
        now == before
    });
    assert_same_state(&before, &now, "after the rollback from the status screen");
    tui.keys(&["C-c"]);
    tui.wait_for("DSCPROUTE-EXITED 0");
    t.assert_host_etc_untouched();
}
