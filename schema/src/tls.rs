//! TLS evidence of a failed https check: what was negotiated and the certificate chain as the
//! server sent it, leaf first. Recorded whether or not the chain was trusted, so a failed
//! handshake shows the certificate it failed on.

use serde::{Deserialize, Serialize};

use crate::newer::{self, NewerId};

/// The certificates kept per check: a server sending more is cut (the leaf and its issuers
/// come first).
pub const TLS_CHAIN_MAX: usize = 8;
/// The names (subject alternative names) kept per certificate.
pub const TLS_NAMES_MAX: usize = 32;

/// One https check's handshake.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsEvidence {
    /// The name sent in the ClientHello (SNI) and checked against the certificate; for a
    /// canary given by IP address, the address (no SNI is sent then).
    pub sni: String,
    /// `TLSv1.3`, `TLSv1.2`; `None` when the handshake did not finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// `TLS13_AES_256_GCM_SHA384`; `None` when the handshake did not finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cipher_suite: Option<String>,
    /// The application protocol agreed (ALPN), when the server chose one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpn: Option<String>,
    /// The handshake's duration, when it finished (also `timings.tls_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handshake_ms: Option<f64>,
    /// The certificates as served, leaf first; empty when none arrived. A healthy check
    /// keeps only each certificate's fingerprint, subject and dates (see
    /// [`TlsEvidence::compact`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<CertificateSummary>,
    /// Why the handshake failed, as the TLS library said it; `None` when it finished (or from
    /// probes that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<TlsFailure>,
}

impl TlsEvidence {
    /// What a healthy check keeps: the name asked for, the version and each certificate's
    /// fingerprint, subject and validity; enough to warn before an expiry and to tell when the
    /// certificate changed, at a tenth of the size.
    pub fn compact(&self) -> TlsEvidence {
        TlsEvidence {
            sni: self.sni.clone(),
            version: self.version.clone(),
            chain: self
                .chain
                .iter()
                .map(|c| CertificateSummary {
                    sha256: c.sha256.clone(),
                    subject: c.subject.clone(),
                    not_before_ms: c.not_before_ms,
                    not_after_ms: c.not_after_ms,
                    ..CertificateSummary::default()
                })
                .collect(),
            ..TlsEvidence::default()
        }
    }

    /// The certificate of the chain that expires first, when any was served.
    pub fn earliest_expiry(&self) -> Option<&CertificateSummary> {
        self.chain.iter().min_by_key(|c| c.not_after_ms)
    }

    /// Whether the served chain lacks the leaf's issuer: the leaf is not self-issued and no
    /// certificate after it has its issuer as subject (the intermediate was left out).
    pub fn issuer_missing(&self) -> bool {
        let Some((leaf, rest)) = self.chain.split_first() else {
            return false;
        };
        leaf.issuer != leaf.subject && !rest.iter().any(|c| c.subject == leaf.issuer)
    }
}

/// Why a TLS handshake failed, in the TLS library's terms (rustls's error, mapped by the
/// probe). The classifier turns it, with the chain and the packets, into a cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsFailure {
    /// A certificate's validity ended before the probe's clock.
    CertificateExpired,
    /// A certificate's validity starts after the probe's clock.
    CertificateNotYetValid,
    /// The leaf does not cover the name asked for.
    NameMismatch,
    /// No trusted root issued the chain (self-signed, a private CA, a missing intermediate).
    UnknownIssuer,
    /// Another certificate error: a bad signature, revoked, the wrong usage.
    BadCertificate,
    /// No version or cipher suite both sides support (the server's alert or rustls's own
    /// refusal).
    ProtocolMismatch,
    /// The server sent another alert.
    Alert,
    /// The connection was reset during the handshake.
    Reset,
    /// The connection was closed during the handshake.
    Closed,
    /// Anything else (the message says what).
    Other,
    /// A failure of a newer version, kept as it came.
    Newer(NewerId),
}

impl TlsFailure {
    pub const ALL: [TlsFailure; 10] = [
        TlsFailure::CertificateExpired,
        TlsFailure::CertificateNotYetValid,
        TlsFailure::NameMismatch,
        TlsFailure::UnknownIssuer,
        TlsFailure::BadCertificate,
        TlsFailure::ProtocolMismatch,
        TlsFailure::Alert,
        TlsFailure::Reset,
        TlsFailure::Closed,
        TlsFailure::Other,
    ];

    pub fn id(self) -> &'static str {
        match self {
            TlsFailure::CertificateExpired => "certificate_expired",
            TlsFailure::CertificateNotYetValid => "certificate_not_yet_valid",
            TlsFailure::NameMismatch => "name_mismatch",
            TlsFailure::UnknownIssuer => "unknown_issuer",
            TlsFailure::BadCertificate => "bad_certificate",
            TlsFailure::ProtocolMismatch => "protocol_mismatch",
            TlsFailure::Alert => "alert",
            TlsFailure::Reset => "reset",
            TlsFailure::Closed => "closed",
            TlsFailure::Other => "other",
            TlsFailure::Newer(id) => id.id(),
        }
    }
}

newer::wire_id!(TlsFailure, "TLS failure", Other);

/// One certificate as served.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateSummary {
    /// The SHA-256 of its DER, lower-case hex: what tells two certificates apart.
    pub sha256: String,
    /// `CN=canary.example, O=Example` as written in the certificate.
    pub subject: String,
    /// Empty in a healthy check's compact chain (as are `names` and `key`).
    pub issuer: String,
    /// The names it covers: `canary.example`, `*.example.org`, `10.0.0.1`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    /// `RSA 2048`, `EC 256`, `Ed25519`.
    pub key: String,
}
