//! The probe's host in a check's evidence: boot and reboot, OOM kills, memory with its
//! SUnreclaim sparkline, pressure, host conditions, kernel lines, and what could not be read.

use std::fmt::Write;

use causeway_api::facts::{level_name, uptime_ms};
use causeway_schema::{
    HostEvidence, Kib, MemorySample, OomKill, memory_line, pressure_lines, s_unreclaim_growth,
};

use super::esc;
use crate::timefmt::{clock_ms, compact_duration};

/// Boot and reboot, OOM kills, memory with its SUnreclaim series, pressure, the host
/// conditions, the kernel lines and what the probe could not read.
pub(super) fn host_section(html: &mut String, h: &HostEvidence) {
    html.push_str("<section class=\"ev-host\">\n<h4>Host</h4>\n");
    let boot = if h.boot_id.is_empty() {
        String::new()
    } else {
        format!("Boot id <code>{}</code>, up ", esc(&h.boot_id))
    };
    let up = esc(compact_duration(uptime_ms(h.uptime_s)));
    let up = if boot.is_empty() {
        format!("Up {up}")
    } else {
        format!("{boot}{up}")
    };
    let _ = writeln!(html, "<p class=\"ev-note\">{up}.</p>");
    if let Some(r) = &h.reboot {
        let _ = writeln!(
            html,
            "<p class=\"ev-warning\">The host rebooted since the probe's previous cycle: boot id \
             {} is now {}.</p>",
            esc(&r.previous_boot_id),
            esc(&r.boot_id)
        );
    }
    if !h.oom_kills.is_empty() {
        oom_table(html, &h.oom_kills);
    }
    if let Some(m) = h.latest_memory() {
        memory(html, m, &h.memory);
    }
    if let Some(p) = &h.pressure {
        let lines = pressure_lines(p);
        if !lines.is_empty() {
            let _ = writeln!(
                html,
                "<h5 class=\"ev-sub\">Pressure at {} UTC</h5>\n<ul class=\"ev-pressure\">",
                esc(clock_ms(p.at_ms))
            );
            for l in lines {
                let _ = writeln!(html, "<li>{}</li>", esc(l));
            }
            html.push_str("</ul>\n");
        }
    }
    if !h.conditions.is_empty() {
        html.push_str("<h5 class=\"ev-sub\">Conditions</h5>\n<ul class=\"ev-conditions\">\n");
        for c in &h.conditions {
            let _ = write!(
                html,
                "<li><code class=\"ev-cause\">{}</code> <span class=\"ev-explanation\">{}</span>",
                esc(c.cause),
                esc(&c.explanation)
            );
            if !c.evidence.is_empty() {
                html.push_str("<ul>");
                for line in &c.evidence {
                    let _ = write!(html, "<li>{}</li>", esc(line));
                }
                html.push_str("</ul>");
            }
            html.push_str("</li>\n");
        }
        html.push_str("</ul>\n");
    }
    if !h.kernel_lines.is_empty() {
        let _ = writeln!(
            html,
            "<h5 class=\"ev-sub\">Kernel log ({} lines, UTC)</h5>",
            h.kernel_lines.len()
        );
        html.push_str("<pre class=\"ev-kernel\">");
        for l in &h.kernel_lines {
            let _ = writeln!(
                html,
                "<span class=\"ev-kline ev-kl{}\">{} {:<7} {}</span>",
                l.level,
                esc(clock_ms(l.at_ms)),
                esc(level_name(l.level)),
                esc(&l.text)
            );
        }
        html.push_str("</pre>\n");
    }
    if !h.warnings.is_empty() {
        html.push_str("<ul class=\"ev-warnings\">\n");
        for w in &h.warnings {
            let _ = writeln!(html, "<li class=\"ev-warning\">{}</li>", esc(w));
        }
        html.push_str("</ul>\n");
    }
    html.push_str("</section>\n");
}

fn oom_table(html: &mut String, kills: &[OomKill]) {
    html.push_str(
        "<h5 class=\"ev-sub\">OOM kills</h5>\n<table class=\"ev-table\">\n<thead><tr>\
         <th>at (UTC)</th><th>pid</th><th>process</th><th>memory cgroup</th><th>out of</th>\
         <th>anon-rss</th><th>file-rss</th><th>shmem-rss</th><th>total-vm</th><th>uid</th>\
         </tr></thead>\n<tbody>\n",
    );
    let kib = |kb: Option<u64>| kb.map_or("-".to_owned(), |kb| esc(Kib(kb)));
    for k in kills {
        let scope = if k.cgroup_oom {
            "its cgroup's limit"
        } else {
            "host memory"
        };
        let _ = writeln!(
            html,
            "<tr class=\"ev-bad\"><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td>\
             <td>{scope}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(clock_ms(k.at_ms)),
            k.pid,
            esc(&k.command),
            k.memcg
                .as_deref()
                .map_or("-".to_owned(), |m| format!("<code>{}</code>", esc(m))),
            kib(k.anon_rss_kb),
            kib(k.file_rss_kb),
            kib(k.shmem_rss_kb),
            kib(k.total_vm_kb),
            k.uid.map_or("-".to_owned(), |u| u.to_string()),
        );
    }
    html.push_str("</tbody>\n</table>\n");
}

/// The latest meminfo line, and SUnreclaim over the series with its sparkline.
fn memory(html: &mut String, latest: &MemorySample, series: &[MemorySample]) {
    let _ = writeln!(
        html,
        "<h5 class=\"ev-sub\">Memory at {} UTC</h5>\n<p class=\"ev-memory\">{}</p>",
        esc(clock_ms(latest.at_ms)),
        esc(memory_line(latest))
    );
    let Some(g) = s_unreclaim_growth(series) else {
        return;
    };
    let change = g.kb_per_hour.abs().round() as u64;
    let sign = if g.kb_per_hour < 0.0 { "-" } else { "+" };
    let _ = writeln!(
        html,
        "<p>{} {}</p>",
        esc(format!(
            "SUnreclaim {} to {} over {} ({} samples, {sign}{} per hour)",
            Kib(g.first_kb),
            Kib(g.last_kb),
            compact_duration(g.over_ms),
            g.samples,
            Kib(change)
        )),
        sparkline(series)
    );
}

/// Sparkline size, in CSS pixels (also its viewBox).
const SPARK_W: f64 = 160.0;
const SPARK_H: f64 = 32.0;
const SPARK_PAD: f64 = 3.0;

/// SUnreclaim over time as a small `<svg>`: time across, the series' own range up (a leak
/// of 1 GiB on 24 is a slope, not a flat line); empty with fewer than two samples.
fn sparkline(series: &[MemorySample]) -> String {
    let points: Vec<(i64, u64)> = series
        .iter()
        .filter_map(|s| Some((s.at_ms, s.s_unreclaim_kb?)))
        .collect();
    let (Some(&(t0, _)), Some(&(t1, last))) = (points.first(), points.last()) else {
        return String::new();
    };
    if points.len() < 2 || t1 <= t0 {
        return String::new();
    }
    let lo = points.iter().map(|p| p.1).min().unwrap_or(0);
    let hi = points.iter().map(|p| p.1).max().unwrap_or(0);
    // In f64: a probe's timestamps are not trusted to be close or in order.
    let x = |t: i64| {
        let share = ((t as f64 - t0 as f64) / (t1 as f64 - t0 as f64)).clamp(0.0, 1.0);
        SPARK_PAD + share * (SPARK_W - 2.0 * SPARK_PAD)
    };
    let y = |kb: u64| {
        let share = if hi > lo {
            (kb - lo) as f64 / (hi - lo) as f64
        } else {
            0.5
        };
        SPARK_H - SPARK_PAD - share * (SPARK_H - 2.0 * SPARK_PAD)
    };
    let coords: Vec<String> = points
        .iter()
        .map(|&(t, kb)| format!("{:.1},{:.1}", x(t), y(kb)))
        .collect();
    let title = format!(
        "SUnreclaim, {} samples from {} to {} UTC: low {}, high {}, last {}",
        points.len(),
        clock_ms(t0),
        clock_ms(t1),
        Kib(lo),
        Kib(hi),
        Kib(last)
    );
    format!(
        "<svg class=\"ev-spark\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{SPARK_W:.0}\" \
         height=\"{SPARK_H:.0}\" viewBox=\"0 0 {SPARK_W:.0} {SPARK_H:.0}\" role=\"img\" \
         aria-label=\"{}\"><title>{}</title>\
         <polyline class=\"ev-spark-line\" fill=\"none\" points=\"{}\"/>\
         <circle class=\"ev-spark-last\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\"/></svg>",
        esc(&title),
        esc(&title),
        coords.join(" "),
        x(t1),
        y(last)
    )
}
