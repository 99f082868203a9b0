//! The kernel's neighbour table (ARP for IPv4, NDP for IPv6) of the probe's network namespace.
//!
//! Why: a link-layer address names a machine (a VM, a container's veth) whatever IP it has now.
//! A backend that no longer answers at its configured address but whose MAC is seen at another
//! one has moved, not died: the proxy points at a stale address.
//!
//! Read with one `RTM_GETNEIGH` dump (both families, `AF_UNSPEC`) through [`super::netlink`],
//! built and parsed by hand from these C definitions (`linux/neighbour.h`; host byte
//! order):
//!
//! ```c
//! struct ndmsg {          /* 12 bytes after the nlmsghdr; rtattrs follow */
//!     __u8  ndm_family;   /*  0: AF_INET, AF_INET6 (AF_UNSPEC in a dump request) */
//!     __u8  ndm_pad1;
//!     __u16 ndm_pad2;
//!     __s32 ndm_ifindex;  /*  4 */
//!     __u16 ndm_state;    /*  8: one NUD_* bit */
//!     __u8  ndm_flags;    /* 10: NTF_PROXY would ask for proxy entries: left 0 */
//!     __u8  ndm_type;     /* 11 */
//! };
//! struct rtattr { __u16 rta_len; __u16 rta_type; };  /* then the value, padded to 4 */
//! /* NDA_DST: the IP (4 or 16 bytes); NDA_LLADDR: the MAC, absent while unresolved. */
//! ```
//!
//! Interface names come from `/sys/class/net/*/ifindex`, which every container runtime and
//! `ip netns exec` mount for the process's own namespace: simpler than a link dump whose
//! messages are mostly statistics.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::Path;

use super::netlink::{self, Dumper, NLMSG_HDRLEN, u16_ne, u32_ne};

const NDMSG_LEN: usize = 12;

/// A neighbour entry's NUD state (`ip neigh` shows the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeighState {
    Reachable,
    Stale,
    Delay,
    Probe,
    Failed,
    Incomplete,
    Permanent,
    NoArp,
    Other,
}

impl NeighState {
    fn from_nud(nud: u16) -> NeighState {
        match nud {
            libc::NUD_REACHABLE => NeighState::Reachable,
            libc::NUD_STALE => NeighState::Stale,
            libc::NUD_DELAY => NeighState::Delay,
            libc::NUD_PROBE => NeighState::Probe,
            libc::NUD_FAILED => NeighState::Failed,
            libc::NUD_INCOMPLETE => NeighState::Incomplete,
            libc::NUD_PERMANENT => NeighState::Permanent,
            libc::NUD_NOARP => NeighState::NoArp,
            _ => NeighState::Other,
        }
    }

    /// Whether the entry's MAC says who is at the address: not while being resolved or after
    /// resolution failed (the kernel keeps the last MAC then, or none).
    fn resolved(self) -> bool {
        !matches!(self, NeighState::Failed | NeighState::Incomplete)
    }
}

/// One entry of the table: who answers for `ip` on `interface`, as far as the kernel knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub ip: IpAddr,
    /// `02:42:0a:00:03:0c`, lower case; empty when the kernel has none (incomplete, failed).
    pub mac: String,
    pub interface: String,
    pub state: NeighState,
}

/// The neighbour table, IPv4 and IPv6.
pub fn neighbours() -> io::Result<Vec<Neighbour>> {
    let names = interface_names(Path::new("/sys/class/net"));
    let mut dumper = Dumper::open(libc::NETLINK_ROUTE, "RTM_GETNEIGH")?;
    let mut out = Vec::new();
    dumper.dump(request, &mut out, |kind, payload, out| {
        if kind == libc::RTM_NEWNEIGH {
            out.extend(parse_neigh(payload, &names));
        }
    })?;
    Ok(out)
}

/// The MAC of `ip`'s entry, if it is resolved.
pub fn mac_of(neigh: &[Neighbour], ip: IpAddr) -> Option<&str> {
    let ip = ip.to_canonical();
    neigh
        .iter()
        .find(|n| n.ip == ip && n.state.resolved() && !n.mac.is_empty())
        .map(|n| n.mac.as_str())
}

/// The addresses whose resolved entry has `mac` (compared ignoring case). The iterator borrows
/// the table only, not `mac`.
pub fn addresses_with_mac<'a>(
    neigh: &'a [Neighbour],
    mac: &str,
) -> impl Iterator<Item = IpAddr> + use<'a> {
    let mac = mac.to_ascii_lowercase();
    neigh
        .iter()
        .filter(move |n| n.state.resolved() && !mac.is_empty() && n.mac == mac)
        .map(|n| n.ip)
}

/// `nlmsghdr` + `ndmsg` asking for every entry of every family.
fn request(seq: u32) -> [u8; NLMSG_HDRLEN + NDMSG_LEN] {
    let mut b = [0u8; NLMSG_HDRLEN + NDMSG_LEN];
    let header = netlink::request_header(NLMSG_HDRLEN + NDMSG_LEN, libc::RTM_GETNEIGH, seq);
    b[..NLMSG_HDRLEN].copy_from_slice(&header);
    // The ndmsg stays zero: AF_UNSPEC, no interface filter, no proxy entries.
    b
}

/// One `ndmsg` and its attributes; `None` when short or without a destination IP.
fn parse_neigh(p: &[u8], names: &HashMap<u32, String>) -> Option<Neighbour> {
    let head = p.get(..NDMSG_LEN)?;
    let ifindex = u32_ne(head, 4);
    let (mut ip, mut mac) = (None, String::new());
    let mut attrs = &p[NDMSG_LEN..];
    while attrs.len() >= 4 {
        let len = usize::from(u16_ne(attrs, 0));
        let value = attrs.get(4..len)?;
        match (u16_ne(attrs, 2), value.len()) {
            (libc::NDA_DST, 4) => ip = Some(IpAddr::from(<[u8; 4]>::try_from(value).ok()?)),
            (libc::NDA_DST, 16) => ip = Some(IpAddr::from(<[u8; 16]>::try_from(value).ok()?)),
            (libc::NDA_LLADDR, _) => {
                let hex: Vec<String> = value.iter().map(|b| format!("{b:02x}")).collect();
                mac = hex.join(":");
            }
            _ => {}
        }
        attrs = &attrs[((len + 3) & !3).min(attrs.len())..];
    }
    let interface = names
        .get(&ifindex)
        .cloned()
        .unwrap_or_else(|| format!("if{ifindex}"));
    let state = NeighState::from_nud(u16_ne(head, 8));
    Some(Neighbour {
        ip: ip?,
        mac,
        interface,
        state,
    })
}

/// Interface index to name, from `dir/*/ifindex`. Unreadable entries are left out.
fn interface_names(dir: &Path) -> HashMap<u32, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return HashMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let index = std::fs::read_to_string(e.path().join("ifindex")).ok()?;
            Some((
                index.trim().parse().ok()?,
                e.file_name().to_str()?.to_owned(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;
    use crate::host::netlink::{Batch, NLMSG_ERROR};

    /// The entries of dump `seq` in one datagram, appended to `out` (see [`netlink::walk`]).
    fn parse_datagram(
        data: &[u8],
        seq: u32,
        names: &HashMap<u32, String>,
        out: &mut Vec<Neighbour>,
    ) -> io::Result<Batch> {
        netlink::walk(data, seq, |kind, payload| {
            if kind == libc::RTM_NEWNEIGH {
                out.extend(parse_neigh(payload, names));
            }
        })
    }

    /// One datagram of a real dump (x86_64, Linux 6.18, sequence 1), from the namespace that
    /// `kernel_table_in_a_private_network` sets up, cwa being interface 3.
    const DUMP: &str = concat!(
        // 10.96.0.4 FAILED: no NDA_LLADDR.
        "400000001c00020001000000c6390000020000000300000020000001080001000a6000040800040000000000",
        "14000300d6170000660000006600000000000000",
        // 10.96.0.3 lladdr 02:00:00:00:00:03 STALE.
        "4c0000001c00020001000000c6390000020000000300000004000001080001000a6000030a00020002000000",
        "00030000080004000000000014000300d6170000660000006600000000000000",
        // 10.96.0.2 lladdr 02:00:00:00:00:02 PERMANENT.
        "4c0000001c00020001000000c6390000020000000300000080000001080001000a6000020a00020002000000",
        "0002000008000400000000001400030067000000670000006700000000000000",
        // fe80::2 lladdr 02:00:00:00:00:06 REACHABLE.
        "580000001c00020001000000c63900000a000000030000000200000114000100fe8000000000000000000000",
        "000000020a000200020000000006000008000400000000001400030066000000660000006600000001000000",
        // NLMSG_DONE.
        "140000000300020001000000c639000000000000",
    );

    fn bytes(hex: &str) -> Vec<u8> {
        let digit = |i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap();
        (0..hex.len()).step_by(2).map(digit).collect()
    }

    fn entry(ip: &str, mac: &str, state: NeighState) -> Neighbour {
        let interface = "cwa".to_owned();
        Neighbour {
            ip: ip.parse().unwrap(),
            mac: mac.to_owned(),
            interface,
            state,
        }
    }

    /// The entries of [`DUMP`] and of the lab, in the kernel's order.
    fn expected() -> Vec<Neighbour> {
        vec![
            entry("10.96.0.4", "", NeighState::Failed),
            entry("10.96.0.3", "02:00:00:00:00:03", NeighState::Stale),
            entry("10.96.0.2", "02:00:00:00:00:02", NeighState::Permanent),
            entry("fe80::2", "02:00:00:00:00:06", NeighState::Reachable),
        ]
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn a_recorded_dump_is_parsed() {
        let names = HashMap::from([(3, "cwa".to_owned())]);
        let mut out = Vec::new();
        let batch = parse_datagram(&bytes(DUMP), 1, &names, &mut out).unwrap();
        assert_eq!((batch, out), (Batch::Done { intr: false }, expected()));
        // An unknown index is named by its number; another dump's messages are skipped.
        let mut out = Vec::new();
        parse_datagram(&bytes(DUMP), 1, &HashMap::new(), &mut out).unwrap();
        assert_eq!(out[0].interface, "if3");
        let stale = parse_datagram(&bytes(DUMP), 2, &names, &mut out).unwrap();
        assert_eq!((stale, out.len()), (Batch::More { intr: false }, 4));
    }

    #[test]
    fn errors_and_bad_lengths_are_errors_not_panics() {
        let mut msg = bytes(&DUMP[DUMP.len() - 40..]);
        msg[4] = NLMSG_ERROR as u8;
        msg[16..20].copy_from_slice(&(-libc::EPERM).to_ne_bytes());
        let err = parse_datagram(&msg, 1, &HashMap::new(), &mut Vec::new()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EPERM));
        msg[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(parse_datagram(&msg, 1, &HashMap::new(), &mut Vec::new()).is_err());
        // A truncated attribute drops its entry only.
        let mut neigh = bytes(&DUMP[..128]);
        neigh[28..30].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(parse_neigh(&neigh[16..], &HashMap::new()), None);
    }

    #[test]
    fn lookups_skip_unresolved_entries() {
        let mut table = expected();
        // The kernel can keep the last MAC of an entry that then failed.
        table.push(entry("10.96.0.9", "02:00:00:00:00:02", NeighState::Failed));
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(mac_of(&table, ip("10.96.0.2")), Some("02:00:00:00:00:02"));
        assert_eq!(
            mac_of(&table, ip("::ffff:10.96.0.3")),
            Some("02:00:00:00:00:03")
        );
        assert_eq!(mac_of(&table, ip("10.96.0.4")), None);
        assert_eq!(mac_of(&table, ip("10.96.0.9")), None);
        let at: Vec<IpAddr> = addresses_with_mac(&table, "02:00:00:00:00:02").collect();
        assert_eq!(at, [ip("10.96.0.2")]);
        let at: Vec<IpAddr> =
            addresses_with_mac(&table, &String::from("02:00:00:00:00:06")).collect();
        assert_eq!(at, [ip("fe80::2")]);
        assert_eq!(addresses_with_mac(&table, "").count(), 0);
    }

    /// A network namespace made for one test and deleted after it, even when it panics.
    struct Lab(String);

    impl Drop for Lab {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }

    /// Marks the run of `kernel_table_in_a_private_network` inside its namespace.
    const LAB: &str = "CAUSEWAY_NEIGH_LAB";

    #[test]
    #[ignore = "needs root (raw sockets, namespaces or the kernel log): ./scripts/test runs it, or cargo test -- --include-ignored as root"]
    fn kernel_table_in_a_private_network() {
        if std::env::var_os(LAB).is_some() {
            let got = neighbours().unwrap();
            for want in expected() {
                assert!(got.contains(&want), "{want:?} not in {got:?}");
            }
            println!("neigh lab: {} entries checked", expected().len());
            return;
        }
        let lab = Lab(format!("cw-neigh-{}", std::process::id()));
        let ns = &lab.0;
        for args in [
            format!("netns add {ns}"),
            format!("-n {ns} link add cwa type veth peer name cwb"),
            format!("-n {ns} link set cwa addrgenmode none up"),
            format!("-n {ns} addr add 10.96.0.1/24 dev cwa"),
            format!("-n {ns} neigh add 10.96.0.4 dev cwa nud failed"),
            format!("-n {ns} neigh add 10.96.0.3 lladdr 02:00:00:00:00:03 dev cwa nud stale"),
            format!("-n {ns} neigh add 10.96.0.2 lladdr 02:00:00:00:00:02 dev cwa nud permanent"),
            format!("-n {ns} neigh add fe80::2 lladdr 02:00:00:00:00:06 dev cwa nud reachable"),
        ] {
            let args: Vec<_> = args.split(' ').collect();
            let status = Command::new("ip").args(&args).status().unwrap();
            assert!(status.success(), "ip {args:?}");
        }
        let out = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(std::env::current_exe().unwrap())
            .args([
                "host::neighbours::tests::kernel_table_in_a_private_network",
                "--exact",
                "--include-ignored",
            ])
            .arg("--nocapture")
            .env(LAB, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let checked = stdout.contains("neigh lab: 4 entries checked");
        assert!(out.status.success() && checked, "{stdout}\n{stderr}");
    }
}
