//! `linux-sh`: `plan --script` of the client role alone, with a header that
//! says what it does and how to check it on the gateway.

use super::{RecipeError, client_plan, comment_block, gateway_check, who};
use crate::backend::{Family, NfCmd, Op};
use crate::plan::Plan;
use crate::probe::HostFacts;
use crate::profile::Marker;

pub fn render(
    m: &Marker,
    source: &str,
    facts: &HostFacts,
) -> Result<(String, Vec<String>), RecipeError> {
    let mut plan = client_plan(m, facts)?;
    drop_unknown_tables_on_undo(&mut plan, facts);
    let who = who(m, &plan.resolved)?;
    let dscp = m.dscp.value();
    let script = crate::plan::render_script(&plan, source);
    let header = comment_block(&[
        format!(
            "dscproute client recipe (linux-sh): {} send DSCP {dscp}. It adds the chain \
             DSCPROUTE-MARK to the mangle table (IPv4 and IPv6, iptables) and nothing else. To mark a program, {}.",
            who.describe(),
            who.how_to_join()
        ),
        format!("Check on the gateway:\n  {}", gateway_check(dscp)),
    ]);
    // After the shebang, before the script's own usage lines.
    let (shebang, rest) = script.split_once('\n').unwrap_or((&script, ""));
    Ok((format!("{shebang}\n{header}#\n{rest}"), plan.warnings))
}

/// Nothing is known of the client's tables: the undo of the first chain in
/// a table also drops the table, which the script's helper does only while
/// nothing is in it, so a table someone else uses stays. (With recorded
/// facts the plan knows whether the table was there and does the same.)
fn drop_unknown_tables_on_undo(plan: &mut Plan, facts: &HostFacts) {
    let mut seen = Vec::new();
    for s in &mut plan.steps {
        let Op::Netfilter {
            family,
            table,
            cmd: NfCmd::NewChain { .. },
        } = &s.apply
        else {
            continue;
        };
        let (family, table) = (*family, *table);
        let known = match family {
            Family::V4 => facts.iptables_save.is_some(),
            Family::V6 => facts.ip6tables_save.is_some(),
        };
        if known || seen.contains(&(family, table)) || !matches!(s.undo, Op::Netfilter { .. }) {
            continue;
        }
        seen.push((family, table));
        s.undo = Op::Seq {
            ops: vec![s.undo.clone(), Op::DropEmptyTable { family, table }],
        };
    }
}
