//! `/api/v1/silences`: list (readers), make and remove (a read token with write rights).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{delete, get};
use axum::{Json, Router};

use super::{ApiError, AppState, guard};
use crate::silences::{self, NewSilence, Silence, SilenceList};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/silences", get(list).post(create))
        .route("/api/v1/silences/{id}", delete(remove))
}

async fn list(State(app): State<AppState>) -> Result<Json<SilenceList>, ApiError> {
    let now_ms = app.clock.now_ms();
    let silences = silences::recent(&app.db.read, now_ms).await?;
    Ok(Json(SilenceList { now_ms, silences }))
}

/// `{"servers": "web-01", "duration_s": 7200, "reason": "kernel upgrade"}`.
async fn create(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Silence>, ApiError> {
    let by = guard::writer(&app, &headers).await?;
    let new: NewSilence = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "the body is not a silence: {e}; expected {{\"servers\": \"web-01\", \
             \"duration_s\": 7200, \"reason\": \"kernel upgrade\"}}"
        ))
    })?;
    silences::check(&new).map_err(ApiError::BadRequest)?;
    let made = silences::add(&app.db.write, &new, &by, app.clock.now_ms()).await?;
    tracing::info!(
        "silence {}: {} for {} s by {by}: {}",
        made.id,
        made.servers,
        new.duration_s,
        made.reason
    );
    Ok(Json(made))
}

async fn remove(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let by = guard::writer(&app, &headers).await?;
    let not_found = || {
        ApiError::NotFound(format!(
            "no silence {id:?} in force (see GET /api/v1/silences)"
        ))
    };
    let n: i64 = id.parse().map_err(|_| not_found())?;
    if !silences::remove(&app.db.write, n, app.clock.now_ms()).await? {
        return Err(not_found());
    }
    tracing::info!("silence {n} removed by {by}");
    Ok(Json(serde_json::json!({ "removed": n })))
}
