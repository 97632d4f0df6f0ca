//! The signed journey token (docs/api.md, "The journey token"): the visitor's state,
//! carried by the visitor.
//!
//! `mm=v1.<kid>.<payload>.<tag>`. The payload is the base64url (no padding) of the
//! bincode [`State`] in its frozen wire form; the tag is the base64url (no padding) of
//! the full 32-byte HMAC-SHA256, under the key `kid` of the `JOURNEY_KEYS` document,
//! over exactly the bytes `mm-v1`, a zero byte, the kid, a zero byte, and the payload's
//! base64url text. Another system can verify a token from that sentence alone.
//!
//! - [`Keys::from_json`] loads the keys once; [`sign`] uses `current`, [`verify`]
//!   accepts every listed key, so rotation loses no visitor.
//! - [`verify`] (token text), [`verify_bytes`] (a raw header value) and
//!   [`verify_cookie`] (a whole `Cookie` header) return the state or a [`TokenError`].
//!   Adapters treat every error as a new visitor ([`State::new_visitor`]) and never tell
//!   the client which check failed.
//! - [`sign`] keeps `mm=<token>` under [`MAX_COOKIE_BYTES`] by dropping the oldest
//!   impressions, then the weakest intents.
//! - `State::to_json` / `State::from_json` (in `crate::view`) are its JSON view by
//!   stable ids.
//!
//! Nothing in this module reads a clock, the environment or a source of randomness,
//! and nothing in it panics on any input.

mod cookie;
mod envelope;
mod keys;
mod link;
mod mac;
mod state;
mod wire;

pub use crate::context::DeviceKind;
pub use cookie::{
    cookie_value, cookie_values, verify_cookie, CookieValues, COOKIE_NAME, MAX_COOKIES,
    MAX_COOKIE_HEADER_BYTES, MAX_DUPLICATES,
};
pub use envelope::{
    sign, verify, verify_bytes, TokenError, MAX_SKEW, MAX_TOKEN_LEN, VERSION, VERSION_2,
};
pub use keys::{
    Base64Problem, Keys, KeysError, ShapeProblem, SyntaxProblem, MAX_KEYS, MAX_KEY_BYTES,
    MAX_KID_LEN, MIN_KEY_BYTES,
};
pub use link::{
    IdentityLink, LinkError, DEFAULT_LINK_TTL, LINK_VERSION, MAX_CAMPAIGN_BYTES, MAX_LINK_TTL,
};
pub use state::{Assignment, Consent, Impression, Intent, Link, State, DEFAULT_TTL};
pub use wire::{
    compact, segment_ok, IMAGE_VERSION, MAX_COOKIE_BYTES, MAX_SEGMENTS, MAX_SEGMENT_BYTES,
};
