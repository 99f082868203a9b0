//! The classifier: a pure function from a check's observations and evidence to its cause.
//!
//! A cause is claimed only when its evidence is present; otherwise the generic outcome of the
//! failure stands. Later capabilities (packets, DNS, backends, host) add rules above the generic
//! ones, each proven by a field of [`Evidence`](crate::Evidence).

mod backends;
mod dns;
mod host;
mod resets;

pub use dns::{AddressCheck, disputed_addresses, judge_resolvers};
pub use host::{Growth, host_conditions, memory_line, pressure_lines, s_unreclaim_growth};

use crate::{Cause, CheckResult, Diagnosis, FailureKind};

/// The diagnosis of a check, or `None` when the check succeeded.
pub fn classify(check: &CheckResult) -> Option<Diagnosis> {
    if check.ok {
        return None;
    }
    let target = target(check);
    let Some(failure) = &check.failure else {
        return Some(diagnosis(
            Cause::Unknown,
            format!("{target}: the check failed without a recorded error"),
        ));
    };
    if failure.kind == FailureKind::NoAddress
        && let Some(d) = dns::no_address(check)
    {
        return Some(d);
    }
    // The proxy's backends, when they were examined, tell more than its status or page does.
    let mut found = backends::classify(check).unwrap_or_else(|| generic(check, failure));
    if let Some(c) = dns::contributing(check) {
        found.contributing.push(c);
    }
    // The host last: an OOM kill of the serving process outranks the refused connection it left.
    Some(host::classify(check, found))
}

/// The packet rules, then the generic outcome of the failure.
fn generic(check: &CheckResult, failure: &crate::Failure) -> Diagnosis {
    let target = target(check);
    if let Some((cause, explanation)) = resets::classify(check).or_else(|| resets::queued(check)) {
        return diagnosis(cause, explanation);
    }
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
        explanation: cut(explanation),
    }
}

/// `explanation`, cut at [`EXPLANATION_MAX`] characters.
fn cut(mut explanation: String) -> String {
    if let Some((at, _)) = explanation.char_indices().nth(EXPLANATION_MAX) {
        explanation.truncate(at);
        explanation.push_str("...");
    }
    explanation
}

/// How a check's destination is named in explanations: the address it went to, else its URL.
fn target(check: &CheckResult) -> String {
    match check.address {
        Some(addr) => addr.to_string(),
        None => check.url.clone(),
    }
}
