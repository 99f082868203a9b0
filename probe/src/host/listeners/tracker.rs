//! The tracking of each port's listeners from poll to poll: when each socket was first and
//! last seen, who owned it, which vanished and when. Free of threads and I/O, so tests drive
//! it poll by poll.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use causeway_schema::{LISTENERS_MAX, Listener, ListenerEvidence};

use super::{HISTORY_MAX, HISTORY_MS, ServingRule};
use crate::host::procfs::Owner;
use crate::host::sock_diag::DiagListener;

/// A listener whose owner was not found is looked up again after 1, 2, 4... polls, at most
/// this many apart: each try is a full `/proc` scan.
const OWNER_RETRY_MAX_POLLS: u64 = 600;

const OWNERS_OFF: &str = "listener owners are off: reading other processes' /proc/PID/fd needs \
     CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE; grant them (systemd: \
     AmbientCapabilities=CAP_DAC_READ_SEARCH CAP_SYS_PTRACE) or run as root; listeners are \
     still listed with uid and inode";

/// The owners of the sockets `inodes`, from one `/proc` scan.
#[derive(Debug, Default, Clone)]
pub(super) struct Resolved {
    pub(super) owners: HashMap<u64, Vec<Owner>>,
    /// A process whose fds could not be read for lack of privileges.
    pub(super) denied: Option<u32>,
}

/// One listening socket as tracked between polls.
#[derive(Debug, Clone)]
pub(super) struct Tracked {
    pub(super) inode: u64,
    pub(super) address: SocketAddr,
    pub(super) uid: u32,
    pub(super) group_size: u32,
    pub(super) owners: Vec<Owner>,
    /// Owner lookups that found nobody, and the poll number of the next try.
    pub(super) owner_misses: u32,
    pub(super) next_owner_poll: u64,
    pub(super) serving: bool,
    pub(super) first_seen_ms: i64,
    pub(super) last_seen_ms: i64,
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
pub(super) struct PortTrack {
    pub(super) port: u16,
    pub(super) rule: ServingRule,
    /// By inode.
    pub(super) current: BTreeMap<u64, Tracked>,
    /// Vanished listeners, oldest first; `last_seen_ms` is the last poll that saw them.
    pub(super) gone: VecDeque<Tracked>,
    pub(super) serving_text: String,
    /// The root of the serving tree as of the last poll.
    pub(super) serving_pid: Option<u32>,
}

/// All tracking, free of threads and I/O so that tests can drive it poll by poll.
#[derive(Debug)]
pub(super) struct Tracker {
    pub(super) ports: Vec<PortTrack>,
    pub(super) poll_ms: u32,
    pub(super) polls: u64,
    pub(super) owners_visible: bool,
    pub(super) warned_owners: bool,
}

impl Tracker {
    pub(super) fn new(
        ports: Vec<(u16, ServingRule)>,
        poll: Duration,
        owners_visible: bool,
    ) -> Tracker {
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
    pub(super) fn poll(
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
    pub(super) fn evidence_all(&self, now_ms: i64) -> HashMap<u16, ListenerEvidence> {
        self.ports
            .iter()
            .map(|p| (p.port, self.evidence(p, now_ms)))
            .collect()
    }

    pub(super) fn evidence(&self, p: &PortTrack, now_ms: i64) -> ListenerEvidence {
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
            rule: p.rule.clone(),
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
}

/// The listeners a report keeps: serving ones first, then the most recent others, at most
/// [`LISTENERS_MAX`]. When the serving process has more sockets than fit (one per worker with
/// nginx's `reuseport`), up to half the room still goes to the others: a reset is explained by
/// a serving listener and another one, never by serving ones alone.
pub(super) fn select(listeners: Vec<Listener>) -> Vec<Listener> {
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
