//! A gateway behind another firewall on nftables: base chains of every
//! table run on the forward hook, and a drop in any of them is final, so
//! our accept (or our marks) never lets a packet through fw4's or
//! firewalld's forward chain. Say so, with the fix for that firewall.

use super::Check;
use crate::probe::{HostFacts, parse_nft_ruleset};

const LOOKED: &str = "nft list ruleset: tables of other firewalls with a forward base chain";

/// A WARN when fw4 or firewalld filters forwarding on this gateway; None
/// when neither is there (or the ruleset could not be read).
pub fn forward(facts: &HostFacts, vpn: &str) -> Option<Check> {
    let tables = parse_nft_ruleset(facts.nft_ruleset.as_deref()?);
    let forwards = |name: &str| {
        tables.iter().any(|t| {
            t.family == "inet"
                && t.name == name
                && t.chains
                    .iter()
                    .any(|c| c.base.as_ref().is_some_and(|b| b.hook == "forward"))
        })
    };
    if forwards("firewalld") {
        return Some(Check::warn(
            "forward-firewall",
            format!(
                "firewalld filters forwarding in its own table (inet firewalld): a drop there \
                 still drops the LAN's traffic to {vpn}, whatever dscproute accepts or marks; \
                 forwarding to the VPN needs a firewalld policy"
            ),
            LOOKED,
            format!(
                "firewall-cmd --permanent --new-policy lan-vpn && firewall-cmd --permanent \
                 --policy lan-vpn --add-ingress-zone LAN_ZONE --add-egress-zone \"$(firewall-cmd \
                 --get-zone-of-interface={vpn})\" --set-target ACCEPT && firewall-cmd --reload \
                 (LAN_ZONE: `firewall-cmd --get-zone-of-interface=LAN_IF`)"
            ),
        ));
    }
    // fw4 names the interfaces of its zones in its rules: one naming the
    // VPN interface means it has been given a zone.
    let quoted = format!("\"{vpn}\"");
    let fw4_knows_vpn = tables.iter().any(|t| {
        t.family == "inet"
            && t.name == "fw4"
            && t.chains
                .iter()
                .any(|c| c.rules.iter().any(|r| r.contains(&quoted)))
    });
    if forwards("fw4") && !fw4_knows_vpn {
        return Some(Check::warn(
            "forward-firewall",
            format!(
                "fw4 (OpenWrt) filters forwarding in table inet fw4: a drop there still drops \
                 the LAN's traffic to {vpn}; it needs a zone holding {vpn} and a forwarding \
                 from lan to it"
            ),
            LOOKED,
            "uci add firewall forwarding && uci set firewall.@forwarding[-1].src=lan && uci set \
             firewall.@forwarding[-1].dest=VPN_ZONE && uci commit firewall && service firewall \
             restart (VPN_ZONE: the zone whose network holds the VPN interface)",
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(ruleset: &str) -> HostFacts {
        HostFacts {
            nft_ruleset: Some(ruleset.into()),
            ..HostFacts::default()
        }
    }

    const FORWARD: &str = "\tchain filter_FORWARD {\n\t\ttype filter hook forward priority filter + 10; policy accept;\n\t\treject with icmpx admin-prohibited\n\t}\n";

    #[test]
    fn firewalld_needs_a_policy_for_forwarding_to_the_vpn() {
        let c = forward(
            &facts(&format!("table inet firewalld {{\n{FORWARD}}}\n")),
            "wg0",
        )
        .expect("a warning");
        assert_eq!(c.status, super::super::Status::Warn);
        let fix = c.fix.unwrap();
        assert!(
            fix.contains("--new-policy") && fix.contains("--get-zone-of-interface=wg0"),
            "{fix}"
        );
    }

    #[test]
    fn fw4_needs_a_forwarding() {
        let c = forward(&facts(&format!("table inet fw4 {{\n{FORWARD}}}\n")), "wg0").unwrap();
        assert!(c.fix.unwrap().contains("uci add firewall forwarding"));
    }

    #[test]
    fn fw4_with_the_vpn_in_a_zone_says_nothing() {
        let zoned = format!(
            "table inet fw4 {{\n{FORWARD}\tchain forward_lan {{\n\t\toifname \"wg0\" jump accept_to_vpn\n\t}}\n}}\n"
        );
        assert_eq!(forward(&facts(&zoned), "wg0"), None);
    }

    #[test]
    fn others_and_no_forward_chain_say_nothing() {
        assert_eq!(
            forward(
                &facts(&format!("table inet other {{\n{FORWARD}}}\n")),
                "wg0"
            ),
            None
        );
        let input_only = "table inet firewalld {\n\tchain filter_INPUT {\n\t\ttype filter hook input priority filter + 10; policy accept;\n\t}\n}\n";
        assert_eq!(forward(&facts(input_only), "wg0"), None);
        assert_eq!(forward(&HostFacts::default(), "wg0"), None);
    }
}
