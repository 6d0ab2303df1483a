//! Helpers for TUI tests: fixed fixtures, key sequences, and rendering into
//! a TestBackend as text (for insta snapshots).

use super::app::{App, ScreenId};
use super::msg::{Effect, Msg};
use super::theme::Theme;
use super::update::{facts_arrived, update};
use crate::probe::HostFacts;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Recorded host facts from tests/fixtures/plan/.
pub fn facts(name: &str) -> HostFacts {
    let path = format!("{}/tests/fixtures/plan/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A dry-run app on the given facts, plain theme, fixed clock.
pub fn app(facts_file: &str) -> App {
    let mut a = App::new(None, Some("dry run: recorded facts".into()), Theme::plain());
    // As `run` with `--facts`: nothing of this host is asked.
    a.recorded_facts = true;
    facts_arrived(&mut a, facts(facts_file));
    a.now_unix = 1_800_000_000;
    a
}

/// A dry-run app preloaded from profile text (`tui --profile`), then given
/// the facts.
pub fn app_with_profile(facts_file: &str, profile: &str) -> App {
    let p = crate::profile::Profile::parse(profile, "test.toml").expect("test profile");
    let mut a = App::new(
        Some((&p, "test.toml".into())),
        Some("dry run: recorded facts".into()),
        Theme::plain(),
    );
    a.recorded_facts = true;
    facts_arrived(&mut a, facts(facts_file));
    a.now_unix = 1_800_000_000;
    a
}

/// A key as the main loop handles it: the screen was drawn first (at the
/// app's size), so a view that scrolls knows its bounds. (Only those are
/// drawn: the other screens draw nothing keys depend on.)
pub fn key(app: &mut App, key: KeyEvent) -> Vec<Effect> {
    let scrolls = matches!(
        app.screen,
        ScreenId::Preview | ScreenId::Apply | ScreenId::Status
    );
    if scrolls || app.help {
        render(app, app.size.0, app.size.1);
    }
    update(app, Msg::Key(key))
}

pub fn press(app: &mut App, code: KeyCode) -> Vec<Effect> {
    key(app, KeyEvent::new(code, KeyModifiers::NONE))
}

pub fn ctrl(app: &mut App, c: char) -> Vec<Effect> {
    key(app, KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

/// Type each character as a key press.
pub fn type_str(app: &mut App, s: &str) -> Vec<Effect> {
    s.chars()
        .flat_map(|c| press(app, KeyCode::Char(c)))
        .collect()
}

/// The screen as text, `w`×`h`.
pub fn render(app: &App, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test terminal");
    t.draw(|f| super::frame::render(app, f)).expect("draw");
    let buf = t.backend().buffer();
    let mut out = String::new();
    for y in 0..h {
        let line: String = (0..w).map(|x| buf[(x, y)].symbol().to_string()).collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
