//! HTTP routes. One module per area; each handler is thin and calls plain functions.
//!
//! - [`health`]: `/healthz`, `/readyz`.
//! - [`accounts`]: `/api/v1/auth/*`, `/api/v1/users/*`, `/api/v1/user/search`.
//! - [`friends`]: `/api/v1/friend/*`, `/api/v1/friends/*`.
//! - [`blocks`]: blocking, `/api/v1/blocks/*` and the block list.
//! - [`groups`]: `/api/v1/groups/*` (group messages are sent over `/ws` too).
//! - [`conversations`]: `/api/v1/conversations/*` (messages are sent over `/ws`).
//! - [`search`]: message search, `/api/v1/search/messages`.
//! - [`admin`]: `/admin/v1/*` and `/metrics`, behind the admin token (absent when none is set).
//! - [`uploads`]: `/api/v1/uploads/*`, files sent in messages.
//! - [`push`]: push targets of devices, `/api/v1/devices/{id}/push`, and `/api/v1/push/*`.
//! - [`limits`]: `/api/v1/limits`, the limits a client needs to know.
//! - [`webapp`]: the web client (`web/dist`, embedded) at `/` and every other path, as the
//!   fallback service.
//!
//! Every handler is registered once, with `utoipa_actix_web`'s `service(...)` in [`configure`]:
//! that builds the actix routes and the OpenAPI document's paths together
//! ([`crate::openapi`]).

pub mod accounts;
pub mod admin;
pub mod blocks;
pub mod conversations;
pub mod friends;
pub mod groups;
pub mod health;
pub mod limits;
pub mod push;
pub mod search;
pub mod uploads;
pub mod webapp;

use actix_web::{error::JsonPayloadError, HttpRequest};
use serde::{Deserialize, Serialize};
use utoipa_actix_web::scope;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::error::{ApiError, ErrorCode};

/// Largest page size any list accepts.
pub const MAX_PAGE_SIZE: i64 = 100;
/// Page size when none is given.
pub const DEFAULT_PAGE_SIZE: i64 = 20;

/// `?page=&size=` (page from 1).
#[derive(Debug, Clone, Copy, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page number, from 1 (at most 1000000; default 1).
    pub page: Option<i64>,
    /// Page size, 1 to 100 (default 20).
    pub size: Option<i64>,
}

impl PageParams {
    /// Validated (page, size); errors name the parameter.
    pub fn resolve(self) -> Result<(i64, i64), ApiError> {
        let page = self.page.unwrap_or(1);
        let size = self.size.unwrap_or(DEFAULT_PAGE_SIZE);
        if !(1..=1_000_000).contains(&page) {
            return Err(ApiError::new(ErrorCode::InvalidPage, "page must be between 1 and 1000000"));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(ApiError::new(ErrorCode::InvalidSize, format!("size must be between 1 and {MAX_PAGE_SIZE}")));
        }
        Ok((page, size))
    }
}

/// One page of a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Paged<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// The page number.
    pub page: i64,
    /// The page size asked for.
    pub size: i64,
    /// Whether at least one more item follows this page.
    pub has_more: bool,
}

/// A short list, not paged: `{"items": [...]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Items<T> {
    /// The whole list.
    pub items: Vec<T>,
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
            ApiError::new(ErrorCode::PayloadTooLarge, err.to_string())
        }
        JsonPayloadError::ContentType => {
            ApiError::new(ErrorCode::UnsupportedMediaType, "expected Content-Type: application/json")
        }
        _ => ApiError::new(ErrorCode::InvalidJson, err.to_string()),
    };
    api.into()
}

/// Maps query-string errors to 400 `invalid_query`.
pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::InvalidQuery, err.to_string()).into()
}

/// Maps path errors (such as a non-numeric id) to 404 `not_found`.
pub fn path_error(err: actix_web::error::PathError, _: &HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::NotFound, err.to_string()).into()
}

/// Unknown routes: 404 `not_found` in the usual JSON shape.
pub async fn not_found() -> actix_web::HttpResponse {
    use actix_web::ResponseError;
    ApiError::no_route().error_response()
}

/// Registers every route: health, the public API under `/api/v1` (with the OpenAPI document
/// and the frames' schema), the admin API, `/ws` and the web client's `/`. The app adds the
/// web client as its fallback service.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(
            scope::scope("/api/v1")
                .configure(accounts::configure)
                .configure(friends::configure)
                .configure(blocks::configure)
                .configure(conversations::configure)
                .configure(groups::configure)
                .configure(limits::configure)
                .configure(uploads::configure)
                .configure(search::configure)
                .configure(push::configure)
                .service(crate::openapi::openapi_json)
                .service(crate::openapi::ws_schema_json),
        )
        .configure(admin::configure)
        .service(crate::ws::connect)
        .service(webapp::index);
}
