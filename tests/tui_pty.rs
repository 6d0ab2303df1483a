//! The real binary in a real pseudo-terminal (tmux): walk the wizard to the
//! preview with keystrokes, read the screen as a person would, and check the
//! terminal is restored on quit.

use std::process::Command;
use std::time::{Duration, Instant};

struct Tmux {
    session: String,
}

impl Tmux {
    fn start(cmd: &str, w: u16, h: u16) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            if std::env::var("DSCPROUTE_LAB").as_deref() == Ok("required") {
                panic!("tmux is missing (apt-get install tmux) and DSCPROUTE_LAB=required");
            }
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIP tui pty test: missing tool tmux (apt-get install tmux)"
            );
            return None;
        }
        let session = format!("dscpr-tui-{}-{w}", std::process::id());
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &session,
                "-x",
                &w.to_string(),
                "-y",
                &h.to_string(),
            ])
            .arg(cmd)
            .env("NO_COLOR", "1")
            .status()
            .expect("tmux")
            .success();
        assert!(ok, "tmux new-session failed");
        Some(Tmux { session })
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

    /// Wait (bounded) until the screen shows `needle`; the screen on failure.
    fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.screen();
            if s.contains(needle) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.session])
            .status();
    }
}

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
