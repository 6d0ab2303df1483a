//! Our table read back from `nft list` text into the typed model. nft prints
//! what the kernel holds, normalised: marks as 0x%08x, `& ~M | V` folded to
//! `& (~M | V) | V`, DSCP values by name when one exists (`ef`, `cs0`), a
//! counter with its figures. Anything else is not ours and is refused.

use super::{COMMENT, FAMILY, NftHook, NftRule, NftRuleset, TABLE};
use crate::backend::op::{Family, MarkMask, digits, hex};
use crate::probe::parse_nft_ruleset;

/// A rule's counter as nft printed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftCounter {
    pub hook: NftHook,
    pub rule: NftRule,
    pub packets: u64,
    pub bytes: u64,
}

/// `nft -j list table inet dscproute`: per rule of our table, in the order
/// listed, its chain and counter (packets, bytes; a rule without a counter
/// reads 0, 0). None when it is not that JSON.
pub fn json_counters(json: &str) -> Option<Vec<(String, u64, u64)>> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let mut out = Vec::new();
    for item in v.get("nftables")?.as_array()? {
        let Some(rule) = item.get("rule") else {
            continue;
        };
        if rule.get("family")?.as_str()? != FAMILY || rule.get("table")?.as_str()? != TABLE {
            continue;
        }
        let counter = rule
            .get("expr")?
            .as_array()?
            .iter()
            .find_map(|e| e.get("counter"));
        let n = |k: &str| counter.and_then(|c| c.get(k)?.as_u64()).unwrap_or(0);
        out.push((
            rule.get("chain")?.as_str()?.to_string(),
            n("packets"),
            n("bytes"),
        ));
    }
    Some(out)
}

/// Put the JSON's numbers on the rules read from the listing, chain by
/// chain in order; a chain whose rule count differs keeps the listing's.
pub fn take_json_counts(counters: &mut [NftCounter], json: &[(String, u64, u64)]) {
    // A chain's rules are listed one after another.
    let mut hooks: Vec<NftHook> = counters.iter().map(|c| c.hook).collect();
    hooks.dedup();
    for hook in hooks {
        let from_json: Vec<(u64, u64)> = json
            .iter()
            .filter(|(chain, _, _)| chain == hook.name())
            .map(|&(_, p, b)| (p, b))
            .collect();
        let mine: Vec<&mut NftCounter> = counters.iter_mut().filter(|c| c.hook == hook).collect();
        if mine.len() != from_json.len() {
            continue;
        }
        for (c, (packets, bytes)) in mine.into_iter().zip(from_json) {
            c.packets = packets;
            c.bytes = bytes;
        }
    }
}

/// Our table in `text` (`nft list ruleset` or `nft list table inet
/// dscproute`): None when there is none, an error when there is one that is
/// not exactly what dscproute writes.
pub fn parse_table(text: &str) -> Result<Option<(NftRuleset, Vec<NftCounter>)>, String> {
    let tables = parse_nft_ruleset(text);
    let Some(t) = tables
        .iter()
        .find(|t| t.family == FAMILY && t.name == TABLE)
    else {
        return Ok(None);
    };
    if !ours_from_text(text) {
        return Err(format!("it has no comment \"{COMMENT}\""));
    }
    let mut rs = NftRuleset::default();
    let mut counters = Vec::new();
    for c in &t.chains {
        let hook = NftHook::by_name(&c.name)
            .ok_or_else(|| format!("chain {} is not one of ours", c.name))?;
        let (kind, hk, _, prio) = hook.base();
        match &c.base {
            Some(b) if b.kind == kind && b.hook == hk && b.priority == Some(prio) => {}
            _ => return Err(format!("chain {} is not declared as ours", c.name)),
        }
        if rs.chains.iter().any(|x| x.hook == hook) {
            return Err(format!("chain {} twice", c.name));
        }
        rs.chains.push(super::NftChain {
            hook,
            rules: Vec::new(),
        });
        for line in &c.rules {
            let (rule, packets, bytes) = parse_rule(line)?;
            counters.push(NftCounter {
                hook,
                rule: rule.clone(),
                packets,
                bytes,
            });
            rs.chains.last_mut().expect("pushed").rules.push(rule);
        }
    }
    rs.chains.sort_by_key(|c| c.hook);
    rs.check()?;
    Ok(Some((rs, counters)))
}

/// Does the text hold our table with our comment as its first line?
pub fn ours_from_text(text: &str) -> bool {
    let head = format!("table {FAMILY} {TABLE} {{");
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    while let Some(l) = lines.next() {
        if l == head {
            return lines.next() == Some(&format!("comment \"{COMMENT}\"")[..]);
        }
    }
    false
}

/// One rule line: the rule, its packets and bytes.
pub fn parse_rule(line: &str) -> Result<(NftRule, u64, u64), String> {
    let not_ours = || format!("rule `{}` is not one dscproute writes", super::clip(line));
    let mut w: Vec<&str> = line.split_whitespace().collect();
    // Our comment ends the rule.
    if w.len() < 2 || w[w.len() - 2..] != ["comment", "\"dscproute\""] {
        return Err(not_ours());
    }
    w.truncate(w.len() - 2);
    let at = w
        .windows(5)
        .position(|x| x[0] == "counter" && x[1] == "packets" && x[3] == "bytes")
        .ok_or_else(not_ours)?;
    let packets = w[at + 2].parse().map_err(|_| not_ours())?;
    let bytes = w[at + 4].parse().map_err(|_| not_ours())?;
    let (matches, statement) = (&w[..at], &w[at + 5..]);
    let rule = read(matches, statement).ok_or_else(not_ours)?;
    Ok((rule, packets, bytes))
}

fn read(m: &[&str], s: &[&str]) -> Option<NftRule> {
    Some(match m {
        ["meta", "skgid", gid] => {
            let gid = gid.trim_matches('"').to_string();
            NftRule::SkgidConnmark {
                gid,
                mark: set_mark("ct", s)?,
            }
        }
        ["socket", "cgroupv2", "level", n, p] => NftRule::CgroupConnmark {
            path: p.trim_matches('"').to_string(),
            level: n.parse().ok()?,
            mark: set_mark("ct", s)?,
        },
        ["meta", "skuid", uid] => NftRule::SkuidConnmark {
            uid: uid.trim_matches('"').to_string(),
            mark: set_mark("ct", s)?,
        },
        ["ct", "mark", ..] => {
            let test = test_mark("ct", m)?;
            match s {
                [p, "dscp", "set", d] => NftRule::ConnmarkDscp {
                    family: family(p)?,
                    mark: test,
                    dscp: dscp(d)?,
                },
                _ => {
                    let mark = set_mark("meta", s)?;
                    (mark == test).then_some(NftRule::ConnmarkMark { mark })?
                }
            }
        }
        ["iifname", "!=", dev, p, "dscp", d] => NftRule::DscpMark {
            family: family(p)?,
            not_in: quoted(dev)?,
            dscp: dscp(d)?,
            mark: set_mark("meta", s)?,
        },
        ["meta", "mark", ..] => {
            let test = test_mark("meta", m)?;
            let mark = set_mark("ct", s)?;
            (mark == test).then_some(NftRule::SaveMark { mark })?
        }
        ["oifname", dev, p, "dscp", d] => {
            let f = family(p)?;
            match s {
                [q, "dscp", "set", z] if family(q)? == f && dscp(z)? == 0 => NftRule::ScrubDscp {
                    family: f,
                    out: quoted(dev)?,
                    dscp: dscp(d)?,
                },
                _ => return None,
            }
        }
        ["oifname", dev, rest @ ..] if s == ["masquerade"] => {
            let (fam, test) = match rest {
                ["meta", "nfproto", "ipv4", t @ ..] => (Some(Family::V4), t),
                ["meta", "nfproto", "ipv6", t @ ..] => (Some(Family::V6), t),
                t => (None, t),
            };
            if test.is_empty() {
                NftRule::MasqueradeAll {
                    family: fam,
                    out: quoted(dev)?,
                }
            } else {
                NftRule::Masquerade {
                    family: fam,
                    out: quoted(dev)?,
                    mark: test_mark("meta", test)?,
                }
            }
        }
        _ => return None,
    })
}

fn family(p: &str) -> Option<Family> {
    match p {
        "ip" => Some(Family::V4),
        "ip6" => Some(Family::V6),
        _ => None,
    }
}

fn quoted(s: &str) -> Option<String> {
    s.strip_prefix('"')?.strip_suffix('"').map(str::to_string)
}

/// `0x07`, `7`, or the name nft prints for a known value.
fn dscp(s: &str) -> Option<u8> {
    let n = if s.starts_with("0x") {
        hex(s)?
    } else if let Some(n) = digits(s) {
        n
    } else {
        let named = |x: u32| Some(x);
        match s {
            "df" | "be" => named(0)?,
            "lephb" => 1,
            "va" => 44,
            "ef" => 46,
            _ => {
                if let Some(c) = s.strip_prefix("cs") {
                    let n = digits(c).filter(|n| *n <= 7)?;
                    n * 8
                } else {
                    let c = s.strip_prefix("af")?.as_bytes();
                    match c {
                        [x @ b'1'..=b'4', y @ b'1'..=b'3'] => {
                            8 * u32::from(x - b'0') + 2 * u32::from(y - b'0')
                        }
                        _ => return None,
                    }
                }
            }
        }
    };
    u8::try_from(n).ok().filter(|d| *d <= 63)
}

/// `KEY mark & M == V`, or `KEY mark V` for a full mask.
fn test_mark(key: &str, w: &[&str]) -> Option<MarkMask> {
    match w {
        [k, "mark", "&", m, "==", v] if *k == key => Some(MarkMask {
            value: hex(v)?,
            mask: hex(m)?,
        }),
        [k, "mark", v] if *k == key => Some(MarkMask {
            value: hex(v)?,
            mask: u32::MAX,
        }),
        _ => None,
    }
}

/// `KEY mark set KEY mark & A | V` where nft folded `~M | V` into A (or
/// dropped the parts that do nothing): M is `~A | V`.
fn set_mark(key: &str, w: &[&str]) -> Option<MarkMask> {
    let (a, v) = match w {
        [k, "mark", "set", k2, "mark", "&", a, "|", v] if *k == key && *k2 == key => {
            (hex(a)?, hex(v)?)
        }
        [k, "mark", "set", k2, "mark", "&", a] if *k == key && *k2 == key => (hex(a)?, 0),
        [k, "mark", "set", k2, "mark", "|", v] if *k == key && *k2 == key => (u32::MAX, hex(v)?),
        [k, "mark", "set", v] if *k == key => (0, hex(v)?),
        _ => return None,
    };
    Some(MarkMask {
        value: v,
        mask: !a | v,
    })
}
