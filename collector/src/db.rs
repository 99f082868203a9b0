//! The database: where it is ([`Location`]: a SQLite file, the embedded default, or a
//! PostgreSQL URL), its pools and its embedded migrations.
//!
//! Reports are written by [`Writer`], a thread with a connection of its own that stores them
//! in batches. The few other writes (tokens, share links) go through a pool of exactly one
//! connection, and reads through a few more; both are sqlx `Any` pools, so the queries behind
//! the API and the page are written once for both databases (`$1` placeholders, which SQLite
//! accepts too). SQLite has a single writer: its busy timeout lets the two writers take
//! turns, and WAL lets reads run while a write is in progress. PostgreSQL may be shared by
//! several collectors (see `ingest::sql::Conn::lock_servers`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::ingest::{Writer, WriterError};

/// Read connections: the API's queries are short; a few cover a 2-core machine.
const READ_CONNECTIONS: u32 = 4;
/// How long a connection waits for another process's lock (e.g. `token add` while serving).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a pooled connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations-pg");

/// Where the database is: `--db` (and `CAUSEWAY_DB`), a path or a `postgres://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Sqlite(PathBuf),
    Postgres(String),
}

impl FromStr for Location {
    type Err = String;

    fn from_str(s: &str) -> Result<Location, String> {
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            PgConnectOptions::from_str(s)
                .map_err(|e| format!("--db {}: not a PostgreSQL URL ({e})", redact(s)))?;
            return Ok(Location::Postgres(s.to_owned()));
        }
        if s.contains("://") {
            return Err(format!(
                "--db {}: a SQLite file path or a postgres:// URL is allowed",
                redact(s)
            ));
        }
        if s.is_empty() {
            return Err("--db is empty: give a SQLite file path or a postgres:// URL".into());
        }
        Ok(Location::Sqlite(PathBuf::from(s)))
    }
}

impl fmt::Display for Location {
    /// The path, or the URL without its password: this goes to logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// `url` with the password of its user info replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open the database {db}: {source}")]
    Open {
        db: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot lock {path} to migrate the database: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot migrate the database {db}: {source}")]
    Migrate {
        db: String,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error(transparent)]
    Writer(#[from] WriterError),
}

/// The database's pools. Cloning is cheap (pools are reference-counted).
#[derive(Debug, Clone)]
pub struct Db {
    /// Exactly one connection, for the writes other than reports.
    pub write: AnyPool,
    /// The writer of reports.
    pub reports: Writer,
    /// Connections for the API and the page (read-only on SQLite).
    pub read: AnyPool,
    pub location: Location,
}

impl Db {
    /// Opens (creating it if missing) and migrates the SQLite database at `path`.
    pub async fn open(path: &Path) -> Result<Db, DbError> {
        Db::open_at(&Location::Sqlite(path.to_owned())).await
    }

    /// Opens and migrates the database at `location`; a SQLite file is created if missing.
    pub async fn open_at(location: &Location) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let open_err = |source| DbError::Open {
            db: location.to_string(),
            source,
        };
        let (write_url, read_url) = match location {
            Location::Sqlite(path) => {
                migrate_sqlite(path).await?;
                let url = sqlite_url(path);
                (url.clone(), format!("{url}?mode=ro"))
            }
            Location::Postgres(url) => {
                migrate_postgres(location, url).await?;
                (url.clone(), url.clone())
            }
        };
        let is_sqlite = matches!(location, Location::Sqlite(_));
        let pool = |connections: u32| {
            AnyPoolOptions::new()
                .max_connections(connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if is_sqlite {
                            use sqlx::Executor;
                            // As the writer's connection: FULL because an acknowledged write
                            // must survive a power loss.
                            conn.execute(
                                "PRAGMA busy_timeout = 5000; PRAGMA synchronous = FULL;
                                 PRAGMA foreign_keys = ON",
                            )
                            .await?;
                        }
                        Ok(())
                    })
                })
        };
        let write = pool(1).connect(&write_url).await.map_err(open_err)?;
        let read = pool(READ_CONNECTIONS)
            .connect(&read_url)
            .await
            .map_err(open_err)?;
        let reports = Writer::start(location)?;
        Ok(Db {
            write,
            read,
            reports,
            location: location.clone(),
        })
    }

    /// Stores the reports queued, then closes the writer and both pools, waiting for their
    /// connections (a checkpoint on the last close).
    pub async fn close(&self) {
        self.reports.close().await;
        self.read.close().await;
        self.write.close().await;
    }
}

/// `sqlite://` and the path, percent-encoded so that `?` and `#` in a file name stay in it.
fn sqlite_url(path: &Path) -> String {
    let mut url = String::from("sqlite://");
    for b in path.as_os_str().as_encoded_bytes() {
        match b {
            b'?' | b'#' | b'%' | b' ' | 0x80.. => url.push_str(&format!("%{b:02X}")),
            _ => url.push(*b as char),
        }
    }
    url
}

/// Creates and migrates the SQLite file at `path`, one process at a time.
pub(crate) async fn migrate_sqlite(path: &Path) -> Result<(), DbError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT)
        .create_if_missing(true);
    let _lock = MigrationLock::acquire(path).await?;
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|source| DbError::Open {
            db: path.display().to_string(),
            source,
        })?;
    let migrated = SQLITE_MIGRATIONS.run(&pool).await;
    pool.close().await;
    migrated.map_err(|source| DbError::Migrate {
        db: path.display().to_string(),
        source,
    })
}

/// Migrates the PostgreSQL database at `url`. sqlx holds an advisory lock while it migrates,
/// so collectors starting together take turns.
pub(crate) async fn migrate_postgres(location: &Location, url: &str) -> Result<(), DbError> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await
        .map_err(|source| DbError::Open {
            db: location.to_string(),
            source,
        })?;
    let migrated = POSTGRES_MIGRATIONS.run(&pool).await;
    pool.close().await;
    migrated.map_err(|source| DbError::Migrate {
        db: location.to_string(),
        source,
    })
}

/// An exclusive lock on a file beside the database, held while the database is created,
/// switched to WAL and migrated.
///
/// sqlx takes no lock for SQLite migrations: two processes opening a new database together
/// (the service starting while an operator runs `token add`) would both apply migration 1 and
/// one would fail with "table already exists". Switching a new file to WAL can also fail with
/// "database is locked" without waiting for the busy timeout. The lock serialises both; the
/// second process finds the file ready and does nothing.
struct MigrationLock {
    _file: std::fs::File,
}

impl MigrationLock {
    async fn acquire(db: &Path) -> Result<MigrationLock, DbError> {
        let lock_path = lock_path(db);
        let lock_err = |source| DbError::Lock {
            path: lock_path.clone(),
            source,
        };
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(lock_err)?;
        // Blocks while another process migrates (milliseconds); released when dropped.
        let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
            .await
            .map_err(|e| lock_err(std::io::Error::other(e)))?
            .map_err(lock_err)?;
        Ok(MigrationLock { _file: file })
    }
}

/// `causeway.db` -> `causeway.db.migrate-lock`
fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".migrate-lock");
    PathBuf::from(name)
}
