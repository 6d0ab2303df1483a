//! Settle the values the profile left open (mark, table, priority) on ones
//! that are free on this host, and check the ones it gave.

use super::marks::{likely_owner, other_mark_uses, owner_suffix};
use crate::ownership::{
    DEFAULT_MASK, DEFAULT_PRIORITY, DEFAULT_TABLE_NAME, RT_TABLES_DROPIN, is_our_proto,
};
use crate::probe::HostFacts;
use crate::profile::{Gateway, TableRef};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Choices {
    pub mark: u32,
    pub mask: u32,
    pub table_id: u32,
    pub table_name: Option<String>,
    /// The table name must be added (our rt_tables.d drop-in).
    pub needs_dropin: bool,
    /// The name is already in our own drop-in (from an earlier apply).
    pub dropin_in_place: bool,
    pub priority: u32,
    pub mark_chosen: bool,
    pub priority_chosen: bool,
}

/// What the profile's other classes take, so that automatic choices give
/// each class its own values. Empty for `[gateway]`.
#[derive(Clone, Debug, Default)]
pub struct Taken {
    pub marks: Vec<(u32, u32)>,
    pub tables: Vec<u32>,
    pub priorities: Vec<u32>,
    /// `[[class]]`: a class without `table` gets a free number, unnamed
    /// (our rt_tables drop-in holds one name).
    pub unnamed_default: bool,
}

impl Taken {
    pub fn add(&mut self, c: &Choices) {
        self.marks.push((c.mark, c.mask));
        self.tables.push(c.table_id);
        self.priorities.push(c.priority);
    }
}

#[cfg(test)]
pub fn resolve(g: &Gateway, facts: &HostFacts) -> Result<Choices, Vec<String>> {
    resolve_among(g, facts, &Taken::default())
}

pub fn resolve_among(
    g: &Gateway,
    facts: &HostFacts,
    taken: &Taken,
) -> Result<Choices, Vec<String>> {
    let mut problems = Vec::new();
    let mask = g.mask.unwrap_or(DEFAULT_MASK);
    let (mark, mark_chosen) = match g.mark {
        Some(m) => (m, false),
        None => match free_mark_among(mask, facts, &taken.marks) {
            Some(m) => (m, true),
            None => {
                problems.push(format!(
                    "no free mark value within mask {mask:#x}: every value is used by other \
                     rules; set gateway.mark and gateway.mask to bits no one else uses"
                ));
                (0, true)
            }
        },
    };
    if g.mark.is_some() && mark & !mask != 0 {
        problems.push(format!(
            "gateway.mark {mark:#x} has bits outside the mask {mask:#x}: set gateway.mask to cover them"
        ));
    }
    let table = resolve_table(g, facts, taken, &mut problems);
    let (priority, priority_chosen) = match g.priority {
        Some(p) => (p, false),
        None => match free_priority(facts, &taken.priorities) {
            Some(p) => (p, true),
            None => {
                problems.push(
                    "no free rule priority between 1000 and 10000: set gateway.priority".into(),
                );
                (DEFAULT_PRIORITY, true)
            }
        },
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let (table_id, table_name, needs_dropin, dropin_in_place) = table;
    Ok(Choices {
        mark,
        mask,
        table_id,
        table_name,
        needs_dropin,
        dropin_in_place,
        priority,
        mark_chosen,
        priority_chosen,
    })
}

/// (id, name, needs drop-in, drop-in already ours)
fn resolve_table(
    g: &Gateway,
    facts: &HostFacts,
    taken: &Taken,
    problems: &mut Vec<String>,
) -> (u32, Option<String>, bool, bool) {
    let named = |name: &str| facts.rt_tables.iter().find(|t| t.name == name);
    // Our own drop-in gets rewritten, so its entries never block a choice.
    let name_of = |id: u32| {
        facts
            .rt_tables
            .iter()
            .find(|t| t.id == id && !is_our_dropin(&t.source))
    };
    let (name, explicit_id) = match &g.table {
        Some(TableRef::Id(id)) => return (*id, name_of(*id).map(|t| t.name.clone()), false, false),
        Some(TableRef::Name(n)) => (n.clone(), g.table_id),
        None if taken.unnamed_default => {
            return match free_table_id(facts, &taken.tables) {
                Some(id) => (id, name_of(id).map(|t| t.name.clone()), false, false),
                None => {
                    problems.push("no free routing table number in 100–252: set table".into());
                    (0, None, false, false)
                }
            };
        }
        None => (DEFAULT_TABLE_NAME.to_string(), None),
    };
    if let Some(t) = named(&name).filter(|t| {
        // A different number for a name of our own drop-in: rewrite it below.
        !(is_our_dropin(&t.source) && explicit_id.is_some_and(|id| id != t.id))
    }) {
        if let Some(id) = explicit_id
            && id != t.id
        {
            problems.push(format!(
                "table {name:?} is already number {} in {}, but gateway.table_id says {id}: \
                 drop table_id, or pick another table name",
                t.id, t.source
            ));
        }
        let ours = is_our_dropin(&t.source);
        return (t.id, Some(name), ours, ours);
    }
    let id = match explicit_id {
        Some(id) => {
            if let Some(other) = name_of(id) {
                problems.push(format!(
                    "table number {id} is already named {:?} in {}: choose another \
                     gateway.table_id, or use table = {:?}",
                    other.name, other.source, other.name
                ));
            }
            id
        }
        None => match free_table_id(facts, &taken.tables) {
            Some(id) => id,
            None => {
                problems.push("no free routing table number in 100–252: set gateway.table".into());
                0
            }
        },
    };
    (id, Some(name), true, false)
}

fn table_has_foreign_routes(facts: &HostFacts, id: u32) -> bool {
    facts
        .routes_v4
        .iter()
        .chain(&facts.routes_v6)
        .any(|r| facts.table_id(&r.table) == Some(id) && !is_our_proto(r.protocol.as_deref()))
}

/// A policy rule of someone else's that looks the table up (its routes may
/// just be absent for now, e.g. while their VPN is down).
pub fn table_looked_up_by(facts: &HostFacts, id: u32) -> Option<String> {
    facts
        .rules_v4
        .iter()
        .chain(&facts.rules_v6)
        .find(|r| {
            !is_our_proto(r.protocol.as_deref())
                && r.action.is_none()
                && r.table.as_deref().and_then(|t| facts.table_id(t)) == Some(id)
        })
        .map(|r| {
            format!(
                "ip rule {}: lookup {}",
                r.priority,
                r.table.as_deref().unwrap_or("")
            )
        })
}

fn free_table_id(facts: &HostFacts, taken: &[u32]) -> Option<u32> {
    (100..=252).find(|id| {
        !taken.contains(id)
            && !facts
                .rt_tables
                .iter()
                .any(|t| t.id == *id && !is_our_dropin(&t.source))
            && !table_has_foreign_routes(facts, *id)
            && table_looked_up_by(facts, *id).is_none()
    })
}

/// Entries of our own rt_tables drop-in are ours to rewrite.
pub fn is_our_dropin(source: &str) -> bool {
    // The full path (a probe root may prefix it), not just the file name.
    source.ends_with(RT_TABLES_DROPIN)
}

/// A rule priority is taken when a rule of someone else sits there.
pub fn priority_taken_by(facts: &HostFacts, pref: u32) -> Option<String> {
    facts
        .rules_v4
        .iter()
        .map(|r| (r, ""))
        .chain(facts.rules_v6.iter().map(|r| (r, "-6 ")))
        .find(|(r, _)| r.priority == pref && !is_our_proto(r.protocol.as_deref()))
        .map(|(r, fam)| {
            let not = if r.not { "not " } else { "" };
            let what = match (&r.fwmark, &r.table, &r.action) {
                (Some(m), Some(t), _) => format!("{not}fwmark {m:#x} lookup {t}"),
                (None, Some(t), _) => format!("lookup {t}"),
                (_, _, Some(a)) => a.clone(),
                _ => "a rule".into(),
            };
            let owner = likely_owner(r.fwmark, r.fwmask, Some(r.priority), r.table.as_deref());
            format!("ip {fam}rule {pref}: {what}{}", owner_suffix(owner))
        })
}

fn triple_free(facts: &HostFacts, p: u32) -> bool {
    (p - 1..=p + 1).all(|q| priority_taken_by(facts, q).is_none())
}

fn free_priority(facts: &HostFacts, taken: &[u32]) -> Option<u32> {
    (100..=1000)
        .rev()
        .map(|k| k * 10)
        .find(|p| triple_free(facts, *p) && !taken.iter().any(|t| t.abs_diff(*p) <= 2))
}

/// The smallest non-zero value within `mask` no one else's rule would match.
pub fn free_mark(mask: u32, facts: &HostFacts) -> Option<u32> {
    free_mark_among(mask, facts, &[])
}

/// Also avoiding the values other classes took within the same mask.
fn free_mark_among(mask: u32, facts: &HostFacts, taken: &[(u32, u32)]) -> Option<u32> {
    let uses = other_mark_uses(facts);
    let shift = mask.trailing_zeros();
    (1u32..=4096)
        .filter_map(|k| k.checked_shl(shift))
        .filter(|v| v & !mask == 0)
        .find(|v| {
            !uses.iter().any(|u| u.same_bits(*v, mask))
                && !taken.iter().any(|(tv, tm)| *tm == mask && tv == v)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{RtTable, Rule};

    fn gw() -> Gateway {
        crate::profile::Profile::parse("[gateway]\ndscp = 7\ninterface = \"wg0\"\n", "t")
            .unwrap()
            .gateway
            .unwrap()
    }

    #[test]
    fn defaults_on_an_empty_host() {
        let c = resolve(&gw(), &HostFacts::default()).unwrap();
        assert_eq!((c.mark, c.mask, c.priority), (1, 0xff, 10000));
        assert_eq!(
            (c.table_id, c.table_name.as_deref()),
            (100, Some("dscproute"))
        );
        assert!(c.needs_dropin && c.mark_chosen && c.priority_chosen);
    }

    #[test]
    fn avoids_taken_values() {
        let mut f = HostFacts::default();
        f.rules_v4.push(Rule {
            priority: 10001,
            table: Some("52".into()),
            ..Rule::default()
        });
        f.rules_v4.push(Rule {
            priority: 200,
            fwmark: Some(1),
            fwmask: Some(0xff),
            table: Some("200".into()),
            ..Rule::default()
        });
        f.rt_tables.push(RtTable {
            id: 100,
            name: "other".into(),
            source: "/etc/iproute2/rt_tables".into(),
        });
        let c = resolve(&gw(), &f).unwrap();
        assert_eq!(c.priority, 9990);
        assert_eq!(c.mark, 2);
        assert_eq!(c.table_id, 101);
    }

    #[test]
    fn existing_table_name_is_reused_and_id_disagreement_is_an_error() {
        let mut f = HostFacts::default();
        f.rt_tables.push(RtTable {
            id: 120,
            name: "vpn".into(),
            source: "/etc/iproute2/rt_tables".into(),
        });
        let mut g = gw();
        g.table = Some(TableRef::Name("vpn".into()));
        let c = resolve(&g, &f).unwrap();
        assert_eq!((c.table_id, c.needs_dropin), (120, false));
        g.table_id = Some(100);
        let e = resolve(&g, &f).unwrap_err();
        assert!(e[0].contains("already number 120"), "{e:?}");
    }
}
