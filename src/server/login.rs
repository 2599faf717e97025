//! Browser sessions: the login page, logging in with a token (form or the
//! one-time URL printed at first start), logging out, and `/api/me`.

use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{AuditDetail, cookie};
use super::state::AppState;
use crate::auth::{Principal, session};

const PAGE: &str = include_str!("dashboard/login.html");

#[derive(Debug, Deserialize)]
pub struct Login {
    #[serde(default)]
    token: Option<String>,
}

/// `GET /login`: the form; `GET /login?token=...` logs in at once (the URL
/// `vitalflow up` prints at first start) and drops the token from the
/// address bar by redirecting.
pub async fn page(State(state): State<AppState>, Query(login): Query<Login>) -> Response {
    match login.token {
        Some(token) => log_in(&state, &token).await,
        None => page_with(&state, StatusCode::OK, None),
    }
}

/// `POST /login` (form field `token`).
pub async fn submit(State(state): State<AppState>, Form(login): Form<Login>) -> Response {
    log_in(&state, login.token.as_deref().unwrap_or("")).await
}

async fn log_in(state: &AppState, token: &str) -> Response {
    match state.auth.bearer(token.trim()).await {
        Ok(principal) if !principal.roles.is_empty() => {
            let value = state.auth.sessions.open(&principal);
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().insert(
                header::SET_COOKIE,
                session_cookie(state, &value, state.auth.sessions.ttl().as_secs()),
            );
            response.extensions_mut().insert(AuditDetail {
                principal: Some(principal),
                ..AuditDetail::default()
            });
            response
        }
        outcome => {
            let reason = match outcome {
                Ok(_) => "the credential holds no role".to_string(),
                Err(refusal) => refusal.to_string(),
            };
            let mut response = page_with(
                state,
                StatusCode::UNAUTHORIZED,
                Some("That token was not accepted."),
            );
            response.extensions_mut().insert(AuditDetail {
                refusal: Some(format!("login refused: {reason}")),
                ..AuditDetail::default()
            });
            response
        }
    }
}

/// `POST /logout`: end the session (a copy of the cookie is refused from
/// now on) and clear the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(value) = cookie(&headers, session::COOKIE) {
        state.auth.sessions.close(&value);
    }
    let mut response = Redirect::to("/login").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, "", 0));
    response
}

/// `GET /api/me`: who the caller is, for the dashboard (which hides what
/// its roles do not allow).
pub async fn me(Extension(principal): Extension<Principal>) -> Json<Value> {
    let roles: Vec<&str> = principal.roles.iter().map(|r| r.as_str()).collect();
    Json(json!({
        "name": principal.name,
        "roles": roles,
        "via": principal.via.as_str(),
        "expires": principal.expires.map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339()),
    }))
}

fn session_cookie(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
        session::COOKIE
    ))
    .expect("cookie values are base64url")
}

fn page_with(state: &AppState, status: StatusCode, message: Option<&'static str>) -> Response {
    let ttl = humantime::format_duration(state.auth.sessions.ttl()).to_string();
    let html = PAGE
        .replace("{{hidden}}", if message.is_some() { "" } else { "hidden" })
        .replace("{{message}}", message.unwrap_or(""))
        .replace("{{ttl}}", &ttl);
    (status, Html(html)).into_response()
}
