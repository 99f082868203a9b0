//! Availability over any window from the rollups, never from raw checks: a window is cut into
//! whole minutes up to the first full hour, whole hours up to the first full day, and days
//! (migrations 0004 and 0008). Its cost is then at most 60 + 23 + one row per day of the
//! window for each server, however many checks the window holds.
//!
//! Precision: a window of up to [`MINUTES_UP_TO_MS`] (the 1h column) starts at the minute its
//! start falls in; a longer one at its hour (at most an hour more of checks: 4 % of 24 h,
//! 0.14 % of 30 days). Reading the first hour of every 24 h window by the minute doubled the
//! cost of the list of 1,000 servers (`cargo bench --bench pages`), for a figure that moves
//! by the hour anyway.

use std::collections::HashMap;

use sqlx::AnyPool;

use super::ReadError;
use super::rollup::Rollup;

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// The longest window read by the minute (retention keeps minutes two days).
pub const MINUTES_UP_TO_MS: i64 = 2 * HOUR_MS;

/// `ok` and `total` checks.
pub type Counts = (i64, i64);

/// The rollup rows that make up the window `since_ms ..`, as `[start, end)` ranges of each
/// table's time column (an empty range is skipped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts {
    minutes: (i64, i64),
    hours: (i64, i64),
    days_from: i64,
}

fn floor(t: i64, unit: i64) -> i64 {
    t - t.rem_euclid(unit)
}

fn ceil(t: i64, unit: i64) -> i64 {
    floor(t + unit - 1, unit)
}

fn parts(since_ms: i64, now_ms: i64) -> Parts {
    let (minutes, hours_from) = if since_ms >= now_ms - MINUTES_UP_TO_MS {
        let m0 = floor(since_ms, MINUTE_MS);
        let h0 = ceil(m0, HOUR_MS);
        ((m0, h0), h0)
    } else {
        let h0 = floor(since_ms, HOUR_MS);
        ((h0, h0), h0)
    };
    let d0 = ceil(hours_from, DAY_MS);
    Parts {
        minutes,
        hours: (hours_from, d0),
        days_from: d0,
    }
}

/// The checks of each server (or of `server` alone) since each of `since_ms`, by server id;
/// a server without checks in a window has `(0, 0)` there, one without any is absent.
pub async fn windows(
    pool: &AnyPool,
    server: Option<i64>,
    since_ms: &[i64],
    now_ms: i64,
) -> Result<HashMap<i64, Vec<Counts>>, ReadError> {
    let mut out: HashMap<i64, Vec<Counts>> = HashMap::new();
    for (w, &since) in since_ms.iter().enumerate() {
        let p = parts(since, now_ms);
        let ranges = [
            (Rollup::Minutes, p.minutes.0, p.minutes.1),
            (Rollup::Hours, p.hours.0, p.hours.1),
            (Rollup::Days, p.days_from, i64::MAX),
        ];
        for (rollup, start, end) in ranges {
            if start >= end {
                continue;
            }
            for (server_id, ok, total) in rollup.sums(pool, server, start, end).await? {
                let counts = out
                    .entry(server_id)
                    .or_insert_with(|| vec![(0, 0); since_ms.len()]);
                counts[w] = (counts[w].0 + ok, counts[w].1 + total);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_431_870_123;

    #[test]
    fn a_recent_window_is_minutes_then_hours_then_days() {
        let p = parts(NOW - HOUR_MS, NOW);
        let m0 = floor(NOW - HOUR_MS, MINUTE_MS);
        assert_eq!(p.minutes, (m0, floor(NOW, HOUR_MS)));
        // The window starts in the day it ends in: no hours before a whole day.
        assert_eq!(p.hours.0, floor(NOW, HOUR_MS));
        assert_eq!(p.days_from, ceil(floor(NOW, HOUR_MS), DAY_MS));
        assert!(p.hours.1 > NOW, "the day after now: hours cover the rest");
    }

    #[test]
    fn the_parts_meet_without_gap_or_overlap() {
        for since in [
            NOW - 25 * HOUR_MS,
            NOW - 7 * DAY_MS,
            NOW - 30 * DAY_MS,
            NOW - 90_000,
        ] {
            let p = parts(since, NOW);
            assert_eq!(p.minutes.1, p.hours.0, "{since}");
            assert_eq!(p.hours.1, p.days_from, "{since}");
            assert!(
                p.minutes.0 <= since && since - p.minutes.0 < HOUR_MS,
                "{since}"
            );
            assert_eq!(p.days_from % DAY_MS, 0);
        }
    }

    #[test]
    fn a_window_longer_than_two_hours_starts_at_its_hour() {
        let since = NOW - 25 * HOUR_MS + 90_000;
        let p = parts(since, NOW);
        assert_eq!(p.minutes.0, p.minutes.1, "no minutes");
        assert_eq!(p.hours.0, floor(since, HOUR_MS));
    }

    #[test]
    fn an_old_window_starts_at_its_hour() {
        let since = NOW - 30 * DAY_MS;
        let p = parts(since, NOW);
        assert_eq!(p.minutes.0, p.minutes.1, "no minutes");
        assert_eq!(p.hours.0, floor(since, HOUR_MS));
    }

    #[test]
    fn whole_units_round_as_they_should() {
        assert_eq!(ceil(HOUR_MS, HOUR_MS), HOUR_MS);
        assert_eq!(ceil(HOUR_MS + 1, HOUR_MS), 2 * HOUR_MS);
        assert_eq!(floor(-1, HOUR_MS), -HOUR_MS);
    }
}
