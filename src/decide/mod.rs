//! The decision: a pure function of (bundle, visitor state, context, now, slots).
//!
//! 1. Apply this request's signals (`journey`): count the visit, decay and raise
//!    intents, move the visitor along the journey (forward only unless a transition
//!    says `back`).
//! 2. Per requested slot (`select`), pick the first eligible candidate by priority:
//!    stages, `when`, experiment assignment (holdout shows the default), one content per
//!    page, `after` sequences, content and campaign caps; else the slot's default.
//! 3. Record impressions, render the channel's rendition (`render`), produce exposures
//!    and, on request, a trace (`trace`) of every candidate and why it was kept or
//!    skipped.
//!
//! This module never reads a clock, never draws randomness and never fails: every
//! unknown or missing input falls back to a default, and the trace says why. Faces call
//! it through `session`, which verifies tokens and signs the new state.

mod facts;
mod journey;
mod render;
mod select;
mod trace;
mod triggers;
mod types;

use smallvec::SmallVec;
use std::borrow::Cow;

pub use journey::opted_out;
pub use journey::VISIT_IDLE;
pub use render::{escape_html, render_preview};
pub use render::{MAX_PLACEHOLDER_BYTES, MAX_RENDERED_BYTES};
pub use trace::{CandidateTrace, JourneyStep, SlotResult, SlotTrace, Trace, Verdict};
pub use types::{Decision, Exposure, Fired, Reason, SlotDecision, Watch};

use crate::bundle::{Bundle, Period, SlotRef};
use crate::context::{Context, DeviceType};
use crate::feed::{Feeds, Wants};
use crate::ids;
use crate::rules::FeedOp;
use crate::time::UnixSeconds;
use crate::token::{Impression, Intent, State};
use facts::{Journey, LazyTime};
use journey::{Scene, Scores};
use select::{Page, Pick};

/// Intents below this score are forgotten.
const INTENT_FLOOR: f64 = 0.01;

/// Who, where and when: a decision's inputs besides the bundle and the slots.
#[derive(Debug, Clone, Copy)]
pub struct Visit<'a> {
    /// The visitor's verified state; `None` for a new visitor.
    pub prior: Option<&'a State>,
    /// The id a new visitor gets (the adapter's entropy).
    pub new_visitor: [u8; 16],
    /// The request context.
    pub context: &'a Context,
    /// The adapter's clock.
    pub now: UnixSeconds,
    /// Whether to produce a trace of every candidate.
    pub explain: bool,
    /// Whether the person was seen before this request (it carried a valid token, or a
    /// backend named them): only then may a delayed trigger be scheduled, so no
    /// cookie-less request ever leaves something waiting (docs/triggers.md).
    pub returning: bool,
    /// The live data the face loaded for this request ([`feed_wants`] says what to
    /// load); without it, every rule that reads a feed is false.
    pub feeds: Option<&'a Feeds>,
}

/// Decides for one request: [`Decider`] taken slot by slot over `slots`.
pub fn decide<'b>(bundle: &'b Bundle, visit: &Visit<'_>, slots: &[SlotRef]) -> Decision<'b> {
    let mut decider = Decider::new(bundle, visit);
    for &slot in slots {
        decider.slot(slot);
    }
    decider.finish()
}

/// One request's decision, taken slot by slot: [`Decider::new`] applies the request's
/// signals, [`Decider::slot`] decides one slot (in the order asked: a page's slots in
/// document order, as a streaming rewriter meets them), [`Decider::finish`] records the
/// impressions and gives the [`Decision`]. [`decide`] is the three in a row.
pub struct Decider<'a, 'b> {
    bundle: &'b Bundle,
    ctx: &'a Context,
    prior: Cow<'a, State>,
    next: State,
    time: LazyTime<'a>,
    now: UnixSeconds,
    explain: bool,
    returning: bool,
    feeds: Option<&'a Feeds>,
    opted_out: bool,
    journey: Journey,
    intents: Scores,
    journey_trace: Vec<JourneyStep<'b>>,
    visitor_hex: [u8; 32],
    /// The content of each decision, in order; defaults too.
    placed: SmallVec<[u16; 8]>,
    /// Stable ids of contents and campaigns shown earlier in this request: caps count
    /// them too, so two slots cannot overrun a cap together.
    shown_now: SmallVec<[u32; 16]>,
    campaign_hits: SmallVec<[u16; 4]>,
    decisions: Vec<SlotDecision<'b>>,
    slot_traces: Vec<SlotTrace<'b>>,
    /// Whether a feed trigger watches the rows lookups read, and those the shown
    /// candidates read.
    watching: bool,
    watches: Vec<Watch>,
}

impl<'a, 'b> Decider<'a, 'b> {
    /// Starts a request: counts the visit, decays and raises intents, applies
    /// transitions.
    pub fn new(bundle: &'b Bundle, visit: &Visit<'a>) -> Self {
        let now = visit.now;
        let ctx = visit.context;
        let prior = match visit.prior {
            Some(state) => Cow::Borrowed(state),
            None => Cow::Owned(State {
                visitor: visit.new_visitor,
                stage_since: now,
                ..State::default()
            }),
        };
        let mut next = prior.as_ref().clone();
        // This request's signal wins over the one remembered in the token, both ways.
        let opted_out = journey::opted_out(ctx, &prior);
        if ctx.consent.personalization == Some(true) {
            next.consent =
                crate::token::Consent(next.consent.0 & !crate::token::Consent::OPTED_OUT);
        }
        let time = LazyTime::new(now, ctx.geo.timezone.as_deref());
        let signals = journey::apply(
            &Scene {
                bundle,
                prior: &prior,
                ctx,
                time: &time,
                now,
                explain: visit.explain,
                feeds: visit.feeds,
            },
            opted_out,
        );
        // A linked device buckets by its profile, so every device of the person draws
        // the same variant even before they sync.
        let mut visitor_hex = [0u8; 32];
        ids::hex128(
            &prior.link.map_or(prior.visitor, |l| l.profile),
            &mut visitor_hex,
        );
        Decider {
            bundle,
            ctx,
            prior,
            next,
            time,
            now,
            explain: visit.explain,
            returning: visit.returning,
            feeds: visit.feeds,
            opted_out,
            journey: signals.journey,
            intents: signals.intents,
            journey_trace: signals.steps,
            visitor_hex,
            placed: SmallVec::new(),
            shown_now: SmallVec::new(),
            campaign_hits: SmallVec::new(),
            decisions: Vec::with_capacity(4),
            slot_traces: Vec::new(),
            watching: visit.feeds.is_some()
                && bundle
                    .triggers
                    .iter()
                    .any(|t| matches!(t.on, crate::bundle::TriggerOn::Feed { .. })),
            watches: Vec::new(),
        }
    }

    /// The decisions so far, in the order their slots were asked.
    pub fn decisions(&self) -> &[SlotDecision<'b>] {
        &self.decisions
    }

    /// What the face must load before this request decides ([`Visit::feeds`]): the
    /// shards of the items the bundle's feed lookups name, evaluated on the journey as
    /// this request's signals leave it, and the stores feed whole when a rule looks for
    /// the nearest store. Nothing for a bundle without feed lookups.
    pub fn feed_wants(&self) -> Wants {
        let bundle = self.bundle;
        let mut wants = Wants::default();
        let Some((stock, _)) = bundle.feed_roles.stock else {
            return wants;
        };
        if bundle.feed_keys.is_empty() || self.opted_out {
            return wants;
        }
        let scene = Scene {
            bundle,
            prior: &self.prior,
            ctx: self.ctx,
            time: &self.time,
            now: self.now,
            explain: false,
            feeds: None,
        };
        let facts = scene.facts(self.journey, &self.intents);
        for key in bundle.feed_keys.iter() {
            let item = match key.item.eval(&facts) {
                Ok(crate::rules::Value::Null) | Err(_) => continue,
                Ok(v) => v.to_js_string().into_owned(),
            };
            if item.is_empty() {
                continue;
            }
            if key.op == FeedOp::NearestStore {
                if let Some((stores, _, _)) = bundle.feed_roles.stores {
                    if !wants.whole.contains(&stores) {
                        wants.whole.push(stores);
                    }
                }
            }
            if !wants.keys.iter().any(|(f, k)| *f == stock && *k == item) {
                wants.keys.push((stock, item));
            }
        }
        wants
    }

    /// Decides one slot and returns its decision; `None` for a slot index the bundle
    /// does not have. Each call is a slot of this request: asking for a slot twice
    /// shows it twice.
    pub fn slot(&mut self, SlotRef(slot_index): SlotRef) -> Option<&SlotDecision<'b>> {
        let bundle = self.bundle;
        let slot = bundle.slots.get(usize::from(slot_index))?;
        let scene = Scene {
            bundle,
            prior: &self.prior,
            ctx: self.ctx,
            time: &self.time,
            now: self.now,
            explain: self.explain,
            feeds: self.feeds,
        };
        let mut facts = scene.facts(self.journey, &self.intents);
        facts.watching = self.watching;
        let mut trace = Vec::new();
        let pick = if self.opted_out {
            Pick::Nothing
        } else {
            select::pick(
                bundle,
                &facts,
                &mut self.next,
                &self.visitor_hex,
                &slot.candidates,
                &Page {
                    placed: &self.placed,
                    shown: &self.shown_now,
                },
                self.explain.then_some(&mut trace),
            )
        };
        let (content, candidate, experiment, variant, reason) = match pick {
            Pick::Won {
                candidate,
                content,
                variant,
            } => {
                if let Some(k) = candidate.campaign {
                    self.campaign_hits.push(k);
                    if let Some(campaign) = bundle.campaigns.get(usize::from(k)) {
                        self.shown_now.push(campaign.id);
                    }
                }
                let is_experiment = variant.is_some();
                (
                    content,
                    Some(candidate.name.as_str()),
                    is_experiment.then_some(candidate.name.as_str()),
                    variant,
                    if is_experiment {
                        Reason::Experiment
                    } else {
                        Reason::Candidate
                    },
                )
            }
            Pick::Holdout(candidate) => (
                slot.default,
                Some(candidate.name.as_str()),
                Some(candidate.name.as_str()),
                Some("holdout"),
                Reason::Holdout,
            ),
            Pick::Nothing => (
                slot.default,
                None,
                None,
                None,
                if self.opted_out {
                    Reason::Consent
                } else {
                    Reason::Default
                },
            ),
        };
        if self.feeds.is_some() {
            if matches!(reason, Reason::Candidate | Reason::Experiment) {
                for watch in facts.looked.take() {
                    if !self.watches.contains(&watch) {
                        self.watches.push(watch);
                    }
                }
            } else {
                facts.store.set(None);
            }
        }
        self.placed.push(content);
        let content_ref = bundle.contents.get(usize::from(content));
        if let Some(c) = content_ref {
            self.shown_now.push(c.id);
        }
        let content_name = content_ref
            .or_else(|| bundle.contents.get(usize::from(slot.default)))
            .map_or("", |c| c.name.as_str());
        if self.explain {
            self.slot_traces.push(SlotTrace {
                slot: &slot.name,
                candidates: trace,
                result: SlotResult {
                    content: content_name,
                    reason,
                },
            });
        }
        let (html, json, text) = content_ref.map_or((None, None, None), |c| {
            render::render(c, self.ctx.channel, &facts)
        });
        self.decisions.push(SlotDecision {
            slot: &slot.name,
            content: content_name,
            candidate,
            experiment,
            variant,
            reason,
            html,
            json,
            text,
        });
        self.decisions.last()
    }

    fn stage_name(&self) -> &'b str {
        self.bundle
            .stages
            .get(usize::from(self.journey.stage))
            .map_or("", |s| s.name.as_str())
    }

    /// Ends the request: records the impressions of every decision (defaults too),
    /// sequence progress and the journey in the new state, and produces the exposures.
    pub fn finish(self) -> Decision<'b> {
        let bundle = self.bundle;
        let stage_name = self.stage_name();
        let Decider {
            prior,
            mut next,
            now,
            explain,
            returning,
            opted_out,
            journey,
            intents,
            journey_trace,
            placed,
            campaign_hits,
            decisions,
            slot_traces,
            ctx,
            time,
            watches,
            ..
        } = self;
        if opted_out {
            return Decision {
                stage: stage_name,
                decisions,
                trace: explain.then(|| Trace {
                    journey: vec![JourneyStep::NoConsent],
                    slots: slot_traces,
                }),
                state: prior.into_owned(),
                persist: false,
                exposures: Vec::new(),
                triggers: Vec::new(),
                watches: Vec::new(),
            };
        }
        for &shown in &placed {
            if let Some(content) = bundle.contents.get(usize::from(shown)) {
                record_impression(&mut next, content.id, content.cap_period, now);
                if content.prerequisite && !next.sequence.contains(&content.id) {
                    next.sequence.push(content.id);
                }
            }
        }
        for k in campaign_hits {
            if let Some(campaign) = bundle.campaigns.get(usize::from(k)) {
                record_impression(&mut next, campaign.id, Some(campaign.cap.per), now);
            }
        }
        next.stage = bundle.stages.get(usize::from(journey.stage)).map(|s| s.id);
        next.stage_since = journey.since;
        if let Some(kind) = ctx.visit_kind() {
            // Visits a `v1` token counted without a kind are this device's.
            let known = next
                .visits_by
                .iter()
                .fold(0u32, |a, &b| a.saturating_add(b));
            let unknown = prior.visits.saturating_sub(known);
            let new = journey.visits.saturating_sub(prior.visits);
            if let Some(count) = next.visits_by.get_mut(kind.index()) {
                *count = count.saturating_add(unknown).saturating_add(new);
            }
        }
        next.visits = journey.visits;
        next.stage_generation = journey.generation;
        next.last_channel = Some(ctx.channel);
        next.last_visit = now;
        next.issued_at = now;
        for (topic, &score) in bundle.topics.iter().zip(&intents) {
            next.intents.retain(|i| i.topic != topic.id);
            if score >= INTENT_FLOOR {
                next.intents.push(Intent {
                    topic: topic.id,
                    score: score as f32,
                    updated_at: now,
                });
            }
        }
        // Crawlers and prefetches are served but are not anybody's exposures, and
        // start no conversation.
        let nobody = ctx.device.kind == Some(DeviceType::Bot) || ctx.prefetch;
        let fired = if nobody || bundle.triggers.is_empty() {
            Vec::new()
        } else {
            let scene = Scene {
                bundle,
                prior: &prior,
                ctx,
                time: &time,
                now,
                explain: false,
                feeds: self.feeds,
            };
            let (before, before_intents) = journey::before(&scene);
            triggers::fire(
                bundle,
                &scene,
                &triggers::Moment {
                    before,
                    before_intents: &before_intents,
                    after: journey,
                    after_intents: &intents,
                },
                &mut next,
                stage_name,
                returning,
            )
        };
        let exposures = if nobody {
            Vec::new()
        } else {
            decisions
                .iter()
                .map(|d| Exposure {
                    visitor: prior.visitor,
                    bundle: &bundle.id,
                    bundle_version: bundle.version,
                    slot: d.slot,
                    content: d.content,
                    candidate: d.candidate,
                    experiment: d.experiment,
                    variant: d.variant,
                    reason: d.reason,
                    stage: stage_name,
                    at: now,
                })
                .collect()
        };
        Decision {
            stage: stage_name,
            decisions,
            trace: explain.then_some(Trace {
                journey: journey_trace,
                slots: slot_traces,
            }),
            state: next,
            persist: true,
            exposures,
            triggers: fired,
            watches,
        }
    }
}

fn record_impression(state: &mut State, id: u32, period: Option<Period>, now: UnixSeconds) {
    match state.impressions.iter_mut().find(|i| i.id == id) {
        None => state.impressions.push(Impression {
            id,
            count: 1,
            window_start: now,
            last_shown: now,
            total: 1,
        }),
        Some(r) => {
            let expired = matches!(period, Some(Period::Seconds(p)) if now - r.window_start >= p);
            if expired {
                r.count = 1;
                r.window_start = now;
            } else {
                r.count = r.count.saturating_add(1);
            }
            r.total = r.total.saturating_add(1);
            r.last_shown = now;
        }
    }
}
