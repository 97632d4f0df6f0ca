//! The token payload as it travels: a versioned wire struct, apart from [`State`].
//!
//! [`State`] is the domain type and may grow; [`WireV1`] is frozen, because tokens
//! minted today sit in browsers for weeks. A change to the layout is a new struct and a
//! new `v2` prefix, never an edit here. The struct is bincode-encoded through
//! `crate::codec` (varint integers, little-endian), and every time except `issued_at` is
//! stored as a wrapping difference from `issued_at`: recent times become one- to
//! three-byte varints instead of five, which roughly halves a typical payload.
//!
//! Fitting the budget happens here. A payload that would make the cookie
//! `mm=<token>` reach [`MAX_COOKIE_BYTES`] loses, in this order: the impressions shown
//! longest ago, then the weakest intents (lowest stored score, older first on ties), then
//! the oldest experiment assignments (a dropped assignment is recomputed from the same
//! visitor hash, so only a change of weights could move the visitor), then the oldest
//! sequence entries. Segments are bounded at mint ([`MAX_SEGMENTS`] of at most
//! [`MAX_SEGMENT_BYTES`]) and so always fit; they are dropped only as a last resort
//! that the bounds make unreachable.
//!
//! This module never trusts a decoded payload beyond its shape: scores must be finite
//! and segments within their bounds, or the payload is refused.

use std::cmp::Ordering;

use crate::codec::{self, CodecError, Decode, Encode};

use super::state::{Assignment, Consent, Impression, Intent, Link, State};
use super::TokenError;
use crate::context::Channel;
use crate::context::DeviceKind;

/// The cookie `mm=<token>` stays strictly below this many bytes (docs/api.md, "The journey token").
pub const MAX_COOKIE_BYTES: usize = 3_800;
/// The most segments a token carries; more are refused at mint.
pub const MAX_SEGMENTS: usize = 16;
/// The longest segment name in bytes; longer ones are refused at mint.
pub const MAX_SEGMENT_BYTES: usize = 32;

/// The most bytes bincode may claim while decoding a payload. A payload is at most
/// about 2,800 bytes; its in-memory form is larger (an impression is 5 bytes on the wire
/// and 32 in memory), so the limit leaves room for that and no more: a hostile length
/// prefix cannot make the decoder allocate beyond it.
const DECODE_LIMIT: usize = 64 * 1024;

/// Version 1 of the payload: the state of a device that is not linked to a profile.
/// Field order is the wire order: never reorder or insert.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub(crate) struct WireV1 {
    head: Head,
    lists: Lists<WireAssignment>,
    consent: u8,
}

/// The fields every version starts with (a struct encodes as its fields in order, so
/// this is the same bytes as writing them out).
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
struct Head {
    visitor: [u8; 16],
    issued_at: i64,
    /// `expires_at - issued_at`.
    ttl: i64,
    stage: Option<u32>,
    /// `issued_at - stage_since`.
    stage_age: i64,
    visits: u32,
    /// `issued_at - last_visit`.
    last_visit_age: i64,
}

impl Head {
    fn of(state: &State) -> Head {
        let at = state.issued_at;
        Head {
            visitor: state.visitor,
            issued_at: at,
            ttl: state.expires_at.wrapping_sub(at),
            stage: state.stage,
            stage_age: at.wrapping_sub(state.stage_since),
            visits: state.visits,
            last_visit_age: at.wrapping_sub(state.last_visit),
        }
    }

    /// The state these fields describe, everything else empty.
    fn state(&self, consent: u8) -> State {
        let at = self.issued_at;
        State {
            visitor: self.visitor,
            issued_at: at,
            expires_at: at.wrapping_add(self.ttl),
            stage: self.stage,
            stage_since: at.wrapping_sub(self.stage_age),
            visits: self.visits,
            last_visit: at.wrapping_sub(self.last_visit_age),
            consent: Consent(consent),
            ..State::default()
        }
    }
}

/// Version 2: everything of version 1 (assignments with their age), then what a
/// device linked to a profile carries (docs/profiles.md). Written only for linked states, so
/// every other token stays a `v1` token, byte for byte. Never reorder or insert.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub(crate) struct WireV2 {
    head: Head,
    lists: Lists<WireAssignmentV2>,
    consent: u8,
    stage_generation: u16,
    visits_by: [u32; DeviceKind::COUNT],
    /// [`Channel::code`], 0 for none.
    last_channel: u8,
    link: Option<WireLink>,
}

/// The trimmable lists, in wire order (version 1 and 2 alike).
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
struct Lists<A> {
    intents: Vec<WireIntent>,
    impressions: Vec<WireImpression>,
    sequence: Vec<u32>,
    experiments: Vec<A>,
    segments: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
struct WireIntent {
    topic: u32,
    score: f32,
    /// `issued_at - updated_at`.
    age: i64,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
struct WireImpression {
    id: u32,
    count: u32,
    /// `issued_at - window_start`.
    window_age: i64,
    /// `issued_at - last_shown`.
    shown_age: i64,
    total: u32,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
struct WireAssignment {
    experiment: u32,
    variant: u8,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
struct WireAssignmentV2 {
    experiment: u32,
    variant: u8,
    /// `issued_at - at`.
    age: i64,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
struct WireLink {
    profile: [u8; 16],
    seq: u32,
    devices: u8,
    /// `issued_at - linked_at`. The last field of the payload: a token written before
    /// it existed ends before it, and reads as linked at 0 ([`WireV2::decode`]).
    linked_age: i64,
}

/// [`WireV2`] as written before links carried `linked_at`: read, never written.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
struct WireV2Unlinked {
    head: Head,
    lists: Lists<WireAssignmentV2>,
    consent: u8,
    stage_generation: u16,
    visits_by: [u32; DeviceKind::COUNT],
    last_channel: u8,
    link: Option<([u8; 16], u32, u8)>,
}

/// Whether a segment name may travel in a token.
pub fn segment_ok(segment: &str) -> bool {
    !segment.is_empty() && segment.len() <= MAX_SEGMENT_BYTES
}

/// A decoded payload of either version.
pub(crate) enum Payload {
    V1(WireV1),
    V2(WireV2),
}

impl Payload {
    /// The state this payload describes, or why it cannot describe one.
    pub(crate) fn into_state(self) -> Result<State, TokenError> {
        match self {
            Payload::V1(wire) => wire.into_state(),
            Payload::V2(wire) => wire.into_state(),
        }
    }
}

impl<A> Lists<A> {
    fn of(state: &State, assignment: impl Fn(&Assignment) -> A) -> Lists<A> {
        let at = state.issued_at;
        Lists {
            intents: state
                .intents
                .iter()
                .filter(|i| i.score.is_finite())
                .map(|i| WireIntent {
                    topic: i.topic,
                    score: i.score,
                    age: at.wrapping_sub(i.updated_at),
                })
                .collect(),
            impressions: state
                .impressions
                .iter()
                .map(|i| WireImpression {
                    id: i.id,
                    count: i.count,
                    window_age: at.wrapping_sub(i.window_start),
                    shown_age: at.wrapping_sub(i.last_shown),
                    total: i.total,
                })
                .collect(),
            sequence: state.sequence.clone(),
            experiments: state.experiments.iter().map(assignment).collect(),
            segments: state
                .segments
                .iter()
                .filter(|s| segment_ok(s))
                .take(MAX_SEGMENTS)
                .cloned()
                .collect(),
        }
    }

    /// Checks what the payload cannot be trusted with: non-finite scores, segments
    /// outside their bounds.
    fn check(&self) -> Result<(), TokenError> {
        if self.intents.iter().any(|i| !i.score.is_finite())
            || self.segments.len() > MAX_SEGMENTS
            || !self.segments.iter().all(|s| segment_ok(s))
        {
            return Err(TokenError::Malformed);
        }
        Ok(())
    }

    /// Writes the lists into `state`, times relative to `at`.
    fn into_state(self, at: i64, state: &mut State, assignment: impl Fn(A) -> Assignment) {
        state.intents = self
            .intents
            .into_iter()
            .map(|i| Intent {
                topic: i.topic,
                score: i.score,
                updated_at: at.wrapping_sub(i.age),
            })
            .collect();
        state.impressions = self
            .impressions
            .into_iter()
            .map(|i| Impression {
                id: i.id,
                count: i.count,
                window_start: at.wrapping_sub(i.window_age),
                last_shown: at.wrapping_sub(i.shown_age),
                total: i.total,
            })
            .collect();
        state.sequence = self.sequence;
        state.experiments = self.experiments.into_iter().map(assignment).collect();
        state.segments = self.segments;
    }
}

impl<A: Encode> Lists<A> {
    /// Drops entries worth `excess` encoded bytes, in the order the module explains;
    /// returns what is still to remove.
    fn drop_worth(&mut self, at: i64, mut excess: usize) -> usize {
        excess = drop_first(&mut self.impressions, excess, oldest_shown(at));
        excess = drop_first(&mut self.intents, excess, weakest(at));
        excess = drop_first(&mut self.experiments, excess, in_order);
        excess = drop_first(&mut self.sequence, excess, in_order);
        while excess > 0 {
            match self.segments.pop() {
                Some(segment) => excess = excess.saturating_sub(segment.len() + 1),
                None => break,
            }
        }
        excess
    }

    /// Drops the one least valuable entry; false when every list is empty.
    fn drop_one(&mut self, at: i64) -> bool {
        drop_first(&mut self.impressions, 1, oldest_shown(at)) == 0
            || drop_first(&mut self.intents, 1, weakest(at)) == 0
            || drop_first(&mut self.experiments, 1, in_order) == 0
            || drop_first(&mut self.sequence, 1, in_order) == 0
            || self.segments.pop().is_some()
    }
}

fn oldest_shown(at: i64) -> impl Fn(&WireImpression, &WireImpression) -> Ordering {
    move |a, b| {
        at.wrapping_sub(a.shown_age)
            .cmp(&at.wrapping_sub(b.shown_age))
    }
}

fn weakest(at: i64) -> impl Fn(&WireIntent, &WireIntent) -> Ordering {
    move |a, b| {
        a.score
            .total_cmp(&b.score)
            .then_with(|| at.wrapping_sub(a.age).cmp(&at.wrapping_sub(b.age)))
    }
}

/// A payload whose lists can be trimmed to a budget.
trait Trim: Encode {
    fn drop_worth(&mut self, excess: usize) -> usize;
    fn drop_one(&mut self) -> bool;

    /// The payload in at most `budget` bytes, trimmed as the module explains.
    fn trimmed_within(mut self, budget: usize) -> Result<Vec<u8>, TokenError>
    where
        Self: Sized,
    {
        let mut bytes = encode(&self)?;
        if bytes.len() <= budget {
            return Ok(bytes);
        }
        // One pass that removes entries by their own encoded size: a list's length
        // prefix can only shrink as entries go, so after it the payload fits unless
        // every trimmable list ran out.
        self.drop_worth(bytes.len().saturating_sub(budget));
        bytes = encode(&self)?;
        // The estimate above is exact or generous; this loop is the guarantee. Asking
        // `drop_first` to remove one byte removes exactly one entry.
        while bytes.len() > budget {
            if !self.drop_one() {
                return Err(TokenError::Unencodable);
            }
            bytes = encode(&self)?;
        }
        Ok(bytes)
    }
}

impl Trim for WireV1 {
    fn drop_worth(&mut self, excess: usize) -> usize {
        self.lists.drop_worth(self.head.issued_at, excess)
    }
    fn drop_one(&mut self) -> bool {
        self.lists.drop_one(self.head.issued_at)
    }
}

impl Trim for WireV2 {
    fn drop_worth(&mut self, excess: usize) -> usize {
        self.lists.drop_worth(self.head.issued_at, excess)
    }
    fn drop_one(&mut self) -> bool {
        self.lists.drop_one(self.head.issued_at)
    }
}

fn decode_error(e: CodecError) -> TokenError {
    match e {
        CodecError::Truncated => TokenError::Truncated,
        CodecError::Trailing(_) => TokenError::TrailingBytes,
        _ => TokenError::Malformed,
    }
}

impl WireV1 {
    /// The wire form of a state. Intents with a non-finite score and segments outside
    /// the bounds are left out, so that every token we sign decodes.
    pub(crate) fn from_state(state: &State) -> WireV1 {
        WireV1 {
            head: Head::of(state),
            lists: Lists::of(state, |a| WireAssignment {
                experiment: a.experiment,
                variant: a.variant,
            }),
            consent: state.consent.0,
        }
    }

    /// The state this payload describes, or why it cannot describe one. Assignments
    /// read as made at `issued_at`, the latest they can have been made.
    pub(crate) fn into_state(self) -> Result<State, TokenError> {
        self.lists.check()?;
        let at = self.head.issued_at;
        let mut state = self.head.state(self.consent);
        self.lists.into_state(at, &mut state, |a| Assignment {
            experiment: a.experiment,
            variant: a.variant,
            at,
        });
        Ok(state)
    }

    /// Decodes a payload: exactly one `WireV1`, nothing after it.
    pub(crate) fn decode(bytes: &[u8]) -> Result<WireV1, TokenError> {
        codec::decode::<WireV1, DECODE_LIMIT>(bytes).map_err(decode_error)
    }
}

impl WireV2 {
    /// The wire form of a linked state, as [`WireV1::from_state`] and the rest.
    pub(crate) fn from_state(state: &State) -> WireV2 {
        let at = state.issued_at;
        WireV2 {
            head: Head::of(state),
            lists: Lists::of(state, |a| WireAssignmentV2 {
                experiment: a.experiment,
                variant: a.variant,
                age: at.wrapping_sub(a.at),
            }),
            consent: state.consent.0,
            stage_generation: state.stage_generation,
            visits_by: state.visits_by,
            last_channel: state.last_channel.map_or(0, Channel::code),
            link: state.link.map(|l| WireLink {
                profile: l.profile,
                seq: l.seq,
                devices: l.devices,
                linked_age: at.wrapping_sub(l.linked_at),
            }),
        }
    }

    /// The state this payload describes, or why it cannot describe one.
    pub(crate) fn into_state(self) -> Result<State, TokenError> {
        self.lists.check()?;
        let at = self.head.issued_at;
        let mut state = State {
            stage_generation: self.stage_generation,
            visits_by: self.visits_by,
            last_channel: Channel::from_code(self.last_channel),
            link: self.link.map(|l| Link {
                profile: l.profile,
                seq: l.seq,
                devices: l.devices,
                linked_at: at.wrapping_sub(l.linked_age),
            }),
            ..self.head.state(self.consent)
        };
        self.lists.into_state(at, &mut state, |a| Assignment {
            experiment: a.experiment,
            variant: a.variant,
            at: at.wrapping_sub(a.age),
        });
        Ok(state)
    }

    /// Decodes a payload: exactly one `WireV2`, nothing after it.
    /// A payload that ends where one written before links carried `linked_at` ends
    /// is read as such: its device reads as linked at 0.
    pub(crate) fn decode(bytes: &[u8]) -> Result<WireV2, TokenError> {
        match codec::decode::<WireV2, DECODE_LIMIT>(bytes) {
            Err(CodecError::Truncated) => codec::decode::<WireV2Unlinked, DECODE_LIMIT>(bytes)
                .map(WireV2Unlinked::into_current)
                .map_err(decode_error),
            decoded => decoded.map_err(decode_error),
        }
    }
}

impl WireV2Unlinked {
    fn into_current(self) -> WireV2 {
        let at = self.head.issued_at;
        WireV2 {
            head: self.head,
            lists: self.lists,
            consent: self.consent,
            stage_generation: self.stage_generation,
            visits_by: self.visits_by,
            last_channel: self.last_channel,
            link: self.link.map(|(profile, seq, devices)| WireLink {
                profile,
                seq,
                devices,
                // Linked at 0: older than any erasure.
                linked_age: at,
            }),
        }
    }
}

/// The bytes of `WireV1::from_state(state)`, encoded from the borrowed state: signing
/// every response does not copy the state's lists first. A test keeps the two equal.
struct WireV1Of<'s>(&'s State);

impl Encode for WireV1Of<'_> {
    fn encode<E: codec::Encoder>(&self, e: &mut E) -> Result<(), codec::EncodeError> {
        let state = self.0;
        let at = state.issued_at;
        state.visitor.encode(e)?;
        at.encode(e)?;
        state.expires_at.wrapping_sub(at).encode(e)?;
        state.stage.encode(e)?;
        at.wrapping_sub(state.stage_since).encode(e)?;
        state.visits.encode(e)?;
        at.wrapping_sub(state.last_visit).encode(e)?;
        let intents = state.intents.iter().filter(|i| i.score.is_finite());
        codec::encode_len(intents.clone().count(), e)?;
        for i in intents {
            WireIntent {
                topic: i.topic,
                score: i.score,
                age: at.wrapping_sub(i.updated_at),
            }
            .encode(e)?;
        }
        codec::encode_len(state.impressions.len(), e)?;
        for i in &state.impressions {
            WireImpression {
                id: i.id,
                count: i.count,
                window_age: at.wrapping_sub(i.window_start),
                shown_age: at.wrapping_sub(i.last_shown),
                total: i.total,
            }
            .encode(e)?;
        }
        state.sequence.encode(e)?;
        codec::encode_len(state.experiments.len(), e)?;
        for a in &state.experiments {
            WireAssignment {
                experiment: a.experiment,
                variant: a.variant,
            }
            .encode(e)?;
        }
        let segments = state
            .segments
            .iter()
            .filter(|s| segment_ok(s))
            .take(MAX_SEGMENTS);
        codec::encode_len(segments.clone().count(), e)?;
        for segment in segments {
            segment.encode(e)?;
        }
        state.consent.0.encode(e)
    }
}

/// The payload version a state is written in: `v2` once linked, `v1` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

impl Version {
    /// The version a state is written in.
    pub(crate) fn of(state: &State) -> Version {
        if state.link.is_some() {
            Version::V2
        } else {
            Version::V1
        }
    }
}

/// A state's payload in at most `budget` bytes, trimmed as the module explains. The
/// common case, an unlinked state whose payload fits in `buf`, is written there
/// without allocating.
pub(crate) fn encode_state_within<'b>(
    state: &State,
    budget: usize,
    buf: &'b mut [u8],
) -> Result<std::borrow::Cow<'b, [u8]>, TokenError> {
    if Version::of(state) == Version::V2 {
        return WireV2::from_state(state)
            .trimmed_within(budget)
            .map(std::borrow::Cow::Owned);
    }
    let room = budget.min(buf.len());
    let fits = buf
        .get_mut(..room)
        .map(|buf| codec::encode_into(&WireV1Of(state), buf));
    match fits {
        Some(Ok(len)) => Ok(std::borrow::Cow::Borrowed(buf.get(..len).unwrap_or(&[]))),
        _ => WireV1::from_state(state)
            .trimmed_within(budget)
            .map(std::borrow::Cow::Owned),
    }
}

/// `state` within `budget` bytes of `v2` payload, trimmed as a token is (oldest
/// impressions first, then the weakest intents, ...): how a profile bounds what it
/// stores. A state that fits is returned as it is.
pub fn compact(state: State, budget: usize) -> State {
    let wire = WireV2::from_state(&state);
    let fits = codec::encode(&wire).is_ok_and(|b| b.len() <= budget);
    if fits {
        return state;
    }
    let trimmed = wire
        .trimmed_within(budget)
        .ok()
        .and_then(|bytes| WireV2::decode(&bytes).ok())
        .and_then(|wire| wire.into_state().ok());
    match trimmed {
        Some(mut trimmed) => {
            // Non-finite scores and bad segments never reach a wire form.
            trimmed.consent = state.consent;
            trimmed
        }
        None => State {
            intents: Vec::new(),
            impressions: Vec::new(),
            sequence: Vec::new(),
            experiments: Vec::new(),
            segments: Vec::new(),
            ..state
        },
    }
}

/// Ranks entries in list order (the sort is stable): the front, the oldest, goes first.
fn in_order<T>(_: &T, _: &T) -> Ordering {
    Ordering::Equal
}

fn encode<T: Encode>(value: &T) -> Result<Vec<u8>, TokenError> {
    codec::encode(value).map_err(|_| TokenError::Unencodable)
}

/// Drops entries of `list`, least valuable first by `order` (ascending, stable), until
/// their encoded sizes add up to `excess`; keeps the survivors in their order. Returns
/// the excess still to remove.
fn drop_first<T: Encode>(
    list: &mut Vec<T>,
    mut excess: usize,
    order: impl Fn(&T, &T) -> Ordering,
) -> usize {
    if excess == 0 || list.is_empty() {
        return excess;
    }
    let mut ranked: Vec<(usize, &T)> = list.iter().enumerate().collect();
    ranked.sort_by(|a, b| order(a.1, b.1));
    let mut doomed = vec![false; list.len()];
    for (index, item) in ranked {
        if excess == 0 {
            break;
        }
        let size = codec::encode(item).map_or(1, |b| b.len());
        excess = excess.saturating_sub(size);
        if let Some(flag) = doomed.get_mut(index) {
            *flag = true;
        }
    }
    let mut flags = doomed.into_iter();
    list.retain(|_| !flags.next().unwrap_or(false));
    excess
}

/// A state as bytes, every field exactly, nothing filtered or trimmed: handed across a
/// boundary inside one process (the npm package keeps the new state as bytes until
/// someone reads it), and stored by the `Profile` Durable Object, so it is versioned
/// ([`IMAGE_VERSION`], its first byte; a golden test pins the layout). Never signed:
/// tokens use [`WireV1`].
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
struct StateImage {
    visitor: [u8; 16],
    issued_at: i64,
    expires_at: i64,
    stage: Option<u32>,
    stage_since: i64,
    visits: u32,
    last_visit: i64,
    intents: Vec<(u32, f32, i64)>,
    impressions: Vec<(u32, u32, i64, i64, u32)>,
    sequence: Vec<u32>,
    experiments: Vec<(u32, u8, i64)>,
    segments: Vec<String>,
    consent: u8,
    stage_generation: u16,
    visits_by: [u32; DeviceKind::COUNT],
    last_channel: u8,
    link: Option<([u8; 16], u32, u8, i64)>,
}

/// [`StateImage`] as version 1 wrote it, before links carried `linked_at`: read only.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
struct StateImageV1 {
    visitor: [u8; 16],
    issued_at: i64,
    expires_at: i64,
    stage: Option<u32>,
    stage_since: i64,
    visits: u32,
    last_visit: i64,
    intents: Vec<(u32, f32, i64)>,
    impressions: Vec<(u32, u32, i64, i64, u32)>,
    sequence: Vec<u32>,
    experiments: Vec<(u32, u8, i64)>,
    segments: Vec<String>,
    consent: u8,
    stage_generation: u16,
    visits_by: [u32; DeviceKind::COUNT],
    last_channel: u8,
    link: Option<([u8; 16], u32, u8)>,
}

impl StateImageV1 {
    fn into_current(self) -> StateImage {
        StateImage {
            visitor: self.visitor,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            stage: self.stage,
            stage_since: self.stage_since,
            visits: self.visits,
            last_visit: self.last_visit,
            intents: self.intents,
            impressions: self.impressions,
            sequence: self.sequence,
            experiments: self.experiments,
            segments: self.segments,
            consent: self.consent,
            stage_generation: self.stage_generation,
            visits_by: self.visits_by,
            last_channel: self.last_channel,
            // Linked at 0: older than any erasure.
            link: self
                .link
                .map(|(profile, seq, devices)| (profile, seq, devices, 0)),
        }
    }
}

/// The bytes of a [`StateImage`] of the borrowed state, without copying its lists first
/// (the same layout: a test keeps the two equal).
struct StateImageOf<'s>(&'s State);

impl Encode for StateImageOf<'_> {
    fn encode<E: codec::Encoder>(&self, e: &mut E) -> Result<(), codec::EncodeError> {
        let s = self.0;
        s.visitor.encode(e)?;
        s.issued_at.encode(e)?;
        s.expires_at.encode(e)?;
        s.stage.encode(e)?;
        s.stage_since.encode(e)?;
        s.visits.encode(e)?;
        s.last_visit.encode(e)?;
        codec::encode_len(s.intents.len(), e)?;
        for i in &s.intents {
            (i.topic, i.score, i.updated_at).encode(e)?;
        }
        codec::encode_len(s.impressions.len(), e)?;
        for i in &s.impressions {
            (i.id, i.count, i.window_start, i.last_shown, i.total).encode(e)?;
        }
        s.sequence.encode(e)?;
        codec::encode_len(s.experiments.len(), e)?;
        for a in &s.experiments {
            (a.experiment, a.variant, a.at).encode(e)?;
        }
        s.segments.encode(e)?;
        s.consent.0.encode(e)?;
        s.stage_generation.encode(e)?;
        s.visits_by.encode(e)?;
        s.last_channel.map_or(0, Channel::code).encode(e)?;
        s.link
            .map(|l| (l.profile, l.seq, l.devices, l.linked_at))
            .encode(e)
    }
}

/// The first byte of a state image: a change of [`StateImage`] is a new version, and
/// [`State::from_image`] refuses other versions (the profile object logs the rows it
/// can no longer read), but for the unversioned images written before.
pub const IMAGE_VERSION: u8 = 2;

impl State {
    /// The state as versioned bytes; see [`State::from_image`].
    pub fn to_image(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.image_into(&mut out);
        out
    }

    /// [`State::to_image`] into `out` (cleared first), reusing its allocation: the npm
    /// package writes one image per answer.
    pub fn image_into(&self, out: &mut Vec<u8>) {
        let image = StateImageOf(self);
        out.clear();
        out.push(IMAGE_VERSION);
        // Most images are a few hundred bytes; one pass when they fit, two otherwise.
        let room = out.capacity().max(512);
        out.resize(room, 0);
        match out.get_mut(1..).map(|buf| codec::encode_into(&image, buf)) {
            Some(Ok(len)) => out.truncate(1 + len),
            _ => {
                out.truncate(1);
                out.extend(codec::encode(&image).unwrap_or_default());
            }
        }
    }

    /// The state [`State::to_image`] wrote, or `None` for bytes it did not write.
    ///
    /// An image written before images were versioned (the same layout without the
    /// version byte, as profile objects stored them until then) still reads.
    pub fn from_image(bytes: &[u8]) -> Option<State> {
        let (&version, rest) = bytes.split_first()?;
        let image = match version {
            IMAGE_VERSION => codec::decode::<StateImage, DECODE_LIMIT>(rest).ok()?,
            1 => codec::decode::<StateImageV1, DECODE_LIMIT>(rest)
                .ok()?
                .into_current(),
            // Written before images were versioned: version 1's layout, no version byte.
            _ => codec::decode::<StateImageV1, DECODE_LIMIT>(bytes)
                .ok()?
                .into_current(),
        };
        Some(State {
            visitor: image.visitor,
            issued_at: image.issued_at,
            expires_at: image.expires_at,
            stage: image.stage,
            stage_since: image.stage_since,
            visits: image.visits,
            last_visit: image.last_visit,
            intents: image
                .intents
                .into_iter()
                .map(|(topic, score, updated_at)| Intent {
                    topic,
                    score,
                    updated_at,
                })
                .collect(),
            impressions: image
                .impressions
                .into_iter()
                .map(|(id, count, window_start, last_shown, total)| Impression {
                    id,
                    count,
                    window_start,
                    last_shown,
                    total,
                })
                .collect(),
            sequence: image.sequence,
            experiments: image
                .experiments
                .into_iter()
                .map(|(experiment, variant, at)| Assignment {
                    experiment,
                    variant,
                    at,
                })
                .collect(),
            segments: image.segments,
            consent: Consent(image.consent),
            stage_generation: image.stage_generation,
            visits_by: image.visits_by,
            last_channel: Channel::from_code(image.last_channel),
            link: image.link.map(|(profile, seq, devices, linked_at)| Link {
                profile,
                seq,
                devices,
                linked_at,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_borrowed_encoder_writes_what_the_wire_struct_writes() {
        let mut state = State {
            visitor: [3; 16],
            issued_at: 1_795_000_000,
            expires_at: 1_797_592_000,
            stage: Some(42),
            stage_since: 1_794_000_000,
            visits: 7,
            last_visit: 1_794_990_000,
            intents: vec![
                Intent {
                    topic: 1,
                    score: 12.5,
                    updated_at: 1_794_000_000,
                },
                Intent {
                    topic: 2,
                    score: f32::INFINITY,
                    updated_at: 0,
                },
            ],
            impressions: (0..30)
                .map(|n| Impression {
                    id: n,
                    count: n % 3,
                    window_start: 1_794_000_000 - i64::from(n),
                    last_shown: 1_794_500_000 + i64::from(n) * 99,
                    total: n * 1000,
                })
                .collect(),
            sequence: vec![5, u32::MAX],
            experiments: vec![Assignment {
                experiment: 8,
                variant: 1,
                at: 1_794_000_000,
            }],
            segments: (0..20)
                .map(|n| {
                    if n == 3 {
                        "x".repeat(40)
                    } else {
                        format!("s{n}")
                    }
                })
                .collect(),
            consent: Consent(Consent::OPTED_OUT),
            ..State::default()
        };
        for _ in 0..2 {
            let expected = codec::encode(&WireV1::from_state(&state)).unwrap();
            let mut buf = vec![0u8; 4096];
            let len = codec::encode_into(&WireV1Of(&state), &mut buf).unwrap();
            assert_eq!(&buf[..len], expected.as_slice());
            // And an empty one.
            state = State::default();
        }
    }

    #[test]
    fn a_state_image_round_trips_exactly() {
        let state = State {
            visitor: [7; 16],
            issued_at: 10,
            expires_at: -20,
            stage: Some(3),
            stage_since: i64::MIN,
            visits: 9,
            last_visit: i64::MAX,
            intents: vec![Intent {
                topic: 1,
                score: f32::NAN,
                updated_at: 5,
            }],
            impressions: vec![Impression {
                id: 2,
                count: 3,
                window_start: 4,
                last_shown: 5,
                total: 6,
            }],
            sequence: vec![8],
            experiments: vec![Assignment {
                experiment: 9,
                variant: Assignment::HOLDOUT,
                at: -3,
            }],
            segments: vec!["x".repeat(MAX_SEGMENT_BYTES + 1)],
            consent: Consent(Consent::OPTED_OUT),
            stage_generation: 4,
            visits_by: [1, 2, 3, 4, 5],
            last_channel: Some(Channel::Store),
            link: Some(Link {
                profile: [9; 16],
                seq: 77,
                devices: 3,
                linked_at: 1_794_000_000,
            }),
        };
        let back = State::from_image(&state.to_image()).expect("decodes");
        // NaN is not equal to itself: compare its bits, then the rest.
        assert_eq!(back.intents[0].score.to_bits(), f32::NAN.to_bits());
        let mut expected = state.clone();
        expected.intents[0].score = 0.0;
        let mut got = back;
        got.intents[0].score = 0.0;
        assert_eq!(got, expected);
        assert_eq!(State::from_image(b"\xff\xff"), None);
    }

    /// The image as the derived `StateImage` encodes it (what images were written as
    /// before `StateImageOf`): the same bytes, for a small state and one past the first
    /// pass's 512 bytes, into a fresh buffer and into a reused one.
    #[test]
    fn a_state_image_is_the_derived_layout() {
        fn derived(s: &State) -> Vec<u8> {
            let image = StateImage {
                visitor: s.visitor,
                issued_at: s.issued_at,
                expires_at: s.expires_at,
                stage: s.stage,
                stage_since: s.stage_since,
                visits: s.visits,
                last_visit: s.last_visit,
                intents: s
                    .intents
                    .iter()
                    .map(|i| (i.topic, i.score, i.updated_at))
                    .collect(),
                impressions: s
                    .impressions
                    .iter()
                    .map(|i| (i.id, i.count, i.window_start, i.last_shown, i.total))
                    .collect(),
                sequence: s.sequence.clone(),
                experiments: s
                    .experiments
                    .iter()
                    .map(|a| (a.experiment, a.variant, a.at))
                    .collect(),
                segments: s.segments.clone(),
                consent: s.consent.0,
                stage_generation: s.stage_generation,
                visits_by: s.visits_by,
                last_channel: s.last_channel.map_or(0, Channel::code),
                link: s.link.map(|l| (l.profile, l.seq, l.devices, l.linked_at)),
            };
            let mut out = vec![IMAGE_VERSION];
            out.extend(codec::encode(&image).unwrap());
            out
        }
        let small = linked();
        let large = State {
            impressions: (0..200)
                .map(|n| Impression {
                    id: n,
                    count: n % 4,
                    window_start: 1_794_000_000 + i64::from(n),
                    last_shown: 1_794_500_000,
                    total: n * 70_000,
                })
                .collect(),
            segments: (0..30).map(|n| format!("segment-{n}")).collect(),
            last_channel: Some(Channel::App),
            ..linked()
        };
        let mut reused = Vec::new();
        for state in [&small, &large, &small, &State::default()] {
            let expected = derived(state);
            assert_eq!(state.to_image(), expected);
            state.image_into(&mut reused);
            assert_eq!(reused, expected);
        }
        assert!(derived(&large).len() > 512);
    }

    fn linked() -> State {
        State {
            visitor: [5; 16],
            issued_at: 1_795_000_000,
            expires_at: 1_797_592_000,
            stage: Some(42),
            stage_since: 1_794_000_000,
            visits: 7,
            last_visit: 1_794_990_000,
            intents: vec![Intent {
                topic: 1,
                score: 12.5,
                updated_at: 1_794_000_000,
            }],
            impressions: vec![Impression {
                id: 2,
                count: 3,
                window_start: 1_794_100_000,
                last_shown: 1_794_200_000,
                total: 6,
            }],
            sequence: vec![8],
            experiments: vec![Assignment {
                experiment: 9,
                variant: 1,
                at: 1_793_000_000,
            }],
            segments: vec!["vip".into()],
            consent: Consent(0),
            stage_generation: 2,
            visits_by: [3, 0, 4, 0, 0],
            last_channel: Some(Channel::App),
            link: Some(Link {
                profile: [7; 16],
                seq: 12,
                devices: 2,
                linked_at: 1_792_000_000,
            }),
        }
    }

    /// A `v2` payload written before links carried `linked_at` reads, linked at 0
    /// (older than any erasure), and everything else as it was written.
    #[test]
    fn a_v2_payload_without_linked_at_reads_as_linked_at_zero() {
        let state = linked();
        let current = WireV2::from_state(&state);
        let old = WireV2Unlinked {
            head: current.head.clone(),
            lists: current.lists.clone(),
            consent: current.consent,
            stage_generation: current.stage_generation,
            visits_by: current.visits_by,
            last_channel: current.last_channel,
            link: Some(([7; 16], 12, 2)),
        };
        let bytes = codec::encode(&old).unwrap();
        let back = WireV2::decode(&bytes).unwrap().into_state().unwrap();
        let mut expected = state.clone();
        if let Some(link) = expected.link.as_mut() {
            link.linked_at = 0;
        }
        assert_eq!(back, expected);
        // The current layout round-trips with its time of linking.
        let bytes = codec::encode(&current).unwrap();
        assert_eq!(WireV2::decode(&bytes).unwrap().into_state().unwrap(), state);
    }

    #[test]
    fn a_linked_state_round_trips_through_v2_and_an_unlinked_one_stays_v1() {
        let state = linked();
        assert_eq!(Version::of(&state), Version::V2);
        let mut buf = [0u8; 768];
        let bytes = encode_state_within(&state, 2_800, &mut buf)
            .unwrap()
            .into_owned();
        let back = WireV2::decode(&bytes).unwrap().into_state().unwrap();
        assert_eq!(back, state);
        // Version 1 drops what only version 2 holds; assignments read as made at
        // `issued_at`.
        let mut unlinked = state.clone();
        unlinked.link = None;
        assert_eq!(Version::of(&unlinked), Version::V1);
        let bytes = encode_state_within(&unlinked, 2_800, &mut buf)
            .unwrap()
            .into_owned();
        assert!(WireV2::decode(&bytes).is_err());
        let back = WireV1::decode(&bytes).unwrap().into_state().unwrap();
        assert_eq!(back.experiments[0].at, unlinked.issued_at);
        assert_eq!(
            (back.stage_generation, back.visits_by, back.last_channel),
            (0, [0; 5], None)
        );
    }

    #[test]
    fn a_linked_state_is_trimmed_to_the_budget_like_an_unlinked_one() {
        let mut state = linked();
        state.impressions = (0..400)
            .map(|n| Impression {
                id: n,
                count: 1,
                window_start: 1_794_000_000 + i64::from(n),
                last_shown: 1_794_000_000 + i64::from(n),
                total: 1,
            })
            .collect();
        let mut buf = [0u8; 768];
        let bytes = encode_state_within(&state, 1_000, &mut buf)
            .unwrap()
            .into_owned();
        assert!(bytes.len() <= 1_000);
        let back = WireV2::decode(&bytes).unwrap().into_state().unwrap();
        // The newest impressions survive, the link always.
        assert!(back.impressions.len() < 400 && !back.impressions.is_empty());
        assert!(back
            .impressions
            .iter()
            .all(|i| i.id >= 400 - back.impressions.len() as u32));
        assert_eq!(back.link, state.link);
    }
}
