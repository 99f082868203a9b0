//! Host rules: what the probe's host readings say, as conditions of the host and as causes of
//! a failed check of a canary served on that host.
//!
//! - `oom_kill`: the kernel's OOM killer killed a process within the window. It is the cause
//!   of a failed check when the killed process served the canary (it owned, or shared the
//!   memory cgroup of an owner of, a serving listener on the canary's port) and the canary did
//!   not answer (refused, reset, closed, timed out, failed the TLS handshake); contributing
//!   otherwise: an answer, even a wrong one, came from a live server, and its own story stands.
//! - `kernel_memory_leak`: SUnreclaim is above a share of RAM and rising across the series.
//!   Never the cause by itself (it kills through the OOM killer or by starving the host), always
//!   contributing.
//! - `host_overload`: load per CPU or PSI at or above a threshold. The cause of a check that
//!   timed out, contributing to any other failure.
//! - `host_rebooted`: the boot id changed; contributing.

use crate::{
    Cause, CheckResult, Diagnosis, FailureKind, HostCondition, HostEvidence, Kib, ListenerEvidence,
    MemorySample, OomKill, Pressure,
};

/// The failures a dead serving process leaves: nothing answered. A check that got an answer
/// (a status, a page, bytes that are not HTTP) was answered by a live server.
const UNANSWERED: [FailureKind; 7] = [
    FailureKind::ConnectRefused,
    FailureKind::ConnectTimeout,
    FailureKind::ConnectError,
    FailureKind::Tls,
    FailureKind::Reset,
    FailureKind::ClosedWithoutResponse,
    FailureKind::ResponseTimeout,
];

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
                crate::compact_duration(i64::try_from(r.uptime_s).unwrap_or(i64::MAX) * 1000)
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
        1 => format!("the kernel's OOM killer killed {}", victim(latest, &when)),
        n => format!(
            "the kernel's OOM killer killed {n} processes in the last {}, the latest {}",
            crate::compact_duration(i64::from(window_s) * 1000),
            victim(latest, &when)
        ),
    };
    let evidence = kills
        .iter()
        .map(|k| format!("{}: killed {}", ago_text(now_ms - k.at_ms), victim(k, "")))
        .collect();
    Some(HostCondition {
        cause: Cause::OomKill,
        explanation,
        evidence,
    })
}

/// `python3 (pid 4242, anon-rss 63.5 MiB, memory cgroup /x){when}, when its memory cgroup hit
/// its limit`: the time (` 34s ago`) comes before the reason, so the reason cannot read as
/// the time's.
fn victim(kill: &OomKill, when: &str) -> String {
    format!("{kill}{when}{}", cgroup_limit(kill))
}

/// `, when its memory cgroup hit its limit` for a kill a cgroup limit caused (the host may
/// have had memory to spare), else nothing.
fn cgroup_limit(kill: &OomKill) -> &'static str {
    if kill.cgroup_oom {
        ", when its memory cgroup hit its limit"
    } else {
        ""
    }
}

fn leak_condition(host: &HostEvidence) -> Option<HostCondition> {
    let t = &host.thresholds;
    let last = host.memory.last()?;
    let (total, now) = (last.total_kb, last.s_unreclaim_kb?);
    let share = share_pct(now, total)?;
    let growth = s_unreclaim_growth(&host.memory)?;
    if share < t.leak_share_pct || !growth.rising || growth.samples < t.leak_min_samples as usize {
        return None;
    }
    let explanation = format!(
        "unreclaimable kernel memory (SUnreclaim) is {}, {share:.1}% of RAM (threshold {}%), \
         up from {} over {} (+{}/h); no process shows it: look at slabtop or /proc/slabinfo",
        Kib(now),
        t.leak_share_pct,
        Kib(growth.first_kb),
        crate::compact_duration(growth.over_ms),
        Kib(growth.kb_per_hour.max(0.0) as u64),
    );
    let mut evidence = vec![format!(
        "SUnreclaim in {} of {} samples over {}: {} -> {}",
        growth.samples,
        host.memory.len(),
        crate::compact_duration(growth.over_ms),
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
        let runnable = p
            .runnable
            .map_or(String::new(), |r| format!(", {r} runnable"));
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
    let unanswered = check
        .failure
        .as_ref()
        .is_some_and(|f| UNANSWERED.contains(&f.kind));
    let listeners = check.evidence.listeners.as_ref().filter(|_| unanswered);
    let serving = kills
        .clone()
        .rev()
        .find_map(|k| Some((k, served_by(k, listeners?)?)));
    let has = |cause| conditions.iter().any(|c| c.cause == cause);
    let primary = if let Some((kill, listener)) = serving {
        let when = match check.started_at_ms - kill.at_ms {
            ..=0 => "during the check".to_owned(),
            1..1000 => "just before the check".to_owned(),
            ms => format!("{} before the check", crate::compact_duration(ms)),
        };
        // A host-wide OOM on a host whose kernel leaks: restarting the service is not the fix,
        // and an operator reading only this line must not stop there.
        let leak = match conditions
            .iter()
            .find(|c| c.cause == Cause::KernelMemoryLeak)
        {
            Some(_) if !kill.cgroup_oom => {
                "; the memory ran out because the kernel's own unreclaimable memory keeps \
                 growing (kernel_memory_leak): restarting the service will not give it back"
            }
            _ => "",
        };
        let text = format!(
            "the kernel's OOM killer killed {kill}, which served the canary ({listener}), \
             {when}{}{leak}; the check: {}",
            cgroup_limit(kill),
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
    // A host-wide OOM starved everything, the canary's server included. A memory cgroup that
    // hit its own limit killed only inside it: when that was not the canary's server (the
    // primary cause above), it is context, shown with the host's evidence, not a cause.
    if kills.clone().any(|k| !k.cgroup_oom) {
        add(Cause::OomKill);
    }
    for c in &conditions {
        if c.cause != Cause::OomKill {
            add(c.cause);
        }
    }
    found
}

/// How the killed process served the canary: `it owned the listener on 0.0.0.0:80`, else `it
/// shared its memory cgroup with nginx pid 100, owner of the listener on 0.0.0.0:80` or `it
/// ran in nginx.service, like nginx pid 100, owner of ...`. Its own pid among the owners comes
/// first, wherever a cgroup match stands: prefork workers all hold the socket.
fn served_by(kill: &OomKill, listeners: &ListenerEvidence) -> Option<String> {
    let owned = listeners
        .serving_listeners()
        .find(|l| l.owners.iter().any(|o| o.pid == kill.pid));
    if let Some(l) = owned {
        return Some(format!("it owned the listener on {}", l.address));
    }
    // The root cgroup holds everything that has no service of its own.
    let memcg = kill.memcg.as_deref().filter(|cg| *cg != "/")?;
    listeners.serving_listeners().find_map(|l| {
        l.owners.iter().find_map(|o| {
            let how = if o.cgroup.as_deref() == Some(memcg) {
                "it shared its memory cgroup with".to_owned()
            } else {
                let unit = o
                    .unit
                    .as_deref()
                    .filter(|u| memcg.ends_with(&format!("/{u}")))?;
                format!("it ran in {unit}, like")
            };
            Some(format!(
                "{how} {} pid {}, owner of the listener on {}",
                o.name, o.pid, l.address
            ))
        })
    })
}

/// `s_unreclaim` as a percentage of `total`.
fn share_pct(part: u64, total: u64) -> Option<f64> {
    (total > 0).then(|| part as f64 * 100.0 / total as f64)
}

/// ` 34s ago` (leading space) for a kill in the past, empty for one not before `now`.
fn ago(ms: i64) -> String {
    if ms > 0 {
        format!(" {}", ago_text(ms))
    } else {
        String::new()
    }
}

/// `34s ago`, or `just now` within the second.
fn ago_text(ms: i64) -> String {
    if ms < 1000 {
        return "just now".to_owned();
    }
    format!("{} ago", crate::compact_duration(ms))
}

/// The first 8 characters of a boot id: enough to tell two apart in a sentence.
fn short_id(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Evidence, Failure, HostThresholds, Listener, Reboot, SocketOwner, Timings};

    const GIB: u64 = 1024 * 1024;
    const NOW: i64 = 1_763_900_000_000;

    /// One sample every 30 s from `NOW`, SUnreclaim as given (`None`: not read).
    fn series(s_unreclaim: &[Option<u64>]) -> Vec<MemorySample> {
        s_unreclaim
            .iter()
            .enumerate()
            .map(|(i, &kb)| MemorySample {
                at_ms: NOW + i as i64 * 30_000,
                total_kb: 64 * GIB,
                available_kb: None,
                slab_kb: None,
                s_unreclaim_kb: kb,
            })
            .collect()
    }

    fn growth(s_unreclaim: &[u64]) -> Growth {
        let values: Vec<Option<u64>> = s_unreclaim.iter().copied().map(Some).collect();
        s_unreclaim_growth(&series(&values)).unwrap()
    }

    #[test]
    fn growth_rule() {
        // Creeping up with one small dip in 10 steps (90% non-decreasing): a leak.
        let creep = [
            1000, 1100, 1100, 1250, 1200, 1300, 1400, 1400, 1500, 1650, 1800,
        ];
        let g = growth(&creep);
        assert_eq!((g.first_kb, g.last_kb, g.over_ms), (1000, 1800, 300_000));
        assert_eq!((g.kb_per_hour, g.rising, g.samples), (9600.0, true, 11));
        let flat = growth(&[1000; 10]);
        assert_eq!((flat.kb_per_hour, flat.rising), (0.0, false));
        // A one-off bump, released: ends where it began.
        let bump = [1000, 1000, 1000, 9000, 9000, 1000, 1000, 1000];
        assert!(!growth(&bump).rising);
        // Ends higher, but down in 2 of 5 steps (60% non-decreasing): noise, not a creep.
        let noisy = [1000, 1500, 1100, 1600, 1200, 1300];
        assert!(!growth(&noisy).rising);
    }

    #[test]
    fn growth_needs_two_samples_with_s_unreclaim() {
        assert_eq!(s_unreclaim_growth(&[]), None);
        assert_eq!(
            s_unreclaim_growth(&series(&[Some(1000)])),
            None,
            "one sample"
        );
        assert_eq!(s_unreclaim_growth(&series(&[Some(1000), None])), None);
        let mut same_instant = series(&[Some(1000), Some(2000)]);
        same_instant[1].at_ms = same_instant[0].at_ms;
        assert_eq!(
            s_unreclaim_growth(&same_instant),
            None,
            "no time between them"
        );
        // Samples without SUnreclaim are skipped, at both ends and between.
        let gappy = series(&[None, Some(1000), None, Some(1100), Some(1200), None]);
        let g = s_unreclaim_growth(&gappy).unwrap();
        let want = Growth {
            first_kb: 1000,
            last_kb: 1200,
            samples: 3,
            over_ms: 90_000,
            kb_per_hour: 8000.0,
            rising: true,
        };
        assert_eq!(g, want);
    }

    fn host() -> HostEvidence {
        HostEvidence {
            boot_id: "a81c0d4f-52e6-4b19-8f0e-6c7d8e9fa0b1".into(),
            uptime_s: 86_400,
            reboot: None,
            memory: vec![],
            pressure: None,
            oom_kills: vec![],
            kernel_lines: vec![],
            thresholds: HostThresholds::default(),
            conditions: vec![],
            warnings: vec![],
        }
    }

    /// `samples` readings over the `over_ms` before `NOW`, SUnreclaim climbing evenly from
    /// `from_kb` to `to_kb` on a host of `total_kb`.
    fn climb(
        total_kb: u64,
        from_kb: u64,
        to_kb: u64,
        samples: u64,
        over_ms: i64,
    ) -> Vec<MemorySample> {
        (0..samples)
            .map(|i| {
                let s_unreclaim = from_kb + (to_kb - from_kb) * i / (samples - 1);
                MemorySample {
                    at_ms: NOW - over_ms + over_ms * i as i64 / (samples as i64 - 1),
                    total_kb,
                    available_kb: Some(total_kb - s_unreclaim - 8 * GIB),
                    slab_kb: Some(s_unreclaim + GIB),
                    s_unreclaim_kb: Some(s_unreclaim),
                }
            })
            .collect()
    }

    fn conditions(host: &HostEvidence) -> Vec<HostCondition> {
        host_conditions(host, NOW)
    }

    fn causes(host: &HostEvidence) -> Vec<Cause> {
        conditions(host).iter().map(|c| c.cause).collect()
    }

    /// The only condition found.
    fn only(host: &HostEvidence) -> HostCondition {
        let mut found = conditions(host);
        assert_eq!(found.len(), 1, "{found:#?}");
        found.remove(0)
    }

    #[test]
    fn a_large_climbing_s_unreclaim_is_a_leak() {
        let mut h = host();
        h.memory = climb(64 * GIB, 20 * GIB, 24 * GIB, 31, 30 * 60_000);
        let want = HostCondition {
            cause: Cause::KernelMemoryLeak,
            explanation: "unreclaimable kernel memory (SUnreclaim) is 24.0 GiB, 37.5% of RAM \
                          (threshold 10%), up from 20.0 GiB over 30m (+8.0 GiB/h); no process \
                          shows it: look at slabtop or /proc/slabinfo"
                .into(),
            evidence: vec![
                "SUnreclaim in 31 of 31 samples over 30m: 20.0 GiB -> 24.0 GiB".into(),
                "MemTotal 64.0 GiB, MemAvailable 32.0 GiB, Slab 25.0 GiB, SUnreclaim 24.0 GiB"
                    .into(),
            ],
        };
        assert_eq!(only(&h), want);
    }

    #[test]
    fn a_leak_needs_its_share_of_ram_and_enough_samples() {
        let mut h = host();
        // Climbing, but 4 GiB of 64 is 6.25%, under the 10% share.
        h.memory = climb(64 * GIB, 2 * GIB, 4 * GIB, 31, 30 * 60_000);
        assert_eq!(causes(&h), []);
        // Large and climbing, but 3 samples are not a series.
        h.memory = climb(64 * GIB, 20 * GIB, 24 * GIB, 3, 30 * 60_000);
        assert_eq!(causes(&h), []);
        h.memory = climb(64 * GIB, 20 * GIB, 24 * GIB, 4, 30 * 60_000);
        assert_eq!(
            causes(&h),
            [Cause::KernelMemoryLeak],
            "leak_min_samples is 4"
        );
        // Large but flat: whatever holds it, it is not growing.
        h.memory = climb(64 * GIB, 24 * GIB, 24 * GIB, 31, 30 * 60_000);
        assert_eq!(causes(&h), []);
        // Exactly at the share counts.
        h.thresholds.leak_share_pct = 37.5;
        h.memory = climb(64 * GIB, 20 * GIB, 24 * GIB, 31, 30 * 60_000);
        assert_eq!(causes(&h), [Cause::KernelMemoryLeak]);
        // The latest sample without SUnreclaim: nothing to judge the share by.
        h.memory.last_mut().unwrap().s_unreclaim_kb = None;
        assert_eq!(causes(&h), []);
    }

    fn pressure() -> Pressure {
        Pressure {
            at_ms: NOW,
            cpus: 32,
            load1: Some(3.2),
            load5: Some(2.9),
            load15: Some(2.5),
            runnable: Some(4),
            cpu_some: Some(1.5),
            memory_some: Some(0.2),
            memory_full: Some(0.1),
            io_some: Some(3.0),
            io_full: Some(1.0),
        }
    }

    #[test]
    fn a_calm_host_has_no_conditions() {
        let mut h = host();
        h.memory = climb(64 * GIB, GIB / 4, GIB / 4, 31, 30 * 60_000);
        h.pressure = Some(pressure());
        assert_eq!(conditions(&h), []);
    }

    #[test]
    fn overload_by_load_only() {
        let mut h = host();
        h.pressure = Some(Pressure {
            load1: Some(260.12),
            load5: Some(255.4),
            load15: Some(180.02),
            runnable: Some(270),
            ..pressure()
        });
        let want = HostCondition {
            cause: Cause::HostOverload,
            explanation: "the host is saturated: load 260.1 on 32 CPUs (8.1 per CPU, threshold 2)"
                .into(),
            evidence: vec![
                "load 260.12 255.40 180.02, 270 runnable, 32 CPUs".into(),
                "PSI avg10: cpu some 1.5%, memory some 0.2%, memory full 0.1%, io some 3.0%, \
                 io full 1.0%"
                    .into(),
            ],
        };
        assert_eq!(only(&h), want);
        // Exactly at the threshold counts; no CPU count, no load per CPU.
        h.pressure = Some(Pressure {
            load1: Some(64.0),
            ..pressure()
        });
        assert_eq!(causes(&h), [Cause::HostOverload]);
        h.pressure = Some(Pressure {
            load1: Some(260.0),
            cpus: 0,
            ..pressure()
        });
        assert_eq!(causes(&h), []);
    }

    #[test]
    fn overload_by_pressure_only() {
        let mut h = host();
        h.pressure = Some(Pressure {
            memory_some: Some(85.12),
            memory_full: Some(71.03),
            load5: None,
            ..pressure()
        });
        let want = HostCondition {
            cause: Cause::HostOverload,
            explanation: "the host is saturated: memory pressure (full) 71.0% (threshold 10%)"
                .into(),
            // Without all three load averages, no load line.
            evidence: vec![
                "PSI avg10: cpu some 1.5%, memory some 85.1%, memory full 71.0%, io some 3.0%, \
                 io full 1.0%"
                    .into(),
            ],
        };
        assert_eq!(only(&h), want);
        // `some` pressure alone is not overload for memory and I/O: only `full` stalls all.
        h.pressure = Some(Pressure {
            memory_some: Some(99.0),
            io_some: Some(99.0),
            ..pressure()
        });
        assert_eq!(causes(&h), []);
    }

    #[test]
    fn overload_lists_everything_exceeded() {
        let mut h = host();
        h.pressure = Some(Pressure {
            load1: Some(260.0),
            cpu_some: Some(93.0),
            memory_full: Some(10.0),
            io_full: Some(62.5),
            ..pressure()
        });
        assert_eq!(
            only(&h).explanation,
            "the host is saturated: load 260.0 on 32 CPUs (8.1 per CPU, threshold 2); CPU \
             pressure (some) 93.0% (threshold 80%); memory pressure (full) 10.0% (threshold \
             10%); I/O pressure (full) 62.5% (threshold 50%)"
        );
    }

    fn kill(at_ms: i64, pid: u32, command: &str, memcg: &str) -> OomKill {
        OomKill {
            at_ms,
            pid,
            command: command.into(),
            memcg: Some(memcg.into()),
            anon_rss_kb: Some(65_024),
            ..OomKill::default()
        }
    }

    #[test]
    fn one_oom_kill() {
        let mut h = host();
        h.oom_kills = vec![kill(NOW - 34_000, 4242, "python3", "/causeway-oom")];
        let want = HostCondition {
            cause: Cause::OomKill,
            explanation: "the kernel's OOM killer killed python3 (pid 4242, anon-rss 63.5 MiB, \
                          memory cgroup /causeway-oom) 34s ago"
                .into(),
            evidence: vec![
                "34s ago: killed python3 (pid 4242, anon-rss 63.5 MiB, memory cgroup \
                 /causeway-oom)"
                    .into(),
            ],
        };
        assert_eq!(only(&h), want);
    }

    #[test]
    fn several_oom_kills_are_counted_and_the_latest_named() {
        let mut h = host();
        h.oom_kills = vec![
            kill(NOW - 1_200_000, 7, "too-old", "/"),
            kill(NOW - 540_000, 2001, "java", "/system.slice/app.service"),
            kill(NOW - 125_000, 2002, "java", "/system.slice/app.service"),
            kill(NOW - 34_000, 2121, "nginx", "/system.slice/nginx.service"),
        ];
        let want = HostCondition {
            cause: Cause::OomKill,
            explanation: "the kernel's OOM killer killed 3 processes in the last 10m, the \
                          latest nginx (pid 2121, anon-rss 63.5 MiB, memory cgroup \
                          /system.slice/nginx.service) 34s ago"
                .into(),
            evidence: vec![
                "9m ago: killed java (pid 2001, anon-rss 63.5 MiB, memory cgroup \
                 /system.slice/app.service)"
                    .into(),
                "2m5s ago: killed java (pid 2002, anon-rss 63.5 MiB, memory cgroup \
                 /system.slice/app.service)"
                    .into(),
                "34s ago: killed nginx (pid 2121, anon-rss 63.5 MiB, memory cgroup \
                 /system.slice/nginx.service)"
                    .into(),
            ],
        };
        assert_eq!(only(&h), want);
    }

    #[test]
    fn a_kill_before_the_window_is_ignored() {
        let mut h = host();
        h.oom_kills = vec![kill(NOW - 600_001, 4242, "python3", "/causeway-oom")];
        assert_eq!(conditions(&h), []);
        h.oom_kills[0].at_ms = NOW - 600_000;
        assert_eq!(causes(&h), [Cause::OomKill], "the window's edge is in");
        h.thresholds.window_s = 300;
        assert_eq!(conditions(&h), [], "the window is the host's threshold");
    }

    #[test]
    fn a_cgroup_kill_says_the_cgroup_hit_its_limit() {
        let mut h = host();
        let mut k = kill(NOW - 34_000, 4242, "python3", "/causeway-oom");
        k.cgroup_oom = true;
        h.oom_kills = vec![k.clone()];
        let c = only(&h);
        assert_eq!(
            c.explanation,
            "the kernel's OOM killer killed python3 (pid 4242, anon-rss 63.5 MiB, memory cgroup \
             /causeway-oom) 34s ago, when its memory cgroup hit its limit"
        );
        let line = "34s ago: killed python3 (pid 4242, anon-rss 63.5 MiB, memory cgroup \
                    /causeway-oom), when its memory cgroup hit its limit";
        assert_eq!(c.evidence, [line]);
        // A kill logged at `now`, or after it (a check's kill), has no "ago".
        k.at_ms = NOW + 200;
        h.oom_kills = vec![k];
        assert_eq!(
            only(&h).explanation,
            "the kernel's OOM killer killed python3 (pid 4242, anon-rss 63.5 MiB, memory cgroup \
             /causeway-oom), when its memory cgroup hit its limit"
        );
    }

    fn reboot() -> Reboot {
        Reboot {
            previous_boot_id: "3f2a9c1e-7b4d-4e0a-9c55-1d2e3f405162".into(),
            boot_id: "a81c0d4f-52e6-4b19-8f0e-6c7d8e9fa0b1".into(),
            uptime_s: 42,
        }
    }

    #[test]
    fn a_reboot_names_both_boots_and_the_uptime() {
        let mut h = host();
        h.reboot = Some(reboot());
        let want = HostCondition {
            cause: Cause::HostRebooted,
            explanation: "the host rebooted: boot id a81c0d4f is new (previous 3f2a9c1e), up 42s"
                .into(),
            evidence: vec![
                "previous boot id 3f2a9c1e-7b4d-4e0a-9c55-1d2e3f405162".into(),
                "boot id a81c0d4f-52e6-4b19-8f0e-6c7d8e9fa0b1".into(),
                "uptime 42 s".into(),
            ],
        };
        assert_eq!(only(&h), want);
        h.reboot = Some(Reboot {
            uptime_s: 185,
            ..reboot()
        });
        assert!(only(&h).explanation.ends_with(", up 3m5s"));
    }

    #[test]
    fn conditions_come_in_a_fixed_order() {
        let mut h = host();
        h.reboot = Some(reboot());
        h.pressure = Some(Pressure {
            load1: Some(260.0),
            ..pressure()
        });
        h.memory = climb(64 * GIB, 20 * GIB, 24 * GIB, 31, 30 * 60_000);
        h.oom_kills = vec![kill(
            NOW - 34_000,
            2121,
            "nginx",
            "/system.slice/nginx.service",
        )];
        let want = [
            Cause::OomKill,
            Cause::KernelMemoryLeak,
            Cause::HostOverload,
            Cause::HostRebooted,
        ];
        assert_eq!(causes(&h), want);
        // What is already in `conditions` is not read.
        h.conditions = conditions(&h);
        h.conditions.reverse();
        assert_eq!(causes(&h), want);
    }

    fn owner(pid: u32, cgroup: Option<&str>, unit: Option<&str>) -> SocketOwner {
        SocketOwner {
            pid,
            name: "nginx".into(),
            cmdline: "nginx: worker process".into(),
            cgroup: cgroup.map(Into::into),
            unit: unit.map(Into::into),
            ppid: None,
        }
    }

    fn listening(owners: Vec<SocketOwner>) -> ListenerEvidence {
        let listener = |inode, serving, owners| Listener {
            inode,
            address: "0.0.0.0:80".parse().unwrap(),
            uid: 0,
            group_size: 1,
            owners,
            serving,
            first_seen_ms: NOW - 3_600_000,
            last_seen_ms: NOW,
            gone: false,
        };
        let rogue = vec![SocketOwner {
            name: "rogue".into(),
            ..owner(
                9,
                Some("/system.slice/rogue.service"),
                Some("rogue.service"),
            )
        }];
        ListenerEvidence {
            port: 80,
            serving: "unit nginx.service".into(),
            rule: crate::ServingRule::Unit("nginx.service".into()),
            poll_ms: 100,
            owners_visible: true,
            serving_pid: None,
            listeners: vec![listener(1, false, rogue), listener(2, true, owners)],
        }
    }

    #[test]
    fn a_kill_serves_the_canary_by_pid_cgroup_or_unit_never_the_root() {
        let nginx = "/system.slice/nginx.service";
        let by = |kill: &OomKill, owners| served_by(kill, &listening(owners));
        let k = kill(NOW, 101, "nginx", nginx);
        let owners = vec![owner(100, Some(nginx), None), owner(101, Some(nginx), None)];
        // The worker's own pid wins over its master's cgroup, listed first.
        let want = "it owned the listener on 0.0.0.0:80";
        assert_eq!(by(&k, owners).as_deref(), Some(want));
        let want = "it shared its memory cgroup with nginx pid 100, owner of the listener on \
                    0.0.0.0:80";
        assert_eq!(
            by(&k, vec![owner(100, Some(nginx), None)]).as_deref(),
            Some(want)
        );
        // A cgroup v1 `name=systemd` path differs from the memory cgroup; the unit matches.
        let v1 = owner(100, Some("/nginx"), Some("nginx.service"));
        let want = "it ran in nginx.service, like nginx pid 100, owner of the listener on \
                    0.0.0.0:80";
        assert_eq!(by(&k, vec![v1]).as_deref(), Some(want));
        let other_unit = owner(100, Some("/nginx"), Some("x-nginx.service"));
        assert_eq!(
            by(
                &kill(NOW, 5, "x", "/system.slice/nginx.service"),
                vec![other_unit]
            ),
            None
        );
        // Everything without a service of its own is in the root cgroup: no proof.
        let root = kill(NOW, 5150, "java", "/");
        assert_eq!(by(&root, vec![owner(100, Some("/"), None)]), None);
        // Only serving listeners count.
        let rogue = kill(NOW, 9, "rogue", "/system.slice/rogue.service");
        assert_eq!(by(&rogue, vec![owner(100, Some(nginx), None)]), None);
        let unknown = OomKill {
            memcg: None,
            ..kill(NOW, 5, "x", "/")
        };
        assert_eq!(by(&unknown, vec![owner(100, Some(nginx), None)]), None);
    }

    /// A failed check of `kind`, 1.5 s long, started at `NOW`, with nginx (pid 100) serving.
    fn failed(kind: FailureKind, host: HostEvidence) -> CheckResult {
        let nginx = owner(
            100,
            Some("/system.slice/nginx.service"),
            Some("nginx.service"),
        );
        CheckResult {
            canary: "site".into(),
            url: "http://10.88.0.2/".into(),
            address: Some("10.88.0.2".parse().unwrap()),
            started_at_ms: NOW,
            ok: false,
            status: None,
            timings: Timings {
                total_ms: 1500.0,
                ..Timings::default()
            },
            failure: Some(Failure {
                kind,
                message: "boom".into(),
            }),
            diagnosis: None,
            evidence: Evidence {
                listeners: Some(listening(vec![nginx])),
                host: Some(host),
                ..Evidence::default()
            },
        }
    }

    /// The host rules on `found` for a check of `kind` with a kill of the serving pid at
    /// `kill_at_ms`.
    fn with_kill_at(kind: FailureKind, kill_at_ms: i64) -> Diagnosis {
        let mut h = host();
        h.oom_kills = vec![kill(
            kill_at_ms,
            100,
            "nginx",
            "/system.slice/nginx.service",
        )];
        let check = failed(kind, h);
        classify(
            &check,
            super::super::diagnosis(Cause::Unknown, "generic".into()),
        )
    }

    #[test]
    fn a_serving_kill_is_timed_against_the_check() {
        let start = "the kernel's OOM killer killed nginx (pid 100, anon-rss 63.5 MiB, memory \
                     cgroup /system.slice/nginx.service), which served the canary (it owned the \
                     listener on 0.0.0.0:80),";
        let cases = [
            (NOW - 600_000, " 10m before the check"),
            (NOW - 61_000, " 1m1s before the check"),
            (NOW - 999, " just before the check"),
            (NOW, " during the check"),
            (NOW + 2_500, " during the check"),
        ];
        for (at_ms, when) in cases {
            let d = with_kill_at(FailureKind::ConnectRefused, at_ms);
            assert_eq!(d.cause, Cause::OomKill, "{at_ms}");
            assert_eq!(d.explanation, format!("{start}{when}; the check: generic"));
        }
        // Out of [start - window, end + 1 s]: not this check's.
        for at_ms in [NOW - 600_001, NOW + 2_501] {
            let d = with_kill_at(FailureKind::ConnectRefused, at_ms);
            assert_eq!(
                (d.cause, d.contributing),
                (Cause::Unknown, vec![]),
                "{at_ms}"
            );
        }
    }

    #[test]
    fn a_serving_kill_is_the_cause_only_when_nothing_answered() {
        let unanswered = [
            FailureKind::ConnectRefused,
            FailureKind::ConnectTimeout,
            FailureKind::ConnectError,
            FailureKind::Tls,
            FailureKind::Reset,
            FailureKind::ClosedWithoutResponse,
            FailureKind::ResponseTimeout,
        ];
        assert_eq!(unanswered, UNANSWERED);
        for kind in FailureKind::ALL {
            let d = with_kill_at(kind, NOW - 5_000);
            if unanswered.contains(&kind) {
                assert_eq!(
                    (d.cause, d.contributing),
                    (Cause::OomKill, vec![]),
                    "{kind:?}"
                );
            } else {
                // Something answered: the server was alive to answer.
                let want = (Cause::Unknown, vec![Cause::OomKill], "generic");
                assert_eq!(
                    (d.cause, d.contributing, d.explanation.as_str()),
                    want,
                    "{kind:?}"
                );
            }
        }
    }
}
