//! Alerts against a real receiver over HTTP, on the run's database (SQLite, or PostgreSQL with
//! `CAUSEWAY_TEST_DB=postgres`): when an incident pages, that it pages once, recovers once,
//! that a changed cause is one message, that a silent server goes stale, and that a receiver
//! that fails gets the message later or, past the bound, a failed notification that says why.

mod common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use causeway_collector::alerts::config::CollectorConfig;
use causeway_collector::alerts::send::{SIGNATURE_HEADER, signature};
use causeway_collector::alerts::{self, Alerter};
use causeway_collector::ingest::MERGE_GAP_MS;
use causeway_collector::timefmt;
use common::*;
use serde_json::Value;

const SECRET: &str = "a-secret-of-some-length";

/// What a receiver got: one entry per POST, with its headers and JSON body.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    /// The status it answers with (200 unless a test breaks it).
    status: Arc<Mutex<u16>>,
    /// How long it takes to answer, once it has the message.
    delay: Arc<Mutex<std::time::Duration>>,
}

impl Receiver {
    /// Serves on a free port of 127.0.0.1; returns its URL.
    async fn start(&self) -> String {
        *self.status.lock().unwrap() = 200;
        let me = self.clone();
        let app = Router::new().route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let me = me.clone();
                async move {
                    me.got.lock().unwrap().push((headers, body));
                    let delay = *me.delay.lock().unwrap();
                    tokio::time::sleep(delay).await;
                    StatusCode::from_u16(*me.status.lock().unwrap()).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/hook")
    }

    fn bodies(&self) -> Vec<Value> {
        let got = self.got.lock().unwrap();
        got.iter()
            .map(|(_, body)| serde_json::from_slice(body).unwrap())
            .collect()
    }

    fn events(&self) -> Vec<String> {
        self.bodies()
            .iter()
            .map(|b| b["event"].as_str().unwrap().to_owned())
            .collect()
    }
}

fn config(url: &str, rule: &str) -> CollectorConfig {
    config_with("", url, rule)
}

/// [`config`] with top-level keys (`group_wait = "5s"`).
fn config_with(top: &str, url: &str, rule: &str) -> CollectorConfig {
    CollectorConfig::parse(&format!(
        "{top}public_url = \"https://causeway.example.net\"\n\
         [[channel]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n\
         [[rule]]\nname = \"all\"\nchannels = [\"ops\"]\n{rule}"
    ))
    .unwrap()
}

async fn alerter(h: &Harness, config: CollectorConfig) -> Alerter {
    Alerter::new(h.db.clone(), alerts::shared(config)).unwrap()
}

/// Posts one report of web-01 at `at` (the collector's clock too) with `check`.
async fn at(h: &Harness, token: &str, at: i64, check: causeway_schema::CheckResult) {
    h.set_now(at);
    post_all(h, token, &[report("web-01", at, vec![check])]).await;
}

/// Evaluates and delivers at `now`: what was written and what was delivered.
async fn pass(a: &Alerter, now: i64) -> (usize, usize) {
    (
        a.evaluate(now).await.unwrap(),
        a.deliver(now).await.unwrap(),
    )
}

#[tokio::test]
async fn an_incident_pages_after_two_failed_checks_once_signed_and_recovers_once() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let receiver = Receiver::default();
    let a = alerter(&h, config(&receiver.start().await, "stale_after = 0\n")).await;
    let t = |n| cycle(n);

    at(&h, &token, t(0), ok_check(t(0))).await;
    at(&h, &token, t(1), refused(t(1))).await;
    assert_eq!(
        pass(&a, t(1) + 1000).await,
        (0, 0),
        "one failed check pages nobody"
    );
    at(&h, &token, t(2), refused(t(2))).await;
    assert_eq!(pass(&a, t(2) + 1000).await, (1, 1));
    assert_eq!(pass(&a, t(2) + 2000).await, (0, 0), "raised once");
    at(&h, &token, t(3), refused(t(3))).await;
    assert_eq!(
        pass(&a, t(3) + 1000).await,
        (0, 0),
        "no second DOWN while it lasts"
    );

    let (headers, body) = receiver.got.lock().unwrap()[0].clone();
    let signed = headers.get(SIGNATURE_HEADER).unwrap().to_str().unwrap();
    assert_eq!(
        signed,
        signature(SECRET, &body),
        "the HMAC of the body as sent"
    );
    let down = &receiver.bodies()[0];
    assert_eq!(down["event"], "down");
    assert_eq!(down["server"], "web-01");
    assert_eq!(down["cause"], "connection_refused");
    assert_eq!(down["title"], "[DOWN] web-01: connection_refused");
    assert_eq!(down["failed_checks"], 2);
    assert_eq!(down["started_at_ms"], t(1));
    assert_eq!(down["url"], "https://causeway.example.net/servers/web-01");
    let why = down["explanation"].as_str().unwrap();
    assert!(why.contains("refused"), "{down:#}");
    assert_eq!(
        headers.get("Idempotency-Key").unwrap(),
        down["key"].as_str().unwrap()
    );

    at(&h, &token, t(4), ok_check(t(4))).await;
    // Recovered once the merge gap has passed without its cause (10 minutes).
    assert_eq!(
        pass(&a, t(4) + 1000).await,
        (0, 0),
        "not before the merge gap"
    );
    assert_eq!(pass(&a, t(4) + MERGE_GAP_MS).await, (1, 1));
    assert_eq!(
        pass(&a, t(4) + MERGE_GAP_MS + 1000).await,
        (0, 0),
        "recovered once"
    );
    let recovered = &receiver.bodies()[1];
    assert_eq!(recovered["event"], "recovered");
    assert_eq!(recovered["ended_at_ms"], t(4));
    assert!(
        recovered["text"]
            .as_str()
            .unwrap()
            .contains("after 1m30s down"),
        "{recovered:#}"
    );
    assert_eq!(receiver.events(), ["down", "recovered"]);

    // The server's page lists them with how their delivery went.
    let (status, page) = h.get("/servers/web-01").await;
    assert_eq!(status, StatusCode::OK);
    let page = page.as_str().unwrap();
    for part in [
        "<h2>Notifications, latest 2</h2>",
        "<td>[RECOVERED] web-01: connection_refused</td><td>ops</td><td>delivered",
        "<td>[DOWN] web-01: connection_refused</td><td>ops</td><td>delivered",
    ] {
        assert!(page.contains(part), "{part}");
    }
    // Not on the customer's view through a share link.
    let secret = causeway_collector::share::add(&h.db.write, "web-01", NOW)
        .await
        .unwrap();
    let (status, shared) = h.get(&format!("/s/{secret}")).await;
    assert_eq!(status, StatusCode::OK);
    let shared = shared.as_str().unwrap();
    assert!(shared.contains("<h1>web-01") && !shared.contains("Notifications"));
}

#[tokio::test]
async fn a_changed_cause_is_one_message_and_no_recovery() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let receiver = Receiver::default();
    let a = alerter(&h, config(&receiver.start().await, "stale_after = 0\n")).await;
    for n in 1..=2 {
        at(&h, &token, cycle(n), refused(cycle(n))).await;
    }
    pass(&a, cycle(2) + 1000).await;
    // The proxy answers 502 now: the incident is split, the server still down.
    at(&h, &token, cycle(3), bad_gateway(cycle(3))).await;
    assert_eq!(pass(&a, cycle(3) + 1000).await, (1, 1));
    let changed = &receiver.bodies()[1];
    assert_eq!(changed["event"], "cause_changed");
    assert_eq!(changed["previous_cause"], "connection_refused");
    assert_eq!(changed["cause"], "http_error");
    at(&h, &token, cycle(4), ok_check(cycle(4))).await;
    pass(&a, cycle(4) + MERGE_GAP_MS).await;
    assert_eq!(receiver.events(), ["down", "cause_changed", "recovered"]);
    assert_eq!(receiver.bodies()[2]["cause"], "http_error");
}

#[tokio::test]
async fn rules_select_servers_and_causes_and_remind_while_open() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let elsewhere = alerter(&h, config(&url, "servers = [\"db-*\"]\n")).await;
    let other_cause = alerter(&h, config(&url, "causes = [\"oom_kill\"]\n")).await;
    for n in 1..=3 {
        at(&h, &token, cycle(n), refused(cycle(n))).await;
    }
    assert_eq!(pass(&elsewhere, cycle(3)).await, (0, 0));
    assert_eq!(pass(&other_cause, cycle(3)).await, (0, 0));

    let a = alerter(&h, config(&url, "repeat = \"1m\"\nstale_after = 0\n")).await;
    assert_eq!(pass(&a, cycle(3)).await, (1, 1));
    assert_eq!(pass(&a, cycle(3) + 30_000).await, (0, 0));
    assert_eq!(pass(&a, cycle(3) + 61_000).await, (1, 1));
    assert_eq!(pass(&a, cycle(3) + 90_000).await, (0, 0));
    assert_eq!(pass(&a, cycle(3) + 125_000).await, (1, 1));
    assert_eq!(receiver.events(), ["down", "reminder", "reminder"]);
    let reminder = &receiver.bodies()[1];
    assert_eq!(reminder["title"], "[STILL DOWN] web-01: connection_refused");
}

#[tokio::test]
async fn a_silent_server_goes_stale_and_says_so_when_it_reports_again() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let receiver = Receiver::default();
    let a = alerter(&h, config(&receiver.start().await, "")).await;
    // Interval 30 s: stale after 3 intervals without a report.
    at(&h, &token, cycle(0), ok_check(cycle(0))).await;
    assert_eq!(pass(&a, cycle(0) + 89_000).await, (0, 0));
    assert_eq!(pass(&a, cycle(0) + 91_000).await, (1, 1));
    assert_eq!(pass(&a, cycle(0) + 200_000).await, (0, 0), "stale once");
    let stale = &receiver.bodies()[0];
    assert_eq!(stale["event"], "stale");
    assert_eq!(stale["title"], "[STALE] web-01: stale");
    let words = stale["explanation"].as_str().unwrap();
    assert!(
        words.contains("(interval 30s) with 1 of 1 checks ok"),
        "{words}"
    );

    at(&h, &token, cycle(10), ok_check(cycle(10))).await;
    assert_eq!(pass(&a, cycle(10) + 1000).await, (1, 1));
    assert_eq!(receiver.events(), ["stale", "reporting"]);
    // A second silence is a new alert.
    assert_eq!(pass(&a, cycle(10) + 91_000).await, (1, 1));
    assert_eq!(receiver.events(), ["stale", "reporting", "stale"]);
}

#[tokio::test]
async fn a_failing_receiver_gets_it_later_and_a_dead_one_is_marked_failed_with_why() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    // A second channel to a port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let text = format!(
        "give_up = \"2m\"\n\
         [[channel]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{url}\"\n\
         [[channel]]\nname = \"gone\"\nkind = \"slack\"\nurl = \"{dead}\"\n\
         [[rule]]\nname = \"all\"\nchannels = [\"ops\", \"gone\"]\n"
    );
    let a = alerter(&h, CollectorConfig::parse(&text).unwrap()).await;
    *receiver.status.lock().unwrap() = 500;
    for n in 1..=2 {
        at(&h, &token, cycle(n), refused(cycle(n))).await;
    }
    let t = cycle(2) + 1000;
    assert_eq!(pass(&a, t).await, (2, 0));
    // Not due again before the first retry (5 s).
    assert_eq!(a.deliver(t + 4_000).await.unwrap(), 0);
    assert_eq!(receiver.got.lock().unwrap().len(), 1);
    *receiver.status.lock().unwrap() = 200;
    assert_eq!(a.deliver(t + 5_000).await.unwrap(), 1);
    assert_eq!(
        receiver.events(),
        ["down", "down"],
        "the same message again"
    );
    // The dead channel keeps failing until the bound (2 minutes), then fails for good.
    let mut now = t + 5_000;
    while now < t + 180_000 {
        now += 5_000;
        a.deliver(now).await.unwrap();
    }
    let running = Running::start(&h).await;
    let shown = running.run(&["alerts"]).await.unwrap();
    running.stop().await;
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 3, "{shown}");
    assert!(lines[0].starts_with("RAISED"), "{shown}");
    let gone = lines.iter().find(|l| l.contains(" gone ")).unwrap();
    assert!(gone.contains("failed"), "{shown}");
    assert!(gone.contains(&format!("slack {dead}")), "{shown}");
    let ops = lines.iter().find(|l| l.contains(" ops ")).unwrap();
    assert!(ops.contains("delivered") && ops.contains("  2"), "{shown}");
}

/// Ended alerts and sent notifications go with the evidence they link to; a pending one stays.
#[tokio::test]
async fn ended_alerts_and_sent_notifications_are_pruned_with_the_evidence() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let receiver = Receiver::default();
    let a = alerter(&h, config(&receiver.start().await, "stale_after = 0\n")).await;
    for n in 1..=2 {
        at(&h, &token, cycle(n), refused(cycle(n))).await;
    }
    at(&h, &token, cycle(3), ok_check(cycle(3))).await;
    // No pass saw it open (a collector stopped meanwhile): the first after the merge gap
    // raises and ends it.
    pass(&a, cycle(3) + MERGE_GAP_MS).await;
    assert_eq!(receiver.events(), ["down", "recovered"]);
    // A second outage, past the merge gap, whose message cannot be delivered yet.
    *receiver.status.lock().unwrap() = 503;
    let later = cycle(3) + MERGE_GAP_MS + 60_000;
    for at_ms in [later, later + 30_000] {
        at(&h, &token, at_ms, refused(at_ms)).await;
    }
    pass(&a, later + 31_000).await;
    assert_eq!(
        (h.count("alert_state").await, h.count("notifications").await),
        (2, 3)
    );

    let day = std::time::Duration::from_secs(86_400);
    let retention = causeway_collector::ingest::Retention {
        raw: day,
        evidence: day,
        hourly: day,
    };
    let later = NOW + 2 * DAY;
    while !h.db.reports.prune(retention, later).await.unwrap().done {}
    let pending: Vec<String> = sqlx::query_scalar("SELECT event FROM notifications")
        .fetch_all(&h.db.read)
        .await
        .unwrap();
    assert_eq!(pending, ["down"]);
    assert_eq!(h.count("alert_state").await, 1, "the open alert stays");
}

/// Two collectors on one database (PostgreSQL's deployment) raise and send each message once.
#[tokio::test]
async fn two_alerters_on_one_database_send_each_message_once() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let (one, two) = (
        alerter(&h, config(&url, "")).await,
        alerter(&h, config(&url, "")).await,
    );
    for n in 1..=2 {
        at(&h, &token, cycle(n), refused(cycle(n))).await;
    }
    let now = cycle(2) + 1000;
    let (a, b) = tokio::join!(one.evaluate(now), two.evaluate(now));
    assert_eq!(a.unwrap() + b.unwrap(), 1, "raised once");
    // The second looks while the first is still sending (the receiver is slow to answer).
    *receiver.delay.lock().unwrap() = std::time::Duration::from_millis(500);
    let first = tokio::spawn({
        let one = one.clone();
        async move { one.deliver(now).await.unwrap() }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while receiver.got.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first send never arrived"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        two.deliver(now).await.unwrap(),
        0,
        "the second leaves it to the first"
    );
    assert_eq!(first.await.unwrap(), 1);
    let (a, b) = tokio::join!(pass(&one, now + 60_000), pass(&two, now + 60_000));
    assert_eq!((a, b), ((0, 0), (0, 0)));
    assert_eq!(receiver.events(), ["down"]);
}

/// A rule with `conditions = true` warns of a host condition (a kernel memory leak, before
/// any outage) and of a resolver that refuses us, and says when each cleared; a rule without
/// it does not.
#[tokio::test]
async fn conditions_warn_and_clear_only_through_rules_that_ask_for_them() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let quiet = alerter(&h, config(&url, "stale_after = 0\n")).await;
    let a = alerter(&h, config(&url, "stale_after = 0\nconditions = true\n")).await;
    let with = |at, host: ProbeHost, resolvers| {
        let mut r = resolved("web-01", at, resolvers);
        r = with_host(r, &host);
        r
    };
    let (good, bad) = ("10.0.0.53", "10.0.0.54");
    h.set_now(cycle(1));
    let leaking = with(
        cycle(1),
        ProbeHost::at(cycle(1)).leaking(),
        vec![answering(good), refusing(bad)],
    );
    post_all(&h, &token, &[leaking]).await;
    assert_eq!(pass(&quiet, cycle(1) + 1000).await, (0, 0));
    assert_eq!(pass(&a, cycle(1) + 1000).await, (2, 2));
    let mut warnings = receiver.bodies();
    warnings.sort_by_key(|b| b["cause"].as_str().unwrap().to_owned());
    assert_eq!(warnings[0]["event"], "warning");
    assert_eq!(warnings[0]["title"], "[WARNING] web-01: dns_upstream_block");
    assert!(
        warnings[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("web-01 has a condition of resolver 10.0.0.54:53 of canary site since"),
        "{:#}",
        warnings[0]
    );
    assert_eq!(warnings[1]["title"], "[WARNING] web-01: kernel_memory_leak");
    assert_eq!(warnings[1]["subject"], "its host");

    h.set_now(cycle(2));
    let healthy = with(
        cycle(2),
        ProbeHost::at(cycle(2)),
        vec![answering(good), answering(bad)],
    );
    post_all(&h, &token, &[healthy]).await;
    assert_eq!(pass(&a, cycle(2) + 1000).await, (2, 2));
    assert_eq!(pass(&a, cycle(2) + 2000).await, (0, 0));
    let events = receiver.events();
    assert_eq!(events, ["warning", "warning", "cleared", "cleared"]);
    let cleared = &receiver.bodies()[2];
    assert_eq!(cleared["ended_at_ms"], cycle(2));
}

/// Certificates have a rule of their own: an expiry warns through it (placed before the
/// catch-all rule, which asks for no conditions, so the kernel leak of the same report stays
/// quiet), and clears once the certificate is renewed.
#[tokio::test]
async fn a_certificate_expiry_warns_through_a_rule_of_its_own() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let config = CollectorConfig::parse(&format!(
        "public_url = \"https://causeway.example.net\"\n\
         [[channel]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{url}\"\nsecret = \"{SECRET}\"\n\
         [[rule]]\nname = \"certificates\"\ncauses = [\"tls_expiry_warning\", \"tls_expiry_critical\"]\n\
         channels = [\"ops\"]\nconditions = true\nstale_after = 0\n\
         [[rule]]\nname = \"all\"\nchannels = [\"ops\"]\nstale_after = 0\n"
    ))
    .unwrap();
    let a = alerter(&h, config).await;
    let expiring = causeway_schema::HostCondition {
        cause: causeway_schema::Cause::TlsExpiryWarning,
        explanation: "site: CN=canary.test expires 2026-12-03T12:04:30Z, in 10d (tls_warn_days 14)"
            .into(),
        evidence: vec!["site https://canary.test/: CN=canary.test not after ...".into()],
    };
    let mut r = with_host(
        report("web-01", cycle(1), vec![ok_check(cycle(1))]),
        &ProbeHost::at(cycle(1)).leaking(),
    );
    r.host.as_mut().unwrap().conditions.push(expiring);
    h.set_now(cycle(1));
    post_all(&h, &token, &[r]).await;
    assert_eq!(pass(&a, cycle(1) + 1000).await, (1, 1));
    let warning = &receiver.bodies()[0];
    assert_eq!(warning["title"], "[WARNING] web-01: tls_expiry_warning");
    let text = warning["text"].as_str().unwrap();
    assert!(
        text.starts_with("web-01 has a condition of its canaries' certificates since")
            && text.contains("in 10d (tls_warn_days 14)"),
        "{warning:#}"
    );

    // Renewed: the next report's host has no expiry.
    let renewed = with_host(
        report("web-01", cycle(2), vec![ok_check(cycle(2))]),
        &ProbeHost::at(cycle(2)).leaking(),
    );
    h.set_now(cycle(2));
    post_all(&h, &token, &[renewed]).await;
    assert_eq!(pass(&a, cycle(2) + 1000).await, (1, 1));
    assert_eq!(receiver.events(), ["warning", "cleared"]);
}

/// A maintenance window: made over the API with a token that may write (a read-only token
/// and no token are refused, saying how), it keeps the server quiet while it lasts; its end
/// lets the failure through.
#[tokio::test]
async fn a_silence_keeps_a_server_quiet_and_needs_write_rights() {
    use causeway_collector::access;
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let reader = access::add_read_token(&h.db.write, "grafana", NOW, false)
        .await
        .unwrap();
    let writer = access::add_read_token(&h.db.write, "ops", NOW, true)
        .await
        .unwrap();
    let receiver = Receiver::default();
    let a = alerter(&h, config(&receiver.start().await, "stale_after = 0\n")).await;
    let running = Running::start(&h).await;
    let add = [
        "silence",
        "add",
        "web-*",
        "--for",
        "2h",
        "--reason",
        "kernel upgrade",
    ];

    let denied = running.run(&add).await.unwrap_err().to_string();
    assert!(
        denied.contains("answered 401") && denied.contains("read-token add NAME --write"),
        "{denied}"
    );
    let mut as_reader = vec!["--token", reader.as_str()];
    as_reader.extend_from_slice(&add);
    let denied = running.run(&as_reader).await.unwrap_err().to_string();
    assert!(
        denied.contains("answered 403") && denied.contains("\"grafana\" may only read"),
        "{denied}"
    );
    let mut as_writer = vec!["--token", writer.as_str()];
    as_writer.extend_from_slice(&add);
    let made = running.run(&as_writer).await.unwrap();
    assert_eq!(
        made,
        "silence 1: web-* until 2026-11-23T14:04:30Z (kernel upgrade)\n"
    );
    let listed = running.run(&["silence", "list"]).await.unwrap();
    assert!(
        listed.contains("\n 1  web-*    until 14:04:30  ops  12:04:30  kernel upgrade\n"),
        "{listed}"
    );

    for n in 1..=3 {
        at(&h, &token, cycle(n), refused(cycle(n))).await;
    }
    assert_eq!(pass(&a, NOW + 60_000).await, (0, 0), "silenced");
    assert_eq!(pass(&a, NOW + 7_199_000).await, (0, 0), "still silenced");
    assert_eq!(
        pass(&a, NOW + 7_200_000).await,
        (1, 1),
        "the window is over"
    );
    assert_eq!(receiver.events(), ["down"]);

    // Removed before its end, a silence stops at once.
    let mut again = vec!["--token", writer.as_str()];
    again.extend_from_slice(&[
        "silence",
        "add",
        "db-01",
        "--for",
        "1h",
        "--reason",
        "disk swap",
    ]);
    running.run(&again).await.unwrap();
    let mut remove = vec!["--token", writer.as_str()];
    remove.extend_from_slice(&["silence", "remove", "2"]);
    assert_eq!(running.run(&remove).await.unwrap(), "silence 2 removed\n");
    let listed = running.run(&["silence", "list"]).await.unwrap();
    assert!(listed.contains("\n 2  db-01    removed 0s ago"), "{listed}");
    let gone = running.run(&remove).await.unwrap_err().to_string();
    assert!(
        gone.contains("answered 404") && gone.contains("no silence \"2\" in force"),
        "{gone}"
    );
    running.stop().await;
}

/// An intermittent fault (failures that come back within the merge gap) is one incident with
/// its bursts: one DOWN, one RECOVERED once it has stayed away for the gap, and `why` says so.
#[tokio::test]
async fn an_intermittent_fault_is_one_incident_and_one_alert() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let receiver = Receiver::default();
    let a = alerter(&h, config(&receiver.start().await, "stale_after = 0\n")).await;
    // Refused twice, healthy, refused again 2 minutes later, then healthy for good.
    let story = [(1, false), (2, false), (3, true), (7, false), (8, true)];
    for (n, ok) in story {
        let check = if ok {
            ok_check(cycle(n))
        } else {
            refused(cycle(n))
        };
        at(&h, &token, cycle(n), check).await;
        pass(&a, cycle(n) + 1000).await;
    }
    assert_eq!(h.count("incidents").await, 1, "one incident");
    assert_eq!(receiver.events(), ["down"]);
    assert_eq!(pass(&a, cycle(8) + MERGE_GAP_MS).await, (1, 1));
    assert_eq!(receiver.events(), ["down", "recovered"]);
    let recovered = &receiver.bodies()[1];
    assert_eq!(recovered["failed_checks"], 3);
    assert_eq!(recovered["ended_at_ms"], cycle(8));

    let running = Running::start(&h).await;
    let why = running
        .run(&["why", "web-01", "--since", "1h"])
        .await
        .unwrap();
    running.stop().await;
    // Its bursts began at cycles 1 and 7; 3 of its 4 checks failed (cycle 3's healthy one,
    // between the bursts, counts; cycle 8's, after the last failure, does not).
    let bursts = format!(
        "2 bursts, at {}, {}; 3 of 4 checks failed (75.0 %)",
        timefmt::rfc3339(cycle(1)),
        timefmt::short_time(cycle(7), cycle(1))
    );
    assert!(
        why.contains(&format!(
            "failed:   3 checks\n              intermittent: {bursts}\n"
        )),
        "{why}"
    );
    let (_, page) = h.get("/servers/web-01").await;
    let page = page.as_str().unwrap();
    assert!(
        page.contains(&format!("<b>intermittent</b>: {bursts}")),
        "the page marks it"
    );
    // Past the gap, the same cause is a new incident.
    let much_later = cycle(8) + MERGE_GAP_MS + 1;
    at(&h, &token, much_later, refused(much_later)).await;
    assert_eq!(h.count("incidents").await, 2);
}

/// With `group_wait`, the first DOWN of a cause waits for the others: three servers whose
/// incidents reach the rule a second apart are one message from the start.
#[tokio::test]
async fn group_wait_makes_servers_failing_a_second_apart_one_message() {
    let h = Harness::new().await;
    let receiver = Receiver::default();
    let url = receiver.start().await;
    let a = alerter(
        &h,
        config_with("group_wait = \"5s\"\n", &url, "stale_after = 0\n"),
    )
    .await;
    let names = ["web-01", "web-02", "web-03"];
    let mut tokens = Vec::new();
    for name in names {
        tokens.push(h.token(name).await);
    }
    // Each server's second failed check comes a second after the previous server's, and a
    // pass runs after each, as the collector does after every report.
    let t = cycle(2);
    for (i, (name, token)) in names.iter().zip(&tokens).enumerate() {
        let at_ms = t + i as i64 * 1000;
        for n in [at_ms - 30_000, at_ms] {
            h.set_now(n);
            post_all(&h, token, &[report(name, n, vec![refused(n)])]).await;
        }
        assert_eq!(pass(&a, at_ms).await, (1, 0), "{name} waits");
    }
    assert_eq!(a.deliver(t + 4_999).await.unwrap(), 0);
    assert_eq!(a.deliver(t + 5_000).await.unwrap(), 3);
    let got = receiver.bodies();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["title"], "[DOWN] 3 servers: connection_refused");
}

/// Failed checks during a silence or a weekly window of the config are marked as in
/// maintenance in `why` and on the page, and availability is shown with and without them.
#[tokio::test]
async fn checks_during_maintenance_are_marked_and_availability_shown_without_them() {
    use axum::body::Body;
    use axum::http::Request;
    use causeway_collector::silences::{self, NewSilence};
    use causeway_collector::views::WhyView;
    let h = Harness::new().await;
    // Made before its first check (the harness's token is made at NOW, after them).
    let token = causeway_collector::tokens::add(&h.db.write, "web-01", cycle(0))
        .await
        .unwrap()
        .token;
    // NOW is a Monday, 12:04:30 UTC; cycle(n) is 11:54:30 + n x 30 s. The weekly window
    // covers cycles 3 to 6, the silence made at cycle 10 for a minute cycles 10 and 11.
    let receiver = Receiver::default();
    let a = alerter(
        &h,
        config(
            &receiver.start().await,
            "stale_after = 0\n[[maintenance]]\nservers = [\"web-*\"]\n\
             weekly = \"mon 11:56-11:58\"\nreason = \"weekly updates\"\n",
        ),
    )
    .await;
    let failing = [4, 5, 10, 11, 13];
    for n in 1..=14 {
        if n == 10 {
            let new = NewSilence {
                servers: "web-01".into(),
                duration_s: 60,
                reason: "kernel upgrade".into(),
            };
            silences::add(&h.db.write, &new, "ops", cycle(10))
                .await
                .unwrap();
        }
        let check = match failing.contains(&n) {
            true => refused(cycle(n)),
            false => ok_check(cycle(n)),
        };
        at(&h, &token, cycle(n), check).await;
    }
    h.set_now(cycle(14) + 1000);
    let app = causeway_collector::api::app(causeway_collector::api::AppState {
        alerts: Some(a.clone()),
        ..h.state()
    });
    let get = |path: &str| Request::get(path).body(Body::empty()).unwrap();
    let (_, json) = send(app.clone(), get("/api/v1/servers/web-01/why")).await;
    let why: WhyView = serde_json::from_value(json).unwrap();
    assert_eq!((why.availability.ok, why.availability.total), (9, 14));
    let outside = why.availability_outside_maintenance.unwrap();
    assert_eq!(
        (outside.ok, outside.total),
        (7, 8),
        "6 checks were in maintenance"
    );
    let windows: Vec<(String, i64, i64, Option<u64>, u64)> = why
        .maintenance
        .iter()
        .map(|m| {
            (
                m.label(),
                m.started_at_ms,
                m.ended_at_ms,
                m.checks,
                m.failed,
            )
        })
        .collect();
    let monday = NOW - NOW.rem_euclid(86_400_000);
    assert_eq!(
        windows,
        [
            (
                "weekly (weekly updates)".into(),
                monday + 716 * MIN,
                monday + 718 * MIN,
                Some(4),
                2
            ),
            (
                "silence 1 (kernel upgrade)".into(),
                cycle(10),
                cycle(12),
                Some(2),
                2
            ),
        ]
    );
    let text = probectl::why::render_why(&why, 3_600_000);
    println!("{text}");
    for line in [
        "web-01: availability 64.28% over the last 1h (9 of 14 checks ok), state up\n  \
         outside maintenance: 87.50% (7 of 8 checks ok)\n",
        "              during maintenance: weekly (weekly updates)\n\
         \x20             during maintenance: silence 1 (kernel upgrade)\n",
        "Maintenance (2):\n  weekly (weekly updates)\n",
        "  silence 1 (kernel upgrade) by ops\n",
        "    checks:   2 checks, 2 failed\n",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }
    let (_, page) = send(app, get("/servers/web-01")).await;
    // With healthy checks kept for 5 minutes only, the weekly window's can no longer be
    // counted: its failures are listed, and availability is not shown without it.
    let short = causeway_collector::api::app(causeway_collector::api::AppState {
        alerts: Some(a),
        retention: causeway_collector::ingest::Retention {
            raw: std::time::Duration::from_secs(300),
            ..Default::default()
        },
        ..h.state()
    });
    let (_, json) = send(short, get("/api/v1/servers/web-01/why")).await;
    let why: WhyView = serde_json::from_value(json).unwrap();
    assert_eq!(why.availability_outside_maintenance, None);
    assert_eq!(
        why.maintenance[0].checks_phrase(),
        "2 failed (healthy checks this old are not kept)"
    );
    assert_eq!(why.maintenance[1].checks_phrase(), "2 checks, 2 failed");
    let page = page.as_str().unwrap();
    for part in [
        "<div>30d outside maintenance<b>87.50%</b></div>",
        "<p class=\"muted\"><b>during maintenance</b>: silence 1 (kernel upgrade)</p>",
        "<h2>Maintenance, last 30 days (2)</h2>",
    ] {
        assert!(page.contains(part), "{part:?} on the page:\n{page}");
    }
}

/// A fault that keeps coming back stays one bounded row: its bursts are counted, the first 50
/// starts kept.
#[tokio::test]
async fn a_fault_that_keeps_coming_back_keeps_50_burst_starts() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    for n in 0..55 {
        at(&h, &token, cycle(2 * n), refused(cycle(2 * n))).await;
        at(&h, &token, cycle(2 * n + 1), ok_check(cycle(2 * n + 1))).await;
    }
    assert_eq!(h.count("incidents").await, 1);
    let (_, incidents) = h.get("/api/v1/servers/web-01/incidents").await;
    let incident = &incidents["incidents"][0];
    assert_eq!(incident["bursts"], 55, "{incident:#}");
    let starts: Vec<i64> = (0..50).map(|n| cycle(2 * n)).collect();
    assert_eq!(incident["bursts_at_ms"], serde_json::json!(starts));
    // 55 failed of 109 checks: the last healthy one came after the last failure.
    assert_eq!(
        (&incident["failed_checks"], &incident["checks"]),
        (&serde_json::json!(55), &serde_json::json!(109))
    );
}

/// Servers failing with one cause within `group_window` are one message listing each; one
/// that fails later in the window waits for its end; another cause goes out on its own.
#[tokio::test]
async fn servers_failing_together_are_one_message() {
    let h = Harness::new().await;
    let receiver = Receiver::default();
    let a = alerter(&h, config(&receiver.start().await, "stale_after = 0\n")).await;
    let mut tokens = Vec::new();
    for name in ["web-01", "web-02", "web-03", "web-04"] {
        tokens.push((name, h.token(name).await));
    }
    for n in 1..=2 {
        h.set_now(cycle(n));
        for (name, token) in &tokens[..3] {
            post_all(
                &h,
                token,
                &[report(name, cycle(n), vec![refused(cycle(n))])],
            )
            .await;
        }
    }
    let t = cycle(2) + 1000;
    assert_eq!(
        pass(&a, t).await,
        (3, 3),
        "three notifications in one message"
    );
    let got = receiver.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let (headers, body) = &got[0];
    assert_eq!(
        headers.get(SIGNATURE_HEADER).unwrap(),
        &signature(SECRET, body)
    );
    let grouped: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(grouped["grouped"], true);
    assert_eq!(grouped["title"], "[DOWN] 3 servers: connection_refused");
    assert_eq!(
        grouped["servers"],
        serde_json::json!(["web-01", "web-02", "web-03"])
    );
    let text = grouped["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "3 servers are down with connection_refused: nothing listens on the canary port: \
             the SYN was refused.\nweb-01 since "
        ),
        "{text}"
    );
    assert!(
        text.contains("https://causeway.example.net/servers/web-03/checks/"),
        "{text}"
    );

    // web-04 fails 10 s later: it waits for the window's end (30 s after the first message).
    let (name, token) = &tokens[3];
    for at_ms in [t + 9_000, t + 10_000] {
        h.set_now(at_ms);
        post_all(&h, token, &[report(name, at_ms, vec![refused(at_ms)])]).await;
    }
    assert_eq!(pass(&a, t + 11_000).await, (1, 0), "held for the window");
    assert_eq!(a.deliver(t + 29_000).await.unwrap(), 0);
    assert_eq!(a.deliver(t + 30_000).await.unwrap(), 1);
    let events = receiver.bodies();
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["title"], "[DOWN] web-04: connection_refused");
    assert!(events[1].get("grouped").is_none());
}

/// A weekly maintenance window from the config keeps its servers quiet while it lasts.
#[tokio::test]
async fn a_weekly_maintenance_window_keeps_its_servers_quiet() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let receiver = Receiver::default();
    // NOW is Monday 2026-11-23 12:04:30 UTC.
    let window = "stale_after = 0\n[[maintenance]]\nservers = [\"web-*\"]\n\
                  weekly = \"mon 12:00-13:00\"\nreason = \"weekly updates\"\n";
    let a = alerter(&h, config(&receiver.start().await, window)).await;
    for n in 1..=2 {
        at(&h, &token, cycle(n), refused(cycle(n))).await;
    }
    assert_eq!(pass(&a, NOW).await, (0, 0), "inside the window");
    assert_eq!(
        pass(&a, NOW + 55 * MIN).await,
        (0, 0),
        "12:59:30, still inside"
    );
    let thirteen = NOW - 4 * MIN - 30_000 + HOUR;
    assert_eq!(
        pass(&a, thirteen).await,
        (1, 1),
        "13:00, the window is over"
    );
}
