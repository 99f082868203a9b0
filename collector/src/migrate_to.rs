//! `causeway-collector migrate-to postgres://...`: copies a SQLite database, history and all,
//! into an empty PostgreSQL database, for a user who outgrows one machine.
//!
//! Both databases are migrated to the same schema first (the tables, columns and their order
//! are the same: see migrations-pg/0001_schema.sql). Every table is then streamed with
//! PostgreSQL's `COPY`, in the order of the foreign keys, inside one PostgreSQL transaction:
//! a copy that fails half way leaves the target empty, ready for another try. The SQLite side
//! is read in one read transaction, so what is copied is one moment's database even while a
//! collector still writes it (reports stored after that moment are not copied: stop the
//! collector first, or run it again on a fresh target).

use std::fmt::Write as _;

use rusqlite::types::ValueRef;
use sqlx::Connection;

use crate::db::{self, DbError, Location};

/// Every table, parents before children (the foreign keys' order).
pub const TABLES: [&str; 25] = [
    "servers",
    "tokens",
    "share_links",
    "users",
    "sessions",
    "read_tokens",
    "canaries",
    "reports",
    "results",
    "failures",
    "incidents",
    "resolvers",
    "resolver_changes",
    "resolver_hours",
    "resolver_conditions",
    "host_observations",
    "host_conditions",
    "availability_minutes",
    "availability_hours",
    "availability_days",
    "result_counts",
    "alert_state",
    "notifications",
    "silences",
    "tls_certificates",
];

/// Bytes of `COPY` text sent at a time.
const CHUNK: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum MigrateToError {
    #[error("migrate-to copies a SQLite database (--db is {0}, not a file)")]
    SourceNotSqlite(String),
    #[error("migrate-to copies into PostgreSQL: {0:?} is not a postgres:// URL")]
    TargetNotPostgres(String),
    #[error("the SQLite database {0} does not exist")]
    SourceMissing(String),
    #[error(
        "the target database already holds {servers} server(s): migrate-to copies into an empty \
         database (create a new one, or drop this one's tables)"
    )]
    TargetNotEmpty { servers: i64 },
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot read the SQLite database: {0}")]
    Source(#[from] rusqlite::Error),
    #[error("PostgreSQL refused the copy of table {table}: {source}")]
    Copy {
        table: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("PostgreSQL error: {0}")]
    Target(#[from] sqlx::Error),
}

/// What a copy did: the rows of each table, in [`TABLES`] order, and where they went.
#[derive(Debug)]
pub struct Copied {
    pub tables: Vec<(&'static str, u64)>,
    pub target: Location,
}

/// Copies the SQLite database at `source` into the empty PostgreSQL database at `target`.
pub async fn migrate_to(source: &Location, target: &str) -> Result<Copied, MigrateToError> {
    let Location::Sqlite(path) = source else {
        return Err(MigrateToError::SourceNotSqlite(source.to_string()));
    };
    let target_location: Location = target
        .parse()
        .map_err(|_| MigrateToError::TargetNotPostgres(target.to_owned()))?;
    let Location::Postgres(url) = &target_location else {
        return Err(MigrateToError::TargetNotPostgres(target.to_owned()));
    };
    if !path.exists() {
        return Err(MigrateToError::SourceMissing(path.display().to_string()));
    }
    // Both at the newest schema: the copy is column for column.
    db::migrate_sqlite(path).await?;
    db::migrate_postgres(&target_location, url).await?;
    let mut pg = sqlx::PgConnection::connect(url).await?;
    let servers: i64 = sqlx::query_scalar("SELECT count(*) FROM servers")
        .fetch_one(&mut pg)
        .await?;
    if servers > 0 {
        return Err(MigrateToError::TargetNotEmpty { servers });
    }
    let sqlite = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    sqlite.busy_timeout(std::time::Duration::from_secs(5))?;
    // One snapshot for every table: the read transaction begins at the first SELECT.
    sqlite.execute_batch("BEGIN")?;
    sqlx::query("BEGIN").execute(&mut pg).await?;
    let mut tables = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let rows = copy_table(&sqlite, &mut pg, table).await?;
        tables.push((table, rows));
    }
    move_sequences(&mut pg).await?;
    sqlx::query("COMMIT").execute(&mut pg).await?;
    pg.close().await?;
    Ok(Copied {
        tables,
        target: target_location,
    })
}

/// The columns of `table` as PostgreSQL orders them (SQLite's order is the same).
async fn columns(pg: &mut sqlx::PgConnection, table: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(pg)
    .await
}

async fn copy_table(
    sqlite: &rusqlite::Connection,
    pg: &mut sqlx::PgConnection,
    table: &'static str,
) -> Result<u64, MigrateToError> {
    // COPY takes no bind parameters: the names (from `TABLES` and the catalogue) are quoted.
    let table_name = quoted(table);
    let columns = columns(pg, table)
        .await?
        .iter()
        .map(|c| quoted(c))
        .collect::<Vec<_>>()
        .join(", ");
    let copy_err = |source| MigrateToError::Copy { table, source };
    let mut stmt = sqlite.prepare(&format!("SELECT {columns} FROM {table_name}"))?;
    let width = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut copy = pg
        .copy_in_raw(&format!("COPY {table_name} ({columns}) FROM STDIN"))
        .await
        .map_err(copy_err)?;
    let mut buf = String::with_capacity(CHUNK + 4096);
    let mut n = 0u64;
    let sent = async {
        while let Some(row) = rows.next()? {
            for i in 0..width {
                if i > 0 {
                    buf.push('\t');
                }
                copy_text(&mut buf, row.get_ref(i)?);
            }
            buf.push('\n');
            n += 1;
            if buf.len() >= CHUNK {
                copy.send(buf.as_bytes()).await.map_err(copy_err)?;
                buf.clear();
            }
        }
        if !buf.is_empty() {
            copy.send(buf.as_bytes()).await.map_err(copy_err)?;
        }
        Ok::<_, MigrateToError>(())
    }
    .await;
    match sent {
        Ok(()) => {
            copy.finish().await.map_err(copy_err)?;
            Ok(n)
        }
        Err(e) => {
            let _ = copy.abort(e.to_string()).await;
            Err(e)
        }
    }
}

/// A value in `COPY`'s text format: `\N` for NULL, backslash escapes in text, bytea in hex.
fn copy_text(out: &mut String, value: ValueRef<'_>) {
    match value {
        ValueRef::Null => out.push_str("\\N"),
        ValueRef::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        ValueRef::Real(f) if f.is_nan() => out.push_str("NaN"),
        ValueRef::Real(f) if f.is_infinite() => {
            out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" })
        }
        ValueRef::Real(f) => {
            let _ = write!(out, "{f:?}");
        }
        ValueRef::Text(bytes) => {
            for c in String::from_utf8_lossy(bytes).chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c => out.push(c),
                }
            }
        }
        ValueRef::Blob(bytes) => {
            out.push_str("\\\\x");
            for b in bytes {
                let _ = write!(out, "{b:02x}");
            }
        }
    }
}

/// Moves every identity column's sequence past the ids copied, so that new rows do not
/// collide with them.
async fn move_sequences(pg: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    // Server side, where `format('%I')` quotes the catalogue's names.
    sqlx::query(
        "DO $$
         DECLARE c record;
         BEGIN
             FOR c IN SELECT table_name::text AS t, column_name::text AS col
                      FROM information_schema.columns
                      WHERE table_schema = current_schema() AND is_identity = 'YES'
             LOOP
                 EXECUTE format('SELECT setval(pg_get_serial_sequence(%L, %L),
                                               coalesce((SELECT max(%I) FROM %I), 0) + 1, false)',
                                quote_ident(c.t), c.col, c.col, c.t);
             END LOOP;
         END $$",
    )
    .execute(pg)
    .await?;
    Ok(())
}

/// An SQL identifier in double quotes (a quote inside doubled), for the statements that take
/// no bind parameters.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Copied {
    /// What was copied, a line per table (the target without its password).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let total: u64 = self.tables.iter().map(|(_, n)| n).sum();
        for (table, n) in &self.tables {
            let _ = writeln!(out, "{table:<22} {n:>12} rows");
        }
        let _ = writeln!(out, "copied {total} rows into {}", self.target);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_written_in_copy_text_format() {
        let mut out = String::new();
        for v in [
            ValueRef::Null,
            ValueRef::Integer(-42),
            ValueRef::Real(1.5),
            ValueRef::Text(b"a\tb\\c\nd"),
            ValueRef::Blob(&[0x00, 0xff]),
        ] {
            copy_text(&mut out, v);
            out.push('|');
        }
        assert_eq!(out, "\\N|-42|1.5|a\\tb\\\\c\\nd|\\\\x00ff|");
    }
}
