//! Step constructors: each knows its apply argv, its undo argv and how to
//! tell from the host facts whether it is already in place.

use super::ownership::{CHAIN_PREFIX, COMMENT, RT_PROTO, is_our_proto};
use super::ruleset::Ruleset;
use super::{Effect, Role, Step, StepState, ValueChange};
use crate::probe::{HostFacts, IptablesBackend, Route, Rule};
use std::cell::RefCell;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    pub fn iptables(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    pub fn ip_flag(self) -> &'static str {
        match self {
            Family::V4 => "-4",
            Family::V6 => "-6",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// Where a jump hooks in: (table, built-in chain, output interface).
#[derive(Clone, Copy, Debug)]
pub struct Hook<'s>(pub &'s str, pub &'s str, pub Option<&'s str>);

/// What a policy rule of ours says (for in-place and stale detection).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    pub family: Family,
    pub pref: u32,
    pub mark: u32,
    pub mask: u32,
    pub action: RuleAction,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleAction {
    /// `lookup TABLE`, optionally with `suppress_prefixlength N`.
    Lookup {
        table: String,
        suppress: Option<u32>,
    },
    Unreachable,
}

/// What a route of ours says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteSpec {
    pub family: Family,
    pub via: Option<String>,
    pub dev: String,
    pub table: u32,
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Builds steps against one host's facts, remembering what it generated so
/// leftovers of ours that the profile no longer wants can be found.
pub struct Ctx<'a> {
    facts: &'a HostFacts,
    v4: Option<Ruleset>,
    v6: Option<Ruleset>,
    made_rules: RefCell<Vec<RuleSpec>>,
    made_routes: RefCell<Vec<RouteSpec>>,
    /// (family, table, chain, spec) of every iptables rule generated.
    made_ipt: RefCell<Vec<(Family, String, String, String)>>,
    made_chains: RefCell<Vec<(Family, String, String)>>,
    /// Chains of ours rebuilt because their rules were out of order.
    flushed: RefCell<Vec<(Family, String, String)>>,
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
        }
    }

    pub fn facts(&self) -> &HostFacts {
        self.facts
    }

    fn ruleset(&self, f: Family) -> Option<&Ruleset> {
        match f {
            Family::V4 => self.v4.as_ref(),
            Family::V6 => self.v6.as_ref(),
        }
    }

    fn ipt(f: Family, table: &str, op: &str, chain: &str, spec: &[String]) -> Vec<String> {
        let mut v = s(&[f.iptables(), "-w", "-t", table, op, chain]);
        v.extend(spec.iter().cloned());
        v
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
    pub fn chain(&self, role: Role, f: Family, table: &str, chain: &str, reason: String) -> Step {
        let first_in_table = !self
            .made_chains
            .borrow()
            .iter()
            .any(|(mf, mt, _)| *mf == f && mt == table);
        self.made_chains
            .borrow_mut()
            .push((f, table.into(), chain.into()));
        let present = self.ruleset(f).map(|r| r.has_chain(table, chain));
        let new_table = self.ruleset(f).is_some_and(|r| !r.has_table(table))
            && self.facts.iptables_backend == Some(IptablesBackend::NfTables);
        let delete = Effect::run(Self::ipt(f, table, "-X", chain, &[]));
        let (undo, reason) = if first_in_table && new_table {
            let family = match f {
                Family::V4 => "ip",
                Family::V6 => "ip6",
            };
            let drop = Effect::DropEmptyTable {
                family: family.into(),
                table: table.into(),
            };
            (
                Effect::Seq {
                    effects: vec![delete, drop],
                },
                format!(
                    "{reason}; this creates the {table} table, which rollback removes again \
                     while nothing else uses it"
                ),
            )
        } else {
            (delete, reason)
        };
        Step {
            role,
            state: Self::state(present),
            apply: Effect::run(Self::ipt(f, table, "-N", chain, &[])),
            undo,
            reason,
            change: None,
        }
    }

    /// Append a rule to one of our chains. `spec` is in iptables-save's canonical form.
    pub fn rule(
        &self,
        role: Role,
        f: Family,
        table: &str,
        chain: &str,
        spec: &[String],
        reason: String,
    ) -> Step {
        let text = spec.join(" ");
        self.made_ipt
            .borrow_mut()
            .push((f, table.into(), chain.into(), text.clone()));
        let present = self.ruleset(f).map(|r| r.has_rule(table, chain, &text));
        Step {
            role,
            state: Self::state(present),
            apply: Effect::run(Self::ipt(f, table, "-A", chain, spec)),
            undo: Effect::run(Self::ipt(f, table, "-D", chain, spec)),
            reason,
            change: None,
        }
    }

    /// Link a built-in chain to ours: one tagged jump, inserted first so other
    /// rules cannot accept the packet before we see it.
    pub fn jump(&self, role: Role, f: Family, hook: Hook, target: &str, reason: String) -> Step {
        let Hook(table, builtin, out_if) = hook;
        let mut spec = Vec::new();
        if let Some(i) = out_if {
            spec.extend(s(&["-o", i]));
        }
        spec.extend(s(&["-m", "comment", "--comment", COMMENT, "-j", target]));
        let text = spec.join(" ");
        self.made_ipt
            .borrow_mut()
            .push((f, table.into(), builtin.into(), text.clone()));
        let present = self.ruleset(f).map(|r| r.has_rule(table, builtin, &text));
        Step {
            role,
            state: Self::state(present),
            apply: Effect::run(Self::ipt(f, table, "-I", builtin, &spec)),
            undo: Effect::run(Self::ipt(f, table, "-D", builtin, &spec)),
            reason,
            change: None,
        }
    }

    fn rule_argv(spec: &RuleSpec, op: &str) -> Vec<String> {
        let mut v = s(&["ip", spec.family.ip_flag(), "rule", op]);
        v.extend([
            "pref".into(),
            spec.pref.to_string(),
            "fwmark".into(),
            format!("{:#x}/{:#x}", spec.mark, spec.mask),
        ]);
        match &spec.action {
            RuleAction::Lookup { table, suppress } => {
                v.extend(["lookup".into(), table.clone()]);
                if let Some(n) = suppress {
                    v.extend(["suppress_prefixlength".into(), n.to_string()]);
                }
            }
            RuleAction::Unreachable => v.push("unreachable".into()),
        }
        v.extend(["proto".into(), RT_PROTO.to_string()]);
        v
    }

    /// A policy rule of ours.
    pub fn ip_rule(&self, role: Role, spec: RuleSpec, reason: String) -> Step {
        let present = self
            .facts_rules(spec.family)
            .iter()
            .any(|r| self.rule_matches(r, &spec));
        let step = Step {
            role,
            state: Self::state(Some(present)),
            apply: Effect::run(Self::rule_argv(&spec, "add")),
            undo: Effect::run(Self::rule_argv(&spec, "del")),
            reason,
            change: None,
        };
        self.made_rules.borrow_mut().push(spec);
        step
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

    fn same_table(&self, printed: &str, wanted: &str) -> bool {
        printed == wanted || self.facts.table_id(printed) == self.facts.table_id(wanted)
    }

    fn rule_matches(&self, r: &Rule, spec: &RuleSpec) -> bool {
        let action_ok = match &spec.action {
            RuleAction::Lookup { table, suppress } => {
                r.action.is_none()
                    && r.table
                        .as_deref()
                        .is_some_and(|t| self.same_table(t, table))
                    && r.suppress_prefixlength == *suppress
            }
            RuleAction::Unreachable => r.action.as_deref() == Some("unreachable"),
        };
        r.priority == spec.pref
            && !r.not
            && r.fwmark == Some(spec.mark)
            && r.fwmask.unwrap_or(u32::MAX) == spec.mask
            && action_ok
    }

    fn route_argv(spec: &RouteSpec, op: &str) -> Vec<String> {
        let mut v = s(&["ip", spec.family.ip_flag(), "route", op, "default"]);
        if let Some(via) = &spec.via {
            v.extend(["via".into(), via.clone()]);
        }
        v.extend([
            "dev".into(),
            spec.dev.clone(),
            "table".into(),
            spec.table.to_string(),
            "proto".into(),
            RT_PROTO.to_string(),
        ]);
        v
    }

    /// The default route of our table.
    pub fn ip_route(&self, role: Role, spec: RouteSpec, reason: String) -> Step {
        let present = self
            .facts_routes(spec.family)
            .iter()
            .any(|r| self.route_matches(r, &spec));
        let step = Step {
            role,
            state: Self::state(Some(present)),
            apply: Effect::run(Self::route_argv(&spec, "add")),
            undo: Effect::run(Self::route_argv(&spec, "del")),
            reason,
            change: None,
        };
        self.made_routes.borrow_mut().push(spec);
        step
    }

    fn route_matches(&self, r: &Route, spec: &RouteSpec) -> bool {
        r.dst == "default"
            && (r.kind.is_empty() || r.kind == "unicast")
            && self.facts.table_id(&r.table) == Some(spec.table)
            && r.gateway == spec.via
            && r.dev.as_deref() == Some(spec.dev.as_str())
    }

    /// Set a sysctl; `None` when it already has the wanted value.
    pub fn sysctl(&self, role: Role, key: &str, want: &str, reason: String) -> Step {
        let old = self.facts.sysctl(key).map(str::to_string);
        let argv = |v: &str| s(&["sysctl", "-q", "-w", &format!("{key}={v}")]);
        let (state, undo_value, change) = match &old {
            Some(o) if o == want => (StepState::InPlace, o.clone(), None),
            Some(o) => (
                StepState::Change,
                o.clone(),
                Some(ValueChange {
                    from: o.clone(),
                    to: want.into(),
                }),
            ),
            // Unknown here: the executor re-reads the value before it writes.
            None => (
                StepState::Change,
                "0".into(),
                Some(ValueChange {
                    from: "unknown".into(),
                    to: want.into(),
                }),
            ),
        };
        Step {
            role,
            state,
            apply: Effect::run(argv(want)),
            undo: Effect::run(argv(&undo_value)),
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
            let actual = rs.rules_of(table, chain);
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
            let create = Self::ipt(*f, table, "-N", chain, &[]);
            let at = steps
                .iter()
                .position(|s| matches!(&s.apply, Effect::Run { argv } if *argv == create))
                .map_or(0, |i| i + 1);
            let role = steps
                .get(at.saturating_sub(1))
                .map_or(Role::Gateway, |s| s.role);
            let split = |r: &str| r.split_whitespace().map(str::to_string).collect::<Vec<_>>();
            let old: Vec<Effect> = actual
                .iter()
                .map(|r| Effect::run(Self::ipt(*f, table, "-A", chain, &split(r))))
                .collect();
            steps.insert(
                at,
                Step {
                    role,
                    state: StepState::Change,
                    apply: Effect::run(Self::ipt(*f, table, "-F", chain, &[])),
                    undo: Effect::Seq { effects: old },
                    reason: format!(
                        "{}: {chain} holds rules of an earlier setup in another order: empty it and \
                         add the rules again in order (for that moment new packets pass unmarked)",
                        f.name()
                    ),
                    change: None,
                },
            );
            let append = Self::ipt(*f, table, "-A", chain, &[]);
            for s in steps.iter_mut() {
                if let Effect::Run { argv } = &s.apply
                    && argv.starts_with(&append)
                {
                    s.state = StepState::Add;
                }
            }
            self.flushed
                .borrow_mut()
                .push((*f, table.clone(), chain.clone()));
        }
    }

    /// Steps removing what we created earlier that this profile no longer
    /// wants, so that a changed profile converges instead of piling up.
    pub fn stale_steps(&self, roles: &[Role]) -> Vec<Step> {
        let gateway = roles.contains(&Role::Gateway);
        let role = if gateway { Role::Gateway } else { Role::Marker };
        let in_scope = |chain: &str| {
            chain.starts_with(CHAIN_PREFIX) && (gateway || chain == super::ownership::CHAIN_MARK)
        };
        let mut jumps = Vec::new();
        let mut rules = Vec::new();
        let mut chains = Vec::new();
        let made_ipt = self.made_ipt.borrow();
        let made_chains = self.made_chains.borrow();
        for f in Family::BOTH {
            let Some(rs) = self.ruleset(f) else { continue };
            for (table, chain, spec) in rs.rules() {
                let ours_chain = in_scope(chain);
                let rebuilt = self
                    .flushed
                    .borrow()
                    .iter()
                    .any(|(ff, ft, fc)| *ff == f && ft == table && fc == chain);
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
                let wanted = made_ipt
                    .iter()
                    .any(|(mf, mt, mc, ms)| *mf == f && mt == table && mc == chain && ms == spec);
                if wanted {
                    continue;
                }
                let spec_v: Vec<String> = spec.split_whitespace().map(str::to_string).collect();
                let step = Step {
                    role,
                    state: StepState::Change,
                    apply: Effect::run(Self::ipt(f, table, "-D", chain, &spec_v)),
                    undo: Effect::run(Self::ipt(f, table, "-A", chain, &spec_v)),
                    reason: format!(
                        "left over from an earlier dscproute setup, not in this profile: remove \
                         it ({} {table} {chain})",
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
            for (table, chain) in rs.chains() {
                if in_scope(chain)
                    && !made_chains
                        .iter()
                        .any(|(mf, mt, mc)| *mf == f && mt == table && mc == chain)
                {
                    chains.push(Step {
                        role,
                        state: StepState::Change,
                        apply: Effect::run(Self::ipt(f, table, "-X", chain, &[])),
                        undo: Effect::run(Self::ipt(f, table, "-N", chain, &[])),
                        reason: format!(
                            "chain left over from an earlier dscproute setup: delete it ({})",
                            f.name()
                        ),
                        change: None,
                    });
                }
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

    fn stale_policy(&self) -> Vec<Step> {
        let mut out = Vec::new();
        let made_rules = self.made_rules.borrow();
        let made_routes = self.made_routes.borrow();
        for f in Family::BOTH {
            for r in self.facts_rules(f) {
                if !is_our_proto(r.protocol.as_deref())
                    || made_rules.iter().any(|m| self.rule_matches(r, m))
                {
                    continue;
                }
                let Some(spec) = rule_spec_of(self.facts, f, r) else {
                    continue;
                };
                out.push(Step {
                    role: Role::Gateway,
                    state: StepState::Change,
                    apply: Effect::run(Self::rule_argv(&spec, "del")),
                    undo: Effect::run(Self::rule_argv(&spec, "add")),
                    reason: "policy rule left over from an earlier dscproute setup: remove it"
                        .into(),
                    change: None,
                });
            }
            for r in self.facts_routes(f) {
                if !is_our_proto(r.protocol.as_deref())
                    || made_routes.iter().any(|m| self.route_matches(r, m))
                {
                    continue;
                }
                let (Some(dev), Some(table)) = (r.dev.clone(), self.facts.table_id(&r.table))
                else {
                    continue;
                };
                let spec = RouteSpec {
                    family: f,
                    via: r.gateway.clone(),
                    dev,
                    table,
                };
                out.push(Step {
                    role: Role::Gateway,
                    state: StepState::Change,
                    apply: Effect::run(Self::route_argv(&spec, "del")),
                    undo: Effect::run(Self::route_argv(&spec, "add")),
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
fn rule_spec_of(facts: &HostFacts, family: Family, r: &Rule) -> Option<RuleSpec> {
    let action = match (r.action.as_deref(), &r.table) {
        (Some("unreachable"), _) => RuleAction::Unreachable,
        (None, Some(t)) => {
            let id = facts.table_id(t)?;
            // Only the two lookups we write: main with suppress 0, our table without.
            let table = match (id, r.suppress_prefixlength) {
                (254, Some(0)) => "main".to_string(),
                (0 | 253..=255, _) | (_, Some(_)) => return None,
                (id, None) => id.to_string(),
            };
            RuleAction::Lookup {
                table,
                suppress: r.suppress_prefixlength,
            }
        }
        _ => return None,
    };
    let mask = r.fwmask.unwrap_or(u32::MAX);
    let mark = r.fwmark?;
    if mask == 0 || mark & !mask != 0 || !(1..=32765).contains(&r.priority) {
        return None;
    }
    Some(RuleSpec {
        family,
        pref: r.priority,
        mark,
        mask,
        action,
    })
}
