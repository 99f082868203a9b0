//! HTTP: one router per resource, merged in [`app`]: [`reports`] (a probe's uploads),
//! [`json_api`] (the read API), [`pages`], [`share_links`] (customers' links),
//! [`prometheus`] (`/metrics`) and [`login`]; [`guard`] decides who may read. Handlers are thin: they parse, call [`crate::ingest`] or
//! [`crate::read`], and map errors through [`ApiError`].

mod guard;
mod json_api;
mod login;
mod pages;
mod prometheus;
mod reports;
mod share_links;
mod silences;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use causeway_schema::InvalidReport;

use crate::access::Access;
use crate::clock::Clock;
use crate::db::Db;
use crate::ingest::{IngestError, Retention};
use crate::metrics::IngestCounters;
use crate::read::ReadError;
use crate::tokens;
use crate::views::{ErrorBody, FieldView};
use crate::web::{self, server::Audience};

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
    /// Probe tokens seen lately (see [`tokens::Cache`]).
    pub tokens: Arc<tokens::Cache>,
    /// Who may read the pages, the read API and `/metrics`.
    pub access: Arc<Access>,
    /// The alerter, woken after each stored report (`None` without a config file).
    pub alerts: Option<crate::alerts::Alerter>,
}

impl AppState {
    /// What the read side knows of maintenance beyond the database: the config's weekly
    /// windows, and since when healthy checks are kept.
    pub fn maintenance(&self, now_ms: i64) -> crate::maintenance::Known {
        crate::maintenance::Known {
            weekly: self
                .alerts
                .as_ref()
                .map(|a| a.config().maintenance.clone())
                .unwrap_or_default(),
            raw_since_ms: now_ms - i64::try_from(self.retention.raw.as_millis()).unwrap_or(0),
        }
    }
}

/// The whole application, without a socket (tests call it with `oneshot`).
pub fn app(state: AppState) -> Router {
    let max_body = state.max_body;
    // What shows the fleet needs a reader; a probe's upload has its own token, a share link
    // is its own credential, and signing in and the health check need nothing.
    let readers = Router::new()
        .merge(json_api::router())
        .merge(pages::router())
        .merge(prometheus::router())
        .merge(silences::router())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            guard::require_reader,
        ));
    Router::new()
        .merge(reports::router())
        .merge(readers)
        .merge(share_links::router())
        .merge(login::router())
        .route("/healthz", get(|| async { "ok" }))
        .fallback(no_route)
        .layer(middleware::from_fn(guard::security_headers))
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
