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
        Ok(Op::Iptables {
            family: Family::V6,
            table: Table::Mangle,
            cmd: IptCmd::Insert(
                Chain::Ours("DSCPROUTE-ROUTE".into()),
                Some(2),
                ChainRule::Ours(OurRule::DscpMark {
                    not_in: "wg0.10".into(),
                    dscp: 7,
                    mark: MarkMask {
                        value: 3,
                        mask: 0xff
                    },
                }),
            ),
        })
    );
    assert_eq!(
        Op::parse(&run(
            "iptables -w -t nat -D POSTROUTING -o wg0 -m comment --comment dscproute -j DSCPROUTE-NAT"
        )),
        Ok(Op::Iptables {
            family: Family::V4,
            table: Table::Nat,
            cmd: IptCmd::Delete(
                Chain::Builtin("POSTROUTING"),
                ChainRule::Jump {
                    out: Some("wg0".into()),
                    target: "DSCPROUTE-NAT".into(),
                },
            ),
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
