//! How loaded the probe's host is: memory (`/proc/meminfo`), pressure stall information
//! (`/proc/pressure/*`), the load average, sampled every cycle and kept in a bounded series.
//!
//! Why: `kernel_memory_leak` needs SUnreclaim as a series (a leak is memory the kernel holds
//! and keeps growing, invisible to `ps`), and `host_overload` needs PSI and load per CPU at the
//! time of a failure. Each file has a pure parser tested on recorded text; every reader takes
//! the proc root so tests point it at fixtures and production at `/proc`.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::Once;

use causeway_schema::{MemorySample, Pressure};

use serde::{Deserialize, Serialize};

/// A file that does not hold what the kernel's documentation promises: which file, what is
/// wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {problem}")]
pub struct ParseError {
    pub file: String,
    pub problem: String,
}

fn bad(file: &str, problem: String) -> ParseError {
    let file = file.to_owned();
    ParseError { file, problem }
}

/// The lines of `/proc/meminfo` the causes need, in kB. Optional fields are absent on older
/// kernels (MemAvailable came in 3.14), which is "unknown", not zero.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meminfo {
    pub mem_total_kb: u64,
    pub mem_available_kb: Option<u64>,
    pub slab_kb: Option<u64>,
    /// Kernel memory that cannot be reclaimed: what a slab leak grows.
    pub s_unreclaim_kb: Option<u64>,
}

/// Parses `Key:   value kB` lines. Other keys are ignored, so new kernels' lines do not break
/// the probe; a wanted value that is not a number is an error, not an absent field.
pub fn parse_meminfo(text: &str) -> Result<Meminfo, ParseError> {
    let (mut total, mut m) = (None, Meminfo::default());
    for (key, value) in text.lines().filter_map(|l| l.split_once(':')) {
        let slot = match key {
            "MemTotal" => &mut total,
            "MemAvailable" => &mut m.mem_available_kb,
            "Slab" => &mut m.slab_kb,
            "SUnreclaim" => &mut m.s_unreclaim_kb,
            _ => continue,
        };
        let number = value.trim().strip_suffix("kB").unwrap_or(value).trim();
        let problem = || format!("{key} is not a number of kB: {value:?}");
        *slot = Some(
            number
                .parse()
                .map_err(|_| bad("/proc/meminfo", problem()))?,
        );
    }
    m.mem_total_kb = total.ok_or_else(|| bad("/proc/meminfo", "no MemTotal line".into()))?;
    Ok(m)
}

/// One line of a PSI file: the share of wall time (percent) in which some (or all) runnable
/// tasks were stalled on the resource, over 10 s, 60 s and 300 s, and the total stall in µs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PsiLine {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total_us: u64,
}

/// A PSI file. `full` is absent for cpu before Linux 5.13 (and all zeros since: at the host
/// level the CPU cannot stall every task at once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Psi {
    pub some: PsiLine,
    pub full: Option<PsiLine>,
}

/// Parses `/proc/pressure/{resource}` (`cpu`, `memory`, `io`): a `some avg10=.. avg60=..
/// avg300=.. total=..` line and an optional `full ...` line.
pub fn parse_psi(resource: &str, text: &str) -> Result<Psi, ParseError> {
    let file = format!("/proc/pressure/{resource}");
    let (mut some, mut full) = (None, None);
    for line in text.lines() {
        match line.split_once(' ') {
            Some(("some", rest)) => some = Some(parse_psi_line(&file, rest)?),
            Some(("full", rest)) => full = Some(parse_psi_line(&file, rest)?),
            _ => {}
        }
    }
    let some = some.ok_or_else(|| bad(&file, "no \"some\" line".into()))?;
    Ok(Psi { some, full })
}

fn parse_psi_line(file: &str, rest: &str) -> Result<PsiLine, ParseError> {
    fn field<T: std::str::FromStr>(file: &str, rest: &str, name: &str) -> Result<T, ParseError> {
        let value = rest
            .split_ascii_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .ok_or_else(|| bad(file, format!("no {name}= in {rest:?}")))?;
        let problem = || format!("{name}={value} is not a number");
        value.parse().map_err(|_| bad(file, problem()))
    }
    Ok(PsiLine {
        avg10: field(file, rest, "avg10")?,
        avg60: field(file, rest, "avg60")?,
        avg300: field(file, rest, "avg300")?,
        total_us: field(file, rest, "total")?,
    })
}

static PSI_ABSENT: Once = Once::new();

/// `/proc/pressure/{resource}` under `proc_root`. Ok(None) when the kernel has no PSI
/// (CONFIG_PSI off, or booted with `psi=0`, which leaves /proc/pressure out): the host is not
/// broken, that evidence is just unavailable. The reason is logged once per process, not at
/// every cycle.
pub fn read_psi(proc_root: &Path, resource: &str) -> io::Result<Option<Psi>> {
    match read(proc_root, &format!("pressure/{resource}"), |t| {
        parse_psi(resource, t)
    }) {
        Ok(psi) => Ok(Some(psi)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::Unsupported
            ) =>
        {
            PSI_ABSENT.call_once(|| {
                tracing::info!(
                    "no pressure stall information ({e}): the kernel lacks PSI or was booted \
                     with psi=0; host_overload will rest on the load average alone"
                )
            });
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// `/proc/loadavg`. `runnable` counts tasks running or runnable now, `total_threads` all
/// tasks. Load also counts tasks in uninterruptible sleep (often I/O), so it is judged per CPU
/// and next to PSI, never alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadAvg {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
    pub runnable: u32,
    pub total_threads: u32,
}

/// Parses `0.19 1.79 2.52 1/83 10567` (the last field, the last pid handed out, is not kept).
pub fn parse_loadavg(text: &str) -> Result<LoadAvg, ParseError> {
    let bad = |problem: String| bad("/proc/loadavg", problem);
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let [one, five, fifteen, tasks, _last_pid] = fields[..] else {
        return Err(bad(format!(
            "{} fields, expected 5: {text:?}",
            fields.len()
        )));
    };
    let load = |v: &str| v.parse().map_err(|_| bad(format!("{v:?} is not a load")));
    let tasks_bad = || bad(format!("{tasks:?} is not runnable/total"));
    let (runnable, total) = tasks.split_once('/').ok_or_else(tasks_bad)?;
    Ok(LoadAvg {
        one: load(one)?,
        five: load(five)?,
        fifteen: load(fifteen)?,
        runnable: runnable.parse().map_err(|_| tasks_bad())?,
        total_threads: total.parse().map_err(|_| tasks_bad())?,
    })
}

/// Online CPUs: the `cpuN` lines of `/proc/stat`. Why this source: the load is host-wide, so it
/// is compared with the host's CPUs, not with `available_parallelism` (the probe's own affinity
/// and cgroup quota, which its systemd unit may restrict); /proc/stat lists online CPUs in the
/// same format on every architecture (unlike /proc/cpuinfo) and sits under the proc root
/// (unlike /sys/devices/system/cpu/online), so tests can record it.
pub fn count_cpus(stat: &str) -> Option<u32> {
    let cpu_n = |l: &&str| {
        l.strip_prefix("cpu")
            .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()))
    };
    u32::try_from(stat.lines().filter(cpu_n).count())
        .ok()
        .filter(|&n| n > 0)
}

/// What the probe knows of its host at one instant. A reader that failed leaves None (and a
/// warning), so one odd file does not cost the others.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostSample {
    pub at_ms: i64,
    pub meminfo: Option<Meminfo>,
    pub psi_cpu: Option<Psi>,
    pub psi_memory: Option<Psi>,
    pub psi_io: Option<Psi>,
    pub load: Option<LoadAvg>,
    /// From /proc/stat ([`count_cpus`]); `available_parallelism`, then 1, if that fails.
    pub cpus: u32,
    /// The files that could not be read or parsed, each with why.
    pub warnings: Vec<String>,
}

/// Reads everything from `proc_root` (`/proc` in production, recorded files in tests). What
/// could not be read is left None and named in `warnings`.
pub fn sample(proc_root: &Path, now_ms: i64) -> HostSample {
    fn keep<T>(warnings: &mut Vec<String>, r: io::Result<T>) -> Option<T> {
        r.map_err(|e| warnings.push(e.to_string())).ok()
    }
    let mut w = Vec::new();
    let meminfo = keep(&mut w, read(proc_root, "meminfo", parse_meminfo));
    let load = keep(&mut w, read(proc_root, "loadavg", parse_loadavg));
    let cpus = keep(&mut w, read(proc_root, "stat", |t| Ok(count_cpus(t)))).flatten();
    let psi_cpu = keep(&mut w, read_psi(proc_root, "cpu")).flatten();
    let psi_memory = keep(&mut w, read_psi(proc_root, "memory")).flatten();
    let psi_io = keep(&mut w, read_psi(proc_root, "io")).flatten();
    let fallback = || std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    HostSample {
        at_ms: now_ms,
        meminfo,
        psi_cpu,
        psi_memory,
        psi_io,
        load,
        cpus: cpus.unwrap_or_else(fallback),
        warnings: w,
    }
}

impl HostSample {
    /// The memory figures as the report carries them; None without MemTotal.
    pub fn memory(&self) -> Option<MemorySample> {
        let m = self.meminfo.as_ref()?;
        Some(MemorySample {
            at_ms: self.at_ms,
            total_kb: m.mem_total_kb,
            available_kb: m.mem_available_kb,
            slab_kb: m.slab_kb,
            s_unreclaim_kb: m.s_unreclaim_kb,
        })
    }

    /// The pressure figures as the report carries them (avg10 only: the judgement is about
    /// now).
    pub fn pressure(&self) -> Pressure {
        let some = |p: &Option<Psi>| p.as_ref().map(|p| p.some.avg10);
        let full = |p: &Option<Psi>| p.as_ref().and_then(|p| Some(p.full.as_ref()?.avg10));
        Pressure {
            at_ms: self.at_ms,
            cpus: self.cpus,
            load1: self.load.as_ref().map(|l| l.one),
            load5: self.load.as_ref().map(|l| l.five),
            load15: self.load.as_ref().map(|l| l.fifteen),
            runnable: self.load.as_ref().map(|l| l.runnable),
            cpu_some: some(&self.psi_cpu),
            memory_some: some(&self.psi_memory),
            memory_full: full(&self.psi_memory),
            io_some: some(&self.psi_io),
            io_full: full(&self.psi_io),
        }
    }
}

/// Reads `proc_root/name` and parses it; the error keeps the io kind (NotFound matters).
fn read<T>(
    proc_root: &Path,
    name: &str,
    parse: impl FnOnce(&str) -> Result<T, ParseError>,
) -> io::Result<T> {
    let path = proc_root.join(name);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot read {}: {e}", path.display())))?;
    parse(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The last `capacity` samples, oldest first (60 at a 30 s interval is 30 minutes): enough to
/// see a leak creep, without memory that grows with the probe's uptime.
#[derive(Debug, Clone)]
pub struct Series {
    samples: VecDeque<HostSample>,
    capacity: usize,
}

impl Series {
    /// A capacity of 0 is taken as 1: a series always holds the latest sample.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let samples = VecDeque::with_capacity(capacity);
        Series { samples, capacity }
    }

    /// Adds a sample, dropping the oldest when full.
    pub fn push(&mut self, sample: HostSample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    #[cfg(test)]
    fn latest(&self) -> Option<&HostSample> {
        self.samples.back()
    }

    /// Oldest first.
    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = &HostSample> {
        self.samples.iter()
    }

    /// The memory samples, oldest first.
    pub fn memory(&self) -> Vec<MemorySample> {
        self.samples.iter().filter_map(HostSample::memory).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_str!(concat!("../../tests/fixtures/host/", $name))
        };
    }

    fn err<T: std::fmt::Debug>(result: Result<T, ParseError>) -> String {
        result.unwrap_err().to_string()
    }

    /// A PSI line as `[avg10, avg60, avg300]` and the total, to compare whole files at once.
    fn lines(psi: &Psi) -> Vec<([f64; 3], u64)> {
        let flat = |l: &PsiLine| ([l.avg10, l.avg60, l.avg300], l.total_us);
        std::iter::once(&psi.some)
            .chain(&psi.full)
            .map(flat)
            .collect()
    }

    #[test]
    fn meminfo_fixtures() {
        let healthy = parse_meminfo(fixture!("meminfo-healthy.txt")).unwrap();
        let want = Meminfo {
            mem_total_kb: 24_683_656,
            mem_available_kb: Some(24_232_624),
            slab_kb: Some(430_288),
            s_unreclaim_kb: Some(45_728),
        };
        assert_eq!(healthy, want);
        let old = fixture!("meminfo-healthy.txt").replace("MemAvailable:", "Old:");
        let want = Meminfo {
            mem_available_kb: None,
            ..want
        };
        assert_eq!(parse_meminfo(&old).unwrap(), want, "a kernel before 3.14");
        // The leak excerpt holds SUnreclaim only: without MemTotal its share of RAM is unknown.
        let leak = fixture!("meminfo-slab-leak.txt");
        assert_eq!(err(parse_meminfo(leak)), "/proc/meminfo: no MemTotal line");
        let leak = parse_meminfo(&format!("MemTotal: 32768000 kB\n{leak}")).unwrap();
        assert_eq!(leak.s_unreclaim_kb, Some(25_842_956));
        let want = r#"/proc/meminfo: MemTotal is not a number of kB: " lots kB""#;
        assert_eq!(err(parse_meminfo("MemTotal: lots kB\n")), want);
    }

    #[test]
    fn psi_fixtures() {
        let cpu = parse_psi("cpu", fixture!("pressure-cpu.txt")).unwrap();
        let zero = ([0.0; 3], 0);
        assert_eq!(lines(&cpu), [([0.06, 1.05, 23.12], 1_624_837_563), zero]);
        let io = parse_psi("io", fixture!("pressure-io.txt")).unwrap();
        let want = [
            ([0.04, 0.12, 0.30], 101_526_783),
            ([0.04, 0.11, 0.18], 70_870_306),
        ];
        assert_eq!(lines(&io), want);
        let memory = parse_psi("memory", fixture!("pressure-memory.txt")).unwrap();
        assert_eq!(lines(&memory), [zero, zero]);
        let heavy = parse_psi("memory", fixture!("pressure-memory-heavy.txt")).unwrap();
        let want = [
            ([85.12, 60.40, 22.10], 912_345_678),
            ([71.03, 48.77, 15.64], 701_234_567),
        ];
        assert_eq!(lines(&heavy), want);
        let before_5_13 = "some avg10=1.00 avg60=2.00 avg300=3.00 total=4\n";
        assert_eq!(parse_psi("cpu", before_5_13).unwrap().full, None);
    }

    #[test]
    fn psi_errors_name_the_file_and_the_field() {
        let e = parse_psi("io", "some avg10=0.00 avg300=0.00 total=0\n").unwrap_err();
        assert_eq!(e.file, "/proc/pressure/io");
        assert_eq!(
            e.problem,
            r#"no avg60= in "avg10=0.00 avg300=0.00 total=0""#
        );
        let got = err(parse_psi("cpu", "some avg10=x avg60=0 avg300=0 total=0"));
        assert_eq!(got, "/proc/pressure/cpu: avg10=x is not a number");
        let got = err(parse_psi("memory", "full avg10=0 avg60=0 avg300=0 total=0"));
        assert_eq!(got, r#"/proc/pressure/memory: no "some" line"#);
    }

    #[test]
    fn loadavg_and_cpu_fixtures_and_errors() {
        let flat = |l: LoadAvg| ([l.one, l.five, l.fifteen], l.runnable, l.total_threads);
        let load = parse_loadavg(fixture!("loadavg.txt")).unwrap();
        assert_eq!(flat(load), ([0.10, 1.59, 2.43], 1, 82));
        let load = parse_loadavg(fixture!("loadavg-260.txt")).unwrap();
        assert_eq!(flat(load), ([260.12, 255.40, 180.02], 270, 1500));
        let want = r#"/proc/loadavg: 4 fields, expected 5: "0.10 1.59 2.43 1/82\n""#;
        assert_eq!(err(parse_loadavg("0.10 1.59 2.43 1/82\n")), want);
        let want = r#"/proc/loadavg: "82" is not runnable/total"#;
        assert_eq!(err(parse_loadavg("0.10 1.59 2.43 82 10719\n")), want);
        assert_eq!(count_cpus(fixture!("stat.txt")), Some(2));
        assert_eq!(count_cpus("cpu  1 2 3\nintr 0\n"), None);
    }

    #[test]
    fn sample_reads_a_recorded_proc_root() {
        let dir = tempfile::tempdir().unwrap();
        let put = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        put("meminfo", fixture!("meminfo-healthy.txt"));
        put("loadavg", fixture!("loadavg-260.txt"));
        put("stat", fixture!("stat.txt"));
        let s = sample(dir.path(), 1_000);
        assert_eq!((s.at_ms, s.cpus), (1_000, 2));
        assert_eq!(s.meminfo.unwrap().s_unreclaim_kb, Some(45_728));
        assert_eq!(s.load.unwrap().one, 260.12);
        assert!(s.psi_cpu.is_none() && s.psi_memory.is_none() && s.psi_io.is_none());
        assert!(read_psi(dir.path(), "cpu").unwrap().is_none());

        std::fs::create_dir(dir.path().join("pressure")).unwrap();
        put("pressure/cpu", fixture!("pressure-cpu.txt"));
        put("pressure/memory", fixture!("pressure-memory-heavy.txt"));
        put("pressure/io", "some avg10=0.00\n");
        put("meminfo", fixture!("meminfo-slab-leak.txt"));
        let s = sample(dir.path(), 2_000);
        assert_eq!(s.psi_memory.unwrap().some.avg10, 85.12);
        assert_eq!(s.psi_cpu.unwrap().some.total_us, 1_624_837_563);
        // A bad file costs only its own field.
        assert!(s.psi_io.is_none() && s.meminfo.is_none() && s.load.is_some());
        let err = read_psi(dir.path(), "io").unwrap_err().to_string();
        assert_eq!(err, r#"/proc/pressure/io: no avg60= in "avg10=0.00""#);
    }

    #[test]
    fn the_running_kernel_gives_memory_load_and_cpus() {
        let s = sample(Path::new("/proc"), 0);
        assert!(
            s.meminfo.is_some() && s.load.is_some() && s.cpus >= 1,
            "{s:?}"
        );
    }

    fn series(capacity: usize, s_unreclaim: &[u64]) -> Series {
        let mut series = Series::new(capacity);
        for (i, &kb) in s_unreclaim.iter().enumerate() {
            let meminfo = Meminfo {
                s_unreclaim_kb: Some(kb),
                ..Meminfo::default()
            };
            let at_ms = i as i64 * 30_000;
            series.push(HostSample {
                at_ms,
                meminfo: Some(meminfo),
                ..HostSample::default()
            });
        }
        series
    }

    #[test]
    fn series_keeps_the_last_capacity_samples() {
        assert!(Series::new(3).latest().is_none());
        let s = series(3, &[1, 2, 3, 4, 5]);
        let kept: Vec<i64> = s.iter().map(|x| x.at_ms).collect();
        assert_eq!(kept, [60_000, 90_000, 120_000]);
        assert_eq!(s.latest().unwrap().at_ms, 120_000);
        let one = series(0, &[1, 2]);
        assert_eq!(one.iter().count(), 1);
        assert_eq!(one.memory().len(), 1, "{:?}", one.memory());
    }
}
