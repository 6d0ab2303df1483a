//! Who can undo our routing mark after we set it, and what keeps packets
//! from reaching our chain at all (design.md §4.13). A rule that writes mark
//! bits we own and runs after our rule on the same hook, in any table
//! (iptables-nft, legacy x_tables or native nftables), sends the group's
//! packets by the main table: around the VPN and its kill switch. The
//! route is chosen after the whole prerouting hook (for local packets,
//! after mangle OUTPUT and nftables `route` chains), so "after" is: later
//! in our built-in chain, a later table on the hook, a base chain of
//! equal or later priority, and every chain those jump to.

use super::ruleset::Ruleset;
use crate::ownership::{CHAIN_MARK, CHAIN_PREFIX, CHAIN_ROUTE};
use crate::probe::{HostFacts, IptablesBackend, NftTable, parse_nft_ruleset};
use crate::profile::parse_u32;
use std::collections::BTreeSet;

/// iptables' mangle priority: our rules run there.
const MANGLE_PRIORITY: i32 = -150;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// Forwarded packets: the gateway marks them in mangle PREROUTING.
    Prerouting,
    /// Local packets on a host that is both client and gateway: marked in
    /// mangle OUTPUT, then re-routed.
    Output,
}

impl Hook {
    fn builtin(self) -> &'static str {
        match self {
            Hook::Prerouting => "PREROUTING",
            Hook::Output => "OUTPUT",
        }
    }

    fn our_chain(self) -> &'static str {
        match self {
            Hook::Prerouting => CHAIN_ROUTE,
            Hook::Output => CHAIN_MARK,
        }
    }

    /// iptables tables on this hook whose mark still counts for the route:
    /// nat PREROUTING runs after mangle; on output only mangle re-routes
    /// after a mark change.
    fn tables(self) -> &'static [&'static str] {
        match self {
            Hook::Prerouting => &["mangle", "nat"],
            Hook::Output => &["mangle"],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Output => "output",
        }
    }
}

/// What a rule does to marks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// Sets packet-mark bits (MARK, `meta mark set` a value).
    Set,
    /// Copies connection-mark bits into the packet mark (CONNMARK
    /// --restore-mark, `meta mark set ct mark`).
    Restore,
    /// Sets connection-mark bits (CONNMARK --set-*, `ct mark set` a value).
    CtSet,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkWrite {
    /// The rule, as its owner wrote it or `iptables-save`/`nft` print it.
    pub rule: String,
    /// The mark bits it may change.
    pub bits: u32,
    pub write: Write,
    /// iptables, ip6tables, legacy or nftables: says how to change it.
    pub nft: bool,
}

/// Writes that take our bits away: every packet-mark set covering `mask`,
/// and restores covering it when a connection-mark set covering it runs
/// after us too (a restore alone copies back what our chain just saved).
/// The second list: those restores alone, harmless as things stand.
pub fn overwrites(facts: &HostFacts, hook: Hook, mask: u32) -> (Vec<MarkWrite>, Vec<MarkWrite>) {
    let writes = writes_after_us(facts, hook);
    let ours = |w: &&MarkWrite| w.bits & mask != 0;
    let ct_set = writes.iter().filter(ours).any(|w| w.write == Write::CtSet);
    let (mut fatal, mut benign) = (Vec::new(), Vec::new());
    for w in writes.iter().filter(ours) {
        match w.write {
            Write::Set => fatal.push(w.clone()),
            Write::Restore if ct_set => fatal.push(w.clone()),
            Write::Restore => benign.push(w.clone()),
            Write::CtSet => {}
        }
    }
    (fatal, benign)
}

/// Every mark write by other rules that runs after our rule on `hook`, both
/// families, each rule once.
pub fn writes_after_us(facts: &HostFacts, hook: Hook) -> Vec<MarkWrite> {
    let mut out: Vec<MarkWrite> = Vec::new();
    let legacy_backend = facts.iptables_backend == Some(IptablesBackend::Legacy);
    let (current, other) = if legacy_backend {
        ("-legacy", "-nft")
    } else {
        ("", "-legacy")
    };
    let sources = [
        ("iptables", current, &facts.iptables_save, true),
        ("ip6tables", current, &facts.ip6tables_save, true),
        ("iptables", other, &facts.iptables_legacy_save, false),
        ("ip6tables", other, &facts.ip6tables_legacy_save, false),
    ];
    for (tool, suffix, save, is_current) in sources {
        let Some(save) = save else { continue };
        // The backend in use prints as plain `iptables`, as admins type it.
        let tool = if is_current {
            tool.to_string()
        } else {
            format!("{tool}{suffix}")
        };
        iptables_writes(&tool, &Ruleset::parse(save), hook, is_current, &mut out);
    }
    if let Some(text) = &facts.nft_ruleset {
        // Our own table (nft backend) writes our bits only.
        let ours = matches!(crate::backend::nft::parse_table(text), Ok(Some(_)));
        for table in parse_nft_ruleset(text) {
            if ours
                && table.family == crate::backend::nft::FAMILY
                && table.name == crate::backend::nft::TABLE
            {
                continue;
            }
            if !legacy_backend && table.is_xtables() {
                continue; // seen above, through iptables-save
            }
            nft_writes(&table, hook, &mut out);
        }
    }
    let mut seen = BTreeSet::new();
    out.retain(|w| seen.insert(w.rule.clone()));
    out
}

/// Rules ahead of our jump in the built-in chain that end it for some
/// packets (ACCEPT, RETURN, or a jump to a chain that accepts): those
/// packets never reach our chain. Empty when our jump is not there.
pub fn ahead_of_our_jump(facts: &HostFacts, hook: Hook) -> Vec<String> {
    let mut out = Vec::new();
    for (tool, save) in [
        ("iptables", &facts.iptables_save),
        ("ip6tables", &facts.ip6tables_save),
    ] {
        let Some(save) = save else { continue };
        let rs = Ruleset::parse(save);
        let rules = rs.rules_of("mangle", hook.builtin());
        let Some(ours) = rules
            .iter()
            .position(|r| jumps_to(r) == Some(hook.our_chain()))
        else {
            continue;
        };
        for spec in &rules[..ours] {
            let ends = match jumps_to(spec) {
                Some("ACCEPT" | "RETURN") => true,
                Some(chain) if rs.has_chain("mangle", chain) => {
                    accepts(&rs, chain, &mut BTreeSet::new())
                }
                _ => false,
            };
            if ends {
                out.push(format!("{tool} -t mangle -A {} {spec}", hook.builtin()));
            }
        }
    }
    out
}

/// The target of `-j`/`-g`.
fn jumps_to(spec: &str) -> Option<&str> {
    let words: Vec<&str> = spec.split_whitespace().collect();
    let i = words.iter().rposition(|w| *w == "-j" || *w == "-g")?;
    words.get(i + 1).copied()
}

/// Does `chain` (or a chain it jumps to) accept packets?
fn accepts<'r>(rs: &'r Ruleset, chain: &'r str, seen: &mut BTreeSet<&'r str>) -> bool {
    if !seen.insert(chain) {
        return false;
    }
    rs.rules_of("mangle", chain)
        .into_iter()
        .any(|r| match jumps_to(r) {
            Some("ACCEPT") => true,
            Some(c) if rs.has_chain("mangle", c) => accepts(rs, c, seen),
            _ => false,
        })
}

fn iptables_writes(tool: &str, rs: &Ruleset, hook: Hook, current: bool, out: &mut Vec<MarkWrite>) {
    for table in hook.tables() {
        let rules = rs.rules_of(table, hook.builtin());
        // Before apply our jump is inserted first; after, it is where it is.
        let start = if current && *table == "mangle" {
            rules
                .iter()
                .position(|r| jumps_to(r) == Some(hook.our_chain()))
                .map_or(0, |i| i + 1)
        } else {
            0
        };
        let mut seen = BTreeSet::new();
        for spec in &rules[start..] {
            visit_iptables(tool, rs, table, hook.builtin(), spec, &mut seen, out);
        }
    }
}

fn visit_iptables<'r>(
    tool: &str,
    rs: &'r Ruleset,
    table: &str,
    chain: &str,
    spec: &'r str,
    seen: &mut BTreeSet<&'r str>,
    out: &mut Vec<MarkWrite>,
) {
    for (write, bits) in iptables_spec_writes(spec) {
        out.push(MarkWrite {
            rule: format!("{tool} -t {table} -A {chain} {spec}"),
            bits,
            write,
            nft: false,
        });
    }
    if let Some(target) = jumps_to(spec)
        && rs.has_chain(table, target)
        && !target.starts_with(CHAIN_PREFIX)
        && seen.insert(target)
    {
        for r in rs.rules_of(table, target) {
            visit_iptables(tool, rs, table, target, r, seen, out);
        }
    }
}

/// The mark writes of one iptables rule (its target and options).
pub fn iptables_spec_writes(spec: &str) -> Vec<(Write, u32)> {
    let words: Vec<&str> = spec.split_whitespace().collect();
    let Some(j) = words.iter().rposition(|w| *w == "-j") else {
        return Vec::new();
    };
    let target = words.get(j + 1).copied().unwrap_or_default();
    let opts = &words[(j + 2).min(words.len())..];
    let arg = |name: &str| {
        opts.iter()
            .position(|w| *w == name)
            .and_then(|i| opts.get(i + 1).copied())
    };
    // `V/M` -> M; a bare value writes all 32 bits.
    let mask_of = |a: &str| match a.split_once('/') {
        Some((_, m)) => parse_u32(m),
        None => Some(u32::MAX),
    };
    let value = |a: &str| parse_u32(a.split('/').next().unwrap_or_default());
    let set_bits = || {
        for opt in ["--set-xmark", "--set-mark"] {
            if let Some(a) = arg(opt) {
                return mask_of(a).unwrap_or(u32::MAX);
            }
        }
        if let Some(v) = arg("--and-mark").and_then(value) {
            return !v;
        }
        ["--or-mark", "--xor-mark"]
            .iter()
            .find_map(|o| arg(o).and_then(value))
            .unwrap_or(0)
    };
    match target {
        "MARK" => vec![(Write::Set, set_bits())],
        "CONNMARK" if opts.contains(&"--restore-mark") => {
            let nf = arg("--nfmask").and_then(parse_u32).unwrap_or(u32::MAX);
            let ct = arg("--ctmask").and_then(parse_u32).unwrap_or(u32::MAX);
            vec![(Write::Restore, nf & ct)]
        }
        "CONNMARK" if opts.contains(&"--save-mark") => Vec::new(),
        "CONNMARK" => vec![(Write::CtSet, set_bits())],
        _ => Vec::new(),
    }
}

fn nft_writes(table: &NftTable, hook: Hook, out: &mut Vec<MarkWrite>) {
    if !matches!(table.family.as_str(), "ip" | "ip6" | "inet") {
        return;
    }
    for chain in &table.chains {
        let Some(base) = &chain.base else { continue };
        let runs_after = base.hook == hook.name()
            // Equal priority: the order between tables is not ours to know.
            && base.priority.is_none_or(|p| p >= MANGLE_PRIORITY)
            // On output only a route chain re-routes after a mark change.
            && (hook == Hook::Prerouting || base.kind == "route");
        if runs_after {
            let mut seen = BTreeSet::new();
            visit_nft(table, &chain.name, &mut seen, out);
        }
    }
}

fn visit_nft<'t>(
    table: &'t NftTable,
    chain: &'t str,
    seen: &mut BTreeSet<&'t str>,
    out: &mut Vec<MarkWrite>,
) {
    if !seen.insert(chain) {
        return;
    }
    let Some(c) = table.chain(chain) else { return };
    for rule in &c.rules {
        for (write, bits) in nft_rule_writes(rule) {
            out.push(MarkWrite {
                rule: format!(
                    "nft table {} {} chain {chain}: {rule}",
                    table.family, table.name
                ),
                bits,
                write,
                nft: true,
            });
        }
        let words: Vec<&str> = rule.split_whitespace().collect();
        for w in words.windows(2) {
            if matches!(w[0], "jump" | "goto") {
                let target = w[1].trim_end_matches([',', '}']);
                visit_nft(table, target, seen, out);
            }
        }
    }
}

/// The mark writes of one nftables rule: `meta mark set EXPR` and
/// `ct mark set EXPR`, where EXPR is a value (all bits), the mark itself
/// with `and`/`or`/`xor` (the bits those change), or the other mark.
pub fn nft_rule_writes(rule: &str) -> Vec<(Write, u32)> {
    let t: Vec<&str> = rule.split_whitespace().collect();
    let mut out = Vec::new();
    for i in 1..t.len() {
        if t[i] != "set" || t[i - 1] != "mark" {
            continue;
        }
        let ct_target = i >= 2 && t[i - 2] == "ct";
        let expr = &t[i + 1..];
        let (source, rest) = match expr {
            ["ct", "mark", rest @ ..] => ("ct", rest),
            ["meta", "mark", rest @ ..] | ["mark", rest @ ..] => ("meta", rest),
            _ => ("value", &expr[expr.len().min(1)..]),
        };
        let (mut keep, mut set) = (u32::MAX, 0u32);
        for op in rest.chunks(2) {
            let [op, v] = op else { break };
            let Some(v) = parse_u32(v) else { break };
            match *op {
                "&" | "and" => keep &= v,
                "|" | "or" | "^" | "xor" => set |= v,
                _ => break,
            }
        }
        let changed = !keep | set;
        let write = match (ct_target, source) {
            // ct mark set meta mark: a save, it writes no packet mark.
            (true, "meta") => continue,
            (true, "ct") => (Write::CtSet, changed),
            (true, _) => (Write::CtSet, u32::MAX),
            (false, "ct") => (Write::Restore, keep),
            (false, "meta") => (Write::Set, changed),
            (false, _) => (Write::Set, u32::MAX),
        };
        out.push(write);
    }
    out
}

/// One line for a plan error or a doctor FAIL: the rule, what it does to
/// us, and the two ways out.
pub fn describe(w: &MarkWrite, hook: Hook, mark: u32, mask: u32, all: &[MarkWrite]) -> String {
    let taken = w.bits & mask;
    let what = match w.write {
        Write::Restore => format!(
            "copies the connection mark over bits {taken:#x} (and another rule there sets those \
             connection-mark bits)"
        ),
        _ => format!("rewrites mark bits {taken:#x}"),
    };
    let how = match (w.write, w.nft) {
        (Write::Restore, false) => format!("`--nfmask {:#x}`", w.bits & !mask),
        (Write::Restore, true) => "restore only the other bits".to_string(),
        (_, false) => format!("a mask without them, `--set-xmark V/{:#x}`", w.bits & !mask),
        (_, true) => format!("keep them, `meta mark set meta mark and {mask:#x} or V`"),
    };
    let written: u32 = all.iter().fold(0, |acc, w| acc | w.bits);
    let other_mask = match free_mask(written) {
        Some(m) => format!("set gateway.mask to bits none of them writes (e.g. mask = \"{m:#x}\")"),
        None => String::new(),
    };
    let change_rule = format!("change that rule to leave bits {mask:#x} alone ({how})");
    let fix = if w.bits & !mask == 0 && !other_mask.is_empty() {
        // It writes nothing but our bits: moving ours is the simple way.
        format!("{other_mask}, or change that rule to use other bits")
    } else if other_mask.is_empty() {
        format!("{change_rule} (it writes every bit, so no other gateway.mask avoids it)")
    } else {
        format!("{change_rule}, or {other_mask}")
    };
    format!(
        "{} {what} after dscproute marks the packet on the {} hook: the group's packets would \
         lose mark {mark:#x}/{mask:#x} and leave by the main table, around the VPN and its kill \
         switch; {fix}",
        w.rule,
        hook.name()
    )
}

/// A byte of the mark that none of `written` touches.
fn free_mask(written: u32) -> Option<u32> {
    [
        0xff,
        0xff00,
        0xff_0000,
        0xff00_0000,
        0xf,
        0xf0,
        0xf00,
        0xf000,
    ]
    .into_iter()
    .find(|m| m & written == 0)
}

#[cfg(test)]
mod tests;
