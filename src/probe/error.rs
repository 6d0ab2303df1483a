//! The one error every probe parser returns: the text was not what the tool
//! is known to print. The probe turns it into an `Unreadable` note.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ParseError {
    #[error("not the JSON expected: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{field} {value:?} is not a number")]
    BadNumber { field: &'static str, value: String },
    #[error("unrecognised output {0:?}")]
    Unrecognised(String),
}

/// A number as `ip` prints marks and masks: "0x3", "0xff", or bare "0".
pub(crate) fn hex_u32(field: &'static str, value: &str) -> Result<u32, ParseError> {
    let digits = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
        .unwrap_or(value);
    u32::from_str_radix(digits, 16).map_err(|_| ParseError::BadNumber {
        field,
        value: value.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_accepts_what_ip_prints() {
        assert_eq!(hex_u32("fwmark", "0xca6c").unwrap(), 0xca6c);
        assert_eq!(hex_u32("fwmark", "0").unwrap(), 0); // %#llx prints 0 without 0x
        assert_eq!(hex_u32("fwmask", "0xffffffff").unwrap(), u32::MAX);
        assert!(hex_u32("fwmark", "0x1ffffffff").is_err());
        assert!(hex_u32("fwmark", "mark").is_err());
    }
}
