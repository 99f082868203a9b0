//! Host rules: what the probe's host readings say, as conditions of the host and as causes of
//! a failed check of a canary served on that host.
//!
//! - `oom_kill`: the kernel's OOM killer killed a process within the window. It is the cause
//!   of a failed check when the killed process served the canary (it owned, or shared the
//!   memory cgroup of an owner of, a serving listener on the canary's port), contributing
//!   otherwise.
//! - `kernel_memory_leak`: SUnreclaim is above a share of RAM and rising across the series.
//!   Never the cause by itself (it kills through the OOM killer or by starving the host), always
//!   contributing.
//! - `host_overload`: load per CPU or PSI at or above a threshold. The cause of a check that
//!   timed out, contributing to any other failure.
//! - `host_rebooted`: the boot id changed; contributing.

use crate::{
    Cause, CheckResult, Diagnosis, HostCondition, HostEvidence, Kib, ListenerEvidence,
    MemorySample, OomKill, Pressure,
};

/// How SUnreclaim moved over a series.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    pub first_kb: u64,
    pub last_kb: u64,
    /// Samples that had SUnreclaim.
    pub samples: usize,
    pub over_ms: i64,
    pub kb_per_hour: f64,
    /// The last value is strictly above the first and at least 80% of the steps between
    /// consecutive values are non-decreasing. Why: a slab leak creeps up step after step; a
    /// one-off bump that is released ends where it began, and noise goes down about as often
    /// as up. Size is judged separately (share of RAM).
    pub rising: bool,
}

/// SUnreclaim from the first to the last sample that has it; `None` with fewer than two such
/// samples or no time between them.
pub fn s_unreclaim_growth(series: &[MemorySample]) -> Option<Growth> {
    let points: Vec<(i64, u64)> = series
        .iter()
        .filter_map(|s| Some((s.at_ms, s.s_unreclaim_kb?)))
        .collect();
    let (&(t0, first_kb), &(t1, last_kb)) = (points.first()?, points.last()?);
    let over_ms = t1 - t0;
    if over_ms <= 0 {
        return None;
    }
    let steps = points.len() - 1;
    let up = points.windows(2).filter(|w| w[1].1 >= w[0].1).count();
    Some(Growth {
        first_kb,
        last_kb,
        samples: points.len(),
        over_ms,
        kb_per_hour: (last_kb as f64 - first_kb as f64) * 3_600_000.0 / over_ms as f64,
        rising: last_kb > first_kb && up * 5 >= steps * 4,
    })
}

/// Everything wrong with the host at `now_ms`, in a fixed order: OOM kills, leak, overload,
/// reboot. `host.conditions` is not read: this is what fills it.
pub fn host_conditions(host: &HostEvidence, now_ms: i64) -> Vec<HostCondition> {
    let window_ms = i64::from(host.thresholds.window_s) * 1000;
    let kills: Vec<&OomKill> = host
        .oom_kills
        .iter()
        .filter(|k| k.at_ms >= now_ms - window_ms)
        .collect();
    [
        oom_condition(&kills, now_ms, host.thresholds.window_s),
        leak_condition(host),
        host.pressure
            .as_ref()
            .and_then(|p| overload_condition(p, host)),
        host.reboot.as_ref().map(|r| HostCondition {
            cause: Cause::HostRebooted,
            explanation: format!(
                "the host rebooted: boot id {} is new (previous {}), up {}",
                short_id(&r.boot_id),
                short_id(&r.previous_boot_id),
                span(i64::try_from(r.uptime_s).unwrap_or(i64::MAX) * 1000)
            ),
            evidence: vec![
                format!("previous boot id {}", r.previous_boot_id),
                format!("boot id {}", r.boot_id),
                format!("uptime {} s", r.uptime_s),
            ],
        }),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn oom_condition(kills: &[&OomKill], now_ms: i64, window_s: u32) -> Option<HostCondition> {
    let latest = kills.last()?;
    let when = ago(now_ms - latest.at_ms);
    let explanation = match kills.len() {
        1 => format!("the kernel's OOM killer killed {}{when}", victim(latest)),
        n => format!(
            "the kernel's OOM killer killed {n} processes in the last {}, the latest {}{when}",
            span(i64::from(window_s) * 1000),
            victim(latest)
        ),
    };
    let evidence = kills
        .iter()
        .map(|k| format!("{}: killed {}", ago_text(now_ms - k.at_ms), victim(k)))
        .collect();
    Some(HostCondition {
        cause: Cause::OomKill,
        explanation,
        evidence,
    })
}

/// `python3 (pid 4242, anon-rss 63.5 MiB, memory cgroup /x) when its memory cgroup hit its
/// limit`.
fn victim(kill: &OomKill) -> String {
    if kill.cgroup_oom {
        format!("{kill} when its memory cgroup hit its limit")
    } else {
        kill.to_string()
    }
}

fn leak_condition(host: &HostEvidence) -> Option<HostCondition> {
    let t = &host.thresholds;
    let last = host.memory.last()?;
    let (total, now) = (last.total_kb, last.s_unreclaim_kb?);
    let share = share_pct(now, total)?;
    let growth = s_unreclaim_growth(&host.memory)?;
    if share < t.leak_share_pct || !growth.rising || growth.samples < t.leak_min_samples as usize
    {
        return None;
    }
    let explanation = format!(
        "unreclaimable kernel memory (SUnreclaim) is {}, {share:.1}% of RAM (threshold {}%), \
         up from {} over {} (+{}/h); no process shows it: look at slabtop or /proc/slabinfo",
        Kib(now),
        t.leak_share_pct,
        Kib(growth.first_kb),
        span(growth.over_ms),
        Kib(growth.kb_per_hour.max(0.0) as u64),
    );
    let mut evidence = vec![format!(
        "SUnreclaim {} of {} samples over {}: {} -> {}",
        growth.samples,
        host.memory.len(),
        span(growth.over_ms),
        Kib(growth.first_kb),
        Kib(growth.last_kb)
    )];
    evidence.push(memory_line(last));
    Some(HostCondition {
        cause: Cause::KernelMemoryLeak,
        explanation,
        evidence,
    })
}

/// `MemTotal 64.0 GiB, MemAvailable 1.2 GiB, Slab 25.0 GiB, SUnreclaim 24.0 GiB`.
pub fn memory_line(m: &MemorySample) -> String {
    let mut parts = vec![format!("MemTotal {}", Kib(m.total_kb))];
    let named = [
        ("MemAvailable", m.available_kb),
        ("Slab", m.slab_kb),
        ("SUnreclaim", m.s_unreclaim_kb),
    ];
    for (name, kb) in named {
        if let Some(kb) = kb {
            parts.push(format!("{name} {}", Kib(kb)));
        }
    }
    parts.join(", ")
}

fn overload_condition(p: &Pressure, host: &HostEvidence) -> Option<HostCondition> {
    let t = &host.thresholds;
    let mut over = Vec::new();
    if let Some(load) = p.load1
        && p.cpus > 0
    {
        let per_cpu = load / f64::from(p.cpus);
        if per_cpu >= t.load_per_cpu {
            over.push(format!(
                "load {load:.1} on {} CPUs ({per_cpu:.1} per CPU, threshold {})",
                p.cpus, t.load_per_cpu
            ));
        }
    }
    let psi = [
        ("CPU pressure (some)", p.cpu_some, t.cpu_some_pct),
        ("memory pressure (full)", p.memory_full, t.memory_full_pct),
        ("I/O pressure (full)", p.io_full, t.io_full_pct),
    ];
    for (name, value, threshold) in psi {
        if let Some(v) = value
            && v >= threshold
        {
            over.push(format!("{name} {v:.1}% (threshold {threshold}%)"));
        }
    }
    if over.is_empty() {
        return None;
    }
    Some(HostCondition {
        cause: Cause::HostOverload,
        explanation: format!("the host is saturated: {}", over.join("; ")),
        evidence: pressure_lines(p),
    })
}

/// The pressure readings, for evidence: load, then PSI.
pub fn pressure_lines(p: &Pressure) -> Vec<String> {
    let mut lines = Vec::new();
    if let (Some(l1), Some(l5), Some(l15)) = (p.load1, p.load5, p.load15) {
        let runnable = p.runnable.map_or(String::new(), |r| format!(", {r} runnable"));
        lines.push(format!(
            "load {l1:.2} {l5:.2} {l15:.2}{runnable}, {} CPUs",
            p.cpus
        ));
    }
    let psi: Vec<String> = [
        ("cpu some", p.cpu_some),
        ("memory some", p.memory_some),
        ("memory full", p.memory_full),
        ("io some", p.io_some),
        ("io full", p.io_full),
    ]
    .into_iter()
    .filter_map(|(name, v)| Some(format!("{name} {:.1}%", v?)))
    .collect();
    if !psi.is_empty() {
        lines.push(format!("PSI avg10: {}", psi.join(", ")));
    }
    lines
}

/// The host rules applied to a check's diagnosis `found` (see the module's rules).
pub(super) fn classify(check: &CheckResult, mut found: Diagnosis) -> Diagnosis {
    let Some(host) = &check.evidence.host else {
        return found;
    };
    let conditions = host_conditions(host, check.started_at_ms);
    let window_ms = i64::from(host.thresholds.window_s) * 1000;
    let end_ms = check.started_at_ms + check.timings.total_ms.ceil() as i64 + 1000;
    let kills = host
        .oom_kills
        .iter()
        .filter(|k| (check.started_at_ms - window_ms..=end_ms).contains(&k.at_ms));
    let serving = kills
        .clone()
        .rev()
        .find_map(|k| Some((k, served_by(k, check.evidence.listeners.as_ref()?)?)));
    let has = |cause| conditions.iter().any(|c| c.cause == cause);
    let primary = if let Some((kill, listener)) = serving {
        let text = format!(
            "the kernel's OOM killer killed {}, which served the canary ({listener}), {} \
             before the check; the check: {}",
            victim(kill),
            span((check.started_at_ms - kill.at_ms).max(0)),
            found.explanation
        );
        Some((Cause::OomKill, text))
    } else if found.cause == Cause::Timeout && has(Cause::HostOverload) {
        let overload = conditions.iter().find(|c| c.cause == Cause::HostOverload);
        let text = format!(
            "{}; the check: {}",
            overload.map_or("", |c| &c.explanation),
            found.explanation
        );
        Some((Cause::HostOverload, text))
    } else {
        None
    };
    if let Some((cause, text)) = primary {
        let contributing = std::mem::take(&mut found.contributing);
        found = super::diagnosis(cause, text);
        found.contributing = contributing;
    }
    let mut add = |cause: Cause| {
        if cause != found.cause && !found.contributing.contains(&cause) {
            found.contributing.push(cause);
        }
    };
    if kills.count() > 0 {
        add(Cause::OomKill);
    }
    for c in &conditions {
        if c.cause != Cause::OomKill {
            add(c.cause);
        }
    }
    found
}

/// The serving listener whose process the kill ended: `listener 10.0.0.2:80 of pid 4242`.
fn served_by(kill: &OomKill, listeners: &ListenerEvidence) -> Option<String> {
    listeners.serving_listeners().find_map(|l| {
        let owner = l.owners.iter().find(|o| {
            o.pid == kill.pid
                // The root cgroup holds everything that has no service of its own.
                || kill.memcg.as_ref().filter(|cg| *cg != "/").is_some_and(|cg| {
                    o.cgroup.as_ref() == Some(cg)
                        || o.unit.as_ref().is_some_and(|u| cg.ends_with(&format!("/{u}")))
                })
        })?;
        Some(if owner.pid == kill.pid {
            format!("it owned the listener on {}", l.address)
        } else {
            format!(
                "its memory cgroup holds pid {} which owns the listener on {}",
                owner.pid, l.address
            )
        })
    })
}

/// `s_unreclaim` as a percentage of `total`.
fn share_pct(part: u64, total: u64) -> Option<f64> {
    (total > 0).then(|| part as f64 * 100.0 / total as f64)
}

/// ` 34 s ago` (leading space) for a kill in the past, empty for one not before `now`.
fn ago(ms: i64) -> String {
    if ms > 0 {
        format!(" {}", ago_text(ms))
    } else {
        String::new()
    }
}

fn ago_text(ms: i64) -> String {
    format!("{} ago", span(ms.max(0)))
}

/// `42 s`, `5m 3s`, `2h 10m`.
fn span(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

/// The first 8 characters of a boot id: enough to tell two apart in a sentence.
fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}
