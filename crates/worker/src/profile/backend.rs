//! The backend API (docs/profiles.md, "Backend API"), both halves: the Worker's route
//! `/v1/profiles/<id>[/events|/decide|/links[/<link id>]]`, which checks the bearer
//! token and the call (`micromoment::calls`) and forwards it to the person's object with a
//! deadline, and what the object does with it.
//!
//! A call that changes the profile may carry an `Idempotency-Key`: retried with the same
//! key (and the same route and body) within 24 hours it gets its first answer again and
//! is applied once; the same key for another call is `422`. The caller is never told a
//! call worked when the object did not answer: it gets `503` with `Retry-After`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::{Env, Method, Request, RequestInit, Response, ResponseBuilder, Result};

use super::object::Profile;
use super::store::Replay;
use super::{erased_visitor_key, profile_object, stub, visitor_object, ERASED_MARK_SECS};
use micromoment::calls::{self, BackendCall, CallError};
use micromoment::context::Channel;
use micromoment::ids;
use micromoment::profile;
use micromoment::profile::wire::{route, Erase};
use micromoment::record::Event;
use micromoment::session::{self, Entropy, Request as SessionRequest, Shape, Slots, Visitor};
use micromoment::token::{DeviceKind, Link};
use micromoment::view::state_to_json;

use super::super::io::{self, BodyError};
use super::super::platform::{self, log};
use super::super::{error, method_not_allowed, records, triggers};

/// The largest backend API body read.
const MAX_BACKEND_BODY: usize = 16 * 1024;

/// A checked call as the Worker hands it to the object: the object reads the same bytes
/// with the same checks.
#[derive(Serialize, Deserialize)]
struct Forwarded {
    now: i64,
    profile: [u8; 16],
    method: String,
    route: String,
    body: String,
    idempotency_key: Option<String>,
}

fn method_named(name: &str) -> calls::Method {
    match name {
        "GET" => calls::Method::Get,
        "POST" => calls::Method::Post,
        "DELETE" => calls::Method::Delete,
        _ => calls::Method::Other,
    }
}

/// The methods a backend route answers, as `Allow` lists them: those `backend_call`
/// does not refuse as a method.
fn allowed(route: &str) -> String {
    [
        ("GET", calls::Method::Get),
        ("POST", calls::Method::Post),
        ("DELETE", calls::Method::Delete),
    ]
    .into_iter()
    .filter(|(_, method)| {
        !matches!(
            calls::backend_call(*method, route, b""),
            Err(CallError::Method)
        )
    })
    .map(|(name, _)| name)
    .collect::<Vec<_>>()
    .join(", ")
}

fn refused(e: &CallError, route: &str) -> Result<Response> {
    match e {
        CallError::Method => method_not_allowed(&allowed(route)),
        CallError::NotFound => error(404, "not found"),
        CallError::Bad(message) => error(400, message),
        _ => error(400, &e.to_string()),
    }
}

/// `/v1/profiles/<rest>`: the Worker's half.
pub(crate) async fn backend(req: Request, env: &Env, rest: &str) -> Result<Response> {
    let secret = platform::Secret::read(env, "MM_BACKEND_TOKEN");
    let given = req.headers().get("Authorization").ok().flatten();
    if !secret.matches(given.as_deref().and_then(|g| g.strip_prefix("Bearer "))) {
        return error(
            401,
            "Authorization: Bearer <MM_BACKEND_TOKEN> is required (the secret must be set, at least 16 bytes)",
        );
    }
    let (id, route_rest) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(profile_id) = ids::parse_hex128(id) else {
        return error(400, "profile id: expected 32 hexadecimal digits");
    };
    let idempotency_key =
        match calls::idempotency_key(req.headers().get("Idempotency-Key").ok().flatten()) {
            Ok(key) => key,
            Err(e) => return refused(&e, route_rest),
        };
    let method = req.method();
    let body = if method == Method::Post {
        match io::read_body(&req, MAX_BACKEND_BODY).await {
            Ok(bytes) => bytes,
            Err(BodyError::TooLarge) => {
                return error(
                    413,
                    &format!("body is over the limit of {MAX_BACKEND_BODY} bytes"),
                )
            }
            Err(BodyError::Unreadable(e)) => {
                return error(400, &format!("body could not be read: {e}"))
            }
        }
    } else {
        Vec::new()
    };
    if let Err(e) = calls::backend_call(method_named(&req.inner().method()), route_rest, &body) {
        return refused(&e, route_rest);
    }
    let forwarded = Forwarded {
        now: platform::now(),
        profile: profile_id,
        method: method.to_string(),
        route: route_rest.to_owned(),
        // It parsed as JSON (or is empty): it is UTF-8.
        body: String::from_utf8(body).unwrap_or_default(),
        idempotency_key,
    };
    // The caller is told to retry, never that it worked. An object that answers late
    // may still apply the call: a retry with the same `Idempotency-Key` is applied
    // once.
    const NOT_APPLIED: &str =
        "profile unavailable; the call may not have been applied: retry with the same Idempotency-Key";
    let unavailable = |message: &str| -> Result<Response> {
        ResponseBuilder::new()
            .with_status(503)
            .with_header("Retry-After", "1")?
            .with_header("Cache-Control", "no-store")?
            .from_json(&json!({ "error": message }))
    };
    let stub = match stub(env, &profile_object(&profile_id)) {
        Ok(stub) => stub,
        Err(e) => return unavailable(&e),
    };
    let mut init = RequestInit::new();
    let text = serde_json::to_string(&forwarded).unwrap_or_default();
    init.with_method(Method::Post).with_body(Some(text.into()));
    let request = Request::new_with_init(&format!("https://profile{}", route::BACKEND), &init)?;
    let wait = Duration::from_millis(platform::config(env).backend_timeout_ms);
    match platform::within(wait, stub.fetch_with_request(request)).await {
        Some(Ok(response)) if response.status_code() < 500 => Ok(response),
        // The object's own 503 (an erasure that did not reach every device, no bundle):
        // its message, with the retry every 503 here carries.
        Some(Ok(mut response)) if response.status_code() == 503 => {
            let said = response.json::<serde_json::Value>().await.ok();
            match said.as_ref().and_then(|body| body.get("error")?.as_str()) {
                Some(message) => unavailable(message),
                None => unavailable(NOT_APPLIED),
            }
        }
        Some(Ok(response)) => {
            log(
                "error",
                "profile failed a backend call",
                &response.status_code().to_string(),
            );
            unavailable(NOT_APPLIED)
        }
        Some(Err(e)) => {
            log("error", "profile unavailable", &e.to_string());
            unavailable(NOT_APPLIED)
        }
        None => unavailable("profile did not answer in time; the call may not have been applied: retry with the same Idempotency-Key"),
    }
}

fn no_store(body: &serde_json::Value) -> Result<Response> {
    ResponseBuilder::new()
        .with_header("Cache-Control", "no-store")?
        .from_json(body)
}

fn backend_name(id: &[u8; 16]) -> String {
    if *id == profile::RETIRED {
        return "retired".into();
    }
    let code = id.last().copied().unwrap_or(0);
    Channel::from_code(code).map_or("backend".into(), |c| format!("backend:{}", c.as_str()))
}

fn stage_name<'b>(bundle: &'b micromoment::Bundle, state: &micromoment::token::State) -> &'b str {
    let index = state
        .stage
        .and_then(|id| bundle.stages.iter().position(|s| s.id == id))
        .unwrap_or(0);
    bundle.stages.get(index).map_or("", |s| s.name.as_str())
}

impl Profile {
    /// The object's half: the call read again, applied, stored, answered.
    pub(super) async fn backend(&self, bytes: &[u8]) -> Result<Response> {
        let forwarded: Forwarded = match serde_json::from_slice(bytes) {
            Ok(f) => f,
            Err(e) => return error(400, &e.to_string()),
        };
        let call = match calls::backend_call(
            method_named(&forwarded.method),
            &forwarded.route,
            forwarded.body.as_bytes(),
        ) {
            Ok(call) => call,
            Err(e) => return refused(&e, &forwarded.route),
        };
        let now = forwarded.now;
        let hex = ids::hex128_string(&forwarded.profile);
        let Some(active) = self.bundle(now).await else {
            return error(503, "no bundle");
        };
        let bundle = &active.bundle;
        let before = self.load()?;
        let mut after = before.clone();
        match call {
            BackendCall::Get => {
                if !before.exists() {
                    return error(404, "no such profile");
                }
                let mut view = before.view(bundle, now);
                // The person's state is a linked one: shown with what only linked
                // states carry (visits per device type, the last channel).
                view.link = Some(Link {
                    profile: forwarded.profile,
                    seq: 0,
                    devices: before.device_count(),
                    linked_at: 0,
                });
                let devices: Vec<serde_json::Value> = before
                    .devices
                    .iter()
                    .filter(|d| d.id != profile::RETIRED)
                    .map(|d| {
                        json!({
                            "device": if profile::is_backend(&d.id) {
                                backend_name(&d.id)
                            } else {
                                ids::hex128_string(&d.id)
                            },
                            "kind": d.kind.map(DeviceKind::as_str),
                            "visits": d.own.visits,
                            "seen_at": micromoment::time::rfc3339(d.seen_at),
                        })
                    })
                    .collect();
                return no_store(&json!({
                    "profile": hex,
                    "devices": before.device_count(),
                    "records": devices,
                    "stage": stage_name(bundle, &view),
                    "state": state_to_json(bundle, &view),
                }));
            }
            BackendCall::Erase => return self.erase(&hex, &before, now).await,
            BackendCall::RevokeLink { id } => {
                after.revoke_link(id, now);
                self.save(&before, &after, now)?;
                return no_store(
                    &json!({"profile": hex, "link": ids::hex128_string(&id), "revoked": true}),
                );
            }
            BackendCall::RevokeLinks => {
                after.revoke_links(now);
                self.save(&before, &after, now)?;
                return no_store(
                    &json!({"profile": hex, "links_valid_after": micromoment::time::rfc3339(now)}),
                );
            }
            BackendCall::Events { .. } | BackendCall::Decide { .. } => {}
        }
        let store = self.store();
        let fingerprint = calls::fingerprint(&forwarded.route, forwarded.body.as_bytes());
        if let Some(key) = forwarded.idempotency_key.as_deref() {
            match store.replayed(key, &fingerprint, now)? {
                Replay::First => {}
                Replay::Same(answer) => {
                    return Ok(ResponseBuilder::new()
                        .with_header("Cache-Control", "no-store")?
                        .with_header("Idempotent-Replayed", "true")?
                        .with_header("Content-Type", "application/json")?
                        .fixed(answer.into_bytes()))
                }
                Replay::Conflict => return error(
                    422,
                    "Idempotency-Key was used for another call in the last 24 hours: use a new key",
                ),
            }
        }
        let (channel, context) = match &call {
            BackendCall::Events {
                channel, context, ..
            }
            | BackendCall::Decide {
                channel, context, ..
            } => (*channel, context),
            _ => return error(400, "unknown backend call"),
        };
        let mut context = context.clone();
        context.channel = channel;
        let mut prior = after.backend_prior(bundle, channel, now);
        prior.visitor = forwarded.profile;
        prior.link = Some(Link {
            profile: forwarded.profile,
            seq: 0,
            devices: after.device_count(),
            linked_at: now,
        });
        let request = SessionRequest::new(
            Visitor::State(&prior),
            &context,
            now,
            Entropy::Fixed(forwarded.profile),
        );
        let (answer, outcome, events) = match &call {
            BackendCall::Events {
                events, segments, ..
            } => {
                let names: Vec<String> = events.iter().map(|e| e.name.clone()).collect();
                let outcome = session::events(bundle, None, &request, &names);
                let mut next = outcome.decision.state.clone();
                segments.apply_adds(&mut next);
                after.backend_record(bundle, channel, &prior, &next, now);
                for s in &segments.remove {
                    after.remove_segment(s);
                }
                let answer = json!({
                    "profile": hex,
                    "stage": outcome.decision.stage,
                    "devices": after.device_count(),
                });
                (answer, outcome, events.as_slice())
            }
            BackendCall::Decide { slots, .. } => {
                let names: Vec<&str> = slots.iter().map(String::as_str).collect();
                let request = SessionRequest {
                    slots: Slots::Names(&names),
                    ..request
                };
                let outcome = match session::decide(bundle, None, &request) {
                    Ok(outcome) => outcome,
                    Err(unknown) => return error(400, &unknown.to_string()),
                };
                after.backend_record(bundle, channel, &prior, &outcome.decision.state, now);
                (
                    session::answer(bundle, &outcome, Shape::Edge),
                    outcome,
                    &[][..],
                )
            }
            _ => return error(400, "unknown backend call"),
        };
        self.save(&before, &after, now)?;
        let text = answer.to_string();
        if let Some(key) = forwarded.idempotency_key.as_deref() {
            store.remember(key, &fingerprint, &text, now)?;
        }
        // Records and triggers only once what they report is stored.
        let events: Vec<Event<'_>> = events
            .iter()
            .map(|e| Event {
                name: &e.name,
                value: e.value,
            })
            .collect();
        records::send(
            &self.env,
            &self.state,
            &active,
            &outcome.decision,
            &context,
            &events,
        );
        let deliveries = micromoment::deliver::deliveries(bundle, &outcome.decision, &context);
        let names = events.iter().map(|e| e.name);
        let opted_out = micromoment::opted_out(&context, &outcome.decision.state);
        let plan = triggers::plan(
            bundle,
            deliveries,
            &outcome.decision.state,
            opted_out,
            now,
            names,
        );
        // The person's own fires are this object's: handled here, not sent to itself.
        for (object, fire) in plan.objects {
            if object == hex {
                self.fire(fire).await?;
            }
        }
        triggers::enqueue(&self.env, plan.queue).await;
        Ok(ResponseBuilder::new()
            .with_header("Cache-Control", "no-store")?
            .with_header("Content-Type", "application/json")?
            .fixed(text.into_bytes()))
    }

    /// Erases the person for good: everything here but the erasure mark, and what waits
    /// in the pre-link objects of every device that ever joined (so no delayed trigger
    /// of theirs is sent, and the queue drops what is on its way). The pre-link objects
    /// are told at once, in parallel, within the backend's deadline; each one that
    /// acknowledges is crossed off, and one that does not makes the call a `503` to
    /// retry: the retry reaches the ones still left.
    async fn erase(&self, hex: &str, before: &profile::Profile, now: i64) -> Result<Response> {
        let store = self.store();
        let joined: Vec<[u8; 16]> = before
            .devices
            .iter()
            .map(|d| d.id)
            .filter(|id| !profile::is_backend(id))
            .collect();
        store.remember_visitors(&joined, now)?;
        let mut after = before.clone();
        after.erase(now);
        let answer = json!({"profile": hex, "erased": true});
        store.erase(&answer.to_string())?;
        self.forget_cached();
        self.save(&profile::Profile::default(), &after, now)?;
        self.state.storage().delete_alarm().await?;
        let visitors = store.visitors()?;
        let wait = Duration::from_millis(platform::config(&self.env).backend_timeout_ms);
        let kv = self.env.kv("BUNDLES").ok();
        let told = futures_util::future::join_all(visitors.iter().map(|visitor| {
            let kv = kv.as_ref();
            async move {
                // The mark the queue reads for this device's own messages (sent before it
                // was linked), then its object, which drops what waits there.
                let marked =
                    match kv.map(|kv| kv.put(&erased_visitor_key(visitor), now.to_string())) {
                        Some(Ok(put)) => put
                            .expiration_ttl(ERASED_MARK_SECS)
                            .execute()
                            .await
                            .map_err(|e| e.to_string()),
                        Some(Err(e)) => Err(e.to_string()),
                        None => Err("BUNDLES is not bound".to_owned()),
                    };
                let told: std::result::Result<serde_json::Value, String> = match marked {
                    Ok(()) => {
                        super::call_json(
                            &self.env,
                            &visitor_object(visitor),
                            route::ERASE,
                            &Erase { now },
                        )
                        .await
                    }
                    Err(e) => Err(e),
                };
                (*visitor, told)
            }
        }));
        let mut unreached = visitors.len();
        if let Some(results) = platform::within(wait, told).await {
            for (visitor, told) in results {
                match told {
                    Ok(_) => {
                        store.forget_visitor(&visitor)?;
                        unreached -= 1;
                    }
                    Err(e) => log("error", "erasure did not reach a pre-link object", &e),
                }
            }
        }
        if unreached > 0 {
            return ResponseBuilder::new()
                .with_status(503)
                .with_header("Retry-After", "1")?
                .with_header("Cache-Control", "no-store")?
                .from_json(&json!({
                    "error": format!("the profile is erased; {unreached} of its devices' pre-link objects did not answer: retry the DELETE"),
                }));
        }
        no_store(&answer)
    }
}
