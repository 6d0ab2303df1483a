//! Issue 10, the journal's part, on real kernels in the namespace lab of
//! tests/common/topology.rs (gateway B is the host under test):
//! - a crafted journal cannot make `rollback` (root) run, write or delete
//!   anything: it is refused (exit 4) and nothing of it happens;
//! - a state directory on a full filesystem never leaves steps applied
//!   behind the journal's back, in apply or in rollback;
//! - a failed apply over existing chains of ours leaves their rule order
//!   exactly as it was;
//! - changing the table of an applied profile works, and its failure undoes
//!   to exactly the previous state.
//!
//! Needs root; skips visibly otherwise (see common::lab).

mod common;

use common::topology::{
    Mode, Topology, Wrappers, apply_ok, assert_same_state, dscproute, dscproute_expect,
    dscproute_with, profile, rollback_last_ok, section, show, snapshot, stderr, stdout, topology,
};
use std::path::{Path, PathBuf};
use std::process::Command;

fn lab(name: &str) -> Option<Topology> {
    topology(name, &["mount", "umount"])
}

fn write_profile(t: &Topology, name: &str, text: &str) -> String {
    let p = t.path(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn apply_args(profile: &str) -> Vec<&str> {
    vec!["apply", "--profile", profile, "--yes"]
}

// ---------------------------------------------------------------------------
// 1. The journal only expresses what dscproute plans.

/// A journal as dscproute writes it, with one applied step whose undo is
/// `undo` (and `saved`, when given).
fn crafted_journal(undo: serde_json::Value, saved: Option<serde_json::Value>) -> String {
    let rule = "ip -4 rule add pref 10001 fwmark 0x1/0xff unreachable proto 213";
    let mut step = serde_json::json!({
        "step": {
            "role": "gateway",
            "state": "add",
            "apply": {"kind": "run", "argv": rule.split(' ').collect::<Vec<_>>()},
            "undo": undo,
            "reason": "",
        },
        "status": "done",
    });
    if let Some(s) = saved {
        step["saved"] = s;
    }
    serde_json::json!({
        "version": 1,
        "id": "1700000000-4242",
        "created_unix": 1_700_000_000u64,
        "profile": "/nonexistent.toml",
        "state": "applied",
        "steps": [step],
    })
    .to_string()
}

/// Each crafted undo would do harm as root today: run a shell (creating a
/// sentinel file), delete or overwrite a file, flush policy routing. Now
/// rollback refuses with one line naming the step and the journal, exits 4,
/// and nothing happens: no sentinel, the victim file intact, the host's
/// state unchanged. A new apply is refused the same way.
#[test]
fn a_crafted_journal_is_refused_and_nothing_of_it_runs() {
    let Some(t) = lab("a_crafted_journal_is_refused_and_nothing_of_it_runs") else {
        return;
    };
    let state = t.state(&t.b);
    std::fs::create_dir_all(&state).unwrap();
    let sentinel = t.path(&format!("SENTINEL-{}", std::process::id()));
    let victim = t.path("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let (s, v) = (sentinel.to_str().unwrap(), victim.to_str().unwrap());
    let before = snapshot(&t.b);
    let cases = [
        (
            serde_json::json!({"kind": "run", "argv": ["sh", "-c", format!("touch {s}")]}),
            None,
        ),
        (serde_json::json!({"kind": "remove_file", "path": v}), None),
        (
            serde_json::json!({"kind": "write_file", "path": v, "contents": "owned\n"}),
            None,
        ),
        (
            serde_json::json!({"kind": "run", "argv": ["ip", "-4", "rule", "flush"]}),
            None,
        ),
        (
            serde_json::json!({"kind": "seq", "effects": [
                {"kind": "run", "argv": ["ip", "-4", "rule", "del", "pref", "10001", "fwmark",
                    "0x1/0xff", "unreachable", "proto", "213"]},
                {"kind": "run", "argv": ["touch", s]},
            ]}),
            None,
        ),
        // A valid-looking step whose saved data points undo at another file.
        (
            serde_json::json!({"kind": "remove_file",
                "path": "/etc/iproute2/rt_tables.d/dscproute.conf"}),
            Some(
                serde_json::json!({"kind": "file", "path": v, "old_contents": null,
                "created_dirs": []}),
            ),
        ),
    ];
    for (i, (undo, saved)) in cases.into_iter().enumerate() {
        let ctx = format!("case {i}: {undo}");
        std::fs::write(state.join("current.json"), crafted_journal(undo, saved)).unwrap();
        let out = dscproute(&t.b, &state, &["rollback", "--yes"]);
        assert_eq!(out.status.code(), Some(4), "{}", show(&ctx, &out));
        let err = stderr(&out);
        assert_eq!(err.trim_end().lines().count(), 1, "{}", show(&ctx, &out));
        assert!(
            err.contains("current.json refused: step 1") && err.contains("nothing of it runs"),
            "{}",
            show(&ctx, &out)
        );
        assert!(!sentinel.exists(), "{ctx}: the sentinel was created");
        assert_eq!(
            std::fs::read_to_string(&victim).ok().as_deref(),
            Some("precious\n"),
            "{ctx}: the victim file was touched"
        );
        assert_same_state(&before, &snapshot(&t.b), &ctx);
        // apply reads the same journal: refused too, before any change.
        let p = profile("gateway.toml");
        let out = dscproute(&t.b, &state, &apply_args(&p));
        assert_eq!(out.status.code(), Some(4), "{}", show(&ctx, &out));
        assert_same_state(&before, &snapshot(&t.b), &ctx);
    }
}

// ---------------------------------------------------------------------------
// 6. A full state filesystem.

/// A tmpfs of `size` mounted on a directory of the test's own temp dir,
/// unmounted when dropped (also when the test panics). The host's other
/// mounts are never touched.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&dir).unwrap();
        let opts = format!("size={size},mode=0700");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &opts,
                "dscpr-test",
                dir.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }

    /// Fill what is left with a file, until the kernel says no space.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.dir.join("filler")).unwrap();
        let page = [0u8; 4096];
        while f.write_all(&page).is_ok() {}
        while f.write_all(&page[..1]).is_ok() {}
    }

    fn unfill(&self) {
        std::fs::remove_file(self.dir.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a child left behind?): detach it all the same.
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Durable-write temp files (`.NAME.tmp.PID.N`) anywhere under `dir`.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(temp_files(&path));
        } else if entry.file_name().to_string_lossy().contains(".tmp.") {
            found.push(path);
        }
    }
    found
}

/// With the state directory on a small tmpfs the journal cannot keep up
/// with a full gateway apply (its journal is about 30 KB). Measured on the
/// lab's gateway profile: at 32 KiB the first journal cannot be written (no
/// step runs), at 36 KiB the first step's record fails (no step runs), at
/// 40 KiB a record fails after 25 steps, at 44–48 KiB all 33 steps run and
/// the final journal cannot be written. Every time apply fails, says why
/// (no space), and the host is exactly as before: no step stays applied
/// behind the journal, and nothing is left on record for a rollback.
#[test]
fn apply_with_a_full_state_filesystem_leaves_the_host_as_it_was() {
    let Some(t) = lab("apply_with_a_full_state_filesystem_leaves_the_host_as_it_was") else {
        return;
    };
    let before = snapshot(&t.b);
    let p = profile("gateway.toml");
    for size in ["32k", "36k", "40k", "44k", "48k"] {
        let fs = Tmpfs::mount(t.path(&format!("state-{size}")), size);
        let ctx = format!("apply on a {size} state fs");
        let out = dscproute(&t.b, &fs.dir, &apply_args(&p));
        assert_eq!(out.status.code(), Some(1), "{}", show(&ctx, &out));
        assert!(
            stderr(&out).contains("No space left on device"),
            "{}",
            show(&ctx, &out)
        );
        assert_same_state(&before, &snapshot(&t.b), &ctx);
        t.assert_host_etc_untouched();
        // Failed writes took their temp files with them.
        let temps = temp_files(&fs.dir);
        assert!(temps.is_empty(), "{ctx}: temp files left: {temps:?}");
        let out = dscproute_expect(&t.b, &fs.dir, &["rollback", "--yes"], 0);
        assert!(
            stdout(&out).contains("nothing to roll back"),
            "{}",
            show(&format!("rollback after the {ctx}"), &out)
        );
        assert_same_state(&before, &snapshot(&t.b), &ctx);
    }
}

/// Applied with room to spare; then the state filesystem fills up. Rollback
/// cannot log a single step, yet it undoes all of them from memory, says
/// the journal could not be updated, and the host is exactly as before.
/// The outdated journal is out of the way: a second rollback replays nothing.
#[test]
fn rollback_with_a_full_state_filesystem_still_undoes_everything() {
    let Some(t) = lab("rollback_with_a_full_state_filesystem_still_undoes_everything") else {
        return;
    };
    let fs = Tmpfs::mount(t.path("tmpfs-state"), "1m");
    let before = snapshot(&t.b);
    apply_ok(&t.b, &fs.dir, "gateway.toml");
    assert_ne!(before, snapshot(&t.b));
    fs.fill();
    let out = dscproute(&t.b, &fs.dir, &["rollback", "--yes"]);
    assert_eq!(out.status.code(), Some(0), "{}", show("rollback", &out));
    assert!(
        stdout(&out).contains("Rolled back transaction")
            && stderr(&out).contains("the journal could not be updated"),
        "{}",
        show("rollback", &out)
    );
    assert_same_state(
        &before,
        &snapshot(&t.b),
        "after rollback on a full state fs",
    );
    fs.unfill();
    let out = dscproute_expect(&t.b, &fs.dir, &["rollback", "--yes"], 0);
    assert!(
        stdout(&out).contains("nothing to roll back"),
        "{}",
        show("second rollback", &out)
    );
    assert_same_state(&before, &snapshot(&t.b), "after the second rollback");
}

// ---------------------------------------------------------------------------
// 7. and 8. Failures over an applied setup, with failures injected by the
// PATH wrappers of tests/common/topology.rs.

/// Over the state `before` (an earlier apply), apply `profile`: first
/// counting its mutating calls (it must succeed) and rolling back that
/// transaction alone (`--last`), which must restore `before` exactly; then failing its last mutating call, and
/// then each call in `also_fail`: every time, the engine's undo must restore
/// `before` exactly, iptables rule order included.
fn fail_over(t: &Topology, w: &Wrappers, profile: &str, before: &str, also_fail: &[usize]) {
    let state = t.state(&t.b);
    w.reset();
    let out = dscproute_with(&t.b, &state, &w.env(Mode::Count, 0), &apply_args(profile));
    assert!(out.status.success(), "{}", show("counting apply", &out));
    let n = w.calls().len();
    // Two at least: rules and routes go as one `ip -batch` per family.
    assert!(n >= 2, "too few calls: {:?}", w.calls());
    rollback_last_ok(&t.b, &state);
    assert_same_state(before, &snapshot(&t.b), "rollback of the counting apply");
    let mut ks = vec![n];
    ks.extend_from_slice(also_fail);
    for k in ks {
        w.reset();
        let out = dscproute_with(&t.b, &state, &w.env(Mode::Fail, k), &apply_args(profile));
        let ctx = format!("failure at mutating call {k} of {n}");
        assert_eq!(out.status.code(), Some(1), "{}", show(&ctx, &out));
        assert!(
            stderr(&out).contains("the completed steps were undone"),
            "{}",
            show(&ctx, &out)
        );
        let now = snapshot(&t.b);
        for fam in ["iptables-save", "ip6tables-save"] {
            assert_eq!(
                section(&now, fam),
                section(before, fam),
                "{ctx}: {fam} differs (rule order?)"
            );
        }
        assert_same_state(before, &now, &ctx);
    }
}

/// Our chains hold rules in an order that means something: restore the
/// connection mark, mark, save. Changing the mark appends the new rules and
/// removes the old ones; when that apply fails, undo must put the old rules
/// back in their places, not append them (which gave restore, save, MARK).
#[test]
fn a_failed_apply_over_our_chains_keeps_their_rule_order() {
    let Some(t) = lab("a_failed_apply_over_our_chains_keeps_their_rule_order") else {
        return;
    };
    let w = Wrappers::install(&t.path("wrap"));
    let base = std::fs::read_to_string(profile("gateway.toml")).unwrap();
    let first = write_profile(&t, "mark3.toml", &format!("{base}mark = \"0x3\"\n"));
    let second = write_profile(&t, "mark5.toml", &format!("{base}mark = \"0x5\"\n"));
    let state = t.state(&t.b);
    dscproute_expect(&t.b, &state, &apply_args(&first), 0);
    let before = snapshot(&t.b);
    let route = "-A DSCPROUTE-ROUTE -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff\n\
                 -A DSCPROUTE-ROUTE ! -i wg0 -m dscp --dscp 0x07 -j MARK --set-xmark 0x3/0xff\n\
                 -A DSCPROUTE-ROUTE -m mark --mark 0x3/0xff -j CONNMARK --save-mark --nfmask 0xff \
                 --ctmask 0xff\n";
    assert!(
        section(&before, "iptables-save").contains(route),
        "{before}"
    );
    // The last call, and the first one (nothing to undo but what it did).
    fail_over(&t, &w, &second, &before, &[1]);
}

/// Applied with the automatic table ("dscproute", number chosen free), then
/// a profile naming the table "vpn" with another number. The old policy
/// rules are removed by table number (the name changes in the same apply),
/// so this works; its failure at the last call undoes to exactly the
/// previous state; and the real apply leaves the table readable by its new
/// name.
#[test]
fn changing_the_table_of_an_applied_profile_works_and_fails_cleanly() {
    let Some(t) = lab("changing_the_table_of_an_applied_profile_works_and_fails_cleanly") else {
        return;
    };
    let w = Wrappers::install(&t.path("wrap"));
    let auto = "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nvia6 = \"fd00::1\"\n";
    let first = write_profile(&t, "auto.toml", auto);
    let second = write_profile(
        &t,
        "vpn.toml",
        &format!("{auto}table = \"vpn\"\ntable_id = 101\n"),
    );
    let state = t.state(&t.b);
    dscproute_expect(&t.b, &state, &apply_args(&first), 0);
    let dropin = t.b.etc_iproute2().join("rt_tables.d/dscproute.conf");
    let old_name = std::fs::read_to_string(&dropin).unwrap();
    assert!(old_name.ends_with(" dscproute\n"), "{old_name}");
    let before = snapshot(&t.b);
    fail_over(&t, &w, &second, &before, &[]);
    assert_eq!(std::fs::read_to_string(&dropin).unwrap(), old_name);
    let out = dscproute_expect(&t.b, &state, &apply_args(&second), 0);
    assert!(stdout(&out).contains("Applied "), "{}", show("apply", &out));
    assert_eq!(std::fs::read_to_string(&dropin).unwrap(), "101 vpn\n");
    let routes = t.b.exec_ok(&["ip", "route", "show", "table", "vpn"]);
    assert!(
        String::from_utf8_lossy(&routes.stdout).contains("default via 10.8.0.1 dev wg0"),
        "{}",
        String::from_utf8_lossy(&routes.stdout)
    );
    let rules = t.b.exec_ok(&["ip", "rule"]);
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(
        rules.contains("lookup vpn proto 213") && !rules.contains("dscproute"),
        "{rules}"
    );
    rollback_last_ok(&t.b, &state);
    assert_same_state(&before, &snapshot(&t.b), "rollback of the table change");
}
