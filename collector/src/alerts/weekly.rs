//! `[[maintenance]]` in the config file: servers (by glob) that are quiet every week on some
//! days between two UTC times (`weekly = "sat,sun 23:00-01:30"`), and the times such a window
//! covers, for the alerter's quiet check and for `why` and the page.

use super::config::glob_match;

/// `[[maintenance]]`: servers (globs) quiet every week on some days between two UTC times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintenance {
    pub servers: Vec<String>,
    /// Monday first.
    pub days: [bool; 7],
    /// Minutes after midnight UTC; an end at or before the start ends on the next day.
    pub start_min: u32,
    pub end_min: u32,
    pub reason: String,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

impl Maintenance {
    /// Whether the window silences `server` at `at_ms`.
    pub fn covers(&self, server: &str, at_ms: i64) -> bool {
        if !self.servers.iter().any(|g| glob_match(g, server)) {
            return false;
        }
        let day = at_ms.div_euclid(86_400_000);
        // 1970-01-01 was a Thursday (index 3, Monday first).
        let weekday = (day + 3).rem_euclid(7) as usize;
        let minute = (at_ms.rem_euclid(86_400_000) / 60_000) as u32;
        let (start, end) = (self.start_min, self.end_min);
        if start < end {
            self.days[weekday] && (start..end).contains(&minute)
        } else {
            // Across midnight: the evening of a listed day, or the morning after it.
            (self.days[weekday] && minute >= start)
                || (self.days[(weekday + 6) % 7] && minute < end)
        }
    }

    /// The times the window covers between `since_ms` and `until_ms` (each as start and end,
    /// oldest first, the first and last cut to the span), as [`Maintenance::covers`] tells
    /// them: a window that crosses midnight belongs to the day it starts.
    pub fn occurrences(&self, since_ms: i64, until_ms: i64) -> Vec<(i64, i64)> {
        const DAY: i64 = 86_400_000;
        let mut out = Vec::new();
        // From the day before: its window may run past midnight into the span.
        for day in since_ms.div_euclid(DAY) - 1..=until_ms.div_euclid(DAY) {
            if !self.days[(day + 3).rem_euclid(7) as usize] {
                continue;
            }
            let start = day * DAY + i64::from(self.start_min) * 60_000;
            let mut end = day * DAY + i64::from(self.end_min) * 60_000;
            if self.end_min <= self.start_min {
                end += DAY;
            }
            let (start, end) = (start.max(since_ms), end.min(until_ms));
            if start < end {
                out.push((start, end));
            }
        }
        out
    }

    /// `sat,sun 02:00-04:00`, as the config writes it.
    pub(super) fn parse(key: &str, text: &str) -> Result<([bool; 7], u32, u32), String> {
        let bad = || {
            format!(
                "{key}: {text:?} is not a weekly window: days (mon, tue, ... sun, comma-separated, \
                 or daily) and UTC times, e.g. \"sat,sun 02:00-04:00\""
            )
        };
        let (days_text, times) = text.trim().split_once(' ').ok_or_else(bad)?;
        let mut days = [false; 7];
        for d in days_text.split(',') {
            match (d, DAYS.iter().position(|n| *n == d)) {
                ("daily", _) => days = [true; 7],
                (_, Some(i)) => days[i] = true,
                _ => return Err(bad()),
            }
        }
        let (from, to) = times.trim().split_once('-').ok_or_else(bad)?;
        let minutes = |t: &str| -> Option<u32> {
            let (h, m) = t.split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60 && t.len() == 5).then_some(h * 60 + m)
        };
        let (start, end) = (minutes(from).ok_or_else(bad)?, minutes(to).ok_or_else(bad)?);
        if start == end {
            return Err(format!(
                "{key}: {text:?} is empty: its start and end are the same"
            ));
        }
        Ok((days, start, end))
    }
}
