//! Push notifications over real sockets: the server pushes to a receiving HTTP server the test
//! starts ([`crate::push_receiver`]), as a Matrix-style push gateway and as Web Push services.
//! Each case runs on SQLite, PostgreSQL and the MongoDB message store. Web Push payloads are
//! decrypted here with the subscription's own keys (RFC 8291, written out independently of the
//! server's code) and the VAPID JWT is verified against `GET /push/vapid` (RFC 8292).

use std::time::Duration;

use actix_web::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::{aead, agreement, hmac, rand::SecureRandom, rand::SystemRandom, signature};
use serde_json::{json, Value};
use server::config::Settings;

use crate::helpers::{assert_error, items, TestApp, TestResult, User};
use crate::push_receiver::{gateway_pushes, to_pushkey, Got, Receiver};
use crate::ws_client::{conv_of, WsClient};

/// One `#[actix_rt::test]` per store for each case `async fn case(backend: &str)`.
macro_rules! push_tests {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $( #[actix_rt::test] async fn $case() -> crate::helpers::TestResult { super::$case("sqlite").await } )*
        }
        mod postgres {
            $( #[actix_rt::test] async fn $case() -> crate::helpers::TestResult { super::$case("postgres").await } )*
        }
        mod mongodb {
            $( #[actix_rt::test] async fn $case() -> crate::helpers::TestResult { super::$case("mongodb").await } )*
        }
    };
}

push_tests!(
    gateway_push_shape_and_badge,
    no_push_while_online,
    dnd_mute_and_mentions,
    previews_off_hides_bodies,
    coalescing_sends_the_newest_once,
    retries_after_503,
    gone_targets_are_removed,
    friend_request_and_group_invite_push,
    bad_input_is_refused,
    webpush_payload_decrypts_and_vapid_verifies,
);

/// How long a case waits to be sure that a push did not come.
const QUIET: Duration = Duration::from_millis(700);

/// A server pushing to a fresh receiver: push on, the gateway at the receiver, `http://` Web
/// Push endpoints allowed (the receiver is plain HTTP), no coalescing, fast retries.
async fn start(backend: &str, tune: impl FnOnce(&mut Settings)) -> TestResult<(Receiver, TestApp)> {
    let rx = Receiver::start().await?;
    let gateway = rx.gateway_url();
    let app = TestApp::spawn_tuned(backend, |s| {
        s.push.enabled = true;
        s.push.gateway_url = gateway;
        s.push.allow_http_endpoints = true;
        s.push.vapid_subject = "mailto:ops@example.com".into();
        s.push.coalesce_ms = 0;
        s.push.retry_base_ms = 50;
        s.push.timeout_ms = 5_000;
        tune(s);
    })
    .await?;
    Ok((rx, app))
}

/// Registers a gateway target `pushkey` for `u`'s device.
async fn gateway_target(app: &TestApp, u: &User, pushkey: &str) -> TestResult<Value> {
    let (s, t) = app
        .post(
            &format!("/api/v1/devices/{}/push", u.device_id),
            Some(&u.token),
            json!({"kind": "gateway", "app_id": "com.example.im", "pushkey": pushkey}),
        )
        .await?;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    assert_eq!((t["kind"].as_str(), t["pushkey"].as_str()), (Some("gateway"), Some(pushkey)), "{t}");
    Ok(t)
}

async fn set_previews(app: &TestApp, u: &User, previews: bool, mentions_break_mute: bool) -> TestResult {
    let body = json!({"previews": previews, "mentions_break_mute": mentions_break_mute});
    let (s, v) = app.put("/api/v1/push/settings", &u.token, body.clone()).await?;
    assert_eq!((s, &v), (StatusCode::OK, &body));
    let (s, v) = app.get("/api/v1/push/settings", &u.token).await?;
    assert_eq!((s, &v), (StatusCode::OK, &body));
    Ok(())
}

/// The gateway pushes to `pushkey` of notice type `kind`.
fn pushes_of(rx: &Receiver, pushkey: &str, kind: &str) -> Vec<Value> {
    gateway_pushes(rx, pushkey).into_iter().filter(|n| n["type"] == kind).collect()
}

/// Waits for `n` accepted gateway pushes to `pushkey`; returns them all.
async fn wait_pushes(rx: &Receiver, pushkey: &str, n: usize) -> TestResult<Vec<Value>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = gateway_pushes(rx, pushkey);
        if got.len() >= n {
            return Ok(got);
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("{} of {n} pushes to {pushkey}: {got:?}", got.len()).into());
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The sum of `unread` over `u`'s conversation list.
async fn list_unread(app: &TestApp, u: &User) -> TestResult<i64> {
    let (s, v) = app.get("/api/v1/conversations", &u.token).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    Ok(items(&v)?.iter().filter_map(|c| c["unread"].as_i64()).sum())
}

/// A group of `owner`'s with `members` (friends of the owner); its id.
async fn group(app: &TestApp, owner: &User, name: &str, members: &[&User]) -> TestResult<i64> {
    let ids: Vec<i64> = members.iter().map(|m| m.id).collect();
    let (s, g) = app.post("/api/v1/groups", Some(&owner.token), json!({"name": name, "member_ids": ids})).await?;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    g["id"].as_i64().ok_or_else(|| "no group id".into())
}

async fn gateway_push_shape_and_badge(backend: &str) -> TestResult {
    let (rx, app) = start(backend, |_| {}).await?;
    let (alice, bob, carol) = (app.user("alice").await?, app.user("bob").await?, app.user("carol").await?);
    app.befriend(&alice, &bob).await?;
    app.befriend(&carol, &bob).await?;
    let t = gateway_target(&app, &bob, "pk-bob").await?;
    let (s, l) = app.get(&format!("/api/v1/devices/{}/push", bob.device_id), &bob.token).await?;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(items(&l)?.iter().map(|x| x["id"].clone()).collect::<Vec<_>>(), vec![t["id"].clone()]);

    // Bob has no session: Alice's message pushes to his device.
    let ab = conv_of(&alice, &bob);
    let mut wa = WsClient::connect(&app, &alice).await?;
    let ack = wa.say(&ab, "a1", "hello bob").await?;
    let seq = ack["seq"].as_i64().ok_or("no seq")?;
    let n = wait_pushes(&rx, "pk-bob", 1).await?.remove(0);
    assert_eq!(n["event_id"], format!("{ab}/{seq}"), "{n}");
    assert_eq!(n["room_id"], ab.as_str());
    assert_eq!(n["type"], "message");
    assert_eq!(n["sender"], alice.id.to_string());
    assert_eq!(n["sender_display_name"], "alice");
    assert_eq!(n["prio"], "high");
    assert_eq!(n["counts"]["unread"], 1, "{n}");
    let dev = &n["devices"][0];
    assert_eq!((dev["app_id"].as_str(), dev["pushkey"].as_str()), (Some("com.example.im"), Some("pk-bob")), "{n}");
    assert!(dev["pushkey_ts"].as_i64().is_some_and(|ts| ts > 1_600_000_000), "{n}");
    let im = &n["im"];
    assert_eq!((im["type"].as_str(), im["count"].as_i64(), im["unread"].as_i64()), (Some("message"), Some(1), Some(1)));
    assert_eq!((im["sender"]["id"].as_i64(), im["conv"].as_str()), (Some(alice.id), Some(ab.as_str())), "{im}");
    // Previews are off by default: no body anywhere.
    assert!(n.get("content").is_none() && im.get("body").is_none(), "{n}");

    // The badge sums Bob's unread over his conversation list, as the list counts it.
    let mut wc = WsClient::connect(&app, &carol).await?;
    wc.say(&conv_of(&carol, &bob), "c1", "hi from carol").await?;
    let n = wait_pushes(&rx, "pk-bob", 2).await?.remove(1);
    assert_eq!(n["counts"]["unread"], 2, "{n}");
    assert_eq!(n["sender_display_name"], "carol");
    let seq2 = wa.say(&ab, "a2", "again").await?["seq"].as_i64().ok_or("no seq")?;
    let n = wait_pushes(&rx, "pk-bob", 3).await?.remove(2);
    assert_eq!(n["counts"]["unread"], 3, "{n}");
    assert_eq!(list_unread(&app, &bob).await?, 3);
    // Bob reads Alice's conversation on another device (which then goes away): the next push
    // counts only what is still unread.
    let bob2 = app.login("bob").await?;
    let mut wb = WsClient::connect(&app, &bob2).await?;
    wb.send(json!({"type": "read", "conv": ab, "seq": seq2})).await?;
    let r = wa.expect("read").await?;
    assert_eq!((r["seq"].as_i64(), r["by"].as_i64()), (Some(seq2), Some(bob.id)), "{r}");
    drop(wb);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while list_unread(&app, &bob).await? != 1 {
        assert!(std::time::Instant::now() < deadline, "the read mark did not land");
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    actix_rt::time::sleep(QUIET).await;
    wc.say(&conv_of(&carol, &bob), "c2", "still there?").await?;
    let got = wait_pushes(&rx, "pk-bob", 4).await?;
    assert_eq!(got[3]["counts"]["unread"], 2, "{}", got[3]);
    assert_eq!(list_unread(&app, &bob).await?, 2);
    Ok(())
}

async fn no_push_while_online(backend: &str) -> TestResult {
    let (rx, app) = start(backend, |_| {}).await?;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    app.befriend(&alice, &bob).await?;
    gateway_target(&app, &bob, "pk-bob").await?;
    let ab = conv_of(&alice, &bob);
    let mut wa = WsClient::connect(&app, &alice).await?;
    // Bob is online on another device: the message reaches him there, no push.
    let other = app.login("bob").await?;
    let mut wb = WsClient::connect(&app, &other).await?;
    wa.say(&ab, "a1", "you are here").await?;
    wb.expect("msg").await?;
    actix_rt::time::sleep(QUIET).await;
    assert!(gateway_pushes(&rx, "pk-bob").is_empty(), "{:?}", rx.got());
    // Once he is gone, the next message pushes.
    drop(wb);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut n = 2;
    while gateway_pushes(&rx, "pk-bob").is_empty() {
        assert!(std::time::Instant::now() < deadline, "no push after Bob went offline");
        wa.say(&ab, &format!("a{n}"), "now?").await?;
        n += 1;
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn dnd_mute_and_mentions(backend: &str) -> TestResult {
    let (rx, app) = start(backend, |_| {}).await?;
    let (alice, bob, carol) = (app.user("alice").await?, app.user("bob").await?, app.user("carol").await?);
    app.befriend(&alice, &bob).await?;
    app.befriend(&alice, &carol).await?;
    app.befriend(&carol, &bob).await?;
    gateway_target(&app, &bob, "pk-bob").await?;
    gateway_target(&app, &carol, "pk-carol").await?;
    let mut wa = WsClient::connect(&app, &alice).await?;
    let mut wc = WsClient::connect(&app, &carol).await?;

    // Bob silences Alice (do-not-disturb on the friend): her messages do not push; Carol's do.
    let (s, v) = app.patch(&format!("/api/v1/friends/{}", alice.id), &bob.token, json!({"dnd": true})).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    wa.say(&conv_of(&alice, &bob), "a1", "psst").await?;
    actix_rt::time::sleep(QUIET).await;
    wc.say(&conv_of(&carol, &bob), "c1", "hey").await?;
    let got = wait_pushes(&rx, "pk-bob", 1).await?;
    actix_rt::time::sleep(QUIET).await;
    let msgs = pushes_of(&rx, "pk-bob", "message");
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(got[0]["sender"], carol.id.to_string());
    drop(wc);

    // A group; Bob mutes it. A plain message pushes to Carol (offline now) and not to Bob.
    let gid = group(&app, &alice, "G", &[&bob, &carol]).await?;
    let conv = format!("g:{gid}");
    let (s, v) = app.patch(&format!("/api/v1/conversations/{conv}"), &bob.token, json!({"dnd": true})).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let carol_before = pushes_of(&rx, "pk-carol", "message").len();
    wa.say(&conv, "g1", "lunch?").await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pushes_of(&rx, "pk-carol", "message").len() == carol_before {
        assert!(std::time::Instant::now() < deadline, "no group push to Carol");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let c = pushes_of(&rx, "pk-carol", "message").pop().ok_or("carol")?;
    assert_eq!(
        (c["room_id"].as_str(), c["room_name"].as_str(), c["prio"].as_str()),
        (Some(conv.as_str()), Some("G"), Some("low"))
    );
    actix_rt::time::sleep(QUIET).await;
    assert_eq!(pushes_of(&rx, "pk-bob", "message").len(), 1, "a muted group pushed");

    // An @mention breaks through the mute (the default setting).
    wa.send(json!({"type": "send", "id": "g2", "conv": conv, "body": "@bob you too", "mentions": [bob.id]})).await?;
    wa.expect("ack").await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pushes_of(&rx, "pk-bob", "message").len() < 2 {
        assert!(std::time::Instant::now() < deadline, "the mention did not push");
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let m = pushes_of(&rx, "pk-bob", "message").pop().ok_or("mention")?;
    assert_eq!((m["im"]["mentioned"].as_bool(), m["prio"].as_str()), (Some(true), Some("high")), "{m}");
    assert_eq!(m["room_id"], conv.as_str());

    // Unless Bob turns that off.
    set_previews(&app, &bob, false, false).await?;
    wa.send(json!({"type": "send", "id": "g3", "conv": conv, "body": "@bob hello?", "mentions": [bob.id]})).await?;
    wa.expect("ack").await?;
    actix_rt::time::sleep(QUIET).await;
    assert_eq!(pushes_of(&rx, "pk-bob", "message").len(), 2, "a mention pushed through the mute though turned off");
    Ok(())
}

async fn previews_off_hides_bodies(backend: &str) -> TestResult {
    let (rx, app) = start(backend, |_| {}).await?;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    app.befriend(&alice, &bob).await?;
    gateway_target(&app, &bob, "pk-bob").await?;
    // A second device of Bob's whose target never shows bodies, whatever his setting.
    let bob2 = app.login("bob").await?;
    let (s, t) = app
        .post(
            &format!("/api/v1/devices/{}/push", bob2.device_id),
            Some(&bob2.token),
            json!({"kind": "gateway", "app_id": "com.example.im", "pushkey": "pk-bob2", "previews": false}),
        )
        .await?;
    assert_eq!((s, t["previews"].as_bool()), (StatusCode::CREATED, Some(false)), "{t}");
    let ab = conv_of(&alice, &bob);
    let mut wa = WsClient::connect(&app, &alice).await?;
    wa.say(&ab, "a1", "secret one").await?;
    let n = wait_pushes(&rx, "pk-bob", 1).await?.remove(0);
    assert!(n.get("content").is_none() && n["im"].get("body").is_none(), "{n}");
    assert!(!serde_json::to_string(&n)?.contains("secret"), "{n}");

    set_previews(&app, &bob, true, true).await?;
    wa.say(&ab, "a2", "secret two").await?;
    let n = wait_pushes(&rx, "pk-bob", 2).await?.remove(1);
    assert_eq!(n["content"]["body"], "secret two", "{n}");
    assert_eq!(n["im"]["body"], "secret two", "{n}");
    let hidden = wait_pushes(&rx, "pk-bob2", 2).await?;
    for n in hidden {
        assert!(!serde_json::to_string(&n)?.contains("secret"), "{n}");
    }
    Ok(())
}

async fn coalescing_sends_the_newest_once(backend: &str) -> TestResult {
    let (rx, app) = start(backend, |s| s.push.coalesce_ms = 2_000).await?;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    app.befriend(&alice, &bob).await?;
    gateway_target(&app, &bob, "pk-bob").await?;
    set_previews(&app, &bob, true, true).await?;
    let ab = conv_of(&alice, &bob);
    let mut wa = WsClient::connect(&app, &alice).await?;
    let mut last = 0;
    for (i, body) in ["one", "two", "three", "four"].iter().enumerate() {
        last = wa.say(&ab, &format!("a{i}"), body).await?["seq"].as_i64().ok_or("seq")?;
    }
    let n = wait_pushes(&rx, "pk-bob", 1).await?.remove(0);
    assert_eq!(n["event_id"], format!("{ab}/{last}"), "{n}");
    assert_eq!((n["im"]["count"].as_i64(), n["content"]["body"].as_str()), (Some(4), Some("four")), "{n}");
    assert_eq!(n["counts"]["unread"], 4);
    actix_rt::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(gateway_pushes(&rx, "pk-bob").len(), 1, "{:?}", rx.got());

    // Bob comes online while the next window is open: when it closes, nothing is pushed.
    wa.say(&ab, "a9", "are you there").await?;
    let _wb = WsClient::connect(&app, &bob).await?;
    actix_rt::time::sleep(Duration::from_millis(3_000)).await;
    assert_eq!(gateway_pushes(&rx, "pk-bob").len(), 1, "pushed though Bob came online: {:?}", rx.got());
    Ok(())
}

async fn retries_after_503(backend: &str) -> TestResult {
    let (rx, app) = start(backend, |_| {}).await?;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    app.befriend(&alice, &bob).await?;
    gateway_target(&app, &bob, "pk-bob").await?;
    rx.fail_next(2);
    let mut wa = WsClient::connect(&app, &alice).await?;
    wa.say(&conv_of(&alice, &bob), "a1", "persist").await?;
    let tries = rx.wait_for(3, |g| to_pushkey(g, "pk-bob")).await?;
    assert_eq!(tries.iter().map(|g| g.accepted).collect::<Vec<_>>(), [false, false, true]);
    let ids: Vec<Value> = tries.iter().map(|g| g.json()["notification"]["event_id"].clone()).collect();
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    actix_rt::time::sleep(QUIET).await;
    assert_eq!(gateway_pushes(&rx, "pk-bob").len(), 1, "sent again after it was accepted");
    Ok(())
}

async fn gone_targets_are_removed(backend: &str) -> TestResult {
    let (rx, app) = start(backend, |_| {}).await?;
    let (alice, bob, carol) = (app.user("alice").await?, app.user("bob").await?, app.user("carol").await?);
    app.befriend(&alice, &bob).await?;
    app.befriend(&alice, &carol).await?;
    // Bob's gateway token is rejected as gone; Carol's Web Push subscription answers 410.
    gateway_target(&app, &bob, "gone-bob").await?;
    let sub = Subscription::new()?;
    let (s, t) = app
        .post(
            &format!("/api/v1/devices/{}/push", carol.device_id),
            Some(&carol.token),
            sub.body(&format!("{}/wp/gone/carol", rx.base)),
        )
        .await?;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let mut wa = WsClient::connect(&app, &alice).await?;
    wa.say(&conv_of(&alice, &bob), "a1", "hi").await?;
    wa.say(&conv_of(&alice, &carol), "a2", "hi").await?;
    rx.wait_for(1, |g| to_pushkey(g, "gone-bob")).await?;
    rx.wait_for(1, |g| g.path == "/wp/gone/carol").await?;
    for u in [&bob, &carol] {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (s, l) = app.get(&format!("/api/v1/devices/{}/push", u.device_id), &u.token).await?;
            assert_eq!(s, StatusCode::OK);
            if items(&l)?.is_empty() {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{}'s gone target stayed: {l}", u.username);
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Removed for good: the next messages push nowhere.
    wa.say(&conv_of(&alice, &bob), "a3", "still?").await?;
    wa.say(&conv_of(&alice, &carol), "a4", "still?").await?;
    actix_rt::time::sleep(QUIET).await;
    assert_eq!(rx.got().len(), 2, "{:?}", rx.got());
    Ok(())
}

async fn friend_request_and_group_invite_push(backend: &str) -> TestResult {
    let (rx, app) = start(backend, |_| {}).await?;
    let (alice, bob, carol) = (app.user("alice").await?, app.user("bob").await?, app.user("carol").await?);
    gateway_target(&app, &bob, "pk-bob").await?;
    // A friend request from Carol.
    let (s, r) =
        app.post("/api/v1/friend/request", Some(&carol.token), json!({"to_user_id": bob.id, "message": "hi"})).await?;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    let n = wait_pushes(&rx, "pk-bob", 1).await?.remove(0);
    assert_eq!((n["type"].as_str(), n["sender_display_name"].as_str()), (Some("friend_request"), Some("carol")), "{n}");
    assert_eq!(n["sender"], carol.id.to_string());
    let id = r["id"].as_i64().ok_or("request id")?;
    let (s, v) = app.put(&format!("/api/v1/friend/request/{id}"), &bob.token, json!({"action": "accept"})).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Added to a group at its creation, and invited to another later: both push.
    app.befriend(&alice, &bob).await?;
    let pushes_before = pushes_of(&rx, "pk-bob", "friend_request").len();
    let g1 = group(&app, &alice, "Created with Bob", &[&bob]).await?;
    let g2 = group(&app, &alice, "Invited later", &[]).await?;
    let (s, v) =
        app.post(&format!("/api/v1/groups/{g2}/members"), Some(&alice.token), json!({"user_ids": [bob.id]})).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while pushes_of(&rx, "pk-bob", "group_invite").len() < 2 {
        assert!(std::time::Instant::now() < deadline, "{:?}", gateway_pushes(&rx, "pk-bob"));
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let mut invites = pushes_of(&rx, "pk-bob", "group_invite");
    invites.sort_by_key(|n| n["im"]["group"]["id"].as_i64());
    let seen: Vec<(Option<i64>, Option<&str>, Option<&str>)> = invites
        .iter()
        .map(|n| (n["im"]["group"]["id"].as_i64(), n["room_name"].as_str(), n["sender_display_name"].as_str()))
        .collect();
    assert_eq!(
        seen,
        [(Some(g1), Some("Created with Bob"), Some("alice")), (Some(g2), Some("Invited later"), Some("alice"))]
    );
    assert_eq!(pushes_of(&rx, "pk-bob", "friend_request").len(), pushes_before);
    Ok(())
}

async fn bad_input_is_refused(backend: &str) -> TestResult {
    let (_rx, app) = start(backend, |_| {}).await?;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    let sub = Subscription::new()?;
    let mine = format!("/api/v1/devices/{}/push", alice.device_id);
    // Another user's device and no device at all are not found.
    for path in [format!("/api/v1/devices/{}/push", bob.device_id), "/api/v1/devices/987654321/push".to_owned()] {
        assert_error(
            &app.post(&path, Some(&alice.token), sub.body("https://push.example.net/a")).await?,
            StatusCode::NOT_FOUND,
            "device_not_found",
        );
        assert_error(&app.get(&path, &alice.token).await?, StatusCode::NOT_FOUND, "device_not_found");
        assert_error(&app.delete(&path, &alice.token).await?, StatusCode::NOT_FOUND, "device_not_found");
    }
    assert_error(
        &app.delete(&format!("{mine}/424242"), &alice.token).await?,
        StatusCode::NOT_FOUND,
        "push_target_not_found",
    );
    // Targets that do not fit their kind.
    let p256dh = sub.p256dh.clone();
    let bad = [
        json!({"kind": "sms", "endpoint": "https://push.example.net/a"}),
        json!({"kind": "webpush", "endpoint": "ftp://push.example.net/a", "keys": {"p256dh": p256dh, "auth": sub.auth}}),
        json!({"kind": "webpush", "endpoint": "https://push.example.net/a", "keys": {"p256dh": "BAAA", "auth": sub.auth}}),
        json!({"kind": "webpush", "endpoint": "https://push.example.net/a", "keys": {"p256dh": p256dh, "auth": "AAAA"}}),
        json!({"kind": "webpush", "endpoint": "https://push.example.net/a"}),
        json!({"kind": "gateway", "app_id": "com.example.im", "pushkey": " "}),
        json!({"kind": "gateway", "app_id": "", "pushkey": "pk"}),
        json!({"kind": "gateway", "app_id": "com.example.im", "pushkey": "pk", "endpoint": "https://x.example/"}),
    ];
    for b in bad {
        assert_error(
            &app.post(&mine, Some(&alice.token), b.clone()).await?,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_push_target",
        );
    }
    // A browser's subscription as the web client sends it, `expiration_time` (or the DOM's
    // `expirationTime`) included.
    for extra in [
        json!({"expiration_time": null}),
        json!({"expiration_time": 1_900_000_000_000.0}),
        json!({"expirationTime": null}),
    ] {
        let mut b = sub.body("https://push.example.net/with-expiry");
        b.as_object_mut().ok_or("object")?.extend(extra.as_object().cloned().unwrap_or_default());
        let (s, t) = app.post(&mine, Some(&alice.token), b).await?;
        assert_eq!(s, StatusCode::CREATED, "{t}");
    }
    // Registering the same endpoint again replaces the target.
    let (_, l) = app.get(&mine, &alice.token).await?;
    assert_eq!(items(&l)?.len(), 1, "{l}");
    let id = items(&l)?[0]["id"].as_i64().ok_or("id")?;
    let (s, _) = app.delete(&format!("{mine}/{id}"), &alice.token).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);

    // A server with neither a gateway nor Web Push.
    let (_rx2, off) = start(backend, |s| {
        s.push.gateway_url = String::new();
        s.push.webpush = false;
    })
    .await?;
    let carol = off.user("carol").await?;
    let path = format!("/api/v1/devices/{}/push", carol.device_id);
    let gw = json!({"kind": "gateway", "app_id": "com.example.im", "pushkey": "pk"});
    assert_error(&off.post(&path, Some(&carol.token), gw).await?, StatusCode::NOT_FOUND, "push_not_configured");
    assert_error(
        &off.post(&path, Some(&carol.token), sub.body("https://push.example.net/b")).await?,
        StatusCode::NOT_FOUND,
        "push_not_configured",
    );
    assert_error(&off.get("/api/v1/push/vapid", &carol.token).await?, StatusCode::NOT_FOUND, "push_not_configured");
    Ok(())
}

async fn webpush_payload_decrypts_and_vapid_verifies(backend: &str) -> TestResult {
    let (rx, app) = start(backend, |s| s.push.ttl_secs = 600).await?;
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    app.befriend(&alice, &bob).await?;
    set_previews(&app, &bob, true, true).await?;
    let (s, v) = app.get("/api/v1/push/vapid", &bob.token).await?;
    assert_eq!(s, StatusCode::OK, "{v}");
    let vapid = v["public_key"].as_str().ok_or("no public key")?.to_owned();
    assert_eq!(URL_SAFE_NO_PAD.decode(&vapid)?.len(), 65);

    let sub = Subscription::new()?;
    let endpoint = format!("{}/wp/bob", rx.base);
    let (s, t) =
        app.post(&format!("/api/v1/devices/{}/push", bob.device_id), Some(&bob.token), sub.body(&endpoint)).await?;
    assert_eq!(
        (s, t["kind"].as_str(), t["endpoint"].as_str()),
        (StatusCode::CREATED, Some("webpush"), Some(endpoint.as_str())),
        "{t}"
    );

    // The longest body a push carries, in four-byte characters: the message still fits 4096.
    let long: String = "🍉".repeat(2_000);
    let mut wa = WsClient::connect(&app, &alice).await?;
    let ab = conv_of(&alice, &bob);
    let seq = wa.say(&ab, "a1", &long).await?["seq"].as_i64().ok_or("seq")?;
    let got = rx.wait_for(1, |g| g.path == "/wp/bob").await?.remove(0);
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;

    assert_eq!(got.headers.get("content-encoding").map(String::as_str), Some("aes128gcm"));
    assert_eq!(got.headers.get("ttl").map(String::as_str), Some("600"));
    assert_eq!(got.headers.get("urgency").map(String::as_str), Some("high"));
    assert!(got.headers.get("topic").is_some_and(|t| t.len() <= 32), "{:?}", got.headers);
    assert!(got.body.len() <= 4096, "{} bytes", got.body.len());
    let plain = sub.decrypt(&got)?;
    let p: Value = serde_json::from_slice(&plain)?;
    assert_eq!((p["type"].as_str(), p["id"].as_str()), (Some("message"), Some(format!("{ab}/{seq}").as_str())), "{p}");
    assert_eq!((p["sender"]["id"].as_i64(), p["sender"]["name"].as_str()), (Some(alice.id), Some("alice")));
    assert_eq!((p["count"].as_i64(), p["unread"].as_i64()), (Some(1), Some(1)));
    assert_eq!(p["body"], "🍉".repeat(500), "bodies are cut at 500 characters");

    // VAPID: `vapid t=<ES256 JWT>, k=<the key of GET /push/vapid>`, for the endpoint's origin.
    let authz = got.headers.get("authorization").ok_or("no Authorization")?;
    let rest = authz.strip_prefix("vapid t=").ok_or("not vapid")?;
    let (jwt, k) = rest.split_once(", k=").ok_or("no k=")?;
    assert_eq!(k, vapid);
    let (input, sig) = jwt.rsplit_once('.').ok_or("jwt")?;
    let (header, claims) = input.split_once('.').ok_or("jwt")?;
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header)?)?;
    assert_eq!(header["alg"], "ES256");
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims)?)?;
    assert_eq!(claims["aud"], rx.base.as_str(), "{claims}");
    assert_eq!(claims["sub"], "mailto:ops@example.com");
    let exp = claims["exp"].as_i64().ok_or("exp")?;
    assert!(exp > before && exp <= before + 24 * 3600, "exp {exp}, now {before}");
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, URL_SAFE_NO_PAD.decode(&vapid)?)
        .verify(input.as_bytes(), &URL_SAFE_NO_PAD.decode(sig)?)
        .map_err(|_| "the VAPID signature does not verify")?;
    // A tampered claim does not verify: the check above can fail.
    assert!(signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, URL_SAFE_NO_PAD.decode(&vapid)?)
        .verify(format!("{input}x").as_bytes(), &URL_SAFE_NO_PAD.decode(sig)?)
        .is_err());
    Ok(())
}

/// A browser's push subscription: a P-256 key pair and an auth secret. The private key is
/// ring's one-shot kind, so one subscription decrypts one push.
pub struct Subscription {
    private: std::cell::Cell<Option<agreement::EphemeralPrivateKey>>,
    public: Vec<u8>,
    auth_raw: Vec<u8>,
    pub p256dh: String,
    pub auth: String,
}

impl Subscription {
    pub fn new() -> TestResult<Self> {
        let rng = SystemRandom::new();
        let private = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng).map_err(|_| "keygen")?;
        let public = private.compute_public_key().map_err(|_| "public key")?.as_ref().to_vec();
        let mut auth_raw = vec![0u8; 16];
        rng.fill(&mut auth_raw).map_err(|_| "rng")?;
        Ok(Subscription {
            p256dh: URL_SAFE_NO_PAD.encode(&public),
            auth: URL_SAFE_NO_PAD.encode(&auth_raw),
            private: std::cell::Cell::new(Some(private)),
            public,
            auth_raw,
        })
    }

    /// The body of `POST /devices/{id}/push` for this subscription at `endpoint`.
    pub fn body(&self, endpoint: &str) -> Value {
        json!({"kind": "webpush", "endpoint": endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}})
    }

    /// Decrypts an `aes128gcm` push (RFC 8188 header, RFC 8291 keys).
    pub fn decrypt(&self, got: &Got) -> TestResult<Vec<u8>> {
        let b = &got.body;
        if b.len() < 86 + 17 {
            return Err(format!("body of {} bytes", b.len()).into());
        }
        let (salt, rs, idlen) = (&b[..16], u32::from_be_bytes([b[16], b[17], b[18], b[19]]), b[20] as usize);
        assert_eq!(idlen, 65);
        let as_public = &b[21..21 + idlen];
        let record = &b[21 + idlen..];
        assert!(record.len() <= rs as usize, "one record of at most rs={rs} bytes");
        let private = self.private.take().ok_or("this subscription decrypted already")?;
        let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, as_public);
        let ecdh = agreement::agree_ephemeral(private, &peer, |k| k.to_vec()).map_err(|_| "ecdh")?;
        let info = [b"WebPush: info\0".as_slice(), &self.public, as_public].concat();
        let ikm = hkdf(&self.auth_raw, &ecdh, &info, 32);
        let cek = hkdf(salt, &ikm, b"Content-Encoding: aes128gcm\0", 16);
        let nonce = hkdf(salt, &ikm, b"Content-Encoding: nonce\0", 12);
        let key = aead::LessSafeKey::new(aead::UnboundKey::new(&aead::AES_128_GCM, &cek).map_err(|_| "key")?);
        let mut buf = record.to_vec();
        let plain = key
            .open_in_place(
                aead::Nonce::try_assume_unique_for_key(&nonce).map_err(|_| "nonce")?,
                aead::Aad::empty(),
                &mut buf,
            )
            .map_err(|_| "the push does not decrypt with the subscription's keys")?;
        // The last record: the content, the delimiter 0x02, zero padding.
        let end = plain.iter().rposition(|b| *b != 0).ok_or("no delimiter")?;
        assert_eq!(plain[end], 2, "last-record delimiter");
        Ok(plain[..end].to_vec())
    }
}

/// HKDF-SHA256 with one block of output (enough for 32 bytes), from HMAC.
fn hkdf(salt: &[u8], ikm: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    let prk = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, salt), ikm);
    let okm = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, prk.as_ref()), &[info, &[1u8]].concat());
    okm.as_ref()[..len].to_vec()
}
