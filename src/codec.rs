//! The one module that names bincode.
//!
//! Compiled bundles and token payloads are bincode-encoded. bincode 2 is flagged
//! unmaintained (RUSTSEC-2025-0141), so every other module goes through these four
//! functions and the derive re-exports below: swapping the encoder is a change to this
//! file and to the derives, not a hunt through the code base. Decoding is bounded: a
//! caller passes the most bytes the value may claim, so a hostile length prefix cannot
//! make us allocate gigabytes.

pub(crate) use bincode::enc::Encoder;
pub(crate) use bincode::error::EncodeError;
pub(crate) use bincode::{Decode, Encode};

use bincode::de::{BorrowDecoder, Decoder};
use bincode::error::DecodeError;
use bincode::BorrowDecode;

use crate::bundle::JsonTemplate;
use crate::rules::{Lit, Node, Rule};

/// How deep recursive values (rule nodes, literals, JSON renditions) may nest in a
/// payload: decoding them recurses, and a crafted payload must not exhaust the stack.
/// Compiled rules nest at most `Budget::max_rule_depth` (32) deep, plus the JSON
/// literals inside them.
pub(crate) const MAX_DECODE_DEPTH: u32 = 160;

/// The context a bundle payload is decoded with: what its lists and nodes may claim in
/// memory, counted as they are decoded (never given back, unlike bincode's own claims,
/// which only bound one list at a time), and how deep recursion has gone.
pub(crate) struct DecodeBudget {
    /// What is left, shared with the caller, who reads what was claimed afterwards.
    left: std::rc::Rc<std::cell::Cell<usize>>,
    depth: u32,
}

impl DecodeBudget {
    fn charge(&mut self, bytes: usize) -> Result<(), DecodeError> {
        match self.left.get().checked_sub(bytes) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(DecodeError::Other(OVER_BUDGET)),
        }
    }
}

const OVER_BUDGET: &str = "decoded size over budget (max_decoded_bytes)";
const TOO_DEEP: &str = "values nested too deep";

/// A list in a bundle payload: a `Vec` on the wire and in memory, whose elements are
/// charged to the [`DecodeBudget`] before they are allocated.
#[derive(Clone, PartialEq, Eq, Default)]
pub(crate) struct List<T>(pub(crate) Vec<T>);

impl<T: std::fmt::Debug> std::fmt::Debug for List<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<T> std::ops::Deref for List<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T> std::ops::DerefMut for List<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.0
    }
}

impl<T> From<Vec<T>> for List<T> {
    fn from(items: Vec<T>) -> Self {
        List(items)
    }
}

impl<T> FromIterator<T> for List<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        List(iter.into_iter().collect())
    }
}

impl<'a, T> IntoIterator for &'a List<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T> IntoIterator for List<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<T: Encode> Encode for List<T> {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        self.0.encode(encoder)
    }
}

/// A `Vec` as bincode writes it (a `u64` length, then the elements), its elements
/// charged to the budget before the `Vec` is allocated.
fn charged_vec<T, D>(decoder: &mut D) -> Result<Vec<T>, DecodeError>
where
    D: Decoder<Context = DecodeBudget>,
    T: Decode<DecodeBudget>,
{
    let len = u64::decode(decoder)?;
    let len = usize::try_from(len).map_err(|_| DecodeError::OutsideUsizeRange(len))?;
    decoder
        .context()
        .charge(len.saturating_mul(std::mem::size_of::<T>()))?;
    let mut items = Vec::with_capacity(len);
    for _ in 0..len {
        items.push(T::decode(decoder)?);
    }
    Ok(items)
}

impl<T: Decode<DecodeBudget>> Decode<DecodeBudget> for List<T> {
    fn decode<D: Decoder<Context = DecodeBudget>>(decoder: &mut D) -> Result<Self, DecodeError> {
        charged_vec(decoder).map(List)
    }
}

impl<'de, T: Decode<DecodeBudget>> BorrowDecode<'de, DecodeBudget> for List<T> {
    fn borrow_decode<D: BorrowDecoder<'de, Context = DecodeBudget>>(
        decoder: &mut D,
    ) -> Result<Self, DecodeError> {
        charged_vec(decoder).map(List)
    }
}

/// Runs one level of a recursive value's decoding, charging its size and its depth.
fn nested<T, D, F>(decoder: &mut D, decode: F) -> Result<T, DecodeError>
where
    D: Decoder<Context = DecodeBudget>,
    F: FnOnce(&mut D) -> Result<T, DecodeError>,
{
    let budget = decoder.context();
    if budget.depth >= MAX_DECODE_DEPTH {
        return Err(DecodeError::Other(TOO_DEEP));
    }
    budget.depth += 1;
    let value = decode(decoder);
    decoder.context().depth -= 1;
    value
}

fn boxed<T, D>(decoder: &mut D) -> Result<Box<T>, DecodeError>
where
    D: Decoder<Context = DecodeBudget>,
    T: Decode<DecodeBudget>,
{
    decoder.context().charge(std::mem::size_of::<T>())?;
    T::decode(decoder).map(Box::new)
}

fn optional_box<T, D>(decoder: &mut D) -> Result<Option<Box<T>>, DecodeError>
where
    D: Decoder<Context = DecodeBudget>,
    T: Decode<DecodeBudget>,
{
    match u8::decode(decoder)? {
        0 => Ok(None),
        1 => boxed(decoder).map(Some),
        found => Err(DecodeError::UnexpectedVariant {
            type_name: "Option",
            allowed: &bincode::error::AllowedEnumVariants::Range { min: 0, max: 1 },
            found: u32::from(found),
        }),
    }
}

fn unexpected(type_name: &'static str, max: u32, found: u32) -> DecodeError {
    DecodeError::UnexpectedVariant {
        type_name,
        allowed: match max {
            5 => &bincode::error::AllowedEnumVariants::Range { min: 0, max: 5 },
            _ => &bincode::error::AllowedEnumVariants::Range { min: 0, max: 8 },
        },
        found,
    }
}

// The recursive types decode by hand, with the variant numbers and field order their
// derived `Encode` writes (a `u32` variant index, then the fields): a test round-trips
// every variant.

impl<V: Decode<DecodeBudget>> Decode<DecodeBudget> for Node<V> {
    fn decode<D: Decoder<Context = DecodeBudget>>(decoder: &mut D) -> Result<Self, DecodeError> {
        nested(decoder, |d| {
            Ok(match u32::decode(d)? {
                0 => Node::Lit(Lit::decode(d)?),
                1 => Node::Array(charged_vec(d)?),
                2 => Node::Var(V::decode(d)?, optional_box(d)?),
                3 => Node::Local(charged_vec(d)?, optional_box(d)?),
                4 => Node::DynVar(boxed(d)?, optional_box(d)?, bool::decode(d)?),
                5 => Node::Op(Decode::decode(d)?, charged_vec(d)?),
                6 => Node::Glob(boxed(d)?, Decode::decode(d)?),
                7 => Node::SemVer(boxed(d)?, Decode::decode(d)?, Decode::decode(d)?),
                8 => Node::InSegment(V::decode(d)?, boxed(d)?),
                found => return Err(unexpected("Node", 8, found)),
            })
        })
    }
}

impl<'de, V: Decode<DecodeBudget>> BorrowDecode<'de, DecodeBudget> for Node<V> {
    fn borrow_decode<D: BorrowDecoder<'de, Context = DecodeBudget>>(
        decoder: &mut D,
    ) -> Result<Self, DecodeError> {
        Node::decode(decoder)
    }
}

impl<V: Decode<DecodeBudget>> Decode<DecodeBudget> for Rule<V> {
    fn decode<D: Decoder<Context = DecodeBudget>>(decoder: &mut D) -> Result<Self, DecodeError> {
        Ok(Rule {
            root: Node::decode(decoder)?,
        })
    }
}

impl<'de, V: Decode<DecodeBudget>> BorrowDecode<'de, DecodeBudget> for Rule<V> {
    fn borrow_decode<D: BorrowDecoder<'de, Context = DecodeBudget>>(
        decoder: &mut D,
    ) -> Result<Self, DecodeError> {
        Rule::decode(decoder)
    }
}

impl Decode<DecodeBudget> for Lit {
    fn decode<D: Decoder<Context = DecodeBudget>>(decoder: &mut D) -> Result<Self, DecodeError> {
        nested(decoder, |d| {
            Ok(match u32::decode(d)? {
                0 => Lit::Null,
                1 => Lit::Bool(bool::decode(d)?),
                2 => Lit::Number(f64::decode(d)?),
                3 => Lit::String(String::decode(d)?),
                4 => Lit::Array(charged_vec(d)?),
                5 => Lit::Object(charged_vec(d)?),
                found => return Err(unexpected("Lit", 5, found)),
            })
        })
    }
}

impl<'de> BorrowDecode<'de, DecodeBudget> for Lit {
    fn borrow_decode<D: BorrowDecoder<'de, Context = DecodeBudget>>(
        decoder: &mut D,
    ) -> Result<Self, DecodeError> {
        Lit::decode(decoder)
    }
}

impl Decode<DecodeBudget> for JsonTemplate {
    fn decode<D: Decoder<Context = DecodeBudget>>(decoder: &mut D) -> Result<Self, DecodeError> {
        nested(decoder, |d| {
            Ok(match u32::decode(d)? {
                0 => JsonTemplate::Null,
                1 => JsonTemplate::Bool(bool::decode(d)?),
                2 => JsonTemplate::Number(f64::decode(d)?),
                3 => JsonTemplate::String(Decode::decode(d)?),
                4 => JsonTemplate::Array(charged_vec(d)?),
                5 => JsonTemplate::Object(charged_vec(d)?),
                found => return Err(unexpected("JsonTemplate", 5, found)),
            })
        })
    }
}

impl<'de> BorrowDecode<'de, DecodeBudget> for JsonTemplate {
    fn borrow_decode<D: BorrowDecoder<'de, Context = DecodeBudget>>(
        decoder: &mut D,
    ) -> Result<Self, DecodeError> {
        JsonTemplate::decode(decoder)
    }
}

/// Writes the length of a list the way a `Vec` of it is encoded, for hand-written
/// encoders that produce a `Vec`'s bytes without building the `Vec`.
pub(crate) fn encode_len<E: Encoder>(len: usize, encoder: &mut E) -> Result<(), EncodeError> {
    u64::try_from(len)
        .map_err(|_| EncodeError::Other("list too long"))?
        .encode(encoder)
}

/// Why bytes did not decode into the expected value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The bytes end before the value does.
    #[error("truncated: the bytes end before the value does")]
    Truncated,
    /// The value decoded but bytes are left over.
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
    /// The bytes do not describe a value of this type, or claim more than the limit.
    #[error("invalid encoding: {0}")]
    Invalid(String),
    /// The value does not fit in the buffer given to [`encode_into`].
    #[error("the encoding does not fit in {0} bytes")]
    TooLong(usize),
}

fn config<const LIMIT: usize>() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<LIMIT>,
> {
    bincode::config::standard().with_limit::<LIMIT>()
}

/// Encodes a value; infallible for the in-memory types we define (no I/O, no maps with
/// failing keys), so an error here is reported as an empty encoding the caller rejects.
pub(crate) fn encode<T: Encode>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::encode_to_vec(value, config::<{ usize::MAX }>())
        .map_err(|e| CodecError::Invalid(e.to_string()))
}

/// Encodes a value into `buf` in one pass (no allocation), returning the length written,
/// or [`CodecError::TooLong`] when it does not fit.
pub(crate) fn encode_into<T: Encode>(value: &T, buf: &mut [u8]) -> Result<usize, CodecError> {
    let room = buf.len();
    bincode::encode_into_slice(value, buf, config::<{ usize::MAX }>()).map_err(|e| match e {
        bincode::error::EncodeError::UnexpectedEnd => CodecError::TooLong(room),
        other => CodecError::Invalid(other.to_string()),
    })
}

/// Decodes a bundle payload: exactly one value, its lists and nodes within
/// `max_bytes` of memory ([`DecodeBudget`]), nested no deeper than
/// [`MAX_DECODE_DEPTH`]. Strings cost what they take on the wire, which the frame's
/// size already bounds; one list may not claim more than that either. Gives the value
/// and the bytes its lists and nodes claimed.
pub(crate) fn decode_bounded<T: Decode<DecodeBudget>>(
    bytes: &[u8],
    max_bytes: usize,
) -> Result<(T, usize), CodecError> {
    let left = std::rc::Rc::new(std::cell::Cell::new(max_bytes));
    let budget = DecodeBudget {
        left: left.clone(),
        depth: 0,
    };
    let config = config::<{ 8 * 1024 * 1024 }>();
    match bincode::decode_from_slice_with_context::<_, T, _>(bytes, config, budget) {
        Ok((value, used)) if used == bytes.len() => Ok((value, max_bytes - left.get())),
        Ok((_, used)) => Err(CodecError::Trailing(bytes.len().saturating_sub(used))),
        Err(DecodeError::UnexpectedEnd { .. }) => Err(CodecError::Truncated),
        Err(e) => Err(CodecError::Invalid(e.to_string())),
    }
}

/// Decodes exactly one value from `bytes`, refusing trailing bytes and any claim of more
/// than `LIMIT` bytes of allocation.
pub(crate) fn decode<T: Decode<()>, const LIMIT: usize>(bytes: &[u8]) -> Result<T, CodecError> {
    match bincode::decode_from_slice::<T, _>(bytes, config::<LIMIT>()) {
        Ok((value, used)) if used == bytes.len() => Ok(value),
        Ok((_, used)) => Err(CodecError::Trailing(bytes.len().saturating_sub(used))),
        Err(bincode::error::DecodeError::UnexpectedEnd { .. }) => Err(CodecError::Truncated),
        Err(e) => Err(CodecError::Invalid(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::{compile, JsonSchema, Limits};

    fn round_trip(rule: serde_json::Value) {
        let compiled = compile(&rule, &JsonSchema, Limits::default()).unwrap();
        let bytes = encode(&compiled).unwrap();
        let (decoded, claimed): (Rule<Vec<String>>, usize) =
            decode_bounded(&bytes, 1 << 20).unwrap();
        assert_eq!(decoded, compiled, "{rule}");
        assert!(claimed > 0);
    }

    /// The hand-written decoders read what the derived encoders write, for every
    /// variant of every recursive type.
    #[test]
    fn every_variant_round_trips() {
        round_trip(serde_json::json!({"and": [
            {"==": [{"var": "a.b"}, [1, "x", null, true, 2.5, {"k": [1], "l": {"j": null, "m": 2}}]]},
            {"!": [{"var": ["c", {"cat": ["d", 1]}]}]},
            {"map": [{"var": "list"}, {"var": "x.y"}]},
            {"var": [{"cat": ["e", "f"]}, 3]},
            {"glob": [{"var": "page.path"}, "/models/**/x-*"]},
            {"sem_ver": [{"var": "app.version"}, "^", "1.2.3-beta.4"]},
            {"in_segment": "vip"},
            [{"var": "a"}, 2],
            {"reduce": [{"var": "list"}, {"+": [{"var": "current"}, {"var": "accumulator"}]}, 0]}
        ]}));
    }

    #[test]
    fn nesting_past_the_depth_bound_is_refused_without_recursing() {
        let mut node: Node<Vec<String>> = Node::Lit(Lit::Null);
        for _ in 0..(MAX_DECODE_DEPTH + 10) {
            node = Node::Op(crate::rules::Op::Not, vec![node]);
        }
        let bytes = encode(&Rule { root: node }).unwrap();
        let err = decode_bounded::<Rule<Vec<String>>>(&bytes, 1 << 30).unwrap_err();
        assert_eq!(
            err,
            CodecError::Invalid("Other(\"values nested too deep\")".into())
        );
    }

    #[test]
    fn many_small_nodes_are_charged_before_they_are_allocated() {
        // Two bytes on the wire each, a whole `Node` in memory each.
        let root: Node<Vec<String>> = Node::Array(vec![Node::Lit(Lit::Null); 100_000]);
        let bytes = encode(&Rule { root }).unwrap();
        assert!(bytes.len() < 250_000);
        let err = decode_bounded::<Rule<Vec<String>>>(&bytes, 1_000_000).unwrap_err();
        assert_eq!(
            err,
            CodecError::Invalid("Other(\"decoded size over budget (max_decoded_bytes)\")".into())
        );
    }
}
