//! `dscproute facts`.

use super::exit;
use crate::output;
use crate::probe::{self, HostFacts};
use clap::Args;

#[derive(Debug, Args)]
pub struct FactsArgs {
    /// Print JSON (the format `plan --facts` reads).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &FactsArgs) -> i32 {
    let facts = probe::probe_system();
    if args.json {
        let text = serde_json::to_string_pretty(&facts).expect("facts serialize");
        output::print_or_quit(&format!("{text}\n"));
    } else {
        output::print_or_quit(&facts_text(&facts));
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
        let dscp = r
            .dscp
            .as_deref()
            .map(|d| format!("dscp {d} "))
            .unwrap_or_default();
        let _ = writeln!(o, "  {:>6}: {dscp}{what}", r.priority);
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
