//! Resets explained from the packet trace and the listeners on the port.
//!
//! Order matters: a reset whose TTL is not the server's is the path's, whatever it looks like;
//! a reset answering the SYN is a refusal unless a listener was there; a reset after the
//! request, before any response, while the serving process still listens and another process
//! held the port, is that other process's.

use std::net::SocketAddr;

use crate::{
    Cause, CheckResult, Direction, FailureKind, Listener, ListenerEvidence, PacketTrace,
    TracePacket, TtlSource,
};

/// The failures a reset can cause; other failures keep their own story even if a reset came.
const RESET_FAILURES: [FailureKind; 5] = [
    FailureKind::ConnectRefused,
    FailureKind::Reset,
    FailureKind::ClosedWithoutResponse,
    FailureKind::Tls,
    FailureKind::ConnectError,
];

/// The cause and explanation of a check that a reset ended, when the evidence tells more than
/// the error did; `None` leaves the generic rules to decide.
pub(super) fn classify(check: &CheckResult) -> Option<(Cause, String)> {
    let failure = check.failure.as_ref()?;
    if !RESET_FAILURES.contains(&failure.kind) {
        return None;
    }
    let trace = check.evidence.trace.as_ref()?;
    let rst = trace.inbound_reset()?;
    let target = trace.remote;
    let syn_ack = trace.syn_ack().filter(|s| s.t_ms <= rst.t_ms);

    if let Some(expected) = trace.server_ttl
        && expected.ttl != rst.ttl
    {
        let what = match syn_ack {
            None => format!("the SYN was answered by a reset with TTL {}", rst.ttl),
            Some(_) => format!(
                "a reset with TTL {} came {}",
                rst.ttl,
                after_what(trace, rst)
            ),
        };
        let learnt = match expected.source {
            TtlSource::ThisConnection => "its SYN-ACK on this connection",
            TtlSource::EarlierConnection => "the SYN-ACKs of earlier connections",
        };
        if let Some(sni) = syn_ack.and(in_handshake(check, trace, rst)) {
            return Some((
                Cause::TlsSniFiltered,
                format!(
                    "{target}: a reset with TTL {} came {} ms after the ClientHello ({} bytes) \
                     that named {sni:?}, before any answer, but this server's packets arrive \
                     with TTL {} ({learnt}): a device on the path (a firewall or DPI filtering \
                     on the TLS server name) ended the handshake, not the server",
                    rst.ttl,
                    since_request(trace, rst),
                    trace.request_bytes(),
                    expected.ttl
                ),
            ));
        }
        return Some((
            Cause::RstFromMiddlebox,
            format!(
                "{target}: {what}, but this server's packets arrive with TTL {} \
                 ({learnt}): another device on the path sent it (a firewall, IDS or load \
                 balancer), not the server",
                expected.ttl
            ),
        ));
    }

    let evidence = check.evidence.listeners.as_ref();
    let rst_at = trace.at_ms(rst);
    if syn_ack.is_none() {
        let listening = evidence.and_then(|ev| {
            covering(ev, target)
                .find(|l| l.overlaps(trace.started_at_ms, rst_at, ev.poll_ms))
                .map(|l| (ev, l))
        });
        return Some(match listening {
            Some((ev, l)) => (
                Cause::ConnectionReset,
                format!(
                    "{target} answered the SYN with a reset although {} listened on {} \
                     (seen within {} ms of it)",
                    l.owners_text(),
                    l.address,
                    ev.poll_ms
                ),
            ),
            None => {
                let nothing = match evidence {
                    Some(ev) => format!("no socket listened on port {}", ev.port),
                    None => "nothing listens on the port".to_owned(),
                };
                (
                    Cause::ConnectionRefused,
                    format!(
                        "{target} answered the SYN with a reset (TTL {}): {nothing}",
                        rst.ttl
                    ),
                )
            }
        });
    }

    let request = trace.request_bytes();
    let response = trace.response_bytes_before(rst.t_ms);
    if request > 0
        && response == 0
        && let Some(ev) = evidence
        && let Some((rogue, serving)) = non_serving_listener(ev, target, trace, rst_at)
    {
        return Some((
            Cause::RstFromNonServingProcess,
            non_serving_story(trace, rst, ev, rogue, serving),
        ));
    }

    let ttl = match trace.server_ttl {
        Some(_) => format!("TTL {}, as the server's own packets", rst.ttl),
        None => format!("TTL {}", rst.ttl),
    };
    if let Some(sni) = in_handshake(check, trace, rst) {
        return Some((
            Cause::TlsHandshakeReset,
            format!(
                "{target} reset the connection {} ms after the ClientHello ({} bytes) that \
                     named {sni:?}, before any answer ({ttl}): the server itself refused the \
                     handshake (a firewall on the host matching the name, or a TLS terminator \
                     that drops names it does not serve)",
                since_request(trace, rst),
                trace.request_bytes(),
            ),
        ));
    }
    Some((
        Cause::ConnectionReset,
        format!(
            "{target} reset the connection {} ({ttl})",
            after_what(trace, rst)
        ),
    ))
}

/// The cause of a check that timed out waiting for its response, when the connection was
/// queued on another process's listener: the handshake completed (the kernel completes it for
/// any listener), the request went out and was acknowledged, nothing came back, and a listener
/// the serving process does not own was on the port at the SYN. A process that binds the port
/// and never accepts (`nginx -t` holding it longer than the check's timeout) leaves the
/// connections the kernel gave it waiting until it exits; `None` leaves the generic `timeout`.
pub(super) fn queued(check: &CheckResult) -> Option<(Cause, String)> {
    let failure = check.failure.as_ref()?;
    if failure.kind != FailureKind::ResponseTimeout {
        return None;
    }
    let trace = check.evidence.trace.as_ref()?;
    let ev = check.evidence.listeners.as_ref()?;
    let syn_ack = trace.syn_ack()?;
    if trace.inbound_reset().is_some()
        || trace.request_bytes() == 0
        || trace.response_bytes_before(f64::INFINITY) > 0
    {
        return None;
    }
    let target = trace.remote;
    let syn_at = trace.at_ms(syn_ack);
    let serving = covering(ev, target)
        .filter(|l| l.serving)
        .find(|l| l.overlaps(syn_at, syn_at, ev.poll_ms))?;
    let rogue = covering(ev, target)
        .filter(|l| !l.serving)
        .filter(|l| l.overlaps(syn_at, syn_at, ev.poll_ms))
        .min_by_key(|l| (l.first_seen_ms - syn_at).abs())?;
    Some((
        Cause::QueuedOnNonServingProcess,
        format!(
            "{target} completed the handshake and took the request ({} bytes) but never \
             answered ({}): the connection was queued on a socket the serving process does not \
             own: {} A listener that does not accept leaves the connections the kernel gave it \
             waiting until it closes (then they are reset) or the client gives up; stop that \
             process from binding port {}",
            trace.request_bytes(),
            failure.message,
            beside(trace, ev, rogue, serving),
            ev.port,
        ),
    ))
}

/// Listeners that accept connections for `target`: bound to its address or to any address.
fn covering(ev: &ListenerEvidence, target: SocketAddr) -> impl Iterator<Item = &Listener> {
    ev.listeners.iter().filter(move |l| {
        l.address.port() == target.port()
            && (l.address.ip().is_unspecified() || l.address.ip() == target.ip())
    })
}

/// A listener of another process that held the port while the connection was made, with the
/// serving listener that was still there at the reset.
fn non_serving_listener<'a>(
    ev: &'a ListenerEvidence,
    target: SocketAddr,
    trace: &PacketTrace,
    rst_at: i64,
) -> Option<(&'a Listener, &'a Listener)> {
    let serving = covering(ev, target)
        .filter(|l| l.serving)
        .find(|l| l.overlaps(rst_at, rst_at, ev.poll_ms))?;
    // The connection went to a listener that existed at the SYN; its socket was reset when that
    // listener closed, so prefer the one whose end is nearest the reset.
    let rogue = covering(ev, target)
        .filter(|l| !l.serving)
        .filter(|l| l.overlaps(trace.started_at_ms, rst_at, ev.poll_ms))
        .min_by_key(|l| match l.gone {
            true => (l.last_seen_ms - rst_at).abs(),
            false => i64::MAX,
        })?;
    Some((rogue, serving))
}

fn non_serving_story(
    trace: &PacketTrace,
    rst: &TracePacket,
    ev: &ListenerEvidence,
    rogue: &Listener,
    serving: &Listener,
) -> String {
    format!(
        "{} reset the connection {}, from a socket the serving process does not own: {} The \
         kernel resets the connections queued on a listener that closes; stop that process from \
         binding port {}, or set net.ipv4.tcp_migrate_req=1 so they move to the remaining \
         listeners",
        trace.remote,
        after_what(trace, rst),
        beside(trace, ev, rogue, serving),
        ev.port,
    )
}

/// The rogue beside the server: "pid 4242 (...) listened on 10.88.0.2:80 with SO_REUSEPORT too
/// (seen from -0.8 s to +1.4 s around the SYN, then gone), beside pid 100 (...), the serving
/// process (...)." and why a rogue is not the server, when the probe said.
fn beside(
    trace: &PacketTrace,
    ev: &ListenerEvidence,
    rogue: &Listener,
    serving: &Listener,
) -> String {
    format!(
        "{} listened on {}{} too ({}), beside {}, the serving process ({}).{}",
        rogue.owners_text(),
        rogue.address,
        reuseport(rogue, serving),
        life(trace, rogue),
        serving.owners_text(),
        ev.serving,
        outside_the_tree(ev, rogue),
    )
}

/// Why a rogue of the server's own name is not the server: " pid 4242 nginx is neither pid
/// 812 nor one of its descendants (its parent: pid 4200)." Empty when the probe did not say
/// which pid roots the serving tree, or the rogue's owner is unknown.
fn outside_the_tree(ev: &ListenerEvidence, rogue: &Listener) -> String {
    let (Some(root), Some(o)) = (ev.serving_pid, rogue.owners.first()) else {
        return String::new();
    };
    let parent = o
        .ppid
        .map(|p| format!(" (its parent: pid {p})"))
        .unwrap_or_default();
    format!(
        " Pid {} {} is neither pid {root} nor one of its descendants{parent}.",
        o.pid, o.name
    )
}

/// " with SO_REUSEPORT" when the rogue shared its address with others.
fn reuseport(rogue: &Listener, serving: &Listener) -> &'static str {
    if rogue.group_size > 1 || rogue.address == serving.address {
        " with SO_REUSEPORT"
    } else {
        ""
    }
}

/// "seen from -0.8 s to +1.4 s around the SYN, then gone" and the like.
fn life(trace: &PacketTrace, rogue: &Listener) -> String {
    let seen = seconds(rogue.first_seen_ms - trace.started_at_ms);
    match rogue.gone {
        true => format!(
            "seen from {seen} s to {} s around the SYN, then gone",
            seconds(rogue.last_seen_ms - trace.started_at_ms)
        ),
        false => format!("seen from {seen} s around the SYN, still there"),
    }
}

/// The name asked for, when `rst` ended a TLS handshake right after the ClientHello: the
/// handshake did not finish, the client's first bytes went out and nothing came back before
/// the reset.
fn in_handshake<'a>(
    check: &'a CheckResult,
    trace: &PacketTrace,
    rst: &TracePacket,
) -> Option<&'a str> {
    let tls = check.evidence.tls.as_ref()?;
    let unfinished = check.failure.as_ref()?.kind == FailureKind::Tls && tls.version.is_none();
    (unfinished && trace.request_bytes() > 0 && trace.response_bytes_before(rst.t_ms) == 0)
        .then_some(tls.sni.as_str())
}

/// Milliseconds from the client's first data segment to `rst`.
fn since_request(trace: &PacketTrace, rst: &TracePacket) -> String {
    let first = trace
        .packets
        .iter()
        .find(|p| p.dir == Direction::Out && p.len > 0 && p.t_ms <= rst.t_ms);
    match first.map_or(0.0, |p| rst.t_ms - p.t_ms) {
        // A filter on the path answers within a millisecond: say how far within.
        ms if ms < 1.0 => format!("{ms:.2}"),
        ms => format!("{ms:.0}"),
    }
}

/// "1502 ms after the request (78 bytes), before any response" and the like.
fn after_what(trace: &PacketTrace, rst: &TracePacket) -> String {
    let request = trace
        .packets
        .iter()
        .find(|p| p.dir == Direction::Out && p.len > 0 && p.t_ms <= rst.t_ms);
    let response = trace.response_bytes_before(rst.t_ms);
    match request {
        None => format!(
            "{:.0} ms after the handshake, before the request was sent",
            rst.t_ms
        ),
        Some(req) if response == 0 => format!(
            "{:.0} ms after the request ({} bytes), before any response",
            rst.t_ms - req.t_ms,
            trace.request_bytes()
        ),
        Some(req) => format!(
            "{:.0} ms after the request, after {response} bytes of response",
            rst.t_ms - req.t_ms
        ),
    }
}

fn seconds(ms: i64) -> String {
    format!("{:+.1}", ms as f64 / 1000.0)
}
