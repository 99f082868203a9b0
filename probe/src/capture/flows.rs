//! The registry of watched flows, the packets kept for each, the TTL memory, and turning a
//! flow's packets into a [`PacketTrace`].

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use causeway_schema::{
    Direction, PacketTrace, ServerTtl, TRACE_MAX_PACKETS, TcpFlags, TracePacket, TtlSource,
};

use super::parse::Segment;

/// Remote addresses whose server TTL is remembered; past this the oldest entry is evicted.
pub(crate) const TTL_MEMORY_MAX: usize = 4096;

/// A watched connection: the probe's local port and the canary's address. The remote is
/// normalized (IPv4-mapped IPv6 as IPv4, no flow label or scope) to compare with packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FlowKey {
    pub local_port: u16,
    pub remote: SocketAddr,
}

impl FlowKey {
    pub(crate) fn new(local_port: u16, remote: SocketAddr) -> FlowKey {
        FlowKey {
            local_port,
            remote: SocketAddr::new(remote.ip().to_canonical(), remote.port()),
        }
    }
}

/// One packet as recorded, with absolute numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RawPacket {
    /// Arrival, ns since the Unix epoch.
    pub at_ns: i64,
    pub dir: Direction,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub ttl: u8,
    pub len: u32,
}

/// What a watched flow has collected so far.
#[derive(Debug, Default)]
pub(crate) struct FlowPackets {
    /// Which registration this is; a later `watch` of the same key replaces it.
    pub id: u64,
    pub packets: Vec<RawPacket>,
    pub truncated: u32,
    /// TTL of the inbound SYN-ACK, even if it came beyond the cap.
    pub syn_ack_ttl: Option<u8>,
    /// The probe's address as the packets show it.
    pub local_ip: Option<IpAddr>,
}

/// What the capture thread learnt from one segment.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// No watched flow: dropped (late FIN/ACKs after finish, other clients of the canary).
    Unmatched,
    Matched,
    /// An inbound SYN-ACK of a watched flow: its TTL is worth remembering for the remote IP.
    SynAck {
        remote: IpAddr,
        ttl: u8,
    },
}

/// The watched flows of one interface.
#[derive(Debug, Default)]
pub(crate) struct Flows {
    map: HashMap<FlowKey, FlowPackets>,
}

impl Flows {
    /// Registers (or replaces) the flow `key` as registration `id`.
    pub(crate) fn register(&mut self, key: FlowKey, id: u64) {
        self.map.insert(
            key,
            FlowPackets {
                id,
                ..FlowPackets::default()
            },
        );
    }

    /// Removes and returns the flow if `id` is still its registration.
    pub(crate) fn remove(&mut self, key: &FlowKey, id: u64) -> Option<FlowPackets> {
        if self.map.get(key)?.id != id {
            return None;
        }
        self.map.remove(key)
    }

    pub(crate) fn get(&self, key: &FlowKey, id: u64) -> Option<&FlowPackets> {
        self.map.get(key).filter(|f| f.id == id)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Records `seg` on its flow: Out when it goes to the remote from the local port, In when
    /// it comes from the remote to the local port.
    pub(crate) fn record(&mut self, seg: &Segment, at_ns: i64) -> Seen {
        let out = FlowKey::new(seg.src.port(), seg.dst);
        let (flow, dir, local_ip) = if let Some(f) = self.map.get_mut(&out) {
            (f, Direction::Out, seg.src.ip())
        } else if let Some(f) = self.map.get_mut(&FlowKey::new(seg.dst.port(), seg.src)) {
            (f, Direction::In, seg.dst.ip())
        } else {
            return Seen::Unmatched;
        };
        flow.local_ip.get_or_insert(local_ip);
        if flow.packets.len() < TRACE_MAX_PACKETS {
            flow.packets.push(RawPacket {
                at_ns,
                dir,
                flags: seg.flags,
                seq: seg.seq,
                ack: seg.ack,
                ttl: seg.ttl,
                len: seg.len,
            });
        } else {
            flow.truncated = flow.truncated.saturating_add(1);
        }
        if dir == Direction::In && TcpFlags(seg.flags).is_syn_ack() {
            flow.syn_ack_ttl = Some(seg.ttl);
            return Seen::SynAck {
                remote: seg.src.ip(),
                ttl: seg.ttl,
            };
        }
        Seen::Matched
    }
}

/// The TTL each server's SYN-ACKs came with, per remote IP, from any earlier connection.
///
/// A reset's TTL against this tells who sent it: with the server one hop away its packets
/// arrive with 63, while a router or middlebox on that hop forging a reset arrives with 64.
#[derive(Debug, Default)]
pub(crate) struct TtlMemory {
    map: HashMap<IpAddr, (u8, u64)>,
    clock: u64,
}

impl TtlMemory {
    pub(crate) fn remember(&mut self, ip: IpAddr, ttl: u8) {
        self.clock += 1;
        if self.map.len() >= TTL_MEMORY_MAX
            && !self.map.contains_key(&ip)
            && let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| *k)
        {
            self.map.remove(&oldest);
        }
        self.map.insert(ip, (ttl, self.clock));
    }

    pub(crate) fn get(&self, ip: IpAddr) -> Option<u8> {
        self.map.get(&ip).map(|(ttl, _)| *ttl)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// Builds the trace of a finished flow; `None` when no packet was seen.
///
/// `local` is the caller's knowledge of the local address; without it the packets say it, and
/// without packets from or to it, it is the unspecified address with the local port.
pub(crate) fn build_trace(
    interface: &str,
    key: FlowKey,
    remote: SocketAddr,
    local: Option<SocketAddr>,
    flow: FlowPackets,
    earlier_ttl: Option<u8>,
) -> Option<PacketTrace> {
    // Packets are recorded in the order the kernel queued them, so their times cannot really
    // decrease. One read before the kernel stamped packets carries the time it was read
    // instead, which can be later than the next packet's stamp: lower such a time to the next
    // one's rather than showing time running backwards.
    let mut times: Vec<i64> = flow.packets.iter().map(|p| p.at_ns).collect();
    for i in (1..times.len()).rev() {
        times[i - 1] = times[i - 1].min(times[i]);
    }
    let first_ns = *times.first()?;
    let local = local.unwrap_or_else(|| {
        let ip = flow.local_ip.unwrap_or(match remote.ip().to_canonical() {
            IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
            IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
        });
        SocketAddr::new(ip, key.local_port)
    });
    // First sequence number of each side, set as that side's first packet goes by: an ack is
    // relative only once the side it acknowledges has been seen.
    let (mut isn_out, mut isn_in): (Option<u32>, Option<u32>) = (None, None);
    let packets = flow
        .packets
        .iter()
        .zip(&times)
        .map(|(p, at_ns)| {
            let (own, other) = match p.dir {
                Direction::Out => (&mut isn_out, isn_in),
                Direction::In => (&mut isn_in, isn_out),
            };
            let isn = *own.get_or_insert(p.seq);
            let ack = if p.flags & TcpFlags::ACK == 0 {
                0
            } else {
                other.map_or(p.ack, |isn| p.ack.wrapping_sub(isn))
            };
            TracePacket {
                t_ms: at_ns.saturating_sub(first_ns) as f64 / 1e6,
                dir: p.dir,
                flags: TcpFlags(p.flags),
                seq: p.seq.wrapping_sub(isn),
                ack,
                ttl: p.ttl,
                len: p.len,
            }
        })
        .collect();
    let server_ttl = match (flow.syn_ack_ttl, earlier_ttl) {
        (Some(ttl), _) => Some(ServerTtl {
            ttl,
            source: TtlSource::ThisConnection,
        }),
        (None, Some(ttl)) => Some(ServerTtl {
            ttl,
            source: TtlSource::EarlierConnection,
        }),
        (None, None) => None,
    };
    Some(PacketTrace {
        interface: interface.to_owned(),
        local,
        remote,
        started_at_ms: first_ns.div_euclid(1_000_000),
        packets,
        truncated: flow.truncated,
        server_ttl,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: u8 = TcpFlags::SYN;
    const ACK: u8 = TcpFlags::ACK;
    const RST: u8 = TcpFlags::RST;
    const PSH: u8 = TcpFlags::PSH;

    fn seg(src: &str, dst: &str, flags: u8, seq: u32, ack: u32, len: u32) -> Segment {
        Segment {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            flags,
            seq,
            ack,
            ttl: if src.starts_with("10.") { 64 } else { 57 },
            len,
        }
    }

    const PROBE: &str = "10.0.0.2:40000";
    const CANARY: &str = "192.0.2.80:443";

    fn watched() -> (Flows, FlowKey) {
        let mut flows = Flows::default();
        let key = FlowKey::new(40000, CANARY.parse().unwrap());
        flows.register(key, 1);
        (flows, key)
    }

    #[test]
    fn a_connection_in_relative_numbers() {
        let (mut flows, key) = watched();
        let ms = 1_700_000_000_000_000_000i64;
        let segs = [
            seg(PROBE, CANARY, SYN, 1_000_000, 0, 0),
            seg(CANARY, PROBE, SYN | ACK, 4_000_000_000, 1_000_001, 0),
            seg(PROBE, CANARY, ACK, 1_000_001, 4_000_000_001, 0),
            seg(PROBE, CANARY, PSH | ACK, 1_000_001, 4_000_000_001, 100),
            seg(CANARY, PROBE, RST | ACK, 4_000_000_001, 1_000_101, 0),
        ];
        let mut seen = vec![];
        for (i, s) in segs.iter().enumerate() {
            seen.push(flows.record(s, ms + i as i64 * 1_500_000));
        }
        let canary_ip: IpAddr = "192.0.2.80".parse().unwrap();
        assert_eq!(
            seen[1],
            Seen::SynAck {
                remote: canary_ip,
                ttl: 57
            }
        );
        assert_eq!(seen[0], Seen::Matched);
        let unrelated = seg("10.0.0.2:40001", CANARY, SYN, 5, 0, 0);
        assert_eq!(flows.record(&unrelated, ms), Seen::Unmatched);

        let flow = flows.remove(&key, 1).unwrap();
        let t = build_trace("eth0", key, CANARY.parse().unwrap(), None, flow, Some(50)).unwrap();
        assert_eq!(t.local, PROBE.parse::<SocketAddr>().unwrap());
        assert_eq!(t.started_at_ms, ms / 1_000_000);
        let rows: Vec<_> = t
            .packets
            .iter()
            .map(|p| (p.dir, p.flags.0, p.seq, p.ack))
            .collect();
        use Direction::{In, Out};
        assert_eq!(
            rows,
            [
                (Out, SYN, 0, 0),
                (In, SYN | ACK, 0, 1),
                (Out, ACK, 1, 1),
                (Out, PSH | ACK, 1, 1),
                (In, RST | ACK, 1, 101),
            ]
        );
        assert_eq!(t.packets[3].len, 100);
        assert_eq!(t.packets[4].t_ms, 6.0);
        assert_eq!(
            t.server_ttl,
            Some(ServerTtl {
                ttl: 57,
                source: TtlSource::ThisConnection
            })
        );
    }

    #[test]
    fn ack_before_the_other_side_spoke_is_absolute_and_cap_counts() {
        let (mut flows, key) = watched();
        // An inbound ACK before any outbound packet was seen: its ack stays absolute.
        let (mut other, key2) = watched();
        other.record(&seg(CANARY, PROBE, ACK, 77, 12345, 0), 0);
        let t = build_trace(
            "eth0",
            key2,
            CANARY.parse().unwrap(),
            None,
            other.remove(&key2, 1).unwrap(),
            None,
        )
        .unwrap();
        assert_eq!((t.packets[0].seq, t.packets[0].ack), (0, 12345));
        assert_eq!(t.server_ttl, None);
        assert_eq!(t.local, PROBE.parse::<SocketAddr>().unwrap());

        for i in 0..(TRACE_MAX_PACKETS as u32 + 5) {
            flows.record(&seg(PROBE, CANARY, SYN, 9, 0, 0), i64::from(i));
        }
        let flow = flows.remove(&key, 1).unwrap();
        let t = build_trace("eth0", key, CANARY.parse().unwrap(), None, flow, Some(61)).unwrap();
        assert_eq!(t.packets.len(), TRACE_MAX_PACKETS);
        assert_eq!(t.truncated, 5);
        assert_eq!(
            t.server_ttl,
            Some(ServerTtl {
                ttl: 61,
                source: TtlSource::EarlierConnection
            })
        );
    }

    #[test]
    fn times_never_run_backwards() {
        let (mut flows, key) = watched();
        // The first two were read (and timed) late, 5 ms after the third's kernel stamp.
        for (i, at) in [
            1_009_000_000i64,
            1_009_100_000,
            1_004_000_000,
            1_010_000_000,
        ]
        .iter()
        .enumerate()
        {
            flows.record(&seg(PROBE, CANARY, ACK, i as u32, 0, 0), *at);
        }
        let flow = flows.remove(&key, 1).unwrap();
        let t = build_trace("eth0", key, CANARY.parse().unwrap(), None, flow, None).unwrap();
        let times: Vec<f64> = t.packets.iter().map(|p| p.t_ms).collect();
        assert_eq!(times, [0.0, 0.0, 0.0, 6.0]);
        assert_eq!(t.started_at_ms, 1_004);
    }

    #[test]
    fn registrations_replace_and_unregister_by_id() {
        let (mut flows, key) = watched();
        flows.register(key, 2);
        assert!(
            flows.remove(&key, 1).is_none(),
            "the old registration must not remove the new"
        );
        assert!(flows.get(&key, 2).is_some());
        assert!(flows.remove(&key, 2).is_some());
        assert_eq!(flows.len(), 0);
        // No packets: no trace.
        let empty = FlowPackets::default();
        assert!(build_trace("lo", key, CANARY.parse().unwrap(), None, empty, Some(1)).is_none());
        // A mapped remote matches its IPv4 packets.
        let mapped: SocketAddr = "[::ffff:192.0.2.80]:443".parse().unwrap();
        assert_eq!(FlowKey::new(40000, mapped), key);
    }

    #[test]
    fn ttl_memory_is_bounded() {
        let mut m = TtlMemory::default();
        for i in 0..(TTL_MEMORY_MAX as u32 + 10) {
            m.remember(IpAddr::V4(Ipv4Addr::from(i)), 60);
        }
        assert_eq!(m.len(), TTL_MEMORY_MAX);
        assert_eq!(m.get(IpAddr::V4(Ipv4Addr::from(0))), None, "oldest evicted");
        m.remember(IpAddr::V4(Ipv4Addr::from(20)), 50);
        assert_eq!(m.get(IpAddr::V4(Ipv4Addr::from(20))), Some(50));
    }
}
