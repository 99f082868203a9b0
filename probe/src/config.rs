//! The probe's configuration: TOML, strict, validated into a typed [`Config`].
//!
//! Loading goes in three steps so that every mistake gets a message naming the key, the bad
//! value and what is allowed: (1) the text is parsed as a plain TOML table and every unknown key
//! is reported with the table it is in and the keys that table allows; (2) the table is
//! deserialized into a raw struct (type errors name the key path); (3) the raw values are
//! checked and converted, collecting every problem rather than stopping at the first.
//!
//! The parts: `raw` holds the tables as written (steps 1 and 2), `validate` and `canary` do
//! step 3, `host` does all three for `[host]`, and `model` is what comes out.

use std::fmt;
use std::path::{Path, PathBuf};

mod canary;
mod host;
mod model;
mod raw;
mod validate;

pub use causeway_schema::{format_duration, parse_duration};
pub use host::HostConfig;
pub use model::{
    Backend, CaFile, Canary, CanaryTls, Config, ResolverKind, ResolverSpec, ServingRule, Target,
    TargetHost,
};

use raw::RawConfig;
use validate::Validator;

/// Where `run` and `once` read their configuration unless told otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/causeway/probe.toml";
/// The spool directory unless configured.
pub const DEFAULT_SPOOL_DIR: &str = "/var/lib/causeway-probe/spool";
/// Where the probe keeps what it learned (backend identities, boot id) by default.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/causeway-probe";
/// Most canaries: with at most `cycle::MAX_ADDRESSES` results each, a report stays under the
/// collector's limit of `causeway_schema::MAX_RESULTS` results.
pub const MAX_CANARIES: usize = 50;
/// Where the host name comes from (the kernel's UTS name, as `hostname` prints it).
const HOSTNAME_FILE: &str = "/proc/sys/kernel/hostname";

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
        let unknown = raw::unknown_keys(&table);
        if !unknown.is_empty() {
            return Err(ConfigError::Invalid(unknown));
        }
        let raw: RawConfig = serde_path_to_error::deserialize(table).map_err(|e| {
            ConfigError::Invalid(vec![Problem {
                key: e.path().to_string(),
                message: raw::type_message(&e.inner().to_string()),
            }])
        })?;
        let mut v = Validator::default();
        let config = v.config(raw, host);
        match config {
            Some(config) if v.problems.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid(v.problems)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use causeway_schema::SERVER_NAME_RULE;

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
                 expect_status, expect_text, timeout, serving_unit, serving_process, ca_file, \
                 tls_server_name, tls_warn_days, tls_critical_days, backend",
                "canary[0].timout: unknown key in canary[0]; allowed keys: name, url, \
                 expect_status, expect_text, timeout, serving_unit, serving_process, ca_file, \
                 tls_server_name, tls_warn_days, tls_critical_days, backend",
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
                r#"canary[0].timeout: "5 seconds" is not a duration: expected a whole number followed by ms, s, m, h or d (e.g. 500ms, 90s, 30m, 1h, 7d)"#
            ]
        );
    }

    #[test]
    fn duration_without_unit() {
        assert_eq!(
            problems(&with_top("interval = 30")),
            vec![
                "interval: 30 is not a duration: expected a whole number followed by ms, s, m, h or d (e.g. 500ms, 90s, 30m, 1h, 7d)"
            ]
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
    fn ca_file_and_tls_server_name_for_an_https_canary() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        let (pem, _) = {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            (params.self_signed(&key).unwrap().pem(), key)
        };
        std::fs::write(&ca, &pem).unwrap();
        let https = MINIMAL.replace("http://canary.example", "https://canary.example");
        let keys = |path: &std::path::Path, name: &str| {
            format!(
                "ca_file = {:?}\ntls_server_name = {name:?}",
                path.display().to_string()
            )
        };
        let c = parse(&format!("{https}{}\n", keys(&ca, "Shop.Example"))).unwrap();
        assert_eq!(
            c.canaries[0].tls.ca.as_ref().map(|ca| ca.pem.as_slice()),
            Some(pem.as_bytes())
        );
        assert_eq!(
            c.canaries[0].tls.server_name.as_deref(),
            Some("shop.example")
        );
        assert_eq!(parse(&https).unwrap().canaries[0].tls, CanaryTls::default());

        assert_eq!(
            problems(&with_canary(&keys(&ca, "shop.example"))),
            [
                "canary[0].ca_file: is set, but the url is not https://: it is used for TLS only; use an https:// url or remove the key",
                "canary[0].tls_server_name: is set, but the url is not https://: it is used for TLS only; use an https:// url or remove the key",
            ]
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate\n").unwrap();
        assert_eq!(
            problems(&format!("{https}{}\n", keys(&empty, "shop example"))),
            [
                format!(
                    "canary[0].ca_file: {:?} holds no PEM certificate; expected one or more -----BEGIN CERTIFICATE----- blocks",
                    empty.display().to_string()
                ),
                r#"canary[0].tls_server_name: "shop example" is not a DNS name or IP address the certificate could cover"#.to_owned(),
            ]
        );
        let missing = dir.path().join("missing.pem");
        let p = problems(&format!("{https}{}\n", keys(&missing, "10.0.0.1")));
        assert_eq!(
            p.len(),
            1,
            "an IP address is a name a certificate can cover: {p:?}"
        );
        assert!(p[0].contains("cannot be read: No such file"), "{p:?}");
    }

    #[test]
    fn tls_warn_and_critical_days() {
        let https = MINIMAL.replace("http://canary.example", "https://canary.example");
        let tls =
            |keys: &str| parse(&format!("{https}{keys}\n")).map(|c| c.canaries[0].tls.clone());
        let defaults = tls("").unwrap();
        assert_eq!((defaults.warn_days, defaults.critical_days), (14, 3));
        let set = tls("tls_warn_days = 30\ntls_critical_days = 7").unwrap();
        assert_eq!((set.warn_days, set.critical_days), (30, 7));
        let problems_of = |keys: &str| match tls(keys) {
            Ok(t) => panic!("expected errors, got {t:?}"),
            Err(e) => e.problems(),
        };
        assert_eq!(
            problems_of("tls_warn_days = 0\ntls_critical_days = 400"),
            [
                "canary[0].tls_warn_days: 0 is out of range; allowed: 1 to 365 (days)",
                "canary[0].tls_critical_days: 400 is out of range; allowed: 1 to 365 (tls_warn_days)",
            ]
        );
        assert_eq!(
            problems_of("tls_warn_days = 10\ntls_critical_days = 11"),
            ["canary[0].tls_critical_days: 11 is out of range; allowed: 1 to 10 (tls_warn_days)"]
        );
        assert_eq!(
            problems_of("tls_warn_days = 2"),
            [
                "canary[0].tls_critical_days: the default 3 is more than tls_warn_days (2); set it to 1 to 2"
            ]
        );
        assert_eq!(
            problems(&with_canary("tls_warn_days = 20")),
            [
                "canary[0].tls_warn_days: is set, but the url is not https://: it is used for TLS only; use an https:// url or remove the key"
            ]
        );
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
                r#"canary[0].name: "{long}" is not a valid canary name; use text of 1 to 128 characters"#
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
}
