//! The operations dscproute plans, as types. `Op::parse` accepts an effect
//! only when it is word for word what the planner writes (parse, render
//! back, compare) and refuses anything else with a reason. The journal is
//! checked against it before anything of it runs, so a crafted journal
//! cannot make root run, write or delete anything dscproute would not.
//!
//! Steps still carry argv; this is the typed view the planner can grow into
//! producing directly (ops in, argv only at the edge).

use super::Effect;
use super::ownership::{CHAIN_PREFIX, COMMENT, RT_PROTO, RT_TABLES_DROPIN};
use super::steps::Family;
use crate::probe::conf_key;
use crate::profile::{valid_group_name, valid_ifname, valid_table_name};
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    Mangle,
    Nat,
}

impl Table {
    fn parse(s: &str) -> Result<Table, String> {
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

    fn builtins(self) -> &'static [&'static str] {
        match self {
            Table::Mangle => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
            Table::Nat => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
        }
    }
}

/// A chain of ours (`DSCPROUTE-…`) or a built-in chain of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chain {
    Ours(String),
    Builtin(&'static str),
}

impl Chain {
    fn parse(table: Table, s: &str) -> Result<Chain, String> {
        if let Some(b) = table.builtins().iter().find(|b| **b == s) {
            return Ok(Chain::Builtin(b));
        }
        our_chain(s).map(Chain::Ours).map_err(|_| {
            format!(
                "chain {} is neither one of ours ({CHAIN_PREFIX}…) nor a built-in chain of {}",
                clip(s),
                table.name()
            )
        })
    }

    fn name(&self) -> &str {
        match self {
            Chain::Ours(c) => c,
            Chain::Builtin(b) => b,
        }
    }
}

/// `DSCPROUTE-` and capitals, digits, `-` or `_`, within iptables' 28 characters.
fn our_chain(s: &str) -> Result<String, String> {
    let ok = s.len() <= 28
        && s.strip_prefix(CHAIN_PREFIX).is_some_and(|rest| {
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!("chain {} is not one of ours", clip(s)))
    }
}

/// A firewall mark and its mask, as `0xV/0xM`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkMask {
    pub value: u32,
    pub mask: u32,
}

impl MarkMask {
    fn parse(s: &str) -> Result<MarkMask, String> {
        let bad = || format!("{} is not a mark/mask like 0x1/0xff", clip(s));
        let (v, m) = s.split_once('/').ok_or_else(bad)?;
        let (value, mask) = (hex(v).ok_or_else(bad)?, hex(m).ok_or_else(bad)?);
        if mask == 0 || value & !mask != 0 {
            return Err(bad());
        }
        Ok(MarkMask { value, mask })
    }

    fn text(self) -> String {
        format!("{:#x}/{:#x}", self.value, self.mask)
    }
}

fn hex(s: &str) -> Option<u32> {
    let h = s.strip_prefix("0x")?;
    if h.is_empty() || h.len() > 8 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(h, 16).ok()
}

fn mask(s: &str) -> Result<u32, String> {
    hex(s)
        .filter(|m| *m != 0)
        .ok_or_else(|| format!("{} is not a mask like 0xff", clip(s)))
}

fn dscp(s: &str) -> Result<u8, String> {
    hex(s)
        .filter(|d| *d <= 63)
        .map(|d| d as u8)
        .ok_or_else(|| format!("{} is not a DSCP 0x00–0x3f", clip(s)))
}

fn dscp_text(d: u8) -> String {
    format!("{d:#04x}")
}

fn iface(s: &str) -> Result<String, String> {
    if valid_ifname(s) {
        Ok(s.to_string())
    } else {
        Err(format!("{} is not an interface name", clip(s)))
    }
}

/// `--gid-owner` takes a gid or a group name.
fn group_arg(s: &str) -> Result<String, String> {
    if (!s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()))
        || valid_group_name(s)
    {
        Ok(s.to_string())
    } else {
        Err(format!("{} is not a group", clip(s)))
    }
}

fn group_name(s: &str) -> Result<String, String> {
    if valid_group_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!("{} is not a group name", clip(s)))
    }
}

/// A routing table of ours: a number, not one of the reserved 0, 253–255.
fn table_id(s: &str) -> Result<u32, String> {
    let bad = || format!("table {} is not a table number of ours", clip(s));
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match s.parse::<u32>() {
        Ok(n) if n != 0 && !(253..=255).contains(&n) => Ok(n),
        _ => Err(bad()),
    }
}

fn number(s: &str, what: &str, range: std::ops::RangeInclusive<u32>) -> Result<u32, String> {
    s.parse::<u32>()
        .ok()
        .filter(|n| range.contains(n) && s.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("{what} {} is out of range", clip(s)))
}

/// The rules we put in our own chains (and two that earlier versions did).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OurRule {
    /// Client: the group's connections get our connection mark.
    OwnerConnmark {
        gid: String,
        mark: MarkMask,
    },
    /// Client: packets of marked connections get the DSCP.
    ConnmarkDscp {
        mark: MarkMask,
        dscp: u8,
    },
    /// Client that is also the gateway: local packets get the routing mark.
    ConnmarkMark {
        mark: MarkMask,
    },
    /// Earlier client versions: the DSCP straight from the owner match.
    OwnerDscp {
        gid: String,
        dscp: u8,
    },
    /// Earlier client versions: the routing mark straight from the owner match.
    OwnerMark {
        gid: String,
        mark: MarkMask,
    },
    RestoreMark {
        mask: u32,
    },
    DscpMark {
        not_in: String,
        dscp: u8,
        mark: MarkMask,
    },
    SaveMark {
        mark: MarkMask,
    },
    ScrubDscp {
        dscp: u8,
    },
    Masquerade {
        mark: MarkMask,
    },
}

impl OurRule {
    fn parse(table: Table, w: &[&str]) -> Result<OurRule, String> {
        let rule = match *w {
            [
                "-m",
                "owner",
                "--gid-owner",
                g,
                "-j",
                "CONNMARK",
                "--set-xmark",
                m,
            ] => OurRule::OwnerConnmark {
                gid: group_arg(g)?,
                mark: MarkMask::parse(m)?,
            },
            ["-m", "connmark", "--mark", m, "-j", "DSCP", "--set-dscp", d] => {
                OurRule::ConnmarkDscp {
                    mark: MarkMask::parse(m)?,
                    dscp: dscp(d)?,
                }
            }
            [
                "-m",
                "connmark",
                "--mark",
                m,
                "-j",
                "MARK",
                "--set-xmark",
                m2,
            ] if m == m2 => OurRule::ConnmarkMark {
                mark: MarkMask::parse(m)?,
            },
            [
                "-m",
                "owner",
                "--gid-owner",
                g,
                "-j",
                "DSCP",
                "--set-dscp",
                d,
            ] => OurRule::OwnerDscp {
                gid: group_arg(g)?,
                dscp: dscp(d)?,
            },
            [
                "-m",
                "owner",
                "--gid-owner",
                g,
                "-j",
                "MARK",
                "--set-xmark",
                m,
            ] => OurRule::OwnerMark {
                gid: group_arg(g)?,
                mark: MarkMask::parse(m)?,
            },
            [
                "-j",
                "CONNMARK",
                "--restore-mark",
                "--nfmask",
                a,
                "--ctmask",
                b,
            ] if a == b => OurRule::RestoreMark { mask: mask(a)? },
            [
                "!",
                "-i",
                dev,
                "-m",
                "dscp",
                "--dscp",
                d,
                "-j",
                "MARK",
                "--set-xmark",
                m,
            ] => OurRule::DscpMark {
                not_in: iface(dev)?,
                dscp: dscp(d)?,
                mark: MarkMask::parse(m)?,
            },
            [
                "-m",
                "mark",
                "--mark",
                m,
                "-j",
                "CONNMARK",
                "--save-mark",
                "--nfmask",
                a,
                "--ctmask",
                b,
            ] if a == b => {
                let mark = MarkMask::parse(m)?;
                if mask(a)? != mark.mask {
                    return Err("the save mask differs from the mark's".into());
                }
                OurRule::SaveMark { mark }
            }
            [
                "-m",
                "dscp",
                "--dscp",
                d,
                "-j",
                "DSCP",
                "--set-dscp",
                "0x00",
            ] => OurRule::ScrubDscp { dscp: dscp(d)? },
            ["-m", "mark", "--mark", m, "-j", "MASQUERADE"] => OurRule::Masquerade {
                mark: MarkMask::parse(m)?,
            },
            _ => return Err("not a rule dscproute writes".into()),
        };
        let nat = matches!(rule, OurRule::Masquerade { .. });
        if nat != (table == Table::Nat) {
            return Err(format!("not a rule dscproute writes in {}", table.name()));
        }
        Ok(rule)
    }

    fn words(&self) -> Vec<String> {
        let v: Vec<String> = match self {
            OurRule::OwnerConnmark { gid, mark } => [
                "-m",
                "owner",
                "--gid-owner",
                gid,
                "-j",
                "CONNMARK",
                "--set-xmark",
                &mark.text(),
            ]
            .map(String::from)
            .to_vec(),
            OurRule::ConnmarkDscp { mark, dscp } => [
                "-m",
                "connmark",
                "--mark",
                &mark.text(),
                "-j",
                "DSCP",
                "--set-dscp",
                &dscp_text(*dscp),
            ]
            .map(String::from)
            .to_vec(),
            OurRule::ConnmarkMark { mark } => [
                "-m",
                "connmark",
                "--mark",
                &mark.text(),
                "-j",
                "MARK",
                "--set-xmark",
                &mark.text(),
            ]
            .map(String::from)
            .to_vec(),
            OurRule::OwnerDscp { gid, dscp } => [
                "-m",
                "owner",
                "--gid-owner",
                gid,
                "-j",
                "DSCP",
                "--set-dscp",
                &dscp_text(*dscp),
            ]
            .map(String::from)
            .to_vec(),
            OurRule::OwnerMark { gid, mark } => [
                "-m",
                "owner",
                "--gid-owner",
                gid,
                "-j",
                "MARK",
                "--set-xmark",
                &mark.text(),
            ]
            .map(String::from)
            .to_vec(),
            OurRule::RestoreMark { mask } => {
                let m = format!("{mask:#x}");
                [
                    "-j",
                    "CONNMARK",
                    "--restore-mark",
                    "--nfmask",
                    &m,
                    "--ctmask",
                    &m,
                ]
                .map(String::from)
                .to_vec()
            }
            OurRule::DscpMark { not_in, dscp, mark } => [
                "!",
                "-i",
                not_in,
                "-m",
                "dscp",
                "--dscp",
                &dscp_text(*dscp),
                "-j",
                "MARK",
                "--set-xmark",
                &mark.text(),
            ]
            .map(String::from)
            .to_vec(),
            OurRule::SaveMark { mark } => {
                let m = format!("{:#x}", mark.mask);
                [
                    "-m",
                    "mark",
                    "--mark",
                    &mark.text(),
                    "-j",
                    "CONNMARK",
                    "--save-mark",
                    "--nfmask",
                    &m,
                    "--ctmask",
                    &m,
                ]
                .map(String::from)
                .to_vec()
            }
            OurRule::ScrubDscp { dscp } => [
                "-m",
                "dscp",
                "--dscp",
                &dscp_text(*dscp),
                "-j",
                "DSCP",
                "--set-dscp",
                "0x00",
            ]
            .map(String::from)
            .to_vec(),
            OurRule::Masquerade { mark } => {
                ["-m", "mark", "--mark", &mark.text(), "-j", "MASQUERADE"]
                    .map(String::from)
                    .to_vec()
            }
        };
        v
    }
}

/// What a rule in a chain is: our tagged jump (built-in chains hold nothing
/// else of ours) or one of our rules (in our chains).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainRule {
    Jump { out: Option<String>, target: String },
    Ours(OurRule),
}

impl ChainRule {
    fn parse(table: Table, chain: &Chain, w: &[&str]) -> Result<ChainRule, String> {
        match chain {
            Chain::Builtin(b) => {
                let (out, rest) = match w {
                    ["-o", dev, rest @ ..] => (Some(iface(dev)?), rest),
                    rest => (None, rest),
                };
                match rest {
                    ["-m", "comment", "--comment", tag, "-j", target] if *tag == COMMENT => {
                        Ok(ChainRule::Jump {
                            out,
                            target: our_chain(target)?,
                        })
                    }
                    _ => Err(format!(
                        "in the built-in chain {b} dscproute writes only its tagged jump"
                    )),
                }
            }
            Chain::Ours(_) => OurRule::parse(table, w).map(ChainRule::Ours),
        }
    }

    fn words(&self) -> Vec<String> {
        match self {
            ChainRule::Jump { out, target } => {
                let mut v = Vec::new();
                if let Some(o) = out {
                    v.extend(["-o".to_string(), o.clone()]);
                }
                v.extend(["-m", "comment", "--comment", COMMENT, "-j", target].map(String::from));
                v
            }
            ChainRule::Ours(r) => r.words(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IptCmd {
    NewChain(String),
    DeleteChain(String),
    FlushChain(String),
    Append(Chain, ChainRule),
    /// `-I CHAIN [N] RULE`: first, or back at the place it was removed from.
    Insert(Chain, Option<u32>, ChainRule),
    Delete(Chain, ChainRule),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyAction {
    /// `lookup main suppress_prefixlength 0`: LAN routes win over the VPN.
    LookupMain,
    Lookup(u32),
    Unreachable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyRule {
    pub pref: u32,
    pub mark: MarkMask,
    pub action: PolicyAction,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultRoute {
    pub via: Option<IpAddr>,
    pub dev: String,
    pub table: u32,
}

/// The kernel switches dscproute sets.
#[derive(Clone, Debug, PartialEq, Eq)]
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

    pub fn key(&self) -> String {
        match self {
            SysctlKey::Ipv4Forwarding => "net.ipv4.ip_forward".into(),
            SysctlKey::Ipv6Forwarding => "net.ipv6.conf.all.forwarding".into(),
            SysctlKey::RpFilter(dev) => conf_key("ipv4", dev, "rp_filter"),
        }
    }

    /// A value the key can take: forwarding 0 or 1, rp_filter 0, 1 or 2.
    pub fn value(&self, v: &str) -> Result<u8, String> {
        let max = match self {
            SysctlKey::RpFilter(_) => 2,
            _ => 1,
        };
        match v.parse::<u8>() {
            Ok(n) if n <= max && v.len() == 1 => Ok(n),
            _ => Err(format!(
                "{} = {} is not a value dscproute writes (0–{max})",
                self.key(),
                clip(v)
            )),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Iptables {
        family: Family,
        table: Table,
        cmd: IptCmd,
    },
    Rule {
        family: Family,
        add: bool,
        rule: PolicyRule,
    },
    Route {
        family: Family,
        add: bool,
        route: DefaultRoute,
    },
    Sysctl {
        key: SysctlKey,
        value: u8,
    },
    GroupAdd(String),
    GroupDel(String),
    /// Our rt_tables drop-in naming our table.
    WriteTableNames {
        id: u32,
        name: String,
    },
    RemoveTableNames,
    DropEmptyTable {
        family: Family,
        table: Table,
    },
    /// An undo that also tidies up; never nested.
    Seq(Vec<Op>),
}

/// At most this many effects in one Seq (a rebuilt chain's old rules).
const MAX_SEQ: usize = 256;

fn verb(s: &str) -> Result<bool, String> {
    match s {
        "add" => Ok(true),
        "del" => Ok(false),
        other => Err(format!("{} is not add or del", clip(other))),
    }
}

fn ip_family(s: &str) -> Result<Family, String> {
    match s {
        "-4" => Ok(Family::V4),
        "-6" => Ok(Family::V6),
        other => Err(format!("{} is not -4 or -6", clip(other))),
    }
}

impl Op {
    /// The typed operation, when `effect` is exactly one dscproute plans.
    pub fn parse(effect: &Effect) -> Result<Op, String> {
        let op = Self::parse_loose(effect, true)?;
        if op.effect() != *effect {
            return Err("not spelled the way dscproute writes it".into());
        }
        Ok(op)
    }

    fn parse_loose(effect: &Effect, seq_allowed: bool) -> Result<Op, String> {
        match effect {
            Effect::Run { argv } => {
                let w: Vec<&str> = argv.iter().map(String::as_str).collect();
                Self::parse_argv(&w)
            }
            Effect::WriteFile { path, contents } => {
                only_dropin(path)?;
                match table_names(contents)?.as_slice() {
                    [(id, name)] => Ok(Op::WriteTableNames {
                        id: *id,
                        name: name.clone(),
                    }),
                    _ => Err("the table name file dscproute writes has one line".into()),
                }
            }
            Effect::RemoveFile { path } => only_dropin(path).map(|()| Op::RemoveTableNames),
            Effect::DropEmptyTable { family, table } => Ok(Op::DropEmptyTable {
                family: match family.as_str() {
                    "ip" => Family::V4,
                    "ip6" => Family::V6,
                    other => return Err(format!("nft family {} is not ip or ip6", clip(other))),
                },
                table: Table::parse(table)?,
            }),
            Effect::Seq { effects } => {
                if !seq_allowed {
                    return Err("a sequence inside a sequence".into());
                }
                if effects.is_empty() || effects.len() > MAX_SEQ {
                    return Err(format!("a sequence of 1–{MAX_SEQ} effects"));
                }
                effects
                    .iter()
                    .map(|e| Self::parse_loose(e, false))
                    .collect::<Result<_, _>>()
                    .map(Op::Seq)
            }
        }
    }

    fn parse_argv(w: &[&str]) -> Result<Op, String> {
        let proto = RT_PROTO.to_string();
        match *w {
            [
                tool @ ("iptables" | "ip6tables"),
                "-w",
                "-t",
                table,
                op,
                chain,
                ref rest @ ..,
            ] => {
                let family = if tool == "iptables" {
                    Family::V4
                } else {
                    Family::V6
                };
                let table = Table::parse(table)?;
                let cmd = Self::parse_ipt(table, op, chain, rest)?;
                Ok(Op::Iptables { family, table, cmd })
            }
            [
                "ip",
                fam,
                "rule",
                v,
                "pref",
                pref,
                "fwmark",
                mark,
                ref rest @ ..,
            ] => {
                let family = ip_family(fam)?;
                let add = verb(v)?;
                let action = match rest {
                    ["lookup", "main", "suppress_prefixlength", "0", "proto", p] if *p == proto => {
                        PolicyAction::LookupMain
                    }
                    ["lookup", t, "proto", p] if *p == proto => PolicyAction::Lookup(table_id(t)?),
                    ["unreachable", "proto", p] if *p == proto => PolicyAction::Unreachable,
                    _ => {
                        return Err(format!(
                            "not a policy rule dscproute writes (lookup main with \
                             suppress_prefixlength 0, lookup of a table number, or unreachable, \
                             with proto {RT_PROTO})"
                        ));
                    }
                };
                Ok(Op::Rule {
                    family,
                    add,
                    rule: PolicyRule {
                        // Clear of the local (0), main and default rules.
                        pref: number(pref, "priority", 1..=32765)?,
                        mark: MarkMask::parse(mark)?,
                        action,
                    },
                })
            }
            ["ip", fam, "route", v, "default", ref rest @ ..] => {
                let family = ip_family(fam)?;
                let add = verb(v)?;
                let (via, rest) = match rest {
                    ["via", addr, rest @ ..] => (Some(address(family, addr)?), rest),
                    rest => (None, rest),
                };
                match rest {
                    ["dev", dev, "table", t, "proto", p] if *p == proto => Ok(Op::Route {
                        family,
                        add,
                        route: DefaultRoute {
                            via,
                            dev: iface(dev)?,
                            table: table_id(t)?,
                        },
                    }),
                    _ => Err(format!(
                        "not a route dscproute writes (default [via ADDR] dev IF table N proto \
                         {RT_PROTO})"
                    )),
                }
            }
            ["sysctl", "-q", "-w", assignment] => {
                let (k, v) = assignment
                    .split_once('=')
                    .ok_or_else(|| format!("{} is not key=value", clip(assignment)))?;
                let key = SysctlKey::parse(k)?;
                let value = key.value(v)?;
                Ok(Op::Sysctl { key, value })
            }
            ["groupadd", name] => Ok(Op::GroupAdd(group_name(name)?)),
            ["groupdel", name] => Ok(Op::GroupDel(group_name(name)?)),
            [program, ..] => Err(format!(
                "{} is not a command dscproute runs in this form",
                clip(program)
            )),
            [] => Err("an empty command".into()),
        }
    }

    fn parse_ipt(table: Table, op: &str, chain: &str, rest: &[&str]) -> Result<IptCmd, String> {
        let ours = || our_chain(chain);
        let nothing_more = |cmd: IptCmd| {
            if rest.is_empty() {
                Ok(cmd)
            } else {
                Err(format!("{op} takes only the chain"))
            }
        };
        match op {
            "-N" => nothing_more(IptCmd::NewChain(ours()?)),
            "-X" => nothing_more(IptCmd::DeleteChain(ours()?)),
            "-F" => nothing_more(IptCmd::FlushChain(ours()?)),
            "-A" | "-I" | "-D" => {
                let chain = Chain::parse(table, chain)?;
                let (at, rest) = match (op, rest) {
                    ("-I", [n, rest @ ..]) if n.bytes().all(|b| b.is_ascii_digit()) => {
                        (Some(number(n, "rule position", 1..=65535)?), rest)
                    }
                    _ => (None, rest),
                };
                let rule = ChainRule::parse(table, &chain, rest)?;
                Ok(match op {
                    "-A" => IptCmd::Append(chain, rule),
                    "-I" => IptCmd::Insert(chain, at, rule),
                    _ => IptCmd::Delete(chain, rule),
                })
            }
            other => Err(format!(
                "iptables {} is not an operation dscproute uses",
                clip(other)
            )),
        }
    }

    /// The effect this operation runs as: argv, the file, the table drop.
    pub fn effect(&self) -> Effect {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        match self {
            Op::Iptables { family, table, cmd } => {
                let mut v = s(&[family.iptables(), "-w", "-t", table.name()]);
                let (op, chain, rule, at) = match cmd {
                    IptCmd::NewChain(c) => ("-N", c.as_str(), None, None),
                    IptCmd::DeleteChain(c) => ("-X", c.as_str(), None, None),
                    IptCmd::FlushChain(c) => ("-F", c.as_str(), None, None),
                    IptCmd::Append(c, r) => ("-A", c.name(), Some(r), None),
                    IptCmd::Insert(c, at, r) => ("-I", c.name(), Some(r), *at),
                    IptCmd::Delete(c, r) => ("-D", c.name(), Some(r), None),
                };
                v.extend(s(&[op, chain]));
                if let Some(n) = at {
                    v.push(n.to_string());
                }
                if let Some(r) = rule {
                    v.extend(r.words());
                }
                Effect::run(v)
            }
            Op::Rule { family, add, rule } => {
                let mut v = s(&[
                    "ip",
                    family.ip_flag(),
                    "rule",
                    if *add { "add" } else { "del" },
                ]);
                v.extend(s(&[
                    "pref",
                    &rule.pref.to_string(),
                    "fwmark",
                    &rule.mark.text(),
                ]));
                match rule.action {
                    PolicyAction::LookupMain => {
                        v.extend(s(&["lookup", "main", "suppress_prefixlength", "0"]))
                    }
                    PolicyAction::Lookup(t) => v.extend(s(&["lookup", &t.to_string()])),
                    PolicyAction::Unreachable => v.push("unreachable".into()),
                }
                v.extend(s(&["proto", &RT_PROTO.to_string()]));
                Effect::run(v)
            }
            Op::Route { family, add, route } => {
                let mut v = s(&[
                    "ip",
                    family.ip_flag(),
                    "route",
                    if *add { "add" } else { "del" },
                ]);
                v.push("default".into());
                if let Some(via) = route.via {
                    v.extend(s(&["via", &via.to_string()]));
                }
                v.extend(s(&[
                    "dev",
                    &route.dev,
                    "table",
                    &route.table.to_string(),
                    "proto",
                    &RT_PROTO.to_string(),
                ]));
                Effect::run(v)
            }
            Op::Sysctl { key, value } => Effect::run(s(&[
                "sysctl",
                "-q",
                "-w",
                &format!("{}={value}", key.key()),
            ])),
            Op::GroupAdd(n) => Effect::run(s(&["groupadd", n])),
            Op::GroupDel(n) => Effect::run(s(&["groupdel", n])),
            Op::WriteTableNames { id, name } => Effect::WriteFile {
                path: RT_TABLES_DROPIN.into(),
                contents: format!("{id} {name}\n"),
            },
            Op::RemoveTableNames => Effect::RemoveFile {
                path: RT_TABLES_DROPIN.into(),
            },
            Op::DropEmptyTable { family, table } => Effect::DropEmptyTable {
                family: match family {
                    Family::V4 => "ip",
                    Family::V6 => "ip6",
                }
                .into(),
                table: table.name().into(),
            },
            Op::Seq(ops) => Effect::Seq {
                effects: ops.iter().map(Op::effect).collect(),
            },
        }
    }
}

fn address(family: Family, s: &str) -> Result<IpAddr, String> {
    match (family, s.parse::<IpAddr>()) {
        (Family::V4, Ok(a @ IpAddr::V4(_))) | (Family::V6, Ok(a @ IpAddr::V6(_))) => Ok(a),
        _ => Err(format!("{} is not an {} address", clip(s), family.name())),
    }
}

fn only_dropin(path: &str) -> Result<(), String> {
    if path == RT_TABLES_DROPIN {
        Ok(())
    } else {
        Err(format!(
            "{} is not a file dscproute writes (only {RT_TABLES_DROPIN})",
            clip(path)
        ))
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
            [id, name] if valid_table_name(name) => out.push((table_id(id)?, name.to_string())),
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
