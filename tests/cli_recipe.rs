//! `dscproute client-recipe` as a user runs it: the four recipes of the lab
//! client profile pinned as snapshots, the nftables and OpenWrt ones
//! accepted by `nft -c` (inside a namespace; root, skips visibly without),
//! and bad input refused with one line and exit 2. Running the linux-sh and
//! nftables recipes for real is in tests/lab_recipe.rs.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_dscproute");
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");
const MARKER: &str = "tests/fixtures/lab/marker.toml";

/// The binary run from the crate root, so profile paths in the output are
/// the same relative ones everywhere.
fn dscproute(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(MANIFEST)
        .output()
        .expect("run dscproute")
}

fn recipe(extra: &[&str]) -> Output {
    let mut args = vec!["client-recipe", "--profile", MARKER];
    args.extend_from_slice(extra);
    dscproute(&args)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A recipe that must be printed (exit 0, nothing on stderr).
fn ok(extra: &[&str]) -> String {
    let out = recipe(extra);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "client-recipe {extra:?}: {}\n{}",
        out.status,
        stderr(&out)
    );
    stdout(&out)
}

const WINDOWS: &[&str] = &[
    "--for",
    "windows",
    "--app",
    r"C:\Program Files\qBittorrent\qbittorrent.exe",
];
const OPENWRT: &[&str] = &[
    "--for",
    "openwrt",
    "--src",
    "192.168.1.0/24",
    "--src",
    "fd00:1::/64",
];

#[test]
fn snapshot_linux_sh() {
    insta::assert_snapshot!(ok(&["--for", "linux-sh"]));
}

#[test]
fn snapshot_nftables() {
    insta::assert_snapshot!(ok(&["--for", "nftables"]));
}

#[test]
fn snapshot_windows() {
    insta::assert_snapshot!(ok(WINDOWS));
}

#[test]
fn snapshot_openwrt() {
    insta::assert_snapshot!(ok(OPENWRT));
}

/// The linux-sh recipe is `plan --script` of the client role: the same
/// script, with the recipe's header after the shebang.
#[test]
fn linux_sh_is_the_plan_script_of_the_client() {
    let text = ok(&["--for", "linux-sh"]);
    let facts = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        facts.path(),
        serde_json::to_string(&dscproute::probe::HostFacts::default()).unwrap(),
    )
    .unwrap();
    let with_facts = ok(&[
        "--for",
        "linux-sh",
        "--facts",
        facts.path().to_str().unwrap(),
    ]);
    assert_eq!(text, with_facts, "empty recorded facts = no facts");
    let script_start = text.find("# dscproute 0").expect("the script's own header");
    assert!(text.starts_with("#!/bin/sh\n# dscproute client recipe (linux-sh)"));
    assert!(text[script_start..].contains("\nundo() {"));
    // The same script `plan --script` writes for the marker profile, on a
    // host whose groups are not known.
    let p = dscproute::profile::Profile::load(&Path::new(MANIFEST).join(MARKER)).unwrap();
    let plan = dscproute::plan::plan(
        &p,
        &dscproute::probe::HostFacts::default(),
        dscproute::plan::PlanOptions {
            for_script: true,
            ..Default::default()
        },
    )
    .unwrap();
    let script = dscproute::plan::render_script(&plan, MARKER);
    // Nothing is known of the client's tables: its undo also drops a
    // mangle table left empty (the script's helper checks that at run time).
    let ours = &text[script_start..];
    for fam in ["ip", "ip6"] {
        assert!(
            ours.contains(&format!(
                "-X DSCPROUTE-MARK && drop_empty_table {fam} mangle; }}"
            )),
            "{ours}"
        );
    }
    assert_eq!(
        ours.replace(" && drop_empty_table ip mangle", "")
            .replace(" && drop_empty_table ip6 mangle", ""),
        script.split_once('\n').unwrap().1,
        "the recipe's script differs from plan --script's"
    );
}

fn nft_check(ns: &common::Netns, text: &str) -> Output {
    let mut child = ns
        .command(&["nft", "-c", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `nft -c` accepts the nftables recipe (numeric gid, and a group name this
/// host knows) and the OpenWrt snippet inside a stand-in `table inet fw4`
/// (fw4 includes /etc/nftables.d/*.nft inside its table), and refuses
/// the snippet alone: what fw4 accepts, not a file of its own.
#[test]
fn nft_accepts_the_nftables_and_openwrt_recipes() {
    let Some(lab) = common::lab("nft_accepts_the_nftables_and_openwrt_recipes", &["nft"]) else {
        return;
    };
    let ns = lab.netns();
    let named = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        named.path(),
        "[marker]\ngroup = \"nogroup\"\ndscp = \"af41\"\n",
    )
    .unwrap();
    let named_out = dscproute(&[
        "client-recipe",
        "--profile",
        named.path().to_str().unwrap(),
        "--for",
        "nftables",
    ]);
    assert!(named_out.status.success(), "{}", stderr(&named_out));
    let mut texts = vec![ok(&["--for", "nftables"]), stdout(&named_out)];
    assert!(texts[1].contains("meta skgid \"nogroup\"") && texts[1].contains("dscp set 34"));
    let snippet = ok(OPENWRT);
    texts.push(format!("table inet fw4 {{\n{snippet}}}\n"));
    for text in &texts {
        let out = nft_check(&ns, text);
        assert!(
            out.status.success(),
            "nft -c refused:\n{}\n{text}",
            stderr(&out)
        );
    }
    assert!(
        !nft_check(&ns, &snippet).status.success(),
        "a bare chain is no nft file: the snippet only works inside fw4's table"
    );
}

/// Bad input: one line on stderr naming what is accepted, exit 2, nothing
/// on stdout.
#[test]
fn bad_input_is_one_line_and_exit_2() {
    let gateway = Path::new("tests/fixtures/lab/gateway.toml");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--for", "windows"], "needs --app PATH"),
        (vec!["--for", "openwrt"], "needs --src CIDR"),
        (
            vec!["--for", "windows", "--app", "qbittorrent"],
            "does not end in .exe",
        ),
        (
            vec!["--for", "windows", "--app", "it's.exe"],
            "holds a quote",
        ),
        (vec!["--for", "windows", "--app", "a\nb.exe"], "line break"),
        (
            vec!["--for", "openwrt", "--src", "192.168.1.1/24"],
            "did you mean 192.168.1.0/24",
        ),
        (
            vec!["--for", "openwrt", "--src", "lan"],
            "not an address or prefix",
        ),
        (
            vec!["--for", "nftables", "--app", "a.exe"],
            "--app only goes with --for windows",
        ),
        (
            vec!["--for", "linux-sh", "--src", "10.0.0.0/8"],
            "--src only goes with --for openwrt",
        ),
    ];
    for (args, want) in cases {
        let out = recipe(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?} printed a recipe");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let out = dscproute(&[
        "client-recipe",
        "--profile",
        gateway.to_str().unwrap(),
        "--for",
        "nftables",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "dscproute: tests/fixtures/lab/gateway.toml has no [marker]: a client recipe writes the \
         client role; add [marker] with group and dscp\n"
    );
    let out = recipe(&["--for", "macos"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("linux-sh, nftables, windows, openwrt"));
    let missing: PathBuf = Path::new(MANIFEST).join("no-such-profile.toml");
    let out = dscproute(&[
        "client-recipe",
        "--profile",
        missing.to_str().unwrap(),
        "--for",
        "nftables",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1);
}

/// `--json`: one object holding the same recipe, for scripts and fronts.
#[test]
fn json_holds_the_same_recipe() {
    let text = ok(&["--for", "nftables"]);
    let v: serde_json::Value = serde_json::from_str(&ok(&["--for", "nftables", "--json"])).unwrap();
    assert_eq!(v["target"], "nftables");
    assert_eq!(v["dscp"], 7);
    assert_eq!(v["text"], text.as_str());
    assert_eq!(v["warnings"], serde_json::json!([]));
    let named = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        named.path(),
        "[marker]\ngroup = \"media\"\ncreate_group = true\ndscp = 7\n",
    )
    .unwrap();
    let out = dscproute(&[
        "client-recipe",
        "--profile",
        named.path().to_str().unwrap(),
        "--for",
        "linux-sh",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["warnings"][0]
            .as_str()
            .unwrap()
            .contains("groupadd media"),
        "{v:#}"
    );
}
