//! The one error type of the API, and how it becomes a response.
//!
//! What a client reads is a fixed phrase per status: the real cause (a database error, an
//! I/O error, why a token was refused) is logged, never sent, so errors leak neither the
//! server's insides nor whether something hidden exists.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use mist_platform::error::ErrorChain;
use mist_wire::error::ErrorBody;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A malformed request: the message says what to fix and holds nothing secret.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// No valid token, or its user can no longer use it. The reason is logged at `debug`.
    #[error("unauthorized")]
    Unauthorized,
    /// Wrong user name or password.
    #[error("login failed")]
    LoginFailed,
    /// The user may see the resource but not do this.
    #[error("forbidden")]
    Forbidden,
    /// Does not exist, or the viewer may not see it.
    #[error("not found")]
    NotFound,
    /// Too many failed logins from this client or for this user.
    #[error("too many failed logins")]
    TooManyRequests { retry_after: Duration },
    /// The request is valid but cannot be answered in the current state.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A range that the representation cannot satisfy.
    #[error("range not satisfiable")]
    RangeNotSatisfiable { len: u64 },
    /// A file in a repair request is larger than repairs allow.
    #[error("payload too large: {0}")]
    TooLarge(String),
    /// Something this server was not configured with, or a busy resource.
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    /// A bug or an environment failure: logged with its chain, answered `500`.
    #[error(transparent)]
    Internal(#[from] InternalError),
}

/// The causes of a `500`, kept apart so `?` converts them.
#[derive(Debug, thiserror::Error)]
pub(crate) enum InternalError {
    #[error("database error")]
    Db(#[from] mist_db::Error),
    #[error("i/o error on {what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Other(String),
}

impl From<mist_db::Error> for Error {
    fn from(error: mist_db::Error) -> Error {
        Error::Internal(InternalError::Db(error))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = match &self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized | Error::LoginFailed => StatusCode::UNAUTHORIZED,
            Error::Forbidden => StatusCode::FORBIDDEN,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let message = match &self {
            Error::BadRequest(message) => message.clone(),
            Error::Unauthorized => "missing or invalid token".to_owned(),
            Error::LoginFailed => "invalid user name or password".to_owned(),
            Error::Forbidden => "not allowed".to_owned(),
            Error::NotFound => "not found".to_owned(),
            Error::TooManyRequests { .. } => "too many failed logins; try again later".to_owned(),
            Error::RangeNotSatisfiable { .. } => "range not satisfiable".to_owned(),
            Error::TooLarge(message) | Error::Conflict(message) => message.clone(),
            Error::Unavailable(message) => (*message).to_owned(),
            Error::Internal(error) => {
                tracing::error!(error = %ErrorChain(error), "request failed");
                "internal error (see the server log)".to_owned()
            }
        };
        let mut response = (status, Json(ErrorBody { error: message })).into_response();
        let headers = response.headers_mut();
        match self {
            Error::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Error::TooManyRequests { retry_after } => {
                let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            Error::RangeNotSatisfiable { len } => {
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
            }
            _ => {}
        }
        response
    }
}

/// An I/O error on something named, as a `500`.
pub(crate) fn io_error(what: impl Into<String>, source: std::io::Error) -> Error {
    Error::Internal(InternalError::Io {
        what: what.into(),
        source,
    })
}
