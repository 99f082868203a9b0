//! Every input the probe takes from the operating system, behind one seam chosen once at
//! start ([`get_input`]) and handed to each part that reads the host: `/proc` under
//! `[host] proc_root`, the interfaces and their addresses, the neighbour table, the listening
//! sockets (sock_diag), the kernel log, and the AF_PACKET opener the startup check tries.
//!
//! Why a seam: the cycle with its listener watch, host watch and backend memory then runs in
//! tests on recorded inputs ([`recorded`]), without root, namespaces or a kernel to provoke,
//! and no part of the probe can quietly read the real host beside the one it was given (a
//! probe in a container reads the host's `/proc` where it is mounted, everywhere).
//! bandwhich's `OsInputOutput` and trippy's `Network` trait are the models.

mod host;
#[cfg(test)]
pub mod recorded;

use std::io::{self, Read};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

pub use host::Host;
use pnet_datalink::NetworkInterface;

use crate::config::HostConfig;
use crate::host::boot;
use crate::host::neighbours::Neighbour;
use crate::host::sock_diag::DiagListener;

/// The operating system as the probe reads it. Shared by the parts of one probe as an
/// `Arc<dyn Os>`.
pub trait Os: Send + Sync + 'static {
    /// The `/proc` the host's files and processes are read under.
    fn proc_root(&self) -> &Path;
    /// The host's interfaces with their addresses.
    fn interfaces(&self) -> Vec<NetworkInterface>;
    /// The neighbour table (ARP and NDP).
    fn neighbours(&self) -> io::Result<Vec<Neighbour>>;
    /// A dumper of listening TCP sockets, kept open by the listener watch between polls.
    fn open_listener_dump(&self) -> io::Result<Box<dyn ListenerDump>>;
    /// The kernel log, backlog first, one record per read; the error names it.
    fn open_kernel_log(&self) -> io::Result<KernelLogReader>;
    /// Opens and closes an AF_PACKET socket as the capture does: what the startup check tries.
    fn try_packet_socket(&self) -> io::Result<()>;

    /// False only when `ip` is surely not this host's: cheap, for deciding whether a check is
    /// worth watching the listeners for. Evidence is decided by [`Os::is_own_address`].
    fn may_be_own_address(&self, ip: IpAddr) -> bool {
        self.is_own_address(ip)
    }

    /// Whether `ip` is one of this host's own addresses (loopback included): a canary there
    /// is served on this host, where its listeners can be looked at.
    fn is_own_address(&self, ip: IpAddr) -> bool {
        own_address_among(&self.interfaces(), ip)
    }

    /// This host's addresses, loopback excluded, sorted, each once: kept between cycles, so
    /// that a change of the host's own addresses can be told from a backend's.
    fn own_addresses(&self) -> Vec<IpAddr> {
        distinct_non_loopback(
            self.interfaces()
                .iter()
                .flat_map(|i| i.ips.iter().map(|n| n.ip())),
        )
    }

    /// The current boot's id, from `proc_root`.
    fn boot_id(&self) -> io::Result<String> {
        boot::boot_id(self.proc_root())
    }

    /// Whole seconds since the host booted, from `proc_root`.
    fn uptime_s(&self) -> io::Result<u64> {
        boot::uptime_s(self.proc_root())
    }
}

/// The listening TCP sockets on one port, both families.
pub trait ListenerDump: Send {
    fn listeners(&mut self, port: u16) -> io::Result<Vec<DiagListener>>;
}

/// An opened kernel log and the name its messages use.
pub struct KernelLogReader {
    pub reader: Box<dyn Read + Send>,
    pub name: String,
}

/// The operating system this probe runs on, read as `config` says (`proc_root`). Called once
/// at start, and again on a reload that changes `proc_root`.
pub fn get_input(config: &HostConfig) -> Arc<dyn Os> {
    Arc::new(Host::new(&config.proc_root))
}

/// [`Os::is_own_address`] against an interface list already read.
pub fn own_address_among(ifaces: &[NetworkInterface], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip.is_loopback() || ifaces.iter().any(|i| i.ips.iter().any(|n| n.ip() == ip))
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
        let real = Host::default().own_addresses();
        assert!(real.iter().all(|ip| !ip.is_loopback()), "{real:?}");
        assert!(real.windows(2).all(|w| w[0] < w[1]), "{real:?}");
    }

    #[test]
    fn own_addresses_may_be_own_and_a_documentation_address_is_not() {
        let host = Host::default();
        for ip in host
            .own_addresses()
            .into_iter()
            .chain(["127.0.0.1".parse().unwrap()])
        {
            assert!(host.may_be_own_address(ip), "{ip}");
        }
        let nonlocal_bind = std::fs::read_to_string("/proc/sys/net/ipv4/ip_nonlocal_bind")
            .is_ok_and(|v| v.trim() == "1");
        assert_eq!(
            host.may_be_own_address("192.0.2.1".parse().unwrap()),
            nonlocal_bind
        );
    }
}
