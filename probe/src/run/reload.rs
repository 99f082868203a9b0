//! Config reloads: SIGHUP asks for one, the main loop reads the file again between cycles and
//! rebuilds only the parts of the prober whose settings changed, so what they gathered stays.

use std::path::Path;
use std::sync::Arc;

use tokio::sync::{Notify, watch};

use super::RunError;
use crate::capture::Capture;
use crate::checks::backends::Memory;
use crate::checks::dns::HickoryTransport;
use crate::checks::http::HttpChecker;
use crate::config::Config;
use crate::cycle::{Prober, watch_ports, watched_ports};
use crate::host::watch::HostWatch;
use crate::notify::Notifier;
use crate::privileges::Privileges;
use crate::upload::Uploader;

/// The prober for a reloaded config.
pub trait Reprobe: Sized + Send + 'static {
    /// The prober for `config`, keeping the parts of `self` the change leaves as they were.
    /// May block (a watch thread is joined, the state file read): the loop calls it on a
    /// blocking thread.
    fn reprobe(self, config: Arc<Config>) -> Self;
}

/// What [`Prober::on_host`] builds for `config`, but the parts whose settings did not change
/// are kept, with what they gathered: the listener history of the last minutes, the memory
/// series, the kernel log's thread and kills, the reboot found at start (a new state file
/// reader would not see it again), the packet capture's TTL memory.
impl Reprobe for Prober<HickoryTransport, HttpChecker> {
    fn reprobe(self, config: Arc<Config>) -> Self {
        let old = self.config;
        let same_os = old.host_watch.proc_root == config.host_watch.proc_root;
        let os = match same_os {
            true => self.os,
            false => crate::os::get_input(&config.host_watch),
        };
        let http = match (old.capture == config.capture, config.capture) {
            (true, _) => self.http,
            (false, true) => HttpChecker::with_capture(Arc::new(Capture::new(Arc::clone(&os)))),
            (false, false) => HttpChecker::new(),
        };
        let same_ports = watched_ports(&old) == watched_ports(&config)
            && old.listener_poll == config.listener_poll
            && same_os;
        let listeners = match self.listeners {
            Some(watch) if same_ports => watch,
            before => {
                // Stops and joins the old thread before the new one polls.
                drop(before);
                watch_ports(&config, Arc::clone(&os))
            }
        };
        let memory = match self.memory {
            Some(memory) if old.state_dir == config.state_dir => memory,
            _ => Memory::open(&config.state_dir, &*os),
        };
        let host = match self.host {
            Some(host) if old.host_watch == config.host_watch => host,
            _ => HostWatch::start(&config.host_watch, memory.reboot(), Arc::clone(&os)),
        };
        Prober {
            config,
            dns: self.dns,
            http,
            resolv_conf: self.resolv_conf,
            listeners: Some(listeners),
            memory: Some(memory),
            host: Some(host),
            os,
            // Counted since the probe started, across reloads.
            overruns: self.overruns,
        }
    }
}

/// Reads the config file again and, if it is valid, rebuilds the prober and the uploader
/// for it; otherwise logs why it was refused and keeps everything as it was. The spool stays:
/// its directory and size take effect at the next start. `RELOADING=1` before, `READY=1`
/// after, whatever the outcome.
pub(super) async fn reload_config<D, H>(
    prober: Prober<D, H>,
    path: Option<&Path>,
    uploaders: &watch::Sender<Uploader>,
    notifier: &Notifier,
) -> Prober<D, H>
where
    Prober<D, H>: Reprobe,
{
    notifier.reloading();
    let server = prober.config.server.clone();
    let refuse = |problems: String| {
        tracing::error!("config reload refused, keeping the running config: {problems}");
        notifier.status(&format!(
            "{server}: config reload refused, keeping the running config: {problems}"
        ));
    };
    let loaded = match path {
        None => Err("the service was started without a config file".to_owned()),
        Some(path) => {
            let p = path.to_owned();
            tokio::task::spawn_blocking(move || Config::load(&p))
                .await
                .expect("reading the config panicked")
                .map_err(|e| format!("{}: {}", path.display(), e.problems().join("; ")))
        }
    };
    let mut new = match loaded {
        Ok(new) => new,
        Err(problems) => {
            refuse(problems);
            notifier.ready();
            return prober;
        }
    };
    let old = prober.config.clone();
    let uploader = match Uploader::new(&new.collector_url, &new.token, new.collector_ca.as_deref())
    {
        Ok(uploader) => uploader,
        Err(e) => {
            refuse(e.to_string());
            notifier.ready();
            return prober;
        }
    };
    if (&new.spool_dir, new.spool_max_reports) != (&old.spool_dir, old.spool_max_reports) {
        tracing::warn!(
            "spool_dir and spool_max_reports take effect at the next restart: keeping the spool \
             {} of at most {} reports",
            old.spool_dir.display(),
            old.spool_max_reports
        );
        new.spool_dir = old.spool_dir.clone();
        new.spool_max_reports = old.spool_max_reports;
    }
    let privileges_may_differ =
        new.capture != old.capture || new.host_watch.kernel_log != old.host_watch.kernel_log;
    let line = format!("config reloaded: {}", new.summary());
    let new = Arc::new(new);
    let for_prober = new.clone();
    let prober = tokio::task::spawn_blocking(move || prober.reprobe(for_prober))
        .await
        .expect("rebuilding the prober panicked");
    uploaders.send_replace(uploader);
    tracing::info!("{line}");
    if privileges_may_differ {
        Privileges::check(&new, &*prober.os).log();
    }
    notifier.ready();
    prober
}

/// Turns every SIGHUP into a `reload` notification for
/// [`Service::run`](super::Service::run). The handler is in place when this returns (SIGHUP's
/// default action would end the process); several signals before the loop gets to them make
/// one reload.
pub fn reload_on_sighup(reload: Arc<Notify>) -> Result<tokio::task::JoinHandle<()>, RunError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).map_err(RunError::Signal)?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reading the config again (between cycles)");
            reload.notify_one();
        }
    }))
}
