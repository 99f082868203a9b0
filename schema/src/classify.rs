//! The classifier: a pure function from a check's observations and evidence to its cause.
//!
//! A cause is claimed only when its evidence is present; otherwise the generic outcome of the
//! failure stands. The rules are two ordered tables with one signature each: [`CAUSE_RULES`]
//! names the cause (first match wins, each rule proven by a field of
//! [`Evidence`](crate::Evidence)), then [`REFINEMENTS`] add contributing causes or let stronger
//! evidence (an OOM kill of the server) take over. A new capability is a row in one of them.

mod backends;
mod dns;
mod host;
mod resets;
mod tls;

pub use dns::{AddressCheck, disputed_addresses, judge_resolvers};
pub use host::{Growth, host_conditions, memory_line, pressure_lines, s_unreclaim_growth};
pub use tls::clock_verdict;

use crate::{Cause, CheckResult, Diagnosis, FailureKind};

/// A rule: the diagnosis its evidence proves, or `None` to leave the check to the next rule.
type Rule = fn(&CheckResult, &crate::Failure) -> Option<Diagnosis>;

/// One row of [`CAUSE_RULES`].
struct CauseRule {
    rule: Rule,
    /// Whether [`REFINEMENTS`] apply to what it found.
    refined: bool,
}

/// The rules that name a failed check's cause, first match wins: the most specific evidence
/// first, the failure's own kind last (it always matches).
const CAUSE_RULES: &[CauseRule] = &[
    // A check that got no address: the resolvers' answers say why, and nothing else applies.
    CauseRule {
        rule: |check, failure| {
            (failure.kind == FailureKind::NoAddress)
                .then(|| dns::no_address(check))
                .flatten()
        },
        refined: false,
    },
    // The proxy's backends, when they were examined, tell more than its status or page does.
    CauseRule {
        rule: |check, _| backends::classify(check),
        refined: true,
    },
    // What the TLS library said of the certificate or the parameters, with the chain.
    CauseRule {
        rule: |check, _| tls::classify(check).map(|(cause, why)| diagnosis(cause, why)),
        refined: true,
    },
    // The packets: who reset the connection (a reset during a TLS handshake included).
    CauseRule {
        rule: |check, _| resets::classify(check).map(|(cause, why)| diagnosis(cause, why)),
        refined: true,
    },
    // The packets and the listeners: a request queued on a rogue listener, never answered.
    CauseRule {
        rule: |check, _| resets::queued(check).map(|(cause, why)| diagnosis(cause, why)),
        refined: true,
    },
    // The failure's kind alone: the generic outcome.
    CauseRule {
        rule: |check, failure| Some(by_failure_kind(check, failure)),
        refined: true,
    },
];

/// A rule that refines the cause found: adds a contributing cause, or replaces the cause
/// when its evidence outranks it.
type Refinement = fn(&CheckResult, Diagnosis) -> Diagnosis;

/// Applied in order to what a [`CauseRule`] with `refined` found.
const REFINEMENTS: &[Refinement] = &[
    // A resolver that answered wrong or not at all contributes.
    |check, mut found| {
        if let Some(c) = dns::contributing(check) {
            found.contributing.push(c);
        }
        found
    },
    // The host last: an OOM kill of the serving process outranks the refused connection it
    // left.
    host::classify,
];

/// The diagnosis of a check, or `None` when the check succeeded.
pub fn classify(check: &CheckResult) -> Option<Diagnosis> {
    if check.ok {
        return None;
    }
    let Some(failure) = &check.failure else {
        return Some(diagnosis(
            Cause::Unknown,
            format!(
                "{}: the check failed without a recorded error",
                target(check)
            ),
        ));
    };
    let (found, refined) = CAUSE_RULES
        .iter()
        .find_map(|r| (r.rule)(check, failure).map(|d| (d, r.refined)))?;
    if !refined {
        return Some(found);
    }
    Some(
        REFINEMENTS
            .iter()
            .fold(found, |found, refine| refine(check, found)),
    )
}

/// The generic outcome of the failure, from its kind alone.
fn by_failure_kind(check: &CheckResult, failure: &crate::Failure) -> Diagnosis {
    let target = target(check);
    let msg = &failure.message;
    let (cause, explanation) = match failure.kind {
        FailureKind::ConnectRefused => (
            Cause::ConnectionRefused,
            format!("{target} refused the connection: nothing listens on the port ({msg})"),
        ),
        FailureKind::ConnectTimeout => (
            Cause::Timeout,
            format!("{target} did not complete the TCP handshake in time ({msg})"),
        ),
        FailureKind::ResponseTimeout => (
            Cause::Timeout,
            format!("{target} accepted the connection but did not answer in time ({msg})"),
        ),
        FailureKind::Reset => (
            Cause::ConnectionReset,
            format!("{target} reset the connection before answering ({msg})"),
        ),
        FailureKind::Tls => (
            Cause::TlsError,
            format!("TLS handshake with {target} failed ({msg})"),
        ),
        FailureKind::UnexpectedStatus => {
            let got = check
                .status
                .map_or("no status".to_owned(), |s| s.to_string());
            let want = check
                .evidence
                .expected_status
                .map_or(String::new(), |s| format!(", expected {s}"));
            (
                Cause::HttpError,
                format!("{target} answered HTTP {got}{want}"),
            )
        }
        FailureKind::BodyMismatch => {
            let text = check.evidence.expected_text.as_deref().unwrap_or("");
            (
                Cause::ContentMismatch,
                format!("{target} answered, but the page lacks the expected text {text:?}"),
            )
        }
        FailureKind::NoAddress => (
            Cause::Unknown,
            format!("no resolver gave an address for the canary ({msg})"),
        ),
        FailureKind::ConnectError => (
            Cause::Unknown,
            format!("connecting to {target} failed ({msg})"),
        ),
        FailureKind::ClosedWithoutResponse => (
            Cause::Unknown,
            format!("{target} closed the connection without a response ({msg})"),
        ),
        FailureKind::Protocol => (
            Cause::Unknown,
            format!("{target} answered something that is not valid HTTP ({msg})"),
        ),
        FailureKind::Newer(kind) => (
            Cause::Unknown,
            format!("checking {target} failed: {} ({msg})", kind.id()),
        ),
    };
    diagnosis(cause, explanation)
}

/// Longest explanation kept, in characters (reports allow 1024).
const EXPLANATION_MAX: usize = 1000;

fn diagnosis(cause: Cause, explanation: String) -> Diagnosis {
    Diagnosis {
        cause,
        contributing: Vec::new(),
        explanation: crate::cut(explanation, EXPLANATION_MAX),
    }
}

/// How a check's destination is named in explanations: the address it went to, else its URL.
fn target(check: &CheckResult) -> String {
    match check.address {
        Some(addr) => addr.to_string(),
        None => check.url.clone(),
    }
}
