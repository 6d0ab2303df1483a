//! The escape hatches when things are odd (issue 10, points 9, 10 and 13),
//! on real kernels in the namespace lab of tests/common/topology.rs:
//! - a SIGTERM to the confirm timer rolls back at once; a SIGKILLed timer
//!   is reported by `status` with what to run;
//! - a SIGTERM to `apply` lets the step in flight finish, then undoes all;
//! - after `nft flush ruleset`, `rollback` counts what is gone and leaves no
//!   empty tables or base chains;
//! - a corrupt or truncated journal: `status` says what to run, `rollback
//!   --all` removes everything ours and keeps the journal aside;
//! - `status` names drift, and does not call a running apply interrupted;
//! - `watch` stops with an error when its interface is deleted.
//!
//! Needs root; skips visibly otherwise (tests/common).

mod common;

use common::topology::{
    BIN, Blocked, Host, Mode, Topology, Wrappers, apply_ok, assert_same_state, dscproute_command,
    dscproute_expect, poll_until, profile, rollback_ok, show, snapshot, stderr, stdout, topology,
};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn lab(name: &str) -> Option<Topology> {
    topology(name, &["curl", "setpriv"])
}

/// Everything `snapshot` compares, plus the whole nftables ruleset: no empty
/// table or base chain may be left behind.
fn full_state(host: &Host) -> String {
    let nft = host.exec_ok(&["nft", "list", "ruleset"]);
    format!(
        "{}== nft list ruleset\n{}",
        snapshot(host),
        String::from_utf8_lossy(&nft.stdout)
    )
}

fn current_json(state: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(state.join("current.json")).expect("current.json");
    serde_json::from_str(&text).expect("journal JSON")
}

fn timer_log(state: &Path) -> String {
    std::fs::read_to_string(state.join("timer.log")).unwrap_or_default()
}

/// Is `pid` still the confirm timer of `txn` (not a zombie, not reused)?
fn timer_alive(pid: u32, txn: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
        args.contains(&&b"__confirm-timer"[..]) && args.contains(&txn.as_bytes())
    })
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: signalling a process this test started (checked by the caller).
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill {pid}: {}", std::io::Error::last_os_error());
}

/// The confirm timer of one transaction; SIGKILLed on drop if still there,
/// so a failing test leaves no process behind.
struct Timer {
    pid: u32,
    txn: String,
}

impl Timer {
    fn of(state: &Path) -> Timer {
        let j = current_json(state);
        let t = Timer {
            pid: j["timer_pid"].as_u64().expect("timer_pid") as u32,
            txn: j["id"].as_str().expect("id").to_string(),
        };
        assert!(t.alive(), "the timer {} is not running", t.pid);
        t
    }

    fn alive(&self) -> bool {
        timer_alive(self.pid, &self.txn)
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if self.alive() {
            // SAFETY: our own timer, checked just above.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// `apply --profile gateway.toml --yes --confirm SECS` on B.
fn apply_with_confirm(t: &Topology, secs: &str) -> Timer {
    let state = t.state(&t.b);
    let p = profile("gateway.toml");
    dscproute_expect(
        &t.b,
        &state,
        &["apply", "--profile", &p, "--yes", "--confirm", secs],
        0,
    );
    Timer::of(&state)
}

/// Waits (bounded) until B is back to `want`.
fn wait_for(host: &Host, want: &str, timeout: Duration, ctx: &str) {
    let mut last = String::new();
    if !poll_until(timeout, Duration::from_millis(100), || {
        last = full_state(host);
        last == want
    }) {
        assert_same_state(want, &last, ctx);
    }
}

// ---------------------------------------------------------------------------
// Point 9: the confirm timer and signals.

/// Logout sends SIGTERM to the whole session: the timer must not die
/// silently (it did, and status kept saying "rolled back in N s"). It rolls
/// the change back at once, long before the deadline.
#[test]
fn sigterm_to_the_confirm_timer_rolls_back_at_once() {
    let Some(t) = lab("sigterm_to_the_confirm_timer_rolls_back_at_once") else {
        return;
    };
    let state = t.state(&t.b);
    let before = full_state(&t.b);
    let timer = apply_with_confirm(&t, "600");
    assert_ne!(full_state(&t.b), before, "apply changed nothing");
    let sent = Instant::now();
    signal(timer.pid, libc::SIGTERM);
    wait_for(
        &t.b,
        &before,
        Duration::from_secs(20),
        &format!(
            "after SIGTERM to the timer; its log:\n{}",
            timer_log(&state)
        ),
    );
    // At once: far from the 600 s deadline (the poll itself reads B's
    // whole state every 100 ms).
    let took = sent.elapsed();
    assert!(took < Duration::from_secs(60), "not at once: {took:?}");
    eprintln!("state restored {took:?} after the SIGTERM");
    assert!(
        poll_until(Duration::from_secs(10), Duration::from_millis(100), || {
            !timer.alive()
        }),
        "the timer did not exit after its rollback"
    );
    let log = timer_log(&state);
    assert!(log.contains("got SIGTERM"), "{log}");
    assert!(log.contains("timer got SIGTERM: rolled back"), "{log}");
    let out = dscproute_expect(&t.b, &state, &["status"], 0);
    assert!(
        stdout(&out).contains(": rolled back ("),
        "{}",
        show("status", &out)
    );
    assert!(stdout(&out).contains("Nothing of dscproute's is in place"));
}

/// A timer killed by SIGKILL cannot act: status says it is gone and what
/// to run, before and after the deadline (not "rolled back in 0 s").
#[test]
fn status_tells_when_the_timer_is_gone() {
    let Some(t) = lab("status_tells_when_the_timer_is_gone") else {
        return;
    };
    let state = t.state(&t.b);
    let before = full_state(&t.b);
    // Long enough that the first status surely comes before the deadline.
    let timer = apply_with_confirm(&t, "15");
    let deadline = current_json(&state)["confirm_deadline_unix"]
        .as_u64()
        .unwrap();
    signal(timer.pid, libc::SIGKILL);
    assert!(poll_until(
        Duration::from_secs(10),
        Duration::from_millis(50),
        || !timer.alive()
    ));
    let out = dscproute_expect(&t.b, &state, &["status"], 1);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("timer (pid {}) is gone", timer.pid))
            && text.contains("nothing will roll this change back"),
        "{}",
        show("status before the deadline", &out)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&dscproute_expect(&t.b, &state, &["status", "--json"], 1).stdout)
            .unwrap();
    assert_eq!(v["timer"]["alive"], false, "{v:#}");
    let past = std::time::UNIX_EPOCH + Duration::from_secs(deadline + 1);
    assert!(poll_until(
        Duration::from_secs(20),
        Duration::from_millis(200),
        || std::time::SystemTime::now() >= past
    ));
    let out = dscproute_expect(&t.b, &state, &["status"], 1);
    let text = stdout(&out);
    assert!(
        text.contains("deadline passed") && text.contains("nothing was rolled back"),
        "{}",
        show("status after the deadline", &out)
    );
    assert!(text.contains("run `dscproute rollback`"), "{text}");
    assert!(!text.contains("rolled back in"), "{text}");
    rollback_ok(&t.b, &state);
    assert_same_state(&before, &full_state(&t.b), "after rollback");
}

/// Start `apply gateway.toml` on B with the wrappers blocking mutating call
/// `k`; returns once it is blocked there.
fn blocked_apply<'a>(t: &Topology, w: &'a Wrappers, k: usize) -> Blocked<'a> {
    w.arm_block();
    let mut cmd = dscproute_command(
        &t.b,
        &t.state(&t.b),
        &w.env(Mode::Block, k),
        &["apply", "--profile", &profile("gateway.toml"), "--yes"],
    );
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let run = Blocked::new(cmd.spawn().expect("start apply"), w);
    assert!(
        poll_until(Duration::from_secs(20), Duration::from_millis(20), || w
            .reached()),
        "apply never reached mutating call {k}"
    );
    run
}

/// SIGTERM while a step's command runs: the command finishes (it is not
/// cut short, nor left to finish after the undo), nothing after it starts,
/// and everything done is undone: the host is as before.
#[test]
fn sigterm_to_apply_finishes_the_step_in_flight_then_undoes_all() {
    let Some(t) = lab("sigterm_to_apply_finishes_the_step_in_flight_then_undoes_all") else {
        return;
    };
    let before = full_state(&t.b);
    let w = Wrappers::install(&t.path("wrap"));
    let k = 3;
    let apply = blocked_apply(&t, &w, k);
    signal(apply.pid(), libc::SIGTERM);
    assert!(
        w.release(Duration::from_secs(10)),
        "could not release call {k}"
    );
    let out = apply.finish(Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}", show("apply", &out));
    assert!(
        stderr(&out).contains("apply stopped by SIGTERM"),
        "{}",
        show("apply", &out)
    );
    // The undo came after the blocked call.
    let calls = w.calls();
    assert!(calls.len() > k, "no undo after call {k}: {calls:#?}");
    assert_same_state(&before, &full_state(&t.b), "after the stopped apply");
    let status = dscproute_expect(&t.b, &t.state(&t.b), &["status"], 0);
    assert!(
        stdout(&status).contains("failed and undone"),
        "{}",
        show("status", &status)
    );
}

// ---------------------------------------------------------------------------
// Point 13: status while an apply runs, and drift.

#[test]
fn status_while_an_apply_holds_the_lock_says_it_is_running() {
    let Some(t) = lab("status_while_an_apply_holds_the_lock_says_it_is_running") else {
        return;
    };
    let before = full_state(&t.b);
    let state = t.state(&t.b);
    let w = Wrappers::install(&t.path("wrap"));
    let apply = blocked_apply(&t, &w, 2);
    let out = dscproute_expect(&t.b, &state, &["status"], 0);
    let text = stdout(&out);
    assert!(
        text.contains(&format!("An apply is running (pid {})", apply.pid())),
        "{}",
        show("status", &out)
    );
    assert!(!text.contains("interrupted:"), "{text}");
    assert!(!text.contains("was interrupted"), "{text}");
    assert!(w.release(Duration::from_secs(10)));
    let out = apply.finish(Duration::from_secs(30));
    assert!(out.status.success(), "{}", show("apply", &out));
    rollback_ok(&t.b, &state);
    assert_same_state(&before, &full_state(&t.b), "after rollback");
}

/// Our jump and our route deleted by hand: status names both and says what
/// to run; rollback then counts them as gone and restores the host.
#[test]
fn status_names_drift_and_rollback_still_restores() {
    let Some(t) = lab("status_names_drift_and_rollback_still_restores") else {
        return;
    };
    let before = full_state(&t.b);
    let state = t.state(&t.b);
    apply_ok(&t.b, &state, "gateway.toml");
    let ok = dscproute_expect(&t.b, &state, &["status"], 0);
    assert!(!stdout(&ok).contains("Drift"), "{}", show("status", &ok));

    let save = String::from_utf8_lossy(&t.b.exec_ok(&["iptables-save", "-t", "mangle"]).stdout)
        .into_owned();
    let jump = save
        .lines()
        .find(|l| l.starts_with("-A PREROUTING ") && l.ends_with("-j DSCPROUTE-ROUTE"))
        .unwrap_or_else(|| panic!("no jump to DSCPROUTE-ROUTE:\n{save}"));
    let spec: Vec<&str> = jump["-A PREROUTING ".len()..].split(' ').collect();
    let mut del = vec!["iptables", "-w", "-t", "mangle", "-D", "PREROUTING"];
    del.extend(&spec);
    t.b.exec_ok(&del);
    t.b.exec_ok(&["ip", "route", "del", "default", "table", "100"]);

    let out = dscproute_expect(&t.b, &state, &["status"], 1);
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "missing: IPv4 mangle PREROUTING rule `{}`",
            spec.join(" ")
        )),
        "{}",
        show("status", &out)
    );
    assert!(
        text.contains("missing: IPv4 route default via 10.8.0.1 dev wg0 table 100"),
        "{text}"
    );
    let advice = text.lines().find(|l| l.starts_with("! ")).unwrap_or("");
    assert!(
        advice.contains("dscproute apply --profile") && advice.contains("dscproute rollback"),
        "{text}"
    );
    let out = rollback_ok(&t.b, &state);
    assert!(
        stdout(&out).contains("already gone"),
        "{}",
        show("rollback", &out)
    );
    assert_same_state(&before, &full_state(&t.b), "after rollback");
}

// ---------------------------------------------------------------------------
// Point 10: escape hatches.

/// A firewall reload (`nft flush ruleset`) removed our rules: rollback
/// counts them as gone (exit 0, not "partly failed") and creates no table
/// or base chain on the way.
#[test]
fn rollback_after_a_firewall_flush_counts_what_is_gone() {
    let Some(t) = lab("rollback_after_a_firewall_flush_counts_what_is_gone") else {
        return;
    };
    let before = full_state(&t.b);
    let state = t.state(&t.b);
    apply_ok(&t.b, &state, "gateway.toml");
    t.b.exec_ok(&["nft", "flush", "ruleset"]);
    let out = dscproute_expect(&t.b, &state, &["rollback", "--yes"], 0);
    let text = stdout(&out);
    assert!(
        text.contains("Rolled back transaction") && !text.contains("partly"),
        "{}",
        show("rollback", &out)
    );
    assert!(text.contains("already gone"), "{}", show("rollback", &out));
    assert_same_state(&before, &full_state(&t.b), "after flush and rollback");
}

/// `rollback --all` too leaves no empty table behind (it cannot know what
/// was there: it drops the tables it emptied while nothing else is in them).
#[test]
fn rollback_all_without_a_journal_leaves_no_empty_tables() {
    let Some(t) = lab("rollback_all_without_a_journal_leaves_no_empty_tables") else {
        return;
    };
    // Values the profile would set: without a journal they cannot come back.
    t.b.sysctl_w(&["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
    let before = full_state(&t.b);
    let state = t.state(&t.b);
    apply_ok(&t.b, &state, "gateway.toml");
    std::fs::remove_file(state.join("current.json")).unwrap();
    dscproute_expect(&t.b, &state, &["rollback", "--all", "--yes"], 0);
    assert_same_state(&before, &full_state(&t.b), "after rollback --all");
}

/// A corrupt and a truncated journal: status exits 1 with one line of
/// advice; `rollback --all` removes everything ours by its tags, says the
/// journal was unreadable and keeps it aside (0600).
#[test]
fn an_unreadable_journal_does_not_block_the_escape_hatch() {
    let Some(t) = lab("an_unreadable_journal_does_not_block_the_escape_hatch") else {
        return;
    };
    t.b.sysctl_w(&["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"]);
    let before = full_state(&t.b);
    let state = t.state(&t.b);
    for (how, damage) in [
        (
            "corrupt",
            (|_: &[u8]| b"\x00\xffnot json at all".to_vec()) as fn(&[u8]) -> Vec<u8>,
        ),
        ("truncated", |j: &[u8]| j[..j.len() / 2].to_vec()),
    ] {
        apply_ok(&t.b, &state, "gateway.toml");
        let journal = state.join("current.json");
        let original = std::fs::read(&journal).unwrap();
        std::fs::write(&journal, damage(&original)).unwrap();

        let out = dscproute_expect(&t.b, &state, &["status"], 1);
        let advice: Vec<String> = stdout(&out)
            .lines()
            .filter(|l| l.starts_with("! "))
            .map(str::to_string)
            .collect();
        assert_eq!(advice.len(), 1, "{how}: {}", show("status", &out));
        assert!(
            advice[0].contains("current.json") && advice[0].contains("`dscproute rollback --all`"),
            "{how}: {}",
            show("status", &out)
        );
        let out = dscproute_expect(&t.b, &state, &["rollback", "--yes"], 1);
        assert!(
            stderr(&out).contains("rollback --all"),
            "{how}: {}",
            show("rollback", &out)
        );

        let out = dscproute_expect(&t.b, &state, &["rollback", "--all", "--yes"], 0);
        let text = stdout(&out);
        assert!(
            text.contains("journal was unreadable") && text.contains("kept as"),
            "{how}: {}",
            show("rollback --all", &out)
        );
        assert_same_state(
            &before,
            &full_state(&t.b),
            &format!("{how}: after rollback --all"),
        );
        assert!(!journal.exists(), "{how}: the journal is still in place");
        let kept: Vec<_> = std::fs::read_dir(&state)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("current.json.corrupt-")
            })
            .collect();
        assert_eq!(kept.len(), 1, "{how}: {kept:?}");
        let mode = kept[0].metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{how}");
        assert_eq!(
            std::fs::read(kept[0].path()).unwrap(),
            damage(&original),
            "{how}: kept as it was"
        );
        std::fs::remove_file(kept[0].path()).unwrap();
        let out = dscproute_expect(&t.b, &state, &["status"], 0);
        assert!(
            stdout(&out).contains("Nothing of dscproute's is in place"),
            "{how}: {}",
            show("status", &out)
        );
    }
}

// ---------------------------------------------------------------------------
// Point 13: watch and a vanishing interface.

#[test]
fn watch_stops_with_an_error_when_its_interface_is_deleted() {
    let Some(lab) = common::lab(
        "watch_stops_with_an_error_when_its_interface_is_deleted",
        &[],
    ) else {
        return;
    };
    let (a, b) = (lab.netns(), lab.netns());
    common::veth(&a, "w0", &b, "w1");
    let mut child = a
        .command(&[BIN, "watch", "--interface", "w0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start watch");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut guard = KillOnDrop(child);
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(l) if l.contains("watching") => {}
        other => panic!("watch did not start: {other:?}"),
    }
    a.exec_ok(&["ip", "link", "del", "w0"]);
    let done = poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
        matches!(guard.0.try_wait(), Ok(Some(_)))
    });
    assert!(
        done,
        "watch still runs 10 s after its interface was deleted"
    );
    let status = guard.0.wait().unwrap();
    let said: Vec<String> = rx.try_iter().collect();
    assert_eq!(status.code(), Some(1), "{said:?}");
    assert!(
        said.iter()
            .any(|l| l.contains("interface \"w0\" disappeared")),
        "{said:?}"
    );
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
