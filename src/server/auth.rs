//! The access middleware: who is calling (token, JWT or session cookie),
//! whether the route table lets them, whether a cookie-carrying request
//! that changes something comes from our own pages (CSRF), and the audit
//! record of what happened.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::access::{self, Access};
use super::state::AppState;
use crate::audit::AuditRecord;
use crate::auth::{Principal, Refusal, session};

/// What a handler tells the audit trail about its answer (set as a
/// response extension).
#[derive(Debug, Clone, Default)]
pub struct AuditDetail {
    pub patient_id: Option<String>,
    pub sql: Option<String>,
    pub rows: Option<u64>,
    /// The login handler's principal (the middleware saw none).
    pub principal: Option<Principal>,
    /// Why the handler refused (login with a wrong token).
    pub refusal: Option<String>,
}

impl AuditDetail {
    pub fn rows(rows: usize) -> Self {
        Self {
            rows: Some(rows as u64),
            ..Self::default()
        }
    }
}

pub async fn guard(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let Some(route) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        // No route matched: the 404 fallback, which serves nothing.
        return next.run(request).await;
    };
    let Some(rule) = access::rule_of(&route) else {
        tracing::error!(%route, "route without an access rule refused (add it to server::access::RULES)");
        return refuse(StatusCode::FORBIDDEN);
    };
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let method = request.method().clone();
    let audit = |principal: Option<&Principal>,
                 status: StatusCode,
                 detail: AuditDetail,
                 outcome: &'static str,
                 reason: Option<String>| {
        let principal = detail.principal.as_ref().or(principal);
        AuditRecord {
            time: chrono::Utc::now(),
            principal: principal.map(|p| p.name.clone()),
            via: principal.map(|p| p.via.as_str()),
            roles: principal.map(|p| p.roles.to_string()).unwrap_or_default(),
            client: client.map_or_else(|| "unknown".into(), |ip| ip.to_string()),
            method: method.to_string(),
            route: route.clone(),
            patient_id: detail.patient_id,
            sql: detail.sql,
            rows: detail.rows,
            status: status.as_u16(),
            latency_ms: started.elapsed().as_secs_f64() * 1e3,
            outcome,
            reason: reason.or(detail.refusal),
        }
    };

    let principal = if rule.access == Access::Public {
        None
    } else {
        match authenticate(&state, request.headers()).await {
            Ok(principal) => Some(principal),
            Err(refusal) => {
                record(
                    &state,
                    audit(
                        None,
                        StatusCode::UNAUTHORIZED,
                        AuditDetail::default(),
                        "refused",
                        Some(refusal.to_string()),
                    ),
                )
                .await;
                crate::telemetry::events::AccessRefused {
                    route: &route,
                    status: 401,
                    reason: &refusal.to_string(),
                }
                .emit();
                if route == "/" && method == Method::GET {
                    return Redirect::to("/login").into_response();
                }
                return refuse(StatusCode::UNAUTHORIZED);
            }
        }
    };
    if let Some(principal) = &principal {
        let reason = if !rule.access.allows(principal.roles) {
            Some(format!("roles {} do not allow {route}", principal.roles))
        } else if principal.via == crate::auth::Via::Session
            && !same_origin(&state, request.headers(), &method)
        {
            Some("cross-site request with a session cookie".to_string())
        } else {
            None
        };
        if let Some(reason) = reason {
            crate::telemetry::events::AccessRefused {
                route: &route,
                status: 403,
                reason: &reason,
            }
            .emit();
            record(
                &state,
                audit(
                    Some(principal),
                    StatusCode::FORBIDDEN,
                    AuditDetail::default(),
                    "refused",
                    Some(reason),
                ),
            )
            .await;
            return refuse(StatusCode::FORBIDDEN);
        }
        request.extensions_mut().insert(principal.clone());
    } else if rule.audited && !same_origin(&state, request.headers(), &method) {
        // The login form: a cross-site page must not log a browser in.
        record(
            &state,
            audit(
                None,
                StatusCode::FORBIDDEN,
                AuditDetail::default(),
                "refused",
                Some("cross-site login".into()),
            ),
        )
        .await;
        return refuse(StatusCode::FORBIDDEN);
    }
    if rule.audited && state.audit.as_ref().is_some_and(|a| !a.is_healthy()) {
        return super::error::ApiError::Unavailable(
            "audit_trail".into(),
            "patient data is not served while accesses cannot be recorded; see the server log"
                .into(),
        )
        .into_response();
    }
    let response = next.run(request).await;
    // A public page (the login form) is recorded when its handler says
    // what happened (a login attempt), not on every view.
    let detail = response.extensions().get::<AuditDetail>().cloned();
    // A limit's refusal (429) returned no data and is counted in
    // `vitalflow_server_limit_hits_total`: recording each would let a
    // flood of retries fill the audit trail (and the disk).
    let limited = response.status() == StatusCode::TOO_MANY_REQUESTS;
    if rule.audited && !limited && (principal.is_some() || detail.is_some()) {
        let status = response.status();
        let detail = detail.unwrap_or_default();
        let outcome = match status.as_u16() {
            401 | 403 => "refused",
            s if s >= 400 => "failed",
            _ => "allowed",
        };
        record(
            &state,
            audit(principal.as_ref(), status, detail, outcome, None),
        )
        .await;
    }
    response
}

/// The principal of the request's credential: `--insecure-no-auth`, an
/// `Authorization: Bearer` header, or the session cookie.
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, Refusal> {
    if state.auth.insecure {
        return Ok(Principal::anonymous());
    }
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| Refusal::Malformed)?;
        let (scheme, credential) = value.split_once(' ').ok_or(Refusal::Malformed)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Refusal::Malformed);
        }
        return state.auth.bearer(credential.trim()).await;
    }
    match cookie(headers, session::COOKIE) {
        Some(value) => state.auth.session(&value),
        None => Err(Refusal::Missing),
    }
}

/// A named cookie of the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_string())
}

/// Whether a request that may change something comes from this server's
/// own pages. Reads (GET, HEAD) always pass; SameSite=Strict already keeps
/// the cookie off cross-site requests, this is the second lock.
///
/// Browsers say where a request comes from in `Sec-Fetch-Site` (which no
/// page can set) and in `Origin`, except that `Referrer-Policy:
/// no-referrer` makes them send `Origin: null` on same-origin POSTs. So:
/// a `Sec-Fetch-Site` must be `same-origin`, a real `Origin` must be this
/// server, and at least one of the two must be there.
fn same_origin(state: &AppState, headers: &HeaderMap, method: &Method) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let site = text(header::HeaderName::from_static("sec-fetch-site"));
    let origin = text(header::ORIGIN).filter(|o| *o != "null");
    let origin_ok = origin.map(|origin| {
        let scheme = if state.tls { "https" } else { "http" };
        text(header::HOST).is_some_and(|host| origin == format!("{scheme}://{host}"))
    });
    match (site, origin_ok) {
        (None, None) => false,
        (site, origin_ok) => site.is_none_or(|s| s == "same-origin") && origin_ok.unwrap_or(true),
    }
}

async fn record(state: &AppState, record: AuditRecord) {
    if let Some(audit) = &state.audit {
        audit.append(record).await;
    }
}

/// 401 (with `WWW-Authenticate`) or 403; neither says which part of the
/// credential was wrong.
fn refuse(status: StatusCode) -> Response {
    let (kind, msg) = if status == StatusCode::UNAUTHORIZED {
        (
            "unauthorized",
            "authentication required: send `Authorization: Bearer <token>` or log in at /login",
        )
    } else {
        ("forbidden", "this credential does not allow this request")
    };
    let mut response = (
        status,
        axum::Json(json!({ "detail": [{ "loc": [], "msg": msg, "type": kind }] })),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"vitalflow\""),
        );
    }
    response
}
