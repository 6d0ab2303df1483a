use super::*;
use crate::plan::{PlanOptions, plan};
use crate::profile::Profile;

/// iptables-save of a gateway where `mangle` holds `extra` lines (before
/// the COMMIT) and, when `applied`, our jump first.
fn save(applied: bool, mangle: &[&str], nat: &[&str]) -> String {
    let mut s = String::from(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:DSCPROUTE-ROUTE - [0:0]\n\
         :FOREIGN - [0:0]\n",
    );
    if applied {
        s.push_str("-A PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE\n");
        s.push_str(
            "-A DSCPROUTE-ROUTE ! -i wg0 -m dscp --dscp 0x07 -j MARK --set-xmark 0x3/0xff\n",
        );
    }
    for l in mangle {
        s.push_str(l);
        s.push('\n');
    }
    s.push_str("COMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n");
    for l in nat {
        s.push_str(l);
        s.push('\n');
    }
    s.push_str("COMMIT\n");
    s
}

fn facts(v4: String) -> HostFacts {
    HostFacts {
        iptables_save: Some(v4),
        ip6tables_save: Some(save(false, &[], &[])),
        iptables_backend: Some(IptablesBackend::NfTables),
        ..HostFacts::default()
    }
}

const FOREIGN: &str = "-A PREROUTING -i lan0 -j MARK --set-xmark 0x100/0xffffffff";

#[test]
fn iptables_targets_as_iptables_save_prints_them() {
    for (spec, want) in [
        (
            "-j MARK --set-xmark 0x100/0xffffffff",
            vec![(Write::Set, u32::MAX)],
        ),
        ("-j MARK --set-xmark 0x100/0x100", vec![(Write::Set, 0x100)]),
        (
            "-j MARK --set-xmark 0x0/0xfffffeff",
            vec![(Write::Set, 0xfffffeff)],
        ),
        ("-j MARK --set-mark 0x100", vec![(Write::Set, u32::MAX)]),
        ("-j MARK --or-mark 0x100", vec![(Write::Set, 0x100)]),
        ("-j MARK --and-mark 0xff", vec![(Write::Set, !0xff)]),
        (
            "-j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff",
            vec![(Write::Restore, u32::MAX)],
        ),
        (
            "-j CONNMARK --restore-mark --nfmask 0x3f00 --ctmask 0x3f00",
            vec![(Write::Restore, 0x3f00)],
        ),
        ("-j CONNMARK --set-xmark 0x4/0xf", vec![(Write::CtSet, 0xf)]),
        (
            "-j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff",
            vec![],
        ),
        ("-m mark --mark 0x3/0xff -j ACCEPT", vec![]),
        ("-m dscp --dscp 0x07 -j DSCP --set-dscp 0x00", vec![]),
    ] {
        assert_eq!(iptables_spec_writes(spec), want, "{spec}");
    }
}

#[test]
fn nft_statements_as_nft_prints_them() {
    for (rule, want) in [
        (
            "iifname \"lan0\" meta mark set 0x00000100",
            vec![(Write::Set, u32::MAX)],
        ),
        (
            "meta mark set meta mark & 0xffffff01 | 0x00000001",
            vec![(Write::Set, 0xff)],
        ),
        // What iptables-nft writes for MARK --or-mark / --and-mark.
        (
            "counter packets 0 bytes 0 meta mark set mark or 0x100",
            vec![(Write::Set, 0x100)],
        ),
        ("meta mark set mark and 0x100", vec![(Write::Set, !0x100)]),
        ("meta mark set ct mark", vec![(Write::Restore, u32::MAX)]),
        (
            "meta mark set ct mark & 0x000000ff",
            vec![(Write::Restore, 0xff)],
        ),
        ("ct mark set meta mark", vec![]),
        ("ct mark set 0x00000001", vec![(Write::CtSet, u32::MAX)]),
        (
            "ct mark set ct mark xor 0x4 and 0xfffffff0",
            vec![(Write::CtSet, 0xf)],
        ),
        ("meta mark 0x3 accept", vec![]),
        ("mark set", vec![(Write::Set, u32::MAX)]),
    ] {
        assert_eq!(nft_rule_writes(rule), want, "{rule}");
    }
}

#[test]
fn a_full_mask_mark_after_us_is_found_before_and_after_apply() {
    for applied in [false, true] {
        let f = facts(save(applied, &[FOREIGN], &[]));
        let (fatal, benign) = overwrites(&f, Hook::Prerouting, 0xff);
        assert_eq!(fatal.len(), 1, "applied {applied}: {fatal:?}");
        assert_eq!(
            fatal[0].rule,
            "iptables -t mangle -A PREROUTING -i lan0 -j MARK --set-xmark 0x100/0xffffffff"
        );
        assert!(benign.is_empty());
    }
}

#[test]
fn what_runs_before_our_jump_or_outside_our_bits_is_no_overwrite() {
    // Inserted ahead of our jump: our rule runs after it and wins.
    let mut s = save(true, &[], &[]);
    s = s.replace(
        "-A PREROUTING -m comment",
        "-A PREROUTING -i lan0 -j MARK --set-xmark 0x100/0xffffffff\n-A PREROUTING -m comment",
    );
    assert!(overwrites(&facts(s), Hook::Prerouting, 0xff).0.is_empty());
    // Tailscale-style bits and a mark match: nothing of ours.
    let f = facts(save(
        false,
        &[
            "-A PREROUTING -j MARK --set-xmark 0x40000/0xff0000",
            "-A PREROUTING -m mark --mark 0x3/0xff -j ACCEPT",
        ],
        &[],
    ));
    assert!(overwrites(&f, Hook::Prerouting, 0xff).0.is_empty());
    // Our own chains are ours.
    assert!(writes_after_us(&facts(save(true, &[], &[])), Hook::Prerouting).is_empty());
}

#[test]
fn later_tables_and_jumped_chains_count() {
    let f = facts(save(
        true,
        &[
            "-A PREROUTING -j FOREIGN",
            "-A FOREIGN -j MARK --set-xmark 0x1/0x1",
        ],
        &["-A PREROUTING -j MARK --set-xmark 0x2/0xffff"],
    ));
    let rules: Vec<String> = overwrites(&f, Hook::Prerouting, 0xff)
        .0
        .into_iter()
        .map(|w| w.rule)
        .collect();
    assert_eq!(
        rules,
        [
            "iptables -t mangle -A FOREIGN -j MARK --set-xmark 0x1/0x1",
            "iptables -t nat -A PREROUTING -j MARK --set-xmark 0x2/0xffff",
        ]
    );
    // nat OUTPUT does not re-route on a mark change: not for the output hook.
    assert!(overwrites(&f, Hook::Output, 0xff).0.is_empty());
}

#[test]
fn a_restore_alone_is_harmless_with_a_connection_mark_set_it_is_not() {
    let restore =
        "-A PREROUTING -j CONNMARK --restore-mark --nfmask 0xffffffff --ctmask 0xffffffff";
    let (fatal, benign) = overwrites(&facts(save(true, &[restore], &[])), Hook::Prerouting, 0xff);
    assert!(fatal.is_empty());
    assert_eq!(benign.len(), 1);
    let f = facts(save(
        true,
        &[
            "-A PREROUTING -j CONNMARK --set-xmark 0x100/0xffffffff",
            restore,
        ],
        &[],
    ));
    let (fatal, _) = overwrites(&f, Hook::Prerouting, 0xff);
    assert_eq!(fatal.len(), 1);
    assert_eq!(fatal[0].write, Write::Restore);
}

#[test]
fn legacy_rules_are_named_with_their_tool() {
    let mut f = facts(save(true, &[], &[]));
    f.iptables_legacy_save = Some(save(false, &[FOREIGN], &[]));
    let (fatal, _) = overwrites(&f, Hook::Prerouting, 0xff);
    assert_eq!(fatal.len(), 1);
    assert!(
        fatal[0]
            .rule
            .starts_with("iptables-legacy -t mangle -A PREROUTING -i lan0")
    );
}

const NFT: &str = r#"table ip foreign {
	chain pre {
		type filter hook prerouting priority filter; policy accept;
		iifname "lan0" meta mark set 0x00000100
		jump sub
	}
	chain sub {
		meta mark set meta mark & 0xffff00ff | 0x00000200
	}
	chain early {
		type filter hook prerouting priority raw; policy accept;
		meta mark set 0x00000001
	}
	chain out {
		type filter hook output priority filter; policy accept;
		meta mark set 0x00000002
	}
	chain reroute {
		type route hook output priority mangle; policy accept;
		meta mark set 0x00000003
	}
}
table inet fw {
	chain pre {
		type filter hook prerouting priority mangle; policy accept;
		meta mark set ct mark
	}
}
table ip mangle {
	chain PREROUTING {
		type filter hook prerouting priority mangle; policy accept;
		meta mark set 0x00000004
	}
}
"#;

#[test]
fn native_nftables_after_us_on_the_same_hook() {
    let mut f = facts(save(true, &[], &[]));
    f.nft_ruleset = Some(NFT.into());
    let writes = writes_after_us(&f, Hook::Prerouting);
    let rules: Vec<&str> = writes.iter().map(|w| w.rule.as_str()).collect();
    assert_eq!(
        rules,
        [
            "nft table ip foreign chain pre: iifname \"lan0\" meta mark set 0x00000100",
            "nft table ip foreign chain sub: meta mark set meta mark & 0xffff00ff | 0x00000200",
            "nft table inet fw chain pre: meta mark set ct mark",
        ],
        "raw priority runs before us; ip mangle is iptables-nft's own table"
    );
    let (fatal, benign) = overwrites(&f, Hook::Prerouting, 0xff);
    assert_eq!(fatal.len(), 1, "0x200/0xff00 spares 0xff: {fatal:?}");
    assert_eq!(benign.len(), 1);
    let out: Vec<String> = writes_after_us(&f, Hook::Output)
        .into_iter()
        .map(|w| w.rule)
        .collect();
    assert_eq!(
        out,
        ["nft table ip foreign chain reroute: meta mark set 0x00000003"]
    );
    // Under the legacy backend, nft's ip mangle is nobody's iptables table.
    f.iptables_backend = Some(IptablesBackend::Legacy);
    assert_eq!(writes_after_us(&f, Hook::Prerouting).len(), 4);
}

#[test]
fn accept_or_return_ahead_of_our_jump_is_found() {
    let ahead = |lines: &[&str]| {
        let mut s = save(
            true,
            &["-A FOREIGN -m conntrack --ctstate ESTABLISHED -j ACCEPT"],
            &[],
        );
        let head: String = lines.iter().map(|l| format!("{l}\n")).collect();
        s = s.replace(
            "-A PREROUTING -m comment",
            &format!("{head}-A PREROUTING -m comment"),
        );
        ahead_of_our_jump(&facts(s), Hook::Prerouting)
    };
    assert_eq!(
        ahead(&["-A PREROUTING -i lan0 -j ACCEPT"]),
        ["iptables -t mangle -A PREROUTING -i lan0 -j ACCEPT"]
    );
    assert_eq!(ahead(&["-A PREROUTING -j RETURN"]).len(), 1);
    assert_eq!(
        ahead(&["-A PREROUTING -j FOREIGN"]).len(),
        1,
        "FOREIGN accepts"
    );
    assert!(ahead(&["-A PREROUTING -j MARK --set-xmark 0x100/0xff00"]).is_empty());
    assert!(
        ahead(&["-A PREROUTING -j DROP"]).is_empty(),
        "dropped is not leaked"
    );
    // Not applied: nothing is ahead of a jump that is not there.
    let s = save(false, &["-A PREROUTING -j ACCEPT"], &[]);
    assert!(ahead_of_our_jump(&facts(s), Hook::Prerouting).is_empty());
}

#[test]
fn the_message_names_the_rule_and_both_fixes() {
    let f = facts(save(false, &[FOREIGN], &[]));
    let (fatal, _) = overwrites(&f, Hook::Prerouting, 0xff);
    let m = describe(&fatal[0], Hook::Prerouting, 0x3, 0xff, &fatal);
    assert!(m.starts_with(
        "iptables -t mangle -A PREROUTING -i lan0 -j MARK --set-xmark 0x100/0xffffffff rewrites \
         mark bits 0xff after dscproute marks the packet on the prerouting hook"
    ));
    assert!(m.contains("kill switch"), "{m}");
    assert!(m.contains("`--set-xmark V/0xffffff00`"), "{m}");
    assert!(m.contains("no other gateway.mask avoids it"), "{m}");
    assert!(!m.contains('\n'));
    let f = facts(save(
        false,
        &["-A PREROUTING -j MARK --set-xmark 0x100/0xfff"],
        &[],
    ));
    let (fatal, _) = overwrites(&f, Hook::Prerouting, 0xff);
    let m = describe(&fatal[0], Hook::Prerouting, 0x3, 0xff, &fatal);
    assert!(m.contains("mask = \"0xff0000\""), "{m}");
}

/// The plan refuses (an error, so exit 3) with the rule named; a profile
/// whose mask avoids the rule's bits is fine.
#[test]
fn the_plan_refuses_a_foreign_overwrite() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/plan/gateway-clean.json"
    ))
    .unwrap();
    let mut f = HostFacts::from_json(&text).unwrap();
    assert_eq!(f.iptables_save.as_deref(), Some(""), "a host without rules");
    f.iptables_save = Some(
        "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -i lan0 -j MARK --set-xmark \
         0x100/0xff00\nCOMMIT\n"
            .into(),
    );
    let p = Profile::parse(
        "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\nmask = \"0xff00\"\nmark = \"0x300\"\n",
        "p.toml",
    )
    .unwrap();
    let planned = plan(&p, &f, PlanOptions::default()).unwrap();
    assert!(
        planned
            .errors
            .iter()
            .any(|e| e.contains("--set-xmark 0x100/0xff00 rewrites mark bits 0xff00")),
        "{:#?}",
        planned.errors
    );
    let p = Profile::parse(
        "[gateway]\ndscp = 7\ninterface = \"wg0\"\nvia = \"10.8.0.1\"\n",
        "p.toml",
    )
    .unwrap();
    let planned = plan(&p, &f, PlanOptions::default()).unwrap();
    assert!(
        planned
            .errors
            .iter()
            .all(|e| !e.contains("rewrites mark bits")),
        "{:#?}",
        planned.errors
    );
}
