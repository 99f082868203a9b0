//! The one writer of reports: a thread that owns a SQLite connection, drains a queue of
//! validated reports and stores up to [`MAX_BATCH`] of them per transaction (group commit).
//!
//! Why a thread of its own: through sqlx every statement is a message to the connection's
//! worker thread and back, and a report needs a dozen statements; the handoffs, not SQLite,
//! took the CPU (about 550 reports/s on 2 cores). Here a report's statements run back to back
//! on prepared statements, and one commit (one fsync with `synchronous=FULL`) covers every
//! report that queued up while the previous batch was written.
//!
//! Acknowledged still means durable: a report's answer is sent only after the transaction
//! holding it committed. Each report has its own savepoint, so one that fails (a constraint,
//! a value that does not encode) is answered with its error and the others are kept.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use causeway_schema::Report;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use super::prune::{self, Pruned, Retention};
use super::server::Servers;
use super::{IngestError, Outcome, store};

/// Reports stored per transaction at most. Larger batches commit less often but hold every
/// probe of the batch waiting for the last report's statements.
const MAX_BATCH: usize = 256;
/// Reports waiting for the writer at most; further senders wait (a bound on memory: each
/// report is up to the body limit).
const QUEUE: usize = 512;
/// How long the writer waits for another process's lock (a `token add` while serving).
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Under a load that never empties the queue, a step of pruning still runs this often.
const PRUNE_UNDER_LOAD: Duration = Duration::from_secs(1);
/// Prepared statements kept: every statement of ingest, with room to spare.
const STATEMENT_CACHE: usize = 64;
/// The writer's page cache, in KiB: the pages a batch touches (each server's rollup, index
/// and state pages) stay in memory instead of being read again.
const CACHE_KIB: i64 = 64 * 1024;
/// WAL pages before a checkpoint copies them into the database: a page rewritten by many
/// batches is copied once per checkpoint, not once per 1,000 pages (SQLite's default).
const CHECKPOINT_PAGES: i64 = 8192;

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("cannot open the database {path} for writing reports: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot start the database writer thread: {0}")]
    Thread(#[source] std::io::Error),
}

struct Job {
    server_id: i64,
    report: Arc<Report>,
    received_at_ms: i64,
    answer: oneshot::Sender<Result<Outcome, IngestError>>,
}

enum Message {
    Store(Job),
    /// One step of pruning, after what is queued before it.
    Prune {
        retention: Retention,
        now_ms: i64,
        answer: oneshot::Sender<Result<Pruned, IngestError>>,
    },
    /// Store what is queued before this, then stop.
    Stop(oneshot::Sender<()>),
}

/// The handle of the writer thread. Cloning is cheap; the thread stops at [`Writer::close`].
#[derive(Debug, Clone)]
pub struct Writer {
    queue: mpsc::Sender<Message>,
    /// Batches the thread has begun to write since it started.
    batches: Arc<AtomicU64>,
}

impl Writer {
    /// Opens a connection to the (already migrated) database at `path` and starts the thread.
    pub fn start(path: &Path) -> Result<Writer, WriterError> {
        let conn = open(path).map_err(|source| WriterError::Open {
            path: path.to_owned(),
            source,
        })?;
        let (queue, receiver) = mpsc::channel(QUEUE);
        let batches = Arc::new(AtomicU64::new(0));
        std::thread::Builder::new()
            .name("causeway-writer".into())
            .spawn({
                let batches = batches.clone();
                move || run(conn, receiver, &batches)
            })
            .map_err(WriterError::Thread)?;
        Ok(Writer { queue, batches })
    }

    /// Stores `report` and answers once it is durable. The work is done whether or not the
    /// caller still waits: a request whose client went away leaves a stored report, and the
    /// probe's next attempt gets `duplicate`.
    pub async fn store(
        &self,
        server_id: i64,
        report: Arc<Report>,
        received_at_ms: i64,
    ) -> Result<Outcome, IngestError> {
        let (answer, answered) = oneshot::channel();
        let job = Job {
            server_id,
            report,
            received_at_ms,
            answer,
        };
        self.queue
            .send(Message::Store(job))
            .await
            .map_err(|_| IngestError::Stopped)?;
        answered.await.map_err(|_| IngestError::Stopped)?
    }

    /// Deletes one step's worth of what is older than `retention` (see [`prune`]), between
    /// batches of reports. `done` says a whole pass found nothing more to delete.
    pub async fn prune(&self, retention: Retention, now_ms: i64) -> Result<Pruned, IngestError> {
        let (answer, answered) = oneshot::channel();
        self.queue
            .send(Message::Prune {
                retention,
                now_ms,
                answer,
            })
            .await
            .map_err(|_| IngestError::Stopped)?;
        answered.await.map_err(|_| IngestError::Stopped)?
    }

    /// Batches of reports begun since the writer started: with the reports stored, how well
    /// commits are shared.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Reports and other work waiting for the writer.
    pub fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    /// Stores what was queued before this call, then stops the thread and closes its
    /// connection. Later [`Writer::store`] calls answer [`IngestError::Stopped`].
    pub async fn close(&self) {
        let (done, stopped) = oneshot::channel();
        if self.queue.send(Message::Stop(done)).await.is_ok() {
            let _ = stopped.await;
        }
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // As the sqlx pools (db.rs): WAL was set when the file was made; FULL because an
    // acknowledged report must survive a power loss.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_PAGES)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// A step of pruning asked for, waiting for its turn.
struct PruneRequest {
    retention: Retention,
    now_ms: i64,
    answer: oneshot::Sender<Result<Pruned, IngestError>>,
}

fn run(mut conn: Connection, mut receiver: mpsc::Receiver<Message>, batches: &AtomicU64) {
    let mut servers = Servers::default();
    let mut cursor = prune::Cursor::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    // Pruning gives way to reports: a step runs when none is waiting, or, under a load that
    // never lets the queue empty, once per PRUNE_UNDER_LOAD so that old data still goes.
    let mut prune: Option<PruneRequest> = None;
    let mut last_prune = Instant::now();
    loop {
        if let Some(request) = prune.take() {
            if receiver.is_empty() || last_prune.elapsed() >= PRUNE_UNDER_LOAD {
                let pruned = prune::step(
                    &mut conn,
                    &mut cursor,
                    &request.retention,
                    request.now_ms,
                    prune::ROWS_PER_STEP,
                );
                let _ = request.answer.send(pruned);
                last_prune = Instant::now();
                continue;
            }
            prune = Some(request);
        }
        // A message that is not a report ends the batch: it runs after the reports before it.
        let mut control = None;
        match receiver.blocking_recv() {
            None => break,
            Some(Message::Store(job)) => batch.push(job),
            Some(other) => control = Some(other),
        }
        // What queued up while the last batch was written goes into this one.
        while control.is_none() && batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(Message::Store(job)) => batch.push(job),
                Ok(other) => control = Some(other),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            let jobs = std::mem::take(&mut batch);
            batches.fetch_add(1, Ordering::Relaxed);
            let written =
                std::panic::catch_unwind(AssertUnwindSafe(|| write(&mut conn, &mut servers, jobs)));
            if written.is_err() {
                // The jobs' answers were dropped with the batch: their probes get an error
                // and send the reports again. What is remembered may be half-updated: read
                // it anew.
                tracing::error!("the database writer panicked while storing a batch; carrying on");
                servers.forget_all();
            }
        }
        match control {
            None | Some(Message::Store(_)) => {}
            Some(Message::Prune {
                retention,
                now_ms,
                answer,
            }) => {
                prune = Some(PruneRequest {
                    retention,
                    now_ms,
                    answer,
                })
            }
            Some(Message::Stop(done)) => {
                drop(conn);
                let _ = done.send(());
                return;
            }
        }
    }
}

/// Stores `jobs` in one transaction and answers each after the commit.
fn write(conn: &mut Connection, servers: &mut Servers, jobs: Vec<Job>) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => return fail(servers, jobs, e),
    };
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in &jobs {
        outcomes.push(store_in_savepoint(&tx, servers, job));
    }
    if let Err(e) = tx.commit() {
        return fail(servers, jobs, e);
    }
    for (job, outcome) in jobs.into_iter().zip(outcomes) {
        if let Err(e) = &outcome {
            tracing::error!(report_id = %job.report.report_id, error = %e, "report not stored");
        }
        // The receiver is gone when its client left: the report is stored all the same.
        let _ = job.answer.send(outcome);
    }
}

fn store_in_savepoint(
    tx: &rusqlite::Transaction<'_>,
    servers: &mut Servers,
    job: &Job,
) -> Result<Outcome, IngestError> {
    tx.execute_batch("SAVEPOINT report")?;
    let stored = store(tx, servers, job.server_id, &job.report, job.received_at_ms);
    match stored {
        Ok(outcome) => {
            tx.execute_batch("RELEASE report")?;
            Ok(outcome)
        }
        Err(e) => {
            // What the report changed is undone, in the database and in memory.
            servers.forget(job.server_id);
            tx.execute_batch("ROLLBACK TO report; RELEASE report")?;
            Err(e)
        }
    }
}

/// The batch did not commit: nothing of it is stored, and every report gets the error.
fn fail(servers: &mut Servers, jobs: Vec<Job>, e: rusqlite::Error) {
    tracing::error!(error = %e, reports = jobs.len(), "a batch of reports was not stored");
    servers.forget_all();
    let e = Arc::new(e);
    for job in jobs {
        let _ = job.answer.send(Err(IngestError::Batch(e.clone())));
    }
}
