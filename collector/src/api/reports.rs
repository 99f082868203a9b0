//! `POST /api/v1/reports`: a probe's report, authenticated by its token, validated, and
//! handed to the writer; answered once it is durable.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use axum::{Json, Router};
use causeway_schema::{Report, SENT_AT_HEADER};
use serde_json::json;

use super::{ApiError, AppState};
use crate::ingest::{Arrival, Outcome};
use crate::metrics::IngestOutcome;
use crate::tokens;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/api/v1/reports", post(post_report))
}

/// `POST /api/v1/reports`, counted by outcome for `/metrics`.
async fn post_report(
    State(app): State<AppState>,
    req: Request,
) -> Result<Json<serde_json::Value>, ApiError> {
    let answer = receive_report(&app, req).await;
    app.ingest.report(match &answer {
        Ok((Outcome::Stored, _, _)) => IngestOutcome::Stored,
        Ok((Outcome::Duplicate, _, _)) => IngestOutcome::Duplicate,
        Err(ApiError::Unauthorized(_) | ApiError::Forbidden(_)) => IngestOutcome::Unauthorized,
        Err(
            ApiError::BadRequest(_)
            | ApiError::NotFound(_)
            | ApiError::PayloadTooLarge(_)
            | ApiError::RequestTimeout(_)
            | ApiError::InvalidReport(_)
            | ApiError::UnknownServer { .. },
        ) => IngestOutcome::Rejected,
        Err(ApiError::Internal(_)) => IngestOutcome::Error,
    });
    if let Ok((Outcome::Stored, checks, _)) = &answer {
        app.ingest.results_stored(*checks);
    }
    answer.map(|(_, _, json)| json)
}

/// A report received: its outcome, its checks and the answer. The token is checked before the
/// body is read, so an unauthenticated client cannot make the collector buffer a megabyte.
async fn receive_report(
    app: &AppState,
    req: Request,
) -> Result<(Outcome, usize, Json<serde_json::Value>), ApiError> {
    let auth = authenticate(app, req.headers()).await?;
    let sent_at_ms = sent_at(req.headers())?;
    let body = tokio::time::timeout(app.body_timeout, Bytes::from_request(req, app)).await;
    let bytes = body
        .map_err(|_| {
            ApiError::RequestTimeout(format!(
                "the report's body did not arrive within {} s (--body-timeout)",
                app.body_timeout.as_secs()
            ))
        })?
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(format!(
                    "the report is larger than this collector's limit of {} bytes (--max-body)",
                    app.max_body
                ))
            } else {
                ApiError::BadRequest(rejection.body_text())
            }
        })?;
    let report = parse_report(&bytes)?;
    if report.server != auth.server {
        return Err(ApiError::Forbidden(format!(
            "this token is for server {:?}, but the report is for server {}",
            auth.server,
            causeway_schema::quoted(&report.server)
        )));
    }
    let now_ms = app.clock.now_ms();
    report.validate(now_ms)?;
    if let Some(answer) = expired(app, &report, now_ms) {
        return Ok((Outcome::Duplicate, 0, answer));
    }
    let report = Arc::new(report);
    let outcome = app
        .db
        .reports
        .store(
            auth.server_id,
            report.clone(),
            Arrival {
                received_at_ms: now_ms,
                sent_at_ms,
            },
        )
        .await?;
    let report_id = report.report_id.to_string();
    let answer = Json(match outcome {
        Outcome::Stored => {
            tracing::debug!(%report_id, server = %report.server, "report stored");
            if let Some(alerts) = &app.alerts {
                alerts.wake.notify_one();
            }
            json!({ "report_id": report_id, "stored": true })
        }
        Outcome::Duplicate => {
            tracing::debug!(%report_id, server = %report.server, "report already stored");
            json!({ "report_id": report_id, "stored": false, "duplicate": true })
        }
    });
    Ok((outcome, report.results.len(), answer))
}

/// A report's JSON. serde_json directly: axum's `Json` tracks the path of every value it
/// reads, for its error message, which costs a fifth of a request's CPU. A report that does not
/// parse is read again through `Json` for that message (its syntax and type errors are a 400;
/// 422 is kept for values `validate` refuses). No Content-Type is required.
fn parse_report(bytes: &Bytes) -> Result<Report, ApiError> {
    serde_json::from_slice(bytes).or_else(|_| {
        Json::<Report>::from_bytes(bytes)
            .map(|Json(report)| report)
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))
    })
}

/// The answer to a report older than the raw retention: acknowledged, not stored. Its report
/// id may be pruned already, so storing it could count a replay twice; and its checks would be
/// pruned at once. The probe drops it from its spool.
fn expired(app: &AppState, report: &Report, now_ms: i64) -> Option<Json<serde_json::Value>> {
    let raw_ms = i64::try_from(app.retention.raw.as_millis()).unwrap_or(i64::MAX);
    if report.started_at_ms >= now_ms.saturating_sub(raw_ms) {
        return None;
    }
    tracing::warn!(
        report_id = %report.report_id,
        server = %report.server,
        started_at_ms = report.started_at_ms,
        "report older than the raw retention ({} d, --retain-raw): acknowledged, not stored",
        app.retention.raw.as_secs() / 86_400
    );
    Some(Json(json!({
        "report_id": report.report_id.to_string(),
        "stored": false,
        "expired": true,
    })))
}

/// The probe's clock when it sent the report ([`SENT_AT_HEADER`]); `None` from a probe that
/// predates it.
fn sent_at(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get(SENT_AT_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|ms| *ms > 0)
        .map(Some)
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "header {SENT_AT_HEADER}: {} is not allowed; expected the probe's clock in \
                 milliseconds since the Unix epoch, a positive integer",
                causeway_schema::quoted(&String::from_utf8_lossy(value.as_bytes()))
            ))
        })
}

async fn authenticate(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<tokens::Authenticated, ApiError> {
    if !headers.contains_key(header::AUTHORIZATION) {
        return Err(ApiError::Unauthorized(
            "missing Authorization header: send `Authorization: Bearer <token>` with a token \
             from `causeway-collector token add <server>`"
                .to_owned(),
        ));
    }
    let token = super::guard::bearer(headers).ok_or_else(|| {
        ApiError::Unauthorized(
            "the Authorization header is not of the form `Bearer <token>`".to_owned(),
        )
    })?;
    tokens::authenticate_cached(&app.tokens, &app.db.read, token, app.clock.now_ms())
        .await?
        .ok_or_else(|| ApiError::Unauthorized("unknown or revoked token".to_owned()))
}
