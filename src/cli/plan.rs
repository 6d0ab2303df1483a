//! `dscproute plan`.

use super::{exit, fail};
use crate::apply::StateDir;
use crate::ops::plan::{Facts, Refusal};
use crate::ops::{self, Host};
use crate::output;
use crate::plan;
use crate::probe::{self, HostFacts};
use crate::profile::Profile;
use clap::Args;
use std::path::{Path, PathBuf};

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

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// The profile (TOML) to plan.
    #[arg(long, short)]
    pub profile: PathBuf,
    /// Netfilter backend, overriding the profile's `backend` key.
    #[arg(long, value_parser = ["auto", "nft", "iptables"])]
    pub backend: Option<String>,
    /// Print the plan as JSON.
    #[arg(long, conflicts_with = "script")]
    pub json: bool,
    /// Print a standalone POSIX sh script (apply and undo) for a host
    /// without dscproute.
    #[arg(long)]
    pub script: bool,
    /// Plan against host facts recorded with `dscproute facts --json`
    /// instead of probing this host.
    #[arg(long, value_name = "FILE")]
    pub facts: Option<PathBuf>,
}

pub fn run(state: StateDir, args: &PlanArgs) -> i32 {
    let mut profile = match Profile::load(&args.profile) {
        Ok(p) => p,
        Err(e) => return fail(exit::USAGE, &e.to_string()),
    };
    if let Some(b) = args
        .backend
        .as_deref()
        .and_then(crate::profile::Backend::parse)
    {
        profile.backend = b;
    }
    let facts = match &args.facts {
        Some(path) => match load_facts(Some(path)) {
            Ok(f) => Facts::Recorded(Box::new(f)),
            Err(e) => return fail(exit::USAGE, &e),
        },
        None => Facts::Probe,
    };
    let source = args.profile.display().to_string();
    // A script runs exactly what `apply` would on the host these facts
    // describe, so it is planned, checked and refused the same way.
    let host = Host::system(state, false);
    let plan = match ops::plan::plan(&host, &profile, facts) {
        Ok(p) => p,
        Err(e) => {
            if args.json {
                let text = serde_json::to_string_pretty(&Refusal::of(&e)).expect("serializes");
                output::print_or_quit(&format!("{text}\n"));
            }
            for p in &e.problems {
                output::eprint_line(&format!("dscproute: {p}"));
            }
            return exit::REFUSED;
        }
    };
    if args.json {
        let text = serde_json::to_string_pretty(&plan).expect("plan serializes");
        output::print_or_quit(&format!("{text}\n"));
    } else if args.script {
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
