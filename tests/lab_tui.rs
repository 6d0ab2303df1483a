//! The wizard as an admin on the router uses it, in the namespace lab:
//! started as root on gateway B with a profile, it is walked to the preview
//! by keystrokes in a real pseudo-terminal (tmux), applies with the confirm
//! countdown, the change is kept, and the group's traffic from client A then
//! takes the VPN path; a rollback from the status screen restores B exactly.

mod common;

use common::tmux::{Tmux, Watched, ticks_per_second};
use common::topology::{
    GID, Mode, OTHER_GID, TARGET4, TARGET6, Topology, Wrappers, apply_ok, assert_reaches,
    assert_same_state, poll_until, profile, rollback_ok, snapshot, status_json,
};
use std::io::Write;
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
    // "wg0" alone also appears in a hint while the host is still read.
    let s = tui.wait_for("▸ wg0");
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

/// The terminal dies while the wizard's apply is in flight (its first
/// mutating command held by a PATH wrapper): the process neither spins nor
/// exits before the change is finished; released, the apply completes, the
/// change waits for the confirm timer (as `apply --confirm` would), and the
/// process exits. The pane's shell dies with the terminal and the hangup
/// reaches the wizard's process group, as when an SSH session drops.
#[test]
fn a_dead_terminal_lets_the_apply_finish_then_exits() {
    let Some(lab) = common::lab("a_dead_terminal_lets_the_apply_finish_then_exits", TOOLS) else {
        return;
    };
    let t = Topology::build(&lab);
    let before = snapshot(&t.b);
    let wrap = Wrappers::install(&t.path("wrap"));
    wrap.arm_block();
    // A failing test must not leave the wrapper waiting on its FIFO.
    let wrap = ReleaseOnDrop(wrap, std::cell::Cell::new(false));
    let state = t.state(&t.b);
    let env: Vec<String> = wrap
        .env(Mode::Block, 1)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let cmd = format!(
        "ip netns exec {} env {} {} --state-dir {} tui --profile {}; echo DSCPROUTE-EXITED $?; read x",
        t.b.name(),
        env.join(" "),
        env!("CARGO_BIN_EXE_dscproute"),
        state.display(),
        profile("gateway.toml"),
    );
    let tui = Tmux::start(&cmd, 100, 32).expect("tmux (checked by lab())");
    tui.wait_for("Role");
    for (key, next) in [
        ("Enter", "· DSCP ·"),
        ("Enter", "· Mark and table ·"),
        ("Enter", "· Gateway ·"),
        ("Enter", "Plan:"),
        ("a", "to this host now?"),
    ] {
        tui.keys(&[key]);
        tui.wait_for(next);
    }
    tui.keys(&["Enter"]);
    assert!(
        poll_until(Duration::from_secs(20), Duration::from_millis(20), || wrap
            .reached()),
        "the apply never reached its first mutating command:\n{}",
        tui.screen()
    );
    let p = Watched::child_of(tui.pane_pid(), "dscproute");
    tui.kill_server();

    // A second of a dead terminal with the change held: alive, and idle.
    let cpu0 = p.cpu_ticks().expect("running");
    let watched = std::time::Instant::now();
    while watched.elapsed() < Duration::from_secs(1) {
        assert!(p.alive(), "exited with its change in flight");
        std::thread::sleep(Duration::from_millis(50));
    }
    let spent = p.cpu_ticks().expect("running") - cpu0;
    let cpu = Duration::from_millis(spent * 1000 / ticks_per_second());
    assert!(
        cpu <= Duration::from_millis(100),
        "{cpu:?} of CPU in a second on a dead terminal"
    );

    assert!(wrap.release_once(), "the wrapper went away");
    let (took, _) = p
        .wait_exit(Duration::from_secs(30))
        .expect("still running 30 s after its change was released");
    let _ = writeln!(
        std::io::stderr(),
        "dead terminal, apply in flight: {cpu:?} CPU in 1 s; exited {took:?} after the release"
    );
    // Finished, not cut: the whole change is in place, awaiting confirmation.
    let status = status_json(&t.b, &state);
    assert_eq!(
        status["transaction"]["state"], "pending_confirm",
        "{status:#}"
    );
    assert_ne!(snapshot(&t.b), before, "the change was not applied");
    // The admin comes back and rolls it back; the timer stands down.
    rollback_ok(&t.b, &state);
    assert_same_state(&before, &snapshot(&t.b), "after the rollback");
    let timer_log = || std::fs::read_to_string(state.join("timer.log")).unwrap_or_default();
    assert!(
        poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
            timer_log().contains("no longer pending")
        }),
        "the confirm timer did not leave:\n{}",
        timer_log()
    );
    t.assert_host_etc_untouched();
}

/// Wrappers whose blocked call is let go at the latest on drop.
struct ReleaseOnDrop(Wrappers, std::cell::Cell<bool>);

impl ReleaseOnDrop {
    fn release_once(&self) -> bool {
        self.1.set(true);
        self.0.release(Duration::from_secs(10))
    }
}

impl std::ops::Deref for ReleaseOnDrop {
    type Target = Wrappers;
    fn deref(&self) -> &Wrappers {
        &self.0
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        if self.0.reached() && !self.1.get() {
            self.0.release(Duration::from_secs(2));
        }
    }
}
