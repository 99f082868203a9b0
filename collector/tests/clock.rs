//! A probe's clock that disagrees with the collector's: reports ordered on the collector's
//! clock, so a probe that ran ahead for a while cannot hide the outage that follows; the
//! difference as the host condition `clock_skew` and on /metrics; reports dated too far ahead
//! refused with a message that says why.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use causeway_schema::{Report, SENT_AT_HEADER};
use common::*;
use serde_json::Value;

const SECOND: i64 = 1_000;
const MIN: i64 = 60 * SECOND;
/// How far the probe's clock runs ahead while it is wrong.
const AHEAD: i64 = 4 * MIN;

/// Posts `report` as a probe does, at `now` on the collector's clock, with the probe's clock
/// when it sent it.
async fn post_at(
    h: &Harness,
    token: &str,
    report: &Report,
    now: i64,
    sent_at: Option<i64>,
) -> (StatusCode, Value) {
    h.set_now(now);
    let mut req = report_request(Some(token), serde_json::to_vec(report).unwrap());
    if let Some(sent_at) = sent_at {
        req.headers_mut()
            .insert(SENT_AT_HEADER, sent_at.to_string().parse().unwrap());
    }
    send(h.app(), req).await
}

/// A report of web-01 started at `at` on the probe's clock, with its host.
fn at(at: i64, ok: bool) -> Report {
    let check = if ok { ok_check(at) } else { refused(at) };
    with_host(report("web-01", at, vec![check]), &ProbeHost::at(at))
}

async fn host_conditions(h: &Harness) -> Vec<Value> {
    let (status, body) = h.get("/api/v1/servers/web-01/host").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["conditions"].as_array().unwrap().clone()
}

/// The probe ran 4 minutes ahead for three cycles (a host that booted before NTP set its
/// clock), then its clock was put right and nginx went away. Ordered by the probe's dates,
/// every report after the wrong ones would be "older" and the outage would not show for 4
/// minutes; ordered on the collector's clock, the first refused check opens the incident.
#[tokio::test]
async fn a_probe_clock_ahead_for_a_while_does_not_hide_the_outage_after_it() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let start = NOW - 10 * MIN;
    let mut real = start;
    for _ in 0..3 {
        let (status, body) = post_at(
            &h,
            &token,
            &at(real + AHEAD, true),
            real + 200,
            Some(real + AHEAD + 150),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        real += 10 * SECOND;
    }
    let skew = host_conditions(&h).await;
    assert_eq!(skew.len(), 1, "{skew:?}");
    assert_eq!(skew[0]["cause"], "clock_skew");
    assert_eq!(skew[0]["open"], true);
    assert_eq!(skew[0]["observations"], 3);
    let explanation = skew[0]["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("239 s ahead of the collector's"),
        "{explanation}"
    );
    let (_, metrics) = h.get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains("causeway_server_clock_offset_seconds{server=\"web-01\"} 239.95"),
        "{metrics}"
    );

    // The clock is right again: one healthy check, then three refused ones.
    for ok in [true, false, false, false] {
        let (status, body) = post_at(&h, &token, &at(real, ok), real + 200, Some(real + 150)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        real += 10 * SECOND;
    }
    let (_, server) = h.get("/api/v1/servers/web-01").await;
    assert_eq!(server["state"], "down", "{server}");
    assert_eq!(
        server["open_incident"]["cause"], "connection_refused",
        "{server}"
    );
    assert_eq!(server["open_incident"]["failed_checks"], 3, "{server}");
    // The probe's times are its data: the incident starts at the first refused check's.
    assert_eq!(
        server["open_incident"]["started_at_ms"],
        real - 30 * SECOND,
        "{server}"
    );
    let skew = host_conditions(&h).await;
    assert_eq!(skew[0]["cause"], "clock_skew");
    assert_eq!(
        skew[0]["open"], false,
        "closed by the first report on time: {skew:?}"
    );
    // Never ended before it started, though the report that ended it is dated earlier.
    assert_eq!(skew[0]["ended_at_ms"], skew[0]["started_at_ms"], "{skew:?}");
    let (_, metrics) = h.get("/metrics").await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("causeway_server_clock_offset_seconds{server=\"web-01\"} -0.05"),
        "{metrics}"
    );
}

/// A forged or wrong report without the probe's sending time (an older probe) sorts at its
/// receipt: it cannot push the server's newest time into the future either.
#[tokio::test]
async fn a_report_dated_ahead_without_the_sending_time_sorts_at_its_receipt() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let real = NOW - 5 * MIN;
    let (status, body) = post_at(&h, &token, &at(real + AHEAD, true), real, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = post_at(
        &h,
        &token,
        &at(real + 10 * SECOND, false),
        real + 10 * SECOND,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, server) = h.get("/api/v1/servers/web-01").await;
    assert_eq!(server["state"], "down", "{server}");
    assert_eq!(server["open_incident"]["failed_checks"], 1, "{server}");
    // Nothing measured the probe's clock: no condition, no offset.
    assert!(host_conditions(&h).await.is_empty());
    let (_, metrics) = h.get("/metrics").await;
    assert!(
        !metrics
            .as_str()
            .unwrap()
            .contains("causeway_server_clock_offset_seconds{"),
        "{metrics}"
    );
}

/// A replay from the spool still sorts before what was processed, whatever the probe's clock:
/// the probe's two times say how long it waited.
#[tokio::test]
async fn a_replay_from_a_probe_an_hour_behind_is_still_old() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let behind = 60 * MIN;
    let real = NOW - 5 * MIN;
    let (status, _) = post_at(
        &h,
        &token,
        &at(real - behind, false),
        real,
        Some(real - behind),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Made 2 minutes before the one above, sent now: old, it leaves the incident open.
    let replay = at(real - behind - 2 * MIN, true);
    let (status, _) = post_at(
        &h,
        &token,
        &replay,
        real + SECOND,
        Some(real - behind + SECOND),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (_, server) = h.get("/api/v1/servers/web-01").await;
    assert_eq!(server["state"], "down", "{server}");
    assert_eq!(server["open_incident"]["failed_checks"], 1, "{server}");
    let skew = host_conditions(&h).await;
    assert_eq!(skew.len(), 1, "{skew:?}");
    assert!(
        skew[0]["explanation"]
            .as_str()
            .unwrap()
            .contains("3600 s behind"),
        "{skew:?}"
    );
}

/// Dated more than 5 minutes ahead: refused, saying how far ahead and what to check. A bad
/// header is a 400 that names it.
#[tokio::test]
async fn too_far_ahead_or_a_bad_sending_time_is_refused_with_the_reason() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let (status, body) = post_at(
        &h,
        &token,
        &at(NOW + 20 * 60 * MIN, true),
        NOW,
        Some(NOW + 20 * 60 * MIN),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("started_at_ms"), "{error}");
    assert!(error.contains("72000 s ahead"), "{error}");
    assert_eq!(h.count("reports").await, 0);

    let req = Request::post("/api/v1/reports")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(SENT_AT_HEADER, "yesterday")
        .body(Body::from(serde_json::to_vec(&at(NOW, true)).unwrap()))
        .unwrap();
    let (status, body) = send(h.app(), req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("causeway-sent-at: \"yesterday\""), "{error}");
}
