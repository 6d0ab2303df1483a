//! The iptables backend: netfilter operations as iptables/ip6tables argv
//! and iptables-restore lines, and back. Our rules are spelled as
//! iptables-save prints them, so a rule on the host is ours when its text
//! is the text we write.

use super::Effect;
use super::op::{
    ChainKind, ChainRule, Family, MarkMask, NfCmd, Op, OurRule, Table, chain_kind, clip, digits,
    hex,
};
use crate::ownership::{CHAIN_PREFIX, COMMENT};

fn words(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn program(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables",
        Family::V6 => "ip6tables",
    }
}

pub fn save_program(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables-save",
        Family::V6 => "ip6tables-save",
    }
}

/// The nftables family iptables-nft puts the tables of `family` in.
pub fn nft_family(family: Family) -> &'static str {
    match family {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    }
}

/// `iptables -w -t TABLE ARGS…`.
fn command(family: Family, table: &str, args: &[&str]) -> Effect {
    let mut v = words(&[program(family), "-w", "-t", table]);
    v.extend(words(args));
    Effect::run(v)
}

// For what `rollback --all` finds by its tags: any table, any chain, rules
// as iptables-save shows them.

/// Delete the rule `text` (as iptables-save prints it) from `chain`.
pub fn remove_rule(family: Family, table: &str, chain: &str, text: &str) -> Effect {
    let mut args = vec!["-D", chain];
    args.extend(text.split_whitespace());
    command(family, table, &args)
}

pub fn flush_chain(family: Family, table: &str, chain: &str) -> Effect {
    command(family, table, &["-F", chain])
}

pub fn delete_chain(family: Family, table: &str, chain: &str) -> Effect {
    command(family, table, &["-X", chain])
}

pub fn drop_empty_table(family: Family, table: &str) -> Effect {
    Effect::DropEmptyTable {
        family: nft_family(family).into(),
        table: table.into(),
    }
}

pub fn argv(family: Family, table: Table, cmd: &NfCmd) -> Vec<String> {
    let mut v = words(&[program(family), "-w", "-t", table.name()]);
    v.extend(cmd_words(cmd));
    v
}

/// `OP CHAIN [N] RULE…`: the part after the table, also an
/// iptables-restore line.
fn cmd_words(cmd: &NfCmd) -> Vec<String> {
    let (op, at) = match cmd {
        NfCmd::NewChain { .. } => ("-N", None),
        NfCmd::DeleteChain { .. } => ("-X", None),
        NfCmd::FlushChain { .. } => ("-F", None),
        NfCmd::Append { .. } => ("-A", None),
        NfCmd::Insert { at, .. } => ("-I", *at),
        NfCmd::Delete { .. } => ("-D", None),
    };
    let mut v = words(&[op, cmd.chain()]);
    if let Some(n) = at {
        v.push(n.to_string());
    }
    if let Some(r) = cmd.rule() {
        v.extend(rule_words(r));
    }
    v
}

/// A rule as iptables-save prints it (after `-A CHAIN `).
pub fn rule_text(rule: &ChainRule) -> String {
    save_words(rule).join(" ")
}

/// The words iptables-save prints: as the argv, but a cgroup path with a
/// character outside `[A-Za-z0-9_-]` comes in double quotes
/// (xtables_save_string; dscproute's paths never need escapes).
fn save_words(rule: &ChainRule) -> Vec<String> {
    let mut w = rule_words(rule);
    if let ChainRule::Ours(OurRule::CgroupConnmark { .. }) = rule
        && let Some(i) = w.iter().position(|a| a == "--path")
        && let Some(p) = w.get_mut(i + 1)
        && !p
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        *p = format!("\"{p}\"");
    }
    w
}

/// A cgroup path as read back: quoted by iptables-save or bare (argv).
fn unquote(p: &str) -> &str {
    p.strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or(p)
}

fn rule_words(rule: &ChainRule) -> Vec<String> {
    match rule {
        ChainRule::Jump { out, target } => {
            let mut v = Vec::new();
            if let Some(o) = out {
                v.extend(words(&["-o", o]));
            }
            v.extend(words(&[
                "-m",
                "comment",
                "--comment",
                COMMENT,
                "-j",
                target,
            ]));
            v
        }
        ChainRule::Ours(r) => our_rule_words(r),
        ChainRule::Foreign { text, .. } => text.split_whitespace().map(str::to_string).collect(),
    }
}

/// The comment that carries a cgroup's id: only `[A-Za-z0-9-]`, so
/// iptables-save prints it bare.
const CGROUP_COMMENT: &str = "dscproute-cgroup-";

fn cgroup_comment(id: u64) -> String {
    format!("{CGROUP_COMMENT}{id}")
}

fn dscp_text(d: u8) -> String {
    format!("{d:#04x}")
}

fn our_rule_words(rule: &OurRule) -> Vec<String> {
    match rule {
        OurRule::OwnerConnmark { gid, mark } => words(&[
            "-m",
            "owner",
            "--gid-owner",
            gid,
            "-j",
            "CONNMARK",
            "--set-xmark",
            &mark.text(),
        ]),
        OurRule::UserConnmark { uid, mark } => words(&[
            "-m",
            "owner",
            "--uid-owner",
            uid,
            "-j",
            "CONNMARK",
            "--set-xmark",
            &mark.text(),
        ]),
        OurRule::CgroupConnmark { path, id, mark } => {
            let mut v = words(&["-m", "cgroup", "--path", path]);
            if let Some(id) = id {
                v.extend(words(&["-m", "comment", "--comment", &cgroup_comment(*id)]));
            }
            v.extend(words(&["-j", "CONNMARK", "--set-xmark", &mark.text()]));
            v
        }
        OurRule::ConnmarkDscp { mark, dscp } => words(&[
            "-m",
            "connmark",
            "--mark",
            &mark.text(),
            "-j",
            "DSCP",
            "--set-dscp",
            &dscp_text(*dscp),
        ]),
        OurRule::ConnmarkMark { mark } => words(&[
            "-m",
            "connmark",
            "--mark",
            &mark.text(),
            "-j",
            "MARK",
            "--set-xmark",
            &mark.text(),
        ]),
        OurRule::OwnerDscp { gid, dscp } => words(&[
            "-m",
            "owner",
            "--gid-owner",
            gid,
            "-j",
            "DSCP",
            "--set-dscp",
            &dscp_text(*dscp),
        ]),
        OurRule::OwnerMark { gid, mark } => words(&[
            "-m",
            "owner",
            "--gid-owner",
            gid,
            "-j",
            "MARK",
            "--set-xmark",
            &mark.text(),
        ]),
        OurRule::RestoreMark { mask } => {
            let m = format!("{mask:#x}");
            words(&[
                "-j",
                "CONNMARK",
                "--restore-mark",
                "--nfmask",
                &m,
                "--ctmask",
                &m,
            ])
        }
        OurRule::DscpMark { not_in, dscp, mark } => words(&[
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
        ]),
        OurRule::SaveMark { mark } => {
            let m = format!("{:#x}", mark.mask);
            words(&[
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
            ])
        }
        OurRule::ScrubDscp { dscp } => words(&[
            "-m",
            "dscp",
            "--dscp",
            &dscp_text(*dscp),
            "-j",
            "DSCP",
            "--set-dscp",
            "0x00",
        ]),
        OurRule::Masquerade { mark } => {
            words(&["-m", "mark", "--mark", &mark.text(), "-j", "MASQUERADE"])
        }
        OurRule::MasqueradeAll => words(&["-j", "MASQUERADE"]),
    }
}

// ------------------------------------------------------------- reading back

fn mask(s: &str) -> Result<u32, String> {
    hex(s).ok_or_else(|| format!("{} is not a mask like 0xff", clip(s)))
}

fn dscp(s: &str) -> Result<u8, String> {
    hex(s)
        .and_then(|d| u8::try_from(d).ok())
        .ok_or_else(|| format!("{} is not a DSCP 0x00–0x3f", clip(s)))
}

fn our_rule(w: &[&str]) -> Result<OurRule, String> {
    Ok(match *w {
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
            gid: g.into(),
            mark: MarkMask::parse(m)?,
        },
        [
            "-m",
            "owner",
            "--uid-owner",
            u,
            "-j",
            "CONNMARK",
            "--set-xmark",
            m,
        ] => OurRule::UserConnmark {
            uid: u.into(),
            mark: MarkMask::parse(m)?,
        },
        [
            "-m",
            "cgroup",
            "--path",
            p,
            "-j",
            "CONNMARK",
            "--set-xmark",
            m,
        ] => OurRule::CgroupConnmark {
            path: unquote(p).into(),
            id: None,
            mark: MarkMask::parse(m)?,
        },
        [
            "-m",
            "cgroup",
            "--path",
            p,
            "-m",
            "comment",
            "--comment",
            c,
            "-j",
            "CONNMARK",
            "--set-xmark",
            m,
        ] => OurRule::CgroupConnmark {
            path: unquote(p).into(),
            id: Some(
                c.strip_prefix(CGROUP_COMMENT)
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| format!("comment {} is not one of ours", clip(c)))?,
            ),
            mark: MarkMask::parse(m)?,
        },
        ["-m", "connmark", "--mark", m, "-j", "DSCP", "--set-dscp", d] => OurRule::ConnmarkDscp {
            mark: MarkMask::parse(m)?,
            dscp: dscp(d)?,
        },
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
            gid: g.into(),
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
            gid: g.into(),
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
            not_in: dev.into(),
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
        ["-j", "MASQUERADE"] => OurRule::MasqueradeAll,
        _ => return Err("not a rule dscproute writes".into()),
    })
}

fn chain_rule(kind: ChainKind, chain: &str, w: &[&str]) -> Result<ChainRule, String> {
    match kind {
        ChainKind::Builtin => {
            let (out, rest) = match w {
                ["-o", dev, rest @ ..] => (Some(dev.to_string()), rest),
                rest => (None, rest),
            };
            match rest {
                ["-m", "comment", "--comment", tag, "-j", target] if *tag == COMMENT => {
                    Ok(ChainRule::Jump {
                        out,
                        target: target.to_string(),
                    })
                }
                _ => Err(format!(
                    "in the built-in chain {chain} dscproute writes only its tagged jump"
                )),
            }
        }
        ChainKind::Ours => our_rule(w).map(ChainRule::Ours),
    }
}

/// A rule iptables-save shows in `chain` of `table`, typed when it is
/// exactly one dscproute writes, `Foreign` (with why) otherwise.
pub fn read_rule(table: Table, chain: &str, text: &str) -> ChainRule {
    let w: Vec<&str> = text.split_whitespace().collect();
    let typed = chain_kind(table, chain)
        .and_then(|kind| chain_rule(kind, chain, &w))
        .and_then(|rule| {
            let cmd = NfCmd::Append {
                chain: chain.into(),
                rule,
            };
            cmd.check(table)?;
            match cmd {
                NfCmd::Append { rule, .. } if save_words(&rule) == w => Ok(rule),
                _ => Err("not spelled the way dscproute writes it".into()),
            }
        });
    typed.unwrap_or_else(|why| ChainRule::Foreign {
        text: w.join(" "),
        why,
    })
}

/// `iptables|ip6tables -w -t TABLE OP CHAIN …` as an operation.
pub fn parse_argv(w: &[&str]) -> Result<Op, String> {
    let [tool, "-w", "-t", table, op, chain, rest @ ..] = w else {
        return Err(format!(
            "{} is not a command dscproute runs in this form",
            clip(w.first().copied().unwrap_or_default())
        ));
    };
    let family = if *tool == "iptables" {
        Family::V4
    } else {
        Family::V6
    };
    let table = Table::parse(table)?;
    let chain_only = |cmd: NfCmd| {
        if rest.is_empty() {
            Ok(cmd)
        } else {
            Err(format!("{op} takes only the chain"))
        }
    };
    let chain = chain.to_string();
    let cmd = match *op {
        "-N" => chain_only(NfCmd::NewChain { chain })?,
        "-X" => chain_only(NfCmd::DeleteChain { chain })?,
        "-F" => chain_only(NfCmd::FlushChain { chain })?,
        "-A" | "-I" | "-D" => {
            let kind = chain_kind(table, &chain)?;
            let (at, rest) = match (*op, rest) {
                ("-I", [n, rest @ ..]) if n.bytes().all(|b| b.is_ascii_digit()) => {
                    let at = digits(n)
                        .ok_or_else(|| format!("rule position {} is out of range", clip(n)))?;
                    (Some(at), rest)
                }
                _ => (None, rest),
            };
            let rule = chain_rule(kind, &chain, rest)?;
            match *op {
                "-A" => NfCmd::Append { chain, rule },
                "-I" => NfCmd::Insert { chain, at, rule },
                _ => NfCmd::Delete { chain, rule },
            }
        }
        other => {
            return Err(format!(
                "iptables {} is not an operation dscproute uses",
                clip(other)
            ));
        }
    };
    Ok(Op::Netfilter { family, table, cmd })
}

pub fn parse_drop_empty_table(family: &str, table: &str) -> Result<Op, String> {
    Ok(Op::DropEmptyTable {
        family: match family {
            "ip" => Family::V4,
            "ip6" => Family::V6,
            other => return Err(format!("nft family {} is not ip or ip6", clip(other))),
        },
        table: Table::parse(table)?,
    })
}

// ------------------------------------------------------------ batches

/// Which `iptables-restore` batch a netfilter operation can join.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BatchKey {
    pub family: Family,
    pub table: Table,
}

/// An argument iptables-restore reads back unchanged: no quoting needed.
fn plain_word(a: &str) -> bool {
    !a.is_empty()
        && !a.starts_with('#')
        && !a
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | '\'' | '\\'))
}

/// A netfilter operation -> its batch and its iptables-restore line, `OP
/// CHAIN …`. Anything else (other operations, words that would need
/// quoting) runs on its own.
pub fn restore_line(op: &Op) -> Option<(BatchKey, String)> {
    let Op::Netfilter { family, table, cmd } = op else {
        return None;
    };
    let w = cmd_words(cmd);
    if !w.iter().all(|a| plain_word(a)) {
        return None;
    }
    Some((
        BatchKey {
            family: *family,
            table: *table,
        },
        w.join(" "),
    ))
}

/// `iptables-restore -w --noflush`: other rules and chains stay.
pub fn restore_argv(key: &BatchKey) -> Vec<String> {
    let program = match key.family {
        Family::V4 => "iptables-restore",
        Family::V6 => "ip6tables-restore",
    };
    words(&[program, "-w", "--noflush"])
}

/// The stdin of one batch: one table block, committed as one nf_tables
/// transaction (all of it or nothing).
pub fn restore_input(key: &BatchKey, lines: &[String]) -> String {
    let mut s = format!("*{}\n", key.table.name());
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s.push_str("COMMIT\n");
    s
}

/// (extension, is a target) for every `-m`/`-j` of a netfilter operation,
/// jumps to our own chains aside.
pub fn extensions(op: &Op) -> Vec<(String, bool)> {
    let Op::Netfilter { cmd, .. } = op else {
        return Vec::new();
    };
    let w = cmd_words(cmd);
    w.windows(2)
        .filter_map(|p| match p[0].as_str() {
            "-m" => Some((p[1].clone(), false)),
            "-j" if !p[1].starts_with(CHAIN_PREFIX) => Some((p[1].clone(), true)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests;
