//! A report's resolutions: every resolver's observation counted per hour and cause
//! (`resolver_hours`), its answer kept when it changed (`resolver_changes`), and the resolver
//! conditions grouped from the reports that arrive in order.
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

use causeway_schema::{Report, ResolverOutcome};

use super::IngestError;
use super::conditions::{self, ConditionTable, Observation};
use super::grouping::next_condition;
use super::rollups::HOUR_MS;
use super::server::{KnownResolver, ServerState};
use super::sql::{Conn, values};

/// How far a resolver's row lags its newest sighting at most.
const SIGHTING_STEP_MS: i64 = 60_000;

/// Longest outcome text kept per observation, in characters. The brief of two queries is far
/// shorter; a long answer list is cut rather than stored again every cycle.
const OUTCOME_MAX: usize = 200;

pub(super) const TABLE: ConditionTable = ConditionTable {
    evidence: "resolver evidence",
    insert: "INSERT INTO resolver_conditions (resolver_id, cause, started_at_ms, last_seen_at_ms,
                                              observations, explanation, last_explanation,
                                              evidence, last_evidence)
             VALUES ($1, $2, $3, $3, 1, $4, $4, $5, $5) RETURNING id",
    extend: "UPDATE resolver_conditions SET observations = observations + 1,
                    last_seen_at_ms = greatest(last_seen_at_ms, $2), last_explanation = $3,
                    last_evidence = $4
             WHERE id = $1",
    extend_same: "UPDATE resolver_conditions SET observations = observations + 1,
                         last_seen_at_ms = greatest(last_seen_at_ms, $2), last_explanation = $3
                  WHERE id = $1",
    close: "UPDATE resolver_conditions SET ended_at_ms = greatest(started_at_ms, $2)
            WHERE id = $1",
};

/// One resolver seen in a report, with its stored id.
pub(super) struct Observed<'a> {
    resolver_id: i64,
    outcome: &'a ResolverOutcome,
}

/// Counts one observation per resolver of `report`, and keeps the answers that changed (of an
/// `in_order` report: an old one's answer is not the resolver's newest); returns them for
/// [`update_conditions`].
pub(super) fn observe<'a>(
    conn: &mut dyn Conn,
    state: &mut ServerState,
    server_id: i64,
    report: &'a Report,
    in_order: bool,
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
                    report_id = %report.report_id,
                    canary = %resolution.canary,
                    resolver = %outcome.resolver,
                    address = %outcome.server,
                    "a resolver is listed twice for one canary in one report: the first is kept"
                );
                continue;
            }
            let known = upsert_resolver(
                conn,
                state,
                server_id,
                (&resolution.canary, &resolution.name),
                outcome,
                report.started_at_ms,
            )?;
            observe_one(conn, known, report.started_at_ms, outcome, in_order)?;
            let resolver_id = known.id;
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
fn upsert_resolver<'s>(
    conn: &mut dyn Conn,
    state: &'s mut ServerState,
    server_id: i64,
    (canary, name): (&str, &str),
    outcome: &ResolverOutcome,
    at_ms: i64,
) -> Result<&'s mut KnownResolver, IngestError> {
    let address = outcome.server.to_string();
    let key = (canary.to_owned(), outcome.resolver.clone(), address);
    // The common case, a known resolver in a newer report: one plain update.
    let newer = state
        .resolvers
        .get(&key)
        .is_some_and(|k| at_ms >= k.last_seen_at_ms);
    if newer {
        let known = state.resolvers.get_mut(&key).expect("found above");
        // The row's sighting is kept to the minute (the exact one is in `resolver_hours`); a
        // row rewritten for every report was a page written per resolver per batch.
        if known.name != name || at_ms - known.last_seen_at_ms >= SIGHTING_STEP_MS {
            conn.execute(
                "UPDATE resolvers SET name = $2, last_seen_at_ms = $3 WHERE id = $1",
                values![known.id, name, at_ms],
            )?;
            known.last_seen_at_ms = at_ms;
            known.name = name.to_owned();
        }
        return Ok(known);
    }
    let (id, last_seen_at_ms, stored_name) = conn.returning(
        "INSERT INTO resolvers (server_id, canary, resolver, address, name,
                                first_seen_at_ms, last_seen_at_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $6)
         ON CONFLICT (server_id, canary, resolver, address) DO UPDATE SET
             name = CASE WHEN excluded.last_seen_at_ms >= resolvers.last_seen_at_ms
                         THEN excluded.name ELSE resolvers.name END,
             first_seen_at_ms = least(resolvers.first_seen_at_ms, excluded.first_seen_at_ms),
             last_seen_at_ms = greatest(resolvers.last_seen_at_ms, excluded.last_seen_at_ms)
         RETURNING id, last_seen_at_ms, name",
        values![server_id, canary, &outcome.resolver, &key.2, name, at_ms],
        |r| Ok((r.i64(0)?, r.i64(1)?, r.string(2)?)),
    )?;
    let last_change = state.resolvers.remove(&key).and_then(|k| k.last_change);
    Ok(state.resolvers.entry(key).or_insert(KnownResolver {
        id,
        last_seen_at_ms,
        name: stored_name,
        last_change,
    }))
}

/// Counts the observation in its hour and keeps it as a change when the resolver's cause or
/// answer differs from its newest change.
fn observe_one(
    conn: &mut dyn Conn,
    known: &mut KnownResolver,
    at_ms: i64,
    outcome: &ResolverOutcome,
    in_order: bool,
) -> Result<(), IngestError> {
    let cause = outcome.condition.as_ref().map(|d| d.cause.id());
    conn.execute(
        "INSERT INTO resolver_hours (resolver_id, hour_ms, cause, n, last_at_ms)
         VALUES ($1, $2, $3, 1, $4)
         ON CONFLICT (resolver_id, hour_ms, cause) DO UPDATE SET
             n = resolver_hours.n + 1,
             last_at_ms = greatest(resolver_hours.last_at_ms, excluded.last_at_ms)",
        values![
            known.id,
            at_ms - at_ms.rem_euclid(HOUR_MS),
            cause.unwrap_or(""),
            at_ms
        ],
    )?;
    if !in_order {
        return Ok(());
    }
    let brief = causeway_schema::cut(outcome.brief(), OUTCOME_MAX);
    let unchanged = known
        .last_change
        .as_ref()
        .is_some_and(|(c, o)| c.as_deref() == cause && *o == brief);
    if unchanged {
        return Ok(());
    }
    let slowest = outcome
        .queries
        .iter()
        .map(|q| q.elapsed_ms)
        .reduce(f64::max);
    conn.execute(
        "INSERT INTO resolver_changes (resolver_id, started_at_ms, cause, outcome, elapsed_ms)
         VALUES ($1, $2, $3, $4, $5)",
        values![known.id, at_ms, cause, &brief, slowest],
    )?;
    known.last_change = Some((cause.map(str::to_owned), brief));
    Ok(())
}

/// Groups the observations of an in-order report into conditions (rules at the top).
pub(super) fn update_conditions(
    conn: &mut dyn Conn,
    state: &mut ServerState,
    at_ms: i64,
    observed: &[Observed<'_>],
) -> Result<(), IngestError> {
    for o in observed {
        let open = state.resolver_conditions.remove(&o.resolver_id);
        let diagnosis = o.outcome.condition.as_ref();
        let step = next_condition(
            open.as_ref().map(|c| &c.open),
            diagnosis.map(|d| d.cause.id()),
        );
        let seen = diagnosis.map(|d| Observation {
            cause: d.cause.id(),
            explanation: &d.explanation,
            evidence: o.outcome,
        });
        let after = conditions::apply(
            conn,
            &TABLE,
            o.resolver_id,
            at_ms,
            step,
            open,
            seen.as_ref(),
        )?;
        if let Some(after) = after {
            state.resolver_conditions.insert(o.resolver_id, after);
        }
    }
    // A resolver missing from the report: no later observation would ever close its condition.
    let absent: Vec<i64> = state
        .resolver_conditions
        .keys()
        .filter(|id| !observed.iter().any(|o| o.resolver_id == **id))
        .copied()
        .collect();
    for resolver_id in absent {
        if let Some(c) = state.resolver_conditions.remove(&resolver_id) {
            conditions::close(conn, TABLE.close, c.open.id, at_ms)?;
        }
    }
    Ok(())
}
