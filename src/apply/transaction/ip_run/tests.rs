use super::super::*;
use crate::apply::state_dir::StateDir;
use crate::backend::Effect;
use crate::plan::{Plan, Resolved, Role, Step, StepState, Summary};
use crate::runner::{FakeRunner, Output, RunError};
use StepStatus::*;
use std::sync::Mutex;

const V4_ROUTE: &str = "ip -4 route add default via 10.8.0.1 dev wg0 table 100 proto 213";
const V6_ROUTE: &str = "ip -6 route add default via fd00::1 dev wg0 table 100 proto 213";
const V4_MAIN: &str =
    "ip -4 rule add pref 9999 fwmark 0x1/0xff lookup main suppress_prefixlength 0 proto 213";
const V4_LOOKUP: &str = "ip -4 rule add pref 10000 fwmark 0x1/0xff lookup 100 proto 213";
const V6_UNREACH: &str = "ip -6 rule add pref 10001 fwmark 0x1/0xff unreachable proto 213";
const NAT: &str = "iptables -w -t nat -N DSCPROUTE-NAT";

const APPLY4: [&str; 4] = ["ip", "-4", "-batch", "-"];
const APPLY6: [&str; 4] = ["ip", "-6", "-batch", "-"];
const UNDO4: [&str; 5] = ["ip", "-4", "-force", "-batch", "-"];
const UNDO6: [&str; 5] = ["ip", "-6", "-force", "-batch", "-"];

fn op(cmd: &str) -> Op {
    let argv = cmd.split(' ').map(str::to_string).collect();
    Op::parse(&Effect::run(argv)).unwrap_or_else(|e| panic!("{cmd}: {e}"))
}

/// The undo of an add: the same with del (the -N of the chain: -X).
fn undo_of(cmd: &str) -> String {
    cmd.replacen(" add ", " del ", 1)
        .replacen(" -N ", " -X ", 1)
}

fn argv(cmd: &str) -> Vec<&str> {
    cmd.split(' ').collect()
}

/// Routes and rules of both families, interleaved as the planner orders
/// them, then a step of another kind.
fn routing() -> Plan {
    let steps = [V4_ROUTE, V6_ROUTE, V4_MAIN, V4_LOOKUP, V6_UNREACH, NAT]
        .iter()
        .map(|c| Step {
            role: Role::Gateway,
            state: StepState::Add,
            apply: op(c),
            undo: op(&undo_of(c)),
            reason: String::new(),
            change: None,
        })
        .collect();
    Plan {
        roles: vec![Role::Gateway],
        resolved: Resolved::default(),
        steps,
        errors: vec![],
        warnings: vec![],
        notes: vec![],
        summary: Summary::default(),
    }
}

fn lines(cmds: &[&str]) -> String {
    cmds.iter()
        // Without `ip -4 ` / `ip -6 `.
        .map(|c| format!("{}\n", &c[6..]))
        .collect()
}

/// A fake that also notes, at every `ip -batch`, the step statuses the
/// journal on disk holds at that moment.
struct Watching {
    fake: FakeRunner,
    state: StateDir,
    on_disk: Mutex<Vec<Vec<StepStatus>>>,
}

impl Runner for Watching {
    fn run(&self, argv: &[String]) -> Result<crate::runner::Output, RunError> {
        self.fake.run(argv)
    }

    fn run_with_stdin(&self, argv: &[String], stdin: &str) -> Result<Output, RunError> {
        if argv[0] == "ip" {
            let j = Journal::load(&self.state).unwrap().unwrap();
            let st = j.steps.iter().map(|s| s.status).collect();
            self.on_disk.lock().unwrap().push(st);
        }
        self.fake.run_with_stdin(argv, stdin)
    }
}

fn watching(fake: FakeRunner, dir: &tempfile::TempDir) -> Watching {
    Watching {
        fake,
        state: StateDir::resolve(Some(&dir.path().join("state"))),
        on_disk: Mutex::new(Vec::new()),
    }
}

fn engine<'a>(r: &'a Watching, dir: &tempfile::TempDir) -> Engine<'a> {
    Engine {
        runner: r,
        root: dir.path().join("root"),
        state: StateDir::resolve(Some(&dir.path().join("state"))),
    }
}

fn calls(r: &Watching) -> Vec<String> {
    r.fake.calls().iter().map(|c| c.join(" ")).collect()
}

fn statuses(j: &Journal) -> Vec<StepStatus> {
    j.steps.iter().map(|s| s.status).collect()
}

#[test]
fn rules_and_routes_run_as_one_ip_batch_per_family_and_undo_likewise() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRunner::new()
        .on(&APPLY4, Output::ok(""))
        .on(&APPLY6, Output::ok(""))
        .on(&UNDO4, Output::ok(""))
        .on(&UNDO6, Output::ok(""))
        .on(&argv(NAT), Output::ok(""))
        .on(&argv(&undo_of(NAT)), Output::ok(""));
    let r = watching(fake, &dir);
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    let mut started = Vec::new();
    let out = e
        .apply(&lock, &routing(), "p.toml", None, &mut |ev| {
            if let Event::Started { index, .. } = ev {
                started.push(index)
            }
        })
        .unwrap();
    let ApplyOutcome::Applied(j) = out else {
        panic!("not applied")
    };
    assert!(j.steps.iter().all(|s| s.status == Done));
    assert_eq!(started, [0, 1, 2, 3, 4, 5], "progress in plan order");
    assert_eq!(
        calls(&r),
        ["ip -4 -batch -", "ip -6 -batch -", NAT],
        "one process per family, then the other kind"
    );
    let stdins: Vec<String> = r.fake.stdins().into_iter().map(|(_, s)| s).collect();
    assert_eq!(
        stdins,
        [
            lines(&[V4_ROUTE, V4_MAIN, V4_LOOKUP]),
            lines(&[V6_ROUTE, V6_UNREACH])
        ]
    );
    // Every step of the run was on record as running before ip started.
    let on_disk = r.on_disk.lock().unwrap().clone();
    assert_eq!(
        on_disk[0],
        [Running, Running, Running, Running, Running, Pending]
    );
    assert_eq!(on_disk[1], [Done, Running, Done, Done, Running, Pending]);

    let out = e.rollback(&lock, Scope::Setup, &mut |_| {}).unwrap();
    let RollbackOutcome::RolledBack(j) = out else {
        panic!("not rolled back")
    };
    assert!(j.steps.iter().all(|s| s.status == Undone));
    assert_eq!(
        calls(&r)[3..],
        [
            undo_of(NAT).as_str(),
            "ip -6 -force -batch -",
            "ip -4 -force -batch -"
        ]
    );
    let stdins: Vec<String> = r.fake.stdins().into_iter().map(|(_, s)| s).collect();
    let del = |c: &[&str]| {
        let v: Vec<String> = c.iter().map(|c| undo_of(c)).collect();
        lines(&v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    assert_eq!(
        stdins[2..],
        [
            del(&[V6_UNREACH, V6_ROUTE]),
            del(&[V4_LOOKUP, V4_MAIN, V4_ROUTE])
        ],
        "newest first"
    );
}

#[test]
fn a_batch_failing_at_a_line_keeps_the_lines_before_it_and_undoes_them() {
    let dir = tempfile::tempdir().unwrap();
    let undo_route = undo_of(V4_ROUTE);
    let fake = FakeRunner::new()
        .on(
            &APPLY4,
            Output::failed(1, "RTNETLINK answers: File exists\nCommand failed -:2\n"),
        )
        .on(&argv(&undo_route), Output::ok(""));
    let r = watching(fake, &dir);
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    let mut failed = Vec::new();
    let out = e
        .apply(&lock, &routing(), "p.toml", None, &mut |ev| {
            if let Event::Failed { index, .. } = ev {
                failed.push(index)
            }
        })
        .unwrap();
    let ApplyOutcome::Failed { journal, failure } = out else {
        panic!("not failed")
    };
    // Line 2 of the IPv4 batch is plan step 3.
    assert_eq!(failure.command, V4_MAIN);
    assert!(
        failure.stderr.contains("File exists")
            && failure.stderr.contains("line 2 of `ip -4 -batch -`")
            && !failure.stderr.contains("Command failed"),
        "{}",
        failure.stderr
    );
    // The line before it took effect and was undone; the rest never ran.
    assert_eq!(
        statuses(&journal),
        [Undone, Failed, Failed, Failed, Failed, Pending]
    );
    assert!(
        journal.steps[3]
            .error
            .as_deref()
            .unwrap()
            .contains("not run")
    );
    assert_eq!(failed, [3, 1, 4, 2], "the failed line reports last");
    assert_eq!(calls(&r), ["ip -4 -batch -", undo_route.as_str()]);
    let rb = e.rollback(&lock, Scope::Setup, &mut |_| {}).unwrap();
    assert!(matches!(
        rb,
        RollbackOutcome::Nothing(NothingToRollBack::FailedAndUndone(_))
    ));
}

#[test]
fn a_batch_that_names_no_line_leaves_its_steps_to_a_tolerant_undo() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeRunner::new()
        .on(&APPLY4, Output::failed(255, "Cannot open netlink socket"))
        .on(
            &UNDO4,
            Output::failed(
                1,
                "RTNETLINK answers: No such file or directory\nCommand failed -:1\n\
                 RTNETLINK answers: No such file or directory\nCommand failed -:2\n\
                 RTNETLINK answers: No such file or directory\nCommand failed -:3\n",
            ),
        )
        .otherwise(Output::failed(
            2,
            "RTNETLINK answers: No such file or directory",
        ));
    let r = watching(fake, &dir);
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    let ApplyOutcome::Failed { journal, failure } = e
        .apply(&lock, &routing(), "p.toml", None, &mut |_| {})
        .unwrap()
    else {
        panic!("not failed")
    };
    assert_eq!(failure.command, "ip -4 -batch -");
    assert!(
        failure.stderr.contains("named no line"),
        "{}",
        failure.stderr
    );
    // Steps 1, 3, 4 may have run: undone (tolerated as Running); the IPv6
    // batch never started.
    assert_eq!(
        statuses(&journal),
        [Undone, Failed, Undone, Undone, Failed, Pending]
    );
    assert_eq!(calls(&r)[..2], ["ip -4 -batch -", "ip -4 -force -batch -"]);
}

#[test]
fn an_undo_batch_retries_its_failed_lines_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let unreach = undo_of(V6_UNREACH);
    let fake = FakeRunner::new()
        .on(
            &UNDO6,
            Output::failed(
                1,
                "RTNETLINK answers: Permission denied\nCommand failed -:1\n",
            ),
        )
        .on(
            &argv(&unreach),
            Output::failed(2, "RTNETLINK answers: Permission denied"),
        )
        .on(&UNDO4, Output::ok(""));
    let r = watching(fake, &dir);
    let e = engine(&r, &dir);
    let mut j = Journal::new("p.toml", routing().steps);
    for s in &mut j.steps[..5] {
        s.status = Done;
    }
    j.state = TxnState::Applied;
    e.state.ensure().unwrap();
    j.save(&e.state).unwrap();
    let lock = e.lock().unwrap();
    let mut undoing = Vec::new();
    let RollbackOutcome::Partial(j) = e
        .rollback(&lock, Scope::Setup, &mut |ev| {
            if let Event::Undoing { index, .. } = ev {
                undoing.push(index)
            }
        })
        .unwrap()
    else {
        panic!("expected a partial rollback")
    };
    assert_eq!(undoing, [4, 3, 2, 1, 0], "each step announced once");
    // Line 2 of the IPv6 batch (the route) went; line 1 failed again alone.
    assert_eq!(
        statuses(&j),
        [Undone, Undone, Undone, Undone, UndoFailed, Pending]
    );
    assert!(
        j.steps[4]
            .error
            .as_deref()
            .unwrap()
            .contains("Permission denied")
    );
    assert_eq!(
        calls(&r),
        [
            "ip -6 -force -batch -",
            unreach.as_str(),
            "ip -4 -force -batch -"
        ]
    );
}
