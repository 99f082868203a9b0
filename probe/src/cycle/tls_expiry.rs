//! Certificate expiry as a condition before it is an outage: each https canary's chain as
//! served this cycle (healthy checks keep it, compact), against the canary's `tls_warn_days`
//! and `tls_critical_days`. The conditions travel with the host's, so the collector groups,
//! shows and alerts on them like the others.

use causeway_schema::{Cause, CertificateSummary, CheckResult, HostCondition, expiry_in, rfc3339};

use crate::config::Canary;

const DAY_MS: i64 = 86_400_000;

/// `tls_expiry_critical` and `tls_expiry_warning` for this cycle's `results` at `now_ms`, each
/// once, naming every canary it holds for (a canary counts once, at its worse level).
pub fn conditions(canaries: &[Canary], results: &[CheckResult], now_ms: i64) -> Vec<HostCondition> {
    let mut critical = Vec::new();
    let mut warning = Vec::new();
    for canary in canaries.iter().filter(|c| c.target.tls) {
        let Some(cert) = earliest(results, canary) else {
            continue;
        };
        let left = cert.not_after_ms - now_ms;
        let tls = &canary.tls;
        let level = if left <= i64::from(tls.critical_days) * DAY_MS {
            (&mut critical, tls.critical_days, "tls_critical_days")
        } else if left <= i64::from(tls.warn_days) * DAY_MS {
            (&mut warning, tls.warn_days, "tls_warn_days")
        } else {
            continue;
        };
        let (list, days, key) = level;
        list.push(Expiring {
            canary,
            cert,
            left,
            days,
            key,
        });
    }
    [
        (Cause::TlsExpiryCritical, critical),
        (Cause::TlsExpiryWarning, warning),
    ]
    .into_iter()
    .filter(|(_, list)| !list.is_empty())
    .map(|(cause, list)| HostCondition {
        cause,
        explanation: list
            .iter()
            .map(Expiring::sentence)
            .collect::<Vec<_>>()
            .join("; "),
        evidence: list.iter().map(Expiring::evidence).collect(),
    })
    .collect()
}

/// The certificate of `canary`'s chains this cycle (every address) that expires first.
fn earliest<'a>(results: &'a [CheckResult], canary: &Canary) -> Option<&'a CertificateSummary> {
    results
        .iter()
        .filter(|r| r.canary == canary.name)
        .filter_map(|r| r.evidence.tls.as_ref()?.earliest_expiry())
        .min_by_key(|c| c.not_after_ms)
}

struct Expiring<'a> {
    canary: &'a Canary,
    cert: &'a CertificateSummary,
    left: i64,
    days: u16,
    key: &'static str,
}

impl Expiring<'_> {
    /// `shop: CN=shop.example expires 2026-12-17T00:00:00Z, in 9d23h (tls_warn_days 14)`.
    fn sentence(&self) -> String {
        format!(
            "{}: {} expires {}, {} ({} {})",
            self.canary.name,
            self.cert.subject,
            rfc3339(self.cert.not_after_ms),
            expiry_in(self.left),
            self.key,
            self.days
        )
    }

    /// The same without the time left, so it stays the same from cycle to cycle (the
    /// collector stores a condition's evidence again only when it changes).
    fn evidence(&self) -> String {
        format!(
            "{} {}: {} not after {}, sha256 {}",
            self.canary.name,
            self.canary.url,
            self.cert.subject,
            rfc3339(self.cert.not_after_ms),
            self.cert.sha256
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use causeway_schema::{CanaryName, Evidence, Timings, TlsEvidence};

    /// 2026-12-07T00:00:00Z.
    const NOW: i64 = 1_796_601_600_000;

    fn canary(name: &str, url: &str) -> Canary {
        let canary = format!("[[canary]]\nname = \"{name}\"\nurl = \"{url}\"\n");
        crate::cycle::tests::config("[\"system\"]", &canary).canaries[0].clone()
    }

    fn check(canary: &str, not_after_ms: &[i64]) -> CheckResult {
        let chain = not_after_ms
            .iter()
            .enumerate()
            .map(|(i, &not_after_ms)| CertificateSummary {
                sha256: format!("{i}").repeat(64),
                subject: format!("CN=cert{i}"),
                not_before_ms: NOW - 80 * DAY_MS,
                not_after_ms,
                ..CertificateSummary::default()
            })
            .collect();
        CheckResult {
            canary: CanaryName::from(canary),
            url: String::new(),
            address: None,
            started_at_ms: NOW,
            ok: true,
            status: Some(200),
            timings: Timings::default(),
            failure: None,
            diagnosis: None,
            evidence: Evidence {
                tls: Some(TlsEvidence {
                    sni: "x".into(),
                    chain,
                    ..TlsEvidence::default()
                }),
                ..Evidence::default()
            },
        }
    }

    #[test]
    fn the_earliest_certificate_of_each_canary_against_its_days() {
        let canaries = [
            canary("shop", "https://shop.test/"),
            canary("blog", "https://blog.test/"),
            canary("api", "https://api.test/"),
            canary("plain", "http://plain.test/"),
        ];
        let results = [
            // shop: the leaf is fine, its intermediate expires in 10 days.
            check("shop", &[NOW + 60 * DAY_MS, NOW + 10 * DAY_MS]),
            // blog: one address serves an older certificate, 2 days from expiry.
            check("blog", &[NOW + 50 * DAY_MS]),
            check("blog", &[NOW + 2 * DAY_MS]),
            // api: a month left.
            check("api", &[NOW + 30 * DAY_MS]),
            check("plain", &[NOW]),
        ];
        let found = conditions(&canaries, &results, NOW);
        let causes: Vec<Cause> = found.iter().map(|c| c.cause).collect();
        assert_eq!(causes, [Cause::TlsExpiryCritical, Cause::TlsExpiryWarning]);
        assert_eq!(
            found[0].explanation,
            "blog: CN=cert0 expires 2026-12-09T00:00:00Z, in 2d (tls_critical_days 3)"
        );
        assert_eq!(
            found[1].explanation,
            "shop: CN=cert1 expires 2026-12-17T00:00:00Z, in 10d (tls_warn_days 14)"
        );
        assert_eq!(
            found[1].evidence,
            [format!(
                "shop https://shop.test/: CN=cert1 not after 2026-12-17T00:00:00Z, sha256 {}",
                "1".repeat(64)
            )]
        );
        // The day it expires and after: critical, saying so.
        let expired = conditions(&canaries[..1], &[check("shop", &[NOW - DAY_MS])], NOW);
        assert_eq!(
            expired[0].explanation,
            "shop: CN=cert0 expires 2026-12-06T00:00:00Z, expired 1d ago (tls_critical_days 3)"
        );
        assert!(conditions(&canaries, &results[3..], NOW).is_empty());
    }
}
