//! Pure model of the IP DS field (IPv4 ToS byte / IPv6 traffic class):
//! the 6-bit DSCP, the 2-bit ECN, their names, legacy readings and the
//! exact expressions each tool takes. No I/O here.

mod expr;
mod legacy;
mod parse;
mod phb;
mod wifi;

pub use expr::{Expressions, IpRuleTos};
pub use legacy::{Legacy, PRECEDENCE_NAMES};
pub use parse::{Context, ParseError, parse_dscp, parse_tos_byte, parse_value};
pub use phb::{CLASS_NAMES, Phb, Pool};
pub use wifi::{AccessCategory, wifi_up};

use std::fmt;

/// A 6-bit Differentiated Services Code Point (0..=63).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Dscp(u8);

impl Dscp {
    pub const MAX: u8 = 63;

    /// `None` when `v` does not fit in six bits.
    pub const fn new(v: u8) -> Option<Dscp> {
        if v <= Self::MAX { Some(Dscp(v)) } else { None }
    }

    pub const fn value(self) -> u8 {
        self.0
    }

    /// The whole DS byte carrying this DSCP with ECN Not-ECT.
    pub const fn to_byte(self) -> DsByte {
        DsByte(self.0 << 2)
    }

    pub fn all() -> impl Iterator<Item = Dscp> {
        (0..=Self::MAX).map(Dscp)
    }
}

impl fmt::Display for Dscp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The 2-bit Explicit Congestion Notification field (RFC 3168).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ecn {
    NotEct = 0,
    Ect1 = 1,
    Ect0 = 2,
    Ce = 3,
}

impl Ecn {
    pub const fn from_bits(bits: u8) -> Ecn {
        match bits & 3 {
            0 => Ecn::NotEct,
            1 => Ecn::Ect1,
            2 => Ecn::Ect0,
            _ => Ecn::Ce,
        }
    }

    pub const fn bits(self) -> u8 {
        self as u8
    }

    /// The short name Wireshark and RFC 3168 use.
    pub const fn name(self) -> &'static str {
        match self {
            Ecn::NotEct => "Not-ECT",
            Ecn::Ect1 => "ECT(1)",
            Ecn::Ect0 => "ECT(0)",
            Ecn::Ce => "CE",
        }
    }

    pub const fn description(self) -> &'static str {
        match self {
            Ecn::NotEct => "Not ECN-Capable Transport",
            Ecn::Ect1 => "ECN-Capable Transport (1), used by L4S",
            Ecn::Ect0 => "ECN-Capable Transport (0)",
            Ecn::Ce => "Congestion Experienced",
        }
    }
}

/// The whole DS byte: DSCP in the top six bits, ECN in the low two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DsByte(u8);

impl DsByte {
    pub const fn new(byte: u8) -> DsByte {
        DsByte(byte)
    }

    pub const fn from_parts(dscp: Dscp, ecn: Ecn) -> DsByte {
        DsByte((dscp.0 << 2) | ecn as u8)
    }

    pub const fn value(self) -> u8 {
        self.0
    }

    pub const fn dscp(self) -> Dscp {
        Dscp(self.0 >> 2)
    }

    pub const fn ecn(self) -> Ecn {
        Ecn::from_bits(self.0)
    }

    /// The same byte with the DSCP replaced and ECN kept, as the DSCP target does.
    pub const fn with_dscp(self, dscp: Dscp) -> DsByte {
        DsByte((dscp.0 << 2) | (self.0 & 3))
    }

    pub const fn with_ecn(self, ecn: Ecn) -> DsByte {
        DsByte((self.0 & 0xfc) | ecn as u8)
    }

    /// Flip bit `bit` (7 = most significant, as drawn left to right from 7 to 0).
    pub const fn toggle_bit(self, bit: u8) -> DsByte {
        DsByte(self.0 ^ (1 << (bit & 7)))
    }

    /// What `tcpdump -v` prints for this byte: `tos 0x1c` for IPv4 (`%x`,
    /// no padding, the ECN codepoint appended as `,CE`), `class 0x1c` for
    /// IPv6 (`%02x`, left out when 0). From tcpdump's print-ip.c and print-ip6.c.
    pub fn tcpdump_v(self) -> (String, Option<String>) {
        let b = self.0;
        let ecn = match b & 3 {
            0 => "",
            1 => ",ECT(1)",
            2 => ",ECT(0)",
            _ => ",CE",
        };
        (
            format!("tos {b:#x}{ecn}"),
            (b != 0).then(|| format!("class {b:#04x}")),
        )
    }

    /// Wireshark-style bit picture of the DSCP part: `0001 11..`.
    pub fn dscp_bits_picture(self) -> String {
        let b = format!("{:08b}", self.0);
        format!("{} {}..", &b[0..4], &b[4..6])
    }

    /// Wireshark-style bit picture of the ECN part: `.... ..00`.
    pub fn ecn_bits_picture(self) -> String {
        let b = format!("{:08b}", self.0);
        format!(".... ..{}", &b[6..8])
    }
}

impl fmt::Display for DsByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_splits_and_joins() {
        for b in 0..=255u8 {
            let byte = DsByte::new(b);
            assert_eq!(byte.dscp().value(), b >> 2, "byte {b:#04x}");
            assert_eq!(byte.ecn().bits(), b & 3, "byte {b:#04x}");
            assert_eq!(DsByte::from_parts(byte.dscp(), byte.ecn()), byte);
            let pic = format!("{}{}", byte.dscp_bits_picture(), byte.ecn_bits_picture());
            let bits: String = pic.chars().filter(|c| *c == '0' || *c == '1').collect();
            assert_eq!(bits, format!("{b:08b}"));
        }
    }

    #[test]
    fn dscp_bounds() {
        assert!(Dscp::new(63).is_some());
        assert!(Dscp::new(64).is_none());
        assert_eq!(Dscp::all().count(), 64);
    }

    #[test]
    fn with_dscp_keeps_ecn() {
        let b = DsByte::new(0x03).with_dscp(Dscp::new(7).unwrap());
        assert_eq!(b.value(), 0x1f);
        assert_eq!(b.ecn(), Ecn::Ce);
    }

    #[test]
    fn toggle_bits() {
        assert_eq!(DsByte::new(0).toggle_bit(7).value(), 0x80);
        assert_eq!(DsByte::new(0x80).toggle_bit(7).value(), 0);
        assert_eq!(DsByte::new(0).toggle_bit(0).value(), 1);
    }

    #[test]
    fn guide_examples() {
        // design.md §1: byte 0x1c is DSCP 7; DSCP 28 is byte 0x70.
        assert_eq!(DsByte::new(0x1c).dscp().value(), 7);
        assert_eq!(Dscp::new(28).unwrap().to_byte().value(), 0x70);
        assert_eq!(DsByte::new(0x1c).dscp_bits_picture(), "0001 11..");
        assert_eq!(DsByte::new(0x1c).ecn_bits_picture(), ".... ..00");
    }
}
