//! The one vertical scroll of every view that scrolls (preview, status,
//! apply log, help). Drawing tells it how many lines there are and how many
//! rows show them; keys then move within those bounds without laying the
//! view out again (gitui's `scroll_vertical.rs` works the same way). The
//! keys are the same everywhere: ↑↓ j k, PgUp PgDn (Space), Home End (g G).

use ratatui::crossterm::event::KeyCode;
use std::cell::Cell;

/// A first line shown, and the bounds of the last draw. Cells, so a draw
/// (which only reads the state) can record what it laid out.
#[derive(Debug, Default)]
pub struct Scroll {
    top: Cell<usize>,
    total: Cell<usize>,
    rows: Cell<usize>,
}

impl Scroll {
    /// The first line shown.
    pub fn top(&self) -> usize {
        self.top.get()
    }

    /// Rows shown at the last draw.
    pub fn rows(&self) -> usize {
        self.rows.get()
    }

    /// Lines in all at the last draw.
    pub fn total(&self) -> usize {
        self.total.get()
    }

    fn max_top(&self) -> usize {
        self.total.get().saturating_sub(self.rows.get())
    }

    /// At draw time: `total` lines in `rows` rows. Returns the first line
    /// to show (the offset kept within the new bounds).
    pub fn draw(&self, total: usize, rows: usize) -> usize {
        self.total.set(total);
        self.rows.set(rows);
        let top = self.top.get().min(self.max_top());
        self.top.set(top);
        top
    }

    /// A scroll key moves the view and says so; any other key is left alone.
    /// A page keeps one line of the last one in view.
    pub fn key(&mut self, code: KeyCode) -> bool {
        let (top, max) = (self.top.get(), self.max_top());
        let page = self.rows.get().saturating_sub(1).max(1);
        let next = match code {
            KeyCode::Up | KeyCode::Char('k') => top.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => top + 1,
            KeyCode::PageUp => top.saturating_sub(page),
            KeyCode::PageDown | KeyCode::Char(' ') => top + page,
            KeyCode::Home | KeyCode::Char('g') => 0,
            KeyCode::End | KeyCode::Char('G') => max,
            _ => return false,
        };
        self.top.set(next.min(max));
        true
    }

    /// Bring line `index` into view (as tall as the last draw; before the
    /// first draw nothing is known to be in view, and nothing moves).
    pub fn show(&mut self, index: usize) {
        let rows = self.rows.get();
        if rows == 0 {
            return;
        }
        let top = self.top.get();
        if index < top {
            self.top.set(index);
        } else if index >= top + rows {
            self.top.set(index + 1 - rows);
        }
    }

    /// Back to the first line.
    pub fn reset(&mut self) {
        self.top.set(0);
    }

    /// `3–20 of 45` when the lines did not all fit at the last draw.
    pub fn position(&self) -> Option<String> {
        let (top, rows, total) = (self.top.get(), self.rows.get(), self.total.get());
        (total > rows).then(|| format!("{}–{} of {total}", top + 1, (top + rows).min(total)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drawn(total: usize, rows: usize) -> Scroll {
        let s = Scroll::default();
        s.draw(total, rows);
        s
    }

    #[test]
    fn keys_move_within_the_drawn_bounds() {
        let mut s = drawn(50, 10);
        assert!(s.key(KeyCode::End));
        assert_eq!(s.top(), 40);
        s.key(KeyCode::Down);
        s.key(KeyCode::Char('j'));
        assert_eq!(s.top(), 40, "never past the last page");
        s.key(KeyCode::PageUp);
        assert_eq!(s.top(), 31, "a page keeps one line in view");
        s.key(KeyCode::Char('k'));
        assert_eq!(s.top(), 30);
        s.key(KeyCode::Char(' '));
        assert_eq!(s.top(), 39);
        s.key(KeyCode::Home);
        assert_eq!(s.top(), 0);
        s.key(KeyCode::Up);
        assert_eq!(s.top(), 0);
        s.key(KeyCode::Char('G'));
        assert_eq!(s.top(), 40);
        s.key(KeyCode::Char('g'));
        assert_eq!(s.top(), 0);
        assert!(!s.key(KeyCode::Char('x')), "not a scroll key");
        assert!(!s.key(KeyCode::Enter));
    }

    #[test]
    fn what_fits_does_not_move_and_a_shorter_draw_clamps() {
        let mut s = drawn(5, 10);
        s.key(KeyCode::End);
        assert_eq!((s.top(), s.position()), (0, None));
        let mut s = drawn(50, 10);
        s.key(KeyCode::End);
        assert_eq!(s.position().as_deref(), Some("41–50 of 50"));
        assert_eq!(s.draw(20, 10), 10, "the offset follows the new bounds");
        assert_eq!(s.top(), 10);
        // Never drawn: nothing to move over.
        let mut n = Scroll::default();
        n.key(KeyCode::End);
        n.show(30);
        assert_eq!(n.top(), 0);
    }

    #[test]
    fn show_brings_a_line_into_view() {
        let mut s = drawn(50, 10);
        s.show(25);
        assert_eq!(s.top(), 16);
        s.show(3);
        assert_eq!(s.top(), 3);
        s.show(7);
        assert_eq!(s.top(), 3, "already in view");
        s.reset();
        assert_eq!(s.top(), 0);
    }
}
