//! What the web page reads: the fleet overview from the rollups of migration 0004 (a fixed
//! number of queries whatever the number of servers), a server's days, and share links.

use std::collections::HashMap;

use sqlx::AnyPool;

use super::rollup::Rollup;
use super::{ReadError, ServerRow, counts, state};
use crate::ingest::rollups::{RecentCheck, parse_recent};
use crate::views::{Availability, ServerState};

const HOUR_MS: i64 = 3_600_000;
pub const DAY_MS: i64 = 86_400_000;
/// The overview's windows: 24 h from hourly rollups, 7 and 30 days from daily ones (whole
/// UTC hours and days: the figures move once an hour or a day, which a fleet view can bear).
pub const FLEET_WINDOWS: [(&str, i64); 3] =
    [("24h", DAY_MS), ("7d", 7 * DAY_MS), ("30d", 30 * DAY_MS)];

/// One server of the overview.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetServer {
    pub name: String,
    pub state: ServerState,
    pub last_seen_ms: Option<i64>,
    /// When the newest report started.
    pub last_report_ms: Option<i64>,
    /// In [`FLEET_WINDOWS`] order.
    pub availability: [Availability; 3],
    /// The newest incident's cause and when it last failed, open or not.
    pub last_failure: Option<(String, i64)>,
    /// The open incident's cause.
    pub open_cause: Option<String>,
    /// The newest checks, oldest first.
    pub recent: Vec<RecentCheck>,
}

/// The whole fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    pub servers: Vec<FleetServer>,
    /// Every server's checks together, in [`FLEET_WINDOWS`] order.
    pub total: [Availability; 3],
}

#[derive(sqlx::FromRow)]
struct FleetRow {
    #[sqlx(flatten)]
    server: ServerRow,
    recent_checks: Option<String>,
}

/// The overview, by server name.
pub async fn fleet(pool: &AnyPool, now_ms: i64) -> Result<Fleet, ReadError> {
    let rows: Vec<FleetRow> = sqlx::query_as(&format!(
        "{} ORDER BY s.name LIMIT $1",
        super::SERVER_SELECT.replace(" FROM servers s", ", s.recent_checks FROM servers s")
    ))
    .bind(super::MAX_SERVERS)
    .fetch_all(pool)
    .await?;
    let mut windows = Vec::with_capacity(FLEET_WINDOWS.len());
    for (i, (_, len)) in FLEET_WINDOWS.iter().enumerate() {
        let (rollup, unit) = match i {
            0 => (Rollup::Hours, HOUR_MS),
            _ => (Rollup::Days, DAY_MS),
        };
        let since = (now_ms - len) - (now_ms - len).rem_euclid(unit);
        let sums = rollup.sums(pool, None, since, i64::MAX).await?;
        let by_server: HashMap<i64, Availability> = sums
            .into_iter()
            .map(|(id, ok, total)| (id, counts(ok, total)))
            .collect();
        windows.push(by_server);
    }
    // Each server's newest incident through the (server_id, started_at_ms) index; CROSS JOIN
    // keeps SQLite from reordering it into a scan of every incident.
    let last: Vec<(i64, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT s.id, i.cause, i.last_failure_at_ms, i.ended_at_ms
         FROM servers s CROSS JOIN incidents i
         WHERE i.id = (SELECT id FROM incidents WHERE server_id = s.id
                       ORDER BY started_at_ms DESC, id DESC LIMIT 1)",
    )
    .fetch_all(pool)
    .await?;
    let last: HashMap<i64, (String, i64, bool)> = last
        .into_iter()
        .map(|(id, cause, at, ended)| (id, (cause, at, ended.is_none())))
        .collect();
    let none = Availability::new(0, 0);
    let mut total = [(0, 0); 3];
    let servers = rows
        .into_iter()
        .map(|row| {
            let id = row.server.id;
            let availability: [Availability; 3] =
                std::array::from_fn(|i| windows[i].get(&id).copied().unwrap_or(none));
            for (t, a) in total.iter_mut().zip(&availability) {
                *t = (t.0 + a.ok, t.1 + a.total);
            }
            let last = last.get(&id);
            FleetServer {
                state: state(&row.server, now_ms),
                last_seen_ms: row.server.last_received_at_ms,
                last_report_ms: row.server.last_started_at_ms,
                availability,
                last_failure: last.map(|(c, at, _)| (c.clone(), *at)),
                open_cause: last.filter(|l| l.2).map(|l| l.0.clone()),
                recent: parse_recent(row.recent_checks.as_deref()),
                name: row.server.name,
            }
        })
        .collect();
    Ok(Fleet {
        servers,
        total: total.map(|(ok, total)| Availability::new(ok, total)),
    })
}

/// One server's checks per UTC day over the last `days` days (today included), oldest first;
/// a day without checks is absent.
pub async fn days(
    pool: &AnyPool,
    server_id: i64,
    days: i64,
    now_ms: i64,
) -> Result<Vec<(i64, Availability)>, ReadError> {
    let today = now_ms - now_ms.rem_euclid(DAY_MS);
    let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT day_ms, checks_ok, checks_total FROM availability_days
         WHERE server_id = $1 AND day_ms >= $2 ORDER BY day_ms",
    )
    .bind(server_id)
    .bind(today - (days - 1) * DAY_MS)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(day, ok, total)| (day, counts(ok, total)))
        .collect())
}

/// A server's id by name, with suggestions when there is none.
pub async fn server_id(pool: &AnyPool, name: &str) -> Result<i64, ReadError> {
    Ok(super::server_row(pool, name).await?.id)
}
