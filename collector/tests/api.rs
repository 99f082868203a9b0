//! The HTTP API through the Router (no socket), on a real SQLite file in a temporary directory.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use common::*;
use serde_json::{Value, json};

fn error_of(body: &Value) -> &str {
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {body}"))
}

#[tokio::test]
async fn a_good_report_is_stored_and_a_replay_changes_nothing() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let r = report(
        "web-01",
        NOW - MIN,
        vec![ok_check(NOW - MIN), refused(NOW - MIN)],
    );

    let (status, body) = h.post_report(&token, &r).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"report_id": r.report_id.to_string(), "stored": true})
    );
    assert_eq!(h.count("results").await, 2);
    assert_eq!(h.count("incidents").await, 1);

    let (status, body) = h.post_report(&token, &r).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"report_id": r.report_id.to_string(), "stored": false, "duplicate": true})
    );
    assert_eq!(h.count("reports").await, 1);
    assert_eq!(h.count("results").await, 2);
    let (_, incidents) = h.get("/api/v1/servers/web-01/incidents").await;
    assert_eq!(incidents["incidents"][0]["failed_checks"], 1, "{incidents}");
}

#[tokio::test]
async fn missing_malformed_unknown_and_revoked_tokens_get_401() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let body = serde_json::to_vec(&report("web-01", NOW, vec![ok_check(NOW)])).unwrap();

    let (status, answer) = h.post(None, body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        error_of(&answer).contains("missing Authorization header"),
        "{answer}"
    );

    let (status, answer) = h.post(Some("cw_0000"), body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_of(&answer), "unknown or revoked token");

    let req = Request::post("/api/v1/reports")
        .header(header::AUTHORIZATION, format!("Basic {token}"))
        .body(Body::from(body.clone()))
        .unwrap();
    let response = tower::ServiceExt::oneshot(h.app(), req).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");

    causeway_collector::tokens::revoke(&h.db.write, "web-01", NOW)
        .await
        .unwrap();
    let (status, answer) = h.post(Some(&token), body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(h.count("reports").await, 0);
}

/// A token is looked up once per `tokens::Cache::TTL_MS`: revoked by another process, it
/// still works until then, and not after.
#[tokio::test]
async fn a_revoked_token_stops_working_within_the_cache_ttl() {
    use causeway_collector::tokens::Cache;
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let at = |ms| report("web-01", ms, vec![ok_check(ms)]);
    let (status, _) = h.post_report(&token, &at(NOW)).await;
    assert_eq!(status, StatusCode::OK);
    causeway_collector::tokens::revoke(&h.db.write, "web-01", NOW)
        .await
        .unwrap();
    h.set_now(NOW + Cache::TTL_MS - 1);
    let (status, answer) = h.post_report(&token, &at(NOW + 1)).await;
    assert_eq!(status, StatusCode::OK, "still cached: {answer}");
    h.set_now(NOW + Cache::TTL_MS);
    let (status, answer) = h.post_report(&token, &at(NOW + 2)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
}

#[tokio::test]
async fn a_token_of_another_server_gets_403_naming_both() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    h.token("web-02").await;
    let (status, answer) = h
        .post_report(&token, &report("web-02", NOW, vec![ok_check(NOW)]))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let msg = error_of(&answer);
    assert!(
        msg.contains("\"web-01\"") && msg.contains("\"web-02\""),
        "{msg}"
    );
    assert_eq!(h.count("reports").await, 0);
}

/// A 403 names the report's server cut short: a 900,000-character name is not echoed whole.
#[tokio::test]
async fn a_403_does_not_echo_a_huge_server_name() {
    // The report names its server twice (server, probe.host): over the default body limit.
    let h = Harness::with_max_body(4 << 20).await;
    let token = h.token("web-01").await;
    let huge = "w".repeat(900_000);
    let (status, answer) = h
        .post_report(&token, &report(&huge, NOW, vec![ok_check(NOW)]))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let msg = error_of(&answer);
    assert!(msg.len() < 300, "{} bytes", msg.len());
    assert!(msg.contains("(900000 characters)"), "{msg}");
}

/// A report without checks is refused: stored, it would close the open incident and set the
/// server up, though it says nothing of its health.
#[tokio::test]
async fn a_report_without_checks_is_refused_and_leaves_the_incident_open() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let (status, _) = h
        .post_report(
            &token,
            &report("web-01", NOW - 60_000, vec![refused(NOW - 60_000)]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = h.post_report(&token, &report("web-01", NOW, vec![])).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        error_of(&answer).contains("results: a list of 0"),
        "{answer}"
    );
    let (_, server) = h.get("/api/v1/servers/web-01").await;
    assert_eq!(server["state"], "down", "{server}");
    assert!(!server["open_incident"].is_null(), "{server}");
}

#[tokio::test]
async fn an_oversized_body_gets_413_in_json() {
    let h = Harness::with_max_body(4096).await;
    let token = h.token("web-01").await;
    let checks = (0..100).map(|i| ok_check(NOW - i)).collect();
    let body = serde_json::to_vec(&report("web-01", NOW, checks)).unwrap();
    assert!(body.len() > 4096);
    let (status, answer) = h.post(Some(&token), body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert!(error_of(&answer).contains("4096 bytes"), "{answer}");
    assert_eq!(h.count("reports").await, 0);
}

#[tokio::test]
async fn malformed_json_gets_400_with_serde_s_message() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;

    let (status, answer) = h
        .post(Some(&token), br#"{"schema_version": 1,"#.to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let msg = error_of(&answer);
    assert!(msg.contains("line 1 column"), "{msg}");

    let mut value = serde_json::to_value(report("web-01", NOW, vec![ok_check(NOW)])).unwrap();
    value["results"][0]["started_at_ms"] = json!("yesterday");
    let (status, answer) = h
        .post(Some(&token), serde_json::to_vec(&value).unwrap())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let msg = error_of(&answer);
    assert!(msg.contains("results[0].started_at_ms"), "{msg}");
    assert!(msg.contains("invalid type"), "{msg}");
}

#[tokio::test]
async fn an_invalid_value_gets_422_naming_the_field() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let mut check = bad_gateway(NOW);
    check.status = Some(999);
    let (status, answer) = h
        .post_report(&token, &report("web-01", NOW, vec![check]))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert!(
        error_of(&answer).contains("results[0].status: 999"),
        "{answer}"
    );
    let fields = answer["fields"].as_array().unwrap();
    assert_eq!(fields.len(), 1, "{answer}");
    assert_eq!(fields[0]["field"], "results[0].status");
    assert_eq!(fields[0]["value"], "999");
    assert_eq!(fields[0]["allowed"], "an HTTP status from 100 to 599");
    assert_eq!(h.count("reports").await, 0);
}

#[tokio::test]
async fn consecutive_failures_with_one_cause_make_one_incident() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let t = |n: i64| NOW - 10 * MIN + n * 30_000;
    post_all(
        &h,
        &token,
        &[
            report("web-01", t(0), vec![ok_check(t(0))]),
            report("web-01", t(1), vec![refused(t(1))]),
            report("web-01", t(2), vec![ok_check(t(2)), refused(t(2))]),
            report("web-01", t(3), vec![refused(t(3))]),
        ],
    )
    .await;
    let (_, server) = h.get("/api/v1/servers/web-01").await;
    assert_eq!(server["state"], "down", "{server}");
    assert_eq!(server["current_cause"], "connection_refused");
    assert_eq!(server["open_incident"]["failed_checks"], 3);

    post_all(&h, &token, &[report("web-01", t(4), vec![ok_check(t(4))])]).await;
    let (status, body) = h.get("/api/v1/servers/web-01/incidents").await;
    assert_eq!(status, StatusCode::OK);
    let incidents = body["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "{body}");
    let i = &incidents[0];
    assert_eq!(i["cause"], "connection_refused");
    assert_eq!(
        i["summary"],
        causeway_schema::Cause::ConnectionRefused.summary()
    );
    assert_eq!(i["failed_checks"], 3);
    assert_eq!(i["open"], false);
    assert_eq!(i["started_at_ms"], t(1));
    assert_eq!(i["last_failure_at_ms"], t(3));
    assert_eq!(i["ended_at_ms"], t(4));
    assert!(
        i["explanation"]
            .as_str()
            .unwrap()
            .starts_with("10.77.0.2 refused the connection"),
        "{i}"
    );
    let samples = i["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 2, "{i}");
    assert_eq!(samples[0]["started_at_ms"], t(1));
    assert_eq!(samples[1]["started_at_ms"], t(3));
    assert_eq!(samples[1]["failure"]["kind"], "connect_refused");
    assert_eq!(samples[1]["evidence"], json!({}));

    let (_, server) = h.get("/api/v1/servers/web-01").await;
    assert_eq!(server["state"], "up", "{server}");
    assert_eq!(server["current_cause"], Value::Null);
    assert_eq!(server["open_incident"], Value::Null);
}

#[tokio::test]
async fn a_change_of_cause_closes_the_incident_and_opens_another() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let t = |n: i64| NOW - 10 * MIN + n * 30_000;
    post_all(
        &h,
        &token,
        &[
            report("web-01", t(1), vec![refused(t(1))]),
            report("web-01", t(2), vec![refused(t(2))]),
            // Two 502s outweigh one refusal: the primary cause is http_error.
            report(
                "web-01",
                t(3),
                vec![refused(t(3)), bad_gateway(t(3)), bad_gateway(t(3) + 5)],
            ),
        ],
    )
    .await;
    let (_, body) = h.get("/api/v1/servers/web-01/incidents").await;
    let incidents = body["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 2, "{body}");
    let (newer, older) = (&incidents[0], &incidents[1]);
    assert_eq!(older["cause"], "connection_refused");
    assert_eq!(older["failed_checks"], 2);
    assert_eq!(older["ended_at_ms"], t(3));
    assert_eq!(newer["cause"], "http_error");
    assert_eq!(newer["open"], true);
    assert_eq!(newer["ended_at_ms"], Value::Null);
    assert_eq!(newer["failed_checks"], 2);
    assert_eq!(
        newer["samples"][1]["evidence"]["body_excerpt"],
        "<html>502 Bad Gateway</html>"
    );
    let (_, server) = h.get("/api/v1/servers/web-01").await;
    assert_eq!(server["current_cause"], "http_error");
}

#[tokio::test]
async fn an_old_report_is_counted_but_does_not_touch_incidents() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    post_all(
        &h,
        &token,
        &[
            report("web-01", NOW - 2 * MIN, vec![refused(NOW - 2 * MIN)]),
            // A replay from the spool, older than what was processed: all ok.
            report("web-01", NOW - 5 * MIN, vec![ok_check(NOW - 5 * MIN)]),
        ],
    )
    .await;
    let (_, server) = h.get("/api/v1/servers/web-01").await;
    assert_eq!(server["state"], "down", "{server}");
    assert_eq!(server["last_report_started_at_ms"], NOW - 2 * MIN);
    assert_eq!(server["open_incident"]["failed_checks"], 1, "{server}");
    assert_eq!(
        server["availability"]["1h"],
        json!({"ok": 1, "total": 2, "ratio": 0.5})
    );
    assert_eq!(h.count("incidents").await, 1);
}

#[tokio::test]
async fn availability_per_window_and_server_states() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    h.token("db-01").await;
    let two = |at: i64, ok: usize| {
        let checks = (0..2)
            .map(|i| if i < ok { ok_check(at) } else { refused(at) })
            .collect();
        report("web-01", at, checks)
    };
    post_all(
        &h,
        &token,
        &[
            two(NOW - 10 * DAY, 2),
            two(NOW - 2 * DAY, 0),
            two(NOW - 2 * HOUR, 1),
            two(NOW - 30 * MIN, 2),
        ],
    )
    .await;
    let (status, body) = h.get("/api/v1/servers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["now_ms"], NOW);
    let servers = body["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2);
    let (db, web) = (&servers[0], &servers[1]);
    assert_eq!(db["name"], "db-01");
    assert_eq!(db["state"], "unknown");
    assert_eq!(db["last_seen_ms"], Value::Null);
    assert_eq!(
        db["availability"]["30d"],
        json!({"ok": 0, "total": 0, "ratio": null})
    );

    assert_eq!(web["name"], "web-01");
    assert_eq!(web["state"], "up");
    assert_eq!(web["last_seen_ms"], NOW);
    assert_eq!(web["interval_s"], 30);
    assert_eq!(web["spool_dropped_total"], 2);
    let a = &web["availability"];
    assert_eq!(a["1h"], json!({"ok": 2, "total": 2, "ratio": 1.0}));
    assert_eq!(a["24h"], json!({"ok": 3, "total": 4, "ratio": 0.75}));
    assert_eq!(a["7d"], json!({"ok": 3, "total": 6, "ratio": 0.5}));
    assert_eq!(a["30d"], json!({"ok": 5, "total": 8, "ratio": 0.625}));

    // 3 × 30 s + 10 s without a report is still fresh; a millisecond more is stale.
    h.set_now(NOW + 100_000);
    let (_, web) = h.get("/api/v1/servers/web-01").await;
    assert_eq!(web["state"], "up");
    h.set_now(NOW + 100_001);
    let (_, web) = h.get("/api/v1/servers/web-01").await;
    assert_eq!(web["state"], "stale");

    // `why` over the last 3 hours.
    h.set_now(NOW);
    let since = NOW - 3 * HOUR;
    let (status, why) = h
        .get(&format!("/api/v1/servers/web-01/why?since_ms={since}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{why}");
    assert_eq!(
        why["availability"],
        json!({"ok": 3, "total": 4, "ratio": 0.75})
    );
    assert_eq!(why["since_ms"], since);
    assert_eq!(why["server"]["name"], "web-01");
    // One incident: refused from NOW - 2d, extended at NOW - 2h, closed at NOW - 30m.
    let incidents = why["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "{why}");
    assert_eq!(incidents[0]["ended_at_ms"], NOW - 30 * MIN);
}

#[tokio::test]
async fn an_unknown_server_gets_404_with_the_closest_names() {
    let h = Harness::new().await;
    for name in ["web-01", "web-02", "db-01", "mail"] {
        h.token(name).await;
    }
    for path in [
        "/api/v1/servers/web01",
        "/api/v1/servers/web01/results",
        "/api/v1/servers/web01/incidents",
        "/api/v1/servers/web01/why",
        "/api/v1/servers/web01/resolvers",
    ] {
        let (status, body) = h.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(
            body,
            json!({"error": "unknown server \"web01\"", "closest": ["web-01", "web-02"]}),
            "{path}"
        );
    }
    let (status, body) = h.get("/api/v1/nothing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_of(&body), "no route for GET /api/v1/nothing");
}

#[tokio::test]
async fn results_newest_first_with_since_and_limit_validated() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let t = |n: i64| NOW - 10 * MIN + n * 30_000;
    post_all(
        &h,
        &token,
        &[
            report("web-01", t(0), vec![ok_check(t(0))]),
            report("web-01", t(1), vec![bad_gateway(t(1))]),
            report("web-01", t(2), vec![ok_check(t(2))]),
        ],
    )
    .await;
    let (status, body) = h.get("/api/v1/servers/web-01/results").await;
    assert_eq!(status, StatusCode::OK);
    let starts: Vec<&Value> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["started_at_ms"])
        .collect();
    assert_eq!(starts, [t(2), t(1), t(0)]);
    let failed = &body["results"][1];
    assert_eq!(failed["ok"], false);
    assert_eq!(failed["status"], 502);
    assert_eq!(failed["cause"], "http_error");
    assert_eq!(
        failed["explanation"],
        "10.77.0.2 answered HTTP 502, expected 200"
    );
    assert_eq!(failed["evidence"]["expected_status"], 200);
    assert_eq!(failed["timings"]["total_ms"], 3.1);
    assert_eq!(body["results"][0]["evidence"], Value::Null);

    let (_, body) = h
        .get(&format!(
            "/api/v1/servers/web-01/results?since_ms={}&limit=5",
            t(1)
        ))
        .await;
    assert_eq!(body["results"].as_array().unwrap().len(), 2, "{body}");
    let (_, body) = h.get("/api/v1/servers/web-01/results?limit=1").await;
    assert_eq!(body["results"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["results"][0]["started_at_ms"], t(2));

    for (query, needle) in [
        (
            "limit=0",
            r#"limit: "0" is not allowed; expected a whole number from 1 to 1000"#,
        ),
        ("limit=1001", r#"limit: "1001""#),
        ("limit=ten", r#"limit: "ten""#),
        ("since_ms=-5", r#"since_ms: "-5" is not allowed"#),
        ("since_ms=yesterday", r#"since_ms: "yesterday""#),
    ] {
        let (status, body) = h
            .get(&format!("/api/v1/servers/web-01/results?{query}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(error_of(&body).contains(needle), "{query}: {body}");
    }
    let (status, body) = h.get("/api/v1/servers/web-01/why?since_ms=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of(&body).contains("since_ms"), "{body}");
}

#[tokio::test]
async fn health_and_page() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let mut check = refused(NOW);
    check.diagnosis.as_mut().unwrap().explanation = "<img src=x onerror=alert(1)>".into();
    post_all(&h, &token, &[report("web-01", NOW, vec![check])]).await;

    let (status, body) = h.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, Value::String("ok".into()));

    let (status, body) = h.get("/").await;
    assert_eq!(status, StatusCode::OK);
    let html = body.as_str().unwrap();
    assert!(
        html.contains("<a href=\"/servers/web-01\">web-01</a>"),
        "{html}"
    );
    assert!(html.contains("connection_refused"), "{html}");
    // The explanation is on the server's page, as text.
    let (status, body) = h.get("/servers/web-01").await;
    assert_eq!(status, StatusCode::OK);
    let html = body.as_str().unwrap();
    assert!(
        html.contains("&lt;img src=x onerror=alert(1)&gt;"),
        "{html}"
    );
    assert!(!html.contains("<img"), "{html}");
}

#[tokio::test]
async fn the_database_never_holds_a_token_s_text() {
    let h = Harness::sqlite().await;
    let token = h.token("web-01").await;
    let path = h.dir.path().join("collector.db");
    h.db.close().await;
    let mut bytes = std::fs::read(&path).unwrap();
    // The WAL is checkpointed on close; read it too in case it is not.
    if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
        bytes.extend(wal);
    }
    let hex = &token[3..];
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(token.as_bytes()), "token text stored");
    assert!(!contains(hex.as_bytes()), "token hex stored");
    assert!(!contains(&hex.as_bytes()[..16]), "part of the token stored");
    let hash = causeway_collector::tokens::hash(&token);
    assert!(contains(hash.as_bytes()), "its hash is what is stored");
}

#[tokio::test]
async fn the_database_is_durable_and_checked() {
    let h = Harness::sqlite().await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&h.db.write)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    // 2 = FULL: an acknowledged report survives a power loss.
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&h.db.write)
        .await
        .unwrap();
    assert_eq!(sync, 2);
    let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&h.db.write)
        .await
        .unwrap();
    assert_eq!(fk, 1);
    // The read pool cannot write.
    let write = sqlx::query("INSERT INTO servers (name, created_at_ms) VALUES ('x', 0)")
        .execute(&h.db.read)
        .await;
    assert!(write.is_err());
}

/// A client that gives up while its report waits for the write lock (here another process
/// holds it, as a `token add` may) must not wedge ingest: the report is still stored (the
/// writer does the work whether or not anyone waits for the answer), and the next one too.
#[tokio::test]
async fn a_client_that_gives_up_during_a_write_does_not_wedge_ingest() {
    use sqlx::Connection;
    let h = Harness::sqlite().await;
    let token = h.token("web-01").await;
    let mut other = another_process(&h).await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();

    let first = report("web-01", NOW - MIN, vec![ok_check(NOW - MIN)]);
    let request = report_request(Some(&token), serde_json::to_vec(&first).unwrap());
    // The client gives up: the request's future is dropped while its write waits.
    let gave_up = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        send(h.app(), request),
    )
    .await;
    assert!(gave_up.is_err(), "the write did not wait for the lock");
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();

    let second = report("web-01", NOW, vec![ok_check(NOW)]);
    let (status, body) = h.post_report(&token, &second).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The first report went in too: the client left, the write did not.
    let (status, body) = h.post_report(&token, &first).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["duplicate"], true, "{body}");
}

/// Reports that wait together are stored in one batch, each in its own savepoint: one whose
/// statements fail is answered 500 and undone, and the others of its batch are kept. A
/// trigger stands in for the failure (a constraint, a value SQLite refuses). Another
/// process's write lock holds the writer on a first report while three more queue up behind
/// it: those three are the next batch.
#[tokio::test]
async fn a_report_that_fails_to_store_costs_only_itself_in_its_batch() {
    let h = Harness::sqlite().await;
    let token = h.token("web-01").await;
    let mut other = another_process(&h).await;
    sqlx::query(
        "CREATE TRIGGER refuse_599 BEFORE INSERT ON results WHEN NEW.status = 599
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    .execute(&mut other)
    .await
    .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();

    let post = |r: &causeway_schema::Report| {
        let request = report_request(Some(&token), serde_json::to_vec(r).unwrap());
        tokio::spawn(send(h.app(), request))
    };
    let first = post(&report(
        "web-01",
        NOW - 2 * MIN,
        vec![ok_check(NOW - 2 * MIN)],
    ));
    // Its batch begun, the writer waits for the lock.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while h.db.reports.batches() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no batch begun");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let three: Vec<_> = (0..3)
        .map(|i| {
            let at = NOW - MIN + i * 1_000;
            let mut check = ok_check(at);
            if i == 1 {
                check.status = Some(599);
            }
            post(&report("web-01", at, vec![check]))
        })
        .collect();
    queued(&h, 3).await;
    let (_, metrics) = h.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default();
    assert!(
        metrics.contains("\ncauseway_ingest_queue 3\n"),
        "the writer's queue on /metrics:\n{metrics}"
    );
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    assert_eq!(first.await.unwrap().0, StatusCode::OK);
    let mut answers = Vec::new();
    for s in three {
        answers.push(s.await.unwrap().0);
    }
    assert_eq!(
        answers,
        [
            StatusCode::OK,
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::OK
        ]
    );
    assert_eq!(h.count("reports").await, 3);
    assert_eq!(h.count("results").await, 3);
    assert_eq!(
        scalar_i64(
            &h,
            "SELECT CAST(sum(checks_total) AS BIGINT) FROM availability_days"
        )
        .await,
        3,
        "the failed report's rollups are undone with it"
    );
    // The writer goes on, from what the database holds.
    let next = report("web-01", NOW, vec![refused(NOW)]);
    let (status, body) = h.post_report(&token, &next).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, server) = h.get("/api/v1/servers/web-01").await;
    assert_eq!(server["state"], "down", "{server}");
}

/// A connection to the harness's database as another process (a `token add`) would open it.
async fn another_process(h: &Harness) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    let url = format!("sqlite://{}", h.dir.path().join("collector.db").display());
    sqlx::SqliteConnection::connect(&url).await.unwrap()
}

/// Waits (at most 10 s) until the writer's queue holds `n`.
async fn queued(h: &Harness, n: usize) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while h.db.reports.queued() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} queued, not {n}",
            h.db.reports.queued()
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

async fn scalar_i64(h: &Harness, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&h.db.read).await.unwrap()
}

/// A newer probe's report, with a cause, a contributing cause, a failure kind and a DNS
/// outcome this collector does not know: stored (a 400 would make the probe set it aside for
/// good, and a rolling upgrade lose data), and shown as it came.
#[tokio::test]
async fn a_newer_probes_ids_are_stored_and_shown_as_they_came() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let at = NOW - MIN;
    let mut newer = report("web-01", at, vec![refused(at)]);
    newer.resolutions = vec![resolution(vec![answering("10.0.0.53")])];
    let mut body = serde_json::to_value(&newer).unwrap();
    let check = &mut body["results"][0];
    check["diagnosis"]["cause"] = json!("tls_certificate_expired");
    check["diagnosis"]["contributing"] = json!(["clock_skew", "tls_intermediate_missing"]);
    check["failure"]["kind"] = json!("tls_alert");
    body["resolutions"][0]["resolvers"][0]["queries"][0]["outcome"] = json!("malformed");
    let (status, answer) = h
        .post(Some(&token), serde_json::to_vec(&body).unwrap())
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["stored"], true);

    let (_, server) = h.get("/api/v1/servers/web-01").await;
    assert_eq!(server["state"], "down", "{server}");
    assert_eq!(
        server["open_incident"]["cause"], "tls_certificate_expired",
        "{server}"
    );
    let (_, results) = h.get("/api/v1/servers/web-01/results").await;
    let stored = &results["results"][0];
    assert_eq!(stored["cause"], "tls_certificate_expired", "{stored}");
    assert_eq!(stored["failure"]["kind"], "tls_alert", "{stored}");
    assert_eq!(
        stored["contributing"],
        json!(["clock_skew", "tls_intermediate_missing"]),
        "{stored}"
    );
    let (status, page) = h.get("/servers/web-01").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.as_str().unwrap().contains("tls_certificate_expired"),
        "{page}"
    );

    // An id that is not an id at all is still refused, naming it.
    let mut bad = body.clone();
    bad["report_id"] = json!(uuid::Uuid::now_v7());
    bad["results"][0]["diagnosis"]["cause"] = json!("<img src=x>");
    let (status, answer) = h
        .post(Some(&token), serde_json::to_vec(&bad).unwrap())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let error = error_of(&answer);
    assert!(
        error.contains("cause id \"<img src=x>\" is not allowed"),
        "{error}"
    );
}
