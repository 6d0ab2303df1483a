//! The DSCP on the wire: a few seconds of every interface's traffic (the
//! `watch` capture, headers only), then pure checks over what was seen.
//! On a gateway: did packets with the DSCP arrive from the LAN, and did
//! they leave the VPN interface scrubbed? On a client: did the group's
//! packets leave with it?

use super::{Check, Inputs};
use crate::ownership::CHAIN_MARK;
use crate::probe::HostFacts;
use crate::watch::capture::{PACKET_HOST, PACKET_OUTGOING};
use crate::watch::{Capture, CaptureError, LinkKind, parse_frame};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Packets that arrived on one LAN interface to be routed (not for this host).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LanIn {
    pub with_dscp: u64,
    pub other: u64,
    /// DSCP → packets, for the packets without ours.
    pub other_dscps: BTreeMap<u8, u64>,
    /// Sources of the packets with our DSCP (at most a few).
    pub sources: BTreeSet<IpAddr>,
}

/// Packets leaving one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Out {
    pub with_dscp: u64,
    pub total: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct WireSample {
    pub dscp: u8,
    pub seconds: f64,
    /// Per LAN interface (every interface but lo and the VPN's).
    pub lan_in: BTreeMap<String, LanIn>,
    /// Leaving each interface but lo and the VPN's.
    pub egress: BTreeMap<String, Out>,
    /// Leaving the VPN interface.
    pub vpn_out: Out,
    pub kernel_drops: u64,
}

/// What ends the sample early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// Our DSCP arriving on a LAN interface (gateway).
    LanIn,
    /// Our DSCP leaving a non-VPN interface (client).
    Egress,
}

const MAX_SOURCES: usize = 8;
const ARPHRD_LOOPBACK: u16 = 772;

fn is_routable_dst(ip: IpAddr, own: &BTreeSet<IpAddr>) -> bool {
    if own.contains(&ip) {
        return false;
    }
    match ip {
        IpAddr::V4(a) => !(a.is_multicast() || a.is_broadcast() || a.is_loopback()),
        IpAddr::V6(a) => {
            !(a.is_multicast() || a.is_loopback() || (a.segments()[0] & 0xffc0) == 0xfe80)
        }
    }
}

/// Capture on every interface for up to `window`; stop shortly after the
/// `until` evidence shows up.
pub fn sample(
    facts: &HostFacts,
    vpn: Option<&str>,
    dscp: u8,
    window: Duration,
    until: Option<Evidence>,
) -> Result<WireSample, CaptureError> {
    let mut cap = Capture::open(None)?;
    let names: HashMap<i32, String> = facts
        .links
        .iter()
        .map(|l| (l.index as i32, l.name.clone()))
        .collect();
    let own: BTreeSet<IpAddr> = facts
        .links
        .iter()
        .flat_map(|l| &l.addrs)
        .filter_map(|a| a.local.parse().ok())
        .collect();
    let mut s = WireSample {
        dscp,
        ..WireSample::default()
    };
    let start = Instant::now();
    let mut deadline = start + window;
    let mut found = false;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if left.is_zero() {
            break;
        }
        cap.poll(left.min(Duration::from_millis(100)), &mut |p| {
            if p.hatype == ARPHRD_LOOPBACK {
                return;
            }
            let Some(name) = names.get(&p.ifindex) else {
                return;
            };
            let Some(h) = parse_frame(
                LinkKind::from_hatype(p.hatype),
                p.protocol,
                p.data,
                p.wire_len,
            ) else {
                return;
            };
            let ours = h.dscp() == dscp;
            let is_vpn = vpn == Some(name.as_str());
            if p.pkttype == PACKET_OUTGOING {
                let o = if is_vpn {
                    &mut s.vpn_out
                } else {
                    s.egress.entry(name.clone()).or_default()
                };
                o.total += 1;
                o.with_dscp += u64::from(ours);
            } else if p.pkttype == PACKET_HOST && !is_vpn && is_routable_dst(h.dst, &own) {
                let l = s.lan_in.entry(name.clone()).or_default();
                if ours {
                    l.with_dscp += 1;
                    if l.sources.len() < MAX_SOURCES {
                        l.sources.insert(h.src);
                    }
                } else {
                    l.other += 1;
                    *l.other_dscps.entry(h.dscp()).or_default() += 1;
                }
            }
        })?;
        let seen = match until {
            Some(Evidence::LanIn) => s.lan_in.values().any(|l| l.with_dscp > 0),
            Some(Evidence::Egress) => s.egress.values().any(|o| o.with_dscp > 0),
            None => false,
        };
        if seen && !found {
            found = true;
            // A little longer: the same packets leaving the VPN interface.
            deadline = deadline.min(Instant::now() + Duration::from_millis(300));
        }
    }
    s.seconds = (start.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    s.kernel_drops = cap.kernel_drops();
    Ok(s)
}

fn looked(w: &WireSample, what: &str) -> String {
    format!(
        "{what} for {:.1} s (AF_PACKET capture, headers only; kernel drops {}); `dscproute watch \
         -i IFACE --dscp {}` shows the same live",
        w.seconds, w.kernel_drops, w.dscp
    )
}

pub fn checks(i: &Inputs, w: &WireSample) -> Vec<Check> {
    let mut out = Vec::new();
    let both = i.is_gateway() && i.is_marker();
    if i.is_gateway() {
        out.push(lan_check(w, both));
        if let Some(c) = scrub_check(i, w) {
            out.push(c);
        }
    } else if i.is_marker() {
        out.push(egress_check(i, w));
    }
    out
}

fn lan_check(w: &WireSample, both: bool) -> Check {
    let d = w.dscp;
    let looked = looked(
        w,
        "packets arriving on every interface but lo and the VPN's",
    );
    let seen: Vec<String> = w
        .lan_in
        .iter()
        .filter(|(_, l)| l.with_dscp > 0)
        .map(|(n, l)| {
            let src: Vec<String> = l.sources.iter().map(IpAddr::to_string).collect();
            format!("{} on {n} (from {})", l.with_dscp, src.join(", "))
        })
        .collect();
    if !seen.is_empty() {
        return Check::pass(
            "dscp-on-wire",
            format!(
                "packets with DSCP {d} arrived from the LAN within {:.1} s: {}; the client's \
                 marker reaches this gateway",
                w.seconds,
                seen.join("; ")
            ),
            looked,
        );
    }
    let other: u64 = w.lan_in.values().map(|l| l.other).sum();
    let mut by_dscp: BTreeMap<u8, u64> = BTreeMap::new();
    for l in w.lan_in.values() {
        for (k, n) in &l.other_dscps {
            *by_dscp.entry(*k).or_default() += n;
        }
    }
    let mix: Vec<String> = by_dscp
        .iter()
        .map(|(k, n)| format!("DSCP {k} × {n}"))
        .collect();
    let fix = format!(
        "run the group's program on the client while doctor runs; on the client, `dscproute \
         doctor --profile CLIENT.toml` checks the marker and `dscproute watch -i IFACE --dscp {d}` \
         shows what leaves it; run watch on each hop between them to find a device that \
         re-marks (bleaches) DSCP (RFC 9435), and switch that off or route around it"
    );
    if other == 0 {
        return Check::warn(
            "dscp-on-wire",
            format!(
                "no traffic to be routed arrived from the LAN in {:.1} s: nothing to judge DSCP \
                 {d} by",
                w.seconds
            ),
            looked,
            fix,
        );
    }
    let detail = format!(
        "{other} packets to be routed arrived from the LAN in {:.1} s, none with DSCP {d} \
         (seen: {}): the marker is not applied on the client, the group sent nothing meanwhile, \
         or a device on the way re-marks DSCP (bleaching)",
        w.seconds,
        mix.join(", ")
    );
    if both {
        // The group lives on this host; LAN clients may have no marker at all.
        return Check::warn("dscp-on-wire", detail, looked, fix);
    }
    Check::fail("dscp-on-wire", detail, looked, fix)
}

fn scrub_check(i: &Inputs, w: &WireSample) -> Option<Check> {
    let g = i.gateway()?;
    if !g.scrub_dscp || w.vpn_out.total == 0 {
        return None;
    }
    let d = w.dscp;
    let dev = &g.interface;
    let looked = looked(w, &format!("packets leaving {dev}"));
    Some(if w.vpn_out.with_dscp == 0 {
        Check::pass(
            "scrub",
            format!(
                "{} packets left {dev}, none carrying DSCP {d}: the signal stays inside your \
                 network",
                w.vpn_out.total
            ),
            looked,
        )
    } else {
        Check::fail(
            "scrub",
            format!(
                "{} of {} packets left {dev} still carrying DSCP {d}: the scrub rule (mangle \
                 POSTROUTING -o {dev}) is missing or bypassed",
                w.vpn_out.with_dscp, w.vpn_out.total
            ),
            looked,
            format!("{} restores it", i.apply_cmd()),
        )
    })
}

fn egress_check(i: &Inputs, w: &WireSample) -> Check {
    let d = w.dscp;
    let looked = looked(w, "packets leaving every interface but lo");
    let seen: Vec<String> = w
        .egress
        .iter()
        .filter(|(_, o)| o.with_dscp > 0)
        .map(|(n, o)| format!("{} of {} leaving {n}", o.with_dscp, o.total))
        .collect();
    if !seen.is_empty() {
        return Check::pass(
            "dscp-on-wire",
            format!(
                "packets left with DSCP {d} within {:.1} s: {}",
                w.seconds,
                seen.join("; ")
            ),
            looked,
        );
    }
    let marked = i.counters.as_ref().map(|(b, a)| {
        let n = |rules: &[crate::probe::CountedRule]| -> u64 {
            rules
                .iter()
                .filter(|r| r.chain == CHAIN_MARK && r.spec.contains("--set-dscp"))
                .map(|r| r.packets)
                .sum()
        };
        n(a).saturating_sub(n(b))
    });
    match marked {
        Some(m) if m > 0 => Check::fail(
            "dscp-on-wire",
            format!(
                "{m} of the group's packets were given DSCP {d} in mangle OUTPUT during the \
                 sample, but none left any interface with it: something later rewrites the DSCP \
                 (another DSCP/TOS rule in mangle POSTROUTING, an nftables rule, a qdisc action)"
            ),
            looked,
            "look for rules that set DSCP or TOS after ours: `iptables-save -t mangle`, `nft list \
             ruleset | grep dscp`, `tc filter show`",
        ),
        _ => Check::warn(
            "dscp-on-wire",
            format!(
                "no packet left with DSCP {d} in {:.1} s: the group sent nothing meanwhile",
                w.seconds
            ),
            looked,
            "make the group's program send something while doctor runs, then run it again",
        ),
    }
}
