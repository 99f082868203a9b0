//! Evidence from the probe's own host: the listening sockets on the canary ports and their
//! owners, the neighbour table, the boot id.

pub mod boot;
pub mod kmsg;
pub mod listeners;
pub mod neighbours;
pub mod netlink;
pub mod pressure;
pub mod procfs;
pub mod sock_diag;
pub mod watch;

use std::net::IpAddr;

/// Whether `ip` is one of this host's own addresses (loopback included): a canary there is
/// served on this host, where its listeners can be looked at.
pub fn is_own_address(ip: IpAddr) -> bool {
    own_address_among(&pnet_datalink::interfaces(), ip)
}

/// False only when `ip` is surely not this host's: binding a socket to it fails with
/// EADDRNOTAVAIL. Three syscalls instead of [`is_own_address`]'s two netlink dumps, for
/// deciding whether a check is worth watching the listeners for; a host that allows binding
/// to any address (`net.ipv4.ip_nonlocal_bind = 1`) gets `true` for every address, which
/// costs polls, never evidence (that is decided by [`is_own_address`]).
pub fn may_be_own_address(ip: IpAddr) -> bool {
    match std::net::UdpSocket::bind((ip.to_canonical(), 0)) {
        Ok(_) => true,
        Err(e) => e.raw_os_error() != Some(libc::EADDRNOTAVAIL),
    }
}

/// [`is_own_address`] against an interface list already read.
pub fn own_address_among(ifaces: &[pnet_datalink::NetworkInterface], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip.is_loopback() || ifaces.iter().any(|i| i.ips.iter().any(|n| n.ip() == ip))
}

/// This host's addresses, loopback excluded, sorted, each once: kept between cycles, so that a
/// change of the host's own addresses can be told from a backend's.
pub fn own_addresses() -> Vec<IpAddr> {
    distinct_non_loopback(
        pnet_datalink::interfaces()
            .iter()
            .flat_map(|i| i.ips.iter().map(|n| n.ip())),
    )
}

fn distinct_non_loopback(ips: impl IntoIterator<Item = IpAddr>) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = ips
        .into_iter()
        .map(|ip| ip.to_canonical())
        .filter(|ip| !ip.is_loopback())
        .collect();
    ips.sort_unstable();
    ips.dedup();
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_addresses_are_distinct_sorted_and_without_loopback() {
        let ips = [
            "10.0.0.2",
            "::1",
            "10.0.0.1",
            "127.0.0.1",
            "fe80::1",
            "10.0.0.2",
        ];
        let got = distinct_non_loopback(ips.map(|s| s.parse().unwrap()));
        let want: Vec<IpAddr> = ["10.0.0.1", "10.0.0.2", "fe80::1"]
            .map(|s| s.parse().unwrap())
            .into();
        assert_eq!(got, want);
        let real = own_addresses();
        assert!(real.iter().all(|ip| !ip.is_loopback()), "{real:?}");
        assert!(real.windows(2).all(|w| w[0] < w[1]), "{real:?}");
    }

    #[test]
    fn own_addresses_may_be_own_and_a_documentation_address_is_not() {
        for ip in own_addresses()
            .into_iter()
            .chain(["127.0.0.1".parse().unwrap()])
        {
            assert!(may_be_own_address(ip), "{ip}");
        }
        let nonlocal_bind = std::fs::read_to_string("/proc/sys/net/ipv4/ip_nonlocal_bind")
            .is_ok_and(|v| v.trim() == "1");
        assert_eq!(
            may_be_own_address("192.0.2.1".parse().unwrap()),
            nonlocal_bind
        );
    }
}
