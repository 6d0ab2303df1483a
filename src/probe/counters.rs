//! Our rules with their packet and byte counters (`iptables-save -c`), for
//! `status` and the doctor's "are packets matching" checks.

use crate::ownership::{CHAIN_PREFIX, COMMENT};
use crate::runner::Runner;
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct CountedRule {
    pub family: &'static str,
    pub table: String,
    pub chain: String,
    pub spec: String,
    pub packets: u64,
    pub bytes: u64,
}

/// Rules of ours with counters, from `iptables-save -c` lines like
/// `[12:3456] -A DSCPROUTE-ROUTE …`.
pub fn counted_rules(family: &'static str, save_c: &str) -> Vec<CountedRule> {
    let mut table = String::new();
    let mut out = Vec::new();
    let tag = format!("--comment {COMMENT} -j {CHAIN_PREFIX}");
    for line in save_c.lines() {
        if let Some(t) = line.strip_prefix('*') {
            table = t.to_string();
            continue;
        }
        let Some(rest) = line.strip_prefix('[') else {
            continue;
        };
        let Some((counts, rule)) = rest.split_once("] -A ") else {
            continue;
        };
        let Some((chain, spec)) = rule.split_once(' ') else {
            continue;
        };
        if !(chain.starts_with(CHAIN_PREFIX) || spec.contains(&tag)) {
            continue;
        }
        let (p, b) = counts.split_once(':').unwrap_or(("0", "0"));
        out.push(CountedRule {
            family,
            table: table.clone(),
            chain: chain.to_string(),
            spec: spec.to_string(),
            packets: p.parse().unwrap_or(0),
            bytes: b.parse().unwrap_or(0),
        });
    }
    out
}

/// The counters of our rules in both families, as root sees them now; a
/// family whose `*-save -c` fails or is missing adds nothing.
pub fn read_counters(runner: &dyn Runner) -> Vec<CountedRule> {
    let mut v = Vec::new();
    for (family, tool) in [("IPv4", "iptables-save"), ("IPv6", "ip6tables-save")] {
        if let Ok(out) = runner.run_args(&[tool, "-c"])
            && out.success()
        {
            v.extend(counted_rules(family, &out.stdout));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_of_our_rules_only() {
        let save = "*mangle\n:PREROUTING ACCEPT [5:500]\n\
                    [7:700] -A PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE\n\
                    [9:900] -A PREROUTING -j OTHER\n\
                    [3:180] -A DSCPROUTE-ROUTE ! -i wg0 -m dscp --dscp 0x07 -j MARK --set-xmark 0x3/0xff\n\
                    COMMIT\n";
        let r = counted_rules("IPv4", save);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].chain.as_str(), r[0].packets, r[0].bytes),
            ("PREROUTING", 7, 700)
        );
        assert_eq!((r[1].chain.as_str(), r[1].packets), ("DSCPROUTE-ROUTE", 3));
    }
}
