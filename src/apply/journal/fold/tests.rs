use super::super::{Journal, JournalStep, Saved, StepStatus};
use crate::backend::Op;
use crate::backend::op::{
    ChainRule, DefaultRoute, Family, MarkMask, NfCmd, OurRule, PolicyAction, PolicyRule, Selector,
    SysctlKey, Table,
};
use crate::plan::{Role, Step, StepState};

fn step(apply: Op, undo: Op, status: StepStatus) -> JournalStep {
    JournalStep {
        step: Step {
            role: Role::Gateway,
            state: StepState::Add,
            apply,
            undo,
            reason: String::new(),
            change: None,
        },
        status,
        saved: None,
        error: None,
    }
}

fn done(apply: Op, undo: Op) -> JournalStep {
    step(apply, undo, StepStatus::Done)
}

fn route(dev: &str, add: bool) -> Op {
    Op::Route {
        family: Family::V4,
        add,
        route: DefaultRoute {
            via: None,
            dev: dev.into(),
            table: 100,
        },
    }
}

fn rule(pref: u32, add: bool) -> Op {
    Op::PolicyRule {
        family: Family::V4,
        add,
        rule: PolicyRule {
            pref,
            selector: Selector::Mark(MarkMask {
                value: 0x10,
                mask: 0xff,
            }),
            action: PolicyAction::Lookup(100),
        },
    }
}

fn nf(cmd: NfCmd) -> Op {
    Op::Netfilter {
        family: Family::V4,
        table: Table::Mangle,
        cmd,
    }
}

fn chain(cmd: fn(String) -> NfCmd) -> Op {
    nf(cmd("DSCPROUTE-GW".into()))
}

fn append(dscp: u8) -> (Op, Op) {
    let r = ChainRule::Ours(OurRule::ScrubDscp { dscp });
    (
        nf(NfCmd::Append {
            chain: "DSCPROUTE-GW".into(),
            rule: r.clone(),
        }),
        nf(NfCmd::Delete {
            chain: "DSCPROUTE-GW".into(),
            rule: r,
        }),
    )
}

fn sysctl(value: u8, old: &str) -> JournalStep {
    let key = SysctlKey::Ipv4Forwarding;
    let mut s = done(
        Op::Sysctl {
            key: key.clone(),
            value,
        },
        Op::Sysctl { key, value: 0 },
    );
    s.saved = Some(Saved::Sysctl {
        key: "net.ipv4.ip_forward".into(),
        old: old.into(),
    });
    s
}

/// The setup after folding these transactions' steps in order.
fn folded(txns: Vec<Vec<JournalStep>>) -> Vec<JournalStep> {
    let mut setup = Vec::new();
    for t in txns {
        for js in t {
            super::fold(&mut setup, js);
        }
    }
    setup
}

fn applies(setup: &[JournalStep]) -> Vec<Op> {
    setup.iter().map(|s| s.step.apply.clone()).collect()
}

#[test]
fn a_route_re_added_by_every_repair_is_kept_once() {
    let add = || done(route("wg0", true), route("wg0", false));
    let setup = folded(vec![vec![add()], vec![add()], vec![add()]]);
    assert_eq!(applies(&setup), [route("wg0", true)]);
}

#[test]
fn a_sysctl_keeps_the_value_from_before_dscproute() {
    // The second apply found our own value and saved it as "old".
    let setup = folded(vec![vec![sysctl(1, "0")], vec![sysctl(1, "1")]]);
    assert_eq!(setup.len(), 1);
    assert_eq!(
        setup[0].saved,
        Some(Saved::Sysctl {
            key: "net.ipv4.ip_forward".into(),
            old: "0".into()
        })
    );
}

#[test]
fn an_edited_profile_cancels_the_rule_it_replaced() {
    let setup = folded(vec![
        vec![done(rule(100, true), rule(100, false))],
        vec![
            done(rule(100, false), rule(100, true)),
            done(rule(200, true), rule(200, false)),
        ],
    ]);
    assert_eq!(applies(&setup), [rule(200, true)]);
}

#[test]
fn a_removal_that_may_not_have_happened_cancels_nothing() {
    let setup = folded(vec![
        vec![done(rule(100, true), rule(100, false))],
        vec![step(rule(100, false), rule(100, true), StepStatus::Running)],
    ]);
    assert_eq!(applies(&setup), [rule(100, true), rule(100, false)]);
}

#[test]
fn a_removal_of_something_from_before_the_setup_is_kept_for_its_undo() {
    // A leftover of an older dscproute, removed by the first apply: rollback
    // puts it back, as the host had it.
    let setup = folded(vec![vec![done(rule(300, false), rule(300, true))]]);
    assert_eq!(applies(&setup), [rule(300, false)]);
}

#[test]
fn a_rebuilt_chain_drops_the_rules_the_setup_had_added() {
    let (a7, _) = append(7);
    let (a9, _) = append(9);
    let setup = folded(vec![
        vec![
            done(
                chain(|c| NfCmd::NewChain { chain: c }),
                chain(|c| NfCmd::DeleteChain { chain: c }),
            ),
            done(a7.clone(), append(7).1),
        ],
        vec![
            done(
                chain(|c| NfCmd::FlushChain { chain: c }),
                Op::Seq {
                    ops: vec![a7.clone()],
                },
            ),
            done(a9.clone(), append(9).1),
        ],
    ]);
    assert_eq!(
        applies(&setup),
        [chain(|c| NfCmd::NewChain { chain: c }), a9]
    );
}

#[test]
fn a_chain_flushed_that_the_setup_did_not_create_keeps_its_undo() {
    let flush = done(
        chain(|c| NfCmd::FlushChain { chain: c }),
        Op::Seq {
            ops: vec![append(7).0],
        },
    );
    let setup = folded(vec![vec![flush.clone()]]);
    assert_eq!(setup, [flush]);
}

#[test]
fn a_deleted_chain_keeps_dropping_the_table_it_created_at_its_place() {
    let new = done(
        chain(|c| NfCmd::NewChain { chain: c }),
        Op::Seq {
            ops: vec![
                chain(|c| NfCmd::DeleteChain { chain: c }),
                Op::DropEmptyTable {
                    family: Family::V4,
                    table: Table::Mangle,
                },
            ],
        },
    );
    let (a7, d7) = append(7);
    let setup = folded(vec![
        vec![
            new,
            done(a7.clone(), d7.clone()),
            done(route("wg0", true), route("wg0", false)),
        ],
        vec![
            done(d7, a7),
            done(
                chain(|c| NfCmd::DeleteChain { chain: c }),
                chain(|c| NfCmd::NewChain { chain: c }),
            ),
        ],
    ]);
    assert_eq!(setup.len(), 2, "{setup:?}");
    assert_eq!(
        setup[0].step.apply,
        chain(|c| NfCmd::DeleteChain { chain: c })
    );
    assert_eq!(
        setup[0].step.undo,
        Op::DropEmptyTable {
            family: Family::V4,
            table: Table::Mangle
        }
    );
    assert_eq!(setup[1].step.apply, route("wg0", true));
}

#[test]
fn undone_and_pending_steps_are_not_carried() {
    let mut j = Journal::new("p", vec![]);
    j.steps = vec![
        step(route("wg0", true), route("wg0", false), StepStatus::Undone),
        step(route("wg1", true), route("wg1", false), StepStatus::Pending),
        step(
            route("wg2", true),
            route("wg2", false),
            StepStatus::UndoFailed,
        ),
    ];
    let carried = j.carried(j.boot_id.clone().as_deref());
    assert_eq!(applies(&carried), [route("wg2", true)]);
}

#[test]
fn across_a_reboot_only_files_are_carried() {
    let mut j = Journal::new("p", vec![]);
    j.boot_id = Some("old-boot".into());
    let names = done(
        Op::WriteTableNames {
            id: 100,
            name: "vpn".into(),
        },
        Op::RemoveTableNames,
    );
    j.setup = vec![names.clone(), done(route("wg0", true), route("wg0", false))];
    j.steps = vec![sysctl(1, "0")];
    assert_eq!(j.carried(Some("new-boot")), [names]);
    assert_eq!(j.carried(Some("old-boot")).len(), 3);
}

#[test]
fn merging_puts_the_setup_first_so_it_is_undone_last() {
    let mut j = Journal::new("p", vec![]);
    j.setup = vec![done(route("wg0", true), route("wg0", false))];
    j.steps = vec![done(rule(100, true), rule(100, false))];
    assert!(j.setup_needs_undo());
    j.merge_setup();
    assert!(j.setup.is_empty());
    assert_eq!(applies(&j.steps), [route("wg0", true), rule(100, true)]);
}

#[test]
fn a_later_sysctl_value_is_ours_now_but_the_first_saved_stays() {
    let setup = folded(vec![vec![sysctl(1, "0")], vec![sysctl(2, "1")]]);
    assert_eq!(setup.len(), 1);
    assert!(matches!(setup[0].step.apply, Op::Sysctl { value: 2, .. }));
    assert!(matches!(&setup[0].saved, Some(Saved::Sysctl { old, .. }) if old == "0"));
}

#[test]
fn a_failover_folds_into_the_route_the_setup_added_and_undoes_as_one_delete() {
    let dr = |dev: &str| DefaultRoute {
        via: None,
        dev: dev.into(),
        table: 100,
    };
    let replace = |from: &str, to: &str| {
        done(
            Op::RouteReplace {
                family: Family::V4,
                from: dr(from),
                to: dr(to),
            },
            Op::RouteReplace {
                family: Family::V4,
                from: dr(to),
                to: dr(from),
            },
        )
    };
    let add = || done(route("wg0", true), route("wg0", false));
    // wg0 -> wg1 -> none (both down) -> wg1 -> wg0.
    let setup = folded(vec![
        vec![add()],
        vec![replace("wg0", "wg1")],
        vec![done(route("wg1", false), route("wg1", true))],
        vec![done(route("wg1", true), route("wg1", false))],
        vec![replace("wg1", "wg0")],
    ]);
    assert_eq!(applies(&setup), [route("wg0", true)]);
    assert_eq!(setup[0].step.undo, route("wg0", false));
    // Left on wg1: its undo deletes the wg1 route, never brings wg0 back.
    let setup = folded(vec![vec![add()], vec![replace("wg0", "wg1")]]);
    assert_eq!(applies(&setup), [route("wg1", true)]);
    assert_eq!(setup[0].step.undo, route("wg1", false));
}

#[test]
fn our_nft_table_replaced_again_keeps_its_first_undo() {
    use crate::backend::nft::{NftHook, NftRule, NftRuleset};
    let table = |dscp: u8| {
        let mut t = NftRuleset::default();
        t.push(
            NftHook::Output,
            NftRule::ConnmarkDscp {
                family: Family::V4,
                mark: MarkMask {
                    value: 1,
                    mask: 0xff,
                },
                dscp,
            },
        );
        Op::NftTable {
            ruleset: t,
            fresh: false,
        }
    };
    let setup = folded(vec![
        vec![done(table(7), Op::NftDelete)],
        vec![done(table(11), table(7))],
        vec![done(table(13), table(11))],
    ]);
    assert_eq!(setup.len(), 1);
    assert_eq!(setup[0].step.apply, table(13), "the table as it is now");
    assert_eq!(setup[0].step.undo, Op::NftDelete, "none before dscproute");
    // Switching to iptables removes the table: nothing of it is left to undo.
    let setup = folded(vec![
        vec![done(table(7), Op::NftDelete)],
        vec![done(Op::NftDelete, table(7))],
    ]);
    assert!(setup.is_empty(), "{setup:?}");
}
