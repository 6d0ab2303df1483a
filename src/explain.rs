//! `dscproute explain`: everything about one DS byte, as text for a person
//! (readable at 80 columns) or as one JSON object for scripts.

use crate::text::wrap;
use crate::tos::{
    AccessCategory, DsByte, Ecn, Expressions, Legacy, ParseError, Phb, Pool, parse_value, wifi_up,
};
use serde::Serialize;
use std::fmt::Write;

/// Width the human report is laid out for.
const WIDTH: usize = 80;
const LABEL: usize = 16;

#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    pub tos: u8,
    pub tos_hex: String,
    pub dscp: u8,
    pub dscp_hex: String,
    pub ecn: u8,
    pub ecn_name: &'static str,
    pub ecn_description: &'static str,
    /// Short PHB name (`AF41`, `EF`, `LE`) or null when unassigned.
    pub name: Option<String>,
    pub long_name: Option<String>,
    pub rfc: Option<&'static str>,
    pub service_class: Option<&'static str>,
    pub pool: u8,
    pub pool_pattern: &'static str,
    pub pool_description: &'static str,
    pub precedence: u8,
    pub precedence_name: &'static str,
    pub rfc1349_bits: u8,
    pub rfc1349_letters: Vec<String>,
    pub rfc1349_valid: bool,
    pub wifi_up: u8,
    pub wifi_ac: &'static str,
    pub wifi_ac_name: &'static str,
    /// What networks that re-mark (RFC 9435) turn this value into.
    pub bleached: Bleached,
    /// Set when the input looked like a whole ToS byte but was read as a DSCP.
    pub tos_byte_hint: Option<String>,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    pub expressions: Expressions,
}

#[derive(Clone, Debug, Serialize)]
pub struct Bleached {
    /// After clearing the top three DSCP bits (precedence bleaching).
    pub top_bits_cleared: u8,
    /// After clearing the low three DSCP bits.
    pub low_bits_cleared: u8,
}

impl Explanation {
    /// Parse `input` as a DSCP (or as a whole byte when `tos`) and explain it.
    pub fn parse(input: &str, tos: bool) -> Result<Explanation, ParseError> {
        let parsed = parse_value(input, tos)?;
        let mut e = Explanation::of(parsed.byte);
        if parsed.maybe_tos_byte {
            let as_byte = DsByte::new(parsed.dscp().value());
            e.tos_byte_hint = Some(format!(
                "{} was read as a DSCP; as a ToS byte, {} is DSCP {} (use --tos {} for that)",
                input.trim(),
                as_byte,
                as_byte.dscp(),
                input.trim()
            ));
        }
        Ok(e)
    }

    pub fn of(byte: DsByte) -> Explanation {
        let dscp = byte.dscp();
        let ecn = byte.ecn();
        let phb = Phb::of(dscp);
        let pool = Pool::of(dscp);
        let legacy = Legacy::of(byte);
        let up = wifi_up(dscp);
        let ac = AccessCategory::of_up(up);
        let v = dscp.value();
        let mut e = Explanation {
            tos: byte.value(),
            tos_hex: byte.to_string(),
            dscp: v,
            dscp_hex: format!("{v:#04x}"),
            ecn: ecn.bits(),
            ecn_name: ecn.name(),
            ecn_description: ecn.description(),
            name: phb.map(Phb::short_name),
            long_name: phb.map(Phb::long_name),
            rfc: phb.map(Phb::rfc),
            service_class: phb.and_then(Phb::service_class),
            pool: pool.number(),
            pool_pattern: pool.pattern(),
            pool_description: pool.description(),
            precedence: legacy.precedence,
            precedence_name: legacy.precedence_name,
            rfc1349_bits: legacy.tos_bits,
            rfc1349_letters: legacy.tos_letters.clone(),
            rfc1349_valid: legacy.rfc1349_valid,
            wifi_up: up,
            wifi_ac: ac.short(),
            wifi_ac_name: ac.long(),
            bleached: Bleached {
                top_bits_cleared: v & 0x07,
                low_bits_cleared: v & 0x38,
            },
            tos_byte_hint: None,
            warnings: Vec::new(),
            notes: Vec::new(),
            expressions: Expressions::of(dscp),
        };
        e.warnings = warnings(v, phb, pool, ac, up);
        e.notes = notes(v, ecn);
        e
    }

    /// The one-phrase reading used on the DSCP bit line.
    pub fn dscp_phrase(&self) -> String {
        match (&self.name, Pool::of(DsByte::new(self.tos).dscp())) {
            (Some(n), _) => match self.service_class {
                Some(sc) => format!("{n}: {sc}"),
                None => format!("{n}: {}", self.long_name.as_deref().unwrap_or("")),
            },
            (None, pool) => format!("unassigned; {}", pool.label()),
        }
    }

    /// The human report.
    pub fn render_text(&self) -> String {
        let byte = DsByte::new(self.tos);
        let mut o = String::new();
        let title = match &self.name {
            Some(n) => format!("DSCP {} ({}) = {n}", self.dscp, self.dscp_hex),
            None => format!("DSCP {} ({}), unassigned", self.dscp, self.dscp_hex),
        };
        let title = if self.ecn != 0 {
            format!(
                "ToS byte {} = {title} + ECN {}",
                self.tos_hex, self.ecn_name
            )
        } else {
            title
        };
        let _ = writeln!(o, "{title}");
        if let Some(hint) = &self.tos_byte_hint {
            for line in wrap(&format!("Note: {hint}."), WIDTH) {
                let _ = writeln!(o, "{line}");
            }
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "DS field (IPv4 ToS / IPv6 traffic class): {} = {} = 0b{:08b}",
            self.tos_hex, self.tos, self.tos
        );
        let _ = writeln!(
            o,
            "  {} = DSCP: {} ({})",
            byte.dscp_bits_picture(),
            self.dscp,
            self.dscp_phrase()
        );
        let _ = writeln!(
            o,
            "  {} = ECN: {} ({})",
            byte.ecn_bits_picture(),
            self.ecn_name,
            self.ecn
        );
        let (v4, v6) = byte.tcpdump_v();
        let v6 = v6.unwrap_or_else(|| "class omitted when 0".into());
        let _ = writeln!(o, "  tcpdump -v prints: {v4} (IPv4), {v6} (IPv6)");

        section(&mut o, "Meaning");
        match &self.name {
            Some(n) => {
                let long = self.long_name.as_deref().unwrap_or("");
                let rfc = self.rfc.unwrap_or("");
                field(&mut o, "PHB", &format!("{n}: {long} ({rfc})"));
            }
            None => field(&mut o, "PHB", "none: this code point is unassigned"),
        }
        if let Some(sc) = self.service_class {
            field(&mut o, "RFC 4594 class", sc);
        }
        field(
            &mut o,
            "Pool",
            &format!(
                "{} ({}): {}",
                self.pool, self.pool_pattern, self.pool_description
            ),
        );
        let legacy = Legacy::of(byte);
        field(
            &mut o,
            "Precedence",
            &format!(
                "{} {} (RFC 791, top three bits)",
                self.precedence, self.precedence_name
            ),
        );
        field(&mut o, "TOS bits", &legacy.tos_summary());
        field(
            &mut o,
            "Wi-Fi (Linux)",
            &format!(
                "user priority {} → AC_{} ({})",
                self.wifi_up, self.wifi_ac, self.wifi_ac_name
            ),
        );

        let x = &self.expressions;
        section(&mut o, "iptables / ip6tables (mangle table)");
        field(&mut o, "set", &x.iptables_set);
        if let Some(c) = &x.iptables_set_class {
            field(&mut o, "set by name", c);
        }
        field(&mut o, "match", &x.iptables_match);
        field(&mut o, "set, keep ECN", &x.iptables_set_tos);
        section(&mut o, "nftables");
        verbatim(&mut o, "match", &[&x.nft_match, &x.nft_match_v6]);
        verbatim(&mut o, "set", &[&x.nft_set, &x.nft_set_v6]);
        if let Some(n) = &x.nft_name {
            field(&mut o, "by name", &format!("ip dscp {n}"));
        }
        section(&mut o, "Capture and display filters");
        field(&mut o, "tcpdump IPv4", &x.tcpdump_v4);
        field(&mut o, "tcpdump IPv6", &x.tcpdump_v6);
        let _ = writeln!(
            o,
            "  tcpdump, both families (bracketed: and/or share precedence):"
        );
        let _ = writeln!(o, "  {}", x.tcpdump);
        verbatim(&mut o, "Wireshark", &[&x.wireshark_v4, &x.wireshark_v6]);
        section(&mut o, "ip rule selectors");
        let r = &x.ip_rule;
        match &r.v4_selector {
            Some(sel) => {
                let also: Vec<String> = r.v4_also_matches.iter().map(u8::to_string).collect();
                field(
                    &mut o,
                    "IPv4",
                    &format!(
                        "{sel}: only the 0x1c bits count, so it also matches DSCP {}",
                        also.join(", ")
                    ),
                );
            }
            None => field(
                &mut o,
                "IPv4",
                &format!(
                    "refused: IPv4 `tos` compares only the 0x1c bits and byte {} \
                     has bits outside them",
                    self.tos_hex_dscp_only()
                ),
            ),
        }
        field(
            &mut o,
            "IPv6",
            &format!("{}: exact DSCP match", r.v6_selector),
        );
        field(
            &mut o,
            "both, exact",
            &format!("{}: needs {}", r.dscp_selector, r.dscp_selector_requires),
        );

        if !self.warnings.is_empty() {
            section(&mut o, "Warnings");
            for w in &self.warnings {
                bullet(&mut o, "!", w);
            }
        }
        if !self.notes.is_empty() {
            section(&mut o, "Notes");
            for n in &self.notes {
                bullet(&mut o, "-", n);
            }
        }
        o
    }

    fn tos_hex_dscp_only(&self) -> String {
        format!("{:#04x}", self.dscp << 2)
    }
}

fn warnings(v: u8, phb: Option<Phb>, pool: Pool, ac: AccessCategory, up: u8) -> Vec<String> {
    let mut w = Vec::new();
    if v == 0 {
        w.push("DSCP 0 is what unmarked traffic carries: it cannot serve as a signal.".into());
    }
    match ac {
        AccessCategory::Voice => w.push(format!(
            "On Wi-Fi, Linux sends this as user priority {up} in the voice queue (AC_VO): bulk \
             traffic marked this way competes with calls. Do not use it for downloads."
        )),
        AccessCategory::Video => w.push(format!(
            "On Wi-Fi, Linux sends this as user priority {up} in the video queue (AC_VI), ahead \
             of ordinary traffic."
        )),
        AccessCategory::Background => w.push(format!(
            "On Wi-Fi, Linux sends this as user priority {up} in the background queue (AC_BK): \
             it may be slowed behind ordinary traffic."
        )),
        AccessCategory::BestEffort => {}
    }
    match (phb, pool) {
        (Some(Phb::Cs(6 | 7)), _) => w.push(
            "CS6/CS7 are for network control (routing protocols): routers may queue it above \
             everything else."
                .into(),
        ),
        (Some(Phb::Cs(1)), _) => w.push(
            "CS1 as low priority is superseded by LE (DSCP 1, RFC 8622); some networks still \
             treat CS1 as ordinary traffic."
                .into(),
        ),
        (Some(Phb::Le), _) => w.push(
            "LE is lower-effort: networks that honour it starve this traffic under load.".into(),
        ),
        _ => {}
    }
    if v != 0 {
        match (phb, pool) {
            (Some(p), _) => w.push(format!(
                "{} has a standard meaning: devices along the path may queue or re-mark it. \
                 For a private signal prefer pool 2 (3, 7, 11, … 63).",
                p.short_name()
            )),
            (None, Pool::One | Pool::Three) => w.push(format!(
                "Pool {} is reserved for standards action. For a private signal prefer pool 2 \
                 (3, 7, 11, … 63).",
                pool.number()
            )),
            (None, Pool::Two) => {}
        }
    }
    w
}

fn notes(v: u8, ecn: Ecn) -> Vec<String> {
    let mut n = Vec::new();
    if v != 0 {
        let top = v & 0x07;
        let low = v & 0x38;
        let survive_top = if top == v {
            "keeps it (its top three bits are already 0)".to_string()
        } else {
            format!("turns it into DSCP {top}")
        };
        n.push(format!(
            "Re-marking (RFC 9435): clearing the top three bits {survive_top}; clearing the \
             low three turns it into DSCP {low}; many networks bleach it to 0. Treat DSCP as \
             meaningful inside your own network and check it arrives (tcpdump on the gateway)."
        ));
    }
    if ecn != Ecn::NotEct {
        n.push(format!(
            "ECN bits {} ({}) are set by the transport, not by policy; the DSCP target and nft \
             `dscp set` keep them.",
            ecn.name(),
            ecn.description()
        ));
    }
    n
}

fn section(o: &mut String, title: &str) {
    let _ = writeln!(o);
    let _ = writeln!(o, "{title}");
}

/// `  label           value`, wrapping prose at WIDTH under the value column.
fn field(o: &mut String, label: &str, value: &str) {
    let indent = 2 + LABEL;
    let lines = wrap(value, WIDTH - indent);
    for (i, line) in lines.iter().enumerate() {
        if i == 0 {
            let _ = writeln!(o, "  {label:<LABEL$}{line}");
        } else {
            let _ = writeln!(o, "{:indent$}{line}", "");
        }
    }
}

/// Expressions are never re-wrapped: one per line under the value column.
fn verbatim(o: &mut String, label: &str, lines: &[&str]) {
    for (i, line) in lines.iter().enumerate() {
        let label = if i == 0 { label } else { "" };
        let _ = writeln!(o, "  {label:<LABEL$}{line}");
    }
}

fn bullet(o: &mut String, mark: &str, text: &str) {
    for (i, line) in wrap(text, WIDTH - 4).iter().enumerate() {
        let lead = if i == 0 { mark } else { " " };
        let _ = writeln!(o, "  {lead} {line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_renders_within_80_columns() {
        for b in 0..=255u8 {
            let text = Explanation::of(DsByte::new(b)).render_text();
            for line in text.lines() {
                assert!(line.chars().count() <= WIDTH, "byte {b:#04x}: {line:?}");
            }
        }
    }

    #[test]
    fn seven_reads_as_the_guide_says() {
        let e = Explanation::parse("7", false).unwrap();
        let t = e.render_text();
        assert!(t.contains("0001 11.. = DSCP: 7 (unassigned; pool 2: experimental/local use)"));
        assert!(t.contains(".... ..00 = ECN: Not-ECT (0)"));
        assert!(t.contains("0x1c = 28 = 0b00011100"));
        assert!(t.contains("not a valid RFC 1349 value"));
        assert!(e.warnings.is_empty(), "{:?}", e.warnings);
    }

    #[test]
    fn hex_value_gets_the_tos_byte_hint() {
        let e = Explanation::parse("0x1c", false).unwrap();
        assert_eq!(e.dscp, 28);
        assert_eq!(e.name.as_deref(), Some("AF32"));
        let hint = e.tos_byte_hint.as_deref().unwrap();
        assert!(hint.contains("as a ToS byte, 0x1c is DSCP 7"), "{hint}");
        assert!(
            e.render_text()
                .lines()
                .nth(1)
                .unwrap()
                .contains("0x1c is DSCP 7")
        );
    }

    #[test]
    fn warnings_where_they_matter() {
        let ef = Explanation::parse("ef", false).unwrap();
        assert!(ef.warnings.iter().any(|w| w.contains("AC_VO")));
        let cs6 = Explanation::parse("cs6", false).unwrap();
        assert!(cs6.warnings.iter().any(|w| w.contains("network control")));
        let zero = Explanation::parse("0", false).unwrap();
        assert!(
            zero.warnings
                .iter()
                .any(|w| w.contains("cannot serve as a signal"))
        );
        let af41 = Explanation::parse("af41", false).unwrap();
        assert!(af41.warnings.iter().any(|w| w.contains("standard meaning")));
    }

    #[test]
    fn tos_byte_with_ecn() {
        let e = Explanation::parse("0x1f", true).unwrap();
        assert_eq!((e.dscp, e.ecn, e.ecn_name), (7, 3, "CE"));
        assert!(e.render_text().contains(".... ..11 = ECN: CE (3)"));
    }
}
