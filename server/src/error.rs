//! The error users see: a stable snake_case code ([`ErrorCode`], the one enum of every code, HTTP
//! and WebSocket), a message and an HTTP status, serialised as `{"error": "<code>", "message":
//! "..."}` by one `ResponseError` impl.
//!
//! Internal failures (database, store, blocking pool) are logged in full here and shown to the
//! client only as `internal_error`.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
pub use schema::error::ErrorCode;
use serde::Serialize;

/// An error answered to an HTTP client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status: the code's own ([`ErrorCode::status`]) unless [`ApiError::with_status`]
    /// changed it.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// Seconds after which a refused request may be retried (429s).
    pub retry_after: Option<i64>,
}

/// The body of every error response: `{"error", "message"[, "retry_after"]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    /// The stable code (each response of the OpenAPI document lists the codes it can carry).
    #[schema(value_type = String)]
    pub error: ErrorCode,
    /// A human-readable explanation; it may change and is not for programs to parse.
    pub message: &'a str,
    /// Seconds to wait before retrying (429 only; also in the `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<i64>,
}

/// The HTTP status of a code.
pub fn status_of(code: ErrorCode) -> StatusCode {
    StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

impl ApiError {
    /// An error with the given code, answered with the code's status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { status: status_of(code), code, message: message.into(), retry_after: None }
    }

    /// The same error with another status: for the few codes that one context answers with a
    /// status of its own (`schema::error` lists them; the OpenAPI document shows them).
    pub fn with_status(self, status: StatusCode) -> Self {
        ApiError { status, ..self }
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    /// 404 `not_found`: no such route (also a known path with a method it does not have).
    pub fn no_route() -> Self {
        Self::new(ErrorCode::NotFound, "no such route")
    }

    /// 429 with a code and the seconds to wait.
    pub fn too_many(code: ErrorCode, message: impl Into<String>, retry_after: i64) -> Self {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..Self::new(code, message).with_status(StatusCode::TOO_MANY_REQUESTS)
        }
    }

    /// 500 `internal_error`, logging the cause.
    pub fn internal(cause: impl fmt::Display) -> Self {
        log::error!("internal error: {cause}");
        Self::new(ErrorCode::InternalError, "internal server error")
    }

    /// 503 `unavailable`, logging the cause.
    pub fn unavailable(cause: impl fmt::Display) -> Self {
        log::warn!("service unavailable: {cause}");
        Self::new(ErrorCode::Unavailable, "a backing service is unavailable, retry later")
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status);
        if let Some(s) = self.retry_after {
            resp.insert_header(("Retry-After", s.to_string()));
        }
        resp.json(ErrorBody { error: self.code, message: &self.message, retry_after: self.retry_after })
    }
}

impl From<schema::db::DbError> for ApiError {
    fn from(e: schema::db::DbError) -> Self {
        match e {
            schema::db::DbError::Pool(_) | schema::db::DbError::Connect(_) => ApiError::unavailable(e),
            other => ApiError::internal(other),
        }
    }
}

impl From<actors::command::ChatError> for ApiError {
    fn from(e: actors::command::ChatError) -> Self {
        match e {
            actors::command::ChatError::Unavailable(cause) => ApiError::unavailable(cause),
            other => {
                let status = StatusCode::from_u16(other.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                ApiError::new(other.code(), other.to_string()).with_status(status)
            }
        }
    }
}

impl From<actors::store::StoreError> for ApiError {
    fn from(e: actors::store::StoreError) -> Self {
        ApiError::internal(e)
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::internal(e)
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
