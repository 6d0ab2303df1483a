//! Undo must put a removed iptables rule back where it was, not at the end
//! of its chain: order is meaning inside our chains (restore the connection
//! mark, mark, then save) and in a built-in chain it decides who sees a
//! packet first. The plan replays its own iptables steps over the chains the
//! host has, and the undo of each removal becomes `-I CHAIN N` at the place
//! the rule had when it was removed. Undo runs newest first, so each undo
//! meets the chain exactly as its step left it.

use super::ruleset::Ruleset;
use super::{Effect, Step, StepState};
use crate::probe::HostFacts;
use std::collections::HashMap;

/// (program, table, chain) -> rule specs in order.
type Chains = HashMap<(String, String, String), Vec<String>>;

/// `iptables -w -t TABLE OP CHAIN SPEC…` split up, as the plan writes it.
fn split(argv: &[String]) -> Option<(&str, &str, &str, &str, &[String])> {
    match argv {
        [tool, w, t, table, op, chain, spec @ ..]
            if (tool == "iptables" || tool == "ip6tables") && w == "-w" && t == "-t" =>
        {
            Some((tool, table, op, chain, spec))
        }
        _ => None,
    }
}

fn host_chains(facts: &HostFacts) -> Chains {
    let mut chains = Chains::new();
    for (tool, save) in [
        ("iptables", &facts.iptables_save),
        ("ip6tables", &facts.ip6tables_save),
    ] {
        let Some(save) = save else { continue };
        let rs = Ruleset::parse(save);
        for (table, chain) in rs.chains() {
            let rules = rs.rules_of(table, chain);
            chains.insert(
                (tool.into(), table.into(), chain.into()),
                rules.into_iter().map(str::to_string).collect(),
            );
        }
    }
    chains
}

/// Rewrite the undo of every pending `-D` whose undo appends the rule again
/// (`-A`) into an insert at the rule's position, unless it was the last rule
/// of its chain (then appending is the same).
pub fn pin_removals(steps: &mut [Step], facts: &HostFacts) {
    let mut chains = host_chains(facts);
    for s in steps.iter_mut().filter(|s| s.state != StepState::InPlace) {
        let Effect::Run { argv } = &s.apply else {
            continue;
        };
        let Some((tool, table, op, chain, spec)) = split(argv) else {
            continue;
        };
        let key = (tool.to_string(), table.to_string(), chain.to_string());
        let text = spec.join(" ");
        match op {
            "-N" => {
                chains.entry(key).or_default();
            }
            "-X" => {
                chains.remove(&key);
            }
            "-F" => chains.entry(key).or_default().clear(),
            "-A" => chains.entry(key).or_default().push(text),
            "-I" => {
                let rules = chains.entry(key).or_default();
                let (at, rest) = match spec.split_first() {
                    Some((n, rest)) if n.bytes().all(|b| b.is_ascii_digit()) => {
                        (n.parse::<usize>().unwrap_or(1), rest.join(" "))
                    }
                    _ => (1, text),
                };
                rules.insert(at.saturating_sub(1).min(rules.len()), rest);
            }
            "-D" => {
                let rules = chains.entry(key).or_default();
                let Some(i) = rules.iter().position(|r| *r == text) else {
                    continue;
                };
                rules.remove(i);
                let mut append = argv.clone();
                append[4] = "-A".into();
                if i < rules.len() && matches!(&s.undo, Effect::Run { argv: u } if *u == append) {
                    let mut insert = argv[..6].to_vec();
                    insert[4] = "-I".into();
                    insert.push((i + 1).to_string());
                    insert.extend(spec.iter().cloned());
                    s.undo = Effect::run(insert);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Role;

    fn run(s: &str) -> Effect {
        Effect::run(s.split(' ').map(str::to_string).collect())
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
