//! The JSON API for apps and pages' scripts (docs/api.md): `/v1/decide`,
//! `/v1/explain`, `/v1/events`, `/v1/bundle`. Each is a [`Turn`] around one call of
//! `session`; bad input is a `400` with a JSON error, never a 5xx.

use serde_json::json;
use worker::{Context as WorkerContext, Env, Request, Response, ResponseBuilder, Result};

use super::io::{self, BodyError};
use super::platform;
use super::request::{self, Incoming};
use super::turn::{Syncs, Turn};
use super::{cache, error, profile};
use micromoment::record::Event;
use micromoment::session::{self, Mode, Shape, Slots};

/// The largest `/v1/events` body read.
const MAX_BODY: usize = 16 * 1024;

/// The slot names of `?slots=hero,sidebar`, or why there are none (a 400).
fn slot_names(incoming: &Incoming) -> std::result::Result<Vec<&str>, &'static str> {
    let Some((_, list)) = incoming.query.iter().find(|(k, _)| k == "slots") else {
        return Err("slots: required, e.g. ?slots=hero,sidebar");
    };
    let names: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if names.is_empty() {
        return Err("slots: name at least one slot");
    }
    Ok(names)
}

/// `GET /v1/decide` (`Mode::Serve`) and, with the preview secret, `/v1/explain`
/// (`Mode::Preview`: the trace, nothing written or recorded, no profile work).
pub(crate) async fn decide(
    req: &Request,
    env: &Env,
    ctx: &WorkerContext,
    mode: Mode,
) -> Result<Response> {
    let mut turn = if mode == Mode::Preview {
        Turn::open(req, env)
    } else {
        Turn::begin(req, env, Syncs::Always).await
    };
    let Some(active) = cache::active(env, ctx, turn.now).await else {
        return error(503, "no bundle");
    };
    turn.load_feeds(env, &active.bundle).await;
    let names = match slot_names(&turn.incoming) {
        Ok(names) => names,
        Err(message) => return error(400, message),
    };
    let request = session::Request {
        slots: Slots::Names(&names),
        mode,
        ..turn.request()
    };
    let outcome = match session::decide(&active.bundle, turn.keys(), &request) {
        Ok(outcome) => outcome,
        Err(unknown) => return error(400, &unknown.to_string()),
    };
    // Serialized straight from the decision (a preview's has no token).
    let body = session::Answer::of(&active.bundle, &outcome, Shape::Edge);
    let response = ResponseBuilder::new()
        .with_header("Cache-Control", "private, no-store")?
        .with_header("Vary", "Cookie, X-MM-Token")?
        .from_json(&body)?;
    if mode == Mode::Preview {
        // A preview shows what would fire and convert; it records and sends nothing.
        return Ok(response);
    }
    turn.finish(env, ctx, &active, &outcome, response.headers(), &[])?;
    Ok(response)
}

/// `GET /v1/explain`: `/v1/decide` with the trace, for whoever has `X-MM-Preview`.
pub(crate) async fn explain(req: &Request, env: &Env, ctx: &WorkerContext) -> Result<Response> {
    let given = req.headers().get("X-MM-Preview").ok().flatten();
    if !platform::config(env).preview.matches(given.as_deref()) {
        return error(403, "a valid X-MM-Preview header is required");
    }
    decide(req, env, ctx, Mode::Preview).await
}

/// `POST /v1/events`: the app's events applied in order; conversions recorded.
pub(crate) async fn events(req: &Request, env: &Env, ctx: &WorkerContext) -> Result<Response> {
    // An empty `X-MM-Token` is no token: the cookie would be read, so the check holds.
    if req
        .headers()
        .get(request::TOKEN_HEADER)
        .ok()
        .flatten()
        .is_none_or(|token| token.is_empty())
        && request::cross_site(req)
    {
        // The cookie is the visitor's: another site's form must not move their journey.
        return error(
            403,
            "events with the journey cookie must come from this site",
        );
    }
    let bytes = match io::read_body(req, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge) => {
            return error(413, &format!("body is over the limit of {MAX_BODY} bytes"))
        }
        Err(BodyError::Unreadable(e)) => {
            return error(400, &format!("body could not be read: {e}"))
        }
    };
    let items = match micromoment::calls::device_events(&bytes) {
        Ok(items) => items,
        Err(message) => return error(400, &message),
    };
    let turn = Turn::begin(req, env, Syncs::Always).await;
    let Some(active) = cache::active(env, ctx, turn.now).await else {
        turn.abandon(env, ctx);
        return error(503, "no bundle");
    };
    let names: Vec<String> = items.iter().map(|e| e.name.clone()).collect();
    let outcome = session::events(&active.bundle, turn.keys(), &turn.request(), &names);
    let response = ResponseBuilder::new()
        .with_header("Cache-Control", "no-store")?
        .from_json(&json!({"stage": outcome.decision.stage, "token": outcome.token}))?;
    let events: Vec<Event<'_>> = items
        .iter()
        .map(|e| Event {
            name: &e.name,
            value: e.value,
        })
        .collect();
    turn.finish(env, ctx, &active, &outcome, response.headers(), &events)?;
    Ok(response)
}

/// `GET /v1/bundle`: the active bundle and the health a monitor alerts on. Never a
/// secret: a key's id, a count, a status.
pub(crate) async fn bundle(env: &Env, ctx: &WorkerContext) -> Result<Response> {
    let Some(active) = cache::active(env, ctx, platform::now()).await else {
        return error(503, "no bundle");
    };
    let body = json!({
        "id": active.bundle.id(),
        "version": active.bundle.version(),
        "hash": active.hash,
        "source": active.source.as_str(),
        "loaded_at": micromoment::time::rfc3339(active.loaded_at),
        "counts": active.bundle.counts(),
        "health": cache::health(env, &platform::config(env).preview),
        "profiles": profile::health(env),
    });
    ResponseBuilder::new()
        .with_header("Cache-Control", "no-store")?
        .from_json(&body)
}
