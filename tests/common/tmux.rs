//! A program in a real pseudo-terminal (tmux): type keys, read the screen as
//! a person would, kill the terminal under it. Shared by the TUI tests.
//!
//! Each `Tmux` runs its own tmux server (`-L`), so killing it (the terminal
//! dies) touches no other test's or user's sessions; Drop kills it.

// Each test binary compiles its own copy of this module and uses a subset.
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub struct Tmux {
    socket: String,
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
        let t = Tmux {
            socket: format!("dscpr-tui-{}-{n}", std::process::id()),
        };
        let (w, h) = (w.to_string(), h.to_string());
        let ok = t
            .tmux()
            .args(["new-session", "-d", "-s", "main", "-x", &w, "-y", &h])
            .arg(cmd)
            .env("NO_COLOR", "1")
            .status()
            .expect("tmux")
            .success();
        assert!(ok, "tmux new-session failed");
        Some(t)
    }

    fn tmux(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    pub fn keys(&self, keys: &[&str]) {
        let ok = self
            .tmux()
            .args(["send-keys", "-t", "main"])
            .args(keys)
            .status()
            .expect("tmux send-keys")
            .success();
        assert!(ok);
    }

    pub fn screen(&self) -> String {
        let out = self
            .tmux()
            .args(["capture-pane", "-p", "-t", "main"])
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

    /// The pid of the pane's first process (the command, or its shell).
    pub fn pane_pid(&self) -> i32 {
        let out = self
            .tmux()
            .args(["list-panes", "-t", "main", "-F", "#{pane_pid}"])
            .output()
            .expect("list-panes");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a pane pid")
    }

    /// The terminal dies: the tmux server and its pseudo-terminals go away,
    /// as when the server is killed or the SSH session under it drops.
    pub fn kill_server(&self) {
        // Quietly: Drop calls it again after a test killed the server.
        let _ = self
            .tmux()
            .arg("kill-server")
            .stderr(std::process::Stdio::null())
            .status();
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.kill_server();
    }
}

/// A process watched from outside through /proc; killed on drop if it is
/// still there (so a failing test leaves nothing behind).
pub struct Watched {
    pub pid: i32,
}

impl Watched {
    /// The child of `parent` whose command name is `comm`, waiting (bounded)
    /// for it to appear.
    pub fn child_of(parent: i32, comm: &str) -> Watched {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                    continue;
                };
                if let Some(s) = Stat::read(pid)
                    && s.ppid == parent
                    && s.comm == comm
                {
                    return Watched { pid };
                }
            }
            assert!(
                Instant::now() < deadline,
                "no {comm} child of {parent} appeared"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Running (a zombie has exited: nobody may reap it here).
    pub fn alive(&self) -> bool {
        Stat::read(self.pid).is_some_and(|s| s.state != 'Z')
    }

    /// CPU time used so far (user + system), in clock ticks.
    pub fn cpu_ticks(&self) -> Option<u64> {
        Stat::read(self.pid).map(|s| s.utime + s.stime)
    }

    /// Wait (bounded by `limit`) for the process to exit; how long it took
    /// and the most CPU ticks it used meanwhile (its last reading).
    pub fn wait_exit(&self, limit: Duration) -> Option<(Duration, u64)> {
        let start = Instant::now();
        let first = self.cpu_ticks().unwrap_or(0);
        let mut used = 0;
        while start.elapsed() < limit {
            match Stat::read(self.pid) {
                Some(s) if s.state != 'Z' => used = (s.utime + s.stime).saturating_sub(first),
                Some(s) => return Some((start.elapsed(), (s.utime + s.stime) - first)),
                None => return Some((start.elapsed(), used)),
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if self.alive() {
            // SAFETY: signalling a pid this test started and still sees running.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
            }
        }
    }
}

/// Clock ticks per second (USER_HZ), for reading `cpu_ticks`.
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).unwrap_or(100)
}

/// The fields of /proc/PID/stat these tests read.
struct Stat {
    comm: String,
    state: char,
    ppid: i32,
    utime: u64,
    stime: u64,
}

impl Stat {
    fn read(pid: i32) -> Option<Stat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The name is in parentheses and may hold spaces: split after the last ')'.
        let open = text.find('(')?;
        let close = text.rfind(')')?;
        let comm = text[open + 1..close].to_string();
        let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
        // rest[0] is field 3 (state); utime and stime are fields 14 and 15.
        Some(Stat {
            comm,
            state: rest.first()?.chars().next()?,
            ppid: rest.get(1)?.parse().ok()?,
            utime: rest.get(11)?.parse().ok()?,
            stime: rest.get(12)?.parse().ok()?,
        })
    }
}
