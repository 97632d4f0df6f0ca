//! Identity links and logout at the edge (docs/profiles.md, "Linking").
//!
//! `GET …?mm_link=<link>` changes nothing by itself: a link that verifies gets a page
//! asking the person to confirm (`micromoment::confirm`), whose form posts back to the same
//! URL. `POST …?mm_link=<link>` from this site, by a person (not a crawler, not a
//! prefetch), with consent, links the device: the person's object uses the link once
//! (refusing one used, revoked, or older than an erasure) and syncs the device in the
//! same call, and the answer is a `303` to the URL without `mm_link`, with the linked
//! token. A device already linked to the link's profile needs no confirmation: it gets
//! the person's journey as it is now and the page. Anything that fails a check is the
//! page without the link, never an error, and never a cookie.
//!
//! `POST /v1/identity/forget` (logout, from this site only) starts the device as a new
//! visitor and tells the profile the device is gone: its old token never syncs again.

use std::rc::Rc;
use std::time::Duration;

use serde_json::json;
use worker::{Env, Request, Response, ResponseBuilder, Result};

use super::super::request::{self, Incoming};
use super::super::{attach_token, cache, error, platform};
use super::{call_wire, profile_object, route, sync_message, take};
use micromoment::profile::wire::{LinkWire, Linked, Revoke};
use micromoment::session::{self, Entropy};
use micromoment::token::{IdentityLink, Keys};

use platform::log;

/// The URL on this site without `mm_link`: its path and the rest of its query. A path
/// that starts with `//` or `/\` would be read by a browser as another host
/// (`//evil.example/x`): its leading slashes collapse to one.
fn without_link(req: &Request) -> Result<String> {
    let mut clean = req.url()?;
    let kept: Vec<(String, String)> = clean
        .query_pairs()
        .filter(|(k, _)| k != "mm_link")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        clean.set_query(None);
    } else {
        clean.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok(same_site_location(clean.path(), clean.query()))
}

/// The path and query on this site, as a browser cannot read as another host.
pub(crate) fn same_site_location(path: &str, query: Option<&str>) -> String {
    let rest = path.trim_start_matches(['/', '\\']);
    match query {
        Some(q) => format!("/{rest}?{q}"),
        None => format!("/{rest}"),
    }
}

/// A redirect to `location`, telling the next page nothing of where it came from.
fn redirect(status: u16, location: &str) -> Result<Response> {
    Ok(ResponseBuilder::new()
        .with_status(status)
        .with_header("Location", location)?
        .with_header("Cache-Control", "no-store")?
        .with_header("Referrer-Policy", "no-referrer")?
        .fixed(Vec::new()))
}

/// Whether the request is a person's: not a crawler, not a prefetch.
fn by_a_person(incoming: &Incoming) -> bool {
    incoming.context.device.kind != Some(micromoment::context::DeviceType::Bot)
        && !incoming.context.prefetch
}

/// Whether the visitor refused personalization (then no journey token is written).
fn refused(incoming: &Incoming, opened: &session::Opened) -> bool {
    let remembered = opened.state().cloned().unwrap_or_default();
    micromoment::opted_out(&incoming.context, &remembered)
}

/// What opening and confirming a link both ask first: the journey keys, a person (not a
/// crawler, not a prefetch), a link that verifies, and a visitor who has not refused
/// personalization. `None` sends the person to the page without the link.
fn admitted(
    env: &Env,
    incoming: &Incoming,
    text: &str,
    now: i64,
) -> Option<(Rc<Keys>, IdentityLink, session::Opened)> {
    let keys = cache::keys(env)?;
    if !by_a_person(incoming) {
        return None;
    }
    let link = IdentityLink::verify(text, &keys, now)
        .map_err(|e| log("info", "identity link ignored", &e.to_string()))
        .ok()?;
    let opened = session::open(
        incoming.visitor(),
        Some(&keys),
        now,
        Entropy::Source(&platform::entropy),
    );
    if refused(incoming, &opened) {
        log(
            "info",
            "identity link ignored",
            "the visitor refused personalization (Sec-GPC or mm_consent=0)",
        );
        return None;
    }
    Some((keys, link, opened))
}

/// `GET …?mm_link=<link>`.
pub(crate) async fn open_link(
    req: &Request,
    env: &Env,
    incoming: &Incoming,
    text: &str,
) -> Result<Response> {
    let now = platform::now();
    let leave = without_link(req)?;
    let Some((keys, link, mut opened)) = admitted(env, incoming, text, now) else {
        return redirect(302, &leave);
    };
    if opened.link().map(|l| l.profile) == Some(link.profile) {
        // Already this person's device: the person's journey as it is now (what an
        // e-mail counted, say), then the page.
        super::refresh(env, &mut opened, incoming.context.visit_kind(), now).await;
        let response = redirect(302, &leave)?;
        attach_token(
            response.headers(),
            incoming,
            opened.token(Some(&keys), now).as_deref(),
        )?;
        return Ok(response);
    }
    let confirm = match req.url()?.query() {
        Some(q) => format!("{}?{q}", same_site_location(&req.path(), None)),
        None => leave.clone(),
    };
    let accept = req.headers().get("Accept-Language").ok().flatten();
    let page = micromoment::confirm::page(accept.as_deref(), &confirm, &leave);
    Ok(ResponseBuilder::new()
        .with_header("Content-Type", "text/html; charset=utf-8")?
        .with_header("Cache-Control", "no-store")?
        .with_header("Referrer-Policy", "no-referrer")?
        .with_header("Content-Security-Policy", micromoment::confirm::POLICY)?
        .with_header("X-Frame-Options", "DENY")?
        .with_header("X-Robots-Tag", "noindex")?
        .fixed(page.into_bytes()))
}

/// `POST …?mm_link=<link>`: the person confirmed.
pub(crate) async fn confirm_link(
    req: &Request,
    env: &Env,
    incoming: &Incoming,
    text: &str,
) -> Result<Response> {
    let now = platform::now();
    let leave = without_link(req)?;
    if !request::from_this_site(req) {
        return error(403, "an identity link is confirmed from this site only");
    }
    let Some((keys, link, mut opened)) = admitted(env, incoming, text, now) else {
        return redirect(303, &leave);
    };
    opened.link_to(link.profile, now, Entropy::Source(&platform::entropy));
    let (Some(device_link), Some(message)) = (
        opened.link(),
        opened
            .link()
            .and_then(|l| sync_message(&opened, l, incoming.context.visit_kind(), now)),
    ) else {
        return redirect(303, &leave);
    };
    let wait = Duration::from_millis(platform::config(env).backend_timeout_ms);
    let used = platform::within(
        wait,
        call_wire(
            env,
            &profile_object(&device_link.profile),
            route::LINK,
            LinkWire::encode(&link, &message),
        ),
    )
    .await;
    match used {
        Some(Ok(Linked::Reply(reply))) => {
            take(&mut opened, reply, now);
            log(
                "info",
                "identity link used",
                &format!("campaign {}", link.campaign.as_deref().unwrap_or("(none)")),
            );
            let response = redirect(303, &leave)?;
            attach_token(
                response.headers(),
                incoming,
                opened.token(Some(&keys), now).as_deref(),
            )?;
            Ok(response)
        }
        // Used, revoked or older than an erasure: the page, the device as it was.
        Some(Ok(Linked::Refused)) => redirect(303, &leave),
        Some(Err(e)) => {
            log("error", "identity link not used: the profile failed", &e);
            redirect(303, &leave)
        }
        None => {
            log(
                "error",
                "identity link not used: the profile did not answer",
                &format!("{} ms", wait.as_millis()),
            );
            redirect(303, &leave)
        }
    }
}

/// `POST /v1/identity/forget` (logout): the device is unlinked and starts as a new
/// visitor; the profile keeps what the device contributed and refuses its old token.
pub(crate) fn forget(
    req: &Request,
    env: &Env,
    bg: &impl platform::Background,
    incoming: &Incoming,
) -> Result<Response> {
    if request::cross_site(req) {
        // Another site's form must not log the visitor out.
        return error(
            403,
            "a logout must come from this site (Origin or Sec-Fetch-Site)",
        );
    }
    let now = platform::now();
    let keys = cache::keys(env);
    let mut opened = session::open(
        incoming.visitor(),
        keys.as_deref(),
        now,
        Entropy::Source(&platform::entropy),
    );
    if let Some(link) = opened.link() {
        let env = env.clone();
        let revoke = Revoke {
            device: opened.visitor(),
            now,
        };
        bg.run(Box::pin(async move {
            let done: std::result::Result<serde_json::Value, String> =
                super::call_json(&env, &profile_object(&link.profile), route::REVOKE, &revoke)
                    .await;
            if let Err(e) = done {
                log("error", "logout not recorded by the profile", &e);
            }
        }));
    }
    if !incoming.app && refused(incoming, &opened) {
        // No consent: no new token is written, and the linked one is removed.
        let response = ResponseBuilder::new()
            .with_header("Cache-Control", "no-store")?
            .from_json(&json!({"token": null}))?;
        response
            .headers()
            .append("Set-Cookie", &session::clear_cookie())?;
        return Ok(response);
    }
    opened.restart(now, Entropy::Source(&platform::entropy));
    let token = opened.token(keys.as_deref(), now);
    let response = ResponseBuilder::new()
        .with_header("Cache-Control", "no-store")?
        .from_json(&json!({"token": token}))?;
    attach_token(response.headers(), incoming, token.as_deref())?;
    Ok(response)
}
