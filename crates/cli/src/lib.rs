//! What the `micromoment` command computes beyond the core, kept out of every wasm
//! build: the coverage report (`report`) and the analysis of exposures and conversions
//! (`analyze`, with statrs). The command itself is `src/main.rs` and `src/cli/`.
//!
//! Like the core, neither reads a clock, a file or a random source on its own: they are
//! handed readers, times and seeds.
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

pub mod analyze;
/// The coverage report, its own crate so that the studio's WebAssembly carries it too.
pub use micromoment_report as report;
