//! The backends behind a canary's reverse proxy: learning who each one is while the canary is
//! healthy, and, when the proxy answers 502/503/504 or the wrong page, asking each directly and
//! looking for its identity at other addresses.
//!
//! An identity is what survives an address change: the link-layer address (a container keeps
//! its MAC across a restart more often than its IP; a VM always does), the backend's answer to
//! a direct request, and what its DNS name resolves to. Where to look: the neighbour table
//! (every address with that MAC), the name's addresses, and, on a directly connected IPv4
//! subnet, the other hosts that accept connections on the backend's port (a sweep of at most
//! 254 addresses, only after a failure), whose answers are compared too.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use causeway_schema::{
    AnswerPrint, BackendIdentity, BackendState, DirectOutcome, DirectResult, Reboot, Sighting,
    SightingBy,
};
use causeway_service::lock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{Backend, Canary};
use crate::host::neighbours::{self, Neighbour};
use crate::os::Os;
use crate::state::{ProbeState, StateFile};

/// A learned identity is refreshed this often while the canary is healthy: a backend that is
/// redeployed on purpose gets a new answer, and the old one must not look like a move.
const LEARN_EVERY_MS: i64 = 5 * 60 * 1000;

/// What the probe knows about backends and its host across cycles, kept in the state file so
/// that it survives a probe restart and a host reboot.
pub struct Memory {
    file: StateFile,
    state: Mutex<ProbeState>,
    /// The reboot found at start (the boot id differs from the one saved), until the canaries
    /// with backends are healthy again.
    reboot: Mutex<Option<Reboot>>,
}

impl Memory {
    /// Loads the state in `dir`, compares the boot id with the one saved, and saves the
    /// current boot id and addresses, as `os` gives them.
    pub fn open(dir: &Path, os: &dyn Os) -> Memory {
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!("cannot create the state directory {}: {e}", dir.display());
        }
        let file = StateFile::new(dir);
        let mut state = file.load();
        let now = os
            .boot_id()
            .map_err(|e| tracing::warn!("cannot read the boot id, reboots go unseen: {e}"))
            .ok();
        let reboot = match (&state.boot_id, &now) {
            (Some(before), Some(now)) if before != now => {
                let uptime_s = os.uptime_s().unwrap_or(0);
                tracing::info!("the host rebooted since the last cycle (up {uptime_s} s)");
                Some(Reboot {
                    previous_boot_id: before.clone(),
                    boot_id: now.clone(),
                    uptime_s,
                })
            }
            _ => None,
        };
        state.boot_id = now.or(state.boot_id);
        state.own_addresses = os.own_addresses();
        let memory = Memory {
            file,
            state: Mutex::new(state),
            reboot: Mutex::new(reboot),
        };
        memory.save();
        memory
    }

    /// The identities learned for `canary`'s backends, by configured address.
    pub fn known(&self, canary: &str) -> BTreeMap<String, BackendIdentity> {
        lock(&self.state)
            .backends
            .get(canary)
            .cloned()
            .unwrap_or_default()
    }

    pub fn reboot(&self) -> Option<Reboot> {
        lock(&self.reboot).clone()
    }

    /// The canary answered: a reboot before it no longer explains anything.
    pub fn healthy(&self) {
        *lock(&self.reboot) = None;
    }

    /// Whether `backend`'s identity is missing or due for a refresh.
    pub fn due(&self, canary: &str, backend: SocketAddr, now_ms: i64) -> bool {
        let state = lock(&self.state);
        let learned = state
            .backends
            .get(canary)
            .and_then(|b| b.get(&backend.to_string()));
        learned.is_none_or(|k| now_ms - k.learned_at_ms >= LEARN_EVERY_MS)
    }

    /// Keeps `identity` for `backend` and saves the state.
    pub fn learn(&self, canary: &str, backend: SocketAddr, identity: BackendIdentity) {
        lock(&self.state)
            .backends
            .entry(canary.to_owned())
            .or_default()
            .insert(backend.to_string(), identity);
        self.save();
    }

    fn save(&self) {
        let state = lock(&self.state).clone();
        if let Err(e) = self.file.save(&state) {
            tracing::warn!("cannot save the probe's state: {e}");
        }
    }
}

/// The most of a direct answer read: enough to tell one site from another.
const ANSWER_MAX: usize = 64 * 1024;
/// How long each connection of a sweep may take: hosts on the same link answer in microseconds.
const SWEEP_CONNECT: Duration = Duration::from_millis(300);
/// Connections of a sweep in flight at once.
const SWEEP_PARALLEL: usize = 64;

/// A direct HTTP/1.0 request for the canary's page to `address`, with the canary's Host header,
/// as the proxy would forward it.
pub async fn direct(canary: &Canary, address: SocketAddr, timeout: Duration) -> DirectResult {
    let start = Instant::now();
    let result = tokio::time::timeout(timeout, fetch(canary, address)).await;
    let elapsed_ms = start.elapsed().as_secs_f64() * 1000.0;
    let (outcome, answer, detail) = match result {
        Err(_) => (DirectOutcome::Timeout, None, None),
        Ok(Ok(print)) => (DirectOutcome::Answered, Some(print), None),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            (DirectOutcome::Refused, None, Some(e.to_string()))
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
            (DirectOutcome::Timeout, None, Some(e.to_string()))
        }
        Ok(Err(e)) => (DirectOutcome::Error, None, Some(e.to_string())),
    };
    DirectResult {
        outcome,
        answer,
        elapsed_ms,
        detail,
    }
}

async fn fetch(canary: &Canary, address: SocketAddr) -> std::io::Result<AnswerPrint> {
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: causeway-probe/{}\r\nConnection: close\r\n\r\n",
        canary.target.path_and_query,
        canary.target.host_header,
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(ANSWER_MAX as u64)
        .read_to_end(&mut raw)
        .await?;
    print_of(&raw).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the answer is not an HTTP response",
        )
    })
}

/// The status and a digest of the body of a raw HTTP/1.x response.
pub fn print_of(raw: &[u8]) -> Option<AnswerPrint> {
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..head_end]).ok()?;
    let status_line = head.lines().next()?;
    let mut words = status_line.split_whitespace();
    if !words.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let status: u16 = words.next()?.parse().ok()?;
    let body = &raw[head_end + 4..];
    Some(AnswerPrint {
        status,
        body_digest: format!("{:016x}", fnv1a(body)),
        body_len: body.len() as u64,
    })
}

/// FNV-1a, 64 bits: a stable digest (the same on every build and machine) to compare bodies.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What identifies `backend` now, from a direct answer that succeeded: its answer, its MAC
/// (the request just made puts it in the neighbour table) and its name's addresses.
pub fn identity(
    backend: &Backend,
    answer: AnswerPrint,
    neigh: &[Neighbour],
    name_addresses: Vec<IpAddr>,
    now_ms: i64,
) -> BackendIdentity {
    BackendIdentity {
        mac: neighbours::mac_of(neigh, backend.address.ip()).map(str::to_owned),
        answer: Some(answer),
        name_addresses,
        learned_at_ms: now_ms,
    }
}

/// Where `known`'s backend is seen now, other than at `configured`, best proof first.
/// `answers` are the direct answers of the hosts a sweep found (address -> answer);
/// `name_addresses` what the backend's name resolves to now; `replicas` the configured
/// addresses of the canary's other backends that still answer like before (an identical answer
/// there is a sibling, not our backend).
pub fn sightings(
    configured: IpAddr,
    known: &BackendIdentity,
    neigh: &[Neighbour],
    name_addresses: &[IpAddr],
    answers: &BTreeMap<IpAddr, AnswerPrint>,
    replicas: &[IpAddr],
) -> Vec<Sighting> {
    let mut found: BTreeMap<IpAddr, Vec<SightingBy>> = BTreeMap::new();
    if let Some(mac) = &known.mac {
        for ip in neighbours::addresses_with_mac(neigh, mac) {
            found.entry(ip).or_default().push(SightingBy::Mac);
        }
    }
    for ip in name_addresses {
        if !known.name_addresses.contains(ip) {
            found.entry(*ip).or_default().push(SightingBy::Name);
        }
    }
    if let Some(print) = &known.answer {
        for (ip, answer) in answers {
            if answer == print && !replicas.contains(ip) {
                found.entry(*ip).or_default().push(SightingBy::Answer);
            }
        }
    }
    found.remove(&configured);
    let mut out: Vec<Sighting> = found
        .into_iter()
        .map(|(address, by)| Sighting { address, by })
        .collect();
    // More kinds of proof first; the address order breaks ties, so the result is stable.
    out.sort_by_key(|s| std::cmp::Reverse(s.by.len()));
    out.truncate(causeway_schema::SIGHTINGS_MAX);
    out
}

/// The other addresses of `configured`'s directly connected IPv4 subnet (at most the /24
/// around it), without this host's own: where a moved backend may be now. Empty for IPv6 and
/// for an address no interface's subnet holds.
pub fn sweep_targets(
    configured: IpAddr,
    ifaces: &[pnet_datalink::NetworkInterface],
) -> Vec<IpAddr> {
    let IpAddr::V4(v4) = configured else {
        return Vec::new();
    };
    let Some(net) = ifaces
        .iter()
        .flat_map(|i| i.ips.iter())
        .find(|n| n.is_ipv4() && n.contains(configured))
    else {
        return Vec::new();
    };
    let prefix = net.prefix().max(24);
    let mask = u32::MAX << (32 - u32::from(prefix));
    let base = u32::from(v4) & mask;
    let size = 1u32 << (32 - u32::from(prefix));
    (1..size.saturating_sub(1))
        .map(|i| IpAddr::V4((base | i).into()))
        .filter(|ip| *ip != configured && !crate::os::own_address_among(ifaces, *ip))
        .collect()
}

/// The hosts among `targets` that accept a connection on `port`, asked directly: their answers.
pub async fn sweep(
    canary: &Canary,
    targets: &[IpAddr],
    port: u16,
    timeout: Duration,
) -> BTreeMap<IpAddr, AnswerPrint> {
    let mut found = BTreeMap::new();
    // In rounds of SWEEP_PARALLEL connections: bounded sockets, and plain futures (a stream of
    // borrowing closures trips the compiler's Send check in the service's task).
    for round in targets.chunks(SWEEP_PARALLEL) {
        let asks = round.iter().map(|ip| ask(canary, *ip, port, timeout));
        found.extend(
            futures_util::future::join_all(asks)
                .await
                .into_iter()
                .flatten(),
        );
    }
    found
}

/// One sweep target: its answer, when it accepts a connection on `port` at all.
async fn ask(
    canary: &Canary,
    ip: IpAddr,
    port: u16,
    timeout: Duration,
) -> Option<(IpAddr, AnswerPrint)> {
    let addr = SocketAddr::new(ip, port);
    // A short connect first: most addresses hold nobody, and must not cost the timeout.
    let open = tokio::time::timeout(SWEEP_CONNECT, tokio::net::TcpStream::connect(addr)).await;
    if !matches!(open, Ok(Ok(_))) {
        return None;
    }
    direct(canary, addr, timeout).await.answer.map(|a| (ip, a))
}

/// The backend table of a failed canary: each backend asked directly and, when it does not
/// answer like before, looked for elsewhere (on the subnets of `os`'s interfaces, with its
/// neighbour table).
pub async fn investigate(
    os: &dyn Os,
    canary: &Canary,
    known: &BTreeMap<String, BackendIdentity>,
    name_addresses: &BTreeMap<String, Vec<IpAddr>>,
    timeout: Duration,
) -> Vec<BackendState> {
    let directs = futures_util::future::join_all(
        canary
            .backends
            .iter()
            .map(|b| direct(canary, b.address, timeout)),
    )
    .await;
    let known_of = |b: &Backend| known.get(&b.address.to_string());
    let moved: Vec<bool> = canary
        .backends
        .iter()
        .zip(&directs)
        .map(|(b, d)| known_of(b).is_some_and(|k| !d.answers_like(k)))
        .collect();
    let replicas: Vec<IpAddr> = canary
        .backends
        .iter()
        .zip(&moved)
        .filter(|(_, m)| !**m)
        .map(|(b, _)| b.address.ip())
        .collect();
    // One sweep per port for all the backends that need it.
    let mut answers: BTreeMap<u16, BTreeMap<IpAddr, AnswerPrint>> = BTreeMap::new();
    let ifaces = os.interfaces();
    for (b, _) in canary.backends.iter().zip(&moved).filter(|(_, m)| **m) {
        let port = b.address.port();
        if answers.contains_key(&port) {
            continue;
        }
        let targets = sweep_targets(b.address.ip(), &ifaces);
        answers.insert(port, sweep(canary, &targets, port, timeout).await);
    }
    let neigh = os.neighbours().unwrap_or_else(|e| {
        tracing::warn!("cannot read the neighbour table: {e}");
        Vec::new()
    });
    canary
        .backends
        .iter()
        .zip(directs)
        .zip(moved)
        .map(|((b, direct), moved)| {
            let known = known_of(b).cloned();
            let seen_at = match (&known, moved) {
                (Some(k), true) => sightings(
                    b.address.ip(),
                    k,
                    &neigh,
                    name_addresses
                        .get(&b.address.to_string())
                        .map_or(&[][..], Vec::as_slice),
                    answers.get(&b.address.port()).unwrap_or(&BTreeMap::new()),
                    &replicas,
                ),
                _ => Vec::new(),
            };
            BackendState {
                name: b.name.clone(),
                configured: b.address,
                known,
                direct,
                seen_at,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn neighbour(ip: &str, mac: &str) -> Neighbour {
        Neighbour {
            ip: ip.parse().unwrap(),
            mac: mac.into(),
            interface: "eth0".into(),
            state: neighbours::NeighState::Reachable,
        }
    }

    fn print(body: &[u8]) -> AnswerPrint {
        AnswerPrint {
            status: 200,
            body_digest: format!("{:016x}", fnv1a(body)),
            body_len: body.len() as u64,
        }
    }

    fn known(mac: &str, body: &[u8]) -> BackendIdentity {
        BackendIdentity {
            mac: Some(mac.into()),
            answer: Some(print(body)),
            name_addresses: vec!["10.88.0.12".parse().unwrap()],
            learned_at_ms: 1,
        }
    }

    #[test]
    fn answers_are_printed_by_status_and_body() {
        let raw = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: x\r\n\r\nprod site";
        let p = print_of(raw).unwrap();
        assert_eq!((p.status, p.body_len), (200, 9));
        // Headers (a date) do not change the print; the body does.
        let later = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: y\r\n\r\nprod site";
        assert_eq!(print_of(later), Some(p.clone()));
        let dev = b"HTTP/1.1 200 OK\r\n\r\ndev site";
        assert_ne!(print_of(dev).unwrap().body_digest, p.body_digest);
        assert_eq!(print_of(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
        assert_eq!(print_of(b"HTTP/1.1 200 OK\r\nno end"), None);
        // FNV-1a 64 of "a", a published test vector.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn the_same_mac_or_answer_elsewhere_is_a_sighting_best_proof_first() {
        let k = known("02:00:00:00:00:0c", b"prod");
        let neigh = [
            neighbour("10.88.0.12", "02:00:00:00:00:0c"),
            neighbour("10.88.0.15", "02:00:00:00:00:0c"),
            neighbour("10.88.0.13", "02:00:00:00:00:0d"),
        ];
        let answers = BTreeMap::from([
            ("10.88.0.15".parse().unwrap(), print(b"prod")),
            ("10.88.0.14".parse().unwrap(), print(b"prod")),
            ("10.88.0.13".parse().unwrap(), print(b"dev")),
        ]);
        let name = ["10.88.0.16".parse().unwrap()];
        let got = sightings(
            "10.88.0.12".parse().unwrap(),
            &k,
            &neigh,
            &name,
            &answers,
            &[],
        );
        let got: Vec<(String, Vec<&str>)> = got
            .iter()
            .map(|s| (s.address.to_string(), s.by.iter().map(|b| b.id()).collect()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("10.88.0.15".to_owned(), vec!["mac", "answer"]),
                ("10.88.0.14".to_owned(), vec!["answer"]),
                ("10.88.0.16".to_owned(), vec!["name"]),
            ]
        );
    }

    #[test]
    fn a_replica_answering_alike_is_not_a_sighting() {
        let k = known("02:00:00:00:00:0c", b"same site");
        let answers = BTreeMap::from([("10.88.0.13".parse().unwrap(), print(b"same site"))]);
        let replicas = ["10.88.0.13".parse().unwrap()];
        let got = sightings(
            "10.88.0.12".parse().unwrap(),
            &k,
            &[],
            &[],
            &answers,
            &replicas,
        );
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn sweep_covers_the_connected_slash_24_without_own_or_configured() {
        let iface = pnet_datalink::NetworkInterface {
            name: "eth0".into(),
            description: String::new(),
            index: 2,
            mac: None,
            ips: vec!["10.88.0.2/16".parse().unwrap()],
            flags: 0,
        };
        let t = sweep_targets("10.88.0.12".parse().unwrap(), std::slice::from_ref(&iface));
        assert_eq!(
            t.len(),
            252,
            "254 hosts of the /24 less ours and the backend's"
        );
        assert!(!t.contains(&"10.88.0.2".parse().unwrap()));
        assert!(!t.contains(&"10.88.0.12".parse().unwrap()));
        assert!(t.contains(&"10.88.0.1".parse().unwrap()));
        assert!(t.contains(&"10.88.0.254".parse().unwrap()));
        assert!(sweep_targets("10.99.0.12".parse().unwrap(), &[iface]).is_empty());
    }
}
