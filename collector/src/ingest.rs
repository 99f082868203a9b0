//! Storing a report: its results, the server's latest state, the incidents, the resolvers'
//! observations and conditions ([`resolvers`]), the host's ([`host`]) and the page's rollups
//! ([`rollups`]), all in one
//! transaction that is committed before the probe gets its acknowledgement.
//!
//! Incident grouping, per server:
//! - a report without a failed check closes the open incident (ended at the report's start);
//! - a report with failed checks has a primary cause, the most frequent cause among them (ties:
//!   the first in the report). An open incident with that cause is extended; an open incident
//!   with another cause is closed at the report's start and a new one opened.
//!
//! Reports arrive in order from a probe's spool, so grouping follows the order of arrival. A
//! report that started before the newest report already processed for its server (a replay of
//! an old spool entry, a probe whose clock stepped back) is stored and counted in availability,
//! resolver health and host readings, but does not touch incidents, resolver or host conditions
//! nor the server's latest state: grouping it would close or split an incident at a time before
//! its own events.

mod conditions;
mod host;
mod resolvers;
pub mod rollups;

use causeway_schema::{Cause, CheckResult, Report};
use sqlx::{Sqlite, Transaction};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("database error while storing a report: {0}")]
    Db(#[from] sqlx::Error),
    #[error("cannot encode a report's {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// What happened to a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    /// The report id was stored before; nothing changed.
    Duplicate,
}

/// Stores `report` for the server `server_id` (already authenticated to send it).
pub async fn store(
    pool: &sqlx::SqlitePool,
    server_id: i64,
    report: &Report,
    received_at_ms: i64,
) -> Result<Outcome, IngestError> {
    // IMMEDIATE takes the write lock now: with another process holding it (a `token`
    // command), busy_timeout applies here instead of failing at the first write.
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let report_id = report.report_id.to_string();
    let checks_ok = report.results.iter().filter(|r| r.ok).count() as i64;
    let inserted = sqlx::query(
        "INSERT INTO reports (report_id, server_id, started_at_ms, received_at_ms, probe_host,
                              probe_version, checks_total, checks_ok)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (report_id) DO NOTHING",
    )
    .bind(&report_id)
    .bind(server_id)
    .bind(report.started_at_ms)
    .bind(received_at_ms)
    .bind(&report.probe.host)
    .bind(&report.probe.version)
    .bind(report.results.len() as i64)
    .bind(checks_ok)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        tx.rollback().await?;
        return Ok(Outcome::Duplicate);
    }

    let mut result_ids = Vec::with_capacity(report.results.len());
    for result in &report.results {
        result_ids.push(insert_result(&mut tx, server_id, &report_id, result).await?);
    }
    rollups::add(&mut tx, server_id, report).await?;
    let observed = resolvers::observe(&mut tx, server_id, &report_id, report).await?;
    let host = host::observe(&mut tx, server_id, &report_id, report).await?;

    let newest: Option<i64> =
        sqlx::query_scalar("SELECT last_started_at_ms FROM servers WHERE id = ?1")
            .bind(server_id)
            .fetch_one(&mut *tx)
            .await?;
    let in_order = newest.is_none_or(|newest| report.started_at_ms >= newest);
    if in_order {
        sqlx::query(
            "UPDATE servers SET last_report_id = ?2, last_started_at_ms = ?3, interval_s = ?4,
                    probe_host = ?5, probe_version = ?6, spool_queued = ?7,
                    spool_dropped_total = ?8, last_received_at_ms = ?9,
                    last_checks_total = ?10, last_checks_ok = ?11
             WHERE id = ?1",
        )
        .bind(server_id)
        .bind(&report_id)
        .bind(report.started_at_ms)
        .bind(report.interval_s)
        .bind(&report.probe.host)
        .bind(&report.probe.version)
        .bind(clamp_i64(report.spool.queued))
        .bind(clamp_i64(report.spool.dropped_total))
        .bind(received_at_ms)
        .bind(report.results.len() as i64)
        .bind(checks_ok)
        .execute(&mut *tx)
        .await?;
        update_incidents(&mut tx, server_id, report, &result_ids).await?;
        resolvers::update_conditions(&mut tx, server_id, report.started_at_ms, &observed).await?;
        host::update_conditions(&mut tx, server_id, report.started_at_ms, &host).await?;
    } else {
        tracing::info!(
            report_id = %report.report_id,
            server = %report.server,
            started_at_ms = report.started_at_ms,
            newest_started_at_ms = newest,
            "report older than the newest one of its server: stored, incidents, resolver and \
             host conditions unchanged"
        );
        sqlx::query("UPDATE servers SET last_received_at_ms = ?2 WHERE id = ?1")
            .bind(server_id)
            .bind(received_at_ms)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(Outcome::Stored)
}

fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn insert_result(
    tx: &mut Transaction<'static, Sqlite>,
    server_id: i64,
    report_id: &str,
    r: &CheckResult,
) -> Result<i64, IngestError> {
    let diagnosis = r.diagnosis.as_ref();
    let contributing = match diagnosis.map(|d| &d.contributing) {
        Some(c) if !c.is_empty() => Some(encode("contributing causes", c)?),
        _ => None,
    };
    // Successful checks carry no evidence worth keeping; storing `{}` for each would only
    // grow the table.
    let evidence = if r.ok {
        None
    } else {
        Some(encode("evidence", &r.evidence)?)
    };
    let failure_kind = r.failure.as_ref().map(|f| f.kind.id());

    let id = sqlx::query_scalar(
        "INSERT INTO results (report_id, server_id, canary, url, address, started_at_ms, ok,
                              status, cause, contributing, explanation, failure_kind,
                              failure_message, resolve_ms, connect_ms, tls_ms, first_byte_ms,
                              total_ms, evidence)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19)
         RETURNING id",
    )
    .bind(report_id)
    .bind(server_id)
    .bind(&r.canary)
    .bind(&r.url)
    .bind(r.address.map(|a| a.to_string()))
    .bind(r.started_at_ms)
    .bind(r.ok)
    .bind(r.status)
    .bind(r.cause().map(Cause::id))
    .bind(contributing)
    .bind(diagnosis.map(|d| d.explanation.as_str()))
    .bind(failure_kind)
    .bind(r.failure.as_ref().map(|f| f.message.as_str()))
    .bind(r.timings.resolve_ms)
    .bind(r.timings.connect_ms)
    .bind(r.timings.tls_ms)
    .bind(r.timings.first_byte_ms)
    .bind(r.timings.total_ms)
    .bind(evidence)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

fn encode<T: serde::Serialize>(what: &'static str, value: &T) -> Result<String, IngestError> {
    serde_json::to_string(value).map_err(|source| IngestError::Encode { what, source })
}

/// The primary cause of a report's failed checks: the most frequent, ties going to the one
/// seen first. `None` when no check failed.
pub fn primary_cause(results: &[CheckResult]) -> Option<Cause> {
    let mut counts: Vec<(Cause, usize)> = Vec::new();
    for cause in results.iter().filter_map(CheckResult::cause) {
        match counts.iter_mut().find(|(c, _)| *c == cause) {
            Some((_, n)) => *n += 1,
            None => counts.push((cause, 1)),
        }
    }
    // max_by_key returns the last of equal maxima; reversing keeps the first seen.
    counts
        .into_iter()
        .rev()
        .max_by_key(|&(_, n)| n)
        .map(|(c, _)| c)
}

#[derive(sqlx::FromRow)]
struct OpenIncident {
    id: i64,
    cause: String,
}

async fn update_incidents(
    tx: &mut Transaction<'static, Sqlite>,
    server_id: i64,
    report: &Report,
    result_ids: &[i64],
) -> Result<(), IngestError> {
    let open: Option<OpenIncident> = sqlx::query_as(
        "SELECT id, cause FROM incidents WHERE server_id = ?1 AND ended_at_ms IS NULL",
    )
    .bind(server_id)
    .fetch_optional(&mut **tx)
    .await?;

    let Some(cause) = primary_cause(&report.results) else {
        if let Some(open) = open {
            close(tx, "incidents", open.id, report.started_at_ms).await?;
        }
        return Ok(());
    };
    // The failed checks with the primary cause, with their stored ids.
    let matching: Vec<(&CheckResult, i64)> = report
        .results
        .iter()
        .zip(result_ids.iter().copied())
        .filter(|(r, _)| r.cause() == Some(cause))
        .collect();
    let (Some(&(first, first_id)), Some(&(last, last_id))) = (matching.first(), matching.last())
    else {
        return Ok(()); // unreachable: the primary cause is the cause of some failed check
    };
    let last_failure_at_ms = matching
        .iter()
        .map(|(r, _)| r.started_at_ms)
        .max()
        .unwrap_or(last.started_at_ms);

    match open {
        Some(open) if open.cause == cause.id() => {
            sqlx::query(
                "UPDATE incidents SET failed_checks = failed_checks + ?2,
                        last_failure_at_ms = max(last_failure_at_ms, ?3), last_result_id = ?4
                 WHERE id = ?1",
            )
            .bind(open.id)
            .bind(matching.len() as i64)
            .bind(last_failure_at_ms)
            .bind(last_id)
            .execute(&mut **tx)
            .await?;
            return Ok(());
        }
        Some(open) => close(tx, "incidents", open.id, report.started_at_ms).await?,
        None => {}
    }
    let explanation = first
        .diagnosis
        .as_ref()
        .map(|d| d.explanation.clone())
        .or_else(|| first.failure.as_ref().map(|f| f.message.clone()))
        .unwrap_or_else(|| cause.summary().to_owned());
    sqlx::query(
        "INSERT INTO incidents (server_id, cause, started_at_ms, last_failure_at_ms,
                                failed_checks, first_result_id, last_result_id, explanation)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .bind(server_id)
    .bind(cause.id())
    .bind(first.started_at_ms)
    .bind(last_failure_at_ms)
    .bind(matching.len() as i64)
    .bind(first_id)
    .bind(last_id)
    .bind(explanation)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Ends the incident or condition `id` of `table` (`incidents`, `resolver_conditions`,
/// `host_conditions`: all keep `ended_at_ms` NULL while open).
async fn close(
    tx: &mut Transaction<'static, Sqlite>,
    table: &'static str,
    id: i64,
    ended_at_ms: i64,
) -> Result<(), IngestError> {
    sqlx::query(&format!(
        "UPDATE {table} SET ended_at_ms = ?2 WHERE id = ?1"
    ))
    .bind(id)
    .bind(ended_at_ms)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_schema::{Diagnosis, Timings};

    fn check(ok: bool, cause: Option<Cause>) -> CheckResult {
        CheckResult {
            canary: "site".into(),
            url: "http://canary.test/".into(),
            address: None,
            started_at_ms: 1_763_900_000_000,
            ok,
            status: None,
            timings: Timings::default(),
            failure: None,
            diagnosis: cause.map(|cause| Diagnosis {
                cause,
                contributing: vec![],
                explanation: "x".into(),
            }),
            evidence: Default::default(),
        }
    }

    #[test]
    fn primary_cause_is_the_most_frequent_then_the_first() {
        use Cause::*;
        assert_eq!(primary_cause(&[check(true, None)]), None);
        assert_eq!(primary_cause(&[]), None);
        let tie = [
            check(true, None),
            check(false, Some(Timeout)),
            check(false, Some(ConnectionRefused)),
        ];
        assert_eq!(primary_cause(&tie), Some(Timeout));
        let most = [
            check(false, Some(Timeout)),
            check(false, Some(ConnectionRefused)),
            check(false, Some(ConnectionRefused)),
        ];
        assert_eq!(primary_cause(&most), Some(ConnectionRefused));
        // A failed check without a diagnosis counts as `unknown`.
        assert_eq!(primary_cause(&[check(false, None)]), Some(Unknown));
    }
}
