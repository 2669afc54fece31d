//! What wraps every request: its id, the client's address, the access log line, the headers a
//! browser-facing server sends, and CORS.
//!
//! - [`access_log`] (outermost) takes the request's id from `X-Request-Id` (nginx sets one) or
//!   makes one, answers it in `X-Request-Id`, attributes the request to a client address
//!   ([`crate::proxy`], stored as [`ClientAddr`] for the rate limits), runs the request with the
//!   id in scope (so every log line written meanwhile carries it, [`crate::logging`]) and writes
//!   one `im::http` line: method, path without the query string (`?token=` must never reach the
//!   logs), status, bytes, duration, client, request id.
//! - [`security_headers`] adds, where the response has none of its own: `nosniff`,
//!   `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`, a `Content-Security-Policy` that
//!   lets an API answer load nothing and be framed nowhere, `Cache-Control: no-store` (API
//!   answers carry tokens and private data), and `Strict-Transport-Security` when
//!   `server.hsts_max_age_secs` is set. The web client's own answers
//!   ([`crate::routes::webapp`]) set their CSP, cache headers, `nosniff` and referrer policy
//!   themselves, and those are kept.
//! - [`cors`] builds the CORS policy of `server.cors_allowed_origins` (off when empty).

use std::time::Instant;

use actix_cors::Cors;
use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use rand::RngCore;

use crate::config::ServerSection;
use crate::state::AppState;
pub use crate::throttle::ClientAddr;

/// The request id header (read and answered).
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longest request id taken from a request.
pub const MAX_REQUEST_ID: usize = 128;
/// What an API answer may load and who may frame it: nothing and nobody.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// How long a browser may cache a CORS preflight answer, seconds.
pub const CORS_MAX_AGE_SECS: usize = 3600;

/// A request id from a client or a proxy, when it is safe to log: 1-128 characters of
/// `[A-Za-z0-9._:-]` (nginx's `$request_id` is 32 hex digits).
fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    let ok = !s.is_empty()
        && s.len() <= MAX_REQUEST_ID
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    ok.then(|| s.to_owned())
}

/// A new request id: 128 random bits in hex.
pub fn new_request_id() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Request id, client address, access log line.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = req.headers().get(&REQUEST_ID).and_then(sane_request_id).unwrap_or_else(new_request_id);
    let client = match (req.peer_addr(), req.app_data::<web::Data<AppState>>()) {
        (Some(peer), Some(state)) => Some(state.proxies.client_addr(peer.ip(), req.headers())),
        (Some(peer), None) => Some(peer.ip()),
        _ => None,
    };
    if let Some(ip) = client {
        req.extensions_mut().insert(ClientAddr(ip));
    }
    let method = req.method().to_string();
    // The path only: the query string may hold a token.
    let path = req.path().to_owned();
    let mut res = crate::logging::with_request_id(id.clone(), next.call(req)).await;
    if let Ok(res) = &mut res {
        // Before the log line: an answer always carries its id.
        if let Ok(v) = HeaderValue::from_str(&id) {
            res.headers_mut().insert(REQUEST_ID, v);
        }
    }
    if !log::log_enabled!(target: "im::http", log::Level::Info) {
        return res;
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let client = client.map(|c| c.to_string()).unwrap_or_else(|| "-".into());
    match res {
        Ok(res) => {
            let status = res.status().as_u16();
            let bytes = match res.response().body().size() {
                BodySize::Sized(n) => n.to_string(),
                BodySize::None => "0".into(),
                BodySize::Stream => "-".into(),
            };
            log::info!(
                target: "im::http",
                method = method.as_str(), path = path.as_str(), status = status, bytes = bytes.as_str(),
                duration_ms = (ms * 1000.0).round() / 1000.0, client = client.as_str(), request_id = id.as_str();
                "request"
            );
            Ok(res)
        }
        Err(e) => {
            log::info!(
                target: "im::http",
                method = method.as_str(), path = path.as_str(), error:% = e, duration_ms = ms,
                client = client.as_str(), request_id = id.as_str();
                "request failed"
            );
            Err(e)
        }
    }
}

/// The headers a browser-facing server sends, each only where the response has none.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let hsts = req
        .app_data::<web::Data<AppState>>()
        .map(|s| s.settings.server.hsts_max_age_secs)
        .filter(|s| *s > 0)
        .and_then(|s| HeaderValue::from_str(&format!("max-age={s}")).ok());
    let mut res = next.call(req).await?;
    let h = res.headers_mut();
    let defaults = [
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(API_CSP)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ];
    for (name, value) in defaults.into_iter().chain(hsts.map(|v| (header::STRICT_TRANSPORT_SECURITY, v))) {
        if !h.contains_key(&name) {
            h.insert(name, value);
        }
    }
    Ok(res)
}

/// True for `*` or an origin as browsers send it: `http(s)://host[:port]`, nothing after.
pub fn valid_origin(o: &str) -> bool {
    if o == "*" {
        return true;
    }
    let Some(rest) = o.strip_prefix("https://").or_else(|| o.strip_prefix("http://")) else { return false };
    !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' '])
        && o.parse::<actix_web::http::Uri>().is_ok_and(|u| u.host().is_some_and(|h| !h.is_empty()))
}

/// The CORS policy of `server.cors_allowed_origins`: those origins may call every method with
/// `Authorization` and `Content-Type`, and read `Retry-After` and `X-Request-Id`; no cookies
/// (the API uses bearer tokens). A request from any other origin is served without CORS
/// headers (so its browser refuses it to the page) rather than refused, which keeps
/// same-origin pages and non-browser clients working.
pub fn cors(s: &ServerSection) -> Cors {
    let mut c = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE"])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, REQUEST_ID])
        .expose_headers([header::RETRY_AFTER, REQUEST_ID])
        .max_age(CORS_MAX_AGE_SECS)
        .block_on_origin_mismatch(false);
    for o in s.cors_allowed_origins.iter().filter(|o| valid_origin(o)) {
        c = if o == "*" { c.allow_any_origin() } else { c.allowed_origin(o) };
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        for ok in ["*", "https://app.example.com", "http://127.0.0.1:5173", "https://[::1]:8443"] {
            assert!(valid_origin(ok), "{ok}");
        }
        for bad in
            ["", "app.example.com", "https://", "https://a.com/", "https://a.com/x", "ftp://a.com", "https://u@a.com"]
        {
            assert!(!valid_origin(bad), "{bad}");
        }
    }

    #[test]
    fn request_ids() {
        let id = new_request_id();
        assert_eq!(id.len(), 32);
        assert_eq!(sane_request_id(&HeaderValue::from_static("abc-123_x.y:z")).as_deref(), Some("abc-123_x.y:z"));
        assert_eq!(sane_request_id(&HeaderValue::from_static("has space")), None);
        assert_eq!(sane_request_id(&HeaderValue::from_static("")), None);
        let long = "a".repeat(MAX_REQUEST_ID + 1);
        assert_eq!(HeaderValue::from_str(&long).ok().and_then(|v| sane_request_id(&v)), None);
    }
}
