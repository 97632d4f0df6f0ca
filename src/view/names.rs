//! The state by names: the JSON that `simulate`, the npm package, `token inspect
//! --bundle` and the scenario fixtures show and read.
//!
//! Tokens store stable ids; a person reads names. With the bundle at hand, ids become
//! the stage, topic, content and experiment names they hash from; an id the bundle does
//! not know (an item a later bundle removed) prints as `#<id>` and reads back the same,
//! so nothing is lost in a round trip.

use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::{Map, Value as Json};

use crate::bundle::{Bundle, Offer};
use crate::context::Channel;
use crate::ids::{self, stable_id, IdKind};
use crate::time::{parse_rfc3339, UnixSeconds};
use crate::token::{Assignment, Consent, DeviceKind, Impression, Intent, Link, State};

fn id_of(kind: IdKind, name: &str) -> u32 {
    name.strip_prefix('#')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| stable_id(kind, name))
}

fn content_names(bundle: &Bundle) -> impl Iterator<Item = (u32, &str)> + Clone {
    bundle.contents.iter().map(|c| (c.id, c.name.as_str()))
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

/// The candidate id and experiment of an experiment's stable id.
fn experiment_of(bundle: &Bundle, id: u32) -> Option<(&str, &crate::bundle::Experiment)> {
    bundle
        .slots
        .iter()
        .flat_map(|s| &s.candidates)
        .find_map(|c| match &c.offer {
            Offer::Experiment(e) if e.id == id => Some((c.name.as_str(), e)),
            _ => None,
        })
}

/// A time as RFC 3339 text when serialized, the way [`rfc3339`] writes it.
struct Time(UnixSeconds);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 20];
        match fast_rfc3339(self.0, &mut buf) {
            Some(text) => serializer.serialize_str(text),
            None => serializer.serialize_str(&crate::time::rfc3339(self.0)),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` from 1970 to jiff's last timestamp (9999-12-30) without going
/// through a formatter (the state view writes several times per answer); `None`
/// outside, where [`rfc3339`] takes over. Days to civil date after Howard Hinnant's
/// `civil_from_days`.
fn fast_rfc3339(t: UnixSeconds, buf: &mut [u8; 20]) -> Option<&str> {
    if !(0..=jiff::Timestamp::MAX.as_second()).contains(&t) {
        return None;
    }
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let fields = [
        (0, 4, year),
        (5, 2, month),
        (8, 2, day),
        (11, 2, secs / 3600),
        (14, 2, secs / 60 % 60),
        (17, 2, secs % 60),
    ];
    *buf = *b"0000-00-00T00:00:00Z";
    for (at, width, mut value) in fields {
        for k in (at..at + width).rev() {
            *buf.get_mut(k)? = b'0' + u8::try_from(value % 10).ok()?;
            value /= 10;
        }
    }
    std::str::from_utf8(buf).ok()
}

/// A bundle item's name, or `#<id>` for an id the bundle does not know.
enum Name<'b> {
    Known(&'b str),
    Campaign(&'b str),
    Unknown(u32),
}

impl Name<'_> {
    fn of<'b>(mut names: impl Iterator<Item = (u32, &'b str)>, id: u32) -> Name<'b> {
        names
            .find(|(i, _)| *i == id)
            .map_or(Name::Unknown(id), |(_, n)| Name::Known(n))
    }
}

impl Serialize for Name<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Name::Known(name) => serializer.serialize_str(name),
            Name::Campaign(name) => serializer.collect_str(&format_args!("campaign:{name}")),
            Name::Unknown(id) => serializer.collect_str(&format_args!("#{id}")),
        }
    }
}

fn impression_key<'b>(bundle: &'b Bundle, id: u32) -> Name<'b> {
    match bundle.campaigns.iter().find(|c| c.id == id) {
        Some(campaign) => Name::Campaign(&campaign.name),
        None => Name::of(content_names(bundle), id),
    }
}

/// A map written from an iterator of pairs, in order, without building it.
struct Pairs<F>(F);

impl<K: Serialize, V: Serialize, I: Iterator<Item = (K, V)>, F: Fn() -> I> Serialize for Pairs<F> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map((self.0)())
    }
}

#[derive(Serialize)]
struct IntentView {
    score: f64,
    updated_at: Time,
}

#[derive(Serialize)]
struct ImpressionView {
    count: u32,
    window_start: Time,
    last_shown: Time,
    total: u32,
}

#[derive(Serialize)]
struct LinkView<'a> {
    profile: &'a str,
    seq: u32,
    devices: u8,
    /// Left out for a link that predates `linked_at` (0).
    #[serde(skip_serializing_if = "Option::is_none")]
    linked_at: Option<Time>,
}

/// The state by names, serialized straight from the state (the npm package and
/// `simulate` write one per answer): see [`state_to_json`].
pub struct StateView<'a> {
    bundle: &'a Bundle,
    state: &'a State,
}

impl Serialize for StateView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (bundle, state) = (self.bundle, self.state);
        let stages = || bundle.stages.iter().map(|s| (s.id, s.name.as_str()));
        let topics = || bundle.topics.iter().map(|t| (t.id, t.name.as_str()));
        let mut visitor = [0u8; 32];
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("visitor", ids::hex128(&state.visitor, &mut visitor))?;
        map.serialize_entry("issued_at", &Time(state.issued_at))?;
        map.serialize_entry("expires_at", &Time(state.expires_at))?;
        map.serialize_entry("stage", &state.stage.map(|id| Name::of(stages(), id)))?;
        map.serialize_entry("stage_since", &Time(state.stage_since))?;
        map.serialize_entry("visits", &state.visits)?;
        map.serialize_entry("last_visit", &Time(state.last_visit))?;
        map.serialize_entry(
            "intents",
            &Pairs(|| {
                state.intents.iter().map(|i| {
                    (
                        Name::of(topics(), i.topic),
                        IntentView {
                            score: (f64::from(i.score) * 100.0).round() / 100.0,
                            updated_at: Time(i.updated_at),
                        },
                    )
                })
            }),
        )?;
        map.serialize_entry(
            "impressions",
            &Pairs(|| {
                state.impressions.iter().map(|i| {
                    (
                        impression_key(bundle, i.id),
                        ImpressionView {
                            count: i.count,
                            window_start: Time(i.window_start),
                            last_shown: Time(i.last_shown),
                            total: i.total,
                        },
                    )
                })
            }),
        )?;
        let sequence: Vec<Name<'_>> = state
            .sequence
            .iter()
            .map(|&id| Name::of(content_names(bundle), id))
            .collect();
        map.serialize_entry("sequence", &sequence)?;
        map.serialize_entry(
            "experiments",
            &Pairs(|| {
                state.experiments.iter().map(|a| {
                    let known = experiment_of(bundle, a.experiment);
                    let name = known.map_or(Name::Unknown(a.experiment), |(n, _)| Name::Known(n));
                    let variant = if a.variant == Assignment::HOLDOUT {
                        Name::Known("holdout")
                    } else {
                        known
                            .and_then(|(_, e)| e.variants.get(usize::from(a.variant)))
                            .and_then(|&v| bundle.contents.get(usize::from(v)))
                            .map_or(Name::Unknown(u32::from(a.variant)), |c| {
                                Name::Known(&c.name)
                            })
                    };
                    (name, variant)
                })
            }),
        )?;
        map.serialize_entry("segments", &state.segments)?;
        map.serialize_entry("consent", &!state.consent.opted_out())?;
        // What only a linked state's token carries (docs/profiles.md).
        if let Some(link) = &state.link {
            let mut profile = [0u8; 32];
            map.serialize_entry(
                "link",
                &LinkView {
                    profile: ids::hex128(&link.profile, &mut profile),
                    seq: link.seq,
                    devices: link.devices,
                    linked_at: (link.linked_at != 0).then_some(Time(link.linked_at)),
                },
            )?;
            map.serialize_entry(
                "visits_by",
                &Pairs(|| {
                    DeviceKind::ALL
                        .iter()
                        .zip(state.visits_by)
                        .map(|(k, n)| (k.as_str(), n))
                }),
            )?;
            map.serialize_entry("last_channel", &state.last_channel.map(Channel::as_str))?;
            map.serialize_entry("stage_generation", &state.stage_generation)?;
        }
        map.end()
    }
}

/// The state by names, for serializing without an intermediate JSON tree.
pub fn state_view<'a>(bundle: &'a Bundle, state: &'a State) -> StateView<'a> {
    StateView { bundle, state }
}

/// The state as JSON, by names.
pub fn state_to_json(bundle: &Bundle, state: &State) -> Json {
    serde_json::to_value(state_view(bundle, state)).unwrap_or(Json::Null)
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
            Some(v) => ids::parse_hex128(v).map_err(|e| format!("state.visitor: {e}"))?,
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
                at: state.issued_at,
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
    if let Some(link) = map.get("link") {
        let fields = object(link, "state.link")?;
        let profile = fields
            .get("profile")
            .and_then(Json::as_str)
            .ok_or("state.link.profile: expected 32 hexadecimal digits")?;
        let number = |key: &str| fields.get(key).and_then(Json::as_u64).unwrap_or(0);
        state.link = Some(Link {
            profile: ids::parse_hex128(profile).map_err(|e| format!("state.link.profile: {e}"))?,
            seq: u32::try_from(number("seq")).unwrap_or(u32::MAX),
            devices: u8::try_from(number("devices")).unwrap_or(u8::MAX),
            linked_at: time_field(fields, "linked_at")
                .map_err(|e| format!("state.link.{e}"))?
                .unwrap_or(0),
        });
    }
    if let Some(by) = map.get("visits_by") {
        for (name, count) in object(by, "state.visits_by")? {
            let kind = DeviceKind::parse(name).ok_or_else(|| {
                format!("state.visits_by: unknown device type or channel \"{name}\"")
            })?;
            if let Some(slot) = state.visits_by.get_mut(kind.index()) {
                *slot = count
                    .as_u64()
                    .and_then(|c| u32::try_from(c).ok())
                    .unwrap_or(0);
            }
        }
    }
    if let Some(name) = map.get("last_channel").and_then(Json::as_str) {
        state.last_channel = Some(
            Channel::parse(name)
                .ok_or_else(|| format!("state.last_channel: unknown channel \"{name}\""))?,
        );
    }
    if let Some(generation) = map.get("stage_generation").and_then(Json::as_u64) {
        state.stage_generation = u16::try_from(generation).unwrap_or(u16::MAX);
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_rfc3339_writes_what_jiff_writes() {
        let mut t: i64 = 0;
        let mut step: i64 = 1;
        while t <= jiff::Timestamp::MAX.as_second() {
            let mut buf = [0u8; 20];
            assert_eq!(
                fast_rfc3339(t, &mut buf),
                Some(crate::time::rfc3339(t).as_str()),
                "{t}"
            );
            t += step;
            step = step * 3 / 2 + 7_919;
        }
        for t in [951_782_400, 951_868_799, 4_107_542_399, 253_402_207_200] {
            let mut buf = [0u8; 20];
            assert_eq!(
                fast_rfc3339(t, &mut buf),
                Some(crate::time::rfc3339(t).as_str()),
                "{t}"
            );
        }
        let mut buf = [0u8; 20];
        assert_eq!(fast_rfc3339(-1, &mut buf), None);
        assert_eq!(fast_rfc3339(253_402_207_201, &mut buf), None);
        assert_eq!(
            serde_json::to_string(&Time(-86_400)).unwrap(),
            "\"1969-12-31T00:00:00Z\""
        );
    }
}
