//! Alerts: who is told when a server goes down, why, and that it came back.
//!
//! Level-triggered, so nothing is lost: every pass ([`Alerter::evaluate`]) looks at the state
//! in the database (open incidents, servers' last reports) against what it has already raised
//! (`alert_state`), and raises what is missing. A raised alert and its notifications (the
//! outbox, `notifications`) are written in one transaction; a sender ([`Alerter::deliver`])
//! delivers each notification with retries and marks it delivered, or failed after
//! `give_up`. A collector killed at any point raises on its next pass what it had not raised,
//! and delivers on its next pass what it had not delivered; a message is sent twice only when
//! the collector dies between a receiver's answer and marking it delivered, and it carries the
//! same idempotency key both times.
//!
//! - [`config`]: the config file's channels and rules; [`message`]: what a message says and
//!   how each channel carries it; [`send`]: delivering one notification.

pub mod config;
pub mod email;
pub mod message;
pub mod send;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::{AnyPool, Row};
use tokio::sync::Notify;

use config::{CollectorConfig, Rule};
use message::{Event, Message};

use crate::clock::Clock;
use crate::db::Db;

/// How often the alerter looks, besides after each stored batch of reports.
pub const PASS_EVERY: Duration = Duration::from_secs(1);
/// How far back a pass looks for incidents that ended before it could raise them.
const CATCH_UP: Duration = Duration::from_secs(15 * 60);
/// How long a notification being sent is left to its sender: more than a send may take.
const CLAIM: Duration = Duration::from_secs(30);
/// Notifications delivered at once per pass.
const DELIVER_BATCH: i64 = 50;
/// The first retry waits this long, each next one twice as long, up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(600);

/// The running config, replaced whole on a reload.
pub type SharedConfig = Arc<RwLock<Arc<CollectorConfig>>>;

pub fn shared(config: CollectorConfig) -> SharedConfig {
    Arc::new(RwLock::new(Arc::new(config)))
}

/// Raises alerts and delivers them. Cheap to clone.
#[derive(Clone)]
pub struct Alerter {
    db: Db,
    config: SharedConfig,
    http: reqwest::Client,
    /// Woken after reports are stored, so an incident alerts without waiting for the tick.
    pub wake: Arc<Notify>,
}

impl std::fmt::Debug for Alerter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerter").finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("database error in the alerter: {0}")]
    Db(#[from] sqlx::Error),
    #[error("cannot build the HTTP client of the alerter: {0}")]
    Client(#[from] reqwest::Error),
}

/// An open incident, with what was raised for it.
struct OpenIncident {
    id: i64,
    server_id: i64,
    server: String,
    cause: String,
    explanation: String,
    started_at_ms: i64,
    failed_checks: i64,
    first_result_id: i64,
}

/// An alert raised and not ended.
struct Raised {
    key: String,
    server_id: i64,
    rule: String,
    channels: Vec<String>,
    raised_at_ms: i64,
    last_reminder_at_ms: Option<i64>,
}

impl Alerter {
    pub fn new(db: Db, config: SharedConfig) -> Result<Alerter, AlertError> {
        // reqwest is built without a TLS provider of its own (no cmake for aws-lc): ring, as
        // the collector's server uses. An error only means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(config::SEND_TIMEOUT)
            .user_agent(concat!("causeway-collector/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Alerter {
            db,
            config,
            http,
            wake: Arc::new(Notify::new()),
        })
    }

    /// The config in force (the latest reload's).
    pub fn config(&self) -> Arc<CollectorConfig> {
        let guard = self.config.read().unwrap_or_else(|p| p.into_inner());
        Arc::clone(&guard)
    }

    /// Runs passes until `stop` resolves: after each wake and every [`PASS_EVERY`].
    pub async fn run(self, clock: Clock, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut failing = false;
        loop {
            let now = clock.now_ms();
            let pass = async {
                self.evaluate(now).await?;
                self.deliver(now).await
            };
            match pass.await {
                Ok(_) if failing => {
                    tracing::info!("alerts: the alerter works again");
                    failing = false;
                }
                Ok(_) => {}
                Err(e) if !failing => {
                    tracing::error!("alerts: {e}; trying again every second");
                    failing = true;
                }
                Err(e) => tracing::debug!("alerts: {e}"),
            }
            tokio::select! {
                () = &mut stop => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(PASS_EVERY) => {}
            }
        }
    }

    /// One pass over the state: raises what is due and ends what is over. Returns the
    /// notifications written.
    pub async fn evaluate(&self, now_ms: i64) -> Result<usize, AlertError> {
        let config = self.config();
        let read = &self.db.read;
        let open = open_incidents(read).await?;
        // Servers in a maintenance window raise nothing (what they raised before still ends).
        let silences = crate::silences::in_force(read, now_ms).await?;
        let quiet = |server: &str| {
            silences.iter().any(|s| s.covers(server, now_ms))
                || config.maintenance.iter().any(|m| m.covers(server, now_ms))
        };
        let mut written = 0;
        // Incidents that reached a rule and ended between two passes (a collector stopped
        // for a while, a pass that failed): raised now, so the pass below ends them.
        let since = now_ms - CATCH_UP.as_millis() as i64;
        for i in recently_ended_unraised(read, since).await? {
            if quiet(&i.server) {
                continue;
            }
            if let Some(rule) = due_rule(&config, &i, now_ms) {
                let m = incident_message(&config, &i, Event::Down, now_ms, "");
                let key = format!("incident:{}", i.id);
                written += self.raise(&key, i.server_id, rule, &m, now_ms).await?;
            }
        }
        let raised = raised(read).await?;
        let mut superseded: Vec<i64> = Vec::new();

        // Incident alerts raised before: ended, superseded by another cause, or reminded.
        for r in raised.iter().filter(|r| r.key.starts_with("incident:")) {
            let id: i64 = r.key["incident:".len()..].parse().unwrap_or(-1);
            if let Some(i) = open.iter().find(|i| i.id == id) {
                if quiet(&i.server) {
                    continue;
                }
                let rule = config.rules.iter().find(|x| x.name == r.rule);
                let Some(every) = rule.and_then(|x| x.repeat) else {
                    continue;
                };
                let last = r.last_reminder_at_ms.unwrap_or(r.raised_at_ms);
                if now_ms - last >= every.as_millis() as i64 {
                    let n = now_ms / every.as_millis().max(1) as i64;
                    let m = incident_message(&config, i, Event::Reminder, now_ms, &format!("{n}"));
                    written += self.remind(r, &m, now_ms).await?;
                }
                continue;
            }
            let Some(ended) = ended_incident(read, id).await? else {
                continue;
            };
            let successor = open
                .iter()
                .find(|i| i.server_id == r.server_id && i.started_at_ms == ended.ended_at_ms);
            written += match successor {
                // Told when the maintenance window ends, if the server is still down then.
                Some(next) if quiet(&next.server) => 0,
                Some(next) => {
                    superseded.push(next.id);
                    let mut m = incident_message(&config, next, Event::CauseChanged, now_ms, "");
                    m.previous_cause = Some(ended.incident.cause.clone());
                    self.replace(r, next, &m, now_ms).await?
                }
                // Failures of its cause within the merge gap reopen it (an intermittent
                // fault is one incident): recovered only once the gap has passed.
                None if now_ms - ended.ended_at_ms < crate::ingest::merge_gap_ms() => 0,
                None => {
                    let mut m =
                        incident_message(&config, &ended.incident, Event::Recovered, now_ms, "");
                    m.ended_at_ms = Some(ended.ended_at_ms);
                    self.end(r, &m, now_ms).await?
                }
            };
        }

        // Open incidents nothing was raised for yet.
        for i in open.iter().filter(|i| !superseded.contains(&i.id)) {
            let key = format!("incident:{}", i.id);
            if raised.iter().any(|r| r.key == key) || quiet(&i.server) {
                continue;
            }
            if let Some(rule) = due_rule(&config, i, now_ms) {
                let m = incident_message(&config, i, Event::Down, now_ms, "");
                written += self.raise(&key, i.server_id, rule, &m, now_ms).await?;
            }
        }

        written += self.stale(&config, &raised, &quiet, now_ms).await?;
        written += self.conditions(&config, &raised, &quiet, now_ms).await?;
        Ok(written)
    }

    /// Servers that stopped reporting, and those that report again.
    async fn stale(
        &self,
        config: &CollectorConfig,
        raised: &[Raised],
        quiet: &(dyn Fn(&str) -> bool + Sync),
        now_ms: i64,
    ) -> Result<usize, AlertError> {
        let rows = sqlx::query(
            "SELECT id, name, last_received_at_ms, interval_s FROM servers
             WHERE last_received_at_ms IS NOT NULL AND interval_s IS NOT NULL",
        )
        .fetch_all(&self.db.read)
        .await?;
        let mut written = 0;
        for row in rows {
            let id: i64 = row.try_get(0)?;
            let name: String = row.try_get(1)?;
            let last: i64 = row.try_get(2)?;
            let interval_s: i64 = row.try_get(3)?;
            let prefix = format!("stale:{id}:");
            if let Some(r) = raised.iter().find(|r| r.key.starts_with(&prefix)) {
                let since: i64 = r.key[prefix.len()..].parse().unwrap_or(i64::MAX);
                if last > since {
                    let mut m = stale_message(config, &name, Event::Reporting, since, now_ms);
                    m.ended_at_ms = Some(last);
                    m.key = format!("{}/reporting", r.key);
                    m.explanation =
                        format!("a report arrived at {}", crate::timefmt::rfc3339(last));
                    written += self.end(r, &m, now_ms).await?;
                }
                continue;
            }
            if quiet(&name) {
                continue;
            }
            let Some((rule, n)) = config
                .rules
                .iter()
                .filter(|r| r.matches_server(&name))
                .find_map(|r| r.stale_after.map(|n| (r, n)))
            else {
                continue;
            };
            let after_ms = i64::from(n) * interval_s.max(1) * 1000;
            if now_ms - last < after_ms {
                continue;
            }
            let key = format!("stale:{id}:{last}");
            let mut m = stale_message(config, &name, Event::Stale, last, now_ms);
            m.key = format!("{key}/stale");
            m.explanation = last_words(&self.db.read, id, last, interval_s).await?;
            written += self.raise(&key, id, rule, &m, now_ms).await?;
        }
        Ok(written)
    }

    /// The host's and resolvers' conditions, for the rules that warn of them.
    async fn conditions(
        &self,
        config: &CollectorConfig,
        raised: &[Raised],
        quiet: &(dyn Fn(&str) -> bool + Sync),
        now_ms: i64,
    ) -> Result<usize, AlertError> {
        let read = &self.db.read;
        let open = open_conditions(read).await?;
        let mut written = 0;
        for c in &open {
            if raised.iter().any(|r| r.key == c.key) || quiet(&c.server) {
                continue;
            }
            let Some(rule) = config
                .rules
                .iter()
                .find(|r| r.conditions && r.matches_server(&c.server) && r.matches_cause(&c.cause))
            else {
                continue;
            };
            let m = condition_message(config, c, Event::Warning, now_ms);
            written += self.raise(&c.key, c.server_id, rule, &m, now_ms).await?;
        }
        let is_condition = |k: &str| k.starts_with("host:") || k.starts_with("resolver:");
        for r in raised.iter().filter(|r| is_condition(&r.key)) {
            if open.iter().any(|c| c.key == r.key) {
                continue;
            }
            written += match ended_condition(read, &r.key).await? {
                Some((c, ended_at_ms)) => {
                    let mut m = condition_message(config, &c, Event::Cleared, now_ms);
                    m.ended_at_ms = Some(ended_at_ms);
                    self.end(r, &m, now_ms).await?
                }
                // Pruned meanwhile: nothing left to say.
                None => {
                    let mut tx = self.db.write.begin().await?;
                    end_state(&mut tx, &r.key, now_ms).await?;
                    tx.commit().await?;
                    0
                }
            };
        }
        Ok(written)
    }

    /// Raises a new alert: its state and its notifications, in one transaction; nothing if
    /// another pass (or collector) raised it first.
    async fn raise(
        &self,
        key: &str,
        server_id: i64,
        rule: &Rule,
        m: &Message,
        now_ms: i64,
    ) -> Result<usize, AlertError> {
        let mut tx = self.db.write.begin().await?;
        if !insert_state(&mut tx, key, server_id, &rule.name, &rule.channels, now_ms).await? {
            return Ok(0);
        }
        let n = enqueue(&mut tx, m, &rule.channels, now_ms).await?;
        tx.commit().await?;
        tracing::info!("alert: {} ({} channel(s))", m.title(), rule.channels.len());
        Ok(n)
    }

    /// Ends a raised alert with `m` (recovered, reporting again), to the channels it began on.
    async fn end(&self, r: &Raised, m: &Message, now_ms: i64) -> Result<usize, AlertError> {
        let mut tx = self.db.write.begin().await?;
        if !end_state(&mut tx, &r.key, now_ms).await? {
            return Ok(0);
        }
        let n = enqueue(&mut tx, m, &r.channels, now_ms).await?;
        tx.commit().await?;
        tracing::info!("alert: {}", m.title());
        Ok(n)
    }

    /// Ends `r` and raises its successor (another cause, the server still down) on the same
    /// channels and rule, with `m` saying so: one transaction.
    async fn replace(
        &self,
        r: &Raised,
        next: &OpenIncident,
        m: &Message,
        now_ms: i64,
    ) -> Result<usize, AlertError> {
        let mut tx = self.db.write.begin().await?;
        let key = format!("incident:{}", next.id);
        if !end_state(&mut tx, &r.key, now_ms).await?
            || !insert_state(&mut tx, &key, next.server_id, &r.rule, &r.channels, now_ms).await?
        {
            return Ok(0);
        }
        let n = enqueue(&mut tx, m, &r.channels, now_ms).await?;
        tx.commit().await?;
        tracing::info!("alert: {}", m.title());
        Ok(n)
    }

    async fn remind(&self, r: &Raised, m: &Message, now_ms: i64) -> Result<usize, AlertError> {
        let mut tx = self.db.write.begin().await?;
        sqlx::query("UPDATE alert_state SET last_reminder_at_ms = $1 WHERE key = $2")
            .bind(now_ms)
            .bind(&r.key)
            .execute(&mut *tx)
            .await?;
        let n = enqueue(&mut tx, m, &r.channels, now_ms).await?;
        tx.commit().await?;
        Ok(n)
    }

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
        for row in rows {
            let id: i64 = row.try_get(0)?;
            let channel: String = row.try_get(1)?;
            let text: String = row.try_get(2)?;
            let next: i64 = row.try_get(5)?;
            let message: Result<Message, String> = serde_json::from_str(&text)
                .map_err(|e| format!("the stored message cannot be read: {e}"));
            let mut claim_until = now_ms + CLAIM.as_millis() as i64;
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
                .filter(|_| claim_until == now_ms + CLAIM.as_millis() as i64)
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
            let sending = claim_until == now_ms + CLAIM.as_millis() as i64;
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

/// The first rule that selects the incident's server and cause, when the incident has
/// reached it: `after` failed checks, or lasted `for`.
fn due_rule<'a>(config: &'a CollectorConfig, i: &OpenIncident, now_ms: i64) -> Option<&'a Rule> {
    let rule = config
        .rules
        .iter()
        .find(|r| r.matches_server(&i.server) && r.matches_cause(&i.cause))?;
    let lasted = now_ms - i.started_at_ms;
    let due = i.failed_checks >= i64::from(rule.after)
        || rule
            .after_for
            .is_some_and(|f| lasted >= f.as_millis() as i64);
    due.then_some(rule)
}

/// The wait before attempt `attempts + 1`: 5 s, 10 s, 20 s ... at most 10 minutes.
fn retry_after(attempts: i64) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    (RETRY_FIRST * 2u32.pow(doublings)).min(RETRY_MAX)
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

/// Records a raised alert; false if it was raised already (by another pass or collector).
async fn insert_state(
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
async fn end_state(tx: &mut Tx<'_>, key: &str, now_ms: i64) -> Result<bool, sqlx::Error> {
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
async fn enqueue(
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

/// The server's page, when the config has a `public_url`.
fn server_url(config: &CollectorConfig, server: &str) -> Option<String> {
    let base = config.public_url.as_ref()?;
    Some(format!("{base}/servers/{server}"))
}

fn incident_message(
    config: &CollectorConfig,
    i: &OpenIncident,
    event: Event,
    now_ms: i64,
    suffix: &str,
) -> Message {
    let url = server_url(config, &i.server);
    let evidence_url = url
        .as_ref()
        .map(|u| format!("{u}/checks/{}", i.first_result_id));
    let key = match suffix {
        "" => format!("incident:{}/{}", i.id, event.as_str()),
        n => format!("incident:{}/{}-{n}", i.id, event.as_str()),
    };
    Message {
        event,
        key,
        server: i.server.clone(),
        cause: i.cause.clone(),
        subject: None,
        previous_cause: None,
        explanation: i.explanation.clone(),
        started_at_ms: i.started_at_ms,
        ended_at_ms: None,
        failed_checks: Some(i.failed_checks),
        incident_id: Some(i.id),
        url,
        evidence_url,
        raised_at_ms: now_ms,
    }
}

fn condition_message(
    config: &CollectorConfig,
    c: &OpenCondition,
    event: Event,
    now_ms: i64,
) -> Message {
    Message {
        event,
        key: format!("{}/{}", c.key, event.as_str()),
        server: c.server.clone(),
        cause: c.cause.clone(),
        subject: Some(c.subject.clone()),
        previous_cause: None,
        explanation: c.explanation.clone(),
        started_at_ms: c.started_at_ms,
        ended_at_ms: None,
        failed_checks: None,
        incident_id: None,
        url: server_url(config, &c.server),
        evidence_url: None,
        raised_at_ms: now_ms,
    }
}

fn stale_message(
    config: &CollectorConfig,
    server: &str,
    event: Event,
    since_ms: i64,
    now_ms: i64,
) -> Message {
    Message {
        event,
        key: String::new(),
        server: server.to_owned(),
        cause: "stale".to_owned(),
        subject: None,
        previous_cause: None,
        explanation: String::new(),
        started_at_ms: since_ms,
        ended_at_ms: None,
        failed_checks: None,
        incident_id: None,
        url: server_url(config, server),
        evidence_url: None,
        raised_at_ms: now_ms,
    }
}

/// What the last reports of a silent server said: its interval, its last checks and the
/// host conditions open when it went quiet (memory climbing, a load of 260), which tell a
/// dead host from a cut network.
async fn last_words(
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

async fn open_incidents(read: &AnyPool) -> Result<Vec<OpenIncident>, sqlx::Error> {
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
async fn recently_ended_unraised(
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
struct OpenCondition {
    key: String,
    server_id: i64,
    server: String,
    cause: String,
    explanation: String,
    started_at_ms: i64,
    /// `its host`, or `resolver 10.0.0.53 (system) of canary site`.
    subject: String,
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
    let subject = match host {
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
        cause: row.try_get(3)?,
        explanation: row.try_get(4)?,
        started_at_ms: row.try_get(5)?,
        subject,
    })
}

async fn open_conditions(read: &AnyPool) -> Result<Vec<OpenCondition>, sqlx::Error> {
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
async fn ended_condition(
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

struct Ended {
    incident: OpenIncident,
    ended_at_ms: i64,
}

async fn ended_incident(read: &AnyPool, id: i64) -> Result<Option<Ended>, sqlx::Error> {
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

async fn raised(read: &AnyPool) -> Result<Vec<Raised>, sqlx::Error> {
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
            server: row.try_get(2)?,
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
