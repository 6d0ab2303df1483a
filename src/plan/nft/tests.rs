//! The nft backend in plans, from the recorded facts of tests/fixtures/plan
//! and the table nft printed in a namespace (tests/fixtures/nft).

use super::super::{Plan, PlanOptions, StepState, plan, render_script, render_text};
use crate::backend::{Effect, Op};
use crate::probe::HostFacts;
use crate::profile::{Backend, Profile};
use std::path::Path;

const PRINTED: &str = include_str!("../../../tests/fixtures/nft/both-printed.txt");

fn read(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/plan")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn facts(name: &str) -> HostFacts {
    serde_json::from_str(&read(name)).unwrap()
}

fn both(backend: Backend) -> Profile {
    let mut p = Profile::parse(&read("both.toml"), "both.toml").unwrap();
    p.backend = backend;
    p
}

fn plan_of(p: &Profile, f: &HostFacts) -> Plan {
    plan(p, f, PlanOptions::default()).unwrap()
}

fn nft_steps(p: &Plan) -> Vec<&crate::plan::Step> {
    p.steps
        .iter()
        .filter(|s| matches!(s.apply, Op::NftTable { .. } | Op::NftDelete))
        .collect()
}

#[test]
fn the_netfilter_part_is_one_step_with_a_line_per_rule() {
    let p = plan_of(&both(Backend::Nft), &facts("both.json"));
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert!(
        !p.steps
            .iter()
            .any(|s| matches!(s.apply, Op::Netfilter { .. })),
        "no iptables step on a clean host"
    );
    let nft = nft_steps(&p);
    assert_eq!(nft.len(), 1);
    assert_eq!(
        (nft[0].state, &nft[0].undo),
        (StepState::Add, &Op::NftDelete)
    );
    // After the routes and policy rules: nothing is marked before its path exists.
    let last_rule = p
        .steps
        .iter()
        .rposition(|s| matches!(s.apply, Op::PolicyRule { .. }))
        .unwrap();
    let at = p
        .steps
        .iter()
        .position(|s| matches!(s.apply, Op::NftTable { .. }))
        .unwrap();
    assert!(at > last_rule);
    let text = render_text(&p, "both.toml");
    assert!(
        text.contains("Netfilter backend: nft (backend = \"nft\" in the profile)."),
        "{text}"
    );
    insta::assert_snapshot!("nft_both_preview", text);
}

#[test]
fn json_and_script_carry_the_nft_input() {
    let p = plan_of(&both(Backend::Nft), &facts("both.json"));
    let json = serde_json::to_value(&p).unwrap();
    let step = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["apply"]["kind"] == "run_input")
        .expect("the nft step");
    assert_eq!(step["apply"]["argv"], serde_json::json!(["nft", "-f", "-"]));
    let input = step["apply"]["input"].as_str().unwrap();
    assert!(
        input.starts_with("table inet dscproute\ndelete table inet dscproute\n"),
        "{input}"
    );
    let script = render_script(&p, "both.toml");
    assert!(
        script.contains("nft -f - <<'DSCPROUTE_NFT'\ntable inet dscproute\n"),
        "{script}"
    );
    assert!(script.contains("\nDSCPROUTE_NFT\n}\n"), "{script}");
}

#[test]
fn the_table_in_place_is_not_written_again() {
    let mut f = facts("both.json");
    f.nft_ruleset = Some(PRINTED.into());
    let p = plan_of(&both(Backend::Nft), &f);
    let nft = nft_steps(&p);
    assert_eq!(nft[0].state, StepState::InPlace, "{:#?}", nft[0]);
    assert!(
        p.errors.is_empty(),
        "our own table is no mark conflict: {:?}",
        p.errors
    );
}

#[test]
fn a_changed_profile_replaces_the_table_and_undo_restores_the_old_one() {
    let mut f = facts("both.json");
    f.nft_ruleset = Some(PRINTED.replace("0x07", "0x08"));
    let p = plan_of(&both(Backend::Nft), &f);
    let nft = nft_steps(&p);
    assert_eq!(nft[0].state, StepState::Change);
    let Op::NftTable { ruleset: old, .. } = &nft[0].undo else {
        panic!("undo {:?}", nft[0].undo)
    };
    assert!(old.table_text().contains("ip dscp 0x08"));
}

#[test]
fn a_foreign_table_of_that_name_is_refused() {
    let mut f = facts("both.json");
    f.nft_ruleset = Some("table inet dscproute {\n\tchain x {\n\t\tcounter\n\t}\n}\n".into());
    let p = plan_of(&both(Backend::Nft), &f);
    assert!(
        p.errors
            .iter()
            .any(|e| e.contains("table inet dscproute on this host is not one dscproute writes")),
        "{:?}",
        p.errors
    );
}

#[test]
fn switching_to_nft_removes_the_iptables_setup_jumps_first() {
    let p = plan_of(&both(Backend::Nft), &facts("both-applied.json"));
    let nf: Vec<_> = p
        .steps
        .iter()
        .filter(|s| matches!(s.apply, Op::Netfilter { .. }))
        .collect();
    assert!(!nf.is_empty());
    assert!(
        nf.iter()
            .all(|s| s.apply.is_removal() && s.state == StepState::Change)
    );
    let shown: Vec<String> = nf.iter().map(|s| s.apply.display()).collect();
    // Per family and chain: the jump into it goes before the chain does.
    for (i, s) in shown.iter().enumerate().filter(|(_, s)| s.contains(" -X ")) {
        let (prog, chain) = (s.split(' ').next().unwrap(), s.rsplit(' ').next().unwrap());
        let jump = shown
            .iter()
            .position(|j| j.starts_with(&format!("{prog} ")) && j.ends_with(&format!("-j {chain}")))
            .unwrap_or_else(|| panic!("no unlink of {chain}: {shown:#?}"));
        assert!(
            jump < i,
            "{chain} deleted before it was unlinked: {shown:#?}"
        );
    }
    assert!(p.errors.is_empty(), "{:?}", p.errors);
}

#[test]
fn switching_to_iptables_removes_our_nft_table() {
    let mut f = facts("both.json");
    f.nft_ruleset = Some(PRINTED.into());
    let p = plan_of(&both(Backend::Iptables), &f);
    let nft = nft_steps(&p);
    assert_eq!(nft.len(), 1);
    assert_eq!(nft[0].apply, Op::NftDelete);
    assert!(matches!(nft[0].undo, Op::NftTable { .. }));
    assert!(matches!(nft[0].apply.effect(), Effect::Run { .. }));
}

#[test]
fn auto_picks_nft_where_it_works_and_keeps_a_live_iptables_setup() {
    let mut f = facts("both.json");
    f.nft_ruleset = Some(String::new());
    let (b, why) = super::choose(&both(Backend::Auto), &f);
    assert_eq!(b, Backend::Nft, "{why}");
    // An existing setup in iptables stays there.
    let (b, why) = super::choose(&both(Backend::Auto), &facts("both-applied.json"));
    assert_eq!(b, Backend::Iptables);
    assert!(why.contains("already in iptables"), "{why}");
    // No nft binary, or nf_tables not answering.
    let mut none = f.clone();
    none.tools.insert("nft".into(), None);
    assert_eq!(
        super::choose(&both(Backend::Auto), &none).0,
        Backend::Iptables
    );
    let mut broken = f.clone();
    broken.nft_ruleset = None;
    assert_eq!(
        super::choose(&both(Backend::Auto), &broken).0,
        Backend::Iptables
    );
    // The preview says which and why.
    let text = render_text(&plan_of(&both(Backend::Auto), &f), "both.toml");
    assert!(
        text.contains("Netfilter backend: nft (auto: the nft binary is installed"),
        "{text}"
    );
}

#[test]
fn the_profile_key_is_checked_and_kept() {
    let base = read("both.toml");
    let e = Profile::parse(&format!("backend = \"nftables\"\n{base}"), "p.toml").unwrap_err();
    assert!(
        e.to_string()
            .contains("accepted: \"auto\", \"nft\" or \"iptables\""),
        "{e}"
    );
    let p = Profile::parse(&format!("backend = \"nft\"\n{base}"), "p.toml").unwrap();
    assert_eq!(p.backend, Backend::Nft);
    assert_eq!(Profile::parse(&p.to_toml(), "again").unwrap(), p);
    assert_eq!(
        Profile::parse(&base, "p.toml").unwrap().backend,
        Backend::Iptables
    );
}

/// Routing on the DSCP (`match = "dscp-rule"`) leaves nothing to mark: our
/// table only scrubs and masquerades by output interface.
#[test]
fn dscp_rule_mode_keeps_scrub_and_masquerade_without_a_mark() {
    use crate::backend::nft::{NftHook, NftRule};
    use crate::plan::Resolved;
    let text = "backend = \"nft\"\n[gateway]\ndscp = 7\ninterface = \"wg0\"\n\
                via = \"10.8.0.1\"\nmatch = \"dscp-rule\"\n";
    let p = Profile::parse(text, "g.toml").unwrap();
    let t = super::desired(&p, &Resolved::default());
    let rules: Vec<(NftHook, &NftRule)> = t
        .chains
        .iter()
        .flat_map(|c| c.rules.iter().map(move |r| (c.hook, r)))
        .collect();
    assert_eq!(
        rules,
        [
            (
                NftHook::Scrub,
                &NftRule::ScrubDscp {
                    family: crate::backend::Family::V4,
                    out: "wg0".into(),
                    dscp: 7
                }
            ),
            (
                NftHook::Nat,
                &NftRule::MasqueradeAll {
                    family: Some(crate::backend::Family::V4),
                    out: "wg0".into()
                }
            ),
        ]
    );
    // It renders, and reads back as the same rule.
    let text = t.table_text();
    assert!(
        text.contains("oifname \"wg0\" meta nfproto ipv4 counter masquerade"),
        "{text}"
    );
    assert!(!text.contains("mark"), "{text}");
}

/// A user marker is matched natively (`meta skuid`) and reads back as ours;
/// so is a cgroup, where nft can find the cgroup v2 mount.
#[test]
fn the_nft_backend_marks_users_and_cgroups_where_nft_finds_them() {
    let mut f = facts("client.json");
    f.users.push(crate::probe::User {
        name: "alice".into(),
        uid: 1001,
    });
    let p = Profile::parse(
        "backend = \"nft\"\n[marker]\nuser = \"alice\"\ndscp = 7\n",
        "u.toml",
    )
    .unwrap();
    let planned = plan_of(&p, &f);
    assert!(planned.errors.is_empty(), "{:?}", planned.errors);
    let Op::NftTable { ruleset, .. } = &nft_steps(&planned)[0].apply else {
        panic!("no table step")
    };
    let text = ruleset.table_text();
    assert!(
        text.contains("meta skuid 1001 counter ct mark set"),
        "{text}"
    );
    let printed = text.replace(" counter ", " counter packets 0 bytes 0 ");
    let back = crate::backend::nft::parse_table(&printed)
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(&back, ruleset);

    // A cgroup (and a unit, by its cgroup) is matched below /sys/fs/cgroup,
    // where nft looks: `unified/…` on a hybrid host, at its level in the
    // cgroup v2 tree; a stale rule (a number) reads back as such.
    f.cgroup2 = Some("/sys/fs/cgroup/unified".into());
    f.cgroups.insert("dscproute/dl".into(), Some(4321));
    let p = Profile::parse(
        "backend = \"nft\"\n[marker]\ncgroup = \"dscproute/dl\"\ndscp = 7\n",
        "c.toml",
    )
    .unwrap();
    let planned = plan_of(&p, &f);
    assert!(planned.errors.is_empty(), "{:?}", planned.errors);
    let Op::NftTable { ruleset, .. } = &nft_steps(&planned)[0].apply else {
        panic!("no table step")
    };
    let text = ruleset.table_text();
    assert!(
        text.contains("socket cgroupv2 level 2 \"unified/dscproute/dl\" counter ct mark set"),
        "{text}"
    );
    let stale = text
        .replace("\"unified/dscproute/dl\"", "937")
        .replace(" counter ", " counter packets 0 bytes 0 ");
    let back = crate::backend::nft::parse_table(&stale).unwrap().unwrap().0;
    assert!(back.rules().any(|(_, r)| matches!(
        r,
        crate::backend::nft::NftRule::CgroupConnmark { path, level: 2, .. } if path == "937"
    )));
    assert!(back.check().is_ok());

    // A cgroup v2 mount nft does not look in: refused in one line; auto
    // takes iptables.
    f.cgroup2 = Some("/run/cgroup2".into());
    for who in ["unit = \"vpn.slice\"", "cgroup = \"dscproute/dl\""] {
        let text = format!("backend = \"nft\"\n[marker]\n{who}\ndscp = 7\n");
        let p = Profile::parse(&text, "c.toml").unwrap();
        let refused = plan(&p, &f, PlanOptions::default()).unwrap();
        assert!(
            refused.errors.iter().any(|e| e
                .contains("nft finds cgroups only below /sys/fs/cgroup")
                && !e.contains('\n')),
            "{:?}",
            refused.errors
        );
        let auto = Profile::parse(&text.replace("\"nft\"", "\"auto\""), "c.toml").unwrap();
        assert_eq!(super::choose(&auto, &f).0, Backend::Iptables);
    }
}

/// Where nft showed no table of ours, the plan creates it exclusively (no
/// delete, so no RCU wait); where one is there, or nft was not read, it
/// replaces it; an undo always replaces.
#[test]
fn a_table_known_absent_is_created_and_any_other_replaced() {
    let fresh_of = |ruleset: Option<String>| {
        let mut f = facts("both.json");
        f.nft_ruleset = ruleset;
        let p = plan_of(&both(Backend::Nft), &f);
        let Op::NftTable { fresh, .. } = nft_steps(&p)[0].apply else {
            panic!("{:?}", nft_steps(&p)[0].apply)
        };
        let script = render_script(&p, "both.toml");
        assert_eq!(
            script.contains("\ncreate table inet dscproute { comment \"dscproute\"; }\n"),
            fresh,
            "{script}"
        );
        assert_eq!(!script.contains("\ndelete table inet dscproute\n"), fresh);
        fresh
    };
    assert!(fresh_of(Some(String::new())));
    assert!(fresh_of(Some("table inet fw4 {\n}\n".into())));
    assert!(
        !fresh_of(None),
        "not read: replaced, which works either way"
    );
    assert!(!fresh_of(Some(PRINTED.replace("0x07", "0x08"))));
}
