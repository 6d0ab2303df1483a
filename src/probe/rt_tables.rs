//! Routing table names: every rt_tables file iproute2 may read, and the
//! `*.conf` drop-ins in the `rt_tables.d/` directory beside each.

use super::RtTable;
use super::files::{read_optional, rel_display};
use super::unreadable::{Fact, Reason, Source, Unreadable};
use std::path::Path;

/// Older iproute2 reads /etc; newer ones ship defaults in /usr/share (or
/// /usr/lib) and let /etc override.
const DIRS: [&str; 3] = ["etc/iproute2", "usr/share/iproute2", "usr/lib/iproute2"];

/// Parse one file: "id name" lines, id decimal or hex ("0xfe"); `#` starts a
/// comment. Returns the tables and a note for each line iproute2 would
/// reject (it stops reading the file there; we read on and say so).
pub fn parse_rt_tables(text: &str, source: &str) -> (Vec<RtTable>, Vec<Unreadable>) {
    let mut tables = Vec::new();
    let mut bad = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let id = words.next().and_then(parse_id);
        match (id, words.next()) {
            (Some(id), Some(name)) => tables.push(RtTable {
                id,
                name: name.to_string(),
                source: source.to_string(),
            }),
            _ => bad.push(Unreadable::new(
                Fact::RtTables,
                Source::Line {
                    path: source.to_string(),
                    line: n + 1,
                },
                Reason::NotIdName {
                    text: line.to_string(),
                },
            )),
        }
    }
    (tables, bad)
}

fn parse_id(s: &str) -> Option<u32> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Read every location under `root`. Missing files are normal; unreadable
/// ones and bad lines come back as notes.
pub(crate) fn read_rt_tables(root: &Path) -> (Vec<RtTable>, Vec<Unreadable>) {
    let mut tables = Vec::new();
    let mut notes = Vec::new();
    for dir in DIRS {
        let mut files = vec![format!("{dir}/rt_tables")];
        files.extend(drop_ins(root, &format!("{dir}/rt_tables.d"), &mut notes));
        for rel in files {
            match read_optional(root, &rel) {
                Ok(Some(text)) => {
                    let (found, bad) = parse_rt_tables(&text, &rel_display(&rel));
                    tables.extend(found);
                    notes.extend(bad);
                }
                Ok(None) => {}
                Err(e) => notes.push(io_note(&rel, &e)),
            }
        }
    }
    (tables, notes)
}

fn io_note(rel: &str, e: &std::io::Error) -> Unreadable {
    Unreadable::new(
        Fact::RtTables,
        Source::Path(rel_display(rel)),
        Reason::Io {
            error: e.to_string(),
            root_hint: false,
        },
    )
}

/// `*.conf` files of a drop-in directory, sorted so the order is stable.
fn drop_ins(root: &Path, rel_dir: &str, notes: &mut Vec<Unreadable>) -> Vec<String> {
    let entries = match std::fs::read_dir(root.join(rel_dir)) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            notes.push(io_note(rel_dir, &e));
            return Vec::new();
        }
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.ends_with(".conf"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|n| format!("{rel_dir}/{n}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = "#\n# reserved values\n#\n255\tlocal\n254\tmain\n253\tdefault\n0\tunspec\n#\n# local\n#\n#1\tinr.ruhep\n";

    #[test]
    fn reserved_names_and_comments() {
        let (tables, bad) = parse_rt_tables(DEBIAN, "/etc/iproute2/rt_tables");
        let pairs: Vec<(u32, &str)> = tables.iter().map(|t| (t.id, t.name.as_str())).collect();
        assert_eq!(
            pairs,
            [
                (255, "local"),
                (254, "main"),
                (253, "default"),
                (0, "unspec")
            ]
        );
        assert!(bad.is_empty());
        assert_eq!(tables[0].source, "/etc/iproute2/rt_tables");
    }

    #[test]
    fn hex_ids_trailing_comments_and_bad_lines() {
        let (tables, bad) = parse_rt_tables(
            "0xfe main\n  100 vpn # ours\n51820\twg\nnonsense\n0xzz bad\n",
            "x.conf",
        );
        let pairs: Vec<(u32, &str)> = tables.iter().map(|t| (t.id, t.name.as_str())).collect();
        assert_eq!(pairs, [(254, "main"), (100, "vpn"), (51820, "wg")]);
        assert_eq!(bad.len(), 2);
        assert!(
            bad[0].to_string().starts_with("x.conf line 4:"),
            "{}",
            bad[0]
        );
    }

    #[test]
    fn reads_every_location_in_order() {
        let root = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = root.path().join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("etc/iproute2/rt_tables", "254 main\n");
        write("etc/iproute2/rt_tables.d/b.conf", "101 b\n");
        write("etc/iproute2/rt_tables.d/a.conf", "100 a\n");
        write("etc/iproute2/rt_tables.d/README", "1 ignored\n");
        write("usr/share/iproute2/rt_tables", "255 local\n");
        write("usr/lib/iproute2/rt_tables.d/c.conf", "102 c\n");
        let (tables, notes) = read_rt_tables(root.path());
        let got: Vec<(&str, &str)> = tables
            .iter()
            .map(|t| (t.name.as_str(), t.source.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("main", "/etc/iproute2/rt_tables"),
                ("a", "/etc/iproute2/rt_tables.d/a.conf"),
                ("b", "/etc/iproute2/rt_tables.d/b.conf"),
                ("local", "/usr/share/iproute2/rt_tables"),
                ("c", "/usr/lib/iproute2/rt_tables.d/c.conf"),
            ]
        );
        assert!(notes.is_empty(), "{notes:?}");
    }
}
