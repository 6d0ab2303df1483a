//! The contract a configuration manager relies on, and the Ansible example
//! (assets/ansible) that uses it:
//!
//! - `plan --json`: `steps[].state` is `add`, `change` or `in_place`;
//!   `errors[]`; exit 0, 3 when errors block apply, 2 for a bad profile.
//! - `apply --json`: `status` is `changed`, `pending_confirm`, `ok`,
//!   `refused` or `failed`, and `changed` is a bool; exit 0, 1, 3 or 4
//!   (every key, src/ops/snapshots/).
//! - `rollback --json`: `status`, `changed`, `transaction`, `message`.
//! - `status --json`: `transaction`, `clean`, and what is in place.
//!
//! `plan` and `status` run without root; apply and rollback run in a scratch
//! network namespace (root; they skip visibly otherwise). The playbook is
//! syntax-checked and then run for real with Ansible's local connection
//! inside a namespace: check mode, apply, idempotence, a refused profile.
//! Without ansible-playbook those skip visibly, unless DSCPROUTE_LAB=required.

mod common;

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_dscproute");
const CLIENT: &str = "[marker]\ngroup = 4242\ndscp = 7\n";
/// A gateway whose VPN interface does not exist here: apply refuses (exit 3).
const NO_VPN: &str = "[gateway]\ndscp = 7\ninterface = \"dscprnone0\"\nvia = \"10.8.0.1\"\n";
const LAB_TOOLS: &[&str] = &["iptables", "ip6tables", "iptables-save", "ip6tables-save"];

fn manifest(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn expect(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "exit status\nstdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

#[track_caller]
fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", stdout(o), stderr(o)))
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

fn dscproute(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

// ---------------------------------------------------------------------------
// plan and status: no root needed.

fn plan_json(profile: &str, facts: &str) -> Output {
    let fx = |f: &str| manifest("tests/fixtures/plan").join(f);
    dscproute(&[
        "plan",
        "--profile",
        fx(profile).to_str().unwrap(),
        "--facts",
        fx(facts).to_str().unwrap(),
        "--json",
    ])
}

/// Steps not in place: what check mode reports as "changed".
fn pending(plan: &Value) -> usize {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] != "in_place")
        .count()
}

#[test]
fn plan_json_tells_changed_from_ok_from_failed() {
    // A clean gateway: steps to add or change ("changed" in check mode).
    let o = plan_json("gateway.toml", "gateway-clean.json");
    expect(&o, 0);
    let plan = json(&o);
    for key in ["steps", "errors", "warnings", "summary", "resolved"] {
        assert!(
            plan.get(key).is_some(),
            "no {key}: {}",
            keys(&plan).join(", ")
        );
    }
    assert_eq!(plan["errors"], Value::Array(vec![]));
    let steps = plan["steps"].as_array().unwrap();
    for s in steps {
        let state = s["state"].as_str().unwrap();
        assert!(
            ["add", "change", "in_place"].contains(&state),
            "state {state}"
        );
        for key in ["apply", "undo", "reason", "role"] {
            assert!(s.get(key).is_some(), "step without {key}: {s}");
        }
    }
    assert!(pending(&plan) > 0);
    let sum = &plan["summary"];
    assert_eq!(
        sum["add"].as_u64().unwrap() + sum["change"].as_u64().unwrap(),
        pending(&plan) as u64
    );
    assert_eq!(
        sum["in_place"].as_u64().unwrap() as usize,
        steps.len() - pending(&plan)
    );

    // The same gateway once applied: every step in place ("ok").
    let o = plan_json("gateway.toml", "gateway-applied.json");
    expect(&o, 0);
    assert_eq!(pending(&json(&o)), 0);

    // Conflicts: errors block apply, exit 3 ("failed"), the plan still shown.
    let o = plan_json("gateway.toml", "gateway-conflicts.json");
    expect(&o, 3);
    assert!(!json(&o)["errors"].as_array().unwrap().is_empty());

    // A bad profile: exit 2, nothing on stdout.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[gateway]\ndscp = 64\n").unwrap();
    let o = dscproute(&["plan", "--profile", bad.to_str().unwrap(), "--json"]);
    expect(&o, 2);
    assert!(o.stdout.is_empty());
}

#[test]
fn status_json_has_the_keys_scripts_read() {
    let state = tempfile::tempdir().unwrap();
    let o = dscproute(&[
        "--state-dir",
        state.path().to_str().unwrap(),
        "status",
        "--json",
    ]);
    expect(&o, 0);
    let s = json(&o);
    assert_eq!(
        keys(&s),
        [
            "advice",
            "agent",
            "clean",
            "netfilter",
            "routes",
            "rules",
            "sysctls",
            "transaction"
        ]
    );
    assert_eq!(s["transaction"], Value::Null, "no journal yet");
    assert_eq!(s["agent"], Value::Null, "no agent runs");
    assert!(s["clean"].is_boolean());
}

// ---------------------------------------------------------------------------
// apply and rollback, in a namespace.

/// A namespace, a state dir and profiles, for running the real binary.
struct Host {
    ns: common::Netns,
    dir: tempfile::TempDir,
}

impl Host {
    fn new(lab: &common::Lab) -> Host {
        let h = Host {
            ns: lab.netns(),
            dir: tempfile::tempdir().unwrap(),
        };
        h.write("client.toml", CLIENT);
        h.write("novpn.toml", NO_VPN);
        h
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    fn state(&self) -> PathBuf {
        self.path("state")
    }

    fn dscproute_env(&self, env: &[(&str, String)], args: &[&str]) -> Output {
        let state = self.state();
        let mut argv = vec!["env"];
        let vars: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        argv.extend(vars.iter().map(String::as_str));
        argv.extend([BIN, "--state-dir", state.to_str().unwrap()]);
        argv.extend_from_slice(args);
        self.ns.exec(&argv)
    }

    fn dscproute(&self, args: &[&str]) -> Output {
        self.dscproute_env(&[], args)
    }

    fn apply(&self, profile: &str, extra: &[&str]) -> Output {
        let p = self.path(profile);
        let mut args = vec!["apply", "--profile", p.to_str().unwrap(), "--yes", "--json"];
        args.extend_from_slice(extra);
        self.dscproute(&args)
    }

    fn ours_in_place(&self) -> bool {
        let o = self.ns.exec_ok(&["iptables-save", "-t", "mangle"]);
        stdout(&o).contains("DSCPROUTE-MARK")
    }
}

#[test]
fn apply_and_rollback_json_tell_changed_from_ok_from_failed() {
    let Some(lab) = common::lab(
        "apply_and_rollback_json_tell_changed_from_ok_from_failed",
        LAB_TOOLS,
    ) else {
        return;
    };
    let h = Host::new(&lab);

    let o = h.apply("client.toml", &[]);
    expect(&o, 0);
    let v = json(&o);
    assert_eq!(
        (v["status"].as_str(), v["changed"].as_bool()),
        (Some("changed"), Some(true))
    );
    assert!(
        v["transaction"].is_string() && v["steps"].as_u64().unwrap() > 0,
        "{v}"
    );
    let applied = v["transaction"].clone();
    assert!(h.ours_in_place());

    let o = h.apply("client.toml", &[]);
    expect(&o, 0);
    assert_eq!(
        json(&o),
        serde_json::json!({
            "status": "ok",
            "changed": false,
            "transaction": null,
            "steps": 0,
            "confirm_deadline_unix": null,
            "errors": [],
            "failed_command": null,
            "stderr": null,
        })
    );

    let o = h.dscproute(&["rollback", "--yes", "--json"]);
    expect(&o, 0);
    let v = json(&o);
    assert_eq!(keys(&v), ["changed", "message", "status", "transaction"]);
    assert_eq!(v["transaction"], applied, "the one apply made");
    assert_eq!(
        (v["status"].as_str(), v["changed"].as_bool()),
        (Some("ok"), Some(true))
    );
    assert!(!h.ours_in_place());
    let o = h.dscproute(&["rollback", "--yes", "--json"]);
    expect(&o, 0);
    assert_eq!(json(&o)["changed"], false, "nothing left to roll back");

    // Commit-confirmed: pending, and a second apply is "not now" (4, no JSON).
    let o = h.apply("client.toml", &["--confirm", "120"]);
    expect(&o, 0);
    let v = json(&o);
    assert_eq!(v["status"], "pending_confirm");
    assert_eq!(v["changed"], true);
    assert!(v["confirm_deadline_unix"].as_u64().is_some());
    let o = h.apply("client.toml", &[]);
    expect(&o, 4);
    assert!(o.stdout.is_empty());
    expect(&h.dscproute(&["confirm"]), 0);
    expect(&h.dscproute(&["rollback", "--yes"]), 0);

    // Refused by the host: exit 3, nothing changed.
    let o = h.apply("novpn.toml", &[]);
    expect(&o, 3);
    let v = json(&o);
    assert_eq!(
        (v["status"].as_str(), v["changed"].as_bool()),
        (Some("refused"), Some(false))
    );
    assert!(
        v["errors"][0].as_str().unwrap().contains("dscprnone0"),
        "{v}"
    );

    // A step fails: exit 1, undone, "failed" with the command and its stderr.
    let wrappers = h.path("bin");
    std::fs::create_dir_all(&wrappers).unwrap();
    let real = which::which("iptables").unwrap();
    let fake = wrappers.join("iptables");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = -A ] && {{ echo 'injected failure' >&2; \
             exit 1; }}; done\nexec {} \"$@\"\n",
            real.display()
        ),
    )
    .unwrap();
    // Batched iptables steps go through iptables-restore: refuse a batch
    // holding an -A line, blaming it as iptables-restore does.
    let fake_restore = wrappers.join("iptables-restore");
    std::fs::write(
        &fake_restore,
        format!(
            "#!/bin/sh\nin=$(cat)\nn=$(printf '%s\\n' \"$in\" | grep -n '^-A ' | head -n1 | cut -d: -f1)\n\
             [ -n \"$n\" ] && {{ echo \"iptables-restore: line $n failed: injected failure\" >&2; \
             exit 1; }}\nprintf '%s\\n' \"$in\" | exec {} \"$@\"\n",
            which::which("iptables-restore").unwrap().display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&fake_restore, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        wrappers.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let client = h.path("client.toml");
    let o = h.dscproute_env(
        &[("PATH", path)],
        &[
            "apply",
            "--profile",
            client.to_str().unwrap(),
            "--yes",
            "--json",
        ],
    );
    expect(&o, 1);
    let v = json(&o);
    assert_eq!(
        (v["status"].as_str(), v["changed"].as_bool()),
        (Some("failed"), Some(false))
    );
    assert!(v["failed_command"].as_str().unwrap().contains("-A"), "{v}");
    assert!(
        v["stderr"].as_str().unwrap().contains("injected failure"),
        "{v}"
    );
    assert!(!h.ours_in_place(), "the completed steps were undone");
}

// ---------------------------------------------------------------------------
// The Ansible example.

/// `ansible-playbook`, or `None` after a visible skip (a failure under
/// DSCPROUTE_LAB=required, where CI installs it).
fn ansible(test: &str) -> Option<PathBuf> {
    match which::which("ansible-playbook") {
        Ok(p) => Some(p),
        Err(_) if std::env::var("DSCPROUTE_LAB").is_ok_and(|v| v == "required") => {
            panic!("{test}: ansible-playbook is not installed (apt-get install ansible-core)")
        }
        Err(_) => {
            let _ = writeln!(
                std::io::stderr(),
                "SKIP {test}: ansible-playbook is not installed (apt-get install ansible-core)"
            );
            None
        }
    }
}

fn playbook() -> PathBuf {
    manifest("assets/ansible/playbook.yml")
}

/// The role uses exactly the contract the tests above pin on the binary.
#[test]
fn the_role_reads_the_pinned_contract() {
    let tasks =
        std::fs::read_to_string(manifest("assets/ansible/roles/dscproute/tasks/main.yml")).unwrap();
    for needle in [
        "['plan', '--profile', '/dev/stdin', '--json']",
        "rejectattr('state', 'equalto', 'in_place')",
        "'apply', '--profile', dscproute_staged_profile, '--yes', '--json'",
        "from_json).changed",
        "in ['failed', 'refused']",
        "'pending_confirm'",
        "'Nothing changed' not in",
        "when: ansible_check_mode",
        "check_mode: false",
    ] {
        assert!(tasks.contains(needle), "the role no longer uses {needle:?}");
    }
    for f in ["defaults/main.yml", "README.md"] {
        assert!(
            manifest("assets/ansible/roles/dscproute").join(f).is_file(),
            "{f}"
        );
    }
}

#[test]
fn the_playbook_passes_ansible_syntax_check() {
    let Some(ansible) = ansible("the_playbook_passes_ansible_syntax_check") else {
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let o = Command::new(ansible)
        .args(["-i", "localhost,", "--syntax-check"])
        .arg(playbook())
        .env("HOME", home.path())
        .env("ANSIBLE_LOCAL_TEMP", home.path().join("tmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .current_dir(home.path())
        .output()
        .unwrap();
    expect(&o, 0);
}

/// One ansible-playbook run: per task (without the role prefix), the result
/// word (`ok`, `changed`, `skipping`, `fatal`), and the recap numbers.
#[derive(Debug)]
struct Run {
    tasks: Vec<(String, String)>,
    changed: u32,
    failed: u32,
    output: String,
}

impl Run {
    fn parse(output: String) -> Run {
        let mut tasks = Vec::new();
        let mut current: Option<String> = None;
        let (mut changed, mut failed) = (u32::MAX, u32::MAX);
        for line in output.lines() {
            if let Some(rest) = line.strip_prefix("TASK [") {
                let name = rest.split(']').next().unwrap_or_default();
                current = Some(name.trim_start_matches("dscproute : ").to_string());
            } else if let Some((word, _)) = line.split_once(": [localhost]") {
                if let Some(name) = current.take() {
                    tasks.push((name, word.to_string()));
                }
            } else if line.starts_with("localhost") && line.contains("changed=") {
                let num = |key: &str| -> u32 {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix(key))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(u32::MAX)
                };
                changed = num("changed=");
                failed = num("failed=");
            }
        }
        Run {
            tasks,
            changed,
            failed,
            output,
        }
    }

    #[track_caller]
    fn task(&self, name: &str) -> &str {
        self.tasks
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, w)| w.as_str())
            .unwrap_or_else(|| panic!("no task {name:?} in:\n{}", self.output))
    }
}

/// `ansible-playbook` arguments and environment for the example playbook
/// on this machine (local connection), with dscproute's paths pointed at a
/// test's scratch directories; Ansible's own files go under `home`.
fn playbook_args(cmd: &mut Command, profile: &Path, state: &Path, root: &Path, home: &Path) {
    let var = |k: &str, v: &Path| format!("{k}={}", v.display());
    cmd.args(["-i", "localhost,", "-c", "local"])
        .arg(playbook())
        .args([
            "-e",
            "dscproute_hosts=localhost",
            "-e",
            "dscproute_become=false",
        ])
        .args(["-e", "ansible_python_interpreter=auto_silent"])
        .args(["-e", "dscproute_name=edge"])
        .args(["-e", &var("dscproute_profile", profile)])
        .args(["-e", &var("dscproute_bin", Path::new(BIN))])
        .args(["-e", &var("dscproute_state_dir", state)])
        .args(["-e", &var("dscproute_root", root)])
        .env("HOME", home)
        .env("ANSIBLE_LOCAL_TEMP", home.join("local"))
        .env("ANSIBLE_REMOTE_TEMP", home.join("remote"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .current_dir(home);
}

/// Check mode only plans (read-only, so it runs on this host, without
/// root): a plan the host refuses fails the play with plan's reason.
#[test]
fn check_mode_fails_with_the_reason_when_the_plan_is_refused() {
    let test = "check_mode_fails_with_the_reason_when_the_plan_is_refused";
    let Some(ansible) = ansible(test) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("novpn.toml");
    std::fs::write(&profile, NO_VPN).unwrap();
    let (state, root, home) = (
        dir.path().join("state"),
        dir.path().join("root"),
        dir.path().join("home"),
    );
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(ansible);
    playbook_args(&mut cmd, &profile, &state, &root, &home);
    let o = cmd.arg("--check").output().unwrap();
    let r = Run::parse(format!("{}{}", stdout(&o), stderr(&o)));
    assert!(!o.status.success(), "{}", r.output);
    assert_eq!(r.failed, 1, "{}", r.output);
    assert_eq!(r.task("Plan the profile (check mode, read-only)"), "ok");
    assert_eq!(
        r.task("Fail when the plan cannot be applied (check mode)"),
        "fatal"
    );
    assert!(
        r.output.contains("dscproute plan exited 3: ")
            && r.output.contains("interface dscprnone0 does not exist"),
        "{}",
        r.output
    );
    assert!(!root.exists() && !state.exists(), "check mode wrote files");
}

#[test]
fn ansible_drives_dscproute_in_a_namespace() {
    let test = "ansible_drives_dscproute_in_a_namespace";
    let Some(ansible) = ansible(test) else {
        return;
    };
    let Some(lab) = common::lab(test, LAB_TOOLS) else {
        return;
    };
    let h = Host::new(&lab);
    // The install root is an image with systemd's unit directory.
    let root = h.path("root");
    std::fs::create_dir_all(root.join("etc/systemd/system")).unwrap();
    let home = h.path("home");
    std::fs::create_dir_all(&home).unwrap();
    let play = |profile: &str, check: bool| -> Run {
        let mut cmd = h.ns.command(&[ansible.to_str().unwrap()]);
        playbook_args(&mut cmd, &h.path(profile), &h.state(), &root, &home);
        if check {
            cmd.args(["--check", "--diff"]);
        }
        let o = cmd.output().unwrap();
        let run = Run::parse(format!("{}{}", stdout(&o), stderr(&o)));
        assert_eq!(o.status.success(), run.failed == 0, "{}", run.output);
        run
    };

    // Check mode: the plan has work to do, so "changed"; nothing happens.
    let r = play("client.toml", true);
    assert_eq!(r.failed, 0, "{}", r.output);
    assert_eq!(
        r.task("Plan the profile (check mode, read-only)"),
        "changed"
    );
    assert_eq!(r.task("Apply the profile"), "skipping");
    assert!(!h.ours_in_place());
    assert!(
        !root.join("etc/dscproute").exists(),
        "check mode wrote files"
    );

    // For real: applied, then persisted.
    let r = play("client.toml", false);
    assert_eq!(r.failed, 0, "{}", r.output);
    assert_eq!(r.task("Apply the profile"), "changed");
    assert_eq!(r.task("Persist the setup across reboots"), "changed");
    assert!(h.ours_in_place());
    let persisted = root.join("etc/dscproute/edge.toml");
    assert_eq!(std::fs::read_to_string(&persisted).unwrap(), CLIENT);
    assert!(
        root.join("etc/systemd/system/multi-user.target.wants/dscproute@edge.service")
            .symlink_metadata()
            .is_ok()
    );

    // Again: nothing to do anywhere.
    let r = play("client.toml", false);
    assert_eq!((r.changed, r.failed), (0, 0), "{}", r.output);
    assert_eq!(r.task("Apply the profile"), "ok");
    let r = play("client.toml", true);
    assert_eq!((r.changed, r.failed), (0, 0), "{}", r.output);
    assert_eq!(r.task("Plan the profile (check mode, read-only)"), "ok");

    // A profile the host refuses: failed, and what boots stays the kept one.
    let r = play("novpn.toml", false);
    assert_eq!(r.failed, 1, "{}", r.output);
    assert_eq!(r.task("Apply the profile"), "fatal");
    assert!(
        r.output.contains("dscprnone0 does not exist"),
        "{}",
        r.output
    );
    assert_eq!(std::fs::read_to_string(&persisted).unwrap(), CLIENT);
    assert!(h.ours_in_place(), "the kept setup still runs");

    expect(&h.dscproute(&["rollback", "--yes"]), 0);
}
