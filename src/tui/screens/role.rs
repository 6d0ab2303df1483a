//! Screen 1: is this host the client, the gateway, or both?

use super::{Handled, Hint};
use crate::tui::draft::RoleChoice;
use crate::tui::msg::Effect;
use crate::tui::shared::Shared;
use crate::tui::widgets::text;
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent, MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};

const DIAGRAM: &[&str] = &[
    " host A (client)        gateway B                  ",
    " ┌──────────────┐ DSCP 7 ┌───────────────────┐    ── ISP",
    " │ group torrent│──────▶ │ DSCP 7 → mark     │──┤",
    " └──────────────┘        │ mark → table vpn  │    ── VPN (wg0)",
    "                         └───────────────────┘",
];

fn label(r: RoleChoice) -> (&'static str, &'static str) {
    match r {
        RoleChoice::Client => (
            "Client (host A)",
            "The chosen processes (a group, a user, a systemd unit or a cgroup) get a DSCP value \
             in their packets. Nothing is routed here.",
        ),
        RoleChoice::Gateway => (
            "Gateway (host B)",
            "Packets arriving with that DSCP are marked and routed through the VPN, with a kill \
             switch, masquerade and the LAN kept local.",
        ),
        RoleChoice::Both => (
            "Both (the program runs on the router)",
            "The chosen processes' own packets are marked in OUTPUT and re-routed through the \
             VPN; LAN clients' packets too.",
        ),
    }
}

/// Choose a role (the draft changes only when the role does).
fn choose(cx: &mut Shared, role: RoleChoice) {
    if cx.draft().role != role {
        cx.draft_mut().role = role;
    }
}

pub fn key(cx: &mut Shared, key: KeyEvent) -> Handled {
    let i = RoleChoice::ALL
        .iter()
        .position(|r| *r == cx.draft().role)
        .unwrap_or(0);
    let n = RoleChoice::ALL.len();
    let role = match key.code {
        KeyCode::Up | KeyCode::Char('k') | KeyCode::BackTab => RoleChoice::ALL[(i + n - 1) % n],
        KeyCode::Down | KeyCode::Char('j') | KeyCode::Tab => RoleChoice::ALL[(i + 1) % n],
        KeyCode::Char('1') => RoleChoice::Client,
        KeyCode::Char('2') => RoleChoice::Gateway,
        KeyCode::Char('3') => RoleChoice::Both,
        _ => return Handled::No,
    };
    choose(cx, role);
    Handled::done()
}

/// Rows where each choice starts, for mouse clicks (set by render's layout).
fn choice_rows(area: Rect) -> [u16; 3] {
    let top = area.y + DIAGRAM.len() as u16 + 2;
    [top, top + 3, top + 6]
}

pub fn mouse(cx: &mut Shared, m: MouseEvent) -> Vec<Effect> {
    if m.kind != MouseEventKind::Down(MouseButton::Left) {
        return Vec::new();
    }
    let area = Rect::new(0, 1, cx.size.0, cx.size.1.saturating_sub(2));
    for (i, row) in choice_rows(area).iter().enumerate() {
        if (*row..row + 3).contains(&m.row) {
            choose(cx, RoleChoice::ALL[i]);
        }
    }
    Vec::new()
}

pub fn render(cx: &Shared, f: &mut Frame, area: Rect) {
    let t = &cx.theme;
    let [diagram, choices, note] = Layout::vertical([
        Constraint::Length(DIAGRAM.len() as u16 + 1),
        Constraint::Length(10),
        Constraint::Min(0),
    ])
    .areas(area);
    let lines: Vec<Line> = DIAGRAM.iter().map(|l| Line::styled(*l, t.dim())).collect();
    f.render_widget(Paragraph::new(lines), diagram);
    let mut lines = Vec::new();
    for (i, r) in RoleChoice::ALL.iter().enumerate() {
        let (title, why) = label(*r);
        let chosen = *r == cx.draft().role;
        let mark = if chosen { "(•)" } else { "( )" };
        let style = if chosen { t.selected() } else { t.title() };
        lines.push(Line::from(vec![
            Span::raw(format!(" {mark} {}. ", i + 1)),
            Span::styled(title, style),
        ]));
        for l in text::wrap(why, area.width.saturating_sub(9) as usize) {
            lines.push(Line::from(format!("        {l}")));
        }
        if text::wrap(why, area.width.saturating_sub(9) as usize).len() < 2 {
            lines.push(Line::default());
        }
    }
    f.render_widget(Paragraph::new(lines), choices);
    let tip = "The client and the gateway can be one machine or two. Run dscproute on each host \
               with its own role; `plan --script` makes a script for a client without dscproute.";
    f.render_widget(
        Paragraph::new(tip)
            .wrap(Wrap { trim: true })
            .style(t.dim())
            .block(Block::default()),
        note,
    );
}

pub fn hints() -> Vec<Hint> {
    vec![("↑↓/1-3", "choose"), ("Enter", "next")]
}
