//! The embedded web client: content types, cache headers, the Content-Security-Policy, the SPA
//! fallback for the app's routes and the JSON 404s that the server's own paths keep. Static
//! files do not touch the database, so these run on SQLite only.

use actix_web::http::{header, Method, StatusCode};
use serde_json::Value;

use crate::helpers::{TestApp, TestResult};

struct Got {
    status: StatusCode,
    headers: actix_web::http::header::HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    fn json(&self) -> TestResult<Value> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

async fn fetch(app: &TestApp, method: Method, path: &str, etag: Option<&str>) -> TestResult<Got> {
    let client = awc::Client::default();
    let mut req = client.request(method, format!("{}{}", app.base, path));
    if let Some(e) = etag {
        req = req.insert_header((header::IF_NONE_MATCH, e));
    }
    let mut resp = req.send().await?;
    let body = resp.body().limit(4 * 1024 * 1024).await?.to_vec();
    Ok(Got { status: resp.status(), headers: resp.headers().clone(), body })
}

/// The `/assets/...` paths index.html refers to.
fn asset_paths(html: &str) -> Vec<String> {
    html.split('"').filter(|s| s.starts_with("/assets/")).map(str::to_owned).collect()
}

#[actix_rt::test]
async fn index_and_app_routes_get_the_page_uncached() -> TestResult {
    let app = TestApp::spawn("sqlite").await?;
    let root = fetch(&app, Method::GET, "/", None).await?;
    assert_eq!(root.status, StatusCode::OK);
    assert_eq!(root.header(header::CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(root.header(header::CACHE_CONTROL), "no-cache");
    let csp = root.header(header::CONTENT_SECURITY_POLICY);
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(root.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    let html = String::from_utf8(root.body.clone())?;
    assert!(html.contains("<div id=\"app\"></div>"), "{html}");

    // The app's own routes (deep links) get the same page.
    for path in ["/chat/d:1:2", "/join/KBfCGWE-qic8R1gVIZYlAE0i6w-8Rtf0mw4IHardgqI", "/contacts", "/index.html"] {
        let got = fetch(&app, Method::GET, path, None).await?;
        assert_eq!((got.status, got.header(header::CACHE_CONTROL)), (StatusCode::OK, "no-cache"), "{path}");
        assert_eq!(got.body, root.body, "{path}");
    }

    // Revalidation: the same ETag answers 304 without a body.
    let etag = root.header(header::ETAG).to_owned();
    assert!(etag.starts_with('"'), "{etag}");
    let again = fetch(&app, Method::GET, "/", Some(&etag)).await?;
    assert_eq!((again.status, again.body.len()), (StatusCode::NOT_MODIFIED, 0));

    // HEAD: the headers without the body.
    let head = fetch(&app, Method::HEAD, "/", None).await?;
    assert_eq!((head.status, head.body.len()), (StatusCode::OK, 0));
    assert_eq!(head.header(header::CONTENT_TYPE), "text/html; charset=utf-8");
    Ok(())
}

#[actix_rt::test]
async fn the_service_worker_is_served_at_the_root_uncached() -> TestResult {
    let app = TestApp::spawn("sqlite").await?;
    let sw = fetch(&app, Method::GET, "/sw.js", None).await?;
    assert_eq!(sw.status, StatusCode::OK);
    // A worker script must come as JavaScript, and from the root to control every page.
    assert_eq!(sw.header(header::CONTENT_TYPE), "text/javascript; charset=utf-8");
    assert_eq!(sw.header(header::CACHE_CONTROL), "no-cache");
    let src = String::from_utf8(sw.body)?;
    assert!(src.contains("addEventListener('push'") && src.contains("showNotification"), "{src}");
    Ok(())
}

#[actix_rt::test]
async fn hashed_assets_are_immutable_with_their_types() -> TestResult {
    let app = TestApp::spawn("sqlite").await?;
    let html = String::from_utf8(fetch(&app, Method::GET, "/", None).await?.body)?;
    let assets = asset_paths(&html);
    assert!(assets.iter().any(|a| a.ends_with(".js")) && assets.iter().any(|a| a.ends_with(".css")), "{assets:?}");
    for path in &assets {
        let got = fetch(&app, Method::GET, path, None).await?;
        assert_eq!(got.status, StatusCode::OK, "{path}");
        assert_eq!(got.header(header::CACHE_CONTROL), "public, max-age=31536000, immutable", "{path}");
        let want = if path.ends_with(".js") { "text/javascript; charset=utf-8" } else { "text/css; charset=utf-8" };
        assert_eq!(got.header(header::CONTENT_TYPE), want, "{path}");
        assert!(!got.header(header::CONTENT_SECURITY_POLICY).is_empty(), "{path}");
        assert!(!got.body.is_empty(), "{path}");
    }
    let icon = fetch(&app, Method::GET, "/favicon.svg", None).await?;
    assert_eq!((icon.status, icon.header(header::CONTENT_TYPE)), (StatusCode::OK, "image/svg+xml"));
    assert_eq!(icon.header(header::CACHE_CONTROL), "public, max-age=3600");

    // A build file that does not exist is a 404, not the page.
    let missing = fetch(&app, Method::GET, "/assets/index-00000000.js", None).await?;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()?["error"], "not_found");
    Ok(())
}

#[actix_rt::test]
async fn server_paths_keep_their_json_404s() -> TestResult {
    let app = TestApp::spawn("sqlite").await?;
    for path in
        ["/api", "/api/v1/nope", "/api/v2/users", "/admin/v1/nodes", "/ws/x", "/metrics", "/healthz/x", "/readyz/x"]
    {
        let got = fetch(&app, Method::GET, path, None).await?;
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(got.header(header::CONTENT_TYPE), "application/json", "{path}");
        assert_eq!(got.json()?["error"], "not_found", "{path}");
    }
    // Only GET and HEAD reach the app; other methods keep the JSON 404 too.
    let post = fetch(&app, Method::POST, "/chat/d:1:2", None).await?;
    assert_eq!((post.status, post.json()?["error"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    // The limits a client shows (the recall window), without a token.
    let limits = fetch(&app, Method::GET, "/api/v1/limits", None).await?;
    let l = limits.json()?;
    assert_eq!((limits.status, l["recall_window_secs"].as_u64()), (StatusCode::OK, Some(120)), "{l}");
    assert_eq!((l["max_message_chars"].as_u64(), l["max_page"].as_u64()), (Some(4000), Some(200)), "{l}");
    // And the API itself still answers.
    let health = fetch(&app, Method::GET, "/healthz", None).await?;
    assert_eq!((health.status, health.json()?["status"].as_str()), (StatusCode::OK, Some("ok")));
    Ok(())
}
