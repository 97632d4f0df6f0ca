//! Triggers at the edge (DESIGN §11): a request's fired triggers go on the Queue
//! `TRIGGERS` after the response, one message per destination; the queue handler
//! delivers them (Standard Webhooks v1, Segment `track`), retrying failures with the
//! consumer's backoff until the message lands in the dead-letter queue, whose handler
//! logs every message it gets.
//!
//! A trigger with a `delay` is not sent by this build: waiting and cancelling by
//! `unless` need the person's alarm (a Durable Object), which is not built yet; such a
//! trigger is logged and dropped rather than sent at the wrong time.

use std::time::Duration;

use futures_util::future::{select, Either};
use worker::{
    console_log, Context as WorkerContext, Env, Fetch, Headers, Message, MessageBatch, MessageExt,
    Method, Request, RequestInit, Result,
};

use super::cache::{log, Background};
use crate::bundle::DestinationKind;
use crate::deliver::{self, Delivery};

/// How long one delivery may take before it counts as failed (and is retried).
const DELIVERY_TIMEOUT_MS: u64 = 10_000;

/// Enqueues `deliveries` after the response. Without the `TRIGGERS` binding they are
/// logged and dropped.
pub(crate) fn enqueue(env: &Env, ctx: &impl Background, deliveries: Vec<Delivery>) {
    if deliveries.is_empty() {
        return;
    }
    let queue = match env.queue("TRIGGERS") {
        Ok(queue) => queue,
        Err(_) => {
            log(
                "error",
                "TRIGGERS is not bound: fired triggers are dropped",
                "add the queue producer binding in wrangler.toml",
            );
            return;
        }
    };
    ctx.run(Box::pin(async move {
        for delivery in deliveries {
            if delivery.delay_secs.is_some() {
                log(
                    "info",
                    "delayed trigger not sent: this build does not wait for delays",
                    &format!("{} to {}", delivery.id, delivery.destination),
                );
                continue;
            }
            let what = format!("{} to {}", delivery.id, delivery.destination);
            if let Err(e) = queue.send(delivery).await {
                log(
                    "error",
                    "trigger could not be enqueued",
                    &format!("{what}: {e}"),
                );
            }
        }
    }));
}

/// A Worker var or secret by name.
fn setting(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|s| s.to_string())
        .or_else(|| env.var(name).ok().map(|v| v.to_string()))
        .filter(|v| !v.is_empty())
}

/// Why a delivery did not land.
enum Failure {
    /// Worth another attempt: the receiver failed or did not answer.
    Retry(String),
    /// No attempt can succeed (a var that is not set, a malformed secret): logged once,
    /// not retried.
    Fatal(String),
}

async fn post(url: &str, headers: Headers, body: String) -> std::result::Result<u16, String> {
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let request = Request::new_with_init(url, &init).map_err(|e| e.to_string())?;
    let fetch = Fetch::Request(request);
    let call = Box::pin(fetch.send());
    let timeout = Box::pin(worker::Delay::from(Duration::from_millis(
        DELIVERY_TIMEOUT_MS,
    )));
    let result = match select(call, timeout).await {
        Either::Left((Ok(response), _)) => Ok(response.status_code()),
        Either::Left((Err(e), _)) => Err(e.to_string()),
        Either::Right(_) => Err(format!("no answer within {DELIVERY_TIMEOUT_MS} ms")),
    };
    result
}

async fn deliver_one(env: &Env, delivery: &Delivery) -> std::result::Result<u16, Failure> {
    let kind = DestinationKind::parse(&delivery.kind)
        .ok_or_else(|| Failure::Fatal(format!("unknown destination kind {}", delivery.kind)))?;
    let secret = setting(env, &delivery.secret_var).ok_or_else(|| {
        Failure::Fatal(format!(
            "{} is not set: destination {} cannot be called",
            delivery.secret_var, delivery.destination
        ))
    })?;
    let url = match &delivery.url_var {
        Some(var) => setting(env, var).ok_or_else(|| {
            Failure::Fatal(format!(
                "{var} is not set: destination {} has no URL",
                delivery.destination
            ))
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
            let timestamp = super::now();
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
pub async fn queue(batch: MessageBatch<Delivery>, env: Env, _ctx: WorkerContext) -> Result<()> {
    let dead_letters = batch.queue().ends_with("-dlq");
    let messages: Vec<Message<Delivery>> = match batch.messages() {
        Ok(messages) => messages,
        Err(e) => {
            log("error", "trigger batch unreadable", &e.to_string());
            batch.ack_all();
            return Ok(());
        }
    };
    for message in messages {
        let delivery = message.body();
        if dead_letters {
            console_log!(
                "{}",
                serde_json::json!({"level": "error", "msg": "trigger undeliverable (dead-letter queue)",
                    "id": delivery.id, "destination": delivery.destination, "body": delivery.body})
            );
            message.ack();
            continue;
        }
        match deliver_one(&env, delivery).await {
            Ok(status) => {
                log(
                    "info",
                    "trigger delivered",
                    &format!("{} to {} ({status})", delivery.id, delivery.destination),
                );
                message.ack();
            }
            Err(Failure::Retry(why)) => {
                log(
                    "error",
                    "trigger delivery failed, will retry",
                    &format!("{} to {}: {why}", delivery.id, delivery.destination),
                );
                message.retry();
            }
            Err(Failure::Fatal(why)) => {
                log(
                    "error",
                    "trigger not deliverable",
                    &format!("{} to {}: {why}", delivery.id, delivery.destination),
                );
                message.ack();
            }
        }
    }
    Ok(())
}
