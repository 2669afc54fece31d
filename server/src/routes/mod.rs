//! HTTP routes. One module per area; each handler is thin and calls plain functions.
//!
//! - [`health`]: `/healthz`, `/readyz`.
//! - [`accounts`]: `/api/v1/auth/*`, `/api/v1/users/*`, `/api/v1/user/search`.
//! - [`friends`]: `/api/v1/friend/*`, `/api/v1/friends/*`.
//! - [`groups`]: `/api/v1/groups/*` (group messages are sent over `/ws` too).
//! - [`conversations`]: `/api/v1/conversations/*` (messages are sent over `/ws`).
//! - [`admin`]: `/admin/v1/*` and `/metrics`, behind the admin token (absent when none is set).
//! - [`limits`]: `/api/v1/limits`, the limits a client needs to know.
//! - [`webapp`]: the web client (`web/dist`, embedded) at `/` and every other path, as the
//!   fallback service.

pub mod accounts;
pub mod admin;
pub mod conversations;
pub mod friends;
pub mod groups;
pub mod health;
pub mod limits;
pub mod webapp;

use actix_web::{error::JsonPayloadError, web, HttpRequest};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// Largest page size any list accepts.
pub const MAX_PAGE_SIZE: i64 = 100;
/// Page size when none is given.
pub const DEFAULT_PAGE_SIZE: i64 = 20;

/// `?page=&size=` (page from 1).
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct PageParams {
    pub page: Option<i64>,
    pub size: Option<i64>,
}

impl PageParams {
    /// Validated (page, size); errors name the parameter.
    pub fn resolve(self) -> Result<(i64, i64), ApiError> {
        let page = self.page.unwrap_or(1);
        let size = self.size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=1_000_000).contains(&page) {
            return Err(ApiError::bad_request("invalid_page", "page must be between 1 and 1000000"));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(ApiError::bad_request("invalid_size", format!("size must be between 1 and {MAX_PAGE_SIZE}")));
        }
        Ok((page, size))
    }
}

/// One page of a list.
#[derive(Debug, Serialize)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub page: i64,
    pub size: i64,
    pub has_more: bool,
}

impl<T> Paged<T> {
    /// Builds a page from up to `size + 1` fetched rows (the extra one only says more follow).
    pub fn from_rows(mut rows: Vec<T>, page: i64, size: i64) -> Self {
        let has_more = rows.len() as i64 > size;
        rows.truncate(size as usize);
        Paged { items: rows, page, size, has_more }
    }
}

/// Maps JSON body errors to 4xx codes: `payload_too_large`, `unsupported_media_type`,
/// `invalid_json` (syntax, wrong types, missing fields).
pub fn json_error(err: JsonPayloadError, _: &HttpRequest) -> actix_web::Error {
    let api = match &err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::new(actix_web::http::StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", err.to_string())
        }
        JsonPayloadError::ContentType => ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "expected Content-Type: application/json",
        ),
        _ => ApiError::bad_request("invalid_json", err.to_string()),
    };
    api.into()
}

/// Maps query-string errors to 400 `invalid_query`.
pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::bad_request("invalid_query", err.to_string()).into()
}

/// Maps path errors (such as a non-numeric id) to 404 `not_found`.
pub fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::not_found("not_found", err.to_string()).into()
}

/// Unknown routes: 404 `not_found` in the usual JSON shape.
pub async fn not_found() -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    ApiError::not_found("not_found", "no such route").error_response()
}

/// Registers every route of the public and the admin API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(health::healthz)))
        .service(web::resource("/readyz").route(web::get().to(health::readyz)))
        .service(
            web::scope("/api/v1")
                .configure(accounts::configure)
                .configure(friends::configure)
                .configure(conversations::configure)
                .configure(groups::configure)
                .configure(limits::configure),
        )
        .configure(admin::configure);
}
