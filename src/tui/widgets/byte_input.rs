//! The DS byte editor the DSCP screen and Learn both show: its state (the
//! text field, the byte it reads, the bit cursor, what has the keyboard),
//! the notation the admin writes in, and the field drawn with its live
//! reading beside it.

use super::field;
use super::text::clip_line;
use crate::explain::Explanation;
use crate::tos::{DsByte, Dscp};
use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use tui_input::Input;

/// Columns the text field takes before its live reading.
const FIELD_WIDTH: u16 = field::LABEL_WIDTH + 2 + 22;

/// Which part of the editor has the keyboard (Learn has no class list).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DscpFocus {
    #[default]
    Input,
    Bits,
    Classes,
}

#[derive(Debug)]
pub struct DscpState {
    pub input: Input,
    /// The byte shown; in the wizard its ECN bits are always 0.
    pub byte: DsByte,
    /// Bit under the cursor, 7 (left) .. 0 (right).
    pub cursor: u8,
    pub focus: DscpFocus,
    /// Index into the class list.
    pub class: usize,
    pub error: Option<String>,
}

impl DscpState {
    pub fn new(dscp: Dscp) -> DscpState {
        DscpState {
            input: Input::new(dscp.value().to_string()),
            byte: dscp.to_byte(),
            cursor: 7,
            focus: DscpFocus::Input,
            class: 0,
            error: None,
        }
    }
}

/// How the admin wrote the value; stepping and bit flips keep it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notation {
    Dec,
    Hex,
    Bin,
}

pub fn notation(text: &str) -> Notation {
    let t = text.trim().to_ascii_lowercase();
    if t.starts_with("0x") {
        Notation::Hex
    } else if t.starts_with("0b") {
        Notation::Bin
    } else {
        Notation::Dec
    }
}

/// The field's status under it: the error, or the ToS-byte heads-up.
pub fn status_lines(
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

/// The live reading right of the field: what the text means, or that it is
/// invalid and which value is still shown.
pub fn echo(theme: &Theme, ok: bool, e: &Explanation) -> Line<'static> {
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
pub fn row_rect(area: Rect, row: usize) -> Rect {
    Rect::new(area.x, area.y + row as u16, area.width, 1).intersection(area)
}

/// Draw the field and its echo on the one-row `area`.
pub fn draw_field(
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
        f.render_widget(Paragraph::new(clip_line(echo, rest.width as usize)), rest);
    }
}
