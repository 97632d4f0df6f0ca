//! Visitor state by names: the JSON that `simulate`, the npm package and the scenario
//! fixtures show and read.
//!
//! Tokens store stable ids; a person reads names. With the bundle at hand, ids become
//! the stage, topic, content and experiment names they hash from; an id the bundle does
//! not know (an item a later bundle removed) prints as `#<id>` and reads back the same,
//! so nothing is lost in a round trip.

use serde_json::{json, Map, Value as Json};

use crate::bundle::{Bundle, Offer};
use crate::ids::{stable_id, IdKind};
use crate::time::UnixSeconds;
use crate::token::{Assignment, Consent, Impression, Intent, State};

/// RFC 3339 text of a Unix time.
pub fn rfc3339(t: UnixSeconds) -> String {
    jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |ts| ts.to_string())
}

/// Parses RFC 3339 text into Unix seconds.
pub fn parse_rfc3339(text: &str) -> Result<UnixSeconds, String> {
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|e| format!("\"{text}\" is not an RFC 3339 time: {e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses 32 hex digits into a visitor id.
pub fn parse_visitor(text: &str) -> Result<[u8; 16], String> {
    let bad = || format!("visitor id \"{text}\" is not 32 hex digits");
    if text.len() != 32 || !text.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = text.get(2 * i..2 * i + 2).ok_or_else(bad)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn name_or_id<'b>(names: impl Iterator<Item = (u32, &'b str)>, id: u32) -> String {
    names
        .into_iter()
        .find(|(i, _)| *i == id)
        .map_or_else(|| format!("#{id}"), |(_, n)| n.to_owned())
}

fn id_of(kind: IdKind, name: &str) -> u32 {
    name.strip_prefix('#')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| stable_id(kind, name))
}

fn content_names(bundle: &Bundle) -> impl Iterator<Item = (u32, &str)> + Clone {
    bundle.contents.iter().map(|c| (c.id, c.name.as_str()))
}

fn impression_name(bundle: &Bundle, id: u32) -> String {
    let campaigns = bundle.campaigns.iter().map(|c| (c.id, c.name.as_str()));
    let campaign = campaigns.clone().find(|(i, _)| *i == id);
    match campaign {
        Some((_, name)) => format!("campaign:{name}"),
        None => name_or_id(content_names(bundle), id),
    }
}

/// The experiments of a bundle: stable id, candidate id, variant content names.
fn experiments(bundle: &Bundle) -> Vec<(u32, &str, Vec<&str>)> {
    bundle
        .slots
        .iter()
        .flat_map(|s| &s.candidates)
        .filter_map(|c| match &c.offer {
            Offer::Experiment(e) => Some((
                e.id,
                c.name.as_str(),
                e.variants
                    .iter()
                    .map(|&v| {
                        bundle
                            .contents
                            .get(usize::from(v))
                            .map_or("?", |c| c.name.as_str())
                    })
                    .collect(),
            )),
            Offer::Content(_) => None,
        })
        .collect()
}

/// The state as JSON, by names.
pub fn state_to_json(bundle: &Bundle, state: &State) -> Json {
    let stages = bundle.stages.iter().map(|s| (s.id, s.name.as_str()));
    let topics = bundle.topics.iter().map(|t| (t.id, t.name.as_str()));
    let intents: Map<String, Json> = state
        .intents
        .iter()
        .map(|i| {
            let score = (f64::from(i.score) * 100.0).round() / 100.0;
            (
                name_or_id(topics.clone(), i.topic),
                json!({"score": score, "updated_at": rfc3339(i.updated_at)}),
            )
        })
        .collect();
    let impressions: Map<String, Json> = state
        .impressions
        .iter()
        .map(|i| {
            (
                impression_name(bundle, i.id),
                json!({"count": i.count, "window_start": rfc3339(i.window_start),
                       "last_shown": rfc3339(i.last_shown), "total": i.total}),
            )
        })
        .collect();
    let experiment_list = experiments(bundle);
    let assignments: Map<String, Json> = state
        .experiments
        .iter()
        .map(|a| {
            let known = experiment_list
                .iter()
                .find(|(id, _, _)| *id == a.experiment);
            let name =
                known.map_or_else(|| format!("#{}", a.experiment), |(_, n, _)| (*n).to_owned());
            let variant = if a.variant == Assignment::HOLDOUT {
                "holdout".to_owned()
            } else {
                known
                    .and_then(|(_, _, v)| v.get(usize::from(a.variant)).map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| format!("#{}", a.variant))
            };
            (name, Json::String(variant))
        })
        .collect();
    json!({
        "visitor": hex(&state.visitor),
        "issued_at": rfc3339(state.issued_at),
        "expires_at": rfc3339(state.expires_at),
        "stage": state.stage.map(|id| name_or_id(stages.clone(), id)),
        "stage_since": rfc3339(state.stage_since),
        "visits": state.visits,
        "last_visit": rfc3339(state.last_visit),
        "intents": intents,
        "impressions": impressions,
        "sequence": state.sequence.iter().map(|&id| name_or_id(content_names(bundle), id)).collect::<Vec<_>>(),
        "experiments": assignments,
        "segments": state.segments,
        "consent": !state.consent.opted_out(),
    })
}

fn time_field(map: &Map<String, Json>, key: &str) -> Result<Option<UnixSeconds>, String> {
    match map.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => parse_rfc3339(s).map(Some),
        Some(Json::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{key}: not a time")),
        Some(_) => Err(format!("{key}: expected an RFC 3339 time")),
    }
}

fn object<'j>(json: &'j Json, what: &str) -> Result<&'j Map<String, Json>, String> {
    json.as_object()
        .ok_or_else(|| format!("{what}: expected an object"))
}

/// Reads a state written by names (the fixtures' `state`, `simulate --state`).
pub fn state_from_json(bundle: &Bundle, json: &Json, visitor: [u8; 16]) -> Result<State, String> {
    let map = object(json, "state")?;
    let mut state = State {
        visitor: match map.get("visitor").and_then(Json::as_str) {
            Some(v) => parse_visitor(v)?,
            None => visitor,
        },
        ..State::default()
    };
    state.issued_at = time_field(map, "issued_at")?.unwrap_or(0);
    state.expires_at = time_field(map, "expires_at")?.unwrap_or(0);
    if let Some(stage) = map.get("stage").and_then(Json::as_str) {
        if !stage.starts_with('#') && !bundle.stage_names().any(|s| s == stage) {
            return Err(format!("state.stage: unknown stage \"{stage}\""));
        }
        state.stage = Some(id_of(IdKind::Stage, stage));
    }
    state.stage_since = time_field(map, "stage_since")?.unwrap_or(0);
    state.visits = map
        .get("visits")
        .and_then(Json::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .unwrap_or(0);
    state.last_visit = time_field(map, "last_visit")?.unwrap_or(0);
    if let Some(intents) = map.get("intents") {
        for (topic, value) in object(intents, "state.intents")? {
            let fields = object(value, "state.intents.<topic>")?;
            state.intents.push(Intent {
                topic: id_of(IdKind::Topic, topic),
                score: fields.get("score").and_then(Json::as_f64).unwrap_or(0.0) as f32,
                updated_at: time_field(fields, "updated_at")?.unwrap_or(0),
            });
        }
    }
    if let Some(impressions) = map.get("impressions") {
        for (name, value) in object(impressions, "state.impressions")? {
            let fields = object(value, "state.impressions.<content>")?;
            let id = match name.strip_prefix("campaign:") {
                Some(campaign) => id_of(IdKind::Campaign, campaign),
                None => id_of(IdKind::Content, name),
            };
            let count = fields.get("count").and_then(Json::as_u64).unwrap_or(0);
            let count = u32::try_from(count).unwrap_or(u32::MAX);
            let last_shown = time_field(fields, "last_shown")?.unwrap_or(0);
            state.impressions.push(Impression {
                id,
                count,
                window_start: time_field(fields, "window_start")?.unwrap_or(last_shown),
                last_shown,
                total: fields
                    .get("total")
                    .and_then(Json::as_u64)
                    .and_then(|t| u32::try_from(t).ok())
                    .unwrap_or(count),
            });
        }
    }
    if let Some(sequence) = map.get("sequence").and_then(Json::as_array) {
        state.sequence = sequence
            .iter()
            .filter_map(Json::as_str)
            .map(|c| id_of(IdKind::Content, c))
            .collect();
    }
    if let Some(assignments) = map.get("experiments") {
        let known = experiments(bundle);
        for (name, variant) in object(assignments, "state.experiments")? {
            let (id, variants) = known
                .iter()
                .find(|(_, n, _)| n == name)
                .map(|(id, _, v)| (*id, v.clone()))
                .ok_or_else(|| format!("state.experiments: unknown experiment \"{name}\""))?;
            let variant = variant.as_str().unwrap_or("");
            let index = if variant == "holdout" {
                Assignment::HOLDOUT
            } else {
                variants
                    .iter()
                    .position(|v| *v == variant)
                    .and_then(|i| u8::try_from(i).ok())
                    .ok_or_else(|| {
                        format!("state.experiments.{name}: \"{variant}\" is not a variant")
                    })?
            };
            state.experiments.push(Assignment {
                experiment: id,
                variant: index,
            });
        }
    }
    if let Some(segments) = map.get("segments").and_then(Json::as_array) {
        state.segments = segments
            .iter()
            .filter_map(Json::as_str)
            .map(str::to_owned)
            .collect();
    }
    if map.get("consent") == Some(&Json::Bool(false)) {
        state.consent = Consent(Consent::OPTED_OUT);
    }
    Ok(state)
}
