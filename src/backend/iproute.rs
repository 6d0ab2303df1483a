//! Policy rules and routes as iproute2 argv, and back. Everything we add
//! carries our protocol number, so `rollback --all` finds it again.

use super::Effect;
use super::op::{
    DefaultRoute, Family, MarkMask, Op, PolicyAction, PolicyRule, Selector, clip, digits,
};
use crate::ownership::RT_PROTO;
use std::net::IpAddr;

fn words(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn flag(family: Family) -> &'static str {
    match family {
        Family::V4 => "-4",
        Family::V6 => "-6",
    }
}

fn verb(add: bool) -> &'static str {
    if add { "add" } else { "del" }
}

/// `pref N fwmark 0xV/0xM|dscp N lookup …|unreachable`: the rule as a
/// person reads it, without our protocol.
pub fn rule_text(rule: &PolicyRule) -> String {
    rule_words(rule).join(" ")
}

fn rule_words(rule: &PolicyRule) -> Vec<String> {
    let mut v = words(&["pref", &rule.pref.to_string()]);
    match rule.selector {
        Selector::Mark(m) => v.extend(words(&["fwmark", &m.text()])),
        // Decimal: iproute2 reads a bare dscp number as decimal (6-bit).
        Selector::Dscp(d) => v.extend(words(&["dscp", &d.to_string()])),
    }
    match rule.action {
        PolicyAction::LookupMain => {
            v.extend(words(&["lookup", "main", "suppress_prefixlength", "0"]))
        }
        PolicyAction::Lookup(t) => v.extend(words(&["lookup", &t.to_string()])),
        PolicyAction::Unreachable => v.push("unreachable".into()),
    }
    v
}

pub fn rule_argv(family: Family, add: bool, rule: &PolicyRule) -> Vec<String> {
    let mut v = words(&["ip", flag(family), "rule", verb(add)]);
    v.extend(rule_words(rule));
    v.extend(words(&["proto", &RT_PROTO.to_string()]));
    v
}

pub fn route_argv(family: Family, add: bool, route: &DefaultRoute) -> Vec<String> {
    default_route_argv(family, verb(add), route)
}

/// `ip route replace`: one netlink message swaps the route in place.
pub fn replace_argv(family: Family, route: &DefaultRoute) -> Vec<String> {
    default_route_argv(family, "replace", route)
}

fn default_route_argv(family: Family, verb: &str, route: &DefaultRoute) -> Vec<String> {
    let mut v = words(&["ip", flag(family), "route", verb, "default"]);
    if let Some(via) = route.via {
        v.extend(words(&["via", &via.to_string()]));
    }
    v.extend(words(&[
        "dev",
        &route.dev,
        "table",
        &route.table.to_string(),
        "proto",
        &RT_PROTO.to_string(),
    ]));
    v
}

/// Every policy rule of ours at `pref`, whatever it says (`rollback --all`).
pub fn delete_rules_at(family: Family, pref: u32) -> Effect {
    Effect::run(words(&[
        "ip",
        flag(family),
        "rule",
        "del",
        "pref",
        &pref.to_string(),
        "proto",
        &RT_PROTO.to_string(),
    ]))
}

/// Every route of ours, in every table (`rollback --all`).
pub fn flush_our_routes(family: Family) -> Effect {
    Effect::run(words(&[
        "ip",
        flag(family),
        "route",
        "flush",
        "table",
        "all",
        "proto",
        &RT_PROTO.to_string(),
    ]))
}

fn parse_verb(s: &str) -> Result<bool, String> {
    match s {
        "add" => Ok(true),
        "del" => Ok(false),
        other => Err(format!("{} is not add or del", clip(other))),
    }
}

fn parse_family(s: &str) -> Result<Family, String> {
    match s {
        "-4" => Ok(Family::V4),
        "-6" => Ok(Family::V6),
        other => Err(format!("{} is not -4 or -6", clip(other))),
    }
}

fn table_number(s: &str) -> Result<u32, String> {
    digits(s).ok_or_else(|| format!("table {} is not a table number of ours", clip(s)))
}

/// `ip -4|-6 rule|route …` as an operation.
pub fn parse_argv(w: &[&str]) -> Result<Op, String> {
    let proto = RT_PROTO.to_string();
    match *w {
        [
            "ip",
            fam,
            "rule",
            v,
            "pref",
            pref,
            sel @ ("fwmark" | "dscp"),
            value,
            ref rest @ ..,
        ] => {
            let selector = match sel {
                "fwmark" => Selector::Mark(MarkMask::parse(value)?),
                _ => Selector::Dscp(
                    digits(value)
                        .and_then(|d| u8::try_from(d).ok())
                        .ok_or_else(|| format!("dscp {} is not a DSCP 0–63", clip(value)))?,
                ),
            };
            let family = parse_family(fam)?;
            let add = parse_verb(v)?;
            let action = match rest {
                ["lookup", "main", "suppress_prefixlength", "0", "proto", p] if *p == proto => {
                    PolicyAction::LookupMain
                }
                ["lookup", t, "proto", p] if *p == proto => PolicyAction::Lookup(table_number(t)?),
                ["unreachable", "proto", p] if *p == proto => PolicyAction::Unreachable,
                _ => {
                    return Err(format!(
                        "not a policy rule dscproute writes (lookup main with \
                         suppress_prefixlength 0, lookup of a table number, or unreachable, \
                         with proto {RT_PROTO})"
                    ));
                }
            };
            Ok(Op::PolicyRule {
                family,
                add,
                rule: PolicyRule {
                    pref: digits(pref)
                        .ok_or_else(|| format!("priority {} is out of range", clip(pref)))?,
                    selector,
                    action,
                },
            })
        }
        ["ip", fam, "route", v, "default", ref rest @ ..] => {
            let family = parse_family(fam)?;
            let add = parse_verb(v)?;
            let (via, rest) = match rest {
                ["via", addr, rest @ ..] => {
                    let a = addr.parse::<IpAddr>().map_err(|_| {
                        format!("{} is not an {} address", clip(addr), family.name())
                    })?;
                    (Some(a), rest)
                }
                rest => (None, rest),
            };
            match rest {
                ["dev", dev, "table", t, "proto", p] if *p == proto => Ok(Op::Route {
                    family,
                    add,
                    route: DefaultRoute {
                        via,
                        dev: dev.to_string(),
                        table: table_number(t)?,
                    },
                }),
                _ => Err(format!(
                    "not a route dscproute writes (default [via ADDR] dev IF table N proto \
                     {RT_PROTO})"
                )),
            }
        }
        _ => Err("ip is not a command dscproute runs in this form".into()),
    }
}

// ------------------------------------------------------------ batches

/// A word `ip -batch` reads back as one argument: no quoting, no comment.
fn plain_word(a: &str) -> bool {
    !a.is_empty()
        && !a
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '#'))
}

/// A policy rule or route -> its family and its `ip -batch` line: the argv
/// without `ip` and the family flag, which iproute2 (6.1) takes only once,
/// on the command line (`-4` in a line is "Object unknown"). Anything else
/// (other operations, words that would need quoting) runs on its own.
pub fn batch_line(op: &Op) -> Option<(Family, String)> {
    let (family, argv) = match op {
        Op::PolicyRule { family, add, rule } => (*family, rule_argv(*family, *add, rule)),
        Op::Route { family, add, route } => (*family, route_argv(*family, *add, route)),
        _ => return None,
    };
    let rest = &argv[2..];
    rest.iter()
        .all(|w| plain_word(w))
        .then(|| (family, rest.join(" ")))
}

/// `ip -4|-6 -batch -`; with `force`, ip goes on past a failing line (for
/// undo: every line that can be undone is).
pub fn batch_argv(family: Family, force: bool) -> Vec<String> {
    let mut v = words(&["ip", flag(family)]);
    if force {
        v.push("-force".into());
    }
    v.extend(words(&["-batch", "-"]));
    v
}

/// The stdin of a batch: one command a line.
pub fn batch_input(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// The lines (0-based) `ip -batch -` reported as failed: `Command failed
/// -:N`, one for each (without -force, ip stops at the first).
pub fn failed_lines(stderr: &str) -> Vec<usize> {
    stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Command failed -:"))
        .filter_map(|n| n.trim().parse::<usize>().ok())
        .filter_map(|n| n.checked_sub(1))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Effect, SysctlKey};

    fn op(cmd: &str) -> Op {
        let argv = cmd.split(' ').map(str::to_string).collect();
        Op::parse(&Effect::run(argv)).unwrap()
    }

    #[test]
    fn a_batch_line_is_the_argv_without_ip_and_the_family() {
        let rule = op("ip -6 rule add pref 10000 fwmark 0x1/0xff lookup 100 proto 213");
        assert_eq!(
            batch_line(&rule),
            Some((
                Family::V6,
                "rule add pref 10000 fwmark 0x1/0xff lookup 100 proto 213".into()
            ))
        );
        let route = op("ip -4 route del default via 10.8.0.1 dev wg0 table 100 proto 213");
        assert_eq!(
            batch_line(&route),
            Some((
                Family::V4,
                "route del default via 10.8.0.1 dev wg0 table 100 proto 213".into()
            ))
        );
        let sysctl = Op::Sysctl {
            key: SysctlKey::Ipv4Forwarding,
            value: 1,
        };
        assert_eq!(batch_line(&sysctl), None);
        // `#` starts a comment in a batch line: such a device runs alone.
        let hash = Op::Route {
            family: Family::V4,
            add: true,
            route: DefaultRoute {
                via: None,
                dev: "wg#1".into(),
                table: 100,
            },
        };
        assert_eq!(batch_line(&hash), None);
    }

    #[test]
    fn a_dscp_rule_renders_parses_and_batches() {
        let rule = PolicyRule {
            pref: 10001,
            selector: Selector::Dscp(7),
            action: PolicyAction::Unreachable,
        };
        let argv = rule_argv(Family::V6, true, &rule);
        assert_eq!(
            argv.join(" "),
            "ip -6 rule add pref 10001 dscp 7 unreachable proto 213"
        );
        let words: Vec<&str> = argv.iter().map(String::as_str).collect();
        let op = parse_argv(&words).unwrap();
        assert_eq!(
            op,
            Op::PolicyRule {
                family: Family::V6,
                add: true,
                rule
            }
        );
        assert_eq!(
            batch_line(&op),
            Some((
                Family::V6,
                "rule add pref 10001 dscp 7 unreachable proto 213".into()
            ))
        );
        assert_eq!(rule_text(&rule), "pref 10001 dscp 7 unreachable");
        // Out of range, or not decimal: not a rule dscproute writes.
        for bad in ["64", "0x07", "ef", ""] {
            let cmd = [
                "ip",
                "-4",
                "rule",
                "add",
                "pref",
                "1",
                "dscp",
                bad,
                "unreachable",
                "proto",
                "213",
            ];
            let parsed = parse_argv(&cmd).and_then(|op| op.check().map(|()| op));
            assert!(parsed.is_err(), "{bad}: {parsed:?}");
        }
    }

    #[test]
    fn batch_command_and_input() {
        assert_eq!(batch_argv(Family::V4, false), ["ip", "-4", "-batch", "-"]);
        assert_eq!(
            batch_argv(Family::V6, true),
            ["ip", "-6", "-force", "-batch", "-"]
        );
        assert_eq!(batch_input(&["a b".into(), "c".into()]), "a b\nc\n");
    }

    #[test]
    fn failed_lines_are_read_from_ip_messages() {
        let one = "RTNETLINK answers: File exists\nCommand failed -:2\n";
        assert_eq!(failed_lines(one), [1]);
        let forced = "RTNETLINK answers: No such file or directory\nCommand failed -:1\n\
                      RTNETLINK answers: No such file or directory\nCommand failed -:3\n";
        assert_eq!(failed_lines(forced), [0, 2]);
        assert!(failed_lines("Cannot open netlink socket").is_empty());
    }
}
