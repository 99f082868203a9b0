//! How report values become column values: the conversions every part of ingest shares.

use super::IngestError;

/// A count from the wire (u64) as SQLite's integer; a count beyond i64 is kept as its maximum.
pub(super) fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Milliseconds as whole microseconds, as results store timings (2 to 4 bytes, not a REAL's 8).
pub(super) fn micros(ms: f64) -> i64 {
    (ms * 1000.0).round() as i64
}

/// A load average or PSI percentage as whole hundredths: /proc gives two decimals, so this
/// keeps every digit in 1 to 3 bytes instead of a REAL's 8.
pub(super) fn hundredths(v: f64) -> i64 {
    (v * 100.0).round() as i64
}

/// `value` as JSON for a TEXT column; `what` names it in the error.
pub(super) fn encode<T: serde::Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> Result<String, IngestError> {
    serde_json::to_string(value).map_err(|source| IngestError::Encode { what, source })
}
