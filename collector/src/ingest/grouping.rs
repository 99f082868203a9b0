//! The grouping rules of incidents and conditions as pure functions: given what is open and
//! what one in-order report says, the step to take. The store carries the steps out; these
//! functions never touch the database, so the rules are tested here on plain values.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use causeway_schema::{Cause, CheckResult};

/// What is open for a server, or for one of its resolvers or host causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub id: i64,
    pub cause: String,
}

/// The primary cause of a report's failed checks: the most frequent, ties going to the one
/// seen first. `None` when no check failed.
pub fn primary_cause(results: &[CheckResult]) -> Option<Cause> {
    let mut counts: Vec<(Cause, usize)> = Vec::new();
    for cause in results.iter().filter_map(CheckResult::cause) {
        match counts.iter_mut().find(|(c, _)| *c == cause) {
            Some((_, n)) => *n += 1,
            None => counts.push((cause, 1)),
        }
    }
    // max_by_key returns the last of equal maxima; reversing keeps the first seen.
    counts
        .into_iter()
        .rev()
        .max_by_key(|&(_, n)| n)
        .map(|(c, _)| c)
}

/// The failed checks of a report that carry its primary cause, as indices into its results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failures {
    pub cause: Cause,
    /// Indices of the checks with `cause`, in report order (never empty).
    pub checks: Vec<usize>,
    /// The latest start among them.
    pub last_failure_at_ms: i64,
}

/// What an in-order report does to its server's incidents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncidentStep {
    /// Nothing open and nothing failed.
    Nothing,
    /// No check failed: the open incident `id` ends at the report's start.
    Close { id: i64 },
    /// The open incident `id` has the report's primary cause: it counts these failures.
    Extend { id: i64, failures: Failures },
    /// A new incident with these failures; `close` is an open incident with another cause,
    /// ended at the report's start.
    Open {
        close: Option<i64>,
        failures: Failures,
    },
}

/// The incident rule: a report without a failed check closes the open incident; one with
/// failed checks extends the open incident of its primary cause, or closes an incident of
/// another cause and opens one of its own.
pub fn next_incident(open: Option<&Open>, results: &[CheckResult]) -> IncidentStep {
    let Some(cause) = primary_cause(results) else {
        return match open {
            Some(o) => IncidentStep::Close { id: o.id },
            None => IncidentStep::Nothing,
        };
    };
    let checks: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.cause() == Some(cause))
        .map(|(i, _)| i)
        .collect();
    let last_failure_at_ms = checks
        .iter()
        .map(|&i| results[i].started_at_ms)
        .max()
        .unwrap_or_default();
    let failures = Failures {
        cause,
        checks,
        last_failure_at_ms,
    };
    match open {
        Some(o) if o.cause == cause.id() => IncidentStep::Extend { id: o.id, failures },
        other => IncidentStep::Open {
            close: other.map(|o| o.id),
            failures,
        },
    }
}

/// Failures of the same primary cause that come back within the merge gap after an incident
/// ended belong to it: an intermittent fault (a rogue listener resetting a few connections a
/// minute) is one incident with several bursts, not a new one every few seconds. The default
/// gap; the config file's `merge_gap` sets another ([`set_merge_gap`]).
pub const MERGE_GAP_MS: i64 = 10 * 60_000;

/// The merge gap in force: one per process, as the config file that sets it.
static MERGE_GAP: AtomicI64 = AtomicI64::new(MERGE_GAP_MS);

/// Sets the merge gap (at start and on a reload of the config file).
pub fn set_merge_gap(gap: Duration) {
    let ms = i64::try_from(gap.as_millis()).unwrap_or(i64::MAX);
    MERGE_GAP.store(ms, Ordering::Relaxed);
}

/// The merge gap in force, in milliseconds.
pub fn merge_gap_ms() -> i64 {
    MERGE_GAP.load(Ordering::Relaxed)
}

/// A server's latest ended incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    pub id: i64,
    pub cause: String,
    pub ended_at_ms: i64,
}

/// The ended incident that `step` continues instead of opening a new one: when nothing is
/// open, the new failures have the latest incident's cause, and they started within
/// [`MERGE_GAP_MS`] of its end.
pub fn reopens<'a>(
    closed: Option<&'a Closed>,
    step: &IncidentStep,
    at_ms: i64,
) -> Option<&'a Closed> {
    let IncidentStep::Open {
        close: None,
        failures,
    } = step
    else {
        return None;
    };
    let closed = closed?;
    let within = at_ms.saturating_sub(closed.ended_at_ms) <= merge_gap_ms();
    (closed.cause == failures.cause.id() && within).then_some(closed)
}

/// What one observation does to the condition of what it observed (a resolver, or one cause
/// of a host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStep {
    Nothing,
    /// Healthy now: the open condition `id` ends.
    Close {
        id: i64,
    },
    /// Seen again: the open condition `id` counts one more observation.
    Extend {
        id: i64,
    },
    /// A condition opens; `close` is one with another cause, ended first.
    Open {
        close: Option<i64>,
    },
}

/// The condition rule: a healthy observation (`seen` is `None`) closes the open condition; a
/// cause equal to the open one's extends it; another cause closes it and opens its own.
pub fn next_condition(open: Option<&Open>, seen: Option<&str>) -> ConditionStep {
    match (open, seen) {
        (None, None) => ConditionStep::Nothing,
        (Some(o), None) => ConditionStep::Close { id: o.id },
        (Some(o), Some(cause)) if o.cause == cause => ConditionStep::Extend { id: o.id },
        (open, Some(_)) => ConditionStep::Open {
            close: open.map(|o| o.id),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_schema::{Diagnosis, Timings};

    fn check(ok: bool, cause: Option<Cause>, at: i64) -> CheckResult {
        CheckResult {
            canary: "site".into(),
            url: "http://canary.test/".into(),
            address: None,
            started_at_ms: at,
            ok,
            status: None,
            timings: Timings::default(),
            failure: None,
            diagnosis: cause.map(|cause| Diagnosis {
                cause,
                contributing: vec![],
                explanation: "x".into(),
            }),
            evidence: Default::default(),
        }
    }

    fn open(id: i64, cause: Cause) -> Open {
        Open {
            id,
            cause: cause.id().to_owned(),
        }
    }

    #[test]
    fn primary_cause_is_the_most_frequent_then_the_first() {
        use Cause::*;
        assert_eq!(primary_cause(&[check(true, None, 0)]), None);
        assert_eq!(primary_cause(&[]), None);
        let tie = [
            check(true, None, 0),
            check(false, Some(Timeout), 0),
            check(false, Some(ConnectionRefused), 0),
        ];
        assert_eq!(primary_cause(&tie), Some(Timeout));
        let most = [
            check(false, Some(Timeout), 0),
            check(false, Some(ConnectionRefused), 0),
            check(false, Some(ConnectionRefused), 0),
        ];
        assert_eq!(primary_cause(&most), Some(ConnectionRefused));
        // A failed check without a diagnosis counts as `unknown`.
        assert_eq!(primary_cause(&[check(false, None, 0)]), Some(Unknown));
    }

    #[test]
    fn a_healthy_report_closes_the_open_incident_or_does_nothing() {
        let ok = [check(true, None, 5)];
        assert_eq!(next_incident(None, &ok), IncidentStep::Nothing);
        let o = open(7, Cause::Timeout);
        assert_eq!(next_incident(Some(&o), &ok), IncidentStep::Close { id: 7 });
        // A report without checks says nothing either way: it closes too (as stored today).
        assert_eq!(next_incident(Some(&o), &[]), IncidentStep::Close { id: 7 });
    }

    #[test]
    fn the_same_cause_extends_and_another_replaces() {
        use Cause::*;
        let results = [
            check(false, Some(ConnectionRefused), 10),
            check(true, None, 11),
            check(false, Some(ConnectionRefused), 30),
            check(false, Some(Timeout), 40),
        ];
        let failures = Failures {
            cause: ConnectionRefused,
            checks: vec![0, 2],
            last_failure_at_ms: 30,
        };
        assert_eq!(
            next_incident(Some(&open(3, ConnectionRefused)), &results),
            IncidentStep::Extend {
                id: 3,
                failures: failures.clone()
            }
        );
        assert_eq!(
            next_incident(Some(&open(3, Timeout)), &results),
            IncidentStep::Open {
                close: Some(3),
                failures: failures.clone()
            }
        );
        assert_eq!(
            next_incident(None, &results),
            IncidentStep::Open {
                close: None,
                failures
            }
        );
    }

    #[test]
    fn failures_of_the_same_cause_within_the_gap_reopen_the_last_incident() {
        use Cause::*;
        let refused = [check(false, Some(ConnectionRefused), 10)];
        let step = next_incident(None, &refused);
        let ended = |cause: Cause, at| Closed {
            id: 9,
            cause: cause.id().into(),
            ended_at_ms: at,
        };
        let t = 1_000_000;
        let id = |c: Option<&Closed>| c.map(|c| c.id);
        assert_eq!(
            id(reopens(
                Some(&ended(ConnectionRefused, t)),
                &step,
                t + 5_000
            )),
            Some(9)
        );
        assert_eq!(
            id(reopens(
                Some(&ended(ConnectionRefused, t)),
                &step,
                t + MERGE_GAP_MS
            )),
            Some(9)
        );
        assert_eq!(
            id(reopens(
                Some(&ended(ConnectionRefused, t)),
                &step,
                t + MERGE_GAP_MS + 1
            )),
            None,
            "past the gap: a new incident"
        );
        assert_eq!(
            id(reopens(Some(&ended(Timeout, t)), &step, t + 5_000)),
            None,
            "another cause"
        );
        assert_eq!(id(reopens(None, &step, t)), None);
        // An incident open with another cause is replaced, never merged.
        let replace = next_incident(Some(&open(3, Timeout)), &refused);
        assert_eq!(
            id(reopens(
                Some(&ended(ConnectionRefused, t)),
                &replace,
                t + 5_000
            )),
            None
        );
    }

    #[test]
    fn conditions_follow_their_cause() {
        let o = Open {
            id: 4,
            cause: "dns_upstream_block".into(),
        };
        assert_eq!(next_condition(None, None), ConditionStep::Nothing);
        assert_eq!(
            next_condition(Some(&o), None),
            ConditionStep::Close { id: 4 }
        );
        assert_eq!(
            next_condition(Some(&o), Some("dns_upstream_block")),
            ConditionStep::Extend { id: 4 }
        );
        assert_eq!(
            next_condition(Some(&o), Some("dns_resolver_unreachable")),
            ConditionStep::Open { close: Some(4) }
        );
        assert_eq!(
            next_condition(None, Some("dns_resolver_unreachable")),
            ConditionStep::Open { close: None }
        );
    }
}
