//! Who gets the signal, on real kernels: a `user` marker and a `cgroup`
//! marker on client A (gateway applied on B), and `dscproute exec` for a
//! group and a cgroup marker. The marked process reaches the test address
//! through the VPN, every other one goes the normal way (the ISP), and
//! rollback restores A exactly. Needs root; skips visibly otherwise.
//!
//! `ip netns exec` mounts a fresh /sys, which hides the cgroup v2 mount, so
//! dscproute runs on A through `nsenter --net` for the cgroup tests (A's
//! client profile writes nothing under /etc, so no /etc overlay is needed).
//! Unit markers need systemd as PID 1, which the lab has not: they are
//! covered by the resolution tests with a fake `systemctl` (probe::marker,
//! plan::tests).

mod common;

use common::Netns;
use common::topology::{
    BIN, GROUP_PORTS, OTHER_PORTS, TARGET4, TARGET6, Topology, apply_ok, assert_same_state,
    dscproute_expect, dscproute_with, profile, rollback_ok, show, snapshot, stderr, stdout,
    topology, url,
};
use std::ffi::CString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A uid and gid with no passwd or group entry: setpriv needs no account.
const MARKED_UID: u32 = 4244;
const OTHER_UID: u32 = 4245;
/// Who "ran sudo" in the exec tests.
const SUDO_UID: u32 = 4246;

fn lab(name: &str) -> Option<Topology> {
    topology(name, &["curl", "setpriv", "nsenter"])
}

/// The lab's cgroup v2 mount, as dscproute finds it.
fn cgroup2_mount() -> PathBuf {
    let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    info.lines()
        .find_map(|l| {
            let (mount, fs) = l.split_once(" - ")?;
            (fs.split_whitespace().next()? == "cgroup2")
                .then(|| PathBuf::from(mount.split_whitespace().nth(4).unwrap()))
        })
        .expect("the lab needs a cgroup v2 mount")
}

/// A cgroup made for one test, removed on drop (also when the test
/// panics). Only the test's own short-lived children are ever moved into it.
struct TestCgroup {
    dir: PathBuf,
    /// Relative to the cgroup v2 root, as the profile names it.
    rel: String,
}

impl TestCgroup {
    fn new(tag: &str) -> TestCgroup {
        let rel = format!("dscproute-test-{}-{tag}", std::process::id());
        let dir = cgroup2_mount().join(&rel);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        TestCgroup { dir, rel }
    }

    fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    /// Remove it and make it again: the same path, a new cgroup (new id).
    fn remake(&self) {
        std::fs::remove_dir(&self.dir).expect("rmdir the empty test cgroup");
        std::fs::create_dir(&self.dir).expect("mkdir the test cgroup again");
    }

    /// Pids in the cgroup now.
    fn members(&self) -> Vec<String> {
        std::fs::read_to_string(self.procs())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // Its processes are children the test waited for: empty once they exited.
        let gone =
            common::topology::poll_until(Duration::from_secs(5), Duration::from_millis(50), || {
                std::fs::remove_dir(&self.dir).is_ok() || !self.dir.exists()
            });
        if !gone {
            eprintln!(
                "could not remove {} (still {:?})",
                self.dir.display(),
                self.members()
            );
        }
    }
}

/// A `sleep` started inside a test cgroup, killed and reaped on drop.
struct Sleeper(std::process::Child);

impl Sleeper {
    fn start_in(cgroup: &TestCgroup) -> Sleeper {
        let procs = CString::new(cgroup.procs().to_str().unwrap()).unwrap();
        let mut cmd = Command::new("sleep");
        cmd.arg("60");
        // SAFETY: open/write/close are async-signal-safe; the path was built before fork.
        unsafe {
            cmd.pre_exec(move || join_cgroup(&procs));
        }
        Sleeper(cmd.spawn().expect("start sleep"))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// In a forked child: move itself into the cgroup (`0` means the writer).
fn join_cgroup(procs: &CString) -> std::io::Result<()> {
    // SAFETY: a valid C string; plain system calls.
    unsafe {
        let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let n = libc::write(fd, b"0".as_ptr().cast(), 1);
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if n != 1 {
            return Err(err);
        }
    }
    Ok(())
}

/// `nsenter --net=/run/netns/NS [env VARS] dscproute --state-dir STATE ARGS`:
/// in A's network namespace, with the host's mounts (the cgroup v2 one).
fn dscproute_nsenter(ns: &Netns, state: &Path, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net=/run/netns/{}", ns.name()))
        .arg("--")
        .arg("env");
    for (k, v) in env {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.args([BIN, "--state-dir", state.to_str().unwrap()])
        .args(args);
    cmd.output().expect("run nsenter")
}

fn expect(out: Output, code: i32, what: &str) -> Output {
    assert_eq!(out.status.code(), Some(code), "{}", show(what, &out));
    out
}

/// curl argv for `GET /` from a local port range.
fn curl_argv(addr: &str, ports: (u16, u16)) -> Vec<String> {
    [
        "curl",
        "-gsS",
        "--max-time",
        "5",
        "--local-port",
        &format!("{}-{}", ports.0, ports.1),
        &url(addr, "/"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The body curl got (who answered), in `ns` as uid:gid with no other group.
fn fetch_as(ns: &Netns, uid: u32, addr: &str, ports: (u16, u16)) -> String {
    let id = uid.to_string();
    let mut argv = vec![
        "setpriv".to_string(),
        format!("--reuid={id}"),
        format!("--regid={id}"),
        "--clear-groups".into(),
    ];
    argv.extend(curl_argv(addr, ports));
    let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
    let out = ns.exec(&refs);
    assert!(
        out.status.success(),
        "{}",
        show(&format!("curl as {uid}"), &out)
    );
    stdout(&out)
}

/// As `fetch_as` (uid `OTHER_UID`), started from inside `cgroup`: the child
/// moves itself there (writes 0 to cgroup.procs) before it executes, so
/// only it and what it starts are in the cgroup.
fn fetch_in_cgroup(ns: &Netns, cgroup: &TestCgroup, addr: &str) -> String {
    let procs = CString::new(cgroup.procs().to_str().unwrap()).unwrap();
    let id = OTHER_UID.to_string();
    let mut cmd = ns.command(&[
        "setpriv",
        &format!("--reuid={id}"),
        &format!("--regid={id}"),
        "--clear-groups",
    ]);
    cmd.args(curl_argv(addr, GROUP_PORTS));
    // SAFETY: open/write/close are async-signal-safe; the path was built before fork.
    unsafe {
        cmd.pre_exec(move || join_cgroup(&procs));
    }
    let out = cmd.output().expect("run curl in the cgroup");
    assert!(out.status.success(), "{}", show("curl in the cgroup", &out));
    stdout(&out)
}

fn write_profile(t: &Topology, name: &str, text: &str) -> String {
    let p = t.path(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

// ---------------------------------------------------------------------------

/// `user = 4244`: a process running as uid 4244 (no account needed) reaches
/// the test address through the VPN over IPv4 and IPv6; uid 4245 goes to
/// the ISP. The rule reads back as ours (a second apply has nothing to do).
/// Rollback restores A exactly (and its nft ruleset, on that backend).
#[test]
fn a_user_marker_sends_that_users_traffic_through_the_vpn() {
    user_marker(
        "a_user_marker_sends_that_users_traffic_through_the_vpn",
        "iptables",
        "--uid-owner 4244",
    );
}

/// The same on the nftables backend (`meta skuid`).
#[test]
fn a_user_marker_on_the_nft_backend_sends_that_users_traffic_through_the_vpn() {
    user_marker(
        "a_user_marker_on_the_nft_backend_sends_that_users_traffic_through_the_vpn",
        "nft",
        "meta skuid 4244",
    );
}

fn user_marker(name: &str, backend: &str, rule: &str) {
    let Some(t) = lab(name) else {
        return;
    };
    let (sa, sb) = (t.state(&t.a), t.state(&t.b));
    let p = write_profile(
        &t,
        "user.toml",
        &format!("backend = \"{backend}\"\n[marker]\nuser = {MARKED_UID}\ndscp = 7\n"),
    );
    apply_ok(&t.b, &sb, "gateway.toml");
    let before = snapshot(&t.a);
    let ruleset = stdout(&t.a.exec_ok(&["nft", "list", "ruleset"]));
    let out = dscproute_expect(&t.a, &sa, &["apply", "--profile", &p, "--yes"], 0);
    let shown = if backend == "nft" {
        stdout(&t.a.exec_ok(&["nft", "list", "table", "inet", "dscproute"]))
    } else {
        stdout(&out)
    };
    assert!(shown.contains(rule), "{shown}\n{}", show("apply", &out));
    let again = dscproute_expect(&t.a, &sa, &["plan", "--profile", &p], 0);
    assert!(
        stdout(&again).contains("Nothing to do"),
        "{}",
        show("plan again", &again)
    );
    for addr in [TARGET4, TARGET6] {
        assert_eq!(
            fetch_as(&t.a, MARKED_UID, addr, GROUP_PORTS),
            "vpn",
            "uid {MARKED_UID} to {addr}"
        );
        assert_eq!(
            fetch_as(&t.a, OTHER_UID, addr, OTHER_PORTS),
            "isp",
            "uid {OTHER_UID} to {addr}"
        );
    }
    rollback_ok(&t.a, &sa);
    assert_same_state(
        &before,
        &snapshot(&t.a),
        "A after rollback of the user marker",
    );
    assert_eq!(stdout(&t.a.exec_ok(&["nft", "list", "ruleset"])), ruleset);
    assert_eq!(fetch_as(&t.a, MARKED_UID, TARGET4, GROUP_PORTS), "isp");
}

/// `cgroup = dscproute-test-PID-…`: only the test's child moved into that
/// cgroup goes through the VPN; the same uid outside it goes to the ISP.
/// The plan refuses while the cgroup does not exist. Rollback restores A
/// exactly; the cgroup is removed afterwards.
#[test]
fn a_cgroup_marker_sends_only_that_cgroups_traffic_through_the_vpn() {
    let Some(t) = lab("a_cgroup_marker_sends_only_that_cgroups_traffic_through_the_vpn") else {
        return;
    };
    let (sa, sb) = (t.state(&t.a), t.state(&t.b));
    let cg = TestCgroup::new("cg");
    let p = write_profile(
        &t,
        "cgroup.toml",
        &format!("[marker]\ncgroup = \"{}\"\ndscp = 7\n", cg.rel),
    );
    let missing = write_profile(
        &t,
        "missing.toml",
        &format!("[marker]\ncgroup = \"{}-missing\"\ndscp = 7\n", cg.rel),
    );
    let refused = expect(
        dscproute_nsenter(&t.a, &sa, &[], &["apply", "--profile", &missing, "--yes"]),
        3,
        "apply with a missing cgroup",
    );
    assert!(
        stderr(&refused).contains("does not exist") || stdout(&refused).contains("does not exist"),
        "{}",
        show("apply with a missing cgroup", &refused)
    );
    apply_ok(&t.b, &sb, "gateway.toml");
    let before = snapshot(&t.a);
    let out = expect(
        dscproute_nsenter(&t.a, &sa, &[], &["apply", "--profile", &p, "--yes"]),
        0,
        "apply",
    );
    assert!(
        stdout(&out).contains(&format!("-m cgroup --path {}", cg.rel)),
        "{}",
        show("apply", &out)
    );
    for addr in [TARGET4, TARGET6] {
        assert_eq!(
            fetch_in_cgroup(&t.a, &cg, addr),
            "vpn",
            "the cgroup's process to {addr}"
        );
        assert_eq!(
            fetch_as(&t.a, OTHER_UID, addr, OTHER_PORTS),
            "isp",
            "a process outside to {addr}"
        );
    }
    assert!(
        cg.members().is_empty(),
        "the test's children left the cgroup: {:?}",
        cg.members()
    );
    // doctor names the processes in the cgroup (a sleep the test put there).
    let sleeper = Sleeper::start_in(&cg);
    let doctor = dscproute_nsenter(&t.a, &sa, &[], &["doctor", "--profile", &p, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&doctor.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", show("doctor --json", &doctor)));
    let check = report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "cgroup"))
        .unwrap_or_else(|| panic!("no cgroup check in {report:#}"));
    let detail = check["detail"].as_str().unwrap_or_default();
    assert_eq!(check["status"], "pass", "{check:#}");
    assert!(
        detail.starts_with("1 process runs in cgroup")
            && detail.ends_with(&format!(": {} sleep", sleeper.pid())),
        "{detail}"
    );
    drop(sleeper);

    let plan = |what: &str| {
        expect(
            dscproute_nsenter(&t.a, &sa, &[], &["plan", "--profile", &p]),
            0,
            what,
        )
    };
    assert!(stdout(&plan("plan again")).contains("Nothing to do"));

    // The same path made anew (as a restarted unit's cgroup is): the kernel
    // still holds the old cgroup, so the rule no longer matches; the plan
    // sees the new id in the rule's comment, and apply re-adds the rule.
    cg.remake();
    assert_eq!(
        fetch_in_cgroup(&t.a, &cg, TARGET4),
        "isp",
        "a rule bound to the old cgroup"
    );
    assert!(!stdout(&plan("plan after the cgroup was made anew")).contains("Nothing to do"));
    expect(
        dscproute_nsenter(&t.a, &sa, &[], &["apply", "--profile", &p, "--yes"]),
        0,
        "re-apply",
    );
    assert_eq!(
        fetch_in_cgroup(&t.a, &cg, TARGET4),
        "vpn",
        "after apply re-resolved it"
    );

    rollback_all(&t.a, &sa, &before);
    assert_same_state(
        &before,
        &snapshot(&t.a),
        "A after rollback of the cgroup marker",
    );
    assert_eq!(fetch_in_cgroup(&t.a, &cg, TARGET4), "isp");
}

/// Roll back until A is as `before`: one rollback per transaction on this
/// branch, one for the whole setup once the journal holds it; at most three.
fn rollback_all(a: &common::topology::Host, state: &Path, before: &str) {
    for _ in 0..3 {
        let out = dscproute_nsenter(a, state, &[], &["rollback", "--yes"]);
        assert_eq!(out.status.code(), Some(0), "{}", show("rollback", &out));
        if snapshot(a) == before {
            return;
        }
    }
}

/// `dscproute exec` refuses (exit 4, one line) while the client side is not
/// applied; then, for a group marker, the command runs with that gid as
/// primary group (as the sudo user when SUDO_UID is set) and its traffic
/// goes through the VPN, while root's own goes to the ISP; for a cgroup
/// marker it runs inside the cgroup, through the VPN. The exit status is
/// the command's. Rollback restores A exactly.
#[test]
fn exec_runs_a_command_with_the_signal_and_refuses_before_apply() {
    let Some(t) = lab("exec_runs_a_command_with_the_signal_and_refuses_before_apply") else {
        return;
    };
    let (sa, sb) = (t.state(&t.a), t.state(&t.b));
    let group = profile("marker.toml");
    let curl = curl_argv(TARGET4, GROUP_PORTS);
    let exec_args = |p: &str, cmd: &[String]| -> Vec<String> {
        let mut v: Vec<String> = ["exec", "--profile", p, "--"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.extend(cmd.iter().cloned());
        v
    };
    let refs = |v: &[String]| -> Vec<String> { v.to_vec() };
    let run = |env: &[(String, String)], args: &[String]| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        dscproute_with(&t.a, &sa, env, &a)
    };

    let before = snapshot(&t.a);
    let out = expect(run(&[], &exec_args(&group, &curl)), 4, "exec before apply");
    let err = stderr(&out);
    assert!(
        err.contains("not applied") && err.contains("dscproute apply") && err.lines().count() == 1,
        "{err}"
    );
    assert!(
        stdout(&out).is_empty(),
        "the command must not have run: {}",
        show("exec", &out)
    );

    apply_ok(&t.b, &sb, "gateway.toml");
    apply_ok(&t.a, &sa, "marker.toml");
    let out = expect(run(&[], &exec_args(&group, &curl)), 0, "exec curl (group)");
    assert_eq!(stdout(&out), "vpn");
    assert!(
        stderr(&out).contains("marker: group 4242"),
        "says which profile: {}",
        stderr(&out)
    );
    let plain =
        t.a.exec(&curl.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(stdout(&plain), "isp", "root's own curl, without exec");
    // Through sudo: the invoking user with the marked group as primary group.
    let sudo = vec![
        ("SUDO_UID".to_string(), SUDO_UID.to_string()),
        ("SUDO_GID".to_string(), SUDO_UID.to_string()),
    ];
    let id = expect(
        run(&sudo, &exec_args(&group, &refs(&["id".into()]))),
        0,
        "exec id",
    );
    let id = stdout(&id);
    assert!(id.contains("uid=4246") && id.contains("gid=4242"), "{id}");
    let out = expect(
        run(&sudo, &exec_args(&group, &curl)),
        0,
        "exec curl as the sudo user",
    );
    assert_eq!(stdout(&out), "vpn");
    // The command's exit status is exec's.
    let sh: Vec<String> = ["sh", "-c", "exit 7"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    expect(run(&[], &exec_args(&group, &sh)), 7, "exec sh -c 'exit 7'");
    let nope: Vec<String> = vec!["/nonexistent/command".into()];
    expect(
        run(&[], &exec_args(&group, &nope)),
        127,
        "exec of a missing command",
    );
    rollback_ok(&t.a, &sa);
    assert_same_state(
        &before,
        &snapshot(&t.a),
        "A after rollback of the group marker",
    );

    // A cgroup marker: exec moves itself into the cgroup, then becomes the sudo user.
    let cg = TestCgroup::new("exec");
    let p = write_profile(
        &t,
        "cgroup.toml",
        &format!("[marker]\ncgroup = \"{}\"\ndscp = 7\n", cg.rel),
    );
    let env: Vec<(&str, String)> = vec![
        ("SUDO_UID", SUDO_UID.to_string()),
        ("SUDO_GID", SUDO_UID.to_string()),
    ];
    let args = exec_args(&p, &curl);
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = expect(
        dscproute_nsenter(&t.a, &sa, &env, &a),
        4,
        "exec (cgroup) before apply",
    );
    assert!(stderr(&out).contains("not applied"), "{}", stderr(&out));
    expect(
        dscproute_nsenter(&t.a, &sa, &[], &["apply", "--profile", &p, "--yes"]),
        0,
        "apply cgroup",
    );
    let out = expect(
        dscproute_nsenter(&t.a, &sa, &env, &a),
        0,
        "exec curl (cgroup)",
    );
    assert_eq!(stdout(&out), "vpn");
    let id_args = exec_args(&p, &["id".to_string(), "-u".to_string()]);
    let ia: Vec<&str> = id_args.iter().map(String::as_str).collect();
    let out = expect(
        dscproute_nsenter(&t.a, &sa, &env, &ia),
        0,
        "exec id (cgroup)",
    );
    assert_eq!(stdout(&out).trim(), "4246", "runs as the sudo user");
    assert!(
        cg.members().is_empty(),
        "exec's processes ended: {:?}",
        cg.members()
    );
    expect(
        dscproute_nsenter(&t.a, &sa, &[], &["rollback", "--yes"]),
        0,
        "rollback",
    );
    assert_same_state(
        &before,
        &snapshot(&t.a),
        "A after rollback of the cgroup marker",
    );
}

/// The cgroup marker on the nftables backend: `socket cgroupv2` with the
/// path where nft looks (below /sys/fs/cgroup: `unified/…` on this hybrid
/// host). Only the cgroup's process goes through the VPN; a second plan has
/// nothing to do; the cgroup made anew leaves a stale rule (nft lists it by
/// its old id), which the plan replaces; rollback restores A and its nft
/// ruleset exactly.
#[test]
fn a_cgroup_marker_on_the_nft_backend_follows_its_cgroup() {
    let Some(t) = lab("a_cgroup_marker_on_the_nft_backend_follows_its_cgroup") else {
        return;
    };
    let (sa, sb) = (t.state(&t.a), t.state(&t.b));
    let cg = TestCgroup::new("nftcg");
    let p = write_profile(
        &t,
        "cgroup-nft.toml",
        &format!(
            "backend = \"nft\"\n[marker]\ncgroup = \"{}\"\ndscp = 7\n",
            cg.rel
        ),
    );
    apply_ok(&t.b, &sb, "gateway.toml");
    let before = snapshot(&t.a);
    let ruleset = stdout(&t.a.exec_ok(&["nft", "list", "ruleset"]));
    expect(
        dscproute_nsenter(&t.a, &sa, &[], &["apply", "--profile", &p, "--yes"]),
        0,
        "apply on nft",
    );
    // `ip netns exec` mounts a sysfs without the cgroup tree: nft would
    // print the cgroup's id there, so list it from the host's mounts.
    let listed = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", t.a.name()))
        .args(["nft", "list", "table", "inet", "dscproute"])
        .output()
        .expect("run nsenter");
    let table = stdout(&listed);
    assert!(
        table.contains("socket cgroupv2 level") && table.contains(&format!("unified/{}", cg.rel))
            || table.contains(&format!("\"{}\"", cg.rel)),
        "{table}"
    );
    for addr in [TARGET4, TARGET6] {
        assert_eq!(fetch_in_cgroup(&t.a, &cg, addr), "vpn", "cgroup to {addr}");
        assert_eq!(
            fetch_as(&t.a, OTHER_UID, addr, OTHER_PORTS),
            "isp",
            "outside to {addr}"
        );
    }
    let plan = |what: &str| {
        expect(
            dscproute_nsenter(&t.a, &sa, &[], &["plan", "--profile", &p]),
            0,
            what,
        )
    };
    assert!(stdout(&plan("plan again")).contains("Nothing to do"));
    cg.remake();
    assert_eq!(fetch_in_cgroup(&t.a, &cg, TARGET4), "isp", "a stale rule");
    assert!(!stdout(&plan("plan after the cgroup was made anew")).contains("Nothing to do"));
    expect(
        dscproute_nsenter(&t.a, &sa, &[], &["apply", "--profile", &p, "--yes"]),
        0,
        "re-apply on nft",
    );
    assert_eq!(fetch_in_cgroup(&t.a, &cg, TARGET4), "vpn", "after re-apply");
    rollback_all(&t.a, &sa, &before);
    assert_same_state(&before, &snapshot(&t.a), "A after rollback (nft cgroup)");
    assert_eq!(stdout(&t.a.exec_ok(&["nft", "list", "ruleset"])), ruleset);
}
