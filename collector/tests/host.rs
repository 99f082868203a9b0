//! Host observations and conditions on a real SQLite file: grouping through the HTTP app (no
//! socket), the `host` endpoint and `why`'s JSON, and `probectl why` and `probectl host` over
//! real HTTP.

mod common;

use axum::http::StatusCode;
use causeway_schema::{Cause, HostCondition, Report};
use common::*;
use serde_json::{Value, json};

/// A report of web-01 at cycle `n`, its check ok, with the host `host` reads at that cycle.
fn on(n: i64, host: fn(i64) -> ProbeHost) -> Report {
    let at = cycle(n);
    with_host(report("web-01", at, vec![ok_check(at)]), &host(at))
}

fn healthy(at: i64) -> ProbeHost {
    ProbeHost::at(at)
}

fn leaking(at: i64) -> ProbeHost {
    ProbeHost::at(at).leaking()
}

/// Leaking, and nginx killed by the OOM killer at cycle 2 (the kill stays in the probe's
/// window for the rest of these stories).
fn leaking_killed(at: i64) -> ProbeHost {
    ProbeHost::at(at).leaking().killed(cycle(2) - 2_000)
}

/// The condition of `cause` the probe reports for `host`.
fn reported(host: &ProbeHost, cause: Cause) -> HostCondition {
    host.report()
        .condition(cause)
        .unwrap_or_else(|| panic!("{host:?} has no {cause}"))
        .clone()
}

async fn host_of(h: &Harness, query: &str) -> Value {
    let (status, body) = h.get(&format!("/api/v1/servers/web-01/host{query}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn conditions(body: &Value) -> &Vec<Value> {
    body["conditions"].as_array().unwrap()
}

/// The `causes` column of each stored observation, oldest first.
async fn observed_causes(h: &Harness) -> Vec<Option<String>> {
    sqlx::query_scalar("SELECT causes FROM host_observations ORDER BY started_at_ms")
        .fetch_all(&h.db.read)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_leak_makes_one_condition_until_the_probe_no_longer_finds_it() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    post_all(
        &h,
        &token,
        &[on(0, healthy), on(1, leaking), on(2, leaking)],
    )
    .await;
    let body = host_of(&h, "").await;
    let open = conditions(&body);
    assert_eq!(open.len(), 1, "{body}");
    assert_eq!(open[0]["cause"], "kernel_memory_leak");
    assert_eq!(open[0]["open"], true);
    assert_eq!(open[0]["ended_at_ms"], Value::Null);
    assert_eq!(open[0]["observations"], 2);
    assert_eq!(open[0]["started_at_ms"], cycle(1));
    assert_eq!(open[0]["last_seen_at_ms"], cycle(2));

    post_all(&h, &token, &[on(3, healthy)]).await;
    // The canary answered all along: no incident, the server is up.
    let (_, server) = h.get("/api/v1/servers/web-01").await;
    assert_eq!(server["state"], "up", "{server}");
    assert_eq!(h.count("incidents").await, 0);
    // A row per change of causes; cycle 2 found what cycle 1 did, 30 s later: its readings
    // replaced cycle 1's in the same row.
    assert_eq!(h.count("host_observations").await, 3);
    assert_eq!(
        observed_causes(&h).await,
        [None, Some("kernel_memory_leak".into()), None]
    );

    let body = host_of(&h, "").await;
    let all = conditions(&body);
    assert_eq!(all.len(), 1, "{body}");
    let c = &all[0];
    let first = reported(&leaking(cycle(1)), Cause::KernelMemoryLeak);
    let last = reported(&leaking(cycle(2)), Cause::KernelMemoryLeak);
    assert_eq!(c["cause"], "kernel_memory_leak");
    assert_eq!(c["summary"], Cause::KernelMemoryLeak.summary());
    assert_eq!(c["started_at_ms"], cycle(1));
    assert_eq!(c["last_seen_at_ms"], cycle(2));
    assert_eq!(c["ended_at_ms"], cycle(3));
    assert_eq!(c["open"], false);
    assert_eq!(c["observations"], 2);
    assert_eq!(c["explanation"], first.explanation);
    assert_eq!(c["last_explanation"], last.explanation);
    assert_eq!(c["evidence"], json!(first));
    assert_eq!(c["last_evidence"], json!(last));
    assert!(
        first.explanation.starts_with(
            "unreclaimable kernel memory (SUnreclaim) is 2.5 GiB, 15.6% of RAM (threshold 10%)"
        ),
        "{}",
        first.explanation
    );
}

#[tokio::test]
async fn two_causes_at_once_are_two_conditions_each_with_its_own_end() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    post_all(
        &h,
        &token,
        &[
            on(1, leaking),
            on(2, leaking_killed),
            on(3, leaking_killed),
            // The kill left the probe's window; the leak goes on.
            on(4, leaking),
        ],
    )
    .await;
    let body = host_of(&h, "").await;
    let all = conditions(&body);
    assert_eq!(all.len(), 2, "{body}");
    // Newest first.
    let (oom, leak) = (&all[0], &all[1]);
    assert_eq!(oom["cause"], "oom_kill");
    assert_eq!(oom["started_at_ms"], cycle(2));
    assert_eq!(oom["last_seen_at_ms"], cycle(3));
    assert_eq!(oom["ended_at_ms"], cycle(4));
    assert_eq!(oom["observations"], 2);
    // The first explanation and the latest: the kill 2 s, then 32 s before the cycle.
    let first = reported(&leaking_killed(cycle(2)), Cause::OomKill);
    let last = reported(&leaking_killed(cycle(3)), Cause::OomKill);
    assert!(
        first.explanation.ends_with(" 2s ago"),
        "{}",
        first.explanation
    );
    assert!(
        last.explanation.ends_with(" 32s ago"),
        "{}",
        last.explanation
    );
    assert_eq!(oom["explanation"], first.explanation);
    assert_eq!(oom["last_explanation"], last.explanation);
    assert_eq!(oom["last_evidence"], json!(last));
    assert_eq!(leak["cause"], "kernel_memory_leak");
    assert_eq!(leak["open"], true);
    assert_eq!(leak["started_at_ms"], cycle(1));
    assert_eq!(leak["observations"], 4);

    assert_eq!(
        observed_causes(&h).await,
        [
            Some("kernel_memory_leak".into()),
            Some("oom_kill kernel_memory_leak".into()),
            Some("kernel_memory_leak".into()),
        ]
    );
    assert_eq!(body["latest"]["causes"], json!(["kernel_memory_leak"]));
}

#[tokio::test]
async fn a_report_without_host_changes_nothing() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    // The probe downgraded to a version that predates host evidence, then upgraded again.
    let old_probe = report("web-01", cycle(2), vec![ok_check(cycle(2))]);
    post_all(&h, &token, &[on(1, leaking), old_probe]).await;
    assert_eq!(h.count("host_observations").await, 1);
    let body = host_of(&h, "").await;
    let c = &conditions(&body)[0];
    assert_eq!(c["open"], true, "{body}");
    assert_eq!(c["observations"], 1);
    assert_eq!(c["last_seen_at_ms"], cycle(1));
    assert_eq!(body["latest"]["started_at_ms"], cycle(1));

    // The next report with the host closes it, at its own start.
    post_all(&h, &token, &[on(3, healthy)]).await;
    let body = host_of(&h, "").await;
    let c = &conditions(&body)[0];
    assert_eq!(c["ended_at_ms"], cycle(3), "{body}");
    assert_eq!(c["observations"], 1);
}

#[tokio::test]
async fn readings_within_a_minute_update_one_row_that_keeps_its_start() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    // Cycles are 30 s apart: 1 and 2 share a row, 3 is a minute after 1 and starts the next.
    post_all(&h, &token, &[on(1, healthy), on(2, healthy)]).await;
    assert_eq!(h.count("host_observations").await, 1);
    let body = host_of(&h, "").await;
    assert_eq!(body["latest"]["started_at_ms"], cycle(2), "{body}");
    assert_eq!(body["latest"]["memory"]["at_ms"], cycle(2), "{body}");
    // The row's start is its first reading's: its index entry did not move (migration 0013).
    let starts: Vec<i64> = sqlx::query_scalar("SELECT started_at_ms FROM host_observations")
        .fetch_all(&h.db.read)
        .await
        .unwrap();
    assert_eq!(starts, [cycle(1)]);

    post_all(&h, &token, &[on(3, healthy)]).await;
    assert_eq!(h.count("host_observations").await, 2);
    let body = host_of(&h, "").await;
    assert_eq!(body["latest"]["started_at_ms"], cycle(3), "{body}");
}

#[tokio::test]
async fn an_old_report_changes_neither_conditions_nor_readings() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    // Then replays from the spool, older than what was processed: one healthy, one with a kill.
    post_all(
        &h,
        &token,
        &[on(3, leaking), on(1, healthy), on(2, leaking_killed)],
    )
    .await;
    // Only the newest readings are kept: the old reports' are history their minutes already
    // have.
    assert_eq!(h.count("host_observations").await, 1);
    let body = host_of(&h, "").await;
    let all = conditions(&body);
    assert_eq!(all.len(), 1, "{body}");
    assert_eq!(all[0]["cause"], "kernel_memory_leak");
    assert_eq!(all[0]["open"], true);
    assert_eq!(all[0]["observations"], 1);
    assert_eq!(all[0]["started_at_ms"], cycle(3));
    // The newest readings by time, not by arrival.
    assert_eq!(body["latest"]["started_at_ms"], cycle(3));
    assert_eq!(
        observed_causes(&h).await,
        [Some("kernel_memory_leak".into())]
    );
}

#[tokio::test]
async fn a_replay_or_a_repeated_cause_counts_once() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let mut r = on(1, leaking);
    let host = r.host.as_mut().unwrap();
    let repeated = host.conditions[0].clone();
    host.conditions.push(repeated);
    post_all(&h, &token, std::slice::from_ref(&r)).await;
    let (status, answer) = h.post_report(&token, &r).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["duplicate"], true, "{answer}");

    assert_eq!(h.count("host_observations").await, 1);
    assert_eq!(
        observed_causes(&h).await,
        [Some("kernel_memory_leak".into())]
    );
    let body = host_of(&h, "").await;
    assert_eq!(conditions(&body).len(), 1, "{body}");
    assert_eq!(conditions(&body)[0]["observations"], 1, "{body}");
}

#[tokio::test]
async fn the_host_endpoint_gives_the_latest_readings_and_the_window_counts() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    h.token("db-01").await;
    post_all(
        &h,
        &token,
        &[
            on(1, leaking),
            on(2, leaking_killed),
            on(3, leaking),
            on(4, healthy),
        ],
    )
    .await;

    let body = host_of(&h, "").await;
    assert_eq!(body["server"], "web-01");
    assert_eq!(body["now_ms"], NOW);
    assert_eq!(body["since_ms"], NOW - DAY);
    let report_id = report_id_at(&h, cycle(4)).await;
    assert_eq!(
        body["latest"],
        json!({
            "report_id": report_id,
            "started_at_ms": cycle(4),
            "boot_id": BOOT_ID,
            "uptime_s": 273_600,
            "memory": {
                "at_ms": cycle(4),
                "total_kb": 16 * GIB,
                "available_kb": 12 * GIB,
                "slab_kb": 500 * MIB,
                "s_unreclaim_kb": 200 * MIB
            },
            "pressure": {
                "at_ms": cycle(4),
                "cpus": 4,
                "load1": 0.4,
                "load5": 0.3,
                "load15": 0.2,
                "runnable": 1,
                "cpu_some": 1.0,
                "memory_some": 0.0,
                "memory_full": 0.0,
                "io_some": 0.5,
                "io_full": 0.1
            },
            "causes": [],
            "warnings": []
        })
    );
    let all = conditions(&body);
    assert_eq!(all.len(), 2, "{body}");
    assert_eq!(all[0]["cause"], "oom_kill", "{body}");
    assert_eq!(all[0]["ended_at_ms"], cycle(3));
    assert_eq!(all[1]["cause"], "kernel_memory_leak");
    assert_eq!(all[1]["ended_at_ms"], cycle(4));

    // From after the kill's end: only the leak's condition, which ended later.
    let body = host_of(&h, &format!("?since_ms={}", cycle(3) + 1)).await;
    let all = conditions(&body);
    assert_eq!(all.len(), 1, "{body}");
    assert_eq!(all[0]["cause"], "kernel_memory_leak");
    // After every end: none, and the latest readings all the same.
    let body = host_of(&h, &format!("?since_ms={}", cycle(4) + 1)).await;
    assert_eq!(conditions(&body).len(), 0, "{body}");
    assert_eq!(body["latest"]["started_at_ms"], cycle(4));

    // An open condition overlaps every window that reaches now.
    post_all(&h, &token, &[on(5, leaking)]).await;
    let body = host_of(&h, &format!("?since_ms={}", NOW)).await;
    assert_eq!(conditions(&body).len(), 1, "{body}");
    assert_eq!(conditions(&body)[0]["open"], true);

    // A server whose probe never sent its host.
    let (status, body) = h.get("/api/v1/servers/db-01/host").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["latest"], Value::Null);
    assert_eq!(body["conditions"], json!([]));
}

async fn report_id_at(h: &Harness, started_at_ms: i64) -> String {
    let uuid: Vec<u8> =
        sqlx::query_scalar("SELECT report_uuid FROM results WHERE started_at_ms = $1")
            .bind(started_at_ms)
            .fetch_one(&h.db.read)
            .await
            .unwrap();
    uuid::Uuid::from_slice(&uuid).unwrap().to_string()
}

#[tokio::test]
async fn unknown_servers_and_bad_windows_are_refused() {
    let h = Harness::new().await;
    h.token("web-01").await;
    let (status, body) = h.get("/api/v1/servers/web01/host").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": "unknown server \"web01\"", "closest": ["web-01"]})
    );
    let (status, body) = h.get("/api/v1/servers/web-01/host?since_ms=-1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["error"],
        "since_ms: \"-1\" is not allowed; expected milliseconds since the Unix epoch, a whole \
         number 0 or more"
    );
}

#[tokio::test]
async fn why_carries_the_host_conditions_and_the_checks_host() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    post_all(&h, &token, &host_story()).await;
    let (status, why) = h.get("/api/v1/servers/web-01/why").await;
    assert_eq!(status, StatusCode::OK, "{why}");
    let host = host_of(&h, "").await;
    assert_eq!(why["host_conditions"], host["conditions"], "{why}");
    assert_eq!(why["host_conditions"].as_array().unwrap().len(), 2);
    assert_eq!(why["resolver_conditions"], json!([]));
    let incident = &why["incidents"][0];
    assert_eq!(incident["cause"], "oom_kill", "{why}");
    let sample = &incident["samples"][1];
    assert_eq!(sample["contributing"], json!(["kernel_memory_leak"]));
    // The failed check keeps the whole series and the kernel lines.
    let evidence = &sample["evidence"]["host"];
    assert_eq!(
        evidence["memory"].as_array().unwrap().len(),
        6,
        "{evidence}"
    );
    assert_eq!(evidence["kernel_lines"].as_array().unwrap().len(), 2);
    assert_eq!(evidence["oom_kills"][0]["pid"], NGINX_PID);
}

#[tokio::test]
async fn evidence_that_no_longer_reads_costs_the_detail_not_the_answer() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    post_all(&h, &token, &[on(1, leaking)]).await;
    sqlx::query("UPDATE host_conditions SET last_evidence = '{\"from\": \"the future\"}'")
        .execute(&h.db.write)
        .await
        .unwrap();
    let (status, why) = h.get("/api/v1/servers/web-01/why").await;
    assert_eq!(status, StatusCode::OK, "{why}");
    let c = &why["host_conditions"][0];
    assert_eq!(c["last_evidence"], Value::Null, "{c}");
    assert_eq!(c["evidence"]["cause"], "kernel_memory_leak");
    assert_eq!(c["last_explanation"], c["explanation"]);
}

/// web-01's host: healthy in cycle 0, its kernel leaking slab from cycle 1 (an open
/// `kernel_memory_leak`), and 2 s before cycle 3 the OOM killer kills nginx, which served the
/// canary: cycles 3 and 4 fail with an `oom_kill` incident and an open `oom_kill` condition.
/// Report ids and the probe's explanations are fixed, so that the text does not follow the
/// schema's wording (its causes and the figures' rendering it does follow).
fn host_story() -> Vec<Report> {
    let kill_at = cycle(3) - 2_000;
    let host = |n: i64| {
        let h = ProbeHost::at(cycle(n));
        match n {
            0 => h,
            1 | 2 => h.leaking(),
            _ => h
                .leaking()
                .killed(kill_at)
                .warning("kernel log: 3 lines lost (the ring buffer wrapped between reads)"),
        }
    };
    let mut reports: Vec<Report> = (0..5)
        .map(|n| {
            let at = cycle(n);
            let check = if n < 3 {
                ok_check(at)
            } else {
                refused_on(at, &host(n), kill_at)
            };
            with_host(report("web-01", at, vec![check]), &host(n))
        })
        .collect();
    for (n, r) in reports.iter_mut().enumerate() {
        r.report_id = causeway_schema::ReportId(uuid::Uuid::from_u128(0x4057_0000 + n as u128));
        fix_explanations(r.host.as_mut().unwrap());
        for check in &mut r.results {
            if let Some(d) = &mut check.diagnosis {
                d.explanation = "the kernel's OOM killer killed nginx (pid 812), which served \
                                 the canary (it owned the listener on 10.77.0.2:80), 2s before \
                                 the check; the check: 10.77.0.2 refused the connection"
                    .into();
            }
            if let Some(host) = &mut check.evidence.host {
                fix_explanations(host);
            }
        }
    }
    reports
}

fn fix_explanations(host: &mut causeway_schema::HostEvidence) {
    for c in &mut host.conditions {
        let (explanation, evidence): (&str, &[&str]) = match c.cause {
            Cause::OomKill => (
                "the kernel's OOM killer killed nginx (pid 812, anon-rss 1.9 GiB, memory cgroup \
                 /system.slice/nginx.service)",
                &[
                    "32s ago: killed nginx (pid 812, anon-rss 1.9 GiB, memory cgroup \
                   /system.slice/nginx.service)",
                ],
            ),
            Cause::KernelMemoryLeak => (
                "unreclaimable kernel memory (SUnreclaim) is 2.5 GiB, 15.6% of RAM (threshold \
                 10%), up from 2.0 GiB over 2m 30s",
                &[
                    "SUnreclaim 6 of 6 samples over 2m 30s: 2.0 GiB -> 2.5 GiB",
                    "MemTotal 16.0 GiB, MemAvailable 1.5 GiB, Slab 2.8 GiB, SUnreclaim 2.5 GiB",
                ],
            ),
            other => panic!("the story has no {other} condition"),
        };
        c.explanation = explanation.into();
        c.evidence = evidence.iter().map(|&l| l.to_owned()).collect();
    }
}

/// The host conditions of [`host_story`], as `why` and `host` end.
const HOST_CONDITIONS: &str = "\
Host conditions (2):
  [OPEN] oom_kill: the kernel's OOM killer killed a process on the host
    when:     2026-11-23T11:56:00Z .. now (8m30s)
    seen:     2 cycles
    why:      the kernel's OOM killer killed nginx (pid 812, anon-rss 1.9 GiB, memory cgroup /system.slice/nginx.service)
    evidence: 32s ago: killed nginx (pid 812, anon-rss 1.9 GiB, memory cgroup /system.slice/nginx.service)
  [OPEN] kernel_memory_leak: unreclaimable kernel memory is large and growing
    when:     2026-11-23T11:55:00Z .. now (9m30s)
    seen:     4 cycles
    why:      unreclaimable kernel memory (SUnreclaim) is 2.5 GiB, 15.6% of RAM (threshold 10%), up from 2.0 GiB over 2m 30s
    evidence: SUnreclaim 6 of 6 samples over 2m 30s: 2.0 GiB -> 2.5 GiB
              MemTotal 16.0 GiB, MemAvailable 1.5 GiB, Slab 2.8 GiB, SUnreclaim 2.5 GiB
";

/// [`host_story`] told by `probectl why` and `probectl host`, over HTTP.
#[tokio::test]
async fn why_and_host_over_real_http() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let collector = Running::start(&h).await;
    collector.post(&token, &host_story()).await;

    let why = collector
        .run(&["why", "web-01", "--since", "1h"])
        .await
        .unwrap();
    let expected = format!(
        r#"web-01: availability 60.00% over the last 1h (3 of 5 checks ok), state down
Incidents (1):
  [OPEN] oom_kill: the kernel's OOM killer killed a process on the host
    when:     2026-11-23T11:56:00Z .. now (8m30s)
    failed:   2 checks
    why:      the kernel's OOM killer killed nginx (pid 812), which served the canary (it owned the listener on 10.77.0.2:80), 2s before the check; the check: 10.77.0.2 refused the connection
    evidence: last failed check: site http://canary.test/ at 10.77.0.2, started 2026-11-23T11:56:30Z
              failure: connect_refused: Connection refused (os error 111)
              timings: resolve 1.2 ms, connect 0.4 ms, total 3.1 ms
              listeners on port 80 (serving: unit nginx.service):
                looked at every 100 ms: a listener that lived for less can be missed, and each time below is this precise
                serving 10.77.0.2:80 pid 812 (nginx: worker process; unit nginx.service); inode 3001, uid 0; seen 11:04:30.000 .. 11:55:58.000, gone
              host (boot id 4c6e0f2a-9d1b-4e57-8a3c-2b7d9e1f0a65, up 3d4h):
                OOM kill at 11:55:58.000 (out of host memory): nginx (pid 812, anon-rss 1.9 GiB, total-vm 2.1 GiB, memory cgroup /system.slice/nginx.service)
                memory at 11:56:30.000 UTC: MemTotal 16.0 GiB, MemAvailable 1.5 GiB, Slab 2.8 GiB, SUnreclaim 2.5 GiB
                  SUnreclaim 2.0 GiB to 2.5 GiB over 2m30s (6 samples, +11.7 GiB per hour)
                pressure at 11:56:30.000 UTC:
                  load 0.40 0.30 0.20, 1 runnable, 4 CPUs
                  PSI avg10: cpu some 1.0%, memory some 0.0%, memory full 0.0%, io some 0.5%, io full 0.1%
                oom_kill: the kernel's OOM killer killed nginx (pid 812, anon-rss 1.9 GiB, memory cgroup /system.slice/nginx.service)
                  32s ago: killed nginx (pid 812, anon-rss 1.9 GiB, memory cgroup /system.slice/nginx.service)
                kernel_memory_leak: unreclaimable kernel memory (SUnreclaim) is 2.5 GiB, 15.6% of RAM (threshold 10%), up from 2.0 GiB over 2m 30s
                  SUnreclaim 6 of 6 samples over 2m 30s: 2.0 GiB -> 2.5 GiB
                  MemTotal 16.0 GiB, MemAvailable 1.5 GiB, Slab 2.8 GiB, SUnreclaim 2.5 GiB
                kernel log:
                  11:55:57.960 warning nginx invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0
                  11:55:58.000 err     Out of memory: Killed process 812 (nginx) total-vm:2199552kB, anon-rss:1914880kB, file-rss:0kB, shmem-rss:0kB, UID:33 pgtables:4100kB oom_score_adj:0
                warning: kernel log: 3 lines lost (the ring buffer wrapped between reads)
{HOST_CONDITIONS}"#
    );
    assert_eq!(why, expected, "\n{why}");

    let text = collector.run(&["host", "web-01"]).await.unwrap();
    let expected = format!(
        "\
web-01: host readings of 2026-11-23T11:56:30Z (8m ago)
    boot id:  4c6e0f2a-9d1b-4e57-8a3c-2b7d9e1f0a65
    uptime:   3d4h
    memory:   MemTotal 16.0 GiB, MemAvailable 1.5 GiB, Slab 2.8 GiB, SUnreclaim 2.5 GiB
    pressure: load 0.40 0.30 0.20, 1 runnable, 4 CPUs
              PSI avg10: cpu some 1.0%, memory some 0.0%, memory full 0.0%, io some 0.5%, io full 0.1%
    found:    oom_kill, kernel_memory_leak
    warnings: kernel log: 3 lines lost (the ring buffer wrapped between reads)
{HOST_CONDITIONS}"
    );
    assert_eq!(text, expected, "\n{text}");

    let json = collector
        .run(&["host", "web-01", "--since", "1h", "--json"])
        .await
        .unwrap();
    let view: causeway_collector::views::HostView = serde_json::from_str(&json).unwrap();
    assert_eq!(view.since_ms, NOW - HOUR);
    assert_eq!(view.conditions.len(), 2);

    let err = collector.run(&["host", "web01"]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"unknown server "web01"; did you mean: web-01?"#
    );
    assert_eq!(err.exit_code(), 2);

    collector.stop().await;
}

/// A kernel line and a condition's explanation carrying an escape sequence reach `why` and
/// `host` escaped.
#[tokio::test]
async fn control_characters_from_the_host_do_not_reach_the_terminal() {
    let h = Harness::new().await;
    let token = h.token("web-01").await;
    let collector = Running::start(&h).await;
    let esc = "\u{1b}[2J";
    let at = cycle(1);
    let host = ProbeHost::at(at)
        .leaking()
        .logged(at - 1_000, &format!("slab cache {esc}grew"));
    let mut r = with_host(
        report("web-01", at, vec![refused_on(at, &host, at - 5_000)]),
        &host,
    );
    r.host.as_mut().unwrap().conditions[0].explanation = format!("leak {esc}now");
    let check = &mut r.results[0];
    check.evidence.host.as_mut().unwrap().conditions[0].explanation = format!("leak {esc}then");
    collector.post(&token, &[r]).await;

    let why = collector.run(&["why", "web-01"]).await.unwrap();
    let host = collector.run(&["host", "web-01"]).await.unwrap();
    for text in [&why, &host] {
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("why:      leak \\u{1b}[2Jnow\n"), "{text}");
    }
    assert!(
        why.contains(" warning slab cache \\u{1b}[2Jgrew\n"),
        "{why}"
    );
    assert!(
        why.contains("  kernel_memory_leak: leak \\u{1b}[2Jthen\n"),
        "{why}"
    );

    collector.stop().await;
}
