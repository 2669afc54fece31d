//! The machine-readable API contract: the OpenAPI 3.1 document of every HTTP endpoint and the
//! JSON Schema of the WebSocket frames, both generated from the code and served at
//! `GET /api/v1/openapi.json` and `GET /api/v1/ws-schema.json`.
//!
//! How the OpenAPI document is made:
//! - Every handler carries `#[utoipa::path]` beside its actix route macro and is registered with
//!   `utoipa_actix_web`'s `service(...)` in [`crate::routes::configure`]: the one registration
//!   builds the actix app and collects the path, so an endpoint cannot exist without its entry.
//! - Bodies, views and query parameters derive `utoipa::ToSchema` / `IntoParams`.
//! - Each handler lists the error codes of its own in an [`errors!`](crate::errors) type (one
//!   response per status, whose schema's `error` is the enum of the codes it can carry).
//! - [`Docs::build`] then adds what every endpoint of a kind can answer, by one rule each, the
//!   rules the server follows: `401 unauthorized` and `403 user_banned` where a bearer token is
//!   needed; `401 unauthorized` and `404 not_found` on the admin API; `400 invalid_json`,
//!   `413 payload_too_large` and `415 unsupported_media_type` where there is a JSON body;
//!   `400 invalid_query` where there are query parameters; `404 not_found` where a path has
//!   parameters; and `500 internal_error` and `503 unavailable` on every endpoint that can fail.

use std::collections::BTreeMap;

use actix_web::{get, web, HttpResponse};
use serde_json::{json, Value};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{ContentBuilder, RefOr};

use crate::error::ErrorCode;

/// The name of the user bearer-token security scheme.
pub const BEARER: &str = "bearer";
/// The name of the admin bearer-token security scheme.
pub const ADMIN: &str = "admin";

/// Declares the error responses of one endpoint: a type implementing `utoipa::IntoResponses`,
/// named in the handler's `#[utoipa::path(responses(...))]`.
///
/// `errors!(LoginErrors: InvalidLogin, InvalidCredentials)` lists [`ErrorCode`]s, each answered
/// with its own status; `NotFriends = 404` gives one a status of this endpoint's own.
#[macro_export]
macro_rules! errors {
    ($(#[$meta:meta])* $name:ident: $($code:ident $(= $status:literal)?),+ $(,)?) => {
        $(#[$meta])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
            > {
                $crate::openapi::error_responses(&[
                    $(($crate::error::ErrorCode::$code, $crate::errors!(@status $code $($status)?))),+
                ])
            }
        }
    };
    (@status $code:ident) => { $crate::error::ErrorCode::$code.status() };
    (@status $code:ident $status:literal) => { $status };
}

/// The schema of an error body whose `error` is one of `codes`.
fn error_schema(codes: &[&str], status: u16) -> ObjectBuilder {
    let mut o = ObjectBuilder::new()
        .property(
            "error",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(codes.iter().copied()))
                .description(Some("The stable error code.")),
        )
        .required("error")
        .property(
            "message",
            ObjectBuilder::new().schema_type(Type::String).description(Some("Human-readable; not for programs.")),
        )
        .required("message");
    if status == 429 {
        o = o
            .property(
                "retry_after",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .description(Some("Seconds to wait (also the Retry-After header).")),
            )
            .required("retry_after");
    }
    o
}

fn error_response(status: u16, codes: &[&str]) -> Response {
    let reason =
        actix_web::http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("Error");
    ResponseBuilder::new()
        .description(format!("{reason}: {}", codes.join(", ")))
        .content("application/json", ContentBuilder::new().schema(Some(error_schema(codes, status))).build())
        .build()
}

/// The responses of a list of codes with their statuses, one per status (used by [`errors!`]).
pub fn error_responses(codes: &[(ErrorCode, u16)]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for (code, status) in codes {
        let list = by_status.entry(*status).or_default();
        if !list.contains(&code.as_str()) {
            list.push(code.as_str());
        }
    }
    by_status
        .into_iter()
        .map(|(status, codes)| (status.to_string(), RefOr::T(error_response(status, &codes))))
        .collect()
}

/// Adds `code` to the error response for `status` of an operation (JSON form), creating the
/// response when there is none.
fn add_error(op: &mut Value, status: u16, code: ErrorCode) {
    let responses = &mut op["responses"];
    let key = status.to_string();
    if responses.get(&key).is_none() {
        if let Ok(v) = serde_json::to_value(error_response(status, &[code.as_str()])) {
            responses[&key] = v;
        }
        return;
    }
    let resp = &mut responses[&key];
    let Some(list) = resp["content"]["application/json"]["schema"]["properties"]["error"]["enum"].as_array_mut() else {
        // A response of another shape (such as /readyz's 503): left as it is.
        return;
    };
    if !list.iter().any(|c| c == code.as_str()) {
        list.push(Value::String(code.as_str().to_owned()));
    }
    let codes: Vec<String> = list.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect();
    if let Some(d) = resp.get_mut("description") {
        let reason = d.as_str().and_then(|d| d.split(':').next()).unwrap_or("Error").to_owned();
        *d = Value::String(format!("{reason}: {}", codes.join(", ")));
    }
}

/// Applies the rules of the module docs to one operation.
fn add_common_errors(op: &mut Value) {
    let security: Vec<String> = op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_object())
        .flat_map(|s| s.keys().cloned())
        .collect();
    let params = op["parameters"].as_array().cloned().unwrap_or_default();
    let has_path = params.iter().any(|p| p["in"] == "path");
    let has_query = params.iter().any(|p| p["in"] == "query");
    let has_json_body = op["requestBody"]["content"].get("application/json").is_some();
    let mut added = Vec::new();
    if security.iter().any(|s| s == BEARER) {
        added.extend([ErrorCode::Unauthorized, ErrorCode::UserBanned]);
    }
    if security.iter().any(|s| s == ADMIN) {
        added.extend([ErrorCode::Unauthorized, ErrorCode::NotFound]);
    }
    if has_json_body {
        added.extend([ErrorCode::InvalidJson, ErrorCode::PayloadTooLarge, ErrorCode::UnsupportedMediaType]);
    }
    if has_query {
        added.push(ErrorCode::InvalidQuery);
    }
    if has_path {
        added.push(ErrorCode::NotFound);
    }
    for code in added {
        add_error(op, code.status(), code);
    }
    let fails = op["responses"].as_object().is_some_and(|r| r.keys().any(|s| s.starts_with('4')));
    if fails {
        add_error(op, 500, ErrorCode::InternalError);
        add_error(op, 503, ErrorCode::Unavailable);
    }
}

/// The served documents, built once at start-up.
pub struct Docs {
    /// `GET /api/v1/openapi.json`.
    pub openapi: Value,
    /// `GET /api/v1/ws-schema.json`.
    pub ws_schema: Value,
}

impl Docs {
    /// Generates both documents from the code: the OpenAPI paths from the same registration
    /// that builds the app ([`crate::routes::configure`]), the frames' schema from
    /// `schema::protocol`.
    pub fn build() -> Self {
        use utoipa_actix_web::AppExt;
        let (_, api) = actix_web::App::new().into_utoipa_app().configure(crate::routes::configure).split_for_parts();
        let mut doc = serde_json::to_value(&api).unwrap_or_else(|e| {
            log::error!("cannot serialise the OpenAPI document: {e}");
            json!({})
        });
        doc["openapi"] = json!("3.1.0");
        doc["info"] = json!({
            "title": "IM-Server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The HTTP API of IM-Server, generated from the code. Every error body is \
                {\"error\": <code>, \"message\": ...} (429s add retry_after); each response lists \
                the codes it can carry. Chat itself is on the WebSocket at /ws, whose frames are \
                described by /api/v1/ws-schema.json. Prose, examples and rules: docs/API.md.",
            "license": {"name": "MIT OR Apache-2.0", "identifier": "MIT OR Apache-2.0"},
        });
        let schemes = json!({
            BEARER: {"type": "http", "scheme": "bearer",
                     "description": "A device token from POST /api/v1/auth/login."},
            ADMIN: {"type": "http", "scheme": "bearer",
                    "description": "The operators' admin.token (the admin API answers 404 without one configured)."},
        });
        doc["components"]["securitySchemes"] = schemes;
        let http: Vec<&str> = ErrorCode::http_codes().map(ErrorCode::as_str).collect();
        doc["components"]["schemas"]["ErrorCode"] =
            json!({"type": "string", "description": "Every error code of the HTTP API.", "enum": http});
        if let Some(paths) = doc["paths"].as_object_mut() {
            for item in paths.values_mut() {
                if let Some(item) = item.as_object_mut() {
                    for op in item.values_mut() {
                        add_common_errors(op);
                    }
                }
            }
        }
        Docs { openapi: doc, ws_schema: schema::protocol::frames_schema() }
    }
}

/// `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of this server's HTTP API.
#[utoipa::path(tag = "meta", responses((status = 200, description = "The OpenAPI document", body = Object)))]
#[get("/openapi.json")]
pub async fn openapi_json(docs: web::Data<Docs>) -> HttpResponse {
    HttpResponse::Ok().json(&docs.openapi)
}

/// `GET /api/v1/ws-schema.json`: the JSON Schema (2020-12) of the WebSocket frames, both
/// directions (`$defs/ClientFrame`, `$defs/ServerFrame`).
#[utoipa::path(tag = "meta", responses((status = 200, description = "The JSON Schema of /ws frames", body = Object)))]
#[get("/ws-schema.json")]
pub async fn ws_schema_json(docs: web::Data<Docs>) -> HttpResponse {
    HttpResponse::Ok().json(&docs.ws_schema)
}
