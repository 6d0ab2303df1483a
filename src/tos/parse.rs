//! Parsing every notation an admin meets: decimal, hex, binary, class names,
//! and whole ToS bytes when the caller says so.

use super::{CLASS_NAMES, DsByte, Dscp};
use crate::text::clip;
use thiserror::Error;

/// What a DSCP may be written as; every name of `CLASS_NAMES` is covered
/// (a test holds it to that).
const DSCP_FORMS: &str = "use 0–63 (0x00–0x3f, 0b000000–0b111111) or a class name like af41 \
                          (cs0–cs7, af11–af43, ef, va, le, nqb, df/be)";
const TOS_FORMS: &str = "use a whole ToS byte 0–255 (0x00–0xff, 0b00000000–0b11111111)";

/// Where a value was given: `explain` has a `--tos` option for whole bytes;
/// a profile key or another command's option takes a DSCP only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Explain,
    DscpOnly,
}

/// A rejected value. `Display` speaks to `explain`'s command line (which
/// has `--tos`); `message(Context::DscpOnly)` to a profile or another option.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("{}", self.message(Context::Explain))]
    Empty,
    /// `as_byte`: the value read as a whole ToS byte, when it fits in one.
    #[error("{}", self.message(Context::Explain))]
    DscpOutOfRange { given: String, as_byte: Option<u8> },
    #[error("{}", self.message(Context::Explain))]
    TosOutOfRange { given: String },
    #[error("{}", self.message(Context::Explain))]
    UnknownName { given: String },
    #[error("{}", self.message(Context::Explain))]
    Malformed { given: String, tos: bool },
    #[error("{}", self.message(Context::Explain))]
    NameWithTos { given: String },
}

impl ParseError {
    /// One line: what was wrong, what is accepted, in the words of `ctx`.
    /// The input is quoted clipped to 40 characters.
    pub fn message(&self, ctx: Context) -> String {
        let forms = match ctx {
            Context::Explain => format!("{DSCP_FORMS}, or --tos for a whole ToS byte"),
            Context::DscpOnly => DSCP_FORMS.to_string(),
        };
        match self {
            ParseError::Empty => format!("empty DSCP value: {forms}"),
            ParseError::DscpOutOfRange { given, as_byte } => {
                let given = clip(given);
                let hint = match (as_byte, ctx) {
                    (Some(b), Context::Explain) => format!(
                        " (as a ToS byte, {given} is DSCP {}: use --tos {given})",
                        DsByte::new(*b).dscp()
                    ),
                    (Some(b), Context::DscpOnly) => {
                        let d = DsByte::new(*b).dscp();
                        format!(" (if {given} is a whole ToS byte, its DSCP is {d}: write {d})")
                    }
                    (None, _) => String::new(),
                };
                format!("DSCP {given} is out of range: {forms}{hint}")
            }
            ParseError::TosOutOfRange { given } => {
                format!("ToS byte {} is out of range: {TOS_FORMS}", clip(given))
            }
            ParseError::UnknownName { given } => {
                format!("unknown DSCP class name {:?}: {forms}", clip(given))
            }
            ParseError::Malformed { given, tos: true } => {
                format!("{:?} is not a number: {TOS_FORMS}", clip(given))
            }
            ParseError::Malformed { given, tos: false } => {
                format!("{:?} is not a number: {forms}", clip(given))
            }
            ParseError::NameWithTos { given } => format!(
                "{:?} is a class name, but --tos takes a whole byte: {TOS_FORMS}, or drop --tos",
                clip(given)
            ),
        }
    }
}

/// A number as written, with the base it was written in.
struct Literal {
    value: u64,
    radix: u32,
}

/// Parse `7`, `0x7`, `0X1C`, `0b000111`. `None` when the text is not a
/// well-formed unsigned number in any of those notations.
fn parse_literal(s: &str) -> Option<Literal> {
    let lower = s.to_ascii_lowercase();
    let (digits, radix) = if let Some(h) = lower.strip_prefix("0x") {
        (h, 16)
    } else if let Some(b) = lower.strip_prefix("0b") {
        (b, 2)
    } else {
        (lower.as_str(), 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // Saturate very long numbers so they are reported as out of range, not malformed.
    let value = u64::from_str_radix(digits, radix).unwrap_or(u64::MAX);
    Some(Literal { value, radix })
}

fn looks_numeric(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+')
}

/// Parse a DSCP in any notation `explain` accepts.
pub fn parse_dscp(input: &str) -> Result<Dscp, ParseError> {
    parse_value(input, false).map(|v| v.dscp())
}

/// Parse a whole ToS / traffic-class byte (numbers only).
pub fn parse_tos_byte(input: &str) -> Result<DsByte, ParseError> {
    parse_value(input, true).map(|v| v.byte)
}

/// The parsed value with what the notation suggests about intent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    pub byte: DsByte,
    /// Written in hex or binary, a multiple of 4: it may have been meant as a ToS byte.
    pub maybe_tos_byte: bool,
}

impl Parsed {
    pub fn dscp(self) -> Dscp {
        self.byte.dscp()
    }
}

/// Parse as a DSCP (`tos == false`) or as a whole byte (`tos == true`).
pub fn parse_value(input: &str, tos: bool) -> Result<Parsed, ParseError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(ParseError::Empty);
    }
    if looks_numeric(s) {
        if let Some(rest) = s.strip_prefix('-')
            && parse_literal(rest).is_some()
        {
            return Err(out_of_range(s, tos, None));
        }
        let lit = parse_literal(s).ok_or_else(|| ParseError::Malformed {
            given: s.into(),
            tos,
        })?;
        return if tos {
            u8::try_from(lit.value)
                .map(|b| Parsed {
                    byte: DsByte::new(b),
                    maybe_tos_byte: false,
                })
                .map_err(|_| out_of_range(s, true, None))
        } else {
            match u8::try_from(lit.value).ok().and_then(Dscp::new) {
                Some(d) => Ok(Parsed {
                    byte: d.to_byte(),
                    maybe_tos_byte: lit.radix != 10 && d.value() % 4 == 0 && d.value() != 0,
                }),
                None => Err(out_of_range(s, false, u8::try_from(lit.value).ok())),
            }
        };
    }
    let lower = s.to_ascii_lowercase();
    match CLASS_NAMES.iter().find(|(n, _)| *n == lower) {
        Some(_) if tos => Err(ParseError::NameWithTos { given: s.into() }),
        Some((_, v)) => Ok(Parsed {
            byte: Dscp::new(*v).expect("class table is six-bit").to_byte(),
            maybe_tos_byte: false,
        }),
        None => Err(ParseError::UnknownName { given: s.into() }),
    }
}

fn out_of_range(given: &str, tos: bool, as_byte: Option<u8>) -> ParseError {
    if tos {
        return ParseError::TosOutOfRange {
            given: given.into(),
        };
    }
    ParseError::DscpOutOfRange {
        given: given.into(),
        as_byte,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> u8 {
        parse_dscp(s).unwrap_or_else(|e| panic!("{s}: {e}")).value()
    }

    #[test]
    fn numeric_notations() {
        for s in [
            "7", "0x7", "0x07", "0X07", "0b000111", "0b111", " 7 ", "007",
        ] {
            assert_eq!(d(s), 7, "{s}");
        }
        assert_eq!(d("63"), 63);
        assert_eq!(d("0x3f"), 63);
        assert_eq!(d("0"), 0);
    }

    #[test]
    fn every_decimal_hex_and_binary_form_of_every_dscp() {
        for v in 0..64u8 {
            assert_eq!(d(&v.to_string()), v);
            assert_eq!(d(&format!("{v:#x}")), v);
            assert_eq!(d(&format!("{v:#04x}")), v);
            assert_eq!(d(&format!("0b{v:06b}")), v);
        }
    }

    #[test]
    fn names_case_insensitive() {
        for (name, v) in CLASS_NAMES {
            assert_eq!(d(name), *v, "{name}");
            assert_eq!(d(&name.to_uppercase()), *v, "{name}");
        }
        assert_eq!(d("Voice-Admit"), 44);
        assert_eq!(d("LEPHB"), 1);
    }

    #[test]
    fn rejected_forms() {
        for s in [
            "64",
            "-1",
            "0x40",
            "cs10",
            "af44",
            "af5",
            "",
            "   ",
            "7x",
            "0x",
            "0b",
            "0b2",
            "+7",
            "ef1",
            "af",
            "cs",
            "cs8",
            "af14",
            "af01",
            "1.5",
            "7 7",
            "0x1g",
            "99999999999999999999999",
        ] {
            let e = parse_dscp(s).expect_err(s);
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "one line: {msg}");
            assert!(msg.contains("0–63") || msg.contains("0–255"), "{s}: {msg}");
        }
    }

    #[test]
    fn error_messages_name_the_problem() {
        assert_eq!(
            parse_dscp("64").unwrap_err().to_string(),
            "DSCP 64 is out of range: use 0–63 (0x00–0x3f, 0b000000–0b111111) or a class name \
             like af41 (cs0–cs7, af11–af43, ef, va, le, nqb, df/be), or --tos for a whole ToS \
             byte (as a ToS byte, 64 is DSCP 16: use --tos 64)"
        );
        assert!(matches!(
            parse_dscp("-1"),
            Err(ParseError::DscpOutOfRange { .. })
        ));
        assert!(matches!(
            parse_dscp("cs10"),
            Err(ParseError::UnknownName { .. })
        ));
        assert!(matches!(
            parse_dscp("7x"),
            Err(ParseError::Malformed { .. })
        ));
        assert!(matches!(parse_dscp(""), Err(ParseError::Empty)));
    }

    /// Every accepted class name appears in the accepted forms (a range like
    /// cs0–cs7 counts for its members).
    #[test]
    fn the_accepted_forms_name_every_class_name() {
        let msg = parse_dscp("cs10").unwrap_err().message(Context::DscpOnly);
        let listed = |n: &str| {
            msg.contains(&format!(" {n},"))
                || msg.contains(&format!("({n},"))
                || msg.contains(&format!(", {n})"))
                || msg.contains(&format!("{n}/"))
                || msg.contains(&format!("/{n}"))
        };
        for (name, _) in CLASS_NAMES {
            let in_range = (name.starts_with("cs") || name.starts_with("af")) && name.len() <= 4;
            let alias = matches!(*name, "voice-admit" | "lephb");
            assert!(
                in_range || alias || listed(name),
                "{name} missing from: {msg}"
            );
        }
    }

    /// A profile key or `watch --dscp` has no --tos: the message must not
    /// send the user there, and a ToS-byte reading says which DSCP to write.
    #[test]
    fn outside_explain_no_tos_option_is_suggested() {
        for bad in ["64", "cs10", "7x", "", "-1"] {
            let e = parse_dscp(bad).unwrap_err();
            let m = e.message(Context::DscpOnly);
            assert!(!m.contains("--tos"), "{bad}: {m}");
            assert!(m.contains("0–63") && m.contains("nqb"), "{bad}: {m}");
            assert!(
                e.to_string().contains("--tos"),
                "{bad}: explain keeps --tos"
            );
        }
        assert!(
            parse_dscp("0x70")
                .unwrap_err()
                .message(Context::DscpOnly)
                .ends_with("(if 0x70 is a whole ToS byte, its DSCP is 28: write 28)")
        );
    }

    #[test]
    fn huge_values_are_quoted_clipped() {
        let big = "9".repeat(100_000);
        for input in [
            big.clone(),
            format!("x{big}"),
            format!("1{}", "z".repeat(5000)),
        ] {
            for tos in [false, true] {
                let m = parse_value(&input, tos).unwrap_err().to_string();
                assert!(m.chars().count() < 400, "{} chars", m.chars().count());
                assert!(m.contains('…'), "{m}");
            }
        }
        assert_eq!(clip("short"), "short");
        assert_eq!(clip(&"é".repeat(41)), format!("{}…", "é".repeat(40)));
    }

    #[test]
    fn tos_bytes() {
        assert_eq!(parse_tos_byte("0x1c").unwrap().value(), 0x1c);
        assert_eq!(parse_tos_byte("255").unwrap().value(), 255);
        assert_eq!(parse_tos_byte("0b11111111").unwrap().value(), 255);
        assert!(matches!(
            parse_tos_byte("256"),
            Err(ParseError::TosOutOfRange { .. })
        ));
        assert!(matches!(
            parse_tos_byte("ef"),
            Err(ParseError::NameWithTos { .. })
        ));
        for b in 0..=255u8 {
            assert_eq!(parse_tos_byte(&format!("{b:#04x}")).unwrap().value(), b);
        }
    }

    #[test]
    fn hex_multiple_of_four_may_be_a_tos_byte() {
        assert!(parse_value("0x1c", false).unwrap().maybe_tos_byte);
        assert!(!parse_value("28", false).unwrap().maybe_tos_byte);
        assert!(!parse_value("0x07", false).unwrap().maybe_tos_byte);
        assert!(!parse_value("0x00", false).unwrap().maybe_tos_byte);
    }
}
