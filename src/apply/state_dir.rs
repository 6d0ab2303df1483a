//! Where dscproute keeps its journal and lock: `--state-dir`, else
//! `DSCPROUTE_STATE_DIR`, else /var/lib/dscproute. The directory is 0700 and
//! everything in it 0600 whatever the umask; as root, dscproute refuses a
//! state directory another user could change (see `trust`), and opens the
//! files in it without following links (see `safe_fs`).

use super::trust::{self, Untrusted};
use crate::safe_fs::{self, Dir, PRIVATE_DIR, PUBLIC_DIR};
use std::io;
use std::path::{Path, PathBuf};

// The old paths of these, for the journal and the executor.

pub const DEFAULT: &str = "/var/lib/dscproute";
pub const ENV: &str = "DSCPROUTE_STATE_DIR";

#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn resolve(flag: Option<&Path>) -> StateDir {
        let root = flag
            .map(Path::to_path_buf)
            .or_else(|| {
                std::env::var_os(ENV)
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(DEFAULT));
        StateDir { root }
    }

    pub fn path(&self) -> &Path {
        &self.root
    }

    /// Refuse, as root, a state directory (or journal, lock…) that another
    /// user could change. Without root there is nothing to protect.
    pub fn check_trusted(&self) -> Result<(), Untrusted> {
        if crate::runner::is_root() {
            trust::check_state_dir(&self.root, 0)
        } else {
            Ok(())
        }
    }

    /// Create the directory (0700) and its history (0700) when missing,
    /// after checking that it can be trusted; sweep temp files left by
    /// killed processes.
    pub fn ensure(&self) -> io::Result<()> {
        self.check_trusted()
            .map_err(|e| io::Error::new(io::ErrorKind::PermissionDenied, e.to_string()))?;
        if !self.root.is_dir() {
            let name = self.root.file_name().ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "a state dir needs a name")
            })?;
            let parent = match self.root.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            safe_fs::create_dir_all(parent, PUBLIC_DIR)?;
            Dir::open(parent)?.subdir(&name.to_string_lossy(), PRIVATE_DIR)?;
        }
        let dir = Dir::open(&self.root)?;
        dir.subdir("history", PRIVATE_DIR)?;
        dir.remove_stale_temps();
        Ok(())
    }

    pub fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// The agent's own lock: one agent per state directory.
    pub fn agent_lock(&self) -> PathBuf {
        self.root.join("agent.lock")
    }

    /// What a running agent tells `status` (`agent_record`).
    pub fn agent_file(&self) -> PathBuf {
        self.root.join("agent.json")
    }

    /// The journal of the last transaction.
    pub fn current(&self) -> PathBuf {
        self.root.join("current.json")
    }

    /// The sysctl values from before dscproute (`baseline`).
    pub fn sysctls(&self) -> PathBuf {
        self.root.join("sysctls.json")
    }

    /// Step progress appended since `current.json` was last written.
    pub fn step_log(&self) -> PathBuf {
        self.root.join("current.log")
    }

    /// An archived journal. The id comes from a journal file: anything but
    /// letters, digits, `-` and `_` is replaced, so it stays in history/.
    pub fn history(&self, id: &str) -> PathBuf {
        let safe: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.root.join("history").join(format!("{safe}.json"))
    }

    /// Log of the detached confirm timer (it has no terminal).
    pub fn timer_log(&self) -> PathBuf {
        self.root.join("timer.log")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::safe_fs::{append_no_follow, write_durably, write_durably_public};

    #[test]
    fn flag_beats_env_beats_default() {
        let d = StateDir::resolve(Some(Path::new("/tmp/x")));
        assert_eq!(d.path(), Path::new("/tmp/x"));
        assert_eq!(d.current(), Path::new("/tmp/x/current.json"));
        assert_eq!(
            d.history("../../etc/passwd"),
            Path::new("/tmp/x/history/______etc_passwd.json")
        );
        // The environment is process-wide: set and read it in one test only.
        // SAFETY: no other test reads DSCPROUTE_STATE_DIR.
        unsafe { std::env::set_var(ENV, "/tmp/from-env") };
        assert_eq!(StateDir::resolve(None).path(), Path::new("/tmp/from-env"));
        assert_eq!(
            StateDir::resolve(Some(Path::new("/tmp/x"))).path(),
            Path::new("/tmp/x")
        );
        unsafe { std::env::remove_var(ENV) };
        assert_eq!(StateDir::resolve(None).path(), Path::new(DEFAULT));
    }

    #[test]
    fn ensure_makes_a_private_dir_whatever_the_umask() {
        use std::os::unix::fs::MetadataExt;
        crate::safe_fs::tests::under_umask_0(
            "apply::state_dir::tests::ensure_makes_a_private_dir_whatever_the_umask",
            || {
                let t = tempfile::tempdir().unwrap();
                // tempfile's own dir follows the umask; ours must not.
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
                let d = StateDir::resolve(Some(&t.path().join("var/lib/dscproute")));
                d.ensure().unwrap();
                drop(super::super::lock::Lock::try_acquire(&d.lock_file()).unwrap());
                write_durably(&d.current(), b"{}").unwrap();
                append_no_follow(&d.step_log()).unwrap();
                write_durably(&d.history("1"), b"{}").unwrap();
                let dropin = t.path().join("etc/rt_tables.d/x.conf");
                write_durably_public(&dropin, b"1 x\n").unwrap();
                let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
                for (p, want) in [
                    (t.path().join("var"), 0o755),
                    (t.path().join("var/lib"), 0o755),
                    (d.path().to_path_buf(), 0o700),
                    (d.path().join("history"), 0o700),
                    (d.lock_file(), 0o600),
                    (d.current(), 0o600),
                    (d.step_log(), 0o600),
                    (d.history("1"), 0o600),
                    (t.path().join("etc/rt_tables.d"), 0o755),
                    (dropin, 0o644),
                ] {
                    assert_eq!(mode(&p), want, "{}", p.display());
                }
            },
        );
    }
}
