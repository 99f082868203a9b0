//! 502 after an IP shuffle, end to end: real nginx as reverse proxy on a front host, real nginx
//! backends on their own hosts, the probe on the front host. The faults are injected as they
//! happen after a reboot: a backend comes back at another address (flush and add, announced
//! like a DHCP client does), two backends swap addresses, or a backend stops.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use causeway_e2e::services::{self, CANARY_TEXT, Collector, ProbeSetup};
use causeway_e2e::{Host, Lab, now_ms, wait_for};
use serde_json::Value;

const SERVER: &str = "front-01";
const INTERVAL_MS: i64 = 2_000;
/// Generous: a slow CI machine must not fail a test that is right.
const PATIENCE: Duration = Duration::from_secs(90);
const PROD: &str = "10.88.0.12:8080";
const DEV: &str = "10.88.0.13:8080";

struct Site {
    lab: Lab,
    front: Host,
    config: std::path::PathBuf,
    state: std::path::PathBuf,
    prod: Host,
    dev: Host,
    collector: Collector,
}

/// The proxy and the probe on front (10.88.0.2) forwarding to prod (10.88.0.12:8080), whose
/// page holds the canary text; dev (10.88.0.13:8080) serves another site. The probe knows both
/// backends, and has learned who they are before this returns.
fn site(test: &str) -> Result<Site> {
    let mut lab = Lab::new(test)?;
    let front = lab.add_host("front", 2)?;
    let coll_host = lab.add_host("coll", 3)?;
    let prod = lab.add_host("prod", 12)?;
    let dev = lab.add_host("dev", 13)?;
    let body = format!("prod site: {CANARY_TEXT}");
    let service = services::start_nginx_backend(&mut lab, &prod, "prod", 8080, &body)?;
    lab.adopt(service);
    let service = services::start_nginx_backend(&mut lab, &dev, "dev", 8080, "dev site")?;
    lab.adopt(service);
    let service = services::start_nginx_proxy(&mut lab, &front, "proxy", PROD)?;
    lab.adopt(service);

    let db = lab.path("causeway.db");
    let token = services::add_token(&db, SERVER)?;
    let collector = services::start_collector(&lab, &coll_host, &db)?;
    // write_probe_config keeps the probe's state here.
    let state_dir = lab.path("state");
    let backends = format!(
        "[[canary.backend]]\naddress = \"{PROD}\"\n[[canary.backend]]\naddress = \"{DEV}\"\n"
    );
    let (config, _spool) = services::write_probe_config(
        &lab,
        &ProbeSetup {
            server: SERVER,
            collector_url: &collector.url,
            token: &token,
            canary_url: &format!("http://{}/", front.addr),
            resolvers: &["system".to_owned()],
            interval: "2s",
            timeout: "1500ms",
            canary_extra: &backends,
            ..Default::default()
        },
    )?;
    let probe = services::start_probe(&lab, &front, &config)?;
    lab.adopt(probe);
    // The identities are learned on a healthy cycle and kept in the state file.
    let state = state_dir.join("state.json");
    wait_for("the probe to learn both backends", PATIENCE, || {
        let Ok(text) = std::fs::read_to_string(&state) else {
            return Ok(None);
        };
        let v: Value = serde_json::from_str(&text).context("state.json")?;
        let learned = [PROD, DEV]
            .iter()
            .all(|b| v["backends"]["site"][b]["mac"].is_string());
        Ok(learned.then_some(()))
    })?;
    Ok(Site {
        lab,
        front,
        config,
        state,
        prod,
        dev,
        collector,
    })
}

/// Waits for a failed check with `cause` that started after `after_ms`; checks it came within
/// two intervals of the fault and returns it.
fn wait_cause(site: &Site, after_ms: i64, cause: &str) -> Result<Value> {
    let found = services::wait_results(&site.collector, SERVER, after_ms, 1, PATIENCE, |r| {
        r["cause"] == cause
    })?;
    let r = found[0].clone();
    let took = r["started_at_ms"].as_i64().context("started_at_ms")? - after_ms;
    ensure!(
        took <= 2 * INTERVAL_MS,
        "{cause} came {took} ms after the fault: {r:#}"
    );
    Ok(r)
}

/// Checks that `shuffle` is the first failed check after `after_ms`: the check that first saw
/// the move already proves it, and no `upstream_down` or generic cause came before it.
fn first_failure_is(site: &Site, after_ms: i64, shuffle: &Value) -> Result<()> {
    let first = services::results(&site.collector, SERVER)?
        .into_iter()
        .filter(|r| r["ok"] == false && r["started_at_ms"].as_i64().unwrap_or(0) > after_ms)
        .min_by_key(|r| r["started_at_ms"].as_i64())
        .context("no failed check after the fault")?;
    ensure!(
        first["started_at_ms"] == shuffle["started_at_ms"],
        "the first failed check after the move was {}, before the shuffle: {first:#}",
        first["cause"]
    );
    Ok(())
}

/// The backend table of a result, by configured address.
fn backend<'a>(result: &'a Value, configured: &str) -> Result<&'a Value> {
    result["evidence"]["backends"]["backends"]
        .as_array()
        .context("no backend evidence")?
        .iter()
        .find(|b| b["configured"] == configured)
        .with_context(|| format!("{configured} is not in the backend table: {result:#}"))
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().expect("an IPv4 address")
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn backend_at_a_new_address_is_a_shuffle() -> Result<()> {
    let mut site = site("backend-moved")?;
    let fault = now_ms();
    site.prod.readdress(ip("10.88.0.15"))?;
    let r = wait_cause(&site, fault, "bad_gateway_after_ip_shuffle")?;
    first_failure_is(&site, fault, &r)?;
    ensure!(
        [502, 504].contains(&r["status"].as_u64().unwrap_or(0)),
        "{r:#}"
    );
    let prod = backend(&r, PROD)?;
    ensure!(prod["seen_at"][0]["address"] == "10.88.0.15", "{prod:#}");
    let explanation = r["explanation"].as_str().unwrap_or("");
    ensure!(
        explanation.contains("10.88.0.12:8080") && explanation.contains("10.88.0.15"),
        "{explanation}"
    );
    let dev = backend(&r, DEV)?;
    ensure!(dev["seen_at"].is_null(), "dev did not move: {dev:#}");
    let why = services::probectl(&site.collector, &["why", SERVER])?;
    println!("probectl why {SERVER}:\n{why}");
    ensure!(why.contains("bad_gateway_after_ip_shuffle"), "{why}");
    ensure!(why.contains("10.88.0.15"), "{why}");
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn swapped_backends_are_both_named() -> Result<()> {
    let mut site = site("backend-swap")?;
    let fault = now_ms();
    // Production gets the development container's address and the other way round.
    site.prod.readdress(ip("10.88.0.99"))?;
    site.dev.readdress(ip("10.88.0.12"))?;
    site.prod.readdress(ip("10.88.0.13"))?;
    let r = wait_cause(&site, fault, "bad_gateway_after_ip_shuffle")?;
    first_failure_is(&site, fault, &r)?;
    // The proxy answers 200 with the development site: only the expected text tells.
    ensure!(r["failure"]["kind"] == "body_mismatch", "{r:#}");
    ensure!(
        backend(&r, PROD)?["seen_at"][0]["address"] == "10.88.0.13",
        "{r:#}"
    );
    ensure!(
        backend(&r, DEV)?["seen_at"][0]["address"] == "10.88.0.12",
        "{r:#}"
    );
    let explanation = r["explanation"].as_str().unwrap_or("");
    for moved in ["10.88.0.12:8080", "10.88.0.13:8080"] {
        ensure!(explanation.contains(moved), "{explanation}");
    }
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn a_stopped_backend_is_upstream_down_not_a_shuffle() -> Result<()> {
    let mut site = site("backend-down")?;
    let fault = now_ms();
    site.lab.take("prod").context("the prod backend")?.stop();
    let r = wait_cause(&site, fault, "upstream_down")?;
    let prod = backend(&r, PROD)?;
    ensure!(prod["direct"]["outcome"] == "refused", "{prod:#}");
    ensure!(prod["seen_at"].is_null(), "{prod:#}");
    // And never a shuffle while it is down.
    let results = services::results(&site.collector, SERVER)?;
    ensure!(
        results
            .iter()
            .all(|r| r["cause"] != "bad_gateway_after_ip_shuffle"),
        "{results:#?}"
    );
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn a_move_across_a_reboot_names_the_reboot() -> Result<()> {
    let mut site = site("backend-reboot")?;
    // The host goes down with its probe; the probe's state file stays on disk. The new boot
    // has another boot id than the one the state file saved: write the previous boot's.
    site.lab.take("probe").context("the probe")?.stop();
    let text = std::fs::read_to_string(&site.state)?;
    let mut state: Value = serde_json::from_str(&text)?;
    state["boot_id"] = "8a1f0c3e-0000-4000-8000-000000000001".into();
    std::fs::write(&site.state, serde_json::to_string(&state)?)?;
    let fault = now_ms();
    site.prod.readdress(ip("10.88.0.15"))?;
    let probe = services::start_probe(&site.lab, &site.front, &site.config)?;
    site.lab.adopt(probe);
    let r = wait_cause(&site, fault, "bad_gateway_after_ip_shuffle")?;
    ensure!(
        r["contributing"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c == "host_rebooted")),
        "{r:#}"
    );
    let reboot = &r["evidence"]["backends"]["reboot"];
    ensure!(
        reboot["previous_boot_id"] == "8a1f0c3e-0000-4000-8000-000000000001",
        "{r:#}"
    );
    // What the probe learned before the "reboot" is what proved the move.
    ensure!(backend(&r, PROD)?["known"]["mac"].is_string(), "{r:#}");
    Ok(())
}
