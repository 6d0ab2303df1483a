//! Screen 3: the DSCP value, and the teaching centre. The value can be typed
//! in any notation, stepped with +/-, picked from the named classes or
//! changed bit by bit; everything about it (names, pool, legacy reading,
//! Wi-Fi priority, warnings, the expressions each tool takes) follows every
//! keystroke. The info panel is shared with Learn mode.

use super::{Handled, Hint};
use crate::explain::Explanation;
use crate::text::wrap;
use crate::tos::{CLASS_NAMES, DsByte, Dscp, Legacy, ParseError, Pool, parse_value};
use crate::tui::app::{App, DscpFocus, DscpState};
use crate::tui::theme::Theme;
use crate::tui::widgets::{bits, field};
use ratatui::Frame;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

/// What the DSCP field accepts, in the wizard's words (no CLI flags).
const FORMS: &str = "use 0–63 (0x00–0x3f, 0b000000–0b111111) or a class name like af41 \
                     (cs0–cs7, af11–af43, ef, va, le, df/be)";
/// The pool-2 advice (design.md §2).
const PRIVATE: &str = "for a private signal use pool 2: 3, 7, 11, … 63";

/// Label column of the info panel: two spaces and ten for the label.
const LABEL: usize = 12;
/// Columns the text field takes before its live reading.
const FIELD_WIDTH: u16 = field::LABEL_WIDTH + 2 + 22;

// ---------------------------------------------------------------- the class list

/// One entry of the class list: a DSCP and its names, canonical first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    pub value: u8,
    pub names: Vec<&'static str>,
}

impl Class {
    /// `AF41`, as the list shows it.
    pub fn label(&self) -> String {
        self.names[0].to_uppercase()
    }
}

/// The named classes, one entry per value (aliases such as `df`, `be`,
/// `voice-admit` and `lephb` folded into the first name's entry).
pub fn classes() -> Vec<Class> {
    let mut v: Vec<Class> = Vec::new();
    for (name, value) in CLASS_NAMES {
        match v.iter_mut().find(|c| c.value == *value) {
            Some(c) => c.names.push(name),
            None => v.push(Class {
                value: *value,
                names: vec![name],
            }),
        }
    }
    v
}

/// The list entry for a DSCP, if it has a name.
fn class_index(value: u8) -> Option<usize> {
    classes().iter().position(|c| c.value == value)
}

// ---------------------------------------------------------------- parsing and notation

/// How the admin wrote the value; stepping and bit flips keep it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Notation {
    Dec,
    Hex,
    Bin,
}

pub(super) fn notation(text: &str) -> Notation {
    let t = text.trim().to_ascii_lowercase();
    if t.starts_with("0x") {
        Notation::Hex
    } else if t.starts_with("0b") {
        Notation::Bin
    } else {
        Notation::Dec
    }
}

fn write_dscp(v: u8, n: Notation) -> String {
    match n {
        Notation::Dec => v.to_string(),
        Notation::Hex => format!("{v:#04x}"),
        Notation::Bin => format!("0b{v:06b}"),
    }
}

/// A parse error in the wizard's words: what was wrong and what is accepted.
pub fn message(e: &ParseError) -> String {
    match e {
        ParseError::Empty => format!("type a DSCP: {FORMS}"),
        ParseError::DscpOutOfRange { given, .. } => {
            match parse_value(given, true).ok().map(|p| p.byte.dscp()) {
                Some(d) => format!(
                    "DSCP {given} is out of range: {FORMS}. As a whole ToS byte, {given} is \
                     DSCP {d}: type {d} for that"
                ),
                None => format!("DSCP {given} is out of range: {FORMS}"),
            }
        }
        ParseError::UnknownName { given } => format!("unknown class name {given:?}: {FORMS}"),
        ParseError::Malformed { given, .. } => format!("{given:?} is not a number: {FORMS}"),
        other => other.to_string(),
    }
}

/// The field's text, parsed as the wizard reads it.
fn parsed(s: &DscpState) -> Result<Dscp, String> {
    parse_value(s.input.value(), false)
        .map(|p| p.dscp())
        .map_err(|e| message(&e))
}

/// Heads-up when a hex or binary value may have been copied from a ToS byte.
fn tos_hint(s: &DscpState) -> Option<String> {
    let p = parse_value(s.input.value(), false).ok()?;
    if !p.maybe_tos_byte {
        return None;
    }
    let text = s.input.value().trim();
    let d = p.dscp();
    let name = Explanation::of(p.byte)
        .name
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    let as_byte = DsByte::new(d.value()).dscp();
    Some(format!(
        "{text} is read as DSCP {d}{name}. If you copied a whole ToS byte (ip rule tos, \
         tcpdump's tos), that byte is DSCP {as_byte}: type {as_byte} for that."
    ))
}

pub fn validate(app: &App) -> Result<(), String> {
    if parsed(&app.dscp)?.value() == 0 {
        // Short: the frame shows it on one line.
        return Err("DSCP 0 is unmarked traffic, not a signal: use pool 2 (3, 7, 11, … 63)".into());
    }
    Ok(())
}

// ---------------------------------------------------------------- keys

/// Re-read the field after an edit: a valid value updates the byte, an
/// invalid one keeps the last valid byte and sets the error.
fn reparse(s: &mut DscpState) {
    match parse_value(s.input.value(), false) {
        Ok(p) => {
            s.byte = p.byte;
            s.error = None;
        }
        Err(e) => s.error = Some(message(&e)),
    }
}

/// Show `dscp` and write it into the field in the notation the admin used.
fn set_dscp(s: &mut DscpState, dscp: Dscp) {
    let n = notation(s.input.value());
    s.byte = dscp.to_byte();
    s.input = Input::new(write_dscp(dscp.value(), n));
    s.error = None;
}

/// +1 / -1, stopping at the ends of the six bits.
fn step(app: &mut App, up: bool) {
    let v = app.dscp.byte.dscp().value();
    let next = if up {
        v.checked_add(1)
    } else {
        v.checked_sub(1)
    };
    match next.and_then(Dscp::new) {
        Some(d) => set_dscp(&mut app.dscp, d),
        None => {
            // Still rewrite the field: it may hold an invalid text.
            let same = app.dscp.byte.dscp();
            set_dscp(&mut app.dscp, same);
            app.notice = Some(if up {
                "63 is the largest DSCP: it has six bits (0b111111)".into()
            } else {
                "0 is the smallest DSCP".into()
            });
        }
    }
}

fn toggle_bit(app: &mut App) {
    let bit = app.dscp.cursor.min(7);
    if bit < 2 {
        app.notice = Some(
            "ECN is set by the transport; the DSCP target keeps it. Flip ECN bits in Learn (F2)."
                .into(),
        );
        return;
    }
    let d = app.dscp.byte.toggle_bit(bit).dscp();
    set_dscp(&mut app.dscp, d);
}

fn choose_class(app: &mut App) {
    let list = classes();
    let Some(c) = list.get(app.dscp.class.min(list.len() - 1)) else {
        return;
    };
    let s = &mut app.dscp;
    s.byte = Dscp::new(c.value)
        .expect("class table is six-bit")
        .to_byte();
    s.input = Input::new(c.names[0].to_string());
    s.error = None;
}

/// The class list's selection is the value already chosen: Enter moves on.
fn class_is_chosen(app: &App) -> bool {
    let list = classes();
    app.dscp.error.is_none()
        && list
            .get(app.dscp.class)
            .is_some_and(|c| c.value == app.dscp.byte.dscp().value())
}

fn focus(app: &mut App, f: DscpFocus) {
    app.dscp.focus = f;
    if f == DscpFocus::Classes
        && let Some(i) = class_index(app.dscp.byte.dscp().value())
    {
        app.dscp.class = i;
    }
}

fn is_plus(key: &KeyEvent) -> bool {
    matches!(key.code, KeyCode::Char('+'))
}

fn is_minus(key: &KeyEvent, s: &DscpState) -> bool {
    // `-` continues `voice` into `voice-admit` while typing.
    key.code == KeyCode::Char('-')
        && !(s.focus == DscpFocus::Input && s.input.value().trim().eq_ignore_ascii_case("voice"))
}

pub fn key(app: &mut App, key: KeyEvent) -> Handled {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return Handled::No;
    }
    // A new key answers the last notice (a refused step, the ECN note).
    app.notice = None;
    let s = &app.dscp;
    match key.code {
        KeyCode::Esc => return Handled::No,
        KeyCode::Tab => {
            let next = match s.focus {
                DscpFocus::Input => DscpFocus::Bits,
                DscpFocus::Bits => DscpFocus::Classes,
                DscpFocus::Classes => DscpFocus::Input,
            };
            focus(app, next);
        }
        KeyCode::BackTab => {
            let prev = match s.focus {
                DscpFocus::Input => DscpFocus::Classes,
                DscpFocus::Bits => DscpFocus::Input,
                DscpFocus::Classes => DscpFocus::Bits,
            };
            focus(app, prev);
        }
        _ if is_plus(&key) => step(app, true),
        _ if is_minus(&key, s) => step(app, false),
        _ => {
            let handled = match s.focus {
                DscpFocus::Input => input_key(app, key),
                DscpFocus::Bits => bits_key(app, key),
                DscpFocus::Classes => classes_key(app, key),
            };
            if !handled {
                return Handled::No;
            }
        }
    }
    Handled::done()
}

fn input_key(app: &mut App, key: KeyEvent) -> bool {
    match key.code {
        KeyCode::Enter => false,
        KeyCode::Up => {
            step(app, true);
            true
        }
        KeyCode::Down => {
            step(app, false);
            true
        }
        _ => {
            if app.dscp.input.handle_event(&Event::Key(key)).is_none() {
                return false;
            }
            reparse(&mut app.dscp);
            true
        }
    }
}

fn bits_key(app: &mut App, key: KeyEvent) -> bool {
    let s = &mut app.dscp;
    match key.code {
        KeyCode::Left | KeyCode::Char('h') => s.cursor = (s.cursor + 1).min(7),
        KeyCode::Right | KeyCode::Char('l') => s.cursor = s.cursor.min(7).saturating_sub(1),
        KeyCode::Home => s.cursor = 7,
        KeyCode::End => s.cursor = 0,
        KeyCode::Up => step(app, true),
        KeyCode::Down => step(app, false),
        KeyCode::Char(' ') => toggle_bit(app),
        _ => return false,
    }
    true
}

fn classes_key(app: &mut App, key: KeyEvent) -> bool {
    let n = classes().len();
    let s = &mut app.dscp;
    match key.code {
        KeyCode::Up | KeyCode::Left | KeyCode::Char('k') | KeyCode::Char('h') => {
            s.class = s.class.min(n - 1).saturating_sub(1)
        }
        KeyCode::Down | KeyCode::Right | KeyCode::Char('j') | KeyCode::Char('l') => {
            s.class = (s.class + 1).min(n - 1)
        }
        KeyCode::Home => s.class = 0,
        KeyCode::End => s.class = n - 1,
        // Enter picks the class; on the class already chosen it moves on.
        KeyCode::Enter if class_is_chosen(app) => return false,
        KeyCode::Enter | KeyCode::Char(' ') => choose_class(app),
        _ => return false,
    }
    true
}

pub fn hints(app: &App) -> Vec<Hint> {
    match app.dscp.focus {
        DscpFocus::Input => vec![
            ("type", "any notation"),
            ("+/-", "step"),
            ("Tab", "bits"),
            ("Enter", "next"),
        ],
        DscpFocus::Bits => vec![
            ("←→", "bit"),
            ("Space", "flip"),
            ("+/-", "step"),
            ("Tab", "classes"),
            ("Enter", "next"),
        ],
        DscpFocus::Classes => vec![
            ("↑↓", "class"),
            (
                "Enter",
                if class_is_chosen(app) {
                    "next"
                } else {
                    "choose"
                },
            ),
            ("Tab", "field"),
        ],
    }
}

// ---------------------------------------------------------------- layout helpers

/// A run of lines the layout keeps or drops as a whole. Higher `keep` is
/// kept first when the screen is short; a `shrink` block may be cut (after
/// a whole item when it has items), and then says how much is hidden.
pub(super) struct Block {
    pub lines: Vec<Line<'static>>,
    pub keep: u8,
    pub shrink: bool,
    /// Where each item (a warning, a note) starts, for cutting between them.
    pub items: Vec<usize>,
}

impl Block {
    pub fn new(keep: u8, lines: Vec<Line<'static>>) -> Block {
        Block {
            lines,
            keep,
            shrink: false,
            items: Vec::new(),
        }
    }

    pub fn shrinking(keep: u8, lines: Vec<Line<'static>>) -> Block {
        Block {
            shrink: true,
            ..Block::new(keep, lines)
        }
    }

    /// A list of wrapped items, cut between items when short of room.
    pub fn items(keep: u8, items: Vec<Vec<Line<'static>>>) -> Block {
        let mut b = Block::shrinking(keep, Vec::new());
        for item in items {
            b.items.push(b.lines.len());
            b.lines.extend(item);
        }
        b
    }

    pub fn blank(keep: u8) -> Block {
        Block::new(keep, vec![Line::default()])
    }

    /// Lines to show in `budget` rows: all, some and a "more" line, or none.
    fn take(&self, budget: usize) -> usize {
        let n = self.lines.len();
        if n <= budget {
            return n;
        }
        if !self.shrink || budget < 2 {
            return 0;
        }
        // Whole items and the "more" line, else as many lines as fit.
        match self.items.iter().rev().find(|s| **s > 0 && **s < budget) {
            Some(s) => s + 1,
            None => budget,
        }
    }
}

/// Fit blocks into `height` rows, most important first, shown in their
/// order. Returns the lines and the first row of each block kept.
pub(super) fn fit(
    blocks: Vec<Block>,
    height: usize,
    width: u16,
    theme: &Theme,
) -> (Vec<Line<'static>>, Vec<Option<usize>>) {
    let mut order: Vec<usize> = (0..blocks.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse(blocks[*i].keep));
    let mut budget = height;
    let mut take = vec![0usize; blocks.len()];
    for i in order {
        take[i] = blocks[i].take(budget);
        budget -= take[i];
    }
    let mut out = Vec::new();
    let mut starts = Vec::with_capacity(blocks.len());
    for (i, b) in blocks.into_iter().enumerate() {
        let n = take[i];
        if n == 0 {
            starts.push(None);
            continue;
        }
        starts.push(Some(out.len()));
        let hidden = b.lines.len() - n;
        let mut lines = b.lines;
        lines.truncate(n);
        if hidden > 0 {
            let last = lines.len() - 1;
            lines[last] = Line::styled(
                format!(
                    "    … {} more lines: a taller window shows them",
                    hidden + 1
                ),
                theme.dim(),
            );
        }
        out.extend(lines);
    }
    let out = out.into_iter().map(|l| clip(l, width as usize)).collect();
    (out, starts)
}

/// Cut a line to `width` columns, ending in `…` when something was cut.
fn clip(line: Line<'static>, width: usize) -> Line<'static> {
    if line.width() <= width {
        return line;
    }
    let mut used = 0;
    let mut spans = Vec::new();
    for span in line.spans {
        let w = span.width();
        if used + w < width {
            used += w;
            spans.push(span);
            continue;
        }
        let room = width.saturating_sub(used + 1);
        let text: String = span.content.chars().take(room).collect();
        spans.push(Span::styled(format!("{text}…"), span.style));
        break;
    }
    Line::from(spans).style(line.style)
}

/// Columns for a value right of the label column.
fn value_width(width: u16) -> usize {
    (width as usize).saturating_sub(LABEL).max(12)
}

/// `  Label     value`, prose wrapped under the value column.
fn row(theme: &Theme, label: &str, value: &str, width: u16, style: Style) -> Vec<Line<'static>> {
    wrap(value, value_width(width))
        .into_iter()
        .enumerate()
        .map(|(i, text)| {
            let lead = if i == 0 {
                format!("  {label:<w$}", w = LABEL - 2)
            } else {
                " ".repeat(LABEL)
            };
            Line::from(vec![
                Span::styled(lead, theme.dim()),
                Span::styled(text, style),
            ])
        })
        .collect()
}

/// `  Label     expr · expr`: expressions packed between ` · `, never
/// broken inside one; `one_per_line` puts each on its own line.
fn expr_row(
    theme: &Theme,
    label: &str,
    items: &[String],
    width: u16,
    one_per_line: bool,
) -> Vec<Line<'static>> {
    let w = value_width(width);
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut used = 0;
    for item in items {
        let n = item.chars().count();
        match lines.last_mut() {
            Some(cur) if !one_per_line && used + 3 + n <= w => {
                cur.push(item.clone());
                used += 3 + n;
            }
            _ => {
                lines.push(vec![item.clone()]);
                used = n;
            }
        }
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, items)| {
            let lead = if i == 0 {
                format!("  {label:<w$}", w = LABEL - 2)
            } else {
                " ".repeat(LABEL)
            };
            let mut spans = vec![Span::styled(lead, theme.dim())];
            for (j, item) in items.into_iter().enumerate() {
                if j > 0 {
                    spans.push(Span::styled(" · ", theme.dim()));
                }
                spans.push(Span::styled(item, theme.command()));
            }
            Line::from(spans)
        })
        .collect()
}

/// Two columns of lines side by side, the left padded to `left_width`.
fn beside(
    left: Vec<Line<'static>>,
    right: Vec<Line<'static>>,
    left_width: usize,
) -> Vec<Line<'static>> {
    let n = left.len().max(right.len());
    let mut left = left.into_iter();
    let mut right = right.into_iter();
    (0..n)
        .map(|_| {
            let l = clip(left.next().unwrap_or_default(), left_width);
            let pad = left_width.saturating_sub(l.width());
            let mut spans = l.spans;
            spans.push(Span::raw(" ".repeat(pad)));
            if let Some(r) = right.next() {
                spans.extend(r.spans);
            }
            Line::from(spans)
        })
        .collect()
}

fn heading(theme: &Theme, text: &str) -> Line<'static> {
    Line::styled(format!(" {text}"), theme.title())
}

/// Wide and tall enough for the side-by-side layout with every section.
fn roomy(area: Rect) -> bool {
    area.width >= 100 && area.height >= 30
}

// ---------------------------------------------------------------- the info panel

/// `for a private signal use pool 2: 3, 7, 11, … 63 (nearest: 43, 47)`.
fn pool_advice(v: u8) -> String {
    let near: Vec<String> = nearest_pool_two(v).iter().map(u8::to_string).collect();
    format!("{PRIVATE} (nearest: {})", near.join(", "))
}

/// Pool-2 values next to `v`, below and above.
fn nearest_pool_two(v: u8) -> Vec<u8> {
    let two = |x: &u8| Pool::of(Dscp::new(*x).expect("six-bit")) == Pool::Two;
    let below = (0..v).rev().find(two);
    let above = (v + 1..=Dscp::MAX).find(two);
    below.into_iter().chain(above).collect()
}

/// Everything about one byte below the bit layout, as blocks: meaning,
/// warnings and notes, expressions. `learn` adds the ECN reading and notes
/// and drops the wizard's advice.
pub(super) fn panel(
    e: &Explanation,
    byte: DsByte,
    area: Rect,
    learn: bool,
    theme: &Theme,
) -> Vec<Block> {
    let width = area.width;
    let roomy = roomy(area);
    let plain = Style::new();
    let legacy = Legacy::of(byte);

    // Meaning rows: (keep, lines), wrapped to their column.
    let mut meaning: Vec<(u8, Vec<Line<'static>>)> = Vec::new();
    let col = if roomy { width / 2 } else { width };
    let mcol = if roomy { col - 2 } else { col };
    if learn {
        let ecn = format!("{} {}: {}", e.ecn, e.ecn_name, e.ecn_description);
        meaning.push((87, row(theme, "ECN", &ecn, mcol, plain)));
    }
    let phb = match (&e.name, &e.long_name, e.rfc) {
        (Some(n), Some(long), Some(rfc)) => format!("{n}: {long} ({rfc})"),
        _ => "none: an unassigned code point".to_string(),
    };
    match e.service_class {
        // Short enough: the RFC 4594 class on the same line.
        Some(sc) if !roomy && phb.chars().count() + sc.chars().count() + 3 <= value_width(mcol) => {
            meaning.push((86, row(theme, "PHB", &format!("{phb} · {sc}"), mcol, plain)));
        }
        Some(sc) => {
            meaning.push((86, row(theme, "PHB", &phb, mcol, plain)));
            meaning.push((58, row(theme, "RFC 4594", sc, mcol, plain)));
        }
        None => meaning.push((86, row(theme, "PHB", &phb, mcol, plain))),
    }
    let pool = format!("{} ({}): {}", e.pool, e.pool_pattern, e.pool_description);
    meaning.push((84, row(theme, "Pool", &pool, mcol, plain)));
    // The wizard gives this advice under its field.
    if e.pool != 2 && learn {
        let advice = format!("→ {}", pool_advice(e.dscp));
        meaning.push((40, row(theme, "", &advice, mcol, plain)));
    }
    let tos = match (legacy.tos_letters.is_empty(), legacy.rfc1349_valid) {
        (true, _) => "no TOS bits".to_string(),
        (false, true) => format!(
            "TOS {} ({:#04x}): {}",
            legacy.tos_letters.join(" "),
            legacy.tos_bits,
            legacy.tos_meanings.join(", ")
        ),
        (false, false) => format!(
            "TOS {} ({:#04x}): not valid in RFC 1349",
            legacy.tos_letters.join(" "),
            legacy.tos_bits
        ),
    };
    let precedence = format!("precedence {} {}", e.precedence, e.precedence_name);
    if roomy {
        meaning.push((
            50,
            row(
                theme,
                "Legacy",
                &format!("{precedence} (RFC 791)"),
                mcol,
                plain,
            ),
        ));
        meaning.push((
            49,
            row(theme, "TOS bits", &legacy.tos_summary(), mcol, plain),
        ));
    } else {
        meaning.push((
            50,
            row(
                theme,
                "Legacy",
                &format!("{precedence} · {tos}"),
                mcol,
                plain,
            ),
        ));
    }
    let wifi = format!(
        "user priority {} → AC_{} ({})",
        e.wifi_up, e.wifi_ac, e.wifi_ac_name
    );
    // A Wi-Fi warning already says it; keep the line only when there is room.
    let wifi_keep = if e.wifi_ac == "BE" { 45 } else { 6 };
    meaning.push((wifi_keep, row(theme, "Wi-Fi", &wifi, mcol, plain)));

    let wcol = if roomy { width - col } else { width };
    let warnings: Vec<Vec<Line<'static>>> = e
        .warnings
        .iter()
        .map(|w| field::message_lines(theme.warning(), "!", w, wcol))
        .collect();
    // The ECN note first: in Learn it explains the bits just flipped.
    let mut notes: Vec<Vec<Line<'static>>> = Vec::new();
    if learn || roomy {
        notes = e
            .notes
            .iter()
            .rev()
            .map(|n| field::message_lines(theme.dim(), "-", n, wcol))
            .collect();
    }

    let mut blocks = Vec::new();
    if roomy {
        let mut left = vec![heading(theme, "Meaning")];
        left.extend(meaning.into_iter().flat_map(|(_, l)| l));
        let mut right = Vec::new();
        if !warnings.is_empty() {
            right.push(heading(theme, "Warnings"));
            right.extend(warnings.into_iter().flatten());
        }
        if !notes.is_empty() {
            right.push(heading(theme, "Notes"));
            right.extend(notes.into_iter().flatten());
        }
        blocks.push(Block::shrinking(85, beside(left, right, col as usize)));
    } else {
        for (keep, lines) in meaning {
            blocks.push(Block::new(keep, lines));
        }
        blocks.push(Block::items(70, warnings));
        blocks.push(Block::items(15, notes));
    }

    let x = &e.expressions;
    if roomy {
        blocks.push(Block::blank(6));
        blocks.push(Block::new(
            24,
            vec![heading(
                theme,
                "Expressions (the DSCP is 6 bits; -j TOS and tcpdump's tos take the whole byte)",
            )],
        ));
    }
    let mut ipt = vec![x.iptables_set.clone(), x.iptables_match.clone()];
    if roomy {
        ipt.extend(x.iptables_set_class.clone());
        ipt.push(format!("{} (keeps ECN)", x.iptables_set_tos));
    }
    blocks.push(Block::new(
        80,
        expr_row(theme, "iptables", &ipt, width, false),
    ));
    let mut nft = vec![
        x.nft_set.clone(),
        x.nft_match.clone(),
        x.nft_set_v6.clone(),
        x.nft_match_v6.clone(),
    ];
    if roomy && let Some(n) = &x.nft_name {
        nft.push(format!("ip dscp {n}"));
    }
    blocks.push(Block::new(79, expr_row(theme, "nft", &nft, width, false)));
    let both_fits = (width as usize).saturating_sub(LABEL) >= x.tcpdump.chars().count();
    let tcpdump = if both_fits {
        vec![x.tcpdump.clone()]
    } else {
        vec![x.tcpdump_v4.clone(), x.tcpdump_v6.clone()]
    };
    blocks.push(Block::new(
        78,
        expr_row(theme, "tcpdump", &tcpdump, width, true),
    ));
    if roomy {
        blocks.push(Block::new(
            26,
            expr_row(
                theme,
                "Wireshark",
                std::slice::from_ref(&x.wireshark),
                width,
                false,
            ),
        ));
        let r = &x.ip_rule;
        let v4 = match &r.v4_selector {
            Some(sel) => {
                let also: Vec<String> = r.v4_also_matches.iter().map(u8::to_string).collect();
                format!("IPv4 {sel} (also DSCP {})", also.join(", "))
            }
            None => "IPv4 tos refused (bits outside 0x1c)".to_string(),
        };
        let items = [
            v4,
            format!("IPv6 {} (exact)", r.v6_selector),
            format!("{} (exact; {})", r.dscp_selector, r.dscp_selector_requires),
        ];
        blocks.push(Block::new(
            22,
            expr_row(theme, "ip rule", &items, width, false),
        ));
    }
    blocks
}

// ---------------------------------------------------------------- render

/// The class list: a header line (what the selected entry is, when the
/// list has focus), then the names grouped CS / AF / others, a group per
/// row where it fits. `[AF41]` is the selection, `*` marks the value shown.
fn class_lines(app: &App, width: u16) -> Vec<Line<'static>> {
    let t = &app.theme;
    let s = &app.dscp;
    let focused = s.focus == DscpFocus::Classes;
    let current = s.byte.dscp().value();
    let list = classes();

    let lead = Span::styled(
        format!("  {:<w$}", "Classes", w = LABEL - 2),
        if focused { t.key() } else { t.dim() },
    );
    let header = match list.get(s.class).filter(|_| focused) {
        Some(c) => {
            let e = Explanation::of(Dscp::new(c.value).expect("six-bit").to_byte());
            let aliases = if c.names.len() > 1 {
                format!(" (also {})", c.names[1..].join(", "))
            } else {
                String::new()
            };
            let what = e
                .service_class
                .map(str::to_string)
                .or(e.long_name)
                .unwrap_or_default();
            let action = if c.value == current {
                "chosen: Enter moves on"
            } else {
                "Enter or Space chooses it"
            };
            Line::from(vec![
                lead,
                Span::raw(format!(
                    "{} = DSCP {}{aliases}: {what} · ",
                    c.label(),
                    c.value
                )),
                Span::styled(action, t.key()),
            ])
        }
        None => Line::from(vec![
            lead,
            Span::styled("named code points; Tab to the list to pick one", t.dim()),
        ]),
    };

    // Each group as (width, spans).
    let mut groups: Vec<(usize, Vec<Span<'static>>)> = Vec::new();
    let mut last_group = "";
    for (i, c) in list.iter().enumerate() {
        let group = match &c.names[0][..2] {
            g @ ("cs" | "af") => g,
            _ => "",
        };
        if groups.is_empty() || group != last_group {
            groups.push((0, Vec::new()));
            last_group = group;
        }
        let label = c.label();
        let (text, style) = if focused && i == s.class {
            (format!("[{label}]"), t.selected())
        } else if c.value == current {
            (format!("*{label} "), t.title())
        } else {
            (format!(" {label} "), Style::new())
        };
        let g = groups.last_mut().expect("pushed above");
        g.0 += text.chars().count();
        g.1.push(Span::styled(text, style));
    }
    // Pack: a group joins the row when it fits, else starts one; a group too
    // wide for any row is packed name by name.
    let avail = (width as usize).saturating_sub(2);
    let mut rows: Vec<(usize, Vec<Span<'static>>)> = Vec::new();
    for (w, spans) in groups {
        let fits_row = |rows: &Vec<(usize, Vec<Span<'static>>)>, w: usize| {
            rows.last().is_some_and(|(used, _)| used + 1 + w <= avail)
        };
        if fits_row(&rows, w) {
            let (used, cur) = rows.last_mut().expect("checked");
            cur.push(Span::raw(" "));
            cur.extend(spans);
            *used += 1 + w;
        } else if w <= avail {
            rows.push((w, spans));
        } else {
            for span in spans {
                let n = span.width();
                if rows.last().is_some_and(|(used, _)| used + n <= avail) {
                    let (used, cur) = rows.last_mut().expect("checked");
                    cur.push(span);
                    *used += n;
                } else {
                    rows.push((n, vec![span]));
                }
            }
        }
    }
    let mut lines = vec![header];
    lines.extend(rows.into_iter().map(|(_, spans)| {
        let mut v = vec![Span::raw("  ")];
        v.extend(spans);
        Line::from(v)
    }));
    lines
}

/// The field's status under it: the error, or the ToS-byte heads-up.
pub(super) fn status_lines(
    theme: &Theme,
    error: Option<&str>,
    hint: Option<&str>,
    width: u16,
) -> Vec<Line<'static>> {
    match (error, hint) {
        (Some(e), _) => field::message_lines(theme.error(), "✗", e, width),
        (None, Some(h)) => field::message_lines(theme.warning(), "!", h, width),
        (None, None) => vec![Line::default()],
    }
}

/// Under the wizard's field: the error, the ToS-byte heads-up, or whether
/// the value suits a private signal.
fn wizard_status(
    theme: &Theme,
    e: &Explanation,
    error: Option<&str>,
    hint: Option<&str>,
    width: u16,
) -> Vec<Line<'static>> {
    if error.is_some() || hint.is_some() {
        return status_lines(theme, error, hint, width);
    }
    if e.pool == 2 {
        field::message_lines(
            theme.ok(),
            "✓",
            &format!("pool 2 ({}): right for a private signal", e.pool_pattern),
            width,
        )
    } else {
        field::message_lines(Style::new(), "→", &pool_advice(e.dscp), width)
    }
}

/// The live reading right of the field: what the text means, or that it is
/// invalid and which value is still shown.
pub(super) fn echo(theme: &Theme, ok: bool, e: &Explanation) -> Line<'static> {
    let name = e
        .name
        .clone()
        .unwrap_or_else(|| format!("unassigned, pool {}", e.pool));
    if ok {
        Line::from(vec![
            Span::styled("= ", theme.dim()),
            Span::styled(format!("DSCP {} · {name}", e.dscp), theme.title()),
        ])
    } else {
        Line::from(vec![
            Span::styled("✗ not valid", theme.error()),
            Span::styled(format!(" · still showing DSCP {}", e.dscp), theme.dim()),
        ])
    }
}

/// Row `row` of `area` (fit never returns more rows than the area has).
pub(super) fn row_rect(area: Rect, row: usize) -> Rect {
    Rect::new(area.x, area.y + row as u16, area.width, 1).intersection(area)
}

/// Draw the field and its echo on the one-row `area`.
pub(super) fn draw_field(
    f: &mut Frame,
    area: Rect,
    theme: &Theme,
    label: &str,
    input: &Input,
    focused: bool,
    echo: Line<'static>,
) {
    let y = area.y;
    let w = FIELD_WIDTH.min(area.width);
    field::render(
        f,
        Rect::new(area.x, y, w, 1),
        theme,
        label,
        input,
        focused,
        "type a value",
    );
    if area.width > w + 2 {
        let rest = Rect::new(area.x + w + 1, y, area.width - w - 1, 1);
        f.render_widget(Paragraph::new(clip(echo, rest.width as usize)), rest);
    }
}

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    let t = &app.theme;
    let s = &app.dscp;
    let e = Explanation::of(s.byte);
    let error = parsed(s).err();
    let hint = tos_hint(s);
    let roomy = roomy(area);

    let mut blocks = vec![
        Block::new(
            40,
            vec![Line::styled(
                " Which DSCP carries the signal? Any notation: 7, 0x07, 0b000111, af41, ef.",
                t.title(),
            )],
        ),
        // The field is drawn over this row.
        Block::new(100, vec![Line::default()]),
        // An error outranks the bit layout; advice does not.
        Block::shrinking(
            match (&error, &hint) {
                (Some(_), _) => 95,
                (None, Some(_)) => 80,
                (None, None) => 60,
            },
            wizard_status(t, &e, error.as_deref(), hint.as_deref(), area.width),
        ),
        Block::new(
            90,
            bits::lines(
                s.byte,
                (s.focus == DscpFocus::Bits).then_some(s.cursor.min(7)),
                t,
                area.width,
            ),
        ),
        Block::blank(7),
    ];
    blocks.extend(panel(&e, s.byte, area, false, t));
    let classes = class_lines(app, area.width);
    if s.focus == DscpFocus::Classes {
        blocks.push(Block::blank(6));
        blocks.push(Block::new(92, classes));
    } else if roomy {
        blocks.push(Block::blank(6));
        blocks.push(Block::new(20, classes));
    } else {
        blocks.push(Block::new(
            30,
            vec![Line::from(vec![
                Span::styled(format!("  {:<w$}", "Classes", w = LABEL - 2), t.dim()),
                Span::raw("CS0–CS7 · AF11–AF43 · EF · VA · LE · NQB "),
                Span::styled("(Tab to the list)", t.dim()),
            ])],
        ));
    }

    let (lines, starts) = fit(blocks, area.height as usize, area.width, t);
    f.render_widget(Paragraph::new(lines), area);
    if let Some(row) = starts[1] {
        draw_field(
            f,
            row_rect(area, row),
            t,
            "DSCP",
            &s.input,
            s.focus == DscpFocus::Input,
            echo(t, error.is_none(), &e),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::ScreenId;
    use crate::tui::testing::{app, press, render, type_str};

    /// The wizard on the DSCP screen (client role, group torrent).
    fn at_dscp() -> App {
        let mut a = app("client.json");
        press(&mut a, KeyCode::Enter);
        type_str(&mut a, "torrent");
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.screen, ScreenId::Dscp);
        a
    }

    fn clear(a: &mut App) {
        for _ in 0..a.dscp.input.value().chars().count() {
            press(a, KeyCode::Backspace);
        }
    }

    fn dscp(a: &App) -> u8 {
        a.dscp.byte.dscp().value()
    }

    #[test]
    fn classes_fold_aliases() {
        let c = classes();
        let names: Vec<String> = c.iter().map(Class::label).collect();
        assert_eq!(names.len(), 24, "{names:?}");
        assert_eq!(&names[..3], ["CS0", "CS1", "CS2"]);
        assert!(names.contains(&"AF43".into()) && names.contains(&"LE".into()));
        assert_eq!(c[0].names, ["cs0", "df", "be"]);
        let va = c.iter().find(|x| x.value == 44).unwrap();
        assert_eq!(va.names, ["va", "voice-admit"]);
    }

    #[test]
    fn typing_any_notation_updates_the_byte() {
        let mut a = at_dscp();
        assert_eq!(dscp(&a), 7);
        clear(&mut a);
        type_str(&mut a, "af41");
        assert_eq!(dscp(&a), 34);
        assert_eq!(a.dscp.byte.value(), 0x88);
        assert_eq!(a.dscp.error, None);
        for (text, v) in [
            ("0x07", 7),
            ("0b101110", 46),
            ("EF", 46),
            ("le", 1),
            ("63", 63),
        ] {
            clear(&mut a);
            type_str(&mut a, text);
            assert_eq!(dscp(&a), v, "{text}");
        }
        clear(&mut a);
        type_str(&mut a, "voice-admit");
        assert_eq!(dscp(&a), 44, "- continues voice-admit");
    }

    #[test]
    fn invalid_input_keeps_the_byte_and_blocks_enter() {
        let mut a = at_dscp();
        clear(&mut a);
        type_str(&mut a, "64");
        assert_eq!(dscp(&a), 6, "the last valid value (6) stays");
        let err = a.dscp.error.clone().unwrap();
        assert!(err.contains("0–63") && err.contains("af41"), "{err}");
        assert!(err.contains("As a whole ToS byte, 64 is DSCP 16"), "{err}");
        assert!(!err.contains("--tos"), "no CLI flags in the TUI: {err}");
        press(&mut a, KeyCode::Enter);
        assert_eq!(
            a.screen,
            ScreenId::Dscp,
            "never advances past an invalid step"
        );
        assert!(a.notice.is_some());
        let screen = render(&a, 80, 24);
        assert!(screen.contains("✗ DSCP 64 is out of range"), "{screen}");
        assert!(screen.contains("still showing DSCP 6"), "{screen}");
        press(&mut a, KeyCode::Backspace);
        assert_eq!(a.dscp.error, None);
        assert_eq!(dscp(&a), 6);
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.screen, ScreenId::Preview);
    }

    #[test]
    fn every_bad_text_names_what_is_accepted() {
        for text in ["", "64", "-1", "cs10", "7x", "0x40", "nope", "256"] {
            let m = message(&parse_value(text, false).unwrap_err());
            assert!(m.contains("0–63") && !m.contains("--tos"), "{text}: {m}");
        }
    }

    #[test]
    fn dscp_zero_is_refused_as_a_signal() {
        let mut a = at_dscp();
        clear(&mut a);
        type_str(&mut a, "0");
        assert_eq!(dscp(&a), 0);
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.screen, ScreenId::Dscp);
        assert!(
            a.notice.as_deref().unwrap().contains("pool 2"),
            "{:?}",
            a.notice
        );
    }

    #[test]
    fn plus_and_minus_step_and_keep_the_notation() {
        let mut a = at_dscp();
        press(&mut a, KeyCode::Char('+'));
        assert_eq!((dscp(&a), a.dscp.input.value()), (8, "8"));
        press(&mut a, KeyCode::Char('-'));
        press(&mut a, KeyCode::Char('-'));
        assert_eq!(dscp(&a), 6);
        clear(&mut a);
        type_str(&mut a, "0x3e");
        press(&mut a, KeyCode::Char('+'));
        assert_eq!((dscp(&a), a.dscp.input.value()), (63, "0x3f"));
        press(&mut a, KeyCode::Char('+'));
        assert_eq!(dscp(&a), 63, "stops at 63");
        assert!(a.notice.as_deref().unwrap().contains("largest"));
        press(&mut a, KeyCode::Down);
        assert_eq!(a.dscp.input.value(), "0x3e");
        // From an invalid text, +/- start from the value shown.
        type_str(&mut a, "zz");
        assert!(a.dscp.error.is_some());
        press(&mut a, KeyCode::Char('+'));
        assert_eq!((dscp(&a), a.dscp.error.clone()), (63, None));
        assert_eq!(a.dscp.input.value(), "0x3f", "in the notation begun");
    }

    #[test]
    fn tab_cycles_focus_and_bits_flip() {
        let mut a = at_dscp();
        assert_eq!(a.dscp.focus, DscpFocus::Input);
        press(&mut a, KeyCode::Tab);
        assert_eq!(a.dscp.focus, DscpFocus::Bits);
        // Cursor starts on bit 7; move to bit 2 and flip: 7 → 6.
        for _ in 0..5 {
            press(&mut a, KeyCode::Right);
        }
        assert_eq!(a.dscp.cursor, 2);
        press(&mut a, KeyCode::Char(' '));
        assert_eq!(dscp(&a), 6);
        assert_eq!(a.dscp.input.value(), "6");
        // ECN bits stay 0 in the wizard.
        press(&mut a, KeyCode::Char('l'));
        press(&mut a, KeyCode::Char('l'));
        press(&mut a, KeyCode::Char('l'));
        assert_eq!(a.dscp.cursor, 0);
        press(&mut a, KeyCode::Char(' '));
        assert_eq!(a.dscp.byte.value(), 6 << 2);
        assert!(
            a.notice
                .as_deref()
                .unwrap()
                .contains("ECN is set by the transport")
        );
        press(&mut a, KeyCode::Tab);
        assert_eq!(a.dscp.focus, DscpFocus::Classes);
        press(&mut a, KeyCode::BackTab);
        assert_eq!(a.dscp.focus, DscpFocus::Bits);
        press(&mut a, KeyCode::BackTab);
        press(&mut a, KeyCode::BackTab);
        assert_eq!(a.dscp.focus, DscpFocus::Classes);
        press(&mut a, KeyCode::Tab);
        assert_eq!(a.dscp.focus, DscpFocus::Input);
    }

    #[test]
    fn class_list_picks_and_enter_does_not_advance_until_chosen() {
        let mut a = at_dscp();
        press(&mut a, KeyCode::Tab);
        press(&mut a, KeyCode::Tab);
        assert_eq!(a.dscp.focus, DscpFocus::Classes);
        // 7 has no name: the list starts on CS0. Go to EF.
        let ef = classes().iter().position(|c| c.value == 46).unwrap();
        for _ in 0..ef {
            press(&mut a, KeyCode::Down);
        }
        assert_eq!(dscp(&a), 7, "moving in the list does not choose");
        press(&mut a, KeyCode::Enter);
        assert_eq!(a.screen, ScreenId::Dscp, "Enter chose the class");
        assert_eq!(dscp(&a), 46);
        assert_eq!(a.dscp.input.value(), "ef");
        assert_eq!(hints(&a)[1], ("Enter", "next"));
        press(&mut a, KeyCode::Up);
        press(&mut a, KeyCode::Char(' '));
        assert_eq!(dscp(&a), 38, "AF43 precedes EF");
        press(&mut a, KeyCode::Enter);
        assert_eq!(
            a.screen,
            ScreenId::Preview,
            "Enter on the chosen class moves on"
        );
    }

    #[test]
    fn hints_follow_the_focus() {
        let mut a = at_dscp();
        assert!(hints(&a).contains(&("+/-", "step")));
        press(&mut a, KeyCode::Tab);
        assert!(hints(&a).contains(&("Space", "flip")));
        press(&mut a, KeyCode::Tab);
        assert_eq!(hints(&a)[1], ("Enter", "choose"));
    }

    #[test]
    fn hex_that_looks_like_a_tos_byte_is_flagged() {
        let mut a = at_dscp();
        clear(&mut a);
        type_str(&mut a, "0x1c");
        assert_eq!(dscp(&a), 28);
        let screen = render(&a, 80, 24);
        assert!(
            screen.contains("0x1c is read as DSCP 28 (AF32)"),
            "{screen}"
        );
        assert!(screen.contains("that byte is DSCP 7"), "{screen}");
    }

    #[test]
    fn every_dscp_fits_80x24_without_cutting_expressions() {
        let mut a = at_dscp();
        for v in 0..=63u8 {
            clear(&mut a);
            type_str(&mut a, &v.to_string());
            let s = render(&a, 80, 24);
            let x = crate::tos::Expressions::of(Dscp::new(v).unwrap());
            for needle in [&x.iptables_set, &x.nft_set, &x.tcpdump_v4, &x.tcpdump_v6] {
                assert!(s.contains(needle.as_str()), "DSCP {v}: {needle}\n{s}");
            }
            assert!(s.contains("tcpdump -v: tos"), "DSCP {v}\n{s}");
            for line in s.lines() {
                assert!(line.chars().count() <= 80);
            }
            let s = render(&a, 120, 40);
            assert!(s.contains(&x.tcpdump), "DSCP {v}\n{s}");
            assert!(
                !s.contains("more lines"),
                "DSCP {v} hides something at 120x40\n{s}"
            );
        }
    }

    #[test]
    fn snapshots_dscp_screen() {
        let mut a = at_dscp();
        for (name, text) in [("0", "0"), ("7", "7"), ("ef", "46")] {
            clear(&mut a);
            type_str(&mut a, text);
            insta::assert_snapshot!(format!("dscp_{name}_80x24"), render(&a, 80, 24));
            insta::assert_snapshot!(format!("dscp_{name}_120x40"), render(&a, 120, 40));
        }
        // Focus on the bits and on the class list.
        press(&mut a, KeyCode::Tab);
        insta::assert_snapshot!("dscp_bits_focus_80x24", render(&a, 80, 24));
        press(&mut a, KeyCode::Tab);
        insta::assert_snapshot!("dscp_classes_focus_80x24", render(&a, 80, 24));
        insta::assert_snapshot!("dscp_classes_focus_120x40", render(&a, 120, 40));
        // An error next to the field.
        press(&mut a, KeyCode::Tab);
        clear(&mut a);
        type_str(&mut a, "64");
        insta::assert_snapshot!("dscp_error_80x24", render(&a, 80, 24));
    }
}
