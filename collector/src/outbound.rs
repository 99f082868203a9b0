//! The collector's HTTP client for the requests it makes itself: alert webhooks, and
//! `healthcheck` asking a running collector.

use std::time::Duration;

/// A client with `timeout` for each whole request, no proxy from the environment (a collector
/// reaches its channels directly), and Causeway's user agent.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    // reqwest is built without a TLS provider of its own (no cmake for aws-lc): ring, as the
    // collector's server uses. An error only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .user_agent(concat!("causeway-collector/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The error and its causes, on one line (reqwest's own message leaves out why a connection
/// failed).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
