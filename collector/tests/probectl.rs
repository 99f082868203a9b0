//! `probectl` against a real collector over HTTP: the server on 127.0.0.1:0, reports posted
//! with reqwest like a probe would, then `status`, `why` and `resolvers` run in-process.

mod common;

use causeway_collector::views::{ResolverList, WhyView};
use common::*;
use probectl::ctl;
use probectl::why::{render_resolvers, render_why};

#[tokio::test]
async fn status_and_why_over_real_http() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    h.token("web-02").await;
    let collector = Running::start(&h).await;

    let t = |n: i64| NOW - 5 * MIN + n * 30_000;
    let reports = [
        report("web-01", t(0), vec![ok_check(t(0))]),
        report("web-01", t(1), vec![refused(t(1))]),
        report("web-01", t(2), vec![refused(t(2))]),
    ];
    collector.post(&token, &reports).await;

    let text = collector.run(&["status"]).await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("SERVER"), "{text}");
    assert!(lines[1].starts_with("web-01"), "{text}");
    assert!(lines[1].contains("33.33%"), "{text}");
    assert!(lines[1].contains("down"), "{text}");
    assert!(lines[1].ends_with("connection_refused"), "{text}");
    assert!(lines[2].starts_with("web-02"), "{text}");
    assert!(lines[2].contains("unknown"), "{text}");

    let text = collector
        .run(&["why", "web-01", "--since", "1h"])
        .await
        .unwrap();
    assert!(
        text.starts_with(
            "web-01: availability 33.33% over the last 1h (1 of 3 checks ok), state down\n\
             Incidents (1):\n  [OPEN] connection_refused: "
        ),
        "{text}"
    );
    assert!(text.contains("failed:   2 checks"), "{text}");
    assert!(
        text.contains("failure: connect_refused: Connection refused"),
        "{text}"
    );

    let json = collector.run(&["why", "web-01", "--json"]).await.unwrap();
    let view: WhyView = serde_json::from_str(&json).unwrap();
    assert_eq!(view.since_ms, NOW - 86_400_000);
    assert_eq!(view.incidents.len(), 1);

    let err = collector.run(&["why", "web01"]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"unknown server "web01"; did you mean: web-01, web-02?"#
    );
    assert_eq!(err.exit_code(), 2);

    collector.stop().await;
}

/// The story of the fixtures, told by `why` and `resolvers` over HTTP: the same text as the
/// fixtures give, so what the unit tests pin is what the operator sees.
#[tokio::test]
async fn why_and_resolvers_over_real_http() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    h.token("db-01").await;
    let collector = Running::start(&h).await;
    collector.post(&token, &dns_story()).await;

    let why = collector
        .run(&["why", "web-01", "--since", "1h"])
        .await
        .unwrap();
    let recorded: WhyView = serde_json::from_str(include_str!("fixtures/why-dns.json")).unwrap();
    assert_eq!(why, render_why(&recorded, HOUR));
    assert!(
        why.contains("\nResolver conditions (2):\n  [OPEN] dns_upstream_block: "),
        "{why}"
    );

    let table = collector
        .run(&["resolvers", "--since", "1h"])
        .await
        .unwrap();
    let recorded = serde_json::from_str(include_str!("fixtures/resolvers.json")).unwrap();
    // The exact text is pinned by `why::resolvers`' unit test on the same fixture.
    assert_eq!(table, render_resolvers(&recorded));
    assert_eq!(table.lines().count(), 4, "{table}");

    // One server: its lines only.
    let one = collector.run(&["resolvers", "web-01"]).await.unwrap();
    let lines: Vec<&str> = one.lines().collect();
    assert_eq!(lines.len(), 3, "{one}");
    assert!(lines[1..].iter().all(|l| l.starts_with("web-01 ")), "{one}");

    let json = collector
        .run(&["resolvers", "web-01", "--json"])
        .await
        .unwrap();
    let list: ResolverList = serde_json::from_str(&json).unwrap();
    assert_eq!(list.since_ms, NOW - DAY);
    assert_eq!(list.conditions.len(), 2);
    assert_eq!(list.resolvers[1].causes["dns_upstream_block"], 3);

    let err = collector.run(&["resolvers", "web01"]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"unknown server "web01"; did you mean: web-01?"#
    );
    assert_eq!(err.exit_code(), 2);

    collector.stop().await;
}

#[tokio::test]
async fn an_unreachable_collector_is_named_with_a_hint() {
    // A port that was just free: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let base = format!("http://{addr}");
    let err = ctl::run(&ctl(&["--collector", &base, "status"]), NOW)
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("cannot reach the collector at {base}")),
        "{msg}"
    );
    assert!(
        msg.contains("--collector") && msg.contains("CAUSEWAY_COLLECTOR"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), 1);
}
