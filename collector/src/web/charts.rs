//! Inline SVG charts: the heartbeat bar, the availability strip per day, the latency chart
//! by phase, and condition timelines. Each mark has a `<title>`, which browsers show on
//! hover; every text is escaped.

use std::fmt::Write;

use super::layout::{esc, outcome_class};
use crate::timefmt;
use crate::views::Availability;

/// One check for [`heartbeat`].
pub struct Beat<'a> {
    pub at_ms: i64,
    pub ok: bool,
    pub cause: Option<&'a str>,
    pub total_ms: f64,
    pub canary: &'a str,
    /// Where a click goes, if anywhere.
    pub href: Option<String>,
}

const BEAT_W: usize = 6;
const BEAT_H: usize = 22;

/// One bar per check, oldest left, coloured by outcome and cause.
pub fn heartbeat(beats: &[Beat<'_>]) -> String {
    let width = (beats.len() * BEAT_W).max(BEAT_W);
    let mut svg = format!(
        "<svg class=\"heartbeat\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" \
         height=\"{BEAT_H}\" viewBox=\"0 0 {width} {BEAT_H}\" role=\"img\" \
         aria-label=\"recent checks\">"
    );
    // Written straight into the one string: the overview draws 30 of these per server, for
    // every server.
    for (i, b) in beats.iter().enumerate() {
        let what = match (b.ok, b.cause) {
            (true, _) => "ok",
            (false, Some(c)) => c,
            (false, None) => "failed",
        };
        if let Some(href) = &b.href {
            let _ = write!(svg, "<a href=\"{}\">", esc(href));
        }
        let _ = write!(
            svg,
            "<rect class=\"{}\" x=\"{}\" width=\"{}\" height=\"{BEAT_H}\"><title>{} {}: {}, \
             {:.0} ms</title></rect>",
            outcome_class(b.ok, b.cause),
            i * BEAT_W,
            BEAT_W - 1,
            timefmt::rfc3339(b.at_ms),
            esc(b.canary),
            esc(what),
            b.total_ms
        );
        if b.href.is_some() {
            svg.push_str("</a>");
        }
    }
    svg.push_str("</svg>");
    svg
}

/// [`heartbeat`] for the overview: consecutive checks with the same outcome and cause become
/// one bar as wide as they are together, with one title (`28 checks: ok, 10:05:00Z .. 10:20:00Z`).
/// It looks the same, and keeps 1,000 servers' overview small and fast (the bench measured 20
/// ms and 3 MiB for one rect per check).
pub fn heartbeat_runs(beats: &[Beat<'_>]) -> String {
    let width = (beats.len() * BEAT_W).max(BEAT_W);
    let mut svg = format!(
        "<svg class=\"heartbeat\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" \
         height=\"{BEAT_H}\" viewBox=\"0 0 {width} {BEAT_H}\" role=\"img\" \
         aria-label=\"recent checks\">"
    );
    let mut start = 0;
    while start < beats.len() {
        let first = &beats[start];
        let same = |b: &Beat<'_>| b.ok == first.ok && (b.ok || b.cause == first.cause);
        let n = beats[start..].iter().take_while(|b| same(b)).count();
        let last = &beats[start + n - 1];
        let what = match (first.ok, first.cause) {
            (true, _) => "ok",
            (false, Some(c)) => c,
            (false, None) => "failed",
        };
        let _ = write!(
            svg,
            "<rect class=\"{}\" x=\"{}\" width=\"{}\" height=\"{BEAT_H}\"><title>{n} check{}: {}, \
             {} .. {}</title></rect>",
            outcome_class(first.ok, first.cause),
            start * BEAT_W,
            n * BEAT_W - 1,
            if n == 1 { "" } else { "s" },
            esc(what),
            timefmt::rfc3339(first.at_ms),
            timefmt::rfc3339(last.at_ms),
        );
        start += n;
    }
    svg.push_str("</svg>");
    svg
}

/// The colour of a day by its availability: all ok, a little down, much down, no checks.
fn day_class(a: &Availability) -> &'static str {
    match a.ratio {
        None => "c-none",
        Some(r) if r >= 1.0 => "c-ok",
        Some(r) if r >= 0.99 => "c-slow",
        Some(r) if r >= 0.95 => "c-rst",
        Some(_) => "c-bad",
    }
}

/// One bar per UTC day, the last `n` days ending with `today_ms`; a day without checks is grey.
pub fn day_strip(days: &[(i64, Availability)], today_ms: i64, n: i64) -> String {
    const W: i64 = 8;
    const H: i64 = 34;
    let width = n * W;
    let mut svg = format!(
        "<svg class=\"days\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" \
         height=\"{H}\" viewBox=\"0 0 {width} {H}\" role=\"img\" aria-label=\"availability per day\">"
    );
    for i in 0..n {
        let day = today_ms - (n - 1 - i) * crate::read::DAY_MS;
        let a = days
            .iter()
            .find(|(d, _)| *d == day)
            .map_or(Availability::new(0, 0), |(_, a)| *a);
        let date = timefmt::rfc3339(day);
        let title = match a.total {
            0 => format!("{}: no checks", &date[..10]),
            _ => format!(
                "{}: {} ({} of {} checks ok)",
                &date[..10],
                a.percent(),
                a.ok,
                a.total
            ),
        };
        let _ = write!(
            svg,
            "<rect class=\"{}\" x=\"{}\" y=\"0\" width=\"{}\" height=\"{H}\" rx=\"1\"><title>{}</title></rect>",
            day_class(&a),
            i * W,
            W - 2,
            esc(&title)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// One check's phases for [`latency`], in ms.
pub struct Phases {
    pub at_ms: i64,
    pub resolve: f64,
    pub connect: f64,
    pub tls: f64,
    pub first_byte: f64,
    pub total: f64,
    pub ok: bool,
}

/// A stacked bar per check: resolve, connect, TLS, first byte, and the rest of the total.
/// The scale is the slowest check's total, written at the top.
pub fn latency(checks: &[Phases]) -> String {
    const W: f64 = 8.0;
    const H: f64 = 120.0;
    const TOP: f64 = 14.0;
    let max = checks.iter().map(|c| c.total).fold(1.0_f64, f64::max);
    let width = (checks.len() as f64 * W).max(200.0);
    let mut svg = format!(
        "<svg class=\"latency\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" \
         height=\"{}\" viewBox=\"0 0 {width} {}\" role=\"img\" aria-label=\"latency by phase\">\
         <text x=\"0\" y=\"10\">{max:.0} ms</text>\
         <line x1=\"0\" y1=\"{TOP}\" x2=\"{width}\" y2=\"{TOP}\" stroke=\"#d0d7de\"/>",
        H + TOP,
        H + TOP
    );
    for (i, c) in checks.iter().enumerate() {
        let rest = (c.total - c.resolve - c.connect - c.tls - c.first_byte).max(0.0);
        let parts = [
            ("p-resolve", c.resolve),
            ("p-connect", c.connect),
            ("p-tls", c.tls),
            ("p-first", c.first_byte),
            ("p-rest", rest),
        ];
        let title = format!(
            "{}: total {:.1} ms (resolve {:.1}, connect {:.1}, TLS {:.1}, first byte {:.1}){}",
            timefmt::rfc3339(c.at_ms),
            c.total,
            c.resolve,
            c.connect,
            c.tls,
            c.first_byte,
            if c.ok { "" } else { ", failed" }
        );
        let _ = write!(svg, "<g><title>{}</title>", esc(&title));
        let mut y = TOP + H;
        for (class, ms) in parts {
            let h = ms / max * H;
            if h <= 0.0 {
                continue;
            }
            y -= h;
            let _ = write!(
                svg,
                "<rect class=\"{class}\" x=\"{:.1}\" y=\"{y:.2}\" width=\"{:.1}\" height=\"{h:.2}\"/>",
                i as f64 * W,
                W - 2.0
            );
        }
        svg.push_str("</g>");
    }
    svg.push_str("</svg>");
    svg
}

/// The legend of [`latency`].
pub const LATENCY_LEGEND: &str = "<p class=\"legend\"><span><i class=\"p-resolve\"></i>resolve</span>\
     <span><i class=\"p-connect\"></i>connect</span><span><i class=\"p-tls\"></i>TLS</span>\
     <span><i class=\"p-first\"></i>first byte</span><span><i class=\"p-rest\"></i>rest</span></p>";

/// One span of a condition for [`timeline`].
pub struct Span<'a> {
    /// The row it belongs to (a resolver, a host cause).
    pub row: &'a str,
    pub cause: &'a str,
    pub start_ms: i64,
    /// `None` while open.
    pub end_ms: Option<i64>,
    pub text: &'a str,
}

/// A row per distinct `row`, each span a bar between `since_ms` and `now_ms`.
pub fn timeline(spans: &[Span<'_>], since_ms: i64, now_ms: i64) -> String {
    const LABEL: f64 = 220.0;
    const PLOT: f64 = 700.0;
    const ROW: f64 = 20.0;
    let mut rows: Vec<&str> = Vec::new();
    for s in spans {
        if !rows.contains(&s.row) {
            rows.push(s.row);
        }
    }
    let height = ROW * rows.len() as f64 + 16.0;
    let width = LABEL + PLOT;
    let x = |ms: i64| {
        let f = (ms.clamp(since_ms, now_ms) - since_ms) as f64 / (now_ms - since_ms).max(1) as f64;
        LABEL + f * PLOT
    };
    let mut svg = format!(
        "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" \
         height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"conditions over time\">"
    );
    for (i, row) in rows.iter().enumerate() {
        let y = i as f64 * ROW;
        let _ = write!(
            svg,
            "<text x=\"0\" y=\"{:.1}\">{}</text><line x1=\"{LABEL}\" y1=\"{:.1}\" x2=\"{width}\" y2=\"{:.1}\" stroke=\"#eaeef2\"/>",
            y + 14.0,
            esc(row),
            y + ROW - 1.0,
            y + ROW - 1.0
        );
    }
    for s in spans {
        let i = rows.iter().position(|r| *r == s.row).unwrap_or(0);
        let (x0, x1) = (x(s.start_ms), x(s.end_ms.unwrap_or(now_ms)));
        let until = s.end_ms.map_or("now (open)".to_owned(), timefmt::rfc3339);
        let title = format!(
            "{}: {} .. {until}: {}",
            s.cause,
            timefmt::rfc3339(s.start_ms),
            s.text
        );
        let _ = write!(
            svg,
            "<rect class=\"{}\" x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"2\"><title>{}</title></rect>",
            outcome_class(false, Some(s.cause)),
            i as f64 * ROW + 3.0,
            (x1 - x0).max(3.0),
            ROW - 7.0,
            esc(&title)
        );
    }
    let _ = write!(
        svg,
        "<text x=\"{LABEL}\" y=\"{:.1}\">{}</text><text x=\"{width}\" y=\"{:.1}\" text-anchor=\"end\">now</text></svg>",
        height - 2.0,
        esc(&timefmt::rfc3339(since_ms)),
        height - 2.0
    );
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_has_a_bar_per_check_with_its_title_escaped() {
        let beats = [
            Beat {
                at_ms: 0,
                ok: true,
                cause: None,
                total_ms: 3.0,
                canary: "site",
                href: None,
            },
            Beat {
                at_ms: 1000,
                ok: false,
                cause: Some("oom_kill"),
                total_ms: 1.0,
                canary: "<img src=x>",
                href: Some("/servers/a/checks/7".into()),
            },
        ];
        let svg = heartbeat(&beats);
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("class=\"c-host\""), "{svg}");
        assert!(svg.contains("&lt;img src=x&gt;: oom_kill"), "{svg}");
        assert!(svg.contains("<a href=\"/servers/a/checks/7\">"), "{svg}");
        assert!(!svg.contains("<img"), "{svg}");
    }

    #[test]
    fn runs_of_the_same_outcome_are_one_bar() {
        let beat = |at_ms, ok, cause| Beat {
            at_ms,
            ok,
            cause,
            total_ms: 1.0,
            canary: "site",
            href: None,
        };
        let beats = [
            beat(0, true, None),
            beat(1000, true, None),
            beat(2000, false, Some("timeout")),
            beat(3000, false, Some("oom_kill")),
            beat(4000, false, Some("oom_kill")),
            beat(5000, true, None),
        ];
        let svg = heartbeat_runs(&beats);
        let widths: Vec<&str> = svg
            .split(" width=\"")
            .skip(2)
            .map(|s| &s[..s.find('"').unwrap()])
            .collect();
        assert_eq!(widths, ["11", "5", "11", "5"], "{svg}");
        assert!(
            svg.contains(
                "<title>2 checks: oom_kill, 1970-01-01T00:00:03Z .. 1970-01-01T00:00:04Z</title>"
            ),
            "{svg}"
        );
        assert!(svg.contains("width=\"36\""), "as wide as six checks: {svg}");
    }

    #[test]
    fn days_without_checks_are_grey_and_bad_days_red() {
        let today = 10 * crate::read::DAY_MS;
        let days = [
            (today - crate::read::DAY_MS, Availability::new(90, 100)),
            (today, Availability::new(100, 100)),
        ];
        let svg = day_strip(&days, today, 3);
        let classes: Vec<&str> = svg
            .split("class=\"")
            .skip(2)
            .map(|s| &s[..s.find('"').unwrap()])
            .collect();
        assert_eq!(classes, ["c-none", "c-bad", "c-ok"]);
        assert!(svg.contains("90.00% (90 of 100 checks ok)"), "{svg}");
    }

    #[test]
    fn latency_stacks_the_phases_up_to_the_total() {
        let c = Phases {
            at_ms: 0,
            resolve: 10.0,
            connect: 20.0,
            tls: 0.0,
            first_byte: 30.0,
            total: 100.0,
            ok: true,
        };
        let svg = latency(&[c]);
        // resolve, connect, first byte, rest: TLS took nothing and gets no rect.
        assert_eq!(svg.matches("<rect").count(), 4, "{svg}");
        assert!(svg.contains(">100 ms</text>"), "{svg}");
        assert!(
            svg.contains("height=\"48.00\""),
            "the rest is 40% of 120: {svg}"
        );
    }

    #[test]
    fn a_timeline_has_a_row_per_subject() {
        let spans = [
            Span {
                row: "10.0.0.53",
                cause: "dns_upstream_block",
                start_ms: 1000,
                end_ms: Some(2000),
                text: "<b>refused</b>",
            },
            Span {
                row: "10.0.0.53",
                cause: "dns_upstream_block",
                start_ms: 3000,
                end_ms: None,
                text: "again",
            },
            Span {
                row: "host",
                cause: "oom_kill",
                start_ms: 1500,
                end_ms: None,
                text: "x",
            },
        ];
        let svg = timeline(&spans, 0, 4000);
        assert_eq!(svg.matches("<rect").count(), 3);
        assert_eq!(svg.matches("<line").count(), 2, "two rows");
        assert!(svg.contains("&lt;b&gt;refused"), "{svg}");
        assert!(svg.contains("now (open)"), "{svg}");
    }
}
