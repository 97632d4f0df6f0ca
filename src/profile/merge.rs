//! The merge (docs/profiles.md): two devices' contributions to one person's journey joined
//! into one, and what a device added since a state it was given.
//!
//! A contribution is a [`State`] read as "what this device added": its visits, the
//! intents it raised, the impressions it showed, the stage it moved to, the assignments
//! it made. [`join`] is commutative and associative (exactly, but for the rounding of
//! intent scores, which are summed in floating point), so the view of a profile (the
//! join of every device's contribution, folded in device order) is the same whatever
//! order the devices synced in. Idempotence is the profile's: a device's contribution
//! is replaced, never added to, by an exchange it already made (see `exchange.rs`).
//!
//! The rules, field by field:
//! - stage: the greatest `(generation, stage in bundle order, since, stage id)`. A
//!   `back` transition starts a new generation, so it wins over every stage set before
//!   it (causally: on a device that knew of it); within a generation the furthest
//!   stage wins.
//! - intents: decayed to the later of the two times and summed. The person's score is
//!   capped at the topic's cap by [`capped`], once, on the joined whole: a cap applied
//!   in every join would make the join depend on the grouping (a capped sum decays
//!   below the cap, an uncapped one may not).
//! - impressions: totals summed, last shown the latest. A cap's count sums the devices'
//!   counts whose window is still open at `now`, and its window opens at the earliest
//!   of those: a cap of 3 per week is 3 across every device.
//! - visits, visits per device type: summed; the last visit the latest, and the last
//!   channel that visit's.
//! - sequence progress and segments: union.
//! - experiment assignments: the one made first (`at`, then the lower variant) wins.
//! - consent is not merged: it is each device's own (docs/profiles.md says "the latest
//!   explicit choice wins"; consent to cookies and personalization is given per browser,
//!   and a choice made on the phone cannot stand for the laptop). A device without
//!   consent never syncs.
//!
//! Pure: no clock, no I/O; `now` is a parameter.

use std::cmp::Ordering;

use crate::bundle::{Bundle, Period};
use crate::context::Channel;
use crate::time::UnixSeconds;
use crate::token::{Assignment, Consent, DeviceKind, Impression, Intent, State};

/// Where a stage stands in the bundle's order: unknown or absent is the first.
fn rank(bundle: &Bundle, stage: Option<u32>) -> usize {
    stage
        .and_then(|id| bundle.stages.iter().position(|s| s.id == id))
        .unwrap_or(0)
}

/// The order stage marks are joined by: generation, then bundle order, then the later,
/// then the stage id (so that two different marks never tie).
fn stage_key(bundle: &Bundle, s: &State) -> (u16, usize, UnixSeconds, u32) {
    (
        s.stage_generation,
        rank(bundle, s.stage),
        s.stage_since,
        s.stage.unwrap_or(0),
    )
}

/// The cap period of a content or campaign id, if the bundle knows it.
fn period_of(bundle: &Bundle, id: u32) -> Option<Period> {
    if let Some(c) = bundle.contents.iter().find(|c| c.id == id) {
        return c.cap_period;
    }
    if let Some(c) = bundle.campaigns.iter().find(|c| c.id == id) {
        return Some(c.cap.per);
    }
    // A trigger's cap counts in the same records (docs/triggers.md: per profile once linked).
    bundle
        .triggers
        .iter()
        .find(|t| t.id == id)
        .and_then(|t| t.cap.map(|c| c.per))
}

/// An intent's score decayed from `from` to `to` with the topic's half-life (no decay
/// for a topic the bundle does not know).
fn decayed(bundle: &Bundle, topic: u32, score: f32, from: UnixSeconds, to: UnixSeconds) -> f64 {
    let half_life = bundle
        .topics
        .iter()
        .find(|t| t.id == topic)
        .map(|t| t.half_life_secs);
    let elapsed = (to - from).max(0) as f64;
    match half_life {
        Some(h) if h > 0.0 && h.is_finite() => f64::from(score) * 0.5f64.powf(elapsed / h),
        _ => f64::from(score),
    }
}

fn intent_cap(bundle: &Bundle, topic: u32) -> f64 {
    bundle
        .topics
        .iter()
        .find(|t| t.id == topic)
        .map_or(f64::from(f32::MAX), |t| t.cap)
}

/// Whether an impression record's window is open at `now` for `period`.
fn open(record: &Impression, period: Option<Period>, now: UnixSeconds) -> bool {
    match period {
        Some(Period::Seconds(p)) => now - record.window_start < p,
        Some(Period::Lifetime) | None => true,
    }
}

fn join_impression(
    a: &Impression,
    b: &Impression,
    period: Option<Period>,
    now: UnixSeconds,
) -> Impression {
    let (a_open, b_open) = (open(a, period, now), open(b, period, now));
    let (count, window_start) = match (a_open, b_open) {
        (true, true) => (
            a.count.saturating_add(b.count),
            a.window_start.min(b.window_start),
        ),
        (true, false) => (a.count, a.window_start),
        (false, true) => (b.count, b.window_start),
        // Both closed: nothing counts, and the window is as closed as the latest.
        (false, false) => (0, a.window_start.max(b.window_start)),
    };
    Impression {
        id: a.id,
        count,
        window_start,
        last_shown: a.last_shown.max(b.last_shown),
        total: a.total.saturating_add(b.total),
    }
}

/// The join of two contributions at `now`: see the module documentation. The result
/// keeps `a`'s visitor id and consent, and no link.
pub fn join(bundle: &Bundle, a: &State, b: &State, now: UnixSeconds) -> State {
    let stage_from = if stage_key(bundle, a) >= stage_key(bundle, b) {
        a
    } else {
        b
    };
    let last_from = match a.last_visit.cmp(&b.last_visit) {
        Ordering::Greater => a,
        Ordering::Less => b,
        Ordering::Equal => {
            if a.last_channel.map(Channel::code) >= b.last_channel.map(Channel::code) {
                a
            } else {
                b
            }
        }
    };
    let mut visits_by = a.visits_by;
    for (count, other) in visits_by.iter_mut().zip(b.visits_by) {
        *count = count.saturating_add(other);
    }
    State {
        visitor: a.visitor,
        issued_at: a.issued_at.max(b.issued_at),
        expires_at: a.expires_at.max(b.expires_at),
        stage: stage_from.stage,
        stage_since: stage_from.stage_since,
        stage_generation: stage_from.stage_generation,
        visits: a.visits.saturating_add(b.visits),
        visits_by,
        last_visit: last_from.last_visit,
        last_channel: last_from.last_channel,
        intents: join_intents(bundle, &a.intents, &b.intents),
        impressions: join_impressions(bundle, &a.impressions, &b.impressions, now),
        sequence: union(&a.sequence, &b.sequence),
        experiments: join_experiments(&a.experiments, &b.experiments),
        segments: union(&a.segments, &b.segments),
        consent: a.consent,
        link: None,
    }
}

/// `state` with every intent score decayed to `now` and capped at its topic's cap: a
/// joined whole as the engine would hold it at `now`. (Capping at each intent's own
/// time instead would make two views of one person differ by when their last change
/// happened to arrive.)
pub fn capped(bundle: &Bundle, mut state: State, now: UnixSeconds) -> State {
    for i in &mut state.intents {
        let at = now.max(i.updated_at);
        let score =
            decayed(bundle, i.topic, i.score, i.updated_at, at).min(intent_cap(bundle, i.topic));
        // Narrowing is the point: scores are f32 in the state.
        #[allow(clippy::cast_possible_truncation)]
        let score = score.clamp(0.0, f64::from(f32::MAX)) as f32;
        *i = Intent {
            topic: i.topic,
            score,
            updated_at: at,
        };
    }
    state
}

fn join_intents(bundle: &Bundle, a: &[Intent], b: &[Intent]) -> Vec<Intent> {
    let mut out: Vec<Intent> = Vec::with_capacity(a.len() + b.len());
    for i in a.iter().chain(b) {
        match out.iter_mut().find(|o| o.topic == i.topic) {
            None => out.push(*i),
            Some(o) => {
                let at = o.updated_at.max(i.updated_at);
                let sum = decayed(bundle, o.topic, o.score, o.updated_at, at)
                    + decayed(bundle, i.topic, i.score, i.updated_at, at);
                // Narrowing is the point: scores are f32 in the state.
                #[allow(clippy::cast_possible_truncation)]
                let score = sum.clamp(0.0, f64::from(f32::MAX)) as f32;
                *o = Intent {
                    topic: o.topic,
                    score,
                    updated_at: at,
                };
            }
        }
    }
    out.sort_by_key(|i| i.topic);
    out
}

fn join_impressions(
    bundle: &Bundle,
    a: &[Impression],
    b: &[Impression],
    now: UnixSeconds,
) -> Vec<Impression> {
    let mut out: Vec<Impression> = Vec::with_capacity(a.len() + b.len());
    for i in a.iter().chain(b) {
        match out.iter_mut().find(|o| o.id == i.id) {
            None => out.push(*i),
            Some(o) => *o = join_impression(o, i, period_of(bundle, i.id), now),
        }
    }
    // A window closed at `now` counts nothing, whether or not it met another: the join
    // must not depend on which records met.
    for o in &mut out {
        if !open(o, period_of(bundle, o.id), now) {
            o.count = 0;
        }
    }
    // Oldest shown first: the order a token trims them in.
    out.sort_by_key(|i| (i.last_shown, i.id));
    out
}

fn join_experiments(a: &[Assignment], b: &[Assignment]) -> Vec<Assignment> {
    let mut out: Vec<Assignment> = Vec::with_capacity(a.len() + b.len());
    for x in a.iter().chain(b) {
        match out.iter_mut().find(|o| o.experiment == x.experiment) {
            None => out.push(*x),
            Some(o) => {
                if (x.at, x.variant) < (o.at, o.variant) {
                    *o = *x;
                }
            }
        }
    }
    out.sort_by_key(|a| (a.at, a.experiment));
    out
}

fn union<T: Ord + Clone>(a: &[T], b: &[T]) -> Vec<T> {
    let mut out: Vec<T> = a.iter().chain(b).cloned().collect();
    out.sort();
    out.dedup();
    out
}

/// What `current` holds beyond `base`: the contribution a device made since it
/// was given `base` (its last sync's view, or its own state at its last push). Nothing
/// is ever negative: an entry `current` lacks (a token trimmed it) adds nothing.
pub fn delta(bundle: &Bundle, current: &State, base: &State) -> State {
    let mut visits_by = [0u32; DeviceKind::COUNT];
    for ((d, c), b) in visits_by
        .iter_mut()
        .zip(current.visits_by)
        .zip(base.visits_by)
    {
        *d = c.saturating_sub(b);
    }
    let newer_visit = current.last_visit > base.last_visit;
    let mut intents = Vec::new();
    for c in &current.intents {
        let at = match base.intents.iter().find(|b| b.topic == c.topic) {
            Some(b) => c.updated_at.max(b.updated_at),
            None => c.updated_at,
        };
        let before = base
            .intents
            .iter()
            .find(|b| b.topic == c.topic)
            .map_or(0.0, |b| decayed(bundle, b.topic, b.score, b.updated_at, at));
        let added = decayed(bundle, c.topic, c.score, c.updated_at, at) - before;
        if added > 0.0 {
            #[allow(clippy::cast_possible_truncation)]
            intents.push(Intent {
                topic: c.topic,
                score: added as f32,
                updated_at: at,
            });
        }
    }
    let mut impressions = Vec::new();
    for c in &current.impressions {
        let b = base.impressions.iter().find(|b| b.id == c.id);
        let (count, total) = match b {
            // The same window: what was added to it.
            Some(b) if b.window_start == c.window_start => (
                c.count.saturating_sub(b.count),
                c.total.saturating_sub(b.total),
            ),
            // A window the device opened since: all of it.
            Some(b) => (c.count, c.total.saturating_sub(b.total)),
            None => (c.count, c.total),
        };
        if count > 0 || total > 0 {
            impressions.push(Impression {
                id: c.id,
                count,
                window_start: c.window_start,
                last_shown: c.last_shown,
                total,
            });
        }
    }
    State {
        visitor: current.visitor,
        issued_at: current.issued_at,
        expires_at: current.expires_at,
        // The stage is a register: the device's own mark, joined by the greatest.
        stage: current.stage,
        stage_since: current.stage_since,
        stage_generation: current.stage_generation,
        visits: current.visits.saturating_sub(base.visits),
        visits_by,
        last_visit: if newer_visit { current.last_visit } else { 0 },
        last_channel: if newer_visit {
            current.last_channel
        } else {
            None
        },
        intents,
        impressions,
        sequence: current
            .sequence
            .iter()
            .filter(|s| !base.sequence.contains(s))
            .copied()
            .collect(),
        experiments: current
            .experiments
            .iter()
            .filter(|a| !base.experiments.contains(a))
            .copied()
            .collect(),
        segments: current
            .segments
            .iter()
            .filter(|s| !base.segments.contains(s))
            .cloned()
            .collect(),
        consent: Consent::default(),
        link: None,
    }
}

/// A device's state after it is given the profile's view: the person's journey, with
/// what stays the device's own (its visitor id, token times, last request, consent and
/// link; the number of devices from the view).
pub fn adopt(device: &State, view: &State, devices: u8) -> State {
    State {
        visitor: device.visitor,
        issued_at: device.issued_at,
        expires_at: device.expires_at,
        last_visit: device.last_visit,
        consent: device.consent,
        link: device.link.map(|mut l| {
            l.devices = devices;
            l
        }),
        ..view.clone()
    }
}
