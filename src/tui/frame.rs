//! The frame around every screen: title bar (screen, step, dry-run banner),
//! the screen, a notice line and the footer of key hints computed from the
//! current state; the help overlay on top.

use super::app::App;
use super::screens;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

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
    screens::render(app, f, body);
    if let Some(n) = &app.notice {
        let width = area.width as usize;
        let text: String = if n.chars().count() > width {
            // Say that there is more rather than cutting silently.
            n.chars()
                .take(width.saturating_sub(1))
                .chain(std::iter::once('…'))
                .collect()
        } else {
            n.clone()
        };
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

fn title(app: &App, f: &mut Frame, area: Rect) {
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
    let mut all = screens::hints(app);
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
        "`w` `e` `a`",
        "Preview",
        "save the profile, export the script, apply",
    ),
    ("`r` (`y`/`n`)", "Status", "roll back the last transaction"),
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
];

fn help(app: &App, f: &mut Frame, area: Rect) {
    let w = area.width.min(72);
    let h = (KEYS.len() as u16 + 4).min(area.height);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(k, _, what)| {
            Line::from(vec![
                Span::styled(format!(" {:<22}", k.replace('`', "")), app.theme.key()),
                Span::raw(what.replace('`', "")),
            ])
        })
        .collect();
    lines.push(Line::default());
    lines.push(Line::styled(
        " Nothing is applied without an explicit confirmation on the preview.",
        app.theme.dim(),
    ));
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" Keys (Esc closes) "),
        ),
        r,
    );
}
