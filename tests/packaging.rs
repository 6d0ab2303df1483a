//! Packaging: the man pages and shell completions generate from the clap
//! definition, and the copies the .deb ships (assets/man, assets/completions)
//! are up to date — `DSCPROUTE_UPDATE_ASSETS=1 cargo test --test packaging`
//! rewrites them; bash really completes with its script; the `cargo deb`
//! metadata names files that exist.

use clap::CommandFactory;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A visible skip: straight to fd 2, which libtest does not capture
/// (`eprintln!` in a passing test would vanish).
macro_rules! skip {
    ($($arg:tt)*) => {{
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

const BIN: &str = env!("CARGO_BIN_EXE_dscproute");
const UPDATE: &str = "DSCPROUTE_UPDATE_ASSETS";

fn asset(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets")
        .join(rel)
}

fn dscproute(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn run_ok(args: &[&str]) -> String {
    let o = dscproute(args);
    assert!(
        o.status.success(),
        "dscproute {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// The visible subcommands, as the user types them.
fn subcommands() -> Vec<String> {
    dscproute::cli::Cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| s.get_name().to_string())
        .collect()
}

#[test]
fn man_page_generates_with_every_subcommand_and_the_exit_statuses() {
    let man = run_ok(&["man"]);
    assert!(man.contains(".TH dscproute 1"), "{man}");
    for sub in subcommands() {
        assert!(
            // roff escapes every '-', also inside a name (client-recipe).
            man.contains(&format!("dscproute\\-{}(1)", sub.replace('-', "\\-"))),
            "subcommand {sub} missing from the man page"
        );
    }
    assert!(
        !man.contains("confirm\\-timer"),
        "internal subcommand shown"
    );
    assert!(!man.contains("dscproute\\-help(1)"));
    for section in ["EXIT STATUS", "FILES", "ENVIRONMENT", "SEE ALSO"] {
        assert!(man.contains(section), "no {section} section");
    }
    if which::which("man").is_ok() {
        // man(1) renders it without a warning.
        let dir = tempfile::tempdir().unwrap();
        let page = dir.path().join("dscproute.1");
        std::fs::write(&page, &man).unwrap();
        let o = Command::new("man")
            .arg("-l")
            .arg(&page)
            .env("MANWIDTH", "80")
            .env("MAN_KEEP_STDERR", "1")
            .output()
            .unwrap();
        assert!(o.status.success());
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("EXIT STATUS"), "{text}");
        assert!(
            o.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn completions_generate_for_every_shell_without_the_internal_subcommand() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let text = run_ok(&["completions", shell]);
        for sub in ["plan", "apply", "persist", "unpersist", "completions"] {
            assert!(text.contains(sub), "{shell}: no {sub}");
        }
        assert!(
            !text.contains("(internal)"),
            "{shell} offers the internal subcommand"
        );
    }
    let o = dscproute(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
}

/// Source the bash script and ask it, as bash's `complete` would.
#[test]
fn bash_completes_subcommands_and_options() {
    let script = run_ok(&["completions", "bash"]);
    let complete = |words: &[&str]| -> Vec<String> {
        let cword = words.len() - 1;
        let words_arr = words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" ");
        let prog = format!(
            "{script}\nCOMP_WORDS=({words_arr}); COMP_CWORD={cword}; COMP_LINE='{line}'; \
             COMP_POINT=${{#COMP_LINE}}\n_dscproute dscproute '{cur}' '{prev}'\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
            line = words.join(" "),
            cur = words[cword],
            prev = words[cword.saturating_sub(1)],
        );
        let o = Command::new("bash")
            .args(["--norc", "--noprofile", "-c", &prog])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    assert_eq!(complete(&["dscproute", "pers"]), ["persist"]);
    assert_eq!(complete(&["dscproute", "unp"]), ["unpersist"]);
    assert!(
        complete(&["dscproute", "__"]).is_empty(),
        "internal subcommand offered"
    );
    let opts = complete(&["dscproute", "persist", "--"]);
    for o in ["--profile", "--name", "--root"] {
        assert!(opts.iter().any(|x| x == o), "{o} not in {opts:?}");
    }
    let shells = complete(&["dscproute", "completions", ""]);
    for s in ["bash", "zsh", "fish"] {
        assert!(shells.iter().any(|x| x == s), "{s} not in {shells:?}");
    }
}

#[test]
fn other_shells_accept_their_scripts() {
    for (shell, file) in [("zsh", "_dscproute"), ("fish", "dscproute.fish")] {
        if which::which(shell).is_err() {
            skip!("SKIP {shell} syntax check: {shell} is not installed");
            continue;
        }
        let o = Command::new(shell)
            .arg("-n")
            .arg(asset("completions").join(file))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = Command::new("bash")
        .arg("-n")
        .arg(asset("completions/dscproute.bash"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Every generated file the package ships, by its path under assets/.
fn generated() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    out.insert("man/dscproute.1".into(), run_ok(&["man"]));
    let mut cmd = dscproute::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let man = clap_mangen::Man::new(sub.clone());
        let mut page = Vec::new();
        man.render(&mut page).unwrap();
        out.insert(
            format!("man/{}", man.get_filename()),
            String::from_utf8(page).unwrap(),
        );
    }
    for (shell, file) in [
        ("bash", "dscproute.bash"),
        ("zsh", "_dscproute"),
        ("fish", "dscproute.fish"),
    ] {
        out.insert(
            format!("completions/{file}"),
            run_ok(&["completions", shell]),
        );
    }
    out
}

/// Files present under assets/DIR.
fn on_disk(dir: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(asset(dir))
        .map(|rd| {
            rd.flatten()
                .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn shipped_man_pages_and_completions_are_up_to_date() {
    let want = generated();
    if std::env::var(UPDATE).is_ok_and(|v| v == "1") {
        for dir in ["man", "completions"] {
            for stale in on_disk(dir) {
                if !want.contains_key(&stale) {
                    std::fs::remove_file(asset(&stale)).unwrap();
                }
            }
            std::fs::create_dir_all(asset(dir)).unwrap();
        }
        for (rel, text) in &want {
            std::fs::write(asset(rel), text).unwrap();
        }
        return;
    }
    let fix = format!(
        "regenerate them with `{UPDATE}=1 cargo test --test packaging` and commit assets/man and \
         assets/completions"
    );
    let mut stale = Vec::new();
    for (rel, text) in &want {
        if std::fs::read_to_string(asset(rel)).ok().as_deref() != Some(text.as_str()) {
            stale.push(rel.clone());
        }
    }
    assert!(stale.is_empty(), "out of date: {stale:?}: {fix}");
    for dir in ["man", "completions"] {
        let extra: Vec<String> = on_disk(dir)
            .into_iter()
            .filter(|f| !want.contains_key(f))
            .collect();
        assert!(extra.is_empty(), "no longer generated: {extra:?}: {fix}");
    }
}

#[test]
fn deb_metadata_names_existing_files_and_the_right_places() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cargo: toml::Table = std::fs::read_to_string(manifest.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let deb = &cargo["package"]["metadata"]["deb"];
    let depends = deb["depends"].as_str().unwrap();
    for dep in ["iptables", "iproute2"] {
        assert!(depends.split(", ").any(|d| d == dep), "{depends}");
    }
    assert_eq!(deb["section"].as_str(), Some("net"));
    let assets: Vec<(String, String)> = deb["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_array().unwrap();
            (
                a[0].as_str().unwrap().to_string(),
                a[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for (src, _) in &assets {
        if src.starts_with("target/") {
            continue;
        }
        let n = match src.split_once('*') {
            Some((dir, suffix)) => std::fs::read_dir(manifest.join(dir))
                .unwrap()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
                .count(),
            None => usize::from(manifest.join(src).is_file()),
        };
        assert!(n > 0, "asset {src} matches no file");
    }
    let dest = |src: &str| -> &str {
        &assets
            .iter()
            .find(|(s, _)| s == src)
            .unwrap_or_else(|| panic!("{src} is not packaged"))
            .1
    };
    assert_eq!(dest("target/release/dscproute"), "usr/bin/");
    assert_eq!(dest("assets/man/*.1"), "usr/share/man/man1/");
    assert_eq!(
        dest("assets/completions/dscproute.bash"),
        "usr/share/bash-completion/completions/dscproute"
    );
    assert_eq!(
        dest("assets/completions/_dscproute"),
        "usr/share/zsh/vendor-completions/"
    );
    assert_eq!(
        dest("assets/completions/dscproute.fish"),
        "usr/share/fish/vendor_completions.d/"
    );
    // Where persist looks for the packaged template.
    assert_eq!(
        format!("/{}", dest("assets/systemd/dscproute@.service")),
        "/usr/lib/systemd/system/"
    );
    assert!(dscproute::persist::systemd::UNIT_DIRS.contains(&"/usr/lib/systemd/system"));
    assert_eq!(
        dest("assets/examples/*.toml"),
        "usr/share/doc/dscproute/examples/"
    );
}
