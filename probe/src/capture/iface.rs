//! One interface's capture: its socket and filter, its watched flows, and the thread that reads
//! it (pnet's `next()` blocks, so the reader gets a std thread of its own).
//!
//! ## Draining
//!
//! When a check fails with ECONNRESET or ECONNREFUSED the reset is already queued on our socket:
//! packet taps run before the TCP stack (and on `lo`, before the reset reaches the connecting
//! socket), but the thread may not have read it yet. [`Iface::drain`] makes sure it has:
//!
//! - the waiter bumps a request generation `g` (an atomic) and waits until the thread reports
//!   "idle at generation >= g" through a `tokio::sync::watch`, for at most [`DRAIN_MAX`];
//! - the thread, after each packet and after each wake-up, loads the requested generation
//!   and then asks `FIONREAD`, which on a packet socket is the size of the next queued packet,
//!   0 when the queue is empty. If 0, it publishes that generation.
//!
//! The load happens after the waiter's bump and the ioctl after the load, so an empty queue then
//! means every packet queued when the waiter asked has been read, and (one thread, one packet at
//! a time) recorded. A busy queue (the canary's address and port always carrying traffic) never
//! looks empty: the waiter then gives up after [`DRAIN_MAX`] with what there is.
//!
//! ## Waiting
//!
//! The thread blocks in `poll` on two fds: the socket, and an eventfd ([`socket::Wakeup`])
//! that a drain, a stop and a flow's end write to. Its only timeout is the moment the next
//! lingering target is due to leave the filter (see [`super::targets`]). So it runs only when
//! a packet arrives or someone needs it: between checks the filter closes a few seconds after
//! the last flow and the thread then sleeps for good, and during a check it wakes once per
//! packet of the probe's own flows, not on a timer (a 20 ms read timeout used to wake it 50
//! times a second while a connection was open, and pnet built an `io::Error` for each). A
//! drain is answered at once.

use std::io;
use std::os::fd::IntoRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pnet_datalink::{Channel, DataLinkReceiver};
use socket2::Socket;
use tokio::sync::watch;

use super::bpf::{self, Target};
use super::flows::{FlowKey, FlowPackets, Flows, Seen, TtlMemory};
use super::parse::{self, Link};
use super::route::Route;
use super::targets::Targets;
use super::{CaptureStats, LogOnce, lock, socket};

/// pnet's own `poll` before each read. The thread reads only after [`socket::wait`] found the
/// socket readable, so this bounds nothing in practice; it keeps pnet from ever blocking for
/// good should a packet vanish in between.
const READ_TIMEOUT: Duration = Duration::from_millis(20);
/// The longest a drain waits for the thread.
pub(crate) const DRAIN_MAX: Duration = Duration::from_millis(300);
/// Receive buffer for one frame: the filter passes at most [`bpf::SNAP_LEN`] bytes.
const READ_BUFFER: usize = 512;
/// A kernel stamp further than this from the clock is not believed (the clock was stepped).
const STAMP_SANITY_NS: i64 = 60_000_000_000;

/// Why a capture could not start on an interface.
#[derive(Debug)]
pub(crate) enum StartError {
    /// `socket(AF_PACKET)` was refused: no CAP_NET_RAW.
    Permission,
    /// The interface's link type (`ARPHRD_*`) is neither Ethernet-like nor raw IP.
    Link(u16),
    Io {
        what: &'static str,
        error: io::Error,
    },
}

/// Why a flow could not be added.
#[derive(Debug)]
pub(crate) enum AddError {
    /// The filter holds [`MAX_TARGETS`] already.
    TooManyTargets,
    Filter(io::Error),
}

pub(crate) struct Iface {
    pub name: String,
    pub index: u32,
    link: Link,
    /// On `lo`: drop the outgoing copy of each packet.
    drop_outgoing: bool,
    /// Our dup of the socket pnet reads: for the filter and the ioctls.
    sock: Socket,
    /// Remote ends of watched and recent flows; the filter passes these.
    targets: Mutex<Targets>,
    /// Filters attached, for tests and the bench.
    attaches: AtomicU64,
    /// Wakes the thread out of its wait (see "Waiting").
    wakeup: socket::Wakeup,
    /// Times the thread's wait returned, for tests and the idle bench.
    wakeups: AtomicU64,
    flows: Mutex<Flows>,
    ttls: Arc<Mutex<TtlMemory>>,
    notes: Arc<LogOnce>,
    drain_requested: AtomicU64,
    idle: watch::Sender<u64>,
    stop: AtomicBool,
    running: AtomicBool,
    received: AtomicU64,
    unmatched: AtomicU64,
    next_id: AtomicU64,
}

impl Iface {
    /// Opens the socket with a reject-all filter, lets pnet bind it, and starts the thread.
    pub(crate) fn start(
        route: &Route,
        ttls: Arc<Mutex<TtlMemory>>,
        notes: Arc<LogOnce>,
    ) -> Result<Arc<Iface>, StartError> {
        let io = |what: &'static str| move |error| StartError::Io { what, error };
        let link = Link::from_arphrd(route.link_type).ok_or(StartError::Link(route.link_type))?;
        let drop_outgoing = route.is_loopback();
        let sock = socket::packet_socket().map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => StartError::Permission,
            _ => StartError::Io {
                what: "creating an AF_PACKET socket",
                error: e,
            },
        })?;
        socket::enable_stamps(&sock);
        let reject_all = bpf::program(link, drop_outgoing, &[]);
        sock.attach_filter(&bpf::to_sock_filters(&reject_all))
            .map_err(io("attaching the packet filter"))?;
        let ours = sock
            .try_clone()
            .map_err(io("duplicating the AF_PACKET socket"))?;
        let wakeup = socket::Wakeup::new().map_err(io("creating the capture's eventfd"))?;
        let config = pnet_datalink::Config {
            read_buffer_size: READ_BUFFER,
            write_buffer_size: 64,
            read_timeout: Some(READ_TIMEOUT),
            promiscuous: false,
            // pnet owns (and closes) this fd from here on, also when `channel` fails.
            socket_fd: Some(sock.into_raw_fd()),
            ..pnet_datalink::Config::default()
        };
        let rx = match pnet_datalink::channel(&route.iface, config) {
            Ok(Channel::Ethernet(_tx, rx)) => rx,
            Ok(_) => {
                let error = io::Error::other("pnet returned an unknown channel type");
                return Err(StartError::Io {
                    what: "opening the capture channel",
                    error,
                });
            }
            Err(error) => {
                return Err(StartError::Io {
                    what: "binding the AF_PACKET socket",
                    error,
                });
            }
        };
        let iface = Arc::new(Iface {
            name: route.iface.name.clone(),
            index: route.iface.index,
            link,
            drop_outgoing,
            sock: ours,
            targets: Mutex::default(),
            attaches: AtomicU64::new(0),
            wakeup,
            wakeups: AtomicU64::new(0),
            flows: Mutex::default(),
            ttls,
            notes,
            drain_requested: AtomicU64::new(0),
            idle: watch::Sender::new(0),
            stop: AtomicBool::new(false),
            running: AtomicBool::new(true),
            received: AtomicU64::new(0),
            unmatched: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
        });
        let thread = iface.clone();
        std::thread::Builder::new()
            .name(format!("capture-{}", iface.name))
            .spawn(move || thread.run(rx))
            .map_err(io("starting the capture thread"))?;
        Ok(iface)
    }

    /// False once the thread ended (error or [`Iface::stop`]); a new capture replaces it.
    pub(crate) fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// Asks the thread to end (at once: it is woken); it closes the socket.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.wakeup.notify();
    }

    /// Registers `key` and makes sure the filter passes its remote before returning, so the
    /// SYN that follows is captured. Returns the registration id.
    pub(crate) fn add_flow(&self, key: FlowKey) -> Result<u64, AddError> {
        let target = target_of(&key);
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut targets = lock(&self.targets);
        let new = targets
            .add(target, Instant::now())
            .map_err(|_| AddError::TooManyTargets)?;
        lock(&self.flows).register(key, id);
        if new && let Err(e) = self.attach(&targets) {
            targets.forget(target);
            lock(&self.flows).remove(&key, id);
            return Err(AddError::Filter(e));
        }
        Ok(id)
    }

    /// Unregisters a flow (call once per [`Iface::add_flow`]) and returns its packets if the
    /// registration was still current. A remote no flow uses any more lingers in the filter
    /// (see [`super::targets`]); the thread is told, to drop it when it is due.
    pub(crate) fn remove_flow(&self, key: &FlowKey, id: u64) -> Option<FlowPackets> {
        let flow = lock(&self.flows).remove(key, id);
        if lock(&self.targets).remove(target_of(key), Instant::now()) {
            self.wakeup.notify();
        }
        flow
    }

    /// Drops the lingering targets that are due from the filter; returns how long until the
    /// next one is (`None`: none lingers).
    fn expire_targets(&self) -> Option<Duration> {
        let mut targets = lock(&self.targets);
        let now = Instant::now();
        if targets.expire(now)
            && let Err(e) = self.attach(&targets)
        {
            tracing::debug!(interface = %self.name, "re-attaching the packet filter: {e}");
        }
        targets
            .next_expiry()
            .map(|at| at.saturating_duration_since(now))
    }

    /// Whether the flow's SYN-ACK has been recorded.
    pub(crate) fn saw_syn_ack(&self, key: &FlowKey, id: u64) -> bool {
        lock(&self.flows)
            .get(key, id)
            .is_some_and(|f| f.syn_ack_ttl.is_some())
    }

    /// Waits until every packet queued when called has been recorded (see the module doc), at
    /// most [`DRAIN_MAX`]. Returns false if it gave up.
    pub(crate) async fn drain(&self) -> bool {
        if !self.is_running() {
            return false;
        }
        let generation = self.drain_requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut idle = self.idle.subscribe();
        self.wakeup.notify();
        let waited = tokio::time::timeout(DRAIN_MAX, idle.wait_for(|g| *g >= generation)).await;
        matches!(waited, Ok(Ok(_))) && self.is_running()
    }

    pub(crate) fn remembered_ttl(&self, key: &FlowKey) -> Option<u8> {
        lock(&self.ttls).get(key.remote.ip())
    }

    pub(crate) fn stats(&self) -> CaptureStats {
        let (targets, lingering) = {
            let t = lock(&self.targets);
            (t.in_use(), t.lingering())
        };
        CaptureStats {
            interface: self.name.clone(),
            running: self.is_running(),
            targets,
            lingering,
            attaches: self.attaches.load(Ordering::Relaxed),
            flows: lock(&self.flows).len(),
            received: self.received.load(Ordering::Relaxed),
            unmatched: self.unmatched.load(Ordering::Relaxed),
            wakeups: self.wakeups.load(Ordering::Relaxed),
        }
    }

    fn attach(&self, targets: &Targets) -> io::Result<()> {
        let prog = bpf::program(self.link, self.drop_outgoing, &targets.filter());
        // SO_ATTACH_FILTER swaps the program atomically: no packet sees no filter.
        self.sock.attach_filter(&bpf::to_sock_filters(&prog))?;
        self.attaches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The thread: report idleness, wait (see "Waiting"), read, record; stop on `stop` or on
    /// the first error that is not a timeout or an interrupted poll (they repeat: pnet does
    /// not clear a socket error).
    fn run(self: Arc<Self>, mut rx: Box<dyn DataLinkReceiver>) {
        let result = loop {
            self.report_idle();
            if self.stop.load(Ordering::SeqCst) {
                break Ok(());
            }
            let due = self.expire_targets();
            let readable = match socket::wait(&self.sock, &self.wakeup, due) {
                Ok(readable) => readable,
                Err(e) => break Err(e),
            };
            self.wakeups.fetch_add(1, Ordering::Relaxed);
            if !readable {
                continue;
            }
            match rx.next() {
                Ok(frame) => {
                    self.received.fetch_add(1, Ordering::Relaxed);
                    let at_ns = self.arrival_ns();
                    self.record(frame, at_ns);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => break Err(self.sock.take_error().ok().flatten().unwrap_or(e)),
            }
        };
        self.running.store(false, Ordering::SeqCst);
        // Wake any drain: nothing more will be read.
        self.idle.send_replace(u64::MAX);
        if let Err(e) = result {
            let msg = format!(
                "packet capture on {} stopped: {e}; failed checks have no packet trace until it \
                 restarts with the next check",
                self.name
            );
            if self.notes.first(&format!("died:{}", self.name)) {
                tracing::warn!("{msg}");
            } else {
                tracing::debug!("{msg}");
            }
        }
    }

    fn record(&self, frame: &[u8], at_ns: i64) {
        let Some(seg) = parse::parse(frame, self.link) else {
            self.unmatched.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let mut flows = lock(&self.flows);
        match flows.record(&seg, at_ns) {
            Seen::Unmatched => {
                self.unmatched.fetch_add(1, Ordering::Relaxed);
            }
            Seen::Matched => {}
            // Under the flows lock: once `saw_syn_ack` is true, the TTL is remembered too.
            Seen::SynAck { remote, ttl } => lock(&self.ttls).remember(remote, ttl),
        }
    }

    /// The kernel's arrival stamp of the packet just read, or the clock. A packet queued before
    /// the kernel turned stamping on (it does so a moment after the first socket asks, from a
    /// work queue) has no stamp, and SIOCGSTAMP then answers with the time of the call: later
    /// than the arrival. The trace smooths that out (see `flows::build_trace`).
    fn arrival_ns(&self) -> i64 {
        let now = now_ns();
        socket::last_stamp_ns(&self.sock)
            .ok()
            .filter(|s| (s - now).abs() < STAMP_SANITY_NS)
            .unwrap_or(now)
    }

    fn report_idle(&self) {
        let requested = self.drain_requested.load(Ordering::SeqCst);
        if requested > *self.idle.borrow() && matches!(socket::next_queued_len(&self.sock), Ok(0)) {
            self.idle.send_replace(requested);
        }
    }
}

fn target_of(key: &FlowKey) -> Target {
    Target {
        ip: key.remote.ip(),
        port: key.remote.port(),
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
