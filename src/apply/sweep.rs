//! `rollback --all`: remove everything dscproute owns, found by its tags
//! (chains named DSCPROUTE-*, jumps tagged with our comment, rules and routes
//! with our iproute2 protocol, our rt_tables drop-in), even with no journal
//! or an unreadable one, which is set aside first; our nftables table
//! `inet dscproute` when it holds only what we write. The iptables-nft tables
//! we emptied are dropped while nothing else is in them.

use super::executor::{Executor, Failure};
use super::journal::now_unix;
use super::state_dir::StateDir;
use crate::backend::{Effect, Family, iproute, iptables, nft, system};
use crate::ownership::{CHAIN_PREFIX, COMMENT, is_our_proto};
use crate::plan::ruleset::Ruleset;
use crate::probe::{HostFacts, IptablesBackend};
use std::path::PathBuf;

/// Base chains of `table` in an iptables-save dump whose policy is not
/// ACCEPT: such a table is not empty even without rules.
fn has_strict_policy(save: &str, table: &str) -> bool {
    let mut current = "";
    save.lines().any(|l| {
        if let Some(t) = l.strip_prefix('*') {
            current = t;
        }
        current == table
            && l.strip_prefix(':')
                .and_then(|d| d.split_whitespace().nth(1))
                .is_some_and(|policy| policy != "ACCEPT" && policy != "-")
    })
}

/// The removals, in a safe order: unlink jumps, empty and delete chains,
/// drop the nft tables this left empty, then rules, routes and the table
/// name.
pub fn removals(facts: &HostFacts, root_has_dropin: bool) -> Vec<Effect> {
    let mut unlink = Vec::new();
    let mut flush = Vec::new();
    let mut delete = Vec::new();
    let mut drop = Vec::new();
    let tag = format!("--comment {COMMENT} -j {CHAIN_PREFIX}");
    for (family, save) in [
        (Family::V4, &facts.iptables_save),
        (Family::V6, &facts.ip6tables_save),
    ] {
        let Some(save) = save else { continue };
        let rs = Ruleset::parse(save);
        let mut touched: Vec<&str> = Vec::new();
        for (table, chain, spec) in rs.rules() {
            if !chain.starts_with(CHAIN_PREFIX) && spec.contains(&tag) {
                unlink.push(iptables::remove_rule(family, table, chain, spec));
                touched.push(table);
            }
        }
        for (table, chain) in rs.chains() {
            if chain.starts_with(CHAIN_PREFIX) {
                flush.push(iptables::flush_chain(family, table, chain));
                delete.push(iptables::delete_chain(family, table, chain));
                touched.push(table);
            }
        }
        // A table we took something out of goes when nothing is left in
        // it (the executor checks rules, chains, sets and native rules);
        // one with a DROP policy is never empty.
        touched.sort_unstable();
        touched.dedup();
        let iptables_nft = facts.iptables_backend == Some(IptablesBackend::NfTables);
        for table in touched {
            if iptables_nft && !has_strict_policy(save, table) {
                drop.push(iptables::drop_empty_table(family, table));
            }
        }
    }
    let mut out = unlink;
    // Our nftables table (nft backend) goes whole, only when it is ours.
    if let Some(Ok(Some(_))) = facts.nft_ruleset.as_deref().map(nft::parse_table) {
        out.push(Effect::run(nft::delete_argv()));
    }
    out.append(&mut flush);
    out.append(&mut delete);
    out.append(&mut drop);
    for (family, rules) in [(Family::V4, &facts.rules_v4), (Family::V6, &facts.rules_v6)] {
        for r in rules.iter().filter(|r| is_our_proto(r.protocol.as_deref())) {
            out.push(iproute::delete_rules_at(family, r.priority));
        }
    }
    for (family, routes) in [
        (Family::V4, &facts.routes_v4),
        (Family::V6, &facts.routes_v6),
    ] {
        if routes.iter().any(|r| is_our_proto(r.protocol.as_deref())) {
            // `flush … proto N` removes only routes carrying our protocol.
            out.push(iproute::flush_our_routes(family));
        }
    }
    if root_has_dropin {
        out.push(system::remove_table_names());
    }
    out
}

/// Run the removals; failures are collected, the sweep goes on.
pub fn run(ex: &Executor, effects: &[Effect]) -> Vec<Failure> {
    effects
        .iter()
        .filter_map(|e| ex.run_effect(e).err())
        .collect()
}

/// Move an unreadable journal (and its step log) aside as
/// `current.json.corrupt-UNIXTIME`, readable by root only, so the sweep
/// starts clean and the evidence stays. Returns the new journal path.
pub fn set_aside(state: &StateDir) -> Result<PathBuf, String> {
    let stamp = now_unix();
    let mut kept = None;
    for path in [state.current(), state.step_log()] {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let to = path.with_file_name(format!("{name}.corrupt-{stamp}"));
        match std::fs::rename(&path, &to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot move {} aside: {e}", path.display())),
        }
        restrict(&to).map_err(|e| format!("cannot restrict {}: {e}", to.display()))?;
        if kept.is_none() {
            kept = Some(to);
        }
    }
    kept.ok_or_else(|| "no journal to set aside".into())
}

/// chmod 0600 without following a symlink (a planted link must not make
/// us change the mode of its target): a link is left as it is.
fn restrict(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Ok(()),
        Err(e) => return Err(e),
    };
    // SAFETY: fchmod on a descriptor we own.
    match unsafe { libc::fchmod(f.as_raw_fd(), 0o600) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{Route, Rule};

    #[test]
    fn finds_only_what_is_ours() {
        let mut f = HostFacts {
            iptables_save: Some(
                "*mangle\n:PREROUTING ACCEPT [0:0]\n:DSCPROUTE-ROUTE - [0:0]\n:OTHER - [0:0]\n\
                 -A PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE\n\
                 -A PREROUTING -j OTHER\n\
                 -A DSCPROUTE-ROUTE ! -i wg0 -m dscp --dscp 0x07 -j MARK --set-xmark 0x3/0xff\nCOMMIT\n"
                    .into(),
            ),
            ..HostFacts::default()
        };
        f.rules_v4.push(Rule {
            priority: 10000,
            protocol: Some("213".into()),
            ..Rule::default()
        });
        f.rules_v4.push(Rule {
            priority: 5270,
            protocol: None,
            ..Rule::default()
        });
        f.routes_v4.push(Route {
            dst: "default".into(),
            table: "100".into(),
            protocol: Some("213".into()),
            ..Route::default()
        });
        let shown: Vec<String> = removals(&f, true).iter().map(Effect::display).collect();
        assert_eq!(
            shown,
            [
                "iptables -w -t mangle -D PREROUTING -m comment --comment dscproute -j DSCPROUTE-ROUTE",
                "iptables -w -t mangle -F DSCPROUTE-ROUTE",
                "iptables -w -t mangle -X DSCPROUTE-ROUTE",
                "ip -4 rule del pref 10000 proto 213",
                "ip -4 route flush table all proto 213",
                "rm /etc/iproute2/rt_tables.d/dscproute.conf",
            ]
        );
    }

    #[test]
    fn tables_we_emptied_go_unless_a_policy_holds_them() {
        let f = HostFacts {
            iptables_backend: Some(IptablesBackend::NfTables),
            iptables_save: Some(
                "*mangle\n:PREROUTING ACCEPT [0:0]\n:DSCPROUTE-ROUTE - [0:0]\nCOMMIT\n\
                 *nat\n:POSTROUTING ACCEPT [0:0]\n:DSCPROUTE-NAT - [0:0]\nCOMMIT\n\
                 *filter\n:INPUT DROP [0:0]\nCOMMIT\n"
                    .into(),
            ),
            ip6tables_save: Some(
                "*mangle\n:PREROUTING DROP [0:0]\n:DSCPROUTE-ROUTE - [0:0]\nCOMMIT\n".into(),
            ),
            ..HostFacts::default()
        };
        let drops: Vec<String> = removals(&f, false)
            .iter()
            .filter(|e| matches!(e, Effect::DropEmptyTable { .. }))
            .map(Effect::display)
            .collect();
        assert_eq!(
            drops,
            [
                "nft delete table ip mangle (only if empty)",
                "nft delete table ip nat (only if empty)",
            ],
            "not filter (untouched), not ip6 mangle (DROP policy)"
        );
    }

    #[test]
    fn an_unreadable_journal_is_set_aside_for_root_only() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let dir = StateDir::resolve(Some(t.path()));
        std::fs::write(dir.current(), "{\"trunc").unwrap();
        std::fs::set_permissions(dir.current(), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::write(dir.step_log(), "{}\n").unwrap();
        let kept = set_aside(&dir).unwrap();
        assert!(!dir.current().exists() && !dir.step_log().exists());
        let name = kept.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("current.json.corrupt-"), "{name}");
        assert_eq!(std::fs::read_to_string(&kept).unwrap(), "{\"trunc");
        let mode = std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(set_aside(&dir).is_err(), "nothing left to set aside");
    }

    #[test]
    fn a_planted_symlink_is_moved_not_followed() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let dir = StateDir::resolve(Some(t.path()));
        let target = t.path().join("elsewhere");
        std::fs::write(&target, "x").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink(&target, dir.current()).unwrap();
        let kept = set_aside(&dir).unwrap();
        assert!(kept.symlink_metadata().unwrap().file_type().is_symlink());
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "the link's target keeps its mode");
    }
}
