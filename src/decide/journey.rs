//! Step 1 of a decision: this request's signals applied to the journey. A new visit
//! after 30 idle minutes; intents decayed (half-life) then raised (capped); transitions
//! in bundle order until none applies, forward only unless one says `back`.

use smallvec::SmallVec;

use super::facts::{stage_index, Facts, Journey, LazyTime};
use super::trace::JourneyStep;
use crate::bundle::Bundle;
use crate::context::{Channel, Context};
use crate::time::{UnixSeconds, MINUTE};
use crate::token::State;

/// Intent scores of a request, one per topic: most bundles have a handful of topics, kept
/// on the stack (a request allocates only what it returns).
pub(crate) type Scores = SmallVec<[f64; 8]>;

/// A new visit starts after this much idle time.
pub const VISIT_IDLE: i64 = 30 * MINUTE;

/// What the signals of a request made of the journey.
pub(crate) struct Signals<'b> {
    /// Where the visitor is now.
    pub journey: Journey,
    /// Intent scores, one per topic of the bundle.
    pub intents: Scores,
    /// The trace of what moved, when asked for.
    pub steps: Vec<JourneyStep<'b>>,
}

/// What the request says about consent: refused now, or refused before and not
/// given now.
pub fn opted_out(ctx: &Context, prior: &State) -> bool {
    match ctx.consent.personalization {
        Some(given) => !given,
        None => prior.consent.opted_out(),
    }
}

/// What the signals of a request are read against.
pub(crate) struct Scene<'s, 'b> {
    pub bundle: &'b Bundle,
    pub prior: &'s State,
    pub ctx: &'s Context,
    pub time: &'s LazyTime<'s>,
    pub now: UnixSeconds,
    pub explain: bool,
    pub feeds: Option<&'s crate::feed::Feeds>,
}

impl<'s> Scene<'s, '_> {
    /// The facts rules read at one phase of the request.
    pub fn facts<'f>(&'f self, journey: Journey, intents: &'f [f64]) -> Facts<'f>
    where
        's: 'f,
    {
        Facts {
            bundle: self.bundle,
            ctx: self.ctx,
            prior: self.prior,
            journey,
            intents,
            time: self.time,
            now: self.now,
            feeds: self.feeds,
            store: std::cell::Cell::new(None),
            watching: false,
            looked: std::cell::RefCell::new(Vec::new()),
        }
    }
}

/// Applies a request's signals to the journey. With consent refused, nothing moves.
pub(crate) fn apply<'b>(scene: &Scene<'_, 'b>, opted_out: bool) -> Signals<'b> {
    let prior = scene.prior;
    let now = scene.now;
    let mut signals = Signals {
        journey: Journey {
            stage: stage_index(scene.bundle, prior),
            since: if prior.stage_since == 0 {
                now
            } else {
                prior.stage_since
            },
            visits: prior.visits,
            generation: prior.stage_generation,
        },
        intents: Scores::new(),
        steps: Vec::new(),
    };
    if opted_out {
        return signals;
    }
    count_visit(&mut signals, scene);
    raise_intents(&mut signals, scene);
    move_along(&mut signals, scene);
    signals
}

fn count_visit(signals: &mut Signals<'_>, scene: &Scene<'_, '_>) {
    // An e-mail rendered or a push sent is not a visit of the person's.
    if matches!(scene.ctx.channel, Channel::Email | Channel::Push) {
        return;
    }
    // A backend may mint a token for a visitor the edge has not seen yet: it has a
    // stage but no visit.
    let is_new = scene.prior.last_visit == 0;
    if is_new || scene.now - scene.prior.last_visit >= VISIT_IDLE {
        signals.journey.visits = signals.journey.visits.saturating_add(1);
        if scene.explain {
            signals
                .steps
                .push(JourneyStep::Visit(signals.journey.visits));
        }
    }
}

/// Decays every intent, then adds what this request signals, capped.
/// The prior intent scores, decayed to now, one per topic of the bundle.
fn decayed_prior(scene: &Scene<'_, '_>) -> Scores {
    scene
        .bundle
        .topics
        .iter()
        .map(|topic| {
            scene
                .prior
                .intents
                .iter()
                .find(|i| i.topic == topic.id)
                .map_or(0.0, |i| {
                    let elapsed = (scene.now - i.updated_at).max(0) as f64;
                    f64::from(i.score) * 0.5f64.powf(elapsed / topic.half_life_secs)
                })
        })
        .collect()
}

/// The journey and intents as they stood before this request's signals.
pub(crate) fn before(scene: &Scene<'_, '_>) -> (Journey, Scores) {
    let journey = apply(scene, true).journey;
    (journey, decayed_prior(scene))
}

fn raise_intents<'b>(signals: &mut Signals<'b>, scene: &Scene<'_, 'b>) {
    let bundle = scene.bundle;
    let decayed = decayed_prior(scene);
    let facts = scene.facts(signals.journey, &decayed);
    let mut steps = Vec::new();
    let intents = bundle
        .topics
        .iter()
        .zip(&decayed)
        .map(|(topic, &base)| {
            let added: f64 = topic
                .signals
                .iter()
                .filter(|s| s.when.matches(&facts))
                .map(|s| s.add)
                .sum();
            // Not `clamp`: it panics on a NaN or inverted bound, and a bundle is input.
            let score = (base + added).min(topic.cap).max(0.0);
            if scene.explain && added != 0.0 {
                steps.push(JourneyStep::Intent {
                    topic: &topic.name,
                    base,
                    added,
                    score,
                });
            }
            score
        })
        .collect();
    signals.intents = intents;
    signals.steps.extend(steps);
}

/// Transitions, in bundle order, until none applies (at most one pass per stage).
fn move_along<'b>(signals: &mut Signals<'b>, scene: &Scene<'_, 'b>) {
    let bundle = scene.bundle;
    for _ in 0..bundle.stages.len() {
        let stage = signals.journey.stage;
        let facts = scene.facts(signals.journey, &signals.intents);
        let applies = bundle.transitions.iter().enumerate().find(|(_, t)| {
            let direction_ok = if t.back { t.to != stage } else { t.to > stage };
            direction_ok
                && t.from & (1u64 << (stage % 64)) != 0
                && t.when.as_ref().is_none_or(|w| w.matches(&facts))
        });
        let Some((i, t)) = applies else { break };
        if scene.explain {
            let name = |s: u16| {
                bundle
                    .stages
                    .get(usize::from(s))
                    .map_or("?", |s| s.name.as_str())
            };
            signals.steps.push(JourneyStep::Stage {
                from: name(stage),
                to: name(t.to),
                transition: i,
            });
        }
        signals.journey.stage = t.to;
        signals.journey.since = scene.now;
        if t.back {
            signals.journey.generation = signals.journey.generation.saturating_add(1);
        }
    }
}
