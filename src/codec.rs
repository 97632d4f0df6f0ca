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

/// [`decode`] with the bundle's limits.
pub(crate) fn decode_bounded<T: Decode<()>>(bytes: &[u8], _max: usize) -> Result<T, CodecError> {
    decode::<T, { 32 * 1024 * 1024 }>(bytes)
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
