//! The queue handler (docs/triggers.md): `TRIGGERS` messages are delivered, failures
//! retried with the consumer's backoff until the message lands in the dead-letter queue,
//! whose handler logs what it gets. What a delivery sends is the core's
//! (`micromoment::destination`: each kind's HTTP call, made only with settings named
//! `MM_DEST_…` of one destination, whatever a message says): this file reads the
//! settings, sends the call the core makes, and says how it went.
//!
//! Before a delivery goes out, or is logged from the dead-letter queue, the consumer
//! asks whether the person was erased since it fired: the profile's object for a linked
//! person; for a visitor's own message, the mark an erasure leaves in KV for every
//! device that joined the profile (read without creating an object; KV is eventually
//! consistent, so a message delivered in another location within a minute of the
//! erasure can still go out). An erased person's messages are dropped, said so without
//! their body.

use std::time::Duration;

use worker::{
    Env, Fetch, Headers, Message, MessageBatch, MessageExt, Method, Request, RequestInit, Result,
};

use super::platform::{self, log, setting, within};
use super::profile::{self as objects, route};
use micromoment::destination::{Delivery, HttpCall};
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

/// Sends the call. Errors say what failed, never the URL: a webhook URL is often a
/// credential itself.
async fn send(call: HttpCall) -> std::result::Result<u16, Failure> {
    let headers = Headers::new();
    for (name, value) in &call.headers {
        headers
            .set(name, value)
            .map_err(|e| Failure::Fatal(e.to_string()))?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(call.body.into()));
    let request = Request::new_with_init(&call.url, &init).map_err(|_| {
        Failure::Retry("the destination URL is not a URL the platform can call".to_owned())
    })?;
    match within(
        Duration::from_millis(DELIVERY_TIMEOUT_MS),
        Fetch::Request(request).send(),
    )
    .await
    {
        Some(Ok(response)) => Ok(response.status_code()),
        Some(Err(_)) => Err(Failure::Retry(
            "the receiver could not be reached".to_owned(),
        )),
        None => Err(Failure::Retry(format!(
            "no answer within {DELIVERY_TIMEOUT_MS} ms"
        ))),
    }
}

/// Delivers one message: the core's call of it, with the Worker's settings and clock.
async fn deliver_one(env: &Env, delivery: &Delivery) -> std::result::Result<u16, Failure> {
    let call = delivery
        .call(|name| setting(env, name), platform::now())
        .map_err(|e| Failure::Fatal(e.to_string()))?;
    match send(call).await? {
        status if (200..300).contains(&status) => Ok(status),
        status => Err(Failure::Retry(format!("the receiver answered {status}"))),
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
