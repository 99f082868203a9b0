//! `probectl`'s HTTP client of the read API: timeouts on everything, no system proxy, bounded
//! answers, and errors that say which collector and what to do.

use std::time::Duration;

use reqwest::StatusCode;

use crate::views::ErrorBody;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest answer read; the API's own limits keep real answers far below.
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid collector URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    #[error(
        "cannot reach the collector at {url}: {detail}\n\
         hint: give the collector's address with --collector URL or CAUSEWAY_COLLECTOR"
    )]
    Unreachable { url: String, detail: String },
    #[error("unknown server {name:?}{}", did_you_mean(.closest))]
    UnknownServer { name: String, closest: Vec<String> },
    #[error("the collector at {url} answered {status}: {message}")]
    Api {
        url: String,
        status: u16,
        message: String,
    },
    #[error("the collector at {url} sent an answer probectl cannot read: {detail}")]
    Decode { url: String, detail: String },
}

/// `; did you mean: a, b?`, or a pointer to the list when nothing is close.
pub fn did_you_mean(closest: &[String]) -> String {
    if closest.is_empty() {
        "; `probectl status` lists the known servers".to_owned()
    } else {
        format!("; did you mean: {}?", closest.join(", "))
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    /// A read token, sent as `Authorization: Bearer`.
    token: Option<String>,
}

impl Client {
    /// A client of the collector at `base` (`http://host:port`, a path prefix allowed).
    pub fn new(base: &str) -> Result<Client, ClientError> {
        let url = reqwest::Url::parse(base).map_err(|e| ClientError::BadUrl {
            url: base.to_owned(),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ClientError::BadUrl {
                url: base.to_owned(),
                reason: "expected an http:// or https:// URL".to_owned(),
            });
        }
        // reqwest is built without a default crypto provider (aws-lc-rs needs cmake); install
        // ring. An error only means a provider is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TOTAL_TIMEOUT)
            .user_agent(concat!("probectl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(ClientError::Build)?;
        Ok(Client {
            base: base.trim_end_matches('/').to_owned(),
            http,
            token: None,
        })
    }

    /// Sends `token` (a read token, `cwr_...`) with every request.
    pub fn with_token(mut self, token: Option<String>) -> Client {
        self.token = token;
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `GET /api/v1/servers`.
    pub async fn servers(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/api/v1/servers").await
    }

    /// `GET /api/v1/servers/{name}/why?since_ms=`.
    pub async fn why(&self, server: &str, since_ms: i64) -> Result<serde_json::Value, ClientError> {
        let path = format!(
            "/api/v1/servers/{}/why?since_ms={since_ms}",
            encode_segment(server)
        );
        self.get(&path).await
    }

    /// `GET /api/v1/servers/{name}/resolvers?since_ms=`, or `GET /api/v1/resolvers?since_ms=`
    /// for every server.
    pub async fn resolvers(
        &self,
        server: Option<&str>,
        since_ms: i64,
    ) -> Result<serde_json::Value, ClientError> {
        let path = match server {
            Some(name) => format!(
                "/api/v1/servers/{}/resolvers?since_ms={since_ms}",
                encode_segment(name)
            ),
            None => format!("/api/v1/resolvers?since_ms={since_ms}"),
        };
        self.get(&path).await
    }

    /// `GET /api/v1/servers/{name}/host?since_ms=`.
    pub async fn host(
        &self,
        server: &str,
        since_ms: i64,
    ) -> Result<serde_json::Value, ClientError> {
        let path = format!(
            "/api/v1/servers/{}/host?since_ms={since_ms}",
            encode_segment(server)
        );
        self.get(&path).await
    }

    /// `GET /api/v1/alerts?limit=`, with `&server=` for one server's.
    pub async fn alerts(
        &self,
        server: Option<&str>,
        limit: u32,
    ) -> Result<serde_json::Value, ClientError> {
        let path = match server {
            Some(name) => format!(
                "/api/v1/alerts?limit={limit}&server={}",
                encode_segment(name)
            ),
            None => format!("/api/v1/alerts?limit={limit}"),
        };
        self.get(&path).await
    }

    /// `GET /api/v1/silences`.
    pub async fn silences(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/api/v1/silences").await
    }

    /// `POST /api/v1/silences` (needs a token with write rights).
    pub async fn add_silence(
        &self,
        silence: &crate::silences::NewSilence,
    ) -> Result<serde_json::Value, ClientError> {
        let body = serde_json::to_value(silence).unwrap_or_default();
        self.send(reqwest::Method::POST, "/api/v1/silences", Some(body))
            .await
    }

    /// `DELETE /api/v1/silences/{id}` (needs a token with write rights).
    pub async fn remove_silence(&self, id: i64) -> Result<serde_json::Value, ClientError> {
        let path = format!("/api/v1/silences/{id}");
        self.send(reqwest::Method::DELETE, &path, None).await
    }

    /// GETs `path` and reads the JSON answer; maps the API's error answers to errors.
    pub async fn get(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        self.send(reqwest::Method::GET, path, None).await
    }

    /// Sends a request (with `body` as JSON) and reads the JSON answer.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let url = format!("{}{path}", self.base);
        let unreachable = |e: reqwest::Error| ClientError::Unreachable {
            url: self.base.clone(),
            detail: chain(&e),
        };
        let mut request = self.http.request(method, &url);
        if let Some(body) = &body {
            request = request.json(body);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let mut response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(ClientError::Decode {
                    url,
                    detail: format!("the answer is larger than {MAX_ANSWER_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|e| ClientError::Decode {
                url,
                detail: e.to_string(),
            });
        }
        let error: Option<ErrorBody> = serde_json::from_slice(&body).ok();
        match error {
            Some(ErrorBody {
                closest: Some(closest),
                ..
            }) if status == StatusCode::NOT_FOUND => Err(ClientError::UnknownServer {
                name: server_of(path),
                closest,
            }),
            Some(e) => Err(ClientError::Api {
                url,
                status: status.as_u16(),
                message: e.error,
            }),
            None => Err(ClientError::Api {
                url,
                status: status.as_u16(),
                message: String::from_utf8_lossy(&body).chars().take(200).collect(),
            }),
        }
    }
}

/// The server name in a `/api/v1/servers/{name}...` path, decoded.
fn server_of(path: &str) -> String {
    let segment = path
        .strip_prefix("/api/v1/servers/")
        .and_then(|rest| rest.split(['/', '?']).next())
        .unwrap_or("");
    decode_segment(segment)
}

/// Percent-encodes a path segment (a server name typed by a person may hold anything).
pub fn encode_segment(s: &str) -> String {
    use std::fmt::Write;
    s.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

fn decode_segment(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An error and its sources on one line: reqwest's own message alone says too little.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip() {
        assert_eq!(encode_segment("web-01.example"), "web-01.example");
        assert_eq!(encode_segment("a b/c?"), "a%20b%2Fc%3F");
        assert_eq!(decode_segment("a%20b%2Fc%3F"), "a b/c?");
        assert_eq!(
            server_of("/api/v1/servers/web%2001/why?since_ms=1"),
            "web 01"
        );
    }

    #[test]
    fn suggestions() {
        let e = ClientError::UnknownServer {
            name: "web01".into(),
            closest: vec!["web-01".into(), "web-02".into()],
        };
        assert_eq!(
            e.to_string(),
            r#"unknown server "web01"; did you mean: web-01, web-02?"#
        );
        let e = ClientError::UnknownServer {
            name: "x".into(),
            closest: vec![],
        };
        assert_eq!(
            e.to_string(),
            r#"unknown server "x"; `probectl status` lists the known servers"#
        );
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(matches!(
            Client::new("ftp://x"),
            Err(ClientError::BadUrl { .. })
        ));
        assert!(matches!(
            Client::new("127.0.0.1:8750"),
            Err(ClientError::BadUrl { .. })
        ));
        assert_eq!(
            Client::new("http://127.0.0.1:8750/").unwrap().base(),
            "http://127.0.0.1:8750"
        );
    }
}
