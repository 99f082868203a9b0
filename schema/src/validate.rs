//! Checks a report's values before a collector stores it. Pure: the caller passes the clock.
//!
//! Every error names the field (a path such as `results[2].status`), the value it had and what
//! is allowed, so a probe's operator can fix the probe from the collector's answer alone.

use std::fmt;

use crate::names::{CANARY_NAME_RULE, MAX_SERVER_NAME, SERVER_NAME_RULE};
use crate::{CanaryName, Cause, CheckResult, HostEvidence, Report, Resolution, SCHEMA_VERSION};

/// Most check results one report may carry.
pub const MAX_RESULTS: usize = 1_000;
/// Most resolutions one report may carry: one per canary given by name (a probe allows 50).
const MAX_RESOLUTIONS: usize = 256;
/// Most name servers per resolution: the configured resolvers, `system` expanded to the
/// servers of resolv.conf.
const MAX_RESOLVERS: usize = 32;
/// Most queries per name server (a probe asks A and AAAA).
const MAX_QUERIES: usize = 8;
/// Contributing causes of one check at most (the vocabulary has a few dozen causes).
const MAX_CONTRIBUTING: usize = 16;
/// The longest explanation of a check's diagnosis or a resolver's condition.
const MAX_EXPLANATION: usize = 1024;
/// A report more than this far in the future of the collector's clock is refused: dated
/// later, it would sort after the reports that follow it. Within it, the collector orders a
/// server's reports by its own clock and flags the difference (`clock_skew`).
pub const MAX_CLOCK_AHEAD_MS: i64 = 5 * 60 * 1000;
/// 2020-01-01T00:00:00Z: anything older is a broken clock, not a late report.
const EARLIEST_MS: i64 = 1_577_836_800_000;

/// One value that is not allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where in the report, e.g. `results[2].status`.
    pub field: String,
    /// The value it had, quoted or shortened for display.
    pub value: String,
    /// What would have been accepted.
    pub allowed: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} is not allowed; expected {}",
            self.field, self.value, self.allowed
        )
    }
}

/// All the problems of a report, in field order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid report: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidReport(pub Vec<FieldError>);

impl Report {
    /// Checks every field a collector relies on. `now_ms` is the collector's clock.
    pub fn validate(&self, now_ms: i64) -> Result<(), InvalidReport> {
        let mut v = Validator::default();
        v.check(
            "schema_version",
            self.schema_version,
            (1..=SCHEMA_VERSION).contains(&self.schema_version),
            || format!("1 to {SCHEMA_VERSION} (this collector's newest)"),
        );
        v.check(
            "server",
            quoted(&self.server),
            self.server.is_valid(),
            || SERVER_NAME_RULE.to_owned(),
        );
        v.text("probe.host", &self.probe.host, 1, MAX_SERVER_NAME);
        v.text("probe.version", &self.probe.version, 1, 64);
        v.time("started_at_ms", self.started_at_ms, now_ms);
        v.check(
            "interval_s",
            self.interval_s,
            (1..=86_400).contains(&self.interval_s),
            || "1 to 86400 seconds".to_owned(),
        );
        v.count("results", self.results.len(), MAX_RESULTS, "results");
        // A report without checks says nothing of the server's health: stored, it would close
        // the open incident and set the server up.
        v.check("results", "a list of 0", !self.results.is_empty(), || {
            "at least one check (a probe has at least one canary)".to_owned()
        });
        for (i, result) in self.results.iter().take(MAX_RESULTS).enumerate() {
            v.result(&format!("results[{i}]"), result, now_ms);
        }
        let resolutions = self.resolutions.len();
        v.count("resolutions", resolutions, MAX_RESOLUTIONS, "resolutions");
        for (i, res) in self.resolutions.iter().take(MAX_RESOLUTIONS).enumerate() {
            v.resolution(&format!("resolutions[{i}]"), res);
        }
        if let Some(host) = &self.host {
            v.host("host", host);
        }
        v.finish()
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn check(
        &mut self,
        field: &str,
        value: impl fmt::Display,
        ok: bool,
        allowed: impl FnOnce() -> String,
    ) {
        if !ok {
            self.errors.push(FieldError {
                field: field.to_owned(),
                value: value.to_string(),
                allowed: allowed(),
            });
        }
    }

    /// A list of at most `max` items (`what` names them in the message).
    fn count(&mut self, field: &str, len: usize, max: usize, what: &str) {
        self.check(field, format!("a list of {len}"), len <= max, || {
            format!("at most {max} {what}")
        });
    }

    fn text(&mut self, field: &str, value: &str, min: usize, max: usize) {
        let len = value.chars().count();
        self.check(field, quoted(value), (min..=max).contains(&len), || {
            format!("text of {min} to {max} characters")
        });
    }

    fn canary(&mut self, field: &str, name: &CanaryName) {
        self.check(field, quoted(name), name.is_valid(), || {
            CANARY_NAME_RULE.to_owned()
        });
    }

    fn time(&mut self, field: &str, ms: i64, now_ms: i64) {
        let latest = now_ms.saturating_add(MAX_CLOCK_AHEAD_MS);
        self.check(field, ms, (EARLIEST_MS..=latest).contains(&ms), || {
            let why = if ms < EARLIEST_MS {
                "this is before 2020: is the probe host's clock set?".to_owned()
            } else {
                format!(
                    "this is {} s ahead: is the probe host's clock synchronized? see `timedatectl`",
                    ms.saturating_sub(now_ms) / 1000
                )
            };
            format!(
                "milliseconds since the Unix epoch, after 2020 and at most {} minutes ahead of \
                 the collector's clock ({why})",
                MAX_CLOCK_AHEAD_MS / 60_000
            )
        });
    }

    fn duration(&mut self, field: &str, ms: Option<f64>) {
        if let Some(ms) = ms {
            self.check(field, ms, ms.is_finite() && ms >= 0.0, || {
                "a finite number of milliseconds, 0 or more".to_owned()
            });
        }
    }

    fn result(&mut self, at: &str, r: &CheckResult, now_ms: i64) {
        self.canary(&format!("{at}.canary"), &r.canary);
        self.text(&format!("{at}.url"), &r.url, 1, 2048);
        self.time(&format!("{at}.started_at_ms"), r.started_at_ms, now_ms);
        if let Some(status) = r.status {
            self.check(
                &format!("{at}.status"),
                status,
                (100..=599).contains(&status),
                || "an HTTP status from 100 to 599".to_owned(),
            );
        }
        self.check(
            &format!("{at}.failure"),
            if r.failure.is_some() {
                "present"
            } else {
                "absent"
            },
            r.ok == r.failure.is_none(),
            || format!("a failure exactly when ok is false (ok is {})", r.ok),
        );
        if let Some(failure) = &r.failure {
            self.text(&format!("{at}.failure.message"), &failure.message, 0, 4096);
        }
        if let Some(diagnosis) = &r.diagnosis {
            self.text(
                &format!("{at}.diagnosis.explanation"),
                &diagnosis.explanation,
                1,
                MAX_EXPLANATION,
            );
            self.count(
                &format!("{at}.diagnosis.contributing"),
                diagnosis.contributing.len(),
                MAX_CONTRIBUTING,
                "causes",
            );
            self.check(&format!("{at}.diagnosis"), "present", !r.ok, || {
                "no diagnosis on a successful check".to_owned()
            });
        }
        let t = &r.timings;
        self.duration(&format!("{at}.timings.resolve_ms"), t.resolve_ms);
        self.duration(&format!("{at}.timings.connect_ms"), t.connect_ms);
        self.duration(&format!("{at}.timings.tls_ms"), t.tls_ms);
        self.duration(&format!("{at}.timings.first_byte_ms"), t.first_byte_ms);
        self.duration(&format!("{at}.timings.total_ms"), Some(t.total_ms));
        if let Some(excerpt) = &r.evidence.body_excerpt {
            // An excerpt of N bytes, decoded lossily, has at most N characters.
            let max = crate::BODY_EXCERPT_MAX;
            self.text(&format!("{at}.evidence.body_excerpt"), excerpt, 0, max);
        }
        if let Some(trace) = &r.evidence.trace {
            self.count(
                &format!("{at}.evidence.trace.packets"),
                trace.packets.len(),
                crate::TRACE_MAX_PACKETS,
                "packets",
            );
        }
        if let Some(listeners) = &r.evidence.listeners {
            self.count(
                &format!("{at}.evidence.listeners.listeners"),
                listeners.listeners.len(),
                crate::LISTENERS_MAX,
                "listeners",
            );
        }
        if let Some(backends) = &r.evidence.backends {
            let at = format!("{at}.evidence.backends.backends");
            let all = &backends.backends;
            self.count(&at, all.len(), crate::BACKENDS_MAX, "backends");
            for (j, b) in all.iter().take(crate::BACKENDS_MAX).enumerate() {
                let max = crate::SIGHTINGS_MAX;
                self.count(
                    &format!("{at}[{j}].seen_at"),
                    b.seen_at.len(),
                    max,
                    "sightings",
                );
            }
        }
        if let Some(host) = &r.evidence.host {
            self.host(&format!("{at}.evidence.host"), host);
        }
        if let Some(tls) = &r.evidence.tls {
            self.tls(&format!("{at}.evidence.tls"), tls);
        }
    }

    /// The handshake: bounded lists and texts (names are DNS names or addresses, subjects
    /// and issuers are a certificate's own limits).
    fn tls(&mut self, at: &str, tls: &crate::TlsEvidence) {
        self.text(&format!("{at}.sni"), &tls.sni, 0, 253);
        let chain = &tls.chain;
        self.count(
            &format!("{at}.chain"),
            chain.len(),
            crate::TLS_CHAIN_MAX,
            "certificates",
        );
        for (i, c) in chain.iter().take(crate::TLS_CHAIN_MAX).enumerate() {
            let at = format!("{at}.chain[{i}]");
            self.text(&format!("{at}.subject"), &c.subject, 0, 1024);
            self.text(&format!("{at}.issuer"), &c.issuer, 0, 1024);
            self.count(
                &format!("{at}.names"),
                c.names.len(),
                crate::TLS_NAMES_MAX,
                "names",
            );
            for (j, name) in c.names.iter().take(crate::TLS_NAMES_MAX).enumerate() {
                self.text(&format!("{at}.names[{j}]"), name, 1, 253);
            }
        }
    }

    /// The host's readings: the collector stores the latest sample every cycle and each
    /// condition's explanation and evidence.
    fn host(&mut self, at: &str, host: &HostEvidence) {
        let lists = [
            (
                "memory",
                host.memory.len(),
                crate::MEMORY_SAMPLES_MAX,
                "samples",
            ),
            (
                "oom_kills",
                host.oom_kills.len(),
                crate::OOM_KILLS_MAX,
                "kills",
            ),
            (
                "kernel_lines",
                host.kernel_lines.len(),
                crate::KERNEL_LINES_MAX,
                "lines",
            ),
            (
                "warnings",
                host.warnings.len(),
                crate::HOST_WARNINGS_MAX,
                "warnings",
            ),
            (
                "conditions",
                host.conditions.len(),
                Cause::ALL.len(),
                "conditions",
            ),
        ];
        for (field, len, max, what) in lists {
            self.count(&format!("{at}.{field}"), len, max, what);
        }
        self.text(&format!("{at}.boot_id"), &host.boot_id, 0, 64);
        for (i, line) in host
            .kernel_lines
            .iter()
            .take(crate::KERNEL_LINES_MAX)
            .enumerate()
        {
            self.text(&format!("{at}.kernel_lines[{i}].text"), &line.text, 0, 1024);
        }
        for (i, w) in host
            .warnings
            .iter()
            .take(crate::HOST_WARNINGS_MAX)
            .enumerate()
        {
            self.text(&format!("{at}.warnings[{i}]"), w, 1, MAX_EXPLANATION);
        }
        for (i, c) in host.conditions.iter().take(Cause::ALL.len()).enumerate() {
            let at = format!("{at}.conditions[{i}]");
            self.text(
                &format!("{at}.explanation"),
                &c.explanation,
                1,
                MAX_EXPLANATION,
            );
            self.count(&format!("{at}.evidence"), c.evidence.len(), 32, "lines");
        }
        let t = &host.thresholds;
        let ranges = [
            ("leak_share_pct", t.leak_share_pct),
            ("cpu_some_pct", t.cpu_some_pct),
            ("memory_full_pct", t.memory_full_pct),
            ("io_full_pct", t.io_full_pct),
        ];
        for (field, pct) in ranges {
            self.check(
                &format!("{at}.thresholds.{field}"),
                pct,
                (0.0..=100.0).contains(&pct),
                || "a percentage from 0 to 100".to_owned(),
            );
        }
    }

    /// One canary's resolution: the collector keeps a row per name server and cycle, and the
    /// explanation of each condition.
    fn resolution(&mut self, at: &str, res: &Resolution) {
        self.canary(&format!("{at}.canary"), &res.canary);
        self.text(&format!("{at}.name"), &res.name, 1, 253);
        let resolvers = &res.resolvers;
        self.count(
            &format!("{at}.resolvers"),
            resolvers.len(),
            MAX_RESOLVERS,
            "resolvers",
        );
        for (j, r) in resolvers.iter().take(MAX_RESOLVERS).enumerate() {
            let at = format!("{at}.resolvers[{j}]");
            self.text(&format!("{at}.resolver"), &r.resolver, 1, 128);
            self.count(
                &format!("{at}.queries"),
                r.queries.len(),
                MAX_QUERIES,
                "queries",
            );
            for (k, q) in r.queries.iter().take(MAX_QUERIES).enumerate() {
                self.duration(&format!("{at}.queries[{k}].elapsed_ms"), Some(q.elapsed_ms));
            }
            if let Some(condition) = &r.condition {
                self.text(
                    &format!("{at}.condition.explanation"),
                    &condition.explanation,
                    1,
                    MAX_EXPLANATION,
                );
            }
        }
    }

    fn finish(self) -> Result<(), InvalidReport> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(InvalidReport(self.errors))
        }
    }
}

/// A string for an error message: quoted, and cut at 80 characters (a client's text echoed
/// back must not make the answer as long as the request).
pub fn quoted(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        format!("{s:?}")
    } else {
        let head: String = s.chars().take(MAX).collect();
        format!("{head:?}... ({} characters)", s.chars().count())
    }
}
