//! A feed's rows in shards: every row whose first key column hashes to the same shard,
//! sorted by key, in one value an isolate reads whole (one KV get) and keeps. All the
//! rows of one item (an sku's stock in every store) are in one shard.

use super::rows::Row;
use crate::codec::{self, CodecError, Decode, Encode};
use crate::ids::fnv1a32;

/// How many rows a shard holds, about: a full push of `n` rows is cut into
/// `n / ROWS_PER_SHARD` shards.
pub const ROWS_PER_SHARD: u64 = 2048;
/// The most bytes a shard may claim when it is decoded.
const MAX_SHARD_BYTES: usize = 16 * 1024 * 1024;

/// Rows sorted by key.
#[derive(Debug, Clone, PartialEq, Default, Encode, Decode)]
pub struct Shard {
    rows: Vec<Row>,
}

impl Shard {
    /// A shard of these rows (sorted here; a key twice keeps its last row).
    pub fn new(mut rows: Vec<Row>) -> Shard {
        rows.reverse();
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        rows.dedup_by(|a, b| a.key == b.key);
        Shard { rows }
    }

    /// The row with this key.
    pub fn get(&self, key: &[&str]) -> Option<&Row> {
        self.rows
            .binary_search_by(|r| r.key.iter().map(String::as_str).cmp(key.iter().copied()))
            .ok()
            .and_then(|i| self.rows.get(i))
    }

    /// Every row whose first key column is `first`.
    pub fn with_first(&self, first: &str) -> &[Row] {
        let start = self
            .rows
            .partition_point(|r| r.key.first().map(String::as_str) < Some(first));
        let end = self
            .rows
            .partition_point(|r| r.key.first().map(String::as_str) <= Some(first));
        self.rows.get(start..end).unwrap_or(&[])
    }

    /// Every row.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether it holds no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// The shard of the rows whose first key column is `first`, among `count`.
pub fn shard_of(first: &str, count: u32) -> u32 {
    fnv1a32(first.as_bytes()) % count.max(1)
}

/// The most shards a feed has: a full push writes every shard and its manifest in one
/// call of its Durable Object, within a Worker's 1,000 KV operations; past 900 × 2,048
/// rows, shards grow instead.
pub const MAX_SHARDS: u32 = 900;

/// How many shards `rows` rows are cut into.
pub fn shard_count(rows: u64) -> u32 {
    u32::try_from(
        rows.div_ceil(ROWS_PER_SHARD)
            .clamp(1, u64::from(MAX_SHARDS)),
    )
    .unwrap_or(MAX_SHARDS)
}

/// A shard's stored bytes.
pub fn encode_shard(shard: &Shard) -> Vec<u8> {
    codec::encode(shard).unwrap_or_default()
}

/// A shard from its stored bytes (bounded: a shard claims at most 16 MiB), refused
/// unless its rows are sorted by key, each key once (what lookups rely on).
pub fn decode_shard(bytes: &[u8]) -> Result<Shard, CodecError> {
    let shard = codec::decode::<Shard, MAX_SHARD_BYTES>(bytes)?;
    let sorted = shard
        .rows
        .iter()
        .zip(shard.rows.iter().skip(1))
        .all(|(a, b)| a.key < b.key);
    if sorted {
        Ok(shard)
    } else {
        Err(CodecError::Invalid(
            "a shard's rows are not sorted by key".into(),
        ))
    }
}
