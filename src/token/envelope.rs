//! The token text: `v1.<kid>.<payload>.<tag>`, signed and verified.
//!
//! `payload` is the base64url (no padding) of the bincode [`WireV1`] and `tag` the
//! base64url (no padding) of the full HMAC-SHA256 described in `mac.rs`. Verification
//! bounds its work before doing it (length first, then the four fields, the version and
//! the key id, then both base64 texts), checks the tag before it parses a single byte of
//! the payload, and checks the clock last. Each refusal is a [`TokenError`] for the
//! caller; adapters treat every one of them as a new visitor and tell the client
//! nothing.
//!
//! Nothing here reads a clock or panics: `now` is a parameter, and every slice and
//! number is checked.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::time::{UnixSeconds, MINUTE};

use super::keys::{Key, Keys};
use super::mac::{self, TAG_BYTES};
use super::state::State;
use super::wire::{self, Payload, Version, WireV1, WireV2, MAX_COOKIE_BYTES};

/// The version field of tokens of devices that are not linked to a profile.
pub const VERSION: &str = "v1";
/// The version field of tokens of devices linked to a profile (docs/profiles.md): the `v1`
/// payload and the link, tagged over `mm-v2`.
pub const VERSION_2: &str = "v2";
/// The longest token text [`verify`] looks at; longer input is refused before any
/// decoding or crypto. Tokens we sign are shorter than [`MAX_COOKIE_BYTES`].
pub const MAX_TOKEN_LEN: usize = 4096;
/// How far in the future `issued_at` may be: clocks of edge, apps and backends differ.
pub const MAX_SKEW: i64 = 5 * MINUTE;

/// Payloads up to this many bytes are encoded and decoded in a stack buffer.
pub(crate) const SMALL_PAYLOAD: usize = 768;

/// The cookie name, whose `mm=` counts against the cookie budget.
const COOKIE_PREFIX_LEN: usize = "mm=".len();
/// The length of the tag's base64url text: 32 bytes, no padding.
const TAG_TEXT_LEN: usize = (TAG_BYTES * 4).div_ceil(3);

/// Why a token was not accepted (or, for [`TokenError::Unencodable`], not made).
///
/// The messages are for logs and the CLI; the edge never shows them to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// There was no token, or it was empty.
    #[error("no token")]
    Missing,
    /// The input is longer than [`MAX_TOKEN_LEN`]; nothing else was looked at.
    #[error("token is {len} bytes, more than the {max} allowed", max = MAX_TOKEN_LEN)]
    TooLong {
        /// The input's length in bytes.
        len: usize,
    },
    /// The input bytes are not UTF-8.
    #[error("token is not utf-8")]
    BadUtf8,
    /// The token does not have exactly four dot-separated fields.
    #[error("token has {count} dot-separated fields, not 4")]
    WrongFieldCount {
        /// How many fields it has.
        count: usize,
    },
    /// The first field is not a version this build reads.
    #[error("token version is not {VERSION} or {VERSION_2}")]
    UnknownVersion,
    /// The key id is not listed in the keys.
    #[error("token is signed with a key id that is not listed")]
    UnknownKid,
    /// The payload or the tag is not unpadded base64url.
    #[error("token payload or tag is not unpadded base64url")]
    BadBase64,
    /// The tag is not the full HMAC of the token under its key.
    #[error("token tag does not match")]
    BadTag,
    /// The payload ends before the state does.
    #[error("token payload is truncated")]
    Truncated,
    /// The payload holds bytes after the state.
    #[error("token payload has trailing bytes")]
    TrailingBytes,
    /// The payload is signed but does not describe a state (bad encoding, a non-finite
    /// score, segments beyond their bounds).
    #[error("token payload does not describe a journey state")]
    Malformed,
    /// The token expired.
    #[error("token expired at {expires_at} (now {now})")]
    Expired {
        /// When it expired, Unix seconds.
        expires_at: UnixSeconds,
        /// The `now` it was checked against.
        now: UnixSeconds,
    },
    /// The token was issued further in the future than [`MAX_SKEW`] allows.
    #[error("token issued at {issued_at}, more than {MAX_SKEW} s after now ({now})")]
    FromFuture {
        /// When it claims to have been issued, Unix seconds.
        issued_at: UnixSeconds,
        /// The `now` it was checked against.
        now: UnixSeconds,
    },
    /// A linked token came in a `Cookie` header with other `mm` cookies: one of them may
    /// be another site's (cookie tossing), so none of the linked ones is trusted.
    #[error("a linked token came with other mm cookies")]
    LinkedAmongOthers,
    /// Signing only: the state could not be encoded within the budget.
    #[error("state could not be encoded within the token budget")]
    Unencodable,
}

/// Signs `state` with the current key: the token text, without the `mm=` cookie name.
///
/// The state is written as it is, times included: set `issued_at` and `expires_at`
/// first ([`State::new_visitor`], [`State::reissue`]). If `mm=<token>` would reach
/// [`MAX_COOKIE_BYTES`], the payload is trimmed as `wire.rs` describes, so the token may
/// hold less than `state`; intents with a non-finite score and segments outside
/// their bounds are never written. A state linked to a profile is a `v2` token, any
/// other a `v1` token.
pub fn sign(state: &State, keys: &Keys) -> Result<String, TokenError> {
    let key = keys.current();
    let (version, domain) = match Version::of(state) {
        Version::V1 => (VERSION, mac::DOMAIN_V1),
        Version::V2 => (VERSION_2, mac::DOMAIN_V2),
    };
    // Everything but the payload text: `v1.` kid `.` `.` tag.
    let fixed = version.len() + 1 + key.kid.len() + 2 + TAG_TEXT_LEN;
    let payload_text_max = (MAX_COOKIE_BYTES - 1)
        .saturating_sub(COOKIE_PREFIX_LEN)
        .saturating_sub(fixed);
    // n bytes take ceil(4n / 3) characters, so floor(3p / 4) bytes fit in p.
    let budget = payload_text_max * 3 / 4;
    // Most payloads are a few hundred bytes and are written on the stack; a larger one
    // goes to the heap (and is trimmed there if it must be).
    let mut small = [0u8; SMALL_PAYLOAD];
    let bytes = wire::encode_state_within(state, budget, &mut small)?;
    Ok(seal(version, domain, key, &bytes))
}

/// `<version>.<kid>.<payload>.<tag>` for these payload bytes under `key`.
pub(crate) fn seal(version: &str, domain: &[u8], key: &Key, bytes: &[u8]) -> String {
    let mut token = String::with_capacity(
        version.len() + key.kid.len() + 3 + TAG_TEXT_LEN + (bytes.len() * 4).div_ceil(3),
    );
    token.push_str(version);
    token.push('.');
    token.push_str(&key.kid);
    token.push('.');
    let payload_at = token.len();
    URL_SAFE_NO_PAD.encode_string(bytes, &mut token);
    let tag = mac::tag(
        &key.mac,
        domain,
        &key.kid,
        token.get(payload_at..).unwrap_or(""),
    );
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut token);
    token
}

/// Verifies a token text (without `mm=`) and returns the state it carries.
pub fn verify(token: &str, keys: &Keys, now: UnixSeconds) -> Result<State, TokenError> {
    let mut small = [0u8; SMALL_PAYLOAD];
    let mut large = Vec::new();
    let (version, bytes) = open(
        token,
        keys,
        |version| match version {
            VERSION => Some((mac::DOMAIN_V1, Version::V1)),
            VERSION_2 => Some((mac::DOMAIN_V2, Version::V2)),
            _ => None,
        },
        &mut small,
        &mut large,
    )?;
    let state = match version {
        Version::V1 => Payload::V1(WireV1::decode(bytes)?),
        Version::V2 => Payload::V2(WireV2::decode(bytes)?),
    }
    .into_state()?;
    if now >= state.expires_at {
        return Err(TokenError::Expired {
            expires_at: state.expires_at,
            now,
        });
    }
    if state.issued_at > now.saturating_add(MAX_SKEW) {
        return Err(TokenError::FromFuture {
            issued_at: state.issued_at,
            now,
        });
    }
    Ok(state)
}

/// Checks a signed text's envelope and tag and returns what its version field names
/// and the payload bytes, tag checked, not yet parsed. `versions` maps a version field
/// to its tag domain; any other version is [`TokenError::UnknownVersion`]. The payload
/// is decoded into `small` when it fits (most do), else into `large`.
pub(crate) fn open<'p, V>(
    token: &str,
    keys: &Keys,
    versions: impl Fn(&str) -> Option<(&'static [u8], V)>,
    small: &'p mut [u8; SMALL_PAYLOAD],
    large: &'p mut Vec<u8>,
) -> Result<(V, &'p [u8]), TokenError> {
    check_length(token.as_bytes())?;
    // The four fields between the dots, found with `memchr` (SIMD in WebAssembly too),
    // cheaper than `str::split`'s general searcher on every request.
    let mut dots = memchr::memchr_iter(b'.', token.as_bytes());
    let (Some(a), Some(b), Some(c), None) = (dots.next(), dots.next(), dots.next(), dots.next())
    else {
        return Err(TokenError::WrongFieldCount {
            count: memchr::memchr_iter(b'.', token.as_bytes()).count() + 1,
        });
    };
    // A dot is ASCII, so every piece between two is a `str`.
    let (Some(version), Some(kid), Some(payload), Some(tag)) = (
        token.get(..a),
        token.get(a + 1..b),
        token.get(b + 1..c),
        token.get(c + 1..),
    ) else {
        // Not reached: a dot is ASCII, so every cut is at a character boundary.
        return Err(TokenError::WrongFieldCount { count: 4 });
    };
    let (domain, version) = versions(version).ok_or(TokenError::UnknownVersion)?;
    let key = keys.get(kid).ok_or(TokenError::UnknownKid)?;
    // A tag of another length (a truncated one, say) cannot be the full HMAC.
    if tag.len() != TAG_TEXT_LEN {
        return Err(TokenError::BadTag);
    }
    // One spare byte: the decoder wants room for its estimate of 43 characters.
    let mut tag_bytes = [0u8; TAG_BYTES + 1];
    let tag_len = URL_SAFE_NO_PAD
        .decode_slice(tag, &mut tag_bytes)
        .map_err(|_| TokenError::BadBase64)?;
    let estimate = payload.len().div_ceil(4) * 3;
    let buf: &'p mut [u8] = if estimate <= SMALL_PAYLOAD {
        small
    } else {
        large.resize(estimate, 0);
        large
    };
    let payload_len = URL_SAFE_NO_PAD
        .decode_slice(payload, &mut *buf)
        .map_err(|_| TokenError::BadBase64)?;
    // `verify` refuses any tag that is not exactly 32 bytes, in constant time.
    let candidate = tag_bytes.get(..tag_len).ok_or(TokenError::BadTag)?;
    if !mac::verify(&key.mac, domain, kid, payload, candidate) {
        return Err(TokenError::BadTag);
    }
    let bytes: &'p [u8] = buf;
    Ok((
        version,
        bytes.get(..payload_len).ok_or(TokenError::BadBase64)?,
    ))
}

/// [`verify`] for raw bytes, as a header value arrives: checks the length, then UTF-8.
pub fn verify_bytes(token: &[u8], keys: &Keys, now: UnixSeconds) -> Result<State, TokenError> {
    check_length(token)?;
    let text = std::str::from_utf8(token).map_err(|_| TokenError::BadUtf8)?;
    verify(text, keys, now)
}

fn check_length(token: &[u8]) -> Result<(), TokenError> {
    if token.is_empty() {
        return Err(TokenError::Missing);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong { len: token.len() });
    }
    Ok(())
}
