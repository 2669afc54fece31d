//! Real-time 1:1 chat over real WebSocket clients: delivery, order, dedup, sync, receipts,
//! recall, delete-for-me, typing, presence, conversations, authorization and limits.

use std::time::Duration;

use actix_web::http::StatusCode;
use awc::ws;
use serde_json::{json, Value};

use crate::helpers::{assert_error, TestApp, TestResult, User};
use crate::store_tests;
use crate::ws_client::{conv_of, WsClient};

store_tests!(
    delivers_to_every_device,
    seqs_are_unique_and_ordered_under_concurrent_senders,
    resends_are_acked_once,
    resends_are_deduplicated_across_a_restart,
    offline_then_sync_misses_nothing,
    receipts_and_read_sync_across_devices,
    recall_inside_and_outside_the_window,
    delete_for_me_hides_for_me_only,
    http_history_pages_both_ways,
);

/// Session-level behaviour that does not touch the message store's code paths in a
/// store-specific way: SQL backends only.
mod session {
    use super::*;
    crate::backend_tests!(
        typing_is_forwarded_not_stored,
        presence_reaches_friends,
        friend_events_are_pushed,
        strangers_and_forged_ids_are_refused,
        malformed_and_oversized_frames,
        conversation_list_order_unread_pin_clear_hide,
        same_device_replaces_and_logout_closes,
    );
}

async fn pair(app: &TestApp) -> TestResult<(User, User, String)> {
    let (a, b) = (app.user("alice").await?, app.user("bob").await?);
    app.befriend(&a, &b).await?;
    let conv = conv_of(&a, &b);
    Ok((a, b, conv))
}

fn seqs(synced: &Value) -> Vec<i64> {
    synced["messages"].as_array().map(|v| v.iter().filter_map(|m| m["seq"].as_i64()).collect()).unwrap_or_default()
}

async fn delivers_to_every_device(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let (a2, b2) = (app.login("alice").await?, app.login("bob").await?);
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wa2 = WsClient::connect(&app, &a2).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    let mut wb2 = WsClient::connect(&app, &b2).await?;

    let ack = wa.say(&conv, "c-1", "hello bob").await?;
    assert_eq!((ack["seq"].as_i64(), ack["conv"].as_str()), (Some(1), Some(conv.as_str())));
    assert!(ack["ts"].as_i64().is_some());
    for w in [&mut wb, &mut wb2] {
        let m = w.expect("msg").await?;
        assert_eq!(
            (m["seq"].as_i64(), m["body"].as_str(), m["from"].as_i64()),
            (Some(1), Some("hello bob"), Some(a.id))
        );
        assert_eq!(m["id"], "c-1");
        assert!(m.get("silent").is_none(), "{m}");
    }
    // The sender's other device gets it too (silently); the sending device does not.
    let m = wa2.expect("msg").await?;
    assert_eq!((m["seq"].as_i64(), m["silent"].as_bool()), (Some(1), Some(true)));
    wa.expect_no("msg", Duration::from_millis(300)).await?;

    // Do-not-disturb on the friend: messages still arrive, flagged silent.
    let (s, _) = app.patch(&format!("/api/v1/friends/{}", a.id), &b.token, json!({"dnd": true})).await?;
    assert_eq!(s, StatusCode::OK);
    wa.say(&conv, "c-2", "still there?").await?;
    let m = wb.expect("msg").await?;
    assert_eq!((m["seq"].as_i64(), m["silent"].as_bool()), (Some(2), Some(true)));
    Ok(())
}

async fn seqs_are_unique_and_ordered_under_concurrent_senders(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    const N: usize = 40;
    // Both send without waiting for acks.
    for i in 0..N {
        wa.send(json!({"type": "send", "id": format!("a{i}"), "conv": conv, "body": format!("a{i}")})).await?;
        wb.send(json!({"type": "send", "id": format!("b{i}"), "conv": conv, "body": format!("b{i}")})).await?;
    }
    let mut acked = Vec::new();
    for (w, prefix) in [(&mut wa, "a"), (&mut wb, "b")] {
        let mut got = Vec::new();
        while got.len() < N {
            let ack = w.expect("ack").await?;
            assert!(ack["id"].as_str().is_some_and(|i| i.starts_with(prefix)));
            got.push((ack["id"].as_str().unwrap_or_default().to_owned(), ack["seq"].as_i64().ok_or("seq")?));
        }
        // Per sender, seq follows send order.
        let order: Vec<usize> = got.iter().filter_map(|(id, _)| id[1..].parse().ok()).collect();
        let mut by_seq = got.clone();
        by_seq.sort_by_key(|(_, s)| *s);
        let sorted: Vec<usize> = by_seq.iter().filter_map(|(id, _)| id[1..].parse().ok()).collect();
        assert_eq!(sorted, (0..N).collect::<Vec<_>>(), "per-sender order {order:?}");
        acked.extend(got.into_iter().map(|(_, s)| s));
    }
    acked.sort();
    assert_eq!(acked, (1..=(2 * N) as i64).collect::<Vec<_>>(), "unique, gap-free seqs");
    // Each side received the other's messages in increasing seq order.
    let mut last = 0;
    let mut n = 0;
    while n < N {
        let m = wb.expect("msg").await?;
        let s = m["seq"].as_i64().ok_or("seq")?;
        assert!(s > last, "{s} after {last}");
        last = s;
        n += 1;
    }
    let all = wa.sync(&conv, 0, 200).await?;
    assert_eq!(seqs(&all), (1..=(2 * N) as i64).collect::<Vec<_>>());
    Ok(())
}

async fn resends_are_acked_once(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    // Two sends of one id back to back (the second while the first may be in flight), then a
    // third after the ack: one message, one seq, the same ack three times.
    for _ in 0..2 {
        wa.send(json!({"type": "send", "id": "dup", "conv": conv, "body": "once"})).await?;
    }
    let (a1, a2) = (wa.expect("ack").await?, wa.expect("ack").await?);
    let a3 = wa.say(&conv, "dup", "changed body is ignored").await?;
    assert_eq!((a1["seq"].as_i64(), a2["seq"].as_i64(), a3["seq"].as_i64()), (Some(1), Some(1), Some(1)));
    assert_eq!(a1["ts"], a3["ts"]);
    wb.expect("msg").await?;
    wb.expect_no("msg", Duration::from_millis(300)).await?;
    let next = wa.say(&conv, "other", "next").await?;
    assert_eq!(next["seq"].as_i64(), Some(2));
    let all = wb.sync(&conv, 0, 10).await?;
    assert_eq!(seqs(&all), [1, 2]);
    assert_eq!(all["messages"][0]["body"], "once");
    Ok(())
}

async fn resends_are_deduplicated_across_a_restart(app: TestApp) -> TestResult {
    let (a, _b, conv) = pair(&app).await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let first = wa.say(&conv, "before-restart", "hi").await?;
    wa.say(&conv, "second", "there").await?;
    drop(wa);
    let app = app.restart().await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let again = wa.say(&conv, "before-restart", "hi").await?;
    assert_eq!((again["seq"].clone(), again["ts"].clone()), (first["seq"].clone(), first["ts"].clone()));
    let next = wa.say(&conv, "after-restart", "new").await?;
    assert_eq!(next["seq"].as_i64(), Some(3), "seqs continue from the store");
    assert_eq!(seqs(&wa.sync(&conv, 0, 10).await?), [1, 2, 3]);
    Ok(())
}

async fn offline_then_sync_misses_nothing(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    for i in 1..=12 {
        wa.say(&conv, &format!("m{i}"), &format!("body {i}")).await?;
    }
    // Bob comes online and catches up page by page, from his last seen seq.
    let mut wb = WsClient::connect(&app, &b).await?;
    let mut seen: Vec<i64> = Vec::new();
    let mut after = 0;
    loop {
        let page = wb.sync(&conv, after, 5).await?;
        assert_eq!(page["max_seq"].as_i64(), Some(12));
        let s = seqs(&page);
        seen.extend(&s);
        after = *s.last().unwrap_or(&after);
        if page["has_more"] != true {
            break;
        }
    }
    assert_eq!(seen, (1..=12).collect::<Vec<_>>());
    let page = wb.sync(&conv, 12, 5).await?;
    assert!(seqs(&page).is_empty());
    assert_eq!(page["has_more"], false);
    // New messages now arrive live, after the synced ones.
    wa.say(&conv, "m13", "live").await?;
    assert_eq!(wb.expect("msg").await?["seq"].as_i64(), Some(13));
    Ok(())
}

async fn receipts_and_read_sync_across_devices(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let b2 = app.login("bob").await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    let mut wb2 = WsClient::connect(&app, &b2).await?;
    for i in 1..=3 {
        wa.say(&conv, &format!("r{i}"), "x").await?;
    }
    for _ in 0..3 {
        wb.expect("msg").await?;
    }
    wb.send(json!({"type": "delivered", "conv": conv, "seq": 3})).await?;
    let d = wa.expect("delivered").await?;
    assert_eq!((d["seq"].as_i64(), d["by"].as_i64()), (Some(3), Some(b.id)));
    // A lower delivered mark is not news.
    wb.send(json!({"type": "delivered", "conv": conv, "seq": 2})).await?;
    wa.expect_no("delivered", Duration::from_millis(300)).await?;

    wb.send(json!({"type": "read", "conv": conv, "seq": 2})).await?;
    let r = wa.expect("read").await?;
    assert_eq!((r["seq"].as_i64(), r["by"].as_i64()), (Some(2), Some(b.id)));
    let mark = wb2.expect("read_mark").await?;
    assert_eq!((mark["seq"].as_i64(), mark["unread"].as_i64()), (Some(2), Some(1)));
    wb.expect_no("read_mark", Duration::from_millis(200)).await?;

    let (_, list) = app.get("/api/v1/conversations", &b.token).await?;
    assert_eq!((list["items"][0]["read_seq"].as_i64(), list["items"][0]["unread"].as_i64()), (Some(2), Some(1)));
    // The sender's list carries the peer's marks (ticks for a client that missed the receipts).
    let (_, list) = app.get("/api/v1/conversations", &a.token).await?;
    let entry = &list["items"][0];
    assert_eq!(entry["peer_read_seq"].as_i64(), Some(2), "{entry}");
    assert!(entry["peer_delivered_seq"].as_i64().is_some_and(|d| d >= 2), "{entry}");
    // Reading past the end clamps to the last message.
    wb2.send(json!({"type": "read", "conv": conv, "seq": 99})).await?;
    let mark = wb.expect("read_mark").await?;
    assert_eq!((mark["seq"].as_i64(), mark["unread"].as_i64()), (Some(3), Some(0)));
    Ok(())
}

async fn recall_inside_and_outside_the_window(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    wa.say(&conv, "x1", "oops").await?;
    wa.say(&conv, "x2", "fine").await?;
    wb.say(&conv, "y1", "bob's").await?;

    // Someone else's message, a missing one.
    wb.send(json!({"type": "recall", "conv": conv, "seq": 1})).await?;
    assert_eq!(wb.expect("error").await?["code"], "not_your_message");
    wa.send(json!({"type": "recall", "conv": conv, "seq": 42})).await?;
    assert_eq!(wa.expect("error").await?["code"], "message_not_found");

    wa.send(json!({"type": "recall", "conv": conv, "seq": 1})).await?;
    for w in [&mut wa, &mut wb] {
        let r = w.expect("recalled").await?;
        assert_eq!(r["seq"].as_i64(), Some(1));
    }
    let page = wb.sync(&conv, 0, 10).await?;
    let m1 = &page["messages"][0];
    assert_eq!((m1["seq"].as_i64(), m1.get("body"), m1["recalled"].as_bool()), (Some(1), None, Some(true)));
    assert_eq!(page["messages"][1]["body"], "fine");
    wa.send(json!({"type": "recall", "conv": conv, "seq": 1})).await?;
    assert_eq!(wa.expect("error").await?["code"], "already_recalled");

    // Two minutes later it is too late.
    app.clock.advance(120_001);
    wa.send(json!({"type": "recall", "conv": conv, "seq": 2})).await?;
    assert_eq!(wa.expect("error").await?["code"], "recall_window_passed");
    assert_eq!(wb.sync(&conv, 1, 1).await?["messages"][0]["body"], "fine");
    Ok(())
}

async fn delete_for_me_hides_for_me_only(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let a2 = app.login("alice").await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wa2 = WsClient::connect(&app, &a2).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    for i in 1..=3 {
        wa.say(&conv, &format!("d{i}"), &format!("{i}")).await?;
    }
    wa.send(json!({"type": "delete", "conv": conv, "seq": 2})).await?;
    for w in [&mut wa, &mut wa2] {
        assert_eq!(w.expect("deleted").await?["seq"].as_i64(), Some(2));
    }
    assert_eq!(seqs(&wa.sync(&conv, 0, 10).await?), [1, 3]);
    assert_eq!(seqs(&wb.sync(&conv, 0, 10).await?), [1, 2, 3]);
    // Over HTTP as well, and a missing seq is refused.
    let (s, _) = app.delete(&format!("/api/v1/conversations/{conv}/messages/3"), &b.token).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(seqs(&wb.sync(&conv, 0, 10).await?), [1, 2]);
    let got = app.delete(&format!("/api/v1/conversations/{conv}/messages/77"), &b.token).await?;
    assert_error(&got, StatusCode::NOT_FOUND, "message_not_found");
    Ok(())
}

async fn http_history_pages_both_ways(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    for i in 1..=7 {
        wa.say(&conv, &format!("h{i}"), &format!("{i}")).await?;
    }
    let get = |q: String| {
        let app = &app;
        let token = b.token.clone();
        let conv = conv.clone();
        async move { app.get(&format!("/api/v1/conversations/{conv}/messages?{q}"), &token).await }
    };
    let (s, latest) = get("limit=3".into()).await?;
    assert_eq!(s, StatusCode::OK, "{latest}");
    assert_eq!((seqs(&latest), latest["has_more"].as_bool()), (vec![5, 6, 7], Some(true)));
    let (_, older) = get("before_seq=5&limit=3".into()).await?;
    assert_eq!((seqs(&older), older["has_more"].as_bool()), (vec![2, 3, 4], Some(true)));
    let (_, oldest) = get("before_seq=2&limit=3".into()).await?;
    assert_eq!((seqs(&oldest), oldest["has_more"].as_bool()), (vec![1], Some(false)));
    let (_, newer) = get("after_seq=4&limit=2".into()).await?;
    assert_eq!((seqs(&newer), newer["has_more"].as_bool()), (vec![5, 6], Some(true)));
    assert_error(&get("after_seq=1&before_seq=3".into()).await?, StatusCode::BAD_REQUEST, "invalid_page");
    assert_error(&get("limit=0".into()).await?, StatusCode::BAD_REQUEST, "invalid_limit");
    assert_error(&get("limit=100000".into()).await?, StatusCode::BAD_REQUEST, "invalid_limit");
    // Not my conversation.
    let c = app.user("carol").await?;
    let got = app.get(&format!("/api/v1/conversations/{conv}/messages"), &c.token).await?;
    assert_error(&got, StatusCode::NOT_FOUND, "conversation_not_found");
    Ok(())
}

async fn typing_is_forwarded_not_stored(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    wa.send(json!({"type": "typing", "conv": conv})).await?;
    let t = wb.expect("typing").await?;
    assert_eq!((t["conv"].as_str(), t["from"].as_i64()), (Some(conv.as_str()), Some(a.id)));
    wa.expect_no("typing", Duration::from_millis(200)).await?;
    assert!(seqs(&wb.sync(&conv, 0, 10).await?).is_empty());
    Ok(())
}

async fn presence_reaches_friends(app: TestApp) -> TestResult {
    let (a, b, _) = pair(&app).await?;
    let c = app.user("carol").await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wc = WsClient::connect(&app, &c).await?;
    let (_, f) = app.get(&format!("/api/v1/friends/{}", b.id), &a.token).await?;
    assert_eq!(f["online"], false);
    let wb = WsClient::connect(&app, &b).await?;
    let p = wa.expect("presence").await?;
    assert_eq!((p["user_id"].as_i64(), p["online"].as_bool()), (Some(b.id), Some(true)));
    let (_, f) = app.get("/api/v1/friends", &a.token).await?;
    assert_eq!(f["items"][0]["online"], true);
    // A second device is not a change; closing the last one is.
    let b2 = app.login("bob").await?;
    let wb2 = WsClient::connect(&app, &b2).await?;
    wa.expect_no("presence", Duration::from_millis(300)).await?;
    drop(wb);
    wa.expect_no("presence", Duration::from_millis(300)).await?;
    drop(wb2);
    let p = wa.expect("presence").await?;
    assert_eq!((p["user_id"].as_i64(), p["online"].as_bool()), (Some(b.id), Some(false)));
    // Carol is not Bob's friend: she heard nothing.
    wc.expect_no("presence", Duration::from_millis(200)).await?;
    Ok(())
}

async fn friend_events_are_pushed(app: TestApp) -> TestResult {
    let (a, b) = (app.user("alice").await?, app.user("bob").await?);
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    let (_, r) =
        app.post("/api/v1/friend/request", Some(&a.token), json!({"to_user_id": b.id, "message": "hey"})).await?;
    let e = wb.expect("event").await?;
    assert_eq!((e["event"].as_str(), e["data"]["message"].as_str()), (Some("friend_request"), Some("hey")));
    assert_eq!(e["data"]["user"]["id"], a.id);
    app.put(&format!("/api/v1/friend/request/{}", r["id"]), &b.token, json!({"action": "accept"})).await?;
    let e = wa.expect("event").await?;
    assert_eq!((e["event"].as_str(), e["data"]["user"]["id"].as_i64()), (Some("friend_accepted"), Some(b.id)));
    // Now they can chat; after a delete they cannot.
    let conv = conv_of(&a, &b);
    wa.say(&conv, "1", "yay").await?;
    app.delete(&format!("/api/v1/friends/{}", b.id), &a.token).await?;
    let e = wb.expect("event").await?;
    assert_eq!((e["event"].as_str(), e["data"]["user_id"].as_i64()), (Some("friend_removed"), Some(a.id)));
    wa.send(json!({"type": "send", "id": "2", "conv": conv, "body": "still?"})).await?;
    let err = wa.expect("error").await?;
    assert_eq!((err["code"].as_str(), err["id"].as_str()), (Some("not_friends"), Some("2")));
    // History stays readable.
    assert_eq!(seqs(&wb.sync(&conv, 0, 10).await?), [1]);
    Ok(())
}

async fn strangers_and_forged_ids_are_refused(app: TestApp) -> TestResult {
    let (a, b, _) = pair(&app).await?;
    let s = app.user("stranger").await?;
    let mut ws = WsClient::connect(&app, &s).await?;
    // A stranger's 1:1 conversation with Alice: a valid id but not friends.
    ws.send(json!({"type": "send", "id": "s1", "conv": conv_of(&s, &a), "body": "hi"})).await?;
    assert_eq!(ws.expect("error").await?["code"], "not_friends");
    // Alice and Bob's conversation: not hers.
    let ab = conv_of(&a, &b);
    for frame in [
        json!({"type": "send", "id": "s2", "conv": ab, "body": "let me in"}),
        json!({"type": "sync", "conv": ab, "after_seq": 0}),
        json!({"type": "read", "conv": ab, "seq": 1}),
        json!({"type": "recall", "conv": ab, "seq": 1}),
        json!({"type": "delete", "conv": ab, "seq": 1}),
        json!({"type": "typing", "conv": ab}),
        json!({"type": "send", "id": "s3", "conv": format!("d:{}:{}", s.id, s.id), "body": "me"}),
        json!({"type": "send", "id": "s4", "conv": "d:1", "body": "x"}),
        json!({"type": "send", "id": "s5", "conv": "g:1", "body": "x"}),
        json!({"type": "send", "id": "s6", "conv": "../../etc", "body": "x"}),
    ] {
        ws.send(frame.clone()).await?;
        let e = ws.expect("error").await?;
        assert_eq!(e["code"], "unknown_conversation", "{frame}: {e}");
    }
    // HTTP: other people's conversations are 404 whatever the verb.
    for (m, p) in
        [("GET", format!("/api/v1/conversations/{ab}/messages")), ("DELETE", format!("/api/v1/conversations/{ab}"))]
    {
        let got = app.call(m.parse()?, &p, Some(&s.token), None).await?;
        assert_error(&got, StatusCode::NOT_FOUND, "conversation_not_found");
    }
    let got = app.post("/api/v1/conversations", Some(&s.token), json!({"peer_user_id": a.id})).await?;
    assert_error(&got, StatusCode::FORBIDDEN, "not_friends");
    // No token, a wrong token: no upgrade.
    let url = format!("{}/ws", app.base.replace("http://", "ws://"));
    for auth in [None, Some("Bearer nope")] {
        let mut req = awc::Client::new().ws(url.clone());
        if let Some(h) = auth {
            req = req.header("Authorization", h);
        }
        let err = req.connect().await.err().ok_or("upgrade without a valid token")?;
        assert!(err.to_string().contains("401") || format!("{err:?}").contains("401"), "{err:?}");
    }
    // `?token=` works for browsers.
    let q = format!("{url}?token={}", s.token);
    let (_, _conn) = awc::Client::new().ws(q).connect().await.map_err(|e| format!("{e}"))?;
    Ok(())
}

async fn malformed_and_oversized_frames(app: TestApp) -> TestResult {
    let (a, _b, conv) = pair(&app).await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    wa.send_raw(ws::Message::Text("{not json".into())).await?;
    assert_eq!(wa.expect("error").await?["code"], "invalid_frame");
    wa.send(json!({"type": "launch_missiles"})).await?;
    assert_eq!(wa.expect("error").await?["code"], "invalid_frame");
    // A send with neither a body nor an attachment is empty (the body may be left out only
    // when an attachment carries the message).
    wa.send(json!({"type": "send", "id": "k", "conv": conv})).await?;
    let e = wa.expect("error").await?;
    assert_eq!((e["code"].as_str(), e["id"].as_str()), (Some("empty_message"), Some("k")));
    wa.send(json!({"type": "send", "id": "k2", "conv": 7, "body": "x"})).await?;
    let e = wa.expect("error").await?;
    assert_eq!((e["code"].as_str(), e["id"].as_str()), (Some("invalid_frame"), Some("k2")));
    wa.send(json!({"type": "send", "id": 5, "conv": conv, "body": "x"})).await?;
    assert_eq!(wa.expect("error").await?["code"], "invalid_frame");
    wa.send_raw(ws::Message::Binary(vec![1u8, 2, 3].into())).await?;
    assert_eq!(wa.expect("error").await?["code"], "unsupported_frame");
    wa.send(json!({"type": "send", "id": "long", "conv": conv, "body": "x".repeat(4001)})).await?;
    assert_eq!(wa.expect("error").await?["code"], "message_too_long");
    wa.send(json!({"type": "send", "id": "", "conv": conv, "body": "x"})).await?;
    assert_eq!(wa.expect("error").await?["code"], "invalid_id");
    wa.send(json!({"type": "send", "id": "e", "conv": conv, "body": "   "})).await?;
    assert_eq!(wa.expect("error").await?["code"], "empty_message");
    // 4,000 characters (multi-byte) are fine.
    wa.say(&conv, "max", &"ü".repeat(4000)).await?;
    wa.send(json!({"type": "ping", "nonce": "n1"})).await?;
    assert_eq!(wa.expect("pong").await?["nonce"], "n1");
    // A frame over 64 KiB closes the connection with 1009.
    wa.send_raw(ws::Message::Text("x".repeat(70 * 1024).into())).await?;
    assert_eq!(wa.expect_close().await?, 1009);
    Ok(())
}

async fn conversation_list_order_unread_pin_clear_hide(app: TestApp) -> TestResult {
    let me = app.user("meme").await?;
    let (x, y) = (app.user("xavier").await?, app.user("yvonne").await?);
    app.befriend(&me, &x).await?;
    app.befriend(&me, &y).await?;
    let (cx, cy) = (conv_of(&me, &x), conv_of(&me, &y));
    // Opening creates an empty entry.
    let (s, e) = app.post("/api/v1/conversations", Some(&me.token), json!({"peer_user_id": x.id})).await?;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(
        (e["conv"].as_str(), e["max_seq"].as_i64(), e["peer"]["id"].as_i64()),
        (Some(cx.as_str()), Some(0), Some(x.id))
    );

    let mut wx = WsClient::connect(&app, &x).await?;
    let mut wy = WsClient::connect(&app, &y).await?;
    wx.say(&cx, "x1", "from x").await?;
    app.clock.advance(1_000);
    wy.say(&cy, "y1", "from y").await?;
    wy.say(&cy, "y2", "again y").await?;
    let (_, list) = app.get("/api/v1/conversations", &me.token).await?;
    let convs: Vec<&str> = list["items"].as_array().ok_or("items")?.iter().filter_map(|c| c["conv"].as_str()).collect();
    assert_eq!(convs, [cy.as_str(), cx.as_str()], "newest first");
    let top = &list["items"][0];
    assert_eq!((top["unread"].as_i64(), top["max_seq"].as_i64()), (Some(2), Some(2)));
    assert_eq!(top["last_message"]["preview"], "again y");
    assert_eq!(top["peer"]["username"], "yvonne");

    // Pinned first.
    let (s, e) = app.patch(&format!("/api/v1/conversations/{cx}"), &me.token, json!({"pinned": true})).await?;
    assert_eq!((s, e["pinned"].as_bool()), (StatusCode::OK, Some(true)));
    let (_, list) = app.get("/api/v1/conversations", &me.token).await?;
    assert_eq!(list["items"][0]["conv"], cx.as_str());

    // Clear history: nothing before the watermark in sync, nothing unread.
    let (s, c) = app.delete(&format!("/api/v1/conversations/{cy}/messages"), &me.token).await?;
    assert_eq!((s, c["cleared_seq"].as_i64()), (StatusCode::OK, Some(2)));
    let mut wme = WsClient::connect(&app, &me).await?;
    assert!(seqs(&wme.sync(&cy, 0, 10).await?).is_empty());
    let (_, list) = app.get("/api/v1/conversations", &me.token).await?;
    let ey = list["items"].as_array().ok_or("items")?.iter().find(|c| c["conv"] == cy.as_str()).cloned().ok_or("cy")?;
    assert_eq!((ey["unread"].as_i64(), ey["last_message"].is_null()), (Some(0), true));
    // Yvonne still has her history.
    assert_eq!(seqs(&wy.sync(&cy, 0, 10).await?), [1, 2]);

    // Hide: gone from my list until a new message arrives.
    let (s, _) = app.delete(&format!("/api/v1/conversations/{cy}"), &me.token).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, list) = app.get("/api/v1/conversations", &me.token).await?;
    assert!(!list["items"].as_array().ok_or("items")?.iter().any(|c| c["conv"] == cy.as_str()));
    wy.say(&cy, "y3", "back").await?;
    let (_, list) = app.get("/api/v1/conversations", &me.token).await?;
    let ey =
        list["items"].as_array().ok_or("items")?.iter().find(|c| c["conv"] == cy.as_str()).cloned().ok_or("cy back")?;
    assert_eq!((ey["unread"].as_i64(), ey["last_message"]["preview"].as_str()), (Some(1), Some("back")));
    // Conversation dnd: Yvonne's messages arrive silent for me.
    app.patch(&format!("/api/v1/conversations/{cy}"), &me.token, json!({"dnd": true})).await?;
    wy.say(&cy, "y4", "shh").await?;
    let m = wme.expect("msg").await?;
    let m = if m["seq"] == 3 { wme.expect("msg").await? } else { m };
    assert_eq!((m["seq"].as_i64(), m["silent"].as_bool()), (Some(4), Some(true)));
    assert_error(
        &app.patch("/api/v1/conversations/d:1:999999", &me.token, json!({"pinned": true})).await?,
        StatusCode::NOT_FOUND,
        "conversation_not_found",
    );
    Ok(())
}

async fn same_device_replaces_and_logout_closes(app: TestApp) -> TestResult {
    let (a, _b, _) = pair(&app).await?;
    let mut first = WsClient::connect(&app, &a).await?;
    let mut second = WsClient::connect(&app, &a).await?;
    assert_eq!(first.expect_close().await?, 4001);
    let (s, _) = app.post("/api/v1/auth/logout", Some(&a.token), json!({})).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_eq!(second.expect_close().await?, 4003);
    Ok(())
}

/// An owner stops after `chat.conversation_idle_secs` without traffic; frames that arrive just as
/// it stops are queued by its registry and served by the next owner (the passivation
/// handshake), never answered `unavailable`.
#[actix_rt::test]
async fn frames_racing_an_idle_stop_are_never_lost_sqlite() -> TestResult {
    frames_racing_an_idle_stop_are_never_lost("sqlite").await
}

#[actix_rt::test]
async fn frames_racing_an_idle_stop_are_never_lost_postgres() -> TestResult {
    frames_racing_an_idle_stop_are_never_lost("postgres").await
}

async fn frames_racing_an_idle_stop_are_never_lost(backend: &str) -> TestResult {
    let app = TestApp::spawn_tuned(backend, |s| s.chat.conversation_idle_secs = 1).await?;
    let (a, b) = (app.user("alice").await?, app.user("bob").await?);
    app.befriend(&a, &b).await?;
    let conv = conv_of(&a, &b);
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    let metric = |name: &'static str| {
        let state = app.state.clone();
        move || {
            state
                .hub
                .metrics
                .render(Default::default())
                .lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
        }
    };
    let passivations = metric("im_owner_passivations_total ");
    let mut seq = 0;
    // Sends spread around the idle limit: before, at and after the owner's idle check.
    for i in 0..16u64 {
        actix_rt::time::sleep(Duration::from_millis(900 + (i % 4) * 300)).await;
        let ack = wa.say(&conv, &format!("m{i}"), "still there?").await?;
        let s = ack["seq"].as_i64().ok_or("seq")?;
        assert_eq!(s, seq + 1, "one sequence across owners: {ack}");
        seq = s;
        let m = wb.expect("msg").await?;
        assert_eq!(m["seq"], s);
        // The read receipt goes through the owner too.
        wb.send(json!({"type": "read", "conv": conv, "seq": s})).await?;
        let r = wa.expect("read").await?;
        assert_eq!(r["seq"], s);
    }
    let stops: u64 = passivations().and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(stops >= 2, "the owner stopped and started again between the sends ({stops} stops)");
    Ok(())
}
