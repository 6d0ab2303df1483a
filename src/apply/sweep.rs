//! `rollback --all`: remove everything dscproute owns, found by its tags
//! (chains named DSCPROUTE-*, jumps tagged with our comment, rules and routes
//! with our iproute2 protocol, our rt_tables drop-in), even with no journal.

use super::executor::{Executor, Failure};
use crate::plan::Effect;
use crate::plan::ownership::{CHAIN_PREFIX, COMMENT, RT_PROTO, RT_TABLES_DROPIN, is_our_proto};
use crate::plan::ruleset::Ruleset;
use crate::probe::HostFacts;

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The removals, in a safe order: unlink jumps, empty and delete chains,
/// then rules, routes and the table name.
pub fn removals(facts: &HostFacts, root_has_dropin: bool) -> Vec<Effect> {
    let mut unlink = Vec::new();
    let mut flush = Vec::new();
    let mut delete = Vec::new();
    let tag = format!("--comment {COMMENT} -j {CHAIN_PREFIX}");
    for (tool, save) in [
        ("iptables", &facts.iptables_save),
        ("ip6tables", &facts.ip6tables_save),
    ] {
        let Some(save) = save else { continue };
        let rs = Ruleset::parse(save);
        for (table, chain, spec) in rs.rules() {
            if !chain.starts_with(CHAIN_PREFIX) && spec.contains(&tag) {
                let mut a = argv(&[tool, "-w", "-t", table, "-D", chain]);
                a.extend(spec.split_whitespace().map(str::to_string));
                unlink.push(Effect::run(a));
            }
        }
        for (table, chain) in rs.chains() {
            if chain.starts_with(CHAIN_PREFIX) {
                flush.push(Effect::run(argv(&[tool, "-w", "-t", table, "-F", chain])));
                delete.push(Effect::run(argv(&[tool, "-w", "-t", table, "-X", chain])));
            }
        }
    }
    let mut out = unlink;
    out.append(&mut flush);
    out.append(&mut delete);
    let proto = RT_PROTO.to_string();
    for (flag, rules) in [("-4", &facts.rules_v4), ("-6", &facts.rules_v6)] {
        for r in rules.iter().filter(|r| is_our_proto(r.protocol.as_deref())) {
            out.push(Effect::run(argv(&[
                "ip",
                flag,
                "rule",
                "del",
                "pref",
                &r.priority.to_string(),
                "proto",
                &proto,
            ])));
        }
    }
    for (flag, routes) in [("-4", &facts.routes_v4), ("-6", &facts.routes_v6)] {
        if routes.iter().any(|r| is_our_proto(r.protocol.as_deref())) {
            // `flush … proto N` removes only routes carrying our protocol.
            out.push(Effect::run(argv(&[
                "ip", flag, "route", "flush", "table", "all", "proto", &proto,
            ])));
        }
    }
    if root_has_dropin {
        out.push(Effect::RemoveFile {
            path: RT_TABLES_DROPIN.into(),
        });
    }
    out
}

/// Run the removals; failures are collected, the sweep goes on.
pub fn run(ex: &Executor, effects: &[Effect]) -> Vec<Failure> {
    effects.iter().filter_map(|e| ex.run(e).err()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Route, Rule};

    #[test]
    fn finds_only_what_is_ours() {
        let mut f = HostFacts {
            iptables_save: Some(
                "*mangle\n:PREROUTING ACCEPT [0:0]\n:DSCPROUTE-ROUTE - [0:0]\n:OTHER - [0:0]\n\
                 -A PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE\n\
                 -A PREROUTING -j OTHER\n\
                 -A DSCPROUTE-ROUTE ! -i wg0 -m dscp --dscp 0x07 -j MARK --set-xmark 0x3/0xff\nCOMMIT\n"
                    .into(),
            ),
            ..HostFacts::default()
        };
        f.rules_v4.push(Rule {
            priority: 10000,
            protocol: Some("213".into()),
            ..Rule::default()
        });
        f.rules_v4.push(Rule {
            priority: 5270,
            protocol: None,
            ..Rule::default()
        });
        f.routes_v4.push(Route {
            dst: "default".into(),
            table: "100".into(),
            protocol: Some("213".into()),
            ..Route::default()
        });
        let shown: Vec<String> = removals(&f, true).iter().map(Effect::display).collect();
        assert_eq!(
            shown,
            [
                "iptables -w -t mangle -D PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE",
                "iptables -w -t mangle -F DSCPROUTE-ROUTE",
                "iptables -w -t mangle -X DSCPROUTE-ROUTE",
                "ip -4 rule del pref 10000 proto 213",
                "ip -4 route flush table all proto 213",
                "rm /etc/iproute2/rt_tables.d/dscproute.conf",
            ]
        );
    }
}
