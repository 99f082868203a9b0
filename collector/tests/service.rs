//! The `causeway-collector serve` process as a service, against clients that go quiet: a
//! connection that sends nothing or half its headers is closed after `--idle-timeout`, a
//! report whose body stalls gets 408 after `--body-timeout`, SIGTERM with a stalled upload in
//! flight still ends in `--shutdown-grace` with exit 0, every acknowledged report stored,
//! SIGKILL in the middle of the writer's batches loses no acknowledged report and stores none
//! twice, SIGHUP does not end it, and a thousand clients trickling their headers do not keep
//! a probe out.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use causeway_collector::db::Db;
use common::{
    COLLECTOR_BIN as BIN, PROCESS_PATIENCE as PATIENCE, ok_check, report, spawn_serve, wait_for,
};

const SERVER: &str = "web-01";

/// A collector process serving on a free port of 127.0.0.1, with a token for [`SERVER`].
struct Serving {
    child: Child,
    addr: SocketAddr,
    token: String,
    db: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Serving {
    fn start(flags: &[&str]) -> Serving {
        Serving::start_with_open_files(flags, None)
    }

    /// [`Serving::start`], the process allowed at most `nofile` open files when given.
    fn start_with_open_files(flags: &[&str], nofile: Option<u64>) -> Serving {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("causeway.db");
        let out = Command::new(BIN)
            .arg("--db")
            .arg(&db)
            .args(["token", "add", SERVER])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        let log = dir.path().join("collector.log");
        Serving::spawn(&db, token, log, dir, flags, nofile)
    }

    fn spawn(
        db: &Path,
        token: String,
        log: PathBuf,
        dir: tempfile::TempDir,
        flags: &[&str],
        nofile: Option<u64>,
    ) -> Serving {
        let command = match nofile {
            // util-linux's prlimit runs it with the limit (no unsafe setrlimit here).
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}")).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let flags: Vec<&std::ffi::OsStr> = flags.iter().map(|f| f.as_ref()).collect();
        let (child, addr) = spawn_serve(command, db, &flags, &log, "http");
        Serving {
            child,
            addr,
            token,
            db: db.to_owned(),
            log,
            _dir: dir,
        }
    }

    /// Another `serve` on `stopped`'s database (its token still valid), on a new port. The
    /// returned value's own directory holds only its log.
    fn restart(stopped: &Serving) -> Serving {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("collector.log");
        Serving::spawn(&stopped.db, stopped.token.clone(), log, dir, &[], None)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Opens a connection and sends the start of a report upload: all of its headers (a
    /// valid token, a 5,000-byte body announced) and one byte of the body.
    fn stalled_upload(&self) -> TcpStream {
        let mut conn = TcpStream::connect(self.addr).unwrap();
        write!(
            conn,
            "POST /api/v1/reports HTTP/1.1\r\nHost: collector\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{{",
            self.token
        )
        .unwrap();
        conn
    }

    fn wait_exit(&mut self) -> Option<ExitStatus> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads until the collector closes the connection; `PATIENCE` without that fails the test.
fn read_until_closed(conn: &mut TcpStream) -> String {
    conn.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "the connection is still open after {PATIENCE:?} ({e}); got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// Uploads one report over its own connection; the HTTP status, or the I/O error.
fn upload(addr: SocketAddr, token: &str, body: &[u8]) -> std::io::Result<u16> {
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(PATIENCE))?;
    write!(
        conn,
        "POST /api/v1/reports HTTP/1.1\r\nHost: collector\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(body)?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3)?.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {answer:?}")))
}

fn new_report() -> (String, Vec<u8>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let r = report(SERVER, now, vec![ok_check(now)]);
    (r.report_id.to_string(), serde_json::to_vec(&r).unwrap())
}

fn stored_report_ids(db: &Path) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = Db::open(db).await.unwrap();
        let ids: Vec<Vec<u8>> = sqlx::query_scalar("SELECT uuid FROM reports")
            .fetch_all(&db.read)
            .await
            .unwrap();
        db.close().await;
        ids.iter()
            .map(|b| uuid::Uuid::from_slice(b).unwrap().to_string())
            .collect()
    })
}

#[test]
fn a_silent_connection_and_half_sent_headers_are_closed_after_the_idle_timeout() {
    // The header timeout would close both too: set beyond the test's patience.
    let serving = Serving::start(&["--idle-timeout", "1s", "--header-timeout", "60s"]);
    let mut silent = TcpStream::connect(serving.addr).unwrap();
    let mut half = TcpStream::connect(serving.addr).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: col")
        .unwrap();
    read_until_closed(&mut silent);
    read_until_closed(&mut half);
    // A client that keeps talking is served as before.
    let (_, body) = new_report();
    assert_eq!(upload(serving.addr, &serving.token, &body).unwrap(), 200);
}

#[test]
fn a_report_body_that_stalls_gets_408_naming_the_flag() {
    let serving = Serving::start(&["--body-timeout", "1s"]);
    let mut conn = serving.stalled_upload();
    let answer = read_until_closed(&mut conn);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(
        answer.contains("the report's body did not arrive within 1 s (--body-timeout)"),
        "{answer}"
    );
}

#[test]
fn sigterm_with_a_stalled_upload_ends_within_the_grace_and_keeps_every_acknowledged_report() {
    let mut serving = Serving::start(&["--shutdown-grace", "2s"]);
    // Held open over the stop: its body would take the default 30 s to time out.
    let mut stalled = serving.stalled_upload();

    // Uploads keep coming while the collector stops; each one it answered 200 must be kept.
    let acked = Arc::new(Mutex::new(Vec::new()));
    let uploader = {
        let (addr, token, acked) = (serving.addr, serving.token.clone(), acked.clone());
        std::thread::spawn(move || {
            loop {
                let (id, body) = new_report();
                match upload(addr, &token, &body) {
                    Ok(200) => acked.lock().unwrap().push(id),
                    Ok(status) => panic!("report {id} got HTTP {status}"),
                    // The listener is closed: the collector is stopping.
                    Err(_) => return,
                }
            }
        })
    };
    wait_for("10 acknowledged uploads", || {
        (acked.lock().unwrap().len() >= 10).then_some(())
    });

    Command::new("kill")
        .args(["-TERM", &serving.child.id().to_string()])
        .status()
        .unwrap();
    let status = serving.wait_exit();
    let log = serving.log_text();
    let status =
        status.unwrap_or_else(|| panic!("still running {PATIENCE:?} after SIGTERM:\n{log}"));
    assert!(status.success(), "exited with {status}:\n{log}");
    assert!(
        log.contains(
            "requests still in flight 2 s after the stop signal: closing their connections"
        ),
        "{log}"
    );
    read_until_closed(&mut stalled);
    uploader.join().unwrap();

    let acked = acked.lock().unwrap().clone();
    assert_every_acknowledged_report_stored(&acked, &serving.db);
    println!(
        "{} report(s) acknowledged before and during the stop, all stored",
        acked.len()
    );
}

/// Fails naming the reports of `acked` that the database at `db` lacks; the ids it holds.
fn assert_every_acknowledged_report_stored(acked: &[String], db: &Path) -> Vec<String> {
    let stored = stored_report_ids(db);
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(id)).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but not stored: {lost:?} ({} acknowledged)",
        acked.len()
    );
    stored
}

/// `SELECT count(*)`-like figures of the database at `db`: `(reports, results, checks counted
/// in the daily rollups)`. All three agree when every report was stored whole, once.
fn stored_counts(db: &Path) -> (i64, i64, i64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = Db::open(db).await.unwrap();
        let counts = sqlx::query_as(
            "SELECT (SELECT count(*) FROM reports), (SELECT count(*) FROM results),
                    (SELECT CAST(coalesce(sum(checks_total), 0) AS BIGINT) FROM availability_days)",
        )
        .fetch_one(&db.read)
        .await
        .unwrap();
        db.close().await;
        counts
    })
}

#[test]
fn sigkill_during_batched_writes_loses_no_acknowledged_report_and_doubles_none() {
    const UPLOADERS: usize = 8;
    const BEFORE_KILL: usize = 200;
    let mut serving = Serving::start(&[]);
    // Every report sent, answered or not, and those answered 200.
    let sent = Arc::new(Mutex::new(Vec::new()));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let uploaders: Vec<_> = (0..UPLOADERS)
        .map(|_| {
            let (addr, token) = (serving.addr, serving.token.clone());
            let (sent, acked) = (sent.clone(), acked.clone());
            std::thread::spawn(move || {
                loop {
                    let (id, body) = new_report();
                    sent.lock().unwrap().push((id.clone(), body.clone()));
                    match upload(addr, &token, &body) {
                        Ok(200) => acked.lock().unwrap().push(id),
                        Ok(status) => panic!("report {id} got HTTP {status}"),
                        // Killed: the connection was reset or refused.
                        Err(_) => return,
                    }
                }
            })
        })
        .collect();
    wait_for("acknowledged uploads before the kill", || {
        (acked.lock().unwrap().len() >= BEFORE_KILL).then_some(())
    });
    Command::new("kill")
        .args(["-KILL", &serving.child.id().to_string()])
        .status()
        .unwrap();
    serving.wait_exit().expect("the collector survived SIGKILL");
    for u in uploaders {
        u.join().unwrap();
    }

    let acked = acked.lock().unwrap().clone();
    let stored = assert_every_acknowledged_report_stored(&acked, &serving.db);
    let (reports, results, rolled_up) = stored_counts(&serving.db);
    assert_eq!(
        (results, rolled_up),
        (reports, reports),
        "every stored report has one check: results and rollups must match the reports"
    );

    // The probes send again what was not acknowledged (and some of what was, whose answer
    // they missed): after a restart each report is stored exactly once.
    let restarted = Serving::restart(&serving);
    let sent = sent.lock().unwrap().clone();
    for (id, body) in &sent {
        let status = upload(restarted.addr, &serving.token, body).unwrap();
        assert_eq!(status, 200, "report {id} sent again");
    }
    let (reports, results, rolled_up) = stored_counts(&serving.db);
    assert_eq!(
        (reports, results, rolled_up),
        (sent.len() as i64, reports, reports)
    );
    println!(
        "{} acknowledged before SIGKILL, {} stored then, {} sent in all, each stored once",
        acked.len(),
        stored.len(),
        sent.len()
    );
}

#[test]
fn sighup_is_not_fatal_and_says_there_is_nothing_to_reload() {
    let mut serving = Serving::start(&[]);
    Command::new("kill")
        .args(["-HUP", &serving.child.id().to_string()])
        .status()
        .unwrap();
    wait_for("the SIGHUP line", || {
        serving
            .log_text()
            .contains("SIGHUP: nothing to reload")
            .then_some(())
    });
    assert!(
        serving.child.try_wait().unwrap().is_none(),
        "the collector exited on SIGHUP:\n{}",
        serving.log_text()
    );
    let (_, body) = new_report();
    assert_eq!(upload(serving.addr, &serving.token, &body).unwrap(), 200);
}

/// SIGHUP reads `--config` again: a file with a mistake is refused with its key and the
/// running config stays; a good one replaces it.
#[test]
fn sighup_reads_the_config_again_and_keeps_the_running_one_when_the_new_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    let channel = |name: &str| {
        format!("[[channel]]\nname = \"{name}\"\nkind = \"ntfy\"\nurl = \"http://127.0.0.1:9/t\"\n")
    };
    let rule = "[[rule]]\nname = \"all\"\nchannels = [\"a\"]\n";
    std::fs::write(&config, format!("{}{rule}", channel("a"))).unwrap();
    let mut serving = Serving::start(&["--config", config.to_str().unwrap()]);
    let hup = |serving: &Serving| {
        Command::new("kill")
            .args(["-HUP", &serving.child.id().to_string()])
            .status()
            .unwrap()
    };
    assert!(
        serving.log_text().contains("1 channel(s), 1 rule(s)"),
        "{}",
        serving.log_text()
    );

    std::fs::write(&config, format!("{}{rule}bogus = 1\n", channel("a"))).unwrap();
    hup(&serving);
    wait_for("the refusal", || {
        let log = serving.log_text();
        (log.contains("unknown field `bogus`") && log.contains("the running configuration stays"))
            .then_some(())
    });
    std::fs::write(&config, format!("{}{}{rule}", channel("a"), channel("b"))).unwrap();
    hup(&serving);
    wait_for("the reload", || {
        let log = serving.log_text();
        log.contains("loaded again: 2 channel(s), 1 rule(s); channel \"b\" is used by no rule")
            .then_some(())
    });
    assert!(
        serving.child.try_wait().unwrap().is_none(),
        "{}",
        serving.log_text()
    );
}

/// Allows this test process `n` open files (soft and hard; root may raise the hard limit).
fn allow_open_files(n: u64) {
    let status = Command::new("prlimit")
        .args([
            "--pid",
            &std::process::id().to_string(),
            &format!("--nofile={n}:{n}"),
        ])
        .status()
        .unwrap();
    assert!(status.success(), "prlimit --nofile={n} on this test");
}

/// Uploads one report from `from` (a loopback address of the probe's own); the HTTP status.
fn upload_from(from: &str, addr: SocketAddr, token: &str, body: &[u8]) -> std::io::Result<u16> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(format!("{from}:0").parse().unwrap())?;
        let mut conn = tokio::time::timeout(PATIENCE, socket.connect(addr)).await??;
        conn.write_all(
            format!(
                "POST /api/v1/reports HTTP/1.1\r\nHost: collector\r\n\
                 Authorization: Bearer {token}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
        conn.write_all(body).await?;
        let mut answer = String::new();
        tokio::time::timeout(PATIENCE, conn.read_to_string(&mut answer)).await??;
        answer
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3)?.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {answer:?}")))
    })
}

/// 1,100 connections from one address, each sending part of a request's headers and then a
/// byte every 300 ms (so the idle timeout never fires), against a collector allowed 512 open
/// files: the 200 it lets that address hold at a time are closed after --header-timeout, the
/// others get 503 at once, it never runs out of descriptors, and a probe reporting from
/// another address all the while has every report stored.
#[test]
fn a_thousand_slow_clients_do_not_keep_a_probe_out() {
    allow_open_files(4096);
    let serving = Serving::start_with_open_files(
        &[
            "--header-timeout",
            "2s",
            "--max-connections-per-client",
            "200",
        ],
        Some(512),
    );
    let mut attack = Vec::new();
    for _ in 0..1100 {
        let mut conn = TcpStream::connect(serving.addr).unwrap();
        conn.write_all(b"POST /api/v1/reports HTTP/1.1\r\nHost: collector\r\nX-Slow: ")
            .unwrap();
        conn.set_nonblocking(true).unwrap();
        attack.push(conn);
    }
    let attack = Arc::new(Mutex::new(attack));
    let trickling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let trickle = std::thread::spawn({
        let (attack, trickling) = (attack.clone(), trickling.clone());
        move || {
            while trickling.load(std::sync::atomic::Ordering::Relaxed) {
                for conn in attack.lock().unwrap().iter_mut() {
                    let _ = conn.write(b"x");
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    });

    // The probe, meanwhile: every report answered 200.
    let mut acked = Vec::new();
    for _ in 0..20 {
        let (id, body) = new_report();
        let status = upload_from("127.0.0.2", serving.addr, &serving.token, &body).unwrap();
        assert_eq!(status, 200, "{}", serving.log_text());
        acked.push(id);
        std::thread::sleep(Duration::from_millis(100));
    }

    // Each attacking connection was answered 503 at once or closed by the header timeout,
    // though it kept sending.
    let deadline = Instant::now() + PATIENCE;
    let (mut busy, mut closed) = (0, 0);
    for conn in attack.lock().unwrap().iter_mut() {
        let mut got = Vec::new();
        loop {
            let mut buf = [0u8; 512];
            match conn.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    assert!(
                        Instant::now() < deadline,
                        "an attacking connection still open {PATIENCE:?} on"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => break,
            }
        }
        if got.starts_with(b"HTTP/1.1 503 ") {
            busy += 1;
        } else {
            closed += 1;
        }
    }
    trickling.store(false, std::sync::atomic::Ordering::Relaxed);
    trickle.join().unwrap();
    attack.lock().unwrap().clear();
    // The address holds 200 at a time; a connection the kernel queued while they were open
    // is accepted when one of them is closed, and then closed in its turn.
    assert!(
        closed >= 200,
        "{closed} closed by the header timeout, {busy} answered 503"
    );
    assert!(
        busy >= 100,
        "{closed} closed by the header timeout, {busy} answered 503"
    );
    let log = serving.log_text();
    assert!(
        !log.contains("Too many open files") && !log.contains("cannot accept"),
        "{log}"
    );
    assert!(log.contains("connection refused with 503"), "{log}");
    let mut serving = serving;
    serving.child.kill().unwrap();
    serving.child.wait().unwrap();
    let stored = assert_every_acknowledged_report_stored(&acked, &serving.db);
    assert_eq!(stored.len(), 20);
}

/// `healthcheck` (the containers' health check) says ok for a serving collector, found from
/// its `--listen` address, and fails with the address named once it has stopped.
#[test]
fn healthcheck_says_ok_for_a_serving_collector_and_fails_once_it_stopped() {
    let mut serving = Serving::start(&[]);
    let healthcheck = |listen: String| {
        Command::new(BIN)
            .args(["healthcheck", "--listen", &listen])
            .output()
            .unwrap()
    };
    let wildcard = format!("0.0.0.0:{}", serving.addr.port());
    let out = healthcheck(wildcard);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("http://{}/healthz: ok\n", serving.addr)
    );
    // An answer other than 200 is not health (a proxy's 404, a 503 while starting).
    let wrong = format!("http://{}/no-such-page", serving.addr);
    let out = Command::new(BIN)
        .args(["healthcheck", "--url", &wrong])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!(
            "unhealthy: {wrong}: answered 404 Not Found, expected 200 ok"
        )),
        "{out:?}"
    );

    let _ = serving.child.kill();
    serving.child.wait().unwrap();
    let out = healthcheck(serving.addr.to_string());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("unhealthy: http://{}/healthz: ", serving.addr)),
        "{stderr}"
    );
}
