//! What the probe learns about a host, as plain data. Plans are computed from
//! this alone, so tests can load recorded facts from JSON fixtures.

use super::Unreadable;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// Keys a recording must hold for a plan to mean anything: without them a
/// plan would silently assume an empty host (no groups, no rules, not root).
/// Every one is written by `dscproute facts --json`; the others may be absent
/// (older recordings, or not known), which reads as "unknown".
pub const REQUIRED_KEYS: &[&str] = &[
    "is_root",
    "tools",
    "groups",
    "links",
    "routes_v4",
    "routes_v6",
    "rules_v4",
    "rules_v6",
    "rt_tables",
    "sysctls",
    "iptables_save",
    "ip6tables_save",
    "unreadable",
];

/// Why recorded facts were refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum FactsError {
    #[error("not JSON: {0}")]
    NotJson(String),
    #[error("not a facts object: the top level is {0}, not an object")]
    NotObject(&'static str),
    #[error("incomplete: {} missing", .0.join(", "))]
    Missing(Vec<&'static str>),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HostFacts {
    /// Effective uid 0.
    pub is_root: bool,
    /// `uname -r`, e.g. "6.18.44".
    pub kernel: Option<String>,
    /// `ip -V` version, e.g. "6.1.0".
    pub iproute2_version: Option<String>,
    /// Tool name -> absolute path, for every tool looked for; missing tools map to None.
    pub tools: BTreeMap<String, Option<String>>,
    pub iptables_backend: Option<IptablesBackend>,
    pub groups: Vec<Group>,
    pub links: Vec<Link>,
    /// `ip -j -4 route show table all`.
    pub routes_v4: Vec<Route>,
    /// `ip -j -6 route show table all`.
    pub routes_v6: Vec<Route>,
    pub rules_v4: Vec<Rule>,
    pub rules_v6: Vec<Rule>,
    /// Routing table names from every rt_tables location, in reading order.
    pub rt_tables: Vec<RtTable>,
    /// Sysctl key (dotted, e.g. "net.ipv4.conf.all.rp_filter") -> value; absent when unreadable.
    /// A dot inside an interface name is written '/' as sysctl(8) does
    /// ("net.ipv4.conf.eth0/10.rp_filter"); see `conf_sysctl`.
    pub sysctls: BTreeMap<String, String>,
    /// `iptables-save` output (None when the tool is missing or it failed, e.g. not root).
    pub iptables_save: Option<String>,
    pub ip6tables_save: Option<String>,
    /// `nft list ruleset` (root only, when nft is installed): native nftables
    /// chains run on the same hooks as our rules. None when not read.
    pub nft_ruleset: Option<String>,
    /// `iptables-legacy-save` / `ip6tables-legacy-save` when iptables uses
    /// nf_tables but the kernel also holds legacy tables: their rules run on
    /// the same hooks too. None when there are none or they were not read.
    pub iptables_legacy_save: Option<String>,
    pub ip6tables_legacy_save: Option<String>,
    /// Netfilter matches/targets the kernel has loaded or can load, when known
    /// (from /proc/net/ip_tables_matches, _targets); empty = unknown.
    pub xt_matches: Vec<String>,
    pub xt_targets: Vec<String>,
    /// Things the probe could not read, each with why (shown as plan
    /// warnings; one line each in JSON).
    pub unreadable: Vec<Unreadable>,
    /// Where the cgroup v2 hierarchy is mounted (/proc/self/mountinfo):
    /// /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid ones.
    pub cgroup2: Option<String>,
    /// The user a `user` marker names, as `getent passwd` resolves it (only
    /// that one; `probe::resolve_marker`).
    pub users: Vec<User>,
    /// A `unit` marker's unit -> its cgroup v2 path (no leading '/'), None
    /// when it is not running. Absent: not asked (no systemd, other facts).
    pub units: BTreeMap<String, Option<String>>,
    /// The cgroup path a `cgroup` or `unit` marker matches -> its inode
    /// number (the cgroup's id, never reused) when it exists, None when not.
    pub cgroups: BTreeMap<String, Option<u64>>,
    /// Uplinks the agent's active checks hold down (never probed: the agent
    /// sets them), so the plan routes their classes through the next one.
    #[serde(skip)]
    pub unhealthy: Vec<Unhealthy>,
}

/// A class's uplink whose active check failed (`fails` losses in a row, and
/// not yet `fails` answers in a row since).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unhealthy {
    pub class: String,
    pub interface: String,
    /// For people: "no answer from 10.9.0.1 3 times in a row".
    pub why: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    pub name: String,
    pub uid: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IptablesBackend {
    NfTables,
    Legacy,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Link {
    pub name: String,
    pub index: u32,
    /// operstate: UP, DOWN, UNKNOWN (tunnels often say UNKNOWN), LOWERLAYERDOWN…
    pub state: String,
    /// Flags as `ip` prints them: UP, LOWER_UP, POINTOPOINT, NOARP…
    pub flags: Vec<String>,
    /// link_type: ether, none (wireguard), loopback…
    pub link_type: String,
    pub addrs: Vec<Addr>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Addr {
    /// "inet" or "inet6".
    pub family: String,
    pub local: String,
    pub prefixlen: u8,
    /// Peer address of a point-to-point link, if any.
    pub peer: Option<String>,
    pub scope: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Route {
    /// "default", "10.0.0.0/24", "198.51.100.1" (host route).
    pub dst: String,
    /// unicast (when `ip` omits it), unreachable, blackhole, local, broadcast…
    pub kind: String,
    pub gateway: Option<String>,
    pub dev: Option<String>,
    /// Table as printed: "main", "local", "100", or a name.
    pub table: String,
    /// Protocol as printed: "kernel", "static", "77"…; None means "boot",
    /// which `ip` does not print (it is what a bare `ip route add` sets).
    pub protocol: Option<String>,
    pub metric: Option<u32>,
    pub scope: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rule {
    pub priority: u32,
    /// "all" or a prefix ("10.64.0.0/16"; a host address has no length).
    pub src: Option<String>,
    pub dst: Option<String>,
    /// fwmark value and mask as numbers (mask 0xffffffff when `ip` printed none).
    pub fwmark: Option<u32>,
    pub fwmask: Option<u32>,
    pub not: bool,
    /// Table looked up ("main", "100", a name), when the action is a lookup.
    pub table: Option<String>,
    /// "unreachable", "blackhole", "prohibit", "goto N", "nop", … when not a lookup.
    pub action: Option<String>,
    /// As printed ("77", "static"…); None means unspec or kernel, which `ip` does not print.
    pub protocol: Option<String>,
    pub suppress_prefixlength: Option<u32>,
    pub iif: Option<String>,
    pub oif: Option<String>,
    /// `tos`/`dsfield` selector as printed: the whole byte in hex ("0x1c"), or
    /// its rt_dsfield name when it has one ("EF" for 0xb8).
    pub tos: Option<String>,
    /// `dscp` selector (iproute2 ≥ 6.13) as printed: the 6-bit value in
    /// decimal ("7"), or the rt_dsfield name of its byte ("EF" for 46);
    /// see `Rule::dscp_value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dscp: Option<String>,
    /// `dscp_mask` (iproute2 ≥ 6.15 with a kernel ≥ 6.15): 0x3f is exact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dscp_mask: Option<u8>,
}

impl Rule {
    /// The exact DSCP this rule selects, when it selects one we can read:
    /// a decimal number or a name from iproute2's stock rt_dsfield (a
    /// locally added name, or a partial mask, reads as None).
    pub fn dscp_value(&self) -> Option<u8> {
        if self.dscp_mask.is_some_and(|m| m != 0x3f) {
            return None;
        }
        super::rules::dscp_of(self.dscp.as_deref()?)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RtTable {
    pub id: u32,
    pub name: String,
    /// The file it was read from.
    pub source: String,
}

impl HostFacts {
    /// Recorded facts (`dscproute facts --json`), refused when they are not
    /// an object holding every key of `REQUIRED_KEYS` with the right types.
    /// Error texts quote at most 40 characters of the input.
    pub fn from_json(text: &str) -> Result<HostFacts, FactsError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| FactsError::NotJson(crate::text::clip_quoted(&e.to_string())))?;
        let Some(object) = value.as_object() else {
            return Err(FactsError::NotObject(match value {
                serde_json::Value::Null => "null",
                serde_json::Value::Bool(_) => "a boolean",
                serde_json::Value::Number(_) => "a number",
                serde_json::Value::String(_) => "a string",
                _ => "an array",
            }));
        };
        let missing: Vec<&'static str> = REQUIRED_KEYS
            .iter()
            .copied()
            .filter(|k| !object.contains_key(*k))
            .collect();
        if !missing.is_empty() {
            return Err(FactsError::Missing(missing));
        }
        serde_json::from_value(value)
            .map_err(|e| FactsError::Invalid(crate::text::clip_quoted(&e.to_string())))
    }

    pub fn has_tool(&self, name: &str) -> bool {
        matches!(self.tools.get(name), Some(Some(_)))
    }

    pub fn group_by_name(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    pub fn group_by_gid(&self, gid: u32) -> Option<&Group> {
        self.groups.iter().find(|g| g.gid == gid)
    }

    pub fn user_by_name(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn link(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    pub fn sysctl(&self, key: &str) -> Option<&str> {
        self.sysctls.get(key).map(String::as_str)
    }

    /// A per-interface sysctl, e.g. ("ipv4", "eth0.10", "rp_filter"); spares
    /// callers sysctl(8)'s '/' for dots in interface names.
    pub fn conf_sysctl(&self, family: &str, ifname: &str, leaf: &str) -> Option<&str> {
        self.sysctl(&super::sysctls::conf_key(family, ifname, leaf))
    }

    /// Table id for a name from rt_tables (numbers pass through).
    pub fn table_id(&self, name: &str) -> Option<u32> {
        if let Ok(n) = name.parse() {
            return Some(n);
        }
        match name {
            "local" => Some(255),
            "main" => Some(254),
            "default" => Some(253),
            "unspec" => Some(0),
            _ => self.rt_tables.iter().find(|t| t.name == name).map(|t| t.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recording_round_trips() {
        let f = HostFacts {
            is_root: true,
            ..HostFacts::default()
        };
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(HostFacts::from_json(&text).unwrap(), f);
    }

    #[test]
    fn an_empty_object_names_every_missing_key() {
        let e = HostFacts::from_json("{}").unwrap_err();
        assert_eq!(e, FactsError::Missing(REQUIRED_KEYS.to_vec()));
        assert!(
            e.to_string()
                .starts_with("incomplete: is_root, tools, groups")
        );
    }

    #[test]
    fn one_missing_key_is_named() {
        let mut v = serde_json::to_value(HostFacts::default()).unwrap();
        v.as_object_mut().unwrap().remove("rules_v6");
        let e = HostFacts::from_json(&v.to_string()).unwrap_err();
        assert_eq!(e.to_string(), "incomplete: rules_v6 missing");
    }

    #[test]
    fn wrong_shapes_are_refused_with_clipped_quotes() {
        assert!(matches!(
            HostFacts::from_json("[1]"),
            Err(FactsError::NotObject("an array"))
        ));
        assert!(matches!(
            HostFacts::from_json("nope"),
            Err(FactsError::NotJson(_))
        ));
        let mut v = serde_json::to_value(HostFacts::default()).unwrap();
        v["iptables_backend"] = serde_json::Value::String("x".repeat(10_000));
        let e = HostFacts::from_json(&v.to_string())
            .unwrap_err()
            .to_string();
        assert!(e.len() < 300 && e.contains('…'), "{e}");
    }
}
