//! `probectl`'s text: pure functions from the API's answers to what the terminal shows, so
//! they are tested on recorded JSON.
//!
//! Strings from probes pass through [`clean`]: a control character in an explanation must
//! not reach the operator's terminal as an escape sequence. The resolvers' part is in [`dns`]
//! (conditions, a failed check's resolvers) and [`resolvers`] (`probectl resolvers`); the
//! probe's host in [`host`] (conditions, a failed check's host, `probectl host`); a failed
//! check's listeners in [`listeners`] and backends in [`backends`]. What a check's evidence
//! says in words comes from `causeway_api::facts`, as on the collector's page.

mod alerts;
mod backends;
mod dns;
mod host;
mod listeners;
mod resolvers;

use std::fmt::Write;

use causeway_api::facts::{FailedCheck, Part, TraceFacts, failure_facts};
use causeway_schema::PacketTrace;

pub use alerts::{render_alerts, render_silences};
pub use host::render_host;
pub use resolvers::render_resolvers;

use crate::table;
use crate::timefmt::{ago, compact_duration, rfc3339};
use crate::views::{Availability, Condition, IncidentView, ResultView, ServerList, WhyView};

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

/// What `status` and `resolvers` print before the first report.
const NO_SERVERS: &str =
    "No servers yet: create one with `causeway-collector token add <server>`.\n";

/// `probectl status`: a header and one aligned line per server.
pub fn render_status(list: &ServerList) -> String {
    if list.servers.is_empty() {
        return NO_SERVERS.to_owned();
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
    // The availability columns are numbers: right-aligned.
    table::render(header, &rows, &[1, 2, 3])
}

fn availability_phrase(a: &Availability) -> (String, String) {
    if a.total == 0 {
        ("-".to_owned(), "no checks".to_owned())
    } else {
        (a.percent(), format!("{} of {} checks ok", a.ok, a.total))
    }
}

/// `probectl why`: availability over the window, then each incident with its evidence, then
/// the resolver and the host conditions. `window_ms` is the window as the operator asked for it
/// (`--since`), for the wording.
pub fn render_why(view: &WhyView, window_ms: i64) -> String {
    let window = compact_duration(window_ms);
    let (pct, checks) = availability_phrase(&view.availability);
    let mut out = format!(
        "{}: availability {pct} over the last {window} ({checks}), state {}\n",
        clean(&view.server.name),
        view.server.state.as_str()
    );
    if let Some(outside) = &view.availability_outside_maintenance {
        let (pct, checks) = availability_phrase(outside);
        let _ = writeln!(out, "  outside maintenance: {pct} ({checks})");
    }
    if view.incidents.is_empty() {
        let _ = writeln!(out, "No incidents in the last {window}.");
    } else {
        let _ = writeln!(out, "Incidents ({}):", view.incidents.len());
    }
    for incident in &view.incidents {
        render_incident(&mut out, incident, view);
    }
    render_maintenance(&mut out, view);
    dns::render_conditions(&mut out, &view.resolver_conditions, view.now_ms);
    host::render_conditions(&mut out, &view.host_conditions, view.now_ms);
    render_certificates(&mut out, view);
    out
}

/// The certificates the https canaries served over the window; a new one says so.
fn render_certificates(out: &mut String, view: &WhyView) {
    if view.certificates.is_empty() {
        return;
    }
    let _ = writeln!(out, "Certificates ({}):", view.certificates.len());
    for c in &view.certificates {
        let line = parts_text(&causeway_api::facts::served_certificate(c, view.now_ms));
        let _ = writeln!(out, "  {line}");
    }
}

/// The first line of an incident or a condition: `[OPEN] cause: what it means`.
fn heading(out: &mut String, open: bool, cause: &str, summary: &str) {
    let tag = if open { "[OPEN]" } else { "[closed]" };
    let _ = writeln!(out, "  {tag} {}: {}", clean(cause), clean(summary));
}

/// `2026-11-23T12:03:10Z .. now (1m20s)`, or with the end when there is one.
fn span(started_at_ms: i64, ended_at_ms: Option<i64>, now_ms: i64) -> String {
    let (end, until) = match ended_at_ms {
        None => ("now".to_owned(), now_ms),
        Some(end) => (rfc3339(end), end),
    };
    format!(
        "{} .. {end} ({})",
        rfc3339(started_at_ms),
        compact_duration(until - started_at_ms)
    )
}

/// `    label:    line`, then the other lines under the first; nothing without lines.
fn labelled(out: &mut String, label: &str, lines: &[String]) {
    for (n, line) in lines.iter().enumerate() {
        let label = if n == 0 { label } else { "" };
        let _ = writeln!(out, "    {label:<9} {line}");
    }
}

/// A resolver or host condition told like an incident: the heading, `about` (what it is a
/// condition of, when it says more than the cause), when, how often, the latest explanation,
/// and `evidence` of the latest observation; the first stands in when the latest no longer
/// reads.
fn render_condition<E>(
    out: &mut String,
    c: &Condition<E>,
    about: Option<(&str, String)>,
    now_ms: i64,
    evidence: impl Fn(&E) -> Vec<String>,
) {
    heading(out, c.open, &c.cause, &c.summary);
    if let Some((label, line)) = about {
        labelled(out, label, &[line]);
    }
    let plural = if c.observations == 1 { "" } else { "s" };
    let lines = [
        ("when:", span(c.started_at_ms, c.ended_at_ms, now_ms)),
        ("seen:", format!("{} cycle{plural}", c.observations)),
        // The latest: a leak's size and a count of kills grow while the condition lasts.
        ("why:", clean(c.latest_explanation())),
    ];
    for (label, line) in lines {
        labelled(out, label, &[line]);
    }
    if let Some(e) = c.last_evidence.as_ref().or(c.evidence.as_ref()) {
        labelled(out, "evidence:", &evidence(e));
    }
}

fn render_incident(out: &mut String, i: &IncidentView, view: &WhyView) {
    heading(out, i.open, &i.cause, &i.summary);
    let plural = if i.failed_checks == 1 { "" } else { "s" };
    let when = span(i.started_at_ms, i.ended_at_ms, view.now_ms);
    labelled(out, "when:", &[when]);
    let mut failed = vec![format!("{} check{plural}", i.failed_checks)];
    failed.extend(i.intermittent().map(|line| format!("intermittent: {line}")));
    for m in view.maintenance_during(i) {
        failed.push(format!("during maintenance: {}", clean(&m.label())));
    }
    labelled(out, "failed:", &failed);
    labelled(out, "why:", &[clean(&i.explanation)]);
    if let Some(sample) = i.samples.last() {
        render_evidence(out, sample);
    }
}

/// The server's maintenance windows over the window, and their checks.
fn render_maintenance(out: &mut String, view: &WhyView) {
    if view.maintenance.is_empty() {
        return;
    }
    let _ = writeln!(out, "Maintenance ({}):", view.maintenance.len());
    for m in &view.maintenance {
        let by = m
            .created_by
            .as_deref()
            .map_or(String::new(), |b| format!(" by {}", clean(b)));
        let _ = writeln!(out, "  {}{by}", clean(&m.label()));
        let when = span(m.started_at_ms, Some(m.ended_at_ms), view.now_ms);
        let checks = m.checks_phrase();
        for (label, line) in [("when:", when), ("checks:", checks)] {
            labelled(out, label, &[line]);
        }
    }
}

/// The key facts of one failed check, one per line after the first: the check's own facts,
/// then each kind of evidence it carries, in the page's order.
fn render_evidence(out: &mut String, r: &ResultView) {
    let mut lines = Vec::new();
    for f in failure_facts(&FailedCheck::from(r)) {
        // Which check: under an incident, the last of its failed checks.
        let label = if f.label == "check" {
            "last failed check"
        } else {
            f.label
        };
        lines.push(format!("{label}: {}", parts_text(&f.text)));
    }
    let evidence = r.evidence.as_ref();
    if let Some(trace) = evidence.and_then(|e| e.trace.as_ref()) {
        trace_lines(&mut lines, trace);
    }
    if let Some(l) = evidence.and_then(|e| e.listeners.as_ref()) {
        listeners::listener_lines(&mut lines, l);
    }
    if let Some(e) = evidence {
        dns::resolver_lines(&mut lines, &e.dns);
    }
    if let Some(b) = evidence.and_then(|e| e.backends.as_ref()) {
        backends::backend_lines(&mut lines, b);
    }
    if let Some(h) = evidence.and_then(|e| e.host.as_ref()) {
        host::host_lines(&mut lines, h);
    }
    labelled(out, "evidence:", &lines);
}

/// A fact's parts as one line of text: what must keep its exact characters quoted (escapes
/// and all), the body excerpt cut to [`BODY_SHOWN`] characters, the rest cleaned.
fn parts_text(parts: &[Part]) -> String {
    parts
        .iter()
        .map(|p| match p {
            Part::Words(s) | Part::Code(s) => clean(s),
            // Debug quoting escapes newlines and control characters.
            Part::Quoted(s) => format!("{s:?}"),
            Part::Excerpt(s) => {
                let shown: String = s.chars().take(BODY_SHOWN).collect();
                let more = if s.chars().count() > BODY_SHOWN {
                    "..."
                } else {
                    ""
                };
                format!("{shown:?}{more}")
            }
        })
        .collect()
}

/// What the packets say, the packets one per line, then the server's TTL against the reset's.
fn trace_lines(lines: &mut Vec<String>, t: &PacketTrace) {
    let facts = TraceFacts::of(t);
    lines.push(format!("{}:", parts_text(&facts.summary)));
    for p in &t.packets {
        lines.push(format!("  {p}"));
    }
    lines.push(clean(&facts.ttl));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from the API (`GET /api/v1/servers/web-01/why?since_ms=...`).
    const WHY: &str = include_str!("../../collector/tests/fixtures/why-web-01.json");
    const SERVERS: &str = include_str!("../../collector/tests/fixtures/servers.json");

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
    evidence: last failed check: site http://canary.test/ at 10.77.0.2, started 2026-11-23T12:04:10Z
              failure: connect_refused: Connection refused (os error 111)
              timings: resolve 1.2 ms, connect 0.4 ms, total 1.9 ms
  [closed] http_error: the canary answered with an unexpected HTTP status
    when:     2026-11-23T11:50:00Z .. 2026-11-23T11:51:50Z (1m50s)
    failed:   1 check
    why:      10.77.0.2 answered HTTP 502, expected 200
    evidence: last failed check: site http://canary.test/ at 10.77.0.2, started 2026-11-23T11:50:00Z
              failure: unexpected_status: HTTP 502 Bad Gateway
              status: 502, expected 200
              timings: resolve 1.2 ms, connect 0.4 ms, total 1.9 ms
              body excerpt: "<html>502 Bad Gateway</html>\n"
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
        let expected = r#" last failed check: site http://canary.test/ at 10.77.0.2, started 2026-11-23T12:04:10Z
              failure: connect_refused: Connection refused (os error 111)
              timings: resolve 1.2 ms, connect 0.4 ms, total 1.9 ms
              6 packets on lo between 10.88.0.2:41000 (probe) and 10.88.0.2:80 (server), from 12:13:20.001 UTC:
                +0.000ms out SYN seq 0 ack 0 ttl 64 len 0
                +0.020ms in  SYN,ACK seq 0 ack 1 ttl 64 len 0
                +0.030ms out ACK seq 1 ack 1 ttl 64 len 0
                +0.100ms out PSH,ACK seq 1 ack 1 ttl 64 len 78
                +0.110ms in  ACK seq 1 ack 79 ttl 64 len 0
                +1501.900ms in  RST,ACK seq 1 ack 79 ttl 64 len 0
              the server's TTL is not known (no SYN-ACK from it, now or before); the reset came with TTL 64
              listeners on port 80 (serving: the long-lived owner of port 80):
                looked at every 100 ms: a listener that lived for less can be missed, and each time below is this precise
                serving 10.88.0.2:80 pid 100 (nginx: worker process; cgroup /cw-nginx); inode 1001, uid 0, 2 on this address (SO_REUSEPORT); seen 11:56:40.000 .. still there
                other   10.88.0.2:80 pid 4242 (python3 rogue.py; cgroup /user.slice/session-1.scope); inode 2002, uid 0, 2 on this address (SO_REUSEPORT); seen 12:13:19.200 .. 12:13:21.450, gone
"#;
        assert_eq!(evidence, expected, "\n{text}");
    }

    /// A shuffle's evidence, from the schema's scenario for it.
    #[test]
    fn backend_table_in_evidence() {
        let scenario: toml::Table = toml::from_str(include_str!(
            "../../schema/tests/scenarios/backend-swap.toml"
        ))
        .unwrap();
        let check: causeway_schema::CheckResult = scenario["check"].clone().try_into().unwrap();
        let mut backends = check.evidence.backends.unwrap();
        backends.reboot = Some(causeway_schema::Reboot {
            previous_boot_id: "old-boot".into(),
            boot_id: "new-boot".into(),
            uptime_s: 42,
        });
        let mut lines = Vec::new();
        backends::backend_lines(&mut lines, &backends);
        let text = lines.join("\n");
        let expected = "\
backends:
  the host rebooted since the probe's previous cycle: boot id old-boot is now new-boot, up 42s
  app (10.88.0.12:80): known as MAC 02:aa:bb:cc:dd:01; HTTP 200, 1432 bytes, body 9f3c2a71d04e8b65
    now: answers HTTP 200, 47 bytes, body c07e5d2b18a94f36, not as before; seen at 10.88.0.15 (by mac, answer)
  dev (10.88.0.15:80): known as MAC 02:aa:bb:cc:dd:02; HTTP 200, 47 bytes, body c07e5d2b18a94f36
    now: answers HTTP 200, 1432 bytes, body 9f3c2a71d04e8b65, not as before; seen at 10.88.0.12 (by mac, answer)";
        assert_eq!(text, expected, "\n{text}");
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

    /// Recorded from the API for the story in tests/common (`dns_story`); the test
    /// `the_fixtures_are_what_the_api_answers` keeps it so.
    const WHY_DNS: &str = include_str!("../../collector/tests/fixtures/why-dns.json");

    /// The conditions after the incidents; the latest evidence of each condition.
    const CONDITIONS: &str = "\
Resolver conditions (2):
  [OPEN] dns_upstream_block: a reachable resolver refuses or ignores our queries while others answer
    resolver: 10.0.0.54 (10.0.0.54:53) for canary.test (canary site)
    when:     2026-11-23T11:56:00Z .. now (8m30s)
    seen:     3 cycles
    why:      10.0.0.54 refuses our queries for canary.test (A refused, AAAA refused), yet it is reachable (ping reply in 0.3 ms, TCP port 53 reply in 0.5 ms); 10.0.0.53 answers 10.77.0.2
    evidence: A refused
              AAAA refused
              ping: reply in 0.3 ms
              tcp 53: reply in 0.5 ms
  [closed] dns_resolver_unreachable: a resolver cannot be reached at all
    resolver: 10.0.0.54 (10.0.0.54:53) for canary.test (canary site)
    when:     2026-11-23T11:55:00Z .. 2026-11-23T11:55:30Z (30s)
    seen:     1 cycle
    why:      10.0.0.54 cannot be reached: no DNS answer for canary.test (A timeout after 1000 ms, AAAA timeout after 1000 ms), ping no_reply after 1000 ms, TCP port 53 no_reply after 1000 ms; 10.0.0.53 answers 10.77.0.2
    evidence: A timeout after 1000 ms
              AAAA timeout after 1000 ms
              ping: no_reply after 1000 ms
              tcp 53: no_reply after 1000 ms
";

    #[test]
    fn resolvers_in_evidence_and_conditions_text_is_exact() {
        let view: WhyView = serde_json::from_str(WHY_DNS).unwrap();
        let text = render_why(&view, 3_600_000);
        let expected = r#"web-01: availability 83.33% over the last 1h (5 of 6 checks ok), state down
Incidents (1):
  [OPEN] connection_refused: nothing listens on the canary port: the SYN was refused
    when:     2026-11-23T11:57:00Z .. now (7m30s)
    failed:   1 check
    why:      10.77.0.2 refused the connection: nothing listens on the port (Connection refused (os error 111))
    evidence: last failed check: site http://canary.test/ at 10.77.0.2, started 2026-11-23T11:57:00Z
              failure: connect_refused: Connection refused (os error 111)
              timings: resolve 1.2 ms, connect 0.4 ms, total 3.1 ms
              resolvers:
                10.0.0.53 (10.0.0.53:53): A answer 10.77.0.2 ttl 30, AAAA no_data -> ok
                10.0.0.54 (10.0.0.54:53): A refused, AAAA refused -> dns_upstream_block
                  ping: reply in 0.3 ms, tcp 53: reply in 0.5 ms
"#;
        assert_eq!(text, format!("{expected}{CONDITIONS}"), "\n{text}");
    }

    #[test]
    fn conditions_show_when_there_is_no_incident() {
        let mut view: WhyView = serde_json::from_str(WHY_DNS).unwrap();
        view.incidents.clear();
        let text = render_why(&view, 3_600_000);
        let expected = format!(
            "web-01: availability 83.33% over the last 1h (5 of 6 checks ok), state down\n\
             No incidents in the last 1h.\n{CONDITIONS}"
        );
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn a_condition_without_readable_evidence_still_shows() {
        let mut view: WhyView = serde_json::from_str(WHY_DNS).unwrap();
        view.incidents.clear();
        view.resolver_conditions.truncate(1);
        let c = &mut view.resolver_conditions[0].condition;
        // The latest does not read: the first stands in; neither reads: no evidence line.
        c.last_evidence = None;
        c.evidence.as_mut().unwrap().queries.truncate(1);
        let text = render_why(&view, 3_600_000);
        let evidence = "    evidence: A refused\n\
            \x20             ping: reply in 0.3 ms\n\
            \x20             tcp 53: reply in 0.5 ms\n";
        assert!(text.ends_with(evidence), "{text}");
        view.resolver_conditions[0].condition.evidence = None;
        let text = render_why(&view, 3_600_000);
        assert!(!text.contains("evidence:"), "{text}");
        assert!(text.ends_with("10.0.0.53 answers 10.77.0.2\n"), "{text}");
    }

    #[test]
    fn control_characters_from_resolvers_do_not_reach_the_terminal() {
        let mut view: WhyView = serde_json::from_str(WHY_DNS).unwrap();
        let esc = "\u{1b}[31m";
        let c = &mut view.resolver_conditions[0];
        c.resolver = format!("r{esc}");
        c.canary = format!("c{esc}").into();
        c.condition.last_explanation = format!("e{esc}");
        let evidence = c.condition.last_evidence.as_mut().unwrap();
        evidence.queries[0].outcome = causeway_schema::DnsOutcome::NetworkError;
        evidence.queries[0].error = Some(format!("q{esc}"));
        evidence.reachability.as_mut().unwrap().icmp.detail = Some(format!("p{esc}"));
        let sample = view.incidents[0].samples.last_mut().unwrap();
        let dns = &mut sample.evidence.as_mut().unwrap().dns;
        dns[0].resolver = format!("d{esc}");
        dns[1].queries[0].error = Some(format!("x{esc}"));
        dns[1].queries[0].outcome = causeway_schema::DnsOutcome::NetworkError;
        let text = render_why(&view, 3_600_000);
        assert!(!text.contains('\u{1b}'), "{text}");
        for shown in [
            "r\\u{1b}", "c\\u{1b}", "e\\u{1b}", "q\\u{1b}", "p\\u{1b}", "d\\u{1b}", "x\\u{1b}",
        ] {
            assert!(text.contains(shown), "{shown} missing from\n{text}");
        }
    }

    /// Every string of a check's facts that a probe sent, cleaned or quoted.
    #[test]
    fn control_characters_in_a_checks_evidence_do_not_reach_the_terminal() {
        let scenario: toml::Table = toml::from_str(include_str!(
            "../../schema/tests/scenarios/rst-non-serving-process.toml"
        ))
        .unwrap();
        let check: causeway_schema::CheckResult = scenario["check"].clone().try_into().unwrap();
        let esc = "\u{1b}[2J";
        let mut view: WhyView = serde_json::from_str(WHY).unwrap();
        let sample = view.incidents[0].samples.last_mut().unwrap();
        sample.canary = format!("c{esc}").into();
        sample.url = format!("u{esc}");
        sample.failure.as_mut().unwrap().message = format!("m{esc}");
        let mut evidence = check.evidence;
        evidence.expected_text = Some(format!("t{esc}"));
        evidence.body_excerpt = Some(format!("b{esc}"));
        evidence.trace.as_mut().unwrap().interface = format!("i{esc}");
        let listeners = evidence.listeners.as_mut().unwrap();
        listeners.serving = format!("s{esc}");
        listeners.listeners[1].owners[0].cmdline = format!("o{esc}");
        sample.evidence = Some(evidence);
        let text = render_why(&view, 3_600_000);
        assert!(!text.contains('\u{1b}'), "{text}");
        for shown in [
            "c\\u{1b}",
            "u\\u{1b}",
            "m\\u{1b}",
            "\"t\\u{1b}[2J\"",
            "\"b\\u{1b}[2J\"",
            "i\\u{1b}",
            "s\\u{1b}",
            "o\\u{1b}",
        ] {
            assert!(text.contains(shown), "{shown} missing from\n{text}");
        }
    }

    #[test]
    fn control_characters_do_not_reach_the_terminal() {
        assert_eq!(clean("a\u{1b}[31mb\n"), "a\\u{1b}[31mb\\n");
    }
}
