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

/// The RFC 3339 text (UTC, `Z`) of a Unix time; the number itself past year 9999.
pub fn rfc3339(t: UnixSeconds) -> String {
    jiff::Timestamp::from_second(t).map_or_else(|_| t.to_string(), |ts| ts.to_string())
}

/// Reads RFC 3339 text as Unix seconds: the one reader of times, for `--now`, states and
/// the npm package alike.
pub fn parse_rfc3339(text: &str) -> Result<UnixSeconds, String> {
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|e| format!("{text:?} is not an RFC 3339 time: {e}"))
}
