//! The pages an operator opens: the fleet overview, a server's page, a check's page.

use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use axum::routing::get;

use super::{ApiError, AppState, PageError};
use crate::read;
use crate::web::{self, overview::OverviewQuery, server::Audience};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/servers/{name}", get(server_page))
        .route("/servers/{name}/checks/{id}", get(check_page))
}

async fn index(
    State(app): State<AppState>,
    query: Result<Query<OverviewQuery>, QueryRejection>,
) -> Result<Html<String>, PageError> {
    let Query(query) = query.map_err(|r| ApiError::BadRequest(r.body_text()))?;
    let now_ms = app.clock.now_ms();
    let fleet = read::fleet(&app.db.read, now_ms).await?;
    Ok(Html(web::overview::render(&fleet, &query, now_ms)))
}

async fn server_page(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Html<String>, PageError> {
    let now_ms = app.clock.now_ms();
    let page = web::server::load(&app.db.read, &name, now_ms, &app.maintenance(now_ms)).await?;
    Ok(Html(web::server::render(&page, Audience::Operator)))
}

async fn check_page(
    State(app): State<AppState>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Html<String>, PageError> {
    let not_found = || ApiError::NotFound(format!("server {name:?} has no check {id:?}"));
    let id: i64 = id.parse().map_err(|_| not_found())?;
    let result = read::result_of(&app.db.read, &name, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(Html(web::server::render_check(
        &name,
        &result,
        app.clock.now_ms(),
    )))
}
