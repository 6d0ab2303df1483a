//! Screen 2 (client role): pick the process group whose traffic is marked.

use super::{Handled, Hint};
use crate::probe::Group;
use crate::tui::draft::Choice;
use crate::tui::shared::Shared;
use crate::tui::widgets::field;
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

/// Groups matching the filter: exact name first, then by name.
pub fn filtered(cx: &Shared) -> Vec<&Group> {
    cx.draft().group.filtered(cx.facts())
}

/// What Enter on this screen takes.
pub fn choice(cx: &Shared) -> Option<Choice<'_>> {
    cx.draft().group.choice(cx.facts())
}

/// The group the wizard will use, as the profile names it.
pub fn chosen(cx: &Shared) -> Option<String> {
    cx.draft().group.chosen(cx.facts())
}

/// The chosen group by name and gid, as every later screen shows it.
pub fn label(cx: &Shared) -> Option<String> {
    cx.draft().group.label(cx.facts())
}

pub fn validate(cx: &Shared) -> Result<(), String> {
    let Some(c) = choice(cx) else {
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
    if cx.draft().group.create {
        return Ok(());
    }
    let similar: Vec<String> = filtered(cx)
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

/// Move the selection in the list (None: back in the field).
fn select(cx: &mut Shared, selected: Option<usize>) {
    if cx.draft().group.selected != selected {
        cx.draft_mut().group.selected = selected;
    }
}

pub fn key(cx: &mut Shared, key: KeyEvent) -> Handled {
    let len = filtered(cx).len();
    let selected = cx.draft().group.selected;
    match key.code {
        KeyCode::Down | KeyCode::Tab if len > 0 => {
            select(cx, Some(selected.map_or(0, |i| (i + 1).min(len - 1))));
        }
        // Up from the first entry goes back to the field.
        KeyCode::Up | KeyCode::BackTab => select(cx, selected.and_then(|i| i.checked_sub(1))),
        KeyCode::Char('g') if key.modifiers.contains(KeyModifiers::CONTROL) => {
            let g = &mut cx.draft_mut().group;
            g.create = !g.create;
        }
        KeyCode::Enter | KeyCode::Esc => return Handled::No,
        _ => {
            if !cx.edit_input(|d| &mut d.group.input, key) {
                return Handled::No;
            }
            select(cx, None);
        }
    }
    cx.notice = None;
    Handled::done()
}

/// The lines under the field: what Enter takes, or why it takes nothing.
fn choice_lines(cx: &Shared, width: u16) -> Vec<Line<'static>> {
    let t = &cx.theme;
    if cx.notice.is_some()
        && let Err(e) = validate(cx)
    {
        return field::message_lines(t.error(), "✗", &e, width);
    }
    let (style, mark, text) = match choice(cx) {
        None => (
            t.dim(),
            " ",
            "type a name or gid, or ↓ to choose from the list".to_string(),
        ),
        Some(Choice::New(n)) if !cx.draft().group.create => (
            t.warning(),
            "!",
            format!("no group {n:?} here: Ctrl-G creates it, ↓ chooses a listed one"),
        ),
        Some(_) => (t.ok(), "→", label(cx).unwrap_or_default()),
    };
    field::message_lines(style, mark, &text, width)
}

pub fn render(cx: &Shared, f: &mut Frame, area: Rect) {
    let t = &cx.theme;
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
        &cx.draft().group.input,
        true,
        "type to filter, or a new name / gid",
    );
    f.render_widget(Paragraph::new(choice_lines(cx, err.width)), err);

    let groups = filtered(cx);
    let total = cx.facts().map_or(0, |f| f.groups.len());
    let title = match cx.facts() {
        None => " Groups: reading the host… ".to_string(),
        Some(_) => format!(" Groups on this host ({} of {total}) ", groups.len()),
    };
    let rows = list.height.saturating_sub(2) as usize;
    let sel = cx.draft().group.selected;
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
    if groups.is_empty() && cx.facts().is_some() {
        lines.push(Line::styled(
            "  no group matches: Ctrl-G plans the creation of the one you typed",
            t.dim(),
        ));
    }
    f.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
        list,
    );

    let name = chosen(cx).unwrap_or_else(|| "GROUP".into());
    if matches!(choice(cx), Some(Choice::New(_))) {
        let mark = if cx.draft().group.create {
            "[x]"
        } else {
            "[ ]"
        };
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

pub fn hints(cx: &Shared) -> Vec<Hint> {
    let list = if cx.draft().group.selected.is_some() {
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
