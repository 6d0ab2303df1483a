//! Learn mode (F2 / L from anywhere, `dscproute learn`): the bit layout
//! alone, to explore any whole DS byte, ECN bits included. The field takes
//! a whole byte (0–255 in any notation) or a class name, which sets the
//! DSCP and keeps the ECN bits; every bit can be flipped.

use super::{Handled, Hint};
use crate::explain::Explanation;
use crate::tos::{CLASS_NAMES, DsByte, Dscp, Ecn, ParseError, parse_value};
use crate::tui::shared::Shared;
use crate::tui::widgets::byte_input::{
    DscpFocus, DscpState, Notation, draw_field, echo, notation, row_rect, status_lines,
};
use crate::tui::widgets::fit::{Block, fit};
use crate::tui::widgets::panel::panel;
use crate::tui::widgets::{bits, field};
use ratatui::Frame;
use ratatui::crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use tui_input::Input;
use tui_input::backend::crossterm::EventHandler;

/// What the Learn field accepts.
const FORMS: &str = "use a whole byte 0–255 (0x00–0xff, 0b00000000–0b11111111) or a class \
                     name like af41 (cs0–cs7, af11–af43, ef, va, le, df/be)";

fn is_name(text: &str) -> bool {
    let t = text.trim().to_ascii_lowercase();
    CLASS_NAMES.iter().any(|(n, _)| *n == t)
}

/// The field as Learn reads it: a whole byte, or a class name for the DSCP
/// with the current ECN bits kept.
fn parse(text: &str, ecn: Ecn) -> Result<DsByte, String> {
    match parse_value(text, true) {
        Ok(p) => Ok(p.byte),
        Err(ParseError::NameWithTos { .. }) => parse_value(text, false)
            .map(|p| p.byte.with_ecn(ecn))
            .map_err(|e| e.to_string()),
        Err(ParseError::Empty) => Err(format!("type a byte: {FORMS}")),
        Err(ParseError::TosOutOfRange { given }) => {
            Err(format!("byte {given} is out of range: {FORMS}"))
        }
        Err(ParseError::Malformed { given, .. }) => {
            Err(format!("{given:?} is not a number: {FORMS}"))
        }
        Err(ParseError::UnknownName { given }) => {
            Err(format!("unknown class name {given:?}: {FORMS}"))
        }
        Err(e) => Err(e.to_string()),
    }
}

fn write_byte(b: u8, n: Notation) -> String {
    match n {
        Notation::Dec => b.to_string(),
        Notation::Hex => format!("{b:#04x}"),
        Notation::Bin => format!("0b{b:08b}"),
    }
}

/// The text the field shows: what was typed, or the byte in hex when the
/// state was set from elsewhere (the field and the byte disagree).
fn shown_text(s: &DscpState) -> Option<String> {
    if s.error.is_none() && parse(s.input.value(), s.byte.ecn()) != Ok(s.byte) {
        Some(format!("{:#04x}", s.byte.value()))
    } else {
        None
    }
}

/// Make the field agree with the byte before editing it.
fn sync(s: &mut DscpState) {
    if let Some(text) = shown_text(s) {
        s.input = Input::new(text);
    }
}

fn set_byte(s: &mut DscpState, byte: DsByte) {
    let n = if is_name(s.input.value()) {
        Notation::Hex
    } else {
        notation(s.input.value())
    };
    s.byte = byte;
    s.input = Input::new(write_byte(byte.value(), n));
    s.error = None;
}

/// Step the DSCP, keeping the ECN bits.
fn step(s: &mut DscpState, cx: &mut Shared, up: bool) {
    let v = s.byte.dscp().value();
    let next = if up {
        v.checked_add(1)
    } else {
        v.checked_sub(1)
    };
    match next.and_then(Dscp::new) {
        Some(d) => set_byte(s, s.byte.with_dscp(d)),
        None => {
            set_byte(s, s.byte);
            cx.notice = Some(if up {
                "63 is the largest DSCP: it has six bits (0b111111)".into()
            } else {
                "0 is the smallest DSCP".into()
            });
        }
    }
}

pub fn key(s: &mut DscpState, cx: &mut Shared, key: KeyEvent) -> Handled {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return Handled::No;
    }
    sync(s);
    let bits_focus = s.focus != DscpFocus::Input;
    cx.notice = None;
    match key.code {
        KeyCode::Esc | KeyCode::Enter => return Handled::No,
        KeyCode::Tab | KeyCode::BackTab => {
            s.focus = if bits_focus {
                DscpFocus::Input
            } else {
                DscpFocus::Bits
            };
        }
        KeyCode::Char('+') => step(s, cx, true),
        // `-` continues `voice` into `voice-admit` while typing.
        KeyCode::Char('-')
            if bits_focus || !s.input.value().trim().eq_ignore_ascii_case("voice") =>
        {
            step(s, cx, false)
        }
        KeyCode::Up => step(s, cx, true),
        KeyCode::Down => step(s, cx, false),
        KeyCode::Left | KeyCode::Char('h') if bits_focus => s.cursor = (s.cursor + 1).min(7),
        KeyCode::Right | KeyCode::Char('l') if bits_focus => {
            s.cursor = s.cursor.min(7).saturating_sub(1)
        }
        KeyCode::Home if bits_focus => s.cursor = 7,
        KeyCode::End if bits_focus => s.cursor = 0,
        KeyCode::Char(' ') if bits_focus => {
            let b = s.byte.toggle_bit(s.cursor.min(7));
            set_byte(s, b);
        }
        _ if bits_focus => return Handled::No,
        _ => {
            if s.input.handle_event(&Event::Key(key)).is_none() {
                return Handled::No;
            }
            match parse(s.input.value(), s.byte.ecn()) {
                Ok(b) => {
                    s.byte = b;
                    s.error = None;
                }
                Err(e) => s.error = Some(e),
            }
        }
    }
    Handled::done()
}

pub fn hints(s: &DscpState) -> Vec<Hint> {
    if s.focus == DscpFocus::Input {
        vec![
            ("type", "byte or class"),
            ("+/-", "step DSCP"),
            ("Tab", "bits"),
        ]
    } else {
        vec![
            ("←→", "bit"),
            ("Space", "flip"),
            ("+/-", "step DSCP"),
            ("Tab", "field"),
        ]
    }
}

/// How the typed text reads, and how the wizard's DSCP field would read it.
fn reading_note(s: &DscpState) -> Option<String> {
    let text = s.input.value().trim();
    let b = s.byte;
    if is_name(text) {
        return Some(format!(
            "{text} sets the DSCP to {}; the ECN bits stay {} ({}).",
            b.dscp(),
            b.ecn().name(),
            b.ecn().bits()
        ));
    }
    let as_dscp = parse_value(text, false).ok()?;
    if as_dscp.byte == b {
        return None;
    }
    Some(format!(
        "Here {text} is the whole byte: DSCP {} + ECN {}. Typed as a DSCP (the wizard's \
         field, iptables --set-dscp, nft dscp), {text} is byte {}.",
        b.dscp(),
        b.ecn().name(),
        as_dscp.byte
    ))
}

pub fn render(s: &DscpState, cx: &Shared, f: &mut Frame, area: Rect) {
    let t = &cx.theme;
    let e = Explanation::of(s.byte);
    let shown = shown_text(s);
    let bits_focus = s.focus != DscpFocus::Input;
    let input = match &shown {
        Some(text) => Input::new(text.clone()),
        None => s.input.clone(),
    };

    let status = match (&s.error, shown.is_some()) {
        (Some(err), _) => status_lines(t, Some(err), None, area.width),
        (None, false) => match reading_note(s) {
            Some(n) => field::message_lines(Style::new(), "→", &n, area.width),
            None => vec![Line::default()],
        },
        (None, true) => vec![Line::default()],
    };
    let mut blocks = vec![
        Block::new(
            40,
            vec![Line::styled(
                " Any DS byte, bit by bit: type it (31, 0x1f, 0b00011111) or a class name.",
                t.title(),
            )],
        ),
        Block::new(100, vec![Line::default()]),
        // An error outranks the bit layout; the reading note does not.
        Block::shrinking(if s.error.is_some() { 95 } else { 60 }, status),
        Block::new(
            90,
            bits::lines(s.byte, bits_focus.then_some(s.cursor.min(7)), t, area.width),
        ),
        Block::blank(7),
    ];
    blocks.extend(panel(&e, s.byte, area, true, t));

    let (lines, starts) = fit(blocks, area.height as usize, area.width, t);
    f.render_widget(Paragraph::new(lines), area);
    if let Some(row) = starts[1] {
        let echo = if s.error.is_none() {
            Line::from(vec![
                Span::styled("= ", t.dim()),
                Span::styled(format!("DSCP {} + ECN {}", e.dscp, e.ecn_name), t.title()),
            ])
        } else {
            echo(t, false, &e)
        };
        let line = row_rect(area, row);
        draw_field(f, line, t, "ToS byte", &input, !bits_focus, echo);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::app::{App, ScreenId};
    use crate::tui::testing::{app, press, render, type_str};

    fn at_learn() -> App {
        let mut a = app("client.json");
        press(&mut a, KeyCode::F(2));
        assert_eq!(a.screen, ScreenId::Learn);
        a
    }

    fn clear(a: &mut App) {
        for _ in 0..8 {
            press(a, KeyCode::Backspace);
        }
    }

    #[test]
    fn opens_on_the_wizards_default_as_a_byte() {
        let mut a = at_learn();
        assert_eq!(a.learn.byte.value(), 0x1c);
        assert!(render(&a, 80, 24).contains("[0x1c"));
        // The first key edits what is shown.
        press(&mut a, KeyCode::Backspace);
        assert_eq!(a.learn.input.value(), "0x1");
        assert_eq!(a.learn.byte.value(), 0x01);
    }

    #[test]
    fn typing_a_whole_byte_or_a_name() {
        let mut a = at_learn();
        clear(&mut a);
        type_str(&mut a, "0x1f");
        assert_eq!(a.learn.byte.dscp().value(), 7);
        assert_eq!(a.learn.byte.ecn(), Ecn::Ce);
        // Byte 3 (ECN CE); clearing the field keeps it.
        clear(&mut a);
        type_str(&mut a, "3");
        clear(&mut a);
        type_str(&mut a, "af41");
        assert_eq!(a.learn.byte.value(), 0x88 | 3, "a name keeps the ECN bits");
        clear(&mut a);
        type_str(&mut a, "256");
        assert_eq!(a.learn.byte.value(), 25, "the last valid byte stays");
        let err = a.learn.error.clone().unwrap();
        assert!(err.contains("0–255") && err.contains("af41"), "{err}");
        let screen = render(&a, 80, 24);
        assert!(screen.contains("✗ byte 256 is out of range"), "{screen}");
    }

    #[test]
    fn toggling_bit_0_gives_ect1() {
        let mut a = at_learn();
        press(&mut a, KeyCode::Tab);
        assert_eq!(a.learn.focus, DscpFocus::Bits);
        press(&mut a, KeyCode::End);
        assert_eq!(a.learn.cursor, 0);
        press(&mut a, KeyCode::Char(' '));
        assert_eq!(a.learn.byte.ecn(), Ecn::Ect1);
        assert_eq!(a.learn.byte.value(), 0x1d);
        assert_eq!(a.learn.input.value(), "0x1d");
        press(&mut a, KeyCode::Left);
        press(&mut a, KeyCode::Char(' '));
        assert_eq!(a.learn.byte.ecn(), Ecn::Ce);
        // +/- step the DSCP and keep ECN.
        press(&mut a, KeyCode::Char('+'));
        assert_eq!(
            (a.learn.byte.dscp().value(), a.learn.byte.ecn()),
            (8, Ecn::Ce)
        );
        // Esc goes back to where Learn was opened.
        press(&mut a, KeyCode::Esc);
        assert_eq!(a.screen, ScreenId::Role);
    }

    #[test]
    fn decimal_reads_as_a_byte_and_says_so() {
        let mut a = at_learn();
        clear(&mut a);
        type_str(&mut a, "7");
        assert_eq!(a.learn.byte.value(), 7);
        let screen = render(&a, 80, 24);
        assert!(
            screen.contains("Here 7 is the whole byte: DSCP 1 + ECN CE"),
            "{screen}"
        );
    }

    #[test]
    fn every_byte_renders_within_the_frame() {
        let mut a = at_learn();
        for b in 0..=255u8 {
            clear(&mut a);
            type_str(&mut a, &format!("{b:#04x}"));
            assert_eq!(a.learn.byte.value(), b);
            for (w, h) in [(80, 24), (120, 40)] {
                let s = render(&a, w, h);
                assert!(s.contains("tcpdump -v: tos"), "{b:#04x} at {w}x{h}\n{s}");
                assert!(s.contains("ECN"), "{s}");
            }
        }
    }

    #[test]
    fn small_windows_keep_the_bit_layout() {
        let mut a = at_learn();
        for (w, h) in [(40, 15), (60, 20), (80, 24)] {
            let s = render(&a, w, h);
            assert!(s.contains("╰ ECN ╯"), "{w}x{h}\n{s}");
            for line in s.lines() {
                assert!(line.chars().count() <= w as usize, "{w}x{h}: {line}");
            }
        }
        // An error is shown even when that costs the layout.
        clear(&mut a);
        type_str(&mut a, "999");
        assert!(render(&a, 40, 15).contains("✗ byte 999"));
    }

    #[test]
    fn snapshots_learn() {
        let mut a = at_learn();
        clear(&mut a);
        type_str(&mut a, "0x1f");
        press(&mut a, KeyCode::Tab);
        insta::assert_snapshot!("learn_ce_80x24", render(&a, 80, 24));
        insta::assert_snapshot!("learn_ce_120x40", render(&a, 120, 40));
    }
}
