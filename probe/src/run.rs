//! The service: a cycle every `interval`, each report spooled, and an uploader task
//! (`upload::drain`) that drains the spool on its own, so a dead collector never delays a
//! check.
//!
//! Around it: systemd notifications ([`Notifier`]: `READY=1` once running, `STATUS=` after
//! every cycle, `WATCHDOG=1` from the main loop (`watchdog`), `STOPPING=1` on shutdown) and
//! config reloads (`reload`: SIGHUP, between cycles; a bad file is refused and the running
//! config kept).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::checks::dns::{DnsChecks, HickoryTransport};
use crate::checks::http::{HttpCheck, HttpChecker};
use crate::config::{Config, format_duration};
use crate::cycle::{Prober, summary};
use crate::notify::Notifier;
use crate::privileges::Privileges;
use crate::signalled;
use crate::spool::{SharedSpool, Spool, SpoolError, spool_report, with_spool};
use crate::upload::drain::{drain, upload_loop};
use crate::upload::{Backoff, UploadError, Uploader};

mod reload;
mod watchdog;

pub use reload::{Reprobe, reload_on_sighup};
pub use watchdog::{CYCLE_ALLOWANCE_INTERVALS, MIN_CYCLE_ALLOWANCE, cycle_allowance};

use reload::reload_config;
use watchdog::Watchdog;

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

/// Everything the service loop needs; the transports are parameters so tests can fake them.
pub struct Service<D, H> {
    pub prober: Prober<D, H>,
    pub spool: SharedSpool,
    pub uploader: Uploader,
    pub final_upload: Duration,
    /// Tells the service manager how the service is doing; a no-op outside systemd.
    pub notifier: Notifier,
    /// The config file a reload reads again; without one a reload is refused.
    pub config_path: Option<PathBuf>,
    /// The least time a cycle in flight keeps the watchdog fed (see
    /// [`CYCLE_ALLOWANCE_INTERVALS`]).
    pub min_cycle_allowance: Duration,
}

impl Service<HickoryTransport, HttpChecker> {
    /// The real service for a config: opens the spool, builds the clients. No notifications
    /// and no config file until the caller sets them.
    pub fn from_config(config: Config) -> Result<Self, RunError> {
        let spool = Spool::open(&config.spool_dir, config.spool_max_reports)?;
        let uploader = Uploader::new(
            &config.collector_url,
            &config.token,
            config.collector_ca.as_deref(),
        )?;
        let prober = Prober::on_host(Arc::new(config));
        Ok(Service {
            prober,
            spool: Arc::new(Mutex::new(spool)),
            uploader,
            final_upload: FINAL_UPLOAD,
            notifier: Notifier::disabled(),
            config_path: None,
            min_cycle_allowance: MIN_CYCLE_ALLOWANCE,
        })
    }
}

/// What woke the main loop.
enum Next {
    Stop,
    Watchdog,
    Reload,
    Cycle,
}

impl<D: DnsChecks + 'static, H: HttpCheck + 'static> Service<D, H>
where
    Prober<D, H>: Reprobe,
{
    /// Runs until `shutdown` turns true; then finishes the cycle in flight, makes one last
    /// upload attempt and returns. Whatever was not uploaded stays in the spool. Each
    /// `reload` notification reads the config file again between cycles.
    pub async fn run(
        self,
        mut shutdown: watch::Receiver<bool>,
        reload: Arc<Notify>,
    ) -> Result<(), RunError> {
        let Service {
            mut prober,
            spool,
            uploader,
            final_upload,
            notifier,
            config_path,
            min_cycle_allowance,
        } = self;
        let config = prober.config.clone();
        let pending = with_spool(&spool, |s| s.pending()).await?.len();
        tracing::info!(
            "starting: server {}, {}, collector {}, {pending} report(s) waiting in {}",
            config.server,
            config.summary(),
            uploader.url(),
            config.spool_dir.display(),
        );
        Privileges::check(&config, &*prober.os).log();

        let wake = Arc::new(Notify::new());
        let (stop_uploader, uploader_stopped) = watch::channel(false);
        let (uploaders, uploader_rx) = watch::channel(uploader);
        let upload_task = tokio::spawn(upload_loop(
            spool.clone(),
            uploader_rx,
            wake.clone(),
            Backoff::for_interval(config.interval),
            uploader_stopped,
        ));
        // Reports left by a previous run (crash, outage) go first.
        wake.notify_one();

        let mut ticker = cycle_ticker(config.interval, Instant::now());
        let mut dog = Watchdog::new(&notifier);
        if let Some(period) = notifier.watchdog_period() {
            tracing::info!(
                "watchdog on: {} (WATCHDOG_USEC), fed every {}",
                format_duration(period),
                format_duration(period / 2)
            );
        }
        notifier.ready();
        loop {
            let next = tokio::select! {
                biased;
                () = signalled(&mut shutdown) => Next::Stop,
                () = dog.tick() => Next::Watchdog,
                () = reload.notified() => Next::Reload,
                _ = ticker.tick() => Next::Cycle,
            };
            let allowance = cycle_allowance(prober.config.interval, min_cycle_allowance);
            match next {
                Next::Stop => break,
                Next::Watchdog => notifier.watchdog(),
                Next::Reload => {
                    let interval = prober.config.interval;
                    let path = config_path.as_deref();
                    let reloading = reload_config(prober, path, &uploaders, &notifier);
                    prober = dog
                        .feed_while(allowance, "a config reload", reloading)
                        .await;
                    if prober.config.interval != interval {
                        // The new interval counts from now.
                        let first = Instant::now() + prober.config.interval;
                        ticker = cycle_ticker(prober.config.interval, first);
                    }
                }
                Next::Cycle => {
                    // Not raced against the signal: a cycle in flight is finished and spooled.
                    let cycle = async {
                        let report = prober.cycle().await;
                        let line = summary(&report);
                        tracing::info!("{line}");
                        notifier.status(&format!("{}: {line}", prober.config.server));
                        match spool_report(&spool, report).await {
                            Ok(_) => wake.notify_one(),
                            Err(e) => tracing::error!(
                                "this cycle's report is lost: {e}; counted in the spool's \
                                 dropped_total, which the next report carries"
                            ),
                        }
                    };
                    dog.feed_while(allowance, "a cycle", cycle).await;
                }
            }
        }

        notifier.stopping();
        tracing::info!("stopping: one last upload attempt");
        let _ = stop_uploader.send(true);
        let _ = upload_task.await;
        let config = prober.config.clone();
        let uploader = uploaders.borrow().clone();
        let mut backoff = Backoff::for_interval(config.interval);
        let last = tokio::time::timeout(final_upload, drain(&spool, &uploader, &mut backoff)).await;
        let left = with_spool(&spool, |s| s.pending()).await?.len();
        match last {
            Err(_) if left > 0 => tracing::warn!(
                "last upload attempt took longer than {}; {left} report(s) stay in the spool",
                format_duration(final_upload)
            ),
            _ if left > 0 => {
                tracing::info!("{left} report(s) stay in the spool for the next start")
            }
            _ => tracing::info!("spool empty"),
        }
        Ok(())
    }
}

/// The cycle ticker: first tick at `first`, then every `interval`. A cycle that overran its
/// interval is followed by the next tick, not a burst.
fn cycle_ticker(interval: Duration, first: Instant) -> Interval {
    let mut ticker = tokio::time::interval_at(first, interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    ticker
}

/// Resolves when SIGTERM or SIGINT arrives.
pub async fn shutdown_signal() -> Result<&'static str, RunError> {
    causeway_service::stop_signal()
        .await
        .map_err(RunError::Signal)
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Instant;

    use causeway_schema::Report;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;
    use crate::config::HostInfo;
    use causeway_service::notify::testing::FakeManager;

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

    /// A /proc of a calm host (recorded files), so that a test of the service loop never
    /// reads the real host's load: on a busy machine that made `host_overload` (issue 18).
    fn calm_proc(dir: &Path) -> std::path::PathBuf {
        macro_rules! fixture {
            ($name:literal) => {
                include_str!(concat!("../tests/fixtures/host/", $name))
            };
        }
        let proc = dir.join("proc");
        std::fs::create_dir_all(proc.join("pressure")).unwrap();
        std::fs::create_dir_all(proc.join("sys/kernel/random")).unwrap();
        for (name, text) in [
            (
                "sys/kernel/random/boot_id",
                "6fa2d3c2-7c64-4bb6-a3f6-0b5fd0a0f2e1\n",
            ),
            ("uptime", "350735.47 2343888.90\n"),
            ("meminfo", fixture!("meminfo-healthy.txt")),
            ("loadavg", fixture!("loadavg.txt")),
            ("stat", fixture!("stat.txt")),
            ("pressure/cpu", fixture!("pressure-cpu.txt")),
            ("pressure/memory", fixture!("pressure-memory.txt")),
            ("pressure/io", fixture!("pressure-io.txt")),
        ] {
            std::fs::write(proc.join(name), text).unwrap();
        }
        proc
    }

    /// The config of the test service: canary `http://127.0.0.1:<canary_port>/` expecting
    /// `expect_text`, spool in `spool_dir`, state and a calm /proc ([`calm_proc`]) in it.
    fn config_text(
        collector_url: &str,
        canary_port: u16,
        spool_dir: &Path,
        expect_text: &str,
    ) -> String {
        let proc_root = calm_proc(spool_dir);
        format!(
            r#"
collector_url = "{collector_url}"
token = "cw_test"
server = "web-01"
interval = "1s"
timeout = "500ms"
spool_dir = "{}"
state_dir = "{}"

[host]
kernel_log = false
proc_root = "{}"

[[canary]]
name = "site"
url = "http://127.0.0.1:{canary_port}/"
expect_text = "{expect_text}"
"#,
            spool_dir.display(),
            spool_dir.join("state").display(),
            proc_root.display(),
        )
    }

    fn service(
        collector_url: &str,
        canary_port: u16,
        spool_dir: &Path,
    ) -> Service<HickoryTransport, HttpChecker> {
        crate::install_crypto_provider();
        let text = config_text(collector_url, canary_port, spool_dir, "canary-ok");
        let config = Config::parse(&text, &HostInfo::default()).unwrap();
        let mut service = Service::from_config(config).unwrap();
        service.final_upload = Duration::from_secs(2);
        service
    }

    /// A service loop running in a task, with the switches that stop and reload it.
    struct Running {
        stop: watch::Sender<bool>,
        reload: Arc<Notify>,
        task: tokio::task::JoinHandle<Result<(), RunError>>,
    }

    impl Running {
        fn start<D, H>(svc: Service<D, H>) -> Running
        where
            D: DnsChecks + 'static,
            H: HttpCheck + 'static,
            Prober<D, H>: Reprobe,
        {
            let (stop, stop_rx) = watch::channel(false);
            let reload = Arc::new(Notify::new());
            Running {
                stop,
                reload: reload.clone(),
                task: tokio::spawn(svc.run(stop_rx, reload)),
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

    /// The next datagram the fake service manager got (within 5 s).
    fn next_note(manager: &FakeManager) -> String {
        tokio::task::block_in_place(|| manager.recv())
    }

    /// The next datagram that is not a watchdog ping or a cycle's status.
    fn next_event(manager: &FakeManager) -> String {
        loop {
            let note = next_note(manager);
            if note != "WATCHDOG=1\n" && !note.starts_with("STATUS=web-01: cycle: ") {
                return note;
            }
        }
    }

    /// The next report the collector got that started after `after_ms`.
    async fn report_after(
        received: &mut mpsc::UnboundedReceiver<Vec<u8>>,
        after_ms: i64,
    ) -> Report {
        loop {
            let body = tokio::time::timeout(Duration::from_secs(10), received.recv())
                .await
                .expect("a report within 10 s")
                .unwrap();
            let report: Report = serde_json::from_slice(&body).unwrap();
            if report.started_at_ms > after_ms {
                return report;
            }
        }
    }

    /// A service reading its config from a file in `dir`, notifying `manager`.
    fn service_from_file(
        path: &Path,
        text: &str,
        manager: &FakeManager,
    ) -> Service<HickoryTransport, HttpChecker> {
        crate::install_crypto_provider();
        std::fs::write(path, text).unwrap();
        let mut service = Service::from_config(Config::load(path).unwrap()).unwrap();
        service.final_upload = Duration::from_secs(2);
        service.notifier = Notifier::to_socket(&manager.path);
        service.config_path = Some(path.to_owned());
        service
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_service_manager_hears_ready_status_watchdog_and_stopping() {
        let tmp = tempfile::tempdir().unwrap();
        let site = canary_site().await;
        let (url, _received) = collector(200).await;
        let manager = FakeManager::new();
        let mut svc = service(&url, site, tmp.path());
        svc.notifier = Notifier::to_socket(&manager.path).with_watchdog(Duration::from_millis(400));
        let running = Running::start(svc);

        assert_eq!(next_note(&manager), "READY=1\n", "ready first");
        let (mut pings, mut status) = (0, None);
        while pings < 2 || status.is_none() {
            match next_note(&manager) {
                n if n == "WATCHDOG=1\n" => pings += 1,
                n if n.starts_with("STATUS=") => status = Some(n),
                n => panic!("unexpected {n:?}"),
            }
        }
        assert_eq!(
            status.unwrap(),
            "STATUS=web-01: cycle: 1/1 checks ok\n",
            "the cycle's summary line, for the server"
        );

        running.stop().await;
        let mut after = Vec::new();
        manager.sock.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        while let Ok(n) = manager.sock.recv(&mut buf) {
            after.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        assert_eq!(
            after.last().map(String::as_str),
            Some("STOPPING=1\n"),
            "{after:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_broken_config_on_reload_is_refused_and_the_running_one_goes_on() {
        let tmp = tempfile::tempdir().unwrap();
        let site = canary_site().await;
        let (url, mut received) = collector(200).await;
        let manager = FakeManager::new();
        let path = tmp.path().join("probe.toml");
        let text = config_text(&url, site, tmp.path(), "canary-ok");
        let running = Running::start(service_from_file(&path, &text, &manager));
        assert_eq!(next_event(&manager), "READY=1\n");
        assert!(report_after(&mut received, 0).await.results[0].ok);

        std::fs::write(
            &path,
            text.replace("interval = \"1s\"", "interval = \"soon\""),
        )
        .unwrap();
        let reloaded = crate::now_ms();
        running.reload.notify_one();
        let reloading = next_event(&manager);
        assert!(
            reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
            "{reloading:?}"
        );
        let refused = next_event(&manager);
        let expected = format!(
            "STATUS=web-01: config reload refused, keeping the running config: {}: interval:",
            path.display()
        );
        assert!(refused.starts_with(&expected), "{refused:?}");
        assert_eq!(next_event(&manager), "READY=1\n");

        // Checks go on with the running config.
        for _ in 0..2 {
            let report = report_after(&mut received, reloaded).await;
            assert!(report.results[0].ok, "{report:?}");
        }
        // A file that cannot be read is refused the same way.
        std::fs::remove_file(&path).unwrap();
        running.reload.notify_one();
        assert!(next_event(&manager).starts_with("RELOADING=1\n"));
        let refused = next_event(&manager);
        assert!(refused.contains("cannot read the file"), "{refused:?}");
        assert_eq!(next_event(&manager), "READY=1\n");
        running.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_good_config_on_reload_replaces_the_prober_and_the_uploader_not_the_spool() {
        let tmp = tempfile::tempdir().unwrap();
        let site = canary_site().await;
        let (url, mut received) = collector(200).await;
        let manager = FakeManager::new();
        let path = tmp.path().join("probe.toml");
        let text = config_text(&url, site, tmp.path(), "canary-ok");
        let running = Running::start(service_from_file(&path, &text, &manager));
        assert_eq!(next_event(&manager), "READY=1\n");
        assert!(report_after(&mut received, 0).await.results[0].ok);

        // Another collector, text the page lacks, another spool directory.
        let (url2, mut received2) = collector(200).await;
        let other_spool = tmp.path().join("other-spool");
        let spool_line = format!("spool_dir = \"{}\"", tmp.path().display());
        let new_text = text
            .replace(&url, &url2)
            .replace("canary-ok", "not-on-the-page")
            .replace(
                &spool_line,
                &format!("spool_dir = \"{}\"", other_spool.display()),
            );
        assert_ne!(new_text, text);
        std::fs::write(&path, &new_text).unwrap();
        let reloaded = crate::now_ms();
        running.reload.notify_one();
        assert!(next_event(&manager).starts_with("RELOADING=1\n"));
        assert_eq!(next_event(&manager), "READY=1\n", "no refusal in between");

        let report = report_after(&mut received2, reloaded).await;
        let result = &report.results[0];
        assert!(!result.ok, "{report:?}");
        assert_eq!(result.cause().map(|c| c.id()), Some("content_mismatch"));
        running.stop().await;
        assert!(
            !other_spool.exists(),
            "the spool stays where it was until a restart"
        );
    }

    /// An HTTP transport whose requests never end: a hung cycle.
    struct Hang;

    impl crate::checks::Check<crate::checks::http::Fetch> for Hang {
        type Outcome = crate::checks::http::HttpOutcome;

        fn run(
            &self,
            _: crate::checks::http::Fetch,
            _: tokio::time::Instant,
        ) -> impl Future<Output = Self::Outcome> + Send {
            std::future::pending()
        }
    }

    impl Reprobe for Prober<HickoryTransport, Hang> {
        fn reprobe(mut self, config: Arc<Config>) -> Self {
            self.config = config;
            self
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_cycle_is_fed_for_its_allowance_and_then_starves_the_watchdog() {
        crate::install_crypto_provider();
        let tmp = tempfile::tempdir().unwrap();
        let manager = FakeManager::new();
        let sock = tokio::net::UnixDatagram::from_std({
            manager.sock.set_nonblocking(true).unwrap();
            manager.sock.try_clone().unwrap()
        })
        .unwrap();
        let text = config_text("http://127.0.0.1:9", 9, tmp.path(), "canary-ok");
        let config = Config::parse(&text, &HostInfo::default()).unwrap();
        let svc = Service {
            spool: Arc::new(Mutex::new(Spool::open(&config.spool_dir, 10).unwrap())),
            uploader: Uploader::new(
                &config.collector_url,
                &config.token,
                config.collector_ca.as_deref(),
            )
            .unwrap(),
            prober: Prober::new(Arc::new(config), HickoryTransport, Hang),
            final_upload: Duration::from_secs(1),
            notifier: Notifier::to_socket(&manager.path).with_watchdog(Duration::from_millis(200)),
            config_path: None,
            min_cycle_allowance: Duration::ZERO,
        };
        // Interval 1 s: the cycle is fed for 4 s, pinged every 100 ms (virtual time).
        let allowance = cycle_allowance(Duration::from_secs(1), Duration::ZERO);
        assert_eq!(allowance, Duration::from_secs(4));
        let running = Running::start(svc);

        let mut buf = [0u8; 4096];
        let mut next = async || {
            let n = sock.recv(&mut buf).await.unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        assert_eq!(next().await, "READY=1\n");
        let mut pings = 0;
        let starving = async {
            loop {
                match next().await {
                    n if n == "WATCHDOG=1\n" => pings += 1,
                    n => break n,
                }
            }
        };
        let starved = tokio::time::timeout(allowance * 3, starving)
            .await
            .expect("the watchdog starves once the allowance is over");
        assert_eq!(
            starved,
            "STATUS=a cycle has run for more than 4s: no longer feeding the watchdog\n"
        );
        // One at the loop's first turn, then every 100 ms of the cycle's 4 s.
        assert!((40..=42).contains(&pings), "{pings} pings");
        // Long after: no ping since.
        tokio::time::sleep(allowance * 3).await;
        let late = sock.try_recv(&mut buf);
        assert!(
            late.is_err(),
            "{:?}",
            late.map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
        );
        running.task.abort();
    }

    #[test]
    fn a_reload_keeps_the_parts_its_changes_leave_alone() {
        crate::install_crypto_provider();
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(
            state.join("state.json"),
            r#"{"version": 1, "boot_id": "an-earlier-boot"}"#,
        )
        .unwrap();
        let text = config_text("http://127.0.0.1:9", 9, tmp.path(), "canary-ok");
        let parse = |t: &str| Arc::new(Config::parse(t, &HostInfo::default()).unwrap());
        let prober = Prober::on_host(parse(&text));
        let reboot =
            |p: &Prober<HickoryTransport, HttpChecker>| p.memory.as_ref().unwrap().reboot();
        assert!(
            reboot(&prober).is_some(),
            "the state file's boot id is not this boot's"
        );

        // Only the expected text changes: the state (and the reboot found at start) stays.
        let text = text.replace("canary-ok", "canary-fine");
        let prober = prober.reprobe(parse(&text));
        assert_eq!(
            prober.config.canaries[0].expect_text.as_deref(),
            Some("canary-fine")
        );
        assert!(reboot(&prober).is_some(), "kept");
        assert!(prober.listeners.is_some() && prober.host.is_some());

        // Another state directory: read afresh (it has no boot id, so no reboot).
        let state_line = format!("state_dir = \"{}\"", state.display());
        let text = text.replace(
            &state_line,
            &format!("state_dir = \"{}\"", tmp.path().join("state2").display()),
        );
        let prober = prober.reprobe(parse(&text));
        assert!(reboot(&prober).is_none(), "rebuilt");
        assert!(tmp.path().join("state2").join("state.json").exists());
    }
}
