//! Who may read: people with an account (a password hashed with argon2id, a session cookie
//! after they sign in) and programs with a read token (`probectl`, Prometheus). Probe tokens
//! ([`crate::tokens`]) only send reports; share links ([`crate::share`]) open one server's
//! customer page.
//!
//! Sessions and read tokens are random secrets of which only the SHA-256 is stored, as for
//! probe tokens: the database, or a backup of it, opens nothing.

use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sqlx::AnyPool;
use tokio::sync::Semaphore;

use crate::tokens::{self, hash};

/// What every read token starts with, so a leaked one is recognisable.
pub const READ_TOKEN_PREFIX: &str = "cwr_";
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "causeway_session";
/// How long a session lasts after signing in.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(14 * 86_400);
/// The shortest password accepted.
pub const MIN_PASSWORD: usize = 10;
/// Password checks at once: each costs about 20 MiB and tens of milliseconds (argon2id's
/// defaults), so a flood of sign-ins cannot take every core or much memory.
const CHECKS_AT_ONCE: usize = 2;
/// How long "are there any credentials" is remembered (see [`Mode::LoopbackUntilCredentials`]).
const CREDENTIALS_TTL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(
        "invalid user name {name:?}: expected 1 to 64 characters of letters, digits, '.', '-', '_' and '@'"
    )]
    InvalidName { name: String },
    #[error(
        "invalid read token name {name:?}: expected 1 to 64 characters of letters, digits, '.', '-', '_' and '@'"
    )]
    InvalidTokenName { name: String },
    #[error("the password is {len} characters long: at least {MIN_PASSWORD} are required")]
    ShortPassword { len: usize },
    #[error("invalid role {role:?}: expected admin or viewer (read-only)")]
    InvalidRole { role: String },
    #[error("user {name:?} exists already (remove it first to set a new password)")]
    UserExists { name: String },
    #[error("no user {name:?} (see `user list`)")]
    NoSuchUser { name: String },
    #[error("no read token named {name:?} (see `read-token list`)")]
    NoSuchToken { name: String },
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("cannot read the password: {0}")]
    ReadPassword(#[source] std::io::Error),
    #[error("the two passwords differ")]
    PasswordsDiffer,
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
    #[error(transparent)]
    Token(#[from] tokens::TokenError),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// What a user may do: every page and read route needs [`Role::Viewer`] or more. Admin is for
/// changes made over HTTP; there are none yet (users, tokens and share links are made with the
/// collector's CLI on its host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub fn id(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }

    pub fn parse(text: &str) -> Result<Role, AccessError> {
        match text {
            "admin" => Ok(Role::Admin),
            "viewer" => Ok(Role::Viewer),
            other => Err(AccessError::InvalidRole {
                role: other.to_owned(),
            }),
        }
    }
}

/// A user as `user list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UserInfo {
    pub name: String,
    pub role: String,
    pub created_at_ms: i64,
}

/// A read token as `read-token list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReadTokenInfo {
    pub name: String,
    pub created_at_ms: i64,
    pub revoked_at_ms: Option<i64>,
    /// 1 when it may also write (silences).
    pub can_write: i64,
}

/// Whether reads need a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Anyone may read (`--open`).
    Open,
    /// A session or a read token is needed.
    Required,
    /// On a loopback address without `--open`: open while no user and no read token exist
    /// (the first steps on one machine), required from the first one made.
    LoopbackUntilCredentials,
}

/// The access rule of a running collector.
#[derive(Debug)]
pub struct Access {
    pub mode: Mode,
    /// Session cookies are marked `Secure` (the collector serves TLS itself).
    pub secure_cookies: bool,
    /// Whether any credential exists, and when that was read.
    credentials: Mutex<Option<(Instant, bool)>>,
}

impl Access {
    pub fn new(mode: Mode) -> Access {
        Access {
            mode,
            secure_cookies: false,
            credentials: Mutex::new(None),
        }
    }

    pub fn with_secure_cookies(mut self, secure: bool) -> Access {
        self.secure_cookies = secure;
        self
    }

    /// Whether a request must show a credential.
    pub async fn required(&self, pool: &AnyPool) -> Result<bool, sqlx::Error> {
        match self.mode {
            Mode::Open => Ok(false),
            Mode::Required => Ok(true),
            Mode::LoopbackUntilCredentials => {
                let cached = *self.credentials.lock().unwrap_or_else(|p| p.into_inner());
                if let Some((at, exist)) = cached
                    && at.elapsed() < CREDENTIALS_TTL
                {
                    return Ok(exist);
                }
                let exist = credentials_exist(pool).await?;
                *self.credentials.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), exist));
                Ok(exist)
            }
        }
    }
}

/// Whether a user or a valid read token exists.
pub async fn credentials_exist(pool: &AnyPool) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT (SELECT COUNT(*) FROM users)
              + (SELECT COUNT(*) FROM read_tokens WHERE revoked_at_ms IS NULL)",
    )
    .fetch_one(pool)
    .await?;
    Ok(n > 0)
}

/// A user's or a read token's name: 1 to 64 of letters, digits, `.`, `-`, `_` and `@`.
fn check_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'@'))
}

/// Adds user `name` with `password` and `role`.
pub async fn add_user(
    pool: &AnyPool,
    name: &str,
    password: &str,
    role: Role,
    now_ms: i64,
) -> Result<(), AccessError> {
    if !check_name(name) {
        return Err(AccessError::InvalidName {
            name: name.to_owned(),
        });
    }
    let len = password.chars().count();
    if len < MIN_PASSWORD {
        return Err(AccessError::ShortPassword { len });
    }
    let password = password.to_owned();
    let hashed = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| AccessError::Hash(e.to_string()))??;
    let inserted = sqlx::query(
        "INSERT INTO users (name, password, role, created_at_ms) VALUES ($1, $2, $3, $4)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(hashed)
    .bind(role.id())
    .bind(now_ms)
    .execute(pool)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(AccessError::UserExists {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// Removes user `name` and ends their sessions.
pub async fn remove_user(pool: &AnyPool, name: &str) -> Result<(), AccessError> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM sessions WHERE user_id IN (SELECT id FROM users WHERE name = $1)")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    let removed = sqlx::query("DELETE FROM users WHERE name = $1")
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    if removed.rows_affected() == 0 {
        return Err(AccessError::NoSuchUser {
            name: name.to_owned(),
        });
    }
    Ok(())
}

pub async fn list_users(pool: &AnyPool) -> Result<Vec<UserInfo>, AccessError> {
    Ok(
        sqlx::query_as("SELECT name, role, created_at_ms FROM users ORDER BY name")
            .fetch_all(pool)
            .await?,
    )
}

fn hash_password(password: &str) -> Result<String, AccessError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AccessError::Hash(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccessError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccessError::Hash(e.to_string()))
}

/// A signed-in user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub role: Role,
}

static CHECKS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(CHECKS_AT_ONCE));
/// Checked when the name is unknown, so that an unknown name takes as long as a wrong password.
static DUMMY: LazyLock<String> =
    LazyLock::new(|| hash_password("not a password of anyone").unwrap_or_default());

/// The user `name` when `password` is theirs.
pub async fn verify_password(
    pool: &AnyPool,
    name: &str,
    password: &str,
) -> Result<Option<User>, AccessError> {
    let row: Option<(i64, String, String)> =
        sqlx::query_as("SELECT id, password, role FROM users WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    let stored = row.as_ref().map_or_else(|| DUMMY.clone(), |r| r.1.clone());
    let password = password.to_owned();
    let _turn = CHECKS
        .acquire()
        .await
        .map_err(|e| AccessError::Hash(e.to_string()))?;
    let matches = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .map_err(|e| AccessError::Hash(e.to_string()))?;
    Ok(match row {
        Some((id, _, role)) if matches => Some(User {
            id,
            name: name.to_owned(),
            role: Role::parse(&role).unwrap_or(Role::Viewer),
        }),
        _ => None,
    })
}

/// Starts a session for `user`; returns the cookie's secret. Expired sessions go meanwhile.
pub async fn start_session(
    pool: &AnyPool,
    user: &User,
    now_ms: i64,
) -> Result<String, AccessError> {
    let secret = tokens::generate()?;
    let lifetime = i64::try_from(SESSION_LIFETIME.as_millis()).unwrap_or(i64::MAX);
    sqlx::query("DELETE FROM sessions WHERE expires_at_ms <= $1")
        .bind(now_ms)
        .execute(pool)
        .await?;
    sqlx::query(
        "INSERT INTO sessions (sha256, user_id, created_at_ms, expires_at_ms)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(hash(&secret))
    .bind(user.id)
    .bind(now_ms)
    .bind(now_ms.saturating_add(lifetime))
    .execute(pool)
    .await?;
    Ok(secret)
}

/// The user of a live session.
pub async fn session_user(
    pool: &AnyPool,
    secret: &str,
    now_ms: i64,
) -> Result<Option<User>, sqlx::Error> {
    let row: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT u.id, u.name, u.role FROM sessions s JOIN users u ON u.id = s.user_id
         WHERE s.sha256 = $1 AND s.expires_at_ms > $2",
    )
    .bind(hash(secret))
    .bind(now_ms)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(id, name, role)| User {
        id,
        name,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
    }))
}

pub async fn end_session(pool: &AnyPool, secret: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM sessions WHERE sha256 = $1")
        .bind(hash(secret))
        .execute(pool)
        .await?;
    Ok(())
}

/// Makes a read token named `name` (what it is for: "prometheus", "alice's probectl"); with
/// `write`, it may also make and remove silences.
pub async fn add_read_token(
    pool: &AnyPool,
    name: &str,
    now_ms: i64,
    write: bool,
) -> Result<String, AccessError> {
    if !check_name(name) {
        return Err(AccessError::InvalidTokenName {
            name: name.to_owned(),
        });
    }
    let token = format!(
        "{READ_TOKEN_PREFIX}{}",
        &tokens::generate()?[tokens::TOKEN_PREFIX.len()..]
    );
    sqlx::query(
        "INSERT INTO read_tokens (name, sha256, created_at_ms, can_write) VALUES ($1, $2, $3, $4)",
    )
    .bind(name)
    .bind(hash(&token))
    .bind(now_ms)
    .bind(i64::from(write))
    .execute(pool)
    .await?;
    Ok(token)
}

pub async fn list_read_tokens(pool: &AnyPool) -> Result<Vec<ReadTokenInfo>, AccessError> {
    Ok(sqlx::query_as(
        "SELECT name, created_at_ms, revoked_at_ms, can_write FROM read_tokens
         ORDER BY name, created_at_ms",
    )
    .fetch_all(pool)
    .await?)
}

/// Revokes every read token named `name`.
pub async fn revoke_read_token(
    pool: &AnyPool,
    name: &str,
    now_ms: i64,
) -> Result<u64, AccessError> {
    let revoked = sqlx::query(
        "UPDATE read_tokens SET revoked_at_ms = $2 WHERE name = $1 AND revoked_at_ms IS NULL",
    )
    .bind(name)
    .bind(now_ms)
    .execute(pool)
    .await?
    .rows_affected();
    if revoked == 0 {
        return Err(AccessError::NoSuchToken {
            name: name.to_owned(),
        });
    }
    Ok(revoked)
}

/// The name of the valid read token `token` and whether it may write; `None` for an unknown
/// or revoked one.
pub async fn read_token_rights(
    pool: &AnyPool,
    token: &str,
) -> Result<Option<(String, bool)>, sqlx::Error> {
    if !token.starts_with(READ_TOKEN_PREFIX) {
        return Ok(None);
    }
    let row: Option<(String, i64)> = sqlx::query_as(
        "SELECT name, can_write FROM read_tokens WHERE sha256 = $1 AND revoked_at_ms IS NULL",
    )
    .bind(hash(token))
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(name, w)| (name, w != 0)))
}

/// Whether `token` is a valid read token.
pub async fn read_token_valid(pool: &AnyPool, token: &str) -> Result<bool, sqlx::Error> {
    if !token.starts_with(READ_TOKEN_PREFIX) {
        return Ok(false);
    }
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM read_tokens WHERE sha256 = $1 AND revoked_at_ms IS NULL",
    )
    .bind(hash(token))
    .fetch_one(pool)
    .await?;
    Ok(n > 0)
}
