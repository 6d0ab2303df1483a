//! Between the wizard's fields and a Profile. The draft is written as TOML
//! and read back through `Profile::parse`, so the wizard validates exactly
//! as a profile file does.

use super::app::{App, RoleChoice};
use super::screens;
use crate::profile::{GroupRef, Profile, RpFilterPolicy, TableRef};
use tui_input::Input;

fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// The draft as profile text.
pub fn toml_text(app: &App) -> String {
    let mut o = String::new();
    let dscp = app.dscp.byte.dscp().value();
    if app.role.marker() {
        o.push_str("[marker]\n");
        let group = screens::group::chosen(app).unwrap_or_default();
        o.push_str(&format!("group = {}\n", quoted(&group)));
        if screens::group::creates(app) {
            o.push_str("create_group = true\n");
        }
        o.push_str(&format!("dscp = {dscp}\n"));
    }
    if app.role.gateway() {
        let g = &app.gateway;
        o.push_str("[gateway]\n");
        o.push_str(&format!("dscp = {dscp}\n"));
        let iface = screens::gateway::chosen_link(app).unwrap_or_default();
        o.push_str(&format!("interface = {}\n", quoted(&iface)));
        for (key, input) in [("via", &g.via), ("via6", &g.via6)] {
            if !input.value().trim().is_empty() {
                o.push_str(&format!("{key} = {}\n", quoted(input.value().trim())));
            }
        }
        let m = &app.mark;
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
    }
    o
}

pub fn profile(app: &App) -> Result<Profile, String> {
    Profile::parse(&toml_text(app), "wizard").map_err(|e| e.message)
}

/// Fill the wizard from a profile (`--profile FILE`).
pub fn preload(app: &mut App, p: &Profile) {
    app.role = match (&p.marker, &p.gateway) {
        (Some(_), Some(_)) => RoleChoice::Both,
        (None, Some(_)) => RoleChoice::Gateway,
        _ => RoleChoice::Client,
    };
    if let Some(m) = &p.marker {
        let g = match &m.group {
            GroupRef::Name(n) => n.clone(),
            GroupRef::Gid(g) => g.to_string(),
        };
        app.group.input = Input::new(g);
        app.group.create = m.create_group;
        app.dscp = super::app::DscpState::new(m.dscp);
    }
    if let Some(g) = &p.gateway {
        app.dscp = super::app::DscpState::new(g.dscp);
        let gw = &mut app.gateway;
        gw.wanted = Some(g.interface.clone());
        gw.via = Input::new(g.via.map(|v| v.to_string()).unwrap_or_default());
        gw.via6 = Input::new(g.via6.map(|v| v.to_string()).unwrap_or_default());
        gw.kill_switch = g.kill_switch;
        gw.masquerade = g.masquerade;
        gw.scrub_dscp = g.scrub_dscp;
        gw.rp_loose = g.rp_filter == RpFilterPolicy::Loose;
        let m = &mut app.mark;
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
}
