//! Live data at the edge (docs/feeds.md): feeds a bundle declares (`spec`), their rows
//! as a shop pushes them, read and checked line by line (`rows`), stored in shards an
//! isolate reads whole (`shard`), the nearest store holding an item (`stores`, a grid
//! built once per feed version), and what one request reads of them (`live`): each
//! feed's shards and its recent updates, fresh or not.
//!
//! A feed that is missing, late, of another layout or older than its `stale_after`
//! is unavailable: a rule that reads it is false and its placeholders are empty, so the
//! slot shows what it would without the feed. Nothing here reads a clock or does I/O.

mod live;
mod rows;
mod shard;
mod spec;
mod stores;
mod wire;

pub use live::{FeedData, Feeds, Manifest, StoreHit, Unavailable, Wants};
pub use rows::{parse_ndjson, Cell, Change, Row, RowError, MAX_LINE_BYTES, MAX_ROWS_PER_PUSH};
pub use shard::{
    decode_shard, encode_shard, shard_count, shard_of, Shard, MAX_SHARDS, ROWS_PER_SHARD,
};
pub use spec::{store_field, FeedField, FeedKind, FeedRoles, FeedSpec, MAX_FEEDS};
pub use stores::{distance_km, StoreIndex};
pub use wire::{
    decode_changes, decode_hot, decode_rows, encode_changes, encode_hot, encode_rows, fingerprint,
    pieces, HotChange,
};
