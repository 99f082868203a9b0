//! Shared test helpers: a collector on a temporary SQLite file, reports built from schema
//! types, and requests through the Router without a socket.
#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use causeway_collector::api::{self, AppState};
use causeway_collector::clock::Clock;
use causeway_collector::db::Db;
use causeway_collector::tokens;
use causeway_schema::*;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// 2026-11-23T12:04:30Z: the tests' "now".
pub const NOW: i64 = 1_795_435_470_000;
pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 86_400_000;

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub db: Db,
    pub now: Arc<AtomicI64>,
    pub max_body: usize,
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with_max_body(1_048_576).await
    }

    pub async fn with_max_body(max_body: usize) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("collector.db")).await.unwrap();
        Harness {
            dir,
            db,
            now: Arc::new(AtomicI64::new(NOW)),
            max_body,
        }
    }

    pub fn state(&self) -> AppState {
        let now = self.now.clone();
        AppState {
            db: self.db.clone(),
            clock: Clock::from_fn(move || now.load(Ordering::SeqCst)),
            max_body: self.max_body,
        }
    }

    pub fn app(&self) -> Router {
        api::app(self.state())
    }

    pub fn set_now(&self, ms: i64) {
        self.now.store(ms, Ordering::SeqCst);
    }

    /// A new token for `server` (created if new).
    pub async fn token(&self, server: &str) -> String {
        tokens::add(&self.db.write, server, NOW)
            .await
            .unwrap()
            .token
    }

    pub async fn post_report(&self, token: &str, report: &Report) -> (StatusCode, Value) {
        let body = serde_json::to_vec(report).unwrap();
        self.post(Some(token), body).await
    }

    pub async fn post(&self, token: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
        let mut req =
            Request::post("/api/v1/reports").header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        send(self.app(), req.body(Body::from(body)).unwrap()).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        send(self.app(), Request::get(path).body(Body::empty()).unwrap()).await
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.db.read)
            .await
            .unwrap()
    }
}

/// Sends a request through the Router; answers JSON when it is JSON, else a JSON string.
pub async fn send(app: Router, req: Request<Body>) -> (StatusCode, Value) {
    let response = app.oneshot(req).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

pub fn report(server: &str, started_at_ms: i64, results: Vec<CheckResult>) -> Report {
    Report {
        schema_version: SCHEMA_VERSION,
        report_id: uuid::Uuid::new_v4(),
        server: server.into(),
        probe: ProbeInfo {
            host: server.into(),
            version: "0.1.0".into(),
        },
        started_at_ms,
        interval_s: 30,
        results,
        resolutions: vec![],
        spool: SpoolStats {
            queued: 0,
            dropped_total: 2,
        },
    }
}

fn check(at: i64) -> CheckResult {
    CheckResult {
        canary: "site".into(),
        url: "http://canary.test/".into(),
        address: Some("10.77.0.2".parse().unwrap()),
        started_at_ms: at,
        ok: true,
        status: Some(200),
        timings: Timings {
            resolve_ms: Some(1.2),
            connect_ms: Some(0.4),
            tls_ms: None,
            first_byte_ms: Some(2.0),
            total_ms: 3.1,
        },
        failure: None,
        diagnosis: None,
        evidence: Evidence::default(),
    }
}

pub fn ok_check(at: i64) -> CheckResult {
    check(at)
}

/// A refused connection, classified by the schema's classifier.
pub fn refused(at: i64) -> CheckResult {
    let mut c = check(at);
    c.ok = false;
    c.status = None;
    c.timings.first_byte_ms = None;
    c.failure = Some(Failure {
        kind: FailureKind::ConnectRefused,
        message: "Connection refused (os error 111)".into(),
    });
    c.diagnosis = classify(&c);
    c
}

/// A 502 from the proxy, classified (`http_error`), with its evidence.
pub fn bad_gateway(at: i64) -> CheckResult {
    let mut c = check(at);
    c.ok = false;
    c.status = Some(502);
    c.failure = Some(Failure {
        kind: FailureKind::UnexpectedStatus,
        message: "HTTP 502 Bad Gateway".into(),
    });
    c.evidence = Evidence {
        expected_status: Some(200),
        body_excerpt: Some("<html>502 Bad Gateway</html>".into()),
        ..Evidence::default()
    };
    c.diagnosis = classify(&c);
    c
}
