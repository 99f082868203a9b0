//! What the writer keeps in memory of each server between reports: the newest report's start,
//! the open incident and conditions, the resolvers' ids and the recent checks. Reading them
//! again for every report cost more statements than storing the report; a writer is the only
//! one that changes them (the `token` and `share` commands touch other rows), so the copy stays
//! true as long as every change goes through it. Collectors sharing a PostgreSQL database each
//! have a writer: a copy another one made stale is read again (`generation`). A report whose
//! storing fails drops its server's copy, and a batch that does not commit drops them all: the
//! next report reads the database again.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use causeway_schema::CanaryName;

use super::IngestError;
use super::grouping::{Closed, Open};
use super::rollups::{RecentCheck, parse_recent};
use super::sql::{Conn, Row, SqlError, values};

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
    /// `servers.generation` as this copy knows it: every stored report adds one, so a
    /// different number in the database means another collector wrote the server (see
    /// `sql::Conn::lock_servers`).
    pub generation: i64,
    /// The newest in-order report's start on the collector's clock (`Arrival::started_at_ms`);
    /// `None` before the first report.
    pub last_at_ms: Option<i64>,
    pub incident: Option<Open>,
    /// The latest ended incident, which failures of its cause within the merge gap reopen.
    pub closed: Option<Closed>,
    pub recent: Vec<RecentCheck>,
    pub resolvers: HashMap<ResolverKey, KnownResolver>,
    /// The canaries seen: name, URL and id (a server has a few).
    pub canaries: Vec<(CanaryName, String, i64)>,
    pub host_row: Option<HostRow>,
    /// Open resolver conditions by resolver id.
    pub resolver_conditions: HashMap<i64, OpenCondition>,
    /// Open host conditions by cause id.
    pub host_conditions: HashMap<String, OpenCondition>,
    /// When each certificate's row was last written, by canary id and leaf fingerprint
    /// (see `certificates`): empty after a restart, which costs one write each.
    pub certificates: HashMap<(i64, String), i64>,
}

/// The servers' states, loaded on first use.
#[derive(Debug, Default)]
pub(super) struct Servers(HashMap<i64, ServerState>);

impl Servers {
    pub fn get(
        &mut self,
        conn: &mut dyn Conn,
        server_id: i64,
    ) -> Result<&mut ServerState, IngestError> {
        match self.0.entry(server_id) {
            Entry::Occupied(e) => Ok(e.into_mut()),
            Entry::Vacant(e) => Ok(e.insert(load(conn, server_id)?)),
        }
    }

    /// The generation of each server's copy, `None` for one not read yet.
    pub fn generations(&self, server_ids: impl Iterator<Item = i64>) -> Vec<(i64, Option<i64>)> {
        server_ids
            .map(|id| (id, self.0.get(&id).map(|s| s.generation)))
            .collect()
    }

    pub fn forget(&mut self, server_id: i64) {
        self.0.remove(&server_id);
    }

    pub fn forget_all(&mut self) {
        self.0.clear();
    }
}

fn load(conn: &mut dyn Conn, server_id: i64) -> Result<ServerState, IngestError> {
    // A server's row from before migration 0010 has its newest start on the probe's clock.
    let (last_at_ms, recent, generation) = conn.returning(
        "SELECT COALESCE(last_at_ms, last_started_at_ms), recent_checks, generation
         FROM servers WHERE id = $1",
        values![server_id],
        |r| Ok((r.int(0)?, r.text(1)?, r.i64(2)?)),
    )?;
    let incident = conn.query_row(
        "SELECT id, cause FROM incidents WHERE server_id = $1 AND ended_at_ms IS NULL",
        values![server_id],
        |r| {
            Ok(Open {
                id: r.i64(0)?,
                cause: r.string(1)?,
            })
        },
    )?;
    let closed = conn.query_row(
        "SELECT id, cause, ended_at_ms FROM incidents
         WHERE server_id = $1 AND ended_at_ms IS NOT NULL
         ORDER BY started_at_ms DESC LIMIT 1",
        values![server_id],
        |r| {
            Ok(Closed {
                id: r.i64(0)?,
                cause: r.string(1)?,
                ended_at_ms: r.i64(2)?,
            })
        },
    )?;
    let resolvers = conn
        .query_all(
            "SELECT r.id, r.canary, r.resolver, r.address, r.last_seen_at_ms,
                    c.cause, c.outcome, r.name
             FROM resolvers r LEFT JOIN resolver_changes c ON c.rowid = (
                 SELECT rowid FROM resolver_changes WHERE resolver_id = r.id
                 ORDER BY started_at_ms DESC, rowid DESC LIMIT 1)
             WHERE r.server_id = $1",
            values![server_id],
            |r| {
                let known = KnownResolver {
                    id: r.i64(0)?,
                    last_seen_at_ms: r.i64(4)?,
                    name: r.string(7)?,
                    last_change: match r.text(6)? {
                        Some(outcome) => Some((r.text(5)?, outcome)),
                        None => None,
                    },
                };
                Ok(((r.string(1)?, r.string(2)?, r.string(3)?), known))
            },
        )?
        .into_iter()
        .collect();
    let canaries = conn.query_all(
        "SELECT id, name, url FROM canaries WHERE server_id = $1",
        values![server_id],
        |r| Ok((CanaryName::from(r.string(1)?), r.string(2)?, r.i64(0)?)),
    )?;
    let host_row = conn.query_row(
        "SELECT rowid, started_at_ms, boot_id, causes, warnings FROM host_observations
         WHERE server_id = $1 ORDER BY started_at_ms DESC, rowid DESC LIMIT 1",
        values![server_id],
        |r| {
            Ok(HostRow {
                rowid: r.i64(0)?,
                first_at_ms: r.i64(1)?,
                boot_id: r.string(2)?,
                causes: r.text(3)?,
                warnings: r.text(4)?,
            })
        },
    )?;
    let resolver_conditions = conn
        .query_all(
            "SELECT c.id, c.cause, c.last_evidence, c.resolver_id
             FROM resolver_conditions c JOIN resolvers r ON r.id = c.resolver_id
             WHERE r.server_id = $1 AND c.ended_at_ms IS NULL",
            values![server_id],
            |r| Ok((r.i64(3)?, open_condition(r)?)),
        )?
        .into_iter()
        .collect();
    let host_conditions = conn
        .query_all(
            "SELECT id, cause, last_evidence FROM host_conditions
             WHERE server_id = $1 AND ended_at_ms IS NULL",
            values![server_id],
            open_condition,
        )?
        .into_iter()
        .map(|open| (open.open.cause.clone(), open))
        .collect();
    Ok(ServerState {
        generation,
        last_at_ms,
        incident,
        closed,
        recent: parse_recent(recent.as_deref()),
        resolvers,
        canaries,
        host_row,
        resolver_conditions,
        host_conditions,
        certificates: HashMap::new(),
    })
}

/// `id, cause, last_evidence` of a condition row.
fn open_condition(r: &dyn Row) -> Result<OpenCondition, SqlError> {
    Ok(OpenCondition {
        open: Open {
            id: r.i64(0)?,
            cause: r.string(1)?,
        },
        last_evidence: r.string(2)?,
    })
}
