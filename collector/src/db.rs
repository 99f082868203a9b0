//! The SQLite database: connection options, the two pools and the embedded migrations.
//!
//! SQLite has a single writer. Reports are written by [`Writer`], a thread with a connection of
//! its own that stores them in batches; the few other writes (tokens, share links) go through
//! a pool of exactly one connection, and SQLite's busy timeout lets the two take turns. Reads
//! use a few read-only connections, which WAL lets run while a write is in progress.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::SqlitePool;

use crate::ingest::{Writer, WriterError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// Read connections: the API's queries are short; a few cover a 2-core machine.
const READ_CONNECTIONS: u32 = 4;
/// How long a connection waits for another process's lock (e.g. `token add` while serving).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a request waits for a pooled connection before it fails.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot lock {path} to migrate the database: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot migrate the database {path}: {source}")]
    Migrate {
        path: PathBuf,
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
    pub write: SqlitePool,
    /// The writer of reports.
    pub reports: Writer,
    /// Read-only connections for the API and the page.
    pub read: SqlitePool,
}

impl Db {
    /// Opens (creating it if missing) and migrates the database at `path`.
    pub async fn open(path: &Path) -> Result<Db, DbError> {
        let open_err = |source| DbError::Open {
            path: path.to_owned(),
            source,
        };
        let base = SqliteConnectOptions::new()
            .filename(path)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: an acknowledged report must survive a power loss, and WAL with NORMAL
            // may lose the last transactions.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // One process at a time creates and migrates the file: see `MigrationLock`.
        let write = {
            let _lock = MigrationLock::acquire(path).await?;
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(base.clone().create_if_missing(true))
                .await
                .map_err(open_err)?;
            MIGRATOR
                .run(&write)
                .await
                .map_err(|source| DbError::Migrate {
                    path: path.to_owned(),
                    source,
                })?;
            write
        };
        // Opened after the migration, so the file and its WAL exist.
        let read = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(base.read_only(true))
            .await
            .map_err(open_err)?;
        let reports = Writer::start(path)?;
        Ok(Db {
            write,
            read,
            reports,
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
