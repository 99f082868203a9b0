//! The packets of one failed connection, as the probe's capture saw them.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Packets kept per failed connection; later ones are counted in [`PacketTrace::truncated`].
pub const TRACE_MAX_PACKETS: usize = 32;

/// The packets of one connection, matched by its 4-tuple.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketTrace {
    /// The interface the capture listened on (`lo` for a canary on the probe's own host).
    pub interface: String,
    /// The probe's end of the connection (its address may be unspecified when connect failed).
    pub local: SocketAddr,
    /// The canary's end.
    pub remote: SocketAddr,
    /// When the first packet (normally the SYN) was seen, in ms since the Unix epoch.
    pub started_at_ms: i64,
    /// At most [`TRACE_MAX_PACKETS`], in the order seen.
    pub packets: Vec<TracePacket>,
    /// Packets seen beyond the cap.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub truncated: u32,
    /// The TTL (IPv4) or hop limit (IPv6) this server's packets arrive with, when known: from
    /// the SYN-ACK of this connection, or else from earlier connections to the same address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ttl: Option<ServerTtl>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The TTL a server's own packets arrive with, and where the probe learnt it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerTtl {
    pub ttl: u8,
    pub source: TtlSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TtlSource {
    /// The SYN-ACK of the traced connection.
    ThisConnection,
    /// The SYN-ACK of an earlier connection to the same address (remembered by the probe).
    EarlierConnection,
}

/// One packet of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TracePacket {
    /// Milliseconds since the trace's first packet.
    pub t_ms: f64,
    pub dir: Direction,
    pub flags: TcpFlags,
    /// Sequence number relative to the first one seen from the same side.
    pub seq: u32,
    /// Acknowledgement number relative to the first sequence number seen from the other side
    /// (absolute when that side sent nothing yet; 0 without the ACK flag).
    pub ack: u32,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// TCP payload bytes.
    pub len: u32,
}

/// Which way a packet went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the probe to the canary.
    Out,
    /// From the canary (or something on the path) to the probe.
    In,
}

/// TCP flags, written as their names joined by commas ("SYN,ACK").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    const NAMES: [(u8, &'static str); 8] = [
        (Self::SYN, "SYN"),
        (Self::FIN, "FIN"),
        (Self::RST, "RST"),
        (Self::PSH, "PSH"),
        (Self::ACK, "ACK"),
        (Self::URG, "URG"),
        (Self::ECE, "ECE"),
        (Self::CWR, "CWR"),
    ];

    pub fn has(self, flag: u8) -> bool {
        self.0 & flag != 0
    }

    pub fn is_syn_ack(self) -> bool {
        self.has(Self::SYN) && self.has(Self::ACK)
    }
}

impl fmt::Display for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (bit, name) in Self::NAMES {
            if self.has(bit) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

impl FromStr for TcpFlags {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "none" {
            return Ok(TcpFlags(0));
        }
        let mut bits = 0;
        for part in s.split(',') {
            let Some((bit, _)) = Self::NAMES.iter().find(|(_, n)| *n == part) else {
                return Err(format!(
                    "unknown TCP flag {part:?} in {s:?}; allowed: SYN, FIN, RST, PSH, ACK, URG, ECE, CWR joined by commas, or none"
                ));
            };
            bits |= bit;
        }
        Ok(TcpFlags(bits))
    }
}

impl Serialize for TcpFlags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TcpFlags {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl PacketTrace {
    /// The first reset that came in, if any.
    pub fn inbound_reset(&self) -> Option<&TracePacket> {
        self.packets
            .iter()
            .find(|p| p.dir == Direction::In && p.flags.has(TcpFlags::RST))
    }

    /// The SYN-ACK of this connection, if one came.
    pub fn syn_ack(&self) -> Option<&TracePacket> {
        self.packets
            .iter()
            .find(|p| p.dir == Direction::In && p.flags.is_syn_ack())
    }

    /// Whether any inbound packet before `before_ms` carried payload (a response began).
    pub fn response_bytes_before(&self, before_ms: f64) -> u32 {
        self.packets
            .iter()
            .filter(|p| p.dir == Direction::In && p.t_ms <= before_ms)
            .map(|p| p.len)
            .sum()
    }

    /// Payload bytes the probe sent.
    pub fn request_bytes(&self) -> u32 {
        self.packets
            .iter()
            .filter(|p| p.dir == Direction::Out)
            .map(|p| p.len)
            .sum()
    }

    /// Unix ms of a packet of this trace.
    pub fn at_ms(&self, p: &TracePacket) -> i64 {
        self.started_at_ms + p.t_ms.round() as i64
    }
}

impl fmt::Display for TracePacket {
    /// One line like `+0.412ms in  RST,ACK seq 0 ack 1 ttl 64 len 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = match self.dir {
            Direction::Out => "out",
            Direction::In => "in ",
        };
        write!(
            f,
            "+{:.3}ms {dir} {} seq {} ack {} ttl {} len {}",
            self.t_ms, self.flags, self.seq, self.ack, self.ttl, self.len
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_by_name() {
        for bits in [0u8, 0x02, 0x12, 0x14, 0x18, 0x11, 0x04, 0xff] {
            let f = TcpFlags(bits);
            assert_eq!(f.to_string().parse::<TcpFlags>().unwrap(), f, "{f}");
        }
        assert_eq!(TcpFlags(0x12).to_string(), "SYN,ACK");
        let err = "SYN,NOPE".parse::<TcpFlags>().unwrap_err();
        assert!(err.contains("NOPE") && err.contains("allowed"), "{err}");
    }
}
