//! One journey per person at the edge (docs/profiles.md): the `Profile` Durable Object
//! and the Worker's side of it.
//!
//! - `object.rs`: the object (one per profile, named by its id in hex; one per
//!   pre-link visitor with waiting triggers, `visitor-<id>`), which loads, asks the core
//!   (`micromoment::profile`), and stores;
//! - `store.rs`: its SQLite storage, the only file that names SQL;
//! - `backend.rs`: the backend API, `/v1/profiles/<id>…`, both halves;
//! - `identity.rs`: identity links (a page to confirm, then the link used once) and
//!   logout;
//! - this file: the Worker's calls to an object, the sync before a linked device's
//!   request (waited at most `MM_PROFILE_WAIT_MS`) and the push after it.
//!
//! A visitor without a profile never reaches a profile object: its request looks up no
//! binding. The Worker never waits on an object longer than its deadline, and a device
//! never fails because of one: a sync that is late or fails leaves the request to the
//! device's own state, and the push after the response makes up for it.

mod backend;
mod identity;
mod object;
mod store;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{de::DeserializeOwned, Serialize};
use worker::{Env, Method, Request, RequestInit};

pub(crate) use backend::backend;
pub(crate) use identity::{confirm_link, forget, open_link};

use super::platform::{self, log, Background};
use micromoment::ids;
pub(crate) use micromoment::profile::wire::route;
use micromoment::profile::wire::{ExchangeWire, Linked, ReplyWire};
use micromoment::profile::{Message, Op, Reply};
use micromoment::session::{Entropy, Opened};
use micromoment::token::Link;

/// The object of a person's profile.
pub(crate) fn profile_object(profile: &[u8; 16]) -> String {
    ids::hex128_string(profile)
}

/// The object a visitor's delayed triggers wait in before it is linked.
pub(crate) fn visitor_object(visitor: &[u8; 16]) -> String {
    format!("visitor-{}", ids::hex128_string(visitor))
}

/// The KV key (namespace `BUNDLES`) that says a visitor's person was erased, and when:
/// the queue's consumer reads it for a visitor's message without creating an object.
pub(crate) fn erased_visitor_key(visitor: &[u8; 16]) -> String {
    format!("erased:{}", ids::hex128_string(visitor))
}

/// How long an erased visitor's KV mark is kept: longer than a message can wait in a
/// queue and its dead-letter queue (at most 14 days each).
pub(crate) const ERASED_MARK_SECS: u64 = 30 * 24 * 3600;

/// The stub of the object `name`, if the binding is there.
fn stub(env: &Env, name: &str) -> Result<worker::Stub, String> {
    env.durable_object("PROFILES")
        .map_err(|_| "PROFILES is not bound (add the Durable Object binding)".to_owned())?
        .id_from_name(name)
        .and_then(|id| id.get_stub())
        .map_err(|e| e.to_string())
}

/// Posts `body` to the object `name`'s `route`; its answer's bytes when it answers 200.
async fn call(
    env: &Env,
    name: &str,
    route: &str,
    body: worker::wasm_bindgen::JsValue,
) -> Result<Vec<u8>, String> {
    let stub = stub(env, name)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(body));
    let request = Request::new_with_init(&format!("https://profile{route}"), &init)
        .map_err(|e| e.to_string())?;
    let mut response = stub
        .fetch_with_request(request)
        .await
        .map_err(|e| e.to_string())?;
    match response.status_code() {
        200 => response.bytes().await.map_err(|e| e.to_string()),
        status => Err(format!("the object answered {status}")),
    }
}

/// Posts `message` as JSON to the object `name`'s `route` and reads its JSON answer.
pub(crate) async fn call_json<T: Serialize, R: DeserializeOwned>(
    env: &Env,
    name: &str,
    route: &str,
    message: &T,
) -> Result<R, String> {
    let body = serde_json::to_string(message).map_err(|e| e.to_string())?;
    let bytes = call(env, name, route, body.into()).await?;
    serde_json::from_slice(&bytes).map_err(|e| format!("the object's answer: {e}"))
}

/// Posts a bincode message to the object `name`'s `route` and reads its reply.
async fn call_wire(env: &Env, name: &str, route: &str, body: Vec<u8>) -> Result<Linked, String> {
    let body = worker::js_sys::Uint8Array::from(body.as_slice()).into();
    let bytes = call(env, name, route, body).await?;
    ReplyWire::decode(&bytes).ok_or_else(|| "the object's answer is unreadable".to_owned())
}

/// Sends a device's exchange to its profile.
async fn exchange(env: &Env, profile: [u8; 16], message: Message) -> Result<Reply, String> {
    match call_wire(
        env,
        &profile_object(&profile),
        route::EXCHANGE,
        ExchangeWire::encode(&message),
    )
    .await?
    {
        Linked::Reply(reply) => Ok(reply),
        Linked::Refused => Err("the object refused an exchange".into()),
    }
}

/// A sync still on its way when the request stopped waiting for it.
pub(crate) type Pending = Pin<Box<dyn Future<Output = Result<Reply, String>>>>;

/// The sync message of a device's state.
fn sync_message(
    opened: &Opened,
    link: Link,
    kind: Option<micromoment::token::DeviceKind>,
    now: i64,
) -> Option<Message> {
    let state = opened.state()?.clone();
    Some(Message {
        op: Op::Sync,
        device: state.visitor,
        seq: link.seq,
        kind,
        now,
        state,
    })
}

/// Gives `opened` its reply: the view adopted, or, when the person's journey is gone
/// for this device, a fresh start.
fn take(opened: &mut Opened, reply: Reply, now: i64) {
    match reply {
        Reply::Synced { view, seq, devices } => opened.adopt(&view, seq, devices),
        Reply::Erased => opened.restart(now, Entropy::Source(&platform::entropy)),
        Reply::Pushed { .. } | Reply::Stale => opened.missed(),
    }
}

/// Syncs a linked device with its profile before the request decides, when it is due
/// (identification, a new visit; a page view or an API call, never an asset), waiting
/// at most `MM_PROFILE_WAIT_MS`. Returns the sync if it is still on its way.
pub(crate) async fn sync(
    env: &Env,
    opened: &mut Opened,
    context: &micromoment::Context,
    now: i64,
) -> Option<Pending> {
    let link = opened.link()?;
    let state = opened.state()?;
    if !micromoment::profile::needs_sync(state, context, now) {
        return None;
    }
    let message = sync_message(opened, link, context.visit_kind(), now)?;
    let wait = Duration::from_millis(platform::config(env).profile_wait_ms);
    let env_owned = env.clone();
    let mut sending: Pending =
        Box::pin(async move { exchange(&env_owned, link.profile, message).await });
    match platform::within(wait, &mut sending).await {
        Some(Ok(reply)) => {
            take(opened, reply, now);
            None
        }
        Some(Err(e)) => {
            log("error", "profile sync failed", &e);
            opened.missed();
            None
        }
        None => {
            log(
                "info",
                "profile sync late, deciding on the device's state",
                &format!("no answer within {} ms", wait.as_millis()),
            );
            opened.missed();
            Some(sending)
        }
    }
}

/// A sync now, whatever is due: a device that opened a link of its own profile gets
/// the person's journey as it is (an e-mail's impressions counted before the page).
pub(crate) async fn refresh(
    env: &Env,
    opened: &mut Opened,
    kind: Option<micromoment::token::DeviceKind>,
    now: i64,
) {
    let Some(link) = opened.link() else { return };
    let Some(message) = sync_message(opened, link, kind, now) else {
        return;
    };
    let wait = Duration::from_millis(platform::config(env).profile_wait_ms);
    match platform::within(wait, exchange(env, link.profile, message)).await {
        Some(Ok(reply)) => take(opened, reply, now),
        Some(Err(e)) => log("error", "profile sync failed", &e),
        None => log("info", "profile sync late", "the device keeps its state"),
    }
}

/// After the response: waits for a late sync, then sends the request's push.
pub(crate) fn push(
    env: &Env,
    bg: &impl Background,
    pending: Option<Pending>,
    push: Option<Message>,
) {
    if pending.is_none() && push.is_none() {
        return;
    }
    let env = env.clone();
    bg.run(Box::pin(async move {
        if let Some(late) = pending {
            if let Err(e) = late.await {
                log("error", "profile sync failed", &e);
            }
        }
        let Some(push) = push else { return };
        let Some(link) = push.state.link else { return };
        if let Err(e) = exchange(&env, link.profile, push).await {
            log("error", "profile push failed", &e);
        }
    }));
}

/// The profiles' part of `/v1/bundle`'s health: whether the `PROFILES` binding is there
/// (without it linked devices decide on their own state) and whether the backend API
/// has its bearer token (without it every call is `401`).
pub(crate) fn health(env: &Env) -> serde_json::Value {
    let binding = if env.durable_object("PROFILES").is_ok() {
        "ok"
    } else {
        "missing"
    };
    serde_json::json!({
        "binding": binding,
        "backend_token": platform::Secret::read(env, "MM_BACKEND_TOKEN").as_str(),
    })
}
