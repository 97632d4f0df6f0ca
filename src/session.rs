//! One request, start to finish, the same for every face: verify the token (any failure
//! is a new visitor), decide, re-sign, and shape the JSON answer.
//!
//! The Worker, the npm package and `simulate` all call [`decide`] and [`answer`], so
//! they give byte-identical answers for the same inputs. Pure: the clock and the entropy
//! for a new visitor id are inputs.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value as Json;

use crate::bundle::{Bundle, SlotRef};
use crate::context::Context;
use crate::decide::{self, Decider, Decision, Exposure, Options, SlotDecision, Trace};
use crate::html::{self, HtmlError};
use crate::time::UnixSeconds;
use crate::token::{self, Keys, State, TokenError};
use crate::view::{state_view, StateView};

/// How long a token stays valid after the visitor's last request.
pub const TOKEN_TTL: i64 = token::DEFAULT_TTL;

/// Where a new visitor's id comes from: the adapter's entropy, drawn only when the
/// request carries no valid token (a returning visitor keeps the id in the token).
#[derive(Clone, Copy)]
pub enum Entropy<'a> {
    /// This id (tests, `simulate --visitor`, a backend that picks ids itself).
    Fixed([u8; 16]),
    /// 128 bits from this source (the platform's CSPRNG), asked at most once.
    Source(&'a dyn Fn() -> [u8; 16]),
}

impl Entropy<'_> {
    /// The id of a new visitor.
    pub fn draw(&self) -> [u8; 16] {
        match self {
            Entropy::Fixed(id) => *id,
            Entropy::Source(source) => source(),
        }
    }
}

impl std::fmt::Debug for Entropy<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Entropy::Fixed(id) => f.debug_tuple("Fixed").field(id).finish(),
            Entropy::Source(_) => f.write_str("Source"),
        }
    }
}

/// Who a request comes from, as the face knows it.
#[derive(Debug, Clone, Copy)]
pub enum Visitor<'a> {
    /// A whole `Cookie` header: every `mm` cookie in it is considered and the freshest
    /// valid one wins, so a stale parent-domain cookie cannot shadow the fresh one.
    Cookie(&'a str),
    /// One token text (`X-MM-Token`, a backend, `simulate --token`).
    Token(&'a str),
    /// A state the caller already holds (a named state in a tool or a test).
    State(&'a State),
    /// No token: a new visitor.
    New,
}

/// The inputs of one request.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Who the request comes from.
    pub visitor: Visitor<'a>,
    /// The request context.
    pub context: &'a Context,
    /// The slots to decide, in order.
    pub slots: &'a [SlotRef],
    /// The adapter's clock.
    pub now: UnixSeconds,
    /// The id of a new visitor, used only when the token is missing or refused.
    pub entropy: Entropy<'a>,
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

/// The visitor's verified state; the reason when the visitor is to be treated as new.
/// Without keys no token can be trusted.
pub fn verify<'s>(
    visitor: Visitor<'s>,
    keys: Option<&Keys>,
    now: UnixSeconds,
) -> Result<Cow<'s, State>, TokenError> {
    match (visitor, keys) {
        (Visitor::State(state), _) => Ok(Cow::Borrowed(state)),
        (Visitor::New, _) | (_, None) => Err(TokenError::Missing),
        (Visitor::Token(text), Some(keys)) => token::verify(text, keys, now).map(Cow::Owned),
        (Visitor::Cookie(header), Some(keys)) => {
            token::verify_cookie(header, keys, now).map(Cow::Owned)
        }
    }
}

/// Who the request comes from: the verified state, or a new visitor's id (entropy is
/// drawn only then), and why a token that was sent was not used.
fn visitor<'s>(
    request: &Request<'s>,
    keys: Option<&Keys>,
) -> (Option<Cow<'s, State>>, [u8; 16], Option<TokenError>) {
    match verify(request.visitor, keys, request.now) {
        Ok(state) => (Some(state), [0; 16], None),
        Err(TokenError::Missing) => (None, request.entropy.draw(), None),
        Err(e) => (None, request.entropy.draw(), Some(e)),
    }
}

/// Verifies, decides and re-signs.
pub fn decide<'b>(bundle: &'b Bundle, keys: Option<&Keys>, request: &Request<'_>) -> Outcome<'b> {
    let (prior, new_visitor, token_rejected) = visitor(request, keys);
    let mut decision = decide::decide(
        bundle,
        prior.as_deref(),
        new_visitor,
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

/// A page with its slots filled, and the request's outcome (its decisions are the
/// page's slots, in document order).
pub struct Page<'b> {
    /// The rewritten page.
    pub html: Vec<u8>,
    /// The decision, the new token and why the old one was refused, if it was.
    pub outcome: Outcome<'b>,
}

/// Personalizes a page in one pass (the page proxy, and the npm package's `personalize`):
/// verify the token, then decide each `[data-mm-slot]` element the bundle knows as the
/// parser reaches it, in document order, fill it, and re-sign. A slot the page names
/// twice is decided once and filled the same way; a slot the bundle does not know keeps
/// the page's content. `request.slots` is not used: the page says which slots it has.
/// `Ok(None)` when the page has no slot the bundle knows: nothing was decided and no
/// state is to be written. An error when the page cannot be parsed.
pub fn personalize<'b>(
    bundle: &'b Bundle,
    keys: Option<&Keys>,
    request: &Request<'_>,
    page: &[u8],
) -> Result<Option<Page<'b>>, HtmlError> {
    let (prior, new_visitor, token_rejected) = visitor(request, keys);
    let mut decider = Decider::new(
        bundle,
        prior.as_deref(),
        new_visitor,
        request.context,
        request.now,
        Options {
            explain: request.explain,
        },
    );
    // The slots decided so far, with the index of their decision.
    let mut decided: Vec<(SlotRef, usize)> = Vec::new();
    let mut filled = Fills::default();
    let html = html::rewrite_each(page, |name, set| {
        let Some(slot) = bundle.slot_ref(name) else {
            return;
        };
        if !filled.room_for_another() {
            return;
        }
        // A slot's first element always shows its decision (its impression is recorded);
        // a repeat of it is filled only while the page's fill budget lasts.
        let (index, first) = match decided.iter().find(|(s, _)| *s == slot) {
            Some(&(_, index)) => (index, false),
            None => {
                if decider.slot(slot).is_none() {
                    return;
                }
                let index = decider.decisions().len().saturating_sub(1);
                decided.push((slot, index));
                (index, true)
            }
        };
        if let Some(d) = decider.decisions().get(index) {
            if let Some(html) = d.html.as_deref() {
                if filled.take(html.len(), first) {
                    set(d.content, html);
                }
            }
        }
    })?;
    if decided.is_empty() {
        return Ok(None);
    }
    let mut decision = decider.finish();
    let token = seal(&mut decision, keys, request.now);
    Ok(Some(Page {
        html,
        outcome: Outcome {
            decision,
            token,
            token_rejected,
        },
    }))
}

/// The most slot elements one page gets filled: user content keeps `data-*`
/// attributes, so a page can hold any number of them; later ones keep the page's own
/// content.
pub const MAX_FILLED_ELEMENTS: usize = 64;

/// The most HTML one page gets filled in, all slots together. Past it, repeated slot
/// elements keep the page's own content. A slot's first element is always filled (its
/// impression is counted), and a rendition is bounded
/// (`bundle::MAX_RENDERED_BYTES`), so a personalized page is never more than
/// [`MAX_FILLED_ELEMENTS`] renditions larger than the origin's.
pub const MAX_FILL_BYTES: usize = 1024 * 1024;

/// What a page has been filled with so far, against [`MAX_FILLED_ELEMENTS`] and
/// [`MAX_FILL_BYTES`].
#[derive(Debug, Default)]
struct Fills {
    elements: usize,
    bytes: usize,
}

impl Fills {
    fn room_for_another(&self) -> bool {
        self.elements < MAX_FILLED_ELEMENTS
    }

    /// Counts one more filled element of `len` bytes, if it may be filled: a slot's
    /// first element always, a repeat while the bytes last.
    fn take(&mut self, len: usize, first: bool) -> bool {
        let bytes = self.bytes.saturating_add(len);
        if !first && bytes > MAX_FILL_BYTES {
            return false;
        }
        self.elements += 1;
        self.bytes = bytes;
        true
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
            prior.visitor,
            &later,
            request.now,
            &[],
            Options::default(),
        );
    }
    outcome.token = seal(&mut outcome.decision, keys, request.now);
    outcome
}

/// The JSON answer of `/v1/decide`, `simulate` and the npm package, serialized straight
/// from the decision (no intermediate JSON tree): `{stage, decisions, token}`, then the
/// `state` (by names) and the `exposures` when the answer is a tool's full one, then
/// the `trace` when there is one. Fields an answer leaves out are not written.
#[derive(Serialize)]
pub struct Answer<'o, 'b> {
    /// The visitor's stage after this request.
    pub stage: &'b str,
    /// One per requested slot.
    pub decisions: &'o [SlotDecision<'b>],
    /// The new token, or null.
    pub token: Option<&'o str>,
    /// The new state by names (full answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<StateView<'o>>,
    /// The exposures to send (full answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposures: Option<&'o [Exposure<'b>]>,
    /// The trace, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<&'o Trace<'b>>,
}

impl<'o, 'b> Answer<'o, 'b> {
    /// The answer to `outcome`. Tools (`simulate`, the npm package) ask for the `full`
    /// answer, which adds `state` and `exposures`; the edge leaves both out.
    pub fn of(bundle: &'o Bundle, outcome: &'o Outcome<'b>, full: bool) -> Self {
        let decision = &outcome.decision;
        Answer {
            stage: decision.stage,
            decisions: &decision.decisions,
            token: outcome.token.as_deref(),
            state: full.then(|| state_view(bundle, &decision.state)),
            exposures: full.then_some(decision.exposures.as_slice()),
            trace: decision.trace.as_ref(),
        }
    }

    /// The answer as JSON text.
    pub fn to_text(&self) -> String {
        // Every field serializes infallibly (no maps with non-string keys, no I/O).
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The answer as a JSON value, for tools and tests that look inside it.
pub fn answer(bundle: &Bundle, outcome: &Outcome<'_>, full: bool) -> Json {
    serde_json::to_value(Answer::of(bundle, outcome, full)).unwrap_or(Json::Null)
}

/// The `Set-Cookie` value carrying a token.
pub fn set_cookie(token: &str) -> String {
    format!(
        "{}={token}; Path=/; Max-Age={TOKEN_TTL}; HttpOnly; Secure; SameSite=Lax",
        token::COOKIE_NAME
    )
}
