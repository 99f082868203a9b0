//! The certificates of https canaries: healthy checks carry their chain compactly, the
//! collector keeps one row per canary and leaf, notes a new certificate on the server's page
//! and in `why`, and exports the earliest expiry on /metrics. A certificate out of its dates by
//! the probe's clock is judged again by the collector's.

mod common;

use axum::http::StatusCode;
use causeway_schema::{
    CertificateSummary, CheckResult, Failure, FailureKind, SENT_AT_HEADER, TlsEvidence, TlsFailure,
    classify,
};
use common::*;
use serde_json::Value;

const MIN: i64 = 60_000;
const DAY: i64 = 86_400_000;

fn cert(fill: &str, subject: &str, not_after_ms: i64) -> CertificateSummary {
    CertificateSummary {
        sha256: fill.repeat(64 / fill.len()),
        subject: subject.into(),
        not_before_ms: NOW - 80 * DAY,
        not_after_ms,
        ..CertificateSummary::default()
    }
}

/// A healthy https check whose chain is `chain`, as the probe keeps it.
fn https_ok(at: i64, chain: Vec<CertificateSummary>) -> CheckResult {
    let mut c = ok_check(at);
    c.url = "https://canary.test/".into();
    c.evidence.tls = Some(TlsEvidence {
        sni: "canary.test".into(),
        version: Some("TLSv1.3".into()),
        chain,
        ..TlsEvidence::default()
    });
    c
}

fn metric_line<'a>(metrics: &'a str, name: &str) -> Vec<&'a str> {
    metrics.lines().filter(|l| l.starts_with(name)).collect()
}

#[tokio::test]
async fn a_new_certificate_is_noted_and_the_earliest_expiry_exported() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    // The old leaf (60 days left) and its intermediate (30), then a renewed leaf (90 days)
    // served beside the same intermediate, checked twice within a minute.
    let old = vec![
        cert("a", "CN=canary.test", NOW + 60 * DAY),
        cert("c", "CN=R11", NOW + 30 * DAY),
    ];
    let new = vec![
        cert("b", "CN=canary.test", NOW + 90 * DAY),
        cert("c", "CN=R11", NOW + 30 * DAY),
    ];
    let reports = [
        report(
            "web-01",
            NOW - 10 * MIN,
            vec![https_ok(NOW - 10 * MIN, old)],
        ),
        report(
            "web-01",
            NOW - 5 * MIN,
            vec![https_ok(NOW - 5 * MIN, new.clone())],
        ),
        report(
            "web-01",
            NOW - 4 * MIN,
            vec![https_ok(NOW - 4 * MIN, new.clone())],
        ),
        report("web-01", NOW - MIN, vec![https_ok(NOW - MIN, new)]),
    ];
    post_all(&h, &token, &reports).await;
    assert_eq!(h.count("tls_certificates").await, 2);

    let (status, why) = h.get("/api/v1/servers/web-01/why").await;
    assert_eq!(status, StatusCode::OK, "{why}");
    let certs = why["certificates"]
        .as_array()
        .expect("certificates")
        .clone();
    let seen: Vec<(String, bool, i64, i64)> = certs
        .iter()
        .map(|c| {
            (
                c["sha256"].as_str().unwrap()[..1].to_owned(),
                c["replaced_another"].as_bool().unwrap(),
                c["first_seen_at_ms"].as_i64().unwrap(),
                c["chain_not_after_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("a".to_owned(), false, NOW - 10 * MIN, NOW + 30 * DAY),
            ("b".to_owned(), true, NOW - 5 * MIN, NOW + 30 * DAY),
        ]
    );
    // Within a minute of its last write the row is left alone; a minute on, it moves.
    assert_eq!(certs[1]["last_seen_at_ms"], NOW - MIN);

    let (_, page) = h.get("/servers/web-01").await;
    let page = page.as_str().unwrap();
    assert!(page.contains("Certificates, last 30 days (2)"), "{page}");
    assert!(
        page.contains("new: it replaced the canary&#39;s previous certificate"),
        "{page}"
    );

    let (_, metrics) = h.get("/metrics").await;
    let metrics = metrics.as_str().unwrap();
    assert_eq!(
        metric_line(metrics, "causeway_tls_earliest_expiry_timestamp_seconds{"),
        [format!(
            "causeway_tls_earliest_expiry_timestamp_seconds{{server=\"web-01\",canary=\"site\"}} {}",
            (NOW + 30 * DAY) / 1000
        )]
    );
}

/// A check that failed on `leaf`'s dates (`failure`, by the probe's clock), posted with the
/// probe's clock `offset` ahead of the collector's (behind when negative); its incident's last
/// failed check.
async fn out_of_dates(leaf: CertificateSummary, failure: TlsFailure, offset: i64) -> Value {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let at = NOW - MIN;
    let mut c = https_ok(at, vec![leaf]);
    c.ok = false;
    c.status = None;
    c.failure = Some(Failure {
        kind: FailureKind::Tls,
        message: "invalid peer certificate".into(),
    });
    c.evidence.tls.as_mut().unwrap().failure = Some(failure);
    c.diagnosis = classify(&c);
    h.set_now(at + 100 - offset);
    let mut req = report_request(
        Some(&token),
        serde_json::to_vec(&report("web-01", at, vec![c])).unwrap(),
    );
    req.headers_mut()
        .insert(SENT_AT_HEADER, (at + 50).to_string().parse().unwrap());
    let (status, body) = send(h.app(), req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, why) = h.get("/api/v1/servers/web-01/why").await;
    let last = why["incidents"][0]["samples"]
        .as_array()
        .and_then(|s| s.last())
        .cloned();
    last.unwrap_or_else(|| panic!("no failed check: {why:#}"))
}

#[tokio::test]
async fn a_certificate_out_of_its_dates_is_judged_again_by_the_collectors_clock() {
    // Expired two days before the check, and the probe's clock agrees with ours: the
    // certificate is the cause.
    let at = NOW - MIN;
    let expired = cert("d", "CN=canary.test", at - 2 * DAY);
    let agreed = out_of_dates(expired, TlsFailure::CertificateExpired, 0).await;
    assert_eq!(agreed["cause"], "tls_certificate_expired", "{agreed:#}");
    let why = agreed["explanation"].as_str().expect("explanation");
    assert!(
        why.ends_with(
            "; the probe's clock agrees with the collector's, by which certificate #0 is out of \
             its dates too (2026-11-23T12:03:30Z): the certificate is the cause, not the clock"
        ),
        "{agreed:#}"
    );
    assert_eq!(agreed["contributing"], serde_json::json!([]), "{agreed:#}");

    // Issued an hour after the check by the probe's clock, which runs two hours behind ours:
    // by ours the certificate is valid, and the probe's clock is the likely cause.
    let fresh = CertificateSummary {
        not_before_ms: at + 60 * MIN,
        ..cert("e", "CN=canary.test", at + 90 * DAY)
    };
    let behind = out_of_dates(fresh, TlsFailure::CertificateNotYetValid, -120 * MIN).await;
    assert_eq!(
        behind["cause"], "tls_certificate_not_yet_valid",
        "{behind:#}"
    );
    let why = behind["explanation"].as_str().expect("explanation");
    assert!(
        why.ends_with(
            "; the probe's clock is 2h behind the collector's, by which certificate #0 is \
             within its dates (2026-11-23T14:03:30Z): the probe host's clock is the more likely \
             cause (see clock_skew)"
        ),
        "{behind:#}"
    );
    assert_eq!(
        behind["contributing"],
        serde_json::json!(["clock_skew"]),
        "{behind:#}"
    );
}
