//! The page proxy: the origin's page with its `data-mm-slot` elements filled.
//!
//! Only a successful `GET` of `text/html` is personalized; every other response (other
//! methods, other types, redirects, errors) is the origin's own response, untouched,
//! byte for byte. The page is read (up to [`MAX_PAGE`]) and rewritten by lol_html in
//! one pass that decides each slot as it meets it, in document order, before the
//! `Set-Cookie` header carrying their impressions is sent. Any fault on our side sends
//! the page as the origin made it.

use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    js_sys, web_sys, Context as WorkerContext, Env, Fetch, Method, Request, RequestInit,
    RequestRedirect, Response, ResponseBody, ResponseBuilder, Result, Url,
};

use std::time::Duration;

use super::cache::log;
use super::io::within;
use super::{after_response, attach_token, cache, entropy, error, now, profile, request};
use crate::session::{self, Entropy, Request as SessionRequest};
use futures_util::future::join;

/// The largest page personalized; larger pages pass through untouched.
const MAX_PAGE: usize = 4 * 1024 * 1024;

/// The whole body of a fetched response. `arrayBuffer()` reads it natively in one
/// promise; `Response::bytes` would bring every chunk across the boundary through its
/// own future, a cost per chunk that a page proxy pays on every page.
async fn body_bytes(response: &mut Response) -> Result<Vec<u8>> {
    let ResponseBody::Stream(stream) = response.body() else {
        return response.bytes().await;
    };
    let whole = web_sys::Response::new_with_opt_readable_stream(Some(stream))?;
    let buffer = JsFuture::from(whole.array_buffer()?).await?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// Proxies one request to `ORIGIN`.
pub async fn page(req: Request, env: &Env, ctx: &WorkerContext) -> Result<Response> {
    let Some(origin) = super::config(env).origin.clone() else {
        return error(404, "not found");
    };
    let url = req.url()?;
    let Ok(mut target) = Url::parse(&origin) else {
        return error(502, "ORIGIN is not a valid URL");
    };
    target.set_path(url.path());
    target.set_query(url.query());

    let method = req.method();
    let headers = req.headers().clone();
    // The origin answers for its own host; what reaches it is the visitor's request,
    // less the preview secret, which is ours alone.
    headers.delete("Host")?;
    headers.delete("X-MM-Preview")?;
    let mut init = RequestInit::new();
    init.with_method(method.clone())
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual);
    if !matches!(method, Method::Get | Method::Head) {
        init.with_body(req.inner().body().map(Into::into));
    }
    let incoming = request::read(&req, env);
    let forwarded = Request::new_with_init(target.as_str(), &init)?;
    let timeout = Duration::from_millis(super::config(env).origin_timeout_ms);
    // A linked device's sync runs while the origin answers: it adds nothing to a page
    // that takes longer than the sync, and nothing at all for everybody else.
    let keys = cache::keys(env);
    let personalizable = method == Method::Get;
    let (fetched, prepared) = join(within(timeout, Fetch::Request(forwarded).send()), async {
        if personalizable {
            profile::prepare(env, &incoming, keys.as_deref(), now()).await
        } else {
            profile::Prepared::untouched()
        }
    })
    .await;
    let mut origin_response = match fetched {
        Some(Ok(response)) => response,
        Some(Err(e)) => {
            log("error", "origin unreachable", &e.to_string());
            return error(502, "origin unreachable");
        }
        None => {
            log(
                "error",
                "origin timed out",
                &format!("no response headers within {} ms", timeout.as_millis()),
            );
            return error(504, "origin timed out");
        }
    };

    let status = origin_response.status_code();
    let content_type = origin_response
        .headers()
        .get("Content-Type")?
        .unwrap_or_default();
    let declared_len = origin_response
        .headers()
        .get("Content-Length")?
        .and_then(|l| l.parse::<usize>().ok());
    // Only a whole page: a 206 range or another 2xx passes through.
    let personalize = method == Method::Get
        && status == 200
        && content_type.to_ascii_lowercase().starts_with("text/html")
        && declared_len.is_none_or(|len| len <= MAX_PAGE);
    if !personalize {
        return Ok(origin_response);
    }
    let headers = origin_response.headers().clone();
    let Ok(page) = body_bytes(&mut origin_response).await else {
        return error(502, "origin body unreadable");
    };
    // The body goes out as read (decoded, whole): its old length and encoding are stale.
    for stale in ["Content-Length", "Content-Encoding"] {
        headers.delete(stale)?;
    }
    // `fixed` keeps the headers as set (`from_bytes` would make every page a download).
    let untouched = |page: Vec<u8>| {
        Ok(ResponseBuilder::new()
            .with_status(status)
            .with_headers(headers.clone())
            .fixed(page))
    };
    if page.len() > MAX_PAGE {
        return untouched(page);
    }
    match personalize_page(
        &page,
        headers.clone(),
        status,
        env,
        ctx,
        &incoming,
        prepared,
    )
    .await
    {
        Ok(Some(response)) => Ok(response),
        // Nothing to fill, or a fault of ours: the page as the origin made it.
        Ok(None) | Err(_) => untouched(page),
    }
}

/// Decides and fills a page's slots in one pass; `None` when there is nothing to
/// personalize.
async fn personalize_page(
    page: &[u8],
    headers: worker::Headers,
    status: u16,
    env: &Env,
    ctx: &WorkerContext,
    incoming: &request::Incoming,
    prepared: profile::Prepared,
) -> Result<Option<Response>> {
    let Some(active) = cache::active(env, ctx, now()).await else {
        return Ok(None);
    };
    let keys = cache::keys(env);
    let request = SessionRequest {
        sync: prepared.sync,
        ..SessionRequest::new(
            prepared.visitor(incoming),
            &incoming.context,
            now(),
            Entropy::Source(&entropy),
        )
    };
    let filled = session::personalize(&active.bundle, keys.as_deref(), &request, page);
    let Ok(Some(filled)) = filled else {
        // Nothing decided: a late sync still lands.
        profile::after(env, ctx, prepared.pending, None);
        return Ok(None);
    };
    profile::after(env, ctx, prepared.pending, filled.outcome.push.clone());
    // The body changed: its validators are stale too.
    for stale in ["ETag", "Last-Modified"] {
        headers.delete(stale)?;
    }
    headers.append("Vary", "Cookie")?;
    headers.set("Cache-Control", "private, no-store")?;
    attach_token(&headers, incoming, filled.outcome.token.as_deref())?;
    after_response(
        env,
        ctx,
        &active,
        &filled.outcome.decision,
        &incoming.context,
        &[],
    );
    Ok(Some(
        ResponseBuilder::new()
            .with_status(status)
            .with_headers(headers)
            .fixed(filled.html),
    ))
}
