//! `mark-path`: once applied, do the packets reach our chain, and does our
//! mark survive until the route is chosen? An ACCEPT or RETURN ahead of our
//! jump keeps packets from our chain; a rule after ours that writes our
//! mark bits (any table, iptables-nft, legacy or native nftables) takes
//! them off the VPN. Both bypass the kill switch without a sound.

use super::super::{Check, Inputs};
use crate::ownership::{CHAIN_MARK, CHAIN_ROUTE};
use crate::plan::Plan;
use crate::plan::mark_writers::{Hook, ahead_of_our_jump, describe, overwrites};

const LOOKED: &str = "iptables-save and ip6tables-save (mangle PREROUTING/OUTPUT in order, nat \
                      PREROUTING, the chains they jump to), iptables-legacy-save, nft list ruleset";

pub fn check(i: &Inputs, plan: &Plan) -> Option<Check> {
    let f = i.facts;
    if f.iptables_save.is_none() && f.ip6tables_save.is_none() {
        return None;
    }
    let (mark, mask) = (plan.resolved.mark?, plan.resolved.mask?);
    let dscp = i.dscp();
    // `match = "dscp-rule"` routes on the DSCP: no mark of ours to lose.
    let routes_by_mark = i
        .gateway()
        .is_some_and(|g| g.match_mode == crate::profile::MatchMode::Mark);
    let mut hooks = Vec::new();
    if routes_by_mark {
        hooks.push(Hook::Prerouting);
    }
    if i.is_marker() {
        hooks.push(Hook::Output);
    }
    let (mut fails, mut fixes, mut warns) = (Vec::new(), Vec::new(), Vec::new());
    for hook in hooks {
        let (builtin, chain, what) = match hook {
            Hook::Prerouting => ("PREROUTING", CHAIN_ROUTE, "marked for the VPN"),
            Hook::Output => ("OUTPUT", CHAIN_MARK, "given the DSCP"),
        };
        for rule in ahead_of_our_jump(f, hook) {
            fails.push(format!(
                "{rule} comes before dscproute's jump in mangle {builtin}: packets it accepts \
                 never reach {chain}, so they are not {what} and leave by the main table"
            ));
            fixes.push(format!(
                "move that rule after dscproute's jump (delete it, then add it again with -A), \
                 or keep the group's packets out of it (`-m dscp ! --dscp {dscp}`)"
            ));
        }
        // A client's own mark is a connection tag, not a route: only a host
        // that routes by the mark can lose it to another rule.
        if !routes_by_mark {
            continue;
        }
        let (fatal, restores) = overwrites(f, hook, mask);
        for w in &fatal {
            let line = describe(w, hook, mark, mask, &fatal);
            let (found, fix) = line.split_once("; ").unwrap_or((&line, ""));
            fails.push(found.to_string());
            fixes.push(fix.to_string());
        }
        for w in restores {
            warns.push(format!(
                "{} copies the connection mark over bits {:#x} after dscproute's rule",
                w.rule,
                w.bits & mask
            ));
        }
    }
    Some(if !fails.is_empty() {
        Check::fail("mark-path", fails.join("; "), LOOKED, fixes.join("; "))
    } else if !warns.is_empty() {
        Check::warn(
            "mark-path",
            format!(
                "{}: harmless while only dscproute writes those connection-mark bits",
                warns.join("; ")
            ),
            LOOKED,
            format!(
                "keep other rules from setting connection-mark bits {mask:#x}; better, give the \
                 restoring rule a --nfmask without them"
            ),
        )
    } else {
        Check::pass(
            "mark-path",
            format!(
                "every packet reaches dscproute's chain (nothing accepts it earlier), and no \
                 later rule rewrites mark bits {mask:#x}"
            ),
            LOOKED,
        )
    })
}
