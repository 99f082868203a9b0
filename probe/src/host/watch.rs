//! The host across cycles: one memory and pressure sample per cycle kept as a series, the
//! kernel log followed from the probe's start, the reboot found at start; judged every cycle
//! into host conditions.
//!
//! Why every cycle and not only on failure: a slab leak or a climbing load is the warning that
//! comes before the outage, and the collector keeps host conditions with their own history.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use causeway_schema::{
    HOST_WARNINGS_MAX, HostEvidence, KERNEL_LINES_MAX, OOM_KILLS_MAX, Reboot, host_conditions,
};

use super::kmsg::{KernelLog, KmsgStatus};
use super::pressure::{self, Series};
use crate::config::HostConfig;
use crate::os::Os;

/// Follows the host; one per probe.
pub struct HostWatch {
    config: HostConfig,
    os: Arc<dyn Os>,
    kernel_log: Option<KernelLog>,
    state: Mutex<State>,
}

struct State {
    series: Series,
    reboot: Option<Reboot>,
    /// Whether `reboot` went into a report yet: it goes into the first one in any case, then
    /// as long as the host has been up for less than the window.
    reboot_reported: bool,
    /// The warnings of the last cycle, so that each change is logged once, not every cycle.
    logged: BTreeSet<String>,
    /// How often the kernel log had overwritten records before they were read, as of the
    /// last cycle.
    overwritten: u64,
}

impl HostWatch {
    /// Starts following the kernel log (unless `config.kernel_log` is off). `reboot` is what
    /// the state file showed at the probe's start. Everything is read from `os`.
    pub fn start(config: &HostConfig, reboot: Option<Reboot>, os: Arc<dyn Os>) -> HostWatch {
        let kernel_log = config.kernel_log.then(|| KernelLog::start(Arc::clone(&os)));
        HostWatch {
            config: config.clone(),
            os,
            kernel_log,
            state: Mutex::new(State {
                series: Series::new(config.samples),
                reboot,
                reboot_reported: false,
                logged: BTreeSet::new(),
                overwritten: 0,
            }),
        }
    }

    /// Samples the host and judges it: the evidence of this cycle, with the whole series, the
    /// OOM kills and the kernel lines of the window. Call once per cycle, after the checks.
    pub fn observe(&self, now_ms: i64) -> HostEvidence {
        let sample = pressure::sample(self.os.proc_root(), now_ms);
        let mut warnings = sample.warnings.clone();
        let pressure = sample.pressure();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.series.push(sample);
        let boot_id = (self.os.boot_id())
            .map(|id| id.trim().to_owned())
            .unwrap_or_else(|e| {
                warnings.push(format!("cannot read the boot id: {e}"));
                String::new()
            });
        let uptime_s = self.os.uptime_s().unwrap_or_else(|e| {
            warnings.push(format!("cannot read the uptime: {e}"));
            0
        });
        let window_s = self.config.thresholds.window_s;
        let reboot = state
            .reboot
            .clone()
            .filter(|_| !state.reboot_reported || uptime_s <= u64::from(window_s));
        state.reboot_reported = true;
        let since_ms = now_ms - i64::from(window_s) * 1000;
        let (oom_kills, kernel_lines) = match &self.kernel_log {
            Some(log) => {
                match log.status() {
                    KmsgStatus::Unavailable(why) => {
                        warnings.push(format!("OOM kills are not seen: {why}"));
                    }
                    KmsgStatus::Following { overwritten, .. } => {
                        warnings.extend(overwritten_warning(state.overwritten, overwritten));
                        state.overwritten = overwritten;
                    }
                }
                let mut kills = log.oom_kills_since(since_ms);
                let drop = kills.len().saturating_sub(OOM_KILLS_MAX);
                kills.drain(..drop);
                let lines = log.recent_lines(since_ms, KERNEL_LINES_MAX);
                (kills, lines)
            }
            None => (Vec::new(), Vec::new()),
        };
        warnings.truncate(HOST_WARNINGS_MAX);
        log_changes(&mut state.logged, &warnings);
        let mut evidence = HostEvidence {
            boot_id,
            uptime_s,
            reboot,
            memory: state.series.memory(),
            pressure: Some(pressure),
            oom_kills: oom_kills
                .into_iter()
                .map(|(at_ms, kill)| causeway_schema::OomKill { at_ms, ..kill })
                .collect(),
            kernel_lines,
            thresholds: self.config.thresholds.clone(),
            conditions: Vec::new(),
            warnings,
        };
        evidence.conditions = host_conditions(&evidence, now_ms);
        evidence
    }
}

/// What a report carries of the cycle's evidence: the latest sample instead of the series and
/// no kernel lines (those travel with failed checks), the conditions judged on the whole.
pub fn for_report(evidence: &HostEvidence) -> HostEvidence {
    HostEvidence {
        memory: evidence.memory.last().cloned().into_iter().collect(),
        kernel_lines: Vec::new(),
        ..evidence.clone()
    }
}

/// A warning for the cycle in which the kernel's ring buffer overwrote records the probe had
/// not read yet (a flood of kernel messages): an OOM kill among them is missing.
fn overwritten_warning(before: u64, now: u64) -> Option<String> {
    let lost = now.checked_sub(before).filter(|n| *n > 0)?;
    let times = if lost == 1 { "once" } else { "several times" };
    Some(format!(
        "the kernel log overwrote records before the probe read them ({times} since the last \
         cycle): an OOM kill among them is not seen"
    ))
}

/// Logs each warning when it first appears and once when they all clear.
fn log_changes(logged: &mut BTreeSet<String>, warnings: &[String]) {
    let now: BTreeSet<String> = warnings.iter().cloned().collect();
    for w in now.difference(logged) {
        tracing::warn!("host evidence: {w}");
    }
    if now.is_empty() && !logged.is_empty() {
        tracing::info!("host evidence: every reader works again");
    }
    *logged = now;
}

#[cfg(test)]
mod tests {
    use causeway_schema::Cause;

    use super::*;

    #[test]
    fn lost_kernel_records_are_a_warning_of_the_cycle_they_were_lost_in() {
        assert_eq!(overwritten_warning(0, 0), None);
        assert_eq!(overwritten_warning(3, 3), None);
        assert_eq!(
            overwritten_warning(0, 1).as_deref(),
            Some(
                "the kernel log overwrote records before the probe read them (once since the \
                 last cycle): an OOM kill among them is not seen"
            )
        );
        let several = overwritten_warning(1, 4).unwrap();
        assert!(
            several.contains("(several times since the last cycle)"),
            "{several}"
        );
    }

    #[test]
    fn a_cycle_in_which_kernel_records_were_lost_warns_and_the_next_one_does_not() {
        let mut w = watch(600, None);
        w.kernel_log = Some(KernelLog::unfollowed());
        let lost = |e: &HostEvidence| {
            e.warnings
                .iter()
                .any(|w| w.starts_with("the kernel log overwrote records"))
        };
        assert!(!lost(&w.observe(1_000)));
        w.kernel_log.as_ref().unwrap().lose_records(2);
        let cycle = w.observe(2_000);
        assert!(lost(&cycle), "{:?}", cycle.warnings);
        assert!(!lost(&w.observe(3_000)));
    }

    fn proc() -> &'static std::path::Path {
        std::path::Path::new("/proc")
    }

    fn reboot() -> Reboot {
        Reboot {
            previous_boot_id: "8a1f0c3e-0000-4000-8000-000000000001".into(),
            boot_id: crate::host::boot::boot_id(proc()).unwrap(),
            uptime_s: 42,
        }
    }

    fn watch(window_s: u32, reboot: Option<Reboot>) -> HostWatch {
        let mut config = HostConfig {
            kernel_log: false,
            ..HostConfig::default()
        };
        config.thresholds.window_s = window_s;
        HostWatch::start(&config, reboot, Arc::new(crate::os::Host::new(proc())))
    }

    fn causes(evidence: &HostEvidence) -> Vec<Cause> {
        evidence.conditions.iter().map(|c| c.cause).collect()
    }

    #[test]
    fn a_reboot_is_reported_at_least_once_and_while_within_the_window() {
        let uptime_s = crate::host::boot::uptime_s(proc()).unwrap();
        // This machine has been up longer than a 1 s window: the reboot found at start goes
        // into the first report only.
        let short = watch(1, Some(reboot()));
        let first = short.observe(1_000);
        assert_eq!(first.reboot.as_ref().map(|r| r.uptime_s), Some(42));
        assert!(causes(&first).contains(&Cause::HostRebooted), "{first:?}");
        assert!(short.observe(2_000).reboot.is_none());
        // A window longer than the uptime keeps it in every report.
        let long_s = u32::try_from(uptime_s + 3600).unwrap();
        let long = watch(long_s, Some(reboot()));
        assert!(long.observe(1_000).reboot.is_some() && long.observe(2_000).reboot.is_some());
        // No reboot, no condition.
        let none = watch(600, None).observe(1_000);
        assert!(!causes(&none).contains(&Cause::HostRebooted), "{none:?}");
        assert!(!none.boot_id.is_empty() && none.uptime_s > 0);
    }

    #[test]
    fn the_report_carries_the_latest_sample_and_no_kernel_lines() {
        let w = watch(600, None);
        w.observe(1_000);
        let full = w.observe(2_000);
        assert_eq!(full.memory.len(), 2);
        let report = for_report(&full);
        assert_eq!(report.memory, full.memory[1..]);
        assert!(report.kernel_lines.is_empty());
        assert_eq!(report.conditions, full.conditions);
    }
}
