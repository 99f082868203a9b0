//! The read API under `/api/v1/`: servers, their results, incidents, `why`, resolvers and
//! host, as JSON.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::read::{self, DEFAULT_RESULTS, MAX_RESULTS};
use crate::views::{
    HostView, IncidentList, NotificationList, ResolverList, ResolverOverview, ResultList,
    ServerList,
};

/// The default window of `incidents`, `why`, `resolvers` and `host`.
const DEFAULT_WINDOW_MS: i64 = 86_400_000;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/servers", get(list_servers))
        .route("/api/v1/servers/{name}", get(one_server))
        .route("/api/v1/servers/{name}/results", get(server_results))
        .route("/api/v1/servers/{name}/incidents", get(server_incidents))
        .route("/api/v1/servers/{name}/why", get(server_why))
        .route("/api/v1/servers/{name}/resolvers", get(server_resolvers))
        .route("/api/v1/servers/{name}/host", get(server_host))
        .route("/api/v1/resolvers", get(all_resolvers))
        .route("/api/v1/alerts", get(alerts))
}

async fn list_servers(State(app): State<AppState>) -> Result<Json<ServerList>, ApiError> {
    let now_ms = app.clock.now_ms();
    let servers = read::servers(&app.db.read, now_ms).await?;
    Ok(Json(ServerList { now_ms, servers }))
}

async fn one_server(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<crate::views::ServerView>, ApiError> {
    Ok(Json(
        read::server(&app.db.read, &name, app.clock.now_ms()).await?,
    ))
}

/// Query parameters, read as text so that a bad value gets our message, not serde's.
#[derive(Debug, Deserialize)]
struct Params {
    since_ms: Option<String>,
    limit: Option<String>,
    server: Option<String>,
}

fn params(query: Result<Query<Params>, QueryRejection>) -> Result<Params, ApiError> {
    query
        .map(|Query(p)| p)
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
}

/// `since_ms`: milliseconds since the Unix epoch, 0 or more; `default` when absent.
fn since_ms(params: &Params, default: i64) -> Result<i64, ApiError> {
    match params.since_ms.as_deref() {
        None => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|&ms| ms >= 0)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "since_ms: {text:?} is not allowed; expected milliseconds since the Unix \
                     epoch, a whole number 0 or more"
                ))
            }),
    }
}

/// The window asked for, as `(since_ms, now_ms)`: `since_ms` defaults to a day before now.
fn window(
    app: &AppState,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<(i64, i64), ApiError> {
    let now_ms = app.clock.now_ms();
    Ok((
        since_ms(&params(query)?, now_ms - DEFAULT_WINDOW_MS)?,
        now_ms,
    ))
}

fn limit(params: &Params) -> Result<u32, ApiError> {
    match params.limit.as_deref() {
        None => Ok(DEFAULT_RESULTS),
        Some(text) => text
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_RESULTS).contains(n))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "limit: {text:?} is not allowed; expected a whole number from 1 to \
                     {MAX_RESULTS}"
                ))
            }),
    }
}

async fn server_results(
    State(app): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Json<ResultList>, ApiError> {
    let params = params(query)?;
    let since = since_ms(&params, 0)?;
    let limit = limit(&params)?;
    let results = read::results(&app.db.read, &name, since, limit).await?;
    Ok(Json(ResultList {
        server: name.into(),
        results,
    }))
}

async fn server_incidents(
    State(app): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Json<IncidentList>, ApiError> {
    let (since, now_ms) = window(&app, query)?;
    let incidents = read::incidents(&app.db.read, &name, since).await?;
    Ok(Json(IncidentList {
        server: name.into(),
        since_ms: since,
        now_ms,
        incidents,
    }))
}

async fn server_why(
    State(app): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Json<crate::views::WhyView>, ApiError> {
    let (since, now_ms) = window(&app, query)?;
    let known = app.maintenance(now_ms);
    Ok(Json(
        read::why(&app.db.read, &name, (since, now_ms), &known).await?,
    ))
}

async fn server_resolvers(
    State(app): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Json<ResolverList>, ApiError> {
    let (since, now_ms) = window(&app, query)?;
    Ok(Json(
        read::resolvers(&app.db.read, &name, since, now_ms).await?,
    ))
}

async fn server_host(
    State(app): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Json<HostView>, ApiError> {
    let (since, now_ms) = window(&app, query)?;
    Ok(Json(read::host(&app.db.read, &name, since, now_ms).await?))
}

async fn all_resolvers(
    State(app): State<AppState>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Json<ResolverOverview>, ApiError> {
    let (since, now_ms) = window(&app, query)?;
    Ok(Json(
        read::all_resolvers(&app.db.read, since, now_ms).await?,
    ))
}

/// The recent notifications (`?server=NAME` for one server's, `?limit=N`), newest first.
async fn alerts(
    State(app): State<AppState>,
    query: Result<Query<Params>, QueryRejection>,
) -> Result<Json<NotificationList>, ApiError> {
    let params = params(query)?;
    let limit = limit(&params)?;
    let server = params.server.as_deref();
    let notifications = crate::alerts::recent(&app.db.read, server, i64::from(limit)).await?;
    Ok(Json(NotificationList {
        now_ms: app.clock.now_ms(),
        notifications,
    }))
}
