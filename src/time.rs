//! Time as the core sees it: plain Unix seconds handed in by the adapter.
//!
//! The core never reads a clock. Adapters pass `now` into every call, which is what makes
//! a decision reproducible from its inputs (the simulator's `--now`, the fixtures).

/// Seconds since the Unix epoch, UTC.
pub type UnixSeconds = i64;

/// One minute, hour, day and week in seconds.
pub const MINUTE: i64 = 60;
/// One hour in seconds.
pub const HOUR: i64 = 60 * MINUTE;
/// One day in seconds.
pub const DAY: i64 = 24 * HOUR;
/// One week in seconds.
pub const WEEK: i64 = 7 * DAY;
