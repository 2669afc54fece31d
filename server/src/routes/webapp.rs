//! The web client: the single-page app built from `web/` into `web/dist`, embedded in the binary
//! at compile time (so `cargo run` needs nothing but Rust) and served as the fallback service.
//!
//! - Files under `/assets/` carry a content hash in their names: cached for a year, immutable.
//! - `index.html` is answered for `/` and for every other path that is not a file (the app's own
//!   routes, such as `/chat/d:1:2` or `/join/<token>`), with `no-cache` so a new build is seen at
//!   once.
//! - Paths of the server's own (`/api`, `/admin`, `/ws`, `/metrics`, `/healthz`, `/readyz`)
//!   keep their JSON `404 not_found`, and so does any method other than GET and HEAD.
//! - Every answer carries a Content-Security-Policy that allows only this origin.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{get, HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

/// The built client, `web/dist` at compile time.
#[derive(RustEmbed)]
#[folder = "../web/dist"]
struct Assets;

/// Paths that belong to the server, not to the app: unknown ones stay JSON 404s.
const SERVER_PREFIXES: [&str; 6] = ["/api", "/admin", "/ws", "/metrics", "/healthz", "/readyz"];

/// Only this origin: scripts and styles from our files, images also as `data:`/`blob:` URLs and
/// audio as `blob:` URLs (attachments fetched with the token),
/// HTTP and WebSocket connections to this host; never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

/// Hashed build output: never changes under the same name.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Files without a hash in their name (the favicon; not `sw.js`, which is `no-cache`).
const SHORT: &str = "public, max-age=3600";

/// Whether `path` names one of the server's own routes (or something under them).
fn is_server_path(path: &str) -> bool {
    SERVER_PREFIXES.iter().any(|p| path == *p || path.strip_prefix(p).is_some_and(|rest| rest.starts_with('/')))
}

/// The content type of a file of the build, by its extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json" | "webmanifest") => "application/json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `GET /`: the web client's page (every other path that is not the server's is served the same
/// way, by the fallback service [`serve`]).
#[utoipa::path(tag = "web", responses(
    (status = 200, description = "The web client (index.html)", content_type = "text/html", body = String),
    (status = 304, description = "Not modified (If-None-Match)"),
))]
#[get("/")]
pub async fn index(req: HttpRequest) -> HttpResponse {
    serve(req).await
}

/// The default service: a file of the build, `index.html` for the app's routes, or the JSON 404.
pub async fn serve(req: HttpRequest) -> HttpResponse {
    let path = req.path();
    if is_server_path(path) || !(req.method() == Method::GET || req.method() == Method::HEAD) {
        return super::not_found().await;
    }
    let name = path.trim_start_matches('/');
    let (name, file) = match Assets::get(name).filter(|_| !name.is_empty()) {
        Some(f) => (name, f),
        // Missing build files are real 404s: index.html in their place would hide the error.
        None if name.starts_with("assets/") => return super::not_found().await,
        None => match Assets::get("index.html") {
            Some(f) => ("index.html", f),
            None => {
                log::error!("the web client is missing from this build (web/dist/index.html)");
                return super::not_found().await;
            }
        },
    };
    // The service worker too: browsers check it for updates, and a cached one would hide them.
    let cache = if name == "index.html" || name == "sw.js" {
        "no-cache"
    } else if name.starts_with("assets/") {
        IMMUTABLE
    } else {
        SHORT
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if matches { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    res.insert_header((header::CACHE_CONTROL, cache))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        // Invite tokens travel in `/join/<token>`: never hand them on as a referrer.
        .insert_header((header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")));
    if matches {
        return res.finish();
    }
    // (For HEAD, actix sends the headers of this answer without its body.)
    res.content_type(content_type(name)).body(file.data.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_paths_are_recognised_by_segment() {
        for p in ["/api", "/api/v1/x", "/ws", "/admin/v1/nodes", "/metrics", "/healthz", "/readyz"] {
            assert!(is_server_path(p), "{p}");
        }
        for p in ["/", "/apis", "/wsx", "/chat/d:1:2", "/join/abc", "/metricsfoo"] {
            assert!(!is_server_path(p), "{p}");
        }
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("assets/index-abc.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("assets/index-abc.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("favicon.svg"), "image/svg+xml");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }
}
