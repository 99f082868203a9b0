//! PostgreSQL as several collectors share it, and `migrate-to` onto it, against a real
//! PostgreSQL (a fresh database per test: see `common::pg`). The rest of the collector's suite
//! runs on PostgreSQL too, when the test command sets `CAUSEWAY_TEST_DB=postgres`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use causeway_collector::db::{Db, Location};
use causeway_collector::ingest::Retention;
use causeway_collector::migrate_to::{self, MigrateToError};
use causeway_schema::Report;
use causeway_service::now_ms;
use common::*;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_causeway-collector");
/// How long a test waits for what must happen; a slow machine must not fail a right test.
const PATIENCE: Duration = Duration::from_secs(20);

/// A `causeway-collector serve` process on `db`, on a free port of 127.0.0.1.
struct Serving {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Serving {
    fn start(db: &str, dir: &std::path::Path, name: &str) -> Serving {
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(BIN)
            .args(["--db", db, "serve", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + PATIENCE;
        let addr = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(addr) = text
                .split_once("listening on http://")
                .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
            {
                break addr;
            }
            assert!(Instant::now() < deadline, "{name} did not start: {text}");
            std::thread::sleep(Duration::from_millis(50));
        };
        Serving { child, addr, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request over its own connection: the status and the body.
fn http(addr: SocketAddr, request: &str, body: &[u8]) -> (u16, String) {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    conn.write_all(request.as_bytes()).unwrap();
    conn.write_all(body).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3)?.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn upload(addr: SocketAddr, token: &str, report: &Report) -> (u16, String) {
    let body = serde_json::to_vec(report).unwrap();
    let request = format!(
        "POST /api/v1/reports HTTP/1.1\r\nHost: collector\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    http(addr, &request, &body)
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (status, body) = http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: collector\r\nConnection: close\r\n\r\n"),
        b"",
    );
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// A probe's reports go to two collectors on one PostgreSQL, each report to either at random,
/// a few to both at once (a retry racing the original), and one collector is killed in the
/// middle of the outage. The history is one incident with the right start, end and count,
/// and no report is stored twice.
#[test]
fn two_collectors_on_one_postgres_give_one_incident_history() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pg = rt.block_on(pg::fresh_database());
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["--db", &pg.url, "token", "add", "web-01"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let a = Serving::start(&pg.url, dir.path(), "a");
    let mut b = Some(Serving::start(&pg.url, dir.path(), "b"));

    // 60 cycles 10 s apart, ending now: up, 20 refused checks, up again.
    let start = now_ms() - 60 * 10_000;
    let at = |n: i64| start + n * 10_000;
    let reports: Vec<Report> = (0..60)
        .map(|n| {
            let check = if (20..40).contains(&n) {
                refused(at(n))
            } else {
                ok_check(at(n))
            };
            report("web-01", at(n), vec![check])
        })
        .collect();
    let mut stored_by = [0usize; 2];
    for (n, r) in reports.iter().enumerate() {
        if n == 30 {
            // A collector dies in the middle of the outage; the other carries on.
            let mut dead = b.take().unwrap();
            dead.child.kill().unwrap();
            dead.child.wait().unwrap();
        }
        let to_b = b.is_some() && getrandom::u32().unwrap() % 2 == 1;
        let (first, second) = match &b {
            Some(b) if to_b => (b.addr, a.addr),
            Some(b) => (a.addr, b.addr),
            None => (a.addr, a.addr),
        };
        if n % 5 == 4 && b.is_some() {
            // The same report to both at once: one stores it, the other finds it stored
            // (or waits for the first's lock and then finds it).
            let (one, two) = std::thread::scope(|s| {
                let one = s.spawn(|| upload(first, &token, r));
                let two = s.spawn(|| upload(second, &token, r));
                (one.join().unwrap(), two.join().unwrap())
            });
            assert_eq!((one.0, two.0), (200, 200), "{one:?} {two:?}");
            let outcomes = [
                one.1.contains("\"duplicate\":true"),
                two.1.contains("\"duplicate\":true"),
            ];
            assert_eq!(
                outcomes.iter().filter(|d| **d).count(),
                1,
                "exactly one of the two is a duplicate: {one:?} {two:?}"
            );
        } else {
            let (status, body) = upload(first, &token, r);
            assert_eq!(status, 200, "report {n}: {body}");
        }
        stored_by[usize::from(to_b)] += 1;
    }
    assert!(stored_by[0] > 0 && stored_by[1] > 0, "{stored_by:?}");

    let incidents = get_json(
        a.addr,
        &format!("/api/v1/servers/web-01/incidents?since_ms={}", start - 1),
    );
    let incidents = incidents["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 1, "{incidents:#?}\n{}", a.log_text());
    let incident = &incidents[0];
    assert_eq!(incident["started_at_ms"], at(20), "{incident}");
    assert_eq!(incident["ended_at_ms"], at(40), "{incident}");
    assert_eq!(incident["failed_checks"], 20, "{incident}");
    assert_eq!(incident["cause"], "connection_refused", "{incident}");

    let stored: i64 = rt.block_on(async {
        let mut conn = pg.connect().await;
        sqlx::query_scalar("SELECT count(*) FROM reports")
            .fetch_one(&mut conn)
            .await
            .unwrap()
    });
    assert_eq!(stored, 60, "every report once");
    let server = get_json(a.addr, "/api/v1/servers/web-01");
    assert_eq!(server["state"], "up", "{server}");
    assert_eq!(server["availability"]["1h"]["total"], 60, "{server}");
    assert_eq!(server["availability"]["1h"]["ok"], 40, "{server}");
}

/// The answers a user sees of a collector's database: the server list, `why`, the incidents
/// and the server page.
async fn answers(h: &Harness) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for path in [
        "/api/v1/servers",
        "/api/v1/servers/web-01/why?since_ms=0",
        "/api/v1/servers/web-01/incidents?since_ms=0",
        "/api/v1/servers/web-01/resolvers?since_ms=0",
        "/api/v1/servers/db-01",
    ] {
        let (status, body) = h.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        out.push((path.to_owned(), body.to_string()));
    }
    let page = send(
        h.app(),
        axum::http::Request::get("/servers/web-01")
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    out.push(("/servers/web-01".to_owned(), page.1.to_string()));
    out
}

/// A SQLite database with history (an incident with its evidence, resolver conditions, two
/// servers) copied by `migrate-to` answers the same as the original; new reports then get
/// ids of their own; a second copy into the same database is refused.
#[tokio::test]
async fn migrate_to_copies_a_sqlite_history_that_answers_the_same() {
    let sqlite = Harness::sqlite().await;
    let web = sqlite.token("web-01").await;
    let db = sqlite.token("db-01").await;
    post_all(&sqlite, &web, &dns_story()).await;
    let mut outage = Vec::new();
    for n in 6..12 {
        let check = if n < 9 {
            bad_gateway(cycle(n))
        } else {
            ok_check(cycle(n))
        };
        outage.push(report("web-01", cycle(n), vec![check]));
    }
    post_all(&sqlite, &web, &outage).await;
    post_all(
        &sqlite,
        &db,
        &[report("db-01", cycle(3), vec![ok_check(cycle(3))])],
    )
    .await;
    let before = answers(&sqlite).await;
    let source = sqlite.db.location.clone();
    sqlite.db.close().await;

    let pg = pg::fresh_database().await;
    let copied = migrate_to::migrate_to(&source, &pg.url).await.unwrap();
    let rows = |table: &str| copied.tables.iter().find(|(t, _)| *t == table).unwrap().1;
    assert_eq!(rows("servers"), 2);
    assert_eq!(rows("reports"), 13);
    assert!(rows("failures") >= 4, "{copied:?}");

    let target = Location::Postgres(pg.url.clone());
    let h = Harness::with_db(
        tempfile::tempdir().unwrap(),
        Db::open_at(&target).await.unwrap(),
    );
    let after = answers(&h).await;
    for ((path, a), (_, b)) in before.iter().zip(&after) {
        assert_eq!(a, b, "{path} differs after the copy");
    }
    // The copied tokens work, and new rows do not collide with the copied ids.
    let next = report("web-01", cycle(12), vec![refused(cycle(12))]);
    let (status, body) = h.post_report(&web, &next).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stored"], true, "{body}");
    let incidents = h.get("/api/v1/servers/web-01/incidents?since_ms=0").await.1;
    assert_eq!(
        incidents["incidents"].as_array().unwrap().len(),
        3,
        "{incidents}"
    );

    let again = migrate_to::migrate_to(&source, &pg.url).await.unwrap_err();
    assert!(
        matches!(again, MigrateToError::TargetNotEmpty { servers: 2 }),
        "{again}"
    );
    h.db.close().await;
}

/// Every table of the schema is copied by `migrate-to`: a table added by a later migration
/// and forgotten in its list would be lost in the copy.
#[tokio::test]
async fn migrate_to_knows_every_table() {
    let pg = pg::fresh_database().await;
    let db = Db::open_at(&Location::Postgres(pg.url.clone()))
        .await
        .unwrap();
    db.close().await;
    let mut conn = pg.connect().await;
    let mut tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'
           AND table_name NOT IN (SELECT c.relname FROM pg_inherits i
                                  JOIN pg_class c ON c.oid = i.inhrelid)",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    tables.sort();
    let mut listed: Vec<String> = migrate_to::TABLES.iter().map(|t| t.to_string()).collect();
    listed.sort();
    assert_eq!(tables, listed);
}

/// `--db` names what it accepts, and the CLI says where `migrate-to` cannot copy.
#[test]
fn bad_database_locations_are_named() {
    let out = Command::new(BIN)
        .args(["--db", "mysql://x/y", "token", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mysql://x/y") && err.contains("postgres:// URL"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("none.db");
    let out = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["migrate-to", "/var/tmp/not-a-url"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a postgres:// URL"), "{err}");
}

/// The partitions of the schema's partitioned tables, by name.
async fn partitions(pg: &pg::PgDatabase) -> Vec<String> {
    let mut conn = pg.connect().await;
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

/// On PostgreSQL the pruner drops a day older than the retention as a whole: today's
/// partitions exist from the start, and 20 days later they are gone with their healthy
/// checks, while the failed check (kept for its evidence), its report and its incident stay.
#[tokio::test]
async fn postgres_drops_whole_days_older_than_the_retention() {
    let h = Harness::postgres().await;
    let now = now_ms();
    h.set_now(now);
    let token = h.token("web-01").await;
    let mut reports = Vec::new();
    for n in 0..6 {
        let at = now - 60_000 + n * 10_000;
        let check = if n == 3 { refused(at) } else { ok_check(at) };
        reports.push(with_host(
            report("web-01", at, vec![check]),
            &ProbeHost::at(at),
        ));
    }
    post_all(&h, &token, &reports).await;
    let day = |ms: i64| {
        let d = time::OffsetDateTime::from_unix_timestamp(ms / 1000)
            .unwrap()
            .date();
        format!("{:04}{:02}{:02}", d.year(), u8::from(d.month()), d.day())
    };
    let today = day(now);
    let before = partitions(h.pg.as_ref().unwrap()).await;
    for table in ["results_ok", "host_observations", "availability_minutes"] {
        assert!(before.contains(&format!("{table}_d{today}")), "{before:?}");
    }
    let healthy = || h.count("results_ok_default");
    assert_eq!(
        healthy().await,
        0,
        "today's healthy checks are in today's partition"
    );
    assert_eq!(h.count("results").await, 6);

    let later = now + 20 * DAY;
    let deadline = Instant::now() + PATIENCE;
    while !h
        .db
        .reports
        .prune(Retention::default(), later)
        .await
        .unwrap()
        .done
    {
        assert!(Instant::now() < deadline, "no pass of the pruner ended");
    }
    let after = partitions(h.pg.as_ref().unwrap()).await;
    for table in ["results_ok", "host_observations", "availability_minutes"] {
        assert!(!after.contains(&format!("{table}_d{today}")), "{after:?}");
        assert!(
            after.contains(&format!("{table}_d{}", day(later))),
            "{after:?}"
        );
    }
    assert_eq!(h.count("results").await, 1, "the failed check stays");
    assert_eq!(h.count("reports").await, 1, "and its report id");
    assert_eq!(h.count("host_observations").await, 0);
    h.set_now(later);
    let (_, incidents) = h
        .get(&format!(
            "/api/v1/servers/web-01/incidents?since_ms={}",
            now - DAY
        ))
        .await;
    assert_eq!(
        incidents["incidents"].as_array().unwrap().len(),
        1,
        "{incidents}"
    );
}
