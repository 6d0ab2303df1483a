//! The nftables backend: everything dscproute needs in netfilter lives in
//! one table it owns, `table inet dscproute`, with its own base chains. The
//! table is a typed value (`NftRuleset`): rendered here into `nft -f` input
//! that replaces it in one kernel transaction, and read back from
//! `nft list` text into the same type, refusing anything we would not write.
//! A journal therefore never carries nft text, only this type.

use super::op::{Family, MarkMask, check_dscp, check_group_arg, check_iface, clip};
use crate::ownership::COMMENT;
use serde::{Deserialize, Serialize};

mod parse;
pub use parse::{NftCounter, json_counters, ours_from_text, parse_table};

/// Our table: family inet (IPv4 and IPv6 in one), this name.
pub const TABLE: &str = "dscproute";
pub const FAMILY: &str = "inet";

/// The base chains we write, in the order they appear in our table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NftHook {
    /// Client: local packets, marked before the routing decision is
    /// repeated (`type route` re-routes after a mark or DSCP change).
    Output,
    /// Gateway: forwarded packets, marked before routing (mangle priority).
    Prerouting,
    /// Gateway: reset our DSCP as packets leave on the VPN.
    Scrub,
    /// Gateway: source NAT on the VPN (srcnat priority).
    Nat,
}

impl NftHook {
    pub const ALL: [NftHook; 4] = [
        NftHook::Output,
        NftHook::Prerouting,
        NftHook::Scrub,
        NftHook::Nat,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NftHook::Output => "output",
            NftHook::Prerouting => "prerouting",
            NftHook::Scrub => "scrub",
            NftHook::Nat => "nat",
        }
    }

    /// (type, hook, priority name, priority number).
    pub fn base(self) -> (&'static str, &'static str, &'static str, i32) {
        match self {
            NftHook::Output => ("route", "output", "mangle", -150),
            NftHook::Prerouting => ("filter", "prerouting", "mangle", -150),
            NftHook::Scrub => ("filter", "postrouting", "mangle", -150),
            NftHook::Nat => ("nat", "postrouting", "srcnat", 100),
        }
    }

    pub fn by_name(name: &str) -> Option<NftHook> {
        NftHook::ALL.into_iter().find(|h| h.name() == name)
    }
}

/// One rule of ours, the same logic as the iptables rules (`OurRule`)
/// expressed natively. Marks are always value/mask: other bits are kept.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum NftRule {
    /// Client: the group's connections get our connection mark
    /// (`meta skgid G ct mark set ct mark & ~M | V`).
    SkgidConnmark { gid: String, mark: MarkMask },
    /// Client: the user's connections get our connection mark
    /// (`meta skuid U ct mark set ct mark & ~M | V`).
    SkuidConnmark { uid: String, mark: MarkMask },
    /// Client: connections of the processes in a cgroup v2 get our mark
    /// (`socket cgroupv2 level N "PATH" ct mark set …`). `path` is as nft
    /// resolves it, below /sys/fs/cgroup (`unified/…` on a hybrid host);
    /// `level` counts its components inside the cgroup v2 tree. nft lists a
    /// cgroup that is gone by its old id: then `path` holds those digits, a
    /// stale rule (its unit restarted) that the plan replaces.
    CgroupConnmark {
        path: String,
        level: u8,
        mark: MarkMask,
    },
    /// Client: packets of marked connections get the DSCP.
    ConnmarkDscp {
        family: Family,
        mark: MarkMask,
        dscp: u8,
    },
    /// Packets of a marked connection get the routing mark: the gateway's
    /// restore, and the local mark on a host that is client and gateway.
    ConnmarkMark { mark: MarkMask },
    /// Gateway: forwarded packets carrying the DSCP get the routing mark.
    DscpMark {
        family: Family,
        not_in: String,
        dscp: u8,
        mark: MarkMask,
    },
    /// Gateway: remember the routing mark on the connection.
    SaveMark { mark: MarkMask },
    /// Gateway: reset the DSCP as packets leave on the VPN.
    ScrubDscp {
        family: Family,
        out: String,
        dscp: u8,
    },
    /// Gateway: source NAT for marked packets leaving on the VPN; only IPv4
    /// when `family` says so (no IPv6 path).
    Masquerade {
        family: Option<Family>,
        out: String,
        mark: MarkMask,
    },
    /// Gateway routing on the DSCP (`match = "dscp-rule"`): source NAT for
    /// everything leaving on the VPN. By then the scrub has reset the DSCP
    /// and there is no mark to match.
    MasqueradeAll { family: Option<Family>, out: String },
}

impl NftRule {
    /// The chain this rule may stand in.
    pub fn hook(&self) -> NftHook {
        match self {
            NftRule::SkgidConnmark { .. }
            | NftRule::SkuidConnmark { .. }
            | NftRule::CgroupConnmark { .. }
            | NftRule::ConnmarkDscp { .. } => NftHook::Output,
            NftRule::DscpMark { .. } | NftRule::SaveMark { .. } => NftHook::Prerouting,
            NftRule::ConnmarkMark { .. } => NftHook::Prerouting,
            NftRule::ScrubDscp { .. } => NftHook::Scrub,
            NftRule::Masquerade { .. } | NftRule::MasqueradeAll { .. } => NftHook::Nat,
        }
    }

    fn allowed_in(&self, hook: NftHook) -> bool {
        match self {
            // Restore on the gateway, local mark on a client that is also one.
            NftRule::ConnmarkMark { .. } => matches!(hook, NftHook::Output | NftHook::Prerouting),
            r => r.hook() == hook,
        }
    }

    fn check(&self) -> Result<(), String> {
        if let NftRule::DscpMark { not_in: dev, .. }
        | NftRule::ScrubDscp { out: dev, .. }
        | NftRule::Masquerade { out: dev, .. }
        | NftRule::MasqueradeAll { out: dev, .. } = self
            && dev.ends_with('*')
        {
            // nft reads a trailing `*` in an interface name as a wildcard.
            return Err(format!("{} is not an interface name for nft", clip(dev)));
        }
        match self {
            NftRule::SkgidConnmark { gid, mark } => {
                check_group_arg(gid)?;
                mark.check()
            }
            // A user name follows the rules of a group name.
            NftRule::SkuidConnmark { uid, mark } => {
                check_group_arg(uid)?;
                mark.check()
            }
            NftRule::CgroupConnmark { path, level, mark } => {
                check_cgroup_path(path, *level)?;
                mark.check()
            }
            NftRule::ConnmarkDscp { mark, dscp, .. } => {
                mark.check()?;
                check_dscp(*dscp)
            }
            NftRule::ConnmarkMark { mark } | NftRule::SaveMark { mark } => mark.check(),
            NftRule::DscpMark {
                not_in, dscp, mark, ..
            } => {
                check_iface(not_in)?;
                check_dscp(*dscp)?;
                mark.check()
            }
            NftRule::ScrubDscp { out, dscp, .. } => {
                check_iface(out)?;
                check_dscp(*dscp)
            }
            NftRule::Masquerade { out, mark, .. } => {
                check_iface(out)?;
                mark.check()
            }
            NftRule::MasqueradeAll { out, .. } => check_iface(out),
        }
    }

    /// The rule as `nft -f` input (inside its chain): matches, a counter
    /// (status reads it), the statement, our comment.
    pub fn text(&self) -> String {
        let (matches, statement) = self.parts();
        format!("{matches} counter {statement} comment \"{COMMENT}\"")
    }

    fn parts(&self) -> (String, String) {
        match self {
            // A name (a group not known where the plan was made) is quoted:
            // nft resolves it when it loads the table.
            NftRule::SkgidConnmark { gid, mark } if gid.bytes().all(|b| b.is_ascii_digit()) => {
                (format!("meta skgid {gid}"), set_mark("ct", *mark))
            }
            NftRule::SkgidConnmark { gid, mark } => {
                (format!("meta skgid \"{gid}\""), set_mark("ct", *mark))
            }
            NftRule::SkuidConnmark { uid, mark } if uid.bytes().all(|b| b.is_ascii_digit()) => {
                (format!("meta skuid {uid}"), set_mark("ct", *mark))
            }
            NftRule::SkuidConnmark { uid, mark } => {
                (format!("meta skuid \"{uid}\""), set_mark("ct", *mark))
            }
            NftRule::CgroupConnmark { path, level, mark } if is_stale(path) => (
                format!("socket cgroupv2 level {level} {path}"),
                set_mark("ct", *mark),
            ),
            NftRule::CgroupConnmark { path, level, mark } => (
                format!("socket cgroupv2 level {level} \"{path}\""),
                set_mark("ct", *mark),
            ),
            NftRule::ConnmarkDscp { family, mark, dscp } => (
                test_mark("ct", *mark),
                format!("{} dscp set {}", proto(*family), dscp_text(*dscp)),
            ),
            NftRule::ConnmarkMark { mark } => (test_mark("ct", *mark), set_mark("meta", *mark)),
            NftRule::DscpMark {
                family,
                not_in,
                dscp,
                mark,
            } => (
                format!(
                    "iifname != \"{not_in}\" {} dscp {}",
                    proto(*family),
                    dscp_text(*dscp)
                ),
                set_mark("meta", *mark),
            ),
            NftRule::SaveMark { mark } => (test_mark("meta", *mark), set_mark("ct", *mark)),
            NftRule::ScrubDscp { family, out, dscp } => (
                format!(
                    "oifname \"{out}\" {} dscp {}",
                    proto(*family),
                    dscp_text(*dscp)
                ),
                format!("{} dscp set 0x00", proto(*family)),
            ),
            NftRule::Masquerade { family, out, mark } => (
                format!(
                    "oifname \"{out}\"{} {}",
                    only(*family),
                    test_mark("meta", *mark)
                ),
                "masquerade".into(),
            ),
            NftRule::MasqueradeAll { family, out } => (
                format!("oifname \"{out}\"{}", only(*family)),
                "masquerade".into(),
            ),
        }
    }
}

fn proto(f: Family) -> &'static str {
    match f {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    }
}

fn dscp_text(d: u8) -> String {
    format!("{d:#04x}")
}

/// `ct mark & M == V`.
fn test_mark(key: &str, m: MarkMask) -> String {
    format!("{key} mark & {:#010x} == {:#010x}", m.mask, m.value)
}

/// `ct mark set ct mark & ~M | V`: only our bits change.
fn set_mark(key: &str, m: MarkMask) -> String {
    format!(
        "{key} mark set {key} mark & {:#010x} | {:#010x}",
        !m.mask, m.value
    )
}

/// One base chain of our table and its rules, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftChain {
    pub hook: NftHook,
    pub rules: Vec<NftRule>,
}

/// Our whole table. Chains appear once each, in `NftHook` order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NftRuleset {
    pub chains: Vec<NftChain>,
}

/// At most this many rules in our table (we write about a dozen).
const MAX_RULES: usize = 64;

impl NftRuleset {
    /// Append `rule` to the chain it belongs in (`hook`), creating the chain.
    /// Keep only the rules `keep` accepts (chains left empty stay).
    pub fn retain_rules(&mut self, keep: impl Fn(&NftRule) -> bool) {
        for c in &mut self.chains {
            c.rules.retain(|r| keep(r));
        }
    }

    pub fn push(&mut self, hook: NftHook, rule: NftRule) {
        match self.chains.iter_mut().find(|c| c.hook == hook) {
            Some(c) => c.rules.push(rule),
            None => {
                self.chains.push(NftChain {
                    hook,
                    rules: vec![rule],
                });
                self.chains.sort_by_key(|c| c.hook);
            }
        }
    }

    pub fn rules(&self) -> impl Iterator<Item = (NftHook, &NftRule)> {
        self.chains
            .iter()
            .flat_map(|c| c.rules.iter().map(move |r| (c.hook, r)))
    }

    /// Is this a table dscproute writes? The reason when not, as one line.
    pub fn check(&self) -> Result<(), String> {
        let hooks: Vec<NftHook> = self.chains.iter().map(|c| c.hook).collect();
        if hooks.windows(2).any(|w| w[0] >= w[1]) {
            return Err("chains of our nftables table out of order or repeated".into());
        }
        let n = self.rules().count();
        if n > MAX_RULES {
            return Err(format!(
                "{n} rules: our nftables table holds at most {MAX_RULES}"
            ));
        }
        for (hook, rule) in self.rules() {
            if !rule.allowed_in(hook) {
                return Err(format!(
                    "not a rule dscproute writes in chain {}",
                    hook.name()
                ));
            }
            rule.check()?;
        }
        Ok(())
    }

    /// The `nft -f` input that writes our table in one transaction. To
    /// replace: create it (so the delete cannot fail), delete it, write it
    /// whole. `fresh`: create it with its comment, failing if it exists,
    /// then add the chains. (nft 1.0.6 takes `create table … { chain … }`
    /// but creates the bare table only, silently: the lab caught it.)
    pub fn script(&self, fresh: bool) -> String {
        let mut o = match fresh {
            true => format!(
                "create table {FAMILY} {TABLE} {{ comment \"{COMMENT}\"; }}\ntable {FAMILY} {TABLE} {{\n{}}}\n",
                self.chains_text()
            ),
            false => format!(
                "table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n{}",
                self.table_text()
            ),
        };
        if !o.ends_with('\n') {
            o.push('\n');
        }
        o
    }

    /// `table inet dscproute { … }` alone.
    pub fn table_text(&self) -> String {
        format!(
            "table {FAMILY} {TABLE} {{\n\tcomment \"{COMMENT}\"\n{}}}\n",
            self.chains_text()
        )
    }

    /// The chains with their rules, one tab in.
    fn chains_text(&self) -> String {
        let mut o = String::new();
        for c in &self.chains {
            let (kind, hook, prio, _) = c.hook.base();
            o.push_str(&format!(
                "\tchain {} {{\n\t\ttype {kind} hook {hook} priority {prio}; policy accept;\n",
                c.hook.name()
            ));
            for r in &c.rules {
                o.push_str(&format!("\t\t{}\n", r.text()));
            }
            o.push_str("\t}\n");
        }
        o
    }

    /// One line per rule, for previews: `chain: rule`.
    pub fn lines(&self) -> Vec<String> {
        self.rules()
            .map(|(h, r)| format!("{}: {}", h.name(), r.text()))
            .collect()
    }
}

/// nft prints a gid (uid) it knows by its group (user) name; we write numbers.
pub fn numeric_gids(t: &mut NftRuleset, facts: &crate::probe::HostFacts) {
    for c in &mut t.chains {
        for r in &mut c.rules {
            match r {
                NftRule::SkgidConnmark { gid, .. } => {
                    if let Some(g) = facts.group_by_name(gid) {
                        *gid = g.gid.to_string();
                    }
                }
                NftRule::SkuidConnmark { uid, .. } => {
                    if let Some(u) = facts.user_by_name(uid) {
                        *uid = u.uid.to_string();
                    }
                }
                _ => {}
            }
        }
    }
}

/// Is the table read back (`have`) the one written (`want`)?
pub fn same_table(have: &NftRuleset, want: &NftRuleset, facts: &crate::probe::HostFacts) -> bool {
    let mut h = have.clone();
    numeric_gids(&mut h, facts);
    h == *want
}

/// The counters of our table's rules, when it is there and ours (status,
/// doctor); family `inet`, chain the base chain's name, spec the rule as we
/// write it. Which rule is which comes from the table as listed (the
/// checks that make it ours); the numbers from `nft -j`, nft's stable
/// interface, rule for rule in each chain. An nft built without JSON (as
/// OpenWrt's may be), or a table changed between the two reads, leaves
/// the numbers the listing printed.
pub fn read_counters(runner: &dyn crate::runner::Runner) -> Vec<crate::probe::CountedRule> {
    let Ok(out) = runner.run(&list_argv()) else {
        return Vec::new();
    };
    if !out.success() {
        return Vec::new();
    }
    let Ok(Some((_, mut counters))) = parse_table(&out.stdout) else {
        return Vec::new();
    };
    let json = runner
        .run(&json_list_argv())
        .ok()
        .filter(crate::runner::Output::success)
        .and_then(|o| parse::json_counters(&o.stdout));
    if let Some(json) = json {
        parse::take_json_counts(&mut counters, &json);
    }
    counters
        .into_iter()
        .map(|c| crate::probe::CountedRule {
            family: FAMILY,
            table: TABLE.into(),
            chain: c.hook.name().into(),
            spec: c.rule.text(),
            packets: c.packets,
            bytes: c.bytes,
        })
        .collect()
}

/// `nft -f -` replacing our table with `ruleset`.
pub fn replace_argv() -> Vec<String> {
    ["nft", "-f", "-"].map(String::from).to_vec()
}

/// `nft delete table inet dscproute`.
pub fn delete_argv() -> Vec<String> {
    ["nft", "delete", "table", FAMILY, TABLE]
        .map(String::from)
        .to_vec()
}

/// `nft -j list table inet dscproute`.
pub fn json_list_argv() -> Vec<String> {
    ["nft", "-j", "list", "table", FAMILY, TABLE]
        .map(String::from)
        .to_vec()
}

/// `nft list table inet dscproute`.
pub fn list_argv() -> Vec<String> {
    ["nft", "list", "table", FAMILY, TABLE]
        .map(String::from)
        .to_vec()
}

/// Why a table found on the host is not ours, for messages.
pub fn not_ours(why: &str) -> String {
    format!(
        "table {FAMILY} {TABLE} on this host is not one dscproute writes ({}); remove or rename \
         it by hand (`nft list table {FAMILY} {TABLE}`)",
        clip(why)
    )
}

#[cfg(test)]
mod tests;

/// ` meta nfproto …` for a rule of one family only.
fn only(family: Option<Family>) -> &'static str {
    match family {
        Some(Family::V4) => " meta nfproto ipv4",
        Some(Family::V6) => " meta nfproto ipv6",
        None => "",
    }
}

/// A cgroup rule nft lists by a number: its cgroup is gone.
pub fn is_stale(path: &str) -> bool {
    !path.is_empty() && path.bytes().all(|b| b.is_ascii_digit())
}

/// A cgroup path as dscproute writes it for nft (or the id of a stale
/// one): plain components, at most 1024 bytes, and a level that fits.
fn check_cgroup_path(path: &str, level: u8) -> Result<(), String> {
    if is_stale(path) {
        return if path.len() <= 20 && (1..=64).contains(&level) {
            Ok(())
        } else {
            Err(format!("cgroup id {} is out of range", clip(path)))
        };
    }
    let plain = |c: &str| {
        !c.is_empty()
            && c != "."
            && c != ".."
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
    };
    let parts: Vec<&str> = path.split('/').collect();
    if path.len() > 1024 || !parts.iter().all(|c| plain(c)) {
        return Err(format!(
            "{} is not a cgroup path dscproute writes",
            clip(path)
        ));
    }
    if level == 0 || usize::from(level) > parts.len() {
        return Err(format!("level {level} does not fit cgroup {}", clip(path)));
    }
    Ok(())
}

/// What nft needs for a cgroup v2 path: the path below /sys/fs/cgroup
/// (where nft looks) and its level inside the cgroup v2 tree; `None` when
/// the cgroup2 mount is not below /sys/fs/cgroup.
pub fn cgroup_match(mount: &str, path: &str) -> Option<(String, u8)> {
    let below = mount.trim_end_matches('/').strip_prefix("/sys/fs/cgroup")?;
    let below = below.trim_start_matches('/');
    if !below.is_empty()
        && !below
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
    {
        return None;
    }
    let level = u8::try_from(path.split('/').count()).ok()?;
    let full = if below.is_empty() {
        path.to_string()
    } else {
        format!("{below}/{path}")
    };
    Some((full, level))
}
