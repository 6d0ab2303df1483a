//! The gateway's classes in the wizard. The class being edited lives in the
//! draft's `dscp`, `mark` and `gateway` (so the DSCP, Mark and Gateway steps
//! edit it as they edit `[gateway]`); the others wait here, parked, in
//! order. Within the edited class, the same holds for its uplinks: the one
//! on screen lives in `gateway.link`/`via`/`via6`, the others are parked.

use super::{Draft, GatewayDraft, MarkDraft, quoted};
use crate::probe::HostFacts;
use crate::profile::{Class, GATEWAY_CLASS, HealthCheck, Profile, RpFilterPolicy, TableRef};
use crate::tos::Dscp;
use std::mem;
use tui_input::Input;

/// An uplink not on screen: its interface by name and its next hops.
#[derive(Clone, Debug, Default)]
pub struct UplinkDraft {
    pub interface: Option<String>,
    pub via: Input,
    pub via6: Input,
    /// `check` as loaded (no screen edits it yet).
    pub check: Option<HealthCheck>,
}

/// A class not being edited: what the DSCP, Mark and Gateway steps edit.
#[derive(Debug)]
pub struct ClassDraft {
    pub name: String,
    pub dscp: Dscp,
    pub mark: MarkDraft,
    /// Its options (the uplink fields are unused: see `uplinks`).
    pub gateway: GatewayDraft,
    pub uplinks: Vec<UplinkDraft>,
}

#[derive(Debug)]
pub struct ClassesDraft {
    /// Which class is being edited.
    pub current: usize,
    /// Every class in order; the edited one's slot is empty.
    parked: Vec<Option<ClassDraft>>,
    /// The edited class's name.
    pub name: Input,
    /// The edited class's uplinks in order; the one on screen is empty.
    uplinks: Vec<Option<UplinkDraft>>,
    /// Which uplink is on screen.
    pub uplink: usize,
    /// The marker's DSCP of a loaded profile that is client and gateway: it
    /// names the class the host's own traffic takes.
    pub marker_dscp: Option<Dscp>,
}

impl Default for ClassesDraft {
    fn default() -> Self {
        ClassesDraft {
            current: 0,
            parked: vec![None],
            name: Input::new(GATEWAY_CLASS.into()),
            uplinks: vec![None],
            uplink: 0,
            marker_dscp: None,
        }
    }
}

impl ClassesDraft {
    pub fn len(&self) -> usize {
        self.parked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parked.is_empty()
    }

    pub fn uplink_count(&self) -> usize {
        self.uplinks.len()
    }
}

/// One class as the list shows it (and as it is written).
#[derive(Clone, Debug)]
pub struct ClassView<'a> {
    pub name: String,
    pub dscp: Dscp,
    pub mark: &'a MarkDraft,
    pub gateway: &'a GatewayDraft,
    pub uplinks: Vec<UplinkDraft>,
}

impl ClassView<'_> {
    /// "wg0 → tun1"
    pub fn uplink_names(&self) -> String {
        let names: Vec<&str> = self
            .uplinks
            .iter()
            .map(|u| u.interface.as_deref().unwrap_or("?"))
            .collect();
        names.join(" → ")
    }

    /// The table as written, or "auto" (the plan picks a free one).
    pub fn table(&self) -> String {
        let (t, id) = (
            self.mark.table.value().trim(),
            self.mark.table_id.value().trim(),
        );
        match (t, id) {
            ("", "") => "auto".into(),
            (t, "") | ("", t) => t.into(),
            (t, id) => format!("{t} ({id})"),
        }
    }

    /// The mark as written, or "auto".
    pub fn mark(&self) -> String {
        match self.mark.mark.value().trim() {
            "" => "auto".into(),
            m => m.into(),
        }
    }
}

/// "1 wg0 via 10.8.0.1" (how the editor lists an uplink).
pub fn uplink_label(i: usize, u: &UplinkDraft) -> String {
    let mut s = format!("{} {}", i + 1, u.interface.as_deref().unwrap_or("?"));
    for (what, v) in [("via", &u.via), ("via6", &u.via6)] {
        if !v.value().trim().is_empty() {
            s.push_str(&format!(" {what} {}", v.value().trim()));
        }
    }
    s
}

fn mark_draft(c: &Class) -> MarkDraft {
    MarkDraft {
        mark: Input::new(c.mark.map(|v| format!("{v:#x}")).unwrap_or_default()),
        mask: Input::new(c.mask.map(|v| format!("{v:#x}")).unwrap_or_default()),
        table: Input::new(match &c.table {
            Some(TableRef::Name(n)) => n.clone(),
            Some(TableRef::Id(i)) => i.to_string(),
            None => String::new(),
        }),
        table_id: Input::new(c.table_id.map(|v| v.to_string()).unwrap_or_default()),
        priority: Input::new(c.priority.map(|v| v.to_string()).unwrap_or_default()),
    }
}

fn class_draft(c: &Class) -> ClassDraft {
    ClassDraft {
        name: c.name.clone(),
        dscp: c.dscp,
        mark: mark_draft(c),
        gateway: GatewayDraft {
            kill_switch: c.kill_switch,
            masquerade: c.masquerade,
            scrub_dscp: c.scrub_dscp,
            rp_loose: c.rp_filter == RpFilterPolicy::Loose,
            match_mode: c.match_mode,
            ..GatewayDraft::default()
        },
        uplinks: c
            .uplinks
            .iter()
            .map(|u| UplinkDraft {
                interface: Some(u.interface.clone()),
                via: Input::new(u.via.map(|v| v.to_string()).unwrap_or_default()),
                via6: Input::new(u.via6.map(|v| v.to_string()).unwrap_or_default()),
                check: u.check.clone(),
            })
            .collect(),
    }
}

/// A link of this host for a new uplink: a tunnel-looking one first, then
/// anything but lo, skipping those in `used`.
fn free_link(facts: Option<&HostFacts>, used: &[String]) -> Option<String> {
    let links = &facts?.links;
    let free = |l: &&crate::probe::Link| !used.contains(&l.name) && l.name != "lo";
    links
        .iter()
        .filter(free)
        .find(|l| l.name.starts_with("wg") || l.name.starts_with("tun"))
        .or_else(|| links.iter().find(free))
        .map(|l| l.name.clone())
}

impl Draft {
    /// One class, one uplink, the default name and no health check: written
    /// as `[gateway]`, as before classes existed.
    pub fn is_plain_gateway(&self) -> bool {
        self.classes.len() == 1
            && self.classes.uplink_count() == 1
            && self.classes.name.value() == GATEWAY_CLASS
            && self.gateway.check.is_none()
    }

    /// The marker's DSCP when it must be one of several classes': the
    /// loaded one while a class still has it, else the first class's.
    pub fn marker_dscp(&self) -> Option<Dscp> {
        if !self.role.gateway() || self.is_plain_gateway() {
            return None;
        }
        let views = self.class_views(None);
        self.classes
            .marker_dscp
            .filter(|m| views.iter().any(|c| c.dscp == *m))
            .or(views.first().map(|c| c.dscp))
    }

    pub(super) fn load_classes(&mut self, p: &Profile) {
        let mut parked: Vec<Option<ClassDraft>> =
            p.classes.iter().map(|c| Some(class_draft(c))).collect();
        let first = parked[0].take().expect("a [[class]] profile has a class");
        self.classes.parked = parked;
        self.classes.current = 0;
        self.classes.marker_dscp = p.marker.as_ref().map(|m| m.dscp);
        self.put_class(first, None);
    }

    /// The uplink on screen, as its own.
    fn live_uplink(&self, facts: Option<&HostFacts>) -> UplinkDraft {
        let g = &self.gateway;
        UplinkDraft {
            interface: g.chosen_link(facts).or_else(|| g.wanted.clone()),
            via: g.via.clone(),
            via6: g.via6.clone(),
            check: g.check.clone(),
        }
    }

    fn take_uplink(&mut self, facts: Option<&HostFacts>) -> UplinkDraft {
        let u = self.live_uplink(facts);
        let g = &mut self.gateway;
        (g.via, g.via6, g.check) = (Input::default(), Input::default(), None);
        u
    }

    fn put_uplink(&mut self, u: UplinkDraft, facts: Option<&HostFacts>) {
        let g = &mut self.gateway;
        g.wanted = u.interface;
        g.link = facts.map(|f| g.pick_link(f)).unwrap_or(0);
        (g.via, g.via6, g.check) = (u.via, u.via6, u.check);
    }

    /// The edited class's uplinks in order, the one on screen included.
    pub fn uplinks(&self, facts: Option<&HostFacts>) -> Vec<UplinkDraft> {
        self.classes
            .uplinks
            .iter()
            .map(|u| u.clone().unwrap_or_else(|| self.live_uplink(facts)))
            .collect()
    }

    /// Every class in order, the edited one included.
    pub fn class_views(&self, facts: Option<&HostFacts>) -> Vec<ClassView<'_>> {
        self.classes
            .parked
            .iter()
            .map(|c| match c {
                Some(c) => ClassView {
                    name: c.name.clone(),
                    dscp: c.dscp,
                    mark: &c.mark,
                    gateway: &c.gateway,
                    uplinks: c.uplinks.clone(),
                },
                None => ClassView {
                    name: self.classes.name.value().to_string(),
                    dscp: self.dscp,
                    mark: &self.mark,
                    gateway: &self.gateway,
                    uplinks: self.uplinks(facts),
                },
            })
            .collect()
    }

    /// Show uplink `i` of the edited class.
    pub fn select_uplink(&mut self, i: usize, facts: Option<&HostFacts>) {
        let cur = self.classes.uplink;
        if i == cur || i >= self.classes.uplinks.len() {
            return;
        }
        let u = self.take_uplink(facts);
        self.classes.uplinks[cur] = Some(u);
        let next = self.classes.uplinks[i].take().expect("a parked uplink");
        self.classes.uplink = i;
        self.put_uplink(next, facts);
    }

    /// A new uplink after the one on screen, on a link the class does not
    /// use yet; it is shown.
    pub fn add_uplink(&mut self, facts: Option<&HostFacts>) {
        let used: Vec<String> = self
            .uplinks(facts)
            .into_iter()
            .filter_map(|u| u.interface)
            .collect();
        let cur = self.classes.uplink;
        let u = self.take_uplink(facts);
        self.classes.uplinks[cur] = Some(u);
        self.classes.uplinks.insert(cur + 1, None);
        self.classes.uplink = cur + 1;
        let interface = free_link(facts, &used);
        self.put_uplink(
            UplinkDraft {
                interface,
                ..UplinkDraft::default()
            },
            facts,
        );
    }

    /// Drop the uplink on screen (never the last one); its neighbour is shown.
    pub fn remove_uplink(&mut self, facts: Option<&HostFacts>) -> bool {
        let ups = &mut self.classes.uplinks;
        if ups.len() < 2 {
            return false;
        }
        ups.remove(self.classes.uplink);
        let i = self.classes.uplink.min(ups.len() - 1);
        let next = ups[i].take().expect("a parked uplink");
        self.classes.uplink = i;
        self.put_uplink(next, facts);
        true
    }

    /// Move the uplink on screen one place earlier or later in the order.
    pub fn move_uplink(&mut self, later: bool) -> bool {
        let cur = self.classes.uplink;
        let Some(to) = (if later {
            cur.checked_add(1)
        } else {
            cur.checked_sub(1)
        })
        .filter(|&t| t < self.classes.uplinks.len()) else {
            return false;
        };
        self.classes.uplinks.swap(cur, to);
        self.classes.uplink = to;
        true
    }

    fn take_class(&mut self, facts: Option<&HostFacts>) -> ClassDraft {
        let u = self.take_uplink(facts);
        self.classes.uplinks[self.classes.uplink] = Some(u);
        let uplinks = mem::take(&mut self.classes.uplinks)
            .into_iter()
            .map(|u| u.expect("every uplink parked"))
            .collect();
        ClassDraft {
            name: mem::take(&mut self.classes.name).value().to_string(),
            dscp: self.dscp,
            mark: mem::take(&mut self.mark),
            gateway: mem::take(&mut self.gateway),
            uplinks,
        }
    }

    fn put_class(&mut self, c: ClassDraft, facts: Option<&HostFacts>) {
        self.dscp = c.dscp;
        self.mark = c.mark;
        self.gateway = c.gateway;
        self.classes.name = Input::new(c.name);
        let mut ups: Vec<Option<UplinkDraft>> = c.uplinks.into_iter().map(Some).collect();
        if ups.is_empty() {
            ups.push(Some(UplinkDraft::default()));
        }
        let first = ups[0].take().expect("a first uplink");
        self.classes.uplinks = ups;
        self.classes.uplink = 0;
        self.put_uplink(first, facts);
    }

    /// Edit class `i` (the DSCP, Mark and Gateway steps show it).
    pub fn select_class(&mut self, i: usize, facts: Option<&HostFacts>) {
        let cur = self.classes.current;
        if i == cur || i >= self.classes.len() {
            return;
        }
        let c = self.take_class(facts);
        self.classes.parked[cur] = Some(c);
        let next = self.classes.parked[i].take().expect("a parked class");
        self.classes.current = i;
        self.put_class(next, facts);
    }

    /// A new class after the edited one, with a name, a private DSCP (pool
    /// 2) and an uplink no other class has; it becomes the edited one.
    pub fn add_class(&mut self, facts: Option<&HostFacts>) {
        let views = self.class_views(facts);
        let names: Vec<String> = views.iter().map(|c| c.name.clone()).collect();
        let name = (views.len() + 1..)
            .map(|n| format!("class{n}"))
            .find(|n| !names.contains(n))
            .expect("a free name");
        let dscp = (3..=63u8)
            .step_by(4)
            .filter_map(Dscp::new)
            .find(|d| views.iter().all(|c| c.dscp != *d))
            .unwrap_or(self.dscp);
        let used: Vec<String> = views
            .iter()
            .flat_map(|c| c.uplinks.iter().filter_map(|u| u.interface.clone()))
            .collect();
        drop(views);
        let new = ClassDraft {
            name,
            dscp,
            mark: MarkDraft::default(),
            gateway: GatewayDraft::default(),
            uplinks: vec![UplinkDraft {
                interface: free_link(facts, &used),
                ..UplinkDraft::default()
            }],
        };
        let cur = self.classes.current;
        let c = self.take_class(facts);
        self.classes.parked[cur] = Some(c);
        self.classes.parked.insert(cur + 1, None);
        self.classes.current = cur + 1;
        self.put_class(new, facts);
    }

    /// Drop the edited class (never the last one); its neighbour is edited.
    pub fn remove_class(&mut self, facts: Option<&HostFacts>) -> bool {
        if self.classes.len() < 2 {
            return false;
        }
        self.classes.parked.remove(self.classes.current);
        let i = self.classes.current.min(self.classes.len() - 1);
        let next = self.classes.parked[i].take().expect("a parked class");
        self.classes.current = i;
        self.put_class(next, facts);
        true
    }

    /// The classes as `[[class]]` tables.
    pub(super) fn classes_toml(&self, facts: Option<&HostFacts>, o: &mut String) {
        for c in self.class_views(facts) {
            if !o.is_empty() {
                o.push('\n');
            }
            o.push_str("[[class]]\n");
            o.push_str(&format!("name = {}\n", quoted(c.name.trim())));
            o.push_str(&format!("dscp = {}\n", c.dscp.value()));
            let ups: Vec<String> = c.uplinks.iter().map(uplink_toml).collect();
            // Several uplinks: one a line, in the order they are tried.
            match ups.as_slice() {
                [one] => o.push_str(&format!("uplinks = [{one}]\n")),
                _ => o.push_str(&format!("uplinks = [\n    {},\n]\n", ups.join(",\n    "))),
            }
            let m = c.mark;
            for (key, input) in [("mark", &m.mark), ("mask", &m.mask), ("table", &m.table)] {
                if !input.value().trim().is_empty() {
                    o.push_str(&format!("{key} = {}\n", quoted(input.value().trim())));
                }
            }
            for (key, input) in [("table_id", &m.table_id), ("priority", &m.priority)] {
                let v = input.value().trim();
                if !v.is_empty() {
                    let bare = v.parse::<i64>().is_ok();
                    let v = if bare { v.to_string() } else { quoted(v) };
                    o.push_str(&format!("{key} = {v}\n"));
                }
            }
            let g = c.gateway;
            o.push_str(&format!("kill_switch = {}\n", g.kill_switch));
            o.push_str(&format!("masquerade = {}\n", g.masquerade));
            o.push_str(&format!("scrub_dscp = {}\n", g.scrub_dscp));
            let rp = if g.rp_loose { "loose" } else { "keep" };
            o.push_str(&format!("rp_filter = \"{rp}\"\n"));
            if g.match_mode != crate::profile::MatchMode::Mark {
                o.push_str(&format!("match = \"{}\"\n", g.match_mode.name()));
            }
        }
    }
}

fn uplink_toml(u: &UplinkDraft) -> String {
    let mut parts = vec![format!(
        "interface = {}",
        quoted(u.interface.as_deref().unwrap_or_default())
    )];
    for (key, v) in [("via", &u.via), ("via6", &u.via6)] {
        if !v.value().trim().is_empty() {
            parts.push(format!("{key} = {}", quoted(v.value().trim())));
        }
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
