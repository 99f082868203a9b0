//! The probe's cost beside blackbox_exporter's, doing the same cycle in the same run: one
//! canary over HTTP and its name through three resolvers (one healthy, one refusing our
//! queries, one answering a stale address), A and AAAA each. Printed: CPU time per cycle at a
//! 1 s interval, CPU time per second at 30 s, peak RSS, and the ratios; then the probe's CPU
//! per cycle with at least 20,000 packets/s of unrelated TCP on the interface it captures on,
//! which the kernel filter should keep from it (within 20 % of the quiet figure).
//!
//! Run (root; it builds a lab of network namespaces and installs Debian's
//! `prometheus-blackbox-exporter` when it is missing):
//! `cargo build --release --bins && cargo bench -p causeway-e2e --bench probe_cost`.
//! `CAUSEWAY_BENCH_SECONDS` sets each 1 s phase's length (default 20 s; each program runs two
//! phases, alternated, as the machine's speed drifts) and `CAUSEWAY_BENCH_SLOW_CYCLES` the
//! number of 30 s cycles measured per program (default 3).
//!
//! The lab: nginx, the probe and blackbox_exporter on one host (the canary is local, so the
//! probe captures on `lo`), the collector and three unbound on others. Only one of the two
//! programs runs at a time: the probe's filter passes every segment to the canary's port, and
//! blackbox_exporter's requests would land in it. blackbox_exporter is driven as Prometheus
//! drives it: a GET of `/probe?module=..&target=..` per probe per interval, by this same
//! binary re-run in the host's namespace with `--scrape` (its CPU is not counted, as
//! Prometheus' is not). The unrelated traffic is this binary again, with `--traffic`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use causeway_e2e::services::{self, Collector, ProbeSetup};
use causeway_e2e::{Host, Lab, Service, wait_for};

const SERVER: &str = "bench";
const CANARY_NAME: &str = "canary.lab";
const STALE_ADDR: &str = "10.88.0.99";
const TRAFFIC_PORT: u16 = 9000;
/// Segments per second the generator aims at (it reports what it reached).
const TRAFFIC_TARGET_PPS: u64 = 30_000;
const BLACKBOX: &str = "/usr/bin/prometheus-blackbox-exporter";
const BLACKBOX_LISTEN: &str = "127.0.0.1:9115";
const FAST: Duration = Duration::from_secs(1);
const SLOW: Duration = Duration::from_secs(30);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--traffic") {
        let addr = args.get(i + 1).context("--traffic needs an address")?;
        return traffic(addr);
    }
    if let Some(i) = args.iter().position(|a| a == "--scrape") {
        let interval_ms: u64 = args
            .get(i + 1)
            .context("--scrape needs an interval in ms")?
            .parse()?;
        return scrape(Duration::from_millis(interval_ms), &args[i + 2..]);
    }
    if args.iter().any(|a| a == "--hold") {
        return hold();
    }
    let phase = Duration::from_secs(env_number("CAUSEWAY_BENCH_SECONDS", 20)?);
    let slow_cycles = env_number("CAUSEWAY_BENCH_SLOW_CYCLES", 3)? as u32;
    install_blackbox()?;
    bench(phase, slow_cycles)
}

fn env_number(name: &str, default: u64) -> Result<u64> {
    std::env::var(name)
        .ok()
        .map(|s| {
            s.parse()
                .with_context(|| format!("{name} must be a whole number, not {s:?}"))
        })
        .transpose()
        .map(|n| n.unwrap_or(default))
}

/// Debian's blackbox_exporter, installed when missing (as scripts/install-test-deps installs
/// the lab's programs).
fn install_blackbox() -> Result<()> {
    if Path::new(BLACKBOX).exists() {
        return Ok(());
    }
    let install = || {
        std::process::Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .arg("prometheus-blackbox-exporter")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
    };
    if !install()?.success() {
        std::process::Command::new("apt-get")
            .args(["update", "-qq"])
            .status()?;
        if !install()?.success() {
            bail!("could not install prometheus-blackbox-exporter with apt-get");
        }
    }
    Ok(())
}

/// `--hold`: the lab with the probe running at 1 s, until killed; for profiling it
/// (`perf record -p PID`, `strace -c -f -p PID`).
fn hold() -> Result<()> {
    let l = build_lab()?;
    let (_probe, pid) = start_bench_probe(&l, FAST)?;
    println!("the probe runs as pid {pid} at 1s; stop with Ctrl-C");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The lab both programs run in.
struct BenchLab {
    lab: Lab,
    web: Host,
    collector: Collector,
    token: String,
    resolvers: Vec<String>,
}

fn build_lab() -> Result<BenchLab> {
    let mut lab = Lab::new("bench-probe-cost")?;
    let web = lab.add_host("web", 2)?;
    let coll_host = lab.add_host("coll", 3)?;
    let nginx = services::start_nginx(&mut lab, &web, "nginx")?;
    lab.adopt(nginx);
    let current = format!("{CANARY_NAME}. 30 IN A {}", web.addr);
    let stale = format!("{CANARY_NAME}. 30 IN A {STALE_ADDR}");
    let mut resolvers = Vec::new();
    for (n, records, access) in [
        (11, &current, "10.88.0.0/24 allow"),
        (12, &current, "10.88.0.0/24 refuse"),
        (13, &stale, "10.88.0.0/24 allow"),
    ] {
        let host = lab.add_host(&format!("dns{n}"), n)?;
        let name = format!("unbound{n}");
        let unbound =
            services::start_unbound_with_access(&lab, &host, &name, &[records], &[access])?;
        lab.adopt(unbound);
        resolvers.push(host.addr.to_string());
    }
    // blackbox_exporter's HTTP probe resolves through the host's resolver, the healthy one.
    web.set_resolv_conf(&format!("nameserver {}\n", resolvers[0]))?;
    let db = lab.path("causeway.db");
    let token = services::add_token(&db, SERVER)?;
    let collector = services::start_collector(&lab, &coll_host, &db)?;
    Ok(BenchLab {
        lab,
        web,
        collector,
        token,
        resolvers,
    })
}

/// What one program cost over one phase.
#[derive(Default, Clone, Copy)]
struct Cost {
    cpu_ns: u64,
    seconds: f64,
    cycles: f64,
    peak_rss_kb: u64,
    lo_packets: u64,
}

impl Cost {
    fn add(self, other: Cost) -> Cost {
        Cost {
            cpu_ns: self.cpu_ns + other.cpu_ns,
            seconds: self.seconds + other.seconds,
            cycles: self.cycles + other.cycles,
            peak_rss_kb: self.peak_rss_kb.max(other.peak_rss_kb),
            lo_packets: self.lo_packets + other.lo_packets,
        }
    }
    fn ms_per_cycle(&self) -> f64 {
        self.cpu_ns as f64 / 1e6 / self.cycles
    }
    fn ms_per_second(&self) -> f64 {
        self.cpu_ns as f64 / 1e6 / self.seconds
    }
    fn lo_pps(&self) -> f64 {
        self.lo_packets as f64 / self.seconds
    }
}

fn bench(phase: Duration, slow_cycles: u32) -> Result<()> {
    let l = build_lab()?;
    let mut probe_fast = Cost::default();
    let mut blackbox_fast = Cost::default();
    for _round in 0..2 {
        probe_fast = probe_fast.add(run_probe(&l, FAST, phase, None)?);
        blackbox_fast = blackbox_fast.add(run_blackbox(&l, FAST, phase)?);
    }
    let loaded = run_probe(&l, FAST, phase, Some(&l.lab))?;
    let slow_phase = SLOW * slow_cycles;
    let probe_slow = run_probe(&l, SLOW, slow_phase, None)?;
    let blackbox_slow = run_blackbox(&l, SLOW, slow_phase)?;

    println!(
        "1 canary + 3 resolvers (one refusing, one stale), A and AAAA; the probe against \
         blackbox_exporter in the same run:"
    );
    println!(
        "  {:<34} {:>12} {:>18} {:>8}",
        "", "probe", "blackbox_exporter", "ratio"
    );
    let row = |what: &str, probe: f64, blackbox: f64, unit: &str| {
        println!(
            "  {what:<34} {:>9.3} {unit} {:>15.3} {unit} {:>7.2}x",
            probe,
            blackbox,
            probe / blackbox
        );
    };
    row(
        "interval 1s, CPU per cycle",
        probe_fast.ms_per_cycle(),
        blackbox_fast.ms_per_cycle(),
        "ms",
    );
    row(
        "interval 30s, CPU per second",
        probe_slow.ms_per_second(),
        blackbox_slow.ms_per_second(),
        "ms",
    );
    row(
        "peak RSS",
        probe_fast.peak_rss_kb.max(probe_slow.peak_rss_kb) as f64 / 1024.0,
        blackbox_fast.peak_rss_kb.max(blackbox_slow.peak_rss_kb) as f64 / 1024.0,
        "MB",
    );
    println!(
        "  (1s: {:.0} cycles of each over {:.0} s; 30s: {:.0} cycles of each)",
        probe_fast.cycles, probe_fast.seconds, probe_slow.cycles
    );
    let ratio = loaded.ms_per_cycle() / probe_fast.ms_per_cycle();
    println!(
        "  the probe at 1s with {:.0} packets/s of unrelated TCP on lo: {:.3} ms CPU per cycle, \
         {ratio:.3} of quiet ({:+.1} %)",
        loaded.lo_pps(),
        loaded.ms_per_cycle(),
        (ratio - 1.0) * 100.0
    );
    println!(
        "  goals: CPU per cycle at 1s <= 1.0x, CPU per second at 30s <= 0.2 ms, peak RSS <= \
         0.5x, unrelated traffic within 20 %"
    );
    if loaded.lo_pps() < 20_000.0 {
        bail!(
            "the generator reached only {:.0} packets/s on lo; the figure needs 20,000",
            loaded.lo_pps()
        );
    }
    Ok(())
}

/// Runs the probe at `interval` and measures it over `phase`, after its first three results
/// are in (with unrelated traffic on lo when `traffic_in` is given).
fn run_probe(
    l: &BenchLab,
    interval: Duration,
    phase: Duration,
    traffic_in: Option<&Lab>,
) -> Result<Cost> {
    let (mut probe, pid) = start_bench_probe(l, interval)?;
    let traffic = traffic_in
        .map(|lab| start_traffic(lab, &l.web))
        .transpose()?;
    if traffic.is_some() {
        std::thread::sleep(Duration::from_secs(2));
    }
    let cost = measure(&l.web, pid, interval, phase)?;
    drop(traffic);
    if probe.stop_within(Duration::from_secs(10)).is_none() {
        bail!("the probe did not stop");
    }
    Ok(cost)
}

/// Starts the probe at `interval` and waits until it reported its first cycles.
fn start_bench_probe(l: &BenchLab, interval: Duration) -> Result<(Service, u32)> {
    let interval_text = format!("{}s", interval.as_secs());
    let (config, _spool) = services::write_probe_config(
        &l.lab,
        &ProbeSetup {
            server: SERVER,
            collector_url: &l.collector.url,
            token: &l.token,
            canary_url: &format!("http://{CANARY_NAME}/"),
            resolvers: &l.resolvers,
            interval: &interval_text,
            timeout: "800ms",
            top_extra: "dns_timeout = \"600ms\"",
            host_table: &format!(
                "{}\n",
                services::CALM_HOST.replace("kernel_log = false", "kernel_log = true")
            ),
            ..Default::default()
        },
    )?;
    let after = causeway_e2e::now_ms();
    let probe = services::start_probe(&l.lab, &l.web, &config)?;
    let pid = probe.pid().context("the probe is not running")?;
    // Started, its threads up and a first cycle reported (the slow phase waits for one only).
    services::wait_results(
        &l.collector,
        SERVER,
        after,
        settle_cycles(interval),
        Duration::from_secs(90),
        |r| r["canary"] == "site",
    )?;
    Ok((probe, pid))
}

/// Cycles a program runs before it is measured: its threads up and its caches warm (at 30 s,
/// one: three would add a minute and a half to each phase).
fn settle_cycles(interval: Duration) -> usize {
    if interval == FAST { 3 } else { 1 }
}

/// blackbox_exporter runs so far, which number their logs.
static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The blackbox_exporter modules for the same probes as the probe's cycle.
fn blackbox_config() -> String {
    let dns = |kind: &str| {
        format!(
            r#"  dns_{kind}:
    prober: dns
    timeout: 600ms
    dns:
      query_name: {CANARY_NAME}
      query_type: {kind}
      transport_protocol: udp
      preferred_ip_protocol: ip4
      ip_protocol_fallback: false
"#
        )
    };
    format!(
        r#"modules:
  canary:
    prober: http
    timeout: 800ms
    http:
      valid_status_codes: [200]
      preferred_ip_protocol: ip4
      fail_if_body_not_matches_regexp: ["{text}"]
{a}{aaaa}"#,
        text = services::CANARY_TEXT,
        a = dns("A"),
        aaaa = dns("AAAA"),
    )
}

/// Runs blackbox_exporter, scraped every `interval` for the cycle's probes, and measures it
/// over `phase` after the first scrapes.
fn run_blackbox(l: &BenchLab, interval: Duration, phase: Duration) -> Result<Cost> {
    // Each run logs to files of its own: the waits below read what this run printed.
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let config = l.lab.path("blackbox.yml");
    std::fs::write(&config, blackbox_config())?;
    let mut cmd = l.web.command(BLACKBOX);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address={BLACKBOX_LISTEN}"));
    let mut blackbox = Service::spawn(
        "blackbox",
        &mut cmd,
        &l.lab.path(&format!("blackbox-{run}.log")),
    )?;
    let pid = blackbox.pid().context("blackbox_exporter is not running")?;
    blackbox.wait_for_log("Listening on", Duration::from_secs(20))?;
    let mut urls = vec![format!(
        "http://{BLACKBOX_LISTEN}/probe?module=canary&target=http://{CANARY_NAME}/"
    )];
    for resolver in &l.resolvers {
        for kind in ["A", "AAAA"] {
            urls.push(format!(
                "http://{BLACKBOX_LISTEN}/probe?module=dns_{kind}&target={resolver}"
            ));
        }
    }
    let log = l.lab.path(&format!("scrape-{run}.log"));
    let mut cmd = l.web.command(std::env::current_exe()?);
    cmd.arg("--scrape")
        .arg(interval.as_millis().to_string())
        .args(&urls);
    let mut scraper = Service::spawn("scrape", &mut cmd, &log)?;
    let settle = settle_cycles(interval);
    wait_for(
        "blackbox_exporter's first cycles",
        Duration::from_secs(90),
        || {
            if !scraper.is_running() {
                bail!("the scraper exited: {}", scraper.log_text());
            }
            Ok((scraper.log_text().matches("cycle").count() >= settle).then_some(()))
        },
    )?;
    let cost = measure(&l.web, pid, interval, phase)?;
    if !scraper.is_running() {
        bail!(
            "the scraper stopped during the phase: {}",
            scraper.log_text()
        );
    }
    let last_cycle = scraper
        .log_text()
        .lines()
        .rfind(|l| l.starts_with("cycle"))
        .unwrap_or_default()
        .to_owned();
    println!("blackbox_exporter at {interval:?}, its last {last_cycle}");
    drop(scraper);
    blackbox.stop_within(Duration::from_secs(10));
    Ok(cost)
}

/// CPU time of every thread of `pid` over `phase`, its peak RSS, and the packets on the
/// host's `lo` meanwhile. Called right after a cycle ended: the phase starts half an interval
/// later, so a phase of N intervals holds N cycles, none cut at either end.
fn measure(web: &Host, pid: u32, interval: Duration, phase: Duration) -> Result<Cost> {
    std::thread::sleep(interval / 2);
    let (cpu0, pkts0, t0) = (cpu_ns(pid)?, lo_packets(web)?, Instant::now());
    std::thread::sleep(phase);
    let (cpu1, pkts1, elapsed) = (cpu_ns(pid)?, lo_packets(web)?, t0.elapsed());
    Ok(Cost {
        cpu_ns: cpu1 - cpu0,
        seconds: elapsed.as_secs_f64(),
        cycles: elapsed.as_secs_f64() / interval.as_secs_f64(),
        peak_rss_kb: peak_rss_kb(pid)?,
        lo_packets: pkts1 - pkts0,
    })
}

/// Nanoseconds on CPU of all of `pid`'s threads (`/proc/PID/task/*/schedstat`, first field),
/// which counts softirq work done in the process's own context too.
fn cpu_ns(pid: u32) -> Result<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        // A thread that just exited is gone; its time is lost to both phases alike.
        if let Ok(text) = std::fs::read_to_string(&path) {
            total += text
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .context("unreadable schedstat")?;
        }
    }
    Ok(total)
}

/// `VmHWM` of `pid`: the most resident memory it has had, in KiB.
fn peak_rss_kb(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/PID/status")
}

/// Packets received on `lo` in `web`'s namespace (every packet on lo is received once).
fn lo_packets(web: &Host) -> Result<u64> {
    let out = web.run(&["cat", "/sys/class/net/lo/statistics/rx_packets"])?;
    Ok(out.trim().parse()?)
}

/// The scraper: every `interval`, a GET of each URL in turn (as Prometheus scrapes
/// blackbox_exporter), printing `cycle` and each probe's `probe_success`.
fn scrape(interval: Duration, urls: &[String]) -> Result<()> {
    let start = Instant::now();
    for n in 1u32.. {
        let mut line = format!("cycle {n}:");
        for url in urls {
            let body = http_get(url)?;
            let success = body
                .lines()
                .find_map(|l| l.strip_prefix("probe_success "))
                .unwrap_or("?");
            let module = url.split("module=").nth(1).unwrap_or(url);
            line.push_str(&format!(" {module}={success}"));
        }
        println!("{line}");
        let due = start + interval * n;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}

/// A plain HTTP/1.0 GET; the body.
fn http_get(url: &str) -> Result<String> {
    let rest = url.strip_prefix("http://").context("an http:// URL")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut conn = TcpStream::connect(authority)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")?;
    let mut text = String::new();
    conn.read_to_string(&mut text)?;
    Ok(text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default())
}

fn start_traffic(lab: &Lab, web: &Host) -> Result<Service> {
    let exe = std::env::current_exe()?;
    let mut cmd = web.command(exe);
    cmd.arg("--traffic")
        .arg(format!("{}:{TRAFFIC_PORT}", web.addr));
    Service::spawn("traffic", &mut cmd, &lab.path("traffic.log"))
}

/// The generator: a server draining port 9000 and a client writing small segments to it at
/// about TRAFFIC_TARGET_PPS, each its own packet (Nagle off), until killed.
fn traffic(addr: &str) -> Result<()> {
    let listener = TcpListener::bind(addr)?;
    std::thread::spawn(move || {
        while let Ok((mut conn, _)) = listener.accept() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    let mut client = TcpStream::connect(addr)?;
    client.set_nodelay(true)?;
    let chunk = [0x55u8; 64];
    // Batches every millisecond: the rate holds without a busy loop.
    let per_ms = TRAFFIC_TARGET_PPS / 1000;
    let start = Instant::now();
    for ms in 0u64.. {
        for _ in 0..per_ms {
            client.write_all(&chunk)?;
        }
        let due = start + Duration::from_millis(ms + 1);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}
