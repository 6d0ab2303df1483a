//! The sysctl values the host had before dscproute changed them, kept
//! beside the journal (`sysctls.json`) so that `rollback --all` can put them
//! back even when the journal is unreadable and is set aside. Written after
//! every transaction from the setup as it stands; gone once the setup is
//! rolled back. Read back as untrusted input: only the keys and values
//! dscproute manages pass.

use super::executor::{Executor, Failure};
use super::journal::{Journal, JournalStep, Saved, StepStatus};
use super::state_dir::StateDir;
use crate::backend::Op;
use crate::backend::op::SysctlKey;
use crate::plan::{Role, Step, StepState};
use crate::safe_fs::{read_no_follow, write_durably};
use serde::{Deserialize, Serialize};

/// One sysctl: its value before dscproute, and the value dscproute set
/// (restored only while it still holds: other software may have changed it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub before: String,
    pub ours: u8,
}

/// What the setup in `j` changed, first value per key.
pub fn entries(j: &Journal) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for js in j.carried(j.boot_id.as_deref()) {
        if let (Op::Sysctl { value, .. }, Some(Saved::Sysctl { key, old })) =
            (&js.step.apply, &js.saved)
            && !out.iter().any(|e| &e.key == key)
        {
            out.push(Entry {
                key: key.clone(),
                before: old.clone(),
                ours: *value,
            });
        }
    }
    out
}

/// Bring `sysctls.json` up to date with the journal; best effort (the
/// journal itself is the record; this is its spare for `rollback --all`).
pub fn note(dir: &StateDir, j: &Journal) {
    let e = entries(j);
    let path = dir.sysctls();
    if e.is_empty() {
        let _ = std::fs::remove_file(path);
    } else {
        let text = serde_json::to_string_pretty(&e).expect("entries serialize");
        let _ = write_durably(&path, text.as_bytes());
    }
}

/// The entries on file, each checked; `Ok(empty)` when there is no file.
pub fn load(dir: &StateDir) -> Result<Vec<Entry>, String> {
    let path = dir.sysctls();
    let text = match read_no_follow(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let entries: Vec<Entry> = serde_json::from_str(&text)
        .map_err(|e| format!("{} is unreadable: {e}", path.display()))?;
    for e in &entries {
        let key =
            SysctlKey::parse(&e.key).map_err(|why| format!("{} refused: {why}", path.display()))?;
        key.check(e.ours)
            .and_then(|()| key.value(&e.before).map(|_| ()))
            .map_err(|why| format!("{} refused: {why}", path.display()))?;
    }
    Ok(entries)
}

/// Put back every value still at ours, exactly as the journal's undo does;
/// then forget the file. Returns what was restored and what failed.
pub fn restore(ex: &Executor, dir: &StateDir, entries: &[Entry]) -> Vec<Result<String, Failure>> {
    let mut out = Vec::new();
    for e in entries {
        let Ok(key) = SysctlKey::parse(&e.key) else {
            continue;
        };
        let js = JournalStep {
            step: Step {
                role: Role::Gateway,
                state: StepState::Change,
                apply: Op::Sysctl {
                    key: key.clone(),
                    value: e.ours,
                },
                undo: Op::Sysctl { key, value: 0 },
                reason: String::new(),
                change: None,
            },
            status: StepStatus::Done,
            saved: Some(Saved::Sysctl {
                key: e.key.clone(),
                old: e.before.clone(),
            }),
            error: None,
        };
        out.push(
            ex.undo(&js)
                .map(|()| format!("restore {} = {}", e.key, e.before)),
        );
    }
    if out.iter().all(Result::is_ok) {
        let _ = std::fs::remove_file(dir.sysctls());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::FakeRunner;

    #[test]
    fn a_crafted_file_is_refused_and_restores_nothing() {
        let t = tempfile::tempdir().unwrap();
        let dir = StateDir::resolve(Some(t.path()));
        for bad in [
            r#"[{"key":"kernel.modprobe","before":"/tmp/x","ours":1}]"#,
            r#"[{"key":"net.ipv4.ip_forward","before":"7; reboot","ours":1}]"#,
            r#"{"key":1}"#,
        ] {
            std::fs::write(dir.sysctls(), bad).unwrap();
            assert!(load(&dir).is_err(), "{bad}");
        }
        std::fs::remove_file(dir.sysctls()).unwrap();
        assert_eq!(load(&dir), Ok(vec![]));
    }

    #[test]
    fn a_value_still_ours_is_restored_and_one_changed_since_is_left() {
        let t = tempfile::tempdir().unwrap();
        let dir = StateDir::resolve(Some(t.path()));
        let root = t.path().join("root");
        let proc = root.join("proc/sys/net/ipv4");
        std::fs::create_dir_all(proc.join("conf/wg0")).unwrap();
        std::fs::write(proc.join("ip_forward"), "1\n").unwrap();
        // Someone else set it after us: not ours to change back.
        std::fs::write(proc.join("conf/wg0/rp_filter"), "1\n").unwrap();
        let entries = vec![
            Entry {
                key: "net.ipv4.ip_forward".into(),
                before: "0".into(),
                ours: 1,
            },
            Entry {
                key: "net.ipv4.conf.wg0.rp_filter".into(),
                before: "1".into(),
                ours: 2,
            },
        ];
        std::fs::write(dir.sysctls(), serde_json::to_string(&entries).unwrap()).unwrap();
        let runner = FakeRunner::new();
        let ex = Executor {
            runner: &runner,
            root: root.clone(),
        };
        let loaded = load(&dir).unwrap();
        assert_eq!(loaded, entries);
        let done = restore(&ex, &dir, &loaded);
        assert!(done.iter().all(Result::is_ok), "{done:?}");
        // Only forwarding, still at our 1, goes back; rp_filter is left.
        let read = |f: &str| std::fs::read_to_string(proc.join(f)).unwrap();
        assert_eq!(read("ip_forward"), "0\n");
        assert_eq!(read("conf/wg0/rp_filter"), "1\n");
        assert!(!dir.sysctls().exists(), "forgotten once restored");
    }
}
