//! `[[class]]`: several classes on one gateway, each with its DSCP, its
//! routing values and an ordered list of uplinks. `[gateway]` is read as one
//! class named "gateway" (`Profile::classes`), so the planner has one path.
//! Checks between classes (DSCP, marks, tables, priorities, names) live here.

use super::{
    Gateway, Marker, MatchMode, Profile, ProfileError, RawGateway, RpFilterPolicy, StrOrInt,
    TableRef, Validator, quote,
};
use crate::ownership::DEFAULT_MASK;
use crate::text::clip;
use crate::tos::Dscp;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use toml::Spanned;

/// The name `[gateway]` takes as a class.
pub const GATEWAY_CLASS: &str = "gateway";

/// One class: packets carrying `dscp` are routed through the first usable
/// uplink of `uplinks` (chosen when the plan is made).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Class {
    pub name: String,
    pub dscp: Dscp,
    pub uplinks: Vec<Uplink>,
    pub mark: Option<u32>,
    pub mask: Option<u32>,
    pub table: Option<TableRef>,
    pub table_id: Option<u32>,
    pub priority: Option<u32>,
    pub kill_switch: bool,
    pub masquerade: bool,
    pub scrub_dscp: bool,
    pub rp_filter: RpFilterPolicy,
    #[serde(rename = "match")]
    pub match_mode: MatchMode,
}

/// One way out for a class: an interface and its next hops.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Uplink {
    pub interface: String,
    pub via: Option<Ipv4Addr>,
    pub via6: Option<Ipv6Addr>,
    /// An active health check; parsed and validated now, run by the agent later.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<HealthCheck>,
}

/// `check = { ping = "ADDR", every = "2s", fails = 3 }`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HealthCheck {
    pub ping: IpAddr,
    pub every_ms: u64,
    pub fails: u32,
}

impl Class {
    /// The class routed through `u`, in the shape the gateway planner takes.
    pub fn through(&self, u: &Uplink) -> Gateway {
        Gateway {
            dscp: self.dscp,
            interface: u.interface.clone(),
            via: u.via,
            via6: u.via6,
            mark: self.mark,
            mask: self.mask,
            table: self.table.clone(),
            table_id: self.table_id,
            priority: self.priority,
            kill_switch: self.kill_switch,
            masquerade: self.masquerade,
            scrub_dscp: self.scrub_dscp,
            rp_filter: self.rp_filter,
            match_mode: self.match_mode,
        }
    }

    fn effective_mask(&self) -> u32 {
        self.mask.unwrap_or(DEFAULT_MASK)
    }
}

impl From<&Gateway> for Class {
    fn from(g: &Gateway) -> Class {
        Class {
            name: GATEWAY_CLASS.into(),
            dscp: g.dscp,
            uplinks: vec![Uplink {
                interface: g.interface.clone(),
                via: g.via,
                via6: g.via6,
                check: None,
            }],
            mark: g.mark,
            mask: g.mask,
            table: g.table.clone(),
            table_id: g.table_id,
            priority: g.priority,
            kill_switch: g.kill_switch,
            masquerade: g.masquerade,
            scrub_dscp: g.scrub_dscp,
            rp_filter: g.rp_filter,
            match_mode: g.match_mode,
        }
    }
}

impl Profile {
    /// The gateway's classes: the `[[class]]` tables, or `[gateway]` as one
    /// class; empty on a client-only profile.
    pub fn classes(&self) -> Vec<Class> {
        match &self.gateway {
            Some(g) => vec![Class::from(g)],
            None => self.classes.clone(),
        }
    }

    /// Is this host a gateway (`[gateway]` or `[[class]]`)?
    pub fn is_gateway(&self) -> bool {
        self.gateway.is_some() || !self.classes.is_empty()
    }
}

// ---- raw, as written ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClass {
    name: Spanned<String>,
    dscp: Spanned<StrOrInt>,
    uplinks: Spanned<Vec<RawUplink>>,
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

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
struct RawUplink {
    interface: Spanned<String>,
    via: Option<Spanned<String>>,
    via6: Option<Spanned<String>>,
    check: Option<Spanned<RawCheck>>,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    ping: Spanned<String>,
    every: Option<Spanned<String>>,
    fails: Option<Spanned<i64>>,
}

/// Where each class's values were written, for errors between classes.
struct Spans {
    dscp: Spanned<StrOrInt>,
    mark: Option<Spanned<StrOrInt>>,
    mask: Option<Spanned<StrOrInt>>,
    table: Option<Spanned<StrOrInt>>,
    table_id: Option<Spanned<i64>>,
    priority: Option<Spanned<i64>>,
}

pub(super) fn validate(
    v: &Validator,
    raw: Vec<RawClass>,
    has_gateway: bool,
) -> Result<Vec<Class>, ProfileError> {
    if let (true, Some(first)) = (has_gateway, raw.first()) {
        return v.err(
            &first.name,
            "class.name",
            "[gateway] and [[class]] in one profile: write the gateway as a [[class]] too \
             (name, dscp, uplinks = [ { interface = …, via = … } ]), or keep only [gateway]"
                .into(),
        );
    }
    let mut out: Vec<(Class, Spans)> = Vec::new();
    for c in raw {
        let name = c.name.get_ref();
        if !valid_class_name(name) {
            return v.err(
                &c.name,
                "class.name",
                "not a valid class name: use 1–15 letters, digits, '-' or '_', like \
                 \"torrent\""
                    .into(),
            );
        }
        let p = format!("class.{name}");
        if let Some((other, _)) = out.iter().find(|(o, _)| o.name == *name) {
            return v.err(
                &c.name,
                "class.name",
                format!(
                    "a class named {:?} comes earlier: each class needs its own name",
                    other.name
                ),
            );
        }
        let uplinks = c.uplinks.get_ref();
        if uplinks.is_empty() {
            return v.err(
                &c.uplinks,
                &format!("{p}.uplinks"),
                "needs at least one uplink: uplinks = [ { interface = \"wg0\", via = \
                 \"10.8.0.1\" } ], in the order they are tried"
                    .into(),
            );
        }
        // The class's own values, checked as `[gateway]`'s are.
        let raw_gateway = |u: &RawUplink| RawGateway {
            dscp: c.dscp.clone(),
            interface: u.interface.clone(),
            via: u.via.clone(),
            via6: u.via6.clone(),
            mark: c.mark.clone(),
            mask: c.mask.clone(),
            table: c.table.clone(),
            table_id: c.table_id.clone(),
            priority: c.priority.clone(),
            kill_switch: c.kill_switch,
            masquerade: c.masquerade,
            scrub_dscp: c.scrub_dscp,
            rp_filter: c.rp_filter.clone(),
            match_mode: c.match_mode.clone(),
        };
        let g = v.gateway(raw_gateway(&uplinks[0]), &p)?;
        let mut ups = Vec::new();
        for u in uplinks {
            let ug = v.gateway(raw_gateway(u), &format!("{p}.uplinks"))?;
            if let Some(dup) = ups.iter().find(|x: &&Uplink| x.interface == ug.interface) {
                return v.err(
                    &u.interface,
                    &format!("{p}.uplinks.interface"),
                    format!(
                        "{} is listed twice in this class: list each uplink once",
                        dup.interface
                    ),
                );
            }
            ups.push(Uplink {
                interface: ug.interface,
                via: ug.via,
                via6: ug.via6,
                check: u
                    .check
                    .as_ref()
                    .map(|ch| health_check(v, ch, &p))
                    .transpose()?,
            });
        }
        let class = Class {
            name: name.clone(),
            uplinks: ups,
            ..Class::from(&g)
        };
        let spans = Spans {
            dscp: c.dscp,
            mark: c.mark,
            mask: c.mask,
            table: c.table,
            table_id: c.table_id,
            priority: c.priority,
        };
        between(v, &class, &spans, &out)?;
        out.push((class, spans));
    }
    Ok(out.into_iter().map(|(c, _)| c).collect())
}

/// One error per problem between `c` and the classes before it.
fn between(
    v: &Validator,
    c: &Class,
    s: &Spans,
    earlier: &[(Class, Spans)],
) -> Result<(), ProfileError> {
    let p = format!("class.{}", c.name);
    for (o, _) in earlier {
        if o.dscp == c.dscp {
            return v.err(
                &s.dscp,
                &format!("{p}.dscp"),
                format!(
                    "class {} already routes DSCP {}: each class needs its own DSCP (a private \
                     one from pool 2: 3, 7, 11, … 63)",
                    o.name, o.dscp
                ),
            );
        }
        // `ip rule dscp` classes put no mark on the routing path.
        if c.match_mode == MatchMode::Mark && o.match_mode == MatchMode::Mark {
            let (cm, om) = (c.effective_mask(), o.effective_mask());
            if cm != om && cm & om != 0 {
                let at = s.mask.as_ref().or(s.mark.as_ref()).unwrap_or(&s.dscp);
                return v.err(
                    at,
                    &format!("{p}.mask"),
                    format!(
                        "mask {cm:#x} shares bits with class {}'s mask {om:#x}: give the \
                         classes the same mask (each its own mark value in it), or masks \
                         with no bit in common",
                        o.name
                    ),
                );
            }
            if let (Some(cv), Some(ov), Some(at)) = (c.mark, o.mark, &s.mark)
                && cm == om
                && cv == ov
            {
                return v.err(
                    at,
                    &format!("{p}.mark"),
                    format!(
                        "class {} already uses mark {ov:#x}/{om:#x}: each class needs its own \
                         mark value within the shared mask (or leave mark out: a free one is \
                         chosen per class)",
                        o.name
                    ),
                );
            }
        }
        if let Some(why) = same_table(c, o) {
            let at = s
                .table_id
                .as_ref()
                .map(|t| (t.span(), format!("{:?}", t.get_ref())));
            let at = at.or(s
                .table
                .as_ref()
                .map(|t| (t.span(), format!("{:?}", t.get_ref()))));
            if let Some((span, given)) = at {
                return Err((v.at)(
                    span,
                    format!(
                        "{p}.table = {}: {why} as class {}: each class needs its own routing \
                         table (or leave table out: a free one is chosen per class)",
                        clip(&given),
                        o.name
                    ),
                ));
            }
        }
        if let (Some(cp), Some(op), Some(at)) = (c.priority, o.priority, &s.priority)
            && cp.abs_diff(op) <= 2
        {
            return v.err(
                at,
                &format!("{p}.priority"),
                format!(
                    "its rules ({}–{}) overlap class {}'s ({}–{}): each class takes P-1, P and \
                     P+1, so priorities must be at least 3 apart (e.g. {})",
                    cp - 1,
                    cp + 1,
                    o.name,
                    op - 1,
                    op + 1,
                    op + 10
                ),
            );
        }
    }
    Ok(())
}

/// "the same table number 100" / "the same table \"vpn\"", when both name one.
fn same_table(a: &Class, b: &Class) -> Option<String> {
    let num = |c: &Class| match &c.table {
        Some(TableRef::Id(i)) => Some(*i),
        _ => c.table_id,
    };
    let name = |c: &Class| match &c.table {
        Some(TableRef::Name(n)) => Some(n.clone()),
        _ => None,
    };
    if let (Some(x), Some(y)) = (num(a), num(b))
        && x == y
    {
        return Some(format!("the same table number {x}"));
    }
    if let (Some(x), Some(y)) = (name(a), name(b))
        && x == y
    {
        return Some(format!("the same table {x:?}"));
    }
    None
}

fn health_check(
    v: &Validator,
    ch: &Spanned<RawCheck>,
    p: &str,
) -> Result<HealthCheck, ProfileError> {
    let ch = ch.get_ref();
    let ping = match ch.ping.get_ref().trim().parse::<IpAddr>() {
        Ok(a) => a,
        Err(_) => {
            return v.err(
                &ch.ping,
                &format!("{p}.uplinks.check.ping"),
                "not an address: give an IPv4 or IPv6 address to ping through this uplink, \
                 like \"10.8.0.1\""
                    .into(),
            );
        }
    };
    let every_ms = match &ch.every {
        None => 2000,
        Some(e) => match parse_duration_ms(e.get_ref()) {
            Some(ms) if (100..=600_000).contains(&ms) => ms,
            _ => {
                return v.err(
                    e,
                    &format!("{p}.uplinks.check.every"),
                    "use a duration from 100ms to 10m, like \"2s\", \"500ms\" or \"1m\"".into(),
                );
            }
        },
    };
    let fails = match &ch.fails {
        None => 3,
        Some(f) => match u32::try_from(*f.get_ref()) {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return v.err(
                    f,
                    &format!("{p}.uplinks.check.fails"),
                    "use a count from 1 to 100: how many checks in a row must fail before the \
                     uplink counts as down"
                        .into(),
                );
            }
        },
    };
    Ok(HealthCheck {
        ping,
        every_ms,
        fails,
    })
}

/// "500ms", "2s", "1m".
fn parse_duration_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = num.parse().ok()?;
    match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        _ => None,
    }
}

fn valid_class_name(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// On a host that is both client and gateway, the client's DSCP must be one
/// of the classes', or its own packets would be marked for no class.
pub(super) fn check_marker_dscp(
    m: &Marker,
    classes: &[Class],
    file: &str,
) -> Result<(), ProfileError> {
    if classes.is_empty() || classes.iter().any(|c| c.dscp == m.dscp) {
        return Ok(());
    }
    let list: Vec<String> = classes
        .iter()
        .map(|c| format!("{} ({})", c.name, c.dscp))
        .collect();
    Err(ProfileError {
        file: file.into(),
        line: 0,
        message: format!(
            "marker.dscp ({}) is none of the classes' DSCPs ({}): on a host that is both client \
             and gateway, mark with the DSCP of the class its traffic should take",
            m.dscp,
            list.join(", ")
        ),
    })
}

pub(super) fn to_toml(classes: &[Class], o: &mut String) {
    for c in classes {
        if !o.is_empty() {
            o.push('\n');
        }
        o.push_str("[[class]]\n");
        o.push_str(&format!("name = {}\n", quote(&c.name)));
        o.push_str(&format!("dscp = {}\n", c.dscp));
        let ups: Vec<String> = c.uplinks.iter().map(uplink_toml).collect();
        o.push_str(&format!("uplinks = [{}]\n", ups.join(", ")));
        routing_toml(c, o);
    }
}

/// The routing keys a `[gateway]` and a `[[class]]` share, as TOML lines.
pub(super) fn routing_toml(c: &Class, o: &mut String) {
    if let Some(m) = c.mark {
        o.push_str(&format!("mark = \"{m:#x}\"\n"));
    }
    if let Some(m) = c.mask {
        o.push_str(&format!("mask = \"{m:#x}\"\n"));
    }
    match &c.table {
        Some(TableRef::Name(n)) => o.push_str(&format!("table = {}\n", quote(n))),
        Some(TableRef::Id(i)) => o.push_str(&format!("table = {i}\n")),
        None => {}
    }
    if let Some(i) = c.table_id {
        o.push_str(&format!("table_id = {i}\n"));
    }
    if let Some(p) = c.priority {
        o.push_str(&format!("priority = {p}\n"));
    }
    o.push_str(&format!("kill_switch = {}\n", c.kill_switch));
    o.push_str(&format!("masquerade = {}\n", c.masquerade));
    o.push_str(&format!("scrub_dscp = {}\n", c.scrub_dscp));
    let rp = match c.rp_filter {
        RpFilterPolicy::Loose => "loose",
        RpFilterPolicy::Keep => "keep",
    };
    o.push_str(&format!("rp_filter = \"{rp}\"\n"));
    if c.match_mode != MatchMode::Mark {
        o.push_str(&format!("match = \"{}\"\n", c.match_mode.name()));
    }
}

fn uplink_toml(u: &Uplink) -> String {
    let mut parts = vec![format!("interface = {}", quote(&u.interface))];
    if let Some(v) = u.via {
        parts.push(format!("via = \"{v}\""));
    }
    if let Some(v) = u.via6 {
        parts.push(format!("via6 = \"{v}\""));
    }
    if let Some(c) = &u.check {
        parts.push(format!(
            "check = {{ ping = \"{}\", every = \"{}ms\", fails = {} }}",
            c.ping, c.every_ms, c.fails
        ));
    }
    format!("{{ {} }}", parts.join(", "))
}

#[cfg(test)]
mod tests;
