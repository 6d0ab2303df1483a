//! What dscproute has in place here (see `apply::status`).

use super::Host;
pub use crate::apply::status::Status;

/// The status report; `Status::needs_action` says whether something
/// needs a command (the CLI then exits 1).
pub fn status(host: &Host) -> Status {
    let facts = (host.probe)();
    crate::apply::status::gather_dir(&host.state, &facts, host.runner)
}
