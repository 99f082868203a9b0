//! The validated configuration that the rest of the probe reads: typed values, every default
//! filled in, every URL taken apart once.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use super::HostConfig;
pub use causeway_schema::ServingRule;
use causeway_schema::{CanaryName, ServerName, format_duration};

/// A validated configuration.
#[derive(Clone, PartialEq)]
pub struct Config {
    /// The collector's base URL, without a trailing slash.
    pub collector_url: String,
    /// PEM certificates (`collector_ca_file`) that alone are trusted for an https collector:
    /// a private CA, or the collector's own self-signed certificate.
    pub collector_ca: Option<Vec<u8>>,
    /// The bearer token for the collector (from `token` or the contents of `token_file`).
    pub token: String,
    /// The server the reports are for.
    pub server: ServerName,
    /// The name of the host the probe runs on (for `ProbeInfo.host`).
    pub host: String,
    pub interval: Duration,
    /// The default per-check timeout.
    pub timeout: Duration,
    pub spool_dir: PathBuf,
    pub spool_max_reports: u64,
    /// Where the probe's state file lives (backend identities, the last boot id).
    pub state_dir: PathBuf,
    pub resolvers: Vec<ResolverSpec>,
    /// How long each DNS query, and each reachability test of a silent resolver, may take.
    pub dns_timeout: Duration,
    /// Whether to capture the packets of the probe's connections (needs CAP_NET_RAW).
    pub capture: bool,
    /// How often the listeners on the ports of canaries served on this host are looked at while
    /// a check is in flight (between checks: every 10 s, `host::listeners::IDLE_POLL`).
    pub listener_poll: Duration,
    /// How the probe watches its own host (`[host]`).
    pub host_watch: HostConfig,
    pub canaries: Vec<Canary>,
}

// The token is a secret: keep it out of logs and panics.
impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("collector_url", &self.collector_url)
            .field("collector_ca", &self.collector_ca.as_ref().map(Vec::len))
            .field("token", &"<redacted>")
            .field("server", &self.server)
            .field("host_watch", &self.host_watch)
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .field("spool_dir", &self.spool_dir)
            .field("spool_max_reports", &self.spool_max_reports)
            .field("state_dir", &self.state_dir)
            .field("resolvers", &self.resolvers)
            .field("dns_timeout", &self.dns_timeout)
            .field("host_watch", &self.host_watch)
            .field("canaries", &self.canaries)
            .finish()
    }
}

/// One configured resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverSpec {
    /// As written in the config (`system`, `10.0.0.53`, `[::1]:5353`): reports name it so.
    pub label: String,
    pub kind: ResolverKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResolverKind {
    /// Every `nameserver` of /etc/resolv.conf, each asked on its own.
    System,
    /// One name server.
    Server(SocketAddr),
}

/// One canary site to request.
#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    pub name: CanaryName,
    /// The URL as configured, for reports.
    pub url: String,
    pub target: Target,
    pub expect_status: u16,
    pub expect_text: Option<String>,
    pub timeout: Duration,
    /// Which process serves the canary's port when it is on this host.
    pub serving: ServingRule,
    /// How an https canary's certificate is checked.
    pub tls: CanaryTls,
    /// The backends behind the canary's reverse proxy, as the proxy reaches them.
    pub backends: Vec<Backend>,
}

/// An https canary's own TLS settings; the defaults check the URL's host against the
/// platform's roots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryTls {
    /// PEM certificates (`ca_file`) that alone are trusted for this canary: a private CA.
    pub ca: Option<CaFile>,
    /// The name sent (SNI) and checked against the certificate instead of the URL's host
    /// (`tls_server_name`): a canary requested by address, or through another name.
    pub server_name: Option<String>,
    /// A certificate of the chain expiring within this many days is the condition
    /// `tls_expiry_warning` (`tls_warn_days`).
    pub warn_days: u16,
    /// ... and within this many, `tls_expiry_critical` (`tls_critical_days`).
    pub critical_days: u16,
}

impl Default for CanaryTls {
    fn default() -> CanaryTls {
        CanaryTls {
            ca: None,
            server_name: None,
            warn_days: DEFAULT_TLS_WARN_DAYS,
            critical_days: DEFAULT_TLS_CRITICAL_DAYS,
        }
    }
}

/// A canary's `ca_file`: its certificates, and the verifier built from them once, when the
/// config is read (not on every check). Configs compare by the file's bytes.
#[derive(Debug, Clone)]
pub struct CaFile {
    pub pem: Vec<u8>,
    pub setup: std::sync::Arc<crate::checks::tls::TlsSetup>,
}

impl CaFile {
    /// The verifier trusting `pem`'s certificates alone.
    pub fn from_pem(pem: Vec<u8>) -> Result<CaFile, rustls::Error> {
        let setup = crate::checks::tls::TlsSetup::with_roots(&pem)?;
        Ok(CaFile {
            pem,
            setup: std::sync::Arc::new(setup),
        })
    }
}

impl PartialEq for CaFile {
    fn eq(&self, other: &CaFile) -> bool {
        self.pem == other.pem
    }
}

impl Eq for CaFile {}

/// `tls_warn_days` when not set: two weeks, time to renew by hand.
pub const DEFAULT_TLS_WARN_DAYS: u16 = 14;
/// `tls_critical_days` when not set.
pub const DEFAULT_TLS_CRITICAL_DAYS: u16 = 3;
/// The largest `tls_warn_days`: a year (certificates live at most 398 days).
pub const MAX_TLS_WARN_DAYS: u16 = 365;

/// One backend of a canary's proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// The address the proxy is configured with.
    pub address: std::net::SocketAddr,
    /// A DNS name that should resolve to the backend, if any: its answer is part of the
    /// backend's identity.
    pub name: Option<String>,
}

/// Where a canary's request goes, taken apart once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tls: bool,
    pub host: TargetHost,
    pub port: u16,
    /// The request target: path and query (`/health?x=1`).
    pub path_and_query: String,
    /// The `Host` header: the host, with the port when it is not the scheme's default.
    pub host_header: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetHost {
    /// A DNS name (lower case, IDNA-encoded), resolved through every resolver.
    Name(String),
    /// An IP literal: requested as is, no resolution.
    Ip(IpAddr),
}

impl fmt::Display for TargetHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetHost::Name(name) => f.write_str(name),
            TargetHost::Ip(ip) => ip.fmt(f),
        }
    }
}

impl Config {
    /// One line for `check-config`: `3 canaries, 2 resolvers, interval 30s`.
    pub fn summary(&self) -> String {
        format!(
            "{} {}, {} {}, interval {}",
            self.canaries.len(),
            plural(self.canaries.len(), "canary", "canaries"),
            self.resolvers.len(),
            plural(self.resolvers.len(), "resolver", "resolvers"),
            format_duration(self.interval)
        )
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}
