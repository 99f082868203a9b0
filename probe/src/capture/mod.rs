//! Packet capture of the probe's own connections, so a failed check carries its packets: the
//! reset that ended it, the SYN-ACK that never came.
//!
//! The canary request binds its socket before connecting, so the local port is known before the
//! SYN: [`Capture::watch`] registers the flow (local port, remote) and makes sure the interface
//! the route to the remote uses is captured with a kernel filter passing that remote, and
//! [`FlowWatch::finish`] turns the flow's packets into a [`PacketTrace`] when the check failed.
//! Successful checks keep no trace, but every SYN-ACK's TTL is remembered per remote IP so a
//! later reset can be told apart: the server's own packets arrive with the TTL learnt here, a
//! reset forged by a router on the way arrives with a higher one.
//!
//! Submodules, one job each:
//! - `route`: which interface the route to a remote uses (`lo` for the host's own addresses).
//! - `bpf`: the classic BPF filter passing the targets' TCP segments, generated in Rust.
//! - `targets`: which targets the filter holds: those of watched flows, and recent ones for a
//!   few seconds, so the filter is attached once per target set, not twice per connection.
//! - `socket`: the AF_PACKET socket and its ioctls (the only `unsafe`); what pnet does with it.
//! - `iface`: one interface's capture: socket, filter, watched flows, the reader thread, and
//!   the drain that lets a failed check see the packets already queued.
//! - `parse`: frames to TCP segment facts.
//! - `flows`: the registry of watched flows, the TTL memory, and building a trace.
//!
//! Needs CAP_NET_RAW. Without it (or without a usable interface) checks run without traces and
//! the reason is logged once.

mod bpf;
mod flows;
mod iface;
mod parse;
mod route;
mod socket;
mod targets;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use causeway_schema::PacketTrace;

use flows::{FlowKey, FlowPackets, TtlMemory};
use iface::{AddError, Iface, StartError};
use route::{Route, RouteCache};

/// How long a refused AF_PACKET socket is not asked for again (capabilities rarely change while
/// the probe runs, but an operator may fix them and expect the probe to notice).
const RETRY_PERMISSION: Duration = Duration::from_secs(600);
/// How long an interface whose capture could not start is not tried again.
const RETRY_INTERFACE: Duration = Duration::from_secs(30);

/// Why a check runs without a packet trace. `Display` says what is off and how to turn it on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaptureOff {
    #[error(
        "packet capture is off: creating an AF_PACKET socket needs CAP_NET_RAW; run the probe as \
         root or grant it (systemd: AmbientCapabilities=CAP_NET_RAW; or setcap cap_net_raw+ep \
         <binary>)"
    )]
    NoPermission,
    #[error(
        "packet capture is off for {remote}: cannot tell which interface its route uses: {detail}"
    )]
    NoRoute { remote: IpAddr, detail: String },
    #[error(
        "packet capture is off on {interface}: its link type {link_type} is not supported \
         (Ethernet, loopback and raw-IP interfaces are)"
    )]
    UnsupportedLink { interface: String, link_type: u16 },
    #[error("packet capture is off on {interface}: {what} failed: {detail}")]
    Failed {
        interface: String,
        what: String,
        detail: String,
    },
    #[error(
        "packet capture is off for {remote}: the filter on {interface} already passes {max} \
         canary addresses, the most it holds; fewer canary addresses per interface turn it on"
    )]
    TooManyTargets {
        interface: String,
        remote: SocketAddr,
        max: usize,
    },
}

impl CaptureOff {
    /// What counts as "the same reason" for logging once.
    fn log_key(&self) -> String {
        match self {
            CaptureOff::NoPermission => "permission".into(),
            CaptureOff::NoRoute { .. } => "route".into(),
            CaptureOff::UnsupportedLink { interface, .. } => format!("link:{interface}"),
            CaptureOff::Failed {
                interface, what, ..
            } => format!("failed:{interface}:{what}"),
            CaptureOff::TooManyTargets { interface, .. } => format!("targets:{interface}"),
        }
    }
}

/// Opens (and closes) a packet socket as the capture does: what the startup privilege check
/// tries. `PermissionDenied` without CAP_NET_RAW.
pub fn try_packet_socket() -> std::io::Result<()> {
    socket::packet_socket().map(drop)
}

/// Counters of one interface's capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureStats {
    pub interface: String,
    /// Whether its thread runs (a stopped one restarts with the next `watch`).
    pub running: bool,
    /// Remote ends of watched flows (the kernel filter passes these).
    pub targets: usize,
    /// Remote ends of recent flows the filter still passes (see `targets`, "linger").
    pub lingering: usize,
    /// Filters attached to the socket since the start.
    pub attaches: u64,
    /// Flows being watched.
    pub flows: usize,
    /// Packets the thread read (all passed the kernel filter).
    pub received: u64,
    /// Of those, packets of no watched flow (dropped).
    pub unmatched: u64,
    /// Times the thread woke from its wait: a packet, a drain or a stop (see `iface`,
    /// "Waiting"); between checks, none.
    pub wakeups: u64,
}

/// The probe's packet capture: one per process, shared (`Arc`). Capture threads start lazily,
/// one per interface, on the first [`Capture::watch`] that needs them, and stop when it drops.
pub struct Capture {
    ifaces: Mutex<HashMap<String, Arc<Iface>>>,
    routes: Mutex<RouteCache>,
    ttls: Arc<Mutex<TtlMemory>>,
    notes: Arc<LogOnce>,
    /// Start failures not retried before their instant; `None` key: the permission.
    failures: Mutex<HashMap<Option<String>, (CaptureOff, Instant)>>,
}

/// The capture of this host, with `/proc` where it usually is (tests).
impl Default for Capture {
    fn default() -> Capture {
        Capture::new(Arc::new(crate::os::Host::default()))
    }
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("interfaces", &self.stats())
            .finish()
    }
}

impl Capture {
    /// A capture whose routes are found among `os`'s interfaces.
    pub fn new(os: Arc<dyn crate::os::Os>) -> Capture {
        Capture {
            ifaces: Mutex::default(),
            routes: Mutex::new(RouteCache::new(os)),
            ttls: Arc::default(),
            notes: Arc::default(),
            failures: Mutex::default(),
        }
    }

    /// Call after the socket is bound (the local port is known) and before connect: makes sure
    /// a capture runs on the interface the route to `remote` uses, with a kernel filter that
    /// passes `remote`'s flows, and registers the flow (`local_port`, `remote`). When this
    /// returns, the filter is in place: the SYN will be seen.
    ///
    /// Errs when capture is impossible; the check then runs without a trace. The first error
    /// of each reason is logged (warn) once; a refused socket or an interface that failed is not
    /// tried again for a while, so these calls stay cheap.
    pub fn watch(&self, local_port: u16, remote: SocketAddr) -> Result<FlowWatch, CaptureOff> {
        if let Some(off) = self.recent_failure(None) {
            return Err(off);
        }
        let route = lock(&self.routes).get(remote).map_err(|e| {
            self.noted(CaptureOff::NoRoute {
                remote: remote.ip(),
                detail: e.to_string(),
            })
        })?;
        let iface = self.iface_for(&route)?;
        let key = FlowKey::new(local_port, remote);
        let id = iface.add_flow(key).map_err(|e| {
            self.noted(match e {
                AddError::TooManyTargets => CaptureOff::TooManyTargets {
                    interface: iface.name.clone(),
                    remote,
                    max: bpf::MAX_TARGETS,
                },
                AddError::Filter(e) => CaptureOff::Failed {
                    interface: iface.name.clone(),
                    what: "attaching the packet filter".into(),
                    detail: filter_error(&e),
                },
            })
        })?;
        Ok(FlowWatch {
            iface,
            key,
            id,
            remote,
            local: None,
            registered: true,
        })
    }

    /// Counters per interface, by name.
    pub fn stats(&self) -> Vec<CaptureStats> {
        let mut stats: Vec<_> = lock(&self.ifaces).values().map(|i| i.stats()).collect();
        stats.sort_by(|a, b| a.interface.cmp(&b.interface));
        stats
    }

    /// The running capture of the route's interface, started (or restarted) if needed.
    fn iface_for(&self, route: &Route) -> Result<Arc<Iface>, CaptureOff> {
        let name = &route.iface.name;
        let mut ifaces = lock(&self.ifaces);
        if let Some(iface) = ifaces.get(name) {
            if iface.is_running() && iface.index == route.iface.index {
                return Ok(iface.clone());
            }
            // Its thread stopped on an error, or the interface was re-created.
            tracing::debug!(interface = %name, "restarting packet capture");
            iface.stop();
            ifaces.remove(name);
        }
        if let Some(off) = self.recent_failure(Some(name)) {
            return Err(off);
        }
        match Iface::start(route, self.ttls.clone(), self.notes.clone()) {
            Ok(iface) => {
                ifaces.insert(name.clone(), iface.clone());
                Ok(iface)
            }
            Err(e) => {
                let (key, retry, off) = match e {
                    StartError::Permission => (None, RETRY_PERMISSION, CaptureOff::NoPermission),
                    StartError::Link(link_type) => (
                        Some(name.clone()),
                        RETRY_INTERFACE,
                        CaptureOff::UnsupportedLink {
                            interface: name.clone(),
                            link_type,
                        },
                    ),
                    StartError::Io { what, error } => (
                        Some(name.clone()),
                        RETRY_INTERFACE,
                        CaptureOff::Failed {
                            interface: name.clone(),
                            what: what.into(),
                            detail: error.to_string(),
                        },
                    ),
                };
                lock(&self.failures).insert(key, (off.clone(), Instant::now() + retry));
                Err(self.noted(off))
            }
        }
    }

    /// A start failure under `key` whose retry time has not come yet.
    fn recent_failure(&self, key: Option<&String>) -> Option<CaptureOff> {
        let mut failures = lock(&self.failures);
        let key = key.cloned();
        match failures.get(&key) {
            Some((off, until)) if Instant::now() < *until => Some(off.clone()),
            Some(_) => {
                failures.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Logs `off` if it is the first of its reason, and returns it.
    fn noted(&self, off: CaptureOff) -> CaptureOff {
        if self.notes.first(&off.log_key()) {
            tracing::warn!("{off}");
        } else {
            tracing::debug!("{off}");
        }
        off
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        for iface in lock(&self.ifaces).values() {
            iface.stop();
        }
    }
}

/// One watched connection. Dropping it unregisters the flow.
pub struct FlowWatch {
    iface: Arc<Iface>,
    key: FlowKey,
    id: u64,
    remote: SocketAddr,
    local: Option<SocketAddr>,
    registered: bool,
}

impl fmt::Debug for FlowWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowWatch")
            .field("interface", &self.iface.name)
            .field("local_port", &self.key.local_port)
            .field("remote", &self.remote)
            .finish()
    }
}

impl FlowWatch {
    /// The interface the flow is captured on.
    pub fn interface(&self) -> &str {
        &self.iface.name
    }

    /// The connected socket's local address, when known; otherwise the trace takes it from the
    /// packets, or uses the unspecified address with the local port.
    pub fn set_local(&mut self, local: SocketAddr) {
        self.local = Some(local);
    }

    /// Ends the watch after the request ended.
    ///
    /// `failed == false`: unregisters and returns `None` (successful checks keep no trace); if
    /// the SYN-ACK was not recorded yet it first drains, so its TTL is remembered for the
    /// remote address. `failed == true`: waits until every packet queued for the capture when
    /// called has been recorded (at most ~300 ms, then with what there is), and returns the
    /// trace, or `None` if no packet of the flow was seen.
    pub async fn finish(mut self, failed: bool) -> Option<PacketTrace> {
        if !failed {
            if !self.iface.saw_syn_ack(&self.key, self.id) {
                self.iface.drain().await;
            }
            self.unregister();
            return None;
        }
        self.iface.drain().await;
        let flow = self.unregister()?;
        let earlier = self.iface.remembered_ttl(&self.key);
        flows::build_trace(
            &self.iface.name,
            self.key,
            self.remote,
            self.local,
            flow,
            earlier,
        )
    }

    fn unregister(&mut self) -> Option<FlowPackets> {
        if !std::mem::take(&mut self.registered) {
            return None;
        }
        self.iface.remove_flow(&self.key, self.id)
    }
}

impl Drop for FlowWatch {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// An attach error, with the fix for the one that comes from many targets.
fn filter_error(e: &std::io::Error) -> String {
    if e.raw_os_error() == Some(libc::ENOMEM) {
        format!(
            "{e}: the kernel charges socket filters to net.core.optmem_max, and this one passes \
             many canary addresses; raise it (sysctl -w net.core.optmem_max=131072) or check \
             fewer addresses through this interface"
        )
    } else {
        e.to_string()
    }
}

/// Remembers which reasons were logged already.
#[derive(Debug, Default)]
pub(crate) struct LogOnce(Mutex<HashSet<String>>);

impl LogOnce {
    /// True the first time `key` is passed.
    pub(crate) fn first(&self, key: &str) -> bool {
        lock(&self.0).insert(key.to_owned())
    }
}

pub(crate) use causeway_service::lock;
