//! Storage over time: a database made before migration 0008 reads the same after it, retention
//! prunes a long history to its settings and keeps what the pages and `why` need, and a report
//! older than the raw retention is acknowledged without being stored.

mod common;

use std::time::Duration;

use axum::http::StatusCode;
use causeway_collector::db::Db;
use causeway_collector::ingest::Retention;
use common::*;
use serde_json::Value;

/// Prunes until a whole pass finds nothing more; the rows deleted.
async fn prune_all(h: &Harness, retention: Retention) -> u64 {
    let mut rows = 0;
    for _ in 0..10_000 {
        let pruned = h.db.reports.prune(retention, NOW).await.unwrap();
        rows += pruned.rows;
        if pruned.done {
            return rows;
        }
    }
    panic!("pruning did not finish in 10,000 steps");
}

async fn scalar(h: &Harness, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&h.db.read).await.unwrap()
}

async fn get_ok(h: &Harness, path: &str) -> Value {
    let (status, body) = h.get(path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// 40 days of web-01, a report an hour with one check; refused for three hours on day 35 and
/// on day 5 ago (each one incident), its resolvers and host in every report.
fn forty_days() -> Vec<causeway_schema::Report> {
    let start = NOW - 40 * DAY;
    (0..40 * 24)
        .map(|h| {
            let at = start + h * HOUR;
            let day_ago = (NOW - at) / DAY;
            let failed = (day_ago == 35 || day_ago == 5) && (NOW - at) % DAY < 3 * HOUR;
            let check = if failed { refused(at) } else { ok_check(at) };
            let mut r = resolved("web-01", at, vec![answering("10.0.0.53")]);
            r.results = vec![check];
            with_host(r, &ProbeHost::at(at))
        })
        .collect()
}

#[tokio::test]
async fn retention_prunes_a_long_history_and_keeps_rollups_incidents_and_their_evidence() {
    let mut h = Harness::new().await;
    // Stored as it comes; then pruned to the settings below.
    h.retention = KEEP_ALL;
    let token = h.token("web-01").await;
    let history = forty_days();
    post_all(&h, &token, &history).await;
    let before = get_ok(&h, "/api/v1/servers/web-01").await;
    let why_path = format!("/api/v1/servers/web-01/why?since_ms={}", NOW - 40 * DAY);
    let why_before = get_ok(&h, &why_path).await;
    assert_eq!(why_before["incidents"].as_array().unwrap().len(), 2);

    let rows = prune_all(&h, Retention::default()).await;
    assert!(rows > 0, "nothing pruned");
    // Healthy checks and their reports older than 14 days are gone; the failed ones stay.
    let raw_cut = NOW - 14 * DAY;
    let old_healthy =
        format!("SELECT count(*) FROM results WHERE ok = 1 AND started_at_ms < {raw_cut}");
    assert_eq!(scalar(&h, &old_healthy).await, 0);
    let old_failed =
        format!("SELECT count(*) FROM results WHERE ok = 0 AND started_at_ms < {raw_cut}");
    assert_eq!(scalar(&h, &old_failed).await, 3);
    // The ids of the failed checks' reports stay with them; the rest went with their checks.
    let old_reports = format!(
        "SELECT count(*) FROM reports WHERE uuid IN
             (SELECT report_uuid FROM results WHERE started_at_ms < {raw_cut})"
    );
    assert_eq!(scalar(&h, &old_reports).await, 3);
    assert_eq!(h.count("reports").await, 14 * 24 + 3);
    let recent = format!("SELECT count(*) FROM results WHERE started_at_ms >= {raw_cut}");
    assert_eq!(scalar(&h, &recent).await, 14 * 24);
    let old_host =
        format!("SELECT count(*) FROM host_observations WHERE started_at_ms < {raw_cut}");
    assert_eq!(scalar(&h, &old_host).await, 0);
    // A resolver's newest answer stays whatever its age; its older answers go.
    assert_eq!(scalar(&h, "SELECT count(*) FROM resolver_changes").await, 1);
    let minutes_cut = NOW - DAY;
    let old_minutes =
        format!("SELECT count(*) FROM availability_minutes WHERE minute_ms < {minutes_cut}");
    assert_eq!(scalar(&h, &old_minutes).await, 0);

    // Availability and incidents read the same: rollups and incidents are kept.
    let after = get_ok(&h, "/api/v1/servers/web-01").await;
    assert_eq!(after["availability"], before["availability"]);
    let why_after = get_ok(&h, &why_path).await;
    assert_eq!(why_after["availability"], why_before["availability"]);
    assert_eq!(why_after["incidents"], why_before["incidents"]);
    let old = &why_after["incidents"][1];
    assert_eq!(old["failed_checks"], 3, "{old}");
    assert_eq!(
        old["samples"][0]["cause"], "connection_refused",
        "the evidence of a 35-day-old incident is kept for 90 days: {old}"
    );
    // The server's page still draws its days and incidents.
    let (status, page) = h.get("/servers/web-01").await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().unwrap();
    assert!(page.contains("connection_refused"), "{page}");

    // Shorter settings: evidence and hours beyond them go too; the days stay for ever.
    let days_before = scalar(
        &h,
        "SELECT CAST(sum(checks_total) AS BIGINT) FROM availability_days",
    )
    .await;
    let short = Retention {
        raw: Duration::from_secs(86_400),
        evidence: Duration::from_secs(2 * 86_400),
        hourly: Duration::from_secs(10 * 86_400),
    };
    prune_all(&h, short).await;
    assert_eq!(
        scalar(&h, "SELECT count(*) FROM results WHERE ok = 0").await,
        0,
        "failed checks older than 2 days are gone"
    );
    assert_eq!(h.count("failures").await, 0, "with their evidence");
    let old_hours = format!(
        "SELECT count(*) FROM availability_hours WHERE hour_ms < {}",
        NOW - 10 * DAY - HOUR
    );
    assert_eq!(scalar(&h, &old_hours).await, 0);
    assert_eq!(
        scalar(
            &h,
            "SELECT CAST(sum(checks_total) AS BIGINT) FROM availability_days"
        )
        .await,
        days_before
    );
    // The incident of day 5 is kept (hourly: 10 days), its samples gone with the evidence;
    // the one of day 35 is gone.
    let why = get_ok(&h, &why_path).await;
    let incidents = why["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "{why}");
    assert_eq!(incidents[0]["samples"], Value::Array(vec![]), "{why}");
}

#[tokio::test]
async fn a_report_older_than_the_raw_retention_is_acknowledged_not_stored() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let old = report("web-01", NOW - 15 * DAY, vec![ok_check(NOW - 15 * DAY)]);
    let (status, body) = h.post_report(&token, &old).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["stored"], false, "{body}");
    assert_eq!(body["expired"], true, "{body}");
    assert_eq!(h.count("reports").await, 0);
    // Within the retention it is stored as any report.
    let kept = report("web-01", NOW - 13 * DAY, vec![ok_check(NOW - 13 * DAY)]);
    let (_, body) = h.post_report(&token, &kept).await;
    assert_eq!(body["stored"], true, "{body}");
}

/// A database written by the collector before migration 0008 (its SQL as ingest wrote it),
/// opened by this one: the API answers as it did.
#[tokio::test]
async fn migration_0008_keeps_reports_results_incidents_resolvers_and_host() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let old = database_before(&path, 8).await;
    let at = NOW - HOUR;
    for sql in [
        "INSERT INTO servers (id, name, created_at_ms, last_started_at_ms, last_received_at_ms,
                              interval_s, last_checks_total, last_checks_ok)
         VALUES (1, 'web-01', 0, ?1, ?1, 30, 1, 0)",
        "INSERT INTO reports VALUES ('6f1c7ad2-7a34-4c1e-9c39-1b2a3c4d5e6f', 1, ?1 - 30000, ?1,
                                     'web-01', '0.1.0', 1, 1)",
        "INSERT INTO reports VALUES ('0b7e2d9a-1c3f-4a5b-8d6e-7f8091a2b3c4', 1, ?1, ?1,
                                     'web-01', '0.1.0', 1, 0)",
        "INSERT INTO results (id, report_id, server_id, canary, url, address, started_at_ms, ok,
                              status, total_ms, resolve_ms, connect_ms, first_byte_ms)
         VALUES (1, '6f1c7ad2-7a34-4c1e-9c39-1b2a3c4d5e6f', 1, 'site', 'http://canary.test/',
                 '10.77.0.2', ?1 - 30000, 1, 200, 3.1, 1.2, 0.4, 2.0)",
        "INSERT INTO results (id, report_id, server_id, canary, url, address, started_at_ms, ok,
                              cause, explanation, failure_kind, failure_message, total_ms,
                              evidence)
         VALUES (2, '0b7e2d9a-1c3f-4a5b-8d6e-7f8091a2b3c4', 1, 'site', 'http://canary.test/',
                 '10.77.0.2', ?1, 0, 'connection_refused', 'nothing listens', 'connect_refused',
                 'Connection refused (os error 111)', 0.5, '{}')",
        "INSERT INTO incidents (server_id, cause, started_at_ms, last_failure_at_ms,
                                failed_checks, first_result_id, last_result_id, explanation)
         VALUES (1, 'connection_refused', ?1, ?1, 1, 2, 2, 'nothing listens')",
        "INSERT INTO resolvers (id, server_id, canary, resolver, address, name,
                                first_seen_at_ms, last_seen_at_ms)
         VALUES (1, 1, 'site', 'system', '10.0.0.53:53', 'canary.test', ?1 - 30000, ?1)",
        "INSERT INTO resolver_observations VALUES
             (1, '6f1c7ad2-7a34-4c1e-9c39-1b2a3c4d5e6f', ?1 - 30000, NULL, 'A answer', 1.5),
             (1, '0b7e2d9a-1c3f-4a5b-8d6e-7f8091a2b3c4', ?1, 'dns_upstream_block', 'A refused',
              2.5)",
        "INSERT INTO host_observations (server_id, report_id, started_at_ms, boot_id, uptime_s,
                                        mem_total_kb, mem_available_kb)
         VALUES (1, '0b7e2d9a-1c3f-4a5b-8d6e-7f8091a2b3c4', ?1, 'boot-1', 100, 1000, 500)",
        "INSERT INTO availability_hours VALUES (1, ?1 - ?1 % 3600000 - 3600000, 1, 1)",
        "INSERT INTO availability_days VALUES (1, ?1 - ?1 % 86400000, 2, 1)",
    ] {
        sqlx::query(sql).bind(at).execute(&old).await.unwrap();
    }
    old.close().await;

    let db = Db::open(&path).await.unwrap();
    let h = Harness::with_db(dir, db);
    let results = get_ok(&h, "/api/v1/servers/web-01/results").await;
    let results = results["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let (failed, healthy) = (&results[0], &results[1]);
    assert_eq!(healthy["report_id"], "6f1c7ad2-7a34-4c1e-9c39-1b2a3c4d5e6f");
    assert_eq!(healthy["canary"], "site");
    assert_eq!(healthy["url"], "http://canary.test/");
    assert_eq!(healthy["timings"]["total_ms"], 3.1);
    assert_eq!(healthy["timings"]["connect_ms"], 0.4);
    assert_eq!(failed["cause"], "connection_refused");
    assert_eq!(failed["failure"]["kind"], "connect_refused");

    let why = get_ok(
        &h,
        &format!("/api/v1/servers/web-01/why?since_ms={}", at - DAY),
    )
    .await;
    assert_eq!(why["incidents"][0]["samples"][0]["id"], 2, "{why}");
    let resolvers = get_ok(
        &h,
        &format!("/api/v1/servers/web-01/resolvers?since_ms={}", at - DAY),
    )
    .await;
    let r = &resolvers["resolvers"][0];
    assert_eq!(r["observations"], 2, "{resolvers}");
    assert_eq!(r["healthy"], 1, "{resolvers}");
    assert_eq!(r["last"]["outcome"], "A refused", "{resolvers}");
    let host = get_ok(&h, "/api/v1/servers/web-01/host").await;
    assert_eq!(
        host["latest"]["report_id"], "0b7e2d9a-1c3f-4a5b-8d6e-7f8091a2b3c4",
        "{host}"
    );

    // And the writer goes on from there: the next report extends the open incident.
    let token = h.token("web-01").await;
    post_all(
        &h,
        &token,
        &[report("web-01", at + 30_000, vec![refused(at + 30_000)])],
    )
    .await;
    let why = get_ok(
        &h,
        &format!("/api/v1/servers/web-01/why?since_ms={}", at - DAY),
    )
    .await;
    assert_eq!(why["incidents"][0]["failed_checks"], 2, "{why}");
}
