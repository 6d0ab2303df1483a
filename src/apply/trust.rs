//! Like sshd's StrictModes: root only uses a state directory that no other
//! user can change. Whoever can write the journal can make rollback run
//! what it says; whoever can swap the directory or plant a link in it can
//! make root overwrite another file. So the directory, every directory
//! above it, and the journal, step log, lock, timer log and history in it
//! must belong to root and be writable by nobody else.

use crate::plan::sh_quote;
use crate::safe_fs::{Dir, is_dir, is_regular, is_symlink};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// The files and directories of a state dir that root reads or writes.
pub const STATE_FILES: [&str; 4] = ["current.json", "current.log", "lock", "timer.log"];
pub const STATE_SUBDIRS: [&str; 1] = ["history"];

/// A state directory root must not use, with the command that fixes it.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("refusing the state directory: {path} {problem}; fix: {fix}")]
pub struct Untrusted {
    pub path: PathBuf,
    pub problem: String,
    pub fix: String,
}

/// Check `root` (which may not exist yet) for `uid`, the user that will use
/// it (root in production; tests pass their own uid).
pub fn check_state_dir(root: &Path, uid: u32) -> Result<(), Untrusted> {
    let owner = if uid == 0 {
        "root:root".to_string()
    } else {
        uid.to_string()
    };
    let untrusted = |path: &Path, problem: String, fix: String| Untrusted {
        path: path.to_path_buf(),
        problem,
        fix,
    };
    // Existing part of the path, resolved: every real directory above the
    // state dir is checked, wherever links lead.
    let mut existing = root;
    while std::fs::symlink_metadata(existing).is_err() {
        match existing.parent() {
            Some(p) if !p.as_os_str().is_empty() => existing = p,
            _ => {
                existing = Path::new(".");
                break;
            }
        }
    }
    let real = std::fs::canonicalize(existing).map_err(|e| {
        untrusted(
            existing,
            format!("cannot be resolved ({e})"),
            "choose another --state-dir".into(),
        )
    })?;
    let root_exists = existing == root;
    let ancestors: Vec<&Path> = real.ancestors().collect();
    for (i, dir) in ancestors.iter().rev().enumerate() {
        let is_state_dir = root_exists && i == ancestors.len() - 1;
        let meta = std::fs::symlink_metadata(dir).map_err(|e| {
            untrusted(
                dir,
                format!("cannot be checked ({e})"),
                "choose another --state-dir".into(),
            )
        })?;
        let (dir_uid, mode) = (meta.uid(), meta.mode());
        if is_state_dir {
            check_own(dir, (dir_uid, mode), uid, &owner, 0o700)?;
            continue;
        }
        let sticky = mode & libc::S_ISVTX != 0;
        let problem = if dir_uid != 0 && dir_uid != uid {
            format!("is owned by uid {dir_uid}")
        } else if mode & 0o022 != 0 && !sticky {
            format!(
                "is writable by group or others (mode {:04o})",
                mode & 0o7777
            )
        } else {
            continue;
        };
        return Err(untrusted(
            dir,
            format!("{problem} and lies above the state directory, so another user could swap it"),
            format!(
                "use a state directory whose parents only root can write, such as the default {}",
                super::state_dir::DEFAULT
            ),
        ));
    }
    if !root_exists {
        return Ok(());
    }
    let dir = Dir::open(&real).map_err(|e| {
        untrusted(
            &real,
            format!("cannot be opened ({e})"),
            "choose another --state-dir".into(),
        )
    })?;
    let entries = STATE_SUBDIRS
        .iter()
        .map(|n| (*n, true))
        .chain(STATE_FILES.iter().map(|n| (*n, false)));
    for (name, want_dir) in entries {
        let path = root.join(name);
        let st = match dir.stat_at(name) {
            Ok(Some(st)) => st,
            Ok(None) => continue,
            Err(e) => {
                return Err(untrusted(
                    &path,
                    format!("cannot be checked ({e})"),
                    format!("rm -r {}", sh_quote(&path.display().to_string())),
                ));
            }
        };
        let q = sh_quote(&path.display().to_string());
        if is_symlink(&st) {
            return Err(untrusted(
                &path,
                "is a symbolic link, and dscproute never follows links in its state directory"
                    .into(),
                format!("rm {q} (removes the link, not its target)"),
            ));
        }
        if want_dir != is_dir(&st) || (!want_dir && !is_regular(&st)) {
            let kind = if want_dir {
                "a directory"
            } else {
                "a regular file"
            };
            return Err(untrusted(
                &path,
                format!("is not {kind}"),
                format!("move it out of the way: mv {q} {q}.bad"),
            ));
        }
        if !want_dir && st.st_nlink > 1 {
            return Err(untrusted(
                &path,
                format!(
                    "has {} hard links, so another name could alias it",
                    st.st_nlink
                ),
                format!("cp {q} {q}.copy && mv {q}.copy {q}"),
            ));
        }
        let mode = if want_dir { 0o700 } else { 0o600 };
        check_own(&path, (st.st_uid, st.st_mode), uid, &owner, mode)?;
    }
    Ok(())
}

/// The state dir itself or a file in it: owned by `uid`, writable by no one else.
fn check_own(
    path: &Path,
    (file_uid, file_mode): (u32, u32),
    uid: u32,
    owner: &str,
    mode: u32,
) -> Result<(), Untrusted> {
    let problem = if file_uid != uid {
        format!(
            "is owned by uid {file_uid}, not {}, so another user could rewrite what root runs",
            owner_word(uid)
        )
    } else if file_mode & 0o022 != 0 {
        format!(
            "is writable by group or others (mode {:04o}), so another user could rewrite what \
             root runs",
            file_mode & 0o7777
        )
    } else {
        return Ok(());
    };
    let q = sh_quote(&path.display().to_string());
    Err(Untrusted {
        path: path.to_path_buf(),
        problem,
        fix: format!("chown {owner} {q} && chmod {mode:04o} {q}"),
    })
}

fn owner_word(uid: u32) -> String {
    if uid == 0 {
        "root".into()
    } else {
        format!("uid {uid}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn me() -> u32 {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() }
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A private state dir in a private temp dir, with the usual files.
    fn state() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let s = t.path().join("state");
        std::fs::create_dir(&s).unwrap();
        std::fs::create_dir(s.join("history")).unwrap();
        chmod(&s, 0o700);
        chmod(&s.join("history"), 0o700);
        for f in STATE_FILES {
            std::fs::write(s.join(f), "").unwrap();
            chmod(&s.join(f), 0o600);
        }
        (t, s)
    }

    #[test]
    fn a_private_state_dir_is_trusted_and_a_missing_one_too() {
        let (t, s) = state();
        assert_eq!(check_state_dir(&s, me()), Ok(()));
        assert_eq!(check_state_dir(&t.path().join("new/state"), me()), Ok(()));
    }

    #[test]
    fn writable_by_others_is_refused_with_the_fix() {
        let (_t, s) = state();
        chmod(&s, 0o777);
        let e = check_state_dir(&s, me()).unwrap_err();
        assert_eq!(e.path, s);
        assert!(e.problem.contains("mode 0777"), "{e}");
        let owner = if me() == 0 {
            "root:root".into()
        } else {
            me().to_string()
        };
        let q = s.display();
        assert_eq!(e.fix, format!("chown {owner} {q} && chmod 0700 {q}"));
        chmod(&s, 0o700);
        chmod(&s.join("current.json"), 0o620);
        let e = check_state_dir(&s, me()).unwrap_err();
        assert_eq!(e.path, s.join("current.json"));
        assert!(e.fix.contains("chmod 0600"), "{e}");
        let line = e.to_string();
        assert!(
            !line.contains('\n') && line.contains("fix: chown"),
            "{line}"
        );
    }

    #[test]
    fn owned_by_another_user_is_refused() {
        let (_t, s) = state();
        // Checked for a user that owns nothing here.
        let e = check_state_dir(&s, me() + 1).unwrap_err();
        assert!(e.problem.contains(&format!("owned by uid {}", me())), "{e}");
    }

    #[test]
    fn a_writable_parent_is_refused_but_a_sticky_one_is_not() {
        let (t, s) = state();
        chmod(t.path(), 0o777);
        let e = check_state_dir(&s, me()).unwrap_err();
        assert_eq!(e.path, t.path().canonicalize().unwrap());
        assert!(e.problem.contains("above the state directory"), "{e}");
        // Also for a state dir still to be created there.
        assert!(check_state_dir(&t.path().join("new"), me()).is_err());
        chmod(t.path(), 0o1777);
        assert_eq!(check_state_dir(&s, me()), Ok(()));
    }

    #[test]
    fn links_and_odd_files_in_the_state_dir_are_refused() {
        let (t, s) = state();
        let sentinel = t.path().join("sentinel");
        std::fs::write(&sentinel, "").unwrap();
        std::fs::remove_file(s.join("lock")).unwrap();
        std::os::unix::fs::symlink(&sentinel, s.join("lock")).unwrap();
        let e = check_state_dir(&s, me()).unwrap_err();
        assert!(e.problem.contains("symbolic link"), "{e}");
        assert!(e.fix.starts_with("rm "), "{e}");
        std::fs::remove_file(s.join("lock")).unwrap();
        std::fs::hard_link(&sentinel, s.join("lock")).unwrap();
        let e = check_state_dir(&s, me()).unwrap_err();
        assert!(e.problem.contains("hard links"), "{e}");
        std::fs::remove_file(s.join("lock")).unwrap();
        std::fs::create_dir(s.join("lock")).unwrap();
        let e = check_state_dir(&s, me()).unwrap_err();
        assert!(e.problem.contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_linked_state_dir_is_checked_where_it_leads() {
        let (t, s) = state();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&s, &link).unwrap();
        assert_eq!(check_state_dir(&link, me()), Ok(()));
        chmod(&s, 0o770);
        assert!(check_state_dir(&link, me()).is_err());
    }
}
