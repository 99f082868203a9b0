//! Share links: a secret in a URL (`/s/cws_...`) that shows one server's page, badge and
//! summary to whoever holds it, read-only, and nothing else of the collector. Only the
//! secret's SHA-256 is stored, so a copy of the database opens no page.

use causeway_schema::{SERVER_NAME_RULE, is_valid_server_name};
use sqlx::AnyPool;

use crate::tokens;

/// What every share secret starts with, so a leaked one is recognisable.
pub const SHARE_PREFIX: &str = "cws_";

#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    #[error("invalid server name {name:?}: expected {SERVER_NAME_RULE}")]
    InvalidServerName { name: String },
    #[error("unknown server {name:?}: create it first with `token add {name}`")]
    UnknownServer { name: String },
    #[error("{0}")]
    Token(#[from] tokens::TokenError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// A new link's secret: shown once.
pub async fn add(pool: &AnyPool, server: &str, now_ms: i64) -> Result<String, ShareError> {
    if !is_valid_server_name(server) {
        return Err(ShareError::InvalidServerName {
            name: server.to_owned(),
        });
    }
    let server_id: Option<i64> = sqlx::query_scalar("SELECT id FROM servers WHERE name = $1")
        .bind(server)
        .fetch_optional(pool)
        .await?;
    let server_id = server_id.ok_or_else(|| ShareError::UnknownServer {
        name: server.to_owned(),
    })?;
    let secret = format!(
        "{SHARE_PREFIX}{}",
        &tokens::generate()?[tokens::TOKEN_PREFIX.len()..]
    );
    sqlx::query("INSERT INTO share_links (server_id, sha256, created_at_ms) VALUES ($1, $2, $3)")
        .bind(server_id)
        .bind(tokens::hash(&secret))
        .bind(now_ms)
        .execute(pool)
        .await?;
    Ok(secret)
}

/// Revokes every link of `server`; how many were active.
pub async fn revoke(pool: &AnyPool, server: &str, now_ms: i64) -> Result<u64, ShareError> {
    let done = sqlx::query(
        "UPDATE share_links SET revoked_at_ms = $1
         WHERE revoked_at_ms IS NULL AND server_id = (SELECT id FROM servers WHERE name = $2)",
    )
    .bind(now_ms)
    .bind(server)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// The server a presented secret opens, if it is known and not revoked.
pub async fn open(pool: &AnyPool, secret: &str) -> Result<Option<String>, sqlx::Error> {
    if !secret.starts_with(SHARE_PREFIX) {
        return Ok(None);
    }
    sqlx::query_scalar(
        "SELECT s.name FROM share_links l JOIN servers s ON s.id = l.server_id
         WHERE l.sha256 = $1 AND l.revoked_at_ms IS NULL",
    )
    .bind(tokens::hash(secret))
    .fetch_optional(pool)
    .await
}
