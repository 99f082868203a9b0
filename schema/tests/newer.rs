//! Ids of a newer version on the wire: kept as they came, up to a bound; past it, the enum's
//! catch-all. A test binary of its own: the table of kept ids is the process's.

use causeway_schema::{Cause, DnsOutcome, FailureKind};

fn cause(id: &str) -> Result<Cause, serde_json::Error> {
    serde_json::from_value(serde_json::json!(id))
}

#[test]
fn newer_ids_round_trip_until_the_table_is_full() {
    let tls = cause("tls_certificate_revoked").unwrap();
    assert!(matches!(tls, Cause::Newer(_)), "{tls:?}");
    assert_eq!(tls.id(), "tls_certificate_revoked");
    assert_eq!(tls.known(), Cause::Unknown);
    assert_eq!(
        serde_json::to_value(tls).unwrap(),
        "tls_certificate_revoked"
    );
    // Known ids stay themselves.
    assert_eq!(cause("oom_kill").unwrap(), Cause::OomKill);
    let kind: FailureKind = serde_json::from_value(serde_json::json!("tls_alert")).unwrap();
    assert_eq!(kind.id(), "tls_alert");
    let outcome: DnsOutcome = serde_json::from_value(serde_json::json!("malformed")).unwrap();
    assert_eq!(outcome.id(), "malformed");

    // Not an id: refused, named.
    let err = cause("Tls Expired").unwrap_err().to_string();
    assert!(
        err.contains("cause id \"Tls Expired\" is not allowed"),
        "{err}"
    );

    // A flood of made-up ids fills the table, then reads as the catch-all: accepted, bounded.
    for n in 0..300 {
        cause(&format!("made_up_{n}")).unwrap();
    }
    assert_eq!(cause("one_too_many").unwrap(), Cause::Unknown);
    let kind: FailureKind = serde_json::from_value(serde_json::json!("kind_too_many")).unwrap();
    assert_eq!(kind, FailureKind::Protocol);
    // What was kept before still reads as it came.
    assert_eq!(
        cause("tls_certificate_revoked").unwrap().id(),
        "tls_certificate_revoked"
    );
}
