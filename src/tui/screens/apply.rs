//! (being written)

use super::{Handled, Hint};
use crate::apply::Event;
use crate::tui::app::{App, ApplyResult, Effect};
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

pub fn tick(_app: &mut App) -> Vec<Effect> {
    Vec::new()
}

pub fn on_event(_app: &mut App, _ev: Event) {}

pub fn on_done(_app: &mut App, _r: Result<ApplyResult, String>) -> Vec<Effect> {
    Vec::new()
}

pub fn on_settled(_app: &mut App, _r: Result<String, String>) {}

/// While a change awaits confirmation: Enter keeps it, anything else rolls it back.
pub fn confirm_key(_app: &mut App, _key: KeyEvent) -> Vec<Effect> {
    Vec::new()
}
