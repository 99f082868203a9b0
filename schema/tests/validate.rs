//! Report validation: one case per kind of mistake, with the exact message a probe gets.

use causeway_schema::*;

const NOW: i64 = 1_763_900_060_000;

fn report() -> Report {
    let table: toml::Table = toml::from_str(include_str!("scenarios/refused.toml")).unwrap();
    let mut check: CheckResult = table["check"].clone().try_into().unwrap();
    check.diagnosis = classify(&check);
    Report {
        schema_version: SCHEMA_VERSION,
        report_id: causeway_schema::ReportId(uuid::Uuid::nil()),
        server: "web-01".into(),
        probe: ProbeInfo {
            host: "web-01".into(),
            version: "0.1.0".into(),
        },
        started_at_ms: 1_763_900_000_000,
        interval_s: 30,
        results: vec![check],
        resolutions: vec![],
        spool: SpoolStats::default(),
        host: None,
        cycle: None,
    }
}

/// A trace of `n` identical packets.
fn trace_of(n: usize) -> PacketTrace {
    let packet = TracePacket {
        t_ms: 0.0,
        dir: Direction::Out,
        flags: TcpFlags(TcpFlags::SYN),
        seq: 0,
        ack: 0,
        ttl: 64,
        len: 0,
    };
    PacketTrace {
        interface: "lo".into(),
        local: "0.0.0.0:41000".parse().unwrap(),
        remote: "10.77.0.2:80".parse().unwrap(),
        started_at_ms: 1_763_900_000_000,
        packets: vec![packet; n],
        truncated: 0,
        server_ttl: None,
    }
}

/// A change that spoils a good report.
type Mistake = Box<dyn FnOnce(&mut Report)>;

fn error_of(change: impl FnOnce(&mut Report)) -> String {
    let mut r = report();
    change(&mut r);
    r.validate(NOW).unwrap_err().to_string()
}

#[test]
fn a_good_report_passes() {
    report().validate(NOW).unwrap();
    let mut traced = report();
    traced.results[0].evidence.trace = Some(trace_of(TRACE_MAX_PACKETS));
    traced.validate(NOW).unwrap();
}

#[test]
fn each_mistake_is_named() {
    let six_minutes_ahead = format!(
        "invalid report: started_at_ms: {} is not allowed; expected milliseconds since the Unix epoch, after 2020 and at most 5 minutes ahead of the collector's clock (this is 360 s ahead: is the probe host's clock synchronized? see `timedatectl`)",
        NOW + 360_000
    );
    let cases: Vec<(Mistake, &str)> = vec![
        (
            Box::new(|r| r.schema_version = 9),
            "invalid report: schema_version: 9 is not allowed; expected 1 to 1 (this collector's newest)",
        ),
        (
            Box::new(|r| r.server = "web 01".into()),
            "invalid report: server: \"web 01\" is not allowed; expected 1 to 253 characters of ASCII letters, digits, '.', '-' and '_'",
        ),
        (
            Box::new(|r| r.server = "".into()),
            "invalid report: server: \"\" is not allowed; expected 1 to 253 characters of ASCII letters, digits, '.', '-' and '_'",
        ),
        (
            Box::new(|r| r.started_at_ms = 1_000),
            "invalid report: started_at_ms: 1000 is not allowed; expected milliseconds since the Unix epoch, after 2020 and at most 5 minutes ahead of the collector's clock (this is before 2020: is the probe host's clock set?)",
        ),
        (
            // A probe whose clock runs 6 minutes ahead: dated later than the reports after it.
            Box::new(|r| r.started_at_ms = NOW + 360_000),
            &six_minutes_ahead,
        ),
        (
            Box::new(|r| r.interval_s = 0),
            "invalid report: interval_s: 0 is not allowed; expected 1 to 86400 seconds",
        ),
        (
            Box::new(|r| r.results[0].status = Some(999)),
            "invalid report: results[0].status: 999 is not allowed; expected an HTTP status from 100 to 599",
        ),
        (
            Box::new(|r| r.results[0].failure = None),
            "invalid report: results[0].failure: absent is not allowed; expected a failure exactly when ok is false (ok is false)",
        ),
        (
            Box::new(|r| r.results[0].timings.total_ms = -1.0),
            "invalid report: results[0].timings.total_ms: -1 is not allowed; expected a finite number of milliseconds, 0 or more",
        ),
        (
            Box::new(|r| r.results[0].canary = "".into()),
            "invalid report: results[0].canary: \"\" is not allowed; expected text of 1 to 128 characters",
        ),
        (
            Box::new(|r| r.results = vec![r.results[0].clone(); MAX_RESULTS + 1]),
            "invalid report: results: a list of 1001 is not allowed; expected at most 1000 results",
        ),
        (
            Box::new(|r| r.results.clear()),
            "invalid report: results: a list of 0 is not allowed; expected at least one check (a probe has at least one canary)",
        ),
        (
            Box::new(|r| {
                r.results[0].diagnosis.as_mut().unwrap().contributing =
                    vec![Cause::HostRebooted; 17]
            }),
            "invalid report: results[0].diagnosis.contributing: a list of 17 is not allowed; expected at most 16 causes",
        ),
        (
            Box::new(|r| r.results[0].evidence.trace = Some(trace_of(TRACE_MAX_PACKETS + 1))),
            "invalid report: results[0].evidence.trace.packets: a list of 33 is not allowed; expected at most 32 packets",
        ),
    ];
    for (change, want) in cases {
        assert_eq!(error_of(change), want);
    }
}

/// The canary's name through `n` name servers, the second one refusing (when there is one).
fn resolution(n: usize) -> Resolution {
    let query = |outcome, rcode: &str| DnsQuery {
        record_type: causeway_schema::RecordType::A,
        outcome,
        rcode: causeway_schema::Rcode::parse(rcode),
        answers: vec![],
        elapsed_ms: 0.4,
        error: None,
    };
    let server = |i: usize| ResolverOutcome {
        resolver: format!("10.0.0.{i}"),
        server: format!("10.0.0.{i}:53").parse().unwrap(),
        queries: vec![query(DnsOutcome::NoData, "NOERROR")],
        reachability: None,
        condition: None,
    };
    let mut resolvers: Vec<ResolverOutcome> = (0..n).map(server).collect();
    if let Some(refusing) = resolvers.get_mut(1) {
        refusing.queries = vec![query(DnsOutcome::Refused, "REFUSED")];
        refusing.condition = Some(Diagnosis {
            cause: Cause::DnsUpstreamBlock,
            contributing: vec![],
            explanation: "10.0.0.1 refuses our queries".into(),
        });
    }
    Resolution {
        canary: "site".into(),
        name: "canary.test".into(),
        resolvers,
    }
}

#[test]
fn each_resolution_mistake_is_named() {
    let mut good = report();
    good.resolutions = vec![resolution(2); 256];
    good.resolutions[0] = resolution(32);
    good.validate(NOW).unwrap();

    let with = |change: fn(&mut Resolution)| {
        error_of(move |r| {
            let mut res = resolution(2);
            change(&mut res);
            r.resolutions = vec![res];
        })
    };
    let at = "invalid report: resolutions[0].resolvers[1]";
    assert_eq!(
        error_of(|r| r.resolutions = vec![resolution(1); 257]),
        "invalid report: resolutions: a list of 257 is not allowed; expected at most 256 \
         resolutions"
    );
    assert_eq!(
        with(|res| *res = resolution(33)),
        "invalid report: resolutions[0].resolvers: a list of 33 is not allowed; expected at \
         most 32 resolvers"
    );
    assert_eq!(
        with(|res| res.resolvers[1].queries = vec![res.resolvers[1].queries[0].clone(); 9]),
        format!("{at}.queries: a list of 9 is not allowed; expected at most 8 queries")
    );
    assert_eq!(
        with(|res| res.resolvers[1].condition.as_mut().unwrap().explanation = String::new()),
        format!(
            "{at}.condition.explanation: \"\" is not allowed; expected text of 1 to 1024 \
             characters"
        )
    );
    let long = with(|res| {
        res.resolvers[1].condition.as_mut().unwrap().explanation = "x".repeat(1025);
    });
    assert!(
        long.starts_with(&format!("{at}.condition.explanation: \"xxx")),
        "{long}"
    );
    assert!(long.contains("... (1025 characters)"), "{long}");
    assert_eq!(
        with(|res| res.resolvers[1].resolver = String::new()),
        format!("{at}.resolver: \"\" is not allowed; expected text of 1 to 128 characters")
    );
    assert_eq!(
        with(|res| res.resolvers[1].queries[0].elapsed_ms = -1.0),
        format!(
            "{at}.queries[0].elapsed_ms: -1 is not allowed; expected a finite number of \
             milliseconds, 0 or more"
        )
    );
}

/// `n` backends, each seen at `sightings` other addresses.
fn backends(n: usize, sightings: usize) -> BackendEvidence {
    let backend = |i: usize| BackendState {
        name: Some(format!("app{i}")),
        configured: format!("10.88.0.{}:80", 10 + i).parse().unwrap(),
        known: None,
        direct: DirectResult {
            outcome: DirectOutcome::Refused,
            answer: None,
            elapsed_ms: 0.3,
            detail: Some("connection refused".into()),
        },
        seen_at: (0..sightings)
            .map(|k| Sighting {
                address: format!("10.88.1.{k}").parse().unwrap(),
                by: vec![SightingBy::Name],
            })
            .collect(),
    };
    BackendEvidence {
        backends: (0..n).map(backend).collect(),
        reboot: None,
    }
}

#[test]
fn each_backend_mistake_is_named() {
    let mut good = report();
    good.results[0].evidence.backends = Some(backends(BACKENDS_MAX, SIGHTINGS_MAX));
    good.validate(NOW).unwrap();

    assert_eq!(
        error_of(|r| r.results[0].evidence.backends = Some(backends(BACKENDS_MAX + 1, 0))),
        "invalid report: results[0].evidence.backends.backends: a list of 17 is not allowed; \
         expected at most 16 backends"
    );
    assert_eq!(
        error_of(|r| {
            let mut evidence = backends(2, 1);
            evidence.backends[1] = backends(1, SIGHTINGS_MAX + 1).backends[0].clone();
            r.results[0].evidence.backends = Some(evidence);
        }),
        "invalid report: results[0].evidence.backends.backends[1].seen_at: a list of 9 is not \
         allowed; expected at most 8 sightings"
    );
}

#[test]
fn all_problems_are_listed_together() {
    let msg = error_of(|r| {
        r.interval_s = 0;
        r.results[0].status = Some(42);
    });
    assert_eq!(
        msg,
        "invalid report: interval_s: 0 is not allowed; expected 1 to 86400 seconds; \
         results[0].status: 42 is not allowed; expected an HTTP status from 100 to 599"
    );
}

#[test]
fn long_values_are_shortened_in_messages() {
    let msg = error_of(|r| r.server = "x".repeat(300).into());
    assert!(msg.contains("... (300 characters)"), "{msg}");
    assert!(msg.len() < 300, "{msg}");
}

#[test]
fn server_names() {
    for good in ["web-01", "a", "host.example.com", "db_2"] {
        assert!(is_valid_server_name(good), "{good}");
    }
    for bad in ["", "a b", "x/y", "ümlaut", &"a".repeat(254)] {
        assert!(!is_valid_server_name(bad), "{bad}");
    }
}
