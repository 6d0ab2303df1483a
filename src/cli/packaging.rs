//! `dscproute man` and `completions` (being written).

use super::{exit, fail};

pub fn man_cmd() -> i32 {
    fail(exit::FAILED, "man is not available yet")
}

pub fn completions_cmd(_shell: clap_complete::Shell) -> i32 {
    fail(exit::FAILED, "completions are not available yet")
}
