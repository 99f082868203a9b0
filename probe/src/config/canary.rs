//! The checks of each `[[canary]]` table: its name, its URL (taken apart into a [`Target`]
//! here, once), what the page must return, how its serving process is recognised, its backends.

use std::time::Duration;

use causeway_schema::CanaryName;

use super::model::{CaFile, DEFAULT_TLS_CRITICAL_DAYS, DEFAULT_TLS_WARN_DAYS, MAX_TLS_WARN_DAYS};
use super::raw::{RawBackend, RawCanary};
use super::validate::{DEFAULT_TIMEOUT, Setting, TIMEOUT_RANGE, Validator, has_authority};
use super::{Backend, Canary, CanaryTls, MAX_CANARIES, ServingRule, Target, TargetHost};

/// The longest canary URL the collector stores (schema validation allows 2048 characters).
const MAX_URL: usize = 2048;
/// A DNS name's limit (and the report's for a resolved name).
const MAX_HOST_NAME: usize = 253;
/// The kernel keeps a process name (`comm`) in 16 bytes with its NUL: longer names never match.
const MAX_PROCESS_NAME: usize = 15;
const MAX_UNIT_NAME: usize = 256;

impl Validator {
    pub(super) fn canaries(
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
            Some(n) => match CanaryName::parse(&n) {
                Ok(name) => Some(name),
                Err(e) => {
                    self.problem(&format!("{at}.name"), e.to_string());
                    None
                }
            },
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
        let https = target.as_ref().map(|t: &Target| t.tls);
        let keys = TlsKeys {
            ca_file: raw.ca_file,
            server_name: raw.tls_server_name,
            warn_days: raw.tls_warn_days,
            critical_days: raw.tls_critical_days,
        };
        let tls = self.canary_tls(at, keys, https);
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
            tls: tls?,
            backends: backends?,
        })
    }

    /// `ca_file` and `tls_server_name`: https canaries only. `https` is `None` when the URL
    /// was wrong (already said).
    fn canary_tls(&mut self, at: &str, raw: TlsKeys, https: Option<bool>) -> Option<CanaryTls> {
        let mut ok = true;
        for (key, set) in [
            ("ca_file", raw.ca_file.is_some()),
            ("tls_server_name", raw.server_name.is_some()),
            ("tls_warn_days", raw.warn_days.is_some()),
            ("tls_critical_days", raw.critical_days.is_some()),
        ] {
            if set && https == Some(false) {
                self.problem(
                    &format!("{at}.{key}"),
                    "is set, but the url is not https://: it is used for TLS only; use an https:// url or remove the key",
                );
                ok = false;
            }
        }
        let ca = match &raw.ca_file {
            None => None,
            Some(path) => {
                let key = format!("{at}.ca_file");
                let shown = format!("{:?}", path.display().to_string());
                match std::fs::read(path) {
                    Err(e) => {
                        self.problem(&key, format!("{shown} cannot be read: {e}"));
                        ok = false;
                        None
                    }
                    Ok(pem) if crate::checks::tls::pem_certificates(&pem).is_empty() => {
                        self.problem(
                            &key,
                            format!("{shown} holds no PEM certificate; expected one or more -----BEGIN CERTIFICATE----- blocks"),
                        );
                        ok = false;
                        None
                    }
                    Ok(pem) => match CaFile::from_pem(pem) {
                        Ok(ca) => Some(ca),
                        Err(e) => {
                            self.problem(&key, format!("{shown} cannot be trusted: {e}"));
                            ok = false;
                            None
                        }
                    },
                }
            }
        };
        let server_name = match &raw.server_name {
            None => None,
            Some(name) => {
                let lower = name.to_ascii_lowercase();
                match rustls::pki_types::ServerName::try_from(lower.as_str()) {
                    Ok(_) if !lower.is_empty() && lower.len() <= MAX_HOST_NAME => Some(lower),
                    _ => {
                        self.problem(
                            &format!("{at}.tls_server_name"),
                            format!("{name:?} is not a DNS name or IP address the certificate could cover"),
                        );
                        ok = false;
                        None
                    }
                }
            }
        };
        let (warn_days, critical_days) = self.expiry_days(at, &raw);
        ok &= warn_days.is_some() && critical_days.is_some();
        Some(CanaryTls {
            ca,
            server_name,
            warn_days: warn_days?,
            critical_days: critical_days?,
        })
        .filter(|_| ok)
    }

    /// `tls_warn_days` (1 to a year) and `tls_critical_days` (1 to `tls_warn_days`).
    fn expiry_days(&mut self, at: &str, raw: &TlsKeys) -> (Option<u16>, Option<u16>) {
        let warn = match raw.warn_days {
            None => Some(DEFAULT_TLS_WARN_DAYS),
            Some(d) => match u16::try_from(d) {
                Ok(d) if (1..=MAX_TLS_WARN_DAYS).contains(&d) => Some(d),
                _ => {
                    self.problem(
                        &format!("{at}.tls_warn_days"),
                        format!("{d} is out of range; allowed: 1 to {MAX_TLS_WARN_DAYS} (days)"),
                    );
                    None
                }
            },
        };
        let top = warn.unwrap_or(MAX_TLS_WARN_DAYS);
        let critical = match raw.critical_days {
            None if DEFAULT_TLS_CRITICAL_DAYS <= top => Some(DEFAULT_TLS_CRITICAL_DAYS),
            None => {
                self.problem(
                    &format!("{at}.tls_critical_days"),
                    format!(
                        "the default {DEFAULT_TLS_CRITICAL_DAYS} is more than tls_warn_days ({top}); set it to 1 to {top}"
                    ),
                );
                None
            }
            Some(d) => match u16::try_from(d) {
                Ok(d) if (1..=top).contains(&d) => Some(d),
                _ => {
                    self.problem(
                        &format!("{at}.tls_critical_days"),
                        format!("{d} is out of range; allowed: 1 to {top} (tls_warn_days)"),
                    );
                    None
                }
            },
        };
        (warn, critical)
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

/// A host name of letters, digits, `-`, `_` and dots, 1 to 253 characters, no empty label.
fn is_dns_name(s: &str) -> bool {
    (1..=MAX_HOST_NAME).contains(&s.len())
        && s.trim_end_matches('.').split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
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

/// A canary's TLS keys as written, taken out of [`RawCanary`] for [`Validator::canary_tls`].
struct TlsKeys {
    ca_file: Option<std::path::PathBuf>,
    server_name: Option<String>,
    warn_days: Option<i64>,
    critical_days: Option<i64>,
}
