//! The TCP listening sockets of this host's network namespace, from the kernel's sock_diag
//! netlink interface.
//!
//! Why netlink and not `/proc/net/tcp`: a dump of listening sockets is a few system calls and
//! a few hundred bytes per socket, with no text to parse, and the kernel can filter by port, so
//! polling it every 100 ms costs next to nothing. It gives the inode, uid and address of each
//! socket but no pid: owners come from [`super::procfs`].
//!
//! The messages are built and parsed by hand, by offsets, from these C definitions
//! (`linux/sock_diag.h`, `linux/inet_diag.h`; all fields are in host byte order unless marked
//! `__be`); the netlink dump itself is `super::netlink`'s:
//!
//! ```c
//! struct inet_diag_sockid {        /* 48 bytes */
//!     __be16 idiag_sport;          /*  0 */
//!     __be16 idiag_dport;          /*  2 */
//!     __be32 idiag_src[4];         /*  4: IPv4 in the first word */
//!     __be32 idiag_dst[4];         /* 20 */
//!     __u32  idiag_if;             /* 36: bound interface index */
//!     __u32  idiag_cookie[2];      /* 40 */
//! };
//!
//! struct inet_diag_req_v2 {        /* 56 bytes, after the nlmsghdr */
//!     __u8  sdiag_family;          /*  0: AF_INET or AF_INET6 */
//!     __u8  sdiag_protocol;        /*  1: IPPROTO_TCP */
//!     __u8  idiag_ext;             /*  2: extra attributes wanted (none) */
//!     __u8  pad;                   /*  3 */
//!     __u32 idiag_states;          /*  4: bit mask of TCP states, 1 << TCP_LISTEN */
//!     struct inet_diag_sockid id;  /*  8: for listeners the kernel honours id.idiag_sport */
//! };
//!
//! struct inet_diag_msg {           /* 72 bytes, after the nlmsghdr; attributes follow */
//!     __u8  idiag_family;          /*  0 */
//!     __u8  idiag_state;           /*  1 */
//!     __u8  idiag_timer;           /*  2 */
//!     __u8  idiag_retrans;         /*  3 */
//!     struct inet_diag_sockid id;  /*  4 */
//!     __u32 idiag_expires;         /* 52 */
//!     __u32 idiag_rqueue;          /* 56: listeners: connections in the accept queue */
//!     __u32 idiag_wqueue;          /* 60: listeners: the backlog */
//!     __u32 idiag_uid;             /* 64 */
//!     __u32 idiag_inode;           /* 68 */
//! };
//!
//! ```

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use super::netlink::{self, Dumper, NLMSG_HDRLEN, u32_ne};

/// `inet_diag_req_v2` size.
const REQ_LEN: usize = 56;
/// `inet_diag_msg` size.
const MSG_LEN: usize = 72;

/// `linux/sock_diag.h`.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `include/net/tcp_states.h`.
const TCP_LISTEN: u8 = 10;

/// One TCP socket in LISTEN state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiagListener {
    /// The bound address; unspecified for a wildcard bind.
    pub address: SocketAddr,
    pub uid: u32,
    pub inode: u64,
    /// Connections waiting in the accept queue.
    pub accept_queue: u32,
    /// The listen backlog.
    pub backlog: u32,
}

/// A NETLINK_SOCK_DIAG socket, kept open between polls.
#[derive(Debug)]
pub struct SockDiag {
    dumper: Dumper,
}

impl SockDiag {
    /// Opens the netlink socket. Fails when netlink is not allowed (a seccomp filter, systemd's
    /// `RestrictAddressFamilies=` without `AF_NETLINK`).
    pub fn open() -> io::Result<SockDiag> {
        let dumper = Dumper::open(libc::NETLINK_SOCK_DIAG, "sock_diag")?;
        Ok(SockDiag { dumper })
    }

    /// The TCP listeners, IPv4 and IPv6, on `port`, or on every port when `port` is 0.
    ///
    /// The kernel does the port filtering: for listening sockets it skips those whose source
    /// port differs from a non-zero `id.idiag_sport` in the request.
    pub fn listeners(&mut self, port: u16) -> io::Result<Vec<DiagListener>> {
        let mut out = Vec::new();
        for family in [libc::AF_INET, libc::AF_INET6] {
            let request = |seq| request(family as u8, port, seq);
            self.dumper.dump(request, &mut out, |kind, payload, out| {
                if kind == SOCK_DIAG_BY_FAMILY {
                    out.extend(parse_msg(payload));
                }
            })?;
        }
        Ok(out)
    }
}

/// The request: an `nlmsghdr` and an `inet_diag_req_v2` asking for the TCP sockets of
/// `family` in LISTEN state, on `port` unless it is 0.
fn request(family: u8, port: u16, seq: u32) -> [u8; NLMSG_HDRLEN + REQ_LEN] {
    let mut b = [0u8; NLMSG_HDRLEN + REQ_LEN];
    let header = netlink::request_header(NLMSG_HDRLEN + REQ_LEN, SOCK_DIAG_BY_FAMILY, seq);
    b[..NLMSG_HDRLEN].copy_from_slice(&header);
    let r = NLMSG_HDRLEN;
    b[r] = family;
    b[r + 1] = libc::IPPROTO_TCP as u8;
    // idiag_ext 0, pad 0.
    b[r + 4..r + 8].copy_from_slice(&(1u32 << TCP_LISTEN).to_ne_bytes());
    // id.idiag_sport, big-endian; the rest of the id stays zero (dport must be 0 for the
    // kernel to walk the listening table at all).
    b[r + 8..r + 10].copy_from_slice(&port.to_be_bytes());
    b
}

/// One `inet_diag_msg`; `None` if it is short, of an unknown family or not listening.
fn parse_msg(p: &[u8]) -> Option<DiagListener> {
    if p.len() < MSG_LEN {
        return None;
    }
    let family = i32::from(p[0]);
    if p[1] != TCP_LISTEN {
        return None;
    }
    let port = u16::from_be_bytes([p[4], p[5]]);
    let src: [u8; 16] = p[8..24].try_into().ok()?;
    let ifindex = u32_ne(p, 40);
    let address = match family {
        libc::AF_INET => {
            let ip = Ipv4Addr::new(src[0], src[1], src[2], src[3]);
            SocketAddr::new(IpAddr::V4(ip), port)
        }
        libc::AF_INET6 => {
            let ip = Ipv6Addr::from(src);
            // A link-local address means nothing without its interface.
            let scope = if ip.is_unicast_link_local() {
                ifindex
            } else {
                0
            };
            SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope))
        }
        _ => return None,
    };
    Some(DiagListener {
        address,
        accept_queue: u32_ne(p, 56),
        backlog: u32_ne(p, 60),
        uid: u32_ne(p, 64),
        inode: u64::from(u32_ne(p, 68)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::netlink::{Batch, NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, u16_ne};
    use socket2::{Domain, Socket, Type};
    use std::net::TcpListener;

    /// The listeners of dump `seq` in one datagram, appended to `out` (see [`netlink::walk`]).
    fn parse_datagram(data: &[u8], seq: u32, out: &mut Vec<DiagListener>) -> io::Result<Batch> {
        netlink::walk(data, seq, |kind, payload| {
            if kind == SOCK_DIAG_BY_FAMILY {
                out.extend(parse_msg(payload));
            }
        })
    }

    /// The inode of a socket of this process, from `/proc/self/fd/N -> socket:[inode]`.
    fn inode_of(fd: std::os::fd::RawFd) -> u64 {
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        let link = link.to_str().unwrap();
        link.strip_prefix("socket:[")
            .and_then(|s| s.strip_suffix(']'))
            .unwrap()
            .parse()
            .unwrap()
    }

    fn uid() -> u32 {
        std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
            .unwrap()
    }

    fn reuseport_listener(addr: SocketAddr) -> Socket {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
        s.set_reuse_port(true).unwrap();
        s.bind(&addr.into()).unwrap();
        s.listen(16).unwrap();
        s
    }

    #[test]
    fn dump_finds_ipv4_and_ipv6_listeners_with_inode_and_uid() {
        use std::os::fd::AsRawFd;
        let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = TcpListener::bind("[::1]:0").unwrap();
        let mut diag = SockDiag::open().unwrap();
        for l in [&v4, &v6] {
            let addr = l.local_addr().unwrap();
            // The two ephemeral ports can be the same (IPv4 and IPv6 sockets do not clash):
            // the other family's listener is then on the port too.
            let found: Vec<_> = diag
                .listeners(addr.port())
                .unwrap()
                .into_iter()
                .filter(|d| d.address.is_ipv4() == addr.is_ipv4())
                .collect();
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].address, addr);
            assert_eq!(found[0].inode, inode_of(l.as_raw_fd()));
            assert_eq!(found[0].uid, uid());
            assert!(found[0].backlog > 0);
        }
        // Port 0 lists everything, the two among them.
        let all = diag.listeners(0).unwrap();
        for l in [&v4, &v6] {
            let inode = inode_of(l.as_raw_fd());
            assert!(
                all.iter().any(|d| d.inode == inode),
                "{inode} not in {all:?}"
            );
        }
    }

    #[test]
    fn dump_finds_both_sockets_of_a_reuseport_group() {
        use std::os::fd::AsRawFd;
        let a = reuseport_listener("127.0.0.1:0".parse().unwrap());
        let addr = a.local_addr().unwrap().as_socket().unwrap();
        let b = reuseport_listener(addr);
        let mut diag = SockDiag::open().unwrap();
        let found = diag.listeners(addr.port()).unwrap();
        let mut inodes: Vec<u64> = found.iter().map(|d| d.inode).collect();
        inodes.sort_unstable();
        let mut want = vec![inode_of(a.as_raw_fd()), inode_of(b.as_raw_fd())];
        want.sort_unstable();
        assert_eq!(inodes, want);
        assert!(found.iter().all(|d| d.address == addr));
    }

    /// 300 listeners do not fit in one datagram: the dump comes in several.
    #[test]
    fn a_dump_spanning_several_datagrams_is_read_whole() {
        use std::os::fd::AsRawFd;
        let many: Vec<TcpListener> = (0..300)
            .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut diag = SockDiag::open().unwrap();
        let all = diag.listeners(0).unwrap();
        let found: std::collections::HashSet<u64> = all.iter().map(|d| d.inode).collect();
        for l in &many {
            assert!(found.contains(&inode_of(l.as_raw_fd())));
        }
        // And the socket is still in step for the next dump.
        let port = many[0].local_addr().unwrap().port();
        assert_eq!(diag.listeners(port).unwrap().len(), 1);
    }

    #[test]
    fn a_closed_listener_is_not_listed() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mut diag = SockDiag::open().unwrap();
        assert_eq!(diag.listeners(port).unwrap().len(), 1);
        drop(l);
        assert_eq!(diag.listeners(port).unwrap(), vec![]);
    }

    #[test]
    fn request_bytes_match_the_c_layout() {
        let r = request(libc::AF_INET6 as u8, 80, 7);
        assert_eq!(r.len(), 72);
        assert_eq!(u32_ne(&r, 0), 72);
        assert_eq!(u16_ne(&r, 4), 20);
        assert_eq!(u16_ne(&r, 6), 0x301);
        assert_eq!(u32_ne(&r, 8), 7);
        assert_eq!(u32_ne(&r, 12), 0);
        assert_eq!(&r[16..20], &[libc::AF_INET6 as u8, 6, 0, 0]);
        assert_eq!(u32_ne(&r, 20), 1 << 10);
        assert_eq!(&r[24..26], &[0, 80]);
        assert!(r[26..].iter().all(|&b| b == 0));
    }

    fn nlmsg(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = (NLMSG_HDRLEN + payload.len()) as u32;
        let mut m = Vec::new();
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        while m.len() % 4 != 0 {
            m.push(0);
        }
        m
    }

    fn diag_msg(family: u8, state: u8, port: u16, src: [u8; 16], uid: u32, inode: u32) -> Vec<u8> {
        let mut p = vec![0u8; MSG_LEN];
        p[0] = family;
        p[1] = state;
        p[4..6].copy_from_slice(&port.to_be_bytes());
        p[8..24].copy_from_slice(&src);
        p[56..60].copy_from_slice(&3u32.to_ne_bytes());
        p[60..64].copy_from_slice(&511u32.to_ne_bytes());
        p[64..68].copy_from_slice(&uid.to_ne_bytes());
        p[68..72].copy_from_slice(&inode.to_ne_bytes());
        // An attribute after the fixed part, as the kernel adds.
        p.extend_from_slice(&[8, 0, 8, 0, 0, 0, 0, 0]);
        p
    }

    #[test]
    fn multipart_replies_are_parsed_until_done() {
        let mut v4 = [0u8; 16];
        v4[..4].copy_from_slice(&[10, 0, 0, 1]);
        let v6: [u8; 16] = "::".parse::<Ipv6Addr>().unwrap().octets();
        let mut first = nlmsg(20, 2, 9, &diag_msg(2, 10, 80, v4, 33, 111));
        first.extend(nlmsg(20, 2, 8, &diag_msg(2, 10, 80, v4, 0, 999))); // stale dump
        first.extend(nlmsg(20, 2, 9, &diag_msg(10, 10, 80, v6, 0, 222)));
        let mut out = Vec::new();
        assert_eq!(
            parse_datagram(&first, 9, &mut out).unwrap(),
            Batch::More { intr: false }
        );
        let mut second = nlmsg(20, 2 | NLM_F_DUMP_INTR, 9, &diag_msg(2, 7, 80, v4, 0, 333));
        second.extend(nlmsg(NLMSG_DONE, 2, 9, &0i32.to_ne_bytes()));
        assert_eq!(
            parse_datagram(&second, 9, &mut out).unwrap(),
            Batch::Done { intr: true }
        );
        assert_eq!(
            out,
            vec![
                DiagListener {
                    address: "10.0.0.1:80".parse().unwrap(),
                    uid: 33,
                    inode: 111,
                    accept_queue: 3,
                    backlog: 511,
                },
                DiagListener {
                    address: "[::]:80".parse().unwrap(),
                    uid: 0,
                    inode: 222,
                    accept_queue: 3,
                    backlog: 511,
                },
            ],
            "the stale and the non-listening sockets are left out"
        );
    }

    #[test]
    fn an_error_reply_is_an_error() {
        let mut payload = (-libc::EPERM).to_ne_bytes().to_vec();
        payload.extend_from_slice(&request(2, 80, 4)[..NLMSG_HDRLEN]);
        let err =
            parse_datagram(&nlmsg(NLMSG_ERROR, 0, 4, &payload), 4, &mut Vec::new()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        let ack = nlmsg(NLMSG_ERROR, 0, 4, &0i32.to_ne_bytes());
        assert_eq!(
            parse_datagram(&ack, 4, &mut Vec::new()).unwrap(),
            Batch::More { intr: false }
        );
    }

    #[test]
    fn a_malformed_length_is_an_error_not_a_panic() {
        let mut m = nlmsg(20, 2, 1, &[0; 8]);
        m[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(parse_datagram(&m, 1, &mut Vec::new()).is_err());
        m[0..4].copy_from_slice(&3u32.to_ne_bytes());
        assert!(parse_datagram(&m, 1, &mut Vec::new()).is_err());
        // A short inet_diag_msg is skipped.
        let short = nlmsg(20, 2, 1, &[0; 20]);
        let mut out = Vec::new();
        assert!(parse_datagram(&short, 1, &mut out).is_ok());
        assert!(out.is_empty());
    }
}
