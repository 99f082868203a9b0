//! The certificates each https canary served: a row per canary and leaf fingerprint
//! (`tls_certificates`), with when it was first and last seen and the earliest expiry of the
//! chain. Healthy checks carry the chain compactly, so this follows every check, not only the
//! failed ones. A canary's rows after its first are the page's "new certificate" notes; its
//! newest row is /metrics' earliest expiry.
//!
//! A row's `last_seen_at_ms` is written at most once a minute per certificate (the server's
//! state remembers when), so a probe checking every second costs no write per check.

use causeway_schema::CheckResult;

use super::IngestError;
use super::server::ServerState;
use super::sql::{Conn, values};

/// How stale a certificate's `last_seen_at_ms` may be before it is written again.
const WRITE_EVERY_MS: i64 = 60_000;

const UPSERT: &str = "INSERT INTO tls_certificates (canary_id, sha256, server_id, subject,
                                   not_after_ms, chain_not_after_ms, first_seen_at_ms,
                                   last_seen_at_ms)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
     ON CONFLICT (canary_id, sha256) DO UPDATE SET
         first_seen_at_ms = least(tls_certificates.first_seen_at_ms, excluded.first_seen_at_ms),
         last_seen_at_ms = greatest(tls_certificates.last_seen_at_ms, excluded.last_seen_at_ms),
         chain_not_after_ms = excluded.chain_not_after_ms";

/// Keeps the leaf of every check that carries a chain; `canary_ids` are the results' canaries,
/// in order.
pub(super) fn observe(
    conn: &mut dyn Conn,
    state: &mut ServerState,
    server_id: i64,
    results: &[CheckResult],
    canary_ids: &[i64],
) -> Result<(), IngestError> {
    for (r, &canary_id) in results.iter().zip(canary_ids) {
        let Some(tls) = &r.evidence.tls else {
            continue;
        };
        let (Some(leaf), Some(earliest)) = (tls.chain.first(), tls.earliest_expiry()) else {
            continue;
        };
        let key = (canary_id, leaf.sha256.clone());
        let at = r.started_at_ms;
        if state
            .certificates
            .get(&key)
            .is_some_and(|&written| (at - written).abs() < WRITE_EVERY_MS)
        {
            continue;
        }
        conn.execute(
            UPSERT,
            values![
                canary_id,
                &leaf.sha256,
                server_id,
                &leaf.subject,
                leaf.not_after_ms,
                earliest.not_after_ms,
                at,
            ],
        )?;
        state.certificates.insert(key, at);
    }
    Ok(())
}
