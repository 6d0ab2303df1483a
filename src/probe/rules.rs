//! `ip -j -4|-6 rule show`.

use super::Rule;
use super::error::{ParseError, hex_u32};
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
struct RawRule {
    #[serde(default)]
    priority: u32,
    /// `ip` prints the key `"not": null` for an inverted rule.
    #[serde(default, deserialize_with = "key_present")]
    not: bool,
    /// Address and prefix length come separately; the length is left out
    /// for host addresses.
    src: Option<String>,
    srclen: Option<u8>,
    dst: Option<String>,
    dstlen: Option<u8>,
    tos: Option<String>,
    /// A string either way: decimal, or an rt_dsfield name.
    dscp: Option<serde_json::Value>,
    dscp_mask: Option<String>,
    /// Hex strings; the mask is left out when it is 0xffffffff.
    fwmark: Option<String>,
    fwmask: Option<String>,
    iif: Option<String>,
    oif: Option<String>,
    table: Option<String>,
    #[serde(alias = "suppress_prefixlength")]
    suppress_prefixlen: Option<i64>,
    action: Option<String>,
    goto: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "key_present")]
    nop: bool,
    #[serde(default, deserialize_with = "key_present")]
    l3mdev: bool,
    /// Left out for unspec and kernel.
    protocol: Option<String>,
}

/// True whenever the key is there, whatever its value (`null` in practice).
fn key_present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(value != serde_json::Value::Bool(false))
}

pub fn parse_rules(json: &str) -> Result<Vec<Rule>, ParseError> {
    let raw: Vec<RawRule> = serde_json::from_str(json)?;
    raw.into_iter().map(rule).collect()
}

fn rule(r: RawRule) -> Result<Rule, ParseError> {
    let fwmark = r
        .fwmark
        .as_deref()
        .map(|m| hex_u32("fwmark", m))
        .transpose()?;
    let fwmask = match (fwmark, r.fwmask.as_deref()) {
        (_, Some(mask)) => Some(hex_u32("fwmask", mask)?),
        (Some(_), None) => Some(u32::MAX),
        (None, None) => None,
    };
    // Non-lookup actions, spelled the way `ip rule` takes them.
    let action = if let Some(target) = r.goto {
        Some(format!(
            "goto {}",
            target.as_str().map_or(target.to_string(), String::from)
        ))
    } else if r.nop {
        Some("nop".to_string())
    } else if r.l3mdev {
        Some("l3mdev".to_string())
    } else {
        r.action
    };
    Ok(Rule {
        priority: r.priority,
        src: r.src.map(|a| prefix(a, r.srclen)),
        dst: r.dst.map(|a| prefix(a, r.dstlen)),
        fwmark,
        fwmask,
        not: r.not,
        table: r.table,
        action,
        protocol: r.protocol,
        // -1 means unset; `ip` does not print it, but be safe.
        suppress_prefixlength: r.suppress_prefixlen.and_then(|n| u32::try_from(n).ok()),
        iif: r.iif,
        oif: r.oif,
        tos: r.tos,
        dscp: r
            .dscp
            .map(|d| d.as_str().map_or(d.to_string(), String::from)),
        dscp_mask: r
            .dscp_mask
            .as_deref()
            .map(|m| hex_u32("dscp_mask", m))
            .transpose()?
            .map(|m| m as u8),
    })
}

/// iproute2's stock rt_dsfield names (whole byte), which `ip rule` prints
/// for a `dscp` selector whose byte (dscp << 2) has one.
const DSFIELD_NAMES: &[(&str, u8)] = &[
    ("default", 0x00),
    ("AF11", 0x28),
    ("AF12", 0x30),
    ("AF13", 0x38),
    ("AF21", 0x48),
    ("AF22", 0x50),
    ("AF23", 0x58),
    ("AF31", 0x68),
    ("AF32", 0x70),
    ("AF33", 0x78),
    ("AF41", 0x88),
    ("AF42", 0x90),
    ("AF43", 0x98),
    ("CS1", 0x20),
    ("CS2", 0x40),
    ("CS3", 0x60),
    ("CS4", 0x80),
    ("CS5", 0xa0),
    ("CS6", 0xc0),
    ("CS7", 0xe0),
    ("EF", 0xb8),
];

/// A `dscp` selector as `ip rule` prints it: decimal, or a stock name.
pub fn dscp_of(printed: &str) -> Option<u8> {
    if let Ok(n) = printed.parse::<u8>() {
        return (n <= 63).then_some(n);
    }
    DSFIELD_NAMES
        .iter()
        .find(|(name, _)| *name == printed)
        .map(|(_, byte)| byte >> 2)
}

fn prefix(addr: String, len: Option<u8>) -> String {
    match len {
        Some(len) => format!("{addr}/{len}"),
        None => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::fixtures;

    fn at(rules: &[Rule], priority: u32) -> &Rule {
        rules
            .iter()
            .find(|r| r.priority == priority)
            .unwrap_or_else(|| panic!("no rule at {priority}"))
    }

    #[test]
    fn recorded_ipv4_rules() {
        let rules = parse_rules(fixtures::IP_4_RULE).unwrap();
        let prios: Vec<u32> = rules.iter().map(|r| r.priority).collect();
        assert_eq!(
            prios,
            [
                0, 5200, 5201, 5202, 5270, 6000, 6001, 32764, 32765, 32766, 32767, 32800
            ]
        );

        assert_eq!(
            *at(&rules, 0),
            Rule {
                src: Some("all".into()),
                table: Some("local".into()),
                ..Rule::default()
            }
        );

        let suppress = at(&rules, 5200);
        assert_eq!(suppress.table.as_deref(), Some("main"));
        assert_eq!(suppress.suppress_prefixlength, Some(0));
        assert_eq!(suppress.protocol.as_deref(), Some("77"));

        let lookup = at(&rules, 5201);
        assert_eq!((lookup.fwmark, lookup.fwmask), (Some(3), Some(0xff)));
        assert_eq!(lookup.table.as_deref(), Some("100"));
        assert_eq!((lookup.not, lookup.action.as_deref()), (false, None));
        assert_eq!(lookup.suppress_prefixlength, None);

        let unreachable = at(&rules, 5202);
        assert_eq!(unreachable.action.as_deref(), Some("unreachable"));
        assert_eq!(unreachable.table, None);
        assert_eq!(unreachable.protocol.as_deref(), Some("77"));

        let tailscale = at(&rules, 5270);
        assert_eq!(
            (tailscale.fwmark, tailscale.fwmask),
            (Some(0x40000), Some(0xff0000))
        );
        assert_eq!(tailscale.table.as_deref(), Some("52"));
        assert_eq!(tailscale.protocol, None); // unspec is not printed

        let selectors = at(&rules, 6000);
        assert_eq!(selectors.src.as_deref(), Some("10.64.0.0/16"));
        assert_eq!(selectors.dst.as_deref(), Some("198.51.100.7")); // host: no length
        assert_eq!(selectors.tos.as_deref(), Some("0x1c"));
        assert_eq!(selectors.iif.as_deref(), Some("eth0"));
        assert_eq!(at(&rules, 6001).oif.as_deref(), Some("wg0"));

        let wg_quick = at(&rules, 32765);
        assert!(wg_quick.not);
        assert_eq!(
            (wg_quick.fwmark, wg_quick.fwmask),
            (Some(0xca6c), Some(u32::MAX))
        );
        assert_eq!(wg_quick.table.as_deref(), Some("51820"));

        let no_mask = at(&rules, 32800);
        assert_eq!((no_mask.fwmark, no_mask.fwmask), (Some(7), Some(u32::MAX)));
        assert_eq!(at(&rules, 32766).table.as_deref(), Some("main"));
        assert!(rules.iter().filter(|r| r.priority != 32765).all(|r| !r.not));
    }

    #[test]
    fn recorded_ipv6_rules() {
        let rules = parse_rules(fixtures::IP_6_RULE).unwrap();
        assert_eq!(at(&rules, 5202).action.as_deref(), Some("unreachable"));
        assert_eq!(at(&rules, 6000).src.as_deref(), Some("fd00:64::/64"));
        // `dsfield 0xb8` comes back under its rt_dsfield name.
        assert_eq!(at(&rules, 6002).tos.as_deref(), Some("EF"));
        assert!(at(&rules, 32765).not);
        assert!(rules.iter().all(|r| r.priority != 32767)); // IPv6 has no default rule
    }

    #[test]
    fn other_actions_and_shapes() {
        let rules = parse_rules(
            r#"[{"priority":1,"src":"all","goto":32000},
                {"priority":2,"src":"all","nop":null},
                {"priority":3,"src":"all","l3mdev":null},
                {"priority":4,"src":"0","srclen":8,"fwmark":"0","fwmask":"0xff","table":"main"},
                {"priority":5,"src":"all","table":"main","suppress_prefixlength":0}]"#,
        )
        .unwrap();
        let actions: Vec<Option<&str>> = rules.iter().map(|r| r.action.as_deref()).collect();
        assert_eq!(
            actions,
            [Some("goto 32000"), Some("nop"), Some("l3mdev"), None, None]
        );
        assert_eq!(rules[3].src.as_deref(), Some("0/8"));
        assert_eq!((rules[3].fwmark, rules[3].fwmask), (Some(0), Some(0xff)));
        assert_eq!(rules[4].suppress_prefixlength, Some(0));
    }

    #[test]
    fn dscp_selectors_as_iproute2_6_15_prints_them() {
        // Recorded from `ip -j rule show` (iproute2 6.15, Linux 6.18).
        let rules = parse_rules(
            r#"[{"priority":100,"src":"all","table":"100","protocol":"213","dscp":"7","dscp_mask":"0x3f"},
                {"priority":101,"src":"all","action":"unreachable","protocol":"213","dscp":"EF","dscp_mask":"0x3f"},
                {"priority":102,"src":"all","table":"100","dscp":"16","dscp_mask":"0x30"},
                {"priority":103,"src":"all","table":"100","dscp":"7"},
                {"priority":104,"src":"all","table":"100","dscp":"MINE"}]"#,
        )
        .unwrap();
        let values: Vec<Option<u8>> = rules.iter().map(Rule::dscp_value).collect();
        // A partial mask or a locally added name is not a selector we write.
        assert_eq!(values, [Some(7), Some(46), None, Some(7), None]);
        assert_eq!(rules[1].action.as_deref(), Some("unreachable"));
        assert_eq!(rules[2].dscp_mask, Some(0x30));
        assert_eq!(dscp_of("CS1"), Some(8));
        assert_eq!(dscp_of("64"), None);
    }

    #[test]
    fn bad_output_is_an_error() {
        assert!(parse_rules("").is_err());
        assert!(parse_rules(r#"[{"priority":1,"fwmark":"zz"}]"#).is_err());
    }
}
