//! HTTP: the ingest endpoint, the read API, the page. Handlers are thin: they parse, call
//! [`crate::ingest`] or [`crate::read`], and map errors through [`ApiError`].

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use causeway_schema::{InvalidReport, Report};
use serde::Deserialize;
use serde_json::json;

use crate::clock::Clock;
use crate::db::Db;
use crate::ingest::{IngestError, Outcome, Retention};
use crate::metrics::{self, IngestCounters, IngestOutcome};
use crate::read::{self, DEFAULT_RESULTS, MAX_RESULTS, ReadError};
use crate::views::{
    ErrorBody, FieldView, HostView, IncidentList, ResolverList, ResolverOverview, ResultList,
    ServerList,
};
use crate::web::{self, overview::OverviewQuery, server::Audience};
use crate::{share, tokens};

/// The default window of `incidents`, `why`, `resolvers` and `host`.
const DEFAULT_WINDOW_MS: i64 = 86_400_000;

/// The default [`AppState::body_timeout`]: twice the probe's whole upload timeout (15 s).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Db,
    pub clock: Clock,
    /// The largest report body accepted, in bytes.
    pub max_body: usize,
    /// How long a report's body may take to arrive once its headers are in; a client that
    /// sends it slower gets 408 (and a probe sends it again).
    pub body_timeout: Duration,
    /// What `POST /api/v1/reports` answered since the collector started, for `/metrics`.
    pub ingest: Arc<IngestCounters>,
    /// How long data is kept; a report older than the raw retention is not stored.
    pub retention: Retention,
}

/// The whole application, without a socket (tests call it with `oneshot`).
pub fn app(state: AppState) -> Router {
    let max_body = state.max_body;
    Router::new()
        .route("/", get(index))
        .route("/servers/{name}", get(server_page))
        .route("/servers/{name}/checks/{id}", get(check_page))
        .route("/s/{secret}", get(shared_page))
        .route("/s/{secret}/badge.svg", get(shared_badge))
        .route("/s/{secret}/summary.json", get(shared_summary))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics_text))
        .route("/api/v1/reports", post(post_report))
        .route("/api/v1/servers", get(list_servers))
        .route("/api/v1/servers/{name}", get(one_server))
        .route("/api/v1/servers/{name}/results", get(server_results))
        .route("/api/v1/servers/{name}/incidents", get(server_incidents))
        .route("/api/v1/servers/{name}/why", get(server_why))
        .route("/api/v1/servers/{name}/resolvers", get(server_resolvers))
        .route("/api/v1/servers/{name}/host", get(server_host))
        .route("/api/v1/resolvers", get(all_resolvers))
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Every error the API answers, as `{"error": "..."}` with a fitting status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("{0}")]
    InvalidReport(#[from] InvalidReport),
    #[error("unknown server {name:?}")]
    UnknownServer { name: String, closest: Vec<String> },
    /// Logged in detail; the client only learns that something failed on our side.
    #[error("internal error: {0}")]
    Internal(Box<dyn std::error::Error + Send + Sync>),
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::UnknownServer { name, closest } => ApiError::UnknownServer { name, closest },
            other => ApiError::Internal(Box::new(other)),
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        ApiError::Internal(Box::new(e))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::Internal(Box::new(e))
    }
}

impl ApiError {
    /// The status and body this error answers with, as JSON or as a page.
    fn answer(self) -> (StatusCode, ErrorBody) {
        let mut body = ErrorBody {
            error: self.to_string(),
            closest: None,
            fields: None,
        };
        let status = match self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::InvalidReport(e) => {
                body.fields = Some(
                    e.0.into_iter()
                        .map(|f| FieldView {
                            field: f.field,
                            value: f.value,
                            allowed: f.allowed,
                        })
                        .collect(),
                );
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::UnknownServer { closest, .. } => {
                body.closest = Some(closest);
                StatusCode::NOT_FOUND
            }
            ApiError::Internal(e) => {
                tracing::error!(error = %e, "request failed");
                body.error = "internal error; the collector's log has the details".to_owned();
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        (status, body)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.answer();
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// An error on a page people open in a browser: the API's status and message, as a page. An
/// operator's page suggests the closest server names; a customer's names nothing.
#[derive(Debug)]
pub struct PageError {
    error: ApiError,
    audience: Audience,
}

impl<E: Into<ApiError>> From<E> for PageError {
    fn from(e: E) -> PageError {
        PageError {
            error: e.into(),
            audience: Audience::Operator,
        }
    }
}

impl PageError {
    fn for_customer(e: impl Into<ApiError>) -> PageError {
        PageError {
            error: e.into(),
            audience: Audience::Customer,
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let (status, body) = self.error.answer();
        let html = match self.audience {
            Audience::Operator => web::layout::error_page(status, &body.error, body.closest),
            // A customer's link leads nowhere else, and names no other server.
            Audience::Customer => web::layout::error_page_for(status, &body.error, None, false),
        };
        (status, Html(html)).into_response()
    }
}

/// `GET` of anything else: the API's JSON under `/api/`, a page elsewhere.
async fn no_route(method: Method, uri: Uri) -> Response {
    let error = ApiError::NotFound(format!("no route for {method} {}", uri.path()));
    if uri.path().starts_with("/api/") || method != Method::GET {
        error.into_response()
    } else {
        PageError::from(error).into_response()
    }
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
    // `from_bytes` rather than the `Json` extractor: no Content-Type requirement, and both
    // syntax and type errors are a 400 here (422 is kept for values `validate` refuses).
    let Json(report) = Json::<Report>::from_bytes(&bytes)
        .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
    if report.server != auth.server {
        return Err(ApiError::Forbidden(format!(
            "this token is for server {:?}, but the report is for server {:?}",
            auth.server, report.server
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
        .store(auth.server_id, report.clone(), now_ms)
        .await?;
    let report_id = report.report_id.to_string();
    let answer = Json(match outcome {
        Outcome::Stored => {
            tracing::debug!(%report_id, server = %report.server, "report stored");
            json!({ "report_id": report_id, "stored": true })
        }
        Outcome::Duplicate => {
            tracing::debug!(%report_id, server = %report.server, "report already stored");
            json!({ "report_id": report_id, "stored": false, "duplicate": true })
        }
    });
    Ok((outcome, report.results.len(), answer))
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

async fn authenticate(
    app: &AppState,
    headers: &HeaderMap,
) -> Result<tokens::Authenticated, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized(
            "missing Authorization header: send `Authorization: Bearer <token>` with a token \
             from `causeway-collector token add <server>`"
                .to_owned(),
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "the Authorization header is not of the form `Bearer <token>`".to_owned(),
            )
        })?;
    tokens::authenticate(&app.db.read, token)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("unknown or revoked token".to_owned()))
}

/// `GET /metrics`: the Prometheus text exposition.
async fn metrics_text(State(app): State<AppState>) -> Result<Response, ApiError> {
    let text = metrics::render(&app.db.read, &app.ingest, app.clock.now_ms()).await?;
    Ok(([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response())
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
    let page = web::server::load(&app.db.read, &name, app.clock.now_ms()).await?;
    Ok(Html(web::server::render(&page, Audience::Operator)))
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
    let page = web::server::load(&app.db.read, &name, app.clock.now_ms())
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
        server: name,
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
        server: name,
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
    Ok(Json(read::why(&app.db.read, &name, since, now_ms).await?))
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
