//! The coverage report: what each audience sees, computed by running the real engine.
//!
//! The grid of contexts comes from the bundle itself: every stage × device type ×
//! channel, crossed with the values its rules compare variables to (countries, UTM tags,
//! events, intent thresholds, paths matching its globs…), read from the compiled rules
//! with [`crate::rules::Rule::examples`]. Every cell is decided with [`crate::decide`],
//! so the report shows what the edge would do, not what the JSON seems to say. From
//! the grid come the stage × device matrix per slot, candidates no context selects (with
//! the trace's reason), slots that only show their default, contents never shown, and
//! a preview table for the HTML page. Pure: the caller passes `now`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{json, Value as Json};

use crate::bundle::{offered, Bundle, Offer, Period};
use crate::context::{Channel, Context, DeviceType, VarId};
use crate::decide::{Reason, Verdict};
use crate::session::{self, Entropy, Mode, Slots, Visitor};
use crate::time::{UnixSeconds, DAY, HOUR};
use crate::token::{Consent, Impression, Intent, State};
use crate::{Budget, SlotRef};

/// The most contexts decided for one report; larger grids drop example values.
pub const MAX_CONTEXTS: usize = 40_000;

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
    var: VarKey,
}

/// What a dimension sets in the context or the visitor's state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum VarKey {
    Context(String),
    Hour,
    Intent(u16),
    Returning,
    Segment,
    History,
    DaysInStage,
}

/// One cell of a slot's matrix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// The content shown.
    pub content: String,
    /// The winning candidate, if any.
    pub candidate: Option<String>,
    /// Why.
    pub reason: Reason,
}

/// A slot's stage × (device, channel) matrix, for the baseline context.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotMatrix {
    /// The slot.
    pub slot: String,
    /// Rows, one per stage: cells in `columns` order.
    pub rows: Vec<(String, Vec<Cell>)>,
}

/// A candidate no context of the grid selects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unreachable {
    /// The slot.
    pub slot: String,
    /// The candidate.
    pub candidate: String,
    /// The trace's reason, in the contexts of its stages.
    pub why: String,
}

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

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
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
    pub counts: crate::bundle::Counts,
    /// Stages, in journey order.
    pub stages: Vec<String>,
    /// Matrix columns: `device/channel`.
    pub columns: Vec<String>,
    /// The grid's other dimensions.
    pub dimensions: Vec<Dimension>,
    /// How many contexts were decided.
    pub contexts: usize,
    /// Per slot, the baseline matrix.
    pub matrix: Vec<SlotMatrix>,
    /// Candidates no context selects.
    pub unreachable: Vec<Unreachable>,
    /// Slots that only ever show their default.
    pub default_only: Vec<String>,
    /// Contents no context shows.
    pub never_shown: Vec<String>,
    /// Experiments with weights and holdouts.
    pub experiments: Vec<ExperimentFact>,
    /// Caps, per candidate or campaign: `max per period`.
    pub caps: Vec<(String, String)>,
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
    /// Per context (in grid order), per slot: the content index.
    pub cells: Vec<u16>,
}

fn period_text(per: Period) -> String {
    match per {
        Period::Lifetime => "lifetime".into(),
        Period::Seconds(s) if s % DAY == 0 => format!("{}d", s / DAY),
        Period::Seconds(s) if s % HOUR == 0 => format!("{}h", s / HOUR),
        Period::Seconds(s) => format!("{}m", s / 60),
    }
}

fn var_name(bundle: &Bundle, var: &VarId) -> Option<(VarKey, String)> {
    let context = |name: &str| Some((VarKey::Context(name.to_owned()), name.to_owned()));
    match var {
        VarId::Stage
        | VarId::StageIndex
        | VarId::DeviceType
        | VarId::Channel
        | VarId::ConsentPersonalization => None,
        VarId::TimeHour | VarId::TimeDaypart | VarId::TimeWeekday | VarId::TimeDate => {
            Some((VarKey::Hour, "time.hour".into()))
        }
        VarId::Intent(i) => bundle
            .topics
            .get(usize::from(*i))
            .map(|t| (VarKey::Intent(*i), format!("intent.{}", t.name))),
        VarId::Visits | VarId::Returning => Some((VarKey::Returning, "returning".into())),
        VarId::Segments => Some((VarKey::Segment, "segments".into())),
        VarId::Seen(_) => Some((VarKey::History, "seen".into())),
        VarId::DaysInStage => Some((VarKey::DaysInStage, "days_in_stage".into())),
        VarId::PageQuery(k) => context(&format!("page.query.{k}")),
        other => crate::context::FIXED_VARIABLES
            .iter()
            .find(|(_, v)| v == other)
            .and_then(|(name, _)| context(name)),
    }
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

fn dimensions<'r>(
    bundle: &Bundle,
    rules: impl Iterator<Item = &'r crate::bundle::Condition>,
    history: bool,
) -> Vec<Dimension> {
    let mut found: BTreeMap<VarKey, (String, BTreeSet<String>)> = BTreeMap::new();
    let mut note = |var: &VarId, values: Vec<Json>| {
        let Some((key, name)) = var_name(bundle, var) else {
            return;
        };
        let entry = found
            .entry(key.clone())
            .or_insert_with(|| (name, BTreeSet::new()));
        for v in values {
            let v = match (&key, var) {
                (VarKey::Hour, VarId::TimeDaypart) => daypart_hour(&v).unwrap_or(Json::Null),
                (VarKey::Returning | VarKey::History, _) => json!(true),
                _ => v,
            };
            if !v.is_null() {
                entry.1.insert(v.to_string());
            }
        }
    };
    for rule in rules {
        for (var, values) in rule.examples() {
            note(var, values);
        }
    }
    // Sequences need a visitor who saw their prerequisites.
    if history {
        found
            .entry(VarKey::History)
            .or_insert_with(|| ("seen".into(), BTreeSet::new()))
            .1
            .insert("true".into());
    }
    found
        .into_iter()
        .map(|(var, (name, values))| {
            let mut values: Vec<Json> = values
                .iter()
                .filter_map(|v| serde_json::from_str(v).ok())
                .collect();
            if values.is_empty() {
                // Read but never compared (`{"!!": {"var": "geo.city"}}`): known vs unknown.
                values.push(json!(if var == VarKey::Returning {
                    json!(true)
                } else {
                    json!("example")
                }));
            }
            values.insert(0, Json::Null);
            Dimension {
                name,
                values,
                dropped: 0,
                var,
            }
        })
        .collect()
}

/// The most contexts decided per slot for reachability.
const MAX_SLOT_CONTEXTS: usize = 60_000;

/// Trims example values until the grid fits `limit`.
fn fit(dimensions: &mut Vec<Dimension>, base: usize, limit: usize) {
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
            // Every dimension is down to unknown + one value: drop whole dimensions.
            dimensions.pop();
            continue;
        };
        largest.values.pop();
        largest.dropped += 1;
    }
}

const VISITOR: [u8; 16] = [0x5e; 16];

fn build_context(
    channel: Channel,
    device: DeviceType,
    dims: &[Dimension],
    picks: &[usize],
) -> Context {
    let mut ctx = json!({"channel": channel.as_str(), "device": {"type": device.as_str()}, "page": {"path": "/"}});
    for (dim, &pick) in dims.iter().zip(picks) {
        let (VarKey::Context(name), Some(value)) =
            (&dim.var, dim.values.get(pick).filter(|v| !v.is_null()))
        else {
            continue;
        };
        let mut target = &mut ctx;
        let parts: Vec<&str> = if let Some(key) = name.strip_prefix("page.query.") {
            vec!["page", "query", key]
        } else {
            name.split('.').collect()
        };
        for (i, part) in parts.iter().enumerate() {
            if !target.is_object() {
                *target = json!({});
            }
            let Some(map) = target.as_object_mut() else {
                break;
            };
            if i + 1 == parts.len() {
                let text_field = !matches!(name.as_str(), "geo.lat" | "geo.lon");
                let v = match value {
                    Json::Number(n) if text_field && name != "event" => json!(n.to_string()),
                    other => other.clone(),
                };
                map.insert((*part).to_owned(), v);
                break;
            }
            target = map.entry((*part).to_owned()).or_insert_with(|| json!({}));
        }
    }
    serde_json::from_value(ctx).unwrap_or_default()
}

fn build_state(
    bundle: &Bundle,
    stage: usize,
    now: UnixSeconds,
    dims: &[Dimension],
    picks: &[usize],
) -> State {
    let mut state = State {
        visitor: VISITOR,
        stage: bundle.stages.get(stage).map(|s| s.id),
        stage_since: now - DAY,
        visits: 1,
        last_visit: now - 60,
        issued_at: now - 60,
        expires_at: now + 30 * DAY,
        consent: Consent::default(),
        ..State::default()
    };
    for (dim, &pick) in dims.iter().zip(picks) {
        let Some(value) = dim.values.get(pick).filter(|v| !v.is_null()) else {
            continue;
        };
        match &dim.var {
            VarKey::Intent(topic) => {
                if let Some(t) = bundle.topics.get(usize::from(*topic)) {
                    state.intents.push(Intent {
                        topic: t.id,
                        score: value.as_f64().unwrap_or(0.0) as f32,
                        updated_at: now,
                    });
                }
            }
            VarKey::Returning => state.visits = 3,
            VarKey::Segment => state
                .segments
                .push(value.as_str().unwrap_or("example").to_owned()),
            VarKey::History => {
                // A visitor who has seen every content once, long ago: sequences open,
                // `seen` rules hold, windowed caps are fresh.
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
            VarKey::DaysInStage => {
                state.stage_since = now - (value.as_f64().unwrap_or(1.0).ceil() as i64 + 1) * DAY
            }
            VarKey::Context(_) | VarKey::Hour => {}
        }
    }
    state
}

fn clock(now: UnixSeconds, dims: &[Dimension], picks: &[usize]) -> UnixSeconds {
    let midnight = now - now.rem_euclid(DAY);
    let hour = dims
        .iter()
        .zip(picks)
        .find(|(d, _)| d.var == VarKey::Hour)
        .and_then(|(d, &p)| d.values.get(p))
        .and_then(Json::as_i64)
        .unwrap_or(12);
    midnight + hour.clamp(0, 23) * HOUR
}

/// One cell of the grid, decided through the session as every face decides: the
/// grid's visitor in its named state. (Slots given as references are never unknown.)
fn grid_decision<'b>(
    bundle: &'b Bundle,
    state: &State,
    ctx: &Context,
    now: UnixSeconds,
    slots: &[SlotRef],
    mode: Mode,
) -> Option<crate::decide::Decision<'b>> {
    let request = session::Request {
        slots: Slots::Refs(slots),
        mode,
        ..session::Request::new(Visitor::State(state), ctx, now, Entropy::Fixed(VISITOR))
    };
    session::decide(bundle, None, &request)
        .ok()
        .map(|outcome| outcome.decision)
}

/// Every combination of picks, first dimension slowest.
fn combinations(sizes: &[usize]) -> impl Iterator<Item = Vec<usize>> + '_ {
    let total: usize = sizes.iter().product();
    (0..total).map(move |mut n| {
        let mut picks = vec![0; sizes.len()];
        for (pick, size) in picks.iter_mut().zip(sizes).rev() {
            *pick = n % size;
            n /= size;
        }
        picks
    })
}

/// Builds the report of a bundle.
#[allow(clippy::too_many_lines)]
pub fn build(bundle: &Bundle, hash: &str, bytes: usize, now: UnixSeconds) -> Report {
    let columns: Vec<(DeviceType, Channel)> = DeviceType::ALL
        .iter()
        .flat_map(|d| [(*d, Channel::Web), (*d, Channel::App)])
        .collect();
    let base = bundle.stages.len() * columns.len();
    let all_rules = || {
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
            .chain(
                bundle
                    .slots
                    .iter()
                    .flat_map(|s| s.candidates.iter().filter_map(|c| c.when.as_ref())),
            )
    };
    let mut dims = dimensions(
        bundle,
        all_rules(),
        bundle.contents.iter().any(|c| c.prerequisite),
    );
    fit(&mut dims, base, MAX_CONTEXTS);
    let slots: Vec<SlotRef> = bundle.all_slots();
    let sizes: Vec<usize> = dims.iter().map(|d| d.values.len()).collect();
    let mut chosen: BTreeSet<(usize, String)> = BTreeSet::new();
    let mut shown: BTreeSet<String> = BTreeSet::new();
    let mut non_default: BTreeSet<usize> = BTreeSet::new();
    let mut cells = Vec::new();
    let content_index = |name: &str| {
        bundle
            .contents
            .iter()
            .position(|c| c.name == name)
            .unwrap_or(0)
    };
    let mut contexts = 0;
    let mut note = |s: usize, d: &crate::decide::SlotDecision<'_>| {
        shown.insert(d.content.to_owned());
        if let Some(candidate) = d.candidate {
            chosen.insert((s, candidate.to_owned()));
        }
        if matches!(d.reason, Reason::Candidate | Reason::Experiment) {
            non_default.insert(s);
        }
    };
    // The preview grid: every slot of a page decided together.
    for stage in 0..bundle.stages.len() {
        for &(device, channel) in &columns {
            for picks in combinations(&sizes) {
                let ctx = build_context(channel, device, &dims, &picks);
                let state = build_state(bundle, stage, now, &dims, &picks);
                let Some(decision) = grid_decision(
                    bundle,
                    &state,
                    &ctx,
                    clock(now, &dims, &picks),
                    &slots,
                    Mode::Serve,
                ) else {
                    continue;
                };
                contexts += 1;
                for (s, d) in decision.decisions.iter().enumerate() {
                    cells.push(u16::try_from(content_index(d.content)).unwrap_or(0));
                    note(s, d);
                }
            }
        }
    }
    // Reachability: each slot alone (stages are an axis already), over every value its
    // candidates' rules mention, so a candidate is judged on its own conditions.
    for (s, slot) in bundle.slots.iter().enumerate() {
        let own = slot.candidates.iter().filter_map(|c| c.when.as_ref());
        let history = slot.candidates.iter().any(|c| !c.after.is_empty());
        let mut slot_dims = dimensions(bundle, own, history);
        fit(&mut slot_dims, base, MAX_SLOT_CONTEXTS);
        let slot_sizes: Vec<usize> = slot_dims.iter().map(|d| d.values.len()).collect();
        let only = [SlotRef(u16::try_from(s).unwrap_or(0))];
        for stage in 0..bundle.stages.len() {
            for &(device, channel) in &columns {
                for picks in combinations(&slot_sizes) {
                    let ctx = build_context(channel, device, &slot_dims, &picks);
                    let state = build_state(bundle, stage, now, &slot_dims, &picks);
                    let Some(decision) = grid_decision(
                        bundle,
                        &state,
                        &ctx,
                        clock(now, &slot_dims, &picks),
                        &only,
                        Mode::Serve,
                    ) else {
                        continue;
                    };
                    contexts += 1;
                    if let Some(d) = decision.decisions.first() {
                        note(s, d);
                    }
                }
            }
        }
    }
    // An experiment that wins shows any of its variants to some visitor.
    for (s, slot) in bundle.slots.iter().enumerate() {
        for c in &slot.candidates {
            if matches!(c.offer, Offer::Experiment(_)) && chosen.contains(&(s, c.name.clone())) {
                for v in offered(c) {
                    if let Some(content) = bundle.contents.get(usize::from(v)) {
                        shown.insert(content.name.clone());
                    }
                }
            }
        }
    }
    // The baseline matrix, with traces for the reasons of unreachable candidates.
    let baseline = vec![0; dims.len()];
    let mut matrix: Vec<SlotMatrix> = bundle
        .slots
        .iter()
        .map(|s| SlotMatrix {
            slot: s.name.clone(),
            rows: Vec::new(),
        })
        .collect();
    let mut reasons: BTreeMap<(usize, String), BTreeMap<String, usize>> = BTreeMap::new();
    for (stage, stage_ref) in bundle.stages.iter().enumerate() {
        let mut row_cells: Vec<Vec<Cell>> = vec![Vec::new(); bundle.slots.len()];
        for &(device, channel) in &columns {
            let ctx = build_context(channel, device, &dims, &baseline);
            let state = build_state(bundle, stage, now, &dims, &baseline);
            let Some(decision) = grid_decision(
                bundle,
                &state,
                &ctx,
                clock(now, &dims, &baseline),
                &slots,
                Mode::Explain,
            ) else {
                continue;
            };
            for (s, d) in decision.decisions.iter().enumerate() {
                if let Some(row) = row_cells.get_mut(s) {
                    row.push(Cell {
                        content: d.content.to_owned(),
                        candidate: d.candidate.map(str::to_owned),
                        reason: d.reason,
                    });
                }
            }
            for (s, trace) in decision
                .trace
                .iter()
                .flat_map(|t| t.slots.iter())
                .enumerate()
            {
                for c in &trace.candidates {
                    if !c.kept && c.why != Verdict::NotEvaluated {
                        *reasons
                            .entry((s, c.candidate.to_owned()))
                            .or_default()
                            .entry(c.why.to_string())
                            .or_default() += 1;
                    }
                }
            }
        }
        for (m, cells) in matrix.iter_mut().zip(row_cells) {
            m.rows.push((stage_ref.name.clone(), cells));
        }
    }
    let mut unreachable = Vec::new();
    for (s, slot) in bundle.slots.iter().enumerate() {
        for c in &slot.candidates {
            if !chosen.contains(&(s, c.name.clone())) {
                let why = reasons
                    .get(&(s, c.name.clone()))
                    .and_then(|r| r.iter().max_by_key(|(_, n)| **n).map(|(w, _)| w.clone()))
                    .unwrap_or_else(|| "a higher-priority candidate always wins first".into());
                unreachable.push(Unreachable {
                    slot: slot.name.clone(),
                    candidate: c.name.clone(),
                    why,
                });
            }
        }
    }
    let experiments = bundle
        .slots
        .iter()
        .flat_map(|s| s.candidates.iter().map(move |c| (s, c)))
        .filter_map(|(s, c)| match &c.offer {
            Offer::Experiment(e) => Some(ExperimentFact {
                slot: s.name.clone(),
                experiment: c.name.clone(),
                variants: e
                    .variants
                    .iter()
                    .zip(&e.ranges)
                    .map(|(v, (start, end))| {
                        let name = bundle
                            .contents
                            .get(usize::from(*v))
                            .map_or("?", |c| c.name.as_str());
                        let weight = if e.holdout < 1.0 {
                            (end - start) / (1.0 - e.holdout)
                        } else {
                            0.0
                        };
                        (name.to_owned(), (weight * 1000.0).round() / 1000.0)
                    })
                    .collect(),
                holdout: e.holdout,
            }),
            Offer::Content(_) => None,
        })
        .collect();
    let mut caps: Vec<(String, String)> = bundle
        .slots
        .iter()
        .flat_map(|s| &s.candidates)
        .filter_map(|c| {
            c.cap.map(|cap| {
                (
                    c.name.clone(),
                    format!("{} per {}", cap.max, period_text(cap.per)),
                )
            })
        })
        .collect();
    caps.extend(bundle.campaigns.iter().map(|c| {
        (
            format!("campaign {}", c.name),
            format!("{} per {}", c.cap.max, period_text(c.cap.per)),
        )
    }));
    // Renditions for the preview, placeholders filled with the grid's first examples.
    let sample_picks: Vec<usize> = dims
        .iter()
        .map(|d| usize::from(d.values.len() > 1))
        .collect();
    let sample_ctx = build_context(Channel::Web, DeviceType::Desktop, &dims, &sample_picks);
    let renditions = bundle
        .contents
        .iter()
        .map(|c| crate::decide::render_preview(bundle, c, &sample_ctx, now))
        .collect();
    Report {
        id: bundle.id().to_owned(),
        version: bundle.version(),
        hash: hash.to_owned(),
        bytes,
        budget_bytes: Budget::default().max_bundle_bytes,
        counts: bundle.counts(),
        stages: bundle.stage_names().map(str::to_owned).collect(),
        columns: columns
            .iter()
            .map(|(d, c)| format!("{}/{}", d.as_str(), c.as_str()))
            .collect(),
        dimensions: dims,
        contexts,
        matrix,
        unreachable,
        default_only: bundle
            .slots
            .iter()
            .enumerate()
            .filter(|(s, _)| !non_default.contains(s))
            .map(|(_, s)| s.name.clone())
            .collect(),
        never_shown: bundle
            .contents
            .iter()
            .filter(|c| !shown.contains(&c.name))
            .map(|c| c.name.clone())
            .collect(),
        experiments,
        caps,
        preview: Preview {
            contents: bundle.content_names().map(str::to_owned).collect(),
            renditions,
            cells,
        },
    }
}

impl Report {
    /// Whether `--strict` fails: unreachable candidates, or slots with nothing but
    /// their default.
    pub fn has_findings(&self) -> bool {
        !self.unreachable.is_empty() || !self.default_only.is_empty()
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    crate::decide::escape_html(text, &mut out);
    out
}

/// A stable, readable colour per content.
fn colour(name: &str) -> String {
    let hue = crate::ids::fnv1a32(name.as_bytes()) % 360;
    format!("hsl({hue} 70% 86%)")
}

fn value_label(value: &Json) -> String {
    match value {
        Json::Null => "unknown".into(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7fb}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:22px}header p{margin:0;opacity:.8}
main{padding:20px 28px;display:grid;gap:20px}section{background:#fff;border-radius:10px;padding:16px 20px;box-shadow:0 1px 3px #0001}
h2{font-size:17px;margin:0 0 10px}h3{font-size:15px;margin:14px 0 6px}.facts{display:flex;flex-wrap:wrap;gap:10px}
.fact{background:#f0f2f8;border-radius:8px;padding:8px 12px}.fact b{display:block;font-size:18px}
.bar{height:8px;background:#e3e6ef;border-radius:4px;overflow:hidden;width:220px}.bar i{display:block;height:100%;background:#3a7bd5}
table{border-collapse:collapse}th,td{padding:6px 8px;border:1px solid #e3e6ef;text-align:left;vertical-align:top}
th{background:#f0f2f8;font-weight:600}td.cell{font-size:12px;min-width:86px;cursor:default}td.cell small{display:block;opacity:.65}
.ok{color:#1b7f3b}.warn{color:#a15c00}.bad{color:#b3261e}ul{margin:6px 0 0;padding-left:20px}
.legend span{display:inline-block;margin:2px 6px 2px 0;padding:2px 8px;border-radius:10px;font-size:12px}
#preview form{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:12px}#preview label{display:flex;flex-direction:column;font-size:12px;gap:2px}
select{padding:4px 6px}.slot{margin:10px 0;border:1px dashed #b8bfd3;border-radius:8px;padding:8px}
.slot h4{margin:0 0 6px;font-size:13px}.slot iframe{width:100%;border:0;height:150px;background:#fff}
.scroll{overflow-x:auto}
"#;

const SCRIPT: &str = r#"
const data = JSON.parse(document.getElementById('mm-data').textContent);
// Previews load nothing from the network: the report works offline and leaks nothing.
const PREVIEW_HEAD = "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
  + "<style>body{font:14px system-ui,sans-serif;margin:8px}</style>";
const raw = atob(data.cells);
const wide = data.contents.length > 255;
function cellAt(i){ return wide ? raw.charCodeAt(2*i) | (raw.charCodeAt(2*i+1) << 8) : raw.charCodeAt(i); }
const form = document.querySelector('#preview form');
function pick(name){ return Number(form.elements[name].value); }
function render(){
  const sizes = data.dims.map(d => d.values.length);
  const total = sizes.reduce((a, b) => a * b, 1);
  let combo = 0;
  data.dims.forEach((d, i) => { combo = combo * sizes[i] + pick('dim' + i); });
  const column = pick('device') * 2 + pick('channel');
  const base = ((pick('stage') * data.columns + column) * total + combo) * data.slots.length;
  data.slots.forEach((slot, s) => {
    const content = cellAt(base + s);
    const box = document.getElementById('slot-' + s);
    box.querySelector('h4').textContent = slot + ' \u2192 ' + data.contents[content];
    box.dataset.content = data.contents[content];
    box.querySelector('iframe').srcdoc = PREVIEW_HEAD + data.renditions[content];
  });
}
form.addEventListener('change', render);
render();
"#;

/// The self-contained HTML page of a report: no network, no external assets.
#[allow(clippy::too_many_lines)]
pub fn html(report: &Report) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let used = report.bytes as f64 * 100.0 / report.budget_bytes as f64;
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width'>\
<title>micromoment report: {id} v{version}</title><style>{STYLE}</style></head><body>\
<header><h1>{id} <small>v{version}</small></h1><p>Coverage report: {contexts} contexts decided by the engine · hash {hash}</p></header><main>",
        id = escape(&report.id),
        version = report.version,
        contexts = report.contexts,
        hash = escape(&report.hash),
    );
    // Facts.
    let c = &report.counts;
    let _ = write!(out, "<section id=facts><h2>Bundle</h2><div class=facts>");
    for (label, value) in [
        ("stages", c.stages),
        ("slots", c.slots),
        ("contents", c.contents),
        ("candidates", c.candidates),
        ("experiments", c.experiments),
        ("campaigns", c.campaigns),
        ("transitions", c.transitions),
        ("intents", c.intents),
    ] {
        let _ = write!(out, "<div class=fact><b>{value}</b>{label}</div>");
    }
    let _ = write!(
        out,
        "<div class=fact><b>{} KiB</b>of {} KiB budget ({used:.1} %)<div class=bar><i style='width:{:.1}%'></i></div></div></div>",
        report.bytes.div_ceil(1024),
        report.budget_bytes / 1024,
        used.min(100.0)
    );
    if !report.experiments.is_empty() {
        out.push_str("<h3>Experiments</h3><table><tr><th>slot</th><th>experiment</th><th>variants (weight)</th><th>holdout</th></tr>");
        for e in &report.experiments {
            let variants: Vec<String> = e
                .variants
                .iter()
                .map(|(v, w)| format!("{} ({:.0} %)", escape(v), w * 100.0))
                .collect();
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1} %</td></tr>",
                escape(&e.slot),
                escape(&e.experiment),
                variants.join(", "),
                e.holdout * 100.0
            );
        }
        out.push_str("</table>");
    }
    if !report.caps.is_empty() {
        out.push_str("<h3>Caps</h3><ul>");
        for (who, cap) in &report.caps {
            let _ = write!(out, "<li>{}: {}</li>", escape(who), escape(cap));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
    // Findings.
    out.push_str("<section id=findings><h2>Findings</h2>");
    if !report.has_findings() && report.never_shown.is_empty() {
        out.push_str("<p class=ok>Every candidate wins somewhere, every slot shows more than its default, every content is shown.</p>");
    }
    if !report.unreachable.is_empty() {
        let _ = write!(
            out,
            "<h3 class=bad>{} candidates no context selects</h3><ul id=unreachable>",
            report.unreachable.len()
        );
        for u in &report.unreachable {
            let _ = write!(
                out,
                "<li data-candidate='{c}'><b>{c}</b> in {s}: {w}</li>",
                c = escape(&u.candidate),
                s = escape(&u.slot),
                w = escape(&u.why)
            );
        }
        out.push_str("</ul>");
    }
    if !report.default_only.is_empty() {
        let _ = write!(
            out,
            "<h3 class=warn>Slots that only show their default</h3><ul id=default-only>"
        );
        for s in &report.default_only {
            let _ = write!(out, "<li>{}</li>", escape(s));
        }
        out.push_str("</ul>");
    }
    if !report.never_shown.is_empty() {
        let _ = write!(
            out,
            "<h3 class=warn>Contents never shown</h3><ul id=never-shown>"
        );
        for s in &report.never_shown {
            let _ = write!(out, "<li>{}</li>", escape(s));
        }
        out.push_str("</ul>");
    }
    let dims: Vec<String> = report
        .dimensions
        .iter()
        .map(|d| {
            let values: Vec<String> = d.values.iter().skip(1).map(value_label).collect();
            let dropped = if d.dropped > 0 {
                format!(" (+{} left out)", d.dropped)
            } else {
                String::new()
            };
            format!(
                "<b>{}</b>: {}{dropped}",
                escape(&d.name),
                escape(&values.join(", "))
            )
        })
        .collect();
    let _ = write!(
        out,
        "<h3>Grid</h3><p>Every stage × device × channel, crossed with the values the rules mention: {}.</p></section>",
        if dims.is_empty() { "none".into() } else { dims.join("; ") }
    );
    // Matrices.
    out.push_str("<section id=matrix><h2>Who sees what</h2><p>Per slot, for a visitor with no other signal: the content each stage sees on each device and channel. Hover a cell for the candidate and the reason.</p>");
    let mut legend: BTreeSet<&str> = BTreeSet::new();
    for m in &report.matrix {
        let _ = write!(
            out,
            "<h3>{}</h3><div class=scroll><table class=matrix data-slot='{}'><tr><th>stage</th>",
            escape(&m.slot),
            escape(&m.slot)
        );
        for col in &report.columns {
            let _ = write!(out, "<th>{}</th>", escape(col));
        }
        out.push_str("</tr>");
        for (stage, cells) in &m.rows {
            let _ = write!(out, "<tr><th>{}</th>", escape(stage));
            for (cell, col) in cells.iter().zip(&report.columns) {
                legend.insert(&cell.content);
                let reason = serde_json::to_value(cell.reason)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let title = match &cell.candidate {
                    Some(c) => format!("candidate {c} ({reason})"),
                    None => format!("slot default ({reason})"),
                };
                let _ = write!(
                    out,
                    "<td class=cell data-stage='{st}' data-column='{col}' style='background:{bg}' title='{title}'>{content}<small>{reason}</small></td>",
                    st = escape(stage),
                    col = escape(col),
                    bg = colour(&cell.content),
                    title = escape(&title),
                    content = escape(&cell.content),
                );
            }
            out.push_str("</tr>");
        }
        out.push_str("</table></div>");
    }
    out.push_str("<p class=legend>");
    for content in legend {
        let _ = write!(
            out,
            "<span style='background:{}'>{}</span>",
            colour(content),
            escape(content)
        );
    }
    out.push_str("</p></section>");
    // Preview.
    out.push_str("<section id=preview><h2>Preview</h2><p>Pick an audience: every slot shows what the page would get (placeholders filled with sample values).</p><form>");
    let select = |out: &mut String, name: &str, label: &str, options: &[String]| {
        let _ = write!(out, "<label>{}<select name={name}>", escape(label));
        for (i, o) in options.iter().enumerate() {
            let _ = write!(out, "<option value={i}>{}</option>", escape(o));
        }
        out.push_str("</select></label>");
    };
    select(&mut out, "stage", "stage", &report.stages);
    let devices: Vec<String> = DeviceType::ALL
        .iter()
        .map(|d| d.as_str().to_owned())
        .collect();
    select(&mut out, "device", "device", &devices);
    select(
        &mut out,
        "channel",
        "channel",
        &["web".to_owned(), "app".to_owned()],
    );
    for (i, d) in report.dimensions.iter().enumerate() {
        let values: Vec<String> = d.values.iter().map(value_label).collect();
        select(&mut out, &format!("dim{i}"), &d.name, &values);
    }
    out.push_str("</form>");
    for (s, m) in report.matrix.iter().enumerate() {
        let _ = write!(
            out,
            "<div class=slot id=slot-{s}><h4>{}</h4><iframe sandbox title='{}'></iframe></div>",
            escape(&m.slot),
            escape(&m.slot)
        );
    }
    out.push_str("</section>");
    // Data for the preview.
    let wide = report.preview.contents.len() > 255;
    let bytes: Vec<u8> = if wide {
        report
            .preview
            .cells
            .iter()
            .flat_map(|c| c.to_le_bytes())
            .collect()
    } else {
        report
            .preview
            .cells
            .iter()
            .map(|&c| u8::try_from(c).unwrap_or(0))
            .collect()
    };
    let data = json!({
        "slots": report.matrix.iter().map(|m| m.slot.clone()).collect::<Vec<_>>(),
        "contents": report.preview.contents,
        "renditions": report.preview.renditions,
        "columns": report.columns.len(),
        "dims": report.dimensions.iter().map(|d| json!({"name": d.name, "values": d.values})).collect::<Vec<_>>(),
        "cells": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes),
    });
    // `</` cannot end the script early once escaped.
    let data = data.to_string().replace("</", "<\\/");
    let _ = write!(out, "</main><script type=application/json id=mm-data>{data}</script><script>{SCRIPT}</script></body></html>");
    out
}
