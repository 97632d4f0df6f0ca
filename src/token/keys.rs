//! The `JOURNEY_KEYS` document: the HMAC keys tokens are signed and verified with.
//!
//! `{"current": "k2", "keys": {"k1": "<base64>", "k2": "<base64>"}}`. Signing uses
//! `current`; verification accepts every listed key, so rotating (add k2, make it
//! current, remove k1 once old tokens have expired) loses no visitor. Keys are parsed
//! once, at load, and every rule is checked there: a key shorter than 32 bytes, a key id
//! that could not sit in a cookie, a `current` that is not listed are refused with the
//! key id and the numbers that were broken. Each key is absorbed into its HMAC state at
//! load, so a request only clones that state.
//!
//! This module never prints a key: `Debug` shows the key ids only, and no error carries
//! key material.

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use super::mac::{self, HmacSha256};

/// The fewest bytes a key may have: the HMAC-SHA256 output size (RFC 2104 §3).
pub const MIN_KEY_BYTES: usize = 32;
/// The most bytes a key may have; longer keys add nothing and are likely a mistake.
pub const MAX_KEY_BYTES: usize = 1024;
/// The longest key id: it travels in every token.
pub const MAX_KID_LEN: usize = 32;
/// The most keys a document may list.
pub const MAX_KEYS: usize = 16;

/// Why a `JOURNEY_KEYS` document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// The document is not JSON of the expected shape.
    #[error("keys document is not valid: {0}")]
    Json(String),
    /// `keys` is empty.
    #[error("keys document lists no keys")]
    NoKeys,
    /// More keys than [`MAX_KEYS`].
    #[error("keys document lists {count} keys, more than the {max} allowed")]
    TooManyKeys {
        /// How many were listed.
        count: usize,
        /// [`MAX_KEYS`].
        max: usize,
    },
    /// `current` names no listed key.
    #[error("current key id {current:?} is not listed in keys")]
    CurrentNotListed {
        /// The `current` value.
        current: String,
    },
    /// A key id is empty, too long, or has a character that cannot sit in a token.
    #[error("key id {kid:?} must be 1 to {max} characters of A-Z a-z 0-9 _ -", max = MAX_KID_LEN)]
    BadKid {
        /// The refused id.
        kid: String,
    },
    /// The same key id appears twice.
    #[error("key id {kid:?} is listed twice")]
    DuplicateKid {
        /// The repeated id.
        kid: String,
    },
    /// A key is not base64 (standard or url-safe, padded or not).
    #[error("key {kid:?} is not base64: {reason}")]
    BadBase64 {
        /// The key's id.
        kid: String,
        /// What the decoder said.
        reason: String,
    },
    /// A key is shorter than [`MIN_KEY_BYTES`].
    #[error("key {kid:?} is {len} bytes, fewer than the {min} required", min = MIN_KEY_BYTES)]
    TooShort {
        /// The key's id.
        kid: String,
        /// Its length in bytes after base64 decoding.
        len: usize,
    },
    /// A key is longer than [`MAX_KEY_BYTES`].
    #[error("key {kid:?} is {len} bytes, more than the {max} allowed", max = MAX_KEY_BYTES)]
    TooLong {
        /// The key's id.
        kid: String,
        /// Its length in bytes after base64 decoding.
        len: usize,
    },
}

/// One loaded key: its id and its HMAC state.
#[derive(Clone)]
pub(crate) struct Key {
    pub(crate) kid: String,
    pub(crate) mac: HmacSha256,
}

/// The loaded `JOURNEY_KEYS`: every key that verifies, and the one that signs.
#[derive(Clone)]
pub struct Keys {
    /// In document order; a handful at most, so a linear search beats hashing.
    keys: Vec<Key>,
    /// The signing key.
    current: Key,
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("current", &self.current.kid)
            .field("kids", &self.kids().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The document as written, with `keys` kept in order so duplicates can be seen.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    current: String,
    keys: Entries,
}

/// A JSON object read as a list of pairs: serde's maps keep only the last duplicate.
struct Entries(Vec<(String, String)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of key id to base64 key")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(Entries(pairs))
            }
        }
        deserializer.deserialize_map(Pairs)
    }
}

/// Whether `kid` can sit between the dots of a token and inside a cookie value.
fn valid_kid(kid: &str) -> bool {
    !kid.is_empty()
        && kid.len() <= MAX_KID_LEN
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Decodes standard or url-safe base64, with or without padding.
fn decode_key(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);
    if text.bytes().any(|b| b == b'-' || b == b'_') {
        URL_SAFE.decode(text)
    } else {
        STANDARD.decode(text)
    }
}

impl Keys {
    /// Loads a `JOURNEY_KEYS` document, checking every rule.
    pub fn from_json(text: &str) -> Result<Keys, KeysError> {
        let doc: Document =
            serde_json::from_str(text).map_err(|e| KeysError::Json(e.to_string()))?;
        let entries = doc.keys.0;
        if entries.is_empty() {
            return Err(KeysError::NoKeys);
        }
        if entries.len() > MAX_KEYS {
            return Err(KeysError::TooManyKeys {
                count: entries.len(),
                max: MAX_KEYS,
            });
        }
        let mut keys: Vec<Key> = Vec::with_capacity(entries.len());
        for (kid, text) in entries {
            if !valid_kid(&kid) {
                return Err(KeysError::BadKid { kid });
            }
            if keys.iter().any(|k| k.kid == kid) {
                return Err(KeysError::DuplicateKid { kid });
            }
            let bytes = match decode_key(&text) {
                Ok(bytes) => bytes,
                Err(e) => {
                    return Err(KeysError::BadBase64 {
                        kid,
                        reason: e
                            .to_string()
                            .to_lowercase()
                            .trim_end_matches('.')
                            .to_owned(),
                    })
                }
            };
            if bytes.len() < MIN_KEY_BYTES {
                return Err(KeysError::TooShort {
                    kid,
                    len: bytes.len(),
                });
            }
            if bytes.len() > MAX_KEY_BYTES {
                return Err(KeysError::TooLong {
                    kid,
                    len: bytes.len(),
                });
            }
            let Some(mac) = mac::keyed(&bytes) else {
                return Err(KeysError::TooLong {
                    kid,
                    len: bytes.len(),
                });
            };
            keys.push(Key { kid, mac });
        }
        let current = match keys.iter().find(|k| k.kid == doc.current) {
            Some(key) => key.clone(),
            None => {
                return Err(KeysError::CurrentNotListed {
                    current: doc.current,
                })
            }
        };
        Ok(Keys { keys, current })
    }

    /// The id of the signing key.
    pub fn current_kid(&self) -> &str {
        &self.current.kid
    }

    /// Every key id that verifies, in document order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.kid.as_str())
    }

    /// The signing key.
    pub(crate) fn current(&self) -> &Key {
        &self.current
    }

    /// The key with this id, if listed.
    pub(crate) fn get(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}
