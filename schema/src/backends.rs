//! Backend wire types: for a canary behind a reverse proxy, what the probe knew about each
//! backend while things were healthy, what a direct request to it returns now, and where its
//! identity is seen now. The evidence of `bad_gateway_after_ip_shuffle` and `upstream_down`.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::Reboot;

/// Most backends per canary (config and report validation).
pub const BACKENDS_MAX: usize = 16;
/// Most sightings per backend (report validation): the probe lists the best first, and the
/// classifier reads only the first.
pub const SIGHTINGS_MAX: usize = 8;

/// The backends of a canary whose proxy answered 502/503/504 or the wrong page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendEvidence {
    pub backends: Vec<BackendState>,
    /// The host's boot id changed since the probe last ran a cycle (a reboot in between).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reboot: Option<Reboot>,
}

/// One backend as the proxy is configured to reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendState {
    /// The backend's name from the probe's config, if any (`app`, or a DNS name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The address the proxy is configured to reach it at.
    pub configured: SocketAddr,
    /// Its identity, learned while the canary was healthy; `None` before the first healthy
    /// cycle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known: Option<BackendIdentity>,
    /// What a direct request to the configured address returned now.
    pub direct: DirectResult,
    /// Where its identity is seen now, other than the configured address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen_at: Vec<Sighting>,
}

/// What identifies a backend, whatever its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendIdentity {
    /// Its link-layer address, from the neighbour table (`02:42:0a:00:03:0c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// How it answers a direct request: status and a digest of the body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<AnswerPrint>,
    /// What its name resolved to, when a name is configured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub name_addresses: Vec<IpAddr>,
    /// When this identity was learned, in milliseconds since the Unix epoch.
    pub learned_at_ms: i64,
}

/// A response reduced to what tells one backend from another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerPrint {
    pub status: u16,
    /// A digest of the body (FNV-1a 64, hex): equal bodies, equal digests.
    pub body_digest: String,
    pub body_len: u64,
}

/// A direct request to a backend address.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectResult {
    pub outcome: DirectOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<AnswerPrint>,
    pub elapsed_ms: f64,
    /// The error, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// How a direct request to a backend went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectOutcome {
    /// An HTTP response came.
    Answered,
    /// The connection was refused: the host is there, nothing listens.
    Refused,
    /// Nothing came back in time.
    Timeout,
    /// Another error (no route, reset, not HTTP).
    Error,
}

impl DirectOutcome {
    pub const ALL: [DirectOutcome; 4] = [
        DirectOutcome::Answered,
        DirectOutcome::Refused,
        DirectOutcome::Timeout,
        DirectOutcome::Error,
    ];

    /// The wire id, as serde writes it.
    pub const fn id(self) -> &'static str {
        match self {
            DirectOutcome::Answered => "answered",
            DirectOutcome::Refused => "refused",
            DirectOutcome::Timeout => "timeout",
            DirectOutcome::Error => "error",
        }
    }
}

/// The backend's identity seen at another address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sighting {
    pub address: IpAddr,
    /// What matched: its link-layer address, its name resolving there, its answer.
    pub by: Vec<SightingBy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SightingBy {
    Mac,
    Name,
    Answer,
}

impl SightingBy {
    /// Every kind, strongest proof first: explanations name them in this order.
    pub const ALL: [SightingBy; 3] = [SightingBy::Mac, SightingBy::Name, SightingBy::Answer];

    /// The wire id, as serde writes it.
    pub const fn id(self) -> &'static str {
        match self {
            SightingBy::Mac => "mac",
            SightingBy::Name => "name",
            SightingBy::Answer => "answer",
        }
    }
}

impl DirectResult {
    /// Whether the backend at its configured address answers as it did when healthy.
    pub fn answers_like(&self, known: &BackendIdentity) -> bool {
        match (&self.answer, &known.answer) {
            (Some(now), Some(then)) => now == then,
            _ => false,
        }
    }
}

impl BackendState {
    /// `app (10.0.3.12:80)` or `10.0.3.12:80`.
    pub fn who(&self) -> String {
        match &self.name {
            Some(name) => format!("{name} ({})", self.configured),
            None => self.configured.to_string(),
        }
    }
}
