//! Reading files below the probe's root ("/" on a host, a temp dir in tests).

use std::io::ErrorKind;
use std::path::Path;

/// `Ok(None)` when the file does not exist; other errors are the caller's
/// to report.
pub(crate) fn read_optional(root: &Path, rel: &str) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(root.join(rel)) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The path as it reads on the probed host, for notes: "/etc/iproute2/rt_tables".
pub(crate) fn rel_display(rel: &str) -> String {
    format!("/{rel}")
}
