//! What the report finds by deciding the grid with the real engine: who wins each
//! slot (per experiment arm), candidates no audience selects with the trace's typed
//! verdict, slots that only show their default, contents never shown, the baseline
//! matrix with each experiment's split, and the bundle's experiments and caps.
//!
//! Experiments are decided arm by arm, never by one visitor's draw: each audience's
//! visitor is pinned to every arm of every experiment in turn (the sticky assignment a
//! token would carry), so a slot whose experiment has a variant with a share above zero
//! is never "default only", and a content offered only as a variant counts as shown.
//! Nothing here formats a verdict: reasons stay types until the page or the JSON.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Serialize, Serializer};

use super::grid::{columns, Audience, Grid, MAX_SLOT_CONTEXTS};
use super::{ExperimentFact, PreviewArm};
use micromoment::bundle::{Bundle, Offer};
use micromoment::context::Context;
use micromoment::session::{self, Entropy, Mode, Slots, Visitor};
use micromoment::time::UnixSeconds;
use micromoment::token::{Assignment, State};
use micromoment::SlotRef;
use micromoment::{Decision, Reason, SlotDecision, SlotTrace, Verdict};

/// One arm of an experiment in a cell: the visitors assigned to it, and what they see.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Arm {
    /// The variant (its content id), or `holdout`.
    pub variant: String,
    /// The share of the audience assigned to it, 0 to 1: the variant's weight times
    /// `1 − holdout`, or the holdout.
    pub share: f64,
    /// What they are shown: the variant; the slot's default for the holdout; a later
    /// candidate's content when the variant's is already on the page or capped.
    pub content: String,
    /// The candidate that won for them (the experiment itself for the holdout), or
    /// null for the default.
    pub candidate: Option<String>,
    /// Why.
    pub reason: Reason,
}

/// How an experiment that decides a cell splits its audience.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Split {
    /// The experiment (its candidate id).
    pub experiment: String,
    /// Its arms with a share above zero: the variants in bundle order, then the holdout.
    pub arms: Vec<Arm>,
}

/// One cell of a slot's matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// The content shown (where an experiment decides, its largest arm's).
    pub content: String,
    /// The winning candidate, if any.
    pub candidate: Option<String>,
    /// Why.
    pub reason: Reason,
    /// The experiment's split, where one decides the cell (or would, but for some
    /// visitors' assignment).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
}

/// A slot's stage × (device, channel) matrix, for the baseline context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotMatrix {
    /// The slot.
    pub slot: String,
    /// Rows, one per stage: cells in `columns` order.
    pub rows: Vec<(String, Vec<Cell>)>,
}

/// Why no audience selects a candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Why<'b> {
    /// The trace's verdict on it in the baseline audiences of every stage and column,
    /// the most frequent one (ties go to the first seen).
    Verdict(Verdict<'b>),
    /// It is never looked at: a higher-priority candidate always wins first.
    Shadowed,
}

impl fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Verdict(verdict) => verdict.fmt(f),
            Why::Shadowed => f.write_str("a higher-priority candidate always wins first"),
        }
    }
}

impl Serialize for Why<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A candidate no context of the grid selects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unreachable<'b> {
    /// The slot.
    pub slot: String,
    /// The candidate.
    pub candidate: String,
    /// Why, as the trace says it.
    pub why: Why<'b>,
}

/// One arm of an experiment, as the report pins it.
#[derive(Debug, Clone, Copy)]
struct ArmSpec<'b> {
    /// The content id of the variant, or `holdout`.
    label: &'b str,
    share: f64,
    /// The assignment a token would carry.
    variant: u8,
}

/// An experiment with the arms a visitor can be assigned to.
#[derive(Debug, Clone)]
pub(super) struct Arms<'b> {
    slot: usize,
    candidate: &'b str,
    id: u32,
    arms: Vec<ArmSpec<'b>>,
}

/// Shares are kept to six decimals, so that 45 % reads 0.45.
fn round(share: f64) -> f64 {
    (share * 1e6).round() / 1e6
}

/// Every experiment of the bundle, with its arms of a share above zero: the variants
/// in bundle order (their bucket ranges' widths), then the holdout.
pub(super) fn experiment_arms(bundle: &Bundle) -> Vec<Arms<'_>> {
    let content = |c: u16| {
        bundle
            .contents
            .get(usize::from(c))
            .map_or("?", |c| c.name.as_str())
    };
    let mut out = Vec::new();
    for (s, slot) in bundle.slots.iter().enumerate() {
        for candidate in &slot.candidates {
            let Offer::Experiment(e) = &candidate.offer else {
                continue;
            };
            let variants = e.variants.iter().zip(&e.ranges).enumerate();
            let mut arms: Vec<ArmSpec<'_>> = variants
                .filter_map(|(i, (&v, (start, end)))| {
                    Some(ArmSpec {
                        label: content(v),
                        share: round(end - start),
                        variant: u8::try_from(i).ok()?,
                    })
                })
                .collect();
            arms.push(ArmSpec {
                label: "holdout",
                share: round(e.holdout),
                variant: Assignment::HOLDOUT,
            });
            arms.retain(|a| a.share > 0.0);
            out.push(Arms {
                slot: s,
                candidate: &candidate.name,
                id: e.id,
                arms,
            });
        }
    }
    out
}

/// `45 %`, `12.5 %`.
pub(super) fn percent(share: f64) -> String {
    let p = (share * 1000.0).round() / 10.0;
    if p.fract() == 0.0 {
        format!("{p:.0} %")
    } else {
        format!("{p:.1} %")
    }
}

/// The assignment profiles a grid is decided with: profile `p` assigns every
/// experiment its `p`-th arm (its last when it has fewer), so every arm of every
/// experiment is decided in every audience. Without experiments, one empty profile.
fn profiles(experiments: &[&Arms<'_>]) -> Vec<Vec<Assignment>> {
    let count = experiments.iter().map(|e| e.arms.len()).max().unwrap_or(0);
    (0..count.max(1))
        .map(|p| {
            experiments
                .iter()
                .filter_map(|e| {
                    let arm = e.arms.get(p).or(e.arms.last())?;
                    Some(Assignment {
                        experiment: e.id,
                        variant: arm.variant,
                        at: 0,
                    })
                })
                .collect()
        })
        .collect()
}

/// What each profile assigns, for the preview's picker: `hero-test: ev-teaser 45 %`.
fn profile_label(experiments: &[&Arms<'_>], pins: &[Assignment]) -> String {
    let names: Vec<String> = pins
        .iter()
        .filter_map(|pin| {
            let e = experiments.iter().find(|e| e.id == pin.experiment)?;
            let arm = e.arms.iter().find(|a| a.variant == pin.variant)?;
            Some(format!(
                "{}: {} {}",
                e.candidate,
                arm.label,
                percent(arm.share)
            ))
        })
        .collect();
    names.join(", ")
}

/// One audience of the grid, decided through the session as every face decides: the
/// grid's visitor in its state. (Slots given as references are never unknown.)
fn decide<'b>(
    bundle: &'b Bundle,
    (context, now): (&Context, UnixSeconds),
    state: &State,
    slots: &[SlotRef],
    mode: Mode,
) -> Option<Decision<'b>> {
    let request = session::Request {
        slots: Slots::Refs(slots),
        mode,
        ..session::Request::new(
            Visitor::State(state),
            context,
            now,
            Entropy::Fixed(state.visitor),
        )
    };
    session::decide(bundle, None, &request)
        .ok()
        .map(|outcome| outcome.decision)
}

/// The context and the clock of an audience.
fn request_of(grid: &Grid<'_>, audience: &Audience) -> (Context, UnixSeconds) {
    (grid.context(audience), grid.clock(audience))
}

/// The state of an audience with these experiment assignments.
fn pinned(mut state: State, pins: &[Assignment]) -> State {
    state.experiments = pins.to_vec();
    state
}

/// Who won what, over every audience and arm decided.
#[derive(Debug, Default)]
pub(super) struct Tally<'b> {
    /// (slot, candidate) pairs that won somewhere (an experiment's holdout included).
    chosen: BTreeSet<(usize, &'b str)>,
    /// Contents shown somewhere.
    shown: BTreeSet<&'b str>,
    /// Slots that show something else than their default somewhere.
    non_default: BTreeSet<usize>,
    /// How many contexts were decided (each once, whatever its arms).
    pub contexts: usize,
}

impl<'b> Tally<'b> {
    fn note(&mut self, slot: usize, d: &SlotDecision<'b>) {
        self.shown.insert(d.content);
        if let Some(candidate) = d.candidate {
            self.chosen.insert((slot, candidate));
        }
        if matches!(d.reason, Reason::Candidate | Reason::Experiment) {
            self.non_default.insert(slot);
        }
    }
}

/// Decides every audience of the page's grid, every slot together, once per
/// assignment profile; returns the preview's cells (the first profile's) and, per
/// further profile, the cells where it differs.
pub(super) fn page<'b>(
    bundle: &'b Bundle,
    grid: &Grid<'b>,
    experiments: &[Arms<'b>],
    tally: &mut Tally<'b>,
) -> (Vec<u16>, Vec<PreviewArm>) {
    let index: BTreeMap<&str, u16> = bundle
        .contents
        .iter()
        .enumerate()
        .filter_map(|(i, c)| Some((c.name.as_str(), u16::try_from(i).ok()?)))
        .collect();
    let all: Vec<&Arms<'b>> = experiments.iter().collect();
    let profiles = profiles(&all);
    let mut arms: Vec<PreviewArm> = profiles
        .iter()
        .map(|pins| PreviewArm {
            label: profile_label(&all, pins),
            changed: Vec::new(),
        })
        .collect();
    let slots = bundle.all_slots();
    let mut cells = Vec::new();
    for audience in grid.audiences() {
        let (context, now) = request_of(grid, &audience);
        let state = grid.state(&audience);
        let first = cells.len();
        let mut decided = false;
        for (p, pins) in profiles.iter().enumerate() {
            let state = pinned(state.clone(), pins);
            let Some(decision) = decide(bundle, (&context, now), &state, &slots, Mode::Serve)
            else {
                continue;
            };
            decided = true;
            for (s, d) in decision.decisions.iter().enumerate() {
                tally.note(s, d);
                let content = index.get(d.content).copied().unwrap_or(0);
                if p == 0 {
                    cells.push(content);
                } else if cells.get(first + s) != Some(&content) {
                    if let (Some(arm), Ok(at)) = (arms.get_mut(p), u32::try_from(first + s)) {
                        arm.changed.push((at, content));
                    }
                }
            }
        }
        tally.contexts += usize::from(decided);
    }
    (cells, if profiles.len() > 1 { arms } else { Vec::new() })
}

/// Decides each slot alone over the grid of its own candidates' rules (stages are an
/// axis already), once per arm of its experiments.
pub(super) fn reachability<'b>(
    bundle: &'b Bundle,
    now: UnixSeconds,
    experiments: &[Arms<'b>],
    tally: &mut Tally<'b>,
) {
    for (s, slot) in bundle.slots.iter().enumerate() {
        let grid = Grid::of_slot(bundle, now, &slot.candidates, MAX_SLOT_CONTEXTS);
        let own: Vec<&Arms<'b>> = experiments.iter().filter(|e| e.slot == s).collect();
        let profiles = profiles(&own);
        let Ok(only) = u16::try_from(s).map(|s| [SlotRef::at(s)]) else {
            continue;
        };
        for audience in grid.audiences() {
            let (context, now) = request_of(&grid, &audience);
            let state = grid.state(&audience);
            let mut decided = false;
            for pins in &profiles {
                let state = pinned(state.clone(), pins);
                let Some(decision) = decide(bundle, (&context, now), &state, &only, Mode::Serve)
                else {
                    continue;
                };
                decided = true;
                if let Some(d) = decision.decisions.first() {
                    tally.note(s, d);
                }
            }
            tally.contexts += usize::from(decided);
        }
    }
}

/// Verdicts the baseline traces give each (slot, candidate) that lost, with counts.
type Reasons<'b> = BTreeMap<(usize, &'b str), Vec<(Verdict<'b>, usize)>>;

/// The baseline matrix of every slot (each experiment on its first arm, and split
/// where one decides a cell), and the verdicts of the candidates that lost there.
pub(super) fn matrix<'b>(
    bundle: &'b Bundle,
    grid: &Grid<'b>,
    experiments: &[Arms<'b>],
) -> (Vec<SlotMatrix>, Reasons<'b>) {
    let all: Vec<&Arms<'b>> = experiments.iter().collect();
    let first = profiles(&all).into_iter().next().unwrap_or_default();
    let mut matrix: Vec<SlotMatrix> = bundle
        .slots
        .iter()
        .map(|s| SlotMatrix {
            slot: s.name.clone(),
            rows: Vec::new(),
        })
        .collect();
    let mut reasons = Reasons::new();
    for (stage, stage_ref) in bundle.stages.iter().enumerate() {
        let mut rows: Vec<Vec<Cell>> = vec![Vec::new(); bundle.slots.len()];
        for (device, channel) in columns() {
            let audience = grid.baseline(stage, device, channel);
            let Some((cells, traces)) = decide_cells(bundle, grid, experiments, &first, &audience)
            else {
                continue;
            };
            for (row, cell) in rows.iter_mut().zip(cells) {
                row.push(cell);
            }
            for (s, trace) in traces.iter().enumerate() {
                for c in trace.candidates.iter().filter(|c| !c.kept) {
                    if c.why == Verdict::NotEvaluated {
                        continue;
                    }
                    let counts = reasons.entry((s, c.candidate)).or_default();
                    match counts.iter_mut().find(|(v, _)| *v == c.why) {
                        Some((_, n)) => *n += 1,
                        None => counts.push((c.why, 1)),
                    }
                }
            }
        }
        for (m, cells) in matrix.iter_mut().zip(rows) {
            m.rows.push((stage_ref.name.clone(), cells));
        }
    }
    (matrix, reasons)
}

/// One audience decided as the matrix shows it: per slot its cell (each experiment on
/// its first arm, and split where one decides the slot), with the decision's traces.
fn decide_cells<'b>(
    bundle: &'b Bundle,
    grid: &Grid<'b>,
    experiments: &[Arms<'b>],
    first: &[Assignment],
    audience: &Audience,
) -> Option<(Vec<Cell>, Vec<SlotTrace<'b>>)> {
    let slots = bundle.all_slots();
    let (context, now) = request_of(grid, audience);
    let state = grid.state(audience);
    let decision = decide(
        bundle,
        (&context, now),
        &pinned(state.clone(), first),
        &slots,
        Mode::Explain,
    )?;
    let traces = decision.trace.map(|t| t.slots).unwrap_or_default();
    let cells = decision
        .decisions
        .iter()
        .enumerate()
        .map(|(s, d)| {
            let arm_of = |pins: &[Assignment]| {
                let state = pinned(state.clone(), pins);
                decide(bundle, (&context, now), &state, &slots, Mode::Serve)
                    .and_then(|d| d.decisions.into_iter().nth(s))
            };
            let split = traces
                .get(s)
                .and_then(|t| split(bundle, experiments, s, t, first, arm_of));
            cell(d, split)
        })
        .collect();
    Some((cells, traces))
}

/// Every slot's cell for one audience of any grid of the bundle, as the matrix shows it.
pub(super) fn cells<'b>(
    bundle: &'b Bundle,
    grid: &Grid<'b>,
    experiments: &[Arms<'b>],
    audience: &Audience,
) -> Option<Vec<Cell>> {
    let all: Vec<&Arms<'b>> = experiments.iter().collect();
    let first = profiles(&all).into_iter().next().unwrap_or_default();
    decide_cells(bundle, grid, experiments, &first, audience).map(|(cells, _)| cells)
}

/// A matrix cell: the decision, or with a split its largest arm (the first on ties).
fn cell(d: &SlotDecision<'_>, split: Option<Split>) -> Cell {
    let largest = split.as_ref().and_then(|s| {
        s.arms
            .iter()
            .fold(None, |best: Option<&Arm>, a| match best {
                Some(b) if b.share >= a.share => Some(b),
                _ => Some(a),
            })
    });
    let (content, candidate, reason) = match largest {
        Some(arm) => (arm.content.clone(), arm.candidate.clone(), arm.reason),
        None => (
            d.content.to_owned(),
            d.candidate.map(str::to_owned),
            d.reason,
        ),
    };
    Cell {
        content,
        candidate,
        reason,
        split,
    }
}

/// The split of the first experiment of a slot that got as far as assigning the
/// visitor (its stages and `when` hold, no earlier candidate won), decided arm by arm
/// with `arm_of`; `None` when no experiment decides the slot for any arm.
fn split<'b>(
    bundle: &'b Bundle,
    experiments: &[Arms<'b>],
    slot: usize,
    trace: &SlotTrace<'b>,
    pins: &[Assignment],
    arm_of: impl Fn(&[Assignment]) -> Option<SlotDecision<'b>>,
) -> Option<Split> {
    let candidates = &bundle.slots.get(slot)?.candidates;
    for c in &trace.candidates {
        if matches!(
            c.why,
            Verdict::NotEvaluated
                | Verdict::Stage(_)
                | Verdict::When
                | Verdict::OutOfFuel
                | Verdict::NoData
                | Verdict::Scheduled { .. }
        ) {
            continue;
        }
        let Some(Offer::Experiment(e)) = candidates
            .iter()
            .find(|k| k.name == c.candidate)
            .map(|k| &k.offer)
        else {
            continue;
        };
        let Some(experiment) = experiments.iter().find(|x| x.id == e.id) else {
            continue;
        };
        let mut decides = false;
        let arms: Vec<Arm> = experiment
            .arms
            .iter()
            .filter_map(|arm| {
                let pins: Vec<Assignment> = pins
                    .iter()
                    .map(|&p| {
                        if p.experiment == e.id {
                            Assignment {
                                variant: arm.variant,
                                ..p
                            }
                        } else {
                            p
                        }
                    })
                    .collect();
                let d = arm_of(&pins)?;
                decides |= d.experiment == Some(experiment.candidate);
                Some(Arm {
                    variant: arm.label.to_owned(),
                    share: arm.share,
                    content: d.content.to_owned(),
                    candidate: d.candidate.map(str::to_owned),
                    reason: d.reason,
                })
            })
            .collect();
        if decides {
            return Some(Split {
                experiment: experiment.candidate.to_owned(),
                arms,
            });
        }
    }
    None
}

/// Candidates no audience selects, each with the verdict the traces give it.
pub(super) fn unreachable<'b>(
    bundle: &'b Bundle,
    tally: &Tally<'b>,
    reasons: &Reasons<'b>,
) -> Vec<Unreachable<'b>> {
    let mut out = Vec::new();
    for (s, slot) in bundle.slots.iter().enumerate() {
        for c in &slot.candidates {
            if tally.chosen.contains(&(s, c.name.as_str())) {
                continue;
            }
            let most = reasons.get(&(s, c.name.as_str())).and_then(|counts| {
                counts
                    .iter()
                    .fold(None, |best: Option<&(Verdict<'b>, usize)>, x| match best {
                        Some(b) if b.1 >= x.1 => Some(b),
                        _ => Some(x),
                    })
            });
            out.push(Unreachable {
                slot: slot.name.clone(),
                candidate: c.name.clone(),
                why: most.map_or(Why::Shadowed, |(v, _)| Why::Verdict(*v)),
            });
        }
    }
    out
}

/// Slots no audience sees anything but the default in.
pub(super) fn default_only(bundle: &Bundle, tally: &Tally<'_>) -> Vec<String> {
    bundle
        .slots
        .iter()
        .enumerate()
        .filter(|(s, _)| !tally.non_default.contains(s))
        .map(|(_, s)| s.name.clone())
        .collect()
}

/// Contents no audience is shown.
pub(super) fn never_shown(bundle: &Bundle, tally: &Tally<'_>) -> Vec<String> {
    bundle
        .contents
        .iter()
        .filter(|c| !tally.shown.contains(c.name.as_str()))
        .map(|c| c.name.clone())
        .collect()
}

/// The experiments as the bundle defines them: each variant's weight, the holdout.
pub(super) fn experiments(bundle: &Bundle) -> Vec<ExperimentFact> {
    bundle
        .experiments()
        .into_iter()
        .map(|e| ExperimentFact {
            slot: e.slot.to_owned(),
            experiment: e.name.to_owned(),
            variants: e
                .variants
                .iter()
                .map(|&(name, share)| {
                    let weight = if e.holdout < 1.0 {
                        share / (1.0 - e.holdout)
                    } else {
                        0.0
                    };
                    (name.to_owned(), (weight * 1000.0).round() / 1000.0)
                })
                .collect(),
            holdout: e.holdout,
        })
        .collect()
}

/// A schedule's window in words: `from 2026-12-01T00:00:00Z until 2026-12-24T00:00:00Z`.
fn window(s: &micromoment::bundle::Schedule) -> String {
    let from = s
        .from
        .map(|t| format!("from {}", micromoment::time::rfc3339(t)));
    let until = s
        .until
        .map(|t| format!("until {}", micromoment::time::rfc3339(t)));
    [from, until]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The schedules, per candidate then per campaign.
pub(super) fn schedules(bundle: &Bundle) -> Vec<(String, String)> {
    let candidates = bundle.slots.iter().flat_map(|s| &s.candidates);
    candidates
        .filter_map(|c| c.schedule.map(|s| (c.name.clone(), window(&s))))
        .chain(bundle.campaigns.iter().filter_map(|c| {
            c.schedule
                .map(|s| (format!("campaign {}", c.name), window(&s)))
        }))
        .collect()
}

/// The caps, per candidate then per campaign: `3 per 7d`.
pub(super) fn caps(bundle: &Bundle) -> Vec<(String, String)> {
    let candidates = bundle.slots.iter().flat_map(|s| &s.candidates);
    candidates
        .filter_map(|c| {
            c.cap
                .map(|cap| (c.name.clone(), format!("{} per {}", cap.max, cap.per)))
        })
        .chain(bundle.campaigns.iter().map(|c| {
            (
                format!("campaign {}", c.name),
                format!("{} per {}", c.cap.max, c.cap.per),
            )
        }))
        .collect()
}
