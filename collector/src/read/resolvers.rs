//! Resolver health and conditions: the queries behind the `resolvers` endpoints and the
//! resolver part of `why`. Bounded like every list of [`super`].

use std::collections::{BTreeMap, HashMap};

use sqlx::AnyPool;

use super::conditions::{CONDITION_COLUMNS, ConditionRow};
use super::{MAX_SERVERS, ReadError, server_row};
use crate::views::{
    Availability, ObservationView, ResolverConditionView, ResolverHealth, ResolverList,
    ResolverOverview, ServerResolvers,
};

const HOUR_MS: i64 = 3_600_000;
/// Resolver conditions per request, like incidents.
pub const MAX_RESOLVER_CONDITIONS: u32 = 500;
/// Resolvers listed per server: a probe's canaries times its name servers, far fewer.
const MAX_RESOLVERS: i64 = 1_000;

/// A server's resolvers over `since_ms ..= now`, and their conditions overlapping it.
pub async fn resolvers(
    pool: &AnyPool,
    name: &str,
    since_ms: i64,
    now_ms: i64,
) -> Result<ResolverList, ReadError> {
    let row = server_row(pool, name).await?;
    Ok(ResolverList {
        resolvers: health_of(pool, row.id, since_ms).await?,
        conditions: conditions_of(pool, row.id, since_ms).await?,
        server: row.name.into(),
        since_ms,
        now_ms,
    })
}

/// Every server's resolvers over `since_ms ..= now`, servers by name.
pub async fn all_resolvers(
    pool: &AnyPool,
    since_ms: i64,
    now_ms: i64,
) -> Result<ResolverOverview, ReadError> {
    let servers: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, name FROM servers ORDER BY name LIMIT $1")
            .bind(MAX_SERVERS)
            .fetch_all(pool)
            .await?;
    let mut out = Vec::with_capacity(servers.len());
    for (id, server) in servers {
        out.push(ServerResolvers {
            server: server.into(),
            resolvers: health_of(pool, id, since_ms).await?,
        });
    }
    Ok(ResolverOverview {
        since_ms,
        now_ms,
        servers: out,
    })
}

#[derive(sqlx::FromRow)]
struct ResolverConditionRow {
    resolver_id: i64,
    canary: String,
    name: String,
    resolver: String,
    address: String,
    #[sqlx(flatten)]
    condition: ConditionRow,
}

fn condition_select() -> String {
    format!(
        "SELECT {CONDITION_COLUMNS}, c.resolver_id, r.canary, r.name, r.resolver, r.address
         FROM resolver_conditions c JOIN resolvers r ON r.id = c.resolver_id"
    )
}

impl From<ResolverConditionRow> for ResolverConditionView {
    fn from(r: ResolverConditionRow) -> Self {
        ResolverConditionView {
            canary: r.canary.into(),
            name: r.name,
            resolver: r.resolver,
            address: r.address,
            condition: r.condition.into_view("resolver_conditions"),
        }
    }
}

/// A server's resolver conditions overlapping `since_ms ..= now`, newest first.
pub(super) async fn conditions_of(
    pool: &AnyPool,
    server_id: i64,
    since_ms: i64,
) -> Result<Vec<ResolverConditionView>, ReadError> {
    let rows: Vec<ResolverConditionRow> = sqlx::query_as(&format!(
        "{}
         WHERE r.server_id = $1 AND (c.ended_at_ms IS NULL OR c.ended_at_ms >= $2)
         ORDER BY c.started_at_ms DESC, c.id DESC LIMIT $3",
        condition_select()
    ))
    .bind(server_id)
    .bind(since_ms)
    .bind(i64::from(MAX_RESOLVER_CONDITIONS))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(ResolverConditionView::from).collect())
}

#[derive(sqlx::FromRow)]
struct ResolverRow {
    id: i64,
    canary: String,
    name: String,
    resolver: String,
    address: String,
}

#[derive(sqlx::FromRow)]
struct ObservationRow {
    started_at_ms: i64,
    cause: Option<String>,
    outcome: String,
    elapsed_ms: Option<f64>,
}

/// A server's resolvers observed since `since_ms` or with an open condition, by canary,
/// resolver and address.
async fn health_of(
    pool: &AnyPool,
    server_id: i64,
    since_ms: i64,
) -> Result<Vec<ResolverHealth>, ReadError> {
    let rows: Vec<ResolverRow> = sqlx::query_as(
        "SELECT id, canary, name, resolver, address FROM resolvers r
         WHERE server_id = $1 AND (
             EXISTS (SELECT 1 FROM resolver_hours o
                     WHERE o.resolver_id = r.id AND o.hour_ms >= $4 AND o.last_at_ms >= $2)
             OR id IN (SELECT resolver_id FROM resolver_conditions WHERE ended_at_ms IS NULL))
         ORDER BY canary, resolver, address LIMIT $3",
    )
    .bind(server_id)
    .bind(since_ms)
    .bind(MAX_RESOLVERS)
    .bind(since_ms - since_ms.rem_euclid(HOUR_MS))
    .fetch_all(pool)
    .await?;
    // Counts per resolver and cause from the hourly counts (migration 0008): the window is
    // counted from the start of the hour `since_ms` falls in.
    let counts: Vec<(i64, String, i64)> = sqlx::query_as(
        "SELECT o.resolver_id, o.cause, CAST(SUM(o.n) AS BIGINT)
         FROM resolver_hours o JOIN resolvers r ON r.id = o.resolver_id
         WHERE r.server_id = $1 AND o.hour_ms >= $2
         GROUP BY o.resolver_id, o.cause",
    )
    .bind(server_id)
    .bind(since_ms - since_ms.rem_euclid(HOUR_MS))
    .fetch_all(pool)
    .await?;
    let open: Vec<ResolverConditionRow> = sqlx::query_as(&format!(
        "{} WHERE r.server_id = $1 AND c.ended_at_ms IS NULL",
        condition_select()
    ))
    .bind(server_id)
    .fetch_all(pool)
    .await?;
    let mut open: HashMap<i64, ResolverConditionView> = open
        .into_iter()
        .map(|c| (c.resolver_id, ResolverConditionView::from(c)))
        .collect();

    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut observations = 0;
        let mut causes = BTreeMap::new();
        for (_, cause, n) in counts.iter().filter(|(id, _, _)| *id == row.id) {
            let n = u64::try_from(*n).unwrap_or(0);
            observations += n;
            if !cause.is_empty() {
                causes.insert(cause.clone(), n);
            }
        }
        let healthy = observations - causes.values().sum::<u64>();
        out.push(ResolverHealth {
            ratio: Availability::new(healthy, observations).ratio,
            last: last_observation(pool, row.id).await?,
            open_condition: open.remove(&row.id),
            canary: row.canary.into(),
            name: row.name,
            resolver: row.resolver,
            address: row.address,
            observations,
            healthy,
            causes,
        });
    }
    Ok(out)
}

/// The newest observation of a resolver: its newest change (what it answered since), dated by
/// the resolver's last sighting (the newest of its latest hour's counts). The elapsed time is the change's, the first answer of that
/// kind.
async fn last_observation(
    pool: &AnyPool,
    resolver_id: i64,
) -> Result<Option<ObservationView>, ReadError> {
    let row: Option<ObservationRow> = sqlx::query_as(
        "SELECT coalesce((SELECT max(last_at_ms) FROM (
                     SELECT last_at_ms FROM resolver_hours WHERE resolver_id = $1
                     ORDER BY hour_ms DESC LIMIT 16) AS newest), c.started_at_ms) AS started_at_ms,
                c.cause, c.outcome, c.elapsed_ms
         FROM resolver_changes c
         WHERE c.resolver_id = $1 ORDER BY c.started_at_ms DESC, c.rowid DESC LIMIT 1",
    )
    .bind(resolver_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|o| ObservationView {
        started_at_ms: o.started_at_ms,
        cause: o.cause,
        outcome: o.outcome,
        elapsed_ms: o.elapsed_ms,
    }))
}
