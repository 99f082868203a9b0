//! Accepting connections with limits, so that slow or numerous clients cannot take the
//! collector down (issue 18: 1,100 connections each trickling a byte of its headers every
//! 30 s kept ingest and the page unreachable, and the collector out of file descriptors).
//!
//! - A request's headers must arrive within `header_timeout` of its first byte (hyper's
//!   header read timeout): a client that trickles its headers is closed, whatever the idle
//!   timeout ([`crate::idle`], which only sees that bytes move).
//! - At most `max_connections` connections are open at once, and at most `per_client` from
//!   one address: one client cannot use them all. A connection over either limit is answered
//!   `503` with `Retry-After` at once and closed, instead of being left waiting or running the
//!   process out of descriptors (the unit's `LimitNOFILE` is far above the default cap).
//!
//! The rest is what `axum::serve` did: HTTP/1.1 with keep-alive, and on shutdown the
//! listener closes and the connections finish their requests (the caller bounds the wait).
//! With [`Tls`], each connection's TLS handshake comes first, within `header_timeout` too.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};

use crate::idle::IdleStream;
use crate::tls::Tls;

/// What a connection over a limit is told before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\
Content-Type: text/plain\r\nContent-Length: 39\r\nConnection: close\r\n\r\n\
too many connections: try again in 5 s\n";
/// How long the accept loop pauses after an accept error (out of descriptors, most likely).
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

/// Limits on connections (see the module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub idle: Duration,
    pub header_timeout: Duration,
    pub max_connections: usize,
    pub per_client: usize,
}

/// Open connections, in all and by client address.
#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_client: HashMap<IpAddr, usize>,
}

/// A connection's place in [`Open`], given back when it ends.
struct Slot {
    open: Arc<Mutex<Open>>,
    client: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total -= 1;
        if let Some(n) = open.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.by_client.remove(&self.client);
            }
        }
    }
}

/// Takes a slot for a connection from `client`, or `None` over a limit.
fn take_slot(open: &Arc<Mutex<Open>>, client: IpAddr, limits: &ConnectionLimits) -> Option<Slot> {
    let mut o = open.lock().unwrap_or_else(|e| e.into_inner());
    let of_client = o.by_client.get(&client).copied().unwrap_or(0);
    if o.total >= limits.max_connections || of_client >= limits.per_client {
        return None;
    }
    o.total += 1;
    *o.by_client.entry(client).or_insert(0) += 1;
    Some(Slot {
        open: open.clone(),
        client,
    })
}

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting and waits for
/// the open connections to finish their requests (for ever: the caller bounds it).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    tls: Option<Arc<Tls>>,
    shutdown: impl Future<Output = ()>,
) {
    let open = Arc::new(Mutex::new(Open::default()));
    let graceful = GracefulShutdown::new();
    let mut refused: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::error!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = take_slot(&open, addr.ip(), &limits) else {
            refused += 1;
            // One line per 100 refused: an attack is logged, not written out for every try.
            if refused % 100 == 1 {
                tracing::warn!(
                    client = %addr.ip(),
                    refused,
                    max_connections = limits.max_connections,
                    per_client = limits.per_client,
                    "connection refused with 503: too many open (--max-connections, \
                     --max-connections-per-client)"
                );
            }
            // Non-blocking: a client that does not read it does not hold the loop. What it sent
            // is read first: closing a socket with unread data sends a reset, which would
            // discard the answer before the client reads it.
            let _ = stream.try_read(&mut [0u8; 4096]);
            let _ = stream.try_write(BUSY);
            continue;
        };
        serve_connection(
            stream,
            addr,
            app.clone(),
            &limits,
            tls.as_deref(),
            &graceful,
            slot,
        );
    }
    drop(listener);
    graceful.shutdown().await;
}

fn serve_connection(
    stream: TcpStream,
    addr: SocketAddr,
    app: Router,
    limits: &ConnectionLimits,
    tls: Option<&Tls>,
    graceful: &GracefulShutdown,
    slot: Slot,
) {
    let _ = stream.set_nodelay(true);
    let stream = IdleStream::new(stream, limits.idle);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let service = TowerToHyperService::new(app);
    let Some(tls) = tls else {
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(client = %addr, error = %e, "connection ended with an error");
            }
            drop(slot);
        });
        return;
    };
    // The handshake happens on the connection's task; the graceful shutdown watches the HTTP
    // connection that follows it (a handshake in flight at shutdown is cut by the grace).
    let acceptor = tls.acceptor();
    let handshake_timeout = limits.header_timeout;
    let watcher = graceful.watcher();
    tokio::spawn(async move {
        match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => {
                let connection =
                    watcher.watch(http.serve_connection(TokioIo::new(stream), service));
                if let Err(e) = connection.await {
                    tracing::debug!(client = %addr, error = %e, "connection ended with an error");
                }
            }
            Ok(Err(e)) => tracing::debug!(client = %addr, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(client = %addr, "TLS handshake timed out"),
        }
        drop(slot);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_in_all_and_per_client_and_given_back() {
        let limits = ConnectionLimits {
            idle: Duration::from_secs(1),
            header_timeout: Duration::from_secs(1),
            max_connections: 3,
            per_client: 2,
        };
        let open = Arc::new(Mutex::new(Open::default()));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = take_slot(&open, a, &limits).unwrap();
        let _a2 = take_slot(&open, a, &limits).unwrap();
        assert!(take_slot(&open, a, &limits).is_none(), "a's own limit");
        let _b1 = take_slot(&open, b, &limits).unwrap();
        assert!(take_slot(&open, b, &limits).is_none(), "the limit in all");
        drop(a1);
        assert!(take_slot(&open, b, &limits).is_some(), "a slot given back");
        let body = BUSY.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert_eq!(
            BUSY.len() - body,
            39,
            "Content-Length says the body's length"
        );
    }
}
