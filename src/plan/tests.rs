//! The plan engine against host facts recorded in namespaces
//! (tests/fixtures/plan/, see its README and record.sh): exact argv lists and
//! their undo, step order, in-place detection, conflicts, every preflight and
//! choice error, and snapshots of the preview, the JSON and the script.
//! Nothing here needs root: the facts come from JSON.

use super::*;
use crate::backend::Effect;
use crate::ownership::RT_TABLES_DROPIN;
use crate::probe::{Group, HostFacts, RtTable, Rule};
use crate::profile::Profile;
use std::path::Path;

const DIR: &str = "tests/fixtures/plan";

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn facts(name: &str) -> HostFacts {
    serde_json::from_str(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn profile(name: &str) -> Profile {
    Profile::parse(&read(name), &format!("{DIR}/{name}")).unwrap()
}

fn inline(toml: &str) -> Profile {
    Profile::parse(toml, "inline.toml").unwrap_or_else(|e| panic!("{e}"))
}

fn plan_with(p: &Profile, f: &HostFacts) -> Plan {
    plan(p, f, PlanOptions::default()).unwrap_or_else(|e| panic!("plan refused: {e}"))
}

fn plan_of(profile_name: &str, facts_name: &str) -> Plan {
    plan_with(&profile(profile_name), &facts(facts_name))
}

fn for_script(p: &Profile, f: &HostFacts) -> Plan {
    plan(
        p,
        f,
        PlanOptions {
            for_script: true,
            ..PlanOptions::default()
        },
    )
    .unwrap()
}

/// Every step's apply, one a line, for failure messages.
fn listing(p: &Plan) -> String {
    p.steps
        .iter()
        .map(|s| format!("  {} {}", s.state.symbol(), s.apply.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn position(p: &Plan, apply: &str) -> Option<usize> {
    p.steps.iter().position(|s| s.apply.display() == apply)
}

fn has(p: &Plan, apply: &str) -> bool {
    position(p, apply).is_some()
}

fn idx(p: &Plan, apply: &str) -> usize {
    position(p, apply).unwrap_or_else(|| panic!("no step `{apply}` in:\n{}", listing(p)))
}

fn step<'p>(p: &'p Plan, apply: &str) -> &'p Step {
    &p.steps[idx(p, apply)]
}

/// What an operation runs as: these tests pin the commands themselves.
fn argv(op: &Op) -> Vec<String> {
    match op.effect() {
        Effect::Run { argv } => argv,
        other => panic!("not a command: {other:?}"),
    }
}

fn words(e: &Effect) -> Vec<String> {
    match e {
        Effect::Run { argv } => argv.clone(),
        _ => Vec::new(),
    }
}

/// Assert the exact apply and undo argv of the step whose apply is `apply`.
#[track_caller]
fn assert_step(p: &Plan, apply: &[&str], undo: &[&str]) {
    let s = step(p, &apply.join(" "));
    assert_eq!(argv(&s.apply), apply);
    assert_eq!(argv(&s.undo), undo);
}

/// Undo of creating one of our chains: delete it and, when it was the first
/// chain in a table iptables-nft had not created yet, drop that table again
/// while empty.
fn chain_undo(tool: &str, table: &str, chain: &str, drops_table: bool) -> Effect {
    let delete = Effect::run(
        [tool, "-w", "-t", table, "-X", chain]
            .iter()
            .map(|w| w.to_string())
            .collect(),
    );
    if !drops_table {
        return delete;
    }
    let family = if tool == "iptables" { "ip" } else { "ip6" };
    Effect::Seq {
        effects: vec![
            delete,
            Effect::DropEmptyTable {
                family: family.into(),
                table: table.into(),
            },
        ],
    }
}

#[track_caller]
fn assert_chain(p: &Plan, tool: &str, table: &str, chain: &str, drops_table: bool) {
    let s = step(p, &format!("{tool} -w -t {table} -N {chain}"));
    assert_eq!(argv(&s.apply), [tool, "-w", "-t", table, "-N", chain]);
    assert_eq!(s.undo.effect(), chain_undo(tool, table, chain, drops_table));
}

fn has_text(list: &[String], needle: &str) -> bool {
    list.iter().any(|l| l.contains(needle))
}

#[track_caller]
fn assert_has(list: &[String], needle: &str) {
    assert!(has_text(list, needle), "no {needle:?} in {list:#?}");
}

fn torrent_gid(f: &HostFacts) -> String {
    f.group_by_name("torrent")
        .expect("fixture has the group torrent")
        .gid
        .to_string()
}

/// Fixture plans that must apply cleanly, with the facts they came from.
const CLEAN: [(&str, &str); 5] = [
    ("gateway.toml", "gateway-clean.json"),
    ("gateway-auto.toml", "gateway-clean.json"),
    ("p2p.toml", "gateway-p2p-pointopoint.json"),
    ("client.toml", "client.json"),
    ("both.toml", "both.json"),
];

/// The same profiles against the host after their script was applied.
const APPLIED: [(&str, &str); 4] = [
    ("gateway.toml", "gateway-applied.json"),
    ("p2p.toml", "gateway-p2p-pointopoint-applied.json"),
    ("client.toml", "client-applied.json"),
    ("both.toml", "both-applied.json"),
];

// ---------------------------------------------------------------- argv lists

#[test]
fn gateway_marking_rule_and_its_undo_for_both_families() {
    let p = plan_of("gateway.toml", "gateway-clean.json");
    for tool in ["iptables", "ip6tables"] {
        let rule = |op| {
            vec![
                tool,
                "-w",
                "-t",
                "mangle",
                op,
                "DSCPROUTE-ROUTE",
                "!",
                "-i",
                "wg0",
                "-m",
                "dscp",
                "--dscp",
                "0x07",
                "-j",
                "MARK",
                "--set-xmark",
                "0x3/0xff",
            ]
        };
        assert_step(&p, &rule("-A"), &rule("-D"));
        let restore = |op| {
            vec![
                tool,
                "-w",
                "-t",
                "mangle",
                op,
                "DSCPROUTE-ROUTE",
                "-j",
                "CONNMARK",
                "--restore-mark",
                "--nfmask",
                "0xff",
                "--ctmask",
                "0xff",
            ]
        };
        assert_step(&p, &restore("-A"), &restore("-D"));
        let save = |op| {
            vec![
                tool,
                "-w",
                "-t",
                "mangle",
                op,
                "DSCPROUTE-ROUTE",
                "-m",
                "mark",
                "--mark",
                "0x3/0xff",
                "-j",
                "CONNMARK",
                "--save-mark",
                "--nfmask",
                "0xff",
                "--ctmask",
                "0xff",
            ]
        };
        assert_step(&p, &save("-A"), &save("-D"));
        // The first chain in mangle on a host whose iptables-save lists no tables.
        assert_chain(&p, tool, "mangle", "DSCPROUTE-ROUTE", true);
        let jump = |op| {
            vec![
                tool,
                "-w",
                "-t",
                "mangle",
                op,
                "PREROUTING",
                "-m",
                "comment",
                "--comment",
                "dscproute",
                "-j",
                "DSCPROUTE-ROUTE",
            ]
        };
        assert_step(&p, &jump("-I"), &jump("-D"));
    }
}

#[test]
fn gateway_policy_rules_for_both_families() {
    let p = plan_of("gateway.toml", "gateway-clean.json");
    for fam in ["-4", "-6"] {
        let lan = |op| {
            vec![
                "ip",
                fam,
                "rule",
                op,
                "pref",
                "9999",
                "fwmark",
                "0x3/0xff",
                "lookup",
                "main",
                "suppress_prefixlength",
                "0",
                "proto",
                "213",
            ]
        };
        assert_step(&p, &lan("add"), &lan("del"));
        let lookup = |op| {
            vec![
                "ip", fam, "rule", op, "pref", "10000", "fwmark", "0x3/0xff", "lookup", "100",
                "proto", "213",
            ]
        };
        assert_step(&p, &lookup("add"), &lookup("del"));
        let kill = |op| {
            vec![
                "ip",
                fam,
                "rule",
                op,
                "pref",
                "10001",
                "fwmark",
                "0x3/0xff",
                "unreachable",
                "proto",
                "213",
            ]
        };
        assert_step(&p, &kill("add"), &kill("del"));
    }
    // Written top to bottom as the kernel reads them.
    for fam in ["-4", "-6"] {
        let a = idx(
            &p,
            &format!(
                "ip {fam} rule add pref 9999 fwmark 0x3/0xff lookup main suppress_prefixlength 0 proto 213"
            ),
        );
        let b = idx(
            &p,
            &format!("ip {fam} rule add pref 10000 fwmark 0x3/0xff lookup 100 proto 213"),
        );
        let c = idx(
            &p,
            &format!("ip {fam} rule add pref 10001 fwmark 0x3/0xff unreachable proto 213"),
        );
        assert!(a < b && b < c, "{}", listing(&p));
    }
}

#[test]
fn gateway_routes_nat_scrub_and_table_name() {
    let p = plan_of("gateway.toml", "gateway-clean.json");
    let r4 = |op| {
        vec![
            "ip", "-4", "route", op, "default", "via", "10.8.0.1", "dev", "wg0", "table", "100",
            "proto", "213",
        ]
    };
    assert_step(&p, &r4("add"), &r4("del"));
    let r6 = |op| {
        vec![
            "ip", "-6", "route", op, "default", "via", "fd00::1", "dev", "wg0", "table", "100",
            "proto", "213",
        ]
    };
    assert_step(&p, &r6("add"), &r6("del"));
    for tool in ["iptables", "ip6tables"] {
        let nat = |op| {
            vec![
                tool,
                "-w",
                "-t",
                "nat",
                op,
                "DSCPROUTE-NAT",
                "-m",
                "mark",
                "--mark",
                "0x3/0xff",
                "-j",
                "MASQUERADE",
            ]
        };
        assert_step(&p, &nat("-A"), &nat("-D"));
        let nat_jump = |op| {
            vec![
                tool,
                "-w",
                "-t",
                "nat",
                op,
                "POSTROUTING",
                "-o",
                "wg0",
                "-m",
                "comment",
                "--comment",
                "dscproute",
                "-j",
                "DSCPROUTE-NAT",
            ]
        };
        assert_step(&p, &nat_jump("-I"), &nat_jump("-D"));
        let scrub = |op| {
            vec![
                tool,
                "-w",
                "-t",
                "mangle",
                op,
                "DSCPROUTE-SCRUB",
                "-m",
                "dscp",
                "--dscp",
                "0x07",
                "-j",
                "DSCP",
                "--set-dscp",
                "0x00",
            ]
        };
        assert_step(&p, &scrub("-A"), &scrub("-D"));
        let scrub_jump = |op| {
            vec![
                tool,
                "-w",
                "-t",
                "mangle",
                op,
                "POSTROUTING",
                "-o",
                "wg0",
                "-m",
                "comment",
                "--comment",
                "dscproute",
                "-j",
                "DSCPROUTE-SCRUB",
            ]
        };
        assert_step(&p, &scrub_jump("-I"), &scrub_jump("-D"));
    }
    let dropin = &p.steps[0];
    assert_eq!(
        dropin.apply.effect(),
        Effect::WriteFile {
            path: "/etc/iproute2/rt_tables.d/dscproute.conf".into(),
            contents: "100 vpn\n".into(),
        }
    );
    assert_eq!(
        dropin.undo.effect(),
        Effect::RemoveFile {
            path: RT_TABLES_DROPIN.into()
        }
    );
    assert_eq!(dropin.state, StepState::Add);
}

#[test]
fn gateway_sysctls_carry_old_and_new_values() {
    let p = plan_of("gateway.toml", "gateway-clean.json");
    for (key, from, to) in [
        ("net.ipv4.ip_forward", "0", "1"),
        ("net.ipv6.conf.all.forwarding", "0", "1"),
        ("net.ipv4.conf.wg0.rp_filter", "1", "2"),
    ] {
        let s = step(&p, &format!("sysctl -q -w {key}={to}"));
        assert_eq!(s.state, StepState::Change, "{key}");
        assert_eq!(
            s.change,
            Some(ValueChange {
                from: from.into(),
                to: to.into()
            })
        );
        assert_eq!(
            argv(&s.apply),
            ["sysctl", "-q", "-w", &format!("{key}={to}")]
        );
        assert_eq!(
            argv(&s.undo),
            ["sysctl", "-q", "-w", &format!("{key}={from}")]
        );
    }
    assert!(
        step(&p, "sysctl -q -w net.ipv4.conf.wg0.rp_filter=2")
            .reason
            .contains("max(all=1, wg0=1) = 1")
    );
}

#[test]
fn sysctl_unknown_on_this_host_is_a_change_from_unknown() {
    let mut f = facts("gateway-clean.json");
    f.sysctls.remove("net.ipv4.ip_forward");
    let p = plan_with(&profile("gateway.toml"), &f);
    let s = step(&p, "sysctl -q -w net.ipv4.ip_forward=1");
    assert_eq!(s.state, StepState::Change);
    assert_eq!(s.change.as_ref().unwrap().from, "unknown");
    assert_eq!(
        argv(&s.undo),
        ["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"]
    );
}

#[test]
fn client_argv_uses_the_numeric_gid() {
    let f = facts("client.json");
    let gid = torrent_gid(&f);
    let p = plan_with(&profile("client.toml"), &f);
    assert_eq!(p.roles, [Role::Marker]);
    assert_eq!(p.resolved.group.as_deref(), Some(gid.as_str()));
    assert_eq!(p.steps.len(), 8, "{}", listing(&p));
    for tool in ["iptables", "ip6tables"] {
        let tag = |op| {
            vec![
                tool,
                "-w",
                "-t",
                "mangle",
                op,
                "DSCPROUTE-MARK",
                "-m",
                "owner",
                "--gid-owner",
                gid.as_str(),
                "-j",
                "CONNMARK",
                "--set-xmark",
                "0x1/0xff",
            ]
        };
        assert_step(&p, &tag("-A"), &tag("-D"));
        let jump = |op| {
            vec![
                tool,
                "-w",
                "-t",
                "mangle",
                op,
                "OUTPUT",
                "-m",
                "comment",
                "--comment",
                "dscproute",
                "-j",
                "DSCPROUTE-MARK",
            ]
        };
        assert_step(&p, &jump("-I"), &jump("-D"));
        assert_chain(&p, tool, "mangle", "DSCPROUTE-MARK", true);
    }
    assert!(p.steps.iter().all(|s| s.role == Role::Marker));
    assert!(p.errors.is_empty() && p.warnings.is_empty(), "{p:#?}");
}

/// Marking is per connection: the group's sockets tag their connection in
/// conntrack, and every packet of a tagged connection gets the DSCP, also a
/// last ACK or FIN sent after the program closed its socket (no owner left
/// for `-m owner` to match).
#[test]
fn a_client_marks_whole_connections_through_the_connmark() {
    let f = facts("client.json");
    let gid = torrent_gid(&f);
    let p = plan_with(&profile("client.toml"), &f);
    // A client resolves a connection mark of its own: the first free value
    // in the default mask, chosen like the gateway's.
    assert_eq!((p.resolved.mark, p.resolved.mask), (Some(1), Some(0xff)));
    for tool in ["iptables", "ip6tables"] {
        let dscp = |op| {
            vec![
                tool,
                "-w",
                "-t",
                "mangle",
                op,
                "DSCPROUTE-MARK",
                "-m",
                "connmark",
                "--mark",
                "0x1/0xff",
                "-j",
                "DSCP",
                "--set-dscp",
                "0x07",
            ]
        };
        assert_step(&p, &dscp("-A"), &dscp("-D"));
        let chain = idx(&p, &format!("{tool} -w -t mangle -N DSCPROUTE-MARK"));
        let tag = idx(
            &p,
            &format!(
                "{tool} -w -t mangle -A DSCPROUTE-MARK -m owner --gid-owner {gid} -j CONNMARK \
                 --set-xmark 0x1/0xff"
            ),
        );
        let set = idx(&p, &dscp("-A").join(" "));
        let jump = idx(
            &p,
            &format!(
                "{tool} -w -t mangle -I OUTPUT -m comment --comment dscproute -j DSCPROUTE-MARK"
            ),
        );
        // The connection is tagged before the rule that gives its packets the
        // DSCP (so the first packet gets it too), and the chain is linked last.
        assert!(chain < tag && tag < set && set < jump, "{}", listing(&p));
        // The DSCP follows the connection, not the socket: no owner match on
        // the DSCP rule, and no per-packet DSCP rule left.
        let rules: Vec<String> = p
            .steps
            .iter()
            .map(|s| s.apply.display())
            .filter(|a| a.starts_with(&format!("{tool} -w -t mangle -A DSCPROUTE-MARK")))
            .collect();
        assert_eq!(rules.len(), 2, "{rules:#?}");
        let sets_dscp: Vec<&String> = rules.iter().filter(|r| r.contains("-j DSCP ")).collect();
        assert_eq!(sets_dscp.len(), 1);
        assert!(sets_dscp[0].contains("-m connmark --mark 0x1/0xff"));
        assert!(!sets_dscp[0].contains("--gid-owner"));
        // A client does not route: no firewall mark is set on its packets.
        assert!(!has_text(&rules, "-j MARK"), "{rules:#?}");
    }
}

#[test]
fn a_clients_connection_mark_avoids_marks_other_rules_use() {
    let mut f = facts("client.json");
    f.iptables_save = Some(
        "*mangle\n:OUTPUT ACCEPT [0:0]\n\
         -A OUTPUT -d 192.168.50.0/24 -j MARK --set-xmark 0x1/0xff\nCOMMIT\n"
            .into(),
    );
    let p = plan_with(&profile("client.toml"), &f);
    assert_eq!((p.resolved.mark, p.resolved.mask), (Some(2), Some(0xff)));
    assert!(has(
        &p,
        "iptables -w -t mangle -A DSCPROUTE-MARK -m connmark --mark 0x2/0xff -j DSCP --set-dscp 0x07"
    ));
    // Every value of the default mask taken: nothing to settle on.
    let mut f = facts("client.json");
    f.rules_v4.extend((1..=0xffu32).map(|v| Rule {
        priority: 20000 + v,
        fwmark: Some(v),
        fwmask: Some(0xff),
        table: Some("200".into()),
        ..Rule::default()
    }));
    assert_eq!(
        refused(&profile("client.toml"), &f),
        ["no free connection mark within 0xff on this host: other rules use every value"]
    );
}

#[test]
fn both_roles_mark_local_packets_in_output() {
    let f = facts("both.json");
    let gid = torrent_gid(&f);
    let p = plan_with(&profile("both.toml"), &f);
    assert_eq!(p.roles, [Role::Gateway, Role::Marker]);
    // Mark left out of both.toml: the first free value.
    assert_eq!((p.resolved.mark, p.resolved.mask), (Some(1), Some(0xff)));
    for tool in ["iptables", "ip6tables"] {
        let mark = |op| {
            vec![
                tool,
                "-w",
                "-t",
                "mangle",
                op,
                "DSCPROUTE-MARK",
                "-m",
                "connmark",
                "--mark",
                "0x1/0xff",
                "-j",
                "MARK",
                "--set-xmark",
                "0x1/0xff",
            ]
        };
        assert_step(&p, &mark("-A"), &mark("-D"));
        // The connection is tagged (with the gateway's mark), then its packets
        // get the DSCP and the routing mark, then the chain is linked.
        let tag = idx(
            &p,
            &format!(
                "{tool} -w -t mangle -A DSCPROUTE-MARK -m owner --gid-owner {gid} -j CONNMARK \
                 --set-xmark 0x1/0xff"
            ),
        );
        let set = idx(
            &p,
            &format!(
                "{tool} -w -t mangle -A DSCPROUTE-MARK -m connmark --mark 0x1/0xff -j DSCP \
                 --set-dscp 0x07"
            ),
        );
        let jump = idx(
            &p,
            &format!(
                "{tool} -w -t mangle -I OUTPUT -m comment --comment dscproute -j DSCPROUTE-MARK"
            ),
        );
        let routed = idx(&p, &mark("-A").join(" "));
        assert!(
            tag < set && set < routed && routed < jump,
            "{}",
            listing(&p)
        );
        // The old per-packet rule (DSCP -> MARK) is gone.
        assert_eq!(
            count(
                &p,
                &format!("{tool} -w -t mangle -A DSCPROUTE-MARK -m dscp")
            ),
            0,
            "{}",
            listing(&p)
        );
    }
}

#[test]
fn only_the_first_chain_in_a_table_iptables_nft_has_not_made_drops_it_on_undo() {
    // Clean gateway: iptables-save listed no tables, so ROUTE (mangle) and NAT
    // (nat) create them; SCRUB comes second in mangle.
    let p = plan_of("gateway.toml", "gateway-clean.json");
    for tool in ["iptables", "ip6tables"] {
        assert_chain(&p, tool, "mangle", "DSCPROUTE-ROUTE", true);
        assert_chain(&p, tool, "mangle", "DSCPROUTE-SCRUB", false);
        assert_chain(&p, tool, "nat", "DSCPROUTE-NAT", true);
    }
    assert!(
        step(&p, "iptables -w -t mangle -N DSCPROUTE-ROUTE")
            .reason
            .contains("this creates the mangle table")
    );
    // Conflicts: the IPv4 tables exist (other tools' rules), the IPv6 ones do not.
    let p = plan_of("gateway.toml", "gateway-conflicts.json");
    assert_chain(&p, "iptables", "mangle", "DSCPROUTE-ROUTE", false);
    assert_chain(&p, "iptables", "nat", "DSCPROUTE-NAT", false);
    assert_chain(&p, "ip6tables", "mangle", "DSCPROUTE-ROUTE", true);
    // Both roles: the marker's chain is the third in mangle.
    let p = plan_of("both.toml", "both.json");
    assert_chain(&p, "iptables", "mangle", "DSCPROUTE-MARK", false);
    // Applied: the tables are there.
    let p = plan_of("gateway.toml", "gateway-applied.json");
    assert_chain(&p, "iptables", "mangle", "DSCPROUTE-ROUTE", false);
    // Legacy iptables has its tables built in; unknown rulesets are left alone.
    let mut f = facts("gateway-clean.json");
    f.iptables_backend = Some(crate::probe::IptablesBackend::Legacy);
    let p = plan_with(&profile("gateway.toml"), &f);
    assert_chain(&p, "iptables", "mangle", "DSCPROUTE-ROUTE", false);
    let mut f = facts("gateway-clean.json");
    f.iptables_save = None;
    let p = plan_with(&profile("gateway.toml"), &f);
    assert_chain(&p, "iptables", "mangle", "DSCPROUTE-ROUTE", false);
    assert_chain(&p, "ip6tables", "mangle", "DSCPROUTE-ROUTE", true);
}

#[test]
fn reasons_are_single_spaced() {
    for (prof, fx) in CLEAN {
        for s in plan_of(prof, fx).steps {
            assert!(!s.reason.contains("  "), "{prof}: {:?}", s.reason);
        }
    }
}

// --------------------------------------------------------------------- order

/// (family tool, ip flag) pairs.
const FAMILIES: [(&str, &str); 2] = [("iptables", "-4"), ("ip6tables", "-6")];

#[test]
fn marking_starts_only_once_its_path_exists() {
    for (prof, fx) in CLEAN {
        let p = plan_of(prof, fx);
        if !p.roles.contains(&Role::Gateway) {
            continue;
        }
        for (tool, fam) in FAMILIES {
            let jump = idx(
                &p,
                &format!(
                    "{tool} -w -t mangle -I PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE"
                ),
            );
            for (i, s) in p.steps.iter().enumerate() {
                let w = words(&s.apply.effect());
                let is_path = matches!(s.apply, Op::WriteTableNames { .. })
                    || w.first().is_some_and(|c| c == "sysctl")
                    || (w.first().is_some_and(|c| c == "ip") && w.get(1).is_some_and(|f| f == fam))
                    || (w.first().is_some_and(|c| c == tool)
                        && w.iter()
                            .any(|a| a == "DSCPROUTE-NAT" || a == "DSCPROUTE-SCRUB"));
                if is_path {
                    assert!(
                        i < jump,
                        "{prof} on {fx}: `{}` comes after the marking jump:\n{}",
                        s.apply.display(),
                        listing(&p)
                    );
                }
            }
        }
    }
}

/// DSCPROUTE-ROUTE gives a packet the mark its connection already has, then
/// marks by DSCP, then saves the mark on the connection: restore first, save
/// last, the whole chain filled before PREROUTING jumps into it.
#[test]
fn the_route_chain_restores_marks_and_saves_in_that_order() {
    let plans = CLEAN
        .iter()
        .chain(APPLIED.iter())
        .chain([("gateway.toml", "gateway-conflicts.json")].iter());
    for (prof, fx) in plans {
        let p = plan_of(prof, fx);
        if !p.roles.contains(&Role::Gateway) {
            continue;
        }
        let (mark, mask) = (p.resolved.mark.unwrap(), p.resolved.mask.unwrap());
        for (tool, _) in FAMILIES {
            let chain = idx(&p, &format!("{tool} -w -t mangle -N DSCPROUTE-ROUTE"));
            let prefix = format!("{tool} -w -t mangle -A DSCPROUTE-ROUTE ");
            let rules: Vec<(usize, String)> = p
                .steps
                .iter()
                .enumerate()
                .map(|(i, s)| (i, s.apply.display()))
                .filter(|(_, a)| a.starts_with(&prefix))
                .map(|(i, a)| (i, a[prefix.len()..].to_string()))
                .collect();
            let specs: Vec<&str> = rules.iter().map(|(_, r)| r.as_str()).collect();
            assert_eq!(
                specs,
                [
                    format!("-j CONNMARK --restore-mark --nfmask {mask:#x} --ctmask {mask:#x}"),
                    format!("! -i wg0 -m dscp --dscp 0x07 -j MARK --set-xmark {mark:#x}/{mask:#x}"),
                    format!(
                        "-m mark --mark {mark:#x}/{mask:#x} -j CONNMARK --save-mark --nfmask \
                         {mask:#x} --ctmask {mask:#x}"
                    ),
                ],
                "{prof} on {fx}:\n{}",
                listing(&p)
            );
            let jump = idx(
                &p,
                &format!(
                    "{tool} -w -t mangle -I PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE"
                ),
            );
            let (first, last) = (rules[0].0, rules[2].0);
            assert!(
                chain < first && first < rules[1].0 && rules[1].0 < last && last < jump,
                "{prof} on {fx}:\n{}",
                listing(&p)
            );
        }
    }
}

/// The rules of `chain` as they stand on the host once the plan ran: the
/// host's rules (from the facts), then each pending step's `-A`, `-I` or `-D`.
fn chain_after(p: &Plan, f: &HostFacts, tool: &str, table: &str, chain: &str) -> Vec<String> {
    let save = if tool == "iptables" {
        &f.iptables_save
    } else {
        &f.ip6tables_save
    };
    let mut rules: Vec<String> = save
        .as_deref()
        .map(ruleset::Ruleset::parse)
        .map(|rs| {
            rs.rules()
                .filter(|(t, c, _)| *t == table && *c == chain)
                .map(|(_, _, spec)| spec.to_string())
                .collect()
        })
        .unwrap_or_default();
    for s in p.pending() {
        let w = words(&s.apply.effect());
        if w.len() < 6 || w[0] != tool || w[3] != table || w[5] != chain {
            continue;
        }
        let spec = w[6..].join(" ");
        match w[4].as_str() {
            "-A" => rules.push(spec),
            "-I" => rules.insert(0, spec),
            "-D" => rules.retain(|r| *r != spec),
            "-F" => rules.clear(),
            _ => {}
        }
    }
    rules
}

#[track_caller]
fn assert_route_chain_in_order(prof: &str, fx: &str) {
    let f = facts(fx);
    let p = plan_with(&profile(prof), &f);
    let (mark, mask) = (p.resolved.mark.unwrap(), p.resolved.mask.unwrap());
    let dscp = p.resolved.dscp;
    for (tool, _) in FAMILIES {
        assert_eq!(
            chain_after(&p, &f, tool, "mangle", "DSCPROUTE-ROUTE"),
            [
                format!("-j CONNMARK --restore-mark --nfmask {mask:#x} --ctmask {mask:#x}"),
                format!(
                    "! -i wg0 -m dscp --dscp {dscp:#04x} -j MARK --set-xmark {mark:#x}/{mask:#x}"
                ),
                format!(
                    "-m mark --mark {mark:#x}/{mask:#x} -j CONNMARK --save-mark --nfmask \
                     {mask:#x} --ctmask {mask:#x}"
                ),
            ],
            "{tool}: {prof} applied on {fx}:\n{}",
            listing(&p)
        );
    }
}

/// Applied on a clean or an already applied host, DSCPROUTE-ROUTE ends up
/// restore, mark, save.
#[test]
fn the_route_chain_on_the_host_ends_up_restore_mark_save() {
    for (prof, fx) in CLEAN.iter().chain(APPLIED.iter()) {
        if profile(prof).gateway.is_some() {
            assert_route_chain_in_order(prof, fx);
        }
    }
}

/// On a host where an earlier setup with another DSCP is applied, restore and
/// save are already in place; appending the new marking rule would leave the
/// chain restore, save, mark (a packet's mark never saved on its connection),
/// so the planner rebuilds the chain in order.
#[test]
fn the_route_chain_keeps_its_order_after_a_dscp_change() {
    assert_route_chain_in_order("gateway.toml", "gateway-stale.json");
}

/// The same on the client: after a group change the new CONNMARK rule must
/// come before the connmark -> DSCP rule, or a connection's first packet (the
/// SYN) would leave without the DSCP.
#[test]
fn the_mark_chain_tags_before_it_sets_the_dscp_after_a_group_change() {
    let f = facts("client-applied.json");
    let p = plan_with(&inline("[marker]\ngroup = 4242\ndscp = 7\n"), &f);
    for (tool, _) in FAMILIES {
        assert_eq!(
            chain_after(&p, &f, tool, "mangle", "DSCPROUTE-MARK"),
            [
                "-m owner --gid-owner 4242 -j CONNMARK --set-xmark 0x1/0xff",
                "-m connmark --mark 0x1/0xff -j DSCP --set-dscp 0x07",
            ],
            "{tool}:\n{}",
            listing(&p)
        );
    }
}

#[test]
fn chains_are_filled_before_they_are_linked() {
    for (prof, fx) in CLEAN {
        let p = plan_of(prof, fx);
        for (i, s) in p.steps.iter().enumerate() {
            let w = words(&s.apply.effect());
            if w.len() < 6 {
                continue;
            }
            let (tool, table, op, chain) = (&w[0], &w[3], &w[4], &w[5]);
            let target = w.last().unwrap();
            if op == "-A" && chain.starts_with("DSCPROUTE-") {
                let create = idx(&p, &format!("{tool} -w -t {table} -N {chain}"));
                assert!(
                    create < i,
                    "{prof}: rule before its chain:\n{}",
                    listing(&p)
                );
            }
            if op == "-I" {
                // Every rule of the target chain comes before the jump into it.
                for (j, r) in p.steps.iter().enumerate() {
                    let rw = words(&r.apply.effect());
                    if rw.len() > 5 && rw[0] == *tool && rw[4] == "-A" && rw[5] == *target {
                        assert!(j < i, "{prof}: jump before its rules:\n{}", listing(&p));
                    }
                }
            }
        }
    }
}

#[test]
fn on_a_both_roles_host_every_gateway_step_precedes_the_output_jump() {
    for fx in ["both.json", "both-applied.json"] {
        let p = plan_of("both.toml", fx);
        for (tool, _) in FAMILIES {
            let out = idx(
                &p,
                &format!(
                    "{tool} -w -t mangle -I OUTPUT -m comment --comment dscproute -j DSCPROUTE-MARK"
                ),
            );
            let last_gateway = p
                .steps
                .iter()
                .rposition(|s| s.role == Role::Gateway)
                .unwrap();
            assert!(last_gateway < out, "{}", listing(&p));
        }
    }
}

#[test]
fn undo_of_each_step_is_its_inverse() {
    let inverse = |op: &str| match op {
        "-A" => "-D",
        "-N" => "-X",
        "-I" => "-D",
        "add" => "del",
        // Stale leftovers: removing is the apply, restoring the undo.
        "-D" => "-A",
        "-X" => "-N",
        "del" => "add",
        other => panic!("unexpected operation {other}"),
    };
    let mut plans: Vec<Plan> = CLEAN.iter().map(|(p, f)| plan_of(p, f)).collect();
    plans.push(plan_of("gateway.toml", "gateway-stale.json"));
    plans.push(plan_of("gateway.toml", "gateway-conflicts.json"));
    for p in &plans {
        for s in &p.steps {
            match (&s.apply.effect(), &s.undo.effect()) {
                (Effect::WriteFile { path, .. }, Effect::RemoveFile { path: undo }) => {
                    assert_eq!(path, undo)
                }
                (Effect::Run { argv: a }, Effect::Run { argv: u }) if a[0] == "sysctl" => {
                    let key = |v: &str| v.split('=').next().unwrap().to_string();
                    assert_eq!(key(&a[3]), key(&u[3]));
                    // In place: nothing changes, so the undo writes the same value.
                    let same = a[3].split_once('=').unwrap().1;
                    let old = s.change.as_ref().map_or(same, |c| c.from.as_str());
                    let undo_value = u[3].split_once('=').unwrap().1;
                    assert!(old == undo_value || old == "unknown", "{s:?}");
                }
                (Effect::Run { argv: a }, Effect::Seq { effects }) if a[4] == "-F" => {
                    // Rebuilding a chain: undo puts the old rules back, in order.
                    let chain = &a[5];
                    assert!(!effects.is_empty(), "{s:?}");
                    for e in effects {
                        let w = words(e);
                        assert_eq!(
                            (w[0].as_str(), w[4].as_str(), &w[5]),
                            (a[0].as_str(), "-A", chain),
                            "{s:?}"
                        );
                    }
                }
                (Effect::Run { argv: a }, Effect::Seq { effects }) => {
                    // Creating the first chain in a new table: delete it, drop the table.
                    assert_eq!(a[4], "-N", "{s:?}");
                    let family = if a[0] == "iptables" { "ip" } else { "ip6" };
                    assert_eq!(s.undo.effect(), chain_undo(&a[0], &a[3], &a[5], true));
                    assert!(
                        matches!(&effects[1], Effect::DropEmptyTable { family: f, .. } if f == family)
                    );
                }
                (Effect::Run { argv: a }, Effect::Run { argv: u })
                    if a[0] != "ip" && a[4] == "-D" && u[4] == "-I" =>
                {
                    // A removed rule goes back where it was: `-I CHAIN N`.
                    let mut expect = a.clone();
                    expect[4] = "-I".into();
                    expect.insert(6, u[6].clone());
                    assert!(u[6].parse::<u32>().is_ok_and(|n| n >= 1), "{s:?}");
                    assert_eq!(*u, expect, "{s:?}");
                }
                (Effect::Run { argv: a }, Effect::Run { argv: u }) => {
                    // The operation is the 5th word of iptables argv, the 4th of ip.
                    let at = if a[0] == "ip" { 3 } else { 4 };
                    assert_eq!(u[at], inverse(&a[at]), "{s:?}");
                    let mut expect = a.clone();
                    expect[at] = inverse(&a[at]).to_string();
                    assert_eq!(*u, expect, "undo differs beyond the operation: {s:?}");
                }
                other => panic!("unexpected pair {other:?}"),
            }
        }
    }
}

// ------------------------------------------------------------------- states

#[test]
fn clean_hosts_get_only_adds_and_sysctl_changes() {
    for (prof, fx) in CLEAN {
        let p = plan_of(prof, fx);
        assert!(p.errors.is_empty(), "{prof} on {fx}: {:?}", p.errors);
        for s in &p.steps {
            match s.state {
                StepState::Add => {}
                StepState::Change => assert!(
                    words(&s.apply.effect())
                        .first()
                        .is_some_and(|c| c == "sysctl"),
                    "{prof}: {s:?}"
                ),
                StepState::InPlace => panic!("{prof} on {fx}: in place on a clean host: {s:?}"),
            }
        }
        let sum = &p.summary;
        assert_eq!(sum.add + sum.change, p.steps.len());
        assert_eq!(sum.in_place, 0);
        assert!(p.is_applicable() && !p.is_noop());
    }
    let s = plan_of("gateway.toml", "gateway-clean.json").summary;
    assert_eq!((s.add, s.change, s.in_place), (31, 3, 0));
}

/// THE idempotence test: after the plan's own script ran on the host, the
/// plan finds everything in place.
#[test]
fn applied_hosts_are_entirely_in_place() {
    for (prof, fx) in APPLIED {
        let p = plan_of(prof, fx);
        let pending: Vec<String> = p.pending().map(|s| s.apply.display()).collect();
        assert!(
            pending.is_empty(),
            "{prof} on {fx}: not in place: {pending:#?}"
        );
        assert!(p.is_noop() && p.is_applicable(), "{:?}", p.errors);
        assert_eq!(p.summary.add + p.summary.change, 0);
        assert_eq!(p.summary.in_place, p.steps.len());
        let text = render_text(&p, prof);
        assert!(
            text.contains(&format!(
                "Plan: 0 to add, 0 to change, {} already in place.",
                p.steps.len()
            )),
            "{text}"
        );
    }
}

/// The applied plan lists exactly the clean plan's steps, now all in place
/// (rp_filter too: all=1 with wg0=2 is what "loose" leaves behind).
#[test]
fn applied_plan_has_the_clean_plans_steps() {
    let pairs = [
        ("gateway.toml", "gateway-clean.json", "gateway-applied.json"),
        ("client.toml", "client.json", "client-applied.json"),
        ("both.toml", "both.json", "both-applied.json"),
    ];
    for (prof, clean, applied) in pairs {
        let before: Vec<String> = plan_of(prof, clean)
            .steps
            .iter()
            .map(|s| s.apply.display())
            .collect();
        let after: Vec<String> = plan_of(prof, applied)
            .steps
            .iter()
            .map(|s| s.apply.display())
            .collect();
        assert_eq!(before, after, "{prof}");
    }
}

// ---------------------------------------------------------------- conflicts

#[test]
fn conflicts_priority_taken_and_foreign_route_are_errors() {
    let p = plan_of("gateway.toml", "gateway-conflicts.json");
    assert!(!p.is_applicable());
    assert_eq!(p.errors.len(), 3, "{:#?}", p.errors);
    assert_eq!(
        p.errors[0],
        "rule priority 10000 is taken by ip rule 10000: lookup 200: dscproute needs 9999–10001 \
         free; set gateway.priority to another value"
    );
    assert_eq!(
        p.errors[1],
        "routing table 100 already holds routes dscproute did not make (198.51.100.0/24 dev \
         wg0): choose another gateway.table"
    );
    // A rule after ours writes our bits (see mark_writers).
    assert!(
        p.errors[2].starts_with(
            "iptables -t mangle -A PREROUTING -s 192.168.50.10/32 -j MARK --set-xmark 0x1/0xff \
             rewrites mark bits 0xff after dscproute marks the packet"
        ),
        "{}",
        p.errors[2]
    );
    // The preview still stands.
    assert_eq!(p.steps.len(), 34);
}

#[test]
fn conflicts_dscp_and_shared_mark_bits_are_warnings() {
    let p = plan_of("gateway.toml", "gateway-conflicts.json");
    assert_has(
        &p.warnings,
        "DSCP 7 is already used by another rule: iptables -t mangle -A FORWARD -m dscp --dscp \
         0x07 -j ACCEPT",
    );
    // Shared bits written after our rule are an error, not a warning.
    assert!(
        !has_text(&p.warnings, "mark bits 0xff are shared"),
        "{:#?}",
        p.warnings
    );
    // Tailscale, wg-quick and kube-proxy use other bits and priorities.
    assert!(!has_text(&p.warnings, "likely"), "{:#?}", p.warnings);
    let p = plan_with(
        &inline(
            "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nmark = \"0x300\"\n\
             mask = \"0xffff\"\npriority = 20000\ntable = 120\n",
        ),
        &facts("gateway-conflicts.json"),
    );
    assert_has(&p.errors, "--set-xmark 0x1/0xff rewrites mark bits 0xff");
    // Shared bits written where no packet of ours passes (a nat chain
    // nothing jumps to) stay a warning.
    assert_has(
        &p.warnings,
        "mark bits 0x4000 are shared with iptables -t nat -A KUBE-MARK-MASQ -j MARK --set-xmark \
         0x4000/0x4000",
    );
}

#[test]
fn auto_values_avoid_taken_priority_mark_and_table() {
    let p = plan_of("gateway-auto.toml", "gateway-conflicts.json");
    // The default mask cannot dodge a rule that writes it after ours.
    assert_eq!(p.errors.len(), 1, "{:#?}", p.errors);
    assert!(
        p.errors[0].contains("(e.g. mask = \"0xff00\")"),
        "{}",
        p.errors[0]
    );
    let r = &p.resolved;
    // 10000 is taken: the next round number with both neighbours free.
    assert_eq!(r.priority, Some(9990));
    // 0x1/0xff is set by another rule.
    assert_eq!((r.mark, r.mask), (Some(2), Some(0xff)));
    // Table 100 holds a foreign route.
    assert_eq!(r.table_id, Some(101));
    assert_eq!(r.table_name.as_deref(), Some("dscproute"));
    for fam in ["-4", "-6"] {
        for rule in [
            "pref 9989 fwmark 0x2/0xff lookup main suppress_prefixlength 0",
            "pref 9990 fwmark 0x2/0xff lookup 101",
            "pref 9991 fwmark 0x2/0xff unreachable",
        ] {
            assert!(has(&p, &format!("ip {fam} rule add {rule} proto 213")));
        }
    }
    assert_eq!(
        p.steps[0].apply.effect(),
        Effect::WriteFile {
            path: RT_TABLES_DROPIN.into(),
            contents: "101 dscproute\n".into()
        }
    );
    // On a host where nothing is taken, the defaults.
    let clean = plan_of("gateway-auto.toml", "gateway-clean.json").resolved;
    assert_eq!(
        (clean.priority, clean.mark, clean.table_id),
        (Some(10000), Some(1), Some(100))
    );
}

#[test]
fn tailscale_is_named_as_the_likely_owner() {
    // Tailscale's own bits: a collision.
    let p = plan_with(
        &inline(
            "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nmark = \"0x80000\"\n\
             mask = \"0xff0000\"\npriority = 20000\ntable = 120\n",
        ),
        &facts("gateway-conflicts.json"),
    );
    assert_has(
        &p.errors,
        "mark 0x80000/0xff0000 collides with ip rule 5270: fwmark 0x80000/0xff0000 lookup 52 \
         (likely Tailscale)",
    );
    assert_has(
        &p.errors,
        "ip -6 rule 5270: fwmark 0x80000/0xff0000 lookup 52 (likely Tailscale)",
    );
    // Its priority range.
    let p = plan_with(
        &inline("[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\npriority = 5271\n"),
        &facts("gateway-conflicts.json"),
    );
    let priorities: Vec<&String> = p.errors.iter().filter(|e| e.contains("priority")).collect();
    assert_eq!(
        priorities,
        [
            "rule priority 5270 is taken by ip rule 5270: fwmark 0x80000 lookup 52 (likely \
          Tailscale): dscproute needs 5270–5272 free; set gateway.priority to another value"
        ]
    );
}

#[test]
fn kubernetes_is_named_as_the_likely_owner() {
    let f = facts("gateway-conflicts.json");
    let gw = |mark: &str, mask: &str| {
        inline(&format!(
            "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nmark = \"{mark}\"\n\
             mask = \"{mask}\"\n"
        ))
    };
    let p = plan_with(&gw("0x4000", "0xff00"), &f);
    assert_has(
        &p.errors,
        "mark 0x4000/0xff00 collides with iptables -t nat -A KUBE-MARK-MASQ -j MARK --set-xmark \
         0x4000/0x4000 (likely Kubernetes (kube-proxy))",
    );
    let p = plan_with(&gw("0x100", "0xff00"), &f);
    assert!(p.errors.is_empty(), "{:#?}", p.errors);
    assert_has(
        &p.warnings,
        "mark bits 0x4000 are shared with iptables -t nat -A KUBE-MARK-MASQ -j MARK --set-xmark \
         0x4000/0x4000 (likely Kubernetes (kube-proxy)): it must never set our value 0x100 there",
    );
}

#[test]
fn wg_quick_priorities_are_named() {
    let p = plan_with(
        &inline("[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\npriority = 32764\n"),
        &facts("gateway-conflicts.json"),
    );
    assert_has(
        &p.errors,
        "rule priority 32764 is taken by ip rule 32764: lookup main (likely wg-quick)",
    );
    assert_has(
        &p.errors,
        "rule priority 32765 is taken by ip rule 32765: not fwmark 0xca6c lookup 51820 (likely \
         wg-quick)",
    );
}

#[test]
fn a_taken_priority_is_described_with_its_not() {
    let p = plan_with(
        &inline("[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\npriority = 32764\n"),
        &facts("gateway-conflicts.json"),
    );
    assert_has(&p.errors, "ip rule 32765: not fwmark 0xca6c lookup 51820");
}

#[test]
fn a_mark_used_by_another_rule_is_an_error() {
    let p = plan_with(
        &inline("[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nmark = 1\n"),
        &facts("gateway-conflicts.json"),
    );
    assert_has(
        &p.errors,
        "mark 0x1/0xff collides with iptables -t mangle -A PREROUTING -s 192.168.50.10/32 -j MARK \
         --set-xmark 0x1/0xff: packets we mark would match it too; choose another gateway.mark \
         or gateway.mask",
    );
}

#[test]
fn dscp_selected_by_a_policy_rule_or_tos_match_warns() {
    let mut f = facts("gateway-clean.json");
    f.rules_v4.push(Rule {
        priority: 6000,
        tos: Some("0x1c".into()),
        table: Some("100".into()),
        ..Rule::default()
    });
    f.iptables_save = Some(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n\
         -A FORWARD -m tos --tos 0x1c/0xfc -j ACCEPT\nCOMMIT\n"
            .into(),
    );
    let p = plan_with(&profile("gateway.toml"), &f);
    assert_has(
        &p.warnings,
        "ip rule 6000 already selects tos 0x1c (DSCP 7): it sees our packets before or after our \
         rules, depending on priority",
    );
    assert_has(
        &p.warnings,
        "DSCP 7 is already used by another rule: iptables -t mangle -A FORWARD -m tos --tos \
         0x1c/0xfc -j ACCEPT",
    );
}

// ------------------------------------------- choices that cannot be settled

fn refused(p: &Profile, f: &HostFacts) -> Vec<String> {
    match plan(p, f, PlanOptions::default()) {
        Ok(plan) => panic!("expected a PlanError, got:\n{}", listing(&plan)),
        Err(e) => e.problems,
    }
}

#[test]
fn no_free_mark_is_a_plan_error() {
    let problems = refused(
        &inline(
            "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nmask = \"0x4000\"\n",
        ),
        &facts("gateway-conflicts.json"),
    );
    assert_eq!(
        problems,
        [
            "no free mark value within mask 0x4000: every value is used by other rules; set \
          gateway.mark and gateway.mask to bits no one else uses"
        ]
    );
}

#[test]
fn mark_outside_mask_is_a_plan_error() {
    // The profile parser refuses this too; the planner checks on its own.
    let mut p = profile("gateway.toml");
    p.gateway.as_mut().unwrap().mark = Some(0x100);
    let problems = refused(&p, &facts("gateway-clean.json"));
    assert_eq!(
        problems,
        ["gateway.mark 0x100 has bits outside the mask 0xff: set gateway.mask to cover them"]
    );
}

#[test]
fn no_free_priority_is_a_plan_error() {
    let mut f = facts("gateway-clean.json");
    for k in 100..=1000 {
        f.rules_v4.push(Rule {
            priority: k * 10,
            table: Some("200".into()),
            ..Rule::default()
        });
    }
    let problems = refused(&profile("gateway-auto.toml"), &f);
    assert_eq!(
        problems,
        ["no free rule priority between 1000 and 10000: set gateway.priority"]
    );
}

#[test]
fn no_free_table_is_a_plan_error() {
    let mut f = facts("gateway-clean.json");
    f.rt_tables.extend((100..=252).map(|id| RtTable {
        id,
        name: format!("t{id}"),
        source: "/etc/iproute2/rt_tables".into(),
    }));
    let problems = refused(&profile("gateway-auto.toml"), &f);
    assert_eq!(
        problems,
        ["no free routing table number in 100–252: set gateway.table"]
    );
}

#[test]
fn table_name_and_number_disagreements_are_plan_errors() {
    let mut f = facts("gateway-clean.json");
    f.rt_tables.push(RtTable {
        id: 120,
        name: "vpn".into(),
        source: "/etc/iproute2/rt_tables".into(),
    });
    // gateway.toml: table "vpn", table_id 100.
    assert_eq!(
        refused(&profile("gateway.toml"), &f),
        [
            "table \"vpn\" is already number 120 in /etc/iproute2/rt_tables, but gateway.table_id \
          says 100: drop table_id, or pick another table name"
        ]
    );
    let mut f = facts("gateway-clean.json");
    f.rt_tables.push(RtTable {
        id: 100,
        name: "isp2".into(),
        source: "/etc/iproute2/rt_tables".into(),
    });
    assert_eq!(
        refused(&profile("gateway.toml"), &f),
        [
            "table number 100 is already named \"isp2\" in /etc/iproute2/rt_tables: choose another \
          gateway.table_id, or use table = \"isp2\""
        ]
    );
}

#[test]
fn an_existing_system_table_name_is_reused_without_a_dropin() {
    let mut f = facts("gateway-clean.json");
    f.rt_tables.push(RtTable {
        id: 100,
        name: "vpn".into(),
        source: "/etc/iproute2/rt_tables".into(),
    });
    let p = plan_with(&profile("gateway.toml"), &f);
    assert!(p.errors.is_empty(), "{:#?}", p.errors);
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s.apply, Op::WriteTableNames { .. }))
    );
}

#[test]
fn a_new_table_id_rewrites_our_own_dropin() {
    // gateway-applied: our drop-in says "100 vpn"; the profile now wants 120.
    let mut p = profile("gateway.toml");
    p.gateway.as_mut().unwrap().table_id = Some(120);
    let plan = plan(&p, &facts("gateway-applied.json"), PlanOptions::default())
        .expect("our own drop-in must not block a new table number");
    let at = plan
        .steps
        .iter()
        .position(|s| matches!(s.apply, Op::WriteTableNames { .. }))
        .unwrap();
    let dropin = &plan.steps[at];
    assert_ne!(dropin.state, StepState::InPlace);
    // The old rules go by table number, and before the name changes.
    for fam in ["-4", "-6"] {
        let old = idx(
            &plan,
            &format!("ip {fam} rule del pref 10000 fwmark 0x3/0xff lookup 100 proto 213"),
        );
        assert!(old < at, "{}", listing(&plan));
    }
    assert_eq!(
        dropin.apply.effect(),
        Effect::WriteFile {
            path: RT_TABLES_DROPIN.into(),
            contents: "120 vpn\n".into()
        }
    );
}

#[test]
fn a_table_looked_up_by_a_foreign_rule_is_not_free() {
    let mut f = facts("gateway-clean.json");
    // Someone's policy routing into table 100, whose routes are not there
    // right now (their VPN is down).
    f.rules_v4.push(Rule {
        priority: 20000,
        src: Some("192.168.50.0/24".into()),
        table: Some("100".into()),
        ..Rule::default()
    });
    let auto = plan_with(&profile("gateway-auto.toml"), &f);
    assert_ne!(
        auto.resolved.table_id,
        Some(100),
        "auto-chosen table is used"
    );
    let given = plan_with(&profile("gateway.toml"), &f);
    assert_has(&given.errors, "ip rule 20000");
}

// ---------------------------------------------------------------- preflight

#[test]
fn missing_interface_is_an_error_naming_the_existing_ones() {
    let p = plan_with(
        &inline("[gateway]\ndscp = 7\ninterface = \"wg9\"\nvia = \"10.8.0.1\"\n"),
        &facts("gateway-clean.json"),
    );
    assert_eq!(
        p.errors,
        [
            "interface wg9 does not exist: bring the VPN up first (e.g. `wg-quick up wg9`), or set \
          gateway.interface to one of: lo, eth0, uplink, wg0"
        ]
    );
}

#[test]
fn missing_interface_is_only_a_warning_for_a_script_or_unknown_links() {
    let prof = inline("[gateway]\ndscp = 7\ninterface = \"wg9\"\nvia = \"10.8.0.1\"\n");
    let warning = "interface wg9 was not checked here; it must exist where the plan runs";
    let p = for_script(&prof, &facts("gateway-clean.json"));
    assert!(p.errors.is_empty(), "{:#?}", p.errors);
    assert_has(&p.warnings, warning);
    let mut f = facts("gateway-clean.json");
    f.links.clear();
    let p = plan_with(&prof, &f);
    assert!(p.errors.is_empty(), "{:#?}", p.errors);
    assert_has(&p.warnings, warning);
}

#[test]
fn via_not_on_link_is_an_error() {
    let p = plan_with(
        &inline("[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.9.0.1\"\n"),
        &facts("gateway-clean.json"),
    );
    assert_eq!(
        p.errors,
        [
            "gateway.via 10.9.0.1 is not on-link through wg0 (its IPv4 addresses: 10.8.0.2/24): use \
          the VPN peer's address inside the tunnel subnet"
        ]
    );
    // The host's own address is no next hop either.
    let p = plan_with(
        &inline("[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.2\"\n"),
        &facts("gateway-clean.json"),
    );
    assert_has(&p.errors, "gateway.via 10.8.0.2 is not on-link");
}

#[test]
fn via6_not_on_link_is_an_error_but_link_local_is_accepted() {
    let gw = |via6: &str| {
        inline(&format!(
            "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nvia6 = \"{via6}\"\n"
        ))
    };
    let p = plan_with(&gw("fd01::1"), &facts("gateway-clean.json"));
    assert_eq!(p.errors.len(), 1, "{:#?}", p.errors);
    assert!(
        p.errors[0].starts_with(
            "gateway.via6 fd01::1 is not on-link through wg0 (its IPv6 addresses: fd00::2/64, fe80::"
        ),
        "{}",
        p.errors[0]
    );
    let p = plan_with(&gw("fe80::1"), &facts("gateway-clean.json"));
    assert!(p.errors.is_empty(), "{:#?}", p.errors);
    assert!(has(
        &p,
        "ip -6 route add default via fe80::1 dev wg0 table 100 proto 213"
    ));
}

#[test]
fn via_is_required_on_a_link_that_is_not_point_to_point() {
    // gateway-p2p: wg0 has peer addresses, but a veth is no POINTOPOINT link.
    let p = plan_of("p2p.toml", "gateway-p2p.json");
    assert_eq!(
        p.errors,
        [
            "gateway.via is required: wg0 is not a point-to-point interface, so the default route \
          needs a next hop (e.g. via = \"10.8.0.1\")"
        ]
    );
    // The same host with wg0 shown as wireguard shows it: a device route.
    let p = plan_of("p2p.toml", "gateway-p2p-pointopoint.json");
    assert!(p.errors.is_empty(), "{:#?}", p.errors);
    assert_step(
        &p,
        &[
            "ip", "-4", "route", "add", "default", "dev", "wg0", "table", "100", "proto", "213",
        ],
        &[
            "ip", "-4", "route", "del", "default", "dev", "wg0", "table", "100", "proto", "213",
        ],
    );
}

#[test]
fn the_peer_of_a_point_to_point_address_is_on_link() {
    let f = facts("gateway-p2p.json");
    let gw = |via: &str| {
        inline(&format!(
            "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"{via}\"\nvia6 = \"fd00::1\"\n"
        ))
    };
    assert!(plan_with(&gw("10.8.0.1"), &f).errors.is_empty());
    assert_has(
        &plan_with(&gw("10.8.0.3"), &f).errors,
        "gateway.via 10.8.0.3 is not on-link through wg0 (its IPv4 addresses: 10.8.0.2/32)",
    );
}

#[test]
fn a_down_interface_warns() {
    let mut f = facts("gateway-clean.json");
    let wg0 = f.links.iter_mut().find(|l| l.name == "wg0").unwrap();
    wg0.flags.retain(|fl| fl != "UP");
    let p = plan_with(&profile("gateway.toml"), &f);
    assert!(p.errors.is_empty());
    assert_has(
        &p.warnings,
        "wg0 is down: marked traffic will be unreachable (kill switch) until it is up",
    );
}

#[test]
fn a_missing_group_is_an_error_except_for_a_script() {
    let mut f = facts("client.json");
    f.groups.retain(|g| g.name != "torrent");
    let p = plan_with(&profile("client.toml"), &f);
    assert_eq!(
        p.errors,
        [
            "group \"torrent\" does not exist: create it with `groupadd torrent` or set \
          marker.create_group = true, or set marker.group to an existing group (see `getent \
          group`)"
        ]
    );
    let p = for_script(&profile("client.toml"), &f);
    assert!(p.errors.is_empty());
    assert_eq!(
        p.warnings,
        [
            "group \"torrent\" does not exist on this host; the script resolves it by name where it \
          runs"
        ]
    );
    // The name goes into the argv for the target host's iptables to resolve.
    assert!(has(
        &p,
        "iptables -w -t mangle -A DSCPROUTE-MARK -m owner --gid-owner torrent -j CONNMARK \
         --set-xmark 0x1/0xff"
    ));
    // Groups unknown (not probed): nothing to check.
    f.groups.clear();
    assert!(plan_with(&profile("client.toml"), &f).errors.is_empty());
}

#[test]
fn an_unknown_gid_warns() {
    let f = facts("client.json");
    assert!(f.group_by_gid(4242).is_none());
    let p = plan_with(&inline("[marker]\ngroup = 4242\ndscp = 7\n"), &f);
    assert!(p.errors.is_empty());
    assert_eq!(
        p.warnings,
        [
            "gid 4242 has no group name on this host; processes must still run with that gid to be \
          marked"
        ]
    );
    assert!(has(
        &p,
        "iptables -w -t mangle -A DSCPROUTE-MARK -m owner --gid-owner 4242 -j CONNMARK \
         --set-xmark 0x1/0xff"
    ));
    // A known gid is fine.
    let mut f = f;
    f.groups.push(Group {
        name: "vpnusers".into(),
        gid: 4242,
        members: Vec::new(),
    });
    let p = plan_with(&inline("[marker]\ngroup = 4242\ndscp = 7\n"), &f);
    assert!(p.warnings.is_empty(), "{:#?}", p.warnings);
}

#[test]
fn missing_tools_are_errors_with_the_package() {
    let mut f = facts("gateway-clean.json");
    // sysctl(8) missing is no problem: sysctls are written to /proc/sys.
    for tool in ["ip", "iptables", "ip6tables", "sysctl"] {
        f.tools.insert(tool.into(), None);
    }
    let p = plan_with(&profile("gateway.toml"), &f);
    assert_eq!(
        p.errors,
        [
            "ip is not installed: install it with `apt-get install iproute2` (Debian package \
             iproute2)",
            "iptables is not installed: install it with `apt-get install iptables` (Debian \
             package iptables)",
            "ip6tables is not installed: install it with `apt-get install iptables` (Debian \
             package iptables)",
        ]
    );
    // A client needs only iptables and ip6tables.
    let mut f = facts("client.json");
    f.tools.insert("ip".into(), None);
    f.tools.insert("sysctl".into(), None);
    assert!(plan_with(&profile("client.toml"), &f).errors.is_empty());
    f.tools.insert("ip6tables".into(), None);
    assert_has(
        &plan_with(&profile("client.toml"), &f).errors,
        "ip6tables is not installed",
    );
    // Planning a script for another host, or facts without a tools map: not checked.
    assert!(for_script(&profile("client.toml"), &f).errors.is_empty());
    f.tools.clear();
    assert!(plan_with(&profile("client.toml"), &f).errors.is_empty());
}

#[test]
fn unreadable_facts_and_not_root_are_reported() {
    let mut f = facts("gateway-clean.json");
    f.is_root = false;
    f.unreadable = vec![crate::probe::Unreadable::new(
        crate::probe::Fact::IptablesSave,
        crate::probe::Source::command(&["iptables-save"]),
        crate::probe::Reason::NeedsRoot,
    )];
    let p = plan_with(&profile("gateway.toml"), &f);
    assert_has(
        &p.warnings,
        "Could not read: iptables-save: not run, it needs root (you are not root).",
    );
    assert_has(&p.notes, "Not running as root");
}

#[test]
fn unreadable_rp_filter_warns() {
    let mut f = facts("gateway-clean.json");
    f.sysctls.remove("net.ipv4.conf.wg0.rp_filter");
    let p = plan_with(&profile("gateway.toml"), &f);
    assert!(
        !p.steps
            .iter()
            .any(|s| s.apply.display().contains("rp_filter"))
    );
    assert_has(
        &p.warnings,
        "could not read rp_filter for all and wg0: check that it is not strict (1), or replies \
         from the VPN will be dropped",
    );
}

// ------------------------------------------------------------- create_group

const NEW_GROUP: &str = "[marker]\ngroup = \"vpnonly\"\ndscp = 7\ncreate_group = true\n";

#[test]
fn create_group_adds_the_group_first_and_deletes_it_on_undo() {
    let f = facts("client.json");
    assert!(f.group_by_name("vpnonly").is_none());
    let p = plan_with(&inline(NEW_GROUP), &f);
    // No preflight error: the plan creates the group.
    assert!(p.errors.is_empty(), "{:#?}", p.errors);
    assert!(!has_text(&p.warnings, "vpnonly"), "{:#?}", p.warnings);
    let first = &p.steps[0];
    assert_eq!(argv(&first.apply), ["groupadd", "vpnonly"]);
    assert_eq!(argv(&first.undo), ["groupdel", "vpnonly"]);
    assert_eq!((first.role, first.state), (Role::Marker, StepState::Add));
    assert!(first.apply.is_persistent() && first.undo.is_persistent());
    assert!(!first.reason.contains("  "), "{:?}", first.reason);
    assert_eq!(count(&p, "groupadd"), 1, "{}", listing(&p));
    assert_eq!(p.steps.len(), 9, "{}", listing(&p));
    // Its gid is not known yet: the rules name it, for iptables to resolve
    // once the group exists.
    for tool in ["iptables", "ip6tables"] {
        let tag = |op| {
            vec![
                tool,
                "-w",
                "-t",
                "mangle",
                op,
                "DSCPROUTE-MARK",
                "-m",
                "owner",
                "--gid-owner",
                "vpnonly",
                "-j",
                "CONNMARK",
                "--set-xmark",
                "0x1/0xff",
            ]
        };
        assert_step(&p, &tag("-A"), &tag("-D"));
    }
    // Planning a script for another host: its groups are unknown here, and
    // groupadd would fail (and undo the script) where the group exists.
    let p = for_script(&inline(NEW_GROUP), &f);
    assert!(p.errors.is_empty(), "{p:#?}");
    assert_eq!(count(&p, "groupadd"), 0, "{}", listing(&p));
    assert_has(
        &p.warnings,
        "marker.create_group: the groups of the target host are not known here, so no groupadd \
         step is planned; create \"vpnonly\" there first if it does not exist (`getent group \
         vpnonly || groupadd vpnonly`)",
    );
    // A missing groupadd is an error where the step is planned.
    let mut f = f.clone();
    f.tools.insert("groupadd".into(), None);
    let p = plan_with(&inline(NEW_GROUP), &f);
    assert!(
        has_text(&p.errors, "groupadd is not installed"),
        "{:#?}",
        p.errors
    );
}

#[test]
fn create_group_comes_first_in_the_marker_section_of_a_both_roles_host() {
    let toml = format!(
        "{NEW_GROUP}\n[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\ntable = \
         \"vpn\"\ntable_id = 100\n"
    );
    let p = plan_with(&inline(&toml), &facts("both.json"));
    assert!(p.errors.is_empty(), "{:#?}", p.errors);
    let add = idx(&p, "groupadd vpnonly");
    let first_marker = p.steps.iter().position(|s| s.role == Role::Marker).unwrap();
    assert_eq!(add, first_marker, "{}", listing(&p));
    // Gateway first, as always: the group comes after the whole gateway.
    assert!(
        p.steps[..add].iter().all(|s| s.role == Role::Gateway),
        "{}",
        listing(&p)
    );
    let chain = idx(&p, "iptables -w -t mangle -N DSCPROUTE-MARK");
    assert!(add < chain);
}

#[test]
fn create_group_adds_nothing_when_the_group_exists() {
    let f = facts("client.json");
    let gid = torrent_gid(&f);
    let p = plan_with(
        &inline("[marker]\ngroup = \"torrent\"\ndscp = 7\ncreate_group = true\n"),
        &f,
    );
    assert!(p.errors.is_empty() && p.warnings.is_empty(), "{p:#?}");
    assert_eq!(count(&p, "groupadd"), 0, "{}", listing(&p));
    assert_eq!(p.resolved.group.as_deref(), Some(gid.as_str()));
    // The same steps as without create_group.
    let without: Vec<String> = plan_of("client.toml", "client.json")
        .steps
        .iter()
        .map(|s| s.apply.display())
        .collect();
    let with: Vec<String> = p.steps.iter().map(|s| s.apply.display()).collect();
    assert_eq!(with, without);
    // And on the applied host, everything is in place.
    let p = plan_with(
        &inline("[marker]\ngroup = \"torrent\"\ndscp = 7\ncreate_group = true\n"),
        &facts("client-applied.json"),
    );
    assert!(p.is_noop(), "{}", listing(&p));
}

#[test]
fn create_group_with_a_numeric_gid_is_a_profile_error() {
    for group in ["4242", "\"4242\""] {
        let toml = format!("[marker]\ngroup = {group}\ndscp = 7\ncreate_group = true\n");
        let e = Profile::parse(&toml, "inline.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "inline.toml:4: marker.create_group = true: needs a group name to create: set \
             marker.group to a name, not a gid",
            "group = {group}"
        );
    }
    // create_group = false with a gid is fine.
    let p = inline("[marker]\ngroup = 4242\ndscp = 7\ncreate_group = false\n");
    assert!(!p.marker.unwrap().create_group);
}

// ------------------------------------------------------- profile switches

fn count(p: &Plan, needle: &str) -> usize {
    p.steps
        .iter()
        .filter(|s| s.apply.display().contains(needle))
        .count()
}

#[test]
fn without_via6_marked_ipv6_is_blocked_even_without_kill_switch() {
    for kill_switch in [true, false] {
        let p = plan_with(
            &inline(&format!(
                "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nmark = 3\n\
                 kill_switch = {kill_switch}\n"
            )),
            &facts("gateway-clean.json"),
        );
        let v6_block = step(
            &p,
            "ip -6 rule add pref 10001 fwmark 0x3/0xff unreachable proto 213",
        );
        assert!(
            v6_block.reason.contains("no IPv6 path (via6)"),
            "{v6_block:?}"
        );
        assert_eq!(
            has(
                &p,
                "ip -4 rule add pref 10001 fwmark 0x3/0xff unreachable proto 213"
            ),
            kill_switch
        );
        // No IPv6 route, NAT, scrub or forwarding.
        assert_eq!(count(&p, "ip -6 route"), 0, "{}", listing(&p));
        for chain in ["DSCPROUTE-NAT", "DSCPROUTE-SCRUB"] {
            assert_eq!(count(&p, &format!("ip6tables -w -t nat -N {chain}")), 0);
            assert!(
                !p.steps
                    .iter()
                    .any(|s| s.apply.display().starts_with("ip6tables")
                        && s.apply.display().contains(chain))
            );
        }
        assert_eq!(count(&p, "net.ipv6.conf.all.forwarding"), 0);
        // IPv6 is still marked (restore, mark, save), so that the rules can refuse it.
        assert_eq!(count(&p, "ip6tables -w -t mangle -A DSCPROUTE-ROUTE"), 3);
        assert!(has(
            &p,
            "ip6tables -w -t mangle -A DSCPROUTE-ROUTE ! -i wg0 -m dscp --dscp 0x07 -j MARK \
             --set-xmark 0x3/0xff"
        ));
        assert!(!has_text(&p.warnings, "accept_ra"));
    }
}

#[test]
fn kill_switch_off_drops_the_ipv4_unreachable_rule_and_warns() {
    let p = plan_with(
        &inline(
            "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nvia6 = \"fd00::1\"\n\
             mark = 3\nkill_switch = false\n",
        ),
        &facts("gateway-clean.json"),
    );
    assert_eq!(count(&p, "unreachable"), 0, "{}", listing(&p));
    assert_has(
        &p.warnings,
        "kill_switch = false: when the VPN goes down, marked IPv4 and IPv6 falls back to the main \
         uplink and leaves by your ISP.",
    );
}

#[test]
fn kill_switch_off_warning_names_ipv6_when_it_leaks_too() {
    let p = plan_with(
        &inline(
            "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nvia6 = \"fd00::1\"\n\
             kill_switch = false\n",
        ),
        &facts("gateway-clean.json"),
    );
    let w = p
        .warnings
        .iter()
        .find(|w| w.starts_with("kill_switch = false"))
        .unwrap();
    assert!(w.contains("IPv6"), "{w}");
}

#[test]
fn masquerade_and_scrub_can_be_left_out() {
    let f = facts("gateway-clean.json");
    let base = "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nvia6 = \"fd00::1\"\n";
    let p = plan_with(&inline(&format!("{base}masquerade = false\n")), &f);
    assert_eq!(count(&p, "DSCPROUTE-NAT"), 0, "{}", listing(&p));
    assert_eq!(count(&p, "MASQUERADE"), 0);
    assert_eq!(count(&p, "DSCPROUTE-SCRUB"), 6);
    let p = plan_with(&inline(&format!("{base}scrub_dscp = false\n")), &f);
    assert_eq!(count(&p, "DSCPROUTE-SCRUB"), 0, "{}", listing(&p));
    assert_eq!(count(&p, "--set-dscp"), 0);
    assert_eq!(count(&p, "DSCPROUTE-NAT"), 6);
}

#[test]
fn rp_filter_keep_on_a_strict_host_warns_and_changes_nothing() {
    let p = plan_with(
        &inline(
            "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nrp_filter = \"keep\"\n",
        ),
        &facts("gateway-clean.json"),
    );
    assert_eq!(count(&p, "rp_filter"), 0, "{}", listing(&p));
    assert_has(
        &p.warnings,
        "rp_filter is strict for wg0 (max(all=1, wg0=1) = 1) and the profile says rp_filter = \
         \"keep\": replies from the VPN will be dropped. Use rp_filter = \"loose\".",
    );
}

#[test]
fn the_in_place_rp_filter_reason_states_the_real_values() {
    let p = plan_of("gateway.toml", "gateway-applied.json");
    let s = step(&p, "sysctl -q -w net.ipv4.conf.wg0.rp_filter=2");
    assert_eq!(s.state, StepState::InPlace);
    assert!(!s.reason.contains("wg0=2) = 1"), "{}", s.reason);
}

#[test]
fn rp_filter_follows_the_kernels_max_of_all_and_interface() {
    // (all, wg0) -> the state of the step loosening wg0, if there is one.
    let change = Some(StepState::Change);
    for (all, wg0, expected) in [
        ("1", "1", change),
        ("0", "1", change),
        ("1", "0", change),
        ("0", "0", None),
        ("2", "1", None),
        ("2", "0", None),
        // What "loose" leaves behind on a strict host.
        ("1", "2", Some(StepState::InPlace)),
        ("0", "2", Some(StepState::InPlace)),
    ] {
        let mut f = facts("gateway-clean.json");
        f.sysctls
            .insert("net.ipv4.conf.all.rp_filter".into(), all.into());
        f.sysctls
            .insert("net.ipv4.conf.wg0.rp_filter".into(), wg0.into());
        let p = plan_with(&profile("gateway.toml"), &f);
        assert_eq!(
            position(&p, "sysctl -q -w net.ipv4.conf.wg0.rp_filter=2").map(|i| p.steps[i].state),
            expected,
            "all={all} wg0={wg0}"
        );
    }
}

// -------------------------------------------------------------------- stale

#[test]
fn stale_rules_of_an_earlier_dscp_are_removed() {
    // gateway-stale: gateway-dscp11.toml (DSCP 11) applied; the profile now says 7.
    let p = plan_of("gateway.toml", "gateway-stale.json");
    assert!(p.errors.is_empty(), "{:#?}", p.errors);
    for tool in ["iptables", "ip6tables"] {
        let old_route = |op| {
            vec![
                tool,
                "-w",
                "-t",
                "mangle",
                op,
                "DSCPROUTE-ROUTE",
                "!",
                "-i",
                "wg0",
                "-m",
                "dscp",
                "--dscp",
                "0x0b",
                "-j",
                "MARK",
                "--set-xmark",
                "0x3/0xff",
            ]
        };
        // The marking rule sat between restore and save: the chain is rebuilt.
        let flush = step(&p, &format!("{tool} -w -t mangle -F DSCPROUTE-ROUTE"));
        assert_eq!(flush.state, StepState::Change);
        assert!(flush.reason.contains("in order"), "{}", flush.reason);
        match &flush.undo.effect() {
            Effect::Seq { effects } => {
                let old: Vec<String> = effects.iter().map(Effect::display).collect();
                assert_eq!(old.len(), 3);
                assert_eq!(old[1], old_route("-A").join(" "));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            !p.steps
                .iter()
                .any(|s| words(&s.apply.effect()) == old_route("-D")),
            "no separate delete after a flush"
        );
        let old_scrub = |op| {
            vec![
                tool,
                "-w",
                "-t",
                "mangle",
                op,
                "DSCPROUTE-SCRUB",
                "-m",
                "dscp",
                "--dscp",
                "0x0b",
                "-j",
                "DSCP",
                "--set-dscp",
                "0x00",
            ]
        };
        // Undo puts it back in its place: first, before the new scrub rule.
        let mut back = old_scrub("-I");
        back.insert(6, "1");
        assert_step(&p, &old_scrub("-D"), &back);
        let removal = step(&p, &old_scrub("-D").join(" "));
        assert_eq!(removal.state, StepState::Change);
        assert!(
            removal
                .reason
                .starts_with("left over from an earlier dscproute setup")
        );
        // The new rules are added, the chains and jumps kept.
        let new = format!(
            "{tool} -w -t mangle -A DSCPROUTE-ROUTE ! -i wg0 -m dscp --dscp 0x07 -j MARK --set-xmark 0x3/0xff"
        );
        assert_eq!(step(&p, &new).state, StepState::Add);
        assert_eq!(
            step(&p, &format!("{tool} -w -t mangle -N DSCPROUTE-ROUTE")).state,
            StepState::InPlace
        );
    }
    let s = &p.summary;
    // Re-added after the flush: restore, mark, save per family; the new scrub rule.
    assert_eq!((s.add, s.change), (8, 4));
    // Removals come last, once the new rules are in (a rebuild's flush aside).
    let first_removal = p
        .steps
        .iter()
        .position(|s| s.state == StepState::Change && words(&s.apply.effect())[4] != "-F")
        .unwrap();
    assert!(
        p.steps[first_removal..]
            .iter()
            .all(|s| s.state == StepState::Change)
    );
}

#[test]
fn a_chain_the_profile_drops_is_unlinked_emptied_and_deleted_in_that_order() {
    let p = plan_with(
        &inline(
            "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nvia6 = \"fd00::1\"\n\
             mark = 3\ntable = \"vpn\"\ntable_id = 100\nscrub_dscp = false\n",
        ),
        &facts("gateway-applied.json"),
    );
    for tool in ["iptables", "ip6tables"] {
        let unlink = idx(
            &p,
            &format!(
                "{tool} -w -t mangle -D POSTROUTING -o wg0 -m comment --comment dscproute -j DSCPROUTE-SCRUB"
            ),
        );
        let empty = idx(
            &p,
            &format!(
                "{tool} -w -t mangle -D DSCPROUTE-SCRUB -m dscp --dscp 0x07 -j DSCP --set-dscp 0x00"
            ),
        );
        let delete = idx(&p, &format!("{tool} -w -t mangle -X DSCPROUTE-SCRUB"));
        assert!(unlink < empty && empty < delete, "{}", listing(&p));
        assert_eq!(
            argv(&p.steps[delete].undo),
            [tool, "-w", "-t", "mangle", "-N", "DSCPROUTE-SCRUB"]
        );
    }
    assert_eq!(p.summary.change, 6);
    assert_eq!(p.summary.add, 0);
}

#[test]
fn stale_policy_rules_and_routes_are_removed() {
    // Applied with priority 10000 and via 10.8.0.1; now 20000 and 10.8.0.3.
    let p = plan_with(
        &inline(
            "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.3\"\nvia6 = \"fd00::1\"\n\
             mark = 3\ntable = \"vpn\"\ntable_id = 100\npriority = 20000\n",
        ),
        &facts("gateway-applied.json"),
    );
    assert!(p.errors.is_empty(), "{:#?}", p.errors);
    for fam in ["-4", "-6"] {
        for (pref, action) in [
            (9999, "lookup main suppress_prefixlength 0"),
            // By number: the name may be gone from rt_tables by then.
            (10000, "lookup 100"),
            (10001, "unreachable"),
        ] {
            let old = format!("ip {fam} rule del pref {pref} fwmark 0x3/0xff {action} proto 213");
            let s = step(&p, &old);
            assert_eq!(s.state, StepState::Change);
            assert_eq!(s.undo.display(), old.replace(" del ", " add "));
        }
        assert_eq!(
            step(
                &p,
                &format!("ip {fam} rule add pref 20000 fwmark 0x3/0xff lookup 100 proto 213")
            )
            .state,
            StepState::Add
        );
    }
    // The old route is replaced in place: the table is never without one.
    assert!(!has(
        &p,
        "ip -4 route del default via 10.8.0.1 dev wg0 table 100 proto 213"
    ));
    let replaced = step(
        &p,
        "ip -4 route replace default via 10.8.0.3 dev wg0 table 100 proto 213",
    );
    assert_eq!(replaced.state, StepState::Change);
    assert_eq!(
        replaced.undo.display(),
        "ip -4 route replace default via 10.8.0.1 dev wg0 table 100 proto 213"
    );
    // The IPv6 route did not change.
    assert_eq!(
        step(
            &p,
            "ip -6 route add default via fd00::1 dev wg0 table 100 proto 213"
        )
        .state,
        StepState::InPlace
    );
}

/// Without the kill switch and without via6, only IPv6 keeps its
/// `unreachable` rule: the IPv4 one of an earlier setup goes, though an
/// IPv6 rule with the same priority and mark stays.
#[test]
fn a_leftover_rule_of_one_family_is_not_kept_by_the_other_s() {
    let p = plan_with(
        &inline(
            "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nmark = 3\n\
             table = \"vpn\"\ntable_id = 100\npriority = 10000\nkill_switch = false\n",
        ),
        &facts("gateway-applied.json"),
    );
    assert!(p.errors.is_empty(), "{:#?}", p.errors);
    let v4 = "ip -4 rule del pref 10001 fwmark 0x3/0xff unreachable proto 213";
    assert_eq!(step(&p, v4).state, StepState::Change);
    assert!(
        !p.steps
            .iter()
            .any(|s| s.apply.display() == v4.replace("-4", "-6")),
        "the IPv6 block stays"
    );
}

/// A rule someone put inside a chain of ours is not ours to remove and put
/// back (the journal would refuse to run it): the plan says so and apply
/// refuses, instead of journaling a command dscproute never writes.
#[test]
fn a_foreign_rule_in_a_chain_of_ours_is_a_plan_error() {
    let mut f = facts("gateway-applied.json");
    let tee = "-A DSCPROUTE-ROUTE -j TEE --gateway 192.0.2.1";
    let save = f.iptables_save.take().unwrap().replacen(
        "-A DSCPROUTE-SCRUB",
        &format!("{tee}\n-A DSCPROUTE-SCRUB"),
        1,
    );
    f.iptables_save = Some(save);
    let p = plan_with(&profile("gateway.toml"), &f);
    assert!(!p.is_applicable());
    let e = p
        .errors
        .iter()
        .find(|e| e.contains("-D DSCPROUTE-ROUTE -j TEE"))
        .unwrap_or_else(|| panic!("{:#?}", p.errors));
    assert!(e.contains("not a command dscproute writes"), "{e}");
}

#[test]
fn a_client_profile_on_a_both_host_removes_only_the_mark_rule() {
    let f = facts("both-applied.json");
    let p = plan_with(&profile("client.toml"), &f);
    let stale: Vec<String> = p.pending().map(|s| s.apply.display()).collect();
    assert_eq!(
        stale,
        [
            "iptables -w -t mangle -D DSCPROUTE-MARK -m connmark --mark 0x1/0xff -j MARK \
             --set-xmark 0x1/0xff",
            "ip6tables -w -t mangle -D DSCPROUTE-MARK -m connmark --mark 0x1/0xff -j MARK \
             --set-xmark 0x1/0xff",
        ]
    );
    assert!(p.steps.iter().all(|s| s.role == Role::Marker));
}

// ---------------------------------------------------------------- snapshots

fn preview(profile_name: &str, facts_name: &str) -> String {
    render_text(
        &plan_of(profile_name, facts_name),
        &format!("{DIR}/{profile_name}"),
    )
}

#[test]
fn snapshot_preview_clean_gateway() {
    insta::assert_snapshot!(preview("gateway.toml", "gateway-clean.json"));
}

#[test]
fn snapshot_preview_applied_gateway() {
    insta::assert_snapshot!(preview("gateway.toml", "gateway-applied.json"));
}

#[test]
fn snapshot_preview_conflicts() {
    insta::assert_snapshot!(preview("gateway.toml", "gateway-conflicts.json"));
}

#[test]
fn snapshot_preview_conflicts_auto() {
    insta::assert_snapshot!(preview("gateway-auto.toml", "gateway-conflicts.json"));
}

#[test]
fn snapshot_preview_stale() {
    insta::assert_snapshot!(preview("gateway.toml", "gateway-stale.json"));
}

#[test]
fn snapshot_preview_p2p() {
    insta::assert_snapshot!(preview("p2p.toml", "gateway-p2p-pointopoint.json"));
}

#[test]
fn snapshot_preview_client() {
    insta::assert_snapshot!(preview("client.toml", "client.json"));
}

#[test]
fn snapshot_preview_both() {
    insta::assert_snapshot!(preview("both.toml", "both.json"));
}

#[test]
fn snapshot_json_client() {
    let p = plan_of("client.toml", "client.json");
    insta::assert_snapshot!(serde_json::to_string_pretty(&p).unwrap());
}

#[test]
fn snapshot_script_client() {
    let p = plan_of("client.toml", "client.json");
    insta::assert_snapshot!(render_script(&p, &format!("{DIR}/client.toml")));
}

/// Changing `via` on an applied gateway: our table holds one default route
/// per family, so the old one goes before the new one is added (else the add
/// fails with "File exists").
#[test]
fn a_changed_via_replaces_the_old_route_in_one_step() {
    let p = plan_with(
        &inline(
            "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.3\"\nvia6 = \"fd00::1\"\n\
             mark = 3\ntable = \"vpn\"\ntable_id = 100\n",
        ),
        &facts("gateway-applied.json"),
    );
    let at = idx(
        &p,
        "ip -4 route replace default via 10.8.0.3 dev wg0 table 100 proto 213",
    );
    assert_eq!(p.steps[at].state, StepState::Change);
    let change = p.steps[at].change.as_ref().expect("a change line");
    assert_eq!(
        (change.from.as_str(), change.to.as_str()),
        ("via 10.8.0.1 dev wg0", "via 10.8.0.3 dev wg0")
    );
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s.apply, Op::Route { add: false, .. })),
        "{}",
        listing(&p)
    );
}

/// A script saves each sysctl's old value where it runs and undo restores
/// that, never the planning host's value.
#[test]
fn scripts_save_sysctl_values_where_they_run() {
    let p = plan_of("gateway.toml", "gateway-clean.json");
    let s = render_script(&p, "gateway.toml");
    assert!(
        s.contains("sysctl -n net.ipv4.ip_forward > \"$STATE/"),
        "{s}"
    );
    assert!(
        s.contains("sysctl -q -w net.ipv4.ip_forward=\"$(cat \"$STATE/"),
        "{s}"
    );
    assert!(
        !s.contains("net.ipv4.ip_forward=0"),
        "no planning-host value in the undo:\n{s}"
    );
}

// ------------------------------------------------------- without the VPN

fn without_vpn(p: &Profile, f: &HostFacts) -> Plan {
    let opts = PlanOptions {
        without_vpn: true,
        ..PlanOptions::default()
    };
    plan(p, f, opts).unwrap_or_else(|e| panic!("plan refused: {e}"))
}

/// Does a step's command need wg0 to exist and be up?
fn through_wg0(s: &Step) -> bool {
    let cmd = s.apply.display();
    (cmd.contains(" route add ") && cmd.contains("dev wg0")) || cmd.contains("conf.wg0.")
}

/// A fresh boot: wg0 is not there yet. A plain plan refuses; without the
/// VPN it is applicable and holds everything but the routes through wg0
/// and wg0's rp_filter: table name, forwarding, both lookup rules, the kill
/// switch for both families, our chains, their rules and every jump.
#[test]
fn without_the_vpn_everything_but_its_routes_and_sysctls_is_planned() {
    let prof = profile("gateway.toml");
    let mut f = facts("gateway-clean.json");
    // As in a hardened host, so that a plan with wg0 would loosen it.
    f.sysctls
        .insert("net.ipv4.conf.all.rp_filter".into(), "1".into());
    let whole = plan_with(&prof, &f);
    assert!(whole.steps.iter().any(through_wg0), "{}", listing(&whole));
    f.links.retain(|l| l.name != "wg0");
    assert_has(&plan_with(&prof, &f).errors, "interface wg0 does not exist");

    let p = without_vpn(&prof, &f);
    assert!(p.is_applicable(), "{:#?}", p.errors);
    assert!(!p.steps.iter().any(through_wg0), "{}", listing(&p));
    let kept: Vec<String> = whole
        .steps
        .iter()
        .filter(|s| !through_wg0(s))
        .map(|s| s.apply.display())
        .collect();
    let got: Vec<String> = p.steps.iter().map(|s| s.apply.display()).collect();
    assert_eq!(got, kept, "the same steps in the same order, less wg0's");
    for fam in ["-4", "-6"] {
        for rule in [
            "pref 9999 fwmark 0x3/0xff lookup main suppress_prefixlength 0",
            "pref 10000 fwmark 0x3/0xff lookup 100",
            "pref 10001 fwmark 0x3/0xff unreachable",
        ] {
            let cmd = format!("ip {fam} rule add {rule} proto 213");
            assert_eq!(step(&p, &cmd).state, StepState::Add, "{cmd}");
        }
    }
    assert!(
        has(&p, "sysctl -q -w net.ipv4.ip_forward=1"),
        "{}",
        listing(&p)
    );
    let jumps = p
        .steps
        .iter()
        .filter(|s| s.apply.display().contains("-j DSCPROUTE"))
        .count();
    assert_eq!(jumps, 6, "{}", listing(&p));
}

/// wg0 down (routes of ours still listed, as in the instant before the
/// kernel drops them): planning without the VPN must not take our wanted
/// routes for leftovers and remove them.
#[test]
fn without_the_vpn_our_routes_are_never_stale() {
    let prof = profile("gateway.toml");
    let mut f = facts("gateway-applied.json");
    let wg0 = f.links.iter_mut().find(|l| l.name == "wg0").unwrap();
    wg0.flags.retain(|x| x != "UP" && x != "LOWER_UP");
    wg0.state = "DOWN".into();
    let p = without_vpn(&prof, &f);
    assert!(p.is_noop(), "{}", listing(&p));
    assert!(
        !p.steps.iter().any(|s| matches!(s.apply, Op::Route { .. })),
        "{}",
        listing(&p)
    );
}

/// A user marker tags by uid; a cgroup or a running unit by its cgroup path;
/// a stopped unit, a missing cgroup or no cgroup v2 mount is an error that
/// says what to do, and applying waits for it.
#[test]
fn user_unit_and_cgroup_markers() {
    let mut f = facts("client.json");
    f.cgroup2 = Some("/sys/fs/cgroup/unified".into());
    f.users.push(crate::probe::User {
        name: "alice".into(),
        uid: 1001,
    });
    let tag = |p: &Plan| -> Vec<String> {
        p.steps
            .iter()
            .map(|s| s.apply.display())
            .filter(|d| d.contains("CONNMARK --set-xmark"))
            .collect()
    };
    let p = plan_with(&inline("[marker]\nuser = \"alice\"\ndscp = 7\n"), &f);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(p.resolved.user.as_deref(), Some("1001"));
    let t = tag(&p);
    assert_eq!(t.len(), 2, "{}", listing(&p));
    assert!(
        t[0].contains("-m owner --uid-owner 1001 -j CONNMARK"),
        "{t:?}"
    );
    assert!(
        signal_path(&p.resolved).starts_with("user 1001 → DSCP 7"),
        "{}",
        signal_path(&p.resolved)
    );

    let unknown = plan_with(&inline("[marker]\nuser = \"bob\"\ndscp = 7\n"), &f);
    assert!(
        unknown
            .errors
            .iter()
            .any(|e| e.contains("user \"bob\" is not known")),
        "{:?}",
        unknown.errors
    );

    let cg = inline("[marker]\ncgroup = \"dscproute/dl\"\ndscp = 7\n");
    f.cgroups.insert("dscproute/dl".into(), Some(4321));
    let p = plan_with(&cg, &f);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert!(
        tag(&p)[0].contains(
            "-m cgroup --path dscproute/dl -m comment --comment dscproute-cgroup-4321 -j CONNMARK"
        ),
        "{:?}",
        tag(&p)
    );
    // The same path made anew (another id): the old rule is stale, the new one
    // added; with the same id everything is in place.
    let mut applied = f.clone();
    for save in [&mut applied.iptables_save, &mut applied.ip6tables_save] {
        *save = Some(
            "*mangle\n:OUTPUT ACCEPT [0:0]\n:DSCPROUTE-MARK - [0:0]\n\
             -A OUTPUT -m comment --comment dscproute -j DSCPROUTE-MARK\n\
             -A DSCPROUTE-MARK -m cgroup --path \"dscproute/dl\" -m comment --comment \
             dscproute-cgroup-4321 -j CONNMARK --set-xmark 0x1/0xff\n\
             -A DSCPROUTE-MARK -m connmark --mark 0x1/0xff -j DSCP --set-dscp 0x07\nCOMMIT\n"
                .into(),
        );
    }
    let p = plan_with(&cg, &applied);
    assert!(p.is_noop(), "{}", listing(&p));
    applied.cgroups.insert("dscproute/dl".into(), Some(4400));
    let p = plan_with(&cg, &applied);
    let pending: Vec<String> = p.pending().map(|s| s.apply.display()).collect();
    // Our chain is rebuilt (flushed, then filled) with the new id, per family.
    assert_eq!(pending.len(), 6, "{}", listing(&p));
    assert_eq!(
        pending
            .iter()
            .filter(|d| d.contains("-F DSCPROUTE-MARK"))
            .count(),
        2
    );
    assert_eq!(
        pending
            .iter()
            .filter(|d| d.contains("dscproute-cgroup-4400"))
            .count(),
        2
    );
    assert!(
        !pending.iter().any(|d| d.contains("dscproute-cgroup-4321")),
        "{pending:?}"
    );
    f.cgroups.insert("dscproute/dl".into(), None);
    let p = plan_with(&cg, &f);
    assert!(
        p.errors.iter().any(
            |e| e.contains("does not exist under /sys/fs/cgroup/unified yet")
                && e.contains("mkdir -p /sys/fs/cgroup/unified/dscproute/dl")
        ),
        "{:?}",
        p.errors
    );
    let mut no_v2 = f.clone();
    no_v2.cgroup2 = None;
    let p = plan_with(&cg, &no_v2);
    assert!(
        p.errors.iter().any(|e| e.contains("no cgroup2 line")),
        "{:?}",
        p.errors
    );

    let unit = inline("[marker]\nunit = \"app.service\"\ndscp = 7\n");
    f.units.insert(
        "app.service".into(),
        Some("system.slice/app.service".into()),
    );
    f.cgroups
        .insert("system.slice/app.service".into(), Some(99));
    let p = plan_with(&unit, &f);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    let step = p
        .steps
        .iter()
        .find(|s| {
            s.apply
                .display()
                .contains("--path system.slice/app.service")
        })
        .expect("the unit's rule");
    assert!(
        step.reason.contains("restart") && step.reason.contains("dscproute apply"),
        "{}",
        step.reason
    );
    assert_eq!(
        p.resolved.cgroup.as_deref(),
        Some("system.slice/app.service")
    );
    f.units.insert("app.service".into(), None);
    let p = plan_with(&unit, &f);
    assert!(
        p.errors
            .iter()
            .any(|e| e.contains("is not running") && e.contains("systemctl start app.service")),
        "{:?}",
        p.errors
    );
    assert!(
        tag(&p).is_empty(),
        "no rule without a cgroup: {}",
        listing(&p)
    );
    f.units
        .insert("app.service".into(), Some("system.slice/../etc".into()));
    let p = plan_with(&unit, &f);
    assert!(
        p.errors.iter().any(|e| e.contains("does not match")),
        "{:?}",
        p.errors
    );
    f.units.clear();
    let p = plan_with(&unit, &f);
    assert!(
        p.errors.iter().any(|e| e.contains("could not be asked")),
        "{:?}",
        p.errors
    );
    let p = for_script(&unit, &f);
    assert!(
        p.errors.iter().any(|e| e.contains("use marker.cgroup")),
        "{:?}",
        p.errors
    );
}

mod classes;

/// A gateway-only plan needs neither the group list nor iproute2's version
/// unless it routes on `ip rule dscp`; a client needs the groups.
#[test]
fn a_plan_reads_only_what_its_profile_needs() {
    let reads = |p: &Profile| (reads_for(p).groups, reads_for(p).ip_version);
    assert_eq!(reads(&profile("gateway.toml")), (false, false));
    assert_eq!(reads(&profile("client.toml")), (true, false));
    assert_eq!(reads(&profile("both.toml")), (true, false));
    let mut dscp_rule = profile("gateway.toml");
    dscp_rule.gateway.as_mut().unwrap().match_mode = crate::profile::MatchMode::DscpRule;
    assert_eq!(reads(&dscp_rule), (false, true));
}
