//! Per-resolver resolution: every name server is asked on its own, so their answers can be
//! compared (a resolver that refuses us while others answer is evidence, not noise).
//!
//! We use hickory's low-level client, one query to one server, rather than its `Resolver`:
//! the resolver fails over between servers and turns "TCP refused" into `NoConnections` and
//! "ICMP port unreachable" into `Timeout`, losing exactly the detail we report.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};
use std::path::Path;
use std::time::Duration;

use causeway_schema::{
    DnsAnswer, DnsOutcome, DnsQuery, Rcode, ReachProbe, Reachability, ResolverOutcome,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::client::{Client, ClientHandle};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::tcp::TcpClientStream;
use hickory_resolver::proto::op::{self, Message, MessageType, ResponseCode};
use hickory_resolver::proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::io::Interest;
use tokio::time::Instant;

use super::Check;
use super::reach::{Echo, TcpConnect};
use crate::AbortOnDrop;
use crate::checks;
use crate::config::{ResolverKind, ResolverSpec};

/// The record types asked for (the wire's type, under the name this module gives it).
pub use causeway_schema::RecordType as RecordKind;

/// hickory's name for `kind`.
fn hickory_type(kind: RecordKind) -> RecordType {
    match kind {
        RecordKind::A => RecordType::A,
        RecordKind::Aaaa => RecordType::AAAA,
    }
}

/// One name server to ask, and the configured resolver it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameServer {
    /// `system` or the resolver as configured.
    pub resolver: String,
    pub server: SocketAddr,
}

/// One question to one name server: the target of a DNS check. The check always answers with
/// a [`DnsQuery`] (failures are outcomes, not errors); tests replace it with canned answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub server: SocketAddr,
    pub name: String,
    pub kind: RecordKind,
}

/// What the resolvers' side of a cycle runs: queries, and the two reachability tests of a
/// server that gave no usable answer.
pub trait DnsChecks:
    Check<Query, Outcome = DnsQuery>
    + Check<Echo, Outcome = ReachProbe>
    + Check<TcpConnect, Outcome = ReachProbe>
{
}

impl<T> DnsChecks for T where
    T: Check<Query, Outcome = DnsQuery>
        + Check<Echo, Outcome = ReachProbe>
        + Check<TcpConnect, Outcome = ReachProbe>
{
}

/// Whether `server`'s host answers at all: ICMP echo and a TCP connection to its port, both
/// at once, each within `timeout`.
pub async fn reachability<T: DnsChecks>(
    checks: &T,
    server: SocketAddr,
    timeout: Duration,
) -> Reachability {
    let (icmp, tcp) = tokio::join!(
        checks::run(checks, Echo(server), timeout),
        checks::run(checks, TcpConnect(server), timeout)
    );
    Reachability { icmp, tcp }
}

/// Resolves `name` through every server, each on its own and all at once, A and AAAA.
/// The outcomes keep the servers' order.
pub async fn resolve<T: DnsChecks>(
    transport: &T,
    name: &str,
    servers: &[NameServer],
    timeout: Duration,
) -> Vec<ResolverOutcome> {
    let per_server = servers
        .iter()
        .map(|ns| resolve_one(transport, name, ns, timeout));
    futures_util::future::join_all(per_server).await
}

/// `name` through one name server: A and AAAA at once.
pub async fn resolve_one<T: DnsChecks>(
    transport: &T,
    name: &str,
    ns: &NameServer,
    timeout: Duration,
) -> ResolverOutcome {
    let queries = RecordKind::BOTH.map(|kind| {
        let query = Query {
            server: ns.server,
            name: name.to_owned(),
            kind,
        };
        checks::run(transport, query, timeout)
    });
    let queries = futures_util::future::join_all(queries).await;
    ResolverOutcome {
        resolver: ns.resolver.clone(),
        server: ns.server,
        queries,
        reachability: None,
        condition: None,
    }
}

/// The addresses to request: every address any resolver gave, once, IPv4 first, otherwise in
/// the order the resolvers are configured.
pub fn addresses(outcomes: &[ResolverOutcome]) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for kind in RecordKind::BOTH {
        for outcome in outcomes {
            for query in &outcome.queries {
                if query.record_type != kind {
                    continue;
                }
                for addr in query.addresses() {
                    if !out.contains(&addr) {
                        out.push(addr);
                    }
                }
            }
        }
    }
    out
}

/// The name servers to ask this cycle. `system` expands to every `nameserver` of
/// /etc/resolv.conf (`resolv_conf` is that file's text, or `None` when it cannot be read).
pub fn name_servers(specs: &[ResolverSpec], resolv_conf: Option<&str>) -> Vec<NameServer> {
    let mut out: Vec<NameServer> = Vec::new();
    for spec in specs {
        let servers = match spec.kind {
            ResolverKind::Server(addr) => vec![addr],
            ResolverKind::System => {
                let servers = resolv_conf.map(parse_resolv_conf).unwrap_or_default();
                if servers.is_empty() {
                    // What the C library does with no nameserver line (or no file): ask the
                    // local host. The report then shows exactly what the system would do.
                    vec![SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 53)]
                } else {
                    servers
                }
            }
        };
        for server in servers {
            let ns = NameServer {
                resolver: spec.label.clone(),
                server,
            };
            if !out.contains(&ns) {
                out.push(ns);
            }
        }
    }
    out
}

/// Reads /etc/resolv.conf (or another path, for tests) for [`name_servers`].
pub fn read_resolv_conf(path: &Path) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) => {
            tracing::warn!(
                "cannot read {}: {e}; the system resolver is taken to be 127.0.0.1:53",
                path.display()
            );
            None
        }
    }
}

/// The `nameserver` lines of a resolv.conf, in order, on port 53. Lines the C library would
/// not use (bad addresses) are skipped with a warning.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next() else { continue };
        match parse_nameserver(addr) {
            Some(a) => out.push(a),
            None => tracing::warn!("resolv.conf: ignoring nameserver {addr:?}: not an IP address"),
        }
    }
    out
}

/// An address as resolv.conf writes it, with an optional IPv6 zone (`fe80::1%eth0`).
fn parse_nameserver(s: &str) -> Option<SocketAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    let (addr, zone) = s.split_once('%')?;
    let ip: std::net::Ipv6Addr = addr.parse().ok()?;
    let scope = match zone.parse::<u32>() {
        Ok(n) => n,
        Err(_) => std::fs::read_to_string(format!("/sys/class/net/{zone}/ifindex"))
            .ok()?
            .trim()
            .parse()
            .ok()?,
    };
    Some(SocketAddr::V6(SocketAddrV6::new(ip, 53, 0, scope)))
}

/// The response code as the wire type keeps it.
pub fn rcode(code: ResponseCode) -> Rcode {
    Rcode(u16::from(code))
}

/// What a response says about the asked type: outcome, rcode and the addresses with TTLs.
pub fn judge_response(kind: RecordKind, response: &Message) -> (DnsOutcome, Rcode, Vec<DnsAnswer>) {
    let code = response.metadata.response_code;
    // A recursive resolver answers with the CNAME chain and the addresses at its end; the
    // owner names differ, the record type is what matters.
    let answers: Vec<DnsAnswer> = response
        .answers
        .iter()
        .filter_map(|r| {
            let address = match (&r.data, kind) {
                (RData::A(a), RecordKind::A) => IpAddr::V4(a.0),
                (RData::AAAA(a), RecordKind::Aaaa) => IpAddr::V6(a.0),
                _ => return None,
            };
            Some(DnsAnswer {
                address,
                ttl: r.ttl,
            })
        })
        .collect();
    let outcome = match code {
        ResponseCode::NoError if answers.is_empty() => DnsOutcome::NoData,
        ResponseCode::NoError => DnsOutcome::Answer,
        ResponseCode::NXDomain => DnsOutcome::NxDomain,
        ResponseCode::ServFail => DnsOutcome::ServFail,
        ResponseCode::Refused => DnsOutcome::Refused,
        _ => DnsOutcome::OtherRcode,
    };
    let answers = if outcome == DnsOutcome::Answer {
        answers
    } else {
        Vec::new()
    };
    (outcome, rcode(code), answers)
}

/// The real transport: hickory's client over UDP (one transmission, no resend), and TCP when
/// the UDP answer is truncated.
#[derive(Debug, Clone, Default)]
pub struct HickoryTransport;

impl Check<Query> for HickoryTransport {
    type Outcome = DnsQuery;

    fn run(&self, query: Query, deadline: Instant) -> impl Future<Output = DnsQuery> + Send {
        let Query { server, name, kind } = query;
        async move {
            let timeout = checks::time_left(deadline);
            // What arrived that was not a readable answer, should no answer come.
            let mut garbled = None;
            // hickory has its own timeouts; the deadline bounds the whole exchange (UDP and
            // the TCP retry) whatever they do.
            let result = tokio::time::timeout_at(
                deadline,
                exchange(server, &name, kind, timeout, &mut garbled),
            )
            .await;
            let mut q = DnsQuery {
                record_type: kind,
                outcome: DnsOutcome::Timeout,
                rcode: None,
                answers: Vec::new(),
                elapsed_ms: 0.0,
                error: None,
            };
            match result {
                Err(_) => {
                    let within = crate::config::format_duration(timeout);
                    q.error = Some(match garbled {
                        Some(what) => {
                            q.outcome = DnsOutcome::Malformed;
                            format!("no readable answer within {within}; {what}")
                        }
                        None => format!("no answer within {within}"),
                    });
                }
                Ok(Exchange {
                    response: Ok(msg),
                    udp_rcode: _,
                }) => {
                    let (outcome, rcode, answers) = judge_response(kind, &msg);
                    q.outcome = outcome;
                    q.rcode = Some(rcode);
                    q.answers = answers;
                }
                Ok(Exchange {
                    response: Err(e),
                    udp_rcode,
                }) => {
                    q.rcode = udp_rcode;
                    q.outcome = match &e {
                        QueryError::Tcp(NetError::Timeout) => DnsOutcome::Timeout,
                        QueryError::Tcp(NetError::Io(io))
                            if io.kind() == std::io::ErrorKind::TimedOut =>
                        {
                            DnsOutcome::Timeout
                        }
                        _ => DnsOutcome::NetworkError,
                    };
                    q.error = Some(e.to_string());
                }
            }
            q
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum QueryError {
    #[error("{0:?} is not a DNS name: {1}")]
    Name(String, String),
    #[error("{0}")]
    Udp(std::io::Error),
    #[error("the UDP answer was truncated and the TCP retry failed: {0}")]
    Tcp(NetError),
}

struct Exchange {
    response: Result<Message, QueryError>,
    /// The rcode of a truncated UDP answer, kept when the TCP retry failed.
    udp_rcode: Option<Rcode>,
}

async fn exchange(
    server: SocketAddr,
    name: &str,
    kind: RecordKind,
    timeout: Duration,
    garbled: &mut Option<String>,
) -> Exchange {
    let fail = |e| Exchange {
        response: Err(e),
        udp_rcode: None,
    };
    // Fully qualified, so the server never appends a search domain.
    let fqdn = if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    };
    let name = match Name::from_ascii(&fqdn) {
        Ok(n) => n,
        Err(e) => return fail(QueryError::Name(fqdn, e.to_string())),
    };
    let mut request = Message::query();
    request.metadata.recursion_desired = true;
    request.add_query(op::Query::query(name.clone(), hickory_type(kind)));
    let response = match udp_exchange(server, &request, garbled).await {
        Ok(r) => r,
        Err(e) => return fail(QueryError::Udp(e)),
    };
    if !response.metadata.truncation {
        return Exchange {
            response: Ok(response),
            udp_rcode: None,
        };
    }
    let udp_rcode = Some(rcode(response.metadata.response_code));
    let tcp = async {
        let provider = TokioRuntimeProvider::default();
        let (stream, handle) = TcpClientStream::new(server, None, Some(timeout), provider);
        let stream = stream.await?;
        let (mut client, background) =
            Client::<TokioRuntimeProvider>::with_timeout(stream, handle, timeout);
        let _background = AbortOnDrop::new(&tokio::spawn(background));
        client
            .query(name, DNSClass::IN, hickory_type(kind))
            .await
            .map(|r| r.into_message())
    };
    Exchange {
        response: tcp.await.map_err(QueryError::Tcp),
        udp_rcode,
    }
}

/// One query over UDP, one transmission: the caller's timeout bounds the wait.
///
/// Our own exchange rather than hickory's UDP stream, for two reasons. hickory drops a response
/// whose question section differs from the query's, and servers that refuse us (unbound's
/// `access-control: ... refuse`, public resolvers filtering a range) answer REFUSED with the
/// bare header, no question: hickory would turn exactly the answer we report into a timeout.
/// And the socket is connected to the server, so the kernel tells us of an ICMP
/// port-unreachable (ECONNREFUSED) instead of leaving us to time out.
///
/// A datagram that is not the answer is ignored, and we wait on: an answer may still come.
/// The last one is said in `garbled`, so that a query that gets no answer but garbage is
/// `malformed`, not silence.
async fn udp_exchange(
    server: SocketAddr,
    request: &Message,
    garbled: &mut Option<String>,
) -> std::io::Result<Message> {
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = tokio::net::UdpSocket::bind(local).await?;
    socket.connect(server).await?;
    let bytes = request
        .to_vec()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
    socket.send(&bytes).await?;
    let mut buf = vec![0u8; UDP_MAX];
    loop {
        // The kernel flags an ICMP error with EPOLLERR alone, which tokio does not count as
        // readable (and its receive then does not even try): wait for either, and take the
        // socket's pending error ourselves.
        let ready = socket.ready(Interest::READABLE | Interest::ERROR).await?;
        if ready.is_error() {
            if let Some(e) = socket.take_error()? {
                return Err(e);
            }
            // Error readiness without a pending error: clear it, or the wait returns at once.
            let _ = socket.try_io(Interest::ERROR, || {
                Err::<(), _>(std::io::ErrorKind::WouldBlock.into())
            });
        }
        if !ready.is_readable() {
            continue;
        }
        let n = match socket.try_recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        };
        match Message::from_vec(&buf[..n]) {
            Ok(response) if answers(request, &response) => return Ok(response),
            Ok(response) => *garbled = Some(not_the_answer(request, &response, n)),
            Err(e) => {
                *garbled = Some(format!(
                    "a datagram of {n} bytes came that is not a DNS message ({e})"
                ))
            }
        }
    }
}

/// What a datagram that parsed, but is not the answer to `request`, is.
fn not_the_answer(request: &Message, response: &Message, bytes: usize) -> String {
    let what = if response.metadata.id != request.metadata.id {
        format!(
            "id {}, where the query's is {}",
            response.metadata.id, request.metadata.id
        )
    } else if response.metadata.message_type != MessageType::Response {
        "a query, not a response".to_owned()
    } else {
        "another question than the query's".to_owned()
    };
    format!("a DNS message of {bytes} bytes came that does not answer the query: {what}")
}

/// The largest UDP response read: plain DNS over UDP is limited to 512 bytes, a larger one
/// comes truncated and is asked again over TCP.
const UDP_MAX: usize = 4096;

/// Whether `response` answers `request`: the same id, a response, and the same question, or
/// no question at all with an error code (how servers answer REFUSED, FORMERR, NOTIMP).
fn answers(request: &Message, response: &Message) -> bool {
    response.metadata.id == request.metadata.id
        && response.metadata.message_type == MessageType::Response
        && (response.queries == request.queries
            || (response.queries.is_empty()
                && response.metadata.response_code != ResponseCode::NoError))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use hickory_resolver::proto::op::{Message, MessageType, OpCode, Query};
    use hickory_resolver::proto::rr::Record;
    use hickory_resolver::proto::rr::rdata::{A, AAAA, CNAME};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, UdpSocket};

    use super::*;

    impl HickoryTransport {
        /// One query through the runner, as the cycle makes it.
        async fn query(
            &self,
            server: SocketAddr,
            name: &str,
            kind: RecordKind,
            timeout: Duration,
        ) -> DnsQuery {
            let name = name.to_owned();
            checks::run(self, super::Query { server, name, kind }, timeout).await
        }
    }

    fn spec(label: &str, kind: ResolverKind) -> ResolverSpec {
        ResolverSpec {
            label: label.into(),
            kind,
        }
    }

    #[test]
    fn resolv_conf_nameservers_in_order() {
        let text = "# generated\nsearch example.com\nnameserver 10.0.0.53\n; comment\n\
                    nameserver   fd00::53  \nnameserver bogus\nnameserver fe80::1%7\noptions ndots:2\n";
        let servers = parse_resolv_conf(text);
        assert_eq!(
            servers,
            vec![
                "10.0.0.53:53".parse().unwrap(),
                "[fd00::53]:53".parse().unwrap(),
                SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, 7)),
            ]
        );
    }

    #[test]
    fn system_expands_to_each_nameserver_and_keeps_labels() {
        let specs = [
            spec("system", ResolverKind::System),
            spec(
                "10.0.0.54:5353",
                ResolverKind::Server("10.0.0.54:5353".parse().unwrap()),
            ),
        ];
        let ns = name_servers(&specs, Some("nameserver 10.0.0.53\nnameserver 10.0.0.55\n"));
        let got: Vec<(&str, String)> = ns
            .iter()
            .map(|n| (n.resolver.as_str(), n.server.to_string()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("system", "10.0.0.53:53".into()),
                ("system", "10.0.0.55:53".into()),
                ("10.0.0.54:5353", "10.0.0.54:5353".into()),
            ]
        );
    }

    #[test]
    fn system_without_nameservers_is_the_local_host() {
        let specs = [spec("system", ResolverKind::System)];
        for conf in [None, Some("search example.com\n")] {
            let ns = name_servers(&specs, conf);
            assert_eq!(ns.len(), 1);
            assert_eq!(ns[0].server, "127.0.0.1:53".parse().unwrap());
        }
    }

    fn query(kind: RecordKind, outcome: DnsOutcome, addrs: &[&str]) -> DnsQuery {
        DnsQuery {
            record_type: kind,
            outcome,
            rcode: Some(Rcode::NOERROR),
            answers: addrs
                .iter()
                .map(|a| DnsAnswer {
                    address: a.parse().unwrap(),
                    ttl: 60,
                })
                .collect(),
            elapsed_ms: 1.0,
            error: None,
        }
    }

    #[test]
    fn addresses_are_a_union_ipv4_first() {
        let outcomes = vec![
            ResolverOutcome {
                resolver: "system".into(),
                server: "10.0.0.53:53".parse().unwrap(),
                queries: vec![
                    query(RecordKind::A, DnsOutcome::Answer, &["10.0.0.2", "10.0.0.3"]),
                    query(RecordKind::Aaaa, DnsOutcome::Answer, &["fd00::2"]),
                ],
                reachability: None,
                condition: None,
            },
            ResolverOutcome {
                resolver: "10.0.0.54".into(),
                server: "10.0.0.54:53".parse().unwrap(),
                queries: vec![
                    query(RecordKind::A, DnsOutcome::Answer, &["10.0.0.3", "10.0.0.4"]),
                    query(RecordKind::Aaaa, DnsOutcome::NoData, &[]),
                ],
                reachability: None,
                condition: None,
            },
        ];
        let got: Vec<String> = addresses(&outcomes)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["10.0.0.2", "10.0.0.3", "10.0.0.4", "fd00::2"]);
    }

    fn response(code: ResponseCode, answers: Vec<Record>) -> Message {
        let mut m = Message::response(1, OpCode::Query);
        m.metadata.response_code = code;
        m.answers = answers;
        m
    }

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn responses_are_judged_by_rcode_and_type() {
        let a = Record::from_rdata(name("canary.test."), 300, RData::A(A::new(10, 0, 0, 2)));
        let cname = Record::from_rdata(
            name("www.test."),
            60,
            RData::CNAME(CNAME(name("canary.test."))),
        );
        let (o, rcode, answers) = judge_response(
            RecordKind::A,
            &response(ResponseCode::NoError, vec![cname.clone(), a.clone()]),
        );
        assert_eq!(
            (o, rcode.to_string().as_str()),
            (DnsOutcome::Answer, "NOERROR")
        );
        assert_eq!(
            answers,
            vec![DnsAnswer {
                address: "10.0.0.2".parse().unwrap(),
                ttl: 300
            }]
        );
        let (o, _, answers) =
            judge_response(RecordKind::Aaaa, &response(ResponseCode::NoError, vec![a]));
        assert_eq!(o, DnsOutcome::NoData);
        assert!(answers.is_empty());
        for (code, outcome, text) in [
            (ResponseCode::NXDomain, DnsOutcome::NxDomain, "NXDOMAIN"),
            (ResponseCode::ServFail, DnsOutcome::ServFail, "SERVFAIL"),
            (ResponseCode::Refused, DnsOutcome::Refused, "REFUSED"),
            (ResponseCode::NotImp, DnsOutcome::OtherRcode, "NOTIMP"),
            (
                ResponseCode::Unknown(3841),
                DnsOutcome::OtherRcode,
                "RCODE3841",
            ),
        ] {
            let (o, rcode, _) = judge_response(RecordKind::A, &response(code, vec![cname.clone()]));
            assert_eq!((o, rcode.to_string().as_str()), (outcome, text));
        }
    }

    /// How the test name server treats a name.
    #[derive(Clone, Copy)]
    enum Behaviour {
        /// A 192.0.2.1 (TTL 60) and AAAA 2001:db8::1 (TTL 120).
        Answer,
        Refused,
        /// REFUSED with the bare header and no question, as unbound's `refuse` sends it.
        RefusedBare,
        Silent,
        /// Truncated over UDP, the full answer (A 192.0.2.7) over TCP.
        TruncatedUdp,
        /// Bytes that are not a DNS message.
        Garbage,
        /// A header whose name is a compression pointer to itself.
        PointerLoop,
        /// A well-formed answer with another id.
        WrongId,
    }

    /// A tiny name server on 127.0.0.1 (UDP and TCP on the same port), built from hickory's
    /// message types. It lives as long as the test's runtime.
    async fn test_server(names: HashMap<&'static str, Behaviour>) -> SocketAddr {
        let names = Arc::new(names);
        let (udp, tcp) = loop {
            let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = udp.local_addr().unwrap();
            if let Ok(tcp) = TcpListener::bind(addr).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let udp_names = names.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let (n, peer) = udp.recv_from(&mut buf).await.unwrap();
                if let Some(reply) = answer(&udp_names, &buf[..n], false) {
                    udp.send_to(&reply, peer).await.unwrap();
                }
            }
        });
        tokio::spawn(async move {
            loop {
                let (mut conn, _) = tcp.accept().await.unwrap();
                let names = names.clone();
                tokio::spawn(async move {
                    let len = conn.read_u16().await.unwrap() as usize;
                    let mut buf = vec![0u8; len];
                    conn.read_exact(&mut buf).await.unwrap();
                    if let Some(reply) = answer(&names, &buf, true) {
                        conn.write_u16(reply.len() as u16).await.unwrap();
                        conn.write_all(&reply).await.unwrap();
                    }
                });
            }
        });
        addr
    }

    fn answer(names: &HashMap<&str, Behaviour>, raw: &[u8], tcp: bool) -> Option<Vec<u8>> {
        let request = Message::from_vec(raw).unwrap();
        let query: &Query = request.queries.first().unwrap();
        let qname = query.name().to_ascii();
        let mut reply = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
        reply.metadata.recursion_desired = request.metadata.recursion_desired;
        reply.metadata.recursion_available = true;
        reply.add_query(query.clone());
        let owner = query.name().clone();
        match names.get(qname.as_str()).copied() {
            Some(Behaviour::Garbage) => return Some(b"\x00garbage, not DNS".to_vec()),
            Some(Behaviour::PointerLoop) => {
                // The query's header, one question whose name points at itself (offset 12).
                let mut loop_ = raw[..12].to_vec();
                loop_[2] |= 0x80; // QR: a response
                loop_.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
                return Some(loop_);
            }
            Some(Behaviour::WrongId) => reply.metadata.id = request.metadata.id.wrapping_add(1),
            None => reply.metadata.response_code = ResponseCode::NXDomain,
            Some(Behaviour::Silent) => return None,
            Some(Behaviour::Refused) => reply.metadata.response_code = ResponseCode::Refused,
            Some(Behaviour::RefusedBare) => {
                reply.queries.clear();
                reply.metadata.response_code = ResponseCode::Refused;
            }
            Some(Behaviour::Answer) => match query.query_type() {
                RecordType::A => {
                    reply.add_answer(Record::from_rdata(
                        owner,
                        60,
                        RData::A(A::new(192, 0, 2, 1)),
                    ));
                }
                RecordType::AAAA => {
                    let ip = "2001:db8::1".parse().unwrap();
                    reply.add_answer(Record::from_rdata(owner, 120, RData::AAAA(AAAA(ip))));
                }
                _ => {}
            },
            Some(Behaviour::TruncatedUdp) if !tcp => reply.metadata.truncation = true,
            Some(Behaviour::TruncatedUdp) => {
                if query.query_type() == RecordType::A {
                    reply.add_answer(Record::from_rdata(
                        owner,
                        30,
                        RData::A(A::new(192, 0, 2, 7)),
                    ));
                }
            }
        }
        Some(reply.to_vec().unwrap())
    }

    const TIMEOUT: Duration = Duration::from_millis(700);

    #[tokio::test]
    async fn real_client_against_a_local_name_server() {
        let server = test_server(HashMap::from([
            ("ok.test.", Behaviour::Answer),
            ("refused.test.", Behaviour::Refused),
            ("bare.test.", Behaviour::RefusedBare),
            ("silent.test.", Behaviour::Silent),
            ("big.test.", Behaviour::TruncatedUdp),
            ("garbage.test.", Behaviour::Garbage),
            ("loop.test.", Behaviour::PointerLoop),
            ("wrong-id.test.", Behaviour::WrongId),
        ]))
        .await;
        let t = HickoryTransport;

        // Answers that arrived and cannot be read are not silence.
        for (name, said) in [
            (
                "garbage.test",
                "a datagram of 17 bytes came that is not a DNS message",
            ),
            (
                "loop.test",
                "a datagram of 18 bytes came that is not a DNS message",
            ),
            ("wrong-id.test", "does not answer the query: id "),
        ] {
            let q = t.query(server, name, RecordKind::A, TIMEOUT).await;
            assert_eq!(q.outcome, DnsOutcome::Malformed, "{name}: {q:?}");
            let error = q.error.unwrap_or_default();
            assert!(error.contains(said), "{name}: {error}");
            assert!(
                error.starts_with("no readable answer within 700ms; "),
                "{error}"
            );
        }

        let a = t.query(server, "ok.test", RecordKind::A, TIMEOUT).await;
        assert_eq!(a.outcome, DnsOutcome::Answer, "{a:?}");
        assert_eq!(a.rcode, Some(Rcode::NOERROR));
        assert_eq!(
            a.answers,
            vec![DnsAnswer {
                address: "192.0.2.1".parse().unwrap(),
                ttl: 60
            }]
        );
        assert!(a.elapsed_ms < TIMEOUT.as_secs_f64() * 1000.0, "{a:?}");
        let aaaa = t.query(server, "ok.test", RecordKind::Aaaa, TIMEOUT).await;
        assert_eq!(aaaa.outcome, DnsOutcome::Answer, "{aaaa:?}");
        assert_eq!(
            aaaa.answers[0].address,
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(aaaa.answers[0].ttl, 120);

        let refused = t
            .query(server, "refused.test", RecordKind::A, TIMEOUT)
            .await;
        assert_eq!(refused.outcome, DnsOutcome::Refused, "{refused:?}");
        assert_eq!(refused.rcode, Some(Rcode::REFUSED));
        assert!(refused.answers.is_empty());

        let bare = t.query(server, "bare.test", RecordKind::A, TIMEOUT).await;
        assert_eq!(bare.outcome, DnsOutcome::Refused, "{bare:?}");
        assert_eq!(bare.rcode, Some(Rcode::REFUSED));

        let missing = t
            .query(server, "missing.test", RecordKind::A, TIMEOUT)
            .await;
        assert_eq!(missing.outcome, DnsOutcome::NxDomain, "{missing:?}");
        assert_eq!(missing.rcode, Some(Rcode::NXDOMAIN));

        let silent = t.query(server, "silent.test", RecordKind::A, TIMEOUT).await;
        assert_eq!(silent.outcome, DnsOutcome::Timeout, "{silent:?}");
        assert_eq!(silent.rcode, None);
        assert!(silent.error.is_some());
        let waited = silent.elapsed_ms;
        assert!(
            (600.0..2000.0).contains(&waited),
            "a timeout waits for the timeout and not much longer: {waited} ms"
        );

        let big = t.query(server, "big.test", RecordKind::A, TIMEOUT).await;
        assert_eq!(
            big.outcome,
            DnsOutcome::Answer,
            "TCP retry after TC: {big:?}"
        );
        assert_eq!(
            big.answers[0].address,
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
    }

    #[tokio::test]
    async fn silent_server_gets_exactly_one_datagram() {
        // A name server that counts what it receives and never answers.
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let server = socket.local_addr().unwrap();
        let q = HickoryTransport
            .query(
                server,
                "silent.test",
                RecordKind::A,
                Duration::from_millis(1200),
            )
            .await;
        assert_eq!(q.outcome, DnsOutcome::Timeout);
        let mut buf = [0u8; 512];
        let mut received = 0;
        while socket.recv_from(&mut buf).is_ok() {
            received += 1;
        }
        assert_eq!(
            received, 1,
            "no resend within the timeout (retries >= 333 ms apart)"
        );
    }

    #[tokio::test]
    async fn closed_port_is_a_network_error_not_a_timeout() {
        // Bind and drop, so nothing listens: the kernel answers with ICMP port unreachable,
        // which only a connected UDP socket hears.
        let server = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        };
        let q = HickoryTransport
            .query(server, "ok.test", RecordKind::A, Duration::from_secs(3))
            .await;
        assert_eq!(q.outcome, DnsOutcome::NetworkError, "{q:?}");
        assert!(q.elapsed_ms < 1000.0, "{q:?}");
        assert!(q.error.as_deref().unwrap().contains("refused"), "{q:?}");
    }

    #[tokio::test]
    async fn resolve_asks_every_server_on_its_own() {
        let good = test_server(HashMap::from([("canary.test.", Behaviour::Answer)])).await;
        let refusing = test_server(HashMap::from([("canary.test.", Behaviour::Refused)])).await;
        let servers = vec![
            NameServer {
                resolver: "system".into(),
                server: good,
            },
            NameServer {
                resolver: refusing.to_string(),
                server: refusing,
            },
        ];
        let outcomes = resolve(&HickoryTransport, "canary.test", &servers, TIMEOUT).await;
        assert_eq!(outcomes.len(), 2);
        assert_eq!(outcomes[0].resolver, "system");
        assert_eq!(outcomes[0].server, good);
        let kinds: Vec<_> = outcomes[0]
            .queries
            .iter()
            .map(|q| q.record_type.as_str())
            .collect();
        assert_eq!(kinds, ["A", "AAAA"]);
        assert!(
            outcomes[0]
                .queries
                .iter()
                .all(|q| q.outcome == DnsOutcome::Answer)
        );
        assert!(
            outcomes[1]
                .queries
                .iter()
                .all(|q| q.outcome == DnsOutcome::Refused)
        );
        let addrs: Vec<String> = addresses(&outcomes)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(addrs, ["192.0.2.1", "2001:db8::1"]);
    }
}
