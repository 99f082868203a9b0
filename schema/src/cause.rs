//! The cause vocabulary: stable identifiers shown to users and used by `--json` consumers.
//!
//! Adding a cause is fine; renaming one is a breaking change (the ids are stored in every
//! collector's database and parsed by scripts), so each id is spelled out once, in [`Cause::ALL`]
//! order, and a unit test pins every spelling.

use std::fmt;
use std::str::FromStr;

use crate::newer::{self, NewerId};

/// Why a check failed, or a condition that contributed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cause {
    RstFromNonServingProcess,
    QueuedOnNonServingProcess,
    ConnectionRefused,
    RstFromMiddlebox,
    DnsUpstreamBlock,
    DnsResolverUnreachable,
    DnsAnswerMismatch,
    DnsNameMissing,
    BadGatewayAfterIpShuffle,
    UpstreamDown,
    OomKill,
    KernelMemoryLeak,
    HostOverload,
    HostRebooted,
    ClockSkew,
    Timeout,
    ConnectionReset,
    HttpError,
    TlsError,
    TlsCertificateExpired,
    TlsCertificateNotYetValid,
    TlsNameMismatch,
    TlsUntrustedChain,
    TlsIncompleteChain,
    TlsHandshakeReset,
    TlsSniFiltered,
    TlsProtocolMismatch,
    TlsExpiryWarning,
    TlsExpiryCritical,
    ContentMismatch,
    Unknown,
    /// A cause of a newer version, kept as it came (see [`crate::newer`]); where a known
    /// cause is needed it counts as [`Cause::Unknown`].
    Newer(NewerId),
}

impl Cause {
    /// Every cause, in the order of the vocabulary table in docs/causes.md.
    pub const ALL: [Cause; 31] = [
        Cause::RstFromNonServingProcess,
        Cause::QueuedOnNonServingProcess,
        Cause::ConnectionRefused,
        Cause::RstFromMiddlebox,
        Cause::DnsUpstreamBlock,
        Cause::DnsResolverUnreachable,
        Cause::DnsAnswerMismatch,
        Cause::DnsNameMissing,
        Cause::BadGatewayAfterIpShuffle,
        Cause::UpstreamDown,
        Cause::OomKill,
        Cause::KernelMemoryLeak,
        Cause::HostOverload,
        Cause::HostRebooted,
        Cause::ClockSkew,
        Cause::Timeout,
        Cause::ConnectionReset,
        Cause::HttpError,
        Cause::TlsError,
        Cause::TlsCertificateExpired,
        Cause::TlsCertificateNotYetValid,
        Cause::TlsNameMismatch,
        Cause::TlsUntrustedChain,
        Cause::TlsIncompleteChain,
        Cause::TlsHandshakeReset,
        Cause::TlsSniFiltered,
        Cause::TlsProtocolMismatch,
        Cause::TlsExpiryWarning,
        Cause::TlsExpiryCritical,
        Cause::ContentMismatch,
        Cause::Unknown,
    ];

    /// The stable snake_case id.
    pub fn id(self) -> &'static str {
        match self {
            Cause::RstFromNonServingProcess => "rst_from_non_serving_process",
            Cause::QueuedOnNonServingProcess => "queued_on_non_serving_process",
            Cause::ConnectionRefused => "connection_refused",
            Cause::RstFromMiddlebox => "rst_from_middlebox",
            Cause::DnsUpstreamBlock => "dns_upstream_block",
            Cause::DnsResolverUnreachable => "dns_resolver_unreachable",
            Cause::DnsAnswerMismatch => "dns_answer_mismatch",
            Cause::DnsNameMissing => "dns_name_missing",
            Cause::BadGatewayAfterIpShuffle => "bad_gateway_after_ip_shuffle",
            Cause::UpstreamDown => "upstream_down",
            Cause::OomKill => "oom_kill",
            Cause::KernelMemoryLeak => "kernel_memory_leak",
            Cause::HostOverload => "host_overload",
            Cause::HostRebooted => "host_rebooted",
            Cause::ClockSkew => "clock_skew",
            Cause::Timeout => "timeout",
            Cause::ConnectionReset => "connection_reset",
            Cause::HttpError => "http_error",
            Cause::TlsError => "tls_error",
            Cause::TlsCertificateExpired => "tls_certificate_expired",
            Cause::TlsCertificateNotYetValid => "tls_certificate_not_yet_valid",
            Cause::TlsNameMismatch => "tls_name_mismatch",
            Cause::TlsUntrustedChain => "tls_untrusted_chain",
            Cause::TlsIncompleteChain => "tls_incomplete_chain",
            Cause::TlsHandshakeReset => "tls_handshake_reset",
            Cause::TlsSniFiltered => "tls_sni_filtered",
            Cause::TlsProtocolMismatch => "tls_protocol_mismatch",
            Cause::TlsExpiryWarning => "tls_expiry_warning",
            Cause::TlsExpiryCritical => "tls_expiry_critical",
            Cause::ContentMismatch => "content_mismatch",
            Cause::Unknown => "unknown",
            Cause::Newer(id) => id.id(),
        }
    }

    /// This cause, or [`Cause::Unknown`] for one of a newer version.
    pub fn known(self) -> Cause {
        match self {
            Cause::Newer(_) => Cause::Unknown,
            known => known,
        }
    }

    /// One line for people: what this cause means, in the words an operator would use.
    pub fn summary(self) -> &'static str {
        match self {
            Cause::RstFromNonServingProcess => {
                "the connection was reset for a socket the serving process does not own"
            }
            Cause::QueuedOnNonServingProcess => {
                "the connection waited, unanswered, on a socket the serving process does not own"
            }
            Cause::ConnectionRefused => "nothing listens on the canary port: the SYN was refused",
            Cause::RstFromMiddlebox => "a reset came from a hop between the probe and the server",
            Cause::DnsUpstreamBlock => {
                "a reachable resolver refuses or ignores our queries while others answer"
            }
            Cause::DnsResolverUnreachable => "a resolver cannot be reached at all",
            Cause::DnsAnswerMismatch => "resolvers disagree about the canary's addresses",
            Cause::DnsNameMissing => "every resolver says the canary's name does not exist",
            Cause::BadGatewayAfterIpShuffle => {
                "the proxy answers 5xx because a backend moved to another address"
            }
            Cause::UpstreamDown => "the proxy answers 5xx because its backend does not serve",
            Cause::OomKill => "the kernel's OOM killer killed a process on the host",
            Cause::KernelMemoryLeak => "unreclaimable kernel memory is large and growing",
            Cause::HostOverload => "the host is saturated (CPU or memory pressure)",
            Cause::HostRebooted => "the host restarted since the last report",
            Cause::ClockSkew => "the probe host's clock disagrees with the collector's",
            Cause::Timeout => "the canary did not answer in time",
            Cause::ConnectionReset => "the connection was reset",
            Cause::HttpError => "the canary answered with an unexpected HTTP status",
            Cause::TlsError => "the TLS handshake with the canary failed",
            Cause::TlsCertificateExpired => {
                "a certificate the canary served had expired by the probe's clock"
            }
            Cause::TlsCertificateNotYetValid => {
                "a certificate the canary served is not valid yet by the probe's clock"
            }
            Cause::TlsNameMismatch => "the canary's certificate does not cover the name asked for",
            Cause::TlsUntrustedChain => {
                "no trusted root issued the canary's certificate (self-signed, a private CA)"
            }
            Cause::TlsIncompleteChain => {
                "the canary sent its certificate without the intermediate that issued it"
            }
            Cause::TlsHandshakeReset => "the server reset the connection after the ClientHello",
            Cause::TlsSniFiltered => {
                "a hop on the path reset the connection after the ClientHello named the canary"
            }
            Cause::TlsProtocolMismatch => {
                "the probe and the canary share no TLS version or cipher suite"
            }
            Cause::TlsExpiryWarning => "a canary's certificate expires within tls_warn_days",
            Cause::TlsExpiryCritical => "a canary's certificate expires within tls_critical_days",
            Cause::ContentMismatch => "the canary's page lacks the expected text",
            Cause::Unknown => "the check failed for a reason no evidence explains",
            Cause::Newer(_) => {
                "a cause this version of Causeway does not know (from a newer probe)"
            }
        }
    }
}

newer::wire_id!(Cause, "cause", Unknown);

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A cause id that is not in the vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cause id {0:?}; known ids: {known}", known = known_ids())]
pub struct UnknownCause(pub String);

fn known_ids() -> String {
    Cause::ALL.map(Cause::id).join(", ")
}

impl FromStr for Cause {
    type Err = UnknownCause;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Cause::ALL
            .into_iter()
            .find(|c| c.id() == s)
            .ok_or_else(|| UnknownCause(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/causes.md's vocabulary table lists every id with its meaning, in [`Cause::ALL`]'s
    /// order, so the manual cannot drift from the code.
    #[test]
    fn the_docs_list_every_cause_in_order() {
        let docs = include_str!("../../docs/causes.md");
        let listed: Vec<String> = docs
            .lines()
            .skip_while(|l| *l != "| id | meaning |")
            .skip(2)
            .take_while(|l| l.starts_with("| `"))
            .map(str::to_owned)
            .collect();
        let want: Vec<String> = Cause::ALL
            .iter()
            .map(|c| format!("| `{}` | {} |", c.id(), c.summary()))
            .collect();
        assert_eq!(listed, want);
    }

    /// The ids are a public contract: this list is the only other place they are spelled.
    #[test]
    fn ids_are_stable() {
        let ids: Vec<&str> = Cause::ALL.iter().map(|c| c.id()).collect();
        assert_eq!(
            ids,
            [
                "rst_from_non_serving_process",
                "queued_on_non_serving_process",
                "connection_refused",
                "rst_from_middlebox",
                "dns_upstream_block",
                "dns_resolver_unreachable",
                "dns_answer_mismatch",
                "dns_name_missing",
                "bad_gateway_after_ip_shuffle",
                "upstream_down",
                "oom_kill",
                "kernel_memory_leak",
                "host_overload",
                "host_rebooted",
                "clock_skew",
                "timeout",
                "connection_reset",
                "http_error",
                "tls_error",
                "tls_certificate_expired",
                "tls_certificate_not_yet_valid",
                "tls_name_mismatch",
                "tls_untrusted_chain",
                "tls_incomplete_chain",
                "tls_handshake_reset",
                "tls_sni_filtered",
                "tls_protocol_mismatch",
                "tls_expiry_warning",
                "tls_expiry_critical",
                "content_mismatch",
                "unknown",
            ]
        );
    }

    #[test]
    fn serde_id_and_from_str_agree_with_id() {
        for cause in Cause::ALL {
            let json = serde_json::to_string(&cause).unwrap();
            assert_eq!(json, format!("\"{}\"", cause.id()));
            assert_eq!(serde_json::from_str::<Cause>(&json).unwrap(), cause);
            assert_eq!(cause.id().parse::<Cause>().unwrap(), cause);
        }
    }

    #[test]
    fn unknown_id_lists_the_known_ones() {
        let err = "rst_from_nginx".parse::<Cause>().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("unknown cause id \"rst_from_nginx\""),
            "{msg}"
        );
        assert!(msg.contains("connection_refused"), "{msg}");
    }
}
