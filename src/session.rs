//! One request, start to finish, the same for every face: verify the token (any failure
//! is a new visitor), decide, re-sign, and shape the JSON answer.
//!
//! The Worker, the npm package and `simulate` all call [`decide`] and [`answer`], so
//! they give byte-identical answers for the same inputs. Pure: the clock and the entropy
//! for a new visitor id are inputs.

use serde_json::{json, Value as Json};

use crate::bundle::{Bundle, SlotRef};
use crate::context::Context;
use crate::decide::{self, Decision, Options};
use crate::time::UnixSeconds;
use crate::token::{self, Keys, State, TokenError};
use crate::view::state_to_json;

/// How long a token stays valid after the visitor's last request.
pub const TOKEN_TTL: i64 = token::DEFAULT_TTL;

/// The inputs of one request.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The token text from the `mm` cookie or the `X-MM-Token` header, if any.
    pub token: Option<&'a str>,
    /// The request context.
    pub context: &'a Context,
    /// The slots to decide, in order.
    pub slots: &'a [SlotRef],
    /// The adapter's clock.
    pub now: UnixSeconds,
    /// 128 bits of the adapter's entropy: the id of a new visitor.
    pub entropy: [u8; 16],
    /// Whether to produce the trace.
    pub explain: bool,
}

/// What one request produced.
#[derive(Debug, Clone)]
pub struct Outcome<'b> {
    /// The decision.
    pub decision: Decision<'b>,
    /// The new token, when the state may be written and signing worked.
    pub token: Option<String>,
    /// Why the incoming token was not used, if it was not (for logs and the CLI; never
    /// shown to a client).
    pub token_rejected: Option<TokenError>,
}

/// Verifies a token; the reason when the visitor is to be treated as new. Without keys
/// no token can be trusted.
pub fn verify(
    text: Option<&str>,
    keys: Option<&Keys>,
    now: UnixSeconds,
) -> Result<State, TokenError> {
    match (text, keys) {
        (Some(t), Some(keys)) => token::verify(t, keys, now),
        _ => Err(TokenError::Missing),
    }
}

/// Verifies, decides and re-signs.
pub fn decide<'b>(bundle: &'b Bundle, keys: Option<&Keys>, request: &Request<'_>) -> Outcome<'b> {
    let (prior, token_rejected) = match verify(request.token, keys, request.now) {
        Ok(state) => (Some(state), None),
        Err(TokenError::Missing) => (None, None),
        Err(e) => (None, Some(e)),
    };
    let mut decision = decide::decide(
        bundle,
        prior.as_ref(),
        request.entropy,
        request.context,
        request.now,
        request.slots,
        Options {
            explain: request.explain,
        },
    );
    let token = seal(&mut decision, keys, request.now);
    Outcome {
        decision,
        token,
        token_rejected,
    }
}

/// Gives the decision's new state a fresh sliding expiry and signs it, unless it must
/// not be written (no consent) or there are no keys to sign with.
pub fn seal(decision: &mut Decision<'_>, keys: Option<&Keys>, now: UnixSeconds) -> Option<String> {
    if !decision.persist {
        return None;
    }
    decision.state.reissue(now, TOKEN_TTL);
    token::sign(&decision.state, keys?).ok()
}

/// Applies app events in order (`POST /v1/events`): the request's own signals once
/// (with the first event), then each further event alone, so a path or a UTM tag
/// raises an intent once however many events arrive together. No slot is shown.
pub fn events<'b>(
    bundle: &'b Bundle,
    keys: Option<&Keys>,
    request: &Request<'_>,
    names: &[String],
) -> Outcome<'b> {
    let mut first = request.context.clone();
    first.event = names.first().cloned();
    let mut outcome = decide(
        bundle,
        keys,
        &Request {
            slots: &[],
            context: &first,
            ..request.clone()
        },
    );
    // Later events keep who and where the visitor is, not what this request showed.
    let mut later = request.context.clone();
    later.page.path = None;
    later.page.query.clear();
    later.utm = Default::default();
    later.referrer = Default::default();
    for name in names.iter().skip(1) {
        if !outcome.decision.persist {
            break;
        }
        later.event = Some(name.clone());
        let prior = outcome.decision.state.clone();
        outcome.decision = decide::decide(
            bundle,
            Some(&prior),
            request.entropy,
            &later,
            request.now,
            &[],
            Options::default(),
        );
    }
    outcome.token = seal(&mut outcome.decision, keys, request.now);
    outcome
}

/// The JSON answer: `{stage, decisions, token}`, plus the `trace` when there is one.
/// Tools (`simulate`, the npm package) ask for the full answer, which adds `state` (by
/// names) and the `exposures` to send.
pub fn answer(bundle: &Bundle, outcome: &Outcome<'_>, full: bool) -> Json {
    let decision = &outcome.decision;
    let mut out = json!({
        "stage": decision.stage,
        "decisions": decision.decisions,
        "token": outcome.token,
    });
    if let Some(map) = out.as_object_mut() {
        if full {
            map.insert("state".into(), state_to_json(bundle, &decision.state));
            map.insert(
                "exposures".into(),
                serde_json::to_value(&decision.exposures).unwrap_or(Json::Null),
            );
        }
        if let Some(trace) = &decision.trace {
            map.insert(
                "trace".into(),
                serde_json::to_value(trace).unwrap_or(Json::Null),
            );
        }
    }
    out
}

/// The `Set-Cookie` value carrying a token.
pub fn set_cookie(token: &str) -> String {
    format!(
        "{}={token}; Path=/; Max-Age={TOKEN_TTL}; HttpOnly; Secure; SameSite=Lax",
        token::COOKIE_NAME
    )
}
