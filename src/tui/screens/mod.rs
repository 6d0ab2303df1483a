//! One module per screen, each with its keys, its render and its footer
//! hints. A screen reports whether it used a key, so global keys (q, ?, Esc,
//! Enter) apply only to keys no screen wanted.

pub mod apply;
pub mod dscp;
pub mod gateway;
pub mod group;
pub mod learn;
pub mod mark;
pub mod preview;
pub mod role;
pub mod status;

use super::app::{App, Effect, ScreenId};
use crate::probe::HostFacts;
use ratatui::Frame;
use ratatui::crossterm::event::{KeyEvent, MouseEvent};
use ratatui::layout::Rect;

pub enum Handled {
    Yes(Vec<Effect>),
    No,
}

impl Handled {
    pub fn done() -> Handled {
        Handled::Yes(Vec::new())
    }
}

/// A key hint for the footer: (key, what it does).
pub type Hint = (&'static str, &'static str);

pub fn key(app: &mut App, key: KeyEvent) -> Handled {
    match app.screen {
        ScreenId::Role => role::key(app, key),
        ScreenId::Group => group::key(app, key),
        ScreenId::Dscp => dscp::key(app, key),
        ScreenId::Mark => mark::key(app, key),
        ScreenId::Gateway => gateway::key(app, key),
        ScreenId::Preview => preview::key(app, key),
        ScreenId::Apply => apply::key(app, key),
        ScreenId::Status => status::key(app, key),
        ScreenId::Learn => learn::key(app, key),
    }
}

pub fn render(app: &App, f: &mut Frame, area: Rect) {
    match app.screen {
        ScreenId::Role => role::render(app, f, area),
        ScreenId::Group => group::render(app, f, area),
        ScreenId::Dscp => dscp::render(app, f, area),
        ScreenId::Mark => mark::render(app, f, area),
        ScreenId::Gateway => gateway::render(app, f, area),
        ScreenId::Preview => preview::render(app, f, area),
        ScreenId::Apply => apply::render(app, f, area),
        ScreenId::Status => status::render(app, f, area),
        ScreenId::Learn => learn::render(app, f, area),
    }
}

/// Screen-specific hints; the frame adds the global ones.
pub fn hints(app: &App) -> Vec<Hint> {
    match app.screen {
        ScreenId::Role => role::hints(app),
        ScreenId::Group => group::hints(app),
        ScreenId::Dscp => dscp::hints(app),
        ScreenId::Mark => mark::hints(app),
        ScreenId::Gateway => gateway::hints(app),
        ScreenId::Preview => preview::hints(app),
        ScreenId::Apply => apply::hints(app),
        ScreenId::Status => status::hints(app),
        ScreenId::Learn => learn::hints(app),
    }
}

/// May the wizard leave this screen forward? The error says what to fix.
pub fn validate(app: &App) -> Result<(), String> {
    match app.screen {
        ScreenId::Group => group::validate(app),
        ScreenId::Dscp => dscp::validate(app),
        ScreenId::Mark => mark::validate(app),
        ScreenId::Gateway => gateway::validate(app),
        _ => Ok(()),
    }
}

pub fn mouse(app: &mut App, m: MouseEvent) -> Vec<Effect> {
    match app.screen {
        ScreenId::Role => role::mouse(app, m),
        _ => Vec::new(),
    }
}

pub fn tick(app: &mut App) -> Vec<Effect> {
    match app.screen {
        ScreenId::Apply => apply::tick(app),
        ScreenId::Status => status::tick(app),
        _ => Vec::new(),
    }
}

pub fn facts_arrived(app: &mut App, facts: HostFacts) {
    app.facts = Some(facts);
    gateway::facts_arrived(app);
}
