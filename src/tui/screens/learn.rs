//! (being written)

use super::{Handled, Hint};
use crate::tui::app::App;
use ratatui::Frame;
use ratatui::crossterm::event::KeyEvent;
use ratatui::layout::Rect;

pub fn key(_app: &mut App, _key: KeyEvent) -> Handled {
    Handled::No
}

pub fn render(_app: &App, _f: &mut Frame, _area: Rect) {}

pub fn hints(_app: &App) -> Vec<Hint> {
    Vec::new()
}
