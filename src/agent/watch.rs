//! Which events concern the setup. A link is known by name, but addresses
//! and routes only name an interface index, and a VPN client that re-creates
//! its interface gives it a new one: so the watch learns the index of each
//! watched name from the link events and forgets it on deletion.

use super::event::{Event, Family, Route, Rule};
use crate::ownership::RT_PROTO;
use std::collections::BTreeMap;
use std::fmt::Write;

/// What the setup depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchSet {
    /// Interface names (the VPN interface; any other the setup names).
    pub interfaces: Vec<String>,
    /// Our routing table.
    pub table: u32,
    /// The other classes' tables (a `[[class]]` profile).
    pub other_tables: Vec<u32>,
    /// Priorities of our policy rules.
    pub priorities: Vec<u32>,
    /// The `proto` number on our routes and rules.
    pub proto: u8,
}

impl WatchSet {
    /// A watch on our own `proto` number.
    pub fn new(interfaces: Vec<String>, table: u32, priorities: Vec<u32>) -> WatchSet {
        const { assert!(RT_PROTO <= u8::MAX as u32) };
        WatchSet {
            interfaces,
            table,
            other_tables: Vec::new(),
            priorities,
            proto: RT_PROTO as u8,
        }
    }
}

/// The filter, with what it learnt of interface indices.
#[derive(Clone, Debug)]
pub struct Watch {
    set: WatchSet,
    /// index -> name, for watched names that exist now.
    indices: BTreeMap<u32, String>,
}

impl Watch {
    pub fn new(set: WatchSet) -> Watch {
        Watch {
            set,
            indices: BTreeMap::new(),
        }
    }

    pub fn set(&self) -> &WatchSet {
        &self.set
    }

    /// Records that `name` has `index` now (from a lookup at start, before
    /// any event about it arrived). Names outside the set are ignored.
    pub fn learn(&mut self, name: &str, index: u32) {
        if self.set.interfaces.iter().any(|n| n == name) {
            self.indices.retain(|_, n| n != name);
            self.indices.insert(index, name.to_string());
        }
    }

    /// The index a watched name has now, as far as we know.
    pub fn index_of(&self, name: &str) -> Option<u32> {
        self.indices
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(i, _)| *i)
    }

    fn our_table(&self, table: u32) -> bool {
        table == self.set.table || self.set.other_tables.contains(&table)
    }

    fn watched(&self, name: &str) -> bool {
        self.set.interfaces.iter().any(|n| n == name)
    }

    /// Why `event` may have broken the setup, in words for the repair line;
    /// `None` when it cannot have. Changes we make ourselves (our route or
    /// rule added) do not count: only what removes or moves something we
    /// need does.
    pub fn relevant(&mut self, event: &Event) -> Option<String> {
        match event {
            Event::LinkUp { index, name } | Event::LinkDown { index, name } => {
                let state = if matches!(event, Event::LinkUp { .. }) {
                    "up"
                } else {
                    "down"
                };
                if self.watched(name) {
                    let before = self.index_of(name);
                    self.learn(name, *index);
                    Some(match before {
                        Some(old) if old != *index => {
                            format!("link {name} re-created (index {old} -> {index}), {state}")
                        }
                        Some(_) => format!("link {name} {state}"),
                        None => format!("link {name} appeared, {state}"),
                    })
                } else {
                    // A watched interface renamed to something else is gone.
                    let old = self.indices.remove(index)?;
                    Some(format!("link {old} renamed to {name}"))
                }
            }
            Event::LinkDel { index, name } => {
                let known = self.indices.remove(index);
                (known.is_some() || self.watched(name)).then(|| format!("link {name} deleted"))
            }
            Event::AddrNew(a) | Event::AddrDel(a) => {
                let name = self.indices.get(&a.index)?;
                let verb = if matches!(event, Event::AddrNew(_)) {
                    "added on"
                } else {
                    "deleted from"
                };
                Some(format!("address {}/{} {verb} {name}", a.addr, a.prefix_len))
            }
            Event::RouteDel(r) if self.our_table(r.table) => Some(format!("route {r} deleted")),
            // Our own repairs add routes to our tables: not a loss.
            Event::RouteNew(r) if self.our_table(r.table) => None,
            // Elsewhere, a route through a watched interface may be the
            // VPN's next hop coming or going.
            Event::RouteNew(r) | Event::RouteDel(r) => {
                let name = self.indices.get(&r.oif?)?;
                let verb = if matches!(event, Event::RouteNew(_)) {
                    "added"
                } else {
                    "deleted"
                };
                Some(format!("route {} via {name} {verb}", describe_route(r)))
            }
            Event::RuleDel(r) if self.ours(r) => Some(format!("{r} deleted")),
            Event::RuleNew(_) | Event::RuleDel(_) => None,
            Event::Lost => Some("kernel notifications were lost".into()),
        }
    }

    fn ours(&self, rule: &Rule) -> bool {
        rule.proto == self.set.proto
            || rule
                .priority
                .is_some_and(|p| self.set.priorities.contains(&p))
    }
}

fn describe_route(r: &Route) -> String {
    let mut s = match r.dst {
        Some(dst) if r.dst_len > 0 => format!("{dst}/{}", r.dst_len),
        _ if r.family == Family::V6 => "IPv6 default".into(),
        _ => "default".into(),
    };
    let _ = write!(s, " (table {})", r.table);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::event::Addr;

    fn watch() -> Watch {
        let mut w = Watch::new(WatchSet::new(vec!["wg0".into()], 100, vec![10000]));
        w.learn("wg0", 7);
        w
    }

    fn link(up: bool, name: &str, index: u32) -> Event {
        let name = name.to_string();
        if up {
            Event::LinkUp { index, name }
        } else {
            Event::LinkDown { index, name }
        }
    }

    fn addr(index: u32) -> Event {
        Event::AddrNew(Addr {
            index,
            addr: "10.8.0.2".parse().unwrap(),
            prefix_len: 24,
        })
    }

    fn route(table: u32, oif: Option<u32>) -> Route {
        Route {
            family: Family::V4,
            table,
            dst: None,
            dst_len: 0,
            oif,
            proto: 213,
        }
    }

    fn rule(priority: u32, proto: u8) -> Rule {
        Rule {
            family: Family::V6,
            priority: Some(priority),
            table: 100,
            proto,
        }
    }

    #[test]
    fn links_matter_by_name_and_a_new_index_is_followed() {
        let mut w = watch();
        assert_eq!(
            w.relevant(&link(false, "wg0", 7)).as_deref(),
            Some("link wg0 down")
        );
        assert_eq!(w.relevant(&link(false, "eth0", 2)), None);
        assert_eq!(w.relevant(&addr(2)), None, "an address on another link");

        let del = Event::LinkDel {
            index: 7,
            name: "wg0".into(),
        };
        assert_eq!(w.relevant(&del).as_deref(), Some("link wg0 deleted"));
        assert_eq!(w.index_of("wg0"), None);
        assert_eq!(w.relevant(&addr(7)), None, "the old index is gone");
        assert_eq!(
            w.relevant(&link(true, "wg0", 9)).as_deref(),
            Some("link wg0 appeared, up")
        );
        assert_eq!(
            w.relevant(&addr(9)).as_deref(),
            Some("address 10.8.0.2/24 added on wg0")
        );

        // Re-created between two events we saw (the deletion was lost).
        assert_eq!(
            w.relevant(&link(true, "wg0", 11)).as_deref(),
            Some("link wg0 re-created (index 9 -> 11), up")
        );
        assert_eq!(w.relevant(&addr(9)), None);
    }

    #[test]
    fn a_watched_link_renamed_away_is_gone() {
        let mut w = watch();
        assert_eq!(
            w.relevant(&link(true, "wg-old", 7)).as_deref(),
            Some("link wg0 renamed to wg-old")
        );
        assert_eq!(w.index_of("wg0"), None);
        assert_eq!(w.relevant(&link(true, "wg-old", 7)), None);
    }

    #[test]
    fn only_losses_in_our_table_count() {
        let mut w = watch();
        assert_eq!(
            w.relevant(&Event::RouteDel(route(100, Some(7)))).as_deref(),
            Some("route IPv4 default table 100 deleted")
        );
        assert_eq!(w.relevant(&Event::RouteNew(route(100, Some(7)))), None);
        assert_eq!(w.relevant(&Event::RouteDel(route(200, Some(3)))), None);
        assert_eq!(w.relevant(&Event::RouteNew(route(254, None))), None);
        // A route through the VPN in another table: its next hop may change.
        assert_eq!(
            w.relevant(&Event::RouteNew(route(254, Some(7)))).as_deref(),
            Some("route default (table 254) via wg0 added")
        );
        // Another class's table is ours too: a loss counts, our add does not.
        let mut set = w.set().clone();
        set.other_tables = vec![101];
        let mut w = Watch::new(set);
        w.learn("wg0", 7);
        assert!(w.relevant(&Event::RouteDel(route(101, Some(7)))).is_some());
        assert_eq!(w.relevant(&Event::RouteNew(route(101, Some(7)))), None);
    }

    #[test]
    fn a_rule_matters_by_our_priority_or_our_proto_when_deleted() {
        let mut w = watch();
        assert!(w.relevant(&Event::RuleDel(rule(10000, 0))).is_some());
        assert_eq!(
            w.relevant(&Event::RuleDel(rule(12345, 213))).as_deref(),
            Some("IPv6 rule pref 12345 lookup 100 proto 213 deleted")
        );
        assert_eq!(w.relevant(&Event::RuleDel(rule(20000, 3))), None);
        assert_eq!(w.relevant(&Event::RuleNew(rule(10000, 213))), None);
    }

    #[test]
    fn lost_notifications_always_matter() {
        assert!(watch().relevant(&Event::Lost).is_some());
    }
}
