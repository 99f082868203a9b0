//! DNS wire types: what each resolver said about a canary's name, whether a silent one could
//! be reached at all, and the classifier's verdict on it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::newer::{self, NewerId};
use crate::{CanaryName, Diagnosis};

/// How one canary's name resolved through every configured resolver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    pub canary: CanaryName,
    /// The name that was resolved.
    pub name: String,
    pub resolvers: Vec<ResolverOutcome>,
}

/// What one name server said about one name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResolverOutcome {
    /// The resolver as configured: `system` or the address given.
    pub resolver: String,
    /// The name server that was asked.
    pub server: SocketAddr,
    /// One entry per record type asked (A, AAAA).
    pub queries: Vec<DnsQuery>,
    /// Whether the server could be reached at all, checked when it gave no usable answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reachability: Option<Reachability>,
    /// The classifier's verdict on this server for this name; `None` when it is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Diagnosis>,
}

/// One query to one name server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsQuery {
    pub record_type: RecordType,
    pub outcome: DnsOutcome,
    /// The response code the server sent (`NOERROR`, `NXDOMAIN`, `REFUSED`, ...), when a
    /// response arrived.
    pub rcode: Option<Rcode>,
    #[serde(default)]
    pub answers: Vec<DnsAnswer>,
    pub elapsed_ms: f64,
    /// The network or protocol error, when no response arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The address record types a canary's name is asked for, IPv4 first; `A` and `AAAA` on the
/// wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecordType {
    #[serde(rename = "A")]
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
}

impl RecordType {
    pub const BOTH: [RecordType; 2] = [RecordType::A, RecordType::Aaaa];

    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A DNS response code (RFC 1035, RFC 6895), on the wire and for people as DNS people write
/// it: `NOERROR`, `NXDOMAIN`, `REFUSED`, ..., or `RCODE<n>` for one without a name.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rcode(pub u16);

impl Rcode {
    pub const NOERROR: Rcode = Rcode(0);
    pub const NXDOMAIN: Rcode = Rcode(3);
    pub const REFUSED: Rcode = Rcode(5);

    /// The names of RFC 6895's registry, by code (16 is BADVERS, which BADSIG shares).
    const NAMES: [(u16, &'static str); 19] = [
        (0, "NOERROR"),
        (1, "FORMERR"),
        (2, "SERVFAIL"),
        (3, "NXDOMAIN"),
        (4, "NOTIMP"),
        (5, "REFUSED"),
        (6, "YXDOMAIN"),
        (7, "YXRRSET"),
        (8, "NXRRSET"),
        (9, "NOTAUTH"),
        (10, "NOTZONE"),
        (16, "BADVERS"),
        (17, "BADKEY"),
        (18, "BADTIME"),
        (19, "BADMODE"),
        (20, "BADNAME"),
        (21, "BADALG"),
        (22, "BADTRUNC"),
        (23, "BADCOOKIE"),
    ];

    /// From its text: a name of the registry or `RCODE<n>`.
    pub fn parse(text: &str) -> Option<Rcode> {
        if let Some((code, _)) = Rcode::NAMES.iter().find(|(_, name)| *name == text) {
            return Some(Rcode(*code));
        }
        text.strip_prefix("RCODE")?.parse().ok().map(Rcode)
    }
}

impl fmt::Display for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match Rcode::NAMES.iter().find(|(code, _)| *code == self.0) {
            Some((_, name)) => f.write_str(name),
            None => write!(f, "RCODE{}", self.0),
        }
    }
}

impl fmt::Debug for Rcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rcode({self})")
    }
}

impl Serialize for Rcode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rcode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Rcode, D::Error> {
        let text = String::deserialize(d)?;
        Rcode::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a DNS response code (NOERROR, NXDOMAIN, ... or RCODE<n>)"
            ))
        })
    }
}

/// One address record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsAnswer {
    pub address: IpAddr,
    pub ttl: u32,
}

/// The kind of answer a query got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsOutcome {
    /// NOERROR with at least one address.
    Answer,
    /// NOERROR without an address of the asked type.
    NoData,
    /// NXDOMAIN: the name does not exist.
    NxDomain,
    /// SERVFAIL.
    ServFail,
    /// REFUSED.
    Refused,
    /// Another response code.
    OtherRcode,
    /// No response within the timeout.
    Timeout,
    /// The query could not be sent or its answer read (ICMP unreachable, TCP refused, ...).
    NetworkError,
    /// Datagrams came back, but none was a readable answer to the query (not a DNS message,
    /// a name pointer loop, bad lengths, another id or question): the server, or something
    /// on the way, answers with garbage. `error` says what arrived.
    Malformed,
    /// An outcome of a newer version, kept as it came; judged as an answer that could not be read (`network_error`).
    Newer(NewerId),
}

impl DnsOutcome {
    /// Every outcome, for tests and for listings.
    pub const ALL: [DnsOutcome; 9] = [
        DnsOutcome::Answer,
        DnsOutcome::NoData,
        DnsOutcome::NxDomain,
        DnsOutcome::ServFail,
        DnsOutcome::Refused,
        DnsOutcome::OtherRcode,
        DnsOutcome::Timeout,
        DnsOutcome::NetworkError,
        DnsOutcome::Malformed,
    ];

    /// The wire id (`nx_domain`), as serde writes it.
    pub fn id(self) -> &'static str {
        match self {
            DnsOutcome::Answer => "answer",
            DnsOutcome::NoData => "no_data",
            DnsOutcome::NxDomain => "nx_domain",
            DnsOutcome::ServFail => "serv_fail",
            DnsOutcome::Refused => "refused",
            DnsOutcome::OtherRcode => "other_rcode",
            DnsOutcome::Timeout => "timeout",
            DnsOutcome::NetworkError => "network_error",
            DnsOutcome::Malformed => "malformed",
            DnsOutcome::Newer(id) => id.id(),
        }
    }
}

impl DnsQuery {
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.answers.iter().map(|a| a.address)
    }
}

impl ResolverOutcome {
    /// Every address this server gave, A before AAAA, each once.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        for a in self.queries.iter().flat_map(DnsQuery::addresses) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    /// Whether the server said something about the name: addresses, or that it has none
    /// (NXDOMAIN, no data). One that did not is tested for reachability.
    pub fn gave_usable_answer(&self) -> bool {
        let told = |q: &DnsQuery| {
            matches!(
                q.outcome,
                DnsOutcome::Answer | DnsOutcome::NxDomain | DnsOutcome::NoData
            )
        };
        let any_address = self.queries.iter().any(|q| q.outcome == DnsOutcome::Answer);
        any_address || (!self.queries.is_empty() && self.queries.iter().all(told))
    }

    /// `10.0.0.53` for a configured address, `system (10.0.0.53:53)` for a server that
    /// came from resolv.conf: how explanations name it.
    pub fn who(&self) -> String {
        if self.resolver == "system" {
            format!("system ({})", self.server)
        } else {
            self.resolver.clone()
        }
    }

    /// `A answer 10.0.0.2 (ttl 30), AAAA no_data`: each query on one line.
    pub fn brief(&self) -> String {
        self.queries
            .iter()
            .map(DnsQuery::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for DnsQuery {
    /// `A answer 10.0.0.2 ttl 30`, `AAAA refused`, `A timeout after 1000 ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.record_type, self.outcome.id())?;
        match self.outcome {
            DnsOutcome::Answer => {
                let addrs: Vec<String> = self
                    .answers
                    .iter()
                    .map(|a| format!("{} ttl {}", a.address, a.ttl))
                    .collect();
                write!(f, " {}", addrs.join(", "))
            }
            DnsOutcome::OtherRcode => match &self.rcode {
                Some(rcode) => write!(f, " {rcode}"),
                None => Ok(()),
            },
            DnsOutcome::Timeout => write!(f, " after {:.0} ms", self.elapsed_ms),
            DnsOutcome::NetworkError | DnsOutcome::Malformed => match &self.error {
                Some(e) => write!(f, " ({e})"),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

/// Whether a name server's host answers at all, by ICMP echo and by a TCP connection to its
/// DNS port: what separates "it blocks us" from "we cannot reach it".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reachability {
    pub icmp: ReachProbe,
    /// A TCP connection to the server's DNS port (53 unless configured otherwise).
    pub tcp: ReachProbe,
}

/// One reachability test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReachProbe {
    pub outcome: ReachOutcome,
    /// Time to the reply, or until the test gave up.
    pub elapsed_ms: f64,
    /// The error, or why the test could not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What a reachability test saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReachOutcome {
    /// An echo reply, or a completed TCP handshake.
    Reply,
    /// The host answered the TCP SYN with a reset: it is up, nothing serves the port.
    Refused,
    /// Nothing came back before the timeout.
    NoReply,
    /// The network said the host cannot be reached (ICMP unreachable, no route, no neighbour).
    Unreachable,
    /// The test could not run (no permission to send ICMP echo, say); `detail` says why.
    NotTested,
}

impl ReachOutcome {
    pub const ALL: [ReachOutcome; 5] = [
        ReachOutcome::Reply,
        ReachOutcome::Refused,
        ReachOutcome::NoReply,
        ReachOutcome::Unreachable,
        ReachOutcome::NotTested,
    ];

    /// The wire id (`no_reply`), as serde writes it.
    pub const fn id(self) -> &'static str {
        match self {
            ReachOutcome::Reply => "reply",
            ReachOutcome::Refused => "refused",
            ReachOutcome::NoReply => "no_reply",
            ReachOutcome::Unreachable => "unreachable",
            ReachOutcome::NotTested => "not_tested",
        }
    }

    /// Whether the host answered (a reset is an answer).
    pub const fn answered(self) -> bool {
        matches!(self, ReachOutcome::Reply | ReachOutcome::Refused)
    }
}

impl Reachability {
    /// `Some(true)` when either test got an answer, `Some(false)` when at least one ran and
    /// neither did, `None` when neither could run.
    pub fn reachable(&self) -> Option<bool> {
        let probes = [&self.icmp, &self.tcp];
        if probes.iter().any(|p| p.outcome.answered()) {
            Some(true)
        } else if probes.iter().all(|p| p.outcome == ReachOutcome::NotTested) {
            None
        } else {
            Some(false)
        }
    }
}

impl fmt::Display for ReachProbe {
    /// `reply in 0.3 ms`, `no_reply after 1000 ms`, `unreachable (No route to host)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.outcome {
            ReachOutcome::Reply | ReachOutcome::Refused => {
                write!(f, "{} in {:.1} ms", self.outcome.id(), self.elapsed_ms)?
            }
            ReachOutcome::NoReply => write!(f, "no_reply after {:.0} ms", self.elapsed_ms)?,
            ReachOutcome::Unreachable | ReachOutcome::NotTested => {
                write!(f, "{}", self.outcome.id())?
            }
        }
        match &self.detail {
            Some(d) => write!(f, " ({d})"),
            None => Ok(()),
        }
    }
}

newer::wire_id!(DnsOutcome, "DNS outcome", NetworkError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_codes_read_and_write_as_dns_people_write_them() {
        for (code, text) in [
            (0, "NOERROR"),
            (3, "NXDOMAIN"),
            (5, "REFUSED"),
            (23, "BADCOOKIE"),
        ] {
            assert_eq!(Rcode(code).to_string(), text);
            assert_eq!(Rcode::parse(text), Some(Rcode(code)));
        }
        assert_eq!(Rcode(42).to_string(), "RCODE42");
        assert_eq!(Rcode::parse("RCODE42"), Some(Rcode(42)));
        assert_eq!(Rcode::parse("refused"), None);
        let json = serde_json::to_string(&Rcode::REFUSED).unwrap();
        assert_eq!(json, "\"REFUSED\"");
        assert_eq!(
            serde_json::from_str::<Rcode>(&json).unwrap(),
            Rcode::REFUSED
        );
        let err = serde_json::from_str::<Rcode>("\"MAYBE\"")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"MAYBE\" is not a DNS response code"),
            "{err}"
        );
    }
}
