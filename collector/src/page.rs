//! The web page: one server-rendered table, no JavaScript, no external assets. Every string
//! that came from a probe (names, causes, explanations) goes through [`escape_html`]: a
//! probe's token must not be enough to run script in an operator's browser.

use std::fmt::Write;

use crate::read::WINDOWS;
use crate::timefmt;
use crate::views::{Availability, ServerView};

/// Text safe inside HTML elements and double-quoted attributes.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn render(servers: &[ServerView], now_ms: i64) -> String {
    let mut html = String::from(concat!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta http-equiv=\"refresh\" content=\"30\">\n",
        "<title>Causeway</title>\n",
        "<style>body{font-family:sans-serif;margin:2em}",
        "table{border-collapse:collapse}td,th{padding:.3em .8em;text-align:left}",
        "tr:nth-child(even){background:#f4f4f4}",
        ".up{color:#070}.down{color:#b00}.stale,.unknown{color:#777}</style>\n",
        "</head>\n<body>\n<h1>Causeway</h1>\n",
    ));
    let _ = writeln!(
        html,
        "<p>{} servers, as of {}</p>",
        servers.len(),
        timefmt::rfc3339(now_ms)
    );
    if servers.is_empty() {
        html.push_str(
            "<p>No servers yet: create one with <code>causeway-collector token add \
             &lt;server&gt;</code>.</p>\n",
        );
    } else {
        html.push_str("<table>\n<tr><th>server</th><th>state</th>");
        for (window, _) in WINDOWS {
            let _ = write!(html, "<th>{window}</th>");
        }
        html.push_str("<th>last seen</th><th>current cause</th></tr>\n");
        for s in servers {
            let state = s.state.as_str();
            let _ = write!(
                html,
                "<tr><td>{}</td><td class=\"{state}\">{state}</td>",
                escape_html(&s.name)
            );
            for (window, _) in WINDOWS {
                let cell = s
                    .availability
                    .get(window)
                    .map_or("-".to_owned(), Availability::percent);
                let _ = write!(html, "<td>{cell}</td>");
            }
            let seen = s
                .last_seen_ms
                .map_or("never".to_owned(), |ms| timefmt::ago(ms, now_ms));
            let cause = match &s.open_incident {
                Some(i) => format!(
                    "{} <small>{}</small>",
                    escape_html(&i.cause),
                    escape_html(&i.explanation)
                ),
                None => "-".to_owned(),
            };
            let _ = writeln!(html, "<td>{seen}</td><td>{cause}</td></tr>");
        }
        html.push_str("</table>\n");
    }
    html.push_str("</body>\n</html>\n");
    html
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::views::{IncidentView, ServerState};

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape_html("<img src=x onerror=alert(1)>"),
            "&lt;img src=x onerror=alert(1)&gt;"
        );
        assert_eq!(
            escape_html(r#"a & "b" 'c'"#),
            "a &amp; &quot;b&quot; &#39;c&#39;"
        );
        assert_eq!(escape_html("web-01"), "web-01");
    }

    #[test]
    fn page_escapes_what_probes_sent() {
        let evil = "<img src=x onerror=alert(1)>";
        let server = ServerView {
            name: evil.to_owned(),
            state: ServerState::Down,
            last_seen_ms: Some(1_000),
            last_report_started_at_ms: Some(1_000),
            interval_s: Some(30),
            current_cause: Some("connection_refused".to_owned()),
            availability: BTreeMap::from([("1h".to_owned(), Availability::new(1, 2))]),
            open_incident: Some(IncidentView {
                id: 1,
                cause: "connection_refused".to_owned(),
                summary: "s".to_owned(),
                started_at_ms: 1_000,
                last_failure_at_ms: 1_000,
                ended_at_ms: None,
                open: true,
                failed_checks: 1,
                explanation: evil.to_owned(),
                samples: vec![],
            }),
            spool_dropped_total: 0,
            spool_queued: 0,
        };
        let html = render(&[server], 13_000);
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("&lt;img src=x onerror=alert(1)&gt;"),
            "{html}"
        );
        assert!(html.contains("50.00%"), "{html}");
        assert!(html.contains("12s ago"), "{html}");
        assert!(html.contains(r#"<meta http-equiv="refresh" content="30">"#));
        assert!(!html.contains("<script"));
    }
}
