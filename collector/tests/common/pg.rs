//! A fresh, empty PostgreSQL database for each test, on a real server.
//!
//! Each test gets a database of its own ([`fresh_database`]), so tests never see one another's
//! rows and may run at the same time; it is dropped when the test's [`PgDatabase`] is.
//!
//! The databases live in one cluster: the test command (`scripts/test`) starts one with
//! `scripts/pg-test-cluster start` for the whole run and gives its URL in `CAUSEWAY_TEST_PG`
//! (its maintenance database `postgres`), so that a run pays the cluster's start (about a
//! second) once and not per test, as nextest runs every test in a process of its own. Without
//! that variable, as for a developer running one test by hand, the process starts a private
//! cluster in a temporary directory with the same script, and stops and deletes it when its last
//! [`PgDatabase`] is dropped (statics are never dropped, so each [`PgDatabase`] holds the
//! cluster). A process that exits without dropping them (`std::process::exit`, a kill) leaves
//! that cluster running: `scripts/pg-test-cluster stop DIR` ends it.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};

/// The variable that gives a running cluster: the URL of its `postgres` database, as
/// `scripts/pg-test-cluster start` prints it.
pub const CLUSTER_VAR: &str = "CAUSEWAY_TEST_PG";

/// A database of its own for one test, empty when made; dropped with this value.
pub struct PgDatabase {
    /// Its URL, for sqlx (and psql): `postgres://postgres@localhost:PORT/t_...?host=DIR`.
    pub url: String,
    /// Its name, `t_` and 16 hex digits.
    pub name: String,
    cluster: Arc<Cluster>,
}

/// The cluster the databases are made in.
struct Cluster {
    /// The URL of its maintenance database, `postgres`.
    url: String,
    /// The directory of a cluster this process started, stopped and deleted on drop; `None`
    /// for the test command's cluster, which it stops itself.
    private: Option<PathBuf>,
}

/// The cluster of this process while some [`PgDatabase`] holds it. Only a weak reference:
/// statics are not dropped at exit, the last [`PgDatabase`] stops a private cluster.
static CLUSTER: Mutex<Weak<Cluster>> = Mutex::new(Weak::new());

/// A new, empty database in the test command's cluster (`CAUSEWAY_TEST_PG`), or else in this
/// process's private cluster, started on first use.
///
/// Panics, saying what failed, when the cluster cannot be started or reached, or the database
/// cannot be made.
pub async fn fresh_database() -> PgDatabase {
    let cluster = cluster();
    let mut conn = connect(&cluster.url).await;
    let name = format!("t_{:016x}", random());
    sqlx::query(&format!(r#"CREATE DATABASE "{name}""#))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("pg: CREATE DATABASE {name} on {} failed: {e}", cluster.url));
    let _ = conn.close().await;
    let url = with_database(&cluster.url, &name);
    PgDatabase { url, name, cluster }
}

impl PgDatabase {
    /// A new connection to the database.
    pub async fn connect(&self) -> PgConnection {
        connect(&self.url).await
    }

    /// Its connection options, to build a pool from.
    pub fn options(&self) -> PgConnectOptions {
        self.url
            .parse()
            .unwrap_or_else(|e| panic!("pg: bad PostgreSQL URL {}: {e}", self.url))
    }
}

impl Drop for PgDatabase {
    /// Drops the database, closing what is still connected to it (`WITH (FORCE)`). Errors are
    /// only reported: a panic in drop while the test is already panicking aborts the process.
    fn drop(&mut self) {
        let url = self.cluster.url.clone();
        let sql = format!(r#"DROP DATABASE IF EXISTS "{}" WITH (FORCE)"#, self.name);
        // Its own thread and runtime: drop may run inside the test's runtime, which cannot be
        // blocked on from within.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                let mut conn = PgConnection::connect(&url)
                    .await
                    .map_err(|e| format!("cannot connect to {url}: {e}"))?;
                sqlx::query(&sql)
                    .execute(&mut conn)
                    .await
                    .map_err(|e| format!("{sql} failed: {e}"))?;
                let _ = conn.close().await;
                Ok::<(), String>(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("pg: dropping database {}: {e}", self.name),
            Err(_) => eprintln!("pg: dropping database {}: its thread panicked", self.name),
        }
    }
}

impl Drop for Cluster {
    /// Stops and deletes a private cluster (`scripts/pg-test-cluster stop DIR`).
    fn drop(&mut self) {
        let Some(dir) = &self.private else { return };
        match Command::new("bash")
            .arg(script())
            .arg("stop")
            .arg(dir)
            .output()
        {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "pg: stopping the cluster in {} failed ({}):\n{}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!(
                "pg: cannot run {} stop {}: {e}",
                script().display(),
                dir.display()
            ),
        }
    }
}

/// The cluster of this process: the one some [`PgDatabase`] already holds, else the test
/// command's, else a private one started now.
fn cluster() -> Arc<Cluster> {
    // Not held across an await: the start below is synchronous.
    let mut current = CLUSTER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(cluster) = current.upgrade() {
        return cluster;
    }
    let cluster = Arc::new(match std::env::var(CLUSTER_VAR) {
        Ok(url) if !url.trim().is_empty() => Cluster {
            url: url.trim().to_owned(),
            private: None,
        },
        _ => start_private(),
    });
    *current = Arc::downgrade(&cluster);
    cluster
}

/// `scripts/pg-test-cluster`, from the collector's crate.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/pg-test-cluster")
}

/// Starts a cluster in a new directory of the temporary directory: a second or so.
fn start_private() -> Cluster {
    let script = script();
    assert!(
        script.is_file(),
        "pg: {} not found: it starts the test cluster when {CLUSTER_VAR} is not set",
        script.display()
    );
    let dir = std::env::temp_dir().join(format!(
        "causeway-pg-{}-{:08x}",
        std::process::id(),
        random() as u32
    ));
    let out = Command::new("bash")
        .arg(&script)
        .arg("start")
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| panic!("pg: cannot run {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let url = stdout.trim();
    assert!(
        out.status.success() && !url.is_empty(),
        "pg: no PostgreSQL cluster ({CLUSTER_VAR} is not set, and `{} start {}` failed: {}):\n{}",
        script.display(),
        dir.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Cluster {
        url: url.to_owned(),
        private: Some(dir),
    }
}

fn random() -> u64 {
    getrandom::u64().expect("pg: no random numbers from the system")
}

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("pg: cannot connect to {url}: {e}"))
}

/// `url` with its database (the path) replaced by `name`, its other parts kept as they are (a
/// `host` query parameter for the socket directory among them); a `dbname` parameter, which
/// would override the path, is left out.
fn with_database(url: &str, name: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (url, None),
    };
    let authority = main
        .find("://")
        .unwrap_or_else(|| panic!("pg: {url} is not a postgres:// URL"))
        + 3;
    let path = main[authority..]
        .find('/')
        .map_or(main.len(), |at| authority + at);
    let mut out = format!("{}/{name}", &main[..path]);
    let kept: Vec<&str> = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|pair| !pair.is_empty() && !pair.starts_with("dbname="))
        .collect();
    if !kept.is_empty() {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
    let options: PgConnectOptions = out
        .parse()
        .unwrap_or_else(|e| panic!("pg: made a bad URL {out} from {url}: {e}"));
    assert_eq!(
        options.get_database(),
        Some(name),
        "pg: {out}, made from {url}"
    );
    out
}
