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
        host: None,
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

/// Posts each report in turn, asserting each is stored (not a duplicate, not refused).
pub async fn post_all(h: &Harness, token: &str, reports: &[Report]) {
    for r in reports {
        let (status, body) = h.post_report(token, r).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["stored"], true, "{body}");
    }
}

/// The canary's name in the resolution helpers.
pub const NAME: &str = "canary.test";

fn query(record_type: &str, outcome: DnsOutcome, elapsed_ms: f64) -> DnsQuery {
    let rcode = match outcome {
        DnsOutcome::Answer | DnsOutcome::NoData => Some("NOERROR"),
        DnsOutcome::NxDomain => Some("NXDOMAIN"),
        DnsOutcome::Refused => Some("REFUSED"),
        _ => None,
    };
    let answers = match outcome {
        DnsOutcome::Answer => vec![DnsAnswer {
            address: "10.77.0.2".parse().unwrap(),
            ttl: 30,
        }],
        _ => vec![],
    };
    DnsQuery {
        record_type: record_type.into(),
        outcome,
        rcode: rcode.map(str::to_owned),
        answers,
        elapsed_ms,
        error: None,
    }
}

fn name_server(label: &str, queries: Vec<DnsQuery>) -> ResolverOutcome {
    ResolverOutcome {
        resolver: label.into(),
        server: format!("{label}:53").parse().unwrap(),
        queries,
        reachability: None,
        condition: None,
    }
}

fn reach(outcome: ReachOutcome, elapsed_ms: f64) -> ReachProbe {
    ReachProbe {
        outcome,
        elapsed_ms,
        detail: None,
    }
}

/// A name server (`label`, port 53) that answers A 10.77.0.2 and has no AAAA record.
pub fn answering(label: &str) -> ResolverOutcome {
    name_server(
        label,
        vec![
            query("A", DnsOutcome::Answer, 1.2),
            query("AAAA", DnsOutcome::NoData, 1.1),
        ],
    )
}

/// One that refuses both queries, though it answers ping and TCP on port 53.
pub fn refusing(label: &str) -> ResolverOutcome {
    unusable(
        label,
        (DnsOutcome::Refused, [0.8, 0.7]),
        (ReachOutcome::Reply, [0.3, 0.5]),
    )
}

/// One that answers nothing at all: no DNS, no ping, no TCP.
pub fn silent(label: &str) -> ResolverOutcome {
    let never = [1000.0; 2];
    unusable(
        label,
        (DnsOutcome::Timeout, never),
        (ReachOutcome::NoReply, never),
    )
}

/// A name server whose A and AAAA queries both end in `dns`, and whose reachability tests
/// (ping, then TCP) both end in `reach`; each with its elapsed milliseconds.
fn unusable(
    label: &str,
    (dns, dns_ms): (DnsOutcome, [f64; 2]),
    (reach_outcome, reach_ms): (ReachOutcome, [f64; 2]),
) -> ResolverOutcome {
    let mut o = name_server(
        label,
        vec![query("A", dns, dns_ms[0]), query("AAAA", dns, dns_ms[1])],
    );
    o.reachability = Some(Reachability {
        icmp: reach(reach_outcome, reach_ms[0]),
        tcp: reach(reach_outcome, reach_ms[1]),
    });
    o
}

/// The canary `site`'s name resolved through `resolvers`, each judged against the others by
/// the schema's rules (the canary answering at 10.77.0.2), as the probe does.
pub fn resolution(mut resolvers: Vec<ResolverOutcome>) -> Resolution {
    let checks = [AddressCheck {
        address: "10.77.0.2".parse().unwrap(),
        failure: None,
    }];
    let verdicts = judge_resolvers(NAME, &resolvers, &checks);
    for (r, verdict) in resolvers.iter_mut().zip(verdicts) {
        r.condition = verdict;
    }
    Resolution {
        canary: "site".into(),
        name: NAME.into(),
        resolvers,
    }
}

/// A report of `server` with one successful check and the canary resolved through
/// `resolvers`.
pub fn resolved(server: &str, at: i64, resolvers: Vec<ResolverOutcome>) -> Report {
    let mut r = report(server, at, vec![ok_check(at)]);
    r.resolutions = vec![resolution(resolvers)];
    r
}

/// `t(n)`: the n-th 30 s cycle from ten minutes before [`NOW`].
pub fn cycle(n: i64) -> i64 {
    NOW - 10 * MIN + n * 30_000
}

/// web-01's story with two resolvers, recorded in the fixtures: 10.0.0.54 silent in cycle 1
/// (a closed `dns_resolver_unreachable`), refusing from cycle 3 (an open `dns_upstream_block`),
/// and in cycle 5 the canary refuses the connection (an incident whose evidence holds both
/// resolvers). Report ids and explanations are fixed, so that the answers are the same on every
/// run and do not follow the classifier's wording (its causes they do follow).
pub fn dns_story() -> Vec<Report> {
    let (a, b) = ("10.0.0.53", "10.0.0.54");
    let mut reports = vec![
        resolved("web-01", cycle(0), vec![answering(a), answering(b)]),
        resolved("web-01", cycle(1), vec![answering(a), silent(b)]),
        resolved("web-01", cycle(2), vec![answering(a), answering(b)]),
        resolved("web-01", cycle(3), vec![answering(a), refusing(b)]),
        resolved("web-01", cycle(4), vec![answering(a), refusing(b)]),
        resolved("web-01", cycle(5), vec![answering(a), refusing(b)]),
    ];
    for (n, r) in reports.iter_mut().enumerate() {
        r.report_id = uuid::Uuid::from_u128(0xd45_0000 + n as u128);
        for o in &mut r.resolutions[0].resolvers {
            if let Some(c) = &mut o.condition {
                c.explanation = story_explanation(c.cause);
            }
        }
    }
    let last = reports.last_mut().unwrap();
    let mut check = refused(cycle(5));
    check.evidence.dns = last.resolutions[0].resolvers.clone();
    last.results = vec![check];
    reports
}

fn story_explanation(cause: Cause) -> String {
    let text = match cause {
        Cause::DnsUpstreamBlock => {
            "10.0.0.54 refuses our queries for canary.test (A refused, AAAA refused), yet it \
             is reachable (ping reply in 0.3 ms, TCP port 53 reply in 0.5 ms); 10.0.0.53 \
             answers 10.77.0.2"
        }
        Cause::DnsResolverUnreachable => {
            "10.0.0.54 cannot be reached: no DNS answer for canary.test (A timeout after \
             1000 ms, AAAA timeout after 1000 ms), ping no_reply after 1000 ms, TCP port 53 \
             no_reply after 1000 ms; 10.0.0.53 answers 10.77.0.2"
        }
        other => panic!("the story has no {other} condition"),
    };
    text.to_owned()
}
