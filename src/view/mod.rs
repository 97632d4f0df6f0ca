//! The visitor's state as JSON, in its two shapes: by names, with the bundle at hand
//! (`names`: what `simulate`, the npm package and the fixtures read and write), and by
//! stable ids, without one (`ids`: what `token inspect` shows when it has no bundle,
//! and says so). Times and 128-bit ids are written and read by `crate::time` and
//! `crate::ids` in both.
//!
//! The view never reads a clock and never drops anything the state holds.

mod ids;
mod names;

pub use ids::ViewError;
pub use names::{state_from_json, state_to_json, state_view, StateView};
