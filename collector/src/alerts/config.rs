//! The collector's config file (`--config`, `causeway-collector check-config FILE`): the page's
//! public address for links, the channels messages go out on, and the rules that say which
//! failures page whom.
//!
//! Strict like the probe's: an unknown key, a channel no rule uses by a wrong name, a cause
//! that does not exist, a duration out of range are refused with the key and what is allowed,
//! and a reload (SIGHUP) that is refused keeps the running config.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use causeway_schema::Cause;
use serde::Deserialize;

pub use super::weekly::Maintenance;
pub use causeway_api::glob::glob_match;

use super::email::{Email, EmailKeys};
use crate::duration;

/// The defaults of a rule, as docs/alerts.md documents them.
pub const DEFAULT_AFTER: u32 = 2;
pub const DEFAULT_REPEAT: &str = "4h";
pub const DEFAULT_STALE_AFTER: u32 = 3;
/// How long a notification is retried before it is marked failed.
pub const DEFAULT_GIVE_UP: &str = "24h";
/// DOWN messages of one cause within this many seconds go out as one.
pub const DEFAULT_GROUP_WINDOW_S: u64 = 30;
/// Each delivery attempt's time limit.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq)]
pub struct CollectorConfig {
    /// `https://causeway.example.net`, without a trailing slash: messages link to the page.
    pub public_url: Option<String>,
    pub channels: Vec<Channel>,
    pub rules: Vec<Rule>,
    /// How long a notification is retried before it is marked failed.
    pub give_up: Duration,
    /// Failures of an incident's cause that come back within this long after it ended
    /// reopen it (an intermittent fault is one incident); its RECOVERED waits as long.
    pub merge_gap: Duration,
    /// DOWN messages of one cause on one channel within this long of each other go out as
    /// one message listing every server (a shared resolver failing is one page, not fifty).
    /// The first goes out at once; zero turns grouping off.
    pub group_window: Duration,
    /// How long the first DOWN of a cause on a channel waits for others of that cause (as
    /// Alertmanager's `group_wait`): servers that fail together within it are one message
    /// from the start. Zero (the default) sends the first at once.
    pub group_wait: Duration,
    /// Recurring maintenance windows: their servers raise no alert while one lasts.
    pub maintenance: Vec<Maintenance>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    pub name: String,
    pub kind: ChannelKind,
    pub url: String,
    /// Webhook: the HMAC-SHA256 key of the `X-Causeway-Signature` header.
    pub secret: Option<String>,
    /// Email: the SMTP server, sender, recipients and login.
    pub email: Option<Email>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// A POST of the message as JSON, signed when a secret is set.
    Webhook,
    /// A Slack-compatible incoming webhook (Mattermost and Rocket.Chat take it too).
    Slack,
    /// An ntfy topic URL.
    Ntfy,
    /// A Prometheus Alertmanager's base URL (`/api/v2/alerts` is added).
    Alertmanager,
    /// Plain text mail over SMTP (`smtp://host[:port]`).
    Email,
}

impl ChannelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Ntfy => "ntfy",
            ChannelKind::Alertmanager => "alertmanager",
            ChannelKind::Email => "email",
        }
    }
}

/// Which servers and causes alert, on which channels, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    /// Globs (`*`, `?`) on server names.
    pub servers: Vec<String>,
    /// Cause ids, or `*` for any.
    pub causes: Vec<String>,
    pub channels: Vec<String>,
    /// An incident alerts once it counts this many failed checks...
    pub after: u32,
    /// ... or once it has lasted this long, whichever comes first (`None`: by count only).
    pub after_for: Option<Duration>,
    /// A reminder while the incident stays open, this often (`None`: never).
    pub repeat: Option<Duration>,
    /// A server that sent no report for this many of its intervals is stale (`None`: stale
    /// servers do not alert through this rule).
    pub stale_after: Option<u32>,
    /// Whether the rule also warns of the host's and the resolvers' conditions with its
    /// causes (a kernel memory leak before any outage, an OOM kill, a reboot, an overload, a
    /// resolver that refuses us), as warnings.
    pub conditions: bool,
}

impl Rule {
    pub fn matches_server(&self, server: &str) -> bool {
        self.servers.iter().any(|g| glob_match(g, server))
    }

    pub fn matches_cause(&self, cause: &str) -> bool {
        self.causes.iter().any(|c| c == "*" || c == cause)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    public_url: Option<String>,
    give_up: Option<String>,
    merge_gap: Option<String>,
    group_window: Option<String>,
    group_wait: Option<String>,
    #[serde(default)]
    maintenance: Vec<RawMaintenance>,
    #[serde(default, rename = "channel")]
    channels: Vec<RawChannel>,
    #[serde(default, rename = "rule")]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMaintenance {
    servers: Vec<String>,
    weekly: String,
    reason: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChannel {
    name: String,
    kind: ChannelKind,
    url: String,
    secret: Option<String>,
    tls: Option<String>,
    from: Option<String>,
    to: Option<Vec<String>>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
    ca_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    servers: Option<Vec<String>>,
    causes: Option<Vec<String>>,
    channels: Vec<String>,
    after: Option<u32>,
    #[serde(rename = "for")]
    after_for: Option<String>,
    repeat: Option<String>,
    stale_after: Option<u32>,
    conditions: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: String },
    #[error("{path}: {error}")]
    Invalid { path: String, error: String },
}

impl CollectorConfig {
    /// No channels, no rules: nothing alerts.
    pub fn empty() -> CollectorConfig {
        CollectorConfig {
            public_url: None,
            channels: Vec::new(),
            rules: Vec::new(),
            give_up: duration::parse(DEFAULT_GIVE_UP).expect("a valid default"),
            merge_gap: Duration::from_millis(crate::ingest::MERGE_GAP_MS as u64),
            group_window: Duration::from_secs(DEFAULT_GROUP_WINDOW_S),
            group_wait: Duration::ZERO,
            maintenance: Vec::new(),
        }
    }

    pub fn load(path: &Path) -> Result<CollectorConfig, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: shown.clone(),
            error: e.to_string(),
        })?;
        CollectorConfig::parse(&text).map_err(|error| ConfigError::Invalid { path: shown, error })
    }

    /// Parses and checks a config's text; the error names the key, the value and what is
    /// allowed.
    pub fn parse(text: &str) -> Result<CollectorConfig, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
        let public_url = raw
            .public_url
            .map(|u| check_url("public_url", &u).map(|()| u.trim_end_matches('/').to_owned()))
            .transpose()?;
        let give_up = duration_key("give_up", raw.give_up.as_deref().unwrap_or(DEFAULT_GIVE_UP))?;
        let merge_gap = match raw.merge_gap.as_deref() {
            None => Duration::from_millis(crate::ingest::MERGE_GAP_MS as u64),
            Some(t) => {
                let gap = duration_or_zero("merge_gap", t)?;
                if gap > Duration::from_secs(86_400) {
                    return Err(format!(
                        "merge_gap: {t:?} is too long: at most 1d is allowed (0s: never merge)"
                    ));
                }
                gap
            }
        };
        let group_window = match raw.group_window.as_deref() {
            None => Duration::from_secs(DEFAULT_GROUP_WINDOW_S),
            Some(t) => {
                let window = duration_or_zero("group_window", t)?;
                if window > Duration::from_secs(3600) {
                    return Err(format!(
                        "group_window: {t:?} is too long: at most 1h is allowed (0s: no grouping)"
                    ));
                }
                window
            }
        };
        let group_wait = match raw.group_wait.as_deref() {
            None => Duration::ZERO,
            Some(t) => {
                let wait = duration_or_zero("group_wait", t)?;
                if wait > Duration::from_secs(300) {
                    return Err(format!(
                        "group_wait: {t:?} is too long: at most 5m is allowed (it delays the \
                         first page; 0s: none)"
                    ));
                }
                wait
            }
        };
        if !group_wait.is_zero() && group_window.is_zero() {
            return Err(
                "group_wait: waits to group messages, and group_window = \"0s\" turns grouping \
                 off: set one of them"
                    .to_owned(),
            );
        }
        let mut maintenance = Vec::new();
        for (i, m) in raw.maintenance.into_iter().enumerate() {
            let key = format!("maintenance[{i}]");
            if let Some(bad) = m.servers.iter().find(|g| !valid_glob(g)) {
                return Err(format!(
                    "{key}.servers: {bad:?} is not a server name or glob: letters, digits, '.', \
                     '-', '_', '*' and '?' are allowed"
                ));
            }
            if m.servers.is_empty() || m.reason.trim().is_empty() {
                return Err(format!(
                    "{key}: servers and reason are required (what the window is for)"
                ));
            }
            let (days, start_min, end_min) =
                Maintenance::parse(&format!("{key}.weekly"), &m.weekly)?;
            maintenance.push(Maintenance {
                servers: m.servers,
                days,
                start_min,
                end_min,
                reason: m.reason,
            });
        }
        let mut channels: Vec<Channel> = Vec::new();
        for (i, c) in raw.channels.into_iter().enumerate() {
            let at = format!("channel[{i}]");
            check_name(&format!("{at}.name"), &c.name)?;
            if channels.iter().any(|d| d.name == c.name) {
                return Err(format!("{at}.name: {:?} is defined twice", c.name));
            }
            let at = format!("channel {:?}", c.name);
            let email_keys = EmailKeys {
                tls: c.tls,
                from: c.from,
                to: c.to,
                username: c.username,
                password: c.password,
                password_file: c.password_file,
                ca_file: c.ca_file,
            };
            let email = match c.kind {
                ChannelKind::Email => Some(email_keys.check(&at, &c.url)?),
                kind => {
                    if let Some(key) = email_keys.first_set() {
                        return Err(format!(
                            "{at}: {key}: only an email channel has it (this one is {})",
                            kind.as_str()
                        ));
                    }
                    check_url(&format!("{at}: url"), &c.url)?;
                    None
                }
            };
            if c.secret.is_some() && c.kind != ChannelKind::Webhook {
                return Err(format!(
                    "channel {:?}: secret: only a webhook channel signs its messages (this one \
                     is {})",
                    c.name,
                    c.kind.as_str()
                ));
            }
            if c.secret.as_deref().is_some_and(|s| s.len() < 16) {
                return Err(format!(
                    "channel {:?}: secret: at least 16 characters are required",
                    c.name
                ));
            }
            channels.push(Channel {
                name: c.name,
                kind: c.kind,
                url: c.url,
                secret: c.secret,
                email,
            });
        }
        let mut rules: Vec<Rule> = Vec::new();
        for (i, r) in raw.rules.into_iter().enumerate() {
            let at = format!("rule {:?}", r.name);
            check_name(&format!("rule[{i}].name"), &r.name)?;
            if rules.iter().any(|d| d.name == r.name) {
                return Err(format!("rule[{i}].name: {:?} is defined twice", r.name));
            }
            if r.channels.is_empty() {
                return Err(format!("{at}: channels: at least one channel is required"));
            }
            for c in &r.channels {
                if !channels.iter().any(|d| &d.name == c) {
                    let defined: Vec<&str> = channels.iter().map(|d| d.name.as_str()).collect();
                    return Err(format!(
                        "{at}: channels: {c:?} is not a defined channel; defined: {}",
                        list_or_none(&defined)
                    ));
                }
            }
            let causes = r.causes.unwrap_or_else(|| vec!["*".to_owned()]);
            for c in &causes {
                if c != "*" && c.parse::<Cause>().is_err() {
                    let ids: Vec<&str> = Cause::ALL.iter().map(|c| c.id()).collect();
                    return Err(format!(
                        "{at}: causes: {c:?} is not a cause; use \"*\" or one of: {}",
                        ids.join(", ")
                    ));
                }
            }
            let servers = r.servers.unwrap_or_else(|| vec!["*".to_owned()]);
            if let Some(bad) = servers.iter().find(|g| !valid_glob(g)) {
                return Err(format!(
                    "{at}: servers: {bad:?} is not a server name or glob: letters, digits, '.', \
                     '-', '_', '*' and '?' are allowed"
                ));
            }
            let after = r.after.unwrap_or(DEFAULT_AFTER);
            if !(1..=1000).contains(&after) {
                return Err(format!(
                    "{at}: after: {after} failed checks is out of range: 1 to 1000 are allowed"
                ));
            }
            let after_for = r
                .after_for
                .as_deref()
                .map(|t| duration_key(&format!("{at}: for"), t))
                .transpose()?;
            let repeat = match r.repeat.as_deref().unwrap_or(DEFAULT_REPEAT) {
                "off" => None,
                t => {
                    let d = duration_key(&format!("{at}: repeat"), t)?;
                    if d < Duration::from_secs(60) {
                        return Err(format!(
                            "{at}: repeat: {t:?} is too often: at least 1m is allowed, or \"off\""
                        ));
                    }
                    Some(d)
                }
            };
            let stale_after = match r.stale_after.unwrap_or(DEFAULT_STALE_AFTER) {
                0 => None,
                n if n <= 1000 => Some(n),
                n => {
                    return Err(format!(
                        "{at}: stale_after: {n} intervals is out of range: 1 to 1000 are \
                         allowed, or 0 for no stale alerts"
                    ));
                }
            };
            rules.push(Rule {
                name: r.name,
                servers,
                causes,
                channels: r.channels,
                after,
                after_for,
                repeat,
                stale_after,
                conditions: r.conditions.unwrap_or(false),
            });
        }
        Ok(CollectorConfig {
            public_url,
            channels,
            rules,
            give_up,
            merge_gap,
            group_window,
            group_wait,
            maintenance,
        })
    }

    pub fn channel(&self, name: &str) -> Option<&Channel> {
        self.channels.iter().find(|c| c.name == name)
    }

    /// What `check-config` and a reload print: counts, and what is probably a mistake.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} channel(s), {} rule(s)",
            self.channels.len(),
            self.rules.len()
        );
        if !self.maintenance.is_empty() {
            s.push_str(&format!(
                ", {} weekly maintenance window(s)",
                self.maintenance.len()
            ));
        }
        let used: BTreeSet<&str> = self
            .rules
            .iter()
            .flat_map(|r| r.channels.iter().map(String::as_str))
            .collect();
        for c in self
            .channels
            .iter()
            .filter(|c| !used.contains(c.name.as_str()))
        {
            s.push_str(&format!("; channel {:?} is used by no rule", c.name));
        }
        if self.public_url.is_none() && !self.rules.is_empty() {
            s.push_str("; no public_url: messages carry no link to the page");
        }
        s
    }
}

fn list_or_none(names: &[&str]) -> String {
    match names {
        [] => "none".to_owned(),
        names => names.join(", "),
    }
}

fn check_name(key: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    match ok {
        true => Ok(()),
        false => Err(format!(
            "{key}: {name:?} is not a name: 1 to 64 letters, digits, '.', '-' and '_' are allowed"
        )),
    }
}

fn check_url(key: &str, url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err(format!(
            "{key}: {url:?} is not an http:// or https:// URL with a host"
        )),
        Err(e) => Err(format!("{key}: {url:?} is not a URL: {e}")),
    }
}

fn duration_key(key: &str, text: &str) -> Result<Duration, String> {
    duration::parse(text).map_err(|e| format!("{key}: {e}"))
}

/// [`duration_key`] where zero (`0s`, `0m`) is allowed and turns the thing off.
fn duration_or_zero(key: &str, text: &str) -> Result<Duration, String> {
    match text.trim() {
        "0s" | "0m" | "0h" | "0d" => Ok(Duration::ZERO),
        _ => duration_key(key, text).map_err(|e| format!("{e} (or 0s)")),
    }
}

fn valid_glob(glob: &str) -> bool {
    !glob.is_empty()
        && glob
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '*' | '?'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
public_url = "https://causeway.example.net/"

[[channel]]
name = "ops"
kind = "webhook"
url = "https://hooks.example.net/causeway"
secret = "0123456789abcdef"

[[channel]]
name = "chat"
kind = "slack"
url = "https://chat.example.net/hooks/abc"

[[rule]]
name = "web"
servers = ["web-*"]
causes = ["*"]
channels = ["ops", "chat"]
after = 3
for = "2m"
repeat = "off"
stale_after = 0
"#;

    #[test]
    fn a_full_config_and_its_defaults() {
        let c = CollectorConfig::parse(FULL).unwrap();
        assert_eq!(
            c.public_url.as_deref(),
            Some("https://causeway.example.net")
        );
        assert_eq!(c.channels.len(), 2);
        let r = &c.rules[0];
        assert_eq!(
            (r.after, r.after_for, r.repeat, r.stale_after),
            (3, Some(Duration::from_secs(120)), None, None)
        );
        assert!(r.matches_server("web-01") && !r.matches_server("db-01"));
        let minimal = "[[channel]]\nname = \"a\"\nkind = \"ntfy\"\nurl = \"http://n/t\"\n\
                       [[rule]]\nname = \"all\"\nchannels = [\"a\"]\n";
        let c = CollectorConfig::parse(minimal).unwrap();
        let r = &c.rules[0];
        assert_eq!(
            (r.after, r.after_for, r.repeat, r.stale_after),
            (2, None, Some(Duration::from_secs(4 * 3600)), Some(3))
        );
        assert_eq!(
            (r.servers.clone(), r.causes.clone()),
            (vec!["*".to_owned()], vec!["*".to_owned()])
        );
        assert_eq!(c.give_up, Duration::from_secs(86_400));
        assert_eq!(c.merge_gap, Duration::from_secs(600));
        assert_eq!(c.group_window, Duration::from_secs(30));
        assert_eq!(c.group_wait, Duration::ZERO);
        assert_eq!(
            c.summary(),
            "1 channel(s), 1 rule(s); no public_url: messages carry no link to the page"
        );
        // 0s turns merging, grouping and waiting off, as the example says.
        let off = CollectorConfig::parse(
            "merge_gap = \"0s\"\ngroup_window = \"0m\"\ngroup_wait = \"0s\"\n",
        )
        .unwrap();
        assert_eq!(
            (off.merge_gap, off.group_window, off.group_wait),
            (Duration::ZERO, Duration::ZERO, Duration::ZERO)
        );
    }

    #[test]
    fn mistakes_name_the_key_the_value_and_what_is_allowed() {
        let base = "[[channel]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"http://h/x\"\n";
        let rule =
            |extra: &str| format!("{base}[[rule]]\nname = \"r\"\nchannels = [\"a\"]\n{extra}");
        for (text, want) in [
            (format!("{base}bogus = 1\n"), "unknown field `bogus`"),
            ("[[channel]]\nname = \"a\"\nkind = \"pager\"\nurl = \"http://h\"\n".to_owned(), "unknown variant `pager`"),
            (format!("{base}[[channel]]\nname = \"a\"\nkind = \"ntfy\"\nurl = \"http://h\"\n"), "channel[1].name: \"a\" is defined twice"),
            ("[[channel]]\nname = \"a\"\nkind = \"ntfy\"\nurl = \"ftp://h/x\"\n".to_owned(), "channel \"a\": url: \"ftp://h/x\" is not an http:// or https:// URL with a host"),
            ("[[channel]]\nname = \"a\"\nkind = \"slack\"\nurl = \"http://h\"\nsecret = \"0123456789abcdef\"\n".to_owned(), "only a webhook channel signs"),
            ("[[channel]]\nname = \"a\"\nkind = \"webhook\"\nurl = \"http://h\"\nto = [\"x@y.z\"]\n".to_owned(), "channel \"a\": to: only an email channel has it (this one is webhook)"),
            ("[[channel]]\nname = \"m\"\nkind = \"email\"\nurl = \"smtp://h\"\nfrom = \"a@b.c\"\n".to_owned(), "channel \"m\": to: at least one recipient is required"),
            (format!("{base}[[rule]]\nname = \"r\"\nchannels = [\"b\"]\n"), "rule \"r\": channels: \"b\" is not a defined channel; defined: a"),
            (rule("causes = [\"oom\"]\n"), "rule \"r\": causes: \"oom\" is not a cause; use \"*\" or one of: "),
            (rule("servers = [\"web 01\"]\n"), "rule \"r\": servers: \"web 01\" is not a server name or glob"),
            (rule("after = 0\n"), "rule \"r\": after: 0 failed checks is out of range: 1 to 1000 are allowed"),
            (rule("repeat = \"30s\"\n"), "rule \"r\": repeat: \"30s\" is too often: at least 1m is allowed, or \"off\""),
            (rule("for = \"soon\"\n"), "rule \"r\": for: invalid duration \"soon\""),
            ("public_url = \"causeway\"\n".to_owned(), "public_url: \"causeway\" is not a URL"),
            ("merge_gap = \"2d\"\n".to_owned(), "merge_gap: \"2d\" is too long: at most 1d is allowed"),
            ("group_window = \"2h\"\n".to_owned(), "group_window: \"2h\" is too long: at most 1h is allowed"),
            ("group_wait = \"10m\"\n".to_owned(), "group_wait: \"10m\" is too long: at most 5m is allowed"),
            ("group_wait = \"5s\"\ngroup_window = \"0s\"\n".to_owned(), "group_wait: waits to group messages, and group_window = \"0s\" turns grouping off"),
        ] {
            let err = CollectorConfig::parse(&text).unwrap_err();
            assert!(err.contains(want), "{text}\n-> {err}\nwanted: {want}");
        }
    }

    #[test]
    fn weekly_maintenance_windows() {
        let c = CollectorConfig::parse(
            "[[maintenance]]\nservers = [\"web-*\"]\nweekly = \"sat,sun 23:00-01:30\"\n\
             reason = \"kernel updates\"\n",
        )
        .unwrap();
        let m = &c.maintenance[0];
        // 2026-12-05 is a Saturday, 2026-12-07 a Monday.
        let at =
            |day: i64, h: i64, min: i64| 1_796_428_800_000 + ((day * 24 + h) * 60 + min) * 60_000;
        assert!(m.covers("web-01", at(0, 23, 0)), "Saturday 23:00");
        assert!(
            m.covers("web-01", at(1, 1, 29)),
            "Sunday 01:29, the night after Saturday"
        );
        assert!(!m.covers("web-01", at(1, 1, 30)), "the end is not in it");
        assert!(!m.covers("web-01", at(0, 22, 59)));
        assert!(
            m.covers("web-01", at(2, 0, 30)),
            "Monday 00:30, the night after Sunday"
        );
        assert!(
            !m.covers("web-01", at(2, 23, 0)),
            "Monday evening is not listed"
        );
        assert!(!m.covers("db-01", at(0, 23, 0)), "another server");
        // Friday noon to Monday noon: Saturday night's and Sunday night's windows, the
        // second ending on Monday.
        assert_eq!(
            m.occurrences(at(-1, 12, 0), at(2, 12, 0)),
            [(at(0, 23, 0), at(1, 1, 30)), (at(1, 23, 0), at(2, 1, 30))]
        );
        // A span starting inside Sunday night's window is cut to it; every occurrence agrees
        // with `covers` at its edges.
        let cut = m.occurrences(at(2, 0, 0), at(2, 12, 0));
        assert_eq!(cut, [(at(2, 0, 0), at(2, 1, 30))]);
        for (start, end) in m.occurrences(at(-7, 0, 0), at(7, 0, 0)) {
            assert!(m.covers("web-01", start) && m.covers("web-01", end - 60_000));
            assert!(!m.covers("web-01", end));
        }
        assert_eq!(
            c.summary(),
            "0 channel(s), 0 rule(s), 1 weekly maintenance window(s)"
        );
        let daily = CollectorConfig::parse(
            "[[maintenance]]\nservers = [\"*\"]\nweekly = \"daily 03:00-03:15\"\nreason = \"backup\"\n",
        )
        .unwrap();
        assert!(daily.maintenance[0].covers("x", at(3, 3, 10)));
        for (weekly, want) in [
            (
                "sun",
                "maintenance[0].weekly: \"sun\" is not a weekly window",
            ),
            ("sunday 02:00-04:00", "is not a weekly window"),
            ("sun 2:00-04:00", "is not a weekly window"),
            ("sun 02:00-24:00", "is not a weekly window"),
            ("sun 02:00-02:00", "is empty"),
        ] {
            let text = format!(
                "[[maintenance]]\nservers = [\"web-*\"]\nweekly = \"{weekly}\"\nreason = \"x\"\n"
            );
            let err = CollectorConfig::parse(&text).unwrap_err();
            assert!(err.contains(want), "{weekly}: {err}");
        }
    }
}
