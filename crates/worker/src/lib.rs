//! The Cloudflare Worker: a thin adapter from Workers requests to the core.
//!
//! This file is the route table (docs/api.md); each room has one job:
//! - `platform.rs`: the only file that knows the platform's clock, entropy, vars and
//!   secrets, console and deadlines;
//! - `request.rs`: a request read into what the core needs; `io.rs`: bounded bodies;
//! - `turn.rs`: one request's lifecycle (open the visitor, sync, decide, finish), the
//!   same for the API (`api.rs`) and the page proxy (`proxy.rs`);
//! - `cache.rs`: the isolate's bundle and keys; `records.rs`: analytics after the
//!   response; `triggers.rs`: fired triggers after the response; `queue.rs`: their
//!   delivery;
//! - `profile/`: the `Profile` Durable Object, the backend API, identity links, logout;
//! - `ofrep.rs`: the OpenFeature Remote Evaluation Protocol for apps;
//! - `feeds/`: live data (stock, stores): the ingest route, the `Feed` Durable Object,
//!   and the isolate's copy each request reads.
//!
//! No rule logic lives here. The Worker never turns a fault of ours into a 5xx: bad
//! input is a 400 with a JSON error, anything else serves defaults or the page
//! untouched.

mod api;
mod cache;
mod demo;
mod feeds;
mod io;
mod ofrep;
mod platform;
mod profile;
mod proxy;
mod queue;
mod records;
mod request;
mod triggers;
mod turn;

use percent_encoding::percent_decode_str;
use serde_json::json;
use worker::{
    event, Context as WorkerContext, Env, Headers, Method, Request, Response, ResponseBuilder,
    Result,
};

use micromoment::session::{self, Mode};
use request::{Incoming, TOKEN_HEADER};

/// The API's description (OpenAPI 3.1), served at `/openapi.yaml`.
const OPENAPI: &str = include_str!("../../../openapi.yaml");

/// Where OFREP's evaluation routes start.
const OFREP_FLAGS: &str = "/ofrep/v1/evaluate/flags";

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: WorkerContext) -> Result<Response> {
    platform::set_dev_clock(&req, &env);
    let response = route(req, &env, &ctx).await;
    // A response we failed to build is still never a 5xx page of ours.
    response.or_else(|e| {
        platform::log("error", "response failed", &e.to_string());
        ResponseBuilder::new()
            .with_status(200)
            .with_header("Cache-Control", "no-store")?
            .from_json(&json!({"error": "temporarily unavailable", "decisions": []}))
    })
}

/// The methods each of the Worker's own paths takes, as `Allow` lists them; `None` for
/// a path of the site (the page proxy's).
fn own_methods(path: &str) -> Option<&'static str> {
    match path {
        "/v1/decide" | "/v1/explain" | "/v1/bundle" | "/healthz" | "/openapi.yaml" => Some("GET"),
        "/v1/events" | "/v1/identity/forget" => Some("POST"),
        OFREP_FLAGS => Some("POST"),
        _ if path
            .strip_prefix(OFREP_FLAGS)
            .is_some_and(|key| key.starts_with('/')) =>
        {
            Some("POST")
        }
        _ if path.starts_with("/v1/profiles/") => Some("GET, POST, DELETE"),
        _ if path.starts_with("/v1/feeds/") => Some("GET, PUT"),
        _ => None,
    }
}

async fn route(req: Request, env: &Env, ctx: &WorkerContext) -> Result<Response> {
    let path = req.path();
    // The `worker` crate reads a method it does not name (`QUERY`, WebDAV's) as GET: such
    // a request is none of ours, and goes to the origin as it came.
    let Some(method) = request::method(&req) else {
        return match own_methods(&path) {
            Some(allow) => method_not_allowed(allow),
            None => proxy::pass_through(req, env).await,
        };
    };
    // An identity link on a page: a page to confirm it, then the confirmation.
    if !path.starts_with("/v1/") && own_methods(&path).is_none() {
        if let Some(link) = link_param(&req) {
            let incoming = request::read(&req, env);
            return match method {
                Method::Get => profile::open_link(&req, env, &incoming, &link).await,
                Method::Post => profile::confirm_link(&req, env, &incoming, &link).await,
                _ => method_not_allowed("GET, POST"),
            };
        }
    }
    if let Some(rest) = path.strip_prefix("/v1/profiles/") {
        return profile::backend(req, env, rest).await;
    }
    if let Some(name) = path.strip_prefix("/v1/feeds/") {
        let name = percent_decode_str(name).decode_utf8_lossy().into_owned();
        return feeds::route(req, env, ctx, &name).await;
    }
    if let Some(rest) = path.strip_prefix(OFREP_FLAGS) {
        let key = match rest.strip_prefix('/') {
            Some(key) => Some(percent_decode_str(key).decode_utf8_lossy().into_owned()),
            None if rest.is_empty() => None,
            // `/ofrep/v1/evaluate/flagsX`: not the protocol's.
            None => return proxy::page(req, env, ctx).await,
        };
        if method != Method::Post {
            return method_not_allowed("POST");
        }
        return ofrep::evaluate(&req, env, ctx, key.as_deref()).await;
    }
    match (method, path.as_str()) {
        (Method::Get, "/healthz") => Response::ok("ok"),
        (Method::Get, "/openapi.yaml") => Ok(ResponseBuilder::new()
            .with_header("Content-Type", "application/yaml")?
            .with_header("Cache-Control", "public, max-age=300")?
            .fixed(OPENAPI.as_bytes().to_vec())),
        (Method::Get, "/v1/bundle") => api::bundle(env, ctx).await,
        (Method::Get, "/v1/decide") => api::decide(&req, env, ctx, Mode::Serve).await,
        (Method::Get, "/v1/explain") => api::explain(&req, env, ctx).await,
        (Method::Post, "/v1/events") => api::events(&req, env, ctx).await,
        (Method::Post, "/v1/identity/forget") => {
            profile::forget(&req, env, ctx, &request::read(&req, env))
        }
        (_, path) => match own_methods(path) {
            Some(allow) => method_not_allowed(allow),
            None => proxy::page(req, env, ctx).await,
        },
    }
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
pub(crate) fn error(status: u16, message: &str) -> Result<Response> {
    ResponseBuilder::new()
        .with_status(status)
        .with_header("Cache-Control", "no-store")?
        .from_json(&json!({ "error": message }))
}

/// `405` with the `Allow` header HTTP asks of it.
pub(crate) fn method_not_allowed(allow: &str) -> Result<Response> {
    let response = error(405, "method not allowed")?;
    response.headers().set("Allow", allow)?;
    Ok(response)
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
