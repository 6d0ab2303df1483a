//! dscproute: carry a routing decision from a client host to its gateway in
//! the DSCP bits of the IP header. Library behind the `dscproute` binary.

pub mod agent;
pub mod apply;
pub mod backend;
pub mod cli;
pub mod doctor;
pub mod explain;
pub mod input_file;
pub mod ops;
pub mod output;
pub mod ownership;
pub mod persist;
pub mod plan;
pub mod probe;
pub mod profile;
pub mod recipe;
pub mod runner;
pub mod safe_fs;
pub mod text;
pub mod tos;
pub mod tui;
pub mod watch;
