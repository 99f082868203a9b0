//! Failed TLS handshakes explained from what the TLS library said and the chain as served.
//! A reset during the handshake is the packets' story ([`super::resets`]): who sent it is told
//! by its TTL.
//!
//! A certificate's dates are judged by the probe's clock, and a wrong clock looks exactly like
//! an expired (or not yet valid) certificate. The probe cannot tell the two apart; the
//! collector can, with its own clock: [`clock_verdict`] is what it adds.

use crate::{Cause, CertificateSummary, CheckResult, FailureKind, TlsEvidence, TlsFailure};
use crate::{compact_duration, rfc3339};

/// The cause and explanation of a handshake that failed on its certificate or its
/// parameters; `None` leaves resets to the packets and the rest to `tls_error`.
pub(super) fn classify(check: &CheckResult) -> Option<(Cause, String)> {
    let failure = check.failure.as_ref()?;
    if failure.kind != FailureKind::Tls {
        return None;
    }
    let tls = check.evidence.tls.as_ref()?;
    let target = super::target(check);
    let at = check.started_at_ms;
    let msg = &failure.message;
    match tls.failure? {
        TlsFailure::CertificateExpired => {
            let (i, c) = out_of_dates(tls, |c| c.not_after_ms < at)?;
            Some((
                Cause::TlsCertificateExpired,
                format!(
                    "{target}: certificate #{i} {} expired at {}, {} before the check by the \
                     probe's clock ({}); renew it (a probe clock that runs ahead looks the same)",
                    c.subject,
                    rfc3339(c.not_after_ms),
                    compact_duration(at - c.not_after_ms),
                    rfc3339(at)
                ),
            ))
        }
        TlsFailure::CertificateNotYetValid => {
            let (i, c) = out_of_dates(tls, |c| c.not_before_ms > at)?;
            Some((
                Cause::TlsCertificateNotYetValid,
                format!(
                    "{target}: certificate #{i} {} is valid from {}, {} after the check by the \
                     probe's clock ({}); a certificate issued with a start in the future, or a \
                     probe clock that runs behind",
                    c.subject,
                    rfc3339(c.not_before_ms),
                    compact_duration(c.not_before_ms - at),
                    rfc3339(at)
                ),
            ))
        }
        TlsFailure::NameMismatch => {
            let leaf = tls.chain.first()?;
            let covers = match leaf.names.as_slice() {
                [] => "no names (no subject alternative names)".to_owned(),
                names => names.join(", "),
            };
            Some((
                Cause::TlsNameMismatch,
                format!(
                    "{target}: the certificate {} covers {covers}, not {:?}, the name asked for; \
                     the server sent the certificate of another site (a missing server_name or \
                     a default server), or the certificate lacks the name",
                    leaf.subject, tls.sni
                ),
            ))
        }
        TlsFailure::UnknownIssuer => Some(untrusted(&target, tls)?),
        TlsFailure::ProtocolMismatch => Some((
            Cause::TlsProtocolMismatch,
            format!(
                "{target} and the probe share no TLS version or cipher suite ({msg}); the \
                 probe offers TLS 1.3 and 1.2 with ECDHE and AEAD suites: the server accepts \
                 only older ones"
            ),
        )),
        // Without a trace (a trace is the resets' story) the reset is still the handshake's.
        TlsFailure::Reset if check.evidence.trace.is_none() => Some((
            Cause::TlsHandshakeReset,
            format!(
                "{target} reset the connection during the TLS handshake ({msg}); without a \
                 packet capture, whether the server or a device on the path sent the reset is \
                 not known"
            ),
        )),
        _ => None,
    }
}

/// The first certificate of the chain (leaf first) that `outside` says is out of its dates,
/// with its place in the chain.
fn out_of_dates(
    tls: &TlsEvidence,
    outside: impl Fn(&CertificateSummary) -> bool,
) -> Option<(usize, &CertificateSummary)> {
    tls.chain.iter().enumerate().find(|(_, c)| outside(c))
}

/// An unknown issuer: the intermediate left out, or a chain no trusted root issued.
fn untrusted(target: &str, tls: &TlsEvidence) -> Option<(Cause, String)> {
    let leaf = tls.chain.first()?;
    if tls.issuer_missing() {
        let served = match tls.chain.len() {
            1 => "only its own certificate".to_owned(),
            n => format!("{n} certificates"),
        };
        return Some((
            Cause::TlsIncompleteChain,
            format!(
                "{target} sent {served}, without the one that issued it: {} is issued by {}, \
                 which the server did not send and no trusted root is. Browsers often cope \
                 (they cache intermediates or fetch them); curl, API clients and the probe do \
                 not: serve the full chain (the leaf, then its intermediates). If {} is a \
                 private root, trust it with ca_file instead",
                leaf.subject, leaf.issuer, leaf.issuer
            ),
        ));
    }
    let last = tls.chain.last().unwrap_or(leaf);
    let story = if tls.chain.len() == 1 && leaf.issuer == leaf.subject {
        format!("sent a self-signed certificate, {}", leaf.subject)
    } else {
        format!(
            "sent a chain of {} that ends at {}, which no trusted root issued",
            tls.chain.len(),
            last.issuer
        )
    };
    Some((
        Cause::TlsUntrustedChain,
        format!(
            "{target} {story}; a private CA is trusted with the canary's ca_file, otherwise \
             serve a certificate from a public CA"
        ),
    ))
}

/// For a check whose certificate was out of its dates by the probe's clock: what the
/// collector's clock says, given the probe's clock was `offset_ms` ahead of it (behind when
/// negative) when the report was sent. The sentence to add to the explanation, and whether
/// the probe's clock is the more likely cause (the certificate is within its dates by the
/// collector's clock).
pub fn clock_verdict(check: &CheckResult, offset_ms: i64) -> Option<(String, bool)> {
    let cause = check.diagnosis.as_ref()?.cause;
    let tls = check.evidence.tls.as_ref()?;
    let probe_at = check.started_at_ms;
    let collector_at = probe_at.saturating_sub(offset_ms);
    let (i, c) = match cause {
        Cause::TlsCertificateExpired => out_of_dates(tls, |c| c.not_after_ms < probe_at)?,
        Cause::TlsCertificateNotYetValid => out_of_dates(tls, |c| c.not_before_ms > probe_at)?,
        _ => return None,
    };
    let valid_then = c.not_before_ms <= collector_at && collector_at <= c.not_after_ms;
    // Under a second apart is the network's delay, not the clock.
    let offset = match offset_ms {
        o if o.abs() < 1000 => "agrees with the collector's".to_owned(),
        o if o > 0 => format!("is {} ahead of the collector's", offset_text(o)),
        o => format!("is {} behind the collector's", offset_text(-o)),
    };
    Some(if valid_then {
        (
            format!(
                "the probe's clock {offset}, by which certificate #{i} is within its dates \
                 ({}): the probe host's clock is the more likely cause (see clock_skew)",
                rfc3339(collector_at)
            ),
            true,
        )
    } else {
        (
            format!(
                "the probe's clock {offset}, by which certificate #{i} is out of its dates \
                 too ({}): the certificate is the cause, not the clock",
                rfc3339(collector_at)
            ),
            false,
        )
    })
}

/// `12.5s`, `4m`, `400d`: under a minute to the tenth of a second.
fn offset_text(ms: i64) -> String {
    if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        compact_duration(ms)
    }
}
