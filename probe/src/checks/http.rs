//! The canary request: one GET to one address, driven by hand on hyper's connection API.
//!
//! Not reqwest (FINDINGS, "The canary request"): we bind the socket ourselves so the local port
//! is known before the SYN (a later capture matches packets by 4-tuple), and we time each phase
//! ourselves (connect, TLS, first byte), which reqwest cannot report.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use causeway_schema::{BODY_EXCERPT_MAX, Evidence, Failure, FailureKind};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpSocket;
use tokio::time::timeout_at;

use super::Check;
use crate::AbortOnDrop;
use crate::capture::{Capture, FlowWatch};
use crate::checks::tls::{TlsSetup, evidence as tls_evidence, failure_of as tls_failure_of};
use crate::config::{Canary, format_duration};

/// The most body we read: enough for any health page, bounded so a huge page cannot eat memory.
pub const MAX_BODY: usize = 1024 * 1024;
/// Failure messages are cut here: the classifier quotes them in a 1024-character explanation.
const MAX_MESSAGE: usize = 400;

const USER_AGENT: &str = concat!("causeway-probe/", env!("CARGO_PKG_VERSION"));

/// What one request to one address saw. More than the wire `CheckResult` needs: the local
/// address is for matching packet captures.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOutcome {
    /// Our end of the connection: the port is known before the SYN is sent, the address once
    /// the connection is up. `None` only when no socket could be made.
    pub local: Option<SocketAddr>,
    pub remote: SocketAddr,
    pub status: Option<u16>,
    pub connect_ms: Option<f64>,
    pub tls_ms: Option<f64>,
    /// From the request written to the first byte of the response.
    pub first_byte_ms: Option<f64>,
    /// The whole check, from before the connect to its end (resolution not included), as
    /// the runner measured it ([`crate::checks::run`]).
    pub total_ms: f64,
    /// `None` when the canary answered as expected.
    pub failure: Option<Failure>,
    /// For failures: the expected status or text, the body's start and the packet trace.
    /// Default when ok.
    pub evidence: Evidence,
}

/// The canary request to one of its addresses: the target of an HTTP check. Tests replace
/// the check with canned outcomes, so cycle logic is tested without sockets.
#[derive(Debug, Clone)]
pub struct Fetch {
    pub canary: Canary,
    pub address: IpAddr,
}

/// What the cycle runs for each address of a canary.
pub trait HttpCheck: Check<Fetch, Outcome = HttpOutcome> {}

impl<T: Check<Fetch, Outcome = HttpOutcome>> HttpCheck for T {}

/// The real canary request.
#[derive(Clone)]
pub struct HttpChecker {
    /// Built once: loading the platform's roots is not free. An error is reported by every
    /// https check rather than stopping the probe.
    tls: Result<Arc<TlsSetup>, String>,
    /// Captures each request's packets, for the trace of a failed one.
    capture: Option<Arc<Capture>>,
}

impl Default for HttpChecker {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpChecker {
    /// A checker without packet capture.
    pub fn new() -> Self {
        let tls = TlsSetup::platform()
            .map(Arc::new)
            .map_err(|e| format!("cannot set up TLS certificate verification: {e}"));
        HttpChecker { tls, capture: None }
    }

    /// A checker whose failed requests carry their packet trace.
    pub fn with_capture(capture: Arc<Capture>) -> Self {
        HttpChecker {
            capture: Some(capture),
            ..Self::new()
        }
    }
}

impl Check<Fetch> for HttpChecker {
    type Outcome = HttpOutcome;

    fn run(
        &self,
        target: Fetch,
        deadline: tokio::time::Instant,
    ) -> impl Future<Output = HttpOutcome> + Send {
        let tls = self.tls.clone();
        let capture = self.capture.clone();
        async move {
            let Fetch { canary, address } = target;
            fetch(&canary, address, deadline, tls, capture.as_deref()).await
        }
    }
}

async fn fetch(
    canary: &Canary,
    address: IpAddr,
    deadline: tokio::time::Instant,
    tls: Result<Arc<TlsSetup>, String>,
    capture: Option<&Capture>,
) -> HttpOutcome {
    let remote = SocketAddr::new(address, canary.target.port);
    let mut out = HttpOutcome {
        local: None,
        remote,
        status: None,
        connect_ms: None,
        tls_ms: None,
        first_byte_ms: None,
        total_ms: 0.0,
        failure: None,
        evidence: Evidence::default(),
    };
    let mut watch = None;
    let result = request(canary, remote, deadline, tls, capture, &mut watch, &mut out).await;
    if let Err(mut failure) = result {
        failure.message = causeway_schema::cut(failure.message, MAX_MESSAGE);
        out.failure = Some(failure);
    }
    if let Some(mut watch) = watch {
        if let Some(local) = out.local.filter(|l| !l.ip().is_unspecified()) {
            watch.set_local(local);
        }
        // Successful checks keep no trace; finish still lets the capture learn the TTL.
        out.evidence.trace = watch.finish(out.failure.is_some()).await;
    }
    out
}

fn fail(kind: FailureKind, message: impl Into<String>) -> Failure {
    Failure {
        kind,
        message: message.into(),
    }
}

/// Runs the request, filling `out` phase by phase so a failure keeps what was measured. The
/// capture (if any) starts watching the connection once its local port is known, before the
/// SYN; the watch is left in `watch` for the caller to finish.
async fn request(
    canary: &Canary,
    remote: SocketAddr,
    deadline: tokio::time::Instant,
    tls: Result<Arc<TlsSetup>, String>,
    capture: Option<&Capture>,
    watch: &mut Option<FlowWatch>,
    out: &mut HttpOutcome,
) -> Result<(), Failure> {
    let limit = format_duration(canary.timeout);
    let socket = bound_socket(remote).map_err(|e| {
        fail(
            FailureKind::ConnectError,
            format!("cannot make a socket: {e}"),
        )
    })?;
    out.local = socket.local_addr().ok();
    if let (Some(capture), Some(local)) = (capture, out.local) {
        // Capture being off is logged once by the capture; the check goes on without a trace.
        *watch = capture.watch(local.port(), remote).ok();
    }

    let t = Instant::now();
    let stream = match timeout_at(deadline, socket.connect(remote)).await {
        Err(_) => {
            return Err(fail(
                FailureKind::ConnectTimeout,
                format!("no TCP handshake with {remote} within {limit}"),
            ));
        }
        Ok(Err(e)) => return Err(connect_failure(remote, &e)),
        Ok(Ok(s)) => s,
    };
    out.connect_ms = Some(ms(t.elapsed()));
    out.local = stream.local_addr().ok().or(out.local);
    // Small writes go out at once: the request is one segment and its timing is honest.
    let _ = stream.set_nodelay(true);

    let io: Box<dyn Io> = if canary.target.tls {
        let setup = match &canary.tls.ca {
            // A private CA: its verifier was built when the config was read.
            Some(ca) => ca.setup.clone(),
            None => tls.map_err(|e| fail(FailureKind::Tls, e))?,
        };
        let sni = match &canary.tls.server_name {
            Some(name) => name.clone(),
            None => canary.target.host.to_string(),
        };
        let name = tls_name(&sni)?;
        let (config, seen) = setup
            .for_handshake()
            .map_err(|e| fail(FailureKind::Tls, format!("cannot set up TLS: {e}")))?;
        let t = Instant::now();
        let connector = tokio_rustls::TlsConnector::from(config);
        let handshake = timeout_at(deadline, connector.connect(name, stream)).await;
        // The evidence whatever the outcome: a refused certificate is the one worth seeing.
        let (connection, failure) = match &handshake {
            Ok(Ok(s)) => {
                out.tls_ms = Some(ms(t.elapsed()));
                (Some(s.get_ref().1), None)
            }
            Ok(Err(e)) => (None, Some(tls_failure_of(e))),
            Err(_) => (None, None),
        };
        out.evidence.tls = Some(tls_evidence(sni, connection, out.tls_ms, &seen, failure));
        let tls_stream = match handshake {
            Err(_) => {
                return Err(fail(
                    FailureKind::ResponseTimeout,
                    format!(
                        "{remote} accepted the connection but the TLS handshake did not finish within {limit}"
                    ),
                ));
            }
            Ok(Err(e)) => {
                return Err(fail(
                    FailureKind::Tls,
                    format!("TLS handshake with {remote} failed: {}", chain(&e)),
                ));
            }
            Ok(Ok(s)) => s,
        };
        Box::new(tls_stream)
    } else {
        Box::new(stream)
    };

    let clock = Arc::new(Mutex::new(IoClock::default()));
    let io = Timed {
        inner: io,
        clock: clock.clone(),
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|e| fail(FailureKind::Protocol, chain(&e)))?;
    // The connection task ends with the request; aborting it on every path makes sure a
    // hanging server never keeps a task (and its socket) alive past the check.
    let _connection = AbortOnDrop::new(&tokio::spawn(connection));

    let req = hyper::Request::get(canary.target.path_and_query.as_str())
        .header(hyper::header::HOST, canary.target.host_header.as_str())
        .header(hyper::header::USER_AGENT, USER_AGENT)
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| {
            fail(
                FailureKind::Protocol,
                format!("cannot build the request: {e}"),
            )
        })?;
    let response = match timeout_at(deadline, sender.send_request(req)).await {
        Err(_) => {
            out.first_byte_ms = clock.lock().unwrap().first_byte_ms();
            return Err(fail(
                FailureKind::ResponseTimeout,
                format!("{remote} accepted the connection but sent no response within {limit}"),
            ));
        }
        Ok(Err(e)) => {
            out.first_byte_ms = clock.lock().unwrap().first_byte_ms();
            return Err(hyper_failure(remote, &e, false));
        }
        Ok(Ok(r)) => r,
    };
    out.first_byte_ms = clock.lock().unwrap().first_byte_ms();
    let status = response.status().as_u16();
    // hyper takes any three digits; the report (and HTTP) only knows 100 to 599.
    if !(100..=599).contains(&status) {
        return Err(fail(
            FailureKind::Protocol,
            format!("{remote} answered with status {status}, which is not an HTTP status"),
        ));
    }
    out.status = Some(status);

    let body = read_body(response.into_body(), deadline, remote, &limit).await?;
    judge(canary, status, &body, out)
}

/// Status and text against the canary's expectations; a failure carries the body's start.
fn judge(canary: &Canary, status: u16, body: &[u8], out: &mut HttpOutcome) -> Result<(), Failure> {
    if status != canary.expect_status {
        out.evidence.expected_status = Some(canary.expect_status);
        out.evidence.body_excerpt = Some(excerpt(body));
        return Err(fail(
            FailureKind::UnexpectedStatus,
            format!("HTTP {status}, expected {}", canary.expect_status),
        ));
    }
    if let Some(text) = &canary.expect_text
        && !contains(body, text.as_bytes())
    {
        out.evidence.expected_text = Some(text.clone());
        out.evidence.body_excerpt = Some(excerpt(body));
        return Err(fail(
            FailureKind::BodyMismatch,
            format!(
                "the page ({} bytes read) does not contain {text:?}",
                body.len()
            ),
        ));
    }
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The first [`BODY_EXCERPT_MAX`] bytes, as text (invalid UTF-8 replaced). A multi-byte
/// character cut at the end becomes one replacement character, so the excerpt never has more
/// characters than bytes.
pub fn excerpt(body: &[u8]) -> String {
    let end = body.len().min(BODY_EXCERPT_MAX);
    String::from_utf8_lossy(&body[..end]).into_owned()
}

/// Reads at most [`MAX_BODY`] bytes; a longer body is cut, not an error.
async fn read_body(
    mut body: Incoming,
    deadline: tokio::time::Instant,
    remote: SocketAddr,
    limit: &str,
) -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    while buf.len() < MAX_BODY {
        let frame = match timeout_at(deadline, body.frame()).await {
            Err(_) => {
                return Err(fail(
                    FailureKind::ResponseTimeout,
                    format!(
                        "{remote} sent the response head but not the whole body within {limit} ({} bytes read)",
                        buf.len()
                    ),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(hyper_failure(remote, &e, true)),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            let room = MAX_BODY - buf.len();
            buf.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    Ok(buf)
}

/// A socket bound to an ephemeral port of the right family, so the port is known before the
/// SYN leaves.
fn bound_socket(remote: SocketAddr) -> std::io::Result<TcpSocket> {
    let (socket, any) = match remote {
        SocketAddr::V4(_) => (TcpSocket::new_v4()?, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        SocketAddr::V6(_) => (TcpSocket::new_v6()?, IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
    };
    socket.bind(SocketAddr::new(any, 0))?;
    Ok(socket)
}

/// The name the certificate is checked against: an IP address or a DNS name (SNI is sent for
/// a name only).
fn tls_name(name: &str) -> Result<ServerName<'static>, Failure> {
    ServerName::try_from(name.to_owned()).map_err(|e| {
        fail(
            FailureKind::Tls,
            format!("{name:?} cannot be a TLS server name: {e}"),
        )
    })
}

fn connect_failure(remote: SocketAddr, e: &std::io::Error) -> Failure {
    use std::io::ErrorKind;
    let kind = match e.kind() {
        ErrorKind::ConnectionRefused => FailureKind::ConnectRefused,
        // The kernel gave up on the SYN before our deadline.
        ErrorKind::TimedOut => FailureKind::ConnectTimeout,
        _ => FailureKind::ConnectError,
    };
    fail(kind, format!("connect to {remote}: {e}"))
}

/// Maps hyper's error on the response (head or body) to what went wrong on the wire.
fn hyper_failure(remote: SocketAddr, e: &hyper::Error, in_body: bool) -> Failure {
    use std::io::ErrorKind;
    let text = chain(e);
    let what = if in_body { "the body" } else { "a response" };
    if let Some(io) = find_io_error(e) {
        let kind = match io.kind() {
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                FailureKind::Reset
            }
            ErrorKind::TimedOut => FailureKind::ResponseTimeout,
            _ => FailureKind::ClosedWithoutResponse,
        };
        return fail(kind, format!("{remote} before {what}: {text}"));
    }
    let kind = if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        FailureKind::ClosedWithoutResponse
    } else if e.is_timeout() {
        FailureKind::ResponseTimeout
    } else {
        FailureKind::Protocol
    };
    fail(kind, format!("{remote} before {what}: {text}"))
}

fn find_io_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        current = err.source();
    }
    None
}

/// An error and its sources, `outer: inner: innermost`, without repeats (many wrappers repeat
/// their source in their own message).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut current = e.source();
    while let Some(err) = current {
        let s = err.to_string();
        if !text.contains(&s) {
            text.push_str(": ");
            text.push_str(&s);
        }
        current = err.source();
    }
    text
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A connection's byte stream, TCP or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// When the request was written and when the answer's first byte came. Taken at the plain
/// text side of TLS, so handshake traffic does not count.
#[derive(Default)]
struct IoClock {
    written: Option<Instant>,
    first_read: Option<Instant>,
}

impl IoClock {
    fn first_byte_ms(&self) -> Option<f64> {
        match (self.written, self.first_read) {
            (Some(w), Some(r)) => Some(ms(r.saturating_duration_since(w))),
            _ => None,
        }
    }
}

struct Timed {
    inner: Box<dyn Io>,
    clock: Arc<Mutex<IoClock>>,
}

impl AsyncRead for Timed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(poll, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let mut clock = self.clock.lock().unwrap();
            if clock.first_read.is_none() {
                clock.first_read = Some(Instant::now());
            }
        }
        poll
    }
}

impl AsyncWrite for Timed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            let mut clock = self.clock.lock().unwrap();
            // The last write before the answer started is "request written".
            if clock.first_read.is_none() {
                clock.written = Some(Instant::now());
            }
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            let mut clock = self.clock.lock().unwrap();
            if clock.first_read.is_none() {
                clock.written = Some(Instant::now());
            }
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::config::CaFile;
    use crate::config::Target;
    use crate::config::TargetHost;
    use causeway_schema::TlsFailure;

    const TIMEOUT: Duration = Duration::from_millis(800);

    fn canary(port: u16, tls: bool) -> Canary {
        Canary {
            name: "site".into(),
            url: format!("http://127.0.0.1:{port}/health"),
            target: Target {
                tls,
                host: TargetHost::Ip("127.0.0.1".parse().unwrap()),
                port,
                path_and_query: "/health".into(),
                host_header: format!("canary.test:{port}"),
            },
            expect_status: 200,
            expect_text: Some("canary-ok".into()),
            timeout: TIMEOUT,
            serving: crate::config::ServingRule::LongLived,
            tls: Default::default(),
            backends: Vec::new(),
        }
    }

    /// What the test server does with each connection, after reading the request head.
    #[derive(Clone)]
    enum Serve {
        /// Write these bytes and close.
        Reply(Vec<u8>),
        /// Reset the connection (SO_LINGER 0, then close).
        Reset,
        /// Close without a word.
        Close,
        /// Keep the connection open and say nothing.
        Hang,
        /// Reply without reading the request (for the TLS test: answers the ClientHello).
        ReplyAtOnce(Vec<u8>),
    }

    /// A one-connection-at-a-time server on 127.0.0.1. The request head it read is sent on the
    /// returned channel.
    async fn server(serve: Serve) -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut hung = Vec::new();
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                if let Serve::ReplyAtOnce(bytes) = &serve {
                    let _ = conn.write_all(bytes).await;
                    continue;
                }
                let head = read_head(&mut conn).await;
                let _ = tx.send(head);
                match &serve {
                    Serve::Reply(bytes) => {
                        conn.write_all(bytes).await.unwrap();
                        conn.shutdown().await.unwrap();
                    }
                    Serve::Reset => {
                        conn.set_zero_linger().unwrap();
                        drop(conn);
                    }
                    Serve::Close => drop(conn),
                    Serve::Hang => hung.push(conn),
                    Serve::ReplyAtOnce(_) => unreachable!(),
                }
            }
        });
        (port, rx)
    }

    async fn read_head(conn: &mut TcpStream) -> String {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if conn.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        String::from_utf8_lossy(&head).into_owned()
    }

    fn reply(status: &str, body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    /// The request as the cycle makes it, through the runner.
    async fn check(c: &Canary) -> HttpOutcome {
        let target = Fetch {
            canary: c.clone(),
            address: "127.0.0.1".parse().unwrap(),
        };
        crate::checks::run(&HttpChecker::new(), target, c.timeout).await
    }

    fn kind(o: &HttpOutcome) -> Option<FailureKind> {
        o.failure.as_ref().map(|f| f.kind)
    }

    /// Phases are each shorter than the whole and the whole is within the timeout (+ slack).
    fn assert_sane_timings(o: &HttpOutcome) {
        for phase in [o.connect_ms, o.tls_ms, o.first_byte_ms]
            .into_iter()
            .flatten()
        {
            assert!(phase >= 0.0 && phase <= o.total_ms, "{o:?}");
        }
        assert!(o.total_ms < TIMEOUT.as_secs_f64() * 1000.0 + 500.0, "{o:?}");
    }

    #[tokio::test]
    async fn ok_answer() {
        let (port, mut heads) = server(Serve::Reply(reply("200 OK", "all good: canary-ok"))).await;
        let o = check(&canary(port, false)).await;
        assert_eq!(o.failure, None, "{o:?}");
        assert_eq!(o.status, Some(200));
        assert_eq!(o.evidence, Evidence::default(), "no evidence for a success");
        assert!(o.connect_ms.is_some() && o.first_byte_ms.is_some(), "{o:?}");
        assert_eq!(o.tls_ms, None);
        assert_sane_timings(&o);
        let local = o.local.unwrap();
        assert_eq!(local.ip(), "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_ne!(local.port(), 0);
        assert_eq!(o.remote.port(), port);

        let head = heads.recv().await.unwrap();
        assert!(head.starts_with("GET /health HTTP/1.1\r\n"), "{head}");
        let head = head.to_ascii_lowercase();
        assert!(
            head.contains(&format!("host: canary.test:{port}\r\n")),
            "{head}"
        );
        assert!(head.contains("user-agent: causeway-probe/"), "{head}");
        assert!(head.contains("connection: close\r\n"), "{head}");
    }

    #[tokio::test]
    async fn wrong_status() {
        let (port, _) = server(Serve::Reply(reply(
            "503 Service Unavailable",
            "down for maintenance",
        )))
        .await;
        let o = check(&canary(port, false)).await;
        assert_eq!(kind(&o), Some(FailureKind::UnexpectedStatus), "{o:?}");
        assert_eq!(o.status, Some(503));
        assert_eq!(o.evidence.expected_status, Some(200));
        assert_eq!(
            o.evidence.body_excerpt.as_deref(),
            Some("down for maintenance")
        );
        assert_eq!(o.evidence.expected_text, None);
        assert!(o.first_byte_ms.is_some());
        assert_sane_timings(&o);
    }

    #[tokio::test]
    async fn missing_text() {
        let body = "x".repeat(2000);
        let (port, _) = server(Serve::Reply(reply("200 OK", &body))).await;
        let o = check(&canary(port, false)).await;
        assert_eq!(kind(&o), Some(FailureKind::BodyMismatch), "{o:?}");
        assert_eq!(o.status, Some(200));
        assert_eq!(o.evidence.expected_text.as_deref(), Some("canary-ok"));
        let excerpt = o.evidence.body_excerpt.as_deref().unwrap();
        assert_eq!(excerpt.len(), BODY_EXCERPT_MAX, "the excerpt is bounded");
        assert!(o.failure.unwrap().message.contains("2000 bytes read"));
    }

    #[tokio::test]
    async fn refused() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let o = check(&canary(port, false)).await;
        assert_eq!(kind(&o), Some(FailureKind::ConnectRefused), "{o:?}");
        assert_eq!(o.connect_ms, None);
        assert_eq!(o.first_byte_ms, None);
        assert_eq!(o.status, None);
        assert!(
            o.local.unwrap().port() != 0,
            "the local port is known even when connect fails"
        );
        assert!(o.total_ms < 500.0, "a refusal is immediate: {o:?}");
    }

    #[tokio::test]
    async fn reset_after_request() {
        let (port, _) = server(Serve::Reset).await;
        let o = check(&canary(port, false)).await;
        assert_eq!(kind(&o), Some(FailureKind::Reset), "{o:?}");
        assert!(o.connect_ms.is_some());
        assert_eq!(o.status, None);
        assert!(o.total_ms < 500.0, "{o:?}");
        assert_sane_timings(&o);
    }

    #[tokio::test]
    async fn close_without_response() {
        let (port, _) = server(Serve::Close).await;
        let o = check(&canary(port, false)).await;
        assert_eq!(kind(&o), Some(FailureKind::ClosedWithoutResponse), "{o:?}");
        assert!(o.connect_ms.is_some());
        assert_eq!(o.status, None);
        assert!(o.total_ms < 500.0, "{o:?}");
    }

    #[tokio::test]
    async fn hang_is_a_response_timeout() {
        let (port, mut heads) = server(Serve::Hang).await;
        let o = check(&canary(port, false)).await;
        assert_eq!(kind(&o), Some(FailureKind::ResponseTimeout), "{o:?}");
        assert!(heads.recv().await.is_some(), "the request was sent");
        assert!(o.connect_ms.is_some());
        assert_eq!(o.first_byte_ms, None);
        let limit = TIMEOUT.as_secs_f64() * 1000.0;
        assert!(o.total_ms >= limit - 5.0, "waited for the timeout: {o:?}");
        assert_sane_timings(&o);
    }

    #[tokio::test]
    async fn truncated_body_is_closed_without_response() {
        let (port, _) = server(Serve::Reply(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly a bit".to_vec(),
        ))
        .await;
        let o = check(&canary(port, false)).await;
        assert_eq!(kind(&o), Some(FailureKind::ClosedWithoutResponse), "{o:?}");
        assert_eq!(o.status, Some(200), "the head had arrived");
    }

    #[tokio::test]
    async fn garbage_is_a_protocol_error() {
        let (port, _) = server(Serve::Reply(b"SSH-2.0-OpenSSH_9.6\r\n\r\n".to_vec())).await;
        let o = check(&canary(port, false)).await;
        assert_eq!(kind(&o), Some(FailureKind::Protocol), "{o:?}");
    }

    #[tokio::test]
    async fn status_beyond_599_is_a_protocol_error() {
        let (port, _) = server(Serve::Reply(reply("600 Weird", "canary-ok"))).await;
        let o = check(&canary(port, false)).await;
        assert_eq!(kind(&o), Some(FailureKind::Protocol), "{o:?}");
        assert_eq!(o.status, None, "a report with status 600 would be refused");
    }

    #[tokio::test]
    async fn tls_to_a_plain_http_server_is_a_tls_failure() {
        let (port, _) = server(Serve::ReplyAtOnce(reply("400 Bad Request", "plain HTTP"))).await;
        let mut c = canary(port, true);
        c.target.host = TargetHost::Name("canary.test".into());
        let o = check(&c).await;
        assert_eq!(kind(&o), Some(FailureKind::Tls), "{o:?}");
        assert!(o.connect_ms.is_some());
        assert_eq!(o.tls_ms, None, "the handshake did not complete");
        assert_sane_timings(&o);
        let tls = o.evidence.tls.as_ref().expect("TLS evidence");
        assert_eq!(tls.sni, "canary.test");
        assert_eq!(
            (tls.version.as_ref(), tls.chain.len(), tls.failure),
            (None, 0, Some(TlsFailure::Other)),
            "{tls:?}"
        );
    }

    /// A TLS server on 127.0.0.1 serving `chain` (leaf first) with `key`, answering every
    /// request with a canary page.
    async fn tls_server(chain: Vec<Vec<u8>>, key: &rcgen::KeyPair) -> u16 {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                chain.into_iter().map(Into::into).collect(),
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A client that refuses the certificate ends the handshake here.
                    let Ok(mut tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let mut buf = vec![0; 4096];
                    let _ = tls.read(&mut buf).await;
                    let _ = tls.write_all(&reply("200 OK", "canary-ok")).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        port
    }

    /// A certificate for `names`: self-signed, or signed by `issuer`.
    fn certificate(
        names: &[&str],
        issuer: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>,
    ) -> (Vec<u8>, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = rcgen::CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0].as_str());
        let cert = match issuer {
            None => params.self_signed(&key).unwrap(),
            Some(issuer) => params.signed_by(&key, issuer).unwrap(),
        };
        (cert.der().to_vec(), key)
    }

    /// A private CA: its PEM and its issuer.
    fn private_ca() -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Lab CA");
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), rcgen::Issuer::new(params, key))
    }

    #[tokio::test]
    async fn an_untrusted_certificate_is_a_tls_failure_with_the_chain_as_served() {
        let (der, key) = certificate(&["canary.test"], None);
        let port = tls_server(vec![der.clone()], &key).await;
        let mut c = canary(port, true);
        c.target.host = TargetHost::Name("canary.test".into());
        let o = check(&c).await;
        assert_eq!(kind(&o), Some(FailureKind::Tls), "{o:?}");
        let tls = o.evidence.tls.as_ref().expect("TLS evidence");
        assert_eq!(tls.sni, "canary.test");
        assert_eq!(tls.version, None, "the handshake did not finish");
        assert_eq!(tls.failure, Some(TlsFailure::UnknownIssuer));
        let [leaf] = tls.chain.as_slice() else {
            panic!("one certificate served: {tls:?}");
        };
        assert_eq!(leaf.subject, "CN=canary.test");
        assert_eq!(leaf.issuer, "CN=canary.test", "self-signed");
        assert_eq!(leaf.names, ["canary.test"]);
        assert_eq!(leaf.key, "EC 256", "rcgen's default key: ECDSA P-256");
        assert!(leaf.not_before_ms < leaf.not_after_ms, "{leaf:?}");
        let sha256: String = <sha2::Sha256 as sha2::Digest>::digest(&der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(leaf.sha256, sha256);
    }

    #[tokio::test]
    async fn a_private_ca_in_ca_file_is_trusted_and_the_handshake_recorded() {
        let (ca_pem, issuer) = private_ca();
        let (leaf, key) = certificate(&["canary.test"], Some(&issuer));
        let port = tls_server(vec![leaf], &key).await;
        let mut c = canary(port, true);
        c.target.host = TargetHost::Name("canary.test".into());
        c.tls.ca = Some(CaFile::from_pem(ca_pem.into_bytes()).unwrap());
        let o = check(&c).await;
        assert_eq!(o.failure, None, "{o:?}");
        assert_eq!(o.status, Some(200));
        let tls = o.evidence.tls.as_ref().expect("TLS evidence");
        assert_eq!(tls.version.as_deref(), Some("TLSv1.3"));
        assert!(
            tls.cipher_suite
                .as_deref()
                .is_some_and(|c| c.starts_with("TLS13_")),
            "{tls:?}"
        );
        assert_eq!(tls.alpn.as_deref(), Some("http/1.1"));
        assert_eq!(tls.handshake_ms, o.tls_ms);
        assert_eq!(tls.chain[0].issuer, "CN=Lab CA");
        assert_eq!(tls.failure, None);

        // Without the CA, the same server is not trusted.
        c.tls.ca = None;
        let o = check(&c).await;
        assert_eq!(kind(&o), Some(FailureKind::Tls));
        assert_eq!(
            o.evidence.tls.unwrap().failure,
            Some(TlsFailure::UnknownIssuer)
        );
    }

    /// Dates out of range, by a trusted CA: the library's verdict is kept as the failure.
    #[tokio::test]
    async fn expired_and_not_yet_valid_certificates_are_told_apart() {
        let (ca_pem, issuer) = private_ca();
        for (from, to, want) in [
            ((2020, 1, 1), (2021, 1, 1), TlsFailure::CertificateExpired),
            (
                (2098, 1, 1),
                (2099, 1, 1),
                TlsFailure::CertificateNotYetValid,
            ),
        ] {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(vec!["canary.test".into()]).unwrap();
            params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
            params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
            let leaf = params.signed_by(&key, &issuer).unwrap().der().to_vec();
            let port = tls_server(vec![leaf], &key).await;
            let mut c = canary(port, true);
            c.target.host = TargetHost::Name("canary.test".into());
            c.tls.ca = Some(CaFile::from_pem(ca_pem.clone().into_bytes()).unwrap());
            let o = check(&c).await;
            assert_eq!(kind(&o), Some(FailureKind::Tls), "{o:?}");
            let tls = o.evidence.tls.unwrap();
            assert_eq!(tls.failure, Some(want), "{:?}", o.failure);
            assert_eq!(
                tls.chain[0].not_after_ms / 1000,
                params.not_after.unix_timestamp()
            );
        }
    }

    /// A server that resets the connection once the ClientHello came.
    #[tokio::test]
    async fn a_reset_during_the_handshake_is_the_failure_reset() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut hello = [0u8; 5];
            let _ = stream.read_exact(&mut hello).await;
            // SO_LINGER 0: closing sends a reset instead of a FIN.
            stream.set_zero_linger().unwrap();
        });
        let o = check(&canary(port, true)).await;
        assert_eq!(kind(&o), Some(FailureKind::Tls), "{o:?}");
        assert_eq!(o.evidence.tls.unwrap().failure, Some(TlsFailure::Reset));
    }

    #[tokio::test]
    async fn tls_server_name_is_the_name_asked_for_and_checked() {
        let (ca_pem, issuer) = private_ca();
        let (leaf, key) = certificate(&["shop.test"], Some(&issuer));
        let port = tls_server(vec![leaf], &key).await;
        // Requested by address: the certificate does not cover 127.0.0.1.
        let mut c = canary(port, true);
        c.tls.ca = Some(CaFile::from_pem(ca_pem.into_bytes()).unwrap());
        let o = check(&c).await;
        assert_eq!(kind(&o), Some(FailureKind::Tls), "{o:?}");
        assert_eq!(o.evidence.tls.as_ref().unwrap().sni, "127.0.0.1");
        assert_eq!(
            o.evidence.tls.as_ref().unwrap().failure,
            Some(TlsFailure::NameMismatch)
        );
        assert_eq!(
            o.evidence.tls.as_ref().unwrap().chain[0].names,
            ["shop.test"]
        );

        c.tls.server_name = Some("shop.test".into());
        let o = check(&c).await;
        assert_eq!(o.failure, None, "{o:?}");
        assert_eq!(o.evidence.tls.as_ref().unwrap().sni, "shop.test");
    }

    #[tokio::test]
    async fn full_accept_queue_is_a_connect_timeout() {
        // A listener with a backlog of 0 that never accepts: one connection fills the queue,
        // and the kernel drops the next SYN, as a firewall dropping packets would.
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let _filler = TcpStream::connect(addr).await.unwrap();
        let mut c = canary(addr.port(), false);
        c.timeout = Duration::from_millis(300);
        let o = check(&c).await;
        assert_eq!(kind(&o), Some(FailureKind::ConnectTimeout), "{o:?}");
        assert_eq!(o.connect_ms, None);
        assert!(o.total_ms >= 295.0 && o.total_ms < 1000.0, "{o:?}");
        drop(listener);
    }

    #[tokio::test]
    async fn big_body_is_read_bounded() {
        // A body larger than MAX_BODY: the check reads 1 MiB, finds no text, and stops.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            read_head(&mut conn).await;
            let total = 4 * MAX_BODY;
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {total}\r\n\r\n");
            conn.write_all(head.as_bytes()).await.unwrap();
            let chunk = vec![b'a'; 64 * 1024];
            for _ in 0..(total / chunk.len()) {
                if conn.write_all(&chunk).await.is_err() {
                    break;
                }
            }
        });
        let o = check(&canary(port, false)).await;
        assert_eq!(kind(&o), Some(FailureKind::BodyMismatch), "{o:?}");
        assert!(
            o.failure
                .as_ref()
                .unwrap()
                .message
                .contains(&format!("{MAX_BODY} bytes read"))
        );
    }

    #[test]
    fn excerpt_is_bounded_and_lossy() {
        let mut body = "é".repeat(400).into_bytes(); // 800 bytes, 2 per character
        body.push(0xff);
        let e = excerpt(&body);
        assert_eq!(e.chars().count(), BODY_EXCERPT_MAX / 2);
        let odd = [b"a".as_slice(), "é".repeat(300).as_bytes()].concat();
        let e = excerpt(&odd);
        assert!(e.chars().count() <= BODY_EXCERPT_MAX);
        assert!(e.ends_with('\u{fffd}'), "a cut character is replaced");
    }
}
