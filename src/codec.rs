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

pub(crate) use bincode::de::{BorrowDecoder, Decoder};
pub(crate) use bincode::error::DecodeError;
pub(crate) use bincode::BorrowDecode;

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
pub struct List<T>(pub(crate) Vec<T>);

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

/// What a hand-written decoder of a recursive value reads with (see
/// [`decode_recursive!`]): the rules' nodes and literals, a bundle's JSON renditions.
/// Each read is charged to the budget before it allocates.
pub(crate) struct Reader<'d, D> {
    decoder: &'d mut D,
}

impl<D: Decoder<Context = DecodeBudget>> Reader<'_, D> {
    /// The variant index the derived `Encode` wrote (a `u32`).
    pub(crate) fn variant(&mut self) -> Result<u32, DecodeError> {
        u32::decode(self.decoder)
    }

    /// A field.
    pub(crate) fn value<T: Decode<DecodeBudget>>(&mut self) -> Result<T, DecodeError> {
        T::decode(self.decoder)
    }

    /// A `Vec` field, its elements charged before it is allocated.
    pub(crate) fn list<T: Decode<DecodeBudget>>(&mut self) -> Result<Vec<T>, DecodeError> {
        charged_vec(self.decoder)
    }

    /// A `Box` field.
    pub(crate) fn boxed<T: Decode<DecodeBudget>>(&mut self) -> Result<Box<T>, DecodeError> {
        boxed(self.decoder)
    }

    /// An `Option<Box<_>>` field.
    pub(crate) fn optional_box<T: Decode<DecodeBudget>>(
        &mut self,
    ) -> Result<Option<Box<T>>, DecodeError> {
        optional_box(self.decoder)
    }

    /// A variant index past the type's last.
    pub(crate) fn unexpected(&self, type_name: &'static str, max: u32, found: u32) -> DecodeError {
        unexpected(type_name, max, found)
    }
}

/// Reads one level of a recursive value with `read`, charged for its depth.
pub(crate) fn read_nested<T, D, F>(decoder: &mut D, read: F) -> Result<T, DecodeError>
where
    D: Decoder<Context = DecodeBudget>,
    F: FnOnce(&mut Reader<'_, D>) -> Result<T, DecodeError>,
{
    nested(decoder, |decoder| read(&mut Reader { decoder }))
}

/// Implements decoding for a recursive type by hand (its derived `Encode` writes a
/// `u32` variant index, then the fields): `decode_recursive!(Lit, |r| { … })`, or with
/// a type parameter `decode_recursive!(Node<V>, |r| { … })`. The body reads with a
/// [`Reader`], nesting bounded by [`MAX_DECODE_DEPTH`]. Where a type is defined, it
/// decodes itself, and names no encoder crate.
macro_rules! decode_recursive {
    ($ty:ident < $param:ident >, |$r:ident| $body:block) => {
        impl<$param: $crate::codec::Decode<$crate::codec::DecodeBudget>>
            $crate::codec::Decode<$crate::codec::DecodeBudget> for $ty<$param>
        {
            fn decode<D: $crate::codec::Decoder<Context = $crate::codec::DecodeBudget>>(
                decoder: &mut D,
            ) -> Result<Self, $crate::codec::DecodeError> {
                $crate::codec::read_nested(decoder, |$r| $body)
            }
        }
        impl<'de, $param: $crate::codec::Decode<$crate::codec::DecodeBudget>>
            $crate::codec::BorrowDecode<'de, $crate::codec::DecodeBudget> for $ty<$param>
        {
            fn borrow_decode<
                D: $crate::codec::BorrowDecoder<'de, Context = $crate::codec::DecodeBudget>,
            >(
                decoder: &mut D,
            ) -> Result<Self, $crate::codec::DecodeError> {
                <Self as $crate::codec::Decode<$crate::codec::DecodeBudget>>::decode(decoder)
            }
        }
    };
    ($ty:ident, |$r:ident| $body:block) => {
        impl $crate::codec::Decode<$crate::codec::DecodeBudget> for $ty {
            fn decode<D: $crate::codec::Decoder<Context = $crate::codec::DecodeBudget>>(
                decoder: &mut D,
            ) -> Result<Self, $crate::codec::DecodeError> {
                $crate::codec::read_nested(decoder, |$r| $body)
            }
        }
        impl<'de> $crate::codec::BorrowDecode<'de, $crate::codec::DecodeBudget> for $ty {
            fn borrow_decode<
                D: $crate::codec::BorrowDecoder<'de, Context = $crate::codec::DecodeBudget>,
            >(
                decoder: &mut D,
            ) -> Result<Self, $crate::codec::DecodeError> {
                <Self as $crate::codec::Decode<$crate::codec::DecodeBudget>>::decode(decoder)
            }
        }
    };
}
pub(crate) use decode_recursive;

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
