//! The netlink dump both kernel tables are read with (sock_diag's listeners, the neighbour
//! table): send one request, read datagrams until `NLMSG_DONE`, keep the messages of this dump
//! only, and read again when the kernel says the table changed under it. Built by hand, without
//! unsafe, from `linux/netlink.h`:
//!
//! ```c
//! struct nlmsghdr {                /* 16 bytes, host byte order */
//!     __u32 nlmsg_len;             /*  0: header + payload, not padded */
//!     __u16 nlmsg_type;            /*  4 */
//!     __u16 nlmsg_flags;           /*  6: NLM_F_REQUEST | NLM_F_DUMP; NLM_F_MULTI in replies */
//!     __u32 nlmsg_seq;             /*  8 */
//!     __u32 nlmsg_pid;             /* 12: 0 = the kernel */
//! };                               /* messages are padded to 4 bytes (NLMSG_ALIGN) */
//! struct nlmsgerr { int error; struct nlmsghdr msg; };  /* NLMSG_ERROR: negative errno */
//! ```

use std::io::{self, Read};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};

/// `nlmsghdr` size.
pub const NLMSG_HDRLEN: usize = 16;
pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
/// `NLM_F_ROOT | NLM_F_MATCH`.
const NLM_F_DUMP: u16 = 0x300;

/// Larger than any datagram the kernel sends for a dump: it sizes dump messages to the reader's
/// buffer, at most 32 KiB.
const RECV_BUF: usize = 64 * 1024;
/// A single receive never blocks longer than this, and a whole dump never longer than
/// [`DUMP_DEADLINE`]: a stuck kernel costs one reading, not a stuck thread.
const RECV_TIMEOUT: Duration = Duration::from_millis(500);
const DUMP_DEADLINE: Duration = Duration::from_secs(2);
/// A dump that changed under the kernel's feet (`NLM_F_DUMP_INTR`) is tried again this often.
const DUMP_TRIES: usize = 3;

/// A netlink socket of one protocol, kept open between dumps.
#[derive(Debug)]
pub struct Dumper {
    sock: Socket,
    buf: Vec<u8>,
    seq: u32,
    /// What is dumped, for error messages (`sock_diag`, `RTM_GETNEIGH`).
    what: &'static str,
}

impl Dumper {
    /// Opens a netlink socket of `protocol` (`libc::NETLINK_SOCK_DIAG`, ...). Fails when netlink
    /// is not allowed (a seccomp filter, systemd's `RestrictAddressFamilies=` without
    /// `AF_NETLINK`).
    pub fn open(protocol: i32, what: &'static str) -> io::Result<Dumper> {
        // socket2 sets SOCK_CLOEXEC. No bind or connect: an unbound netlink socket sends to
        // the kernel (destination port id 0) and is bound automatically on the first send,
        // which spares us building a sockaddr_nl (unsafe with socket2).
        let sock = Socket::new(
            Domain::from(libc::AF_NETLINK),
            Type::RAW,
            Some(Protocol::from(protocol)),
        )?;
        sock.set_read_timeout(Some(RECV_TIMEOUT))?;
        Ok(Dumper {
            sock,
            buf: vec![0; RECV_BUF],
            seq: 0,
            what,
        })
    }

    /// One dump: `request(seq)` is sent, and every message of its reply goes through
    /// `parse(type, payload, out)`. Tried again, with `out` as it was, if the kernel says the
    /// table changed while it was walked; still interrupted after the last try, what was read
    /// is kept (a listing possibly missing an entry that moved, better than none).
    pub fn dump<T, R: AsRef<[u8]>>(
        &mut self,
        request: impl Fn(u32) -> R,
        out: &mut Vec<T>,
        mut parse: impl FnMut(u16, &[u8], &mut Vec<T>),
    ) -> io::Result<()> {
        let start = out.len();
        for _ in 0..DUMP_TRIES {
            out.truncate(start);
            if !self.dump_once(&request, out, &mut parse)? {
                break;
            }
        }
        Ok(())
    }

    /// Returns whether the dump was interrupted (`NLM_F_DUMP_INTR`).
    fn dump_once<T, R: AsRef<[u8]>>(
        &mut self,
        request: &impl Fn(u32) -> R,
        out: &mut Vec<T>,
        parse: &mut impl FnMut(u16, &[u8], &mut Vec<T>),
    ) -> io::Result<bool> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let req = request(seq);
        if self.sock.send(req.as_ref())? != req.as_ref().len() {
            return Err(io::Error::other(format!(
                "{} request sent in part",
                self.what
            )));
        }
        let deadline = Instant::now() + DUMP_DEADLINE;
        let mut interrupted = false;
        loop {
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} dump did not finish", self.what),
                ));
            }
            let n = (&self.sock).read(&mut self.buf)?;
            if n == self.buf.len() {
                // Without MSG_TRUNC the kernel just cuts a datagram that does not fit.
                return Err(io::Error::other(format!(
                    "{} reply larger than the buffer",
                    self.what
                )));
            }
            match walk(&self.buf[..n], seq, |kind, p| parse(kind, p, out))? {
                Batch::More { intr } => interrupted |= intr,
                Batch::Done { intr } => return Ok(interrupted | intr),
            }
        }
    }
}

/// What a datagram said about the dump.
#[derive(Debug, PartialEq, Eq)]
pub enum Batch {
    /// More datagrams follow.
    More { intr: bool },
    /// `NLMSG_DONE` was seen.
    Done { intr: bool },
}

/// The `nlmsghdr` of a dump request of `len` bytes in all.
pub fn request_header(len: usize, kind: u16, seq: u32) -> [u8; NLMSG_HDRLEN] {
    let mut b = [0u8; NLMSG_HDRLEN];
    b[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
    b[4..6].copy_from_slice(&kind.to_ne_bytes());
    b[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    b[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0: the kernel.
    b
}

/// The messages of one datagram: those of dump `seq` go to `each(type, payload)`; messages of
/// another sequence number (the tail of an earlier dump that timed out or was retried) are
/// skipped. Errors, overruns and malformed lengths end the dump with an error.
pub fn walk(mut data: &[u8], seq: u32, mut each: impl FnMut(u16, &[u8])) -> io::Result<Batch> {
    let mut intr = false;
    while data.len() >= NLMSG_HDRLEN {
        let len = u32_ne(data, 0) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            return Err(io::Error::other(format!(
                "malformed netlink message: length {len} in {} bytes",
                data.len()
            )));
        }
        let (kind, flags, msg_seq) = (u16_ne(data, 4), u16_ne(data, 6), u32_ne(data, 8));
        let payload = &data[NLMSG_HDRLEN..len];
        // NLMSG_ALIGN: the next message starts at a multiple of 4.
        data = &data[((len + 3) & !3).min(data.len())..];
        if msg_seq != seq {
            continue;
        }
        intr |= flags & NLM_F_DUMP_INTR != 0;
        match kind {
            NLMSG_DONE => return Ok(Batch::Done { intr }),
            NLMSG_ERROR => {
                let errno = payload.get(0..4).map_or(0, |_| i32_ne(payload, 0));
                if errno != 0 {
                    return Err(io::Error::from_raw_os_error(errno.saturating_neg()));
                }
                // An acknowledgement; a dump still ends with NLMSG_DONE.
            }
            NLMSG_NOOP => {}
            NLMSG_OVERRUN => return Err(io::Error::other("netlink overrun")),
            _ => each(kind, payload),
        }
    }
    Ok(Batch::More { intr })
}

pub fn u16_ne(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

pub fn u32_ne(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn i32_ne(b: &[u8], at: usize) -> i32 {
    i32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
