//! How long the reads the product promises take on the server side for a realistic fleet: the
//! overview of 1,000 servers, `GET /api/v1/servers`, `probectl status`, and for a server with
//! 30 days of checks every 10 s its `why` answer and its page, on a database laid out as the
//! collector's compact storage (migration 0008) keeps it.
//!
//! Not a test: it prints figures to compare with the targets (100 ms for the overview, the
//! server list and `probectl status`; 50 ms for a server's `why` and page) and asserts nothing
//! about speed. It does check that the data it made is what ingest would have written (the
//! rollups add up to the raw checks they overlap) and that it reads back (recent checks, the
//! evidence of incidents), so that what it times is what an operator would get.
//!
//! ```text
//! cargo bench -p causeway-collector --bench pages
//! cargo bench -p causeway-collector --bench pages -- --db /var/tmp/cw-pages.db --runs 10
//! ```
//!
//! Options: `--servers N` (1000), `--days N` (30), `--interval-s N` (seconds between a
//! server's checks, 10: 8,640 checks a day), `--retain-raw D` (the collector's option of that
//! name, as it takes it: `14d`), `--runs N` (timed runs per item after 3 warm-up runs, 30),
//! `--db PATH` (keep the database there; an existing complete one is reused as it is, its own
//! servers, days and interval included), `--html DIR` (write the pages, the server list and
//! the `probectl status` text timed there, to look at them), `--breakdown` (break every item
//! down, not only those over their target).
//!
//! The database is made in SQL (recursive CTEs over the servers and the times, a few large
//! INSERT ... SELECTs), as the collector's ingest and retention would have left it after
//! `--days` of one report with one check per server every `--interval-s`, all servers
//! spread over the interval:
//! - for every server and the whole period: `availability_days`, `availability_hours`,
//!   `result_counts`, `resolver_hours` (two system resolvers per server), the `servers` row's
//!   `last_*` columns and `recent_checks` (the newest `RECENT_MAX`); `availability_minutes` for
//!   the last day only, as retention keeps them;
//! - incidents, 3 to 5 per server, about 0.5% of the checks failed (one open on 5% of the
//!   servers, whose last report failed: `down`), each failed check stored with the failure,
//!   the classifier's diagnosis and the evidence a probe sends (packet trace, listeners, host
//!   readings, DNS answers); the resolver and host conditions of those incidents;
//!   `resolver_changes` (a resolver's answer when it changed, the newest always kept);
//! - raw checks (`reports`, each a 16-byte UUID; `results` with their report's UUID, their
//!   `canary_id` and timings in microseconds; `failures`, a failed check's cause, failure and
//!   evidence; `canaries`) only where reads need them. Two servers are timed: `web-0042`
//!   without an open incident and `web-0020` with one. They get every check of the last
//!   `--retain-raw` (healthy checks older than that are pruned in production, so at 30 days
//!   and 14 d that is about 120,960 of their 259,200 checks; `--retain-raw 30d` keeps them
//!   all) and every failed check of the whole period (kept 90 days for their evidence), and a
//!   `host_observations` row a minute over the same `--retain-raw`. Every other server gets
//!   its last hour of checks (so that the list has its recent state), the first and last
//!   failed check of each incident (the samples an incident shows) and its newest
//!   `host_observations` row.
//!
//! Not made, so that the database is built in about 30 s (at the defaults, 2 cores; about
//! 310 MiB): the other servers' raw checks older than an hour and their failed checks inside
//! an incident (none is read by what is timed; production keeps them, so a real file is
//! larger), and their host readings but the newest. Before timing, one pass of the
//! collector's own pruning runs at the bench's "now" and prints what it deleted: 0 rows means
//! the data is laid out as retention leaves it.
//!
//! Timed: the overview (`read::fleet` and `web::overview::render`), `GET /api/v1/servers`
//! through the collector's router (`api::app`, JSON included), `probectl status` (`ctl::run`
//! against the collector serving), and for both timed servers `GET .../why` over 24 h (what
//! `probectl why` asks by default) and over 30 days, and the server page (`web::server::load`
//! and `render`, as `/servers/{name}` answers). The clock of the collector is fixed at the
//! bench's "now": a second after the newest report arrived.
//!
//! An item whose p95 misses its target is broken down: each SQL statement it ran (as sqlx logs
//! them, so the breakdown follows the code as it is), the time outside them, and for the
//! overview the decoding of the recent checks and the render without the heartbeat bars.
//!
//! Runs on a multi-threaded tokio runtime of 2 workers (the collector serves on one too);
//! `probectl status` goes to the collector serving on 127.0.0.1 (`serve::run`), over HTTP, a
//! new connection per run as a new `probectl` process makes.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use causeway_collector::api::{self, AppState};
use causeway_collector::clock::Clock;
use causeway_collector::db::{Db, Location};
use causeway_collector::ingest::Retention;
use causeway_collector::ingest::rollups::{RECENT_MAX, parse_recent};
use causeway_collector::views::{ServerList, ServerView};
use causeway_collector::web::overview::{self, OverviewQuery};
use causeway_collector::web::server::{self, Audience};
use causeway_collector::{duration, read, serve};
use causeway_schema::{
    Cause, CheckResult, Direction, Evidence, Failure, FailureKind, HostCondition, PacketTrace,
    ResolverOutcome, ServerTtl, TcpFlags, Timings, TracePacket, TtlSource, classify,
    judge_resolvers,
};
use clap::Parser;
use http_body_util::BodyExt;
use probectl::ctl::{self, Ctl};
use probectl::why;
use sqlx::{Connection, SqliteConnection};
use tower::ServiceExt;

// The evidence builders of the collector's tests: the pages timed show what the tests check.
#[path = "../tests/common/mod.rs"]
mod common;
use common::{ProbeHost, answering, nginx_listener_gone, refusing};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// The overview, the server list and `probectl status`: the whole fleet.
const FLEET_TARGET_MS: f64 = 100.0;
/// One server's `why` and page.
const SERVER_TARGET_MS: f64 = 50.0;
const WARMUP: usize = 3;
const MIN_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;
/// Per-minute availability is kept this long (`ingest::prune`).
const MINUTES_KEPT_MS: i64 = DAY_MS;
/// The causes of the failed checks, in turn.
const CAUSES: [Cause; 4] = [
    Cause::ConnectionRefused,
    Cause::Timeout,
    Cause::OomKill,
    Cause::DnsUpstreamBlock,
];
/// Every how many servers one has an open incident (5%).
const OPEN_EVERY: i64 = 20;
/// The servers timed (by id, `web-%04d`): one without an open incident, one with.
const PLAIN_SERVER: i64 = 42;
const OPEN_SERVER: i64 = OPEN_EVERY;
/// The system resolvers of every server.
const RESOLVERS: [&str; 2] = ["10.0.0.53", "10.0.0.54"];
/// How far the bench's "now" may be after the last check's start (its lag and a second): the
/// rows kept for a retention start this much later than its cut-off, so that the pruner,
/// run at "now", finds nothing to delete.
const NOW_SLACK_MS: i64 = 5_000;

struct Options {
    servers: i64,
    days: i64,
    interval_s: i64,
    retain_raw: Duration,
    runs: usize,
    db: Option<PathBuf>,
    html: Option<PathBuf>,
    breakdown: bool,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let mut o = Options {
            servers: 1000,
            days: 30,
            interval_s: 10,
            retain_raw: Retention::RAW,
            runs: 30,
            db: None,
            html: None,
            breakdown: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value =
                |name: &str| args.next().with_context(|| format!("{name} needs a value"));
            match arg.as_str() {
                // cargo bench passes --bench to a harness-less bench.
                "--bench" => {}
                "--servers" => o.servers = value(&arg)?.parse()?,
                "--days" => o.days = value(&arg)?.parse()?,
                "--interval-s" => o.interval_s = value(&arg)?.parse()?,
                "--retain-raw" => o.retain_raw = duration::parse_retention(&value(&arg)?)?,
                "--runs" => o.runs = value(&arg)?.parse()?,
                "--db" => o.db = Some(value(&arg)?.into()),
                "--html" => o.html = Some(value(&arg)?.into()),
                "--breakdown" => o.breakdown = true,
                other => bail!(
                    "unknown argument {other:?}; options: --servers N, --days N, \
                     --interval-s N, --retain-raw 14d, --runs N, --db PATH, --html DIR, --breakdown"
                ),
            }
        }
        ensure!(
            (1..=3600).contains(&o.interval_s),
            "--interval-s must be 1..=3600"
        );
        ensure!(
            (2..=9999).contains(&o.servers),
            "--servers must be 2..=9999"
        );
        ensure!(
            (1..=400).contains(&o.days),
            "--days must be 1..=400 (hourly rollups are kept 400 days)"
        );
        ensure!(
            o.retain_raw >= Duration::from_secs(3600),
            "--retain-raw must be at least 1h"
        );
        ensure!(o.runs >= 1, "--runs must be at least 1");
        Ok(o)
    }

    fn retention(&self) -> Retention {
        Retention {
            raw: self.retain_raw,
            ..Retention::default()
        }
    }
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse()?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(options))
}

/// The servers timed, by name.
struct Timed {
    plain: String,
    open: String,
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
            "database built in {:.1} s: {}",
            started.elapsed().as_secs_f64(),
            path.display()
        );
    } else {
        ensure!(
            filled == complete,
            "{} holds servers but was not filled completely: delete it",
            path.display()
        );
        let (interval, reports): (Option<i64>, i64) =
            sqlx::query_as("SELECT max(interval_s), (SELECT count(*) FROM results) FROM servers")
                .fetch_one(&db.read)
                .await?;
        println!(
            "reusing {} (not built again): {filled} servers, interval {} s, {reports} raw \
             checks; its own figures apply, not the options'",
            path.display(),
            interval.unwrap_or(0)
        );
    }

    let now_ms: i64 = sqlx::query_scalar("SELECT max(last_received_at_ms) + 1000 FROM servers")
        .fetch_one(&db.read)
        .await?;
    let timed = timed_servers(&db).await?;
    verify(&db, &timed).await?;
    print_counts(&db, &path).await?;
    prune_once(&db, o.retention(), now_ms).await?;

    let state = AppState {
        alerts: None,
        db: db.clone(),
        clock: Clock::fixed(now_ms),
        max_body: 1_048_576,
        body_timeout: api::BODY_TIMEOUT,
        ingest: Default::default(),
        retention: o.retention(),
        tokens: Default::default(),
        access: std::sync::Arc::new(causeway_collector::access::Access::new(
            causeway_collector::access::Mode::Open,
        )),
    };
    let router = api::app(state.clone());
    let serving = Serving::start(state).await?;
    let status = serving.ctl(&["status"])?;
    sanity(&db, &router, &timed, now_ms).await?;
    if let Some(dir) = &o.html {
        save_all(dir, &db, &router, &status, &timed, now_ms).await?;
        println!(
            "pages, answers and `probectl status` written to {}",
            dir.display()
        );
    }
    let printed = ctl::run(&status, now_ms).await?;
    println!(
        "\nprobectl status ({} lines; the first, and the timed servers'):",
        printed.lines().count()
    );
    for line in printed.lines().take(3) {
        println!("  {line}");
    }
    println!("  ...");
    for line in printed
        .lines()
        .filter(|l| l.starts_with(&timed.plain) || l.starts_with(&timed.open))
    {
        println!("  {line}");
    }

    println!(
        "\ntiming: {WARMUP} warm-up runs, then {} timed runs per item (tokio multi-thread, 2 \
         workers; the collector's read pool of {} connections); now = {now_ms}",
        o.runs,
        db.read.options().get_max_connections()
    );
    let runs = o.runs;
    let servers: i64 = sqlx::query_scalar("SELECT count(*) FROM servers")
        .fetch_one(&db.read)
        .await?;
    let month_ago = now_ms - 30 * DAY_MS;
    let mut items = Vec::new();
    items.push(time_overview(&db, now_ms, runs, servers).await?);
    items.push(
        time_get(
            &router,
            format!("GET /api/v1/servers ({servers} servers)"),
            "/api/v1/servers".to_owned(),
            FLEET_TARGET_MS,
            Breakdown::ServerList,
            runs,
        )
        .await?,
    );
    items.push(time_status(&status, now_ms, servers, runs).await?);
    for name in [&timed.plain, &timed.open] {
        let what = if *name == timed.open {
            ", open incident"
        } else {
            ""
        };
        for (window, since) in [("24h", None), ("30d", Some(month_ago))] {
            let query = since.map_or(String::new(), |s| format!("?since_ms={s}"));
            items.push(
                time_get(
                    &router,
                    format!("GET /api/v1/servers/{name}/why{what}, {window}"),
                    format!("/api/v1/servers/{name}/why{query}"),
                    SERVER_TARGET_MS,
                    Breakdown::Why {
                        name: name.clone(),
                        since_ms: since.unwrap_or(now_ms - DAY_MS),
                    },
                    runs,
                )
                .await?,
            );
        }
        items.push(time_server(&db, name, what, now_ms, runs).await?);
    }
    print_items(&items);

    let explain = |i: &&Item| o.breakdown || i.total.p95 >= i.target_ms;
    for item in items.iter().filter(explain) {
        match &item.breakdown {
            Breakdown::Overview => overview_breakdown(&db, now_ms, runs).await?,
            Breakdown::ServerList | Breakdown::Status => {
                list_breakdown(&db, &item.label, now_ms, runs).await?;
            }
            Breakdown::Why { name, since_ms } => {
                why_breakdown(&db, &item.label, name, *since_ms, now_ms, runs).await?;
            }
            Breakdown::ServerPage { name } => server_breakdown(&db, name, now_ms, runs).await?,
        }
    }
    serving.stop().await?;
    db.close().await;
    Ok(())
}

/// The two servers with the most raw checks: the one with an open incident and the other.
async fn timed_servers(db: &Db) -> anyhow::Result<Timed> {
    // EXISTS as an integer: the database pools are sqlx's Any, which reads no bool from it.
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT s.name, EXISTS (SELECT 1 FROM incidents i
                                WHERE i.server_id = s.id AND i.ended_at_ms IS NULL)
         FROM (SELECT server_id, count(*) AS n FROM results GROUP BY server_id
               ORDER BY n DESC LIMIT 2) r JOIN servers s ON s.id = r.server_id",
    )
    .fetch_all(&db.read)
    .await?;
    let open = rows.iter().find(|(_, open)| *open != 0);
    let plain = rows.iter().find(|(_, open)| *open == 0);
    match (plain, open) {
        (Some(plain), Some(open)) => Ok(Timed {
            plain: plain.0.clone(),
            open: open.0.clone(),
        }),
        _ => bail!("the database lacks its two timed servers (one with an open incident)"),
    }
}

/// One pass of the collector's pruning at `now_ms`, as the collector runs it: what it deletes
/// was made in vain (or by an older bench).
async fn prune_once(db: &Db, retention: Retention, now_ms: i64) -> anyhow::Result<()> {
    let t = Instant::now();
    let mut rows = 0;
    loop {
        let pruned = db.reports.prune(retention, now_ms).await?;
        rows += pruned.rows;
        if pruned.done {
            break;
        }
    }
    println!(
        "pruning at now (raw {} d, evidence {} d, hourly {} d, minutes 1 d): {rows} rows \
         deleted in {:.1} s{}",
        retention.raw.as_secs() / 86_400,
        retention.evidence.as_secs() / 86_400,
        retention.hourly.as_secs() / 86_400,
        t.elapsed().as_secs_f64(),
        if rows == 0 {
            " (the data is as retention keeps it)"
        } else {
            ""
        }
    );
    Ok(())
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

/// What an item over its target is broken down by.
enum Breakdown {
    Overview,
    ServerList,
    Status,
    Why { name: String, since_ms: i64 },
    ServerPage { name: String },
}

/// One run: the query, and the render when the item has one of its own.
struct Sample {
    query: Duration,
    render: Option<Duration>,
    bytes: usize,
}

struct Item {
    label: String,
    target_ms: f64,
    total: Stats,
    query: Option<Stats>,
    render: Option<Stats>,
    bytes: usize,
    breakdown: Breakdown,
}

/// Runs `once` [`WARMUP`] times, then `runs` times timed.
async fn measure(
    label: String,
    target_ms: f64,
    breakdown: Breakdown,
    runs: usize,
    mut once: impl AsyncFnMut() -> anyhow::Result<Sample>,
) -> anyhow::Result<Item> {
    let mut samples = Vec::with_capacity(runs);
    for run in 0..WARMUP + runs {
        let sample = once().await?;
        if run >= WARMUP {
            samples.push(sample);
        }
    }
    let total: Vec<Duration> = samples
        .iter()
        .map(|s| s.query + s.render.unwrap_or_default())
        .collect();
    let split = samples.iter().all(|s| s.render.is_some());
    let query: Vec<Duration> = samples.iter().map(|s| s.query).collect();
    let render: Vec<Duration> = samples.iter().filter_map(|s| s.render).collect();
    let item = Item {
        total: Stats::of(&total),
        query: split.then(|| Stats::of(&query)),
        render: split.then(|| Stats::of(&render)),
        bytes: samples.last().map_or(0, |s| s.bytes),
        label,
        target_ms,
        breakdown,
    };
    println!(
        "  {:<58} median {:>6.1} ms  p95 {:>6.1} ms",
        item.label, item.total.median, item.total.p95
    );
    Ok(item)
}

async fn time_overview(db: &Db, now_ms: i64, runs: usize, servers: i64) -> anyhow::Result<Item> {
    let query = OverviewQuery::default();
    measure(
        format!("overview / ({servers} servers)"),
        FLEET_TARGET_MS,
        Breakdown::Overview,
        runs,
        async || {
            let t0 = Instant::now();
            let fleet = read::fleet(&db.read, now_ms).await?;
            let t1 = Instant::now();
            let html = overview::render(&fleet, &query, now_ms);
            let t2 = Instant::now();
            let bytes = html.len();
            std::hint::black_box(html);
            Ok(Sample {
                query: t1 - t0,
                render: Some(t2 - t1),
                bytes,
            })
        },
    )
    .await
}

/// `uri` through the collector's router, the answer's body read to its end.
async fn get(router: &Router, uri: &str) -> anyhow::Result<Vec<u8>> {
    let response = router
        .clone()
        .oneshot(Request::get(uri).body(Body::empty())?)
        .await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    ensure!(
        status == StatusCode::OK,
        "GET {uri}: {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok(body.to_vec())
}

async fn time_get(
    router: &Router,
    label: String,
    uri: String,
    target_ms: f64,
    breakdown: Breakdown,
    runs: usize,
) -> anyhow::Result<Item> {
    measure(label, target_ms, breakdown, runs, async || {
        let t0 = Instant::now();
        let body = get(router, &uri).await?;
        let elapsed = t0.elapsed();
        Ok(Sample {
            query: elapsed,
            render: None,
            bytes: body.len(),
        })
    })
    .await
}

async fn time_status(status: &Ctl, now_ms: i64, servers: i64, runs: usize) -> anyhow::Result<Item> {
    measure(
        format!("probectl status ({servers} servers, over HTTP)"),
        FLEET_TARGET_MS,
        Breakdown::Status,
        runs,
        async || {
            let t0 = Instant::now();
            let text = ctl::run(status, now_ms).await?;
            let elapsed = t0.elapsed();
            Ok(Sample {
                query: elapsed,
                render: None,
                bytes: text.len(),
            })
        },
    )
    .await
}

async fn time_server(
    db: &Db,
    name: &str,
    what: &str,
    now_ms: i64,
    runs: usize,
) -> anyhow::Result<Item> {
    measure(
        format!("server page /servers/{name}{what}"),
        SERVER_TARGET_MS,
        Breakdown::ServerPage {
            name: name.to_owned(),
        },
        runs,
        async || {
            let t0 = Instant::now();
            let page = server::load(&db.read, name, now_ms, &Default::default()).await?;
            let t1 = Instant::now();
            let html = server::render(&page, Audience::Operator);
            let t2 = Instant::now();
            let bytes = html.len();
            std::hint::black_box(html);
            Ok(Sample {
                query: t1 - t0,
                render: Some(t2 - t1),
                bytes,
            })
        },
    )
    .await
}

fn print_items(items: &[Item]) {
    let w = items.iter().map(|i| i.label.len()).max().unwrap_or(0);
    println!(
        "\n{:<w$} {:>9} {:>9} {:>9} {:>9}   {:>9} {:>9} {:>10}   target (p95)",
        "item (query + render)", "min", "median", "p95", "max", "query", "render", "size"
    );
    println!("{:<w$} {:>41}   {:>9} {:>9}", "", "", "median", "median");
    let ms = |s: &Option<Stats>| {
        s.as_ref()
            .map_or("-".to_owned(), |s| format!("{:.1} ms", s.median))
    };
    for i in items {
        println!(
            "{:<w$} {:>6.1} ms {:>6.1} ms {:>6.1} ms {:>6.1} ms   {:>9} {:>9} {:>6.1} KiB   {}",
            i.label,
            i.total.min,
            i.total.median,
            i.total.p95,
            i.total.max,
            ms(&i.query),
            ms(&i.render),
            i.bytes as f64 / 1024.0,
            verdict(&i.total, i.target_ms)
        );
    }
    let missed: Vec<&Item> = items
        .iter()
        .filter(|i| i.total.p95 >= i.target_ms)
        .collect();
    if missed.is_empty() {
        println!("\nevery item is under its target (p95).");
    }
    for i in missed {
        let part = match (&i.query, &i.render) {
            (Some(q), Some(r)) if q.median >= r.median => {
                format!("; most of it is the query ({:.1} ms median)", q.median)
            }
            (Some(_), Some(r)) => format!("; most of it is the render ({:.1} ms median)", r.median),
            _ => String::new(),
        };
        println!(
            "\n{} MISSES its target of {:.0} ms: median {:.1} ms, p95 {:.1} ms{part}",
            i.label, i.target_ms, i.total.median, i.total.p95
        );
    }
}

fn verdict(s: &Stats, target_ms: f64) -> String {
    if s.p95 < target_ms {
        format!("< {target_ms:.0} ms: ok")
    } else if s.median < target_ms {
        format!("< {target_ms:.0} ms: p95 over")
    } else {
        format!("< {target_ms:.0} ms: MISSED")
    }
}

/// The collector serving on a free port of 127.0.0.1, as `probectl` finds it.
struct Serving {
    base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), serve::ServeError>>,
}

impl Serving {
    async fn start(state: AppState) -> anyhow::Result<Serving> {
        let listener = serve::bind("127.0.0.1:0".parse()?).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve::run(
            listener,
            state,
            serve::Limits::default(),
            async {
                let _ = stopped.await;
            },
        ));
        Ok(Serving {
            base: format!("http://{addr}"),
            stop,
            server,
        })
    }

    /// `probectl --collector <this one> args...`.
    fn ctl(&self, args: &[&str]) -> anyhow::Result<Ctl> {
        let all = ["probectl", "--collector", &self.base]
            .into_iter()
            .chain(args.iter().copied());
        Ok(Ctl::try_parse_from(all)?)
    }

    async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.server.await??;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Where the time goes, for an item that misses its target

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
async fn statements<T>(
    runs: usize,
    mut load: impl AsyncFnMut() -> anyhow::Result<T>,
) -> anyhow::Result<(Vec<Statement>, f64)> {
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

/// The statements, the same text once with how many times it ran (in order of first run).
fn print_statements(statements: &[Statement], total_ms: f64) {
    let mut grouped: Vec<(&str, usize, f64, u64)> = Vec::new();
    for s in statements {
        match grouped.iter_mut().find(|g| g.0 == s.sql) {
            Some(g) => {
                g.1 += 1;
                g.2 += s.secs;
                g.3 += s.rows;
            }
            None => grouped.push((&s.sql, 1, s.secs, s.rows)),
        }
    }
    let mut sql_ms = 0.0;
    for (sql, times, secs, rows) in grouped {
        let ms = secs * 1000.0;
        sql_ms += ms;
        let mut sql = sql.to_owned();
        if sql.len() > 100 {
            let cut = (0..=97)
                .rev()
                .find(|&i| sql.is_char_boundary(i))
                .unwrap_or(0);
            sql.truncate(cut);
            sql.push_str("...");
        }
        let times = if times > 1 {
            format!("x{times}")
        } else {
            String::new()
        };
        println!("    {ms:>7.1} ms {times:>5} {rows:>7} rows  {sql}");
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
        statements(runs, async || Ok(read::fleet(&db.read, now_ms).await?)).await?;
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

/// Where the server list's time goes (for the API and `probectl status`): the statements of
/// `read::servers`, the JSON, and the table `probectl` prints.
async fn list_breakdown(db: &Db, label: &str, now_ms: i64, runs: usize) -> anyhow::Result<()> {
    println!("\n{label}: where the time goes (medians of {runs} runs after {WARMUP})");
    let (list, total_ms) =
        statements(runs, async || Ok(read::servers(&db.read, now_ms).await?)).await?;
    println!("  query (read::servers), statement by statement:");
    print_statements(&list, total_ms);
    let servers = ServerList {
        now_ms,
        servers: read::servers(&db.read, now_ms).await?,
    };
    let (mut encode, mut decode, mut render) = (vec![], vec![], vec![]);
    let mut bytes = 0;
    for run in 0..WARMUP + runs {
        let t0 = Instant::now();
        let json = serde_json::to_vec(&servers)?;
        let t1 = Instant::now();
        let back: ServerList =
            serde_json::from_value(serde_json::from_slice::<serde_json::Value>(&json)?)?;
        let t2 = Instant::now();
        let text = why::render_status(&back);
        let t3 = Instant::now();
        if run >= WARMUP {
            encode.push(t1 - t0);
            decode.push(t2 - t1);
            render.push(t3 - t2);
        }
        bytes = json.len();
        std::hint::black_box(text);
    }
    println!(
        "  JSON of the answer ({} KiB): {:.1} ms to encode; probectl: {:.1} ms to decode, \
         {:.1} ms to render the table (why::render_status)",
        bytes / 1024,
        Stats::of(&encode).median,
        Stats::of(&decode).median,
        Stats::of(&render).median
    );
    Ok(())
}

/// Where a `why` answer's time goes: its statements.
async fn why_breakdown(
    db: &Db,
    label: &str,
    name: &str,
    since_ms: i64,
    now_ms: i64,
    runs: usize,
) -> anyhow::Result<()> {
    println!("\n{label}: where the time goes (medians of {runs} runs after {WARMUP})");
    let (list, total_ms) = statements(runs, async || {
        Ok(read::why(&db.read, name, (since_ms, now_ms), &Default::default()).await?)
    })
    .await?;
    println!("  query (read::why), statement by statement:");
    print_statements(&list, total_ms);
    Ok(())
}

/// Where a server page's time goes: its statements, and the render.
async fn server_breakdown(db: &Db, name: &str, now_ms: i64, runs: usize) -> anyhow::Result<()> {
    println!("\nserver page ({name}): where the time goes (medians of {runs} runs after {WARMUP})");
    let (list, total_ms) = statements(runs, async || {
        Ok(server::load(&db.read, name, now_ms, &Default::default()).await?)
    })
    .await?;
    println!("  query (web::server::load), statement by statement:");
    print_statements(&list, total_ms);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// What the reads show, and what the database holds

async fn save_all(
    dir: &Path,
    db: &Db,
    router: &Router,
    status: &Ctl,
    timed: &Timed,
    now_ms: i64,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let fleet = read::fleet(&db.read, now_ms).await?;
    let html = overview::render(&fleet, &OverviewQuery::default(), now_ms);
    std::fs::write(dir.join("overview.html"), html)?;
    std::fs::write(
        dir.join("servers.json"),
        get(router, "/api/v1/servers").await?,
    )?;
    std::fs::write(dir.join("status.txt"), ctl::run(status, now_ms).await?)?;
    for name in [&timed.plain, &timed.open] {
        let page = server::load(&db.read, name, now_ms, &Default::default()).await?;
        let html = server::render(&page, Audience::Operator);
        std::fs::write(dir.join(format!("{name}.html")), html)?;
        let why = get(router, &format!("/api/v1/servers/{name}/why")).await?;
        std::fs::write(dir.join(format!("{name}.why.json")), why)?;
    }
    Ok(())
}

/// What the items will show is what was meant: every server's recent checks, the open
/// incidents of the list with evidence that decodes, both timed servers' pages with their
/// 100 checks and incidents with evidence.
async fn sanity(db: &Db, router: &Router, timed: &Timed, now_ms: i64) -> anyhow::Result<()> {
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
    let list: ServerList = serde_json::from_slice(&get(router, "/api/v1/servers").await?)?;
    let open: Vec<_> = list
        .servers
        .iter()
        .filter_map(|s| s.open_incident.as_ref())
        .collect();
    ensure!(
        !open.is_empty(),
        "no server of the list has an open incident"
    );
    // The list carries open incidents without their sample checks; a server's own view has
    // them, with their evidence.
    ensure!(
        open.iter().all(|i| i.samples.is_empty()),
        "the list carries sample checks it should leave to each server's view"
    );
    let one: ServerView =
        serde_json::from_slice(&get(router, &format!("/api/v1/servers/{}", timed.open)).await?)?;
    ensure!(
        one.open_incident.as_ref().is_some_and(
            |i| !i.samples.is_empty() && i.samples.iter().all(|s| s.evidence.is_some())
        ),
        "{}'s open incident lacks its samples or their evidence",
        timed.open
    );
    for name in [&timed.plain, &timed.open] {
        let page = server::load(&db.read, name, now_ms, &Default::default()).await?;
        ensure!(
            page.results.len() == 100,
            "{name}'s page lacks its 100 checks"
        );
        ensure!(
            !page.why.incidents.is_empty(),
            "{name}'s page shows no incident over 30 days"
        );
        ensure!(
            page.why
                .incidents
                .iter()
                .all(|i| i.samples.iter().all(|s| s.evidence.is_some())),
            "{name}: an incident's evidence does not decode"
        );
        let has_open = page.why.server.open_incident.is_some();
        ensure!(
            has_open == (*name == timed.open),
            "{name}: open incident {has_open}, expected the other way"
        );
    }
    Ok(())
}

/// The rollups are what ingest would have counted: every server's days, hours and causes add
/// up to its checks, and where raw checks are kept (the last hour of every server, the raw
/// retention of the timed ones) each minute or hour holds exactly the checks stored in it.
async fn verify(db: &Db, timed: &Timed) -> anyhow::Result<()> {
    let t = Instant::now();
    let per_server: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT s.id,
                (SELECT sum(checks_total) FROM availability_days WHERE server_id = s.id),
                (SELECT sum(checks_total) FROM availability_hours WHERE server_id = s.id),
                (SELECT sum(n) FROM result_counts WHERE server_id = s.id)
         FROM servers s",
    )
    .fetch_all(&db.read)
    .await?;
    let uneven = per_server
        .iter()
        .filter(|(_, d, h, c)| d != h || d != c)
        .count();
    ensure!(
        uneven == 0,
        "{uneven} servers' days, hours and result counts disagree"
    );
    let failed_days: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT sum(checks_total - checks_ok) FROM availability_days),
                (SELECT sum(n) FROM result_counts WHERE cause <> 'ok')",
    )
    .fetch_one(&db.read)
    .await?;
    ensure!(
        failed_days.0 == failed_days.1,
        "failed checks: {} by the days, {} by cause",
        failed_days.0,
        failed_days.1
    );
    // Every server's minutes inside its last hour of raw checks.
    let last: i64 = sqlx::query_scalar("SELECT max(started_at_ms) FROM results")
        .fetch_one(&db.read)
        .await?;
    let from = last - 55 * MIN_MS;
    let minutes = rollup_mismatches(
        db,
        "availability_minutes",
        "minute_ms",
        MIN_MS,
        None,
        from,
        last,
    )
    .await?;
    // The timed servers' hours inside their raw retention.
    let mut hours = (0, 0);
    for name in [&timed.plain, &timed.open] {
        let (first_healthy,): (i64,) = sqlx::query_as(
            "SELECT min(r.started_at_ms) FROM results r JOIN servers s ON s.id = r.server_id
             WHERE s.name = ?1 AND r.ok",
        )
        .bind(name)
        .fetch_one(&db.read)
        .await?;
        let h = rollup_mismatches(
            db,
            "availability_hours",
            "hour_ms",
            HOUR_MS,
            Some(name),
            first_healthy + HOUR_MS,
            last,
        )
        .await?;
        hours = (hours.0 + h.0, hours.1 + h.1);
    }
    ensure!(
        minutes.1 == 0 && hours.1 == 0,
        "rollups disagree with the raw checks: {} of {} minutes, {} of {} hours",
        minutes.1,
        minutes.0,
        hours.1,
        hours.0
    );
    println!(
        "verified in {:.1} s: every server's days, hours and result counts add up; {} minutes \
         (every server's last hour) and {} hours (the timed servers' raw retention) match their \
         raw checks",
        t.elapsed().as_secs_f64(),
        minutes.0,
        hours.0
    );
    Ok(())
}

/// `(rows compared, rows that disagree)`: rollup rows of `table` wholly inside `from..to`
/// (of `server`, or every server) against the checks stored in them (a check starts 2 ms
/// after its report, in the same minute: reports start on whole seconds).
async fn rollup_mismatches(
    db: &Db,
    table: &str,
    column: &str,
    unit: i64,
    server: Option<&str>,
    from: i64,
    to: i64,
) -> anyhow::Result<(i64, i64)> {
    let filter = if server.is_some() {
        "AND m.server_id = (SELECT id FROM servers WHERE name = ?4)"
    } else {
        "AND ?4 IS NULL"
    };
    let raw = |what: &str| {
        format!(
            "(SELECT {what} FROM results r WHERE r.server_id = m.server_id
              AND r.started_at_ms >= m.{column} AND r.started_at_ms < m.{column} + ?3)"
        )
    };
    let (rows, bad): (i64, Option<i64>) = sqlx::query_as(&format!(
        "SELECT count(*), sum(m.checks_total <> {} OR m.checks_ok <> {})
         FROM {table} m WHERE m.{column} >= ?1 AND m.{column} + ?3 <= ?2 {filter}",
        raw("count(*)"),
        raw("coalesce(sum(ok), 0)")
    ))
    .bind(from)
    .bind(to)
    .bind(unit)
    .bind(server)
    .fetch_one(&db.read)
    .await?;
    Ok((rows, bad.unwrap_or(0)))
}

async fn print_counts(db: &Db, path: &Path) -> anyhow::Result<()> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         ORDER BY name",
    )
    .fetch_all(&db.read)
    .await?;
    // Bytes per table and its indexes, where SQLite was built with the dbstat table.
    let sizes: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(
        "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d
         LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1",
    )
    .fetch_all(&db.read)
    .await
    .map(|rows| rows.into_iter().collect())
    .unwrap_or_default();
    println!(
        "rows per table{}:",
        if sizes.is_empty() {
            ""
        } else {
            " (and MiB, indexes included)"
        }
    );
    for table in tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\""))
            .fetch_one(&db.read)
            .await?;
        match sizes.get(&table) {
            Some(bytes) => println!(
                "  {table:<30} {n:>12} {:>9.1} MiB",
                *bytes as f64 / (1u64 << 20) as f64
            ),
            None => println!("  {table:<30} {n:>12}"),
        }
    }
    println!("of which:");
    for (what, sql) in [
        (
            "servers down (last report failed)",
            "SELECT count(*) FROM servers WHERE last_checks_ok < last_checks_total",
        ),
        (
            "checks counted (result_counts)",
            "SELECT sum(n) FROM result_counts",
        ),
        (
            "  failed",
            "SELECT sum(n) FROM result_counts WHERE cause <> 'ok'",
        ),
        (
            "failed checks stored (failures)",
            "SELECT count(*) FROM failures",
        ),
        (
            "open incidents",
            "SELECT count(*) FROM incidents WHERE ended_at_ms IS NULL",
        ),
    ] {
        let n: Option<i64> = sqlx::query_scalar(sql).fetch_one(&db.read).await?;
        println!("  {what:<34} {:>10}", n.unwrap_or(0));
    }
    let causes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT cause, sum(n) FROM result_counts WHERE cause <> 'ok' GROUP BY cause ORDER BY cause",
    )
    .fetch_all(&db.read)
    .await?;
    let causes: Vec<String> = causes.iter().map(|(c, n)| format!("{c} {n}")).collect();
    println!("  failed by cause: {}", causes.join(", "));
    let raw: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT s.name, r.n, r.failed, r.first, r.last FROM
             (SELECT server_id, count(*) AS n, sum(NOT ok) AS failed,
                     min(CASE WHEN ok THEN started_at_ms END) AS first,
                     max(started_at_ms) AS last
              FROM results GROUP BY server_id ORDER BY n DESC LIMIT 3) r
         JOIN servers s ON s.id = r.server_id ORDER BY r.n DESC",
    )
    .fetch_all(&db.read)
    .await?;
    for (name, n, failed, first, last) in raw {
        let span = last - first;
        let span = if span >= DAY_MS {
            format!("{:.1} days", span as f64 / DAY_MS as f64)
        } else {
            format!("{:.1} hours", span as f64 / HOUR_MS as f64)
        };
        println!("  raw checks of {name}: {n}, every one of the last {span} and {failed} failed");
    }
    let interval: Option<i64> = sqlx::query_scalar("SELECT max(interval_s) FROM servers")
        .fetch_one(&db.read)
        .await?;
    println!("  interval: {} s", interval.unwrap_or(0));
    let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let wal = PathBuf::from(format!("{}-wal", path.display()));
    println!(
        "database: {:.1} MiB ({} bytes; WAL {} bytes)",
        size(path) as f64 / (1u64 << 20) as f64,
        size(path),
        size(&wal)
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Building the database

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

/// One planned incident: the checks `first..=last` (by index) of a server fail with `cause`.
struct Planned {
    server: i64,
    first: i64,
    last: i64,
    cause: Cause,
    open: bool,
}

/// The times of the checks: server `s`'s report `i` (of `n`) starts at `t(s, i)`, the servers
/// spread over the interval as probes started at different times are. The SQL below has the
/// same formula (`srv.base`).
#[derive(Clone, Copy)]
struct Times {
    end_ms: i64,
    n: i64,
    interval_ms: i64,
}

impl Times {
    fn offset(&self, server: i64) -> i64 {
        (server * 7919 % (self.interval_ms / 1000)) * 1000
    }

    fn t(&self, server: i64, i: i64) -> i64 {
        self.end_ms - (self.n - i) * self.interval_ms + self.offset(server)
    }
}

/// What the bench makes, from the options.
struct Layout {
    clock: Times,
    servers: i64,
    plain: i64,
    open: i64,
    /// The first check of the timed servers' raw retention, and of every server's last hour.
    raw_from: i64,
    hour_from: i64,
    /// Where availability_minutes start.
    minutes_from: i64,
    /// Resolver changes older than this are pruned (but a resolver's newest).
    raw_cutoff: i64,
}

impl Layout {
    fn new(o: &Options, end_ms: i64) -> anyhow::Result<Layout> {
        let interval_ms = o.interval_s * 1000;
        let n = o.days * DAY_MS / interval_ms;
        ensure!(
            n >= 200,
            "{n} checks per server are too few: more days or a shorter interval"
        );
        let raw_ms = i64::try_from(o.retain_raw.as_millis())?;
        let clock = Times {
            end_ms,
            n,
            interval_ms,
        };
        // Only the checks that start at least NOW_SLACK_MS after the cut-off: "now" is at most
        // that far after the end.
        let raw_checks = ((raw_ms - NOW_SLACK_MS) / interval_ms).clamp(1, n);
        let hour_checks = (HOUR_MS / interval_ms).clamp(1, n);
        let minute_floor = end_ms + NOW_SLACK_MS - MINUTES_KEPT_MS;
        let (open, plain) = if o.servers >= PLAIN_SERVER {
            (OPEN_SERVER, PLAIN_SERVER)
        } else {
            (o.servers.min(OPEN_SERVER), 1)
        };
        Ok(Layout {
            clock,
            servers: o.servers,
            plain,
            open,
            raw_from: n - raw_checks,
            hour_from: n - hour_checks,
            minutes_from: minute_floor - minute_floor.rem_euclid(MIN_MS) + MIN_MS,
            raw_cutoff: end_ms + NOW_SLACK_MS - raw_ms,
        })
    }

    fn has_open(&self, server: i64) -> bool {
        server % OPEN_EVERY == 0 || server == self.open
    }
}

fn plan(layout: &Layout) -> Vec<Planned> {
    let n = layout.clock.n;
    let mut rng = Rng(0x00C0_FFEE);
    let mut out = Vec::new();
    for server in 1..=layout.servers {
        let incidents = rng.range(3, 5);
        // About 0.5% of the checks fail: n / 200 per server, in `incidents` runs.
        let mean = (n / 200 / incidents).max(1);
        let segment = n / incidents;
        for k in 0..incidents {
            let len = rng
                .range((mean / 2).max(1), (mean * 3 / 2).max(1))
                .min(segment - 2);
            let open = layout.has_open(server) && k == incidents - 1;
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

/// Prints how long a step of the build took.
struct Steps(Instant);

impl Steps {
    fn done(&mut self, what: &str) {
        println!("  {what}: {:.1} s", self.0.elapsed().as_secs_f64());
        self.0 = Instant::now();
    }
}

async fn fill(db: &Db, o: &Options) -> anyhow::Result<()> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let layout = Layout::new(o, now.as_millis() as i64 / 1000 * 1000)?;
    let n = layout.clock.n;
    println!(
        "building: {} servers x {n} checks ({} s apart, {} days): rollups for all; raw checks \
         for web-{:04} and web-{:04} over {:.1} days ({} each), for the others over the last \
         hour",
        o.servers,
        o.interval_s,
        o.days,
        layout.plain,
        layout.open,
        (n - layout.raw_from) as f64 * o.interval_s as f64 / 86_400.0,
        n - layout.raw_from
    );
    // One connection of its own for the whole build, with pragmas for a bulk load (the data
    // is made again if the machine fails meanwhile).
    let Location::Sqlite(path) = &db.location else {
        anyhow::bail!("the pages bench builds a SQLite database");
    };
    let mut conn = SqliteConnection::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(std::time::Duration::from_secs(5)),
    )
    .await?;
    let conn = &mut conn;
    exec(conn, "PRAGMA synchronous = OFF").await?;
    exec(conn, "PRAGMA cache_size = -1048576").await?;
    exec(conn, "PRAGMA temp_store = MEMORY").await?;
    let mut steps = Steps(Instant::now());

    let planned = plan(&layout);
    exec(conn, "BEGIN IMMEDIATE").await?;
    servers(conn, &layout, &planned).await?;
    exec(conn, "COMMIT").await?;
    steps.done("servers, tokens, canaries, the plan of incidents");

    exec(conn, "BEGIN IMMEDIATE").await?;
    failed_checks(conn, &layout).await?;
    steps.done("the failed checks of every server, counted");
    availability(conn, &layout).await?;
    exec(conn, "COMMIT").await?;
    steps.done("availability_minutes, _hours, _days, result_counts");

    exec(conn, "BEGIN IMMEDIATE").await?;
    raw_checks(conn, &layout).await?;
    steps.done("raw checks: reports, results");
    failure_evidence(conn).await?;
    steps.done("failed checks' failure, diagnosis and evidence");
    exec(conn, "COMMIT").await?;

    exec(conn, "BEGIN IMMEDIATE").await?;
    resolvers(conn, &layout).await?;
    steps.done("resolvers, resolver_hours, resolver_changes");
    incidents(conn, &layout, &planned).await?;
    steps.done("incidents, resolver and host conditions");
    host_observations(conn, &layout).await?;
    servers_last(conn, &layout).await?;
    recent_checks(conn).await?;
    exec(conn, "COMMIT").await?;
    steps.done("host_observations, servers' last report and recent checks");

    for table in [
        "srv",
        "plan",
        "failed",
        "failed_minutes",
        "failed_hours",
        "failed_days",
        "raw",
        "resolver_kinds",
    ] {
        exec(conn, &format!("DROP TABLE temp.{table}")).await?;
    }
    exec(conn, "PRAGMA wal_checkpoint(TRUNCATE)").await?;
    steps.done("checkpoint");
    Ok(())
}

/// The servers (with their tokens and canary), and the temporary tables the other steps read:
/// `srv` (each server's first check time `base`, its canary's address, whether it is timed)
/// and `plan` (the incidents).
async fn servers(
    conn: &mut SqliteConnection,
    layout: &Layout,
    planned: &[Planned],
) -> anyhow::Result<()> {
    let c = layout.clock;
    let start = c.end_ms - c.n * c.interval_ms;
    sqlx::query(
        "INSERT INTO servers (id, name, created_at_ms)
         WITH RECURSIVE s(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM s WHERE id < ?1)
         SELECT id, printf('web-%04d', id), ?2 FROM s",
    )
    .bind(layout.servers)
    .bind(start - HOUR_MS)
    .execute(&mut *conn)
    .await?;
    exec(
        conn,
        "INSERT INTO tokens (server_id, sha256, created_at_ms)
         SELECT id, lower(hex(randomblob(32))), created_at_ms FROM servers",
    )
    .await?;
    // A server's canary has its id.
    exec(
        conn,
        "INSERT INTO canaries (id, server_id, name, url)
         SELECT id, id, 'site', 'https://' || name || '.example.net/healthz' FROM servers",
    )
    .await?;
    sqlx::query(
        "CREATE TEMP TABLE srv AS
         SELECT id, name, ?1 + (id * 7919 % ?2) * 1000 AS base,
                '10.' || (id / 256 % 256) || '.' || (id % 256) || '.10' AS address,
                id IN (?3, ?4) AS timed
         FROM servers ORDER BY id",
    )
    .bind(start)
    .bind(c.interval_ms / 1000)
    .bind(layout.plain)
    .bind(layout.open)
    .execute(&mut *conn)
    .await?;
    exec(
        conn,
        "CREATE TEMP TABLE plan (server_id INTEGER, first_i INTEGER, last_i INTEGER,
                                 cause TEXT, open INTEGER)",
    )
    .await?;
    for rows in planned.chunks(100) {
        let values = vec!["(?, ?, ?, ?, ?)"; rows.len()].join(", ");
        let sql = format!("INSERT INTO plan VALUES {values}");
        let mut insert = sqlx::query(&sql);
        for p in rows {
            insert = insert
                .bind(p.server)
                .bind(p.first)
                .bind(p.last)
                .bind(p.cause.id())
                .bind(p.open);
        }
        insert.execute(&mut *conn).await?;
    }
    exec(
        conn,
        "CREATE INDEX temp.plan_by_server ON plan (server_id, first_i)",
    )
    .await?;
    Ok(())
}

/// Every failed check of every server (`failed`: server, index, time, cause; about 0.5% of
/// all checks), and their counts per server and minute, hour and day.
async fn failed_checks(conn: &mut SqliteConnection, layout: &Layout) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE TEMP TABLE failed AS
         WITH RECURSIVE f(server_id, i, last_i, cause) AS (
             SELECT server_id, first_i, last_i, cause FROM plan
             UNION ALL SELECT server_id, i + 1, last_i, cause FROM f WHERE i < last_i)
         SELECT f.server_id, f.i, s.base + f.i * ?1 AS t, f.cause
         FROM f JOIN srv s ON s.id = f.server_id",
    )
    .bind(layout.clock.interval_ms)
    .execute(&mut *conn)
    .await?;
    for (table, unit) in [
        ("failed_minutes", MIN_MS),
        ("failed_hours", HOUR_MS),
        ("failed_days", DAY_MS),
    ] {
        exec(
            conn,
            &format!(
                "CREATE TEMP TABLE {table} AS
                 SELECT server_id, t - t % {unit} AS b, count(*) AS n,
                        sum(cause = 'dns_upstream_block') AS dns
                 FROM failed GROUP BY 1, 2"
            ),
        )
        .await?;
        exec(
            conn,
            &format!("CREATE UNIQUE INDEX temp.{table}_key ON {table} (server_id, b)"),
        )
        .await?;
    }
    Ok(())
}

/// The rollups of every server: per minute (the last day), hour and day, and per cause.
/// A bucket's checks are counted from the times' formula (no row per check): the checks of
/// server `s` before time `x` are `clamp(ceil((x - base) / interval), 0, n)`.
async fn availability(conn: &mut SqliteConnection, layout: &Layout) -> anyhow::Result<()> {
    let c = layout.clock;
    let (n, iv) = (c.n, c.interval_ms);
    let start = c.end_ms - n * iv;
    let before = |x: &str| format!("min({n}, max(0, ({x} - s.base + {iv} - 1) / {iv}))");
    for (table, column, unit, from, failed) in [
        (
            "availability_minutes",
            "minute_ms",
            MIN_MS,
            layout.minutes_from,
            "failed_minutes",
        ),
        (
            "availability_hours",
            "hour_ms",
            HOUR_MS,
            start - start.rem_euclid(HOUR_MS),
            "failed_hours",
        ),
        (
            "availability_days",
            "day_ms",
            DAY_MS,
            start - start.rem_euclid(DAY_MS),
            "failed_days",
        ),
    ] {
        let (after, at) = (before(&format!("b.b + {unit}")), before("b.b"));
        // Server by server, buckets in order: rows arrive in primary-key order.
        exec(
            conn,
            &format!(
                "INSERT INTO {table} (server_id, {column}, checks_total, checks_ok)
                 WITH RECURSIVE b(b) AS (
                     SELECT {from} UNION ALL SELECT b + {unit} FROM b WHERE b + {unit} < {end}),
                 buckets AS MATERIALIZED (SELECT b FROM b)
                 SELECT server_id, b, total,
                        total - coalesce((SELECT f.n FROM {failed} f
                                          WHERE f.server_id = x.server_id AND f.b = x.b), 0)
                 FROM (SELECT s.id AS server_id, b.b AS b, {after} - {at} AS total
                       FROM srv s CROSS JOIN buckets b) x
                 WHERE total > 0",
                end = c.end_ms,
            ),
        )
        .await?;
    }
    sqlx::query(
        "INSERT INTO result_counts (server_id, cause, n)
         SELECT id, 'ok', ?1 - coalesce((SELECT sum(n) FROM failed_days f
                                         WHERE f.server_id = srv.id), 0)
         FROM srv",
    )
    .bind(n)
    .execute(&mut *conn)
    .await?;
    exec(
        conn,
        "INSERT INTO result_counts (server_id, cause, n)
         SELECT server_id, cause, count(*) FROM failed GROUP BY 1, 2",
    )
    .await?;
    Ok(())
}

/// The UUID v4 text of 32 random hex digits in `h`.
const UUID_OF_HEX: &str = "substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3)
    || '-' || substr('89ab', 1 + unicode(substr(h, 17, 1)) % 4, 1) || substr(h, 18, 3) || '-'
    || substr(h, 21, 12)";

/// The raw checks kept (see the top): the temporary table `raw`, one row per report in order
/// of time, whose `rid` is the result's id; then `reports` (their UUIDs) and `results` from
/// it. Failed checks get their failure and evidence in [`failure_evidence`].
async fn raw_checks(conn: &mut SqliteConnection, layout: &Layout) -> anyhow::Result<()> {
    let c = layout.clock;
    exec(
        conn,
        "CREATE TEMP TABLE raw (rid INTEGER PRIMARY KEY, server_id INTEGER, i INTEGER,
             t INTEGER, cause TEXT, h TEXT, resolve_us INTEGER, connect_us INTEGER,
             tls_us INTEGER, first_byte_us INTEGER, lag_ms INTEGER, uuid BLOB,
             received INTEGER)",
    )
    .await?;
    // Random figures are drawn once per row here; the inserts below only read them.
    sqlx::query(
        "INSERT INTO raw (server_id, i, t, cause, h, resolve_us, connect_us, tls_us,
                          first_byte_us, lag_ms)
         WITH RECURSIVE
         retained(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM retained WHERE i + 1 < ?3),
         hour(i) AS (SELECT ?2 UNION ALL SELECT i + 1 FROM hour WHERE i + 1 < ?3),
         checks(server_id, i) AS (
             -- the timed servers: their raw retention
             SELECT s.id, q.i FROM srv s CROSS JOIN retained q WHERE s.timed
             UNION
             -- every server: its last hour
             SELECT s.id, q.i FROM srv s CROSS JOIN hour q
             UNION
             -- the timed servers' failed checks (kept 90 days)
             SELECT f.server_id, f.i FROM failed f JOIN srv s ON s.id = f.server_id
             WHERE s.timed
             UNION
             -- every incident's first and last check
             SELECT server_id, first_i FROM plan UNION SELECT server_id, last_i FROM plan)
         SELECT k.server_id, k.i, s.base + k.i * ?4 AS t,
                (SELECT CASE WHEN p.last_i >= k.i THEN p.cause END FROM plan p
                 WHERE p.server_id = k.server_id AND p.first_i <= k.i
                 ORDER BY p.first_i DESC LIMIT 1),
                lower(hex(randomblob(16))),
                400 + abs(random()) % 2600,
                200 + abs(random()) % 6000,
                2500 + abs(random()) % 9000,
                6000 + abs(random()) % 60000
                    + CASE WHEN abs(random()) % 50 = 0 THEN abs(random()) % 900000 ELSE 0 END,
                150 + abs(random()) % 900
         FROM checks k JOIN srv s ON s.id = k.server_id
         ORDER BY t, k.server_id",
    )
    .bind(layout.raw_from)
    .bind(layout.hour_from)
    .bind(c.n)
    .bind(c.interval_ms)
    .execute(&mut *conn)
    .await?;
    exec(
        conn,
        "CREATE UNIQUE INDEX temp.raw_by_server ON raw (server_id, i)",
    )
    .await?;
    exec(conn, &format!("UPDATE raw SET h = {UUID_OF_HEX}")).await?;
    exec(
        conn,
        "UPDATE raw SET uuid = unhex(replace(h, '-', '')),
             received = t + (resolve_us + connect_us + tls_us + first_byte_us) / 1000 + lag_ms",
    )
    .await?;
    exec(
        conn,
        "INSERT INTO reports (uuid) SELECT uuid FROM raw ORDER BY rid",
    )
    .await?;
    exec(
        conn,
        "INSERT INTO results (id, report_uuid, server_id, canary_id, address, started_at_ms, ok,
                              status, resolve_us, connect_us, tls_us, first_byte_us, total_us)
         SELECT r.rid, r.uuid, r.server_id, r.server_id, s.address, r.t + 2, r.cause IS NULL,
                CASE WHEN r.cause IS NULL THEN 200 END, r.resolve_us, r.connect_us,
                r.tls_us, r.first_byte_us,
                r.resolve_us + r.connect_us + r.tls_us + r.first_byte_us + 300
         FROM raw r JOIN srv s ON s.id = r.server_id ORDER BY r.rid",
    )
    .await?;
    Ok(())
}

/// Each failed check stored: its address, status and timings as the probe reports them, and
/// its row of `failures` (cause, contributing causes, explanation, failure, evidence).
async fn failure_evidence(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    let failed: Vec<(i64, String, i64, String, String)> = sqlx::query_as(
        "SELECT r.rid, s.name, r.t + 2, r.cause, s.address
         FROM raw r JOIN srv s ON s.id = r.server_id WHERE r.cause IS NOT NULL ORDER BY r.rid",
    )
    .fetch_all(&mut *conn)
    .await?;
    for (id, name, at, cause, address) in failed {
        let cause: Cause = cause.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
        let address: IpAddr = address.parse()?;
        let c = failed_check(cause, &name, address, at);
        store_failure(conn, id, &c).await?;
    }
    Ok(())
}

/// Milliseconds as whole microseconds, as results store timings.
fn micros(ms: f64) -> i64 {
    (ms * 1000.0).round() as i64
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
        "UPDATE results SET address = ?2, status = ?3, resolve_us = ?4, connect_us = ?5,
                tls_us = ?6, first_byte_us = ?7, total_us = ?8
         WHERE id = ?1",
    )
    .bind(id)
    .bind(c.address.map(|a| a.to_string()))
    .bind(c.status)
    .bind(c.timings.resolve_ms.map(micros))
    .bind(c.timings.connect_ms.map(micros))
    .bind(c.timings.tls_ms.map(micros))
    .bind(c.timings.first_byte_ms.map(micros))
    .bind(micros(c.timings.total_ms))
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO failures (result_id, cause, contributing, explanation, failure_kind,
                               failure_message, evidence)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .bind(id)
    .bind(d.cause.id())
    .bind(contributing)
    .bind(&d.explanation)
    .bind(f.kind.id())
    .bind(&f.message)
    .bind(serde_json::to_string(&c.evidence)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The slowest query of a resolver's answer, as `resolver_changes.elapsed_ms` keeps it.
fn slowest(o: &ResolverOutcome) -> Option<f64> {
    o.queries.iter().map(|q| q.elapsed_ms).reduce(f64::max)
}

/// Every server's canary name resolved through the two system resolvers, as ingest records
/// the resolutions of its reports: the resolvers, their observations counted per hour and
/// cause (refusing during the `dns_upstream_block` incidents, answering otherwise), and their
/// answers when they changed (older than the raw retention only the newest).
async fn resolvers(conn: &mut SqliteConnection, layout: &Layout) -> anyhow::Result<()> {
    let c = layout.clock;
    // What each resolver answers, healthy and during the incidents.
    let failing = failed_check(
        Cause::DnsUpstreamBlock,
        "web-0001",
        canary_address(1),
        c.end_ms,
    );
    exec(
        conn,
        "CREATE TEMP TABLE resolver_kinds (address TEXT, ok_outcome TEXT, ok_elapsed REAL,
             cause TEXT, bad_outcome TEXT, bad_elapsed REAL)",
    )
    .await?;
    for r in RESOLVERS {
        let healthy = answering(r);
        let bad = failing
            .evidence
            .dns
            .iter()
            .find(|o| o.server.ip().to_string() == r)
            .context("a resolver missing from the failed check")?;
        let cause = bad
            .condition
            .as_ref()
            .context("a refusing resolver without verdict")?
            .cause;
        sqlx::query("INSERT INTO resolver_kinds VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .bind(format!("{r}:53"))
            .bind(healthy.brief())
            .bind(slowest(&healthy))
            .bind(cause.id())
            .bind(bad.brief())
            .bind(slowest(bad))
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query(
        "INSERT INTO resolvers (server_id, canary, resolver, address, name, first_seen_at_ms,
                                last_seen_at_ms)
         SELECT s.id, 'site', 'system', k.address, s.name || '.example.net', s.base,
                s.base + (?1 - 1) * ?2
         FROM srv s CROSS JOIN resolver_kinds k ORDER BY s.id, k.address",
    )
    .bind(c.n)
    .bind(c.interval_ms)
    .execute(&mut *conn)
    .await?;
    exec(
        conn,
        "INSERT INTO resolver_hours (resolver_id, hour_ms, cause, n, last_at_ms)
         SELECT r.id, h.hour_ms, '', h.checks_total - coalesce(f.dns, 0),
                min(h.hour_ms + 3599999, r.last_seen_at_ms)
         FROM resolvers r JOIN availability_hours h ON h.server_id = r.server_id
         LEFT JOIN failed_hours f ON f.server_id = h.server_id AND f.b = h.hour_ms
         WHERE h.checks_total - coalesce(f.dns, 0) > 0
         ORDER BY r.id, h.hour_ms",
    )
    .await?;
    exec(
        conn,
        "INSERT INTO resolver_hours (resolver_id, hour_ms, cause, n, last_at_ms)
         SELECT r.id, f.b, k.cause, f.dns, min(f.b + 3599999, r.last_seen_at_ms)
         FROM resolvers r JOIN resolver_kinds k ON k.address = r.address
         JOIN failed_hours f ON f.server_id = r.server_id
         WHERE f.dns > 0",
    )
    .await?;
    // The changes: the first answer, then each incident's refusals and the answer after it.
    sqlx::query(
        "INSERT INTO resolver_changes (resolver_id, started_at_ms, cause, outcome, elapsed_ms)
         WITH changes(resolver_id, at, cause, outcome, elapsed) AS (
             SELECT r.id, s.base, NULL, k.ok_outcome, k.ok_elapsed
             FROM resolvers r JOIN resolver_kinds k ON k.address = r.address
             JOIN srv s ON s.id = r.server_id
             UNION ALL
             SELECT r.id, s.base + p.first_i * ?1, k.cause, k.bad_outcome, k.bad_elapsed
             FROM plan p JOIN srv s ON s.id = p.server_id
             JOIN resolvers r ON r.server_id = p.server_id
             JOIN resolver_kinds k ON k.address = r.address
             WHERE p.cause = 'dns_upstream_block'
             UNION ALL
             SELECT r.id, s.base + (p.last_i + 1) * ?1, NULL, k.ok_outcome, k.ok_elapsed
             FROM plan p JOIN srv s ON s.id = p.server_id
             JOIN resolvers r ON r.server_id = p.server_id
             JOIN resolver_kinds k ON k.address = r.address
             WHERE p.cause = 'dns_upstream_block' AND NOT p.open),
         ranked AS (SELECT *, row_number() OVER (PARTITION BY resolver_id ORDER BY at DESC)
                              AS newest FROM changes)
         SELECT resolver_id, at, cause, outcome, elapsed FROM ranked
         WHERE at >= ?2 OR newest = 1 ORDER BY at, resolver_id",
    )
    .bind(c.interval_ms)
    .bind(layout.raw_cutoff)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Incidents as ingest groups them (consecutive failed reports with one cause; closed by the
/// next report's start), with the resolver and host conditions they came with.
async fn incidents(
    conn: &mut SqliteConnection,
    layout: &Layout,
    planned: &[Planned],
) -> anyhow::Result<()> {
    let clock = layout.clock;
    let mut order: Vec<&Planned> = planned.iter().collect();
    order.sort_by_key(|p| (clock.t(p.server, p.first), p.server));
    for p in order {
        let (first_id, first_at) = failed_result(conn, p.server, p.first).await?;
        let (last_id, last_at) = failed_result(conn, p.server, p.last).await?;
        let count = p.last - p.first + 1;
        let explanation: String =
            sqlx::query_scalar("SELECT explanation FROM failures WHERE result_id = ?1")
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
        // Conditions are dated by their reports' starts, as ingest dates them.
        let seen = (clock.t(p.server, p.first), clock.t(p.server, p.last), ended);
        let name = format!("web-{:04}", p.server);
        let address = canary_address(p.server);
        let first = failed_check(p.cause, &name, address, first_at);
        let last = failed_check(p.cause, &name, address, last_at);
        match p.cause {
            Cause::DnsUpstreamBlock => {
                for (a, b) in first.evidence.dns.iter().zip(&last.evidence.dns) {
                    resolver_condition(conn, p.server, a, b, seen, count).await?;
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
                .bind(seen.0)
                .bind(seen.1)
                .bind(seen.2)
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

/// The id and start of server `server`'s failed check `i`.
async fn failed_result(
    conn: &mut SqliteConnection,
    server: i64,
    i: i64,
) -> anyhow::Result<(i64, i64)> {
    sqlx::query_as(
        "SELECT r.rid, p.started_at_ms FROM raw r JOIN results p ON p.id = r.rid
         WHERE r.server_id = ?1 AND r.i = ?2 AND p.ok = 0",
    )
    .bind(server)
    .bind(i)
    .fetch_one(&mut *conn)
    .await
    .with_context(|| format!("server {server}: no failed check {i}"))
}

async fn resolver_condition(
    conn: &mut SqliteConnection,
    server: i64,
    first: &ResolverOutcome,
    last: &ResolverOutcome,
    (started, last_seen, ended): (i64, i64, Option<i64>),
    observations: i64,
) -> anyhow::Result<()> {
    let verdict = |o: &ResolverOutcome| {
        o.condition
            .clone()
            .context("a refusing resolver without verdict")
    };
    let (d, last_d) = (verdict(first)?, verdict(last)?);
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
             ended_at_ms, observations, explanation, last_explanation, evidence, last_evidence)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .bind(resolver_id)
    .bind(d.cause.id())
    .bind(started)
    .bind(last_seen)
    .bind(ended)
    .bind(observations)
    .bind(&d.explanation)
    .bind(&last_d.explanation)
    .bind(serde_json::to_string(first)?)
    .bind(serde_json::to_string(last)?)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The probes' host readings as ingest keeps them: a row a minute (the newest reading of the
/// minute) for the timed servers over their raw checks, the newest for every other server.
/// `causes` is `oom_kill` where the check failed with it.
async fn host_observations(conn: &mut SqliteConnection, layout: &Layout) -> anyhow::Result<()> {
    let c = layout.clock;
    let host = ProbeHost::at(c.end_ms).report();
    let memory = host.latest_memory().context("no memory sample")?;
    let pressure = host.pressure.as_ref().context("no pressure")?;
    // The reports of a row: one a minute, or fewer at a longer interval.
    let per_row = (MIN_MS + c.interval_ms - 1) / c.interval_ms;
    // Load and pressure as whole hundredths, as ingest stores them.
    let c100 = |v: Option<f64>| v.map(|v| (v * 100.0).round() as i64);
    sqlx::query(
        "INSERT INTO host_observations (server_id, report_uuid, started_at_ms, boot_id, uptime_s,
             mem_total_kb, mem_available_kb, slab_kb, s_unreclaim_kb, cpus, load1_c, load5_c,
             load15_c, runnable, cpu_some_c, memory_some_c, memory_full_c, io_some_c, io_full_c,
             causes)
         SELECT r.server_id, r.uuid, r.t, ?1, ?2 + (r.t - ?3) / 1000, ?4, ?5, ?6, ?7, ?8, ?9,
                ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                CASE WHEN r.cause = 'oom_kill' THEN 'oom_kill' END
         FROM raw r JOIN srv s ON s.id = r.server_id
         WHERE r.i = ?18 - 1
            OR (s.timed AND r.i >= ?19 AND (r.i - ?19) % ?20 = ?20 - 1)
         ORDER BY r.rid",
    )
    .bind(&host.boot_id)
    .bind(i64::try_from(host.uptime_s)?)
    // Up since before the period: as long before its start as the readings say before now.
    .bind(c.end_ms - c.n * c.interval_ms)
    .bind(i64::try_from(memory.total_kb)?)
    .bind(memory.available_kb.map(i64::try_from).transpose()?)
    .bind(memory.slab_kb.map(i64::try_from).transpose()?)
    .bind(memory.s_unreclaim_kb.map(i64::try_from).transpose()?)
    .bind(pressure.cpus)
    .bind(c100(pressure.load1))
    .bind(c100(pressure.load5))
    .bind(c100(pressure.load15))
    .bind(pressure.runnable)
    .bind(c100(pressure.cpu_some))
    .bind(c100(pressure.memory_some))
    .bind(c100(pressure.memory_full))
    .bind(c100(pressure.io_some))
    .bind(c100(pressure.io_full))
    .bind(c.n)
    .bind(layout.raw_from)
    .bind(per_row)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Each server's newest report, as ingest keeps it on the server's row.
async fn servers_last(conn: &mut SqliteConnection, layout: &Layout) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE servers SET (last_report_id, last_started_at_ms, last_received_at_ms,
                             last_checks_total, last_checks_ok) =
             (SELECT r.h, r.t, r.received, 1, r.cause IS NULL FROM raw r
              WHERE r.server_id = servers.id AND r.i = ?1 - 1),
             interval_s = ?2, probe_host = name, probe_version = '0.1.0', spool_queued = 0,
             spool_dropped_total = 0",
    )
    .bind(layout.clock.n)
    .bind(layout.clock.interval_ms / 1000)
    .execute(&mut *conn)
    .await?;
    Ok(())
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
                         SELECT r.started_at_ms AS t,
                                CASE WHEN r.ok THEN json_object('t', r.started_at_ms,
                                         'ok', json('true'),
                                         'ms', CAST(round(r.total_us / 1000.0) AS INTEGER),
                                         'n', c.name)
                                     ELSE json_object('t', r.started_at_ms, 'ok', json('false'),
                                         'c', f.cause,
                                         'ms', CAST(round(r.total_us / 1000.0) AS INTEGER),
                                         'n', c.name)
                                END AS c
                         FROM results r JOIN canaries c ON c.id = r.canary_id
                         LEFT JOIN failures f ON f.result_id = r.id
                         WHERE r.server_id = servers.id
                         ORDER BY r.started_at_ms DESC, r.id DESC LIMIT {RECENT_MAX})
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
