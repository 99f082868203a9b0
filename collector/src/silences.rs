//! Maintenance windows: servers (by name glob) that raise no alert for a while, because
//! someone is working on them (`probectl silence add web-01 --for 2h --reason "kernel
//! upgrade"`). Made, listed and removed through the API; making and removing needs write
//! rights (a read token made with `--write`, or an admin's session).

use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};

use crate::alerts::config::glob_match;

/// The longest silence: a week. A longer one is a server that should be removed.
pub const MAX_MS: i64 = 7 * 86_400_000;
pub const REASON_MAX: usize = 200;

/// One silence, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: i64,
    /// A server name or glob (`web-*`).
    pub servers: String,
    pub reason: String,
    /// Who made it: the read token's name or the user's.
    pub created_by: String,
    pub created_at_ms: i64,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    /// When it was removed before its end.
    pub removed_at_ms: Option<i64>,
}

impl Silence {
    /// When it ended or ends: at its end, or when it was removed before.
    pub fn effective_end_ms(&self) -> i64 {
        self.removed_at_ms
            .map_or(self.ends_at_ms, |r| r.min(self.ends_at_ms))
    }

    /// Whether it silences `server` at `at_ms`.
    pub fn covers(&self, server: &str, at_ms: i64) -> bool {
        self.removed_at_ms.is_none()
            && (self.starts_at_ms..self.ends_at_ms).contains(&at_ms)
            && glob_match(&self.servers, server)
    }
}

/// What `POST /api/v1/silences` takes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    pub servers: String,
    /// How long from now, in seconds.
    pub duration_s: i64,
    pub reason: String,
}

/// `GET /api/v1/silences`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceList {
    pub now_ms: i64,
    pub silences: Vec<Silence>,
}

/// Checks a new silence; the error names the field, the value and what is allowed.
pub fn check(new: &NewSilence) -> Result<(), String> {
    let glob_ok = !new.servers.is_empty()
        && new.servers.len() <= 128
        && new
            .servers
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*' | '?'));
    if !glob_ok {
        return Err(format!(
            "servers: {:?} is not a server name or glob: letters, digits, '.', '-', '_', '*' and \
             '?' are allowed",
            new.servers
        ));
    }
    if !(60..=MAX_MS / 1000).contains(&new.duration_s) {
        return Err(format!(
            "duration_s: {} is out of range: 60 (1m) to {} (7d) are allowed",
            new.duration_s,
            MAX_MS / 1000
        ));
    }
    if new.reason.trim().is_empty() || new.reason.chars().count() > REASON_MAX {
        return Err(format!(
            "reason: 1 to {REASON_MAX} characters are required (what the work is, for whoever \
             wonders why web-01 did not page)"
        ));
    }
    Ok(())
}

pub async fn add(
    pool: &AnyPool,
    new: &NewSilence,
    by: &str,
    now_ms: i64,
) -> Result<Silence, sqlx::Error> {
    let ends = now_ms + new.duration_s * 1000;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO silences (servers, reason, created_by, created_at_ms, starts_at_ms,
                               ends_at_ms)
         VALUES ($1, $2, $3, $4, $4, $5) RETURNING id",
    )
    .bind(&new.servers)
    .bind(new.reason.trim())
    .bind(by)
    .bind(now_ms)
    .bind(ends)
    .fetch_one(pool)
    .await?;
    Ok(Silence {
        id,
        servers: new.servers.clone(),
        reason: new.reason.trim().to_owned(),
        created_by: by.to_owned(),
        created_at_ms: now_ms,
        starts_at_ms: now_ms,
        ends_at_ms: ends,
        removed_at_ms: None,
    })
}

/// Ends silence `id` now; false if there is no such silence in force.
pub async fn remove(pool: &AnyPool, id: i64, now_ms: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE silences SET removed_at_ms = $1
         WHERE id = $2 AND removed_at_ms IS NULL AND ends_at_ms > $1",
    )
    .bind(now_ms)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The silences in force at `now_ms` and those that ended in the last day, newest first.
pub async fn recent(pool: &AnyPool, now_ms: i64) -> Result<Vec<Silence>, sqlx::Error> {
    overlapping(pool, now_ms - 86_400_000, i64::MAX).await
}

/// The silences that were in force at some time between `since_ms` and `until_ms` (removed
/// ones too: they were, until their removal), newest first.
pub async fn overlapping(
    pool: &AnyPool,
    since_ms: i64,
    until_ms: i64,
) -> Result<Vec<Silence>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, servers, reason, created_by, created_at_ms, starts_at_ms, ends_at_ms,
                removed_at_ms
         FROM silences WHERE ends_at_ms > $1 AND starts_at_ms < $2 ORDER BY id DESC",
    )
    .bind(since_ms)
    .bind(until_ms)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Silence {
                id: r.try_get(0)?,
                servers: r.try_get(1)?,
                reason: r.try_get(2)?,
                created_by: r.try_get(3)?,
                created_at_ms: r.try_get(4)?,
                starts_at_ms: r.try_get(5)?,
                ends_at_ms: r.try_get(6)?,
                removed_at_ms: r.try_get(7)?,
            })
        })
        .collect()
}

/// The silences in force at `now_ms`.
pub async fn in_force(pool: &AnyPool, now_ms: i64) -> Result<Vec<Silence>, sqlx::Error> {
    Ok(recent(pool, now_ms)
        .await?
        .into_iter()
        .filter(|s| s.removed_at_ms.is_none() && s.starts_at_ms <= now_ms && now_ms < s.ends_at_ms)
        .collect())
}
