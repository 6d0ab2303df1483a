//! The wizard as an admin on the router uses it, in the namespace lab:
//! started as root on gateway B with a profile, it is walked to the preview
//! by keystrokes in a real pseudo-terminal (tmux), applies with the confirm
//! countdown, the change is kept, and the group's traffic from client A then
//! takes the VPN path; a rollback from the status screen restores B exactly.

mod common;

use common::topology::{
    GID, OTHER_GID, TARGET4, TARGET6, Topology, apply_ok, assert_reaches, assert_same_state,
    poll_until, profile, snapshot,
};
use std::process::Command;
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

struct Tmux {
    session: String,
}

impl Tmux {
    fn start(cmd: &str) -> Tmux {
        let session = format!("dscpr-labtui-{}", std::process::id());
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", &session, "-x", "100", "-y", "32"])
            .arg(cmd)
            .status()
            .expect("tmux")
            .success();
        assert!(ok, "tmux new-session failed");
        Tmux { session }
    }

    fn keys(&self, keys: &[&str]) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.session])
            .args(keys)
            .status()
            .expect("tmux send-keys")
            .success();
        assert!(ok);
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait (bounded) for `needle` on screen; the screen on failure.
    fn wait_for(&self, needle: &str) -> String {
        let mut last = String::new();
        let seen = poll_until(Duration::from_secs(20), Duration::from_millis(50), || {
            last = self.screen();
            last.contains(needle)
        });
        assert!(seen, "timed out waiting for {needle:?}; screen:\n{last}");
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

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
        "ip netns exec {} env NO_COLOR=1 {} --state-dir {} tui --profile {}; echo DSCPROUTE-EXITED $?; read x",
        t.b.name(),
        env!("CARGO_BIN_EXE_dscproute"),
        state.display(),
        profile("gateway.toml"),
    );
    let tui = Tmux::start(&cmd);
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
