//! The certificates a server's https canaries served (`tls_certificates`, kept by
//! `ingest::certificates`), for `why` and the page: which leaf, its dates, and whether it
//! replaced another.

use sqlx::AnyPool;

use super::ReadError;
use crate::views::CertificateView;

/// Certificates per request: a canary renewed every 60 days over the hourly history's
/// retention is a handful; this bounds a server with many canaries.
pub const MAX_CERTIFICATES: u32 = 200;

#[derive(sqlx::FromRow)]
struct Row {
    canary: String,
    url: String,
    sha256: String,
    subject: String,
    not_after_ms: i64,
    chain_not_after_ms: i64,
    first_seen_at_ms: i64,
    last_seen_at_ms: i64,
    replaced_another: i64,
}

/// A server's certificates seen since `since_ms`, by canary, the oldest first.
pub(super) async fn certificates_of(
    pool: &AnyPool,
    server_id: i64,
    since_ms: i64,
) -> Result<Vec<CertificateView>, ReadError> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT c.name AS canary, c.url, t.sha256, t.subject, t.not_after_ms,
                t.chain_not_after_ms, t.first_seen_at_ms, t.last_seen_at_ms,
                CASE WHEN EXISTS (SELECT 1 FROM tls_certificates o
                                  WHERE o.canary_id = t.canary_id
                                    AND o.first_seen_at_ms < t.first_seen_at_ms)
                     THEN 1 ELSE 0 END AS replaced_another
         FROM tls_certificates t JOIN canaries c ON c.id = t.canary_id
         WHERE t.server_id = $1 AND t.last_seen_at_ms >= $2
         ORDER BY c.name, c.url, t.first_seen_at_ms LIMIT $3",
    )
    .bind(server_id)
    .bind(since_ms)
    .bind(i64::from(MAX_CERTIFICATES))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| CertificateView {
            canary: r.canary,
            url: r.url,
            sha256: r.sha256,
            subject: r.subject,
            not_after_ms: r.not_after_ms,
            chain_not_after_ms: r.chain_not_after_ms,
            first_seen_at_ms: r.first_seen_at_ms,
            last_seen_at_ms: r.last_seen_at_ms,
            replaced_another: r.replaced_another != 0,
        })
        .collect())
}
