//! The decision: a pure function of (bundle, visitor state, context, now, slots).
//!
//! 1. Apply this request's signals: count the visit, decay and raise intents, move the
//!    visitor along the journey (forward only unless a transition says `back`).
//! 2. Per requested slot, pick the first eligible candidate by priority: stages, `when`,
//!    experiment assignment (holdout shows the default), one content per page, `after`
//!    sequences, content and campaign caps; else the slot's default.
//! 3. Record impressions, render the channel's rendition, produce exposures and, on
//!    request, a trace of every candidate and why it was kept or skipped.
//!
//! This module never reads a clock, never draws randomness and never fails: every
//! unknown or missing input falls back to a default, and the trace says why.

use serde::Serialize;
use smallvec::SmallVec;
use std::borrow::Cow;

use crate::bucket;
use crate::bundle::{
    Bundle, Candidate, Content, JsonTemplate, Offer, Period, Piece, SlotRef, Template,
};
use crate::context::{Channel, Context, DeviceType, LocalTime, VarId};
use crate::rules::{Data, Value, Verdict};
use crate::time::{UnixSeconds, DAY, MINUTE};
use crate::token::{Assignment, Impression, Intent, State};

/// Intent scores of a request, one per topic: most bundles have a handful of topics, kept
/// on the stack (a request allocates only what it returns).
type Scores = SmallVec<[f64; 8]>;

/// A new visit starts after this much idle time.
pub const VISIT_IDLE: i64 = 30 * MINUTE;

/// Intents below this score are forgotten.
const INTENT_FLOOR: f64 = 0.01;

/// What the caller wants besides the decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Produce a trace of every candidate.
    pub explain: bool,
}

/// Why a slot shows what it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// A candidate won.
    Candidate,
    /// An experiment variant won.
    Experiment,
    /// The visitor is in the experiment's holdout: the default is shown.
    Holdout,
    /// No candidate was eligible: the default is shown.
    Default,
    /// No personalization consent: the default is shown.
    Consent,
}

/// The answer for one slot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotDecision<'b> {
    /// The slot.
    pub slot: &'b str,
    /// The content shown.
    pub content: &'b str,
    /// The candidate that won, or null for a default.
    pub candidate: Option<&'b str>,
    /// The experiment (its candidate id), when one decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<&'b str>,
    /// The experiment variant (its content id, or `holdout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<&'b str>,
    /// Why.
    pub reason: Reason,
    /// The HTML rendition, for the web channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<Cow<'b, str>>,
    /// The JSON rendition, for the app channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// The plain-text rendition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Cow<'b, str>>,
}

/// The record that a visitor was shown a content, for attribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exposure<'b> {
    /// The visitor id, written as 32 hex digits.
    #[serde(serialize_with = "serialize_visitor")]
    pub visitor: [u8; 16],
    /// The bundle id.
    pub bundle: &'b str,
    /// The bundle version.
    pub bundle_version: u64,
    /// The slot.
    pub slot: &'b str,
    /// The content shown.
    pub content: &'b str,
    /// The winning candidate, if any.
    pub candidate: Option<&'b str>,
    /// The experiment, if one decided.
    pub experiment: Option<&'b str>,
    /// The variant, if an experiment decided.
    pub variant: Option<&'b str>,
    /// Why the content was shown.
    pub reason: Reason,
    /// The visitor's stage.
    pub stage: &'b str,
    /// When, in Unix seconds.
    pub at: UnixSeconds,
}

/// Why each candidate of a slot was kept or skipped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotTrace<'b> {
    /// The slot.
    pub slot: &'b str,
    /// Candidates in evaluation order (priority, then bundle order).
    pub candidates: Vec<CandidateTrace<'b>>,
    /// What the slot ended with.
    pub result: String,
}

/// One candidate's fate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateTrace<'b> {
    /// The candidate id.
    pub candidate: &'b str,
    /// Its priority.
    pub priority: f64,
    /// Whether it won.
    pub kept: bool,
    /// Why it won or was skipped.
    pub why: String,
}

/// The trace of a decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace<'b> {
    /// Visits, intents and stage moves, in order.
    pub journey: Vec<String>,
    /// Per requested slot.
    pub slots: Vec<SlotTrace<'b>>,
}

/// Everything a decision produces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision<'b> {
    /// The visitor's stage after this request's signals.
    pub stage: &'b str,
    /// One per requested slot, in request order.
    pub decisions: Vec<SlotDecision<'b>>,
    /// The trace, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace<'b>>,
    /// The visitor's new state.
    #[serde(skip)]
    pub state: State,
    /// Whether the new state may be written (false without consent).
    #[serde(skip)]
    pub persist: bool,
    /// Exposure events to send after the response.
    #[serde(skip)]
    pub exposures: Vec<Exposure<'b>>,
}

/// What rules read: the request context plus the visitor's journey so far.
struct Facts<'a> {
    bundle: &'a Bundle,
    ctx: &'a Context,
    prior: &'a State,
    stage: u16,
    stage_since: UnixSeconds,
    visits: u32,
    intents: &'a [f64],
    time: &'a LazyTime<'a>,
    now: UnixSeconds,
}

/// The visitor's local time, worked out (a time zone lookup and a calendar conversion)
/// only when a rule or placeholder reads `time.*`: most requests never do.
struct LazyTime<'a> {
    now: UnixSeconds,
    timezone: Option<&'a str>,
    local: std::cell::OnceCell<LocalTime>,
}

impl<'a> LazyTime<'a> {
    fn new(now: UnixSeconds, timezone: Option<&'a str>) -> Self {
        LazyTime {
            now,
            timezone,
            local: std::cell::OnceCell::new(),
        }
    }

    fn get(&self) -> &LocalTime {
        self.local
            .get_or_init(|| LocalTime::at(self.now, self.timezone))
    }
}

impl<'a> Facts<'a> {
    /// The facts of one phase of a request: the journey `(stage, stage_since, visits)`
    /// and intents as they stand at that phase.
    fn new(
        bundle: &'a Bundle,
        ctx: &'a Context,
        prior: &'a State,
        (stage, stage_since, visits): (u16, UnixSeconds, u32),
        intents: &'a [f64],
        time: &'a LazyTime<'a>,
        now: UnixSeconds,
    ) -> Self {
        Facts {
            bundle,
            ctx,
            prior,
            stage,
            stage_since,
            visits,
            intents,
            time,
            now,
        }
    }

    fn impression(&self, id: u32) -> Option<&Impression> {
        self.prior.impressions.iter().find(|i| i.id == id)
    }

    fn seen_total(&self, content: &Content) -> u32 {
        self.impression(content.id).map_or(0, |i| i.total)
    }

    /// Whether the visitor saw a content before this request.
    fn seen_before(&self, content: &Content) -> bool {
        self.seen_total(content) > 0 || self.prior.sequence.contains(&content.id)
    }
}

fn opt_str(value: &Option<String>) -> Option<Value<'_>> {
    value.as_deref().map(Value::str)
}

impl Data for Facts<'_> {
    type Var = VarId;

    fn get(&self, var: &VarId) -> Option<Value<'_>> {
        let ctx = self.ctx;
        match var {
            VarId::Stage => self
                .bundle
                .stages
                .get(usize::from(self.stage))
                .map(|s| Value::str(&s.name)),
            VarId::StageIndex => Some(Value::Number(f64::from(self.stage))),
            VarId::DaysInStage => Some(Value::Number(
                (self.now - self.stage_since) as f64 / DAY as f64,
            )),
            VarId::Intent(topic) => Some(Value::Number(
                self.intents
                    .get(usize::from(*topic))
                    .copied()
                    .unwrap_or(0.0),
            )),
            VarId::Visits => Some(Value::Number(f64::from(self.visits))),
            VarId::Returning => Some(Value::Bool(self.visits > 1)),
            VarId::Segments => Some(Value::Array(
                self.prior.segments.iter().map(|s| Value::str(s)).collect(),
            )),
            VarId::Seen(content) => self
                .bundle
                .contents
                .get(usize::from(*content))
                .map(|c| Value::Number(f64::from(self.seen_total(c)))),
            VarId::Event => opt_str(&ctx.event),
            VarId::Channel => Some(Value::str(ctx.channel.as_str())),
            VarId::GeoCountry => opt_str(&ctx.geo.country),
            VarId::GeoRegion => opt_str(&ctx.geo.region),
            VarId::GeoCity => opt_str(&ctx.geo.city),
            VarId::GeoContinent => opt_str(&ctx.geo.continent),
            VarId::GeoPostal => opt_str(&ctx.geo.postal),
            VarId::GeoTimezone => opt_str(&ctx.geo.timezone),
            VarId::GeoLat => ctx.geo.lat.map(Value::Number),
            VarId::GeoLon => ctx.geo.lon.map(Value::Number),
            VarId::GeoColo => opt_str(&ctx.geo.colo),
            VarId::DeviceType => ctx.device.kind.map(|k| Value::str(k.as_str())),
            VarId::DeviceOs => opt_str(&ctx.device.os),
            VarId::DeviceBrowser => opt_str(&ctx.device.browser),
            VarId::AppVersion => opt_str(&ctx.app.version),
            VarId::TimeHour => Some(Value::Number(f64::from(self.time.get().hour))),
            VarId::TimeWeekday => Some(Value::str(self.time.get().weekday)),
            VarId::TimeDate => Some(Value::str(&self.time.get().date)),
            VarId::TimeDaypart => Some(Value::str(self.time.get().daypart)),
            VarId::PagePath => opt_str(&ctx.page.path),
            VarId::PageHost => opt_str(&ctx.page.host),
            VarId::PageLang => opt_str(&ctx.page.lang),
            VarId::PageQuery(key) => ctx.page.query.get(key).map(|v| Value::str(v)),
            VarId::UtmSource => opt_str(&ctx.utm.source),
            VarId::UtmMedium => opt_str(&ctx.utm.medium),
            VarId::UtmCampaign => opt_str(&ctx.utm.campaign),
            VarId::UtmTerm => opt_str(&ctx.utm.term),
            VarId::UtmContent => opt_str(&ctx.utm.content),
            VarId::ReferrerHost => opt_str(&ctx.referrer.host),
            VarId::ReferrerKind => ctx.referrer.kind.map(|k| Value::str(k.as_str())),
            VarId::ConsentPersonalization => ctx.consent.personalization.map(Value::Bool),
        }
    }

    fn get_path(&self, path: &str) -> Option<Value<'_>> {
        let var = self.bundle.resolve_var(path)?;
        // The resolved id borrows nothing, so the value can be read and returned.
        match self.get(&var)? {
            Value::Str(s) => Some(Value::Str(std::borrow::Cow::Owned(s.into_owned()))),
            Value::Array(items) => Some(Value::Array(
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::Str(s) => Value::Str(std::borrow::Cow::Owned(s.into_owned())),
                        other => other,
                    })
                    .collect(),
            )),
            other => Some(other),
        }
    }

    fn list_contains(&self, var: &VarId, item: &str) -> bool {
        match var {
            VarId::Segments => self.prior.segments.iter().any(|s| s == item),
            _ => false,
        }
    }
}

/// The index of the visitor's stage in this bundle: unknown or absent is the first.
fn stage_index(bundle: &Bundle, state: &State) -> u16 {
    state
        .stage
        .and_then(|id| bundle.stages.iter().position(|s| s.id == id))
        .and_then(|i| u16::try_from(i).ok())
        .unwrap_or(0)
}

fn period_text(period: Period) -> String {
    match period {
        Period::Lifetime => "lifetime".into(),
        Period::Seconds(s) if s % crate::time::WEEK == 0 => format!("{}w", s / crate::time::WEEK),
        Period::Seconds(s) if s % DAY == 0 => format!("{}d", s / DAY),
        Period::Seconds(s) if s % crate::time::HOUR == 0 => format!("{}h", s / crate::time::HOUR),
        Period::Seconds(s) => format!("{}m", s / MINUTE),
    }
}

/// Impressions of a record within a cap's window.
fn in_window(record: Option<&Impression>, per: Period, now: UnixSeconds) -> u32 {
    match (record, per) {
        (None, _) => 0,
        (Some(r), Period::Lifetime) => r.total,
        (Some(r), Period::Seconds(p)) if now - r.window_start < p => r.count,
        (Some(_), Period::Seconds(_)) => 0,
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

/// What a candidate scan ended with.
enum Pick<'b> {
    Won {
        candidate: &'b Candidate,
        content: u16,
        variant: Option<&'b str>,
    },
    Holdout(&'b Candidate),
    Nothing,
}

/// Decides for one request. `prior` is the verified token state, `None` for a new
/// visitor, who gets the id `new_visitor` (the adapter's entropy).
pub fn decide<'b>(
    bundle: &'b Bundle,
    prior: Option<&State>,
    new_visitor: [u8; 16],
    ctx: &Context,
    now: UnixSeconds,
    slots: &[SlotRef],
    options: Options,
) -> Decision<'b> {
    let mut decider = Decider::new(bundle, prior, new_visitor, ctx, now, options);
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
    prior: std::borrow::Cow<'a, State>,
    next: State,
    time: LazyTime<'a>,
    now: UnixSeconds,
    explain: bool,
    opted_out: bool,
    stage: u16,
    stage_since: UnixSeconds,
    visits: u32,
    intents: Scores,
    journey_trace: Vec<String>,
    visitor_hex: [u8; 32],
    /// The content of each decision, in order; defaults too.
    placed: SmallVec<[u16; 8]>,
    /// Stable ids of contents and campaigns shown earlier in this request: caps count
    /// them too, so two slots cannot overrun a cap together.
    shown_now: SmallVec<[u32; 16]>,
    campaign_hits: SmallVec<[u16; 4]>,
    decisions: Vec<SlotDecision<'b>>,
    slot_traces: Vec<SlotTrace<'b>>,
}

impl<'a, 'b> Decider<'a, 'b> {
    /// Starts a request: counts the visit, decays and raises intents, applies
    /// transitions. `prior` and `new_visitor` as in [`decide`].
    pub fn new(
        bundle: &'b Bundle,
        prior: Option<&'a State>,
        new_visitor: [u8; 16],
        ctx: &'a Context,
        now: UnixSeconds,
        options: Options,
    ) -> Self {
        let prior = match prior {
            Some(state) => std::borrow::Cow::Borrowed(state),
            None => std::borrow::Cow::Owned(State {
                visitor: new_visitor,
                stage_since: now,
                ..State::default()
            }),
        };
        let mut next = prior.as_ref().clone();
        let time = LazyTime::new(now, ctx.geo.timezone.as_deref());
        let mut journey_trace = Vec::new();
        let explain = options.explain;
        // A backend may mint a token for a visitor the edge has not seen yet: it has a
        // stage but no visit.
        let is_new = prior.last_visit == 0;

        // This request's signal wins over the one remembered in the token, both ways.
        let opted_out = match ctx.consent.personalization {
            Some(given) => !given,
            None => prior.consent.opted_out(),
        };
        if ctx.consent.personalization == Some(true) {
            next.consent =
                crate::token::Consent(next.consent.0 & !crate::token::Consent::OPTED_OUT);
        }
        let mut stage = stage_index(bundle, &prior);
        let mut stage_since = if prior.stage_since == 0 {
            now
        } else {
            prior.stage_since
        };
        let mut visits = prior.visits;
        let mut intents = Scores::new();

        if !opted_out {
            // 1a. Visits.
            if is_new || now - prior.last_visit >= VISIT_IDLE {
                visits = visits.saturating_add(1);
                if explain {
                    journey_trace.push(format!("visit {visits} starts"));
                }
            }
            // 1b. Intents: decay everything, then add what this request signals.
            let decayed: Scores = bundle
                .topics
                .iter()
                .map(|topic| {
                    prior
                        .intents
                        .iter()
                        .find(|i| i.topic == topic.id)
                        .map_or(0.0, |i| {
                            let elapsed = (now - i.updated_at).max(0) as f64;
                            f64::from(i.score) * 0.5f64.powf(elapsed / topic.half_life_secs)
                        })
                })
                .collect();
            let facts = Facts::new(
                bundle,
                ctx,
                &prior,
                (stage, stage_since, visits),
                &decayed,
                &time,
                now,
            );
            intents = bundle
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
                    // Not `clamp`: it panics on a NaN or inverted bound, and a bundle is
                    // input.
                    let score = (base + added).min(topic.cap).max(0.0);
                    if explain && added != 0.0 {
                        journey_trace.push(format!(
                            "intent {}: {base:.2} + {added} = {score:.2}",
                            topic.name
                        ));
                    }
                    score
                })
                .collect();
            // 1c. Transitions, in bundle order, until none applies.
            for _ in 0..bundle.stages.len() {
                let facts = Facts::new(
                    bundle,
                    ctx,
                    &prior,
                    (stage, stage_since, visits),
                    &intents,
                    &time,
                    now,
                );
                let applies = bundle.transitions.iter().enumerate().find(|(_, t)| {
                    let direction_ok = if t.back { t.to != stage } else { t.to > stage };
                    direction_ok
                        && t.from & (1u64 << (stage % 64)) != 0
                        && t.when.as_ref().is_none_or(|w| w.matches(&facts))
                });
                let Some((i, t)) = applies else { break };
                if explain {
                    let name = |s: u16| {
                        bundle
                            .stages
                            .get(usize::from(s))
                            .map_or("?", |s| s.name.as_str())
                    };
                    journey_trace.push(format!(
                        "stage {} -> {} (transition {i})",
                        name(stage),
                        name(t.to)
                    ));
                }
                stage = t.to;
                stage_since = now;
            }
        }
        let mut visitor_hex = [0u8; 32];
        bucket::visitor_hex(&prior.visitor, &mut visitor_hex);
        Decider {
            bundle,
            ctx,
            prior,
            next,
            time,
            now,
            explain,
            opted_out,
            stage,
            stage_since,
            visits,
            intents,
            journey_trace,
            visitor_hex,
            placed: SmallVec::new(),
            shown_now: SmallVec::new(),
            campaign_hits: SmallVec::new(),
            decisions: Vec::with_capacity(4),
            slot_traces: Vec::new(),
        }
    }

    /// The decisions so far, in the order their slots were asked.
    pub fn decisions(&self) -> &[SlotDecision<'b>] {
        &self.decisions
    }

    /// Decides one slot and returns its decision; `None` for a slot index the bundle
    /// does not have. Each call is a slot of this request: asking for a slot twice
    /// shows it twice.
    pub fn slot(&mut self, SlotRef(slot_index): SlotRef) -> Option<&SlotDecision<'b>> {
        let bundle = self.bundle;
        let slot = bundle.slots.get(usize::from(slot_index))?;
        let facts = Facts::new(
            bundle,
            self.ctx,
            &self.prior,
            (self.stage, self.stage_since, self.visits),
            &self.intents,
            &self.time,
            self.now,
        );
        let mut trace = Vec::new();
        let pick = if self.opted_out {
            Pick::Nothing
        } else {
            pick(
                bundle,
                &facts,
                &mut self.next,
                &self.visitor_hex,
                &slot.candidates,
                (&self.placed, &self.shown_now),
                self.explain.then_some(&mut trace),
            )
        };
        let default_name = bundle
            .contents
            .get(usize::from(slot.default))
            .map_or("", |c| c.name.as_str());
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
        self.placed.push(content);
        let content_ref = bundle.contents.get(usize::from(content));
        if let Some(c) = content_ref {
            self.shown_now.push(c.id);
        }
        let content_name = content_ref.map_or(default_name, |c| c.name.as_str());
        if self.explain {
            self.slot_traces.push(SlotTrace {
                slot: &slot.name,
                candidates: trace,
                result: format!("{content_name} ({})", reason_text(reason)),
            });
        }
        let (html, json, text) =
            content_ref.map_or((None, None, None), |c| render(c, self.ctx.channel, &facts));
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
            .get(usize::from(self.stage))
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
            opted_out,
            stage,
            stage_since,
            visits,
            intents,
            journey_trace,
            placed,
            campaign_hits,
            decisions,
            slot_traces,
            ctx,
            ..
        } = self;
        if opted_out {
            return Decision {
                stage: stage_name,
                decisions,
                trace: explain.then(|| Trace {
                    journey: vec!["no personalization consent: defaults, nothing written".into()],
                    slots: slot_traces,
                }),
                state: prior.into_owned(),
                persist: false,
                exposures: Vec::new(),
            };
        }

        // 3. Impressions, sequence progress, journey state.
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
        next.stage = bundle.stages.get(usize::from(stage)).map(|s| s.id);
        next.stage_since = stage_since;
        next.visits = visits;
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

        let exposures = if ctx.device.kind == Some(DeviceType::Bot) || ctx.prefetch {
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
        }
    }
}

fn serialize_visitor<S: serde::Serializer>(
    visitor: &[u8; 16],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 32];
    serializer.serialize_str(bucket::visitor_hex(visitor, &mut buf))
}

fn reason_text(reason: Reason) -> &'static str {
    match reason {
        Reason::Candidate => "candidate",
        Reason::Experiment => "experiment",
        Reason::Holdout => "holdout",
        Reason::Default => "default",
        Reason::Consent => "consent",
    }
}

/// Scans a slot's candidates (already in priority order) for the first eligible one.
fn pick<'b>(
    bundle: &'b Bundle,
    facts: &Facts<'_>,
    next: &mut State,
    visitor_hex: &[u8; 32],
    candidates: &'b [Candidate],
    page: (&[u16], &[u32]),
    mut trace: Option<&mut Vec<CandidateTrace<'b>>>,
) -> Pick<'b> {
    let name_of = |c: u16| {
        bundle
            .contents
            .get(usize::from(c))
            .map_or("?", |c| c.name.as_str())
    };
    let mut result = Pick::Nothing;
    for candidate in candidates {
        if !matches!(result, Pick::Nothing) {
            if let Some(trace) = trace.as_deref_mut() {
                trace.push(CandidateTrace {
                    candidate: &candidate.name,
                    priority: candidate.priority,
                    kept: false,
                    why: "not evaluated: an earlier candidate won".into(),
                });
                continue;
            }
            break;
        }
        let verdict = judge(bundle, facts, next, visitor_hex, candidate, page);
        let kept = verdict.is_ok();
        let why = trace.is_some().then(|| match &verdict {
            Ok(Pick::Won {
                content, variant, ..
            }) => match variant {
                Some(v) => format!("eligible: experiment variant {v}"),
                None => format!("eligible: shows {}", name_of(*content)),
            },
            Ok(Pick::Holdout(_)) => {
                "visitor is in the experiment holdout: the default is shown".to_owned()
            }
            Ok(Pick::Nothing) => "no content".to_owned(),
            Err(skip) => skip.describe(bundle, facts.stage),
        });
        if let Ok(pick) = verdict {
            result = pick;
        }
        if let (Some(trace), Some(why)) = (trace.as_deref_mut(), why) {
            trace.push(CandidateTrace {
                candidate: &candidate.name,
                priority: candidate.priority,
                kept,
                why,
            });
        }
    }
    result
}

/// Why a candidate was skipped: cheap to make, described only when a trace is asked for.
enum Skip {
    Stage,
    When,
    OutOfFuel,
    Placed(u16),
    After(u16),
    Cap { shown: u32, max: u32, per: Period },
    CampaignCap { campaign: u16, shown: u32 },
}

impl Skip {
    fn describe(&self, bundle: &Bundle, stage: u16) -> String {
        let name_of = |c: u16| {
            bundle
                .contents
                .get(usize::from(c))
                .map_or("?", |c| c.name.as_str())
        };
        match self {
            Skip::Stage => {
                let stage = bundle
                    .stages
                    .get(usize::from(stage))
                    .map_or("?", |s| s.name.as_str());
                format!("stage {stage} is not one of its stages")
            }
            Skip::When => "when is false".into(),
            Skip::OutOfFuel => "when ran out of its work budget: counted as false".into(),
            Skip::Placed(c) => format!("{} is already placed in another slot", name_of(*c)),
            Skip::After(c) => format!("after: {} not seen yet", name_of(*c)),
            Skip::Cap { shown, max, per } => {
                format!("cap reached: {shown} of {max} per {}", period_text(*per))
            }
            Skip::CampaignCap { campaign, shown } => {
                match bundle.campaigns.get(usize::from(*campaign)) {
                    Some(c) => format!(
                        "campaign {} cap reached: {shown} of {} per {}",
                        c.name,
                        c.cap.max,
                        period_text(c.cap.per)
                    ),
                    None => "campaign cap reached".into(),
                }
            }
        }
    }
}

/// Whether one candidate is eligible; `Err` says why not.
fn judge<'b>(
    bundle: &'b Bundle,
    facts: &Facts<'_>,
    next: &mut State,
    visitor_hex: &[u8; 32],
    candidate: &'b Candidate,
    (placed, shown_now): (&[u16], &[u32]),
) -> Result<Pick<'b>, Skip> {
    let this_request =
        |id: u32| u32::try_from(shown_now.iter().filter(|&&s| s == id).count()).unwrap_or(u32::MAX);
    if candidate.stages & (1u64 << (facts.stage % 64)) == 0 {
        return Err(Skip::Stage);
    }
    if let Some(when) = &candidate.when {
        match when.verdict(facts) {
            Verdict::True => {}
            Verdict::False => return Err(Skip::When),
            Verdict::OutOfFuel => return Err(Skip::OutOfFuel),
        }
    }
    let (content, variant) = match &candidate.offer {
        Offer::Content(c) => (*c, None),
        Offer::Experiment(experiment) => {
            let sticky = next
                .experiments
                .iter()
                .find(|a| a.experiment == experiment.id)
                .map(|a| a.variant)
                .filter(|&v| {
                    v == Assignment::HOLDOUT || usize::from(v) < experiment.variants.len()
                });
            let assigned = match sticky {
                Some(v) => v,
                None => {
                    // The hex digits of the visitor id: ASCII, so always a `str`.
                    let visitor = std::str::from_utf8(visitor_hex).unwrap_or("");
                    let n = bucket::hash(&candidate.name, visitor, 2).unwrap_or(0.0);
                    let v = bucket::choose_variation(n, &experiment.ranges)
                        .and_then(|i| u8::try_from(i).ok())
                        .unwrap_or(Assignment::HOLDOUT);
                    next.experiments.retain(|a| a.experiment != experiment.id);
                    next.experiments.push(Assignment {
                        experiment: experiment.id,
                        variant: v,
                    });
                    v
                }
            };
            if assigned == Assignment::HOLDOUT {
                return Ok(Pick::Holdout(candidate));
            }
            let content = experiment
                .variants
                .get(usize::from(assigned))
                .copied()
                .unwrap_or(0);
            let name = bundle
                .contents
                .get(usize::from(content))
                .map_or("?", |c| c.name.as_str());
            (content, Some(name))
        }
    };
    if placed.contains(&content) {
        return Err(Skip::Placed(content));
    }
    for &prerequisite in &candidate.after {
        let seen = bundle
            .contents
            .get(usize::from(prerequisite))
            .is_some_and(|c| facts.seen_before(c));
        if !seen {
            return Err(Skip::After(prerequisite));
        }
    }
    if let Some(cap) = candidate.cap {
        let content_id = bundle.contents.get(usize::from(content)).map(|c| c.id);
        let record = content_id.and_then(|id| facts.impression(id));
        let shown = in_window(record, cap.per, facts.now)
            .saturating_add(content_id.map_or(0, this_request));
        if shown >= cap.max {
            return Err(Skip::Cap {
                shown,
                max: cap.max,
                per: cap.per,
            });
        }
    }
    if let Some(k) = candidate.campaign {
        if let Some(campaign) = bundle.campaigns.get(usize::from(k)) {
            let shown = in_window(facts.impression(campaign.id), campaign.cap.per, facts.now)
                .saturating_add(this_request(campaign.id));
            if shown >= campaign.cap.max {
                return Err(Skip::CampaignCap { campaign: k, shown });
            }
        }
    }
    Ok(Pick::Won {
        candidate,
        content,
        variant,
    })
}

/// The renditions a channel gets: web the HTML, apps the JSON, both the text; when the
/// channel's own rendition is missing, whatever the content has.
fn render<'b>(
    content: &'b Content,
    channel: Channel,
    facts: &Facts<'_>,
) -> (
    Option<Cow<'b, str>>,
    Option<serde_json::Value>,
    Option<Cow<'b, str>>,
) {
    let own_missing = match channel {
        Channel::Web => content.html.is_none(),
        Channel::App => content.json.is_none(),
    };
    let want_html = channel == Channel::Web || own_missing;
    let want_json = channel == Channel::App || own_missing;
    (
        content
            .html
            .as_ref()
            .filter(|_| want_html)
            .map(|t| render_template(t, facts, true)),
        content
            .json
            .as_ref()
            .filter(|_| want_json)
            .map(|t| render_json(t, facts)),
        content
            .text
            .as_ref()
            .map(|t| render_template(t, facts, false)),
    )
}

/// The longest value one placeholder renders: longer values (a crafted query string)
/// are cut at a character boundary.
pub const MAX_PLACEHOLDER_BYTES: usize = 1024;

/// The longest text a template renders to: past it, placeholders render empty, so a
/// request cannot blow a rendition up (a template of many `{{page.query.q}}`).
pub const MAX_RENDERED_BYTES: usize = 128 * 1024;

/// A template's text for this request: the bundle's own text when it has no
/// placeholder (most contents), a new string otherwise.
fn render_template<'t>(template: &'t Template, facts: &Facts<'_>, html: bool) -> Cow<'t, str> {
    match template.pieces.as_slice() {
        [] => return Cow::Borrowed(""),
        [Piece::Text(text)] => return Cow::Borrowed(text),
        _ => {}
    }
    let estimate: usize = template
        .pieces
        .iter()
        .map(|p| match p {
            Piece::Text(text) => text.len(),
            Piece::Var(_) | Piece::Url { .. } => 16,
        })
        .sum();
    let mut out = String::with_capacity(estimate);
    for piece in &template.pieces {
        let (var, url) = match piece {
            Piece::Text(text) => {
                out.push_str(text);
                continue;
            }
            Piece::Var(var) => (var, None),
            Piece::Url { var, at_start } => (var, Some(*at_start)),
        };
        let value = facts.get(var).unwrap_or(Value::Null);
        if matches!(value, Value::Null) {
            continue;
        }
        let text = value.to_js_string();
        let text = truncate(&text, MAX_PLACEHOLDER_BYTES);
        if out.len().saturating_add(text.len()) > MAX_RENDERED_BYTES {
            continue;
        }
        if url.is_some_and(|at_start| !keeps_url_safe(text, at_start)) {
            continue;
        }
        if html {
            escape_html(text, &mut out);
        } else {
            out.push_str(text);
        }
    }
    Cow::Owned(out)
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("")
}

/// Whether a value placed where it can set a URL's scheme keeps the URL relative, or,
/// when it starts the URL, http(s). Browsers ignore tabs and newlines in URLs and
/// leading spaces and control characters, so the check does too.
fn keeps_url_safe(value: &str, at_start: bool) -> bool {
    let value = if at_start {
        value.trim_start_matches(|c: char| c <= ' ')
    } else {
        value
    };
    let mut head = value
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .take_while(|c| !matches!(c, '/' | '?' | '#'));
    if !head.any(|c| c == ':') {
        return true;
    }
    let scheme: String = value
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .take(6)
        .collect::<String>()
        .to_ascii_lowercase();
    at_start && (scheme.starts_with("http:") || scheme.starts_with("https:"))
}

fn render_json(template: &JsonTemplate, facts: &Facts<'_>) -> serde_json::Value {
    match template {
        JsonTemplate::Null => serde_json::Value::Null,
        JsonTemplate::Bool(b) => serde_json::Value::Bool(*b),
        JsonTemplate::Number(n) => Value::Number(*n).to_json(),
        JsonTemplate::String(t) => {
            serde_json::Value::String(render_template(t, facts, false).into_owned())
        }
        JsonTemplate::Array(items) => {
            serde_json::Value::Array(items.iter().map(|i| render_json(i, facts)).collect())
        }
        JsonTemplate::Object(fields) => serde_json::Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), render_json(v, facts)))
                .collect(),
        ),
    }
}

/// A content's rendition for previews (the coverage report): the HTML if it has one,
/// else the JSON, else the text, with placeholders filled from `ctx`.
pub(crate) fn render_preview(
    bundle: &Bundle,
    content: &Content,
    ctx: &Context,
    now: UnixSeconds,
) -> String {
    let prior = State::default();
    let time = LazyTime::new(now, ctx.geo.timezone.as_deref());
    let facts = Facts {
        bundle,
        ctx,
        prior: &prior,
        stage: 0,
        stage_since: now,
        visits: 1,
        intents: &[],
        time: &time,
        now,
    };
    match (&content.html, &content.json, &content.text) {
        (Some(html), _, _) => render_template(html, &facts, true).into_owned(),
        (None, Some(json), _) => {
            let mut out = String::from("<pre>");
            escape_html(
                &serde_json::to_string_pretty(&render_json(json, &facts)).unwrap_or_default(),
                &mut out,
            );
            out.push_str("</pre>");
            out
        }
        (None, None, Some(text)) => {
            let mut out = String::from("<p>");
            escape_html(&render_template(text, &facts, false), &mut out);
            out.push_str("</p>");
            out
        }
        (None, None, None) => String::new(),
    }
}

/// Escapes the five characters that matter in HTML text and attribute values.
pub fn escape_html(text: &str, out: &mut String) {
    // Most values (a city, a name) need no escaping: copy them whole.
    if !text
        .bytes()
        .any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\''))
    {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}
