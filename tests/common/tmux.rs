//! A program in a real pseudo-terminal (tmux): type keys, read the screen as
//! a person would. Shared by the TUI tests.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct Tmux {
    session: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Tmux {
    /// Start `cmd` in a `w`×`h` terminal (NO_COLOR set), or `None` after a
    /// visible skip when tmux is missing (a failure under DSCPROUTE_LAB=required).
    pub fn start(cmd: &str, w: u16, h: u16) -> Option<Tmux> {
        if Command::new("tmux").arg("-V").output().is_err() {
            if std::env::var("DSCPROUTE_LAB").as_deref() == Ok("required") {
                panic!("tmux is missing (apt-get install tmux) and DSCPROUTE_LAB=required");
            }
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIP tui test: missing tool tmux (apt-get install tmux)"
            );
            return None;
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let session = format!("dscpr-tui-{}-{n}", std::process::id());
        let (w, h) = (w.to_string(), h.to_string());
        let ok = Command::new("tmux")
            .args(["new-session", "-d", "-s", &session, "-x", &w, "-y", &h])
            .arg(cmd)
            .env("NO_COLOR", "1")
            .status()
            .expect("tmux")
            .success();
        assert!(ok, "tmux new-session failed");
        Some(Tmux { session })
    }

    pub fn keys(&self, keys: &[&str]) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.session])
            .args(keys)
            .status()
            .expect("tmux send-keys")
            .success();
        assert!(ok);
    }

    pub fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.session])
            .output()
            .expect("capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait (bounded) until the screen shows `needle`; the screen on failure.
    pub fn wait_for(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
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
