//! A report's resolutions: one observation per resolver in every stored report, and the
//! resolver conditions grouped from the reports that arrive in order.
//!
//! A resolver here is one name server asked for one canary's name (see migration 0002).
//! Grouping, per resolver:
//! - a healthy observation closes the open condition (ended at the report's start);
//! - a verdict with the open condition's cause extends it; another cause closes it at the
//!   report's start and opens a new one;
//! - a resolver missing from a report of its server (taken out of the probe's config, or its
//!   canary removed) has its open condition closed at that report's start: no later
//!   observation would ever close it.
//!
//! Old reports (see [`super`]) add observations only, for the reason they leave incidents
//! alone: grouping them would close or split a condition at a time before its own events.

use std::collections::HashSet;
use std::net::SocketAddr;

use causeway_schema::{Diagnosis, Report, ResolverOutcome};
use sqlx::{Sqlite, Transaction};

use super::conditions::{ConditionTable, Observation, extend, start};
use super::{IngestError, close};

/// Longest outcome text kept per observation, in characters. The brief of two queries is far
/// shorter; a long answer list is cut rather than stored again every cycle.
const OUTCOME_MAX: usize = 200;

const TABLE: ConditionTable = ConditionTable {
    name: "resolver_conditions",
    owner: "resolver_id",
    evidence: "resolver evidence",
};

/// One resolver seen in a report, with its stored id.
pub(super) struct Observed<'a> {
    resolver_id: i64,
    outcome: &'a ResolverOutcome,
}

/// Stores one observation per resolver of `report`; returns them for [`update_conditions`].
pub(super) async fn observe<'a>(
    tx: &mut Transaction<'static, Sqlite>,
    server_id: i64,
    report_id: &str,
    report: &'a Report,
) -> Result<Vec<Observed<'a>>, IngestError> {
    let mut seen: HashSet<(&str, &str, SocketAddr)> = HashSet::new();
    let mut observed = Vec::new();
    for resolution in &report.resolutions {
        for outcome in &resolution.resolvers {
            let key = (
                resolution.canary.as_str(),
                outcome.resolver.as_str(),
                outcome.server,
            );
            // A probe lists each name server once per canary; should one repeat, a second
            // observation in the same cycle would count the cycle twice.
            if !seen.insert(key) {
                tracing::warn!(
                    report_id,
                    canary = %resolution.canary,
                    resolver = %outcome.resolver,
                    address = %outcome.server,
                    "a resolver is listed twice for one canary in one report: the first is kept"
                );
                continue;
            }
            let resolver_id = upsert_resolver(
                tx,
                server_id,
                (&resolution.canary, &resolution.name),
                outcome,
                report.started_at_ms,
            )
            .await?;
            insert_observation(tx, resolver_id, report_id, report.started_at_ms, outcome).await?;
            observed.push(Observed {
                resolver_id,
                outcome,
            });
        }
    }
    Ok(observed)
}

/// The resolver's id, its row created on first sight. The name and the first and last
/// sightings follow the report's start, so an old report does not undo a newer one's name.
async fn upsert_resolver(
    tx: &mut Transaction<'static, Sqlite>,
    server_id: i64,
    (canary, name): (&str, &str),
    outcome: &ResolverOutcome,
    at_ms: i64,
) -> Result<i64, IngestError> {
    let id = sqlx::query_scalar(
        "INSERT INTO resolvers (server_id, canary, resolver, address, name, first_seen_at_ms,
                                last_seen_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
         ON CONFLICT (server_id, canary, resolver, address) DO UPDATE SET
             name = CASE WHEN excluded.last_seen_at_ms >= last_seen_at_ms
                         THEN excluded.name ELSE name END,
             first_seen_at_ms = min(first_seen_at_ms, excluded.first_seen_at_ms),
             last_seen_at_ms = max(last_seen_at_ms, excluded.last_seen_at_ms)
         RETURNING id",
    )
    .bind(server_id)
    .bind(canary)
    .bind(&outcome.resolver)
    .bind(outcome.server.to_string())
    .bind(name)
    .bind(at_ms)
    .fetch_one(&mut **tx)
    .await?;
    Ok(id)
}

async fn insert_observation(
    tx: &mut Transaction<'static, Sqlite>,
    resolver_id: i64,
    report_id: &str,
    at_ms: i64,
    outcome: &ResolverOutcome,
) -> Result<(), IngestError> {
    let slowest = outcome
        .queries
        .iter()
        .map(|q| q.elapsed_ms)
        .reduce(f64::max);
    sqlx::query(
        "INSERT INTO resolver_observations (resolver_id, report_id, started_at_ms, cause,
                                            outcome, elapsed_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .bind(resolver_id)
    .bind(report_id)
    .bind(at_ms)
    .bind(outcome.condition.as_ref().map(|d| d.cause.id()))
    .bind(cut(outcome.brief(), OUTCOME_MAX))
    .bind(slowest)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// `text`, cut at `max` characters (`...` marks the cut).
fn cut(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max) {
        text.truncate(at);
        text.push_str("...");
    }
    text
}

#[derive(sqlx::FromRow)]
struct OpenCondition {
    id: i64,
    resolver_id: i64,
    cause: String,
}

/// Groups the observations of an in-order report into conditions (rules at the top).
pub(super) async fn update_conditions(
    tx: &mut Transaction<'static, Sqlite>,
    server_id: i64,
    at_ms: i64,
    observed: &[Observed<'_>],
) -> Result<(), IngestError> {
    let open: Vec<OpenCondition> = sqlx::query_as(
        "SELECT c.id, c.resolver_id, c.cause
         FROM resolver_conditions c JOIN resolvers r ON r.id = c.resolver_id
         WHERE r.server_id = ?1 AND c.ended_at_ms IS NULL",
    )
    .bind(server_id)
    .fetch_all(&mut **tx)
    .await?;
    for o in observed {
        let current = open.iter().find(|c| c.resolver_id == o.resolver_id);
        match (&o.outcome.condition, current) {
            (None, None) => {}
            (None, Some(c)) => close(tx, TABLE.name, c.id, at_ms).await?,
            (Some(d), Some(c)) if c.cause == d.cause.id() => {
                extend(tx, &TABLE, c.id, at_ms, &seen(d, o.outcome)).await?;
            }
            (Some(d), current) => {
                if let Some(c) = current {
                    close(tx, TABLE.name, c.id, at_ms).await?;
                }
                start(tx, &TABLE, o.resolver_id, at_ms, &seen(d, o.outcome)).await?;
            }
        }
    }
    for c in &open {
        if !observed.iter().any(|o| o.resolver_id == c.resolver_id) {
            close(tx, TABLE.name, c.id, at_ms).await?;
        }
    }
    Ok(())
}

/// What a resolver's verdict `diagnosis` says, with its answers as evidence.
fn seen<'a>(
    diagnosis: &'a Diagnosis,
    outcome: &'a ResolverOutcome,
) -> Observation<'a, ResolverOutcome> {
    Observation {
        cause: diagnosis.cause.id(),
        explanation: &diagnosis.explanation,
        evidence: outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_outcomes_are_cut() {
        assert_eq!(cut("A refused".into(), 200), "A refused");
        assert_eq!(cut("é".repeat(5), 3), "ééé...");
        assert_eq!(cut("abc".into(), 3), "abc");
    }
}
