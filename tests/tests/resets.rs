//! Resets explained end to end: a rogue SO_REUSEPORT listener beside real nginx, a router
//! rejecting with TCP resets, healthy nginx for many cycles, and a probe without privileges.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use causeway_e2e::evidence::{inbound_reset, listeners, owned_by, packet_flow};
use causeway_e2e::services::{self, Collector, ProbeSetup};
use causeway_e2e::{Host, Lab, now_ms, wait_for};
use serde_json::Value;

const SERVER: &str = "web-01";
/// Generous: a slow CI machine must not fail a test that is right.
const PATIENCE: Duration = Duration::from_secs(90);

struct Site {
    lab: Lab,
    /// Where the canary (nginx) runs; the probe runs there too unless `probe_host` differs.
    web: Host,
    collector: Collector,
}

/// nginx on `web` (10.88.0.2, or 10.89.0.2 behind a router), the collector on its own host,
/// and a probe watching `http://<web>/` from `web` itself or from a client host.
struct Plan<'a> {
    test: &'a str,
    behind_router: bool,
    probe_on_web: bool,
    interval: &'a str,
    timeout: &'a str,
    unprivileged: bool,
}

impl<'a> Plan<'a> {
    /// A privileged probe on the canary's own host, checking every second.
    fn local(test: &'a str) -> Plan<'a> {
        Plan {
            test,
            behind_router: false,
            probe_on_web: true,
            interval: "1s",
            timeout: "800ms",
            unprivileged: false,
        }
    }
}

fn site(plan: &Plan) -> Result<(Site, Option<Host>)> {
    let mut lab = Lab::new(plan.test)?;
    let coll_host = lab.add_host("coll", 3)?;
    let (web, router, client) = if plan.behind_router {
        let client = lab.add_host("client", 9)?;
        let router = lab.add_router("router", 254)?;
        let web = lab.add_far_host("web", 2)?;
        lab.route_far_via(&client, &router)?;
        (web, Some(router), Some(client))
    } else {
        (lab.add_host("web", 2)?, None, None)
    };
    let nginx = services::start_nginx(&mut lab, &web, "nginx")?;
    lab.adopt(nginx);

    let db = lab.path("causeway.db");
    let token = services::add_token(&db, SERVER)?;
    let collector = services::start_collector(&lab, &coll_host, &db)?;
    let canary_url = format!("http://{}/", web.addr);
    let resolvers = ["system".to_owned()];
    let (config, spool) = services::write_probe_config(
        &lab,
        &ProbeSetup {
            server: SERVER,
            collector_url: &collector.url,
            token: &token,
            canary_url: &canary_url,
            resolvers: &resolvers,
            interval: plan.interval,
            timeout: plan.timeout,
            ..Default::default()
        },
    )?;
    let probe_host = match (&client, plan.probe_on_web) {
        (Some(client), false) => client.clone(),
        _ => web.clone(),
    };
    let probe = if plan.unprivileged {
        services::start_unprivileged_probe(&lab, &probe_host, &config, &spool)?
    } else {
        services::start_probe(&lab, &probe_host, &config)?
    };
    lab.adopt(probe);
    Ok((
        Site {
            lab,
            web,
            collector,
        },
        router,
    ))
}

fn wait_results(
    collector: &Collector,
    after_ms: i64,
    n: usize,
    want: impl Fn(&Value) -> bool,
) -> Result<Vec<Value>> {
    services::wait_results(collector, SERVER, after_ms, n, PATIENCE, want)
}

fn failed_since(collector: &Collector, after_ms: i64) -> Result<Vec<Value>> {
    Ok(services::results(collector, SERVER)?
        .into_iter()
        .filter(|r| r["started_at_ms"].as_i64().unwrap_or(0) > after_ms && r["ok"] == false)
        .collect())
}

/// Stops the lab's nginx and returns the first two failed checks after it.
/// The rogue listener of these tests ([`services::start_rogue_listener`]).
enum Rogue {
    /// A python script in the test's cgroup.
    Plain,
    /// The same script named `nginx` in nginx's own cgroup, as `docker exec web nginx -t`.
    AsNginx,
}

/// The site of `plan`, healthy, then `rogue` started beside nginx on port 80; with when the
/// rogue started.
fn site_with_rogue(plan: &Plan, rogue: Rogue) -> Result<(Site, i64)> {
    let (mut site, _) = site(plan)?;
    wait_results(&site.collector, 0, 1, |r| r["ok"] == true)?;
    let service = match rogue {
        Rogue::Plain => services::start_rogue_listener(&site.lab, &site.web, 80)?,
        Rogue::AsNginx => {
            let cgroup = services::nginx_cgroup(&site.lab, "nginx")?;
            services::start_rogue_listener_as(
                &site.lab,
                &site.web,
                80,
                Some("nginx"),
                Some(&cgroup),
            )?
        }
    };
    site.lab.adopt(service);
    Ok((site, now_ms()))
}

/// The check `r` has `cause`, and its explanation says each of `words`.
fn diagnosed(r: &Value, cause: &str, words: &[&str]) -> Result<()> {
    ensure!(r["cause"] == cause, "expected {cause}: {r:#}");
    let explanation = r["explanation"].as_str().unwrap_or("");
    ensure!(
        words.iter().all(|w| explanation.contains(w)),
        "the explanation must say {words:?}: {r:#}"
    );
    Ok(())
}

/// Every failure since `after_ms` has one of `causes` (the rogue's): none is generic.
fn only_causes_since(collector: &Collector, after_ms: i64, causes: &[&str]) -> Result<()> {
    let failed = failed_since(collector, after_ms)?;
    let others: Vec<&Value> = failed
        .iter()
        .filter(|r| !causes.iter().any(|c| r["cause"] == *c))
        .collect();
    ensure!(
        others.is_empty(),
        "failures with another cause while the rogue ran: {others:#?}"
    );
    Ok(())
}

/// `probectl why` (printed for the record) says each of `words`.
fn why_says(collector: &Collector, words: &[&str]) -> Result<()> {
    let text = services::probectl(collector, &["why", SERVER, "--since", "1h"])?;
    println!("$ probectl why {SERVER} --since 1h\n{text}");
    ensure!(
        words.iter().all(|w| text.contains(w)),
        "probectl why printed:\n{text}"
    );
    Ok(())
}

fn stop_nginx_and_wait_failures(lab: &mut Lab, collector: &Collector) -> Result<Vec<Value>> {
    let mut nginx = lab.take("nginx").context("no nginx")?;
    nginx.stop().context("nginx did not exit on SIGTERM")?;
    let stopped = now_ms();
    wait_results(collector, stopped, 2, |r| r["ok"] == false)
}

fn probe_log(lab: &mut Lab) -> Result<String> {
    let probe = lab.take("probe").context("no probe in the lab")?;
    let log = probe.log_text();
    lab.adopt(probe);
    Ok(log)
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn rogue_reuseport_listener_is_named_as_the_sender_of_the_reset() -> Result<()> {
    // The rogue holds the port up to 3 s, so the check's timeout must outlast it.
    let plan = Plan {
        interval: "5s",
        timeout: "4s",
        ..Plan::local("rogue")
    };
    let (
        Site {
            lab: _lab,
            collector,
            ..
        },
        rogue_from,
    ) = site_with_rogue(&plan, Rogue::Plain)?;
    let found = wait_results(&collector, rogue_from, 1, |r| {
        r["cause"] == "rst_from_non_serving_process"
    })?;
    let r = &found[0];
    diagnosed(
        r,
        "rst_from_non_serving_process",
        &["rogue-listener.py", "nginx"],
    )?;

    // The packets: handshake, request, reset, and not a byte of response.
    let flow = packet_flow(r);
    ensure!(
        flow.starts_with(&["out SYN".into(), "in SYN,ACK".into()]),
        "trace: {flow:?}"
    );
    let rst = inbound_reset(r).context("no inbound reset in the trace")?;
    let request_sent = r["evidence"]["trace"]["packets"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["dir"] == "out" && p["len"].as_u64().unwrap_or(0) > 0);
    ensure!(request_sent, "no request in the trace: {flow:?}");
    ensure!(rst["ttl"] == 64, "reset TTL on lo: {rst}");

    // The listeners: nginx serving and still there, the rogue not serving.
    let all = listeners(r);
    ensure!(
        all.iter()
            .any(|l| l["serving"] == true && l["gone"] == false && owned_by(l, "nginx")),
        "no serving nginx listener: {all:#?}"
    );
    ensure!(
        all.iter()
            .any(|l| l["serving"] == false && owned_by(l, "rogue-listener.py")),
        "no rogue listener: {all:#?}"
    );

    // Every reset the rogue caused is explained as its own: no generic reset in between.
    only_causes_since(&collector, rogue_from, &["rst_from_non_serving_process"])?;
    why_says(
        &collector,
        &["rst_from_non_serving_process", "rogue-listener.py"],
    )
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn a_config_test_with_nginxs_name_and_cgroup_is_not_the_server() -> Result<()> {
    // `docker exec web nginx -t`: the rogue runs in nginx's own cgroup under the name nginx,
    // but it is not a descendant of nginx's master. Named by (name, cgroup) alone it was
    // "serving", and its resets came out as the generic `connection_reset`.
    let plan = Plan {
        interval: "5s",
        timeout: "4s",
        ..Plan::local("samename")
    };
    let (Site { lab, collector, .. }, rogue_from) = site_with_rogue(&plan, Rogue::AsNginx)?;
    let cgroup = services::nginx_cgroup(&lab, "nginx")?;
    let found = wait_results(&collector, rogue_from, 1, |r| r["ok"] == false)?;
    let r = &found[0];
    // The explanation says why a process named nginx is not the server.
    diagnosed(
        r,
        "rst_from_non_serving_process",
        &["nginx is neither pid", "descendants"],
    )?;
    // The rogue, as the probe saw it: nginx's name and cgroup, and not serving.
    let all = listeners(r);
    let cgroup_name = format!(
        "/{}",
        cgroup.file_name().unwrap_or_default().to_string_lossy()
    );
    let rogue = all
        .iter()
        .find(|l| l["serving"] == false && owned_by(l, "rogue-listener.py"))
        .with_context(|| format!("no rogue listener: {all:#?}"))?;
    let owner = &rogue["owners"][0];
    ensure!(
        owner["name"] == "nginx" && owner["cgroup"] == cgroup_name.as_str(),
        "the rogue should have nginx's name and cgroup {cgroup_name}: {owner}"
    );

    only_causes_since(&collector, rogue_from, &["rst_from_non_serving_process"])?;
    why_says(
        &collector,
        &["rst_from_non_serving_process", "is neither pid"],
    )
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn a_rogue_holding_the_port_past_the_timeout_is_named_for_the_timeout() -> Result<()> {
    // The rogue holds the port 1 to 3 s and never accepts; the check gives up after 800 ms.
    // A connection queued on it is neither served nor reset in time: it was a plain `timeout`.
    let plan = Plan::local("queued");
    let (
        Site {
            lab: _lab,
            collector,
            ..
        },
        rogue_from,
    ) = site_with_rogue(&plan, Rogue::Plain)?;
    // The first failure that is not a reset (the rogue's exit resets what it still holds).
    let found = wait_results(&collector, rogue_from, 1, |r| {
        r["ok"] == false && r["cause"] != "rst_from_non_serving_process"
    })?;
    let r = &found[0];
    diagnosed(
        r,
        "queued_on_non_serving_process",
        &["rogue-listener.py", "never answered"],
    )?;
    // The packets: handshake and request, then nothing from the server but its ACK.
    let flow = packet_flow(r);
    ensure!(
        flow.starts_with(&["out SYN".into(), "in SYN,ACK".into()]),
        "trace: {flow:?}"
    );
    ensure!(inbound_reset(r).is_none(), "no reset expected: {flow:?}");

    // Every failure while the rogue ran is the rogue's, queued or reset: none is generic.
    only_causes_since(
        &collector,
        rogue_from,
        &[
            "queued_on_non_serving_process",
            "rst_from_non_serving_process",
        ],
    )?;
    why_says(&collector, &["queued_on_non_serving_process"])
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn stopped_nginx_is_refused_with_the_syn_reset_trace() -> Result<()> {
    let (site, _) = site(&Plan::local("refused-trace"))?;
    let Site {
        mut lab, collector, ..
    } = site;
    wait_results(&collector, 0, 1, |r| r["ok"] == true)?;
    let refused = stop_nginx_and_wait_failures(&mut lab, &collector)?;
    for r in &refused {
        ensure!(r["cause"] == "connection_refused", "cause: {r:#}");
        ensure!(
            packet_flow(r) == ["out SYN", "in RST,ACK"],
            "trace: {:?} in {r:#}",
            packet_flow(r)
        );
        ensure!(
            r["evidence"]["trace"]["interface"] == "lo",
            "the canary is local: {r:#}"
        );
        let port80: Vec<Value> = listeners(r)
            .into_iter()
            .filter(|l| l["gone"] == false)
            .collect();
        ensure!(port80.is_empty(), "listeners while stopped: {port80:#?}");
        ensure!(
            r["evidence"]["listeners"]["port"] == 80,
            "no listener evidence: {r:#}"
        );
    }
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn router_reset_is_a_middlebox_not_a_refusal() -> Result<()> {
    let (site, router) = site(&Plan {
        behind_router: true,
        probe_on_web: false,
        ..Plan::local("middlebox")
    })?;
    let router = router.context("no router")?;
    let Site { web, collector, .. } = &site;
    // Healthy checks first: the probe learns the TTL the server's SYN-ACKs arrive with.
    wait_results(collector, 0, 2, |r| r["ok"] == true)?;

    router.run(&[
        "iptables",
        "-A",
        "FORWARD",
        "-p",
        "tcp",
        "-d",
        &web.addr.to_string(),
        "--dport",
        "80",
        "-j",
        "REJECT",
        "--reject-with",
        "tcp-reset",
    ])?;
    let rejected_from = now_ms();
    let failed = wait_results(collector, rejected_from, 2, |r| r["ok"] == false)?;
    for r in &failed {
        ensure!(r["cause"] == "rst_from_middlebox", "cause: {r:#}");
        ensure!(
            packet_flow(r) == ["out SYN", "in RST,ACK"],
            "the reset answers the SYN: {:?}",
            packet_flow(r)
        );
        let rst = inbound_reset(r).context("no reset")?;
        ensure!(rst["ttl"] == 64, "the router's own reset: {rst}");
        let server_ttl = &r["evidence"]["trace"]["server_ttl"];
        ensure!(
            server_ttl["ttl"] == 63 && server_ttl["source"] == "earlier_connection",
            "the server's SYN-ACKs came one hop further: {server_ttl}"
        );
        ensure!(
            r["evidence"]["trace"]["interface"] == "eth0",
            "the route's interface: {r:#}"
        );
    }
    drop(site);
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn healthy_nginx_has_no_failure_and_no_trace() -> Result<()> {
    let (site, _) = site(&Plan::local("healthy"))?;
    let Site {
        mut lab, collector, ..
    } = site;
    let results = wait_results(&collector, 0, 10, |_| true)?;
    for r in &results {
        ensure!(
            r["ok"] == true,
            "a check failed against healthy nginx: {r:#}"
        );
        ensure!(r["cause"].is_null(), "a cause without a failure: {r:#}");
        ensure!(
            r["evidence"].is_null() || r["evidence"]["trace"].is_null(),
            "a successful check kept a trace: {r:#}"
        );
    }
    let log = probe_log(&mut lab)?;
    ensure!(
        !log.contains("is off"),
        "the probe runs as root, yet evidence is off:\n{log}"
    );
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn unprivileged_probe_checks_and_says_once_what_evidence_is_off() -> Result<()> {
    let (site, _) = site(&Plan {
        unprivileged: true,
        ..Plan::local("unprivileged")
    })?;
    let Site {
        mut lab, collector, ..
    } = site;
    wait_results(&collector, 0, 3, |r| r["ok"] == true)?;
    let refused = stop_nginx_and_wait_failures(&mut lab, &collector)?;
    for r in &refused {
        ensure!(r["cause"] == "connection_refused", "cause: {r:#}");
        ensure!(
            packet_flow(r).is_empty(),
            "a trace without CAP_NET_RAW: {r:#}"
        );
    }
    let log = wait_for("the probe's log", PATIENCE, || {
        let log = probe_log(&mut lab)?;
        Ok(log.contains("packet capture is off").then_some(log))
    })?;
    // The start line says it all at once; the kernel log depends on kernel.dmesg_restrict.
    let start = log
        .lines()
        .find(|l| l.contains("privileges:"))
        .with_context(|| format!("no privileges line:\n{log}"))?;
    ensure!(
        start.contains(
            "privileges: packet capture off: CAP_NET_RAW missing; listener owners off: \
             CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE missing; kernel log "
        ),
        "{start}"
    );
    for (what, how) in [
        ("packet capture is off", "CAP_NET_RAW"),
        ("listener owners are off", "CAP_SYS_PTRACE"),
    ] {
        let lines: Vec<&str> = log.lines().filter(|l| l.contains(what)).collect();
        ensure!(
            lines.len() == 1,
            "{what:?} must be said once, not {}:\n{log}",
            lines.len()
        );
        ensure!(lines[0].contains(how), "how to turn it on: {}", lines[0]);
    }
    Ok(())
}
