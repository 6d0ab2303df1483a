//! The 802.11 user priority Linux gives a DSCP (cfg80211_classify8021d,
//! RFC 8325 defaults) and the WMM access category that priority lands in.

use super::Dscp;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccessCategory {
    Background,
    BestEffort,
    Video,
    Voice,
}

impl AccessCategory {
    /// 802.1D priority to access category (mac80211's ieee802_1d_to_ac).
    pub fn of_up(up: u8) -> AccessCategory {
        match up {
            1 | 2 => AccessCategory::Background,
            4 | 5 => AccessCategory::Video,
            6 | 7 => AccessCategory::Voice,
            _ => AccessCategory::BestEffort,
        }
    }

    pub fn short(self) -> &'static str {
        match self {
            AccessCategory::Background => "BK",
            AccessCategory::BestEffort => "BE",
            AccessCategory::Video => "VI",
            AccessCategory::Voice => "VO",
        }
    }

    pub fn long(self) -> &'static str {
        match self {
            AccessCategory::Background => "background",
            AccessCategory::BestEffort => "best effort",
            AccessCategory::Video => "video",
            AccessCategory::Voice => "voice",
        }
    }
}

/// The user priority Linux assigns without a QoS map: the top three DSCP bits,
/// with the RFC 8325 section 4 exceptions the kernel applies.
pub fn wifi_up(dscp: Dscp) -> u8 {
    match dscp.value() {
        10 | 12 | 14 | 16 => 0, // AF1x, CS2
        18 | 20 | 22 => 3,      // AF2x
        24 | 26 | 28 | 30 => 4, // CS3, AF3x
        44 | 46 => 6,           // VA, EF
        48 => 7,                // CS6
        v => v >> 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(v: u8) -> u8 {
        wifi_up(Dscp::new(v).unwrap())
    }

    #[test]
    fn rfc8325_overrides_and_default() {
        assert_eq!(up(7), 0);
        assert_eq!(up(8), 1); // CS1 stays background
        assert_eq!(up(10), 0);
        assert_eq!(up(16), 0);
        assert_eq!(up(18), 3);
        assert_eq!(up(24), 4);
        assert_eq!(up(34), 4); // AF41 default mapping
        assert_eq!(up(46), 6);
        assert_eq!(up(48), 7);
        assert_eq!(up(56), 7);
        assert_eq!(up(47), 5);
    }

    #[test]
    fn all_low_values_are_best_effort() {
        for v in 0..8 {
            assert_eq!(AccessCategory::of_up(up(v)), AccessCategory::BestEffort);
        }
        let voice: Vec<u8> = (0..64)
            .filter(|v| AccessCategory::of_up(up(*v)) == AccessCategory::Voice)
            .collect();
        assert!(voice.contains(&46) && voice.contains(&48) && !voice.contains(&47));
    }
}
