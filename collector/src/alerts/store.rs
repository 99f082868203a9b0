//! The alerter's tables: what is open (incidents, conditions) and what was raised
//! (`alert_state`), the outbox (`notifications`), and the recent deliveries shown by
//! `probectl alerts` and the page.

use sqlx::{AnyPool, Row};

use super::message::Message;
use super::{AlertError, OpenIncident, Raised};

pub(super) type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// Records a raised alert; false if it was raised already (by another pass or collector).
pub(super) async fn insert_state(
    tx: &mut Tx<'_>,
    key: &str,
    server_id: i64,
    rule: &str,
    channels: &[String],
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO alert_state (key, server_id, rule, channels, raised_at_ms)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING",
    )
    .bind(key)
    .bind(server_id)
    .bind(rule)
    .bind(channels.join(","))
    .bind(now_ms)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Ends a raised alert; false if it was ended already.
pub(super) async fn end_state(
    tx: &mut Tx<'_>,
    key: &str,
    now_ms: i64,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE alert_state SET ended_at_ms = $1 WHERE key = $2 AND ended_at_ms IS NULL",
    )
    .bind(now_ms)
    .bind(key)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes `m` to the outbox once per channel.
pub(super) async fn enqueue(
    tx: &mut Tx<'_>,
    m: &Message,
    channels: &[String],
    now_ms: i64,
) -> Result<usize, AlertError> {
    let json = serde_json::to_string(m).unwrap_or_default();
    let mut n = 0;
    for channel in channels {
        let done = sqlx::query(
            "INSERT INTO notifications
             (key, event, server, channel, message, created_at_ms, status, attempts,
              next_attempt_at_ms)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $6) ON CONFLICT (key) DO NOTHING",
        )
        .bind(format!("{}/{channel}", m.key))
        .bind(m.event.as_str())
        .bind(&m.server)
        .bind(channel)
        .bind(&json)
        .bind(now_ms)
        .execute(&mut **tx)
        .await?;
        n += done.rows_affected() as usize;
    }
    Ok(n)
}

/// What the last reports of a silent server said: its interval, its last checks and the
/// host conditions open when it went quiet (memory climbing, a load of 260), which tell a
/// dead host from a cut network.
pub(super) async fn last_words(
    read: &AnyPool,
    server_id: i64,
    last_ms: i64,
    interval_s: i64,
) -> Result<String, AlertError> {
    let row = sqlx::query("SELECT last_checks_total, last_checks_ok FROM servers WHERE id = $1")
        .bind(server_id)
        .fetch_one(read)
        .await?;
    let total: Option<i64> = row.try_get(0)?;
    let ok: Option<i64> = row.try_get(1)?;
    let mut words = format!(
        "the last report arrived at {} (interval {interval_s}s)",
        crate::timefmt::rfc3339(last_ms)
    );
    if let (Some(total), Some(ok)) = (total, ok) {
        words.push_str(&format!(" with {ok} of {total} checks ok"));
    }
    let conditions: Vec<String> = sqlx::query_scalar(
        "SELECT last_explanation FROM host_conditions
         WHERE server_id = $1 AND ended_at_ms IS NULL ORDER BY started_at_ms",
    )
    .bind(server_id)
    .fetch_all(read)
    .await?;
    match conditions.as_slice() {
        [] => words.push_str("; no host condition was open then"),
        open => words.push_str(&format!("; open host conditions then: {}", open.join("; "))),
    }
    Ok(words)
}

pub(super) async fn open_incidents(read: &AnyPool) -> Result<Vec<OpenIncident>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT i.id, i.server_id, s.name, i.cause, i.explanation, i.started_at_ms,
                i.failed_checks, i.first_result_id
         FROM incidents i JOIN servers s ON s.id = i.server_id
         WHERE i.ended_at_ms IS NULL",
    )
    .fetch_all(read)
    .await?;
    rows.iter().map(incident_of).collect()
}

fn incident_of(row: &sqlx::any::AnyRow) -> Result<OpenIncident, sqlx::Error> {
    Ok(OpenIncident {
        id: row.try_get(0)?,
        server_id: row.try_get(1)?,
        server: row.try_get(2)?,
        cause: row.try_get(3)?,
        explanation: row.try_get(4)?,
        started_at_ms: row.try_get(5)?,
        failed_checks: row.try_get(6)?,
        first_result_id: row.try_get(7)?,
    })
}

/// Incidents that ended since `since_ms` and raised nothing.
pub(super) async fn recently_ended_unraised(
    read: &AnyPool,
    since_ms: i64,
) -> Result<Vec<OpenIncident>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT i.id, i.server_id, s.name, i.cause, i.explanation, i.started_at_ms,
                i.failed_checks, i.first_result_id
         FROM incidents i JOIN servers s ON s.id = i.server_id
         LEFT JOIN alert_state a ON a.key = 'incident:' || i.id
         WHERE i.ended_at_ms IS NOT NULL AND i.ended_at_ms >= $1 AND a.key IS NULL",
    )
    .bind(since_ms)
    .fetch_all(read)
    .await?;
    rows.iter().map(incident_of).collect()
}

/// An open host or resolver condition, keyed `host:<id>` or `resolver:<id>`.
pub(super) struct OpenCondition {
    pub(super) key: String,
    pub(super) server_id: i64,
    pub(super) server: String,
    pub(super) cause: String,
    pub(super) explanation: String,
    pub(super) started_at_ms: i64,
    /// `its host`, `its canaries' certificates`, or `resolver 10.0.0.53 (system) of canary
    /// site`.
    pub(super) subject: String,
}

const HOST_CONDITIONS: &str = "SELECT c.id, c.server_id, s.name, c.cause, c.last_explanation,
            c.started_at_ms, c.ended_at_ms
     FROM host_conditions c JOIN servers s ON s.id = c.server_id";
const RESOLVER_CONDITIONS: &str = "SELECT c.id, r.server_id, s.name, c.cause,
            c.last_explanation, c.started_at_ms, c.ended_at_ms, r.resolver, r.address, r.canary
     FROM resolver_conditions c JOIN resolvers r ON r.id = c.resolver_id
     JOIN servers s ON s.id = r.server_id";

fn condition_of(row: &sqlx::any::AnyRow, host: bool) -> Result<OpenCondition, sqlx::Error> {
    let id: i64 = row.try_get(0)?;
    let cause: String = row.try_get(3)?;
    let subject = match host {
        // The probe reports its canaries' certificate expiry among its host's conditions.
        true if cause.starts_with("tls_expiry_") => "its canaries' certificates".to_owned(),
        true => "its host".to_owned(),
        false => {
            let (resolver, address, canary): (String, String, String) =
                (row.try_get(7)?, row.try_get(8)?, row.try_get(9)?);
            match address.starts_with(&resolver) {
                true => format!("resolver {address} of canary {canary}"),
                false => format!("resolver {resolver} ({address}) of canary {canary}"),
            }
        }
    };
    Ok(OpenCondition {
        key: format!("{}:{id}", if host { "host" } else { "resolver" }),
        server_id: row.try_get(1)?,
        server: row.try_get(2)?,
        cause,
        explanation: row.try_get(4)?,
        started_at_ms: row.try_get(5)?,
        subject,
    })
}

pub(super) async fn open_conditions(read: &AnyPool) -> Result<Vec<OpenCondition>, sqlx::Error> {
    let mut out = Vec::new();
    for (sql, host) in [(HOST_CONDITIONS, true), (RESOLVER_CONDITIONS, false)] {
        let rows = sqlx::query(&format!("{sql} WHERE c.ended_at_ms IS NULL"))
            .fetch_all(read)
            .await?;
        for row in &rows {
            out.push(condition_of(row, host)?);
        }
    }
    Ok(out)
}

/// The condition of an alert key, with its end, once it has ended.
pub(super) async fn ended_condition(
    read: &AnyPool,
    key: &str,
) -> Result<Option<(OpenCondition, i64)>, sqlx::Error> {
    let (sql, host, id) = match key.split_once(':') {
        Some(("host", id)) => (HOST_CONDITIONS, true, id),
        Some(("resolver", id)) => (RESOLVER_CONDITIONS, false, id),
        _ => return Ok(None),
    };
    let Ok(id) = id.parse::<i64>() else {
        return Ok(None);
    };
    let row = sqlx::query(&format!(
        "{sql} WHERE c.id = $1 AND c.ended_at_ms IS NOT NULL"
    ))
    .bind(id)
    .fetch_optional(read)
    .await?;
    row.map(|row| Ok((condition_of(&row, host)?, row.try_get(6)?)))
        .transpose()
}

pub(super) struct Ended {
    pub(super) incident: OpenIncident,
    pub(super) ended_at_ms: i64,
}

pub(super) async fn ended_incident(read: &AnyPool, id: i64) -> Result<Option<Ended>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT i.id, i.server_id, s.name, i.cause, i.explanation, i.started_at_ms,
                i.failed_checks, i.first_result_id, i.ended_at_ms
         FROM incidents i JOIN servers s ON s.id = i.server_id
         WHERE i.id = $1 AND i.ended_at_ms IS NOT NULL",
    )
    .bind(id)
    .fetch_optional(read)
    .await?;
    row.map(|row| {
        Ok(Ended {
            incident: incident_of(&row)?,
            ended_at_ms: row.try_get(8)?,
        })
    })
    .transpose()
}

pub(super) async fn raised(read: &AnyPool) -> Result<Vec<Raised>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT key, server_id, rule, channels, raised_at_ms, last_reminder_at_ms
         FROM alert_state WHERE ended_at_ms IS NULL",
    )
    .fetch_all(read)
    .await?;
    rows.iter()
        .map(|row| {
            let channels: String = row.try_get(3)?;
            Ok(Raised {
                key: row.try_get(0)?,
                server_id: row.try_get(1)?,
                rule: row.try_get(2)?,
                channels: channels
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
                raised_at_ms: row.try_get(4)?,
                last_reminder_at_ms: row.try_get(5)?,
            })
        })
        .collect()
}

/// The recent notifications, newest first, for `probectl alerts` and the page.
pub async fn recent(
    read: &AnyPool,
    server: Option<&str>,
    limit: i64,
) -> Result<Vec<crate::views::NotificationView>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, event, server, channel, status, attempts, created_at_ms, delivered_at_ms,
                last_error, message
         FROM notifications WHERE ($1 IS NULL OR server = $1) ORDER BY id DESC LIMIT $2",
    )
    .bind(server)
    .bind(limit)
    .fetch_all(read)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let message: String = row.try_get(9)?;
        let title = serde_json::from_str::<Message>(&message)
            .map(|m| m.title())
            .unwrap_or_default();
        out.push(crate::views::NotificationView {
            id: row.try_get(0)?,
            event: row.try_get(1)?,
            server: row.try_get::<String, _>(2)?.into(),
            channel: row.try_get(3)?,
            status: row.try_get(4)?,
            attempts: row.try_get(5)?,
            created_at_ms: row.try_get(6)?,
            delivered_at_ms: row.try_get(7)?,
            last_error: row.try_get(8)?,
            title,
        });
    }
    Ok(out)
}
