//! The `JOURNEY_KEYS` document: the HMAC keys tokens are signed and verified with.
//!
//! `{"current": "k2", "keys": {"k1": "<base64>", "k2": "<base64>"}}`. Signing uses
//! `current`; verification accepts every listed key, so rotating (add k2, make it
//! current, remove k1 once old tokens have expired) loses no visitor. Keys are parsed
//! once, at load, and every rule is checked there: a key shorter than 32 bytes, a key id
//! that could not sit in a cookie, a `current` that is not listed are refused with the
//! key's position in `keys` and the numbers that were broken. Each key is absorbed into its HMAC state at
//! load, so a request only clones that state.
//!
//! This module never prints a key: the `Debug` of [`Keys`] shows the key ids only, and
//! no error carries any text of the document (a mistake can put a key where an id, a
//! field name or `current` belongs, and errors reach `/v1/bundle`'s health and the
//! logs): errors name the document's fields, kinds of value, positions, line:column and
//! counts.

use std::cell::Cell;
use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::error::Category;

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
///
/// No variant carries text from the document, not even a key id: the document is a
/// secret, and a mistake can put a key where an id, a field name or `current` belongs.
/// Errors name the document's own fields, kinds of JSON value, positions (`#2`: the
/// second entry of `keys`, counted from 1), line:column and counts; `Debug` shows
/// nothing more than `Display`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// The document is not JSON.
    #[error("keys document is not JSON: {problem} at line {line} column {column}")]
    Syntax {
        /// What is wrong there.
        problem: SyntaxProblem,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// The document is JSON of another shape than `{"current": …, "keys": {…}}`.
    #[error("keys document {problem} at line {line} column {column}")]
    Shape {
        /// What is wrong there.
        problem: ShapeProblem,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
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
    #[error("current names no key id listed in keys")]
    CurrentNotListed,
    /// A key id is empty, too long, or has a character that cannot sit in a token.
    #[error("key id #{position} must be 1 to {max} characters of A-Z a-z 0-9 _ -", max = MAX_KID_LEN)]
    BadKid {
        /// Its position in `keys`, from 1.
        position: usize,
    },
    /// The same key id appears twice.
    #[error("key id #{position} is the same as #{first}")]
    DuplicateKid {
        /// The position in `keys` of the repeat, from 1.
        position: usize,
        /// The position of the first, from 1.
        first: usize,
    },
    /// A key is not base64 (standard or url-safe, padded or not).
    #[error("key #{position} is not base64: {problem}")]
    BadBase64 {
        /// Its position in `keys`, from 1.
        position: usize,
        /// What the decoder found, by offset.
        problem: Base64Problem,
    },
    /// A key is shorter than [`MIN_KEY_BYTES`].
    #[error("key #{position} is {len} bytes, fewer than the {min} required", min = MIN_KEY_BYTES)]
    TooShort {
        /// Its position in `keys`, from 1.
        position: usize,
        /// Its length in bytes after base64 decoding.
        len: usize,
    },
    /// A key is longer than [`MAX_KEY_BYTES`].
    #[error("key #{position} is {len} bytes, more than the {max} allowed", max = MAX_KEY_BYTES)]
    TooLong {
        /// Its position in `keys`, from 1.
        position: usize,
        /// Its length in bytes after base64 decoding.
        len: usize,
    },
}

/// Why a keys document is not JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyntaxProblem {
    /// Something other than JSON where JSON belongs.
    #[error("a syntax error")]
    Syntax,
    /// The text ends inside a value.
    #[error("it ends early")]
    Truncated,
}

/// How a keys document differs from `{"current": "<kid>", "keys": {"<kid>": "<base64>"}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShapeProblem {
    /// The document is not an object.
    #[error("is {found}, not an object")]
    NotAnObject {
        /// The kind of JSON value it is.
        found: &'static str,
    },
    /// A field the document does not have (its name is not repeated: it may be a key).
    #[error("has a field other than current and keys")]
    UnknownField,
    /// `current` or `keys` twice.
    #[error("has {field} twice")]
    DuplicateField {
        /// `current` or `keys`.
        field: &'static str,
    },
    /// `current` or `keys` missing.
    #[error("has no {field}")]
    MissingField {
        /// `current` or `keys`.
        field: &'static str,
    },
    /// `current` is not a string.
    #[error("has a current that is {found}, not a key id")]
    CurrentNotText {
        /// The kind of JSON value it is.
        found: &'static str,
    },
    /// `keys` is not an object.
    #[error("has keys that is {found}, not an object of key id to base64 key")]
    KeysNotAnObject {
        /// The kind of JSON value it is.
        found: &'static str,
    },
    /// A key is not a string.
    #[error("has key #{position} that is {found}, not a base64 string")]
    KeyNotText {
        /// Its position in `keys`, from 1.
        position: usize,
        /// The kind of JSON value it is.
        found: &'static str,
    },
}

/// What the base64 decoder found wrong with a key, by offset only (never the byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Base64Problem {
    /// A character outside the alphabet.
    #[error("a character outside the alphabet at offset {offset}")]
    InvalidCharacter {
        /// Its offset in the key's text.
        offset: usize,
    },
    /// A length no base64 text has.
    #[error("{len} characters, a length base64 cannot have")]
    InvalidLength {
        /// The number of base64 characters.
        len: usize,
    },
    /// A last character whose unused bits are set: a truncated or altered key.
    #[error("a last character that does not end a key, at offset {offset}")]
    InvalidLastCharacter {
        /// Its offset in the key's text.
        offset: usize,
    },
    /// Padding where none belongs.
    #[error("misplaced padding")]
    InvalidPadding,
}

impl From<base64::DecodeError> for Base64Problem {
    fn from(e: base64::DecodeError) -> Self {
        match e {
            base64::DecodeError::InvalidByte(offset, _) => {
                Base64Problem::InvalidCharacter { offset }
            }
            base64::DecodeError::InvalidLength(len) => Base64Problem::InvalidLength { len },
            base64::DecodeError::InvalidLastSymbol(offset, _) => {
                Base64Problem::InvalidLastCharacter { offset }
            }
            base64::DecodeError::InvalidPadding => Base64Problem::InvalidPadding,
        }
    }
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

/// The document as read: `current`, and `keys` in order (a JSON object read as a list
/// of pairs, so a key id listed twice is seen: serde's maps keep only the last).
struct Document {
    current: String,
    keys: Vec<(String, String)>,
}

/// Where the reader leaves the first shape problem it meets. It fails with an error of
/// its own whose message is never shown: serde_json places it by line and column, and
/// [`Keys::from_json`] takes the problem from here. Nothing serde_json would write about
/// a value (`invalid type: string "…"`) can reach a [`KeysError`] this way.
type ProblemSlot = Cell<Option<ShapeProblem>>;

fn fail<E: de::Error>(slot: &ProblemSlot, problem: ShapeProblem) -> E {
    slot.set(Some(problem));
    E::custom("keys document shape")
}

/// What one JSON value of the document should be: a string, an object, or neither, and
/// what to make of each. Every other kind is told by its name only.
trait Expect<'de>: Sized {
    type Out;
    fn string<E: de::Error>(self, text: String) -> Result<Self::Out, E>;
    fn object<A: MapAccess<'de>>(self, map: A) -> Result<Self::Out, A::Error>;
    fn other<E: de::Error>(self, found: &'static str) -> Result<Self::Out, E>;
}

/// Reads one JSON value as its [`Expect`] says.
struct Reader<X>(X);

impl<'de, X: Expect<'de>> DeserializeSeed<'de> for Reader<X> {
    type Value = X::Out;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<X::Out, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, X: Expect<'de>> Visitor<'de> for Reader<X> {
    type Value = X::Out;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a keys document")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<X::Out, E> {
        self.0.string(v.to_owned())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<X::Out, E> {
        self.0.string(v)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<X::Out, A::Error> {
        self.0.object(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<X::Out, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        self.0.other("an array")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<X::Out, E> {
        self.0.other("a boolean")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<X::Out, E> {
        self.0.other("a number")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<X::Out, E> {
        self.0.other("a number")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<X::Out, E> {
        self.0.other("a number")
    }
    fn visit_unit<E: de::Error>(self) -> Result<X::Out, E> {
        self.0.other("null")
    }
}

/// The document: an object of `current` and `keys`.
struct TheDocument<'s>(&'s ProblemSlot);

impl<'de> Expect<'de> for TheDocument<'_> {
    type Out = Document;
    fn string<E: de::Error>(self, _: String) -> Result<Document, E> {
        Err(fail(
            self.0,
            ShapeProblem::NotAnObject { found: "a string" },
        ))
    }
    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Document, A::Error> {
        let (mut current, mut keys) = (None, None);
        while let Some(field) = map.next_key::<String>()? {
            let (name, seen) = match field.as_str() {
                "current" => ("current", current.is_some()),
                "keys" => ("keys", keys.is_some()),
                _ => return Err(fail(self.0, ShapeProblem::UnknownField)),
            };
            if seen {
                return Err(fail(self.0, ShapeProblem::DuplicateField { field: name }));
            }
            if name == "current" {
                current = Some(map.next_value_seed(Reader(Current(self.0)))?);
            } else {
                keys = Some(map.next_value_seed(Reader(KeysField(self.0)))?);
            }
        }
        let missing = |field| fail(self.0, ShapeProblem::MissingField { field });
        Ok(Document {
            current: current.ok_or_else(|| missing("current"))?,
            keys: keys.ok_or_else(|| missing("keys"))?,
        })
    }
    fn other<E: de::Error>(self, found: &'static str) -> Result<Document, E> {
        Err(fail(self.0, ShapeProblem::NotAnObject { found }))
    }
}

/// `current`: a string.
struct Current<'s>(&'s ProblemSlot);

impl<'de> Expect<'de> for Current<'_> {
    type Out = String;
    fn string<E: de::Error>(self, text: String) -> Result<String, E> {
        Ok(text)
    }
    fn object<A: MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        self.other("an object")
    }
    fn other<E: de::Error>(self, found: &'static str) -> Result<String, E> {
        Err(fail(self.0, ShapeProblem::CurrentNotText { found }))
    }
}

/// `keys`: an object of key id to base64 key, in order.
struct KeysField<'s>(&'s ProblemSlot);

impl<'de> Expect<'de> for KeysField<'_> {
    type Out = Vec<(String, String)>;
    fn string<E: de::Error>(self, _: String) -> Result<Self::Out, E> {
        self.other("a string")
    }
    fn object<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Out, A::Error> {
        let mut pairs = Vec::new();
        while let Some(kid) = map.next_key::<String>()? {
            let position = pairs.len() + 1;
            let key = map.next_value_seed(Reader(KeyText {
                slot: self.0,
                position,
            }))?;
            pairs.push((kid, key));
        }
        Ok(pairs)
    }
    fn other<E: de::Error>(self, found: &'static str) -> Result<Self::Out, E> {
        Err(fail(self.0, ShapeProblem::KeysNotAnObject { found }))
    }
}

/// One key: a string.
struct KeyText<'s> {
    slot: &'s ProblemSlot,
    position: usize,
}

impl<'de> Expect<'de> for KeyText<'_> {
    type Out = String;
    fn string<E: de::Error>(self, text: String) -> Result<String, E> {
        Ok(text)
    }
    fn object<A: MapAccess<'de>>(self, _: A) -> Result<String, A::Error> {
        self.other("an object")
    }
    fn other<E: de::Error>(self, found: &'static str) -> Result<String, E> {
        Err(fail(
            self.slot,
            ShapeProblem::KeyNotText {
                position: self.position,
                found,
            },
        ))
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
    /// Loads a `JOURNEY_KEYS` document, checking every rule. The error, if any,
    /// carries no text of the document (see [`KeysError`]).
    pub fn from_json(text: &str) -> Result<Keys, KeysError> {
        let problem = ProblemSlot::new(None);
        let mut de = serde_json::Deserializer::from_str(text);
        let doc = Reader(TheDocument(&problem))
            .deserialize(&mut de)
            .and_then(|doc| de.end().map(|()| doc))
            .map_err(|e| {
                let (line, column) = (e.line(), e.column());
                match (problem.take(), e.classify()) {
                    (Some(problem), _) => KeysError::Shape {
                        problem,
                        line,
                        column,
                    },
                    (None, Category::Eof) => KeysError::Syntax {
                        problem: SyntaxProblem::Truncated,
                        line,
                        column,
                    },
                    (None, _) => KeysError::Syntax {
                        problem: SyntaxProblem::Syntax,
                        line,
                        column,
                    },
                }
            })?;
        let entries = doc.keys;
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
        for (i, (kid, text)) in entries.into_iter().enumerate() {
            let position = i + 1;
            if !valid_kid(&kid) {
                return Err(KeysError::BadKid { position });
            }
            if let Some(first) = keys.iter().position(|k| k.kid == kid) {
                return Err(KeysError::DuplicateKid {
                    position,
                    first: first + 1,
                });
            }
            let bytes = decode_key(&text).map_err(|e| KeysError::BadBase64 {
                position,
                problem: e.into(),
            })?;
            let len = bytes.len();
            if len < MIN_KEY_BYTES {
                return Err(KeysError::TooShort { position, len });
            }
            if len > MAX_KEY_BYTES {
                return Err(KeysError::TooLong { position, len });
            }
            let Some(mac) = mac::keyed(&bytes) else {
                return Err(KeysError::TooLong { position, len });
            };
            keys.push(Key { kid, mac });
        }
        let Some(current) = keys.iter().find(|k| k.kid == doc.current).cloned() else {
            return Err(KeysError::CurrentNotListed);
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
