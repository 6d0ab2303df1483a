//! Step constructors: each knows its apply operation, its undo and how to
//! tell from the host facts whether it is already in place.

use super::ruleset::Ruleset;
use super::{Role, Step, StepState, ValueChange};
use crate::backend::iptables::{read_rule, rule_text};
use crate::backend::{
    ChainRule, DefaultRoute, Family, MarkMask, NfCmd, Op, OurRule, PolicyAction, PolicyRule,
    Selector, SysctlKey, Table,
};
use crate::ownership::{CHAIN_PREFIX, COMMENT, is_our_proto};
use crate::probe::{HostFacts, IptablesBackend, Route, Rule};
use std::cell::RefCell;
use std::net::IpAddr;

/// Where a jump hooks in: (table, built-in chain, output interface).
#[derive(Clone, Copy, Debug)]
pub struct Hook<'s>(pub Table, pub &'s str, pub Option<&'s str>);

fn nf(family: Family, table: Table, cmd: NfCmd) -> Op {
    Op::Netfilter { family, table, cmd }
}

/// Builds steps against one host's facts, remembering what it generated so
/// leftovers of ours that the profile no longer wants can be found.
pub struct Ctx<'a> {
    facts: &'a HostFacts,
    v4: Option<Ruleset>,
    v6: Option<Ruleset>,
    /// Per family: an IPv4 rule is never the IPv6 one of the same numbers.
    made_rules: RefCell<Vec<(Family, PolicyRule)>>,
    made_routes: RefCell<Vec<(Family, DefaultRoute)>>,
    /// (family, table, chain, rule text) of every iptables rule generated.
    made_ipt: RefCell<Vec<(Family, Table, String, String)>>,
    made_chains: RefCell<Vec<(Family, Table, String)>>,
    /// Chains of ours rebuilt because their rules were out of order.
    flushed: RefCell<Vec<(Family, Table, String)>>,
    /// Leftovers of ours no operation can express: plan errors.
    unwritable: RefCell<Vec<String>>,
}

impl<'a> Ctx<'a> {
    pub fn new(facts: &'a HostFacts) -> Ctx<'a> {
        Ctx {
            facts,
            v4: facts.iptables_save.as_deref().map(Ruleset::parse),
            v6: facts.ip6tables_save.as_deref().map(Ruleset::parse),
            made_rules: RefCell::default(),
            made_routes: RefCell::default(),
            made_ipt: RefCell::default(),
            made_chains: RefCell::default(),
            flushed: RefCell::default(),
            unwritable: RefCell::default(),
        }
    }

    pub fn facts(&self) -> &HostFacts {
        self.facts
    }

    /// What was found that no step can remove (see `stale_steps`).
    pub fn unwritable(&self) -> Vec<String> {
        self.unwritable.borrow().clone()
    }

    fn ruleset(&self, f: Family) -> Option<&Ruleset> {
        match f {
            Family::V4 => self.v4.as_ref(),
            Family::V6 => self.v6.as_ref(),
        }
    }

    fn state(present: Option<bool>) -> StepState {
        if present == Some(true) {
            StepState::InPlace
        } else {
            StepState::Add
        }
    }

    /// Create one of our chains. The first chain in a table that does not
    /// exist yet (iptables-nft creates tables on first use) also removes the
    /// table on undo while it is empty, so rollback leaves iptables-save as it was.
    pub fn chain(&self, role: Role, f: Family, table: Table, chain: &str, reason: String) -> Step {
        let first_in_table = !self
            .made_chains
            .borrow()
            .iter()
            .any(|(mf, mt, _)| *mf == f && *mt == table);
        let entry = (f, table, chain.to_string());
        if !self.made_chains.borrow().contains(&entry) {
            self.made_chains.borrow_mut().push(entry);
        }
        let present = self.ruleset(f).map(|r| r.has_chain(table.name(), chain));
        let new_table = self.ruleset(f).is_some_and(|r| !r.has_table(table.name()))
            && self.facts.iptables_backend == Some(IptablesBackend::NfTables);
        let delete = nf(
            f,
            table,
            NfCmd::DeleteChain {
                chain: chain.into(),
            },
        );
        let (undo, reason) = if first_in_table && new_table {
            (
                Op::Seq {
                    ops: vec![delete, Op::DropEmptyTable { family: f, table }],
                },
                format!(
                    "{reason}; this creates the {} table, which rollback removes again \
                     while nothing else uses it",
                    table.name()
                ),
            )
        } else {
            (delete, reason)
        };
        Step {
            role,
            state: Self::state(present),
            apply: nf(
                f,
                table,
                NfCmd::NewChain {
                    chain: chain.into(),
                },
            ),
            undo,
            reason,
            change: None,
        }
    }

    /// Remember an iptables rule we want, once: classes share some (the
    /// restore rule, jumps on a shared uplink), and the chain order is
    /// checked against this list.
    fn made(&self, f: Family, table: Table, chain: &str, text: String) {
        let entry = (f, table, chain.to_string(), text);
        if !self.made_ipt.borrow().contains(&entry) {
            self.made_ipt.borrow_mut().push(entry);
        }
    }

    /// Append a rule to one of our chains.
    pub fn rule(
        &self,
        role: Role,
        f: Family,
        table: Table,
        chain: &str,
        rule: OurRule,
        reason: String,
    ) -> Step {
        let rule = ChainRule::Ours(rule);
        let text = rule_text(&rule);
        let present = self
            .ruleset(f)
            .map(|r| r.has_rule(table.name(), chain, &text));
        self.made(f, table, chain, text);
        Step {
            role,
            state: Self::state(present),
            apply: nf(
                f,
                table,
                NfCmd::Append {
                    chain: chain.into(),
                    rule: rule.clone(),
                },
            ),
            undo: nf(
                f,
                table,
                NfCmd::Delete {
                    chain: chain.into(),
                    rule,
                },
            ),
            reason,
            change: None,
        }
    }

    /// Link a built-in chain to ours: one tagged jump, inserted first so other
    /// rules cannot accept the packet before we see it.
    pub fn jump(&self, role: Role, f: Family, hook: Hook, target: &str, reason: String) -> Step {
        let Hook(table, builtin, out_if) = hook;
        let rule = ChainRule::Jump {
            out: out_if.map(str::to_string),
            target: target.into(),
        };
        let text = rule_text(&rule);
        let present = self
            .ruleset(f)
            .map(|r| r.has_rule(table.name(), builtin, &text));
        self.made(f, table, builtin, text);
        Step {
            role,
            state: Self::state(present),
            apply: nf(
                f,
                table,
                NfCmd::Insert {
                    chain: builtin.into(),
                    at: None,
                    rule: rule.clone(),
                },
            ),
            undo: nf(
                f,
                table,
                NfCmd::Delete {
                    chain: builtin.into(),
                    rule,
                },
            ),
            reason,
            change: None,
        }
    }

    /// A policy rule of ours.
    pub fn ip_rule(&self, role: Role, f: Family, rule: PolicyRule, reason: String) -> Step {
        let present = self
            .facts_rules(f)
            .iter()
            .any(|r| self.rule_matches(r, &rule));
        self.made_rules.borrow_mut().push((f, rule));
        Step {
            role,
            state: Self::state(Some(present)),
            apply: Op::PolicyRule {
                family: f,
                add: true,
                rule,
            },
            undo: Op::PolicyRule {
                family: f,
                add: false,
                rule,
            },
            reason,
            change: None,
        }
    }

    fn facts_rules(&self, f: Family) -> &[Rule] {
        match f {
            Family::V4 => &self.facts.rules_v4,
            Family::V6 => &self.facts.rules_v6,
        }
    }

    fn facts_routes(&self, f: Family) -> &[Route] {
        match f {
            Family::V4 => &self.facts.routes_v4,
            Family::V6 => &self.facts.routes_v6,
        }
    }

    /// Does the rule `ip rule` printed look up table `id`?
    fn looks_up(&self, r: &Rule, id: u32) -> bool {
        r.action.is_none()
            && r.table
                .as_deref()
                .is_some_and(|t| self.facts.table_id(t) == Some(id))
    }

    fn rule_matches(&self, r: &Rule, rule: &PolicyRule) -> bool {
        let action_ok = match rule.action {
            PolicyAction::LookupMain => self.looks_up(r, 254) && r.suppress_prefixlength == Some(0),
            PolicyAction::Lookup(id) => self.looks_up(r, id) && r.suppress_prefixlength.is_none(),
            PolicyAction::Unreachable => r.action.as_deref() == Some("unreachable"),
        };
        r.priority == rule.pref && !r.not && selects(r, rule.selector) && action_ok
    }

    /// The default route of our table.
    pub fn ip_route(&self, role: Role, f: Family, route: DefaultRoute, reason: String) -> Step {
        let present = self
            .facts_routes(f)
            .iter()
            .any(|r| self.route_matches(r, &route));
        self.made_routes.borrow_mut().push((f, route.clone()));
        Step {
            role,
            state: Self::state(Some(present)),
            apply: Op::Route {
                family: f,
                add: true,
                route: route.clone(),
            },
            undo: Op::Route {
                family: f,
                add: false,
                route,
            },
            reason,
            change: None,
        }
    }

    fn route_matches(&self, r: &Route, route: &DefaultRoute) -> bool {
        r.dst == "default"
            && (r.kind.is_empty() || r.kind == "unicast")
            && self.facts.table_id(&r.table) == Some(route.table)
            && r.gateway.as_deref() == route.via.map(|a| a.to_string()).as_deref()
            && r.dev.as_deref() == Some(route.dev.as_str())
    }

    /// Set a sysctl (in place when it already has the wanted value).
    pub fn sysctl(&self, role: Role, key: SysctlKey, want: u8, reason: String) -> Step {
        let old = self.facts.sysctl(&key.key()).map(str::to_string);
        let (state, undo_value, change) = match &old {
            Some(o) if *o == want.to_string() => (StepState::InPlace, want, None),
            Some(o) => (
                StepState::Change,
                // A value the kernel never shows cannot be put back: the
                // undo then fails `Op::check` and the plan is refused.
                o.parse().unwrap_or(u8::MAX),
                Some(ValueChange {
                    from: o.clone(),
                    to: want.to_string(),
                }),
            ),
            // Unknown here: the executor re-reads the value before it writes.
            None => (
                StepState::Change,
                0,
                Some(ValueChange {
                    from: "unknown".into(),
                    to: want.to_string(),
                }),
            ),
        };
        Step {
            role,
            state,
            apply: Op::Sysctl {
                key: key.clone(),
                value: want,
            },
            undo: Op::Sysctl {
                key,
                value: undo_value,
            },
            reason,
            change,
        }
    }

    /// Our chains must hold their rules in the planned order (restore before
    /// save, tag before DSCP). Appending new rules keeps the order only when
    /// what is there is a prefix of the plan; otherwise the chain is emptied
    /// and refilled in order (undo puts the old rules back, in their order).
    pub fn fix_chain_order(&self, steps: &mut Vec<Step>) {
        let made = self.made_ipt.borrow();
        for (f, table, chain) in self.made_chains.borrow().iter() {
            let Some(rs) = self.ruleset(*f) else { continue };
            let actual = rs.rules_of(table.name(), chain);
            let desired: Vec<&str> = made
                .iter()
                .filter(|(mf, mt, mc, _)| mf == f && mt == table && mc == chain)
                .map(|m| m.3.as_str())
                .collect();
            // Stale rules are deleted and missing ones appended: the order
            // holds if the rules that stay already form a prefix of the plan.
            let kept: Vec<&str> = actual
                .iter()
                .copied()
                .filter(|a| desired.contains(a))
                .collect();
            let prefix = kept.iter().zip(&desired).all(|(a, d)| a == d);
            if actual.is_empty() || prefix {
                continue;
            }
            let create = nf(
                *f,
                *table,
                NfCmd::NewChain {
                    chain: chain.clone(),
                },
            );
            let at = steps
                .iter()
                .position(|s| s.apply == create)
                .map_or(0, |i| i + 1);
            let role = steps
                .get(at.saturating_sub(1))
                .map_or(Role::Gateway, |s| s.role);
            let old: Vec<Op> = actual
                .iter()
                .map(|r| {
                    nf(
                        *f,
                        *table,
                        NfCmd::Append {
                            chain: chain.clone(),
                            rule: read_rule(*table, chain, r),
                        },
                    )
                })
                .collect();
            steps.insert(
                at,
                Step {
                    role,
                    state: StepState::Change,
                    apply: nf(
                        *f,
                        *table,
                        NfCmd::FlushChain {
                            chain: chain.clone(),
                        },
                    ),
                    undo: Op::Seq { ops: old },
                    reason: format!(
                        "{}: {chain} holds rules of an earlier setup in another order: empty it and \
                         add the rules again in order (for that moment new packets pass unmarked)",
                        f.name()
                    ),
                    change: None,
                },
            );
            for s in steps.iter_mut() {
                if let Op::Netfilter {
                    family,
                    table: t,
                    cmd: NfCmd::Append { chain: c, .. },
                } = &s.apply
                    && family == f
                    && t == table
                    && c == chain
                {
                    s.state = StepState::Add;
                }
            }
            self.flushed.borrow_mut().push((*f, *table, chain.clone()));
        }
    }

    /// Steps removing what we created earlier that this profile no longer
    /// wants, so that a changed profile converges instead of piling up.
    pub fn stale_steps(&self, roles: &[Role]) -> Vec<Step> {
        let gateway = roles.contains(&Role::Gateway);
        let role = if gateway { Role::Gateway } else { Role::Marker };
        let in_scope = |chain: &str| {
            chain.starts_with(CHAIN_PREFIX) && (gateway || chain == crate::ownership::CHAIN_MARK)
        };
        let mut jumps = Vec::new();
        let mut rules = Vec::new();
        let mut chains = Vec::new();
        let made_ipt = self.made_ipt.borrow();
        let made_chains = self.made_chains.borrow();
        for f in Family::BOTH {
            let Some(rs) = self.ruleset(f) else { continue };
            for (table_name, chain, spec) in rs.rules() {
                let ours_chain = in_scope(chain);
                let rebuilt = self
                    .flushed
                    .borrow()
                    .iter()
                    .any(|(ff, ft, fc)| *ff == f && ft.name() == table_name && fc == chain);
                if rebuilt {
                    continue; // its old rules go with the flush
                }
                let tag = format!("--comment {COMMENT} -j ");
                let our_jump = spec
                    .split_once(&tag)
                    .is_some_and(|(_, target)| in_scope(target.trim()));
                if !(ours_chain || our_jump) {
                    continue;
                }
                let wanted = made_ipt.iter().any(|(mf, mt, mc, ms)| {
                    *mf == f && mt.name() == table_name && mc == chain && ms == spec
                });
                if wanted {
                    continue;
                }
                let Some(table) = self.our_table(f, table_name, chain) else {
                    continue;
                };
                let rule = read_rule(table, chain, spec);
                let step = Step {
                    role,
                    state: StepState::Change,
                    apply: nf(
                        f,
                        table,
                        NfCmd::Delete {
                            chain: chain.into(),
                            rule: rule.clone(),
                        },
                    ),
                    undo: nf(
                        f,
                        table,
                        NfCmd::Append {
                            chain: chain.into(),
                            rule,
                        },
                    ),
                    reason: format!(
                        "left over from an earlier dscproute setup, not in this profile: remove \
                         it ({} {table_name} {chain})",
                        f.name()
                    ),
                    change: None,
                };
                if our_jump {
                    jumps.push(step)
                } else {
                    rules.push(step)
                }
            }
            for (table_name, chain) in rs.chains() {
                if !in_scope(chain)
                    || made_chains
                        .iter()
                        .any(|(mf, mt, mc)| *mf == f && mt.name() == table_name && mc == chain)
                {
                    continue;
                }
                let Some(table) = self.our_table(f, table_name, chain) else {
                    continue;
                };
                chains.push(Step {
                    role,
                    state: StepState::Change,
                    apply: nf(
                        f,
                        table,
                        NfCmd::DeleteChain {
                            chain: chain.into(),
                        },
                    ),
                    undo: nf(
                        f,
                        table,
                        NfCmd::NewChain {
                            chain: chain.into(),
                        },
                    ),
                    reason: format!(
                        "chain left over from an earlier dscproute setup: delete it ({})",
                        f.name()
                    ),
                    change: None,
                });
            }
        }
        let mut out = jumps;
        out.append(&mut rules);
        out.append(&mut chains);
        if gateway {
            out.extend(self.stale_policy());
        }
        out
    }

    /// The table of a leftover of ours; a chain or jump of ours in a table
    /// dscproute never uses was put there by hand and is not ours to remove.
    fn our_table(&self, f: Family, table: &str, chain: &str) -> Option<Table> {
        let t = Table::parse(table);
        if let Err(why) = &t {
            let problem = format!(
                "{} {table} {chain} holds something tagged as dscproute's, but {why}: remove it \
                 by hand (`dscproute rollback --all` removes everything tagged) and plan again",
                f.name()
            );
            let mut list = self.unwritable.borrow_mut();
            if !list.contains(&problem) {
                list.push(problem);
            }
        }
        t.ok()
    }

    fn stale_policy(&self) -> Vec<Step> {
        let mut out = Vec::new();
        let made_rules = self.made_rules.borrow();
        let made_routes = self.made_routes.borrow();
        for f in Family::BOTH {
            for r in self.facts_rules(f) {
                if !is_our_proto(r.protocol.as_deref())
                    || made_rules
                        .iter()
                        .any(|(mf, m)| *mf == f && self.rule_matches(r, m))
                {
                    continue;
                }
                let Some(rule) = policy_rule_of(self.facts, r) else {
                    // iproute2 < 6.13 lists a `dscp` rule with no selector at
                    // all: it reads as "from all", which is not what it does.
                    if r.fwmark.is_none() && r.dscp.is_none() {
                        self.unwritable.borrow_mut().push(format!(
                            "{} policy rule {} carries dscproute's protocol but this ip shows no \
                             selector on it (a `dscp` rule read by iproute2 older than 6.13?): \
                             remove it with `ip {}rule del pref {} proto {}` or install a newer \
                             iproute2, and plan again",
                            f.name(),
                            r.priority,
                            if f == Family::V6 { "-6 " } else { "" },
                            r.priority,
                            crate::ownership::RT_PROTO
                        ));
                    }
                    continue;
                };
                out.push(Step {
                    role: Role::Gateway,
                    state: StepState::Change,
                    apply: Op::PolicyRule {
                        family: f,
                        add: false,
                        rule,
                    },
                    undo: Op::PolicyRule {
                        family: f,
                        add: true,
                        rule,
                    },
                    reason: "policy rule left over from an earlier dscproute setup: remove it"
                        .into(),
                    change: None,
                });
            }
            for r in self.facts_routes(f) {
                if !is_our_proto(r.protocol.as_deref())
                    || made_routes
                        .iter()
                        .any(|(mf, m)| *mf == f && self.route_matches(r, m))
                {
                    continue;
                }
                let (Some(dev), Some(table)) = (r.dev.clone(), self.facts.table_id(&r.table))
                else {
                    continue;
                };
                let via = match r.gateway.as_deref().map(str::parse::<IpAddr>) {
                    None => None,
                    Some(Ok(a)) => Some(a),
                    Some(Err(_)) => {
                        self.unwritable.borrow_mut().push(format!(
                            "{} route {} in table {} carries dscproute's protocol but its \
                             gateway is not an address: remove it by hand and plan again",
                            f.name(),
                            r.dst,
                            r.table
                        ));
                        continue;
                    }
                };
                let route = DefaultRoute { via, dev, table };
                out.push(Step {
                    role: Role::Gateway,
                    state: StepState::Change,
                    apply: Op::Route {
                        family: f,
                        add: false,
                        route: route.clone(),
                    },
                    undo: Op::Route {
                        family: f,
                        add: true,
                        route,
                    },
                    reason: "route left over from an earlier dscproute setup: remove it".into(),
                    change: None,
                });
            }
        }
        out
    }
}

/// Our rule shape read back from the host, when it is one we could have
/// made. The table goes by number (main aside, which iproute2 always knows):
/// a name may be gone from rt_tables by the time the rule is removed, and
/// `ip rule del … lookup NAME` then fails with "invalid table ID".
fn policy_rule_of(facts: &HostFacts, r: &Rule) -> Option<PolicyRule> {
    let action = match (r.action.as_deref(), &r.table) {
        (Some("unreachable"), _) => PolicyAction::Unreachable,
        (None, Some(t)) => {
            // Only the two lookups we write: main with suppress 0, our table without.
            match (facts.table_id(t)?, r.suppress_prefixlength) {
                (254, Some(0)) => PolicyAction::LookupMain,
                (0 | 253..=255, _) | (_, Some(_)) => return None,
                (id, None) => PolicyAction::Lookup(id),
            }
        }
        _ => return None,
    };
    if !(1..=32765).contains(&r.priority) {
        return None;
    }
    let selector = match (r.fwmark, &r.dscp) {
        (Some(mark), None) => {
            let mask = r.fwmask.unwrap_or(u32::MAX);
            if mask == 0 || mark & !mask != 0 {
                return None;
            }
            Selector::Mark(MarkMask { value: mark, mask })
        }
        (None, Some(_)) => Selector::Dscp(r.dscp_value()?),
        _ => return None,
    };
    Some(PolicyRule {
        pref: r.priority,
        selector,
        action,
    })
}

/// Does the rule `ip rule` printed select exactly what `selector` does
/// (and nothing else: a mark rule with a dscp too is not ours)?
pub fn selects(r: &Rule, selector: Selector) -> bool {
    match selector {
        Selector::Mark(m) => {
            r.dscp.is_none() && r.fwmark == Some(m.value) && r.fwmask.unwrap_or(u32::MAX) == m.mask
        }
        Selector::Dscp(d) => r.fwmark.is_none() && r.dscp_value() == Some(d),
    }
}
