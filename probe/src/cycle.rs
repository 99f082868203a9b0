//! One probe cycle: for every canary (all at once) resolve its name through every resolver,
//! request each address it resolved to (all at once), judge, classify, and build the report.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use causeway_schema::{
    AddressCheck, BackendEvidence, CheckResult, Evidence, Failure, FailureKind, ProbeInfo, Report,
    Resolution, ResolverOutcome, SCHEMA_VERSION, SpoolStats, Timings, classify, disputed_addresses,
    judge_resolvers,
};

use crate::capture::Capture;
use crate::checks::backends::{self, Memory};
use crate::checks::dns::HickoryTransport;
use crate::checks::dns::{self, DnsChecks, NameServer};
use crate::checks::http::HttpChecker;
use crate::checks::http::{Fetch, HttpCheck, HttpOutcome};
use crate::config::{Backend, Canary, Config, TargetHost};
use crate::host::listeners::{CheckInFlight, ListenerWatch};
use crate::host::watch::{self, HostWatch};
use crate::now_ms;
use crate::os::Os;

mod overrun;
mod tls_expiry;

/// Most addresses requested per canary: bounds the requests (and memory) of a cycle and keeps
/// a report under the collector's limit on results.
pub const MAX_ADDRESSES: usize = 16;
const _: () = assert!(crate::config::MAX_CANARIES * MAX_ADDRESSES <= causeway_schema::MAX_RESULTS);

/// Where the `system` resolver's name servers are read from, every cycle (it may change).
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Runs cycles with the given DNS and HTTP transports (real ones in the service, fakes in
/// tests).
pub struct Prober<D, H> {
    pub config: Arc<Config>,
    pub dns: D,
    pub http: H,
    pub resolv_conf: PathBuf,
    /// The listeners on the canaries' ports, for failures of canaries served on this host.
    pub listeners: Option<ListenerWatch>,
    /// Backend identities and the boot id across cycles.
    pub memory: Option<Memory>,
    /// The probe's own host: memory, pressure, the kernel log, the reboot found at start.
    pub host: Option<HostWatch>,
    /// Where every input from the operating system comes from (see [`crate::os`]).
    pub os: Arc<dyn Os>,
    /// Cycles that outran the interval, and whether the last one did (see [`overrun`]).
    pub(crate) overruns: overrun::Overruns,
}

impl Prober<HickoryTransport, HttpChecker> {
    /// The real prober: DNS through hickory, the canary request with packet capture (unless
    /// `capture = false`), and the listener watch on the canaries' ports, all reading the
    /// operating system through one [`crate::os::get_input`].
    pub fn on_host(config: Arc<Config>) -> Self {
        let os = crate::os::get_input(&config.host_watch);
        let http = match config.capture {
            true => HttpChecker::with_capture(Arc::new(Capture::new(Arc::clone(&os)))),
            false => HttpChecker::new(),
        };
        Prober::new(config, HickoryTransport, http).watching(os)
    }
}

impl<D: DnsChecks, H: HttpCheck> Prober<D, H> {
    /// This prober with the host's parts started on `os`: the listener watch on the canaries'
    /// ports, the memory of backends and boot id (always opened: the boot id it keeps is how
    /// a reboot is seen), and the host watch.
    pub fn watching(self, os: Arc<dyn Os>) -> Self {
        let config = &self.config;
        let listeners = watch_ports(config, Arc::clone(&os));
        let memory = Memory::open(&config.state_dir, &*os);
        let host = HostWatch::start(&config.host_watch, memory.reboot(), Arc::clone(&os));
        Prober {
            listeners: Some(listeners),
            memory: Some(memory),
            host: Some(host),
            os,
            ..self
        }
    }
}

/// The listener watch on the ports of `config`'s canaries, each with its serving rule.
pub fn watch_ports(config: &Config, os: Arc<dyn Os>) -> ListenerWatch {
    ListenerWatch::start(watched_ports(config), config.listener_poll, os)
}

/// The canaries' ports, each with the rule that tells its serving process.
pub fn watched_ports(config: &Config) -> Vec<(u16, crate::config::ServingRule)> {
    config
        .canaries
        .iter()
        .map(|c| (c.target.port, c.serving.clone()))
        .collect()
}

impl<D: DnsChecks, H: HttpCheck> Prober<D, H> {
    pub fn new(config: Arc<Config>, dns: D, http: H) -> Self {
        let os = crate::os::get_input(&config.host_watch);
        Prober {
            config,
            dns,
            http,
            resolv_conf: PathBuf::from(RESOLV_CONF),
            listeners: None,
            memory: None,
            host: None,
            os,
            overruns: overrun::Overruns::default(),
        }
    }

    /// One cycle. The report's spool stats are left at zero: the spool fills them in.
    pub async fn cycle(&self) -> Report {
        let started_at_ms = now_ms();
        let started = Instant::now();
        let servers = self.name_servers();
        let per_canary = self
            .config
            .canaries
            .iter()
            .map(|c| self.check_canary(c, &servers));
        let mut results = Vec::new();
        let mut resolutions = Vec::new();
        for (checks, resolution) in futures_util::future::join_all(per_canary).await {
            results.extend(checks);
            resolutions.extend(resolution);
        }
        let host = self.host.as_ref().map(|h| h.observe(now_ms()));
        if let Some(host) = &host {
            with_host(&mut results, host, &*self.os);
        }
        // Classified once, with every piece of evidence in place: the trace and listeners
        // (with the request), the backends (per canary), the host (per cycle).
        for r in &mut results {
            r.diagnosis = classify(r);
        }
        let mut host = host.as_ref().map(watch::for_report);
        if let Some(host) = &mut host {
            let expiring = tls_expiry::conditions(&self.config.canaries, &results, started_at_ms);
            host.conditions.extend(expiring);
        }
        let mut report = Report {
            schema_version: SCHEMA_VERSION,
            report_id: causeway_schema::ReportId::new(),
            server: self.config.server.clone(),
            probe: ProbeInfo {
                host: self.config.host.clone(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            },
            started_at_ms,
            // Config limits the interval to 1 s .. 1 h, so this neither truncates to 0 nor
            // overflows.
            interval_s: self.config.interval.as_secs() as u32,
            results,
            resolutions,
            spool: SpoolStats::default(),
            host,
            cycle: None,
        };
        let took = started.elapsed();
        report.cycle = Some(self.overruns.count(took, self.config.interval, &report));
        report
    }

    /// The name servers for this cycle; only reads resolv.conf when `system` is configured.
    fn name_servers(&self) -> Vec<NameServer> {
        let wants_system = self
            .config
            .resolvers
            .iter()
            .any(|r| r.kind == crate::config::ResolverKind::System);
        let needs_dns = self
            .config
            .canaries
            .iter()
            .any(|c| matches!(c.target.host, TargetHost::Name(_)));
        let text = if wants_system && needs_dns {
            dns::read_resolv_conf(&self.resolv_conf)
        } else {
            None
        };
        dns::name_servers(&self.config.resolvers, text.as_deref())
    }

    async fn check_canary(
        &self,
        canary: &Canary,
        servers: &[NameServer],
    ) -> (Vec<CheckResult>, Option<Resolution>) {
        let started_at_ms = now_ms();
        let start = Instant::now();
        let name = match &canary.target.host {
            TargetHost::Ip(ip) => {
                let _check = self.watch_listeners(*ip);
                let outcome = self.with_listeners(self.fetch(canary, *ip).await).await;
                let mut results = vec![check_result(canary, started_at_ms, None, outcome, &[])];
                self.follow_backends(canary, servers, &mut results).await;
                return (results, None);
            }
            TargetHost::Name(name) => name,
        };
        let (mut outcomes, fetched) = self.resolve_and_fetch(canary, name, servers, start).await;
        judge(name, &mut outcomes, &fetched);

        let results = if fetched.is_empty() {
            let resolve_ms = start.elapsed().as_secs_f64() * 1000.0;
            vec![no_address(
                canary,
                started_at_ms,
                resolve_ms,
                name,
                &outcomes,
            )]
        } else {
            // A request to an address only a wrong resolver gave measures that resolver, not
            // the canary: while the canary answers elsewhere it stays out of availability (the
            // resolver's condition keeps what it returned).
            let disputed = disputed_addresses(&outcomes);
            let served = fetched.iter().any(|(_, o)| o.failure.is_none());
            fetched
                .into_iter()
                .filter(|(_, o)| !(served && disputed.contains(&o.remote.ip())))
                .map(|(resolve_ms, o)| {
                    check_result(canary, started_at_ms, Some(resolve_ms), o, &outcomes)
                })
                .collect()
        };
        let mut results = results;
        self.follow_backends(canary, servers, &mut results).await;
        let resolution = Resolution {
            canary: canary.name.clone(),
            name: name.clone(),
            resolvers: outcomes,
        };
        (results, Some(resolution))
    }

    /// Resolves `name` through every name server and requests the canary on each address as
    /// soon as any resolver gives it, while a resolver that said nothing usable is tested for
    /// reachability at once: a silent resolver costs `dns_timeout` beside the requests, not
    /// before them. Returns the resolvers' outcomes in the configured order (reachability
    /// filled in) and each request with the milliseconds from `start` until its address was
    /// known, in the order of [`dns::addresses`] (IPv4 first, by resolver).
    async fn resolve_and_fetch(
        &self,
        canary: &Canary,
        name: &str,
        servers: &[NameServer],
        start: Instant,
    ) -> (Vec<ResolverOutcome>, Vec<(f64, HttpOutcome)>) {
        use futures_util::StreamExt;
        use futures_util::stream::FuturesUnordered;

        let dns_timeout = self.config.dns_timeout;
        let resolve = |i: usize| async move {
            (
                i,
                dns::resolve_one(&self.dns, name, &servers[i], dns_timeout).await,
            )
        };
        let fetch = |address: IpAddr, known_ms: f64| async move {
            let _check = self.watch_listeners(address);
            let outcome = self.with_listeners(self.fetch(canary, address).await);
            (known_ms, outcome.await)
        };
        let reach = |i: usize, server| async move {
            (i, dns::reachability(&self.dns, server, dns_timeout).await)
        };
        let mut resolving: FuturesUnordered<_> = (0..servers.len()).map(resolve).collect();
        let mut fetching = FuturesUnordered::new();
        let mut reaching = FuturesUnordered::new();
        let mut outcomes: Vec<Option<ResolverOutcome>> = vec![None; servers.len()];
        let mut requested: Vec<IpAddr> = Vec::new();
        let mut fetched = Vec::new();
        let mut reached = Vec::new();
        let mut capped = false;
        loop {
            tokio::select! {
                Some((i, outcome)) = resolving.next() => {
                    let known_ms = start.elapsed().as_secs_f64() * 1000.0;
                    for address in dns::addresses(std::slice::from_ref(&outcome)) {
                        if requested.contains(&address) {
                            continue;
                        }
                        if requested.len() == MAX_ADDRESSES {
                            capped = true;
                            continue;
                        }
                        requested.push(address);
                        fetching.push(fetch(address, known_ms));
                    }
                    if !outcome.gave_usable_answer() {
                        reaching.push(reach(i, outcome.server));
                    }
                    outcomes[i] = Some(outcome);
                }
                Some(done) = fetching.next() => fetched.push(done),
                Some(done) = reaching.next() => reached.push(done),
                else => break,
            }
        }
        if capped {
            tracing::warn!(
                "{}: {name} has more than {MAX_ADDRESSES} addresses; requesting the first \
                 {MAX_ADDRESSES} given",
                canary.name
            );
        }
        let mut outcomes: Vec<ResolverOutcome> = outcomes.into_iter().flatten().collect();
        for (i, r) in reached {
            outcomes[i].reachability = Some(r);
        }
        let order = dns::addresses(&outcomes);
        fetched.sort_by_key(|(_, o): &(f64, HttpOutcome)| {
            order.iter().position(|a| *a == o.remote.ip())
        });
        (outcomes, fetched)
    }

    /// For a canary with backends: learns who they are while it is healthy; when the proxy
    /// answered 502/503/504 or the wrong page, adds the backend table to those checks.
    async fn follow_backends(
        &self,
        canary: &Canary,
        servers: &[NameServer],
        results: &mut [CheckResult],
    ) {
        let Some(memory) = &self.memory else { return };
        if canary.backends.is_empty() {
            return;
        }
        let timeout = canary.timeout;
        let gateway = |r: &CheckResult| match r.failure.as_ref().map(|f| f.kind) {
            Some(FailureKind::UnexpectedStatus) => matches!(r.status, Some(502..=504)),
            Some(FailureKind::BodyMismatch) => true,
            _ => false,
        };
        if results.iter().all(|r| r.ok) {
            memory.healthy();
            for b in &canary.backends {
                if !memory.due(&canary.name, b.address, now_ms()) {
                    continue;
                }
                let direct = backends::direct(canary, b.address, timeout).await;
                let Some(answer) = direct.answer.filter(|a| a.status < 500) else {
                    continue;
                };
                let names = self.backend_names(b, servers).await;
                let neigh = self.os.neighbours().unwrap_or_default();
                let identity = backends::identity(b, answer, &neigh, names, now_ms());
                memory.learn(&canary.name, b.address, identity);
            }
            return;
        }
        if !results.iter().any(gateway) {
            return;
        }
        let mut names = std::collections::BTreeMap::new();
        for b in &canary.backends {
            names.insert(b.address.to_string(), self.backend_names(b, servers).await);
        }
        let table = backends::investigate(
            &*self.os,
            canary,
            &memory.known(&canary.name),
            &names,
            timeout,
        )
        .await;
        let evidence = BackendEvidence {
            backends: table,
            reboot: memory.reboot(),
        };
        for r in results.iter_mut().filter(|r| gateway(r)) {
            r.evidence.backends = Some(evidence.clone());
        }
    }

    /// What a backend's configured name resolves to now (nothing without a name).
    async fn backend_names(&self, backend: &Backend, servers: &[NameServer]) -> Vec<IpAddr> {
        let Some(name) = &backend.name else {
            return Vec::new();
        };
        let outcomes = dns::resolve(&self.dns, name, servers, self.config.dns_timeout).await;
        dns::addresses(&outcomes)
    }

    /// The canary's request to `address`, within its timeout.
    async fn fetch(&self, canary: &Canary, address: IpAddr) -> HttpOutcome {
        let target = Fetch {
            canary: canary.clone(),
            address,
        };
        crate::checks::run(&self.http, target, canary.timeout).await
    }

    /// For a request to `address`: the listeners are looked at closely from before the
    /// connection until its evidence is taken, when the address may be this host's (only
    /// then can its listeners be evidence, see [`Self::with_listeners`]).
    fn watch_listeners(&self, address: IpAddr) -> Option<CheckInFlight> {
        let watch = self.listeners.as_ref()?;
        self.os.may_be_own_address(address).then(|| watch.check())
    }

    /// Adds the listeners on the canary's port to a failed outcome, when the canary is served
    /// on this host. They are read after the watch's next look, so a listener that went away
    /// with the failure shows as gone.
    async fn with_listeners(&self, mut outcome: HttpOutcome) -> HttpOutcome {
        let Some(watch) = &self.listeners else {
            return outcome;
        };
        if outcome.failure.is_none() {
            return outcome;
        }
        let local = match &outcome.evidence.trace {
            Some(trace) => trace.interface == "lo",
            None => self.os.is_own_address(outcome.remote.ip()),
        };
        if local {
            outcome.evidence.listeners =
                watch.evidence_after_next_poll(outcome.remote.port()).await;
        }
        outcome
    }
}

/// Adds the host's evidence to the failed checks of canaries served on this host (where an
/// OOM kill of the serving process outranks the refused connection it left behind).
fn with_host(results: &mut [CheckResult], host: &causeway_schema::HostEvidence, os: &dyn Os) {
    let local = |r: &CheckResult| {
        r.evidence.listeners.is_some() || r.address.is_some_and(|ip| os.is_own_address(ip))
    };
    for r in results.iter_mut().filter(|r| !r.ok && local(r)) {
        r.evidence.host = Some(host.clone());
    }
}

/// Sets each resolver's verdict, judged against the others and the requests made.
fn judge(name: &str, outcomes: &mut [ResolverOutcome], fetched: &[(f64, HttpOutcome)]) {
    let checks: Vec<AddressCheck<'_>> = fetched
        .iter()
        .map(|(_, o)| AddressCheck {
            address: o.remote.ip(),
            failure: o.failure.as_ref().map(|f| f.message.as_str()),
        })
        .collect();
    let verdicts = judge_resolvers(name, outcomes, &checks);
    for (outcome, verdict) in outcomes.iter_mut().zip(verdicts) {
        outcome.condition = verdict;
    }
}

/// A check result from one request. `dns` is the canary's resolution, kept as evidence when
/// the check failed.
fn check_result(
    canary: &Canary,
    started_at_ms: i64,
    resolve_ms: Option<f64>,
    outcome: HttpOutcome,
    dns: &[ResolverOutcome],
) -> CheckResult {
    let ok = outcome.failure.is_none();
    let evidence = if ok {
        // A healthy https check keeps its certificates' fingerprints and dates: the expiry
        // warnings and the certificate-changed note come from them.
        Evidence {
            tls: outcome.evidence.tls.as_ref().map(|t| t.compact()),
            ..Evidence::default()
        }
    } else {
        Evidence {
            dns: dns.to_vec(),
            ..outcome.evidence
        }
    };
    CheckResult {
        canary: canary.name.clone(),
        url: canary.url.clone(),
        address: Some(outcome.remote.ip()),
        started_at_ms,
        ok,
        status: outcome.status,
        timings: Timings {
            resolve_ms,
            connect_ms: outcome.connect_ms,
            tls_ms: outcome.tls_ms,
            first_byte_ms: outcome.first_byte_ms,
            total_ms: resolve_ms.unwrap_or(0.0) + outcome.total_ms,
        },
        failure: outcome.failure,
        diagnosis: None,
        evidence,
    }
}

/// The one result of a canary whose name resolved to nothing.
fn no_address(
    canary: &Canary,
    started_at_ms: i64,
    resolve_ms: f64,
    name: &str,
    outcomes: &[ResolverOutcome],
) -> CheckResult {
    CheckResult {
        canary: canary.name.clone(),
        url: canary.url.clone(),
        address: None,
        started_at_ms,
        ok: false,
        status: None,
        timings: Timings {
            resolve_ms: Some(resolve_ms),
            total_ms: resolve_ms,
            ..Timings::default()
        },
        failure: Some(Failure {
            kind: FailureKind::NoAddress,
            message: causeway_schema::cut(
                format!(
                    "no resolver gave an address for {name}: {}",
                    brief_outcomes(outcomes)
                ),
                400,
            ),
        }),
        diagnosis: None,
        evidence: Evidence {
            dns: outcomes.to_vec(),
            ..Evidence::default()
        },
    }
}

/// `system (10.0.0.53:53) A nx_domain, AAAA nx_domain; 10.0.0.54 A timeout, AAAA timeout`
fn brief_outcomes(outcomes: &[ResolverOutcome]) -> String {
    outcomes
        .iter()
        .map(|o| {
            let who = o.who();
            let queries: Vec<String> = o
                .queries
                .iter()
                .map(|q| format!("{} {}", q.record_type, q.outcome.id()))
                .collect();
            format!("{who} {}", queries.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The one log line per cycle: `cycle: 2/2 checks ok`,
/// `cycle: 0/1 checks ok: site 10.0.0.2 connection_refused`, or with resolver conditions
/// `cycle: 1/1 checks ok; resolvers: site 10.0.0.54 dns_upstream_block`.
pub fn summary(report: &Report) -> String {
    let ok = report.results.iter().filter(|r| r.ok).count();
    let mut line = format!("cycle: {ok}/{} checks ok", report.results.len());
    let failed: Vec<String> = report
        .results
        .iter()
        .filter(|r| !r.ok)
        .map(|r| {
            let address = r
                .address
                .map_or_else(|| "no-address".to_owned(), |a: IpAddr| a.to_string());
            let cause = r.cause().map_or("unknown", |c| c.id());
            format!("{} {address} {cause}", r.canary)
        })
        .collect();
    if !failed.is_empty() {
        line.push_str(": ");
        line.push_str(&failed.join(", "));
    }
    let conditions: Vec<String> = report
        .resolutions
        .iter()
        .flat_map(|res| res.resolvers.iter().map(move |o| (res, o)))
        .filter_map(|(res, o)| {
            let cause = o.condition.as_ref()?.cause.id();
            Some(format!("{} {} {cause}", res.canary, o.who()))
        })
        .collect();
    if !conditions.is_empty() {
        line.push_str("; resolvers: ");
        line.push_str(&conditions.join(", "));
    }
    let host = report.host.iter().flat_map(|h| &h.conditions);
    let host: Vec<&str> = host.map(|c| c.cause.id()).collect();
    if !host.is_empty() {
        line.push_str("; host: ");
        line.push_str(&host.join(", "));
    }
    line
}

#[cfg(test)]
mod host_tests;
#[cfg(test)]
mod os_tests;

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::future::Future;
    use std::net::SocketAddr;
    use std::sync::Mutex;
    use std::time::Duration;

    use causeway_schema::{Cause, DnsAnswer, DnsOutcome, DnsQuery, ReachOutcome, ReachProbe};

    use super::*;
    use crate::checks::Check;
    use crate::checks::dns::Query;
    use crate::checks::reach::{Echo, TcpConnect};
    use crate::config::HostInfo;
    use tokio::time::Instant;

    /// Canned DNS: (server, record type) -> addresses, or an outcome without addresses.
    #[derive(Default)]
    pub(super) struct FakeDns {
        answers: HashMap<(SocketAddr, &'static str), Result<Vec<IpAddr>, DnsOutcome>>,
        asked: Mutex<Vec<(SocketAddr, String, &'static str)>>,
        /// Servers whose host answers ping; all others are silent.
        reachable: HashMap<SocketAddr, bool>,
        reached: Mutex<Vec<SocketAddr>>,
        /// How long a query that times out takes (on tokio's clock); none by default.
        silence: Duration,
    }

    impl Check<Query> for FakeDns {
        type Outcome = DnsQuery;

        fn run(&self, query: Query, _: Instant) -> impl Future<Output = DnsQuery> + Send {
            let Query { server, name, kind } = query;
            self.asked
                .lock()
                .unwrap()
                .push((server, name, kind.as_str()));
            let canned = self
                .answers
                .get(&(server, kind.as_str()))
                .cloned()
                .unwrap_or(Err(DnsOutcome::Timeout));
            let (outcome, answers) = match canned {
                Ok(addrs) => (
                    DnsOutcome::Answer,
                    addrs
                        .into_iter()
                        .map(|address| DnsAnswer { address, ttl: 60 })
                        .collect(),
                ),
                Err(outcome) => (outcome, Vec::new()),
            };
            let responded = !matches!(outcome, DnsOutcome::Timeout | DnsOutcome::NetworkError);
            let q = DnsQuery {
                record_type: kind,
                outcome,
                rcode: responded.then_some(causeway_schema::Rcode::NOERROR),
                answers,
                elapsed_ms: 2.0,
                error: None,
            };
            let wait = match q.outcome {
                DnsOutcome::Timeout => self.silence,
                _ => Duration::ZERO,
            };
            async move {
                tokio::time::sleep(wait).await;
                q
            }
        }
    }

    impl FakeDns {
        /// The canned outcome of a reachability test of `server`'s host.
        fn reach(&self, server: SocketAddr, tcp: bool) -> ReachProbe {
            if !tcp {
                // Both tests of a server run together: counted once.
                self.reached.lock().unwrap().push(server);
            }
            let (icmp_outcome, tcp_outcome) = match self.reachable.get(&server) {
                Some(true) => (ReachOutcome::Reply, ReachOutcome::Refused),
                _ => (ReachOutcome::NoReply, ReachOutcome::NoReply),
            };
            ReachProbe {
                outcome: if tcp { tcp_outcome } else { icmp_outcome },
                elapsed_ms: 1.0,
                detail: None,
            }
        }
    }

    impl Check<Echo> for FakeDns {
        type Outcome = ReachProbe;

        fn run(&self, target: Echo, _: Instant) -> impl Future<Output = ReachProbe> + Send {
            std::future::ready(self.reach(target.0, false))
        }
    }

    impl Check<TcpConnect> for FakeDns {
        type Outcome = ReachProbe;

        fn run(&self, target: TcpConnect, _: Instant) -> impl Future<Output = ReachProbe> + Send {
            std::future::ready(self.reach(target.0, true))
        }
    }

    /// Canned HTTP: every address answers ok, except those listed with a failure kind.
    #[derive(Default)]
    pub(super) struct FakeHttp {
        pub(super) failing: HashMap<IpAddr, FailureKind>,
        fetched: Mutex<Vec<IpAddr>>,
        /// When each fetch began, on tokio's clock.
        fetched_at: Mutex<Vec<tokio::time::Instant>>,
    }

    impl Check<Fetch> for FakeHttp {
        type Outcome = HttpOutcome;

        fn run(&self, target: Fetch, _: Instant) -> impl Future<Output = HttpOutcome> + Send {
            let Fetch { canary, address } = target;
            self.fetched.lock().unwrap().push(address);
            self.fetched_at
                .lock()
                .unwrap()
                .push(tokio::time::Instant::now());
            let failure = self.failing.get(&address).map(|kind| Failure {
                kind: *kind,
                message: "fake failure".into(),
            });
            let refused = failure.is_some();
            let o = HttpOutcome {
                local: None,
                remote: SocketAddr::new(address, canary.target.port),
                status: (!refused).then_some(200),
                connect_ms: (!refused).then_some(1.0),
                tls_ms: None,
                first_byte_ms: (!refused).then_some(2.0),
                // Stamped by the runner: 5 ms on tokio's clock.
                total_ms: 0.0,
                failure,
                evidence: Evidence::default(),
            };
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                o
            }
        }
    }

    pub(super) fn config(resolvers: &str, canaries: &str) -> Arc<Config> {
        let text = format!(
            "collector_url = \"http://127.0.0.1:1\"\ntoken = \"t\"\nserver = \"web-01\"\n\
             resolvers = {resolvers}\n{canaries}"
        );
        Arc::new(
            Config::parse(
                &text,
                &HostInfo {
                    hostname: Some("probe-host".into()),
                },
            )
            .unwrap(),
        )
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const SITE: &str = "[[canary]]\nname = \"site\"\nurl = \"http://canary.test/health\"\n";

    #[tokio::test(start_paused = true)]
    async fn resolves_through_every_server_and_requests_every_address() {
        let dir = tempfile::tempdir().unwrap();
        let resolv_conf = dir.path().join("resolv.conf");
        std::fs::write(&resolv_conf, "nameserver 10.0.0.53\n").unwrap();
        let mut dns = FakeDns::default();
        dns.answers
            .insert((addr("10.0.0.53:53"), "A"), Ok(vec![ip("10.0.0.2")]));
        dns.answers
            .insert((addr("10.0.0.53:53"), "AAAA"), Err(DnsOutcome::NoData));
        dns.answers.insert(
            (addr("10.0.0.54:5353"), "A"),
            Ok(vec![ip("10.0.0.3"), ip("10.0.0.2")]),
        );
        dns.answers
            .insert((addr("10.0.0.54:5353"), "AAAA"), Ok(vec![ip("fd00::2")]));
        let mut http = FakeHttp::default();
        http.failing
            .insert(ip("10.0.0.3"), FailureKind::ConnectRefused);
        let mut prober = Prober::new(config(r#"["system", "10.0.0.54:5353"]"#, SITE), dns, http);
        prober.resolv_conf = resolv_conf;

        let report = prober.cycle().await;

        assert_eq!(report.schema_version, SCHEMA_VERSION);
        assert_eq!(report.server, "web-01");
        assert_eq!(report.probe.host, "probe-host");
        assert_eq!(report.interval_s, 30);
        let addresses: Vec<_> = report.results.iter().map(|r| r.address).collect();
        assert_eq!(
            addresses,
            vec![
                Some(ip("10.0.0.2")),
                Some(ip("10.0.0.3")),
                Some(ip("fd00::2"))
            ],
            "each distinct address once, IPv4 first"
        );
        let ok = &report.results[0];
        assert!(ok.ok);
        assert_eq!(ok.diagnosis, None);
        assert_eq!(ok.evidence, Evidence::default());
        let resolve_ms = ok.timings.resolve_ms.unwrap();
        assert!((ok.timings.total_ms - (resolve_ms + 5.0)).abs() < 1e-9);

        let refused = &report.results[1];
        assert!(!refused.ok);
        assert_eq!(
            refused.failure.as_ref().unwrap().kind,
            FailureKind::ConnectRefused
        );
        assert_eq!(
            refused.diagnosis.as_ref().unwrap().cause,
            Cause::ConnectionRefused
        );
        assert_eq!(
            refused.evidence.dns.len(),
            2,
            "a failed check carries the DNS outcomes"
        );

        assert_eq!(report.resolutions.len(), 1);
        let resolution = &report.resolutions[0];
        assert_eq!(resolution.name, "canary.test");
        let who: Vec<_> = resolution
            .resolvers
            .iter()
            .map(|r| (r.resolver.as_str(), r.server))
            .collect();
        assert_eq!(
            who,
            vec![
                ("system", addr("10.0.0.53:53")),
                ("10.0.0.54:5353", addr("10.0.0.54:5353"))
            ]
        );
        assert_eq!(
            prober.dns.asked.lock().unwrap().len(),
            4,
            "A and AAAA per server"
        );
        report.validate(now_ms()).unwrap();
        assert_eq!(
            summary(&report),
            "cycle: 2/3 checks ok: site 10.0.0.3 connection_refused"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_resolver_holds_back_neither_the_request_nor_the_reachability_test() {
        // 10.0.0.53 answers at once; 10.0.0.54 and 10.0.0.55 say nothing for 2 s (dns_timeout).
        let mut dns = FakeDns {
            silence: Duration::from_secs(2),
            ..FakeDns::default()
        };
        dns.answers
            .insert((addr("10.0.0.53:53"), "A"), Ok(vec![ip("10.0.0.2")]));
        dns.answers
            .insert((addr("10.0.0.53:53"), "AAAA"), Err(DnsOutcome::NoData));
        let prober = Prober::new(
            config(r#"["10.0.0.53", "10.0.0.54", "10.0.0.55"]"#, SITE),
            dns,
            FakeHttp::default(),
        );
        let t0 = tokio::time::Instant::now();
        let report = prober.cycle().await;
        let fetched_at = prober.http.fetched_at.lock().unwrap().clone();
        assert_eq!(fetched_at.len(), 1);
        assert_eq!(
            fetched_at[0] - t0,
            Duration::ZERO,
            "the canary is requested as soon as one resolver gave its address"
        );
        assert!(report.results[0].ok);
        // The silent ones were tested for reachability as soon as they timed out, and the
        // cycle took one dns_timeout, not one for the answers and another for the tests.
        assert_eq!(tokio::time::Instant::now() - t0, Duration::from_secs(2));
        let reached = prober.dns.reached.lock().unwrap().clone();
        assert_eq!(reached.len(), 2, "{reached:?}");
        let resolvers = &report.resolutions[0].resolvers;
        assert!(resolvers[1].reachability.is_some() && resolvers[2].reachability.is_some());
        assert!(resolvers[0].reachability.is_none());
    }

    #[tokio::test]
    async fn no_address_when_no_resolver_answers() {
        let mut dns = FakeDns::default();
        dns.answers
            .insert((addr("10.0.0.53:53"), "A"), Err(DnsOutcome::NxDomain));
        dns.answers
            .insert((addr("10.0.0.53:53"), "AAAA"), Err(DnsOutcome::NxDomain));
        let prober = Prober::new(
            config(r#"["10.0.0.53", "10.0.0.54"]"#, SITE),
            dns,
            FakeHttp::default(),
        );
        let report = prober.cycle().await;
        assert_eq!(report.results.len(), 1);
        let r = &report.results[0];
        assert_eq!(r.address, None);
        assert!(!r.ok);
        let failure = r.failure.as_ref().unwrap();
        assert_eq!(failure.kind, FailureKind::NoAddress);
        assert_eq!(
            failure.message,
            "no resolver gave an address for canary.test: 10.0.0.53 A nx_domain, AAAA nx_domain; \
             10.0.0.54 A timeout, AAAA timeout"
        );
        assert!(r.timings.resolve_ms.is_some());
        assert_eq!(r.timings.connect_ms, None);
        assert_eq!(r.evidence.dns.len(), 2);
        let d = r.diagnosis.as_ref().unwrap();
        assert_eq!(d.cause, Cause::DnsResolverUnreachable);
        assert_eq!(d.contributing, vec![Cause::DnsNameMissing]);
        assert!(prober.http.fetched.lock().unwrap().is_empty());
        // Only the silent server was tested for reachability.
        assert_eq!(
            *prober.dns.reached.lock().unwrap(),
            vec![addr("10.0.0.54:53")]
        );
        report.validate(now_ms()).unwrap();
        assert_eq!(
            summary(&report),
            "cycle: 0/1 checks ok: site no-address dns_resolver_unreachable; resolvers: \
             site 10.0.0.53 dns_name_missing, site 10.0.0.54 dns_resolver_unreachable"
        );
    }

    #[tokio::test]
    async fn a_wrong_answer_is_a_resolver_condition_not_a_failed_check() {
        let mut dns = FakeDns::default();
        dns.answers
            .insert((addr("10.0.0.53:53"), "A"), Ok(vec![ip("10.0.0.2")]));
        dns.answers
            .insert((addr("10.0.0.54:53"), "A"), Ok(vec![ip("10.0.0.9")]));
        for server in ["10.0.0.53:53", "10.0.0.54:53"] {
            dns.answers
                .insert((addr(server), "AAAA"), Err(DnsOutcome::NoData));
        }
        let mut http = FakeHttp::default();
        http.failing
            .insert(ip("10.0.0.9"), FailureKind::ConnectTimeout);
        let prober = Prober::new(config(r#"["10.0.0.53", "10.0.0.54"]"#, SITE), dns, http);
        let report = prober.cycle().await;
        // Both addresses were requested; only the canary's own counts.
        assert_eq!(prober.http.fetched.lock().unwrap().len(), 2);
        assert_eq!(report.results.len(), 1);
        assert_eq!(report.results[0].address, Some(ip("10.0.0.2")));
        assert!(report.results[0].ok);
        let resolvers = &report.resolutions[0].resolvers;
        assert_eq!(resolvers[0].condition, None);
        let c = resolvers[1].condition.as_ref().unwrap();
        assert_eq!(c.cause, Cause::DnsAnswerMismatch);
        assert_eq!(
            c.explanation,
            "10.0.0.54 answers canary.test with 10.0.0.9, while 10.0.0.53 answers 10.0.0.2, \
             where the canary answers; the request to 10.0.0.9 failed: fake failure"
        );
        assert!(prober.dns.reached.lock().unwrap().is_empty());
        report.validate(now_ms()).unwrap();
        assert_eq!(
            summary(&report),
            "cycle: 1/1 checks ok; resolvers: site 10.0.0.54 dns_answer_mismatch"
        );
    }

    #[tokio::test]
    async fn a_refusing_resolver_that_answers_ping_blocks_us() {
        let mut dns = FakeDns::default();
        dns.answers
            .insert((addr("10.0.0.53:53"), "A"), Ok(vec![ip("10.0.0.2")]));
        dns.answers
            .insert((addr("10.0.0.53:53"), "AAAA"), Err(DnsOutcome::NoData));
        dns.reachable.insert(addr("10.0.0.54:53"), true);
        let prober = Prober::new(
            config(r#"["10.0.0.53", "10.0.0.54"]"#, SITE),
            dns,
            FakeHttp::default(),
        );
        let report = prober.cycle().await;
        assert_eq!(
            summary(&report),
            "cycle: 1/1 checks ok; resolvers: site 10.0.0.54 dns_upstream_block"
        );
        let silent = &report.resolutions[0].resolvers[1];
        let reach = silent.reachability.as_ref().unwrap();
        assert_eq!(reach.icmp.outcome, ReachOutcome::Reply);
        assert!(report.resolutions[0].resolvers[0].reachability.is_none());
    }

    #[tokio::test]
    async fn addresses_per_canary_are_capped() {
        let mut dns = FakeDns::default();
        let many: Vec<IpAddr> = (1..=40).map(|i| ip(&format!("10.0.1.{i}"))).collect();
        dns.answers.insert((addr("10.0.0.53:53"), "A"), Ok(many));
        let prober = Prober::new(config(r#"["10.0.0.53"]"#, SITE), dns, FakeHttp::default());
        let report = prober.cycle().await;
        assert_eq!(report.results.len(), MAX_ADDRESSES);
        assert_eq!(report.results[0].address, Some(ip("10.0.1.1")));
        report.validate(now_ms()).unwrap();
    }

    #[tokio::test]
    async fn ip_literal_is_not_resolved() {
        let canaries = "[[canary]]\nname = \"by-ip\"\nurl = \"http://10.0.0.9:8080/\"\n\
                        [[canary]]\nname = \"v6\"\nurl = \"http://[fd00::9]/\"\n";
        let prober = Prober::new(
            config(r#"["10.0.0.53"]"#, canaries),
            FakeDns::default(),
            FakeHttp::default(),
        );
        let report = prober.cycle().await;
        assert!(prober.dns.asked.lock().unwrap().is_empty());
        assert!(report.resolutions.is_empty());
        assert_eq!(report.results.len(), 2);
        assert_eq!(report.results[0].address, Some(ip("10.0.0.9")));
        assert_eq!(report.results[0].timings.resolve_ms, None);
        assert_eq!(report.results[1].canary, "v6");
        assert_eq!(summary(&report), "cycle: 2/2 checks ok");
    }

    #[tokio::test]
    async fn system_resolver_follows_resolv_conf_each_cycle() {
        let dir = tempfile::tempdir().unwrap();
        let resolv_conf = dir.path().join("resolv.conf");
        std::fs::write(&resolv_conf, "nameserver 10.0.0.53\n").unwrap();
        let mut prober = Prober::new(
            config(r#"["system"]"#, SITE),
            FakeDns::default(),
            FakeHttp::default(),
        );
        prober.resolv_conf = resolv_conf.clone();
        let first = prober.cycle().await;
        std::fs::write(&resolv_conf, "nameserver 10.0.0.99\n").unwrap();
        let second = prober.cycle().await;
        assert_eq!(
            first.resolutions[0].resolvers[0].server,
            addr("10.0.0.53:53")
        );
        assert_eq!(
            second.resolutions[0].resolvers[0].server,
            addr("10.0.0.99:53")
        );
        assert_ne!(first.report_id, second.report_id);
    }
}
