//! The config file as written: the keys each table allows (step 1 reports any other) and the
//! serde structs it is deserialized into (step 2), every value still unchecked.

use std::path::PathBuf;

use serde::Deserialize;

use super::Problem;
use super::host;

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
    "ca_file",
    "tls_server_name",
    "tls_warn_days",
    "tls_critical_days",
    "backend",
];
const BACKEND_KEYS: &[&str] = &["address", "name"];

/// Every key the config does not know, naming its table and the allowed keys.
pub(super) fn unknown_keys(table: &toml::Table) -> Vec<Problem> {
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
pub(super) fn type_message(serde: &str) -> String {
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
pub(super) struct RawConfig {
    pub(super) collector_url: Option<String>,
    pub(super) token: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) collector_ca_file: Option<PathBuf>,
    pub(super) server: Option<String>,
    // Durations stay TOML values so that `interval = 30` gets the duration message, not a
    // serde type error.
    pub(super) interval: Option<toml::Value>,
    pub(super) timeout: Option<toml::Value>,
    pub(super) spool_dir: Option<PathBuf>,
    pub(super) spool_max_reports: Option<i64>,
    pub(super) state_dir: Option<PathBuf>,
    pub(super) resolvers: Option<Vec<String>>,
    pub(super) capture: Option<bool>,
    pub(super) listener_poll: Option<toml::Value>,
    pub(super) dns_timeout: Option<toml::Value>,
    pub(super) host: Option<host::RawHost>,
    pub(super) canary: Option<Vec<RawCanary>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCanary {
    pub(super) name: Option<String>,
    pub(super) url: Option<String>,
    pub(super) expect_status: Option<i64>,
    pub(super) expect_text: Option<String>,
    pub(super) timeout: Option<toml::Value>,
    pub(super) serving_unit: Option<String>,
    pub(super) serving_process: Option<String>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) tls_server_name: Option<String>,
    pub(super) tls_warn_days: Option<i64>,
    pub(super) tls_critical_days: Option<i64>,
    pub(super) backend: Option<Vec<RawBackend>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackend {
    pub(super) address: Option<String>,
    pub(super) name: Option<String>,
}
