//! The grid of audiences a report decides: every stage × device type × channel, crossed
//! with the values the bundle's rules compare variables to (countries, UTM tags, events,
//! intent thresholds, paths matching its globs…), read from the compiled rules with
//! [`micromoment::rules::Rule::examples`] and trimmed to a budget of contexts.
//!
//! Each audience becomes what the edge would hold for such a visitor: a [`Context`]
//! built field by field, a [`State`] in the audience's stage, and a clock. This module
//! decides nothing and never reads the clock: `now` is a parameter.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Value as Json};

use micromoment::bundle::{Bundle, Candidate, Condition, TriggerOn};
use micromoment::context::{
    Channel, Context, DeviceType, FieldMut, Keyword, VarId, FIXED_VARIABLES,
};
use micromoment::time::{UnixSeconds, DAY, HOUR};
use micromoment::token::{Consent, Impression, Intent, State};

/// The most contexts decided for the whole page; larger grids drop example values.
pub const MAX_CONTEXTS: usize = 40_000;

/// The most contexts decided per slot for reachability.
pub(super) const MAX_SLOT_CONTEXTS: usize = 60_000;

/// The visitor id of every audience. Experiments never depend on it: the report pins
/// each audience's assignments itself.
const VISITOR: [u8; 16] = [0x5e; 16];

/// The matrix columns: each device type on the web, then in the app.
pub(super) fn columns() -> Vec<(DeviceType, Channel)> {
    DeviceType::ALL
        .iter()
        .flat_map(|d| [(*d, Channel::Web), (*d, Channel::App)])
        .collect()
}

/// One axis of the grid besides stage, device and channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dimension {
    /// The variable, as rules name it.
    pub name: String,
    /// The values tried; the first is always "unknown" (`null`).
    pub values: Vec<Json>,
    /// Example values the rules mention that the grid had to leave out.
    pub dropped: usize,
    #[serde(skip)]
    axis: Axis,
}

/// What a dimension sets: a field of the context, the clock, or the visitor's state.
#[derive(Debug, Clone, PartialEq)]
enum Axis {
    Context(VarId),
    Hour,
    Intent(u16),
    Returning,
    Segment,
    History,
    DaysInStage,
    /// A dimension another bundle reads and this one cannot (an intent it lacks).
    Absent,
}

impl Axis {
    /// The order of dimensions in the grid: context variables by name, then the clock,
    /// intents in topic order, and the visitor's history.
    fn order(&self, name: &str) -> Order {
        match self {
            Axis::Context(_) => (0, 0, name.to_owned()),
            Axis::Hour => (1, 0, String::new()),
            Axis::Intent(topic) => (2, *topic, String::new()),
            Axis::Returning => (3, 0, String::new()),
            Axis::Segment => (4, 0, String::new()),
            Axis::History => (5, 0, String::new()),
            Axis::DaysInStage => (6, 0, String::new()),
            Axis::Absent => (7, 0, name.to_owned()),
        }
    }
}

/// The axis a rule variable varies, and its name; `None` for the grid's own axes
/// (stage, device, channel) and for consent, which the grid always grants.
fn axis_of(bundle: &Bundle, var: &VarId) -> Option<(Axis, String)> {
    match var {
        VarId::Stage
        | VarId::StageIndex
        | VarId::DeviceType
        | VarId::Channel
        | VarId::ConsentPersonalization => None,
        VarId::TimeHour | VarId::TimeDaypart | VarId::TimeWeekday | VarId::TimeDate => {
            Some((Axis::Hour, "time.hour".into()))
        }
        VarId::Intent(i) => bundle
            .topics
            .get(usize::from(*i))
            .map(|t| (Axis::Intent(*i), format!("intent.{}", t.name))),
        VarId::Visits | VarId::Returning => Some((Axis::Returning, "returning".into())),
        VarId::Segments => Some((Axis::Segment, "segments".into())),
        VarId::Seen(_) => Some((Axis::History, "seen".into())),
        VarId::DaysInStage => Some((Axis::DaysInStage, "days_in_stage".into())),
        VarId::PageQuery(k) => Some((Axis::Context(var.clone()), format!("page.query.{k}"))),
        other => FIXED_VARIABLES
            .iter()
            .find(|(_, v)| v == other)
            .map(|(name, _)| (Axis::Context(other.clone()), (*name).to_owned())),
    }
}

/// The axis a dimension's name is in `bundle`: the inverse of [`axis_of`], so that
/// two bundles' grids can be read with the same audiences.
fn axis_named(bundle: &Bundle, name: &str) -> Axis {
    match name {
        "time.hour" => return Axis::Hour,
        "returning" => return Axis::Returning,
        "segments" => return Axis::Segment,
        "seen" => return Axis::History,
        "days_in_stage" => return Axis::DaysInStage,
        _ => {}
    }
    if let Some(topic) = name.strip_prefix("intent.") {
        return bundle
            .topics
            .iter()
            .position(|t| t.name == topic)
            .and_then(|i| u16::try_from(i).ok())
            .map_or(Axis::Absent, Axis::Intent);
    }
    if let Some(key) = name.strip_prefix("page.query.") {
        return Axis::Context(VarId::PageQuery(key.to_owned()));
    }
    FIXED_VARIABLES
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(Axis::Absent, |(_, var)| Axis::Context(var.clone()))
}

/// The dimensions of two grids together, by name: each with the values of both
/// (unknown first), the first grid's order, then those only the second has.
pub(super) fn merge(mut first: Vec<Dimension>, second: &[Dimension]) -> Vec<Dimension> {
    for d in second {
        match first.iter_mut().find(|f| f.name == d.name) {
            Some(f) => {
                for v in &d.values {
                    if !f.values.contains(v) {
                        f.values.push(v.clone());
                    }
                }
            }
            None => first.push(d.clone()),
        }
    }
    first
}

/// The hour that shows a daypart.
fn daypart_hour(value: &Json) -> Option<Json> {
    Some(json!(match value.as_str()? {
        "night" => 3,
        "morning" => 9,
        "afternoon" => 15,
        "evening" => 20,
        _ => return None,
    }))
}

/// Where an axis comes in the grid (see [`Axis::order`]).
type Order = (u8, u16, String);

/// An axis the rules read: its name, and the values they mention as JSON text, so
/// that each is tried once.
struct Found {
    axis: Axis,
    name: String,
    values: BTreeSet<String>,
}

/// The dimensions of a set of rules, each with "unknown" first and the values the
/// rules mention; `history` adds a visitor who saw every content (for sequences).
pub(super) fn dimensions<'r>(
    bundle: &Bundle,
    rules: impl Iterator<Item = &'r Condition>,
    history: bool,
    events: &[&str],
) -> Vec<Dimension> {
    let mut found: BTreeMap<Order, Found> = BTreeMap::new();
    let mut note = |axis: Axis, name: String, values: Vec<Json>, daypart: bool| {
        let entry = found.entry(axis.order(&name)).or_insert_with(|| Found {
            axis,
            name,
            values: BTreeSet::new(),
        });
        for v in values {
            let v = match &entry.axis {
                Axis::Hour if daypart => daypart_hour(&v).unwrap_or(Json::Null),
                Axis::Returning | Axis::History => json!(true),
                _ => v,
            };
            if !v.is_null() {
                entry.values.insert(v.to_string());
            }
        }
    };
    for rule in rules {
        for (var, values) in rule.examples() {
            if let Some((axis, name)) = axis_of(bundle, var) {
                note(axis, name, values, *var == VarId::TimeDaypart);
            }
        }
    }
    // Events that no rule compares but a trigger listens to.
    if let Some((axis, name)) = axis_of(bundle, &VarId::Event) {
        if !events.is_empty() {
            note(axis, name, events.iter().map(|e| json!(e)).collect(), false);
        }
    }
    // Sequences need a visitor who saw their prerequisites.
    if history {
        note(Axis::History, "seen".into(), vec![json!(true)], false);
    }
    found
        .into_values()
        .map(|Found { axis, name, values }| {
            let mut values: Vec<Json> = values
                .iter()
                .filter_map(|v| serde_json::from_str(v).ok())
                .collect();
            if values.is_empty() {
                // Read but never compared (`{"!!": {"var": "geo.city"}}`): known vs unknown.
                values.push(if axis == Axis::Returning {
                    json!(true)
                } else {
                    json!("example")
                });
            }
            values.insert(0, Json::Null);
            Dimension {
                name,
                values,
                dropped: 0,
                axis,
            }
        })
        .collect()
}

/// Trims example values until the grid of `base` cells per combination fits `limit`.
pub(super) fn fit(dimensions: &mut Vec<Dimension>, base: usize, limit: usize) {
    let size = |dims: &[Dimension]| {
        dims.iter()
            .fold(base, |n, d| n.saturating_mul(d.values.len()))
    };
    while size(dimensions) > limit {
        let Some(largest) = dimensions
            .iter_mut()
            .filter(|d| d.values.len() > 2)
            .max_by_key(|d| d.values.len())
        else {
            // Every dimension is down to unknown + one value: drop whole dimensions,
            // down to none (one audience per stage and column, however small `limit`).
            if dimensions.pop().is_none() {
                return;
            }
            continue;
        };
        largest.values.pop();
        largest.dropped += 1;
    }
}

/// The rules that move the journey: transitions and intent signals.
fn journey_rules(bundle: &Bundle) -> impl Iterator<Item = &Condition> {
    bundle
        .transitions
        .iter()
        .filter_map(|t| t.when.as_ref())
        .chain(
            bundle
                .topics
                .iter()
                .flat_map(|t| t.signals.iter().map(|s| &s.when)),
        )
}

/// One audience of a grid: a stage, a column, and one value of each dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience {
    /// The stage, by index in journey order.
    pub stage: usize,
    /// The device type.
    pub device: DeviceType,
    /// The channel.
    pub channel: Channel,
    /// Per dimension, the index of its value (0 is "unknown").
    pub picks: Vec<usize>,
}

/// The audiences a report decides, for one bundle at one time.
#[derive(Debug, Clone)]
pub struct Grid<'b> {
    bundle: &'b Bundle,
    now: UnixSeconds,
    dimensions: Vec<Dimension>,
}

impl<'b> Grid<'b> {
    /// The grid of every rule of the bundle (transitions, intent signals, candidates),
    /// trimmed to at most `limit` contexts (and never below one per stage and column).
    pub fn new(bundle: &'b Bundle, now: UnixSeconds, limit: usize) -> Grid<'b> {
        let rules = journey_rules(bundle).chain(
            bundle
                .slots
                .iter()
                .flat_map(|s| s.candidates.iter().filter_map(|c| c.when.as_ref())),
        );
        let history = bundle.contents.iter().any(|c| c.prerequisite);
        Grid::of_rules(bundle, now, rules, history, &[], limit)
    }

    /// The grid of the moments triggers fire at: the transitions, intent signals and
    /// trigger rules, and the events the triggers listen to.
    pub(super) fn of_triggers(bundle: &'b Bundle, now: UnixSeconds, limit: usize) -> Grid<'b> {
        let rules =
            journey_rules(bundle).chain(bundle.triggers.iter().filter_map(|t| match &t.on {
                TriggerOn::When(rule) => Some(rule),
                _ => None,
            }));
        let events: Vec<&str> = bundle
            .triggers
            .iter()
            .filter_map(|t| match &t.on {
                TriggerOn::Event(e) => Some(e.as_str()),
                _ => None,
            })
            .collect();
        Grid::of_rules(bundle, now, rules, false, &events, limit)
    }

    /// The grid of one slot's candidates alone, so each is judged on its own conditions.
    pub(super) fn of_slot(
        bundle: &'b Bundle,
        now: UnixSeconds,
        candidates: &'b [Candidate],
        limit: usize,
    ) -> Grid<'b> {
        let rules = candidates.iter().filter_map(|c| c.when.as_ref());
        let history = candidates.iter().any(|c| !c.after.is_empty());
        Grid::of_rules(bundle, now, rules, history, &[], limit)
    }

    fn of_rules<'r>(
        bundle: &'b Bundle,
        now: UnixSeconds,
        rules: impl Iterator<Item = &'r Condition>,
        history: bool,
        events: &[&str],
        limit: usize,
    ) -> Grid<'b> {
        let mut dimensions = dimensions(bundle, rules, history, events);
        fit(
            &mut dimensions,
            bundle.stages.len() * columns().len(),
            limit,
        );
        Grid {
            bundle,
            now,
            dimensions,
        }
    }

    /// The grid of `bundle` over dimensions another grid made (see [`merge`]): each
    /// dimension read as this bundle reads its name.
    pub(super) fn named(
        bundle: &'b Bundle,
        now: UnixSeconds,
        dimensions: &[Dimension],
    ) -> Grid<'b> {
        let dimensions: Vec<Dimension> = dimensions
            .iter()
            .map(|d| Dimension {
                axis: axis_named(bundle, &d.name),
                ..d.clone()
            })
            .collect();
        Grid {
            bundle,
            now,
            dimensions,
        }
    }

    /// The same audiences in another bundle, whose stages may differ: the stage of the
    /// same name (none when it has no such stage), the same column and values.
    pub(super) fn translate(&self, audience: &Audience, into: &Grid<'_>) -> Audience {
        let name = self
            .bundle
            .stages
            .get(audience.stage)
            .map(|s| s.name.as_str());
        let stage = into
            .bundle
            .stages
            .iter()
            .position(|s| Some(s.name.as_str()) == name)
            .unwrap_or(usize::MAX);
        Audience {
            stage,
            ..audience.clone()
        }
    }

    /// The stage of an audience, by name.
    pub(super) fn stage_name(&self, audience: &Audience) -> &str {
        self.bundle
            .stages
            .get(audience.stage)
            .map_or("", |s| s.name.as_str())
    }

    /// What an audience picks besides stage and column: `(name, value)` of every known value.
    pub(super) fn picked(&self, audience: &Audience) -> Vec<(String, Json)> {
        self.dimensions
            .iter()
            .zip(&audience.picks)
            .filter_map(|(d, &pick)| {
                let v = d.values.get(pick).filter(|v| !v.is_null())?;
                Some((d.name.clone(), v.clone()))
            })
            .collect()
    }

    /// The dimensions besides stage, device and channel.
    pub fn dimensions(&self) -> &[Dimension] {
        &self.dimensions
    }

    /// Gives the dimensions to the report.
    pub(super) fn into_dimensions(self) -> Vec<Dimension> {
        self.dimensions
    }

    /// How many audiences the grid has.
    pub fn size(&self) -> usize {
        self.combinations() * self.bundle.stages.len() * columns().len()
    }

    /// Combinations of dimension values per stage and column.
    pub(super) fn combinations(&self) -> usize {
        self.dimensions.iter().map(|d| d.values.len()).product()
    }

    /// Every audience: stage slowest, then column, then the dimensions' values (the
    /// first dimension slowest), the order of the preview's cells.
    pub fn audiences(&self) -> impl Iterator<Item = Audience> + '_ {
        let sizes: Vec<usize> = self.dimensions.iter().map(|d| d.values.len()).collect();
        let total: usize = sizes.iter().product();
        (0..self.bundle.stages.len()).flat_map(move |stage| {
            let sizes = sizes.clone();
            columns().into_iter().flat_map(move |(device, channel)| {
                let sizes = sizes.clone();
                (0..total).map(move |mut n| {
                    let mut picks = vec![0; sizes.len()];
                    for (pick, size) in picks.iter_mut().zip(&sizes).rev() {
                        *pick = n % size;
                        n /= size;
                    }
                    Audience {
                        stage,
                        device,
                        channel,
                        picks,
                    }
                })
            })
        })
    }

    /// The audience with no other signal: every dimension unknown.
    pub fn baseline(&self, stage: usize, device: DeviceType, channel: Channel) -> Audience {
        Audience {
            stage,
            device,
            channel,
            picks: vec![0; self.dimensions.len()],
        }
    }

    /// The audience the preview renders placeholders with: each dimension's first
    /// example, on a desktop on the web.
    pub(super) fn sample(&self) -> Audience {
        Audience {
            picks: self
                .dimensions
                .iter()
                .map(|d| usize::from(d.values.len() > 1))
                .collect(),
            ..self.baseline(0, DeviceType::Desktop, Channel::Web)
        }
    }

    /// The values an audience picks, with their dimension's axis.
    fn values<'a>(&'a self, audience: &'a Audience) -> impl Iterator<Item = (&'a Axis, &'a Json)> {
        self.dimensions
            .iter()
            .zip(&audience.picks)
            .filter_map(|(d, &pick)| Some((&d.axis, d.values.get(pick).filter(|v| !v.is_null())?)))
    }

    /// The request context of an audience.
    pub fn context(&self, audience: &Audience) -> Context {
        let mut context = Context {
            channel: audience.channel,
            ..Context::default()
        };
        context.device.kind = Some(audience.device);
        context.page.path = Some("/".into());
        for (axis, value) in self.values(audience) {
            if let Axis::Context(var) = axis {
                set(&mut context, var, value);
            }
        }
        context
    }

    /// The state of an audience's visitor: in its stage for a day, on their first
    /// visit, with the intents, segments and history its dimensions name.
    pub fn state(&self, audience: &Audience) -> State {
        let (bundle, now) = (self.bundle, self.now);
        let mut state = State {
            visitor: VISITOR,
            stage: bundle.stages.get(audience.stage).map(|s| s.id),
            stage_since: now - DAY,
            visits: 1,
            last_visit: now - 60,
            issued_at: now - 60,
            expires_at: now + 30 * DAY,
            consent: Consent::default(),
            ..State::default()
        };
        for (axis, value) in self.values(audience) {
            match axis {
                Axis::Intent(topic) => {
                    if let Some(t) = bundle.topics.get(usize::from(*topic)) {
                        state.intents.push(Intent {
                            topic: t.id,
                            score: value.as_f64().unwrap_or(0.0) as f32,
                            updated_at: now,
                        });
                    }
                }
                Axis::Returning => state.visits = 3,
                Axis::Segment => state
                    .segments
                    .push(value.as_str().unwrap_or("example").to_owned()),
                Axis::History => {
                    // A visitor who has seen every content once, long ago: sequences
                    // open, `seen` rules hold, windowed caps are fresh.
                    for content in &bundle.contents {
                        if content.prerequisite {
                            state.sequence.push(content.id);
                        }
                        state.impressions.push(Impression {
                            id: content.id,
                            count: 0,
                            window_start: now - 400 * DAY,
                            last_shown: now - 400 * DAY,
                            total: 1,
                        });
                    }
                }
                Axis::DaysInStage => {
                    state.stage_since =
                        now - (value.as_f64().unwrap_or(1.0).ceil() as i64 + 1) * DAY;
                }
                Axis::Context(_) | Axis::Hour | Axis::Absent => {}
            }
        }
        state
    }

    /// The clock of an audience: the hour its time dimension names (noon when none),
    /// on the day of `now`.
    pub fn clock(&self, audience: &Audience) -> UnixSeconds {
        let midnight = self.now - self.now.rem_euclid(DAY);
        let hour = self
            .values(audience)
            .find(|(axis, _)| **axis == Axis::Hour)
            .and_then(|(_, value)| value.as_i64())
            .unwrap_or(12);
        midnight + hour.clamp(0, 23) * HOUR
    }
}

/// Sets one context variable to an example value. Text fields take numbers and
/// booleans as their digits; a value that cannot be the field's type leaves it unknown.
/// Which field a variable is, and its type, is the table of variables' (`context.rs`);
/// a variable that is no field (the state's, the clock's, the profile's) sets nothing.
fn set(context: &mut Context, var: &VarId, value: &Json) {
    let text = match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        Json::Null | Json::Array(_) | Json::Object(_) => None,
    };
    if let VarId::PageQuery(key) = var {
        if let Some(text) = text {
            context.page.query.insert(key.clone(), text);
        }
        return;
    }
    match context.field_mut(var) {
        Some(FieldMut::Text(field)) => *field = text,
        Some(FieldMut::Number(field)) => *field = value.as_f64(),
        Some(FieldMut::Flag(field)) => *field = value.as_bool(),
        Some(FieldMut::Keyword(field)) => {
            // A word the field does not know leaves it unknown.
            let _ = field.set(value.as_str());
        }
        Some(FieldMut::Channel(field)) => {
            if let Some(channel) = value.as_str().and_then(Channel::named) {
                *field = channel;
            }
        }
        Some(FieldMut::Switch(field)) => *field = value.as_bool().unwrap_or(false),
        Some(FieldMut::Query(_)) | None => {}
    }
}
