//! `GET /metrics`: the exact samples after a known history, the real `promtool check metrics`
//! on the output, and the exposition writer's escaping.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use causeway_collector::api::{self, AppState};
use causeway_collector::metrics::{self, Exposition, IngestCounters, Kind};
use common::*;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// One collector: a single Router (so a single set of ingest counters) for every request.
struct Collector {
    app: Router,
}

impl Collector {
    async fn post(&self, token: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
        send(self.app.clone(), report_request(token, body)).await
    }

    async fn post_report(&self, token: &str, r: &causeway_schema::Report) -> (StatusCode, Value) {
        self.post(Some(token), serde_json::to_vec(r).unwrap()).await
    }

    async fn stored(&self, token: &str, r: &causeway_schema::Report) {
        let (status, body) = self.post_report(token, r).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["stored"], true, "{body}");
    }

    /// `GET /metrics`: asserts a 200 in the text format and answers the text.
    async fn metrics(&self) -> String {
        let req = Request::get("/metrics").body(Body::empty()).unwrap();
        let response = self.app.clone().oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}

/// Runs `promtool check metrics` on `text`; panics with its output unless it exits 0 having
/// printed nothing (a lint problem is printed, and makes it exit non-zero too).
fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install the Debian package prometheus (promtool), \
                 e.g. with scripts/install-test-deps"
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && printed.trim().is_empty(),
        "promtool check metrics: {}\n{printed}\non:\n{text}",
        out.status
    );
}

/// The sample lines of `text` (no comments), for exact comparisons.
fn samples(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

fn assert_has(text: &str, line: &str) {
    assert!(
        samples(text).contains(&line),
        "no sample line {line:?} in:\n{text}"
    );
}

fn assert_no_sample_starting(text: &str, prefix: &str) {
    let found: Vec<&str> = samples(text)
        .into_iter()
        .filter(|l| l.starts_with(prefix))
        .collect();
    assert!(found.is_empty(), "unexpected {found:?} in:\n{text}");
}

/// Every sample's metric has a `# HELP` and a `# TYPE` before it.
fn assert_described(text: &str) {
    for line in samples(text) {
        let name = line.split(['{', ' ']).next().unwrap();
        let before = &text[..text.find(line).unwrap()];
        for comment in ["# HELP", "# TYPE"] {
            assert!(
                before.contains(&format!("\n{comment} {name} "))
                    || before.starts_with(&format!("{comment} {name} ")),
                "{name} has no {comment:?} before its samples:\n{text}"
            );
        }
    }
}

/// web-01: the DNS story (5 passing checks, then a refused connection: an open incident, and
/// one resolver refusing: an open resolver condition). db-01: checks over 40 days, the newest
/// passing, its probe's host leaking kernel memory. idle-01: a token, never a report. Then a
/// replay, two unauthenticated posts, two refused ones, and one that fails on our side.
#[tokio::test]
async fn metrics_after_a_known_history() {
    let h = Harness::new().await;
    let c = Collector {
        app: api::app(AppState {
            alerts: None,
            ingest: Arc::new(IngestCounters::new(NOW - HOUR)),
            // Its history reaches 40 days back.
            retention: KEEP_ALL,
            ..h.state()
        }),
    };
    let web = h.token("web-01").await;
    let db = h.token("db-01").await;
    h.token("idle-01").await;

    let story = dns_story();
    for r in &story {
        c.stored(&web, r).await;
    }
    let leaking = ProbeHost::at(NOW - MIN).leaking();
    let db_reports = [
        // Older than 30 days: in no window.
        report("db-01", NOW - 40 * DAY, vec![ok_check(NOW - 40 * DAY)]),
        // In 30d only.
        report("db-01", NOW - 20 * DAY, vec![refused(NOW - 20 * DAY)]),
        // In 7d and 30d.
        report("db-01", NOW - 3 * DAY, vec![ok_check(NOW - 3 * DAY)]),
        // More than 24 h ago, but in the hour 24 h ago (11:04:30 → from 12:00 the day before),
        // which the 24h window counts whole.
        report(
            "db-01",
            NOW - DAY - 3 * MIN,
            vec![
                ok_check(NOW - DAY - 3 * MIN),
                bad_gateway(NOW - DAY - 3 * MIN),
            ],
        ),
        causeway_schema::Report {
            // A probe that cannot keep its interval: its 3rd overrun, this cycle 1.8 s.
            cycle: Some(causeway_schema::CycleStats {
                took_ms: 1_800,
                overruns_total: 3,
            }),
            ..with_host(
                report("db-01", NOW - MIN, vec![ok_check(NOW - MIN)]),
                &leaking,
            )
        },
    ];
    for r in &db_reports {
        c.stored(&db, r).await;
    }

    // A replay: a duplicate.
    let (status, body) = c.post_report(&web, story.last().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["duplicate"], true, "{body}");
    // No token (401); web-01's token for a db-01 report (403).
    let fresh = report("db-01", NOW, vec![ok_check(NOW)]);
    let (status, _) = c.post(None, serde_json::to_vec(&fresh).unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = c.post_report(&web, &fresh).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Not JSON (400); a report from before 2020 (422).
    let (status, _) = c.post(Some(&db), b"{not json".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let ancient = report("db-01", 1_000, vec![ok_check(1_000)]);
    let (status, _) = c.post_report(&db, &ancient).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // The database writer has stopped (500).
    h.db.reports.close().await;
    let (status, body) = c.post_report(&db, &fresh).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");

    let text = c.metrics().await;

    // The probe's cycles: only a probe that says (web-01's reports predate it here).
    assert_has(&text, r#"causeway_probe_cycle_seconds{server="db-01"} 1.8"#);
    assert_has(
        &text,
        r#"causeway_probe_cycle_overruns_total{server="db-01"} 3"#,
    );
    assert_no_sample_starting(&text, r#"causeway_probe_cycle_seconds{server="web-01"}"#);

    // The collector and what it received.
    assert_has(&text, "causeway_collector_start_time_seconds 1795431870");
    for line in [
        r#"causeway_ingest_reports_total{outcome="stored"} 11"#,
        r#"causeway_ingest_reports_total{outcome="duplicate"} 1"#,
        r#"causeway_ingest_reports_total{outcome="rejected"} 2"#,
        r#"causeway_ingest_reports_total{outcome="unauthorized"} 2"#,
        r#"causeway_ingest_reports_total{outcome="error"} 1"#,
        // 6 checks of web-01, 6 of db-01.
        "causeway_ingest_results_total 12",
    ] {
        assert_has(&text, line);
    }

    // States: web-01's latest report failed, db-01's passed, idle-01 never reported.
    for line in [
        r#"causeway_server_up{server="web-01"} 0"#,
        r#"causeway_server_up{server="db-01"} 1"#,
        r#"causeway_server_up{server="idle-01"} 0"#,
        r#"causeway_server_state{server="web-01",state="up"} 0"#,
        r#"causeway_server_state{server="web-01",state="down"} 1"#,
        r#"causeway_server_state{server="web-01",state="stale"} 0"#,
        r#"causeway_server_state{server="web-01",state="unknown"} 0"#,
        r#"causeway_server_state{server="db-01",state="up"} 1"#,
        r#"causeway_server_state{server="db-01",state="down"} 0"#,
        r#"causeway_server_state{server="idle-01",state="unknown"} 1"#,
        r#"causeway_server_state{server="idle-01",state="up"} 0"#,
        // cycle(5) = NOW - 10 min + 150 s.
        r#"causeway_server_last_report_timestamp_seconds{server="web-01"} 1795435020"#,
        r#"causeway_server_last_report_timestamp_seconds{server="db-01"} 1795435410"#,
    ] {
        assert_has(&text, line);
    }
    assert_no_sample_starting(
        &text,
        r#"causeway_server_last_report_timestamp_seconds{server="idle-01""#,
    );

    // Availability: web-01 5 of 6 everywhere; db-01 2 of 3 over 24h (the whole hour 24 h
    // ago counts), 3 of 4 over 7d, 3 of 5 over 30d (not the check of 40 days ago).
    for line in [
        r#"causeway_server_availability_ratio{server="web-01",window="24h"} 0.8333333333333334"#,
        r#"causeway_server_availability_ratio{server="web-01",window="7d"} 0.8333333333333334"#,
        r#"causeway_server_availability_ratio{server="web-01",window="30d"} 0.8333333333333334"#,
        r#"causeway_server_availability_ratio{server="db-01",window="24h"} 0.6666666666666666"#,
        r#"causeway_server_availability_ratio{server="db-01",window="7d"} 0.75"#,
        r#"causeway_server_availability_ratio{server="db-01",window="30d"} 0.6"#,
    ] {
        assert_has(&text, line);
    }
    assert_no_sample_starting(
        &text,
        r#"causeway_server_availability_ratio{server="idle-01""#,
    );
    assert!(!text.contains(r#"window="1h""#), "{text}");

    // Checks by cause, since the first report (the duplicate counted once).
    let results: Vec<&str> = samples(&text)
        .into_iter()
        .filter(|l| l.starts_with("causeway_results_total"))
        .collect();
    assert_eq!(
        results,
        [
            r#"causeway_results_total{server="db-01",cause="connection_refused"} 1"#,
            r#"causeway_results_total{server="db-01",cause="http_error"} 1"#,
            r#"causeway_results_total{server="db-01",cause="ok"} 4"#,
            r#"causeway_results_total{server="web-01",cause="connection_refused"} 1"#,
            r#"causeway_results_total{server="web-01",cause="ok"} 5"#,
        ]
    );

    // What is open: web-01's incident and resolver condition, db-01's host condition.
    let open: Vec<&str> = samples(&text)
        .into_iter()
        .filter(|l| l.contains("_open"))
        .collect();
    assert_eq!(
        open,
        [
            r#"causeway_incidents_open{server="web-01",cause="connection_refused"} 1"#,
            "causeway_incidents_open_all 1",
            r#"causeway_host_conditions_open{server="db-01",cause="kernel_memory_leak"} 1"#,
            r#"causeway_resolver_conditions_open{server="web-01",cause="dns_upstream_block"} 1"#,
        ]
    );

    assert_described(&text);
    promtool_check(&text);
}

#[tokio::test]
async fn an_empty_collector_has_every_family_and_passes_promtool() {
    let h = Harness::new().await;
    let text = Collector { app: h.app() }.metrics().await;
    assert_has(&text, "causeway_incidents_open_all 0");
    assert_has(
        &text,
        r#"causeway_ingest_reports_total{outcome="stored"} 0"#,
    );
    assert_has(&text, "causeway_ingest_results_total 0");
    assert_has(&text, "causeway_ingest_queue 0");
    assert_has(&text, "causeway_ingest_batches_total 0");
    for family in [
        "causeway_server_up",
        "causeway_server_state",
        "causeway_server_availability_ratio",
        "causeway_results_total",
        "causeway_incidents_open",
        "causeway_incidents_open_all",
        "causeway_host_conditions_open",
        "causeway_resolver_conditions_open",
        "causeway_server_last_report_timestamp_seconds",
        "causeway_ingest_reports_total",
        "causeway_ingest_results_total",
        "causeway_ingest_queue",
        "causeway_ingest_batches_total",
        "causeway_collector_start_time_seconds",
    ] {
        assert!(
            text.contains(&format!("\n# TYPE {family} ")),
            "no family {family}:\n{text}"
        );
    }
    promtool_check(&text);
}

#[test]
fn label_values_and_help_are_escaped() {
    let mut x = Exposition::new();
    x.family(
        "causeway_test_escaping",
        Kind::Gauge,
        "A help text with a backslash \\ and\na line feed.",
    );
    x.sample(
        "causeway_test_escaping",
        &[("server", "web-01"), ("cause", "say \"hi\"\\now\nnext")],
        1_i64,
    );
    x.sample("causeway_test_escaping", &[("cause", "")], 0.25);
    let text = x.finish();
    assert_eq!(
        text,
        "# HELP causeway_test_escaping A help text with a backslash \\\\ and\\na line feed.\n\
         # TYPE causeway_test_escaping gauge\n\
         causeway_test_escaping{server=\"web-01\",cause=\"say \\\"hi\\\"\\\\now\\nnext\"} 1\n\
         causeway_test_escaping{cause=\"\"} 0.25\n"
    );
    // The Prometheus parser reads it back (an unescaped quote or line feed would not parse).
    promtool_check(&text);
    assert_eq!(
        metrics::CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8"
    );
}

#[test]
fn special_float_values_use_the_format_spelling() {
    let mut x = Exposition::new();
    x.family("causeway_test_floats", Kind::Gauge, "Floats.");
    for v in [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        1.0,
        1_795_435_470.123,
    ] {
        x.sample("causeway_test_floats", &[], v);
    }
    x.sample("causeway_test_floats", &[], u64::MAX);
    let text = x.finish();
    assert_eq!(
        samples(&text),
        [
            "causeway_test_floats NaN",
            "causeway_test_floats +Inf",
            "causeway_test_floats -Inf",
            "causeway_test_floats 1",
            "causeway_test_floats 1795435470.123",
            "causeway_test_floats 18446744073709552000",
        ]
    );
}
