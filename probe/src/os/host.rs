//! The real operating system: the kernel's netlink, `/dev/kmsg`, AF_PACKET, and `/proc`
//! where `[host] proc_root` says.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use pnet_datalink::NetworkInterface;

use super::{KernelLogReader, ListenerDump, Os};
use crate::host::kmsg;
use crate::host::neighbours::{self, Neighbour};
use crate::host::sock_diag::{DiagListener, SockDiag};

/// This host, with `/proc` read under `proc_root`.
#[derive(Debug, Clone)]
pub struct Host {
    proc_root: PathBuf,
    kernel_log: PathBuf,
}

impl Host {
    pub fn new(proc_root: &Path) -> Host {
        Host {
            proc_root: proc_root.to_owned(),
            kernel_log: PathBuf::from(kmsg::KMSG),
        }
    }

    /// This host with the kernel log read from `path` (tests of a missing or denied log).
    #[cfg(test)]
    pub(crate) fn with_kernel_log(mut self, path: &Path) -> Host {
        self.kernel_log = path.to_owned();
        self
    }
}

/// This host with `/proc` where it usually is.
impl Default for Host {
    fn default() -> Host {
        Host::new(Path::new("/proc"))
    }
}

impl Os for Host {
    fn proc_root(&self) -> &Path {
        &self.proc_root
    }

    fn interfaces(&self) -> Vec<NetworkInterface> {
        pnet_datalink::interfaces()
    }

    fn neighbours(&self) -> io::Result<Vec<Neighbour>> {
        neighbours::neighbours()
    }

    fn open_listener_dump(&self) -> io::Result<Box<dyn ListenerDump>> {
        Ok(Box::new(SockDiag::open()?))
    }

    fn open_kernel_log(&self) -> io::Result<KernelLogReader> {
        let path = &self.kernel_log;
        let file = std::fs::File::open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        Ok(KernelLogReader {
            reader: Box::new(file),
            name: path.display().to_string(),
        })
    }

    fn try_packet_socket(&self) -> io::Result<()> {
        crate::capture::try_packet_socket()
    }

    /// Binds a UDP socket to `ip`: only EADDRNOTAVAIL means no. Three syscalls instead of
    /// the two netlink dumps of [`Os::is_own_address`]. A host that allows binding to any
    /// address (`net.ipv4.ip_nonlocal_bind = 1`) gets `true` for every address, which costs
    /// polls, never evidence.
    fn may_be_own_address(&self, ip: IpAddr) -> bool {
        match std::net::UdpSocket::bind((ip.to_canonical(), 0)) {
            Ok(_) => true,
            Err(e) => e.raw_os_error() != Some(libc::EADDRNOTAVAIL),
        }
    }
}

impl ListenerDump for SockDiag {
    fn listeners(&mut self, port: u16) -> io::Result<Vec<DiagListener>> {
        SockDiag::listeners(self, port)
    }
}
