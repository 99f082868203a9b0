//! Whether a name server's host can be reached at all, asked when it gave no usable answer: a
//! host that answers an ICMP echo or a TCP SYN is up and ignoring us; one that never does, or
//! that a router reports unreachable, is out of our reach.
//!
//! The echo prefers a raw socket and falls back to an unprivileged datagram ("ping") socket.
//! A raw socket sees the ICMP errors routers send; a ping socket hears of net and host
//! unreachable only with `IP_RECVERR`, which socket2 cannot set and we may not set unsafely
//! (they are soft errors, RFC 1122 4.2.3.9), so through it a router's "host unreachable"
//! looks like silence.

use std::hash::BuildHasher;
use std::io::{self, ErrorKind, Read};
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use causeway_schema::{ReachOutcome, ReachProbe};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpStream;

use super::Check;
use super::dns::HickoryTransport;

/// Sent in every echo; any payload works, a fixed one makes captures recognisable.
const PAYLOAD: &[u8; 16] = b"causeway reach!!";
const NEEDS: &str = "ICMP echo needs CAP_NET_RAW or a group in net.ipv4.ping_group_range";

/// The target of an ICMP echo to a name server's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Echo(pub SocketAddr);

/// The target of a TCP connection to a name server's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpConnect(pub SocketAddr);

/// The real tests, beside the real DNS queries.
impl Check<Echo> for HickoryTransport {
    type Outcome = ReachProbe;

    fn run(
        &self,
        target: Echo,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = ReachProbe> + Send {
        echo(target.0, super::time_left(deadline), None)
    }
}

impl Check<TcpConnect> for HickoryTransport {
    type Outcome = ReachProbe;

    fn run(
        &self,
        target: TcpConnect,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = ReachProbe> + Send {
        connect(target.0, super::time_left(deadline))
    }
}

async fn connect(server: SocketAddr, timeout: Duration) -> ReachProbe {
    let start = Instant::now();
    let (outcome, detail) = match tokio::time::timeout(timeout, TcpStream::connect(server)).await {
        Ok(Ok(_stream)) => (ReachOutcome::Reply, None),
        Err(_) => (ReachOutcome::NoReply, None),
        Ok(Err(e)) => match e.raw_os_error() {
            Some(libc::ECONNREFUSED) => (ReachOutcome::Refused, None),
            // The kernel gave up on its SYN retries before our timeout did.
            Some(libc::ETIMEDOUT) => (ReachOutcome::NoReply, Some(e.to_string())),
            _ => (ReachOutcome::Unreachable, Some(e.to_string())),
        },
    };
    probe(outcome, start, detail)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Raw,
    Datagram,
}

/// `kind: None` takes the first socket kind we are allowed to open.
async fn echo(server: SocketAddr, timeout: Duration, kind: Option<Kind>) -> ReachProbe {
    let start = Instant::now();
    tokio::task::spawn_blocking(move || echo_blocking(server, start + timeout, kind))
        .await
        .unwrap_or_else(|e| probe(ReachOutcome::NotTested, start, Some(e.to_string())))
}

fn echo_blocking(server: SocketAddr, deadline: Instant, kind: Option<Kind>) -> ReachProbe {
    let to = match (server, server.ip().to_canonical()) {
        (SocketAddr::V6(v6), IpAddr::V6(ip)) => SocketAddrV6::new(ip, 0, 0, v6.scope_id()).into(),
        (_, ip) => SocketAddr::new(ip, 0),
    };
    let (socket, kind) = match open(to.is_ipv6(), kind) {
        Ok(opened) => opened,
        Err(detail) => return probe(ReachOutcome::NotTested, Instant::now(), Some(detail)),
    };
    let (ident, seq) = ids();
    let packet = echo_request(to.is_ipv6(), ident, seq);
    let start = Instant::now();
    let sent = match kind {
        Kind::Raw => socket.send_to(&packet, &to.into()),
        // Connected, so the kernel reports the errors it does report on recv.
        Kind::Datagram => socket
            .connect(&to.into())
            .and_then(|()| socket.send(&packet)),
    };
    if let Err(e) = sent {
        return probe(ReachOutcome::Unreachable, start, Some(e.to_string()));
    }
    // The kernel rewrites a ping socket's identifier and delivers it only its own replies.
    let expect = Expect {
        target: to.ip(),
        ident: (kind == Kind::Raw).then_some(ident),
        seq,
    };
    let mut buf = [0u8; 1500];
    loop {
        // A zero SO_RCVTIMEO would block forever, so stop when under a millisecond is left.
        let Some(left) = deadline
            .checked_duration_since(Instant::now())
            .filter(|left| *left >= Duration::from_millis(1))
        else {
            return probe(ReachOutcome::NoReply, start, None);
        };
        let received = socket.set_read_timeout(Some(left)).and_then(|()| {
            let from = socket.peek_sender()?;
            Ok((from, (&socket).read(&mut buf)?))
        });
        let (from, len) = match received {
            Ok(received) => received,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                continue;
            }
            Err(e) => return probe(ReachOutcome::Unreachable, start, Some(e.to_string())),
        };
        let Some(from) = from.as_socket().map(|from| from.ip().to_canonical()) else {
            continue;
        };
        // Raw IPv4 sockets, and only they, get the IP header too.
        let icmp = match (kind, to) {
            (Kind::Raw, SocketAddr::V4(_)) => split_ipv4(&buf[..len]).map_or(&[][..], |(_, p)| p),
            _ => &buf[..len],
        };
        match classify(icmp, from, &expect) {
            Seen::Reply => return probe(ReachOutcome::Reply, start, None),
            Seen::Unreachable(why) => return probe(ReachOutcome::Unreachable, start, Some(why)),
            Seen::Other => {}
        }
    }
}

fn open(v6: bool, kind: Option<Kind>) -> Result<(Socket, Kind), String> {
    let (domain, protocol) = match v6 {
        false => (Domain::IPV4, Protocol::ICMPV4),
        true => (Domain::IPV6, Protocol::ICMPV6),
    };
    let open = |kind| {
        let ty = match kind {
            Kind::Raw => Type::RAW,
            Kind::Datagram => Type::DGRAM,
        };
        Socket::new(domain, ty, Some(protocol)).map(|socket| (socket, kind))
    };
    let refused = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES));
    let opened = match kind {
        Some(kind) => open(kind),
        None => match open(Kind::Raw) {
            Err(e) if refused(&e) => open(Kind::Datagram),
            raw => raw,
        },
    };
    opened.map_err(|e| match refused(&e) {
        true => NEEDS.to_string(),
        false => format!("cannot open an ICMP socket: {e}"),
    })
}

fn probe(outcome: ReachOutcome, start: Instant, detail: Option<String>) -> ReachProbe {
    ReachProbe {
        outcome,
        elapsed_ms: start.elapsed().as_secs_f64() * 1000.0,
        detail,
    }
}

/// An identifier and sequence number unlikely to be another pinger's, even in this process.
fn ids() -> (u16, u16) {
    static ECHOES: AtomicU64 = AtomicU64::new(0);
    let n = ECHOES.fetch_add(1, Ordering::Relaxed);
    let hash = std::hash::RandomState::new().hash_one((std::process::id(), n));
    (hash as u16, (hash >> 16) as u16)
}

fn echo_request(v6: bool, ident: u16, seq: u16) -> Vec<u8> {
    let mut packet = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    packet.extend(ident.to_be_bytes());
    packet.extend(seq.to_be_bytes());
    packet.extend(PAYLOAD);
    // The kernel fills in ICMPv6 checksums, and ICMPv4 ones on ping sockets, but not on raw ones.
    if !v6 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|pair| u32::from(pair[0]) << 8 | u32::from(pair.get(1).copied().unwrap_or(0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet's header (options included) and payload.
fn split_ipv4(packet: &[u8]) -> Option<(&[u8], &[u8])> {
    let header_len = usize::from(packet.first()? & 0x0f) * 4;
    (packet[0] >> 4 == 4 && header_len >= 20 && packet.len() >= header_len)
        .then(|| packet.split_at(header_len))
}

struct Expect {
    target: IpAddr,
    /// `None` on ping sockets, whose identifier the kernel chooses.
    ident: Option<u16>,
    seq: u16,
}

impl Expect {
    fn is_ours(&self, echo: &[u8], echo_type: u8) -> bool {
        let [ty, _, _, _, i0, i1, s0, s1, ..] = *echo else {
            return false;
        };
        ty == echo_type
            && self
                .ident
                .is_none_or(|ident| ident == u16::from_be_bytes([i0, i1]))
            && self.seq == u16::from_be_bytes([s0, s1])
    }
}

#[derive(Debug, PartialEq)]
enum Seen {
    Reply,
    Unreachable(String),
    Other,
}

/// Judges one ICMP message (no IP header) that arrived from `from`.
fn classify(icmp: &[u8], from: IpAddr, expect: &Expect) -> Seen {
    let v6 = expect.target.is_ipv6();
    let (request, reply, unreachable) = if v6 { (128, 129, 1) } else { (8, 0, 3) };
    match icmp {
        [ty, ..] if *ty == reply && from == expect.target && expect.is_ours(icmp, reply) => {
            Seen::Reply
        }
        [ty, code, _, _, _, _, _, _, quoted @ ..] if *ty == unreachable => {
            // The quoted packet: our echo request, on its way to the target.
            let (dst, echo) = match v6 {
                false => match split_ipv4(quoted) {
                    Some((header, echo)) if header[9] == 1 => (&header[16..20], echo),
                    _ => return Seen::Other,
                },
                true if quoted.len() >= 40 && quoted[6] == 58 => (&quoted[24..40], &quoted[40..]),
                true => return Seen::Other,
            };
            let target = match expect.target {
                IpAddr::V4(ip) => ip.octets().to_vec(),
                IpAddr::V6(ip) => ip.octets().to_vec(),
            };
            if dst != target || !expect.is_ours(echo, request) {
                return Seen::Other;
            }
            let why = match (v6, code) {
                (false, 0) | (true, 0) => "network unreachable",
                (false, 1) | (true, 3) => "host unreachable",
                (false, 2) => "protocol unreachable",
                (false, 3) | (true, 4) => "port unreachable",
                (false, 9 | 10 | 13) | (true, 1 | 5 | 6) => "administratively prohibited",
                _ => "destination unreachable",
            };
            Seen::Unreachable(format!("ICMP {why} (code {code}) from {from}"))
        }
        _ => Seen::Other,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};
    use std::process::Command;

    use futures_util::future::join_all;

    use super::*;

    const LOCAL4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const LOCAL6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

    // Captured from raw sockets in a namespace: replies to echoes with identifier 0x1234 from
    // 127.0.0.1 to itself, without and with IP options (record route), one of our requests,
    // and a router's answer to seq 3.
    const REPLY: &str = "4500002ca6c500004001d6097f0000017f000001000043a7123400026361757365776179\
                         2072656163682121";
    const REPLY_WITH_OPTIONS: &str = "48000038a6a300004001bd167f0000017f000001070b0c7f0000017f00\
                                      000100000043a81234000163617573657761792072656163682121";
    const OWN_REQUEST: &str = "4500002ca6c440004001960a7f0000017f00000108003ba7123400026361757365\
                               7761792072656163682121";
    /// 192.0.2.254: host 198.51.100.1 unreachable (type 3 code 1).
    const HOST_UNREACHABLE: &str = "45c00048178900004001dd6cc00002fec00002010301fcfe000000004500\
                                    002ca2f140004001aba9c0000201c633640108003ba61234000363617573\
                                    657761792072656163682121";
    const REPLY_V6: &str = "8100c24f1234000563617573657761792072656163682121";

    fn hex(s: &str) -> Vec<u8> {
        let digit = |i| u8::from_str_radix(&s[i..i + 2], 16).unwrap();
        (0..s.len()).step_by(2).map(digit).collect()
    }

    fn expect(target: &str, ident: Option<u16>, seq: u16) -> Expect {
        Expect {
            target: target.parse().unwrap(),
            ident,
            seq,
        }
    }

    /// Judges a packet as a raw IPv4 socket reads it.
    fn judge(packet: &[u8], expect: &Expect) -> Seen {
        match split_ipv4(packet) {
            Some((header, icmp)) => {
                let from = IpAddr::from(<[u8; 4]>::try_from(&header[12..16]).unwrap());
                classify(icmp, from, expect)
            }
            None => Seen::Other,
        }
    }

    #[test]
    fn checksum_matches_rfc_1071_and_the_kernel() {
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        assert_eq!(checksum(&[0x00, 0x01, 0xf2]), !0xf201);
        // A reply the kernel made sums to zero, its checksum included.
        assert_eq!(checksum(split_ipv4(&hex(REPLY)).unwrap().1), 0);
        assert_eq!(echo_request(false, 0x1234, 2), hex(&OWN_REQUEST[40..]));
        let v6 = echo_request(true, 0x1234, 5);
        assert_eq!(v6[..8], [128, 0, 0, 0, 0x12, 0x34, 0, 5]);
    }

    #[test]
    fn raw_ipv4_replies_are_found_behind_any_header_length() {
        assert_eq!(
            judge(&hex(REPLY), &expect("127.0.0.1", Some(0x1234), 2)),
            Seen::Reply
        );
        let with_options = hex(REPLY_WITH_OPTIONS);
        assert_eq!(
            judge(&with_options, &expect("127.0.0.1", Some(0x1234), 1)),
            Seen::Reply
        );
    }

    #[test]
    fn other_echoes_are_ignored() {
        let reply = hex(REPLY);
        for other in [
            expect("127.0.0.1", Some(0x1235), 2),
            expect("127.0.0.1", Some(0x1234), 3),
            expect("127.0.0.2", Some(0x1234), 2),
        ] {
            assert_eq!(judge(&reply, &other), Seen::Other);
        }
        // A raw socket reads its own requests too.
        assert_eq!(
            judge(&hex(OWN_REQUEST), &expect("127.0.0.1", Some(0x1234), 2)),
            Seen::Other
        );
        // A ping socket's replies carry the kernel's identifier.
        assert_eq!(judge(&reply, &expect("127.0.0.1", None, 2)), Seen::Reply);
    }

    #[test]
    fn unreachable_quoting_our_echo() {
        let error = hex(HOST_UNREACHABLE);
        let why = "ICMP host unreachable (code 1) from 192.0.2.254".to_string();
        let ours = expect("198.51.100.1", Some(0x1234), 3);
        assert_eq!(judge(&error, &ours), Seen::Unreachable(why));
        assert_eq!(
            judge(&error, &expect("198.51.100.1", Some(0x1234), 4)),
            Seen::Other
        );
        assert_eq!(
            judge(&error, &expect("198.51.100.2", Some(0x1234), 3)),
            Seen::Other
        );
    }

    #[test]
    fn icmpv6_replies_and_unreachables() {
        let ours = expect("::1", Some(0x1234), 5);
        assert_eq!(classify(&hex(REPLY_V6), LOCAL6, &ours), Seen::Reply);
        assert_eq!(
            classify(&hex(REPLY_V6), "::2".parse().unwrap(), &ours),
            Seen::Other
        );
        // Address unreachable (type 1 code 3), quoting the IPv6 header and our request.
        let ours = expect("2001:db8::2", Some(0x1234), 5);
        let mut error = vec![1, 3, 0, 0, 0, 0, 0, 0, 0x60, 0, 0, 0, 0, 24, 58, 64];
        error.extend("2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        error.extend("2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
        error.extend(echo_request(true, 0x1234, 5));
        let why = "ICMP host unreachable (code 3) from 2001:db8::ff".to_string();
        assert_eq!(
            classify(&error, "2001:db8::ff".parse().unwrap(), &ours),
            Seen::Unreachable(why)
        );
    }

    #[test]
    fn truncated_packets_are_ignored() {
        // The shortest length that still holds what we match on.
        for (packet, ours, needed) in [
            (REPLY, expect("127.0.0.1", Some(0x1234), 2), 20 + 8),
            (
                REPLY_WITH_OPTIONS,
                expect("127.0.0.1", Some(0x1234), 1),
                32 + 8,
            ),
            (
                HOST_UNREACHABLE,
                expect("198.51.100.1", Some(0x1234), 3),
                20 + 8 + 20 + 8,
            ),
        ] {
            let packet = hex(packet);
            for len in 0..=packet.len() {
                let seen = judge(&packet[..len], &ours);
                assert_eq!(seen == Seen::Other, len < needed, "{len} bytes: {seen:?}");
            }
        }
    }

    #[tokio::test]
    #[ignore = "needs root (raw sockets, namespaces or the kernel log): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
    async fn loopback_answers_echo_and_connect() {
        for ip in [LOCAL4, LOCAL6] {
            let listener = TcpListener::bind((ip, 0)).unwrap();
            let got = crate::checks::dns::reachability(
                &HickoryTransport,
                listener.local_addr().unwrap(),
                Duration::from_secs(2),
            )
            .await;
            assert_eq!(got.icmp.outcome, ReachOutcome::Reply, "{ip}: {got:?}");
            assert!(
                got.icmp.elapsed_ms > 0.0 && got.icmp.elapsed_ms < 1000.0,
                "{got:?}"
            );
            assert_eq!(got.tcp.outcome, ReachOutcome::Reply, "{ip}: {got:?}");
        }
    }

    #[tokio::test]
    async fn closed_port_is_refused() {
        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let got = connect(closed, Duration::from_secs(2)).await;
        assert_eq!((got.outcome, got.detail), (ReachOutcome::Refused, None));
    }

    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "needs root (raw sockets, namespaces or the kernel log): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
    async fn raw_echoes_ignore_each_others_packets() {
        // Every raw socket reads every echo request and reply on lo.
        let targets = [LOCAL4, LOCAL6].into_iter().cycle().take(8);
        let echoes =
            targets.map(|ip| echo((ip, 0).into(), Duration::from_secs(2), Some(Kind::Raw)));
        for got in join_all(echoes).await {
            assert_eq!(got.outcome, ReachOutcome::Reply, "{got:?}");
        }
    }

    /// A client namespace and a router namespace on a veth link (10.97.0.0/24), made for one
    /// test and deleted after it, even when it panics. The router reports 10.97.1.0/24
    /// unreachable; 10.97.0.2 has a neighbour entry but no host, so it is silent; the client
    /// has no route to 10.97.2.0/24, and ping sockets are open to root.
    struct Lab {
        client: String,
        router: String,
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            for ns in [&self.client, &self.router] {
                let _ = Command::new("ip").args(["netns", "del", ns]).status();
            }
        }
    }

    /// Which of `cases_in_a_private_network`'s runs a test binary is.
    const LAB_MODE: &str = "CAUSEWAY_REACH_LAB";

    #[test]
    #[ignore = "needs root (raw sockets, namespaces or the kernel log): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
    fn cases_in_a_private_network() {
        if let Ok(mode) = std::env::var(LAB_MODE) {
            // This is the re-run inside the namespace.
            let ran = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(lab::run_all());
            println!("reach lab: mode {mode}: {ran} cases ran");
            return;
        }
        let pid = std::process::id();
        let lab = Lab {
            client: format!("cw-reach-{pid}-c"),
            router: format!("cw-reach-{pid}-r"),
        };
        let (c, r) = (&lab.client, &lab.router);
        for args in [
            format!("netns add {c}"),
            format!("netns add {r}"),
            format!("-n {c} link set lo up"),
            format!("-n {c} link add q0 type veth peer name q1 netns {r}"),
            format!("-n {c} addr add 10.97.0.1/24 dev q0"),
            format!("-n {c} link set q0 up"),
            format!("-n {c} route add 10.97.1.0/24 via 10.97.0.254"),
            format!("-n {c} route add unreachable 10.97.2.0/24"),
            format!("-n {c} neigh add 10.97.0.2 lladdr 02:00:00:00:00:02 dev q0 nud permanent"),
            format!("-n {r} addr add 10.97.0.254/24 dev q1"),
            format!("-n {r} link set q1 up"),
            format!("-n {r} route add unreachable 10.97.1.0/24"),
            // Unlimited ICMP errors: the tests cause several to one peer at once.
            format!("netns exec {r} sysctl -qw net.ipv4.ip_forward=1 net.ipv4.icmp_ratelimit=0"),
            // A tab, as these arguments are split at spaces.
            format!("netns exec {c} sysctl -qw net.ipv4.ping_group_range=0\t0"),
        ] {
            let args: Vec<_> = args.split(' ').collect();
            let status = Command::new("ip").args(&args).status().unwrap();
            assert!(status.success(), "ip {args:?}");
        }
        // As root; without CAP_NET_RAW; without it and outside ping_group_range too.
        let nobody = [
            "setpriv",
            "--bounding-set=-net_raw",
            "--inh-caps=-net_raw",
            "--regid=65534",
            "--clear-groups",
        ];
        for (mode, setpriv) in [("root", &[][..]), ("ping", &nobody[..3]), ("none", &nobody)] {
            let out = Command::new("ip")
                .args(["netns", "exec", c])
                .args(setpriv)
                .arg(std::env::current_exe().unwrap())
                .args([
                    "checks::reach::tests::cases_in_a_private_network",
                    "--exact",
                    "--include-ignored",
                    "--nocapture",
                ])
                .env(LAB_MODE, mode)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            // Every case of the mode ran (the others return at once).
            let cases = if mode == "root" { 5 } else { 1 };
            let ran_all = stdout.contains(&format!("reach lab: mode {mode}: {cases} cases ran"));
            assert!(
                out.status.success() && ran_all,
                "{mode}:\n{stdout}\n{stderr}"
            );
        }
    }

    /// Run by `cases_in_a_private_network` in its client namespace. Each case returns at once
    /// when it is not meant for the current mode (root, no CAP_NET_RAW, no ping group either).
    mod lab {
        use super::*;

        /// Runs every case; returns how many were meant for this mode.
        pub(super) async fn run_all() -> usize {
            let root = mode().as_deref() == Some("root");
            ping_sockets_get_replies().await;
            raw_echo_ignores_ping_socket_traffic().await;
            silent_host_is_no_reply_after_the_timeout().await;
            router_says_unreachable().await;
            no_route_is_unreachable().await;
            unprivileged_echo_falls_back_or_says_why_not().await;
            if root { 5 } else { 1 }
        }

        fn mode() -> Option<String> {
            std::env::var(LAB_MODE).ok()
        }

        fn addr(s: &str) -> SocketAddr {
            s.parse().unwrap()
        }

        async fn ping_sockets_get_replies() {
            if mode().as_deref() != Some("root") {
                return;
            }
            for target in ["127.0.0.1:0", "[::1]:0"] {
                let got = echo(addr(target), Duration::from_secs(2), Some(Kind::Datagram)).await;
                assert_eq!(got.outcome, ReachOutcome::Reply, "{target}: {got:?}");
            }
        }

        async fn raw_echo_ignores_ping_socket_traffic() {
            if mode().as_deref() != Some("root") {
                return;
            }
            let timeout = Duration::from_secs(2);
            let target = addr("127.0.0.1:0");
            let pings = join_all((0..4).map(|_| echo(target, timeout, Some(Kind::Datagram))));
            let (raw, pings) = tokio::join!(echo(target, timeout, Some(Kind::Raw)), pings);
            for got in pings.iter().chain([&raw]) {
                assert_eq!(got.outcome, ReachOutcome::Reply, "{got:?}");
            }
        }

        async fn silent_host_is_no_reply_after_the_timeout() {
            if mode().as_deref() != Some("root") {
                return;
            }
            let (target, timeout) = (addr("10.97.0.2:53"), Duration::from_millis(100));
            let start = Instant::now();
            let (both, raw, ping) = tokio::join!(
                crate::checks::dns::reachability(&HickoryTransport, target, timeout),
                echo(target, timeout, Some(Kind::Raw)),
                echo(target, timeout, Some(Kind::Datagram)),
            );
            let took = start.elapsed();
            assert!(took >= timeout && took < timeout * 3, "{took:?}");
            for got in [both.icmp, both.tcp, raw, ping] {
                assert_eq!(got.outcome, ReachOutcome::NoReply, "{got:?}");
                assert!(got.elapsed_ms >= 99.0, "{got:?}");
            }
        }

        async fn router_says_unreachable() {
            if mode().as_deref() != Some("root") {
                return;
            }
            let target = addr("10.97.1.1:53");
            let (raw, ping, tcp) = tokio::join!(
                echo(target, Duration::from_secs(2), Some(Kind::Raw)),
                echo(target, Duration::from_millis(300), Some(Kind::Datagram)),
                connect(target, Duration::from_secs(2)),
            );
            let why = "ICMP host unreachable (code 1) from 10.97.0.254";
            assert_eq!(
                (raw.outcome, raw.detail.as_deref()),
                (ReachOutcome::Unreachable, Some(why))
            );
            assert_eq!(tcp.outcome, ReachOutcome::Unreachable, "{tcp:?}");
            assert!(tcp.detail.unwrap().contains("No route to host"));
            // A soft error, which a ping socket without IP_RECVERR is not told of.
            assert_eq!(ping.outcome, ReachOutcome::NoReply, "{ping:?}");
        }

        async fn no_route_is_unreachable() {
            if mode().as_deref() != Some("root") {
                return;
            }
            let (target, timeout) = (addr("10.97.2.1:53"), Duration::from_secs(2));
            let (raw, ping, tcp) = tokio::join!(
                echo(target, timeout, Some(Kind::Raw)),
                echo(target, timeout, Some(Kind::Datagram)),
                connect(target, timeout),
            );
            for got in [raw, ping, tcp] {
                assert_eq!(got.outcome, ReachOutcome::Unreachable, "{got:?}");
                assert!(
                    got.detail.as_ref().unwrap().contains("No route to host"),
                    "{got:?}"
                );
            }
        }

        async fn unprivileged_echo_falls_back_or_says_why_not() {
            let want = match mode().as_deref() {
                Some("ping") => ReachOutcome::Reply,
                Some("none") => ReachOutcome::NotTested,
                _ => return,
            };
            let target = addr("127.0.0.1:0");
            let got = echo(target, Duration::from_secs(2), None).await;
            assert_eq!(got.outcome, want, "{got:?}");
            let raw = echo(target, Duration::from_secs(2), Some(Kind::Raw)).await;
            for got in [raw]
                .into_iter()
                .chain((want == ReachOutcome::NotTested).then_some(got))
            {
                let got = (got.outcome, got.detail.as_deref());
                assert_eq!(got, (ReachOutcome::NotTested, Some(NEEDS)));
            }
        }
    }
}
