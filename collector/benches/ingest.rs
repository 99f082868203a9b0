//! How many reports a collector stores per second, and what they cost: latency, CPU, rows and
//! bytes on disk; against what the disk allows (its fsync latency) and what SQLite itself
//! writes on it; and how ingest holds up while the pruner deletes a backlog.
//!
//! Not a test: it prints figures and asserts nothing about speed. It talks to the real
//! `causeway-collector` binary over HTTP, as probes do, and reads its database file only
//! generically (every table of `sqlite_master`, primary keys, page counts, `dbstat`), so it
//! measures ingest as it is whatever its tables are.
//!
//! ```text
//! cargo bench -p causeway-collector --bench ingest
//! cargo bench -p causeway-collector --bench ingest -- --seconds 5 --connections 8,64 \
//!     --db-dir /var/tmp/ingest
//! ```
//!
//! Options: `--servers N` (256; at least the largest `--connections`: a server's reports go
//! over one connection, as a probe's do), `--connections N,N,...` (the load levels: concurrent
//! keep-alive connections, `32,256`), `--seconds N` (measured, after a 2 s warm-up, 10),
//! `--healthy-reports N` (reports per server in each half of the healthy-only phase, 100),
//! `--db-dir DIR` (keep the databases and the collector's logs there; default: a temporary
//! directory in /var/tmp, removed at the end: /tmp is often a tmpfs, where fsync costs nothing),
//! `--loads-only` (phases 1 to 3), `--collector PATH` (another build of the collector: the
//! machine's figures drift by a fifth from one run to the next, so telling two builds apart
//! takes runs of each, alternated in one sitting; see scripts/ingest-ab).
//!
//! Open files: each connection is a socket in this bench and one in the collector, a child
//! that inherits this process's limits. Both soft limits are checked (`/proc/*/limits`) before
//! a load, not raised: this crate has no libc and the workspace denies unsafe code. If the
//! check fails, raise the limit in the shell first (`ulimit -n 4096`).
//!
//! The reports are a probe's: one check of a canary given by name, resolved through three name
//! servers, with the host's readings. One report in 100 has the check refused (nginx's listener
//! gone, with the host's and the resolvers' evidence), which opens an incident that the next
//! report closes; one in 100 has a name server refusing to answer. Each server's reports are
//! 10 s apart from six hours ago, each with a random id.
//!
//! Phases:
//! 1. the fsync floor: 32 KiB appended to a file in the databases' directory and fsynced, 200
//!    times. A report is answered only after the transaction holding it was fsynced
//!    (synchronous=FULL), so with C connections each waiting for its answer at most C reports
//!    are answered per fsync: reports/s <= C / fsync p50 (Little's law), printed beside each
//!    load;
//! 2. the raw limit: rows like a healthy check's inserted by one prepared statement, 100 per
//!    transaction, in WAL with synchronous=FULL as the collector writes, through rusqlite (and,
//!    for comparison, through sqlx); divided by a load's rows per report, the reports per
//!    second that SQLite alone would allow on this disk;
//! 3. for each `--connections` level, on a fresh database: the load, C tasks each posting its
//!    next report as soon as the previous one is answered (figures of the warm-up dropped);
//!    the rows each table gained per report; bytes per check, failures included;
//! 4. bytes per healthy check: a fresh database fed `--healthy-reports` healthy reports per
//!    server, then as many again, on the first level's connections. What the second half
//!    added, over its checks, is the steady state's marginal cost, which the projection to
//!    1,000 servers over the retention uses: the first half also pays each server's fixed costs
//!    (its row and recent checks, canaries, resolvers), which the whole file's average spreads
//!    over too few checks. Per table where SQLite has the `dbstat` table;
//! 5. ingest while pruning a backlog: 50 servers' reports, one per 10 minutes from 45 to 15
//!    days ago, posted to a collector keeping everything for 10 years (one with the default
//!    retention answers reports older than 14 days `"expired": true` and stores nothing); then
//!    the collector restarted on that database with the default retention, its pruner deleting
//!    at once, 2,000 rows at a time between batches of reports, while 32 connections post
//!    reports dated from six hours ago. Printed: the load's figures beside the plain load's at
//!    32, the rows pruned meanwhile (the rows of each table before that are gone after), and
//!    whether a pass of the pruner over every server ended (its log line);
//! 6. PostgreSQL on this machine (`--no-postgres` leaves it out, `--only-postgres` runs it
//!    alone): a cluster of its own made by
//!    scripts/pg-test-cluster with commits fsynced (PG_DURABLE=1: fsync, synchronous_commit
//!    and full_page_writes on, as on a real server), reached over its Unix socket. Its raw
//!    limit (the same rows, 100 per transaction, through sqlx), then each `--connections`
//!    level on a fresh database holding the fleet's tokens (copied from the SQLite one by
//!    `causeway-collector migrate-to`), with the rows per report and the ratio to that limit.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use causeway_schema::Report;
use causeway_service::now_ms;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection};

// The report builders of the collector's tests: the reports posted are those the tests check.
#[path = "../tests/common/mod.rs"]
mod common;
use common::{ProbeHost, answering, ok_check, refused_on, refusing, report, resolution, with_host};

/// The collector this crate built; `--collector PATH` runs another build instead.
const BUILT_COLLECTOR: &str = env!("CARGO_BIN_EXE_causeway-collector");
static COLLECTOR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The collector binary every phase runs.
fn collector_bin() -> &'static Path {
    COLLECTOR.get_or_init(|| PathBuf::from(BUILT_COLLECTOR))
}
const WARMUP: Duration = Duration::from_secs(2);
/// A probe's interval: the spacing of each server's reports.
const INTERVAL_MS: i64 = 10_000;
/// Far enough back that no run reaches the collector's clock (a phase posts at most a few
/// hundred reports 10 s apart per server), near enough that nothing is old enough to prune,
/// per-minute availability (kept a day) included.
const START_HOURS_AGO: i64 = 6;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// One report in this many has its check refused, and one has a name server refusing.
const FAIL_EVERY: u64 = 100;
const REFUSE_EVERY: u64 = 100;
const RESOLVERS: [&str; 3] = ["10.0.0.53", "10.0.0.54", "10.0.0.55"];
const RAW_SECONDS: Duration = Duration::from_secs(3);
const RAW_BATCH: usize = 100;
/// The projection: a fleet of this many servers, reporting every 10 s, kept this many days.
const FLEET: f64 = 1000.0;
const CHECKS_PER_DAY: f64 = 8640.0;
const RETENTION_DAYS: f64 = 14.0;
/// Errors printed in full; the others are only counted.
const ERRORS_SHOWN: usize = 5;
/// Where the databases go without `--db-dir`: /var/tmp is on disk, /tmp is often a tmpfs.
const TEMP_PARENT: &str = "/var/tmp";
/// The fsync floor: blocks of about a batch's WAL frames, appended and fsynced this many times.
const FSYNC_BLOCK: usize = 32 * 1024;
const FSYNC_SAMPLES: usize = 200;
/// Open files a process needs beside one socket per connection: each SQLite connection's
/// database, WAL and shared memory, the runtime's, the log.
const SPARE_FILES: u64 = 64;
/// The load while pruning has this many connections; it is compared with the plain load at
/// as many.
const PRUNE_CONNECTIONS: usize = 32;
/// The backlog: this many servers, one report every 10 minutes from 45 to 15 days ago (about
/// 216,000 reports), all of it older than the default raw retention (14 days).
const BACKLOG_SERVERS: usize = 50;
const BACKLOG_INTERVAL_MS: i64 = 600_000;
const BACKLOG_FROM_DAYS_AGO: i64 = 45;
const BACKLOG_TO_DAYS_AGO: i64 = 15;
/// A retention that stores the backlog: a collector with the default one acknowledges a
/// report older than 14 days without storing it.
const LONG_RETENTION: [&str; 6] = [
    "--retain-raw",
    "3650d",
    "--retain-evidence",
    "3650d",
    "--retain-hourly",
    "3650d",
];
/// The collector's log line at the end of a pruner's pass that deleted rows (with `rows=N`).
const PRUNE_PASS_LOG: &str = "pruned what is older than the retention";

struct Options {
    servers: usize,
    /// The load levels, run in this order.
    connections: Vec<usize>,
    seconds: u64,
    healthy_reports: u64,
    db_dir: Option<PathBuf>,
    /// Phase 6, the loads on PostgreSQL (`--no-postgres` leaves it out).
    postgres: bool,
    /// Phase 6 alone (`--only-postgres`), after the fleet's tokens are made.
    only_postgres: bool,
    /// Phases 1 to 3 only (`--loads-only`): the figures an A/B of two builds compares.
    loads_only: bool,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let mut o = Options {
            servers: 256,
            connections: vec![32, 256],
            seconds: 10,
            healthy_reports: 100,
            db_dir: None,
            postgres: true,
            only_postgres: false,
            loads_only: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value =
                |name: &str| args.next().with_context(|| format!("{name} needs a value"));
            match arg.as_str() {
                // cargo bench passes --bench to a harness-less bench.
                "--bench" => {}
                "--servers" => o.servers = value(&arg)?.parse()?,
                "--connections" => o.connections = parse_levels(&value(&arg)?)?,
                "--seconds" => o.seconds = value(&arg)?.parse()?,
                "--healthy-reports" => o.healthy_reports = value(&arg)?.parse()?,
                "--db-dir" => o.db_dir = Some(value(&arg)?.into()),
                "--no-postgres" => o.postgres = false,
                "--only-postgres" => o.only_postgres = true,
                "--loads-only" => o.loads_only = true,
                "--collector" => {
                    let path = PathBuf::from(value(&arg)?);
                    ensure!(
                        path.is_file(),
                        "--collector: {} is not a file",
                        path.display()
                    );
                    let _ = COLLECTOR.set(path);
                }
                other => bail!(
                    "unknown argument {other:?}; options: --servers N, --connections N,N,..., \
                     --seconds N, --healthy-reports N, --db-dir DIR, --no-postgres, \
                     --only-postgres, --loads-only, --collector PATH"
                ),
            }
        }
        ensure!(
            (1..=9999).contains(&o.servers),
            "--servers must be 1..=9999"
        );
        ensure!(
            o.connections.iter().all(|c| (1..=1024).contains(c)),
            "each --connections level must be 1..=1024"
        );
        // Each task posts its own servers' reports, in order: fewer servers than connections
        // would leave connections unused and the level mislabelled.
        ensure!(
            o.servers >= o.max_connections(),
            "--servers ({}) must be at least the largest --connections level ({}): each \
             server's reports go over one connection",
            o.servers,
            o.max_connections()
        );
        ensure!(o.seconds >= 1, "--seconds must be at least 1");
        ensure!(
            o.healthy_reports >= 1,
            "--healthy-reports must be at least 1"
        );
        Ok(o)
    }

    fn max_connections(&self) -> usize {
        self.connections.iter().copied().max().unwrap_or(1)
    }
}

/// `32,256`: the load levels.
fn parse_levels(text: &str) -> anyhow::Result<Vec<usize>> {
    text.split(',')
        .map(|level| {
            level
                .trim()
                .parse()
                .with_context(|| format!("--connections: {level:?} is not a number"))
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    // reqwest is built without a TLS provider of its own and will not build a client, even for
    // plain http, until one is installed: the collector's own (ring).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // One thread for the load: the machine's other cores are left to the collector.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(options))
}

/// What every phase works with.
struct Bench {
    o: Options,
    dir: PathBuf,
    /// The servers and their tokens only: each phase starts from a copy.
    tokens_db: PathBuf,
    fleet: Vec<Server>,
    fsync: Fsync,
}

async fn run(o: Options) -> anyhow::Result<()> {
    // Removed when dropped, also on an error (after the collectors, which are declared later).
    let tmp;
    let dir = match &o.db_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("ingest-bench-")
                .tempdir_in(TEMP_PARENT)?;
            tmp.path().to_owned()
        }
    };
    let levels: Vec<String> = o.connections.iter().map(|c| c.to_string()).collect();
    println!(
        "ingest bench: {} servers, {} connections, {} s measured after a {} s warm-up",
        o.servers,
        levels.join(" then "),
        o.seconds,
        WARMUP.as_secs()
    );
    println!(
        "databases in {} (file system: {}), collector {}",
        dir.display(),
        file_system(&dir),
        collector_bin().display()
    );
    println!(
        "open files: at most {} for this bench and the collector (inherited)",
        open_files_limit("self")?
    );
    let tokens_db = dir.join("tokens.db");
    let fleet = make_fleet(&tokens_db, o.servers)?;
    let fsync = fsync_floor(&dir)?;
    let bench = Bench {
        o,
        dir,
        tokens_db,
        fleet,
        fsync,
    };
    if bench.o.only_postgres {
        return postgres_phase(&bench).await;
    }
    let raw = raw_limit(&bench.dir).await?;
    let mut plain_at_prune_level = None;
    for &connections in &bench.o.connections {
        let summary = load_level(&bench, connections, raw).await?;
        if connections == PRUNE_CONNECTIONS {
            plain_at_prune_level = Some(summary);
        }
    }
    if bench.o.loads_only {
        return Ok(());
    }
    let healthy = healthy_phase(&bench).await?;
    print_projection(healthy);
    prune_phase(&bench, plain_at_prune_level).await?;
    if bench.o.postgres {
        postgres_phase(&bench).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Phases

/// What the load phase leaves: its figures and the database before and after.
struct LoadRun {
    load: Load,
    stored_total: u64,
    rows_before: BTreeMap<String, i64>,
    rows_after: BTreeMap<String, i64>,
    size_before: i64,
    size_after: i64,
}

impl LoadRun {
    fn bytes_added(&self) -> f64 {
        (self.size_after - self.size_before) as f64
    }
}

/// One load level on a fresh database: the load's figures with the fsync ceiling beside them,
/// then the rows and bytes per report and the raw limit. Returns the figures compared with the
/// load while pruning.
async fn load_level(b: &Bench, connections: usize, raw_rows_per_s: f64) -> anyhow::Result<Summary> {
    let run = load_phase(b, connections).await?;
    let summary = run.load.summary();
    let rows = rows_per_report(&run)?;
    print_limit(raw_rows_per_s, rows, summary.rate);
    let mixed = run.bytes_added() / run.stored_total as f64;
    println!(
        "bytes per check (the load, failures included): {mixed:.0} ({} bytes in use, {} before \
         the reports, {} checks)",
        run.size_after, run.size_before, run.stored_total
    );
    Ok(summary)
}

async fn load_phase(b: &Bench, connections: usize) -> anyhow::Result<LoadRun> {
    let db = b.dir.join(format!("bench-{connections}.db"));
    copy_db(&b.tokens_db, &db)?;
    let size_before = used_bytes(&db).await?;
    let rows_before = table_rows(&db).await?;
    let log = b.dir.join(format!("bench-{connections}.log"));
    let collector = Collector::start(&db, &log, &[]).await?;
    let plan = Plan::timed(connections, b.o.seconds, first_report_ms());
    println!("\nload: {connections} connections, {}", collector.base);
    let load = generate(&collector, &b.fleet, &plan).await?;
    // Stopped before the files are read: its last transactions checkpointed, the WAL gone.
    collector.stop().await?;
    print_load(&load);
    print_fsync_ceiling(b.fsync, connections, load.rate());
    print_log_problems(&log)?;
    ensure!(load.stored_total > 0, "no report was stored");
    Ok(LoadRun {
        stored_total: load.stored_total,
        load,
        rows_before,
        rows_after: table_rows(&db).await?,
        size_before,
        size_after: used_bytes(&db).await?,
    })
}

/// Prints the rows each table gained over the load and returns the rows per report.
fn rows_per_report(run: &LoadRun) -> anyhow::Result<f64> {
    let reports = run.stored_total as f64;
    println!(
        "rows per report: what each table gained over the {} reports stored (warm-up included)",
        run.stored_total
    );
    println!(
        "  {:<28} {:>10} {:>10} {:>10} {:>10}",
        "table", "before", "after", "added", "per report"
    );
    let mut added_total = 0;
    for (table, after) in &run.rows_after {
        let before = run.rows_before.get(table).copied().unwrap_or(0);
        let added = after - before;
        added_total += added;
        println!(
            "  {table:<28} {before:>10} {after:>10} {added:>10} {:>10.3}",
            added as f64 / reports
        );
    }
    let per_report = added_total as f64 / reports;
    println!(
        "  {:<28} {:>10} {:>10} {added_total:>10} {per_report:>10.3}",
        "all tables", "", ""
    );
    ensure!(added_total > 0, "the reports added no row to any table");
    Ok(per_report)
}

fn print_limit(raw_rows_per_s: f64, rows_per_report: f64, reached: f64) {
    let limit = raw_rows_per_s / rows_per_report;
    println!(
        "raw limit = {raw_rows_per_s:.0} rows/s / {rows_per_report:.2} rows per report = \
         {limit:.0} reports/s; ingest reached {reached:.0} reports/s = {:.1} % of it",
        100.0 * reached / limit
    );
}

/// Bytes per healthy check at the steady state, on a fresh database (its servers and tokens
/// only): `--healthy-reports` healthy reports per server, then as many again; the bytes the
/// second half added over its checks. Measured while the collector runs: a reader sees the
/// pages of every committed transaction, the WAL's included.
async fn healthy_phase(b: &Bench) -> anyhow::Result<f64> {
    let db = b.dir.join("healthy.db");
    copy_db(&b.tokens_db, &db)?;
    let log = b.dir.join("healthy.log");
    let collector = Collector::start(&db, &log, &[]).await?;
    let reports = b.o.healthy_reports;
    println!(
        "\nhealthy only: {} servers x {reports} healthy reports, then as many again, on a fresh \
         database",
        b.fleet.len()
    );
    let start_ms = first_report_ms();
    let first = post_healthy(b, &collector, start_ms, 0).await?;
    print_stretch("first half", &first);
    let middle = Space::measure(&db).await?;
    let second = post_healthy(b, &collector, start_ms, reports).await?;
    print_stretch("second half", &second);
    let end = Space::measure(&db).await?;
    collector.stop().await?;
    print_log_problems(&log)?;
    ensure!(
        first.stored_total > 0 && second.stored_total > 0,
        "no healthy report was stored in a half"
    );
    // One check per report.
    let checks = second.stored_total;
    let added = end.used() - middle.used();
    let marginal = added as f64 / checks as f64;
    let all_checks = first.stored_total + checks;
    println!(
        "  marginal: {added} bytes for the second half's {checks} checks = {marginal:.0} bytes \
         per check (projected below)"
    );
    println!(
        "  whole file: {} bytes in use for all {all_checks} checks = {:.0} bytes per check \
         (each server's fixed costs included)",
        end.used(),
        end.used() as f64 / all_checks as f64
    );
    print_table_bytes(&middle, &end, checks);
    Ok(marginal)
}

/// Every server's healthy reports number `first..first + --healthy-reports`.
async fn post_healthy(
    b: &Bench,
    collector: &Collector,
    start_ms: i64,
    first: u64,
) -> anyhow::Result<Load> {
    let plan = Plan {
        warmup: Duration::ZERO,
        until: Until::Reports(b.o.healthy_reports),
        healthy_only: true,
        connections: b.o.connections[0],
        start_ms,
        interval_ms: INTERVAL_MS,
        first_report: first,
    };
    generate(collector, &b.fleet, &plan).await
}

/// What a stretch of counted reports did, the whole stretch measured.
fn print_stretch(label: &str, load: &Load) {
    println!(
        "  {label}: stored {} reports in {:.1} s ({:.0} reports/s), {} errors",
        load.stored_total,
        load.window.as_secs_f64(),
        load.rate(),
        load.errors
    );
    print_errors(load);
}

/// The bytes each table (its indexes included) gained between `before` and `after`, per
/// check; the pages overall where SQLite has no `dbstat`.
fn print_table_bytes(before: &Space, after: &Space, checks: u64) {
    let (Some(tables_before), Some(tables_after)) = (&before.tables, &after.tables) else {
        println!(
            "  by table: not available (this SQLite has no dbstat table); overall the second \
             half added {} pages of {} bytes",
            after.pages - before.pages,
            after.page_size
        );
        return;
    };
    let per_check = |bytes: i64| bytes as f64 / checks as f64;
    println!("  by table, second half (dbstat: each table's pages, its indexes included):");
    println!(
        "    {:<28} {:>10} {:>10} {:>10} {:>10} {:>14}",
        "table", "before", "after", "added", "per check", "indexes/check"
    );
    for (table, bytes) in tables_after {
        let was = tables_before.get(table).copied().unwrap_or_default();
        println!(
            "    {table:<28} {:>10} {:>10} {:>10} {:>10.1} {:>14.1}",
            was.all,
            bytes.all,
            bytes.all - was.all,
            per_check(bytes.all - was.all),
            per_check(bytes.indexes - was.indexes)
        );
    }
    let sum = |tables: &BTreeMap<String, TableBytes>| tables.values().map(|t| t.all).sum::<i64>();
    let added = sum(tables_after) - sum(tables_before);
    println!(
        "    {:<28} {:>10} {:>10} {added:>10} {:>10.1}",
        "all",
        sum(tables_before),
        sum(tables_after),
        per_check(added)
    );
}

fn print_projection(bytes_per_check: f64) {
    println!("bytes per healthy check (marginal): {bytes_per_check:.0}");
    let per_day = FLEET * CHECKS_PER_DAY * bytes_per_check;
    let kept = per_day * RETENTION_DAYS;
    println!(
        "1,000 servers at a 10 s interval keep {RETENTION_DAYS:.0} days of raw checks \
         (retention default): 1000 * 8640 * {RETENTION_DAYS:.0} * {bytes_per_check:.0} bytes = \
         {:.1} GB ({:.2} GB per day)",
        kept / 1e9,
        per_day / 1e9
    );
}

/// Ingest while the pruner deletes a backlog older than the retention, beside the plain load
/// at as many connections (`plain`, if that level was run).
async fn prune_phase(b: &Bench, plain: Option<Summary>) -> anyhow::Result<()> {
    println!("\ningest while pruning a backlog");
    let db = b.dir.join("backlog.db");
    build_backlog(b, &db).await?;
    // The rows before, kept to tell the rows pruned from those the load adds meanwhile.
    let before = b.dir.join("backlog-before.db");
    copy_db(&db, &before)?;
    let log = b.dir.join("pruning.log");
    let started = Instant::now();
    let collector = Collector::start(&db, &log, &[]).await?;
    let connections = PRUNE_CONNECTIONS.min(b.fleet.len());
    println!(
        "  restarted with the default retention (its pruner starts at once), load: \
         {connections} connections, {} servers, reports dated from {START_HOURS_AGO} hours ago",
        b.fleet.len()
    );
    // As the plain loads': inside every retention, and never ahead of the collector's clock
    // (it refuses reports dated more than 5 minutes ahead), though each server's reports are
    // 10 s apart and a load posts hundreds of them per server.
    let plan = Plan::timed(connections, b.o.seconds, first_report_ms());
    let load = generate(&collector, &b.fleet, &plan).await?;
    // Read before the stop: the passes that ended by the end of the load.
    let passes = pruner_passes(&log)?;
    collector.stop().await?;
    let ran = started.elapsed();
    print_load(&load);
    print_fsync_ceiling(b.fsync, connections, load.rate());
    print_log_problems(&log)?;
    print_beside(plain, load.summary());
    let changes = table_changes(&before, &db).await?;
    print_pruned(&changes, ran);
    print_passes(&passes);
    Ok(())
}

/// The backlog, posted to a collector with a long retention, which is then stopped (SIGTERM:
/// its WAL checkpointed).
async fn build_backlog(b: &Bench, db: &Path) -> anyhow::Result<()> {
    copy_db(&b.tokens_db, db)?;
    let log = b.dir.join("backlog.log");
    let collector = Collector::start(db, &log, &LONG_RETENTION).await?;
    let servers = &b.fleet[..BACKLOG_SERVERS.min(b.fleet.len())];
    let reports =
        ((BACKLOG_FROM_DAYS_AGO - BACKLOG_TO_DAYS_AGO) * DAY_MS / BACKLOG_INTERVAL_MS) as u64;
    // One connection per server: as many as can be used with each server's reports in order.
    let plan = Plan {
        warmup: Duration::ZERO,
        until: Until::Reports(reports),
        healthy_only: false,
        connections: servers.len(),
        start_ms: on_interval(
            now_ms() - BACKLOG_FROM_DAYS_AGO * DAY_MS,
            BACKLOG_INTERVAL_MS,
        ),
        interval_ms: BACKLOG_INTERVAL_MS,
        first_report: 0,
    };
    println!(
        "  backlog: {} servers x {reports} reports (one per {} min, {BACKLOG_FROM_DAYS_AGO} to \
         {BACKLOG_TO_DAYS_AGO} days ago) on {} connections, collector with {}",
        servers.len(),
        BACKLOG_INTERVAL_MS / 60_000,
        servers.len(),
        LONG_RETENTION.join(" ")
    );
    let load = generate(&collector, servers, &plan).await?;
    collector.stop().await?;
    print_stretch("backlog", &load);
    print_log_problems(&log)?;
    ensure!(load.stored_total > 0, "no report of the backlog was stored");
    println!("  {} bytes in use", used_bytes(db).await?);
    Ok(())
}

fn print_beside(plain: Option<Summary>, pruning: Summary) {
    println!(
        "  {:<24} {:>10} {:>9} {:>9} {:>9}",
        format!("{PRUNE_CONNECTIONS} connections"),
        "reports/s",
        "p50 ms",
        "p99 ms",
        "max ms"
    );
    let row = |label: &str, s: Summary| {
        println!(
            "  {label:<24} {:>10.0} {:>9.1} {:>9.1} {:>9.1}",
            s.rate, s.p50_ms, s.p99_ms, s.max_ms
        );
    };
    match plain {
        Some(plain) => row("plain load", plain),
        None => println!(
            "  (no plain load at {PRUNE_CONNECTIONS} connections to compare with: add \
             {PRUNE_CONNECTIONS} to --connections)"
        ),
    }
    row("while pruning", pruning);
}

/// Per table, the rows before and after and those pruned (gone); the rest of the change is
/// the load's.
fn print_pruned(changes: &BTreeMap<String, TableChange>, ran: Duration) {
    println!(
        "  rows while the collector ran ({:.1} s: warm-up, load and stop): gone = rows of the \
         backlog no longer there (pruned), new = the load's",
        ran.as_secs_f64()
    );
    println!(
        "    {:<28} {:>10} {:>10} {:>10} {:>10}",
        "table", "before", "after", "gone", "new"
    );
    let mut gone = 0;
    for (table, c) in changes {
        gone += c.gone;
        println!(
            "    {table:<28} {:>10} {:>10} {:>10} {:>10}",
            c.before,
            c.after,
            c.gone,
            c.after - c.before + c.gone
        );
    }
    println!(
        "  pruned {gone} rows while the collector ran = {:.0} rows/s",
        gone as f64 / ran.as_secs_f64()
    );
}

fn print_passes(passes: &[Option<u64>]) {
    if passes.is_empty() {
        println!(
            "  pruner: no pass over every server ended by the end of the load (no \
             `{PRUNE_PASS_LOG}` in the log): it was still deleting the backlog"
        );
        return;
    }
    let rows: Vec<String> = passes
        .iter()
        .map(|rows| rows.map_or_else(|| "rows=?".to_owned(), |n| format!("rows={n}")))
        .collect();
    println!(
        "  pruner: {} pass(es) over every server ended by the end of the load: {}",
        passes.len(),
        rows.join(", ")
    );
}

/// The rows of each pruner pass that ended (None where the line has no `rows=N`), from the
/// collector's log so far.
fn pruner_passes(log: &Path) -> anyhow::Result<Vec<Option<u64>>> {
    let mut passes = Vec::new();
    for line in BufReader::new(File::open(log)?).lines() {
        let line = line?;
        if line.contains(PRUNE_PASS_LOG) {
            let rows = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("rows="))
                .and_then(|n| n.parse().ok());
            passes.push(rows);
        }
    }
    Ok(passes)
}

// ---------------------------------------------------------------------------------------------
// The disk's limit

/// fsync's latency on the databases' file system, the floor under a durable commit's.
#[derive(Clone, Copy)]
struct Fsync {
    p50_ms: f64,
    p90_ms: f64,
}

/// Blocks appended to a file and fsynced one by one, as a commit appends its frames to the WAL
/// and syncs it (SQLite uses fdatasync, which costs the same for an append: the file's size
/// changes).
fn fsync_floor(dir: &Path) -> anyhow::Result<Fsync> {
    let path = dir.join("fsync.probe");
    let mut file = File::create(&path)?;
    let block = vec![0x5a_u8; FSYNC_BLOCK];
    let mut ms = Vec::with_capacity(FSYNC_SAMPLES);
    for _ in 0..FSYNC_SAMPLES {
        let started = Instant::now();
        file.write_all(&block)?;
        file.sync_all()?;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    drop(file);
    std::fs::remove_file(&path)?;
    ms.sort_by(f64::total_cmp);
    let fsync = Fsync {
        p50_ms: percentile(&ms, 50),
        p90_ms: percentile(&ms, 90),
    };
    println!(
        "\nfsync floor ({FSYNC_SAMPLES} x {} KiB appended + fsync in {}): p50 {:.3} ms, p90 \
         {:.3} ms, max {:.3} ms",
        FSYNC_BLOCK / 1024,
        dir.display(),
        fsync.p50_ms,
        fsync.p90_ms,
        ms[ms.len() - 1]
    );
    Ok(fsync)
}

/// Little's law: `connections` clients each wait for their answer, and no answer comes before
/// the fsync of its transaction, so at most `connections` reports are answered per fsync.
fn print_fsync_ceiling(fsync: Fsync, connections: usize, reached: f64) {
    let ceiling = connections as f64 / (fsync.p50_ms / 1000.0);
    println!(
        "  fsync ceiling {connections} connections / {:.3} ms (fsync p50) = {ceiling:.0} \
         reports/s; ingest reached {reached:.0} = {:.1} % of it",
        fsync.p50_ms,
        100.0 * reached / ceiling
    );
}

// ---------------------------------------------------------------------------------------------
// The collector

/// The collector serving a database, killed if it is dropped before it is stopped (an error
/// on the way must not leave it running).
struct Collector {
    child: Child,
    base: String,
}

impl Collector {
    /// Serves `db` (a file or a URL) with `args` after `serve`'s own (a retention), logging
    /// to `log`.
    async fn start(
        db: impl AsRef<std::ffi::OsStr>,
        log: &Path,
        args: &[&str],
    ) -> anyhow::Result<Collector> {
        let addr = free_address()?;
        let child = Command::new(collector_bin())
            .arg("--db")
            .arg(db)
            .args(["serve", "--listen", &addr.to_string()])
            .args(args)
            // Its default, pinned: the pruner's passes are logged at info, and a RUST_LOG of
            // debug in the caller's shell would log every report, slowing ingest.
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(log)?)
            .spawn()
            .with_context(|| format!("cannot start {}", collector_bin().display()))?;
        let mut collector = Collector {
            child,
            base: format!("http://{addr}"),
        };
        collector.wait_healthy(log).await?;
        Ok(collector)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn wait_healthy(&mut self, log: &Path) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(1))
            .build()?;
        let url = format!("{}/healthz", self.base);
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the collector exited ({status}) before serving; see {}",
                    log.display()
                );
            }
            if let Ok(answer) = http.get(&url).send().await
                && answer.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{url} did not answer within 10 s; see {}", log.display())
    }

    /// SIGTERM, as systemd stops it, so that it closes the database (and checkpoints the WAL)
    /// as it would in production.
    async fn stop(mut self) -> anyhow::Result<()> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        ensure!(sent.success(), "kill -TERM {} failed", self.pid());
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait()? {
                ensure!(status.success(), "the collector exited with {status}");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the collector did not stop within 30 s of SIGTERM")
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port free now; the collector binds it a moment later (another process taking it in
/// between would make the start fail, not the figures wrong).
fn free_address() -> anyhow::Result<SocketAddr> {
    let probe = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(probe.local_addr()?)
}

/// The servers, each with a token made by `token add` as an operator would, into a database
/// that each phase then copies: the tokens are made once.
fn make_fleet(db: &Path, servers: usize) -> anyhow::Result<Vec<Server>> {
    remove_db(db)?;
    let started = Instant::now();
    let fleet = (0..servers)
        .map(|index| {
            let name = format!("web-{index:04}");
            let token = add_token(db, &name)?;
            Ok(Server { index, name, token })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    println!(
        "{} tokens made with `causeway-collector token add` in {:.1} s",
        fleet.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(fleet)
}

fn add_token(db: &Path, server: &str) -> anyhow::Result<String> {
    let out = Command::new(collector_bin())
        .arg("--db")
        .arg(db)
        .args(["token", "add", server])
        .output()?;
    ensure!(
        out.status.success(),
        "token add {server}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // `token add` prints only the token on stdout.
    let token = String::from_utf8(out.stdout)?.trim().to_owned();
    ensure!(!token.is_empty(), "token add {server} printed no token");
    Ok(token)
}

/// Prints the warnings and errors the collector logged, which a clean run has none of.
fn print_log_problems(log: &Path) -> anyhow::Result<()> {
    let mut problems = 0;
    for line in BufReader::new(File::open(log)?).lines() {
        let line = line?;
        if line.contains(" WARN ") || line.contains(" ERROR ") {
            problems += 1;
            if problems <= ERRORS_SHOWN {
                println!("  collector log: {line}");
            }
        }
    }
    if problems > ERRORS_SHOWN {
        println!(
            "  collector log: {} more warnings or errors in {}",
            problems - ERRORS_SHOWN,
            log.display()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Open files

/// The soft limit on open files of a process (`self` or a pid), the one `accept` and `connect`
/// fail against (EMFILE).
fn open_files_limit(process: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{process}/limits");
    let limits = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let soft = limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .with_context(|| format!("{path}: no open files limit"))?;
    if soft == "unlimited" {
        return Ok(u64::MAX);
    }
    soft.parse()
        .with_context(|| format!("{path}: open files limit {soft:?}"))
}

/// Fails if `process` cannot hold a socket per connection and its other files.
fn check_open_files(who: &str, process: &str, connections: usize) -> anyhow::Result<()> {
    let need = connections as u64 + SPARE_FILES;
    let limit = open_files_limit(process)?;
    ensure!(
        limit >= need,
        "{who} may open {limit} files, and {connections} connections need about {need}: raise \
         the limit before running the bench (`ulimit -n {need}` or more)"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The load

#[derive(Clone)]
struct Server {
    index: usize,
    name: String,
    token: String,
}

struct Plan {
    /// Figures of this first stretch are dropped: connections opening, caches filling.
    warmup: Duration,
    until: Until,
    healthy_only: bool,
    connections: usize,
    /// The time of each server's report number 0, and the spacing of its reports.
    start_ms: i64,
    interval_ms: i64,
    /// The number of each server's first report: a plan may continue an earlier one.
    first_report: u64,
}

impl Plan {
    /// Mixed reports 10 s apart from `start_ms`, for `seconds` after the warm-up.
    fn timed(connections: usize, seconds: u64, start_ms: i64) -> Plan {
        Plan {
            warmup: WARMUP,
            until: Until::Elapsed(Duration::from_secs(seconds)),
            healthy_only: false,
            connections,
            start_ms,
            interval_ms: INTERVAL_MS,
            first_report: 0,
        }
    }
}

#[derive(Clone, Copy)]
enum Until {
    /// Measured for this long after the warm-up.
    Elapsed(Duration),
    /// Until every server has sent this many reports.
    Reports(u64),
}

/// The figures of a load: those of the measured window, and the reports stored in all.
#[derive(Default)]
struct Load {
    stored_total: u64,
    window_stored: u64,
    window: Duration,
    latencies: Vec<Duration>,
    errors: u64,
    first_errors: Vec<String>,
    collector_cpu_s: f64,
    generator_cpu_s: f64,
}

/// The figures compared between loads.
#[derive(Clone, Copy)]
struct Summary {
    rate: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Load {
    fn add(&mut self, task: Load) {
        self.stored_total += task.stored_total;
        self.window_stored += task.window_stored;
        self.latencies.extend(task.latencies);
        self.errors += task.errors;
        let room = ERRORS_SHOWN.saturating_sub(self.first_errors.len());
        self.first_errors
            .extend(task.first_errors.into_iter().take(room));
    }

    fn error(&mut self, text: String) {
        self.errors += 1;
        if self.first_errors.len() < ERRORS_SHOWN {
            self.first_errors.push(text);
        }
    }

    /// Reports stored per second in the measured window.
    fn rate(&self) -> f64 {
        self.window_stored as f64 / self.window.as_secs_f64()
    }

    /// The rate and latency percentiles (NaN when no report was answered in the window).
    fn summary(&self) -> Summary {
        let mut ms: Vec<f64> = self
            .latencies
            .iter()
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        let pct = |p| {
            if ms.is_empty() {
                f64::NAN
            } else {
                percentile(&ms, p)
            }
        };
        Summary {
            rate: self.rate(),
            p50_ms: pct(50),
            p90_ms: pct(90),
            p99_ms: pct(99),
            max_ms: pct(100),
        }
    }
}

/// Posts reports of `fleet` on `plan.connections` connections, each task owning a share of the
/// servers so that each server's reports arrive in order, as one probe sends them.
async fn generate(collector: &Collector, fleet: &[Server], plan: &Plan) -> anyhow::Result<Load> {
    let connections = plan.connections.min(fleet.len());
    check_open_files("this bench", "self", connections)?;
    check_open_files("the collector", &collector.pid().to_string(), connections)?;
    let window_start = Instant::now() + plan.warmup;
    let window_end = match plan.until {
        Until::Elapsed(d) => Some(window_start + d),
        Until::Reports(_) => None,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..connections {
        let servers: Vec<Server> = fleet
            .iter()
            .skip(task)
            .step_by(connections)
            .cloned()
            .collect();
        let poster = Poster {
            http: client()?,
            url: format!("{}/api/v1/reports", collector.base),
            start_ms: plan.start_ms,
            interval_ms: plan.interval_ms,
            first_report: plan.first_report,
            healthy_only: plan.healthy_only,
            window_start,
            window_end,
            until: plan.until,
        };
        tasks.spawn(async move { poster.run(servers).await });
    }
    tokio::time::sleep_until(window_start.into()).await;
    let meter = Meter::start(collector.pid())?;
    let mut load = Load::default();
    // A timed window ends at its deadline, the requests then in flight left out; a counted
    // one when the last report is answered.
    if let Some(end) = window_end {
        tokio::time::sleep_until(end.into()).await;
        meter.stop(&mut load)?;
    }
    while let Some(task) = tasks.join_next().await {
        load.add(task?);
    }
    if window_end.is_none() {
        meter.stop(&mut load)?;
    }
    Ok(load)
}

/// The measured window's length and the CPU time spent in it, by the collector and by this
/// bench (which shares the cores with it).
struct Meter {
    pid: u32,
    ticks: f64,
    started: Instant,
    collector_cpu_s: f64,
    own_cpu_s: f64,
}

impl Meter {
    fn start(pid: u32) -> anyhow::Result<Meter> {
        let ticks = clock_ticks();
        Ok(Meter {
            pid,
            ticks,
            started: Instant::now(),
            collector_cpu_s: cpu_seconds(pid, ticks)?,
            own_cpu_s: own_cpu_seconds(ticks)?,
        })
    }

    fn stop(&self, load: &mut Load) -> anyhow::Result<()> {
        load.window = self.started.elapsed();
        load.collector_cpu_s = cpu_seconds(self.pid, self.ticks)? - self.collector_cpu_s;
        load.generator_cpu_s = own_cpu_seconds(self.ticks)? - self.own_cpu_s;
        Ok(())
    }
}

/// One keep-alive connection: a client of its own with one idle connection kept.
fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// `ms` down to a multiple of `interval_ms`, as a probe's cycles are.
fn on_interval(ms: i64, interval_ms: i64) -> i64 {
    ms - ms % interval_ms
}

/// The first report's time of the plain loads.
fn first_report_ms() -> i64 {
    on_interval(now_ms() - START_HOURS_AGO * HOUR_MS, INTERVAL_MS)
}

/// One connection's task.
struct Poster {
    http: reqwest::Client,
    url: String,
    start_ms: i64,
    interval_ms: i64,
    first_report: u64,
    healthy_only: bool,
    window_start: Instant,
    window_end: Option<Instant>,
    until: Until,
}

impl Poster {
    /// Posts its servers' reports in turn (n-th report of each, then the n+1-th), each as soon
    /// as the previous is answered.
    async fn run(self, servers: Vec<Server>) -> Load {
        let mut load = Load::default();
        let end = match self.until {
            Until::Reports(count) => self.first_report + count,
            Until::Elapsed(_) => u64::MAX,
        };
        for n in self.first_report..end {
            for server in &servers {
                if self.window_end.is_some_and(|end| Instant::now() >= end) {
                    return load;
                }
                let report = self.report(server, n);
                self.post(&report, &server.token, &mut load).await;
            }
        }
        load
    }

    /// The `n`-th report of `server`. Failures and refusing name servers are spread over the
    /// servers (each has its own phase) rather than hitting the whole fleet in the same cycle.
    fn report(&self, server: &Server, n: u64) -> Report {
        let phase = n + (server.index as u64 * 37);
        let failed = !self.healthy_only && phase.is_multiple_of(FAIL_EVERY);
        let refusing_ns = !self.healthy_only && phase % REFUSE_EVERY == REFUSE_EVERY / 2;
        let at = self.start_ms + n as i64 * self.interval_ms;
        let resolvers = RESOLVERS
            .iter()
            .enumerate()
            .map(|(i, ns)| {
                if refusing_ns && i == RESOLVERS.len() - 1 {
                    refusing(ns)
                } else {
                    answering(ns)
                }
            })
            .collect();
        let resolution = resolution(resolvers);
        let host = ProbeHost::at(at);
        let check = if failed {
            let mut check = refused_on(at, &host, at - 5_000);
            check.evidence.dns = resolution.resolvers.clone();
            check
        } else {
            ok_check(at)
        };
        let mut r = report(&server.name, at, vec![check]);
        r.interval_s = (self.interval_ms / 1000) as u32;
        r.resolutions = vec![resolution];
        with_host(r, &host)
    }

    async fn post(&self, report: &Report, token: &str, load: &mut Load) {
        // Serialized before the clock starts: the latency is the collector's and the wire's.
        let body = serde_json::to_vec(report).expect("a report serializes");
        let sent = Instant::now();
        let answer = self
            .http
            .post(&self.url)
            .bearer_auth(token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        let outcome = match answer {
            Ok(answer) => stored(answer).await,
            Err(e) => Err(format!("no answer: {e}")),
        };
        let done = Instant::now();
        let in_window = done >= self.window_start && self.window_end.is_none_or(|end| done <= end);
        match outcome {
            Ok(()) => {
                load.stored_total += 1;
                if in_window {
                    load.window_stored += 1;
                    load.latencies.push(done - sent);
                }
            }
            Err(e) => load.error(format!(
                "{} report {} ({}): {e}",
                report.server, report.report_id, report.started_at_ms
            )),
        }
    }
}

/// Whether the collector stored the report: a 200 saying `"stored": true`, nothing else (an
/// `"expired": true` answer, for one older than the retention, is an error here).
async fn stored(answer: reqwest::Response) -> Result<(), String> {
    let status = answer.status();
    let body = answer.text().await.map_err(|e| format!("{status}: {e}"))?;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    if status == 200 && json["stored"] == true {
        Ok(())
    } else {
        Err(format!(
            "{status}: {}",
            body.chars().take(300).collect::<String>()
        ))
    }
}

fn print_load(load: &Load) {
    let secs = load.window.as_secs_f64();
    println!(
        "  stored       {} reports in {secs:.1} s = {:.0} reports/s ({} in all, warm-up \
         included; one check each)",
        load.window_stored,
        load.rate(),
        load.stored_total
    );
    if !load.latencies.is_empty() {
        let s = load.summary();
        println!(
            "  latency      p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms
        );
    }
    println!("  errors       {}", load.errors);
    print_errors(load);
    let per_1000 = |cpu: f64| 1000.0 * cpu / load.window_stored.max(1) as f64;
    println!(
        "  collector    {:.2} CPU s = {:.3} CPU s per 1000 reports ({:.0} % of one core)",
        load.collector_cpu_s,
        per_1000(load.collector_cpu_s),
        100.0 * load.collector_cpu_s / secs
    );
    println!(
        "  this bench   {:.2} CPU s = {:.3} CPU s per 1000 reports (building, sending, \
         on the same cores)",
        load.generator_cpu_s,
        per_1000(load.generator_cpu_s)
    );
}

fn print_errors(load: &Load) {
    for e in &load.first_errors {
        println!("    {e}");
    }
}

/// Nearest rank, of sorted samples.
fn percentile(sorted: &[f64], pct: usize) -> f64 {
    sorted[(sorted.len() * pct).div_ceil(100).max(1) - 1]
}

// ---------------------------------------------------------------------------------------------
// CPU time, from /proc

/// Clock ticks per second, the unit of /proc's CPU times (100 nearly everywhere).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

fn cpu_seconds(pid: u32, ticks: f64) -> anyhow::Result<f64> {
    proc_cpu_seconds(&format!("/proc/{pid}/stat"), ticks)
}

fn own_cpu_seconds(ticks: f64) -> anyhow::Result<f64> {
    proc_cpu_seconds("/proc/self/stat", ticks)
}

/// utime + stime of a process, all its threads included.
fn proc_cpu_seconds(path: &str, ticks: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    // The command name (field 2) may hold spaces and parentheses: fields are counted from its
    // last closing parenthesis, field 3 first, so utime (14) and stime (15) are 11 and 12.
    let after_name = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .with_context(|| format!("{path}: no command name"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| -> anyhow::Result<f64> {
        let text = fields
            .get(i)
            .with_context(|| format!("{path}: too short"))?;
        Ok(text.parse::<u64>()? as f64)
    };
    Ok((field(11)? + field(12)?) / ticks)
}

// ---------------------------------------------------------------------------------------------
// SQLite files

fn read_only(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .disable_statement_logging()
}

/// `name` as an SQL identifier.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Every table, whatever the migrations made (SQLite's and sqlx's own excepted), of `schema`.
async fn user_tables(conn: &mut SqliteConnection, schema: &str) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(&format!(
        r"SELECT name FROM {schema}.sqlite_master
          WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
            AND name <> '_sqlx_migrations'
          ORDER BY name"
    ))
    .fetch_all(conn)
    .await?)
}

async fn count_rows(conn: &mut SqliteConnection, schema: &str, table: &str) -> anyhow::Result<i64> {
    let sql = format!("SELECT count(*) FROM {schema}.{}", quote(table));
    Ok(sqlx::query_scalar(&sql).fetch_one(conn).await?)
}

/// Rows of every table.
async fn table_rows(db: &Path) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut conn = read_only(db).connect().await?;
    let mut rows = BTreeMap::new();
    for table in user_tables(&mut conn, "main").await? {
        let n = count_rows(&mut conn, "main", &table).await?;
        rows.insert(table, n);
    }
    conn.close().await?;
    Ok(rows)
}

/// A table's rows before and after, and how many of those before are gone.
struct TableChange {
    before: i64,
    after: i64,
    gone: i64,
}

/// Every table of `db` against the same table of `before`, a copy made earlier. A row is gone
/// if its primary key (the rowid where there is none) is no longer there: counted so, the rows
/// added meanwhile do not hide those deleted. Ingest updates rows and deletes none, so while
/// the collector ingests what is gone was pruned.
async fn table_changes(before: &Path, db: &Path) -> anyhow::Result<BTreeMap<String, TableChange>> {
    let mut conn = read_only(db).connect().await?;
    sqlx::query("ATTACH DATABASE ?1 AS before")
        .bind(
            before
                .to_str()
                .context("the database's path is not UTF-8")?,
        )
        .execute(&mut conn)
        .await?;
    let earlier = user_tables(&mut conn, "before").await?;
    let mut changes = BTreeMap::new();
    for table in user_tables(&mut conn, "main").await? {
        let after = count_rows(&mut conn, "main", &table).await?;
        let change = if earlier.contains(&table) {
            TableChange {
                before: count_rows(&mut conn, "before", &table).await?,
                after,
                gone: gone_rows(&mut conn, &table).await?,
            }
        } else {
            TableChange {
                before: 0,
                after,
                gone: 0,
            }
        };
        changes.insert(table, change);
    }
    conn.close().await?;
    Ok(changes)
}

/// Rows of `before.table` whose key `main.table` no longer has.
async fn gone_rows(conn: &mut SqliteConnection, table: &str) -> anyhow::Result<i64> {
    let key: Vec<String> =
        sqlx::query_scalar("SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk")
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
    let key = if key.is_empty() {
        vec!["rowid".to_owned()]
    } else {
        key.iter().map(|column| quote(column)).collect()
    };
    // IS rather than =: a NULL in a key (SQLite allows it outside integer keys) still matches.
    let same_key = key
        .iter()
        .map(|k| format!("a.{k} IS b.{k}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let t = quote(table);
    let sql = format!(
        "SELECT count(*) FROM before.{t} AS b
         WHERE NOT EXISTS (SELECT 1 FROM main.{t} AS a WHERE {same_key})"
    );
    Ok(sqlx::query_scalar(&sql).fetch_one(conn).await?)
}

/// The pages of a database in use (free ones left out: what deleting rows would not give back
/// without a VACUUM is the file's history, not the data) and its page size.
async fn used_pages(conn: &mut SqliteConnection) -> anyhow::Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT p.page_count - f.freelist_count, s.page_size
         FROM pragma_page_count() p, pragma_freelist_count() f, pragma_page_size() s",
    )
    .fetch_one(conn)
    .await?)
}

/// Bytes of the file in use.
async fn used_bytes(db: &Path) -> anyhow::Result<i64> {
    let mut conn = read_only(db).connect().await?;
    let (pages, page_size) = used_pages(&mut conn).await?;
    conn.close().await?;
    Ok(pages * page_size)
}

/// A table's bytes (its pages), its indexes' among them.
#[derive(Clone, Copy, Default)]
struct TableBytes {
    all: i64,
    indexes: i64,
}

/// The space a database uses: in all and, where SQLite has the `dbstat` table, per table.
struct Space {
    pages: i64,
    page_size: i64,
    tables: Option<BTreeMap<String, TableBytes>>,
}

impl Space {
    async fn measure(db: &Path) -> anyhow::Result<Space> {
        let mut conn = read_only(db).connect().await?;
        let (pages, page_size) = used_pages(&mut conn).await?;
        let tables = table_bytes(&mut conn).await?;
        conn.close().await?;
        Ok(Space {
            pages,
            page_size,
            tables,
        })
    }

    fn used(&self) -> i64 {
        self.pages * self.page_size
    }
}

/// Bytes per table, each index's pages counted with its table (SQLite's schema table under
/// its own name); None if this SQLite was built without `dbstat`.
async fn table_bytes(
    conn: &mut SqliteConnection,
) -> anyhow::Result<Option<BTreeMap<String, TableBytes>>> {
    let rows: Result<Vec<(String, i64, i64)>, sqlx::Error> = sqlx::query_as(
        "SELECT coalesce(m.tbl_name, d.name),
                sum(d.pgsize),
                sum(CASE WHEN m.type = 'index' THEN d.pgsize ELSE 0 END)
         FROM dbstat d LEFT JOIN sqlite_master m ON m.name = d.name
         GROUP BY 1",
    )
    .fetch_all(conn)
    .await;
    match rows {
        Ok(rows) => Ok(Some(
            rows.into_iter()
                .map(|(table, all, indexes)| (table, TableBytes { all, indexes }))
                .collect(),
        )),
        Err(e) if e.to_string().contains("no such table: dbstat") => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Copies a closed database (`token add` or a SIGTERM left no WAL, or an empty one) to a
/// fresh file.
fn copy_db(from: &Path, to: &Path) -> anyhow::Result<()> {
    ensure!(
        !wal_of(from).metadata().is_ok_and(|wal| wal.len() > 0),
        "{} has a WAL with frames: it was not closed",
        from.display()
    );
    remove_db(to)?;
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))?;
    Ok(())
}

/// Removes a database this bench made in an earlier run, with its WAL and shared memory.
fn remove_db(db: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).context(format!("cannot remove {}", db.display()));
            }
            _ => {}
        }
    }
    Ok(())
}

fn wal_of(db: &Path) -> PathBuf {
    let mut path = db.as_os_str().to_owned();
    path.push("-wal");
    path.into()
}

/// The file system of `dir`: synchronous=FULL costs an fsync per commit, which tmpfs makes
/// free and a disk does not.
fn file_system(dir: &Path) -> String {
    Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map_or_else(|| "unknown".to_owned(), |s| s.trim().to_owned())
}

// ---------------------------------------------------------------------------------------------
// The raw limit

/// A table shaped like a healthy check's row: the server, the report's 16-byte id, times and
/// the outcome, with no index but the rowid, so that its rate is a ceiling for ingest.
const RAW_TABLE: &str = "CREATE TABLE checks (
    id            INTEGER PRIMARY KEY,
    server_id     INTEGER NOT NULL,
    report_id     BLOB    NOT NULL,
    started_at_ms INTEGER NOT NULL,
    ok            INTEGER NOT NULL,
    status        INTEGER,
    total_ms      REAL    NOT NULL
)";
const RAW_INSERT: &str =
    "INSERT INTO checks (server_id, report_id, started_at_ms, ok, status, total_ms)
     VALUES (?1, ?2, ?3, 1, 200, ?4)";

/// The values of the `n`-th row: ids as scattered as random ones, without drawing a random
/// number per row.
fn raw_row(n: u64) -> (i64, [u8; 16], i64, f64) {
    let id = u128::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835);
    (
        (n % 200) as i64,
        id.to_le_bytes(),
        1_795_000_000_000 + n as i64 * 50,
        3.1,
    )
}

/// Rows per second SQLite itself takes on this disk as the collector writes (WAL,
/// synchronous=FULL, one connection), through rusqlite: statements back to back on this
/// thread, as the collector's writer runs them. The same through sqlx is printed beside it:
/// each of its statements is a round trip to its connection's worker thread, which is what
/// an ingest on sqlx pays per row.
async fn raw_limit(dir: &Path) -> anyhow::Result<f64> {
    let db = dir.join("raw.db");
    let (rows, secs) = raw_rusqlite(&db)?;
    let per_s = rows as f64 / secs;
    println!(
        "raw SQLite ({}: WAL, synchronous=FULL, one prepared INSERT, {RAW_BATCH} rows per \
         transaction): {rows} rows in {secs:.1} s = {per_s:.0} rows/s",
        db.display()
    );
    let (rows, secs) = raw_sqlx(&dir.join("raw-sqlx.db")).await?;
    println!(
        "  the same through sqlx: {rows} rows in {secs:.1} s = {:.0} rows/s",
        rows as f64 / secs
    );
    Ok(per_s)
}

fn raw_rusqlite(db: &Path) -> anyhow::Result<(u64, f64)> {
    remove_db(db)?;
    let mut conn = rusqlite::Connection::open(db)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    ensure!(mode == "wal", "{} is in journal mode {mode}", db.display());
    conn.execute_batch("PRAGMA synchronous = FULL")?;
    conn.execute_batch(RAW_TABLE)?;
    let started = Instant::now();
    let mut rows: u64 = 0;
    while started.elapsed() < RAW_SECONDS {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(RAW_INSERT)?;
            for n in rows..rows + RAW_BATCH as u64 {
                let (server, id, at, ms) = raw_row(n);
                insert.execute(rusqlite::params![server, &id[..], at, ms])?;
            }
        }
        tx.commit()?;
        rows += RAW_BATCH as u64;
    }
    Ok((rows, started.elapsed().as_secs_f64()))
}

async fn raw_sqlx(db: &Path) -> anyhow::Result<(u64, f64)> {
    remove_db(db)?;
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .disable_statement_logging()
        .connect()
        .await?;
    sqlx::query(RAW_TABLE).execute(&mut conn).await?;
    let started = Instant::now();
    let mut rows: u64 = 0;
    while started.elapsed() < RAW_SECONDS {
        sqlx_batch(&mut conn, rows).await?;
        rows += RAW_BATCH as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    conn.close().await?;
    Ok((rows, secs))
}

/// One transaction of the raw rows numbered from `first`, inserted by `sql` on `conn` (a
/// SQLite or a PostgreSQL connection: their sqlx types differ, the work does not). sqlx
/// prepares the statement once per connection and reuses it (its statement cache).
macro_rules! raw_batch {
    ($conn:expr, $sql:expr, $first:expr) => {{
        let mut tx = $conn.begin().await?;
        for n in $first..$first + RAW_BATCH as u64 {
            let (server, id, at, ms) = raw_row(n);
            sqlx::query($sql)
                .bind(server)
                .bind(&id[..])
                .bind(at)
                .bind(ms)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }};
}

async fn sqlx_batch(conn: &mut SqliteConnection, first: u64) -> anyhow::Result<()> {
    raw_batch!(conn, RAW_INSERT, first);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL (phase 6)

/// A PostgreSQL cluster of the bench's own, commits fsynced; stopped and deleted when dropped.
struct PgCluster {
    dir: PathBuf,
    /// The URL of its `postgres` database, through its Unix socket.
    url: String,
}

const PG_CLUSTER_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/pg-test-cluster");

impl PgCluster {
    fn start(dir: PathBuf) -> anyhow::Result<PgCluster> {
        let out = Command::new("bash")
            .arg(PG_CLUSTER_SCRIPT)
            .arg("start")
            .arg(&dir)
            .env("PG_DURABLE", "1")
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("cannot run {PG_CLUSTER_SCRIPT}"))?;
        ensure!(out.status.success(), "{PG_CLUSTER_SCRIPT} start failed");
        let url = String::from_utf8(out.stdout)?.trim().to_owned();
        Ok(PgCluster { dir, url })
    }

    /// A new, empty database; its URL.
    async fn database(&self, name: &str) -> anyhow::Result<String> {
        let mut conn = sqlx::PgConnection::connect(&self.url).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        Ok(self.url.replacen("/postgres?", &format!("/{name}?"), 1))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(PG_CLUSTER_SCRIPT)
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

async fn postgres_phase(b: &Bench) -> anyhow::Result<()> {
    println!(
        "
PostgreSQL: a cluster of this bench's own, commits fsynced, over a Unix socket"
    );
    let cluster = PgCluster::start(b.dir.join("pg"))?;
    let version: String = {
        let mut conn = sqlx::PgConnection::connect(&cluster.url).await?;
        sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut conn)
            .await?
    };
    println!("PostgreSQL {version}, {}", cluster.url);
    let raw = raw_postgres(&cluster.database("raw").await?).await?;
    for &connections in &b.o.connections {
        let url = cluster.database(&format!("bench_{connections}")).await?;
        let copied = Command::new(collector_bin())
            .arg("--db")
            .arg(&b.tokens_db)
            .args(["migrate-to", &url])
            .output()?;
        ensure!(
            copied.status.success(),
            "migrate-to: {}",
            String::from_utf8_lossy(&copied.stderr)
        );
        let rows_before = pg_table_rows(&url).await?;
        let size_before = pg_size(&url).await?;
        let log = b.dir.join(format!("pg-{connections}.log"));
        let collector = Collector::start(&url, &log, &[]).await?;
        let plan = Plan::timed(connections, b.o.seconds, first_report_ms());
        println!(
            "
load on PostgreSQL: {connections} connections, {}",
            collector.base
        );
        let load = generate(&collector, &b.fleet, &plan).await?;
        collector.stop().await?;
        print_load(&load);
        print_log_problems(&log)?;
        ensure!(load.stored_total > 0, "no report was stored");
        let run = LoadRun {
            stored_total: load.stored_total,
            rows_before,
            rows_after: pg_table_rows(&url).await?,
            size_before,
            size_after: pg_size(&url).await?,
            load,
        };
        let rows = rows_per_report(&run)?;
        print_limit(raw, rows, run.load.summary().rate);
        println!(
            "bytes per check on PostgreSQL (the load, failures included, indexes and free \
             space in its pages): {:.0}",
            run.bytes_added() / run.stored_total as f64
        );
    }
    Ok(())
}

/// Rows per second PostgreSQL itself takes here: the raw table's rows, 100 per transaction,
/// one prepared INSERT through sqlx (as the collector's writer runs its statements).
async fn raw_postgres(url: &str) -> anyhow::Result<f64> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    sqlx::query(
        "CREATE TABLE checks (
            id            BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            server_id     BIGINT NOT NULL,
            report_id     BYTEA  NOT NULL,
            started_at_ms BIGINT NOT NULL,
            ok            BIGINT NOT NULL,
            status        BIGINT,
            total_ms      DOUBLE PRECISION NOT NULL
        )",
    )
    .execute(&mut conn)
    .await?;
    let insert = "INSERT INTO checks (server_id, report_id, started_at_ms, ok, status, total_ms)
                  VALUES ($1, $2, $3, 1, 200, $4)";
    let started = Instant::now();
    let mut rows: u64 = 0;
    while started.elapsed() < RAW_SECONDS {
        raw_batch!(conn, insert, rows);
        rows += RAW_BATCH as u64;
    }
    let secs = started.elapsed().as_secs_f64();
    let per_s = rows as f64 / secs;
    println!(
        "raw PostgreSQL (fsync on, one prepared INSERT, {RAW_BATCH} rows per transaction): \
         {rows} rows in {secs:.1} s = {per_s:.0} rows/s"
    );
    conn.close().await?;
    Ok(per_s)
}

/// Rows of every table of the collector's schema.
async fn pg_table_rows(url: &str) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'
           AND table_name NOT IN (SELECT c.relname FROM pg_inherits i
                                  JOIN pg_class c ON c.oid = i.inhrelid)",
    )
    .fetch_all(&mut conn)
    .await?;
    let mut out = BTreeMap::new();
    for table in tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {}", quote(&table)))
            .fetch_one(&mut conn)
            .await?;
        out.insert(table, n);
    }
    conn.close().await?;
    Ok(out)
}

/// The database's size on disk, tables, indexes and TOAST.
async fn pg_size(url: &str) -> anyhow::Result<i64> {
    let mut conn = sqlx::PgConnection::connect(url).await?;
    let bytes: i64 = sqlx::query_scalar("SELECT pg_database_size(current_database())")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(bytes)
}
