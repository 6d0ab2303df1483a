//! Text helpers for widgets.

pub use crate::text::wrap;
