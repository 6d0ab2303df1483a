//! Who else uses firewall marks, rule priorities and tables on this host, and
//! the software most likely behind each (design.md §5).

use super::ruleset::Ruleset;
use crate::ownership::{CHAIN_PREFIX, is_our_proto};
use crate::probe::HostFacts;
use crate::profile::parse_u32;

/// One use of mark bits by something other than dscproute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkUse {
    pub value: u32,
    pub mask: u32,
    /// What it is, e.g. "ip rule 5270: fwmark 0x80000/0xff0000 lookup 52".
    pub what: String,
}

impl MarkUse {
    /// Would a packet carrying `value` in `mask` look like this use's mark?
    pub fn same_bits(&self, value: u32, mask: u32) -> bool {
        let shared = self.mask & mask;
        shared != 0 && self.value & shared == value & shared
    }

    pub fn overlaps(&self, mask: u32) -> bool {
        self.mask & mask != 0
    }
}

/// The software a mark, priority or table number usually belongs to.
pub fn likely_owner(
    value: Option<u32>,
    mask: Option<u32>,
    priority: Option<u32>,
    table: Option<&str>,
) -> Option<&'static str> {
    let table_num = table.and_then(|t| t.parse::<u32>().ok());
    match (value, mask, priority, table_num) {
        (Some(0x40000 | 0x80000), _, _, _) | (_, _, Some(5210..=5270), _) | (_, _, _, Some(52)) => {
            Some("Tailscale")
        }
        (Some(0xca6c), _, _, _) | (_, _, _, Some(51820)) | (_, _, Some(32764 | 32765), _) => {
            Some("wg-quick")
        }
        (Some(0x6d6f6c65), _, _, _) | (_, _, _, Some(1836018789)) => Some("Mullvad"),
        (Some(0x4000 | 0x8000), _, _, _) => Some("Kubernetes (kube-proxy)"),
        (_, Some(0xffff0000), _, _) => Some("Calico"),
        (_, Some(0x0f00), _, _) => Some("Cilium"),
        (Some(0x20000), _, _, _) => Some("Weave"),
        (_, Some(0x3f00), _, _) => Some("mwan3"),
        (_, Some(0xff0000), _, _) | (_, _, Some(29000..=30000), _) => Some("OpenWrt pbr"),
        (_, _, Some(110), _) | (_, _, _, Some(110)) => Some("NetBird"),
        _ => None,
    }
}

/// " (likely Tailscale)" or "".
pub fn owner_suffix(owner: Option<&str>) -> String {
    owner.map(|o| format!(" (likely {o})")).unwrap_or_default()
}

/// Every mark use on the host that is not ours: policy rules and iptables
/// rules outside our chains.
pub fn other_mark_uses(facts: &HostFacts) -> Vec<MarkUse> {
    let mut uses = Vec::new();
    for (fam, rules) in [("", &facts.rules_v4), ("-6 ", &facts.rules_v6)] {
        for r in rules {
            let (Some(v), false) = (r.fwmark, is_our_proto(r.protocol.as_deref())) else {
                continue;
            };
            let mask = r.fwmask.unwrap_or(u32::MAX);
            let target = match (&r.table, &r.action) {
                (_, Some(a)) => a.clone(),
                (Some(t), None) => format!("lookup {t}"),
                _ => String::new(),
            };
            let owner = likely_owner(Some(v), Some(mask), Some(r.priority), r.table.as_deref());
            uses.push(MarkUse {
                value: v,
                mask,
                what: format!(
                    "ip {fam}rule {}: {}fwmark {v:#x}/{mask:#x} {target}{}",
                    r.priority,
                    if r.not { "not " } else { "" },
                    owner_suffix(owner)
                ),
            });
        }
    }
    for (tool, table, chain, spec) in foreign_iptables_rules(facts) {
        for (value, mask) in marks_in_spec(&spec) {
            let owner = likely_owner(Some(value), Some(mask), None, None);
            uses.push(MarkUse {
                value,
                mask,
                what: format!("{tool} -t {table} -A {chain} {spec}{}", owner_suffix(owner)),
            });
        }
    }
    uses
}

/// Every iptables/ip6tables rule outside our chains, as (tool, table, chain, spec).
pub fn foreign_iptables_rules(facts: &HostFacts) -> Vec<(&'static str, String, String, String)> {
    let mut out = Vec::new();
    for (tool, save) in [
        ("iptables", &facts.iptables_save),
        ("ip6tables", &facts.ip6tables_save),
    ] {
        let Some(save) = save else { continue };
        for (table, chain, spec) in Ruleset::parse(save).rules() {
            if !chain.starts_with(CHAIN_PREFIX) {
                out.push((tool, table.to_string(), chain.to_string(), spec.to_string()));
            }
        }
    }
    out
}

/// Mark values/masks a rule sets or matches: `--set-xmark V/M`, `--set-mark V[/M]`,
/// `--mark V[/M]`, `--or-mark V`, `--and-mark V`, `--xor-mark V`.
pub fn marks_in_spec(spec: &str) -> Vec<(u32, u32)> {
    let words: Vec<&str> = spec.split_whitespace().collect();
    let mut out = Vec::new();
    for pair in words.windows(2) {
        let (opt, arg) = (pair[0], pair[1]);
        if !matches!(
            opt,
            "--set-xmark" | "--set-mark" | "--mark" | "--or-mark" | "--xor-mark" | "--and-mark"
        ) {
            continue;
        }
        let (v, m) = match arg.split_once('/') {
            Some((v, m)) => (parse_u32(v), parse_u32(m)),
            None => (parse_u32(arg), Some(u32::MAX)),
        };
        if let (Some(v), Some(m)) = (v, m) {
            // --or/--xor/--and touch the bits named by the value itself.
            let m = match opt {
                "--or-mark" | "--xor-mark" => v,
                "--and-mark" => !v,
                _ => m,
            };
            out.push((v & m, m));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_from_the_guide() {
        assert_eq!(
            likely_owner(Some(0x80000), Some(0xff0000), Some(5270), Some("52")),
            Some("Tailscale")
        );
        assert_eq!(
            likely_owner(Some(0xca6c), None, Some(32765), None),
            Some("wg-quick")
        );
        assert_eq!(
            likely_owner(Some(0x4000), Some(0x4000), None, None),
            Some("Kubernetes (kube-proxy)")
        );
        assert_eq!(
            likely_owner(Some(0x100), Some(0x3f00), None, None),
            Some("mwan3")
        );
        assert_eq!(
            likely_owner(Some(0x3), Some(0xff), Some(10000), Some("100")),
            None
        );
    }

    #[test]
    fn marks_in_iptables_specs() {
        assert_eq!(
            marks_in_spec("-j MARK --set-xmark 0x4000/0x4000"),
            [(0x4000, 0x4000)]
        );
        assert_eq!(
            marks_in_spec("-m mark --mark 0xca6c -j ACCEPT"),
            [(0xca6c, u32::MAX)]
        );
        assert_eq!(marks_in_spec("-j MARK --or-mark 0x100"), [(0x100, 0x100)]);
        assert!(marks_in_spec("-m dscp --dscp 0x07 -j ACCEPT").is_empty());
    }

    #[test]
    fn bit_overlap() {
        let u = MarkUse {
            value: 0x6c,
            mask: 0xff,
            what: String::new(),
        };
        assert!(u.overlaps(0xff));
        assert!(!u.same_bits(0x3, 0xff));
        assert!(u.same_bits(0x6c, 0xff));
        assert!(!u.overlaps(0xff00));
    }
}
