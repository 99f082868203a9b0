//! Real receivers of the collector's alerts: Prometheus' Alertmanager (Debian's
//! `prometheus-alertmanager`) and a webhook receiver (Python's http.server) that checks each
//! message's HMAC-SHA256 signature and can be told to answer 503 for a while.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::lab::{Host, Lab};
use crate::process::Service;
use crate::services::http_get;
use crate::wait::wait_for;

const START_TIMEOUT: Duration = Duration::from_secs(20);
pub const ALERTMANAGER_PORT: u16 = 9093;
pub const RECEIVER_PORT: u16 = 8088;

/// Alertmanager on `host`:9093, routing everything to a receiver that sends nothing, without
/// clustering; the collector's alerts are read back from its `/api/v2/alerts`.
pub fn start_alertmanager(lab: &Lab, host: &Host) -> Result<(Service, String)> {
    let dir = lab.path("alertmanager");
    std::fs::create_dir_all(dir.join("data"))?;
    let conf = dir.join("alertmanager.yml");
    std::fs::write(
        &conf,
        "route:\n  receiver: nobody\n  group_wait: 1s\nreceivers:\n  - name: nobody\n",
    )?;
    let url = format!("http://{}:{ALERTMANAGER_PORT}", host.addr);
    let mut cmd = host.command("/usr/bin/prometheus-alertmanager");
    cmd.arg(format!("--config.file={}", conf.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!(
            "--web.listen-address={}:{ALERTMANAGER_PORT}",
            host.addr
        ))
        .arg("--cluster.listen-address=");
    let mut service = Service::spawn("alertmanager", &mut cmd, &dir.join("alertmanager.log"))?;
    let ready = format!("{url}/-/ready");
    wait_for("Alertmanager to be ready", START_TIMEOUT, || {
        if !service.is_running() {
            bail!("alertmanager exited: {}", service.log_text());
        }
        Ok(http_get(host, &ready).ok().map(|_| ()))
    })?;
    Ok((service, url))
}

/// The alerts Alertmanager holds (`GET /api/v2/alerts`: active ones unless `all`).
pub fn alertmanager_alerts(host: &Host, url: &str, all: bool) -> Result<Vec<Value>> {
    let query = if all {
        "?active=true&inhibited=true&silenced=true&unprocessed=true"
    } else {
        ""
    };
    let text = http_get(host, &format!("{url}/api/v2/alerts{query}"))?;
    let value: Value = serde_json::from_str(&text).context("Alertmanager's answer")?;
    Ok(value.as_array().cloned().unwrap_or_default())
}

/// A webhook receiver on `host`:8088 that accepts any POST (answers 200), keeping each with
/// its path, headers, body and whether its `X-Causeway-Signature` is right for `secret`.
pub struct WebhookReceiver {
    pub service: Service,
    pub url: String,
    dir: PathBuf,
}

const RECEIVER: &str = r#"
import hashlib, hmac, json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

addr, port, secret, out = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4]
failing = out + ".failing"

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if os.path.exists(failing):
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"receiver down for maintenance")
            return
        want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
        got = self.headers.get("X-Causeway-Signature")
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        entry = {
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": parsed,
            "signed": got is not None,
            "signature_ok": got is not None and hmac.compare_digest(got, want),
        }
        with open(out, "a") as f:
            f.write(json.dumps(entry) + "\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass

print("receiver listening", flush=True)
ThreadingHTTPServer((addr, port), Handler).serve_forever()
"#;

impl WebhookReceiver {
    pub fn start(lab: &Lab, host: &Host, secret: &str) -> Result<WebhookReceiver> {
        let dir = lab.path("receiver");
        std::fs::create_dir_all(&dir)?;
        let script = dir.join("receiver.py");
        std::fs::write(&script, RECEIVER)?;
        let mut cmd = host.command("python3");
        cmd.arg(&script)
            .arg(host.addr.to_string())
            .arg(RECEIVER_PORT.to_string())
            .arg(secret)
            .arg(dir.join("received.jsonl"));
        let mut service = Service::spawn("receiver", &mut cmd, &dir.join("receiver.log"))?;
        service.wait_for_log("receiver listening", START_TIMEOUT)?;
        Ok(WebhookReceiver {
            service,
            url: format!("http://{}:{RECEIVER_PORT}", host.addr),
            dir,
        })
    }

    /// What was accepted so far, in order.
    pub fn received(&self) -> Result<Vec<Value>> {
        let text = match std::fs::read_to_string(self.dir.join("received.jsonl")) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e.into()),
        };
        text.lines()
            .map(|l| serde_json::from_str(l).context("a received line"))
            .collect()
    }

    /// Answers 503 to everything while `failing`.
    pub fn set_failing(&self, failing: bool) -> Result<()> {
        let flag = self.dir.join("received.jsonl.failing");
        match failing {
            true => std::fs::write(flag, "")?,
            false => std::fs::remove_file(flag)?,
        }
        Ok(())
    }
}
