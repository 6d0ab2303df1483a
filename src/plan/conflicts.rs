//! Conflicts with other users of marks, priorities, tables and DSCP values,
//! found before anything runs. Hard conflicts stop the plan; soft ones warn.

use super::choose::{Choices, priority_taken_by};
use super::mark_writers::{Hook, describe, overwrites};
use super::marks::other_mark_uses;
use crate::ownership::is_our_proto;
use crate::probe::HostFacts;
use crate::profile::{Gateway, MatchMode};

pub fn check(
    g: &Gateway,
    c: &Choices,
    also_marker: bool,
    facts: &HostFacts,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) {
    // Rules that overwrite our bits after we set them: errors, and no
    // "shared bits" warning on top for the same rule.
    let mut overwriters = Vec::new();
    // Forwarded packets are marked on prerouting; on a host that is also
    // the client, its own packets on output.
    // `ip rule dscp` puts no mark on the routing path: nothing to collide with.
    let hooks: &[Hook] = match (g.match_mode, also_marker) {
        (MatchMode::DscpRule, _) => &[],
        (MatchMode::Mark, true) => &[Hook::Prerouting, Hook::Output],
        (MatchMode::Mark, false) => &[Hook::Prerouting],
    };
    for hook in hooks {
        let (fatal, restores) = overwrites(facts, *hook, c.mask);
        for w in &fatal {
            overwriters.push((w.rule.clone(), describe(w, *hook, c.mark, c.mask, &fatal)));
        }
        for w in restores {
            warnings.push(format!(
                "{} copies the connection mark over bits {:#x} after dscproute's rule on the {} \
                 hook: harmless while only dscproute writes those connection-mark bits (its \
                 chain saves them first); a rule that set them would take the group off the VPN",
                w.rule,
                w.bits & c.mask,
                hook.name()
            ));
        }
    }
    let mark_uses = match g.match_mode {
        MatchMode::Mark => other_mark_uses(facts),
        MatchMode::DscpRule => Vec::new(),
    };
    for u in mark_uses {
        let overwrites = overwriters
            .iter()
            .any(|(rule, _)| u.what.starts_with(rule.as_str()));
        if u.same_bits(c.mark, c.mask) {
            problems.push(format!(
                "mark {:#x}/{:#x} collides with {}: packets we mark would match it too; \
                 choose another gateway.mark or gateway.mask",
                c.mark, c.mask, u.what
            ));
        } else if u.overlaps(c.mask) && u.mask != u32::MAX && !overwrites {
            warnings.push(format!(
                "mark bits {:#x} are shared with {}: it must never set our value {:#x} there",
                c.mask & u.mask,
                u.what,
                c.mark
            ));
        }
    }
    for pref in c.priority - 1..=c.priority + 1 {
        if let Some(who) = priority_taken_by(facts, pref) {
            problems.push(format!(
                "rule priority {pref} is taken by {who}: dscproute needs {}–{} free; set \
                 gateway.priority to another value",
                c.priority - 1,
                c.priority + 1
            ));
        }
    }
    let foreign: Vec<String> = facts
        .routes_v4
        .iter()
        .chain(&facts.routes_v6)
        .filter(|r| {
            facts.table_id(&r.table) == Some(c.table_id) && !is_our_proto(r.protocol.as_deref())
        })
        .map(|r| {
            format!(
                "{} {}",
                r.dst,
                r.dev
                    .as_deref()
                    .map(|d| format!("dev {d}"))
                    .unwrap_or_default()
            )
        })
        .collect();
    if !foreign.is_empty() {
        problems.push(format!(
            "routing table {} already holds routes dscproute did not make ({}): choose another \
             gateway.table",
            c.table_id,
            foreign.join(", ").trim()
        ));
    }
    if let Some(rule) = super::choose::table_looked_up_by(facts, c.table_id) {
        problems.push(format!(
            "routing table {} is already looked up by {rule}: another setup uses it (its routes \
             may only be missing for now); choose another gateway.table",
            c.table_id
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (rule, problem) in overwriters {
        if seen.insert(rule) {
            problems.push(problem);
        }
    }
    dscp_in_use(g.dscp.value(), facts, warnings);
}

/// Other rules that match or set the same DSCP: they may fight over it.
fn dscp_in_use(dscp: u8, facts: &HostFacts, warnings: &mut Vec<String>) {
    let hex = format!("{dscp:#04x}");
    let byte = format!("{:#04x}", dscp << 2);
    for (tool, table, chain, spec) in super::marks::foreign_iptables_rules(facts) {
        let words: Vec<&str> = spec.split_whitespace().collect();
        let uses = words.windows(2).any(|w| {
            matches!(w[0], "--dscp" | "--set-dscp") && w[1] == hex
                || matches!(w[0], "--tos" | "--set-tos") && w[1].split('/').next() == Some(&byte)
        });
        if uses {
            warnings.push(format!(
                "DSCP {dscp} is already used by another rule: {tool} -t {table} -A {chain} \
                 {spec}"
            ));
        }
    }
    for (fam, rules) in [("", &facts.rules_v4), ("-6 ", &facts.rules_v6)] {
        for r in rules {
            if r.dscp_value() == Some(dscp) && !is_our_proto(r.protocol.as_deref()) {
                warnings.push(format!(
                    "ip {fam}rule {} already selects dscp {dscp}: it sees our packets before or \
                     after our rules, depending on priority",
                    r.priority
                ));
            }
            if r.tos.as_deref().is_some_and(|t| {
                t == byte || t.trim_start_matches("0x") == format!("{:x}", dscp << 2)
            }) {
                warnings.push(format!(
                    "ip {fam}rule {} already selects tos {byte} (DSCP {dscp}): it sees our \
                     packets before or after our rules, depending on priority",
                    r.priority
                ));
            }
        }
    }
}
