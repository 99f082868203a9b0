//! What a notification says, and how each channel carries it. Pure: the alerter builds a
//! [`Message`] when it raises an alert and stores it in the outbox; the sender renders it for
//! its channel when it delivers.
//!
//! Every message names the server, the cause id and its one-line meaning, the explanation
//! (the `why` line), when it started, and links to the page.

use causeway_schema::Cause;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::timefmt::{compact_duration, rfc3339};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// An incident reached the rule's threshold.
    Down,
    /// The server was down for one cause and is now down for another.
    CauseChanged,
    /// Still down, `repeat` after the last message.
    Reminder,
    /// The incident ended.
    Recovered,
    /// No report for `stale_after` intervals: the host, its probe or the network is gone.
    Stale,
    /// Reports arrive again after a stale alert.
    Reporting,
    /// A host or resolver condition opened (a warning, not an outage).
    Warning,
    /// The condition ended.
    Cleared,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Down => "down",
            Event::CauseChanged => "cause_changed",
            Event::Reminder => "reminder",
            Event::Recovered => "recovered",
            Event::Stale => "stale",
            Event::Reporting => "reporting",
            Event::Warning => "warning",
            Event::Cleared => "cleared",
        }
    }

    /// The tag in a message's title.
    fn tag(self) -> &'static str {
        match self {
            Event::Down => "DOWN",
            Event::CauseChanged => "DOWN, CAUSE CHANGED",
            Event::Reminder => "STILL DOWN",
            Event::Recovered => "RECOVERED",
            Event::Stale => "STALE",
            Event::Reporting => "REPORTING AGAIN",
            Event::Warning => "WARNING",
            Event::Cleared => "CLEARED",
        }
    }

    /// Whether the message ends what an earlier one began (Alertmanager's resolved alert).
    pub fn ends(self) -> bool {
        matches!(self, Event::Recovered | Event::Reporting | Event::Cleared)
    }
}

/// One notification, as the outbox keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub event: Event,
    /// Unique per alert and event: the receiver's idempotency key.
    pub key: String,
    pub server: String,
    /// The cause id (`stale` for a server that stopped reporting).
    pub cause: String,
    /// What a condition is about: `its host`, or `resolver 10.0.0.53 of canary site`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The cause before, for [`Event::CauseChanged`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_cause: Option<String>,
    /// The `why` line of the incident, or what the last reports said of a stale server.
    pub explanation: String,
    /// When the trouble began (the incident's start, the last report received).
    pub started_at_ms: i64,
    /// When it ended, for the messages that end an alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_checks: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_id: Option<i64>,
    /// The server's page, when the config has a `public_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The first failed check's evidence page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence_url: Option<String>,
    /// When the alerter raised it.
    pub raised_at_ms: i64,
}

impl Message {
    /// `the connection was reset for a socket the serving process does not own`, or for a
    /// stale server what that means.
    pub fn meaning(&self) -> String {
        match self.cause.parse::<Cause>() {
            Ok(c) => c.summary().to_owned(),
            Err(_) if self.cause == "stale" => {
                "no report arrived: the host is down, its probe stopped, or the network between \
                 them is cut"
                    .to_owned()
            }
            Err(_) => String::new(),
        }
    }

    /// `[DOWN] web-01: rst_from_non_serving_process`.
    pub fn title(&self) -> String {
        format!("[{}] {}: {}", self.event.tag(), self.server, self.cause)
    }

    /// When what it tells of ended: the recorded end, or when it was raised.
    fn ended(&self) -> i64 {
        self.ended_at_ms.unwrap_or(self.raised_at_ms)
    }

    /// ` (2 failed checks)`, or nothing without a count.
    fn checks(&self) -> String {
        match self.failed_checks {
            Some(1) => " (1 failed check)".to_owned(),
            Some(n) => format!(" ({n} failed checks)"),
            None => String::new(),
        }
    }

    /// The body as plain text: what happened, why, and where to look.
    pub fn text(&self) -> String {
        let start = rfc3339(self.started_at_ms);
        let checks = self.checks();
        let (end, lasted) = (
            rfc3339(self.ended()),
            compact_duration(self.ended() - self.started_at_ms),
        );
        let mut lines = vec![match self.event {
            Event::Down => format!("{} is down since {start}{checks}.", self.server),
            Event::CauseChanged => format!(
                "{} is still down, now for another cause (before: {}){checks}; down since {start}.",
                self.server,
                self.previous_cause.as_deref().unwrap_or("unknown")
            ),
            Event::Reminder => format!("{} is still down since {start}{checks}.", self.server),
            Event::Recovered => format!(
                "{} is up again at {end} after {lasted} down (since {start}).",
                self.server
            ),
            Event::Stale => format!(
                "{} has sent no report since {start} ({} ago).",
                self.server,
                compact_duration(self.raised_at_ms - self.started_at_ms)
            ),
            Event::Reporting => format!(
                "{} reports again, at {end} after {lasted} of silence.",
                self.server
            ),
            Event::Warning => format!(
                "{} has a condition of {} since {start}.",
                self.server,
                self.subject.as_deref().unwrap_or("its host")
            ),
            Event::Cleared => format!(
                "{}: the condition of {} ended at {end} after {lasted}.",
                self.server,
                self.subject.as_deref().unwrap_or("its host")
            ),
        }];
        lines.push(format!("Cause: {}: {}.", self.cause, self.meaning()));
        if !self.explanation.is_empty() {
            lines.push(format!("Why: {}", self.explanation));
        }
        if let Some(url) = &self.evidence_url {
            lines.push(format!("Evidence: {url}"));
        }
        if let Some(url) = &self.url {
            lines.push(format!("Server: {url}"));
        }
        lines.join("\n")
    }

    /// The webhook's body: the message's fields, with its title, meaning and text.
    pub fn webhook_body(&self) -> serde_json::Value {
        let mut body = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = body.as_object_mut() {
            map.insert("title".into(), json!(self.title()));
            map.insert("meaning".into(), json!(self.meaning()));
            map.insert("text".into(), json!(self.text()));
            map.insert("started_at".into(), json!(rfc3339(self.started_at_ms)));
            if let Some(end) = self.ended_at_ms {
                map.insert("ended_at".into(), json!(rfc3339(end)));
            }
        }
        body
    }

    /// A Slack-compatible incoming webhook's body.
    pub fn slack_body(&self) -> serde_json::Value {
        json!({
            "username": "Causeway",
            "text": format!("*{}*\n{}", self.title(), self.text()),
        })
    }

    /// ntfy's priority (1 to 5) and tags for the message.
    pub fn ntfy_headers(&self) -> [(&'static str, String); 4] {
        let (priority, tags) = match self.event {
            Event::Down | Event::CauseChanged | Event::Stale => ("5", "rotating_light"),
            Event::Reminder | Event::Warning => ("4", "warning"),
            Event::Recovered | Event::Reporting | Event::Cleared => ("3", "white_check_mark"),
        };
        [
            ("Title", self.title()),
            ("Priority", priority.to_owned()),
            ("Tags", format!("{tags},{}", self.cause)),
            (
                "Click",
                self.evidence_url
                    .clone()
                    .or(self.url.clone())
                    .unwrap_or_default(),
            ),
        ]
    }

    /// Whether it is about a condition (a warning) rather than an outage.
    pub fn is_condition(&self) -> bool {
        matches!(self.event, Event::Warning | Event::Cleared)
    }

    fn severity(&self) -> &'static str {
        match self.is_condition() {
            true => "warning",
            false => "critical",
        }
    }

    fn alertname(&self) -> &'static str {
        match (self.is_condition(), self.cause.as_str()) {
            (true, _) => "CausewayCondition",
            (false, "stale") => "CausewayStale",
            (false, _) => "CausewayDown",
        }
    }

    /// The alerts of Alertmanager's `POST /api/v2/alerts`: the alert for this cause (resolved
    /// with `endsAt` when the message ends it), and for a changed cause the previous one,
    /// resolved.
    pub fn alertmanager_body(&self) -> serde_json::Value {
        let alert = |cause: &str, ends: Option<i64>| {
            let mut a = json!({
                "labels": {
                    "alertname": self.alertname(),
                    "server": self.server,
                    "cause": cause,
                    "severity": self.severity(),
                },
                "annotations": {
                    "summary": self.title(),
                    "why": self.explanation,
                    "meaning": self.meaning(),
                    "url": self.evidence_url.clone().or(self.url.clone()).unwrap_or_default(),
                },
                "startsAt": rfc3339(self.started_at_ms),
            });
            if let Some(end) = ends {
                a["endsAt"] = json!(rfc3339(end));
            }
            if let Some(url) = &self.url {
                a["generatorURL"] = json!(url);
            }
            a
        };
        let ends = self.event.ends().then(|| self.ended());
        let mut alerts = vec![alert(&self.cause, ends)];
        if let (Event::CauseChanged, Some(before)) = (self.event, &self.previous_cause) {
            alerts.push(alert(before, Some(self.started_at_ms)));
        }
        json!(alerts)
    }
}

/// DOWN messages of one cause sent together ([`crate::alerts::config::CollectorConfig::group_window`]):
/// one title and text listing every server, with each one's `why` and links.
pub struct Group<'a>(pub &'a [Message]);

impl Group<'_> {
    /// `[DOWN] 3 servers: dns_upstream_block`.
    pub fn title(&self) -> String {
        let first = &self.0[0];
        format!("[DOWN] {} servers: {}", self.0.len(), first.cause)
    }

    pub fn text(&self) -> String {
        let first = &self.0[0];
        let mut lines = vec![format!(
            "{} servers are down with {}: {}.",
            self.0.len(),
            first.cause,
            first.meaning()
        )];
        for m in self.0 {
            lines.push(format!(
                "{} since {}{}: {}",
                m.server,
                rfc3339(m.started_at_ms),
                m.checks(),
                m.explanation
            ));
            if let Some(url) = m.evidence_url.as_ref().or(m.url.as_ref()) {
                lines.push(format!("  {url}"));
            }
        }
        lines.join("\n")
    }

    /// The webhook's body: `grouped`, the servers, and every message's own body.
    pub fn webhook_body(&self) -> serde_json::Value {
        json!({
            "event": "down",
            "grouped": true,
            "cause": self.0[0].cause,
            "meaning": self.0[0].meaning(),
            "title": self.title(),
            "text": self.text(),
            "servers": self.0.iter().map(|m| m.server.as_str()).collect::<Vec<_>>(),
            "messages": self.0.iter().map(Message::webhook_body).collect::<Vec<_>>(),
        })
    }

    /// The idempotency key: the first message's and how many.
    pub fn key(&self) -> String {
        format!("{}+{}", self.0[0].key, self.0.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-07T09:00:00Z.
    const T0: i64 = 1_796_634_000_000;

    fn down() -> Message {
        Message {
            event: Event::Down,
            key: "incident:7/down".into(),
            server: "web-01".into(),
            cause: "rst_from_non_serving_process".into(),
            subject: None,
            previous_cause: None,
            explanation: "10.88.0.2:80 reset the connection 1502 ms after the request (78 bytes), \
                          before any response, from a socket the serving process does not own: \
                          pid 4242 (nginx -t; cgroup /docker/web) ..."
                .into(),
            started_at_ms: T0,
            ended_at_ms: None,
            failed_checks: Some(2),
            incident_id: Some(7),
            url: Some("https://causeway.example.net/servers/web-01".into()),
            evidence_url: Some("https://causeway.example.net/servers/web-01/checks/31".into()),
            raised_at_ms: T0 + 4_000,
        }
    }

    #[test]
    fn a_down_message_names_server_cause_meaning_why_start_and_links() {
        let m = down();
        assert_eq!(m.title(), "[DOWN] web-01: rst_from_non_serving_process");
        assert_eq!(
            m.text(),
            "web-01 is down since 2026-12-07T09:00:00Z (2 failed checks).\n\
             Cause: rst_from_non_serving_process: the connection was reset for a socket the \
             serving process does not own.\n\
             Why: 10.88.0.2:80 reset the connection 1502 ms after the request (78 bytes), before \
             any response, from a socket the serving process does not own: pid 4242 (nginx -t; \
             cgroup /docker/web) ...\n\
             Evidence: https://causeway.example.net/servers/web-01/checks/31\n\
             Server: https://causeway.example.net/servers/web-01"
        );
    }

    #[test]
    fn a_recovery_says_how_long_and_an_alertmanager_alert_ends() {
        let m = Message {
            event: Event::Recovered,
            key: "incident:7/recovered".into(),
            ended_at_ms: Some(T0 + 130_000),
            raised_at_ms: T0 + 131_000,
            ..down()
        };
        assert_eq!(
            m.title(),
            "[RECOVERED] web-01: rst_from_non_serving_process"
        );
        assert!(
            m.text().starts_with(
                "web-01 is up again at 2026-12-07T09:02:10Z after 2m10s down (since \
                 2026-12-07T09:00:00Z).\nCause: rst_from_non_serving_process: "
            ),
            "{}",
            m.text()
        );
        let am = m.alertmanager_body();
        assert_eq!(am[0]["endsAt"], "2026-12-07T09:02:10Z");
        assert_eq!(am[0]["labels"]["cause"], "rst_from_non_serving_process");
        assert!(down().alertmanager_body()[0].get("endsAt").is_none());
    }

    #[test]
    fn a_changed_cause_resolves_the_old_alert_in_alertmanager() {
        let m = Message {
            event: Event::CauseChanged,
            cause: "connection_refused".into(),
            previous_cause: Some("rst_from_non_serving_process".into()),
            ..down()
        };
        assert!(
            m.text()
                .contains("now for another cause (before: rst_from_non_serving_process)")
        );
        let am = m.alertmanager_body();
        assert_eq!(am.as_array().unwrap().len(), 2);
        assert_eq!(am[1]["labels"]["cause"], "rst_from_non_serving_process");
        assert_eq!(am[1]["endsAt"], "2026-12-07T09:00:00Z");
    }

    #[test]
    fn a_stale_server_says_what_silence_means() {
        let m = Message {
            event: Event::Stale,
            cause: "stale".into(),
            explanation: "the last report (interval 2s) showed no failed check".into(),
            failed_checks: None,
            incident_id: None,
            evidence_url: None,
            raised_at_ms: T0 + 7_000,
            ..down()
        };
        assert_eq!(m.title(), "[STALE] web-01: stale");
        assert!(
            m.text().starts_with(
                "web-01 has sent no report since 2026-12-07T09:00:00Z (7s ago).\nCause: stale: no \
             report arrived: the host is down, its probe stopped, or the network between them is \
             cut.\nWhy: the last report"
            ),
            "{}",
            m.text()
        );
        assert_eq!(
            m.alertmanager_body()[0]["labels"]["alertname"],
            "CausewayStale"
        );
    }

    /// The messages of the three causes of the product's first incidents, pinned whole: the
    /// explanations are the classifier's for the recorded scenarios in schema/tests/scenarios.
    #[test]
    fn the_three_seed_causes_read_as_pinned() {
        const SHUFFLE: &str = "the proxy answered 502; backend app (10.88.0.12:80) moved to \
            10.88.0.15: same MAC 02:aa:bb:cc:dd:01, answers like before; 10.88.0.12:80 now \
            refuses connections (connection refused). The host rebooted (boot id changed, up 42 \
            s): the proxy still points at the old address";
        const BLOCK: &str = "10.88.0.13 refuses our queries for canary.lab (A refused, AAAA \
            refused), yet it is reachable (ping reply in 0.1 ms, TCP port 53 reply in 0.1 ms); \
            10.88.0.11 answers 10.88.0.2";
        let shuffle = Message {
            cause: "bad_gateway_after_ip_shuffle".into(),
            explanation: SHUFFLE.into(),
            failed_checks: Some(3),
            ..down()
        };
        assert_eq!(
            format!("{}\n{}", shuffle.title(), shuffle.text()),
            "[DOWN] web-01: bad_gateway_after_ip_shuffle\n\
             web-01 is down since 2026-12-07T09:00:00Z (3 failed checks).\n\
             Cause: bad_gateway_after_ip_shuffle: the proxy answers 5xx because a backend moved \
             to another address.\n\
             Why: the proxy answered 502; backend app (10.88.0.12:80) moved to 10.88.0.15: same \
             MAC 02:aa:bb:cc:dd:01, answers like before; 10.88.0.12:80 now refuses connections \
             (connection refused). The host rebooted (boot id changed, up 42 s): the proxy still \
             points at the old address\n\
             Evidence: https://causeway.example.net/servers/web-01/checks/31\n\
             Server: https://causeway.example.net/servers/web-01"
        );
        let reminder = Message {
            event: Event::Reminder,
            failed_checks: Some(480),
            raised_at_ms: T0 + 4 * 3_600_000,
            ..shuffle.clone()
        };
        assert_eq!(
            reminder.text().lines().next().unwrap(),
            "web-01 is still down since 2026-12-07T09:00:00Z (480 failed checks)."
        );
        assert_eq!(
            reminder.title(),
            "[STILL DOWN] web-01: bad_gateway_after_ip_shuffle"
        );
        let rst_back = Message {
            event: Event::Recovered,
            ended_at_ms: Some(T0 + 754_000),
            ..down()
        };
        assert_eq!(
            format!(
                "{}\n{}",
                rst_back.title(),
                rst_back.text().lines().next().unwrap()
            ),
            "[RECOVERED] web-01: rst_from_non_serving_process\n\
             web-01 is up again at 2026-12-07T09:12:34Z after 12m34s down (since \
             2026-12-07T09:00:00Z)."
        );
        let block = Message {
            event: Event::Warning,
            key: "resolver:4/warning".into(),
            cause: "dns_upstream_block".into(),
            subject: Some("resolver 10.88.0.13:53 of canary site".into()),
            explanation: BLOCK.into(),
            failed_checks: None,
            incident_id: None,
            evidence_url: None,
            ..down()
        };
        assert_eq!(
            format!("{}\n{}", block.title(), block.text()),
            "[WARNING] web-01: dns_upstream_block\n\
             web-01 has a condition of resolver 10.88.0.13:53 of canary site since \
             2026-12-07T09:00:00Z.\n\
             Cause: dns_upstream_block: a reachable resolver refuses or ignores our queries while \
             others answer.\n\
             Why: 10.88.0.13 refuses our queries for canary.lab (A refused, AAAA refused), yet it \
             is reachable (ping reply in 0.1 ms, TCP port 53 reply in 0.1 ms); 10.88.0.11 answers \
             10.88.0.2\n\
             Server: https://causeway.example.net/servers/web-01"
        );
        let cleared = Message {
            event: Event::Cleared,
            ended_at_ms: Some(T0 + 3_600_000),
            ..block.clone()
        };
        assert_eq!(
            format!(
                "{}\n{}",
                cleared.title(),
                cleared.text().lines().next().unwrap()
            ),
            "[CLEARED] web-01: dns_upstream_block\n\
             web-01: the condition of resolver 10.88.0.13:53 of canary site ended at \
             2026-12-07T10:00:00Z after 1h."
        );
        let am = cleared.alertmanager_body();
        assert_eq!(am[0]["labels"]["alertname"], "CausewayCondition");
        assert_eq!(am[0]["labels"]["severity"], "warning");
        assert_eq!(am[0]["endsAt"], "2026-12-07T10:00:00Z");
    }
}
