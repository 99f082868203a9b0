//! The poll thread: one pass over the watched ports every `poll` while a check is in flight,
//! every [`IDLE_POLL`] otherwise, each pass handed to the [`Tracker`] and its evidence
//! published for the handles.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use causeway_schema::ListenerEvidence;
use tokio::sync::watch;

use super::tracker::{Resolved, Tracker};
use super::{IDLE_POLL, OWNERS_MAX};
use crate::host::procfs::{self, Owner};
use crate::os::{ListenerDump, Os};

/// After the netlink socket could not be opened, the next try is this much later.
const REOPEN_AFTER: Duration = Duration::from_secs(30);

/// What the poll thread and the handles share.
pub(super) struct Shared {
    pub(super) stopped: Mutex<bool>,
    pub(super) wake: Condvar,
    /// The evidence of each port as of the last successful poll; empty while polling fails.
    pub(super) snapshots: Mutex<HashMap<u16, ListenerEvidence>>,
    /// Polls begun; a poll increments it before it looks at anything.
    pub(super) started: AtomicU64,
    /// Polls finished (successful or not), numbered as `started` numbered them.
    pub(super) finished: watch::Sender<u64>,
    /// Checks in flight: the thread polls every `poll` while there is one, else every
    /// [`IDLE_POLL`].
    pub(super) active: AtomicUsize,
}

impl Shared {
    /// Sleeps until the next poll is due after `last` (`poll` while a check is in flight,
    /// [`IDLE_POLL`] otherwise; a check starting wakes it) or a stop; true if stopped.
    fn sleep_after(&self, last: Option<Instant>, poll: Duration) -> bool {
        let mut stopped = lock(&self.stopped);
        loop {
            if *stopped {
                return true;
            }
            let pace = match self.active.load(Ordering::SeqCst) {
                0 => poll.max(IDLE_POLL),
                _ => poll,
            };
            let now = Instant::now();
            let deadline = last.map_or(now, |last| last + pace);
            if now >= deadline {
                return false;
            }
            stopped = self
                .wake
                .wait_timeout(stopped, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

pub(super) use causeway_service::lock;

/// The poll thread: polls every `poll` until stopped. Netlink failures are logged once and
/// leave the evidence empty; the thread keeps its pace, never spinning.
pub(super) fn run(shared: &Shared, mut tracker: Tracker, poll: Duration, os: &dyn Os) {
    let proc_root = os.proc_root();
    let mut diag: Option<Box<dyn ListenerDump>> = None;
    let mut reopen_at = Instant::now();
    let mut warned = false;
    let mut failing = false;
    let mut last: Option<Instant> = None;
    while !shared.sleep_after(last, poll) {
        let begun = Instant::now();
        let n = shared.started.fetch_add(1, Ordering::SeqCst) + 1;
        let outcome = match diag.as_mut() {
            Some(d) => Some(poll_once(&mut **d, &mut tracker, proc_root)),
            None if begun >= reopen_at => match os.open_listener_dump() {
                Ok(mut d) => {
                    let r = poll_once(&mut *d, &mut tracker, proc_root);
                    diag = Some(d);
                    Some(r)
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(
                            "listener evidence is off: cannot open a NETLINK_SOCK_DIAG socket: \
                             {e}; allow it (systemd: RestrictAddressFamilies= must include \
                             AF_NETLINK); trying again every {} s",
                            REOPEN_AFTER.as_secs()
                        );
                        warned = true;
                    }
                    reopen_at = begun + REOPEN_AFTER;
                    None
                }
            },
            None => None,
        };
        match outcome {
            Some(Ok(())) => {
                if failing {
                    tracing::info!("listener evidence: polling works again");
                    failing = false;
                }
                let now = crate::now_ms();
                let snapshots = tracker.evidence_all(now);
                *lock(&shared.snapshots) = snapshots;
            }
            Some(Err(e)) => {
                if !warned {
                    tracing::warn!(
                        "listener evidence is off until polling works again: sock_diag dump \
                         failed: {e}"
                    );
                    warned = true;
                } else {
                    tracing::debug!("sock_diag dump failed: {e}");
                }
                failing = true;
                // A fresh socket next time: the old one may hold the tail of a broken dump.
                diag = None;
                lock(&shared.snapshots).clear();
            }
            None => lock(&shared.snapshots).clear(),
        }
        shared.finished.send_replace(n);
        // The pace counts from the poll's end: a slow one (a /proc scan) still rests a full
        // interval after it.
        last = Some(Instant::now());
    }
}

/// One poll: the dumps, then the tracking (with an owner scan if a new socket appeared).
fn poll_once(
    diag: &mut dyn ListenerDump,
    tracker: &mut Tracker,
    proc_root: &Path,
) -> std::io::Result<()> {
    let now = crate::now_ms();
    let mut seen = Vec::with_capacity(tracker.ports.len());
    for port in &tracker.ports {
        seen.push(diag.listeners(port.port)?);
    }
    tracker.poll(now, seen, &mut |inodes| resolve(proc_root, inodes));
    Ok(())
}

fn resolve(proc_root: &Path, inodes: &HashSet<u64>) -> Resolved {
    let scan = procfs::scan_fd_owners(proc_root, inodes);
    let mut cache: HashMap<u32, Option<Owner>> = HashMap::new();
    let mut owners = HashMap::new();
    for (inode, pids) in scan.holders {
        let mut list: Vec<Owner> = pids
            .iter()
            .filter_map(|&pid| {
                cache
                    .entry(pid)
                    .or_insert_with(|| procfs::read_owner(proc_root, pid))
                    .clone()
            })
            .collect();
        list.sort_by_key(|o| (o.start_ticks.unwrap_or(u64::MAX), o.info.pid));
        list.truncate(OWNERS_MAX);
        if !list.is_empty() {
            owners.insert(inode, list);
        }
    }
    Resolved {
        owners,
        denied: scan.denied,
    }
}
