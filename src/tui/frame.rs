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
        all.extend([
            ("F1", "help"),
            ("F2", "learn"),
            ("F3", "status"),
            ("^C", "quit"),
        ]);
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

const HELP: &[(&str, &str)] = &[
    ("Enter", "next step (the wizard checks this one first)"),
    ("Esc", "back"),
    ("Tab / Shift-Tab", "next / previous field on a screen"),
    ("↑ ↓ / j k", "move in a list"),
    ("F1 or ?", "this help"),
    ("F2 or L", "learn mode: the DS byte bit by bit"),
    ("F3 or S", "status: what dscproute has in place, rollback"),
    ("q or Ctrl-C", "quit (q only where you are not typing)"),
];

fn help(app: &App, f: &mut Frame, area: Rect) {
    let w = area.width.min(72);
    let h = (HELP.len() as u16 + 6).min(area.height);
    let r = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    let mut lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(format!(" {k:<16}"), app.theme.key()),
                Span::raw(*what),
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
