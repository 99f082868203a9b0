//! What a share link gives a server's customer besides its page: an SVG badge and a JSON
//! summary, for a control panel to embed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::layout::esc;
use crate::views::{Availability, ServerView};

/// `GET /s/<secret>/summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub server: String,
    /// `up`, `down`, `stale` or `unknown`.
    pub state: String,
    pub now_ms: i64,
    pub last_report_ms: Option<i64>,
    /// Keyed by window: `24h`, `7d`, `30d`.
    pub availability: BTreeMap<String, Availability>,
    pub open_incident: Option<SummaryIncident>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryIncident {
    pub cause: String,
    pub summary: String,
    pub since_ms: i64,
}

pub fn summary(server: &ServerView, now_ms: i64) -> Summary {
    Summary {
        server: server.name.to_string(),
        state: server.state.as_str().to_owned(),
        now_ms,
        last_report_ms: server.last_report_started_at_ms,
        availability: server
            .availability
            .iter()
            .filter(|(w, _)| ["24h", "7d", "30d"].contains(&w.as_str()))
            .map(|(w, a)| (w.clone(), *a))
            .collect(),
        open_incident: server.open_incident.as_ref().map(|i| SummaryIncident {
            cause: i.cause.clone(),
            summary: i.summary.clone(),
            since_ms: i.started_at_ms,
        }),
    }
}

/// A badge: `uptime 30d | 99.95%`, green at 99.9% and above, yellow from 99%, red below or
/// while the server is down (then `down` follows the figure).
pub fn badge(server: &ServerView) -> String {
    let a = server
        .availability
        .get("30d")
        .copied()
        .unwrap_or(Availability::new(0, 0));
    let down = server.open_incident.is_some();
    let mut value = a.percent();
    if value == "-" {
        value = "no data".to_owned();
    }
    if down {
        value.push_str(" down");
    }
    let color = match a.ratio {
        _ if down => "#cf222e",
        None => "#6e7781",
        Some(r) if r >= 0.999 => "#2da44e",
        Some(r) if r >= 0.99 => "#bf8700",
        Some(_) => "#cf222e",
    };
    let label = "uptime 30d";
    // About 7 px per character of an 11 px sans-serif font, plus padding.
    let (lw, vw) = (label.len() * 7 + 10, value.len() * 7 + 10);
    let w = lw + vw;
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"20\" role=\"img\" \
         aria-label=\"{label}: {value}\"><title>{name}: {label} {value}</title>\
         <rect width=\"{lw}\" height=\"20\" fill=\"#555\"/>\
         <rect x=\"{lw}\" width=\"{vw}\" height=\"20\" fill=\"{color}\"/>\
         <g fill=\"#fff\" font-family=\"Verdana,DejaVu Sans,sans-serif\" font-size=\"11\">\
         <text x=\"5\" y=\"14\">{label}</text><text x=\"{}\" y=\"14\">{value}</text></g></svg>",
        lw + 5,
        name = esc(&server.name),
        value = esc(&value),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::{IncidentView, ServerState};

    fn server(ok: u64, total: u64, down: bool) -> ServerView {
        ServerView {
            name: "web-01".into(),
            state: if down {
                ServerState::Down
            } else {
                ServerState::Up
            },
            last_seen_ms: Some(10),
            last_report_started_at_ms: Some(9),
            interval_s: Some(30),
            current_cause: None,
            availability: [("1h", 1), ("24h", 1), ("7d", 1), ("30d", 1)]
                .into_iter()
                .map(|(w, _)| (w.to_owned(), Availability::new(ok, total)))
                .collect(),
            open_incident: down.then(|| IncidentView {
                id: 1,
                cause: "oom_kill".into(),
                summary: "the kernel's OOM killer killed a process on the host".into(),
                started_at_ms: 5,
                last_failure_at_ms: 9,
                ended_at_ms: None,
                open: true,
                failed_checks: 2,
                bursts: 1,
                checks: 2,
                bursts_at_ms: vec![5],
                explanation: "x".into(),
                samples: vec![],
            }),
            spool_dropped_total: 0,
            spool_queued: 0,
        }
    }

    #[test]
    fn the_badge_colour_follows_the_figure_and_the_state() {
        let green = badge(&server(9995, 10_000, false));
        assert!(
            green.contains(">99.95%</text>") && green.contains("#2da44e"),
            "{green}"
        );
        let yellow = badge(&server(995, 1000, false));
        assert!(yellow.contains("#bf8700"), "{yellow}");
        let down = badge(&server(9995, 10_000, true));
        assert!(
            down.contains(">99.95% down</text>") && down.contains("#cf222e"),
            "{down}"
        );
        let none = badge(&server(0, 0, false));
        assert!(none.contains(">no data</text>"), "{none}");
    }

    #[test]
    fn the_summary_has_three_windows_and_the_open_incident() {
        let s = summary(&server(99, 100, true), 20);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["state"], "down");
        assert_eq!(json["availability"]["30d"]["ok"], 99);
        assert!(json["availability"].get("1h").is_none());
        assert_eq!(json["open_incident"]["cause"], "oom_kill");
        assert_eq!(json["open_incident"]["since_ms"], 5);
    }
}
