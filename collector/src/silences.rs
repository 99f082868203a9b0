//! Maintenance windows in the database: made, listed and removed through the API; making and
//! removing needs write rights (a read token made with `--write`, or an admin's session). The
//! wire types are [`causeway_api::silences`].

use sqlx::{AnyPool, Row};

pub use causeway_api::silences::*;

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
