//! Screen 5 (gateway role): the gateway's classes side by side, and the
//! editor for one: its name, its uplinks in order (each an interface of
//! this host and its next hops) and the options, each with a one-line why.
//! The edited class's DSCP and mark are the DSCP and Mark steps' (Esc).

use super::{Handled, Hint};
use crate::tui::draft::{ClassView, GatewayDraft, uplink_label};
use crate::tui::shared::Shared;
use crate::tui::widgets::field;
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
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

/// What has the keyboard, in Tab order.
pub const CLASSES: usize = 0;
pub const NAME: usize = 1;
pub const UPLINKS: usize = 2;
pub const LINK: usize = 3;
pub const VIA: usize = 4;
pub const VIA6: usize = 5;
const FIRST_OPTION: usize = 6;
const FOCI: usize = FIRST_OPTION + OPTIONS.len();

/// This screen's own state: what has the keyboard (the values are the
/// draft's).
#[derive(Debug)]
pub struct GatewayState {
    pub focus: usize,
    /// `d` was pressed on the class list: `y` removes the edited class.
    pub confirm_remove: bool,
}

/// The interface list has the keyboard first, as before classes existed.
impl Default for GatewayState {
    fn default() -> Self {
        GatewayState {
            focus: LINK,
            confirm_remove: false,
        }
    }
}

/// The interface the wizard will use (the uplink on screen).
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

/// A problem between classes, or with a class's name or uplink list: shown
/// under the class list.
fn about_classes(e: &str) -> bool {
    e.contains("class") || e.contains("uplink")
}

/// The profile's problems for this screen: (under the list, at the bottom).
fn findings(cx: &Shared) -> (Vec<String>, Vec<String>) {
    let concerns = |s: &String| {
        ["interface", "via", "point-to-point", "on-link"]
            .iter()
            .any(|k| s.contains(k))
    };
    match cx.plan() {
        Ok(p) => (
            Vec::new(),
            p.errors.iter().filter(|e| concerns(e)).cloned().collect(),
        ),
        Err(e) if about_classes(e) && !concerns(e) => (vec![e.clone()], Vec::new()),
        Err(e) => (Vec::new(), vec![e.clone()]),
    }
}

/// A `[[class]]` draft: which uplink the plan routes the edited class
/// through and why (or why none), and whether that is its first uplink. A
/// next hop that is missing or off-link makes an uplink unusable here, not
/// invalid: the class moves on to the next one, so this warns, never blocks.
fn uplink_note(cx: &Shared) -> Option<(String, bool)> {
    let plan = cx.plan().as_ref().ok()?;
    let c = plan.resolved.classes.get(cx.draft().classes.current)?;
    let first = c.uplink.is_some() && c.uplink == c.uplinks.first().cloned();
    Some((format!("uplink {}", c.uplink_why), first))
}

pub fn validate(cx: &Shared) -> Result<(), String> {
    let (list, fields) = findings(cx);
    match list.into_iter().chain(fields).next() {
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

fn class_key(s: &mut GatewayState, cx: &mut Shared, code: KeyCode) -> Handled {
    let (cur, len) = (cx.draft().classes.current, cx.draft().classes.len());
    match code {
        KeyCode::Up | KeyCode::Char('k') if cur > 0 => {
            cx.draft_with_facts(|d, f| d.select_class(cur - 1, f))
        }
        KeyCode::Down | KeyCode::Char('j') if cur + 1 < len => {
            cx.draft_with_facts(|d, f| d.select_class(cur + 1, f))
        }
        KeyCode::Up | KeyCode::Char('k') | KeyCode::Down | KeyCode::Char('j') => {}
        KeyCode::Char('a') => {
            cx.draft_with_facts(|d, f| d.add_class(f));
            s.focus = NAME;
        }
        KeyCode::Char('e') => s.focus = NAME,
        KeyCode::Char('d') | KeyCode::Delete if len < 2 => {
            cx.notice = Some("A gateway needs a class: the last one stays (edit it).".into());
            return Handled::done();
        }
        KeyCode::Char('d') | KeyCode::Delete => s.confirm_remove = true,
        _ => return Handled::No,
    }
    cx.notice = None;
    Handled::done()
}

fn uplink_key(s: &mut GatewayState, cx: &mut Shared, code: KeyCode) -> Handled {
    let (cur, len) = (cx.draft().classes.uplink, cx.draft().classes.uplink_count());
    match code {
        KeyCode::Left | KeyCode::Char('h') if cur > 0 => {
            cx.draft_with_facts(|d, f| d.select_uplink(cur - 1, f))
        }
        KeyCode::Right | KeyCode::Char('l') if cur + 1 < len => {
            cx.draft_with_facts(|d, f| d.select_uplink(cur + 1, f))
        }
        KeyCode::Left | KeyCode::Char('h') | KeyCode::Right | KeyCode::Char('l') => {}
        KeyCode::Char('a') => {
            cx.draft_with_facts(|d, f| d.add_uplink(f));
            s.focus = LINK;
        }
        KeyCode::Char('d') | KeyCode::Delete => {
            if !cx.draft_with_facts(|d, f| d.remove_uplink(f)) {
                cx.notice = Some("A class needs an uplink: the last one stays.".into());
                return Handled::done();
            }
        }
        KeyCode::Char('<') => {
            cx.draft_mut().move_uplink(false);
        }
        KeyCode::Char('>') => {
            cx.draft_mut().move_uplink(true);
        }
        _ => return Handled::No,
    }
    cx.notice = None;
    Handled::done()
}

pub fn key(s: &mut GatewayState, cx: &mut Shared, key: KeyEvent) -> Handled {
    if s.confirm_remove {
        // Only `y` removes; any other key keeps the class.
        s.confirm_remove = false;
        if key.code == KeyCode::Char('y') {
            cx.draft_with_facts(|d, f| d.remove_class(f));
            cx.notice = None;
        } else {
            cx.notice = Some("Kept the class.".into());
        }
        return Handled::done();
    }
    let links = cx.draft().gateway.entries(cx.facts()).len();
    let link = cx.draft().gateway.link;
    match (s.focus, key.code) {
        (_, KeyCode::Tab) => s.focus = (s.focus + 1) % FOCI,
        (_, KeyCode::BackTab) => s.focus = (s.focus + FOCI - 1) % FOCI,
        (_, KeyCode::Enter | KeyCode::Esc) => return Handled::No,
        (CLASSES, code) => {
            if let Handled::Yes(e) = class_key(s, cx, code) {
                return Handled::Yes(e);
            }
            return Handled::No;
        }
        (NAME, _) => {
            if !cx.edit_input(|d| &mut d.classes.name, key) {
                return focus_move(s, cx, key.code);
            }
        }
        (UPLINKS, code) => {
            if let Handled::Yes(e) = uplink_key(s, cx, code) {
                return Handled::Yes(e);
            }
            return focus_move(s, cx, code);
        }
        (LINK, KeyCode::Up | KeyCode::Char('k')) => select_link(cx, link.saturating_sub(1)),
        (LINK, KeyCode::Down | KeyCode::Char('j')) => {
            select_link(cx, (link + 1).min(links.saturating_sub(1)))
        }
        (VIA, _) => {
            if !cx.edit_input(|d| &mut d.gateway.via, key) {
                return Handled::No;
            }
        }
        (VIA6, _) => {
            if !cx.edit_input(|d| &mut d.gateway.via6, key) {
                return Handled::No;
            }
        }
        (n, KeyCode::Char(' ')) if n >= FIRST_OPTION => {
            toggle(&mut cx.draft_mut().gateway, n - FIRST_OPTION)
        }
        (_, code) => return focus_move(s, cx, code),
    }
    cx.notice = None;
    Handled::done()
}

/// ↑↓ (j k) from a field or an option: the previous or next one.
fn focus_move(s: &mut GatewayState, cx: &mut Shared, code: KeyCode) -> Handled {
    match code {
        KeyCode::Down | KeyCode::Char('j') => s.focus = (s.focus + 1) % FOCI,
        KeyCode::Up | KeyCode::Char('k') => s.focus = (s.focus + FOCI - 1) % FOCI,
        _ => return Handled::No,
    }
    cx.notice = None;
    Handled::done()
}

/// One class on one row: name, DSCP, uplinks in order, table, mark.
fn class_row(c: &ClassView, width: usize) -> String {
    format!(
        "{:<12} DSCP {:<3} {:<26} table {:<9} mark {}",
        c.name,
        c.dscp.value(),
        c.uplink_names(),
        c.table(),
        c.mark()
    )
    .chars()
    .take(width)
    .collect()
}

fn render_classes(s: &GatewayState, cx: &Shared, f: &mut Frame, area: Rect) {
    let t = &cx.theme;
    let d = cx.draft();
    let rows = area.height.saturating_sub(2) as usize;
    let current = d.classes.current;
    let first = current.saturating_sub(rows.saturating_sub(1));
    let width = area.width.saturating_sub(4) as usize;
    let lines: Vec<Line> = d
        .class_views(cx.facts())
        .iter()
        .enumerate()
        .skip(first)
        .take(rows)
        .map(|(i, c)| {
            let sel = i == current;
            let text = format!("{} {}", if sel { "▸" } else { " " }, class_row(c, width));
            let style = if sel && s.focus == CLASSES {
                t.selected()
            } else if sel {
                t.key()
            } else {
                Style::new()
            };
            Line::styled(text, style)
        })
        .collect();
    let border = if s.focus == CLASSES {
        t.focus_border()
    } else {
        Style::new()
    };
    let title = if s.focus == CLASSES {
        format!(
            " Classes ({}) · a add · e edit · d remove ",
            d.classes.len()
        )
    } else {
        format!(
            " Classes ({}) · Shift-Tab: add, edit, remove ",
            d.classes.len()
        )
    };
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(border)
                .title(title),
        ),
        area,
    );
}

/// `Uplinks  [1 wg0 via 10.8.0.1]  2 tun1`: in the order they are tried.
fn render_uplinks(s: &GatewayState, cx: &Shared, f: &mut Frame, area: Rect) {
    let t = &cx.theme;
    let d = cx.draft();
    let focused = s.focus == UPLINKS;
    let label = format!(
        "{}{:<w$}",
        if focused { "▸ " } else { "  " },
        "Uplinks",
        w = (field::LABEL_WIDTH - 2) as usize
    );
    let mut spans = vec![Span::styled(
        label,
        if focused { t.key() } else { t.title() },
    )];
    for (i, u) in d.uplinks(cx.facts()).iter().enumerate() {
        let mut text = uplink_label(i, u);
        // Kept as the profile names it; the interface list says more.
        let missing = |f: &crate::probe::HostFacts| {
            u.interface.as_deref().is_some_and(|n| f.link(n).is_none())
        };
        if cx.facts().is_some_and(missing) {
            text.push_str(" MISSING");
        }
        if i == d.classes.uplink {
            let style = if focused { t.selected() } else { t.key() };
            spans.push(Span::styled(format!("[{text}]"), style));
        } else {
            spans.push(Span::raw(format!(" {text} ")));
        }
        spans.push(Span::raw(" "));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn render_links(s: &GatewayState, cx: &Shared, f: &mut Frame, area: Rect) {
    let t = &cx.theme;
    let g = &cx.draft().gateway;
    let links = g.entries(cx.facts());
    let rows = area.height.saturating_sub(2) as usize;
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
            (false, Some(_)) => Style::new(),
        };
        lines.push(Line::styled(text, style));
    }
    if cx.facts().is_none() {
        lines.push(Line::styled("  reading the host…", t.dim()));
    }
    let border = if s.focus == LINK {
        t.focus_border()
    } else {
        Style::new()
    };
    let title = format!(
        " Uplink {} of {}: interface ",
        cx.draft().classes.uplink + 1,
        cx.draft().classes.uplink_count()
    );
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .border_style(border)
                .title(title),
        ),
        area,
    );
}

pub fn render(s: &GatewayState, cx: &Shared, f: &mut Frame, area: Rect) {
    let t = &cx.theme;
    let d = cx.draft();
    let (list_errs, field_errs) = findings(cx);
    let mut under_list: Vec<Line> = list_errs
        .iter()
        .flat_map(|e| field::message_lines(t.error(), "✗", e, area.width))
        .collect();
    if s.confirm_remove {
        let q = format!(
            "Remove class {}? y removes it, any other key keeps it",
            d.classes.name.value()
        );
        under_list.extend(field::message_lines(t.warning(), "?", &q, area.width));
    }
    let classes_h = (d.classes.len() as u16 + 2).clamp(3, 7);
    let links_h = (d.gateway.entries(cx.facts()).len() as u16 + 2).clamp(3, 8);
    let [classes, notes, name, uplinks, list, via, via6, opts, errs] = Layout::vertical([
        Constraint::Length(classes_h),
        Constraint::Length(under_list.len() as u16),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(links_h),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(OPTIONS.len() as u16 + 1),
        Constraint::Min(0),
    ])
    .areas(area);
    render_classes(s, cx, f, classes);
    f.render_widget(Paragraph::new(under_list), notes);
    // A class name is at most 15 characters: a short box says so.
    let name = Rect {
        width: name.width.min(field::LABEL_WIDTH + 2 + 16),
        ..name
    };
    field::render(
        f,
        name,
        t,
        "Class name",
        &d.classes.name,
        s.focus == NAME,
        "letters, digits, - or _",
    );
    render_uplinks(s, cx, f, uplinks);
    render_links(s, cx, f, list);
    let g = &d.gateway;
    field::render(
        f,
        via,
        t,
        "IPv4 via",
        &g.via,
        s.focus == VIA,
        "next hop, e.g. 10.8.0.1 (empty: point-to-point)",
    );
    field::render(
        f,
        via6,
        t,
        "IPv6 via",
        &g.via6,
        s.focus == VIA6,
        "next hop, e.g. fd00::1 (empty: IPv6 blocked)",
    );
    let mut lines = vec![Line::default()];
    for (i, (name, why)) in OPTIONS.iter().enumerate() {
        let on = option(g, i);
        let focused = s.focus == FIRST_OPTION + i;
        let text = format!(
            "{} [{}] {name:<16}{why}",
            if focused { "▸" } else { " " },
            if on { "x" } else { " " }
        );
        let text: String = text.chars().take(area.width as usize).collect();
        lines.push(Line::styled(
            text,
            if focused { t.key() } else { Style::new() },
        ));
    }
    f.render_widget(Paragraph::new(lines), opts);
    let mut lines: Vec<Line> = field_errs
        .iter()
        .flat_map(|e| field::message_lines(t.error(), "✗", e, errs.width))
        .collect();
    if let Some((note, first)) = uplink_note(cx) {
        let (style, mark) = if first {
            (t.ok(), "✓")
        } else {
            (t.warning(), "!")
        };
        lines.extend(field::message_lines(style, mark, &note, errs.width));
    }
    f.render_widget(Paragraph::new(lines), errs);
}

pub fn hints(s: &GatewayState) -> Vec<Hint> {
    if s.confirm_remove {
        return vec![("y", "remove the class"), ("any key", "keep it")];
    }
    match s.focus {
        CLASSES => vec![
            ("↑↓", "class"),
            ("a", "add"),
            ("e", "edit"),
            ("d", "remove"),
            ("Enter", "next"),
        ],
        UPLINKS => vec![
            ("←→", "uplink"),
            ("a", "add"),
            ("d", "remove"),
            ("< >", "order"),
            ("Tab", "field"),
        ],
        LINK => vec![("↑↓", "interface"), ("Tab", "field"), ("Enter", "next")],
        NAME | VIA | VIA6 => vec![("type", "edit"), ("Tab", "field"), ("Enter", "next")],
        _ => vec![("Space", "toggle"), ("Tab/↑↓", "field"), ("Enter", "next")],
    }
}

#[cfg(test)]
mod tests;
