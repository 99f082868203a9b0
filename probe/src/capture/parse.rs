//! Frame -> TCP segment facts: addresses, flags, numbers, TTL and payload length.
//!
//! Frames are snapped to the headers by the kernel filter ([`super::bpf::SNAP_LEN`]), so the
//! payload length comes from the IP header (IPv4 total length, IPv6 payload length), never from
//! the bytes captured.

use std::net::{IpAddr, SocketAddr};

use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::tcp::TcpPacket;

/// What comes before the IP header in the frames of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// A 14-byte Ethernet header (also `lo`, whose header has zero addresses).
    Ethernet,
    /// Nothing: the frame starts with the IP header (tun, WireGuard, PPP).
    RawIp,
}

impl Link {
    /// The link for an `ARPHRD_*` device type, if supported.
    pub(crate) fn from_arphrd(link_type: u16) -> Option<Link> {
        // 519 is ARPHRD_RAWIP (cellular modems); libc has no constant for it.
        const ARPHRD_RAWIP: u16 = 519;
        match link_type {
            libc::ARPHRD_ETHER | libc::ARPHRD_LOOPBACK => Some(Link::Ethernet),
            libc::ARPHRD_NONE | libc::ARPHRD_PPP | ARPHRD_RAWIP => Some(Link::RawIp),
            _ => None,
        }
    }

    /// Bytes before the IP header.
    pub(crate) fn header_len(self) -> usize {
        match self {
            Link::Ethernet => 14,
            Link::RawIp => 0,
        }
    }
}

/// The facts the trace keeps about one TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// The TCP flags byte (CWR..FIN), as [`causeway_schema::TcpFlags`] holds it.
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// TCP payload bytes, from the IP length fields.
    pub len: u32,
}

/// Parses one captured frame; `None` for anything but an unfragmented (or first-fragment) TCP
/// segment over IPv4 or over IPv6 without extension headers.
pub(crate) fn parse(frame: &[u8], link: Link) -> Option<Segment> {
    match link {
        Link::Ethernet => {
            let eth = EthernetPacket::new(frame)?;
            let ip = frame.get(link.header_len()..)?;
            match eth.get_ethertype() {
                EtherTypes::Ipv4 => ipv4(ip),
                EtherTypes::Ipv6 => ipv6(ip),
                _ => None,
            }
        }
        Link::RawIp => match frame.first()? >> 4 {
            4 => ipv4(frame),
            6 => ipv6(frame),
            _ => None,
        },
    }
}

fn ipv4(bytes: &[u8]) -> Option<Segment> {
    let ip = Ipv4Packet::new(bytes)?;
    if ip.get_next_level_protocol() != IpNextHeaderProtocols::Tcp || ip.get_fragment_offset() != 0 {
        return None;
    }
    let header = usize::from(ip.get_header_length()) * 4;
    if header < 20 {
        return None;
    }
    let ip_payload = usize::from(ip.get_total_length()).saturating_sub(header);
    tcp(
        bytes.get(header..)?,
        IpAddr::V4(ip.get_source()),
        IpAddr::V4(ip.get_destination()),
        ip.get_ttl(),
        ip_payload,
    )
}

/// Only a TCP header right after the fixed IPv6 header is understood; segments behind extension
/// headers are not traced (the kernel filter does not pass them either).
fn ipv6(bytes: &[u8]) -> Option<Segment> {
    let ip = Ipv6Packet::new(bytes)?;
    if ip.get_next_header() != IpNextHeaderProtocols::Tcp {
        return None;
    }
    tcp(
        bytes.get(40..)?,
        IpAddr::V6(ip.get_source()),
        IpAddr::V6(ip.get_destination()),
        ip.get_hop_limit(),
        usize::from(ip.get_payload_length()),
    )
}

fn tcp(bytes: &[u8], src: IpAddr, dst: IpAddr, ttl: u8, ip_payload: usize) -> Option<Segment> {
    let tcp = TcpPacket::new(bytes)?;
    let header = usize::from(tcp.get_data_offset()) * 4;
    Some(Segment {
        src: SocketAddr::new(src, tcp.get_source()),
        dst: SocketAddr::new(dst, tcp.get_destination()),
        flags: tcp.get_flags(),
        seq: tcp.get_sequence(),
        ack: tcp.get_acknowledgement(),
        ttl,
        len: u32::try_from(ip_payload.saturating_sub(header)).unwrap_or(u32::MAX),
    })
}

/// Frame builders shared by the parser's and the filter's tests.
#[cfg(test)]
pub(crate) mod frames {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use pnet_packet::MutablePacket;
    use pnet_packet::ethernet::{EtherType, EtherTypes, MutableEthernetPacket};
    use pnet_packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};
    use pnet_packet::ipv4::MutableIpv4Packet;
    use pnet_packet::ipv6::MutableIpv6Packet;
    use pnet_packet::tcp::MutableTcpPacket;

    /// A TCP header (no options) with these fields, followed by `payload` zero bytes.
    pub fn tcp(sport: u16, dport: u16, flags: u8, seq: u32, ack: u32, payload: usize) -> Vec<u8> {
        let mut buf = vec![0u8; 20 + payload];
        let mut t = MutableTcpPacket::new(&mut buf).unwrap();
        t.set_source(sport);
        t.set_destination(dport);
        t.set_sequence(seq);
        t.set_acknowledgement(ack);
        t.set_data_offset(5);
        t.set_flags(flags);
        t.set_window(65535);
        buf
    }

    /// An IPv4 packet carrying `l4` with protocol `proto`, TTL `ttl` and `options` option bytes
    /// (a multiple of 4, filled with NOP).
    pub fn ipv4(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: IpNextHeaderProtocol,
        ttl: u8,
        options: usize,
        l4: &[u8],
    ) -> Vec<u8> {
        assert_eq!(options % 4, 0);
        let header = 20 + options;
        let mut buf = vec![0u8; header + l4.len()];
        buf[20..header].fill(1); // NOP options
        let mut ip = MutableIpv4Packet::new(&mut buf).unwrap();
        ip.set_version(4);
        ip.set_header_length(u8::try_from(header / 4).unwrap());
        ip.set_total_length(u16::try_from(header + l4.len()).unwrap());
        ip.set_ttl(ttl);
        ip.set_next_level_protocol(proto);
        ip.set_source(src);
        ip.set_destination(dst);
        buf[header..].copy_from_slice(l4);
        buf
    }

    /// An IPv6 packet carrying `l4` with next header `next`.
    pub fn ipv6(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        next: IpNextHeaderProtocol,
        hop_limit: u8,
        l4: &[u8],
    ) -> Vec<u8> {
        let mut buf = vec![0u8; 40 + l4.len()];
        let mut ip = MutableIpv6Packet::new(&mut buf).unwrap();
        ip.set_version(6);
        ip.set_payload_length(u16::try_from(l4.len()).unwrap());
        ip.set_next_header(next);
        ip.set_hop_limit(hop_limit);
        ip.set_source(src);
        ip.set_destination(dst);
        buf[40..].copy_from_slice(l4);
        buf
    }

    /// An Ethernet frame with zero addresses (as on `lo`) around `payload`.
    pub fn ethernet(ethertype: EtherType, payload: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 14 + payload.len()];
        let mut eth = MutableEthernetPacket::new(&mut buf).unwrap();
        eth.set_ethertype(ethertype);
        eth.payload_mut().copy_from_slice(payload);
        buf
    }

    pub fn eth_tcp4(
        src: (Ipv4Addr, u16),
        dst: (Ipv4Addr, u16),
        flags: u8,
        options: usize,
    ) -> Vec<u8> {
        let t = tcp(src.1, dst.1, flags, 1000, 2000, 0);
        let ip = ipv4(src.0, dst.0, IpNextHeaderProtocols::Tcp, 64, options, &t);
        ethernet(EtherTypes::Ipv4, &ip)
    }

    pub fn eth_tcp6(src: (Ipv6Addr, u16), dst: (Ipv6Addr, u16), flags: u8) -> Vec<u8> {
        let t = tcp(src.1, dst.1, flags, 1000, 2000, 0);
        let ip = ipv6(src.0, dst.0, IpNextHeaderProtocols::Tcp, 64, &t);
        ethernet(EtherTypes::Ipv6, &ip)
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use pnet_packet::ethernet::EtherTypes;
    use pnet_packet::ip::IpNextHeaderProtocols;

    use super::frames::{ethernet, ipv4, ipv6, tcp};
    use super::{Link, Segment, parse};

    const A4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const B4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    #[test]
    fn ipv4_segment_with_payload() {
        let t = tcp(40000, 443, 0x18, 7, 9, 100);
        let ip = ipv4(A4, B4, IpNextHeaderProtocols::Tcp, 57, 0, &t);
        let seg = parse(&ethernet(EtherTypes::Ipv4, &ip), Link::Ethernet).unwrap();
        assert_eq!(
            seg,
            Segment {
                src: "192.0.2.1:40000".parse().unwrap(),
                dst: "198.51.100.7:443".parse().unwrap(),
                flags: 0x18,
                seq: 7,
                ack: 9,
                ttl: 57,
                len: 100,
            }
        );
    }

    #[test]
    fn ipv4_options_and_snapped_frame_keep_the_length() {
        let t = tcp(40000, 443, 0x10, 1, 2, 1400);
        let ip = ipv4(A4, B4, IpNextHeaderProtocols::Tcp, 64, 8, &t);
        let mut frame = ethernet(EtherTypes::Ipv4, &ip);
        // The kernel filter passes only the first bytes: the length must come from the header.
        frame.truncate(super::super::bpf::SNAP_LEN as usize);
        let seg = parse(&frame, Link::Ethernet).unwrap();
        assert_eq!(seg.src.port(), 40000);
        assert_eq!(seg.len, 1400);
    }

    #[test]
    fn ipv6_segment_and_raw_ip_link() {
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let b: Ipv6Addr = "2001:db8::2".parse().unwrap();
        let t = tcp(443, 50000, 0x14, 0, 5, 0);
        let ip = ipv6(b, a, IpNextHeaderProtocols::Tcp, 63, &t);
        let want = Segment {
            src: "[2001:db8::2]:443".parse().unwrap(),
            dst: "[2001:db8::1]:50000".parse().unwrap(),
            flags: 0x14,
            seq: 0,
            ack: 5,
            ttl: 63,
            len: 0,
        };
        assert_eq!(
            parse(&ethernet(EtherTypes::Ipv6, &ip), Link::Ethernet),
            Some(want)
        );
        assert_eq!(parse(&ip, Link::RawIp), Some(want));
    }

    #[test]
    fn not_tcp_or_not_parsable() {
        let udp = ipv4(A4, B4, IpNextHeaderProtocols::Udp, 64, 0, &[0u8; 8]);
        assert_eq!(
            parse(&ethernet(EtherTypes::Ipv4, &udp), Link::Ethernet),
            None
        );
        assert_eq!(
            parse(&ethernet(EtherTypes::Arp, &[0u8; 28]), Link::Ethernet),
            None
        );
        let t = tcp(1, 2, 0x02, 0, 0, 0);
        let ip = ipv4(A4, B4, IpNextHeaderProtocols::Tcp, 64, 0, &t);
        let frame = ethernet(EtherTypes::Ipv4, &ip);
        assert_eq!(
            parse(&frame[..30], Link::Ethernet),
            None,
            "truncated header"
        );
        let mut frag = ip.clone();
        frag[6..8].copy_from_slice(&100u16.to_be_bytes()); // fragment offset 100
        assert_eq!(
            parse(&ethernet(EtherTypes::Ipv4, &frag), Link::Ethernet),
            None
        );
        let hbh = ipv6(
            Ipv6Addr::LOCALHOST,
            Ipv6Addr::LOCALHOST,
            IpNextHeaderProtocols::Hopopt,
            64,
            &t,
        );
        assert_eq!(
            parse(&hbh, Link::RawIp),
            None,
            "extension headers are not followed"
        );
    }
}
