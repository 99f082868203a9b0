//! `causeway-collector healthcheck`: asks a running collector's `/healthz` (which answers once
//! the database is open) and exits 0 when it says ok. For container health checks: the image
//! has no curl, and the check must not need a token.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long the whole request may take: a health check that hangs is a failed one.
pub const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("{url}: {}", crate::outbound::error_chain(.source))]
    Request { url: String, source: reqwest::Error },
    #[error("{url}: answered {status}, expected 200 ok")]
    Status {
        url: String,
        status: reqwest::StatusCode,
    },
}

/// `http://ADDRESS/healthz` for a collector listening on `listen`: a wildcard address is
/// reached on loopback.
pub fn url_for(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/healthz", SocketAddr::new(ip, listen.port()))
}

/// GETs `url`; `Ok` when it answers 200.
pub async fn check(url: &str) -> Result<(), HealthError> {
    let request_err = |source| HealthError::Request {
        url: url.to_owned(),
        source,
    };
    let client = crate::outbound::http_client(TIMEOUT).map_err(request_err)?;
    let response = client.get(url).send().await.map_err(request_err)?;
    match response.status() {
        reqwest::StatusCode::OK => Ok(()),
        status => Err(HealthError::Status {
            url: url.to_owned(),
            status,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listen_address_is_asked_on_loopback() {
        let url = |s: &str| url_for(s.parse().unwrap());
        assert_eq!(url("0.0.0.0:8750"), "http://127.0.0.1:8750/healthz");
        assert_eq!(url("[::]:9000"), "http://[::1]:9000/healthz");
        assert_eq!(url("10.1.2.3:8750"), "http://10.1.2.3:8750/healthz");
    }
}
