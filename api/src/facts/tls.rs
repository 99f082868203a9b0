//! The TLS handshake of a failed https check in words: what was negotiated, which name was
//! asked for, and each certificate as served, with its dates against the check's time.

use causeway_schema::{CertificateSummary, TlsEvidence, compact_duration, expiry_in};

use super::{Fact, Part};
use crate::timefmt::rfc3339;
use crate::views::CertificateView;

/// A certificate a canary served, for the server's certificate list: `shop: CN=shop.example,
/// sha256 4f1c2a9e0b7d3c5a; chain expires 2027-02-01T00:00:00Z (in 56d); served
/// 2026-12-01T08:00:00Z .. 2026-12-07T10:00:00Z; new: it replaced the canary's previous
/// certificate`.
pub fn served_certificate(c: &CertificateView, now_ms: i64) -> Vec<Part> {
    let when = expiry_in(c.chain_not_after_ms - now_ms);
    let new = if c.replaced_another {
        "; new: it replaced the canary's previous certificate"
    } else {
        ""
    };
    let short: String = c.sha256.chars().take(16).collect();
    vec![
        Part::code(&c.canary),
        Part::words(": "),
        Part::code(&c.subject),
        Part::words(", sha256 "),
        Part::code(short),
        Part::words(format!(
            "; chain expires {} ({when}); served {} .. {}{new}",
            rfc3339(c.chain_not_after_ms),
            rfc3339(c.first_seen_at_ms),
            rfc3339(c.last_seen_at_ms),
        )),
    ]
}

/// `tls`: the handshake, then a `certificate` fact per certificate served, leaf first.
pub fn tls_facts(tls: &TlsEvidence, checked_at_ms: i64) -> Vec<Fact> {
    let negotiated = match (&tls.version, &tls.cipher_suite) {
        (Some(v), Some(c)) => format!("{v}, {c}"),
        (Some(v), None) => v.clone(),
        _ => match tls.failure {
            Some(f) => format!("the handshake failed ({})", f.id()),
            None => "the handshake did not finish".to_owned(),
        },
    };
    let alpn = tls
        .alpn
        .as_ref()
        .map_or(String::new(), |a| format!(", ALPN {a}"));
    let served = match tls.chain.len() {
        0 => "; no certificate arrived".to_owned(),
        1 => "; 1 certificate served".to_owned(),
        n => format!("; {n} certificates served"),
    };
    let mut facts = vec![Fact::new(
        "tls",
        vec![
            Part::words(format!("{negotiated}{alpn}; asked for ")),
            Part::code(&tls.sni),
            Part::words(served),
        ],
    )];
    for (i, c) in tls.chain.iter().enumerate() {
        facts.push(Fact::new("certificate", certificate(i, c, checked_at_ms)));
    }
    facts
}

/// `#0 CN=canary.example, issued by CN=Lab CA; for canary.example, www.canary.example; valid
/// 2026-01-01T00:00:00Z to 2026-04-01T00:00:00Z, expired 3d before the check; RSA 2048;
/// sha256 4f1c...`.
fn certificate(i: usize, c: &CertificateSummary, at_ms: i64) -> Vec<Part> {
    let names = if c.names.is_empty() {
        "no names (subject alternative names)".to_owned()
    } else {
        format!("for {}", c.names.join(", "))
    };
    let state = if at_ms < c.not_before_ms {
        format!(
            "not valid for another {}",
            compact_duration(c.not_before_ms - at_ms)
        )
    } else if at_ms > c.not_after_ms {
        format!(
            "expired {} before the check",
            compact_duration(at_ms - c.not_after_ms)
        )
    } else {
        format!(
            "expires {} after the check",
            compact_duration(c.not_after_ms - at_ms)
        )
    };
    vec![
        Part::words(format!("#{i} ")),
        Part::code(&c.subject),
        Part::words(", issued by "),
        Part::code(&c.issuer),
        Part::words(format!(
            "; {names}; valid {} to {}, {state}; {}; sha256 ",
            rfc3339(c.not_before_ms),
            rfc3339(c.not_after_ms),
            c.key
        )),
        Part::code(&c.sha256),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::plain;

    const DAY: i64 = 86_400_000;
    /// 2026-11-23T00:00:00Z.
    const AT: i64 = 1_795_392_000_000;

    fn cert(not_before_ms: i64, not_after_ms: i64) -> CertificateSummary {
        CertificateSummary {
            sha256: "ab".repeat(32),
            subject: "CN=canary.example".into(),
            issuer: "CN=Lab CA".into(),
            names: vec!["canary.example".into(), "10.88.0.2".into()],
            not_before_ms,
            not_after_ms,
            key: "EC 256".into(),
        }
    }

    #[test]
    fn the_handshake_and_each_certificate_against_the_checks_time() {
        let tls = TlsEvidence {
            sni: "canary.example".into(),
            version: Some("TLSv1.3".into()),
            cipher_suite: Some("TLS13_AES_256_GCM_SHA384".into()),
            alpn: Some("http/1.1".into()),
            handshake_ms: Some(1.5),
            chain: vec![
                cert(AT - 90 * DAY, AT - 3 * DAY),
                cert(AT + 2 * DAY, AT + 9 * DAY),
            ],
            failure: None,
        };
        let facts: Vec<String> = tls_facts(&tls, AT).iter().map(|f| f.plain()).collect();
        assert_eq!(
            facts,
            [
                "tls: TLSv1.3, TLS13_AES_256_GCM_SHA384, ALPN http/1.1; asked for canary.example; \
                 2 certificates served"
                    .to_owned(),
                format!(
                    "certificate: #0 CN=canary.example, issued by CN=Lab CA; for canary.example, \
                     10.88.0.2; valid 2026-08-25T00:00:00Z to 2026-11-20T00:00:00Z, expired 3d \
                     before the check; EC 256; sha256 {}",
                    "ab".repeat(32)
                ),
                format!(
                    "certificate: #1 CN=canary.example, issued by CN=Lab CA; for canary.example, \
                     10.88.0.2; valid 2026-11-25T00:00:00Z to 2026-12-02T00:00:00Z, not valid \
                     for another 2d; EC 256; sha256 {}",
                    "ab".repeat(32)
                ),
            ]
        );
    }

    #[test]
    fn a_served_certificate_with_its_expiry_and_whether_it_replaced_another() {
        let c = CertificateView {
            canary: "shop".into(),
            url: "https://shop.example/".into(),
            sha256: "4f1c2a9e0b7d3c5a".repeat(4),
            subject: "CN=shop.example".into(),
            not_after_ms: AT + 90 * DAY,
            chain_not_after_ms: AT + 10 * DAY,
            first_seen_at_ms: AT - 2 * DAY,
            last_seen_at_ms: AT,
            replaced_another: true,
        };
        assert_eq!(
            plain(&served_certificate(&c, AT)),
            "shop: CN=shop.example, sha256 4f1c2a9e0b7d3c5a; chain expires \
             2026-12-03T00:00:00Z (in 10d); served 2026-11-21T00:00:00Z .. \
             2026-11-23T00:00:00Z; new: it replaced the canary's previous certificate"
        );
        let first = CertificateView {
            replaced_another: false,
            ..c
        };
        assert!(
            plain(&served_certificate(&first, AT + 11 * DAY)).contains("(expired 1d ago); served")
        );
    }

    #[test]
    fn a_handshake_that_did_not_finish_says_so() {
        let tls = TlsEvidence {
            sni: "canary.example".into(),
            chain: vec![cert(AT - DAY, AT + 10 * DAY)],
            ..TlsEvidence::default()
        };
        let facts = tls_facts(&tls, AT);
        assert_eq!(
            plain(&facts[0].text),
            "the handshake did not finish; asked for canary.example; 1 certificate served"
        );
        assert!(plain(&facts[1].text).contains("expires 10d after the check"));
        let refused = TlsEvidence {
            failure: Some(causeway_schema::TlsFailure::UnknownIssuer),
            ..tls
        };
        assert_eq!(
            plain(&tls_facts(&refused, AT)[0].text),
            "the handshake failed (unknown_issuer); asked for canary.example; 1 certificate served"
        );
        let none = tls_facts(&TlsEvidence::default(), AT);
        assert_eq!(none.len(), 1);
        assert!(plain(&none[0].text).ends_with("no certificate arrived"));
    }
}
