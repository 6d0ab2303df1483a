//! Modules import only downward. Every top-level module of src/ has a layer
//! in `LAYERS`; a module may name (`crate::x…`, `use crate::{x, …}`, or a
//! `super::` chain that climbs out of it) only modules of lower layers, and
//! of its own layer only the pairs in `SIDEWAYS`, each with its reason.
//! A new top-level module fails this test until it is given a layer.
//!
//! The scan reads text, not syntax: comment lines are skipped, anything
//! else that spells a path counts (a path in a string literal too, which
//! errs on the strict side).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Lowest first. Names of modules that do not exist (yet) are allowed.
const LAYERS: &[(&str, &[&str])] = &[
    // Helpers and shared vocabulary: import nothing of the crate.
    (
        "leaves",
        &[
            "text",
            "runner",
            "output",
            "input_file",
            "safe_fs",
            "ownership",
        ],
    ),
    // DSCP/TOS values and their names.
    ("values", &["tos"]),
    // What the admin wants (profile) and what the host has (probe, read-only).
    ("inputs", &["profile", "probe"]),
    // The operations we plan, as types, and their rendering per tool
    // (iptables, ip, sysctl, files): the only place that builds an argv.
    ("operations", &["backend"]),
    // (profile, facts) -> plan: pure.
    ("plan", &["plan"]),
    // What is done with a plan or to the host: effects, checks, capture,
    // boot persistence, explanations, recipes for clients without dscproute.
    (
        "features",
        &["apply", "doctor", "watch", "persist", "explain", "recipe"],
    ),
    // The use cases (apply, rollback, status, doctor…) over the features.
    ("use cases", &["ops"]),
    // Fronts: they map results to text, JSON, exit statuses and screens.
    ("fronts", &["cli", "tui", "agent"]),
];

/// Imports inside one layer that are allowed: (from, to, why).
const SIDEWAYS: &[(&str, &str, &str)] = &[
    (
        "doctor",
        "watch",
        "the wire check samples packets with watch's capture",
    ),
    (
        "persist",
        "apply",
        "persist installs only what a kept transaction applied: it reads the journal",
    ),
    ("cli", "tui", "the `tui` subcommand starts the TUI"),
    ("cli", "agent", "the `agent` subcommand runs the supervisor"),
];

fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (_, mods))| mods.contains(&module))
        .map(|(i, (name, _))| (i, *name))
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The identifier at the start of `s` (after spaces and newlines).
fn ident(s: &str) -> &str {
    let s = s.trim_start();
    let end = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
    &s[..end]
}

/// Offsets of `needle` in `text` that do not continue an identifier.
fn starts_of<'a>(text: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    text.match_indices(needle)
        .map(|(i, _)| i)
        .filter(move |&i| !text[..i].ends_with(is_ident))
}

/// Top-level module names a file's text refers to, with byte offsets.
/// `depth` is how deep the file's own module is (src/a.rs: 1, src/a/b.rs: 2).
fn references(text: &str, depth: usize) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for i in starts_of(text, "crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::x, b}`: the first name of each item at depth 1.
            let mut depth = 1;
            let mut item_start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => break,
                    '}' => depth -= 1,
                    ',' if depth == 1 => item_start = true,
                    c if item_start && is_ident(c) => {
                        out.push((i, ident(&group[j..]).to_string()));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.push((i, ident(rest).to_string()));
        }
    }
    // A `super::` chain as long as the file's depth may leave its module.
    for i in starts_of(text, "super::") {
        if text[..i].ends_with("super::") {
            continue;
        }
        let mut rest = &text[i..];
        let mut climbs = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            climbs += 1;
            rest = r;
        }
        if climbs >= depth {
            out.push((i, ident(rest).to_string()));
        }
    }
    out
}

/// The text with comment lines blanked (line numbers stay).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with("//") {
                ""
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

struct Edge {
    from: String,
    to: String,
    at: String,
}

/// Every reference from one top-level module to another, crate-wide.
fn edges(src: &Path) -> (Vec<Edge>, Vec<String>) {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let tops: Vec<String> = files
        .iter()
        .filter_map(|f| f.strip_prefix(src).ok())
        .filter(|rel| !matches!(rel.to_str(), Some("lib.rs" | "main.rs")))
        .filter_map(|rel| rel.iter().next())
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    let mut edges = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(src).unwrap();
        let parts: Vec<String> = rel
            .iter()
            .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if parts.len() == 1 && matches!(parts[0].as_str(), "lib" | "main") {
            continue;
        }
        let depth = parts.len() - usize::from(parts.last().is_some_and(|p| p == "mod"));
        let text = code(&std::fs::read_to_string(file).unwrap());
        for (offset, to) in references(&text, depth) {
            if to != parts[0] && tops.contains(&to) {
                let line = text[..offset].matches('\n').count() + 1;
                edges.push(Edge {
                    from: parts[0].clone(),
                    to,
                    at: format!("src/{}:{line}", rel.display()),
                });
            }
        }
    }
    (edges, tops)
}

#[test]
fn modules_import_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (edges, tops) = edges(&src);
    assert!(
        edges.len() > 50,
        "the scan found too little: {}",
        edges.len()
    );

    let mut unplaced: Vec<&String> = tops.iter().filter(|t| layer_of(t).is_none()).collect();
    unplaced.dedup();
    assert!(
        unplaced.is_empty(),
        "give these modules a layer in LAYERS (tests/layers.rs): {unplaced:?}"
    );

    let mut upward = Vec::new();
    let mut sideways_used = Vec::new();
    for e in &edges {
        let (from, from_name) = layer_of(&e.from).unwrap();
        let (to, to_name) = layer_of(&e.to).unwrap();
        let allowed = SIDEWAYS
            .iter()
            .position(|s| (s.0, s.1) == (&*e.from, &*e.to));
        if to < from {
            continue;
        }
        if to == from && allowed.is_some() {
            sideways_used.extend(allowed);
            continue;
        }
        upward.push(format!(
            "{}: {} ({from_name}) uses {} ({to_name})",
            e.at, e.from, e.to
        ));
    }
    assert!(
        upward.is_empty(),
        "imports that do not go down a layer (see LAYERS in tests/layers.rs):\n{}",
        upward.join("\n")
    );
    let stale: Vec<_> = SIDEWAYS
        .iter()
        .enumerate()
        .filter(|(i, _)| !sideways_used.contains(i))
        .map(|(_, s)| format!("{} -> {}", s.0, s.1))
        .collect();
    assert!(
        stale.is_empty(),
        "SIDEWAYS allows imports no module makes any more: {stale:?}"
    );
}

/// The import table, for reading: `cargo test --test layers -- --nocapture`.
#[test]
fn print_the_import_table() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut table: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in edges(&src).0 {
        *table.entry((e.from, e.to)).or_default() += 1;
    }
    for ((from, to), n) in table {
        println!("{from:>12} -> {to:<12} {n}");
    }
}

#[test]
fn the_scan_sees_every_spelling_of_a_path() {
    let text = code(
        "use crate::plan::Plan;\n\
         // crate::tui in a comment\n\
         use crate::{\n    probe::{self, HostFacts},\n    runner,\n};\n\
         let x = crate::apply::f(); let y = notcrate::cli::g();\n\
         use super::super::doctor::x;\n",
    );
    let names: Vec<String> = references(&text, 2).into_iter().map(|r| r.1).collect();
    assert_eq!(names, ["plan", "probe", "runner", "apply", "doctor"]);
    // One `super::` from a file two deep stays inside its own module.
    assert!(references("use super::doctor::x;", 2).is_empty());
}
