//! Starting and extending a condition: the same for resolver conditions (one per resolver)
//! and host conditions (one per server and cause). Closing is [`super::close`], shared with
//! incidents. Which condition a report extends is each kind's own rule.

use serde::Serialize;
use sqlx::{Sqlite, Transaction};

use super::{IngestError, encode};

/// A condition table: its name and the column of what its conditions belong to.
pub(super) struct ConditionTable {
    pub name: &'static str,
    /// `resolver_id` or `server_id`.
    pub owner: &'static str,
    /// What its evidence is, for an encoding error.
    pub evidence: &'static str,
}

/// What one report observed of a condition.
pub(super) struct Observation<'a, E> {
    pub cause: &'a str,
    pub explanation: &'a str,
    pub evidence: &'a E,
}

/// Opens a condition of `owner_id` at `at_ms` with this first observation.
pub(super) async fn start<E: Serialize>(
    tx: &mut Transaction<'static, Sqlite>,
    table: &ConditionTable,
    owner_id: i64,
    at_ms: i64,
    seen: &Observation<'_, E>,
) -> Result<(), IngestError> {
    let evidence = encode(table.evidence, seen.evidence)?;
    sqlx::query(&format!(
        "INSERT INTO {} ({}, cause, started_at_ms, last_seen_at_ms, observations, explanation,
                         last_explanation, evidence, last_evidence)
         VALUES (?1, ?2, ?3, ?3, 1, ?4, ?4, ?5, ?5)",
        table.name, table.owner
    ))
    .bind(owner_id)
    .bind(seen.cause)
    .bind(at_ms)
    .bind(seen.explanation)
    .bind(evidence)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Counts one more observation of the open condition `id`, seen at `at_ms`: the latest
/// explanation and evidence replace the previous latest, the first stay.
pub(super) async fn extend<E: Serialize>(
    tx: &mut Transaction<'static, Sqlite>,
    table: &ConditionTable,
    id: i64,
    at_ms: i64,
    seen: &Observation<'_, E>,
) -> Result<(), IngestError> {
    sqlx::query(&format!(
        "UPDATE {} SET observations = observations + 1,
                last_seen_at_ms = max(last_seen_at_ms, ?2), last_explanation = ?3,
                last_evidence = ?4
         WHERE id = ?1",
        table.name
    ))
    .bind(id)
    .bind(at_ms)
    .bind(seen.explanation)
    .bind(encode(table.evidence, seen.evidence)?)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
