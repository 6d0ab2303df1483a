//! Our nftables table: its `nft -f` input (snapshot), the round trip from
//! what nft 1.0.6 prints back to the same typed table (recorded in a
//! namespace: tests/fixtures/nft/), and refusals of anything we do not write.

use super::*;
use crate::backend::Op;
use crate::runner::{FakeRunner, Output};

const PRINTED: &str = include_str!("../../../tests/fixtures/nft/both-printed.txt");

fn mm(value: u32, mask: u32) -> MarkMask {
    MarkMask { value, mask }
}

/// The table `tests/fixtures/plan/both.toml` plans (client and gateway on
/// one host, no IPv6 path).
fn both() -> NftRuleset {
    let m = mm(1, 0xff);
    let mut t = NftRuleset::default();
    t.push(
        NftHook::Output,
        NftRule::SkgidConnmark {
            gid: "1001".into(),
            mark: m,
        },
    );
    for family in Family::BOTH {
        t.push(
            NftHook::Output,
            NftRule::ConnmarkDscp {
                family,
                mark: m,
                dscp: 7,
            },
        );
    }
    t.push(NftHook::Output, NftRule::ConnmarkMark { mark: m });
    t.push(NftHook::Prerouting, NftRule::ConnmarkMark { mark: m });
    for family in Family::BOTH {
        t.push(
            NftHook::Prerouting,
            NftRule::DscpMark {
                family,
                not_in: "wg0".into(),
                dscp: 7,
                mark: m,
            },
        );
    }
    t.push(NftHook::Prerouting, NftRule::SaveMark { mark: m });
    t.push(
        NftHook::Scrub,
        NftRule::ScrubDscp {
            family: Family::V4,
            out: "wg0".into(),
            dscp: 7,
        },
    );
    t.push(
        NftHook::Nat,
        NftRule::Masquerade {
            family: Some(Family::V4),
            out: "wg0".into(),
            mark: m,
        },
    );
    t
}

#[test]
fn the_script_replaces_the_table_in_one_transaction() {
    let t = both();
    assert_eq!(t.check(), Ok(()));
    insta::assert_snapshot!("nft_both_script", t.script(false));
    insta::assert_snapshot!("nft_both_script_fresh", t.script(true));
}

#[test]
fn what_nft_prints_reads_back_as_the_table_written() {
    let (read, counters) = parse_table(PRINTED).unwrap().expect("our table is there");
    assert_eq!(read, both());
    assert_eq!(counters.len(), 10);
    assert!(counters.iter().all(|c| c.packets == 0 && c.bytes == 0));
}

/// Our own rendering, with counters as nft adds them, reads back too
/// (masks not folded, DSCP as hex): parse is not tied to one printing.
#[test]
fn our_rendering_round_trips() {
    let text = both()
        .table_text()
        .replace(" counter ", " counter packets 12 bytes 3456 ");
    let (read, counters) = parse_table(&text).unwrap().unwrap();
    assert_eq!(read, both());
    assert!(counters.iter().all(|c| c.packets == 12 && c.bytes == 3456));
}

#[test]
fn no_table_is_none() {
    assert_eq!(
        parse_table("table inet other {\n}\n").unwrap(),
        None,
        "another table is not ours and not an error"
    );
}

#[test]
fn anything_we_do_not_write_is_refused_on_read() {
    let cases = [
        // A rule without our comment.
        (
            "comment \"dscproute\"\n\t\t\t\t",
            PRINTED.replacen(" comment \"dscproute\"\n\t}", "\n\t}", 1),
        ),
        // A foreign statement in our chain.
        (
            "drop",
            PRINTED.replacen("masquerade comment", "drop comment", 1),
        ),
        // Our chain at another priority.
        (
            "priority",
            PRINTED.replacen("priority srcnat", "priority srcnat + 1", 1),
        ),
        // A chain we do not write.
        ("chain", PRINTED.replacen("chain scrub", "chain forward", 1)),
        // The table without our comment.
        (
            "table comment",
            PRINTED.replacen("\tcomment \"dscproute\"\n", "", 1),
        ),
        // Mark bits outside the mask.
        (
            "mark",
            PRINTED.replacen("== 0x00000001 counter", "== 0x00000101 counter", 1),
        ),
    ];
    for (what, text) in cases {
        assert_ne!(text, PRINTED, "{what}: the case changed nothing");
        assert!(parse_table(&text).is_err(), "{what}: accepted\n{text}");
    }
}

#[test]
fn dscp_names_nft_prints_are_read() {
    for (line, d) in [
        ("ip dscp ef", 46),
        ("ip dscp cs0", 0),
        ("ip dscp af41", 34),
        ("ip dscp 0x3f", 63),
        ("ip dscp lephb", 1),
    ] {
        let text = format!(
            "iifname != \"wg0\" {line} counter packets 0 bytes 0 meta mark set meta mark & \
             0xffffff01 | 0x00000001 comment \"dscproute\""
        );
        let (r, _, _) = parse::parse_rule(&text).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(
            matches!(r, NftRule::DscpMark { dscp, .. } if dscp == d),
            "{line}"
        );
    }
}

/// A journal holds the table typed; `Op::check` (the gate of every journal
/// load) refuses names and values we would never write, so no crafted
/// journal can make `nft -f` run text of its own.
#[test]
fn op_check_refuses_foreign_content() {
    let ok = Op::NftTable {
        ruleset: both(),
        fresh: false,
    };
    assert_eq!(ok.check(), Ok(()));
    let smuggle = |f: &dyn Fn(&mut NftRuleset)| {
        let mut t = both();
        f(&mut t);
        Op::NftTable {
            ruleset: t,
            fresh: false,
        }
        .check()
    };
    let refused = [
        smuggle(&|t| {
            t.chains[2].rules[0] = NftRule::ScrubDscp {
                family: Family::V4,
                out: "wg0\" accept; flush ruleset; #".into(),
                dscp: 7,
            }
        }),
        smuggle(&|t| {
            t.chains[0].rules[0] = NftRule::SkgidConnmark {
                gid: "0 drop".into(),
                mark: mm(1, 0xff),
            }
        }),
        smuggle(&|t| {
            t.chains[1].rules[1] = NftRule::DscpMark {
                family: Family::V4,
                not_in: "wg0".into(),
                dscp: 64,
                mark: mm(1, 0xff),
            }
        }),
        smuggle(&|t| {
            t.chains[3].rules[0] = NftRule::Masquerade {
                family: None,
                out: "wg0".into(),
                mark: mm(0x100, 0xff),
            }
        }),
        // nft's interface wildcard.
        smuggle(&|t| {
            t.chains[2].rules[0] = NftRule::ScrubDscp {
                family: Family::V4,
                out: "wg*".into(),
                dscp: 7,
            }
        }),
        // A rule in a chain it does not belong in.
        smuggle(&|t| {
            let r = t.chains[0].rules[0].clone();
            t.chains[3].rules.push(r)
        }),
        // A chain twice.
        smuggle(&|t| {
            let c = t.chains[3].clone();
            t.chains.push(c)
        }),
    ];
    for (i, r) in refused.iter().enumerate() {
        assert!(r.is_err(), "case {i} accepted");
    }
}

/// A journal entry carrying nft text in any field does not even load as an
/// operation: the table is made of typed rules only.
#[test]
fn a_journal_cannot_carry_nft_text() {
    let json = r#"{"op":"nft_table","ruleset":{"chains":[{"hook":"output","rules":[
        {"rule":"raw","text":"flush ruleset"}]}]}}"#;
    assert!(serde_json::from_str::<Op>(json).is_err());
    for fresh in [false, true] {
        let op = Op::NftTable {
            ruleset: both(),
            fresh,
        };
        let json = serde_json::to_string(&op).unwrap();
        // Journals from before `fresh` load as a replace.
        assert_eq!(json.contains("fresh"), fresh, "{json}");
        let back: Op = serde_json::from_str(&json).unwrap();
        assert_eq!(back, op);
        assert_eq!(back.check(), Ok(()));
    }
}

/// A group by name (a plan for another host) is quoted, so names with `-`
/// or `.` load; nft resolves it and prints the gid, which plans compare.
#[test]
fn a_group_name_is_quoted_and_reads_back() {
    let r = NftRule::SkgidConnmark {
        gid: "vpn-users".into(),
        mark: mm(1, 0xff),
    };
    assert!(
        r.text().starts_with("meta skgid \"vpn-users\" counter "),
        "{}",
        r.text()
    );
    let printed = r.text().replace(" counter ", " counter packets 0 bytes 0 ");
    assert_eq!(parse::parse_rule(&printed).unwrap().0, r);
}

/// What `nft -j list table inet dscproute` printed for the same table
/// (nft 1.0.6), with distinct counters put in: rule i of the table gets
/// i + 1 packets and 100 × (i + 1) bytes.
fn printed_json(drop_first_of: Option<&str>) -> String {
    let mut v: serde_json::Value = serde_json::from_str(include_str!(
        "../../../tests/fixtures/nft/both-printed.json"
    ))
    .unwrap();
    let items = v["nftables"].as_array_mut().unwrap();
    if let Some(chain) = drop_first_of {
        let at = items
            .iter()
            .position(|i| i.get("rule").is_some_and(|r| r["chain"] == chain))
            .unwrap();
        items.remove(at);
    }
    let mut i = 0;
    for item in items.iter_mut() {
        if let Some(exprs) = item
            .get_mut("rule")
            .and_then(|r| r.get_mut("expr"))
            .and_then(|e| e.as_array_mut())
        {
            i += 1;
            for e in exprs {
                if e.get("counter").is_some() {
                    e["counter"] = serde_json::json!({"packets": i, "bytes": 100 * i});
                }
            }
        }
    }
    v.to_string()
}

#[test]
fn counters_come_from_nft_json_rule_for_rule() {
    let json = printed_json(None);
    let list = FakeRunner::new()
        .on(
            &["nft", "list", "table", "inet", "dscproute"],
            Output::ok(PRINTED),
        )
        .on(
            &["nft", "-j", "list", "table", "inet", "dscproute"],
            Output::ok(json),
        );
    let got = read_counters(&list);
    let n = both().rules().count();
    assert_eq!(got.len(), n);
    for (i, c) in got.iter().enumerate() {
        let i = i as u64 + 1;
        assert_eq!((c.packets, c.bytes), (i, 100 * i), "{c:?}");
    }
    assert_eq!(got[0].spec, both().rules().next().unwrap().1.text());
}

#[test]
fn counters_fall_back_to_the_listing_without_json_or_on_a_mismatch() {
    let text = PRINTED.replacen(
        "counter packets 0 bytes 0",
        "counter packets 7 bytes 700",
        1,
    );
    let listed = |json: Output| {
        let f = FakeRunner::new()
            .on(
                &["nft", "list", "table", "inet", "dscproute"],
                Output::ok(text.clone()),
            )
            .on(&["nft", "-j", "list", "table", "inet", "dscproute"], json);
        read_counters(&f)
            .iter()
            .map(|c| (c.chain.clone(), c.packets))
            .collect::<Vec<_>>()
    };
    // OpenWrt's nft may lack JSON: the listing's numbers.
    let no_json = listed(Output::failed(1, "Error: JSON support not compiled-in\n"));
    assert_eq!(no_json[0], ("output".to_string(), 7));
    assert!(no_json[1..].iter().all(|(_, p)| *p == 0));
    // A rule gone between the two reads: that chain keeps the listing's.
    let first = &no_json[0].0;
    let mismatch = listed(Output::ok(printed_json(Some(first))));
    assert_eq!(mismatch[0], (first.clone(), 7));
    let other = mismatch.iter().position(|(c, _)| c != first).unwrap();
    assert_ne!(mismatch[other].1, 0, "other chains take the JSON's");
    assert_eq!(json_counters("not json"), None);
}
