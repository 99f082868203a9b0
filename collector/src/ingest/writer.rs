//! The one writer of reports: a thread that owns a database connection (SQLite or
//! PostgreSQL, see [`super::sql`]), drains a queue of validated reports and stores up to
//! [`MAX_BATCH`] of them per transaction (group commit).
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
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use causeway_schema::Report;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use super::partitions;
use super::prune::{self, Pruned, Retention};
use super::server::Servers;
use super::sql::{self, Conn, SqlError};
use super::{Arrival, IngestError, Outcome, store};
use crate::db::Location;

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
/// How long the writer waits for a PostgreSQL connection to be made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The writer's page cache, in KiB: the pages a batch touches (each server's rollup, index
/// and state pages) stay in memory instead of being read again.
const CACHE_KIB: i64 = 64 * 1024;
/// WAL pages before a checkpoint copies them into the database: a page rewritten by many
/// batches is copied once per checkpoint, not once per 1,000 pages (SQLite's default).
const CHECKPOINT_PAGES: i64 = 8192;

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("cannot open the database {db} for writing reports: {source}")]
    Open {
        db: String,
        #[source]
        source: SqlError,
    },
    #[error("cannot start the database writer thread: {0}")]
    Thread(#[source] std::io::Error),
}

struct Job {
    server_id: i64,
    report: Arc<Report>,
    arrival: Arrival,
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

/// The handle of the writer threads. Cloning is cheap; they stop at [`Writer::close`].
///
/// SQLite has one writer thread (the file has one writer at a time). PostgreSQL has
/// [`POSTGRES_WRITERS`], each with its own connection and a share of the servers (by id): a
/// report's statements are round trips to the server, which one connection runs one after
/// the other, so the connections' turns overlap where one thread would wait. A server is
/// always written by the same thread, whose copy of its state stays its own.
#[derive(Debug, Clone)]
pub struct Writer {
    queues: Arc<[mpsc::Sender<Message>]>,
    /// Batches the threads have begun to write since they started.
    batches: Arc<AtomicU64>,
}

/// Writer threads (connections) on PostgreSQL.
const POSTGRES_WRITERS: usize = 4;

impl Writer {
    /// Opens the connections to the (already migrated) database at `db` and starts the
    /// threads.
    pub fn start(db: &Location) -> Result<Writer, WriterError> {
        let threads = match db {
            Location::Sqlite(_) => 1,
            Location::Postgres(_) => POSTGRES_WRITERS,
        };
        let batches = Arc::new(AtomicU64::new(0));
        let mut queues = Vec::with_capacity(threads);
        for n in 0..threads {
            queues.push(start_thread(db, n, batches.clone())?);
        }
        Ok(Writer {
            queues: queues.into(),
            batches,
        })
    }

    /// The queue of the thread that writes `server_id`.
    fn queue_of(&self, server_id: i64) -> &mpsc::Sender<Message> {
        &self.queues[server_id.rem_euclid(self.queues.len() as i64) as usize]
    }

    /// Stores `report` and answers once it is durable. The work is done whether or not the
    /// caller still waits: a request whose client went away leaves a stored report, and the
    /// probe's next attempt gets `duplicate`.
    pub async fn store(
        &self,
        server_id: i64,
        report: Arc<Report>,
        arrival: Arrival,
    ) -> Result<Outcome, IngestError> {
        let (answer, answered) = oneshot::channel();
        let job = Job {
            server_id,
            report,
            arrival,
            answer,
        };
        self.queue_of(server_id)
            .send(Message::Store(job))
            .await
            .map_err(|_| IngestError::Stopped)?;
        answered.await.map_err(|_| IngestError::Stopped)?
    }

    /// Deletes one step's worth of what is older than `retention` (see [`prune`]), between
    /// batches of reports (the first thread's: one prunes for all). `done` says a whole pass
    /// found nothing more to delete.
    pub async fn prune(&self, retention: Retention, now_ms: i64) -> Result<Pruned, IngestError> {
        let (answer, answered) = oneshot::channel();
        self.queues[0]
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

    /// Reports and other work waiting for the writers.
    pub fn queued(&self) -> usize {
        self.queues
            .iter()
            .map(|q| q.max_capacity() - q.capacity())
            .sum()
    }

    /// Stores what was queued before this call, then stops the threads and closes their
    /// connections. Later [`Writer::store`] calls answer [`IngestError::Stopped`].
    pub async fn close(&self) {
        for queue in self.queues.iter() {
            let (done, stopped) = oneshot::channel();
            if queue.send(Message::Stop(done)).await.is_ok() {
                let _ = stopped.await;
            }
        }
    }
}

/// Starts writer thread `n`, once its connection is open; its queue.
fn start_thread(
    db: &Location,
    n: usize,
    batches: Arc<AtomicU64>,
) -> Result<mpsc::Sender<Message>, WriterError> {
    let (queue, receiver) = mpsc::channel(QUEUE);
    // The connection is made on the thread: PostgreSQL's is driven by the thread's own
    // runtime, and must be made inside it.
    let (opened, open_result) = std::sync::mpsc::sync_channel(1);
    let location = db.clone();
    std::thread::Builder::new()
        .name(format!("causeway-writer-{n}"))
        .spawn(move || {
            let conn = match open(&location) {
                Ok(mut conn) => {
                    if n == 0 && conn.is_postgres() {
                        // Before any thread stores a report: today's rows go to today's
                        // partition, not the default one.
                        let now = crate::clock::system_now_ms();
                        if let Err(e) = partitions::create_ahead(conn.as_mut(), now) {
                            tracing::warn!(
                                error = %e,
                                "cannot make the partitions of today and the days ahead"
                            );
                        }
                    }
                    let _ = opened.send(Ok(()));
                    conn
                }
                Err(e) => {
                    let _ = opened.send(Err(e));
                    return;
                }
            };
            run(conn, receiver, &batches)
        })
        .map_err(WriterError::Thread)?;
    let opened = open_result.recv().unwrap_or_else(|_| {
        Err(SqlError::Null {
            column: 0,
            sql: "the writer thread ended before opening its connection".into(),
        })
    });
    opened.map_err(|source| WriterError::Open {
        db: db.to_string(),
        source,
    })?;
    Ok(queue)
}

fn open(db: &Location) -> Result<Box<dyn Conn>, SqlError> {
    Ok(match db {
        Location::Sqlite(path) => Box::new(sql::Sqlite::new(open_sqlite(path)?)),
        Location::Postgres(url) => Box::new(sql::Postgres::connect(url, CONNECT_TIMEOUT)?),
    })
}

fn open_sqlite(path: &Path) -> rusqlite::Result<Connection> {
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
    // Each report's savepoint keeps the pages it changes in a statement journal, a temporary
    // file by default: more writes than the WAL itself (strace of a load: 24k writes to it
    // against 14k to the WAL). In memory it is a batch's changed pages at most, a few MiB.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(conn)
}

/// A step of pruning asked for, waiting for its turn.
struct PruneRequest {
    retention: Retention,
    now_ms: i64,
    answer: oneshot::Sender<Result<Pruned, IngestError>>,
}

fn run(mut conn: Box<dyn Conn>, mut receiver: mpsc::Receiver<Message>, batches: &AtomicU64) {
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
                    conn.as_mut(),
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
            let written = std::panic::catch_unwind(AssertUnwindSafe(|| {
                write(conn.as_mut(), &mut servers, jobs)
            }));
            if written.is_err() {
                // The jobs' answers were dropped with the batch: their probes get an error
                // and send the reports again. What is remembered may be half-updated: read
                // it anew.
                tracing::error!("the database writer panicked while storing a batch; carrying on");
                if let Err(e) = conn.rollback() {
                    tracing::error!(error = %e, "cannot roll the batch back");
                }
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
                if !conn.is_postgres() {
                    // The WAL copied into the database and emptied now: the pools' last
                    // connection would do it on close, but sqlx closes SQLite connections on
                    // threads of its own and one may still be open then (1 `token add` in 30
                    // left a WAL behind). A file left whole is one a copy can take as is.
                    let checkpoint =
                        conn.query_all("PRAGMA wal_checkpoint(TRUNCATE)", &[], |_| Ok(()));
                    if let Err(e) = checkpoint {
                        tracing::warn!(error = %e, "cannot checkpoint the database on close");
                    }
                }
                drop(conn);
                let _ = done.send(());
                return;
            }
        }
    }
}

/// Stores `jobs` in one transaction and answers each after the commit.
fn write(conn: &mut dyn Conn, servers: &mut Servers, jobs: Vec<Job>) {
    if let Err(e) = conn.begin() {
        return fail(conn, servers, jobs, e);
    }
    let generations = servers.generations(jobs.iter().map(|j| j.server_id));
    match conn.lock_servers(&generations) {
        Ok(stale) => stale.into_iter().for_each(|id| servers.forget(id)),
        Err(e) => return fail(conn, servers, jobs, e),
    }
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in &jobs {
        outcomes.push(store_in_savepoint(conn, servers, job));
    }
    if let Err(e) = conn.commit() {
        return fail(conn, servers, jobs, e);
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
    conn: &mut dyn Conn,
    servers: &mut Servers,
    job: &Job,
) -> Result<Outcome, IngestError> {
    conn.run("SAVEPOINT report")?;
    let stored = store(conn, servers, job.server_id, &job.report, job.arrival);
    match stored {
        Ok(outcome) => {
            conn.run("RELEASE SAVEPOINT report")?;
            Ok(outcome)
        }
        Err(e) => {
            // What the report changed is undone, in the database and in memory.
            servers.forget(job.server_id);
            conn.run("ROLLBACK TO SAVEPOINT report")?;
            conn.run("RELEASE SAVEPOINT report")?;
            Err(e)
        }
    }
}

/// The batch did not commit: nothing of it is stored, and every report gets the error.
fn fail(conn: &mut dyn Conn, servers: &mut Servers, jobs: Vec<Job>, e: SqlError) {
    tracing::error!(error = %e, reports = jobs.len(), "a batch of reports was not stored");
    if let Err(e) = conn.rollback() {
        tracing::error!(error = %e, "cannot roll the failed batch back");
    }
    servers.forget_all();
    let e = Arc::new(e);
    for job in jobs {
        let _ = job.answer.send(Err(IngestError::Batch(e.clone())));
    }
}
