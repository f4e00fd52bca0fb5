//! Aligned plain-text tables for people: a header row, columns two spaces
//! apart, no trailing blanks (so output diffs and pastes cleanly). Shared with
//! `worker audit` through `xentri-core`.

pub use xentri_core::human::render_table as render;
