//! `GET /metrics`: the fleet in the Prometheus text exposition format, version 0.0.4, written
//! by hand ([`Exposition`]).
//!
//! What the database knows is read in one read transaction (the figures agree with each other)
//! and in a fixed number of queries whatever the number of servers: the rollups of migration
//! 0004 for availability and check counts, one `GROUP BY` per table for the open incidents and
//! conditions. What the collector saw of ingest is counted in memory since it started
//! ([`IngestCounters`], shared through [`crate::api::AppState`]).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::{Any, AnyPool, Transaction};

use crate::clock;
use crate::read;
use crate::views::ServerState;

/// The Content-Type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const STATES: [ServerState; 4] = [
    ServerState::Up,
    ServerState::Down,
    ServerState::Stale,
    ServerState::Unknown,
];

/// What became of a `POST /api/v1/reports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestOutcome {
    /// Stored (200).
    Stored,
    /// Already stored (200, `duplicate`).
    Duplicate,
    /// Refused as malformed, invalid, too large or too slow (a 4xx other than 401 and 403).
    Rejected,
    /// No valid token, or a token of another server (401, 403).
    Unauthorized,
    /// Failed on the collector's side (5xx).
    Error,
}

impl IngestOutcome {
    pub const ALL: [IngestOutcome; 5] = [
        IngestOutcome::Stored,
        IngestOutcome::Duplicate,
        IngestOutcome::Rejected,
        IngestOutcome::Unauthorized,
        IngestOutcome::Error,
    ];

    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            IngestOutcome::Stored => "stored",
            IngestOutcome::Duplicate => "duplicate",
            IngestOutcome::Rejected => "rejected",
            IngestOutcome::Unauthorized => "unauthorized",
            IngestOutcome::Error => "error",
        }
    }
}

/// Ingest counted in memory since the collector started (a restart starts from 0, which
/// Prometheus' `rate` and `increase` expect of a counter).
#[derive(Debug)]
pub struct IngestCounters {
    started_at_ms: i64,
    /// By [`IngestOutcome`], in [`IngestOutcome::ALL`] order.
    reports: [AtomicU64; 5],
    /// Checks of stored reports.
    results: AtomicU64,
}

impl IngestCounters {
    /// Counters from 0, for a collector that started at `started_at_ms`.
    pub fn new(started_at_ms: i64) -> Self {
        IngestCounters {
            started_at_ms,
            reports: Default::default(),
            results: AtomicU64::new(0),
        }
    }

    /// Counts a report by its outcome.
    pub fn report(&self, outcome: IngestOutcome) {
        self.reports[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts the checks of a stored report.
    pub fn results_stored(&self, checks: usize) {
        self.results
            .fetch_add(u64::try_from(checks).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn reports(&self, outcome: IngestOutcome) -> u64 {
        self.reports[outcome as usize].load(Ordering::Relaxed)
    }

    pub fn results(&self) -> u64 {
        self.results.load(Ordering::Relaxed)
    }

    pub fn started_at_ms(&self) -> i64 {
        self.started_at_ms
    }
}

/// Counters of a collector starting now, by the wall clock.
impl Default for IngestCounters {
    fn default() -> Self {
        IngestCounters::new(clock::system_now_ms())
    }
}

/// A metric family's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// A sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        // Beyond i64 only as a float: a counter that large is already approximate in
        // Prometheus, which stores float64.
        i64::try_from(v).map_or(Value::Float(v as f64), Value::Int)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}

/// Milliseconds since the epoch as seconds, the unit of Prometheus timestamps.
fn seconds(ms: i64) -> Value {
    Value::Float(ms as f64 / 1000.0)
}

/// A text exposition being written: a [`family`](Exposition::family) (its `# HELP` and
/// `# TYPE`), then its [`sample`](Exposition::sample)s, then the next family. Metric and label
/// names are the caller's constants; label values and help text are escaped.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    pub fn new() -> Self {
        Exposition::default()
    }

    /// Starts the family `name`: every family has a help text and a type, samples or not.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        for c in help.chars() {
            match c {
                '\\' => self.out.push_str("\\\\"),
                '\n' => self.out.push_str("\\n"),
                c => self.out.push(c),
            }
        }
        self.out.push('\n');
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    /// One sample of the family just started.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(label);
                self.out.push_str("=\"");
                escape_label_value(&mut self.out, value);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value.into() {
            Value::Int(v) => {
                let _ = write!(self.out, "{v}");
            }
            Value::Float(v) if v.is_nan() => self.out.push_str("NaN"),
            Value::Float(v) if v == f64::INFINITY => self.out.push_str("+Inf"),
            Value::Float(v) if v == f64::NEG_INFINITY => self.out.push_str("-Inf"),
            // Rust prints the shortest text that reads back as the same float, never with an
            // exponent: `1`, `0.75`, `1795435470.123`.
            Value::Float(v) => {
                let _ = write!(self.out, "{v}");
            }
        }
        self.out.push('\n');
    }

    /// The exposition's text.
    pub fn finish(self) -> String {
        self.out
    }
}

/// A label value as the format wants it between double quotes: backslash, double quote and
/// line feed escaped.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The whole exposition at `now_ms`.
pub async fn render(
    pool: &AnyPool,
    ingest: &IngestCounters,
    writer: &crate::ingest::Writer,
    now_ms: i64,
) -> Result<String, read::ReadError> {
    let mut x = Exposition::new();
    write_collector(&mut x, ingest, writer);
    // The servers, their states and availability as the overview page reads them.
    write_servers(&mut x, &read::fleet(pool, now_ms).await?);
    // A deferred transaction on a read-only connection: one snapshot for the counts.
    let mut tx = pool.begin().await?;
    write_results(&mut x, &mut tx).await?;
    write_clock_offsets(&mut x, &mut tx).await?;
    write_cycles(&mut x, &mut tx).await?;
    write_tls_expiry(&mut x, &mut tx, now_ms).await?;
    write_open(&mut x, &mut tx).await?;
    tx.rollback().await?;
    Ok(x.finish())
}

fn write_collector(x: &mut Exposition, ingest: &IngestCounters, writer: &crate::ingest::Writer) {
    let name = "causeway_collector_start_time_seconds";
    x.family(
        name,
        Kind::Gauge,
        "When the collector started, in seconds since the Unix epoch.",
    );
    x.sample(name, &[], seconds(ingest.started_at_ms()));

    let name = "causeway_ingest_reports_total";
    x.family(
        name,
        Kind::Counter,
        "Reports posted to the collector since it started, by outcome: stored, duplicate \
         (already stored), rejected (malformed, invalid or too large), unauthorized (no valid \
         token, or another server's), error (failed on the collector's side).",
    );
    for outcome in IngestOutcome::ALL {
        x.sample(
            name,
            &[("outcome", outcome.as_str())],
            ingest.reports(outcome),
        );
    }

    let name = "causeway_ingest_results_total";
    x.family(
        name,
        Kind::Counter,
        "Checks of the reports stored since the collector started.",
    );
    x.sample(name, &[], ingest.results());

    let name = "causeway_ingest_queue";
    x.family(
        name,
        Kind::Gauge,
        "Reports (and pruning steps) waiting for the database writer; near its bound of 512, \
         probes wait for their answers.",
    );
    x.sample(name, &[], writer.queued() as u64);

    let name = "causeway_ingest_batches_total";
    x.family(
        name,
        Kind::Counter,
        "Transactions the database writer began since the collector started: with the reports \
         stored, how many reports share a commit.",
    );
    x.sample(name, &[], writer.batches());
}

fn write_servers(x: &mut Exposition, fleet: &read::Fleet) {
    let name = "causeway_server_up";
    x.family(
        name,
        Kind::Gauge,
        "1 when the server's state is up (its latest report's checks all passed), else 0.",
    );
    for s in &fleet.servers {
        x.sample(name, &[("server", &s.name)], s.state == ServerState::Up);
    }

    let name = "causeway_server_state";
    x.family(
        name,
        Kind::Gauge,
        "The server's state: 1 for the current one of up, down (failed checks in the latest \
         report), stale (no report for 3 intervals and 10 s), unknown (no report yet).",
    );
    for s in &fleet.servers {
        for state in STATES {
            x.sample(
                name,
                &[("server", &s.name), ("state", state.as_str())],
                s.state == state,
            );
        }
    }

    let name = "causeway_server_last_report_timestamp_seconds";
    x.family(
        name,
        Kind::Gauge,
        "When the server's newest report started, in seconds since the Unix epoch.",
    );
    for s in &fleet.servers {
        if let Some(ms) = s.last_report_ms {
            x.sample(name, &[("server", &s.name)], seconds(ms));
        }
    }

    let name = "causeway_server_availability_ratio";
    x.family(
        name,
        Kind::Gauge,
        "Checks that passed out of all checks of the server over the window, from whole UTC \
         hours (24h) or days (7d, 30d); no sample without checks in the window. 1h is left \
         out: whole hours would make it up to two.",
    );
    for (i, (window, _)) in read::FLEET_WINDOWS.iter().enumerate() {
        for s in &fleet.servers {
            if let Some(ratio) = s.availability[i].ratio {
                x.sample(name, &[("server", &s.name), ("window", window)], ratio);
            }
        }
    }
}

async fn write_results(
    x: &mut Exposition,
    tx: &mut Transaction<'static, Any>,
) -> Result<(), sqlx::Error> {
    let name = "causeway_results_total";
    x.family(
        name,
        Kind::Counter,
        "Checks stored for the server, by cause (ok for a check that passed).",
    );
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT s.name, c.cause, c.n FROM result_counts c JOIN servers s ON s.id = c.server_id
         ORDER BY s.name, c.cause",
    )
    .fetch_all(&mut **tx)
    .await?;
    for (server, cause, n) in rows {
        x.sample(name, &[("server", &server), ("cause", &cause)], n);
    }
    Ok(())
}

/// How far each probe's clock is from the collector's, where the probe said (it sends its
/// clock with each report since the `causeway-sent-at` header).
async fn write_clock_offsets(
    x: &mut Exposition,
    tx: &mut Transaction<'static, Any>,
) -> Result<(), sqlx::Error> {
    let name = "causeway_server_clock_offset_seconds";
    x.family(
        name,
        Kind::Gauge,
        "How far the server's probe host's clock was ahead of the collector's (negative: \
         behind) at its newest report. 30 s or more either way is the host condition \
         clock_skew; more than 300 s ahead and reports are refused.",
    );
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT name, clock_offset_ms FROM servers WHERE clock_offset_ms IS NOT NULL
         ORDER BY name",
    )
    .fetch_all(&mut **tx)
    .await?;
    for (server, ms) in rows {
        x.sample(name, &[("server", &server)], seconds(ms));
    }
    Ok(())
}

/// How long each probe's newest cycle took, and its cycles that outran the interval (probes
/// that send `cycle` in their reports).
async fn write_cycles(
    x: &mut Exposition,
    tx: &mut Transaction<'static, Any>,
) -> Result<(), sqlx::Error> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT name, last_cycle_ms, cycle_overruns_total FROM servers
         WHERE last_cycle_ms IS NOT NULL AND cycle_overruns_total IS NOT NULL ORDER BY name",
    )
    .fetch_all(&mut **tx)
    .await?;
    let took = "causeway_probe_cycle_seconds";
    x.family(
        took,
        Kind::Gauge,
        "How long the server's probe took for its newest cycle (resolving, requests, evidence). \
         Longer than the interval and the next cycle waits for the following tick.",
    );
    for (server, ms, _) in &rows {
        x.sample(took, &[("server", server)], seconds(*ms));
    }
    let overruns = "causeway_probe_cycle_overruns_total";
    x.family(
        overruns,
        Kind::Counter,
        "Cycles of the server's probe that took longer than its interval, since the probe \
         started: it checked less often than configured.",
    );
    for (server, _, n) in &rows {
        x.sample(overruns, &[("server", server)], *n);
    }
    Ok(())
}

/// A certificate served within this long counts as the canary's current one.
const CERTIFICATE_CURRENT_MS: i64 = 86_400_000;

/// When each https canary's chain expires first (blackbox_exporter's
/// `probe_ssl_earliest_cert_expiry`): its newest certificate, seen within a day.
async fn write_tls_expiry(
    x: &mut Exposition,
    tx: &mut Transaction<'static, Any>,
    now_ms: i64,
) -> Result<(), sqlx::Error> {
    let name = "causeway_tls_earliest_expiry_timestamp_seconds";
    x.family(
        name,
        Kind::Gauge,
        "When the first certificate of the chain the canary serves expires, in seconds since \
         the Unix epoch (the newest chain seen in the last day). The probe's tls_warn_days and \
         tls_critical_days make it the conditions tls_expiry_warning and tls_expiry_critical.",
    );
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT s.name, c.name, t.chain_not_after_ms
         FROM tls_certificates t JOIN canaries c ON c.id = t.canary_id
              JOIN servers s ON s.id = t.server_id
         WHERE t.last_seen_at_ms >= $1
         ORDER BY s.name, c.name, t.last_seen_at_ms DESC",
    )
    .bind(now_ms.saturating_sub(CERTIFICATE_CURRENT_MS))
    .fetch_all(&mut **tx)
    .await?;
    // The newest per server and canary name (a canary whose URL changed has two ids).
    let mut last: Option<(&str, &str)> = None;
    for (server, canary, ms) in &rows {
        if last == Some((server, canary)) {
            continue;
        }
        last = Some((server, canary));
        x.sample(
            name,
            &[("server", server), ("canary", canary)],
            seconds(*ms),
        );
    }
    Ok(())
}

/// All servers' open incidents, always present (0 when none, where `sum()` of no series is no
/// value). Not `_total`: that suffix is for counters, and `promtool check metrics` says so.
pub const INCIDENTS_OPEN_ALL: &str = "causeway_incidents_open_all";

async fn write_open(
    x: &mut Exposition,
    tx: &mut Transaction<'static, Any>,
) -> Result<(), sqlx::Error> {
    let incidents = write_open_family(
        x,
        tx,
        "causeway_incidents_open",
        "Open incidents of the server (consecutive failed checks), by primary cause.",
        "SELECT s.name, i.cause, COUNT(*) FROM incidents i JOIN servers s ON s.id = i.server_id
         WHERE i.ended_at_ms IS NULL
         GROUP BY s.name, i.cause ORDER BY s.name, i.cause",
    )
    .await?;
    x.family(
        INCIDENTS_OPEN_ALL,
        Kind::Gauge,
        "Open incidents of all servers together.",
    );
    x.sample(INCIDENTS_OPEN_ALL, &[], incidents);
    write_open_family(
        x,
        tx,
        "causeway_host_conditions_open",
        "Open conditions of the server's probe host (what its probe finds wrong with the host \
         it runs on), by cause.",
        "SELECT s.name, c.cause, COUNT(*) FROM host_conditions c JOIN servers s ON s.id = c.server_id
         WHERE c.ended_at_ms IS NULL
         GROUP BY s.name, c.cause ORDER BY s.name, c.cause",
    )
    .await?;
    write_open_family(
        x,
        tx,
        "causeway_resolver_conditions_open",
        "Resolvers (name servers the server's probe asks for its canaries' names) with an open \
         condition, by cause.",
        "SELECT s.name, c.cause, COUNT(*)
         FROM resolver_conditions c JOIN resolvers r ON r.id = c.resolver_id
              JOIN servers s ON s.id = r.server_id
         WHERE c.ended_at_ms IS NULL
         GROUP BY s.name, c.cause ORDER BY s.name, c.cause",
    )
    .await?;
    Ok(())
}

/// The gauge `name` from `query`'s `(server, cause, count)` rows; answers the counts' sum.
async fn write_open_family(
    x: &mut Exposition,
    tx: &mut Transaction<'static, Any>,
    name: &str,
    help: &str,
    query: &str,
) -> Result<i64, sqlx::Error> {
    x.family(name, Kind::Gauge, help);
    let rows: Vec<(String, String, i64)> = sqlx::query_as(query).fetch_all(&mut **tx).await?;
    let mut sum = 0;
    for (server, cause, n) in rows {
        sum += n;
        x.sample(name, &[("server", &server), ("cause", &cause)], n);
    }
    Ok(sum)
}
