//! Which of the tools dscproute may call are installed.

use std::collections::BTreeMap;

/// Everything a plan, a check or the lab may run.
pub const TOOLS: [&str; 14] = [
    "ip",
    "iptables",
    "ip6tables",
    "iptables-save",
    "ip6tables-save",
    "iptables-restore",
    "ip6tables-restore",
    "nft",
    "tcpdump",
    "getent",
    "sysctl",
    "setpriv",
    "systemd-run",
    "groupadd",
];

/// Look every tool up with `find` (PATH search on a host, a table in tests).
pub(crate) fn find_tools(
    find: &dyn Fn(&str) -> Option<String>,
) -> BTreeMap<String, Option<String>> {
    TOOLS.iter().map(|t| (t.to_string(), find(t))).collect()
}

/// The production lookup: the same PATH search `SystemRunner` does, so a
/// tool listed here is one the runner can start.
pub fn find_in_path(name: &str) -> Option<String> {
    crate::runner::find_program(name).map(|p| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_gets_an_entry() {
        let tools = find_tools(&|name| (name == "ip").then(|| "/usr/bin/ip".to_string()));
        assert_eq!(tools.len(), TOOLS.len());
        assert_eq!(tools["ip"].as_deref(), Some("/usr/bin/ip"));
        assert_eq!(tools["nft"], None);
    }

    #[test]
    fn path_lookup_finds_sh() {
        assert!(find_in_path("sh").is_some());
        assert_eq!(find_in_path("dscproute-no-such-tool"), None);
    }
}
