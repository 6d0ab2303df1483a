//! One module per screen, each with its own state, keys, render and footer
//! hints. A screen is handed its own state and the shared one (never the
//! app, never another screen's state); `update` and `frame` dispatch to the
//! screen on show. A screen reports whether it used a key, so global keys
//! (q, ?, Esc, Enter) apply only to keys no screen wanted.

pub mod apply;
pub mod dscp;
pub mod gateway;
pub mod group;
pub mod learn;
pub mod mark;
pub mod preview;
pub mod role;
pub mod status;

use super::msg::Effect;

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
