//! Carrying out a [`ConditionStep`] on a condition table: the same for resolver conditions
//! (one per resolver) and host conditions (one per server and cause). Which condition a report
//! touches is each kind's own rule ([`super::resolvers`], [`super::host`]).

use serde::Serialize;

use super::IngestError;
use super::grouping::{ConditionStep, Open};
use super::server::OpenCondition;
use super::sql::{Conn, values};
use super::values::encode;

/// A condition table's statements. Written out per table rather than spliced together, so
/// each is a plain string the reader can search for.
pub(super) struct ConditionTable {
    /// What its evidence is, for an encoding error.
    pub evidence: &'static str,
    /// `(owner id, cause, at, explanation, evidence)`, returning the new id.
    pub insert: &'static str,
    /// `(id, at, last explanation, last evidence)`.
    pub extend: &'static str,
    /// `(id, at, last explanation)`: the latest evidence is the one already stored.
    pub extend_same: &'static str,
    /// `(id, ended at)`.
    pub close: &'static str,
}

/// What one report observed of a condition.
pub(super) struct Observation<'a, E> {
    pub cause: &'a str,
    pub explanation: &'a str,
    pub evidence: &'a E,
}

/// Carries out `step` for the condition of `owner_id` and returns what is open afterwards
/// (the caller keeps it in the server's state).
pub(super) fn apply<E: Serialize>(
    conn: &mut dyn Conn,
    table: &ConditionTable,
    owner_id: i64,
    at_ms: i64,
    step: ConditionStep,
    open: Option<OpenCondition>,
    seen: Option<&Observation<'_, E>>,
) -> Result<Option<OpenCondition>, IngestError> {
    match (step, seen) {
        (ConditionStep::Nothing, _) => Ok(open),
        (ConditionStep::Close { id }, _) => {
            close(conn, table.close, id, at_ms)?;
            Ok(None)
        }
        (ConditionStep::Extend { id }, Some(seen)) => {
            let evidence = encode(table.evidence, seen.evidence)?;
            let unchanged = open.as_ref().is_some_and(|o| o.last_evidence == evidence);
            if unchanged {
                conn.execute(table.extend_same, values![id, at_ms, seen.explanation])?;
            } else {
                conn.execute(
                    table.extend,
                    values![id, at_ms, seen.explanation, &evidence],
                )?;
            }
            Ok(Some(OpenCondition {
                open: Open {
                    id,
                    cause: seen.cause.to_owned(),
                },
                last_evidence: evidence,
            }))
        }
        (ConditionStep::Open { close: previous }, Some(seen)) => {
            if let Some(id) = previous {
                close(conn, table.close, id, at_ms)?;
            }
            let evidence = encode(table.evidence, seen.evidence)?;
            let id = conn.returning(
                table.insert,
                values![owner_id, seen.cause, at_ms, seen.explanation, &evidence],
                |r| r.i64(0),
            )?;
            Ok(Some(OpenCondition {
                open: Open {
                    id,
                    cause: seen.cause.to_owned(),
                },
                last_evidence: evidence,
            }))
        }
        // Extending or opening needs what was seen; the rules never ask for it without.
        (ConditionStep::Extend { .. } | ConditionStep::Open { .. }, None) => Ok(open),
    }
}

/// Ends an incident or condition with one of the tables' `close` statements.
pub(super) fn close(
    conn: &mut dyn Conn,
    sql: &'static str,
    id: i64,
    ended_at_ms: i64,
) -> Result<(), IngestError> {
    conn.execute(sql, values![id, ended_at_ms])?;
    Ok(())
}
