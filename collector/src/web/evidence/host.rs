//! The probe's host in a check's evidence: boot and reboot, OOM kills, memory with its
//! SUnreclaim sparkline, pressure, host conditions, kernel lines, and what could not be read
//! (the facts are `causeway_api::facts`'; the OOM table and the sparkline are the page's).

use std::fmt::Write;

use causeway_api::facts::{HostFacts, MemoryFacts, OomKillFacts};
use causeway_schema::{HostEvidence, Kib, MemorySample, OomKill};

use super::{capitalised, esc, sentence, sentence_of};
use crate::timefmt::clock_ms;

/// Boot and reboot, OOM kills, memory with its SUnreclaim series, pressure, the host
/// conditions, the kernel lines and what the probe could not read.
pub(super) fn host_section(html: &mut String, h: &HostEvidence) {
    let facts = HostFacts::of(h);
    html.push_str("<section class=\"ev-host\">\n<h4>Host</h4>\n");
    let _ = writeln!(html, "<p class=\"ev-note\">{}</p>", sentence(&facts.boot));
    if let Some(r) = &facts.reboot {
        let _ = writeln!(html, "<p class=\"ev-warning\">{}</p>", sentence_of(r));
    }
    if !h.oom_kills.is_empty() {
        oom_table(html, &h.oom_kills, &facts.oom_kills);
    }
    if let Some(m) = &facts.memory {
        memory(html, m, &h.memory);
    }
    if let Some(p) = &facts.pressure {
        let _ = writeln!(
            html,
            "<h5 class=\"ev-sub\">{}</h5>\n<ul class=\"ev-pressure\">",
            esc(capitalised(&p.title))
        );
        for l in &p.lines {
            let _ = writeln!(html, "<li>{}</li>", esc(l));
        }
        html.push_str("</ul>\n");
    }
    if !facts.conditions.is_empty() {
        html.push_str("<h5 class=\"ev-sub\">Conditions</h5>\n<ul class=\"ev-conditions\">\n");
        for c in &facts.conditions {
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
    if !facts.kernel_lines.is_empty() {
        let _ = writeln!(
            html,
            "<h5 class=\"ev-sub\">Kernel log ({} lines, UTC)</h5>",
            facts.kernel_lines.len()
        );
        html.push_str("<pre class=\"ev-kernel\">");
        for l in &facts.kernel_lines {
            let _ = writeln!(
                html,
                "<span class=\"ev-kline ev-kl{}\">{}</span>",
                l.level,
                esc(&l.line)
            );
        }
        html.push_str("</pre>\n");
    }
    if !facts.warnings.is_empty() {
        html.push_str("<ul class=\"ev-warnings\">\n");
        for w in &facts.warnings {
            let _ = writeln!(html, "<li class=\"ev-warning\">{}</li>", esc(w));
        }
        html.push_str("</ul>\n");
    }
    html.push_str("</section>\n");
}

/// A row per kill, with the sizes the kernel logged (the facts' line names only some).
fn oom_table(html: &mut String, kills: &[OomKill], facts: &[OomKillFacts]) {
    html.push_str(
        "<h5 class=\"ev-sub\">OOM kills</h5>\n<table class=\"ev-table\">\n<thead><tr>\
         <th>at (UTC)</th><th>pid</th><th>process</th><th>memory cgroup</th><th>out of</th>\
         <th>anon-rss</th><th>file-rss</th><th>shmem-rss</th><th>total-vm</th><th>uid</th>\
         </tr></thead>\n<tbody>\n",
    );
    let kib = |kb: Option<u64>| kb.map_or("-".to_owned(), |kb| esc(Kib(kb)));
    for (k, f) in kills.iter().zip(facts) {
        let _ = writeln!(
            html,
            "<tr class=\"ev-bad\"><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&f.at),
            k.pid,
            esc(&k.command),
            k.memcg
                .as_deref()
                .map_or("-".to_owned(), |m| format!("<code>{}</code>", esc(m))),
            f.out_of,
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
fn memory(html: &mut String, m: &MemoryFacts, series: &[MemorySample]) {
    let _ = writeln!(
        html,
        "<h5 class=\"ev-sub\">{}</h5>\n<p class=\"ev-memory\">{}</p>",
        esc(capitalised(&m.title)),
        esc(&m.line)
    );
    if let Some(growth) = &m.growth {
        let _ = writeln!(html, "<p>{} {}</p>", esc(growth), sparkline(series));
    }
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
