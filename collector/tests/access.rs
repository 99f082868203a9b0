//! Who may read: sessions of people who signed in, read tokens of programs, share links for a
//! customer, and the headers every page carries. Through the HTTP app (no socket), probectl
//! over real HTTP, and the binary refusing to serve a network address unprotected.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use base64::Engine;
use causeway_collector::access::{self, Access, Mode, Role};
use common::*;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";

/// A harness whose reads need a credential, with user alice (viewer), a read token and one
/// report of web-01 stored.
async fn protected() -> (Harness, String) {
    let mut h = Harness::new().await;
    h.access = Arc::new(Access::new(Mode::Required));
    access::add_user(&h.db.write, "alice", PASSWORD, Role::Viewer, NOW)
        .await
        .unwrap();
    let read = access::add_read_token(&h.db.write, "prometheus", NOW, false)
        .await
        .unwrap();
    let probe = h.token("web-01").await;
    post_all(
        &h,
        &probe,
        &[report("web-01", NOW - MIN, vec![ok_check(NOW - MIN)])],
    )
    .await;
    (h, read)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

async fn request(h: &Harness, req: Request<Body>) -> Answer {
    let response = h.app().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

async fn get(h: &Harness, path: &str, auth: Option<(&str, &str)>) -> Answer {
    let mut req = Request::get(path);
    if let Some((name, value)) = auth {
        req = req.header(name, value);
    }
    request(h, req.body(Body::empty()).unwrap()).await
}

async fn sign_in(h: &Harness, name: &str, password: &str, next: &str) -> Answer {
    let form = format!(
        "name={name}&password={}&next={}",
        password.replace(' ', "+"),
        next.replace('/', "%2F")
    );
    let req = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .unwrap();
    request(h, req).await
}

fn header_of(a: &Answer, name: header::HeaderName) -> &str {
    a.headers
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", a.headers))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn reads_need_a_read_token_or_a_session() {
    let (h, read) = protected().await;

    // Programs: 401 with what to do; a browser: to the sign-in page, back here after.
    for path in ["/api/v1/servers", "/metrics", "/api/v1/servers/web-01/why"] {
        let a = get(&h, path, None).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}: {}", a.body);
        assert!(a.body.contains("read-token add NAME"), "{}", a.body);
    }
    let a = get(&h, "/servers/web-01?x=1", None).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        header_of(&a, header::LOCATION),
        "/login?next=/servers/web-01%3Fx%3D1"
    );
    assert!(
        !a.body.contains("web-01\""),
        "nothing of the server: {}",
        a.body
    );

    // A read token opens the API and /metrics.
    let bearer = format!("Bearer {read}");
    for path in ["/api/v1/servers", "/metrics", "/"] {
        let a = get(&h, path, Some(("authorization", &bearer))).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
    }
    let a = get(
        &h,
        "/api/v1/servers",
        Some(("authorization", "Bearer cwr_0000")),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // A probe's token sends reports; it does not read.
    let probe = h.token("web-02").await;
    let a = get(
        &h,
        "/api/v1/servers",
        Some(("authorization", &format!("Bearer {probe}"))),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    access::revoke_read_token(&h.db.write, "prometheus", NOW)
        .await
        .unwrap();
    let a = get(&h, "/metrics", Some(("authorization", &bearer))).await;
    assert_eq!(
        a.status,
        StatusCode::UNAUTHORIZED,
        "a revoked token still reads"
    );

    // Still open: the health check, a probe's upload (its own token), the sign-in page.
    assert_eq!(get(&h, "/healthz", None).await.status, StatusCode::OK);
    assert_eq!(get(&h, "/login", None).await.status, StatusCode::OK);
    let (status, body) = h
        .post_report(
            &probe,
            &report("web-02", NOW - MIN, vec![ok_check(NOW - MIN)]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_person_signs_in_reads_and_signs_out() {
    let (h, _) = protected().await;

    let wrong = sign_in(&h, "alice", "not her password", "/").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(
        wrong.body.contains("Wrong name or password."),
        "{}",
        wrong.body
    );
    assert!(wrong.headers.get(header::SET_COOKIE).is_none());
    let nobody = sign_in(&h, "mallory", PASSWORD, "/").await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);

    let ok = sign_in(&h, "alice", PASSWORD, "/servers/web-01").await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(header_of(&ok, header::LOCATION), "/servers/web-01");
    let cookie = header_of(&ok, header::SET_COOKIE).to_owned();
    assert!(cookie.starts_with("causeway_session="), "{cookie}");
    for attribute in [
        "; Path=/",
        "; HttpOnly",
        "; SameSite=Strict",
        "; Max-Age=1209600",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "Secure only under TLS: {cookie}"
    );
    let session = cookie.split(';').next().unwrap().to_owned();

    let page = get(&h, "/servers/web-01", Some(("cookie", &session))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("web-01"));
    let api = get(&h, "/api/v1/servers", Some(("cookie", &session))).await;
    assert_eq!(api.status, StatusCode::OK);

    // Somewhere else than this collector is not where signing in leads.
    let away = sign_in(&h, "alice", PASSWORD, "//evil.example/").await;
    assert_eq!(header_of(&away, header::LOCATION), "/");

    let out = get(&h, "/logout", Some(("cookie", &session))).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert!(header_of(&out, header::SET_COOKIE).contains("Max-Age=0"));
    let after = get(&h, "/", Some(("cookie", &session))).await;
    assert_eq!(after.status, StatusCode::SEE_OTHER, "the session ended");

    // Removing a user ends their sessions.
    let again = sign_in(&h, "alice", PASSWORD, "/").await;
    let session = header_of(&again, header::SET_COOKIE)
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    access::remove_user(&h.db.write, "alice").await.unwrap();
    assert_eq!(
        get(&h, "/", Some(("cookie", &session))).await.status,
        StatusCode::SEE_OTHER
    );
}

/// A share link stays public and shows its server only, the rest of the collector closed.
#[tokio::test]
async fn a_share_link_opens_its_server_only() {
    let (h, _) = protected().await;
    let probe = h.token("db-01").await;
    post_all(
        &h,
        &probe,
        &[report("db-01", NOW - MIN, vec![ok_check(NOW - MIN)])],
    )
    .await;
    let secret = causeway_collector::share::add(&h.db.write, "web-01", NOW)
        .await
        .unwrap();
    let a = get(&h, &format!("/s/{secret}"), None).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.body.contains("web-01"));
    assert!(
        !a.body.contains("db-01"),
        "another server on a customer's page"
    );
    assert_eq!(get(&h, "/", None).await.status, StatusCode::SEE_OTHER);
}

/// Every answer carries the headers; the page's own inline style and script are the only ones
/// its content policy lets run.
#[tokio::test]
async fn pages_carry_a_content_policy_that_allows_their_own_script_only() {
    let h = Harness::new().await;
    let page = get(&h, "/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    let csp = header_of(&page, header::CONTENT_SECURITY_POLICY).to_owned();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(header_of(&page, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    assert_eq!(header_of(&page, header::X_FRAME_OPTIONS), "DENY");
    assert_eq!(header_of(&page, header::REFERRER_POLICY), "no-referrer");
    let inline = |open: &str, close: &str| {
        let start = page.body.find(open).unwrap() + open.len();
        let end = start + page.body[start..].find(close).unwrap();
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&page.body[start..end]))
    };
    let script = inline("<script>", "</script>");
    let style = inline("<style>", "</style>");
    assert!(
        csp.contains(&format!("script-src 'sha256-{script}'")),
        "{csp}"
    );
    assert!(
        csp.contains(&format!("style-src 'sha256-{style}'")),
        "{csp}"
    );
    let api = get(&h, "/api/v1/servers", None).await;
    assert_eq!(header_of(&api, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
}

/// On loopback without `--open`, reads are open until the first user or read token exists.
#[tokio::test]
async fn loopback_is_open_until_the_first_credential() {
    let mut h = Harness::new().await;
    h.access = Arc::new(Access::new(Mode::LoopbackUntilCredentials));
    assert_eq!(
        get(&h, "/api/v1/servers", None).await.status,
        StatusCode::OK
    );
    access::add_read_token(&h.db.write, "ctl", NOW, false)
        .await
        .unwrap();
    // A new collector (the answer is remembered for a few seconds in a running one).
    h.access = Arc::new(Access::new(Mode::LoopbackUntilCredentials));
    assert_eq!(
        get(&h, "/api/v1/servers", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

/// probectl over real HTTP: refused without a token, with a hint; reads with `--token` and
/// with a token file.
#[tokio::test]
async fn probectl_reads_with_a_read_token() {
    let (h, read) = protected().await;
    let running = Running::start(&h).await;
    let refused = running.run(&["status"]).await.unwrap_err().to_string();
    assert!(refused.contains("answered 401"), "{refused}");
    assert!(refused.contains("--token or CAUSEWAY_TOKEN"), "{refused}");
    let status = running.run(&["--token", &read, "status"]).await.unwrap();
    assert!(status.contains("web-01"), "{status}");
    let file = h.dir.path().join("read-token");
    std::fs::write(&file, format!("{read}\n")).unwrap();
    let status = running
        .run(&["--token-file", file.to_str().unwrap(), "status"])
        .await
        .unwrap();
    assert!(status.contains("web-01"), "{status}");
    running.stop().await;
}

fn collector(db: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_causeway-collector"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env("RUST_LOG", "warn")
        .env_remove("CAUSEWAY_OPEN")
        .stdin(std::process::Stdio::piped())
        .output()
        .unwrap()
}

/// The binary: a network address is not served to anyone without `--open` or a credential;
/// `user add` reads the password from standard input and refuses a short one.
#[test]
fn the_collector_refuses_to_serve_a_network_address_unprotected() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("c.db");
    let out = collector(&db, &["serve", "--listen", "0.0.0.0:0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve 0.0.0.0:0 unprotected"),
        "{err}"
    );
    assert!(err.contains("--open"), "{err}");

    let mut add = std::process::Command::new(env!("CARGO_BIN_EXE_causeway-collector"))
        .arg("--db")
        .arg(&db)
        .args(["user", "add", "alice", "--role", "admin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    add.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let out = add.wait_with_output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 10 are required"), "{err}");
}
