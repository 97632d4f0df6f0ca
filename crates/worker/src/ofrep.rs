//! The OpenFeature Remote Evaluation Protocol (docs/ofrep.md): `POST
//! /ofrep/v1/evaluate/flags/{key}` (one slot, as server providers ask) and `POST
//! /ofrep/v1/evaluate/flags` (every slot, as client providers cache and poll). Each is a
//! [`Turn`] like `/v1/decide`'s, the context read from the body by `micromoment::ofrep`;
//! a bulk answer has an ETag, and a poll that would get the same answer with the token it
//! holds gets `304`, recording and writing nothing.

use serde::Serialize;
use worker::{Context as WorkerContext, Env, Request, Response, ResponseBuilder, Result};

use super::cache;
use super::io::{self, BodyError};
use super::request::{self, TOKEN_HEADER};
use super::turn::Turn;
use micromoment::ofrep::{self, Bulk, BulkMetadata, Endpoint, ErrorCode, Failure, Flag};
use micromoment::session::{self, Slots};

/// The largest evaluation request read: a context is a few hundred bytes.
const MAX_BODY: usize = 16 * 1024;

/// The header a poll sends its ETag back in.
const IF_NONE_MATCH: &str = "If-None-Match";

/// An OFREP failure answer: `key` for a single flag's.
fn failure(status: u16, key: Option<&str>, failure: &Failure) -> Result<Response> {
    ResponseBuilder::new()
        .with_status(status)
        .with_header("Cache-Control", "no-store")?
        .from_json(&ofrep::failure_body(key, failure))
}

fn general(status: u16, key: Option<&str>, details: String) -> Result<Response> {
    let response = failure(
        status,
        key,
        &Failure {
            code: ErrorCode::General,
            details,
        },
    )?;
    if status == 503 {
        response.headers().set("Retry-After", "1")?;
    }
    Ok(response)
}

/// A `200` evaluation answer with the headers every one has.
fn answer(body: &impl Serialize) -> Result<Response> {
    ResponseBuilder::new()
        .with_header("Cache-Control", "private, no-store")?
        .with_header("Vary", "Cookie, X-MM-Token")?
        .from_json(body)
}

/// `POST /ofrep/v1/evaluate/flags/{key}` (`key` given) and `POST
/// /ofrep/v1/evaluate/flags`.
pub(crate) async fn evaluate(
    req: &Request,
    env: &Env,
    ctx: &WorkerContext,
    key: Option<&str>,
) -> Result<Response> {
    let endpoint = if key.is_some() {
        Endpoint::Single
    } else {
        Endpoint::Bulk
    };
    let bytes = match io::read_body(req, MAX_BODY).await {
        Ok(bytes) => bytes,
        Err(BodyError::TooLarge) => {
            return general(
                413,
                key,
                format!("body is over the limit of {MAX_BODY} bytes"),
            )
        }
        Err(BodyError::Unreadable(e)) => {
            return failure(
                400,
                key,
                &Failure {
                    code: ErrorCode::ParseError,
                    details: format!("body could not be read: {e}"),
                },
            )
        }
    };
    // The context is the body's too: read it before the profile sync, which looks at it
    // (consent, a crawler), and refuse a bad one before any profile work.
    let mut turn = Turn::open(req, env);
    let has_token = turn.incoming.app_token.is_some();
    if !has_token && request::cross_site(req) {
        // The cookie is the visitor's: another site must neither move their journey nor
        // replace it (a cookie-less POST from another site would set a new one).
        return general(
            403,
            key,
            "evaluations with the journey cookie must come from this site".into(),
        );
    }
    if let Err(refused) = ofrep::apply(&bytes, &mut turn.incoming.context, endpoint, has_token) {
        return failure(400, key, &refused);
    }
    turn.sync(env).await;
    let Some(active) = cache::active(env, ctx, turn.now).await else {
        turn.abandon(env, ctx);
        return general(503, key, "no bundle".into());
    };
    turn.load_feeds(env, &active.bundle).await;
    let names: Vec<&str> = key.into_iter().collect();
    let request = session::Request {
        slots: match key {
            Some(_) => Slots::Names(&names),
            None => Slots::All,
        },
        ..turn.request()
    };
    let outcome = match session::decide(&active.bundle, turn.keys(), &request) {
        Ok(outcome) => outcome,
        Err(unknown) => {
            turn.abandon(env, ctx);
            return failure(
                404,
                key,
                &Failure {
                    code: ErrorCode::FlagNotFound,
                    details: unknown.to_string(),
                },
            );
        }
    };
    let decision = &outcome.decision;
    let token = outcome.token.as_deref();
    let flags: Vec<Flag<'_>> = decision
        .decisions
        .iter()
        .map(|d| Flag::of(d, decision.stage, token))
        .collect();
    let response = match key {
        Some(_) => match flags.first() {
            Some(flag) => answer(flag)?,
            None => {
                turn.abandon(env, ctx);
                return general(404, key, "no decision".into());
            }
        },
        None => {
            let context = &turn.incoming.context;
            let prior = turn.opened.state();
            let unchanged = ofrep::etag(&flags, context, prior);
            let given = req.headers().get(IF_NONE_MATCH).ok().flatten();
            if given.is_some_and(|given| ofrep::matches(&given, &unchanged))
                && ofrep::may_answer_unchanged(prior, turn.now)
            {
                // The client has this answer and the token it goes with: nothing new
                // to show, so nothing is recorded, counted or re-signed.
                let response = ResponseBuilder::new()
                    .with_status(304)
                    .with_header("ETag", &unchanged)?
                    .with_header("Cache-Control", "private, no-store")?
                    .with_header("Vary", "Cookie, X-MM-Token")?
                    .empty();
                turn.abandon(env, ctx);
                return Ok(response);
            }
            // The state as the client's next request will read it from the token (a
            // token keeps less than a decision's state holds).
            let held = token
                .zip(turn.keys())
                .and_then(|(token, keys)| micromoment::token::verify(token, keys, turn.now).ok());
            let tag = ofrep::etag(&flags, context, held.as_ref());
            let body = Bulk {
                flags,
                metadata: BulkMetadata {
                    stage: decision.stage,
                    bundle: active.bundle.id(),
                    version: active.bundle.version(),
                    token,
                },
            };
            let response = answer(&body)?;
            response.headers().set("ETag", &tag)?;
            response
        }
    };
    if let (Some(token), false) = (token, turn.incoming.app) {
        // A page's script on this site sent its cookie: the token goes back in the
        // cookie (below) and in the header an OpenFeature hook can read.
        response.headers().set(TOKEN_HEADER, token)?;
    }
    turn.finish(env, ctx, &active, &outcome, response.headers(), &[])?;
    Ok(response)
}
