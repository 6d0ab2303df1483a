//! The real binary in a real pseudo-terminal (tmux): walk the wizard to the
//! preview with keystrokes, read the screen as a person would, and check the
//! terminal is restored on quit.

mod common;

use common::tmux::Tmux;

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
    let s = t.wait_for("does not exist");
    assert!(s.contains("Group · step 2"), "{s}");
    t.keys(&["C-c"]);
    t.wait_for("DSCPROUTE-EXITED 0");
}
