//! Screen 4 (gateway role): firewall mark and mask (shown as bits), routing
//! table and rule priority; conflicts with the host appear as you type.

use super::{Handled, Hint};
use crate::profile::parse_u32;
use crate::tui::draft::MarkDraft;
use crate::tui::shared::Shared;
use crate::tui::widgets::field;
use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use tui_input::Input;

const LABELS: [&str; MarkDraft::FIELDS] = ["Mark", "Mask", "Table", "Table id", "Priority"];

/// This screen's own state: which field has the keyboard (the values are
/// the draft's).
#[derive(Debug, Default)]
pub struct MarkState {
    pub focus: usize,
}

/// Plan errors and warnings that concern this screen's values.
fn findings(cx: &Shared) -> (Vec<String>, Vec<String>) {
    // Only what these fields decide: not "marked traffic" or "iptables-save".
    let concerns = |s: &String| {
        [
            "gateway.mark",
            "gateway.mask",
            // The same keys in a `[[class]]` (class.NAME.mark), and overlaps between classes.
            ".mark",
            ".mask",
            ".table",
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
    match cx.plan() {
        Ok(p) => (
            p.errors.iter().filter(|e| concerns(e)).cloned().collect(),
            p.warnings.iter().filter(|w| concerns(w)).cloned().collect(),
        ),
        Err(e) if concerns(e) => (vec![e.clone()], Vec::new()),
        Err(_) => (Vec::new(), Vec::new()),
    }
}

pub fn validate(cx: &Shared) -> Result<(), String> {
    let (errors, _) = findings(cx);
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub fn key(s: &mut MarkState, cx: &mut Shared, key: KeyEvent) -> Handled {
    const N: usize = MarkDraft::FIELDS;
    match key.code {
        KeyCode::Tab | KeyCode::Down => s.focus = (s.focus + 1) % N,
        KeyCode::BackTab | KeyCode::Up => s.focus = (s.focus + N - 1) % N,
        KeyCode::Enter | KeyCode::Esc => return Handled::No,
        _ => {
            let focus = s.focus;
            if !cx.edit_input(|d| d.mark.field_mut(focus), key) {
                return Handled::No;
            }
        }
    }
    cx.notice = None;
    Handled::done()
}

/// 32 bits in nibbles, `1` where set.
fn bit_string(v: u32) -> String {
    (0..8)
        .map(|n| format!("{:04b}", (v >> (28 - 4 * n)) & 0xf))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn render(s: &MarkState, cx: &Shared, f: &mut Frame, area: Rect) {
    let t = &cx.theme;
    let planned = cx.plan().as_ref().ok().map(|p| &p.resolved);
    // A `[[class]]` draft: what the plan chose for the class being edited.
    let class = planned
        .and_then(|r| r.classes.get(cx.draft().classes.current))
        .map(|c| crate::plan::Resolved {
            mark: c.mark,
            mask: c.mask,
            table_id: c.table_id,
            table_name: c.table_name.clone(),
            priority: c.priority,
            ..Default::default()
        });
    let resolved = class.as_ref().or(planned);
    let defaults = [
        resolved
            .and_then(|r| r.mark)
            .map(|v| format!("auto: {v:#x} (free value)")),
        Some(format!(
            "auto: {:#x}",
            resolved
                .and_then(|r| r.mask)
                .unwrap_or(crate::ownership::DEFAULT_MASK)
        )),
        resolved.map(|r| {
            format!(
                "auto: {} ({})",
                r.table_name.clone().unwrap_or_default(),
                r.table_id.unwrap_or(0)
            )
        }),
        Some("auto: a free number".into()),
        resolved
            .and_then(|r| r.priority)
            .map(|v| format!("auto: {v} (free)")),
    ];
    let rows = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(MarkDraft::FIELDS as u16),
        Constraint::Length(1),
        Constraint::Length(3),
        Constraint::Min(0),
    ])
    .split(area);
    let mut intro = "The gateway turns the DSCP into a firewall mark (it lives only inside this \
                     host), and a rule sends marked packets to a routing table. Empty fields are \
                     chosen free."
        .to_string();
    if !cx.draft().is_plain_gateway() {
        intro = format!("Class {}: {intro}", cx.draft().classes.name.value());
    }
    f.render_widget(
        Paragraph::new(intro.as_str())
            .style(t.dim())
            .wrap(ratatui::widgets::Wrap { trim: true }),
        rows[0],
    );
    let m = &cx.draft().mark;
    let fields = Layout::vertical([Constraint::Length(1); MarkDraft::FIELDS]).split(rows[1]);
    for i in 0..MarkDraft::FIELDS {
        let placeholder = defaults[i].clone().unwrap_or_default();
        field::render(
            f,
            fields[i],
            t,
            LABELS[i],
            m.field(i),
            s.focus == i,
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
    let mark = used(&m.mark, resolved.and_then(|r| r.mark), None);
    let mask = used(
        &m.mask,
        resolved.and_then(|r| r.mask),
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
    if let Some((m, k)) = resolved.and_then(|r| r.mark.zip(r.mask)) {
        bits.push(Line::styled(
            format!(
                "  rule: fwmark {m:#x}/{k:#x}: only the mask's bits are ours; others stay untouched"
            ),
            t.dim(),
        ));
    }
    f.render_widget(Paragraph::new(bits), rows[3]);
    let (errors, warnings) = findings(cx);
    let mut lines = Vec::new();
    for e in &errors {
        lines.extend(field::message_lines(t.error(), "✗", e, rows[4].width));
    }
    for w in &warnings {
        lines.extend(field::message_lines(t.warning(), "!", w, rows[4].width));
    }
    if errors.is_empty() && warnings.is_empty() && cx.facts().is_some() {
        lines.push(Line::styled(
            "  ✓ no conflict with marks, priorities or tables on this host",
            t.ok(),
        ));
    }
    f.render_widget(Paragraph::new(lines), rows[4]);
}

pub fn hints() -> Vec<Hint> {
    vec![("Tab/↑↓", "field"), ("type", "edit"), ("Enter", "next")]
}
