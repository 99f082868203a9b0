//! Real receivers of the collector's alerts: Prometheus' Alertmanager (Debian's
//! `prometheus-alertmanager`), a webhook receiver (Python's http.server) that checks each
//! message's HMAC-SHA256 signature and can be told to answer 503 for a while, and an SMTP
//! server (Debian's aiosmtpd) with STARTTLS, implicit TLS and a login, under a private CA.

use std::path::{Path, PathBuf};
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
/// The SMTP receiver's ports: STARTTLS required, and TLS from the first byte.
pub const SMTP_STARTTLS_PORT: u16 = 2587;
pub const SMTP_IMPLICIT_PORT: u16 = 2465;

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
        read_jsonl(&self.dir.join("received.jsonl"))
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

/// A receiver's file of JSON lines, one per message (none yet: empty).
fn read_jsonl(path: &Path) -> Result<Vec<Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e.into()),
    };
    text.lines()
        .map(|l| serde_json::from_str(l).context("a received line"))
        .collect()
}

/// An SMTP server on `host` (Debian's aiosmtpd) that requires a login (`user`, `password`),
/// on [`SMTP_STARTTLS_PORT`] after STARTTLS and on [`SMTP_IMPLICIT_PORT`] over TLS from the
/// start, with a certificate for the host's address from a private CA (`ca`, for the
/// collector's `ca_file`). It keeps each message with its port's mode, login and envelope.
pub struct SmtpReceiver {
    pub service: Service,
    /// `smtp://10.88.0.5`, without a port.
    pub url: String,
    /// The private CA's certificate (PEM).
    pub ca: PathBuf,
    dir: PathBuf,
}

const SMTP_RECEIVER: &str = r#"
import json, sys, threading
import ssl
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

addr, p_starttls, p_implicit, cert, key, user, password, out = sys.argv[1:]

class Handler:
    def __init__(self, mode):
        self.mode = mode

    async def handle_DATA(self, server, session, envelope):
        entry = {
            "mode": self.mode,
            "login": getattr(session, "causeway_login", None),
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "data": envelope.content.decode("utf-8", "replace"),
        }
        with open(out, "a") as f:
            f.write(json.dumps(entry) + "\n")
        return "250 Message accepted"

def login(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == user.encode()
          and auth_data.password == password.encode())
    if ok:
        session.causeway_login = user
    return AuthResult(success=ok, handled=False)

tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)
Controller(Handler("starttls"), hostname=addr, port=int(p_starttls), tls_context=tls,
           require_starttls=True, authenticator=login, auth_required=True).start()
# aiosmtpd does not count implicit TLS as TLS for AUTH; the socket is TLS from the start.
Controller(Handler("implicit"), hostname=addr, port=int(p_implicit), ssl_context=tls,
           authenticator=login, auth_required=True, auth_require_tls=False).start()
print("smtp listening", flush=True)
threading.Event().wait()
"#;

impl SmtpReceiver {
    pub fn start(lab: &Lab, host: &Host, user: &str, password: &str) -> Result<SmtpReceiver> {
        let dir = lab.path("smtp");
        std::fs::create_dir_all(&dir)?;
        let (ca, cert, key) = private_ca_and_server_cert(&dir, &host.addr.to_string())?;
        let script = dir.join("smtp.py");
        std::fs::write(&script, SMTP_RECEIVER)?;
        // Debian's Python, where python3-aiosmtpd is installed (not one earlier on PATH).
        let mut cmd = host.command("/usr/bin/python3");
        cmd.arg(&script)
            .arg(host.addr.to_string())
            .arg(SMTP_STARTTLS_PORT.to_string())
            .arg(SMTP_IMPLICIT_PORT.to_string())
            .arg(&cert)
            .arg(&key)
            .arg(user)
            .arg(password)
            .arg(dir.join("received.jsonl"));
        let mut service = Service::spawn("smtp", &mut cmd, &dir.join("smtp.log"))?;
        service.wait_for_log("smtp listening", START_TIMEOUT)?;
        Ok(SmtpReceiver {
            service,
            url: format!("smtp://{}", host.addr),
            ca,
            dir,
        })
    }

    /// The messages accepted so far, in order.
    pub fn received(&self) -> Result<Vec<Value>> {
        read_jsonl(&self.dir.join("received.jsonl"))
    }
}

/// A private CA and a certificate for `ip` signed by it, made with openssl in `dir`:
/// (CA certificate, server certificate, server key).
fn private_ca_and_server_cert(dir: &Path, ip: &str) -> Result<(PathBuf, PathBuf, PathBuf)> {
    let path = |f: &str| dir.join(f).display().to_string();
    let [ca_key, ca, key, csr, cert, ext] = [
        "ca.key",
        "ca.pem",
        "server.key",
        "server.csr",
        "server.pem",
        "server.ext",
    ]
    .map(path);
    std::fs::write(
        &ext,
        format!("subjectAltName=IP:{ip}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"),
    )?;
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    // Split on spaces: the lab's paths have none.
    for args in [
        format!("req -x509 {ec} -days 2 -subj /CN=causeway-lab-ca -keyout {ca_key} -out {ca}"),
        format!("req {ec} -subj /CN=smtp -keyout {key} -out {csr}"),
        format!(
            "x509 -req -days 2 -in {csr} -CA {ca} -CAkey {ca_key} -CAcreateserial \
             -extfile {ext} -out {cert}"
        ),
    ] {
        let out = std::process::Command::new("openssl")
            .args(args.split_whitespace())
            .output()
            .context("openssl")?;
        if !out.status.success() {
            bail!("openssl {args}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok((ca.into(), cert.into(), key.into()))
}
