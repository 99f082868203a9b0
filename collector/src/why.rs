//! `probectl`'s text: pure functions from the API's answers to what the terminal shows, so
//! they are tested on recorded JSON.
//!
//! Strings from probes pass through [`clean`]: a control character in an explanation must
//! not reach the operator's terminal as an escape sequence.

use std::fmt::Write;

use causeway_schema::{ListenerEvidence, PacketTrace};

use crate::timefmt::{ago, clock_ms, compact_duration, rfc3339};
use crate::views::{Availability, IncidentView, ResultView, ServerList, WhyView};

/// Longest body excerpt printed, in characters.
const BODY_SHOWN: usize = 120;

/// Control characters escaped (`\u{1b}`), everything else as is.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `probectl status`: a header and one aligned line per server.
pub fn render_status(list: &ServerList) -> String {
    if list.servers.is_empty() {
        return "No servers yet: create one with `causeway-collector token add <server>`.\n"
            .to_owned();
    }
    let header = ["SERVER", "1H", "24H", "7D", "STATE", "LAST SEEN", "CAUSE"];
    let rows: Vec<[String; 7]> = list
        .servers
        .iter()
        .map(|s| {
            let window = |w: &str| {
                s.availability
                    .get(w)
                    .map_or("-".to_owned(), Availability::percent)
            };
            [
                clean(&s.name),
                window("1h"),
                window("24h"),
                window("7d"),
                s.state.as_str().to_owned(),
                s.last_seen_ms
                    .map_or("never".to_owned(), |ms| ago(ms, list.now_ms)),
                s.current_cause.as_deref().map_or("-".to_owned(), clean),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 7]| {
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // Numbers right-aligned, text left-aligned; the last column is not padded.
            match i {
                1..=3 => {
                    let _ = write!(text, "{cell:>w$}  ");
                }
                6 => text.push_str(cell),
                _ => {
                    let _ = write!(text, "{cell:<w$}  ");
                }
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

fn availability_phrase(a: &Availability) -> (String, String) {
    if a.total == 0 {
        ("-".to_owned(), "no checks".to_owned())
    } else {
        (a.percent(), format!("{} of {} checks ok", a.ok, a.total))
    }
}

/// `probectl why`: availability over the window, then each incident with its evidence.
/// `window_ms` is the window as the operator asked for it (`--since`), for the wording.
pub fn render_why(view: &WhyView, window_ms: i64) -> String {
    let window = compact_duration(window_ms);
    let (pct, checks) = availability_phrase(&view.availability);
    let mut out = format!(
        "{}: availability {pct} over the last {window} ({checks}), state {}\n",
        clean(&view.server.name),
        view.server.state.as_str()
    );
    if view.incidents.is_empty() {
        let _ = writeln!(out, "No incidents in the last {window}.");
        return out;
    }
    let _ = writeln!(out, "Incidents ({}):", view.incidents.len());
    for incident in &view.incidents {
        render_incident(&mut out, incident, view.now_ms);
    }
    out
}

fn render_incident(out: &mut String, i: &IncidentView, now_ms: i64) {
    let tag = if i.open { "[OPEN]" } else { "[closed]" };
    let _ = writeln!(out, "  {tag} {}: {}", clean(&i.cause), clean(&i.summary));
    let span = match i.ended_at_ms {
        None => format!(
            "{} .. now ({})",
            rfc3339(i.started_at_ms),
            compact_duration(now_ms - i.started_at_ms)
        ),
        Some(end) => format!(
            "{} .. {} ({})",
            rfc3339(i.started_at_ms),
            rfc3339(end),
            compact_duration(end - i.started_at_ms)
        ),
    };
    let _ = writeln!(out, "    when:     {span}");
    let plural = if i.failed_checks == 1 { "" } else { "s" };
    let _ = writeln!(out, "    failed:   {} check{plural}", i.failed_checks);
    let _ = writeln!(out, "    why:      {}", clean(&i.explanation));
    if let Some(sample) = i.samples.last() {
        render_evidence(out, sample);
    }
}

/// The key facts of one failed check, one per line after the first.
fn render_evidence(out: &mut String, r: &ResultView) {
    let at = r
        .address
        .as_deref()
        .map_or(String::new(), |a| format!(" at {}", clean(a)));
    let mut lines = vec![format!(
        "last failed check {}: {} {}{at}",
        rfc3339(r.started_at_ms),
        clean(&r.canary),
        clean(&r.url)
    )];
    if let Some(f) = &r.failure {
        lines.push(format!(
            "failure: {}: {}",
            clean(&f.kind),
            clean(&f.message)
        ));
    }
    let evidence = r.evidence.as_ref();
    let expected_status = evidence.and_then(|e| e.expected_status);
    match (r.status, expected_status) {
        (Some(s), Some(want)) => lines.push(format!("status: {s}, expected {want}")),
        (Some(s), None) => lines.push(format!("status: {s}")),
        (None, _) => {}
    }
    if let Some(text) = evidence.and_then(|e| e.expected_text.as_deref()) {
        lines.push(format!("expected text: {:?}", clean(text)));
    }
    if let Some(body) = evidence.and_then(|e| e.body_excerpt.as_deref()) {
        let shown: String = body.chars().take(BODY_SHOWN).collect();
        let more = if body.chars().count() > BODY_SHOWN {
            "..."
        } else {
            ""
        };
        // Debug quoting escapes newlines and control characters.
        lines.push(format!("body: {shown:?}{more}"));
    }
    if let Some(trace) = evidence.and_then(|e| e.trace.as_ref()) {
        trace_lines(&mut lines, trace);
    }
    if let Some(listeners) = evidence.and_then(|e| e.listeners.as_ref()) {
        listener_lines(&mut lines, listeners);
    }
    for (n, line) in lines.iter().enumerate() {
        let label = if n == 0 { "evidence:" } else { "" };
        let _ = writeln!(out, "    {label:<9} {line}");
    }
}

/// The packets of the failed connection, one per line, and where the server's TTL came from.
fn trace_lines(lines: &mut Vec<String>, t: &PacketTrace) {
    lines.push(format!(
        "packets on {} ({} -> {}), from {}:",
        clean(&t.interface),
        t.local,
        t.remote,
        clock_ms(t.started_at_ms)
    ));
    for p in &t.packets {
        lines.push(format!("  {p}"));
    }
    if t.truncated > 0 {
        lines.push(format!("  ... {} more packets", t.truncated));
    }
    if let Some(s) = t.server_ttl {
        let from = match s.source {
            causeway_schema::TtlSource::ThisConnection => "this connection's SYN-ACK",
            causeway_schema::TtlSource::EarlierConnection => "earlier connections' SYN-ACKs",
        };
        lines.push(format!(
            "server's packets arrive with TTL {} ({from})",
            s.ttl
        ));
    }
}

/// The listeners on the canary's port: which is serving, who owns it, when it was seen.
fn listener_lines(lines: &mut Vec<String>, ev: &ListenerEvidence) {
    let owners = if ev.owners_visible {
        ""
    } else {
        "; owners of other users' sockets not readable"
    };
    lines.push(format!(
        "listeners on port {} (serving: {}; looked at every {} ms{owners}):",
        ev.port,
        clean(&ev.serving),
        ev.poll_ms
    ));
    if ev.listeners.is_empty() {
        lines.push("  none".to_owned());
    }
    for l in &ev.listeners {
        let role = if l.serving { "serving" } else { "other" };
        let until = if l.gone {
            format!("{}, gone", clock_ms(l.last_seen_ms))
        } else {
            "still there".to_owned()
        };
        lines.push(format!(
            "  {role:<7} {} {} (inode {}, {} on this address), seen {} .. {until}",
            l.address,
            clean(&l.owners_text()),
            l.inode,
            l.group_size,
            clock_ms(l.first_seen_ms),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from the API (`GET /api/v1/servers/web-01/why?since_ms=...`).
    const WHY: &str = include_str!("../tests/fixtures/why-web-01.json");
    const SERVERS: &str = include_str!("../tests/fixtures/servers.json");

    #[test]
    fn why_text_is_exact() {
        let view: WhyView = serde_json::from_str(WHY).unwrap();
        let text = render_why(&view, 3_600_000);
        let expected = r#"web-01: availability 97.50% over the last 1h (39 of 40 checks ok), state down
Incidents (2):
  [OPEN] connection_refused: nothing listens on the canary port: the SYN was refused
    when:     2026-11-23T12:03:10Z .. now (1m20s)
    failed:   3 checks
    why:      10.77.0.2 refused the connection: nothing listens on the port (Connection refused (os error 111))
    evidence: last failed check 2026-11-23T12:04:10Z: site http://canary.test/ at 10.77.0.2
              failure: connect_refused: Connection refused (os error 111)
  [closed] http_error: the canary answered with an unexpected HTTP status
    when:     2026-11-23T11:50:00Z .. 2026-11-23T11:51:50Z (1m50s)
    failed:   1 check
    why:      10.77.0.2 answered HTTP 502, expected 200
    evidence: last failed check 2026-11-23T11:50:00Z: site http://canary.test/ at 10.77.0.2
              failure: unexpected_status: HTTP 502 Bad Gateway
              status: 502, expected 200
              body: "<html>502 Bad Gateway</html>\n"
"#;
        assert_eq!(text, expected, "\n{text}");
    }

    /// The incident Causeway exists for, with the evidence of the schema's scenario for it.
    #[test]
    fn reset_evidence_shows_packets_and_listeners() {
        let scenario: toml::Table = toml::from_str(include_str!(
            "../../schema/tests/scenarios/rst-non-serving-process.toml"
        ))
        .unwrap();
        let check: causeway_schema::CheckResult = scenario["check"].clone().try_into().unwrap();
        let mut view: WhyView = serde_json::from_str(WHY).unwrap();
        view.incidents.truncate(1);
        let sample = view.incidents[0].samples.last_mut().unwrap();
        sample.evidence = Some(check.evidence);
        let text = render_why(&view, 3_600_000);
        let evidence = text.split_once("    evidence:").unwrap().1;
        let expected = r#" last failed check 2026-11-23T12:04:10Z: site http://canary.test/ at 10.77.0.2
              failure: connect_refused: Connection refused (os error 111)
              packets on lo (10.88.0.2:41000 -> 10.88.0.2:80), from 12:13:20.001:
                +0.000ms out SYN seq 0 ack 0 ttl 64 len 0
                +0.020ms in  SYN,ACK seq 0 ack 1 ttl 64 len 0
                +0.030ms out ACK seq 1 ack 1 ttl 64 len 0
                +0.100ms out PSH,ACK seq 1 ack 1 ttl 64 len 78
                +0.110ms in  ACK seq 1 ack 79 ttl 64 len 0
                +1501.900ms in  RST,ACK seq 1 ack 79 ttl 64 len 0
              listeners on port 80 (serving: the long-lived owner of port 80; looked at every 100 ms):
                serving 10.88.0.2:80 pid 100 (nginx: worker process; cgroup /cw-nginx) (inode 1001, 2 on this address), seen 11:56:40.000 .. still there
                other   10.88.0.2:80 pid 4242 (python3 rogue.py; cgroup /user.slice/session-1.scope) (inode 2002, 2 on this address), seen 12:13:19.200 .. 12:13:21.450, gone
"#;
        assert_eq!(evidence, expected, "\n{text}");
    }

    #[test]
    fn why_without_incidents_or_checks() {
        let mut view: WhyView = serde_json::from_str(WHY).unwrap();
        view.incidents.clear();
        view.availability = Availability::new(0, 0);
        let text = render_why(&view, 1_800_000);
        assert_eq!(
            text,
            "web-01: availability - over the last 30m (no checks), state down\n\
             No incidents in the last 30m.\n"
        );
    }

    #[test]
    fn status_text_is_exact() {
        let list: ServerList = serde_json::from_str(SERVERS).unwrap();
        let text = render_status(&list);
        let expected = "\
SERVER       1H      24H       7D  STATE    LAST SEEN  CAUSE
db-01         -        -        -  unknown  never      -
web-01   97.50%   99.86%   99.98%  down     12s ago    connection_refused
web-02  100.00%  100.00%  100.00%  stale    3m ago     -
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn control_characters_do_not_reach_the_terminal() {
        assert_eq!(clean("a\u{1b}[31mb\n"), "a\\u{1b}[31mb\\n");
    }
}
