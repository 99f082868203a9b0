//! The doors of the HTTP app: who may read ([`require_reader`], on the pages, the read API and
//! `/metrics`), and the headers every answer carries ([`security_headers`]).

use std::sync::LazyLock;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use sha2::{Digest, Sha256};

use super::{ApiError, AppState};
use crate::access::{self, READ_TOKEN_PREFIX, SESSION_COOKIE};
use crate::web::layout;

/// Lets a request through when it needs no credential, or shows a live session cookie or a
/// valid read token. Otherwise a browser is sent to the sign-in page and a program gets 401.
pub(super) async fn require_reader(
    State(app): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    match allowed(&app, req.headers()).await {
        Ok(true) => next.run(req).await,
        Ok(false) => refused(&req),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn allowed(app: &AppState, headers: &HeaderMap) -> Result<bool, sqlx::Error> {
    let pool = &app.db.read;
    if !app.access.required(pool).await? {
        return Ok(true);
    }
    if let Some(token) = bearer(headers) {
        return access::read_token_valid(pool, token).await;
    }
    if let Some(secret) = cookie(headers, SESSION_COOKIE) {
        return Ok(access::session_user(pool, secret, app.clock.now_ms())
            .await?
            .is_some());
    }
    Ok(false)
}

/// Who may write (make and remove silences): only a read token made with `--write`, sent as a
/// bearer token, whatever the access mode, since an open collector lets anyone read but
/// nobody silence its alerts. Cookies are not taken for writes, so a page on another site
/// cannot make a signed-in browser write. Returns the token's name.
pub(super) async fn writer(app: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let how = "send `Authorization: Bearer cwr_...` with a token made with \
               `causeway-collector read-token add NAME --write` (probectl: --token or \
               CAUSEWAY_TOKEN)";
    let Some(token) = bearer(headers) else {
        return Err(ApiError::Unauthorized(format!(
            "writing needs a read token with write rights: {how}"
        )));
    };
    match access::read_token_rights(&app.db.read, token).await? {
        Some((name, true)) => Ok(name),
        Some((name, false)) => Err(ApiError::Forbidden(format!(
            "read token {name:?} may only read; writing needs write rights: {how}"
        ))),
        None => Err(ApiError::Unauthorized(format!(
            "unknown or revoked token; {how}"
        ))),
    }
}

fn refused(req: &Request) -> Response {
    let path = req.uri().path();
    let program = path.starts_with("/api/") || path == "/metrics";
    if program || bearer(req.headers()).is_some() {
        return ApiError::Unauthorized(format!(
            "this collector requires a read token or a session: send `Authorization: Bearer \
             {READ_TOKEN_PREFIX}...` with a token from `causeway-collector read-token add NAME` \
             (probectl: --token or CAUSEWAY_TOKEN), or sign in at /login"
        ))
        .into_response();
    }
    let next = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let location = format!("/login?next={}", encode_component(&next));
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location)],
        "sign in first",
    )
        .into_response()
}

/// The token of `Authorization: Bearer <token>`.
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
}

/// The value of cookie `name`.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Percent-encodes everything but unreserved characters and `/`.
pub(super) fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What pages may load: their own inline style and script (by hash, nothing else inline),
/// images from here, and no framing by other sites.
static CONTENT_SECURITY_POLICY: LazyLock<HeaderValue> = LazyLock::new(|| {
    let sha = |text: &str| {
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
    };
    let policy = format!(
        "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        sha(layout::CSS),
        sha(layout::SCRIPT)
    );
    HeaderValue::from_str(&policy).expect("the policy is ASCII")
});

/// Headers on every answer: the page's content policy, no MIME sniffing, no framing, and no
/// referrer (a share link's secret is in its URL).
pub(super) async fn security_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        CONTENT_SECURITY_POLICY.clone(),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_bearer_tokens_are_read_from_their_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; causeway_session=s3cret; b=2"),
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer cwr_x"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("s3cret"));
        assert_eq!(cookie(&h, "c"), None);
        assert_eq!(bearer(&h), Some("cwr_x"));
        assert_eq!(
            encode_component("/servers/a b?x=1&y"),
            "/servers/a%20b%3Fx%3D1%26y"
        );
    }
}
