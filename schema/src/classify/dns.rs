//! DNS rules: a verdict on every resolver for a canary's name, and the cause of a check that
//! got no address.
//!
//! Each resolver is judged against the others, because "8.8.8.8 is silent" means little until
//! "while 1.1.1.1 answers and 8.8.8.8 answers ping" is added:
//! - it gave addresses: healthy, unless they are disjoint from the addresses of the resolvers
//!   that are right (`dns_answer_mismatch`). Right means: some address it gave served the
//!   canary; when no address did, the largest group of resolvers whose answers overlap.
//! - it said the name does not exist (NXDOMAIN, or no record of either type):
//!   `dns_name_missing`, or `dns_answer_mismatch` when another resolver gave addresses.
//! - it gave nothing usable (REFUSED, SERVFAIL, silence, a network error): a server that
//!   answered DNS at all, or ICMP echo, or a TCP connection to its port, is reachable and
//!   therefore blocks us (`dns_upstream_block`); one that did none of these is
//!   `dns_resolver_unreachable`. Without a reachability test that could run, `unknown`.

use std::net::IpAddr;

use crate::{Cause, CheckResult, Diagnosis, DnsOutcome, ResolverOutcome};

/// One request the probe made to an address, as far as the DNS rules care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressCheck<'a> {
    pub address: IpAddr,
    /// `None` when the canary answered as expected there; else the failure, for people.
    pub failure: Option<&'a str>,
}

/// What a resolver said, reduced to what the rules need.
#[derive(Debug, Clone, PartialEq)]
enum Said {
    Addresses(Vec<IpAddr>),
    /// NXDOMAIN (`nx` true) or no record of any asked type.
    NameMissing {
        nx: bool,
    },
    /// No address and no clear "it does not exist".
    Nothing,
}

fn said(r: &ResolverOutcome) -> Said {
    let addresses = r.addresses();
    if !addresses.is_empty() {
        return Said::Addresses(addresses);
    }
    let missing =
        |q: &&crate::DnsQuery| matches!(q.outcome, DnsOutcome::NxDomain | DnsOutcome::NoData);
    if !r.queries.is_empty() && r.queries.iter().all(|q| missing(&q)) {
        let nx = r.queries.iter().any(|q| q.outcome == DnsOutcome::NxDomain);
        return Said::NameMissing { nx };
    }
    Said::Nothing
}

/// The verdict on every resolver of `resolvers` (same order) for `name`: `None` for a
/// healthy one. `checks` are the requests made to the addresses they gave.
pub fn judge_resolvers(
    name: &str,
    resolvers: &[ResolverOutcome],
    checks: &[AddressCheck<'_>],
) -> Vec<Option<Diagnosis>> {
    let said: Vec<Said> = resolvers.iter().map(said).collect();
    let right = right_resolvers(&said, checks);
    let all_missing = said.iter().all(|s| matches!(s, Said::NameMissing { .. }));
    let answering: Vec<usize> = (0..said.len())
        .filter(|&i| matches!(said[i], Said::Addresses(_)))
        .collect();
    resolvers
        .iter()
        .zip(&said)
        .enumerate()
        .map(|(i, (r, s))| {
            let others_answer = answering.iter().any(|&j| j != i);
            let answers_of_others = || answers_of(resolvers, &answering, i);
            let (cause, explanation) = match s {
                Said::Addresses(mine) => {
                    if right.contains(&i) || !disjoint_from_all(i, mine, &right, &said) {
                        return None;
                    }
                    (
                        Cause::DnsAnswerMismatch,
                        mismatch_text(r, name, mine, resolvers, &right, checks),
                    )
                }
                Said::NameMissing { nx } => {
                    let says = if *nx {
                        format!("says {name} does not exist (NXDOMAIN)")
                    } else {
                        format!("has no A or AAAA record for {name} (NOERROR, no data)")
                    };
                    let who = r.who();
                    if all_missing {
                        let others = if resolvers.len() > 1 {
                            ", as every resolver does"
                        } else {
                            ""
                        };
                        (Cause::DnsNameMissing, format!("{who} {says}{others}"))
                    } else if others_answer {
                        (
                            Cause::DnsAnswerMismatch,
                            format!("{who} {says}, while {}", answers_of_others()),
                        )
                    } else {
                        (
                            Cause::DnsNameMissing,
                            format!("{who} {says}; no other resolver answered"),
                        )
                    }
                }
                Said::Nothing => nothing_verdict(r, name, others_answer, answers_of_others),
            };
            Some(Diagnosis {
                cause,
                contributing: Vec::new(),
                explanation: crate::cut(explanation, super::EXPLANATION_MAX),
            })
        })
        .collect()
}

/// The resolvers taken to be right: those that gave an address where the canary answered;
/// when there is none, the largest group whose answers overlap (all answering resolvers when
/// no two overlap: then none is known to be right and each disagrees with the others).
fn right_resolvers(said: &[Said], checks: &[AddressCheck<'_>]) -> Vec<usize> {
    let addrs = |i: usize| match &said[i] {
        Said::Addresses(a) => Some(a),
        _ => None,
    };
    let answering: Vec<usize> = (0..said.len()).filter(|&i| addrs(i).is_some()).collect();
    let served: Vec<IpAddr> = checks
        .iter()
        .filter(|c| c.failure.is_none())
        .map(|c| c.address)
        .collect();
    let by_service: Vec<usize> = answering
        .iter()
        .copied()
        .filter(|&i| addrs(i).is_some_and(|a| a.iter().any(|x| served.contains(x))))
        .collect();
    if !by_service.is_empty() {
        return by_service;
    }
    let overlaps = |i: usize| {
        let mine = addrs(i).map_or(&[][..], Vec::as_slice);
        answering
            .iter()
            .filter(|&&j| j != i && !disjoint(mine, addrs(j).map_or(&[][..], Vec::as_slice)))
            .count()
    };
    let best = answering.iter().map(|&i| overlaps(i)).max().unwrap_or(0);
    if best == 0 {
        // Nobody agrees with anybody: with one answering resolver it is simply right; with
        // more, none is, so that each is flagged.
        return if answering.len() == 1 {
            answering
        } else {
            Vec::new()
        };
    }
    answering
        .iter()
        .copied()
        .filter(|&i| overlaps(i) == best)
        .collect()
}

fn disjoint(a: &[IpAddr], b: &[IpAddr]) -> bool {
    !a.iter().any(|x| b.contains(x))
}

/// Whether resolver `i`'s addresses share none with any right resolver (or with any other
/// answering resolver, when none is known to be right).
fn disjoint_from_all(i: usize, mine: &[IpAddr], right: &[usize], said: &[Said]) -> bool {
    let others: Vec<&Vec<IpAddr>> = said
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != i && (right.is_empty() || right.contains(&j)))
        .filter_map(|(_, s)| match s {
            Said::Addresses(a) => Some(a),
            _ => None,
        })
        .collect();
    !others.is_empty() && others.iter().all(|a| disjoint(mine, a))
}

fn list(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `10.0.0.53 answers 10.0.0.2 and 10.0.0.54 answers 10.0.0.3`.
fn answers_of(resolvers: &[ResolverOutcome], answering: &[usize], except: usize) -> String {
    let parts: Vec<String> = answering
        .iter()
        .filter(|&&j| j != except)
        .map(|&j| {
            format!(
                "{} answers {}",
                resolvers[j].who(),
                list(&resolvers[j].addresses())
            )
        })
        .collect();
    parts.join(" and ")
}

fn mismatch_text(
    r: &ResolverOutcome,
    name: &str,
    mine: &[IpAddr],
    resolvers: &[ResolverOutcome],
    right: &[usize],
    checks: &[AddressCheck<'_>],
) -> String {
    let mut text = format!("{} answers {name} with {}", r.who(), list(mine));
    if right.is_empty() {
        let others: Vec<String> = resolvers
            .iter()
            .filter(|o| o.server != r.server && !o.addresses().is_empty())
            .map(|o| format!("{} answers {}", o.who(), list(&o.addresses())))
            .collect();
        text.push_str(&format!(
            ", while {}: no two resolvers agree",
            others.join(" and ")
        ));
    } else {
        let others: Vec<String> = right
            .iter()
            .map(|&j| {
                format!(
                    "{} answers {}",
                    resolvers[j].who(),
                    list(&resolvers[j].addresses())
                )
            })
            .collect();
        let served = checks.iter().any(|c| c.failure.is_none());
        let where_ = if served {
            ", where the canary answers"
        } else {
            ""
        };
        text.push_str(&format!(", while {}{where_}", others.join(" and ")));
    }
    for c in checks.iter().filter(|c| mine.contains(&c.address)) {
        if let Some(f) = c.failure {
            text.push_str(&format!("; the request to {} failed: {f}", c.address));
        }
    }
    text
}

/// The verdict on a resolver that gave nothing usable.
fn nothing_verdict(
    r: &ResolverOutcome,
    name: &str,
    others_answer: bool,
    answers_of_others: impl Fn() -> String,
) -> (Cause, String) {
    let got = r.brief();
    let malformed = r.queries.iter().any(|q| q.outcome == DnsOutcome::Malformed);
    // Garbage is a response too: the server (or a box on the way) is there.
    let responded = malformed || r.queries.iter().any(|q| q.rcode.is_some());
    let reach = r.reachability.as_ref();
    let reach_text =
        reach.map(|x| format!("ping {}, TCP port {} {}", x.icmp, r.server.port(), x.tcp));
    let reachable = responded || reach.and_then(|x| x.reachable()) == Some(true);
    let others = if others_answer {
        format!("; {}", answers_of_others())
    } else {
        "; no other resolver answers either".to_owned()
    };
    if reachable {
        let how = match (&reach_text, responded) {
            (Some(t), _) => format!("yet it is reachable ({t})"),
            (None, _) => "yet it is reachable (it sends responses)".to_owned(),
        };
        let what = if r.queries.iter().any(|q| q.outcome == DnsOutcome::Refused) {
            "refuses our queries"
        } else if malformed {
            "answers our queries with malformed messages"
        } else if responded {
            "fails our queries"
        } else {
            "ignores our queries"
        };
        let text = format!("{} {what} for {name} ({got}), {how}{others}", r.who());
        return (Cause::DnsUpstreamBlock, text);
    }
    match (reach.and_then(|x| x.reachable()), reach_text) {
        (Some(false), Some(t)) => (
            Cause::DnsResolverUnreachable,
            format!(
                "{} cannot be reached: no DNS answer for {name} ({got}), {t}{others}",
                r.who()
            ),
        ),
        (_, t) => {
            let why = t.map_or("its reachability was not tested".to_owned(), |t| {
                format!("reachability unknown: {t}")
            });
            (
                Cause::Unknown,
                format!(
                    "{} gave no answer for {name} ({got}); {why}{others}",
                    r.who()
                ),
            )
        }
    }
}

/// Addresses that only resolvers in `dns_answer_mismatch` gave: requests there do not measure
/// the canary, they measure a resolver's mistake.
pub fn disputed_addresses(resolvers: &[ResolverOutcome]) -> Vec<IpAddr> {
    let mismatched = |r: &ResolverOutcome| {
        r.condition
            .as_ref()
            .is_some_and(|c| c.cause == Cause::DnsAnswerMismatch)
    };
    let mut out: Vec<IpAddr> = Vec::new();
    for r in resolvers.iter().filter(|r| mismatched(r)) {
        for a in r.addresses() {
            let elsewhere = resolvers
                .iter()
                .any(|o| !mismatched(o) && o.addresses().contains(&a));
            if !elsewhere && !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

/// Which resolver verdict becomes the cause of a check that got no address, most telling
/// first (unless every resolver says the name is missing: then that is the cause).
const NO_ADDRESS_PREFERENCE: [Cause; 5] = [
    Cause::DnsUpstreamBlock,
    Cause::DnsResolverUnreachable,
    Cause::DnsNameMissing,
    Cause::DnsAnswerMismatch,
    Cause::Unknown,
];

/// The cause of a check that got no address, from the verdicts on its resolvers (judged here
/// when the probe did not), with every other resolver's cause as contributing.
pub(super) fn no_address(check: &CheckResult) -> Option<Diagnosis> {
    let resolvers = &check.evidence.dns;
    if resolvers.is_empty() {
        return None;
    }
    let judged: Vec<Option<Diagnosis>> = if resolvers.iter().any(|r| r.condition.is_some()) {
        resolvers.iter().map(|r| r.condition.clone()).collect()
    } else {
        judge_resolvers("the canary's name", resolvers, &[])
    };
    let verdicts: Vec<&Diagnosis> = judged.iter().flatten().collect();
    let all_missing = verdicts.len() == resolvers.len()
        && verdicts.iter().all(|d| d.cause == Cause::DnsNameMissing);
    let causes: Vec<Cause> = verdicts.iter().map(|d| d.cause).collect();
    let cause = if all_missing {
        Cause::DnsNameMissing
    } else {
        NO_ADDRESS_PREFERENCE
            .into_iter()
            .find(|c| causes.contains(c))
            .unwrap_or(Cause::Unknown)
    };
    let mut contributing: Vec<Cause> = Vec::new();
    for c in causes {
        if c != cause && c != Cause::Unknown && !contributing.contains(&c) {
            contributing.push(c);
        }
    }
    let why: Vec<&str> = verdicts.iter().map(|d| d.explanation.as_str()).collect();
    let explanation = if why.is_empty() {
        "no resolver gave an address for the canary".to_owned()
    } else {
        format!("no resolver gave an address: {}", why.join("; "))
    };
    Some(Diagnosis {
        cause,
        contributing,
        explanation: crate::cut(explanation, super::EXPLANATION_MAX),
    })
}

/// `dns_answer_mismatch` as a contributing cause of a failed check whose address only
/// mismatched resolvers gave.
pub(super) fn contributing(check: &CheckResult) -> Option<Cause> {
    let address = check.address?;
    disputed_addresses(&check.evidence.dns)
        .contains(&address)
        .then_some(Cause::DnsAnswerMismatch)
}
