//! Undo must put a removed iptables rule back where it was, not at the end
//! of its chain: order is meaning inside our chains (restore the connection
//! mark, mark, then save) and in a built-in chain it decides who sees a
//! packet first. The plan replays its own iptables steps over the chains the
//! host has, and the undo of each removal becomes `-I CHAIN N` at the place
//! the rule had when it was removed. Undo runs newest first, so each undo
//! meets the chain exactly as its step left it.

use super::ruleset::Ruleset;
use super::{Step, StepState};
use crate::backend::iptables::rule_text;
use crate::backend::{Family, NfCmd, Op};
use crate::probe::HostFacts;
use std::collections::HashMap;

/// (family, table, chain) -> rule texts in order.
type Chains = HashMap<(Family, String, String), Vec<String>>;

fn host_chains(facts: &HostFacts) -> Chains {
    let mut chains = Chains::new();
    for (family, save) in [
        (Family::V4, &facts.iptables_save),
        (Family::V6, &facts.ip6tables_save),
    ] {
        let Some(save) = save else { continue };
        let rs = Ruleset::parse(save);
        for (table, chain) in rs.chains() {
            let rules = rs.rules_of(table, chain);
            chains.insert(
                (family, table.into(), chain.into()),
                rules.into_iter().map(str::to_string).collect(),
            );
        }
    }
    chains
}

/// Rewrite the undo of every pending rule removal whose undo appends the
/// rule again into an insert at the rule's position, unless it was the last
/// rule of its chain (then appending is the same).
pub fn pin_removals(steps: &mut [Step], facts: &HostFacts) {
    let mut chains = host_chains(facts);
    for s in steps.iter_mut().filter(|s| s.state != StepState::InPlace) {
        let Op::Netfilter { family, table, cmd } = &s.apply else {
            continue;
        };
        let key = (*family, table.name().to_string(), cmd.chain().to_string());
        match cmd {
            NfCmd::NewChain { .. } => {
                chains.entry(key).or_default();
            }
            NfCmd::DeleteChain { .. } => {
                chains.remove(&key);
            }
            NfCmd::FlushChain { .. } => chains.entry(key).or_default().clear(),
            NfCmd::Append { rule, .. } => chains.entry(key).or_default().push(rule_text(rule)),
            NfCmd::Insert { at, rule, .. } => {
                let rules = chains.entry(key).or_default();
                let at = at.map_or(1, |n| n as usize);
                rules.insert(at.saturating_sub(1).min(rules.len()), rule_text(rule));
            }
            NfCmd::Delete { chain, rule } => {
                let rules = chains.entry(key).or_default();
                let text = rule_text(rule);
                let Some(i) = rules.iter().position(|r| *r == text) else {
                    continue;
                };
                rules.remove(i);
                let append = Op::Netfilter {
                    family: *family,
                    table: *table,
                    cmd: NfCmd::Append {
                        chain: chain.clone(),
                        rule: rule.clone(),
                    },
                };
                if i < rules.len() && s.undo == append {
                    s.undo = Op::Netfilter {
                        family: *family,
                        table: *table,
                        cmd: NfCmd::Insert {
                            chain: chain.clone(),
                            at: Some(i as u32 + 1),
                            rule: rule.clone(),
                        },
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::iptables::read_rule;
    use crate::backend::{ChainRule, Table};
    use crate::plan::Role;

    /// `iptables -w -t mangle OP CHAIN RULE…`; the rules are not ours, only
    /// their places matter.
    fn run(s: &str) -> Op {
        let s = s.strip_prefix("iptables -w -t mangle ").unwrap_or(s);
        let (op, rest) = s.split_once(' ').unwrap_or((s, "X"));
        let (chain, text) = rest.split_once(' ').unwrap_or((rest, ""));
        let rule = || match read_rule(Table::Mangle, chain, text) {
            r @ ChainRule::Foreign { .. } => r,
            other => panic!("{other:?}"),
        };
        let chain = chain.to_string();
        let cmd = match op {
            "-A" => NfCmd::Append {
                chain,
                rule: rule(),
            },
            "-I" => NfCmd::Insert {
                chain,
                at: None,
                rule: rule(),
            },
            "-D" => NfCmd::Delete {
                chain,
                rule: rule(),
            },
            _ => NfCmd::NewChain { chain },
        };
        Op::Netfilter {
            family: Family::V4,
            table: Table::Mangle,
            cmd,
        }
    }

    fn step(state: StepState, apply: &str, undo: &str) -> Step {
        Step {
            role: Role::Gateway,
            state,
            apply: run(apply),
            undo: run(undo),
            reason: String::new(),
            change: None,
        }
    }

    const SAVE: &str = "*mangle\n:PREROUTING ACCEPT [0:0]\n:DSCPROUTE-ROUTE - [0:0]\n\
        -A PREROUTING -j OTHER\n\
        -A DSCPROUTE-ROUTE -j A\n-A DSCPROUTE-ROUTE -j B\n-A DSCPROUTE-ROUTE -j C\nCOMMIT\n";

    /// The mark changed: the new rules are appended, then the old B and C
    /// removed; their undo must put them back between A and the new rules.
    #[test]
    fn removals_undo_to_their_place_and_the_last_one_appends() {
        let facts = HostFacts {
            iptables_save: Some(SAVE.into()),
            ..HostFacts::default()
        };
        let t = "iptables -w -t mangle";
        let mut steps = vec![
            step(
                StepState::InPlace,
                &format!("{t} -A DSCPROUTE-ROUTE -j A"),
                "x",
            ),
            step(
                StepState::Add,
                &format!("{t} -A DSCPROUTE-ROUTE -j N"),
                &format!("{t} -D DSCPROUTE-ROUTE -j N"),
            ),
            step(
                StepState::Add,
                &format!("{t} -I PREROUTING -j J"),
                &format!("{t} -D PREROUTING -j J"),
            ),
            step(
                StepState::Change,
                &format!("{t} -D DSCPROUTE-ROUTE -j B"),
                &format!("{t} -A DSCPROUTE-ROUTE -j B"),
            ),
            step(
                StepState::Change,
                &format!("{t} -D DSCPROUTE-ROUTE -j C"),
                &format!("{t} -A DSCPROUTE-ROUTE -j C"),
            ),
            step(
                StepState::Change,
                &format!("{t} -D PREROUTING -j OTHER"),
                &format!("{t} -A PREROUTING -j OTHER"),
            ),
        ];
        pin_removals(&mut steps, &facts);
        let undo: Vec<String> = steps[3..].iter().map(|s| s.undo.display()).collect();
        assert_eq!(
            undo,
            [
                // [A, B, C, N] when B goes: B was second.
                format!("{t} -I DSCPROUTE-ROUTE 2 -j B"),
                // [A, C, N] when C goes: C was second too.
                format!("{t} -I DSCPROUTE-ROUTE 2 -j C"),
                // [J, OTHER]: the last rule is appended again.
                format!("{t} -A PREROUTING -j OTHER"),
            ]
        );
    }
}
