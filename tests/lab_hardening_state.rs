//! The state directory, its journal and its lock cannot be turned against
//! root (issue 10, points 2–5), on real kernels in the namespace lab:
//! - under `umask 0` everything is created with its own mode (state dir and
//!   history 0700, files 0600, the rt_tables drop-in 0644 in a 0755 dir,
//!   `persist --root` files 0644 in 0755 dirs);
//! - a link planted in the state dir is refused and its target untouched;
//! - a state dir another user owns or can write is refused (exit 4, with
//!   the fix) before anything changes;
//! - the lock covers the network namespace, whatever the state dir, and
//!   only it. Needs root; skips visibly otherwise.

mod common;

use common::topology::{
    Blocked, Mode, Topology, Wrappers, assert_same_state, dscproute_command, dscproute_expect,
    poll_until, profile, rollback_ok, show, snapshot, stderr, stdout, topology,
};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

fn lab(name: &str) -> Option<Topology> {
    topology(name, &[])
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .mode()
        & 0o7777
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A state dir as a careful admin makes it: root's, 0700.
fn private_dir(p: &Path) -> PathBuf {
    std::fs::create_dir(p).unwrap();
    chmod(p, 0o700);
    p.to_path_buf()
}

/// `dscproute ARGS` inside `ns` under `umask 0`, the worst a caller can hand us.
fn under_umask_0(ns: &common::Netns, state: &Path, args: &[&str], code: i32) -> Output {
    let mut cmd = dscproute_command(ns, state, &[], args);
    // SAFETY: umask is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let out = cmd.output().expect("run dscproute");
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        show(&format!("umask 0; dscproute {}", args.join(" ")), &out)
    );
    out
}

/// Every directory in the state dir is 0700 and every file 0600; no temp
/// file is left.
fn assert_private_tree(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp."), "temp file left: {}", p.display());
        if e.file_type().unwrap().is_dir() {
            assert_private_tree(&p);
        } else {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

// ---------------------------------------------------------------------------
// 2. Modes independent of the umask.

/// Apply (with --confirm), confirm, persist into an image root, roll back,
/// apply again and roll back, all under `umask 0`: the state dir, its
/// history and every file in it are private at every step, the drop-in and
/// the rt_tables.d it creates are world-readable and writable by root only,
/// and so is everything `persist --root` creates. The host ends as it began.
#[test]
fn everything_gets_its_own_mode_under_umask_0() {
    let Some(t) = lab("everything_gets_its_own_mode_under_umask_0") else {
        return;
    };
    // apply must create rt_tables.d itself (and rollback remove it again).
    let rt_tables_d = t.b.etc_iproute2().join("rt_tables.d");
    std::fs::remove_dir(&rt_tables_d).unwrap();
    let before = snapshot(&t.b);
    let state = t.state(&t.b);
    let p = profile("gateway.toml");
    let out = under_umask_0(
        &t.b,
        &state,
        &["apply", "--profile", &p, "--yes", "--confirm", "60"],
        0,
    );
    assert!(stdout(&out).contains("Applied "), "{}", show("apply", &out));
    under_umask_0(&t.b, &state, &["confirm"], 0);
    // The timer (armed under umask 0 too) has written its log.
    assert!(
        poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
            std::fs::read_to_string(state.join("timer.log"))
                .is_ok_and(|l| l.contains("no longer pending"))
        }),
        "the timer never left after confirm"
    );
    assert_private_tree(&state);
    for f in ["current.json", "lock", "timer.log"] {
        assert!(state.join(f).is_file(), "{f} missing");
    }
    assert_eq!(mode(&rt_tables_d), 0o755);
    assert_eq!(mode(&rt_tables_d.join("dscproute.conf")), 0o644);

    // persist into an image root that has systemd's unit directory.
    let root = t.path("image");
    std::fs::create_dir_all(root.join("usr/lib/systemd/system")).unwrap();
    let root_s = root.to_str().unwrap();
    under_umask_0(
        &t.b,
        &state,
        &["persist", "--profile", &p, "--root", root_s],
        0,
    );
    for (rel, want) in [
        ("etc", 0o755),
        ("etc/dscproute", 0o755),
        ("etc/dscproute/gateway.toml", 0o644),
        ("etc/systemd", 0o755),
        ("etc/systemd/system", 0o755),
        ("etc/systemd/system/dscproute@.service", 0o644),
        ("etc/systemd/system/multi-user.target.wants", 0o755),
    ] {
        assert_eq!(mode(&root.join(rel)), want, "{rel} under --root");
    }

    under_umask_0(&t.b, &state, &["rollback", "--yes"], 0);
    under_umask_0(&t.b, &state, &["apply", "--profile", &p, "--yes"], 0);
    assert_eq!(
        names_in(&state.join("history")).len(),
        1,
        "the first transaction went to history"
    );
    assert_private_tree(&state);
    under_umask_0(&t.b, &state, &["rollback", "--yes"], 0);
    assert_private_tree(&state);
    assert_same_state(&before, &snapshot(&t.b), "after rollback");
    t.assert_host_etc_untouched();
}

// ---------------------------------------------------------------------------
// 3 and 4. A state dir root cannot trust is refused; links are never followed.

/// Each of the journal, step log, lock and timer log planted as a link to a
/// sentinel file: apply, rollback, confirm and status refuse (exit 4, the
/// fix named), the sentinel keeps its contents and mode, the link stays,
/// and the host is unchanged.
#[test]
fn a_link_in_the_state_dir_is_refused_and_its_target_untouched() {
    let Some(t) = lab("a_link_in_the_state_dir_is_refused_and_its_target_untouched") else {
        return;
    };
    let before = snapshot(&t.b);
    let p = profile("gateway.toml");
    let sentinel = t.path("sentinel");
    std::fs::write(&sentinel, "sentinel\n").unwrap();
    chmod(&sentinel, 0o644);
    for name in ["lock", "current.json", "current.log", "timer.log"] {
        let state = private_dir(&t.path(&format!("state-{name}")));
        let link = state.join(name);
        std::os::unix::fs::symlink(&sentinel, &link).unwrap();
        for args in [
            &["apply", "--profile", &p, "--yes"][..],
            &["rollback", "--yes"],
            &["confirm"],
            &["status"],
        ] {
            let ctx = format!("{name} is a link; dscproute {}", args.join(" "));
            let out = dscproute_expect(&t.b, &state, args, 4);
            let err = stderr(&out);
            assert!(
                err.contains("symbolic link") && err.contains("fix: rm "),
                "{ctx}: {}",
                show("", &out)
            );
            assert_eq!(err.trim_end().lines().count(), 1, "{ctx}: one line: {err}");
            assert_eq!(
                std::fs::read_to_string(&sentinel).unwrap(),
                "sentinel\n",
                "{ctx}: the sentinel changed"
            );
            assert_eq!(mode(&sentinel), 0o644, "{ctx}: the sentinel's mode changed");
            assert!(link.is_symlink(), "{ctx}: the link was replaced");
            assert_eq!(names_in(&state), [name], "{ctx}: the state dir changed");
        }
    }
    assert_same_state(&before, &snapshot(&t.b), "after the refusals");
    t.assert_host_etc_untouched();
}

/// A state dir owned by another user, one writable by everybody, and one
/// inside a directory everybody can write: every command that uses it
/// refuses with exit 4 and one line naming the fix; nothing is created in
/// it and the host is unchanged. Once fixed as told, apply works.
#[test]
fn a_state_dir_another_user_could_change_is_refused() {
    let Some(t) = lab("a_state_dir_another_user_could_change_is_refused") else {
        return;
    };
    let before = snapshot(&t.b);
    let p = profile("gateway.toml");

    let foreign = private_dir(&t.path("foreign"));
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    let open = private_dir(&t.path("open"));
    chmod(&open, 0o777);
    let parent = t.path("shared");
    std::fs::create_dir(&parent).unwrap();
    chmod(&parent, 0o777);
    let below = private_dir(&parent.join("state"));

    for (state, problem, fix) in [
        (&foreign, "owned by uid 65534", "chmod 0700"),
        (&open, "writable by group or others", "chmod 0700"),
        (
            &below,
            "above the state directory",
            "parents only root can write",
        ),
    ] {
        for args in [
            &["apply", "--profile", &p, "--yes"][..],
            &["rollback", "--yes"],
            &["confirm"],
            &["status"],
        ] {
            let ctx = format!("{}: dscproute {}", state.display(), args.join(" "));
            let out = dscproute_expect(&t.b, state, args, 4);
            let err = stderr(&out);
            assert!(
                err.contains(problem) && err.contains("fix: ") && err.contains(fix),
                "{ctx}: {}",
                show("", &out)
            );
            assert_eq!(err.trim_end().lines().count(), 1, "{ctx}: one line: {err}");
            assert!(names_in(state).is_empty(), "{ctx}: state created");
        }
    }
    assert_same_state(&before, &snapshot(&t.b), "after the refusals");

    // The fix the message gives makes the dir usable.
    std::os::unix::fs::chown(&foreign, Some(0), Some(0)).unwrap();
    chmod(&foreign, 0o700);
    dscproute_expect(&t.b, &foreign, &["apply", "--profile", &p, "--yes"], 0);
    rollback_ok(&t.b, &foreign);
    assert_same_state(&before, &snapshot(&t.b), "after apply and rollback");
}

// ---------------------------------------------------------------------------
// 5. One change at a time per network namespace.

/// The first apply blocks on its first mutating call. Meanwhile an apply on
/// the same host (namespace) with another --state-dir is refused (exit 4,
/// naming the first one's pid) and changes nothing, while a host in another
/// namespace applies and rolls back freely. The first apply then finishes,
/// and rollback restores both hosts exactly.
#[test]
fn the_lock_covers_the_network_namespace_whatever_the_state_dir() {
    let Some(t) = lab("the_lock_covers_the_network_namespace_whatever_the_state_dir") else {
        return;
    };
    let (before_a, before_b) = (snapshot(&t.a), snapshot(&t.b));
    let marker = profile("marker.toml");
    let w = Wrappers::install(&t.path("wrap"));
    w.arm_block();
    let mut cmd = dscproute_command(
        &t.a,
        &t.state(&t.a),
        &w.env(Mode::Block, 1),
        &["apply", "--profile", &marker, "--yes"],
    );
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let first = Blocked::new(cmd.spawn().expect("start the first apply"), &w);
    // `ip netns exec` and `env` exec in place: this is dscproute's pid.
    let first_pid = first.pid();
    assert!(
        poll_until(Duration::from_secs(20), Duration::from_millis(20), || w
            .reached()),
        "the first apply never reached its first mutating call"
    );

    let held = snapshot(&t.a);
    let other_state = t.path("other-state-a");
    let out = dscproute_expect(
        &t.a,
        &other_state,
        &["apply", "--profile", &marker, "--yes"],
        4,
    );
    assert!(
        stderr(&out).contains(&format!(
            "another dscproute apply or rollback is running (pid {first_pid})"
        )),
        "{}",
        show("apply with another state dir, same namespace", &out)
    );
    assert_same_state(&held, &snapshot(&t.a), "A after the refused apply");
    assert!(
        !other_state.join("current.json").exists(),
        "the refused apply wrote a journal"
    );

    let gateway = profile("gateway.toml");
    let out = dscproute_expect(
        &t.b,
        &t.state(&t.b),
        &["apply", "--profile", &gateway, "--yes"],
        0,
    );
    assert!(
        stdout(&out).contains("Applied "),
        "{}",
        show("apply on B", &out)
    );
    rollback_ok(&t.b, &t.state(&t.b));
    assert_same_state(&before_b, &snapshot(&t.b), "B after rollback");

    assert!(
        w.release(Duration::from_secs(10)),
        "could not release the first apply"
    );
    let out = first.finish(Duration::from_secs(30));
    assert!(
        out.status.success() && stdout(&out).contains("Applied "),
        "{}",
        show("the first apply", &out)
    );
    rollback_ok(&t.a, &t.state(&t.a));
    assert_same_state(&before_a, &snapshot(&t.a), "A after rollback");
}
