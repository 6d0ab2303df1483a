//! `dscproute watch` (being written).

use super::{exit, fail};

pub fn watch_cmd(_interface: &str, _dscp: Option<&str>, _seconds: Option<u64>, _json: bool) -> i32 {
    fail(exit::FAILED, "watch is not available yet")
}
