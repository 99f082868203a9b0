//! The service: a cycle every `interval`, each report spooled, and an uploader task that drains
//! the spool on its own, so a dead collector never delays a check.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use causeway_schema::Report;
use tokio::sync::{Notify, watch};
use tokio::time::MissedTickBehavior;

use crate::checks::dns::{DnsTransport, HickoryTransport};
use crate::checks::http::{HttpChecker, HttpTransport};
use crate::config::{Config, format_duration};
use crate::cycle::{Prober, summary};
use crate::spool::{Spool, SpoolError};
use crate::upload::{Backoff, UploadError, UploadOutcome, Uploader};

/// How long the last upload attempt on shutdown may take: systemd's stop timeout is 90 s by
/// default, and a cycle may still have been running.
pub const FINAL_UPLOAD: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Spool(#[from] SpoolError),
    #[error(transparent)]
    Upload(#[from] UploadError),
    #[error("cannot listen for signals: {0}")]
    Signal(std::io::Error),
}

/// The spool, shared by the cycle loop (writes) and the uploader (reads and removes). Every
/// use goes through [`with_spool`], off the async threads: fsync can take a while.
pub type SharedSpool = Arc<Mutex<Spool>>;

/// Everything the service loop needs; the transports are parameters so tests can fake them.
pub struct Service<D, H> {
    pub prober: Prober<D, H>,
    pub spool: SharedSpool,
    pub uploader: Uploader,
    pub final_upload: Duration,
}

impl Service<HickoryTransport, HttpChecker> {
    /// The real service for a config: opens the spool, builds the clients.
    pub fn from_config(config: Config) -> Result<Self, RunError> {
        let spool = Spool::open(&config.spool_dir, config.spool_max_reports)?;
        let uploader = Uploader::new(&config.collector_url, &config.token)?;
        let prober = Prober::on_host(Arc::new(config));
        Ok(Service {
            prober,
            spool: Arc::new(Mutex::new(spool)),
            uploader,
            final_upload: FINAL_UPLOAD,
        })
    }
}

impl<D: DnsTransport + 'static, H: HttpTransport + 'static> Service<D, H> {
    /// Runs until `shutdown` turns true; then finishes the cycle in flight, makes one last
    /// upload attempt and returns. Whatever was not uploaded stays in the spool.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), RunError> {
        let config = self.prober.config.clone();
        let pending = with_spool(&self.spool, |s| s.pending()).await?.len();
        tracing::info!(
            "starting: server {}, {}, collector {}, {pending} report(s) waiting in {}",
            config.server,
            config.summary(),
            self.uploader.url(),
            config.spool_dir.display(),
        );

        let wake = Arc::new(Notify::new());
        let (stop_uploader, uploader_stopped) = watch::channel(false);
        let uploader = tokio::spawn(upload_loop(
            self.spool.clone(),
            self.uploader.clone(),
            wake.clone(),
            Backoff::for_interval(config.interval),
            uploader_stopped,
        ));
        // Reports left by a previous run (crash, outage) go first.
        wake.notify_one();

        let mut ticker = tokio::time::interval(config.interval);
        // A cycle that overran its interval is followed by the next tick, not a burst.
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                biased;
                () = signalled(&mut shutdown) => break,
                _ = ticker.tick() => {}
            }
            // Not raced against the signal: a cycle in flight is finished and spooled.
            let report = self.prober.cycle().await;
            tracing::info!("{}", summary(&report));
            match spool_report(&self.spool, report).await {
                Ok(_) => wake.notify_one(),
                Err(e) => tracing::error!("this cycle's report is lost: {e}"),
            }
        }

        tracing::info!("stopping: one last upload attempt");
        let _ = stop_uploader.send(true);
        let _ = uploader.await;
        let mut backoff = Backoff::for_interval(config.interval);
        let last = tokio::time::timeout(
            self.final_upload,
            drain(&self.spool, &self.uploader, &mut backoff),
        )
        .await;
        let left = with_spool(&self.spool, |s| s.pending()).await?.len();
        match last {
            Err(_) if left > 0 => tracing::warn!(
                "last upload attempt took longer than {}; {left} report(s) stay in the spool",
                format_duration(self.final_upload)
            ),
            _ if left > 0 => {
                tracing::info!("{left} report(s) stay in the spool for the next start")
            }
            _ => tracing::info!("spool empty"),
        }
        Ok(())
    }
}

/// Writes a report to the spool; returns its file name.
pub async fn spool_report(spool: &SharedSpool, mut report: Report) -> Result<String, SpoolError> {
    with_spool(spool, move |s| s.push(&mut report)).await
}

/// Runs `f` on the spool on a blocking thread.
pub async fn with_spool<T: Send + 'static>(
    spool: &SharedSpool,
    f: impl FnOnce(&mut Spool) -> T + Send + 'static,
) -> T {
    let spool = spool.clone();
    tokio::task::spawn_blocking(move || f(&mut spool.lock().unwrap_or_else(|p| p.into_inner())))
        .await
        .expect("spool operation panicked")
}

/// Waits until the flag is true. A dropped sender means nobody can ask us to stop: wait forever.
async fn signalled(rx: &mut watch::Receiver<bool>) {
    if rx.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The uploader task: drains the spool when woken, backs off while the collector fails.
async fn upload_loop(
    spool: SharedSpool,
    uploader: Uploader,
    wake: Arc<Notify>,
    mut backoff: Backoff,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            biased;
            () = signalled(&mut stop) => return,
            () = wake.notified() => {}
        }
        loop {
            let drained = tokio::select! {
                biased;
                () = signalled(&mut stop) => return,
                drained = drain(&spool, &uploader, &mut backoff) => drained,
            };
            if drained {
                break;
            }
            let delay = backoff.next_delay();
            tracing::info!("next upload attempt in {}", format_duration(delay));
            tokio::select! {
                biased;
                () = signalled(&mut stop) => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }
}

/// Uploads waiting reports, strictly oldest first, until the spool is empty (true) or an
/// upload must be retried later (false).
async fn drain(spool: &SharedSpool, uploader: &Uploader, backoff: &mut Backoff) -> bool {
    loop {
        let next = with_spool(spool, |s| {
            let name = s.oldest()?;
            s.set_in_flight(name.clone());
            Ok::<_, SpoolError>(name.map(|n| {
                let bytes = s.read(&n);
                (n, bytes)
            }))
        })
        .await;
        let (name, bytes) = match next {
            Ok(Some(next)) => next,
            Ok(None) => return true,
            Err(e) => {
                tracing::error!("cannot look into the spool: {e}");
                return false;
            }
        };
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                // An unreadable file would block the queue forever: set it aside.
                tracing::error!("cannot read spooled report {name}: {e}; moving it aside");
                set_aside(spool, &name).await;
                continue;
            }
        };
        let outcome = uploader.upload(bytes).await;
        match outcome {
            UploadOutcome::Acked => {
                backoff.reset();
                let n = name.clone();
                if let Err(e) = with_spool(spool, move |s| {
                    s.set_in_flight(None);
                    s.ack(&n)
                })
                .await
                {
                    // It will be sent again; the collector stores a report id once.
                    tracing::error!("uploaded {name} but cannot remove it: {e}");
                    return false;
                }
                tracing::debug!("uploaded {name}");
            }
            UploadOutcome::Rejected(message) => {
                tracing::error!(
                    "the collector rejected report {name} for good: {message}; it is kept in the spool's rejected/ directory and not sent again"
                );
                set_aside(spool, &name).await;
            }
            UploadOutcome::Unauthorized(message) => {
                not_in_flight(spool).await;
                tracing::error!(
                    "the collector refused our token ({message}): the token is wrong or belongs to another server; reports are kept and sent again"
                );
                return false;
            }
            UploadOutcome::Retry(message) => {
                not_in_flight(spool).await;
                tracing::warn!("upload of {name} failed, will retry: {message}");
                return false;
            }
        }
    }
}

/// The upload is over: during a long outage the oldest report may be dropped like any other
/// when the spool is full.
async fn not_in_flight(spool: &SharedSpool) {
    with_spool(spool, |s| s.set_in_flight(None)).await;
}

async fn set_aside(spool: &SharedSpool, name: &str) {
    let n = name.to_owned();
    match with_spool(spool, move |s| {
        s.set_in_flight(None);
        s.reject(&n)
    })
    .await
    {
        Ok(path) => tracing::error!("moved {name} to {}", path.display()),
        Err(e) => tracing::error!("cannot move {name} out of the queue: {e}"),
    }
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() -> Result<&'static str, RunError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signal)?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;
    use crate::config::HostInfo;

    /// A canary page that always answers 200 "canary-ok".
    async fn canary_site() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = conn.read(&mut buf).await;
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\ncanary-ok")
                        .await;
                });
            }
        });
        port
    }

    /// A collector answering `status` to every report; it sends each body it received.
    async fn collector(status: u16) -> (String, mpsc::UnboundedReceiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head_end, len) = loop {
                        let n = conn.read(&mut chunk).await.unwrap();
                        assert!(n > 0, "request cut short");
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map(|v| v.trim().parse().unwrap())
                                .unwrap_or(0);
                            break (i + 4, len);
                        }
                    };
                    while buf.len() < head_end + len {
                        let n = conn.read(&mut chunk).await.unwrap();
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    conn.write_all(answer.as_bytes()).await.unwrap();
                    let _ = tx.send(buf[head_end..].to_vec());
                });
            }
        });
        (url, rx)
    }

    fn service(
        collector_url: &str,
        canary_port: u16,
        spool_dir: &Path,
    ) -> Service<HickoryTransport, HttpChecker> {
        crate::install_crypto_provider();
        let text = format!(
            r#"
collector_url = "{collector_url}"
token = "cw_test"
server = "web-01"
interval = "1s"
timeout = "500ms"
spool_dir = "{}"

[[canary]]
name = "site"
url = "http://127.0.0.1:{canary_port}/"
expect_text = "canary-ok"
"#,
            spool_dir.display()
        );
        let config = Config::parse(&text, &HostInfo::default()).unwrap();
        let mut service = Service::from_config(config).unwrap();
        service.final_upload = Duration::from_secs(2);
        service
    }

    /// A service loop running in a task, with the switch that stops it.
    struct Running {
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<Result<(), RunError>>,
    }

    impl Running {
        fn start(svc: Service<HickoryTransport, HttpChecker>) -> Running {
            let (stop, stop_rx) = watch::channel(false);
            Running {
                stop,
                task: tokio::spawn(svc.run(stop_rx)),
            }
        }

        /// Asks the loop to stop, as SIGTERM does, and waits for it to end cleanly.
        async fn stop(self) {
            self.stop.send(true).unwrap();
            tokio::time::timeout(Duration::from_secs(10), self.task)
                .await
                .expect("stops promptly")
                .unwrap()
                .unwrap();
        }
    }

    /// Waits for a condition, checking every 20 ms, failing after `limit`.
    async fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn spooled(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reports_reach_the_collector_and_leave_the_spool() {
        let tmp = tempfile::tempdir().unwrap();
        let site = canary_site().await;
        let (url, mut received) = collector(200).await;
        let running = Running::start(service(&url, site, tmp.path()));

        let body = tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .expect("a report within 10 s")
            .unwrap();
        let report: Report = serde_json::from_slice(&body).unwrap();
        assert_eq!(report.server, "web-01");
        assert_eq!(report.results.len(), 1);
        assert!(report.results[0].ok, "{report:?}");

        running.stop().await;
        // Every report the collector acknowledged left the spool; none is half-written.
        let left = spooled(tmp.path());
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_collector_delays_nothing_and_loses_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let site = canary_site().await;
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let running = Running::start(service(&dead, site, tmp.path()));
        // Cycles go on every second although every upload fails.
        let dir = tmp.path().to_owned();
        wait_until(Duration::from_secs(10), "3 spooled reports", || {
            spooled(&dir).len() >= 3
        })
        .await;
        running.stop().await;
        let waiting = spooled(tmp.path());
        assert!(waiting.len() >= 3);

        // The collector is back: a new start sends everything, oldest first, byte for byte.
        let stored: Vec<Vec<u8>> = waiting
            .iter()
            .map(|n| std::fs::read(tmp.path().join(n)).unwrap())
            .collect();
        let (url, mut received) = collector(200).await;
        let running = Running::start(service(&url, site, tmp.path()));
        for expected in &stored {
            let body = tokio::time::timeout(Duration::from_secs(10), received.recv())
                .await
                .expect("the backlog is sent")
                .unwrap();
            assert_eq!(&body, expected, "oldest first, the stored bytes");
        }
        running.stop().await;
        let report: Report = serde_json::from_slice(stored.last().unwrap()).unwrap();
        assert!(
            report.spool.queued >= 2,
            "the spool stats say reports were waiting"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_token_keeps_the_reports_and_retries() {
        let tmp = tempfile::tempdir().unwrap();
        let site = canary_site().await;
        let (url, mut received) = collector(401).await;
        let running = Running::start(service(&url, site, tmp.path()));
        let mut bodies = Vec::new();
        for _ in 0..2 {
            let body = tokio::time::timeout(Duration::from_secs(10), received.recv())
                .await
                .expect("an upload attempt within 10 s")
                .unwrap();
            bodies.push(body);
        }
        assert_eq!(
            bodies[0], bodies[1],
            "the same (oldest) report is sent again"
        );
        running.stop().await;
        assert!(!spooled(tmp.path()).is_empty(), "kept in the spool");
        assert!(!tmp.path().join("rejected").exists(), "not set aside");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rejected_reports_are_set_aside_not_retried() {
        let tmp = tempfile::tempdir().unwrap();
        let site = canary_site().await;
        let (url, mut received) = collector(422).await;
        let running = Running::start(service(&url, site, tmp.path()));
        tokio::time::timeout(Duration::from_secs(10), received.recv())
            .await
            .expect("a report within 10 s")
            .unwrap();
        let rejected = tmp.path().join("rejected");
        wait_until(Duration::from_secs(5), "a rejected report", || {
            rejected.is_dir() && !spooled(&rejected).is_empty()
        })
        .await;
        running.stop().await;
        let first = &spooled(&rejected)[0];
        assert!(!spooled(tmp.path()).contains(first), "moved, not copied");
    }
}
