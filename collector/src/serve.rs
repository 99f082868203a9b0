//! Running the HTTP server until SIGTERM or Ctrl-C, then finishing in-flight requests for at most
//! the shutdown grace, and telling systemd about it (`Type=notify`, `WatchdogSec=`: see
//! deploy/systemd/causeway-collector.service).
//!
//! The notifications follow sd_notify(3), through `causeway_service::notify` (the probe's
//! too, so both read `NOTIFY_SOCKET` by one rule). `READY=1` once the listener is bound and the
//! database open, `STATUS=` with the address and the reports stored since the start,
//! `WATCHDOG=1` at half of `WATCHDOG_USEC` while the database answers `SELECT 1` in time (a
//! wedged database stops the pings and systemd restarts the collector), `STOPPING=1` on
//! shutdown. Without `NOTIFY_SOCKET` (not under systemd) none of it happens.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use causeway_service::AbortOnDrop;
use causeway_service::notify::{Notifier, State};
use sqlx::AnyPool;
use tokio::net::TcpListener;

use crate::accept::{self, ConnectionLimits};
use crate::alerts::SharedConfig;
use crate::alerts::config::CollectorConfig;
use crate::api::{self, AppState};
use crate::metrics::{IngestCounters, IngestOutcome};
use crate::tls::Tls;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Binds `addr` (port 0 picks a free port; the listener tells which).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// What the server accepts connections on: a bound socket, with TLS or without.
pub struct Listening {
    pub tcp: TcpListener,
    pub tls: Option<Arc<Tls>>,
}

impl From<TcpListener> for Listening {
    fn from(tcp: TcpListener) -> Listening {
        Listening { tcp, tls: None }
    }
}

/// How long the server waits on its clients, and how many it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A connection that moves no byte either way for this long is closed ([`crate::idle`]).
    pub idle: Duration,
    /// After the stop signal, requests in flight get this long to finish; then their
    /// connections are closed. An unacknowledged report is not lost: its probe sends it again.
    pub shutdown_grace: Duration,
    /// A request's headers must have arrived this long after its first byte.
    pub header_timeout: Duration,
    /// Connections open at once, in all and from one client address ([`crate::accept`]).
    pub max_connections: usize,
    pub per_client: usize,
}

impl Limits {
    /// Longer than any client's keep-alive pause between two reports would matter, as
    /// nginx's `keepalive_timeout` (75 s).
    pub const IDLE: Duration = Duration::from_secs(75);
    /// Well within the unit's `TimeoutStopSec=30`.
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
    /// A probe's headers are a few hundred bytes, sent at once.
    pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
    /// Far below the unit's `LimitNOFILE=65536`, far above what a fleet's probes hold (a
    /// probe uploads over one connection at a time).
    pub const MAX_CONNECTIONS: usize = 4096;
    /// One address (a probe, a browser, a proxy in front) holds at most this many.
    pub const PER_CLIENT: usize = 256;
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            idle: Limits::IDLE,
            shutdown_grace: Limits::SHUTDOWN_GRACE,
            header_timeout: Limits::HEADER_TIMEOUT,
            max_connections: Limits::MAX_CONNECTIONS,
            per_client: Limits::PER_CLIENT,
        }
    }
}

/// Serves the application on `listener` until `shutdown` completes, then lets in-flight
/// requests finish for at most `limits.shutdown_grace`. The caller closes the database
/// afterwards. Notifies systemd when run by it (see [`Notifier::from_env`]).
pub async fn run(
    listener: impl Into<Listening>,
    state: AppState,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    run_notifying(listener, state, limits, shutdown, Notifier::from_env()).await
}

/// [`run`], notifying systemd through `notifier`: `READY=1` at once (the listener is bound and the database
/// open: the caller did both), then `WATCHDOG=1` and `STATUS=` from a task, `STOPPING=1` when
/// `shutdown` completes.
pub async fn run_notifying(
    listener: impl Into<Listening>,
    state: AppState,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
    notifier: Notifier,
) -> Result<(), ServeError> {
    let Listening { tcp: listener, tls } = listener.into();
    let status = Status {
        addr: listener.local_addr().ok(),
        ingest: state.ingest.clone(),
    };
    notifier.notify(&[State::Ready, State::Status(&status.line())]);
    let keepalive = tokio::spawn(keepalive(notifier.clone(), state.db.read.clone(), status));
    let pruner = tokio::spawn(prune(state.clone()));
    let _stop_pruner = AbortOnDrop::new(&pruner);
    // Stopped with the server; a pass cut off rolls back and is made again at the next start.
    let alerter = state.alerts.clone().map(|alerter| {
        let clock = state.clock.clone();
        tokio::spawn(alerter.run(clock, std::future::pending()))
    });
    let _stop_alerter = alerter.map(|task| AbortOnDrop::new(&task));
    // The task ends with the server however the server ends.
    let _stop_keepalive = AbortOnDrop::new(&keepalive);
    let stop_keepalive = keepalive.abort_handle();
    let (stopping, stop_began) = tokio::sync::oneshot::channel();
    let shutdown = async move {
        shutdown.await;
        stop_keepalive.abort();
        notifier.notify(&[
            State::Stopping,
            State::Status("stopping: finishing the requests in flight"),
        ]);
        let _ = stopping.send(());
    };
    let connections = ConnectionLimits {
        idle: limits.idle,
        header_timeout: limits.header_timeout,
        max_connections: limits.max_connections,
        per_client: limits.per_client,
    };
    let server = accept::serve(listener, api::app(state), connections, tls, shutdown);
    // The graceful shutdown waits for every connection to end; the grace bounds that.
    let grace_over = async {
        match stop_began.await {
            Ok(()) => tokio::time::sleep(limits.shutdown_grace).await,
            // The server ended without a stop signal: the select has its result already.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = server => Ok(()),
        () = grace_over => {
            tracing::warn!(
                "requests still in flight {} s after the stop signal: closing their connections \
                 (a probe sends an unanswered report again)",
                limits.shutdown_grace.as_secs()
            );
            Ok(())
        }
    }
}

/// How often the status line is refreshed when systemd has no watchdog for the collector.
pub const STATUS_EVERY: Duration = Duration::from_secs(30);

/// The longest a watchdog check of the database may take (less when the ping period is short).
const CHECK_TIMEOUT_MAX: Duration = Duration::from_secs(10);

/// The status line's figures.
struct Status {
    addr: Option<SocketAddr>,
    ingest: Arc<IngestCounters>,
}

impl Status {
    fn line(&self) -> String {
        let stored = self.ingest.reports(IngestOutcome::Stored);
        let s = if stored == 1 { "" } else { "s" };
        match self.addr {
            Some(addr) => {
                format!("serving on http://{addr}; {stored} report{s} stored since start")
            }
            None => format!("serving; {stored} report{s} stored since start"),
        }
    }
}

/// Pings systemd's watchdog at half its period while the database answers, and keeps the
/// status line current. Runs until aborted.
/// Between two passes of the pruner over every server.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Deletes what is older than the retention: steps back to back while a pass finds work (a
/// backlog goes at the writer's pace, interleaved with reports), then a pause.
async fn prune(state: AppState) {
    loop {
        match state
            .db
            .reports
            .prune(state.retention, state.clock.now_ms())
            .await
        {
            Ok(pruned) if !pruned.done => continue,
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "pruning failed; trying again later"),
        }
        tokio::time::sleep(PRUNE_EVERY).await;
    }
}

async fn keepalive(notifier: Notifier, read: AnyPool, status: Status) {
    if !notifier.is_active() {
        return;
    }
    let every = notifier.watchdog_ping_every().unwrap_or(STATUS_EVERY);
    let timeout = (every / 2).min(CHECK_TIMEOUT_MAX);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut healthy = true;
    loop {
        tick.tick().await;
        match database_answers(&read, timeout).await {
            Ok(()) => {
                if !healthy {
                    tracing::info!("the database answers again");
                    healthy = true;
                }
                let line = status.line();
                match notifier.watchdog_period() {
                    Some(_) => notifier.notify(&[State::Watchdog, State::Status(&line)]),
                    None => notifier.status(&line),
                }
            }
            Err(e) => {
                if healthy {
                    tracing::error!(
                        "the database does not answer ({e}): no watchdog ping, systemd \
                         restarts the collector if this lasts"
                    );
                    healthy = false;
                }
                notifier.status(&format!("the database does not answer: {e}"));
            }
        }
    }
}

/// `SELECT 1` on a read connection within `timeout`: the pool hands out a connection and its
/// worker runs a statement.
async fn database_answers(read: &AnyPool, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(read)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("SELECT 1 took over {} ms", timeout.as_millis())),
    }
}

/// SIGHUP would end the collector (its default action): a habit of log rotation scripts and
/// of `kill -HUP` to reload. With TLS it reads the certificate and key again (a renewal);
/// otherwise there is no file to read again, and it says so and goes on. The task ends with
/// the runtime.
pub fn explain_hangups(tls: Option<Arc<Tls>>, config: Option<(std::path::PathBuf, SharedConfig)>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangups) => {
                tokio::spawn(async move {
                    while hangups.recv().await.is_some() {
                        if let Some((path, shared)) = &config {
                            reload_config(path, shared);
                        }
                        let Some(tls) = &tls else {
                            if config.is_none() {
                                tracing::info!(
                                    "SIGHUP: nothing to reload (settings come from the command \
                                     line and the environment; restart the collector to change \
                                     them)"
                                );
                            }
                            continue;
                        };
                        match tls.reload() {
                            Ok(()) => tracing::info!(
                                cert = %tls.cert_path().display(),
                                "SIGHUP: TLS certificate and key loaded again; new connections use them"
                            ),
                            Err(e) => tracing::error!("SIGHUP: {e}; the certificate in use stays"),
                        }
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP"),
        }
    }
}

/// Reads the config file again; a file that is refused leaves the running config as it was.
pub fn reload_config(path: &std::path::Path, shared: &SharedConfig) {
    match CollectorConfig::load(path) {
        Ok(config) => {
            let summary = config.summary();
            crate::ingest::set_merge_gap(config.merge_gap);
            *shared.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
            tracing::info!("SIGHUP: {} loaded again: {summary}", path.display());
        }
        Err(e) => tracing::error!("SIGHUP: {e}; the running configuration stays"),
    }
}

/// Completes on SIGTERM (systemd, docker stop) or Ctrl-C. If the signals cannot be watched,
/// it says so and never completes: the collector serves on, stopped by SIGKILL only.
pub async fn shutdown_signal() {
    match causeway_service::stop_signal().await {
        Ok(name) => tracing::info!("{name}: shutting down"),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM and Ctrl-C");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use tokio::net::UnixDatagram;

    use super::*;
    use crate::clock::Clock;
    use crate::db::Db;

    /// A socket standing in for systemd's: what the collector sends, one datagram at a time.
    struct FakeSystemd {
        socket: UnixDatagram,
        path: PathBuf,
    }

    impl FakeSystemd {
        fn bind(dir: &Path) -> FakeSystemd {
            let path = dir.join("notify");
            FakeSystemd {
                socket: UnixDatagram::bind(&path).unwrap(),
                path,
            }
        }

        fn systemd(&self, watchdog: Option<Duration>) -> Notifier {
            let notifier = Notifier::to_socket(&self.path);
            match watchdog {
                Some(period) => notifier.with_watchdog(period),
                None => notifier,
            }
        }

        /// The next datagram, or `None` after `wait`.
        async fn next(&self, wait: Duration) -> Option<String> {
            let mut buf = vec![0; 4096];
            let n = tokio::time::timeout(wait, self.socket.recv(&mut buf))
                .await
                .ok()?
                .unwrap();
            Some(String::from_utf8(buf[..n].to_vec()).unwrap())
        }

        /// Datagrams until one has the line `line` (returned), failing after `wait`.
        async fn until(&self, line: &str, wait: Duration) -> String {
            self.until_with(|m| m.lines().any(|l| l == line), line, wait)
                .await
        }

        /// Datagrams until one is `wanted` (returned), failing after `wait`.
        async fn until_with(
            &self,
            wanted: impl Fn(&str) -> bool,
            what: &str,
            wait: Duration,
        ) -> String {
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let Some(msg) = self.next(left).await else {
                    panic!("no {what:?} within {wait:?}");
                };
                if wanted(&msg) {
                    return msg;
                }
            }
        }
    }

    async fn state(dir: &Path) -> AppState {
        AppState {
            alerts: None,
            db: Db::open(&dir.join("c.db")).await.unwrap(),
            clock: Clock::system(),
            max_body: 1 << 20,
            body_timeout: crate::api::BODY_TIMEOUT,
            ingest: Default::default(),
            retention: Default::default(),
            tokens: Default::default(),
            access: std::sync::Arc::new(crate::access::Access::new(crate::access::Mode::Open)),
        }
    }

    /// Runs the server with `systemd` until the returned sender is used or dropped.
    async fn serve(
        state: AppState,
        systemd: Notifier,
    ) -> (
        SocketAddr,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<Result<(), ServeError>>,
    ) {
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let server = tokio::spawn(run_notifying(
            listener,
            state,
            Limits::default(),
            shutdown,
            systemd,
        ));
        (addr, stop, server)
    }

    const WAIT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn ready_status_pings_and_stopping() {
        let dir = tempfile::tempdir().unwrap();
        let systemd = FakeSystemd::bind(dir.path());
        let state = state(dir.path()).await;
        let (db, ingest) = (state.db.clone(), state.ingest.clone());
        let watchdog = Duration::from_millis(400);
        let (addr, stop, server) = serve(state, systemd.systemd(Some(watchdog))).await;

        let ready = systemd.next(WAIT).await.unwrap();
        assert_eq!(
            ready,
            format!("READY=1\nSTATUS=serving on http://{addr}; 0 reports stored since start\n")
        );
        // Pings at half the period, each with the status.
        let started = tokio::time::Instant::now();
        for _ in 0..3 {
            let ping = systemd.until("WATCHDOG=1", WAIT).await;
            assert!(ping.contains("STATUS=serving on http://"), "{ping}");
        }
        assert!(started.elapsed() >= watchdog / 2, "{:?}", started.elapsed());
        // The status counts stored reports.
        ingest.report(IngestOutcome::Stored);
        ingest.report(IngestOutcome::Duplicate);
        let counted =
            format!("WATCHDOG=1\nSTATUS=serving on http://{addr}; 1 report stored since start\n");
        systemd.until_with(|m| m == counted, &counted, WAIT).await;

        stop.send(()).unwrap();
        let stopping = systemd.until("STOPPING=1", WAIT).await;
        assert!(stopping.contains("STATUS=stopping"), "{stopping}");
        server.await.unwrap().unwrap();
        // Nothing after STOPPING=1: the pings stopped with the server.
        assert_eq!(systemd.next(watchdog).await, None);
        db.close().await;
    }

    #[tokio::test]
    async fn a_wedged_database_stops_the_pings_until_it_answers() {
        let dir = tempfile::tempdir().unwrap();
        let systemd = FakeSystemd::bind(dir.path());
        let state = state(dir.path()).await;
        let db = state.db.clone();
        let watchdog = Duration::from_millis(400);
        let (_addr, stop, server) = serve(state, systemd.systemd(Some(watchdog))).await;
        systemd.until("READY=1", WAIT).await;
        systemd.until("WATCHDOG=1", WAIT).await;

        // Every read connection taken and held: `SELECT 1` cannot run.
        let max = db.read.options().get_max_connections();
        let mut held = Vec::new();
        for _ in 0..max {
            held.push(db.read.acquire().await.unwrap());
        }
        let status = systemd
            .until(
                "STATUS=the database does not answer: SELECT 1 took over 100 ms",
                WAIT,
            )
            .await;
        assert!(!status.contains("WATCHDOG=1"), "{status}");
        // Several periods without a ping: systemd would have restarted the collector.
        let quiet = tokio::time::Instant::now() + watchdog * 2;
        while let Some(msg) = systemd
            .next(quiet.saturating_duration_since(tokio::time::Instant::now()))
            .await
        {
            assert!(!msg.contains("WATCHDOG=1"), "a ping while wedged: {msg}");
        }

        drop(held);
        let ping = systemd.until("WATCHDOG=1", WAIT).await;
        assert!(ping.contains("STATUS=serving on"), "{ping}");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        db.close().await;
    }

    #[tokio::test]
    async fn without_a_watchdog_only_the_status() {
        let dir = tempfile::tempdir().unwrap();
        let systemd = FakeSystemd::bind(dir.path());
        let state = state(dir.path()).await;
        let db = state.db.clone();
        let (_addr, stop, server) = serve(state, systemd.systemd(None)).await;
        assert!(systemd.next(WAIT).await.unwrap().starts_with("READY=1\n"));
        // The first refresh comes at once, the next after STATUS_EVERY.
        let first = systemd.next(WAIT).await.unwrap();
        assert!(first.starts_with("STATUS=serving on"), "{first}");
        assert_eq!(systemd.next(Duration::from_millis(300)).await, None);
        stop.send(()).unwrap();
        systemd.until("STOPPING=1", WAIT).await;
        server.await.unwrap().unwrap();
        db.close().await;
    }

    #[tokio::test]
    async fn without_a_socket_nothing_is_sent() {
        let dir = tempfile::tempdir().unwrap();
        let state = state(dir.path()).await;
        let db = state.db.clone();
        let (addr, stop, server) = serve(state, Notifier::disabled()).await;
        let answer = tokio::net::TcpStream::connect(addr).await;
        assert!(answer.is_ok(), "{answer:?}");
        stop.send(()).unwrap();
        server.await.unwrap().unwrap();
        db.close().await;
    }
}
