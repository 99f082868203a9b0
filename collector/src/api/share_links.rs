//! Share links for a server's customer: its page, badge and JSON summary, the link being the
//! credential.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::{ApiError, AppState, PageError};
use crate::read;
use crate::share;
use crate::web::{self, server::Audience};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/s/{secret}", get(shared_page))
        .route("/s/{secret}/badge.svg", get(shared_badge))
        .route("/s/{secret}/summary.json", get(shared_summary))
}

/// The server a share link opens; a bad or revoked link is 404 without any hint (no server
/// names for whoever guesses).
async fn shared_server(app: &AppState, secret: &str) -> Result<String, ApiError> {
    share::open(&app.db.read, secret)
        .await?
        .ok_or_else(|| ApiError::NotFound("no such link (it may have been revoked)".to_owned()))
}

async fn shared_page(
    State(app): State<AppState>,
    Path(secret): Path<String>,
) -> Result<Html<String>, PageError> {
    let name = shared_server(&app, &secret)
        .await
        .map_err(PageError::for_customer)?;
    let now_ms = app.clock.now_ms();
    let page = web::server::load(&app.db.read, &name, now_ms, &app.maintenance(now_ms))
        .await
        .map_err(PageError::for_customer)?;
    Ok(Html(web::server::render(&page, Audience::Customer)))
}

async fn shared_badge(
    State(app): State<AppState>,
    Path(secret): Path<String>,
) -> Result<Response, ApiError> {
    let name = shared_server(&app, &secret).await?;
    let server = read::server(&app.db.read, &name, app.clock.now_ms()).await?;
    let headers = [
        (header::CONTENT_TYPE, "image/svg+xml"),
        (header::CACHE_CONTROL, "max-age=60"),
    ];
    Ok((headers, web::customer::badge(&server)).into_response())
}

async fn shared_summary(
    State(app): State<AppState>,
    Path(secret): Path<String>,
) -> Result<Response, ApiError> {
    let name = shared_server(&app, &secret).await?;
    let now_ms = app.clock.now_ms();
    let server = read::server(&app.db.read, &name, now_ms).await?;
    // A control panel on another origin fetches it from its page: the link is the credential.
    let headers = [(header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")];
    Ok((headers, Json(web::customer::summary(&server, now_ms))).into_response())
}
