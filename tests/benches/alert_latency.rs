//! Fault to message: how long after nginx stops the webhook receives the DOWN message, over
//! `CAUSEWAY_BENCH_RUNS` runs (default 20), with the probe at a 2 s interval and the rule's
//! default `after = 2`. Printed: each run, the median and the maximum, and the goal: the
//! fault is seen by the next check (at most one interval), the `after`-th failed check comes
//! `after - 1` intervals later, and 1 s is left for the report, the alerter and the POST:
//! `after x interval + 1 s`, 5 s.
//!
//! The config's `merge_gap` is 1 s, so each run's fault is an incident of its own (the default
//! 10 minutes would make 20 runs one intermittent incident).
//!
//! Run (root; a lab of network namespaces):
//! `cargo build --release --bins && cargo bench -p causeway-e2e --bench alert_latency`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use causeway_e2e::receivers::WebhookReceiver;
use causeway_e2e::services::{self, ProbeSetup};
use causeway_e2e::{Lab, wait_for};

const SERVER: &str = "web-01";
const INTERVAL: Duration = Duration::from_secs(2);
const AFTER: u32 = 2;
const PATIENCE: Duration = Duration::from_secs(60);

fn main() -> Result<()> {
    let runs: usize = match std::env::var("CAUSEWAY_BENCH_RUNS") {
        Ok(v) => v.parse().context("CAUSEWAY_BENCH_RUNS")?,
        Err(_) => 20,
    };
    let mut lab = Lab::new("alert-latency")?;
    let coll_host = lab.add_host("coll", 3)?;
    let web = lab.add_host("web", 2)?;
    let hook_host = lab.add_host("hook", 5)?;
    let nginx = services::start_nginx(&mut lab, &web, "nginx")?;
    lab.adopt(nginx);
    let receiver = WebhookReceiver::start(&lab, &hook_host, "bench-secret-0123456789")?;
    let config = lab.path("collector.toml");
    std::fs::write(
        &config,
        format!(
            "merge_gap = \"1s\"\n\
             [[channel]]\nname = \"ops\"\nkind = \"webhook\"\nurl = \"{}/hook\"\n\
             [[rule]]\nname = \"all\"\nchannels = [\"ops\"]\nafter = {AFTER}\nstale_after = 0\n",
            receiver.url
        ),
    )?;
    let args = ["--config".into(), config.into_os_string()];
    let canary_url = format!("http://{}/", web.addr);
    let (collector, probe_config, _) = services::collector_and_probe_config_with(
        &lab,
        &coll_host,
        SERVER,
        &canary_url,
        &args,
        ProbeSetup {
            interval: "2s",
            timeout: "1s",
            ..Default::default()
        },
    )?;
    let probe = services::start_probe(&lab, &web, &probe_config)?;
    lab.adopt(probe);
    services::wait_results(&collector, SERVER, 0, 1, PATIENCE, |r| r["ok"] == true)?;

    let count = |event: &str| -> Result<usize> {
        Ok(receiver
            .received()?
            .iter()
            .filter(|r| r["body"]["event"] == event)
            .count())
    };
    let mut latencies = Vec::with_capacity(runs);
    for run in 1..=runs {
        let downs = count("down")?;
        let mut nginx = lab.take("nginx").context("no nginx")?;
        nginx.stop().context("nginx did not exit")?;
        let stopped = Instant::now();
        wait_for("the DOWN message", PATIENCE, || {
            Ok((count("down")? > downs).then_some(()))
        })?;
        let latency = stopped.elapsed();
        println!(
            "run {run:>2}: DOWN {:.2} s after nginx stopped",
            latency.as_secs_f64()
        );
        latencies.push(latency);
        let recovered = count("recovered")?;
        let nginx = services::start_nginx(&mut lab, &web, "nginx")?;
        lab.adopt(nginx);
        wait_for("the RECOVERED message", PATIENCE, || {
            Ok((count("recovered")? > recovered).then_some(()))
        })?;
        // A run starts at a random point of the probe's cycle, as a real fault does.
        std::thread::sleep(Duration::from_millis(317 * run as u64 % 2000));
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let max = latencies[latencies.len() - 1];
    let goal = INTERVAL * AFTER + Duration::from_secs(1);
    println!(
        "fault to DOWN message over {runs} runs (interval {} s, after {AFTER}): median {:.2} s, \
         max {:.2} s; goal: median <= {:.1} s ({})",
        INTERVAL.as_secs(),
        median.as_secs_f64(),
        max.as_secs_f64(),
        goal.as_secs_f64(),
        if median <= goal { "met" } else { "NOT met" }
    );
    Ok(())
}
