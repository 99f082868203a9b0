//! The SQLite database: connection options, the two pools and the embedded migrations.
//!
//! SQLite has a single writer, so writes go through a pool of exactly one connection: they are
//! serialised in the process instead of failing with SQLITE_BUSY. Reads use a few read-only
//! connections, which WAL lets run while a write is in progress.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::SqlitePool;
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
    #[error("cannot migrate the database {path}: {source}")]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
}

/// The database's pools. Cloning is cheap (pools are reference-counted).
#[derive(Debug, Clone)]
pub struct Db {
    /// Exactly one connection: every write transaction goes through it.
    pub write: SqlitePool,
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
        // Opened after the migration, so the file and its WAL exist.
        let read = SqlitePoolOptions::new()
            .max_connections(READ_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(base.read_only(true))
            .await
            .map_err(open_err)?;
        Ok(Db { write, read })
    }

    /// Closes both pools, waiting for their connections (a checkpoint on the last close).
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}
