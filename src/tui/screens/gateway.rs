//! Screen 5 (gateway role): the VPN interface, its next hops, and the
//! options, each with a one-line why.

use super::{Handled, Hint};
use crate::tui::draft::GatewayDraft;
use crate::tui::shared::Shared;
use crate::tui::widgets::field;
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph};

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

/// This screen's own state: what has the keyboard (the values are the
/// draft's).
#[derive(Debug, Default)]
pub struct GatewayState {
    /// 0 links, 1 via, 2 via6, 3..=6 the options.
    pub focus: usize,
}

/// The interface the wizard will use.
pub fn chosen_link(cx: &Shared) -> Option<String> {
    cx.draft().gateway.chosen_link(cx.facts())
}

/// The facts are in: select an interface of this host.
pub fn facts_arrived(cx: &mut Shared) {
    let Some(facts) = cx.facts() else { return };
    let link = cx.draft().gateway.pick_link(facts);
    cx.draft_mut().gateway.link = link;
}

fn option(g: &GatewayDraft, i: usize) -> bool {
    [g.kill_switch, g.masquerade, g.scrub_dscp, g.rp_loose][i]
}

fn toggle(g: &mut GatewayDraft, i: usize) {
    let v = [
        &mut g.kill_switch,
        &mut g.masquerade,
        &mut g.scrub_dscp,
        &mut g.rp_loose,
    ];
    let b = v.into_iter().nth(i).expect("four options");
    *b = !*b;
}

fn findings(cx: &Shared) -> Vec<String> {
    let concerns = |s: &String| {
        ["interface", "via", "point-to-point", "on-link"]
            .iter()
            .any(|k| s.contains(k))
    };
    match cx.plan() {
        Ok(p) => p.errors.iter().filter(|e| concerns(e)).cloned().collect(),
        Err(e) => vec![e.clone()],
    }
}

pub fn validate(cx: &Shared) -> Result<(), String> {
    match findings(cx).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Move in the interface list (the draft changes only when the choice does).
fn select_link(cx: &mut Shared, link: usize) {
    if cx.draft().gateway.link != link {
        cx.draft_mut().gateway.link = link;
    }
}

pub fn key(s: &mut GatewayState, cx: &mut Shared, key: KeyEvent) -> Handled {
    let links = cx.draft().gateway.entries(cx.facts()).len();
    let link = cx.draft().gateway.link;
    match (s.focus, key.code) {
        (_, KeyCode::Tab) => s.focus = (s.focus + 1) % FOCI,
        (_, KeyCode::BackTab) => s.focus = (s.focus + FOCI - 1) % FOCI,
        (_, KeyCode::Enter | KeyCode::Esc) => return Handled::No,
        (0, KeyCode::Up | KeyCode::Char('k')) => select_link(cx, link.saturating_sub(1)),
        (0, KeyCode::Down | KeyCode::Char('j')) => {
            select_link(cx, (link + 1).min(links.saturating_sub(1)))
        }
        (1, _) => {
            if !cx.edit_input(|d| &mut d.gateway.via, key) {
                return Handled::No;
            }
        }
        (2, _) => {
            if !cx.edit_input(|d| &mut d.gateway.via6, key) {
                return Handled::No;
            }
        }
        (n, KeyCode::Char(' ')) if n >= 3 => toggle(&mut cx.draft_mut().gateway, n - 3),
        (_, KeyCode::Down | KeyCode::Char('j')) => s.focus = (s.focus + 1) % FOCI,
        (_, KeyCode::Up | KeyCode::Char('k')) => s.focus = (s.focus + FOCI - 1) % FOCI,
        _ => return Handled::No,
    }
    cx.notice = None;
    Handled::done()
}

pub fn render(s: &GatewayState, cx: &Shared, f: &mut Frame, area: Rect) {
    let t = &cx.theme;
    let g = &cx.draft().gateway;
    let links = g.entries(cx.facts());
    let list_h = (links.len() as u16 + 2).clamp(3, 8);
    let [list, via, via6, opts, errs] = Layout::vertical([
        Constraint::Length(list_h),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(OPTIONS.len() as u16 + 1),
        Constraint::Min(0),
    ])
    .areas(area);
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
    if cx.facts().is_none() {
        lines.push(Line::styled("  reading the host…", t.dim()));
    }
    let border = if s.focus == 0 {
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
        s.focus == 1,
        "next hop, e.g. 10.8.0.1 (empty: point-to-point)",
    );
    field::render(
        f,
        via6,
        t,
        "IPv6 via",
        &g.via6,
        s.focus == 2,
        "next hop, e.g. fd00::1 (empty: IPv6 blocked)",
    );
    let mut lines = vec![Line::default()];
    for (i, (name, why)) in OPTIONS.iter().enumerate() {
        let on = option(g, i);
        let focused = s.focus == 3 + i;
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
    let lines: Vec<Line> = findings(cx)
        .iter()
        .flat_map(|e| field::message_lines(t.error(), "✗", e, errs.width))
        .collect();
    f.render_widget(Paragraph::new(lines), errs);
}

pub fn hints(s: &GatewayState) -> Vec<Hint> {
    match s.focus {
        0 => vec![("↑↓", "interface"), ("Tab", "field"), ("Enter", "next")],
        1 | 2 => vec![("type", "edit"), ("Tab", "field"), ("Enter", "next")],
        _ => vec![("Space", "toggle"), ("Tab/↑↓", "field"), ("Enter", "next")],
    }
}
