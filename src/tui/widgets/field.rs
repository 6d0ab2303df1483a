//! A labelled one-line text field (tui-input has no widget) with its error
//! line under it. The focused field places the terminal cursor.

use crate::tui::theme::Theme;
use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use tui_input::Input;

pub const LABEL_WIDTH: u16 = 14;

/// Draw `label  [value]` on one row of `area`; returns nothing, places the
/// cursor when focused.
pub fn render(
    f: &mut Frame,
    area: Rect,
    theme: &Theme,
    label: &str,
    input: &Input,
    focused: bool,
    placeholder: &str,
) {
    let width = area.width.saturating_sub(LABEL_WIDTH + 2).max(1) as usize;
    let scroll = input.visual_scroll(width);
    let value: String = input.value().chars().skip(scroll).take(width).collect();
    let marker = if focused { "▸ " } else { "  " };
    let mut spans = vec![Span::styled(
        format!("{marker}{label:<w$}", w = (LABEL_WIDTH - 2) as usize),
        if focused { theme.key() } else { theme.title() },
    )];
    if value.is_empty() && !focused {
        spans.push(Span::styled(placeholder.to_string(), theme.dim()));
    } else {
        spans.push(Span::styled(
            format!("[{value:<width$}]"),
            if focused {
                theme.focus_border()
            } else {
                ratatui::style::Style::new()
            },
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
    if focused {
        let x = area.x + LABEL_WIDTH + 1 + (input.visual_cursor().saturating_sub(scroll)) as u16;
        f.set_cursor_position(Position::new(x.min(area.right().saturating_sub(1)), area.y));
    }
}

/// One line in error style, or nothing.
pub fn error_line(theme: &Theme, error: Option<&str>) -> Line<'static> {
    match error {
        Some(e) => Line::styled(format!("  ✗ {e}"), theme.error()),
        None => Line::default(),
    }
}

/// `  ✗ text` wrapped to `width`, continuation lines indented under the text.
pub fn message_lines(
    style: ratatui::style::Style,
    mark: &str,
    text: &str,
    width: u16,
) -> Vec<Line<'static>> {
    crate::text::wrap(text, (width as usize).saturating_sub(4).max(10))
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let lead = if i == 0 {
                format!("  {mark} ")
            } else {
                "    ".into()
            };
            Line::styled(format!("{lead}{l}"), style)
        })
        .collect()
}
