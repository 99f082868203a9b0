//! Tests against the kernel, on 127.0.0.1 in the default network namespace. They need root (or
//! CAP_NET_RAW) and fail, not skip, without it. Other tests run at the same time: every test
//! has its own [`Capture`], its own listeners on port 0, and never assumes it is alone on `lo`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use causeway_schema::{Direction, PacketTrace, ServerTtl, TcpFlags, TtlSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use super::*;
use crate::capture::targets::LINGER;

const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: canary\r\n\r\n";
const REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

const SYN: u8 = TcpFlags::SYN;
const ACK: u8 = TcpFlags::ACK;
const RST: u8 = TcpFlags::RST;
const FIN: u8 = TcpFlags::FIN;
const PSH: u8 = TcpFlags::PSH;

/// A bound client socket and the watch of its flow to `remote`.
fn watched_socket(cap: &Capture, remote: SocketAddr) -> (TcpSocket, FlowWatch) {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind("0.0.0.0:0".parse().unwrap()).unwrap();
    let port = sock.local_addr().unwrap().port();
    let watch = cap.watch(port, remote).unwrap_or_else(|e| {
        panic!("capture tests need root or CAP_NET_RAW (they do not skip): {e}")
    });
    (sock, watch)
}

/// Reads until the end of the request head (or EOF).
fn read_head(s: &mut TcpStream) {
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
}

/// Accepts one connection, reads the request, then replies and closes, or resets it.
fn serve_once(listener: TcpListener, reset: bool) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        read_head(&mut s);
        if reset {
            // SO_LINGER 0: close sends RST instead of FIN.
            socket2::SockRef::from(&s)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
        } else {
            s.write_all(REPLY).unwrap();
        }
    })
}

/// A local port nothing listens on (bound, then released).
fn dead_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn lo_stats(cap: &Capture) -> CaptureStats {
    cap.stats()
        .into_iter()
        .find(|s| s.interface == "lo")
        .expect("a capture on lo")
}

fn rows(t: &PacketTrace) -> Vec<(Direction, u8, u32, u32)> {
    t.packets
        .iter()
        .map(|p| (p.dir, p.flags.0, p.seq, p.ack))
        .collect()
}

fn show(t: &PacketTrace) -> String {
    t.packets.iter().map(|p| format!("\n  {p}")).collect()
}

/// A successful exchange: the trace holds the handshake, both payloads and the close, in
/// relative numbers, with the SYN-ACK's TTL.
#[tokio::test]
#[ignore = "needs root (raw sockets, namespaces or the kernel log): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
async fn capture_traces_a_whole_connection_on_lo() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let remote = listener.local_addr().unwrap();
    let server = serve_once(listener, false);
    let cap = Capture::default();
    let (sock, watch) = watched_socket(&cap, remote);
    assert_eq!(watch.interface(), "lo");
    let local_port = sock.local_addr().unwrap().port();
    let mut stream = sock.connect(remote).await.unwrap();
    stream.write_all(REQUEST).await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    assert_eq!(reply, REPLY);
    server.join().unwrap();

    let t = watch.finish(true).await.expect("a trace");
    let s = show(&t);
    assert_eq!(t.interface, "lo");
    assert_eq!(t.remote, remote);
    assert_eq!(t.local, SocketAddr::from(([127, 0, 0, 1], local_port)));
    assert_eq!(t.truncated, 0);
    let r = rows(&t);
    use Direction::{In, Out};
    assert_eq!(
        r[..3],
        [(Out, SYN, 0, 0), (In, SYN | ACK, 0, 1), (Out, ACK, 1, 1)],
        "{s}"
    );
    let req = t
        .packets
        .iter()
        .find(|p| p.dir == Out && p.len > 0)
        .expect(&s);
    assert_eq!(
        (req.seq, req.len, req.flags.has(PSH)),
        (1, REQUEST.len() as u32, true),
        "{s}"
    );
    let resp = t
        .packets
        .iter()
        .find(|p| p.dir == In && p.len > 0)
        .expect(&s);
    assert_eq!(
        (resp.seq, resp.ack, resp.len),
        (1, 1 + REQUEST.len() as u32, REPLY.len() as u32)
    );
    assert!(
        t.packets.iter().any(|p| p.dir == In && p.flags.has(FIN)),
        "{s}"
    );
    assert!(t.packets.iter().all(|p| p.ttl == 64), "{s}");
    assert_eq!(t.packets[0].t_ms, 0.0);
    assert!(t.packets.windows(2).all(|w| w[0].t_ms <= w[1].t_ms), "{s}");
    assert!(
        (crate::now_ms() - t.started_at_ms).abs() < 10_000,
        "{}",
        t.started_at_ms
    );
    assert_eq!(
        t.server_ttl,
        Some(ServerTtl {
            ttl: 64,
            source: TtlSource::ThisConnection
        })
    );
    let stats = lo_stats(&cap);
    assert_eq!(
        (stats.flows, stats.targets),
        (0, 0),
        "finish unregisters: {stats:?}"
    );
    assert!(stats.running);
}

/// A watched connection to a port nothing listens on: refused, and its trace the SYN and the
/// RST,ACK that answered it.
async fn refused_trace(cap: &Capture) -> PacketTrace {
    refused_trace_to(cap, dead_port()).await
}

/// [`refused_trace`] to a given dead port.
async fn refused_trace_to(cap: &Capture, remote: SocketAddr) -> PacketTrace {
    let (sock, watch) = watched_socket(cap, remote);
    let err = sock.connect(remote).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    let t = watch.finish(true).await.expect("a trace");
    use Direction::{In, Out};
    assert_eq!(
        rows(&t),
        [(Out, SYN, 0, 0), (In, RST | ACK, 0, 1)],
        "{}",
        show(&t)
    );
    t
}

/// Refused: the SYN and the RST,ACK that answered it; no TTL learnt for a fresh capture.
#[tokio::test]
#[ignore = "needs root (raw sockets, namespaces or the kernel log): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
async fn capture_traces_a_refused_connection() {
    let t = refused_trace(&Capture::default()).await;
    assert_eq!(t.inbound_reset().map(|p| p.ttl), Some(64));
    assert_eq!(t.server_ttl, None);
}

/// Waits (bounded) until no target lingers in the lo filter any more; returns the stats.
async fn wait_linger_over(cap: &Capture) -> CaptureStats {
    let deadline = std::time::Instant::now() + LINGER + Duration::from_secs(10);
    loop {
        let stats = lo_stats(cap);
        if stats.lingering == 0 {
            return stats;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a target still lingers: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Between checks the thread sleeps in its wait with no timer: once the last target stopped
/// lingering, over 2.5 s it wakes at most once (a stray packet), where a 1 s timer would wake
/// it at least twice. The next check's flow is still captured from its SYN.
#[tokio::test]
#[ignore = "needs root (raw sockets, namespaces or the kernel log): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
async fn an_idle_thread_does_not_wake_and_the_next_flow_is_captured() {
    let cap = Capture::default();
    refused_trace(&cap).await;
    let before = wait_linger_over(&cap).await.wakeups;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = lo_stats(&cap).wakeups;
    assert!(
        after - before <= 1,
        "the idle thread woke {} times in 2.5 s",
        after - before
    );
    refused_trace(&cap).await;
}

/// The filter is attached once per target set: a second check of the same target within the
/// linger finds it in the filter; once the linger is over the filter closes (a second attach).
#[tokio::test]
#[ignore = "needs root (raw sockets, namespaces or the kernel log): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
async fn checks_of_one_target_attach_the_filter_once() {
    let cap = Capture::default();
    let remote = dead_port();
    for _ in 0..3 {
        refused_trace_to(&cap, remote).await;
    }
    let stats = lo_stats(&cap);
    assert_eq!(
        (stats.attaches, stats.targets, stats.lingering),
        (1, 0, 1),
        "{stats:?}"
    );
    let stats = wait_linger_over(&cap).await;
    assert_eq!(
        stats.attaches, 2,
        "the filter closes after the linger: {stats:?}"
    );
}

/// Reset by the server after the request: the RST is in the trace, already drained when the
/// client saw the error.
#[tokio::test]
#[ignore = "needs root (raw sockets, namespaces or the kernel log): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
async fn capture_traces_a_reset_after_the_request() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let remote = listener.local_addr().unwrap();
    let server = serve_once(listener, true);
    let cap = Capture::default();
    let (sock, watch) = watched_socket(&cap, remote);
    let mut stream = sock.connect(remote).await.unwrap();
    stream.write_all(REQUEST).await.unwrap();
    let mut buf = Vec::new();
    let err = stream.read_to_end(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    server.join().unwrap();
    let t = watch.finish(true).await.expect("a trace");
    let s = show(&t);
    let rst = t.inbound_reset().expect(&s);
    assert_eq!((rst.seq, rst.ttl), (1, 64), "{s}");
    assert!(
        t.packets
            .iter()
            .any(|p| p.dir == Direction::Out && p.len > 0),
        "{s}"
    );
    assert_eq!(
        t.server_ttl,
        Some(ServerTtl {
            ttl: 64,
            source: TtlSource::ThisConnection
        })
    );
}

/// Traffic to another port on the same address does not even reach the thread (the kernel
/// filter drops it), and is not in the trace.
#[tokio::test]
#[ignore = "needs root (raw sockets, namespaces or the kernel log): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
async fn capture_filter_keeps_other_ports_out() {
    let watched = TcpListener::bind("127.0.0.1:0").unwrap();
    let remote = watched.local_addr().unwrap();
    let (close_tx, close_rx) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut s, _) = watched.accept().unwrap();
        read_head(&mut s);
        s.write_all(REPLY).unwrap();
        let _ = close_rx.recv(); // keep the connection open, quiet
    });
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let other_addr = other.local_addr().unwrap();
    let other_server = std::thread::spawn(move || {
        for _ in 0..3 {
            let (mut s, _) = other.accept().unwrap();
            read_head(&mut s);
            s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        }
    });

    let cap = Capture::default();
    let (sock, watch) = watched_socket(&cap, remote);
    let mut stream = sock.connect(remote).await.unwrap();
    stream.write_all(REQUEST).await.unwrap();
    let mut reply = vec![0u8; REPLY.len()];
    stream.read_exact(&mut reply).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = lo_stats(&cap);

    const OTHER_REQUEST: &[u8] = b"GET /other/path HTTP/1.1\r\nHost: x\r\n\r\n";
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(other_addr).await.unwrap();
        s.write_all(OTHER_REQUEST).await.unwrap();
        let mut sink = Vec::new();
        s.read_to_end(&mut sink).await.unwrap();
    }
    other_server.join().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after = lo_stats(&cap);
    assert_eq!(after.unmatched, before.unmatched, "{before:?} -> {after:?}");
    assert_eq!(after.received, before.received, "{before:?} -> {after:?}");

    let t = watch.finish(true).await.expect("a trace");
    assert!(
        t.packets
            .iter()
            .all(|p| p.len as usize != OTHER_REQUEST.len()),
        "{}",
        show(&t)
    );
    assert!(t.packets.len() >= 6, "{}", show(&t));
    drop(close_tx);
    server.join().unwrap();
}

/// A successful check keeps no trace but its SYN-ACK's TTL, which a later failure to the same
/// address reports as learnt from an earlier connection.
#[tokio::test]
#[ignore = "needs root (raw sockets, namespaces or the kernel log): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
async fn capture_remembers_the_ttl_of_successful_checks() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let remote = listener.local_addr().unwrap();
    let server = serve_once(listener, false);
    let cap = Capture::default();
    let (sock, watch) = watched_socket(&cap, remote);
    let mut stream = sock.connect(remote).await.unwrap();
    stream.write_all(REQUEST).await.unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    server.join().unwrap();
    assert_eq!(watch.finish(false).await, None);

    let dead = dead_port();
    let (sock, watch) = watched_socket(&cap, dead);
    sock.connect(dead).await.unwrap_err();
    let t = watch.finish(true).await.expect("a trace");
    assert_eq!(
        t.server_ttl,
        Some(ServerTtl {
            ttl: 64,
            source: TtlSource::EarlierConnection
        })
    );
}

/// The filter for the most targets loads into the kernel; one more is refused; dropping the
/// watches empties the filter.
#[tokio::test]
#[ignore = "needs root (raw sockets, namespaces or the kernel log): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
async fn capture_caps_targets_per_interface() {
    let cap = Capture::default();
    let mut watches = Vec::new();
    for i in 0..bpf::MAX_TARGETS as u16 {
        // IPv6 targets make the longest program; ::1 routes through lo.
        let remote = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 20_000 + i));
        let w = cap
            .watch(30_000 + i, remote)
            .unwrap_or_else(|e| panic!("target {i}: {e}"));
        watches.push(w);
    }
    let remote = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 19_999));
    let err = cap.watch(1, remote).unwrap_err();
    assert!(matches!(err, CaptureOff::TooManyTargets { .. }), "{err}");
    // A second flow to a known target needs no new slot.
    let again = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 20_000));
    watches.push(cap.watch(2, again).unwrap());
    assert_eq!(lo_stats(&cap).targets, bpf::MAX_TARGETS);
    watches.clear();
    let stats = lo_stats(&cap);
    assert_eq!((stats.targets, stats.flows), (0, 0), "{stats:?}");
}

#[test]
fn capture_off_reasons_log_once_and_say_how_to_fix() {
    let notes = LogOnce::default();
    let off = CaptureOff::NoPermission;
    assert!(notes.first(&off.log_key()));
    assert!(!notes.first(&off.log_key()));
    let text = off.to_string();
    assert!(
        text.contains("CAP_NET_RAW") && text.contains("setcap"),
        "{text}"
    );
}
