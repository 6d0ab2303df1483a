//! Reading a file the user names on the command line (a profile, recorded
//! facts): only a regular file, and at most 1 MiB of it. `/dev/zero` would
//! grow without end and a FIFO would block forever; neither is a profile.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use thiserror::Error;

/// A profile is a few hundred bytes, recorded facts a few hundred KiB.
pub const MAX_BYTES: u64 = 1 << 20;

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("it is {0}; only a regular file up to 1 MiB is read")]
    NotRegular(&'static str),
    #[error("it is larger than 1 MiB; only a regular file up to 1 MiB is read")]
    TooLarge,
    #[error("it is not UTF-8 text")]
    NotText,
}

/// The text of `path`, refused unless it is a regular file of at most
/// `MAX_BYTES`. A FIFO or device is refused before it is read, and opening
/// never blocks (O_NONBLOCK; a regular file ignores it).
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    // Refuse special files by name first, so a device is never even opened…
    regular(&std::fs::metadata(path)?)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    // …and again by what was opened: the name may have changed in between.
    let meta = file.metadata()?;
    regular(&meta)?;
    if meta.len() > MAX_BYTES {
        return Err(ReadError::TooLarge);
    }
    let mut bytes = Vec::new();
    // One byte more than allowed tells a file that grew since fstat.
    Read::take(file, MAX_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(ReadError::TooLarge);
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotText)
}

fn regular(meta: &std::fs::Metadata) -> Result<(), ReadError> {
    let t = meta.file_type();
    let kind = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
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

    #[test]
    fn devices_fifos_and_directories_are_refused_without_reading() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo with a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        for (path, kind) in [
            (Path::new("/dev/zero"), "a character device"),
            (Path::new("/dev/null"), "a character device"),
            (fifo.as_path(), "a FIFO"),
            (dir.path(), "a directory"),
        ] {
            let e = read_text(path).unwrap_err();
            assert!(
                matches!(e, ReadError::NotRegular(k) if k == kind),
                "{path:?}: {e}"
            );
        }
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
