//! The probe's host in `probectl`: each host condition told like an incident, what the host
//! looked like around a failed check (`why`), and its latest readings (`probectl host`).

use std::fmt::Write;

use causeway_api::facts::{HostFacts, uptime_ms};
use causeway_schema::{HostEvidence, MemorySample, Pressure, memory_line, pressure_lines};

use super::{clean, labelled, parts_text, render_condition};
use crate::timefmt::{ago, compact_duration, rfc3339};
use crate::views::{HostConditionView, HostView};

/// Kernel log lines shown in a failed check's evidence: the newest, the ones next to the
/// failure. The probe sends up to 50; the rest is in the API's JSON.
const KERNEL_LINES_SHOWN: usize = 10;

/// `Host conditions (N):` and each condition; nothing when there is none.
pub(super) fn render_conditions(out: &mut String, conditions: &[HostConditionView], now_ms: i64) {
    if conditions.is_empty() {
        return;
    }
    let _ = writeln!(out, "Host conditions ({}):", conditions.len());
    for c in conditions {
        render_condition(out, c, None, now_ms, |e| {
            e.evidence.iter().map(|l| clean(l)).collect()
        });
    }
}

/// A failed check's host, after `host (boot id ..., up ...)`: a reboot, the OOM kills,
/// memory and its SUnreclaim over the series, pressure, what the probe found wrong, the
/// newest kernel lines and what it could not read (the facts are `causeway_api::facts`', as
/// on the page).
pub(super) fn host_lines(lines: &mut Vec<String>, h: &HostEvidence) {
    let facts = HostFacts::of(h);
    lines.push(format!("host ({}):", parts_text(&facts.boot)));
    lines.extend(facts.reboot.map(|r| format!("  {}", clean(&r))));
    for k in &facts.oom_kills {
        lines.push(format!(
            "  OOM kill at {} (out of {}): {}",
            k.at,
            k.out_of,
            clean(&k.kill)
        ));
    }
    if let Some(m) = &facts.memory {
        lines.push(format!("  {}: {}", m.title, m.line));
        lines.extend(m.growth.as_ref().map(|g| format!("    {g}")));
    }
    if let Some(p) = &facts.pressure {
        lines.push(format!("  {}:", p.title));
        lines.extend(p.lines.iter().map(|l| format!("    {l}")));
    }
    for c in &facts.conditions {
        lines.push(format!("  {}: {}", c.cause, clean(&c.explanation)));
        lines.extend(c.evidence.iter().map(|e| format!("    {}", clean(e))));
    }
    // The newest lines only, where the page shows them all.
    let all = &facts.kernel_lines;
    let shown = all.len().min(KERNEL_LINES_SHOWN);
    if shown > 0 {
        let of = if shown < all.len() {
            format!(" (the last {shown} of {})", all.len())
        } else {
            String::new()
        };
        lines.push(format!("  kernel log{of}:"));
        for l in &all[all.len() - shown..] {
            lines.push(format!("    {}", clean(&l.line)));
        }
    }
    for w in &facts.warnings {
        lines.push(format!("  warning: {}", clean(w)));
    }
}

/// `probectl host`: the latest readings, then the host conditions over the window.
/// `window_ms` is the window as the operator asked for it (`--since`), for the wording.
pub fn render_host(view: &HostView, window_ms: i64) -> String {
    let server = clean(&view.server);
    let mut out = String::new();
    match &view.latest {
        None => {
            let _ = writeln!(
                out,
                "{server}: no host readings yet (probes older than host evidence send none)"
            );
        }
        Some(o) => {
            let _ = writeln!(
                out,
                "{server}: host readings of {} ({})",
                rfc3339(o.started_at_ms),
                ago(o.started_at_ms, view.now_ms)
            );
            let boot = if o.boot_id.is_empty() {
                "not read".to_owned()
            } else {
                clean(&o.boot_id)
            };
            let found = if o.causes.is_empty() {
                "nothing wrong".to_owned()
            } else {
                o.causes
                    .iter()
                    .map(|c| clean(c))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            labelled(&mut out, "boot id:", &[boot]);
            labelled(
                &mut out,
                "uptime:",
                &[compact_duration(uptime_ms(o.uptime_s))],
            );
            labelled(&mut out, "memory:", &[memory_text(o.memory.as_ref())]);
            labelled(&mut out, "pressure:", &pressure_text(o.pressure.as_ref()));
            labelled(&mut out, "found:", &[found]);
            if !o.warnings.is_empty() {
                let warnings: Vec<String> = o.warnings.iter().map(|w| clean(w)).collect();
                labelled(&mut out, "warnings:", &warnings);
            }
        }
    }
    if view.conditions.is_empty() {
        let _ = writeln!(
            out,
            "No host conditions in the last {}.",
            compact_duration(window_ms)
        );
    }
    render_conditions(&mut out, &view.conditions, view.now_ms);
    out
}

fn memory_text(m: Option<&MemorySample>) -> String {
    m.map_or("not read".to_owned(), memory_line)
}

fn pressure_text(p: Option<&Pressure>) -> Vec<String> {
    let lines = p.map(pressure_lines).unwrap_or_default();
    if lines.is_empty() {
        vec!["not read".to_owned()]
    } else {
        lines
    }
}

#[cfg(test)]
mod tests {
    use causeway_schema::{Cause, HostCondition, HostThresholds, KernelLine, OomKill, Reboot};

    use super::*;
    use crate::views::HostObservationView;

    /// 2026-11-23T12:04:30Z.
    const NOW: i64 = 1_795_435_470_000;
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

    fn pressure() -> Pressure {
        Pressure {
            at_ms: NOW,
            cpus: 4,
            load1: Some(1.5),
            load5: Some(1.0),
            load15: Some(0.5),
            runnable: Some(2),
            cpu_some: Some(3.0),
            memory_full: Some(12.5),
            ..Pressure::default()
        }
    }

    fn evidence() -> HostEvidence {
        HostEvidence {
            boot_id: "b00t".into(),
            uptime_s: 90_061,
            reboot: None,
            memory: vec![sample(NOW - 60_000, 2 * GIB), sample(NOW, 3 * GIB)],
            pressure: Some(pressure()),
            oom_kills: vec![OomKill {
                at_ms: NOW - 1_500,
                pid: 812,
                command: "nginx".into(),
                memcg: Some("/system.slice/nginx.service".into()),
                anon_rss_kb: Some(GIB / 2),
                ..OomKill::default()
            }],
            kernel_lines: vec![],
            thresholds: HostThresholds::default(),
            conditions: vec![HostCondition {
                cause: Cause::OomKill,
                explanation: "the kernel's OOM killer killed nginx".into(),
                evidence: vec!["killed nginx 1.5s ago".into()],
            }],
            warnings: vec!["PSI unavailable: no /proc/pressure".into()],
        }
    }

    #[test]
    fn a_checks_host_is_exact() {
        let mut h = evidence();
        h.reboot = Some(Reboot {
            previous_boot_id: "0ld".into(),
            boot_id: "b00t".into(),
            uptime_s: 90_061,
        });
        let mut lines = Vec::new();
        host_lines(&mut lines, &h);
        let expected = "\
host (boot id b00t, up 1d1h):
  the host rebooted since the probe's previous cycle: boot id 0ld is now b00t, up 1d1h
  OOM kill at 12:04:28.500 (out of host memory): nginx (pid 812, anon-rss 512.0 MiB, memory cgroup /system.slice/nginx.service)
  memory at 12:04:30.000 UTC: MemTotal 16.0 GiB, MemAvailable 1.0 GiB, Slab 3.2 GiB, SUnreclaim 3.0 GiB
    SUnreclaim 2.0 GiB to 3.0 GiB over 1m (2 samples, +60.0 GiB per hour)
  pressure at 12:04:30.000 UTC:
    load 1.50 1.00 0.50, 2 runnable, 4 CPUs
    PSI avg10: cpu some 3.0%, memory full 12.5%
  oom_kill: the kernel's OOM killer killed nginx
    killed nginx 1.5s ago
  warning: PSI unavailable: no /proc/pressure";
        assert_eq!(lines.join("\n"), expected);
    }

    #[test]
    fn one_sample_has_no_growth_and_only_the_last_kernel_lines_show() {
        let mut h = evidence();
        h.memory.remove(0);
        h.boot_id.clear();
        h.oom_kills.clear();
        h.conditions.clear();
        h.warnings.clear();
        h.pressure = None;
        h.kernel_lines = (0..12)
            .map(|n| KernelLine {
                at_ms: NOW + n,
                level: 3,
                text: format!("line {n}"),
            })
            .collect();
        let mut lines = Vec::new();
        host_lines(&mut lines, &h);
        assert_eq!(lines.len(), 2 + 1 + KERNEL_LINES_SHOWN, "{lines:#?}");
        assert_eq!(lines[0], "host (up 1d1h):");
        assert!(
            lines[1].starts_with("  memory at 12:04:30.000 UTC: MemTotal"),
            "{lines:#?}"
        );
        assert_eq!(lines[2], "  kernel log (the last 10 of 12):");
        assert_eq!(lines[3], "    12:04:30.002 err     line 2");
        assert_eq!(lines[12], "    12:04:30.011 err     line 11");
        h.kernel_lines.truncate(2);
        let mut lines = Vec::new();
        host_lines(&mut lines, &h);
        assert_eq!(lines[2], "  kernel log:");
        assert_eq!(lines.len(), 5, "{lines:#?}");
    }

    #[test]
    fn control_characters_from_the_host_do_not_reach_the_terminal() {
        let esc = "\u{1b}[31m";
        let mut h = evidence();
        h.boot_id = format!("b{esc}");
        h.oom_kills[0].command = format!("k{esc}");
        h.oom_kills[0].memcg = Some(format!("m{esc}"));
        h.conditions[0].explanation = format!("e{esc}");
        h.warnings[0] = format!("w{esc}");
        h.kernel_lines = vec![KernelLine {
            at_ms: NOW,
            level: 0,
            text: format!("l{esc}\n"),
        }];
        let mut lines = Vec::new();
        host_lines(&mut lines, &h);
        let text = lines.join("\n");
        assert!(!text.contains('\u{1b}'), "{text}");
        for shown in [
            "b\\u{1b}",
            "k\\u{1b}",
            "m\\u{1b}",
            "e\\u{1b}",
            "w\\u{1b}",
            "l\\u{1b}[31m\\n",
        ] {
            assert!(text.contains(shown), "{shown} missing from\n{text}");
        }

        let mut view = host_view();
        view.server = format!("s{esc}").into();
        let latest = view.latest.as_mut().unwrap();
        latest.boot_id = format!("b{esc}");
        latest.causes = vec![format!("c{esc}")];
        let c = &mut view.conditions[0];
        c.cause = format!("x{esc}");
        c.last_explanation = format!("e{esc}");
        c.last_evidence.as_mut().unwrap().evidence = vec![format!("v{esc}")];
        let text = render_host(&view, 86_400_000);
        assert!(!text.contains('\u{1b}'), "{text}");
        for shown in [
            "s\\u{1b}", "b\\u{1b}", "c\\u{1b}", "x\\u{1b}", "e\\u{1b}", "v\\u{1b}",
        ] {
            assert!(text.contains(shown), "{shown} missing from\n{text}");
        }
    }

    fn condition() -> HostConditionView {
        let c = |explanation: &str, line: &str| HostCondition {
            cause: Cause::KernelMemoryLeak,
            explanation: explanation.into(),
            evidence: vec![line.into()],
        };
        HostConditionView {
            id: 1,
            cause: "kernel_memory_leak".into(),
            summary: Cause::KernelMemoryLeak.summary().into(),
            started_at_ms: NOW - 90_000,
            last_seen_at_ms: NOW - 30_000,
            ended_at_ms: Some(NOW - 20_000),
            open: false,
            observations: 3,
            explanation: "SUnreclaim is 2.0 GiB".into(),
            last_explanation: "SUnreclaim is 3.0 GiB".into(),
            evidence: Some(c("SUnreclaim is 2.0 GiB", "first")),
            last_evidence: Some(c("SUnreclaim is 3.0 GiB", "latest")),
        }
    }

    fn host_view() -> HostView {
        HostView {
            server: "web-01".into(),
            since_ms: NOW - 86_400_000,
            now_ms: NOW,
            latest: Some(HostObservationView {
                report_id: "r".into(),
                started_at_ms: NOW - 30_000,
                boot_id: "b00t".into(),
                uptime_s: 600,
                memory: Some(sample(NOW - 30_000, 3 * GIB)),
                pressure: None,
                causes: vec!["kernel_memory_leak".into()],
                warnings: vec![],
            }),
            conditions: vec![condition()],
        }
    }

    #[test]
    fn host_text_is_exact() {
        let text = render_host(&host_view(), 3_600_000);
        let expected = "\
web-01: host readings of 2026-11-23T12:04:00Z (30s ago)
    boot id:  b00t
    uptime:   10m
    memory:   MemTotal 16.0 GiB, MemAvailable 1.0 GiB, Slab 3.2 GiB, SUnreclaim 3.0 GiB
    pressure: not read
    found:    kernel_memory_leak
Host conditions (1):
  [closed] kernel_memory_leak: unreclaimable kernel memory is large and growing
    when:     2026-11-23T12:03:00Z .. 2026-11-23T12:04:10Z (1m10s)
    seen:     3 cycles
    why:      SUnreclaim is 3.0 GiB
    evidence: latest
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn what_the_probe_could_not_read_is_listed() {
        let mut view = host_view();
        let latest = view.latest.as_mut().unwrap();
        latest.warnings = vec![
            "OOM kills are not seen: cannot open the kernel log /dev/kmsg".into(),
            "cannot read /proc/pressure/io: x\u{1b}[2J".into(),
        ];
        let text = render_host(&view, 3_600_000);
        let want = "    found:    kernel_memory_leak\n    \
                    warnings: OOM kills are not seen: cannot open the kernel log /dev/kmsg\n              \
                    cannot read /proc/pressure/io: x\\u{1b}[2J\n";
        assert!(text.contains(want), "\n{text}");
    }

    /// Readings dated after this clock come from a probe clock ahead of it: said, not "0s ago".
    #[test]
    fn readings_from_the_future_say_so() {
        let mut view = host_view();
        let latest = view.latest.as_mut().unwrap();
        latest.started_at_ms = view.now_ms + 120_000;
        let text = render_host(&view, 3_600_000);
        assert!(
            text.starts_with(
                "web-01: host readings of 2026-11-23T12:06:30Z (2m in the future (clock skew?))\n"
            ),
            "\n{text}"
        );
    }

    #[test]
    fn host_without_readings_or_conditions() {
        let mut view = host_view();
        view.latest = None;
        view.conditions.clear();
        let text = render_host(&view, 3_600_000);
        assert_eq!(
            text,
            "web-01: no host readings yet (probes older than host evidence send none)\n\
             No host conditions in the last 1h.\n"
        );
    }

    /// After the incidents and the resolver conditions, and without incidents too.
    #[test]
    fn why_ends_with_the_host_conditions() {
        let mut view: crate::views::WhyView = serde_json::from_str(include_str!(
            "../../../collector/tests/fixtures/why-web-01.json"
        ))
        .unwrap();
        view.incidents.clear();
        view.host_conditions = vec![condition()];
        let text = super::super::render_why(&view, 3_600_000);
        let expected = "\
No incidents in the last 1h.
Host conditions (1):
  [closed] kernel_memory_leak: unreclaimable kernel memory is large and growing
    when:     2026-11-23T12:03:00Z .. 2026-11-23T12:04:10Z (1m10s)
    seen:     3 cycles
    why:      SUnreclaim is 3.0 GiB
    evidence: latest
";
        assert!(text.ends_with(expected), "\n{text}");
    }

    #[test]
    fn a_condition_without_readable_evidence_still_shows() {
        let mut c = condition();
        c.last_evidence = None;
        let mut out = String::new();
        render_conditions(&mut out, std::slice::from_ref(&c), NOW);
        assert!(out.ends_with("    evidence: first\n"), "{out}");
        c.evidence = None;
        let mut out = String::new();
        render_conditions(&mut out, &[c], NOW);
        assert!(!out.contains("evidence:"), "{out}");
        assert!(
            out.ends_with("    why:      SUnreclaim is 3.0 GiB\n"),
            "{out}"
        );
    }
}
