//! `dscproute doctor` (`ops::doctor`): print the checks. Exit 0 when nothing
//! failed (warnings allowed), 1 when a check failed, 2 for a bad profile.

use super::{exit, fail};
use crate::apply::StateDir;
use crate::doctor;
use crate::ops::{self, Host};
use crate::output;
use crate::profile::Profile;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The profile (TOML) whose setup to check.
    #[arg(long, short)]
    pub profile: PathBuf,
    /// Netfilter backend, overriding the profile's `backend` key.
    #[arg(long, value_parser = ["auto", "nft", "iptables"])]
    pub backend: Option<String>,
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(state: StateDir, args: &DoctorArgs) -> i32 {
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
    let source = args.profile.display().to_string();
    let req = ops::doctor::Request {
        profile: &profile,
        source: &source,
    };
    let json = args.json;
    let report = ops::doctor::doctor(&Host::system(state, false), &req, &mut |w| {
        if !json {
            output::eprint_line(&format!(
                "dscproute: watching the wire for DSCP {} (up to {} s)…",
                w.dscp,
                w.window.as_secs()
            ));
        }
    });
    if json {
        let text = serde_json::to_string_pretty(&report).expect("report serializes");
        output::print_or_quit(&format!("{text}\n"));
    } else {
        output::print_or_quit(&doctor::render_text(&report));
    }
    if report.exit == 0 {
        exit::OK
    } else {
        exit::FAILED
    }
}
