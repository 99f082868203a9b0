//! `probectl` against a real collector over HTTP: the server on 127.0.0.1:0, reports posted
//! with reqwest like a probe would, then `status` and `why` run in-process.

mod common;

use causeway_collector::api::AppState;
use causeway_collector::clock::Clock;
use causeway_collector::ctl::{self, Ctl};
use causeway_collector::serve;
use causeway_collector::views::WhyView;
use clap::Parser;
use common::*;

fn ctl(args: &[&str]) -> Ctl {
    Ctl::try_parse_from(std::iter::once("probectl").chain(args.iter().copied())).unwrap()
}

#[tokio::test]
async fn status_and_why_over_real_http() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    h.token("web-02").await;

    let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = AppState {
        clock: Clock::fixed(NOW),
        ..h.state()
    };
    let server = tokio::spawn(serve::run(listener, state, async {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");

    // Posted as the probe does: JSON over HTTP with the bearer token.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let t = |n: i64| NOW - 5 * MIN + n * 30_000;
    let reports = [
        report("web-01", t(0), vec![ok_check(t(0))]),
        report("web-01", t(1), vec![refused(t(1))]),
        report("web-01", t(2), vec![refused(t(2))]),
    ];
    for r in &reports {
        let answer = http
            .post(format!("{base}/api/v1/reports"))
            .bearer_auth(&token)
            .json(r)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    }

    let text = ctl::run(&ctl(&["--collector", &base, "status"]), NOW)
        .await
        .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("SERVER"), "{text}");
    assert!(lines[1].starts_with("web-01"), "{text}");
    assert!(lines[1].contains("33.33%"), "{text}");
    assert!(lines[1].contains("down"), "{text}");
    assert!(lines[1].ends_with("connection_refused"), "{text}");
    assert!(lines[2].starts_with("web-02"), "{text}");
    assert!(lines[2].contains("unknown"), "{text}");

    let text = ctl::run(
        &ctl(&["--collector", &base, "why", "web-01", "--since", "1h"]),
        NOW,
    )
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

    let json = ctl::run(
        &ctl(&["--collector", &base, "why", "web-01", "--json"]),
        NOW,
    )
    .await
    .unwrap();
    let view: WhyView = serde_json::from_str(&json).unwrap();
    assert_eq!(view.since_ms, NOW - 86_400_000);
    assert_eq!(view.incidents.len(), 1);

    let err = ctl::run(&ctl(&["--collector", &base, "why", "web01"]), NOW)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"unknown server "web01"; did you mean: web-01, web-02?"#
    );
    assert_eq!(err.exit_code(), 2);

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
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
