//! A report's host: its readings in `host_observations`, and the host conditions grouped from
//! the reports that arrive in order.
//!
//! Readings: the newest row always holds the newest reading of an in-order report. A new row
//! starts when the boot id, the causes found or the probe's warnings change, or when the row
//! is a minute old; otherwise the reading replaces the newest row's, and the row's
//! `last_at_ms` (its `started_at_ms`, the first reading's, stays: migration 0013). So the
//! history costs a row a minute whatever the interval, and every change of state has its own
//! row. An old report's reading is not kept: it is not the newest, and its minute has its row.
//!
//! Grouping, per server and cause:
//! - a condition in a report extends the open condition of its cause, or opens one at the
//!   report's start;
//! - an open condition whose cause is absent from a report that carries `host` is closed at that
//!   report's start: the probe looked and no longer found it;
//! - a report without `host` (a probe that predates host evidence, or one downgraded) changes
//!   nothing: it says nothing about the host, so it can neither extend nor close.
//!
//! `clock_skew` is the collector's own: a report whose probe sent its clock
//! ([`super::Arrival::clock_offset_ms`]) more than [`CLOCK_SKEW_MS`] away from the collector's
//! carries it among its host's conditions, grouped as the probe's are.
//!
//! Old reports (see [`super`]) add observations only, for the reason they leave incidents
//! alone: grouping them would close or split a condition at a time before its own events.

use std::borrow::Cow;

use causeway_schema::ReportId;
use causeway_schema::{Cause, HostCondition, HostEvidence, Report};

use super::IngestError;
use super::conditions::{self, ConditionTable, Observation};
use super::grouping::next_condition;
use super::server::{HostRow, ServerState};
use super::sql::{Conn, Value, values};
use super::values::{clamp_i64, hundredths};

/// A probe's clock this far from the collector's, either way, is the condition `clock_skew`.
/// Far above what a synchronized clock and a network's delay make (milliseconds), far below
/// what the collector refuses (`MAX_CLOCK_AHEAD_MS`, 5 minutes ahead).
pub(super) const CLOCK_SKEW_MS: i64 = 30_000;

/// How long one row of host readings covers before a new one starts.
const ROW_SPAN_MS: i64 = 60_000;

pub(super) const TABLE: ConditionTable = ConditionTable {
    evidence: "host condition",
    insert: "INSERT INTO host_conditions (server_id, cause, started_at_ms, last_seen_at_ms,
                                          observations, explanation, last_explanation, evidence,
                                          last_evidence)
             VALUES ($1, $2, $3, $3, 1, $4, $4, $5, $5) RETURNING id",
    extend: "UPDATE host_conditions SET observations = observations + 1,
                    last_seen_at_ms = greatest(last_seen_at_ms, $2), last_explanation = $3,
                    last_evidence = $4
             WHERE id = $1",
    extend_same: "UPDATE host_conditions SET observations = observations + 1,
                         last_seen_at_ms = greatest(last_seen_at_ms, $2), last_explanation = $3
                  WHERE id = $1",
    close: "UPDATE host_conditions SET ended_at_ms = greatest(started_at_ms, $2) WHERE id = $1",
};

/// The host conditions of a report that carries its host, each cause once; `None` for a
/// report without `host`, which [`update_conditions`] leaves alone.
pub(super) struct Observed<'a>(Option<Vec<Cow<'a, HostCondition>>>);

/// Keeps the readings of `report`'s host, when it has one (rules at the top); returns its
/// conditions for [`update_conditions`].
pub(super) fn observe<'a>(
    conn: &mut dyn Conn,
    state: &mut ServerState,
    server_id: i64,
    report: &'a Report,
    in_order: bool,
    clock_offset_ms: Option<i64>,
) -> Result<Observed<'a>, IngestError> {
    let Some(host) = &report.host else {
        return Ok(Observed(None));
    };
    let mut found = conditions_of(&report.report_id, host);
    found.extend(clock_offset_ms.and_then(clock_skew).map(Cow::Owned));
    if !in_order {
        return Ok(Observed(Some(found)));
    }
    let at_ms = report.started_at_ms;
    let causes = found
        .iter()
        .map(|c| c.cause.id())
        .collect::<Vec<_>>()
        .join(" ");
    let causes = (!causes.is_empty()).then_some(causes);
    let warnings = (!host.warnings.is_empty()).then(|| host.warnings.join("\n"));
    let same_row = state.host_row.as_ref().filter(|row| {
        at_ms.saturating_sub(row.first_at_ms) < ROW_SPAN_MS
            && row.boot_id == host.boot_id
            && row.causes == causes
            && row.warnings == warnings
    });
    // A report carries only the latest sample; should a probe send its series, the latest is
    // still what this cycle read.
    let memory = host.latest_memory();
    let pressure = host.pressure.as_ref();
    let mut readings: Vec<Value<'_>> = values![
        server_id,
        report.report_id.as_bytes().as_slice(),
        at_ms,
        &host.boot_id,
        clamp_i64(host.uptime_s),
        memory.map(|m| clamp_i64(m.total_kb)),
        memory.and_then(|m| m.available_kb).map(clamp_i64),
        memory.and_then(|m| m.slab_kb).map(clamp_i64),
        memory.and_then(|m| m.s_unreclaim_kb).map(clamp_i64),
        pressure.map(|p| p.cpus),
        pressure.and_then(|p| p.load1).map(hundredths),
        pressure.and_then(|p| p.load5).map(hundredths),
        pressure.and_then(|p| p.load15).map(hundredths),
        pressure.and_then(|p| p.runnable),
        pressure.and_then(|p| p.cpu_some).map(hundredths),
        pressure.and_then(|p| p.memory_some).map(hundredths),
        pressure.and_then(|p| p.memory_full).map(hundredths),
        pressure.and_then(|p| p.io_some).map(hundredths),
        pressure.and_then(|p| p.io_full).map(hundredths),
        &causes,
        &warnings,
    ]
    .to_vec();
    if let Some(row) = same_row {
        // $1 (the server) is the row's already; the statement leaves it.
        readings.push(Value::from(row.rowid));
        conn.execute(
            "UPDATE host_observations SET report_uuid = $2, last_at_ms = $3, boot_id = $4,
                    uptime_s = $5, mem_total_kb = $6, mem_available_kb = $7, slab_kb = $8,
                    s_unreclaim_kb = $9, cpus = $10, load1_c = $11, load5_c = $12,
                    load15_c = $13, runnable = $14, cpu_some_c = $15, memory_some_c = $16,
                    memory_full_c = $17, io_some_c = $18, io_full_c = $19, causes = $20,
                    warnings = $21
             WHERE rowid = $22 AND server_id = $1",
            &readings,
        )?;
    } else {
        let rowid = conn.returning(
            "INSERT INTO host_observations (server_id, report_uuid, started_at_ms, boot_id,
                                                uptime_s, mem_total_kb, mem_available_kb,
                                                slab_kb, s_unreclaim_kb, cpus, load1_c, load5_c,
                                                load15_c, runnable, cpu_some_c, memory_some_c,
                                                memory_full_c, io_some_c, io_full_c, causes,
                                                warnings, last_at_ms)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                         $17, $18, $19, $20, $21, $3)
                 RETURNING rowid",
            &readings,
            |r| r.i64(0),
        )?;
        state.host_row = Some(HostRow {
            rowid,
            first_at_ms: at_ms,
            boot_id: host.boot_id.clone(),
            causes,
            warnings,
        });
    }
    Ok(Observed(Some(found)))
}

/// The host's conditions, each cause once. A probe judges each cause once per cycle; should one
/// repeat, a second would count the cycle twice, and [`update_conditions`] relies on one open
/// condition per cause.
fn conditions_of<'a>(report_id: &ReportId, host: &'a HostEvidence) -> Vec<Cow<'a, HostCondition>> {
    let mut out: Vec<Cow<'a, HostCondition>> = Vec::new();
    // The collector's own: a probe that names it is not believed.
    for c in host
        .conditions
        .iter()
        .filter(|c| c.cause != Cause::ClockSkew)
    {
        if out.iter().any(|kept| kept.cause == c.cause) {
            tracing::warn!(
                %report_id,
                cause = c.cause.id(),
                "a host condition is listed twice in one report: the first is kept"
            );
            continue;
        }
        out.push(Cow::Borrowed(c));
    }
    out
}

/// The condition `clock_skew` for a probe whose clock is `offset_ms` ahead of the
/// collector's (behind when negative), when that is at least [`CLOCK_SKEW_MS`] either way.
pub(super) fn clock_skew(offset_ms: i64) -> Option<HostCondition> {
    if offset_ms.unsigned_abs() < CLOCK_SKEW_MS.unsigned_abs() {
        return None;
    }
    // Whole seconds: the evidence is rewritten only when it changes, not with every
    // millisecond of network delay.
    let seconds = offset_ms / 1000;
    let way = if offset_ms > 0 { "ahead of" } else { "behind" };
    Some(HostCondition {
        cause: Cause::ClockSkew,
        explanation: format!(
            "the probe host's clock is {} s {way} the collector's: its reports' times are off \
             by as much (is its clock synchronized? see `timedatectl`)",
            seconds.unsigned_abs()
        ),
        evidence: vec![format!(
            "offset {seconds:+} s: the probe's clock when it sent the report less the \
             collector's when it arrived"
        )],
    })
}

/// Groups the host conditions of an in-order report (rules at the top).
pub(super) fn update_conditions(
    conn: &mut dyn Conn,
    state: &mut ServerState,
    server_id: i64,
    at_ms: i64,
    observed: &Observed<'_>,
) -> Result<(), IngestError> {
    let Observed(Some(found)) = observed else {
        return Ok(());
    };
    for c in found {
        let cause = c.cause.id();
        let open = state.host_conditions.remove(cause);
        let step = next_condition(open.as_ref().map(|o| &o.open), Some(cause));
        let seen = Observation {
            cause,
            explanation: &c.explanation,
            evidence: c.as_ref(),
        };
        let after = conditions::apply(conn, &TABLE, server_id, at_ms, step, open, Some(&seen))?;
        if let Some(after) = after {
            state.host_conditions.insert(cause.to_owned(), after);
        }
    }
    // The probe looked and no longer found these.
    let gone: Vec<String> = state
        .host_conditions
        .keys()
        .filter(|cause| !found.iter().any(|c| c.cause.id() == cause.as_str()))
        .cloned()
        .collect();
    for cause in gone {
        if let Some(c) = state.host_conditions.remove(&cause) {
            conditions::close(conn, TABLE.close, c.open.id, at_ms)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use causeway_schema::Cause;

    use super::clock_skew;

    #[test]
    fn clock_skew_from_30_s_either_way_in_whole_seconds() {
        assert_eq!(clock_skew(29_999), None);
        assert_eq!(clock_skew(-29_999), None);
        let ahead = clock_skew(240_400).expect("4 minutes ahead");
        assert_eq!(ahead.cause, Cause::ClockSkew);
        assert!(
            ahead.explanation.contains("240 s ahead of"),
            "{}",
            ahead.explanation
        );
        assert!(
            ahead.evidence[0].starts_with("offset +240 s"),
            "{:?}",
            ahead.evidence
        );
        let behind = clock_skew(-3_600_000).expect("an hour behind");
        assert!(
            behind.explanation.contains("3600 s behind"),
            "{}",
            behind.explanation
        );
        // The evidence moves only with whole seconds: not rewritten for a network's jitter.
        assert_eq!(clock_skew(240_100), clock_skew(240_900));
    }
}
