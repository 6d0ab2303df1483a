//! Screen 4 (gateway role): firewall mark and mask (shown as bits), routing
//! table and rule priority; conflicts with the host appear as you type.

use super::{Handled, Hint};
use crate::profile::parse_u32;
use crate::tui::app::{App, MarkState};
use crate::tui::widgets::field;
use ratatui::Frame;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

const LABELS: [&str; MarkState::FIELDS] = ["Mark", "Mask", "Table", "Table id", "Priority"];

fn input_mut(m: &mut MarkState, i: usize) -> &mut Input {
    match i {
        0 => &mut m.mark,
        1 => &mut m.mask,
        2 => &mut m.table,
        3 => &mut m.table_id,
        _ => &mut m.priority,
    }
}

fn input(m: &MarkState, i: usize) -> &Input {
    match i {
        0 => &m.mark,
        1 => &m.mask,
        2 => &m.table,
        3 => &m.table_id,
        _ => &m.priority,
    }
}

/// Plan errors and warnings that concern this screen's values.
fn findings(app: &App) -> (Vec<String>, Vec<String>) {
    // Only what these fields decide: not "marked traffic" or "iptables-save".
    let concerns = |s: &String| {
        [
            "gateway.mark",
            "gateway.mask",
            "mark bits",
            "collides",
            "priority",
            "routing table",
            "table number",
            "table \"",
        ]
        .iter()
        .any(|k| s.contains(k))
    };
    match app.plan() {
        Ok(p) => (
            p.errors.iter().filter(|e| concerns(e)).cloned().collect(),
            p.warnings.iter().filter(|w| concerns(w)).cloned().collect(),
        ),
        Err(e) if concerns(&e) => (vec![e], Vec::new()),
        Err(_) => (Vec::new(), Vec::new()),
    }
}

pub fn validate(app: &App) -> Result<(), String> {
    let (errors, _) = findings(app);
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub fn key(app: &mut App, key: KeyEvent) -> Handled {
    let m = &mut app.mark;
    match key.code {
        KeyCode::Tab | KeyCode::Down => m.focus = (m.focus + 1) % MarkState::FIELDS,
        KeyCode::BackTab | KeyCode::Up => {
            m.focus = (m.focus + MarkState::FIELDS - 1) % MarkState::FIELDS
        }
        KeyCode::Enter | KeyCode::Esc => return Handled::No,
        _ => {
            let focus = m.focus;
            if input_mut(m, focus).handle_event(&Event::Key(key)).is_none() {
                return Handled::No;
            }
        }
    }
    app.notice = None;
    Handled::done()
}

/// 32 bits in nibbles, `1` where set.
fn bit_string(v: u32) -> String {
    (0..8)
        .map(|n| format!("{:04b}", (v >> (28 - 4 * n)) & 0xf))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let resolved = app.plan().ok().map(|p| p.resolved);
    let defaults = [
        resolved
            .as_ref()
            .and_then(|r| r.mark)
            .map(|v| format!("auto: {v:#x} (free value)")),
        Some(format!(
            "auto: {:#x}",
            resolved
                .as_ref()
                .and_then(|r| r.mask)
                .unwrap_or(crate::ownership::DEFAULT_MASK)
        )),
        resolved.as_ref().map(|r| {
            format!(
                "auto: {} ({})",
                r.table_name.clone().unwrap_or_default(),
                r.table_id.unwrap_or(0)
            )
        }),
        Some("auto: a free number".into()),
        resolved
            .as_ref()
            .and_then(|r| r.priority)
            .map(|v| format!("auto: {v} (free)")),
    ];
    let rows = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(MarkState::FIELDS as u16),
        Constraint::Length(1),
        Constraint::Length(3),
        Constraint::Min(0),
    ])
    .split(area);
    let intro = "The gateway turns the DSCP into a firewall mark (it lives only inside this host), \
                 and a rule sends marked packets to a routing table. Empty fields are chosen free.";
    f.render_widget(
        Paragraph::new(intro)
            .style(t.dim())
            .wrap(ratatui::widgets::Wrap { trim: true }),
        rows[0],
    );
    let fields = Layout::vertical([Constraint::Length(1); MarkState::FIELDS]).split(rows[1]);
    for i in 0..MarkState::FIELDS {
        let placeholder = defaults[i].clone().unwrap_or_default();
        field::render(
            f,
            fields[i],
            t,
            LABELS[i],
            input(&app.mark, i),
            app.mark.focus == i,
            &placeholder,
        );
    }
    // What the rule will really use: a typed value as typed, an empty
    // field as the plan fills it (the default mask even when the plan
    // cannot be made); nothing for a value that does not parse.
    let used = |typed: &Input, planned: Option<u32>, default: Option<u32>| {
        let v = typed.value().trim();
        if v.is_empty() {
            planned.or(default)
        } else {
            parse_u32(v)
        }
    };
    let mark = used(&app.mark.mark, resolved.as_ref().and_then(|r| r.mark), None);
    let mask = used(
        &app.mark.mask,
        resolved.as_ref().and_then(|r| r.mask),
        Some(crate::ownership::DEFAULT_MASK),
    );
    let bits_line = |name: &str, v: Option<u32>, style| {
        Line::from(vec![
            Span::styled(format!("  {name} bits  "), t.title()),
            match v {
                Some(v) => Span::styled(bit_string(v), style),
                None => Span::styled("—", t.dim()),
            },
        ])
    };
    let mut bits = vec![
        bits_line("mark", mark, t.dscp_bit()),
        bits_line("mask", mask, t.ecn_bit()),
    ];
    // The rule only once the plan has one: never values it would refuse.
    if let Some((m, k)) = resolved.as_ref().and_then(|r| r.mark.zip(r.mask)) {
        bits.push(Line::styled(
            format!(
                "  rule: fwmark {m:#x}/{k:#x}: only the mask's bits are ours; others stay untouched"
            ),
            t.dim(),
        ));
    }
    f.render_widget(Paragraph::new(bits), rows[3]);
    let (errors, warnings) = findings(app);
    let mut lines = Vec::new();
    for e in &errors {
        lines.extend(field::message_lines(t.error(), "✗", e, rows[4].width));
    }
    for w in &warnings {
        lines.extend(field::message_lines(t.warning(), "!", w, rows[4].width));
    }
    if errors.is_empty() && warnings.is_empty() && app.facts.is_some() {
        lines.push(Line::styled(
            "  ✓ no conflict with marks, priorities or tables on this host",
            t.ok(),
        ));
    }
    f.render_widget(Paragraph::new(lines), rows[4]);
}

pub fn hints(_app: &App) -> Vec<Hint> {
    vec![("Tab/↑↓", "field"), ("type", "edit"), ("Enter", "next")]
}
