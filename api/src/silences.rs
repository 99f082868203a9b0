//! Maintenance windows on the wire: servers (by name glob) that raise no alert for a while,
//! because someone is working on them (`probectl silence add web-01 --for 2h --reason "kernel
//! upgrade"`). The collector stores them (its `silences` module); probectl makes and lists
//! them through the API.

use serde::{Deserialize, Serialize};

use crate::glob::glob_match;

/// The longest silence: a week. A longer one is a server that should be removed.
pub const MAX_MS: i64 = 7 * 86_400_000;
pub const REASON_MAX: usize = 200;

/// One silence, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: i64,
    /// A server name or glob (`web-*`).
    pub servers: String,
    pub reason: String,
    /// Who made it: the read token's name or the user's.
    pub created_by: String,
    pub created_at_ms: i64,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    /// When it was removed before its end.
    pub removed_at_ms: Option<i64>,
}

impl Silence {
    /// When it ended or ends: at its end, or when it was removed before.
    pub fn effective_end_ms(&self) -> i64 {
        self.removed_at_ms
            .map_or(self.ends_at_ms, |r| r.min(self.ends_at_ms))
    }

    /// Whether it silences `server` at `at_ms`.
    pub fn covers(&self, server: &str, at_ms: i64) -> bool {
        self.removed_at_ms.is_none()
            && (self.starts_at_ms..self.ends_at_ms).contains(&at_ms)
            && glob_match(&self.servers, server)
    }
}

/// What `POST /api/v1/silences` takes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewSilence {
    pub servers: String,
    /// How long from now, in seconds.
    pub duration_s: i64,
    pub reason: String,
}

/// `GET /api/v1/silences`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilenceList {
    pub now_ms: i64,
    pub silences: Vec<Silence>,
}

/// Checks a new silence; the error names the field, the value and what is allowed.
pub fn check(new: &NewSilence) -> Result<(), String> {
    let glob_ok = !new.servers.is_empty()
        && new.servers.len() <= 128
        && new
            .servers
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*' | '?'));
    if !glob_ok {
        return Err(format!(
            "servers: {:?} is not a server name or glob: letters, digits, '.', '-', '_', '*' and \
             '?' are allowed",
            new.servers
        ));
    }
    if !(60..=MAX_MS / 1000).contains(&new.duration_s) {
        return Err(format!(
            "duration_s: {} is out of range: 60 (1m) to {} (7d) are allowed",
            new.duration_s,
            MAX_MS / 1000
        ));
    }
    if new.reason.trim().is_empty() || new.reason.chars().count() > REASON_MAX {
        return Err(format!(
            "reason: 1 to {REASON_MAX} characters are required (what the work is, for whoever \
             wonders why web-01 did not page)"
        ));
    }
    Ok(())
}
