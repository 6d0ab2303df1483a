//! /proc/net/ip_tables_matches and ip_tables_targets: one name a line, the
//! same name repeated once per revision/family the kernel registered.

/// Names in first-seen order, each once.
pub fn parse_xt_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for name in text.lines().map(str::trim).filter(|n| !n.is_empty()) {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::fixtures;

    #[test]
    fn recorded_lists_deduplicated() {
        let matches = parse_xt_names(fixtures::IP_TABLES_MATCHES);
        assert!(matches.iter().any(|m| m == "dscp"));
        assert!(matches.iter().any(|m| m == "owner"));
        assert_eq!(matches.iter().filter(|m| *m == "cgroup").count(), 1);
        let targets = parse_xt_names(fixtures::IP_TABLES_TARGETS);
        for t in ["DSCP", "MARK", "CONNMARK", "TOS", "MASQUERADE"] {
            assert!(targets.iter().any(|x| x == t), "{t}");
        }
        assert!(parse_xt_names("").is_empty());
    }
}
