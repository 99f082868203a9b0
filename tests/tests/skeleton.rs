//! The walking skeleton end to end: a canary host running real nginx and the probe, a resolver
//! host running unbound, and the collector on its own host, joined by a bridge.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use causeway_e2e::services::{self, Collector, ProbeSetup};
use causeway_e2e::{Host, Lab, now_ms, wait_for};
use serde_json::Value;

const SERVER: &str = "canary-01";
/// The probe's cycle: short, so the scenarios run in seconds.
const INTERVAL_MS: i64 = 1_000;
/// Generous: a slow CI machine must not fail a test that is right.
const PATIENCE: Duration = Duration::from_secs(60);

struct Setup {
    lab: Lab,
    canary: Host,
    collector: Collector,
    spool: std::path::PathBuf,
}

/// canary (nginx + probe) at .2, collector at .3, resolver at .53; the probe resolves
/// `canary.lab` through unbound, so the whole path, DNS included, is real.
fn setup(test: &str) -> Result<Setup> {
    let mut lab = Lab::new(test)?;
    let canary = lab.add_host("canary", 2)?;
    let coll_host = lab.add_host("coll", 3)?;
    let dns = lab.add_host("dns", 53)?;

    let record = format!("canary.lab. 30 IN A {}", canary.addr);
    let unbound = services::start_unbound(&lab, &dns, "unbound", &[&record])?;
    lab.adopt(unbound);

    let db = lab.path("causeway.db");
    let token = services::add_token(&db, SERVER)?;
    let collector = services::start_collector(&lab, &coll_host, &db)?;
    let nginx = services::start_nginx(&mut lab, &canary, "nginx")?;
    lab.adopt(nginx);

    let collector_url = collector.url.clone();
    let resolvers = [dns.addr.to_string()];
    let (config, spool) = services::write_probe_config(
        &lab,
        &ProbeSetup {
            server: SERVER,
            collector_url: &collector_url,
            token: &token,
            canary_url: "http://canary.lab/",
            resolvers: &resolvers,
            interval: "1s",
            timeout: "800ms",
            ..Default::default()
        },
    )?;
    let probe = services::start_probe(&lab, &canary, &config)?;
    lab.adopt(probe);
    Ok(Setup {
        lab,
        canary,
        collector,
        spool,
    })
}

fn results(collector: &Collector) -> Result<Vec<Value>> {
    services::results(collector, SERVER)
}

fn why_json(collector: &Collector) -> Result<Value> {
    let out = services::probectl(collector, &["why", SERVER, "--since", "1h", "--json"])?;
    serde_json::from_str(&out).with_context(|| format!("probectl why --json printed {out}"))
}

fn incidents(why: &Value) -> Vec<Value> {
    why["incidents"].as_array().cloned().unwrap_or_default()
}

/// Waits until the collector holds at least `n` results that started after `after_ms`, and
/// returns them oldest first.
fn wait_results_after(collector: &Collector, after_ms: i64, n: usize) -> Result<Vec<Value>> {
    services::wait_results(collector, SERVER, after_ms, n, PATIENCE, |_| true)
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn refused_connection_opens_an_incident_that_closes_when_nginx_returns() -> Result<()> {
    let Setup {
        mut lab,
        canary,
        collector,
        ..
    } = setup("refused")?;

    // While nginx serves, every check succeeds.
    let healthy = wait_results_after(&collector, 0, 3)?;
    for r in &healthy {
        ensure!(r["ok"] == true, "a check failed while nginx served: {r}");
        ensure!(
            r["address"] == canary.addr.to_string(),
            "resolved to the wrong address: {r}"
        );
    }
    let server = services::api_get(&collector, &format!("/api/v1/servers/{SERVER}"))?;
    ensure!(server["state"] == "up", "state while healthy: {server}");
    ensure!(
        server["availability"]["1h"]["ratio"] == 1.0,
        "availability: {server}"
    );

    // Stop nginx; the next checks are refused.
    let mut nginx = lab.take("nginx").context("no nginx in the lab")?;
    nginx.stop().context("nginx did not exit on SIGTERM")?;
    let stopped_at = now_ms();
    let after_stop = wait_results_after(&collector, stopped_at, 3)?;
    for r in &after_stop {
        ensure!(
            r["ok"] == false,
            "a check succeeded with nginx stopped: {r}"
        );
        ensure!(
            r["cause"] == "connection_refused",
            "cause with nginx stopped: {r}"
        );
    }
    let first = after_stop[0]["started_at_ms"].as_i64().unwrap_or(i64::MAX);
    ensure!(
        first - stopped_at <= 2 * INTERVAL_MS,
        "the first refused check started {} ms after nginx stopped, more than two intervals",
        first - stopped_at
    );

    let why = why_json(&collector)?;
    let open: Vec<Value> = incidents(&why)
        .into_iter()
        .filter(|i| i["open"] == true)
        .collect();
    ensure!(open.len() == 1, "expected one open incident: {why}");
    ensure!(
        open[0]["cause"] == "connection_refused",
        "open incident: {}",
        open[0]
    );
    let text = services::probectl(&collector, &["why", SERVER, "--since", "1h"])?;
    ensure!(
        text.contains("[OPEN] connection_refused"),
        "probectl why printed:\n{text}"
    );
    ensure!(
        text.contains(&canary.addr.to_string()),
        "no evidence address in:\n{text}"
    );

    // nginx back: checks succeed and the incident closes.
    let nginx = services::start_nginx(&mut lab, &canary, "nginx")?;
    lab.adopt(nginx);
    let restarted_at = now_ms();
    let back = wait_results_after(&collector, restarted_at, 2)?;
    ensure!(
        back.iter().all(|r| r["ok"] == true),
        "checks after nginx returned: {back:?}"
    );
    let why = why_json(&collector)?;
    let all = incidents(&why);
    ensure!(all.len() == 1, "expected exactly one incident: {why}");
    ensure!(
        all[0]["open"] == false,
        "the incident is still open: {}",
        all[0]
    );
    ensure!(
        all[0]["ended_at_ms"].as_i64().is_some(),
        "no end time: {}",
        all[0]
    );
    ensure!(
        all[0]["failed_checks"].as_u64().unwrap_or(0) >= 3,
        "failed_checks: {}",
        all[0]
    );
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn reports_made_while_the_collector_is_down_arrive_once() -> Result<()> {
    let Setup {
        lab,
        mut collector,
        spool,
        ..
    } = setup("outage")?;
    wait_results_after(&collector, 0, 2)?;

    // Collector down for several intervals: reports pile up in the probe's spool.
    collector.stop()?;
    let gap = wait_for(
        "4 reports spooled while the collector is down",
        PATIENCE,
        || {
            let files = services::spooled_reports(&spool)?;
            Ok((files.len() >= 4).then_some(files))
        },
    )?;
    let replay_copy = std::fs::read(spool.join(&gap[0]))?;

    collector.restart(&lab)?;
    wait_for("the spool to drain", PATIENCE, || {
        Ok(services::spooled_reports(&spool)?.is_empty().then_some(()))
    })?;

    // Every report of the gap is stored, each exactly once (one canary, one address).
    let stored = results(&collector)?;
    for file in &gap {
        let id = report_id_of(file)?;
        let n = stored.iter().filter(|r| r["report_id"] == id).count();
        ensure!(n == 1, "report {id} of the gap is stored {n} times");
    }

    // A replay of an acknowledged report is acknowledged again and stored once.
    std::fs::write(spool.join(&gap[0]), &replay_copy)?;
    wait_for("the replayed report to be acknowledged", PATIENCE, || {
        Ok(services::spooled_reports(&spool)?.is_empty().then_some(()))
    })?;
    let id = report_id_of(&gap[0])?;
    let n = results(&collector)?
        .iter()
        .filter(|r| r["report_id"] == id)
        .count();
    ensure!(n == 1, "the replayed report {id} is stored {n} times");
    Ok(())
}

/// `<started_at>-<uuid>.json` -> `<uuid>`
fn report_id_of(file: &str) -> Result<String> {
    let stem = file.strip_suffix(".json").context("not a report file")?;
    let (_, id) = stem
        .split_once('-')
        .context("no report id in the file name")?;
    Ok(id.to_owned())
}
