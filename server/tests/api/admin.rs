//! The admin API (`/admin/v1`) and `/metrics` over HTTP, with real WebSocket clients: auth,
//! nodes and stats, sessions, kick, ban and unban, broadcast notices, drain, metrics.

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};
use server::config::Settings;

use crate::helpers::{assert_error, Http, TestApp, TestResult};
use crate::ws_client::{conv_of, WsClient};

/// The admin token of these tests.
const ADMIN: &str = "admin-test-token-7f3c9a";

fn with_admin(s: &mut Settings) {
    s.admin.token = ADMIN.into();
}

crate::backend_tests!(
    tune = with_admin;
    admin_routes_need_the_admin_token,
    nodes_and_stats_count_live_sessions,
    sessions_of_a_user,
    kick_closes_sessions_with_4004,
    ban_blocks_login_tokens_and_sessions_until_unban,
    broadcast_reaches_online_users_as_notice,
    drain_of_this_node_refuses_and_closes_websockets,
    metrics_count_sessions_frames_and_messages,
);

/// Without `admin.token` the admin API does not exist.
mod off {
    use super::*;
    crate::backend_tests!(admin_api_is_absent_without_a_token);
}

async fn admin_get(app: &TestApp, path: &str) -> TestResult<(StatusCode, Value)> {
    app.get(path, ADMIN).await
}

async fn admin_post(app: &TestApp, path: &str, body: Value) -> TestResult<(StatusCode, Value)> {
    app.post(path, Some(ADMIN), body).await
}

/// A POST without a body.
async fn admin_post_empty(app: &TestApp, path: &str) -> TestResult<(StatusCode, Value)> {
    app.call(Method::POST, path, Some(ADMIN), None).await
}

/// GET returning the status, the content type and the body as text.
async fn get_text(app: &Http, path: &str, token: Option<&str>) -> TestResult<(StatusCode, String, String)> {
    let mut req = awc::Client::new().get(format!("{}{}", app.base, path));
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let mut resp = req.send().await?;
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = resp.body().limit(1024 * 1024).await?;
    Ok((resp.status(), ct, String::from_utf8(body.to_vec())?))
}

/// The value of an unlabelled metric in a Prometheus text body.
fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The status a WebSocket upgrade of `token` is refused with (an error if it succeeds).
async fn ws_refusal(app: &Http, token: &str) -> TestResult<StatusCode> {
    let url = format!("{}/ws", app.base.replace("http://", "ws://"));
    match awc::Client::new().ws(url).bearer_auth(token).connect().await {
        Ok(_) => Err("the WebSocket upgrade was accepted".into()),
        Err(awc::error::WsClientError::InvalidResponseStatus(s)) => Ok(s),
        Err(e) => Err(format!("ws connect failed otherwise: {e}").into()),
    }
}

/// Polls `GET /admin/v1/stats` until `pred` holds (sessions register and unregister
/// asynchronously), returning the last body.
async fn stats_until(app: &TestApp, pred: impl Fn(&Value) -> bool) -> TestResult<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (s, v) = admin_get(app, "/admin/v1/stats").await?;
        assert_eq!(s, StatusCode::OK, "{v}");
        if pred(&v) || std::time::Instant::now() > deadline {
            return Ok(v);
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends an application ping and waits for its pong: the session is alive and served.
async fn ping(w: &mut WsClient, nonce: &str) -> TestResult {
    w.send(json!({"type": "ping", "nonce": nonce})).await?;
    let p = w.expect("pong").await?;
    assert_eq!(p["nonce"], nonce, "{p}");
    Ok(())
}

async fn admin_api_is_absent_without_a_token(app: TestApp) -> TestResult {
    assert!(app.settings.admin.token.is_empty());
    let u = app.user("alice").await?;
    for token in [None, Some(""), Some("anything"), Some(u.token.as_str())] {
        for (method, path) in [
            (Method::GET, "/admin/v1/nodes"),
            (Method::GET, "/admin/v1/stats"),
            (Method::GET, "/admin/v1/users/1/sessions"),
            (Method::POST, "/admin/v1/users/1/ban"),
            (Method::POST, "/admin/v1/nodes/node-1/drain"),
            (Method::GET, "/metrics"),
        ] {
            let got = app.call(method.clone(), path, token, None).await?;
            assert_error(&got, StatusCode::NOT_FOUND, "not_found");
        }
        let got = app.call(Method::POST, "/admin/v1/broadcast", token, Some(json!({"text": "hi"}))).await?;
        assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    }
    // Nothing happened: the user was not banned.
    app.login("alice").await?;
    Ok(())
}

async fn admin_routes_need_the_admin_token(app: TestApp) -> TestResult {
    let u = app.user("alice").await?;
    let routes = [
        (Method::GET, "/admin/v1/nodes", None),
        (Method::GET, "/admin/v1/stats", None),
        (Method::GET, "/admin/v1/users/1/sessions", None),
        (Method::POST, "/admin/v1/users/1/kick", None),
        (Method::POST, "/admin/v1/users/1/ban", Some(json!({"reason": "x"}))),
        (Method::POST, "/admin/v1/users/1/unban", None),
        (Method::POST, "/admin/v1/broadcast", Some(json!({"text": "hi"}))),
        // Even a body that would not parse is refused for the token first.
        (Method::POST, "/admin/v1/broadcast", Some(json!({"nope": 1}))),
        (Method::POST, "/admin/v1/nodes/node-1/drain", None),
        (Method::GET, "/admin/v1/no-such-route", None),
        (Method::GET, "/metrics", None),
    ];
    let wrong_prefix = format!("{ADMIN}x");
    let wrong_case = ADMIN.to_uppercase();
    // Missing, wrong, a prefix of the right one, a user's token: all 401 `unauthorized`.
    for token in [None, Some("wrong"), Some(&ADMIN[..ADMIN.len() - 1]), Some(&*wrong_prefix), Some(&*wrong_case)]
        .into_iter()
        .chain([Some(u.token.as_str())])
    {
        for (method, path, body) in &routes {
            let got = app.call(method.clone(), path, token, body.clone()).await?;
            assert_error(&got, StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }
    // Another scheme is no token.
    let mut resp = awc::Client::new()
        .get(format!("{}/admin/v1/nodes", app.base))
        .insert_header(("Authorization", format!("Basic {ADMIN}")))
        .send()
        .await?;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    let body: Value = serde_json::from_slice(&resp.body().await?)?;
    assert_eq!(body["error"], "unauthorized");

    // Nothing above had an effect: the user is not banned.
    app.login("alice").await?;

    // The right token opens every route; an unknown one under /admin/v1 is then 404 as usual.
    let (s, v) = admin_get(&app, "/admin/v1/nodes").await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got = admin_get(&app, "/admin/v1/no-such-route").await?;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    let got = app.call(Method::DELETE, "/admin/v1/nodes", Some(ADMIN), None).await?;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    let (s, _, body) = get_text(&app, "/metrics", Some(ADMIN)).await?;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("# TYPE im_sessions gauge"), "{body}");
    // The admin token is not a user token.
    let got = app.get("/api/v1/users/me", ADMIN).await?;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    Ok(())
}

async fn nodes_and_stats_count_live_sessions(app: TestApp) -> TestResult {
    let a = app.user("alice").await?;
    let a2 = app.login("alice").await?;
    let b = app.user("bob").await?;

    let v = stats_until(&app, |v| v["sessions"] == 0).await?;
    assert_eq!((v["nodes"].as_u64(), v["sessions"].as_u64(), v["users"].as_u64()), (Some(1), Some(0), Some(0)), "{v}");

    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wa2 = WsClient::connect(&app, &a2).await?;
    let wb = WsClient::connect(&app, &b).await?;
    let v = stats_until(&app, |v| v["sessions"] == 3).await?;
    assert_eq!(v["nodes"], 1, "{v}");
    assert_eq!(v["draining"], 0, "{v}");
    assert_eq!(v["sessions"], 3, "{v}");
    assert_eq!(v["users"], 2, "{v}");
    assert_eq!(v["redis"], "off", "{v}");
    assert_eq!(v["node"], "node-1", "{v}");
    assert!(v["messages_per_sec"].as_f64().is_some_and(|r| r >= 0.0), "{v}");

    let (s, v) = admin_get(&app, "/admin/v1/nodes").await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let nodes = v["nodes"].as_array().ok_or("no nodes")?;
    assert_eq!(nodes.len(), 1, "{v}");
    let n = &nodes[0];
    assert_eq!(n["id"], "node-1", "{n}");
    assert_eq!(n["address"], app.base.trim_start_matches("http://"), "{n}");
    assert_eq!(n["version"], env!("CARGO_PKG_VERSION"), "{n}");
    assert_eq!((n["sessions"].as_u64(), n["users"].as_u64()), (Some(3), Some(2)), "{n}");
    assert_eq!((n["alive"].as_bool(), n["draining"].as_bool()), (Some(true), Some(false)), "{n}");
    let started = n["started_at"].as_i64().ok_or("started_at")?;
    assert!(started > 0 && started <= app.clock.now_ms(), "{n}");

    // A closed connection stops counting.
    ping(&mut wa, "x").await?;
    drop(wb);
    let v = stats_until(&app, |v| v["sessions"] == 2).await?;
    assert_eq!((v["sessions"].as_u64(), v["users"].as_u64()), (Some(2), Some(1)), "{v}");
    ping(&mut wa2, "y").await?;
    Ok(())
}

async fn sessions_of_a_user(app: TestApp) -> TestResult {
    let a = app.user("alice").await?;
    let a2 = app.login("alice").await?;
    let _a3 = app.login("alice").await?; // logged in, never connected
    let b = app.user("bob").await?;

    let (s, v) = admin_get(&app, &format!("/admin/v1/users/{}/sessions", a.id)).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user_id"], a.id);
    assert_eq!(v["sessions"], json!([]), "{v}");
    assert_eq!(v["banned_at"], Value::Null, "{v}");

    let before = app.clock.now_ms();
    let _wa = WsClient::connect(&app, &a).await?;
    let _wa2 = WsClient::connect(&app, &a2).await?;
    let _wb = WsClient::connect(&app, &b).await?;
    let (s, v) = admin_get(&app, &format!("/admin/v1/users/{}/sessions", a.id)).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut sessions = v["sessions"].as_array().ok_or("no sessions")?.clone();
    sessions.sort_by_key(|s| s["device_id"].as_i64());
    let devices: Vec<_> = sessions.iter().map(|s| s["device_id"].as_i64()).collect();
    assert_eq!(devices, vec![Some(a.device_id), Some(a2.device_id)], "{v}");
    for s in &sessions {
        assert_eq!(s["node"], "node-1", "{s}");
        let since = s["since"].as_i64().ok_or("since")?;
        assert!(since >= before - 1000 && since <= app.clock.now_ms(), "{s}");
    }

    let (s, v) = admin_get(&app, &format!("/admin/v1/users/{}/sessions", b.id)).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["sessions"].as_array().map(Vec::len), Some(1), "{v}");

    let got = admin_get(&app, "/admin/v1/users/999999/sessions").await?;
    assert_error(&got, StatusCode::NOT_FOUND, "user_not_found");
    let got = admin_get(&app, "/admin/v1/users/abc/sessions").await?;
    assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    Ok(())
}

async fn kick_closes_sessions_with_4004(app: TestApp) -> TestResult {
    let a = app.user("alice").await?;
    let a2 = app.login("alice").await?;
    let b = app.user("bob").await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wa2 = WsClient::connect(&app, &a2).await?;
    let mut wb = WsClient::connect(&app, &b).await?;

    // One device.
    let (s, v) =
        admin_post(&app, &format!("/admin/v1/users/{}/kick", a.id), json!({"device_id": a2.device_id})).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["kicked_here"], 1, "{v}");
    assert_eq!(wa2.expect_close().await?, 4004);
    ping(&mut wa, "still-here").await?;

    // Every device (no body at all).
    let (s, v) = admin_post_empty(&app, &format!("/admin/v1/users/{}/kick", a.id)).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["kicked_here"], 1, "{v}");
    assert_eq!(wa.expect_close().await?, 4004);
    ping(&mut wb, "bob-untouched").await?;

    // A kick is not a ban: the same token connects again.
    let mut again = WsClient::connect(&app, &a).await?;
    ping(&mut again, "back").await?;
    // Nobody online: nothing kicked.
    let (s, v) = admin_post(&app, &format!("/admin/v1/users/{}/kick", a.id), json!({"device_id": 999999})).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["kicked_here"], 0, "{v}");
    ping(&mut again, "not-that-device").await?;

    let got = admin_post(&app, "/admin/v1/users/999999/kick", json!({})).await?;
    assert_error(&got, StatusCode::NOT_FOUND, "user_not_found");
    let got = admin_post(&app, &format!("/admin/v1/users/{}/kick", a.id), json!({"device": 1})).await?;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_json");
    let got = app
        .raw(Method::POST, &format!("/admin/v1/users/{}/kick", a.id), Some(ADMIN), "text/plain", b"{}".to_vec())
        .await?;
    assert_error(&got, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    // A body over server.max_body_bytes: 413 in the JSON shape (it was text/plain once).
    let big = format!("{{\"device_id\": 1, \"pad\": \"{}\"}}", "x".repeat(app.settings.server.max_body_bytes));
    for route in ["kick", "ban"] {
        let path = format!("/admin/v1/users/{}/{route}", a.id);
        let got = app.raw(Method::POST, &path, Some(ADMIN), "application/json", big.clone().into_bytes()).await?;
        assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    }
    ping(&mut again, "after-errors").await?;
    Ok(())
}

async fn ban_blocks_login_tokens_and_sessions_until_unban(app: TestApp) -> TestResult {
    let a = app.user("alice").await?;
    let a2 = app.login("alice").await?;
    let b = app.user("bob").await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wa2 = WsClient::connect(&app, &a2).await?;
    let mut wb = WsClient::connect(&app, &b).await?;

    let (s, v) =
        admin_post(&app, &format!("/admin/v1/users/{}/ban", a.id), json!({"reason": "  spam links  "})).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["user_id"], a.id);
    assert_eq!(v["banned"], true);
    assert_eq!(v["reason"], "spam links");
    assert_eq!(v["kicked_here"], 2, "{v}");
    let banned_at = v["banned_at"].as_i64().ok_or("banned_at")?;
    assert!(banned_at <= app.clock.now_ms());

    // Every open session is closed as revoked.
    assert_eq!(wa.expect_close().await?, 4003);
    assert_eq!(wa2.expect_close().await?, 4003);
    // Login: 403 with the right password, the usual 401 with a wrong one.
    let got = app.post("/api/v1/auth/login", None, json!({"username": "alice", "password": "password123"})).await?;
    assert_error(&got, StatusCode::FORBIDDEN, "user_banned");
    let got = app.post("/api/v1/auth/login", None, json!({"username": "alice", "password": "wrong-pass"})).await?;
    assert_error(&got, StatusCode::UNAUTHORIZED, "invalid_credentials");
    // Existing tokens: refused over HTTP and at the WebSocket upgrade.
    for t in [&a.token, &a2.token] {
        let got = app.get("/api/v1/users/me", t).await?;
        assert_error(&got, StatusCode::FORBIDDEN, "user_banned");
        assert_eq!(ws_refusal(&app, t).await?, StatusCode::FORBIDDEN);
    }
    // The admin sees the ban; others are untouched.
    let (_, v) = admin_get(&app, &format!("/admin/v1/users/{}/sessions", a.id)).await?;
    assert_eq!((v["banned_at"].as_i64(), v["sessions"].clone()), (Some(banned_at), json!([])), "{v}");
    ping(&mut wb, "bob-fine").await?;
    let (s, _) = app.get("/api/v1/users/me", &b.token).await?;
    assert_eq!(s, StatusCode::OK);

    // Banning again keeps the time and takes the new reason; no body is fine.
    let (s, v) = admin_post_empty(&app, &format!("/admin/v1/users/{}/ban", a.id)).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((v["banned_at"].as_i64(), v["reason"].clone()), (Some(banned_at), Value::Null), "{v}");
    assert_eq!(v["kicked_here"], 0, "{v}");

    let got = admin_post(&app, &format!("/admin/v1/users/{}/ban", a.id), json!({"reason": "r".repeat(501)})).await?;
    assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_reason");
    let got = admin_post(&app, "/admin/v1/users/999999/ban", json!({})).await?;
    assert_error(&got, StatusCode::NOT_FOUND, "user_not_found");
    let got = admin_post_empty(&app, "/admin/v1/users/999999/unban").await?;
    assert_error(&got, StatusCode::NOT_FOUND, "user_not_found");

    // Unban: login works again, and so do the tokens the ban blocked (it did not revoke them).
    let (s, v) = admin_post_empty(&app, &format!("/admin/v1/users/{}/unban", a.id)).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!((v["banned"].as_bool(), v["banned_at"].clone()), (Some(false), Value::Null), "{v}");
    let fresh = app.login("alice").await?;
    for t in [&a.token, &fresh.token] {
        let (s, me) = app.get("/api/v1/users/me", t).await?;
        assert_eq!((s, me["id"].as_i64()), (StatusCode::OK, Some(a.id)), "{me}");
    }
    let mut back = WsClient::connect(&app, &fresh).await?;
    ping(&mut back, "welcome-back").await?;
    // Unban is idempotent.
    let (s, _) = admin_post_empty(&app, &format!("/admin/v1/users/{}/unban", a.id)).await?;
    assert_eq!(s, StatusCode::OK);
    Ok(())
}

async fn broadcast_reaches_online_users_as_notice(app: TestApp) -> TestResult {
    let a = app.user("alice").await?;
    let a2 = app.login("alice").await?;
    let b = app.user("bob").await?;
    let c = app.user("carol").await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wa2 = WsClient::connect(&app, &a2).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    let mut wc = WsClient::connect(&app, &c).await?;

    let before = app.clock.now_ms();
    let (s, v) = admin_post(&app, "/admin/v1/broadcast", json!({"text": "maintenance at 22:00 UTC"})).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["delivered_here"], 4, "{v}");
    for w in [&mut wa, &mut wa2, &mut wb, &mut wc] {
        let n = w.expect("notice").await?;
        assert_eq!(n["text"], "maintenance at 22:00 UTC", "{n}");
        let ts = n["ts"].as_i64().ok_or("ts")?;
        assert!(ts >= before && ts <= app.clock.now_ms(), "{n}");
    }

    // Only the listed users (every device of each; unknown and offline ids are skipped).
    let (s, v) = admin_post(
        &app,
        "/admin/v1/broadcast",
        json!({"text": "just you two", "user_ids": [a.id, c.id, c.id, 999999]}),
    )
    .await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["delivered_here"], 3, "{v}");
    for w in [&mut wa, &mut wa2, &mut wc] {
        let n = w.expect("notice").await?;
        assert_eq!(n["text"], "just you two", "{n}");
    }
    wb.expect_no("notice", Duration::from_millis(300)).await?;

    // Validation.
    let max = app.settings.chat.max_message_chars;
    for text in [String::new(), "   ".into(), "x".repeat(max + 1)] {
        let got = admin_post(&app, "/admin/v1/broadcast", json!({"text": text})).await?;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_text");
    }
    let got = admin_post(&app, "/admin/v1/broadcast", json!({"text": "hi", "user_ids": []})).await?;
    assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "invalid_user_ids");
    let got = admin_post(&app, "/admin/v1/broadcast", json!({"user_ids": [a.id]})).await?;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_json");
    // The longest allowed text goes through.
    let (s, v) = admin_post(&app, "/admin/v1/broadcast", json!({"text": "y".repeat(max), "user_ids": [b.id]})).await?;
    assert_eq!((s, v["delivered_here"].as_u64()), (StatusCode::OK, Some(1)), "{v}");
    let n = wb.expect("notice").await?;
    assert_eq!(n["text"].as_str().map(|t| t.chars().count()), Some(max));
    // Nobody got the refused ones.
    for w in [&mut wa, &mut wa2, &mut wc] {
        w.expect_no("notice", Duration::from_millis(200)).await?;
    }
    Ok(())
}

async fn drain_of_this_node_refuses_and_closes_websockets(app: TestApp) -> TestResult {
    let a = app.user("alice").await?;
    let mut wa = WsClient::connect(&app, &a).await?;

    let got = admin_post_empty(&app, "/admin/v1/nodes/node-9/drain").await?;
    assert_error(&got, StatusCode::NOT_FOUND, "node_not_found");
    ping(&mut wa, "not-drained").await?;
    let (s, r) = app.call(Method::GET, "/readyz", None, None).await?;
    assert_eq!((s, r["status"].as_str()), (StatusCode::OK, Some("ready")), "{r}");

    let (s, v) = admin_post_empty(&app, "/admin/v1/nodes/node-1/drain").await?;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v, json!({"node": "node-1", "draining": true}));

    // Open connections are told to reconnect elsewhere.
    assert_eq!(wa.expect_close().await?, 1012);
    // Not ready any more.
    let (s, r) = app.call(Method::GET, "/readyz", None, None).await?;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{r}");
    assert_eq!((r["status"].as_str(), r["node"].as_str()), (Some("draining"), Some("node-1")), "{r}");
    // New WebSockets are refused with 503 `draining`, before the token is even looked at.
    assert_eq!(ws_refusal(&app, &a.token).await?, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ws_refusal(&app, "not-a-token").await?, StatusCode::SERVICE_UNAVAILABLE);
    let got = app.call(Method::GET, "/ws", Some(&a.token), None).await?;
    assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "draining");

    // The admin API shows it; HTTP keeps working on the node.
    let (_, v) = admin_get(&app, "/admin/v1/nodes").await?;
    assert_eq!(v["nodes"][0]["draining"], true, "{v}");
    let v = stats_until(&app, |v| v["sessions"] == 0).await?;
    assert_eq!((v["draining"].as_u64(), v["sessions"].as_u64()), (Some(1), Some(0)), "{v}");
    let (s, _) = app.get("/api/v1/users/me", &a.token).await?;
    assert_eq!(s, StatusCode::OK);
    let (_, _, m) = get_text(&app, "/metrics", Some(ADMIN)).await?;
    assert_eq!(metric(&m, "im_draining"), Some(1.0), "{m}");
    // Draining again is accepted (it already is).
    let (s, _) = admin_post_empty(&app, "/admin/v1/nodes/node-1/drain").await?;
    assert_eq!(s, StatusCode::ACCEPTED);
    Ok(())
}

async fn metrics_count_sessions_frames_and_messages(app: TestApp) -> TestResult {
    let read = |app: &TestApp| {
        let http: Http = (**app).clone();
        async move {
            let (s, ct, body) = get_text(&http, "/metrics", Some(ADMIN)).await?;
            assert_eq!(s, StatusCode::OK, "{body}");
            assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
            TestResult::Ok(body)
        }
    };
    let m = read(&app).await?;
    for family in [
        "im_sessions",
        "im_users_online",
        "im_conversation_actors",
        "im_draining",
        "im_frames_in_total",
        "im_frames_out_total",
        "im_messages_persisted_total",
        "im_redis_state",
    ] {
        assert!(metric(&m, family).is_some(), "{family} missing in\n{m}");
    }
    assert!(m.contains("# TYPE im_sessions gauge"), "{m}");
    assert!(m.contains("# TYPE im_frames_in_total counter"), "{m}");
    assert!(m.contains("# TYPE im_delivery_latency_seconds histogram"), "{m}");
    assert!(m.contains("im_store_batch_seconds_bucket{le=\"+Inf\"}"), "{m}");
    assert_eq!(metric(&m, "im_sessions"), Some(0.0), "{m}");
    assert_eq!(metric(&m, "im_redis_state"), Some(0.0), "{m}");
    assert_eq!(metric(&m, "im_draining"), Some(0.0), "{m}");

    let (a, b) = (app.user("alice").await?, app.user("bob").await?);
    app.befriend(&a, &b).await?;
    let conv = conv_of(&a, &b);
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    stats_until(&app, |v| v["sessions"] == 2).await?;
    let m = read(&app).await?;
    assert_eq!(metric(&m, "im_sessions"), Some(2.0), "{m}");
    assert_eq!(metric(&m, "im_users_online"), Some(2.0), "{m}");
    let frames_in = metric(&m, "im_frames_in_total").ok_or("frames_in")?;
    let frames_out = metric(&m, "im_frames_out_total").ok_or("frames_out")?;
    let persisted = metric(&m, "im_messages_persisted_total").ok_or("persisted")?;
    assert!(frames_out >= 2.0, "two hellos at least: {m}");

    // A frame in (and its answer out).
    ping(&mut wa, "count-me").await?;
    let m = read(&app).await?;
    assert!(metric(&m, "im_frames_in_total").ok_or("frames_in")? >= frames_in + 1.0, "{m}");
    assert!(metric(&m, "im_frames_out_total").ok_or("frames_out")? >= frames_out + 1.0, "{m}");
    assert_eq!(metric(&m, "im_messages_persisted_total"), Some(persisted), "{m}");

    // A chat message acked: persisted, with a store batch observed.
    let batches = metric(&m, "im_store_batch_seconds_count").ok_or("batches")?;
    wa.say(&conv, "m-1", "hello bob").await?;
    let m = read(&app).await?;
    assert!(metric(&m, "im_messages_persisted_total").ok_or("persisted")? >= persisted + 1.0, "{m}");
    assert!(metric(&m, "im_store_batch_seconds_count").ok_or("batches")? >= batches + 1.0, "{m}");
    let msg = wb.expect("msg").await?;
    assert_eq!(msg["body"], "hello bob");
    assert!(metric(&m, "im_conversation_actors").ok_or("actors")? >= 1.0, "{m}");
    Ok(())
}
