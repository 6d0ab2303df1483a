//! Pure header parsing: a captured frame in, the DS byte, addresses and IP
//! length out. Only headers are read; a frame cut short after them (the
//! capture keeps the first bytes only) parses the same as a whole one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How a frame starts, from the interface's hardware type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkKind {
    /// An Ethernet header (ether, veth, bridge, loopback), maybe VLAN-tagged.
    Ethernet,
    /// The IP header itself (WireGuard, tun, PPP, raw IP).
    Raw,
}

/// ARPHRD_* numbers whose frames carry an Ethernet header.
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;

impl LinkKind {
    /// From `sll_hatype` / `/sys/class/net/IF/type`.
    pub fn from_hatype(hatype: u16) -> LinkKind {
        match hatype {
            ARPHRD_ETHER | ARPHRD_LOOPBACK => LinkKind::Ethernet,
            _ => LinkKind::Raw,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

/// What one IP packet says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub family: Family,
    /// The whole DS byte: IPv4 ToS / IPv6 traffic class (DSCP << 2 | ECN).
    pub ds: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// The IP packet's length from its header (IPv4 total length, IPv6 40 +
    /// payload length): what iptables counters count, without link header or
    /// Ethernet padding.
    pub ip_len: u32,
}

impl Header {
    pub fn dscp(&self) -> u8 {
        self.ds >> 2
    }
}

pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
/// 802.1Q, 802.1ad (QinQ) and the older QinQ tag types.
const VLAN_TPIDS: [u16; 3] = [0x8100, 0x88a8, 0x9100];
/// More tags than this is not a frame we understand.
const MAX_VLAN_TAGS: usize = 4;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Parse a captured frame. `protocol` is the frame's ethertype as the
/// kernel reports it (`sll_protocol`, host order); it is only used for
/// `LinkKind::Raw`, where the IP version nibble decides when it is absent.
/// `wire_len` is the frame's full length on the wire (the capture may hold
/// less). `None` for anything that is not IPv4 or IPv6.
pub fn parse_frame(link: LinkKind, protocol: u16, frame: &[u8], wire_len: u32) -> Option<Header> {
    match link {
        LinkKind::Ethernet => {
            let mut ethertype = be16(frame, 12)?;
            let mut at = 14;
            for _ in 0..MAX_VLAN_TAGS {
                if !VLAN_TPIDS.contains(&ethertype) {
                    break;
                }
                ethertype = be16(frame, at + 2)?;
                at += 4;
            }
            let l3_wire = wire_len.saturating_sub(at as u32);
            parse_ip(ethertype, frame.get(at..)?, l3_wire)
        }
        LinkKind::Raw => {
            let ethertype = match protocol {
                ETH_P_IP | ETH_P_IPV6 => protocol,
                _ => match frame.first()? >> 4 {
                    4 => ETH_P_IP,
                    6 => ETH_P_IPV6,
                    _ => return None,
                },
            };
            parse_ip(ethertype, frame, wire_len)
        }
    }
}

/// Parse an IP header of the given ethertype. `l3_wire` is the packet's
/// length on the wire from the IP header on (a fallback for the length).
pub fn parse_ip(ethertype: u16, ip: &[u8], l3_wire: u32) -> Option<Header> {
    match ethertype {
        ETH_P_IP => {
            let first = *ip.first()?;
            if first >> 4 != 4 || first & 0x0f < 5 {
                return None;
            }
            let src: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let dst: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            // BIG TCP and some offloads write total length 0.
            let total = u32::from(be16(ip, 2)?);
            Some(Header {
                family: Family::V4,
                ds: ip[1],
                src: IpAddr::V4(Ipv4Addr::from(src)),
                dst: IpAddr::V4(Ipv4Addr::from(dst)),
                ip_len: if total == 0 { l3_wire } else { total },
            })
        }
        ETH_P_IPV6 => {
            let first = *ip.first()?;
            if first >> 4 != 6 {
                return None;
            }
            let src: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let dst: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            // Payload length 0 is a jumbogram (hop-by-hop option).
            let payload = u32::from(be16(ip, 4)?);
            Some(Header {
                family: Family::V6,
                ds: ((first & 0x0f) << 4) | (ip[1] >> 4),
                src: IpAddr::V6(Ipv6Addr::from(src)),
                dst: IpAddr::V6(Ipv6Addr::from(dst)),
                ip_len: if payload == 0 { l3_wire } else { 40 + payload },
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ethertype: u16, tags: &[u16], payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        for tpid in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&[0x00, 0x0a]); // VLAN 10
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn ipv4(tos: u8, total: u16) -> Vec<u8> {
        let mut h = vec![0x45, tos];
        h.extend_from_slice(&total.to_be_bytes());
        h.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        h.extend_from_slice(&[192, 168, 50, 2, 198, 51, 100, 1]);
        h
    }

    fn ipv6(tclass: u8, payload: u16) -> Vec<u8> {
        let mut h = vec![0x60 | (tclass >> 4), (tclass << 4) | 0x0a, 0xbc, 0xde];
        h.extend_from_slice(&payload.to_be_bytes());
        h.extend_from_slice(&[17, 64]);
        h.extend_from_slice(&"fd50::2".parse::<Ipv6Addr>().unwrap().octets());
        h.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        h
    }

    #[test]
    fn every_ds_byte_of_both_families_over_ethernet_and_raw() {
        for ds in 0..=255u8 {
            let v4 = ipv4(ds, 60);
            let f = eth(ETH_P_IP, &[], &v4);
            let h = parse_frame(LinkKind::Ethernet, 0, &f, 74).unwrap();
            assert_eq!(
                (h.family, h.ds, h.dscp(), h.ip_len),
                (Family::V4, ds, ds >> 2, 60)
            );
            assert_eq!(h.src, "192.168.50.2".parse::<IpAddr>().unwrap());
            assert_eq!(h.dst, "198.51.100.1".parse::<IpAddr>().unwrap());
            assert_eq!(parse_frame(LinkKind::Raw, ETH_P_IP, &v4, 60), Some(h));
            assert_eq!(parse_frame(LinkKind::Raw, 0, &v4, 60), Some(h));

            let v6 = ipv6(ds, 100);
            let f = eth(ETH_P_IPV6, &[], &v6);
            let h = parse_frame(LinkKind::Ethernet, 0, &f, 154).unwrap();
            assert_eq!(
                (h.family, h.ds, h.dscp(), h.ip_len),
                (Family::V6, ds, ds >> 2, 140)
            );
            assert_eq!(h.dst, "2001:db8::1".parse::<IpAddr>().unwrap());
            assert_eq!(parse_frame(LinkKind::Raw, 0, &v6, 140), Some(h));
        }
    }

    #[test]
    fn vlan_tags_are_skipped() {
        let v4 = ipv4(0x1c, 40);
        for tags in [&[0x8100][..], &[0x88a8, 0x8100], &[0x9100, 0x8100]] {
            let f = eth(ETH_P_IP, tags, &v4);
            let h = parse_frame(LinkKind::Ethernet, 0x8100, &f, 100).unwrap();
            assert_eq!(h.dscp(), 7, "tags {tags:x?}");
        }
        let v6 = ipv6(0xb8, 8);
        let h = parse_frame(LinkKind::Ethernet, 0, &eth(ETH_P_IPV6, &[0x8100], &v6), 0).unwrap();
        assert_eq!(h.dscp(), 46);
    }

    #[test]
    fn not_ip_or_cut_short_is_none() {
        let arp = eth(0x0806, &[], &[0; 28]);
        assert_eq!(parse_frame(LinkKind::Ethernet, 0, &arp, 42), None);
        let v4 = ipv4(0, 20);
        for cut in 0..34 {
            let f = eth(ETH_P_IP, &[], &v4);
            assert_eq!(
                parse_frame(LinkKind::Ethernet, 0, &f[..cut], 60),
                None,
                "{cut}"
            );
        }
        let v6 = ipv6(0, 0);
        assert_eq!(parse_frame(LinkKind::Raw, 0, &v6[..39], 40), None);
        // Wrong version nibble for the ethertype.
        assert_eq!(
            parse_frame(LinkKind::Ethernet, 0, &eth(ETH_P_IP, &[], &v6), 80),
            None
        );
        assert_eq!(parse_frame(LinkKind::Raw, 0, &[0x20; 40], 40), None);
    }

    #[test]
    fn lengths_fall_back_to_the_wire() {
        // IPv4 total length 0 (BIG TCP), IPv6 jumbogram: length from the wire.
        let v4 = ipv4(0, 0);
        assert_eq!(
            parse_frame(LinkKind::Ethernet, 0, &eth(ETH_P_IP, &[], &v4), 70014)
                .unwrap()
                .ip_len,
            70000
        );
        let v6 = ipv6(0, 0);
        assert_eq!(
            parse_frame(LinkKind::Raw, 0, &v6, 90000).unwrap().ip_len,
            90000
        );
    }

    #[test]
    fn hatype_decides_the_link_kind() {
        assert_eq!(LinkKind::from_hatype(1), LinkKind::Ethernet);
        assert_eq!(LinkKind::from_hatype(772), LinkKind::Ethernet);
        assert_eq!(LinkKind::from_hatype(0xfffe), LinkKind::Raw); // WireGuard, tun
        assert_eq!(LinkKind::from_hatype(512), LinkKind::Raw); // PPP
    }
}
