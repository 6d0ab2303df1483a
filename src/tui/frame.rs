//! The frame around every screen: title bar (screen, step, dry-run banner),
//! the screen, a notice line and the footer of key hints computed from the
//! current state; the help overlay on top.

use super::app::App;
use super::screens::{self, Hint};
use super::shared::{ScreenId, Shared};
use super::widgets::text::{clip, wrap};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

/// The screen on show draws itself with its own state and the shared one.
fn screen(app: &App, f: &mut Frame, area: Rect) {
    let cx = &app.shared;
    match cx.screen {
        ScreenId::Role => screens::role::render(cx, f, area),
        ScreenId::Group => screens::group::render(cx, f, area),
        ScreenId::Dscp => screens::dscp::render(&app.dscp, cx, f, area),
        ScreenId::Mark => screens::mark::render(&app.mark, cx, f, area),
        ScreenId::Gateway => screens::gateway::render(&app.gateway, cx, f, area),
        ScreenId::Preview => screens::preview::render(&app.preview, cx, f, area),
        ScreenId::Apply => screens::apply::render(&app.apply, cx, f, area),
        ScreenId::Status => screens::status::render(&app.status, cx, f, area),
        ScreenId::Learn => screens::learn::render(&app.learn, cx, f, area),
    }
}

/// The screen's own key hints (the frame adds the global ones).
fn screen_hints(app: &App) -> Vec<Hint> {
    let cx = &app.shared;
    match cx.screen {
        ScreenId::Role => screens::role::hints(),
        ScreenId::Group => screens::group::hints(cx),
        ScreenId::Dscp => screens::dscp::hints(&app.dscp),
        ScreenId::Mark => screens::mark::hints(),
        ScreenId::Gateway => screens::gateway::hints(&app.gateway),
        ScreenId::Preview => screens::preview::hints(&app.preview, cx),
        ScreenId::Apply => screens::apply::hints(&app.apply, cx),
        ScreenId::Status => screens::status::hints(&app.status, cx),
        ScreenId::Learn => screens::learn::hints(&app.learn),
    }
}

pub fn render(app: &App, f: &mut Frame) {
    let area = f.area();
    let [top, body, notice, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area);
    title(app, f, top);
    screen(app, f, body);
    if let Some(n) = &app.notice {
        // Say that there is more rather than cutting silently.
        let text = clip(n, 0, area.width as usize);
        f.render_widget(
            Paragraph::new(Line::styled(text, app.theme.warning())),
            notice,
        );
    }
    hints(app, f, footer);
    if app.help {
        help(app, f, area);
    }
}

fn title(app: &Shared, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let step = match app.step_of() {
        Some((i, n)) => format!(" · step {i} of {n}"),
        None => String::new(),
    };
    let mut spans = vec![
        Span::styled(" dscproute ", t.title()),
        Span::raw(format!("· {}{step} ", app.screen.title())),
    ];
    if let Some(d) = &app.dry_run {
        spans.push(Span::styled(format!(" {} ", d.to_uppercase()), t.banner()));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn hints(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let mut all = screen_hints(app);
    // Awaiting confirmation, every key but Enter rolls back: no global keys.
    if !app.waiting_for_confirm() {
        let own_esc = all.iter().any(|(k, _)| *k == "Esc");
        // No "back" while applying or rolling back: the progress stays in view.
        let can_go_back = !app.back.is_empty() || app.step_of().is_some_and(|(i, _)| i > 1);
        if can_go_back && !own_esc && !app.busy() {
            all.push(("Esc", "back"));
        }
        if app.leaves_on_esc() {
            // `dscproute learn` alone: Esc is the way out.
            all.extend([("Esc", "quit"), ("F1", "help"), ("F3", "status")]);
        } else {
            all.extend([
                ("F1", "help"),
                ("F2", "learn"),
                ("F3", "status"),
                ("^C", "quit"),
            ]);
        }
    }
    let mut spans = Vec::new();
    let mut used = 0usize;
    for (k, what) in all {
        let len = k.chars().count() + what.chars().count() + 3;
        if used + len > area.width as usize {
            break;
        }
        used += len;
        spans.push(Span::styled(format!(" {k}"), t.key()));
        spans.push(Span::raw(format!(" {what} ")));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Every key: (key, where, what it does). The help overlay shows the key
/// and what it does; README's key table is these rows word for word (a
/// test holds it to that). Backticks are for the README.
pub const KEYS: &[(&str, &str, &str)] = &[
    ("Enter", "wizard", "next step (after checking this one)"),
    (
        "Esc",
        "everywhere",
        "back; quits `dscproute learn` started alone",
    ),
    ("Tab / Shift-Tab", "forms", "next / previous field"),
    (
        "Tab / Shift-Tab",
        "Who",
        "Who step: mark by group, user, unit or cgroup",
    ),
    ("↑ ↓ (j k)", "lists (j k where you are not typing)", "move"),
    ("`+` `-`", "DSCP, Learn", "step the value"),
    (
        "← → (h l), Space",
        "DSCP and Learn bits",
        "move over the bits, flip one",
    ),
    ("F1", "everywhere, text fields too", "help"),
    (
        "F2",
        "everywhere, text fields too",
        "learn mode: any byte, ECN bits included",
    ),
    ("F3", "everywhere, text fields too", "status and rollback"),
    (
        "`?` `L` `S`",
        "where you are not typing",
        "help, learn, status (in a field: typed)",
    ),
    (
        "`w` `e` `a` `b` `c`",
        "Preview",
        "save profile, export script, apply, backend, client recipe",
    ),
    (
        "`a` `e` `d` (`y`)",
        "Gateway: class list",
        "add a class, edit it, remove it (after `y`)",
    ),
    (
        "← → (h l), `a` `d` `<` `>`",
        "Gateway: uplinks",
        "pick an uplink; add, remove, reorder",
    ),
    ("`r` (`y`/`n`)", "Status", "roll back the whole setup"),
    ("`w`, `i`", "Status", "watch the DSCP live; next interface"),
    (
        "Ctrl-C",
        "everywhere",
        "quit; refused while a change is being applied",
    ),
    (
        "`q`",
        "where you are not typing",
        "quit, as Ctrl-C (in a field: typed)",
    ),
    (
        "Enter / any other key",
        "Apply: the confirm countdown",
        "keep the change / roll it back",
    ),
    (
        "`p`",
        "Apply: a kept change (Preview in a dry run)",
        "persist: the agent keeps it up from boot on",
    ),
];

/// Width of the key column in the help.
const KEY_COLUMN: usize = 23;

/// The help's lines for an inner width: each key with what it does, wrapped
/// under the text, and the closing note.
fn help_lines(app: &Shared, width: u16) -> Vec<Line<'static>> {
    let avail = (width as usize).saturating_sub(KEY_COLUMN).max(10);
    let mut lines = Vec::new();
    for (k, _, what) in KEYS {
        for (i, part) in wrap(&what.replace('`', ""), avail).into_iter().enumerate() {
            let key = if i == 0 {
                k.replace('`', "")
            } else {
                String::new()
            };
            lines.push(Line::from(vec![
                Span::styled(format!(" {key:<w$}", w = KEY_COLUMN - 1), app.theme.key()),
                Span::raw(part),
            ]));
        }
    }
    lines.push(Line::default());
    lines.push(Line::styled(
        clip(
            " Nothing is applied without an explicit confirmation on the preview.",
            0,
            width as usize,
        ),
        app.theme.dim(),
    ));
    lines
}

fn help(app: &Shared, f: &mut Frame, area: Rect) {
    let w = area.width.min(72);
    let h = (KEYS.len() as u16 + 4).min(area.height);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" Keys (Esc closes) ");
    let inner = block.inner(r);
    let lines = help_lines(app, inner.width);
    let rows = inner.height as usize;
    let top = app.help_scroll.draw(lines.len(), rows);
    let shown: Vec<Line> = lines.into_iter().skip(top).take(rows).collect();
    f.render_widget(Clear, r);
    f.render_widget(block, r);
    f.render_widget(Paragraph::new(shown), inner);
}
