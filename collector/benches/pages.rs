//! How long the web page takes on the server side for a realistic fleet: the overview of 1,000
//! servers and one server's page, on a database holding 30 days of reports.
//!
//! Not a test: it prints figures to compare with the target (under 100 ms each) and asserts
//! nothing about speed. It does check that the data it made reads back (recent checks, the
//! evidence of incidents), so that the pages it times are the pages an operator would see.
//!
//! ```text
//! cargo bench -p causeway-collector --bench pages
//! cargo bench -p causeway-collector --bench pages -- --interval-min 5 --db /var/tmp/fleet.db
//! ```
//!
//! Options: `--interval-min N` (minutes between a server's reports, 5), `--servers N` (1000),
//! `--days N` (30), `--runs N` (timed runs per page, 30), `--db PATH` (keep the database
//! there; an existing complete one is reused as it is, its own interval included), `--html
//! DIR` (write the pages timed there, to look at them).
//!
//! The data is made in SQL, in one transaction per day of reports, as ingest would have written
//! it: one report with one check per server per interval (report ids are random UUIDs, rows of
//! all servers interleaved by time as they arrive), about 0.5% of the checks failed in a few
//! incidents per server (one open on 5% of the servers, whose last report failed: `down`), each
//! failed check with the failure, the classifier's diagnosis and the evidence a probe sends
//! (packet trace, listeners, host readings, DNS answers); the resolver and host conditions of
//! those incidents; the rollups of migration 0004 by its own INSERT ... SELECT; each server's
//! last checks in `servers.recent_checks` (as many as ingest keeps: `RECENT_MAX`). Not made:
//! the per-report rows of `resolver_observations` and `host_observations`, which neither page
//! reads.
//!
//! A page whose p95 misses the target is broken down: each SQL statement it ran (as sqlx logs
//! them, so the breakdown follows the code as it is), the time outside them, and for the
//! overview the decoding of the recent checks and the render without the heartbeat bars.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use causeway_collector::db::Db;
use causeway_collector::ingest::rollups::{RECENT_MAX, parse_recent};
use causeway_collector::read;
use causeway_collector::web::overview::{self, OverviewQuery};
use causeway_collector::web::server::{self, Audience};
use causeway_schema::{
    Cause, CheckResult, Direction, Evidence, Failure, FailureKind, HostCondition, PacketTrace,
    ResolverOutcome, ServerTtl, TcpFlags, Timings, TracePacket, TtlSource, classify,
    judge_resolvers,
};
use sqlx::SqliteConnection;

// The evidence builders of the collector's tests: the pages timed show what the tests check.
#[path = "../tests/common/mod.rs"]
mod common;
use common::{ProbeHost, nginx_listener_gone, refusing};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

const TARGET_MS: f64 = 100.0;
const WARMUP: usize = 3;
const MIN_MS: i64 = 60_000;
const DAY_MS: i64 = 86_400_000;
/// The causes of the failed checks, in turn.
const CAUSES: [Cause; 4] = [
    Cause::ConnectionRefused,
    Cause::Timeout,
    Cause::OomKill,
    Cause::DnsUpstreamBlock,
];
/// Every how many servers one has an open incident (5%).
const OPEN_EVERY: i64 = 20;
/// The page timed for a server without an open incident.
const PLAIN_SERVER: &str = "web-0042";
/// The system resolvers of every server.
const RESOLVERS: [&str; 2] = ["10.0.0.53", "10.0.0.54"];

struct Options {
    interval_min: i64,
    servers: i64,
    days: i64,
    runs: usize,
    db: Option<PathBuf>,
    html: Option<PathBuf>,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let mut o = Options {
            interval_min: 5,
            servers: 1000,
            days: 30,
            runs: 30,
            db: None,
            html: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value =
                |name: &str| args.next().with_context(|| format!("{name} needs a value"));
            match arg.as_str() {
                // cargo bench passes --bench to a harness-less bench.
                "--bench" => {}
                "--interval-min" => o.interval_min = value(&arg)?.parse()?,
                "--servers" => o.servers = value(&arg)?.parse()?,
                "--days" => o.days = value(&arg)?.parse()?,
                "--runs" => o.runs = value(&arg)?.parse()?,
                "--db" => o.db = Some(value(&arg)?.into()),
                "--html" => o.html = Some(value(&arg)?.into()),
                other => bail!(
                    "unknown argument {other:?}; options: --interval-min N, --servers N, \
                     --days N, --runs N, --db PATH, --html DIR"
                ),
            }
        }
        ensure!(
            (1..=1440).contains(&o.interval_min),
            "--interval-min must be 1..=1440"
        );
        ensure!(
            (1..=9999).contains(&o.servers),
            "--servers must be 1..=9999"
        );
        ensure!(o.days >= 1, "--days must be at least 1");
        ensure!(o.runs >= 1, "--runs must be at least 1");
        Ok(o)
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(options))
}

async fn run(o: Options) -> anyhow::Result<()> {
    let tmp;
    let path = match &o.db {
        Some(path) => path.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().join("collector.db")
        }
    };
    let db = Db::open(&path).await?;
    let (filled, complete): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(recent_checks) FROM servers")
            .fetch_one(&db.read)
            .await?;
    if filled == 0 {
        let started = Instant::now();
        fill(&db, &o).await?;
        println!(
            "filled {} in {:.1} s",
            path.display(),
            started.elapsed().as_secs_f64()
        );
    } else {
        ensure!(
            filled == complete,
            "{} holds servers but was not filled completely: delete it",
            path.display()
        );
        println!("reusing {} (not filled again)", path.display());
        let kept: Option<i64> =
            sqlx::query_scalar("SELECT max(json_array_length(recent_checks)) FROM servers")
                .fetch_one(&db.read)
                .await?;
        if kept != Some(RECENT_MAX as i64) {
            println!(
                "  servers.recent_checks hold {} checks, ingest now keeps {RECENT_MAX}: rewritten",
                kept.unwrap_or(0)
            );
            let mut conn = db.write.acquire().await?;
            recent_checks(&mut conn).await?;
        }
    }
    print_counts(&db, &path).await?;

    let now_ms: i64 = sqlx::query_scalar("SELECT max(last_received_at_ms) + 1000 FROM servers")
        .fetch_one(&db.read)
        .await?;
    let open: String = sqlx::query_scalar(
        "SELECT s.name FROM servers s JOIN incidents i ON i.server_id = s.id
         WHERE i.ended_at_ms IS NULL ORDER BY s.name LIMIT 1",
    )
    .fetch_one(&db.read)
    .await
    .context("no server with an open incident")?;
    let plain: String = sqlx::query_scalar(
        "SELECT name FROM servers s WHERE NOT EXISTS
           (SELECT 1 FROM incidents i WHERE i.server_id = s.id AND i.ended_at_ms IS NULL)
         ORDER BY name = ?1 DESC, name LIMIT 1",
    )
    .bind(PLAIN_SERVER)
    .fetch_one(&db.read)
    .await?;
    sanity(&db, &open, now_ms).await?;

    println!(
        "\ntiming: {WARMUP} warm-up runs, then {} timed runs of query + render per page \
         (tokio current_thread, the collector's read pool of {} connections)",
        o.runs,
        db.read.options().get_max_connections()
    );
    let servers: i64 = sqlx::query_scalar("SELECT count(*) FROM servers")
        .fetch_one(&db.read)
        .await?;
    let rows = [
        time_overview(&db, now_ms, o.runs, servers, o.html.as_deref()).await?,
        time_server(&db, &plain, now_ms, o.runs, o.html.as_deref()).await?,
        time_server(&db, &open, now_ms, o.runs, o.html.as_deref()).await?,
    ];
    let w = rows.iter().map(|r| r.label.len()).max().unwrap_or(0);
    println!(
        "\n{:<w$} {:>9} {:>9} {:>9} {:>9}   {:>9} {:>9}   {:>9}",
        "page: query + render", "min", "median", "p95", "max", "query", "render", "size"
    );
    println!(
        "{:<w$} {:>9} {:>9} {:>9} {:>9}   {:>9} {:>9}",
        "", "", "", "", "", "median", "median"
    );
    for r in &rows {
        println!(
            "{:<w$} {:>6.1} ms {:>6.1} ms {:>6.1} ms {:>6.1} ms   {:>6.1} ms {:>6.1} ms   \
             {:>5} KiB  {}",
            r.label,
            r.total.min,
            r.total.median,
            r.total.p95,
            r.total.max,
            r.query.median,
            r.render.median,
            r.bytes / 1024,
            verdict(&r.total)
        );
    }
    let missed: Vec<&Row> = rows.iter().filter(|r| r.total.p95 >= TARGET_MS).collect();
    if missed.is_empty() {
        println!("\nevery page is under the target of {TARGET_MS:.0} ms (p95).");
    }
    for r in missed {
        let (part, ms) = if r.query.median >= r.render.median {
            ("the query", r.query.median)
        } else {
            ("the render", r.render.median)
        };
        println!(
            "\n{} MISSES the target of {TARGET_MS:.0} ms: median {:.1} ms, p95 {:.1} ms; most \
             of it is {part} ({ms:.1} ms median of {:.1} ms)",
            r.label, r.total.median, r.total.p95, r.total.median
        );
    }
    if rows[0].total.p95 >= TARGET_MS {
        overview_breakdown(&db, now_ms, o.runs).await?;
    }
    for (row, name) in rows[1..].iter().zip([&plain, &open]) {
        if row.total.p95 >= TARGET_MS {
            server_breakdown(&db, name, now_ms, o.runs).await?;
        }
    }
    db.close().await;
    Ok(())
}

fn verdict(s: &Stats) -> String {
    if s.p95 < TARGET_MS {
        format!("target < {TARGET_MS:.0} ms: ok")
    } else if s.median < TARGET_MS {
        format!("target < {TARGET_MS:.0} ms: p95 over")
    } else {
        format!("target < {TARGET_MS:.0} ms: MISSED")
    }
}

// ---------------------------------------------------------------------------------------------
// Measuring

struct Stats {
    min: f64,
    median: f64,
    p95: f64,
    max: f64,
}

impl Stats {
    fn of(samples: &[Duration]) -> Stats {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median = if n % 2 == 1 {
            ms[n / 2]
        } else {
            (ms[n / 2 - 1] + ms[n / 2]) / 2.0
        };
        // Nearest rank.
        let p95 = ms[(n * 95).div_ceil(100).max(1) - 1];
        Stats {
            min: ms[0],
            median,
            p95,
            max: ms[n - 1],
        }
    }
}

struct Row {
    label: String,
    total: Stats,
    query: Stats,
    render: Stats,
    bytes: usize,
}

struct Samples {
    query: Vec<Duration>,
    render: Vec<Duration>,
    total: Vec<Duration>,
    bytes: usize,
}

impl Samples {
    fn new(runs: usize) -> Samples {
        Samples {
            query: Vec::with_capacity(runs),
            render: Vec::with_capacity(runs),
            total: Vec::with_capacity(runs),
            bytes: 0,
        }
    }

    fn push(&mut self, query: Duration, render: Duration, bytes: usize) {
        self.query.push(query);
        self.render.push(render);
        self.total.push(query + render);
        self.bytes = bytes;
    }

    fn row(self, label: String) -> Row {
        let row = Row {
            total: Stats::of(&self.total),
            query: Stats::of(&self.query),
            render: Stats::of(&self.render),
            bytes: self.bytes,
            label,
        };
        println!(
            "  {:<32} query  min {:>6.1}  median {:>6.1}  p95 {:>6.1}  max {:>6.1} ms\n  \
             {:<32} render min {:>6.1}  median {:>6.1}  p95 {:>6.1}  max {:>6.1} ms",
            row.label,
            row.query.min,
            row.query.median,
            row.query.p95,
            row.query.max,
            "",
            row.render.min,
            row.render.median,
            row.render.p95,
            row.render.max
        );
        row
    }
}

async fn time_overview(
    db: &Db,
    now_ms: i64,
    runs: usize,
    servers: i64,
    html_dir: Option<&Path>,
) -> anyhow::Result<Row> {
    let query = OverviewQuery::default();
    let mut samples = Samples::new(runs);
    for run in 0..WARMUP + runs {
        let t0 = Instant::now();
        let fleet = read::fleet(&db.read, now_ms).await?;
        let t1 = Instant::now();
        let html = overview::render(&fleet, &query, now_ms);
        let t2 = Instant::now();
        if run >= WARMUP {
            samples.push(t1 - t0, t2 - t1, html.len());
        }
        if run == 0 {
            save(html_dir, "overview.html", &html)?;
        }
        std::hint::black_box(html);
    }
    Ok(samples.row(format!("overview ({servers} servers)")))
}

async fn time_server(
    db: &Db,
    name: &str,
    now_ms: i64,
    runs: usize,
    html_dir: Option<&Path>,
) -> anyhow::Result<Row> {
    let mut samples = Samples::new(runs);
    let mut open = false;
    for run in 0..WARMUP + runs {
        let t0 = Instant::now();
        let page = server::load(&db.read, name, now_ms).await?;
        let t1 = Instant::now();
        let html = server::render(&page, Audience::Operator);
        let t2 = Instant::now();
        if run >= WARMUP {
            samples.push(t1 - t0, t2 - t1, html.len());
        }
        if run == 0 {
            save(html_dir, &format!("{name}.html"), &html)?;
        }
        open = page.why.server.open_incident.is_some();
        std::hint::black_box(html);
    }
    let what = if open { ", open incident" } else { "" };
    Ok(samples.row(format!("server page ({name}{what})")))
}

// ---------------------------------------------------------------------------------------------
// Where the time goes, for a page that misses the target

/// One SQL statement as sqlx logged it (target `sqlx::query`): its text, how long it ran on
/// the connection's worker thread, and its rows.
struct Statement {
    sql: String,
    secs: f64,
    rows: u64,
}

/// Statements logged while `Some`.
static CAPTURED: Mutex<Option<Vec<Statement>>> = Mutex::new(None);

/// Collects sqlx's statement events into [`CAPTURED`]: the breakdown follows the page's own
/// statements, whatever they are now, instead of a copy of them.
struct SqlCapture;

impl<S: tracing::Subscriber> Layer<S> for SqlCapture {
    fn on_event(&self, event: &tracing::Event<'_>, _: LayerContext<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut captured = CAPTURED.lock().unwrap_or_else(|e| e.into_inner());
        let Some(list) = captured.as_mut() else {
            return;
        };
        let mut v = StatementVisitor::default();
        event.record(&mut v);
        let sql = if v.statement.trim().is_empty() {
            v.summary
        } else {
            v.statement
        };
        list.push(Statement {
            sql: sql.split_whitespace().collect::<Vec<_>>().join(" "),
            secs: v.secs,
            rows: v.rows,
        });
    }
}

#[derive(Default)]
struct StatementVisitor {
    summary: String,
    statement: String,
    secs: f64,
    rows: u64,
}

impl Visit for StatementVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_owned(),
            "db.statement" => self.statement = value.to_owned(),
            _ => {}
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.secs = value;
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "rows_returned" {
            self.rows = value;
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// The statements of `load`, each the median of `runs` runs (after the warm-up), and the
/// median time of the whole `load`. Installs the capturing subscriber on first use: after
/// the timed runs, so that they paid nothing for it.
async fn statements<F, Fut, T>(runs: usize, mut load: F) -> anyhow::Result<(Vec<Statement>, f64)>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let _ = tracing_subscriber::registry().with(SqlCapture).try_init();
    });
    let mut all: Vec<Vec<Statement>> = Vec::with_capacity(runs);
    let mut totals = Vec::with_capacity(runs);
    for run in 0..WARMUP + runs {
        *CAPTURED.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
        let t0 = Instant::now();
        std::hint::black_box(load().await?);
        let elapsed = t0.elapsed();
        let list = CAPTURED
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .unwrap_or_default();
        if run >= WARMUP {
            totals.push(elapsed);
            all.push(list);
        }
    }
    let first = all.first().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(first);
    for i in 0..first {
        let times: Vec<Duration> = all
            .iter()
            .filter_map(|list| list.get(i))
            .map(|s| Duration::from_secs_f64(s.secs))
            .collect();
        out.push(Statement {
            sql: all[0][i].sql.clone(),
            secs: Stats::of(&times).median / 1000.0,
            rows: all[0][i].rows,
        });
    }
    Ok((out, Stats::of(&totals).median))
}

fn print_statements(statements: &[Statement], total_ms: f64) {
    let mut sql_ms = 0.0;
    for s in statements {
        let ms = s.secs * 1000.0;
        sql_ms += ms;
        let mut sql = s.sql.clone();
        if sql.len() > 110 {
            let cut = (0..=107)
                .rev()
                .find(|&i| sql.is_char_boundary(i))
                .unwrap_or(0);
            sql.truncate(cut);
            sql.push_str("...");
        }
        println!("    {ms:>7.1} ms {:>7} rows  {sql}", s.rows);
    }
    println!(
        "    {sql_ms:>7.1} ms in {} SQL statements (as sqlx times them, rows handed over \
         included); {:.1} ms outside them (decoding, assembling) of {total_ms:.1} ms",
        statements.len(),
        (total_ms - sql_ms).max(0.0)
    );
}

/// Where the overview's time goes: its statements, the decoding of the recent checks, and
/// the render with and without the heartbeat bars.
async fn overview_breakdown(db: &Db, now_ms: i64, runs: usize) -> anyhow::Result<()> {
    println!("\noverview: where the time goes (medians of {runs} runs after {WARMUP})");
    let (list, total_ms) =
        statements(runs, || async { Ok(read::fleet(&db.read, now_ms).await?) }).await?;
    println!("  query (read::fleet), statement by statement:");
    print_statements(&list, total_ms);

    let stored: Vec<Option<String>> =
        sqlx::query_scalar("SELECT recent_checks FROM servers ORDER BY name")
            .fetch_all(&db.read)
            .await?;
    let bytes: usize = stored.iter().flatten().map(String::len).sum();
    let mut times = Vec::with_capacity(runs);
    for run in 0..WARMUP + runs {
        let t0 = Instant::now();
        let parsed: Vec<_> = stored.iter().map(|s| parse_recent(s.as_deref())).collect();
        if run >= WARMUP {
            times.push(t0.elapsed());
        }
        std::hint::black_box(parsed);
    }
    println!(
        "    of which decoding servers.recent_checks (parse_recent, {} KiB of JSON): {:.1} ms",
        bytes / 1024,
        Stats::of(&times).median
    );

    let fleet = read::fleet(&db.read, now_ms).await?;
    let mut bare = fleet.clone();
    for s in &mut bare.servers {
        s.recent.clear();
    }
    let query = OverviewQuery::default();
    let mut with = Vec::with_capacity(runs);
    let mut without = Vec::with_capacity(runs);
    let (mut size_with, mut size_without) = (0, 0);
    for run in 0..WARMUP + runs {
        let t0 = Instant::now();
        let html = overview::render(&fleet, &query, now_ms);
        let t1 = Instant::now();
        let bare_html = overview::render(&bare, &query, now_ms);
        let t2 = Instant::now();
        if run >= WARMUP {
            with.push(t1 - t0);
            without.push(t2 - t1);
        }
        (size_with, size_without) = (html.len(), bare_html.len());
    }
    let (with, without) = (Stats::of(&with).median, Stats::of(&without).median);
    println!(
        "  render (web::overview::render): {with:.1} ms, {} KiB; without the heartbeat bars \
         {without:.1} ms, {} KiB: the bars take {:.1} ms and {} KiB",
        size_with / 1024,
        size_without / 1024,
        with - without,
        size_with.saturating_sub(size_without) / 1024
    );
    Ok(())
}

/// Where a server page's time goes: its statements, and the render.
async fn server_breakdown(db: &Db, name: &str, now_ms: i64, runs: usize) -> anyhow::Result<()> {
    println!("\nserver page ({name}): where the time goes (medians of {runs} runs after {WARMUP})");
    let (list, total_ms) = statements(runs, || async {
        Ok(server::load(&db.read, name, now_ms).await?)
    })
    .await?;
    println!("  query (web::server::load), statement by statement:");
    print_statements(&list, total_ms);
    Ok(())
}

fn save(dir: Option<&Path>, file: &str, html: &str) -> anyhow::Result<()> {
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join(file), html)?;
    }
    Ok(())
}

/// What the pages will show is what was meant: every server's recent checks, and an
/// incident whose evidence decodes.
async fn sanity(db: &Db, open: &str, now_ms: i64) -> anyhow::Result<()> {
    let fleet = read::fleet(&db.read, now_ms).await?;
    let short = fleet
        .servers
        .iter()
        .filter(|s| s.recent.len() != RECENT_MAX)
        .count();
    ensure!(
        short == 0,
        "{short} servers lack their {RECENT_MAX} recent checks"
    );
    let page = server::load(&db.read, open, now_ms).await?;
    let incident = page
        .why
        .server
        .open_incident
        .as_ref()
        .context("the open incident is not on the page")?;
    ensure!(
        incident.samples.iter().all(|s| s.evidence.is_some()),
        "the open incident's evidence does not decode"
    );
    ensure!(page.results.len() == 100, "the page lacks its 100 checks");
    Ok(())
}

async fn print_counts(db: &Db, path: &Path) -> anyhow::Result<()> {
    println!("rows:");
    for (what, sql) in [
        ("servers", "SELECT count(*) FROM servers"),
        (
            "  down (last report failed)",
            "SELECT count(*) FROM servers s JOIN reports r ON r.report_id = s.last_report_id WHERE r.checks_ok < r.checks_total",
        ),
        ("tokens", "SELECT count(*) FROM tokens"),
        ("reports", "SELECT count(*) FROM reports"),
        ("results", "SELECT count(*) FROM results"),
        (
            "  failed",
            "SELECT sum(n) FROM result_counts WHERE cause <> 'ok'",
        ),
        ("incidents", "SELECT count(*) FROM incidents"),
        (
            "  open",
            "SELECT count(*) FROM incidents WHERE ended_at_ms IS NULL",
        ),
        (
            "availability_hours",
            "SELECT count(*) FROM availability_hours",
        ),
        (
            "availability_days",
            "SELECT count(*) FROM availability_days",
        ),
        ("result_counts", "SELECT count(*) FROM result_counts"),
        ("resolvers", "SELECT count(*) FROM resolvers"),
        (
            "resolver_conditions",
            "SELECT count(*) FROM resolver_conditions",
        ),
        ("host_conditions", "SELECT count(*) FROM host_conditions"),
    ] {
        let n: i64 = sqlx::query_scalar(sql).fetch_one(&db.read).await?;
        println!("  {what:<30} {n:>12}");
    }
    let causes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT cause, sum(n) FROM result_counts WHERE cause <> 'ok' GROUP BY cause ORDER BY cause",
    )
    .fetch_all(&db.read)
    .await?;
    let causes: Vec<String> = causes.iter().map(|(c, n)| format!("{c} {n}")).collect();
    println!("  failed by cause: {}", causes.join(", "));
    let interval: Option<i64> = sqlx::query_scalar("SELECT max(interval_s) FROM servers")
        .fetch_one(&db.read)
        .await?;
    println!("  interval: {} s", interval.unwrap_or(0));
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    println!(
        "database: {:.2} GiB ({} bytes; WAL {} bytes)",
        size(path) as f64 / (1u64 << 30) as f64,
        size(path),
        size(&wal)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Filling

/// A deterministic generator (splitmix64): the same plan of incidents on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// One planned incident: the reports `first..=last` (by index) of a server fail with `cause`.
struct Planned {
    server: i64,
    first: i64,
    last: i64,
    cause: Cause,
    open: bool,
}

/// The times of the reports: server `s`'s report `i` (of `n`) starts at `t(s, i)`, the servers
/// spread over the interval as probes started at different times are.
#[derive(Clone, Copy)]
struct Clock {
    end_ms: i64,
    n: i64,
    interval_ms: i64,
}

impl Clock {
    fn offset(&self, server: i64) -> i64 {
        (server * 7919 % (self.interval_ms / 1000)) * 1000
    }

    fn t(&self, server: i64, i: i64) -> i64 {
        self.end_ms - (self.n - i) * self.interval_ms + self.offset(server)
    }
}

fn plan(servers: i64, n: i64) -> Vec<Planned> {
    let mut rng = Rng(0x00C0_FFEE);
    let mut out = Vec::new();
    for server in 1..=servers {
        let incidents = rng.range(3, 5);
        // About 0.5% of the checks fail: n / 200 per server, in `incidents` runs.
        let mean = (n / 200 / incidents).max(1);
        let segment = n / incidents;
        for k in 0..incidents {
            let len = rng
                .range((mean / 2).max(1), (mean * 3 / 2).max(1))
                .min(segment - 2);
            let open = server % OPEN_EVERY == 0 && k == incidents - 1;
            let first = if open {
                n - len
            } else {
                k * segment + rng.range(1, segment - len - 1)
            };
            out.push(Planned {
                server,
                first,
                last: first + len - 1,
                cause: CAUSES[rng.range(0, CAUSES.len() as i64 - 1) as usize],
                open,
            });
        }
    }
    out
}

async fn exec(conn: &mut SqliteConnection, sql: &str) -> anyhow::Result<u64> {
    Ok(sqlx::query(sql).execute(&mut *conn).await?.rows_affected())
}

async fn fill(db: &Db, o: &Options) -> anyhow::Result<()> {
    let interval_ms = o.interval_min * MIN_MS;
    let n = o.days * DAY_MS / interval_ms;
    ensure!(
        n >= 200,
        "{n} reports per server are too few: more days or a shorter interval"
    );
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let clock = Clock {
        end_ms: now.as_millis() as i64 / 1000 * 1000,
        n,
        interval_ms,
    };
    println!(
        "filling: {} servers x {n} reports ({} min apart, {} days), one check each",
        o.servers, o.interval_min, o.days
    );
    // One connection for the whole fill: pragmas for a bulk load on it (the data is made
    // again if the machine fails meanwhile), put back before it returns to the pool.
    let mut conn = db.write.acquire().await?;
    let conn: &mut SqliteConnection = &mut conn;
    exec(conn, "PRAGMA synchronous = OFF").await?;
    exec(conn, "PRAGMA cache_size = -1048576").await?;
    exec(conn, "PRAGMA temp_store = MEMORY").await?;

    let first_ms = clock.t(0, 0);
    exec(conn, "BEGIN IMMEDIATE").await?;
    sqlx::query(
        "INSERT INTO servers (id, name, created_at_ms)
         WITH RECURSIVE s(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM s WHERE id < ?1)
         SELECT id, printf('web-%04d', id), ?2 FROM s",
    )
    .bind(o.servers)
    .bind(first_ms - 3_600_000)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO tokens (server_id, sha256, created_at_ms)
         SELECT id, lower(hex(randomblob(32))), created_at_ms FROM servers",
    )
    .execute(&mut *conn)
    .await?;
    exec(
        conn,
        "CREATE TEMP TABLE plan (server_id INTEGER, first_i INTEGER, last_i INTEGER,
                                 cause TEXT, open INTEGER)",
    )
    .await?;
    exec(
        conn,
        "CREATE INDEX temp.plan_by_server ON plan (server_id, first_i)",
    )
    .await?;
    let planned = plan(o.servers, n);
    for p in &planned {
        sqlx::query("INSERT INTO plan VALUES (?1, ?2, ?3, ?4, ?5)")
            .bind(p.server)
            .bind(p.first)
            .bind(p.last)
            .bind(p.cause.id())
            .bind(p.open)
            .execute(&mut *conn)
            .await?;
    }
    exec(conn, "COMMIT").await?;

    let per_chunk = (DAY_MS / interval_ms).max(1);
    let started = Instant::now();
    let mut from = 0;
    while from < n {
        let to = (from + per_chunk).min(n);
        chunk(conn, clock, from, to).await?;
        from = to;
        let done = from as f64 / n as f64;
        let spent = started.elapsed().as_secs_f64();
        println!(
            "  reports {:>9} of {:>9} ({:>3.0}%), {:.0} s, about {:.0} s left",
            from * o.servers,
            n * o.servers,
            done * 100.0,
            spent,
            spent / done - spent
        );
    }

    let t = Instant::now();
    exec(conn, "BEGIN IMMEDIATE").await?;
    servers_last(conn, o.interval_min * 60).await?;
    resolvers(conn).await?;
    incidents(conn, &planned, clock).await?;
    rollups(conn).await?;
    exec(conn, "COMMIT").await?;
    exec(conn, "PRAGMA wal_checkpoint(TRUNCATE)").await?;
    exec(conn, "PRAGMA synchronous = FULL").await?;
    exec(conn, "PRAGMA cache_size = -2000").await?;
    exec(conn, "DROP TABLE temp.plan").await?;
    println!(
        "  incidents, conditions, rollups, recent checks: {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The UUID v4 text of 32 random hex digits in `h`.
const UUID_OF_HEX: &str = "substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3)
    || '-' || substr('89ab', 1 + unicode(substr(h, 17, 1)) % 4, 1) || substr(h, 18, 3) || '-'
    || substr(h, 21, 12)";

/// The reports `from..to` of every server, in one transaction, rows in order of time.
async fn chunk(
    conn: &mut SqliteConnection,
    clock: Clock,
    from: i64,
    to: i64,
) -> anyhow::Result<()> {
    exec(conn, "BEGIN IMMEDIATE").await?;
    // Random figures are drawn once per row here; the inserts below only read them.
    sqlx::query(
        "CREATE TEMP TABLE chunk AS
         WITH RECURSIVE seq(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM seq WHERE i + 1 < ?2)
         SELECT s.id AS server_id, s.name AS name, seq.i AS i,
                ?3 - (?4 - seq.i) * ?5 + (s.id * 7919 % (?5 / 1000)) * 1000 AS t,
                lower(hex(randomblob(16))) AS h,
                p.cause AS cause,
                round(0.4 + (abs(random()) % 2600) / 1000.0, 1) AS resolve_ms,
                round(0.2 + (abs(random()) % 6000) / 1000.0, 1) AS connect_ms,
                round(2.5 + (abs(random()) % 9000) / 1000.0, 1) AS tls_ms,
                round(6.0 + (abs(random()) % 60000) / 1000.0
                      + CASE WHEN abs(random()) % 50 = 0 THEN (abs(random()) % 900) ELSE 0 END,
                      1) AS first_byte_ms,
                150 + abs(random()) % 900 AS lag_ms
         FROM seq CROSS JOIN servers s
         LEFT JOIN plan p ON p.server_id = s.id AND seq.i BETWEEN p.first_i AND p.last_i",
    )
    .bind(from)
    .bind(to)
    .bind(clock.end_ms)
    .bind(clock.n)
    .bind(clock.interval_ms)
    .execute(&mut *conn)
    .await?;
    exec(conn, &format!("UPDATE chunk SET h = {UUID_OF_HEX}")).await?;
    exec(
        conn,
        "INSERT INTO reports (report_id, server_id, started_at_ms, received_at_ms, probe_host,
                              probe_version, checks_total, checks_ok)
         SELECT h, server_id, t,
                t + CAST(resolve_ms + connect_ms + tls_ms + first_byte_ms AS INTEGER) + lag_ms,
                name, '0.1.0', 1, cause IS NULL
         FROM chunk ORDER BY t, server_id",
    )
    .await?;
    // The failed checks get their failure, diagnosis and evidence below.
    exec(
        conn,
        "INSERT INTO results (report_id, server_id, canary, url, address, started_at_ms, ok,
                              status, cause, resolve_ms, connect_ms, tls_ms, first_byte_ms,
                              total_ms)
         SELECT h, server_id, 'site', 'https://' || name || '.example.net/healthz',
                '10.' || (server_id / 256 % 256) || '.' || (server_id % 256) || '.10', t + 2,
                cause IS NULL, CASE WHEN cause IS NULL THEN 200 END, cause,
                resolve_ms, connect_ms, tls_ms, first_byte_ms,
                round(resolve_ms + connect_ms + tls_ms + first_byte_ms + 0.3, 1)
         FROM chunk ORDER BY t, server_id",
    )
    .await?;
    let failed: Vec<(i64, String, i64, String, String)> = sqlx::query_as(
        "SELECT r.id, c.name, r.started_at_ms, r.cause, r.address
         FROM chunk c JOIN results r ON r.report_id = c.h WHERE c.cause IS NOT NULL",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (id, name, at, cause, address) in failed {
        let cause: Cause = cause.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        let address: IpAddr = address.parse()?;
        let c = failed_check(cause, &name, address, at);
        store_failure(conn, id, &c).await?;
    }
    exec(conn, "DROP TABLE temp.chunk").await?;
    exec(conn, "COMMIT").await?;
    Ok(())
}

async fn store_failure(
    conn: &mut SqliteConnection,
    id: i64,
    c: &CheckResult,
) -> anyhow::Result<()> {
    let d = c
        .diagnosis
        .as_ref()
        .context("a failed check without diagnosis")?;
    let f = c
        .failure
        .as_ref()
        .context("a failed check without failure")?;
    let contributing = (!d.contributing.is_empty())
        .then(|| serde_json::to_string(&d.contributing))
        .transpose()?;
    sqlx::query(
        "UPDATE results SET address = ?2, status = ?3, cause = ?4, contributing = ?5,
                explanation = ?6, failure_kind = ?7, failure_message = ?8, resolve_ms = ?9,
                connect_ms = ?10, tls_ms = ?11, first_byte_ms = ?12, total_ms = ?13,
                evidence = ?14
         WHERE id = ?1",
    )
    .bind(id)
    .bind(c.address.map(|a| a.to_string()))
    .bind(c.status)
    .bind(d.cause.id())
    .bind(contributing)
    .bind(&d.explanation)
    .bind(f.kind.id())
    .bind(&f.message)
    .bind(c.timings.resolve_ms)
    .bind(c.timings.connect_ms)
    .bind(c.timings.tls_ms)
    .bind(c.timings.first_byte_ms)
    .bind(c.timings.total_ms)
    .bind(serde_json::to_string(&c.evidence)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Incidents as ingest groups them (consecutive failed reports with one cause; closed by the
/// next report's start), with the resolver and host conditions they came with.
async fn incidents(
    conn: &mut SqliteConnection,
    planned: &[Planned],
    clock: Clock,
) -> anyhow::Result<()> {
    let mut order: Vec<&Planned> = planned.iter().collect();
    order.sort_by_key(|p| (clock.t(p.server, p.first), p.server));
    for p in order {
        let (from, to) = (clock.t(p.server, p.first), clock.t(p.server, p.last) + 1000);
        let (first_id, last_id, count, first_at, last_at): (i64, i64, i64, i64, i64) =
            sqlx::query_as(
                "SELECT min(id), max(id), count(*), min(started_at_ms), max(started_at_ms)
                 FROM results WHERE server_id = ?1 AND started_at_ms BETWEEN ?2 AND ?3
                 AND ok = 0",
            )
            .bind(p.server)
            .bind(from)
            .bind(to)
            .fetch_one(&mut *conn)
            .await?;
        ensure!(
            count == p.last - p.first + 1,
            "incident of server {} has {count} failed checks, planned {}",
            p.server,
            p.last - p.first + 1
        );
        let explanation: String =
            sqlx::query_scalar("SELECT explanation FROM results WHERE id = ?1")
                .bind(first_id)
                .fetch_one(&mut *conn)
                .await?;
        let ended = (!p.open).then(|| clock.t(p.server, p.last + 1));
        sqlx::query(
            "INSERT INTO incidents (server_id, cause, started_at_ms, last_failure_at_ms,
                                    ended_at_ms, failed_checks, first_result_id,
                                    last_result_id, explanation)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .bind(p.server)
        .bind(p.cause.id())
        .bind(first_at)
        .bind(last_at)
        .bind(ended)
        .bind(count)
        .bind(first_id)
        .bind(last_id)
        .bind(explanation)
        .execute(&mut *conn)
        .await?;
        let name = format!("web-{:04}", p.server);
        let address = canary_address(p.server);
        let first = failed_check(p.cause, &name, address, first_at);
        let last = failed_check(p.cause, &name, address, last_at);
        match p.cause {
            Cause::DnsUpstreamBlock => {
                for (a, b) in first.evidence.dns.iter().zip(&last.evidence.dns) {
                    resolver_condition(conn, p.server, a, b, (first_at, last_at, ended), count)
                        .await?;
                }
            }
            Cause::OomKill => {
                let of = |c: &CheckResult| -> anyhow::Result<HostCondition> {
                    let host = c.evidence.host.as_ref().context("no host evidence")?;
                    host.condition(Cause::OomKill)
                        .cloned()
                        .context("no oom_kill condition")
                };
                let (a, b) = (of(&first)?, of(&last)?);
                sqlx::query(
                    "INSERT INTO host_conditions (server_id, cause, started_at_ms,
                         last_seen_at_ms, ended_at_ms, observations, explanation,
                         last_explanation, evidence, last_evidence)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .bind(p.server)
                .bind(Cause::OomKill.id())
                .bind(first_at)
                .bind(last_at)
                .bind(ended)
                .bind(count)
                .bind(&a.explanation)
                .bind(&b.explanation)
                .bind(serde_json::to_string(&a)?)
                .bind(serde_json::to_string(&b)?)
                .execute(&mut *conn)
                .await?;
            }
            _ => {}
        }
    }
    Ok(())
}

async fn resolver_condition(
    conn: &mut SqliteConnection,
    server: i64,
    first: &ResolverOutcome,
    last: &ResolverOutcome,
    (started, last_seen, ended): (i64, i64, Option<i64>),
    observations: i64,
) -> anyhow::Result<()> {
    let d = first
        .condition
        .as_ref()
        .context("a refusing resolver without verdict")?;
    let resolver_id: i64 = sqlx::query_scalar(
        "SELECT id FROM resolvers WHERE server_id = ?1 AND canary = 'site' AND resolver = ?2
         AND address = ?3",
    )
    .bind(server)
    .bind(&first.resolver)
    .bind(first.server.to_string())
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO resolver_conditions (resolver_id, cause, started_at_ms, last_seen_at_ms,
             ended_at_ms, observations, explanation, evidence, last_evidence)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )
    .bind(resolver_id)
    .bind(d.cause.id())
    .bind(started)
    .bind(last_seen)
    .bind(ended)
    .bind(observations)
    .bind(&d.explanation)
    .bind(serde_json::to_string(first)?)
    .bind(serde_json::to_string(last)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every server's canary name resolved through the two system resolvers, as ingest records
/// the resolutions of its reports.
async fn resolvers(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    for address in RESOLVERS {
        sqlx::query(
            "INSERT INTO resolvers (server_id, canary, resolver, address, name,
                                    first_seen_at_ms, last_seen_at_ms)
             SELECT id, 'site', 'system', ?1, name || '.example.net',
                    (SELECT min(started_at_ms) FROM reports WHERE server_id = servers.id),
                    last_started_at_ms
             FROM servers",
        )
        .bind(format!("{address}:53"))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Each server's newest report, as ingest keeps it.
async fn servers_last(conn: &mut SqliteConnection, interval_s: i64) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE servers SET
             last_started_at_ms = (SELECT max(started_at_ms) FROM reports
                                   WHERE server_id = servers.id),
             interval_s = ?1, probe_host = name, probe_version = '0.1.0'",
    )
    .bind(interval_s)
    .execute(&mut *conn)
    .await?;
    exec(
        conn,
        "UPDATE servers SET
             last_report_id = (SELECT report_id FROM reports r WHERE r.server_id = servers.id
                               AND r.started_at_ms = servers.last_started_at_ms),
             last_received_at_ms = (SELECT max(received_at_ms) FROM reports r
                                    WHERE r.server_id = servers.id
                                    AND r.started_at_ms = servers.last_started_at_ms)",
    )
    .await?;
    Ok(())
}

/// The rollups by the statements that end migration 0004, and the recent checks.
async fn rollups(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    for sql in [
        "INSERT INTO availability_hours (server_id, hour_ms, checks_total, checks_ok)
             SELECT server_id, started_at_ms - started_at_ms % 3600000, sum(checks_total),
                    sum(checks_ok)
             FROM reports GROUP BY 1, 2",
        "INSERT INTO availability_days (server_id, day_ms, checks_total, checks_ok)
             SELECT server_id, started_at_ms - started_at_ms % 86400000, sum(checks_total),
                    sum(checks_ok)
             FROM reports GROUP BY 1, 2",
        "INSERT INTO result_counts (server_id, cause, n)
             SELECT server_id, coalesce(cause, 'ok'), count(*) FROM results GROUP BY 1, 2",
    ] {
        exec(conn, sql).await?;
    }
    recent_checks(conn).await
}

/// Each server's last [`RECENT_MAX`] checks, oldest first, as `ingest::rollups` keeps them
/// (`RecentCheck`: t, ok, c, ms, n).
async fn recent_checks(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    exec(
        conn,
        &format!(
            "UPDATE servers SET recent_checks = (
                 SELECT json_group_array(json(c)) FROM (
                     SELECT c FROM (
                         SELECT started_at_ms AS t,
                                CASE WHEN ok THEN json_object('t', started_at_ms,
                                         'ok', json('true'),
                                         'ms', CAST(round(total_ms) AS INTEGER), 'n', canary)
                                     ELSE json_object('t', started_at_ms, 'ok', json('false'),
                                         'c', cause, 'ms', CAST(round(total_ms) AS INTEGER),
                                         'n', canary)
                                END AS c
                         FROM results WHERE server_id = servers.id
                         ORDER BY started_at_ms DESC, id DESC LIMIT {RECENT_MAX})
                     ORDER BY t))"
        ),
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The failed checks, as a probe reports them and the schema's classifier explains them

fn canary_address(server: i64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(
        10,
        (server / 256 % 256) as u8,
        (server % 256) as u8,
        10,
    ))
}

fn failed_check(cause: Cause, name: &str, address: IpAddr, at: i64) -> CheckResult {
    let mut c = CheckResult {
        canary: "site".into(),
        url: format!("https://{name}.example.net/healthz"),
        address: Some(address),
        started_at_ms: at,
        ok: false,
        status: None,
        timings: Timings {
            resolve_ms: Some(1.1),
            connect_ms: Some(0.5),
            tls_ms: None,
            first_byte_ms: None,
            total_ms: 1.9,
        },
        failure: Some(Failure {
            kind: FailureKind::ConnectRefused,
            message: "Connection refused (os error 111)".into(),
        }),
        diagnosis: None,
        evidence: Evidence::default(),
    };
    let remote = SocketAddr::new(address, 443);
    match cause {
        Cause::ConnectionRefused => {
            c.evidence.trace = Some(trace(
                remote,
                at,
                &[(0.0, "out", "SYN", 0), (0.05, "in", "RST,ACK", 0)],
            ));
        }
        Cause::Timeout => {
            c.timings = Timings {
                resolve_ms: Some(1.0),
                connect_ms: Some(0.6),
                tls_ms: Some(4.2),
                first_byte_ms: None,
                total_ms: 10_000.4,
            };
            c.failure = Some(Failure {
                kind: FailureKind::ResponseTimeout,
                message: format!(
                    "{remote} accepted the connection but sent no response within 10 s"
                ),
            });
            let mut t = trace(
                remote,
                at,
                &[
                    (0.0, "out", "SYN", 0),
                    (0.3, "in", "SYN,ACK", 0),
                    (0.35, "out", "ACK", 0),
                    (0.5, "out", "PSH,ACK", 517),
                    (2.1, "in", "PSH,ACK", 2760),
                    (2.3, "out", "PSH,ACK", 80),
                    (6.0, "out", "PSH,ACK", 122),
                    (6.2, "in", "ACK", 0),
                ],
            );
            t.server_ttl = Some(ServerTtl {
                ttl: 64,
                source: TtlSource::ThisConnection,
            });
            c.evidence.trace = Some(t);
        }
        Cause::OomKill => {
            c.evidence.trace = Some(trace(
                remote,
                at,
                &[(0.0, "out", "SYN", 0), (0.05, "in", "RST,ACK", 0)],
            ));
            // nginx's listener gone 25 s before the check, killed by the OOM killer 30 s
            // before it.
            c.evidence.listeners = Some(nginx_listener_gone(remote, at - 3_600_000, at - 25_000));
            c.evidence.host = Some(ProbeHost::at(at).killed(at - 30_000).evidence());
        }
        Cause::DnsUpstreamBlock => {
            c.address = None;
            c.timings = Timings {
                resolve_ms: Some(1.6),
                total_ms: 1.6,
                ..Timings::default()
            };
            let fqdn = format!("{name}.example.net");
            // The system resolver's name servers, each refusing.
            let mut resolvers: Vec<ResolverOutcome> = RESOLVERS
                .iter()
                .map(|r| ResolverOutcome {
                    resolver: "system".into(),
                    ..refusing(r)
                })
                .collect();
            let verdicts = judge_resolvers(&fqdn, &resolvers, &[]);
            for (r, v) in resolvers.iter_mut().zip(verdicts) {
                r.condition = v;
            }
            let brief: Vec<String> = resolvers
                .iter()
                .map(|r| format!("{}: {}", r.who(), r.brief()))
                .collect();
            c.failure = Some(Failure {
                kind: FailureKind::NoAddress,
                message: format!(
                    "no resolver gave an address for {fqdn}: {}",
                    brief.join("; ")
                ),
            });
            c.evidence.dns = resolvers;
        }
        other => unreachable!("no failed check made for {other}"),
    }
    c.diagnosis = classify(&c);
    let got = c.diagnosis.as_ref().map(|d| d.cause);
    assert_eq!(
        got,
        Some(cause),
        "the classifier disagrees: {:?}",
        c.diagnosis
    );
    c
}

fn trace(remote: SocketAddr, at: i64, packets: &[(f64, &str, &str, u32)]) -> PacketTrace {
    PacketTrace {
        interface: "lo".into(),
        local: SocketAddr::new(remote.ip(), 41_822),
        remote,
        started_at_ms: at + 1,
        packets: packets
            .iter()
            .enumerate()
            .map(|(i, &(t_ms, dir, flags, len))| TracePacket {
                t_ms,
                dir: if dir == "out" {
                    Direction::Out
                } else {
                    Direction::In
                },
                flags: flags.parse::<TcpFlags>().expect("valid flags"),
                seq: 1_000_000 + i as u32 * 100,
                ack: if i == 0 {
                    0
                } else {
                    2_000_000 + i as u32 * 100
                },
                ttl: 64,
                len,
            })
            .collect(),
        truncated: 0,
        server_ttl: None,
    }
}
