//! README against the program: its `$ dscproute …` transcripts are what the
//! binary prints, its profile sample and the example profiles show every key
//! a profile accepts, and its descriptions of `plan --json`, `doctor --json`
//! and `rollback --json` name every key those print.

use dscproute::doctor::{Applied, Check, Report};
use dscproute::plan::Role;
use dscproute::profile::Profile;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_dscproute");
const README: &str = include_str!("../README.md");
const MANIFEST: &str = env!("CARGO_MANIFEST_DIR");

/// README's fenced blocks: (info string, body).
fn blocks() -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut open: Option<(&str, Vec<&str>)> = None;
    for line in README.lines() {
        match (open.as_mut(), line.strip_prefix("```")) {
            (None, Some(info)) => open = Some((info, Vec::new())),
            (Some(_), Some(_)) => {
                let (info, body) = open.take().unwrap();
                out.push((info, body.join("\n")));
            }
            (Some((_, body)), None) => body.push(line),
            (None, None) => {}
        }
    }
    out
}

/// Each plain block that starts with `$ ` is a terminal transcript: `$ cat
/// FILE` shows a file the later commands use, `$ dscproute ARGS` is followed
/// by exactly what the binary prints (stdout, then stderr); a transcript
/// cut short ends with a line `…`.
#[test]
fn transcripts_are_what_the_program_prints() {
    let mut ran = 0;
    for (_, body) in blocks()
        .into_iter()
        .filter(|(info, body)| info.is_empty() && body.starts_with("$ "))
    {
        let dir = tempfile::tempdir().unwrap();
        let mut lines = body.lines().peekable();
        while let Some(command) = lines.next() {
            let command = command.strip_prefix("$ ").unwrap();
            let mut shown = Vec::new();
            while let Some(l) = lines.next_if(|l| !l.starts_with("$ ")) {
                shown.push(l);
            }
            let argv: Vec<&str> = command.split_whitespace().collect();
            match argv.as_slice() {
                ["cat", file] => {
                    std::fs::write(dir.path().join(file), shown.join("\n") + "\n").unwrap()
                }
                ["dscproute", args @ ..] => {
                    let out = Command::new(BIN)
                        .args(args)
                        .current_dir(dir.path())
                        .env("NO_COLOR", "1")
                        .output()
                        .unwrap();
                    let printed = format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let cut = shown.last() == Some(&"…");
                    let expected = shown[..shown.len() - usize::from(cut)].join("\n") + "\n";
                    let same = if cut {
                        printed.starts_with(&expected)
                    } else {
                        printed == expected
                    };
                    assert!(
                        same,
                        "README shows for `{command}`:\n{expected}\nthe program prints:\n{printed}"
                    );
                    ran += 1;
                }
                _ => panic!(
                    "README transcript `{command}`: only `cat FILE` and `dscproute …` run here"
                ),
            }
        }
    }
    assert!(ran >= 3, "only {ran} README transcripts found");
}

/// The keys a profile section accepts, as the parser lists them when it
/// meets an unknown one.
fn accepted_keys(section: &str) -> Vec<String> {
    let required = match section {
        "marker" => "group = 1\ndscp = 7",
        _ => "dscp = 7\ninterface = \"wg0\"",
    };
    let text = format!("[{section}]\n{required}\nno_such_key = 1\n");
    let err = Profile::parse(&text, "keys.toml").expect_err("an unknown key is refused");
    let keys: Vec<String> = err
        .message
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|k| *k != "no_such_key")
        .map(str::to_string)
        .collect();
    assert!(
        keys.len() > 2,
        "the unknown-key error no longer lists the accepted keys (update this test): {err}"
    );
    keys
}

fn keys_of(text: &str, section: &str) -> Vec<String> {
    let table: toml::Table = toml::from_str(text).unwrap();
    table[section].as_table().unwrap().keys().cloned().collect()
}

/// `[marker]` keys that replace `group` (exactly one of them is given).
const ALTERNATIVES: &[&str] = &["user", "unit", "cgroup"];

#[test]
fn the_profile_sample_and_the_examples_show_every_key() {
    let (_, sample) = blocks()
        .into_iter()
        .find(|(info, _)| *info == "toml")
        .expect("README's profile sample");
    Profile::parse(&sample, "README.md").unwrap_or_else(|e| panic!("README's profile sample: {e}"));
    let examples = Path::new(MANIFEST).join("assets/examples");
    for (section, example) in [("marker", "client.toml"), ("gateway", "gateway.toml")] {
        let example_text = std::fs::read_to_string(examples.join(example)).unwrap();
        for key in accepted_keys(section) {
            if ALTERNATIVES.contains(&key.as_str()) {
                // Exclusive with `group`: shown as a commented-out line.
                let shown = format!("# {key} = ");
                assert!(
                    sample.contains(&shown),
                    "README's profile sample lacks {shown}"
                );
                assert!(
                    example_text.contains(&shown),
                    "assets/examples/{example} lacks {shown}"
                );
                continue;
            }
            assert!(
                keys_of(&sample, section).contains(&key),
                "README's profile sample lacks {section}.{key}"
            );
            assert!(
                keys_of(&example_text, section).contains(&key),
                "assets/examples/{example} lacks {section}.{key}"
            );
        }
    }
    for entry in std::fs::read_dir(&examples).unwrap() {
        let path = entry.unwrap().path();
        Profile::load(&path).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// README's paragraph that starts at `start`.
fn paragraph(start: &str) -> &'static str {
    let at = README
        .find(start)
        .unwrap_or_else(|| panic!("README no longer says {start:?}"));
    let rest = &README[at..];
    &rest[..rest.find("\n\n").unwrap_or(rest.len())]
}

/// The entry of README's "JSON output" section for `cmd --json`: from its
/// bold heading to the next entry or section.
fn json_doc(cmd: &str) -> &'static str {
    let start = format!("**`{cmd} --json`**");
    let at = README
        .find(&start)
        .unwrap_or_else(|| panic!("README's JSON output section lacks {start}"));
    let rest = &README[at + start.len()..];
    let end = ["\n**`", "\n## ", "\n### "]
        .iter()
        .filter_map(|m| rest.find(m))
        .min()
        .unwrap_or(rest.len());
    &rest[..end]
}

/// `key` appears in `doc` as a whole word.
fn mentions(doc: &str, key: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    doc.match_indices(key).any(|(i, _)| {
        !doc[..i].chars().next_back().is_some_and(word)
            && !doc[i + key.len()..].chars().next().is_some_and(word)
    })
}

fn assert_keys_documented(doc: &str, v: &Value, what: &str) {
    for key in v.as_object().unwrap().keys() {
        assert!(
            mentions(doc, key),
            "README does not document `{key}` of {what}:\n{doc}"
        );
    }
}

/// Every effect in a step's `apply` or `undo`, nested ones included.
fn effects<'v>(e: &'v Value, out: &mut Vec<&'v Value>) {
    out.push(e);
    for inner in e["effects"].as_array().into_iter().flatten() {
        effects(inner, out);
    }
}

#[test]
fn plan_json_is_documented() {
    let doc = paragraph("`plan --json` prints");
    let fixtures = Path::new(MANIFEST).join("tests/fixtures/plan");
    let mut seen_change = false;
    for facts in ["gateway-clean.json", "gateway-stale.json"] {
        let out = Command::new(BIN)
            .arg("plan")
            .arg("--facts")
            .arg(fixtures.join(facts))
            .arg("--profile")
            .arg(fixtures.join("gateway.toml"))
            .arg("--json")
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("plan --json on {facts}: {e}"));
        assert_keys_documented(doc, &v, "plan --json");
        assert_keys_documented(doc, &v["resolved"], "plan --json `resolved`");
        assert_keys_documented(doc, &v["summary"], "plan --json `summary`");
        for step in v["steps"].as_array().unwrap() {
            assert_keys_documented(doc, step, "a plan step");
            assert!(mentions(doc, step["state"].as_str().unwrap()), "{step}");
            seen_change |= step.get("change").is_some();
            let mut all = Vec::new();
            effects(&step["apply"], &mut all);
            effects(&step["undo"], &mut all);
            for e in all {
                assert_keys_documented(doc, e, "a step's effect");
                let kind = e["kind"].as_str().unwrap();
                assert!(doc.contains(&format!("kind: \"{kind}\"")), "{kind}");
            }
        }
    }
    assert!(seen_change, "no step with `change` in the fixtures");
}

#[test]
fn doctor_json_is_documented() {
    let doc = json_doc("doctor");
    let report = Report::new(
        "gateway.toml",
        vec![Role::Gateway],
        Applied::Partly,
        vec![
            Check::pass("root", "running as root", "geteuid"),
            Check::warn("rp_filter", "strict", "sysctl", "set it to 2"),
        ],
    );
    let v = serde_json::to_value(&report).unwrap();
    assert_keys_documented(doc, &v, "doctor --json");
    let checks = v["checks"].as_array().unwrap();
    assert_keys_documented(doc, &checks[1], "a doctor check");
    assert!(mentions(doc, v["applied"].as_str().unwrap()));
    // README: `fix` only on warn and fail.
    assert!(checks[0].get("fix").is_none() && checks[1].get("fix").is_some());
}

/// Needs root (rollback refuses without); reads an empty state directory
/// and changes nothing.
#[test]
fn rollback_json_is_documented() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIP rollback_json_is_documented: not root"
        );
        return;
    }
    let doc = json_doc("rollback");
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .arg("--state-dir")
        .arg(state.path().join("state"))
        .args(["rollback", "--yes", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_keys_documented(doc, &v, "rollback --json");
    assert!(mentions(doc, v["status"].as_str().unwrap()));
}

/// The keys `[[class]]` (and its uplinks, and their checks) accept, from
/// the unknown-key error.
fn accepted_class_keys(body: &str) -> Vec<String> {
    let err = Profile::parse(body, "keys.toml").expect_err("an unknown key is refused");
    err.message
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|k| *k != "no_such_key")
        .map(str::to_string)
        .collect()
}

#[test]
fn the_class_sample_shows_every_key_and_its_plan_json_is_documented() {
    let (_, sample) = blocks()
        .into_iter()
        .find(|(info, body)| *info == "toml" && body.contains("[[class]]"))
        .expect("README's [[class]] sample");
    Profile::parse(&sample, "README.md").unwrap_or_else(|e| panic!("README's class sample: {e}"));
    let example =
        std::fs::read_to_string(Path::new(MANIFEST).join("assets/examples/classes.toml")).unwrap();
    let head = "[[class]]\nname = \"a\"\ndscp = 7\n";
    for (keys, what) in [
        (
            accepted_class_keys(&format!(
                "{head}uplinks = [{{ interface = \"wg0\" }}]\nno_such_key = 1\n"
            )),
            "class",
        ),
        (
            accepted_class_keys(&format!(
                "{head}uplinks = [{{ interface = \"wg0\", no_such_key = 1 }}]\n"
            )),
            "uplink",
        ),
        (
            accepted_class_keys(&format!(
                "{head}uplinks = [{{ interface = \"wg0\", check = {{ ping = \"10.0.0.1\", \
                 no_such_key = 1 }} }}]\n"
            )),
            "check",
        ),
    ] {
        assert!(keys.len() > 2, "{what}: the error no longer lists the keys");
        for key in keys {
            for (text, name) in [
                (&sample, "README's class sample"),
                (&example, "classes.toml"),
            ] {
                assert!(
                    text.contains(&format!("{key} =")),
                    "{name} lacks {what} key {key}"
                );
            }
        }
    }
    let doc = paragraph("`plan --json` prints");
    let fixtures = Path::new(MANIFEST).join("tests/fixtures/plan");
    let out = Command::new(BIN)
        .arg("plan")
        .arg("--facts")
        .arg(fixtures.join("gateway-clean.json"))
        .arg("--profile")
        .arg(fixtures.join("classes.toml"))
        .arg("--json")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_keys_documented(doc, &v["resolved"], "plan --json `resolved`");
    let classes = v["resolved"]["classes"].as_array().expect("classes");
    assert_eq!(classes.len(), 2);
    for c in classes {
        assert_keys_documented(doc, c, "plan --json `resolved.classes[]`");
    }
    let json_section = json_doc("plan");
    for key in classes[0].as_object().unwrap().keys() {
        assert!(
            mentions(json_section, key),
            "JSON section lacks classes[].{key}"
        );
    }
}
