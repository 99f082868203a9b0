//! TLS on the collector itself: the real binary with a certificate made here (rcgen), clients
//! that trust only its CA, a renewed certificate taken on SIGHUP, a broken one refused, and a
//! real probe uploading through a configured CA file.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{COLLECTOR_BIN as BIN, PROCESS_PATIENCE as PATIENCE, spawn_serve, wait_for};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// A CA, and a certificate for 127.0.0.1 it signed: (CA PEM, leaf PEM, leaf key PEM).
fn pki(name: &str) -> (String, String, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("{name} test CA"));
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    (ca_cert.pem(), leaf.pem(), leaf_key.serialize_pem())
}

struct Collector {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Collector {
    fn start(dir: &Path, db: &Path) -> Collector {
        let log = dir.join("collector.log");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let flags = [
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
        ];
        let (child, addr) = spawn_serve(Command::new(BIN), db, &flags, &log, "https");
        Collector { child, addr, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn hang_up(&self) {
        let status = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

fn client(ca_pem: &str) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes()).unwrap())
        .build()
        .unwrap()
}

async fn healthy(client: &reqwest::Client, addr: SocketAddr) -> bool {
    client
        .get(format!("https://{addr}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

fn write_pair(dir: &Path, cert: &str, key: &str) {
    std::fs::write(dir.join("cert.pem"), cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
}

#[tokio::test]
async fn serves_https_and_takes_a_renewed_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (ca1, cert1, key1) = pki("first");
    write_pair(dir.path(), &cert1, &key1);
    let c = Collector::start(dir.path(), &dir.path().join("c.db"));
    let first = client(&ca1);
    assert!(healthy(&first, c.addr).await, "{}", c.log_text());
    // Plain HTTP on the TLS port gets no answer.
    let plain = reqwest::Client::builder().no_proxy().build().unwrap();
    assert!(
        plain
            .get(format!("http://{}/healthz", c.addr))
            .send()
            .await
            .is_err()
    );

    // A renewed certificate from another CA, taken on SIGHUP.
    let (ca2, cert2, key2) = pki("second");
    write_pair(dir.path(), &cert2, &key2);
    c.hang_up();
    let second = client(&ca2);
    let deadline = Instant::now() + PATIENCE;
    while !healthy(&second, c.addr).await {
        assert!(
            Instant::now() < deadline,
            "the renewed certificate: {}",
            c.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A new connection (the first client's keep-alive one predates the reload).
    assert!(
        !healthy(&client(&ca1), c.addr).await,
        "the old CA still verifies"
    );
    assert!(
        c.log_text()
            .contains("TLS certificate and key loaded again")
    );

    // A broken pair is refused, and the one in use stays.
    std::fs::write(dir.path().join("key.pem"), "not a key").unwrap();
    c.hang_up();
    wait_for("the refusal in the log", || {
        c.log_text()
            .contains("is not a readable PEM private key")
            .then_some(())
    });
    assert!(healthy(&second, c.addr).await);
}

#[test]
fn a_broken_certificate_is_refused_at_start_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "nothing").unwrap();
    std::fs::write(dir.path().join("key.pem"), "nothing").unwrap();
    let out = Command::new(BIN)
        .arg("--db")
        .arg(dir.path().join("c.db"))
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(dir.path().join("cert.pem"))
        .arg("--tls-key")
        .arg(dir.path().join("key.pem"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls-cert"), "{err}");
    assert!(err.contains("holds no certificate"), "{err}");
}

/// A real probe with `collector_ca_file` uploads its reports over TLS.
#[tokio::test]
async fn a_probe_trusting_the_ca_file_uploads_over_tls() {
    let probe_bin = Path::new(BIN).with_file_name("causeway-probe");
    assert!(
        probe_bin.exists(),
        "{} is missing: run `cargo build --bins` first (scripts/test does)",
        probe_bin.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = pki("probe");
    write_pair(dir.path(), &cert, &key);
    std::fs::write(dir.path().join("ca.pem"), &ca).unwrap();
    let db = dir.path().join("c.db");
    let token = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["token", "add", "web-01"])
        .output()
        .unwrap();
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    let c = Collector::start(dir.path(), &db);
    let config = dir.path().join("probe.toml");
    std::fs::write(
        &config,
        format!(
            r#"collector_url = "https://{addr}"
collector_ca_file = "{ca}"
token = "{token}"
server = "web-01"
interval = "1s"
timeout = "500ms"
spool_dir = "{spool}"
state_dir = "{state}"
capture = false

[host]
kernel_log = false

[[canary]]
name = "site"
url = "http://127.0.0.1:9/"
"#,
            addr = c.addr,
            ca = dir.path().join("ca.pem").display(),
            spool = dir.path().join("spool").display(),
            state = dir.path().join("state").display(),
        ),
    )
    .unwrap();
    let probe_log = dir.path().join("probe.log");
    let mut probe = Command::new(&probe_bin)
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&probe_log).unwrap())
        .spawn()
        .unwrap();
    let reader = client(&ca);
    let deadline = Instant::now() + PATIENCE;
    let mut stored = false;
    while !stored && Instant::now() < deadline {
        let answer = reader
            .get(format!("https://{}/api/v1/servers/web-01", c.addr))
            .send()
            .await;
        let server: serde_json::Value = match answer {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        stored = server["last_report_started_at_ms"].is_i64();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = probe.kill();
    let _ = probe.wait();
    assert!(
        stored,
        "no report over TLS; probe log:\n{}\ncollector log:\n{}",
        std::fs::read_to_string(&probe_log).unwrap_or_default(),
        c.log_text()
    );
}
