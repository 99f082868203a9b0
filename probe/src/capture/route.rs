//! Which interface the route to a remote address uses, cached for a while.
//!
//! Linux routes the host's own addresses (not only 127/8 and ::1) through `lo`, so a canary on
//! the probe's host is captured there. For any other address, connecting a UDP socket (which
//! sends nothing) makes the kernel pick the route and its source address; the interface that
//! holds that address is the route's. This is a cheap stand-in for an rtnetlink route query and
//! can be wrong with policy routing by mark or with a source address held by another interface
//! than the outgoing one; the capture then sees nothing and the check runs without a trace.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pnet_datalink::NetworkInterface;

use crate::os::Os;

/// How long a resolved route is trusted: a cycle does not call getifaddrs for every check,
/// and addresses that move are noticed within a minute.
const ROUTE_TTL: Duration = Duration::from_secs(60);
/// Cached remotes; past this, stale entries are dropped (and all of them if none is stale).
const ROUTE_CACHE_MAX: usize = 1024;

/// The interface a remote address is reached through.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    pub iface: NetworkInterface,
    /// `ARPHRD_*`, as `SIOCGIFHWADDR` gives it.
    pub link_type: u16,
}

impl Route {
    pub(crate) fn is_loopback(&self) -> bool {
        self.iface.is_loopback()
    }
}

/// Routes found through the interfaces `os` lists.
pub(crate) struct RouteCache {
    os: Arc<dyn Os>,
    entries: HashMap<(IpAddr, u32), (Arc<Route>, Instant)>,
}

impl RouteCache {
    pub(crate) fn new(os: Arc<dyn Os>) -> RouteCache {
        RouteCache {
            os,
            entries: HashMap::new(),
        }
    }

    pub(crate) fn get(&mut self, remote: SocketAddr) -> io::Result<Arc<Route>> {
        let key = (remote.ip().to_canonical(), scope_id(remote));
        let now = Instant::now();
        if let Some((route, at)) = self.entries.get(&key)
            && now.duration_since(*at) < ROUTE_TTL
        {
            return Ok(route.clone());
        }
        let route = Arc::new(resolve(remote, self.os.interfaces())?);
        if self.entries.len() >= ROUTE_CACHE_MAX {
            self.entries
                .retain(|_, (_, at)| now.duration_since(*at) < ROUTE_TTL);
            if self.entries.len() >= ROUTE_CACHE_MAX {
                self.entries.clear();
            }
        }
        self.entries.insert(key, (route.clone(), now));
        Ok(route)
    }
}

fn scope_id(addr: SocketAddr) -> u32 {
    match addr {
        SocketAddr::V6(a) => a.scope_id(),
        SocketAddr::V4(_) => 0,
    }
}

/// Resolves without the cache, among the host's interfaces `ifaces`.
pub(crate) fn resolve(remote: SocketAddr, ifaces: Vec<NetworkInterface>) -> io::Result<Route> {
    let ip = remote.ip().to_canonical();
    let own = crate::os::own_address_among(&ifaces, ip);
    let iface = if own {
        ifaces
            .into_iter()
            .find(|i| i.is_loopback())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    "the host has no loopback interface",
                )
            })?
    } else {
        let source = source_address(remote, ip)?;
        let scope = scope_id(remote);
        let mut holders: Vec<_> = ifaces
            .into_iter()
            .filter(|i| i.ips.iter().any(|n| n.ip() == source))
            .collect();
        // A link-local source can sit on several interfaces: the remote's scope says which.
        holders.sort_by_key(|i| i.index != scope);
        holders.into_iter().next().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no interface holds {source}, the source address of the route"),
            )
        })?
    };
    let link_type = super::socket::link_type(&iface.name)?;
    Ok(Route { iface, link_type })
}

/// The source address the kernel picks for `remote` (a UDP connect sends nothing).
fn source_address(remote: SocketAddr, ip: IpAddr) -> io::Result<IpAddr> {
    let port = remote.port().max(1);
    let (bind, to): (SocketAddr, SocketAddr) = match ip {
        IpAddr::V4(v4) => ((Ipv4Addr::UNSPECIFIED, 0).into(), (v4, port).into()),
        IpAddr::V6(v6) => (
            (Ipv6Addr::UNSPECIFIED, 0).into(),
            SocketAddrV6::new(v6, port, 0, scope_id(remote)).into(),
        ),
    };
    let udp = UdpSocket::bind(bind)?;
    udp.connect(to)?;
    Ok(udp.local_addr()?.ip().to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_own_addresses_route_through_lo() {
        let resolve = |remote: SocketAddr| resolve(remote, pnet_datalink::interfaces());
        let r = resolve("127.0.0.1:80".parse().unwrap()).unwrap();
        assert!(r.is_loopback(), "{r:?}");
        assert_eq!(r.link_type, libc::ARPHRD_LOOPBACK);
        let r = resolve("127.1.2.3:80".parse().unwrap()).unwrap();
        assert!(r.is_loopback());
        // The host's own non-loopback addresses, if it has any, go through lo too.
        for iface in pnet_datalink::interfaces()
            .iter()
            .filter(|i| !i.is_loopback())
        {
            for net in &iface.ips {
                let r = resolve(SocketAddr::new(net.ip(), 443)).unwrap();
                assert!(r.is_loopback(), "{} on {}: {r:?}", net.ip(), iface.name);
            }
        }
    }

    #[test]
    fn cache_returns_the_same_route() {
        let mut cache = RouteCache::new(Arc::new(crate::os::Host::default()));
        let a = cache.get("127.0.0.1:1".parse().unwrap()).unwrap();
        let b = cache.get("127.0.0.1:2".parse().unwrap()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
