//! Screen 2 (client role): pick the process group whose traffic is marked.

use super::{Handled, Hint};
use crate::probe::Group;
use crate::tui::app::App;
use crate::tui::widgets::field;
use ratatui::Frame;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use tui_input::backend::crossterm::EventHandler;

/// Groups matching the filter: exact name first, then by name.
pub fn filtered(app: &App) -> Vec<&Group> {
    let Some(facts) = &app.facts else {
        return Vec::new();
    };
    let q = app.group.input.value().trim().to_lowercase();
    let mut v: Vec<&Group> = facts
        .groups
        .iter()
        .filter(|g| {
            q.is_empty() || g.name.to_lowercase().contains(&q) || g.gid.to_string().starts_with(&q)
        })
        .collect();
    v.sort_by_key(|g| (g.name != q && g.gid.to_string() != q, g.name.clone()));
    v
}

/// The group the wizard will use: the selected list entry, or what was typed.
pub fn chosen(app: &App) -> Option<String> {
    let list = filtered(app);
    if let Some(g) = list.get(app.group.selected.min(list.len().saturating_sub(1))) {
        return Some(g.name.clone());
    }
    let typed = app.group.input.value().trim();
    (!typed.is_empty()).then(|| typed.to_string())
}

fn exists(app: &App, name: &str) -> bool {
    app.facts.as_ref().is_some_and(|f| {
        f.group_by_name(name).is_some()
            || name.parse().ok().and_then(|g| f.group_by_gid(g)).is_some()
    })
}

pub fn validate(app: &App) -> Result<(), String> {
    let Some(name) = chosen(app) else {
        return Err("type a group name or gid, or pick one from the list".into());
    };
    let probe = format!(
        "[marker]\ngroup = {}\ndscp = 7\n",
        toml::Value::String(name.clone())
    );
    crate::profile::Profile::parse(&probe, "wizard").map_err(|e| e.message)?;
    if !exists(app, &name) && !app.group.create && name.parse::<u32>().is_err() {
        return Err(format!(
            "group {name:?} does not exist: press Ctrl-G to create it, or pick one from the list"
        ));
    }
    Ok(())
}

pub fn key(app: &mut App, key: KeyEvent) -> Handled {
    let len = filtered(app).len();
    match key.code {
        KeyCode::Up => app.group.selected = app.group.selected.saturating_sub(1),
        KeyCode::Down | KeyCode::Tab => {
            app.group.selected = (app.group.selected + 1).min(len.saturating_sub(1));
        }
        KeyCode::BackTab => app.group.selected = app.group.selected.saturating_sub(1),
        KeyCode::Char('g') if key.modifiers.contains(KeyModifiers::CONTROL) => {
            app.group.create = !app.group.create;
        }
        KeyCode::Enter | KeyCode::Esc => return Handled::No,
        _ => {
            if app.group.input.handle_event(&Event::Key(key)).is_none() {
                return Handled::No;
            }
            app.group.selected = 0;
        }
    }
    app.notice = None;
    Handled::done()
}

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let [q, input, err, list, create, how] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(4),
        Constraint::Length(1),
        Constraint::Length(3),
    ])
    .areas(area);
    f.render_widget(
        Paragraph::new(Line::styled(
            " Whose traffic goes through the VPN? Pick the group its programs run as.",
            t.title(),
        )),
        q,
    );
    field::render(
        f,
        input,
        t,
        "Group",
        &app.group.input,
        true,
        "type to filter, or a new name / gid",
    );
    let error = validate(app).err().filter(|_| app.notice.is_some());
    f.render_widget(Paragraph::new(field::error_line(t, error.as_deref())), err);

    let groups = filtered(app);
    let total = app.facts.as_ref().map_or(0, |f| f.groups.len());
    let title = match &app.facts {
        None => " Groups: reading the host… ".to_string(),
        Some(_) => format!(" Groups on this host ({} of {total}) ", groups.len()),
    };
    let rows = list.height.saturating_sub(2) as usize;
    let sel = app.group.selected.min(groups.len().saturating_sub(1));
    let first = sel.saturating_sub(rows.saturating_sub(1));
    let mut lines = Vec::new();
    for (i, g) in groups.iter().enumerate().skip(first).take(rows) {
        let members = if g.members.is_empty() {
            "no extra members".to_string()
        } else {
            g.members.join(", ")
        };
        let text = format!(
            "{} {:<16} {:>6}  {}",
            if i == sel { "▸" } else { " " },
            g.name,
            g.gid,
            members
        );
        let style = if i == sel {
            t.selected()
        } else {
            ratatui::style::Style::new()
        };
        lines.push(Line::styled(text, style));
    }
    if groups.is_empty() && app.facts.is_some() {
        lines.push(Line::styled(
            "  no group matches: Enter uses what you typed",
            t.dim(),
        ));
    }
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        list,
    );

    let name = chosen(app).unwrap_or_else(|| "GROUP".into());
    if !exists(app, &name) && name.parse::<u32>().is_err() && chosen(app).is_some() {
        let mark = if app.group.create { "[x]" } else { "[ ]" };
        let line = Line::from(vec![
            Span::raw(format!(" {mark} create group {name:?} as a plan step ")),
            Span::styled("(Ctrl-G)", t.key()),
        ]);
        f.render_widget(Paragraph::new(line), create);
    }
    let how_lines = vec![
        Line::styled(" The program must run with this group, e.g.:", t.dim()),
        Line::from(Span::styled(
            format!("   sg {name} -c CMD   ·   setpriv --regid {name} --clear-groups CMD"),
            t.command(),
        )),
        Line::from(Span::styled(
            format!("   systemd unit: Group={name}   (new connections only)"),
            t.command(),
        )),
    ];
    f.render_widget(Paragraph::new(how_lines), how);
}

pub fn hints(_app: &App) -> Vec<Hint> {
    vec![
        ("type", "filter"),
        ("↑↓", "pick"),
        ("^G", "create group"),
        ("Enter", "next"),
    ]
}
