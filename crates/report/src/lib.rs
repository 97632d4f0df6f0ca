//! The coverage report: what each audience sees, computed by running the real engine.
//!
//! The grid of audiences comes from the bundle itself ([`Grid`]): every stage × device
//! type × channel, crossed with the values its rules compare variables to. Every cell
//! is decided through [`micromoment::session::decide`], so the report shows what the edge
//! would do, not what the JSON seems to say; an experiment is decided once per arm, so
//! the report shows its split (each variant and the holdout with its share), never one
//! visitor's draw. From the grid come the stage × device matrix per slot, candidates no
//! audience selects (with the trace's typed verdict), slots that only show their
//! default, contents never shown, and a preview for the HTML page ([`html`]). Pure:
//! the caller passes `now`; nothing here reads a clock or a file.
//!
//! Beside the report, what the studio shows before a publish: [`impact`] (the audiences
//! of the grid whose page changes between two bundles) and [`changes`] (what changed
//! between two authoring documents, in words).
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

mod changes;
mod findings;
mod grid;
mod html;
mod impact;
mod triggers;

use serde::Serialize;

pub use changes::{changes, Change};
pub use findings::{Arm, Cell, SlotMatrix, Split, Unreachable, Why};
pub use grid::{Audience, Dimension, Grid, MAX_CONTEXTS};
pub use html::html;
pub use impact::{impact, impact_budget, Changed, Impact, MAX_IMPACT_CONTEXTS};
pub use triggers::{Moment, TriggerCoverage};

use micromoment::bundle::Bundle;
use micromoment::time::UnixSeconds;
use micromoment::Budget;

/// An experiment, as the bundle defines it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentFact {
    /// The slot.
    pub slot: String,
    /// The experiment (candidate) id.
    pub experiment: String,
    /// Variants: content and weight share.
    pub variants: Vec<(String, f64)>,
    /// Holdout share.
    pub holdout: f64,
}

/// The whole report. It borrows the bundle for the trace's verdicts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report<'b> {
    /// Bundle id.
    pub id: String,
    /// Bundle version.
    pub version: u64,
    /// Content hash of the compiled bundle.
    pub hash: String,
    /// Compiled size in bytes and the budget.
    pub bytes: usize,
    /// The size budget.
    pub budget_bytes: usize,
    /// What the bundle holds.
    pub counts: micromoment::bundle::Counts,
    /// Stages, in journey order.
    pub stages: Vec<String>,
    /// Matrix columns: `device/channel`.
    pub columns: Vec<String>,
    /// The grid's other dimensions.
    pub dimensions: Vec<Dimension>,
    /// How many contexts were decided (each once, however many experiment arms).
    pub contexts: usize,
    /// Per slot, the baseline matrix.
    pub matrix: Vec<SlotMatrix>,
    /// Candidates no context selects.
    pub unreachable: Vec<Unreachable<'b>>,
    /// Slots that only ever show their default, for every visitor of every audience.
    pub default_only: Vec<String>,
    /// Contents no context shows.
    pub never_shown: Vec<String>,
    /// Experiments with weights and holdouts.
    pub experiments: Vec<ExperimentFact>,
    /// Caps, per candidate or campaign: `max per period`.
    pub caps: Vec<(String, String)>,
    /// Schedules, per candidate or campaign: `from … until …` (the matrix is decided at
    /// the report's `now`, so a candidate outside its window shows as unreachable).
    pub schedules: Vec<(String, String)>,
    /// Per trigger, the moments that fire it (`audiences` 0: none does).
    pub triggers: Vec<TriggerCoverage>,
    /// The preview: slot names, content names, per-content HTML (sample values), and
    /// per context the content index of every slot.
    #[serde(skip)]
    pub preview: Preview,
}

/// Precomputed decisions for the HTML preview panel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Preview {
    /// Content ids, indexed by the numbers in `cells`.
    pub contents: Vec<String>,
    /// Per content: the HTML rendition (or the JSON one) with sample values.
    pub renditions: Vec<String>,
    /// Per context (in grid order), per slot: the content index, every experiment
    /// assigning its first arm.
    pub cells: Vec<u16>,
    /// With experiments, the arms the preview can pick; the first is that of `cells`.
    pub arms: Vec<PreviewArm>,
}

/// One assignment profile of the preview: every experiment on one of its arms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PreviewArm {
    /// What it assigns: `hero-test: ev-teaser 45 %`.
    pub label: String,
    /// The cells where it differs from [`Preview::cells`]: (cell index, content index).
    pub changed: Vec<(u32, u16)>,
}

/// Builds the report of a bundle.
pub fn build<'b>(bundle: &'b Bundle, hash: &str, bytes: usize, now: UnixSeconds) -> Report<'b> {
    let grid = Grid::new(bundle, now, MAX_CONTEXTS);
    let arms = findings::experiment_arms(bundle);
    let mut tally = findings::Tally::default();
    // The page: every slot decided together, which is also the preview.
    let (cells, profiles) = findings::page(bundle, &grid, &arms, &mut tally);
    // Reachability: each slot alone, over every value its candidates' rules mention.
    findings::reachability(bundle, now, &arms, &mut tally);
    let (matrix, reasons) = findings::matrix(bundle, &grid, &arms);
    let triggers = triggers::coverage(bundle, &Grid::of_triggers(bundle, now, MAX_CONTEXTS));
    let sample = grid.context(&grid.sample());
    let renditions = bundle
        .contents
        .iter()
        .map(|c| micromoment::render_preview(bundle, c, &sample, now))
        .collect();
    Report {
        id: bundle.id().to_owned(),
        version: bundle.version(),
        hash: hash.to_owned(),
        bytes,
        budget_bytes: Budget::default().max_bundle_bytes,
        counts: bundle.counts(),
        stages: bundle.stage_names().map(str::to_owned).collect(),
        columns: grid::columns()
            .iter()
            .map(|(d, c)| format!("{}/{}", d.as_str(), c.as_str()))
            .collect(),
        contexts: tally.contexts,
        unreachable: findings::unreachable(bundle, &tally, &reasons),
        default_only: findings::default_only(bundle, &tally),
        never_shown: findings::never_shown(bundle, &tally),
        experiments: findings::experiments(bundle),
        caps: findings::caps(bundle),
        schedules: findings::schedules(bundle),
        triggers,
        dimensions: grid.into_dimensions(),
        matrix,
        preview: Preview {
            contents: bundle.content_names().map(str::to_owned).collect(),
            renditions,
            cells,
            arms: profiles,
        },
    }
}

/// The coverage matrix alone, for the studio after an edit: each slot's stage ×
/// device/channel matrix for the baseline audiences (no other signal), with
/// experiments split, without the whole grid's reachability that [`build`] decides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    /// Stages, in journey order.
    pub stages: Vec<String>,
    /// Matrix columns: `device/channel`.
    pub columns: Vec<String>,
    /// Per slot, the matrix.
    pub matrix: Vec<SlotMatrix>,
    /// How many audiences were decided.
    pub contexts: usize,
}

/// The coverage matrix of a bundle at `now`.
pub fn coverage(bundle: &Bundle, now: UnixSeconds) -> Coverage {
    let grid = Grid::new(bundle, now, MAX_CONTEXTS);
    let arms = findings::experiment_arms(bundle);
    let (matrix, _) = findings::matrix(bundle, &grid, &arms);
    let columns: Vec<String> = grid::columns()
        .iter()
        .map(|(d, c)| format!("{}/{}", d.as_str(), c.as_str()))
        .collect();
    Coverage {
        stages: bundle.stage_names().map(str::to_owned).collect(),
        contexts: bundle.stages.len() * columns.len(),
        columns,
        matrix,
    }
}

impl Report<'_> {
    /// Whether `--strict` fails: unreachable candidates, slots with nothing but their
    /// default, or triggers no moment fires.
    pub fn has_findings(&self) -> bool {
        !self.unreachable.is_empty()
            || !self.default_only.is_empty()
            || self.triggers.iter().any(|t| t.audiences == 0)
    }
}
