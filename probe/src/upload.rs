//! Sending one spooled report to the collector, and what to do about the answer. The task that
//! sends them all, oldest first, is in [`drain`].

use std::time::Duration;

use causeway_schema::cut;

use crate::checks::http::chain;
use crate::now_ms;

pub(crate) mod drain;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(15);
/// Under the collector's default `--idle-timeout` (75 s).
const POOL_IDLE: Duration = Duration::from_secs(60);
/// Bytes of the collector's answer kept for the log: its error message, not a whole page.
const MAX_ANSWER: usize = 2048;
const USER_AGENT: &str = concat!("causeway-probe/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("cannot set up the HTTP client for the collector: {0}")]
    Client(String),
}

/// What became of one upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadOutcome {
    /// HTTP 200: the collector has it; the report can go.
    Acked,
    /// 400, 413, 422: the collector will never take this report; retrying is pointless.
    Rejected(String),
    /// 401, 403: the token is wrong or belongs to another server. The report is fine: keep it
    /// and retry (someone will fix the token).
    Unauthorized(String),
    /// Anything else (5xx, 429, timeouts, connection errors): try again later.
    Retry(String),
}

/// Posts reports to `{collector_url}/api/v1/reports`.
#[derive(Clone)]
pub struct Uploader {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl Uploader {
    /// An uploader to the collector at `collector_url`; `ca` (PEM), when given, holds the only
    /// certificates trusted for an https collector.
    pub fn new(
        collector_url: &str,
        token: &str,
        ca: Option<&[u8]>,
    ) -> Result<Uploader, UploadError> {
        Uploader::with_timeouts(collector_url, token, ca, CONNECT_TIMEOUT, TOTAL_TIMEOUT)
    }

    pub fn with_timeouts(
        collector_url: &str,
        token: &str,
        ca: Option<&[u8]>,
        connect: Duration,
        total: Duration,
    ) -> Result<Uploader, UploadError> {
        let mut builder = reqwest::Client::builder();
        if let Some(pem) = ca {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| UploadError::Client(chain(&e)))?;
            builder = builder.tls_certs_only(certs);
        }
        let client = builder
            // reqwest 0.13 honours the system proxy by default; a probe talks to its collector
            // directly, whatever the environment of the service says.
            .no_proxy()
            // The collector closes a connection idle for 75 s (--idle-timeout); dropping ours
            // first means a report never goes out on a connection the collector is closing.
            .pool_idle_timeout(POOL_IDLE)
            .connect_timeout(connect)
            .timeout(total)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| UploadError::Client(chain(&e)))?;
        Ok(Uploader {
            client,
            url: format!("{}/api/v1/reports", collector_url.trim_end_matches('/')),
            token: token.to_owned(),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one report's stored bytes, unchanged (a replay is byte for byte the same).
    pub async fn upload(&self, body: Vec<u8>) -> UploadOutcome {
        let response = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(causeway_schema::SENT_AT_HEADER, now_ms().to_string())
            .body(body)
            .send()
            .await;
        let mut response = match response {
            Ok(r) => r,
            Err(e) => return UploadOutcome::Retry(cut(chain(&e), 400)),
        };
        let status = response.status().as_u16();
        // Read a bounded start of the answer (the collector's message), within the timeout.
        let mut answer = Vec::new();
        while answer.len() < MAX_ANSWER {
            match response.chunk().await {
                Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        answer.truncate(MAX_ANSWER);
        classify_answer(status, &String::from_utf8_lossy(&answer))
    }
}

/// What an HTTP answer from the collector means for the report.
pub fn classify_answer(status: u16, body: &str) -> UploadOutcome {
    let message = {
        let body = body.trim();
        if body.is_empty() {
            format!("HTTP {status}")
        } else {
            cut(format!("HTTP {status}: {body}"), 400)
        }
    };
    match status {
        200 => UploadOutcome::Acked,
        400 | 413 | 422 => UploadOutcome::Rejected(message),
        401 | 403 => UploadOutcome::Unauthorized(message),
        _ => UploadOutcome::Retry(message),
    }
}

/// Exponential backoff: 1 s, doubling, at most `max`; back to 1 s after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_secs(1);

    /// `max` is min(60 s, interval): a retry never waits longer than a cycle.
    pub fn for_interval(interval: Duration) -> Backoff {
        Backoff::new(interval.min(Duration::from_secs(60)))
    }

    pub fn new(max: Duration) -> Backoff {
        Backoff {
            next: Self::FIRST.min(max),
            max,
        }
    }

    /// The delay to wait now; the next one is twice as long.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST.min(self.max);
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;

    /// A request as the test collector saw it.
    #[derive(Debug)]
    struct Seen {
        head: String,
        body: Vec<u8>,
    }

    /// A collector that answers every request with `status` and `body` (or, with `hang`, never).
    async fn collector(
        status: u16,
        body: &'static str,
        hang: bool,
    ) -> (String, mpsc::UnboundedReceiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let (mut conn, _) = listener.accept().await.unwrap();
                let seen = read_request(&mut conn).await;
                let _ = tx.send(seen);
                if hang {
                    held.push(conn);
                    continue;
                }
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                conn.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        (url, rx)
    }

    async fn read_request(conn: &mut tokio::net::TcpStream) -> Seen {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            assert_eq!(conn.read(&mut byte).await.unwrap(), 1);
            buf.push(byte[0]);
        }
        let head = String::from_utf8(buf).unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().unwrap())
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        conn.read_exact(&mut body).await.unwrap();
        Seen { head, body }
    }

    fn init() {
        crate::install_crypto_provider();
    }

    #[tokio::test]
    async fn sends_the_stored_bytes_with_the_token() {
        init();
        let (url, mut seen) = collector(200, "{\"stored\":true}", false).await;
        let up = Uploader::new(&format!("{url}/"), "cw_secret", None).unwrap();
        let body = br#"{"schema_version":1,"x":"exact bytes"}"#.to_vec();
        let before = now_ms();
        assert_eq!(up.upload(body.clone()).await, UploadOutcome::Acked);
        let after = now_ms();
        let req = seen.recv().await.unwrap();
        assert!(
            req.head.starts_with("POST /api/v1/reports HTTP/1.1\r\n"),
            "{}",
            req.head
        );
        let head = req.head.to_ascii_lowercase();
        assert!(
            head.contains("authorization: bearer cw_secret\r\n"),
            "{head}"
        );
        assert!(
            head.contains("content-type: application/json\r\n"),
            "{head}"
        );
        assert_eq!(req.body, body);
        // The probe's clock when it sent: the collector's measure of the report's wait and of
        // the probe's clock.
        let sent_at: i64 = head
            .lines()
            .find_map(|l| l.strip_prefix("causeway-sent-at: "))
            .unwrap_or_else(|| panic!("no causeway-sent-at header: {head}"))
            .parse()
            .unwrap();
        assert!(
            (before..=after).contains(&sent_at),
            "{before} {sent_at} {after}"
        );
    }

    #[tokio::test]
    async fn permanent_rejections() {
        init();
        for status in [400, 413, 422] {
            let (url, _) = collector(
                status,
                "  {\"error\":\"results[0].status: 99 is not allowed\"}\n",
                false,
            )
            .await;
            let up = Uploader::new(&url, "t", None).unwrap();
            assert_eq!(
                up.upload(b"{}".to_vec()).await,
                UploadOutcome::Rejected(format!(
                    "HTTP {status}: {{\"error\":\"results[0].status: 99 is not allowed\"}}"
                ))
            );
        }
    }

    #[tokio::test]
    async fn wrong_token() {
        init();
        for status in [401, 403] {
            let (url, _) = collector(status, "", false).await;
            let up = Uploader::new(&url, "t", None).unwrap();
            assert_eq!(
                up.upload(b"{}".to_vec()).await,
                UploadOutcome::Unauthorized(format!("HTTP {status}"))
            );
        }
    }

    #[tokio::test]
    async fn server_errors_are_retried() {
        init();
        for status in [500, 503, 429, 404, 201] {
            let (url, _) = collector(status, "busy", false).await;
            let up = Uploader::new(&url, "t", None).unwrap();
            assert_eq!(
                up.upload(b"{}".to_vec()).await,
                UploadOutcome::Retry(format!("HTTP {status}: busy"))
            );
        }
    }

    #[tokio::test]
    async fn connection_refused_is_retried() {
        init();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let up = Uploader::new(&format!("http://127.0.0.1:{port}"), "t", None).unwrap();
        match up.upload(b"{}".to_vec()).await {
            UploadOutcome::Retry(msg) => assert!(msg.to_lowercase().contains("connect"), "{msg}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_silent_collector_times_out() {
        init();
        let (url, _) = collector(200, "", true).await;
        let up = Uploader::with_timeouts(
            &url,
            "t",
            None,
            Duration::from_millis(300),
            Duration::from_millis(400),
        )
        .unwrap();
        let start = std::time::Instant::now();
        match up.upload(b"{}".to_vec()).await {
            UploadOutcome::Retry(msg) => assert!(msg.contains("timed out"), "{msg}"),
            other => panic!("{other:?}"),
        }
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let mut b = Backoff::for_interval(Duration::from_secs(30));
        let delays: Vec<u64> = (0..7).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
        let mut b = Backoff::for_interval(Duration::from_secs(600));
        let last = (0..10).map(|_| b.next_delay()).last().unwrap();
        assert_eq!(last, Duration::from_secs(60));
    }
}
