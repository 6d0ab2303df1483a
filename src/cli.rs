//! The command line: each subcommand is a few lines over the library.

use crate::explain::Explanation;
use crate::output;
use crate::plan::{self, PlanOptions};
use crate::probe::{self, HostFacts};
use crate::profile::Profile;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

/// Exit statuses, stable for scripts (documented in README).
pub mod exit {
    pub const OK: i32 = 0;
    /// A command ran and failed (e.g. a step of apply).
    pub const FAILED: i32 = 1;
    /// Bad input: usage, an invalid value or profile. Nothing was changed.
    pub const USAGE: i32 = 2;
    /// The host does not allow the plan (preflight or conflict). Nothing was changed.
    pub const REFUSED: i32 = 3;
}

#[derive(Debug, Parser)]
#[command(
    name = "dscproute",
    version,
    about = "Route one group's traffic through a VPN on the gateway, signalled in the DSCP bits",
    long_about = "dscproute carries a routing decision from a client host to its gateway in the \
                  DSCP bits of the IP header: processes of a chosen group get a DSCP value on the \
                  client, and the gateway routes packets carrying that value through a VPN."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Explain a DSCP value or ToS byte: bits, names, legacy reading, Wi-Fi
    /// priority, and the exact iptables, nft, tcpdump and Wireshark expressions.
    Explain {
        /// A DSCP (7, 0x07, 0b000111, af41, ef, le, …) or, with --tos, a whole byte.
        value: String,
        /// Read VALUE as a whole ToS / traffic-class byte (DSCP << 2 | ECN).
        #[arg(long)]
        tos: bool,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show every command a profile needs on this host, with its reason and
    /// its undo, without changing anything (dry run).
    Plan {
        /// The profile (TOML) to plan.
        #[arg(long, short)]
        profile: PathBuf,
        /// Print the plan as JSON.
        #[arg(long, conflicts_with = "script")]
        json: bool,
        /// Print a standalone POSIX sh script (apply and undo) for a host
        /// without dscproute.
        #[arg(long)]
        script: bool,
        /// Plan against host facts recorded with `dscproute facts --json`
        /// instead of probing this host.
        #[arg(long, value_name = "FILE")]
        facts: Option<PathBuf>,
    },
    /// Print what dscproute reads about this host (groups, links, routes,
    /// rules, table names, sysctls, tools). Read-only.
    Facts {
        /// Print JSON (the format `plan --facts` reads).
        #[arg(long)]
        json: bool,
    },
}

/// Run the parsed command line; returns the process exit status.
pub fn run(cli: Cli) -> i32 {
    match cli.command {
        Some(Command::Explain { value, tos, json }) => explain(&value, tos, json),
        Some(Command::Plan {
            profile,
            json,
            script,
            facts,
        }) => plan_cmd(&profile, json, script, facts.as_deref()),
        Some(Command::Facts { json }) => facts_cmd(json),
        None => {
            use clap::CommandFactory;
            output::print(&format!("{}\n", Cli::command().render_help()));
            exit::OK
        }
    }
}

fn fail(code: i32, message: &str) -> i32 {
    output::eprint_line(&format!("dscproute: {message}"));
    code
}

fn explain(value: &str, tos: bool, json: bool) -> i32 {
    match Explanation::parse(value, tos) {
        Ok(e) if json => {
            let text = serde_json::to_string_pretty(&e).expect("explanation serializes");
            output::print(&format!("{text}\n"));
            exit::OK
        }
        Ok(e) => {
            output::print(&e.render_text());
            exit::OK
        }
        Err(err) => fail(exit::USAGE, &err.to_string()),
    }
}

/// Host facts from a recorded file, or from probing this host.
fn load_facts(path: Option<&Path>) -> Result<HostFacts, String> {
    let Some(path) = path else {
        return Ok(probe::probe_system());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read facts file {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| {
        format!(
            "{}: not a facts file ({e}); record one with `dscproute facts --json`",
            path.display()
        )
    })
}

fn plan_cmd(profile_path: &Path, json: bool, script: bool, facts: Option<&Path>) -> i32 {
    let profile = match Profile::load(profile_path) {
        Ok(p) => p,
        Err(e) => return fail(exit::USAGE, &e.to_string()),
    };
    let facts = match load_facts(facts) {
        Ok(f) => f,
        Err(e) => return fail(exit::USAGE, &e),
    };
    let source = profile_path.display().to_string();
    let opts = PlanOptions { for_script: script };
    let plan = match plan::plan(&profile, &facts, opts) {
        Ok(p) => p,
        Err(e) => {
            if json {
                let v = serde_json::json!({ "error": "refused", "problems": e.problems });
                output::print(&format!("{v:#}\n"));
            }
            for p in &e.problems {
                output::eprint_line(&format!("dscproute: {p}"));
            }
            return exit::REFUSED;
        }
    };
    if json {
        let text = serde_json::to_string_pretty(&plan).expect("plan serializes");
        output::print(&format!("{text}\n"));
    } else if script {
        if !plan.is_applicable() {
            for e in &plan.errors {
                output::eprint_line(&format!("dscproute: {e}"));
            }
            return exit::REFUSED;
        }
        output::print(&plan::render_script(&plan, &source));
    } else {
        output::print(&plan::render_text(&plan, &source));
    }
    if plan.is_applicable() {
        exit::OK
    } else {
        exit::REFUSED
    }
}

fn facts_cmd(json: bool) -> i32 {
    let facts = probe::probe_system();
    if json {
        let text = serde_json::to_string_pretty(&facts).expect("facts serialize");
        output::print(&format!("{text}\n"));
    } else {
        output::print(&facts_text(&facts));
    }
    exit::OK
}

fn facts_text(f: &HostFacts) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let _ = writeln!(o, "root: {}", if f.is_root { "yes" } else { "no" });
    let _ = writeln!(o, "kernel: {}", f.kernel.as_deref().unwrap_or("unknown"));
    let _ = writeln!(
        o,
        "iproute2: {}",
        f.iproute2_version.as_deref().unwrap_or("unknown")
    );
    let backend = match f.iptables_backend {
        Some(probe::IptablesBackend::NfTables) => "nf_tables",
        Some(probe::IptablesBackend::Legacy) => "legacy",
        None => "unknown",
    };
    let _ = writeln!(o, "iptables backend: {backend}");
    let missing: Vec<&str> = f
        .tools
        .iter()
        .filter(|(_, p)| p.is_none())
        .map(|(t, _)| t.as_str())
        .collect();
    let _ = writeln!(
        o,
        "missing tools: {}",
        if missing.is_empty() {
            "none".into()
        } else {
            missing.join(", ")
        }
    );
    let _ = writeln!(o, "links:");
    for l in &f.links {
        let addrs: Vec<String> = l
            .addrs
            .iter()
            .map(|a| format!("{}/{}", a.local, a.prefixlen))
            .collect();
        let _ = writeln!(o, "  {:<16} {:<14} {}", l.name, l.state, addrs.join(" "));
    }
    let _ = writeln!(o, "rules (IPv4):");
    for r in &f.rules_v4 {
        let what = match (&r.fwmark, &r.table, &r.action) {
            (Some(m), Some(t), _) => format!(
                "fwmark {m:#x}/{:#x} lookup {t}",
                r.fwmask.unwrap_or(u32::MAX)
            ),
            (_, Some(t), None) => format!("lookup {t}"),
            (_, _, Some(a)) => a.clone(),
            _ => String::new(),
        };
        let _ = writeln!(o, "  {:>6}: {what}", r.priority);
    }
    let _ = writeln!(
        o,
        "routing tables: {}",
        f.rt_tables
            .iter()
            .map(|t| format!("{} {}", t.id, t.name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (k, v) in &f.sysctls {
        let _ = writeln!(o, "{k} = {v}");
    }
    for u in &f.unreadable {
        let _ = writeln!(o, "could not read: {u}");
    }
    o
}
