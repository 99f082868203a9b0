//! A report's host: one observation per stored report that carries `host`, and the host
//! conditions grouped from the reports that arrive in order.
//!
//! Grouping, per server and cause:
//! - a condition in a report extends the open condition of its cause, or opens one at the
//!   report's start;
//! - an open condition whose cause is absent from a report that carries `host` is closed at that
//!   report's start: the probe looked and no longer found it;
//! - a report without `host` (a probe that predates host evidence, or one downgraded) changes
//!   nothing: it says nothing about the host, so it can neither extend nor close.
//!
//! Old reports (see [`super`]) add observations only, for the reason they leave incidents
//! alone: grouping them would close or split a condition at a time before its own events.

use causeway_schema::{HostCondition, HostEvidence, Report};
use rusqlite::{Connection, params};

use super::conditions::{self, ConditionTable, Observation};
use super::grouping::next_condition;
use super::server::ServerState;
use super::{IngestError, clamp_i64};

pub(super) const TABLE: ConditionTable = ConditionTable {
    evidence: "host condition",
    insert: "INSERT INTO host_conditions (server_id, cause, started_at_ms, last_seen_at_ms,
                                          observations, explanation, last_explanation, evidence,
                                          last_evidence)
             VALUES (?1, ?2, ?3, ?3, 1, ?4, ?4, ?5, ?5) RETURNING id",
    extend: "UPDATE host_conditions SET observations = observations + 1,
                    last_seen_at_ms = max(last_seen_at_ms, ?2), last_explanation = ?3,
                    last_evidence = ?4
             WHERE id = ?1",
    extend_same: "UPDATE host_conditions SET observations = observations + 1,
                         last_seen_at_ms = max(last_seen_at_ms, ?2), last_explanation = ?3
                  WHERE id = ?1",
    close: "UPDATE host_conditions SET ended_at_ms = ?2 WHERE id = ?1",
};

/// The host conditions of a report that carries its host, each cause once; `None` for a
/// report without `host`, which [`update_conditions`] leaves alone.
pub(super) struct Observed<'a>(Option<Vec<&'a HostCondition>>);

/// Stores the observation of `report`'s host, when it has one; returns its conditions for
/// [`update_conditions`].
pub(super) fn observe<'a>(
    conn: &Connection,
    server_id: i64,
    report_id: &str,
    report: &'a Report,
) -> Result<Observed<'a>, IngestError> {
    let Some(host) = &report.host else {
        return Ok(Observed(None));
    };
    let found = conditions_of(report_id, host);
    // A report carries only the latest sample; should a probe send its series, the latest is
    // still what this cycle read.
    let memory = host.latest_memory();
    let pressure = host.pressure.as_ref();
    let causes = found
        .iter()
        .map(|c| c.cause.id())
        .collect::<Vec<_>>()
        .join(" ");
    conn.prepare_cached(
        "INSERT INTO host_observations (server_id, report_id, started_at_ms, boot_id, uptime_s,
                                        mem_total_kb, mem_available_kb, slab_kb,
                                        s_unreclaim_kb, cpus, load1, load5, load15, runnable,
                                        cpu_some, memory_some, memory_full, io_some, io_full,
                                        causes, warnings)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21)",
    )?
    .execute(params![
        server_id,
        report_id,
        report.started_at_ms,
        &host.boot_id,
        clamp_i64(host.uptime_s),
        memory.map(|m| clamp_i64(m.total_kb)),
        memory.and_then(|m| m.available_kb).map(clamp_i64),
        memory.and_then(|m| m.slab_kb).map(clamp_i64),
        memory.and_then(|m| m.s_unreclaim_kb).map(clamp_i64),
        pressure.map(|p| p.cpus),
        pressure.and_then(|p| p.load1),
        pressure.and_then(|p| p.load5),
        pressure.and_then(|p| p.load15),
        pressure.and_then(|p| p.runnable),
        pressure.and_then(|p| p.cpu_some),
        pressure.and_then(|p| p.memory_some),
        pressure.and_then(|p| p.memory_full),
        pressure.and_then(|p| p.io_some),
        pressure.and_then(|p| p.io_full),
        (!causes.is_empty()).then_some(causes),
        (!host.warnings.is_empty()).then(|| host.warnings.join("\n")),
    ])?;
    Ok(Observed(Some(found)))
}

/// The host's conditions, each cause once. A probe judges each cause once per cycle; should one
/// repeat, a second would count the cycle twice, and [`update_conditions`] relies on one open
/// condition per cause.
fn conditions_of<'a>(report_id: &str, host: &'a HostEvidence) -> Vec<&'a HostCondition> {
    let mut out: Vec<&HostCondition> = Vec::new();
    for c in &host.conditions {
        if out.iter().any(|kept| kept.cause == c.cause) {
            tracing::warn!(
                report_id,
                cause = c.cause.id(),
                "a host condition is listed twice in one report: the first is kept"
            );
            continue;
        }
        out.push(c);
    }
    out
}

/// Groups the host conditions of an in-order report (rules at the top).
pub(super) fn update_conditions(
    conn: &Connection,
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
            evidence: *c,
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
