//! TLS evidence of a failed https check: what was negotiated and the certificate chain as the
//! server sent it, leaf first. Recorded whether or not the chain was trusted, so a failed
//! handshake shows the certificate it failed on.

use serde::{Deserialize, Serialize};

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
    /// The certificates as served, leaf first; empty when none arrived.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<CertificateSummary>,
}

/// One certificate as served.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateSummary {
    /// The SHA-256 of its DER, lower-case hex: what tells two certificates apart.
    pub sha256: String,
    /// `CN=canary.example, O=Example` as written in the certificate.
    pub subject: String,
    pub issuer: String,
    /// The names it covers: `canary.example`, `*.example.org`, `10.0.0.1`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    pub not_before_ms: i64,
    pub not_after_ms: i64,
    /// `RSA 2048`, `EC 256`, `Ed25519`.
    pub key: String,
}
