//! Round trips of the wire format, and compatibility with reports of other versions.

use causeway_schema::*;

fn sample() -> Report {
    let scenario = include_str!("scenarios/http-502.toml");
    let table: toml::Table = toml::from_str(scenario).unwrap();
    let mut failed: CheckResult = table["check"].clone().try_into().unwrap();
    failed.diagnosis = classify(&failed);
    let ok: CheckResult = toml::from_str::<toml::Table>(include_str!("scenarios/healthy.toml"))
        .unwrap()["check"]
        .clone()
        .try_into()
        .unwrap();
    Report {
        schema_version: SCHEMA_VERSION,
        report_id: causeway_schema::ReportId(
            "6f1c2b9e-3a4d-4c8e-9f00-112233445566".parse().unwrap(),
        ),
        server: "web-01".into(),
        probe: ProbeInfo {
            host: "web-01".into(),
            version: "0.1.0".into(),
        },
        started_at_ms: 1_763_900_000_000,
        interval_s: 30,
        results: vec![ok, failed],
        resolutions: vec![Resolution {
            canary: "site".into(),
            name: "canary.test".into(),
            resolvers: vec![ResolverOutcome {
                resolver: "system".into(),
                server: "10.77.0.53:53".parse().unwrap(),
                queries: vec![DnsQuery {
                    record_type: causeway_schema::RecordType::A,
                    outcome: DnsOutcome::Answer,
                    rcode: Some(causeway_schema::Rcode::NOERROR),
                    answers: vec![DnsAnswer {
                        address: "10.77.0.2".parse().unwrap(),
                        ttl: 300,
                    }],
                    elapsed_ms: 0.8,
                    error: None,
                }],
                reachability: Some(Reachability {
                    icmp: ReachProbe {
                        outcome: ReachOutcome::Reply,
                        elapsed_ms: 0.3,
                        detail: None,
                    },
                    tcp: ReachProbe {
                        outcome: ReachOutcome::NotTested,
                        elapsed_ms: 0.0,
                        detail: Some("skipped".into()),
                    },
                }),
                condition: None,
            }],
        }],
        spool: SpoolStats {
            queued: 2,
            dropped_total: 0,
        },
        host: None,
        cycle: None,
    }
}

#[test]
fn json_round_trip_keeps_everything() {
    let report = sample();
    let json = serde_json::to_string(&report).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
    assert!(json.contains(r#""cause":"http_error""#), "{json}");
    assert!(json.contains(r#""kind":"unexpected_status""#), "{json}");
    assert!(json.contains(r#""outcome":"answer""#), "{json}");
}

#[test]
fn a_newer_probe_s_extra_fields_are_ignored() {
    let mut value = serde_json::to_value(sample()).unwrap();
    value["future_field"] = serde_json::json!({"x": 1});
    value["results"][1]["evidence"]["packets"] = serde_json::json!([1, 2, 3]);
    let back: Report = serde_json::from_value(value).unwrap();
    assert_eq!(back, sample());
}

#[test]
fn an_older_probe_without_optional_fields_is_read() {
    let mut value = serde_json::to_value(sample()).unwrap();
    let obj = value.as_object_mut().unwrap();
    obj.remove("resolutions");
    obj.remove("spool");
    value["results"][0]
        .as_object_mut()
        .unwrap()
        .remove("evidence");
    let back: Report = serde_json::from_value(value).unwrap();
    assert!(back.resolutions.is_empty());
    assert_eq!(back.spool, SpoolStats::default());
}

#[test]
fn cause_of_a_check() {
    let report = sample();
    assert_eq!(report.results[0].cause(), None);
    assert_eq!(report.results[1].cause(), Some(Cause::HttpError));
    let mut unclassified = report.results[1].clone();
    unclassified.diagnosis = None;
    assert_eq!(unclassified.cause(), Some(Cause::Unknown));
}

/// The check of a scenario file, as the probe records it.
fn scenario_check(text: &str) -> CheckResult {
    toml::from_str::<toml::Table>(text).unwrap()["check"]
        .clone()
        .try_into()
        .unwrap()
}

#[test]
fn backend_evidence_round_trips() {
    let mut report = sample();
    let mut moved = scenario_check(include_str!("scenarios/backend-moved.toml"));
    moved.diagnosis = classify(&moved);
    let mut swapped = scenario_check(include_str!("scenarios/backend-swap.toml"));
    swapped.diagnosis = classify(&swapped);
    let mut unknown = scenario_check(include_str!("scenarios/backend-unknown-identity.toml"));
    unknown.diagnosis = classify(&unknown);
    report.results.extend([moved, swapped, unknown]);
    let json = serde_json::to_string(&report).unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
    assert!(json.contains(r#""outcome":"refused""#), "{json}");
    assert!(json.contains(r#""by":["answer","mac"]"#), "{json}");
    assert!(json.contains(r#""uptime_s":42"#), "{json}");
    assert!(json.contains(r#""configured":"10.88.0.12:80""#), "{json}");

    // What is absent is left out, not written as null or [].
    let value = serde_json::to_value(&report.results[4].evidence.backends).unwrap();
    let backend = value["backends"][0].as_object().unwrap();
    assert!(!backend.contains_key("known"), "{backend:?}");
    assert!(value.get("reboot").is_none(), "{value}");
    let direct = backend["direct"].as_object().unwrap();
    assert!(!direct.contains_key("answer"), "{direct:?}");
}

#[test]
fn ids_are_what_serde_writes() {
    for outcome in DirectOutcome::ALL {
        assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.id());
        let back: DirectOutcome = serde_json::from_value(outcome.id().into()).unwrap();
        assert_eq!(back, outcome);
    }
    for by in SightingBy::ALL {
        assert_eq!(serde_json::to_value(by).unwrap(), by.id());
        assert_eq!(
            serde_json::from_value::<SightingBy>(by.id().into()).unwrap(),
            by
        );
    }
    for kind in FailureKind::ALL {
        assert_eq!(serde_json::to_value(kind).unwrap(), kind.id());
    }
    for outcome in DnsOutcome::ALL {
        assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.id());
    }
    for outcome in ReachOutcome::ALL {
        assert_eq!(serde_json::to_value(outcome).unwrap(), outcome.id());
    }
}

#[test]
fn the_serving_rule_is_on_the_wire_and_read_back_from_older_probes_sentences() {
    let old = |serving: &str| {
        let json = serde_json::json!({
            "port": 80, "serving": serving, "poll_ms": 200, "owners_visible": true,
            "listeners": [],
        });
        serde_json::from_value::<ListenerEvidence>(json)
            .unwrap()
            .rule
    };
    assert_eq!(
        old(
            "unit nginx.service: pid 812 nginx in cgroup /system.slice/nginx.service, and its descendants"
        ),
        ServingRule::Unit("nginx.service".into())
    );
    assert_eq!(
        old("process nginx: none of it holds the port"),
        ServingRule::Process("nginx".into())
    );
    assert_eq!(
        old("the long-lived owner of port 80: uid 33"),
        ServingRule::LongLived
    );
    assert_eq!(old(""), ServingRule::LongLived);

    // A new probe writes the rule beside the sentence, which older collectors still read.
    let mut ev: ListenerEvidence = serde_json::from_value(serde_json::json!({
        "port": 80, "serving": "process nginx: none of it holds the port", "poll_ms": 200,
        "owners_visible": true, "listeners": [],
    }))
    .unwrap();
    ev.rule = ServingRule::Unit("nginx.service".into());
    let json = serde_json::to_value(&ev).unwrap();
    assert_eq!(json["rule"], serde_json::json!({"unit": "nginx.service"}));
    assert!(json["serving"].is_string());
    assert_eq!(
        serde_json::from_value::<ListenerEvidence>(json).unwrap(),
        ev
    );
    let long_lived = serde_json::to_value(ServingRule::LongLived).unwrap();
    assert_eq!(long_lived, serde_json::json!("long_lived"));
}
