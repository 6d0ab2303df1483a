//! The real binary in a real pseudo-terminal (tmux): walk the wizard to the
//! preview with keystrokes, read the screen as a person would, and check the
//! terminal is restored on quit.

mod common;

use common::tmux::{Tmux, Watched, ticks_per_second};
use std::io::Write;
use std::time::Duration;

fn command(facts: &str) -> String {
    format!(
        "{} tui --facts {}/tests/fixtures/plan/{facts}; echo DSCPROUTE-EXITED $?; read x",
        env!("CARGO_BIN_EXE_dscproute"),
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn walks_the_client_wizard_to_the_preview() {
    let Some(t) = Tmux::start(&command("client.json"), 80, 24) else {
        return;
    };
    let s = t.wait_for("Role");
    assert!(s.contains("DRY RUN"), "{s}");
    assert!(s.contains("Client (host A)"), "{s}");
    t.keys(&["Enter"]);
    t.wait_for("Whose traffic goes through the VPN?");
    t.keys(&["torrent"]);
    t.wait_for("torrent");
    t.keys(&["Enter"]);
    t.wait_for("DSCP");
    t.keys(&["Enter"]);
    let s = t.wait_for("Plan:");
    assert!(s.contains("Preview"), "{s}");
    t.keys(&["C-c"]);
    let s = t.wait_for("DSCPROUTE-EXITED 0");
    // The alternate screen is gone: the wizard's frame is no longer shown.
    assert!(!s.contains("F1 help"), "terminal not restored:\n{s}");
}

#[test]
fn invalid_group_blocks_the_wizard_at_120_columns() {
    let Some(t) = Tmux::start(&command("client.json"), 120, 40) else {
        return;
    };
    t.wait_for("Role");
    t.keys(&["Enter"]);
    t.wait_for("Whose traffic");
    t.keys(&["no-such-group-x", "Enter"]);
    let s = t.wait_for("no group \"no-such-group-x\" on this host");
    assert!(s.contains("Who · step 2"), "{s}");
    // A partial name is not taken either: `torr` is only part of `torrent`.
    for _ in 0.."no-such-group-x".len() {
        t.keys(&["BSpace"]);
    }
    t.keys(&["torr", "Enter"]);
    let s = t.wait_for("no group \"torr\" on this host");
    assert!(s.contains("Who · step 2"), "{s}");
    t.keys(&["C-c"]);
    t.wait_for("DSCPROUTE-EXITED 0");
}

/// The Who step's tabs and the recipe chooser, as typed in a real terminal:
/// a user marker (recorded facts: not checked, said so), then on the
/// preview `c`, windows, a program refused then taken, and the file written
/// where the wizard runs.
#[test]
fn who_step_and_recipe_chooser_in_a_real_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = format!("cd {} && {}", dir.path().display(), command("client.json"));
    let Some(t) = Tmux::start(&cmd, 100, 30) else {
        return;
    };
    t.wait_for("Role");
    t.keys(&["Enter"]);
    t.wait_for("Mark by");
    t.keys(&["Tab"]);
    t.wait_for("[user]");
    t.keys(&["alice"]);
    let s = t.wait_for("not checked: recorded facts");
    assert!(s.contains("runuser -u alice -- CMD"), "{s}");
    t.keys(&["Enter"]);
    t.wait_for("DSCP");
    t.keys(&["Enter"]);
    t.wait_for("Plan");
    t.keys(&["c"]);
    t.wait_for("Client recipe");
    t.keys(&["Down", "Down", "Enter"]);
    t.wait_for("Program");
    t.keys(&["qbittorrent"]);
    t.wait_for("does not end in .exe");
    t.keys(&[".exe"]);
    t.wait_for("accepted: Enter asks where");
    t.keys(&["Enter"]);
    t.wait_for("dscproute-client-windows.ps1");
    t.keys(&["Enter"]);
    let s = t.wait_for("✓ Wrote the windows recipe");
    assert!(s.contains("elevated"), "{s}");
    let text = std::fs::read_to_string(dir.path().join("dscproute-client-windows.ps1")).unwrap();
    assert!(text.contains("New-NetQosPolicy"), "{text}");
    t.keys(&["C-c"]);
    t.wait_for("DSCPROUTE-EXITED 0");
}

/// The terminal dies under an idle wizard (the tmux server is killed, as
/// when an SSH session drops): the process exits within a second, without
/// spinning on the dead terminal. `tui` is the pane's own process (the
/// session leader gets SIGHUP); `learn` runs under a shell that dies first.
#[test]
fn exits_when_its_terminal_dies() {
    let bin = env!("CARGO_BIN_EXE_dscproute");
    let facts = format!(
        "{}/tests/fixtures/plan/client.json",
        env!("CARGO_MANIFEST_DIR")
    );
    for (cmd, first, alone) in [
        (
            format!("exec {bin} tui --facts {facts}"),
            "Client (host A)",
            true,
        ),
        (
            format!("{bin} learn; echo DSCPROUTE-EXITED $?; read x"),
            "Any DS byte",
            false,
        ),
    ] {
        let Some(t) = Tmux::start(&cmd, 80, 24) else {
            return;
        };
        t.wait_for(first);
        let p = if alone {
            Watched { pid: t.pane_pid() }
        } else {
            Watched::child_of(t.pane_pid(), "dscproute")
        };
        assert!(p.alive());
        t.kill_server();
        let (took, ticks) = p
            .wait_exit(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{cmd}: still running 10 s after its terminal died"));
        let cpu = Duration::from_millis(ticks * 1000 / ticks_per_second());
        assert!(
            took <= Duration::from_secs(1),
            "{cmd}: exited after {took:?}"
        );
        assert!(
            cpu <= Duration::from_millis(200),
            "{cmd}: used {cpu:?} of CPU on the way out"
        );
        let _ = writeln!(
            std::io::stderr(),
            "{first}: exited {took:?} after its terminal died, {cpu:?} CPU meanwhile"
        );
    }
}

#[test]
fn learn_alone_leaves_on_esc() {
    let cmd = format!(
        "{} learn; echo DSCPROUTE-EXITED $?; read x",
        env!("CARGO_BIN_EXE_dscproute")
    );
    let Some(t) = Tmux::start(&cmd, 80, 24) else {
        return;
    };
    let s = t.wait_for("Any DS byte");
    assert!(s.contains("Esc quit"), "the footer says how to leave:\n{s}");
    t.keys(&["Escape"]);
    t.wait_for("DSCPROUTE-EXITED 0");
}

/// SIGHUP with the terminal still there (and no change under way): the
/// wizard leaves and puts the terminal back as it found it.
#[test]
fn sighup_leaves_and_restores_the_terminal() {
    let Some(t) = Tmux::start(&command("client.json"), 80, 24) else {
        return;
    };
    t.wait_for("Client (host A)");
    let p = Watched::child_of(t.pane_pid(), "dscproute");
    // SAFETY: signalling the process this test started.
    unsafe {
        libc::kill(p.pid, libc::SIGHUP);
    }
    let s = t.wait_for("DSCPROUTE-EXITED 1");
    assert!(!s.contains("F1 help"), "terminal not restored:\n{s}");
    assert!(s.contains("hung up (SIGHUP"), "{s}");
}

/// A `[[class]]` profile opens in the wizard: the Gateway step lists its
/// classes side by side (a tunnel this host lacks shown MISSING), and a
/// class is added from the keyboard.
#[test]
fn a_classes_profile_opens_with_its_classes() {
    let cmd = format!(
        "{} tui --profile {}/assets/examples/classes.toml --facts \
         {}/tests/fixtures/plan/gateway-clean.json; echo DSCPROUTE-EXITED $?; read x",
        env!("CARGO_BIN_EXE_dscproute"),
        env!("CARGO_MANIFEST_DIR"),
        env!("CARGO_MANIFEST_DIR")
    );
    let Some(t) = Tmux::start(&cmd, 120, 40) else {
        return;
    };
    t.wait_for("Role");
    t.keys(&["Enter"]);
    t.wait_for("DSCP ·");
    t.keys(&["Enter"]);
    t.wait_for("Mark");
    t.keys(&["Enter"]);
    // The last row drawn is waited for: a capture may catch a frame half drawn.
    let s = t.wait_for("scrub DSCP");
    assert!(s.contains("Classes (2)"), "{s}");
    assert!(s.contains("torrent      DSCP 7   wg0 → tun1"), "{s}");
    assert!(s.contains("streaming    DSCP 11  wg1 → eth1"), "{s}");
    assert!(
        s.contains("[1 wg0 via 10.8.0.1 via6 fd00::1]  2 tun1 MISSING"),
        "{s}"
    );
    t.keys(&["BTab", "BTab", "BTab", "a"]);
    t.wait_for("class3       DSCP 3");
    t.keys(&["C-c"]);
    t.wait_for("DSCPROUTE-EXITED 0");
}
