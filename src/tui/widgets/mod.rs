//! Reusable pieces: text fields with their error line, the ToS bit layout,
//! and text helpers.

pub mod bits;
pub mod field;
pub mod text;
