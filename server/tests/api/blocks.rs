//! Blocking over real sockets: a blocked user's messages, typing, friend requests and group
//! invites are refused exactly as a stranger's are, they see none of the blocker's presence, the
//! block list pages, and unblocking lets the two become friends and talk again.

use std::time::Duration;

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, items, TestApp, TestResult, User};
use crate::store_tests;
use crate::ws_client::{conv_of, WsClient};

store_tests!(blocked_user_is_refused_like_a_stranger, unblock_lets_them_befriend_and_talk_again,);

mod list {
    use super::*;
    crate::backend_tests!(block_list_pages_and_rules);
}

const QUIET: Duration = Duration::from_millis(300);

/// An error frame without its request id (the part a refusal's cause could show in).
fn refusal(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("id");
    }
    v
}

async fn block(app: &TestApp, by: &User, whom: &User) -> TestResult {
    let (s, v) = app.put(&format!("/api/v1/blocks/{}", whom.id), &by.token, json!({})).await?;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    Ok(())
}

async fn blocked_user_is_refused_like_a_stranger(app: TestApp) -> TestResult {
    let (alice, bob, carol) = (app.user("alice").await?, app.user("bob").await?, app.user("carol").await?);
    app.befriend(&alice, &bob).await?;
    let ab = conv_of(&alice, &bob);
    let mut wa = WsClient::connect(&app, &alice).await?;
    let mut wb = WsClient::connect(&app, &bob).await?;
    let mut wc = WsClient::connect(&app, &carol).await?;
    wb.say(&ab, "b1", "hi alice").await?;
    wa.expect("msg").await?;
    // A group of Bob's (Carol is his friend) to invite Alice to later.
    app.befriend(&bob, &carol).await?;
    let (s, g) = app.post("/api/v1/groups", Some(&bob.token), json!({"name": "B", "member_ids": [carol.id]})).await?;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let gid = g["id"].as_i64().ok_or("group id")?;

    block(&app, &alice, &bob).await?;
    // Bob hears what an unfriending says, and nothing more.
    let mut e = wb.expect("event").await?;
    while e["event"] == "friend_accepted" {
        e = wb.expect("event").await?;
    }
    assert_eq!((e["event"].as_str(), e["data"]["user_id"].as_i64()), (Some("friend_removed"), Some(alice.id)));
    wb.expect_no("event", QUIET).await?;
    let (_, f) = app.get("/api/v1/friends", &bob.token).await?;
    assert!(!items(&f)?.iter().any(|x| x["user"]["id"] == alice.id), "{f}");

    // 1:1 send and typing: the refusal is the one a stranger (Carol, never Alice's friend) gets.
    wb.send(json!({"type": "send", "id": "b2", "conv": ab, "body": "hello?"})).await?;
    let from_blocked = refusal(wb.expect("error").await?);
    wc.send(json!({"type": "send", "id": "c1", "conv": conv_of(&carol, &alice), "body": "hello?"})).await?;
    let from_stranger = refusal(wc.expect("error").await?);
    assert_eq!(from_blocked["code"], "not_friends", "{from_blocked}");
    assert_eq!(from_blocked, from_stranger);
    wb.send(json!({"type": "typing", "conv": ab})).await?;
    let typing_blocked = refusal(wb.expect("error").await?);
    wc.send(json!({"type": "typing", "conv": conv_of(&carol, &alice)})).await?;
    assert_eq!(typing_blocked, refusal(wc.expect("error").await?));
    wa.expect_no("msg", QUIET).await?;
    wa.expect_no("typing", Duration::from_millis(50)).await?;
    // Opening the conversation over HTTP: the same as for a stranger.
    let got_b = app.post("/api/v1/conversations", Some(&bob.token), json!({"peer_user_id": alice.id})).await?;
    let got_c = app.post("/api/v1/conversations", Some(&carol.token), json!({"peer_user_id": alice.id})).await?;
    assert_error(&got_b, StatusCode::FORBIDDEN, "not_friends");
    assert_eq!(got_b, got_c);

    // A friend request: Bob sees it pending like any unanswered one; Alice never sees it.
    let (sb, rb) = app.post("/api/v1/friend/request", Some(&bob.token), json!({"to_user_id": alice.id})).await?;
    let (sc, rc) = app.post("/api/v1/friend/request", Some(&carol.token), json!({"to_user_id": alice.id})).await?;
    assert_eq!((sb, sc), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!((rb["status"].as_str(), rc["status"].as_str()), (Some("pending"), Some("pending")));
    let e = wa.expect("event").await?;
    assert_eq!(e["data"]["user"]["id"], carol.id, "only Carol's request reaches Alice: {e}");
    wa.expect_no("event", QUIET).await?;
    let (_, out) = app.get("/api/v1/friend/requests?direction=outgoing", &bob.token).await?;
    assert_eq!(items(&out)?[0]["status"], "pending", "{out}");
    for q in ["", "?status=ignored", "?status=pending"] {
        let (_, inc) = app.get(&format!("/api/v1/friend/requests{q}"), &alice.token).await?;
        assert!(!items(&inc)?.iter().any(|r| r["from_user_id"] == bob.id), "{q}: {inc}");
    }
    let got =
        app.put(&format!("/api/v1/friend/request/{}", rb["id"]), &alice.token, json!({"action": "accept"})).await?;
    assert_error(&got, StatusCode::NOT_FOUND, "request_not_found");
    // Alice may not ask Bob while she blocks him (she is told why: it is her own doing).
    let got = app.post("/api/v1/friend/request", Some(&alice.token), json!({"to_user_id": bob.id})).await?;
    assert_error(&got, StatusCode::CONFLICT, "blocked_by_you");

    // Group invites and group creation with Alice: refused as for any non-friend.
    let path = format!("/api/v1/groups/{gid}/members");
    let got = app.post(&path, Some(&bob.token), json!({"user_ids": [alice.id]})).await?;
    assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "not_friends");
    let got = app.post("/api/v1/groups", Some(&bob.token), json!({"name": "X", "member_ids": [alice.id]})).await?;
    assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "not_friends");

    // Presence: Alice going offline and online again tells Bob nothing.
    drop(wa);
    let mut wa = WsClient::connect(&app, &alice).await?;
    wb.expect_no("presence", QUIET).await?;
    drop(wb);
    wa.expect_no("presence", QUIET).await?;
    let (s, _) = app.get(&format!("/api/v1/friends/{}", alice.id), &bob.token).await?;
    assert_eq!(s, StatusCode::NOT_FOUND);
    Ok(())
}

async fn unblock_lets_them_befriend_and_talk_again(app: TestApp) -> TestResult {
    // (Strangers at first: a new request within a day of the last one would be too soon.)
    let (alice, bob) = (app.user("alice").await?, app.user("bob").await?);
    block(&app, &alice, &bob).await?;
    // A hidden request of Bob's does not surface when the block is lifted.
    let (s, _) = app.post("/api/v1/friend/request", Some(&bob.token), json!({"to_user_id": alice.id})).await?;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app.delete(&format!("/api/v1/blocks/{}", bob.id), &alice.token).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, inc) = app.get("/api/v1/friend/requests", &alice.token).await?;
    assert!(items(&inc)?.iter().all(|r| r["status"] == "expired"), "{inc}");
    let (_, l) = app.get("/api/v1/blocks", &alice.token).await?;
    assert!(items(&l)?.is_empty(), "{l}");
    // A request of Alice's is an ordinary pending one now (Bob's hidden one does not make it mutual).
    app.befriend(&alice, &bob).await?;
    let ab = conv_of(&alice, &bob);
    let mut wa = WsClient::connect(&app, &alice).await?;
    let mut wb = WsClient::connect(&app, &bob).await?;
    wb.say(&ab, "b1", "back again").await?;
    assert_eq!(wa.expect("msg").await?["body"], "back again");
    // Presence flows again.
    let p = wa.expect("presence").await?;
    assert_eq!((p["user_id"].as_i64(), p["online"].as_bool()), (Some(bob.id), Some(true)));
    drop(wb);
    let p = wa.expect("presence").await?;
    assert_eq!((p["user_id"].as_i64(), p["online"].as_bool()), (Some(bob.id), Some(false)));
    Ok(())
}

async fn block_list_pages_and_rules(app: TestApp) -> TestResult {
    let me = app.user("mee").await?;
    let got = app.put(&format!("/api/v1/blocks/{}", me.id), &me.token, json!({})).await?;
    assert_error(&got, StatusCode::BAD_REQUEST, "cannot_block_self");
    let got = app.put("/api/v1/blocks/999999", &me.token, json!({})).await?;
    assert_error(&got, StatusCode::NOT_FOUND, "user_not_found");
    let mut others = Vec::new();
    for n in ["uu1", "uu2", "uu3"] {
        let u = app.user(n).await?;
        block(&app, &me, &u).await?;
        others.push(u);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Again: idempotent, the first time is kept.
    let (_, before) = app.get("/api/v1/blocks", &me.token).await?;
    block(&app, &me, &others[0]).await?;
    let (_, after) = app.get("/api/v1/blocks", &me.token).await?;
    assert_eq!(before, after);
    let (s, p1) = app.get("/api/v1/blocks?size=2", &me.token).await?;
    assert_eq!(s, StatusCode::OK);
    let ids: Vec<i64> = items(&p1)?.iter().filter_map(|b| b["user"]["id"].as_i64()).collect();
    assert_eq!((ids, p1["has_more"].as_bool()), (vec![others[2].id, others[1].id], Some(true)));
    assert!(items(&p1)?[0]["blocked_at"].as_i64().is_some_and(|t| t > 0));
    let (_, p2) = app.get("/api/v1/blocks?size=2&page=2", &me.token).await?;
    let ids: Vec<i64> = items(&p2)?.iter().filter_map(|b| b["user"]["id"].as_i64()).collect();
    assert_eq!((ids, p2["has_more"].as_bool()), (vec![others[0].id], Some(false)));
    let got = app.get("/api/v1/blocks?size=0", &me.token).await?;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_size");
    // Unblocking someone not blocked is fine; a blocked user's own list is theirs alone.
    let (s, _) = app.delete(&format!("/api/v1/blocks/{}", me.id), &me.token).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, theirs) = app.get("/api/v1/blocks", &others[0].token).await?;
    assert!(items(&theirs)?.is_empty(), "{theirs}");
    Ok(())
}
