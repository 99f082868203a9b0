//! Delivering the outbox: due notifications claimed, DOWN messages of one cause grouped
//! (`group_window`, `group_wait`), sent on their channels, and recorded as delivered, retried
//! with backoff, or failed after `give_up`.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::Row;

use super::config::CollectorConfig;
use super::message::{Event, Message};
use super::{AlertError, Alerter, CLAIM, DELIVER_BATCH, RETRY_FIRST, RETRY_MAX, send};

impl Alerter {
    /// Delivers the notifications that are due; returns how many were delivered. DOWN
    /// messages of one cause due together on one channel go out as one; one whose cause went
    /// out on that channel less than `group_window` ago waits for the window's end, to go
    /// out with the others that come meanwhile.
    pub async fn deliver(&self, now_ms: i64) -> Result<usize, AlertError> {
        let config = self.config();
        let window_ms = config.group_window.as_millis() as i64;
        let wait_ms = config.group_wait.as_millis() as i64;
        let mut first_pending: HashMap<(String, String), i64> = HashMap::new();
        let rows = sqlx::query(
            "SELECT id, channel, message, attempts, created_at_ms, next_attempt_at_ms
             FROM notifications
             WHERE status = 'pending' AND next_attempt_at_ms <= $1 ORDER BY id LIMIT $2",
        )
        .bind(now_ms)
        .bind(DELIVER_BATCH)
        .fetch_all(&self.db.write)
        .await?;
        let mut due: Vec<Due> = Vec::with_capacity(rows.len());
        let mut last_sent: HashMap<(String, String, String), Option<i64>> = HashMap::new();
        // Until when a notification sent in this pass is claimed; a later time defers it.
        let claim_end = now_ms + CLAIM.as_millis() as i64;
        for row in rows {
            let id: i64 = row.try_get(0)?;
            let channel: String = row.try_get(1)?;
            let text: String = row.try_get(2)?;
            let next: i64 = row.try_get(5)?;
            let message: Result<Message, String> = serde_json::from_str(&text)
                .map_err(|e| format!("the stored message cannot be read: {e}"));
            let mut claim_until = claim_end;
            if let Some(m) = message
                .as_ref()
                .ok()
                .filter(|m| window_ms > 0 && m.event == Event::Down)
            {
                let key = (channel.clone(), m.cause.clone(), m.server.clone());
                let last = match last_sent.get(&key) {
                    Some(last) => *last,
                    None => {
                        let since = now_ms - window_ms;
                        let last = self.last_down_sent(&key.0, &key.1, &key.2, since).await?;
                        last_sent.insert(key, last);
                        last
                    }
                };
                if let Some(until) = last.map(|l| l + window_ms).filter(|u| *u > now_ms) {
                    // Deferred, not claimed: due again when the window ends.
                    claim_until = until;
                }
            }
            if let Some(m) = message
                .as_ref()
                .ok()
                .filter(|m| wait_ms > 0 && window_ms > 0 && m.event == Event::Down)
                .filter(|_| claim_until == claim_end)
            {
                // Held for `group_wait` from the first pending DOWN of its cause on the
                // channel, so that all that come meanwhile are due in the same pass.
                let key = (channel.clone(), m.cause.clone());
                let first = match first_pending.get(&key) {
                    Some(first) => *first,
                    None => {
                        let first = self.first_pending_down(&key.0, &key.1).await?;
                        let first = first.unwrap_or(row.try_get(4)?);
                        first_pending.insert(key, first);
                        first
                    }
                };
                if first + wait_ms > now_ms {
                    claim_until = first + wait_ms;
                }
            }
            // Claimed for the time a send may take: another collector on the same database
            // (or this one after a restart) sends it only if this one did not finish.
            let claimed = sqlx::query(
                "UPDATE notifications SET next_attempt_at_ms = $1
                 WHERE id = $2 AND status = 'pending' AND next_attempt_at_ms = $3",
            )
            .bind(claim_until)
            .bind(id)
            .bind(next)
            .execute(&self.db.write)
            .await?;
            let sending = claim_until == claim_end;
            if claimed.rows_affected() == 1 && sending {
                due.push(Due {
                    id,
                    channel,
                    message,
                    attempts: row.try_get(3)?,
                    created: row.try_get(4)?,
                });
            }
        }
        // Batches: DOWN of one cause on one channel together, everything else alone.
        let mut batches: Vec<Vec<&Due>> = Vec::new();
        for d in &due {
            let group = |b: &&mut Vec<&Due>| {
                let (first, other) = (b[0].message.as_ref(), d.message.as_ref());
                window_ms > 0
                    && b[0].channel == d.channel
                    && matches!((first, other), (Ok(a), Ok(m))
                        if a.event == Event::Down && m.event == Event::Down && a.cause == m.cause)
            };
            match batches.iter_mut().find(group) {
                Some(b) => b.push(d),
                None => batches.push(vec![d]),
            }
        }
        let config = &config;
        let sends = batches.iter().map(|batch| async move {
            let channel = config.channel(&batch[0].channel).ok_or_else(|| {
                format!("channel {:?} is no longer in the config", batch[0].channel)
            })?;
            let messages: Vec<Message> = batch
                .iter()
                .map(|d| d.message.clone())
                .collect::<Result<_, _>>()?;
            send::send_all(&self.http, channel, &messages).await
        });
        let results = futures_util::future::join_all(sends).await;
        let mut delivered = 0;
        for (batch, result) in batches.iter().zip(results) {
            for d in batch {
                delivered += usize::from(result.is_ok());
                self.record(d, &result, config, now_ms).await?;
            }
        }
        Ok(delivered)
    }

    /// When the oldest pending DOWN of `cause` on `channel` was written.
    async fn first_pending_down(
        &self,
        channel: &str,
        cause: &str,
    ) -> Result<Option<i64>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT message, created_at_ms FROM notifications
             WHERE channel = $1 AND event = 'down' AND status = 'pending'",
        )
        .bind(channel)
        .fetch_all(&self.db.write)
        .await?;
        let mut first: Option<i64> = None;
        for row in rows {
            let text: String = row.try_get(0)?;
            let at: i64 = row.try_get(1)?;
            if serde_json::from_str::<Message>(&text).is_ok_and(|m| m.cause == cause) {
                first = Some(first.map_or(at, |f| f.min(at)));
            }
        }
        Ok(first)
    }

    /// When a DOWN of `cause` about another server than `server` last went out on `channel`,
    /// since `since_ms`.
    async fn last_down_sent(
        &self,
        channel: &str,
        cause: &str,
        server: &str,
        since_ms: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT message, delivered_at_ms FROM notifications
             WHERE channel = $1 AND event = 'down' AND status = 'delivered'
             AND delivered_at_ms > $2",
        )
        .bind(channel)
        .bind(since_ms)
        .fetch_all(&self.db.write)
        .await?;
        let mut last = None;
        for row in rows {
            let text: String = row.try_get(0)?;
            let at: i64 = row.try_get(1)?;
            let same = serde_json::from_str::<Message>(&text)
                .is_ok_and(|m| m.cause == cause && m.server != server);
            if same {
                last = last.max(Some(at));
            }
        }
        Ok(last)
    }

    /// Records how a delivery went: delivered, or the next attempt (or failed, past the
    /// bound) with its error.
    async fn record(
        &self,
        d: &Due,
        result: &Result<(), String>,
        config: &CollectorConfig,
        now_ms: i64,
    ) -> Result<(), AlertError> {
        let (id, attempts) = (d.id, d.attempts + 1);
        match result {
            Ok(()) => {
                sqlx::query(
                    "UPDATE notifications SET status = 'delivered', attempts = $1,
                     delivered_at_ms = $2, last_error = NULL WHERE id = $3",
                )
                .bind(attempts)
                .bind(now_ms)
                .bind(id)
                .execute(&self.db.write)
                .await?;
            }
            Err(error) => {
                let wait = retry_after(attempts);
                let next = now_ms + wait.as_millis() as i64;
                let give_up = next - d.created > config.give_up.as_millis() as i64;
                let status = if give_up { "failed" } else { "pending" };
                if give_up {
                    tracing::error!("alerts: notification {id} failed for good: {error}");
                } else {
                    tracing::warn!(
                        "alerts: notification {id}: {error}; trying again in {} s",
                        wait.as_secs()
                    );
                }
                sqlx::query(
                    "UPDATE notifications SET status = $1, attempts = $2,
                     next_attempt_at_ms = $3, last_error = $4 WHERE id = $5",
                )
                .bind(status)
                .bind(attempts)
                .bind(next)
                .bind(error)
                .bind(id)
                .execute(&self.db.write)
                .await?;
            }
        }
        Ok(())
    }
}

/// A notification claimed for sending.
struct Due {
    id: i64,
    channel: String,
    message: Result<Message, String>,
    attempts: i64,
    created: i64,
}

/// The wait before attempt `attempts + 1`: 5 s, 10 s, 20 s ... at most 10 minutes.
fn retry_after(attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    (RETRY_FIRST * 2u32.pow(doublings)).min(RETRY_MAX)
}
