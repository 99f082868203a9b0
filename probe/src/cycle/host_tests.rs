//! The cycle with host evidence read from recorded /proc snapshots (the readers' seam,
//! `[host] proc_root`): a slab leak and an overload become host conditions every cycle, and
//! the cause of a failed check of a canary served on this host.

use std::path::Path;

use causeway_schema::{Cause, FailureKind};

use super::tests::{FakeDns, FakeHttp, config};
use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!("../../tests/fixtures/host/", $name))
    };
}

/// A canary on this host (loopback), judged by the `[host]` table of the config.
fn canary_on_host(proc_root: &Path) -> Arc<Config> {
    let canaries = format!(
        "[host]\nproc_root = \"{}\"\nkernel_log = false\n\n\
         [[canary]]\nname = \"site\"\nurl = \"http://127.0.0.1:8080/\"\n",
        proc_root.display()
    );
    config(r#"["system"]"#, &canaries)
}

/// The recorded healthy meminfo (24 GiB) with SUnreclaim set to `kb`.
fn meminfo_with_s_unreclaim(kb: u64) -> String {
    let healthy = fixture!("meminfo-healthy.txt");
    let line = healthy
        .lines()
        .find(|l| l.starts_with("SUnreclaim:"))
        .unwrap();
    healthy.replace(line, &format!("SUnreclaim: {kb:>15} kB"))
}

struct Proc(tempfile::TempDir);

impl Proc {
    fn calm() -> Proc {
        let dir = tempfile::tempdir().unwrap();
        let proc = Proc(dir);
        proc.put("stat", fixture!("stat.txt"));
        proc.put("loadavg", fixture!("loadavg.txt"));
        proc.put("meminfo", fixture!("meminfo-healthy.txt"));
        std::fs::create_dir(proc.0.path().join("pressure")).unwrap();
        proc.put("pressure/cpu", fixture!("pressure-cpu.txt"));
        proc.put("pressure/memory", fixture!("pressure-memory.txt"));
        proc.put("pressure/io", fixture!("pressure-io.txt"));
        proc
    }

    fn put(&self, name: &str, text: &str) {
        std::fs::write(self.0.path().join(name), text).unwrap();
    }
}

fn prober(proc: &Proc, http: FakeHttp) -> Prober<FakeDns, FakeHttp> {
    let prober = Prober::new(canary_on_host(proc.0.path()), FakeDns::default(), http);
    let os = Arc::clone(&prober.os);
    let host = HostWatch::start(&prober.config.host_watch, None, os);
    Prober {
        host: Some(host),
        ..prober
    }
}

/// Feeds `s_unreclaim` (KiB) as the samples of the last cycles, 30 s apart, ending now.
fn feed_series(prober: &Prober<FakeDns, FakeHttp>, proc: &Proc, s_unreclaim: &[u64]) {
    let host = prober.host.as_ref().unwrap();
    let now = now_ms();
    for (i, &kb) in s_unreclaim.iter().enumerate() {
        proc.put("meminfo", &meminfo_with_s_unreclaim(kb));
        let back = (s_unreclaim.len() - i) as i64;
        host.observe(now - back * 30_000);
    }
}

fn causes(report: &Report) -> Vec<Cause> {
    let host = report.host.as_ref().unwrap();
    host.conditions.iter().map(|c| c.cause).collect()
}

#[tokio::test]
async fn a_leak_is_a_warning_while_the_canary_is_fine() {
    let proc = Proc::calm();
    let prober = prober(&proc, FakeHttp::default());
    let first = prober.cycle().await;
    assert_eq!(causes(&first), [], "{:?}", first.host);
    // 3 GiB of 24 and climbing: above the default 10% share.
    feed_series(
        &prober,
        &proc,
        &[2_900_000, 2_950_000, 3_000_000, 3_050_000],
    );
    proc.put("meminfo", &meminfo_with_s_unreclaim(3_100_000));
    let report = prober.cycle().await;
    assert!(report.results[0].ok);
    assert_eq!(causes(&report), [Cause::KernelMemoryLeak]);
    let host = report.host.as_ref().unwrap();
    assert_eq!(
        host.memory.len(),
        1,
        "a report carries the latest sample only"
    );
    assert_eq!(host.memory[0].s_unreclaim_kb, Some(3_100_000));
    let leak = &host.conditions[0].explanation;
    assert!(
        leak.starts_with("unreclaimable kernel memory (SUnreclaim) is 3.0 GiB, 12.6% of RAM"),
        "{leak}"
    );
    assert_eq!(
        summary(&report),
        "cycle: 1/1 checks ok; host: kernel_memory_leak"
    );
    assert!(report.results[0].evidence.host.is_none());
    report.validate(now_ms()).unwrap();
}

#[tokio::test]
async fn a_timeout_on_an_overloaded_leaking_host_is_host_overload() {
    let proc = Proc::calm();
    let mut http = FakeHttp::default();
    http.failing
        .insert(ip("127.0.0.1"), FailureKind::ResponseTimeout);
    let prober = prober(&proc, http);
    feed_series(
        &prober,
        &proc,
        &[2_900_000, 2_950_000, 3_000_000, 3_050_000],
    );
    proc.put("meminfo", &meminfo_with_s_unreclaim(3_100_000));
    proc.put("loadavg", fixture!("loadavg-260.txt"));
    proc.put("pressure/memory", fixture!("pressure-memory-heavy.txt"));
    let report = prober.cycle().await;
    assert_eq!(
        causes(&report),
        [Cause::KernelMemoryLeak, Cause::HostOverload]
    );
    let r = &report.results[0];
    let d = r.diagnosis.as_ref().unwrap();
    assert_eq!(d.cause, Cause::HostOverload, "{d:?}");
    assert_eq!(d.contributing, [Cause::KernelMemoryLeak]);
    assert_eq!(
        d.explanation,
        "the host is saturated: load 260.1 on 2 CPUs (130.1 per CPU, threshold 2); memory \
         pressure (full) 71.0% (threshold 10%); the check: 127.0.0.1 accepted the connection \
         but did not answer in time (fake failure)"
    );
    let host = r.evidence.host.as_ref().unwrap();
    assert_eq!(
        host.memory.len(),
        5,
        "a failed check carries the whole series"
    );
    assert_eq!(
        summary(&report),
        "cycle: 0/1 checks ok: site 127.0.0.1 host_overload; host: kernel_memory_leak, \
         host_overload"
    );
    report.validate(now_ms()).unwrap();
}

#[tokio::test]
async fn unreadable_proc_files_are_warnings_not_errors() {
    let proc = Proc::calm();
    std::fs::remove_file(proc.0.path().join("meminfo")).unwrap();
    proc.put("loadavg", "not a load average\n");
    let prober = prober(&proc, FakeHttp::default());
    let report = prober.cycle().await;
    assert!(report.results[0].ok);
    let host = report.host.as_ref().unwrap();
    assert!(host.memory.is_empty() && host.pressure.as_ref().unwrap().load1.is_none());
    let warnings = host.warnings.join("\n");
    assert!(
        warnings.contains("meminfo") && warnings.contains("loadavg"),
        "{warnings}"
    );
    report.validate(now_ms()).unwrap();
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
