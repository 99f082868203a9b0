//! The `[host]` table: how the probe watches its own host (kernel log, memory series) and the
//! thresholds its host conditions are judged by.

use std::path::PathBuf;
use std::time::Duration;

use causeway_schema::{HostThresholds, MEMORY_SAMPLES_MAX};
use serde::Deserialize;

use super::validate::Validator;

pub(super) const HOST_KEYS: &[&str] = &[
    "kernel_log",
    "proc_root",
    "samples",
    "window",
    "leak_share",
    "leak_min_samples",
    "load_per_cpu",
    "cpu_pressure",
    "memory_pressure",
    "io_pressure",
];

/// Memory samples kept by default: 60 cycles, 30 minutes at the default interval, long enough
/// to see SUnreclaim creep.
const DEFAULT_SAMPLES: usize = 60;
const WINDOW_RANGE: (Duration, Duration) = (Duration::from_secs(60), Duration::from_secs(86_400));
const DEFAULT_PROC_ROOT: &str = "/proc";

/// How the probe watches its host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostConfig {
    /// Follow /dev/kmsg for OOM kills and kernel warnings.
    pub kernel_log: bool,
    /// Where procfs is read from: /proc, or the host's /proc mounted into a container.
    pub proc_root: PathBuf,
    /// Memory samples kept (one per cycle).
    pub samples: usize,
    pub thresholds: HostThresholds,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            kernel_log: true,
            proc_root: PathBuf::from(DEFAULT_PROC_ROOT),
            samples: DEFAULT_SAMPLES,
            thresholds: HostThresholds::default(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHost {
    kernel_log: Option<bool>,
    proc_root: Option<PathBuf>,
    samples: Option<i64>,
    window: Option<toml::Value>,
    // Numbers stay TOML values so that `leak_share = 10` and `= 10.5` both work, and a string
    // gets our message rather than serde's.
    leak_share: Option<toml::Value>,
    leak_min_samples: Option<i64>,
    load_per_cpu: Option<toml::Value>,
    cpu_pressure: Option<toml::Value>,
    memory_pressure: Option<toml::Value>,
    io_pressure: Option<toml::Value>,
}

impl Validator {
    pub(super) fn host(&mut self, raw: Option<RawHost>) -> Option<HostConfig> {
        let Some(raw) = raw else {
            return Some(HostConfig::default());
        };
        let d = HostConfig::default();
        let t = &d.thresholds;
        let samples = self.count(
            "host.samples",
            raw.samples,
            d.samples,
            2,
            MEMORY_SAMPLES_MAX,
        );
        let min_samples = self.count(
            "host.leak_min_samples",
            raw.leak_min_samples,
            t.leak_min_samples as usize,
            2,
            samples.unwrap_or(MEMORY_SAMPLES_MAX),
        );
        let window = self.duration(
            "host.window",
            raw.window,
            Duration::from_secs(u64::from(t.window_s)),
            WINDOW_RANGE,
        );
        let pct = 0.0..=100.0;
        let leak = self.number("host.leak_share", raw.leak_share, t.leak_share_pct, &pct);
        let load = self.number(
            "host.load_per_cpu",
            raw.load_per_cpu,
            t.load_per_cpu,
            &(0.1..=1000.0),
        );
        let cpu = self.number("host.cpu_pressure", raw.cpu_pressure, t.cpu_some_pct, &pct);
        let memory = self.number(
            "host.memory_pressure",
            raw.memory_pressure,
            t.memory_full_pct,
            &pct,
        );
        let io = self.number("host.io_pressure", raw.io_pressure, t.io_full_pct, &pct);
        let proc_root = raw.proc_root.unwrap_or(d.proc_root);
        if !proc_root.is_absolute() {
            self.problem(
                "host.proc_root",
                format!("{proc_root:?} is not an absolute path; use e.g. \"/proc\""),
            );
        }
        Some(HostConfig {
            kernel_log: raw.kernel_log.unwrap_or(d.kernel_log),
            proc_root,
            samples: samples?,
            thresholds: HostThresholds {
                leak_share_pct: leak?,
                leak_min_samples: min_samples? as u32,
                load_per_cpu: load?,
                cpu_some_pct: cpu?,
                memory_full_pct: memory?,
                io_full_pct: io?,
                window_s: window?.as_secs() as u32,
            },
        })
    }

    /// An integer from `min` to `max`.
    fn count(
        &mut self,
        key: &str,
        raw: Option<i64>,
        default: usize,
        min: usize,
        max: usize,
    ) -> Option<usize> {
        let Some(n) = raw else {
            return Some(default.clamp(min, max));
        };
        match usize::try_from(n) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.problem(key, format!("{n} is out of range; allowed: {min} to {max}"));
                None
            }
        }
    }

    /// A number (integer or float) within `range`.
    fn number(
        &mut self,
        key: &str,
        raw: Option<toml::Value>,
        default: f64,
        range: &std::ops::RangeInclusive<f64>,
    ) -> Option<f64> {
        let Some(value) = raw else {
            return Some(default);
        };
        let n = match &value {
            toml::Value::Integer(i) => Some(*i as f64),
            toml::Value::Float(f) => Some(*f),
            _ => None,
        };
        match n {
            Some(n) if range.contains(&n) => Some(n),
            _ => {
                self.problem(
                    key,
                    format!(
                        "{value} is not allowed; use a number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{parse, problems};
    use super::*;

    const MINIMAL: &str = super::super::tests::MINIMAL;

    #[test]
    fn defaults_without_a_host_table() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.host_watch, HostConfig::default());
        assert_eq!(c.host_watch.thresholds.window_s, 600);
        assert_eq!(c.host_watch.samples, 60);
        assert!(c.host_watch.kernel_log);
    }

    #[test]
    fn every_key_is_read() {
        let text = format!(
            "{MINIMAL}\n[host]\nkernel_log = false\nproc_root = \"/host/proc\"\nsamples = 20\n\
             window = \"5m\"\nleak_share = 12.5\nleak_min_samples = 6\nload_per_cpu = 4\n\
             cpu_pressure = 90\nmemory_pressure = 20\nio_pressure = 60\n"
        );
        let c = parse(&text).unwrap();
        assert_eq!(
            c.host_watch,
            HostConfig {
                kernel_log: false,
                proc_root: PathBuf::from("/host/proc"),
                samples: 20,
                thresholds: HostThresholds {
                    leak_share_pct: 12.5,
                    leak_min_samples: 6,
                    load_per_cpu: 4.0,
                    cpu_some_pct: 90.0,
                    memory_full_pct: 20.0,
                    io_full_pct: 60.0,
                    window_s: 300,
                },
            }
        );
    }

    #[test]
    fn bad_values_name_key_value_and_range() {
        let text = format!(
            "{MINIMAL}\n[host]\nsamples = 1\nwindow = \"10s\"\nleak_share = 150\n\
             leak_min_samples = 300\nload_per_cpu = \"high\"\nproc_root = \"proc\"\nbogus = 1\n"
        );
        assert_eq!(
            problems(&text),
            vec![
                "host.bogus: unknown key in host; allowed keys: kernel_log, proc_root, samples, \
                 window, leak_share, leak_min_samples, load_per_cpu, cpu_pressure, \
                 memory_pressure, io_pressure"
            ]
        );
        let text = text.replace("bogus = 1\n", "");
        assert_eq!(
            problems(&text),
            vec![
                "host.samples: 1 is out of range; allowed: 2 to 240",
                "host.leak_min_samples: 300 is out of range; allowed: 2 to 240",
                "host.window: \"10s\" is out of range; allowed: 1m to 1d",
                "host.leak_share: 150 is not allowed; use a number from 0 to 100",
                "host.load_per_cpu: \"high\" is not allowed; use a number from 0.1 to 1000",
                "host.proc_root: \"proc\" is not an absolute path; use e.g. \"/proc\"",
            ]
        );
        let text = format!("{MINIMAL}\n[host]\nsamples = 10\nleak_min_samples = 11\n");
        assert_eq!(
            problems(&text),
            vec!["host.leak_min_samples: 11 is out of range; allowed: 2 to 10"]
        );
    }
}
