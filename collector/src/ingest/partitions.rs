//! PostgreSQL's daily partitions (migrations-pg/0001_schema.sql): healthy results, host
//! readings and per-minute availability are kept a table per UTC day, named `<table>_dYYYYMMDD`,
//! and retention drops a whole day's table when the day is older than the retention, instead
//! of deleting its rows one by one (which costs as much as writing them, and leaves the table
//! to vacuum).
//!
//! Partitions are made ahead: today's and the next [`DAYS_AHEAD`] days', when the writer
//! starts and at the end of every pruner's pass (once a minute). Rows of a day without a
//! partition (a report replayed from before the collector first ran, a probe whose clock is
//! days off) land in each table's DEFAULT partition and are pruned row by row. A day's
//! partition is never made once its default partition holds rows of that day (PostgreSQL
//! refuses); those days stay in the default partition, which only costs speed.

use super::prune::{Cut, Cutoffs};
use super::sql::{Conn, SqlError, Value, values};

const DAY_MS: i64 = 86_400_000;
/// Days ahead of today that have their partitions: a day's rows always find one, even
/// after the collector was stopped a day or two.
const DAYS_AHEAD: i64 = 2;

/// The partitioned tables, each with the retention that drops its days.
const TABLES: [(&str, Cut); 3] = [
    ("results_ok", Cut::Raw),
    ("host_observations", Cut::Raw),
    ("availability_minutes", Cut::Minutes),
];

/// `<table>_dYYYYMMDD` for the UTC day starting at `day_ms`.
fn name(table: &str, day_ms: i64) -> String {
    let date = time::OffsetDateTime::from_unix_timestamp(day_ms.div_euclid(1000))
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN);
    format!(
        "{table}_d{:04}{:02}{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The day a partition's name holds, as the ms of its start; `None` for another table.
fn day_of(table: &str, partition: &str) -> Option<i64> {
    let digits = partition.strip_prefix(table)?.strip_prefix("_d")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = digits[..4].parse().ok()?;
    let month: u8 = digits[4..6].parse().ok()?;
    let day: u8 = digits[6..].parse().ok()?;
    let date = time::Date::from_calendar_date(year, month.try_into().ok()?, day).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp() * 1000)
}

/// Makes the partitions of today and the days ahead that are missing. A day whose rows are
/// already in the default partition is left there (logged at debug).
pub(super) fn create_ahead(conn: &mut dyn Conn, now_ms: i64) -> Result<(), SqlError> {
    let today = now_ms - now_ms.rem_euclid(DAY_MS);
    for (table, _) in TABLES {
        let existing = partitions(conn, table)?;
        for day in (0..=DAYS_AHEAD).map(|n| today + n * DAY_MS) {
            let partition = name(table, day);
            if existing.contains(&partition) {
                continue;
            }
            let made = ddl(
                conn,
                "SELECT causeway_create_partition($1, $2, $3, $4)",
                values![partition.as_str(), table, day, day + DAY_MS],
            );
            if let Err(e) = made {
                // Another collector made it meanwhile, or the default partition holds rows
                // of the day: either way the rows have a home.
                tracing::debug!(%partition, error = %e, "partition not made");
            }
        }
    }
    Ok(())
}

/// How long making or dropping a partition waits for its locks before it gives up (and is
/// tried again at the next pass). Both lock the partitioned table, which every writer's
/// transaction holds while it inserts, in another order: waiting longer than PostgreSQL's
/// deadlock check (1 s) let it pick a writer as the victim, and a report failed.
const DDL_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '200ms'";

/// Runs a partition's `CREATE` or `DROP` (a function of PostgreSQL migration 0011, which quotes
/// the names) in a transaction of its own, under [`DDL_LOCK_TIMEOUT`].
fn ddl(conn: &mut dyn Conn, sql: &'static str, params: &[Value<'_>]) -> Result<(), SqlError> {
    conn.begin()?;
    let done = conn
        .run(DDL_LOCK_TIMEOUT)
        .and_then(|()| conn.execute(sql, params).map(drop))
        .and_then(|()| conn.commit());
    if done.is_err() {
        let _ = conn.rollback();
    }
    done
}

/// The partitions of `table` (by name).
fn partitions(conn: &mut dyn Conn, table: &str) -> Result<Vec<String>, SqlError> {
    conn.query_all(
        "SELECT c.relname::text FROM pg_inherits i
         JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
         WHERE p.relname = $1 AND p.relnamespace = to_regnamespace(current_schema())::oid",
        values![table],
        |r| r.string(0),
    )
}

/// Drops the days wholly older than their table's retention, then makes the days ahead.
/// Returns about the rows the dropped partitions held (PostgreSQL's estimate: counting them
/// would read a whole day).
pub(super) fn maintain(conn: &mut dyn Conn, cut: &Cutoffs, now_ms: i64) -> Result<u64, SqlError> {
    let mut rows = 0;
    for (table, retention) in TABLES {
        let cutoff = cut.of(retention);
        for partition in partitions(conn, table)? {
            let Some(day) = day_of(table, &partition) else {
                continue;
            };
            if day + DAY_MS > cutoff {
                continue;
            }
            // The name comes from the catalogue and matched `<table>_dYYYYMMDD`.
            let held = conn
                .query_row(
                    "SELECT reltuples::bigint FROM pg_class WHERE relname = $1",
                    values![partition.as_str()],
                    |r| r.int(0),
                )?
                .flatten()
                .unwrap_or(0);
            let dropped = ddl(
                conn,
                "SELECT causeway_drop_partition($1)",
                values![partition.as_str()],
            );
            if let Err(e) = dropped {
                tracing::warn!(%partition, error = %e, "partition not dropped; tried again later");
                continue;
            }
            rows += u64::try_from(held).unwrap_or(0);
            tracing::info!(%partition, "dropped a day older than the retention");
        }
    }
    create_ahead(conn, now_ms)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_is_named_and_read_back() {
        // 2026-11-23T12:04:30Z
        let at: i64 = 1_795_435_470_000;
        let day = at - at.rem_euclid(DAY_MS);
        assert_eq!(name("results_ok", day), "results_ok_d20261123");
        assert_eq!(day_of("results_ok", "results_ok_d20261123"), Some(day));
        assert_eq!(day_of("results_ok", "results_ok_default"), None);
        assert_eq!(day_of("results", "results_ok_d20261123"), None);
        assert_eq!(day_of("results_ok", "results_ok_d20261323"), None);
    }
}
