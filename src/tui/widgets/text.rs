//! The one place text is fitted to a width: wrapping, clipping with an
//! ellipsis where something is cut (never silently), indented prose.

use ratatui::style::Style;
use ratatui::text::{Line, Span};

pub use crate::text::wrap;

/// `width` characters of `text` starting at `skip`; an ellipsis marks each
/// side where something is cut off. Never wraps.
pub fn clip(text: &str, skip: usize, width: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    if width == 0 {
        return String::new();
    }
    let skip = skip.min(chars.len().saturating_sub(width));
    let mut out: Vec<char> = chars.iter().skip(skip).take(width).copied().collect();
    if skip > 0 {
        out[0] = '…';
    }
    if skip + width < chars.len() {
        *out.last_mut().expect("width > 0") = '…';
    }
    out.into_iter().collect()
}

/// A styled line cut to `width` columns (display width), ending in `…`
/// when something was cut.
pub fn clip_line(line: Line<'static>, width: usize) -> Line<'static> {
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

/// Prose wrapped to `width`, each line indented by `indent` (a word longer
/// than the line is clipped, never spilled).
pub fn prose(text: &str, indent: usize, width: u16, style: Style) -> Vec<Line<'static>> {
    let avail = (width as usize).saturating_sub(indent).max(10);
    wrap(text, avail)
        .into_iter()
        .map(|l| Line::styled(format!("{:indent$}{}", "", clip(&l, 0, avail)), style))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_marks_cut_sides() {
        assert_eq!(clip("abcdef", 0, 10), "abcdef");
        assert_eq!(clip("abcdef", 0, 4), "abc…");
        assert_eq!(clip("abcdef", 1, 4), "…cd…");
        assert_eq!(clip("abcdef", 9, 4), "…def");
        assert_eq!(clip("abc", 0, 0), "");
    }

    #[test]
    fn clip_line_cuts_by_display_width_and_keeps_styles() {
        let bold = Style::new().add_modifier(ratatui::style::Modifier::BOLD);
        let line = Line::from(vec![Span::raw("ab"), Span::styled("cdef", bold)]);
        assert_eq!(clip_line(line.clone(), 6), line);
        let cut = clip_line(line, 4);
        assert_eq!(cut.width(), 4);
        assert_eq!(cut.spans[1].content, "c…");
        assert_eq!(cut.spans[1].style, bold);
    }
}
