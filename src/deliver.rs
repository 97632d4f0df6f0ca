//! Delivering fired triggers (DESIGN §11), the pure part: one queue message per
//! trigger and destination, with a stable id; the body every destination gets; the
//! Standard Webhooks v1 signature; the Segment `track` call. The Worker enqueues the
//! messages and its queue handler makes the calls.
//!
//! The message id is a hash of the trigger, the person (profile and device), the
//! destination, the time it fired and how many times it had fired for this device, so
//! a redelivery (a retry, a replay of the queue) carries the same `webhook-id` and
//! Segment `messageId`, and receivers count it once, while two fires in one second are
//! two messages.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::bundle::{Bundle, DestinationKind};
use crate::context::Context;
use crate::decide::{Decision, Fired};
use crate::ids::hex128_string;
use crate::time::{rfc3339, UnixSeconds};

/// Segment's HTTP API for `track`, when a destination names no URL var.
pub const SEGMENT_TRACK_URL: &str = "https://api.segment.io/v1/track";

/// One delivery: a fired trigger for one destination, as it waits in the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Stable: the same trigger, person, destination, time and fire give the same id.
    pub id: String,
    /// The trigger's name.
    #[serde(default)]
    pub trigger: String,
    /// The device (visitor id, hex) it fired for.
    #[serde(default)]
    pub visitor: String,
    /// The person's profile (hex), once linked: a delivery of an erased profile is
    /// dropped, wherever it waits.
    #[serde(default)]
    pub profile: Option<String>,
    /// The destination's name.
    pub destination: String,
    /// `webhook` or `segment`.
    pub kind: String,
    /// The Worker var holding the URL (Segment's API when absent).
    #[serde(default, deserialize_with = "destination_var_or_none")]
    pub url_var: Option<String>,
    /// The Worker var or secret holding the signing secret or the write key.
    #[serde(deserialize_with = "destination_var")]
    pub secret_var: String,
    /// Unix seconds when the trigger fired.
    pub at: UnixSeconds,
    /// Seconds to wait before sending.
    pub delay_secs: Option<i64>,
    /// The event that cancels a waiting delivery.
    pub unless: Option<String>,
    /// What every destination is told (see [`body`]), as the JSON text that is sent
    /// (and signed) byte for byte.
    pub body: String,
}

/// A delivery read back (from the queue, or from a Durable Object where it waits) names
/// only destination vars, as a bundle must (`bundle::is_destination_var`): a message a
/// bundle enqueued before that rule, or one written by anything else, cannot have the
/// Worker read `JOURNEY_KEYS` and send it. The error does not repeat the name.
fn destination_var<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let name = String::deserialize(deserializer)?;
    if crate::bundle::is_destination_var(&name) {
        Ok(name)
    } else {
        Err(serde::de::Error::custom(
            "a delivery names a Worker setting that is not a destination var (MM_DEST_…)",
        ))
    }
}

fn destination_var_or_none<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    match Option::<Json>::deserialize(deserializer)? {
        None | Some(Json::Null) => Ok(None),
        Some(value) => destination_var(value)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// The deliveries of a request's fired triggers, in firing then destination order.
pub fn deliveries(bundle: &Bundle, decision: &Decision<'_>, ctx: &Context) -> Vec<Delivery> {
    let mut out = Vec::new();
    let state = &decision.state;
    let visitor = hex128_string(&state.visitor);
    let profile = state.link.map(|l| hex128_string(&l.profile));
    for fired in &decision.triggers {
        let body = body(bundle, decision, fired, ctx);
        let text = body.to_string();
        // How many times it has fired for this device, this one included.
        let fires = bundle
            .triggers
            .iter()
            .find(|t| t.name == fired.trigger)
            .and_then(|t| state.impressions.iter().find(|i| i.id == t.id))
            .map_or(0, |i| i.total);
        for name in &fired.send {
            let Some(destination) = bundle.destinations.iter().find(|d| d.name == *name) else {
                continue;
            };
            let person = [profile.as_deref().unwrap_or(""), visitor.as_str()];
            out.push(Delivery {
                id: message_id(fired.trigger, person, name, state.issued_at, fires),
                trigger: fired.trigger.to_owned(),
                visitor: visitor.clone(),
                profile: profile.clone(),
                destination: destination.name.clone(),
                kind: destination.kind.as_str().to_owned(),
                url_var: destination.url.clone(),
                secret_var: destination.secret.clone(),
                at: decision.state.issued_at,
                delay_secs: fired.delay_secs,
                unless: fired.unless.map(str::to_owned),
                body: text.clone(),
            });
        }
    }
    out
}

/// `msg_` and 24 hex digits of SHA-256 over the trigger, the person (profile, device),
/// the destination, the time and the fire's number for the device.
fn message_id(
    trigger: &str,
    [profile, visitor]: [&str; 2],
    destination: &str,
    at: UnixSeconds,
    fires: u32,
) -> String {
    let mut hash = Sha256::new();
    for part in [
        trigger,
        profile,
        visitor,
        destination,
        &at.to_string(),
        &fires.to_string(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let mut id = String::from("msg_");
    for byte in digest.iter().take(12) {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// What a destination is told: the trigger, who (visitor, and profile once linked),
/// where they are in the journey (stage, intents by topic), and the request's channel,
/// device, country and time.
pub fn body(bundle: &Bundle, decision: &Decision<'_>, fired: &Fired<'_>, ctx: &Context) -> Json {
    let state = &decision.state;
    let mut intents = Map::new();
    for i in &state.intents {
        if let Some(topic) = bundle.topics.iter().find(|t| t.id == i.topic) {
            intents.insert(
                topic.name.clone(),
                json!((f64::from(i.score) * 100.0).round() / 100.0),
            );
        }
    }
    let mut body = json!({
        "type": "trigger",
        "trigger": fired.trigger,
        "visitor": hex128_string(&state.visitor),
        "stage": fired.stage,
        "intents": intents,
        "channel": ctx.channel.as_str(),
        "device": ctx.device.kind.map(crate::context::DeviceType::as_str),
        "country": ctx.geo.country,
        "bundle": bundle.id(),
        "at": rfc3339(state.issued_at),
    });
    if let (Some(link), Some(map)) = (state.link, body.as_object_mut()) {
        map.insert("profile".into(), json!(hex128_string(&link.profile)));
    }
    body
}

/// What a request cancels of a person's waiting (delayed) triggers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// The request's events that some delayed trigger's `unless` names.
    pub events: Vec<String>,
    /// Everything waits no more: the person withdrew consent.
    #[serde(default)]
    pub all: bool,
}

impl Cancel {
    /// Whether it cancels nothing.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && !self.all
    }
}

/// What a request with these `events` cancels of what waits for the person.
///
/// `anywhere`: what waits may have been started elsewhere (a linked device's profile
/// holds what every device started), so every `unless` event of the request counts.
/// Otherwise only what the state itself says fired within its delay can be waiting
/// (a visitor's own object), so a request of someone with nothing waiting cancels
/// nothing and calls no object, whatever events it carries and however many new
/// visitors send them. A request that withdrew consent (`opted_out`) cancels all of
/// it.
pub fn cancelling<'a>(
    bundle: &Bundle,
    state: &crate::token::State,
    opted_out: bool,
    now: UnixSeconds,
    events: impl Iterator<Item = &'a str>,
    anywhere: bool,
) -> Cancel {
    let delayed = bundle.triggers.iter().filter(|t| t.delay.is_some());
    let waiting: Vec<&str> = delayed
        .filter(|t| {
            anywhere
                || state
                    .impressions
                    .iter()
                    .find(|i| i.id == t.id)
                    .is_some_and(|fired| {
                        now.saturating_sub(fired.last_shown) <= t.delay.unwrap_or(0)
                    })
        })
        .map(|t| t.unless.as_deref().unwrap_or(""))
        .collect();
    if waiting.is_empty() {
        return Cancel::default();
    }
    if opted_out {
        return Cancel {
            events: Vec::new(),
            all: true,
        };
    }
    let mut out: Vec<String> = Vec::new();
    for event in events {
        if !event.is_empty() && waiting.contains(&event) && !out.iter().any(|e| e == event) {
            out.push(event.to_owned());
        }
    }
    Cancel {
        events: out,
        all: false,
    }
}

/// Why a secret cannot sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Not `whsec_` and base64, as Standard Webhooks writes a secret.
    #[error("the webhook secret is not whsec_<base64> (Standard Webhooks): {0}")]
    Malformed(&'static str),
}

/// The `webhook-signature` header of Standard Webhooks v1: `v1,` and the base64
/// HMAC-SHA256, keyed by the secret's bytes, of `id.timestamp.body`.
pub fn webhook_signature(
    secret: &str,
    id: &str,
    timestamp: UnixSeconds,
    body: &str,
) -> Result<String, SecretError> {
    let encoded = secret
        .strip_prefix("whsec_")
        .ok_or(SecretError::Malformed("no whsec_ prefix"))?;
    let key = STANDARD
        .decode(encoded)
        .map_err(|_| SecretError::Malformed("not base64"))?;
    if key.is_empty() {
        return Err(SecretError::Malformed("empty"));
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key)
        .map_err(|_| SecretError::Malformed("unusable key"))?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// The Segment `track` call for a delivery: the trigger as the event, the profile as
/// `userId` once linked (else the visitor as `anonymousId`), the body as properties.
pub fn segment_track(delivery: &Delivery) -> Json {
    let body: Json = serde_json::from_str(&delivery.body).unwrap_or(Json::Null);
    let body = &body;
    let mut track = json!({
        "type": "track",
        "event": body.get("trigger"),
        "properties": body,
        "messageId": delivery.id,
        "timestamp": rfc3339(delivery.at),
        "context": {"library": {"name": "micromoment", "version": env!("CARGO_PKG_VERSION")}},
    });
    if let Some(map) = track.as_object_mut() {
        match body.get("profile") {
            Some(profile) => map.insert("userId".into(), profile.clone()),
            None => map.insert(
                "anonymousId".into(),
                body.get("visitor").cloned().unwrap_or(Json::Null),
            ),
        };
    }
    track
}

/// `Authorization` for Segment's HTTP API: Basic with the write key as the user.
pub fn segment_authorization(write_key: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{write_key}:")))
}

impl DestinationKind {
    /// The kind named by a delivery.
    pub fn parse(text: &str) -> Option<DestinationKind> {
        match text {
            "webhook" => Some(DestinationKind::Webhook),
            "segment" => Some(DestinationKind::Segment),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification and its reference libraries.
    #[test]
    fn the_specifications_example_signs_as_published() {
        let signature = webhook_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            r#"{"test": 2432232314}"#,
        )
        .unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn malformed_secrets_are_typed_errors() {
        for bad in ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!", "whsec_"] {
            assert!(webhook_signature(bad, "m", 1, "{}").is_err(), "{bad}");
        }
    }

    /// What the queue and the Durable Object hand back is read as the bundle is loaded:
    /// a var outside `MM_DEST_…` is refused, without saying which.
    #[test]
    fn a_delivery_naming_another_secret_is_unreadable() {
        let read = |url: Json, secret: Json| {
            serde_json::from_value::<Delivery>(json!({
                "id": "msg_1", "destination": "cdp", "kind": "segment", "url_var": url,
                "secret_var": secret, "at": 1, "delay_secs": null, "unless": null, "body": "{}"
            }))
            .map_err(|e| e.to_string())
        };
        let refused = Err(
            "a delivery names a Worker setting that is not a destination var (MM_DEST_…)"
                .to_owned(),
        );
        assert_eq!(read(json!(null), json!("JOURNEY_KEYS")), refused);
        assert_eq!(read(json!("MM_BACKEND_TOKEN"), json!("MM_DEST_K")), refused);
        assert_eq!(read(json!("MM_DEST_"), json!("MM_DEST_K")), refused);
        let ok = read(json!("MM_DEST_URL"), json!("MM_DEST_KEY")).expect("reads");
        assert_eq!(
            (ok.url_var.as_deref(), ok.secret_var.as_str()),
            (Some("MM_DEST_URL"), "MM_DEST_KEY")
        );
        assert_eq!(
            read(json!(null), json!("MM_DEST_KEY")).map(|d| d.url_var),
            Ok(None)
        );
        // What `deliveries` writes reads back as it was.
        let round = serde_json::to_string(&ok).unwrap();
        assert_eq!(serde_json::from_str::<Delivery>(&round).unwrap(), ok);
    }

    #[test]
    fn segment_auth_is_the_write_key_as_basic_user() {
        assert_eq!(segment_authorization("abc"), "Basic YWJjOg==");
    }
}
