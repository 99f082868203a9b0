//! The AF_PACKET socket and the ioctls of the capture: the only `unsafe` of it.
//!
//! We make the socket ourselves because pnet has neither a filter nor a timestamp API, but its
//! `Config::socket_fd` takes a socket we made. What pnet_datalink 0.35 (`src/linux.rs`,
//! `channel`) does with that fd, read from its source:
//! - it uses it as is (no new socket) and `bind`s it to the interface with
//!   `sll_protocol = htons(ETH_P_ALL)` and `sll_ifindex`: our socket is made with protocol 0,
//!   which queues nothing until that bind, and the filter is attached before it, so no
//!   unfiltered packet is ever queued;
//! - `promiscuous: true` (its default) adds a PACKET_MR_PROMISC membership: we pass false;
//! - it sets `O_NONBLOCK` with `F_SETFL` (flags of the open file, so shared with our dup) and
//!   then `poll`s with the read timeout before each `recvfrom`; a timeout is
//!   `ErrorKind::TimedOut`, and a `POLLERR` without `POLLIN` is an `Other` error
//!   ("Unexpected poll event") that does not clear the socket error, so it repeats;
//! - it takes ownership: every error path after it got the fd `close`s it, and on success the fd
//!   lives in an `Arc<FileDesc>` shared by the sender and the receiver that closes it on drop.
//!
//! So we hand pnet the fd with `into_raw_fd` (never closing it ourselves) and keep a `dup` of
//! it (a second fd for the same socket): the filter and the ioctls act on the socket, not on
//! the fd, and the dup is closed by its own owner.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

/// `SIOCGSTAMP` (`SIOCGSTAMP_OLD`, linux/sockios.h): the arrival time of the last packet read,
/// as the native `struct timeval` (64-bit fields on 64-bit Linux). libc has no constant.
const SIOCGSTAMP: libc::Ioctl = 0x8906;

/// `SIOCGIFHWADDR` (linux/sockios.h), typed for `ioctl` on this libc.
const SIOCGIFHWADDR: libc::Ioctl = 0x8927;

/// `socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0)`: socket2 adds `SOCK_CLOEXEC`; protocol 0
/// means nothing is queued before pnet binds it. Needs CAP_NET_RAW (`PermissionDenied`).
pub(crate) fn packet_socket() -> io::Result<Socket> {
    Socket::new(Domain::PACKET, Type::RAW, None)
}

/// Turns timestamping on. The first `SIOCGSTAMP` on a socket enables it and fails with ENOENT
/// (no packet stamped yet); doing it before the bind means the first packet (the SYN) already
/// has a stamp. We do not set SO_TIMESTAMP: it would ask for a control message pnet's
/// `recvfrom` never reads.
pub(crate) fn enable_stamps(sock: &Socket) {
    let _ = last_stamp_ns(sock);
}

/// The arrival time of the last packet read from the socket, in ns since the Unix epoch.
#[allow(unsafe_code)]
pub(crate) fn last_stamp_ns(sock: &Socket) -> io::Result<i64> {
    let mut tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 0,
    };
    // SAFETY: SIOCGSTAMP writes one `struct timeval` through the pointer, which points to a
    // live, writable `libc::timeval` (the kernel's layout for this request on this target); the
    // fd is owned by `sock` and open for the whole call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGSTAMP, &raw mut tv) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    // `time_t` and `suseconds_t` are i64 here but narrower on some 32-bit targets.
    #[allow(clippy::useless_conversion)]
    let (sec, usec) = (i64::from(tv.tv_sec), i64::from(tv.tv_usec));
    Ok(sec
        .saturating_mul(1_000_000_000)
        .saturating_add(usec.saturating_mul(1_000)))
}

/// An eventfd that wakes the capture thread out of [`wait`]: for a drain, a stop, or nothing
/// at all (a spurious wake costs one loop).
pub(crate) struct Wakeup(OwnedFd);

impl Wakeup {
    #[allow(unsafe_code)]
    pub(crate) fn new() -> io::Result<Wakeup> {
        // SAFETY: eventfd takes no pointers; a non-negative result is a new fd we own.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by eventfd and is owned by nothing else.
        Ok(Wakeup(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Makes the next (or the current) [`wait`] return.
    #[allow(unsafe_code)]
    pub(crate) fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes the 8 bytes of a live u64 to an eventfd we own. It can only fail
        // with EAGAIN when the counter is at its maximum, which is as woken as it gets.
        unsafe { libc::write(self.0.as_raw_fd(), (&raw const one).cast(), 8) };
    }

    /// Resets the counter after a wake.
    #[allow(unsafe_code)]
    fn clear(&self) {
        let mut n: u64 = 0;
        // SAFETY: reads 8 bytes into a live, writable u64; EAGAIN (already 0) is fine.
        unsafe { libc::read(self.0.as_raw_fd(), (&raw mut n).cast(), 8) };
    }
}

/// Blocks until `sock` has a packet (or an error) queued, `wakeup` was notified, or
/// `timeout` passed (`None`: no timeout, so a thread with nothing to read or do costs
/// nothing). Returns whether the socket is ready.
#[allow(unsafe_code)]
pub(crate) fn wait(sock: &Socket, wakeup: &Wakeup, timeout: Option<Duration>) -> io::Result<bool> {
    let mut fds = [
        libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: wakeup.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: `fds` is a live, writable array of two pollfds, and its length is passed; both
    // fds stay open for the call (owned by `sock` and `wakeup`).
    // Rounded up: a timeout of 0.4 ms must not spin as 0 ms.
    let timeout_ms = timeout.map_or(-1, |t| {
        libc::c_int::try_from(t.as_micros().div_ceil(1000)).unwrap_or(libc::c_int::MAX)
    });
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
    if rc == -1 {
        let e = io::Error::last_os_error();
        return match e.kind() {
            io::ErrorKind::Interrupted => Ok(false),
            _ => Err(e),
        };
    }
    if fds[1].revents != 0 {
        wakeup.clear();
    }
    Ok(fds[0].revents != 0)
}

/// `FIONREAD` on a packet socket: the length of the next queued packet, 0 when the receive
/// queue is empty (`packet_ioctl`, `SIOCINQ`).
#[allow(unsafe_code)]
pub(crate) fn next_queued_len(sock: &Socket) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one `int` through the pointer, which points to a live, writable
    // `c_int`; the fd is owned by `sock` and open for the whole call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::FIONREAD, &raw mut n) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// The `ARPHRD_*` link type of an interface: `SIOCGIFHWADDR`'s `sa_family`. Asked through a
/// socket, it answers for the probe's own network namespace, which `/sys/class/net` does not
/// when sysfs was mounted in another one.
#[allow(unsafe_code)]
pub(crate) fn link_type(name: &str) -> io::Result<u16> {
    if name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not an interface name"),
        ));
    }
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    // SAFETY: `ifreq` is plain data (integers, arrays of them, a union of such structs): all
    // zeroes is a valid value of it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads the NUL-terminated name (checked shorter than IFNAMSIZ, the
    // rest is zero) and writes a `struct sockaddr` into the union of the live, writable `ifreq`
    // the pointer points to; the fd is owned by `sock` and open for the whole call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCGIFHWADDR, &raw mut req) };
    if rc == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the ioctl succeeded, so it filled `ifru_hwaddr`; any u16 is a valid `sa_family`.
    Ok(unsafe { req.ifr_ifru.ifru_hwaddr.sa_family })
}
