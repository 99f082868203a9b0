//! A failed check's own facts (which check, what failed, the status against the one expected,
//! the timings, the body) and the summary of its packet trace.

use causeway_schema::{CheckResult, Evidence, PacketTrace, Timings, TtlSource};

use super::{Fact, Part, count};
use crate::timefmt::{clock_ms, rfc3339};
use crate::views::ResultView;

/// A failed check as either side holds it: the page a `CheckResult`, probectl the API's
/// `ResultView` (whose failure kind is a plain string, so that a newer collector's kinds
/// still read).
#[derive(Debug, Clone)]
pub struct FailedCheck<'a> {
    pub canary: &'a str,
    pub url: &'a str,
    pub address: Option<String>,
    pub started_at_ms: i64,
    /// The failure's kind (`connect_refused`) and message.
    pub failure: Option<(&'a str, &'a str)>,
    pub status: Option<u16>,
    pub timings: &'a Timings,
    pub evidence: Option<&'a Evidence>,
}

impl<'a> From<&'a CheckResult> for FailedCheck<'a> {
    fn from(c: &'a CheckResult) -> FailedCheck<'a> {
        FailedCheck {
            canary: &c.canary,
            url: &c.url,
            address: c.address.map(|a| a.to_string()),
            started_at_ms: c.started_at_ms,
            failure: c
                .failure
                .as_ref()
                .map(|f| (f.kind.id(), f.message.as_str())),
            status: c.status,
            timings: &c.timings,
            evidence: Some(&c.evidence),
        }
    }
}

impl<'a> From<&'a ResultView> for FailedCheck<'a> {
    fn from(r: &'a ResultView) -> FailedCheck<'a> {
        FailedCheck {
            canary: &r.canary,
            url: &r.url,
            address: r.address.clone(),
            started_at_ms: r.started_at_ms,
            failure: r
                .failure
                .as_ref()
                .map(|f| (f.kind.as_str(), f.message.as_str())),
            status: r.status,
            timings: &r.timings,
            evidence: r.evidence.as_ref(),
        }
    }
}

/// The check's facts in the order both print them: `check` (which canary, where, when),
/// `failure`, `status`, `expected text`, `timings`, `tls` and a `certificate` per certificate
/// served, `body excerpt`; each only when known.
pub fn failure_facts(c: &FailedCheck) -> Vec<Fact> {
    let e = c.evidence;
    let at = c
        .address
        .as_ref()
        .map_or(String::new(), |a| format!(" at {a}"));
    let mut facts = vec![Fact::new(
        "check",
        vec![
            Part::words(format!("{} ", c.canary)),
            Part::code(c.url),
            Part::words(format!("{at}, started {}", rfc3339(c.started_at_ms))),
        ],
    )];
    if let Some((kind, message)) = c.failure {
        facts.push(Fact::new(
            "failure",
            vec![Part::code(kind), Part::words(format!(": {message}"))],
        ));
    }
    // No status with one expected is a fact too: the check never got a response.
    let status = match (c.status, e.and_then(|e| e.expected_status)) {
        (Some(s), Some(want)) => Some(format!("{s}, expected {want}")),
        (Some(s), None) => Some(s.to_string()),
        (None, Some(want)) => Some(format!("none, expected {want}")),
        (None, None) => None,
    };
    if let Some(status) = status {
        facts.push(Fact::new("status", vec![Part::Words(status)]));
    }
    if let Some(text) = e.and_then(|e| e.expected_text.as_deref()) {
        facts.push(Fact::new("expected text", vec![Part::Quoted(text.into())]));
    }
    facts.push(Fact::new("timings", vec![Part::Words(timings(c.timings))]));
    if let Some(tls) = e.and_then(|e| e.tls.as_ref()) {
        facts.extend(super::tls_facts(tls, c.started_at_ms));
    }
    if let Some(body) = e.and_then(|e| e.body_excerpt.as_deref()) {
        facts.push(Fact::new("body excerpt", vec![Part::Excerpt(body.into())]));
    }
    facts
}

/// `resolve 0.7 ms, connect 0.2 ms, first byte 1.1 ms, total 1.6 ms`: the phases reached.
pub fn timings(t: &Timings) -> String {
    let mut parts: Vec<String> = [
        ("resolve", t.resolve_ms),
        ("connect", t.connect_ms),
        ("TLS", t.tls_ms),
        ("first byte", t.first_byte_ms),
    ]
    .into_iter()
    .filter_map(|(name, ms)| Some(format!("{name} {:.1} ms", ms?)))
    .collect();
    parts.push(format!("total {:.1} ms", t.total_ms));
    parts.join(", ")
}

/// What a packet trace says in words; the packets themselves each side draws its own way
/// (the page a ladder, probectl a line each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceFacts {
    /// `6 packets on lo between 10.88.0.2:41000 (probe) and 10.88.0.2:80 (server), from
    /// 12:13:20.001 UTC`, and how many more were not kept.
    pub summary: Vec<Part>,
    /// The server's TTL against the reset's: [`ttl_line`].
    pub ttl: String,
}

impl TraceFacts {
    pub fn of(t: &PacketTrace) -> TraceFacts {
        let mut tail = format!(
            " between {} (probe) and {} (server), from {} UTC",
            t.local,
            t.remote,
            clock_ms(t.started_at_ms)
        );
        if t.truncated > 0 {
            tail.push_str(&format!("; {} more not kept", t.truncated));
        }
        TraceFacts {
            summary: vec![
                Part::words(format!("{} on ", count(t.packets.len(), "packet"))),
                Part::code(&t.interface),
                Part::Words(tail),
            ],
            ttl: ttl_line(t),
        }
    }
}

/// The server's TTL and where it was learnt, and whether an inbound reset carried the same:
/// a reset with another TTL came from elsewhere on the path.
pub fn ttl_line(t: &PacketTrace) -> String {
    const UNKNOWN: &str = "the server's TTL is not known (no SYN-ACK from it, now or before)";
    let rst = t.inbound_reset();
    match (t.server_ttl, rst) {
        (Some(s), rst) => {
            let from = match s.source {
                TtlSource::ThisConnection => "this connection's SYN-ACK",
                TtlSource::EarlierConnection => "the SYN-ACKs of earlier connections",
            };
            let reset = match rst {
                Some(r) if r.ttl == s.ttl => {
                    format!("; the reset came with TTL {}, the same", r.ttl)
                }
                Some(r) => format!(
                    "; the reset came with TTL {}, not the server's: it was sent from elsewhere \
                     on the path",
                    r.ttl
                ),
                None => String::new(),
            };
            format!(
                "the server's packets arrive with TTL {} (from {from}){reset}",
                s.ttl
            )
        }
        (None, Some(r)) => format!("{UNKNOWN}; the reset came with TTL {}", r.ttl),
        (None, None) => UNKNOWN.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::facts::plain;

    /// 2025-11-23T12:13:20.250Z.
    const AT: i64 = 1_763_900_000_250;

    fn check() -> serde_json::Value {
        json!({
            "canary": "site",
            "url": "http://10.88.0.2/",
            "address": "10.88.0.2",
            "started_at_ms": AT,
            "ok": false,
            "status": 502,
            "timings": {"connect_ms": 0.14, "first_byte_ms": 3.26, "total_ms": 1502.04},
            "failure": {"kind": "unexpected_status", "message": "HTTP 502 Bad Gateway"},
            "diagnosis": null,
            "evidence": {
                "expected_status": 200,
                "expected_text": " canary-ok",
                "body_excerpt": "<html>dev</html>"
            }
        })
    }

    fn texts(facts: &[Fact]) -> Vec<String> {
        facts.iter().map(Fact::plain).collect()
    }

    #[test]
    fn a_failed_checks_facts_in_order() {
        let c: CheckResult = serde_json::from_value(check()).unwrap();
        let facts = failure_facts(&FailedCheck::from(&c));
        assert_eq!(
            texts(&facts),
            [
                "check: site http://10.88.0.2/ at 10.88.0.2, started 2025-11-23T12:13:20Z",
                "failure: unexpected_status: HTTP 502 Bad Gateway",
                "status: 502, expected 200",
                "expected text:  canary-ok",
                "timings: connect 0.1 ms, first byte 3.3 ms, total 1502.0 ms",
                "body excerpt: <html>dev</html>",
            ]
        );
        // What renderers set off: the URL and the kind as names, the text and the body as
        // strings whose characters matter.
        assert_eq!(facts[0].text[1], Part::code("http://10.88.0.2/"));
        assert_eq!(facts[1].text[0], Part::code("unexpected_status"));
        assert_eq!(facts[3].text, [Part::Quoted(" canary-ok".into())]);
        assert_eq!(facts[5].text, [Part::Excerpt("<html>dev</html>".into())]);
    }

    /// The API's shape of a check (probectl's) gives the same facts as the stored one (the
    /// page's), also for a failure kind this build does not know.
    #[test]
    fn the_apis_view_of_a_check_gives_the_same_facts() {
        let c: CheckResult = serde_json::from_value(check()).unwrap();
        let mut view = check();
        view["id"] = json!(7);
        view["report_id"] = json!("r");
        view["cause"] = json!(null);
        view["explanation"] = json!(null);
        let r: ResultView = serde_json::from_value(view.clone()).unwrap();
        assert_eq!(
            failure_facts(&FailedCheck::from(&r)),
            failure_facts(&FailedCheck::from(&c))
        );
        view["failure"]["kind"] = json!("from_the_future");
        let r: ResultView = serde_json::from_value(view).unwrap();
        let facts = failure_facts(&FailedCheck::from(&r));
        assert_eq!(
            facts[1].plain(),
            "failure: from_the_future: HTTP 502 Bad Gateway"
        );
    }

    #[test]
    fn no_status_and_no_evidence() {
        let mut c: CheckResult = serde_json::from_value(check()).unwrap();
        c.status = None;
        c.address = None;
        c.failure = None;
        c.timings = Timings {
            resolve_ms: Some(0.66),
            tls_ms: Some(12.0),
            total_ms: 20.0,
            ..Timings::default()
        };
        c.evidence.expected_text = None;
        c.evidence.body_excerpt = None;
        let facts = failure_facts(&FailedCheck::from(&c));
        assert_eq!(
            texts(&facts),
            [
                "check: site http://10.88.0.2/, started 2025-11-23T12:13:20Z",
                // No response, though one was expected: said, not left out.
                "status: none, expected 200",
                "timings: resolve 0.7 ms, TLS 12.0 ms, total 20.0 ms",
            ]
        );
        c.evidence.expected_status = None;
        let facts = failure_facts(&FailedCheck::from(&c));
        assert_eq!(facts.len(), 2, "{facts:?}");
        c.status = Some(200);
        let facts = failure_facts(&FailedCheck::from(&c));
        assert_eq!(facts[1].plain(), "status: 200");
    }

    fn trace(server_ttl: Option<(u8, &str)>, reset_ttl: Option<u8>) -> PacketTrace {
        let mut packets = vec![json!({
            "t_ms": 0.0, "dir": "out", "flags": "SYN", "seq": 0, "ack": 0, "ttl": 64, "len": 0
        })];
        if let Some(ttl) = reset_ttl {
            packets.push(json!({
                "t_ms": 1.5, "dir": "in", "flags": "RST,ACK", "seq": 1, "ack": 1, "ttl": ttl,
                "len": 0
            }));
        }
        serde_json::from_value(json!({
            "interface": "eth0",
            "local": "10.88.0.1:41000",
            "remote": "10.88.0.2:80",
            "started_at_ms": AT,
            "packets": packets,
            "server_ttl": server_ttl.map(|(ttl, source)| json!({"ttl": ttl, "source": source})),
        }))
        .unwrap()
    }

    #[test]
    fn the_servers_ttl_against_the_resets() {
        let cases = [
            (
                trace(Some((64, "this_connection")), Some(64)),
                "the server's packets arrive with TTL 64 (from this connection's SYN-ACK); the \
                 reset came with TTL 64, the same",
            ),
            (
                trace(Some((57, "earlier_connection")), Some(64)),
                "the server's packets arrive with TTL 57 (from the SYN-ACKs of earlier \
                 connections); the reset came with TTL 64, not the server's: it was sent from \
                 elsewhere on the path",
            ),
            (
                trace(Some((64, "this_connection")), None),
                "the server's packets arrive with TTL 64 (from this connection's SYN-ACK)",
            ),
            (
                trace(None, Some(61)),
                "the server's TTL is not known (no SYN-ACK from it, now or before); the reset \
                 came with TTL 61",
            ),
            (
                trace(None, None),
                "the server's TTL is not known (no SYN-ACK from it, now or before)",
            ),
        ];
        for (t, want) in cases {
            assert_eq!(ttl_line(&t), want);
            assert_eq!(TraceFacts::of(&t).ttl, want);
        }
    }

    #[test]
    fn the_traces_summary_counts_what_was_kept() {
        let mut t = trace(None, None);
        let facts = TraceFacts::of(&t);
        assert_eq!(
            plain(&facts.summary),
            "1 packet on eth0 between 10.88.0.1:41000 (probe) and 10.88.0.2:80 (server), from \
             12:13:20.250 UTC"
        );
        assert_eq!(facts.summary[1], Part::code("eth0"));
        t = trace(None, Some(64));
        t.truncated = 5;
        assert!(
            plain(&TraceFacts::of(&t).summary).starts_with("2 packets on eth0 ")
                && plain(&TraceFacts::of(&t).summary).ends_with("UTC; 5 more not kept"),
            "{:?}",
            TraceFacts::of(&t)
        );
    }
}
