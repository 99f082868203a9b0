//! Probe tokens: `cw_` and 64 hex digits (32 random bytes). Only their SHA-256 is stored, so
//! the database (or a backup of it) cannot be used to send reports.

use std::collections::HashMap;
use std::sync::Mutex;

use causeway_schema::{SERVER_NAME_RULE, is_valid_server_name};
use sha2::{Digest, Sha256};
use sqlx::AnyPool;

/// What every token starts with, so a leaked one is recognisable (secret scanners, logs).
pub const TOKEN_PREFIX: &str = "cw_";
/// Hex digits of the hash shown by `token list`: enough to tell tokens apart, useless to guess.
const HASH_PREFIX_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("invalid server name {name:?}: expected {SERVER_NAME_RULE}")]
    InvalidServerName { name: String },
    #[error("unknown server {name:?}: it has no tokens (see `token list`)")]
    UnknownServer { name: String },
    #[error("cannot read random bytes for a token: {0}")]
    Random(getrandom::Error),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// A token that was just created: the only moment its text exists.
#[derive(Debug)]
pub struct NewToken {
    pub server: String,
    pub token: String,
    pub server_created: bool,
}

/// One stored token, as `token list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TokenInfo {
    pub server: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    pub hash_prefix: String,
}

/// A token that authenticated: the server it reports for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub server_id: i64,
    pub server: String,
}

/// A fresh token from the OS's random source.
pub fn generate() -> Result<String, TokenError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(TokenError::Random)?;
    Ok(format!("{TOKEN_PREFIX}{}", hex(&bytes)))
}

/// The hex SHA-256 of a token's text: what the database stores and looks up.
pub fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Creates a token for `server`, creating the server if it is new.
pub async fn add(pool: &AnyPool, server: &str, now_ms: i64) -> Result<NewToken, TokenError> {
    if !is_valid_server_name(server) {
        return Err(TokenError::InvalidServerName {
            name: server.to_owned(),
        });
    }
    let token = generate()?;
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO servers (name, created_at_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(server)
    .bind(now_ms)
    .execute(&mut *tx)
    .await?;
    let server_id: i64 = sqlx::query_scalar("SELECT id FROM servers WHERE name = $1")
        .bind(server)
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO tokens (server_id, sha256, created_at_ms) VALUES ($1, $2, $3)")
        .bind(server_id)
        .bind(hash(&token))
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(NewToken {
        server: server.to_owned(),
        token,
        server_created: inserted.rows_affected() == 1,
    })
}

/// Every token, by server then age.
pub async fn list(pool: &AnyPool) -> Result<Vec<TokenInfo>, TokenError> {
    let rows = sqlx::query_as::<_, TokenInfo>(
        "SELECT s.name AS server, t.created_at_ms, t.revoked_at_ms,
                substr(t.sha256, 1, $1) AS hash_prefix
         FROM tokens t JOIN servers s ON s.id = t.server_id
         ORDER BY s.name, t.created_at_ms, t.id",
    )
    .bind(HASH_PREFIX_LEN as i64)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Revokes every active token of `server`; returns how many were active.
pub async fn revoke(pool: &AnyPool, server: &str, now_ms: i64) -> Result<u64, TokenError> {
    let mut tx = pool.begin().await?;
    let server_id: Option<i64> = sqlx::query_scalar("SELECT id FROM servers WHERE name = $1")
        .bind(server)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(server_id) = server_id else {
        return Err(TokenError::UnknownServer {
            name: server.to_owned(),
        });
    };
    let done = sqlx::query(
        "UPDATE tokens SET revoked_at_ms = $1 WHERE server_id = $2 AND revoked_at_ms IS NULL",
    )
    .bind(now_ms)
    .bind(server_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

/// Tokens that authenticated in the last [`Cache::TTL`], by hash: a probe's report then costs
/// no database read before its write. A token revoked (by `token revoke`, another process)
/// keeps working until its entry is that old.
#[derive(Debug, Default)]
pub struct Cache {
    entries: Mutex<HashMap<String, (Authenticated, i64)>>,
}

impl Cache {
    /// How long a token stays trusted without a look at the database.
    pub const TTL_MS: i64 = 10_000;
    /// Entries kept at most (a fleet's tokens, with room): past it the cache starts again.
    const MAX: usize = 100_000;

    fn get(&self, hash: &str, now_ms: i64) -> Option<Authenticated> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(hash)
            .filter(|(_, at)| (0..Cache::TTL_MS).contains(&(now_ms - at)))
            .map(|(auth, _)| auth.clone())
    }

    fn put(&self, hash: String, auth: Authenticated, now_ms: i64) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= Cache::MAX {
            entries.clear();
        }
        entries.insert(hash, (auth, now_ms));
    }
}

/// [`authenticate`] through `cache`: a token seen in the last [`Cache::TTL_MS`] is not looked up.
pub async fn authenticate_cached(
    cache: &Cache,
    pool: &AnyPool,
    token: &str,
    now_ms: i64,
) -> Result<Option<Authenticated>, sqlx::Error> {
    let hash = hash(token);
    if let Some(auth) = cache.get(&hash, now_ms) {
        return Ok(Some(auth));
    }
    let found = lookup(pool, &hash).await?;
    if let Some(auth) = &found {
        cache.put(hash, auth.clone(), now_ms);
    }
    Ok(found)
}

/// The server a presented token belongs to, if the token is known and not revoked.
///
/// The lookup is by hash, so its timing reveals nothing about the stored tokens' text.
pub async fn authenticate(
    pool: &AnyPool,
    token: &str,
) -> Result<Option<Authenticated>, sqlx::Error> {
    lookup(pool, &hash(token)).await
}

async fn lookup(pool: &AnyPool, hash: &str) -> Result<Option<Authenticated>, sqlx::Error> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "SELECT s.id, s.name FROM tokens t JOIN servers s ON s.id = t.server_id
         WHERE t.sha256 = $1 AND t.revoked_at_ms IS NULL",
    )
    .bind(hash)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(server_id, server)| Authenticated { server_id, server }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape() {
        let t = generate().unwrap();
        assert_eq!(t.len(), 3 + 64);
        assert!(t.starts_with("cw_"));
        assert!(t[3..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(t, generate().unwrap());
    }

    #[test]
    fn hash_is_sha256_hex() {
        // echo -n abc | sha256sum
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
