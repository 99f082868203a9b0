//! Step 3: the raw values checked and converted into a [`Config`], every problem collected
//! with a message naming the key, the bad value and what is allowed. The `[[canary]]` tables
//! are checked in `canary`, the `[host]` table in `host`.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use causeway_schema::{SERVER_NAME_RULE, ServerName, is_valid_server_name};

use super::raw::RawConfig;
use super::{
    Config, DEFAULT_SPOOL_DIR, DEFAULT_STATE_DIR, HostInfo, Problem, ResolverKind, ResolverSpec,
};
use causeway_schema::{format_duration, parse_duration};

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_SPOOL_MAX_REPORTS: u64 = 10_000;
const INTERVAL_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
pub(super) const TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(60));
const SPOOL_MAX_RANGE: (u64, u64) = (10, 1_000_000);
/// Each DNS query and each reachability test of a resolver waits at most this long by default
/// (or the check timeout, when shorter): real resolvers answer in tens of milliseconds, and a
/// cycle waits for the slowest one.
const DEFAULT_DNS_TIMEOUT: Duration = Duration::from_secs(2);
const DNS_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(30));
const DEFAULT_LISTENER_POLL: Duration = Duration::from_millis(100);
const LISTENER_POLL_RANGE: (Duration, Duration) =
    (Duration::from_millis(20), Duration::from_secs(5));

/// Step 3's checks: each records its problems here, and returns `None` after one.
#[derive(Default)]
pub(super) struct Validator {
    pub(super) problems: Vec<Problem>,
}

/// A duration and whether the file sets it (or it is the default).
#[derive(Clone, Copy)]
pub(super) struct Setting {
    value: Duration,
    set: bool,
}

impl Setting {
    pub(super) fn new(value: Duration, set: bool) -> Setting {
        Setting { value, set }
    }
}

impl Validator {
    pub(super) fn problem(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_owned(),
            message: message.into(),
        });
    }

    pub(super) fn config(&mut self, raw: RawConfig, host: &HostInfo) -> Option<Config> {
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
                .or_else(|| server.as_ref().map(ServerName::to_string))?,
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

    fn server(&mut self, raw: Option<String>, host: &HostInfo) -> Option<ServerName> {
        match raw {
            Some(name) => match ServerName::parse(&name) {
                Ok(name) => Some(name),
                Err(e) => {
                    self.problem("server", e.to_string());
                    None
                }
            },
            None => match &host.hostname {
                Some(h) if is_valid_server_name(h) => Some(ServerName::from(h.as_str())),
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

    pub(super) fn duration(
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
                format!(
                    "{value} is not a duration: expected {}",
                    causeway_schema::DURATION_FORMS
                ),
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
    pub(super) fn shorter_than_interval(&mut self, key: &str, timeout: Setting, interval: Setting) {
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
pub(super) fn has_authority(raw: &str) -> bool {
    raw.split_once("://")
        .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with(['/', '?', '#']))
}
