//! The rollups of migration 0004, kept up to date with every stored report (in its
//! transaction): checks per hour and per day, checks per cause, and each server's newest
//! checks for the heartbeat bar.

use causeway_schema::{Cause, Report};
use serde::{Deserialize, Serialize};
use sqlx::{Sqlite, Transaction};

use super::IngestError;

const HOUR_MS: i64 = 3_600_000;
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

/// Adds `report` to the hour, day and cause counts and to the server's recent checks.
pub(super) async fn add(
    tx: &mut Transaction<'static, Sqlite>,
    server_id: i64,
    report: &Report,
) -> Result<(), IngestError> {
    let total = report.results.len() as i64;
    let ok = report.results.iter().filter(|r| r.ok).count() as i64;
    let at = report.started_at_ms;
    for (table, column, start) in [
        ("availability_hours", "hour_ms", at - at.rem_euclid(HOUR_MS)),
        ("availability_days", "day_ms", at - at.rem_euclid(DAY_MS)),
    ] {
        sqlx::query(&format!(
            "INSERT INTO {table} (server_id, {column}, checks_total, checks_ok)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (server_id, {column}) DO UPDATE SET
                 checks_total = checks_total + excluded.checks_total,
                 checks_ok = checks_ok + excluded.checks_ok"
        ))
        .bind(server_id)
        .bind(start)
        .bind(total)
        .bind(ok)
        .execute(&mut **tx)
        .await?;
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
        sqlx::query(
            "INSERT INTO result_counts (server_id, cause, n) VALUES (?1, ?2, ?3)
             ON CONFLICT (server_id, cause) DO UPDATE SET n = n + excluded.n",
        )
        .bind(server_id)
        .bind(cause)
        .bind(n)
        .execute(&mut **tx)
        .await?;
    }
    add_recent(tx, server_id, report).await
}

async fn add_recent(
    tx: &mut Transaction<'static, Sqlite>,
    server_id: i64,
    report: &Report,
) -> Result<(), IngestError> {
    let stored: Option<String> =
        sqlx::query_scalar("SELECT recent_checks FROM servers WHERE id = ?1")
            .bind(server_id)
            .fetch_one(&mut **tx)
            .await?;
    let mut recent = parse_recent(stored.as_deref());
    recent.extend(report.results.iter().map(|r| RecentCheck {
        t: r.started_at_ms,
        ok: r.ok,
        c: r.cause().map(|c| c.id().to_owned()),
        ms: r.timings.total_ms.round().clamp(0.0, f64::from(u32::MAX)) as u32,
        n: r.canary.clone(),
    }));
    // A replay of an old report lands among the others by its time, or falls off the end.
    recent.sort_by_key(|c| c.t);
    let drop = recent.len().saturating_sub(RECENT_MAX);
    recent.drain(..drop);
    let json = serde_json::to_string(&recent).map_err(|source| IngestError::Encode {
        what: "recent checks",
        source,
    })?;
    sqlx::query("UPDATE servers SET recent_checks = ?2 WHERE id = ?1")
        .bind(server_id)
        .bind(json)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// `servers.recent_checks` as stored; empty when NULL or unreadable (it is rebuilt by the
/// next reports).
pub fn parse_recent(stored: Option<&str>) -> Vec<RecentCheck> {
    stored
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}
