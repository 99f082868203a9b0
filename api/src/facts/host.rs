//! The probe's host around a failed check: boot and reboot, OOM kills, memory and its
//! SUnreclaim over the series, pressure, the host conditions, the kernel lines and what the
//! probe could not read.

use causeway_schema::{
    HostEvidence, KernelLine, Kib, OomKill, Reboot, memory_line, pressure_lines, s_unreclaim_growth,
};

use super::{Part, level_name, uptime_ms};
use crate::timefmt::{clock_ms, compact_duration};

/// A host's evidence, fact by fact; the page draws the OOM kills as a table and SUnreclaim
/// as a sparkline besides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// `boot id a81c0d4f-..., up 3d4h`, or `up 3d4h` when the boot id was not read.
    pub boot: Vec<Part>,
    /// The reboot since the probe's previous cycle: [`reboot_line`].
    pub reboot: Option<String>,
    pub oom_kills: Vec<OomKillFacts>,
    /// The latest memory sample, and SUnreclaim over the series.
    pub memory: Option<MemoryFacts>,
    /// Load and PSI; `None` when nothing of them was read.
    pub pressure: Option<PressureFacts>,
    pub conditions: Vec<ConditionFacts>,
    pub kernel_lines: Vec<KernelLineFact>,
    /// What the probe could not read.
    pub warnings: Vec<String>,
}

/// One OOM kill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OomKillFacts {
    /// When the kernel logged it (UTC, to the millisecond).
    pub at: String,
    /// What ran out: `host memory` or `its cgroup's limit`.
    pub out_of: &'static str,
    /// `nginx (pid 812, anon-rss 1.9 GiB, memory cgroup /system.slice/nginx.service)`.
    pub kill: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryFacts {
    /// `memory at 12:12:32.000 UTC`: when the latest sample was read.
    pub title: String,
    /// `MemTotal 64.0 GiB, MemAvailable 2.0 GiB, Slab 24.9 GiB, SUnreclaim 24.0 GiB`.
    pub line: String,
    /// `SUnreclaim 23.0 GiB to 24.0 GiB over 9m30s (20 samples, +6.3 GiB per hour)`, with
    /// two samples or more.
    pub growth: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PressureFacts {
    /// `pressure at 12:12:32.000 UTC`.
    pub title: String,
    /// `load 6.30 9.80 7.10, 3 runnable, 32 CPUs`, `PSI avg10: ...`.
    pub lines: Vec<String>,
}

/// Something wrong with the host that the probe found, with the readings behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionFacts {
    /// The cause id (`kernel_memory_leak`).
    pub cause: &'static str,
    pub explanation: String,
    pub evidence: Vec<String>,
}

/// A kernel log line: `12:12:32.000 err     Out of memory: Killed process 2120 (nginx)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelLineFact {
    /// Its syslog level, 0 (emerg) to 7 (debug), so that errors can stand out.
    pub level: u8,
    pub line: String,
}

impl HostFacts {
    pub fn of(h: &HostEvidence) -> HostFacts {
        let up = format!("up {}", compact_duration(uptime_ms(h.uptime_s)));
        let boot = if h.boot_id.is_empty() {
            vec![Part::Words(up)]
        } else {
            vec![
                Part::words("boot id "),
                Part::code(&h.boot_id),
                Part::words(format!(", {up}")),
            ]
        };
        let memory = h.latest_memory().map(|m| MemoryFacts {
            title: format!("memory at {} UTC", clock_ms(m.at_ms)),
            line: memory_line(m),
            growth: s_unreclaim_growth(&h.memory).map(|g| {
                let change = g.kb_per_hour.abs().round() as u64;
                let sign = if g.kb_per_hour < 0.0 { "-" } else { "+" };
                format!(
                    "SUnreclaim {} to {} over {} ({} samples, {sign}{} per hour)",
                    Kib(g.first_kb),
                    Kib(g.last_kb),
                    compact_duration(g.over_ms),
                    g.samples,
                    Kib(change)
                )
            }),
        });
        let pressure = h.pressure.as_ref().and_then(|p| {
            let lines = pressure_lines(p);
            (!lines.is_empty()).then(|| PressureFacts {
                title: format!("pressure at {} UTC", clock_ms(p.at_ms)),
                lines,
            })
        });
        HostFacts {
            boot,
            reboot: h.reboot.as_ref().map(reboot_line),
            oom_kills: h.oom_kills.iter().map(OomKillFacts::of).collect(),
            memory,
            pressure,
            conditions: h
                .conditions
                .iter()
                .map(|c| ConditionFacts {
                    cause: c.cause.id(),
                    explanation: c.explanation.clone(),
                    evidence: c.evidence.clone(),
                })
                .collect(),
            kernel_lines: h.kernel_lines.iter().map(KernelLineFact::of).collect(),
            warnings: h.warnings.clone(),
        }
    }
}

impl OomKillFacts {
    pub fn of(k: &OomKill) -> OomKillFacts {
        OomKillFacts {
            at: clock_ms(k.at_ms),
            out_of: if k.cgroup_oom {
                "its cgroup's limit"
            } else {
                "host memory"
            },
            kill: k.to_string(),
        }
    }
}

impl KernelLineFact {
    pub fn of(l: &KernelLine) -> KernelLineFact {
        // The level padded to the longest name, so that the texts line up.
        KernelLineFact {
            level: l.level,
            line: format!(
                "{} {:<7} {}",
                clock_ms(l.at_ms),
                level_name(l.level),
                l.text
            ),
        }
    }
}

/// `the host rebooted since the probe's previous cycle: boot id A is now B, up 42s`: in the
/// host's evidence and in the backends' (whose backends may have moved with the reboot).
pub fn reboot_line(r: &Reboot) -> String {
    format!(
        "the host rebooted since the probe's previous cycle: boot id {} is now {}, up {}",
        r.previous_boot_id,
        r.boot_id,
        compact_duration(uptime_ms(r.uptime_s))
    )
}

#[cfg(test)]
mod tests {
    use causeway_schema::{HostCondition, HostThresholds, MemorySample, Pressure};

    use super::*;
    use crate::facts::plain;

    /// 2025-11-23T12:13:20Z.
    const AT: i64 = 1_763_900_000_000;
    const GIB: u64 = 1024 * 1024;

    fn sample(at_ms: i64, s_unreclaim_kb: u64) -> MemorySample {
        MemorySample {
            at_ms,
            total_kb: 16 * GIB,
            available_kb: Some(GIB),
            slab_kb: Some(s_unreclaim_kb + GIB / 4),
            s_unreclaim_kb: Some(s_unreclaim_kb),
        }
    }

    fn evidence() -> HostEvidence {
        HostEvidence {
            boot_id: "b00t".into(),
            uptime_s: 90_061,
            reboot: Some(Reboot {
                previous_boot_id: "0ld".into(),
                boot_id: "b00t".into(),
                uptime_s: 42,
            }),
            memory: vec![sample(AT - 3_600_000, 2 * GIB), sample(AT, 3 * GIB)],
            pressure: Some(Pressure {
                at_ms: AT,
                cpus: 4,
                load1: Some(1.5),
                load5: Some(1.0),
                load15: Some(0.5),
                runnable: Some(2),
                ..Pressure::default()
            }),
            oom_kills: vec![OomKill {
                at_ms: AT - 1_500,
                pid: 812,
                command: "nginx".into(),
                anon_rss_kb: Some(GIB / 2),
                ..OomKill::default()
            }],
            kernel_lines: vec![
                KernelLine {
                    at_ms: AT,
                    level: 3,
                    text: "Out of memory".into(),
                },
                KernelLine {
                    at_ms: AT,
                    level: 9,
                    text: "odd".into(),
                },
            ],
            thresholds: HostThresholds::default(),
            conditions: vec![HostCondition {
                cause: causeway_schema::Cause::OomKill,
                explanation: "the OOM killer killed nginx".into(),
                evidence: vec!["1.5s ago: killed nginx".into()],
            }],
            warnings: vec!["PSI unavailable".into()],
        }
    }

    #[test]
    fn a_hosts_facts() {
        let facts = HostFacts::of(&evidence());
        assert_eq!(plain(&facts.boot), "boot id b00t, up 1d1h");
        assert_eq!(facts.boot[1], Part::code("b00t"));
        assert_eq!(
            facts.reboot.as_deref(),
            Some(
                "the host rebooted since the probe's previous cycle: boot id 0ld is now b00t, up 42s"
            )
        );
        assert_eq!(
            facts.oom_kills,
            [OomKillFacts {
                at: "12:13:18.500".into(),
                out_of: "host memory",
                kill: "nginx (pid 812, anon-rss 512.0 MiB)".into(),
            }]
        );
        assert_eq!(
            facts.memory,
            Some(MemoryFacts {
                title: "memory at 12:13:20.000 UTC".into(),
                line: "MemTotal 16.0 GiB, MemAvailable 1.0 GiB, Slab 3.2 GiB, SUnreclaim 3.0 GiB"
                    .into(),
                growth: Some(
                    "SUnreclaim 2.0 GiB to 3.0 GiB over 1h (2 samples, +1.0 GiB per hour)".into()
                ),
            })
        );
        assert_eq!(
            facts.pressure,
            Some(PressureFacts {
                title: "pressure at 12:13:20.000 UTC".into(),
                lines: vec!["load 1.50 1.00 0.50, 2 runnable, 4 CPUs".into()],
            })
        );
        assert_eq!(
            facts.conditions,
            [ConditionFacts {
                cause: "oom_kill",
                explanation: "the OOM killer killed nginx".into(),
                evidence: vec!["1.5s ago: killed nginx".into()],
            }]
        );
        // The level's name padded to the longest, so that the texts line up.
        assert_eq!(
            facts.kernel_lines,
            [
                KernelLineFact {
                    level: 3,
                    line: "12:13:20.000 err     Out of memory".into(),
                },
                KernelLineFact {
                    level: 9,
                    line: "12:13:20.000 level 9 odd".into(),
                },
            ]
        );
        assert_eq!(facts.warnings, ["PSI unavailable"]);
    }

    #[test]
    fn what_was_not_read_is_left_out() {
        let mut h = evidence();
        h.boot_id.clear();
        h.reboot = None;
        h.oom_kills[0].cgroup_oom = true;
        // Shrinking: the sign says so.
        h.memory = vec![sample(AT - 3_600_000, 3 * GIB), sample(AT, 2 * GIB)];
        h.pressure = Some(Pressure::default());
        let facts = HostFacts::of(&h);
        assert_eq!(facts.boot, [Part::words("up 1d1h")]);
        assert_eq!(facts.reboot, None);
        assert_eq!(facts.oom_kills[0].out_of, "its cgroup's limit");
        assert!(
            facts
                .memory
                .as_ref()
                .and_then(|m| m.growth.as_deref())
                .is_some_and(|g| g.ends_with("(2 samples, -1.0 GiB per hour)")),
            "{facts:?}"
        );
        // Nothing of the pressure read: no heading without lines.
        assert_eq!(facts.pressure, None);
        h.memory.truncate(1);
        let facts = HostFacts::of(&h);
        assert_eq!(facts.memory.and_then(|m| m.growth), None);
        h.memory.clear();
        assert_eq!(HostFacts::of(&h).memory, None);
    }
}
