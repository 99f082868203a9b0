//! The probe's configuration: TOML, strict, validated into a typed [`Config`].
//!
//! Loading goes in three steps so that every mistake gets a message naming the key, the bad
//! value and what is allowed: (1) the text is parsed as a plain TOML table and every unknown key
//! is reported with the table it is in and the keys that table allows; (2) the table is
//! deserialized into a raw struct (type errors name the key path); (3) the raw values are
//! checked and converted, collecting every problem rather than stopping at the first.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use causeway_schema::{SERVER_NAME_RULE, is_valid_server_name};
use serde::Deserialize;

mod host;

pub use host::HostConfig;

/// Where `run` and `once` read their configuration unless told otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/causeway/probe.toml";
/// The spool directory unless configured.
pub const DEFAULT_SPOOL_DIR: &str = "/var/lib/causeway-probe/spool";
/// Where the host name comes from (the kernel's UTS name, as `hostname` prints it).
const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_SPOOL_MAX_REPORTS: u64 = 10_000;
const INTERVAL_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
const TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(60));
const SPOOL_MAX_RANGE: (u64, u64) = (10, 1_000_000);
const MAX_CANARY_NAME: usize = 128;
/// The longest canary URL the collector stores (schema validation allows 2048 characters).
const MAX_URL: usize = 2048;
/// A DNS name's limit (and the report's for a resolved name).
const MAX_HOST_NAME: usize = 253;
/// Most canaries: with at most `cycle::MAX_ADDRESSES` results each, a report stays under the
/// collector's limit of `causeway_schema::MAX_RESULTS` results.
pub const MAX_CANARIES: usize = 50;

const TOP_KEYS: &[&str] = &[
    "collector_url",
    "collector_ca_file",
    "token",
    "token_file",
    "server",
    "interval",
    "timeout",
    "spool_dir",
    "spool_max_reports",
    "state_dir",
    "resolvers",
    "dns_timeout",
    "capture",
    "listener_poll",
    "host",
    "canary",
];
const CANARY_KEYS: &[&str] = &[
    "name",
    "url",
    "expect_status",
    "expect_text",
    "timeout",
    "serving_unit",
    "serving_process",
    "backend",
];
const BACKEND_KEYS: &[&str] = &["address", "name"];
/// Where the probe keeps what it learned (backend identities, boot id) by default.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/causeway-probe";
/// Each DNS query and each reachability test of a resolver waits at most this long by default
/// (or the check timeout, when shorter): real resolvers answer in tens of milliseconds, and a
/// cycle waits for the slowest one.
const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(2);
const DNS_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(30));
const DEFAULT_LISTENER_POLL: Duration = Duration::from_millis(100);
const LISTENER_POLL_RANGE: (Duration, Duration) =
    (Duration::from_millis(20), Duration::from_secs(5));
/// The kernel keeps a process name (`comm`) in 16 bytes with its NUL: longer names never match.
const MAX_PROCESS_NAME: usize = 15;
const MAX_UNIT_NAME: usize = 256;

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
    pub server: String,
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

/// How the serving process of a canary's port is recognised among its listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServingRule {
    /// The listeners owned by processes of this systemd unit (`nginx.service`).
    Unit(String),
    /// The listeners owned by processes with this name (`/proc/PID/comm`).
    Process(String),
    /// The listeners of the longest-running owner of the port (default).
    LongLived,
}

/// One canary site to request.
#[derive(Debug, Clone, PartialEq)]
pub struct Canary {
    pub name: String,
    /// The URL as configured, for reports.
    pub url: String,
    pub target: Target,
    pub expect_status: u16,
    pub expect_text: Option<String>,
    pub timeout: Duration,
    /// Which process serves the canary's port when it is on this host.
    pub serving: ServingRule,
    /// The backends behind the canary's reverse proxy, as the proxy reaches them.
    pub backends: Vec<Backend>,
}

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

impl TargetHost {
    /// The host as it appears in the TLS server name and in messages.
    pub fn as_server_name(&self) -> String {
        match self {
            TargetHost::Name(n) => n.clone(),
            TargetHost::Ip(ip) => ip.to_string(),
        }
    }
}

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The key path (`canary[0].timeout`), empty for a TOML syntax error.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} problem(s) in the config:\n{}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl ConfigError {
    /// Every problem, one per line, for people.
    pub fn problems(&self) -> Vec<String> {
        match self {
            ConfigError::Read { source, .. } => vec![format!("cannot read the file: {source}")],
            ConfigError::Invalid(problems) => problems.iter().map(ToString::to_string).collect(),
        }
    }
}

/// What validation needs from the host, passed in so tests choose it.
#[derive(Debug, Clone, Default)]
pub struct HostInfo {
    /// The host's name, when it could be read.
    pub hostname: Option<String>,
}

impl HostInfo {
    /// Reads the host name from the kernel.
    pub fn current() -> Self {
        let hostname = std::fs::read_to_string(HOSTNAME_FILE)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        HostInfo { hostname }
    }
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &HostInfo::current())
    }

    /// Parses and validates config text. `token_file`, when set, is read here.
    pub fn parse(text: &str, host: &HostInfo) -> Result<Config, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            ConfigError::Invalid(vec![Problem {
                key: String::new(),
                message: format!("not valid TOML: {}", e.to_string().trim_end()),
            }])
        })?;
        let unknown = unknown_keys(&table);
        if !unknown.is_empty() {
            return Err(ConfigError::Invalid(unknown));
        }
        let raw: RawConfig = serde_path_to_error::deserialize(table).map_err(|e| {
            ConfigError::Invalid(vec![Problem {
                key: e.path().to_string(),
                message: type_message(&e.inner().to_string()),
            }])
        })?;
        let mut v = Validator::default();
        let config = v.config(raw, host);
        match config {
            Some(config) if v.problems.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid(v.problems)),
        }
    }

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

/// A host name of letters, digits, `-`, `_` and dots, 1 to 253 characters, no empty label.
fn is_dns_name(s: &str) -> bool {
    (1..=MAX_HOST_NAME).contains(&s.len())
        && s.trim_end_matches('.').split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Every key the config does not know, naming its table and the allowed keys.
fn unknown_keys(table: &toml::Table) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut check = |table: &toml::Table, path: &str, where_: &str, allowed: &[&str]| {
        for key in table.keys() {
            if !allowed.contains(&key.as_str()) {
                problems.push(Problem {
                    key: format!("{path}{key}"),
                    message: format!(
                        "unknown key in {where_}; allowed keys: {}",
                        allowed.join(", ")
                    ),
                });
            }
        }
    };
    check(table, "", "the top-level table", TOP_KEYS);
    if let Some(toml::Value::Table(t)) = table.get("host") {
        check(t, "host.", "host", host::HOST_KEYS);
    }
    if let Some(toml::Value::Array(canaries)) = table.get("canary") {
        for (i, canary) in canaries.iter().enumerate() {
            if let toml::Value::Table(t) = canary {
                let path = format!("canary[{i}]");
                check(t, &format!("{path}."), &path, CANARY_KEYS);
                if let Some(toml::Value::Array(backends)) = t.get("backend") {
                    for (j, backend) in backends.iter().enumerate() {
                        if let toml::Value::Table(b) = backend {
                            let path = format!("{path}.backend[{j}]");
                            check(b, &format!("{path}."), &path, BACKEND_KEYS);
                        }
                    }
                }
            }
        }
    }
    problems
}

/// serde's type errors in our words ("expected i64" means nothing to an operator).
fn type_message(serde: &str) -> String {
    // toml appends "in `key`" on further lines; the key path is already in front.
    serde
        .lines()
        .next()
        .unwrap_or_default()
        .replace("expected i64", "expected an integer")
        .replace("expected a sequence", "expected a list")
        .replace("expected struct RawCanary", "expected a [[canary]] table")
        .replace("expected struct RawHost", "expected a [host] table")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    collector_url: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    collector_ca_file: Option<PathBuf>,
    server: Option<String>,
    // Durations stay TOML values so that `interval = 30` gets the duration message, not a
    // serde type error.
    interval: Option<toml::Value>,
    timeout: Option<toml::Value>,
    spool_dir: Option<PathBuf>,
    spool_max_reports: Option<i64>,
    state_dir: Option<PathBuf>,
    resolvers: Option<Vec<String>>,
    capture: Option<bool>,
    listener_poll: Option<toml::Value>,
    dns_timeout: Option<toml::Value>,
    host: Option<host::RawHost>,
    canary: Option<Vec<RawCanary>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCanary {
    name: Option<String>,
    url: Option<String>,
    expect_status: Option<i64>,
    expect_text: Option<String>,
    timeout: Option<toml::Value>,
    serving_unit: Option<String>,
    serving_process: Option<String>,
    backend: Option<Vec<RawBackend>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    address: Option<String>,
    name: Option<String>,
}

#[derive(Default)]
struct Validator {
    problems: Vec<Problem>,
}

/// A duration and whether the file sets it (or it is the default).
#[derive(Clone, Copy)]
struct Setting {
    value: Duration,
    set: bool,
}

impl Setting {
    fn new(value: Duration, set: bool) -> Setting {
        Setting { value, set }
    }
}

impl Validator {
    fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn config(&mut self, raw: RawConfig, host: &HostInfo) -> Option<Config> {
        let collector_url = self.collector_url(raw.collector_url);
        let collector_ca = self.collector_ca(raw.collector_ca_file, collector_url.as_deref());
        let token = self.token(raw.token, raw.token_file);
        let server = self.server(raw.server, host);
        let interval_set = raw.interval.is_some();
        let timeout_set = raw.timeout.is_some();
        let interval = self.duration("interval", raw.interval, DEFAULT_INTERVAL, INTERVAL_RANGE);
        let timeout = self.duration("timeout", raw.timeout, DEFAULT_TIMEOUT, TIMEOUT_RANGE);
        if let (Some(interval), Some(timeout)) = (interval, timeout) {
            let timeout = Setting::new(timeout, timeout_set);
            let interval = Setting::new(interval, interval_set);
            self.shorter_than_interval("timeout", timeout, interval);
        }
        let spool_dir = raw
            .spool_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SPOOL_DIR));
        if spool_dir.as_os_str().is_empty() {
            self.problem(
                "spool_dir",
                "\"\" is empty; use a directory path, e.g. \"/var/lib/causeway-probe/spool\"",
            );
        }
        let spool_max_reports = self.spool_max(raw.spool_max_reports);
        let state_dir = raw
            .state_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        if state_dir.as_os_str().is_empty() {
            self.problem(
                "state_dir",
                format!("\"\" is empty; use a directory path, e.g. \"{DEFAULT_STATE_DIR}\""),
            );
        }
        let resolvers = self.resolvers(raw.resolvers);
        // The default never exceeds the check timeout, so a short interval needs no extra key.
        let dns_default = timeout.map_or(DEFAULT_DNS_TIMEOUT, |t| t.min(DEFAULT_DNS_TIMEOUT));
        let dns_set = raw.dns_timeout.is_some();
        let dns_timeout = self.duration(
            "dns_timeout",
            raw.dns_timeout,
            dns_default,
            DNS_TIMEOUT_RANGE,
        );
        // Its default is at most the timeout: only a value the file sets can be too long.
        if let (Some(interval), Some(dns_timeout), true) = (interval, dns_timeout, dns_set) {
            let interval = Setting::new(interval, interval_set);
            self.shorter_than_interval("dns_timeout", Setting::new(dns_timeout, true), interval);
        }
        let listener_poll = self.duration(
            "listener_poll",
            raw.listener_poll,
            DEFAULT_LISTENER_POLL,
            LISTENER_POLL_RANGE,
        );
        let host_config = self.host(raw.host);
        let interval_setting = interval.map(|i| Setting::new(i, interval_set));
        let canaries = self.canaries(raw.canary, timeout, interval_setting);
        Some(Config {
            collector_url: collector_url?,
            collector_ca: collector_ca?,
            token: token?,
            host: host
                .hostname
                .clone()
                .filter(|h| is_valid_server_name(h))
                .or_else(|| server.clone())?,
            server: server?,
            interval: interval?,
            timeout: timeout?,
            spool_dir,
            spool_max_reports: spool_max_reports?,
            state_dir,
            resolvers: resolvers?,
            dns_timeout: dns_timeout?,
            capture: raw.capture.unwrap_or(true),
            listener_poll: listener_poll?,
            host_watch: host_config?,
            canaries: canaries?,
        })
    }

    fn collector_url(&mut self, raw: Option<String>) -> Option<String> {
        const KEY: &str = "collector_url";
        let Some(raw) = raw else {
            self.problem(
                KEY,
                "missing; set the collector's base URL, e.g. \"http://127.0.0.1:8750\"",
            );
            return None;
        };
        let allowed = "use an http:// or https:// URL with a host, e.g. \"http://127.0.0.1:8750\"";
        match url::Url::parse(&raw) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.host().is_some()
                    && has_authority(&raw)
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && u.username().is_empty()
                    && u.password().is_none() =>
            {
                Some(u.as_str().trim_end_matches('/').to_owned())
            }
            Ok(_) => {
                self.problem(KEY, format!("{raw:?} is not allowed; {allowed}"));
                None
            }
            Err(e) => {
                self.problem(KEY, format!("{raw:?} is not a URL ({e}); {allowed}"));
                None
            }
        }
    }

    /// The certificates of `collector_ca_file`: `Some(None)` without the key, `None` after a
    /// problem.
    fn collector_ca(
        &mut self,
        file: Option<PathBuf>,
        url: Option<&str>,
    ) -> Option<Option<Vec<u8>>> {
        const KEY: &str = "collector_ca_file";
        let Some(path) = file else {
            return Some(None);
        };
        let shown = format!("{:?}", path.display().to_string());
        if url.is_some_and(|u| !u.starts_with("https://")) {
            self.problem(
                KEY,
                format!("{shown} is set, but collector_url is not https://: the CA is used for TLS only; use an https:// collector_url or remove the key"),
            );
            return None;
        }
        let pem = match std::fs::read(&path) {
            Ok(pem) => pem,
            Err(e) => {
                self.problem(KEY, format!("{shown} cannot be read: {e}"));
                return None;
            }
        };
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(certs) if !certs.is_empty() => Some(Some(pem)),
            Ok(_) | Err(_) => {
                self.problem(
                    KEY,
                    format!("{shown} holds no PEM certificate; expected one or more -----BEGIN CERTIFICATE----- blocks"),
                );
                None
            }
        }
    }

    fn token(&mut self, token: Option<String>, file: Option<PathBuf>) -> Option<String> {
        // The token's value never appears in a message: it is a secret.
        let (key, token) = match (token, file) {
            (Some(_), Some(_)) => {
                self.problem(
                    "token",
                    "both token and token_file are set; set exactly one of them",
                );
                return None;
            }
            (None, None) => {
                self.problem(
                    "token",
                    "missing; set token = \"...\" or token_file = \"/etc/causeway/token\"",
                );
                return None;
            }
            (Some(token), None) => ("token", token),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Ok(text) => ("token_file", text.trim().to_owned()),
                Err(e) => {
                    self.problem(
                        "token_file",
                        format!("{:?} cannot be read: {e}", path.display().to_string()),
                    );
                    return None;
                }
            },
        };
        let what = if key == "token" {
            "the token"
        } else {
            "the token in token_file"
        };
        if token.is_empty() {
            self.problem(key, format!("{what} is empty; set the collector's token"));
            None
        } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
            self.problem(
                key,
                format!("{what} contains spaces or non-ASCII characters; a token is printable ASCII without spaces"),
            );
            None
        } else {
            Some(token)
        }
    }

    fn server(&mut self, raw: Option<String>, host: &HostInfo) -> Option<String> {
        match raw {
            Some(name) if is_valid_server_name(&name) => Some(name),
            Some(name) => {
                self.problem(
                    "server",
                    format!("{name:?} is not a valid server name; use {SERVER_NAME_RULE}"),
                );
                None
            }
            None => match &host.hostname {
                Some(h) if is_valid_server_name(h) => Some(h.clone()),
                Some(h) => {
                    self.problem(
                        "server",
                        format!("not set, and the host name {h:?} is not a valid server name; set server to {SERVER_NAME_RULE}"),
                    );
                    None
                }
                None => {
                    self.problem(
                        "server",
                        "not set, and the host name cannot be read; set server = \"...\"",
                    );
                    None
                }
            },
        }
    }

    fn duration(
        &mut self,
        key: &str,
        raw: Option<toml::Value>,
        default: Duration,
        (min, max): (Duration, Duration),
    ) -> Option<Duration> {
        let Some(value) = raw else {
            return Some(default);
        };
        let parsed = value.as_str().and_then(parse_duration);
        let Some(d) = parsed else {
            self.problem(
                key,
                format!("{value} is not a duration; use a number with a unit: 500ms, 5s, 2m"),
            );
            return None;
        };
        if d < min || d > max {
            self.problem(
                key,
                format!(
                    "{value} is out of range; allowed: {} to {}",
                    format_duration(min),
                    format_duration(max)
                ),
            );
            return None;
        }
        Some(d)
    }

    /// A timeout must end before the next cycle starts. The message says which of the two
    /// the file does not set (a default the person never wrote is no mistake of theirs).
    fn shorter_than_interval(&mut self, key: &str, timeout: Setting, interval: Setting) {
        if timeout.value < interval.value {
            return;
        }
        let interval_text = if interval.set {
            format!("interval (\"{}\")", format_duration(interval.value))
        } else {
            format!(
                "interval (\"{}\", its default: interval is not set)",
                format_duration(interval.value)
            )
        };
        let message = if timeout.set {
            format!(
                "\"{}\" must be shorter than {interval_text}",
                format_duration(timeout.value)
            )
        } else {
            format!(
                "not set, so it defaults to \"{}\", which must be shorter than {interval_text}; \
                 set {key} below \"{}\"",
                format_duration(timeout.value),
                format_duration(interval.value)
            )
        };
        self.problem(key, message);
    }

    fn spool_max(&mut self, raw: Option<i64>) -> Option<u64> {
        let Some(n) = raw else {
            return Some(DEFAULT_SPOOL_MAX_REPORTS);
        };
        let (min, max) = SPOOL_MAX_RANGE;
        match u64::try_from(n) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.problem(
                    "spool_max_reports",
                    format!("{n} is out of range; allowed: {min} to {max}"),
                );
                None
            }
        }
    }

    fn resolvers(&mut self, raw: Option<Vec<String>>) -> Option<Vec<ResolverSpec>> {
        let Some(raw) = raw else {
            return Some(vec![ResolverSpec {
                label: "system".into(),
                kind: ResolverKind::System,
            }]);
        };
        if raw.is_empty() {
            self.problem(
                "resolvers",
                "[] is empty; list at least one resolver, e.g. [\"system\"]",
            );
            return None;
        }
        let mut specs = Vec::new();
        let mut ok = true;
        let mut seen = HashSet::new();
        for (i, label) in raw.into_iter().enumerate() {
            let key = format!("resolvers[{i}]");
            let Some(kind) = parse_resolver(&label) else {
                self.problem(
                    &key,
                    format!("{label:?} is not a resolver; use \"system\", an IP address or IP:port ([v6 address]:port for IPv6)"),
                );
                ok = false;
                continue;
            };
            if let ResolverKind::Server(addr) = kind
                && (addr.port() == 0 || addr.ip().is_unspecified())
            {
                self.problem(
                    &key,
                    format!("{label:?} is not allowed: a query cannot be sent to port 0 or to the unspecified address; use the address of a name server, with port 53 by default"),
                );
                ok = false;
                continue;
            }
            if !seen.insert(kind) {
                self.problem(
                    &key,
                    format!("{label:?} is listed twice; list each resolver once"),
                );
                ok = false;
                continue;
            }
            specs.push(ResolverSpec { label, kind });
        }
        ok.then_some(specs)
    }

    fn canaries(
        &mut self,
        raw: Option<Vec<RawCanary>>,
        default_timeout: Option<Duration>,
        interval: Option<Setting>,
    ) -> Option<Vec<Canary>> {
        let raw = raw.unwrap_or_default();
        if raw.is_empty() {
            self.problem(
                "canary",
                "missing; add at least one [[canary]] table with a name and a url",
            );
            return None;
        }
        let mut canaries = Vec::new();
        let mut names: Vec<(String, usize)> = Vec::new();
        let mut ok = true;
        if raw.len() > MAX_CANARIES {
            self.problem(
                "canary",
                format!(
                    "{} [[canary]] tables; allowed: at most {MAX_CANARIES}",
                    raw.len()
                ),
            );
            ok = false;
        }
        for (i, c) in raw.into_iter().enumerate() {
            let at = format!("canary[{i}]");
            if let Some(name) = &c.name {
                if let Some((_, first)) = names.iter().find(|(n, _)| n == name) {
                    self.problem(
                        &format!("{at}.name"),
                        format!(
                            "{name:?} is already the name of canary[{first}]; names must be unique"
                        ),
                    );
                    ok = false;
                }
                names.push((name.clone(), i));
            }
            match self.canary(&at, c, default_timeout, interval) {
                Some(c) => canaries.push(c),
                None => ok = false,
            }
        }
        ok.then_some(canaries)
    }

    fn canary(
        &mut self,
        at: &str,
        raw: RawCanary,
        default_timeout: Option<Duration>,
        interval: Option<Setting>,
    ) -> Option<Canary> {
        let name = match raw.name {
            None => {
                self.problem(
                    &format!("{at}.name"),
                    "missing; give each canary a unique name",
                );
                None
            }
            Some(n) if n.is_empty() || n.chars().count() > MAX_CANARY_NAME => {
                self.problem(
                    &format!("{at}.name"),
                    format!("{n:?} is not allowed; use 1 to {MAX_CANARY_NAME} characters"),
                );
                None
            }
            Some(n) => Some(n),
        };
        let target = match &raw.url {
            None => {
                self.problem(
                    &format!("{at}.url"),
                    "missing; set the page to request, e.g. \"http://canary.example/health\"",
                );
                None
            }
            Some(url) => match parse_target(url) {
                Ok(t) => Some(t),
                Err(why) => {
                    self.problem(&format!("{at}.url"), format!("{url:?} {why}"));
                    None
                }
            },
        };
        let expect_status = match raw.expect_status {
            None => Some(200),
            Some(s) => match u16::try_from(s) {
                Ok(s) if (100..=599).contains(&s) => Some(s),
                _ => {
                    self.problem(
                        &format!("{at}.expect_status"),
                        format!("{s} is out of range; allowed: 100 to 599"),
                    );
                    None
                }
            },
        };
        let expect_text = match raw.expect_text {
            Some(t) if t.is_empty() => {
                self.problem(
                    &format!("{at}.expect_text"),
                    "\"\" is empty; give the text the page must contain, or remove the key",
                );
                Err(())
            }
            other => Ok(other),
        };
        let timeout = match raw.timeout {
            None => default_timeout,
            Some(v) => {
                let key = format!("{at}.timeout");
                let t = self.duration(&key, Some(v), DEFAULT_TIMEOUT, TIMEOUT_RANGE);
                if let (Some(t), Some(interval)) = (t, interval) {
                    self.shorter_than_interval(&key, Setting::new(t, true), interval);
                }
                t
            }
        };
        let serving = self.serving(at, raw.serving_unit, raw.serving_process);
        let backends = self.backends(at, raw.backend.unwrap_or_default());
        Some(Canary {
            name: name?,
            url: raw.url?,
            target: target?,
            expect_status: expect_status?,
            expect_text: expect_text.ok()?,
            timeout: timeout?,
            serving: serving?,
            backends: backends?,
        })
    }

    fn backends(&mut self, at: &str, raw: Vec<RawBackend>) -> Option<Vec<Backend>> {
        let max = causeway_schema::BACKENDS_MAX;
        if raw.len() > max {
            self.problem(
                &format!("{at}.backend"),
                format!("{} backends listed; allowed: at most {max}", raw.len()),
            );
            return None;
        }
        let mut out: Vec<Backend> = Vec::new();
        let mut ok = true;
        for (i, b) in raw.into_iter().enumerate() {
            let key = format!("{at}.backend[{i}]");
            let address = match b.address {
                None => {
                    self.problem(
                        &format!("{key}.address"),
                        "missing; give the address the proxy reaches the backend at, e.g. \"10.0.3.12:8080\"",
                    );
                    None
                }
                Some(a) => match a.parse::<std::net::SocketAddr>() {
                    Ok(addr) if out.iter().any(|o| o.address == addr) => {
                        self.problem(
                            &format!("{key}.address"),
                            format!("{a:?} is listed twice; list each backend once"),
                        );
                        None
                    }
                    Ok(addr) => Some(addr),
                    Err(_) => {
                        self.problem(
                            &format!("{key}.address"),
                            format!("{a:?} is not an address with a port; use IP:port, e.g. \"10.0.3.12:8080\" or \"[fd00::12]:8080\""),
                        );
                        None
                    }
                },
            };
            let name = match b.name {
                Some(n) if !is_dns_name(&n) => {
                    self.problem(
                        &format!("{key}.name"),
                        format!("{n:?} is not a DNS name; use the name that should resolve to the backend, e.g. \"app.internal\""),
                    );
                    ok = false;
                    None
                }
                other => other.map(|n| n.to_ascii_lowercase()),
            };
            match address {
                Some(address) => out.push(Backend { address, name }),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn serving(
        &mut self,
        at: &str,
        unit: Option<String>,
        process: Option<String>,
    ) -> Option<ServingRule> {
        match (unit, process) {
            (None, None) => Some(ServingRule::LongLived),
            (Some(_), Some(_)) => {
                self.problem(
                    &format!("{at}.serving_process"),
                    "given with serving_unit; set one of them, not both",
                );
                None
            }
            (Some(u), None) => {
                let ok = !u.is_empty()
                    && u.len() <= MAX_UNIT_NAME
                    && u.contains('.')
                    && !u.contains('/')
                    && !u.chars().any(char::is_whitespace);
                if !ok {
                    self.problem(
                        &format!("{at}.serving_unit"),
                        format!(
                            "{u:?} is not a systemd unit name; use the unit serving the canary, \
                             e.g. \"nginx.service\""
                        ),
                    );
                    return None;
                }
                Some(ServingRule::Unit(u))
            }
            (None, Some(p)) => {
                if p.is_empty() || p.len() > MAX_PROCESS_NAME || p.contains('/') {
                    self.problem(
                        &format!("{at}.serving_process"),
                        format!(
                            "{p:?} is not a process name; use the name the kernel shows \
                             (/proc/PID/comm, 1 to {MAX_PROCESS_NAME} bytes), e.g. \"nginx\""
                        ),
                    );
                    return None;
                }
                Some(ServingRule::Process(p))
            }
        }
    }
}

/// `500ms`, `5s`, `2m`, `1h`: an integer and a unit, nothing else.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let (number, unit) = s.split_at(digits);
    let n: u64 = number.parse().ok()?;
    let ms_per_unit = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(ms_per_unit).map(Duration::from_millis)
}

/// The inverse of [`parse_duration`], in the largest unit that is exact.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms != 0 && ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms != 0 && ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1_000) {
        format!("{}s", ms / 1_000)
    } else {
        format!("{ms}ms")
    }
}

/// `10.0.0.53`, `10.0.0.53:5353`, `::1`, `[::1]:5353`, or `system`.
fn parse_resolver(s: &str) -> Option<ResolverKind> {
    if s == "system" {
        return Some(ResolverKind::System);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ResolverKind::Server(SocketAddr::new(ip, 53)));
    }
    s.parse::<SocketAddr>().ok().map(ResolverKind::Server)
}

/// Whether `raw` names a host after its `scheme://`: the URL parser reads `http:///path` as
/// the host `path`, which is not what was written.
fn has_authority(raw: &str) -> bool {
    raw.split_once("://")
        .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with(['/', '?', '#']))
}

/// Takes a canary URL apart; the error completes "URL ... " in a message.
fn parse_target(raw: &str) -> Result<Target, String> {
    const ALLOWED: &str = "use an http:// or https:// URL with a host name or IP address, e.g. \"http://canary.example/health\"";
    if raw.len() > MAX_URL {
        return Err(format!("is too long; use at most {MAX_URL} characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| format!("is not a URL ({e}); {ALLOWED}"))?;
    if !has_authority(raw) {
        return Err(format!("is not allowed: it has no host; {ALLOWED}"));
    }
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        _ => return Err(format!("is not allowed; {ALLOWED}")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "is not allowed: it carries a user name or password; {ALLOWED}"
        ));
    }
    let (host, host_text) = match url.host() {
        Some(url::Host::Domain(d)) if d.len() > MAX_HOST_NAME => {
            return Err(format!(
                "is not allowed: its host name is longer than {MAX_HOST_NAME} characters; {ALLOWED}"
            ));
        }
        Some(url::Host::Domain(d)) => (TargetHost::Name(d.to_owned()), d.to_owned()),
        Some(url::Host::Ipv4(ip)) => (TargetHost::Ip(ip.into()), ip.to_string()),
        Some(url::Host::Ipv6(ip)) => (TargetHost::Ip(ip.into()), format!("[{ip}]")),
        None => return Err(format!("is not allowed: it has no host; {ALLOWED}")),
    };
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("is not allowed: it has no port; {ALLOWED}"))?;
    let host_header = match url.port() {
        Some(p) => format!("{host_text}:{p}"),
        None => host_text,
    };
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    Ok(Target {
        tls,
        host,
        port,
        path_and_query,
        host_header,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const MINIMAL: &str = r#"
collector_url = "http://127.0.0.1:8750"
token = "cw_test"
server = "web-01"

[[canary]]
name = "site"
url = "http://canary.example/health"
"#;

    fn host() -> HostInfo {
        HostInfo {
            hostname: Some("probe-host".into()),
        }
    }

    pub(super) fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, &host())
    }

    /// The problems of an invalid config, one string each.
    pub(super) fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(c) => panic!("expected errors, got {c:?}"),
            Err(e) => e.problems(),
        }
    }

    /// MINIMAL with `line` added to the top-level table.
    fn with_top(line: &str) -> String {
        format!("{line}\n{MINIMAL}")
    }

    /// MINIMAL with `line` added to the canary table.
    fn with_canary(line: &str) -> String {
        format!("{MINIMAL}{line}\n")
    }

    #[test]
    fn minimal_config_gets_the_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.collector_url, "http://127.0.0.1:8750");
        assert_eq!(c.token, "cw_test");
        assert_eq!(c.server, "web-01");
        assert_eq!(c.host, "probe-host");
        assert_eq!(c.interval, Duration::from_secs(30));
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(c.spool_dir, PathBuf::from(DEFAULT_SPOOL_DIR));
        assert_eq!(c.spool_max_reports, 10_000);
        assert_eq!(
            c.resolvers,
            vec![ResolverSpec {
                label: "system".into(),
                kind: ResolverKind::System
            }]
        );
        let canary = &c.canaries[0];
        assert_eq!(canary.name, "site");
        assert_eq!(canary.expect_status, 200);
        assert_eq!(canary.expect_text, None);
        assert_eq!(canary.timeout, Duration::from_secs(5));
        assert_eq!(canary.serving, ServingRule::LongLived);
        assert!(c.capture);
        assert_eq!(c.listener_poll, Duration::from_millis(100));
        assert_eq!(
            canary.target,
            Target {
                tls: false,
                host: TargetHost::Name("canary.example".into()),
                port: 80,
                path_and_query: "/health".into(),
                host_header: "canary.example".into(),
            }
        );
        assert_eq!(c.summary(), "1 canary, 1 resolver, interval 30s");
    }

    #[test]
    fn full_config_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, "cw_from_file\n").unwrap();
        let text = format!(
            r#"
collector_url = "https://collector.example:8443/base/"
token_file = "{}"
interval = "1m"
timeout = "1500ms"
spool_dir = "/tmp/spool"
spool_max_reports = 50
resolvers = ["system", "10.0.0.53", "10.0.0.54:5353", "[fd00::53]:5353", "fd00::54"]

[[canary]]
name = "site"
url = "https://canary.example:8443/health?deep=1#frag"
expect_status = 204
expect_text = "canary-ok"
timeout = "2s"

[[canary]]
name = "by-address"
url = "http://[fd00::2]/"
"#,
            token_file.display()
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.collector_url, "https://collector.example:8443/base");
        assert_eq!(c.token, "cw_from_file");
        assert_eq!(c.server, "probe-host", "server defaults to the host name");
        assert_eq!(c.interval, Duration::from_secs(60));
        assert_eq!(c.timeout, Duration::from_millis(1500));
        assert_eq!(c.spool_max_reports, 50);
        let kinds: Vec<_> = c.resolvers.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            vec![
                ResolverKind::System,
                ResolverKind::Server("10.0.0.53:53".parse().unwrap()),
                ResolverKind::Server("10.0.0.54:5353".parse().unwrap()),
                ResolverKind::Server("[fd00::53]:5353".parse().unwrap()),
                ResolverKind::Server("[fd00::54]:53".parse().unwrap()),
            ]
        );
        assert_eq!(c.resolvers[2].label, "10.0.0.54:5353");
        let site = &c.canaries[0];
        assert_eq!(site.expect_status, 204);
        assert_eq!(site.expect_text.as_deref(), Some("canary-ok"));
        assert_eq!(site.timeout, Duration::from_secs(2));
        assert!(site.target.tls);
        assert_eq!(site.target.port, 8443);
        assert_eq!(site.target.path_and_query, "/health?deep=1");
        assert_eq!(site.target.host_header, "canary.example:8443");
        let ip = &c.canaries[1];
        assert_eq!(ip.timeout, Duration::from_millis(1500), "the default");
        assert_eq!(ip.target.host, TargetHost::Ip("fd00::2".parse().unwrap()));
        assert_eq!(ip.target.host_header, "[fd00::2]");
        assert_eq!(c.summary(), "2 canaries, 5 resolvers, interval 1m");
    }

    #[test]
    fn debug_output_hides_the_token() {
        let c = parse(MINIMAL).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("cw_test"), "{debug}");
    }

    #[test]
    fn syntax_error() {
        let p = problems("collector_url = \n");
        assert_eq!(p.len(), 1);
        assert!(
            p[0].starts_with("not valid TOML: TOML parse error at line 1"),
            "{p:?}"
        );
    }

    #[test]
    fn unknown_top_level_key() {
        assert_eq!(
            problems(&with_top("colector_url = \"x\"")),
            vec![
                "colector_url: unknown key in the top-level table; allowed keys: collector_url, \
                 collector_ca_file, token, token_file, server, interval, timeout, spool_dir, spool_max_reports, \
                 state_dir, resolvers, dns_timeout, capture, listener_poll, host, canary"
            ]
        );
    }

    #[test]
    fn unknown_canary_keys_are_all_reported() {
        assert_eq!(
            problems(&with_canary("timout = \"5s\"\nexpect = 200")),
            vec![
                "canary[0].expect: unknown key in canary[0]; allowed keys: name, url, \
                 expect_status, expect_text, timeout, serving_unit, serving_process, backend",
                "canary[0].timout: unknown key in canary[0]; allowed keys: name, url, \
                 expect_status, expect_text, timeout, serving_unit, serving_process, backend",
            ]
        );
    }

    #[test]
    fn serving_process_or_unit() {
        let c = parse(&with_canary("serving_unit = \"nginx.service\"")).unwrap();
        assert_eq!(
            c.canaries[0].serving,
            ServingRule::Unit("nginx.service".into())
        );
        let c = parse(&with_canary("serving_process = \"nginx\"")).unwrap();
        assert_eq!(c.canaries[0].serving, ServingRule::Process("nginx".into()));
        assert_eq!(
            problems(&with_canary(
                "serving_unit = \"nginx.service\"\nserving_process = \"nginx\""
            )),
            vec!["canary[0].serving_process: given with serving_unit; set one of them, not both"]
        );
        assert_eq!(
            problems(&with_canary("serving_process = \"php-fpm: pool www\"")),
            vec![
                "canary[0].serving_process: \"php-fpm: pool www\" is not a process name; use the \
                 name the kernel shows (/proc/PID/comm, 1 to 15 bytes), e.g. \"nginx\""
            ]
        );
        assert_eq!(
            problems(&with_canary(
                "serving_unit = \"/system.slice/nginx.service\""
            )),
            vec![
                "canary[0].serving_unit: \"/system.slice/nginx.service\" is not a systemd unit \
                 name; use the unit serving the canary, e.g. \"nginx.service\""
            ]
        );
    }

    #[test]
    fn backends_and_state_dir() {
        let c = parse(MINIMAL).unwrap();
        assert!(c.canaries[0].backends.is_empty());
        assert_eq!(c.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        let text = format!(
            "state_dir = \"/tmp/cw-state\"\n{MINIMAL}\
             [[canary.backend]]\naddress = \"10.0.3.12:8080\"\nname = \"App.Internal\"\n\
             [[canary.backend]]\naddress = \"[fd00::12]:80\"\n"
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/tmp/cw-state"));
        assert_eq!(
            c.canaries[0].backends,
            vec![
                Backend {
                    address: "10.0.3.12:8080".parse().unwrap(),
                    name: Some("app.internal".into()),
                },
                Backend {
                    address: "[fd00::12]:80".parse().unwrap(),
                    name: None,
                },
            ]
        );
        let bad = format!(
            "{MINIMAL}[[canary.backend]]\naddress = \"10.0.3.12\"\n\
             [[canary.backend]]\nname = \"a b\"\nport = 80\n"
        );
        assert_eq!(
            problems(&bad),
            vec![
                "canary[0].backend[1].port: unknown key in canary[0].backend[1]; allowed keys: \
                 address, name",
            ]
        );
        let bad = format!(
            "{MINIMAL}[[canary.backend]]\naddress = \"10.0.3.12\"\n\
             [[canary.backend]]\nname = \"a b\"\n"
        );
        assert_eq!(
            problems(&bad),
            vec![
                "canary[0].backend[0].address: \"10.0.3.12\" is not an address with a port; use \
                 IP:port, e.g. \"10.0.3.12:8080\" or \"[fd00::12]:8080\"",
                "canary[0].backend[1].address: missing; give the address the proxy reaches the \
                 backend at, e.g. \"10.0.3.12:8080\"",
                "canary[0].backend[1].name: \"a b\" is not a DNS name; use the name that should \
                 resolve to the backend, e.g. \"app.internal\"",
            ]
        );
    }

    #[test]
    fn dns_timeout_default_range_and_interval() {
        assert_eq!(parse(MINIMAL).unwrap().dns_timeout, Duration::from_secs(2));
        let short = parse(&with_top("interval = \"1s\"\ntimeout = \"500ms\"")).unwrap();
        assert_eq!(short.dns_timeout, Duration::from_millis(500));
        let c = parse(&with_top("dns_timeout = \"750ms\"")).unwrap();
        assert_eq!(c.dns_timeout, Duration::from_millis(750));
        assert_eq!(
            problems(&with_top("dns_timeout = \"50ms\"")),
            vec!["dns_timeout: \"50ms\" is out of range; allowed: 100ms to 30s"]
        );
        let p = problems(&with_top(
            "interval = \"5s\"\ntimeout = \"1s\"\ndns_timeout = \"5s\"",
        ));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].starts_with("dns_timeout: "), "{p:?}");
    }

    #[test]
    fn capture_and_listener_poll() {
        let c = parse(&with_top("capture = false\nlistener_poll = \"250ms\"")).unwrap();
        assert!(!c.capture);
        assert_eq!(c.listener_poll, Duration::from_millis(250));
        assert_eq!(
            problems(&with_top("listener_poll = \"10ms\"")),
            vec!["listener_poll: \"10ms\" is out of range; allowed: 20ms to 5s"]
        );
    }

    #[test]
    fn wrong_type() {
        assert_eq!(
            problems(&with_canary("expect_status = \"200\"")),
            vec![r#"canary[0].expect_status: invalid type: string "200", expected an integer"#]
        );
    }

    #[test]
    fn canary_as_a_single_table() {
        let text = "collector_url = \"http://c\"\ntoken = \"t\"\n[canary]\nname = \"a\"\n";
        assert_eq!(
            problems(text),
            vec!["canary: invalid type: map, expected a list"]
        );
    }

    #[test]
    fn bad_duration() {
        assert_eq!(
            problems(&with_canary("timeout = \"5 seconds\"")),
            vec![
                r#"canary[0].timeout: "5 seconds" is not a duration; use a number with a unit: 500ms, 5s, 2m"#
            ]
        );
    }

    #[test]
    fn duration_without_unit() {
        assert_eq!(
            problems(&with_top("interval = 30")),
            vec!["interval: 30 is not a duration; use a number with a unit: 500ms, 5s, 2m"]
        );
    }

    #[test]
    fn duration_out_of_range() {
        assert_eq!(
            problems(&with_top("interval = \"2h\"")),
            vec![r#"interval: "2h" is out of range; allowed: 1s to 1h"#]
        );
        assert_eq!(
            problems(&with_top("timeout = \"50ms\"")),
            vec![r#"timeout: "50ms" is out of range; allowed: 100ms to 1m"#]
        );
    }

    /// Issue 19, item 8: a file with only `interval = "2s"` was refused with errors about a
    /// timeout and a dns_timeout it does not contain.
    #[test]
    fn a_default_too_long_for_the_interval_says_it_is_a_default() {
        assert_eq!(
            problems(&with_top("interval = \"2s\"")),
            vec![
                r#"timeout: not set, so it defaults to "5s", which must be shorter than interval ("2s"); set timeout below "2s""#
            ]
        );
        assert_eq!(
            problems(&with_top("timeout = \"40s\"")),
            vec![
                r#"timeout: "40s" must be shorter than interval ("30s", its default: interval is not set)"#
            ]
        );
        // The DNS timeout's default follows the timeout: setting that one is enough.
        let c = parse(&with_top("interval = \"2s\"\ntimeout = \"1s\"")).unwrap();
        assert_eq!(c.dns_timeout, Duration::from_secs(1));
    }

    #[test]
    fn timeout_not_shorter_than_interval() {
        assert_eq!(
            problems(&with_top("interval = \"5s\"\ntimeout = \"5s\"")),
            vec![r#"timeout: "5s" must be shorter than interval ("5s")"#]
        );
        assert_eq!(
            problems(
                &with_top("interval = \"10s\"")
                    .replace("\n[[canary]]", "\n[[canary]]\ntimeout = \"20s\"")
            ),
            vec![r#"canary[0].timeout: "20s" must be shorter than interval ("10s")"#]
        );
    }

    #[test]
    fn missing_collector_url() {
        assert_eq!(
            problems(&MINIMAL.replace("collector_url = \"http://127.0.0.1:8750\"", "")),
            vec![
                r#"collector_url: missing; set the collector's base URL, e.g. "http://127.0.0.1:8750""#
            ]
        );
    }

    #[test]
    fn bad_collector_url() {
        let text = MINIMAL.replace("http://127.0.0.1:8750", "ftp://127.0.0.1");
        assert_eq!(
            problems(&text),
            vec![
                r#"collector_url: "ftp://127.0.0.1" is not allowed; use an http:// or https:// URL with a host, e.g. "http://127.0.0.1:8750""#
            ]
        );
        let text = MINIMAL.replace("http://127.0.0.1:8750", "http:///collector");
        assert_eq!(
            problems(&text),
            vec![
                r#"collector_url: "http:///collector" is not allowed; use an http:// or https:// URL with a host, e.g. "http://127.0.0.1:8750""#
            ]
        );
        let text = MINIMAL.replace("http://127.0.0.1:8750", "127.0.0.1:8750");
        assert_eq!(
            problems(&text),
            vec![
                r#"collector_url: "127.0.0.1:8750" is not a URL (relative URL without a base); use an http:// or https:// URL with a host, e.g. "http://127.0.0.1:8750""#
            ]
        );
    }

    #[test]
    fn collector_ca_file_must_hold_certificates_for_an_https_collector() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let https = MINIMAL.replace("http://127.0.0.1:8750", "https://collector.example");
        let with = |text: &str, path: &std::path::Path| {
            text.replace(
                "token = ",
                &format!(
                    "collector_ca_file = {:?}\ntoken = ",
                    path.display().to_string()
                ),
            )
        };
        assert_eq!(
            problems(&with(&https, &empty)),
            vec![format!(
                "collector_ca_file: {:?} holds no PEM certificate; expected one or more -----BEGIN CERTIFICATE----- blocks",
                empty.display().to_string()
            )]
        );
        let missing = dir.path().join("missing.pem");
        let p = problems(&with(&https, &missing));
        assert!(p[0].contains("cannot be read: No such file"), "{p:?}");
        let p = problems(&with(MINIMAL, &empty));
        assert!(p[0].contains("collector_url is not https://"), "{p:?}");
    }

    #[test]
    fn token_and_token_file_both_set() {
        assert_eq!(
            problems(&with_top("token_file = \"/etc/causeway/token\"")),
            vec!["token: both token and token_file are set; set exactly one of them"]
        );
    }

    #[test]
    fn no_token() {
        assert_eq!(
            problems(&MINIMAL.replace("token = \"cw_test\"", "")),
            vec![r#"token: missing; set token = "..." or token_file = "/etc/causeway/token""#]
        );
    }

    #[test]
    fn unreadable_token_file() {
        let text = MINIMAL.replace(
            "token = \"cw_test\"",
            "token_file = \"/nonexistent/causeway-token\"",
        );
        assert_eq!(
            problems(&text),
            vec![
                r#"token_file: "/nonexistent/causeway-token" cannot be read: No such file or directory (os error 2)"#
            ]
        );
    }

    #[test]
    fn bad_token_is_not_echoed() {
        let p = problems(&MINIMAL.replace("cw_test", "cw secret"));
        assert_eq!(
            p,
            vec![
                "token: the token contains spaces or non-ASCII characters; a token is printable ASCII without spaces"
            ]
        );
    }

    #[test]
    fn bad_server_name() {
        assert_eq!(
            problems(&MINIMAL.replace("\"web-01\"", "\"web 01\"")),
            vec![format!(
                r#"server: "web 01" is not a valid server name; use {SERVER_NAME_RULE}"#
            )]
        );
    }

    #[test]
    fn unusable_host_name_without_server() {
        let text = MINIMAL.replace("server = \"web-01\"", "");
        let err = Config::parse(
            &text,
            &HostInfo {
                hostname: Some("bad host".into()),
            },
        )
        .unwrap_err();
        assert_eq!(
            err.problems(),
            vec![format!(
                r#"server: not set, and the host name "bad host" is not a valid server name; set server to {SERVER_NAME_RULE}"#
            )]
        );
    }

    #[test]
    fn spool_max_out_of_range() {
        assert_eq!(
            problems(&with_top("spool_max_reports = 5")),
            vec!["spool_max_reports: 5 is out of range; allowed: 10 to 1000000"]
        );
    }

    #[test]
    fn bad_resolver() {
        assert_eq!(
            problems(&with_top(r#"resolvers = ["system", "10.0.0.300"]"#)),
            vec![
                r#"resolvers[1]: "10.0.0.300" is not a resolver; use "system", an IP address or IP:port ([v6 address]:port for IPv6)"#
            ]
        );
    }

    #[test]
    fn resolver_on_port_0_or_the_unspecified_address() {
        assert_eq!(
            problems(&with_top(r#"resolvers = ["127.0.0.1:0", "0.0.0.0", "[::]:53"]"#)),
            ["127.0.0.1:0", "0.0.0.0", "[::]:53"]
                .iter()
                .enumerate()
                .map(|(i, r)| format!("resolvers[{i}]: {r:?} is not allowed: a query cannot be sent to port 0 or to the unspecified address; use the address of a name server, with port 53 by default"))
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn duplicate_resolver() {
        assert_eq!(
            problems(&with_top(r#"resolvers = ["10.0.0.53", "10.0.0.53:53"]"#)),
            vec![r#"resolvers[1]: "10.0.0.53:53" is listed twice; list each resolver once"#]
        );
    }

    #[test]
    fn empty_resolvers() {
        assert_eq!(
            problems(&with_top("resolvers = []")),
            vec![r#"resolvers: [] is empty; list at least one resolver, e.g. ["system"]"#]
        );
    }

    #[test]
    fn no_canary() {
        let text = "collector_url = \"http://c\"\ntoken = \"t\"\nserver = \"s\"\n";
        assert_eq!(
            problems(text),
            vec!["canary: missing; add at least one [[canary]] table with a name and a url"]
        );
    }

    #[test]
    fn duplicate_canary_name() {
        let text = format!("{MINIMAL}\n[[canary]]\nname = \"site\"\nurl = \"http://other/\"\n");
        assert_eq!(
            problems(&text),
            vec![
                r#"canary[1].name: "site" is already the name of canary[0]; names must be unique"#
            ]
        );
    }

    #[test]
    fn canary_name_missing_or_too_long() {
        let text = MINIMAL.replace("name = \"site\"", "");
        assert_eq!(
            problems(&text),
            vec!["canary[0].name: missing; give each canary a unique name"]
        );
        let long = "x".repeat(129);
        let text = MINIMAL.replace("\"site\"", &format!("\"{long}\""));
        assert_eq!(
            problems(&text),
            vec![format!(
                r#"canary[0].name: "{long}" is not allowed; use 1 to 128 characters"#
            )]
        );
    }

    #[test]
    fn bad_canary_url() {
        let text = MINIMAL.replace("http://canary.example/health", "ftp://canary.example/");
        assert_eq!(
            problems(&text),
            vec![
                r#"canary[0].url: "ftp://canary.example/" is not allowed; use an http:// or https:// URL with a host name or IP address, e.g. "http://canary.example/health""#
            ]
        );
        // The URL parser would take `path` for the host.
        let text = MINIMAL.replace("http://canary.example/health", "http:///path");
        assert_eq!(
            problems(&text),
            vec![
                r#"canary[0].url: "http:///path" is not allowed: it has no host; use an http:// or https:// URL with a host name or IP address, e.g. "http://canary.example/health""#
            ]
        );
        let text = MINIMAL.replace("http://canary.example/health", "http://u:p@canary.example/");
        assert_eq!(
            problems(&text),
            vec![
                r#"canary[0].url: "http://u:p@canary.example/" is not allowed: it carries a user name or password; use an http:// or https:// URL with a host name or IP address, e.g. "http://canary.example/health""#
            ]
        );
    }

    #[test]
    fn too_many_canaries() {
        let mut text = MINIMAL.to_owned();
        for i in 0..MAX_CANARIES {
            text.push_str(&format!(
                "[[canary]]\nname = \"c{i}\"\nurl = \"http://c/\"\n"
            ));
        }
        assert_eq!(
            problems(&text),
            vec!["canary: 51 [[canary]] tables; allowed: at most 50"]
        );
    }

    #[test]
    fn host_name_too_long() {
        let long = format!("{}.example", "a.".repeat(125));
        let text = MINIMAL.replace("canary.example", &long);
        assert_eq!(
            problems(&text),
            vec![format!(
                r#"canary[0].url: "http://{long}/health" is not allowed: its host name is longer than 253 characters; use an http:// or https:// URL with a host name or IP address, e.g. "http://canary.example/health""#
            )]
        );
    }

    #[test]
    fn expect_status_out_of_range() {
        assert_eq!(
            problems(&with_canary("expect_status = 600")),
            vec!["canary[0].expect_status: 600 is out of range; allowed: 100 to 599"]
        );
    }

    #[test]
    fn empty_expect_text() {
        assert_eq!(
            problems(&with_canary("expect_text = \"\"")),
            vec![
                r#"canary[0].expect_text: "" is empty; give the text the page must contain, or remove the key"#
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
collector_url = "gopher://x"
token = "t"
server = "s"
interval = "0s"
spool_max_reports = 1

[[canary]]
name = "a"
url = "http://a/"
expect_status = 99
"#;
        let p = problems(text);
        assert_eq!(p.len(), 4, "{p:#?}");
        assert!(p[0].starts_with("collector_url: "));
        assert!(p[1].starts_with("interval: "));
        assert!(p[2].starts_with("spool_max_reports: "));
        assert!(p[3].starts_with("canary[0].expect_status: "));
    }

    #[test]
    fn durations_parse_and_print() {
        for (text, ms) in [
            ("500ms", 500),
            ("5s", 5000),
            ("2m", 120_000),
            ("1h", 3_600_000),
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(d, Duration::from_millis(ms));
            assert_eq!(format_duration(d), text);
        }
        for bad in [
            "",
            "5",
            "s",
            "5 s",
            " 5s",
            "1.5s",
            "5S",
            "-5s",
            "5sec",
            "99999999999999999999h",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
    }
}
