//! Triggers at the edge (DESIGN §11): a request's fired triggers go on the Queue
//! `TRIGGERS` after the response, one message per destination; the queue handler
//! delivers them (Standard Webhooks v1, Segment `track`), retrying failures with the
//! consumer's backoff until the message lands in the dead-letter queue, whose handler
//! logs every message it gets.
//!
//! A trigger with a `delay` waits in a Durable Object alarm: the person's `Profile`
//! object when the device is linked, else one object of the same class per visitor
//! (named `visitor-<id>`). When the alarm rings the waiting deliveries go on the queue.
//! A request or a backend call carrying a trigger's `unless` event cancels what waits
//! for that person; only such requests (and ones that fire a delayed trigger) call the
//! object.

use std::time::Duration;

use futures_util::future::{select, Either};
use worker::{
    console_log, Context as WorkerContext, Env, Fetch, Headers, Message, MessageBatch, MessageExt,
    Method, Request, RequestInit, Result,
};

use serde::{Deserialize, Serialize};

use super::cache::{log, Background};
use crate::bundle::{Bundle, DestinationKind};
use crate::deliver::{self, Delivery};
use crate::ids;
use crate::token::State;

/// How long one delivery may take before it counts as failed (and is retried).
const DELIVERY_TIMEOUT_MS: u64 = 10_000;

/// What a request changes in a person's waiting triggers: deliveries to hold until
/// their delay is over, and `unless` events that cancel what waits.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Waits {
    /// Deliveries with a delay.
    pub add: Vec<Delivery>,
    /// Events of the request that some trigger's `unless` names.
    pub cancel: Vec<String>,
    /// Cancel everything that waits (the person withdrew consent).
    #[serde(default)]
    pub cancel_all: bool,
}

impl Waits {
    fn is_empty(&self) -> bool {
        self.add.is_empty() && self.cancel.is_empty() && !self.cancel_all
    }
}

/// The object a person's delayed triggers wait in: the profile's when the state is
/// linked, else the visitor's own.
pub(crate) fn waits_object(state: &State) -> String {
    match state.link {
        Some(link) => ids::hex128_string(&link.profile),
        None => visitor_object(state),
    }
}

fn visitor_object(state: &State) -> String {
    format!("visitor-{}", ids::hex128_string(&state.visitor))
}

/// What a request cancels of the person's waiting triggers. Only a delayed trigger the
/// state says fired within its delay can be waiting, so a request of someone with
/// nothing waiting calls no object (whatever events it carries, and however many new
/// visitors send them): its `unless` events among the request's cancel it, and a
/// request that withdrew consent (`opted_out`) cancels everything.
pub(crate) fn cancelling<'a>(
    bundle: &Bundle,
    state: &State,
    opted_out: bool,
    now: i64,
    events: impl Iterator<Item = &'a str>,
) -> (Vec<String>, bool) {
    let waiting: Vec<&str> = bundle
        .triggers
        .iter()
        .filter_map(|t| {
            let delay = t.delay?;
            let fired = state.impressions.iter().find(|i| i.id == t.id)?;
            (now.saturating_sub(fired.last_shown) <= delay)
                .then_some(t.unless.as_deref().unwrap_or(""))
        })
        .collect();
    if waiting.is_empty() {
        return (Vec::new(), false);
    }
    if opted_out {
        return (Vec::new(), true);
    }
    let mut out: Vec<String> = Vec::new();
    for event in events {
        if waiting.contains(&event) && !out.iter().any(|e| e == event) {
            out.push(event.to_owned());
        }
    }
    (out, false)
}

/// Enqueues `deliveries` after the response; delayed ones go to the person's object
/// ([`waits_object`]), and what the request cancels ([`cancelling`]) to it and, for a
/// linked device, to the object it used before it was linked too. Without the
/// `TRIGGERS` binding (or `PROFILES`, for delayed ones) they are logged and dropped.
pub(crate) fn enqueue(
    env: &Env,
    ctx: &impl Background,
    deliveries: Vec<Delivery>,
    state: &State,
    (cancel, cancel_all): (Vec<String>, bool),
) {
    let (delayed, now): (Vec<Delivery>, Vec<Delivery>) =
        deliveries.into_iter().partition(|d| d.delay_secs.is_some());
    let waits = Waits {
        add: delayed,
        cancel,
        cancel_all,
    };
    if !waits.is_empty() {
        let env = env.clone();
        let mut objects = vec![waits_object(state)];
        if state.link.is_some() && (!waits.cancel.is_empty() || waits.cancel_all) {
            objects.push(visitor_object(state));
        }
        ctx.run(Box::pin(async move {
            for (i, object) in objects.iter().enumerate() {
                // What is added waits in the first object only.
                let sent = if i == 0 {
                    send_waits(&env, object, &waits).await
                } else {
                    let cancel_only = Waits {
                        add: Vec::new(),
                        cancel: waits.cancel.clone(),
                        cancel_all: waits.cancel_all,
                    };
                    send_waits(&env, object, &cancel_only).await
                };
                if let Err(e) = sent {
                    log(
                        "error",
                        "delayed triggers not recorded",
                        &format!(
                            "{} to wait, {} to cancel: {e}",
                            waits.add.len(),
                            waits.cancel.len()
                        ),
                    );
                }
            }
        }));
    }
    if now.is_empty() {
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
        for delivery in now {
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

/// Hands `waits` to the person's object (`POST https://profile/waits`).
async fn send_waits(env: &Env, object: &str, waits: &Waits) -> std::result::Result<(), String> {
    let namespace = env
        .durable_object("PROFILES")
        .map_err(|_| "PROFILES is not bound".to_owned())?;
    let stub = namespace
        .id_from_name(object)
        .and_then(|id| id.get_stub())
        .map_err(|e| e.to_string())?;
    let body = serde_json::to_string(waits).map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let request =
        Request::new_with_init("https://profile/waits", &init).map_err(|e| e.to_string())?;
    let response = stub
        .fetch_with_request(request)
        .await
        .map_err(|e| e.to_string())?;
    match response.status_code() {
        200 => Ok(()),
        status => Err(format!("the object answered {status}")),
    }
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
