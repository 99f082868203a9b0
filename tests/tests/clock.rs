//! A probe host whose clock was wrong for a while, then an outage: the real probe run under
//! libfaketime (`faketime -f`), real nginx, the collector over real HTTP.
//!
//! First 20 hours ahead (a host that booted with a bad clock): the collector refuses those
//! reports, saying how far ahead they are, and the probe sets them aside. Then 4 minutes
//! ahead, within what the collector accepts: stored, and the host condition `clock_skew`
//! says by how much. Then the clock is right and nginx stops: the incident opens at once,
//! though the refused checks are dated before the last reports of the wrong clock.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use causeway_e2e::services::{self, Collector, ProbeSetup};
use causeway_e2e::{Lab, wait_for};
use serde_json::Value;

const SERVER: &str = "web-01";
const PATIENCE: Duration = Duration::from_secs(60);

fn server(collector: &Collector) -> Result<Value> {
    services::api_get(collector, &format!("/api/v1/servers/{SERVER}"))
}

fn host_conditions(collector: &Collector) -> Result<Vec<Value>> {
    let host = services::api_get(collector, &format!("/api/v1/servers/{SERVER}/host"))?;
    Ok(host["conditions"].as_array().cloned().unwrap_or_default())
}

fn checks_stored(collector: &Collector) -> Result<usize> {
    Ok(services::results(collector, SERVER)?.len())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn a_wrong_clock_then_an_outage_gives_the_incident() -> Result<()> {
    let mut lab = Lab::new("clock")?;
    let coll_host = lab.add_host("coll", 3)?;
    let web = lab.add_host("web", 2)?;
    let nginx = services::start_nginx(&mut lab, &web, "nginx")?;
    lab.adopt(nginx);
    let canary_url = format!("http://{}/", web.addr);
    let (collector, config, spool) = services::collector_and_probe_config(
        &lab,
        &coll_host,
        SERVER,
        &canary_url,
        ProbeSetup::default(),
    )?;

    // 20 hours ahead: refused, set aside in rejected/, nothing stored.
    let mut probe = services::start_probe_with_clock(&lab, &web, &config, "+20h")?;
    let rejected = spool.join("rejected");
    wait_for("a report set aside as rejected", PATIENCE, || {
        Ok(std::fs::read_dir(&rejected)
            .map(|d| d.count() >= 2)
            .unwrap_or(false)
            .then_some(()))
    })?;
    probe.stop().context("the probe did not stop")?;
    let log = probe.log_text();
    ensure!(
        log.contains("minutes ahead of the collector's clock")
            && log.contains("s ahead: is the probe host's clock synchronized"),
        "the probe's log does not give the collector's reason: {log}"
    );
    ensure!(
        checks_stored(&collector)? == 0,
        "a report dated 20 h ahead was stored"
    );

    // 4 minutes ahead: stored, and said.
    let mut probe = services::start_probe_with_clock(&lab, &web, &config, "+240s")?;
    wait_for(
        "3 checks stored from the clock 4 minutes ahead",
        PATIENCE,
        || Ok((checks_stored(&collector)? >= 3).then_some(())),
    )?;
    probe.stop().context("the probe did not stop")?;
    let skew = host_conditions(&collector)?;
    let open = skew
        .iter()
        .find(|c| c["cause"] == "clock_skew" && c["open"] == true)
        .with_context(|| format!("no open clock_skew condition: {skew:?}"))?;
    let explanation = open["explanation"].as_str().unwrap_or_default();
    ensure!(
        explanation.contains("s ahead of the collector's")
            && (235..=245).any(|s| explanation.contains(&format!("clock is {s} s"))),
        "the condition does not say 4 minutes ahead: {explanation}"
    );
    ensure!(server(&collector)?["state"] == "up", "up before the outage");

    // The clock is right; nginx stops. The refused checks are dated up to 4 minutes before
    // the newest stored one, and still open the incident within a few cycles.
    let probe = services::start_probe(&lab, &web, &config)?;
    lab.adopt(probe);
    let before = checks_stored(&collector)?;
    wait_for("2 checks stored with the right clock", PATIENCE, || {
        Ok((checks_stored(&collector)? >= before + 2).then_some(()))
    })?;
    let mut nginx = lab.take("nginx").context("no nginx in the lab")?;
    nginx.stop().context("nginx did not stop")?;
    let down = wait_for("the incident of the stopped nginx", PATIENCE, || {
        let s = server(&collector)?;
        Ok((s["open_incident"]["failed_checks"].as_i64() >= Some(3)).then_some(s))
    })?;
    ensure!(down["state"] == "down", "{down}");
    ensure!(
        down["open_incident"]["cause"] == "connection_refused",
        "the incident's cause: {down}"
    );
    let skew = host_conditions(&collector)?;
    ensure!(
        skew.iter()
            .all(|c| c["cause"] != "clock_skew" || c["open"] == false),
        "clock_skew still open with the right clock: {skew:?}"
    );
    let metrics = services::http_get(&collector.host, &format!("{}/metrics", collector.url))?;
    let offset = metrics
        .lines()
        .find_map(|l| l.strip_prefix("causeway_server_clock_offset_seconds{server=\"web-01\"} "))
        .with_context(|| format!("no clock offset on /metrics: {metrics}"))?;
    let offset: f64 = offset.parse()?;
    ensure!(offset.abs() < 5.0, "offset with the right clock: {offset}");
    Ok(())
}
