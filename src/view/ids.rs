//! The state by stable ids: what `token inspect` prints without a bundle (it says so),
//! and what the JS package and a backend may hand back to mint a token.
//!
//! ```json
//! {"visitor": "<32 hex digits>",
//!  "issued_at": {"unix": 1736935200, "rfc3339": "2025-01-15T10:00:00Z"},
//!  "expires_at": {…}, "stage": 2411432561, "stage_since": {…}, "visits": 3,
//!  "last_visit": {…},
//!  "intents": [{"topic": 123, "score": 42.5, "updated_at": {…}}],
//!  "impressions": [{"id": 456, "count": 2, "window_start": {…}, "last_shown": {…},
//!                   "total": 5}],
//!  "sequence": [456], "experiments": [{"experiment": 789, "variant": 1,
//!  "holdout": false}], "segments": ["vip"],
//!  "consent": {"bits": 0, "personalization": true}}
//! ```
//!
//! Ids are the stable ids of `crate::ids` (a name cannot be recovered without the
//! bundle). Times print as Unix seconds and RFC 3339 in UTC; when read back, a time may
//! be that object (only `unix` counts), bare Unix seconds, or an RFC 3339 string.
//! `holdout` and `personalization` are printed for people and ignored when read. The
//! view never reads a clock and never drops anything the state holds.

use serde::{Deserialize, Serialize};

use crate::context::Channel;
use crate::ids;
use crate::time::UnixSeconds;
use crate::token::{Assignment, Consent, DeviceKind, Impression, Intent, Link, State};

/// Why a JSON value is not a state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ViewError {
    /// The JSON does not have the shape of the view.
    #[error("state is not valid: {0}")]
    Json(String),
    /// `visitor` is not 32 hexadecimal digits.
    #[error("visitor: {0:?} is not 32 hexadecimal digits")]
    Visitor(String),
    /// `link.profile` is not 32 hexadecimal digits.
    #[error("link.profile: {0:?} is not 32 hexadecimal digits")]
    Profile(String),
    /// A time string is not RFC 3339.
    #[error("{field}: {value:?} is not an RFC 3339 time")]
    Time {
        /// The field's path, e.g. `intents[0].updated_at`.
        field: String,
        /// The refused text.
        value: String,
    },
}

#[derive(Serialize, Deserialize)]
struct View {
    visitor: String,
    issued_at: Time,
    expires_at: Time,
    stage: Option<u32>,
    stage_since: Time,
    visits: u32,
    last_visit: Time,
    #[serde(default)]
    intents: Vec<IntentView>,
    #[serde(default)]
    impressions: Vec<ImpressionView>,
    #[serde(default)]
    sequence: Vec<u32>,
    #[serde(default)]
    experiments: Vec<AssignmentView>,
    #[serde(default)]
    segments: Vec<String>,
    #[serde(default)]
    consent: ConsentView,
    /// The rest is written only for a linked state, as only a `v2` token carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<LinkView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stage_generation: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    visits_by: Option<std::collections::BTreeMap<String, u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_channel: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct LinkView {
    profile: String,
    #[serde(default)]
    seq: u32,
    #[serde(default)]
    devices: u8,
    /// Absent: linked at 0, older than any erasure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    linked_at: Option<Time>,
}

#[derive(Serialize, Deserialize)]
struct IntentView {
    topic: u32,
    /// The f32 score as the shortest decimal that reads back to it.
    score: f64,
    updated_at: Time,
}

#[derive(Serialize, Deserialize)]
struct ImpressionView {
    id: u32,
    count: u32,
    window_start: Time,
    last_shown: Time,
    total: u32,
}

#[derive(Serialize, Deserialize)]
struct AssignmentView {
    experiment: u32,
    variant: u8,
    #[serde(default, skip_deserializing)]
    holdout: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<Time>,
}

#[derive(Serialize, Deserialize, Default)]
struct ConsentView {
    bits: u8,
    #[serde(default, skip_deserializing)]
    personalization: bool,
}

/// A time, printed as both forms; read from either.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Time {
    Full {
        unix: UnixSeconds,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rfc3339: Option<String>,
    },
    Unix(UnixSeconds),
    Text(String),
}

impl Time {
    fn of(unix: UnixSeconds) -> Time {
        let rfc3339 = jiff::Timestamp::from_second(unix)
            .ok()
            .map(|t| t.to_string());
        Time::Full { unix, rfc3339 }
    }

    fn unix(self, field: impl FnOnce() -> String) -> Result<UnixSeconds, ViewError> {
        match self {
            Time::Full { unix, .. } | Time::Unix(unix) => Ok(unix),
            Time::Text(text) => match crate::time::parse_rfc3339(&text) {
                Ok(t) => Ok(t),
                Err(_) => Err(ViewError::Time {
                    field: field(),
                    value: text,
                }),
            },
        }
    }
}

/// The f32 as the f64 of its shortest decimal form, so JSON shows `0.1`, not
/// `0.10000000149011612`.
fn widen(score: f32) -> f64 {
    score.to_string().parse().unwrap_or(f64::from(score))
}

impl State {
    /// The JSON view of this state, as the module shows.
    pub fn to_json(&self) -> serde_json::Value {
        let linked = self.link.is_some();
        let view = View {
            visitor: ids::hex128_string(&self.visitor),
            issued_at: Time::of(self.issued_at),
            expires_at: Time::of(self.expires_at),
            stage: self.stage,
            stage_since: Time::of(self.stage_since),
            visits: self.visits,
            last_visit: Time::of(self.last_visit),
            intents: self
                .intents
                .iter()
                .map(|i| IntentView {
                    topic: i.topic,
                    score: widen(i.score),
                    updated_at: Time::of(i.updated_at),
                })
                .collect(),
            impressions: self
                .impressions
                .iter()
                .map(|i| ImpressionView {
                    id: i.id,
                    count: i.count,
                    window_start: Time::of(i.window_start),
                    last_shown: Time::of(i.last_shown),
                    total: i.total,
                })
                .collect(),
            sequence: self.sequence.clone(),
            experiments: self
                .experiments
                .iter()
                .map(|a| AssignmentView {
                    experiment: a.experiment,
                    variant: a.variant,
                    holdout: a.variant == Assignment::HOLDOUT,
                    at: linked.then(|| Time::of(a.at)),
                })
                .collect(),
            segments: self.segments.clone(),
            consent: ConsentView {
                bits: self.consent.0,
                personalization: !self.consent.opted_out(),
            },
            link: self.link.map(|l| LinkView {
                profile: ids::hex128_string(&l.profile),
                seq: l.seq,
                devices: l.devices,
                linked_at: (l.linked_at != 0).then(|| Time::of(l.linked_at)),
            }),
            stage_generation: linked.then_some(self.stage_generation),
            visits_by: linked.then(|| {
                DeviceKind::ALL
                    .iter()
                    .zip(self.visits_by)
                    .map(|(k, n)| (k.as_str().to_owned(), n))
                    .collect()
            }),
            last_channel: self
                .last_channel
                .filter(|_| linked)
                .map(|c| c.as_str().to_owned()),
        };
        // The view holds only strings, integers, finite-or-null floats and lists:
        // serializing it to a `Value` cannot fail.
        serde_json::to_value(view).unwrap_or(serde_json::Value::Null)
    }

    /// Reads a state from its JSON view (see the module documentation).
    pub fn from_json(value: &serde_json::Value) -> Result<State, ViewError> {
        let view = View::deserialize(value).map_err(|e| ViewError::Json(e.to_string()))?;
        let visitor = ids::parse_hex128(&view.visitor)
            .ok()
            .ok_or_else(|| ViewError::Visitor(view.visitor.clone()))?;
        let mut intents = Vec::with_capacity(view.intents.len());
        for (n, i) in view.intents.into_iter().enumerate() {
            intents.push(Intent {
                topic: i.topic,
                // Narrowing is the point: scores are f32 in the state.
                #[allow(clippy::cast_possible_truncation)]
                score: i.score as f32,
                updated_at: i.updated_at.unix(|| format!("intents[{n}].updated_at"))?,
            });
        }
        let mut impressions = Vec::with_capacity(view.impressions.len());
        for (n, i) in view.impressions.into_iter().enumerate() {
            impressions.push(Impression {
                id: i.id,
                count: i.count,
                window_start: i
                    .window_start
                    .unix(|| format!("impressions[{n}].window_start"))?,
                last_shown: i
                    .last_shown
                    .unix(|| format!("impressions[{n}].last_shown"))?,
                total: i.total,
            });
        }
        let issued_at = view.issued_at.unix(|| "issued_at".into())?;
        let mut experiments = Vec::with_capacity(view.experiments.len());
        for (n, a) in view.experiments.into_iter().enumerate() {
            experiments.push(Assignment {
                experiment: a.experiment,
                variant: a.variant,
                at: match a.at {
                    Some(at) => at.unix(|| format!("experiments[{n}].at"))?,
                    None => issued_at,
                },
            });
        }
        let link = match view.link {
            Some(l) => Some(Link {
                profile: ids::parse_hex128(&l.profile)
                    .map_err(|_| ViewError::Profile(l.profile.clone()))?,
                seq: l.seq,
                devices: l.devices,
                linked_at: match l.linked_at {
                    Some(t) => t.unix(|| "link.linked_at".into())?,
                    None => 0,
                },
            }),
            None => None,
        };
        let mut visits_by = [0u32; DeviceKind::COUNT];
        for (name, count) in view.visits_by.unwrap_or_default() {
            let kind = DeviceKind::parse(&name).ok_or_else(|| {
                ViewError::Json(format!(
                    "visits_by: unknown device type or channel {name:?}"
                ))
            })?;
            if let Some(slot) = visits_by.get_mut(kind.index()) {
                *slot = count;
            }
        }
        let last_channel = match view.last_channel {
            Some(name) => Some(Channel::parse(&name).ok_or_else(|| {
                ViewError::Json(format!("last_channel: unknown channel {name:?}"))
            })?),
            None => None,
        };
        Ok(State {
            visitor,
            issued_at,
            expires_at: view.expires_at.unix(|| "expires_at".into())?,
            stage: view.stage,
            stage_since: view.stage_since.unix(|| "stage_since".into())?,
            visits: view.visits,
            last_visit: view.last_visit.unix(|| "last_visit".into())?,
            intents,
            impressions,
            sequence: view.sequence,
            experiments,
            segments: view.segments,
            consent: Consent(view.consent.bits),
            stage_generation: view.stage_generation.unwrap_or(0),
            visits_by,
            last_channel,
            link,
        })
    }
}
