//! Evidence from the probe's own host: the listening sockets on the canary ports and their
//! owners.

pub mod listeners;
pub mod procfs;
pub mod sock_diag;

use std::net::IpAddr;

/// Whether `ip` is one of this host's own addresses (loopback included): a canary there is
/// served on this host, where its listeners can be looked at.
pub fn is_own_address(ip: IpAddr) -> bool {
    own_address_among(&pnet_datalink::interfaces(), ip)
}

/// [`is_own_address`] against an interface list already read.
pub fn own_address_among(ifaces: &[pnet_datalink::NetworkInterface], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip.is_loopback() || ifaces.iter().any(|i| i.ips.iter().any(|n| n.ip() == ip))
}
