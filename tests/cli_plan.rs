//! `dscproute plan` as a user runs it: the real binary against recorded host
//! facts (tests/fixtures/plan/): exit statuses, which stream says what, the
//! JSON, and the script (syntax, quoting, and what it really runs, through
//! stub commands). None of that needs root. The last tests run the script for
//! real in a network namespace and check that undo restores the host; they
//! need root and skip visibly without it (see tests/common).

mod common;

use common::{lab, veth};
use dscproute::backend::Effect;
use dscproute::plan::{Plan, PlanOptions, plan};
use dscproute::probe::HostFacts;
use dscproute::profile::Profile;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_dscproute");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/plan")
        .join(name)
}

fn dscproute(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run dscproute")
}

/// `plan --profile P --facts F [extra...]` with fixture files.
fn plan_cmd(profile: &Path, facts: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "plan",
        "--profile",
        profile.to_str().unwrap(),
        "--facts",
        facts.to_str().unwrap(),
    ];
    args.extend(extra);
    dscproute(&args)
}

fn fx(profile: &str, facts: &str, extra: &[&str]) -> Output {
    plan_cmd(&fixture(profile), &fixture(facts), extra)
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[track_caller]
fn assert_status(o: &Output, code: i32) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

/// The same plan the binary computes, from the library.
fn library_plan(profile: &Path, facts: &Path, opts: PlanOptions) -> Plan {
    let p = Profile::load(profile).unwrap();
    let f: HostFacts = serde_json::from_str(&std::fs::read_to_string(facts).unwrap()).unwrap();
    plan(&p, &f, opts).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

// ------------------------------------------------------------ exit statuses

#[test]
fn a_clean_host_exits_0_with_the_preview() {
    let o = fx("gateway.toml", "gateway-clean.json", &[]);
    assert_status(&o, 0);
    let out = stdout(&o);
    assert!(out.starts_with("dscproute plan (gateway) from "), "{out}");
    assert!(out.contains("Plan: 31 to add, 3 to change, 0 already in place."));
    assert!(
        out.contains(
            "  + iptables -w -t mangle -A DSCPROUTE-ROUTE ! -i wg0 -m dscp --dscp 0x07 -j MARK \
             --set-xmark 0x3/0xff\n"
        ),
        "{out}"
    );
    assert_eq!(stderr(&o), "");
}

#[test]
fn an_applied_host_exits_0_with_nothing_to_do() {
    for (profile, facts) in [
        ("gateway.toml", "gateway-applied.json"),
        ("client.toml", "client-applied.json"),
        ("both.toml", "both-applied.json"),
    ] {
        let o = fx(profile, facts, &[]);
        assert_status(&o, 0);
        let out = stdout(&o);
        assert!(out.contains("Plan: 0 to add, 0 to change, "), "{out}");
        assert!(out.contains("Nothing to do: this host already matches the profile."));
    }
}

#[test]
fn plan_errors_exit_3_with_the_preview_and_errors_on_stdout() {
    let o = fx("gateway.toml", "gateway-conflicts.json", &[]);
    assert_status(&o, 3);
    let out = stdout(&o);
    assert!(out.contains("Plan: 31 to add, 3 to change, 0 already in place."));
    assert!(out.contains("Errors (apply refuses until they are fixed)\n  ✗ rule priority 10000"));
    // The preview is the whole answer: nothing more on stderr.
    assert_eq!(stderr(&o), "");
}

#[test]
fn plan_errors_with_json_exit_3_and_list_them() {
    let o = fx("gateway.toml", "gateway-conflicts.json", &["--json"]);
    assert_status(&o, 3);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[0]
            .as_str()
            .unwrap()
            .starts_with("rule priority 10000 is taken")
    );
    assert_eq!(stderr(&o), "");
}

#[test]
fn plan_errors_refuse_a_script() {
    let o = fx("gateway.toml", "gateway-conflicts.json", &["--script"]);
    assert_status(&o, 3);
    assert_eq!(stdout(&o), "", "no script for a plan that cannot apply");
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].starts_with("dscproute: rule priority 10000 is taken by ip rule 10000"));
    assert!(lines[1].starts_with("dscproute: routing table 100 already holds routes"));
    assert!(
        lines[2].starts_with("dscproute: iptables -t mangle -A PREROUTING -s 192.168.50.10/32")
    );
}

#[test]
fn values_that_cannot_be_settled_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    // Kubernetes holds the only value in this mask.
    let profile = write(
        dir.path(),
        "p.toml",
        "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nmask = \"0x4000\"\n",
    );
    let facts = fixture("gateway-conflicts.json");
    let o = plan_cmd(&profile, &facts, &[]);
    assert_status(&o, 3);
    assert_eq!(stdout(&o), "");
    assert_eq!(
        stderr(&o),
        "dscproute: no free mark value within mask 0x4000: every value is used by other rules; \
         set gateway.mark and gateway.mask to bits no one else uses\n"
    );
    let o = plan_cmd(&profile, &facts, &["--json"]);
    assert_status(&o, 3);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["error"], "refused");
    assert_eq!(v["problems"].as_array().unwrap().len(), 1);
}

#[test]
fn an_invalid_profile_exits_2_with_one_line_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let profile = write(
        dir.path(),
        "bad.toml",
        "# a gateway\n[gateway]\ndscp = 64\ninterface = \"wg0\"\n",
    );
    let o = plan_cmd(&profile, &fixture("gateway-clean.json"), &[]);
    assert_status(&o, 2);
    assert_eq!(stdout(&o), "");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "dscproute: {}:3: gateway.dscp = 64: ",
            profile.display()
        )),
        "{err}"
    );
    // Unknown keys and wrong types too.
    for (text, line, key) in [
        (
            "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = 5\n",
            4,
            "via",
        ),
        (
            "[marker]\ngroup = \"torrent\"\ndscp = 7\ncolour = 1\n",
            4,
            "colour",
        ),
    ] {
        let profile = write(dir.path(), "bad2.toml", text);
        let o = plan_cmd(&profile, &fixture("gateway-clean.json"), &[]);
        assert_status(&o, 2);
        assert_eq!(stdout(&o), "");
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!("dscproute: {}:{line}: ", profile.display())),
            "{err}"
        );
        assert!(err.contains(key), "{err}");
    }
}

#[test]
fn a_missing_profile_exits_2() {
    let o = plan_cmd(
        Path::new("/nonexistent/dscproute.toml"),
        &fixture("gateway-clean.json"),
        &[],
    );
    assert_status(&o, 2);
    assert_eq!(stdout(&o), "");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("dscproute: /nonexistent/dscproute.toml"),
        "{err}"
    );
    assert!(err.contains("cannot read the profile"), "{err}");
}

#[test]
fn a_bad_or_missing_facts_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "facts.json", "{\"links\": 5}");
    let o = plan_cmd(&fixture("gateway.toml"), &bad, &[]);
    assert_status(&o, 2);
    assert_eq!(stdout(&o), "");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not a facts file"), "{err}");
    assert!(err.contains("dscproute facts --json"), "{err}");

    let o = plan_cmd(&fixture("gateway.toml"), &dir.path().join("none.json"), &[]);
    assert_status(&o, 2);
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("cannot read facts file"),
        "{}",
        stderr(&o)
    );
}

/// A facts file is a recording of a host: one that lacks what a plan needs
/// (here all of it) must not be read as an empty, non-root host.
#[test]
fn facts_missing_what_a_plan_needs_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.json", "{}");
    let o = plan_cmd(&fixture("gateway.toml"), &empty, &[]);
    assert_status(&o, 2);
    assert_eq!(stdout(&o), "");
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    for key in ["is_root", "groups", "links", "rules_v4", "iptables_save"] {
        assert!(err.contains(key), "{key} not named: {err}");
    }
    assert!(!err.contains("Not running as root"), "{err}");

    // One key missing from a real recording: that key is named.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("gateway-clean.json")).unwrap())
            .unwrap();
    v.as_object_mut().unwrap().remove("is_root");
    let partial = write(dir.path(), "partial.json", &v.to_string());
    let o = plan_cmd(&fixture("gateway.toml"), &partial, &[]);
    assert_status(&o, 2);
    assert!(
        stderr(&o).contains("incomplete: is_root missing"),
        "{}",
        stderr(&o)
    );
}

/// `--script` refuses what `apply` refuses on the same host: here the
/// group does not exist and the interface is missing. Exit 3, the errors on
/// stderr, no script.
#[test]
fn a_script_is_refused_for_what_would_stop_apply() {
    let dir = tempfile::tempdir().unwrap();
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("client.json")).unwrap()).unwrap();
    v["groups"]
        .as_array_mut()
        .unwrap()
        .retain(|g| g["name"] != "torrent");
    let no_group = write(dir.path(), "no-group.json", &v.to_string());
    let o = plan_cmd(&fixture("client.toml"), &no_group, &["--script"]);
    assert_status(&o, 3);
    assert_eq!(stdout(&o), "", "no script for a plan apply refuses");
    assert!(
        stderr(&o).starts_with("dscproute: group \"torrent\" does not exist"),
        "{}",
        stderr(&o)
    );

    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("gateway-clean.json")).unwrap())
            .unwrap();
    v["links"]
        .as_array_mut()
        .unwrap()
        .retain(|l| l["name"] != "wg0");
    let no_wg0 = write(dir.path(), "no-wg0.json", &v.to_string());
    let o = plan_cmd(&fixture("gateway.toml"), &no_wg0, &["--script"]);
    assert_status(&o, 3);
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("interface wg0 does not exist"),
        "{}",
        stderr(&o)
    );
}

/// Runs dscproute with a deadline (a FIFO would block today's code forever)
/// and an address-space limit (/dev/zero would grow without end): it must
/// exit by itself, in time.
fn bounded(args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1 << 30,
                rlim_max: 1 << 30,
            };
            libc::setrlimit(libc::RLIMIT_AS, &lim);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("run dscproute");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("dscproute {args:?} did not finish within 10 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Only regular files and pipes of at most 1 MiB are read as a profile or
/// as facts: a device, a FIFO nobody writes to (it never blocks), a
/// directory or a huge file get one line and exit 2.
#[test]
fn profile_and_facts_must_be_regular_files_up_to_one_mib() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let mut big = std::fs::read_to_string(fixture("gateway.toml")).unwrap();
    big.push_str(&format!("# {}\n", "x".repeat(2 << 20)));
    let big = write(dir.path(), "big.toml", &big);
    let facts = fixture("gateway-clean.json");
    let profile = fixture("gateway.toml");
    let cases: [(&Path, &str); 5] = [
        (Path::new("/dev/zero"), "a character device"),
        (Path::new("/dev/null"), "a character device"),
        (&fifo, "a FIFO and nothing was written to it"),
        (dir.path(), "a directory"),
        (&big, "larger than 1 MiB"),
    ];
    for (path, why) in cases {
        let p = path.to_str().unwrap();
        for (args, what) in [
            (
                ["plan", "--profile", p, "--facts", facts.to_str().unwrap()],
                "cannot read the profile",
            ),
            (
                ["plan", "--profile", profile.to_str().unwrap(), "--facts", p],
                "cannot read facts file",
            ),
        ] {
            let o = bounded(&args);
            assert_status(&o, 2);
            assert_eq!(stdout(&o), "");
            let err = stderr(&o);
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(err.contains(what) && err.contains(why), "{args:?}: {err}");
            assert!(
                err.contains("give a regular file or a pipe, up to 1 MiB"),
                "{err}"
            );
        }
    }
    // A pipe is read: `… | dscproute plan --profile /dev/stdin`.
    let mut child = Command::new(BIN)
        .args(["plan", "--profile", "/dev/stdin", "--facts"])
        .arg(&facts)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    let text = std::fs::read(&profile).unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_status(&o, 0);
}

/// A 50 kB value is quoted back clipped, in a TOML type error and in a
/// validation error alike.
#[test]
fn huge_values_are_not_echoed_back() {
    let dir = tempfile::tempdir().unwrap();
    let huge = "x".repeat(50_000);
    for text in [
        format!("[gateway]\ndscp = 7\ninterface = \"{huge}\"\n"),
        format!("[gateway]\ndscp = 7\ninterface = \"wg0\"\nkill_switch = \"{huge}\"\n"),
        format!("[marker]\ngroup = \"t\"\ndscp = \"{huge}\"\n"),
        format!("[marker]\ngroup = \"t\"\ndscp = 7\n{huge} = 1\n"),
    ] {
        let profile = write(dir.path(), "huge.toml", &text);
        let o = plan_cmd(&profile, &fixture("gateway-clean.json"), &[]);
        assert_status(&o, 2);
        let err = stderr(&o);
        assert_eq!(err.lines().count(), 1);
        assert!(err.len() < 600, "{} bytes: {}…", err.len(), &err[..300]);
        assert!(err.contains('…'), "{err}");
    }
}

#[test]
fn json_and_script_cannot_be_combined() {
    let o = fx(
        "gateway.toml",
        "gateway-clean.json",
        &["--json", "--script"],
    );
    assert_status(&o, 2);
    assert_eq!(stdout(&o), "");
}

// --------------------------------------------------------------------- JSON

#[test]
fn json_is_the_library_plan_with_argv_lists() {
    for (profile, facts) in [
        ("gateway.toml", "gateway-clean.json"),
        ("client.toml", "client.json"),
        ("both.toml", "both-applied.json"),
    ] {
        let o = fx(profile, facts, &["--json"]);
        assert_status(&o, 0);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let expected = library_plan(&fixture(profile), &fixture(facts), PlanOptions::default());
        assert_eq!(v, serde_json::to_value(&expected).unwrap(), "{profile}");
        let steps = v["steps"].as_array().unwrap();
        assert_eq!(steps.len(), expected.steps.len());
        for (s, e) in steps.iter().zip(&expected.steps) {
            if let Effect::Run { argv } = &e.apply.effect() {
                assert_eq!(s["apply"]["kind"], "run");
                let got: Vec<&str> = s["apply"]["argv"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap())
                    .collect();
                assert_eq!(got, *argv);
            }
        }
    }
    let o = fx("gateway.toml", "gateway-clean.json", &["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let marking: Vec<&serde_json::Value> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["apply"]["argv"].as_array().is_some_and(|a| a.len() == 17))
        .collect();
    assert_eq!(
        marking[0]["apply"]["argv"],
        serde_json::json!([
            "iptables",
            "-w",
            "-t",
            "mangle",
            "-A",
            "DSCPROUTE-ROUTE",
            "!",
            "-i",
            "wg0",
            "-m",
            "dscp",
            "--dscp",
            "0x07",
            "-j",
            "MARK",
            "--set-xmark",
            "0x3/0xff"
        ])
    );
    assert_eq!(marking[0]["state"], "add");
}

// ------------------------------------------------------------------- script

/// What `sh` must see for one argument: bare when only safe characters,
/// otherwise single-quoted (with `'` as `'\''`).
fn quoted(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if safe {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn sh_syntax_ok(script: &Path) {
    let o = Command::new("sh").arg("-n").arg(script).output().unwrap();
    assert!(
        o.status.success(),
        "sh -n {}: {}",
        script.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn scripts_pass_sh_n_and_hold_every_pending_apply_quoted() {
    let dir = tempfile::tempdir().unwrap();
    for (profile, facts) in [
        ("gateway.toml", "gateway-clean.json"),
        ("gateway.toml", "gateway-stale.json"),
        ("p2p.toml", "gateway-p2p-pointopoint.json"),
        ("client.toml", "client.json"),
        ("both.toml", "both.json"),
    ] {
        let o = fx(profile, facts, &["--script"]);
        assert_status(&o, 0);
        let text = stdout(&o);
        assert!(text.starts_with("#!/bin/sh\n"));
        let path = write(dir.path(), "plan.sh", &text);
        sh_syntax_ok(&path);
        let p = library_plan(&fixture(profile), &fixture(facts), PlanOptions::default());
        let pending: Vec<_> = p.pending().collect();
        assert!(text.contains(&format!("\nN={}\n", pending.len())));
        for (i, s) in pending.iter().enumerate() {
            if let Effect::Run { argv } = &s.apply.effect() {
                let line = argv.iter().map(|a| quoted(a)).collect::<Vec<_>>().join(" ");
                let n = i + 1;
                // A sysctl step first saves the old value where it runs.
                let want = if argv[0] == "sysctl" {
                    format!("&& {line}; }}")
                } else {
                    format!("step_{n}() {{ {line}; }}")
                };
                assert!(
                    text.contains(&want),
                    "{profile} on {facts}: step {n} is not `{line}`:\n{text}"
                );
            }
        }
        // `!` must never reach the shell bare.
        assert!(!text.contains(" ! -i"), "{text}");
        assert!(text.contains(" '!' -i") || !profile.starts_with("gateway"));
    }
}

/// Stub commands that log their argv (fields split by \x1f, one call a
/// line) instead of changing anything.
fn stub_bin(dir: &Path, log: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["ip", "iptables", "ip6tables", "sysctl", "mkdir"] {
        let path = bin.join(tool);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\n{{ printf '%s\\037' \"${{0##*/}}\"; for a in \"$@\"; do printf \
                 '%s\\037' \"$a\"; done; echo; }} >>'{}'\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    bin
}

fn logged(log: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            l.trim_end_matches('\x1f')
                .split('\x1f')
                .map(String::from)
                .collect()
        })
        .collect()
}

/// Every argv of `effects`, flattening sequences; file effects and the
/// empty-table drop run no logged command here.
fn run_argvs(e: &Effect, out: &mut Vec<Vec<String>>) {
    match e {
        Effect::Run { argv } => out.push(argv.clone()),
        Effect::Seq { effects } => effects.iter().for_each(|e| run_argvs(e, out)),
        _ => {}
    }
}

#[test]
fn the_script_runs_exactly_the_planned_argv_even_with_shell_characters() {
    let dir = tempfile::tempdir().unwrap();
    // An interface name the kernel accepts, full of shell syntax; planned
    // against facts whose links are unknown (so the interface is not
    // checked). Table by number: no file is written.
    let profile = write(
        dir.path(),
        "p.toml",
        "[gateway]\ndscp = 7\ninterface = \"v$(id)&;`x`*\"\nvia = \"10.8.0.1\"\n\
         table = 100\nmark = 3\n\n[marker]\ngroup = 4242\ndscp = 7\n",
    );
    let mut facts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("both.json")).unwrap()).unwrap();
    facts["links"] = serde_json::json!([]);
    let facts = write(dir.path(), "facts.json", &facts.to_string());
    let o = plan_cmd(&profile, &facts, &["--script"]);
    assert_status(&o, 0);
    let script = write(dir.path(), "plan.sh", &stdout(&o));
    sh_syntax_ok(&script);
    let p = library_plan(&profile, &facts, PlanOptions::default());
    assert!(
        p.steps
            .iter()
            .all(|s| !matches!(s.apply.effect(), Effect::WriteFile { .. })),
        "the test must not write files"
    );

    let log = dir.path().join("log");
    let bin = stub_bin(dir.path(), &log);
    // The stubs create nothing: the state dir for sysctl values must exist.
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let state_s = state.display().to_string();
    let run = |verb: &str| {
        let o = Command::new("/bin/sh")
            .arg(&script)
            .arg(verb)
            .env_clear()
            .env("PATH", &bin)
            .env("DSCPROUTE_SCRIPT_STATE", &state)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{verb}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    run("apply");
    let mut expected = Vec::new();
    for s in p.pending() {
        if let Effect::Run { argv } = &s.apply.effect()
            && argv[0] == "sysctl"
        {
            // The old value is saved where the script runs.
            let key = argv[3].split('=').next().unwrap().to_string();
            expected.push(vec!["mkdir".into(), "-p".into(), state_s.clone()]);
            expected.push(vec!["sysctl".into(), "-n".into(), key]);
        }
        run_argvs(&s.apply.effect(), &mut expected);
    }
    assert_eq!(logged(&log), expected);
    assert!(expected.iter().flatten().any(|a| a == "v$(id)&;`x`*"));

    std::fs::remove_file(&log).unwrap();
    run("undo");
    let mut expected = Vec::new();
    for s in p.pending().collect::<Vec<_>>().into_iter().rev() {
        if let Effect::Run { argv } = &s.apply.effect()
            && argv[0] == "sysctl"
        {
            // Undo writes back what was saved (the stub sysctl printed nothing).
            let key = argv[3].split('=').next().unwrap();
            expected.push(vec![
                "sysctl".into(),
                "-q".into(),
                "-w".into(),
                format!("{key}="),
            ]);
            continue;
        }
        run_argvs(&s.undo.effect(), &mut expected);
    }
    assert_eq!(logged(&log), expected);
}

#[test]
fn a_failing_step_undoes_the_ones_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let o = fx("client.toml", "client.json", &["--script"]);
    let script = write(dir.path(), "plan.sh", &stdout(&o));
    let log = dir.path().join("log");
    let bin = stub_bin(dir.path(), &log);
    // ip6tables fails: steps 1-4 (IPv4) ran, step 5 failed, 4..1 are undone.
    std::fs::write(bin.join("ip6tables"), "#!/bin/sh\nexit 1\n").unwrap();
    let o = Command::new("/bin/sh")
        .arg(&script)
        .arg("apply")
        .env_clear()
        .env("PATH", &bin)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("step 5 failed"));
    let ops: Vec<String> = logged(&log).iter().map(|a| a[4].clone()).collect();
    assert_eq!(ops, ["-N", "-A", "-A", "-I", "-D", "-D", "-D", "-X"]);
}

// ------------------------------------------------------- lab: real round trip

/// Everything the plan may touch, in a form that compares across runs.
fn dump(ns: &common::Netns) -> String {
    let mut out = String::new();
    for argv in [
        &["ip", "-4", "rule", "show"][..],
        &["ip", "-6", "rule", "show"],
        &["ip", "-4", "route", "show", "table", "all"],
        &["ip", "-6", "route", "show", "table", "all"],
        &["iptables-save"],
        &["ip6tables-save"],
        &[
            // -e: a client has no wg0.
            "sysctl",
            "-e",
            "net.ipv4.ip_forward",
            "net.ipv6.conf.all.forwarding",
            "net.ipv4.conf.all.rp_filter",
            "net.ipv4.conf.wg0.rp_filter",
        ],
    ] {
        let o = ns.exec_ok(argv);
        out.push_str(&format!("## {}\n", argv.join(" ")));
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            if line.starts_with('#') {
                continue;
            }
            // Counters: ":CHAIN POLICY [packets:bytes]".
            let line = match line.rfind(" [") {
                Some(i) if line.starts_with(':') => &line[..i],
                _ => line,
            };
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Link-local addresses usable at once, without 1-2 s of duplicate address
/// detection (links created after this).
fn no_dad(ns: &common::Netns) {
    ns.exec_ok(&[
        "sysctl",
        "-qw",
        "net.ipv6.conf.all.accept_dad=0",
        "net.ipv6.conf.default.accept_dad=0",
    ]);
}

/// The kernel gives each link an IPv6 link-local address, and its local
/// route, a moment after the link comes up (after duplicate address
/// detection): wait for them, so that they are in the "before" dump and are
/// not taken for something the undo left behind.
fn wait_link_local(ns: &common::Netns, devs: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let o = ns.exec_ok(&["ip", "-6", "route", "show", "table", "local"]);
        let routes = stdout(&o);
        let settled = devs.iter().all(|dev| {
            routes
                .lines()
                .any(|l| l.starts_with("local fe80:") && l.contains(&format!(" dev {dev} ")))
        });
        if settled {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no link-local route for {devs:?} after 10 s:\n{routes}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A gateway namespace like the gateway-clean fixture: LAN, uplink with
/// default routes, wg0 (a veth) with the VPN addresses, strict rp_filter.
fn gateway_ns(lab: &common::Lab) -> (common::Netns, common::Netns) {
    let ns = lab.netns();
    let far = lab.netns();
    ns.exec_ok(&[
        "sysctl",
        "-qw",
        "net.ipv4.conf.all.rp_filter=1",
        "net.ipv4.conf.default.rp_filter=1",
    ]);
    no_dad(&ns);
    veth(&ns, "eth0", &far, "lan");
    veth(&ns, "uplink", &far, "isp");
    veth(&ns, "wg0", &far, "vpn");
    ns.addr("eth0", "192.168.50.1/24");
    ns.addr("uplink", "203.0.113.2/24");
    ns.addr("uplink", "2001:db8:1::2/64");
    ns.addr("wg0", "10.8.0.2/24");
    ns.addr("wg0", "fd00::2/64");
    ns.exec_ok(&["ip", "route", "add", "default", "via", "203.0.113.1"]);
    ns.exec_ok(&[
        "ip",
        "-6",
        "route",
        "add",
        "default",
        "via",
        "2001:db8:1::1",
    ]);
    wait_link_local(&ns, &["eth0", "uplink", "wg0"]);
    (ns, far)
}

/// Probe the namespace with the real binary, plan `profile` as a script,
/// apply it, check the host now matches, undo it, and compare.
fn round_trip(ns: &common::Netns, profile_text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let profile = write(dir.path(), "p.toml", profile_text);
    let facts = dir.path().join("facts.json");
    let record = |path: &Path| {
        let o = ns.exec_ok(&[BIN, "facts", "--json"]);
        std::fs::write(path, &o.stdout).unwrap();
    };
    record(&facts);
    let o = plan_cmd(&profile, &facts, &["--script"]);
    assert_status(&o, 0);
    let script = write(dir.path(), "plan.sh", &stdout(&o));

    let before = dump(ns);
    let state = format!(
        "DSCPROUTE_SCRIPT_STATE={}",
        dir.path().join("state").display()
    );
    ns.exec_ok(&["env", &state, "sh", script.to_str().unwrap(), "apply"]);
    let applied = dump(ns);
    assert_ne!(before, applied, "apply changed nothing");
    assert!(applied.contains("DSCPROUTE-"), "{applied}");

    // Live idempotence: the plan against the applied host has nothing to do.
    let after_facts = dir.path().join("after.json");
    record(&after_facts);
    let o = plan_cmd(&profile, &after_facts, &[]);
    assert_status(&o, 0);
    assert!(
        stdout(&o).contains("Nothing to do"),
        "not in place after apply:\n{}",
        stdout(&o)
    );

    ns.exec_ok(&["env", &state, "sh", script.to_str().unwrap(), "undo"]);
    let undone = dump(ns);
    assert_eq!(
        before, undone,
        "undo did not restore the host.\nbefore:\n{before}\nafter undo:\n{undone}"
    );
}

const LAB_TOOLS: &[&str] = &[
    "iptables",
    "ip6tables",
    "iptables-save",
    "ip6tables-save",
    "sysctl",
];

#[test]
fn lab_gateway_script_apply_then_undo_restores_the_host() {
    let Some(lab) = lab(
        "lab_gateway_script_apply_then_undo_restores_the_host",
        LAB_TOOLS,
    ) else {
        return;
    };
    let (ns, _far) = gateway_ns(&lab);
    // Table by number: the script writes no file outside the namespace.
    round_trip(
        &ns,
        "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nvia6 = \"fd00::1\"\n\
         table = 100\n",
    );
}

#[test]
fn lab_both_roles_script_apply_then_undo_restores_the_host() {
    let Some(lab) = lab(
        "lab_both_roles_script_apply_then_undo_restores_the_host",
        LAB_TOOLS,
    ) else {
        return;
    };
    let (ns, _far) = gateway_ns(&lab);
    round_trip(
        &ns,
        "[marker]\ngroup = 4242\ndscp = 7\n\n[gateway]\ndscp = 7\ninterface = \"wg0\"\n\
         via = \"10.8.0.1\"\ntable = 100\n",
    );
}

#[test]
fn lab_client_script_apply_then_undo_restores_the_host() {
    let Some(lab) = lab(
        "lab_client_script_apply_then_undo_restores_the_host",
        LAB_TOOLS,
    ) else {
        return;
    };
    let ns = lab.netns();
    let far = lab.netns();
    no_dad(&ns);
    veth(&ns, "eth0", &far, "lan");
    ns.addr("eth0", "192.168.50.10/24");
    ns.exec_ok(&["ip", "route", "add", "default", "via", "192.168.50.1"]);
    wait_link_local(&ns, &["eth0"]);
    round_trip(&ns, "[marker]\ngroup = 4242\ndscp = 7\n");
}
