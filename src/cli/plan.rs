//! `dscproute plan`.

use super::{exit, fail};
use crate::output;
use crate::plan::{self, PlanOptions};
use crate::probe::{self, HostFacts};
use crate::profile::Profile;
use std::path::Path;

/// Host facts from a recorded file, or from probing this host.
pub fn load_facts(path: Option<&Path>) -> Result<HostFacts, String> {
    let Some(path) = path else {
        return Ok(probe::probe_system());
    };
    let text = crate::input_file::read_text(path)
        .map_err(|e| format!("cannot read facts file {}: {e}", path.display()))?;
    HostFacts::from_json(&text).map_err(|e| {
        format!(
            "{}: not a facts file: {e}; record one with `dscproute facts --json`",
            path.display()
        )
    })
}

pub fn plan_cmd(profile_path: &Path, json: bool, script: bool, facts: Option<&Path>) -> i32 {
    let profile = match Profile::load(profile_path) {
        Ok(p) => p,
        Err(e) => return fail(exit::USAGE, &e.to_string()),
    };
    let facts_path = facts;
    let facts = match load_facts(facts) {
        Ok(f) => f,
        Err(e) => return fail(exit::USAGE, &e),
    };
    let source = profile_path.display().to_string();
    // A script runs exactly what `apply` would on the host these facts
    // describe, so it is planned, checked and refused the same way.
    let mut plan = match plan::plan(&profile, &facts, PlanOptions::default()) {
        Ok(p) => p,
        Err(e) => {
            if json {
                let v = serde_json::json!({ "error": "refused", "problems": e.problems });
                output::print_or_quit(&format!("{v:#}\n"));
            }
            for p in &e.problems {
                output::eprint_line(&format!("dscproute: {p}"));
            }
            return exit::REFUSED;
        }
    };
    // Kernel support is a fact of this host, not of recorded facts.
    if facts_path.is_none()
        && let Some(gap) = crate::doctor::kernel_gap(&profile, &facts, &plan, Path::new("/"))
    {
        plan.errors.push(gap);
    }
    if json {
        let text = serde_json::to_string_pretty(&plan).expect("plan serializes");
        output::print_or_quit(&format!("{text}\n"));
    } else if script {
        if !plan.is_applicable() {
            for e in &plan.errors {
                output::eprint_line(&format!("dscproute: {e}"));
            }
            return exit::REFUSED;
        }
        for w in &plan.warnings {
            output::eprint_line(&format!("dscproute: warning: {w}"));
        }
        output::print_or_quit(&plan::render_script(&plan, &source));
    } else {
        output::print_or_quit(&plan::render_text(&plan, &source));
    }
    if plan.is_applicable() {
        exit::OK
    } else {
        exit::REFUSED
    }
}
