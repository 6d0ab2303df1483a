//! Reading a file the user names on the command line (a profile, recorded
//! facts): a regular file or a pipe (`--profile /dev/stdin`), at most 1 MiB
//! of it. `/dev/zero` would grow without end and opening a FIFO nobody
//! writes to would block forever; neither is a profile.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use thiserror::Error;

/// A profile is a few hundred bytes, recorded facts a few hundred KiB.
pub const MAX_BYTES: u64 = 1 << 20;
const ACCEPTED: &str = "give a regular file or a pipe, up to 1 MiB";

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("it is {0}; {ACCEPTED}")]
    NotRegular(&'static str),
    #[error("it is larger than 1 MiB; {ACCEPTED}")]
    TooLarge,
    #[error("it is a FIFO and nothing was written to it; {ACCEPTED}")]
    EmptyPipe,
    #[error("it is not UTF-8 text")]
    NotText,
}

/// The text of `path`: a regular file or a pipe of at most `MAX_BYTES`.
/// Devices and directories are refused before they are read, and opening
/// never blocks (O_NONBLOCK: a FIFO without a writer opens at once and reads
/// as empty).
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    // Refuse devices by name first, so one is never even opened…
    accepted(&std::fs::metadata(path)?)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    // …and again by what was opened: the name may have changed in between.
    let meta = file.metadata()?;
    accepted(&meta)?;
    let pipe = meta.file_type().is_fifo();
    if pipe {
        // A writer may still be writing: wait for its data (and its end).
        // SAFETY: fcntl on a descriptor this function owns.
        unsafe {
            let flags = libc::fcntl(file.as_raw_fd(), libc::F_GETFL);
            libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
    } else if meta.len() > MAX_BYTES {
        return Err(ReadError::TooLarge);
    }
    let mut bytes = Vec::new();
    // One byte more than allowed tells a pipe or a file that grew.
    Read::take(file, MAX_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(ReadError::TooLarge);
    }
    if pipe && bytes.is_empty() {
        return Err(ReadError::EmptyPipe);
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotText)
}

fn accepted(meta: &std::fs::Metadata) -> Result<(), ReadError> {
    let t = meta.file_type();
    let kind = if t.is_file() || t.is_fifo() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    };
    Err(ReadError::NotRegular(kind))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_regular_file_is_read() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"[marker]\n").unwrap();
        assert_eq!(read_text(f.path()).unwrap(), "[marker]\n");
    }

    fn mkfifo(dir: &Path) -> std::path::PathBuf {
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        fifo
    }

    #[test]
    fn devices_and_directories_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        for (path, kind) in [
            (Path::new("/dev/zero"), "a character device"),
            (Path::new("/dev/null"), "a character device"),
            (dir.path(), "a directory"),
        ] {
            let e = read_text(path).unwrap_err();
            assert!(
                matches!(e, ReadError::NotRegular(k) if k == kind),
                "{path:?}: {e}"
            );
        }
    }

    /// A FIFO nobody writes to opens at once and reads as empty; a pipe
    /// (what `--profile /dev/stdin` is under `cmd | dscproute …`) is read
    /// to its end.
    #[test]
    fn fifos_never_block_and_pipes_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = mkfifo(dir.path());
        assert!(matches!(read_text(&fifo), Err(ReadError::EmptyPipe)));
        let mut fds = [0; 2];
        // SAFETY: pipe fills two descriptors this test owns and closes.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: fds[1] is the pipe's write end, owned from here on.
        let mut w = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fds[1]) };
        w.write_all(b"[marker]\n").unwrap();
        drop(w);
        let path = format!("/proc/self/fd/{}", fds[0]);
        assert_eq!(read_text(Path::new(&path)).unwrap(), "[marker]\n");
        // SAFETY: closing the read end this test opened.
        unsafe { libc::close(fds[0]) };
    }

    #[test]
    fn more_than_one_mib_is_refused() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&vec![b'#'; MAX_BYTES as usize]).unwrap();
        assert_eq!(read_text(f.path()).unwrap().len(), MAX_BYTES as usize);
        f.write_all(b"#").unwrap();
        assert!(matches!(read_text(f.path()), Err(ReadError::TooLarge)));
    }

    #[test]
    fn binary_is_not_text() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&[0xff, 0xfe, 0]).unwrap();
        assert!(matches!(read_text(f.path()), Err(ReadError::NotText)));
    }
}
