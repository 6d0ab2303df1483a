//! Read-only facts about the host: groups, links, the marker's cgroup, routes, rules, table names,
//! sysctls, rulesets, tools. Nothing here changes the system.
//!
//! `probe()` gathers; one pure parser per kind of output turns text into
//! facts, so recorded outputs test them (tests/fixtures/probe/).

mod collect;
mod counters;
mod error;
mod facts;
mod files;
mod groups;
mod ip_batch;
mod links;
mod marker;
mod nft;
mod routes;
mod rt_tables;
mod rules;
mod sysctls;
mod tools;
mod unreadable;
mod versions;
mod xtables;

#[cfg(test)]
mod e2e_tests;
#[cfg(test)]
mod fixtures;

pub use collect::{ProbeEnv, Reads, probe, probe_system, probe_system_reading};
pub use counters::{CountedRule, counted_rules, read_counters};
pub use error::ParseError;
pub use facts::*;
pub use groups::parse_groups;
pub use links::parse_links;
pub use marker::{MarkerQuery, cgroup2_mount, resolve_marker, unit_cgroup};
pub use nft::{BaseChain, NftChain, NftTable, is_xtables_table, parse_nft_ruleset};
pub use routes::parse_routes;
pub use rt_tables::parse_rt_tables;
pub use rules::parse_rules;
pub use sysctls::{conf_key, sysctl_key};
pub use tools::{TOOLS, find_in_path};
pub use unreadable::{Fact, Reason, Source, Unreadable};
pub use versions::{parse_ip_version, parse_iptables_backend, parse_kernel};
pub use xtables::parse_xt_names;
