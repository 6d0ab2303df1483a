//! The wizard's answers (the draft) and how they become a Profile. The
//! draft is written as TOML and read back through `Profile::parse`, so the
//! wizard validates exactly as a profile file does. Each answer is written
//! by the screen that asks for it; every screen may read the draft.

use crate::probe::{Group, HostFacts, Link};
use crate::profile::{GroupRef, HealthCheck, MatchMode, Profile, RpFilterPolicy, TableRef, Who};
use crate::tos::Dscp;
use tui_input::Input;

mod classes;
pub use classes::{ClassDraft, ClassView, ClassesDraft, UplinkDraft, uplink_label};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RoleChoice {
    #[default]
    Client,
    Gateway,
    Both,
}

impl RoleChoice {
    pub const ALL: [RoleChoice; 3] = [RoleChoice::Client, RoleChoice::Gateway, RoleChoice::Both];

    pub fn marker(self) -> bool {
        matches!(self, RoleChoice::Client | RoleChoice::Both)
    }

    pub fn gateway(self) -> bool {
        matches!(self, RoleChoice::Gateway | RoleChoice::Both)
    }
}

/// Which `[marker]` key the Who step writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WhoKind {
    #[default]
    Group,
    User,
    Unit,
    Cgroup,
}

impl WhoKind {
    pub const ALL: [WhoKind; 4] = [
        WhoKind::Group,
        WhoKind::User,
        WhoKind::Unit,
        WhoKind::Cgroup,
    ];

    /// The profile key, as the tabs show it.
    pub fn name(self) -> &'static str {
        match self {
            WhoKind::Group => "group",
            WhoKind::User => "user",
            WhoKind::Unit => "unit",
            WhoKind::Cgroup => "cgroup",
        }
    }

    /// The next (or, `back`, previous) kind, wrapping around.
    pub fn cycle(self, back: bool) -> WhoKind {
        let i = WhoKind::ALL.iter().position(|k| *k == self).unwrap_or(0);
        let n = WhoKind::ALL.len();
        WhoKind::ALL[if back { (i + n - 1) % n } else { (i + 1) % n }]
    }
}

/// The Who step's answers besides the group: which kind, and a field for
/// each other kind (switching kinds keeps what was typed in each).
#[derive(Debug, Default)]
pub struct WhoDraft {
    pub kind: WhoKind,
    /// A user name or uid.
    pub user: Input,
    /// A unit typed, or the filter of the running units.
    pub unit: Input,
    /// The running unit moved to in the list (↓), by name; None while the
    /// keyboard is in the field.
    pub unit_pick: Option<(usize, String)>,
    /// A path below the cgroup v2 root.
    pub cgroup: Input,
}

impl WhoDraft {
    /// The unit the wizard will use: the one picked in the list, else the
    /// name typed.
    pub fn unit_name(&self) -> String {
        match &self.unit_pick {
            Some((_, name)) => name.clone(),
            None => self.unit.value().trim().to_string(),
        }
    }
}

/// The client's group: typed, or chosen from the host's groups.
#[derive(Debug, Default)]
pub struct GroupDraft {
    /// Typed filter, or a group name / gid of one's own.
    pub input: Input,
    /// Index into the filtered list, once the admin moved into it (↓);
    /// None while the keyboard is in the field.
    pub selected: Option<usize>,
    /// Create the group as a plan step when it does not exist.
    pub create: bool,
}

/// What the group answer stands for. Only an exact name or gid, or an entry
/// the admin moved to in the list, is a group of this host: a partial match
/// is never taken silently.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice<'a> {
    Existing(&'a Group),
    /// A gid with no group on this host (processes can still run with it).
    Gid(u32),
    /// A name that is no group here: created by the plan with Ctrl-G.
    New(String),
}

impl GroupDraft {
    /// Groups matching the filter: exact name first, then by name.
    pub fn filtered<'a>(&self, facts: Option<&'a HostFacts>) -> Vec<&'a Group> {
        let Some(facts) = facts else {
            return Vec::new();
        };
        let q = self.input.value().trim().to_lowercase();
        let mut v: Vec<&Group> = facts
            .groups
            .iter()
            .filter(|g| {
                q.is_empty()
                    || g.name.to_lowercase().contains(&q)
                    || g.gid.to_string().starts_with(&q)
            })
            .collect();
        v.sort_by_key(|g| (g.name != q && g.gid.to_string() != q, g.name.clone()));
        v
    }

    pub fn choice<'a>(&self, facts: Option<&'a HostFacts>) -> Option<Choice<'a>> {
        if let Some(i) = self.selected {
            return self.filtered(facts).get(i).map(|g| Choice::Existing(g));
        }
        let typed = self.input.value().trim();
        if typed.is_empty() {
            return None;
        }
        let gid = typed.parse::<u32>().ok();
        let exact = facts.and_then(|f| {
            f.group_by_name(typed)
                .or_else(|| gid.and_then(|g| f.group_by_gid(g)))
        });
        Some(match (exact, gid) {
            (Some(g), _) => Choice::Existing(g),
            (None, Some(g)) => Choice::Gid(g),
            (None, None) => Choice::New(typed.to_string()),
        })
    }

    /// The group as the profile names it (a gid typed as a number stays a
    /// number).
    pub fn chosen(&self, facts: Option<&HostFacts>) -> Option<String> {
        self.choice(facts).map(|c| match c {
            Choice::Existing(g)
                if self.selected.is_none() && self.input.value().trim() == g.gid.to_string() =>
            {
                g.gid.to_string()
            }
            Choice::Existing(g) => g.name.clone(),
            Choice::Gid(g) => g.to_string(),
            Choice::New(n) => n,
        })
    }

    /// Will the plan create the chosen group?
    pub fn creates(&self, facts: Option<&HostFacts>) -> bool {
        self.create && matches!(self.choice(facts), Some(Choice::New(_)))
    }

    /// The chosen group as shown on every screen after the group screen:
    /// its name and gid (`torrent (gid 1001)`), or what it is when it is no
    /// group here.
    pub fn label(&self, facts: Option<&HostFacts>) -> Option<String> {
        self.choice(facts).map(|c| match c {
            Choice::Existing(g) => format!("{} (gid {})", g.name, g.gid),
            Choice::Gid(g) => format!("{g} (a gid with no group on this host)"),
            Choice::New(n) if self.create => format!("{n} (new: the plan creates it)"),
            Choice::New(n) => format!("{n} (no such group)"),
        })
    }
}

/// The gateway's mark-and-table answers: text fields in focus order.
#[derive(Debug, Default)]
pub struct MarkDraft {
    pub mark: Input,
    pub mask: Input,
    pub table: Input,
    pub table_id: Input,
    pub priority: Input,
}

impl MarkDraft {
    pub const FIELDS: usize = 5;

    pub fn field(&self, i: usize) -> &Input {
        match i {
            0 => &self.mark,
            1 => &self.mask,
            2 => &self.table,
            3 => &self.table_id,
            _ => &self.priority,
        }
    }

    pub fn field_mut(&mut self, i: usize) -> &mut Input {
        match i {
            0 => &mut self.mark,
            1 => &mut self.mask,
            2 => &mut self.table,
            3 => &mut self.table_id,
            _ => &mut self.priority,
        }
    }
}

/// The gateway's VPN interface, next hops and options.
#[derive(Debug)]
pub struct GatewayDraft {
    /// Index into the interface list (`entries`).
    pub link: usize,
    /// Interface named by a preloaded profile, selected once links are known.
    pub wanted: Option<String>,
    pub via: Input,
    pub via6: Input,
    pub kill_switch: bool,
    pub masquerade: bool,
    pub scrub_dscp: bool,
    pub rp_loose: bool,
    /// `match` of a preloaded profile, kept as it was (no screen edits it yet).
    pub match_mode: MatchMode,
    /// The edited uplink's `check` of a preloaded `[[class]]`, kept as it
    /// was (no screen edits it yet).
    pub check: Option<HealthCheck>,
}

impl Default for GatewayDraft {
    fn default() -> Self {
        GatewayDraft {
            link: 0,
            wanted: None,
            via: Input::default(),
            via6: Input::default(),
            kill_switch: true,
            masquerade: true,
            scrub_dscp: true,
            rp_loose: true,
            match_mode: MatchMode::Mark,
            check: None,
        }
    }
}

impl GatewayDraft {
    /// The profile's interface when this host does not have it (the VPN is
    /// down): kept, listed first and shown as missing, never swapped silently.
    pub fn missing(&self, facts: Option<&HostFacts>) -> Option<&str> {
        let facts = facts?;
        self.wanted.as_deref().filter(|w| facts.link(w).is_none())
    }

    /// The list the admin picks from: the missing interface (if any), then
    /// the host's links. `None` marks the missing one.
    pub fn entries<'a>(&'a self, facts: Option<&'a HostFacts>) -> Vec<(&'a str, Option<&'a Link>)> {
        let links = facts.map(|f| f.links.as_slice()).unwrap_or_default();
        self.missing(facts)
            .map(|m| (m, None))
            .into_iter()
            .chain(links.iter().map(|l| (l.name.as_str(), Some(l))))
            .collect()
    }

    pub fn chosen_link(&self, facts: Option<&HostFacts>) -> Option<String> {
        facts?;
        self.entries(facts)
            .get(self.link)
            .map(|(name, _)| name.to_string())
            .or_else(|| self.wanted.clone())
    }

    /// The facts are in: the profile's interface (present or not, then it
    /// is entry 0), else a tunnel-looking one, else anything but lo.
    pub fn pick_link(&self, facts: &HostFacts) -> usize {
        match &self.wanted {
            Some(w) => facts.links.iter().position(|l| &l.name == w).unwrap_or(0),
            None => facts
                .links
                .iter()
                .position(|l| l.name.starts_with("wg") || l.name.starts_with("tun"))
                .or_else(|| facts.links.iter().position(|l| l.name != "lo"))
                .unwrap_or(0),
        }
    }
}

/// Everything the wizard has been told so far.
#[derive(Debug)]
pub struct Draft {
    pub role: RoleChoice,
    pub group: GroupDraft,
    /// Whom the client marks: the kind, and the user / unit / cgroup fields.
    pub who: WhoDraft,
    pub dscp: Dscp,
    pub mark: MarkDraft,
    pub gateway: GatewayDraft,
    /// The profile's netfilter backend, kept as loaded (no screen sets it yet).
    pub backend: crate::profile::Backend,
    /// The gateway's classes; the edited one lives in `dscp`, `mark` and
    /// `gateway` above.
    pub classes: ClassesDraft,
}

impl Default for Draft {
    fn default() -> Self {
        Draft {
            role: RoleChoice::default(),
            group: GroupDraft::default(),
            who: WhoDraft::default(),
            dscp: Dscp::new(7).expect("7 is a DSCP"),
            mark: MarkDraft::default(),
            gateway: GatewayDraft::default(),
            backend: crate::profile::Backend::default(),
            classes: ClassesDraft::default(),
        }
    }
}

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl Draft {
    /// The wizard filled from a profile (`--profile FILE`).
    pub fn from_profile(p: &Profile) -> Draft {
        let mut d = Draft {
            role: match (&p.marker, &p.gateway) {
                (Some(_), Some(_)) => RoleChoice::Both,
                (None, Some(_)) => RoleChoice::Gateway,
                _ => RoleChoice::Client,
            },
            backend: p.backend,
            ..Draft::default()
        };
        if let Some(m) = &p.marker {
            match &m.who {
                Who::Group(g) => {
                    d.group.input = Input::new(match g {
                        GroupRef::Name(n) => n.clone(),
                        GroupRef::Gid(g) => g.to_string(),
                    });
                    d.group.create = m.create_group;
                }
                Who::User(u) => {
                    d.who.kind = WhoKind::User;
                    d.who.user = Input::new(u.to_string());
                }
                Who::Unit(u) => {
                    d.who.kind = WhoKind::Unit;
                    d.who.unit = Input::new(u.clone());
                }
                Who::Cgroup(c) => {
                    d.who.kind = WhoKind::Cgroup;
                    d.who.cgroup = Input::new(c.clone());
                }
            }
            d.dscp = m.dscp;
        }
        if let Some(g) = &p.gateway {
            d.dscp = g.dscp;
            let gw = &mut d.gateway;
            gw.wanted = Some(g.interface.clone());
            gw.via = Input::new(g.via.map(|v| v.to_string()).unwrap_or_default());
            gw.via6 = Input::new(g.via6.map(|v| v.to_string()).unwrap_or_default());
            gw.kill_switch = g.kill_switch;
            gw.masquerade = g.masquerade;
            gw.scrub_dscp = g.scrub_dscp;
            gw.rp_loose = g.rp_filter == RpFilterPolicy::Loose;
            gw.match_mode = g.match_mode;
            let m = &mut d.mark;
            m.mark = Input::new(g.mark.map(|v| format!("{v:#x}")).unwrap_or_default());
            m.mask = Input::new(g.mask.map(|v| format!("{v:#x}")).unwrap_or_default());
            m.table = Input::new(match &g.table {
                Some(TableRef::Name(n)) => n.clone(),
                Some(TableRef::Id(i)) => i.to_string(),
                None => String::new(),
            });
            m.table_id = Input::new(g.table_id.map(|v| v.to_string()).unwrap_or_default());
            m.priority = Input::new(g.priority.map(|v| v.to_string()).unwrap_or_default());
        }
        if !p.classes.is_empty() {
            d.role = if p.marker.is_some() {
                RoleChoice::Both
            } else {
                RoleChoice::Gateway
            };
            d.load_classes(p);
        }
        d
    }

    /// The draft as profile text (the group and interface as they resolve
    /// against `facts`).
    pub fn toml_text(&self, facts: Option<&HostFacts>) -> String {
        let mut o = String::new();
        if self.backend != crate::profile::Backend::default() {
            o.push_str(&format!("backend = \"{}\"\n", self.backend.name()));
        }
        let dscp = self.dscp.value();
        if self.role.marker() {
            o.push_str("[marker]\n");
            o.push_str(&self.who_line(facts));
            if self.who.kind == WhoKind::Group && self.group.creates(facts) {
                o.push_str("create_group = true\n");
            }
            let dscp = self.marker_dscp().map_or(dscp, |d| d.value());
            o.push_str(&format!("dscp = {dscp}\n"));
        }
        if self.role.gateway() && !self.is_plain_gateway() {
            self.classes_toml(facts, &mut o);
        } else if self.role.gateway() {
            let g = &self.gateway;
            o.push_str("[gateway]\n");
            o.push_str(&format!("dscp = {dscp}\n"));
            let iface = g.chosen_link(facts).unwrap_or_default();
            o.push_str(&format!("interface = {}\n", quoted(&iface)));
            for (key, input) in [("via", &g.via), ("via6", &g.via6)] {
                if !input.value().trim().is_empty() {
                    o.push_str(&format!("{key} = {}\n", quoted(input.value().trim())));
                }
            }
            let m = &self.mark;
            for (key, input) in [("mark", &m.mark), ("mask", &m.mask), ("table", &m.table)] {
                if !input.value().trim().is_empty() {
                    o.push_str(&format!("{key} = {}\n", quoted(input.value().trim())));
                }
            }
            for (key, input) in [("table_id", &m.table_id), ("priority", &m.priority)] {
                let v = input.value().trim();
                if !v.is_empty() {
                    // Numbers go bare; anything else is quoted so the profile reader names it.
                    let bare = v.parse::<i64>().is_ok();
                    o.push_str(&format!(
                        "{key} = {}\n",
                        if bare { v.to_string() } else { quoted(v) }
                    ));
                }
            }
            o.push_str(&format!("kill_switch = {}\n", g.kill_switch));
            o.push_str(&format!("masquerade = {}\n", g.masquerade));
            o.push_str(&format!("scrub_dscp = {}\n", g.scrub_dscp));
            let rp = if g.rp_loose { "loose" } else { "keep" };
            o.push_str(&format!("rp_filter = \"{rp}\"\n"));
            if g.match_mode != MatchMode::Mark {
                o.push_str(&format!("match = \"{}\"\n", g.match_mode.name()));
            }
        }
        o
    }

    /// The `[marker]` key naming whom to mark, as a TOML line. A uid goes
    /// bare (as a gid does through the group's text), anything else quoted
    /// so the profile reader judges it.
    fn who_line(&self, facts: Option<&HostFacts>) -> String {
        let w = &self.who;
        let (key, value) = match w.kind {
            WhoKind::Group => ("group", self.group.chosen(facts).unwrap_or_default()),
            WhoKind::User => ("user", w.user.value().trim().to_string()),
            WhoKind::Unit => ("unit", w.unit_name()),
            WhoKind::Cgroup => ("cgroup", w.cgroup.value().trim().to_string()),
        };
        if w.kind == WhoKind::User && value.parse::<u32>().is_ok() {
            format!("{key} = {value}\n")
        } else {
            format!("{key} = {}\n", quoted(&value))
        }
    }

    pub fn profile(&self, facts: Option<&HostFacts>) -> Result<Profile, String> {
        Profile::parse(&self.toml_text(facts), "wizard").map_err(|e| e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind of marker loaded into the wizard comes out as it went in
    /// (a user, unit or cgroup profile used to lose its marker).
    #[test]
    fn every_marker_kind_survives_the_wizard() {
        for who in [
            "group = \"torrent\"",
            "group = 1001",
            "group = \"newgrp\"\ncreate_group = true",
            "user = \"alice\"",
            "user = 1001",
            "unit = \"qbittorrent-nox.service\"",
            "cgroup = \"dscproute/downloads\"",
        ] {
            let text = format!("[marker]\n{who}\ndscp = 10\n");
            let p = Profile::parse(&text, "p.toml").unwrap();
            let d = Draft::from_profile(&p);
            assert_eq!(
                d.profile(None).as_ref(),
                Ok(&p),
                "{who}: {}",
                d.toml_text(None)
            );
        }
    }

    /// A profile loaded into the wizard and saved again keeps its backend.
    #[test]
    fn the_backend_survives_the_wizard() {
        let text = "backend = \"nft\"\n[gateway]\ndscp = 7\ninterface = \"wg0\"\n";
        let p = Profile::parse(text, "p.toml").unwrap();
        let again = Draft::from_profile(&p).toml_text(None);
        assert!(again.starts_with("backend = \"nft\"\n"), "{again}");
        let plain = Profile::parse("[marker]\ngroup = 1\ndscp = 7\n", "q.toml").unwrap();
        assert!(
            !Draft::from_profile(&plain)
                .toml_text(None)
                .contains("backend")
        );
    }
}
