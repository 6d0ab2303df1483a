use super::*;
use crate::backend::{Effect, NfCmd, Op, Table};
use crate::plan::{Plan, Resolved, Role, Step, StepState, Summary};
use crate::runner::{FakeRunner, Output};

/// Short names for steps, so the tests read as before: the engine only runs
/// commands dscproute plans, so each stands for a real one. `b` is a group,
/// so that `a`, `b`, `c` run one by one (consecutive rules would batch).
const LABELS: [(&str, &str); 8] = [
    (
        "a 1",
        "ip -4 rule add pref 9999 fwmark 0x1/0xff lookup main suppress_prefixlength 0 proto 213",
    ),
    (
        "a -1",
        "ip -4 rule del pref 9999 fwmark 0x1/0xff lookup main suppress_prefixlength 0 proto 213",
    ),
    ("b 2", "groupadd dscpb"),
    ("b -2", "groupdel dscpb"),
    (
        "c 3",
        "ip -4 rule add pref 10001 fwmark 0x1/0xff unreachable proto 213",
    ),
    (
        "c -3",
        "ip -4 rule del pref 10001 fwmark 0x1/0xff unreachable proto 213",
    ),
    (
        "ip rule add 1",
        "ip -6 rule add pref 10001 fwmark 0x1/0xff unreachable proto 213",
    ),
    (
        "ip rule del 1",
        "ip -6 rule del pref 10001 fwmark 0x1/0xff unreachable proto 213",
    ),
];

/// The command a label stands for (other text as it is).
fn full(s: &str) -> &str {
    LABELS.iter().find(|(l, _)| *l == s).map_or(s, |(_, c)| c)
}

fn argv(s: &str) -> Vec<String> {
    full(s).split(' ').map(str::to_string).collect()
}

/// The fake answers `out` to the command `label` stands for.
fn on(r: FakeRunner, label: &str, out: Output) -> FakeRunner {
    r.on(&full(label).split(' ').collect::<Vec<_>>(), out)
}

/// The operation a command (or its label) spells.
fn op(s: &str) -> Op {
    Op::parse(&Effect::run(argv(s))).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn step(apply: &str, undo: &str) -> Step {
    Step {
        role: Role::Gateway,
        state: StepState::Add,
        apply: op(apply),
        undo: op(undo),
        reason: String::new(),
        change: None,
    }
}

fn plan(steps: Vec<Step>) -> Plan {
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

fn three() -> Plan {
    plan(vec![
        step("a 1", "a -1"),
        step("b 2", "b -2"),
        step("c 3", "c -3"),
    ])
}

fn engine<'a>(runner: &'a FakeRunner, dir: &tempfile::TempDir) -> Engine<'a> {
    Engine {
        runner,
        root: dir.path().join("root"),
        state: StateDir::resolve(Some(&dir.path().join("state"))),
    }
}

fn ok(runner: FakeRunner, cmds: &[&str]) -> FakeRunner {
    cmds.iter().fold(runner, |r, c| on(r, c, Output::ok("")))
}

/// The calls, each as its label when it has one.
fn calls(r: &FakeRunner) -> Vec<String> {
    r.calls()
        .iter()
        .map(|c| {
            let c = c.join(" ");
            LABELS
                .iter()
                .find(|(_, full)| *full == c)
                .map_or(c, |(l, _)| l.to_string())
        })
        .collect()
}

#[test]
fn applies_in_order_and_journals_done() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(FakeRunner::new(), &["a 1", "b 2", "c 3"]);
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    let mut seen = Vec::new();
    let out = e
        .apply(&lock, &three(), "p.toml", None, &mut |ev| seen.push(ev))
        .unwrap();
    let ApplyOutcome::Applied(j) = out else {
        panic!("not applied")
    };
    assert_eq!(calls(&r), ["a 1", "b 2", "c 3"]);
    assert_eq!(j.state, TxnState::Applied);
    assert!(j.steps.iter().all(|s| s.status == StepStatus::Done));
    assert_eq!(
        Journal::load(&e.state).unwrap().unwrap(),
        j,
        "journal on disk matches"
    );
    assert_eq!(
        seen.iter()
            .filter(|e| matches!(e, Event::Started { .. }))
            .count(),
        3
    );
}

#[test]
fn failure_undoes_completed_steps_in_reverse() {
    let dir = tempfile::tempdir().unwrap();
    let r = on(
        ok(FakeRunner::new(), &["a 1", "b 2", "b -2", "a -1"]),
        "c 3",
        Output::failed(2, "RTNETLINK answers: File exists"),
    );
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    let out = e
        .apply(&lock, &three(), "p.toml", None, &mut |_| {})
        .unwrap();
    let ApplyOutcome::Failed { journal, failure } = out else {
        panic!("not failed")
    };
    assert_eq!(failure.command, full("c 3"));
    assert!(failure.stderr.contains("File exists"));
    assert_eq!(calls(&r), ["a 1", "b 2", "c 3", "b -2", "a -1"]);
    assert_eq!(journal.state, TxnState::Failed);
    let st: Vec<_> = journal.steps.iter().map(|s| s.status).collect();
    assert_eq!(
        st,
        [StepStatus::Undone, StepStatus::Undone, StepStatus::Failed]
    );
    // Nothing left to roll back.
    let out = e.rollback(&lock, Scope::Setup, &mut |_| {}).unwrap();
    assert!(matches!(
        out,
        RollbackOutcome::Nothing(NothingToRollBack::FailedAndUndone(_))
    ));
}

#[test]
fn rollback_undoes_once_then_is_a_noop() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(
        FakeRunner::new(),
        &["a 1", "b 2", "c 3", "c -3", "b -2", "a -1"],
    );
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    e.apply(&lock, &three(), "p.toml", None, &mut |_| {})
        .unwrap();
    let out = e.rollback(&lock, Scope::Setup, &mut |_| {}).unwrap();
    assert!(matches!(out, RollbackOutcome::RolledBack(_)));
    assert_eq!(calls(&r)[3..], ["c -3", "b -2", "a -1"]);
    let out = e.rollback(&lock, Scope::Setup, &mut |_| {}).unwrap();
    assert!(matches!(
        out,
        RollbackOutcome::Nothing(NothingToRollBack::AlreadyRolledBack(_))
    ));
    assert_eq!(r.calls().len(), 6, "second rollback ran nothing");
}

#[test]
fn interrupted_transaction_blocks_apply_and_rolls_back_running_steps() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(FakeRunner::new(), &["b -2", "a -1"]);
    let e = engine(&r, &dir);
    // As if the process died during step 2: step 1 done, step 2 running.
    let mut j = Journal::new("p.toml", three().steps);
    j.steps[0].status = StepStatus::Done;
    j.steps[1].status = StepStatus::Running;
    e.state.ensure().unwrap();
    j.save(&e.state).unwrap();
    assert!(matches!(e.check_clear(), Err(EngineError::Interrupted(_))));
    let lock = e.lock().unwrap();
    let out = e.rollback(&lock, Scope::Setup, &mut |_| {}).unwrap();
    assert!(matches!(out, RollbackOutcome::RolledBack(_)));
    assert_eq!(calls(&r), ["b -2", "a -1"]);
    assert!(e.check_clear().is_ok());
}

#[test]
fn undo_of_a_step_that_never_ran_is_tolerated() {
    let dir = tempfile::tempdir().unwrap();
    // "b -2" fails: step 2 was Running, so it may never have happened.
    let r = on(
        ok(FakeRunner::new(), &["a -1"]),
        "b -2",
        Output::failed(2, "No such file"),
    );
    let e = engine(&r, &dir);
    let mut j = Journal::new("p.toml", three().steps);
    j.steps[0].status = StepStatus::Done;
    j.steps[1].status = StepStatus::Running;
    e.state.ensure().unwrap();
    j.save(&e.state).unwrap();
    let lock = e.lock().unwrap();
    assert!(matches!(
        e.rollback(&lock, Scope::Setup, &mut |_| {}).unwrap(),
        RollbackOutcome::RolledBack(_)
    ));
}

#[test]
fn failed_undo_of_a_done_step_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let r = on(
        ok(FakeRunner::new(), &["a 1", "b 2", "c 3", "c -3", "a -1"]),
        "b -2",
        Output::failed(1, "busy"),
    );
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    e.apply(&lock, &three(), "p.toml", None, &mut |_| {})
        .unwrap();
    let RollbackOutcome::Partial(j) = e.rollback(&lock, Scope::Setup, &mut |_| {}).unwrap() else {
        panic!("expected partial")
    };
    assert_eq!(j.steps[1].status, StepStatus::UndoFailed);
    assert_eq!(
        calls(&r)[3..],
        ["c -3", "b -2", "a -1"],
        "went on after the failure"
    );
}

#[test]
fn confirm_keeps_and_pending_blocks_a_new_apply() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(FakeRunner::new(), &["a 1", "b 2", "c 3"]);
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    let armed = std::cell::Cell::new(false);
    let arm = |j: &Journal| {
        // Armed before the first change, with the deadline on disk.
        assert!(j.confirm_deadline_unix.is_some());
        assert!(j.steps.iter().all(|s| s.status == StepStatus::Pending));
        armed.set(true);
        Ok(4242)
    };
    let out = e
        .apply(&lock, &three(), "p.toml", Some((60, &arm)), &mut |_| {})
        .unwrap();
    assert!(armed.get());
    let ApplyOutcome::Applied(j) = out else {
        panic!()
    };
    assert_eq!(j.state, TxnState::PendingConfirm);
    assert_eq!(j.timer_pid, Some(4242));
    assert!(matches!(e.check_clear(), Err(EngineError::Pending { .. })));
    let kept = e.confirm(&lock).unwrap();
    assert_eq!(kept.state, TxnState::Applied);
    assert!(e.check_clear().is_ok());
    assert!(
        matches!(
            e.confirm(&lock),
            Err(EngineError::NothingToConfirm { last: Some(_) })
        ),
        "nothing awaits confirmation now"
    );
}

#[test]
fn failing_to_arm_the_timer_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = FakeRunner::new();
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    let arm = |_: &Journal| Err(crate::apply::timer::ArmError::NoDeadline);
    let res = e.apply(&lock, &three(), "p.toml", Some((60, &arm)), &mut |_| {});
    match res {
        Err(e @ EngineError::Timer(_)) => {
            assert!(e.is_failure());
            assert!(e.to_string().contains("nothing was changed"), "{e}");
        }
        other => panic!("not a timer error: {:?}", other.err()),
    }
    assert!(r.calls().is_empty());
}

#[test]
fn noop_plan_writes_no_journal() {
    let dir = tempfile::tempdir().unwrap();
    let r = FakeRunner::new();
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    let mut p = three();
    p.steps
        .iter_mut()
        .for_each(|s| s.state = StepState::InPlace);
    assert!(matches!(
        e.apply(&lock, &p, "p.toml", None, &mut |_| {}).unwrap(),
        ApplyOutcome::Noop
    ));
    assert!(Journal::load(&e.state).unwrap().is_none());
}

#[test]
fn a_second_engine_cannot_take_the_lock() {
    let dir = tempfile::tempdir().unwrap();
    let r = FakeRunner::new();
    let e = engine(&r, &dir);
    let _lock = e.lock().unwrap();
    assert!(matches!(e.lock(), Err(EngineError::Busy(Some(_)))));
}

#[test]
fn a_transaction_interrupted_before_a_reboot_is_closed_with_only_its_files_undone() {
    let dir = tempfile::tempdir().unwrap();
    let r = FakeRunner::new();
    let e = engine(&r, &dir);
    let mut j = Journal::new("p.toml", three().steps);
    j.steps[0].status = StepStatus::Done;
    j.state = TxnState::PendingConfirm;
    j.boot_id = Some("an-earlier-boot".into());
    e.state.ensure().unwrap();
    j.save(&e.state).unwrap();
    assert!(matches!(e.check_clear(), Err(EngineError::Pending { .. })));
    let lock = e.lock().unwrap();
    let note = e.recover_after_reboot(&lock, &mut |_| {}).unwrap().unwrap();
    let note = note.to_string();
    assert!(note.contains("rebooted"), "{note}");
    assert!(
        r.calls().is_empty(),
        "rules are gone with the reboot: nothing to run"
    );
    assert!(e.check_clear().is_ok());
    // The same boot: nothing to recover.
    let mut j = Journal::new("p.toml", three().steps);
    j.state = TxnState::Running;
    j.save(&e.state).unwrap();
    assert!(
        e.recover_after_reboot(&lock, &mut |_| {})
            .unwrap()
            .is_none()
    );
}

// iptables-restore batches.

const RESTORE: [&str; 3] = ["iptables-restore", "-w", "--noflush"];
const RESTORE6: [&str; 3] = ["ip6tables-restore", "-w", "--noflush"];

/// ip rule, three mangle steps, one nat step, two ip6tables mangle steps.
fn firewall() -> Plan {
    plan(vec![
        step("ip rule add 1", "ip rule del 1"),
        step(
            "iptables -w -t mangle -N DSCPROUTE-ROUTE",
            "iptables -w -t mangle -X DSCPROUTE-ROUTE",
        ),
        step(
            "iptables -w -t mangle -A DSCPROUTE-ROUTE -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff",
            "iptables -w -t mangle -D DSCPROUTE-ROUTE -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff",
        ),
        step(
            "iptables -w -t mangle -I PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE",
            "iptables -w -t mangle -D PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE",
        ),
        step(
            "iptables -w -t nat -N DSCPROUTE-NAT",
            "iptables -w -t nat -X DSCPROUTE-NAT",
        ),
        step(
            "ip6tables -w -t mangle -N DSCPROUTE-ROUTE",
            "ip6tables -w -t mangle -X DSCPROUTE-ROUTE",
        ),
        step(
            "ip6tables -w -t mangle -A DSCPROUTE-ROUTE -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff",
            "ip6tables -w -t mangle -D DSCPROUTE-ROUTE -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff",
        ),
    ])
}

const MANGLE_IN: &str = "*mangle\n-N DSCPROUTE-ROUTE\n-A DSCPROUTE-ROUTE -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff\n\
    -I PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE\nCOMMIT\n";
const MANGLE6_IN: &str = "*mangle\n-N DSCPROUTE-ROUTE\n-A DSCPROUTE-ROUTE -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff\nCOMMIT\n";
const MANGLE_UNDO: &str = "*mangle\n-D PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE\n\
    -D DSCPROUTE-ROUTE -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff\n-X DSCPROUTE-ROUTE\nCOMMIT\n";
const MANGLE6_UNDO: &str = "*mangle\n-D DSCPROUTE-ROUTE -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff\n-X DSCPROUTE-ROUTE\nCOMMIT\n";

fn stdins(r: &FakeRunner) -> Vec<(String, String)> {
    r.stdins()
        .into_iter()
        .map(|(a, s)| (a.join(" "), s))
        .collect()
}

#[test]
fn consecutive_iptables_steps_of_one_table_run_as_one_restore() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(
        FakeRunner::new(),
        &["ip rule add 1", "iptables -w -t nat -N DSCPROUTE-NAT"],
    )
    .on(&RESTORE, Output::ok(""))
    .on(&RESTORE6, Output::ok(""));
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    let mut started = 0;
    let out = e
        .apply(&lock, &firewall(), "p.toml", None, &mut |ev| {
            started += usize::from(matches!(ev, Event::Started { .. }))
        })
        .unwrap();
    let ApplyOutcome::Applied(j) = out else {
        panic!("not applied")
    };
    assert_eq!(
        calls(&r),
        [
            "ip rule add 1",
            "iptables-restore -w --noflush",
            // A batch of one stays the plan's own command.
            "iptables -w -t nat -N DSCPROUTE-NAT",
            "ip6tables-restore -w --noflush",
        ]
    );
    assert_eq!(
        stdins(&r),
        [
            (
                "iptables-restore -w --noflush".to_string(),
                MANGLE_IN.into()
            ),
            (
                "ip6tables-restore -w --noflush".to_string(),
                MANGLE6_IN.into()
            ),
        ]
    );
    assert_eq!(started, 7, "every step still reports itself");
    assert!(j.steps.iter().all(|s| s.status == StepStatus::Done));
    assert_eq!(Journal::load(&e.state).unwrap().unwrap(), j);

    // Rollback batches the same way, newest first.
    let r2 = ok(
        FakeRunner::new(),
        &["ip rule del 1", "iptables -w -t nat -X DSCPROUTE-NAT"],
    )
    .on(&RESTORE, Output::ok(""))
    .on(&RESTORE6, Output::ok(""));
    let e2 = Engine {
        runner: &r2,
        root: e.root.clone(),
        state: StateDir::resolve(Some(e.state.path())),
    };
    assert!(matches!(
        e2.rollback(&lock, Scope::Setup, &mut |_| {}).unwrap(),
        RollbackOutcome::RolledBack(_)
    ));
    assert_eq!(
        calls(&r2),
        [
            "ip6tables-restore -w --noflush",
            "iptables -w -t nat -X DSCPROUTE-NAT",
            "iptables-restore -w --noflush",
            "ip rule del 1",
        ]
    );
    assert_eq!(
        stdins(&r2),
        [
            (
                "ip6tables-restore -w --noflush".to_string(),
                MANGLE6_UNDO.into()
            ),
            (
                "iptables-restore -w --noflush".to_string(),
                MANGLE_UNDO.into()
            ),
        ]
    );
}

#[test]
fn a_refused_batch_fails_every_step_of_it_and_names_the_blamed_command() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(FakeRunner::new(), &["ip rule add 1", "ip rule del 1"]).on(
        &RESTORE,
        Output::failed(
            1,
            "iptables-restore: line 3 failed: No chain/target/match by that name.\n",
        ),
    );
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    let mut failed = Vec::new();
    let out = e
        .apply(&lock, &firewall(), "p.toml", None, &mut |ev| {
            if let Event::Failed { index, .. } = ev {
                failed.push(index)
            }
        })
        .unwrap();
    let ApplyOutcome::Failed { journal, failure } = out else {
        panic!("not failed")
    };
    // Line 3 of the input is the batch's second line: step 3 of the plan.
    assert_eq!(
        failure.command,
        "iptables -w -t mangle -A DSCPROUTE-ROUTE -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff"
    );
    assert!(
        failure.stderr.contains("line 3 failed"),
        "{}",
        failure.stderr
    );
    assert!(
        failure
            .stderr
            .contains("refused the whole batch of steps 2-4"),
        "{}",
        failure.stderr
    );
    assert_eq!(failed, [1, 3, 2], "the blamed step reports last");
    let st: Vec<_> = journal.steps.iter().map(|s| s.status).collect();
    use StepStatus::*;
    assert_eq!(
        st,
        [Undone, Failed, Failed, Failed, Pending, Pending, Pending]
    );
    assert!(
        journal.steps[3]
            .error
            .as_deref()
            .unwrap()
            .contains("not applied")
    );
    // Only the step before the batch was undone: the batch changed nothing.
    assert_eq!(
        calls(&r),
        [
            "ip rule add 1",
            "iptables-restore -w --noflush",
            "ip rule del 1"
        ]
    );
}

#[test]
fn a_refusal_naming_no_step_line_blames_the_first_step_of_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(FakeRunner::new(), &["ip rule add 1", "ip rule del 1"]).on(
        &RESTORE,
        Output::failed(
            4,
            "iptables-restore v1.8.9 (nf_tables): \nline 5: CHAIN_ADD failed",
        ),
    );
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    let ApplyOutcome::Failed { failure, .. } = e
        .apply(&lock, &firewall(), "p.toml", None, &mut |_| {})
        .unwrap()
    else {
        panic!("not failed")
    };
    assert_eq!(failure.command, "iptables -w -t mangle -N DSCPROUTE-ROUTE");
    assert!(
        failure.stderr.contains("named no step's line"),
        "{}",
        failure.stderr
    );
}

#[test]
fn a_refused_undo_batch_falls_back_to_one_by_one_with_the_usual_tolerance() {
    let dir = tempfile::tempdir().unwrap();
    // Interrupted during the mangle batch: it may or may not have happened.
    // Here it did not: the batched undo is refused ("-D" of a missing rule),
    // each single undo fails too, and that is fine for Running steps.
    let r = FakeRunner::new()
        .on(
            &RESTORE,
            Output::failed(1, "iptables-restore: line 2 failed: Bad rule"),
        )
        .on(
            &[
                "iptables",
                "-w",
                "-t",
                "mangle",
                "-D",
                "PREROUTING",
                "-m",
                "comment",
                "--comment",
                "dscproute",
                "-j",
                "DSCPROUTE-ROUTE",
            ],
            Output::failed(1, "Bad rule"),
        )
        .on(
            &[
                "iptables",
                "-w",
                "-t",
                "mangle",
                "-D",
                "DSCPROUTE-ROUTE",
                "-j",
                "CONNMARK",
                "--restore-mark",
                "--nfmask",
                "0xff",
                "--ctmask",
                "0xff",
            ],
            Output::failed(1, "Bad rule"),
        )
        .on(
            &["iptables", "-w", "-t", "mangle", "-X", "DSCPROUTE-ROUTE"],
            Output::failed(1, "No chain"),
        );
    let r = on(r, "ip rule del 1", Output::ok(""));
    let e = engine(&r, &dir);
    let mut j = Journal::new("p.toml", firewall().steps);
    j.steps[0].status = StepStatus::Done;
    for k in 1..4 {
        j.steps[k].status = StepStatus::Running;
    }
    e.state.ensure().unwrap();
    j.save(&e.state).unwrap();
    let lock = e.lock().unwrap();
    let mut undoing = 0;
    let out = e
        .rollback(&lock, Scope::Setup, &mut |ev| {
            undoing += usize::from(matches!(ev, Event::Undoing { .. }))
        })
        .unwrap();
    let RollbackOutcome::RolledBack(j) = out else {
        panic!("not rolled back cleanly")
    };
    assert_eq!(undoing, 4, "each step announced once");
    assert_eq!(
        calls(&r),
        [
            "iptables-restore -w --noflush",
            "iptables -w -t mangle -D PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE",
            "iptables -w -t mangle -D DSCPROUTE-ROUTE -j CONNMARK --restore-mark --nfmask 0xff --ctmask 0xff",
            "iptables -w -t mangle -X DSCPROUTE-ROUTE",
            "ip rule del 1",
        ]
    );
    assert!(j.steps[..4].iter().all(|s| s.status == StepStatus::Undone));
}

#[test]
fn a_refused_undo_batch_of_done_steps_reports_the_ones_that_fail_alone() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(
        FakeRunner::new(),
        &[
            "iptables -w -t mangle -D PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE",
            "iptables -w -t mangle -X DSCPROUTE-ROUTE",
        ],
    )
    .on(
        &RESTORE,
        Output::failed(1, "iptables-restore: line 3 failed: Bad rule"),
    )
    .on(
        &[
            "iptables",
            "-w",
            "-t",
            "mangle",
            "-D",
            "DSCPROUTE-ROUTE",
            "-j",
            "CONNMARK",
            "--restore-mark",
            "--nfmask",
            "0xff",
            "--ctmask",
            "0xff",
        ],
        Output::failed(1, "Bad rule"),
    );
    let e = engine(&r, &dir);
    let mut j = Journal::new("p.toml", firewall().steps[1..4].to_vec());
    j.steps.iter_mut().for_each(|s| s.status = StepStatus::Done);
    e.state.ensure().unwrap();
    j.save(&e.state).unwrap();
    let lock = e.lock().unwrap();
    let RollbackOutcome::Partial(j) = e.rollback(&lock, Scope::Setup, &mut |_| {}).unwrap() else {
        panic!("expected partial")
    };
    let st: Vec<_> = j.steps.iter().map(|s| s.status).collect();
    use StepStatus::*;
    assert_eq!(st, [Undone, UndoFailed, Undone]);
}

// A journal that cannot be written (a full disk) or must not be trusted.

/// From here on appends to the step log fail, as on a full disk: a
/// directory where the log file goes.
fn break_log(state: &StateDir) {
    let p = state.step_log();
    let _ = std::fs::remove_file(&p);
    std::fs::create_dir_all(&p).unwrap();
}

#[test]
fn a_step_whose_start_cannot_be_journaled_never_runs() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(FakeRunner::new(), &["a 1", "a -1"]);
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    let state = e.state.clone();
    let out = e
        .apply(&lock, &three(), "p.toml", None, &mut |ev| {
            if ev == (Event::Done { index: 0 }) {
                break_log(&state);
            }
        })
        .unwrap();
    let ApplyOutcome::Failed { journal, failure } = out else {
        panic!("not failed")
    };
    assert_eq!(calls(&r), ["a 1", "a -1"], "step 2 never ran");
    assert!(
        failure.command.starts_with("write the journal"),
        "{failure}"
    );
    assert!(
        failure.stderr.contains("cannot write step log"),
        "{failure}"
    );
    let st: Vec<_> = journal.steps.iter().map(|s| s.status).collect();
    use StepStatus::*;
    assert_eq!(st, [Undone, Pending, Pending]);
    // Everything was undone, so the journal that lists the step as done
    // went to history: no later rollback replays it, and apply may go on.
    let note = journal.unsaved.as_deref().unwrap();
    assert!(note.contains("moved to"), "{note}");
    assert!(e.state.history(&journal.id).exists());
    assert!(Journal::load(&e.state).unwrap().is_none());
    assert!(e.check_clear().is_ok());
}

#[test]
fn a_step_whose_end_cannot_be_journaled_is_undone_from_memory() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(FakeRunner::new(), &["a 1", "b 2", "b -2", "a -1"]);
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    let state = e.state.clone();
    let out = e
        .apply(&lock, &three(), "p.toml", None, &mut |ev| {
            if matches!(ev, Event::Started { index: 1, .. }) {
                break_log(&state);
            }
        })
        .unwrap();
    assert!(matches!(out, ApplyOutcome::Failed { .. }));
    assert_eq!(calls(&r), ["a 1", "b 2", "b -2", "a -1"]);
}

/// The symptom: every step ran, then the journal could not say so.
#[test]
fn an_apply_that_cannot_be_recorded_as_applied_is_taken_back() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(
        FakeRunner::new(),
        &["a 1", "b 2", "c 3", "c -3", "b -2", "a -1"],
    );
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    let state = e.state.clone();
    let out = e
        .apply(&lock, &three(), "p.toml", None, &mut |ev| {
            if ev == (Event::Done { index: 2 }) {
                break_log(&state);
            }
        })
        .unwrap();
    let ApplyOutcome::Failed { journal, .. } = out else {
        panic!("not failed")
    };
    assert_eq!(calls(&r)[3..], ["c -3", "b -2", "a -1"]);
    assert!(journal.steps.iter().all(|s| s.status == StepStatus::Undone));
}

#[test]
fn rollback_goes_on_from_memory_when_the_journal_cannot_be_written() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(
        FakeRunner::new(),
        &["a 1", "b 2", "c 3", "c -3", "b -2", "a -1"],
    );
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    e.apply(&lock, &three(), "p.toml", None, &mut |_| {})
        .unwrap();
    break_log(&e.state);
    let RollbackOutcome::RolledBack(j) = e.rollback(&lock, Scope::Setup, &mut |_| {}).unwrap()
    else {
        panic!("not rolled back")
    };
    assert_eq!(calls(&r)[3..], ["c -3", "b -2", "a -1"], "every undo ran");
    let note = j.unsaved.as_deref().unwrap();
    assert!(note.contains("could not be updated"), "{note}");
    // The outdated journal (still "applied") is out of the way.
    assert!(Journal::load(&e.state).unwrap().is_none());
    let out = e.rollback(&lock, Scope::Setup, &mut |_| {}).unwrap();
    assert!(matches!(out, RollbackOutcome::Nothing(_)));
    assert_eq!(r.calls().len(), 6, "nothing replayed");
}

/// `j` as a journal of version 1 wrote it: each step's commands as effects.
fn version_1(j: &Journal) -> serde_json::Value {
    let mut v = serde_json::to_value(j).unwrap();
    v["version"] = 1.into();
    for (i, js) in j.steps.iter().enumerate() {
        let step = &mut v["steps"][i]["step"];
        step["apply"] = serde_json::to_value(js.step.apply.effect()).unwrap();
        step["undo"] = serde_json::to_value(js.step.undo.effect()).unwrap();
    }
    v
}

/// The three steps, applied and kept.
fn applied_three() -> Journal {
    let mut j = Journal::new("p.toml", three().steps);
    j.steps.iter_mut().for_each(|s| s.status = StepStatus::Done);
    j.state = TxnState::Applied;
    j
}

/// A journal of the earlier format is read, and undone like one of ours.
#[test]
fn a_version_1_journal_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(FakeRunner::new(), &["c -3", "b -2", "a -1"]);
    let e = engine(&r, &dir);
    let j = applied_three();
    e.state.ensure().unwrap();
    std::fs::write(e.state.current(), version_1(&j).to_string()).unwrap();
    let back = Journal::load(&e.state).unwrap().unwrap();
    assert_eq!(back.version, 2);
    assert_eq!(back.steps, j.steps);
    let lock = e.lock().unwrap();
    let out = e.rollback(&lock, Scope::Setup, &mut |_| {}).unwrap();
    assert!(matches!(out, RollbackOutcome::RolledBack(_)));
    assert_eq!(calls(&r), ["c -3", "b -2", "a -1"]);
    // Written back in the current format.
    let text = std::fs::read_to_string(e.state.current()).unwrap();
    assert!(
        text.contains("\"version\": 2") && text.contains("\"op\": \"policy_rule\""),
        "{text}"
    );
}

/// Roll back with `journal` as the journal on disk: refused with the
/// message returned, nothing run, and apply blocked as well.
fn refused_rollback(journal: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let r = FakeRunner::new();
    let e = engine(&r, &dir);
    e.state.ensure().unwrap();
    std::fs::write(e.state.current(), journal).unwrap();
    let lock = e.lock().unwrap();
    let m = match e.rollback(&lock, Scope::Setup, &mut |_| {}) {
        Err(e @ EngineError::Journal(LoadError::Refused(_))) => {
            assert!(!e.is_failure(), "not now: nothing of it runs");
            e.to_string()
        }
        other => panic!("not refused: {:?}", other.err()),
    };
    assert!(m.contains("current.json"), "{m}");
    assert!(r.calls().is_empty(), "nothing ran: {:?}", r.calls());
    assert!(matches!(
        e.check_clear(),
        Err(EngineError::Journal(LoadError::Refused(_)))
    ));
    m
}

/// A journal someone else wrote: its undo would run `sh` as root. Only the
/// earlier format could even say so; it is read through the same gate.
#[test]
fn rollback_of_a_crafted_journal_runs_nothing() {
    let mut v = version_1(&applied_three());
    v["steps"][1]["step"]["undo"] = serde_json::json!({
        "kind": "run", "argv": ["sh", "-c", "touch /tmp/pwned"]
    });
    let m = refused_rollback(&v.to_string());
    assert!(m.contains("step 2 undo `sh -c touch /tmp/pwned`"), "{m}");
}

/// In the current format a crafted journal can only name operations of
/// ours; one with names that are not ours is refused all the same.
#[test]
fn rollback_of_a_typed_journal_with_foreign_names_runs_nothing() {
    let mut j = applied_three();
    j.steps[1].step.undo = Op::Netfilter {
        family: crate::backend::Family::V4,
        table: Table::Mangle,
        cmd: NfCmd::FlushChain {
            chain: "INPUT".into(),
        },
    };
    let m = refused_rollback(&serde_json::to_string(&j).unwrap());
    assert!(
        m.contains("step 2 undo `iptables -w -t mangle -F INPUT`: chain INPUT is not one of ours"),
        "{m}"
    );
}

#[test]
fn a_plan_step_the_journal_would_refuse_is_not_applied() {
    let dir = tempfile::tempdir().unwrap();
    let r = FakeRunner::new();
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    let mut p = three();
    p.steps[2].undo = Op::GroupDel {
        name: "../x".into(),
    };
    match e.apply(&lock, &p, "p.toml", None, &mut |_| {}) {
        Err(e @ EngineError::UnplannedStep { index: 3, .. }) => {
            assert!(e.to_string().contains("plan step 3 undo"), "{e}")
        }
        _ => panic!("not refused"),
    }
    assert!(r.calls().is_empty());
    assert!(Journal::load(&e.state).unwrap().is_none(), "no journal");
}

#[test]
fn one_rollback_undoes_every_transaction_of_the_setup_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(
        FakeRunner::new(),
        &[
            "a 1",
            "b 2",
            "c 3",
            "c -3",
            "b -2",
            "a -1",
            "ip rule add 1",
            "ip rule del 1",
            "ip -4 -force -batch -",
        ],
    );
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    e.apply(
        &lock,
        &plan(vec![step("a 1", "a -1"), step("b 2", "b -2")]),
        "p",
        None,
        &mut |_| {},
    )
    .unwrap();
    // A repair, then an edited profile that replaces `c` by the IPv6 rule.
    e.apply(
        &lock,
        &plan(vec![step("c 3", "c -3")]),
        "p",
        None,
        &mut |_| {},
    )
    .unwrap();
    e.apply(
        &lock,
        &plan(vec![
            step("c -3", "c 3"),
            step("ip rule add 1", "ip rule del 1"),
        ]),
        "p",
        None,
        &mut |_| {},
    )
    .unwrap();
    let j = Journal::load(&e.state).unwrap().unwrap();
    // The repair folded into the setup; the edit is the last transaction.
    let setup: Vec<_> = j.setup.iter().map(|s| s.step.apply.clone()).collect();
    assert_eq!(setup, [op("a 1"), op("b 2"), op("c 3")]);
    // Once folded, the edit's removal of `c` cancels the repair's `c`.
    let standing: Vec<_> = j
        .carried(j.boot_id.as_deref())
        .into_iter()
        .map(|s| s.step.apply)
        .collect();
    assert_eq!(standing, [op("a 1"), op("b 2"), op("ip rule add 1")]);
    let before = r.calls().len();
    let out = e.rollback(&lock, Scope::Setup, &mut |_| {}).unwrap();
    assert!(matches!(out, RollbackOutcome::RolledBack(_)));
    // `c 3` (undoing the edit's removal) and `c -3` go as one IPv4 batch.
    assert_eq!(
        calls(&r)[before..],
        ["ip rule del 1", "ip -4 -force -batch -", "b -2", "a -1"],
        "the last transaction first, then the setup before it"
    );
    let j = Journal::load(&e.state).unwrap().unwrap();
    assert!(!j.setup_needs_undo());
    // A new apply starts a new setup.
    e.apply(
        &lock,
        &plan(vec![step("a 1", "a -1")]),
        "p",
        None,
        &mut |_| {},
    )
    .unwrap();
    assert!(Journal::load(&e.state).unwrap().unwrap().setup.is_empty());
}

#[test]
fn rolling_back_the_last_transaction_leaves_the_setup_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(FakeRunner::new(), &["a 1", "b 2", "b -2", "a -1"]);
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    e.apply(
        &lock,
        &plan(vec![step("a 1", "a -1")]),
        "p",
        None,
        &mut |_| {},
    )
    .unwrap();
    e.apply(
        &lock,
        &plan(vec![step("b 2", "b -2")]),
        "p",
        None,
        &mut |_| {},
    )
    .unwrap();
    e.rollback(&lock, Scope::Last, &mut |_| {}).unwrap();
    assert_eq!(calls(&r)[2..], ["b -2"]);
    let j = Journal::load(&e.state).unwrap().unwrap();
    assert_eq!(j.state, TxnState::RolledBack);
    assert!(j.setup_needs_undo(), "the first apply is still in place");
    // The setup's rollback still finds it, and the next apply carries it.
    let out = e.rollback(&lock, Scope::Setup, &mut |_| {}).unwrap();
    assert!(matches!(out, RollbackOutcome::RolledBack(_)));
    assert_eq!(calls(&r)[3..], ["a -1"]);
}

#[test]
fn an_interrupted_last_transaction_is_undone_with_the_setup_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let r = ok(FakeRunner::new(), &["a 1", "b 2", "b -2", "a -1"]);
    let e = engine(&r, &dir);
    let lock = e.lock().unwrap();
    e.apply(
        &lock,
        &plan(vec![step("a 1", "a -1")]),
        "p",
        None,
        &mut |_| {},
    )
    .unwrap();
    e.apply(
        &lock,
        &plan(vec![step("b 2", "b -2")]),
        "p",
        None,
        &mut |_| {},
    )
    .unwrap();
    // The process died while `b` ran: on record as interrupted.
    let mut j = Journal::load(&e.state).unwrap().unwrap();
    j.state = TxnState::Running;
    j.steps[0].status = StepStatus::Running;
    j.save(&e.state).unwrap();
    assert!(matches!(e.check_clear(), Err(EngineError::Interrupted(_))));
    let out = e.rollback(&lock, Scope::Setup, &mut |_| {}).unwrap();
    assert!(matches!(out, RollbackOutcome::RolledBack(_)));
    assert_eq!(calls(&r)[2..], ["b -2", "a -1"]);
}
