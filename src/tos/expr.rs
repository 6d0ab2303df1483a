//! The exact expression each tool takes for one DSCP. Units matter: the DSCP
//! target and nft take six bits, `-j TOS`, tcpdump's byte and `ip rule tos`
//! take the whole byte (design.md §1).

use super::{Dscp, Phb};
use serde::Serialize;

/// Everything a user can paste into a tool for one DSCP value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expressions {
    /// `-j DSCP --set-dscp 0x07` (mangle table only; iptables and ip6tables).
    pub iptables_set: String,
    /// `-j DSCP --set-dscp-class AF41`, only where iptables knows the name.
    pub iptables_set_class: Option<String>,
    /// `-m dscp --dscp 0x07`.
    pub iptables_match: String,
    /// `-j TOS --set-tos 0x1c/0xfc`: the TOS-target form that keeps ECN.
    pub iptables_set_tos: String,
    /// `ip dscp 7` (use `ip6 dscp 7` for IPv6).
    pub nft_match: String,
    pub nft_match_v6: String,
    /// `ip dscp set 7`.
    pub nft_set: String,
    pub nft_set_v6: String,
    /// nft's keyword for the value, where it has one (`af41`, `lephb`).
    pub nft_name: Option<String>,
    pub tcpdump_v4: String,
    pub tcpdump_v6: String,
    /// Both families, bracketed: tcpdump's `and`/`or` have equal precedence.
    pub tcpdump: String,
    pub wireshark_v4: String,
    pub wireshark_v6: String,
    /// Wireshark's filter for either family.
    pub wireshark: String,
    pub ip_rule: IpRuleTos,
}

/// What the `ip rule` selectors would do with this DSCP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IpRuleTos {
    /// `tos 0x1c` for IPv4, or `None` when the kernel refuses the value.
    pub v4_selector: Option<String>,
    /// Other DSCPs the IPv4 selector also matches (only the 0x1c bits count).
    pub v4_also_matches: Vec<u8>,
    /// `tos 0x1c` for IPv6: an exact DSCP match.
    pub v6_selector: String,
    /// `dscp 7`: exact on both families, newer kernels only.
    pub dscp_selector: String,
    pub dscp_selector_requires: &'static str,
}

/// The only bits of the byte an IPv4 `ip rule tos` compares.
const IPV4_RULE_TOS_MASK: u8 = 0x1c;

impl Expressions {
    pub fn of(dscp: Dscp) -> Expressions {
        let v = dscp.value();
        let byte = dscp.to_byte().value();
        let phb = Phb::of(dscp);
        let tcpdump_v4 = format!("(ip[1] & 0xfc) >> 2 == {v}");
        let tcpdump_v6 = format!("(ip6[0:2] & 0x0fc0) >> 6 == {v}");
        let wireshark_v4 = format!("ip.dsfield.dscp == {v}");
        let wireshark_v6 = format!("ipv6.tclass.dscp == {v}");
        Expressions {
            iptables_set: format!("-j DSCP --set-dscp {v:#04x}"),
            iptables_set_class: phb
                .and_then(Phb::iptables_class)
                .map(|c| format!("-j DSCP --set-dscp-class {c}")),
            iptables_match: format!("-m dscp --dscp {v:#04x}"),
            iptables_set_tos: format!("-j TOS --set-tos {byte:#04x}/0xfc"),
            nft_match: format!("ip dscp {v}"),
            nft_match_v6: format!("ip6 dscp {v}"),
            nft_set: format!("ip dscp set {v}"),
            nft_set_v6: format!("ip6 dscp set {v}"),
            nft_name: phb.and_then(Phb::nft_name),
            tcpdump: format!("(ip and {tcpdump_v4}) or (ip6 and {tcpdump_v6})"),
            wireshark: format!("{wireshark_v4} || {wireshark_v6}"),
            tcpdump_v4,
            tcpdump_v6,
            wireshark_v4,
            wireshark_v6,
            ip_rule: IpRuleTos::of(dscp),
        }
    }
}

impl IpRuleTos {
    pub fn of(dscp: Dscp) -> IpRuleTos {
        let byte = dscp.to_byte().value();
        let accepted = byte & !IPV4_RULE_TOS_MASK == 0;
        IpRuleTos {
            v4_selector: accepted.then(|| format!("tos {byte:#04x}")),
            v4_also_matches: if accepted {
                Dscp::all()
                    .filter(|d| *d != dscp && d.to_byte().value() & IPV4_RULE_TOS_MASK == byte)
                    .map(Dscp::value)
                    .collect()
            } else {
                Vec::new()
            },
            v6_selector: format!("tos {byte:#04x}"),
            dscp_selector: format!("dscp {}", dscp.value()),
            dscp_selector_requires: "Linux ≥ 6.12 and iproute2 ≥ 6.13",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(v: u8) -> Expressions {
        Expressions::of(Dscp::new(v).unwrap())
    }

    #[test]
    fn guide_values_for_7() {
        let x = e(7);
        assert_eq!(x.iptables_set, "-j DSCP --set-dscp 0x07");
        assert_eq!(x.iptables_match, "-m dscp --dscp 0x07");
        assert_eq!(x.iptables_set_tos, "-j TOS --set-tos 0x1c/0xfc");
        assert_eq!(x.iptables_set_class, None);
        assert_eq!(x.nft_match, "ip dscp 7");
        assert_eq!(x.nft_set, "ip dscp set 7");
        assert_eq!(x.tcpdump_v4, "(ip[1] & 0xfc) >> 2 == 7");
        assert_eq!(x.tcpdump_v6, "(ip6[0:2] & 0x0fc0) >> 6 == 7");
        assert_eq!(
            x.tcpdump,
            "(ip and (ip[1] & 0xfc) >> 2 == 7) or (ip6 and (ip6[0:2] & 0x0fc0) >> 6 == 7)"
        );
        assert_eq!(x.wireshark_v4, "ip.dsfield.dscp == 7");
        assert_eq!(x.ip_rule.v4_selector.as_deref(), Some("tos 0x1c"));
        assert_eq!(x.ip_rule.v4_also_matches, [15, 23, 31, 39, 47, 55, 63]);
    }

    #[test]
    fn every_dscp_has_every_expression() {
        for d in Dscp::all() {
            let v = d.value();
            let x = Expressions::of(d);
            assert_eq!(x.iptables_set, format!("-j DSCP --set-dscp 0x{v:02x}"));
            assert_eq!(x.iptables_match, format!("-m dscp --dscp 0x{v:02x}"));
            assert_eq!(
                x.iptables_set_tos,
                format!("-j TOS --set-tos 0x{:02x}/0xfc", v * 4)
            );
            assert!(x.nft_match.ends_with(&format!(" {v}")));
            assert!(x.tcpdump.starts_with('(') && x.tcpdump.ends_with(')'));
            assert_eq!(x.tcpdump.matches(&format!("== {v})")).count(), 2);
            // IPv4 ip rule: accepted exactly for DSCP 0..=7, eight values share a selector.
            assert_eq!(x.ip_rule.v4_selector.is_some(), v < 8, "DSCP {v}");
            if v < 8 {
                assert_eq!(x.ip_rule.v4_also_matches.len(), 7);
                assert!(x.ip_rule.v4_also_matches.iter().all(|o| o % 8 == v));
            }
        }
    }

    #[test]
    fn iptables_class_only_for_known_names() {
        assert_eq!(
            e(34).iptables_set_class.as_deref(),
            Some("-j DSCP --set-dscp-class AF41")
        );
        assert_eq!(
            e(46).iptables_set_class.as_deref(),
            Some("-j DSCP --set-dscp-class EF")
        );
        assert_eq!(e(1).iptables_set_class, None); // LE unknown to iptables
        assert_eq!(e(44).iptables_set_class, None); // VA unknown to iptables
        assert_eq!(e(1).nft_name.as_deref(), Some("lephb"));
    }
}
