//! The pre-Diffserv reading of the same byte: RFC 791 precedence in the top
//! three bits and the RFC 1349 type-of-service bits below them.

use super::DsByte;

pub const PRECEDENCE_NAMES: [&str; 8] = [
    "routine",
    "priority",
    "immediate",
    "flash",
    "flash override",
    "CRITIC/ECP",
    "internetwork control",
    "network control",
];

/// RFC 1349 bits with their letters, most significant first.
const TOS_BITS: [(u8, char, &str); 4] = [
    (0x10, 'D', "minimize delay"),
    (0x08, 'T', "maximize throughput"),
    (0x04, 'R', "maximize reliability"),
    (0x02, 'C', "minimize monetary cost"),
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Legacy {
    pub precedence: u8,
    pub precedence_name: &'static str,
    /// The four RFC 1349 TOS bits (byte & 0x1e).
    pub tos_bits: u8,
    /// Letters of the set bits, e.g. `["D", "T", "R"]`.
    pub tos_letters: Vec<String>,
    pub tos_meanings: Vec<&'static str>,
    /// RFC 1349 defines only "none" or exactly one bit set.
    pub rfc1349_valid: bool,
}

impl Legacy {
    pub fn of(byte: DsByte) -> Legacy {
        let b = byte.value();
        let precedence = b >> 5;
        let set: Vec<_> = TOS_BITS.iter().filter(|(m, ..)| b & m != 0).collect();
        Legacy {
            precedence,
            precedence_name: PRECEDENCE_NAMES[usize::from(precedence)],
            tos_bits: b & 0x1e,
            tos_letters: set.iter().map(|(_, l, _)| l.to_string()).collect(),
            tos_meanings: set.iter().map(|(.., m)| *m).collect(),
            rfc1349_valid: set.len() <= 1,
        }
    }

    /// One line, e.g. `D T R (0x1c): not a valid RFC 1349 value`.
    pub fn tos_summary(&self) -> String {
        if self.tos_letters.is_empty() {
            return "none set (0x00): normal service".into();
        }
        let validity = if self.rfc1349_valid {
            format!("RFC 1349 \"{}\"", self.tos_meanings[0])
        } else {
            "not a valid RFC 1349 value (only one bit may be set)".into()
        };
        format!(
            "{} ({:#04x}): {validity}",
            self.tos_letters.join(" "),
            self.tos_bits
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guide_example_0x1c() {
        let l = Legacy::of(DsByte::new(0x1c));
        assert_eq!(l.precedence, 0);
        assert_eq!(l.precedence_name, "routine");
        assert_eq!(l.tos_letters, ["D", "T", "R"]);
        assert!(!l.rfc1349_valid);
    }

    #[test]
    fn exhaustive_precedence_and_validity() {
        for b in 0..=255u8 {
            let l = Legacy::of(DsByte::new(b));
            assert_eq!(l.precedence, b >> 5);
            let bits = (b & 0x1e).count_ones();
            assert_eq!(l.rfc1349_valid, bits <= 1, "byte {b:#04x}");
            assert_eq!(l.tos_letters.len() as u32, bits);
        }
        assert_eq!(Legacy::of(DsByte::new(0xb8)).precedence_name, "CRITIC/ECP");
        assert_eq!(
            Legacy::of(DsByte::new(0x10)).tos_meanings,
            ["minimize delay"]
        );
    }
}
