//! `openwrt`: an fw4 include for a client router. fw4 (OpenWrt 22.03+)
//! includes every /etc/nftables.d/*.nft inside its `table inet fw4 { … }`,
//! so the snippet is a chain definition. The LAN's packets are forwarded
//! (no local socket owns them), so they are chosen by source prefix.

use super::{RecipeError, comment_block, gateway_check};
use crate::ownership::COMMENT;
use std::net::IpAddr;

pub const CHAIN: &str = "dscproute_mark";
pub const SNIPPET_PATH: &str = "/etc/nftables.d/50-dscproute.nft";

/// A source prefix as nft takes it: the network address, its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn parse(s: &str) -> Result<Prefix, String> {
        let accepted = "use an IPv4 or IPv6 prefix like 192.168.1.0/24 or fd00:1::/64, or one \
                        address";
        let shown = format!("{:?}", crate::text::clip(s));
        let (a, l) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{shown} is not an address or prefix: {accepted}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = if l.is_empty() && !s.contains('/') {
            max
        } else {
            match l.parse::<u8>() {
                Ok(n) if n <= max && l.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => {
                    return Err(format!(
                        "{shown}: the prefix length must be 0–{max}: {accepted}"
                    ));
                }
            }
        };
        let net = network(addr, len);
        if net != addr {
            return Err(format!(
                "{shown} has host bits set: did you mean {net}/{len}? {accepted}"
            ));
        }
        Ok(Prefix { addr, len })
    }

    fn family(self) -> &'static str {
        if self.addr.is_ipv4() { "ip" } else { "ip6" }
    }
}

fn network(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

impl std::fmt::Display for Prefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

pub fn render(source: &str, dscp: u8, src: &[String]) -> Result<String, RecipeError> {
    if src.is_empty() {
        return Err(RecipeError::NeedsSrc);
    }
    let prefixes = src
        .iter()
        .map(|s| Prefix::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(RecipeError::BadSrc)?;
    let list = prefixes
        .iter()
        .map(Prefix::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let header = comment_block(&[
        format!(
            "dscproute client recipe (openwrt) from {}: traffic this router forwards from \
             {list} leaves with DSCP {dscp}.",
            source.replace('\n', " ")
        ),
        format!(
            "What it does: fw4 includes this file inside its table inet fw4; it adds the chain \
             {CHAIN} (forward hook, priority mangle, before fw4's own filtering), which sets \
             the DSCP of every packet forwarded from those sources (not of the replies to \
             them). Only the six DSCP bits change; ECN stays. The router's own traffic is not \
             marked."
        ),
        "Flow offloading (Network > Firewall > Routing/NAT Offloading) sends the packets of an \
         established connection past this chain: turn it off, or only the first packets of \
         each connection carry the DSCP."
            .to_string(),
        format!(
            "Install on the router:\n  save this file as {SNIPPET_PATH}\n  fw4 reload\n\
             (or: /etc/init.d/firewall reload)"
        ),
        format!("Undo:\n  rm {SNIPPET_PATH}\n  fw4 reload"),
        format!(
            "Check on the router (the counters grow while a client sends):\n  nft list chain \
             inet fw4 {CHAIN}\nCheck on the gateway:\n  {}",
            gateway_check(dscp)
        ),
    ]);
    let mut rules = String::new();
    for p in &prefixes {
        let fam = p.family();
        rules.push_str(&format!(
            "\t{fam} saddr {p} {fam} dscp set {dscp} counter comment \"{COMMENT}\"\n"
        ));
    }
    Ok(format!(
        "{header}\nchain {CHAIN} {{\n\ttype filter hook forward priority mangle; policy accept;\n{rules}}}\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        for (s, want) in [
            ("192.168.1.0/24", "192.168.1.0/24"),
            ("192.168.1.7", "192.168.1.7/32"),
            ("fd00:1::/64", "fd00:1::/64"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("::/0", "::/0"),
        ] {
            assert_eq!(Prefix::parse(s).map(|p| p.to_string()), Ok(want.into()));
        }
        for (s, why) in [
            ("192.168.1.1/24", "did you mean 192.168.1.0/24"),
            ("192.168.1.0/33", "0–32"),
            ("fd00::/129", "0–128"),
            ("192.168.1.0/", "0–32"),
            ("192.168.1.0/+8", "0–32"),
            ("lan", "not an address"),
            ("", "not an address"),
            ("1.2.3.4\n/8", "not an address"),
        ] {
            let e = Prefix::parse(s).unwrap_err();
            assert!(e.contains(why) && !e.contains('\n'), "{s:?}: {e}");
        }
    }
}
