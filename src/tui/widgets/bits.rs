//! The live bit layout of the DS byte: eight cells, bit 7 on the left, with
//! bit numbers above and the DSCP / ECN parts labelled underneath (labels
//! and a double rule between bits 2 and 1, not colour alone), the cursor
//! cell in brackets, and the byte's readings: decimal, hex, binary, and what
//! `tcpdump -v` prints.
//!
//! ```text
//!      7   6   5   4   3   2   1   0
//!    ┌───┬───┬───┬───┬───┬───╥───┬───┐  byte 0x1c = 28 = 0b00011100
//!    │ 0 │ 0 │ 0 │ 1 │ 1 │[1]║ 0 │ 0 │  DSCP 7 = 0x07 = 0b000111 (unassigned)
//!    └───┴───┴───┴───┴───┴───╨───┴───┘  ECN 0 = 0b00 = Not-ECT
//!      ╰──────── DSCP ───────╯ ╰ ECN ╯  tcpdump -v: tos 0x1c · class 0x1c
//! ```
//!
//! At [`BESIDE_MIN_WIDTH`] columns and more the readings sit beside the cells
//! (5 rows); narrower, they go underneath (9 rows, 35 columns).

use crate::tos::{DsByte, Phb};
use crate::tui::theme::Theme;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

/// Columns left of the first cell border.
const INDENT: usize = 2;
/// The cell block: 8 cells of 3 columns and 9 borders.
const CELLS: usize = 33;
/// Columns the cell block takes, indent included.
pub const CELLS_WIDTH: u16 = (INDENT + CELLS) as u16;
/// Between the cells and the readings beside them.
const GAP: usize = 2;
/// The longest reading (`tcpdump -v: tos 0xff,ECT(0) · class 0xff`).
const READINGS_WIDTH: usize = 40;
/// From this width on the readings sit beside the cells.
pub const BESIDE_MIN_WIDTH: u16 = (INDENT + CELLS + GAP + READINGS_WIDTH) as u16;

/// Rows the layout takes at `width`.
pub fn height(width: u16) -> u16 {
    if width >= BESIDE_MIN_WIDTH { 5 } else { 9 }
}

/// What `tcpdump -v` prints for this byte (see `DsByte::tcpdump_v`).
pub fn tcpdump_v(byte: DsByte) -> (String, Option<String>) {
    byte.tcpdump_v()
}

/// The four readings: byte, DSCP, ECN, tcpdump.
pub fn readings(byte: DsByte, theme: &Theme) -> [Line<'static>; 4] {
    let b = byte.value();
    let d = byte.dscp().value();
    let ecn = byte.ecn();
    let name = Phb::of(byte.dscp()).map_or_else(|| "unassigned".to_string(), Phb::short_name);
    let (v4, v6) = tcpdump_v(byte);
    let v6 = v6.unwrap_or_else(|| "class omitted".to_string());
    [
        Line::from(vec![
            Span::styled("byte", theme.title()),
            Span::raw(format!(" {b:#04x} = {b} = 0b{b:08b}")),
        ]),
        Line::from(vec![
            Span::styled("DSCP", theme.dscp_bit()),
            Span::raw(format!(" {d} = {d:#04x} = 0b{d:06b} ({name})")),
        ]),
        Line::from(vec![
            Span::styled("ECN", theme.ecn_bit()),
            Span::raw(format!(
                " {} = 0b{:02b} = {}",
                ecn.bits(),
                ecn.bits(),
                ecn.name()
            )),
        ]),
        Line::from(vec![
            Span::styled("tcpdump -v:", theme.dim()),
            Span::raw(format!(" {v4} · {v6}")),
        ]),
    ]
}

/// The five rows of cells: bit numbers, top rule, values, bottom rule, labels.
fn cells(byte: DsByte, cursor: Option<u8>, theme: &Theme) -> [Line<'static>; 5] {
    let indent = || Span::raw(" ".repeat(INDENT));
    let part = |bit: u8| {
        if bit >= 2 {
            theme.dscp_bit()
        } else {
            theme.ecn_bit()
        }
    };
    let mut numbers = vec![indent()];
    let mut top = vec![indent()];
    let mut values = vec![indent()];
    let mut bottom = vec![indent()];
    for bit in (0..8u8).rev() {
        let here = cursor == Some(bit);
        // The border left of this cell; a double rule splits DSCP from ECN.
        let (t, v, b) = match bit {
            7 => ("┌───", "│", "└───"),
            1 => ("╥───", "║", "╨───"),
            _ => ("┬───", "│", "┴───"),
        };
        numbers.push(Span::styled(
            format!("  {bit} "),
            if here { theme.key() } else { theme.dim() },
        ));
        top.push(Span::raw(t));
        bottom.push(Span::raw(b));
        values.push(Span::raw(v));
        let value = (byte.value() >> bit) & 1;
        values.push(if here {
            Span::styled(format!("[{value}]"), part(bit).patch(theme.selected()))
        } else {
            Span::styled(format!(" {value} "), part(bit))
        });
    }
    top.push(Span::raw("┐"));
    bottom.push(Span::raw("┘"));
    values.push(Span::raw("│"));
    let labels = vec![
        indent(),
        Span::raw(" "),
        Span::styled("╰──────── DSCP ───────╯", theme.dscp_bit()),
        Span::raw(" "),
        Span::styled("╰ ECN ╯", theme.ecn_bit()),
    ];
    [
        Line::from(numbers),
        Line::from(top),
        Line::from(values),
        Line::from(bottom),
        Line::from(labels),
    ]
}

/// The whole layout for `width` columns: 5 rows with the readings beside
/// the cells when they fit, else 9 rows with the readings underneath.
/// `cursor` is the bit (7..=0) under the cursor, if the cells have focus.
pub fn lines(byte: DsByte, cursor: Option<u8>, theme: &Theme, width: u16) -> Vec<Line<'static>> {
    let cells = cells(byte, cursor, theme);
    let readings = readings(byte, theme);
    if width >= BESIDE_MIN_WIDTH {
        let mut out: Vec<Line<'static>> = Vec::with_capacity(5);
        for (i, mut line) in cells.into_iter().enumerate() {
            if i >= 1 {
                let pad = (INDENT + CELLS + GAP).saturating_sub(line.width());
                line.spans.push(Span::raw(" ".repeat(pad)));
                line.spans.extend(readings[i - 1].spans.clone());
            }
            out.push(line);
        }
        out
    } else {
        let mut out: Vec<Line<'static>> = cells.into_iter().collect();
        for r in readings {
            let mut spans = vec![Span::raw(" ".repeat(INDENT))];
            spans.extend(r.spans);
            out.push(Line::from(spans));
        }
        out
    }
}

/// The layout as a widget, for screens that prefer `render_widget`.
pub struct Bits<'a> {
    pub byte: DsByte,
    pub cursor: Option<u8>,
    pub theme: &'a Theme,
}

impl Widget for Bits<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        Paragraph::new(lines(self.byte, self.cursor, self.theme, area.width))
            .style(Style::new())
            .render(area, buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    #[test]
    fn seven_as_the_guide_draws_it() {
        let t = text(&lines(DsByte::new(0x1c), None, &Theme::plain(), 80));
        assert_eq!(t.len(), 5);
        assert_eq!(t[0].trim_end(), "    7   6   5   4   3   2   1   0");
        assert!(
            t[1].starts_with("  ┌───┬───┬───┬───┬───┬───╥───┬───┐  byte 0x1c = 28 = 0b00011100")
        );
        assert!(t[2].starts_with("  │ 0 │ 0 │ 0 │ 1 │ 1 │ 1 ║ 0 │ 0 │  DSCP 7 = 0x07 = 0b000111"));
        assert!(t[3].ends_with("ECN 0 = 0b00 = Not-ECT"), "{}", t[3]);
        assert!(t[4].contains("DSCP") && t[4].contains("ECN"));
        assert!(
            t[4].ends_with("tcpdump -v: tos 0x1c · class 0x1c"),
            "{}",
            t[4]
        );
    }

    #[test]
    fn every_byte_fits_and_lines_up() {
        let theme = Theme::plain();
        for b in 0..=255u8 {
            for cursor in [None, Some(0), Some(7)] {
                let wide = lines(DsByte::new(b), cursor, &theme, 80);
                assert_eq!(wide.len() as u16, height(80));
                for l in &wide {
                    assert!(l.width() <= 80, "byte {b:#04x}: {:?}", text(&wide));
                }
                let narrow = lines(DsByte::new(b), cursor, &theme, 40);
                assert_eq!(narrow.len() as u16, height(40));
                for l in &narrow {
                    assert!(l.width() <= 50, "byte {b:#04x}: {:?}", text(&narrow));
                }
                // The cells spell the byte, most significant bit first.
                let cells: String = text(&wide)[2]
                    .chars()
                    .take(CELLS_WIDTH as usize)
                    .filter(|c| *c == '0' || *c == '1')
                    .collect();
                assert_eq!(cells, format!("{b:08b}"));
            }
        }
    }

    #[test]
    fn cursor_is_marked_without_colour() {
        let t = text(&lines(DsByte::new(0x1c), Some(2), &Theme::plain(), 80));
        assert!(
            t[2].starts_with("  │ 0 │ 0 │ 0 │ 1 │ 1 │[1]║ 0 │ 0 │"),
            "{}",
            t[2]
        );
        let t = text(&lines(DsByte::new(0x1f), Some(0), &Theme::plain(), 80));
        assert!(
            t[2].starts_with("  │ 0 │ 0 │ 0 │ 1 │ 1 │ 1 ║ 1 │[1]│"),
            "{}",
            t[2]
        );
    }

    #[test]
    fn tcpdump_prints_as_tcpdump_does() {
        assert_eq!(
            tcpdump_v(DsByte::new(0x1c)),
            ("tos 0x1c".into(), Some("class 0x1c".into()))
        );
        assert_eq!(tcpdump_v(DsByte::new(0x04)).0, "tos 0x4");
        assert_eq!(tcpdump_v(DsByte::new(0)), ("tos 0x0".into(), None));
        assert_eq!(tcpdump_v(DsByte::new(0x1f)).0, "tos 0x1f,CE");
        assert_eq!(
            tcpdump_v(DsByte::new(0x01)),
            ("tos 0x1,ECT(1)".into(), Some("class 0x01".into()))
        );
        assert_eq!(tcpdump_v(DsByte::new(0x02)).0, "tos 0x2,ECT(0)");
    }
}
