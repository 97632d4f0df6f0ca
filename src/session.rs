//! One request, start to finish, the same for every face: who the visitor is (every
//! `mm` cookie, a token, a named state or nobody yet; any failure is a new visitor),
//! this request's event and slots, the decision, the re-signed token, and the answer's
//! shape.
//!
//! This is the only place a request is assembled: the Worker, the npm package,
//! `simulate`, the coverage report and the tests all build a [`Request`] and call
//! [`decide`], [`personalize`] or [`events`], so they give byte-identical answers for
//! the same inputs. Pure: the clock and the entropy for a new visitor id are inputs.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value as Json;

use crate::bundle::UnknownSlot;
use crate::bundle::{Bundle, SlotRef};
use crate::context::Context;
use crate::decide::{self, Decider, Decision, Exposure, SlotDecision, Trace, Visit};
use crate::feed::{Feeds, Wants};
use crate::html::{self, HtmlError};
use crate::profile::{self, Message, Sync};
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
    /// A visitor the face already opened ([`open`]): verified once, perhaps given its
    /// profile's view since.
    Opened(&'a Opened),
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

/// Which slots a request decides.
#[derive(Debug, Clone, Copy)]
pub enum Slots<'a> {
    /// These, by name, in order; each once, and at most [`MAX_SLOTS`].
    Names(&'a [&'a str]),
    /// These, already resolved (a tool that asked the bundle itself).
    Refs(&'a [SlotRef]),
    /// Every slot of the bundle, in bundle order.
    All,
}

/// The most slots one request decides.
pub const MAX_SLOTS: usize = 32;

/// What the request wants besides the decision.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Decide, write the new state, count the exposures.
    #[default]
    Serve,
    /// [`Mode::Serve`] plus the trace (`simulate --explain`).
    Explain,
    /// The decision and its trace as a preview: no token, no exposures
    /// (`/v1/explain`).
    Preview,
}

/// The inputs of one request.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// Who the request comes from.
    pub visitor: Visitor<'a>,
    /// The request context.
    pub context: &'a Context,
    /// This request's app event, over the context's (an API's `event`, `--event`).
    pub event: Option<&'a str>,
    /// The slots to decide (a page names its own: [`personalize`] ignores this).
    pub slots: Slots<'a>,
    /// The adapter's clock.
    pub now: UnixSeconds,
    /// The id of a new visitor, used only when the token is missing or refused.
    pub entropy: Entropy<'a>,
    /// Serve, explain or preview.
    pub mode: Mode,
    /// The live data loaded for it ([`feed_wants`]); none makes every rule that reads
    /// a feed false.
    pub feeds: Option<&'a Feeds>,
}

impl<'a> Request<'a> {
    /// A request to serve `context` to `visitor` at `now`, every slot, no event.
    pub fn new(
        visitor: Visitor<'a>,
        context: &'a Context,
        now: UnixSeconds,
        entropy: Entropy<'a>,
    ) -> Self {
        Request {
            visitor,
            context,
            event: None,
            slots: Slots::All,
            now,
            entropy,
            mode: Mode::Serve,
            feeds: None,
        }
    }

    /// How the visitor's state relates to its profile: what the face did about it when
    /// it opened the visitor ([`Opened`]); nothing for any other visitor.
    fn sync(&self) -> Sync {
        match self.visitor {
            Visitor::Opened(opened) => opened.sync,
            _ => Sync::Skipped,
        }
    }
}

/// A request's visitor, opened once by a face that does something about it before
/// deciding (the edge syncs a linked device with its profile): its verified state, or
/// a new visitor, whose id is drawn here and nowhere else. The face then hands it to
/// [`decide`], [`announce`], [`personalize`] or [`events`] as [`Visitor::Opened`].
#[derive(Debug, Clone)]
pub struct Opened {
    /// The verified state; `None` for a new visitor.
    prior: Option<State>,
    /// A new visitor's id (drawn only when there is no state).
    new_id: [u8; 16],
    /// Why a token that was sent was refused.
    rejected: Option<TokenError>,
    /// How the state relates to its profile.
    sync: Sync,
}

/// Verifies who the request comes from: a token that fails any check is a new visitor,
/// whose id `entropy` draws (only then).
pub fn open(
    visitor: Visitor<'_>,
    keys: Option<&Keys>,
    now: UnixSeconds,
    entropy: Entropy<'_>,
) -> Opened {
    if let Visitor::Opened(opened) = visitor {
        return opened.clone();
    }
    match verify(visitor, keys, now) {
        Ok(state) => Opened {
            prior: Some(state.into_owned()),
            new_id: [0; 16],
            rejected: None,
            sync: Sync::Skipped,
        },
        Err(e) => Opened {
            prior: None,
            new_id: entropy.draw(),
            rejected: (e != TokenError::Missing).then_some(e),
            sync: Sync::Skipped,
        },
    }
}

impl Opened {
    /// The verified state, if the request carried one.
    pub fn state(&self) -> Option<&State> {
        self.prior.as_ref()
    }

    /// The profile link of the verified state.
    pub fn link(&self) -> Option<token::Link> {
        self.prior.as_ref().and_then(|s| s.link)
    }

    /// The visitor's id: the token's, or the new one.
    pub fn visitor(&self) -> [u8; 16] {
        self.prior.as_ref().map_or(self.new_id, |s| s.visitor)
    }

    /// Why a token that was sent was refused (for logs, never for the client).
    pub fn rejected(&self) -> Option<TokenError> {
        self.rejected
    }

    /// The device was given its profile's view (a sync answered): the person's
    /// journey, with what stays the device's own (`profile::adopt`), and the sequence
    /// number its next exchange carries.
    pub fn adopt(&mut self, view: &State, seq: u32, devices: u8) {
        let Some(device) = self.prior.as_ref() else {
            return;
        };
        let mut adopted = profile::adopt(device, view, devices);
        if let Some(link) = adopted.link.as_mut() {
            link.seq = seq;
        }
        self.prior = Some(adopted);
        self.sync = Sync::Adopted;
    }

    /// A sync was sent but not answered in time: the request decides on the device's
    /// own state, and the push after it counts from what the sync sent.
    pub fn missed(&mut self) {
        self.sync = Sync::Missed;
    }

    /// The person's journey is gone for this device (the profile was erased, or the
    /// device logged out): it starts again as a new visitor, with a new id, unlinked.
    pub fn restart(&mut self, now: UnixSeconds, entropy: Entropy<'_>) {
        self.prior = Some(State::new_visitor(entropy.draw(), now, TOKEN_TTL));
        self.sync = Sync::Skipped;
    }

    /// The device joins `profile` (its person confirmed an identity link): an anonymous
    /// device brings its history (sequence 0: the profile takes all of it); a device
    /// linked to someone else starts over as a new visitor of `profile` and brings
    /// nothing; a device already linked to `profile` stays as it is. Returns whether
    /// the device changed hands.
    pub fn link_to(&mut self, profile: [u8; 16], now: UnixSeconds, entropy: Entropy<'_>) -> bool {
        let link = token::Link {
            profile,
            seq: 0,
            devices: 1,
            linked_at: now,
        };
        match self.prior.as_mut() {
            Some(state) if state.link.map(|l| l.profile) == Some(profile) => return false,
            Some(state) if state.link.is_none() => state.link = Some(link),
            _ => {
                let mut fresh = State::new_visitor(entropy.draw(), now, TOKEN_TTL);
                fresh.link = Some(link);
                self.prior = Some(fresh);
            }
        }
        self.sync = Sync::Skipped;
        true
    }

    /// The state as a new token (a sliding expiry from `now`), unless there is no
    /// state, no consent to write one, or no keys.
    pub fn token(&self, keys: Option<&Keys>, now: UnixSeconds) -> Option<String> {
        let mut state = self.prior.clone()?;
        if state.consent.opted_out() {
            return None;
        }
        state.reissue(now, TOKEN_TTL);
        token::sign(&state, keys?).ok()
    }
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
    /// What to send the device's profile after the response, for a linked device whose
    /// request changed what the person shares (docs/profiles.md).
    pub push: Option<Message>,
}

/// The visitor's verified state; the reason when the visitor is to be treated as new.
/// Without keys no token can be trusted.
pub fn verify<'s>(
    visitor: Visitor<'s>,
    keys: Option<&Keys>,
    now: UnixSeconds,
) -> Result<Cow<'s, State>, TokenError> {
    match (visitor, keys) {
        (Visitor::Opened(opened), _) => match &opened.prior {
            Some(state) => Ok(Cow::Borrowed(state)),
            None => Err(opened.rejected.unwrap_or(TokenError::Missing)),
        },
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
    if let Visitor::Opened(opened) = request.visitor {
        return (
            opened.prior.as_ref().map(Cow::Borrowed),
            opened.new_id,
            opened.rejected,
        );
    }
    match verify(request.visitor, keys, request.now) {
        Ok(state) => (Some(state), [0; 16], None),
        Err(TokenError::Missing) => (None, request.entropy.draw(), None),
        Err(e) => (None, request.entropy.draw(), Some(e)),
    }
}

/// The context a request decides with: its own, or with the request's event over it.
fn context_of<'r>(request: &Request<'r>) -> Cow<'r, Context> {
    match request.event {
        Some(event) => {
            let mut context = request.context.clone();
            context.event = Some(event.to_owned()).filter(|e| !e.is_empty());
            Cow::Owned(context)
        }
        None => Cow::Borrowed(request.context),
    }
}

/// The slots a request names, resolved: each once, at most [`MAX_SLOTS`]; the first
/// unknown name is an error.
pub fn resolve_slots(bundle: &Bundle, slots: Slots<'_>) -> Result<Vec<SlotRef>, UnknownSlot> {
    match slots {
        Slots::All => Ok(bundle.all_slots()),
        Slots::Refs(refs) => Ok(refs.to_vec()),
        Slots::Names(names) => {
            // Each slot once: a repeated name would count its impression twice.
            let mut once = Vec::with_capacity(names.len().min(MAX_SLOTS));
            for &name in names.iter().take(MAX_SLOTS) {
                let slot = bundle.resolve_slot(name)?;
                if !once.contains(&slot) {
                    once.push(slot);
                }
            }
            Ok(once)
        }
    }
}

/// What a face must load before deciding `request` (docs/feeds.md): the shards of the
/// items its bundle's feed lookups name, and the feeds it needs whole.
pub fn feed_wants(bundle: &Bundle, keys: Option<&Keys>, request: &Request<'_>) -> Wants {
    if bundle.feed_keys.is_empty() {
        return Wants::default();
    }
    let (prior, new_visitor, _) = visitor(request, keys);
    let context = context_of(request);
    Decider::new(
        bundle,
        &Visit {
            prior: prior.as_deref(),
            new_visitor,
            context: &context,
            now: request.now,
            explain: false,
            returning: prior.is_some(),
            feeds: None,
        },
    )
    .feed_wants()
}

/// Verifies, decides and re-signs; an unknown slot name is an error (a `400`).
pub fn decide<'b>(
    bundle: &'b Bundle,
    keys: Option<&Keys>,
    request: &Request<'_>,
) -> Result<Outcome<'b>, UnknownSlot> {
    let slots = resolve_slots(bundle, request.slots)?;
    let (prior, new_visitor, token_rejected) = visitor(request, keys);
    let context = context_of(request);
    let decision = decide::decide(
        bundle,
        &Visit {
            prior: prior.as_deref(),
            new_visitor,
            context: &context,
            now: request.now,
            explain: request.mode != Mode::Serve,
            returning: prior.is_some(),
            feeds: request.feeds,
        },
        &slots,
    );
    Ok(finish(
        bundle,
        prior.as_deref(),
        decision,
        keys,
        request,
        token_rejected,
    ))
}

/// What every request ends with: the push to the profile of a linked device (its
/// sequence number in the new state), then the re-signed token, unless the state may
/// not be written or the request is a preview (which counts no exposures and pushes
/// nothing either).
fn finish<'b>(
    bundle: &Bundle,
    prior: Option<&State>,
    mut decision: Decision<'b>,
    keys: Option<&Keys>,
    request: &Request<'_>,
    token_rejected: Option<TokenError>,
) -> Outcome<'b> {
    let mut push = None;
    let token = if request.mode == Mode::Preview {
        decision.exposures.clear();
        None
    } else {
        if let (Some(prior), true) = (prior, decision.persist) {
            push = profile::plan_push(
                bundle,
                request.context,
                prior,
                &mut decision.state,
                request.sync(),
                request.now,
            );
        }
        seal(&mut decision, keys, request.now)
    };
    Outcome {
        decision,
        token,
        token_rejected,
        push,
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
    let mut failed = None;
    let decided = page_outcome(bundle, keys, request, |decider| {
        // The slots decided so far, with the index of their decision.
        let mut decided: Vec<(SlotRef, usize)> = Vec::new();
        let mut filled = Fills::default();
        let rewritten = html::rewrite_each(page, |name, set| {
            let Some(slot) = bundle.slot_ref(name) else {
                return;
            };
            if !filled.room_for_another() {
                return;
            }
            // A slot's first element always shows its decision (its impression is
            // recorded); a repeat of it is filled only while the page's fill budget
            // lasts.
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
        });
        match rewritten {
            Ok(html) if !decided.is_empty() => Some(html),
            Ok(_) => None,
            Err(e) => {
                failed = Some(e);
                None
            }
        }
    });
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(decided.map(|(html, outcome)| Page { html, outcome }))
}

/// Decides a page's slots: `decide` takes them from the request's decider (`None`:
/// nothing was decided, and no state is to be written), then the outcome is finished
/// (the push planned, the token sealed) as every request's is.
fn page_outcome<'b, T>(
    bundle: &'b Bundle,
    keys: Option<&Keys>,
    request: &Request<'_>,
    decide: impl FnOnce(&mut Decider<'_, 'b>) -> Option<T>,
) -> Option<(T, Outcome<'b>)> {
    let (prior, new_visitor, token_rejected) = visitor(request, keys);
    let context = context_of(request);
    let mut decider = Decider::new(
        bundle,
        &Visit {
            prior: prior.as_deref(),
            new_visitor,
            context: &context,
            now: request.now,
            explain: request.mode != Mode::Serve,
            returning: prior.is_some(),
            feeds: request.feeds,
        },
    );
    let value = decide(&mut decider)?;
    let outcome = finish(
        bundle,
        prior.as_deref(),
        decider.finish(),
        keys,
        request,
        token_rejected,
    );
    Some((value, outcome))
}

/// A page's slots decided before its body is read, for a proxy that streams the page
/// (its `Set-Cookie` must go out before the body): the slots the page announced (its
/// `<meta name="mm-slots">`, or what the proxy remembers of the path) are decided in
/// the order given and their impressions counted; while the page streams, each
/// announced slot's elements get its decision. A slot element the page has that was
/// not announced keeps the page's own content (its fallback): nothing is shown whose
/// impression the token does not count.
pub struct Announced<'b> {
    /// The decision, the new token and why the old one was refused, if it was.
    pub outcome: Outcome<'b>,
    fills: Vec<Fill>,
}

/// One announced slot's fill: the slot, the content id and its HTML.
#[derive(Debug, Clone)]
struct Fill {
    slot: String,
    content: String,
    html: String,
}

/// Decides `slots` (names the bundle does not know are skipped, a repeated name is
/// decided once, at most [`MAX_FILLED_ELEMENTS`]); `None` when none is known, so
/// nothing was decided and no state is to be written.
pub fn announce<'b>(
    bundle: &'b Bundle,
    keys: Option<&Keys>,
    request: &Request<'_>,
    slots: &[&str],
) -> Option<Announced<'b>> {
    let (fills, outcome) = page_outcome(bundle, keys, request, |decider| {
        let mut decided: Vec<SlotRef> = Vec::new();
        let mut fills = Vec::new();
        for name in slots {
            let Some(slot) = bundle.slot_ref(name) else {
                continue;
            };
            if decided.contains(&slot) || decided.len() >= MAX_FILLED_ELEMENTS {
                continue;
            }
            let Some(d) = decider.slot(slot) else {
                continue;
            };
            decided.push(slot);
            if let Some(html) = d.html.as_deref() {
                fills.push(Fill {
                    slot: (*name).to_owned(),
                    content: d.content.to_owned(),
                    html: html.to_owned(),
                });
            }
        }
        (!decided.is_empty()).then_some(fills)
    })?;
    Some(Announced { outcome, fills })
}

impl Announced<'_> {
    /// What fills the streamed page's slot elements: owned, so the rewriter can live
    /// as long as the page's stream.
    pub fn filler(&self) -> Filler {
        Filler {
            fills: self.fills.clone(),
            budget: Fills::default(),
            filled: Vec::new(),
        }
    }
}

/// Fills a streamed page's slot elements with the announced decisions, within the
/// page's fill budget ([`MAX_FILLED_ELEMENTS`], [`MAX_FILL_BYTES`]).
#[derive(Debug)]
pub struct Filler {
    fills: Vec<Fill>,
    budget: Fills,
    /// The announced slots met so far.
    filled: Vec<usize>,
}

impl Filler {
    /// The fill of the slot element named `name` (a `crate::html::SlotRewriter` fill).
    pub fn fill(&mut self, name: &str, set: &mut crate::html::SetSlot<'_>) {
        let Some(index) = self.fills.iter().position(|f| f.slot == name) else {
            return;
        };
        if !self.budget.room_for_another() {
            return;
        }
        let first = !self.filled.contains(&index);
        let Some(fill) = self.fills.get(index) else {
            return;
        };
        if self.budget.take(fill.html.len(), first) {
            set(&fill.content, &fill.html);
            if first {
                self.filled.push(index);
            }
        }
    }
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
    let (prior, new_visitor, token_rejected) = visitor(request, keys);
    let mut first = request.context.clone();
    first.event = names.first().cloned();
    let mut decision = decide::decide(
        bundle,
        &Visit {
            prior: prior.as_deref(),
            new_visitor,
            context: &first,
            now: request.now,
            explain: false,
            returning: prior.is_some(),
            feeds: request.feeds,
        },
        &[],
    );
    // Later events keep who and where the visitor is, not what this request showed.
    let mut later = request.context.clone();
    later.page.path = None;
    later.page.query.clear();
    later.utm = Default::default();
    later.referrer = Default::default();
    let prior_seen = prior.is_some();
    for name in names.iter().skip(1) {
        if !decision.persist {
            break;
        }
        later.event = Some(name.clone());
        let prior = decision.state.clone();
        let fired = std::mem::take(&mut decision.triggers);
        decision = decide::decide(
            bundle,
            &Visit {
                prior: Some(&prior),
                new_visitor: prior.visitor,
                context: &later,
                now: request.now,
                explain: false,
                returning: prior_seen,
                feeds: request.feeds,
            },
            &[],
        );
        // Each event's triggers, in event order.
        let later_fired = std::mem::replace(&mut decision.triggers, fired);
        decision.triggers.extend(later_fired);
    }
    finish(
        bundle,
        prior.as_deref(),
        decision,
        keys,
        request,
        token_rejected,
    )
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
    /// The triggers fired (full answers, when any fired).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggers: Option<&'o [crate::decide::Fired<'b>]>,
    /// The trace, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<&'o Trace<'b>>,
}

/// How much of an outcome an answer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// What the edge sends a client: `stage`, `decisions`, `token` (and the trace of a
    /// preview).
    Edge,
    /// What tools show (`simulate`, the npm package): the edge's answer plus the new
    /// `state` by names and the `exposures`.
    Full,
}

impl<'o, 'b> Answer<'o, 'b> {
    /// The answer to `outcome`, in `shape`.
    pub fn of(bundle: &'o Bundle, outcome: &'o Outcome<'b>, shape: Shape) -> Self {
        let full = shape == Shape::Full;
        let decision = &outcome.decision;
        Answer {
            stage: decision.stage,
            decisions: &decision.decisions,
            token: outcome.token.as_deref(),
            state: full.then(|| state_view(bundle, &decision.state)),
            exposures: full.then_some(decision.exposures.as_slice()),
            triggers: (full && !decision.triggers.is_empty())
                .then_some(decision.triggers.as_slice()),
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
pub fn answer(bundle: &Bundle, outcome: &Outcome<'_>, shape: Shape) -> Json {
    serde_json::to_value(Answer::of(bundle, outcome, shape)).unwrap_or(Json::Null)
}

/// The `Set-Cookie` header value that removes the journey cookie.
pub fn clear_cookie() -> String {
    format!(
        "{}=; Path=/; Max-Age=0; HttpOnly; Secure; SameSite=Lax",
        token::COOKIE_NAME
    )
}

/// The `Set-Cookie` value carrying a token.
pub fn set_cookie(token: &str) -> String {
    format!(
        "{}={token}; Path=/; Max-Age={TOKEN_TTL}; HttpOnly; Secure; SameSite=Lax",
        token::COOKIE_NAME
    )
}
