//! Reusable pieces: text fields with their error line, the ToS bit layout,
//! the DS byte editor and its teaching panel, blocks fitted to a short
//! screen, the one scroll, and the one place text is clipped and wrapped.

pub mod bits;
pub mod byte_input;
pub mod field;
pub mod fit;
pub mod panel;
pub mod scroll;
pub mod text;
