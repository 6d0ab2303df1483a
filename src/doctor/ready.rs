//! Last checks before a plan may change the host, shared by the CLI and
//! the TUI: the kernel must have every match and target the plan uses, and
//! the host's current rules must have been read (never apply blind).

use crate::plan::Plan;
use crate::probe::{Fact, HostFacts, Unreadable};
use crate::profile::Profile;
use std::path::Path;

/// Problems that must stop an apply (empty: go ahead).
pub fn blockers(profile: &Profile, facts: &HostFacts, plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(gap) = super::kernel_gap(profile, facts, plan, Path::new("/")) {
        out.push(gap);
    }
    let blind: Vec<String> = facts
        .unreadable
        .iter()
        .filter(|u| leaves_apply_blind(u))
        .map(ToString::to_string)
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

/// Conflicts, in-place steps and leftovers are judged from the links,
/// routes, policy rules and rulesets: apply may not run while one of them is
/// unknown. A recorded line does not say what it missed, so it counts.
fn leaves_apply_blind(u: &Unreadable) -> bool {
    let Some(fact) = u.fact() else {
        return true;
    };
    // No catch-all: a new kind of fact has to be decided here.
    match fact {
        Fact::Links
        | Fact::RoutesV4
        | Fact::RoutesV6
        | Fact::RulesV4
        | Fact::RulesV6
        | Fact::IptablesSave
        | Fact::Ip6tablesSave
        | Fact::IptablesLegacySave
        | Fact::Ip6tablesLegacySave => true,
        Fact::Kernel
        | Fact::Iproute2Version
        | Fact::IptablesBackend
        | Fact::Groups
        | Fact::RtTables
        | Fact::Sysctls
        | Fact::NftRuleset
        | Fact::XtMatches
        | Fact::XtTargets
        | Fact::Units => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanOptions, plan};
    use crate::probe::{Reason, Source};

    fn facts(name: &str) -> HostFacts {
        let path = format!("{}/tests/fixtures/plan/{name}", env!("CARGO_MANIFEST_DIR"));
        HostFacts::from_json(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    const BLIND: &str = "the host's current rules could not all be read";

    /// The blind-apply refusals among the blockers, for these facts.
    fn blind(f: &HostFacts) -> Vec<String> {
        let profile = Profile::parse("[marker]\ngroup = 0\ndscp = 7\n", "t").unwrap();
        let p = plan(&profile, f, PlanOptions::default()).unwrap();
        blockers(&profile, f, &p)
            .into_iter()
            .filter(|b| b.contains(BLIND))
            .collect()
    }

    fn failed(fact: Fact, argv: &[&str], said: &str) -> Unreadable {
        let said = Some(said.to_string());
        let reason = Reason::Failed {
            status: 1,
            said,
            root_hint: false,
        };
        Unreadable::new(fact, Source::command(argv), reason)
    }

    #[test]
    fn a_missed_ruleset_blocks_whatever_its_words() {
        let clean = facts("client.json");
        assert_eq!(blind(&clean), Vec::<String>::new());
        // Words that name neither the tool nor "-save": the fact decides.
        for fact in [Fact::IptablesLegacySave, Fact::Links, Fact::RulesV6] {
            let mut f = clean.clone();
            f.unreadable = vec![failed(fact, &["reworded"], "something else went wrong")];
            let got = blind(&f);
            assert_eq!(got.len(), 1, "{fact:?}: {got:?}");
            assert!(
                got[0].contains("reworded: something else went wrong"),
                "{got:?}"
            );
        }
    }

    #[test]
    fn other_misses_do_not_block_but_unknown_ones_do() {
        let mut f = facts("client.json");
        // Text that the old substring test would have taken for a ruleset.
        f.unreadable = vec![
            failed(Fact::Sysctls, &["/proc/sys/x"], "ip6tables-save ip -j"),
            failed(Fact::NftRuleset, &["nft", "list", "ruleset"], "denied"),
        ];
        assert_eq!(blind(&f), Vec::<String>::new());
        f.unreadable = vec![Unreadable::Recorded("somewhere: something".into())];
        assert_eq!(blind(&f).len(), 1);
        f.unreadable.clear();
        f.ip6tables_save = None;
        let got = blind(&f);
        assert!(got[0].contains("gave nothing"), "{got:?}");
    }
}
