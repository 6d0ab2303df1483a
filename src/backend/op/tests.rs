use super::*;

fn run(s: &str) -> Effect {
    Effect::run(s.split(' ').map(str::to_string).collect())
}

#[test]
fn typed_view_of_planned_commands() {
    assert_eq!(
        Op::parse(&run(
            "ip6tables -w -t mangle -I DSCPROUTE-ROUTE 2 ! -i wg0.10 -m dscp --dscp 0x07 -j MARK \
             --set-xmark 0x3/0xff"
        )),
        Ok(Op::Netfilter {
            family: Family::V6,
            table: Table::Mangle,
            cmd: NfCmd::Insert {
                chain: "DSCPROUTE-ROUTE".into(),
                at: Some(2),
                rule: ChainRule::Ours(OurRule::DscpMark {
                    not_in: "wg0.10".into(),
                    dscp: 7,
                    mark: MarkMask {
                        value: 3,
                        mask: 0xff
                    },
                }),
            },
        })
    );
    assert_eq!(
        Op::parse(&run(
            "iptables -w -t nat -D POSTROUTING -o wg0 -m comment --comment dscproute -j DSCPROUTE-NAT"
        )),
        Ok(Op::Netfilter {
            family: Family::V4,
            table: Table::Nat,
            cmd: NfCmd::Delete {
                chain: "POSTROUTING".into(),
                rule: ChainRule::Jump {
                    out: Some("wg0".into()),
                    target: "DSCPROUTE-NAT".into(),
                },
            },
        })
    );
    assert_eq!(
        Op::parse(&run("sysctl -q -w net.ipv4.conf.eth0/10.rp_filter=2")),
        Ok(Op::Sysctl {
            key: SysctlKey::RpFilter("eth0.10".into()),
            value: 2,
        })
    );
    assert_eq!(
        Op::parse(&run("ip -6 route del default dev wg0 table 100 proto 213")),
        Ok(Op::Route {
            family: Family::V6,
            add: false,
            route: DefaultRoute {
                via: None,
                dev: "wg0".into(),
                table: 100,
            },
        })
    );
}

/// Parsing is exact: a command iptables would take as the same, but
/// spelled otherwise than the planner does, is still refused.
#[test]
fn only_the_planner_spelling_passes() {
    for (text, why) in [
        (
            "iptables -w -t mangle -A DSCPROUTE-ROUTE -j CONNMARK --restore-mark --nfmask 0xFF --ctmask 0xFF",
            "spelled",
        ),
        (
            "ip -4 rule add pref 010000 fwmark 0x1/0xff lookup 100 proto 213",
            "spelled",
        ),
        (
            "ip -6 route add default via FD00::1 dev wg0 table 100 proto 213",
            "spelled",
        ),
        (
            "iptables -w -t mangle -A DSCPROUTE-ROUTE -m dscp --dscp 0x40 -j DSCP --set-dscp 0x00",
            "DSCP",
        ),
        (
            "iptables -w -t mangle -I DSCPROUTE-ROUTE 0 -m dscp --dscp 0x07 -j DSCP --set-dscp 0x00",
            "rule position",
        ),
        (
            "ip -4 rule add pref 10000 fwmark 0x1/0xff lookup 100",
            "not a policy rule",
        ),
        (
            "ip -4 rule add pref 10000 fwmark 0x1/0xff lookup 100 suppress_prefixlength 0 proto 213",
            "not a policy rule",
        ),
    ] {
        let e = Op::parse(&run(text)).expect_err(text);
        assert!(e.contains(why), "{text}: {e}");
    }
}

#[test]
fn untrusted_text_is_clipped_to_one_short_line() {
    let long = format!("a\nb{}", "x".repeat(500));
    let c = clip(&long);
    assert_eq!(c.chars().count(), 80);
    assert!(!c.contains('\n') && c.ends_with('…'));
    assert_eq!(clip("short"), "short");
}

/// The typed values are checked as strictly as the commands were: names
/// that are not ours, values out of range and foreign rules are refused,
/// whichever way the operation was made.
#[test]
fn check_refuses_what_dscproute_does_not_write() {
    let nf = |table, cmd| Op::Netfilter {
        family: Family::V4,
        table,
        cmd,
    };
    let mark = MarkMask {
        value: 1,
        mask: 0xff,
    };
    for (op, why) in [
        (
            nf(
                Table::Mangle,
                NfCmd::DeleteChain {
                    chain: "DSCPROUTE-../x".into(),
                },
            ),
            "not one of ours",
        ),
        (
            nf(
                Table::Mangle,
                NfCmd::Append {
                    chain: "DSCPROUTE-ROUTE".into(),
                    rule: ChainRule::Ours(OurRule::Masquerade { mark }),
                },
            ),
            "in mangle",
        ),
        (
            nf(
                Table::Mangle,
                NfCmd::Append {
                    chain: "DSCPROUTE-ROUTE".into(),
                    rule: ChainRule::Ours(OurRule::ScrubDscp { dscp: 64 }),
                },
            ),
            "DSCP",
        ),
        (
            nf(
                Table::Mangle,
                NfCmd::Insert {
                    chain: "OUTPUT".into(),
                    at: None,
                    rule: ChainRule::Ours(OurRule::ScrubDscp { dscp: 7 }),
                },
            ),
            "only its tagged jump",
        ),
        (
            nf(
                Table::Mangle,
                NfCmd::Delete {
                    chain: "DSCPROUTE-ROUTE".into(),
                    rule: ChainRule::Foreign {
                        text: "-j TEE --gateway 192.0.2.1".into(),
                        why: "not a rule dscproute writes".into(),
                    },
                },
            ),
            "not a rule dscproute writes",
        ),
        (
            Op::PolicyRule {
                family: Family::V4,
                add: true,
                rule: PolicyRule {
                    pref: 1,
                    selector: Selector::Mark(MarkMask { value: 2, mask: 1 }),
                    action: PolicyAction::Unreachable,
                },
            },
            "not a mark/mask",
        ),
        (
            Op::Route {
                family: Family::V6,
                add: true,
                route: DefaultRoute {
                    via: Some("10.0.0.1".parse().unwrap()),
                    dev: "wg0".into(),
                    table: 100,
                },
            },
            "not an IPv6 address",
        ),
        (
            Op::Sysctl {
                key: SysctlKey::RpFilter("../../x".into()),
                value: 1,
            },
            "not an interface name",
        ),
        (
            Op::Sysctl {
                key: SysctlKey::Ipv4Forwarding,
                value: 2,
            },
            "not a value",
        ),
        (Op::GroupDel { name: "-f".into() }, "not a group name"),
        (
            Op::WriteTableNames {
                id: 100,
                name: "a b".into(),
            },
            "not a table name",
        ),
        (
            Op::WriteTableNames {
                id: 255,
                name: "vpn".into(),
            },
            "table 255",
        ),
        (Op::Seq { ops: vec![] }, "a sequence of"),
    ] {
        let e = op.check().expect_err(why);
        assert!(e.contains(why), "{op:?}: {e} (wanted {why:?})");
    }
}

/// The journal form: tagged, and read back as the same operation.
#[test]
fn operations_round_trip_through_serde() {
    let op = Op::Seq {
        ops: vec![
            Op::Netfilter {
                family: Family::V6,
                table: Table::Nat,
                cmd: NfCmd::DeleteChain {
                    chain: "DSCPROUTE-NAT".into(),
                },
            },
            Op::DropEmptyTable {
                family: Family::V6,
                table: Table::Nat,
            },
        ],
    };
    let json = serde_json::to_value(&op).unwrap();
    assert_eq!(json["op"], "seq");
    assert_eq!(json["ops"][0]["op"], "netfilter");
    assert_eq!(
        json["ops"][0]["cmd"]["delete_chain"]["chain"],
        "DSCPROUTE-NAT"
    );
    assert_eq!(serde_json::from_value::<Op>(json).unwrap(), op);
    // A foreign rule can be shown, never stored.
    let foreign = Op::Netfilter {
        family: Family::V4,
        table: Table::Mangle,
        cmd: NfCmd::Delete {
            chain: "DSCPROUTE-ROUTE".into(),
            rule: ChainRule::Foreign {
                text: "-j ACCEPT".into(),
                why: "not a rule dscproute writes".into(),
            },
        },
    };
    assert!(serde_json::to_string(&foreign).is_err());
    let stored = r#"{"op":"netfilter","family":"v4","table":"mangle","cmd":{"delete":
        {"chain":"DSCPROUTE-ROUTE","rule":{"foreign":{"text":"-j ACCEPT","why":""}}}}}"#;
    assert!(serde_json::from_str::<Op>(stored).is_err());
}

#[test]
fn a_policy_rule_keeps_its_journal_shape_and_checks_the_dscp() {
    // Journals written before the dscp selector carry `"mark": {…}`.
    let old = r#"{"pref":10000,"mark":{"value":3,"mask":255},"action":{"lookup":100}}"#;
    let rule: PolicyRule = serde_json::from_str(old).unwrap();
    assert_eq!(
        rule.selector,
        Selector::Mark(MarkMask {
            value: 3,
            mask: 255
        })
    );
    assert_eq!(serde_json::to_string(&rule).unwrap(), old);
    let dscp = PolicyRule {
        pref: 10001,
        selector: Selector::Dscp(7),
        action: PolicyAction::Unreachable,
    };
    let text = serde_json::to_string(&dscp).unwrap();
    assert_eq!(text, r#"{"pref":10001,"dscp":7,"action":"unreachable"}"#);
    assert_eq!(serde_json::from_str::<PolicyRule>(&text).unwrap(), dscp);
    let op = |d| Op::PolicyRule {
        family: Family::V4,
        add: true,
        rule: PolicyRule {
            selector: Selector::Dscp(d),
            ..dscp
        },
    };
    assert!(op(63).check().is_ok());
    let e = op(64).check().unwrap_err();
    assert!(e.contains("not a DSCP 0x00–0x3f"), "{e}");
}

/// Journals are untrusted: a user or cgroup rule is ours only with a uid
/// (or user name) and a normalized cgroup path of bounded length.
#[test]
fn user_and_cgroup_rules_are_checked() {
    let mark = MarkMask {
        value: 1,
        mask: 0xff,
    };
    let op = |rule: OurRule| Op::Netfilter {
        family: Family::V4,
        table: Table::Mangle,
        cmd: NfCmd::Append {
            chain: "DSCPROUTE-MARK".into(),
            rule: ChainRule::Ours(rule),
        },
    };
    for uid in ["0", "1001", "4294967294", "alice"] {
        assert_eq!(
            op(OurRule::UserConnmark {
                uid: uid.into(),
                mark
            })
            .check(),
            Ok(()),
            "{uid}"
        );
    }
    for uid in ["", "4294967295", "-1", "1 2", "a;b", &"9".repeat(11)] {
        assert!(
            op(OurRule::UserConnmark {
                uid: uid.into(),
                mark
            })
            .check()
            .is_err(),
            "{uid}"
        );
    }
    for path in ["a", "system.slice/app.service", "dscproute-test-1/x@y:z"] {
        assert_eq!(
            op(OurRule::CgroupConnmark {
                id: None,
                path: path.into(),
                mark
            })
            .check(),
            Ok(()),
            "{path}"
        );
    }
    let long = "a/".repeat(600) + "a";
    for path in [
        "", "/", "/a", "a/", "a//b", "..", "a/../b", "./a", "a b", "a\"b", "a\\x2d", &long,
    ] {
        let e = op(OurRule::CgroupConnmark {
            id: None,
            path: path.into(),
            mark,
        })
        .check()
        .unwrap_err();
        assert!(e.len() < 200 && !e.contains('\n'), "{e}");
    }
    // Not in nat: only the masquerade rule lives there.
    let nat = Op::Netfilter {
        family: Family::V4,
        table: Table::Nat,
        cmd: NfCmd::Append {
            chain: "DSCPROUTE-NAT".into(),
            rule: ChainRule::Ours(OurRule::CgroupConnmark {
                id: None,
                path: "a".into(),
                mark,
            }),
        },
    };
    assert!(nat.check().is_err());
}
