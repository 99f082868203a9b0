//! The rollups of migrations 0004 and 0008, kept up to date with every stored report (in its
//! transaction): checks per minute, hour and day, checks per cause, and each server's newest
//! checks for the heartbeat bar.

use causeway_schema::{Cause, Report};
use serde::{Deserialize, Serialize};

use super::IngestError;
use super::sql::{Conn, values};

const MINUTE_MS: i64 = 60_000;
pub(super) const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// Checks kept in `servers.recent_checks`: what the overview's heartbeat bar shows. Every
/// overview decodes and draws them for every server: 30 keeps 1,000 servers under 100 ms.
pub const RECENT_MAX: usize = 30;

/// One check in `servers.recent_checks`, kept short: this is read for every server on every
/// overview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentCheck {
    /// Start, ms since the epoch.
    pub t: i64,
    pub ok: bool,
    /// The cause id of a failed check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<String>,
    /// Total time in ms, rounded.
    pub ms: u32,
    /// The canary's name.
    pub n: String,
}

/// The availability rollups, each with the length of its buckets: `(server, bucket start,
/// checks, ok)` adds to a bucket.
const AVAILABILITY: [(&str, i64); 3] = [
    (
        "INSERT INTO availability_minutes (server_id, minute_ms, checks_total, checks_ok)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (server_id, minute_ms) DO UPDATE SET
             checks_total = availability_minutes.checks_total + excluded.checks_total,
             checks_ok = availability_minutes.checks_ok + excluded.checks_ok",
        MINUTE_MS,
    ),
    (
        "INSERT INTO availability_hours (server_id, hour_ms, checks_total, checks_ok)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (server_id, hour_ms) DO UPDATE SET
             checks_total = availability_hours.checks_total + excluded.checks_total,
             checks_ok = availability_hours.checks_ok + excluded.checks_ok",
        HOUR_MS,
    ),
    (
        "INSERT INTO availability_days (server_id, day_ms, checks_total, checks_ok)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (server_id, day_ms) DO UPDATE SET
             checks_total = availability_days.checks_total + excluded.checks_total,
             checks_ok = availability_days.checks_ok + excluded.checks_ok",
        DAY_MS,
    ),
];

/// Adds `report` to the minute, hour, day and cause counts.
pub(super) fn add(conn: &mut dyn Conn, server_id: i64, report: &Report) -> Result<(), IngestError> {
    let total = report.results.len() as i64;
    let ok = report.results.iter().filter(|r| r.ok).count() as i64;
    let at = report.started_at_ms;
    for (sql, unit) in AVAILABILITY {
        conn.execute(sql, values![server_id, at - at.rem_euclid(unit), total, ok])?;
    }
    let mut by_cause: Vec<(&str, i64)> = Vec::new();
    for r in &report.results {
        let cause = r.cause().map_or("ok", Cause::id);
        match by_cause.iter_mut().find(|(c, _)| *c == cause) {
            Some((_, n)) => *n += 1,
            None => by_cause.push((cause, 1)),
        }
    }
    for (cause, n) in by_cause {
        conn.execute(
            "INSERT INTO result_counts (server_id, cause, n) VALUES ($1, $2, $3)
             ON CONFLICT (server_id, cause) DO UPDATE SET n = result_counts.n + excluded.n",
            values![server_id, cause, n],
        )?;
    }
    Ok(())
}

/// Adds `report`'s checks to a server's `recent` checks: a replay of an old report lands among
/// the others by its time, or falls off the end. Returns them as stored.
pub(super) fn add_recent(
    recent: &mut Vec<RecentCheck>,
    report: &Report,
) -> Result<String, IngestError> {
    recent.extend(report.results.iter().map(|r| RecentCheck {
        t: r.started_at_ms,
        ok: r.ok,
        c: r.cause().map(|c| c.id().to_owned()),
        ms: r.timings.total_ms.round().clamp(0.0, f64::from(u32::MAX)) as u32,
        n: r.canary.to_string(),
    }));
    recent.sort_by_key(|c| c.t);
    let drop = recent.len().saturating_sub(RECENT_MAX);
    recent.drain(..drop);
    super::values::encode("recent checks", recent)
}

/// `servers.recent_checks` as stored; empty when NULL or unreadable (it is rebuilt by the
/// next reports).
pub fn parse_recent(stored: Option<&str>) -> Vec<RecentCheck> {
    stored
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}
