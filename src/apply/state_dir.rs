//! Where dscproute keeps its journal and lock: `--state-dir`, else
//! `DSCPROUTE_STATE_DIR`, else /var/lib/dscproute.

use std::io::Write;
use std::path::{Path, PathBuf};

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

    pub fn ensure(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(self.root.join("history"))
    }

    pub fn lock_file(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// The journal of the last transaction.
    pub fn current(&self) -> PathBuf {
        self.root.join("current.json")
    }

    /// Step progress appended since `current.json` was last written.
    pub fn step_log(&self) -> PathBuf {
        self.root.join("current.log")
    }

    pub fn history(&self, id: &str) -> PathBuf {
        self.root.join("history").join(format!("{id}.json"))
    }

    /// Log of the detached confirm timer (it has no terminal).
    pub fn timer_log(&self) -> PathBuf {
        self.root.join("timer.log")
    }
}

/// Write `bytes` to `path` so that a crash leaves either the old or the new
/// file, never a torn one: temp file, fsync, rename, fsync the directory.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_env_beats_default() {
        let d = StateDir::resolve(Some(Path::new("/tmp/x")));
        assert_eq!(d.path(), Path::new("/tmp/x"));
        assert_eq!(d.current(), Path::new("/tmp/x/current.json"));
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
    fn durable_write_replaces_whole_file() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("j.json");
        write_durably(&p, b"one").unwrap();
        write_durably(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::read_dir(t.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }
}
