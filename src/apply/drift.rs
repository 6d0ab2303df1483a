//! Drift: what a kept transaction put in place that is missing or changed
//! on the host now (a firewall reload, a VPN link that went down and took
//! its routes, a hand edit). Read from the journal's done steps and the
//! host facts; only the shapes dscproute itself runs are checked.

use super::executor::{sysctl_assignment, sysctl_path};
use super::journal::{Journal, StepStatus};
use crate::plan::Effect;
use crate::plan::ownership::is_our_proto;
use crate::plan::ruleset::Ruleset;
use crate::probe::HostFacts;
use serde::Serialize;
use std::path::Path;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    Missing,
    Changed,
}

/// One thing no longer as the transaction left it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub kind: DriftKind,
    /// What it is, for people: "IPv4 mangle PREROUTING rule `…`".
    pub what: String,
    /// The command that had put it in place.
    pub command: String,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            DriftKind::Missing => "missing",
            DriftKind::Changed => "changed",
        };
        write!(f, "{kind}: {}", self.what)
    }
}

/// Everything the done steps of `journal` created or set that the host no
/// longer shows. `root` is where files and /proc/sys are read ("/").
pub fn find(journal: &Journal, facts: &HostFacts, root: &Path) -> Vec<Drift> {
    let v4 = facts.iptables_save.as_deref().map(Ruleset::parse);
    let v6 = facts.ip6tables_save.as_deref().map(Ruleset::parse);
    let mut out = Vec::new();
    for js in journal
        .steps
        .iter()
        .filter(|s| s.status == StepStatus::Done)
    {
        let command = js.step.apply.display();
        let found = match &js.step.apply {
            Effect::Run { argv } => {
                let a: Vec<&str> = argv.iter().map(String::as_str).collect();
                match a.first().copied() {
                    Some("iptables") => netfilter(&a, "IPv4", v4.as_ref()),
                    Some("ip6tables") => netfilter(&a, "IPv6", v6.as_ref()),
                    Some("ip") => iproute(&a, facts),
                    Some("sysctl") => sysctl(argv, facts, root),
                    _ => None,
                }
            }
            Effect::WriteFile { path, contents } => {
                match std::fs::read_to_string(root.join(path.trim_start_matches('/'))) {
                    Ok(now) if now == *contents => None,
                    Ok(_) => Some((DriftKind::Changed, format!("file {path}"))),
                    Err(_) => Some((DriftKind::Missing, format!("file {path}"))),
                }
            }
            _ => None,
        };
        if let Some((kind, what)) = found {
            out.push(Drift {
                kind,
                what,
                command,
            });
        }
    }
    out
}

/// `iptables -w -t T -N C` / `-A|-I C SPEC…`; unknown when the ruleset
/// could not be read.
fn netfilter(a: &[&str], family: &str, rs: Option<&Ruleset>) -> Option<(DriftKind, String)> {
    let rs = rs?;
    if a.len() < 6 || a[1] != "-w" || a[2] != "-t" {
        return None;
    }
    let (table, op, chain) = (a[3], a[4], a[5]);
    let spec = a[6..].join(" ");
    match op {
        "-N" if !rs.has_chain(table, chain) => Some((
            DriftKind::Missing,
            format!("{family} {table} chain {chain}"),
        )),
        "-A" | "-I" if !rs.has_rule(table, chain, &spec) => Some((
            DriftKind::Missing,
            format!("{family} {table} {chain} rule `{spec}`"),
        )),
        _ => None,
    }
}

/// The value after `key` in an argv.
fn arg<'a>(a: &[&'a str], key: &str) -> Option<&'a str> {
    a.iter()
        .position(|w| *w == key)
        .and_then(|i| a.get(i + 1))
        .copied()
}

fn hex(s: &str) -> Option<u32> {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// `ip -4|-6 rule add …` and `ip -4|-6 route add|replace …`, as the plan
/// writes them.
fn iproute(a: &[&str], facts: &HostFacts) -> Option<(DriftKind, String)> {
    let v6 = match a.get(1) {
        Some(&"-4") => false,
        Some(&"-6") => true,
        _ => return None,
    };
    let fam = if v6 { "IPv6" } else { "IPv4" };
    match (a.get(2).copied(), a.get(3).copied()) {
        (Some("rule"), Some("add")) => {
            let pref: u32 = arg(a, "pref")?.parse().ok()?;
            let (mark, mask) = arg(a, "fwmark")?.split_once('/')?;
            let (mark, mask) = (hex(mark)?, hex(mask)?);
            let lookup = arg(a, "lookup");
            let suppress = arg(a, "suppress_prefixlength").and_then(|n| n.parse().ok());
            let rules = if v6 { &facts.rules_v6 } else { &facts.rules_v4 };
            let same_table = |printed: &str, wanted: &str| {
                printed == wanted || facts.table_id(printed) == facts.table_id(wanted)
            };
            let present = rules.iter().any(|r| {
                r.priority == pref
                    && is_our_proto(r.protocol.as_deref())
                    && r.fwmark == Some(mark)
                    && r.fwmask.unwrap_or(u32::MAX) == mask
                    && match lookup {
                        Some(t) => {
                            r.action.is_none()
                                && r.table.as_deref().is_some_and(|p| same_table(p, t))
                                && r.suppress_prefixlength == suppress
                        }
                        None => {
                            a.contains(&"unreachable") && r.action.as_deref() == Some("unreachable")
                        }
                    }
            });
            let taken = rules.iter().any(|r| r.priority == pref);
            let rest = a[4..]
                .iter()
                .take_while(|w| **w != "proto")
                .copied()
                .collect::<Vec<_>>()
                .join(" ");
            (!present).then(|| {
                let kind = if taken {
                    DriftKind::Changed
                } else {
                    DriftKind::Missing
                };
                (kind, format!("{fam} policy rule `{rest}`"))
            })
        }
        (Some("route"), Some("add" | "replace")) => {
            let dst = a.get(4).copied()?;
            let table = facts.table_id(arg(a, "table")?)?;
            let via = arg(a, "via");
            let dev = arg(a, "dev");
            let routes = if v6 {
                &facts.routes_v6
            } else {
                &facts.routes_v4
            };
            let ours_here = |r: &&crate::probe::Route| {
                r.dst == dst
                    && facts.table_id(&r.table) == Some(table)
                    && is_our_proto(r.protocol.as_deref())
            };
            let present = routes
                .iter()
                .filter(ours_here)
                .any(|r| r.gateway.as_deref() == via && r.dev.as_deref() == dev);
            let kind = if routes.iter().any(|r| ours_here(&r)) {
                DriftKind::Changed
            } else {
                DriftKind::Missing
            };
            let mut what = format!("{fam} route {dst}");
            if let Some(v) = via {
                what.push_str(&format!(" via {v}"));
            }
            if let Some(d) = dev {
                what.push_str(&format!(" dev {d}"));
            }
            what.push_str(&format!(" table {table}"));
            (!present).then_some((kind, what))
        }
        _ => None,
    }
}

/// `sysctl -q -w key=value`: the value we set, unless changed since.
fn sysctl(argv: &[String], facts: &HostFacts, root: &Path) -> Option<(DriftKind, String)> {
    let (key, want) = sysctl_assignment(argv)?;
    let now = facts.sysctl(key).map(str::to_string).or_else(|| {
        std::fs::read_to_string(root.join(sysctl_path(key)))
            .ok()
            .map(|s| s.trim().to_string())
    });
    match now {
        Some(v) if v == want => None,
        Some(v) => Some((
            DriftKind::Changed,
            format!("sysctl {key} is {v}, was set to {want}"),
        )),
        None => Some((
            DriftKind::Missing,
            format!("sysctl {key} (set to {want}) no longer exists"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Role, Step, StepState};
    use crate::probe::{Route, Rule};

    fn step(argv: &str) -> Step {
        Step {
            role: Role::Gateway,
            state: StepState::Add,
            apply: Effect::run(argv.split(' ').map(str::to_string).collect()),
            undo: Effect::run(vec!["true".into()]),
            reason: String::new(),
            change: None,
        }
    }

    const JUMP: &str =
        "iptables -w -t mangle -I PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE";
    const CHAIN: &str = "iptables -w -t mangle -N DSCPROUTE-ROUTE";
    const RULE: &str = "ip -4 rule add pref 10000 fwmark 0x1/0xff lookup 100 proto 213";
    const UNREACH: &str = "ip -4 rule add pref 10001 fwmark 0x1/0xff unreachable proto 213";
    const ROUTE: &str = "ip -4 route add default via 10.8.0.1 dev wg0 table 100 proto 213";
    const FWD: &str = "sysctl -q -w net.ipv4.ip_forward=1";

    fn journal() -> Journal {
        let mut j = Journal::new(
            "gw.toml",
            [CHAIN, JUMP, RULE, UNREACH, ROUTE, FWD].map(step).to_vec(),
        );
        for s in &mut j.steps {
            s.status = StepStatus::Done;
        }
        j
    }

    fn host() -> HostFacts {
        let mut f = HostFacts {
            iptables_save: Some(
                "*mangle\n:PREROUTING ACCEPT [0:0]\n:DSCPROUTE-ROUTE - [0:0]\n\
                 -A PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE\nCOMMIT\n"
                    .into(),
            ),
            ..HostFacts::default()
        };
        let ours = Some("213".to_string());
        f.rules_v4 = vec![
            Rule {
                priority: 10000,
                fwmark: Some(1),
                fwmask: Some(0xff),
                table: Some("100".into()),
                protocol: ours.clone(),
                ..Rule::default()
            },
            Rule {
                priority: 10001,
                fwmark: Some(1),
                fwmask: Some(0xff),
                action: Some("unreachable".into()),
                protocol: ours.clone(),
                ..Rule::default()
            },
        ];
        f.routes_v4 = vec![Route {
            dst: "default".into(),
            gateway: Some("10.8.0.1".into()),
            dev: Some("wg0".into()),
            table: "100".into(),
            protocol: ours,
            ..Route::default()
        }];
        f.sysctls.insert("net.ipv4.ip_forward".into(), "1".into());
        f
    }

    #[test]
    fn nothing_when_the_host_is_as_applied() {
        assert_eq!(find(&journal(), &host(), Path::new("/nonexistent")), []);
    }

    #[test]
    fn names_each_missing_or_changed_part() {
        let mut f = host();
        f.iptables_save =
            Some("*mangle\n:PREROUTING ACCEPT [0:0]\n:DSCPROUTE-ROUTE - [0:0]\nCOMMIT\n".into());
        f.routes_v4.clear(); // the VPN link went down
        f.rules_v4[1].action = Some("blackhole".into());
        f.sysctls.insert("net.ipv4.ip_forward".into(), "0".into());
        let d: Vec<String> = find(&journal(), &f, Path::new("/nonexistent"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            d,
            [
                "missing: IPv4 mangle PREROUTING rule `-m comment --comment dscproute -j DSCPROUTE-ROUTE`",
                "changed: IPv4 policy rule `pref 10001 fwmark 0x1/0xff unreachable`",
                "missing: IPv4 route default via 10.8.0.1 dev wg0 table 100",
                "changed: sysctl net.ipv4.ip_forward is 0, was set to 1",
            ]
        );
    }

    #[test]
    fn undone_steps_and_unreadable_rulesets_are_not_drift() {
        let mut j = journal();
        j.steps[1].status = StepStatus::Undone;
        let mut f = host();
        f.iptables_save = Some("*mangle\nCOMMIT\n".into());
        let d = find(&j, &f, Path::new("/nonexistent"));
        assert_eq!(d.len(), 1, "only the chain: {d:?}");
        f.iptables_save = None;
        assert_eq!(find(&j, &f, Path::new("/nonexistent")), []);
    }

    #[test]
    fn a_file_we_wrote_is_checked() {
        let t = tempfile::tempdir().unwrap();
        let mut j = journal();
        j.steps = vec![j.steps[0].clone()];
        j.steps[0].step.apply = Effect::WriteFile {
            path: "/etc/x.conf".into(),
            contents: "100 vpn\n".into(),
        };
        let f = host();
        let d = find(&j, &f, t.path());
        assert_eq!(d[0].to_string(), "missing: file /etc/x.conf");
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/x.conf"), "100 vpn\n").unwrap();
        assert_eq!(find(&j, &f, t.path()), []);
    }
}
