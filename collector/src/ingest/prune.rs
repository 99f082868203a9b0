//! Retention: what is deleted when, in small steps run by the writer when no report waits
//! (or once a second under a load that never stops), so pruning a large backlog never holds
//! ingest for long.
//!
//! - raw checks (healthy results, reports whose checks all passed), host readings and resolver
//!   answers: `raw` (14 days);
//! - failed checks with their evidence, and every report: `evidence` (90 days, as long as the
//!   page shows an incident's evidence);
//! - hourly rollups, resolver hourly counts, ended incidents and conditions: `hourly` (400 days);
//! - ended alerts and notifications no longer pending: `evidence`;
//! - per-minute availability: a day (windows of up to two hours read minutes);
//! - daily rollups: for ever (a row per server and day).
//!
//! A resolver's newest answer is kept whatever its age: it says what the resolver answers now.
//! Pages freed by deletes go to SQLite's freelist and are reused by the rows that come next,
//! so at the retention's steady state the file stops growing.

use std::time::Duration;

use super::IngestError;
use super::partitions;
use super::sql::{Conn, SqlError, values};

const DAY_MS: i64 = 86_400_000;
/// Per-minute availability is kept this long: more than the two hours read by the minute
/// (`read::availability::MINUTES_UP_TO_MS`), for a look at a recent outage by hand.
const MINUTES_KEPT_MS: i64 = DAY_MS;
/// Servers visited per step.
const SERVERS_PER_STEP: i64 = 50;
/// Rows deleted per step at most: about 10 ms of work on this project's 2-core machine (the
/// ingest bench measured 50 ms for 2,000, scattered over pages by random report ids). A
/// report that arrives during a step waits for it.
pub const ROWS_PER_STEP: i64 = 500;

/// How long each kind of data is kept (`--retain-raw`, `--retain-evidence`, `--retain-hourly`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub raw: Duration,
    pub evidence: Duration,
    pub hourly: Duration,
}

impl Retention {
    pub const RAW: Duration = Duration::from_secs(14 * 86_400);
    pub const EVIDENCE: Duration = Duration::from_secs(90 * 86_400);
    pub const HOURLY: Duration = Duration::from_secs(400 * 86_400);
}

impl Default for Retention {
    fn default() -> Retention {
        Retention {
            raw: Retention::RAW,
            evidence: Retention::EVIDENCE,
            hourly: Retention::HOURLY,
        }
    }
}

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub rows: u64,
    /// The step reached the end of a pass over every server with nothing left to delete.
    pub done: bool,
}

/// Cut-off times: what started before them goes.
pub(super) struct Cutoffs {
    raw: i64,
    evidence: i64,
    hourly: i64,
    minutes: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

const HEALTHY_RESULTS: &str = "DELETE FROM results WHERE id IN (SELECT id FROM results
     WHERE server_id = $1 AND started_at_ms < $2 AND ok = 1 LIMIT $3)";
const HOST_OBSERVATIONS: &str = "DELETE FROM host_observations WHERE rowid IN (
     SELECT rowid FROM host_observations WHERE server_id = $1 AND started_at_ms < $2 LIMIT $3)";
const MINUTES: &str = "DELETE FROM availability_minutes WHERE (server_id, minute_ms) IN (
     SELECT server_id, minute_ms FROM availability_minutes
     WHERE server_id = $1 AND minute_ms < $2 LIMIT $3)";

/// Per server: `(server, cutoff, limit)`, each deleting at most `limit` rows. The tables'
/// indexes by (owner, time) find the rows. On PostgreSQL, healthy results, host readings and
/// per-minute availability go a day at a time with their partitions (see [`partitions`]):
/// their statements there delete only from the default partition (the days without one).
const PER_SERVER: [(&str, Cut); 16] = [
    // A report's id goes with its healthy checks (it was needed to tell a replay; older
    // reports are not stored at all), or with its failed ones when only those were left.
    (
        "DELETE FROM reports WHERE uuid IN (SELECT report_uuid FROM results
             WHERE server_id = $1 AND started_at_ms < $2 AND ok = 1 LIMIT $3)",
        Cut::Raw,
    ),
    (HEALTHY_RESULTS, Cut::Raw),
    (
        "DELETE FROM reports WHERE uuid IN (SELECT report_uuid FROM results
             WHERE server_id = $1 AND started_at_ms < $2 LIMIT $3)",
        Cut::Evidence,
    ),
    (
        "DELETE FROM failures WHERE result_id IN (SELECT id FROM results
             WHERE server_id = $1 AND started_at_ms < $2 LIMIT $3)",
        Cut::Evidence,
    ),
    (
        "DELETE FROM results WHERE id IN (SELECT id FROM results
             WHERE server_id = $1 AND started_at_ms < $2 LIMIT $3)",
        Cut::Evidence,
    ),
    (HOST_OBSERVATIONS, Cut::Raw),
    (
        "DELETE FROM resolver_changes WHERE rowid IN (
             SELECT c.rowid FROM resolvers r JOIN resolver_changes c ON c.resolver_id = r.id
             WHERE r.server_id = $1 AND c.started_at_ms < $2
               AND c.rowid <> (SELECT rowid FROM resolver_changes WHERE resolver_id = r.id
                               ORDER BY started_at_ms DESC, rowid DESC LIMIT 1)
             LIMIT $3)",
        Cut::Raw,
    ),
    (
        "DELETE FROM resolver_hours WHERE (resolver_id, hour_ms, cause) IN (
             SELECT o.resolver_id, o.hour_ms, o.cause
             FROM resolvers r JOIN resolver_hours o ON o.resolver_id = r.id
             WHERE r.server_id = $1 AND o.hour_ms < $2 LIMIT $3)",
        Cut::Hourly,
    ),
    (
        "DELETE FROM availability_hours WHERE (server_id, hour_ms) IN (
             SELECT server_id, hour_ms FROM availability_hours
             WHERE server_id = $1 AND hour_ms < $2 LIMIT $3)",
        Cut::Hourly,
    ),
    (MINUTES, Cut::Minutes),
    (
        "DELETE FROM incidents WHERE id IN (SELECT id FROM incidents
             WHERE server_id = $1 AND started_at_ms < $2 AND ended_at_ms < $2 LIMIT $3)",
        Cut::Hourly,
    ),
    (
        "DELETE FROM host_conditions WHERE id IN (SELECT id FROM host_conditions
             WHERE server_id = $1 AND started_at_ms < $2 AND ended_at_ms < $2 LIMIT $3)",
        Cut::Hourly,
    ),
    // Alerts: an alert that ended, and the notifications delivered or failed, as long as
    // the evidence they link to.
    (
        "DELETE FROM alert_state WHERE key IN (SELECT key FROM alert_state
             WHERE server_id = $1 AND ended_at_ms < $2 LIMIT $3)",
        Cut::Evidence,
    ),
    (
        "DELETE FROM notifications WHERE id IN (SELECT id FROM notifications
             WHERE server = (SELECT name FROM servers WHERE id = $1) AND created_at_ms < $2
             AND status <> 'pending' LIMIT $3)",
        Cut::Evidence,
    ),
    // A certificate not served for as long as the hourly history is kept.
    (
        "DELETE FROM tls_certificates WHERE (canary_id, sha256) IN (
             SELECT canary_id, sha256 FROM tls_certificates
             WHERE server_id = $1 AND last_seen_at_ms < $2 LIMIT $3)",
        Cut::Hourly,
    ),
    // Resolver conditions belong to a server through its resolvers.
    (
        "DELETE FROM resolver_conditions WHERE id IN (
             SELECT c.id FROM resolvers r JOIN resolver_conditions c ON c.resolver_id = r.id
             WHERE r.server_id = $1 AND c.started_at_ms < $2 AND c.ended_at_ms < $2 LIMIT $3)",
        Cut::Hourly,
    ),
];

/// PostgreSQL's statement in place of one of [`PER_SERVER`]'s: rows of the default partition.
fn on_postgres(sql: &'static str) -> &'static str {
    match sql {
        HEALTHY_RESULTS => {
            "DELETE FROM results_ok_default WHERE id IN (SELECT id FROM results_ok_default
                 WHERE server_id = $1 AND started_at_ms < $2 LIMIT $3)"
        }
        HOST_OBSERVATIONS => {
            "DELETE FROM host_observations_default WHERE rowid IN (
                 SELECT rowid FROM host_observations_default
                 WHERE server_id = $1 AND started_at_ms < $2 LIMIT $3)"
        }
        MINUTES => {
            "DELETE FROM availability_minutes_default WHERE (server_id, minute_ms) IN (
                 SELECT server_id, minute_ms FROM availability_minutes_default
                 WHERE server_id = $1 AND minute_ms < $2 LIMIT $3)"
        }
        other => other,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cut {
    Raw,
    Evidence,
    Hourly,
    Minutes,
}

impl Cutoffs {
    fn new(retention: &Retention, now_ms: i64) -> Cutoffs {
        Cutoffs {
            raw: now_ms.saturating_sub(ms(retention.raw)),
            evidence: now_ms.saturating_sub(ms(retention.evidence)),
            hourly: now_ms.saturating_sub(ms(retention.hourly)),
            minutes: now_ms.saturating_sub(MINUTES_KEPT_MS),
        }
    }

    pub(super) fn of(&self, cut: Cut) -> i64 {
        match cut {
            Cut::Raw => self.raw,
            Cut::Evidence => self.evidence,
            Cut::Hourly => self.hourly,
            Cut::Minutes => self.minutes,
        }
    }
}

/// Where the pruner is in its pass over the servers.
#[derive(Debug, Default)]
pub(super) struct Cursor {
    /// The last server whose old rows are all gone; the next step starts after it.
    after_server: i64,
    /// Rows deleted since the pass began, for the log line at its end.
    pass_rows: u64,
}

/// Deletes at most about `max_rows` rows older than `retention`, in one transaction,
/// continuing the pass where the last step left it.
pub(super) fn step(
    conn: &mut dyn Conn,
    cursor: &mut Cursor,
    retention: &Retention,
    now_ms: i64,
    max_rows: i64,
) -> Result<Pruned, IngestError> {
    let cut = Cutoffs::new(retention, now_ms);
    conn.begin()?;
    let resume = cursor.after_server;
    let deleted = delete_step(conn, cursor, &cut, max_rows);
    let (servers, rows, budget_spent) = match deleted.and_then(|d| conn.commit().map(|()| d)) {
        Ok(d) => d,
        Err(e) => {
            let _ = conn.rollback();
            cursor.after_server = resume;
            return Err(e.into());
        }
    };
    cursor.pass_rows += rows as u64;
    let pass_over = !budget_spent && (servers as i64) < SERVERS_PER_STEP;
    if pass_over && conn.is_postgres() {
        // Every row the partitions' days share with other tables (report ids) went in this
        // pass: the days older than the retention can go whole.
        cursor.pass_rows += partitions::maintain(conn, &cut, now_ms)?;
    }
    if pass_over {
        if cursor.pass_rows > 0 {
            tracing::info!(
                rows = cursor.pass_rows,
                "pruned what is older than the retention (raw {} d, evidence {} d, hourly {} d)",
                retention.raw.as_secs() / 86_400,
                retention.evidence.as_secs() / 86_400,
                retention.hourly.as_secs() / 86_400,
            );
        }
        *cursor = Cursor::default();
    }
    Ok(Pruned {
        rows: rows as u64,
        done: pass_over,
    })
}

/// The deletes of one step (in the caller's transaction): the servers visited, the rows
/// deleted and whether the budget ran out before the last server was done.
fn delete_step(
    conn: &mut dyn Conn,
    cursor: &mut Cursor,
    cut: &Cutoffs,
    max_rows: i64,
) -> Result<(usize, i64, bool), SqlError> {
    let postgres = conn.is_postgres();
    let servers = conn.query_all(
        "SELECT id FROM servers WHERE id > $1 ORDER BY id LIMIT $2",
        values![cursor.after_server, SERVERS_PER_STEP],
        |r| r.i64(0),
    )?;
    let mut rows: i64 = 0;
    let mut budget_spent = false;
    for &server in &servers {
        for &(sql, c) in &PER_SERVER {
            let sql = if postgres { on_postgres(sql) } else { sql };
            let cutoff = cut.of(c);
            let left = max_rows - rows;
            let n = conn.execute(sql, values![server, cutoff, left])?;
            rows += n as i64;
            if n as i64 >= left {
                budget_spent = true;
                break;
            }
        }
        if budget_spent {
            // This server may have more: the next step starts with it again.
            break;
        }
        cursor.after_server = server;
    }
    Ok((servers.len(), rows, budget_spent))
}
