//! The error users see: a stable snake_case code, a message and an HTTP status, serialised as
//! `{"error": "<code>", "message": "..."}` by one `ResponseError` impl.
//!
//! Internal failures (database, store, blocking pool) are logged in full here and shown to the
//! client only as `internal_error`.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// An error answered to an HTTP client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Seconds after which a refused request may be retried (429s).
    pub retry_after: Option<i64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_after: Option<i64>,
}

impl ApiError {
    /// An error with the given status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into(), retry_after: None }
    }

    /// 400 with a code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 422: a field failed validation (`invalid_<field>` codes).
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 with a code.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    /// 404 with a code.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 409 with a code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 429 with a code and the seconds to wait.
    pub fn too_many(code: &'static str, message: impl Into<String>, retry_after: i64) -> Self {
        ApiError { retry_after: Some(retry_after.max(1)), ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, message) }
    }

    /// 500 `internal_error`, logging the cause.
    pub fn internal(cause: impl fmt::Display) -> Self {
        log::error!("internal error: {cause}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal server error")
    }

    /// 503 `unavailable`, logging the cause.
    pub fn unavailable(cause: impl fmt::Display) -> Self {
        log::warn!("service unavailable: {cause}");
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "a backing service is unavailable, retry later")
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
        resp.json(Body { error: self.code, message: &self.message, retry_after: self.retry_after })
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
