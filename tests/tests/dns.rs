//! DNS through several resolvers end to end: each resolver a real unbound on its own host, the
//! faults injected as they happen in production (an access list refusing our subnet, a
//! firewall dropping DNS while ping passes, an address nobody holds, a resolver serving another
//! address, a name that does not exist).

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use causeway_e2e::services::{self, Collector, ProbeSetup};
use causeway_e2e::{Host, Lab, wait_for};
use serde_json::Value;

const SERVER: &str = "web-01";
const INTERVAL_MS: i64 = 2_000;
/// Generous: a slow CI machine must not fail a test that is right.
const PATIENCE: Duration = Duration::from_secs(90);
/// The healthy resolver's host; every lab has it.
const HEALTHY: &str = "10.88.0.11";

struct DnsLab {
    lab: Lab,
    collector: Collector,
}

/// How a lab's second resolver is built.
enum Second {
    /// unbound answering like the healthy one.
    Healthy,
    /// unbound that refuses the probe's subnet (`access-control: 10.88.0.0/24 refuse`).
    Refusing,
    /// unbound behind iptables dropping DNS (UDP and TCP 53); ICMP passes.
    Dropped,
    /// An address no host holds.
    Nobody,
    /// unbound answering the canary's name with 10.88.0.99, where nothing runs.
    OtherAddress,
}

/// nginx and the probe on web (10.88.0.2), the collector on .3, the healthy resolver on .11
/// and the second resolver on .12 (.250 for `Nobody`). The probe resolves `name` through both
/// (the second one through `system` when `second_as_system`, from the host's resolv.conf).
fn dns_lab(test: &str, name: &str, second: Second, second_as_system: bool) -> Result<DnsLab> {
    dns_lab_every(test, name, second, second_as_system, "2s")
}

/// [`dns_lab`] with the probe's interval.
fn dns_lab_every(
    test: &str,
    name: &str,
    second: Second,
    second_as_system: bool,
    interval: &str,
) -> Result<DnsLab> {
    let mut lab = Lab::new(test)?;
    let web = lab.add_host("web", 2)?;
    let coll_host = lab.add_host("coll", 3)?;
    let nginx = services::start_nginx(&mut lab, &web, "nginx")?;
    lab.adopt(nginx);

    let canary = format!("canary.lab. 30 IN A {}", web.addr);
    let healthy = lab.add_host("dns1", 11)?;
    let unbound = services::start_unbound(&lab, &healthy, "unbound1", &[&canary])?;
    lab.adopt(unbound);
    let second_addr = match second {
        Second::Nobody => "10.88.0.250".to_owned(),
        _ => start_second(&mut lab, &second, &canary)?.addr.to_string(),
    };

    let db = lab.path("causeway.db");
    let token = services::add_token(&db, SERVER)?;
    let collector = services::start_collector(&lab, &coll_host, &db)?;
    let mut resolvers = vec![healthy.addr.to_string()];
    if second_as_system {
        web.set_resolv_conf(&format!("nameserver {second_addr}\n"))?;
        resolvers.push("system".to_owned());
    } else {
        resolvers.push(second_addr);
    }
    let (config, _spool) = services::write_probe_config(
        &lab,
        &ProbeSetup {
            server: SERVER,
            collector_url: &collector.url,
            token: &token,
            canary_url: &format!("http://{name}/"),
            resolvers: &resolvers,
            interval,
            timeout: "800ms",
            top_extra: "dns_timeout = \"600ms\"",
            ..Default::default()
        },
    )?;
    let probe = services::start_probe(&lab, &web, &config)?;
    lab.adopt(probe);
    Ok(DnsLab { lab, collector })
}

fn start_second(lab: &mut Lab, second: &Second, canary: &str) -> Result<Host> {
    let host = lab.add_host("dns2", 12)?;
    let service = match second {
        Second::Refusing => services::start_unbound_with_access(
            lab,
            &host,
            "unbound2",
            &[canary],
            &["0.0.0.0/0 allow", "10.88.0.0/24 refuse"],
        )?,
        Second::OtherAddress => {
            services::start_unbound(lab, &host, "unbound2", &["canary.lab. 30 IN A 10.88.0.99"])?
        }
        _ => services::start_unbound(lab, &host, "unbound2", &[canary])?,
    };
    lab.adopt(service);
    if let Second::Dropped = second {
        for proto in ["udp", "tcp"] {
            host.run(&[
                "iptables", "-A", "INPUT", "-p", proto, "--dport", "53", "-j", "DROP",
            ])?;
        }
    }
    Ok(host)
}

/// The collector's view of the server's resolvers: health per resolver and the conditions.
fn resolvers(collector: &Collector) -> Result<Value> {
    services::api_get(
        collector,
        &format!("/api/v1/servers/{SERVER}/resolvers?since_ms=0"),
    )
}

/// Waits for a condition of `cause` on the resolver labelled `label`; returns it.
fn wait_condition(collector: &Collector, label: &str, cause: &str) -> Result<Value> {
    wait_for(&format!("a {cause} condition on {label}"), PATIENCE, || {
        let v = resolvers(collector)?;
        let found = v["conditions"]
            .as_array()
            .context("conditions is not a list")?
            .iter()
            .find(|c| c["resolver"] == label && c["cause"] == cause)
            .cloned();
        Ok(found)
    })
}

/// What every faulty-resolver case shares: the condition on the second resolver came within
/// two intervals of the probe's first report; the healthy resolver has none and was healthy
/// every time; the canary stayed up (every check ok, no incident). Returns the condition.
fn expect_resolver_condition(site: &DnsLab, label: &str, cause: &str) -> Result<Value> {
    let condition = wait_condition(&site.collector, label, cause)?;
    let results = services::results(&site.collector, SERVER)?;
    let first = results
        .iter()
        .filter_map(|r| r["started_at_ms"].as_i64())
        .min()
        .context("no results")?;
    let started = condition["started_at_ms"]
        .as_i64()
        .context("started_at_ms")?;
    ensure!(
        started - first <= 2 * INTERVAL_MS,
        "the condition started {} ms after the first check",
        started - first
    );
    let v = resolvers(&site.collector)?;
    let conditions = v["conditions"].as_array().context("conditions")?;
    ensure!(
        conditions.iter().all(|c| c["resolver"] != HEALTHY),
        "the healthy resolver got a condition: {conditions:#?}"
    );
    let healthy = v["resolvers"]
        .as_array()
        .context("resolvers")?
        .iter()
        .find(|r| r["resolver"] == HEALTHY)
        .context("the healthy resolver is not listed")?;
    ensure!(
        healthy["observations"].as_u64() >= Some(1)
            && healthy["healthy"] == healthy["observations"],
        "the healthy resolver was not always healthy: {healthy:#}"
    );
    ensure!(
        results.iter().all(|r| r["ok"] == true),
        "a resolver problem cost the canary availability: {results:#?}"
    );
    let incidents = services::api_get(
        &site.collector,
        &format!("/api/v1/servers/{SERVER}/incidents"),
    )?;
    ensure!(
        incidents["incidents"].as_array().is_some_and(Vec::is_empty),
        "a resolver problem opened an incident: {incidents:#}"
    );
    Ok(condition)
}

/// The outcomes of the condition's first evidence, per record type (`["refused", "refused"]`).
fn query_outcomes(condition: &Value) -> Vec<String> {
    condition["evidence"]["queries"]
        .as_array()
        .map(|qs| {
            qs.iter()
                .map(|q| q["outcome"].as_str().unwrap_or("?").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn resolver_refusing_our_subnet_is_an_upstream_block() -> Result<()> {
    let site = dns_lab("dns-refused", "canary.lab", Second::Refusing, false)?;
    let c = expect_resolver_condition(&site, "10.88.0.12", "dns_upstream_block")?;
    ensure!(query_outcomes(&c) == ["refused", "refused"], "{c:#}");
    ensure!(c["evidence"]["queries"][0]["rcode"] == "REFUSED", "{c:#}");
    ensure!(
        c["evidence"]["reachability"]["icmp"]["outcome"] == "reply",
        "{c:#}"
    );
    let why = services::probectl(&site.collector, &["why", SERVER])?;
    println!("probectl why {SERVER}:\n{why}");
    ensure!(why.contains("Resolver conditions"), "{why}");
    ensure!(why.contains("dns_upstream_block"), "{why}");
    ensure!(
        why.contains("10.88.0.12 refuses our queries for canary.lab"),
        "{why}"
    );
    let table = services::probectl(&site.collector, &["resolvers", SERVER])?;
    println!("probectl resolvers {SERVER}:\n{table}");
    ensure!(
        table.contains(HEALTHY) && table.contains("dns_upstream_block"),
        "{table}"
    );
    drop(site.lab);
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn dns_dropped_while_ping_passes_is_an_upstream_block() -> Result<()> {
    let site = dns_lab("dns-dropped", "canary.lab", Second::Dropped, false)?;
    let c = expect_resolver_condition(&site, "10.88.0.12", "dns_upstream_block")?;
    ensure!(query_outcomes(&c) == ["timeout", "timeout"], "{c:#}");
    let reach = &c["evidence"]["reachability"];
    ensure!(reach["icmp"]["outcome"] == "reply", "{c:#}");
    ensure!(reach["tcp"]["outcome"] == "no_reply", "{c:#}");
    ensure!(
        c["explanation"]
            .as_str()
            .is_some_and(|e| e.contains("ignores our queries")),
        "{c:#}"
    );
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn resolver_on_an_address_nobody_holds_is_unreachable() -> Result<()> {
    let site = dns_lab("dns-nobody", "canary.lab", Second::Nobody, false)?;
    let c = expect_resolver_condition(&site, "10.88.0.250", "dns_resolver_unreachable")?;
    let reach = &c["evidence"]["reachability"];
    ensure!(
        !["reply", "refused"].contains(&reach["icmp"]["outcome"].as_str().unwrap_or("")),
        "{c:#}"
    );
    ensure!(
        !["reply", "refused"].contains(&reach["tcp"]["outcome"].as_str().unwrap_or("")),
        "{c:#}"
    );
    ensure!(
        query_outcomes(&c)
            .iter()
            .all(|o| o == "timeout" || o == "network_error"),
        "{c:#}"
    );
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn resolver_serving_another_address_is_a_mismatch() -> Result<()> {
    // Through `system`: the second resolver comes from the web host's own resolv.conf.
    let site = dns_lab("dns-mismatch", "canary.lab", Second::OtherAddress, true)?;
    let c = expect_resolver_condition(&site, "system", "dns_answer_mismatch")?;
    ensure!(c["address"] == "10.88.0.12:53", "{c:#}");
    let answers = &c["evidence"]["queries"][0]["answers"];
    ensure!(answers[0]["address"] == "10.88.0.99", "{c:#}");
    let explanation = c["explanation"].as_str().unwrap_or("");
    ensure!(
        explanation.contains("with 10.88.0.99, while 10.88.0.11 answers 10.88.0.2"),
        "{c:#}"
    );
    ensure!(
        explanation.contains("the request to 10.88.0.99 failed"),
        "{c:#}"
    );
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn every_resolver_saying_nxdomain_fails_the_check() -> Result<()> {
    let site = dns_lab("dns-nxdomain", "missing.lab", Second::Healthy, false)?;
    let results = services::wait_results(&site.collector, SERVER, 0, 2, PATIENCE, |r| {
        r["cause"] == "dns_name_missing"
    })?;
    let r = &results[0];
    ensure!(r["ok"] == false && r["address"].is_null(), "{r:#}");
    ensure!(r["failure"]["kind"] == "no_address", "{r:#}");
    let dns = r["evidence"]["dns"].as_array().context("no DNS evidence")?;
    ensure!(dns.len() == 2, "{r:#}");
    for resolver in dns {
        let outcomes: Vec<&str> = resolver["queries"]
            .as_array()
            .context("queries")?
            .iter()
            .filter_map(|q| q["outcome"].as_str())
            .collect();
        ensure!(outcomes == ["nx_domain", "nx_domain"], "{resolver:#}");
        ensure!(
            resolver["condition"]["cause"] == "dns_name_missing",
            "{resolver:#}"
        );
    }
    let incidents = services::api_get(
        &site.collector,
        &format!("/api/v1/servers/{SERVER}/incidents"),
    )?;
    ensure!(
        incidents["incidents"][0]["cause"] == "dns_name_missing",
        "{incidents:#}"
    );
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn healthy_resolvers_give_no_condition() -> Result<()> {
    let site = dns_lab("dns-healthy", "canary.lab", Second::Healthy, true)?;
    let v = wait_for("five observations of both resolvers", PATIENCE, || {
        let v = resolvers(&site.collector)?;
        let list = v["resolvers"].as_array().context("resolvers")?;
        let enough = list.len() == 2 && list.iter().all(|r| r["observations"].as_u64() >= Some(5));
        Ok(enough.then_some(v))
    })?;
    for r in v["resolvers"].as_array().context("resolvers")? {
        ensure!(r["healthy"] == r["observations"], "{r:#}");
        ensure!(r["open_condition"].is_null(), "{r:#}");
    }
    ensure!(
        v["conditions"].as_array().is_some_and(Vec::is_empty),
        "{v:#}"
    );
    let results = services::results(&site.collector, SERVER)?;
    ensure!(results.iter().all(|r| r["ok"] == true), "{results:#?}");
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn a_silent_resolver_does_not_hold_back_the_request_and_an_overrun_is_counted() -> Result<()> {
    // Every second; the dropped resolver costs its 600 ms timeout, then a TCP test of its port
    // up to 600 ms more: the cycle cannot fit in 1 s, and the probe must say so.
    let site = dns_lab_every("dns-overrun", "canary.lab", Second::Dropped, false, "1s")?;
    let metric = format!("causeway_probe_cycle_overruns_total{{server=\"{SERVER}\"}} ");
    let overruns = wait_for("an overrun counted on /metrics", PATIENCE, || {
        let c = &site.collector;
        let text = services::http_get(&c.host, &format!("{}/metrics", c.url))?;
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(&metric))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .filter(|n| *n > 0))
    })?;
    let log = site.lab.path("probe.log");
    let log = std::fs::read_to_string(&log).with_context(|| format!("{}", log.display()))?;
    let said: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("longer than the interval"))
        .collect();
    ensure!(!said.is_empty(), "no overrun in the probe's log:\n{log}");
    println!("probe log: {}", said[0]);
    ensure!(
        said[0].contains("resolver 10.88.0.12") && said[0].contains("(timeout)"),
        "the log line must name the silent resolver first: {}",
        said[0]
    );
    ensure!(
        said.len() as u64 <= overruns,
        "said once per stretch of overruns, not per cycle: {said:#?}"
    );

    // The canary was requested as soon as the healthy resolver answered: its wait for an
    // address is far below the silent resolver's 600 ms.
    let results = services::api_get(
        &site.collector,
        &format!("/api/v1/servers/{SERVER}/results?limit=5"),
    )?;
    let first = &results["results"][0];
    let resolve_ms = first["timings"]["resolve_ms"].as_f64().unwrap_or(f64::MAX);
    ensure!(
        first["ok"] == true && resolve_ms < 600.0,
        "the request waited for the silent resolver: {first:#}"
    );
    Ok(())
}
