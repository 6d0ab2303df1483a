//! Screen 2 (client role), "Who": whose traffic is marked — a group (picked
//! from the host's groups), a user, a running systemd unit, or a cgroup.
//! Tab changes the kind; each kind checks what is typed as it is typed.

use super::{Handled, Hint};
use crate::probe::Group;
use crate::tui::draft::{Choice, WhoKind};
use crate::tui::shared::Shared;
use crate::tui::who_lists::UnitEntry;
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
    match cx.draft().who.kind {
        WhoKind::Group => validate_group(cx),
        WhoKind::User => validate_user(cx),
        WhoKind::Unit => validate_unit(cx),
        WhoKind::Cgroup => validate_cgroup(cx),
    }
}

fn validate_group(cx: &Shared) -> Result<(), String> {
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
    if matches!(key.code, KeyCode::Tab | KeyCode::BackTab) {
        let w = &mut cx.draft_mut().who;
        w.kind = w.kind.cycle(key.code == KeyCode::BackTab);
        cx.notice = None;
        return Handled::done();
    }
    match cx.draft().who.kind {
        WhoKind::Group => group_key(cx, key),
        WhoKind::User => text_key(cx, key, |d| &mut d.who.user),
        WhoKind::Unit => unit_key(cx, key),
        WhoKind::Cgroup => text_key(cx, key, |d| &mut d.who.cgroup),
    }
}

fn group_key(cx: &mut Shared, key: KeyEvent) -> Handled {
    let len = filtered(cx).len();
    let selected = cx.draft().group.selected;
    match key.code {
        KeyCode::Down if len > 0 => {
            select(cx, Some(selected.map_or(0, |i| (i + 1).min(len - 1))));
        }
        // Up from the first entry goes back to the field.
        KeyCode::Up => select(cx, selected.and_then(|i| i.checked_sub(1))),
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

/// The kinds as tabs: `Who  [group]  user  unit  cgroup   Tab changes`.
fn tabs(cx: &Shared) -> Line<'static> {
    let t = &cx.theme;
    let now = cx.draft().who.kind;
    let mut spans = vec![Span::styled(" Mark by  ", t.title())];
    for k in WhoKind::ALL {
        if k == now {
            spans.push(Span::styled(format!("[{}]", k.name()), t.selected()));
        } else {
            spans.push(Span::styled(format!(" {} ", k.name()), t.dim()));
        }
        spans.push(Span::raw("  "));
    }
    spans.push(Span::styled("Tab", t.key()));
    spans.push(Span::styled(" changes", t.dim()));
    Line::from(spans)
}

pub fn render(cx: &Shared, f: &mut Frame, area: Rect) {
    let [q, tab_row, rest] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(0),
    ])
    .areas(area);
    f.render_widget(
        Paragraph::new(Line::styled(
            " Whose traffic goes through the VPN?",
            cx.theme.title(),
        )),
        q,
    );
    f.render_widget(Paragraph::new(tabs(cx)), tab_row);
    match cx.draft().who.kind {
        WhoKind::Group => render_group(cx, f, rest),
        WhoKind::User => render_user(cx, f, rest),
        WhoKind::Unit => render_unit(cx, f, rest),
        WhoKind::Cgroup => render_cgroup(cx, f, rest),
    }
}

fn render_group(cx: &Shared, f: &mut Frame, area: Rect) {
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
            " Pick the group its programs run as.",
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
    let w = &cx.draft().who;
    let picked = match w.kind {
        WhoKind::Group => cx.draft().group.selected.is_some(),
        _ => w.unit_pick.is_some(),
    };
    let list = if picked {
        ("↑↓", "pick")
    } else {
        ("↓", "pick")
    };
    match w.kind {
        WhoKind::Group => vec![
            ("Tab", "kind"),
            ("type", "filter"),
            list,
            ("^G", "create group"),
            ("Enter", "next"),
        ],
        WhoKind::Unit => vec![("Tab", "kind"), ("type", "filter"), list, ("Enter", "next")],
        WhoKind::User | WhoKind::Cgroup => {
            vec![("Tab", "kind"), ("type", "name"), ("Enter", "next")]
        }
    }
}

// ------------------------------------------------------------ user, unit, cgroup

/// Typing in the user or cgroup field.
fn text_key(
    cx: &mut Shared,
    key: KeyEvent,
    field: impl FnOnce(&mut crate::tui::draft::Draft) -> &mut tui_input::Input,
) -> Handled {
    if matches!(key.code, KeyCode::Enter | KeyCode::Esc) || !cx.edit_input(field, key) {
        return Handled::No;
    }
    cx.notice = None;
    Handled::done()
}

/// Running units matching the unit field.
pub fn units(cx: &Shared) -> Vec<&UnitEntry> {
    cx.who_lists.units_matching(cx.draft().who.unit.value())
}

fn unit_key(cx: &mut Shared, key: KeyEvent) -> Handled {
    let list: Vec<String> = units(cx).iter().map(|u| u.name.clone()).collect();
    let at = cx.draft().who.unit_pick.as_ref().map(|(i, _)| *i);
    let pick = |i: usize| list.get(i).map(|n| (i, n.clone()));
    match key.code {
        KeyCode::Down if !list.is_empty() => {
            let i = at.map_or(0, |i| (i + 1).min(list.len() - 1));
            cx.draft_mut().who.unit_pick = pick(i);
        }
        // Up from the first entry goes back to the field.
        KeyCode::Up if at.is_some() => {
            cx.draft_mut().who.unit_pick = at.and_then(|i| i.checked_sub(1)).and_then(pick);
        }
        KeyCode::Enter | KeyCode::Esc => return Handled::No,
        _ => {
            if !cx.edit_input(|d| &mut d.who.unit, key) {
                return Handled::No;
            }
            if cx.draft().who.unit_pick.is_some() {
                cx.draft_mut().who.unit_pick = None;
            }
        }
    }
    cx.notice = None;
    Handled::done()
}

/// The marker line as the profile reader takes it (its own error).
fn parses(key: &str, value: &str) -> Result<(), String> {
    let probe = format!(
        "[marker]\n{key} = {}\ndscp = 7\n",
        toml::Value::String(value.to_string())
    );
    crate::profile::Profile::parse(&probe, "wizard")
        .map(|_| ())
        .map_err(|e| e.message)
}

fn validate_user(cx: &Shared) -> Result<(), String> {
    let typed = cx.draft().who.user.value().trim();
    if typed.is_empty() {
        return Err("type a user name or uid: its processes are marked".into());
    }
    parses("user", typed)?;
    let numeric = typed.parse::<u32>().is_ok();
    match &cx.who_lists.users {
        Some(Ok(_)) if !numeric && cx.who_lists.user(typed).is_none() => Err(format!(
            "no user {typed:?} on this host: type an existing name, or a uid"
        )),
        _ => Ok(()),
    }
}

fn validate_unit(cx: &Shared) -> Result<(), String> {
    let name = cx.draft().who.unit_name();
    if name.is_empty() {
        return Err(
            "type a unit name (app.service, vpn.slice), or ↓ to choose a running one".into(),
        );
    }
    parses("unit", &name)
}

fn validate_cgroup(cx: &Shared) -> Result<(), String> {
    let typed = cx.draft().who.cgroup.value().trim();
    if typed.is_empty() {
        return Err("type a cgroup path below the cgroup v2 root, like dscproute/downloads".into());
    }
    parses("cgroup", typed)
}

/// The line under a field: the error after a refused Enter, else the live
/// state of what is typed.
fn status_lines(
    cx: &Shared,
    width: u16,
    live: (ratatui::style::Style, &str, String),
) -> Vec<Line<'static>> {
    let t = &cx.theme;
    if cx.notice.is_some()
        && let Err(e) = validate(cx)
    {
        return field::message_lines(t.error(), "✗", &e, width);
    }
    let (style, mark, text) = live;
    field::message_lines(style, mark, &text, width)
}

/// Question, field, status, then free rows and the how-to lines.
fn simple_layout(area: Rect, how: usize) -> [Rect; 5] {
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(2),
        Constraint::Min(0),
        Constraint::Length(how as u16),
    ])
    .areas(area)
}

fn how_lines(cx: &Shared, intro: &str, commands: &[String]) -> Vec<Line<'static>> {
    let t = &cx.theme;
    let mut o = vec![Line::styled(format!(" {intro}"), t.dim())];
    o.extend(
        commands
            .iter()
            .map(|c| Line::styled(format!("   {c}"), t.command())),
    );
    o
}

fn render_user(cx: &Shared, f: &mut Frame, area: Rect) {
    let t = &cx.theme;
    let typed = cx.draft().who.user.value().trim().to_string();
    let live = if typed.is_empty() {
        (t.dim(), " ", "a user name or uid".to_string())
    } else if let Err(e) = parses("user", &typed) {
        (t.error(), "✗", e)
    } else {
        match (&cx.who_lists.users, cx.who_lists.user(&typed)) {
            (_, Some(u)) => (t.ok(), "→", format!("{} (uid {})", u.name, u.uid)),
            (None, None) => (t.dim(), "·", "reading this host's users…".into()),
            (Some(Err(why)), None) => (t.warning(), "!", format!("not checked: {why}")),
            (Some(Ok(_)), None) if typed.parse::<u32>().is_ok() => (
                t.ok(),
                "→",
                format!("uid {typed} (no user on this host has it; processes can still run as it)"),
            ),
            (Some(Ok(_)), None) => (
                t.warning(),
                "!",
                format!("no user {typed:?} on this host: type an existing name, or a uid"),
            ),
        }
    };
    let name = if typed.is_empty() {
        "USER".into()
    } else {
        typed
    };
    let how = how_lines(
        cx,
        "Everything this user runs is marked, e.g.:",
        &[
            format!("runuser -u {name} -- CMD   ·   systemd unit: User={name}"),
            "(new connections only)".into(),
        ],
    );
    let [q, input, err, _, how_area] = simple_layout(area, how.len());
    f.render_widget(
        Paragraph::new(Line::styled(" Mark the processes of one user.", t.title())),
        q,
    );
    field::render(f, input, t, "User", &cx.draft().who.user, true, "");
    f.render_widget(Paragraph::new(status_lines(cx, err.width, live)), err);
    f.render_widget(Paragraph::new(how), how_area);
}

fn render_unit(cx: &Shared, f: &mut Frame, area: Rect) {
    let t = &cx.theme;
    let w = &cx.draft().who;
    let name = w.unit_name();
    let running = cx.who_lists.units_matching(&name);
    let found = running.first().filter(|u| u.name == name);
    let live = if name.is_empty() {
        (
            t.dim(),
            " ",
            "type to filter, or ↓ to choose a running unit".to_string(),
        )
    } else if let Err(e) = parses("unit", &name) {
        (t.error(), "✗", e)
    } else {
        match (&cx.who_lists.units, found) {
            (_, Some(u)) => (
                t.ok(),
                "→",
                format!("{} — running: {}", u.name, u.description),
            ),
            (None, _) => (t.dim(), "·", "reading the running units…".into()),
            (Some(Err(why)), _) => (
                t.warning(),
                "!",
                format!("{why}: the name typed is taken, the plan resolves it"),
            ),
            (Some(Ok(_)), None) => (
                t.warning(),
                "!",
                format!(
                    "{name} is not running now: nftables matches a unit's cgroup only while it                      runs (the plan says what to do)"
                ),
            ),
        }
    };
    let how = how_lines(
        cx,
        "Processes of the unit are marked by its cgroup; one command, in a slice:",
        &["dscproute exec -- CMD   (a scope in the marked slice)".into()],
    );
    let [q, input, err, list, how_area] = simple_layout(area, how.len());
    f.render_widget(
        Paragraph::new(Line::styled(
            " Mark a systemd service or slice (all its processes).",
            t.title(),
        )),
        q,
    );
    field::render(f, input, t, "Unit", &w.unit, true, "");
    f.render_widget(Paragraph::new(status_lines(cx, err.width, live)), err);

    let shown = units(cx);
    let title = match &cx.who_lists.units {
        None => " Running units: reading systemd… ".to_string(),
        Some(Err(_)) => " Running units: systemd is not there ".to_string(),
        Some(Ok(all)) => format!(" Running units ({} of {}) ", shown.len(), all.len()),
    };
    let rows = list.height.saturating_sub(2) as usize;
    let sel = w.unit_pick.as_ref().map(|(i, _)| *i);
    let first = sel.map_or(0, |s| s.saturating_sub(rows.saturating_sub(1)));
    let mut lines: Vec<Line> = shown
        .iter()
        .enumerate()
        .skip(first)
        .take(rows)
        .map(|(i, u)| {
            let text = format!(
                "{} {:<32} {}",
                if sel == Some(i) { "▸" } else { " " },
                u.name,
                u.description
            );
            let style = if sel == Some(i) {
                t.selected()
            } else {
                ratatui::style::Style::new()
            };
            Line::styled(text, style)
        })
        .collect();
    if let Some(Err(why)) = &cx.who_lists.units {
        lines.push(Line::styled(
            format!("  {why}: type the unit's name"),
            t.dim(),
        ));
    } else if shown.is_empty() && cx.who_lists.units.is_some() {
        lines.push(Line::styled("  no running unit matches", t.dim()));
    }
    if list.height >= 3 {
        f.render_widget(
            Paragraph::new(lines).block(Block::default().borders(Borders::ALL).title(title)),
            list,
        );
    }
    f.render_widget(Paragraph::new(how), how_area);
}

/// Where the typed cgroup lives and whether it is there: (style, mark, text).
fn cgroup_state(cx: &Shared, typed: &str) -> (ratatui::style::Style, &'static str, String) {
    let t = &cx.theme;
    let path = match crate::profile::normalize_cgroup_path(typed) {
        Ok(p) => p,
        Err(e) => return (t.error(), "✗", e),
    };
    let Some(mount) = cx.facts().and_then(|f| f.cgroup2.clone()) else {
        return (
            t.warning(),
            "!",
            "no cgroup v2 mount found on this host: nftables and iptables match cgroup v2 only"
                .into(),
        );
    };
    let full = format!("{}/{path}", mount.trim_end_matches('/'));
    // Recorded facts know only what was resolved where they were recorded.
    let exists = if cx.recorded_facts {
        cx.facts()
            .and_then(|f| f.cgroups.get(&path).copied())
            .map(|id| id.is_some())
    } else {
        Some(std::path::Path::new(&full).is_dir())
    };
    match exists {
        Some(true) => (t.ok(), "→", format!("{full} exists")),
        Some(false) => (
            t.warning(),
            "!",
            format!("{full} does not exist: create it (mkdir) before you apply"),
        ),
        None => (
            t.dim(),
            "·",
            format!("{full}: not checked (recorded facts)"),
        ),
    }
}

fn render_cgroup(cx: &Shared, f: &mut Frame, area: Rect) {
    let t = &cx.theme;
    let typed = cx.draft().who.cgroup.value().trim().to_string();
    let live = if typed.is_empty() {
        (t.dim(), " ", "a path below the cgroup v2 root".to_string())
    } else {
        cgroup_state(cx, &typed)
    };
    let mount = cx
        .facts()
        .and_then(|f| f.cgroup2.clone())
        .unwrap_or_else(|| "CGROUP2".into());
    let path = crate::profile::normalize_cgroup_path(&typed).unwrap_or_else(|_| "PATH".into());
    let how = how_lines(
        cx,
        &format!("Relative to the cgroup v2 mount ({mount}). Move a process in:"),
        &[format!(
            "echo PID > {}/{path}/cgroup.procs",
            mount.trim_end_matches('/')
        )],
    );
    let [q, input, err, _, how_area] = simple_layout(area, how.len());
    f.render_widget(
        Paragraph::new(Line::styled(
            " Mark the processes of a cgroup (hosts without systemd).",
            t.title(),
        )),
        q,
    );
    field::render(f, input, t, "Cgroup", &cx.draft().who.cgroup, true, "");
    f.render_widget(Paragraph::new(status_lines(cx, err.width, live)), err);
    f.render_widget(Paragraph::new(how), how_area);
}
