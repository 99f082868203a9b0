//! Resolver observations and conditions through the HTTP app (no socket), on a real SQLite
//! file: grouping, health over a window, the endpoints' errors, and the fixtures `probectl`'s
//! text is tested on.

mod common;

use axum::http::StatusCode;
use causeway_schema::{Cause, Report, ResolverOutcome};
use common::*;
use serde_json::{Value, json};

const A: &str = "10.0.0.53";
const B: &str = "10.0.0.54";

/// What a name server does in a cycle: [`answering`], [`refusing`], [`silent`].
type Behaviour = fn(&str) -> ResolverOutcome;

/// Reports of web-01, one per `(cycle, what 10.0.0.54 does)`, 10.0.0.53 answering in each.
fn b_says(cycles: &[(i64, Behaviour)]) -> Vec<Report> {
    cycles
        .iter()
        .map(|&(n, b)| resolved("web-01", cycle(n), vec![answering(A), b(B)]))
        .collect()
}

async fn resolvers_of(h: &Harness, query: &str) -> Value {
    let (status, body) = h
        .get(&format!("/api/v1/servers/web-01/resolvers{query}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The health entry of name server `label` in a `resolvers` answer.
fn health<'a>(body: &'a Value, label: &str) -> &'a Value {
    body["resolvers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resolver"] == label)
        .unwrap_or_else(|| panic!("no {label} in {body}"))
}

#[tokio::test]
async fn a_refused_resolver_makes_one_condition_until_it_answers_again() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    post_all(
        &h,
        &token,
        &b_says(&[(0, answering), (1, refusing), (2, refusing)]),
    )
    .await;
    let body = resolvers_of(&h, "").await;
    let open = &health(&body, B)["open_condition"];
    assert_eq!(open["cause"], "dns_upstream_block", "{body}");
    assert_eq!(open["open"], true);
    assert_eq!(open["observations"], 2);
    assert_eq!(open["last_seen_at_ms"], cycle(2));

    post_all(&h, &token, &b_says(&[(3, refusing), (4, answering)])).await;
    // The canary answered through 10.0.0.53 all along: no incident, the server is up.
    let (_, server) = h.get("/api/v1/servers/web-01").await;
    assert_eq!(server["state"], "up", "{server}");
    assert_eq!(h.count("incidents").await, 0);
    assert_eq!(observations(&h).await, 10);
    // Kept as changes: A answered all along (one); B answered, refused three times, answered.
    assert_eq!(h.count("resolver_changes").await, 4);

    let body = resolvers_of(&h, "").await;
    assert_eq!(body["server"], "web-01");
    assert_eq!(body["now_ms"], NOW);
    assert_eq!(body["since_ms"], NOW - DAY);
    let conditions = body["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 1, "{body}");
    let c = &conditions[0];
    assert_eq!(c["canary"], "site");
    assert_eq!(c["name"], NAME);
    assert_eq!(c["resolver"], B);
    assert_eq!(c["address"], "10.0.0.54:53");
    assert_eq!(c["cause"], "dns_upstream_block");
    assert_eq!(c["summary"], Cause::DnsUpstreamBlock.summary());
    assert_eq!(c["started_at_ms"], cycle(1));
    assert_eq!(c["last_seen_at_ms"], cycle(3));
    assert_eq!(c["ended_at_ms"], cycle(4));
    assert_eq!(c["open"], false);
    assert_eq!(c["observations"], 3);
    let explanation = c["explanation"].as_str().unwrap();
    assert!(
        explanation.starts_with("10.0.0.54 refuses our queries for canary.test"),
        "{explanation}"
    );
    assert_eq!(c["evidence"]["queries"][0]["outcome"], "refused");
    assert_eq!(
        c["last_evidence"]["reachability"]["icmp"]["outcome"],
        "reply"
    );

    let a = health(&body, A);
    assert_eq!(a["observations"], 5, "{a}");
    assert_eq!(a["healthy"], 5);
    assert_eq!(a["ratio"], 1.0);
    assert_eq!(a["causes"], json!({}));
    assert_eq!(
        a["last"],
        json!({
            "started_at_ms": cycle(4),
            "cause": null,
            "outcome": "A answer 10.77.0.2 ttl 30, AAAA no_data",
            "elapsed_ms": 1.2
        })
    );
    assert_eq!(a["open_condition"], Value::Null);
    let b = health(&body, B);
    assert_eq!(b["observations"], 5, "{b}");
    assert_eq!(b["healthy"], 2);
    assert_eq!(b["ratio"], 0.4);
    assert_eq!(b["causes"], json!({"dns_upstream_block": 3}));
    assert_eq!(b["open_condition"], Value::Null);

    let (_, why) = h.get("/api/v1/servers/web-01/why").await;
    assert_eq!(why["resolver_conditions"], json!(conditions), "{why}");
}

#[tokio::test]
async fn a_change_of_cause_closes_the_condition_and_opens_another() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    post_all(
        &h,
        &token,
        &b_says(&[(1, refusing), (2, refusing), (3, silent)]),
    )
    .await;
    let body = resolvers_of(&h, "").await;
    let conditions = body["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 2, "{body}");
    let (newer, older) = (&conditions[0], &conditions[1]);
    assert_eq!(older["cause"], "dns_upstream_block");
    assert_eq!(older["observations"], 2);
    assert_eq!(older["last_seen_at_ms"], cycle(2));
    assert_eq!(older["ended_at_ms"], cycle(3));
    assert_eq!(newer["cause"], "dns_resolver_unreachable");
    assert_eq!(newer["open"], true);
    assert_eq!(newer["ended_at_ms"], Value::Null);
    assert_eq!(newer["started_at_ms"], cycle(3));
    assert_eq!(newer["observations"], 1);
    let b = health(&body, B);
    assert_eq!(b["open_condition"], *newer);
    assert_eq!(
        b["causes"],
        json!({"dns_upstream_block": 2, "dns_resolver_unreachable": 1})
    );
    assert_eq!(b["last"]["cause"], "dns_resolver_unreachable");
    assert_eq!(b["last"]["elapsed_ms"], 1000.0);
}

#[tokio::test]
async fn a_resolver_taken_out_of_the_config_has_its_condition_closed() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    post_all(
        &h,
        &token,
        &[
            resolved("web-01", cycle(1), vec![answering(A), refusing(B)]),
            resolved("web-01", cycle(2), vec![answering(A)]),
        ],
    )
    .await;
    let body = resolvers_of(&h, "").await;
    let conditions = body["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 1, "{body}");
    assert_eq!(conditions[0]["ended_at_ms"], cycle(2));
    assert_eq!(conditions[0]["observations"], 1);
    // Still listed: it was observed in the window.
    let b = health(&body, B);
    assert_eq!(b["open_condition"], Value::Null);
    assert_eq!(b["last"]["started_at_ms"], cycle(1));
    assert_eq!(health(&body, A)["observations"], 2);
}

#[tokio::test]
async fn an_old_report_is_observed_but_leaves_conditions_alone() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    // Then replays from the spool, older than what was processed; the last one under an old
    // name of the canary.
    let mut reports = b_says(&[(2, refusing), (0, silent), (1, answering)]);
    reports[2].resolutions[0].name = "old.canary.test".into();
    post_all(&h, &token, &reports).await;
    let body = resolvers_of(&h, "").await;
    let conditions = body["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 1, "{body}");
    assert_eq!(conditions[0]["cause"], "dns_upstream_block");
    assert_eq!(conditions[0]["open"], true);
    assert_eq!(conditions[0]["observations"], 1);
    assert_eq!(conditions[0]["started_at_ms"], cycle(2));
    let b = health(&body, B);
    assert_eq!(b["observations"], 3, "{b}");
    assert_eq!(b["healthy"], 1);
    assert_eq!(
        b["causes"],
        json!({"dns_upstream_block": 1, "dns_resolver_unreachable": 1})
    );
    // The newest observation by time, and the name of the newest report.
    assert_eq!(b["last"]["started_at_ms"], cycle(2));
    assert_eq!(b["last"]["cause"], "dns_upstream_block");
    assert_eq!(b["name"], NAME);
}

#[tokio::test]
async fn a_replay_or_a_repeated_resolver_counts_once() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let mut r = b_says(&[(1, refusing)]).remove(0);
    let repeated = r.resolutions[0].resolvers[1].clone();
    r.resolutions[0].resolvers.push(repeated);
    post_all(&h, &token, std::slice::from_ref(&r)).await;
    let (status, answer) = h.post_report(&token, &r).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["duplicate"], true, "{answer}");

    assert_eq!(h.count("resolvers").await, 2);
    assert_eq!(observations(&h).await, 2);
    let body = resolvers_of(&h, "").await;
    assert_eq!(health(&body, B)["observations"], 1, "{body}");
    assert_eq!(body["conditions"][0]["observations"], 1, "{body}");
}

#[tokio::test]
async fn every_server_is_listed_and_the_window_counts() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    h.token("db-01").await;
    post_all(&h, &token, &dns_story()).await;

    let (status, body) = h.get("/api/v1/resolvers").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["since_ms"], NOW - DAY);
    let servers = body["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{body}");
    assert_eq!(servers[0], json!({"server": "db-01", "resolvers": []}));
    assert_eq!(servers[1]["server"], "web-01");
    let web = &servers[1];
    assert_eq!(health(web, A)["observations"], 6, "{web}");
    assert_eq!(health(web, B)["healthy"], 2, "{web}");

    // Counts are kept per hour: a window counts from the hour it starts in. Every cycle is in
    // the hour before NOW's, so a window from cycle 3 still counts all six of 10.0.0.54's
    // observations; the condition that ended at cycle 2 is outside it all the same.
    let (_, body) = h
        .get(&format!("/api/v1/resolvers?since_ms={}", cycle(3)))
        .await;
    let b = health(&body["servers"][1], B);
    assert_eq!(b["observations"], 6, "{b}");
    assert_eq!(b["healthy"], 2, "{b}");
    let body = resolvers_of(&h, &format!("?since_ms={}", cycle(3))).await;
    assert_eq!(body["conditions"].as_array().unwrap().len(), 1, "{body}");

    // From NOW's hour on, after the last report, only the resolver with an open condition
    // shows, with no observations in the window.
    let this_hour = NOW - NOW % HOUR;
    assert!(this_hour > cycle(5));
    let body = resolvers_of(&h, &format!("?since_ms={this_hour}")).await;
    let listed = body["resolvers"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{body}");
    assert_eq!(listed[0]["resolver"], B);
    assert_eq!(listed[0]["observations"], 0);
    assert_eq!(listed[0]["ratio"], Value::Null);
    assert_eq!(listed[0]["open_condition"]["open"], true);
}

/// Every observation stored, from the hourly counts.
async fn observations(h: &Harness) -> i64 {
    sqlx::query_scalar("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM resolver_hours")
        .fetch_one(&h.db.read)
        .await
        .unwrap()
}

#[tokio::test]
async fn unknown_servers_and_bad_windows_are_refused() {
    let h = Harness::new().await;
    h.token("web-01").await;
    let (status, body) = h.get("/api/v1/servers/web01/resolvers").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": "unknown server \"web01\"", "closest": ["web-01"]})
    );
    for path in [
        "/api/v1/resolvers?since_ms=-1",
        "/api/v1/servers/web-01/resolvers?since_ms=-1",
    ] {
        let (status, body) = h.get(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            body["error"],
            "since_ms: \"-1\" is not allowed; expected milliseconds since the Unix epoch, a \
             whole number 0 or more",
            "{path}"
        );
    }
}

#[tokio::test]
async fn evidence_that_no_longer_reads_costs_the_detail_not_the_answer() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    post_all(&h, &token, &b_says(&[(1, refusing)])).await;
    sqlx::query("UPDATE resolver_conditions SET last_evidence = '{\"from\": \"the future\"}'")
        .execute(&h.db.write)
        .await
        .unwrap();
    let (status, why) = h.get("/api/v1/servers/web-01/why").await;
    assert_eq!(status, StatusCode::OK, "{why}");
    let c = &why["resolver_conditions"][0];
    assert_eq!(c["last_evidence"], Value::Null, "{c}");
    assert_eq!(c["evidence"]["resolver"], B);
    assert_eq!(c["cause"], "dns_upstream_block");
}

/// The fixtures `probectl`'s text is tested on are what this collector answers for
/// [`dns_story`]. `CAUSEWAY_UPDATE_FIXTURES=1` writes them again after a deliberate change.
#[tokio::test]
async fn the_fixtures_are_what_the_api_answers() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    h.token("db-01").await;
    post_all(&h, &token, &dns_story()).await;
    let since = NOW - HOUR;
    for (path, fixture) in [
        (
            format!("/api/v1/servers/web-01/why?since_ms={since}"),
            "why-dns.json",
        ),
        (
            format!("/api/v1/resolvers?since_ms={since}"),
            "resolvers.json",
        ),
    ] {
        let (status, answer) = h.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(fixture);
        if std::env::var_os("CAUSEWAY_UPDATE_FIXTURES").is_some() {
            let text = serde_json::to_string_pretty(&answer).unwrap() + "\n";
            std::fs::write(&file, text).unwrap();
        }
        let recorded: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_eq!(
            answer, recorded,
            "{fixture} differs from the API's answer; CAUSEWAY_UPDATE_FIXTURES=1 rewrites it"
        );
    }
}

/// A database from before migration 0007, with an open resolver condition: opened by this
/// collector, the condition's latest explanation is its first, and the next report of the
/// same cause replaces it.
#[tokio::test]
async fn migration_0007_gives_old_conditions_their_latest_explanation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let old = database_before(&path, 7).await;
    for sql in [
        "INSERT INTO servers (id, name, created_at_ms) VALUES (1, 'web-01', 0)",
        "INSERT INTO resolvers (id, server_id, canary, resolver, address, name,
                                first_seen_at_ms, last_seen_at_ms)
         VALUES (1, 1, 'site', '10.0.0.54', '10.0.0.54:53', 'canary.test', 0, 0)",
        "INSERT INTO resolver_conditions (resolver_id, cause, started_at_ms, last_seen_at_ms,
                                          observations, explanation, evidence, last_evidence)
         VALUES (1, 'dns_upstream_block', 0, 0, 1, 'refused then', '{}', '{}')",
    ] {
        sqlx::query(sql).execute(&old).await.unwrap();
    }
    old.close().await;

    let db = causeway_collector::db::Db::open(&path).await.unwrap();
    let (first, latest): (String, String) =
        sqlx::query_as("SELECT explanation, last_explanation FROM resolver_conditions")
            .fetch_one(&db.read)
            .await
            .unwrap();
    assert_eq!(
        (first.as_str(), latest.as_str()),
        ("refused then", "refused then")
    );
    db.close().await;
}

#[tokio::test]
async fn a_condition_keeps_its_first_explanation_and_its_latest() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let mut reports = b_says(&[(1, refusing), (2, refusing)]);
    let later = reports[1].resolutions[0].resolvers[1]
        .condition
        .as_mut()
        .unwrap();
    later.explanation = "10.0.0.54 still refuses".to_owned();
    post_all(&h, &token, &reports).await;
    let (status, why) = h.get("/api/v1/servers/web-01/why").await;
    assert_eq!(status, StatusCode::OK, "{why}");
    let c = &why["resolver_conditions"][0];
    assert_eq!(c["observations"], 2, "{c}");
    assert_eq!(c["last_explanation"], "10.0.0.54 still refuses", "{c}");
    assert_ne!(c["explanation"], c["last_explanation"], "{c}");
}
