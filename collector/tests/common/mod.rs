//! Shared test helpers: a collector on a temporary database, reports built from schema types,
//! requests through the Router without a socket, and the collector serving on a real socket
//! for `probectl`.
//!
//! The database is a SQLite file, or a fresh PostgreSQL database when `CAUSEWAY_TEST_DB` is
//! `postgres` (see [`pg`]): the test command runs the collector's suites once each way, so
//! every storage test holds for both. Tests of SQLite's own behaviour (its file, pragmas,
//! locks and migrations) ask for [`Harness::sqlite`].
#![allow(dead_code)] // each test binary uses a different subset

pub mod pg;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use causeway_collector::api::{self, AppState};
use causeway_collector::clock::Clock;
use causeway_collector::db::{Db, Location};
use causeway_collector::ingest::Retention;
use causeway_collector::{serve, tokens};
use causeway_schema::*;
use clap::Parser;
use http_body_util::BodyExt;
use probectl::ctl::{self, Ctl};
use serde_json::Value;
use tower::ServiceExt;

/// 2026-11-23T12:04:30Z: the tests' "now".
pub const NOW: i64 = 1_795_435_470_000;
pub const MIN: i64 = 60_000;
pub const HOUR: i64 = 3_600_000;
pub const DAY: i64 = 86_400_000;

/// A retention under which a test's history of months is stored as it comes.
pub const KEEP_ALL: Retention = Retention {
    raw: std::time::Duration::from_secs(3650 * 86_400),
    evidence: std::time::Duration::from_secs(3650 * 86_400),
    hourly: std::time::Duration::from_secs(3650 * 86_400),
};

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub db: Db,
    pub now: Arc<AtomicI64>,
    pub max_body: usize,
    /// What the app is told to keep; reports older than its `raw` are not stored.
    pub retention: Retention,
    /// Shared by every app of the harness, as by every request of a collector.
    pub tokens: Arc<tokens::Cache>,
    /// Who may read: anyone, unless a test of access control says otherwise.
    pub access: Arc<causeway_collector::access::Access>,
    /// The PostgreSQL database, dropped with the harness (after `db`).
    pub pg: Option<pg::PgDatabase>,
}

/// The variable that makes [`Harness::new`] use PostgreSQL.
pub const BACKEND_VAR: &str = "CAUSEWAY_TEST_DB";

/// Whether this run's tests store in PostgreSQL (`CAUSEWAY_TEST_DB=postgres`).
pub fn on_postgres() -> bool {
    match std::env::var(BACKEND_VAR).as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Ok("") | Err(_) => false,
        Ok(other) => panic!("{BACKEND_VAR}={other:?}: sqlite or postgres is allowed"),
    }
}

impl Harness {
    pub async fn new() -> Harness {
        Harness::with_max_body(1_048_576).await
    }

    pub async fn with_max_body(max_body: usize) -> Harness {
        let mut h = if on_postgres() {
            Harness::postgres().await
        } else {
            Harness::sqlite().await
        };
        h.max_body = max_body;
        h
    }

    /// A harness on a SQLite file, whatever the run's database.
    pub async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("collector.db")).await.unwrap();
        Harness::with_db(dir, db)
    }

    /// A harness on a fresh PostgreSQL database.
    pub async fn postgres() -> Harness {
        let pg = pg::fresh_database().await;
        let db = Db::open_at(&Location::Postgres(pg.url.clone()))
            .await
            .unwrap();
        Harness {
            pg: Some(pg),
            ..Harness::with_db(tempfile::tempdir().unwrap(), db)
        }
    }

    /// A harness on a database already open (made in `dir` by the test).
    pub fn with_db(dir: tempfile::TempDir, db: Db) -> Harness {
        Harness {
            dir,
            db,
            now: Arc::new(AtomicI64::new(NOW)),
            max_body: 1_048_576,
            retention: Retention::default(),
            tokens: Default::default(),
            access: Arc::new(causeway_collector::access::Access::new(
                causeway_collector::access::Mode::Open,
            )),
            pg: None,
        }
    }

    pub fn state(&self) -> AppState {
        let now = self.now.clone();
        AppState {
            alerts: None,
            db: self.db.clone(),
            clock: Clock::from_fn(move || now.load(Ordering::SeqCst)),
            max_body: self.max_body,
            body_timeout: causeway_collector::api::BODY_TIMEOUT,
            ingest: Default::default(),
            retention: self.retention,
            tokens: self.tokens.clone(),
            access: self.access.clone(),
        }
    }

    pub fn app(&self) -> Router {
        api::app(self.state())
    }

    pub fn set_now(&self, ms: i64) {
        self.now.store(ms, Ordering::SeqCst);
    }

    /// A new token for `server` (created if new).
    pub async fn token(&self, server: &str) -> String {
        tokens::add(&self.db.write, server, NOW)
            .await
            .unwrap()
            .token
    }

    pub async fn post_report(&self, token: &str, report: &Report) -> (StatusCode, Value) {
        let body = serde_json::to_vec(report).unwrap();
        self.post(Some(token), body).await
    }

    pub async fn post(&self, token: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
        send(self.app(), report_request(token, body)).await
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        send(self.app(), Request::get(path).body(Body::empty()).unwrap()).await
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.db.read)
            .await
            .unwrap()
    }
}

/// A database at `path` migrated as a collector from before migration `version` left it, for
/// tests of what that migration does to the data put in it.
pub async fn database_before(path: &std::path::Path, version: i64) -> sqlx::SqlitePool {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .create_if_missing(true),
        )
        .await
        .unwrap();
    let mut before = sqlx::migrate::Migrator::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"),
    )
    .await
    .unwrap();
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();
    pool
}

/// A report upload as a probe sends it, with `Authorization: Bearer <token>` when given.
pub fn report_request(token: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut req = Request::post("/api/v1/reports").header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    req.body(Body::from(body)).unwrap()
}

pub async fn send(app: Router, req: Request<Body>) -> (StatusCode, Value) {
    let response = app.oneshot(req).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value)
}

pub fn report(server: &str, started_at_ms: i64, results: Vec<CheckResult>) -> Report {
    Report {
        schema_version: SCHEMA_VERSION,
        report_id: causeway_schema::ReportId::new(),
        server: server.into(),
        probe: ProbeInfo {
            host: server.into(),
            version: "0.1.0".into(),
        },
        started_at_ms,
        interval_s: 30,
        results,
        resolutions: vec![],
        spool: SpoolStats {
            queued: 0,
            dropped_total: 2,
        },
        host: None,
        cycle: None,
    }
}

fn check(at: i64) -> CheckResult {
    CheckResult {
        canary: "site".into(),
        url: "http://canary.test/".into(),
        address: Some("10.77.0.2".parse().unwrap()),
        started_at_ms: at,
        ok: true,
        status: Some(200),
        timings: Timings {
            resolve_ms: Some(1.2),
            connect_ms: Some(0.4),
            tls_ms: None,
            first_byte_ms: Some(2.0),
            total_ms: 3.1,
        },
        failure: None,
        diagnosis: None,
        evidence: Evidence::default(),
    }
}

pub fn ok_check(at: i64) -> CheckResult {
    check(at)
}

/// A refused connection, classified by the schema's classifier.
pub fn refused(at: i64) -> CheckResult {
    let mut c = check(at);
    c.ok = false;
    c.status = None;
    c.timings.first_byte_ms = None;
    c.failure = Some(Failure {
        kind: FailureKind::ConnectRefused,
        message: "Connection refused (os error 111)".into(),
    });
    c.diagnosis = classify(&c);
    c
}

/// A 502 from the proxy, classified (`http_error`), with its evidence.
pub fn bad_gateway(at: i64) -> CheckResult {
    let mut c = check(at);
    c.ok = false;
    c.status = Some(502);
    c.failure = Some(Failure {
        kind: FailureKind::UnexpectedStatus,
        message: "HTTP 502 Bad Gateway".into(),
    });
    c.evidence = Evidence {
        expected_status: Some(200),
        body_excerpt: Some("<html>502 Bad Gateway</html>".into()),
        ..Evidence::default()
    };
    c.diagnosis = classify(&c);
    c
}

/// Posts each report in turn, asserting each is stored (not a duplicate, not refused).
pub async fn post_all(h: &Harness, token: &str, reports: &[Report]) {
    for r in reports {
        let (status, body) = h.post_report(token, r).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["stored"], true, "{body}");
    }
}

/// The canary's name in the resolution helpers.
pub const NAME: &str = "canary.test";

fn query(record_type: RecordType, outcome: DnsOutcome, elapsed_ms: f64) -> DnsQuery {
    let rcode = match outcome {
        DnsOutcome::Answer | DnsOutcome::NoData => Some(Rcode::NOERROR),
        DnsOutcome::NxDomain => Some(Rcode::NXDOMAIN),
        DnsOutcome::Refused => Some(Rcode::REFUSED),
        _ => None,
    };
    let answers = match outcome {
        DnsOutcome::Answer => vec![DnsAnswer {
            address: "10.77.0.2".parse().unwrap(),
            ttl: 30,
        }],
        _ => vec![],
    };
    DnsQuery {
        record_type,
        outcome,
        rcode,
        answers,
        elapsed_ms,
        error: None,
    }
}

fn name_server(label: &str, queries: Vec<DnsQuery>) -> ResolverOutcome {
    ResolverOutcome {
        resolver: label.into(),
        server: format!("{label}:53").parse().unwrap(),
        queries,
        reachability: None,
        condition: None,
    }
}

fn reach(outcome: ReachOutcome, elapsed_ms: f64) -> ReachProbe {
    ReachProbe {
        outcome,
        elapsed_ms,
        detail: None,
    }
}

/// A name server (`label`, port 53) that answers A 10.77.0.2 and has no AAAA record.
pub fn answering(label: &str) -> ResolverOutcome {
    name_server(
        label,
        vec![
            query(RecordType::A, DnsOutcome::Answer, 1.2),
            query(RecordType::Aaaa, DnsOutcome::NoData, 1.1),
        ],
    )
}

/// One that refuses both queries, though it answers ping and TCP on port 53.
pub fn refusing(label: &str) -> ResolverOutcome {
    unusable(
        label,
        (DnsOutcome::Refused, [0.8, 0.7]),
        (ReachOutcome::Reply, [0.3, 0.5]),
    )
}

/// One that answers nothing at all: no DNS, no ping, no TCP.
pub fn silent(label: &str) -> ResolverOutcome {
    let never = [1000.0; 2];
    unusable(
        label,
        (DnsOutcome::Timeout, never),
        (ReachOutcome::NoReply, never),
    )
}

/// A name server whose A and AAAA queries both end in `dns`, and whose reachability tests
/// (ping, then TCP) both end in `reach`; each with its elapsed milliseconds.
fn unusable(
    label: &str,
    (dns, dns_ms): (DnsOutcome, [f64; 2]),
    (reach_outcome, reach_ms): (ReachOutcome, [f64; 2]),
) -> ResolverOutcome {
    let mut o = name_server(
        label,
        vec![
            query(RecordType::A, dns, dns_ms[0]),
            query(RecordType::Aaaa, dns, dns_ms[1]),
        ],
    );
    o.reachability = Some(Reachability {
        icmp: reach(reach_outcome, reach_ms[0]),
        tcp: reach(reach_outcome, reach_ms[1]),
    });
    o
}

/// The canary `site`'s name resolved through `resolvers`, each judged against the others by
/// the schema's rules (the canary answering at 10.77.0.2), as the probe does.
pub fn resolution(mut resolvers: Vec<ResolverOutcome>) -> Resolution {
    let checks = [AddressCheck {
        address: "10.77.0.2".parse().unwrap(),
        failure: None,
    }];
    let verdicts = judge_resolvers(NAME, &resolvers, &checks);
    for (r, verdict) in resolvers.iter_mut().zip(verdicts) {
        r.condition = verdict;
    }
    Resolution {
        canary: "site".into(),
        name: NAME.into(),
        resolvers,
    }
}

/// A report of `server` with one successful check and the canary resolved through
/// `resolvers`.
pub fn resolved(server: &str, at: i64, resolvers: Vec<ResolverOutcome>) -> Report {
    let mut r = report(server, at, vec![ok_check(at)]);
    r.resolutions = vec![resolution(resolvers)];
    r
}

/// `t(n)`: the n-th 30 s cycle from ten minutes before [`NOW`].
pub fn cycle(n: i64) -> i64 {
    NOW - 10 * MIN + n * 30_000
}

/// web-01's story with two resolvers, recorded in the fixtures: 10.0.0.54 silent in cycle 1
/// (a closed `dns_resolver_unreachable`), refusing from cycle 3 (an open `dns_upstream_block`),
/// and in cycle 5 the canary refuses the connection (an incident whose evidence holds both
/// resolvers). Report ids and explanations are fixed, so that the answers are the same on every
/// run and do not follow the classifier's wording (its causes they do follow).
pub fn dns_story() -> Vec<Report> {
    let (a, b) = ("10.0.0.53", "10.0.0.54");
    let mut reports = vec![
        resolved("web-01", cycle(0), vec![answering(a), answering(b)]),
        resolved("web-01", cycle(1), vec![answering(a), silent(b)]),
        resolved("web-01", cycle(2), vec![answering(a), answering(b)]),
        resolved("web-01", cycle(3), vec![answering(a), refusing(b)]),
        resolved("web-01", cycle(4), vec![answering(a), refusing(b)]),
        resolved("web-01", cycle(5), vec![answering(a), refusing(b)]),
    ];
    for (n, r) in reports.iter_mut().enumerate() {
        r.report_id = causeway_schema::ReportId(uuid::Uuid::from_u128(0xd45_0000 + n as u128));
        for o in &mut r.resolutions[0].resolvers {
            if let Some(c) = &mut o.condition {
                c.explanation = story_explanation(c.cause);
            }
        }
    }
    let last = reports.last_mut().unwrap();
    let mut check = refused(cycle(5));
    check.evidence.dns = last.resolutions[0].resolvers.clone();
    last.results = vec![check];
    reports
}

fn story_explanation(cause: Cause) -> String {
    let text = match cause {
        Cause::DnsUpstreamBlock => {
            "10.0.0.54 refuses our queries for canary.test (A refused, AAAA refused), yet it \
             is reachable (ping reply in 0.3 ms, TCP port 53 reply in 0.5 ms); 10.0.0.53 \
             answers 10.77.0.2"
        }
        Cause::DnsResolverUnreachable => {
            "10.0.0.54 cannot be reached: no DNS answer for canary.test (A timeout after \
             1000 ms, AAAA timeout after 1000 ms), ping no_reply after 1000 ms, TCP port 53 \
             no_reply after 1000 ms; 10.0.0.53 answers 10.77.0.2"
        }
        other => panic!("the story has no {other} condition"),
    };
    text.to_owned()
}

/// `probectl args...`, parsed as the binary parses its command line.
pub fn ctl(args: &[&str]) -> Ctl {
    Ctl::try_parse_from(std::iter::once("probectl").chain(args.iter().copied())).unwrap()
}

/// The collector of `h` serving on a free port of 127.0.0.1, its clock at [`NOW`].
pub struct Running {
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), serve::ServeError>>,
}

impl Running {
    pub async fn start(h: &Harness) -> Running {
        // The collector's log in the test's output, which the runner shows for a failed test.
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let listener = serve::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let state = AppState {
            alerts: None,
            clock: Clock::fixed(NOW),
            ..h.state()
        };
        let server = tokio::spawn(serve::run(
            listener,
            state,
            serve::Limits::default(),
            async {
                let _ = stopped.await;
            },
        ));
        Running {
            base: format!("http://{addr}"),
            stop,
            server,
        }
    }

    /// Posts `reports` as the probe does: JSON over HTTP with the bearer token.
    pub async fn post(&self, token: &str, reports: &[Report]) {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap();
        for r in reports {
            let answer = http
                .post(format!("{}/api/v1/reports", self.base))
                .bearer_auth(token)
                .json(r)
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
        }
    }

    /// `probectl --collector <this one> args...`.
    pub async fn run(&self, args: &[&str]) -> Result<String, ctl::CtlError> {
        let mut all = vec!["--collector", &self.base];
        all.extend_from_slice(args);
        ctl::run(&ctl(&all), NOW).await
    }

    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        self.server.await.unwrap().unwrap();
    }
}

/// KiB in a GiB and a MiB, for memory figures.
pub const GIB: u64 = 1024 * 1024;
pub const MIB: u64 = 1024;
pub const BOOT_ID: &str = "4c6e0f2a-9d1b-4e57-8a3c-2b7d9e1f0a65";
/// nginx's worker on the probe's host: the canary's serving process in the host stories.
pub const NGINX_PID: u32 = 812;

/// The probe's host at a cycle, as a probe reads it; [`ProbeHost::report`] and
/// [`ProbeHost::evidence`] give what a report and a failed check carry, with the conditions
/// judged by the schema's rules as the probe judges them.
#[derive(Debug, Clone)]
pub struct ProbeHost {
    pub at: i64,
    leaking: bool,
    overloaded: bool,
    kills: Vec<OomKill>,
    kernel_lines: Vec<KernelLine>,
    warnings: Vec<String>,
}

/// Memory samples a probe keeps in these stories, 30 s apart.
const SAMPLES: i64 = 6;

impl ProbeHost {
    /// Healthy at `at`: 16 GiB with 12 GiB available, SUnreclaim flat at 200 MiB, 4 idle CPUs.
    pub fn at(at: i64) -> ProbeHost {
        ProbeHost {
            at,
            leaking: false,
            overloaded: false,
            kills: vec![],
            kernel_lines: vec![],
            warnings: vec![],
        }
    }

    /// SUnreclaim climbing 100 MiB a sample to 2.5 GiB at `at`: above 10% of RAM and rising,
    /// a `kernel_memory_leak`.
    pub fn leaking(mut self) -> ProbeHost {
        self.leaking = true;
        self
    }

    /// Load 12 on 4 CPUs and CPU pressure at 85%: `host_overload`.
    pub fn overloaded(mut self) -> ProbeHost {
        self.overloaded = true;
        self
    }

    /// The OOM killer killed nginx at `at_ms` (and the kernel logged it): `oom_kill` while
    /// within the window (600 s).
    pub fn killed(mut self, at_ms: i64) -> ProbeHost {
        let kill = OomKill {
            at_ms,
            pid: NGINX_PID,
            command: "nginx".into(),
            memcg: Some("/system.slice/nginx.service".into()),
            cgroup_oom: false,
            total_vm_kb: Some(2 * GIB + 100 * MIB),
            anon_rss_kb: Some(GIB + 900 * MIB),
            file_rss_kb: Some(0),
            shmem_rss_kb: Some(0),
            uid: Some(33),
        };
        self.kernel_lines.extend([
            KernelLine {
                at_ms: at_ms - 40,
                level: 4,
                text: "nginx invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|\
                       __GFP_COMP), order=0, oom_score_adj=0"
                    .into(),
            },
            KernelLine {
                at_ms,
                level: 3,
                text: format!(
                    "Out of memory: Killed process {NGINX_PID} (nginx) total-vm:2199552kB, \
                     anon-rss:1914880kB, file-rss:0kB, shmem-rss:0kB, UID:33 pgtables:4100kB \
                     oom_score_adj:0"
                ),
            },
        ]);
        self.kills.push(kill);
        self
    }

    /// A line of the kernel log (level 4, a warning) at `at_ms`.
    pub fn logged(mut self, at_ms: i64, text: &str) -> ProbeHost {
        self.kernel_lines.push(KernelLine {
            at_ms,
            level: 4,
            text: text.into(),
        });
        self
    }

    /// A reader that failed.
    pub fn warning(mut self, text: &str) -> ProbeHost {
        self.warnings.push(text.into());
        self
    }

    fn sample(&self, n: i64) -> MemorySample {
        let s_unreclaim_kb = if self.leaking {
            2 * GIB + n.unsigned_abs() * 100 * MIB
        } else {
            200 * MIB
        };
        MemorySample {
            at_ms: self.at - (SAMPLES - 1 - n) * 30_000,
            total_kb: 16 * GIB,
            available_kb: Some(if self.leaking { 1536 * MIB } else { 12 * GIB }),
            slab_kb: Some(s_unreclaim_kb + 300 * MIB),
            s_unreclaim_kb: Some(s_unreclaim_kb),
        }
    }

    fn pressure(&self) -> Pressure {
        let (load, cpu_some) = if self.overloaded {
            ((12.0, 9.5, 6.0), 85.0)
        } else {
            ((0.4, 0.3, 0.2), 1.0)
        };
        Pressure {
            at_ms: self.at,
            cpus: 4,
            load1: Some(load.0),
            load5: Some(load.1),
            load15: Some(load.2),
            runnable: Some(if self.overloaded { 14 } else { 1 }),
            cpu_some: Some(cpu_some),
            memory_some: Some(0.0),
            memory_full: Some(0.0),
            io_some: Some(0.5),
            io_full: Some(0.1),
        }
    }

    /// What a failed check at `at` carries: the series, pressure, kills, kernel lines, and the
    /// conditions judged at `at`.
    pub fn evidence(&self) -> HostEvidence {
        let mut host = HostEvidence {
            boot_id: BOOT_ID.into(),
            uptime_s: 3 * 86_400 + 4 * 3600,
            reboot: None,
            memory: (0..SAMPLES).map(|n| self.sample(n)).collect(),
            pressure: Some(self.pressure()),
            oom_kills: self.kills.clone(),
            kernel_lines: self.kernel_lines.clone(),
            thresholds: HostThresholds::default(),
            conditions: vec![],
            warnings: self.warnings.clone(),
        };
        host.conditions = host_conditions(&host, self.at);
        host
    }

    /// What the report of the cycle at `at` carries: the conditions judged on the whole
    /// series, then only the latest sample and no kernel lines, as the probe sends them.
    pub fn report(&self) -> HostEvidence {
        let mut host = self.evidence();
        host.memory.drain(..host.memory.len() - 1);
        host.kernel_lines.clear();
        host
    }
}

/// `r` with the host of `host` (see [`ProbeHost::report`]).
pub fn with_host(mut r: Report, host: &ProbeHost) -> Report {
    r.host = Some(host.report());
    r
}

/// The listener evidence of a canary whose nginx (unit nginx.service, pid [`NGINX_PID`])
/// listened on `address` from `first_seen_ms` and was last seen at `last_seen_ms`: gone.
pub fn nginx_listener_gone(
    address: std::net::SocketAddr,
    first_seen_ms: i64,
    last_seen_ms: i64,
) -> ListenerEvidence {
    ListenerEvidence {
        port: address.port(),
        serving: "unit nginx.service".into(),
        rule: causeway_schema::ServingRule::Unit("nginx.service".into()),
        poll_ms: 100,
        owners_visible: true,
        serving_pid: None,
        listeners: vec![Listener {
            inode: 3001,
            address,
            uid: 0,
            group_size: 1,
            owners: vec![SocketOwner {
                pid: NGINX_PID,
                name: "nginx".into(),
                cmdline: "nginx: worker process".into(),
                cgroup: Some("/system.slice/nginx.service".into()),
                unit: Some("nginx.service".into()),
                ppid: None,
            }],
            serving: true,
            first_seen_ms,
            last_seen_ms,
            gone: true,
        }],
    }
}

/// A check of the canary refused because nginx is gone: its listener on 10.77.0.2:80 vanished
/// at `gone_ms`; the host's evidence attached and the check classified (an `oom_kill` when the
/// host shows nginx killed).
pub fn refused_on(at: i64, host: &ProbeHost, gone_ms: i64) -> CheckResult {
    let mut c = refused(at);
    c.evidence.listeners = Some(nginx_listener_gone(
        "10.77.0.2:80".parse().unwrap(),
        NOW - HOUR,
        gone_ms,
    ));
    c.evidence.host = Some(host.evidence());
    c.diagnosis = classify(&c);
    c
}

/// The collector binary, for the tests that run it as a process.
pub const COLLECTOR_BIN: &str = env!("CARGO_BIN_EXE_causeway-collector");
/// How long a process test waits for what it polls; a slow machine must not fail a right test.
pub const PROCESS_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);

/// Polls `what` every 50 ms until it gives a value, for at most [`PROCESS_PATIENCE`].
pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + PROCESS_PATIENCE;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {what} within {PROCESS_PATIENCE:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs `command` (the collector binary, or a wrapper already given it) as `serve` on `db`, on
/// a free loopback port, with `flags`, logging to `log`; returns it with the address its log
/// says it listens on (`scheme`: "http" or "https").
pub fn spawn_serve(
    mut command: std::process::Command,
    db: &std::path::Path,
    flags: &[&std::ffi::OsStr],
    log: &std::path::Path,
    scheme: &str,
) -> (std::process::Child, std::net::SocketAddr) {
    let child = command
        .arg("--db")
        .arg(db)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(flags)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let line = format!("listening on {scheme}://");
    let addr = wait_for("the collector's listening line", || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        text.split_once(line.as_str())
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
    });
    (child, addr)
}
