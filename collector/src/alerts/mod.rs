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
//!   how each channel carries it; [`send`] and [`email`]: delivering one notification;
//!   `compose`: the messages of incidents, conditions and quiet servers; `deliver`: the
//!   outbox's delivery and grouping; `store`: the alerter's tables.

mod compose;
pub mod config;
mod deliver;
pub mod email;
pub mod message;
pub mod send;
mod store;
mod weekly;

use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::Row;
use tokio::sync::Notify;

use compose::{condition_message, incident_message, stale_message};
use config::{CollectorConfig, Rule};
use message::{Event, Message};
pub use store::recent;
use store::{
    end_state, ended_condition, ended_incident, enqueue, insert_state, last_words, open_conditions,
    open_incidents, raised, recently_ended_unraised,
};

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
        let http = crate::outbound::http_client(config::SEND_TIMEOUT)?;
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
