//! `dscproute client-recipe`.

use super::{exit, fail};
use crate::output;
use crate::probe::HostFacts;
use crate::profile::Profile;
use crate::recipe::{self, Request, Target};
use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ForArg {
    /// POSIX sh script with apply and undo (iptables).
    LinuxSh,
    /// An `nft -f` file with a table of its own.
    Nftables,
    /// PowerShell: a QoS policy for one program (--app).
    Windows,
    /// fw4 include for an OpenWrt router (--src).
    Openwrt,
}

impl From<ForArg> for Target {
    fn from(f: ForArg) -> Target {
        match f {
            ForArg::LinuxSh => Target::LinuxSh,
            ForArg::Nftables => Target::Nftables,
            ForArg::Windows => Target::Windows,
            ForArg::Openwrt => Target::Openwrt,
        }
    }
}

#[derive(Debug, Args)]
pub struct RecipeArgs {
    /// The profile whose [marker] the client follows.
    #[arg(long, short)]
    pub profile: PathBuf,
    /// The kind of client.
    #[arg(long = "for", value_name = "CLIENT")]
    pub target: ForArg,
    /// windows: the program to mark (its .exe name or full path).
    #[arg(long, value_name = "PATH", allow_hyphen_values = true)]
    pub app: Option<String>,
    /// openwrt: a LAN prefix whose forwarded traffic is marked (repeat it
    /// for several, e.g. one IPv4 and one IPv6).
    #[arg(long, value_name = "CIDR", allow_hyphen_values = true)]
    pub src: Vec<String>,
    /// linux-sh, nftables: the client host's facts, recorded there with
    /// `dscproute facts --json` (to settle a conntrack mark free there).
    #[arg(long, value_name = "FILE")]
    pub facts: Option<PathBuf>,
    /// Print one JSON object: `target`, `dscp`, `text` (the recipe),
    /// `warnings`.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &RecipeArgs) -> i32 {
    let profile = match Profile::load(&args.profile) {
        Ok(p) => p,
        Err(e) => return fail(exit::USAGE, &e.to_string()),
    };
    // The client is another host: nothing of this one is read.
    let facts = match &args.facts {
        Some(path) => match super::load_facts(Some(path)) {
            Ok(f) => f,
            Err(e) => return fail(exit::USAGE, &e),
        },
        None => HostFacts::default(),
    };
    let req = Request {
        app: args.app.clone(),
        src: args.src.clone(),
    };
    let source = args.profile.display().to_string();
    match recipe::client_recipe(&profile, &source, &facts, args.target.into(), &req) {
        Ok(r) if args.json => {
            let text = serde_json::to_string_pretty(&r).expect("recipes serialize");
            output::print_or_quit(&format!("{text}\n"));
            exit::OK
        }
        Ok(r) => {
            for w in &r.warnings {
                output::eprint_line(&format!("dscproute: warning: {w}"));
            }
            output::print_or_quit(&r.text);
            exit::OK
        }
        Err(e) if e.is_usage() => fail(exit::USAGE, &e.to_string()),
        Err(e) => fail(exit::REFUSED, &e.to_string()),
    }
}
