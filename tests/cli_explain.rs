//! `dscproute explain` as a user runs it: output, JSON contract, bad input.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dscproute"))
        .args(args)
        .output()
        .expect("run dscproute");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn explain_seven_shows_the_bits_and_every_expression() {
    let (code, out, err) = run(&["explain", "7"]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "0001 11.. = DSCP: 7 (unassigned; pool 2: experimental/local use)",
        ".... ..00 = ECN: Not-ECT (0)",
        "0x1c = 28 = 0b00011100",
        "-j DSCP --set-dscp 0x07",
        "-m dscp --dscp 0x07",
        "-j TOS --set-tos 0x1c/0xfc",
        "ip dscp 7",
        "ip6 dscp set 7",
        "(ip and (ip[1] & 0xfc) >> 2 == 7) or (ip6 and (ip6[0:2] & 0x0fc0) >> 6 == 7)",
        "ip.dsfield.dscp == 7",
    ] {
        assert!(out.contains(needle), "missing {needle:?} in:\n{out}");
    }
    // Prose may wrap: compare with white space folded.
    let folded = out.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        folded.contains("also matches DSCP 15, 23, 31, 39, 47, 55, 63"),
        "{out}"
    );
    assert!(
        out.lines().all(|l| l.chars().count() <= 80),
        "wider than 80 columns"
    );
}

#[test]
fn explain_tos_byte_and_hint() {
    let (code, out, _) = run(&["explain", "--tos", "0x1c"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("DSCP 7 (0x07), unassigned"), "{out}");
    let (_, out, _) = run(&["explain", "0x1c"]);
    assert!(out.contains("as a ToS byte, 0x1c is DSCP 7"), "{out}");
    assert!(out.starts_with("DSCP 28 (0x1c) = AF32"), "{out}");
}

#[test]
fn explain_json_has_the_documented_keys() {
    let (code, out, _) = run(&["explain", "af41", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(v["tos"], 136);
    assert_eq!(v["dscp"], 34);
    assert_eq!(v["ecn"], 0);
    assert_eq!(v["ecn_name"], "Not-ECT");
    assert_eq!(v["name"], "AF41");
    assert_eq!(v["pool"], 1);
    assert_eq!(v["precedence"], 4);
    assert_eq!(v["precedence_name"], "flash override");
    assert_eq!(v["wifi_up"], 4);
    assert_eq!(v["wifi_ac"], "VI");
    let x = &v["expressions"];
    for (key, want) in [
        ("iptables_set", "-j DSCP --set-dscp 0x22"),
        ("iptables_match", "-m dscp --dscp 0x22"),
        ("nft_match", "ip dscp 34"),
        ("nft_set", "ip dscp set 34"),
        ("tcpdump_v4", "(ip[1] & 0xfc) >> 2 == 34"),
        ("tcpdump_v6", "(ip6[0:2] & 0x0fc0) >> 6 == 34"),
        ("wireshark_v4", "ip.dsfield.dscp == 34"),
        ("wireshark_v6", "ipv6.tclass.dscp == 34"),
    ] {
        assert_eq!(x[key], want, "{key}");
    }
    assert!(x["tcpdump"].as_str().unwrap().starts_with("(ip and"));
    // A value without a name has name null.
    let (_, out, _) = run(&["explain", "7", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["name"].is_null());
}

#[test]
fn bad_input_exits_2_with_one_line_and_no_stdout() {
    for bad in ["64", "-1", "0x40", "cs10", "af44", "af5", "", "7x"] {
        let (code, out, err) = run(&["explain", "--", bad]);
        assert_eq!(code, 2, "{bad:?}");
        assert!(out.is_empty(), "{bad:?} printed {out:?}");
        assert_eq!(err.lines().count(), 1, "{bad:?}: {err:?}");
        assert!(err.contains("0–63"), "{bad:?}: {err}");
    }
    let (code, out, err) = run(&["explain", "--tos", "256"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("0–255"), "{err}");
}

/// A value that starts with '-' is a value, not an option: `explain -1`
/// gets the same one-line message as any other bad value (no `--` needed).
#[test]
fn a_leading_dash_is_a_bad_value_not_an_unknown_option() {
    for args in [
        &["explain", "-1"][..],
        &["explain", "-63"],
        &["explain", "-0x1c"],
        &["explain", "--json", "-1"],
        &["explain", "-1", "--tos"],
    ] {
        let (code, out, err) = run(args);
        assert_eq!(code, 2, "{args:?}");
        assert!(out.is_empty(), "{args:?}: {out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert!(err.starts_with("dscproute: "), "{args:?}: {err}");
        assert!(err.contains("0–63") || err.contains("0–255"), "{err}");
    }
    // The options themselves still work.
    assert_eq!(run(&["explain", "--tos", "0x1c"]).0, 0);
    assert_eq!(run(&["explain", "--json", "ef"]).0, 0);
}

/// The accepted class names include nqb, which is accepted.
#[test]
fn the_accepted_names_include_nqb() {
    let (code, _, err) = run(&["explain", "cs10"]);
    assert_eq!(code, 2);
    assert!(err.contains("nqb"), "{err}");
    assert_eq!(run(&["explain", "nqb"]).0, 0);
}
