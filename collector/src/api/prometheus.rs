//! `GET /metrics`: the Prometheus text exposition.

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, AppState};
use crate::metrics;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics_text))
}

/// `GET /metrics`: the Prometheus text exposition.
async fn metrics_text(State(app): State<AppState>) -> Result<Response, ApiError> {
    let text = metrics::render(
        &app.db.read,
        &app.ingest,
        &app.db.reports,
        app.clock.now_ms(),
    )
    .await?;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
}
