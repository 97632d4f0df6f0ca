//! The queue handler (docs/triggers.md): `TRIGGERS` messages are delivered (Standard
//! Webhooks v1, Segment `track`), failures retried with the consumer's backoff until the
//! message lands in the dead-letter queue, whose handler logs what it gets.
//!
//! Before a delivery goes out, or is logged from the dead-letter queue, the consumer
//! asks whether the person was erased since it fired: the profile's object for a linked
//! person; for a visitor's own message, the mark an erasure leaves in KV for every
//! device that joined the profile (read without creating an object; KV is eventually
//! consistent, so a message delivered in another location within a minute of the
//! erasure can still go out). An erased person's messages are dropped, said so without
//! their body. A destination's URL and secret are read from vars named
//! `MM_DEST_…` only, whatever a message says.

use std::time::Duration;

use worker::{
    Env, Fetch, Headers, Message, MessageBatch, MessageExt, Method, Request, RequestInit, Result,
};

use super::platform::{self, log, setting, within};
use super::profile::{self as objects, route};
use micromoment::bundle::DestinationKind;
use micromoment::deliver::{self, Delivery};
use micromoment::profile::wire::{Check, Checked};

/// How long one delivery may take before it counts as failed (and is retried).
const DELIVERY_TIMEOUT_MS: u64 = 10_000;

/// Why a delivery did not land.
enum Failure {
    /// Worth another attempt: the receiver failed or did not answer.
    Retry(String),
    /// No attempt can succeed (a var that is not set, a malformed secret): logged once,
    /// not retried.
    Fatal(String),
}

/// Whether the person a delivery is about may still be told of: not erased since it
/// fired. An object that cannot say is a retry (the message waits), never a send.
async fn still_theirs(env: &Env, delivery: &Delivery) -> std::result::Result<bool, String> {
    if let Some(profile) = &delivery.profile {
        let checked: Checked =
            objects::call_json(env, profile, route::CHECK, &Check { at: delivery.at }).await?;
        return Ok(checked.send);
    }
    let Ok(visitor) = micromoment::ids::parse_hex128(&delivery.visitor) else {
        // A message from before deliveries named their device: nobody to ask.
        return Ok(true);
    };
    let kv = env.kv("BUNDLES").map_err(|e| e.to_string())?;
    let mark = kv
        .get(&objects::erased_visitor_key(&visitor))
        .text()
        .await
        .map_err(|e| e.to_string())?;
    let erased = mark.and_then(|t| t.trim().parse::<i64>().ok());
    Ok(micromoment::profile::after_erasure(erased, delivery.at))
}

/// Posts to the destination. Errors say what failed, never the URL: a webhook URL is
/// often a credential itself.
async fn post(url: &str, headers: Headers, body: String) -> std::result::Result<u16, String> {
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let request = Request::new_with_init(url, &init)
        .map_err(|_| "the destination URL is not a URL the platform can call".to_owned())?;
    match within(
        Duration::from_millis(DELIVERY_TIMEOUT_MS),
        Fetch::Request(request).send(),
    )
    .await
    {
        Some(Ok(response)) => Ok(response.status_code()),
        Some(Err(_)) => Err("the receiver could not be reached".to_owned()),
        None => Err(format!("no answer within {DELIVERY_TIMEOUT_MS} ms")),
    }
}

/// A destination's var: only a name the bundle rules allow (`MM_DEST_…`), so no message
/// can make the Worker send another secret anywhere.
fn destination_setting(env: &Env, name: &str) -> std::result::Result<String, Failure> {
    if !micromoment::bundle::is_destination_var(name) {
        // The name is not repeated: whatever it is, it is not ours to print.
        return Err(Failure::Fatal(
            "a var it names is not a destination var (MM_DEST_…)".to_owned(),
        ));
    }
    setting(env, name).ok_or_else(|| Failure::Fatal(format!("{name} is not set")))
}

async fn deliver_one(env: &Env, delivery: &Delivery) -> std::result::Result<u16, Failure> {
    let kind = DestinationKind::parse(&delivery.kind)
        .ok_or_else(|| Failure::Fatal(format!("unknown destination kind {}", delivery.kind)))?;
    let secret = destination_setting(env, &delivery.secret_var).map_err(|f| match f {
        Failure::Fatal(why) => Failure::Fatal(format!(
            "{why}: destination {} cannot be called",
            delivery.destination
        )),
        retry => retry,
    })?;
    if let Some(url) = &delivery.url_var {
        if !micromoment::bundle::same_destination(url, &delivery.secret_var) {
            return Err(Failure::Fatal(
                "its url and secret are not one destination's vars".to_owned(),
            ));
        }
    }
    let url = match &delivery.url_var {
        Some(var) => destination_setting(env, var).map_err(|f| match f {
            Failure::Fatal(why) => Failure::Fatal(format!(
                "{why}: destination {} has no URL",
                delivery.destination
            )),
            retry => retry,
        })?,
        None => deliver::SEGMENT_TRACK_URL.to_owned(),
    };
    let headers = Headers::new();
    let set = |k: &str, v: &str| headers.set(k, v).map_err(|e| Failure::Fatal(e.to_string()));
    set("Content-Type", "application/json")?;
    set(
        "User-Agent",
        concat!("micromoment/", env!("CARGO_PKG_VERSION")),
    )?;
    let body = match kind {
        DestinationKind::Webhook => {
            let timestamp = platform::now();
            let signature =
                deliver::webhook_signature(&secret, &delivery.id, timestamp, &delivery.body)
                    .map_err(|e| Failure::Fatal(format!("{}: {e}", delivery.secret_var)))?;
            set("webhook-id", &delivery.id)?;
            set("webhook-timestamp", &timestamp.to_string())?;
            set("webhook-signature", &signature)?;
            delivery.body.clone()
        }
        DestinationKind::Segment => {
            set("Authorization", &deliver::segment_authorization(&secret))?;
            deliver::segment_track(delivery).to_string()
        }
    };
    match post(&url, headers, body).await {
        Ok(status) if (200..300).contains(&status) => Ok(status),
        Ok(status) => Err(Failure::Retry(format!("the receiver answered {status}"))),
        Err(e) => Err(Failure::Retry(e)),
    }
}

/// The queue handler: `TRIGGERS` messages are delivered, dead-letter messages logged.
#[worker::event(queue)]
pub async fn queue(batch: MessageBatch<Delivery>, env: Env, _ctx: worker::Context) -> Result<()> {
    let dead_letters = batch.queue().ends_with("-dlq");
    // Each message is read on its own: one unreadable message (written by another
    // version) is logged and left to the batch's implicit acknowledgement, and the
    // others are delivered.
    for raw in batch.raw_iter() {
        let message: Message<Delivery> = match Message::try_from(raw) {
            Ok(message) => message,
            Err(e) => {
                log(
                    "error",
                    "trigger message unreadable, dropped",
                    &e.to_string(),
                );
                continue;
            }
        };
        let delivery = message.body();
        let what = format!("{} to {}", delivery.id, delivery.destination);
        match still_theirs(&env, delivery).await {
            Ok(true) => {}
            Ok(false) => {
                log("info", "trigger dropped: the person was erased", &what);
                message.ack();
                continue;
            }
            Err(e) => {
                log(
                    "error",
                    "trigger held: the person's object did not answer",
                    &format!("{what}: {e}"),
                );
                message.retry();
                continue;
            }
        }
        if dead_letters {
            platform::print(
                &serde_json::json!({"level": "error", "msg": "trigger undeliverable (dead-letter queue)",
                    "id": delivery.id, "destination": delivery.destination, "body": delivery.body})
                .to_string(),
            );
            message.ack();
            continue;
        }
        match deliver_one(&env, delivery).await {
            Ok(status) => {
                log("info", "trigger delivered", &format!("{what} ({status})"));
                message.ack();
            }
            Err(Failure::Retry(why)) => {
                log(
                    "error",
                    "trigger delivery failed, will retry",
                    &format!("{what}: {why}"),
                );
                message.retry();
            }
            Err(Failure::Fatal(why)) => {
                log(
                    "error",
                    "trigger not deliverable",
                    &format!("{what}: {why}"),
                );
                message.ack();
            }
        }
    }
    Ok(())
}
