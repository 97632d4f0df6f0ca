//! The bodies of the edge's JSON API calls (docs/api.md), read and checked: a typed call,
//! or the message of a `400`. `POST /v1/events` from a device, and the backend API
//! (`/v1/profiles/<id>…`), which the Worker checks before it forwards a call and the
//! profile's Durable Object reads again from the same bytes.
//!
//! Every list and string is bounded here, before anything is done with it; nothing is
//! looked up in a bundle (an unknown event is simply an event no rule names). Pure: no
//! I/O, no clock.

use serde::Deserialize;

use crate::context::{Channel, Context};
use crate::record;
use crate::token::{segment_ok, State, MAX_SEGMENTS};

/// The most events one call applies.
pub const MAX_EVENTS: usize = 32;
/// The longest event name kept; longer names are dropped.
pub const MAX_EVENT_NAME: usize = 128;

/// An app or backend event: its name and value (revenue, for goals with `"value":
/// true`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// The event's name.
    pub name: String,
    /// Its value, within `record::value_ok`.
    #[serde(default)]
    pub value: Option<f64>,
}

/// `POST /v1/events` from a device: `{"events":[{"name":…, "value"?}]}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeviceEvents {
    /// The events, in order.
    pub events: Vec<Event>,
}

/// A device's `POST /v1/events` body, checked: empty and over-long names are dropped.
pub fn device_events(body: &[u8]) -> Result<Vec<Event>, String> {
    let parsed: DeviceEvents = serde_json::from_slice(body)
        .map_err(|e| format!("body: expected {{\"events\":[{{\"name\":…}}]}}: {e}"))?;
    checked_events(parsed.events)
}

fn checked_events(events: Vec<Event>) -> Result<Vec<Event>, String> {
    if events.len() > MAX_EVENTS {
        return Err(format!(
            "{} events, over the limit of {MAX_EVENTS}",
            events.len()
        ));
    }
    if events
        .iter()
        .any(|e| e.value.is_some_and(|v| !record::value_ok(v)))
    {
        return Err("value: a number between -1e9 and 1e9".into());
    }
    Ok(events
        .into_iter()
        .filter(|e| !e.name.is_empty() && e.name.len() <= MAX_EVENT_NAME)
        .collect())
}

/// A backend API call, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendCall {
    /// `GET /v1/profiles/<id>`: the profile by names.
    Get,
    /// `DELETE /v1/profiles/<id>`: erased for good.
    Erase,
    /// `POST /v1/profiles/<id>/events`: events applied with the bundle's transitions.
    Events {
        /// Where they happened (default `store`).
        channel: Channel,
        /// The events, in order.
        events: Vec<Event>,
        /// The request context rules read.
        context: Context,
        /// Segments to add to, and remove from, the person.
        segments: Segments,
    },
    /// `POST /v1/profiles/<id>/decide`: slots decided for another channel.
    Decide {
        /// The channel the answer is for (default `email`).
        channel: Channel,
        /// The slots, by name.
        slots: Vec<String>,
        /// The request context rules read.
        context: Context,
    },
    /// `DELETE /v1/profiles/<id>/links/<link id>`: one identity link revoked.
    RevokeLink {
        /// The link's id.
        id: [u8; 16],
    },
    /// `DELETE /v1/profiles/<id>/links`: every link issued until now revoked.
    RevokeLinks,
}

/// Segment changes of a backend's events call.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segments {
    /// Segments the person joins.
    #[serde(default)]
    pub add: Vec<String>,
    /// Segments the person leaves.
    #[serde(default)]
    pub remove: Vec<String>,
}

impl Segments {
    /// Adds the segments to `state` (each once, only names a token can carry).
    pub fn apply_adds(&self, state: &mut State) {
        for s in &self.add {
            if segment_ok(s) && !state.segments.contains(s) {
                state.segments.push(s.clone());
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsBody {
    #[serde(default)]
    events: Vec<Event>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    context: Option<Context>,
    #[serde(default)]
    segments: Option<Segments>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    slots: Vec<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    context: Option<Context>,
}

/// The HTTP method of a backend call, as far as it matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
    /// `DELETE`.
    Delete,
    /// Anything else.
    Other,
}

/// Why a backend call was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// No such route for this method (a `405`).
    #[error("method not allowed")]
    Method,
    /// No such route (a `404`).
    #[error("not found")]
    NotFound,
    /// The body or the path is wrong (a `400`), with what is wrong.
    #[error("{0}")]
    Bad(String),
}

fn channel(given: Option<String>, default: Channel) -> Result<Channel, CallError> {
    match given {
        None => Ok(default),
        Some(name) => Channel::parse(&name).ok_or_else(|| {
            CallError::Bad("channel: expected web, app, email, store or push".into())
        }),
    }
}

/// Reads a backend call: `route` is what follows the profile id in the path (`""`,
/// `events`, `decide`, `links`, `links/<id>`), `body` the request body (empty for
/// `GET` and `DELETE`).
pub fn backend_call(method: Method, route: &str, body: &[u8]) -> Result<BackendCall, CallError> {
    match (method, route) {
        (Method::Get, "") => Ok(BackendCall::Get),
        (Method::Delete, "") => Ok(BackendCall::Erase),
        (Method::Delete, "links") => Ok(BackendCall::RevokeLinks),
        (Method::Post, "events") => {
            let parsed: EventsBody = serde_json::from_slice(body).map_err(|e| {
                CallError::Bad(format!(
                    "body: expected {{\"events\":[{{\"name\":…}}], \"channel\"?, \"context\"?, \"segments\"?}}: {e}"
                ))
            })?;
            let events = checked_events(parsed.events).map_err(CallError::Bad)?;
            let segments = parsed.segments.unwrap_or_default();
            if segments.add.len() > MAX_SEGMENTS
                || segments.remove.len() > MAX_SEGMENTS
                || !segments.add.iter().all(|s| segment_ok(s))
                || !segments.remove.iter().all(|s| segment_ok(s))
            {
                return Err(CallError::Bad(
                    "segments: at most 16 to add and 16 to remove, each 1 to 32 bytes".into(),
                ));
            }
            Ok(BackendCall::Events {
                channel: channel(parsed.channel, Channel::Store)?,
                events,
                context: parsed.context.unwrap_or_default(),
                segments,
            })
        }
        (Method::Post, "decide") => {
            let parsed: DecideBody = serde_json::from_slice(body).map_err(|e| {
                CallError::Bad(format!(
                    "body: expected {{\"slots\":[…], \"channel\"?, \"context\"?}}: {e}"
                ))
            })?;
            if parsed.slots.is_empty() || parsed.slots.len() > crate::session::MAX_SLOTS {
                return Err(CallError::Bad("slots: name 1 to 32 slots".into()));
            }
            Ok(BackendCall::Decide {
                channel: channel(parsed.channel, Channel::Email)?,
                slots: parsed.slots,
                context: parsed.context.unwrap_or_default(),
            })
        }
        (method, route) => match route.strip_prefix("links/") {
            Some(id) if method == Method::Delete => crate::ids::parse_hex128(id)
                .map(|id| BackendCall::RevokeLink { id })
                .map_err(|_| CallError::Bad("link id: expected 32 hexadecimal digits".into())),
            Some(_) => Err(CallError::Method),
            None if matches!(route, "" | "events" | "decide" | "links") => Err(CallError::Method),
            None => Err(CallError::NotFound),
        },
    }
}

/// SHA-256 (hex) of a backend call's route and body: a key reused with another call is
/// refused, not answered with the first call's answer.
pub fn fingerprint(route: &str, body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(route.as_bytes());
    hash.update([0]);
    hash.update(body);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// An `Idempotency-Key` header value, checked: 1 to 128 visible ASCII characters.
pub fn idempotency_key(value: Option<String>) -> Result<Option<String>, CallError> {
    match value {
        Some(key)
            if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            Err(CallError::Bad(
                "Idempotency-Key: 1 to 128 visible ASCII characters".into(),
            ))
        }
        key => Ok(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(method: Method, route: &str, body: &str, want: Result<&str, &str>) {
        let got = backend_call(method, route, body.as_bytes());
        match (got, want) {
            (Ok(call), Ok(kind)) => assert!(format!("{call:?}").starts_with(kind), "{call:?}"),
            (Err(e), Err(message)) => assert_eq!(e.to_string(), message),
            (got, want) => panic!("{route} {body}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn backend_calls_are_typed_or_refused_with_what_is_wrong() {
        check(Method::Get, "", "", Ok("Get"));
        check(Method::Delete, "", "", Ok("Erase"));
        check(Method::Delete, "links", "", Ok("RevokeLinks"));
        check(
            Method::Delete,
            "links/000102030405060708090a0b0c0d0e0f",
            "",
            Ok("RevokeLink"),
        );
        check(
            Method::Delete,
            "links/nope",
            "",
            Err("link id: expected 32 hexadecimal digits"),
        );
        check(
            Method::Post,
            "events",
            r#"{"events":[{"name":"x"}]}"#,
            Ok("Events"),
        );
        check(
            Method::Post,
            "events",
            r#"{"events":[],"channel":"fax"}"#,
            Err("channel: expected web, app, email, store or push"),
        );
        check(
            Method::Post,
            "events",
            r#"{"events":[{"name":"x","value":1e12}]}"#,
            Err("value: a number between -1e9 and 1e9"),
        );
        check(
            Method::Post,
            "decide",
            r#"{"slots":[]}"#,
            Err("slots: name 1 to 32 slots"),
        );
        check(
            Method::Post,
            "decide",
            r#"{"slots":["hero"]}"#,
            Ok("Decide"),
        );
        check(Method::Get, "events", "", Err("method not allowed"));
        check(Method::Post, "links/00", "", Err("method not allowed"));
        check(Method::Get, "elsewhere", "", Err("not found"));
    }

    #[test]
    fn segments_are_added_once_and_only_when_a_token_can_carry_them() {
        let mut state = State {
            segments: vec!["vip".into()],
            ..State::default()
        };
        Segments {
            add: vec!["vip".into(), "new".into(), "x".repeat(40)],
            remove: Vec::new(),
        }
        .apply_adds(&mut state);
        assert_eq!(state.segments, ["vip", "new"]);
    }

    #[test]
    fn idempotency_keys_are_bounded_visible_ascii() {
        assert_eq!(idempotency_key(None), Ok(None));
        assert_eq!(
            idempotency_key(Some("order-4711".into())),
            Ok(Some("order-4711".into()))
        );
        for bad in ["", "has space", &"x".repeat(129)] {
            assert!(idempotency_key(Some(bad.to_owned())).is_err(), "{bad:?}");
        }
    }
}
