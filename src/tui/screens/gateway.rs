//! Screen 5 (gateway role): the VPN interface, its next hops, and the
//! options, each with a one-line why.

use super::{Handled, Hint};
use crate::probe::Link;
use crate::tui::app::App;
use crate::tui::widgets::field;
use ratatui::Frame;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};
use tui_input::backend::crossterm::EventHandler;

const OPTIONS: [(&str, &str); 4] = [
    (
        "kill switch",
        "VPN down: marked traffic is refused, never sent via ISP",
    ),
    (
        "masquerade",
        "source NAT to the VPN address, so replies come back",
    ),
    (
        "scrub DSCP",
        "DSCP back to 0 on the VPN: the signal stays private",
    ),
    (
        "loose rp_filter",
        "2 on the VPN link if strict: replies arrive unmarked there",
    ),
];
const FOCI: usize = 3 + OPTIONS.len();

/// The profile's interface when this host does not have it (the VPN is
/// down): kept, listed first and shown as missing, never swapped silently.
pub fn missing(app: &App) -> Option<&str> {
    let facts = app.facts.as_ref()?;
    app.gateway
        .wanted
        .as_deref()
        .filter(|w| facts.link(w).is_none())
}

/// The list the admin picks from: the missing interface (if any), then the
/// host's links. `None` marks the missing one.
fn entries(app: &App) -> Vec<(&str, Option<&Link>)> {
    let links = app
        .facts
        .as_ref()
        .map(|f| f.links.as_slice())
        .unwrap_or_default();
    missing(app)
        .map(|m| (m, None))
        .into_iter()
        .chain(links.iter().map(|l| (l.name.as_str(), Some(l))))
        .collect()
}

pub fn chosen_link(app: &App) -> Option<String> {
    app.facts.as_ref()?;
    entries(app)
        .get(app.gateway.link)
        .map(|(name, _)| name.to_string())
        .or_else(|| app.gateway.wanted.clone())
}

pub fn facts_arrived(app: &mut App) {
    let Some(facts) = &app.facts else { return };
    let pick = match &app.gateway.wanted {
        // The profile's choice, present or not (then it is entry 0).
        Some(w) => facts.links.iter().position(|l| &l.name == w).unwrap_or(0),
        // Otherwise prefer a tunnel-looking interface, then anything but lo.
        None => facts
            .links
            .iter()
            .position(|l| l.name.starts_with("wg") || l.name.starts_with("tun"))
            .or_else(|| facts.links.iter().position(|l| l.name != "lo"))
            .unwrap_or(0),
    };
    app.gateway.link = pick;
}

fn option(app: &App, i: usize) -> bool {
    let g = &app.gateway;
    [g.kill_switch, g.masquerade, g.scrub_dscp, g.rp_loose][i]
}

fn toggle(app: &mut App, i: usize) {
    let g = &mut app.gateway;
    let v = [
        &mut g.kill_switch,
        &mut g.masquerade,
        &mut g.scrub_dscp,
        &mut g.rp_loose,
    ];
    let b = v.into_iter().nth(i).expect("four options");
    *b = !*b;
}

fn findings(app: &App) -> Vec<String> {
    let concerns = |s: &String| {
        ["interface", "via", "point-to-point", "on-link"]
            .iter()
            .any(|k| s.contains(k))
    };
    match app.plan() {
        Ok(p) => p.errors.into_iter().filter(concerns).collect(),
        Err(e) => vec![e],
    }
}

pub fn validate(app: &App) -> Result<(), String> {
    match findings(app).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub fn key(app: &mut App, key: KeyEvent) -> Handled {
    let links = entries(app).len();
    let g = &mut app.gateway;
    match (g.focus, key.code) {
        (_, KeyCode::Tab) => g.focus = (g.focus + 1) % FOCI,
        (_, KeyCode::BackTab) => g.focus = (g.focus + FOCI - 1) % FOCI,
        (_, KeyCode::Enter | KeyCode::Esc) => return Handled::No,
        (0, KeyCode::Up | KeyCode::Char('k')) => g.link = g.link.saturating_sub(1),
        (0, KeyCode::Down | KeyCode::Char('j')) => {
            g.link = (g.link + 1).min(links.saturating_sub(1))
        }
        (1, _) => {
            if g.via.handle_event(&Event::Key(key)).is_none() {
                return Handled::No;
            }
        }
        (2, _) => {
            if g.via6.handle_event(&Event::Key(key)).is_none() {
                return Handled::No;
            }
        }
        (n, KeyCode::Char(' ')) if n >= 3 => toggle(app, n - 3),
        (_, KeyCode::Down | KeyCode::Char('j')) => g.focus = (g.focus + 1) % FOCI,
        (_, KeyCode::Up | KeyCode::Char('k')) => g.focus = (g.focus + FOCI - 1) % FOCI,
        _ => return Handled::No,
    }
    app.notice = None;
    Handled::done()
}

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let links = entries(app);
    let list_h = (links.len() as u16 + 2).clamp(3, 8);
    let [list, via, via6, opts, errs] = Layout::vertical([
        Constraint::Length(list_h),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(OPTIONS.len() as u16 + 1),
        Constraint::Min(0),
    ])
    .areas(area);
    let g = &app.gateway;
    let rows = list.height.saturating_sub(2) as usize;
    let first = g.link.saturating_sub(rows.saturating_sub(1));
    let mut lines = Vec::new();
    for (i, (name, link)) in links.iter().enumerate().skip(first).take(rows) {
        let sel = i == g.link;
        let (state, detail) = match link {
            Some(l) => (
                l.state.as_str(),
                l.addrs
                    .iter()
                    .map(|a| format!("{}/{}", a.local, a.prefixlen))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            None => (
                "MISSING",
                "not on this host: bring the VPN up first".to_string(),
            ),
        };
        let text = format!(
            "{} {name:<12} {state:<9} {detail}",
            if sel { "▸" } else { " " },
        );
        let style = match (sel, link) {
            (true, _) => t.selected(),
            (false, None) => t.warning(),
            (false, Some(_)) => ratatui::style::Style::new(),
        };
        lines.push(Line::styled(text, style));
    }
    if app.facts.is_none() {
        lines.push(Line::styled("  reading the host…", t.dim()));
    }
    let border = if g.focus == 0 {
        t.focus_border()
    } else {
        ratatui::style::Style::new()
    };
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(border)
                .title(" VPN interface "),
        ),
        list,
    );
    field::render(
        f,
        via,
        t,
        "IPv4 via",
        &g.via,
        g.focus == 1,
        "next hop, e.g. 10.8.0.1 (empty: point-to-point)",
    );
    field::render(
        f,
        via6,
        t,
        "IPv6 via",
        &g.via6,
        g.focus == 2,
        "next hop, e.g. fd00::1 (empty: IPv6 blocked)",
    );
    let mut lines = vec![Line::default()];
    for (i, (name, why)) in OPTIONS.iter().enumerate() {
        let on = option(app, i);
        let focused = g.focus == 3 + i;
        let text = format!(
            "{} [{}] {name:<16}{why}",
            if focused { "▸" } else { " " },
            if on { "x" } else { " " }
        );
        let text: String = text.chars().take(area.width as usize).collect();
        lines.push(Line::styled(
            text,
            if focused {
                t.key()
            } else {
                ratatui::style::Style::new()
            },
        ));
    }
    f.render_widget(Paragraph::new(lines), opts);
    let lines: Vec<Line> = findings(app)
        .iter()
        .flat_map(|e| field::message_lines(t.error(), "✗", e, errs.width))
        .collect();
    f.render_widget(Paragraph::new(lines), errs);
}

pub fn hints(app: &App) -> Vec<Hint> {
    match app.gateway.focus {
        0 => vec![("↑↓", "interface"), ("Tab", "field"), ("Enter", "next")],
        1 | 2 => vec![("type", "edit"), ("Tab", "field"), ("Enter", "next")],
        _ => vec![("Space", "toggle"), ("Tab/↑↓", "field"), ("Enter", "next")],
    }
}
