//! Host wire types: what the probe saw of its own host (memory, pressure, OOM kills, the
//! kernel log, reboots), the thresholds it judged them by, and the host conditions it found.
//!
//! The same [`HostEvidence`] travels twice: once per report (`Report.host`, every cycle, so
//! host conditions have a history even while the canary is fine; there `memory` holds only
//! the latest sample and `kernel_lines` is empty) and once per failed check of a canary served
//! on the probe's host (`Evidence.host`, with the whole series and the kernel lines).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Cause;

/// Most memory samples per evidence (a probe keeps 60 by default).
pub const MEMORY_SAMPLES_MAX: usize = 240;
/// Most OOM kills per evidence (the newest are kept).
pub const OOM_KILLS_MAX: usize = 16;
/// Most kernel log lines per evidence (the newest are kept).
pub const KERNEL_LINES_MAX: usize = 50;
/// Most warnings (readers that failed) per evidence.
pub const HOST_WARNINGS_MAX: usize = 16;

/// The probe's host around a cycle or a failed check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostEvidence {
    /// /proc/sys/kernel/random/boot_id; empty when it could not be read.
    pub boot_id: String,
    /// Seconds since boot, from /proc/uptime.
    pub uptime_s: u64,
    /// The boot id changed since the probe's previous cycle (kept for `window_s` after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot: Option<Reboot>,
    /// /proc/meminfo over time, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memory: Vec<MemorySample>,
    /// The latest PSI and load figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pressure: Option<Pressure>,
    /// OOM kills logged within `window_s` before the cycle or the check, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub oom_kills: Vec<OomKill>,
    /// Kernel log lines of level warning or worse from the same window, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernel_lines: Vec<KernelLine>,
    pub thresholds: HostThresholds,
    /// What the probe found wrong with its host, judged by [`host_conditions`](crate::host_conditions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<HostCondition>,
    /// What could not be read, and why ("kernel log unavailable: ... needs CAP_SYSLOG").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// /proc/meminfo at one instant, in KiB as the kernel gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemorySample {
    pub at_ms: i64,
    pub total_kb: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_kb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slab_kb: Option<u64>,
    /// Unreclaimable slab: kernel memory that only a fix or a reboot gives back, and that no
    /// process's RSS shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s_unreclaim_kb: Option<u64>,
}

/// Pressure stall information (the share of the last 10 s in which tasks waited, in percent)
/// and the load average. A field is `None` when the kernel does not provide it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pressure {
    pub at_ms: i64,
    /// Online CPUs, from /proc/stat.
    pub cpus: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load1: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load5: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load15: Option<f64>,
    /// Runnable threads at the instant of the sample (/proc/loadavg's fourth field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runnable: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_some: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_some: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_full: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_some: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_full: Option<f64>,
}

/// A process killed by the kernel's OOM killer, from the kernel log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OomKill {
    /// When the kernel logged it, in milliseconds since the Unix epoch.
    pub at_ms: i64,
    pub pid: u32,
    /// The process's `comm` (at most 15 bytes).
    pub command: String,
    /// The victim's memory cgroup (`task_memcg`), which names the service that died.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memcg: Option<String>,
    /// A memory cgroup hit its limit: the host itself may have had memory to spare.
    #[serde(default)]
    pub cgroup_oom: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_vm_kb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anon_rss_kb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_rss_kb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shmem_rss_kb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
}

/// One kernel log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelLine {
    pub at_ms: i64,
    /// 0 (emergency) to 7 (debug).
    pub level: u8,
    pub text: String,
}

/// What the probe's host readings are judged by (the probe's `[host]` config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostThresholds {
    /// SUnreclaim above this share of MemTotal (percent), and growing, is a kernel memory leak.
    pub leak_share_pct: f64,
    /// The fewest memory samples a leak is judged on: growth needs a series, not two points.
    pub leak_min_samples: u32,
    /// The 1-minute load per CPU at or above which the host is overloaded.
    pub load_per_cpu: f64,
    /// PSI `some avg10` for CPU, in percent, at or above which the host is overloaded.
    pub cpu_some_pct: f64,
    /// PSI `full avg10` for memory, in percent.
    pub memory_full_pct: f64,
    /// PSI `full avg10` for I/O, in percent.
    pub io_full_pct: f64,
    /// How far back an OOM kill or a reboot counts, in seconds.
    pub window_s: u32,
}

impl Default for HostThresholds {
    fn default() -> Self {
        HostThresholds {
            leak_share_pct: 10.0,
            leak_min_samples: 4,
            load_per_cpu: 2.0,
            cpu_some_pct: 80.0,
            memory_full_pct: 10.0,
            io_full_pct: 50.0,
            window_s: 600,
        }
    }
}

/// Something wrong with the host, found in one cycle: a warning while the canary is fine, a
/// cause or a contributing cause when a check fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCondition {
    /// `oom_kill`, `kernel_memory_leak`, `host_overload` or `host_rebooted`.
    pub cause: Cause,
    /// One line for people, with the figures.
    pub explanation: String,
    /// The readings behind it, one per line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

impl HostEvidence {
    /// The latest memory sample.
    pub fn latest_memory(&self) -> Option<&MemorySample> {
        self.memory.last()
    }

    pub fn condition(&self, cause: Cause) -> Option<&HostCondition> {
        self.conditions.iter().find(|c| c.cause == cause)
    }
}

/// A reboot of the probe's host, seen through /proc/sys/kernel/random/boot_id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reboot {
    pub previous_boot_id: String,
    pub boot_id: String,
    /// Seconds since this boot, from /proc/uptime.
    pub uptime_s: u64,
}

/// KiB for people: `512 KiB`, `63.5 MiB`, `24.0 GiB`.
pub struct Kib(pub u64);

impl fmt::Display for Kib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kb = self.0 as f64;
        if self.0 < 1024 {
            write!(f, "{} KiB", self.0)
        } else if kb < 1024.0 * 1024.0 {
            write!(f, "{:.1} MiB", kb / 1024.0)
        } else {
            write!(f, "{:.1} GiB", kb / (1024.0 * 1024.0))
        }
    }
}

impl fmt::Display for OomKill {
    /// `python3 (pid 4242, anon-rss 63.5 MiB, memory cgroup /lab/oom)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (pid {}", self.command, self.pid)?;
        if let Some(rss) = self.anon_rss_kb {
            write!(f, ", anon-rss {}", Kib(rss))?;
        }
        if let Some(vm) = self.total_vm_kb {
            write!(f, ", total-vm {}", Kib(vm))?;
        }
        if let Some(cg) = &self.memcg {
            write!(f, ", memory cgroup {cg}")?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_free_does() {
        assert_eq!(Kib(512).to_string(), "512 KiB");
        assert_eq!(Kib(65_024).to_string(), "63.5 MiB");
        assert_eq!(Kib(24 * 1024 * 1024).to_string(), "24.0 GiB");
    }

    #[test]
    fn a_kill_names_process_pid_memory_and_cgroup() {
        let kill = OomKill {
            pid: 764_810,
            command: "python2".into(),
            anon_rss_kb: Some(31_926_500),
            total_vm_kb: Some(34_137_720),
            memcg: Some("/system.slice/app.service".into()),
            ..OomKill::default()
        };
        assert_eq!(
            kill.to_string(),
            "python2 (pid 764810, anon-rss 30.4 GiB, total-vm 32.6 GiB, memory cgroup \
             /system.slice/app.service)"
        );
    }
}
