//! The admin's choices, read from TOML and validated into typed values.
//! Every invalid value is reported with its key, line, what was given and
//! what is accepted; nothing downstream ever sees an unvalidated profile.

use crate::text::{clip, clip_quoted};
use crate::tos::{Context, Dscp, parse_dscp};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use thiserror::Error;
use toml::Spanned;

/// Highest priority our lookup rule may take: its companions sit at P-1 and
/// P+1, and all three must come before the main table's rule at 32766.
pub const MAX_PRIORITY: u32 = 32764;
pub const MIN_PRIORITY: u32 = 2;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{file}{}: {message}", if *.line > 0 { format!(":{}", .line) } else { String::new() })]
pub struct ProfileError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// A validated profile: what this host should do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub marker: Option<Marker>,
    pub gateway: Option<Gateway>,
    /// `[[class]]` tables: several classes, each with its uplinks in order.
    /// Empty with `[gateway]`, which `classes()` reads as one class.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<Class>,
    /// Which netfilter backend writes our rules (`backend = …`). Absent:
    /// iptables, as before the key existed, so a live setup never switches
    /// by an upgrade alone.
    pub backend: Backend,
}

/// `backend = "auto" | "nft" | "iptables"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// nft when the nft binary and nf_tables work, else iptables; a host
    /// whose setup is already in iptables stays there.
    Auto,
    /// One table of ours, `table inet dscproute`, in one nft transaction.
    Nft,
    /// Chains of ours (DSCPROUTE-*) in mangle and nat.
    #[default]
    Iptables,
}

impl Backend {
    pub fn parse(s: &str) -> Option<Backend> {
        match s {
            "auto" => Some(Backend::Auto),
            "nft" => Some(Backend::Nft),
            "iptables" => Some(Backend::Iptables),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Nft => "nft",
            Backend::Iptables => "iptables",
        }
    }
}

/// Host A: packets of the processes `who` names get `dscp`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Marker {
    /// As JSON it reads as the profile key: `"group": …`, `"user": …`, …
    #[serde(flatten)]
    pub who: Who,
    pub dscp: Dscp,
    /// Create the group (a plan step) when it does not exist.
    pub create_group: bool,
}

impl Marker {
    /// The group, for a group marker.
    pub fn group(&self) -> Option<&GroupRef> {
        match &self.who {
            Who::Group(g) => Some(g),
            _ => None,
        }
    }
}

/// Whose packets are marked: exactly one of the `[marker]` keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Who {
    /// Processes running with this group (`--gid-owner`).
    Group(GroupRef),
    /// Processes running as this user (`--uid-owner`).
    User(UserRef),
    /// A systemd unit or slice, matched by the cgroup systemd gives it.
    Unit(String),
    /// A cgroup v2 path relative to the cgroup v2 root, without a leading '/'.
    Cgroup(String),
}

impl Who {
    /// The profile key: group, user, unit or cgroup.
    pub fn kind(&self) -> &'static str {
        match self {
            Who::Group(_) => "group",
            Who::User(_) => "user",
            Who::Unit(_) => "unit",
            Who::Cgroup(_) => "cgroup",
        }
    }
}

/// `group torrent`, `user 1001`, `unit vpn.slice`, `cgroup dscproute/dl`.
impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Group(g) => write!(f, "group {g}"),
            Who::User(u) => write!(f, "user {u}"),
            Who::Unit(u) => write!(f, "unit {u}"),
            Who::Cgroup(c) => write!(f, "cgroup {c}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum UserRef {
    Name(String),
    Uid(u32),
}

impl fmt::Display for UserRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserRef::Name(n) => f.write_str(n),
            UserRef::Uid(u) => write!(f, "{u}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum GroupRef {
    Name(String),
    Gid(u32),
}

impl fmt::Display for GroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupRef::Name(n) => f.write_str(n),
            GroupRef::Gid(g) => write!(f, "{g}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum TableRef {
    Name(String),
    Id(u32),
}

impl fmt::Display for TableRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableRef::Name(n) => f.write_str(n),
            TableRef::Id(i) => write!(f, "{i}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RpFilterPolicy {
    /// Set rp_filter 2 on the VPN interface when the effective value is strict.
    Loose,
    /// Leave rp_filter alone.
    Keep,
}

/// How a gateway recognises the group's packets for routing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum MatchMode {
    /// The DSCP becomes a firewall mark (mangle PREROUTING) and `ip rule
    /// fwmark` routes on it: works on any kernel.
    #[default]
    #[serde(rename = "mark")]
    Mark,
    /// `ip rule dscp N` routes on the DSCP itself (Linux ≥ 6.12, iproute2 ≥
    /// 6.13): no firewall mark on the routing path.
    #[serde(rename = "dscp-rule")]
    DscpRule,
}

impl MatchMode {
    pub fn name(self) -> &'static str {
        match self {
            MatchMode::Mark => "mark",
            MatchMode::DscpRule => "dscp-rule",
        }
    }
}

/// Host B: packets carrying `dscp` are routed through `interface`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Gateway {
    pub dscp: Dscp,
    pub interface: String,
    pub via: Option<Ipv4Addr>,
    pub via6: Option<Ipv6Addr>,
    pub mark: Option<u32>,
    pub mask: Option<u32>,
    pub table: Option<TableRef>,
    pub table_id: Option<u32>,
    pub priority: Option<u32>,
    pub kill_switch: bool,
    pub masquerade: bool,
    pub scrub_dscp: bool,
    pub rp_filter: RpFilterPolicy,
    /// `match`: firewall mark (default) or `ip rule dscp`.
    #[serde(rename = "match")]
    pub match_mode: MatchMode,
}

impl Profile {
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let file = path.display().to_string();
        let text = crate::input_file::read_text(path).map_err(|e| ProfileError {
            file: file.clone(),
            line: 0,
            message: format!("cannot read the profile: {e}"),
        })?;
        Profile::parse(&text, &file)
    }

    /// Parse and validate profile text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Profile, ProfileError> {
        let at = |span: std::ops::Range<usize>, message: String| ProfileError {
            file: file.to_string(),
            line: line_of(text, span.start),
            message,
        };
        let raw: RawProfile = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let message = match key_at(text, span.start) {
                Some(key) => format!("{key}: {}", clip_quoted(e.message())),
                None => clip_quoted(e.message()),
            };
            at(span, friendlier(&message))
        })?;
        let v = Validator { at: &at };
        let backend = match &raw.backend {
            None => Backend::default(),
            Some(b) => match Backend::parse(b.get_ref()) {
                Some(b) => b,
                None => {
                    return v.err(
                        b,
                        "backend",
                        "accepted: \"auto\", \"nft\" or \"iptables\"".into(),
                    );
                }
            },
        };
        let marker = raw.marker.map(|m| v.marker(m)).transpose()?;
        let gateway = raw.gateway.map(|g| v.gateway(g, "gateway")).transpose()?;
        let classes = classes::validate(&v, raw.class.unwrap_or_default(), gateway.is_some())?;
        if let Some(m) = &marker {
            classes::check_marker_dscp(m, &classes, file)?;
        }
        if let (Some(m), Some(g)) = (&marker, &gateway)
            && m.dscp != g.dscp
        {
            return Err(ProfileError {
                file: file.into(),
                line: 0,
                message: format!(
                    "marker.dscp ({}) and gateway.dscp ({}) differ: on a host that is both \
                     client and gateway they must be the same value",
                    m.dscp, g.dscp
                ),
            });
        }
        if marker.is_none() && gateway.is_none() && classes.is_empty() {
            return Err(ProfileError {
                file: file.into(),
                line: 1,
                message: "the profile has neither [marker] nor [gateway]: give [marker] for a \
                          client host, [gateway] for the router, or both"
                    .into(),
            });
        }
        Ok(Profile {
            marker,
            gateway,
            classes,
            backend,
        })
    }

    /// The profile as TOML (what the TUI saves).
    pub fn to_toml(&self) -> String {
        let mut o = String::new();
        if self.backend != Backend::default() {
            o.push_str(&format!("backend = \"{}\"\n\n", self.backend.name()));
        }
        if let Some(m) = &self.marker {
            o.push_str("[marker]\n");
            match &m.who {
                Who::Group(g) => o.push_str(&format!("group = {}\n", toml_value_group(g))),
                Who::User(UserRef::Name(n)) => o.push_str(&format!("user = {}\n", quote(n))),
                Who::User(UserRef::Uid(u)) => o.push_str(&format!("user = {u}\n")),
                Who::Unit(u) => o.push_str(&format!("unit = {}\n", quote(u))),
                Who::Cgroup(c) => o.push_str(&format!("cgroup = {}\n", quote(c))),
            }
            if m.create_group {
                o.push_str("create_group = true\n");
            }
            o.push_str(&format!("dscp = {}\n", m.dscp));
        }
        if let Some(g) = &self.gateway {
            if !o.is_empty() {
                o.push('\n');
            }
            o.push_str("[gateway]\n");
            o.push_str(&format!("dscp = {}\n", g.dscp));
            o.push_str(&format!("interface = {}\n", quote(&g.interface)));
            if let Some(v) = g.via {
                o.push_str(&format!("via = \"{v}\"\n"));
            }
            if let Some(v) = g.via6 {
                o.push_str(&format!("via6 = \"{v}\"\n"));
            }
            classes::routing_toml(&Class::from(g), &mut o);
        }
        classes::to_toml(&self.classes, &mut o);
        o
    }
}

fn toml_value_group(g: &GroupRef) -> String {
    match g {
        GroupRef::Name(n) => quote(n),
        GroupRef::Gid(id) => id.to_string(),
    }
}

/// A TOML basic string; validated names never need escapes, but be safe.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// `section.key = value` of the assignment on the line holding `offset`, so
/// type errors from the TOML reader name the key too.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = text[start..end].trim();
    let (key, value) = line.split_once('=')?;
    let section = text[..start]
        .lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']').map(str::trim))?;
    Some(format!(
        "{}.{} = {}",
        clip(section),
        clip(key.trim()),
        clip(value.trim())
    ))
}

/// The TOML reader speaks Rust types; speak the admin's words instead.
fn friendlier(message: &str) -> String {
    message
        .replace("expected a boolean", "expected true or false")
        .replace("expected i64", "expected an integer")
        .replace(
            "data did not match any variant of untagged enum StrOrInt",
            "expected a number or a string",
        )
}

// ---- raw, as written ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    backend: Option<Spanned<String>>,
    marker: Option<RawMarker>,
    gateway: Option<RawGateway>,
    class: Option<Vec<classes::RawClass>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMarker {
    group: Option<Spanned<StrOrInt>>,
    user: Option<Spanned<StrOrInt>>,
    unit: Option<Spanned<String>>,
    cgroup: Option<Spanned<String>>,
    dscp: Spanned<StrOrInt>,
    create_group: Option<Spanned<bool>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    dscp: Spanned<StrOrInt>,
    interface: Spanned<String>,
    via: Option<Spanned<String>>,
    via6: Option<Spanned<String>>,
    mark: Option<Spanned<StrOrInt>>,
    mask: Option<Spanned<StrOrInt>>,
    table: Option<Spanned<StrOrInt>>,
    table_id: Option<Spanned<i64>>,
    priority: Option<Spanned<i64>>,
    kill_switch: Option<bool>,
    masquerade: Option<bool>,
    scrub_dscp: Option<bool>,
    rp_filter: Option<Spanned<String>>,
    #[serde(rename = "match")]
    match_mode: Option<Spanned<String>>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum StrOrInt {
    Int(i64),
    Str(String),
}

/// Shown as written in TOML: integers bare, strings quoted.
impl fmt::Debug for StrOrInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StrOrInt::Int(i) => write!(f, "{i}"),
            StrOrInt::Str(s) => write!(f, "{s:?}"),
        }
    }
}

// ---- validation ----

type At<'a> = dyn Fn(std::ops::Range<usize>, String) -> ProfileError + 'a;

struct Validator<'a> {
    at: &'a At<'a>,
}

impl Validator<'_> {
    /// `key = given: what is wrong and what is accepted`, at the value's line.
    fn err<T>(
        &self,
        v: &Spanned<impl fmt::Debug>,
        key: &str,
        what: String,
    ) -> Result<T, ProfileError> {
        Err((self.at)(
            v.span(),
            format!("{key} = {}: {what}", clip(&format!("{:?}", v.get_ref()))),
        ))
    }

    fn marker(&self, m: RawMarker) -> Result<Marker, ProfileError> {
        let who = match (&m.group, &m.user, &m.unit, &m.cgroup) {
            (Some(g), None, None, None) => Who::Group(self.group(g)?),
            (None, Some(u), None, None) => Who::User(self.user(u)?),
            (None, None, Some(u), None) => Who::Unit(self.unit(u)?),
            (None, None, None, Some(c)) => Who::Cgroup(self.cgroup(c)?),
            (None, None, None, None) => {
                return Err((self.at)(
                    m.dscp.span(),
                    "[marker] names nobody to mark: give exactly one of group, user, unit (a \
                     systemd unit or slice) or cgroup (a cgroup v2 path)"
                        .into(),
                ));
            }
            _ => {
                let span = [
                    m.group.as_ref().map(Spanned::span),
                    m.user.as_ref().map(Spanned::span),
                    m.unit.as_ref().map(Spanned::span),
                    m.cgroup.as_ref().map(Spanned::span),
                ]
                .into_iter()
                .flatten()
                .nth(1)
                .unwrap_or(0..0);
                return Err((self.at)(
                    span,
                    "[marker] names more than one of group, user, unit and cgroup: keep \
                     exactly one"
                        .into(),
                ));
            }
        };
        let create_group = m.create_group.as_ref().is_some_and(|c| *c.get_ref());
        if let (true, false, Some(c)) =
            (create_group, matches!(who, Who::Group(_)), &m.create_group)
        {
            return self.err(
                c,
                "marker.create_group",
                format!(
                    "only goes with marker.group; marker.{} is not created by dscproute",
                    who.kind()
                ),
            );
        }
        if let (true, Who::Group(GroupRef::Gid(_)), Some(c)) = (create_group, &who, &m.create_group)
        {
            return self.err(
                c,
                "marker.create_group",
                "needs a group name to create: set \
                                                       marker.group to a name, not a gid"
                    .into(),
            );
        }
        Ok(Marker {
            who,
            dscp: self.dscp(&m.dscp, "marker.dscp")?,
            create_group,
        })
    }

    fn gateway(&self, g: RawGateway, p: &str) -> Result<Gateway, ProfileError> {
        let dscp = self.dscp(&g.dscp, &format!("{p}.dscp"))?;
        let interface = self.interface(&g.interface, &format!("{p}.interface"))?;
        let via = g
            .via
            .as_ref()
            .map(|v| {
                v.get_ref().trim().parse::<Ipv4Addr>().or_else(|_| {
                    self.err(
                        v,
                        &format!("{p}.via"),
                        "not an IPv4 address: give the VPN's IPv4 next hop \
                                                like \"10.8.0.1\", or leave it out for a \
                                                point-to-point tunnel"
                            .into(),
                    )
                })
            })
            .transpose()?;
        let via6 = g
            .via6
            .as_ref()
            .map(|v| {
                v.get_ref().trim().parse::<Ipv6Addr>().or_else(|_| {
                    self.err(
                        v,
                        &format!("{p}.via6"),
                        "not an IPv6 address: give the VPN's IPv6 next \
                                                 hop like \"fd00::1\", or leave it out (marked \
                                                 IPv6 is then blocked)"
                            .into(),
                    )
                })
            })
            .transpose()?;
        let mask = g
            .mask
            .as_ref()
            .map(|m| {
                self.u32_value(
                    m,
                    &format!("{p}.mask"),
                    "a 32-bit mask like \"0xff\" (not 0)",
                )
            })
            .transpose()?;
        let mark = g
            .mark
            .as_ref()
            .map(|m| {
                self.u32_value(
                    m,
                    &format!("{p}.mark"),
                    "a firewall mark like \"0x3\" (not 0)",
                )
            })
            .transpose()?;
        // Without a mask the default one applies: check against it here, so
        // the same mistake gets the same answer (exit 2) either way.
        let effective_mask = mask.or(mark.map(|_| crate::ownership::DEFAULT_MASK));
        if let (Some(mk), Some(ms), Some(raw)) = (mark, effective_mask, g.mark.as_ref())
            && mk & !ms != 0
        {
            return self.err(
                raw,
                &format!("{p}.mark"),
                format!(
                    "has bits outside {} {ms:#x}: the mark must lie within the mask; widen the \
                     mask (e.g. mask = \"{:#x}\") or pick a mark inside it",
                    if mask.is_some() {
                        format!("{p}.mask")
                    } else {
                        "the default mask".into()
                    },
                    mk | ms
                ),
            );
        }
        let table = g
            .table
            .as_ref()
            .map(|t| self.table(t, &format!("{p}.table")))
            .transpose()?;
        let table_id = match &g.table_id {
            None => None,
            Some(t) => {
                if !matches!(table, Some(TableRef::Name(_))) {
                    return self.err(
                        t,
                        &format!("{p}.table_id"),
                        "only goes with a table name: set \
                                                            table = \"vpn\" too, or give the \
                                                            number as table"
                            .into(),
                    );
                }
                Some(self.table_number(t, &format!("{p}.table_id"))?)
            }
        };
        let priority =
            g.priority
                .as_ref()
                .map(|pr| {
                    let v = *pr.get_ref();
                    if (i64::from(MIN_PRIORITY)..=i64::from(MAX_PRIORITY)).contains(&v) {
                        Ok(v as u32)
                    } else {
                        self.err(pr, &format!("{p}.priority"), format!(
                        "out of range: use {MIN_PRIORITY}–{MAX_PRIORITY}, so that the rules at \
                         priority-1 and priority+1 still come before the main table (32766)"
                    ))
                    }
                })
                .transpose()?;
        let rp_filter = match &g.rp_filter {
            None => RpFilterPolicy::Loose,
            Some(r) => match r.get_ref().as_str() {
                "loose" => RpFilterPolicy::Loose,
                "keep" => RpFilterPolicy::Keep,
                _ => {
                    return self.err(
                        r,
                        &format!("{p}.rp_filter"),
                        "unknown policy: use \"loose\" (set \
                                                             2 on the VPN interface when \
                                                             stricter) or \"keep\""
                            .into(),
                    );
                }
            },
        };
        let match_mode = match &g.match_mode {
            None => MatchMode::Mark,
            Some(m) => match m.get_ref().as_str() {
                "mark" => MatchMode::Mark,
                "dscp-rule" => MatchMode::DscpRule,
                _ => {
                    return self.err(
                        m,
                        &format!("{p}.match"),
                        "unknown mode: use \"mark\" (a firewall mark routes the DSCP; any \
                         kernel) or \"dscp-rule\" (`ip rule dscp`, Linux ≥ 6.12 and iproute2 ≥ \
                         6.13)"
                            .into(),
                    );
                }
            },
        };
        Ok(Gateway {
            match_mode,
            dscp,
            interface,
            via,
            via6,
            mark,
            mask,
            table,
            table_id,
            priority,
            kill_switch: g.kill_switch.unwrap_or(true),
            masquerade: g.masquerade.unwrap_or(true),
            scrub_dscp: g.scrub_dscp.unwrap_or(true),
            rp_filter,
        })
    }

    fn dscp(&self, v: &Spanned<StrOrInt>, key: &str) -> Result<Dscp, ProfileError> {
        let text = match v.get_ref() {
            StrOrInt::Int(i) => i.to_string(),
            StrOrInt::Str(s) => s.clone(),
        };
        match parse_dscp(&text) {
            Ok(d) if d.value() == 0 => self.err(
                v,
                key,
                "DSCP 0 is what unmarked traffic carries, so every packet would match: use a \
                 private value from pool 2 (3, 7, 11, … 63)"
                    .into(),
            ),
            Ok(d) => Ok(d),
            Err(e) => self.err(v, key, e.message(Context::DscpOnly)),
        }
    }

    fn group(&self, v: &Spanned<StrOrInt>) -> Result<GroupRef, ProfileError> {
        const ACCEPTED: &str = "use a group name (letters, digits, '_', '-', '.', starting with a \
                                letter or '_') or a numeric gid 0–4294967294";
        match v.get_ref() {
            StrOrInt::Int(i) => match u32::try_from(*i) {
                Ok(g) if g != u32::MAX => Ok(GroupRef::Gid(g)),
                _ => self.err(v, "marker.group", format!("not a valid gid: {ACCEPTED}")),
            },
            StrOrInt::Str(s) => {
                if let Ok(g) = s.parse::<u32>()
                    && g != u32::MAX
                {
                    return Ok(GroupRef::Gid(g));
                }
                if valid_group_name(s) {
                    Ok(GroupRef::Name(s.clone()))
                } else {
                    self.err(
                        v,
                        "marker.group",
                        format!("not a valid group name: {ACCEPTED}"),
                    )
                }
            }
        }
    }

    fn user(&self, v: &Spanned<StrOrInt>) -> Result<UserRef, ProfileError> {
        const ACCEPTED: &str = "use a user name (letters, digits, '_', '-', '.', starting with a \
                                letter or '_') or a numeric uid 0–4294967294";
        match v.get_ref() {
            StrOrInt::Int(i) => match u32::try_from(*i) {
                Ok(u) if u != u32::MAX => Ok(UserRef::Uid(u)),
                _ => self.err(v, "marker.user", format!("not a valid uid: {ACCEPTED}")),
            },
            StrOrInt::Str(s) => {
                if let Ok(u) = s.parse::<u32>()
                    && u != u32::MAX
                {
                    return Ok(UserRef::Uid(u));
                }
                if valid_group_name(s) {
                    Ok(UserRef::Name(s.clone()))
                } else {
                    self.err(
                        v,
                        "marker.user",
                        format!("not a valid user name: {ACCEPTED}"),
                    )
                }
            }
        }
    }

    fn unit(&self, v: &Spanned<String>) -> Result<String, ProfileError> {
        match check_unit_name(v.get_ref()) {
            Ok(()) => Ok(v.get_ref().clone()),
            Err(why) => self.err(v, "marker.unit", why),
        }
    }

    fn cgroup(&self, v: &Spanned<String>) -> Result<String, ProfileError> {
        match normalize_cgroup_path(v.get_ref()) {
            Ok(p) => Ok(p),
            Err(why) => self.err(v, "marker.cgroup", why),
        }
    }

    fn interface(&self, v: &Spanned<String>, key: &str) -> Result<String, ProfileError> {
        let s = v.get_ref();
        if valid_ifname(s) {
            Ok(s.clone())
        } else {
            self.err(
                v,
                key,
                "not a valid interface name: use 1–15 characters \
                                              without '/', ':', '+', spaces or quotes, not \
                                              starting with '-', like \"wg0\""
                    .into(),
            )
        }
    }

    fn u32_value(
        &self,
        v: &Spanned<StrOrInt>,
        key: &str,
        accepted: &str,
    ) -> Result<u32, ProfileError> {
        let parsed = match v.get_ref() {
            StrOrInt::Int(i) => u32::try_from(*i).ok(),
            StrOrInt::Str(s) => parse_u32(s),
        };
        match parsed {
            Some(n) if n != 0 => Ok(n),
            _ => self.err(
                v,
                key,
                format!("use {accepted}; decimal or 0x-hex, 32 bits"),
            ),
        }
    }

    fn table(&self, v: &Spanned<StrOrInt>, key: &str) -> Result<TableRef, ProfileError> {
        match v.get_ref() {
            StrOrInt::Int(_) => Ok(TableRef::Id(self.table_number(v, key)?)),
            StrOrInt::Str(s) => {
                if let Some(n) = parse_u32(s) {
                    return self.table_number_value(v, n, key).map(TableRef::Id);
                }
                if matches!(s.as_str(), "local" | "main" | "default" | "unspec") {
                    return self.err(
                        v,
                        key,
                        "is a reserved table: use a name of your \
                                                         own like \"vpn\" or a number 1–252 or \
                                                         256–4294967295"
                            .into(),
                    );
                }
                if valid_table_name(s) {
                    Ok(TableRef::Name(s.clone()))
                } else {
                    self.err(
                        v,
                        key,
                        "not a valid table name: use letters, digits, \
                                                  '_', '-' or '.', starting with a letter, like \
                                                  \"vpn\", or a number"
                            .into(),
                    )
                }
            }
        }
    }

    fn table_number<T: fmt::Debug + TableNumber>(
        &self,
        v: &Spanned<T>,
        key: &str,
    ) -> Result<u32, ProfileError> {
        match v.get_ref().as_table_number() {
            Some(n) => self.table_number_value(v, n, key),
            None => self.err(v, key, "use a table number 1–252 or 256–4294967295".into()),
        }
    }

    fn table_number_value<T: fmt::Debug>(
        &self,
        v: &Spanned<T>,
        n: u32,
        key: &str,
    ) -> Result<u32, ProfileError> {
        if n == 0 || (253..=255).contains(&n) {
            self.err(
                v,
                key,
                "is reserved (0 unspec, 253 default, 254 main, 255 local): use 1–252 \
                              or 256–4294967295"
                    .into(),
            )
        } else {
            Ok(n)
        }
    }
}

trait TableNumber {
    fn as_table_number(&self) -> Option<u32>;
}

impl TableNumber for i64 {
    fn as_table_number(&self) -> Option<u32> {
        u32::try_from(*self).ok()
    }
}

impl TableNumber for StrOrInt {
    fn as_table_number(&self) -> Option<u32> {
        match self {
            StrOrInt::Int(i) => u32::try_from(*i).ok(),
            StrOrInt::Str(s) => parse_u32(s),
        }
    }
}

/// Decimal or 0x-hex, as iproute2 and iptables write marks.
pub fn parse_u32(s: &str) -> Option<u32> {
    let s = s.trim();
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) if !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()) => {
            u32::from_str_radix(h, 16).ok()
        }
        Some(_) => None,
        None if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => s.parse().ok(),
        None => None,
    }
}

pub fn valid_group_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && s.len() <= 32
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Unit types that own processes, so that their cgroup can be matched.
pub const UNIT_SUFFIXES: &[&str] = &[".service", ".slice", ".scope"];

/// A systemd unit name dscproute can mark: systemd's characters
/// (letters, digits, `:-_.@`; `\` escapes are refused because iptables-save
/// would print them escaped), at most 255 bytes, one of `UNIT_SUFFIXES`.
pub fn check_unit_name(s: &str) -> Result<(), String> {
    let accepted = "use a systemd unit name like \"qbittorrent-nox.service\" or \"vpn.slice\" \
                    (letters, digits, ':', '-', '_', '.', '@'; ending in .service, .slice or \
                    .scope)";
    let Some(stem) = UNIT_SUFFIXES.iter().find_map(|x| s.strip_suffix(x)) else {
        return Err(format!("not a unit that runs processes: {accepted}"));
    };
    let ok = !stem.is_empty()
        && s.len() <= 255
        && !stem.starts_with(['-', '.'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err(format!("not a valid unit name: {accepted}"))
    }
}

/// Longest cgroup path accepted (xt_cgroup keeps at most 4095 bytes).
pub const MAX_CGROUP_PATH: usize = 1024;

/// A cgroup v2 path below the cgroup v2 root, as dscproute stores it: no
/// leading or trailing '/', no empty, `.` or `..` components, the characters
/// systemd uses in names (iptables-save then prints it back unchanged).
pub fn normalize_cgroup_path(s: &str) -> Result<String, String> {
    let accepted = "use a path below the cgroup v2 root like \"dscproute/downloads\" or \
                    \"system.slice/app.service\" (letters, digits, ':', '-', '_', '.', '@', '/'; \
                    no '..' or empty components)";
    let p = s.strip_prefix('/').unwrap_or(s);
    let p = p.strip_suffix('/').unwrap_or(p);
    if p.is_empty() {
        return Err(format!(
            "is the cgroup root, which holds every process: {accepted}"
        ));
    }
    if p.len() > MAX_CGROUP_PATH {
        return Err(format!("longer than {MAX_CGROUP_PATH} bytes: {accepted}"));
    }
    if !p
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.' | '@' | '/'))
    {
        return Err(format!(
            "has characters dscproute does not accept: {accepted}"
        ));
    }
    if p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(format!("has an empty, '.' or '..' component: {accepted}"));
    }
    Ok(p.to_string())
}

/// Linux accepts 1..=15 bytes, no '/', no whitespace, not "." or "..".
/// We also refuse ':' (alias syntax) and quotes, which only cause trouble.
pub fn valid_ifname(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s != "."
        && s != ".."
        && !s.starts_with('-')
        // `+` is iptables' interface wildcard: `wg+` would match every wg*.
        && s.chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '/' | ':' | '"' | '\'' | '\\' | '+'))
}

pub fn valid_table_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && s.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

mod classes;
pub use classes::{Class, GATEWAY_CLASS, HealthCheck, Uplink};

#[cfg(test)]
mod tests;
