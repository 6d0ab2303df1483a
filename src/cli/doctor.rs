//! `dscproute doctor` (being written).

use super::{exit, fail};
use crate::apply::StateDir;
use std::path::Path;

pub fn doctor_cmd(_state: &StateDir, _profile: &Path, _json: bool) -> i32 {
    fail(exit::FAILED, "doctor is not available yet")
}
