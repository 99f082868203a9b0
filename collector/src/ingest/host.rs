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
use sqlx::{Sqlite, Transaction};

use super::conditions::{ConditionTable, Observation, extend, start};
use super::{IngestError, clamp_i64, close};

const TABLE: ConditionTable = ConditionTable {
    name: "host_conditions",
    owner: "server_id",
    evidence: "host condition",
};

/// The host conditions of a report that carries its host, each cause once; `None` for a
/// report without `host`, which [`update_conditions`] leaves alone.
pub(super) struct Observed<'a>(Option<Vec<&'a HostCondition>>);

/// Stores the observation of `report`'s host, when it has one; returns its conditions for
/// [`update_conditions`].
pub(super) async fn observe<'a>(
    tx: &mut Transaction<'static, Sqlite>,
    server_id: i64,
    report_id: &str,
    report: &'a Report,
) -> Result<Observed<'a>, IngestError> {
    let Some(host) = &report.host else {
        return Ok(Observed(None));
    };
    let found = conditions(report_id, host);
    // A report carries only the latest sample; should a probe send its series, the latest is
    // still what this cycle read.
    let memory = host.latest_memory();
    let pressure = host.pressure.as_ref();
    let causes = found
        .iter()
        .map(|c| c.cause.id())
        .collect::<Vec<_>>()
        .join(" ");
    sqlx::query(
        "INSERT INTO host_observations (server_id, report_id, started_at_ms, boot_id, uptime_s,
                                        mem_total_kb, mem_available_kb, slab_kb,
                                        s_unreclaim_kb, cpus, load1, load5, load15, runnable,
                                        cpu_some, memory_some, memory_full, io_some, io_full,
                                        causes, warnings)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21)",
    )
    .bind(server_id)
    .bind(report_id)
    .bind(report.started_at_ms)
    .bind(&host.boot_id)
    .bind(clamp_i64(host.uptime_s))
    .bind(memory.map(|m| clamp_i64(m.total_kb)))
    .bind(memory.and_then(|m| m.available_kb).map(clamp_i64))
    .bind(memory.and_then(|m| m.slab_kb).map(clamp_i64))
    .bind(memory.and_then(|m| m.s_unreclaim_kb).map(clamp_i64))
    .bind(pressure.map(|p| p.cpus))
    .bind(pressure.and_then(|p| p.load1))
    .bind(pressure.and_then(|p| p.load5))
    .bind(pressure.and_then(|p| p.load15))
    .bind(pressure.and_then(|p| p.runnable))
    .bind(pressure.and_then(|p| p.cpu_some))
    .bind(pressure.and_then(|p| p.memory_some))
    .bind(pressure.and_then(|p| p.memory_full))
    .bind(pressure.and_then(|p| p.io_some))
    .bind(pressure.and_then(|p| p.io_full))
    .bind((!causes.is_empty()).then_some(causes))
    .bind((!host.warnings.is_empty()).then(|| host.warnings.join("\n")))
    .execute(&mut **tx)
    .await?;
    Ok(Observed(Some(found)))
}

/// The host's conditions, each cause once. A probe judges each cause once per cycle; should one
/// repeat, a second would count the cycle twice, and [`update_conditions`] relies on one open
/// condition per cause.
fn conditions<'a>(report_id: &str, host: &'a HostEvidence) -> Vec<&'a HostCondition> {
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

#[derive(sqlx::FromRow)]
struct OpenCondition {
    id: i64,
    cause: String,
}

/// Groups the host conditions of an in-order report (rules at the top).
pub(super) async fn update_conditions(
    tx: &mut Transaction<'static, Sqlite>,
    server_id: i64,
    at_ms: i64,
    observed: &Observed<'_>,
) -> Result<(), IngestError> {
    let Observed(Some(found)) = observed else {
        return Ok(());
    };
    let open: Vec<OpenCondition> = sqlx::query_as(
        "SELECT id, cause FROM host_conditions WHERE server_id = ?1 AND ended_at_ms IS NULL",
    )
    .bind(server_id)
    .fetch_all(&mut **tx)
    .await?;
    for c in found {
        match open.iter().find(|o| o.cause == c.cause.id()) {
            Some(o) => extend(tx, &TABLE, o.id, at_ms, &seen(c)).await?,
            None => start(tx, &TABLE, server_id, at_ms, &seen(c)).await?,
        }
    }
    for o in &open {
        if !found.iter().any(|c| c.cause.id() == o.cause) {
            close(tx, TABLE.name, o.id, at_ms).await?;
        }
    }
    Ok(())
}

fn seen(c: &HostCondition) -> Observation<'_, HostCondition> {
    Observation {
        cause: c.cause.id(),
        explanation: &c.explanation,
        evidence: c,
    }
}
