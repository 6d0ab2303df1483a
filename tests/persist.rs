//! `dscproute persist` / `unpersist` into temporary roots (the host's /etc
//! and systemd are never touched): the files and modes, the unit symlinks
//! (the same ones `systemctl --root` writes), the no-systemd recipe, the
//! "only after a confirmed apply" rule read from a fabricated journal, bad
//! input; `systemctl` driven through a fake runner; the unit template
//! checked by `systemd-analyze verify`. The last test applies for real in a
//! network namespace (root; skips visibly otherwise).

mod common;

use common::shared_dir::SharedDir;
use dscproute::apply::{Journal, StateDir, TxnState};
use dscproute::backend::{Family, NfCmd, Op, Table};
use dscproute::persist::{
    self, Boot, BootOutcome, Layout, PersistError, confirmed, init_script, systemd,
};
use dscproute::plan::{Role, Step, StepState};
use dscproute::runner::{FakeRunner, Output};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

/// A visible skip: straight to fd 2, which libtest does not capture
/// (`eprintln!` in a passing test would vanish).
macro_rules! skip {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

const BIN: &str = env!("CARGO_BIN_EXE_dscproute");
const UNIT_ASSET: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/systemd/dscproute@.service"
);
const WANTS: &str = "etc/systemd/system/multi-user.target.wants";
const PACKAGED: &str = "/usr/lib/systemd/system/dscproute@.service";

const GATEWAY: &str =
    "# the VPN gateway\n[gateway]\ndscp = \"7\"\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\n";
const CLIENT: &str = "[marker]\ngroup = 4242\ndscp = 7\n";

/// A scratch directory with a profile, a state dir and an install root.
struct Scene {
    dir: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        let s = Scene {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(s.root()).unwrap();
        std::fs::create_dir_all(s.state()).unwrap();
        s
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn root(&self) -> PathBuf {
        self.path("root")
    }

    fn state(&self) -> PathBuf {
        self.path("state")
    }

    fn in_root(&self, rel: &str) -> PathBuf {
        self.root().join(rel.trim_start_matches('/'))
    }

    /// A root that looks like an installed system with the .deb's unit.
    fn with_packaged_unit(self) -> Scene {
        let p = self.in_root(PACKAGED);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::copy(UNIT_ASSET, p).unwrap();
        self
    }

    fn profile(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// The journal a finished `apply --profile PROFILE` leaves, in `state`.
    fn journal(&self, profile: &str, state: TxnState) -> Journal {
        // An operation dscproute plans: the journal refuses anything else.
        let chain = |cmd| Op::Netfilter {
            family: Family::V4,
            table: Table::Mangle,
            cmd,
        };
        let name = || "DSCPROUTE-MARK".to_string();
        let step = Step {
            role: Role::Marker,
            state: StepState::Add,
            apply: chain(NfCmd::NewChain { chain: name() }),
            undo: chain(NfCmd::DeleteChain { chain: name() }),
            reason: String::new(),
            change: None,
        };
        let mut j = Journal::new(profile, vec![step]);
        j.state = state;
        j.save(&StateDir::resolve(Some(&self.state()))).unwrap();
        j
    }

    fn applied(&self, profile: &Path) {
        self.journal(profile.to_str().unwrap(), TxnState::Applied);
    }

    fn dscproute(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .arg("--state-dir")
            .arg(self.state())
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    fn persist(&self, profile: &Path, extra: &[&str]) -> std::process::Output {
        let root = self.root();
        let mut args = vec![
            "persist",
            "--profile",
            profile.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.dscproute(&args)
    }

    fn unpersist(&self, name: &str) -> std::process::Output {
        let root = self.root();
        self.dscproute(&["unpersist", "--root", root.to_str().unwrap(), "--", name])
    }

    /// Every file and symlink under the root: `path` or `path -> target`.
    fn tree(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.root(), &self.root(), &mut out);
        out.sort();
        out
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let meta = p.symlink_metadata().unwrap();
        if meta.file_type().is_symlink() {
            out.push(format!(
                "{rel} -> {}",
                std::fs::read_link(&p).unwrap().display()
            ));
        } else if meta.is_dir() {
            walk(root, &p, out);
        } else {
            out.push(rel);
        }
    }
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_exit(o: &std::process::Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

// ---------------------------------------------------------------------------
// Persist and unpersist through the binary, into a temporary root.

#[test]
fn persist_installs_the_profile_and_enables_the_packaged_unit_and_unpersist_undoes_both() {
    let s = Scene::new().with_packaged_unit();
    let p = s.profile("gw.toml", GATEWAY);
    s.applied(&p);

    let o = s.persist(&p, &[]);
    assert_exit(&o, 0);
    let installed = s.in_root("/etc/dscproute/gw.toml");
    assert_eq!(
        std::fs::read_to_string(&installed).unwrap(),
        GATEWAY,
        "bytes kept, comments too"
    );
    assert_eq!(mode(&installed), 0o644);
    assert_eq!(mode(&s.in_root("/etc/dscproute")), 0o755);
    assert_eq!(
        s.tree(),
        [
            "etc/dscproute/gw.toml".to_string(),
            format!("{WANTS}/dscproute@gw.service -> {PACKAGED}"),
            "usr/lib/systemd/system/dscproute@.service".to_string(),
        ]
    );
    let out = stdout(&o);
    assert!(out.contains("Persisted gw"), "{out}");
    assert!(
        out.contains("dscproute@gw.service enabled: it runs `dscproute agent`"),
        "{out}"
    );
    assert!(out.contains("leaves the setup in place"), "{out}");
    assert!(
        out.contains("`dscproute rollback --yes` then removes the setup"),
        "{out}"
    );
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));

    // Again: nothing to do, and it says so (the Ansible role reads this).
    let again = s.persist(&p, &[]);
    assert_exit(&again, 0);
    assert!(
        stdout(&again).starts_with("Nothing changed:"),
        "{}",
        stdout(&again)
    );

    let o = s.unpersist("gw");
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("disabled dscproute@gw.service")
            && stdout(&o).contains("The setup stays in place until `dscproute rollback --yes`"),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        s.tree(),
        ["usr/lib/systemd/system/dscproute@.service"],
        "profile, link and the emptied directories are gone; the packaged unit stays"
    );
    assert!(!s.in_root("/etc/dscproute").exists());
    assert!(!s.in_root(WANTS).exists());

    let again = s.unpersist("gw");
    assert_exit(&again, 0);
    assert!(
        stdout(&again).starts_with("Nothing changed:"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn without_a_packaged_unit_persist_installs_its_own_template_and_unpersist_removes_it() {
    let s = Scene::new();
    std::fs::create_dir_all(s.in_root("/etc/systemd/system")).unwrap();
    let p = s.profile("client.toml", CLIENT);
    s.applied(&p);

    let o = s.persist(&p, &["--name", "lan-clients_1"]);
    assert_exit(&o, 0);
    let own = "/etc/systemd/system/dscproute@.service";
    assert_eq!(
        s.tree(),
        [
            "etc/dscproute/lan-clients_1.toml".to_string(),
            "etc/systemd/system/dscproute@.service".to_string(),
            format!("{WANTS}/dscproute@lan-clients_1.service -> {own}"),
        ]
    );
    let unit = std::fs::read_to_string(s.in_root(own)).unwrap();
    assert!(unit.starts_with(systemd::OWN_TEMPLATE_MARK));
    // In an image, the unit runs the packaged path, not this test binary.
    assert!(
        unit.contains("\nExecStart=/usr/bin/dscproute agent --profile /etc/dscproute/%i.toml\n")
    );
    assert!(
        stdout(&o).contains("no packaged dscproute@.service was found"),
        "{}",
        stdout(&o)
    );

    assert_exit(&s.unpersist("lan-clients_1"), 0);
    assert_eq!(
        s.tree(),
        Vec::<String>::new(),
        "everything persist wrote is gone"
    );
    assert!(
        s.in_root("/etc/systemd/system").is_dir(),
        "the image's own directory stays"
    );
}

/// The symlinks written by files are exactly those `systemctl --root`
/// writes, for a packaged unit and for our own template.
#[test]
fn links_match_what_systemctl_root_writes() {
    if which::which("systemctl").is_err() {
        skip!("SKIP links_match_what_systemctl_root_writes: no systemctl");
        return;
    }
    for packaged in [true, false] {
        let ours = Scene::new();
        let theirs = Scene::new();
        for s in [&ours, &theirs] {
            std::fs::create_dir_all(s.in_root("/etc/systemd/system")).unwrap();
        }
        let (ours, theirs) = if packaged {
            (ours.with_packaged_unit(), theirs.with_packaged_unit())
        } else {
            (ours, theirs)
        };
        let p = ours.profile("gw.toml", GATEWAY);
        ours.applied(&p);
        assert_exit(&ours.persist(&p, &[]), 0);
        if !packaged {
            let own = "/etc/systemd/system/dscproute@.service";
            std::fs::copy(ours.in_root(own), theirs.in_root(own)).unwrap();
        }
        let enable = Command::new("systemctl")
            .arg(format!("--root={}", theirs.root().display()))
            .args(["enable", "dscproute@gw.service"])
            .output()
            .unwrap();
        assert_exit(&enable, 0);
        let links = |s: &Scene| -> Vec<String> {
            s.tree()
                .into_iter()
                .filter(|l| l.contains(" -> "))
                .collect()
        };
        assert_eq!(links(&ours), links(&theirs), "packaged unit: {packaged}");

        assert_exit(&ours.unpersist("gw"), 0);
        let disable = Command::new("systemctl")
            .arg(format!("--root={}", theirs.root().display()))
            .args(["disable", "dscproute@gw.service"])
            .output()
            .unwrap();
        assert_exit(&disable, 0);
        assert_eq!(links(&ours), links(&theirs));
        assert!(links(&ours).is_empty());
    }
}

#[test]
fn without_systemd_persist_installs_the_profile_and_prints_an_init_script() {
    let s = Scene::new(); // no systemd directories in this root
    let p = s.profile("gw.toml", GATEWAY);
    s.applied(&p);
    let o = s.persist(&p, &[]);
    assert_exit(&o, 0);
    assert_eq!(s.tree(), ["etc/dscproute/gw.toml"]);
    let out = stdout(&o);
    assert!(out.contains("does not run systemd"), "{out}");
    assert!(
        out.contains("\n    /usr/bin/dscproute agent --profile /etc/dscproute/gw.toml\n"),
        "{out}"
    );
    assert!(!out.contains("dscproute rollback --yes <"), "{out}");
    assert!(out.contains("/etc/init.d/dscproute-gw"), "{out}");

    // The printed script is valid sh.
    let script = out
        .split_once("#!/bin/sh\n")
        .map(|(_, rest)| format!("#!/bin/sh\n{}", &rest[..rest.find("\nesac\n").unwrap() + 6]))
        .expect("a script in the output");
    assert_eq!(
        script,
        init_script::script("gw", "/etc/dscproute/gw.toml", None, "/usr/bin/dscproute")
    );
    let check = Command::new("sh")
        .args(["-n", "-c", &script])
        .output()
        .unwrap();
    assert_exit(&check, 0);

    let o = s.unpersist("gw");
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("/etc/init.d/dscproute-gw stop && update-rc.d -f dscproute-gw remove"),
        "{}",
        stdout(&o)
    );
    assert!(s.tree().is_empty());
}

// ---------------------------------------------------------------------------
// Only after a confirmed apply.

#[test]
fn persist_refuses_without_a_kept_apply_of_this_profile() {
    let s = Scene::new().with_packaged_unit();
    let p = s.profile("gw.toml", GATEWAY);
    let before = s.tree();
    let refused = |want: &str| {
        let o = s.persist(&p, &[]);
        assert_exit(&o, 4);
        assert!(stdout(&o).is_empty());
        assert!(
            stderr(&o).contains(want),
            "want {want:?} in: {}",
            stderr(&o)
        );
        assert_eq!(s.tree(), before, "nothing written");
    };

    refused("nothing has been applied on this host yet");
    let path = p.to_str().unwrap();
    s.journal(path, TxnState::PendingConfirm);
    refused("run `dscproute confirm`");
    s.journal(path, TxnState::Running);
    refused("was interrupted: run `dscproute rollback`");
    s.journal(path, TxnState::Failed);
    refused("failed and was undone");
    s.journal(path, TxnState::RolledBack);
    refused("was rolled back: apply it first: `dscproute apply --profile");

    // Kept, but another profile (whose plan is not in place on this host).
    let other = s.profile("other.toml", CLIENT);
    s.applied(&other);
    refused("which is not this profile");

    // Kept, this file, but edited after the apply.
    s.applied(&p);
    let later = SystemTime::now() + Duration::from_secs(120);
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(later)
        .unwrap();
    refused("(or was changed since)");
}

#[test]
fn persist_accepts_a_copy_of_the_applied_file_and_a_relative_journal_path() {
    let s = Scene::new().with_packaged_unit();
    let applied = s.profile("gw.toml", GATEWAY);
    // `apply --profile gw.toml` run from the scene's directory.
    s.journal("gw.toml", TxnState::Applied);
    let copy = s.profile("copy.toml", GATEWAY);
    let o = s.persist(&copy, &["--name", "gw"]);
    assert_exit(&o, 0);
    assert_eq!(
        std::fs::read_to_string(s.in_root("/etc/dscproute/gw.toml")).unwrap(),
        GATEWAY
    );
    assert!(applied.exists());
}

#[test]
fn the_rule_asks_the_host_only_when_the_journal_does_not_settle_it() {
    let s = Scene::new();
    let p = s.profile("gw.toml", GATEWAY);
    let j = s.journal(p.to_str().unwrap(), TxnState::Applied);
    let asked = std::cell::Cell::new(0);
    let mut ask = || {
        asked.set(asked.get() + 1);
        true
    };
    let e = confirmed::check(Some(&j), &p, GATEWAY.as_bytes(), &mut ask).unwrap();
    assert_eq!(
        e,
        confirmed::Evidence::SameContent {
            transaction: j.id.clone()
        }
    );
    assert_eq!(asked.get(), 0, "the journal settled it");

    let edited = format!("{GATEWAY}# edited\n");
    let e = confirmed::check(Some(&j), &p, edited.as_bytes(), &mut ask).unwrap();
    assert_eq!(
        e,
        confirmed::Evidence::InPlace {
            transaction: j.id.clone()
        }
    );
    assert_eq!(asked.get(), 1, "the host settled it");
    let mut no = || false;
    assert!(confirmed::check(Some(&j), &p, edited.as_bytes(), &mut no).is_err());

    // In place, but not kept: never.
    let mut pending = j.clone();
    pending.state = TxnState::PendingConfirm;
    let mut always = || true;
    assert!(confirmed::check(Some(&pending), &p, GATEWAY.as_bytes(), &mut always).is_err());
    assert!(confirmed::check(None, &p, GATEWAY.as_bytes(), &mut always).is_err());
}

// ---------------------------------------------------------------------------
// Bad input and other refusals.

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let s = Scene::new().with_packaged_unit();
    let p = s.profile("gw.toml", GATEWAY);
    s.applied(&p);
    let before = s.tree();
    for name in ["a/b", "", "-x", "../etc", "a.b", "sp ace", &"x".repeat(65)] {
        // `--name=VALUE`, so clap passes "-x" on as a value.
        let o = s.persist(&p, &[&format!("--name={name}")]);
        assert_exit(&o, 2);
        assert!(
            stderr(&o).contains("invalid name"),
            "{name:?}: {}",
            stderr(&o)
        );
        assert_exit(&s.unpersist(name), 2);
    }
    // The default name is the file stem, which must be a valid name too.
    let dotted = s.profile("gw.v2.toml", GATEWAY);
    let o = s.persist(&dotted, &[]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("pass --name"), "{}", stderr(&o));
    // A broken profile.
    let bad = s.profile(
        "bad.toml",
        "[gateway]\ndscp = \"99\"\ninterface = \"wg0\"\n",
    );
    let o = s.persist(&bad, &[]);
    assert_exit(&o, 2);
    assert!(stderr(&o).contains("bad.toml:2"), "{}", stderr(&o));
    // A root that does not exist.
    let o = s.dscproute(&[
        "persist",
        "--profile",
        p.to_str().unwrap(),
        "--root",
        "/nonexistent/dir",
    ]);
    assert_exit(&o, 2);
    assert_eq!(s.tree(), before);
}

#[test]
fn only_one_profile_is_persisted_per_host() {
    let s = Scene::new().with_packaged_unit();
    let gw = s.profile("gw.toml", GATEWAY);
    s.applied(&gw);
    assert_exit(&s.persist(&gw, &[]), 0);
    let client = s.profile("client.toml", CLIENT);
    s.applied(&client);
    let o = s.persist(&client, &[]);
    assert_exit(&o, 4);
    assert!(
        stderr(&o).contains("`dscproute unpersist gw` first"),
        "{}",
        stderr(&o)
    );
    // Replacing it under the same name is fine.
    let o = s.persist(&client, &["--name", "gw"]);
    assert_exit(&o, 0);
    assert_eq!(
        std::fs::read_to_string(s.in_root("/etc/dscproute/gw.toml")).unwrap(),
        CLIENT
    );
}

// ---------------------------------------------------------------------------
// systemctl, through the fake runner.

fn enabled(is: bool) -> Output {
    if is {
        Output::ok("enabled\n")
    } else {
        Output {
            status: 1,
            stdout: "disabled\n".into(),
            stderr: String::new(),
        }
    }
}

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn with_systemd_running_persist_uses_systemctl() {
    let s = Scene::new().with_packaged_unit();
    let layout = Layout::new(&s.root());
    let unit = "dscproute@gw.service";
    let fake = FakeRunner::new()
        .on(&["systemctl", "is-enabled", unit], enabled(false))
        .on(&["systemctl", "enable", "--now", unit], Output::ok(""));
    let done = persist::persist(
        &layout,
        "gw",
        GATEWAY.as_bytes(),
        None,
        &Boot::Systemctl(&fake),
        "/usr/bin/dscproute",
    )
    .unwrap();
    assert!(done.changed());
    assert_eq!(
        done.boot,
        BootOutcome::Enabled {
            unit: unit.into(),
            newly: true,
            template_installed: None
        }
    );
    assert_eq!(
        fake.calls(),
        [
            argv(&["systemctl", "is-enabled", unit]),
            argv(&["systemctl", "enable", "--now", unit])
        ]
    );
    assert!(
        !s.in_root(WANTS).exists(),
        "systemctl makes the links, not us"
    );

    // Already enabled and the same bytes: nothing runs, nothing changes.
    let fake = FakeRunner::new().on(&["systemctl", "is-enabled", unit], enabled(true));
    let done = persist::persist(
        &layout,
        "gw",
        GATEWAY.as_bytes(),
        None,
        &Boot::Systemctl(&fake),
        "/usr/bin/dscproute",
    )
    .unwrap();
    assert!(!done.changed());
    assert_eq!(fake.calls().len(), 1);

    // Enabled already, but a changed profile: a running agent restarts on it.
    let edited = format!("# edited\n{GATEWAY}");
    let fake = FakeRunner::new()
        .on(&["systemctl", "is-enabled", unit], enabled(true))
        .on(&["systemctl", "try-restart", unit], Output::ok(""));
    let done = persist::persist(
        &layout,
        "gw",
        edited.as_bytes(),
        None,
        &Boot::Systemctl(&fake),
        "/usr/bin/dscproute",
    )
    .unwrap();
    assert!(done.changed());
    assert_eq!(
        fake.calls().last().unwrap(),
        &argv(&["systemctl", "try-restart", unit])
    );

    // The unit's agent uses the default state directory: another is refused
    // before anything is written or run.
    let fake = FakeRunner::new();
    let err = persist::persist(
        &layout,
        "gw",
        GATEWAY.as_bytes(),
        Some("/srv/state"),
        &Boot::Systemctl(&fake),
        "/usr/bin/dscproute",
    )
    .unwrap_err();
    assert!(
        matches!(&err, PersistError::Usage(m) if m.contains("--state-dir /srv/state")),
        "{err:?}"
    );
    assert!(fake.calls().is_empty());
    assert_eq!(
        std::fs::read_to_string(layout.profile("gw")).unwrap(),
        edited
    );

    let fake = FakeRunner::new()
        .on(&["systemctl", "is-enabled", unit], enabled(true))
        .on(&["systemctl", "disable", "--now", unit], Output::ok(""));
    let done = persist::unpersist(&layout, "gw", &Boot::Systemctl(&fake)).unwrap();
    assert!(done.disabled && done.removed_profile.is_some() && done.removed_template.is_none());
    assert_eq!(
        fake.calls().last().unwrap(),
        &argv(&["systemctl", "disable", "--now", unit])
    );
}

#[test]
fn a_failed_systemctl_enable_leaves_nothing_behind() {
    let s = Scene::new();
    std::fs::create_dir_all(s.in_root("/etc/systemd/system")).unwrap();
    let layout = Layout::new(&s.root());
    let unit = "dscproute@gw.service";
    let fake = FakeRunner::new()
        .on(&["systemctl", "is-enabled", unit], enabled(false))
        .on(
            &["systemctl", "enable", "--now", unit],
            Output::failed(1, "Failed to enable unit: boom\n"),
        );
    let err = persist::persist(
        &layout,
        "gw",
        GATEWAY.as_bytes(),
        None,
        &Boot::Systemctl(&fake),
        "/usr/local/bin/dscproute",
    )
    .unwrap_err();
    assert_eq!(
        err,
        PersistError::Failed(format!(
            "systemctl enable --now {unit} failed: Failed to enable unit: boom"
        ))
    );
    assert!(
        s.tree().is_empty(),
        "profile and template removed again: {:?}",
        s.tree()
    );
    assert!(!s.in_root("/etc/dscproute").exists());

    // An earlier profile under the same name is restored, not removed.
    let old = b"[marker]\ngroup = 1\ndscp = 7\n";
    std::fs::create_dir_all(s.in_root("/etc/dscproute")).unwrap();
    std::fs::write(s.in_root("/etc/dscproute/gw.toml"), old).unwrap();
    let fake = FakeRunner::new()
        .on(&["systemctl", "is-enabled", unit], enabled(false))
        .on(
            &["systemctl", "enable", "--now", unit],
            Output::failed(1, "no\n"),
        );
    persist::persist(
        &layout,
        "gw",
        GATEWAY.as_bytes(),
        None,
        &Boot::Systemctl(&fake),
        "/x",
    )
    .unwrap_err();
    assert_eq!(
        std::fs::read(s.in_root("/etc/dscproute/gw.toml")).unwrap(),
        old
    );
}

#[test]
fn unpersist_reloads_systemd_after_removing_its_own_template() {
    let s = Scene::new();
    std::fs::create_dir_all(s.in_root("/etc/systemd/system")).unwrap();
    let layout = Layout::new(&s.root());
    let unit = "dscproute@gw.service";
    let fake = FakeRunner::new()
        .on(&["systemctl", "is-enabled", unit], enabled(false))
        .on(&["systemctl", "enable", "--now", unit], Output::ok(""));
    let done = persist::persist(
        &layout,
        "gw",
        GATEWAY.as_bytes(),
        None,
        &Boot::Systemctl(&fake),
        "/usr/local/bin/dscproute",
    )
    .unwrap();
    let own = s.in_root("/etc/systemd/system/dscproute@.service");
    assert!(
        matches!(&done.boot, BootOutcome::Enabled { template_installed: Some(p), .. } if *p == own)
    );
    let text = std::fs::read_to_string(&own).unwrap();
    assert!(
        text.contains("ExecStart=/usr/local/bin/dscproute agent --profile"),
        "{text}"
    );

    let fake = FakeRunner::new()
        .on(&["systemctl", "is-enabled", unit], enabled(true))
        .on(&["systemctl", "disable", "--now", unit], Output::ok(""))
        .on(&["systemctl", "daemon-reload"], Output::ok(""));
    let done = persist::unpersist(&layout, "gw", &Boot::Systemctl(&fake)).unwrap();
    assert_eq!(done.removed_template, Some(own));
    assert_eq!(
        fake.calls().last().unwrap(),
        &argv(&["systemctl", "daemon-reload"])
    );
    assert!(s.tree().is_empty());
}

// ---------------------------------------------------------------------------
// The unit template.

#[test]
fn the_unit_template_says_what_the_design_needs() {
    let unit = std::fs::read_to_string(UNIT_ASSET).unwrap();
    assert_eq!(
        unit,
        systemd::UNIT_TEMPLATE,
        "the binary embeds the shipped template"
    );
    for line in [
        "After=network-pre.target",
        "StartLimitIntervalSec=0",
        "Type=simple",
        "StateDirectory=dscproute",
        "StateDirectoryMode=0700",
        "ExecStart=/usr/bin/dscproute agent --profile /etc/dscproute/%i.toml",
        "Restart=on-failure",
        "RestartSec=5s",
        "RestartPreventExitStatus=2",
        "KillSignal=SIGTERM",
        "KillMode=mixed",
        "NoNewPrivileges=yes",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line:?}");
    }
    // Nothing waits for the VPN, and stopping removes nothing (fail closed).
    let settings: Vec<&str> = unit.lines().filter(|l| !l.starts_with('#')).collect();
    for absent in ["network-online", "ExecStop", "rollback"] {
        assert!(
            !settings.iter().any(|l| l.contains(absent)),
            "{absent:?} in the unit"
        );
    }
}

/// `systemd-analyze verify` on an instance of the template (the binary path
/// pointed at the test binary, which verify checks exists).
#[test]
fn the_unit_template_verifies() {
    if which::which("systemd-analyze").is_err() {
        skip!(
            "SKIP the_unit_template_verifies: systemd-analyze is not installed (apt-get install systemd)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = systemd::UNIT_TEMPLATE.replace(persist::PACKAGED_EXE, BIN);
    std::fs::write(dir.path().join("dscproute@.service"), &text).unwrap();
    std::fs::write(dir.path().join("dscproute@gw.service"), &text).unwrap();
    for unit in ["dscproute@.service", "dscproute@gw.service"] {
        let o = Command::new("systemd-analyze")
            .args(["verify", "--man=no", unit])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_exit(&o, 0);
        assert!(stderr(&o).trim().is_empty(), "{unit}: {}", stderr(&o));
    }
    // And verify does catch a bad setting (it really checks).
    let bad = text.replace(&format!("ExecStart={BIN}"), "ExecStart=target/dscproute");
    std::fs::write(dir.path().join("dscproute@bad.service"), bad).unwrap();
    let o = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "dscproute@bad.service"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", stderr(&o));
}

// ---------------------------------------------------------------------------
// After a real apply, in a namespace.

/// `apply` in a scratch namespace, then persist: kept → persisted;
/// `--confirm` pending → refused until `confirm`; rolled back → refused.
#[test]
fn persist_follows_real_applies_in_a_namespace() {
    let Some(lab) = common::lab(
        "persist_follows_real_applies_in_a_namespace",
        &["iptables", "ip6tables", "iptables-save", "ip6tables-save"],
    ) else {
        return;
    };
    let ns = lab.netns();
    let s = Scene::new().with_packaged_unit();
    let p = s.profile("client.toml", CLIENT);
    let state = s.state();
    let run = |args: &[&str]| {
        let mut argv = vec![BIN, "--state-dir", state.to_str().unwrap()];
        argv.extend_from_slice(args);
        ns.exec(&argv)
    };
    let root = s.root();
    let root = root.to_str().unwrap();
    let profile = p.to_str().unwrap();
    let persist = || run(&["persist", "--profile", profile, "--root", root]);

    assert_exit(
        &run(&["apply", "--profile", profile, "--yes", "--confirm", "60"]),
        0,
    );
    let o = persist();
    assert_exit(&o, 4);
    assert!(stderr(&o).contains("awaits confirmation"), "{}", stderr(&o));
    assert_exit(&run(&["confirm"]), 0);
    assert_exit(&persist(), 0);
    assert!(s.in_root("/etc/dscproute/client.toml").is_file());
    assert_exit(&run(&["unpersist", "client", "--root", root]), 0);

    assert_exit(&run(&["rollback", "--yes"]), 0);
    let o = persist();
    assert_exit(&o, 4);
    assert!(stderr(&o).contains("was rolled back"), "{}", stderr(&o));

    // Applied again; the profile gets a comment, so the journal's file has
    // changed since, but the plan is entirely in place: accepted.
    assert_exit(&run(&["apply", "--profile", profile, "--yes"]), 0);
    std::fs::write(&p, format!("# kept\n{CLIENT}")).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&p)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(120))
        .unwrap();
    let o = persist();
    assert_exit(&o, 0);
    assert_eq!(
        std::fs::read_to_string(s.in_root("/etc/dscproute/client.toml")).unwrap(),
        format!("# kept\n{CLIENT}")
    );
    assert_exit(&run(&["rollback", "--yes"]), 0);
}

/// On this host (`--root /`, the default) persist and unpersist need root,
/// and say so before touching anything. As root, the test drops to nobody.
#[test]
fn on_this_host_persist_needs_root() {
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    if is_root && which::which("setpriv").is_err() {
        skip!("SKIP on_this_host_persist_needs_root: running as root without setpriv");
        return;
    }
    let s = Scene::new();
    let p = s.profile("gw.toml", GATEWAY);
    s.applied(&p);
    // nobody must be able to read the profile and the journal.
    for d in [s.dir.path().to_path_buf(), s.state()] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    // nor the binary, when the checkout lives in a private directory.
    let shared = SharedDir::new();
    let bin = shared.bin();
    let as_user = |args: &[&str]| {
        let mut cmd = if is_root {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
            c.arg(&bin);
            c
        } else {
            Command::new(&bin)
        };
        cmd.current_dir(shared.path());
        cmd.arg("--state-dir").arg(s.state()).args(args);
        cmd.output().unwrap()
    };
    let o = as_user(&["persist", "--profile", p.to_str().unwrap()]);
    assert_exit(&o, 4);
    assert!(stderr(&o).contains("needs root"), "{}", stderr(&o));
    let o = as_user(&["unpersist", "gw"]);
    assert_exit(&o, 4);
    assert!(stderr(&o).contains("needs root"), "{}", stderr(&o));
}

/// The unit's ExecStart, split as systemd splits it (the template holds no
/// quotes or escapes: `exec_start_is_exactly_the_agent_invocation` in
/// src/persist/systemd.rs), is an `agent` command line this binary accepts,
/// with the persisted profile and the default state directory.
#[test]
fn the_units_exec_start_is_an_agent_command_line() {
    use clap::Parser;
    use dscproute::cli::{Cli, Command as Sub};
    let line = systemd::UNIT_TEMPLATE
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let argv: Vec<String> = line
        .split_whitespace()
        .map(|a| a.replace("%i", "gw"))
        .collect();
    assert_eq!(argv[0], persist::PACKAGED_EXE);
    let cli = Cli::try_parse_from(&argv).unwrap();
    assert_eq!(cli.state_dir, None);
    match cli.command {
        Some(Sub::Agent(a)) => {
            assert_eq!(a.profile, Path::new("/etc/dscproute/gw.toml"));
            assert_eq!(a.drift_check, 5);
        }
        other => panic!("not the agent: {other:?}"),
    }
}

/// The printed init script, run for real with a stand-in agent: `start`
/// runs it in the background with a pidfile, `status` sees it, `stop` sends
/// SIGTERM (which the stand-in records) and waits for it to exit.
#[test]
fn the_init_script_starts_and_stops_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fake = d.join("dscproute");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$@\" >{args}\ntrap 'echo TERM >{term}; exit 0' TERM\n\
             while :; do sleep 0.1 & wait $!; done\n",
            args = d.join("args").display(),
            term = d.join("term").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let pidfile = d.join("agent.pid");
    let script = init_script::script(
        "gw",
        "/etc/dscproute/gw.toml",
        Some("/var/lib/my state"),
        fake.to_str().unwrap(),
    )
    .replace(
        "PIDFILE=/run/dscproute-gw.pid",
        &format!("PIDFILE={}", pidfile.display()),
    )
    .replace(
        "LOG=/var/log/dscproute-gw.log",
        &format!("LOG={}", d.join("log").display()),
    );
    let path = d.join("dscproute-gw");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = |arg: &str| Command::new(&path).arg(arg).output().unwrap();

    assert_exit(&run("start"), 0);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Whatever happens below, the stand-in does not outlive the test.
    struct Reap(i32);
    impl Drop for Reap {
        fn drop(&mut self) {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(self.0, libc::SIGKILL) };
        }
    }
    let _reap = Reap(pid);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !d.join("args").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        std::fs::read_to_string(d.join("args")).unwrap(),
        "agent --profile /etc/dscproute/gw.toml --state-dir /var/lib/my state\n"
    );
    let o = run("status");
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(&format!("running (pid {pid})")),
        "{}",
        stdout(&o)
    );
    // A second start does not start a second agent.
    assert_exit(&run("start"), 0);
    assert_eq!(
        std::fs::read_to_string(&pidfile).unwrap().trim(),
        pid.to_string()
    );

    assert_exit(&run("stop"), 0);
    assert_eq!(std::fs::read_to_string(d.join("term")).unwrap(), "TERM\n");
    assert!(!pidfile.exists());
    let o = run("status");
    assert_exit(&o, 3);
    assert!(stdout(&o).contains("not running"), "{}", stdout(&o));
}

/// The unit's command as systemd runs it (`NoNewPrivileges=yes`, SIGTERM to
/// the agent alone), in a namespace, with the persisted profile's path
/// swapped for a scratch one and the state directory through the
/// environment (the unit's default is the host's): the agent applies the
/// profile, exits 0 on SIGTERM within 5 s and leaves the setup in place;
/// `rollback --yes` removes it.
#[test]
fn the_units_command_runs_the_agent_under_no_new_privs_and_stops_cleanly() {
    let Some(lab) = common::lab(
        "the_units_command_runs_the_agent_under_no_new_privs_and_stops_cleanly",
        &["iptables", "ip6tables", "iptables-save", "setpriv"],
    ) else {
        return;
    };
    let ns = lab.netns();
    let s = Scene::new();
    let p = s.profile("client.toml", CLIENT);
    let line = systemd::UNIT_TEMPLATE
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let argv: Vec<String> = line
        .split_whitespace()
        .map(|a| match a {
            persist::PACKAGED_EXE => BIN.to_string(),
            "/etc/dscproute/%i.toml" => p.display().to_string(),
            other => other.to_string(),
        })
        .collect();
    assert_eq!(argv[1], "agent");
    let mut full = vec!["setpriv", "--no-new-privs"];
    full.extend(argv.iter().map(String::as_str));
    let out_file = s.path("agent.out");
    let mut agent = ns
        .command(&full)
        .env("DSCPROUTE_STATE_DIR", s.state())
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    struct Reap<'a>(&'a mut std::process::Child);
    impl Drop for Reap<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let agent = Reap(&mut agent);
    let chains = || {
        let o = ns.exec_ok(&["iptables-save", "-t", "mangle"]);
        stdout(&o).contains(":DSCPROUTE-MARK")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&out_file)
        .unwrap_or_default()
        .contains("applied ")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not apply: {}",
            std::fs::read_to_string(&out_file).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(chains());
    // `ip netns exec` and setpriv exec the agent: this pid is the agent's.
    let pid = agent.0.id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");

    // SAFETY: kill has no memory preconditions.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGTERM) }, 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let code = loop {
        if let Some(st) = agent.0.try_wait().unwrap() {
            break st.code();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no exit 5 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    let out = std::fs::read_to_string(&out_file).unwrap();
    assert!(out.contains("the setup stays in place"), "{out}");
    assert!(chains(), "stopping the agent removes nothing");
    drop(agent);

    let o = ns.exec(&[
        BIN,
        "--state-dir",
        s.state().to_str().unwrap(),
        "rollback",
        "--yes",
    ]);
    assert_exit(&o, 0);
    assert!(!chains());
}
