//! A `dscproute agent` run by a lab test: its stdout lines are read on a
//! thread and kept; it is killed (SIGKILL) and reaped on drop unless it
//! already exited, so no agent outlives its test.

use super::Netns;
use super::topology::dscproute_command;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Agent {
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Agent {
    /// `dscproute agent --profile PROFILE EXTRA…` in `ns`.
    pub fn start(ns: &Netns, state: &Path, profile: &str, extra: &[&str]) -> Agent {
        let mut args = vec!["agent", "--profile", profile];
        args.extend_from_slice(extra);
        let mut child = dscproute_command(ns, state, &[], &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the agent");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                eprintln!("agent: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Agent {
            child: Some(child),
            lines,
            seen: vec![],
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The first line (seen so far or to come) containing every needle,
    /// within `timeout`; with `consume`, that line is not found again.
    fn find(&mut self, needles: &[&str], timeout: Duration, consume: bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self
                .seen
                .iter()
                .position(|l| needles.iter().all(|n| l.contains(n)))
            {
                return if consume {
                    self.seen.remove(i)
                } else {
                    self.seen[i].clone()
                };
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!(
                    "no agent line with {needles:?} within {timeout:?}; saw {:#?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for a line containing `needle`; it stays to be found again.
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> String {
        self.find(&[needle], timeout, false)
    }

    /// Waits for a line not taken before containing every needle.
    pub fn take_line(&mut self, needles: &[&str], timeout: Duration) -> String {
        self.find(needles, timeout, true)
    }

    /// SIGTERM, then the exit status and how long it took, within `limit`.
    pub fn term(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        let pid = self.pid() as libc::pid_t;
        let start = Instant::now();
        // SAFETY: a signal to our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(st) = child.try_wait().expect("wait for the agent") {
                self.child = None;
                return (st, start.elapsed());
            }
            assert!(
                start.elapsed() < limit,
                "the agent did not exit within {limit:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
