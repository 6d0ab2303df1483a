use super::*;
use crate::apply::journal::StepStatus;
use crate::backend::{Effect, Family, NfCmd, SysctlKey, Table};
use crate::plan::{PlanOptions, Role, Step, StepState, plan};
use crate::probe::HostFacts;
use crate::profile::Profile;

const DIR: &str = "tests/fixtures/plan";

fn fixtures(ext: &str) -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR);
    let mut v: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

/// Variations the fixture profiles do not cover: every switch of the
/// gateway, a created group, edge priorities and table numbers.
const INLINE: &[&str] = &[
    "[marker]\ngroup = \"newgroup\"\ncreate_group = true\ndscp = \"af41\"\n",
    "[gateway]\ndscp = 63\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nkill_switch = false\n\
     masquerade = false\nscrub_dscp = false\nrp_filter = \"keep\"\npriority = 2\n",
    "[gateway]\ndscp = 1\ninterface = \"wg0\"\nvia6 = \"fd00::1\"\ntable = 4000000000\n\
     priority = 32764\nmark = \"0x80000000\"\nmask = \"0x80000000\"\n",
    "[marker]\ngroup = 1001\ndscp = 7\n[gateway]\ndscp = 7\ninterface = \"wg0\"\n\
     via = \"10.8.0.1\"\ntable = \"other\"\ntable_id = 120\nmark = 5\n",
];

fn journal_step(step: Step, saved: Option<Saved>) -> JournalStep {
    JournalStep {
        step,
        status: StepStatus::Done,
        saved,
        error: None,
    }
}

/// What the executor would save before the step: the old sysctl value, or
/// the old drop-in and the directories the write creates.
fn saved_for(step: &Step, facts: &HostFacts) -> Option<Saved> {
    match &step.apply {
        Op::Sysctl { key, .. } => {
            let key = key.key();
            let old = facts.sysctl(&key).unwrap_or("0").to_string();
            Some(Saved::Sysctl { key, old })
        }
        Op::WriteTableNames { .. } => Some(Saved::File {
            path: RT_TABLES_DROPIN.into(),
            old_contents: Some("100 vpn\n".into()),
            created_dirs: vec!["/etc/iproute2/rt_tables.d".into()],
        }),
        _ => None,
    }
}

/// The property the journal rests on: everything the planner produces, for
/// every recorded host and every profile, with what apply saves, passes the
/// check, as a whole journal too, and is stored and read back unchanged.
#[test]
fn every_step_the_planner_makes_passes() {
    let facts = fixtures("json");
    let mut profiles = fixtures("toml");
    profiles.extend(
        INLINE
            .iter()
            .enumerate()
            .map(|(i, t)| (format!("inline-{i}"), t.to_string())),
    );
    let mut checked = 0;
    let mut planned = std::collections::BTreeSet::new();
    for (fname, ftext) in &facts {
        let f: HostFacts = serde_json::from_str(ftext).unwrap_or_else(|e| panic!("{fname}: {e}"));
        for (pname, ptext) in &profiles {
            let p = Profile::parse(ptext, pname).unwrap_or_else(|e| panic!("{e}"));
            let Ok(plan) = plan(&p, &f, PlanOptions::default()) else {
                continue;
            };
            planned.insert(pname.clone());
            assert!(
                !plan
                    .errors
                    .iter()
                    .any(|e| e.contains("not a command dscproute writes")),
                "{pname} on {fname}: {:#?}",
                plan.errors
            );
            let steps: Vec<JournalStep> = plan
                .steps
                .iter()
                .map(|s| journal_step(s.clone(), saved_for(s, &f)))
                .collect();
            for js in &steps {
                check_step(js).unwrap_or_else(|e| panic!("{pname} on {fname}: {e}"));
                checked += 1;
            }
            let mut j = Journal::new(pname, plan.steps.clone());
            j.steps = steps;
            check(&j).unwrap();
            let text = serde_json::to_string(&j).unwrap();
            assert_eq!(serde_json::from_str::<Journal>(&text).unwrap(), j);
        }
    }
    assert!(checked > 500, "only {checked} steps checked");
    assert_eq!(planned.len(), profiles.len(), "some profile never planned");
}

fn step(apply: Op, undo: Op) -> JournalStep {
    journal_step(
        Step {
            role: Role::Gateway,
            state: StepState::Add,
            apply,
            undo,
            reason: String::new(),
            change: None,
        },
        None,
    )
}

fn run(s: &str) -> Effect {
    Effect::run(s.split(' ').map(str::to_string).collect())
}

fn op(s: &str) -> Op {
    Op::parse(&run(s)).unwrap_or_else(|e| panic!("{s}: {e}"))
}

const GOOD: &str = "ip -4 rule add pref 10001 fwmark 0x1/0xff unreachable proto 213";
const GOOD_UNDO: &str = "ip -4 rule del pref 10001 fwmark 0x1/0xff unreachable proto 213";

/// What an attacker (or a bad restore) could put in a journal of the
/// earlier format, where steps were commands: each is refused on reading
/// (`Op::parse`), and the reason names the offending text.
#[test]
fn crafted_commands_are_refused() {
    assert!(Op::parse(&run(GOOD_UNDO)).is_ok());
    let cases: Vec<(Effect, &str)> = vec![
        (
            Effect::run(["sh", "-c", "touch /tmp/x"].map(String::from).to_vec()),
            "sh is not a command",
        ),
        (run("iptables -w -t filter -F INPUT"), "table filter"),
        (
            run("iptables -w -t mangle -F INPUT"),
            "chain INPUT is not one of ours",
        ),
        (
            run("iptables -w -t mangle -P INPUT DROP"),
            "-P is not an operation",
        ),
        (run("iptables -t mangle -X DSCPROUTE-MARK"), "not a command"),
        (run("ip rule flush"), "not a command"),
        (run("ip -4 rule flush"), "not a command"),
        (
            run("ip -4 rule del pref 32766 fwmark 0x1/0xff unreachable proto 213"),
            "priority 32766",
        ),
        (
            run("ip -4 rule add pref 1 fwmark 0x0/0x0 lookup 100 proto 213"),
            "not a mark/mask",
        ),
        (
            run("ip -4 rule add pref 1 fwmark 0x1/0xff lookup 254 proto 213"),
            "table 254",
        ),
        (
            run("ip -4 route add default via 10.0.0.1 dev eth0 table 254 proto 213"),
            "table 254",
        ),
        (
            run("ip -4 route add default via fd00::1 dev eth0 table 100 proto 213"),
            "not an IPv4 address",
        ),
        (
            run("ip -4 route add 0.0.0.0/0 dev eth0 table 100 proto 213"),
            "not a command",
        ),
        (
            run("sysctl -q -w kernel.modprobe=/tmp/x"),
            "kernel.modprobe",
        ),
        (run("sysctl -q -w net.ipv4.ip_forward=7"), "not a value"),
        (run("sysctl -p /tmp/evil.conf"), "not a command"),
        (run("groupdel -f root"), "not a command"),
        (run("groupdel ../x"), "not a group name"),
        (
            Effect::WriteFile {
                path: "/etc/passwd".into(),
                contents: "root::0:0::/:/bin/sh\n".into(),
            },
            "/etc/passwd is not a file",
        ),
        (
            Effect::WriteFile {
                path: RT_TABLES_DROPIN.into(),
                contents: "100 vpn\n200 other\n".into(),
            },
            "one line",
        ),
        (
            Effect::RemoveFile {
                path: "/etc/shadow".into(),
            },
            "/etc/shadow is not a file",
        ),
        (
            Effect::RemoveFile {
                path: "/etc/iproute2/rt_tables.d/../../shadow".into(),
            },
            "not a file",
        ),
        (
            Effect::DropEmptyTable {
                family: "inet".into(),
                table: "mangle".into(),
            },
            "inet",
        ),
        (
            Effect::DropEmptyTable {
                family: "ip".into(),
                table: "filter".into(),
            },
            "table filter",
        ),
        (
            run("iptables -w -t mangle -A PREROUTING -j ACCEPT"),
            "only its tagged jump",
        ),
        (
            run("iptables -w -t mangle -I PREROUTING -m comment --comment dscproute -j ACCEPT"),
            "ACCEPT is not one of ours",
        ),
        (
            run("iptables -w -t mangle -A OTHER-CHAIN -j MARK --set-xmark 0x1/0xff"),
            "chain OTHER-CHAIN",
        ),
        (
            run("iptables -w -t mangle -A DSCPROUTE-ROUTE -j TEE --gateway 192.0.2.1"),
            "not a rule dscproute writes",
        ),
        (
            run("iptables -w -t mangle -X DSCPROUTE-../x"),
            "not one of ours",
        ),
        (
            run("iptables -w -t nat -A DSCPROUTE-NAT -m mark --mark 0x01/0xff -j MASQUERADE"),
            "not spelled the way",
        ),
        (
            run("iptables -w -t mangle -A DSCPROUTE-NAT -m mark --mark 0x1/0xff -j MASQUERADE"),
            "in mangle",
        ),
        (
            Effect::Seq {
                effects: vec![Effect::Seq {
                    effects: vec![run(GOOD_UNDO)],
                }],
            },
            "inside a sequence",
        ),
        (
            Effect::Seq {
                effects: vec![
                    run("iptables -w -t mangle -X DSCPROUTE-MARK"),
                    Effect::run(["sh", "-c", "id"].map(String::from).to_vec()),
                ],
            },
            "sh is not a command",
        ),
    ];
    for (undo, why) in cases {
        let shown = undo.display();
        let e = Op::parse(&undo).expect_err("must be refused");
        assert!(e.contains(why), "{shown}: {e} (wanted {why:?})");
    }
}

/// A journal of the current format holds typed operations: the same names
/// and values are refused in them, naming the step's command.
#[test]
fn crafted_operations_are_refused() {
    assert_eq!(check_step(&step(op(GOOD), op(GOOD_UNDO))), Ok(()));
    let flush_input = Op::Netfilter {
        family: Family::V4,
        table: Table::Mangle,
        cmd: NfCmd::FlushChain {
            chain: "INPUT".into(),
        },
    };
    let e = check_step(&step(op(GOOD), flush_input.clone())).unwrap_err();
    assert!(
        e.starts_with("undo `iptables -w -t mangle -F INPUT`: chain INPUT is not one of ours"),
        "{e}"
    );
    // The apply is checked the same way.
    let e = check_step(&step(flush_input, op(GOOD_UNDO))).unwrap_err();
    assert!(e.starts_with("apply `"), "{e}");
    let nested = Op::Seq {
        ops: vec![Op::Seq {
            ops: vec![op(GOOD_UNDO)],
        }],
    };
    let e = check_step(&step(op(GOOD), nested)).unwrap_err();
    assert!(e.contains("inside a sequence"), "{e}");
}

#[test]
fn saved_undo_data_must_belong_to_its_step() {
    let sysctl = |value| Op::Sysctl {
        key: SysctlKey::Ipv4Forwarding,
        value,
    };
    let mut js = step(sysctl(1), sysctl(0));
    let with = |js: &mut JournalStep, saved: Saved| {
        js.saved = Some(saved);
        check_step(js)
    };
    assert_eq!(
        with(
            &mut js,
            Saved::Sysctl {
                key: "net.ipv4.ip_forward".into(),
                old: "0".into()
            }
        ),
        Ok(())
    );
    for (key, old, why) in [
        ("kernel.modprobe", "/tmp/x", "kernel.modprobe"),
        (
            "net.ipv6.conf.all.forwarding",
            "0",
            "not the one the step sets",
        ),
        ("net.ipv4.ip_forward", "1 2", "not a value"),
    ] {
        let e = with(
            &mut js,
            Saved::Sysctl {
                key: key.into(),
                old: old.into(),
            },
        )
        .unwrap_err();
        assert!(e.contains(why), "{e}");
    }
    let file = |old: Option<&str>, dirs: &[&str], path: &str| Saved::File {
        path: path.into(),
        old_contents: old.map(String::from),
        created_dirs: dirs.iter().map(|d| d.to_string()).collect(),
    };
    let mut js = step(
        Op::WriteTableNames {
            id: 100,
            name: "vpn".into(),
        },
        Op::RemoveTableNames,
    );
    let ok = file(
        Some("# ours\n100 dscproute\n"),
        &["/etc/iproute2", "/etc/iproute2/rt_tables.d"],
        RT_TABLES_DROPIN,
    );
    assert_eq!(with(&mut js, ok), Ok(()));
    for (saved, why) in [
        (
            file(None, &[], "/etc/passwd"),
            "not the file the step writes",
        ),
        (
            file(Some("root::0:0::/:/bin/sh\n"), &[], RT_TABLES_DROPIN),
            "not a table name line",
        ),
        (
            file(None, &["/"], RT_TABLES_DROPIN),
            "not a directory above",
        ),
        (
            file(None, &["/var/lib"], RT_TABLES_DROPIN),
            "not a directory above",
        ),
        (
            Saved::Sysctl {
                key: "net.ipv4.ip_forward".into(),
                old: "0".into(),
            },
            "does not belong",
        ),
    ] {
        let e = with(&mut js, saved).unwrap_err();
        assert!(e.contains(why), "{e}");
    }
}

#[test]
fn a_journal_id_must_not_name_a_path() {
    let mut j = Journal::new("p", vec![step(op(GOOD), op(GOOD_UNDO)).step]);
    assert_eq!(check(&j), Ok(()));
    for id in ["../../etc/cron.d/x", "a/b", "", ".hidden"] {
        j.id = id.into();
        assert!(
            check(&j).unwrap_err().contains("not a transaction id"),
            "{id}"
        );
    }
}
