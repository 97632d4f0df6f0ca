//! Did it work? Experiment results and attribution from exposure and conversion logs
//! (docs/results.md), for `micromoment analyze`.
//!
//! Everything here is computed from **sufficient statistics** ([`Sufficient`]): per
//! experiment, goal and arm the people, conversions, Σvalue and Σvalue²; per goal the
//! path counts per slot (path → conversions, nulls, value). They come either from logs
//! ([`Analysis`], streamed line by line through a [`BufRead`] handed in, never loaded
//! whole) or from the output of the Analytics Engine SQL that `--sql` prints
//! ([`read_aggregates`]); [`results`] turns them into the report, [`html`] into a page.
//!
//! The module is pure: it reads only the readers it is given, never a clock, the
//! environment or a random source ([`generate`] draws from a seeded generator). It is
//! CLI-only (`cli` feature): the edge never analyzes.

mod aggregates;
mod attribution;
mod collect;
pub mod generate;
mod html;
mod logs;
mod results;
mod sql;
pub mod stats;

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::Serialize;

pub use aggregates::{read_aggregates, AggregateError};
pub use attribution::Model;
pub use collect::{Paths, HALF_LIFE_SECS, MAX_TOUCHES_PER_PERSON};
pub use html::{html, summary};
pub use logs::Skip;
pub use results::{
    results, AttributionResult, AttributionRow, ExperimentResult, Report, VariantResult,
};
pub use sql::{sql, DEFAULT_DATASET};

use micromoment::bundle::{Bundle, Period};

/// The longest line read; a longer one is skipped (as not JSON) without being held.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// How long after an exposure a conversion still counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// As written: `7d`.
    pub text: String,
    /// In seconds (`i64::MAX` for `lifetime`).
    pub seconds: i64,
}

/// A `--window` that is not a period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "window \"{0}\" is not a period: use a count and a unit such as 30m, 12h, 7d, 2w, or lifetime"
)]
pub struct WindowError(pub String);

impl Window {
    /// Parses `30m`, `12h`, `7d`, `2w` or `lifetime`, as cap periods are.
    pub fn parse(text: &str) -> Result<Window, WindowError> {
        let seconds = match Period::parse(text) {
            Some(Period::Seconds(s)) => s,
            Some(Period::Lifetime) => i64::MAX,
            None => return Err(WindowError(text.to_owned())),
        };
        Ok(Window {
            text: text.to_owned(),
            seconds,
        })
    }
}

impl Default for Window {
    fn default() -> Self {
        Window {
            text: "7d".into(),
            seconds: 7 * micromoment::time::DAY,
        }
    }
}

/// What was read, and what was skipped and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Input {
    /// Lines read.
    pub lines: u64,
    /// Exposures kept.
    pub exposures: u64,
    /// Conversions kept.
    pub conversions: u64,
    /// Lines skipped, by reason.
    pub skipped: BTreeMap<Skip, u64>,
    /// Exposures naming an experiment the bundle does not have (kept as touches).
    pub unknown_experiments: u64,
    /// Exposures naming a variant the experiment does not have (kept as touches).
    pub unknown_variants: u64,
    /// Exposures dropped past [`MAX_TOUCHES_PER_PERSON`].
    pub dropped_touches: u64,
    /// Aggregate path rows without time-decay shares (shared equally instead).
    pub paths_without_ages: u64,
}

impl Input {
    pub(crate) fn skip(&mut self, skip: Skip) {
        *self.skipped.entry(skip).or_default() += 1;
    }

    /// Lines skipped in all.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// One arm's counts for one goal.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ArmCounts {
    /// People whose first exposure to the experiment was this arm.
    pub people: f64,
    /// Of them, people with a conversion of the goal within the window after it.
    pub conversions: f64,
    /// Σ over people of their value of the goal within the window.
    pub value_sum: f64,
    /// Σ over people of that value squared.
    pub value_sum_squares: f64,
}

/// One path's counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PathStat {
    /// Journeys along this path that ended in a conversion.
    pub conversions: f64,
    /// Journeys along it that did not.
    pub nulls: f64,
    /// The value of its conversions.
    pub value: f64,
    /// Per position, the time-decay share summed over its conversions (the one model
    /// that needs more than counts: the touches' ages).
    pub time_decay: Vec<f64>,
    /// The same, weighted by each conversion's value.
    pub time_decay_value: Vec<f64>,
}

/// A touch: the attribution rows' key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TouchKey {
    /// The content shown.
    pub content: String,
    /// The slot it was shown in.
    pub slot: String,
    /// The candidate that won (null for a slot's default).
    pub candidate: Option<String>,
    /// The channel (`web`, `app`, `email`, …).
    pub channel: String,
}

/// Everything the results are computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sufficient {
    /// People with at least one exposure.
    pub people: f64,
    /// `[experiment][goal][arm]`, experiments and goals in bundle order, arms the
    /// variants in order and then the holdout.
    pub arms: Vec<Vec<Vec<ArmCounts>>>,
    /// The touches that paths name by index.
    pub touches: Vec<TouchKey>,
    /// Per goal, the path counts; every path stays within one slot.
    pub paths: Vec<Paths>,
    /// Per goal, all its conversions and their value (attributed or not).
    pub totals: Vec<(f64, f64)>,
    /// What was read.
    pub input: Input,
}

/// Logs in, sufficient statistics out.
pub struct Analysis<'b> {
    collector: collect::Collector<'b>,
}

impl<'b> Analysis<'b> {
    /// An analysis of `bundle`'s experiments and goals.
    pub fn new(bundle: &'b Bundle) -> Self {
        Analysis {
            collector: collect::Collector::new(bundle),
        }
    }

    /// Reads NDJSON logs line by line. Only an I/O error stops it; a line that is not
    /// an event is counted in [`Input::skipped`].
    pub fn read<R: BufRead>(&mut self, mut reader: R) -> std::io::Result<()> {
        let mut line = Vec::new();
        loop {
            line.clear();
            let (read, complete) = read_line(&mut reader, &mut line)?;
            if read == 0 {
                return Ok(());
            }
            if complete {
                self.collector.line(&line);
            } else {
                self.collector.input.lines += 1;
                self.collector.input.skip(Skip::NotJson);
            }
        }
    }

    /// What has been read so far.
    pub fn input(&self) -> &Input {
        &self.collector.input
    }

    /// Joins what was read within `window`.
    pub fn finish(self, window: &Window) -> Sufficient {
        self.collector.finish(window)
    }
}

/// Reads one line into `line` (without its newline), holding at most
/// [`MAX_LINE_BYTES`]; returns the bytes consumed and whether the line fit.
fn read_line<R: BufRead>(reader: &mut R, line: &mut Vec<u8>) -> std::io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut fits = true;
    loop {
        let buf = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((consumed, fits));
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (buf.get(..i).unwrap_or(buf), Some(i + 1)),
            None => (buf, None),
        };
        if fits && line.len() + chunk.len() <= MAX_LINE_BYTES {
            line.extend_from_slice(chunk);
        } else {
            fits = false;
            line.clear();
        }
        let used = done.unwrap_or(buf.len());
        reader.consume(used);
        consumed += used;
        if done.is_some() {
            return Ok((consumed, fits));
        }
    }
}

impl Sufficient {
    /// Adds another set of counts (another file of aggregates) to these.
    pub fn merge(&mut self, other: Sufficient) {
        self.people += other.people;
        for (mine, theirs) in self.arms.iter_mut().zip(other.arms) {
            for (mine, theirs) in mine.iter_mut().zip(theirs) {
                for (a, b) in mine.iter_mut().zip(theirs) {
                    a.people += b.people;
                    a.conversions += b.conversions;
                    a.value_sum += b.value_sum;
                    a.value_sum_squares += b.value_sum_squares;
                }
            }
        }
        // Their touch ids become ours.
        let mut ids: std::collections::HashMap<TouchKey, u32> = self
            .touches
            .iter()
            .enumerate()
            .filter_map(|(i, k)| Some((k.clone(), u32::try_from(i).ok()?)))
            .collect();
        let remap: Vec<u32> = other
            .touches
            .into_iter()
            .map(|key| {
                let next = u32::try_from(self.touches.len()).unwrap_or(u32::MAX);
                let id = *ids.entry(key.clone()).or_insert(next);
                if id == next {
                    self.touches.push(key);
                }
                id
            })
            .collect();
        for (mine, theirs) in self.paths.iter_mut().zip(other.paths) {
            for (path, stat) in theirs.map {
                let path: Vec<u32> = path
                    .iter()
                    .map(|&t| {
                        remap
                            .get(usize::try_from(t).unwrap_or(usize::MAX))
                            .copied()
                            .unwrap_or(t)
                    })
                    .collect();
                let len = path.len();
                let entry = mine.map.entry(path).or_insert_with(|| PathStat {
                    time_decay: vec![0.0; len],
                    time_decay_value: vec![0.0; len],
                    ..PathStat::default()
                });
                entry.conversions += stat.conversions;
                entry.nulls += stat.nulls;
                entry.value += stat.value;
                for (a, b) in entry.time_decay.iter_mut().zip(stat.time_decay) {
                    *a += b;
                }
                for (a, b) in entry.time_decay_value.iter_mut().zip(stat.time_decay_value) {
                    *a += b;
                }
            }
        }
        for (a, b) in self.totals.iter_mut().zip(other.totals) {
            a.0 += b.0;
            a.1 += b.1;
        }
        self.input.paths_without_ages += other.input.paths_without_ages;
    }
}
