//! Read-only facts about the host: groups, links, routes, rules, table names,
//! sysctls, rulesets, tools. Nothing here changes the system.

mod facts;

pub use facts::*;
