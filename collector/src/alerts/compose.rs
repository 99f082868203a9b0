//! The messages the alerter raises, built from what is open: an incident, a host or resolver
//! condition, a server gone quiet.

use super::OpenIncident;
use super::config::CollectorConfig;
use super::message::{Event, Message};
use super::store::OpenCondition;

/// The server's page, when the config has a `public_url`.
pub(super) fn server_url(config: &CollectorConfig, server: &str) -> Option<String> {
    let base = config.public_url.as_ref()?;
    Some(format!("{base}/servers/{server}"))
}

pub(super) fn incident_message(
    config: &CollectorConfig,
    i: &OpenIncident,
    event: Event,
    now_ms: i64,
    suffix: &str,
) -> Message {
    let url = server_url(config, &i.server);
    let evidence_url = url
        .as_ref()
        .map(|u| format!("{u}/checks/{}", i.first_result_id));
    let key = match suffix {
        "" => format!("incident:{}/{}", i.id, event.as_str()),
        n => format!("incident:{}/{}-{n}", i.id, event.as_str()),
    };
    Message {
        event,
        key,
        server: i.server.clone(),
        cause: i.cause.clone(),
        subject: None,
        previous_cause: None,
        explanation: i.explanation.clone(),
        started_at_ms: i.started_at_ms,
        ended_at_ms: None,
        failed_checks: Some(i.failed_checks),
        incident_id: Some(i.id),
        url,
        evidence_url,
        raised_at_ms: now_ms,
    }
}

pub(super) fn condition_message(
    config: &CollectorConfig,
    c: &OpenCondition,
    event: Event,
    now_ms: i64,
) -> Message {
    Message {
        event,
        key: format!("{}/{}", c.key, event.as_str()),
        server: c.server.clone(),
        cause: c.cause.clone(),
        subject: Some(c.subject.clone()),
        previous_cause: None,
        explanation: c.explanation.clone(),
        started_at_ms: c.started_at_ms,
        ended_at_ms: None,
        failed_checks: None,
        incident_id: None,
        url: server_url(config, &c.server),
        evidence_url: None,
        raised_at_ms: now_ms,
    }
}

pub(super) fn stale_message(
    config: &CollectorConfig,
    server: &str,
    event: Event,
    since_ms: i64,
    now_ms: i64,
) -> Message {
    Message {
        event,
        key: String::new(),
        server: server.to_owned(),
        cause: "stale".to_owned(),
        subject: None,
        previous_cause: None,
        explanation: String::new(),
        started_at_ms: since_ms,
        ended_at_ms: None,
        failed_checks: None,
        incident_id: None,
        url: server_url(config, server),
        evidence_url: None,
        raised_at_ms: now_ms,
    }
}
