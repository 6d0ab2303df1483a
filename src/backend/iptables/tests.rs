use super::*;

fn nf(family: Family, table: Table, cmd: NfCmd) -> Op {
    Op::Netfilter { family, table, cmd }
}

fn ours(rule: OurRule) -> ChainRule {
    ChainRule::Ours(rule)
}

const MARK: MarkMask = MarkMask {
    value: 1,
    mask: 0xff,
};

#[test]
fn which_operations_become_restore_lines() {
    let masq = nf(
        Family::V6,
        Table::Nat,
        NfCmd::Append {
            chain: "DSCPROUTE-NAT".into(),
            rule: ours(OurRule::Masquerade { mark: MARK }),
        },
    );
    let (k, l) = restore_line(&masq).unwrap();
    assert_eq!(
        (&k, l.as_str()),
        (
            &BatchKey {
                family: Family::V6,
                table: Table::Nat
            },
            "-A DSCPROUTE-NAT -m mark --mark 0x1/0xff -j MASQUERADE"
        )
    );
    assert_eq!(restore_argv(&k), ["ip6tables-restore", "-w", "--noflush"]);
    let chain = || "DSCPROUTE-X".to_string();
    let jump = ChainRule::Jump {
        out: None,
        target: chain(),
    };
    for (cmd, line) in [
        (NfCmd::NewChain { chain: chain() }, "-N DSCPROUTE-X"),
        (NfCmd::DeleteChain { chain: chain() }, "-X DSCPROUTE-X"),
        (NfCmd::FlushChain { chain: chain() }, "-F DSCPROUTE-X"),
        (
            NfCmd::Insert {
                chain: "PREROUTING".into(),
                at: Some(2),
                rule: jump.clone(),
            },
            "-I PREROUTING 2 -m comment --comment dscproute -j DSCPROUTE-X",
        ),
        (
            NfCmd::Delete {
                chain: "PREROUTING".into(),
                rule: jump,
            },
            "-D PREROUTING -m comment --comment dscproute -j DSCPROUTE-X",
        ),
    ] {
        let (k, l) = restore_line(&nf(Family::V4, Table::Mangle, cmd)).unwrap();
        assert_eq!(
            (k.family, k.table, l.as_str()),
            (Family::V4, Table::Mangle, line)
        );
    }
    for other in [
        Op::Sysctl {
            key: crate::backend::SysctlKey::Ipv4Forwarding,
            value: 1,
        },
        Op::RemoveTableNames,
        Op::Seq {
            ops: vec![nf(
                Family::V4,
                Table::Mangle,
                NfCmd::DeleteChain { chain: chain() },
            )],
        },
    ] {
        assert_eq!(restore_line(&other), None, "{other:?}");
    }
    // Words iptables-restore would split or unquote run on their own.
    let quoted = nf(
        Family::V4,
        Table::Mangle,
        NfCmd::Delete {
            chain: "DSCPROUTE-X".into(),
            rule: read_rule(Table::Mangle, "DSCPROUTE-X", "-m comment --comment \"q\""),
        },
    );
    assert_eq!(restore_line(&quoted), None);
}

#[test]
fn restore_input_is_one_table_block() {
    let key = BatchKey {
        family: Family::V4,
        table: Table::Nat,
    };
    assert_eq!(
        restore_input(&key, &["-N A".into(), "-A A -j RETURN".into()]),
        "*nat\n-N A\n-A A -j RETURN\nCOMMIT\n"
    );
}

/// What iptables-save shows is typed only when it is exactly a rule of
/// ours in its place; anything else keeps its text and says why.
#[test]
fn rules_read_back_from_the_host() {
    assert_eq!(
        read_rule(
            Table::Mangle,
            "DSCPROUTE-ROUTE",
            "-m mark --mark 0x1/0xff -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff"
        ),
        ours(OurRule::SaveMark { mark: MARK })
    );
    assert_eq!(
        read_rule(
            Table::Nat,
            "POSTROUTING",
            "-o wg0 -m comment --comment dscproute -j DSCPROUTE-NAT"
        ),
        ChainRule::Jump {
            out: Some("wg0".into()),
            target: "DSCPROUTE-NAT".into()
        }
    );
    for (table, chain, text, why) in [
        (
            Table::Mangle,
            "DSCPROUTE-ROUTE",
            "-j TEE --gateway 192.0.2.1",
            "not a rule dscproute writes",
        ),
        (
            Table::Mangle,
            "DSCPROUTE-ROUTE",
            "-m mark --mark 0x01/0xff -j CONNMARK --save-mark --nfmask 0xff --ctmask 0xff",
            "not spelled",
        ),
        (
            Table::Mangle,
            "DSCPROUTE-ROUTE",
            "-m mark --mark 0x1/0xff -j MASQUERADE",
            "in mangle",
        ),
        (
            Table::Mangle,
            "PREROUTING",
            "-s 10.0.0.1/32 -m comment --comment dscproute -j DSCPROUTE-ROUTE",
            "only its tagged jump",
        ),
        (
            Table::Mangle,
            "OTHER",
            "-m comment --comment dscproute -j DSCPROUTE-ROUTE",
            "chain OTHER is neither",
        ),
    ] {
        match read_rule(table, chain, text) {
            ChainRule::Foreign { text: t, why: w } => {
                assert_eq!(t, text);
                assert!(w.contains(why), "{text}: {w}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}

#[test]
fn extensions_of_a_rule() {
    let op = nf(
        Family::V4,
        Table::Mangle,
        NfCmd::Append {
            chain: "DSCPROUTE-ROUTE".into(),
            rule: ours(OurRule::DscpMark {
                not_in: "wg0".into(),
                dscp: 7,
                mark: MARK,
            }),
        },
    );
    assert_eq!(
        extensions(&op),
        [("dscp".to_string(), false), ("MARK".to_string(), true)]
    );
    let jump = nf(
        Family::V4,
        Table::Mangle,
        NfCmd::Insert {
            chain: "OUTPUT".into(),
            at: None,
            rule: ChainRule::Jump {
                out: None,
                target: "DSCPROUTE-MARK".into(),
            },
        },
    );
    assert_eq!(extensions(&jump), [("comment".to_string(), false)]);
}

/// The user and cgroup markers' rules: argv bare, iptables-save's quoting
/// of a path with '/' or '.' read back as the same rule, and nothing else.
#[test]
fn user_and_cgroup_rules_round_trip_through_save_text_and_argv() {
    let user = OurRule::UserConnmark {
        uid: "1001".into(),
        mark: MARK,
    };
    let unit = OurRule::CgroupConnmark {
        path: "system.slice/app.service".into(),
        id: Some(4026),
        mark: MARK,
    };
    let plain = OurRule::CgroupConnmark {
        path: "dscproute-test-1".into(),
        id: None,
        mark: MARK,
    };
    assert_eq!(
        rule_text(&ours(user.clone())),
        "-m owner --uid-owner 1001 -j CONNMARK --set-xmark 0x1/0xff"
    );
    // As iptables-save v1.8 prints them (seen on this build host).
    assert_eq!(
        rule_text(&ours(unit.clone())),
        "-m cgroup --path \"system.slice/app.service\" -m comment --comment \
         dscproute-cgroup-4026 -j CONNMARK --set-xmark 0x1/0xff"
    );
    assert_eq!(
        rule_text(&ours(plain.clone())),
        "-m cgroup --path dscproute-test-1 -j CONNMARK --set-xmark 0x1/0xff"
    );
    for r in [&user, &unit, &plain] {
        let text = rule_text(&ours(r.clone()));
        assert_eq!(
            read_rule(Table::Mangle, "DSCPROUTE-MARK", &text),
            ours(r.clone())
        );
        // The argv form runs without quotes and parses back to the same operation.
        let op = nf(
            Family::V4,
            Table::Mangle,
            NfCmd::Append {
                chain: "DSCPROUTE-MARK".into(),
                rule: ours(r.clone()),
            },
        );
        let effect = op.effect();
        assert!(!effect.display().contains('"'), "{}", effect.display());
        assert_eq!(Op::parse(&effect), Ok(op));
    }
    for text in [
        // Not the way iptables-save spells it: quotes where none are needed, or none where they are.
        "-m cgroup --path \"dscproute-test-1\" -j CONNMARK --set-xmark 0x1/0xff",
        "-m cgroup --path system.slice/app.service -j CONNMARK --set-xmark 0x1/0xff",
        // A comment that is not our id.
        "-m cgroup --path x -m comment --comment dscproute-cgroup-x -j CONNMARK --set-xmark 0x1/0xff",
        "-m cgroup --path x -m comment --comment other -j CONNMARK --set-xmark 0x1/0xff",
        // Paths and users dscproute never writes.
        "-m cgroup --path \"a/../b\" -j CONNMARK --set-xmark 0x1/0xff",
        "-m cgroup --path \"/a\" -j CONNMARK --set-xmark 0x1/0xff",
        "-m owner --uid-owner 4294967295 -j CONNMARK --set-xmark 0x1/0xff",
        "-m owner --uid-owner 1-2 -j CONNMARK --set-xmark 0x1/0xff",
    ] {
        assert!(
            matches!(
                read_rule(Table::Mangle, "DSCPROUTE-MARK", text),
                ChainRule::Foreign { .. }
            ),
            "{text}"
        );
    }
}
