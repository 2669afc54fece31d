//! Group chat over HTTP and real WebSocket clients: permissions per role, mute rules, mentions,
//! invite policy and links, dissolve, system messages in sync, readers, and fan-out.

use std::time::Duration;

use actix_web::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, items, TestApp, TestResult, User};
use crate::store_tests;
use crate::ws_client::WsClient;

store_tests!(
    messages_mentions_and_system_messages_in_sync,
    readers_of_a_message,
    fan_out_to_hundreds_misses_nothing,
    recall_delete_and_dedup_in_groups,
);

mod rules {
    use super::*;
    crate::backend_tests!(
        create_list_and_settings_by_role,
        mute_rules,
        invite_policy_and_size_limit,
        invite_links,
        remove_leave_transfer_dissolve,
    );
}

/// Owner `o` with friends `names`, all in a new group; returns (group id, conv, owner, members).
pub(crate) async fn group_of(app: &TestApp, names: &[&str]) -> TestResult<(i64, String, User, Vec<User>)> {
    let o = app.user("owner").await?;
    let mut members = Vec::new();
    for n in names {
        let u = app.user(n).await?;
        app.befriend(&o, &u).await?;
        members.push(u);
    }
    let ids: Vec<i64> = members.iter().map(|u| u.id).collect();
    let (s, g) = app.post("/api/v1/groups", Some(&o.token), json!({"name": "Team", "member_ids": ids})).await?;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    assert_eq!((g["my_role"].as_str(), g["member_count"].as_i64()), (Some("owner"), Some(names.len() as i64 + 1)));
    let id = g["id"].as_i64().ok_or("id")?;
    Ok((id, format!("g:{id}"), o, members))
}

fn events(synced: &Value) -> Vec<String> {
    synced["messages"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter(|m| m["kind"] == "system")
                .filter_map(|m| m["body"].as_str().and_then(|b| serde_json::from_str::<Value>(b).ok()))
                .filter_map(|b| b["event"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn create_list_and_settings_by_role(app: TestApp) -> TestResult {
    let (id, _, o, m) = group_of(&app, &["anna", "ben"]).await?;
    let stranger = app.user("stranger").await?;
    // Members must be the creator's friends.
    let got = app.post("/api/v1/groups", Some(&o.token), json!({"name": "X", "member_ids": [stranger.id]})).await?;
    assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "not_friends");
    assert_error(
        &app.post("/api/v1/groups", Some(&o.token), json!({"name": ""})).await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_name",
    );

    let (_, mine) = app.get("/api/v1/groups", &m[0].token).await?;
    assert_eq!(items(&mine)?.iter().filter_map(|g| g["id"].as_i64()).collect::<Vec<_>>(), [id]);
    assert_error(
        &app.get(&format!("/api/v1/groups/{id}"), &stranger.token).await?,
        StatusCode::NOT_FOUND,
        "group_not_found",
    );
    assert_error(&app.get("/api/v1/groups/99999", &o.token).await?, StatusCode::NOT_FOUND, "group_not_found");

    // A plain member may not change settings; an admin may; only the owner appoints admins.
    let path = format!("/api/v1/groups/{id}");
    assert_error(&app.patch(&path, &m[0].token, json!({"name": "Mine"})).await?, StatusCode::FORBIDDEN, "not_allowed");
    assert_error(
        &app.put(&format!("{path}/admins/{}", m[1].id), &m[0].token, json!({})).await?,
        StatusCode::FORBIDDEN,
        "not_allowed",
    );
    let (s, _) = app.put(&format!("{path}/admins/{}", m[0].id), &o.token, json!({})).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, g) = app
        .patch(&path, &m[0].token, json!({"name": "Renamed", "announcement": "Hello all", "invite_policy": "admins"}))
        .await?;
    assert_eq!(s, StatusCode::OK, "{g}");
    assert_eq!(
        (g["name"].as_str(), g["announcement"].as_str(), g["invite_policy"].as_str()),
        (Some("Renamed"), Some("Hello all"), Some("admins"))
    );
    assert_error(
        &app.patch(&path, &o.token, json!({"invite_policy": "anyone"})).await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_invite_policy",
    );
    assert_error(
        &app.patch(&path, &stranger.token, json!({"name": "x"})).await?,
        StatusCode::NOT_FOUND,
        "group_not_found",
    );

    let (s, list) = app.get(&format!("{path}/members?size=2"), &m[1].token).await?;
    assert_eq!(s, StatusCode::OK);
    let roles: Vec<&str> = items(&list)?.iter().filter_map(|x| x["role"].as_str()).collect();
    assert_eq!((roles, list["has_more"].as_bool()), (vec!["owner", "admin"], Some(true)));
    // The admin is removed again by the owner.
    let (s, _) = app.delete(&format!("{path}/admins/{}", m[0].id), &o.token).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_error(&app.patch(&path, &m[0].token, json!({"name": "Again"})).await?, StatusCode::FORBIDDEN, "not_allowed");
    Ok(())
}

async fn messages_mentions_and_system_messages_in_sync(app: TestApp) -> TestResult {
    let (id, conv, o, m) = group_of(&app, &["anna", "ben", "cleo"]).await?;
    let mut wo = WsClient::connect(&app, &o).await?;
    let mut wa = WsClient::connect(&app, &m[0]).await?;
    let mut wb = WsClient::connect(&app, &m[1]).await?;
    // Cleo stays offline.
    let ack = wa.say(&conv, "g1", "hi all").await?;
    assert_eq!(ack["seq"].as_i64(), Some(1));
    for w in [&mut wo, &mut wb] {
        let msg = w.expect("msg").await?;
        assert_eq!(
            (msg["body"].as_str(), msg["from"].as_i64(), msg.get("mentioned")),
            (Some("hi all"), Some(m[0].id), None)
        );
    }
    // A mention flags only the mentioned member.
    wa.send(json!({"type": "send", "id": "g2", "conv": conv, "body": "@ben look", "mentions": [m[1].id]})).await?;
    wa.expect("ack").await?;
    assert_eq!(wb.expect("msg").await?["mentioned"], true);
    assert!(wo.expect("msg").await?.get("mentioned").is_none());
    // @all is for the owner and admins; mentions must be members.
    wa.send(json!({"type": "send", "id": "g3", "conv": conv, "body": "@all", "mention_all": true})).await?;
    assert_eq!(wa.expect("error").await?["code"], "mention_all_forbidden");
    wa.send(json!({"type": "send", "id": "g4", "conv": conv, "body": "@x", "mentions": [987654]})).await?;
    assert_eq!(wa.expect("error").await?["code"], "invalid_mentions");
    wo.send(json!({"type": "send", "id": "g5", "conv": conv, "body": "@all meeting", "mention_all": true})).await?;
    wo.expect("ack").await?;
    for w in [&mut wa, &mut wb] {
        let msg = w.expect("msg").await?;
        assert_eq!((msg["mention_all"].as_bool(), msg["mentioned"].as_bool()), (Some(true), Some(true)));
    }
    // The conversation list flags mentions until read.
    let (_, list) = app.get("/api/v1/conversations", &m[1].token).await?;
    let e = items(&list)?.iter().find(|c| c["conv"] == conv.as_str()).cloned().ok_or("group entry")?;
    assert_eq!(
        (e["kind"].as_str(), e["mentioned"].as_bool(), e["group"]["name"].as_str()),
        (Some("group"), Some(true), Some("Team"))
    );

    // Settings changes are system messages in the sequence.
    let path = format!("/api/v1/groups/{id}");
    app.patch(&path, &o.token, json!({"name": "Crew", "announcement": "Read this"})).await?;
    app.put(&format!("{path}/members/{}/mute", m[1].id), &o.token, json!({"until": app.clock.now_ms() + 60_000}))
        .await?;
    app.delete(&format!("{path}/members/{}", m[1].id), &o.token).await?;
    app.delete(&path, &o.token).await?;
    // Cleo, offline all along, sees everything in order.
    let mut wc = WsClient::connect(&app, &m[2]).await?;
    let page = wc.sync(&conv, 0, 50).await?;
    let seqs: Vec<i64> =
        page["messages"].as_array().ok_or("messages")?.iter().filter_map(|x| x["seq"].as_i64()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "gap-free");
    assert_eq!(events(&page), ["renamed", "announcement", "muted", "removed", "dissolved"]);
    // Dissolved: nothing new, history stays readable.
    wc.send(json!({"type": "send", "id": "late", "conv": conv, "body": "hello?"})).await?;
    assert_eq!(wc.expect("error").await?["code"], "group_dissolved");
    let (s, h) = app.get(&format!("/api/v1/conversations/{conv}/messages?limit=100"), &m[2].token).await?;
    assert_eq!((s, h["messages"][0]["body"].as_str()), (StatusCode::OK, Some("hi all")));
    Ok(())
}

async fn readers_of_a_message(app: TestApp) -> TestResult {
    let (id, conv, o, m) = group_of(&app, &["anna", "ben"]).await?;
    let mut wo = WsClient::connect(&app, &o).await?;
    let mut wa = WsClient::connect(&app, &m[0]).await?;
    wo.say(&conv, "r1", "read me").await?;
    wa.expect("msg").await?;
    wa.send(json!({"type": "read", "conv": conv, "seq": 1})).await?;
    // The read mark is stored before the readers list is asked for.
    wa.send(json!({"type": "ping"})).await?;
    wa.expect("pong").await?;
    let mut readers = Value::Null;
    for _ in 0..50 {
        let (s, r) = app.get(&format!("/api/v1/groups/{id}/messages/1/readers"), &o.token).await?;
        assert_eq!(s, StatusCode::OK, "{r}");
        if r["read"].as_array().is_some_and(|v| !v.is_empty()) {
            readers = r;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let ids = |k: &str| {
        readers[k].as_array().map(|v| v.iter().filter_map(|u| u["id"].as_i64()).collect::<Vec<_>>()).unwrap_or_default()
    };
    assert_eq!((ids("read"), ids("unread")), (vec![m[0].id], vec![m[1].id]));
    assert_error(
        &app.get(&format!("/api/v1/groups/{id}/messages/1/readers"), &m[1].token).await?,
        StatusCode::FORBIDDEN,
        "not_your_message",
    );
    assert_error(
        &app.get(&format!("/api/v1/groups/{id}/messages/9/readers"), &o.token).await?,
        StatusCode::NOT_FOUND,
        "message_not_found",
    );
    Ok(())
}

async fn fan_out_to_hundreds_misses_nothing(app: TestApp) -> TestResult {
    let o = app.user("owner").await?;
    let (_, g) = app.post("/api/v1/groups", Some(&o.token), json!({"name": "Big"})).await?;
    let id = g["id"].as_i64().ok_or("id")?;
    let conv = format!("g:{id}");
    let (_, inv) = app.post(&format!("/api/v1/groups/{id}/invites"), Some(&o.token), json!({"max_uses": 500})).await?;
    let token = inv["token"].as_str().ok_or("token")?.to_owned();
    const N: usize = 250;
    let mut clients = Vec::new();
    for i in 0..N {
        let u = app.user(&format!("member{i}")).await?;
        let (s, r) = app.post("/api/v1/groups/join", Some(&u.token), json!({"token": token})).await?;
        assert_eq!(s, StatusCode::OK, "{r}");
        clients.push(u);
    }
    let mut sockets = Vec::new();
    for u in &clients {
        sockets.push(WsClient::connect(&app, u).await?);
    }
    let mut wo = WsClient::connect(&app, &o).await?;
    const M: i64 = 5;
    let mut first = 0;
    for k in 0..M {
        let ack = wo.say(&conv, &format!("fan{k}"), &format!("to all {k}")).await?;
        if k == 0 {
            first = ack["seq"].as_i64().ok_or("seq")?;
        }
    }
    for w in &mut sockets {
        for k in 0..M {
            let msg = w.expect("msg").await?;
            assert_eq!(msg["seq"].as_i64(), Some(first + k));
        }
    }
    Ok(())
}

async fn recall_delete_and_dedup_in_groups(app: TestApp) -> TestResult {
    let (_, conv, o, m) = group_of(&app, &["anna"]).await?;
    let mut wo = WsClient::connect(&app, &o).await?;
    let mut wa = WsClient::connect(&app, &m[0]).await?;
    let a1 = wo.say(&conv, "same", "once").await?;
    let a2 = wo.say(&conv, "same", "once").await?;
    assert_eq!(a1["seq"], a2["seq"]);
    wa.expect("msg").await?;
    wa.expect_no("msg", Duration::from_millis(300)).await?;
    wo.send(json!({"type": "recall", "conv": conv, "seq": a1["seq"]})).await?;
    assert_eq!(wa.expect("recalled").await?["seq"], a1["seq"]);
    wo.say(&conv, "two", "second").await?;
    wa.send(json!({"type": "delete", "conv": conv, "seq": a1["seq"].as_i64().map(|s| s + 1)})).await?;
    wa.expect("deleted").await?;
    let mine = wa.sync(&conv, 0, 10).await?;
    let bodies: Vec<Option<&str>> = mine["messages"]
        .as_array()
        .ok_or("m")?
        .iter()
        .filter(|x| x["kind"] == "text")
        .map(|x| x["body"].as_str())
        .collect();
    assert_eq!(bodies, [None], "recalled body gone, deleted one hidden for me");
    let theirs = wo.sync(&conv, 0, 10).await?;
    assert_eq!(theirs["messages"].as_array().map(|v| v.iter().filter(|x| x["kind"] == "text").count()), Some(2));
    Ok(())
}

async fn mute_rules(app: TestApp) -> TestResult {
    let (id, conv, o, m) = group_of(&app, &["anna", "ben", "cleo"]).await?;
    let path = format!("/api/v1/groups/{id}");
    app.put(&format!("{path}/admins/{}", m[0].id), &o.token, json!({})).await?;
    let until = app.clock.now_ms() + 3_600_000;
    // Admins cannot mute the owner or other admins; members cannot mute anyone.
    assert_error(
        &app.put(&format!("{path}/members/{}/mute", o.id), &m[0].token, json!({"until": until})).await?,
        StatusCode::FORBIDDEN,
        "not_allowed",
    );
    app.put(&format!("{path}/admins/{}", m[2].id), &o.token, json!({})).await?;
    assert_error(
        &app.put(&format!("{path}/members/{}/mute", m[2].id), &m[0].token, json!({"until": until})).await?,
        StatusCode::FORBIDDEN,
        "not_allowed",
    );
    app.delete(&format!("{path}/admins/{}", m[2].id), &o.token).await?;
    assert_error(
        &app.put(&format!("{path}/members/{}/mute", m[2].id), &m[1].token, json!({"until": until})).await?,
        StatusCode::FORBIDDEN,
        "not_allowed",
    );
    assert_error(
        &app.put(&format!("{path}/members/{}/mute", m[1].id), &m[0].token, json!({"until": 5})).await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_until",
    );

    let (s, _) = app.put(&format!("{path}/members/{}/mute", m[1].id), &m[0].token, json!({"until": until})).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let mut wb = WsClient::connect(&app, &m[1]).await?;
    wb.send(json!({"type": "send", "id": "b1", "conv": conv, "body": "can I?"})).await?;
    assert_eq!(wb.expect("error").await?["code"], "muted");
    let (_, list) = app.get(&format!("{path}/members?size=10"), &o.token).await?;
    let muted = items(&list)?.iter().find(|x| x["user"]["id"] == m[1].id).and_then(|x| x["muted_until"].as_i64());
    assert_eq!(muted, Some(until));
    // The mute ends by itself...
    app.clock.advance(3_600_001);
    wb.say(&conv, "b2", "free again").await?;
    // ...or by an unmute.
    app.put(&format!("{path}/members/{}/mute", m[1].id), &o.token, json!({"until": app.clock.now_ms() + 60_000}))
        .await?;
    app.delete(&format!("{path}/members/{}/mute", m[1].id), &m[0].token).await?;
    wb.say(&conv, "b3", "unmuted").await?;

    // Mute-all silences everyone but the owner and admins.
    app.patch(&path, &o.token, json!({"mute_all": true})).await?;
    wb.send(json!({"type": "send", "id": "b4", "conv": conv, "body": "quiet?"})).await?;
    assert_eq!(wb.expect("error").await?["code"], "muted");
    let mut wa = WsClient::connect(&app, &m[0]).await?;
    wa.say(&conv, "a1", "admins may").await?;
    let mut wo = WsClient::connect(&app, &o).await?;
    wo.say(&conv, "o1", "owner may").await?;
    app.patch(&path, &o.token, json!({"mute_all": false})).await?;
    wb.say(&conv, "b5", "talking again").await?;
    Ok(())
}

async fn invite_policy_and_size_limit(app: TestApp) -> TestResult {
    let (id, _, o, m) = group_of(&app, &["anna", "ben"]).await?;
    let path = format!("/api/v1/groups/{id}/members");
    let (c, d) = (app.user("cleo").await?, app.user("dave").await?);
    app.befriend(&m[0], &c).await?;
    // Members invite their friends (not strangers).
    assert_error(
        &app.post(&path, Some(&m[0].token), json!({"user_ids": [d.id]})).await?,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_friends",
    );
    let (s, g) = app.post(&path, Some(&m[0].token), json!({"user_ids": [c.id]})).await?;
    assert_eq!((s, g["member_count"].as_i64()), (StatusCode::OK, Some(4)));
    // Policy `admins`: plain members may neither invite nor create links.
    app.patch(&format!("/api/v1/groups/{id}"), &o.token, json!({"invite_policy": "admins"})).await?;
    app.befriend(&m[1], &d).await?;
    assert_error(
        &app.post(&path, Some(&m[1].token), json!({"user_ids": [d.id]})).await?,
        StatusCode::FORBIDDEN,
        "not_allowed",
    );
    assert_error(
        &app.post(&format!("/api/v1/groups/{id}/invites"), Some(&m[1].token), json!({})).await?,
        StatusCode::FORBIDDEN,
        "not_allowed",
    );
    // A stranger cannot invite into a group they are not in.
    assert_error(
        &app.post(&path, Some(&d.token), json!({"user_ids": [d.id]})).await?,
        StatusCode::NOT_FOUND,
        "group_not_found",
    );
    Ok(())
}

async fn invite_links(app: TestApp) -> TestResult {
    let (id, _, o, m) = group_of(&app, &["anna"]).await?;
    let (u1, u2, u3) = (app.user("joiner1").await?, app.user("joiner2").await?, app.user("joiner3").await?);
    let (s, inv) = app
        .post(&format!("/api/v1/groups/{id}/invites"), Some(&m[0].token), json!({"max_uses": 1, "expires_in": 3600}))
        .await?;
    assert_eq!(s, StatusCode::CREATED, "{inv}");
    let token = inv["token"].as_str().ok_or("token")?.to_owned();
    assert!(inv["url"].as_str().is_some_and(|u| u.ends_with(&format!("/api/v1/groups/invites/{token}"))));
    assert!(inv["join_url"].as_str().is_some_and(|u| u.ends_with(&format!("/join/{token}"))), "{inv}");
    let (s, p) = app.get(&format!("/api/v1/groups/invites/{token}"), &u1.token).await?;
    assert_eq!((s, p["name"].as_str(), p["member_count"].as_i64()), (StatusCode::OK, Some("Team"), Some(2)));
    // A visitor who is not signed in sees the preview and the QR code too (the join page).
    let (s, p) = app.call(Method::GET, &format!("/api/v1/groups/invites/{token}"), None, None).await?;
    assert_eq!((s, p["name"].as_str()), (StatusCode::OK, Some("Team")));
    let (s, _) = app.raw_get(&format!("/api/v1/groups/invites/{token}/qr.svg"), "not-a-token").await?;
    assert_eq!(s, StatusCode::OK);
    // QR codes of the link.
    let (s, svg) = app.raw_get(&format!("/api/v1/groups/invites/{token}/qr.svg"), &u1.token).await?;
    assert_eq!(s, StatusCode::OK);
    assert!(String::from_utf8_lossy(&svg).contains("<svg"));
    let (s, png) = app.raw_get(&format!("/api/v1/groups/invites/{token}/qr.png"), &u1.token).await?;
    assert_eq!((s, png.get(..8)), (StatusCode::OK, Some(&b"\x89PNG\r\n\x1a\n"[..])));

    let (s, g) = app.post("/api/v1/groups/join", Some(&u1.token), json!({"token": token})).await?;
    assert_eq!((s, g["member_count"].as_i64(), g["my_role"].as_str()), (StatusCode::OK, Some(3), Some("member")));
    assert_error(
        &app.post("/api/v1/groups/join", Some(&u1.token), json!({"token": token})).await?,
        StatusCode::GONE,
        "invite_used_up",
    );
    assert_error(
        &app.post("/api/v1/groups/join", Some(&u2.token), json!({"token": token})).await?,
        StatusCode::GONE,
        "invite_used_up",
    );

    // Expired.
    let (_, inv) = app.post(&format!("/api/v1/groups/{id}/invites"), Some(&o.token), json!({"expires_in": 60})).await?;
    let t2 = inv["token"].as_str().ok_or("token")?.to_owned();
    app.clock.advance(61_000);
    assert_error(
        &app.post("/api/v1/groups/join", Some(&u2.token), json!({"token": t2})).await?,
        StatusCode::GONE,
        "invite_expired",
    );
    // Revoked (a member cannot revoke another's link; the owner can).
    let (_, inv) = app.post(&format!("/api/v1/groups/{id}/invites"), Some(&o.token), json!({})).await?;
    let t3 = inv["token"].as_str().ok_or("token")?.to_owned();
    assert_error(
        &app.delete(&format!("/api/v1/groups/{id}/invites/{t3}"), &m[0].token).await?,
        StatusCode::FORBIDDEN,
        "not_allowed",
    );
    let (s, _) = app.delete(&format!("/api/v1/groups/{id}/invites/{t3}"), &o.token).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    assert_error(
        &app.post("/api/v1/groups/join", Some(&u3.token), json!({"token": t3})).await?,
        StatusCode::GONE,
        "invite_revoked",
    );
    assert_error(
        &app.post("/api/v1/groups/join", Some(&u3.token), json!({"token": "nope"})).await?,
        StatusCode::NOT_FOUND,
        "invite_not_found",
    );
    Ok(())
}

async fn remove_leave_transfer_dissolve(app: TestApp) -> TestResult {
    let (id, conv, o, m) = group_of(&app, &["anna", "ben", "cleo"]).await?;
    let path = format!("/api/v1/groups/{id}");
    app.put(&format!("{path}/admins/{}", m[0].id), &o.token, json!({})).await?;
    app.put(&format!("{path}/admins/{}", m[2].id), &o.token, json!({})).await?;
    // Admins remove plain members only; members remove nobody; nobody removes the owner.
    assert_error(
        &app.delete(&format!("{path}/members/{}", m[2].id), &m[0].token).await?,
        StatusCode::FORBIDDEN,
        "not_allowed",
    );
    assert_error(
        &app.delete(&format!("{path}/members/{}", o.id), &m[0].token).await?,
        StatusCode::FORBIDDEN,
        "not_allowed",
    );
    assert_error(
        &app.delete(&format!("{path}/members/{}", 424242), &o.token).await?,
        StatusCode::NOT_FOUND,
        "member_not_found",
    );

    let mut wo = WsClient::connect(&app, &o).await?;
    let mut wb = WsClient::connect(&app, &m[1]).await?;
    wo.say(&conv, "before", "ben sees this").await?;
    wb.expect("msg").await?;
    let (s, _) = app.delete(&format!("{path}/members/{}", m[1].id), &m[0].token).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Ben hears of his removal (the system message, then the event), and then nothing more.
    let sys = wb.expect("msg").await?;
    assert!(sys["body"].as_str().is_some_and(|b| b.contains("removed")), "{sys}");
    assert_eq!(wb.expect("event").await?["event"], "group_removed");
    // Removed: nothing new reaches Ben, he cannot post, and his history ends at his removal.
    wo.say(&conv, "after", "ben must not see this").await?;
    wb.expect_no("msg", Duration::from_millis(400)).await?;
    wb.send(json!({"type": "send", "id": "x", "conv": conv, "body": "hello?"})).await?;
    assert_eq!(wb.expect("error").await?["code"], "unknown_conversation");
    let page = wb.sync(&conv, 0, 50).await?;
    let bodies: Vec<&str> = page["messages"]
        .as_array()
        .ok_or("m")?
        .iter()
        .filter(|x| x["kind"] == "text")
        .filter_map(|x| x["body"].as_str())
        .collect();
    assert_eq!(bodies, ["ben sees this"]);
    assert_eq!(events(&page).last().map(String::as_str), Some("removed"));
    assert_error(&app.get(&path, &m[1].token).await?, StatusCode::NOT_FOUND, "group_not_found");
    // His conversation list shows the group as it was when he left: no later preview.
    let (_, list) = app.get("/api/v1/conversations", &m[1].token).await?;
    let e = items(&list)?.iter().find(|c| c["conv"] == conv.as_str()).cloned().ok_or("entry")?;
    let last_seen = page["messages"].as_array().and_then(|v| v.last()).and_then(|x| x["seq"].as_i64());
    assert_eq!((e["max_seq"].as_i64(), e["last_message"]["preview"].as_str()), (last_seen, None));

    // The owner cannot leave before transferring.
    assert_error(
        &app.post(&format!("{path}/leave"), Some(&o.token), json!({})).await?,
        StatusCode::CONFLICT,
        "owner_cannot_leave",
    );
    assert_error(
        &app.post(&format!("{path}/transfer"), Some(&m[0].token), json!({"user_id": m[2].id})).await?,
        StatusCode::FORBIDDEN,
        "not_allowed",
    );
    let (s, g) = app.post(&format!("{path}/transfer"), Some(&o.token), json!({"user_id": m[2].id})).await?;
    assert_eq!((s, g["owner_id"].as_i64(), g["my_role"].as_str()), (StatusCode::OK, Some(m[2].id), Some("admin")));
    let (s, _) = app.post(&format!("{path}/leave"), Some(&o.token), json!({})).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Only the new owner dissolves.
    assert_error(&app.delete(&path, &m[0].token).await?, StatusCode::FORBIDDEN, "not_allowed");
    let mut wa = WsClient::connect(&app, &m[0]).await?;
    let (s, _) = app.delete(&path, &m[2].token).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let msg = wa.expect("msg").await?;
    assert_eq!(
        (msg["kind"].as_str(), msg["body"].as_str().map(|b| b.contains("dissolved"))),
        (Some("system"), Some(true))
    );
    assert_error(
        &app.patch(&path, &m[2].token, json!({"name": "zombie"})).await?,
        StatusCode::CONFLICT,
        "group_dissolved",
    );
    Ok(())
}

async fn concurrent_changes(backend: &str) -> TestResult {
    let app = TestApp::spawn_tuned(backend, |s| s.chat.max_group_members = 4).await?;
    let (id, conv, o, m) = group_of(&app, &["anna", "ben"]).await?;
    // Two transfers at once: one owner afterwards.
    let path = format!("/api/v1/groups/{id}/transfer");
    let (r1, r2) = futures_util::future::join(
        app.post(&path, Some(&o.token), json!({"user_id": m[0].id})),
        app.post(&path, Some(&o.token), json!({"user_id": m[1].id})),
    )
    .await;
    let mut st = [r1?.0, r2?.0];
    st.sort();
    assert_eq!(st, [StatusCode::OK, StatusCode::FORBIDDEN]);
    let (_, list) = app.get(&format!("/api/v1/groups/{id}/members?size=10"), &o.token).await?;
    assert_eq!(items(&list)?.iter().filter(|x| x["role"] == "owner").count(), 1);
    // Three joins at once into one free place: one joins, the link counts one use.
    let owner = if list["items"][0]["user"]["id"] == m[0].id { &m[0] } else { &m[1] };
    let (_, inv) = app.post(&format!("/api/v1/groups/{id}/invites"), Some(&owner.token), json!({})).await?;
    let token = inv["token"].as_str().ok_or("token")?.to_owned();
    let js = [app.user("joiner1").await?, app.user("joiner2").await?, app.user("joiner3").await?];
    let joins = futures_util::future::join_all(
        js.iter().map(|u| app.post("/api/v1/groups/join", Some(&u.token), json!({"token": token}))),
    )
    .await;
    let ok = joins.iter().filter(|r| r.as_ref().is_ok_and(|(s, _)| *s == StatusCode::OK)).count();
    assert_eq!(ok, 1, "{joins:?}");
    let (_, g) = app.get(&format!("/api/v1/groups/{id}"), &owner.token).await?;
    assert_eq!(g["member_count"].as_i64(), Some(4));
    let (_, invs) = app.get(&format!("/api/v1/groups/{id}/invites"), &owner.token).await?;
    assert_eq!(invs["items"][0]["uses"].as_i64(), Some(1));
    // The removal announcement is the removed member's last message, even under sends.
    let mut wo = WsClient::connect(&app, owner).await?;
    let victim = if owner.id == m[0].id { &o } else { &m[0] };
    let mut wv = WsClient::connect(&app, victim).await?;
    for i in 0..20 {
        wo.send(json!({"type": "send", "id": format!("b{i}"), "conv": conv, "body": "busy"})).await?;
    }
    let (s, _) = app.delete(&format!("/api/v1/groups/{id}/members/{}", victim.id), &owner.token).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // Live, the victim got exactly the messages up to their removal, ending with it.
    let mut live = Vec::new();
    loop {
        let msg = wv.expect("msg").await?;
        live.push(msg["seq"].as_i64().ok_or("seq")?);
        if msg["kind"] == "system" && msg["body"].as_str().is_some_and(|b| b.contains("removed")) {
            break;
        }
    }
    wv.expect_no("msg", Duration::from_millis(300)).await?;
    let page = wv.sync(&conv, 0, 100).await?;
    let last = page["messages"].as_array().and_then(|v| v.last()).cloned().ok_or("last")?;
    assert_eq!(last["kind"], "system");
    assert!(last["body"].as_str().is_some_and(|b| b.contains("removed")), "{last}");
    let synced: Vec<i64> = page["messages"].as_array().ok_or("m")?.iter().filter_map(|x| x["seq"].as_i64()).collect();
    assert!(synced.ends_with(&live), "live {live:?} vs synced {synced:?}");
    Ok(())
}

#[actix_rt::test]
async fn concurrent_changes_are_serialized_sqlite() -> TestResult {
    concurrent_changes("sqlite").await
}

#[actix_rt::test]
async fn concurrent_changes_are_serialized_postgres() -> TestResult {
    concurrent_changes("postgres").await
}
