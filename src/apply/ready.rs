//! Last checks before a plan may change the host, shared by the CLI and
//! the TUI: the kernel must have every match and target the plan uses, and
//! the host's current rules must have been read (never apply blind).

use crate::plan::Plan;
use crate::probe::HostFacts;
use crate::profile::Profile;
use std::path::Path;

/// Problems that must stop an apply (empty: go ahead).
pub fn blockers(profile: &Profile, facts: &HostFacts, plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(gap) = crate::doctor::kernel_gap(profile, facts, plan, Path::new("/")) {
        out.push(gap);
    }
    // Conflicts, in-place steps and leftovers are judged from these.
    let blind: Vec<&str> = facts
        .unreadable
        .iter()
        .filter(|u| u.contains("-save") || u.contains("ip -j"))
        .map(String::as_str)
        .collect();
    if !blind.is_empty() || facts.iptables_save.is_none() || facts.ip6tables_save.is_none() {
        let why = if blind.is_empty() {
            "iptables-save / ip6tables-save gave nothing".to_string()
        } else {
            blind.join("; ")
        };
        out.push(format!(
            "the host's current rules could not all be read ({why}): refusing to apply without \
             seeing what is there"
        ));
    }
    out
}
