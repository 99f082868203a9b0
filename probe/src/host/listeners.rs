//! The listening sockets on the canary ports of this host and their owners, watched over time.
//!
//! Why: a check can fail because a process that is not the web server briefly listened on the
//! port beside it with SO_REUSEPORT (`nginx -t` run by a monitoring agent), received a share of
//! the new connections and exited, and the kernel reset them. A snapshot taken after the fact
//! would show nothing, so a thread polls the port's listeners every `poll` (100 ms by default),
//! remembers when each socket was first and last seen and who held it, and keeps the vanished
//! ones for [`HISTORY_MS`]. A failed check attaches [`ListenerWatch::evidence`]; the classifier
//! then matches the listeners' lifetimes, with one poll of slack, against the reset.
//!
//! The thread polls every `poll` only while a check is in flight ([`ListenerWatch::check`]:
//! the first poll at once, just before the connection, then every `poll` until its evidence is
//! taken); between checks it makes one pass every [`IDLE_POLL`]. A rogue that listens around a
//! check is seen at the check's pace; one that came and went between checks (and so reset no
//! check of ours) may be seen by the idle pass, which keeps the history a failed check shows.
//!
//! A poll is one sock_diag dump per port and family ([`super::sock_diag`], tens of
//! microseconds). Owners are looked up in `/proc` ([`super::procfs`]) only when a socket not
//! seen before appears, because that scan reads every process's fds.
//!
//! Which listener is the serving process's is decided by a [`ServingRule`] per port.
//!
//! The parts: `thread` is the poll thread, `tracker` turns polls into listener lifetimes (free
//! of threads and I/O), `serving` applies the rule. This file is the handle the cycle holds.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use causeway_schema::ListenerEvidence;
use tokio::sync::watch;

use super::procfs;
use crate::os::Os;

mod serving;
mod thread;
mod tracker;

use thread::{Shared, lock};
use tracker::Tracker;

/// How the serving process of a port is recognised: `Unit(String)` (a systemd unit, e.g.
/// `nginx.service`), `Process(String)` (a `comm` name) or `LongLived` (the default).
///
/// The configuration's type, re-exported, so a canary's rule is passed as it is.
pub use crate::config::ServingRule;

/// How long vanished listeners are kept: a check reports the minutes before it failed.
pub const HISTORY_MS: i64 = 10 * 60 * 1000;
/// Vanished listeners kept per port at most, however many came and went (a fork bomb of
/// `nginx -t` must not grow memory).
pub const HISTORY_MAX: usize = 256;
/// Owners kept per socket, the earliest started first: prefork servers share one socket among
/// dozens of workers, and the first few say who it is.
pub const OWNERS_MAX: usize = 16;
/// How often the listeners are looked at while no check is in flight: a slow background pass,
/// so an idle probe costs next to nothing (each pass is a sock_diag dump per port and family).
pub const IDLE_POLL: Duration = Duration::from_secs(10);

/// Watches the listeners of some ports from a background thread. Cheap to clone; the thread
/// stops with [`ListenerWatch::stop`] or when the last clone is dropped.
#[derive(Clone)]
pub struct ListenerWatch {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    ports: Vec<u16>,
    poll: Duration,
}

impl ListenerWatch {
    /// Starts a background thread polling the listeners of `ports` every `poll`, each port
    /// with the rule that tells its serving process, and returns at once. A port given twice
    /// keeps its first rule; port 0 is ignored. Sockets are dumped and their owners looked up
    /// through `os` (whose `/proc` is `[host] proc_root`: a probe in a container sees the
    /// host's processes where the host's /proc is mounted).
    pub fn start(ports: Vec<(u16, ServingRule)>, poll: Duration, os: Arc<dyn Os>) -> Self {
        let poll = poll.max(Duration::from_millis(1));
        let mut unique: Vec<(u16, ServingRule)> = Vec::new();
        for (port, rule) in ports {
            if port != 0 && !unique.iter().any(|(p, _)| *p == port) {
                unique.push((port, rule));
            }
        }
        let shared = Arc::new(Shared {
            stopped: Mutex::new(false),
            wake: Condvar::new(),
            snapshots: Mutex::new(HashMap::new()),
            started: AtomicU64::new(0),
            finished: watch::Sender::new(0),
            active: AtomicUsize::new(0),
        });
        let watched = unique.iter().map(|(p, _)| *p).collect();
        let thread = match unique.is_empty() {
            true => None,
            false => {
                let visible = procfs::can_read_other_fds(os.proc_root());
                let tracker = Tracker::new(unique, poll, visible);
                let shared = Arc::clone(&shared);
                std::thread::Builder::new()
                    .name("listener-watch".into())
                    .spawn(move || thread::run(&shared, tracker, poll, &*os))
                    .inspect_err(|e| {
                        tracing::warn!("listener evidence is off: cannot start its thread: {e}");
                    })
                    .ok()
            }
        };
        ListenerWatch {
            inner: Arc::new(Inner {
                shared,
                thread: Mutex::new(thread),
                ports: watched,
                poll,
            }),
        }
    }

    /// The evidence for `port` as of the last poll; `None` if the port is not watched, nothing
    /// was polled yet, or the last poll failed (stale listeners would mislead).
    pub fn evidence(&self, port: u16) -> Option<ListenerEvidence> {
        lock(&self.inner.shared.snapshots).get(&port).cloned()
    }

    /// Waits until a poll that started after this call has finished, then returns
    /// [`evidence`](Self::evidence). Right after a reset this shows whether another listener
    /// has vanished since. The wait is bounded by three polls, and is skipped when the port is
    /// not watched or the watch is stopped.
    pub async fn evidence_after_next_poll(&self, port: u16) -> Option<ListenerEvidence> {
        let inner = &self.inner;
        if !inner.ports.contains(&port) || self.is_stopped() {
            return self.evidence(port);
        }
        // Subscribe before reading the counter, so a poll finishing in between is not missed.
        let mut finished = inner.shared.finished.subscribe();
        let target = inner.shared.started.load(Ordering::SeqCst) + 1;
        // At the check's pace while waiting, whether or not the caller holds a check.
        let _check = self.check();
        let bound = inner.poll.saturating_mul(3);
        // A timeout or a vanished thread both end the wait; the evidence is whatever is there.
        let _ = tokio::time::timeout(bound, finished.wait_for(|&n| n >= target)).await;
        self.evidence(port)
    }

    /// A check is in flight until the guard is dropped: the thread polls at once and then
    /// every `poll` (hold it until the check's evidence is taken).
    pub fn check(&self) -> CheckInFlight {
        let shared = Arc::clone(&self.inner.shared);
        shared.active.fetch_add(1, Ordering::SeqCst);
        // Taken so the thread, about to sleep, sees the count or gets the notification.
        drop(lock(&shared.stopped));
        shared.wake.notify_all();
        CheckInFlight(shared)
    }

    /// Polls begun since the start (for tests of the pace).
    #[cfg(test)]
    fn polls(&self) -> u64 {
        self.inner.shared.started.load(Ordering::SeqCst)
    }

    /// Stops the thread and waits for it (at most the rest of one poll). Evidence stays as it
    /// was last polled.
    pub fn stop(&self) {
        self.inner.stop();
    }

    /// Whether [`stop`](Self::stop) was called or the thread could not start.
    fn is_stopped(&self) -> bool {
        *lock(&self.inner.shared.stopped) || lock(&self.inner.thread).is_none()
    }
}

/// A check in flight (see [`ListenerWatch::check`]).
pub struct CheckInFlight(Arc<Shared>);

impl Drop for CheckInFlight {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

impl fmt::Debug for ListenerWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerWatch")
            .field("ports", &self.inner.ports)
            .field("poll", &self.inner.poll)
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn stop(&self) {
        *lock(&self.shared.stopped) = true;
        self.shared.wake.notify_all();
        let handle = lock(&self.thread).take();
        if let Some(handle) = handle
            && handle.thread().id() != std::thread::current().id()
        {
            // The thread catches no panics of its own; one would already have been reported.
            let _ = handle.join();
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests;
