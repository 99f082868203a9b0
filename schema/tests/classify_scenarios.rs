//! The classifier on recorded checks: each scenario file holds a check (as the probe records
//! it, without a diagnosis) and the diagnosis it must get.

use causeway_schema::{Cause, CheckResult, classify};
use serde::Deserialize;

mod support;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    check: CheckResult,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    cause: Option<Cause>,
    #[serde(default)]
    contributing: Vec<Cause>,
    explanation: Option<String>,
}

macro_rules! scenarios {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_str!(concat!("scenarios/", $name, ".toml")))),*]
    };
}

const SCENARIOS: &[(&str, &str)] = &scenarios![
    "refused",
    "connect-timeout",
    "response-timeout",
    "reset",
    "tls",
    "tls-expired",
    "tls-not-yet-valid",
    "tls-name-mismatch",
    "tls-self-signed",
    "tls-incomplete-chain",
    "tls-private-ca",
    "tls-protocol-mismatch",
    "tls-sni-filtered",
    "tls-handshake-reset",
    "tls-reset-untraced",
    "http-502",
    "body-mismatch",
    "closed-without-response",
    "no-address",
    "healthy",
    "rst-refused-traced",
    "rst-non-serving-process",
    "rst-middlebox-on-syn",
    "rst-middlebox-after-request",
    "rst-serving-only",
    "rst-syn-while-listening",
    "rst-rogue-long-gone",
    "rst-same-name-same-cgroup",
    "queued-on-non-serving-process",
    "queued-other-listener-after-the-syn",
    "dns-name-missing",
    "dns-no-address-blocked",
    "dns-disputed-address",
    "backend-moved",
    "backend-moved-by-name",
    "backend-swap",
    "backend-swap-before-the-search",
    "backend-replica-down",
    "backend-moved-and-down",
    "backend-down",
    "backend-down-silent",
    "backend-answers-like-before",
    "backend-unknown-identity",
    "backend-on-other-failure",
    "backend-on-other-status",
    "host-oom-serving",
    "host-oom-serving-by-cgroup",
    "host-oom-other-process",
    "host-oom-cgroup-other-process",
    "host-oom-outside-window",
    "host-overload-timeout",
    "host-overload-refused",
    "host-leak-oom",
    "host-rebooted-refused",
    "host-calm",
];

#[test]
fn every_scenario_file_is_listed() {
    support::assert_every_file_listed(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios"),
        SCENARIOS,
    );
}

#[test]
fn scenarios_get_their_cause() {
    let mut failures = Vec::new();
    for (name, text) in SCENARIOS {
        let scenario: Scenario =
            toml::from_str(text).unwrap_or_else(|e| panic!("scenario {name}: {e}"));
        let got = classify(&scenario.check);
        let got_cause = got.as_ref().map(|d| d.cause);
        if got_cause != scenario.expect.cause {
            failures.push(format!(
                "{name}: cause {got_cause:?}, want {:?}",
                scenario.expect.cause
            ));
        }
        let contributing = got
            .as_ref()
            .map(|d| d.contributing.clone())
            .unwrap_or_default();
        if contributing != scenario.expect.contributing {
            failures.push(format!(
                "{name}: contributing {contributing:?}, want {:?}",
                scenario.expect.contributing
            ));
        }
        if let Some(want) = &scenario.expect.explanation {
            let got = got.as_ref().map(|d| d.explanation.as_str()).unwrap_or("");
            if got != want {
                failures.push(format!("{name}: explanation {got:?}, want {want:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
