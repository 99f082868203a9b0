//! Signing in and out: `GET /login` (the form), `POST /login` (name and password; a session
//! cookie and back to where the person was going), `/logout`.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde::Deserialize;

use super::guard::cookie;
use super::{ApiError, AppState};
use crate::access::{self, SESSION_COOKIE, SESSION_LIFETIME};
use crate::web::layout::{esc, page_for};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", get(logout).post(logout))
}

#[derive(Debug, Deserialize)]
struct Next {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Credentials {
    name: String,
    password: String,
    next: Option<String>,
}

/// Where to go after signing in: a path of this collector, nothing else (no open redirect).
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => p,
        _ => "/",
    }
}

fn form_page(next: &str, problem: Option<&str>) -> String {
    let problem = problem.map_or(String::new(), |p| {
        format!("<p class=\"bad\">{}</p>\n", esc(p))
    });
    let body = format!(
        "<h1>Sign in</h1>\n{problem}<form method=\"post\" action=\"/login\">\n\
         <p><label>Name <input name=\"name\" autocomplete=\"username\" required autofocus></label></p>\n\
         <p><label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label></p>\n\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\n\
         <p><button type=\"submit\">Sign in</button></p>\n</form>\n\
         <p class=\"muted\">Accounts are made on the collector's host: \
         <code>causeway-collector user add NAME</code>.</p>",
        esc(next)
    );
    page_for("Sign in", "", &body, false)
}

async fn login_form(Query(q): Query<Next>) -> Html<String> {
    Html(form_page(local_path(q.next.as_deref()), None))
}

async fn login(
    State(app): State<AppState>,
    Form(c): Form<Credentials>,
) -> Result<Response, ApiError> {
    let next = local_path(c.next.as_deref()).to_owned();
    let pool = &app.db.read;
    let user = access::verify_password(pool, &c.name, &c.password)
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    let Some(user) = user else {
        tracing::warn!(name = %causeway_schema::quoted(&c.name), "sign-in refused: wrong name or password");
        let page = form_page(&next, Some("Wrong name or password."));
        return Ok((StatusCode::UNAUTHORIZED, Html(page)).into_response());
    };
    let secret = access::start_session(&app.db.write, &user, app.clock.now_ms())
        .await
        .map_err(|e| ApiError::Internal(Box::new(e)))?;
    tracing::info!(user = %user.name, role = user.role.id(), "signed in");
    let secure = if app.access.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={secret}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        SESSION_LIFETIME.as_secs()
    );
    Ok((
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, cookie), (header::LOCATION, next)],
    )
        .into_response())
}

async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(secret) = cookie(&headers, SESSION_COOKIE) {
        access::end_session(&app.db.write, secret).await?;
    }
    let clear = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, clear),
            (header::LOCATION, "/login".to_owned()),
        ],
    )
        .into_response())
}
