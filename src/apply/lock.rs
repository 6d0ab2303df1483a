//! One change at a time per host. Two locks, both dropped by the kernel when
//! the holder dies, even by SIGKILL:
//! - an exclusive flock on the state directory's lock file (opened without
//!   following links, mode 0600), which also records the holder's pid;
//! - an abstract unix socket bound while the lock is held. Abstract names
//!   belong to the network namespace, and so do the rules, routes and
//!   sysctls we change: two applies with different `--state-dir` exclude
//!   each other, while lab hosts in other namespaces never block each other.

use crate::safe_fs::{Dir, PRIVATE_FILE};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

/// The socket's name in the abstract namespace of the network namespace.
pub const HOST_LOCK: &str = "dscproute/lock";
/// The agent's, beside it.
pub const AGENT_LOCK: &str = "dscproute/agent";

pub struct Lock {
    _file: File,
    _host: OwnedFd,
}

#[derive(Debug)]
pub enum LockError {
    /// Held by another process (its pid when known).
    Busy(Option<u32>),
    Io(std::io::Error),
}

impl Lock {
    /// Take the lock without waiting.
    pub fn try_acquire(path: &Path) -> Result<Lock, LockError> {
        Self::acquire(path, &host_lock_name(path))
    }

    /// The agent's lock: one agent per state directory (`path`) and per
    /// network namespace (its own abstract name, so that an agent never
    /// blocks the applies its repairs are).
    pub fn try_acquire_agent(path: &Path) -> Result<Lock, LockError> {
        let name = host_lock_name(path).replacen(HOST_LOCK, AGENT_LOCK, 1);
        Self::acquire(path, &name)
    }

    /// Wait for the lock (the confirm timer uses this): retried with a
    /// backoff up to half a second, as the socket cannot be waited on.
    pub fn wait(path: &Path) -> Result<Lock, LockError> {
        let mut pause = Duration::from_millis(10);
        loop {
            match Self::try_acquire(path) {
                Err(LockError::Busy(_)) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    /// Both locks, state dir first; `host` is the abstract socket name.
    fn acquire(path: &Path, host: &str) -> Result<Lock, LockError> {
        let name = path
            .file_name()
            .ok_or_else(|| LockError::Io(std::io::Error::other("a lock path needs a file name")))?
            .to_string_lossy()
            .into_owned();
        let dir = Dir::open(path.parent().unwrap_or(Path::new("."))).map_err(LockError::Io)?;
        let mut file = dir
            .open_file(&name, libc::O_RDWR | libc::O_CREAT, PRIVATE_FILE)
            .map_err(LockError::Io)?;
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut s = String::new();
                let _ = file.read_to_string(&mut s);
                return Err(LockError::Busy(s.trim().parse().ok()));
            }
            return Err(LockError::Io(err));
        }
        let host = bind_host_lock(host)?;
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(Lock {
            _file: file,
            _host: host,
        })
    }
}

/// The production name; unit tests, which run in parallel in one network
/// namespace (and beside other test runs), get one name per lock file.
fn host_lock_name(_lock_file: &Path) -> String {
    #[cfg(test)]
    {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        _lock_file.hash(&mut h);
        format!("{HOST_LOCK}/test/{}/{:x}", std::process::id(), h.finish())
    }
    #[cfg(not(test))]
    HOST_LOCK.to_string()
}

fn sockaddr(name: &str) -> (libc::sockaddr_un, libc::socklen_t) {
    // SAFETY: an all-zero sockaddr_un is valid (an empty path).
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    // sun_path[0] stays 0: the abstract namespace, no file anywhere.
    let bytes = name.as_bytes();
    let len = bytes.len().min(addr.sun_path.len() - 1);
    for (dst, src) in addr.sun_path[1..=len].iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    let base = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    (addr, (base + 1 + len) as libc::socklen_t)
}

fn unix_socket() -> Result<OwnedFd, LockError> {
    // SAFETY: plain socket creation; the descriptor is owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(LockError::Io(std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just created and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Bind (and listen, so a refused process can ask who holds it). CLOEXEC:
/// the commands we run must not inherit, and so outlive, the lock.
fn bind_host_lock(name: &str) -> Result<OwnedFd, LockError> {
    let fd = unix_socket()?;
    let (addr, len) = sockaddr(name);
    // SAFETY: a valid socket and a sockaddr_un of the given length.
    let rc = unsafe { libc::bind(fd.as_raw_fd(), (&raw const addr).cast(), len) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EADDRINUSE) {
            return Err(LockError::Busy(holder_pid(name)));
        }
        return Err(LockError::Io(err));
    }
    // SAFETY: a valid, bound socket.
    if unsafe { libc::listen(fd.as_raw_fd(), libc::SOMAXCONN) } != 0 {
        return Err(LockError::Io(std::io::Error::last_os_error()));
    }
    Ok(fd)
}

/// The pid of the process holding the host lock `name`, from the peer
/// credentials of its listening socket (no connection is ever accepted;
/// the non-blocking connect never waits).
fn holder_pid(name: &str) -> Option<u32> {
    let fd = unix_socket().ok()?;
    let (addr, len) = sockaddr(name);
    // SAFETY: a valid socket and a sockaddr_un of the given length.
    if unsafe { libc::connect(fd.as_raw_fd(), (&raw const addr).cast(), len) } != 0 {
        return None;
    }
    // SAFETY: an all-zero ucred is valid; getsockopt fills it.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut clen = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: a valid socket and a ucred buffer of the given length.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &mut clen,
        )
    };
    (rc == 0 && cred.pid > 0).then_some(cred.pid as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_release() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("lock");
        let first = Lock::try_acquire(&p).unwrap();
        match Lock::try_acquire(&p) {
            Err(LockError::Busy(pid)) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected busy, got {:?}", other.map(|_| ())),
        }
        drop(first);
        assert!(Lock::try_acquire(&p).is_ok());
    }

    #[test]
    fn the_host_lock_holds_across_state_dirs_and_names_its_holder() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let host = format!("{HOST_LOCK}/test/{}/shared", std::process::id());
        let first = Lock::acquire(&a.path().join("lock"), &host).unwrap();
        match Lock::acquire(&b.path().join("lock"), &host) {
            Err(LockError::Busy(pid)) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected busy, got {:?}", other.map(|_| ())),
        }
        // The loser left the other state dir's lock free.
        drop(Lock::try_acquire(&b.path().join("lock")).unwrap());
        drop(first);
        assert!(Lock::acquire(&b.path().join("lock"), &host).is_ok());
    }

    #[test]
    fn a_linked_lock_is_refused_and_its_target_kept() {
        let t = tempfile::tempdir().unwrap();
        let sentinel = t.path().join("sentinel");
        std::fs::write(&sentinel, "keep\n").unwrap();
        let p = t.path().join("lock");
        std::os::unix::fs::symlink(&sentinel, &p).unwrap();
        match Lock::try_acquire(&p) {
            Err(LockError::Io(e)) => assert!(e.to_string().contains("symbolic link"), "{e}"),
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
        assert_eq!(std::fs::read_to_string(&sentinel).unwrap(), "keep\n");
    }

    #[test]
    fn wait_gets_the_lock_once_it_is_released() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("lock");
        let first = Lock::try_acquire(&p).unwrap();
        let waiter = std::thread::scope(|s| {
            let h = s.spawn(|| Lock::wait(&p).map(drop).is_ok());
            std::thread::sleep(Duration::from_millis(50));
            assert!(!h.is_finished(), "wait returned while the lock was held");
            drop(first);
            h.join().unwrap()
        });
        assert!(waiter);
    }
}
