//! The operations dscproute performs on a host, as types. The planner builds
//! them, the journal stores them, the executor runs them through a backend
//! (`super::iptables`, `super::iproute`, `super::system`), and everything
//! else asks them what they are instead of reading their argv.
//!
//! Names (chains, interfaces, groups) are strings: `Op::check` says whether
//! an operation is one dscproute writes, with its own names and values in
//! range. A journal is checked with it before anything of it runs, and so is
//! every plan: a leftover found on the host that dscproute does not write
//! (`ChainRule::Foreign`) can be shown but never applied or journaled.

use super::Effect;
use crate::ownership::CHAIN_PREFIX;
use crate::probe::conf_key;
use crate::profile::{valid_group_name, valid_ifname, valid_table_name};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub const BOTH: [Family; 2] = [Family::V4, Family::V6];

    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

/// The netfilter tables dscproute uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Table {
    Mangle,
    Nat,
}

impl Table {
    pub fn parse(s: &str) -> Result<Table, String> {
        match s {
            "mangle" => Ok(Table::Mangle),
            "nat" => Ok(Table::Nat),
            other => Err(format!(
                "table {} is not one dscproute uses (mangle, nat)",
                clip(other)
            )),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Table::Mangle => "mangle",
            Table::Nat => "nat",
        }
    }

    pub fn is_builtin(self, chain: &str) -> bool {
        let builtins: &[&str] = match self {
            Table::Mangle => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
            Table::Nat => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        };
        builtins.contains(&chain)
    }
}

/// `DSCPROUTE-` and capitals, digits, `-` or `_`, within iptables' 28 characters.
fn our_chain(s: &str) -> Result<(), String> {
    let ok = s.len() <= 28
        && s.strip_prefix(CHAIN_PREFIX).is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(format!("chain {} is not one of ours", clip(s)))
    }
}

/// What a rule in `chain` of `table` may be: a built-in chain holds only
/// our tagged jump, a chain of ours only our rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainKind {
    Builtin,
    Ours,
}

pub fn chain_kind(table: Table, chain: &str) -> Result<ChainKind, String> {
    if table.is_builtin(chain) {
        return Ok(ChainKind::Builtin);
    }
    our_chain(chain).map(|()| ChainKind::Ours).map_err(|_| {
        format!(
            "chain {} is neither one of ours ({CHAIN_PREFIX}…) nor a built-in chain of {}",
            clip(chain),
            table.name()
        )
    })
}

/// A firewall mark and its mask (`0xV/0xM` in both iptables and ip rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkMask {
    pub value: u32,
    pub mask: u32,
}

impl MarkMask {
    /// `0xV/0xM`, values not yet checked.
    pub fn parse(s: &str) -> Result<MarkMask, String> {
        let bad = || format!("{} is not a mark/mask like 0x1/0xff", clip(s));
        let (v, m) = s.split_once('/').ok_or_else(bad)?;
        Ok(MarkMask {
            value: hex(v).ok_or_else(bad)?,
            mask: hex(m).ok_or_else(bad)?,
        })
    }

    pub fn text(self) -> String {
        format!("{:#x}/{:#x}", self.value, self.mask)
    }

    pub(super) fn check(self) -> Result<(), String> {
        if self.mask == 0 || self.value & !self.mask != 0 {
            return Err(format!(
                "{} is not a mark/mask like 0x1/0xff",
                clip(&self.text())
            ));
        }
        Ok(())
    }
}

fn check_mask(mask: u32) -> Result<(), String> {
    if mask == 0 {
        return Err("0x0 is not a mask like 0xff".into());
    }
    Ok(())
}

pub(super) fn check_dscp(d: u8) -> Result<(), String> {
    if d > 63 {
        return Err(format!("{d:#04x} is not a DSCP 0x00–0x3f"));
    }
    Ok(())
}

pub(super) fn check_iface(s: &str) -> Result<(), String> {
    if valid_ifname(s) {
        Ok(())
    } else {
        Err(format!("{} is not an interface name", clip(s)))
    }
}

/// `--gid-owner` takes a gid or a group name.
pub(super) fn check_group_arg(s: &str) -> Result<(), String> {
    if (!s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()))
        || valid_group_name(s)
    {
        Ok(())
    } else {
        Err(format!("{} is not a group", clip(s)))
    }
}

/// `--uid-owner` takes a uid or (in scripts for another host) a user name.
fn check_uid_arg(s: &str) -> Result<(), String> {
    match digits(s) {
        Some(u) if u != u32::MAX => Ok(()),
        None if valid_group_name(s) => Ok(()),
        _ => Err(format!("{} is not a user", clip(s))),
    }
}

/// `--path` as dscproute writes it: a normalized cgroup v2 path.
fn check_cgroup_path(s: &str) -> Result<(), String> {
    match crate::profile::normalize_cgroup_path(s) {
        Ok(p) if p == s => Ok(()),
        _ => Err(format!("{} is not a cgroup path dscproute writes", clip(s))),
    }
}

fn check_group_name(s: &str) -> Result<(), String> {
    if valid_group_name(s) {
        Ok(())
    } else {
        Err(format!("{} is not a group name", clip(s)))
    }
}

/// A routing table of ours: not one of the reserved 0, 253–255.
fn check_table_id(n: u32) -> Result<(), String> {
    if n == 0 || (253..=255).contains(&n) {
        return Err(format!("table {n} is not a table number of ours"));
    }
    Ok(())
}

/// The rules we put in our own chains (and two that earlier versions did).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum OurRule {
    /// Client: the group's connections get our connection mark.
    OwnerConnmark { gid: String, mark: MarkMask },
    /// Client: connections of a user's sockets get our connection mark.
    UserConnmark { uid: String, mark: MarkMask },
    /// Client: connections of sockets in a cgroup v2 (a systemd unit's, or
    /// one given as a path) get our connection mark. `id` is the cgroup's
    /// inode when the rule was planned, kept in a comment: the kernel binds
    /// the cgroup when the rule is added, so a cgroup made anew (a restarted
    /// unit) has another id and the rule reads as stale, to be re-added.
    CgroupConnmark {
        path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        mark: MarkMask,
    },
    /// Client: packets of marked connections get the DSCP.
    ConnmarkDscp { mark: MarkMask, dscp: u8 },
    /// Client that is also the gateway: local packets get the routing mark.
    ConnmarkMark { mark: MarkMask },
    /// Earlier client versions: the DSCP straight from the owner match.
    OwnerDscp { gid: String, dscp: u8 },
    /// Earlier client versions: the routing mark straight from the owner match.
    OwnerMark { gid: String, mark: MarkMask },
    /// Gateway: packets of a marked connection get the mark back.
    RestoreMark { mask: u32 },
    /// Gateway: forwarded packets carrying the DSCP get the routing mark.
    DscpMark {
        not_in: String,
        dscp: u8,
        mark: MarkMask,
    },
    /// Gateway: remember the mark on the connection.
    SaveMark { mark: MarkMask },
    /// Gateway: reset the DSCP as packets enter the VPN.
    ScrubDscp { dscp: u8 },
    /// Gateway: source NAT for marked packets.
    Masquerade { mark: MarkMask },
    /// Gateway in `match = "dscp-rule"` mode: source NAT for everything
    /// leaving the VPN interface (the jump names it). There is no mark to
    /// match, and the DSCP is already scrubbed when nat POSTROUTING runs.
    MasqueradeAll,
}

impl OurRule {
    fn check(&self, table: Table) -> Result<(), String> {
        match self {
            OurRule::OwnerConnmark { gid, mark } | OurRule::OwnerMark { gid, mark } => {
                check_group_arg(gid)?;
                mark.check()?;
            }
            OurRule::UserConnmark { uid, mark } => {
                check_uid_arg(uid)?;
                mark.check()?;
            }
            OurRule::CgroupConnmark { path, mark, .. } => {
                check_cgroup_path(path)?;
                mark.check()?;
            }
            OurRule::ConnmarkDscp { mark, dscp } => {
                mark.check()?;
                check_dscp(*dscp)?;
            }
            OurRule::ConnmarkMark { mark }
            | OurRule::SaveMark { mark }
            | OurRule::Masquerade { mark } => mark.check()?,
            OurRule::OwnerDscp { gid, dscp } => {
                check_group_arg(gid)?;
                check_dscp(*dscp)?;
            }
            OurRule::RestoreMark { mask } => check_mask(*mask)?,
            OurRule::DscpMark { not_in, dscp, mark } => {
                check_iface(not_in)?;
                check_dscp(*dscp)?;
                mark.check()?;
            }
            OurRule::ScrubDscp { dscp } => check_dscp(*dscp)?,
            OurRule::MasqueradeAll => {}
        }
        let nat = matches!(self, OurRule::Masquerade { .. } | OurRule::MasqueradeAll);
        if nat != (table == Table::Nat) {
            return Err(format!("not a rule dscproute writes in {}", table.name()));
        }
        Ok(())
    }
}

/// A rule in a chain: our tagged jump (built-in chains hold nothing else of
/// ours), one of our rules (in our chains), or something found on the host
/// in a place of ours that dscproute does not write: shown in a plan, which
/// then refuses to apply, and never stored in a journal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainRule {
    Jump {
        out: Option<String>,
        target: String,
    },
    Ours(OurRule),
    #[serde(skip)]
    Foreign {
        /// As iptables-save prints it.
        text: String,
        /// Why it is not one of ours.
        why: String,
    },
}

/// What a netfilter operation does to a chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NfCmd {
    NewChain {
        chain: String,
    },
    DeleteChain {
        chain: String,
    },
    FlushChain {
        chain: String,
    },
    Append {
        chain: String,
        rule: ChainRule,
    },
    /// First in the chain, or back at the place `at` it was removed from.
    Insert {
        chain: String,
        at: Option<u32>,
        rule: ChainRule,
    },
    Delete {
        chain: String,
        rule: ChainRule,
    },
}

impl NfCmd {
    pub fn chain(&self) -> &str {
        match self {
            NfCmd::NewChain { chain }
            | NfCmd::DeleteChain { chain }
            | NfCmd::FlushChain { chain }
            | NfCmd::Append { chain, .. }
            | NfCmd::Insert { chain, .. }
            | NfCmd::Delete { chain, .. } => chain,
        }
    }

    pub fn rule(&self) -> Option<&ChainRule> {
        match self {
            NfCmd::Append { rule, .. }
            | NfCmd::Insert { rule, .. }
            | NfCmd::Delete { rule, .. } => Some(rule),
            _ => None,
        }
    }

    /// Is this a command dscproute writes in `table`?
    pub fn check(&self, table: Table) -> Result<(), String> {
        let Some(rule) = self.rule() else {
            return our_chain(self.chain());
        };
        let kind = chain_kind(table, self.chain())?;
        if let NfCmd::Insert { at: Some(n), .. } = self
            && !(1..=65535).contains(n)
        {
            return Err(format!("rule position {n} is out of range"));
        }
        match (kind, rule) {
            (_, ChainRule::Foreign { why, .. }) => Err(why.clone()),
            (ChainKind::Builtin, ChainRule::Jump { out, target }) => {
                if let Some(o) = out {
                    check_iface(o)?;
                }
                our_chain(target)
            }
            (ChainKind::Builtin, ChainRule::Ours(_)) => Err(format!(
                "in the built-in chain {} dscproute writes only its tagged jump",
                self.chain()
            )),
            (ChainKind::Ours, ChainRule::Ours(r)) => r.check(table),
            (ChainKind::Ours, ChainRule::Jump { .. }) => Err("not a rule dscproute writes".into()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyAction {
    /// `lookup main suppress_prefixlength 0`: LAN routes win over the VPN.
    LookupMain,
    Lookup(u32),
    Unreachable,
}

/// What a policy rule of ours selects: packets carrying our firewall mark
/// (`match = "mark"`), or the DSCP itself (`match = "dscp-rule"`, `ip rule
/// … dscp N`, Linux ≥ 6.12 and iproute2 ≥ 6.13), with no mark at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selector {
    Mark(MarkMask),
    Dscp(u8),
}

impl Selector {
    pub fn is_mark(self) -> bool {
        matches!(self, Selector::Mark(_))
    }

    fn check(self) -> Result<(), String> {
        match self {
            Selector::Mark(m) => m.check(),
            Selector::Dscp(d) => check_dscp(d),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRule {
    pub pref: u32,
    /// Flattened: a journal keeps `"mark": {…}` as before, or `"dscp": N`.
    #[serde(flatten)]
    pub selector: Selector,
    pub action: PolicyAction,
}

impl PolicyRule {
    fn check(&self) -> Result<(), String> {
        // Clear of the local (0), main and default rules.
        if !(1..=32765).contains(&self.pref) {
            return Err(format!("priority {} is out of range", self.pref));
        }
        self.selector.check()?;
        match self.action {
            PolicyAction::Lookup(t) => check_table_id(t),
            PolicyAction::LookupMain | PolicyAction::Unreachable => Ok(()),
        }
    }
}

/// The default route of our table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRoute {
    pub via: Option<IpAddr>,
    pub dev: String,
    pub table: u32,
}

impl DefaultRoute {
    fn check(&self, family: Family) -> Result<(), String> {
        match (family, self.via) {
            (Family::V4, Some(a @ IpAddr::V6(_))) | (Family::V6, Some(a @ IpAddr::V4(_))) => {
                return Err(format!("{a} is not an {} address", family.name()));
            }
            _ => {}
        }
        check_iface(&self.dev)?;
        check_table_id(self.table)
    }
}

/// The kernel switches dscproute sets.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SysctlKey {
    Ipv4Forwarding,
    Ipv6Forwarding,
    /// `net.ipv4.conf.IF.rp_filter`.
    RpFilter(String),
}

impl SysctlKey {
    pub fn parse(key: &str) -> Result<SysctlKey, String> {
        match key {
            "net.ipv4.ip_forward" => return Ok(SysctlKey::Ipv4Forwarding),
            "net.ipv6.conf.all.forwarding" => return Ok(SysctlKey::Ipv6Forwarding),
            _ => {}
        }
        // sysctl(8) writes a dot inside an interface name as a slash.
        if let Some(dev) = key
            .strip_prefix("net.ipv4.conf.")
            .and_then(|k| k.strip_suffix(".rp_filter"))
            .filter(|d| !d.contains('.'))
            .map(|d| d.replace('/', "."))
            && valid_ifname(&dev)
        {
            return Ok(SysctlKey::RpFilter(dev));
        }
        Err(format!(
            "sysctl {} is not one dscproute manages (ip_forward, IPv6 forwarding, rp_filter)",
            clip(key)
        ))
    }

    /// The key as sysctl(8) names it.
    pub fn key(&self) -> String {
        match self {
            SysctlKey::Ipv4Forwarding => "net.ipv4.ip_forward".into(),
            SysctlKey::Ipv6Forwarding => "net.ipv6.conf.all.forwarding".into(),
            SysctlKey::RpFilter(dev) => conf_key("ipv4", dev, "rp_filter"),
        }
    }

    fn max(&self) -> u8 {
        match self {
            SysctlKey::RpFilter(_) => 2,
            _ => 1,
        }
    }

    /// A value the key can take, as read back: forwarding 0 or 1, rp_filter 0, 1 or 2.
    pub fn value(&self, v: &str) -> Result<u8, String> {
        match v.parse::<u8>() {
            Ok(n) if n <= self.max() && v.len() == 1 => Ok(n),
            _ => Err(format!(
                "{} = {} is not a value dscproute writes (0–{})",
                self.key(),
                clip(v),
                self.max()
            )),
        }
    }

    pub fn check(&self, value: u8) -> Result<(), String> {
        if let SysctlKey::RpFilter(dev) = self {
            check_iface(dev)?;
        }
        self.value(&value.to_string()).map(|_| ())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A chain of ours, a rule in it, or our jump into it.
    Netfilter {
        family: Family,
        table: Table,
        cmd: NfCmd,
    },
    PolicyRule {
        family: Family,
        add: bool,
        rule: PolicyRule,
    },
    Route {
        family: Family,
        add: bool,
        route: DefaultRoute,
    },
    /// Our table's default route moved to another uplink by one `ip route
    /// replace` (a class failing over): the table is never without a route.
    /// `from` is what it replaces, for the preview and the undo.
    RouteReplace {
        family: Family,
        from: DefaultRoute,
        to: DefaultRoute,
    },
    Sysctl {
        key: SysctlKey,
        value: u8,
    },
    GroupAdd {
        name: String,
    },
    GroupDel {
        name: String,
    },
    /// Our rt_tables drop-in naming our table.
    WriteTableNames {
        id: u32,
        name: String,
    },
    RemoveTableNames,
    /// Delete the nftables table iptables-nft created for us, only while it
    /// holds no rules and no chains of anyone's.
    DropEmptyTable {
        family: Family,
        table: Table,
    },
    /// Our nftables table (`table inet dscproute`), written whole in one
    /// `nft -f` transaction. Typed: a journal never carries nft text.
    NftTable {
        ruleset: super::nft::NftRuleset,
        /// The plan saw no table: create it exclusively (the transaction
        /// fails if one appeared since) instead of replacing it. A replace
        /// deletes a table, and nft then waits out an RCU grace period
        /// (about 13 ms here) before it exits.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        fresh: bool,
    },
    /// Delete our nftables table; the executor first checks it is ours.
    NftDelete,
    /// An undo that also tidies up; never nested.
    Seq {
        ops: Vec<Op>,
    },
}

/// At most this many operations in one Seq (a rebuilt chain's old rules).
const MAX_SEQ: usize = 256;

impl Op {
    /// Is this an operation dscproute writes, with its own names and values
    /// in range? The reason when not, as one line.
    pub fn check(&self) -> Result<(), String> {
        self.check_in(true)
    }

    fn check_in(&self, seq_allowed: bool) -> Result<(), String> {
        match self {
            Op::Netfilter { table, cmd, .. } => cmd.check(*table),
            Op::PolicyRule { rule, .. } => rule.check(),
            Op::Route { family, route, .. } => route.check(*family),
            Op::RouteReplace { family, from, to } => {
                from.check(*family)?;
                to.check(*family)?;
                if from.table == to.table {
                    Ok(())
                } else {
                    Err("a route replaced in another table".into())
                }
            }
            Op::Sysctl { key, value } => key.check(*value),
            Op::GroupAdd { name } | Op::GroupDel { name } => check_group_name(name),
            Op::WriteTableNames { id, name } => {
                check_table_id(*id)?;
                if valid_table_name(name) {
                    Ok(())
                } else {
                    Err(format!("{} is not a table name", clip(name)))
                }
            }
            Op::RemoveTableNames | Op::DropEmptyTable { .. } | Op::NftDelete => Ok(()),
            Op::NftTable { ruleset, .. } => ruleset.check(),
            Op::Seq { ops } => {
                if !seq_allowed {
                    return Err("a sequence inside a sequence".into());
                }
                if ops.is_empty() || ops.len() > MAX_SEQ {
                    return Err(format!("a sequence of 1–{MAX_SEQ} effects"));
                }
                ops.iter().try_for_each(|o| o.check_in(false))
            }
        }
    }

    /// The operation, when `effect` is exactly one dscproute plans: how
    /// journals written before operations were stored as such are read.
    pub fn parse(effect: &Effect) -> Result<Op, String> {
        let op = super::parse_effect(effect)?;
        op.check()?;
        if op.effect() != *effect {
            return Err("not spelled the way dscproute writes it".into());
        }
        Ok(op)
    }

    /// What runs: the argv, the file, the table drop (see `super::effect`).
    pub fn effect(&self) -> Effect {
        super::effect(self)
    }

    /// How the operation reads in a preview and in progress lines.
    pub fn display(&self) -> String {
        self.effect().display()
    }

    /// The operations that run, in order (a sequence's parts).
    pub fn leaves(&self) -> Vec<&Op> {
        match self {
            Op::Seq { ops } => ops.iter().flat_map(Op::leaves).collect(),
            op => vec![op],
        }
    }

    /// Does the effect outlive a reboot? Files and groups do; rules, routes
    /// and sysctls do not.
    pub fn is_persistent(&self) -> bool {
        match self {
            Op::WriteTableNames { .. }
            | Op::RemoveTableNames
            | Op::GroupAdd { .. }
            | Op::GroupDel { .. } => true,
            Op::Seq { ops } => ops.iter().any(Op::is_persistent),
            Op::Netfilter { .. }
            | Op::PolicyRule { .. }
            | Op::Route { .. }
            | Op::RouteReplace { .. }
            | Op::Sysctl { .. }
            | Op::NftTable { .. }
            | Op::NftDelete
            | Op::DropEmptyTable { .. } => false,
        }
    }

    /// Removes something (a rule, a chain, a policy rule, a route).
    pub fn is_removal(&self) -> bool {
        match self {
            Op::Netfilter { cmd, .. } => {
                matches!(cmd, NfCmd::Delete { .. } | NfCmd::DeleteChain { .. })
            }
            Op::PolicyRule { add, .. } | Op::Route { add, .. } => !add,
            Op::NftDelete => true,
            _ => false,
        }
    }
}

/// Largest table-name file accepted back (ours holds one short line).
const MAX_NAMES: usize = 4096;

/// Lines of an rt_tables file: `ID NAME`, blank lines and comments. Our
/// drop-in as it was before an apply is restored on undo, so it must be
/// nothing more than table names either.
pub fn table_names(text: &str) -> Result<Vec<(u32, String)>, String> {
    if text.len() > MAX_NAMES {
        return Err(format!(
            "a table name file over {MAX_NAMES} bytes is not one of ours"
        ));
    }
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            [id, name] if valid_table_name(name) => {
                let n = digits(id)
                    .ok_or_else(|| format!("table {} is not a table number of ours", clip(id)))?;
                check_table_id(n)?;
                out.push((n, name.to_string()));
            }
            _ => {
                return Err(format!(
                    "{} is not a table name line (NUMBER NAME)",
                    clip(line)
                ));
            }
        }
    }
    Ok(out)
}

/// `0x` and at most 8 hex digits.
pub fn hex(s: &str) -> Option<u32> {
    let h = s.strip_prefix("0x")?;
    if h.is_empty() || h.len() > 8 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(h, 16).ok()
}

/// A decimal number of at most 10 digits.
pub fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// At most 80 characters of untrusted text, for one-line messages.
pub fn clip(s: &str) -> String {
    const MAX: usize = 80;
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= MAX {
        one_line
    } else {
        let mut t: String = one_line.chars().take(MAX - 1).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests;
