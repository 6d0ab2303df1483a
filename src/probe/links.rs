//! `ip -j addr show`: links with their addresses.

use super::error::ParseError;
use super::{Addr, Link};
use serde::Deserialize;

#[derive(Deserialize)]
struct RawLink {
    ifname: Option<String>,
    #[serde(default)]
    ifindex: u32,
    #[serde(default)]
    operstate: String,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    link_type: String,
    #[serde(default)]
    addr_info: Vec<RawAddr>,
}

#[derive(Deserialize)]
struct RawAddr {
    family: Option<String>,
    local: Option<String>,
    #[serde(default)]
    prefixlen: u8,
    /// The peer of a point-to-point address ("10.64.0.2 peer 10.64.0.1").
    address: Option<String>,
    #[serde(default)]
    scope: String,
}

pub fn parse_links(json: &str) -> Result<Vec<Link>, ParseError> {
    let raw: Vec<RawLink> = serde_json::from_str(json)?;
    Ok(raw
        .into_iter()
        // `ip -j addr show` with a family filter prints empty objects for
        // links it filtered out; they carry no name.
        .filter_map(|l| {
            Some(Link {
                name: l.ifname?,
                index: l.ifindex,
                state: l.operstate,
                flags: l.flags,
                link_type: l.link_type,
                addrs: l.addr_info.into_iter().filter_map(addr).collect(),
            })
        })
        .collect())
}

fn addr(a: RawAddr) -> Option<Addr> {
    Some(Addr {
        family: a.family?,
        local: a.local?,
        prefixlen: a.prefixlen,
        peer: a.address,
        scope: a.scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::fixtures;

    #[test]
    fn recorded_namespace_links() {
        let links = parse_links(fixtures::IP_ADDR).unwrap();
        let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(
            names,
            ["lo", "eth1", "eth0", "wgpeer", "wg0", "vlanpeer", "eth0.10"]
        );

        let lo = &links[0];
        assert_eq!((lo.index, lo.state.as_str()), (1, "UNKNOWN"));
        assert_eq!(lo.link_type, "loopback");
        assert_eq!(lo.addrs[0].local, "127.0.0.1");

        let wg0 = links.iter().find(|l| l.name == "wg0").unwrap();
        assert_eq!(wg0.state, "UP");
        assert!(wg0.flags.iter().any(|f| f == "LOWER_UP"));
        assert_eq!(
            wg0.addrs[0],
            Addr {
                family: "inet".into(),
                local: "10.64.0.2".into(),
                prefixlen: 32,
                peer: Some("10.64.0.1".into()),
                scope: "global".into(),
            }
        );
        assert_eq!(wg0.addrs[1].family, "inet6");
        assert_eq!(wg0.addrs[1].local, "fd00:64::2");
        assert_eq!(wg0.addrs[1].peer, None);
        assert_eq!(wg0.addrs[2].scope, "link");

        let vlan = links.iter().find(|l| l.name == "eth0.10").unwrap();
        assert_eq!(vlan.state, "DOWN");
        assert_eq!(vlan.addrs.len(), 1);
    }

    #[test]
    fn filtered_out_links_and_bad_json() {
        let links =
            parse_links(r#"[{},{"addr_info":[{}]},{"ifname":"x","addr_info":[{}]}]"#).unwrap();
        assert_eq!(links.len(), 1);
        assert!(links[0].addrs.is_empty());
        assert!(parse_links("Error: ...").is_err());
    }
}
