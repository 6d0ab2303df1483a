//! One change at a time: an exclusive flock on the state directory's lock
//! file. The kernel drops it when the holder dies, even by SIGKILL.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

pub struct Lock {
    _file: File,
}

#[derive(Debug)]
pub enum LockError {
    /// Held by another process (its pid when it wrote one).
    Busy(Option<u32>),
    Io(std::io::Error),
}

impl Lock {
    /// Take the lock without waiting.
    pub fn try_acquire(path: &Path) -> Result<Lock, LockError> {
        Self::acquire(path, false)
    }

    /// Wait for the lock (the confirm timer uses this).
    pub fn wait(path: &Path) -> Result<Lock, LockError> {
        Self::acquire(path, true)
    }

    fn acquire(path: &Path, wait: bool) -> Result<Lock, LockError> {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(LockError::Io)?;
        let op = if wait {
            libc::LOCK_EX
        } else {
            libc::LOCK_EX | libc::LOCK_NB
        };
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                let mut s = String::new();
                let _ = file.read_to_string(&mut s);
                return Err(LockError::Busy(s.trim().parse().ok()));
            }
            return Err(LockError::Io(err));
        }
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(Lock { _file: file })
    }
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
}
