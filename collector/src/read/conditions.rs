//! What every condition table (resolver and host conditions) stores alike, read into a
//! [`Condition`] with its evidence decoded.

use serde::de::DeserializeOwned;

use super::{cause_summary, decode};
use crate::views::Condition;

/// The shared columns, for a SELECT from a condition table with the alias `c`.
pub(super) const CONDITION_COLUMNS: &str = "c.id, c.cause, c.started_at_ms, c.last_seen_at_ms, \
     c.ended_at_ms, c.observations, c.explanation, c.last_explanation, c.evidence, \
     c.last_evidence";

#[derive(sqlx::FromRow)]
pub(super) struct ConditionRow {
    id: i64,
    cause: String,
    started_at_ms: i64,
    last_seen_at_ms: i64,
    ended_at_ms: Option<i64>,
    observations: i64,
    explanation: String,
    last_explanation: String,
    evidence: String,
    last_evidence: String,
}

impl ConditionRow {
    /// The view; evidence that no longer decodes is logged (naming `table`) and left out.
    pub(super) fn into_view<E: DeserializeOwned>(self, table: &str) -> Condition<E> {
        let evidence = |column, json: &str| decode::<E>(table, self.id, column, json);
        Condition {
            id: self.id,
            summary: cause_summary(&self.cause).to_owned(),
            evidence: evidence("evidence", &self.evidence),
            last_evidence: evidence("last_evidence", &self.last_evidence),
            cause: self.cause,
            started_at_ms: self.started_at_ms,
            last_seen_at_ms: self.last_seen_at_ms,
            ended_at_ms: self.ended_at_ms,
            open: self.ended_at_ms.is_none(),
            observations: u64::try_from(self.observations).unwrap_or(0),
            explanation: self.explanation,
            last_explanation: self.last_explanation,
        }
    }
}
