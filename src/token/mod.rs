//! The signed journey token (DESIGN §5).
mod state;

pub use state::{Assignment, Consent, Impression, Intent, State};
