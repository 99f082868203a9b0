//! The JSON shapes of the read API. The collector serialises them, `probectl` deserialises
//! them, so both sides share one definition.
//!
//! Cause ids and failure kinds are plain strings here, not schema enums: a `probectl` talking
//! to a newer collector must still read ids it does not know.

use std::collections::BTreeMap;

use causeway_schema::{
    CanaryName, Evidence, HostCondition, MemorySample, Pressure, ResolverOutcome, ServerName,
    Timings,
};
use serde::{Deserialize, Serialize};

/// `GET /api/v1/servers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerList {
    /// The collector's clock when it answered, for "12s ago".
    pub now_ms: i64,
    pub servers: Vec<ServerView>,
}

/// One server and how it is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerView {
    pub name: ServerName,
    pub state: ServerState,
    /// When the collector last accepted a report of this server.
    pub last_seen_ms: Option<i64>,
    pub last_report_started_at_ms: Option<i64>,
    pub interval_s: Option<u32>,
    /// The cause of the open incident, if any.
    pub current_cause: Option<String>,
    /// Keyed by window: `1h`, `24h`, `7d`, `30d`.
    pub availability: BTreeMap<String, Availability>,
    pub open_incident: Option<IncidentView>,
    pub spool_dropped_total: u64,
    pub spool_queued: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    /// The latest report's checks all passed.
    Up,
    /// The latest report has failed checks.
    Down,
    /// Nothing arrived for more than 3 intervals and 10 s.
    Stale,
    /// No report yet.
    Unknown,
}

impl ServerState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Up => "up",
            ServerState::Down => "down",
            ServerState::Stale => "stale",
            ServerState::Unknown => "unknown",
        }
    }
}

/// Checks that passed out of all checks in a window; `ratio` is null when there were none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Availability {
    pub ok: u64,
    pub total: u64,
    pub ratio: Option<f64>,
}

impl Availability {
    pub fn new(ok: u64, total: u64) -> Self {
        let ratio = (total > 0).then(|| ok as f64 / total as f64);
        Availability { ok, total, ratio }
    }

    /// `99.95%`, rounded down so that a single failure never shows as 100%; `-` without
    /// checks.
    pub fn percent(&self) -> String {
        if self.total == 0 {
            return "-".to_owned();
        }
        let hundredths = u128::from(self.ok) * 10_000 / u128::from(self.total);
        format!("{}.{:02}%", hundredths / 100, hundredths % 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounds_down() {
        assert_eq!(Availability::new(39, 40).percent(), "97.50%");
        assert_eq!(Availability::new(9999, 10_000).percent(), "99.99%");
        assert_eq!(Availability::new(99_999, 100_000).percent(), "99.99%");
        assert_eq!(Availability::new(5, 5).percent(), "100.00%");
        assert_eq!(Availability::new(0, 0).percent(), "-");
    }

    fn incident(
        bursts: u64,
        bursts_at_ms: Vec<i64>,
        failed_checks: u64,
        checks: u64,
    ) -> IncidentView {
        IncidentView {
            id: 1,
            cause: "connection_reset".into(),
            summary: String::new(),
            started_at_ms: bursts_at_ms[0],
            last_failure_at_ms: bursts_at_ms[0],
            ended_at_ms: None,
            open: true,
            failed_checks,
            bursts,
            checks,
            bursts_at_ms,
            explanation: String::new(),
            samples: Vec::new(),
        }
    }

    #[test]
    fn an_intermittent_incident_lists_its_bursts_and_its_failure_ratio() {
        // 2026-12-07T10:00:00Z, and a burst every 70 s.
        let t0 = 1_796_637_600_000;
        assert_eq!(incident(1, vec![t0], 5, 5).intermittent(), None);
        assert_eq!(
            incident(3, vec![t0, t0 + 70_000, t0 + 140_000], 6, 120)
                .intermittent()
                .unwrap(),
            "3 bursts, at 2026-12-07T10:00:00Z, 10:01:10, 10:02:20; 6 of 120 checks failed (5.0 %)"
        );
        // 60 bursts, 50 of them known, 10 shown; no ratio from an older collector.
        let known: Vec<i64> = (0..50).map(|n| t0 + n * 70_000).collect();
        let line = incident(60, known, 70, 0).intermittent().unwrap();
        assert!(
            line.starts_with("60 bursts, at 2026-12-07T10:00:00Z, 10:01:10, "),
            "{line}"
        );
        assert!(line.ends_with(", 10:10:30, and 50 more"), "{line}");
    }
}

/// Consecutive failures of one server with the same primary cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentView {
    pub id: i64,
    pub cause: String,
    /// What the cause means, for people (`Cause::summary`).
    pub summary: String,
    pub started_at_ms: i64,
    pub last_failure_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub open: bool,
    pub failed_checks: u64,
    /// How often it began: more than one for an intermittent fault, whose failures came back
    /// within the merge gap (10 minutes) after it had ended. 1 from older collectors.
    #[serde(default = "one")]
    pub bursts: u64,
    /// The server's checks from its start to its last failure, the healthy ones between its
    /// bursts included: `failed_checks` of these failed. 0 when unknown (stored by an older
    /// collector).
    #[serde(default)]
    pub checks: u64,
    /// When each burst began, the first the incident's start; the first 50 of them.
    #[serde(default)]
    pub bursts_at_ms: Vec<i64>,
    /// The explanation of the first failure.
    pub explanation: String,
    /// The first and the last failed check (one when they are the same).
    pub samples: Vec<ResultView>,
}

impl IncidentView {
    /// For an intermittent incident (more than one burst), when its bursts began and its
    /// failure ratio, as `why` and the page print it:
    /// `5 bursts, at 2026-12-07T10:01:02Z, 10:03:10, ...; 14 of 230 checks failed (6.1 %)`.
    pub fn intermittent(&self) -> Option<String> {
        if self.bursts <= 1 {
            return None;
        }
        let first = self
            .bursts_at_ms
            .first()
            .copied()
            .unwrap_or(self.started_at_ms);
        let mut at: Vec<String> = self
            .bursts_at_ms
            .iter()
            .take(BURST_TIMES_SHOWN)
            .enumerate()
            .map(|(i, &t)| match i {
                0 => crate::timefmt::rfc3339(t),
                // Within a day of the first, the time of day says it.
                _ => crate::timefmt::short_time(t, first),
            })
            .collect();
        let unlisted = self.bursts.saturating_sub(at.len() as u64);
        if unlisted > 0 {
            at.push(format!("and {unlisted} more"));
        }
        let mut line = format!("{} bursts, at {}", self.bursts, at.join(", "));
        if self.checks >= self.failed_checks && self.checks > 0 {
            line.push_str(&format!(
                "; {} of {} checks failed ({:.1} %)",
                self.failed_checks,
                self.checks,
                self.failed_checks as f64 * 100.0 / self.checks as f64
            ));
        }
        Some(line)
    }
}

/// Burst times an incident's line lists at most; the count says how many there were.
const BURST_TIMES_SHOWN: usize = 10;

/// One stored check result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultView {
    pub id: i64,
    pub report_id: String,
    pub canary: CanaryName,
    pub url: String,
    pub address: Option<String>,
    pub started_at_ms: i64,
    pub ok: bool,
    pub status: Option<u16>,
    pub cause: Option<String>,
    #[serde(default)]
    pub contributing: Vec<String>,
    pub explanation: Option<String>,
    pub failure: Option<FailureView>,
    pub timings: Timings,
    /// Kept for failed checks only.
    pub evidence: Option<Evidence>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureView {
    pub kind: String,
    pub message: String,
}

/// `GET /api/v1/servers/{name}/results`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultList {
    pub server: ServerName,
    pub results: Vec<ResultView>,
}

/// `GET /api/v1/servers/{name}/incidents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentList {
    pub server: ServerName,
    pub since_ms: i64,
    pub now_ms: i64,
    pub incidents: Vec<IncidentView>,
}

/// `GET /api/v1/servers/{name}/why`: what `probectl why` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WhyView {
    pub server: ServerView,
    pub since_ms: i64,
    pub now_ms: i64,
    /// Over `since_ms ..= now_ms`.
    pub availability: Availability,
    /// Overlapping the window, newest first.
    pub incidents: Vec<IncidentView>,
    /// Overlapping the window, newest first. Absent from older collectors' answers.
    #[serde(default)]
    pub resolver_conditions: Vec<ResolverConditionView>,
    /// Overlapping the window, newest first. Absent from older collectors' answers.
    #[serde(default)]
    pub host_conditions: Vec<HostConditionView>,
    /// The server's maintenance windows (silences, weekly windows of the config) overlapping
    /// the window, oldest first.
    #[serde(default)]
    pub maintenance: Vec<MaintenanceView>,
    /// [`WhyView::availability`] without the checks made during maintenance; `None` when
    /// there was none, or when a window is older than the healthy checks kept
    /// (`--retain-raw`), so its checks can no longer be told apart.
    #[serde(default)]
    pub availability_outside_maintenance: Option<Availability>,
    /// The certificates the server's https canaries served in the window, by canary, the
    /// oldest first. Absent from older collectors' answers.
    #[serde(default)]
    pub certificates: Vec<CertificateView>,
}

/// A certificate an https canary served: the leaf, told apart by its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateView {
    pub canary: String,
    pub url: String,
    /// The leaf's SHA-256, lower-case hex.
    pub sha256: String,
    pub subject: String,
    /// The leaf's expiry.
    pub not_after_ms: i64,
    /// The earliest expiry of the chain as last served (an intermediate may expire first).
    pub chain_not_after_ms: i64,
    pub first_seen_at_ms: i64,
    pub last_seen_at_ms: i64,
    /// The canary served another certificate before this one: it changed at
    /// `first_seen_at_ms`.
    pub replaced_another: bool,
}

/// A time a server was in maintenance, and its checks then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaintenanceView {
    /// `silence 3` or `weekly`.
    pub what: String,
    pub reason: String,
    /// Who made a silence (`None` for a weekly window).
    pub created_by: Option<String>,
    /// Cut to the window asked for.
    pub started_at_ms: i64,
    pub ended_at_ms: i64,
    /// The server's checks in it (`None` once its healthy checks are no longer kept,
    /// `--retain-raw`), and how many failed.
    pub checks: Option<u64>,
    pub failed: u64,
}

impl MaintenanceView {
    /// `silence 3 (kernel upgrade)`, `weekly (backups)`: what `why` and the page call it.
    pub fn label(&self) -> String {
        format!("{} ({})", self.what, self.reason)
    }

    /// `240 checks, 12 failed`, or `12 failed` when the healthy ones are no longer kept.
    pub fn checks_phrase(&self) -> String {
        match self.checks {
            Some(all) => format!("{all} checks, {} failed", self.failed),
            None => format!(
                "{} failed (healthy checks this old are not kept)",
                self.failed
            ),
        }
    }

    /// Whether it overlaps the time from `start_ms` to `end_ms` (an open incident: `None`).
    pub fn overlaps(&self, start_ms: i64, end_ms: Option<i64>) -> bool {
        self.started_at_ms <= end_ms.unwrap_or(i64::MAX) && start_ms < self.ended_at_ms
    }
}

impl WhyView {
    /// The maintenance windows during `incident`: its failed checks then were expected.
    pub fn maintenance_during(&self, i: &IncidentView) -> Vec<&MaintenanceView> {
        let end = i.ended_at_ms.map(|_| i.last_failure_at_ms);
        self.maintenance
            .iter()
            .filter(|m| m.overlaps(i.started_at_ms, end))
            .collect()
    }
}

/// Consecutive observations of one thing (a resolver, a probe's host) with the same cause:
/// what resolver and host conditions share. Not an incident: the canary may well answer
/// meanwhile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition<E> {
    pub id: i64,
    pub cause: String,
    /// What the cause means, for people (`Cause::summary`).
    pub summary: String,
    pub started_at_ms: i64,
    pub last_seen_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub open: bool,
    /// Cycles in which the cause was found.
    pub observations: u64,
    /// The explanation of the first observation.
    pub explanation: String,
    /// The explanation of the latest: figures move while a condition lasts. Empty from a
    /// collector that did not keep it.
    #[serde(default)]
    pub last_explanation: String,
    /// What was observed at the first and at the latest observation; null when the stored
    /// JSON no longer reads.
    pub evidence: Option<E>,
    pub last_evidence: Option<E>,
}

impl<E> Condition<E> {
    /// The latest explanation, or the first from a collector that kept only that.
    pub fn latest_explanation(&self) -> &str {
        if self.last_explanation.is_empty() {
            &self.explanation
        } else {
            &self.last_explanation
        }
    }
}

/// A resolver's condition, for one canary's name: the canary may well answer through the
/// other resolvers meanwhile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolverConditionView {
    pub canary: CanaryName,
    /// The canary's name, as last resolved.
    pub name: String,
    /// The resolver as the probe's config names it: `system` or an address.
    pub resolver: String,
    /// The name server that was asked (`10.0.0.53:53`).
    pub address: String,
    /// Its evidence is what the resolver said.
    #[serde(flatten)]
    pub condition: Condition<ResolverOutcome>,
}

/// How one resolver did for one canary's name over a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolverHealth {
    pub canary: CanaryName,
    pub name: String,
    pub resolver: String,
    pub address: String,
    /// Cycles with an observation of this resolver in the window.
    pub observations: u64,
    /// Of those, the ones without a condition.
    pub healthy: u64,
    /// `healthy / observations`; null without observations.
    pub ratio: Option<f64>,
    /// Observations per cause id, healthy ones left out.
    pub causes: BTreeMap<String, u64>,
    /// The newest observation.
    pub last: Option<ObservationView>,
    pub open_condition: Option<ResolverConditionView>,
}

/// One resolver in one cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObservationView {
    pub started_at_ms: i64,
    /// Null when the resolver was healthy.
    pub cause: Option<String>,
    /// Its queries in brief: `A answer 10.0.0.2 ttl 30, AAAA no_data`.
    pub outcome: String,
    /// The slowest query.
    pub elapsed_ms: Option<f64>,
}

/// `GET /api/v1/servers/{name}/resolvers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolverList {
    pub server: ServerName,
    pub since_ms: i64,
    pub now_ms: i64,
    /// Those observed in the window, by canary, resolver and address.
    pub resolvers: Vec<ResolverHealth>,
    /// Overlapping the window, newest first.
    pub conditions: Vec<ResolverConditionView>,
}

/// `GET /api/v1/resolvers`: every server's resolvers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolverOverview {
    pub since_ms: i64,
    pub now_ms: i64,
    /// Every server by name, those without resolvers too.
    pub servers: Vec<ServerResolvers>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerResolvers {
    pub server: ServerName,
    pub resolvers: Vec<ResolverHealth>,
}

impl From<ResolverList> for ResolverOverview {
    /// One server's list as the overview of that server alone (its conditions left out).
    fn from(list: ResolverList) -> Self {
        ResolverOverview {
            since_ms: list.since_ms,
            now_ms: list.now_ms,
            servers: vec![ServerResolvers {
                server: list.server,
                resolvers: list.resolvers,
            }],
        }
    }
}

/// Consecutive reports of one server's probe finding the same thing wrong with its own host
/// (`oom_kill`, `kernel_memory_leak`, `host_overload` or `host_rebooted`); its evidence is the
/// condition as the probe reported it.
pub type HostConditionView = Condition<HostCondition>;

/// One cycle's readings of a probe's host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostObservationView {
    pub report_id: String,
    /// The report's start; also the `at_ms` of `memory` and `pressure`, which the collector
    /// keeps per report, not per reading.
    pub started_at_ms: i64,
    /// Empty when the probe could not read it.
    pub boot_id: String,
    pub uptime_s: u64,
    /// The cycle's latest /proc/meminfo sample; null when the probe had none.
    pub memory: Option<MemorySample>,
    /// PSI and load; null when the probe had none.
    pub pressure: Option<Pressure>,
    /// The cause ids of the host conditions the probe found in this cycle.
    pub causes: Vec<String>,
    /// What the probe could not read of its host in this cycle, and why.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `GET /api/v1/servers/{name}/host`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostView {
    pub server: ServerName,
    pub since_ms: i64,
    pub now_ms: i64,
    /// The newest readings (by the report's start), however old: what is known of the host
    /// now. Null until a report carries them (probes that predate host evidence never do).
    pub latest: Option<HostObservationView>,
    /// Overlapping the window, newest first.
    pub conditions: Vec<HostConditionView>,
}

/// Every error the API answers: `{"error": "..."}` and, for some, details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    /// For an unknown server: the closest known names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closest: Option<Vec<String>>,
    /// For an invalid report: each field that is not allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<FieldView>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldView {
    pub field: String,
    pub value: String,
    pub allowed: String,
}

/// `GET /api/v1/alerts`: the recent notifications, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationList {
    pub now_ms: i64,
    pub notifications: Vec<NotificationView>,
}

/// One notification of the outbox and how its delivery went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NotificationView {
    pub id: i64,
    /// `down`, `cause_changed`, `reminder`, `recovered`, `stale`, `reporting`.
    pub event: String,
    pub server: ServerName,
    pub channel: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub created_at_ms: i64,
    pub delivered_at_ms: Option<i64>,
    pub last_error: Option<String>,
    /// `[DOWN] web-01: connection_refused`.
    pub title: String,
}

impl NotificationView {
    /// `delivered 12s ago`, `pending` or `failed`, as `probectl alerts` and the page say it.
    pub fn state(&self, now_ms: i64) -> String {
        match (self.status.as_str(), self.delivered_at_ms) {
            ("delivered", Some(at)) => format!("delivered {}", crate::timefmt::ago(at, now_ms)),
            (status, _) => status.to_owned(),
        }
    }
}

fn one() -> u64 {
    1
}
