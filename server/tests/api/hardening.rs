//! What the server does against abuse and for browsers, over real sockets: login and
//! registration throttled per client address and per account (429 `rate_limited` with
//! `Retry-After`), the client's address taken from a trusted proxy's header only, unknown
//! accounts throttled exactly like known ones, the security headers on API answers, request ids,
//! and CORS (off by default). Rate limits are in memory, so these run on SQLite only.

use actix_web::http::{header, Method, StatusCode};
use serde_json::{json, Value};
use server::config::Settings;

use crate::helpers::{TestApp, TestResult};

/// One answer with its headers.
struct Got {
    status: StatusCode,
    headers: header::HeaderMap,
    body: Value,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

/// Sends `method path` with `headers` and a JSON body (when given).
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> TestResult<Got> {
    let mut req = awc::Client::default().request(method, format!("{}{}", app.base, path));
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut resp = match body {
        Some(b) => req.send_json(&b).await?,
        None => req.send().await?,
    };
    let bytes = resp.body().limit(4 * 1024 * 1024).await?;
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok(Got { status: resp.status(), headers: resp.headers().clone(), body })
}

/// A login attempt for `username` (password `password123`), as if from `from` when given.
async fn login(app: &TestApp, username: &str, password: &str, from: Option<&str>) -> TestResult<Got> {
    let xff: Vec<(&str, &str)> = from.map(|a| ("X-Forwarded-For", a)).into_iter().collect();
    let body = json!({"username": username, "password": password});
    send(app, Method::POST, "/api/v1/auth/login", &xff, Some(body)).await
}

/// Asserts a 429 `rate_limited` whose `Retry-After` header and `retry_after` field agree and lie
/// within `1..=max` seconds.
fn assert_limited(got: &Got, max: i64) {
    assert_eq!(got.status, StatusCode::TOO_MANY_REQUESTS, "{}", got.body);
    assert_eq!(got.body["error"], "rate_limited", "{}", got.body);
    let header: i64 = got.header("retry-after").parse().unwrap_or(-1);
    assert!((1..=max).contains(&header), "Retry-After {header}");
    assert_eq!(got.body["retry_after"], header, "{}", got.body);
}

fn throttled(s: &mut Settings) {
    s.throttle.enabled = true;
    s.throttle.login_address_per_min = 1;
    s.throttle.login_address_burst = 3;
    // The account limit out of the way: every attempt below names another account.
    s.throttle.login_account_per_min = 0;
    s.throttle.register_address_per_hour = 1;
    s.throttle.register_address_burst = 2;
}

#[actix_rt::test]
async fn the_login_after_the_burst_from_one_address_gets_429_with_retry_after() -> TestResult {
    let app = TestApp::spawn_tuned("sqlite", throttled).await?;
    for i in 0..3 {
        let got = login(&app, &format!("nobody{i}"), "password123", None).await?;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "attempt {i}: {}", got.body);
    }
    let got = login(&app, "nobody3", "password123", None).await?;
    // One attempt a minute sustained: the next one passes within 60 s.
    assert_limited(&got, 60);
    // No proxy is trusted: a forwarding header is the client's own claim and changes nothing.
    assert_limited(&login(&app, "nobody4", "password123", Some("203.0.113.9")).await?, 60);
    let real_ip = [("X-Real-IP", "203.0.113.10")];
    let body = json!({"username": "nobody5", "password": "password123"});
    assert_limited(&send(&app, Method::POST, "/api/v1/auth/login", &real_ip, Some(body.clone())).await?, 60);
    // The path as routed counts, however it is spelled.
    let got = send(&app, Method::POST, "/api/v1/auth/%6Cogin", &[], Some(body)).await?;
    assert_limited(&got, 60);
    // Registration has a limit of its own: two pass, the third waits (one an hour sustained).
    for name in ["reg_one", "reg_two"] {
        let got = send(
            &app,
            Method::POST,
            "/api/v1/auth/register",
            &[],
            Some(json!({"username": name, "password": "password123"})),
        )
        .await?;
        assert_eq!(got.status, StatusCode::CREATED, "{}", got.body);
    }
    let got = send(
        &app,
        Method::POST,
        "/api/v1/auth/register",
        &[],
        Some(json!({"username": "reg_three", "password": "password123"})),
    )
    .await?;
    assert_limited(&got, 3600);
    // Everything else is not limited.
    let got = send(&app, Method::GET, "/api/v1/limits", &[], None).await?;
    assert_eq!(got.status, StatusCode::OK);
    Ok(())
}

fn behind_proxy(s: &mut Settings) {
    throttled(s);
    s.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    s.server.client_ip_header = "X-Forwarded-For".into();
    s.throttle.login_address_burst = 2;
}

#[actix_rt::test]
async fn behind_a_trusted_proxy_each_client_address_has_its_own_limit() -> TestResult {
    let app = TestApp::spawn_tuned("sqlite", behind_proxy).await?;
    for i in 0..2 {
        let got = login(&app, &format!("a{i}"), "password123", Some("198.51.100.1")).await?;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{}", got.body);
    }
    assert_limited(&login(&app, "a2", "password123", Some("198.51.100.1")).await?, 60);
    // Another client behind the same proxy is not throttled.
    let got = login(&app, "b0", "password123", Some("198.51.100.2")).await?;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{}", got.body);
    // What the client wrote left of what the proxy appended is ignored: this is 198.51.100.1.
    assert_limited(&login(&app, "a3", "password123", Some("192.0.2.50, 198.51.100.1")).await?, 60);
    // A header the configuration does not name is ignored: the proxy's own address, a fresh bucket.
    let body = json!({"username": "c0", "password": "password123"});
    let got = send(&app, Method::POST, "/api/v1/auth/login", &[("X-Real-IP", "198.51.100.1")], Some(body)).await?;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{}", got.body);
    Ok(())
}

fn per_account(s: &mut Settings) {
    s.throttle.enabled = true;
    s.server.trusted_proxies = vec!["127.0.0.1".into()];
    s.throttle.login_address_per_min = 0;
    s.throttle.login_account_per_min = 1;
    s.throttle.login_account_burst = 2;
}

#[actix_rt::test]
async fn an_account_is_limited_across_addresses_and_an_unknown_one_alike() -> TestResult {
    let app = TestApp::spawn_tuned("sqlite", per_account).await?;
    app.user("alice").await?; // one login of alice's burst of 2
    let mut answers = Vec::new();
    for name in ["alice", "ghost_who_never_registered"] {
        let first = if name == "alice" { 1 } else { 0 };
        let mut seen = Vec::new();
        for i in first..2 {
            let got = login(&app, name, "wrong password", Some(&format!("198.51.100.{}", 10 + i))).await?;
            assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{name}: {}", got.body);
            seen.push(got.body);
        }
        // From yet another address, with the right password: the account waits all the same.
        let got = login(&app, name, "password123", Some("198.51.100.99")).await?;
        assert_limited(&got, 60);
        // The name is case-insensitive, like the login itself.
        assert_limited(&login(&app, &name.to_uppercase(), "password123", Some("198.51.100.98")).await?, 60);
        answers.push((seen.pop(), got.body["error"].clone(), got.body["message"].clone()));
    }
    // A known and an unknown name get the same answers: nothing tells them apart.
    assert_eq!(answers[0], answers[1]);
    // Other accounts are not affected.
    let bob = app.user("bob").await?;
    assert!(!bob.token.is_empty());
    Ok(())
}

#[actix_rt::test]
async fn api_answers_carry_the_security_headers_and_a_request_id() -> TestResult {
    let app = TestApp::spawn("sqlite").await?;
    let user = app.user("carol").await?;
    let auth = format!("Bearer {}", user.token);
    let got = send(&app, Method::GET, "/api/v1/users/me", &[("Authorization", &auth)], None).await?;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("x-content-type-options"), "nosniff");
    assert_eq!(got.header("referrer-policy"), "no-referrer");
    assert_eq!(got.header("x-frame-options"), "DENY");
    assert_eq!(got.header("cache-control"), "no-store");
    assert_eq!(got.header("content-security-policy"), "default-src 'none'; frame-ancestors 'none'");
    assert_eq!(got.header("strict-transport-security"), "", "HSTS only when configured");
    // A generated request id: 32 hex digits.
    let id = got.header("x-request-id");
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    // One that came with the request (from nginx) is kept; an unsafe one is replaced.
    let got = send(&app, Method::GET, "/healthz", &[("X-Request-Id", "nginx-abc123")], None).await?;
    assert_eq!(got.header("x-request-id"), "nginx-abc123");
    let got = send(&app, Method::GET, "/healthz", &[("X-Request-Id", "a b\"c")], None).await?;
    assert_eq!(got.header("x-request-id").len(), 32);
    // Errors too.
    let got = send(&app, Method::GET, "/api/v1/users/me", &[], None).await?;
    assert_eq!((got.status, got.header("cache-control")), (StatusCode::UNAUTHORIZED, "no-store"));
    assert_eq!(got.header("x-content-type-options"), "nosniff");
    // The web client keeps its own policy and cache headers.
    let got = send(&app, Method::GET, "/", &[], None).await?;
    assert_eq!(got.header("cache-control"), "no-cache");
    assert!(
        got.header("content-security-policy").contains("default-src 'self'"),
        "{}",
        got.header("content-security-policy")
    );
    assert_eq!(got.header("x-frame-options"), "DENY");
    Ok(())
}

#[actix_rt::test]
async fn hsts_is_sent_when_configured() -> TestResult {
    let app = TestApp::spawn_tuned("sqlite", |s| s.server.hsts_max_age_secs = 31_536_000).await?;
    for path in ["/healthz", "/"] {
        let got = send(&app, Method::GET, path, &[], None).await?;
        assert_eq!(got.header("strict-transport-security"), "max-age=31536000", "{path}");
    }
    Ok(())
}

#[actix_rt::test]
async fn cors_is_off_by_default() -> TestResult {
    let app = TestApp::spawn("sqlite").await?;
    let preflight = [("Origin", "https://evil.example"), ("Access-Control-Request-Method", "POST")];
    let got = send(&app, Method::OPTIONS, "/api/v1/auth/login", &preflight, None).await?;
    assert_eq!(got.header("access-control-allow-origin"), "");
    let got = send(&app, Method::GET, "/api/v1/limits", &[("Origin", "https://evil.example")], None).await?;
    assert_eq!((got.status, got.header("access-control-allow-origin")), (StatusCode::OK, ""));
    Ok(())
}

#[actix_rt::test]
async fn cors_allows_the_configured_origins_only() -> TestResult {
    let app =
        TestApp::spawn_tuned("sqlite", |s| s.server.cors_allowed_origins = vec!["https://app.example.com".into()])
            .await?;
    let preflight = [
        ("Origin", "https://app.example.com"),
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "authorization, content-type"),
    ];
    let got = send(&app, Method::OPTIONS, "/api/v1/auth/login", &preflight, None).await?;
    assert!(got.status.is_success(), "{}", got.status);
    assert_eq!(got.header("access-control-allow-origin"), "https://app.example.com");
    assert!(got.header("access-control-allow-methods").contains("POST"), "{:?}", got.headers);
    assert!(got.header("access-control-allow-headers").to_lowercase().contains("authorization"));
    let got = send(&app, Method::GET, "/api/v1/limits", &[("Origin", "https://app.example.com")], None).await?;
    assert_eq!(got.header("access-control-allow-origin"), "https://app.example.com");
    assert!(got.header("access-control-expose-headers").to_lowercase().contains("retry-after"));
    // Another origin gets no CORS headers (its browser refuses the answer to the page), and a
    // same-origin page or a non-browser client is served as before.
    let got = send(&app, Method::GET, "/api/v1/limits", &[("Origin", "https://evil.example")], None).await?;
    assert_eq!((got.status, got.header("access-control-allow-origin")), (StatusCode::OK, ""));
    let own = app.base.clone();
    let body = json!({"username": "dave", "password": "password123"});
    let got = send(&app, Method::POST, "/api/v1/auth/register", &[("Origin", &own)], Some(body)).await?;
    assert_eq!(got.status, StatusCode::CREATED, "{}", got.body);
    Ok(())
}
