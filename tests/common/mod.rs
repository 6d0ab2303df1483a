//! Network-namespace lab shared by the `lab_*` integration tests.
//!
//! Every test builds its topology in fresh, uniquely named namespaces and
//! never touches the host's own interfaces, routes, firewall or /etc: all
//! commands run either inside a namespace (`ip netns exec`, `ip -n`) or only
//! read files the test itself wrote.
//!
//! Lab tests need root and real tools. Without them they skip with a visible
//! message, unless `DSCPROUTE_LAB=required` (set by CI), where a skip would
//! hide a broken runner, so it panics instead.

// Each test binary compiles its own copy of this module and uses a subset.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Once, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// Proof that the lab preconditions hold; namespaces are made from it.
pub struct Lab {
    _checked: (),
}

/// `None` (after a visible skip message) when the lab cannot run here: not
/// root, or one of `tools` (besides `ip`, always needed) is not installed.
/// Panics instead when `DSCPROUTE_LAB=required`.
pub fn lab(test_name: &str, tools: &[&str]) -> Option<Lab> {
    let required = std::env::var("DSCPROUTE_LAB").is_ok_and(|v| v == "required");
    match skip_reason(tools) {
        None => {
            static SWEEP: Once = Once::new();
            SWEEP.call_once(sweep_stale_namespaces);
            Some(Lab { _checked: () })
        }
        Some(reason) if required => {
            panic!("lab test {test_name} cannot run: {reason} (DSCPROUTE_LAB=required)")
        }
        Some(reason) => {
            // Straight to fd 2: libtest captures `eprintln!` of passing tests,
            // and a silent skip would look like a pass.
            let _ = writeln!(std::io::stderr(), "SKIP lab test {test_name}: {reason}");
            None
        }
    }
}

fn skip_reason(tools: &[&str]) -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    std::iter::once("ip")
        .chain(tools.iter().copied())
        .find(|tool| which::which(tool).is_err())
        .map(|tool| format!("missing tool {tool} (apt-get install {})", package_of(tool)))
}

fn package_of(tool: &str) -> &str {
    match tool {
        "ip" | "tc" | "ss" => "iproute2",
        "nft" => "nftables",
        t if t.starts_with("iptables") || t.starts_with("ip6tables") => "iptables",
        other => other,
    }
}

/// Deletes `dscpr-PID-N` namespaces left by test processes that no longer
/// exist (killed by a timeout, so Drop never ran). Only our own prefix, and
/// never one whose process is still alive: it may be a parallel test binary.
fn sweep_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("dscpr-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
        }
    }
}

impl Lab {
    /// A fresh namespace with `lo` up, deleted when dropped.
    pub fn netns(&self) -> Netns {
        Netns::new()
    }
}

/// Renders a command for failure messages.
pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd`, panicking with the command line, exit status and both
/// streams when it fails.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{}",
        failure("command failed", cmd, &out)
    );
    out
}

/// Runs `cmd` to completion; panics only when it cannot be started.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", describe(cmd)))
}

/// A readable report of a finished command, for assertion messages.
pub fn failure(what: &str, cmd: &Command, out: &Output) -> String {
    format!(
        "{what}: {}\n  status: {}\n  stderr: {}\n  stdout: {}",
        describe(cmd),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim_end(),
        String::from_utf8_lossy(&out.stdout).trim_end(),
    )
}

/// A named network namespace, deleted on drop (also when the test panics).
pub struct Netns {
    name: String,
}

/// Per-process counter; with the pid it keeps parallel tests and parallel
/// test binaries from ever picking the same name.
static NEXT: AtomicU32 = AtomicU32::new(0);

impl Netns {
    fn new() -> Netns {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("dscpr-{}-{n}", std::process::id());
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        // From here on Drop cleans up, even if bringing lo up fails.
        let ns = Netns { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME argv...`, not yet started (for long-running
    /// programs such as tcpdump). Arguments are passed as a vector, never
    /// through a shell.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(argv);
        cmd
    }

    /// Runs `argv` inside the namespace; the caller judges the outcome.
    pub fn exec(&self, argv: &[&str]) -> Output {
        run(&mut self.command(argv))
    }

    /// Runs `argv` inside the namespace and panics (with command and
    /// stderr) unless it succeeds.
    pub fn exec_ok(&self, argv: &[&str]) -> Output {
        run_ok(&mut self.command(argv))
    }

    /// Runs `f` on a dedicated thread that has joined this namespace, so it
    /// can open sockets there. `setns` moves only the calling thread, so the
    /// test thread and the rest of the process stay where they are; a panic
    /// in `f` is re-raised here.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = Path::new("/run/netns").join(&self.name);
        thread::scope(|s| {
            let worker = s.spawn(|| {
                let fd =
                    File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
                // SAFETY: a valid namespace fd; affects only this thread.
                let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(
                    rc,
                    0,
                    "setns({}): {}",
                    path.display(),
                    std::io::Error::last_os_error()
                );
                f()
            });
            worker
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Adds `cidr` (e.g. `10.0.0.1/24`, `fd00::1/64`) to `dev` and brings it
    /// up. IPv6 addresses skip duplicate address detection so they are
    /// usable at once instead of after ~2 s.
    pub fn addr(&self, dev: &str, cidr: &str) {
        let mut argv = vec!["ip", "addr", "add", cidr, "dev", dev];
        if cidr.contains(':') {
            argv.push("nodad");
        }
        self.exec_ok(&argv);
        self.exec_ok(&["ip", "link", "set", dev, "up"]);
    }

    /// Starts tcpdump on `dev` writing to `file`, and returns once it is
    /// really listening (its "listening on" line), not after a guessed
    /// sleep.
    pub fn capture(&self, dev: &str, file: &Path, filter: &str) -> Capture {
        let file_arg = file.to_str().expect("capture path must be UTF-8");
        // -U: write each packet to the file as soon as tcpdump gets it.
        // Not --immediate-mode: libpcap then uses a ring of snaplen-sized
        // slots, and on lo it kept only 16 of 64 small packets ("dropped by
        // kernel"); the default ring packs packets and hands them over within
        // about a second, which wait_for_packets absorbs.
        // -Z root: do not drop to the tcpdump user, who may not write into
        // the test's temp dir.
        let argv = [
            "tcpdump", "-i", dev, "-w", file_arg, "-U", "-Z", "root", filter,
        ];
        let mut cmd = self.command(&argv);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let command = describe(&cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        // Keep draining stderr for the whole capture so tcpdump never blocks.
        let reader = thread::spawn(move || {
            let mut all = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                all.push(line);
            }
            all
        });
        let mut capture = Capture {
            child,
            reader: Some(reader),
            file: file.to_path_buf(),
            command,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("listening on") => return capture,
                Ok(_) => {}
                Err(_) => {
                    let _ = capture.child.kill();
                    let stderr = capture.finish().join("\n");
                    panic!("{} never started listening:\n{stderr}", capture.command);
                }
            }
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        if !out.as_ref().is_ok_and(|o| o.status.success()) {
            let _ = writeln!(
                std::io::stderr(),
                "warning: could not delete netns {}: {out:?}",
                self.name
            );
        }
    }
}

/// A veth pair `a_dev` (in `a`) <-> `b_dev` (in `b`), both up. Created with
/// `ip -n A` so the pair never appears in the host namespace, where its name
/// could collide with a real interface.
pub fn veth(a: &Netns, a_dev: &str, b: &Netns, b_dev: &str) {
    run_ok(Command::new("ip").args([
        "-n", &a.name, "link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns",
        &b.name,
    ]));
    a.exec_ok(&["ip", "link", "set", a_dev, "up"]);
    b.exec_ok(&["ip", "link", "set", b_dev, "up"]);
}

/// A running tcpdump; killed on drop if not stopped.
pub struct Capture {
    child: Child,
    reader: Option<thread::JoinHandle<Vec<String>>>,
    file: PathBuf,
    command: String,
}

impl Capture {
    /// Waits until the file holds at least `n` packets (counted by
    /// `tcpdump -r`). Stopping earlier could lose packets still in flight.
    /// On timeout, stops tcpdump and panics with its statistics (dropped
    /// packets show up there).
    pub fn wait_for_packets(&mut self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = read_capture(&self.file, "").len();
            if got >= n {
                return;
            }
            if Instant::now() >= deadline {
                let stats = self.interrupt().join("\n");
                panic!(
                    "{}: only {got} of {n} packets after {timeout:?}\n{stats}",
                    self.command
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops tcpdump (SIGINT, so it closes the file cleanly) and returns its
    /// stderr lines, which end with its packet statistics.
    pub fn stop(mut self) -> Vec<String> {
        self.interrupt()
    }

    fn interrupt(&mut self) -> Vec<String> {
        // `ip netns exec` execs tcpdump in place, so the child pid is tcpdump.
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: signalling our own child, which has not been reaped yet.
        unsafe { libc::kill(pid, libc::SIGINT) };
        self.finish()
    }

    fn finish(&mut self) -> Vec<String> {
        let _ = self.child.wait();
        self.reader
            .take()
            .map(|r| r.join().unwrap_or_default())
            .unwrap_or_default()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if self.reader.is_some() {
            let _ = self.child.kill();
            self.finish();
        }
    }
}

/// The packets in `file` matching `filter` (empty: all), one
/// `tcpdump -r FILE -nn` line each. Reading a file needs no namespace.
/// Tolerates a truncated last record (the file may still be written to).
pub fn read_capture(file: &Path, filter: &str) -> Vec<String> {
    let mut cmd = Command::new("tcpdump");
    cmd.arg("-r").arg(file).arg("-nn");
    if !filter.is_empty() {
        cmd.arg(filter);
    }
    let out = run(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || stderr.contains("truncated"),
        "{}",
        failure("tcpdump -r failed", &cmd, &out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}
pub mod agent;
pub mod shared_dir;
pub mod tmux;
pub mod topology;
