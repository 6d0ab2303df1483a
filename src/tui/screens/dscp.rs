//! Screen 3: the DSCP value, and the teaching centre. The value can be typed
//! in any notation, stepped with +/-, picked from the named classes or
//! changed bit by bit; everything about it (names, pool, legacy reading,
//! Wi-Fi priority, warnings, the expressions each tool takes) follows every
//! keystroke. The editor and the info panel are widgets Learn mode shares.

use super::{Handled, Hint};
use crate::explain::Explanation;
use crate::tos::{CLASS_NAMES, DsByte, Dscp, ParseError, parse_value};
use crate::tui::shared::Shared;
use crate::tui::theme::Theme;
use crate::tui::widgets::byte_input::{
    DscpFocus, DscpState, Notation, draw_field, echo, notation, row_rect, status_lines,
};
use crate::tui::widgets::fit::{Block, fit};
use crate::tui::widgets::panel::{LABEL, panel, pool_advice, roomy};
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

pub fn validate(s: &DscpState) -> Result<(), String> {
    if parsed(s)?.value() == 0 {
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
fn step(s: &mut DscpState, cx: &mut Shared, up: bool) {
    let v = s.byte.dscp().value();
    let next = if up {
        v.checked_add(1)
    } else {
        v.checked_sub(1)
    };
    match next.and_then(Dscp::new) {
        Some(d) => set_dscp(s, d),
        None => {
            // Still rewrite the field: it may hold an invalid text.
            let same = s.byte.dscp();
            set_dscp(s, same);
            cx.notice = Some(if up {
                "63 is the largest DSCP: it has six bits (0b111111)".into()
            } else {
                "0 is the smallest DSCP".into()
            });
        }
    }
}

fn toggle_bit(s: &mut DscpState, cx: &mut Shared) {
    let bit = s.cursor.min(7);
    if bit < 2 {
        cx.notice = Some(
            "ECN is set by the transport; the DSCP target keeps it. Flip ECN bits in Learn (F2)."
                .into(),
        );
        return;
    }
    let d = s.byte.toggle_bit(bit).dscp();
    set_dscp(s, d);
}

fn choose_class(s: &mut DscpState) {
    let list = classes();
    let Some(c) = list.get(s.class.min(list.len() - 1)) else {
        return;
    };
    s.byte = Dscp::new(c.value)
        .expect("class table is six-bit")
        .to_byte();
    s.input = Input::new(c.names[0].to_string());
    s.error = None;
}

/// The class list's selection is the value already chosen: Enter moves on.
fn class_is_chosen(s: &DscpState) -> bool {
    let list = classes();
    s.error.is_none()
        && list
            .get(s.class)
            .is_some_and(|c| c.value == s.byte.dscp().value())
}

fn focus(s: &mut DscpState, f: DscpFocus) {
    s.focus = f;
    if f == DscpFocus::Classes
        && let Some(i) = class_index(s.byte.dscp().value())
    {
        s.class = i;
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

pub fn key(s: &mut DscpState, cx: &mut Shared, key: KeyEvent) -> Handled {
    let handled = edit(s, cx, key);
    // The draft takes the value shown when it changed.
    let dscp = s.byte.dscp();
    if cx.draft().dscp != dscp {
        cx.draft_mut().dscp = dscp;
    }
    handled
}

fn edit(s: &mut DscpState, cx: &mut Shared, key: KeyEvent) -> Handled {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return Handled::No;
    }
    // A new key answers the last notice (a refused step, the ECN note).
    cx.notice = None;
    match key.code {
        KeyCode::Esc => return Handled::No,
        KeyCode::Tab => {
            let next = match s.focus {
                DscpFocus::Input => DscpFocus::Bits,
                DscpFocus::Bits => DscpFocus::Classes,
                DscpFocus::Classes => DscpFocus::Input,
            };
            focus(s, next);
        }
        KeyCode::BackTab => {
            let prev = match s.focus {
                DscpFocus::Input => DscpFocus::Classes,
                DscpFocus::Bits => DscpFocus::Input,
                DscpFocus::Classes => DscpFocus::Bits,
            };
            focus(s, prev);
        }
        _ if is_plus(&key) => step(s, cx, true),
        _ if is_minus(&key, s) => step(s, cx, false),
        _ => {
            let handled = match s.focus {
                DscpFocus::Input => input_key(s, cx, key),
                DscpFocus::Bits => bits_key(s, cx, key),
                DscpFocus::Classes => classes_key(s, key),
            };
            if !handled {
                return Handled::No;
            }
        }
    }
    Handled::done()
}

fn input_key(s: &mut DscpState, cx: &mut Shared, key: KeyEvent) -> bool {
    match key.code {
        KeyCode::Enter => false,
        KeyCode::Up => {
            step(s, cx, true);
            true
        }
        KeyCode::Down => {
            step(s, cx, false);
            true
        }
        _ => {
            if s.input.handle_event(&Event::Key(key)).is_none() {
                return false;
            }
            reparse(s);
            true
        }
    }
}

fn bits_key(s: &mut DscpState, cx: &mut Shared, key: KeyEvent) -> bool {
    match key.code {
        KeyCode::Left | KeyCode::Char('h') => s.cursor = (s.cursor + 1).min(7),
        KeyCode::Right | KeyCode::Char('l') => s.cursor = s.cursor.min(7).saturating_sub(1),
        KeyCode::Home => s.cursor = 7,
        KeyCode::End => s.cursor = 0,
        KeyCode::Up => step(s, cx, true),
        KeyCode::Down => step(s, cx, false),
        KeyCode::Char(' ') => toggle_bit(s, cx),
        _ => return false,
    }
    true
}

fn classes_key(s: &mut DscpState, key: KeyEvent) -> bool {
    let n = classes().len();
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
        KeyCode::Enter if class_is_chosen(s) => return false,
        KeyCode::Enter | KeyCode::Char(' ') => choose_class(s),
        _ => return false,
    }
    true
}

pub fn hints(s: &DscpState) -> Vec<Hint> {
    match s.focus {
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
            ("Enter", if class_is_chosen(s) { "next" } else { "choose" }),
            ("Tab", "field"),
        ],
    }
}

// ---------------------------------------------------------------- render

/// The class list: a header line (what the selected entry is, when the
/// list has focus), then the names grouped CS / AF / others, a group per
/// row where it fits. `[AF41]` is the selection, `*` marks the value shown.
fn class_lines(s: &DscpState, t: &Theme, width: u16) -> Vec<Line<'static>> {
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

/// The question; with `[[class]]`, for the class the Gateway step picked.
fn question(cx: &Shared) -> String {
    let d = cx.draft();
    if d.role.gateway() && !d.is_plain_gateway() {
        format!(
            " Class {}: which DSCP selects it? Any notation: 7, 0x07, af41, ef.",
            d.classes.name.value()
        )
    } else {
        " Which DSCP carries the signal? Any notation: 7, 0x07, 0b000111, af41, ef.".into()
    }
}

pub fn render(s: &DscpState, cx: &Shared, f: &mut Frame, area: Rect) {
    let t = &cx.theme;
    let e = Explanation::of(s.byte);
    let error = parsed(s).err();
    let hint = tos_hint(s);
    let roomy = roomy(area);

    let mut blocks = vec![
        Block::new(40, vec![Line::styled(question(cx), t.title())]),
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
    let classes = class_lines(s, t, area.width);
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
    use crate::tui::app::{App, ScreenId};
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
        assert_eq!(hints(&a.dscp)[1], ("Enter", "next"));
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
        assert!(hints(&a.dscp).contains(&("+/-", "step")));
        press(&mut a, KeyCode::Tab);
        assert!(hints(&a.dscp).contains(&("Space", "flip")));
        press(&mut a, KeyCode::Tab);
        assert_eq!(hints(&a.dscp)[1], ("Enter", "choose"));
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
