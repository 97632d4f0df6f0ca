//! What a feed's Durable Object and the Worker tell each other: the changes of a push,
//! and the recent changes an isolate lays over its shards. Each recent change carries
//! its number (`seq`, counted by the object); a manifest says up to which number its
//! shards hold the changes (or replaced them), so an isolate lays over its shards
//! exactly the changes numbered above its manifest's.

use super::rows::{Cell, Change, Row};
use crate::codec::{self, CodecError, Decode, Encode};
use crate::time::UnixSeconds;

/// The most bytes a list of changes may claim when decoded.
const MAX_CHANGES_BYTES: usize = 256 * 1024 * 1024;

/// A change not yet in every isolate's shards.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct HotChange {
    /// Its number: the object counts every change.
    pub seq: u64,
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

/// A short fingerprint of bytes (SHA-256, 16 bytes in hex): what an idempotency key was
/// used for.
pub fn fingerprint(parts: &[&[u8]]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    hash.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// About what a row takes encoded, for cutting lists of rows into pieces of a size.
fn row_bytes(row: &Row) -> usize {
    let key: usize = row.key.iter().map(|k| k.len() + 2).sum();
    let values: usize = row
        .values
        .iter()
        .map(|v| match v {
            Cell::Text(s) => s.len() + 2,
            _ => 9,
        })
        .sum();
    key + values + 2
}

/// Rows cut into pieces of at most about `bytes` encoded (each at least one row), in
/// order: what a store with a size limit per value keeps.
pub fn pieces(rows: Vec<Row>, bytes: usize) -> Vec<Vec<Row>> {
    let mut out = Vec::new();
    let mut piece = Vec::new();
    let mut size = 0;
    for row in rows {
        let b = row_bytes(&row);
        if !piece.is_empty() && size + b > bytes {
            out.push(std::mem::take(&mut piece));
            size = 0;
        }
        size += b;
        piece.push(row);
    }
    if !piece.is_empty() {
        out.push(piece);
    }
    out
}

/// A list of rows as stored bytes.
pub fn encode_rows(rows: &[Row]) -> Vec<u8> {
    codec::encode(&rows.to_vec()).unwrap_or_default()
}

/// Rows from their stored bytes.
pub fn decode_rows(bytes: &[u8]) -> Result<Vec<Row>, CodecError> {
    codec::decode::<Vec<Row>, MAX_CHANGES_BYTES>(bytes)
}
