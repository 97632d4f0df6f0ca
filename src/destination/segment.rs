//! `segment`: a Segment [`track`](https://segment.com/docs/connections/spec/track/)
//! call. The trigger is the event, the profile the `userId` once linked (else the
//! visitor the `anonymousId`), the delivery's body the properties, its id the
//! `messageId` (so Segment counts a redelivery once) and the time it fired the
//! `timestamp`; the write key is the HTTP Basic user. It sends the write key only to the
//! URL its destination names, or to Segment's own API.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value as Json};

use super::{CallError, Delivery, HttpCall};
use crate::time::{rfc3339, UnixSeconds};

/// Segment's HTTP API for `track`, when a destination names no URL var.
pub(super) const TRACK_URL: &str = "https://api.segment.io/v1/track";

/// The `track` call of the delivery to `url`, with the write key `secret`.
pub(super) fn call(
    delivery: &Delivery,
    secret: &str,
    url: &str,
    _now: UnixSeconds,
) -> Result<HttpCall, CallError> {
    Ok(HttpCall::json(url, track(delivery).to_string())
        .header("Authorization", authorization(secret)))
}

/// The `track` call's JSON.
fn track(delivery: &Delivery) -> Json {
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
fn authorization(write_key: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{write_key}:")))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{delivery, settings};
    use super::super::DestinationKind;
    use super::*;

    #[test]
    fn the_write_key_is_the_basic_user() {
        assert_eq!(authorization("abc"), "Basic YWJjOg==");
    }

    /// The call, header by header and byte for byte: a visitor's trigger is anonymous,
    /// a linked person's names the profile, and a destination without a url var calls
    /// Segment's API.
    #[test]
    fn a_track_call_names_the_trigger_and_the_person() {
        let version = env!("CARGO_PKG_VERSION");
        let mut d = delivery(DestinationKind::Segment, None);
        d.destination = "cdp".to_owned();
        d.secret_var = "MM_DEST_CDP_KEY".to_owned();
        d.body = r#"{"type":"trigger","trigger":"basket-rescue","visitor":"0f0f","stage":"decision"}"#
            .to_owned();
        let call = d.call(settings, 1_796_170_000).expect("a call");
        assert_eq!(call.url, "https://api.segment.io/v1/track");
        assert_eq!(
            call.headers,
            [
                ("Content-Type", "application/json".to_owned()),
                ("User-Agent", format!("micromoment/{version}")),
                ("Authorization", "Basic d3JpdGUta2V5Og==".to_owned()),
            ]
        );
        assert_eq!(
            call.body,
            format!(
                concat!(
                    r#"{{"type":"track","event":"basket-rescue","properties":{{"type":"trigger","#,
                    r#""trigger":"basket-rescue","visitor":"0f0f","stage":"decision"}},"#,
                    r#""messageId":"msg_0123456789abcdef01234567","timestamp":"2026-12-02T00:00:00Z","#,
                    r#""context":{{"library":{{"name":"micromoment","version":"{version}"}}}},"#,
                    r#""anonymousId":"0f0f"}}"#
                ),
                version = version
            )
        );
        d.body = r#"{"trigger":"t","visitor":"0f0f","profile":"4242"}"#.to_owned();
        d.url_var = Some("MM_DEST_CDP_URL".to_owned());
        let call = d.call(settings, 1).expect("a call");
        assert_eq!(call.url, "https://cdp.example/v1/track");
        let track: Json = serde_json::from_str(&call.body).unwrap();
        assert_eq!(track["userId"], "4242");
        assert_eq!(track.get("anonymousId"), None);
    }
}
