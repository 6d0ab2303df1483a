//! The use cases over a fake host: facts recorded in namespaces
//! (tests/fixtures/plan/), a recording FakeRunner that answers every
//! command, a scratch root and state directory, a timer kept in memory. The
//! JSON each front prints is pinned as an insta snapshot, with ids, times
//! and pids redacted; README documents exactly these objects.

use super::*;
use crate::apply::{EngineError, TxnState};
use crate::plan::Plan;
use crate::profile::Profile;
use crate::runner::{FakeRunner, Output};
use apply::{Applied, ApplyError, Progress};
use std::path::Path;

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/plan")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub(super) fn facts(name: &str) -> HostFacts {
    HostFacts::from_json(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub(super) fn profile(name: &str) -> Profile {
    Profile::parse(&read(name), name).unwrap()
}

/// A host that answers every command with success, unless told otherwise.
pub(super) fn ok_runner() -> FakeRunner {
    FakeRunner::new().otherwise(Output::ok(""))
}

const TIMER: Timer = Timer {
    arm: |_, _| Ok(4242),
    disarm: |_| {},
};

/// A fake host: `facts` is what probing it reads.
pub(super) struct Scratch {
    pub(super) dir: tempfile::TempDir,
    pub(super) facts: std::sync::Mutex<HostFacts>,
}

impl Scratch {
    pub(super) fn new(facts_file: &str) -> Scratch {
        Scratch {
            dir: tempfile::tempdir().unwrap(),
            facts: std::sync::Mutex::new(facts(facts_file)),
        }
    }

    /// The host reads these facts from now on (as after an apply).
    fn now_reads(&self, facts_file: &str) {
        *self.facts.lock().unwrap() = facts(facts_file);
    }

    pub(super) fn with<R>(&self, runner: &FakeRunner, f: impl FnOnce(&Host) -> R) -> R {
        let probe = |_| self.facts.lock().unwrap().clone();
        let host = Host {
            runner,
            root: self.dir.path().join("root"),
            state: StateDir::resolve(Some(&self.dir.path().join("state"))),
            probe: &probe,
            is_root: true,
            timer: TIMER,
            catch_signals: false,
        };
        f(&host)
    }
}

fn request<'a>(p: &'a Profile, confirm_secs: Option<u64>) -> apply::Request<'a> {
    apply::Request {
        profile: p,
        source: "client.toml",
        confirm_secs,
        previewed: None,
        vpn_may_wait: false,
    }
}

fn run_apply(
    s: &Scratch,
    runner: &FakeRunner,
    req: &apply::Request,
) -> Result<Applied, ApplyError> {
    s.with(runner, |h| apply::apply(h, req, &mut |_| {}))
}

fn report(r: &Result<Applied, ApplyError>) -> apply::Report {
    apply::Report::of(r).expect("a report")
}

/// Replace the transaction id wherever it appears in a string.
fn redact_id(
    id: String,
) -> impl Fn(insta::internals::Content, insta::internals::ContentPath) -> String {
    move |value, _| value.as_str().unwrap_or_default().replace(&id, "[id]")
}

#[test]
fn apply_changes_the_host_and_reports_it() {
    let s = Scratch::new("client.json");
    let runner = ok_runner();
    let p = profile("client.toml");
    let mut seen = Vec::new();
    let r = s.with(&runner, |h| {
        apply::apply(h, &request(&p, None), &mut |e| seen.push(e))
    });
    let Ok(Applied::Changed(j)) = &r else {
        panic!("not applied: {r:?}")
    };
    assert_eq!(j.state, TxnState::Applied);
    // Two batches, one per family, fed to iptables-restore.
    let restores: Vec<String> = runner.calls().iter().map(|c| c[0].clone()).collect();
    assert_eq!(restores, ["iptables-restore", "ip6tables-restore"]);
    let started = seen
        .iter()
        .filter(|e| matches!(e, Progress::Step(crate::apply::Event::Started { .. })))
        .count();
    assert_eq!(started, 8);
    insta::assert_json_snapshot!("apply_changed", report(&r), {
        ".transaction" => "[id]",
    });
}

#[test]
fn apply_with_confirm_is_pending_with_its_deadline() {
    let s = Scratch::new("client.json");
    let runner = ok_runner();
    let p = profile("client.toml");
    let r = run_apply(&s, &runner, &request(&p, Some(120)));
    let rep = report(&r);
    let Ok(Applied::Changed(j)) = &r else {
        panic!("not applied")
    };
    assert_eq!(j.timer_pid, Some(4242));
    let deadline = j.confirm_deadline_unix.expect("a deadline");
    assert!(deadline >= j.created_unix + 120, "{deadline}");
    assert_eq!(rep.confirm_deadline_unix, Some(deadline));
    insta::assert_json_snapshot!("apply_pending_confirm", rep, {
        ".transaction" => "[id]",
        ".confirm_deadline_unix" => "[unix time]",
    });

    // Not now: another apply while this one awaits confirmation prints no
    // JSON and exits 4.
    let again = run_apply(&s, &runner, &request(&p, None));
    match &again {
        Err(e @ ApplyError::Engine(EngineError::Pending { .. })) => {
            assert_eq!(e.kind(), Kind::NotNow)
        }
        other => panic!("not refused as pending: {other:?}"),
    }
    assert_eq!(apply::Report::of(&again), None);

    // Confirm keeps it; a second confirm finds nothing pending.
    let kept = s.with(&runner, confirm::confirm).unwrap();
    assert_eq!(kept.state, TxnState::Applied);
    let e = s.with(&runner, confirm::confirm).unwrap_err();
    assert_eq!(e.kind(), Kind::NotNow);
    assert_eq!(
        e.to_string(),
        format!(
            "nothing awaits confirmation: the last transaction, {}, is applied",
            kept.id
        )
    );
}

#[test]
fn apply_with_nothing_to_do_reports_ok() {
    let s = Scratch::new("client-applied.json");
    let runner = ok_runner();
    let p = profile("client.toml");
    let r = run_apply(&s, &runner, &request(&p, None));
    assert!(matches!(r, Ok(Applied::NothingToDo)), "{r:?}");
    assert!(runner.calls().is_empty());
    insta::assert_json_snapshot!("apply_nothing_to_do", report(&r));
}

#[test]
fn apply_refused_by_the_host_lists_why() {
    let s = Scratch::new("gateway-conflicts.json");
    let runner = ok_runner();
    let p = profile("gateway.toml");
    let r = run_apply(&s, &runner, &request(&p, None));
    let e = r.as_ref().unwrap_err();
    assert_eq!(e.kind(), Kind::Refused);
    assert!(runner.calls().is_empty(), "nothing ran");
    insta::assert_json_snapshot!("apply_refused", report(&r));
}

#[test]
fn a_failed_step_is_undone_and_reported_with_its_command() {
    let s = Scratch::new("client.json");
    let refused = Output::failed(1, "ip6tables-restore: line 2 failed: injected failure\n");
    let runner = ok_runner().on(&["ip6tables-restore", "-w", "--noflush"], refused);
    let p = profile("client.toml");
    let r = run_apply(&s, &runner, &request(&p, None));
    let e = r.as_ref().unwrap_err();
    assert_eq!(e.kind(), Kind::Failed);
    assert!(
        e.to_string()
            .ends_with("the completed steps were undone: the host is as it was"),
        "{e}"
    );
    insta::assert_json_snapshot!("apply_failed", report(&r), {
        ".transaction" => "[id]",
    });
}

#[test]
fn apply_refuses_without_root_or_when_the_host_changed_since_the_preview() {
    let s = Scratch::new("client.json");
    let runner = ok_runner();
    let p = profile("client.toml");
    let r = s.with(&runner, |h| {
        let h = Host {
            is_root: false,
            ..h.clone()
        };
        apply::apply(&h, &request(&p, None), &mut |_| {})
    });
    assert!(matches!(r, Err(ApplyError::NeedsRoot)), "{r:?}");
    assert_eq!(r.unwrap_err().kind(), Kind::NotNow);

    let previewed = vec!["iptables -w -t mangle -N DSCPROUTE-MARK".to_string()];
    let req = apply::Request {
        previewed: Some(&previewed),
        vpn_may_wait: false,
        ..request(&p, None)
    };
    let r = run_apply(&s, &runner, &req);
    assert!(matches!(r, Err(ApplyError::ChangedSincePreview)), "{r:?}");
    assert!(runner.calls().is_empty(), "nothing ran");
    assert!(
        Journal::load(&s.with(&runner, |h| h.state.clone()))
            .unwrap()
            .is_none()
    );
}

#[test]
fn rollback_undoes_the_last_transaction_and_reports_it() {
    let s = Scratch::new("client.json");
    let runner = ok_runner();
    let p = profile("client.toml");
    let Ok(Applied::Changed(j)) = run_apply(&s, &runner, &request(&p, None)) else {
        panic!("not applied")
    };
    let ready = s
        .with(&runner, |h| {
            rollback::prepare(h, rollback::Request::default())
        })
        .unwrap();
    let Some(rollback::Target::Journal { id, scope, undo }) = ready.target() else {
        panic!("no journal to roll back")
    };
    assert_eq!((id, scope), (j.id.clone(), crate::apply::Scope::Setup));
    // One line per change, newest first: the first step's undo comes last.
    assert_eq!(undo.len(), 8, "{undo:?}");
    assert_eq!(undo.last(), Some(&j.steps[0].step.undo.display()));
    let done = s.with(&runner, |h| ready.run(h, &mut |_| {})).unwrap();
    assert!(done.ok() && done.changed());
    insta::assert_json_snapshot!("rollback_rolled_back", rollback::Report::of(&done), {
        ".transaction" => "[id]",
        ".message" => insta::dynamic_redaction(redact_id(j.id.clone())),
    });

    let again = s
        .with(&runner, |h| {
            rollback::rollback(h, rollback::Request::default(), &mut |_| {})
        })
        .unwrap();
    assert!(again.ok() && !again.changed());
    insta::assert_json_snapshot!("rollback_nothing", rollback::Report::of(&again), {
        ".message" => insta::dynamic_redaction(redact_id(j.id)),
    });
}

#[test]
fn rollback_needs_root_and_a_readable_journal() {
    let s = Scratch::new("client.json");
    let runner = ok_runner();
    let e = s
        .with(&runner, |h| {
            let h = Host {
                is_root: false,
                ..h.clone()
            };
            rollback::prepare(&h, rollback::Request::default()).err()
        })
        .unwrap();
    assert_eq!(e.kind(), Kind::NotNow);
    let state = s.with(&runner, |h| h.state.clone());
    state.ensure().unwrap();
    std::fs::write(state.current(), "{\"version\": 1, \"id\": \"17").unwrap();
    let e = s
        .with(&runner, |h| {
            rollback::prepare(h, rollback::Request::default()).err()
        })
        .unwrap();
    assert_eq!(e.kind(), Kind::Failed);
    assert!(
        e.to_string().ends_with(
            "run `dscproute rollback --all` to remove everything of dscproute's by its tags \
             (the journal is then kept aside)"
        ),
        "{e}"
    );
    assert!(
        std::error::Error::source(&e).is_some(),
        "the parse error is kept"
    );
}

/// `iptables-save -c` of the applied client (IPv4), with counters.
const SAVE_C: &str = "*mangle\n:OUTPUT ACCEPT [40:4000]\n:DSCPROUTE-MARK - [0:0]\n\
    [12:1200] -A OUTPUT -m comment --comment dscproute -j DSCPROUTE-MARK\n\
    [3:180] -A DSCPROUTE-MARK -m owner --gid-owner 1001 -j CONNMARK --set-xmark 0x1/0xff\n\
    [12:1200] -A DSCPROUTE-MARK -m connmark --mark 0x1/0xff -j DSCP --set-dscp 0x07\n\
    COMMIT\n";

#[test]
fn status_reports_the_kept_transaction_and_its_counters() {
    let s = Scratch::new("client.json");
    let p = profile("client.toml");
    let Ok(Applied::Changed(_)) = run_apply(&s, &ok_runner(), &request(&p, None)) else {
        panic!("not applied")
    };
    s.now_reads("client-applied.json");
    let runner = ok_runner().on(&["iptables-save", "-c"], Output::ok(SAVE_C));
    let st = s.with(&runner, status::status);
    assert!(!st.needs_action(), "{st:?}");
    insta::assert_json_snapshot!("status_applied", st, {
        ".transaction.id" => "[id]",
        ".transaction.created_unix" => "[unix time]",
    });
}

#[test]
fn doctor_reports_every_check() {
    // Not applied here: the preflight checks and `applied`, no wire sample.
    let s = Scratch::new("gateway-clean.json");
    let runner = ok_runner();
    let p = profile("gateway.toml");
    let req = doctor::Request {
        profile: &p,
        source: "gateway.toml",
    };
    let mut watched = false;
    let report = s.with(&runner, |h| {
        let h = Host {
            root: "/nonexistent/dscproute-test-root".into(),
            ..h.clone()
        };
        doctor::doctor(&h, &req, &mut |_| watched = true)
    });
    assert!(!watched);
    assert_eq!(report.applied, crate::doctor::Applied::No);
    insta::assert_json_snapshot!("doctor_not_applied", report);
}

fn plan_of(profile: &Profile, facts_file: &str) -> Result<Plan, crate::plan::PlanError> {
    let s = Scratch::new(facts_file);
    let recorded = Box::new(facts(facts_file));
    s.with(&ok_runner(), |h| {
        plan::plan(h, profile, plan::Facts::Recorded(recorded))
    })
}

#[test]
fn plan_json_is_the_plan_or_a_refusal() {
    let p = plan_of(&profile("client.toml"), "client.json").unwrap();
    insta::assert_json_snapshot!("plan_client", p);
    // Kubernetes holds the only value in this mask: no plan to show.
    let p = Profile::parse(
        "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nmask = \"0x4000\"\n",
        "p.toml",
    )
    .unwrap();
    let e = plan_of(&p, "gateway-conflicts.json").unwrap_err();
    insta::assert_json_snapshot!("plan_refused", plan::Refusal::of(&e));
}

mod exec_tests {
    use super::*;
    use crate::ops::exec::{Become, Invoker, Launch, Request, prepare};

    /// client-applied.json with the group rule swapped for `tag`.
    fn applied_with(tag: &str) -> HostFacts {
        let mut f = facts("client-applied.json");
        for save in [&mut f.iptables_save, &mut f.ip6tables_save] {
            *save = save
                .take()
                .map(|s| s.replace("-m owner --gid-owner 1001", tag));
        }
        f.cgroup2 = Some("/sys/fs/cgroup".into());
        f
    }

    fn launch(
        p: &str,
        f: HostFacts,
        runner: &FakeRunner,
        invoker: Option<Invoker>,
    ) -> Result<Launch, exec::ExecError> {
        let s = Scratch::new("client-applied.json");
        *s.facts.lock().unwrap() = f;
        for dir in [
            "vpn.slice",
            "other.slice",
            "system.slice/app.service",
            "dl/x",
        ] {
            let path = s.dir.path().join("root/sys/fs/cgroup").join(dir);
            std::fs::create_dir_all(&path).unwrap();
            // The rule as apply added it: with the cgroup's id in its comment.
            let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
            let mut guard = s.facts.lock().unwrap();
            let f = &mut *guard;
            for save in [&mut f.iptables_save, &mut f.ip6tables_save] {
                *save = save.take().map(|t| {
                    t.replace(
                        &format!("--path \"{dir}\" -j"),
                        &format!("--path \"{dir}\" -m comment --comment dscproute-cgroup-{ino} -j"),
                    )
                });
            }
        }
        let profile = Profile::parse(p, "p.toml").unwrap();
        let cmd = vec!["curl".to_string(), "-s".to_string()];
        let passwd = |uid: u32| (uid == 1001).then(|| ("alice".to_string(), 100));
        s.with(runner, |host| {
            prepare(
                host,
                &Request {
                    profile: &profile,
                    path: "p.toml",
                    command: &cmd,
                    invoker,
                    passwd: &passwd,
                },
            )
        })
    }

    const SLICE: &str = "[marker]\nunit = \"vpn.slice\"\ndscp = 7\n";
    const SHOW: &[&str] = &["systemctl", "show", "-p", "ControlGroup", "--value"];

    fn systemctl(unit: &str, answer: &str) -> FakeRunner {
        let mut argv = SHOW.to_vec();
        argv.push(unit);
        FakeRunner::new().on(&argv, Output::ok(answer))
    }

    /// A slice marker: the command runs in a transient scope of the slice,
    /// as the sudo user; the unit's cgroup comes from (fake) systemctl.
    #[test]
    fn a_slice_runs_the_command_through_systemd_run_as_the_invoker() {
        let f = applied_with("-m cgroup --path \"vpn.slice\"");
        let runner = systemctl("vpn.slice", "/vpn.slice\n");
        let invoker = Invoker::from_sudo(Some("1000"), Some("1000"), Some("bob"));
        let l = launch(SLICE, f, &runner, invoker).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            l.argv,
            [
                "systemd-run",
                "--scope",
                "--slice=vpn.slice",
                "--quiet",
                "--uid=1000",
                "--gid=1000",
                "--",
                "curl",
                "-s"
            ]
        );
        assert_eq!((l.become_, l.join_cgroup), (Become::Stay, None));
        assert!(
            l.says.contains("p.toml") && l.says.contains("unit vpn.slice"),
            "{}",
            l.says
        );
    }

    /// Not applied (the rule matches another cgroup), a stopped slice, a
    /// service instead of a slice: one line each, and the right kind.
    #[test]
    fn exec_refuses_what_it_cannot_mark() {
        let other = applied_with("-m cgroup --path \"other.slice\"");
        let e = launch(SLICE, other, &systemctl("vpn.slice", "/vpn.slice\n"), None).unwrap_err();
        assert_eq!(e.kind, Kind::NotNow);
        assert!(
            e.message.contains("not applied") && !e.message.contains('\n'),
            "{e}"
        );
        let stopped = applied_with("-m cgroup --path \"vpn.slice\"");
        let e = launch(SLICE, stopped, &systemctl("vpn.slice", "\n"), None).unwrap_err();
        assert_eq!(e.kind, Kind::NotNow);
        assert!(e.message.contains("is not running"), "{e}");
        let svc = applied_with("-m cgroup --path \"system.slice/app.service\"");
        let e = launch(
            "[marker]\nunit = \"app.service\"\ndscp = 7\n",
            svc,
            &systemctl("app.service", "/system.slice/app.service\n"),
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind, Kind::Refused);
        assert!(e.message.contains("is not one: mark a slice"), "{e}");
    }

    /// The agent's check re-resolves a unit on every run: the same path with
    /// another cgroup id (the unit restarted) is a missing step to repair.
    #[test]
    fn a_restarted_unit_is_missing_for_the_agent() {
        let s = Scratch::new("client-applied.json");
        let dir = s
            .dir
            .path()
            .join("root/sys/fs/cgroup/system.slice/app.service");
        std::fs::create_dir_all(&dir).unwrap();
        let ino = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&dir).unwrap());
        let tag = |id: u64| {
            format!(
                "-m cgroup --path \"system.slice/app.service\" -m comment --comment dscproute-cgroup-{id}"
            )
        };
        let profile = Profile::parse("[marker]\nunit = \"app.service\"\ndscp = 7\n", "u").unwrap();
        let runner = FakeRunner::new().on(
            &[
                "systemctl",
                "show",
                "-p",
                "ControlGroup",
                "--value",
                "app.service",
            ],
            Output::ok("/system.slice/app.service\n"),
        );
        for (id, whole) in [(ino, true), (ino + 1, false)] {
            let mut f = applied_with(&tag(id));
            f.cgroup2 = Some("/sys/fs/cgroup".into());
            *s.facts.lock().unwrap() = f;
            let found = s
                .with(&runner, |host| converge::check(host, &profile))
                .unwrap();
            assert_eq!(found == converge::Found::Whole, whole, "id {id}: {found:?}");
        }
    }

    #[test]
    fn exec_needs_root() {
        let s = Scratch::new("client-applied.json");
        let profile = profile("client.toml");
        let cmd = vec!["true".to_string()];
        let runner = FakeRunner::new();
        let e = s
            .with(&runner, |host| {
                let host = Host {
                    is_root: false,
                    ..host.clone()
                };
                exec::prepare(
                    &host,
                    &Request {
                        profile: &profile,
                        path: "client.toml",
                        command: &cmd,
                        invoker: None,
                        passwd: &|_| None,
                    },
                )
            })
            .unwrap_err();
        assert_eq!(e.kind, Kind::NotNow);
        assert!(e.message.contains("sudo dscproute exec"), "{e}");
        assert!(runner.calls().is_empty(), "nothing is probed without root");
    }

    /// Group: root keeps its identity with the marked gid, or becomes the
    /// sudo user with it; user: that user with its own groups; cgroup: join
    /// it first.
    #[test]
    fn identities_and_cgroups() {
        let group = "[marker]\ngroup = \"torrent\"\ndscp = 7\n";
        let l = launch(
            group,
            facts("client-applied.json"),
            &FakeRunner::new(),
            None,
        )
        .unwrap();
        assert_eq!(l.become_, Become::Gid(1001));
        assert_eq!(l.argv, ["curl", "-s"]);
        let inv = Invoker::from_sudo(Some("1000"), Some("1000"), Some("bob"));
        let l = launch(group, facts("client-applied.json"), &FakeRunner::new(), inv).unwrap();
        assert_eq!(
            l.become_,
            Become::User {
                uid: 1000,
                gid: 1001,
                name: Some("bob".into())
            }
        );
        let user = applied_with("-m owner --uid-owner 1001");
        let l = launch(
            "[marker]\nuser = 1001\ndscp = 7\n",
            user,
            &FakeRunner::new(),
            None,
        )
        .unwrap();
        assert_eq!(
            l.become_,
            Become::User {
                uid: 1001,
                gid: 100,
                name: Some("alice".into())
            }
        );
        let nobody = applied_with("-m owner --uid-owner 1002");
        let e = launch(
            "[marker]\nuser = 1002\ndscp = 7\n",
            nobody,
            &FakeRunner::new(),
            None,
        )
        .unwrap_err();
        assert!(e.message.contains("no passwd entry"), "{e}");
        let mut cg = applied_with("-m cgroup --path \"dl/x\"");
        cg.cgroups.insert("dl/x".into(), Some(7));
        let l = launch(
            "[marker]\ncgroup = \"dl/x\"\ndscp = 7\n",
            cg,
            &FakeRunner::new(),
            None,
        )
        .unwrap();
        assert!(
            l.join_cgroup
                .as_ref()
                .is_some_and(|p| p.ends_with("sys/fs/cgroup/dl/x/cgroup.procs")),
            "{:?}",
            l.join_cgroup
        );
    }
}
