//! Property tests for everything dscproute reads from outside: the profile
//! (TOML), recorded facts (JSON), the journal (JSON), and the rule texts
//! the probe hands to the plan (iptables-save, nft list ruleset). Arbitrary
//! text and mutations of valid inputs must give a value or an error, never
//! a panic; errors stay one line and short (input is quoted clipped); and
//! whatever facts parse, planning from them must not panic either.
//!
//! Inputs are a few KiB at most and the case counts are fixed, so the suite
//! runs in seconds (bounded time and memory); PROPTEST_CASES overrides them.

use dscproute::apply::{Journal, journal_check};
use dscproute::backend::Effect;
use dscproute::plan::ruleset::Ruleset;
use dscproute::plan::{PlanOptions, plan};
use dscproute::probe::{HostFacts, parse_nft_ruleset};
use dscproute::profile::Profile;
use dscproute::tos::parse_value;
use proptest::prelude::*;
use serde_json::Value;
use std::path::Path;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/plan")
            .join(name),
    )
    .unwrap()
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(cases),
        ..ProptestConfig::default()
    }
}

/// An error for a person: one line, and never a long input echoed back
/// (quoted parts are clipped to 40 characters).
fn assert_short_line(e: &str) {
    assert!(!e.contains('\n'), "not one line: {e}");
    assert!(e.len() < 700, "{} bytes: {e}", e.len());
}

/// Profile-ish text: the real keys, sections and value shapes, shuffled.
fn profile_text() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "group",
        "user",
        "unit",
        "cgroup",
        "dscp",
        "create_group",
        "interface",
        "via",
        "via6",
        "mark",
        "mask",
        "table",
        "table_id",
        "priority",
        "kill_switch",
        "masquerade",
        "scrub_dscp",
        "rp_filter",
        "bogus",
    ]);
    let value = prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        "[a-z0-9:./x\\-]{0,20}".prop_map(|s| format!("{s:?}")),
        ".{0,30}".prop_map(|s| format!("{s:?}")),
        "[a-z]{100,300}".prop_map(|s| format!("{s:?}")),
        Just("[1, 2]".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("\"0xffffffff\"".to_string()),
        Just("\"nqb\"".to_string()),
        "[a-z./@:-]{0,30}\\.(service|slice|scope)".prop_map(|s| format!("{s:?}")),
        "/?([a-z.@:_-]{0,8}/){0,4}(\\.\\.)?[a-z.]{0,8}/?".prop_map(|s| format!("{s:?}")),
    ];
    let section = prop::sample::select(vec!["[marker]", "[gateway]", "[other]", ""]);
    let line = (section, prop::collection::vec((key, value), 0..8)).prop_map(|(s, kvs)| {
        let mut t = format!("{s}\n");
        for (k, v) in kvs {
            t.push_str(&format!("{k} = {v}\n"));
        }
        t
    });
    prop::collection::vec(line, 0..4).prop_map(|v| v.concat())
}

const VALID_PROFILE: &str = "[marker]\ngroup = \"torrent\"\ndscp = 7\n\n[gateway]\ndscp = 7\n\
                             interface = \"wg0\"\nvia = \"10.8.0.1\"\nmark = \"0x3\"\n\
                             mask = \"0xff\"\ntable = \"vpn\"\ntable_id = 100\n";

/// A valid text with a few bytes replaced, inserted or cut.
fn mutated(base: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<char>()), 1..6).prop_map(
        move |edits| {
            let mut s: Vec<char> = base.chars().collect();
            for (at, op, c) in edits {
                let i = at.index(s.len() + 1);
                match op {
                    0 => s.insert(i, c),
                    1 if i < s.len() => s[i] = c,
                    _ if i < s.len() => {
                        s.remove(i);
                    }
                    _ => {}
                }
            }
            s.into_iter().collect()
        },
    )
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn profile_parser_never_panics_on_any_text(text in ".{0,400}") {
        if let Err(e) = Profile::parse(&text, "p.toml") {
            assert_short_line(&e.to_string());
        }
    }

    #[test]
    fn profile_parser_never_panics_on_profile_shaped_text(text in profile_text()) {
        match Profile::parse(&text, "p.toml") {
            // What parses must print back as a profile that parses the same.
            Ok(p) => prop_assert_eq!(Profile::parse(&p.to_toml(), "again.toml").unwrap(), p),
            Err(e) => assert_short_line(&e.to_string()),
        }
    }

    #[test]
    fn profile_parser_never_panics_on_a_mutated_profile(text in mutated(VALID_PROFILE)) {
        if let Err(e) = Profile::parse(&text, "p.toml") {
            assert_short_line(&e.to_string());
        }
    }

    #[test]
    fn dscp_parser_never_panics(text in ".{0,80}", tos in any::<bool>()) {
        if let Err(e) = parse_value(&text, tos) {
            assert_short_line(&e.to_string());
        }
    }

    #[test]
    fn facts_parser_never_panics_on_any_text(text in ".{0,400}") {
        if let Err(e) = HostFacts::from_json(&text) {
            assert_short_line(&e.to_string());
        }
    }

    #[test]
    fn rule_text_parsers_never_panic(text in "([-*:A-Za-z0-9 {}\";/\n\t]|table|chain|hook|jump|mark set|-j|-A){0,60}") {
        let _ = Ruleset::parse(&text).rules().count();
        let _ = parse_nft_ruleset(&text);
    }
}

/// Any JSON value at a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u32>().prop_map(Value::from),
        ".{0,40}".prop_map(Value::String),
        // Rule texts with the words the conflict checks look for.
        "(\\*mangle\n|:PREROUTING ACCEPT\n|-A PREROUTING |-j MARK --set-xmark 0x1/0xff\n|\
          -j CONNMARK --restore-mark\n|table ip t \\{\n|chain c \\{\n|type filter hook \
          prerouting priority mangle;\n|meta mark set ct mark\n|jump c\n|\\}\n|COMMIT\n){0,12}"
            .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A journal of the gateway plan, as apply writes it (made once).
fn journal() -> &'static Value {
    static JOURNAL: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    JOURNAL.get_or_init(|| {
        let f = HostFacts::from_json(&fixture("gateway-clean.json")).unwrap();
        let p = Profile::parse(VALID_PROFILE, "p.toml").unwrap();
        let steps = plan(&p, &f, PlanOptions::default()).unwrap().steps;
        serde_json::to_value(Journal::new("p.toml", steps)).unwrap()
    })
}

const FACTS_KEYS: &[&str] = &[
    "is_root",
    "kernel",
    "iproute2_version",
    "tools",
    "iptables_backend",
    "groups",
    "links",
    "routes_v4",
    "routes_v6",
    "rules_v4",
    "rules_v6",
    "rt_tables",
    "sysctls",
    "iptables_save",
    "ip6tables_save",
    "nft_ruleset",
    "iptables_legacy_save",
    "xt_matches",
    "xt_targets",
    "unreadable",
];

proptest! {
    #![proptest_config(config(256))]

    /// A real recording with some keys replaced or removed: refused with one
    /// line, or accepted; and planning from what is accepted never panics.
    #[test]
    fn facts_mutations_refuse_or_plan(
        edits in prop::collection::vec(
            (prop::sample::select(FACTS_KEYS), prop::option::of(json_value())),
            1..4,
        ),
    ) {
        let mut v: Value = serde_json::from_str(&fixture("gateway-applied.json")).unwrap();
        for (key, value) in edits {
            match value {
                Some(x) => v[key] = x,
                None => {
                    v.as_object_mut().unwrap().remove(key);
                }
            }
        }
        let text = v.to_string();
        match HostFacts::from_json(&text) {
            Ok(f) => {
                let p = Profile::parse(VALID_PROFILE, "p.toml").unwrap();
                let _ = plan(&p, &f, PlanOptions::default());
            }
            Err(e) => assert_short_line(&e.to_string()),
        }
    }

    #[test]
    fn journal_parser_never_panics_on_any_text(text in ".{0,400}") {
        if let Ok(j) = serde_json::from_str::<Journal>(&text) {
            let _ = journal_check::check(&j);
        }
    }

    /// A real journal with parts replaced: read or refused, never a panic.
    #[test]
    fn journal_mutations_never_panic(
        edits in prop::collection::vec(
            (
                prop::sample::select(vec![
                    "/version", "/id", "/state", "/profile", "/steps", "/steps/0",
                    "/steps/0/step", "/steps/0/step/apply", "/steps/0/step/apply/name",
                    "/steps/0/status", "/steps/0/saved", "/steps/1/step/undo",
                    "/steps/1/step/apply/key", "/steps/1/step/undo/value",
                    "/steps/3/step/apply/route/dev", "/steps/4/step/apply/rule/pref",
                    "/steps/10/step/apply/cmd", "/steps/12/step/apply/cmd/append/rule",
                    "/steps/12/step/undo/cmd/delete/chain", "/steps/2/step/undo/op",
                    "/confirm_deadline_unix", "/boot_id",
                ]),
                json_value(),
            ),
            1..4,
        ),
    ) {
        let mut v = journal().clone();
        for (pointer, value) in edits {
            if let Some(slot) = v.pointer_mut(pointer) {
                *slot = value;
            }
        }
        // What the check lets through can only run our programs on our file.
        if let Ok(j) = serde_json::from_str::<Journal>(&v.to_string())
            && journal_check::check(&j).is_ok()
        {
            for s in &j.steps {
                assert_ours(&s.step.apply.effect());
                assert_ours(&s.step.undo.effect());
            }
        }
    }
}

fn assert_ours(e: &Effect) {
    match e {
        Effect::Run { argv } => assert!(
            matches!(
                argv.first().map(String::as_str),
                Some("iptables" | "ip6tables" | "ip" | "sysctl" | "groupadd" | "groupdel")
            ) || *argv == dscproute::backend::nft::delete_argv(),
            "accepted a foreign command: {argv:?}"
        ),
        // Only ever our typed table, rendered.
        Effect::RunInput { argv, input } => {
            assert_eq!(*argv, dscproute::backend::nft::replace_argv());
            assert!(input.starts_with("table inet dscproute\n"), "{input}");
        }
        Effect::WriteFile { path, .. } | Effect::RemoveFile { path } => {
            assert_eq!(path, dscproute::ownership::RT_TABLES_DROPIN)
        }
        Effect::Seq { effects } => effects.iter().for_each(assert_ours),
        Effect::DropEmptyTable { .. } => {}
    }
}

/// A cgroup path-ish string: our characters, slashes, dots, and a few others.
fn cgroup_path() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9/._@:\\- \"\\\\]{0,40}"
}

proptest! {
    #![proptest_config(config(512))]

    /// A cgroup rule is either refused by `Op::check`, or it reads back from
    /// its iptables-save text and its argv as exactly itself; never a panic.
    #[test]
    fn cgroup_rules_are_refused_or_read_back_exactly(path in cgroup_path(), id in prop::option::of(any::<u64>())) {
        use dscproute::backend::iptables::{read_rule, rule_text};
        use dscproute::backend::op::{ChainRule, NfCmd, OurRule, Table};
        use dscproute::backend::{Family, MarkMask, Op};
        let rule = ChainRule::Ours(OurRule::CgroupConnmark {
            path: path.clone(),
            id,
            mark: MarkMask { value: 1, mask: 0xff },
        });
        let op = Op::Netfilter {
            family: Family::V4,
            table: Table::Mangle,
            cmd: NfCmd::Append { chain: "DSCPROUTE-MARK".into(), rule: rule.clone() },
        };
        match op.check() {
            Err(e) => assert_short_line(&e),
            Ok(()) => {
                prop_assert_eq!(read_rule(Table::Mangle, "DSCPROUTE-MARK", &rule_text(&rule)), rule);
                prop_assert_eq!(Op::parse(&op.effect()), Ok(op.clone()));
            }
        }
        // Whatever the text, reading it never panics.
        let _ = read_rule(Table::Mangle, "DSCPROUTE-MARK", &format!("-m cgroup --path {path} -j CONNMARK --set-xmark 0x1/0xff"));
    }
}
