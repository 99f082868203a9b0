//! Backend rules: why a reverse proxy answered 502/503/504, or the wrong page, told from its
//! backends: what each was while healthy, what its configured address answers now, and where
//! its identity is seen now.
//!
//! - A backend **moved** when an identity was learned for it while healthy, its configured
//!   address does not answer like it did (refused, silent, failing or another page), and that
//!   identity is seen at another address (the probe lists the best sighting first), or another
//!   backend's configured address now answers as it did (when the two were told apart while
//!   healthy): this check's own direct requests prove that move, before any search has seen it. Any move
//!   makes the cause `bad_gateway_after_ip_shuffle`; every move is named, so a swap reads as
//!   two moves. The proxy never learns of a move, which is why it keeps failing.
//! - A backend is **down** when it did not move and its configured address refuses, stays
//!   silent, fails or answers 5xx: `upstream_down`, or a contributing cause beside a move.
//! - Without a learned identity (no healthy cycle yet), a sighting proves no move: a name may
//!   always have resolved there, an equal page may be a replica. `bad_gateway_after_ip_shuffle`
//!   promises the old and the new address of one and the same backend, and only an identity
//!   learned at the old address shows that. Such a backend is judged on its configured address
//!   alone, so one failing there is down.
//! - A reboot (boot id changed) is contributing `host_rebooted`: it is why addresses changed, or
//!   why a backend is not back yet, but it is not what the proxy fails on.
//! - Otherwise, e.g. every backend answers like before (then the proxy itself is at fault), the
//!   rule says nothing and the generic outcome stands.

use std::borrow::Cow;
use std::ptr;

use crate::{
    BackendIdentity, BackendState, Cause, CheckResult, Diagnosis, DirectOutcome, DirectResult,
    FailureKind, Sighting, SightingBy,
};

/// The statuses a proxy answers with when its backend fails it.
const GATEWAY_STATUSES: [u16; 3] = [502, 503, 504];

/// What the evidence proves about one backend.
enum Verdict<'a> {
    /// The backend, what it was, and where it is seen now.
    Moved(&'a BackendState, &'a BackendIdentity, Cow<'a, Sighting>),
    Down(&'a BackendState),
}

/// The diagnosis of a check whose proxy failed because of its backends; `None` when the
/// evidence proves neither a move nor a backend down (or the failure is not the proxy's answer).
pub(super) fn classify(check: &CheckResult) -> Option<Diagnosis> {
    let evidence = check.evidence.backends.as_ref()?;
    let opening = opening(check)?;
    let all = &evidence.backends;
    let verdicts: Vec<Verdict<'_>> = all.iter().filter_map(|b| verdict(b, all)).collect();
    let moves = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Moved(..)))
        .count();
    let down = verdicts.len() > moves;
    let cause = match (moves, down) {
        (0, false) => return None,
        (0, true) => Cause::UpstreamDown,
        _ => Cause::BadGatewayAfterIpShuffle,
    };
    let mut parts = vec![opening];
    parts.extend(verdicts.iter().map(|v| match v {
        Verdict::Moved(b, known, seen) => moved_text(b, known, seen, all),
        Verdict::Down(b) => down_text(b, all),
    }));
    let mut text = parts.join("; ");
    let stale = match moves {
        0 => None,
        1 => Some("the proxy still points at the old address"),
        _ => Some("the proxy still points at the old addresses"),
    };
    match (&evidence.reboot, stale) {
        (Some(r), Some(stale)) => text.push_str(&format!(". {}: {stale}", rebooted(r.uptime_s))),
        (Some(r), None) => text.push_str(&format!(". {}", rebooted(r.uptime_s))),
        (None, Some(stale)) => text.push_str(&format!("; {stale}")),
        (None, None) => {}
    }
    let mut found = super::diagnosis(cause, text);
    if evidence.reboot.is_some() {
        found.contributing.push(Cause::HostRebooted);
    }
    if moves > 0 && down {
        found.contributing.push(Cause::UpstreamDown);
    }
    Some(found)
}

/// How the failure reads when it is the proxy's doing, or `None` when it is not (a refused or
/// silent proxy keeps its own story, whatever its backends do).
fn opening(check: &CheckResult) -> Option<String> {
    match check.failure.as_ref()?.kind {
        FailureKind::UnexpectedStatus => check
            .status
            .filter(|s| GATEWAY_STATUSES.contains(s))
            .map(|s| format!("the proxy answered {s}")),
        FailureKind::BodyMismatch => Some(match &check.evidence.expected_text {
            Some(text) => format!("the page lacks the expected text {text:?}"),
            None => "the page lacks the expected text".to_owned(),
        }),
        _ => None,
    }
}

fn verdict<'a>(b: &'a BackendState, all: &'a [BackendState]) -> Option<Verdict<'a>> {
    if let Some(known) = &b.known
        && !b.direct.answers_like(known)
    {
        if let Some(seen) = b.seen_at.first() {
            return Some(Verdict::Moved(b, known, Cow::Borrowed(seen)));
        }
        if let Some(there) = answered_for(b, known, all) {
            return Some(Verdict::Moved(b, known, Cow::Owned(there)));
        }
    }
    failing(&b.direct).then_some(Verdict::Down(b))
}

/// Another backend's configured address answering now as `b` did while healthy: where `b` is.
/// Only when the two answered differently while healthy: replicas serving the same page prove
/// nothing by answering alike.
fn answered_for(
    b: &BackendState,
    known: &BackendIdentity,
    all: &[BackendState],
) -> Option<Sighting> {
    known.answer.as_ref()?;
    let other = all.iter().find(|o| {
        !ptr::eq(*o, b)
            && o.direct.answers_like(known)
            && o.known
                .as_ref()
                .is_some_and(|theirs| theirs.answer.is_some() && theirs.answer != known.answer)
    })?;
    Some(Sighting {
        address: other.configured.ip(),
        by: vec![SightingBy::Answer],
    })
}

/// Whether a direct request shows a backend that does not serve.
fn failing(direct: &DirectResult) -> bool {
    match direct.outcome {
        DirectOutcome::Answered => direct.answer.as_ref().is_some_and(|a| a.status >= 500),
        DirectOutcome::Refused | DirectOutcome::Timeout | DirectOutcome::Error => true,
    }
}

/// `backend app (10.88.0.12:80) moved to 10.88.0.15: same MAC 02:.., answers like before;
/// 10.88.0.12:80 now refuses connections (connection refused)`.
fn moved_text(
    b: &BackendState,
    known: &BackendIdentity,
    seen: &Sighting,
    all: &[BackendState],
) -> String {
    // A fixed order (strongest proof first), whatever order the probe listed them in.
    let proof: Vec<String> = SightingBy::ALL
        .into_iter()
        .filter(|by| seen.by.contains(by))
        .map(|by| match by {
            SightingBy::Mac => match &known.mac {
                Some(mac) => format!("same MAC {mac}"),
                None => "same MAC".to_owned(),
            },
            SightingBy::Name => match &b.name {
                Some(name) => format!("name {name} resolves there"),
                None => "its name resolves there".to_owned(),
            },
            SightingBy::Answer => "answers like before".to_owned(),
        })
        .collect();
    let proof = match proof.is_empty() {
        true => "its identity is seen there".to_owned(),
        false => proof.join(", "),
    };
    format!(
        "backend {} moved to {}: {proof}; {} now {}",
        b.who(),
        seen.address,
        b.configured,
        state(b, all)
    )
}

fn down_text(b: &BackendState, all: &[BackendState]) -> String {
    match (b.known.is_some(), b.seen_at.first()) {
        (true, _) => format!(
            "backend {} is still at its address but {}; its identity is seen nowhere else",
            b.who(),
            state(b, all)
        ),
        (false, None) => format!(
            "backend {} {}; no identity was learned while it was healthy",
            b.who(),
            state(b, all)
        ),
        (false, Some(seen)) => {
            let by: Vec<&str> = seen.by.iter().map(|by| by.id()).collect();
            format!(
                "backend {} {}; no identity was learned while it was healthy, so being seen at \
                 {} (by {}) proves no move",
                b.who(),
                state(b, all),
                seen.address,
                by.join(", ")
            )
        }
    }
}

/// What the configured address of `b` does now: `refuses connections (connection refused)`,
/// `answers like dev (10.88.0.15:80) did`, ...
fn state(b: &BackendState, all: &[BackendState]) -> String {
    let direct = &b.direct;
    let detail = |default: String| direct.detail.clone().unwrap_or(default);
    match direct.outcome {
        DirectOutcome::Refused => format!(
            "refuses connections ({})",
            detail("connection refused".to_owned())
        ),
        DirectOutcome::Timeout => format!(
            "does not answer ({})",
            detail(format!("no response in {:.0} ms", direct.elapsed_ms))
        ),
        DirectOutcome::Error => format!("fails ({})", detail("error".to_owned())),
        DirectOutcome::Answered => {
            let Some(now) = &direct.answer else {
                return "answers otherwise".to_owned();
            };
            // Another backend's page at this address: the two traded places.
            let like = all.iter().find(|o| {
                !ptr::eq(*o, b) && o.known.as_ref().and_then(|k| k.answer.as_ref()) == Some(now)
            });
            match like {
                Some(other) => format!("answers like {} did", other.who()),
                None if now.status >= 500 => format!("answers HTTP {}", now.status),
                None => format!(
                    "answers otherwise (HTTP {}, {} bytes)",
                    now.status, now.body_len
                ),
            }
        }
    }
}

/// `The host rebooted (boot id changed, up 42 s)`.
fn rebooted(uptime_s: u64) -> String {
    format!("The host rebooted (boot id changed, up {uptime_s} s)")
}
