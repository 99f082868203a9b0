//! The availability rollups (migrations 0004, 0008, 0012) as a closed set, each with its
//! statements written out whole: a table name is never spliced into SQL at run time, so every
//! statement that reads a rollup can be found by grepping for its table.

use sqlx::AnyPool;

use super::ReadError;

/// One rollup table: checks summed per server and minute, hour or day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollup {
    Minutes,
    Hours,
    Days,
}

/// The checks summed per server over `[$1, $2)` of a rollup's time column, in the three shapes
/// a read needs: every server on SQLite, every server on PostgreSQL, one server (`$3`).
///
/// Every server: the range's rows in time order, the primary key (keyed by time first since
/// migration 0012). SQLite's planner would otherwise read every row of every server in the
/// order of the (server, time) index to save a sort for `GROUP BY server_id`, so SQLite is
/// told `INDEXED BY` (a `WITHOUT ROWID` table's primary key is named after the table);
/// PostgreSQL has no such clause and needs none. One server: its (server, time) index.
macro_rules! sums {
    ($table:literal, $column:literal) => {
        [
            sums!($table, $column, concat!(" INDEXED BY sqlite_autoindex_", $table, "_1"), ""),
            sums!($table, $column, "", ""),
            sums!($table, $column, "", " AND server_id = $3"),
        ]
    };
    ($table:literal, $column:literal, $hint:expr, $filter:literal) => {
        concat!(
            "SELECT server_id, CAST(SUM(checks_ok) AS BIGINT), CAST(SUM(checks_total) AS BIGINT) FROM ",
            $table,
            $hint,
            " WHERE ",
            $column,
            " >= $1 AND ",
            $column,
            " < $2",
            $filter,
            " GROUP BY server_id"
        )
    };
}

const MINUTES: [&str; 3] = sums!("availability_minutes", "minute_ms");
const HOURS: [&str; 3] = sums!("availability_hours", "hour_ms");
const DAYS: [&str; 3] = sums!("availability_days", "day_ms");

/// `(server_id, ok, total)` per server.
pub type ServerSums = Vec<(i64, i64, i64)>;

impl Rollup {
    /// The checks of each server (or of `server` alone) whose rollup row starts in
    /// `[from_ms, until_ms)`; servers without rows there are absent.
    pub async fn sums(
        self,
        pool: &AnyPool,
        server: Option<i64>,
        from_ms: i64,
        until_ms: i64,
    ) -> Result<ServerSums, ReadError> {
        let statements = match self {
            Rollup::Minutes => &MINUTES,
            Rollup::Hours => &HOURS,
            Rollup::Days => &DAYS,
        };
        let sqlite = pool.connect_options().database_url.scheme() == "sqlite";
        let sql = match (server, sqlite) {
            (Some(_), _) => statements[2],
            (None, true) => statements[0],
            (None, false) => statements[1],
        };
        let query = sqlx::query_as(sql).bind(from_ms).bind(until_ms);
        let query = match server {
            Some(id) => query.bind(id),
            None => query,
        };
        Ok(query.fetch_all(pool).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rollup_has_its_three_statements() {
        assert_eq!(
            HOURS[0],
            "SELECT server_id, CAST(SUM(checks_ok) AS BIGINT), CAST(SUM(checks_total) AS BIGINT) \
             FROM availability_hours INDEXED BY sqlite_autoindex_availability_hours_1 \
             WHERE hour_ms >= $1 AND hour_ms < $2 GROUP BY server_id"
        );
        assert_eq!(
            DAYS[1],
            "SELECT server_id, CAST(SUM(checks_ok) AS BIGINT), CAST(SUM(checks_total) AS BIGINT) \
             FROM availability_days WHERE day_ms >= $1 AND day_ms < $2 GROUP BY server_id"
        );
        assert_eq!(
            MINUTES[2],
            "SELECT server_id, CAST(SUM(checks_ok) AS BIGINT), CAST(SUM(checks_total) AS BIGINT) \
             FROM availability_minutes WHERE minute_ms >= $1 AND minute_ms < $2 \
             AND server_id = $3 GROUP BY server_id"
        );
    }
}
