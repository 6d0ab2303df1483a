//! Folding transactions into one setup: what every apply, repair and
//! profile edit left in place, kept so that undoing it newest first returns
//! the host to before dscproute first changed it, without growing with
//! every repair of a months-long agent.

use super::{JournalStep, StepStatus};
use crate::backend::Op;
use crate::backend::op::NfCmd;

/// Add a step that is in effect to a setup:
/// - a sysctl or the table-name file already in the setup keeps its first
///   saved value (what the host had before dscproute) and takes the later
///   step's value (what is ours now, which its undo and drift check);
/// - a step identical to one in the setup (a route re-added after its link
///   went down) adds nothing: the earlier one's undo removes it;
/// - a removal known to have happened cancels what it removes when the
///   setup created it (the old rule of an edited profile, a rebuilt chain's
///   rules, a chain of a role given up): neither needs undoing any more;
/// - our nft table replaced again keeps its first undo;
/// - anything else is appended.
pub(super) fn fold(setup: &mut Vec<JournalStep>, js: JournalStep) {
    let same_target = |a: &JournalStep| match (&a.step.apply, &js.step.apply) {
        (Op::Sysctl { key: k1, .. }, Op::Sysctl { key: k2, .. }) => k1 == k2,
        (Op::WriteTableNames { .. }, Op::WriteTableNames { .. }) => true,
        _ => false,
    };
    if let Some(a) = setup.iter_mut().find(|a| same_target(a)) {
        // The value before dscproute stays; what is ours now is the later.
        if js.status == StepStatus::Done {
            a.step = js.step;
        }
        return;
    }
    // Our nft table is one value: the setup keeps its first undo (the table
    // from before dscproute, or none) and takes the table as it is now.
    if let (Op::NftTable { .. }, StepStatus::Done) = (&js.step.apply, js.status)
        && let Some(a) = setup
            .iter_mut()
            .find(|a| matches!(a.step.apply, Op::NftTable { .. }))
    {
        a.step.apply = js.step.apply;
        a.step.reason = js.step.reason;
        return;
    }
    // A route the setup added and a later failover replaced: the setup
    // holds the new route, whose undo deletes it, so a rollback never has
    // to bring back an uplink that may be down by then.
    if let (Op::RouteReplace { family, from, to }, StepStatus::Done) = (&js.step.apply, js.status)
        && let Some(a) = setup.iter_mut().rev().find(|a| {
            matches!(&a.step.apply, Op::Route { family: f, add: true, route } if f == family && route == from)
                && matches!(&a.step.undo, Op::Route { add: false, .. })
        })
    {
        a.step.apply = Op::Route {
            family: *family,
            add: true,
            route: to.clone(),
        };
        a.step.undo = Op::Route {
            family: *family,
            add: false,
            route: to.clone(),
        };
        return;
    }
    if setup
        .iter()
        .any(|a| a.step.apply == js.step.apply && a.step.undo == js.step.undo)
    {
        return;
    }
    if js.status != StepStatus::Done {
        setup.push(js);
        return;
    }
    if let Some(i) = setup.iter().rposition(|a| a.step.undo == js.step.apply) {
        setup.remove(i);
        return;
    }
    let Op::Netfilter { family, table, cmd } = js.step.apply.clone() else {
        setup.push(js);
        return;
    };
    let in_chain = |a: &JournalStep, chain: &str, with_chain: bool| match &a.step.apply {
        Op::Netfilter {
            family: f,
            table: t,
            cmd: c,
        } if *f == family && *t == table && c.chain() == chain => match c {
            NfCmd::Append { .. } | NfCmd::Insert { .. } => true,
            NfCmd::NewChain { .. } => with_chain,
            _ => false,
        },
        _ => false,
    };
    match cmd {
        // The rules the setup added to the chain are gone; the flush still
        // needs undoing only when the chain had rules from before the setup.
        NfCmd::FlushChain { chain } => {
            setup.retain(|a| !in_chain(a, &chain, false));
            let created = setup.iter().any(|a| in_chain(a, &chain, true));
            if !created {
                setup.push(js);
            }
        }
        NfCmd::DeleteChain { chain } => {
            let created = setup.iter().position(|a| {
                matches!(
                    &a.step.apply,
                    Op::Netfilter {
                        cmd: NfCmd::NewChain { .. },
                        ..
                    }
                ) && in_chain(a, &chain, true)
            });
            let Some(i) = created else {
                setup.push(js);
                return;
            };
            // The chain was the first in a table iptables-nft created for
            // us: its undo also dropped that table while empty; that stays,
            // at the chain's place in the order.
            let drop = match &setup[i].step.undo {
                Op::Seq { ops } => ops
                    .iter()
                    .find(|o| matches!(o, Op::DropEmptyTable { .. }))
                    .cloned(),
                _ => None,
            };
            match drop {
                Some(drop) => {
                    let mut tidy = js;
                    tidy.step.undo = drop;
                    setup[i] = tidy;
                }
                None => {
                    setup.remove(i);
                }
            }
            setup.retain(|a| !in_chain(a, &chain, false));
        }
        _ => setup.push(js),
    }
}

#[cfg(test)]
mod tests;
