//! A reading of `nft list ruleset` text: tables, their chains (base chains
//! with type, hook and priority) and each chain's rules as printed. Enough to
//! tell which native rules run on a hook after ours; nothing is evaluated.

/// One table of the ruleset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NftTable {
    /// ip, ip6, inet, arp, bridge, netdev.
    pub family: String,
    pub name: String,
    pub chains: Vec<NftChain>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NftChain {
    pub name: String,
    /// Set for a base chain (`type filter hook prerouting priority mangle;`).
    pub base: Option<BaseChain>,
    /// Rule lines as printed, without leading white space.
    pub rules: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseChain {
    /// filter, nat, route.
    pub kind: String,
    /// prerouting, input, forward, output, postrouting, ingress…
    pub hook: String,
    /// The priority as a number (`mangle` is -150 for ip/ip6/inet), None when
    /// it cannot be read.
    pub priority: Option<i32>,
}

/// iptables-nft's own tables: their rules are iptables rules, read
/// through iptables-save.
pub fn is_xtables_table(family: &str, name: &str) -> bool {
    matches!(family, "ip" | "ip6")
        && matches!(name, "filter" | "nat" | "mangle" | "raw" | "security")
}

impl NftTable {
    pub fn is_xtables(&self) -> bool {
        is_xtables_table(&self.family, &self.name)
    }

    pub fn chain(&self, name: &str) -> Option<&NftChain> {
        self.chains.iter().find(|c| c.name == name)
    }
}

/// Parse the text; what cannot be read (sets, maps, flowtables, objects) is
/// skipped whole. Never fails: unknown lines are ignored.
pub fn parse_nft_ruleset(text: &str) -> Vec<NftTable> {
    let mut tables: Vec<NftTable> = Vec::new();
    // Depth of braces: 1 inside a table, 2 inside a chain or another block.
    let mut depth = 0usize;
    let mut in_chain = false;
    // A rule whose braces (an anonymous set) span several lines.
    let mut pending = String::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (opens, closes) = braces(line);
        if depth == 0 {
            if let Some(rest) = line.strip_prefix("table ") {
                let mut w = rest.split_whitespace();
                tables.push(NftTable {
                    family: w.next().unwrap_or_default().to_string(),
                    name: w
                        .next()
                        .unwrap_or_default()
                        .trim_end_matches('{')
                        .to_string(),
                    chains: Vec::new(),
                });
            }
            depth = (depth + opens).saturating_sub(closes);
            continue;
        }
        if depth == 1 {
            if let (Some(rest), Some(t)) = (line.strip_prefix("chain "), tables.last_mut()) {
                let name = rest.split_whitespace().next().unwrap_or_default();
                t.chains.push(NftChain {
                    name: name.trim_end_matches('{').to_string(),
                    ..NftChain::default()
                });
                in_chain = true;
            } else {
                in_chain = false;
            }
            depth = (depth + opens).saturating_sub(closes);
            continue;
        }
        if depth == 2 && in_chain && pending.is_empty() && line == "}" {
            depth = 1;
            in_chain = false;
            continue;
        }
        if depth >= 2 && in_chain {
            let Some(chain) = tables.last_mut().and_then(|t| t.chains.last_mut()) else {
                continue;
            };
            if pending.is_empty() && line.starts_with("type ") && line.contains(" hook ") {
                chain.base = parse_base(line);
                continue;
            }
            if !pending.is_empty() {
                pending.push(' ');
            }
            pending.push_str(line);
            depth = (depth + opens).saturating_sub(closes);
            if depth == 2 {
                chain.rules.push(std::mem::take(&mut pending));
            }
            continue;
        }
        depth = (depth + opens).saturating_sub(closes);
    }
    tables
}

/// Braces outside double-quoted strings (comments may hold any text).
fn braces(line: &str) -> (usize, usize) {
    let (mut open, mut close, mut quoted) = (0, 0, false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            '{' if !quoted => open += 1,
            '}' if !quoted => close += 1,
            _ => {}
        }
    }
    (open, close)
}

/// `type filter hook prerouting priority mangle + 5; policy accept;`
fn parse_base(line: &str) -> Option<BaseChain> {
    let decl = line.split(';').next()?;
    let words: Vec<&str> = decl.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
            .map(|s| s.to_string())
    };
    let priority = words
        .iter()
        .position(|w| *w == "priority")
        .and_then(|i| priority_value(&words[i + 1..]));
    Some(BaseChain {
        kind: after("type")?,
        hook: after("hook")?,
        priority,
    })
}

/// `-150`, `mangle`, `mangle + 5`, `filter - 10` (ip, ip6 and inet names).
fn priority_value(words: &[&str]) -> Option<i32> {
    let base = match *words.first()? {
        "raw" => -300,
        "mangle" => -150,
        "dstnat" => -100,
        "filter" => 0,
        "security" => 50,
        "srcnat" => 100,
        n => n.parse().ok()?,
    };
    match (
        words.get(1),
        words.get(2).and_then(|n| n.parse::<i32>().ok()),
    ) {
        (Some(&"+"), Some(n)) => Some(base + n),
        (Some(&"-"), Some(n)) => Some(base - n),
        _ => Some(base),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As nft 1.0.6 prints it (recorded in a namespace).
    pub const RULESET: &str = r#"table ip foreign {
	set s {
		type ipv4_addr
		elements = { 1.2.3.4, 5.6.7.8 }
	}

	chain pre {
		type filter hook prerouting priority mangle + 5; policy accept;
		iifname "lan0" meta mark set 0x00000100 comment "x { y"
		meta mark set meta mark & 0xffffff01 | 0x00000001
		ip saddr { 1.2.3.4, 9.9.9.9 } jump sub
		tcp dport vmap { 22 : jump sub, 23 : accept }
	}

	chain sub {
		meta mark set 0x00000007
	}

	chain out {
		type route hook output priority mangle; policy accept;
		meta mark set 0x00000005
	}
}
table inet t2 {
	chain p {
		type nat hook prerouting priority dstnat; policy accept;
		ct mark set 0x00000001
	}
}
# Warning: table ip mangle is managed by iptables-nft, do not touch!
"#;

    #[test]
    fn tables_chains_hooks_and_rules() {
        let t = parse_nft_ruleset(RULESET);
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].family.as_str(), t[0].name.as_str()),
            ("ip", "foreign")
        );
        let names: Vec<&str> = t[0].chains.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["pre", "sub", "out"]);
        let pre = t[0].chain("pre").unwrap();
        assert_eq!(
            pre.base,
            Some(BaseChain {
                kind: "filter".into(),
                hook: "prerouting".into(),
                priority: Some(-145)
            })
        );
        assert_eq!(pre.rules.len(), 4, "{:?}", pre.rules);
        assert_eq!(
            pre.rules[0],
            r#"iifname "lan0" meta mark set 0x00000100 comment "x { y""#
        );
        assert_eq!(t[0].chain("sub").unwrap().base, None);
        assert_eq!(
            t[0].chain("sub").unwrap().rules,
            ["meta mark set 0x00000007"]
        );
        assert_eq!(
            t[0].chain("out").unwrap().base.as_ref().unwrap().kind,
            "route"
        );
        let p = &t[1].chains[0];
        assert_eq!(p.base.as_ref().unwrap().priority, Some(-100));
        assert_eq!(p.rules, ["ct mark set 0x00000001"]);
    }

    #[test]
    fn priorities() {
        for (text, want) in [
            ("-150", Some(-150)),
            ("filter", Some(0)),
            ("filter - 10", Some(-10)),
            ("srcnat + 1", Some(101)),
            ("bogus", None),
        ] {
            let words: Vec<&str> = text.split_whitespace().collect();
            assert_eq!(priority_value(&words), want, "{text}");
        }
    }

    #[test]
    fn a_rule_spanning_lines_is_one_rule() {
        let t = parse_nft_ruleset(
            "table ip t {\n\tchain c {\n\t\tip saddr {\n\t\t\t1.2.3.4,\n\t\t\t5.6.7.8 } \
             meta mark set 0x1\n\t\taccept\n\t}\n}\n",
        );
        assert_eq!(
            t[0].chains[0].rules,
            ["ip saddr { 1.2.3.4, 5.6.7.8 } meta mark set 0x1", "accept"]
        );
    }

    #[test]
    fn garbage_is_no_panic() {
        for text in [
            "}",
            "table",
            "table ip {\n chain {\n",
            "{{{{",
            "chain x {\n}\n}",
        ] {
            let _ = parse_nft_ruleset(text);
        }
    }
}
