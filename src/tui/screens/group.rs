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

/// What Enter on this screen takes. Only an exact name or gid, or an entry
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

pub fn choice(app: &App) -> Option<Choice<'_>> {
    if let Some(i) = app.group.selected {
        return filtered(app).get(i).map(|g| Choice::Existing(g));
    }
    let typed = app.group.input.value().trim();
    if typed.is_empty() {
        return None;
    }
    let gid = typed.parse::<u32>().ok();
    let exact = app.facts.as_ref().and_then(|f| {
        f.group_by_name(typed)
            .or_else(|| gid.and_then(|g| f.group_by_gid(g)))
    });
    Some(match (exact, gid) {
        (Some(g), _) => Choice::Existing(g),
        (None, Some(g)) => Choice::Gid(g),
        (None, None) => Choice::New(typed.to_string()),
    })
}

/// The group the wizard will use, as the profile names it (a gid typed as
/// a number stays a number).
pub fn chosen(app: &App) -> Option<String> {
    choice(app).map(|c| match c {
        Choice::Existing(g)
            if app.group.selected.is_none()
                && app.group.input.value().trim() == g.gid.to_string() =>
        {
            g.gid.to_string()
        }
        Choice::Existing(g) => g.name.clone(),
        Choice::Gid(g) => g.to_string(),
        Choice::New(n) => n,
    })
}

/// Will the plan create the chosen group?
pub fn creates(app: &App) -> bool {
    app.group.create && matches!(choice(app), Some(Choice::New(_)))
}

/// The chosen group as shown on every screen after this one: its name and
/// gid (`torrent (gid 1001)`), or what it is when it is no group here.
pub fn label(app: &App) -> Option<String> {
    choice(app).map(|c| match c {
        Choice::Existing(g) => format!("{} (gid {})", g.name, g.gid),
        Choice::Gid(g) => format!("{g} (a gid with no group on this host)"),
        Choice::New(n) if app.group.create => format!("{n} (new: the plan creates it)"),
        Choice::New(n) => format!("{n} (no such group)"),
    })
}

pub fn validate(app: &App) -> Result<(), String> {
    let Some(c) = choice(app) else {
        return Err("type a group name or gid, or choose one from the list (↓, then Enter)".into());
    };
    let Choice::New(name) = c else {
        return Ok(());
    };
    let probe = format!(
        "[marker]\ngroup = {}\ndscp = 7\n",
        toml::Value::String(name.clone())
    );
    crate::profile::Profile::parse(&probe, "wizard").map_err(|e| e.message)?;
    if app.group.create {
        return Ok(());
    }
    let similar: Vec<String> = filtered(app)
        .iter()
        .take(3)
        .map(|g| g.name.clone())
        .collect();
    let choose = match similar.len() {
        0 => String::new(),
        _ => format!(", or ↓ chooses a listed one ({})", similar.join(", ")),
    };
    Err(format!(
        "no group {name:?} on this host: Ctrl-G creates it{choose}"
    ))
}

pub fn key(app: &mut App, key: KeyEvent) -> Handled {
    let len = filtered(app).len();
    let g = &mut app.group;
    match key.code {
        KeyCode::Down | KeyCode::Tab if len > 0 => {
            g.selected = Some(g.selected.map_or(0, |i| (i + 1).min(len - 1)));
        }
        // Up from the first entry goes back to the field.
        KeyCode::Up | KeyCode::BackTab => g.selected = g.selected.and_then(|i| i.checked_sub(1)),
        KeyCode::Char('g') if key.modifiers.contains(KeyModifiers::CONTROL) => {
            g.create = !g.create;
        }
        KeyCode::Enter | KeyCode::Esc => return Handled::No,
        _ => {
            if g.input.handle_event(&Event::Key(key)).is_none() {
                return Handled::No;
            }
            g.selected = None;
        }
    }
    app.notice = None;
    Handled::done()
}

/// The lines under the field: what Enter takes, or why it takes nothing.
fn choice_lines(app: &App, width: u16) -> Vec<Line<'static>> {
    let t = &app.theme;
    if app.notice.is_some()
        && let Err(e) = validate(app)
    {
        return field::message_lines(t.error(), "✗", &e, width);
    }
    let (style, mark, text) = match choice(app) {
        None => (
            t.dim(),
            " ",
            "type a name or gid, or ↓ to choose from the list".to_string(),
        ),
        Some(Choice::New(n)) if !app.group.create => (
            t.warning(),
            "!",
            format!("no group {n:?} here: Ctrl-G creates it, ↓ chooses a listed one"),
        ),
        Some(_) => (t.ok(), "→", label(app).unwrap_or_default()),
    };
    field::message_lines(style, mark, &text, width)
}

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let [q, input, err, list, create, how] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(2),
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
    f.render_widget(Paragraph::new(choice_lines(app, err.width)), err);

    let groups = filtered(app);
    let total = app.facts.as_ref().map_or(0, |f| f.groups.len());
    let title = match &app.facts {
        None => " Groups: reading the host… ".to_string(),
        Some(_) => format!(" Groups on this host ({} of {total}) ", groups.len()),
    };
    let rows = list.height.saturating_sub(2) as usize;
    let sel = app.group.selected;
    let first = sel.map_or(0, |s| s.saturating_sub(rows.saturating_sub(1)));
    let mut lines = Vec::new();
    for (i, g) in groups.iter().enumerate().skip(first).take(rows) {
        let members = if g.members.is_empty() {
            "no extra members".to_string()
        } else {
            g.members.join(", ")
        };
        let text = format!(
            "{} {:<16} {:>6}  {}",
            if sel == Some(i) { "▸" } else { " " },
            g.name,
            g.gid,
            members
        );
        let style = if sel == Some(i) {
            t.selected()
        } else {
            ratatui::style::Style::new()
        };
        lines.push(Line::styled(text, style));
    }
    if groups.is_empty() && app.facts.is_some() {
        lines.push(Line::styled(
            "  no group matches: Ctrl-G plans the creation of the one you typed",
            t.dim(),
        ));
    }
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        list,
    );

    let name = chosen(app).unwrap_or_else(|| "GROUP".into());
    if matches!(choice(app), Some(Choice::New(_))) {
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

pub fn hints(app: &App) -> Vec<Hint> {
    let list = if app.group.selected.is_some() {
        ("↑↓", "pick")
    } else {
        ("↓", "pick")
    };
    vec![
        ("type", "filter"),
        list,
        ("^G", "create group"),
        ("Enter", "next"),
    ]
}
