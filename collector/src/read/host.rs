//! A probe's host: the queries behind the `host` endpoint and the host part of `why`. Bounded
//! like every list of [`super`].

use causeway_schema::{MemorySample, Pressure};
use sqlx::AnyPool;

use super::conditions::{CONDITION_COLUMNS, ConditionRow};
use super::{ReadError, server_row};
use crate::views::{HostConditionView, HostObservationView, HostView};

/// Host conditions per request, like incidents.
pub const MAX_HOST_CONDITIONS: u32 = 500;

/// A server's latest host readings, and its host conditions overlapping `since_ms ..= now`.
pub async fn host(
    pool: &AnyPool,
    name: &str,
    since_ms: i64,
    now_ms: i64,
) -> Result<HostView, ReadError> {
    let row = server_row(pool, name).await?;
    Ok(HostView {
        latest: latest_observation(pool, row.id).await?,
        conditions: conditions_of(pool, row.id, since_ms).await?,
        server: row.name.into(),
        since_ms,
        now_ms,
    })
}

/// A server's host conditions overlapping `since_ms ..= now`, newest first.
pub(super) async fn conditions_of(
    pool: &AnyPool,
    server_id: i64,
    since_ms: i64,
) -> Result<Vec<HostConditionView>, ReadError> {
    let rows: Vec<ConditionRow> = sqlx::query_as(&format!(
        "SELECT {CONDITION_COLUMNS} FROM host_conditions c
         WHERE c.server_id = $1 AND (c.ended_at_ms IS NULL OR c.ended_at_ms >= $2)
         ORDER BY c.started_at_ms DESC, c.id DESC LIMIT $3"
    ))
    .bind(server_id)
    .bind(since_ms)
    .bind(i64::from(MAX_HOST_CONDITIONS))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| r.into_view("host_conditions"))
        .collect())
}

#[derive(sqlx::FromRow)]
struct ObservationRow {
    /// The newest reading's report, 16 bytes.
    report_uuid: Vec<u8>,
    started_at_ms: i64,
    boot_id: String,
    uptime_s: i64,
    mem_total_kb: Option<i64>,
    mem_available_kb: Option<i64>,
    slab_kb: Option<i64>,
    s_unreclaim_kb: Option<i64>,
    cpus: Option<i64>,
    load1_c: Option<i64>,
    load5_c: Option<i64>,
    load15_c: Option<i64>,
    runnable: Option<i64>,
    cpu_some_c: Option<i64>,
    memory_some_c: Option<i64>,
    memory_full_c: Option<i64>,
    io_some_c: Option<i64>,
    io_full_c: Option<i64>,
    causes: Option<String>,
    warnings: Option<String>,
}

impl From<ObservationRow> for HostObservationView {
    fn from(r: ObservationRow) -> Self {
        let kb = |v: Option<i64>| v.and_then(|v| u64::try_from(v).ok());
        // The sample and the figures were stored only when the probe had them: a total (a
        // sample always has one) and a CPU count (pressure always has one) say so.
        let memory = kb(r.mem_total_kb).map(|total_kb| MemorySample {
            at_ms: r.started_at_ms,
            total_kb,
            available_kb: kb(r.mem_available_kb),
            slab_kb: kb(r.slab_kb),
            s_unreclaim_kb: kb(r.s_unreclaim_kb),
        });
        let pressure = r
            .cpus
            .and_then(|c| u32::try_from(c).ok())
            .map(|cpus| Pressure {
                at_ms: r.started_at_ms,
                cpus,
                load1: r.load1_c.map(unhundredth),
                load5: r.load5_c.map(unhundredth),
                load15: r.load15_c.map(unhundredth),
                runnable: r.runnable.and_then(|n| u32::try_from(n).ok()),
                cpu_some: r.cpu_some_c.map(unhundredth),
                memory_some: r.memory_some_c.map(unhundredth),
                memory_full: r.memory_full_c.map(unhundredth),
                io_some: r.io_some_c.map(unhundredth),
                io_full: r.io_full_c.map(unhundredth),
            });
        HostObservationView {
            report_id: super::uuid_text(&r.report_uuid),
            started_at_ms: r.started_at_ms,
            boot_id: r.boot_id,
            uptime_s: u64::try_from(r.uptime_s).unwrap_or(0),
            memory,
            pressure,
            causes: r
                .causes
                .as_deref()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
            warnings: r
                .warnings
                .as_deref()
                .unwrap_or("")
                .lines()
                .map(str::to_owned)
                .collect(),
        }
    }
}

/// Whole hundredths, as stored, as the figure /proc gave.
fn unhundredth(c: i64) -> f64 {
    c as f64 / 100.0
}

/// The newest observation of a server's host (by the report's start), through the index.
async fn latest_observation(
    pool: &AnyPool,
    server_id: i64,
) -> Result<Option<HostObservationView>, ReadError> {
    let row: Option<ObservationRow> = sqlx::query_as(
        "SELECT report_uuid, COALESCE(last_at_ms, started_at_ms) AS started_at_ms, boot_id,
                uptime_s, mem_total_kb, mem_available_kb, slab_kb, s_unreclaim_kb, cpus, load1_c, load5_c, load15_c, runnable, cpu_some_c,
                memory_some_c, memory_full_c, io_some_c, io_full_c, causes, warnings
         FROM host_observations
         WHERE server_id = $1 ORDER BY started_at_ms DESC, rowid DESC LIMIT 1",
    )
    .bind(server_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(HostObservationView::from))
}
