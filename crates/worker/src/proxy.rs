//! The page proxy: the origin's page with its `data-mm-slot` elements filled.
//!
//! Only a successful `GET` of `text/html` is personalized; every other response (other
//! methods, other types, redirects, errors) is the origin's own response, untouched,
//! byte for byte. The page streams. A path the isolate has met before is decided at
//! once, with the slots its last page had, and streams from its first byte; on a path
//! met for the first time the head is read first (up to [`MAX_HEAD`]) for the slots it
//! announces (`<meta name="mm-slots" content="hero, promo">`). The headers go out with
//! the `Set-Cookie` counting the slots decided, and the body follows through lol_html
//! chunk by chunk as the origin sends it, with no size limit. A slot element met that
//! was not announced (or remembered) keeps the page's own content. A path met for the
//! first time that announces nothing is read whole (up to [`MAX_PAGE`]) and decided as
//! its slots are met; its slots are then remembered, so its next request streams.
//!
//! It must never break a page: any fault on our side sends the page as the origin made
//! it, and a rewriter fault mid-page sends every byte from there on as it came, each
//! once. It never waits for a head whose slots it already knows, and never remembers
//! more of a path than [`html::MAX_ANNOUNCED`] short plain slot names.
use worker::{
    ByteStream, Context as WorkerContext, Env, Fetch, Method, Request, RequestInit,
    RequestRedirect, Response, ResponseBuilder, Result, Url,
};

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;

use super::io;
use super::platform::{self, log, within};
use super::turn::{Syncs, Turn};
use super::{cache, error};
use futures_util::future::{join, select, Either};
use micromoment::html;
use micromoment::session;

/// The largest page read whole (a path met for the first time that announces no
/// slots); a larger one streams through untouched and teaches the isolate its slots.
const MAX_PAGE: usize = 4 * 1024 * 1024;

/// Where a request goes at the origin: `ORIGIN` with the request's path and query;
/// the answer to send instead when there is no origin or it is malformed.
fn origin_target(req: &Request, env: &Env) -> std::result::Result<(Url, Url), Result<Response>> {
    let Some(origin) = platform::config(env).origin.clone() else {
        return Err(error(404, "not found"));
    };
    let url = req.url().map_err(Err)?;
    let Ok(mut target) = Url::parse(&origin) else {
        return Err(error(502, "ORIGIN is not a valid URL"));
    };
    target.set_path(url.path());
    target.set_query(url.query());
    Ok((url, target))
}

/// The request's headers as the origin gets them: less `Host` (the origin answers for
/// its own) and the preview secret, which is ours alone.
fn origin_headers(req: &Request) -> Result<worker::Headers> {
    let headers = req.headers().clone();
    headers.delete("Host")?;
    headers.delete("X-MM-Preview")?;
    Ok(headers)
}

/// A request whose method the `worker` crate cannot name (`QUERY`, WebDAV's): to the
/// origin as it came (less the preview secret), its answer back as it came.
pub async fn pass_through(req: Request, env: &Env) -> Result<Response> {
    let target = match origin_target(&req, env) {
        Ok((_, target)) => target,
        Err(answer) => return answer,
    };
    let headers = origin_headers(&req)?;
    let init = worker::web_sys::RequestInit::new();
    init.set_method(&req.inner().method());
    init.set_headers(headers.as_ref());
    init.set_redirect(worker::web_sys::RequestRedirect::Manual);
    if let Some(body) = req.inner().body() {
        init.set_body(&body);
    }
    let forwarded = worker::web_sys::Request::new_with_str_and_init(target.as_str(), &init)
        .map_err(|e| worker::Error::JsError(format!("{e:?}")))?;
    let timeout = Duration::from_millis(platform::config(env).origin_timeout_ms);
    match within(timeout, Fetch::Request(Request::from(forwarded)).send()).await {
        Some(Ok(response)) => Ok(response),
        Some(Err(e)) => {
            log("error", "origin unreachable", &e.to_string());
            error(502, "origin unreachable")
        }
        None => error(504, "origin timed out"),
    }
}

/// Proxies one request to `ORIGIN`.
pub async fn page(req: Request, env: &Env, ctx: &WorkerContext) -> Result<Response> {
    if platform::config(env).origin.is_none() && platform::dev(env) {
        // No site to personalize, in development: the demo site's pages. (In production
        // an edge without ORIGIN answers its API only.)
        return super::demo::page(req, env, ctx).await;
    }
    let (url, target) = match origin_target(&req, env) {
        Ok(both) => both,
        Err(answer) => return answer,
    };
    let method = req.method();
    let headers = origin_headers(&req)?;
    let mut init = RequestInit::new();
    init.with_method(method.clone())
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual);
    if !matches!(method, Method::Get | Method::Head) {
        init.with_body(req.inner().body().map(Into::into));
    }
    let forwarded = Request::new_with_init(target.as_str(), &init)?;
    let timeout = Duration::from_millis(platform::config(env).origin_timeout_ms);
    // A linked device's sync runs while the origin answers: it adds nothing to a page
    // that takes longer than the sync, and nothing at all for everybody else. Only a
    // page view syncs: a page's images, scripts and API calls do not.
    let (fetched, mut turn) = join(within(timeout, Fetch::Request(forwarded).send()), async {
        if method == Method::Get {
            Turn::begin(&req, env, Syncs::PageViews).await
        } else {
            Turn::open(&req, env)
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
    // Only a whole page: a 206 range or another 2xx passes through.
    let personalize = method == Method::Get
        && status == 200
        && content_type.to_ascii_lowercase().starts_with("text/html");
    if !personalize {
        return Ok(origin_response);
    }
    let headers = origin_response.headers().clone();
    let path = url.path().to_owned();
    // A page whose origin declared its length, uncoded, was all there before its
    // headers went out: one native read of it is cheaper than streaming it chunk by
    // chunk through the Worker (1.2–1.5 ms p50 for 18 KB under local workerd), and
    // costs no first byte. Pages an origin flushes as it renders come chunked, and
    // stream; so do larger ones (memory stays bounded) and coded ones (whose decoded
    // size their length does not bound).
    let declared = headers
        .get("Content-Length")?
        .and_then(|l| l.trim().parse::<usize>().ok());
    let coded = headers
        .get("Content-Encoding")?
        .is_some_and(|c| !c.trim().eq_ignore_ascii_case("identity"));
    for stale in ["Content-Length", "Content-Encoding"] {
        headers.delete(stale)?;
    }
    if declared.is_some_and(|len| len <= MAX_WHOLE) && !coded {
        let page = match io::whole_body(&origin_response).await {
            Ok(page) => page,
            Err(e) => {
                log("error", "origin body unreadable", &e.to_string());
                return error(502, "origin body unreadable");
            }
        };
        return whole(page, &path, headers, status, env, ctx, turn).await;
    }
    let Ok(mut body) = origin_response.stream() else {
        // No body to read: the origin's response as it is.
        return Ok(origin_response);
    };

    // A path whose slots the isolate knows is decided at once and streams from its
    // first byte: waiting for its head would hold the whole page back for as long as
    // the origin takes to finish the head (a news page's inline scripts). A path met
    // for the first time has its head read first, for the slots it announces.
    let remembered = remembered(&path);
    let mut scanner = html::HeadScanner::new();
    let mut read: Vec<Vec<u8>> = Vec::new();
    let mut read_len = 0usize;
    let mut ended = false;
    while remembered.is_none() && !scanner.done() && read_len < MAX_HEAD {
        match body.next().await {
            Some(Ok(chunk)) => {
                let parsed = scanner.write(&chunk);
                read_len += chunk.len();
                read.push(chunk);
                if parsed.is_err() {
                    break;
                }
            }
            Some(Err(e)) => {
                log("error", "origin body unreadable", &e.to_string());
                return error(502, "origin body unreadable");
            }
            None => {
                ended = true;
                break;
            }
        }
    }
    let known = remembered.is_some();
    let names = remembered.unwrap_or_else(|| scanner.slots());

    if names.is_empty() && !known {
        // A path met for the first time, announcing nothing: the page is read whole
        // (up to MAX_PAGE) and decided as its slots are met, and the isolate learns
        // its slots, so that its next request streams.
        while !ended && read_len <= MAX_PAGE {
            match body.next().await {
                Some(Ok(chunk)) => {
                    read_len += chunk.len();
                    read.push(chunk);
                }
                Some(Err(e)) => {
                    log("error", "origin body unreadable", &e.to_string());
                    return error(502, "origin body unreadable");
                }
                None => ended = true,
            }
        }
        if ended {
            let page = read.concat();
            return whole(page, &path, headers, status, env, ctx, turn).await;
        }
        // Larger than MAX_PAGE: it streams through as it is, and teaches its slots.
        turn.abandon(env, ctx);
        return streamed(status, headers, read, body, None, path);
    }

    let active = cache::active(env, ctx, turn.now).await;
    if let Some(active) = &active {
        turn.load_feeds(env, &active.bundle).await;
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let announced = active.as_ref().and_then(|active| {
        session::announce(&active.bundle, turn.keys(), &turn.request(), &refs)
            .map(|announced| (active, announced))
    });
    let Some((active, announced)) = announced else {
        // Nothing the bundle knows: the page streams through as it is.
        turn.abandon(env, ctx);
        return streamed(status, headers, read, body, None, path);
    };
    // The body changes: its validators are stale too.
    for stale in ["ETag", "Last-Modified"] {
        headers.delete(stale)?;
    }
    headers.append("Vary", "Cookie")?;
    headers.set("Cache-Control", "private, no-store")?;
    let filler = announced.filler();
    turn.finish(env, ctx, active, &announced.outcome, &headers, &[])?;
    // What the origin has sent already is taken at once: a page that is all there goes
    // out whole (a native body, as fast as a JS Worker's), one still arriving streams.
    let mut filler = filler;
    while read_len <= MAX_PAGE {
        let next = Box::pin(body.next());
        let now_or_never = Box::pin(platform::now_or_never());
        match select(next, now_or_never).await {
            Either::Left((Some(Ok(chunk)), _)) => {
                read_len += chunk.len();
                read.push(chunk);
            }
            Either::Left((Some(Err(e)), _)) => {
                log("error", "origin body unreadable", &e.to_string());
                return error(502, "origin body unreadable");
            }
            Either::Left((None, _)) => {
                let page = read.concat();
                let mut met: Vec<String> = Vec::new();
                let filled = html::rewrite_each(&page, |name, set| {
                    html::note_slot(&mut met, name);
                    filler.fill(name, set);
                });
                remember(&path, met);
                let html = match filled {
                    Ok(html) => html,
                    Err(e) => {
                        log("error", "page rewriting failed", &e.to_string());
                        page
                    }
                };
                return Ok(ResponseBuilder::new()
                    .with_status(status)
                    .with_headers(headers)
                    .fixed(html));
            }
            // Not there yet: the rest streams as it comes.
            Either::Right(_) => break,
        }
    }
    streamed(status, headers, read, body, Some(filler), path)
}

/// A whole page, read: decided and filled in one pass as its slots are met, and the
/// isolate learns its slots (so that, chunked, its next request streams). Nothing to
/// fill, or a fault of ours: the page as the origin made it.
pub(crate) async fn whole(
    page: Vec<u8>,
    path: &str,
    headers: worker::Headers,
    status: u16,
    env: &Env,
    ctx: &WorkerContext,
    mut turn: Turn,
) -> Result<Response> {
    let filled: Result<Option<Response>> = async {
        let headers = headers.clone();
        let Some(active) = cache::active(env, ctx, turn.now).await else {
            turn.abandon(env, ctx);
            return Ok(None);
        };
        turn.load_feeds(env, &active.bundle).await;
        let filled = session::personalize(&active.bundle, turn.keys(), &turn.request(), &page);
        let Ok(Some(filled)) = filled else {
            // Nothing decided: a late sync still lands.
            turn.abandon(env, ctx);
            return Ok(None);
        };
        remember(
            path,
            filled
                .outcome
                .decision
                .decisions
                .iter()
                .map(|d| d.slot.to_owned())
                .collect(),
        );
        // The body changed: its validators are stale too.
        for stale in ["ETag", "Last-Modified"] {
            headers.delete(stale)?;
        }
        headers.append("Vary", "Cookie")?;
        headers.set("Cache-Control", "private, no-store")?;
        turn.finish(env, ctx, &active, &filled.outcome, &headers, &[])?;
        Ok(Some(
            ResponseBuilder::new()
                .with_status(status)
                .with_headers(headers)
                .fixed(filled.html),
        ))
    }
    .await;
    match filled {
        Ok(Some(response)) => Ok(response),
        Ok(None) | Err(_) => {
            remember(path, html::slot_names(&page));
            Ok(ResponseBuilder::new()
                .with_status(status)
                .with_headers(headers)
                .fixed(page))
        }
    }
}

/// The largest page, of a declared length, read whole (one native read) rather than
/// streamed.
const MAX_WHOLE: usize = 256 * 1024;

/// The longest head read before the page's slots are decided.
const MAX_HEAD: usize = 64 * 1024;

/// The paths whose slots an isolate remembers.
const MAX_REMEMBERED: usize = 1024;

thread_local! {
    /// Per path, the slot names its page had last time (empty: none): at most
    /// `html::MAX_ANNOUNCED`, each of at most `html::MAX_SLOT_NAME` bytes of
    /// `[A-Za-z0-9_-]`, so a page cannot make the isolate keep more than a few KiB per
    /// path.
    static SLOTS_OF: std::cell::RefCell<std::collections::HashMap<String, Vec<String>>> =
        std::cell::RefCell::default();
}

/// The slots the isolate remembers of `path`'s page, if it met the page before.
fn remembered(path: &str) -> Option<Vec<String>> {
    SLOTS_OF.with(|m| m.borrow().get(path).cloned())
}

/// Remembers the slots of `path`'s page: the first [`html::MAX_ANNOUNCED`] slot names
/// ([`html::is_slot_name`]; others are dropped). Bounded: past [`MAX_REMEMBERED`] paths
/// the memory starts over.
fn remember(path: &str, met: Vec<String>) {
    let mut slots = Vec::new();
    for name in &met {
        html::note_slot(&mut slots, name);
    }
    SLOTS_OF.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= MAX_REMEMBERED && !m.contains_key(path) {
            m.clear();
        }
        m.insert(path.to_owned(), slots);
    });
}

/// Where the rewriter writes: what the stream sends next.
struct Sink(Rc<RefCell<Vec<u8>>>);

impl html::OutputSink for Sink {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        self.0.borrow_mut().extend_from_slice(chunk);
    }
}

/// The state of a streamed page.
struct Streaming {
    rewriter: Option<html::SlotRewriter<'static, Sink>>,
    out: Rc<RefCell<Vec<u8>>>,
    read: std::collections::VecDeque<Vec<u8>>,
    body: ByteStream,
    met: Rc<RefCell<Vec<String>>>,
    path: String,
    done: bool,
}

/// The page as a stream: what was read already, then the rest of the body as it
/// arrives, through lol_html chunk by chunk, each slot element filled by `filler` (or
/// none: the page as the origin sent it, byte for byte). The slot names met are
/// remembered for the path when the page ends. Memory is what lol_html holds for one
/// tag, not the page.
fn streamed(
    status: u16,
    headers: worker::Headers,
    read: Vec<Vec<u8>>,
    body: ByteStream,
    filler: Option<session::Filler>,
    path: String,
) -> Result<Response> {
    let out: Rc<RefCell<Vec<u8>>> = Rc::default();
    let met: Rc<RefCell<Vec<String>>> = Rc::default();
    let seen = met.clone();
    let mut filler = filler;
    let rewriter = html::SlotRewriter::each(
        move |name: &str, set: &mut html::SetSlot<'_>| {
            html::note_slot(&mut seen.borrow_mut(), name);
            if let Some(filler) = filler.as_mut() {
                filler.fill(name, set);
            }
        },
        Sink(out.clone()),
    );
    let state = Streaming {
        rewriter: Some(rewriter),
        out,
        read: read.into(),
        body,
        met,
        path,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            let ready = std::mem::take(&mut *st.out.borrow_mut());
            if !ready.is_empty() {
                return Some((Ok::<Vec<u8>, worker::Error>(ready), st));
            }
            if st.done {
                return None;
            }
            let chunk = match st.read.pop_front() {
                Some(chunk) => Some(chunk),
                None => match st.body.next().await {
                    Some(Ok(chunk)) => Some(chunk),
                    Some(Err(e)) => {
                        // The page is cut: the response is aborted, so neither the
                        // browser nor a cache takes the part for the whole.
                        log("error", "origin body failed mid-page", &e.to_string());
                        st.done = true;
                        st.rewriter = None;
                        return Some((Err(e), st));
                    }
                    None => None,
                },
            };
            match (chunk, st.rewriter.as_mut()) {
                (Some(chunk), Some(rewriter)) => {
                    if let Err(e) = rewriter.write(&chunk) {
                        // Past a fault the rest of the page goes out as the origin sent
                        // it. lol_html has already sent every byte it held, this
                        // chunk's too (see `html::HtmlError::sent_input`): sending the
                        // chunk again would double it.
                        log("error", "page rewriting failed mid-page", &e.to_string());
                        st.rewriter = None;
                        if !e.sent_input() {
                            st.out.borrow_mut().extend_from_slice(&chunk);
                        }
                    }
                }
                (Some(chunk), None) => st.out.borrow_mut().extend_from_slice(&chunk),
                (None, _) => {
                    if let Some(rewriter) = st.rewriter.take() {
                        // On a fault here too lol_html has sent what it held.
                        match rewriter.end() {
                            Ok(()) => remember(&st.path, st.met.borrow().clone()),
                            Err(e) => {
                                log("error", "page rewriting failed at its end", &e.to_string())
                            }
                        }
                    }
                    st.done = true;
                }
            }
        }
    });
    ResponseBuilder::new()
        .with_status(status)
        .with_headers(headers)
        .from_stream(stream)
}
