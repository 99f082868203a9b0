//! The TLS side of an https check: a client config per handshake whose verifier records the
//! chain as the server sent it (trusted or not) before judging it, and the summary of what
//! was negotiated, for the evidence of a failed check.

use std::sync::{Arc, Mutex};

use causeway_schema::{CertificateSummary, TLS_CHAIN_MAX, TLS_NAMES_MAX, TlsEvidence, TlsFailure};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// The chain a server sent in one handshake, leaf first, filled by [`Recorder`].
pub type SeenChain = Arc<Mutex<Vec<CertificateDer<'static>>>>;

/// What every https check of the probe verifies with: built once (loading the platform's
/// roots is not free), then wrapped per handshake.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    provider: Arc<CryptoProvider>,
    verifier: Arc<dyn ServerCertVerifier>,
}

impl TlsSetup {
    /// The platform's verifier (its roots, its revocation checks where it has them).
    pub fn platform() -> Result<TlsSetup, rustls::Error> {
        // The provider is named here rather than taken from the process default, so the check
        // does not depend on main having installed one.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls_platform_verifier::Verifier::new(provider.clone())?;
        Ok(TlsSetup {
            provider,
            verifier: Arc::new(verifier),
        })
    }

    /// Only these PEM certificates trusted (a canary's `ca_file`).
    pub fn with_roots(pem: &[u8]) -> Result<TlsSetup, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in pem_certificates(pem) {
            roots.add(cert)?;
        }
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        Ok(TlsSetup { provider, verifier })
    }

    /// A config for one handshake, and the slot its verifier fills with the chain served.
    pub fn for_handshake(&self) -> Result<(Arc<ClientConfig>, SeenChain), rustls::Error> {
        let seen = SeenChain::default();
        let recorder = Recorder {
            inner: self.verifier.clone(),
            seen: seen.clone(),
        };
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(recorder))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok((Arc::new(config), seen))
    }
}

/// The certificates of a PEM file; blocks that are not certificates are passed over.
pub fn pem_certificates(pem: &[u8]) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect()
}

/// Keeps the chain, then lets the real verifier judge it: the verdict is the real one.
#[derive(Debug)]
struct Recorder {
    inner: Arc<dyn ServerCertVerifier>,
    seen: SeenChain,
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain = std::iter::once(end_entity)
            .chain(intermediates)
            .take(TLS_CHAIN_MAX)
            .map(|c| c.clone().into_owned())
            .collect();
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = chain;
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// What a failed handshake's error says, in the schema's terms. tokio-rustls hands rustls's
/// error over inside an `io::Error`; a reset or a close comes as the socket's own error.
pub fn failure_of(e: &std::io::Error) -> TlsFailure {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error};
    use std::io::ErrorKind;
    let tls = e.get_ref().and_then(|inner| inner.downcast_ref::<Error>());
    match tls {
        Some(Error::InvalidCertificate(c)) => match c {
            Cert::Expired | Cert::ExpiredContext { .. } => TlsFailure::CertificateExpired,
            Cert::NotValidYet | Cert::NotValidYetContext { .. } => {
                TlsFailure::CertificateNotYetValid
            }
            Cert::NotValidForName | Cert::NotValidForNameContext { .. } => TlsFailure::NameMismatch,
            Cert::UnknownIssuer => TlsFailure::UnknownIssuer,
            _ => TlsFailure::BadCertificate,
        },
        Some(Error::PeerIncompatible(_)) => TlsFailure::ProtocolMismatch,
        // What a server says when it shares no version or suite with the client.
        Some(Error::AlertReceived(
            Alert::HandshakeFailure | Alert::ProtocolVersion | Alert::InsufficientSecurity,
        )) => TlsFailure::ProtocolMismatch,
        Some(Error::AlertReceived(_)) => TlsFailure::Alert,
        Some(_) => TlsFailure::Other,
        None => match e.kind() {
            ErrorKind::ConnectionReset => TlsFailure::Reset,
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionAborted => TlsFailure::Closed,
            _ => TlsFailure::Other,
        },
    }
}

/// The evidence of one handshake: `connection` when it finished, the chain the verifier saw
/// either way, and `failure` when it did not finish.
pub fn evidence(
    sni: String,
    connection: Option<&ClientConnection>,
    handshake_ms: Option<f64>,
    seen: &SeenChain,
    failure: Option<TlsFailure>,
) -> TlsEvidence {
    let chain = seen.lock().unwrap_or_else(|e| e.into_inner());
    TlsEvidence {
        sni,
        version: connection
            .and_then(|c| c.protocol_version())
            .map(|v| match v {
                rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
                rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
                other => format!("{other:?}"),
            }),
        cipher_suite: connection
            .and_then(|c| c.negotiated_cipher_suite())
            .map(|s| {
                let suite = s.suite();
                suite
                    .as_str()
                    .map_or_else(|| format!("{suite:?}"), str::to_owned)
            }),
        alpn: connection
            .and_then(|c| c.alpn_protocol())
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        handshake_ms,
        chain: chain.iter().map(|der| summary(der)).collect(),
        failure,
    }
}

/// One certificate in words. A certificate that cannot be parsed still has its fingerprint.
pub fn summary(der: &[u8]) -> CertificateSummary {
    let sha256 = Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return CertificateSummary {
            sha256,
            subject: "(not a certificate x509-parser can read)".to_owned(),
            ..CertificateSummary::default()
        };
    };
    let names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
                    x509_parser::extensions::GeneralName::IPAddress(ip) => ip_text(ip),
                    _ => None,
                })
                .take(TLS_NAMES_MAX)
                .collect()
        })
        .unwrap_or_default();
    let validity = cert.validity();
    CertificateSummary {
        sha256,
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        names,
        not_before_ms: validity.not_before.timestamp().saturating_mul(1000),
        not_after_ms: validity.not_after.timestamp().saturating_mul(1000),
        key: key_text(&cert),
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?).to_string()),
        _ => None,
    }
}

/// `RSA 2048`, `EC 256`, `Ed25519`.
fn key_text(cert: &x509_parser::certificate::X509Certificate<'_>) -> String {
    use x509_parser::public_key::PublicKey;
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(ec)) => format!("EC {}", ec.key_size()),
        _ => match spki.algorithm.algorithm.to_id_string().as_str() {
            "1.3.101.112" => "Ed25519".to_owned(),
            "1.3.101.113" => "Ed448".to_owned(),
            oid => format!("key {oid}"),
        },
    }
}
