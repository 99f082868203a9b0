//! The probe's CPU time per cycle with packet capture on, without and with at least 20,000
//! packets/s of unrelated TCP on the interface it captures on. The kernel filter should keep
//! the unrelated packets from ever reaching the probe, so the two figures should be within
//! 20 % of each other.
//!
//! Run: `cargo build --release --bins && cargo bench -p causeway-e2e --bench capture_cpu`
//! (root: it builds a lab of network namespaces). Set `CAUSEWAY_BENCH_SECONDS` to change the
//! length of each phase (default 30 s).
//!
//! The lab: nginx and the probe on one host (the canary is local, so the probe captures on
//! `lo`), the collector on another. The traffic is this same binary, re-run inside the host's
//! namespace with `--traffic`: a client streaming small TCP segments to a server on port 9000
//! of the same address, over `lo`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use causeway_e2e::services::{self, ProbeSetup};
use causeway_e2e::{Host, Lab, Service};

const SERVER: &str = "bench";
const TRAFFIC_PORT: u16 = 9000;
/// Segments per second the generator aims at (it reports what it reached).
const TRAFFIC_TARGET_PPS: u64 = 30_000;
const INTERVAL: Duration = Duration::from_secs(1);

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--traffic") {
        let addr = args.get(i + 1).context("--traffic needs an address")?;
        return traffic(addr);
    }
    let seconds: u64 = std::env::var("CAUSEWAY_BENCH_SECONDS")
        .ok()
        .map(|s| {
            s.parse()
                .context("CAUSEWAY_BENCH_SECONDS must be a whole number")
        })
        .transpose()?
        .unwrap_or(30);
    bench(Duration::from_secs(seconds))
}

fn bench(phase: Duration) -> Result<()> {
    let mut lab = Lab::new("bench-capture")?;
    let web = lab.add_host("web", 2)?;
    let coll_host = lab.add_host("coll", 3)?;
    let nginx = services::start_nginx(&mut lab, &web, "nginx")?;
    lab.adopt(nginx);
    let db = lab.path("causeway.db");
    let token = services::add_token(&db, SERVER)?;
    let collector = services::start_collector(&lab, &coll_host, &db)?;
    let url = format!("http://{}/", web.addr);
    let resolvers = ["system".to_owned()];
    let (config, _spool) = services::write_probe_config(
        &lab,
        &ProbeSetup {
            server: SERVER,
            collector_url: &collector.url,
            token: &token,
            canary_url: &url,
            resolvers: &resolvers,
            interval: "1s",
            timeout: "800ms",
            ..Default::default()
        },
    )?;
    let probe = services::start_probe(&lab, &web, &config)?;
    let pid = probe.pid().context("the probe is not running")?;
    lab.adopt(probe);
    // Let it start its capture and listener threads and settle.
    services::wait_results(&collector, SERVER, 0, 3, Duration::from_secs(60), |r| {
        r["ok"] == true
    })?;

    let quiet = measure(&web, pid, phase)?;
    let traffic = start_traffic(&lab, &web)?;
    std::thread::sleep(Duration::from_secs(2));
    let loaded = measure(&web, pid, phase)?;
    drop(traffic);

    println!("probe CPU time per cycle (interval {INTERVAL:?}, phases of {phase:?}):");
    println!("  {:<28} {}", "no other traffic:", quiet.line());
    println!("  {:<28} {}", "unrelated TCP on lo:", loaded.line());
    let ratio = loaded.cpu_ms_per_cycle / quiet.cpu_ms_per_cycle;
    println!(
        "  loaded / quiet = {ratio:.3} ({:+.1} %), unrelated traffic {:.0} packets/s",
        (ratio - 1.0) * 100.0,
        loaded.lo_pps
    );
    if loaded.lo_pps < 20_000.0 {
        bail!(
            "the generator reached only {:.0} packets/s on lo; the figure needs 20,000",
            loaded.lo_pps
        );
    }
    Ok(())
}

struct Phase {
    cpu_ms_per_cycle: f64,
    lo_pps: f64,
    cycles: f64,
}

impl Phase {
    fn line(&self) -> String {
        format!(
            "{:.3} ms CPU per cycle over {:.0} cycles ({:.0} packets/s on lo)",
            self.cpu_ms_per_cycle, self.cycles, self.lo_pps
        )
    }
}

/// CPU time of every thread of the probe over `phase`, per cycle, and the packet rate on the
/// host's `lo` meanwhile.
fn measure(web: &Host, pid: u32, phase: Duration) -> Result<Phase> {
    let (cpu0, pkts0, t0) = (cpu_ns(pid)?, lo_packets(web)?, Instant::now());
    std::thread::sleep(phase);
    let (cpu1, pkts1, elapsed) = (cpu_ns(pid)?, lo_packets(web)?, t0.elapsed());
    let cycles = elapsed.as_secs_f64() / INTERVAL.as_secs_f64();
    Ok(Phase {
        cpu_ms_per_cycle: (cpu1 - cpu0) as f64 / 1e6 / cycles,
        lo_pps: (pkts1 - pkts0) as f64 / elapsed.as_secs_f64(),
        cycles,
    })
}

/// Nanoseconds on CPU of all of `pid`'s threads (`/proc/PID/task/*/schedstat`, first field),
/// which counts softirq work done in the probe's own context too.
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

/// Packets received on `lo` in `web`'s namespace (every packet on lo is received once).
fn lo_packets(web: &Host) -> Result<u64> {
    let out = web.run(&["cat", "/sys/class/net/lo/statistics/rx_packets"])?;
    Ok(out.trim().parse()?)
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
