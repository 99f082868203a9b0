//! The writer's statements run through [`Conn`], so one body of ingest code stores reports in
//! SQLite (rusqlite, on the writer thread) and in PostgreSQL (sqlx, driven from the same
//! thread).
//!
//! Statements are written once, in the form both accept: `$1`, `$2` placeholders (SQLite's
//! form is `?1`: the SQLite side rewrites them) and `greatest(a, b)` / `least(a, b)` for the
//! scalar larger and smaller of two values (SQLite names them `max` and `min`, which in
//! PostgreSQL are aggregates only). The SQLite side rewrites a statement once and keeps it.

use std::collections::HashMap;
use std::time::Duration;

use super::IngestError;

/// A value bound to a statement. Each kind carries its own NULL: PostgreSQL is told the type
/// of every parameter, and a NULL of the wrong type fails against a typed column.
#[derive(Debug, Clone, Copy)]
pub enum Value<'a> {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<&'a str>),
    Blob(Option<&'a [u8]>),
}

impl From<i64> for Value<'_> {
    fn from(v: i64) -> Self {
        Value::Int(Some(v))
    }
}
impl From<Option<i64>> for Value<'_> {
    fn from(v: Option<i64>) -> Self {
        Value::Int(v)
    }
}
impl From<bool> for Value<'_> {
    /// Stored as 0 or 1 in both databases (`ok = 1` in the queries).
    fn from(v: bool) -> Self {
        Value::Int(Some(i64::from(v)))
    }
}
impl From<Option<u16>> for Value<'_> {
    fn from(v: Option<u16>) -> Self {
        Value::Int(v.map(i64::from))
    }
}
impl From<u32> for Value<'_> {
    fn from(v: u32) -> Self {
        Value::Int(Some(i64::from(v)))
    }
}
impl From<Option<u32>> for Value<'_> {
    fn from(v: Option<u32>) -> Self {
        Value::Int(v.map(i64::from))
    }
}
impl From<Option<f64>> for Value<'_> {
    fn from(v: Option<f64>) -> Self {
        Value::Real(v)
    }
}
impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(Some(v))
    }
}
impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Value::Text(Some(v))
    }
}
impl<'a> From<&'a causeway_schema::ServerName> for Value<'a> {
    fn from(v: &'a causeway_schema::ServerName) -> Self {
        Value::Text(Some(v.as_str()))
    }
}
impl<'a> From<&'a causeway_schema::CanaryName> for Value<'a> {
    fn from(v: &'a causeway_schema::CanaryName) -> Self {
        Value::Text(Some(v.as_str()))
    }
}
impl<'a> From<Option<&'a str>> for Value<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Value::Text(v)
    }
}
impl<'a> From<&'a Option<String>> for Value<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Value::Text(v.as_deref())
    }
}
impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Value::Blob(Some(v))
    }
}

/// `[Value::from(a), Value::from(b), ...]`: a statement's parameters, `$1` first.
macro_rules! values {
    ($($v:expr),* $(,)?) => {
        &[$($crate::ingest::sql::Value::from($v)),*][..]
    };
}
pub(crate) use values;

/// An error of either database, or a column that does not hold what the code expects.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Postgres(#[from] sqlx::Error),
    #[error("column {column} of `{sql}` is NULL")]
    Null { column: usize, sql: String },
}

/// A row of a result: the columns ingest reads are integers and text.
pub trait Row {
    fn int(&self, column: usize) -> Result<Option<i64>, SqlError>;
    fn text(&self, column: usize) -> Result<Option<String>, SqlError>;
}

/// A connection the writer stores reports through.
pub trait Conn {
    /// Runs `sql` with `params`; the number of rows it changed.
    fn execute(&mut self, sql: &'static str, params: &[Value<'_>]) -> Result<u64, SqlError>;
    /// Runs `sql` and hands each row to `each`.
    fn query(
        &mut self,
        sql: &'static str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<(), SqlError>,
    ) -> Result<(), SqlError>;
    /// Begins the transaction of a batch: SQLite takes its write lock at once (`IMMEDIATE`),
    /// so a busy database fails here and not halfway through.
    fn begin(&mut self) -> Result<(), SqlError>;
    fn commit(&mut self) -> Result<(), SqlError>;
    fn rollback(&mut self) -> Result<(), SqlError>;
    /// A statement without parameters or rows (savepoints, partitions).
    fn run(&mut self, sql: &'static str) -> Result<(), SqlError>;
    /// PostgreSQL: the bulk tables are partitioned by day (see `super::partitions`).
    fn is_postgres(&self) -> bool;
    /// Serialises the writers of these servers until the transaction ends, and returns the
    /// servers whose rows another writer changed since `generations` were read (their
    /// remembered state is stale). SQLite has one writer: nothing to do.
    fn lock_servers(&mut self, servers: &[(i64, Option<i64>)]) -> Result<Vec<i64>, SqlError>;
}

impl dyn Conn + '_ {
    /// The first row, mapped; `None` without rows.
    pub fn query_row<T>(
        &mut self,
        sql: &'static str,
        params: &[Value<'_>],
        map: impl FnOnce(&dyn Row) -> Result<T, SqlError>,
    ) -> Result<Option<T>, SqlError> {
        let mut map = Some(map);
        let mut out = None;
        self.query(sql, params, &mut |row| {
            if let Some(map) = map.take() {
                out = Some(map(row)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row of a statement that always returns one (`INSERT .. RETURNING`).
    pub fn returning<T>(
        &mut self,
        sql: &'static str,
        params: &[Value<'_>],
        map: impl FnOnce(&dyn Row) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        self.query_row(sql, params, map)?
            .ok_or_else(|| SqlError::Null {
                column: 0,
                sql: sql.to_owned(),
            })
    }

    /// Every row, mapped.
    pub fn query_all<T>(
        &mut self,
        sql: &'static str,
        params: &[Value<'_>],
        mut map: impl FnMut(&dyn Row) -> Result<T, SqlError>,
    ) -> Result<Vec<T>, SqlError> {
        let mut out = Vec::new();
        self.query(sql, params, &mut |row| {
            out.push(map(row)?);
            Ok(())
        })?;
        Ok(out)
    }
}

impl dyn Row + '_ {
    /// A column that is never NULL.
    pub fn i64(&self, column: usize) -> Result<i64, SqlError> {
        self.int(column)?.ok_or(SqlError::Null {
            column,
            sql: String::new(),
        })
    }

    pub fn string(&self, column: usize) -> Result<String, SqlError> {
        self.text(column)?.ok_or(SqlError::Null {
            column,
            sql: String::new(),
        })
    }
}

impl From<SqlError> for IngestError {
    fn from(e: SqlError) -> IngestError {
        IngestError::Db(e)
    }
}

/// Statements in SQLite's form, rewritten once each.
#[derive(Default)]
struct Dialect {
    /// By the address of the statement's text: every statement is a `&'static str`.
    rewritten: HashMap<usize, Box<str>>,
}

impl Dialect {
    fn get(&mut self, sql: &'static str) -> &str {
        self.rewritten
            .entry(sql.as_ptr() as usize)
            .or_insert_with(|| sqlite_form(sql).into_boxed_str())
    }
}

/// PostgreSQL's text as SQLite's: `$1` -> `?1`, `greatest(` -> `max(`, `least(` -> `min(`.
fn sqlite_form(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        if c == '$' && rest[1..].starts_with(|d: char| d.is_ascii_digit()) {
            out.push('?');
            rest = &rest[1..];
        } else if let Some(after) = rest.strip_prefix("greatest(") {
            out.push_str("max(");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("least(") {
            out.push_str("min(");
            rest = after;
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The writer's SQLite connection.
pub struct Sqlite {
    conn: rusqlite::Connection,
    dialect: Dialect,
}

/// Prepared statements kept: every statement of ingest, with room to spare.
const STATEMENT_CACHE: usize = 64;

impl Sqlite {
    pub fn new(conn: rusqlite::Connection) -> Sqlite {
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Sqlite {
            conn,
            dialect: Dialect::default(),
        }
    }
}

fn sqlite_params<'a>(params: &'a [Value<'a>]) -> Vec<&'a dyn rusqlite::ToSql> {
    params
        .iter()
        .map(|v| match v {
            Value::Int(v) => v as &dyn rusqlite::ToSql,
            Value::Real(v) => v,
            Value::Text(v) => v,
            Value::Blob(v) => v,
        })
        .collect()
}

struct SqliteRow<'r, 's>(&'r rusqlite::Row<'s>);

impl Row for SqliteRow<'_, '_> {
    fn int(&self, column: usize) -> Result<Option<i64>, SqlError> {
        Ok(self.0.get(column)?)
    }
    fn text(&self, column: usize) -> Result<Option<String>, SqlError> {
        Ok(self.0.get(column)?)
    }
}

impl Conn for Sqlite {
    fn execute(&mut self, sql: &'static str, params: &[Value<'_>]) -> Result<u64, SqlError> {
        let sql = self.dialect.get(sql);
        let n = self
            .conn
            .prepare_cached(sql)?
            .execute(sqlite_params(params).as_slice())?;
        Ok(n as u64)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<(), SqlError>,
    ) -> Result<(), SqlError> {
        let sql = self.dialect.get(sql);
        let mut stmt = self.conn.prepare_cached(sql)?;
        let mut rows = stmt.query(sqlite_params(params).as_slice())?;
        while let Some(row) = rows.next()? {
            each(&SqliteRow(row))?;
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), SqlError> {
        Ok(self.conn.execute_batch("BEGIN IMMEDIATE")?)
    }
    fn commit(&mut self) -> Result<(), SqlError> {
        Ok(self.conn.execute_batch("COMMIT")?)
    }
    fn rollback(&mut self) -> Result<(), SqlError> {
        if self.conn.is_autocommit() {
            return Ok(());
        }
        Ok(self.conn.execute_batch("ROLLBACK")?)
    }
    fn run(&mut self, sql: &'static str) -> Result<(), SqlError> {
        Ok(self.conn.execute_batch(sql)?)
    }
    fn is_postgres(&self) -> bool {
        false
    }
    fn lock_servers(&mut self, _: &[(i64, Option<i64>)]) -> Result<Vec<i64>, SqlError> {
        Ok(Vec::new())
    }
}

/// The writer's PostgreSQL connection, driven from the writer thread by a runtime of its own
/// (the thread is not one of the server's: blocking on it holds up no request).
pub struct Postgres {
    runtime: tokio::runtime::Runtime,
    conn: sqlx::PgConnection,
    in_transaction: bool,
}

/// The first key of the advisory locks that serialise the writers of a server (the second is
/// the server's id): "Caus", so other users of advisory locks in the same database do not clash.
const LOCK_CLASS: i32 = 0x4361_7573;

impl Postgres {
    /// Connects, with `timeout` for the connection to be made.
    pub fn connect(url: &str, timeout: Duration) -> Result<Postgres, SqlError> {
        use sqlx::Connection;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SqlError::Postgres(sqlx::Error::Io(e)))?;
        let conn = runtime.block_on(async {
            tokio::time::timeout(timeout, sqlx::PgConnection::connect(url))
                .await
                .map_err(|_| sqlx::Error::PoolTimedOut)?
        })?;
        Ok(Postgres {
            runtime,
            conn,
            in_transaction: false,
        })
    }

    fn simple(&mut self, sql: &str) -> Result<(), SqlError> {
        use sqlx::Executor;
        self.runtime.block_on(self.conn.execute(sql))?;
        Ok(())
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn pg_bind<'q>(mut query: PgQuery<'q>, params: &[Value<'q>]) -> PgQuery<'q> {
    for v in params {
        query = match *v {
            Value::Int(v) => query.bind(v),
            Value::Real(v) => query.bind(v),
            Value::Text(v) => query.bind(v),
            Value::Blob(v) => query.bind(v),
        };
    }
    query
}

impl Row for sqlx::postgres::PgRow {
    fn int(&self, column: usize) -> Result<Option<i64>, SqlError> {
        Ok(sqlx::Row::try_get(self, column)?)
    }
    fn text(&self, column: usize) -> Result<Option<String>, SqlError> {
        Ok(sqlx::Row::try_get(self, column)?)
    }
}

impl Conn for Postgres {
    fn execute(&mut self, sql: &'static str, params: &[Value<'_>]) -> Result<u64, SqlError> {
        // The statements' own form: sqlx prepares each once per connection (its cache).
        let query = pg_bind(sqlx::query(sql), params);
        let done = self.runtime.block_on(query.execute(&mut self.conn))?;
        Ok(done.rows_affected())
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &[Value<'_>],
        each: &mut dyn FnMut(&dyn Row) -> Result<(), SqlError>,
    ) -> Result<(), SqlError> {
        let query = pg_bind(sqlx::query(sql), params);
        let rows = self.runtime.block_on(query.fetch_all(&mut self.conn))?;
        for row in &rows {
            each(row)?;
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), SqlError> {
        self.simple("BEGIN")?;
        self.in_transaction = true;
        Ok(())
    }
    fn commit(&mut self) -> Result<(), SqlError> {
        self.in_transaction = false;
        self.simple("COMMIT")
    }
    fn rollback(&mut self) -> Result<(), SqlError> {
        if !std::mem::take(&mut self.in_transaction) {
            return Ok(());
        }
        self.simple("ROLLBACK")
    }
    fn run(&mut self, sql: &'static str) -> Result<(), SqlError> {
        self.simple(sql)
    }
    fn is_postgres(&self) -> bool {
        true
    }

    /// Several collectors may write one database, each with its own copy of a server's state
    /// (see [`super::server`]). A writer takes a transaction-scoped advisory lock on every
    /// server of its batch, in the order of their ids (so two writers never wait for each
    /// other in a circle), before it reads or writes any of their rows: two reports of one
    /// server arriving at two collectors are stored one after the other, each seeing the
    /// other's incident. Then it compares each server's `generation` (bumped by every stored
    /// report) with the one its copy was made from: another writer stored a report in between
    /// when they differ, and the copy is read again.
    fn lock_servers(&mut self, servers: &[(i64, Option<i64>)]) -> Result<Vec<i64>, SqlError> {
        let mut ids: Vec<i64> = servers.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        for &id in &ids {
            self.runtime.block_on(
                sqlx::query("SELECT pg_advisory_xact_lock($1, $2::integer)")
                    .bind(LOCK_CLASS)
                    .bind(id)
                    .execute(&mut self.conn),
            )?;
        }
        let stored: Vec<(i64, i64)> = self.runtime.block_on(
            sqlx::query_as("SELECT id, generation FROM servers WHERE id = ANY($1)")
                .bind(&ids)
                .fetch_all(&mut self.conn),
        )?;
        Ok(servers
            .iter()
            .filter(|(id, seen)| {
                seen.is_some_and(|seen| stored.iter().any(|(s, now)| s == id && *now != seen))
            })
            .map(|(id, _)| *id)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_rewritten_for_sqlite() {
        assert_eq!(
            sqlite_form("UPDATE t SET a = greatest(a, $2), b = least(b, $13) WHERE id = $1"),
            "UPDATE t SET a = max(a, ?2), b = min(b, ?13) WHERE id = ?1"
        );
        // A dollar sign that is not a placeholder stays.
        assert_eq!(sqlite_form("SELECT '$x', 'é'"), "SELECT '$x', 'é'");
    }
}
