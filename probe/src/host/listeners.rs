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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use causeway_schema::{LISTENERS_MAX, Listener, ListenerEvidence};
use tokio::sync::watch;

use super::procfs::{self, Owner};
use super::sock_diag::DiagListener;
use crate::os::{ListenerDump, Os};

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
/// A listener whose owner was not found is looked up again after 1, 2, 4... polls, at most
/// this many apart: each try is a full `/proc` scan.
const OWNER_RETRY_MAX_POLLS: u64 = 600;
/// How often the listeners are looked at while no check is in flight: a slow background pass,
/// so an idle probe costs next to nothing (each pass is a sock_diag dump per port and family).
pub const IDLE_POLL: Duration = Duration::from_secs(10);
/// After the netlink socket could not be opened, the next try is this much later.
const REOPEN_AFTER: Duration = Duration::from_secs(30);

const OWNERS_OFF: &str = "listener owners are off: reading other processes' /proc/PID/fd needs \
     CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE; grant them (systemd: \
     AmbientCapabilities=CAP_DAC_READ_SEARCH CAP_SYS_PTRACE) or run as root; listeners are \
     still listed with uid and inode";

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

/// What the poll thread and the handles share.
struct Shared {
    stopped: Mutex<bool>,
    wake: Condvar,
    /// The evidence of each port as of the last successful poll; empty while polling fails.
    snapshots: Mutex<HashMap<u16, ListenerEvidence>>,
    /// Polls begun; a poll increments it before it looks at anything.
    started: AtomicU64,
    /// Polls finished (successful or not), numbered as `started` numbered them.
    finished: watch::Sender<u64>,
    /// Checks in flight: the thread polls every `poll` while there is one, else every
    /// [`IDLE_POLL`].
    active: AtomicUsize,
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
                    .spawn(move || run(&shared, tracker, poll, &*os))
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

/// A poisoned lock only means another thread panicked holding it; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The poll thread: polls every `poll` until stopped. Netlink failures are logged once and
/// leave the evidence empty; the thread keeps its pace, never spinning.
fn run(shared: &Shared, mut tracker: Tracker, poll: Duration, os: &dyn Os) {
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

/// The owners of the sockets `inodes`, from one `/proc` scan.
#[derive(Debug, Default, Clone)]
struct Resolved {
    owners: HashMap<u64, Vec<Owner>>,
    /// A process whose fds could not be read for lack of privileges.
    denied: Option<u32>,
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

/// One listening socket as tracked between polls.
#[derive(Debug, Clone)]
struct Tracked {
    inode: u64,
    address: SocketAddr,
    uid: u32,
    group_size: u32,
    owners: Vec<Owner>,
    /// Owner lookups that found nobody, and the poll number of the next try.
    owner_misses: u32,
    next_owner_poll: u64,
    serving: bool,
    first_seen_ms: i64,
    last_seen_ms: i64,
}

impl Tracked {
    fn new(d: &DiagListener, now_ms: i64) -> Tracked {
        Tracked {
            inode: d.inode,
            address: d.address,
            uid: d.uid,
            group_size: 1,
            owners: Vec::new(),
            owner_misses: 0,
            next_owner_poll: 0,
            serving: false,
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
        }
    }

    fn listener(&self, gone: bool) -> Listener {
        Listener {
            inode: self.inode,
            address: self.address,
            uid: self.uid,
            group_size: self.group_size,
            owners: self.owners.iter().map(|o| o.info.clone()).collect(),
            serving: self.serving,
            first_seen_ms: self.first_seen_ms,
            last_seen_ms: self.last_seen_ms,
            gone,
        }
    }
}

/// The tracking state of one port.
#[derive(Debug)]
struct PortTrack {
    port: u16,
    rule: ServingRule,
    /// By inode.
    current: BTreeMap<u64, Tracked>,
    /// Vanished listeners, oldest first; `last_seen_ms` is the last poll that saw them.
    gone: VecDeque<Tracked>,
    serving_text: String,
    /// The root of the serving tree as of the last poll.
    serving_pid: Option<u32>,
}

/// All tracking, free of threads and I/O so that tests can drive it poll by poll.
#[derive(Debug)]
struct Tracker {
    ports: Vec<PortTrack>,
    poll_ms: u32,
    polls: u64,
    owners_visible: bool,
    warned_owners: bool,
}

impl Tracker {
    fn new(ports: Vec<(u16, ServingRule)>, poll: Duration, owners_visible: bool) -> Tracker {
        let mut t = Tracker {
            ports: ports
                .into_iter()
                .map(|(port, rule)| PortTrack {
                    port,
                    rule,
                    current: BTreeMap::new(),
                    gone: VecDeque::new(),
                    serving_text: String::new(),
                    serving_pid: None,
                })
                .collect(),
            poll_ms: u32::try_from(poll.as_millis()).unwrap_or(u32::MAX),
            polls: 0,
            owners_visible: true,
            warned_owners: false,
        };
        t.set_owners_visible(owners_visible);
        for p in &mut t.ports {
            p.update_serving(true);
        }
        t
    }

    fn set_owners_visible(&mut self, visible: bool) {
        if !visible && !self.warned_owners {
            tracing::warn!("{OWNERS_OFF}");
            self.warned_owners = true;
        }
        self.owners_visible = visible;
    }

    /// Takes in one poll: `seen[i]` are the listeners found on `ports[i]` at `now_ms`.
    /// `resolve` is called at most once, with the inodes whose owners are wanted.
    fn poll(
        &mut self,
        now_ms: i64,
        seen: Vec<Vec<DiagListener>>,
        resolve: &mut dyn FnMut(&HashSet<u64>) -> Resolved,
    ) {
        self.polls += 1;
        for (port, seen) in self.ports.iter_mut().zip(seen) {
            port.observe(now_ms, &seen);
        }

        let n = self.polls;
        let wanted: HashSet<u64> = self
            .ports
            .iter()
            .flat_map(|p| p.current.values())
            .filter(|t| t.owners.is_empty() && t.next_owner_poll <= n)
            .map(|t| t.inode)
            .collect();
        if !wanted.is_empty() {
            let resolved = resolve(&wanted);
            if let Some(pid) = resolved.denied {
                tracing::debug!("cannot read /proc/{pid}/fd: owners not visible");
            }
            self.set_owners_visible(resolved.denied.is_none());
            for t in self.ports.iter_mut().flat_map(|p| p.current.values_mut()) {
                if !wanted.contains(&t.inode) {
                    continue;
                }
                match resolved.owners.get(&t.inode) {
                    Some(owners) if !owners.is_empty() => t.owners.clone_from(owners),
                    _ => {
                        let wait = 1u64 << t.owner_misses.min(20);
                        t.owner_misses += 1;
                        t.next_owner_poll = n + wait.min(OWNER_RETRY_MAX_POLLS);
                    }
                }
            }
        }

        for port in &mut self.ports {
            port.update_groups();
            port.update_serving(self.owners_visible);
        }
    }

    /// The evidence of every port, vanished listeners kept if seen within [`HISTORY_MS`] of
    /// `now_ms`.
    fn evidence_all(&self, now_ms: i64) -> HashMap<u16, ListenerEvidence> {
        self.ports
            .iter()
            .map(|p| (p.port, self.evidence(p, now_ms)))
            .collect()
    }

    fn evidence(&self, p: &PortTrack, now_ms: i64) -> ListenerEvidence {
        let cutoff = now_ms - HISTORY_MS;
        let listeners = p
            .current
            .values()
            .map(|t| t.listener(false))
            .chain(
                p.gone
                    .iter()
                    .filter(|t| t.last_seen_ms >= cutoff)
                    .map(|t| t.listener(true)),
            )
            .collect();
        ListenerEvidence {
            port: p.port,
            serving: p.serving_text.clone(),
            poll_ms: self.poll_ms,
            owners_visible: self.owners_visible,
            serving_pid: p.serving_pid,
            listeners: select(listeners),
        }
    }
}

impl PortTrack {
    /// New sockets start being tracked, known ones are seen again, missing ones move to the
    /// history with the last poll that saw them.
    fn observe(&mut self, now_ms: i64, seen: &[DiagListener]) {
        let present: HashSet<u64> = seen.iter().map(|d| d.inode).collect();
        let vanished: Vec<u64> = self
            .current
            .keys()
            .filter(|inode| !present.contains(inode))
            .copied()
            .collect();
        for inode in vanished {
            if let Some(t) = self.current.remove(&inode) {
                self.gone.push_back(t);
            }
        }
        for d in seen {
            let t = self
                .current
                .entry(d.inode)
                .or_insert_with(|| Tracked::new(d, now_ms));
            t.last_seen_ms = now_ms;
            t.address = d.address;
            t.uid = d.uid;
        }
        let cutoff = now_ms - HISTORY_MS;
        while self
            .gone
            .front()
            .is_some_and(|t| t.last_seen_ms < cutoff || self.gone.len() > HISTORY_MAX)
        {
            self.gone.pop_front();
        }
    }

    /// The size of each socket's group: current listeners on the same address and port.
    /// Vanished ones keep the size they had when last seen.
    fn update_groups(&mut self) {
        let mut sizes: HashMap<SocketAddr, u32> = HashMap::new();
        for t in self.current.values() {
            *sizes.entry(t.address).or_default() += 1;
        }
        for t in self.current.values_mut() {
            t.group_size = sizes.get(&t.address).copied().unwrap_or(1);
        }
    }

    /// Decides again which current listeners are the serving process's: it may have
    /// restarted since the last poll. Vanished listeners keep their last verdict.
    ///
    /// The serving process is a tree: its root is the eldest owner the rule allows (any owner
    /// for the long-lived rule, the unit's or the named process's otherwise), and a listener
    /// serves when one of its owners is that root, or descends from it with the root's name
    /// and cgroup (nginx's master and its workers, across a reload, and the new master of a
    /// binary upgrade, which the old one starts). A process outside the tree does not serve,
    /// whatever its name and cgroup: `nginx -t` run inside the server's container or cgroup
    /// has both. Nor does a child of another name that opens a listener of its own.
    fn update_serving(&mut self, owners_visible: bool) {
        let root = serving_root(&self.rule, &self.current);
        let long_lived = matches!(self.rule, ServingRule::LongLived);
        // Without any owner known, the long-lived rule falls back to the uid of the listener
        // known longest.
        let oldest_uid = self
            .current
            .values()
            .min_by_key(|t| (t.first_seen_ms, t.inode))
            .map(|t| t.uid);
        for t in self.current.values_mut() {
            t.serving = match (&root, t.owners.is_empty()) {
                (Some(root), false) => t.owners.iter().any(|o| root.serves_with(o)),
                // An owner that could not be read: the same uid is all there is.
                (Some(root), true) => long_lived && !owners_visible && t.uid == root.uid,
                (None, _) => long_lived && Some(t.uid) == oldest_uid,
            };
        }
        self.serving_pid = root.as_ref().map(|r| r.pid);
        self.serving_text = serving_text(self.port, &self.rule, root.as_ref(), oldest_uid);
    }
}

/// The root of the serving process's tree (see [`PortTrack::update_serving`]).
#[derive(Debug)]
struct ServingRoot {
    pid: u32,
    name: String,
    cgroup: Option<String>,
    /// The uid of the socket it holds.
    uid: u32,
}

impl ServingRoot {
    /// Whether `o` is the root, or one of its descendants of the same name and cgroup.
    fn serves_with(&self, o: &Owner) -> bool {
        o.info.pid == self.pid
            || (o.ancestors.contains(&self.pid)
                && o.info.name == self.name
                && o.info.cgroup == self.cgroup)
    }
}

/// The eldest owner of a current listener that `rule` allows. Init (pid 1) holding a socket it
/// passed to a service (systemd's socket activation) is passed over for that service: every
/// process descends from init.
fn serving_root(rule: &ServingRule, current: &BTreeMap<u64, Tracked>) -> Option<ServingRoot> {
    let allowed = |o: &Owner| match rule {
        ServingRule::Unit(unit) => o.info.unit.as_ref() == Some(unit),
        ServingRule::Process(name) => &o.info.name == name,
        ServingRule::LongLived => true,
    };
    current
        .values()
        .flat_map(|t| t.owners.iter().map(move |o| (o, t.uid)))
        .filter(|(o, _)| allowed(o))
        .min_by_key(|(o, _)| {
            (
                o.info.pid == 1,
                o.start_ticks.unwrap_or(u64::MAX),
                o.info.pid,
            )
        })
        .map(|(o, uid)| ServingRoot {
            pid: o.info.pid,
            name: o.info.name.clone(),
            cgroup: o.info.cgroup.clone(),
            uid,
        })
}

/// How the serving process was recognised, for the evidence.
fn serving_text(
    port: u16,
    rule: &ServingRule,
    root: Option<&ServingRoot>,
    oldest_uid: Option<u32>,
) -> String {
    let how = match rule {
        ServingRule::Unit(unit) => format!("unit {unit}"),
        ServingRule::Process(name) => format!("process {name}"),
        ServingRule::LongLived => format!("the long-lived owner of port {port}"),
    };
    match (root, rule) {
        (Some(r), _) => {
            let cgroup = r
                .cgroup
                .as_ref()
                .map(|cg| format!(" in cgroup {cg}"))
                .unwrap_or_default();
            format!(
                "{how}: pid {} {}{cgroup}, and its descendants",
                r.pid, r.name
            )
        }
        (None, ServingRule::LongLived) => match oldest_uid {
            Some(uid) => format!("{how}: uid {uid}"),
            None => format!("{how}: nothing listens"),
        },
        (None, _) => format!("{how}: none of it holds the port"),
    }
}

/// The listeners a report keeps: serving ones first, then the most recent others, at most
/// [`LISTENERS_MAX`]. When the serving process has more sockets than fit (one per worker with
/// nginx's `reuseport`), up to half the room still goes to the others: a reset is explained by
/// a serving listener and another one, never by serving ones alone.
fn select(listeners: Vec<Listener>) -> Vec<Listener> {
    let (mut serving, mut others): (Vec<_>, Vec<_>) =
        listeners.into_iter().partition(|l| l.serving);
    // Serving: current ones first, the oldest first; then the recently vanished.
    serving.sort_by_key(|l| {
        (
            l.gone,
            std::cmp::Reverse(l.last_seen_ms),
            l.first_seen_ms,
            l.inode,
        )
    });
    // Others: the most recently seen first, the newest first among those.
    others.sort_by_key(|l| {
        (
            std::cmp::Reverse(l.last_seen_ms),
            std::cmp::Reverse(l.first_seen_ms),
            l.inode,
        )
    });
    let room_for_others = others.len().min(LISTENERS_MAX / 2);
    serving.truncate(LISTENERS_MAX - room_for_others);
    others.truncate(LISTENERS_MAX - serving.len());
    serving.extend(others);
    serving
}

#[cfg(test)]
mod tests;
