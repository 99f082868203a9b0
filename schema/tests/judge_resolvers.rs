//! The per-resolver verdicts on recorded outcomes: each file in tests/resolvers holds what
//! every resolver said about one name (as the probe records it), the requests made to the
//! addresses, and per resolver the cause and explanation it must get (none: healthy).

use causeway_schema::{AddressCheck, Cause, ResolverOutcome, judge_resolvers};
use serde::Deserialize;

mod support;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    name: String,
    #[serde(default)]
    checks: Vec<Check>,
    resolvers: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    address: std::net::IpAddr,
    failure: Option<String>,
}

#[derive(Deserialize)]
struct Case {
    #[serde(flatten)]
    outcome: ResolverOutcome,
    expect_cause: Option<Cause>,
    expect_explanation: Option<String>,
}

macro_rules! scenarios {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("resolvers/", $name, ".toml")))),*]
    };
}

const SCENARIOS: &[(&str, &str)] = &scenarios![
    "healthy",
    "upstream-block-refused",
    "upstream-block-silent",
    "unreachable",
    "not-tested",
    "mismatch-by-service",
    "mismatch-majority",
    "mismatch-no-agreement",
    "name-missing-everywhere",
    "name-missing-on-one",
    "malformed",
];

#[test]
fn every_scenario_file_is_listed() {
    support::assert_every_file_listed(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/resolvers"),
        SCENARIOS,
    );
}

#[test]
fn every_resolver_gets_its_verdict() {
    let mut failures = Vec::new();
    for (file, text) in SCENARIOS {
        let s: Scenario = toml::from_str(text).unwrap_or_else(|e| panic!("scenario {file}: {e}"));
        let outcomes: Vec<ResolverOutcome> =
            s.resolvers.iter().map(|c| c.outcome.clone()).collect();
        let checks: Vec<AddressCheck<'_>> = s
            .checks
            .iter()
            .map(|c| AddressCheck {
                address: c.address,
                failure: c.failure.as_deref(),
            })
            .collect();
        let verdicts = judge_resolvers(&s.name, &outcomes, &checks);
        assert_eq!(verdicts.len(), outcomes.len(), "{file}");
        for (case, verdict) in s.resolvers.iter().zip(&verdicts) {
            let who = &case.outcome.resolver;
            let got = verdict.as_ref().map(|d| d.cause);
            if got != case.expect_cause {
                failures.push(format!(
                    "{file} {who}: cause {got:?}, want {:?}",
                    case.expect_cause
                ));
            }
            let explanation = verdict.as_ref().map(|d| d.explanation.as_str());
            if explanation != case.expect_explanation.as_deref() {
                failures.push(format!(
                    "{file} {who}: explanation {explanation:?}, want {:?}",
                    case.expect_explanation
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
