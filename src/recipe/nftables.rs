//! `nftables`: a self-contained `nft -f` file for a client managed by
//! nftables.conf. One table of its own, so undo is one command and
//! nothing else's rules are touched.

use super::{RecipeError, client_plan, comment_block, gateway_check, who};
use crate::backend::MarkMask;
use crate::ownership::COMMENT;
use crate::probe::HostFacts;
use crate::profile::Marker;

pub const TABLE: &str = "dscproute_client";

/// The table: sockets matched by `who_match` tag their connection with
/// `mark`; every packet of a tagged connection leaves with `dscp` (also the
/// last ACK or FIN, sent after the socket closed). It starts by creating
/// and deleting the table, so loading it again replaces it whole, in the
/// same transaction (a `flush` would keep a chain whose hook changed).
pub fn nft_table(who_match: &str, mark: MarkMask, dscp: u8) -> String {
    let (v, m) = (mark.value, mark.mask);
    let keep = !m;
    format!(
        "table inet {TABLE}\n\
         delete table inet {TABLE}\n\
         table inet {TABLE} {{\n\
         \tchain output {{\n\
         \t\ttype route hook output priority mangle; policy accept;\n\
         \t\t{who_match} ct mark set ct mark and {keep:#010x} or {v:#x} counter comment \"{COMMENT}\"\n\
         \t\tct mark and {m:#x} == {v:#x} ip dscp set {dscp} counter comment \"{COMMENT}\"\n\
         \t\tct mark and {m:#x} == {v:#x} ip6 dscp set {dscp} counter comment \"{COMMENT}\"\n\
         \t}}\n\
         }}\n"
    )
}

pub fn render(
    m: &Marker,
    source: &str,
    facts: &HostFacts,
) -> Result<(String, Vec<String>), RecipeError> {
    // The same planning as linux-sh settles the conntrack mark, so both
    // recipes of one profile mark alike.
    let plan = client_plan(m, facts)?;
    let (Some(value), Some(mask)) = (plan.resolved.mark, plan.resolved.mask) else {
        return Err(RecipeError::Refused(vec![
            "no connection mark could be settled for the client".into(),
        ]));
    };
    let mark = MarkMask { value, mask };
    let who = who(m, &plan.resolved)?;
    let dscp = m.dscp.value();
    let header = comment_block(&[
        format!(
            "dscproute client recipe (nftables) from {}: {} send DSCP {dscp}.",
            source.replace('\n', " "),
            who.describe()
        ),
        format!(
            "What it does: the table inet {TABLE}, and nothing else. In its chain output (route \
             hook, priority mangle) sockets of {} give their connection the conntrack mark \
             {}; every packet of such a connection leaves with DSCP {dscp}, IPv4 and IPv6, even \
             the last ones sent after the program closed its socket. Only the six DSCP bits \
             change; ECN stays. To mark a program, {}.",
            who.whom(),
            mark.text(),
            who.how_to_join()
        ),
        format!(
            "The conntrack mark bits {:#x} must be free on this host (`nft list ruleset | grep \
             'ct mark'`); for other bits, record this host's facts with `dscproute facts --json` \
             and pass them with --facts.",
            mask
        ),
        "Load now (loading it again replaces the table):\n  nft -f THIS-FILE\n\
         Keep it across boots: save it as /etc/dscproute-client.nft and add this line to \
         /etc/nftables.conf, after its `flush ruleset`:\n  include \"/etc/dscproute-client.nft\"\n\
         then: systemctl reload nftables"
            .to_string(),
        format!(
            "Undo:\n  nft delete table inet {TABLE}\n\
             and remove the include line and the file if you added them."
        ),
        format!(
            "Check here (the counters grow while the program sends):\n  nft list table inet \
             {TABLE}\nCheck on the gateway:\n  {}",
            gateway_check(dscp)
        ),
    ]);
    Ok((
        format!(
            "#!/usr/sbin/nft -f\n{header}\n{}",
            nft_table(&who.nft_match(), mark, dscp)
        ),
        plan.warnings,
    ))
}
