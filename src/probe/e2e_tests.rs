//! `probe()` end to end: a FakeRunner answering with the recorded outputs and
//! a temp dir as filesystem root; then one read-only run on the real host.

use super::fixtures;
use super::*;
use crate::runner::{FakeRunner, Output};
use std::path::Path;

/// What `nft list ruleset` printed in a namespace with one native table
/// and iptables-nft's mangle tables (their rules elided here).
const NFT_RULESET: &str = "table inet fw {\n\tchain pre {\n\t\ttype filter hook prerouting \
                           priority filter; policy accept;\n\t\tmeta mark set 0x00000100\n\t}\n}\n\
                           table ip mangle {\n\tchain DSCPROUTE-OUT {\n\t}\n}\n\
                           table ip6 mangle {\n\tchain DSCPROUTE-OUT {\n\t}\n}\n";

const RECORDED: [(&[&str], &str); 11] = [
    (&["ip", "-V"], fixtures::IP_V),
    (&["iptables", "-V"], fixtures::IPTABLES_V),
    (&["getent", "group"], fixtures::GETENT_GROUP),
    (&["ip", "-j", "addr", "show"], fixtures::IP_ADDR),
    (
        &["ip", "-j", "-4", "route", "show", "table", "all"],
        fixtures::IP_4_ROUTE,
    ),
    (
        &["ip", "-j", "-6", "route", "show", "table", "all"],
        fixtures::IP_6_ROUTE,
    ),
    (&["ip", "-j", "-4", "rule", "show"], fixtures::IP_4_RULE),
    (&["ip", "-j", "-6", "rule", "show"], fixtures::IP_6_RULE),
    (&["iptables-save"], fixtures::IPTABLES_SAVE),
    (&["ip6tables-save"], fixtures::IP6TABLES_SAVE),
    (&["nft", "list", "ruleset"], NFT_RULESET),
];

/// Answers every command from the recordings, except those in `overrides`.
fn runner(overrides: &[(&[&str], Option<Output>)]) -> FakeRunner {
    let mut fake = FakeRunner::new();
    for (argv, text) in RECORDED {
        if !overrides.iter().any(|(a, _)| *a == argv) {
            fake = fake.on(argv, Output::ok(text));
        }
    }
    for (argv, out) in overrides {
        if let Some(out) = out {
            fake = fake.on(argv, out.clone());
        }
    }
    fake
}

/// The notes as a person reads them.
fn lines(facts: &HostFacts) -> Vec<String> {
    facts.unreadable.iter().map(ToString::to_string).collect()
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("rel has a parent")).unwrap();
    std::fs::write(path, text).unwrap();
}

/// rt_tables in two places plus drop-ins, /proc/sys as recorded in the
/// namespace, and the recorded xtables lists.
fn fake_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "etc/iproute2/rt_tables",
        "#\n# reserved values\n#\n255\tlocal\n254\tmain\n253\tdefault\n0\tunspec\n#\n#1\tinr.ruhep\n",
    );
    write(
        root,
        "etc/iproute2/rt_tables.d/wg.conf",
        "51820 wg # wg-quick\n",
    );
    write(root, "etc/iproute2/rt_tables.d/README", "7 not-a-table\n");
    write(
        root,
        "usr/share/iproute2/rt_tables.d/ts.conf",
        "0x34 tailscale\n",
    );
    write(root, "proc/sys/kernel/osrelease", fixtures::UNAME_R);
    for line in fixtures::PROC_SYS.lines() {
        let (path, value) = line.split_once(' ').expect("recorded as \"path value\"");
        write(root, &format!("proc/sys/{path}"), &format!("{value}\n"));
    }
    write(
        root,
        "proc/net/ip_tables_matches",
        fixtures::IP_TABLES_MATCHES,
    );
    write(
        root,
        "proc/net/ip_tables_targets",
        fixtures::IP_TABLES_TARGETS,
    );
    dir
}

fn find_tool(name: &str) -> Option<String> {
    (name != "tcpdump").then(|| format!("/usr/sbin/{name}"))
}

fn run(fake: &FakeRunner, root: &Path, is_root: bool) -> HostFacts {
    probe(&ProbeEnv {
        runner: fake,
        root: root.to_path_buf(),
        is_root,
        find_tool: &find_tool,
        reads: Reads::ALL,
    })
}

#[test]
fn everything_recorded_is_read_as_root() {
    let root = fake_root();
    let fake = runner(&[]);
    let facts = run(&fake, root.path(), true);

    assert!(facts.unreadable.is_empty(), "{:#?}", facts.unreadable);
    assert!(facts.is_root);
    assert_eq!(facts.nft_ruleset.as_deref(), Some(NFT_RULESET));
    // No legacy tables listed under /proc/net: the legacy tools are not run.
    assert_eq!(facts.iptables_legacy_save, None);
    assert!(
        facts
            .kernel
            .as_deref()
            .is_some_and(|k| k.starts_with("6.18."))
    );
    assert_eq!(facts.iproute2_version.as_deref(), Some("6.1.0"));
    assert_eq!(facts.iptables_backend, Some(IptablesBackend::NfTables));
    assert!(facts.has_tool("nft") && !facts.has_tool("tcpdump"));
    assert_eq!(facts.tools.len(), TOOLS.len());
    assert_eq!(facts.group_by_gid(0).map(|g| g.name.as_str()), Some("root"));

    assert_eq!(facts.link("wg0").map(|l| l.index), Some(5));
    assert!(
        facts
            .routes_v4
            .iter()
            .any(|r| r.table == "100" && r.kind == "unreachable")
    );
    assert!(
        facts
            .routes_v6
            .iter()
            .any(|r| r.table == "100" && r.kind == "unreachable")
    );

    let ours = facts.rules_v4.iter().find(|r| r.priority == 5201).unwrap();
    assert_eq!((ours.fwmark, ours.fwmask), (Some(3), Some(0xff)));
    assert_eq!(ours.table.as_deref(), Some("100"));
    let wg = facts.rules_v4.iter().find(|r| r.priority == 32765).unwrap();
    assert!(wg.not);
    assert_eq!(facts.rules_v6.len(), 7);

    let tables: Vec<(u32, &str, &str)> = facts
        .rt_tables
        .iter()
        .map(|t| (t.id, t.name.as_str(), t.source.as_str()))
        .collect();
    assert_eq!(
        tables,
        [
            (255, "local", "/etc/iproute2/rt_tables"),
            (254, "main", "/etc/iproute2/rt_tables"),
            (253, "default", "/etc/iproute2/rt_tables"),
            (0, "unspec", "/etc/iproute2/rt_tables"),
            (51820, "wg", "/etc/iproute2/rt_tables.d/wg.conf"),
            (52, "tailscale", "/usr/share/iproute2/rt_tables.d/ts.conf"),
        ]
    );
    assert_eq!(facts.table_id("wg"), Some(51820));
    assert_eq!(facts.table_id("tailscale"), Some(52));

    assert_eq!(facts.sysctl("net.ipv4.ip_forward"), Some("1"));
    assert_eq!(facts.sysctl("net.ipv6.conf.all.forwarding"), Some("0"));
    assert_eq!(facts.sysctl("net.ipv4.conf.all.rp_filter"), Some("1"));
    assert_eq!(facts.sysctl("net.ipv4.conf.default.rp_filter"), Some("0"));
    assert_eq!(facts.sysctl("net.ipv4.conf.all.src_valid_mark"), Some("0"));
    assert_eq!(facts.conf_sysctl("ipv4", "wg0", "rp_filter"), Some("2"));
    assert_eq!(
        facts.conf_sysctl("ipv4", "wg0", "src_valid_mark"),
        Some("1")
    );
    assert_eq!(facts.conf_sysctl("ipv4", "eth0", "rp_filter"), Some("0"));
    assert_eq!(
        facts.sysctl("net.ipv6.conf.eth0/10.disable_ipv6"),
        Some("1")
    );
    // 5 globals + 3 for each of the 7 links.
    assert_eq!(facts.sysctls.len(), 5 + 3 * 7);

    let save = facts.iptables_save.as_deref().unwrap();
    assert!(save.contains("-A DSCPROUTE-OUT -m owner --gid-owner 2000 -j DSCP --set-dscp 0x07"));
    assert!(
        facts
            .ip6tables_save
            .as_deref()
            .unwrap()
            .contains("--set-xmark 0x3/0xff")
    );
    assert!(facts.xt_matches.iter().any(|m| m == "dscp"));
    assert!(facts.xt_targets.iter().any(|t| t == "DSCP"));
}

/// The five `ip -j` reads answered by the two batches: the same facts as
/// from the single commands, and no single `ip -j` command runs. One batch
/// failing: only its own commands run one by one.
#[test]
fn the_ip_reads_come_from_two_batches() {
    let root = fake_root();
    let single = run(&runner(&[]), root.path(), true);
    let batched = |fake: FakeRunner| {
        let [all, v6] = &super::ip_batch::BATCHES;
        fake.on_stdin(
            all.argv,
            &all.stdin(),
            Output::ok(format!(
                "{}{}{}",
                fixtures::IP_ADDR,
                fixtures::IP_4_RULE,
                fixtures::IP_4_ROUTE
            )),
        )
        .on_stdin(
            v6.argv,
            &v6.stdin(),
            Output::ok(format!("{}\n{}", fixtures::IP_6_ROUTE, fixtures::IP_6_RULE)),
        )
    };
    let singles_run = |fake: &FakeRunner| -> Vec<String> {
        fake.calls()
            .iter()
            .filter(|a| a[0] == "ip" && a[1] == "-j" && !a.contains(&"-batch".to_string()))
            .map(|a| a.join(" "))
            .collect()
    };

    let fake = batched(runner(&[]));
    let facts = run(&fake, root.path(), true);
    assert_eq!(facts, single);
    assert!(!facts.links.is_empty() && !facts.routes_v6.is_empty());
    assert_eq!(singles_run(&fake), Vec::<String>::new());

    let [_, v6] = &super::ip_batch::BATCHES;
    let fake = batched(runner(&[])).on_stdin(
        v6.argv,
        &v6.stdin(),
        Output::failed(1, "Command failed -:1\n"),
    );
    assert_eq!(run(&fake, root.path(), true), single);
    let mut ran = singles_run(&fake);
    ran.sort();
    assert_eq!(ran, ["ip -j -6 route show table all", "ip -j -6 rule show"]);
}

/// Which iptables this is comes from where its link points (as on Debian:
/// iptables -> /etc/alternatives/iptables -> xtables-*-multi); `iptables
/// -V` runs only when the name does not say (here the recording says
/// nf_tables, so the answers differ on purpose).
#[test]
fn the_iptables_variant_comes_from_its_link() {
    let root = fake_root();
    let sbin = root.path().join("usr/sbin");
    std::fs::create_dir_all(&sbin).unwrap();
    std::fs::create_dir_all(root.path().join("etc/alternatives")).unwrap();
    std::fs::write(sbin.join("xtables-legacy-multi"), "").unwrap();
    std::os::unix::fs::symlink(
        "../../usr/sbin/xtables-legacy-multi",
        root.path().join("etc/alternatives/iptables"),
    )
    .unwrap();
    std::os::unix::fs::symlink("../../etc/alternatives/iptables", sbin.join("iptables")).unwrap();
    let fake = runner(&[]);
    let facts = run(&fake, root.path(), true);
    assert_eq!(facts.iptables_backend, Some(IptablesBackend::Legacy));
    assert!(!fake.calls().iter().any(|a| a[0] == "iptables"));

    // A wrapper script (or busybox) says nothing: `iptables -V` decides.
    std::fs::remove_file(sbin.join("iptables")).unwrap();
    std::fs::write(sbin.join("iptables"), "#!/bin/sh\n").unwrap();
    let fake = runner(&[]);
    let facts = run(&fake, root.path(), true);
    assert_eq!(facts.iptables_backend, Some(IptablesBackend::NfTables));
    assert!(fake.calls().iter().any(|a| a == &["iptables", "-V"]));
}

/// iptables-nft keeps its rules in nftables tables: iptables-save runs
/// only for a family whose tables the ruleset shows (it would print
/// nothing for the other), and always for legacy iptables or when the
/// ruleset is not known.
#[test]
fn iptables_save_runs_only_where_the_ruleset_shows_its_tables() {
    let root = fake_root();
    // The reads run on threads: sorted, as their order is not fixed.
    let saves = |fake: &FakeRunner| -> Vec<String> {
        let mut ran: Vec<String> = fake
            .calls()
            .iter()
            .filter(|a| a[0].ends_with("tables-save"))
            .map(|a| a[0].clone())
            .collect();
        ran.sort();
        ran
    };
    let native_only = "table inet fw {\n}\n";
    let fake = runner(&[(&["nft", "list", "ruleset"], Some(Output::ok(native_only)))]);
    let facts = run(&fake, root.path(), true);
    assert_eq!(saves(&fake), Vec::<String>::new());
    assert_eq!(
        (
            facts.iptables_save.as_deref(),
            facts.ip6tables_save.as_deref()
        ),
        (Some(""), Some(""))
    );
    assert!(facts.unreadable.is_empty(), "{:#?}", facts.unreadable);

    let v4_only = "table ip nat {\n}\n";
    let fake = runner(&[(&["nft", "list", "ruleset"], Some(Output::ok(v4_only)))]);
    let facts = run(&fake, root.path(), true);
    assert_eq!(saves(&fake), ["iptables-save"]);
    assert_eq!(
        facts.iptables_save.as_deref(),
        Some(fixtures::IPTABLES_SAVE)
    );
    assert_eq!(facts.ip6tables_save.as_deref(), Some(""));

    let unread = Output::failed(1, "Error: cache initialization failed\n");
    let fake = runner(&[(&["nft", "list", "ruleset"], Some(unread))]);
    run(&fake, root.path(), true);
    assert_eq!(saves(&fake), ["ip6tables-save", "iptables-save"]);

    let legacy = runner(&[
        (&["nft", "list", "ruleset"], Some(Output::ok(native_only))),
        (
            &["iptables", "-V"],
            Some(Output::ok("iptables v1.8.9 (legacy)\n")),
        ),
    ]);
    run(&legacy, root.path(), true);
    assert_eq!(saves(&legacy), ["ip6tables-save", "iptables-save"]);
}

/// What a plan does not need is not read: no process, no note.
#[test]
fn reads_left_out_run_nothing() {
    let root = fake_root();
    let fake = runner(&[]);
    let facts = probe(&ProbeEnv {
        runner: &fake,
        root: root.path().to_path_buf(),
        is_root: true,
        find_tool: &find_tool,
        reads: Reads {
            groups: false,
            ip_version: false,
        },
    });
    let ran: Vec<String> = fake.calls().iter().map(|a| a.join(" ")).collect();
    assert!(
        !ran.iter().any(|c| c == "getent group" || c == "ip -V"),
        "{ran:?}"
    );
    assert!(facts.unreadable.is_empty(), "{:#?}", facts.unreadable);
    assert_eq!((facts.groups.len(), facts.iproute2_version), (0, None));
    assert_eq!(
        facts.routes_v4,
        run(&runner(&[]), root.path(), true).routes_v4
    );
}

#[test]
fn root_only_commands_are_skipped_for_other_users() {
    let root = fake_root();
    let fake = runner(&[]);
    let facts = run(&fake, root.path(), false);

    assert!(!facts.is_root);
    assert_eq!(
        (facts.iptables_save.as_ref(), facts.ip6tables_save.as_ref()),
        (None, None)
    );
    assert_eq!(
        lines(&facts),
        [
            "iptables-save: not run, it needs root (you are not root)",
            "ip6tables-save: not run, it needs root (you are not root)",
        ]
    );
    assert_eq!(
        facts.unreadable[0],
        Unreadable::new(
            Fact::IptablesSave,
            Source::command(&["iptables-save"]),
            Reason::NeedsRoot
        )
    );
    assert_eq!(facts.unreadable[1].fact(), Some(Fact::Ip6tablesSave));
    assert!(fake.calls().iter().all(|argv| !argv[0].ends_with("-save")));
    assert_eq!(facts.rules_v4.len(), 12, "the rest is still read");
}

#[test]
fn each_failure_is_one_note_and_the_rest_is_read() {
    let root = tempfile::tempdir().unwrap(); // nothing in it at all
    let denied = "iptables-save v1.8.9 (nf_tables): Could not fetch rule set generation id: \
                  Permission denied (you must be root)\n";
    let fake = runner(&[
        (&["ip", "-V"], None),
        (
            &["ip", "-j", "addr", "show"],
            Some(Output::ok("Segmentation fault")),
        ),
        (
            &["ip", "-j", "-6", "rule", "show"],
            Some(Output::failed(
                2,
                "RTNETLINK answers: Address family not supported by protocol\n",
            )),
        ),
        (&["iptables-save"], Some(Output::failed(4, denied))),
        (&["ip6tables-save"], Some(Output::failed(1, ""))),
    ]);
    let facts = run(&fake, root.path(), true);

    let all = lines(&facts);
    let note = |prefix: &str| {
        all.iter()
            .find(|n| n.starts_with(prefix))
            .unwrap_or_else(|| panic!("no note for {prefix}: {all:#?}"))
    };
    assert_eq!(
        note("ip -V:"),
        "ip -V: ip is not installed (not found in PATH)"
    );
    assert!(note("ip -j addr show:").contains("not the JSON expected"));
    assert_eq!(
        note("ip -j -6 rule show:"),
        "ip -j -6 rule show: RTNETLINK answers: Address family not supported by protocol"
    );
    assert_eq!(
        *note("iptables-save:"),
        format!("iptables-save: {}", denied.trim())
    );
    assert_eq!(note("ip6tables-save:"), "ip6tables-save: exit status 1");
    // No links, so only the five global sysctls were looked for; all missing.
    assert_eq!(
        all.iter()
            .filter(|n| n.starts_with("/proc/sys/net/"))
            .count(),
        5
    );
    // Each names the fact it leaves unknown, in the order read.
    let missed: Vec<Fact> = facts
        .unreadable
        .iter()
        .filter_map(Unreadable::fact)
        .collect();
    assert_eq!(
        note("/proc/sys/kernel/osrelease:"),
        "/proc/sys/kernel/osrelease: no such file"
    );
    let mut want = vec![
        Fact::Kernel,
        Fact::Iproute2Version,
        Fact::Links,
        Fact::RulesV6,
    ];
    want.extend([Fact::Sysctls; 5]);
    want.extend([Fact::IptablesSave, Fact::Ip6tablesSave]);
    assert_eq!(missed, want);
    assert_eq!(facts.unreadable.len(), 11, "{:#?}", facts.unreadable);

    assert_eq!(facts.iproute2_version, None);
    assert!(facts.links.is_empty() && facts.rules_v6.is_empty() && facts.sysctls.is_empty());
    assert!(facts.rt_tables.is_empty() && facts.xt_matches.is_empty());
    assert_eq!(facts.rules_v4.len(), 12);
    assert_eq!(facts.iptables_backend, Some(IptablesBackend::NfTables));
}

#[test]
fn permission_errors_get_a_root_hint_for_other_users() {
    let root = fake_root();
    let fake = runner(&[(
        &["getent", "group"],
        Some(Output::failed(2, "getent: Permission denied\n")),
    )]);
    let facts = run(&fake, root.path(), false);
    assert!(
        lines(&facts)
            .contains(&"getent group: getent: Permission denied (you are not root)".to_string())
    );
}

/// Read-only: runs `ip … show`, `uname`, `getent` and reads /proc and /etc.
#[test]
fn real_host_read_only() {
    let facts = probe_system();
    assert_eq!(facts.table_id("main"), Some(254));
    assert!(facts.kernel.is_some(), "{:#?}", facts.unreadable);
    assert!(facts.group_by_gid(0).is_some());
    if facts.has_tool("ip") {
        assert!(facts.link("lo").is_some(), "{:#?}", facts.unreadable);
        assert!(facts.iproute2_version.is_some());
        let main = facts.rules_v4.iter().find(|r| r.priority == 32766);
        assert_eq!(main.and_then(|r| r.table.as_deref()), Some("main"));
        assert!(facts.routes_v4.iter().any(|r| r.table == "local"));
        assert!(facts.conf_sysctl("ipv4", "lo", "rp_filter").is_some());
    }
    assert!(facts.sysctl("net.ipv4.ip_forward").is_some());
    assert!(
        facts
            .rt_tables
            .iter()
            .any(|t| t.name == "main" && t.id == 254)
            || facts.rt_tables.is_empty()
    );
    if !facts.is_root {
        assert_eq!(facts.iptables_save, None);
    }
}

/// Legacy tables listed by the kernel next to iptables-nft: their rules are
/// read too (they run on the same hooks); a family without them is not.
#[test]
fn legacy_rules_are_read_when_the_kernel_lists_legacy_tables() {
    let root = fake_root();
    write(root.path(), "proc/net/ip_tables_names", "mangle\n");
    let legacy = "*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j MARK --set-xmark 0x100/0xffffffff\nCOMMIT\n";
    let fake = runner(&[(&["iptables-legacy-save"], Some(Output::ok(legacy)))]);
    let facts = run(&fake, root.path(), true);
    assert_eq!(facts.iptables_legacy_save.as_deref(), Some(legacy));
    assert_eq!(facts.ip6tables_legacy_save, None);
    assert!(facts.unreadable.is_empty(), "{:#?}", facts.unreadable);
    // Not root: neither nft nor the legacy tools are run.
    let facts = run(&fake, root.path(), false);
    assert_eq!(
        (facts.nft_ruleset, facts.iptables_legacy_save),
        (None, None)
    );
}
