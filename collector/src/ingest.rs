//! Storing a report: its results, the server's latest state, the incidents, the resolvers'
//! observations and conditions ([`resolvers`]), the host's ([`host`]) and the page's rollups
//! ([`rollups`]), all in one
//! transaction that is committed before the probe gets its acknowledgement. The [`Writer`]
//! stores reports in batches: each in its own savepoint, the batch in one transaction.
//!
//! Incident grouping, per server:
//! - a report without a failed check closes the open incident (ended at the report's start);
//! - a report with failed checks has a primary cause, the most frequent cause among them (ties:
//!   the first in the report). An open incident with that cause is extended; an open incident
//!   with another cause is closed at the report's start and a new one opened. With none open,
//!   the latest ended incident is reopened when it has that cause and ended within the merge
//!   gap (an intermittent fault is one incident with several bursts).
//!
//! Reports arrive in order from a probe's spool, so grouping follows the order of arrival. A
//! report that started before the newest report already processed for its server (a replay of
//! an old spool entry) is stored and counted in availability, resolver health and host
//! readings, but does not touch incidents, resolver or host conditions nor the server's latest
//! state: grouping it would close or split an incident at a time before its own events.
//!
//! "Started before" is judged on the collector's clock ([`Arrival::started_at_ms`]), not on the
//! probe's: a probe whose clock ran ahead for a while (a host that booted before NTP set its
//! clock) would otherwise date reports in the future, and every correct report after them
//! would count as old, changing nothing while a real outage went by. The probe's times are
//! kept as its data; the difference between its clock and the collector's is the host
//! condition `clock_skew`.

mod certificates;
mod conditions;
mod grouping;
mod host;
mod partitions;
pub mod prune;
mod resolvers;
pub mod rollups;
mod server;
pub mod sql;
mod values;
mod writer;

pub use grouping::{MERGE_GAP_MS, merge_gap_ms, primary_cause, set_merge_gap};
pub use prune::{Pruned, Retention};
pub use writer::{Writer, WriterError};

use std::sync::Arc;

use causeway_schema::{Cause, CheckResult, Report};

use grouping::{Closed, IncidentStep, Open, next_incident, reopens};
use server::Servers;
use sql::{Conn, SqlError, values};
use values::{clamp_i64, encode, micros};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("database error while storing a report: {0}")]
    Db(#[source] SqlError),
    #[error("cannot encode a report's {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The report was stored with others in one transaction, and that transaction failed.
    #[error("database error while committing a batch of reports: {0}")]
    Batch(#[source] Arc<SqlError>),
    /// The writer has stopped (the collector is shutting down) or died.
    #[error("the database writer is not running")]
    Stopped,
}

/// What happened to a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Stored,
    /// The report id was stored before; nothing changed.
    Duplicate,
}

/// How a report arrived: the collector's clock at receipt, and the probe's when it sent the
/// report ([`causeway_schema::SENT_AT_HEADER`]), when the probe said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub received_at_ms: i64,
    pub sent_at_ms: Option<i64>,
}

impl Arrival {
    /// When a report that says it started at `started_at_ms` started, on the collector's
    /// clock. With the probe's sending time: the receipt less the time the report waited,
    /// which the probe's two times give on one clock, whatever that clock's offset. Without
    /// it: the report's start, but never later than its receipt.
    pub fn started_at_ms(&self, started_at_ms: i64) -> i64 {
        match self.sent_at_ms {
            Some(sent) => self
                .received_at_ms
                .saturating_sub(sent.saturating_sub(started_at_ms).max(0)),
            None => started_at_ms.min(self.received_at_ms),
        }
    }

    /// How far the probe's clock is ahead of the collector's (negative: behind): its clock
    /// when sending less the collector's at receipt, so the network's delay (milliseconds)
    /// counts as the probe being behind.
    pub fn clock_offset_ms(&self) -> Option<i64> {
        self.sent_at_ms
            .map(|sent| sent.saturating_sub(self.received_at_ms))
    }
}

/// Statements that end an incident: `(id, ended at)`. Never before its start: a report that
/// opened it may be dated up to `MAX_CLOCK_AHEAD_MS` ahead of the one that closes it.
const CLOSE_INCIDENT: &str =
    "UPDATE incidents SET ended_at_ms = greatest(started_at_ms, $2) WHERE id = $1";

/// Stores `report` for the server `server_id` (already authenticated to send it), inside the
/// writer's open transaction.
fn store(
    conn: &mut dyn Conn,
    servers: &mut Servers,
    server_id: i64,
    report: &Report,
    arrival: Arrival,
) -> Result<Outcome, IngestError> {
    let checks_ok = report.results.iter().filter(|r| r.ok).count() as i64;
    let uuid = report.report_id.as_bytes().as_slice();
    let inserted = conn.execute(
        "INSERT INTO reports (uuid) VALUES ($1) ON CONFLICT (uuid) DO NOTHING",
        values![uuid],
    )?;
    if inserted == 0 {
        return Ok(Outcome::Duplicate);
    }
    let report_id = report.report_id.to_string();
    let state = servers.get(conn, server_id)?;
    let at_ms = arrival.started_at_ms(report.started_at_ms);
    let in_order = state.last_at_ms.is_none_or(|newest| at_ms >= newest);
    let clock_offset_ms = arrival.clock_offset_ms();
    let judged = judged_by_our_clock(report, clock_offset_ms);
    let report = judged.as_ref().unwrap_or(report);

    let mut result_ids = Vec::with_capacity(report.results.len());
    let mut canary_ids = Vec::with_capacity(report.results.len());
    for result in &report.results {
        let canary_id = canary_id(conn, state, server_id, result)?;
        let ids = (server_id, uuid, canary_id);
        result_ids.push(insert_result(conn, ids, result)?);
        canary_ids.push(canary_id);
    }
    certificates::observe(conn, state, server_id, &report.results, &canary_ids)?;
    rollups::add(conn, server_id, report)?;
    let recent = rollups::add_recent(&mut state.recent, report)?;
    let observed = resolvers::observe(conn, state, server_id, report, in_order)?;
    let host = host::observe(conn, state, server_id, report, in_order, clock_offset_ms)?;

    if in_order {
        conn.execute(
            "UPDATE servers SET last_report_id = $2, last_started_at_ms = $3, interval_s = $4,
                    probe_host = $5, probe_version = $6, spool_queued = $7,
                    spool_dropped_total = $8, last_received_at_ms = $9,
                    last_checks_total = $10, last_checks_ok = $11, recent_checks = $12,
                    last_at_ms = $13, clock_offset_ms = $14, last_cycle_ms = $15,
                    cycle_overruns_total = $16, generation = generation + 1
             WHERE id = $1",
            values![
                server_id,
                &report_id,
                report.started_at_ms,
                report.interval_s,
                &report.probe.host,
                &report.probe.version,
                clamp_i64(report.spool.queued),
                clamp_i64(report.spool.dropped_total),
                arrival.received_at_ms,
                report.results.len() as i64,
                checks_ok,
                &recent,
                at_ms,
                clock_offset_ms,
                report.cycle.map(|c| clamp_i64(c.took_ms)),
                report.cycle.map(|c| clamp_i64(c.overruns_total)),
            ],
        )?;
        state.last_at_ms = Some(at_ms);
        update_incidents(conn, state, server_id, report, &result_ids)?;
        resolvers::update_conditions(conn, state, report.started_at_ms, &observed)?;
        host::update_conditions(conn, state, server_id, report.started_at_ms, &host)?;
    } else {
        tracing::info!(
            report_id = %report.report_id,
            server = %report.server,
            started_at_ms = report.started_at_ms,
            at_ms,
            newest_at_ms = state.last_at_ms,
            "report older than the newest one of its server: stored, incidents, resolver and \
             host conditions unchanged"
        );
        conn.execute(
            "UPDATE servers SET last_received_at_ms = $2, recent_checks = $3,
                    generation = generation + 1
             WHERE id = $1",
            values![server_id, arrival.received_at_ms, &recent],
        )?;
    }
    state.generation += 1;
    Ok(Outcome::Stored)
}

/// The id of a check's canary (its name and URL), its row made on first sight.
fn canary_id(
    conn: &mut dyn Conn,
    state: &mut server::ServerState,
    server_id: i64,
    r: &CheckResult,
) -> Result<i64, IngestError> {
    if let Some((_, _, id)) = state
        .canaries
        .iter()
        .find(|(name, url, _)| *name == r.canary && *url == r.url)
    {
        return Ok(*id);
    }
    let id = conn.returning(
        "INSERT INTO canaries (server_id, name, url) VALUES ($1, $2, $3)
             ON CONFLICT (server_id, name, url) DO UPDATE SET name = excluded.name
             RETURNING id",
        values![server_id, &r.canary, &r.url],
        |row| row.i64(0),
    )?;
    state.canaries.push((r.canary.clone(), r.url.clone(), id));
    Ok(id)
}

fn insert_result(
    conn: &mut dyn Conn,
    (server_id, report_uuid, canary_id): (i64, &[u8], i64),
    r: &CheckResult,
) -> Result<i64, IngestError> {
    let id = conn.returning(
        "INSERT INTO results (report_uuid, server_id, canary_id, address, started_at_ms, ok,
                                  status, resolve_us, connect_us, tls_us, first_byte_us, total_us)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             RETURNING id",
        values![
            report_uuid,
            server_id,
            canary_id,
            r.address.map(|a| a.to_string()).as_deref(),
            r.started_at_ms,
            r.ok,
            r.status,
            r.timings.resolve_ms.map(micros),
            r.timings.connect_ms.map(micros),
            r.timings.tls_ms.map(micros),
            r.timings.first_byte_ms.map(micros),
            micros(r.timings.total_ms),
        ],
        |row| row.i64(0),
    )?;
    // A failed check's cause, failure and evidence; a healthy one has none (its row stays short).
    if let Some(cause) = r.cause().filter(|_| !r.ok) {
        let diagnosis = r.diagnosis.as_ref();
        let contributing = match diagnosis.map(|d| &d.contributing) {
            Some(c) if !c.is_empty() => Some(encode("contributing causes", c)?),
            _ => None,
        };
        conn.execute(
            "INSERT INTO failures (result_id, cause, contributing, explanation, failure_kind,
                                   failure_message, evidence)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            values![
                id,
                cause.id(),
                contributing.as_deref(),
                diagnosis.map(|d| d.explanation.as_str()),
                r.failure.as_ref().map(|f| f.kind.id()),
                r.failure.as_ref().map(|f| f.message.as_str()),
                encode("evidence", &r.evidence)?.as_str(),
            ],
        )?;
    }
    Ok(id)
}

/// `report` with its certificates that were out of their dates by the probe's clock judged
/// again by the collector's (the probe cannot tell a wrong clock from an expired
/// certificate): each explanation says which is the more likely, and `clock_skew` contributes
/// when the certificate is valid by ours. `None` when no check needs it (no copy is made).
fn judged_by_our_clock(report: &Report, offset_ms: Option<i64>) -> Option<Report> {
    let offset_ms = offset_ms?;
    let verdicts: Vec<_> = report
        .results
        .iter()
        .map(|r| causeway_schema::clock_verdict(r, offset_ms))
        .collect();
    if verdicts.iter().all(Option::is_none) {
        return None;
    }
    let mut judged = report.clone();
    for (r, verdict) in judged.results.iter_mut().zip(verdicts) {
        let (Some((sentence, clock_likely)), Some(d)) = (verdict, r.diagnosis.as_mut()) else {
            continue;
        };
        d.explanation = format!("{}; {sentence}", d.explanation);
        if clock_likely && !d.contributing.contains(&Cause::ClockSkew) {
            d.contributing.push(Cause::ClockSkew);
        }
    }
    Some(judged)
}

/// Counts a report's failures and checks in incident `id`, open or (within the merge gap)
/// reopened.
fn count_failures(
    conn: &mut dyn Conn,
    id: i64,
    failures: &grouping::Failures,
    result_ids: &[i64],
    checks: i64,
    reopened_at_ms: Option<i64>,
) -> Result<(), IngestError> {
    let last = result_ids[failures.checks[failures.checks.len() - 1]];
    let (count, at) = (failures.checks.len() as i64, failures.last_failure_at_ms);
    match reopened_at_ms {
        None => conn.execute(EXTEND_INCIDENT, values![id, count, at, last, checks])?,
        Some(start) => conn.execute(
            REOPEN_INCIDENT,
            values![id, count, at, last, checks, start, BURST_STARTS_KEPT],
        )?,
    };
    Ok(())
}

const EXTEND_INCIDENT: &str = "UPDATE incidents SET failed_checks = failed_checks + $2,
        last_failure_at_ms = greatest(last_failure_at_ms, $3), last_result_id = $4,
        checks = checks + $5
     WHERE id = $1";
/// [`EXTEND_INCIDENT`] for an incident that ended within the merge gap: open again, one more
/// burst, its start kept while fewer than [`BURST_STARTS_KEPT`] are.
const REOPEN_INCIDENT: &str = "UPDATE incidents SET ended_at_ms = NULL, bursts = bursts + 1,
        failed_checks = failed_checks + $2,
        last_failure_at_ms = greatest(last_failure_at_ms, $3), last_result_id = $4,
        checks = checks + $5,
        burst_starts = CASE
            WHEN burst_starts IS NULL THEN CAST($6 AS TEXT)
            WHEN bursts < $7 THEN burst_starts || ' ' || CAST($6 AS TEXT)
            ELSE burst_starts END
     WHERE id = $1";
/// How many burst starts an incident keeps: its first, and the rest in `burst_starts`.
const BURST_STARTS_KEPT: i64 = 50;

/// The server's checks between an incident's end and the report that reopens it (the
/// healthy checks of the gap, which count in its failure ratio): the results since the
/// closing report, before the first of this report (`first_result_id`).
const GAP_CHECKS: &str = "SELECT count(*) FROM results
     WHERE server_id = $1 AND started_at_ms >= $2 AND id < $3";

/// Carries out the incident rule ([`next_incident`], and [`reopens`] within the merge gap)
/// for an in-order report, keeping the server's open and latest ended incidents in `state`.
fn update_incidents(
    conn: &mut dyn Conn,
    state: &mut server::ServerState,
    server_id: i64,
    report: &Report,
    result_ids: &[i64],
) -> Result<(), IngestError> {
    let open = &mut state.incident;
    let step = next_incident(open.as_ref(), &report.results);
    let checks = report.results.len() as i64;
    if let Some(closed) = reopens(state.closed.as_ref(), &step, report.started_at_ms) {
        let IncidentStep::Open { failures, .. } = step else {
            unreachable!("only an opening step reopens")
        };
        let (id, ended_at_ms) = (closed.id, closed.ended_at_ms);
        let gap = conn
            .query_row(
                GAP_CHECKS,
                values![server_id, ended_at_ms, result_ids[0]],
                |r| r.i64(0),
            )?
            .unwrap_or(0);
        let start = report.results[failures.checks[0]].started_at_ms;
        count_failures(conn, id, &failures, result_ids, gap + checks, Some(start))?;
        *open = Some(Open {
            id,
            cause: failures.cause.id().to_owned(),
        });
        state.closed = None;
        return Ok(());
    }
    match step {
        IncidentStep::Nothing => {}
        IncidentStep::Close { id } => {
            conditions::close(conn, CLOSE_INCIDENT, id, report.started_at_ms)?;
            state.closed = open.take().map(|o| Closed {
                id,
                cause: o.cause,
                ended_at_ms: report.started_at_ms,
            });
        }
        IncidentStep::Extend { id, failures } => {
            count_failures(conn, id, &failures, result_ids, checks, None)?;
        }
        IncidentStep::Open { close, failures } => {
            if let Some(id) = close {
                conditions::close(conn, CLOSE_INCIDENT, id, report.started_at_ms)?;
                // Replaced by another cause: not one to reopen.
                state.closed = None;
            }
            let (first, last) = (
                failures.checks[0],
                failures.checks[failures.checks.len() - 1],
            );
            let first_check = &report.results[first];
            let explanation = first_check
                .diagnosis
                .as_ref()
                .map(|d| d.explanation.clone())
                .or_else(|| first_check.failure.as_ref().map(|f| f.message.clone()))
                .unwrap_or_else(|| failures.cause.summary().to_owned());
            let id = conn.returning(
                "INSERT INTO incidents (server_id, cause, started_at_ms, last_failure_at_ms,
                                            failed_checks, first_result_id, last_result_id,
                                            explanation, checks)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                     RETURNING id",
                values![
                    server_id,
                    failures.cause.id(),
                    first_check.started_at_ms,
                    failures.last_failure_at_ms,
                    failures.checks.len() as i64,
                    result_ids[first],
                    result_ids[last],
                    &explanation,
                    checks,
                ],
                |r| r.i64(0),
            )?;
            *open = Some(Open {
                id,
                cause: failures.cause.id().to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Arrival;

    const NOW: i64 = 1_800_000_000_000;

    fn arrival(sent_at_ms: Option<i64>) -> Arrival {
        Arrival {
            received_at_ms: NOW,
            sent_at_ms,
        }
    }

    #[test]
    fn a_report_dated_in_the_future_sorts_at_its_receipt() {
        // 4 minutes ahead, with or without the probe's sending time: not after later reports.
        assert_eq!(arrival(None).started_at_ms(NOW + 240_000), NOW);
        assert_eq!(
            arrival(Some(NOW + 240_500)).started_at_ms(NOW + 240_000),
            NOW - 500
        );
        assert_eq!(
            arrival(Some(NOW + 240_500)).clock_offset_ms(),
            Some(240_500)
        );
    }

    #[test]
    fn a_replay_sorts_at_when_it_started_whatever_the_probe_clock() {
        // Spooled for 10 minutes by a probe 1 hour behind: started 10 minutes ago.
        let hour = 3_600_000;
        let replay = arrival(Some(NOW - hour)).started_at_ms(NOW - hour - 600_000);
        assert_eq!(replay, NOW - 600_000);
        assert_eq!(arrival(Some(NOW - hour)).clock_offset_ms(), Some(-hour));
        // Without the sending time, the probe's own date.
        assert_eq!(arrival(None).started_at_ms(NOW - 600_000), NOW - 600_000);
        assert_eq!(arrival(None).clock_offset_ms(), None);
    }

    #[test]
    fn a_clock_stepped_back_between_start_and_send_counts_no_wait() {
        assert_eq!(arrival(Some(NOW - 5_000)).started_at_ms(NOW + 60_000), NOW);
    }
}
