//! What a feed's Durable Object and the Worker tell each other: the changes of a push,
//! and the recent changes an isolate lays over its shards. Each recent change carries
//! the version of the feed it was made on (`base`): an isolate applies it only while its
//! manifest is not newer, since a newer manifest's shards hold it already (or a full
//! push replaced it).

use super::rows::Change;
use crate::codec::{self, CodecError, Decode, Encode};
use crate::time::UnixSeconds;

/// The most bytes a list of changes may claim when decoded.
const MAX_CHANGES_BYTES: usize = 256 * 1024 * 1024;

/// A change not yet in every isolate's shards.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct HotChange {
    /// The feed's version when it was made.
    pub base: u64,
    /// When it was made.
    pub at: UnixSeconds,
    pub change: Change,
}

/// A push's changes as the Worker hands them to the feed's object.
pub fn encode_changes(changes: &[Change]) -> Vec<u8> {
    codec::encode(&changes.to_vec()).unwrap_or_default()
}

/// The changes of a push.
pub fn decode_changes(bytes: &[u8]) -> Result<Vec<Change>, CodecError> {
    codec::decode::<Vec<Change>, MAX_CHANGES_BYTES>(bytes)
}

/// The recent changes the object answers an isolate with.
pub fn encode_hot(hot: &[HotChange]) -> Vec<u8> {
    codec::encode(&hot.to_vec()).unwrap_or_default()
}

/// The recent changes, read back.
pub fn decode_hot(bytes: &[u8]) -> Result<Vec<HotChange>, CodecError> {
    codec::decode::<Vec<HotChange>, MAX_CHANGES_BYTES>(bytes)
}
