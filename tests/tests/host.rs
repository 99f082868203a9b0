//! Host evidence end to end: the canary's server runs in a memory cgroup with a small limit,
//! eats past it, and the kernel's OOM killer kills it; the probe on the same host says
//! `oom_kill` and names the process. And a probe that may not read the kernel log says so.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use causeway_e2e::services::{self, Collector, ProbeSetup};
use causeway_e2e::{Host, Lab, now_ms, wait_for};
use serde_json::Value;

const SERVER: &str = "web-01";
const PATIENCE: Duration = Duration::from_secs(90);
const PORT: u16 = 8080;
/// The hungry server's cgroup: Python needs about 10 MiB, so it is killed within a few
/// allocations.
const LIMIT: u64 = 64 << 20;

struct Site {
    lab: Lab,
    web: Host,
    collector: Collector,
    /// The pid of the canary's server, the process the kernel is to kill.
    pid: u32,
}

/// The hungry server on `web`:8080 in its memory cgroup, the collector on its own host, a
/// probe on `web` with `host_table`, privileged or not.
fn site(test: &str, host_table: &str, unprivileged: bool) -> Result<Site> {
    let mut lab = Lab::new(test)?;
    let coll_host = lab.add_host("coll", 3)?;
    let web = lab.add_host("web", 2)?;
    let cgroup = lab.memory_cgroup("canary", LIMIT)?;
    let server = services::start_hungry_server(&lab, &web, &cgroup, PORT)?;
    let pid = server.pid().context("the server's pid")?;
    lab.adopt(server);
    let (collector, config, spool) = services::collector_and_probe_config(
        &lab,
        &coll_host,
        SERVER,
        &format!("http://{}:{PORT}/", web.addr),
        ProbeSetup {
            canary_extra: "serving_process = \"python3\"",
            host_table,
            ..Default::default()
        },
    )?;
    let probe = if unprivileged {
        services::start_unprivileged_probe(&lab, &web, &config, &spool)?
    } else {
        services::start_probe(&lab, &web, &config)?
    };
    lab.adopt(probe);
    Ok(Site {
        lab,
        web,
        collector,
        pid,
    })
}

/// The first check after `after_ms` for which `want` holds.
fn wait_result(site: &Site, after_ms: i64, want: impl Fn(&Value) -> bool) -> Result<Value> {
    let found = services::wait_results(&site.collector, SERVER, after_ms, 1, PATIENCE, want)?;
    Ok(found[0].clone())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn the_oom_kill_of_the_serving_process_is_the_cause() -> Result<()> {
    let mut site = site("oom", services::OOM_ONLY_HOST, false)?;
    let start = now_ms();
    wait_result(&site, start, |r| r["ok"] == true)?;
    // Healthy for a moment: the probe has seen the server own its listener.
    let healthy = now_ms();
    wait_result(&site, healthy, |r| r["ok"] == true)?;

    let fault = now_ms();
    let mut server = site.lab.take("hungry").context("the hungry server")?;
    server.signal("USR1")?;
    wait_for("the kernel to kill the server", PATIENCE, || {
        Ok((!server.is_running()).then_some(()))
    })?;
    let r = wait_result(&site, fault, |r| r["ok"] == false)?;
    ensure!(r["cause"] == "oom_kill", "{r:#}");
    let explanation = r["explanation"].as_str().unwrap_or_default();
    let victim = format!("the kernel's OOM killer killed python3 (pid {}", site.pid);
    ensure!(explanation.starts_with(&victim), "{explanation}");
    ensure!(
        explanation.contains("which served the canary (it owned the listener on 0.0.0.0:8080)"),
        "{explanation}"
    );
    ensure!(
        explanation.contains("when its memory cgroup hit its limit"),
        "{explanation}"
    );
    let kills = r["evidence"]["host"]["oom_kills"]
        .as_array()
        .context("no OOM kills in the evidence")?;
    let kill = kills
        .iter()
        .find(|k| k["pid"] == site.pid)
        .with_context(|| format!("pid {} not among {kills:#?}", site.pid))?;
    ensure!(kill["command"] == "python3", "{kill:#}");
    ensure!(kill["cgroup_oom"] == true, "{kill:#}");
    let memcg = kill["memcg"].as_str().unwrap_or_default();
    ensure!(memcg.ends_with("-canary"), "{kill:#}");
    ensure!(kill["anon_rss_kb"].as_u64().unwrap_or(0) > 0, "{kill:#}");
    let at = kill["at_ms"].as_i64().unwrap_or(0);
    ensure!(
        (fault - 1000..=now_ms()).contains(&at),
        "killed at {at}, fault at {fault}"
    );
    // A host condition too, with its own history.
    let host = services::api_get(&site.collector, &format!("/api/v1/servers/{SERVER}/host"))?;
    let open_oom = host["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["cause"] == "oom_kill" && c["ended_at_ms"].is_null())
    });
    ensure!(open_oom, "{host:#}");
    let why = services::probectl(&site.collector, &["why", SERVER])?;
    println!("$ probectl why {SERVER}\n{why}");
    ensure!(why.contains("oom_kill"), "{why}");
    ensure!(why.contains(&format!("pid {}", site.pid)), "{why}");
    drop(site.web);
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn a_probe_that_may_not_read_the_kernel_log_says_why_and_keeps_checking() -> Result<()> {
    // As `nobody` without CAP_SYSLOG, where kernel.dmesg_restrict=1 (Debian's default) refuses
    // the kernel log. A machine that lets everyone read it gets the setting for the test.
    let _restricted = causeway_e2e::lab::DmesgRestrict::on()?;
    let site = site("oom-denied", services::OOM_ONLY_HOST, true)?;
    let start = now_ms();
    let r = wait_result(&site, start, |r| r["ok"] == true)?;
    ensure!(r["cause"].is_null(), "{r:#}");
    // The report says it too: the collector shows what the probe could not read.
    let path = format!("/api/v1/servers/{SERVER}/host");
    let warnings = wait_for("the host warning at the collector", PATIENCE, || {
        let host = services::api_get(&site.collector, &path)?;
        let warnings = host["latest"]["warnings"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        Ok((!warnings.is_empty()).then_some(warnings))
    })?;
    let kmsg = warnings
        .iter()
        .filter_map(Value::as_str)
        .any(|w| w.starts_with("OOM kills are not seen") && w.contains("CAP_SYSLOG"));
    ensure!(kmsg, "{warnings:#?}");
    let probe = site.lab.path("probe.log");
    wait_for("the probe to warn about the kernel log", PATIENCE, || {
        let log = std::fs::read_to_string(&probe)?;
        Ok(log
            .lines()
            .find(|l| l.contains("WARN") && l.contains("kernel log") && l.contains("CAP_SYSLOG"))
            .map(str::to_owned))
    })?;
    Ok(())
}
