//! Counting: packets and bytes per DSCP (both families), the top
//! source/destination pairs, rates over the last seconds, and the summary
//! the text view and `--json` show. Pure: headers in, numbers out.

use super::parse::{Family, Header};
use crate::tos::{Dscp, Expressions, Phb};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Packets and bytes of one kind; `v4`/`v6` split the packets by family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub packets: u64,
    pub bytes: u64,
    pub v4: u64,
    pub v6: u64,
}

impl Counts {
    fn add(&mut self, family: Family, len: u32) {
        self.packets += 1;
        self.bytes += u64::from(len);
        match family {
            Family::V4 => self.v4 += 1,
            Family::V6 => self.v6 += 1,
        }
    }
}

/// A source/destination pair and what it sent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pair {
    pub dscp: u8,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub packets: u64,
    pub bytes: u64,
}

/// Distinct pairs remembered at most; later new pairs are only counted.
const MAX_PAIRS: usize = 65_536;
/// Pairs shown.
pub const TOP_PAIRS: usize = 10;
/// Rates are taken over this many last seconds.
pub const RATE_WINDOW: Duration = Duration::from_secs(5);

/// Everything counted so far.
#[derive(Clone, Debug)]
pub struct Tally {
    pub per_dscp: [Counts; 64],
    /// Frames that are not IPv4/IPv6 (ARP, LLDP, …): packets and frame bytes.
    pub non_ip: Counts,
    /// Pairs are kept for this DSCP only, or for every DSCP when `None`.
    pub selected: Option<u8>,
    pairs: HashMap<(u8, IpAddr, IpAddr), (u64, u64)>,
    /// Packets of pairs not remembered (the table was full).
    pub pairs_overflow: u64,
}

impl Tally {
    pub fn new(selected: Option<u8>) -> Tally {
        Tally {
            per_dscp: [Counts::default(); 64],
            non_ip: Counts::default(),
            selected,
            pairs: HashMap::new(),
            pairs_overflow: 0,
        }
    }

    pub fn add(&mut self, h: &Header) {
        let d = h.dscp();
        self.per_dscp[usize::from(d)].add(h.family, h.ip_len);
        if self.selected.is_none_or(|s| s == d) {
            let key = (d, h.src, h.dst);
            let full = self.pairs.len() >= MAX_PAIRS;
            match self.pairs.get_mut(&key) {
                Some(e) => {
                    e.0 += 1;
                    e.1 += u64::from(h.ip_len);
                }
                None if full => self.pairs_overflow += 1,
                None => {
                    self.pairs.insert(key, (1, u64::from(h.ip_len)));
                }
            }
        }
    }

    pub fn add_non_ip(&mut self, frame_len: u32) {
        self.non_ip.packets += 1;
        self.non_ip.bytes += u64::from(frame_len);
    }

    pub fn ip_total(&self) -> Counts {
        self.per_dscp.iter().fold(Counts::default(), |mut t, c| {
            t.packets += c.packets;
            t.bytes += c.bytes;
            t.v4 += c.v4;
            t.v6 += c.v6;
            t
        })
    }

    /// The `n` pairs with the most packets (then bytes), ties in address order.
    pub fn top_pairs(&self, n: usize) -> Vec<Pair> {
        let mut v: Vec<Pair> = self
            .pairs
            .iter()
            .map(|(&(dscp, src, dst), &(packets, bytes))| Pair {
                dscp,
                src,
                dst,
                packets,
                bytes,
            })
            .collect();
        v.sort_by(|a, b| {
            (b.packets, b.bytes)
                .cmp(&(a.packets, a.bytes))
                .then((a.dscp, a.src, a.dst).cmp(&(b.dscp, b.src, b.dst)))
        });
        v.truncate(n);
        v
    }
}

/// Per-second history of the per-DSCP totals, for rates over the last seconds.
#[derive(Clone, Debug, Default)]
pub struct History {
    samples: VecDeque<(Instant, [(u64, u64); 64])>,
}

fn totals(t: &Tally) -> [(u64, u64); 64] {
    t.per_dscp.map(|c| (c.packets, c.bytes))
}

impl History {
    /// Remember the totals as of `now` (call about once a second).
    pub fn record(&mut self, now: Instant, t: &Tally) {
        self.samples.push_back((now, totals(t)));
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > RATE_WINDOW + Duration::from_secs(1))
        {
            self.samples.pop_front();
        }
    }

    /// (packets/s, bits/s) per DSCP over the last RATE_WINDOW (or as much of
    /// it as has been recorded), and the seconds it spans.
    pub fn rates(&self, now: Instant, t: &Tally) -> ([(f64, f64); 64], f64) {
        let base = self
            .samples
            .iter()
            .find(|(at, _)| now.duration_since(*at) <= RATE_WINDOW)
            .or(self.samples.front());
        let Some((at, old)) = base else {
            return ([(0.0, 0.0); 64], 0.0);
        };
        let secs = now.duration_since(*at).as_secs_f64();
        if secs <= 0.0 {
            return ([(0.0, 0.0); 64], 0.0);
        }
        let cur = totals(t);
        let mut out = [(0.0, 0.0); 64];
        for (i, o) in out.iter_mut().enumerate() {
            let dp = cur[i].0.saturating_sub(old[i].0) as f64;
            let db = cur[i].1.saturating_sub(old[i].1) as f64;
            *o = (dp / secs, db * 8.0 / secs);
        }
        (out, secs)
    }
}

/// One DSCP's line in the summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DscpLine {
    /// PHB name (`EF`, `AF41`, `CS1`…), `null` when unassigned.
    pub name: Option<String>,
    pub packets: u64,
    pub bytes: u64,
    pub v4: u64,
    pub v6: u64,
    /// Rates over the last `rate_seconds`.
    pub pps: f64,
    pub bps: f64,
}

/// What `watch --json` prints (and the text view shows).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub interface: String,
    /// How long the capture ran.
    pub seconds: f64,
    /// All IPv4 and IPv6 packets, and their IP bytes.
    pub packets: u64,
    pub bytes: u64,
    /// Per DSCP value (keys "0"–"63" in JSON), only values seen, plus the
    /// selected one.
    pub dscp: BTreeMap<u8, DscpLine>,
    /// Frames that were neither IPv4 nor IPv6.
    pub non_ip: NonIp,
    pub selected_dscp: Option<u8>,
    /// Top source/destination pairs: of the selected DSCP, or of every DSCP.
    pub top_pairs: Vec<Pair>,
    /// Packets of pairs beyond the remembered ones (not in `top_pairs`).
    pub pairs_overflow: u64,
    /// Packets the kernel dropped because the capture ring was full.
    pub kernel_drops: u64,
    /// The span the rates (`pps`, `bps`) were taken over.
    pub rate_seconds: f64,
    /// The tcpdump command showing the same traffic.
    pub tcpdump: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NonIp {
    pub packets: u64,
    pub bytes: u64,
}

/// The equivalent tcpdump command line (shell-quoted filter).
pub fn tcpdump_command(interface: &str, dscp: Option<u8>) -> String {
    let filter = match dscp.and_then(Dscp::new) {
        Some(d) => Expressions::of(d).tcpdump,
        None => "ip or ip6".to_string(),
    };
    format!("tcpdump -ni {} -v '{filter}'", shell_word(interface))
}

/// Interface names need no quoting in practice; quote anything odd anyway.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@:".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

pub fn dscp_name(d: u8) -> Option<String> {
    Dscp::new(d).and_then(Phb::of).map(Phb::short_name)
}

pub struct SummaryInput<'a> {
    pub interface: &'a str,
    pub tally: &'a Tally,
    pub history: &'a History,
    pub elapsed: Duration,
    pub now: Instant,
    pub kernel_drops: u64,
}

pub fn summarize(i: &SummaryInput) -> Summary {
    let (rates, rate_seconds) = i.history.rates(i.now, i.tally);
    let mut dscp = BTreeMap::new();
    for (d, c) in i.tally.per_dscp.iter().enumerate() {
        let d8 = d as u8;
        if c.packets == 0 && i.tally.selected != Some(d8) {
            continue;
        }
        dscp.insert(
            d8,
            DscpLine {
                name: dscp_name(d8),
                packets: c.packets,
                bytes: c.bytes,
                v4: c.v4,
                v6: c.v6,
                pps: round2(rates[d].0),
                bps: round2(rates[d].1),
            },
        );
    }
    let total = i.tally.ip_total();
    Summary {
        interface: i.interface.to_string(),
        seconds: round2(i.elapsed.as_secs_f64()),
        packets: total.packets,
        bytes: total.bytes,
        dscp,
        non_ip: NonIp {
            packets: i.tally.non_ip.packets,
            bytes: i.tally.non_ip.bytes,
        },
        selected_dscp: i.tally.selected,
        top_pairs: i.tally.top_pairs(TOP_PAIRS),
        pairs_overflow: i.tally.pairs_overflow,
        kernel_drops: i.kernel_drops,
        rate_seconds: round2(rate_seconds),
        tcpdump: tcpdump_command(i.interface, i.tally.selected),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A human rate: 1.2k, 3.4M.
fn si(x: f64) -> String {
    match x {
        x if x >= 1e9 => format!("{:.1}G", x / 1e9),
        x if x >= 1e6 => format!("{:.1}M", x / 1e6),
        x if x >= 1e3 => format!("{:.1}k", x / 1e3),
        x => format!("{x:.0}"),
    }
}

/// The text view: one table, rows by DSCP, then the pairs.
pub fn render(s: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "{}: {} IP packets, {} bytes in {:.0} s; kernel drops {}; rates over the last {:.0} s",
        s.interface, s.packets, s.bytes, s.seconds, s.kernel_drops, s.rate_seconds
    );
    let _ = writeln!(
        o,
        "{:>5} {:<6} {:>10} {:>12} {:>9} {:>9} {:>8} {:>8}",
        "DSCP", "name", "packets", "bytes", "IPv4", "IPv6", "pkt/s", "bit/s"
    );
    for (d, l) in &s.dscp {
        let mark = if s.selected_dscp == Some(*d) {
            "*"
        } else {
            " "
        };
        let _ = writeln!(
            o,
            "{mark}{:>4} {:<6} {:>10} {:>12} {:>9} {:>9} {:>8} {:>8}",
            d,
            l.name.as_deref().unwrap_or("-"),
            l.packets,
            l.bytes,
            l.v4,
            l.v6,
            si(l.pps),
            si(l.bps)
        );
    }
    if s.dscp.is_empty() {
        let _ = writeln!(o, "  (no IP packets yet)");
    }
    if s.non_ip.packets > 0 {
        let _ = writeln!(
            o,
            "  not IP: {} frames, {} bytes",
            s.non_ip.packets, s.non_ip.bytes
        );
    }
    if !s.top_pairs.is_empty() {
        let whose = match s.selected_dscp {
            Some(d) => format!("DSCP {d}"),
            None => "any DSCP".to_string(),
        };
        let _ = writeln!(o, "Top source → destination pairs ({whose})");
        for p in &s.top_pairs {
            let _ = writeln!(
                o,
                "  {:>4} {:>10} pkts {:>12} bytes  {} → {}",
                p.dscp, p.packets, p.bytes, p.src, p.dst
            );
        }
        if s.pairs_overflow > 0 {
            let _ = writeln!(o, "  (+{} packets of pairs not tracked)", s.pairs_overflow);
        }
    }
    let _ = writeln!(o, "Same view: {}", s.tcpdump);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(ds: u8, family: Family, src: &str, dst: &str, len: u32) -> Header {
        Header {
            family,
            ds,
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ip_len: len,
        }
    }

    #[test]
    fn counts_per_dscp_and_family_ignore_ecn() {
        let mut t = Tally::new(None);
        for ecn in 0..4 {
            t.add(&h(0x1c | ecn, Family::V4, "10.0.0.1", "10.0.0.2", 100));
        }
        t.add(&h(0x1c, Family::V6, "fd00::1", "fd00::2", 60));
        t.add(&h(0xb8, Family::V4, "10.0.0.1", "10.0.0.2", 40));
        t.add_non_ip(42);
        let c = t.per_dscp[7];
        assert_eq!((c.packets, c.bytes, c.v4, c.v6), (5, 460, 4, 1));
        assert_eq!(t.per_dscp[46].packets, 1);
        assert_eq!(t.ip_total().packets, 6);
        assert_eq!(t.non_ip.packets, 1);
    }

    #[test]
    fn pairs_for_the_selected_dscp_only_sorted() {
        let mut t = Tally::new(Some(7));
        for _ in 0..3 {
            t.add(&h(0x1c, Family::V4, "10.0.0.1", "10.0.0.9", 10));
        }
        t.add(&h(0x1c, Family::V4, "10.0.0.2", "10.0.0.9", 10));
        t.add(&h(0x00, Family::V4, "10.0.0.3", "10.0.0.9", 10));
        let top = t.top_pairs(10);
        assert_eq!(top.len(), 2);
        assert_eq!(
            (top[0].src.to_string(), top[0].packets),
            ("10.0.0.1".into(), 3)
        );
        assert_eq!(top[1].packets, 1);
        assert_eq!(t.top_pairs(1).len(), 1);
    }

    #[test]
    fn rates_over_the_window() {
        let mut t = Tally::new(None);
        let mut hist = History::default();
        let t0 = Instant::now();
        hist.record(t0, &t);
        for _ in 0..200 {
            t.add(&h(0x1c, Family::V4, "10.0.0.1", "10.0.0.2", 125));
        }
        let (r, secs) = hist.rates(t0 + Duration::from_secs(2), &t);
        assert_eq!(secs, 2.0);
        assert_eq!(r[7], (100.0, 100_000.0));
        assert_eq!(r[0], (0.0, 0.0));
        // Older samples fall out of the window.
        for s in 1..=10 {
            hist.record(t0 + Duration::from_secs(s), &t);
        }
        let (r, secs) = hist.rates(t0 + Duration::from_secs(10), &t);
        assert_eq!((r[7].0, secs), (0.0, 5.0));
    }

    #[test]
    fn summary_lists_seen_and_selected_values_and_the_tcpdump_command() {
        let mut t = Tally::new(Some(7));
        t.add(&h(0xb8, Family::V6, "fd00::1", "fd00::2", 80));
        let hist = History::default();
        let now = Instant::now();
        let s = summarize(&SummaryInput {
            interface: "lan0",
            tally: &t,
            history: &hist,
            elapsed: Duration::from_secs(3),
            now,
            kernel_drops: 0,
        });
        assert_eq!(s.dscp.keys().collect::<Vec<_>>(), [&7, &46]);
        assert_eq!(s.dscp[&46].name.as_deref(), Some("EF"));
        assert_eq!(s.dscp[&7].packets, 0);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["dscp"]["46"]["v6"], 1, "{v}");
        assert_eq!(
            s.tcpdump,
            "tcpdump -ni lan0 -v '(ip and (ip[1] & 0xfc) >> 2 == 7) or (ip6 and (ip6[0:2] & 0x0fc0) >> 6 == 7)'"
        );
        let text = render(&s);
        assert!(text.contains("*   7"), "{text}");
        assert!(text.contains("Same view: tcpdump -ni lan0"), "{text}");
        assert_eq!(
            tcpdump_command("eth0.10", None),
            "tcpdump -ni eth0.10 -v 'ip or ip6'"
        );
        assert_eq!(
            tcpdump_command("a b", None),
            "tcpdump -ni 'a b' -v 'ip or ip6'"
        );
    }
}
