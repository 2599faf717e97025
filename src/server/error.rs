//! [`ApiError`]: every failure an HTTP client can see, as a status code and
//! a FastAPI-style `{"detail": [...]}` body. [`ServerError`]: the server's
//! own failures, which clients never see (the socket, the audit trail, a
//! model that does not fit the API, result rows that do not serialise).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::api::types::{ErrorBody, FieldError};
use crate::common::{BoxError, ErrorChain};

#[derive(Debug)]
pub enum ApiError {
    /// The request is well-formed HTTP but its content is invalid (422).
    Validation(Vec<FieldError>),
    /// No model is loaded (503).
    ModelUnavailable(String),
    /// A bug or an unexpected model failure (500).
    Internal(String),
    /// SQL that does not parse or plan, or is not a read-only query (400).
    BadQuery(String),
    /// The caller's roles do not allow this (403).
    Forbidden(String),
    /// What the request names does not exist (404): where, and what.
    NotFound(Vec<Value>, String),
    /// A part of the server that could not be loaded: what, and why (503).
    Unavailable(String, String),
    /// A server limit refused or ended the request: `what` is the limit
    /// (the body's `type`), `msg` names it and its setting.
    Limit {
        status: StatusCode,
        what: &'static str,
        msg: String,
        /// Seconds after which a retry may succeed (`Retry-After`).
        retry_after: Option<u64>,
    },
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, detail) = match self {
            ApiError::Limit {
                status,
                what,
                msg,
                retry_after,
            } => return limit_response(status, what, msg, retry_after),
            ApiError::Validation(errors) => (StatusCode::UNPROCESSABLE_ENTITY, errors),
            ApiError::ModelUnavailable(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                vec![FieldError {
                    loc: vec![Value::from("model")],
                    msg: format!("model not loaded: {why}"),
                    // (`why` is the public message, without paths: see
                    // `state::MODEL_NOT_LOADED`.)
                    kind: "model_unavailable".into(),
                }],
            ),
            ApiError::BadQuery(why) => (
                StatusCode::BAD_REQUEST,
                vec![FieldError {
                    loc: vec![Value::from("body"), Value::from("sql")],
                    msg: why,
                    kind: "sql".into(),
                }],
            ),
            ApiError::Forbidden(why) => (
                StatusCode::FORBIDDEN,
                vec![FieldError {
                    loc: vec![],
                    msg: why,
                    kind: "forbidden".into(),
                }],
            ),
            ApiError::NotFound(loc, msg) => (
                StatusCode::NOT_FOUND,
                vec![FieldError {
                    loc,
                    msg,
                    kind: "not_found".into(),
                }],
            ),
            ApiError::Unavailable(what, why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                vec![FieldError {
                    loc: vec![Value::from(what.clone())],
                    msg: format!("{what} not loaded: {why}"),
                    kind: format!("{what}_unavailable"),
                }],
            ),
            ApiError::Internal(why) => {
                tracing::error!(error = %why, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    vec![FieldError {
                        loc: vec![],
                        msg: "internal error; see the server log".into(),
                        kind: "internal".into(),
                    }],
                )
            }
        };
        (status, Json(ErrorBody { detail })).into_response()
    }
}

/// A limit's refusal: its body, `Retry-After` when a retry can succeed, and
/// the event that counts it.
fn limit_response(
    status: StatusCode,
    what: &'static str,
    msg: String,
    retry_after: Option<u64>,
) -> Response {
    crate::telemetry::events::LimitHit { limit: what }.emit();
    let body = ErrorBody {
        detail: vec![FieldError {
            loc: vec![],
            msg,
            kind: what.into(),
        }],
    };
    let mut response = (status, Json(body)).into_response();
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(axum::http::header::RETRY_AFTER, seconds.into());
    }
    response
}

/// A failure of the server itself, grouped by kind: the socket (the
/// operator's to fix: address in use, permissions), the audit trail, a
/// model the API cannot serve, and result rows that do not serialise (a
/// bug). TLS that cannot be set up is [`TlsError`](super::tls::TlsError).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address cannot be listened on.
    #[error("cannot listen on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },

    /// The listening socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),

    /// The audit trail could not be flushed when the server stopped (the
    /// audit layer's error, printed with its chain).
    #[error("{}", ErrorChain(.0.as_ref()))]
    Audit(BoxError),

    /// The model's features are not the API's fields, in the same order.
    #[error("model features {found:?} do not match the API's {expected:?}")]
    ModelFeatures {
        found: Vec<String>,
        expected: Vec<&'static str>,
    },

    /// Arrow could not write result rows as JSON.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    /// A JSON row written by Arrow does not parse back.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}
