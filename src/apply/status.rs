//! `dscproute status`: what dscproute has in place on this host (its chains
//! with packet and byte counters, its rules and routes, sysctls it changed),
//! any change awaiting confirmation, any interrupted transaction.

use super::journal::{Journal, Saved, StepStatus, TxnState};
use super::transaction::state_word;
use crate::plan::ownership::{CHAIN_PREFIX, COMMENT, is_our_proto};
use crate::probe::HostFacts;
use crate::runner::Runner;
use serde::Serialize;
use std::fmt::Write;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Status {
    pub transaction: Option<TxnSummary>,
    /// What to do next, when something needs doing.
    pub advice: Option<String>,
    pub netfilter: Vec<CountedRule>,
    pub rules: Vec<String>,
    pub routes: Vec<String>,
    pub sysctls: Vec<SysctlChange>,
    /// Nothing of ours is in place.
    pub clean: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct TxnSummary {
    pub id: String,
    pub state: TxnState,
    pub state_text: &'static str,
    pub profile: String,
    pub created_unix: u64,
    pub steps_done: usize,
    pub steps_total: usize,
    pub seconds_left: Option<i64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CountedRule {
    pub family: &'static str,
    pub table: String,
    pub chain: String,
    pub spec: String,
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SysctlChange {
    pub key: String,
    pub before: String,
    pub now: Option<String>,
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

pub fn gather(journal: Option<&Journal>, facts: &HostFacts, runner: &dyn Runner) -> Status {
    let mut s = Status::default();
    if let Some(j) = journal {
        s.transaction = Some(TxnSummary {
            id: j.id.clone(),
            state: j.state,
            state_text: state_word(j.state),
            profile: j.profile.clone(),
            created_unix: j.created_unix,
            steps_done: j
                .steps
                .iter()
                .filter(|s| s.status == StepStatus::Done)
                .count(),
            steps_total: j.steps.len(),
            seconds_left: (j.state == TxnState::PendingConfirm)
                .then(|| j.seconds_left().unwrap_or(0)),
        });
        s.advice = match j.state {
            TxnState::Running => Some(
                "The last apply was interrupted: run `dscproute rollback` to restore the state \
                 before it."
                    .into(),
            ),
            TxnState::PendingConfirm => Some(format!(
                "This change is rolled back in {} s unless you run `dscproute confirm`.",
                j.seconds_left().unwrap_or(0).max(0)
            )),
            _ if j.steps.iter().any(|s| s.status == StepStatus::UndoFailed) => Some(
                "Some undo steps failed: run `dscproute rollback --all` to remove what is left."
                    .into(),
            ),
            _ => None,
        };
        if matches!(
            j.state,
            TxnState::Applied | TxnState::PendingConfirm | TxnState::Running
        ) {
            for st in &j.steps {
                if let (StepStatus::Done, Some(Saved::Sysctl { key, old })) = (st.status, &st.saved)
                {
                    s.sysctls.push(SysctlChange {
                        key: key.clone(),
                        before: old.clone(),
                        now: facts.sysctl(key).map(str::to_string),
                    });
                }
            }
        }
    }
    for (family, tool) in [("IPv4", "iptables-save"), ("IPv6", "ip6tables-save")] {
        if let Ok(out) = runner.run_args(&[tool, "-c"])
            && out.success()
        {
            s.netfilter.extend(counted_rules(family, &out.stdout));
        }
    }
    for (fam, rules) in [("", &facts.rules_v4), ("-6 ", &facts.rules_v6)] {
        for r in rules.iter().filter(|r| is_our_proto(r.protocol.as_deref())) {
            let target = match (&r.action, &r.table) {
                (Some(a), _) => a.clone(),
                (None, Some(t)) => match r.suppress_prefixlength {
                    Some(n) => format!("lookup {t} suppress_prefixlength {n}"),
                    None => format!("lookup {t}"),
                },
                _ => String::new(),
            };
            let mark = r
                .fwmark
                .map(|m| format!("fwmark {m:#x}/{:#x} ", r.fwmask.unwrap_or(u32::MAX)))
                .unwrap_or_default();
            s.rules
                .push(format!("ip {fam}rule {}: {mark}{target}", r.priority));
        }
    }
    for (fam, routes) in [("", &facts.routes_v4), ("-6 ", &facts.routes_v6)] {
        for r in routes
            .iter()
            .filter(|r| is_our_proto(r.protocol.as_deref()))
        {
            let via = r
                .gateway
                .as_deref()
                .map(|g| format!(" via {g}"))
                .unwrap_or_default();
            let dev = r
                .dev
                .as_deref()
                .map(|d| format!(" dev {d}"))
                .unwrap_or_default();
            s.routes.push(format!(
                "ip {fam}route: {}{via}{dev} table {}",
                r.dst, r.table
            ));
        }
    }
    s.clean = s.netfilter.is_empty() && s.rules.is_empty() && s.routes.is_empty();
    s
}

pub fn render(s: &Status) -> String {
    let mut o = String::new();
    match &s.transaction {
        Some(t) => {
            let _ = writeln!(
                o,
                "Last transaction {} from {}: {} ({} of {} steps done)",
                t.id, t.profile, t.state_text, t.steps_done, t.steps_total
            );
        }
        None => {
            let _ = writeln!(o, "No transaction on record.");
        }
    }
    if let Some(a) = &s.advice {
        let _ = writeln!(o, "! {a}");
    }
    if s.clean {
        let _ = writeln!(o, "Nothing of dscproute's is in place on this host.");
    }
    if !s.netfilter.is_empty() {
        let _ = writeln!(o, "\nNetfilter (packets / bytes)");
        for r in &s.netfilter {
            let _ = writeln!(
                o,
                "  {:>10} {:>12}  {} {} {} {}",
                r.packets, r.bytes, r.family, r.table, r.chain, r.spec
            );
        }
    }
    if !s.rules.is_empty() {
        let _ = writeln!(o, "\nPolicy rules");
        for r in &s.rules {
            let _ = writeln!(o, "  {r}");
        }
    }
    if !s.routes.is_empty() {
        let _ = writeln!(o, "\nRoutes");
        for r in &s.routes {
            let _ = writeln!(o, "  {r}");
        }
    }
    if !s.sysctls.is_empty() {
        let _ = writeln!(o, "\nSysctls changed (before → now)");
        for c in &s.sysctls {
            let _ = writeln!(
                o,
                "  {} = {} → {}",
                c.key,
                c.before,
                c.now.as_deref().unwrap_or("?")
            );
        }
    }
    o
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
