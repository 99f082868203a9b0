//! The web page's routes over a real SQLite file: the overview from the rollups, a server's
//! page, a check's page, and share links (page, badge, summary, revocation).

mod common;

use causeway_collector::share;
use common::*;
use serde_json::Value;

/// Six reports of web-01: ok, ok, refused, refused, ok, ok; one of db-01, refused.
async fn filled() -> (Harness, String) {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let db = h.token("db-01").await;
    let reports: Vec<_> = (0..6)
        .map(|i| {
            let at = NOW - (6 - i) * MIN;
            let check = if (2..4).contains(&i) {
                refused(at)
            } else {
                ok_check(at)
            };
            report("web-01", at, vec![check])
        })
        .collect();
    post_all(&h, &token, &reports).await;
    post_all(
        &h,
        &db,
        &[report("db-01", NOW - MIN, vec![refused(NOW - MIN)])],
    )
    .await;
    (h, token)
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

#[tokio::test]
async fn rollups_follow_every_report_and_replays_change_nothing() {
    let (h, token) = filled().await;
    let hours: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT checks_total, checks_ok FROM availability_hours h JOIN servers s
         ON s.id = h.server_id WHERE s.name = 'web-01'",
    )
    .fetch_all(&h.db.read)
    .await
    .unwrap();
    let sum = hours.iter().fold((0, 0), |t, r| (t.0 + r.0, t.1 + r.1));
    assert_eq!(sum, (6, 4));
    let causes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT cause, n FROM result_counts c JOIN servers s ON s.id = c.server_id
         WHERE s.name = 'web-01' ORDER BY cause",
    )
    .fetch_all(&h.db.read)
    .await
    .unwrap();
    assert_eq!(
        causes,
        [("connection_refused".to_owned(), 2), ("ok".to_owned(), 4)]
    );
    // A late report counts once; its replay is a duplicate and moves nothing.
    let late = report("web-01", NOW - 10 * MIN, vec![ok_check(NOW - 10 * MIN)]);
    for _ in 0..2 {
        let (status, body) = h.post_report(&token, &late).await;
        assert_eq!(status, 200, "{body}");
    }
    let days: i64 =
        sqlx::query_scalar("SELECT CAST(SUM(checks_total) AS BIGINT) FROM availability_days")
            .fetch_one(&h.db.read)
            .await
            .unwrap();
    assert_eq!(days, 8, "web-01's 6, db-01's 1 and the late one, once");
}

#[tokio::test]
async fn the_overview_shows_the_fleet_and_each_server() {
    let (h, _) = filled().await;
    let (status, body) = h.get("/").await;
    assert_eq!(status, 200);
    let html = text(&body);
    assert!(
        html.contains("Fleet availability: 24h <b>57.14%</b>"),
        "{html}"
    );
    assert!(html.contains("2 servers: 1 up, 1 down, 0 stale"), "{html}");
    assert!(
        html.contains("<td class=\"num\">66.66%</td>"),
        "web-01: {html}"
    );
    assert_eq!(html.matches("<svg class=\"heartbeat\"").count(), 2);
    let web = html.split("data-name=\"web-01\"").nth(1).unwrap();
    let bar = web.split("</svg>").next().unwrap();
    assert_eq!(
        bar.matches("<rect").count(),
        3,
        "ok, refused, ok: a bar per run"
    );
    assert!(bar.contains("width=\"36\""), "as wide as six checks: {bar}");
    assert!(
        bar.contains("<title>2 checks: connection_refused, "),
        "{bar}"
    );
    let (_, filtered) = h.get("/?q=db").await;
    assert!(!text(&filtered).contains("data-name=\"web-01\""));
}

#[tokio::test]
async fn a_server_page_and_a_check_page() {
    let (h, _) = filled().await;
    let (status, body) = h.get("/servers/web-01").await;
    assert_eq!(status, 200);
    let html = text(&body);
    for want in [
        "<h1>web-01 <span class=\"state up\">up</span></h1>",
        "Availability per day, last 90 days",
        "Incidents, last 30 days (1)",
        "connection_refused",
    ] {
        assert!(html.contains(want), "lacks {want:?}: {html}");
    }
    let href = html
        .split("<a href=\"/servers/web-01/checks/")
        .nth(3)
        .and_then(|s| s.split('"').next())
        .unwrap();
    let (status, check) = h.get(&format!("/servers/web-01/checks/{href}")).await;
    assert_eq!(status, 200);
    assert!(text(&check).contains("connection_refused"), "{check}");
    let (status, _) = h.get(&format!("/servers/db-01/checks/{href}")).await;
    assert_eq!(status, 404, "a check of another server");
    let (status, _) = h.get("/servers/nope").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_page_that_does_not_exist_is_a_page_and_the_api_answers_json() {
    let (h, _) = filled().await;
    // A mistyped server: a page with links to the closest names, not JSON in a browser.
    let (status, page) = h.get("/servers/web-1").await;
    assert_eq!(status, 404);
    let page = text(&page);
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert!(page.contains("<h1>404 Not Found</h1>"), "{page}");
    assert!(page.contains("unknown server &quot;web-1&quot;"), "{page}");
    assert!(
        page.contains("Did you mean <a href=\"/servers/web-01\">web-01</a>"),
        "{page}"
    );
    // Markup in a path comes back as text.
    let (status, page) = h.get("/servers/%3Cb%3Ex/checks/1").await;
    assert_eq!(status, 404);
    assert!(text(&page).contains("&lt;b&gt;x"), "{page}");
    assert!(!text(&page).contains("<b>"), "{page}");
    let (status, page) = h.get("/nowhere").await;
    assert_eq!(status, 404);
    assert!(text(&page).contains("no route for GET /nowhere"), "{page}");
    // A wrong share link: a page that leads nowhere and names no server.
    let (status, page) = h.get("/s/cws_0000").await;
    assert_eq!(status, 404);
    let page = text(&page);
    assert!(page.contains("no such link"), "{page}");
    assert!(
        !page.contains("href=") && !page.contains("web-01"),
        "{page}"
    );
    // The API stays JSON.
    for path in ["/api/v1/servers/web-1", "/api/v1/nowhere"] {
        let (status, body) = h.get(path).await;
        assert_eq!(status, 404);
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn a_share_link_opens_one_server_read_only_until_revoked() {
    let (h, _) = filled().await;
    let secret = share::add(&h.db.write, "db-01", NOW).await.unwrap();
    assert!(
        secret.starts_with("cws_") && secret.len() == 4 + 64,
        "{secret}"
    );
    let (status, page) = h.get(&format!("/s/{secret}")).await;
    assert_eq!(status, 200);
    let page = text(&page);
    assert!(page.contains("<h1>db-01 <span class=\"state down\">down</span></h1>"));
    assert!(
        !page.contains("href=\"/\"") && !page.contains("/servers/"),
        "{page}"
    );
    assert!(!page.contains("web-01"), "nothing of other servers");

    let (status, badge) = h.get(&format!("/s/{secret}/badge.svg")).await;
    assert_eq!(status, 200);
    assert!(text(&badge).contains(">0.00% down</text>"), "{badge}");
    let (status, summary) = h.get(&format!("/s/{secret}/summary.json")).await;
    assert_eq!(status, 200);
    assert_eq!(summary["server"], "db-01");
    assert_eq!(summary["state"], "down");
    assert_eq!(summary["open_incident"]["cause"], "connection_refused");

    let (status, _) = h.get("/s/cws_0000").await;
    assert_eq!(status, 404);
    assert_eq!(share::revoke(&h.db.write, "db-01", NOW).await.unwrap(), 1);
    let (status, body) = h.get(&format!("/s/{secret}/summary.json")).await;
    assert_eq!(status, 404, "{body}");
    let unknown = share::add(&h.db.write, "nope", NOW).await.unwrap_err();
    assert!(unknown.to_string().contains("token add nope"), "{unknown}");
}
