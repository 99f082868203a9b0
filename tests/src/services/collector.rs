//! Causeway's collector in a lab: started, restarted, its tokens, and what its API and
//! probectl say.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::*;
use crate::lab::{Host, Lab};
use crate::process::{Service, run};
use crate::wait::wait_for;

/// A collector on `host`:8750 with its SQLite file at `db`.
pub struct Collector {
    pub service: Service,
    pub url: String,
    pub db: PathBuf,
    pub host: Host,
    /// Arguments before `serve` (`--config FILE`), kept for a restart.
    pub args: Vec<std::ffi::OsString>,
}

pub const COLLECTOR_PORT: u16 = 8750;

pub fn start_collector(lab: &Lab, host: &Host, db: &Path) -> Result<Collector> {
    start_collector_with(lab, host, db, &[])
}

/// [`start_collector`] with `args` before `serve` (`--config FILE`).
pub fn start_collector_with(
    lab: &Lab,
    host: &Host,
    db: &Path,
    args: &[std::ffi::OsString],
) -> Result<Collector> {
    let url = format!("http://{}:{COLLECTOR_PORT}", host.addr);
    let service = spawn_collector(lab, host, db, &url, args)?;
    Ok(Collector {
        service,
        url,
        db: db.to_owned(),
        host: host.clone(),
        args: args.to_vec(),
    })
}

impl Collector {
    /// Stops the collector with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) -> Result<()> {
        self.service
            .stop()
            .context("the collector did not exit on SIGTERM")?;
        Ok(())
    }

    /// Starts the collector again on the same address and database.
    pub fn restart(&mut self, lab: &Lab) -> Result<()> {
        self.service = spawn_collector(lab, &self.host, &self.db, &self.url, &self.args)?;
        Ok(())
    }
}

fn spawn_collector(
    lab: &Lab,
    host: &Host,
    db: &Path,
    url: &str,
    args: &[std::ffi::OsString],
) -> Result<Service> {
    let mut cmd = host.command(bin("causeway-collector")?);
    cmd.arg("--db")
        .arg(db)
        .args(args)
        .arg("serve")
        .arg("--listen")
        .arg(format!("{}:{COLLECTOR_PORT}", host.addr))
        // The lab's hosts read the collector's pages and API without signing in: who may
        // read is the collector's own tests' subject (collector/tests/access.rs).
        .arg("--open")
        .env("RUST_LOG", "info");
    let mut service = Service::spawn("collector", &mut cmd, &lab.path("collector.log"))?;
    let health = format!("{url}/healthz");
    wait_for("the collector to answer /healthz", START_TIMEOUT, || {
        if !service.is_running() {
            bail!("the collector exited: {}", service.log_text());
        }
        Ok(http_get(host, &health).ok().map(|_| ()))
    })?;
    Ok(service)
}

/// Issues a probe token for `server` with the collector's own command.
pub fn add_token(db: &Path, server: &str) -> Result<String> {
    let out = run(std::process::Command::new(bin("causeway-collector")?)
        .arg("--db")
        .arg(db)
        .args(["token", "add", server]))?;
    let token = out.trim().to_owned();
    if !token.starts_with("cw_") {
        bail!("token add printed {out:?}, not a token");
    }
    Ok(token)
}

/// `causeway-collector read-token add <name> [--write]`: the token (`cwr_...`).
pub fn add_read_token(db: &Path, name: &str, write: bool) -> Result<String> {
    let mut cmd = std::process::Command::new(bin("causeway-collector")?);
    cmd.arg("--db").arg(db).args(["read-token", "add", name]);
    if write {
        cmd.arg("--write");
    }
    let out = run(&mut cmd)?;
    let token = out.trim().to_owned();
    if !token.starts_with("cwr_") {
        bail!("read-token add printed {out:?}, not a token");
    }
    Ok(token)
}

/// `causeway-collector share add <server>`: the link's path (`/s/cws_...`).
pub fn add_share_link(db: &Path, server: &str) -> Result<String> {
    let out = run(std::process::Command::new(bin("causeway-collector")?)
        .arg("--db")
        .arg(db)
        .args(["share", "add", server]))?;
    let path = out.trim().to_owned();
    if !path.starts_with("/s/cws_") {
        bail!("share add printed {out:?}, not a link");
    }
    Ok(path)
}

/// An HTTP GET from inside `host`'s namespace (curl, 5 s at most); the body on a 2xx.
pub fn http_get(host: &Host, url: &str) -> Result<String> {
    run(host
        .command("curl")
        .args(["-sS", "--fail", "--max-time", "5", "--noproxy", "*", url]))
}

/// A GET of the collector's JSON API, parsed.
pub fn api_get(collector: &Collector, path: &str) -> Result<serde_json::Value> {
    let body = http_get(&collector.host, &format!("{}{path}", collector.url))?;
    serde_json::from_str(&body).with_context(|| format!("parsing {path}: {body}"))
}

/// Every result the collector holds for `server` (newest first, at most 1000).
pub fn results(collector: &Collector, server: &str) -> Result<Vec<serde_json::Value>> {
    let v = api_get(
        collector,
        &format!("/api/v1/servers/{server}/results?limit=1000"),
    )?;
    Ok(v["results"]
        .as_array()
        .context("results is not a list")?
        .clone())
}

/// Waits until the collector holds results of `server` that started after `after_ms` and
/// satisfy `want`, at least `n` of them; returns them oldest first.
pub fn wait_results(
    collector: &Collector,
    server: &str,
    after_ms: i64,
    n: usize,
    patience: Duration,
    want: impl Fn(&serde_json::Value) -> bool,
) -> Result<Vec<serde_json::Value>> {
    wait_for(
        &format!("{n} matching results of {server} after {after_ms}"),
        patience,
        || {
            let mut newer: Vec<serde_json::Value> = results(collector, server)?
                .into_iter()
                .filter(|r| r["started_at_ms"].as_i64().unwrap_or(0) > after_ms && want(r))
                .collect();
            newer.sort_by_key(|r| r["started_at_ms"].as_i64());
            Ok((newer.len() >= n).then_some(newer))
        },
    )
}

/// Runs `probectl` inside the collector's host against it; its stdout on success.
pub fn probectl(collector: &Collector, args: &[&str]) -> Result<String> {
    run(collector
        .host
        .command(bin("probectl")?)
        .arg("--collector")
        .arg(&collector.url)
        .args(args))
}
