//! The sysctls a DSCP gateway depends on, read from `<root>/proc/sys`.
//!
//! Keys use sysctl(8)'s dotted names. An interface name may itself contain
//! dots (vlan "eth0.10"); sysctl(8) writes those as '/' ("net.ipv4.conf.
//! eth0/10.rp_filter") so the key stays unambiguous and `sysctl -w` takes it
//! back. The file path just uses the name as one component:
//! /proc/sys/net/ipv4/conf/eth0.10/rp_filter.

use super::unreadable::{Fact, Reason, Source, Unreadable};
use std::collections::BTreeMap;
use std::path::Path;

/// Forwarding (gateway) and reverse-path filtering (the kernel uses
/// max(all, interface)), plus src_valid_mark for the CONNMARK fix.
const GLOBAL: [&[&str]; 5] = [
    &["net", "ipv4", "ip_forward"],
    &["net", "ipv6", "conf", "all", "forwarding"],
    &["net", "ipv4", "conf", "all", "rp_filter"],
    &["net", "ipv4", "conf", "default", "rp_filter"],
    &["net", "ipv4", "conf", "all", "src_valid_mark"],
];

/// (family, leaf) read for every link.
const PER_LINK: [(&str, &str); 3] = [
    ("ipv4", "rp_filter"),
    ("ipv4", "src_valid_mark"),
    ("ipv6", "disable_ipv6"),
];

/// sysctl(8)'s name for a /proc/sys path given as components.
pub fn sysctl_key(components: &[&str]) -> String {
    components
        .iter()
        .map(|c| c.replace('.', "/"))
        .collect::<Vec<_>>()
        .join(".")
}

/// Key of a per-interface setting: ("ipv4", "eth0.10", "rp_filter") ->
/// "net.ipv4.conf.eth0/10.rp_filter".
pub fn conf_key(family: &str, ifname: &str, leaf: &str) -> String {
    sysctl_key(&["net", family, "conf", ifname, leaf])
}

/// Read the global sysctls and the per-link ones of `links`. Missing or
/// unreadable files come back as notes (IPv6 disabled at boot removes
/// net/ipv6 entirely: worth knowing).
pub(crate) fn read_sysctls(
    root: &Path,
    links: &[String],
) -> (BTreeMap<String, String>, Vec<Unreadable>) {
    let mut wanted: Vec<Vec<&str>> = GLOBAL.iter().map(|c| c.to_vec()).collect();
    for link in links.iter().filter(|l| is_path_component(l)) {
        for (family, leaf) in PER_LINK {
            wanted.push(vec!["net", family, "conf", link.as_str(), leaf]);
        }
    }

    let mut values = BTreeMap::new();
    let mut notes = Vec::new();
    for components in wanted {
        let mut path = root.join("proc/sys");
        path.extend(&components);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                values.insert(sysctl_key(&components), text.trim().to_string());
            }
            Err(e) => notes.push(Unreadable::new(
                Fact::Sysctls,
                Source::Path(format!("/proc/sys/{}", components.join("/"))),
                Reason::Io {
                    error: e.to_string(),
                    root_hint: false,
                },
            )),
        }
    }
    (values, notes)
}

/// The kernel refuses such interface names anyway; checking keeps a bad
/// name from walking out of /proc/sys.
fn is_path_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_sysctl_naming() {
        assert_eq!(
            conf_key("ipv4", "wg0", "rp_filter"),
            "net.ipv4.conf.wg0.rp_filter"
        );
        // As `sysctl -a` printed it in the recording namespace
        // (tests/fixtures/probe/sysctl-dotted-name.txt).
        assert_eq!(
            conf_key("ipv4", "eth0.10", "rp_filter"),
            "net.ipv4.conf.eth0/10.rp_filter"
        );
        assert_eq!(
            sysctl_key(&["net", "ipv4", "ip_forward"]),
            "net.ipv4.ip_forward"
        );
    }

    #[test]
    fn reads_files_and_notes_missing_ones() {
        let root = tempfile::tempdir().unwrap();
        let write = |rel: &str, text: &str| {
            let path = root.path().join("proc/sys").join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write("net/ipv4/ip_forward", "1\n");
        write("net/ipv4/conf/eth0.10/rp_filter", "2\n");
        let links = ["eth0.10".to_string(), "../../etc".to_string()];
        let (values, notes) = read_sysctls(root.path(), &links);
        assert_eq!(
            values.get("net.ipv4.ip_forward").map(String::as_str),
            Some("1")
        );
        assert_eq!(
            values
                .get("net.ipv4.conf.eth0/10.rp_filter")
                .map(String::as_str),
            Some("2")
        );
        assert_eq!(values.len(), 2);
        // 5 globals + 3 for eth0.10, minus the two found; the bad name is skipped.
        assert_eq!(notes.len(), 6, "{notes:?}");
        assert!(notes.iter().all(|n| n.fact() == Some(Fact::Sysctls)));
        let notes: Vec<String> = notes.iter().map(ToString::to_string).collect();
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with("/proc/sys/net/ipv6/conf/eth0.10/disable_ipv6: "))
        );
        assert!(notes.iter().all(|n| !n.contains("etc")));
    }
}
