//! File operations that root can trust: every file and directory is created
//! with an explicit mode (never the caller's umask), and names inside a
//! directory are opened relative to its descriptor without following
//! symbolic links, so a link planted in the state directory can never make
//! root truncate, append to or read another file. A leaf module: the state
//! directory, the executor's files and `persist` all write through it.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

/// Private files (journal, step log, lock, logs, temp files).
pub const PRIVATE_FILE: u32 = 0o600;
/// Private directories (the state directory, its history).
pub const PRIVATE_DIR: u32 = 0o700;
/// Files other programs read (the rt_tables drop-in, persisted profiles, units).
pub const PUBLIC_FILE: u32 = 0o644;
/// Directories others traverse (/etc/dscproute, rt_tables.d).
pub const PUBLIC_DIR: u32 = 0o755;

fn cstr(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// ELOOP from O_NOFOLLOW says "too many levels of symbolic links"; say what it means.
fn explain_link(e: io::Error, name: &str) -> io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        io::Error::other(format!(
            "{name} is a symbolic link: dscproute never follows links in its state directory"
        ))
    } else {
        e
    }
}

pub fn fstat(fd: &impl AsRawFd) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid value; fstat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: a valid descriptor and a pointer to a stat we own.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

fn fchmod(fd: &impl AsRawFd, mode: u32) -> io::Result<()> {
    // SAFETY: a valid descriptor; no memory is passed.
    check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) }).map(drop)
}

pub fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

pub fn is_regular(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG
}

pub fn is_symlink(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// An open directory; names are resolved relative to it.
pub struct Dir {
    fd: OwnedFd,
}

impl Dir {
    fn open_with(path: &Path, extra: libc::c_int) -> io::Result<Dir> {
        let c = cstr(path.as_os_str().as_bytes())?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | extra;
        // SAFETY: a NUL-terminated path; the returned descriptor is owned below.
        let fd = check(unsafe { libc::open(c.as_ptr(), flags) })?;
        // SAFETY: fd was just opened and is owned by nobody else.
        Ok(Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Open a directory, following links on the way (its ancestors are
    /// checked by `trust`; an rt_tables.d may legitimately be a link).
    pub fn open(path: &Path) -> io::Result<Dir> {
        Self::open_with(path, 0)
    }

    /// Open a directory that must not itself be a symbolic link.
    pub fn open_nofollow(path: &Path) -> io::Result<Dir> {
        Self::open_with(path, libc::O_NOFOLLOW)
            .map_err(|e| explain_link(e, &path.display().to_string()))
    }

    pub fn stat(&self) -> io::Result<libc::stat> {
        fstat(&self.fd)
    }

    /// `lstat` of a name in this directory; `None` when it does not exist.
    pub fn stat_at(&self, name: &str) -> io::Result<Option<libc::stat>> {
        let c = cstr(name.as_bytes())?;
        // SAFETY: an all-zero stat is a valid value; fstatat fills it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid descriptor, NUL-terminated name, a stat we own.
        let rc = unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        match check(rc) {
            Ok(_) => Ok(Some(st)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The subdirectory `name`, created with exactly `mode` when missing;
    /// never a link.
    pub fn subdir(&self, name: &str, mode: u32) -> io::Result<Dir> {
        let c = cstr(name.as_bytes())?;
        // SAFETY: valid descriptor and NUL-terminated name.
        let created = match check(unsafe {
            libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), mode as libc::mode_t)
        }) {
            Ok(_) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e),
        };
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: valid descriptor and NUL-terminated name; fd owned below.
        let fd = check(unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags) })
            .map_err(|e| explain_link(e, name))?;
        // SAFETY: fd was just opened and is owned by nobody else.
        let dir = Dir {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        };
        if created {
            // mkdirat's mode went through the umask.
            fchmod(&dir.fd, mode)?;
        }
        Ok(dir)
    }

    /// Open `name` without following a link and insist on a regular file
    /// with a single name (a hard link could alias any root-owned file).
    /// With `O_CREAT` in `flags` the file gets exactly `mode`. Never blocks
    /// on a FIFO.
    pub fn open_file(&self, name: &str, flags: libc::c_int, mode: u32) -> io::Result<File> {
        let c = cstr(name.as_bytes())?;
        let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK;
        // SAFETY: valid descriptor and NUL-terminated name; fd owned below.
        let fd = check(unsafe {
            libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint)
        })
        .map_err(|e| explain_link(e, name))?;
        // SAFETY: fd was just opened and is owned by nobody else.
        let file = unsafe { File::from_raw_fd(fd) };
        let st = fstat(&file)?;
        if !is_regular(&st) {
            return Err(io::Error::other(format!("{name} is not a regular file")));
        }
        if st.st_nlink > 1 {
            return Err(io::Error::other(format!(
                "{name} has {} hard links: another name could alias it",
                st.st_nlink
            )));
        }
        if flags & libc::O_CREAT != 0 && st.st_mode & 0o7777 != mode as libc::mode_t {
            fchmod(&file, mode)?;
        }
        Ok(file)
    }

    pub fn read_to_string(&self, name: &str) -> io::Result<String> {
        let mut f = self.open_file(name, libc::O_RDONLY, 0)?;
        let mut s = String::new();
        f.read_to_string(&mut s)?;
        Ok(s)
    }

    /// Open `name` for appending, created with exactly `mode`.
    pub fn append(&self, name: &str, mode: u32) -> io::Result<File> {
        self.open_file(name, libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT, mode)
    }

    pub fn remove(&self, name: &str) -> io::Result<()> {
        let c = cstr(name.as_bytes())?;
        // SAFETY: valid descriptor and NUL-terminated name.
        check(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) }).map(drop)
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (f, t) = (cstr(from.as_bytes())?, cstr(to.as_bytes())?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid descriptors and NUL-terminated names.
        check(unsafe { libc::renameat(fd, f.as_ptr(), fd, t.as_ptr()) }).map(drop)
    }

    pub fn sync(&self) -> io::Result<()> {
        // SAFETY: a valid descriptor.
        check(unsafe { libc::fsync(self.fd.as_raw_fd()) }).map(drop)
    }

    /// Replace `name` so that a crash leaves either the old or the new file,
    /// never a torn one: temp file (mode `mode`), fsync, rename, fsync the
    /// directory. A link at `name` is replaced, never written through. The
    /// temp file is removed when any step before the rename fails (a full
    /// disk must not fill up with them).
    pub fn write_durably(&self, name: &str, bytes: &[u8], mode: u32) -> io::Result<()> {
        self.replace(name, bytes, mode, true)
    }

    /// Replace `name` whole (a temp file renamed over it), synced to disk
    /// first when `durable`: a crash leaves the old or the new file, and
    /// without `durable` a power cut may leave neither.
    fn replace(&self, name: &str, bytes: &[u8], mode: u32, durable: bool) -> io::Result<()> {
        let tmp = temp_name(name);
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL;
        let mut file = match self.open_file(&tmp, flags, mode) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                // Left by a dead process that had our pid: unlink removes a
                // link itself, never its target.
                self.remove(&tmp)?;
                self.open_file(&tmp, flags, mode)?
            }
            other => other?,
        };
        let written = file
            .write_all(bytes)
            .and_then(|()| if durable { file.sync_all() } else { Ok(()) })
            .and_then(|()| self.rename(&tmp, name));
        if let Err(e) = written {
            let _ = self.remove(&tmp);
            return Err(e);
        }
        if durable { self.sync() } else { Ok(()) }
    }

    /// Remove temp files of `write_durably` whose process is gone (killed
    /// between create and rename).
    pub fn remove_stale_temps(&self) {
        let Ok(dup) = self.fd.try_clone() else {
            return;
        };
        // SAFETY: dup is a fresh descriptor that fdopendir takes over.
        let dirp = unsafe { libc::fdopendir(dup.as_raw_fd()) };
        if dirp.is_null() {
            return;
        }
        std::mem::forget(dup); // owned by dirp now
        let mut stale = Vec::new();
        loop {
            // SAFETY: dirp is a valid, open directory stream.
            let ent = unsafe { libc::readdir(dirp) };
            if ent.is_null() {
                break;
            }
            // SAFETY: d_name is a NUL-terminated array inside *ent.
            let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) };
            let name = name.to_string_lossy().into_owned();
            if temp_owner(&name).is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                stale.push(name);
            }
        }
        // SAFETY: closes the stream and its descriptor, once.
        unsafe { libc::closedir(dirp) };
        for name in stale {
            let _ = self.remove(&name);
        }
    }
}

/// `.NAME.tmp.PID.N`: the pid tells stale temps apart, N threads of one process.
fn temp_name(name: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(".{name}.tmp.{}.{n}", std::process::id())
}

/// The pid in a temp file's name made by `temp_name`.
fn temp_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (_, tail) = rest.rsplit_once(".tmp.")?;
    let (pid, n) = tail.split_once('.')?;
    n.parse::<u32>().ok()?;
    pid.parse().ok()
}

fn split(path: &Path) -> io::Result<(&Path, String)> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a path without a file name"))?
        .to_string_lossy()
        .into_owned();
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name))
}

/// Write `bytes` to `path` (mode 0600, whatever the umask) so that a crash
/// leaves either the old or the new file, never a torn one: temp file,
/// fsync, rename, fsync the directory. A link at `path` is replaced, never
/// written through; the temp file never outlives a failure.
pub fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_durably_mode(path, bytes, PRIVATE_FILE)
}

/// A file other programs read, such as the rt_tables drop-in: mode 0644,
/// missing parent directories 0755 (whatever the umask), written durably.
pub fn write_durably_public(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent, PUBLIC_DIR)?;
    }
    write_durably_mode(path, bytes, PUBLIC_FILE)
}

/// A private file replaced whole but not synced: for what nothing depends
/// on after a power cut (the journal history).
pub fn write_replacing(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (dir, name) = split(path)?;
    Dir::open(dir)?.replace(&name, bytes, PRIVATE_FILE, false)
}

/// `write_durably` of `path` in its directory, with exactly `mode`.
pub fn write_durably_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let (dir, name) = split(path)?;
    Dir::open(dir)?.write_durably(&name, bytes, mode)
}

/// Read a regular file without following a link at its last component.
pub fn read_no_follow(path: &Path) -> io::Result<String> {
    let (dir, name) = split(path)?;
    Dir::open(dir)?.read_to_string(&name)
}

/// Open for appending (created 0600) without following a link.
pub fn append_no_follow(path: &Path) -> io::Result<File> {
    let (dir, name) = split(path)?;
    Dir::open(dir)?.append(&name, PRIVATE_FILE)
}

/// `mkdir -p` where every directory it creates gets exactly `mode`;
/// existing ones are left as they are.
pub fn create_dir_all(path: &Path, mode: u32) -> io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    let (parent, name) = split(path)?;
    create_dir_all(parent, mode)?;
    Dir::open(parent)?.subdir(&name, mode).map(drop)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    /// Runs `body` in a child test process started under `umask 0` (the
    /// worst a caller can hand us): the umask is process-wide, and changing
    /// it here would leak into the tests running beside this one. `test` is
    /// the calling test's full name; its assertions run in the child.
    pub(crate) fn under_umask_0(test: &str, body: impl FnOnce()) {
        const VAR: &str = "DSCPROUTE_TEST_UMASK_0";
        if std::env::var(VAR).is_ok_and(|v| v == test) {
            return body();
        }
        use std::os::unix::process::CommandExt;
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", test, "--test-threads=1", "--nocapture"])
            .env(VAR, test);
        // SAFETY: umask is async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                libc::umask(0);
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{test} under umask 0:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn modes_are_exact_whatever_the_umask() {
        under_umask_0("safe_fs::tests::modes_are_exact_whatever_the_umask", || {
            // SAFETY: umask has no preconditions (and 0 stays 0).
            assert_eq!(unsafe { libc::umask(0) }, 0, "the child runs under umask 0");
            let t = tempfile::tempdir().unwrap();
            let d = t.path().join("a/b/c");
            create_dir_all(&d, PUBLIC_DIR).unwrap();
            write_durably_mode(&d.join("f"), b"x", PUBLIC_FILE).unwrap();
            write_durably_mode(&d.join("p"), b"x", PRIVATE_FILE).unwrap();
            let dir = Dir::open(&d).unwrap();
            dir.subdir("s", PRIVATE_DIR).unwrap();
            dir.append("log", PRIVATE_FILE).unwrap();
            for p in ["a", "a/b", "a/b/c"] {
                assert_eq!(mode(&t.path().join(p)), 0o755, "{p}");
            }
            assert_eq!(mode(&d.join("f")), 0o644);
            assert_eq!(mode(&d.join("p")), 0o600);
            assert_eq!(mode(&d.join("s")), 0o700);
            assert_eq!(mode(&d.join("log")), 0o600);
        });
    }

    #[test]
    fn an_existing_file_gets_the_mode_too() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("log");
        std::fs::write(&p, "old\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        append_no_follow(&p).unwrap().write_all(b"new\n").unwrap();
        assert_eq!(mode(&p), 0o600);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old\nnew\n");
    }

    #[test]
    fn links_are_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let sentinel = t.path().join("sentinel");
        std::fs::write(&sentinel, "keep\n").unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&sentinel, &link).unwrap();
        let e = append_no_follow(&link).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert!(read_no_follow(&link).is_err());
        let hard = t.path().join("hard");
        std::fs::hard_link(&sentinel, &hard).unwrap();
        let e = append_no_follow(&hard).unwrap_err();
        assert!(e.to_string().contains("hard links"), "{e}");
        assert_eq!(std::fs::read_to_string(&sentinel).unwrap(), "keep\n");
        // A durable write replaces the link itself.
        write_durably_mode(&link, b"new", PRIVATE_FILE).unwrap();
        assert_eq!(std::fs::read_to_string(&sentinel).unwrap(), "keep\n");
        assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
        // A linked directory is refused where links are not followed.
        let dlink = t.path().join("dlink");
        std::os::unix::fs::symlink(t.path(), &dlink).unwrap();
        assert!(Dir::open_nofollow(&dlink).is_err());
        assert!(
            Dir::open(t.path())
                .unwrap()
                .subdir("dlink", PRIVATE_DIR)
                .is_err()
        );
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("fifo");
        let c = cstr(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_no_follow(&p).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_failed_durable_write_leaves_no_temp_file() {
        let t = tempfile::tempdir().unwrap();
        // The rename fails: a directory is in the way.
        std::fs::create_dir(t.path().join("j.json")).unwrap();
        std::fs::write(t.path().join("j.json/x"), "").unwrap();
        assert!(write_durably_mode(&t.path().join("j.json"), b"x", PRIVATE_FILE).is_err());
        let names: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["j.json"], "temp file left behind");
    }

    #[test]
    fn stale_temps_of_dead_processes_are_swept() {
        let t = tempfile::tempdir().unwrap();
        // pid_max is at most 2^22: this pid cannot exist.
        let dead = t.path().join(".current.json.tmp.99999999.0");
        let mine = t.path().join(temp_name("current.json"));
        let other = t.path().join(".profile.toml.tmp");
        for p in [&dead, &mine, &other] {
            std::fs::write(p, "").unwrap();
        }
        Dir::open(t.path()).unwrap().remove_stale_temps();
        assert!(!dead.exists());
        assert!(mine.exists() && other.exists());
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
