//! Keeping a setup whole (the agent's use case): `check` reads the host and
//! plans the profile read-only, and says whether the VPN is usable and what
//! is missing; `repair` runs only the missing steps, as `apply --yes` does
//! (same lock, journal and engine: it re-probes and re-plans under the lock).
//! While the VPN is unusable both plan without it (`PlanOptions::without_vpn`):
//! the kill switch and the marking go in place at once (a boot that starts
//! the agent before the VPN), the routes through the VPN when it is back.

use super::Host;
use super::apply::{self, Applied, ApplyError, Request};
use crate::backend::op::{ChainRule, NfCmd};
use crate::backend::{Op, PolicyAction, PolicyRule};
use crate::plan::{self, Plan, PlanOptions};
use crate::profile::Profile;
use thiserror::Error;

/// Why nothing can be repaired now (shared with the planner's uplink choice).
pub use crate::plan::Wait;

/// What a check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    Whole,
    /// The VPN is unusable; `missing` is what does not need it and is not
    /// in place yet (empty: all of that is), one label per step.
    Waiting {
        wait: Wait,
        missing: Vec<String>,
    },
    /// One label per pending step of the plan.
    Missing(Vec<String>),
}

#[derive(Debug, Error)]
#[error("{}", .0.join("; "))]
pub struct CheckError(pub Vec<String>);

/// Read-only: probe, plan, classify.
pub fn check(host: &Host, profile: &Profile) -> Result<Found, CheckError> {
    check_classes(host, profile).map(|(found, _)| found)
}

/// What a check saw of the classes: the uplink each class's table routes
/// through in that plan, and the global addresses of each link now.
pub struct Seen {
    pub classes: Vec<crate::plan::ResolvedClass>,
    pub addrs: Vec<(String, Vec<String>)>,
}

/// `check`, and what it saw of the classes.
pub fn check_classes(host: &Host, profile: &Profile) -> Result<(Found, Seen), CheckError> {
    let facts = host.facts_for(profile);
    let wait = vpn_wait(profile, &facts);
    let opts = PlanOptions {
        without_vpn: wait.is_some(),
        ..PlanOptions::default()
    };
    let plan = plan::plan(profile, &facts, opts).map_err(|e| CheckError(e.problems))?;
    let addrs = facts
        .links
        .iter()
        .map(|l| {
            let global = l.addrs.iter().filter(|a| a.scope == "global");
            (l.name.clone(), global.map(|a| a.local.clone()).collect())
        })
        .collect();
    let seen = Seen {
        classes: plan.resolved.classes.clone(),
        addrs,
    };
    Ok((classify(&plan, wait), seen))
}

/// Pending steps are what is missing; none: whole (or waiting, with all
/// that can be in place meanwhile).
pub fn classify(plan: &Plan, wait: Option<Wait>) -> Found {
    let missing: Vec<String> = plan.pending().map(|s| label(&s.apply)).collect();
    match wait {
        Some(wait) => Found::Waiting { wait, missing },
        None if missing.is_empty() => Found::Whole,
        None => Found::Missing(missing),
    }
}

pub use crate::plan::vpn_wait;

/// Apply the profile's missing steps now, without asking; what ran, one
/// label per step (empty when the host was whole by then). With
/// `req.vpn_may_wait`, only what does not need the VPN while it is unusable.
pub fn repair(host: &Host, req: &Request) -> Result<Vec<String>, ApplyError> {
    match apply::apply(host, req, &mut |_| {})? {
        Applied::NothingToDo => Ok(vec![]),
        Applied::Changed(j) => Ok(j.steps.iter().map(|s| label(&s.step.apply)).collect()),
    }
}

/// A step as one short phrase for the agent's report line.
pub fn label(op: &Op) -> String {
    match op {
        Op::Route {
            family,
            add: true,
            route,
        } => {
            let v6 = if *family == crate::backend::op::Family::V6 {
                "IPv6 "
            } else {
                ""
            };
            let via = route.via.map(|v| format!(" via {v}")).unwrap_or_default();
            format!(
                "{v6}route default{via} dev {} table {}",
                route.dev, route.table
            )
        }
        Op::Sysctl { key, value } => format!("sysctl {}={value}", key.key()),
        Op::Netfilter {
            cmd: NfCmd::NewChain { chain },
            ..
        } => format!("chain {chain}"),
        Op::Netfilter {
            family,
            table,
            cmd: NfCmd::Append { chain, rule } | NfCmd::Insert { chain, rule, .. },
        } => match rule {
            ChainRule::Jump { target, .. } => {
                format!(
                    "{} {} jump {chain} -> {target}",
                    family.name(),
                    table.name()
                )
            }
            _ => format!("{} {} rule in {chain}", family.name(), table.name()),
        },
        Op::PolicyRule {
            family,
            add: true,
            rule:
                rule @ PolicyRule {
                    action: PolicyAction::Unreachable,
                    ..
                },
        } => format!("{} kill switch pref {}", family.name(), rule.pref),
        Op::PolicyRule {
            family,
            add: true,
            rule,
        } => format!("{} policy rule pref {}", family.name(), rule.pref),
        Op::NftTable { ruleset, .. } => format!(
            "nft table inet dscproute ({} rules)",
            ruleset.rules().count()
        ),
        _ => op.display(),
    }
}

#[cfg(test)]
mod tests;
