//! micromoment: journey-aware personalization at the CDN edge.
//!
//! This crate is the pure core (rules, token, bundle, decide, profile, session): the
//! faces are crates of the workspace around it (`crates/worker`, the Cloudflare Worker;
//! `crates/npm`, the npm package's wasm-bindgen API; `crates/cli`, the `micromoment`
//! command with the coverage report and the analysis). The core never reads the clock,
//! the environment or a source of randomness: those are parameters.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![forbid(unsafe_code)]

// GrowthBook-compatible bucketing: public only to the project's own conformance tests
// (the `internals` feature, on by default and off in the WebAssembly builds, whose lints
// then see dead code).
#[cfg(feature = "internals")]
pub mod bucket;
#[cfg(not(feature = "internals"))]
mod bucket;
pub mod bundle;
pub mod calls;
mod codec;
pub mod confirm;
pub mod context;
mod decide;
pub mod deliver;
pub mod destination;
pub mod html;
pub mod http;
pub mod ids;
pub mod profile;
pub mod record;
pub mod rules;
pub mod session;
mod suggest;
pub mod time;
pub mod token;
pub mod view;

pub use bundle::{Budget, Bundle, Diagnostic, LoadError, SlotRef};
pub use codec::CodecError;
pub use context::Context;
pub use decide::{
    decide, escape_html, opted_out, render_preview, CandidateTrace, Decider, Decision, Exposure,
    Fired, JourneyStep, Reason, SlotDecision, SlotResult, SlotTrace, Trace, Verdict, Visit,
    MAX_PLACEHOLDER_BYTES, MAX_RENDERED_BYTES, VISIT_IDLE,
};
pub use suggest::{did_you_mean, hint};
