//! Per-hop behaviours: the names a DSCP carries, the RFC defining each,
//! the RFC 4594 service class, and the RFC 2474 pool.

use super::Dscp;

/// A named DSCP (per-hop behaviour or class selector).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phb {
    /// Default forwarding (DSCP 0), also called BE / CS0.
    Df,
    /// Class selector n (1..=7), RFC 2474.
    Cs(u8),
    /// Assured forwarding class x (1..=4), drop precedence y (1..=3), RFC 2597.
    Af(u8, u8),
    /// Expedited forwarding, RFC 3246.
    Ef,
    /// Voice-admit, RFC 5865.
    Va,
    /// Lower-effort, RFC 8622.
    Le,
    /// Non-queue-building, IANA-assigned from the NQB PHB specification.
    Nqb,
}

/// Every accepted class name with its DSCP, lower case, for parsing and listing.
pub const CLASS_NAMES: &[(&str, u8)] = &[
    ("cs0", 0),
    ("cs1", 8),
    ("cs2", 16),
    ("cs3", 24),
    ("cs4", 32),
    ("cs5", 40),
    ("cs6", 48),
    ("cs7", 56),
    ("af11", 10),
    ("af12", 12),
    ("af13", 14),
    ("af21", 18),
    ("af22", 20),
    ("af23", 22),
    ("af31", 26),
    ("af32", 28),
    ("af33", 30),
    ("af41", 34),
    ("af42", 36),
    ("af43", 38),
    ("ef", 46),
    ("va", 44),
    ("voice-admit", 44),
    ("le", 1),
    ("lephb", 1),
    ("df", 0),
    ("be", 0),
    ("nqb", 45),
];

impl Phb {
    /// The PHB a DSCP value is assigned to, if any.
    pub fn of(dscp: Dscp) -> Option<Phb> {
        let v = dscp.value();
        match v {
            0 => Some(Phb::Df),
            1 => Some(Phb::Le),
            44 => Some(Phb::Va),
            45 => Some(Phb::Nqb),
            46 => Some(Phb::Ef),
            _ if v.is_multiple_of(8) => Some(Phb::Cs(v / 8)),
            _ => {
                let (x, rest) = (v / 8, v % 8);
                if (1..=4).contains(&x) && matches!(rest, 2 | 4 | 6) {
                    Some(Phb::Af(x, rest / 2))
                } else {
                    None
                }
            }
        }
    }

    pub fn dscp(self) -> Dscp {
        let v = match self {
            Phb::Df => 0,
            Phb::Le => 1,
            Phb::Va => 44,
            Phb::Nqb => 45,
            Phb::Ef => 46,
            Phb::Cs(n) => n * 8,
            Phb::Af(x, y) => x * 8 + y * 2,
        };
        Dscp::new(v).expect("PHB values are six-bit")
    }

    /// Short upper-case name: `CS1`, `AF41`, `EF`, `VA`, `LE`, `DF`, `NQB`.
    pub fn short_name(self) -> String {
        match self {
            Phb::Df => "DF".into(),
            Phb::Cs(n) => format!("CS{n}"),
            Phb::Af(x, y) => format!("AF{x}{y}"),
            Phb::Ef => "EF".into(),
            Phb::Va => "VA".into(),
            Phb::Le => "LE".into(),
            Phb::Nqb => "NQB".into(),
        }
    }

    pub fn long_name(self) -> String {
        match self {
            Phb::Df => "Default Forwarding (best effort, also CS0/BE)".into(),
            Phb::Cs(n) => format!("Class Selector {n}"),
            Phb::Af(x, y) => {
                let drop = ["low", "medium", "high"][usize::from(y - 1)];
                format!("Assured Forwarding class {x}, {drop} drop precedence")
            }
            Phb::Ef => "Expedited Forwarding".into(),
            Phb::Va => "Voice-Admit (capacity-admitted EF)".into(),
            Phb::Le => "Lower-Effort".into(),
            Phb::Nqb => "Non-Queue-Building".into(),
        }
    }

    /// The document that defines the code point.
    pub fn rfc(self) -> &'static str {
        match self {
            Phb::Df | Phb::Cs(_) => "RFC 2474",
            Phb::Af(..) => "RFC 2597",
            Phb::Ef => "RFC 3246",
            Phb::Va => "RFC 5865",
            Phb::Le => "RFC 8622",
            Phb::Nqb => "IETF NQB PHB specification (IANA-assigned)",
        }
    }

    /// The RFC 4594 service class (as updated by RFC 5865 and RFC 8622).
    pub fn service_class(self) -> Option<&'static str> {
        Some(match self {
            Phb::Df => "Standard",
            Phb::Le => "Low-Priority Data (RFC 8622)",
            Phb::Cs(1) => "Low-Priority Data (superseded by LE, RFC 8622)",
            Phb::Cs(2) => "OAM",
            Phb::Cs(3) => "Broadcast Video",
            Phb::Cs(4) => "Real-Time Interactive",
            Phb::Cs(5) => "Signaling",
            Phb::Cs(6) => "Network Control",
            Phb::Af(1, _) => "High-Throughput Data",
            Phb::Af(2, _) => "Low-Latency Data",
            Phb::Af(3, _) => "Multimedia Streaming",
            Phb::Af(4, _) => "Multimedia Conferencing",
            Phb::Ef => "Telephony",
            Phb::Va => "Telephony, capacity-admitted (RFC 5865)",
            _ => return None,
        })
    }

    /// The name iptables' `--set-dscp-class` knows, if any (no LE, VA, NQB).
    pub fn iptables_class(self) -> Option<String> {
        match self {
            Phb::Df => Some("CS0".into()),
            Phb::Cs(_) | Phb::Af(..) | Phb::Ef => Some(self.short_name()),
            Phb::Va | Phb::Le | Phb::Nqb => None,
        }
    }

    /// The keyword nft accepts for this value, if any (`lephb`: `le` means `<=`).
    pub fn nft_name(self) -> Option<String> {
        match self {
            Phb::Df => Some("df".into()),
            Phb::Le => Some("lephb".into()),
            Phb::Nqb => None,
            _ => Some(self.short_name().to_lowercase()),
        }
    }
}

/// RFC 2474 code point pools, by the low bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pool {
    /// `xxxxx0`: standards action.
    One,
    /// `xxxx11`: experimental or local use.
    Two,
    /// `xxxx01`: standards action since RFC 8436 (was EXP/LU).
    Three,
}

impl Pool {
    pub fn of(dscp: Dscp) -> Pool {
        let v = dscp.value();
        if v & 1 == 0 {
            Pool::One
        } else if v & 3 == 3 {
            Pool::Two
        } else {
            Pool::Three
        }
    }

    pub fn number(self) -> u8 {
        match self {
            Pool::One => 1,
            Pool::Two => 2,
            Pool::Three => 3,
        }
    }

    pub fn pattern(self) -> &'static str {
        match self {
            Pool::One => "xxxxx0",
            Pool::Two => "xxxx11",
            Pool::Three => "xxxx01",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Pool::One => "standards action (RFC 2474)",
            Pool::Two => "experimental/local use (RFC 2474)",
            Pool::Three => "standards action since RFC 8436 (was experimental/local use)",
        }
    }

    /// Short label used on the bit line: `pool 2: experimental/local use`.
    pub fn label(self) -> &'static str {
        match self {
            Pool::One => "pool 1: standards action",
            Pool::Two => "pool 2: experimental/local use",
            Pool::Three => "pool 3: standards action (RFC 8436)",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_name_round_trips() {
        for (name, v) in CLASS_NAMES {
            let phb = Phb::of(Dscp::new(*v).unwrap()).expect(name);
            assert_eq!(phb.dscp().value(), *v, "{name}");
        }
    }

    #[test]
    fn exhaustive_names_follow_the_formulas() {
        for d in Dscp::all() {
            let v = d.value();
            let expected = match v {
                0 => Some("DF".to_string()),
                1 => Some("LE".into()),
                44 => Some("VA".into()),
                45 => Some("NQB".into()),
                46 => Some("EF".into()),
                _ if v.is_multiple_of(8) => Some(format!("CS{}", v / 8)),
                _ if (8..=38).contains(&v) && v % 2 == 0 && v % 8 != 0 => {
                    Some(format!("AF{}{}", v / 8, (v % 8) / 2))
                }
                _ => None,
            };
            assert_eq!(Phb::of(d).map(Phb::short_name), expected, "DSCP {v}");
            if let Some(p) = Phb::of(d) {
                assert_eq!(p.dscp(), d);
            }
        }
    }

    #[test]
    fn pools() {
        assert_eq!(Pool::of(Dscp::new(7).unwrap()), Pool::Two);
        assert_eq!(Pool::of(Dscp::new(1).unwrap()), Pool::Three);
        assert_eq!(Pool::of(Dscp::new(46).unwrap()), Pool::One);
        let twos = Dscp::all().filter(|d| Pool::of(*d) == Pool::Two).count();
        assert_eq!(twos, 16);
    }

    #[test]
    fn iptables_classes_exclude_newer_names() {
        assert_eq!(Phb::Le.iptables_class(), None);
        assert_eq!(Phb::Va.iptables_class(), None);
        assert_eq!(Phb::Af(4, 1).iptables_class().as_deref(), Some("AF41"));
        assert_eq!(Phb::Le.nft_name().as_deref(), Some("lephb"));
    }
}
