//! Wire types: what a probe sends to the collector, as JSON.
//!
//! Compatibility rules: a field added later is `#[serde(default)]` so that older probes still
//! validate; nothing here denies unknown fields, so a newer probe's report is stored by an older
//! collector (the extra fields are dropped, the known ones kept). `schema_version` is raised
//! only when a change cannot be read that way.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::newer::{self, NewerId};
use crate::{
    BackendEvidence, CanaryName, Cause, HostEvidence, ListenerEvidence, PacketTrace, Resolution,
    ResolverOutcome, ServerName, TlsEvidence,
};

/// The wire format version this crate writes and reads.
pub const SCHEMA_VERSION: u32 = 1;

/// The HTTP header of a report's POST that carries the probe's clock when it sent the report,
/// in milliseconds since the Unix epoch. A header rather than a field of the report: the
/// report's bytes stay the same on every attempt, while this changes with each. With it the
/// collector tells how long the report waited (the probe's two times, on one clock) and how
/// far the probe's clock is from its own; a probe that predates it is ordered by its report's
/// start alone.
pub const SENT_AT_HEADER: &str = "causeway-sent-at";

/// A report's id: a UUIDv7 made by the probe at the cycle's start, so ids sort by time. The
/// collector stores each id once, which makes replays harmless. On the wire, the UUID's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReportId(pub Uuid);

impl ReportId {
    /// A new id, now.
    pub fn new() -> ReportId {
        ReportId(Uuid::now_v7())
    }

    /// Its 16 bytes, as the collector's key.
    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}

impl Default for ReportId {
    fn default() -> ReportId {
        ReportId::new()
    }
}

impl std::fmt::Display for ReportId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One probe cycle on one server: every check of every canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    /// Unique per cycle; the collector stores a report id once, so replays are harmless.
    pub report_id: ReportId,
    /// The server the canaries are watched for (defaults to the probe host's name).
    pub server: ServerName,
    pub probe: ProbeInfo,
    /// When the cycle started, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// The probe's cycle interval, so the collector can tell when a probe went silent.
    pub interval_s: u32,
    pub results: Vec<CheckResult>,
    /// How each canary's name resolved, per resolver (empty for canaries given by address).
    #[serde(default)]
    pub resolutions: Vec<Resolution>,
    /// The state of the probe's on-disk outbox when this report was made.
    #[serde(default)]
    pub spool: SpoolStats,
    /// The probe's host this cycle: the latest readings and the host conditions, reported even
    /// while every check is ok. `None` from probes that predate host evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostEvidence>,
    /// How long this cycle took, and how many of the probe's cycles outran the interval.
    /// `None` from probes that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle: Option<CycleStats>,
}

/// A cycle's duration against the interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleStats {
    /// From the cycle's start to its report, ms.
    pub took_ms: u64,
    /// Cycles since the probe started that took longer than the interval (the next one then
    /// waits for the following tick), this one included.
    pub overruns_total: u64,
}

/// Who sent a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeInfo {
    /// The host name the probe runs on.
    pub host: String,
    /// The probe's version (its crate version).
    pub version: String,
}

/// The probe's outbox, as seen when a report was made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolStats {
    /// Reports waiting in the spool for the collector, this one not counted.
    pub queued: u64,
    /// Reports the probe had to drop because the spool was full, since the spool was created.
    pub dropped_total: u64,
}

/// One request to one address of one canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The canary's name from the probe's config.
    pub canary: CanaryName,
    pub url: String,
    /// The address the request went to; `None` when no resolver gave one.
    pub address: Option<IpAddr>,
    /// When the check started, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    /// Whether the canary answered as expected (status and body text).
    pub ok: bool,
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    pub timings: Timings,
    /// What went wrong, for a failed check.
    pub failure: Option<Failure>,
    /// The cause the classifier found, for a failed check.
    pub diagnosis: Option<Diagnosis>,
    /// Evidence kept for a failed check (successful checks keep none).
    #[serde(default)]
    pub evidence: Evidence,
}

/// Phase durations in milliseconds. Each phase is timed on its own (not cumulative); a phase
/// that was not reached is `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    /// Name resolution (all resolvers, in parallel); `None` for a canary given by address.
    pub resolve_ms: Option<f64>,
    /// TCP handshake.
    pub connect_ms: Option<f64>,
    /// TLS handshake, for https canaries.
    pub tls_ms: Option<f64>,
    /// From the request written to the first byte of the response head.
    pub first_byte_ms: Option<f64>,
    /// The whole check, resolution included.
    pub total_ms: f64,
}

/// What the probe saw go wrong, before any interpretation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// The error as the probe saw it (OS or protocol message), for people.
    pub message: String,
}

/// The step at which a check failed and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// No resolver gave an address for the canary's name.
    NoAddress,
    /// The SYN was answered by a reset (ECONNREFUSED).
    ConnectRefused,
    /// The handshake did not complete within the check's timeout.
    ConnectTimeout,
    /// Connecting failed otherwise (unreachable network or host, ...).
    ConnectError,
    /// The TLS handshake failed (certificate, protocol, reset during the handshake).
    Tls,
    /// The connection was reset after it was established (ECONNRESET).
    Reset,
    /// The server closed the connection before a complete response.
    ClosedWithoutResponse,
    /// No complete response within the check's timeout.
    ResponseTimeout,
    /// A response came, with a status other than the expected one.
    UnexpectedStatus,
    /// A response came with the expected status, without the expected text.
    BodyMismatch,
    /// The response could not be read as HTTP.
    Protocol,
    /// A failure kind of a newer version, kept as it came; past the bound of kept ids, `protocol`.
    Newer(NewerId),
}

/// The classifier's verdict on a failed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnosis {
    pub cause: Cause,
    /// Causes that made it worse or came with it (a reboot before a refused connection, ...).
    #[serde(default)]
    pub contributing: Vec<Cause>,
    /// One line for people, specific to this check ("10.0.0.2:80 refused the connection").
    pub explanation: String,
}

/// The evidence carried by a failed check. Later capabilities add fields here, each optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The status the canary should answer with, when the status was wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<u16>,
    /// The text the page should contain, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_text: Option<String>,
    /// The start of the response body (at most [`BODY_EXCERPT_MAX`] bytes, lossy UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_excerpt: Option<String>,
    /// How the canary's name resolved, per resolver.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<ResolverOutcome>,
    /// The packets of the failed connection, when the probe could capture them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<PacketTrace>,
    /// The listeners on the canary's port, for a canary served on the probe's own host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listeners: Option<ListenerEvidence>,
    /// The backends behind the canary's proxy, when it answered 502/503/504 or the wrong page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<BackendEvidence>,
    /// The probe's host, for a canary served on it: memory series, pressure, OOM kills and
    /// kernel lines of the window before the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<HostEvidence>,
    /// The TLS handshake of an https canary: what was negotiated, the chain as served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsEvidence>,
}

/// Bytes of response body kept as evidence.
pub const BODY_EXCERPT_MAX: usize = 512;

impl FailureKind {
    /// Every kind, for tests and for listings.
    pub const ALL: [FailureKind; 11] = [
        FailureKind::NoAddress,
        FailureKind::ConnectRefused,
        FailureKind::ConnectTimeout,
        FailureKind::ConnectError,
        FailureKind::Tls,
        FailureKind::Reset,
        FailureKind::ClosedWithoutResponse,
        FailureKind::ResponseTimeout,
        FailureKind::UnexpectedStatus,
        FailureKind::BodyMismatch,
        FailureKind::Protocol,
    ];

    /// The wire id (`connect_refused`), as serde writes it.
    pub fn id(self) -> &'static str {
        match self {
            FailureKind::NoAddress => "no_address",
            FailureKind::ConnectRefused => "connect_refused",
            FailureKind::ConnectTimeout => "connect_timeout",
            FailureKind::ConnectError => "connect_error",
            FailureKind::Tls => "tls",
            FailureKind::Reset => "reset",
            FailureKind::ClosedWithoutResponse => "closed_without_response",
            FailureKind::ResponseTimeout => "response_timeout",
            FailureKind::UnexpectedStatus => "unexpected_status",
            FailureKind::BodyMismatch => "body_mismatch",
            FailureKind::Protocol => "protocol",
            FailureKind::Newer(id) => id.id(),
        }
    }
}

impl CheckResult {
    /// The primary cause of a failed check (`unknown` when it was not classified).
    pub fn cause(&self) -> Option<Cause> {
        if self.ok {
            return None;
        }
        Some(self.diagnosis.as_ref().map_or(Cause::Unknown, |d| d.cause))
    }
}

newer::wire_id!(FailureKind, "failure kind", Protocol);
