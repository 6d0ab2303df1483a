//! `dscproute persist` / `unpersist` (being written).

use super::{exit, fail};
use crate::apply::StateDir;
use std::path::Path;

pub fn persist_cmd(_state: &StateDir, _profile: &Path, _name: Option<&str>, _root: &Path) -> i32 {
    fail(exit::FAILED, "persist is not available yet")
}

pub fn unpersist_cmd(_name: &str, _root: &Path) -> i32 {
    fail(exit::FAILED, "unpersist is not available yet")
}
