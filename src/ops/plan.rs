//! `plan`: the plan of a profile against this host's facts, or against
//! facts recorded elsewhere (`dscproute facts --json`).

use super::Host;
use crate::plan::{self, Plan, PlanError, PlanOptions};
use crate::probe::HostFacts;
use crate::profile::Profile;
use serde::Serialize;

pub enum Facts {
    /// Probe this host; its kernel's support for the plan is checked too.
    Probe,
    /// Facts recorded on another host (nothing of this one is read).
    Recorded(Box<HostFacts>),
}

/// The plan, with its errors (then `Plan::is_applicable` is false); `Err`
/// when values cannot be settled and there is no plan to show.
pub fn plan(host: &Host, profile: &Profile, facts: Facts) -> Result<Plan, PlanError> {
    let (facts, here) = match facts {
        Facts::Probe => (host.facts_for(profile), true),
        Facts::Recorded(f) => (*f, false),
    };
    let mut plan = plan::plan(profile, &facts, PlanOptions::default())?;
    // Kernel support is a fact of this host, not of recorded facts.
    if here && let Some(gap) = crate::doctor::kernel_gap(profile, &facts, &plan, &host.root) {
        plan.errors.push(gap);
    }
    Ok(plan)
}

/// `plan --json` when there is no plan to show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// Always `refused`.
    pub error: &'static str,
    /// What cannot be settled, one sentence each.
    pub problems: Vec<String>,
}

impl Refusal {
    pub fn of(e: &PlanError) -> Refusal {
        Refusal {
            error: "refused",
            problems: e.problems.clone(),
        }
    }
}
