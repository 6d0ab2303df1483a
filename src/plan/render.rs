//! The human preview, in the spirit of `terraform plan`: `+` to add, `~` to
//! change, `=` already in place; each command exactly as it runs, with its
//! reason under it; grouped by host role; warnings last.

use super::{Plan, Role, StepState};
use crate::text::wrap;
use std::fmt::Write;

const WIDTH: usize = 80;

/// The path the signal takes, e.g.
/// `group 1001 → DSCP 7 → mark 0x1/0xff → table 100 (vpn) at priority 10000 → wg0`.
pub fn signal_path(r: &super::Resolved) -> String {
    let mut chain = vec![format!("DSCP {}", r.dscp)];
    let who = match (&r.group, &r.user, &r.unit, &r.cgroup) {
        (Some(g), ..) => Some(format!("group {g}")),
        (_, Some(u), ..) => Some(format!("user {u}")),
        (_, _, Some(u), Some(c)) => Some(format!("unit {u} (cgroup {c})")),
        (_, _, Some(u), None) => Some(format!("unit {u}")),
        (_, _, None, Some(c)) => Some(format!("cgroup {c}")),
        _ => None,
    };
    if let Some(w) = who {
        chain.insert(0, w);
    }
    if let (Some(m), Some(k)) = (r.mark, r.mask) {
        chain.push(format!("mark {m:#x}/{k:#x}"));
    }
    if let (Some(t), Some(p)) = (r.table_id, r.priority) {
        let name = r
            .table_name
            .as_deref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        chain.push(format!("table {t}{name} at priority {p}"));
    }
    if let Some(i) = &r.interface {
        chain.push(i.clone());
    }
    chain.join(" → ")
}

/// One class of a `[[class]]` profile, e.g. `class torrent: DSCP 7 → mark
/// 0x1/0xff → table 100 at priority 10000 → wg0 (then tun1)`.
pub fn class_path(c: &super::ResolvedClass) -> String {
    let r = super::Resolved {
        dscp: c.dscp,
        mark: c.mark,
        mask: c.mask,
        table_id: c.table_id,
        table_name: c.table_name.clone(),
        priority: c.priority,
        interface: Some(match (&c.uplink, c.blocked) {
            (Some(u), _) => u.clone(),
            (None, true) => "blocked (kill switch)".into(),
            (None, false) => "main table (kill_switch = false)".into(),
        }),
        ..super::Resolved::default()
    };
    let rest: Vec<&str> = c
        .uplinks
        .iter()
        .map(String::as_str)
        .filter(|u| Some(*u) != c.uplink.as_deref())
        .collect();
    let then = if rest.is_empty() {
        String::new()
    } else {
        format!(" (uplinks in order: {})", c.uplinks.join(", "))
    };
    format!("class {}: {}{then}", c.name, signal_path(&r))
}

pub fn render_text(plan: &Plan, source: &str) -> String {
    let mut o = String::new();
    let roles: Vec<&str> = plan
        .roles
        .iter()
        .map(|r| match r {
            Role::Marker => "client",
            Role::Gateway => "gateway",
        })
        .collect();
    let _ = writeln!(o, "dscproute plan ({}) from {source}", roles.join(" + "));
    if plan.resolved.classes.is_empty() {
        for line in wrap(&signal_path(&plan.resolved), WIDTH - 2) {
            let _ = writeln!(o, "  {line}");
        }
    }
    for c in &plan.resolved.classes {
        for line in wrap(&class_path(c), WIDTH - 2) {
            let _ = writeln!(o, "  {line}");
        }
        let why = format!("uplink {}", c.uplink_why);
        for line in wrap(&why, WIDTH - 6) {
            let _ = writeln!(o, "      {line}");
        }
    }
    for n in &plan.notes {
        for (i, line) in wrap(n, WIDTH - 4).iter().enumerate() {
            let _ = writeln!(o, "  {} {line}", if i == 0 { "-" } else { " " });
        }
    }

    for role in &plan.roles {
        let _ = writeln!(o);
        let _ = writeln!(o, "{}", role.title());
        for step in plan.steps.iter().filter(|s| s.role == *role) {
            let change = match &step.change {
                Some(c) if step.state == StepState::Change => format!("   ({} → {})", c.from, c.to),
                _ => String::new(),
            };
            let _ = writeln!(
                o,
                "  {} {}{change}",
                step.state.symbol(),
                step.apply.display()
            );
            for line in wrap(&step.reason, WIDTH - 6) {
                let _ = writeln!(o, "      {line}");
            }
            // Inside the one transaction: each rule and why.
            if let crate::backend::Op::NftTable { ruleset, .. } = &step.apply {
                for (hook, rule) in ruleset.rules() {
                    let _ = writeln!(o, "      | {}", rule.text());
                    for line in wrap(&super::nft::why(hook, rule), WIDTH - 10) {
                        let _ = writeln!(o, "          {line}");
                    }
                }
            }
        }
    }
    let s = &plan.summary;
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Plan: {} to add, {} to change, {} already in place.",
        s.add, s.change, s.in_place
    );
    if plan.is_noop() {
        let _ = writeln!(o, "Nothing to do: this host already matches the profile.");
    }
    if !plan.errors.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "Errors (apply refuses until they are fixed)");
        for w in &plan.errors {
            for (i, line) in wrap(w, WIDTH - 4).iter().enumerate() {
                let _ = writeln!(o, "  {} {line}", if i == 0 { "✗" } else { " " });
            }
        }
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(o);
        let _ = writeln!(o, "Warnings");
        for w in &plan.warnings {
            for (i, line) in wrap(w, WIDTH - 4).iter().enumerate() {
                let _ = writeln!(o, "  {} {line}", if i == 0 { "!" } else { " " });
            }
        }
    }
    o
}
