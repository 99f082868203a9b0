//! The queries behind the read API and the page. Every list is bounded (a `LIMIT`), so one
//! request cannot pull a whole table into memory. Resolvers have their own [`resolvers`], the
//! probes' hosts [`host`].

mod availability;
mod certificates;
mod conditions;
mod fleet;
mod host;
mod resolvers;
mod rollup;

pub use fleet::{DAY_MS, FLEET_WINDOWS, Fleet, FleetServer, days, fleet, server_id};
pub use host::{MAX_HOST_CONDITIONS, host};
pub use resolvers::{MAX_RESOLVER_CONDITIONS, all_resolvers, resolvers};

use std::collections::{BTreeMap, HashMap};

use causeway_schema::{Cause, Evidence, Timings};
use sqlx::AnyPool;

use crate::maintenance;
use crate::names;
use crate::views::{
    Availability, FailureView, IncidentView, ResultView, ServerState, ServerView, WhyView,
};

/// The availability windows every server shows, by name and length.
pub const WINDOWS: [(&str, i64); 4] = [
    ("1h", 3_600_000),
    ("24h", 86_400_000),
    ("7d", 7 * 86_400_000),
    ("30d", 30 * 86_400_000),
];
/// Results per request: the default and the most allowed.
pub const DEFAULT_RESULTS: u32 = 100;
pub const MAX_RESULTS: u32 = 1_000;
/// Incidents per request (each carries two results).
pub const MAX_INCIDENTS: u32 = 500;
/// A server is stale after this many intervals without a report, plus [`STALE_GRACE_MS`].
const STALE_INTERVALS: i64 = 3;
const STALE_GRACE_MS: i64 = 10_000;
/// Servers listed at most (the page and `/api/v1/servers`).
const MAX_SERVERS: i64 = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("unknown server {name:?}")]
    UnknownServer { name: String, closest: Vec<String> },
    #[error("database error while reading: {0}")]
    Db(#[from] sqlx::Error),
}

#[derive(sqlx::FromRow)]
pub(crate) struct ServerRow {
    id: i64,
    name: String,
    interval_s: Option<i64>,
    last_started_at_ms: Option<i64>,
    last_received_at_ms: Option<i64>,
    spool_queued: i64,
    spool_dropped_total: i64,
    last_checks_total: Option<i64>,
    last_checks_ok: Option<i64>,
    /// When its token was made: it had no checks before.
    created_at_ms: i64,
}

pub(crate) const SERVER_SELECT: &str = "
    SELECT s.id, s.name, s.interval_s, s.last_started_at_ms, s.last_received_at_ms,
           s.spool_queued, s.spool_dropped_total,
           s.last_checks_total, s.last_checks_ok, s.created_at_ms
    FROM servers s";

/// Every server, by name.
pub async fn servers(pool: &AnyPool, now_ms: i64) -> Result<Vec<ServerView>, ReadError> {
    let rows: Vec<ServerRow> = sqlx::query_as(&format!("{SERVER_SELECT} ORDER BY s.name LIMIT $1"))
        .bind(MAX_SERVERS)
        .fetch_all(pool)
        .await?;
    // Two statements for every server together: the windows' sums and the open incidents,
    // without their sample checks (a server's own view has them; the list would carry the
    // evidence of every open incident, read a row at a time).
    let mut sums = availability::windows(pool, None, &window_starts(now_ms), now_ms).await?;
    let open: Vec<IncidentRow> = sqlx::query_as(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE ended_at_ms IS NULL"
    ))
    .fetch_all(pool)
    .await?;
    let mut open: HashMap<i64, IncidentRow> = open.into_iter().map(|i| (i.server_id, i)).collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let availability = named_windows(sums.remove(&row.id));
        let open_incident = open.remove(&row.id).map(incident_summary);
        out.push(view_of(row, availability, open_incident, now_ms));
    }
    Ok(out)
}

/// Where each of [`WINDOWS`] starts.
fn window_starts(now_ms: i64) -> Vec<i64> {
    WINDOWS.iter().map(|(_, len)| now_ms - len).collect()
}

/// Sums in [`WINDOWS`] order, by window name; `None` (no checks at all) gives zeros.
fn named_windows(sums: Option<Vec<availability::Counts>>) -> BTreeMap<String, Availability> {
    let sums = sums.unwrap_or_else(|| vec![(0, 0); WINDOWS.len()]);
    WINDOWS
        .iter()
        .zip(sums)
        .map(|((name, _), (ok, total))| ((*name).to_owned(), counts(ok, total)))
        .collect()
}

/// One server by name; [`ReadError::UnknownServer`] with suggestions when there is none.
pub async fn server(pool: &AnyPool, name: &str, now_ms: i64) -> Result<ServerView, ReadError> {
    let row = server_row(pool, name).await?;
    server_view(pool, row, now_ms).await
}

async fn server_row(pool: &AnyPool, name: &str) -> Result<ServerRow, ReadError> {
    let row: Option<ServerRow> = sqlx::query_as(&format!("{SERVER_SELECT} WHERE s.name = $1"))
        .bind(name)
        .fetch_optional(pool)
        .await?;
    match row {
        Some(row) => Ok(row),
        None => Err(unknown_server(pool, name).await?),
    }
}

/// The error for a name no server has, with the closest known names.
async fn unknown_server(pool: &AnyPool, name: &str) -> Result<ReadError, sqlx::Error> {
    let known: Vec<String> = sqlx::query_scalar("SELECT name FROM servers LIMIT $1")
        .bind(MAX_SERVERS)
        .fetch_all(pool)
        .await?;
    Ok(ReadError::UnknownServer {
        name: name.to_owned(),
        closest: names::closest(name, known.iter().map(String::as_str)),
    })
}

async fn server_view(pool: &AnyPool, row: ServerRow, now_ms: i64) -> Result<ServerView, ReadError> {
    let sums = availability::windows(pool, Some(row.id), &window_starts(now_ms), now_ms).await?;
    let availability = named_windows(sums.into_values().next());
    let open_incident = open_incident(pool, row.id).await?;
    Ok(view_of(row, availability, open_incident, now_ms))
}

fn view_of(
    row: ServerRow,
    availability: BTreeMap<String, Availability>,
    open_incident: Option<IncidentView>,
    now_ms: i64,
) -> ServerView {
    ServerView {
        state: state(&row, now_ms),
        current_cause: open_incident.as_ref().map(|i| i.cause.clone()),
        name: row.name.into(),
        last_seen_ms: row.last_received_at_ms,
        last_report_started_at_ms: row.last_started_at_ms,
        interval_s: row.interval_s.and_then(|i| u32::try_from(i).ok()),
        availability,
        open_incident,
        spool_dropped_total: u64::try_from(row.spool_dropped_total).unwrap_or(0),
        spool_queued: u64::try_from(row.spool_queued).unwrap_or(0),
    }
}

pub(crate) fn state(row: &ServerRow, now_ms: i64) -> ServerState {
    let (Some(received), Some(total), Some(ok)) = (
        row.last_received_at_ms,
        row.last_checks_total,
        row.last_checks_ok,
    ) else {
        return ServerState::Unknown;
    };
    let interval_ms = row.interval_s.unwrap_or(0).saturating_mul(1000);
    let stale_after = interval_ms
        .saturating_mul(STALE_INTERVALS)
        .saturating_add(STALE_GRACE_MS);
    if now_ms.saturating_sub(received) > stale_after {
        ServerState::Stale
    } else if ok < total {
        ServerState::Down
    } else {
        ServerState::Up
    }
}

fn counts(ok: i64, total: i64) -> Availability {
    Availability::new(
        u64::try_from(ok).unwrap_or(0),
        u64::try_from(total).unwrap_or(0),
    )
}

/// Availability of a server since `since_ms`, from the rollups (see [`availability`]).
pub async fn availability_since(
    pool: &AnyPool,
    server_id: i64,
    since_ms: i64,
    now_ms: i64,
) -> Result<Availability, ReadError> {
    let sums = availability::windows(pool, Some(server_id), &[since_ms], now_ms).await?;
    let (ok, total) = sums.into_values().next().map_or((0, 0), |s| s[0]);
    Ok(counts(ok, total))
}

#[derive(sqlx::FromRow)]
struct ResultRow {
    id: i64,
    /// The report's UUID, 16 bytes.
    report_uuid: Vec<u8>,
    canary: String,
    url: String,
    address: Option<String>,
    started_at_ms: i64,
    /// 0 or 1: both databases store it as an integer.
    ok: i64,
    status: Option<i64>,
    cause: Option<String>,
    contributing: Option<String>,
    explanation: Option<String>,
    failure_kind: Option<String>,
    failure_message: Option<String>,
    resolve_us: Option<i64>,
    connect_us: Option<i64>,
    tls_us: Option<i64>,
    first_byte_us: Option<i64>,
    total_us: i64,
    evidence: Option<String>,
}

/// A result with its canary and, for a failed check, its failure (migration 0008), as `r`.
const RESULT_SELECT: &str = "SELECT r.id, r.report_uuid, c.name AS canary, c.url,
    r.address, r.started_at_ms, r.ok, r.status, f.cause, f.contributing, f.explanation,
    f.failure_kind, f.failure_message, r.resolve_us, r.connect_us, r.tls_us, r.first_byte_us,
    r.total_us, f.evidence
    FROM results r JOIN canaries c ON c.id = r.canary_id LEFT JOIN failures f ON f.result_id = r.id";

/// A stored UUID (16 bytes) as text; empty should a row hold anything else.
pub(crate) fn uuid_text(bytes: &[u8]) -> String {
    uuid::Uuid::from_slice(bytes)
        .map(|u| u.to_string())
        .unwrap_or_default()
}

/// Whole microseconds, as stored, in milliseconds.
fn millis(us: i64) -> f64 {
    us as f64 / 1000.0
}

impl From<ResultRow> for ResultView {
    fn from(r: ResultRow) -> Self {
        let contributing = r
            .contributing
            .as_deref()
            .map(|json| {
                decode::<Vec<String>>("results", r.id, "contributing", json).unwrap_or_default()
            })
            .unwrap_or_default();
        let evidence = r
            .evidence
            .as_deref()
            .and_then(|json| decode::<Evidence>("results", r.id, "evidence", json));
        let failure = match (r.failure_kind, r.failure_message) {
            (None, None) => None,
            (kind, message) => Some(FailureView {
                kind: kind.unwrap_or_default(),
                message: message.unwrap_or_default(),
            }),
        };
        ResultView {
            id: r.id,
            report_id: uuid_text(&r.report_uuid),
            canary: r.canary.into(),
            url: r.url,
            address: r.address,
            started_at_ms: r.started_at_ms,
            ok: r.ok != 0,
            status: r.status.and_then(|s| u16::try_from(s).ok()),
            cause: r.cause,
            contributing,
            explanation: r.explanation,
            failure,
            timings: Timings {
                resolve_ms: r.resolve_us.map(millis),
                connect_ms: r.connect_us.map(millis),
                tls_ms: r.tls_us.map(millis),
                first_byte_ms: r.first_byte_us.map(millis),
                total_ms: millis(r.total_us),
            },
            evidence,
        }
    }
}

/// Stored JSON that no longer reads (written by a newer collector, or damaged) costs the
/// detail, not the answer: logged and left out.
fn decode<T: serde::de::DeserializeOwned>(
    table: &str,
    id: i64,
    column: &str,
    json: &str,
) -> Option<T> {
    match serde_json::from_str(json) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(table, id, column, error = %e, "stored JSON does not decode");
            None
        }
    }
}

/// A server's results since `since_ms`, newest first, at most `limit` (≤ [`MAX_RESULTS`]).
pub async fn results(
    pool: &AnyPool,
    name: &str,
    since_ms: i64,
    limit: u32,
) -> Result<Vec<ResultView>, ReadError> {
    let row = server_row(pool, name).await?;
    let rows: Vec<ResultRow> = sqlx::query_as(&format!(
        "{RESULT_SELECT}
         WHERE r.server_id = $1 AND r.started_at_ms >= $2
         ORDER BY r.started_at_ms DESC, r.id DESC LIMIT $3"
    ))
    .bind(row.id)
    .bind(since_ms)
    .bind(i64::from(limit.min(MAX_RESULTS)))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(ResultView::from).collect())
}

/// The check `id` of the server `name`; `None` when that server has no such check.
pub async fn result_of(
    pool: &AnyPool,
    name: &str,
    id: i64,
) -> Result<Option<ResultView>, ReadError> {
    let server = server_row(pool, name).await?;
    let row: Option<ResultRow> = sqlx::query_as(&format!(
        "{RESULT_SELECT} WHERE r.id = $1 AND r.server_id = $2"
    ))
    .bind(id)
    .bind(server.id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(ResultView::from))
}

async fn result_by_id(pool: &AnyPool, id: i64) -> Result<Option<ResultView>, ReadError> {
    let row: Option<ResultRow> = sqlx::query_as(&format!("{RESULT_SELECT} WHERE r.id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(ResultView::from))
}

#[derive(sqlx::FromRow)]
struct IncidentRow {
    id: i64,
    server_id: i64,
    cause: String,
    started_at_ms: i64,
    last_failure_at_ms: i64,
    ended_at_ms: Option<i64>,
    failed_checks: i64,
    first_result_id: i64,
    last_result_id: i64,
    explanation: String,
    bursts: i64,
    checks: i64,
    burst_starts: Option<String>,
}

const INCIDENT_COLUMNS: &str =
    "id, server_id, cause, started_at_ms, last_failure_at_ms, ended_at_ms,
    failed_checks, first_result_id, last_result_id, explanation, bursts, checks, burst_starts";

async fn incident_view(pool: &AnyPool, row: IncidentRow) -> Result<IncidentView, ReadError> {
    let mut samples = Vec::with_capacity(2);
    samples.extend(result_by_id(pool, row.first_result_id).await?);
    if row.last_result_id != row.first_result_id {
        samples.extend(result_by_id(pool, row.last_result_id).await?);
    }
    Ok(IncidentView {
        samples,
        ..incident_summary(row)
    })
}

/// An incident without its sample checks: what a list of every server carries.
fn incident_summary(row: IncidentRow) -> IncidentView {
    IncidentView {
        id: row.id,
        summary: cause_summary(&row.cause).to_owned(),
        cause: row.cause,
        started_at_ms: row.started_at_ms,
        last_failure_at_ms: row.last_failure_at_ms,
        ended_at_ms: row.ended_at_ms,
        open: row.ended_at_ms.is_none(),
        failed_checks: u64::try_from(row.failed_checks).unwrap_or(0),
        bursts: u64::try_from(row.bursts).unwrap_or(1),
        checks: u64::try_from(row.checks).unwrap_or(0),
        bursts_at_ms: std::iter::once(row.started_at_ms)
            .chain(
                row.burst_starts
                    .iter()
                    .flat_map(|s| s.split(' '))
                    .filter_map(|t| t.parse().ok()),
            )
            .collect(),
        explanation: row.explanation,
        samples: Vec::new(),
    }
}

/// What a stored cause id means, for people; ids written by a newer collector still answer.
fn cause_summary(cause: &str) -> &'static str {
    cause
        .parse::<Cause>()
        .map_or("a cause this collector does not know", Cause::summary)
}

async fn open_incident(pool: &AnyPool, server_id: i64) -> Result<Option<IncidentView>, ReadError> {
    let row: Option<IncidentRow> = sqlx::query_as(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents WHERE server_id = $1 AND ended_at_ms IS NULL"
    ))
    .bind(server_id)
    .fetch_optional(pool)
    .await?;
    match row {
        Some(row) => Ok(Some(incident_view(pool, row).await?)),
        None => Ok(None),
    }
}

async fn incidents_of(
    pool: &AnyPool,
    server_id: i64,
    since_ms: i64,
) -> Result<Vec<IncidentView>, ReadError> {
    let rows: Vec<IncidentRow> = sqlx::query_as(&format!(
        "SELECT {INCIDENT_COLUMNS} FROM incidents
         WHERE server_id = $1 AND (ended_at_ms IS NULL OR ended_at_ms >= $2)
         ORDER BY started_at_ms DESC, id DESC LIMIT $3"
    ))
    .bind(server_id)
    .bind(since_ms)
    .bind(i64::from(MAX_INCIDENTS))
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(incident_view(pool, row).await?);
    }
    Ok(out)
}

/// A server's incidents overlapping `since_ms ..= now`, newest first.
pub async fn incidents(
    pool: &AnyPool,
    name: &str,
    since_ms: i64,
) -> Result<Vec<IncidentView>, ReadError> {
    let row = server_row(pool, name).await?;
    incidents_of(pool, row.id, since_ms).await
}

/// What `probectl why` shows: the server, its availability, incidents, resolver and host
/// conditions since `since_ms`.
pub async fn why(
    pool: &AnyPool,
    name: &str,
    (since_ms, now_ms): (i64, i64),
    known: &maintenance::Known,
) -> Result<WhyView, ReadError> {
    let row = server_row(pool, name).await?;
    let server_id = row.id;
    let availability = availability_since(pool, server_id, since_ms, now_ms).await?;
    let (maintenance, availability_outside_maintenance) = maintenance::of_server(
        pool,
        (server_id, &row.name, row.created_at_ms),
        (since_ms, now_ms),
        known,
        availability,
    )
    .await?;
    let incidents = incidents_of(pool, server_id, since_ms).await?;
    let resolver_conditions = resolvers::conditions_of(pool, server_id, since_ms).await?;
    let host_conditions = host::conditions_of(pool, server_id, since_ms).await?;
    let certificates = certificates::certificates_of(pool, server_id, since_ms).await?;
    Ok(WhyView {
        server: server_view(pool, row, now_ms).await?,
        since_ms,
        now_ms,
        availability,
        incidents,
        resolver_conditions,
        host_conditions,
        maintenance,
        availability_outside_maintenance,
        certificates,
    })
}
