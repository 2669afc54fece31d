//! Accounts and devices over HTTP.

use actix_web::http::{Method, StatusCode};
use serde_json::json;

use crate::backend_tests;
use crate::helpers::{assert_error, items, TestApp, TestResult};

backend_tests!(
    register_and_login,
    registration_is_validated,
    username_and_phone_conflicts,
    wrong_credentials_look_the_same,
    devices_and_logout,
    tokens_expire,
    profile_read_and_update,
    search_by_username_phone_and_nickname,
    malformed_requests_are_4xx,
    health_and_readiness,
);

async fn register_and_login(app: TestApp) -> TestResult {
    let (s, u) = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "Alice_1", "password": "correct horse", "phone": "+4915112345678", "nickname": "Alice"}),
        )
        .await?;
    assert_eq!(s, StatusCode::CREATED, "{u}");
    assert_eq!(u["username"], "Alice_1");
    assert_eq!(u["nickname"], "Alice");
    assert_eq!(u["phone"], "+4915112345678");
    assert!(u.get("password_hash").is_none() && u.get("password").is_none(), "{u}");

    // Login by username (any case) and by phone; each login is a new device with its own token.
    let (s, a) = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "alice_1", "password": "correct horse", "device_name": "laptop"}),
        )
        .await?;
    assert_eq!(s, StatusCode::OK, "{a}");
    let (s, b) =
        app.post("/api/v1/auth/login", None, json!({"phone": "+4915112345678", "password": "correct horse"})).await?;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_ne!(a["token"], b["token"]);
    assert_ne!(a["device_id"], b["device_id"]);
    assert_eq!(a["token"].as_str().map(str::len), Some(43));
    assert!(a["expires_at"].as_i64() > Some(app.clock.now_ms() + 29 * 86_400_000));
    assert_eq!(a["user"]["id"], u["id"]);

    let (s, me) = app.get("/api/v1/users/me", a["token"].as_str().ok_or("token")?).await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["id"], u["id"]);
    Ok(())
}

async fn registration_is_validated(app: TestApp) -> TestResult {
    let cases = [
        (json!({"username": "ab", "password": "password123"}), "invalid_username"),
        (json!({"username": "x".repeat(33), "password": "password123"}), "invalid_username"),
        (json!({"username": "bad-name", "password": "password123"}), "invalid_username"),
        (json!({"username": "goodname", "password": "short"}), "invalid_password"),
        (json!({"username": "goodname", "password": "p".repeat(129)}), "invalid_password"),
        (json!({"username": "goodname", "password": "password123", "phone": "0151234"}), "invalid_phone"),
        (json!({"username": "goodname", "password": "password123", "phone": "+0151234"}), "invalid_phone"),
        (json!({"username": "goodname", "password": "password123", "nickname": "   "}), "invalid_nickname"),
    ];
    for (body, code) in cases {
        let got = app.post("/api/v1/auth/register", None, body.clone()).await?;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, code);
    }
    // Boundaries that are allowed.
    for (name, pw) in [("abc", "p".repeat(8)), (&*"y".repeat(32), "p".repeat(128))] {
        let (s, b) = app.post("/api/v1/auth/register", None, json!({"username": name, "password": pw})).await?;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    Ok(())
}

async fn username_and_phone_conflicts(app: TestApp) -> TestResult {
    let (s, _) = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "Bob", "password": "password123", "phone": "+12025550100"}),
        )
        .await?;
    assert_eq!(s, StatusCode::CREATED);
    let got = app.post("/api/v1/auth/register", None, json!({"username": "bOB", "password": "password123"})).await?;
    assert_error(&got, StatusCode::CONFLICT, "username_taken");
    let got = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "carol", "password": "password123", "phone": "+12025550100"}),
        )
        .await?;
    assert_error(&got, StatusCode::CONFLICT, "phone_taken");
    Ok(())
}

async fn wrong_credentials_look_the_same(app: TestApp) -> TestResult {
    app.user("dave").await?;
    let wrong_pw =
        app.post("/api/v1/auth/login", None, json!({"username": "dave", "password": "wrong password"})).await?;
    let no_user =
        app.post("/api/v1/auth/login", None, json!({"username": "nobody", "password": "wrong password"})).await?;
    assert_error(&wrong_pw, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_error(&no_user, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(wrong_pw.1, no_user.1);
    let got = app
        .post("/api/v1/auth/login", None, json!({"username": "dave", "phone": "+12025550100", "password": "x"}))
        .await?;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_login");
    Ok(())
}

async fn devices_and_logout(app: TestApp) -> TestResult {
    let phone = app.user("erin").await?;
    let laptop = app.login("erin").await?;
    let other = app.user("frank").await?;

    let (s, list) = app.get("/api/v1/auth/devices", &phone.token).await?;
    assert_eq!(s, StatusCode::OK);
    let items = items(&list)?;
    assert_eq!(items.len(), 2);
    assert_eq!(items.iter().filter(|d| d["current"] == true).count(), 1);
    assert!(items.iter().all(|d| d.get("token_hash").is_none()));

    // Another user's device id is not mine: 404, and it stays live.
    let got = app.delete(&format!("/api/v1/auth/devices/{}", other.device_id), &phone.token).await?;
    assert_error(&got, StatusCode::NOT_FOUND, "device_not_found");
    assert_eq!(app.get("/api/v1/users/me", &other.token).await?.0, StatusCode::OK);

    // Revoke the laptop from the phone: its token stops working at once.
    let (s, _) = app.delete(&format!("/api/v1/auth/devices/{}", laptop.device_id), &phone.token).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_error(&app.get("/api/v1/users/me", &laptop.token).await?, StatusCode::UNAUTHORIZED, "unauthorized");

    // Logout revokes the calling device.
    let (s, _) = app.post("/api/v1/auth/logout", Some(&phone.token), json!({})).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_error(&app.get("/api/v1/users/me", &phone.token).await?, StatusCode::UNAUTHORIZED, "unauthorized");

    // No token, a malformed header, a made-up token.
    assert_error(
        &app.call(Method::GET, "/api/v1/users/me", None, None).await?,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(&app.get("/api/v1/users/me", "not-a-token").await?, StatusCode::UNAUTHORIZED, "unauthorized");
    Ok(())
}

async fn tokens_expire(app: TestApp) -> TestResult {
    let u = app.user("gina").await?;
    assert_eq!(app.get("/api/v1/users/me", &u.token).await?.0, StatusCode::OK);
    app.clock.advance(31 * 86_400_000);
    assert_error(&app.get("/api/v1/users/me", &u.token).await?, StatusCode::UNAUTHORIZED, "unauthorized");
    Ok(())
}

async fn profile_read_and_update(app: TestApp) -> TestResult {
    let (s, _) = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "hank", "password": "password123", "phone": "+33612345678"}),
        )
        .await?;
    assert_eq!(s, StatusCode::CREATED);
    let hank = app.login("hank").await?;
    let ivy = app.user("ivy").await?;

    let (s, me) = app
        .patch(
            "/api/v1/users/me",
            &hank.token,
            json!({"nickname": "Hank H", "avatar_url": "https://img.example/h.png", "bio": "hello"}),
        )
        .await?;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["nickname"], "Hank H");
    assert_eq!(me["avatar_url"], "https://img.example/h.png");
    assert_eq!(me["bio"], "hello");

    // Others see the public profile: no phone.
    let (s, p) = app.get(&format!("/api/v1/users/{}", hank.id), &ivy.token).await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["nickname"], "Hank H");
    assert!(p.get("phone").is_none(), "{p}");

    // null clears; absent leaves alone.
    let (_, me) = app.patch("/api/v1/users/me", &hank.token, json!({"bio": null})).await?;
    assert_eq!(me["bio"], serde_json::Value::Null);
    assert_eq!(me["avatar_url"], "https://img.example/h.png");

    assert_error(
        &app.patch("/api/v1/users/me", &hank.token, json!({"avatar_url": "javascript:alert(1)"})).await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_avatar_url",
    );
    assert_error(
        &app.patch("/api/v1/users/me", &hank.token, json!({"bio": "b".repeat(501)})).await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_bio",
    );
    assert_error(
        &app.patch("/api/v1/users/me", &hank.token, json!({"password_hash": "x"})).await?,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    assert_error(&app.get("/api/v1/users/999999", &ivy.token).await?, StatusCode::NOT_FOUND, "user_not_found");
    assert_error(&app.get("/api/v1/users/abc", &ivy.token).await?, StatusCode::NOT_FOUND, "not_found");
    Ok(())
}

async fn search_by_username_phone_and_nickname(app: TestApp) -> TestResult {
    let me = app.user("searcher").await?;
    for (name, nick, phone) in [
        ("mike", "Mike Ross", "+14155550001"),
        ("mikaela", "Mika", "+14155550002"),
        ("zed", "mike two", "+14155550003"),
    ] {
        let (s, _) = app
            .post(
                "/api/v1/auth/register",
                None,
                json!({"username": name, "password": "password123", "nickname": nick, "phone": phone}),
            )
            .await?;
        assert_eq!(s, StatusCode::CREATED);
    }
    // Exact username first, then nickname-prefix matches; never phones.
    let (s, r) = app.get("/api/v1/user/search?q=MIKE", &me.token).await?;
    assert_eq!(s, StatusCode::OK, "{r}");
    let names: Vec<&str> = items(&r)?.iter().filter_map(|u| u["username"].as_str()).collect();
    assert_eq!(names, ["mike", "zed"]);
    assert!(items(&r)?.iter().all(|u| u.get("phone").is_none()));

    // Nickname prefix only.
    let (_, r) = app.get("/api/v1/user/search?q=mik", &me.token).await?;
    let names: Vec<&str> = items(&r)?.iter().filter_map(|u| u["username"].as_str()).collect();
    assert_eq!(names, ["mikaela", "mike", "zed"]);

    // Paging: size 1 walks the same order.
    let mut walked = Vec::new();
    for page in 1..=4 {
        let (_, r) = app.get(&format!("/api/v1/user/search?q=mik&size=1&page={page}"), &me.token).await?;
        walked.extend(items(&r)?.iter().filter_map(|u| u["username"].as_str().map(str::to_owned)));
        assert_eq!(r["has_more"], page < 3, "page {page}: {r}");
    }
    assert_eq!(walked, ["mikaela", "mike", "zed"]);

    // Exact phone shows that phone; a prefix of a phone finds nothing.
    let (_, r) = app.get("/api/v1/user/search?q=%2B14155550002", &me.token).await?;
    assert_eq!(r["items"][0]["username"], "mikaela");
    assert_eq!(r["items"][0]["phone"], "+14155550002");
    let (_, r) = app.get("/api/v1/user/search?q=%2B1415555", &me.token).await?;
    assert_eq!(r["items"].as_array().map(Vec::len), Some(0));

    // LIKE wildcards are literal.
    let (_, r) = app.get("/api/v1/user/search?q=%25", &me.token).await?;
    assert_eq!(r["items"].as_array().map(Vec::len), Some(0));

    assert_error(&app.get("/api/v1/user/search?q=", &me.token).await?, StatusCode::BAD_REQUEST, "invalid_query");
    assert_error(
        &app.get("/api/v1/user/search?q=a&size=101", &me.token).await?,
        StatusCode::BAD_REQUEST,
        "invalid_size",
    );
    assert_error(&app.get("/api/v1/user/search?q=a&page=0", &me.token).await?, StatusCode::BAD_REQUEST, "invalid_page");
    assert_error(
        &app.get("/api/v1/user/search?q=a&page=x", &me.token).await?,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
    Ok(())
}

async fn malformed_requests_are_4xx(app: TestApp) -> TestResult {
    let path = "/api/v1/auth/register";
    let got = app.raw(Method::POST, path, None, "application/json", b"{not json".to_vec()).await?;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_json");
    let got = app
        .raw(Method::POST, path, None, "application/json", br#"{"username": 5, "password": "password123"}"#.to_vec())
        .await?;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_json");
    let got = app.raw(Method::POST, path, None, "application/json", br#"{"password": "password123"}"#.to_vec()).await?;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_json");
    let got = app.raw(Method::POST, path, None, "text/plain", b"hello".to_vec()).await?;
    assert_error(&got, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let big = format!(r#"{{"username": "x", "password": "{}"}}"#, "p".repeat(100 * 1024));
    let got = app.raw(Method::POST, path, None, "application/json", big.into_bytes()).await?;
    assert_error(&got, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let got = app.raw(Method::POST, path, None, "application/json", vec![0xff, 0xfe, 0x00]).await?;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_json");
    assert_error(&app.call(Method::GET, "/api/v1/nope", None, None).await?, StatusCode::NOT_FOUND, "not_found");
    Ok(())
}

async fn health_and_readiness(app: TestApp) -> TestResult {
    let (s, b) = app.call(Method::GET, "/healthz", None, None).await?;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, b) = app.call(Method::GET, "/readyz", None, None).await?;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["database"], "ok");
    assert_eq!(b["message_store"], "ok");
    Ok(())
}
