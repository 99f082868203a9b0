//! The probe as it is deployed: an unprivileged user with exactly the four capabilities of
//! deploy/systemd/causeway-probe.service, seeing everything root sees; and SIGTERM in the
//! middle of uploads (a draining spool, a stalled collector), which loses no report.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use causeway_e2e::evidence::{listeners, owned_by, packets};
use causeway_e2e::services::{self, Collector, ProbeSetup};
use causeway_e2e::{Host, Lab, now_ms, wait_for};
use serde_json::Value;

const SERVER: &str = "web-01";
/// Generous: a slow CI machine must not fail a test that is right.
const PATIENCE: Duration = Duration::from_secs(90);
/// The unit's `AmbientCapabilities=` (and `CapabilityBoundingSet=`), in setpriv's names.
const UNIT_CAPABILITIES: [&str; 4] = ["net_raw", "syslog", "dac_read_search", "sys_ptrace"];

struct Site {
    lab: Lab,
    web: Host,
    collector: Collector,
    config: PathBuf,
    spool: PathBuf,
    /// nginx's master process: the owner of its listening socket.
    nginx_pid: u32,
}

/// nginx (root) on `web`, the collector on its own host, and a probe config checking
/// `http://<web>/` every second from `web` with `host_table`; the probe is not started.
fn site(test: &str, host_table: &str) -> Result<Site> {
    let mut lab = Lab::new(test)?;
    let coll_host = lab.add_host("coll", 3)?;
    let web = lab.add_host("web", 2)?;
    let nginx = services::start_nginx(&mut lab, &web, "nginx")?;
    let nginx_pid = nginx.pid().context("nginx's pid")?;
    lab.adopt(nginx);
    let (collector, config, spool) = services::collector_and_probe_config(
        &lab,
        &coll_host,
        SERVER,
        &format!("http://{}/", web.addr),
        ProbeSetup {
            host_table,
            ..Default::default()
        },
    )?;
    Ok(Site {
        lab,
        web,
        collector,
        config,
        spool,
        nginx_pid,
    })
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn a_probe_with_exactly_the_four_ambient_capabilities_captures_reads_the_kernel_log_and_names_owners()
-> Result<()> {
    // Where everyone may read the kernel log, CAP_SYSLOG would prove nothing: restrict it, as
    // Debian does by default.
    let _restricted = causeway_e2e::lab::DmesgRestrict::on()?;
    let Site {
        mut lab,
        web,
        collector,
        config,
        spool,
        nginx_pid,
    } = site("four-caps", services::OOM_ONLY_HOST)?;
    let probe =
        services::start_probe_with_capabilities(&lab, &web, &config, &spool, &UNIT_CAPABILITIES)?;
    lab.adopt(probe);

    // (a) The probe says at start that it sees everything.
    let log_path = lab.path("probe.log");
    let line = wait_for("the probe's privileges line", PATIENCE, || {
        let log = std::fs::read_to_string(&log_path)?;
        Ok(log
            .lines()
            .find(|l| l.contains("privileges:"))
            .map(str::to_owned))
    })?;
    ensure!(
        line.contains("privileges: packet capture on; listener owners on; kernel log on"),
        "{line}"
    );

    // Healthy checks first: the probe has seen nginx own its listener.
    services::wait_results(&collector, SERVER, 0, 2, PATIENCE, |r| r["ok"] == true)?;

    // (b) nginx stops: a packet trace, and the gone listener named as nginx's.
    let mut nginx = lab.take("nginx").context("no nginx")?;
    nginx.stop().context("nginx did not exit on SIGTERM")?;
    let stopped = now_ms();
    let failed = services::wait_results(&collector, SERVER, stopped, 1, PATIENCE, |r| {
        r["ok"] == false
    })?;
    let r = &failed[0];
    ensure!(!packets(r).is_empty(), "no packet trace: {r:#}");
    let evidence = &r["evidence"]["listeners"];
    ensure!(evidence["port"] == 80, "no listener evidence: {r:#}");
    ensure!(
        evidence["owners_visible"] == true,
        "owners not visible: {evidence:#}"
    );
    let all = listeners(r);
    let gone = all
        .iter()
        .find(|l| l["gone"] == true && owned_by(l, "nginx"))
        .with_context(|| format!("no gone listener owned by nginx: {all:#?}"))?;
    let owners = gone["owners"].as_array().cloned().unwrap_or_default();
    ensure!(
        owners.iter().any(|o| o["pid"] == nginx_pid),
        "nginx's master (pid {nginx_pid}) is not among the owners: {owners:#?}"
    );

    // (c) The host evidence has no warning about the kernel log.
    let path = format!("/api/v1/servers/{SERVER}/host");
    let latest = wait_for("host evidence at the collector", PATIENCE, || {
        let host = services::api_get(&collector, &path)?;
        let latest = &host["latest"];
        Ok(latest.is_object().then(|| latest.clone()))
    })?;
    let warnings = latest["warnings"].as_array().cloned().unwrap_or_default();
    let kmsg: Vec<&str> = warnings
        .iter()
        .filter_map(Value::as_str)
        .filter(|w| w.starts_with("OOM kills are not seen"))
        .collect();
    ensure!(
        kmsg.is_empty(),
        "a kernel log warning: {kmsg:#?} in {latest:#}"
    );
    drop(web);
    Ok(())
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn sigterm_while_the_spool_drains_loses_nothing_and_doubles_nothing() -> Result<()> {
    let Site {
        mut lab,
        web,
        mut collector,
        config,
        spool,
        ..
    } = site("sigterm-upload", "")?;
    let probe = services::start_probe(&lab, &web, &config)?;
    lab.adopt(probe);
    services::wait_results(&collector, SERVER, 0, 2, PATIENCE, |_| true)?;
    let uploaded = stored_ids(&collector)?;

    // Collector down: reports pile up in the spool.
    collector.stop()?;
    wait_for("3 reports spooled", PATIENCE, || {
        Ok((services::spooled_reports(&spool)?.len() >= 3).then_some(()))
    })?;
    let spooled: BTreeSet<String> = services::spooled_reports(&spool)?
        .iter()
        .map(|f| report_id_of(f))
        .collect::<Result<_>>()?;
    // Every report the test knows the probe made.
    let made: BTreeSet<String> = uploaded.keys().cloned().chain(spooled).collect();

    // The collector comes back and the uploader starts draining: SIGTERM at once.
    collector.restart(&lab)?;
    let mut probe = lab.take("probe").context("no probe")?;
    let status = probe.stop().context("the probe did not exit on SIGTERM")?;
    ensure!(
        status.success(),
        "the probe exited with {status}:\n{}",
        probe.log_text()
    );

    // Each report is at the collector once or in the spool, not both, not neither.
    let stored = stored_ids(&collector)?;
    let left: BTreeSet<String> = services::spooled_reports(&spool)?
        .iter()
        .map(|f| report_id_of(f))
        .collect::<Result<_>>()?;
    for (id, n) in &stored {
        ensure!(*n == 1, "report {id} is stored {n} times");
    }
    for id in &made {
        let at_collector = stored.contains_key(id);
        let in_spool = left.contains(id);
        ensure!(
            at_collector != in_spool,
            "report {id}: at the collector {at_collector}, in the spool {in_spool}\n{}",
            probe.log_text()
        );
    }
    for id in &left {
        ensure!(
            !stored.contains_key(id),
            "report {id} is both stored and still spooled"
        );
    }
    let all: BTreeSet<String> = made
        .iter()
        .chain(stored.keys())
        .chain(&left)
        .cloned()
        .collect();
    println!(
        "{} report(s) known, {} stored and {} spooled at SIGTERM",
        all.len(),
        stored.len(),
        left.len()
    );
    drop(probe);

    // The next start sends what was left, and nothing twice.
    restart_and_drain(&mut lab, &web, &config, &spool, &collector, &all)
}

#[test]
#[ignore = "needs root (network namespaces): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
fn sigterm_while_the_collector_stalls_keeps_the_reports_for_the_next_start() -> Result<()> {
    let Site {
        mut lab,
        web,
        collector,
        config,
        spool,
        ..
    } = site("sigterm-stall", "")?;
    let probe = services::start_probe(&lab, &web, &config)?;
    lab.adopt(probe);
    services::wait_results(&collector, SERVER, 0, 2, PATIENCE, |_| true)?;
    let uploaded = stored_ids(&collector)?;

    // The collector stalls: its kernel still accepts connections and takes the request bytes,
    // but nothing answers. Uploads hang in flight and reports pile up behind them.
    collector.service.signal("STOP")?;
    let _resume = Resume(&collector);
    wait_for(
        "3 reports spooled behind a stalled upload",
        PATIENCE,
        || Ok((services::spooled_reports(&spool)?.len() >= 3).then_some(())),
    )?;

    // SIGTERM with an upload in flight: the last attempt gives up after its 5 s and the
    // probe still exits 0, leaving the reports in the spool.
    let mut probe = lab.take("probe").context("no probe")?;
    let status = probe
        .stop_within(Duration::from_secs(30))
        .context("the probe did not exit within 30 s of SIGTERM")?;
    let log = probe.log_text();
    ensure!(status.success(), "the probe exited with {status}:\n{log}");
    let left: BTreeSet<String> = services::spooled_reports(&spool)?
        .iter()
        .map(|f| report_id_of(f))
        .collect::<Result<_>>()?;
    ensure!(
        left.len() >= 3,
        "{} report(s) in the spool after SIGTERM, expected at least 3:\n{log}",
        left.len()
    );
    let said = format!("{} report(s) stay in the spool", left.len());
    ensure!(
        log.lines()
            .any(|l| l.contains("last upload attempt took longer than") && l.contains(&said)),
        "no line saying {said:?}:\n{log}"
    );
    drop(probe);

    // The collector wakes up. It may now read requests the probe sent before it gave up and
    // store them, unacknowledged: those reports are both stored and spooled, which is why
    // the collector stores a report id once.
    drop(_resume);
    let known: BTreeSet<String> = uploaded.keys().cloned().chain(left).collect();

    // The next start sends everything that was left, and nothing is stored twice.
    restart_and_drain(&mut lab, &web, &config, &spool, &collector, &known)?;
    println!(
        "{} report(s) uploaded before the stall, {} left in the spool at SIGTERM, all stored once",
        uploaded.len(),
        known.len() - uploaded.len()
    );
    Ok(())
}

/// Lets a SIGSTOPped collector go on when dropped, whatever the test's outcome.
struct Resume<'a>(&'a Collector);

impl Drop for Resume<'_> {
    fn drop(&mut self) {
        let _ = self.0.service.signal("CONT");
    }
}

/// Starts the probe again, waits for its spool to drain, and checks that every report of
/// `known`, and every report at the collector, is stored exactly once.
fn restart_and_drain(
    lab: &mut Lab,
    web: &Host,
    config: &Path,
    spool: &Path,
    collector: &Collector,
    known: &BTreeSet<String>,
) -> Result<()> {
    let probe = services::start_probe(lab, web, config)?;
    lab.adopt(probe);
    wait_for("the spool to drain", PATIENCE, || {
        Ok(services::spooled_reports(spool)?.is_empty().then_some(()))
    })?;
    let stored = stored_ids(collector)?;
    for id in known {
        let n = stored.get(id).copied().unwrap_or(0);
        ensure!(n == 1, "report {id} is stored {n} times after the restart");
    }
    for (id, n) in &stored {
        ensure!(*n == 1, "report {id} is stored {n} times after the restart");
    }
    Ok(())
}

/// How many results the collector holds per report id (one canary, one address: one each).
fn stored_ids(collector: &Collector) -> Result<BTreeMap<String, usize>> {
    let mut ids = BTreeMap::new();
    for r in services::results(collector, SERVER)? {
        let id = r["report_id"]
            .as_str()
            .with_context(|| format!("no report_id: {r}"))?;
        *ids.entry(id.to_owned()).or_insert(0) += 1;
    }
    Ok(ids)
}

/// `<started_at>-<uuid>.json` -> `<uuid>`
fn report_id_of(file: &str) -> Result<String> {
    let stem = file.strip_suffix(".json").context("not a report file")?;
    let (_, id) = stem
        .split_once('-')
        .context("no report id in the file name")?;
    Ok(id.to_owned())
}
