//! Files for a process a test runs as another user (nobody). The checkout
//! may live where other users cannot go (a clone under /root, or in a 0700
//! `mktemp -d`), so that process gets copies in a directory everyone can
//! read, and works from there.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A temporary directory that every user can read and traverse, removed
/// when dropped.
pub struct SharedDir(tempfile::TempDir);

impl SharedDir {
    pub fn new() -> SharedDir {
        let dir = tempfile::Builder::new()
            .prefix("dscproute-shared-")
            .tempdir_in(traversable_temp_dir())
            .expect("temporary directory");
        set_mode(dir.path(), 0o755);
        SharedDir(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// A copy of `file` here, readable by everyone, and runnable by
    /// everyone when `file` is executable.
    pub fn copy(&self, file: impl AsRef<Path>) -> PathBuf {
        let file = file.as_ref();
        let to = self.path().join(file.file_name().expect("a file name"));
        std::fs::copy(file, &to)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", file.display(), to.display()));
        let mode = std::fs::metadata(&to)
            .expect("copied file")
            .permissions()
            .mode();
        let exec = if mode & 0o100 != 0 { 0o111 } else { 0 };
        set_mode(&to, mode | 0o444 | exec);
        to
    }

    /// A copy of the binary under test.
    pub fn bin(&self) -> PathBuf {
        self.copy(env!("CARGO_BIN_EXE_dscproute"))
    }
}

/// `$TMPDIR` when every user can traverse it (each ancestor has the x bit
/// for others), else /tmp.
fn traversable_temp_dir() -> PathBuf {
    let tmp = std::env::temp_dir();
    let open = tmp
        .ancestors()
        .all(|d| std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
    if open { tmp } else { PathBuf::from("/tmp") }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}
