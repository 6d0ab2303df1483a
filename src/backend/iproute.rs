//! Policy rules and routes as iproute2 argv, and back. Everything we add
//! carries our protocol number, so `rollback --all` finds it again.

use super::Effect;
use super::op::{DefaultRoute, Family, MarkMask, Op, PolicyAction, PolicyRule, clip, digits};
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

/// `pref N fwmark 0xV/0xM lookup …|unreachable`: the rule as a person
/// reads it, without our protocol.
pub fn rule_text(rule: &PolicyRule) -> String {
    rule_words(rule).join(" ")
}

fn rule_words(rule: &PolicyRule) -> Vec<String> {
    let mut v = words(&["pref", &rule.pref.to_string(), "fwmark", &rule.mark.text()]);
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
    let mut v = words(&["ip", flag(family), "route", verb(add), "default"]);
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
            "fwmark",
            mark,
            ref rest @ ..,
        ] => {
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
                    mark: MarkMask::parse(mark)?,
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
