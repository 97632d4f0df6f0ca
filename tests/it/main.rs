//! The integration test binary: one binary, one module per area, data in `fixtures/`
//! and `tests/conformance/`.

mod analyze;
mod bucket;
mod bundles;
mod decide_props;
mod ed25519;
mod feeds;
mod layers;
mod npm_types;
mod ofrep;
mod pages;
mod prefetch;
mod profile;
mod report;
mod rollback;
mod rules;
mod scenarios;
mod schedule;
mod session;
mod studio;
mod token;
mod triggers;
mod user_agents;
mod xss;

use std::path::PathBuf;

/// The repository root: this binary is the CLI crate's (`crates/cli`) test.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A path relative to the repository root.
pub fn repo_path(relative: &str) -> PathBuf {
    repo_root().join(relative)
}

/// Reads and parses a JSON file relative to the repository root.
#[track_caller]
pub fn read_json(relative: &str) -> serde_json::Value {
    let path = repo_path(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

#[path = "../../benches/common/mod.rs"]
mod generated;
#[path = "../common/scenario.rs"]
mod scenario_check;
pub use generated::generated_bundle;

/// One request as every face makes it: through `session::decide`, the visitor in a
/// named state (or new, with `visitor` as its id), slots by name, no keys.
pub struct Ask<'a> {
    /// The visitor's state; `None` for a new visitor.
    pub state: Option<&'a micromoment::token::State>,
    /// A new visitor's id.
    pub visitor: [u8; 16],
    /// The request context.
    pub context: &'a micromoment::Context,
    /// The clock.
    pub now: i64,
    /// The slots, by name.
    pub slots: &'a [&'a str],
}

/// The decision of one request (see [`Ask`]).
#[track_caller]
pub fn decide<'b>(bundle: &'b micromoment::Bundle, ask: Ask<'_>) -> micromoment::Decision<'b> {
    use micromoment::session::{self, Entropy, Request, Slots, Visitor};
    let request = Request {
        slots: Slots::Names(ask.slots),
        ..Request::new(
            ask.state.map_or(Visitor::New, Visitor::State),
            ask.context,
            ask.now,
            Entropy::Fixed(ask.visitor),
        )
    };
    session::decide(bundle, None, &request)
        .expect("the slots exist")
        .decision
}
