//! What the writer keeps in memory of each server between reports: the newest report's start,
//! the open incident and conditions, the resolvers' ids and the recent checks. Reading them
//! again for every report cost more statements than storing the report; the writer is the
//! only process that changes them (the `token` and `share` commands touch other rows), so the
//! copy stays true as long as every change goes through it. A report whose storing fails
//! drops its server's copy, and a batch that does not commit drops them all: the next report
//! reads the database again.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use rusqlite::{Connection, OptionalExtension, params};

use super::IngestError;
use super::grouping::Open;
use super::rollups::{RecentCheck, parse_recent};

/// A resolver of a server: canary, label and name server address (migration 0002).
pub(super) type ResolverKey = (String, String, String);

/// A resolver as the writer knows it.
#[derive(Debug, Clone)]
pub(super) struct KnownResolver {
    pub id: i64,
    /// The newest start its row records.
    pub last_seen_at_ms: i64,
    /// The name its row records.
    pub name: String,
    /// Its newest change: cause id and outcome; `None` before the first.
    pub last_change: Option<(Option<String>, String)>,
}

/// The newest row of a server's host observations, which later readings update in place
/// until something changes or a minute has passed (see [`super::host`]).
#[derive(Debug, Clone)]
pub(super) struct HostRow {
    pub rowid: i64,
    /// When the row was started: the first reading it took.
    pub first_at_ms: i64,
    /// What starts a new row when it changes: boot id, causes, warnings.
    pub boot_id: String,
    pub causes: Option<String>,
    pub warnings: Option<String>,
}

/// An open condition with the latest evidence written, so an unchanged one is not written again.
#[derive(Debug, Clone)]
pub(super) struct OpenCondition {
    pub open: Open,
    pub last_evidence: String,
}

#[derive(Debug, Default)]
pub(super) struct ServerState {
    /// The newest report's start; `None` before the first report.
    pub last_started_at_ms: Option<i64>,
    pub incident: Option<Open>,
    pub recent: Vec<RecentCheck>,
    pub resolvers: HashMap<ResolverKey, KnownResolver>,
    /// The canaries seen: name, URL and id (a server has a few).
    pub canaries: Vec<(String, String, i64)>,
    pub host_row: Option<HostRow>,
    /// Open resolver conditions by resolver id.
    pub resolver_conditions: HashMap<i64, OpenCondition>,
    /// Open host conditions by cause id.
    pub host_conditions: HashMap<String, OpenCondition>,
}

/// The servers' states, loaded on first use.
#[derive(Debug, Default)]
pub(super) struct Servers(HashMap<i64, ServerState>);

impl Servers {
    pub fn get(
        &mut self,
        conn: &Connection,
        server_id: i64,
    ) -> Result<&mut ServerState, IngestError> {
        match self.0.entry(server_id) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => Ok(e.insert(load(conn, server_id)?)),
        }
    }

    pub fn forget(&mut self, server_id: i64) {
        self.0.remove(&server_id);
    }

    pub fn forget_all(&mut self) {
        self.0.clear();
    }
}

fn load(conn: &Connection, server_id: i64) -> Result<ServerState, IngestError> {
    let (last_started_at_ms, recent): (Option<i64>, Option<String>) = conn
        .prepare_cached("SELECT last_started_at_ms, recent_checks FROM servers WHERE id = ?1")?
        .query_row([server_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let incident = conn
        .prepare_cached(
            "SELECT id, cause FROM incidents WHERE server_id = ?1 AND ended_at_ms IS NULL",
        )?
        .query_row([server_id], |r| {
            Ok(Open {
                id: r.get(0)?,
                cause: r.get(1)?,
            })
        })
        .optional()?;
    let mut resolvers = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT r.id, r.canary, r.resolver, r.address, r.last_seen_at_ms,
                c.cause, c.outcome, r.name
         FROM resolvers r LEFT JOIN resolver_changes c ON c.rowid = (
             SELECT rowid FROM resolver_changes WHERE resolver_id = r.id
             ORDER BY started_at_ms DESC, rowid DESC LIMIT 1)
         WHERE r.server_id = ?1",
    )?;
    let rows = stmt.query_map([server_id], |r| {
        let outcome: Option<String> = r.get(6)?;
        let known = KnownResolver {
            id: r.get(0)?,
            last_seen_at_ms: r.get(4)?,
            name: r.get(7)?,
            last_change: match outcome {
                Some(outcome) => Some((r.get(5)?, outcome)),
                None => None,
            },
        };
        Ok(((r.get(1)?, r.get(2)?, r.get(3)?), known))
    })?;
    for row in rows {
        let (key, value) = row?;
        resolvers.insert(key, value);
    }
    let mut canaries = Vec::new();
    let mut stmt =
        conn.prepare_cached("SELECT id, name, url FROM canaries WHERE server_id = ?1")?;
    for row in stmt.query_map([server_id], |r| Ok((r.get(1)?, r.get(2)?, r.get(0)?)))? {
        canaries.push(row?);
    }
    let host_row = conn
        .prepare_cached(
            "SELECT rowid, started_at_ms, boot_id, causes, warnings FROM host_observations
             WHERE server_id = ?1 ORDER BY started_at_ms DESC, rowid DESC LIMIT 1",
        )?
        .query_row([server_id], |r| {
            Ok(HostRow {
                rowid: r.get(0)?,
                first_at_ms: r.get(1)?,
                boot_id: r.get(2)?,
                causes: r.get(3)?,
                warnings: r.get(4)?,
            })
        })
        .optional()?;
    let mut resolver_conditions = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT c.id, c.cause, c.last_evidence, c.resolver_id
         FROM resolver_conditions c JOIN resolvers r ON r.id = c.resolver_id
         WHERE r.server_id = ?1 AND c.ended_at_ms IS NULL",
    )?;
    let rows = stmt.query_map(params![server_id], |r| {
        Ok((r.get::<_, i64>(3)?, open_condition(r)?))
    })?;
    for row in rows {
        let (resolver_id, open) = row?;
        resolver_conditions.insert(resolver_id, open);
    }
    let mut host_conditions = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "SELECT id, cause, last_evidence FROM host_conditions
         WHERE server_id = ?1 AND ended_at_ms IS NULL",
    )?;
    for row in stmt.query_map([server_id], open_condition)? {
        let open = row?;
        host_conditions.insert(open.open.cause.clone(), open);
    }
    Ok(ServerState {
        last_started_at_ms,
        incident,
        recent: parse_recent(recent.as_deref()),
        resolvers,
        canaries,
        host_row,
        resolver_conditions,
        host_conditions,
    })
}

/// `id, cause, last_evidence` of a condition row.
fn open_condition(r: &rusqlite::Row<'_>) -> rusqlite::Result<OpenCondition> {
    Ok(OpenCondition {
        open: Open {
            id: r.get(0)?,
            cause: r.get(1)?,
        },
        last_evidence: r.get(2)?,
    })
}
