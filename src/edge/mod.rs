//! The Cloudflare Worker: a thin adapter from Workers requests to the core.
//!
//! Routes (DESIGN §7): `/v1/decide`, `/v1/events`, `/v1/explain`, `/v1/bundle`,
//! `/healthz`, and, when `ORIGIN` is set, every other path proxied to the origin with
//! its `data-mm-slot` elements filled. No rule logic lives here: the adapter reads the
//! request, calls `session`, and writes the response. It never turns a fault of ours
//! into a 5xx: bad input is a 400 with a JSON error, anything else serves defaults or
//! the page untouched.

mod cache;
mod io;
mod profile;
mod proxy;
mod request;
mod triggers;

use serde_json::json;
use worker::{
    console_log, event, AnalyticsEngineDataPointBuilder, Context as WorkerContext, Date, Env,
    Headers, Method, Request, Response, ResponseBuilder, Result,
};

use crate::record;
use crate::session::{self, Entropy, Mode, Request as SessionRequest, Shape, Slots};

use cache::Active;
use request::{Incoming, TOKEN_HEADER};

/// The largest `/v1/events` body read.
const MAX_BODY: usize = 16 * 1024;
/// The most events one `/v1/events` call applies.
pub(crate) const MAX_EVENTS: usize = 32;

/// The Worker's vars, read once per isolate: a deployment (or a `wrangler dev` restart)
/// that changes them starts new isolates, and each read crosses into JavaScript.
pub(crate) struct Config {
    /// `MM_DEV=1`: honour the `X-MM-Geo-*` headers and mirror exposures to the log.
    pub dev: bool,
    /// The site the page proxy personalizes.
    pub origin: Option<String>,
    /// How often the isolate checks KV for a new bundle.
    pub recheck_secs: i64,
    /// How long a KV read may take before the last good bundle is kept.
    pub kv_timeout_ms: u64,
    /// How long the origin may take to send its response headers.
    pub origin_timeout_ms: u64,
    /// The preview secret for `/v1/explain`.
    pub preview: Preview,
    /// How long a linked device's request waits for its profile sync.
    pub profile_wait_ms: u64,
    /// How long a backend API call waits for the profile.
    pub backend_timeout_ms: u64,
}

/// The shortest preview secret accepted: a shorter one could be guessed.
pub(crate) const MIN_PREVIEW_SECRET: usize = 16;

/// The `MM_PREVIEW_SECRET`, if it is long enough to be one.
pub(crate) enum Preview {
    Missing,
    TooShort,
    Secret(String),
}

impl Preview {
    fn read(env: &Env) -> Preview {
        let secret = env
            .secret("MM_PREVIEW_SECRET")
            .ok()
            .map(|s| s.to_string())
            .or_else(|| env.var("MM_PREVIEW_SECRET").ok().map(|v| v.to_string()))
            .filter(|s| !s.is_empty());
        match secret {
            None => Preview::Missing,
            Some(s) if s.len() < MIN_PREVIEW_SECRET => {
                cache::log(
                    "error",
                    "MM_PREVIEW_SECRET is shorter than 16 bytes; /v1/explain is off",
                    &format!("{} bytes", s.len()),
                );
                Preview::TooShort
            }
            Some(s) => Preview::Secret(s),
        }
    }

    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Preview::Missing => "missing",
            Preview::TooShort => "too short",
            Preview::Secret(_) => "ok",
        }
    }
}

thread_local! {
    static CONFIG: std::cell::OnceCell<std::rc::Rc<Config>> = const { std::cell::OnceCell::new() };
}

pub(crate) fn config(env: &Env) -> std::rc::Rc<Config> {
    CONFIG.with(|cell| {
        cell.get_or_init(|| {
            let var = |name: &str| {
                env.var(name)
                    .ok()
                    .map(|v| v.to_string())
                    .filter(|v| !v.is_empty())
            };
            let millis = |name: &str, default: u64| {
                var(name)
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .filter(|ms| *ms > 0)
                    .unwrap_or(default)
            };
            std::rc::Rc::new(Config {
                dev: var("MM_DEV").as_deref() == Some("1"),
                origin: var("ORIGIN"),
                recheck_secs: var("MM_BUNDLE_RECHECK_SECS")
                    .and_then(|v| v.parse().ok())
                    .filter(|s: &i64| *s >= 0)
                    .unwrap_or(cache::DEFAULT_RECHECK_SECS),
                kv_timeout_ms: millis("MM_KV_TIMEOUT_MS", 1_000),
                origin_timeout_ms: millis("MM_ORIGIN_TIMEOUT_MS", 15_000),
                preview: Preview::read(env),
                profile_wait_ms: millis("MM_PROFILE_WAIT_MS", crate::profile::PROFILE_WAIT_MS),
                backend_timeout_ms: millis("MM_BACKEND_TIMEOUT_MS", 5_000),
            })
        })
        .clone()
    })
}

pub(crate) fn now() -> i64 {
    DEV_CLOCK
        .with(std::cell::Cell::get)
        .unwrap_or_else(|| i64::try_from(Date::now().as_millis() / 1000).unwrap_or(0))
}

thread_local! {
    /// The clock `X-MM-Now` set for this request, in local development only (`MM_DEV=1`):
    /// a journey over days tried in minutes. An isolate serves one request at a time in
    /// `wrangler dev` as the tests use it; never read outside development.
    static DEV_CLOCK: std::cell::Cell<Option<i64>> = const { std::cell::Cell::new(None) };
}

/// Sets (or clears) the development clock from the request's `X-MM-Now` (RFC 3339).
fn set_dev_clock(req: &Request, env: &Env) {
    let at = request::dev_mode(env)
        .then(|| req.headers().get("X-MM-Now").ok().flatten())
        .flatten()
        .and_then(|text| crate::time::parse_rfc3339(text.trim()).ok());
    DEV_CLOCK.with(|c| c.set(at));
}

/// 128 bits from the platform's CSPRNG, for a new visitor id.
pub(crate) fn entropy() -> [u8; 16] {
    let mut id = [0u8; 16];
    if getrandom::fill(&mut id).is_err() {
        // crypto.getRandomValues does not fail in Workers; should it, the clock still
        // spreads visitors apart rather than failing the request.
        id[..8].copy_from_slice(&Date::now().as_millis().to_le_bytes());
    }
    id
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: WorkerContext) -> Result<Response> {
    set_dev_clock(&req, &env);
    let path = req.path();
    // An identity link on a page: the redirect that links the device (DESIGN §10).
    if req.method() == Method::Get && !path.starts_with("/v1/") {
        if let Some(link) = link_param(&req) {
            let incoming = request::read(&req, &env);
            return profile::open_link(&req, &env, &incoming, &link)
                .or_else(|_| error(400, "identity link could not be read"));
        }
    }
    if let Some(rest) = path.strip_prefix("/v1/profiles/") {
        return profile::backend(req, &env, rest).await;
    }
    let response = match (req.method(), path.as_str()) {
        (Method::Get, "/healthz") => Response::ok("ok"),
        (Method::Post, "/v1/identity/forget") => {
            profile::forget(&req, &env, &request::read(&req, &env))
        }
        (Method::Get, "/v1/bundle") => bundle_info(&env, &ctx).await,
        (Method::Get, "/v1/decide") => decide(&req, &env, &ctx, Mode::Serve).await,
        (Method::Get, "/v1/explain") => explain(&req, &env, &ctx).await,
        (Method::Post, "/v1/events") => events(req, &env, &ctx).await,
        (
            _,
            "/v1/decide"
            | "/v1/explain"
            | "/v1/bundle"
            | "/v1/events"
            | "/healthz"
            | "/v1/identity/forget",
        ) => error(405, "method not allowed"),
        _ => proxy::page(req, &env, &ctx).await,
    };
    // A response we failed to build is still never a 5xx page of ours.
    response.or_else(|e| {
        console_log!(
            "{}",
            json!({"level": "error", "msg": "response failed", "detail": e.to_string()})
        );
        ResponseBuilder::new()
            .with_status(200)
            .with_header("Cache-Control", "no-store")?
            .from_json(&json!({"error": "temporarily unavailable", "decisions": []}))
    })
}

/// The `mm_link` query parameter, if the URL has one.
fn link_param(req: &Request) -> Option<String> {
    let url = req.url().ok()?;
    url.query()?.contains("mm_link=").then_some(())?;
    url.query_pairs()
        .find(|(k, _)| k == "mm_link")
        .map(|(_, v)| v.into_owned())
}

/// A JSON error answer.
fn error(status: u16, message: &str) -> Result<Response> {
    ResponseBuilder::new()
        .with_status(status)
        .with_header("Cache-Control", "no-store")?
        .from_json(&json!({ "error": message }))
}

async fn bundle_info(env: &Env, ctx: &WorkerContext) -> Result<Response> {
    let Some(active) = cache::active(env, ctx, now()).await else {
        return error(503, "no bundle");
    };
    let body = json!({
        "id": active.bundle.id(),
        "version": active.bundle.version(),
        "hash": active.hash,
        "source": active.source.as_str(),
        "loaded_at": crate::time::rfc3339(active.loaded_at),
        "counts": active.bundle.counts(),
        "health": cache::health(env, &config(env).preview),
        "profiles": profile::health(env),
    });
    ResponseBuilder::new()
        .with_header("Cache-Control", "no-store")?
        .from_json(&body)
}

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

/// Sets the new token where the client sent the old one: the `X-MM-Token` header for
/// apps, a cookie for the web.
pub(crate) fn attach_token(
    headers: &Headers,
    incoming: &Incoming,
    token: Option<&str>,
) -> Result<()> {
    let Some(token) = token else { return Ok(()) };
    if incoming.app {
        headers.set(TOKEN_HEADER, token)?;
    } else {
        headers.append("Set-Cookie", &session::set_cookie(token))?;
    }
    Ok(())
}

async fn decide(req: &Request, env: &Env, ctx: &WorkerContext, mode: Mode) -> Result<Response> {
    let now = now();
    let incoming = request::read(req, env);
    let Some(active) = cache::active(env, ctx, now).await else {
        return error(503, "no bundle");
    };
    let names = match slot_names(&incoming) {
        Ok(names) => names,
        Err(message) => return error(400, message),
    };
    let keys = cache::keys(env);
    let prepared = if mode == Mode::Preview {
        profile::Prepared::untouched()
    } else {
        profile::prepare(env, &incoming, keys.as_deref(), now).await
    };
    let request = SessionRequest {
        slots: Slots::Names(&names),
        mode,
        sync: prepared.sync,
        ..SessionRequest::new(
            prepared.visitor(&incoming),
            &incoming.context,
            now,
            Entropy::Source(&entropy),
        )
    };
    let outcome = match session::decide(&active.bundle, keys.as_deref(), &request) {
        Ok(outcome) => outcome,
        Err(unknown) => return error(400, &unknown.to_string()),
    };
    profile::after(env, ctx, prepared.pending, outcome.push.clone());
    // Serialized straight from the decision (a preview's has no token).
    let body = session::Answer::of(&active.bundle, &outcome, Shape::Edge);
    let response = ResponseBuilder::new()
        .with_header("Cache-Control", "private, no-store")?
        .with_header("Vary", "Cookie, X-MM-Token")?
        .from_json(&body)?;
    attach_token(response.headers(), &incoming, outcome.token.as_deref())?;
    // A preview shows what would fire and convert; it records and sends nothing.
    if mode == Mode::Preview {
        return Ok(response);
    }
    // An app's `event` (the only one a GET may carry) is a conversion when a goal names it.
    let event = incoming
        .context
        .event
        .as_deref()
        .map(|name| record::Event { name, value: None });
    after_response(
        env,
        ctx,
        &active,
        &outcome.decision,
        &incoming.context,
        event.as_slice(),
    );
    Ok(response)
}

async fn explain(req: &Request, env: &Env, ctx: &WorkerContext) -> Result<Response> {
    let config = config(env);
    let given = req.headers().get("X-MM-Preview").ok().flatten();
    let allowed = match (&config.preview, &given) {
        (Preview::Secret(s), Some(g)) => constant_time_eq(s.as_bytes(), g.as_bytes()),
        _ => false,
    };
    if !allowed {
        return error(403, "a valid X-MM-Preview header is required");
    }
    decide(req, env, ctx, Mode::Preview).await
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[derive(serde::Deserialize)]
struct EventsBody {
    events: Vec<EventItem>,
}

#[derive(serde::Deserialize)]
struct EventItem {
    name: String,
    /// The event's value (revenue), for goals with `"value": true`.
    #[serde(default)]
    value: Option<f64>,
}

async fn events(req: Request, env: &Env, ctx: &WorkerContext) -> Result<Response> {
    let now = now();
    let incoming = request::read(&req, env);
    let bytes = match io::read_body(&req, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(io::BodyError::TooLarge) => {
            return error(413, &format!("body is over the limit of {MAX_BODY} bytes"))
        }
        Err(io::BodyError::Unreadable(e)) => {
            return error(400, &format!("body could not be read: {e}"))
        }
    };
    let body: EventsBody = match serde_json::from_slice(&bytes) {
        Ok(body) => body,
        Err(e) => {
            return error(
                400,
                &format!("body: expected {{\"events\":[{{\"name\":…}}]}}: {e}"),
            )
        }
    };
    if body.events.len() > MAX_EVENTS {
        return error(
            400,
            &format!(
                "{} events, over the limit of {MAX_EVENTS}",
                body.events.len()
            ),
        );
    }
    if body
        .events
        .iter()
        .any(|e| e.value.is_some_and(|v| !record::value_ok(v)))
    {
        return error(400, "value: a number between -1e9 and 1e9");
    }
    let items: Vec<EventItem> = body
        .events
        .into_iter()
        .filter(|e| !e.name.is_empty() && e.name.len() <= 128)
        .collect();
    let names: Vec<String> = items.iter().map(|e| e.name.clone()).collect();
    let Some(active) = cache::active(env, ctx, now).await else {
        return error(503, "no bundle");
    };
    let keys = cache::keys(env);
    let prepared = profile::prepare(env, &incoming, keys.as_deref(), now).await;
    let request = SessionRequest {
        sync: prepared.sync,
        ..SessionRequest::new(
            prepared.visitor(&incoming),
            &incoming.context,
            now,
            Entropy::Source(&entropy),
        )
    };
    let outcome = session::events(&active.bundle, keys.as_deref(), &request, &names);
    profile::after(env, ctx, prepared.pending, outcome.push.clone());
    let response = ResponseBuilder::new()
        .with_header("Cache-Control", "no-store")?
        .from_json(&json!({"stage": outcome.decision.stage, "token": outcome.token}))?;
    attach_token(response.headers(), &incoming, outcome.token.as_deref())?;
    let events: Vec<record::Event<'_>> = items
        .iter()
        .map(|e| record::Event {
            name: &e.name,
            value: e.value,
        })
        .collect();
    after_response(
        env,
        ctx,
        &active,
        &outcome.decision,
        &incoming.context,
        &events,
    );
    Ok(response)
}

/// What every decided request leaves after its response: its records (exposures and
/// conversions) and its fired triggers' deliveries.
pub(crate) fn after_response(
    env: &Env,
    ctx: &impl cache::Background,
    active: &Active,
    decision: &crate::Decision<'_>,
    context: &crate::Context,
    events: &[record::Event<'_>],
) {
    let records = record::records(&active.bundle, decision, context, events);
    send_records(env, ctx, active, &records);
    let names = events
        .iter()
        .map(|e| e.name)
        .chain(context.event.as_deref());
    let opted_out = crate::decide::opted_out(context, &decision.state);
    triggers::enqueue(
        env,
        ctx,
        crate::deliver::deliveries(&active.bundle, decision, context),
        &decision.state,
        triggers::cancelling(&active.bundle, &decision.state, opted_out, now(), names),
    );
}

/// Sends a request's records (exposures and conversions, `crate::record`) after the
/// response: to Analytics Engine when `EXPOSURES` is bound (the layout of
/// docs/analytics.md), else one JSON log line each, the line `micromoment analyze`
/// reads. In development every record is also logged.
fn send_records(
    env: &Env,
    ctx: &impl cache::Background,
    active: &Active,
    records: &[crate::record::Record<'_>],
) {
    if records.is_empty() {
        return;
    }
    let written: Vec<(String, record::DataPoint)> = records
        .iter()
        .filter_map(|r| {
            let line = serde_json::to_string(r).ok()?;
            Some((line, r.data_point(&active.hash)))
        })
        .collect();
    let dataset = env.analytics_engine("EXPOSURES").ok();
    // In development the dataset is a local stub: mirror every record to the log.
    let mirror = request::dev_mode(env);
    ctx.run(Box::pin(async move {
        for (line, point) in written {
            if mirror {
                console_log!("{line}");
            }
            let sent = dataset.as_ref().is_some_and(|ds| {
                AnalyticsEngineDataPointBuilder::new()
                    .indexes([point.index.as_str()])
                    .blobs(point.blobs)
                    .doubles(point.doubles)
                    .write_to(ds)
                    .is_ok()
            });
            if !sent && !mirror {
                console_log!("{line}");
            }
        }
    }));
}
