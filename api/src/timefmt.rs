//! How times and durations are written for people: RFC 3339 in UTC, and compact durations.

use time::OffsetDateTime;

/// `2026-11-23T12:03:10Z`, to the second (explanations write dates the same way).
pub use causeway_schema::rfc3339;

/// `12:03:10.250`: the UTC time of day to the millisecond, for events a second apart.
pub fn clock_ms(ms: i64) -> String {
    let format = time::macros::format_description!("[hour]:[minute]:[second].[subsecond digits:3]");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

/// `12:03:10` for a time less than a day before `now_ms`, else [`rfc3339`]: short where the
/// day is obvious, in a table's narrow column.
pub fn short_time(ms: i64, now_ms: i64) -> String {
    let format = time::macros::format_description!("[hour]:[minute]:[second]");
    if now_ms.saturating_sub(ms) >= 86_400_000 {
        return rfc3339(ms);
    }
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

pub use causeway_schema::compact_duration;

/// `12s ago`; a time in the future, which only a clock that disagrees with this one gives (a
/// probe's, see `clock_skew`), says so: `12s in the future (clock skew?)`. Under a second
/// ahead is the network's delay, and reads `0s ago`.
pub fn ago(then_ms: i64, now_ms: i64) -> String {
    let ahead = then_ms.saturating_sub(now_ms);
    if ahead >= 1000 {
        return format!("{} in the future (clock skew?)", compact_duration(ahead));
    }
    format!("{} ago", compact_duration(now_ms.saturating_sub(then_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_utc_seconds() {
        assert_eq!(rfc3339(1_795_435_390_000), "2026-11-23T12:03:10Z");
        assert_eq!(rfc3339(1_795_435_390_999), "2026-11-23T12:03:10Z");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(i64::MAX), format!("{} ms", i64::MAX));
    }

    /// The schema's own calendar arithmetic against the `time` crate's, across leap days,
    /// centuries and the years before the epoch.
    #[test]
    fn rfc3339_agrees_with_the_time_crate() {
        use time::format_description::well_known::Rfc3339;
        let mut ms: i64 = -62_000_000_000_000; // year 0005
        while ms < 253_000_000_000_000 {
            let want = OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
                .unwrap()
                .format(&Rfc3339)
                .unwrap();
            assert_eq!(rfc3339(ms), want, "{ms}");
            ms += 86_399_917_345; // a day less a bit: every weekday, hour and minute drift
        }
    }

    #[test]
    fn clock_to_the_millisecond() {
        assert_eq!(clock_ms(1_795_435_390_250), "12:03:10.250");
    }

    #[test]
    fn short_time_within_a_day() {
        let t = 1_795_435_390_250;
        assert_eq!(short_time(t, t + 80_000), "12:03:10");
        assert_eq!(short_time(t, t + 86_399_999), "12:03:10");
        assert_eq!(short_time(t, t + 86_400_000), "2026-11-23T12:03:10Z");
    }

    #[test]
    fn compact() {
        assert_eq!(compact_duration(0), "0s");
        assert_eq!(compact_duration(-5), "0s");
        assert_eq!(compact_duration(45_000), "45s");
        assert_eq!(compact_duration(80_000), "1m20s");
        assert_eq!(compact_duration(3_600_000), "1h");
        assert_eq!(compact_duration(3_660_000), "1h1m");
        assert_eq!(compact_duration(3_601_000), "1h");
        assert_eq!(compact_duration(7 * 86_400_000), "7d");
        assert_eq!(compact_duration(86_400_000 + 3_600_000), "1d1h");
        assert_eq!(ago(1000, 13_000), "12s ago");
        assert_eq!(ago(13_000, 1000), "12s in the future (clock skew?)");
        assert_eq!(ago(1500, 1000), "0s ago");
    }
}
