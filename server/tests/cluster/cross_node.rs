//! A user on node A chats with a user on node B exactly as if both were on one node.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{Cluster, ADMIN};
use crate::helpers::{Http, TestResult, User};
use crate::ws_client::{conv_of, WsClient};

fn seqs(v: &Value) -> Vec<i64> {
    v["messages"].as_array().map(|a| a.iter().filter_map(|m| m["seq"].as_i64()).collect()).unwrap_or_default()
}

fn ids(v: &Value) -> Vec<String> {
    v["messages"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["id"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

async fn friends(http: &Http, a: &str, b: &str) -> TestResult<(User, User)> {
    let (a, b) = (http.user(a).await?, http.user(b).await?);
    http.befriend(&a, &b).await?;
    Ok((a, b))
}

#[actix_rt::test]
async fn one_to_one_chat_receipts_and_presence_across_nodes() -> TestResult {
    let c = Cluster::start(2, false).await?;
    let (n1, n2) = (c.node(0), c.node(1));
    let (a, b) = friends(&n1, "alice", "bob").await?;
    let conv = conv_of(&a, &b);

    let mut wb = WsClient::connect(&n2, &b).await?;
    let mut wa = WsClient::connect(&n1, &a).await?;
    // Alice came online on node 1: Bob on node 2 hears it, and his friend list says so.
    let p = wb.expect("presence").await?;
    assert_eq!((p["user_id"].as_i64(), p["online"].as_bool()), (Some(a.id), Some(true)), "{p}");
    let (_, f) = n2.get(&format!("/api/v1/friends/{}", a.id), &b.token).await?;
    assert_eq!(f["online"], true, "{f}");

    // Messages both ways, in order, with receipts crossing back.
    for i in 0..5 {
        let ack = wa.say(&conv, &format!("a{i}"), &format!("hello {i}")).await?;
        let m = wb.expect("msg").await?;
        assert_eq!((m["seq"].clone(), m["id"].as_str()), (ack["seq"].clone(), Some(format!("a{i}").as_str())));
        assert_eq!(m["from"], a.id);
    }
    let ack = wb.say(&conv, "b0", "hi alice").await?;
    let m = wa.expect("msg").await?;
    assert_eq!(m["seq"], ack["seq"]);
    assert_eq!(ack["seq"], 6, "seqs continue across nodes: {ack}");
    wb.send(json!({"type": "delivered", "conv": conv, "seq": 5})).await?;
    let d = wa.expect("delivered").await?;
    assert_eq!((d["seq"].as_i64(), d["by"].as_i64()), (Some(5), Some(b.id)), "{d}");
    // Alice (node 1) reads Bob's message: the receipt reaches Bob on node 2.
    wa.send(json!({"type": "read", "conv": conv, "seq": 6})).await?;
    let r = wb.expect("read").await?;
    assert_eq!((r["seq"].as_i64(), r["by"].as_i64()), (Some(6), Some(a.id)), "{r}");
    // Typing reaches the other node too.
    wa.send(json!({"type": "typing", "conv": conv})).await?;
    let t = wb.expect("typing").await?;
    assert_eq!(t["from"], a.id);

    // Alice's last device goes: Bob hears it across nodes.
    drop(wa);
    let p = wb.expect("presence").await?;
    assert_eq!((p["user_id"].as_i64(), p["online"].as_bool()), (Some(a.id), Some(false)), "{p}");
    let (_, f) = n2.get(&format!("/api/v1/friends/{}", a.id), &b.token).await?;
    assert_eq!(f["online"], false, "{f}");
    Ok(())
}

#[actix_rt::test]
async fn group_chat_and_multi_device_sync_across_three_nodes() -> TestResult {
    let c = Cluster::start(3, false).await?;
    let (n1, n2, n3) = (c.node(0), c.node(1), c.node(2));
    let o = n1.user("owner").await?;
    let m1 = n1.user("member1").await?;
    let m2 = n1.user("member2").await?;
    n1.befriend(&o, &m1).await?;
    n1.befriend(&o, &m2).await?;
    let (s, g) =
        n1.post("/api/v1/groups", Some(&o.token), json!({"name": "Team", "member_ids": [m1.id, m2.id]})).await?;
    assert!(s.is_success(), "{g}");
    let conv = format!("g:{}", g["id"].as_i64().ok_or("group id")?);

    let mut wo = WsClient::connect(&n1, &o).await?;
    // The owner's second device on node 3: multi-device sync across nodes.
    let o2 = n3.login("owner").await?;
    let mut wo2 = WsClient::connect(&n3, &o2).await?;
    let mut w1 = WsClient::connect(&n2, &m1).await?;
    let mut w2 = WsClient::connect(&n3, &m2).await?;

    let mut expected = Vec::new();
    for i in 0..10 {
        let ack = wo.say(&conv, &format!("g{i}"), &format!("to all {i}")).await?;
        expected.push(ack["seq"].as_i64().ok_or("seq")?);
    }
    for w in [&mut w1, &mut w2, &mut wo2] {
        let mut got = Vec::new();
        while got.len() < expected.len() {
            let m = w.expect("msg").await?;
            if m["kind"] == "text" {
                got.push(m["seq"].as_i64().ok_or("seq")?);
            }
        }
        assert_eq!(got, expected, "every member on every node gets each message once, in order");
    }
    // A member on node 2 answers with a mention; the owner on node 1 is told he is mentioned.
    w1.send(json!({"type": "send", "id": "m1-0", "conv": conv, "body": "@owner", "mentions": [o.id]})).await?;
    let ack = w1.expect("ack").await?;
    let m = wo.expect("msg").await?;
    assert_eq!((m["seq"].clone(), m["mentioned"].as_bool()), (ack["seq"].clone(), Some(true)), "{m}");
    let m = w2.expect("msg").await?;
    assert_eq!(m["seq"], ack["seq"]);
    assert_ne!(m["mentioned"], true);

    // A group created while everyone is online: every member's node subscribes at once.
    let (s, g2) =
        n2.post("/api/v1/groups", Some(&o.token), json!({"name": "Fresh", "member_ids": [m1.id, m2.id]})).await?;
    assert!(s.is_success(), "{g2}");
    let conv2 = format!("g:{}", g2["id"].as_i64().ok_or("group id")?);
    // Subscriptions follow the creation asynchronously (an envelope to each member's node); a
    // message sent in the first milliseconds reaches members by `sync` instead of live.
    actix_rt::time::sleep(Duration::from_millis(300)).await;
    let ack = w2.say(&conv2, "fresh-0", "first words").await?;
    for w in [&mut w1, &mut wo, &mut wo2] {
        loop {
            let m = w.expect("msg").await?;
            if m["conv"] == conv2.as_str() && m["id"] == "fresh-0" {
                assert_eq!(m["seq"], ack["seq"]);
                break;
            }
        }
    }

    // A member invited through node 3 while online on node 2 starts receiving at once.
    let m3 = n2.user("member3").await?;
    n2.befriend(&o, &m3).await?;
    let mut w3 = WsClient::connect(&n2, &m3).await?;
    let gid = g["id"].as_i64().ok_or("group id")?;
    let (s, r) =
        n3.post(&format!("/api/v1/groups/{gid}/members"), Some(&o.token), json!({"user_ids": [m3.id]})).await?;
    assert!(s.is_success(), "{r}");
    let ack = wo.say(&conv, "after-join", "welcome").await?;
    let mut seen = false;
    for _ in 0..5 {
        let m = w3.expect("msg").await?;
        if m["seq"] == ack["seq"] {
            seen = true;
            break;
        }
    }
    assert!(seen, "the new member on node 2 got the next message");
    // Removed through node 2: the member on node 3 stops receiving.
    let (s, r) = n2.delete(&format!("/api/v1/groups/{gid}/members/{}", m2.id), &o.token).await?;
    assert!(s.is_success(), "{r}");
    wo.say(&conv, "after-remove", "m2 is gone").await?;
    let mut frames = Vec::new();
    while let Some(v) = w2.next_within(Duration::from_millis(800)).await? {
        frames.push(v);
    }
    assert!(
        !frames.iter().any(|f| f["type"] == "msg" && f["id"] == "after-remove"),
        "a removed member on another node got a message: {frames:?}"
    );
    Ok(())
}

#[actix_rt::test]
async fn kick_revocation_and_replacement_reach_the_node_holding_the_session() -> TestResult {
    let c = Cluster::start(2, false).await?;
    let (n1, n2) = (c.node(0), c.node(1));
    let a = n1.user("alice").await?;
    let a2 = n1.login("alice").await?;

    // Logout through node 1 closes the device's socket on node 2 (4003 revoked).
    let mut w = WsClient::connect(&n2, &a2).await?;
    let (s, r) = n1.post("/api/v1/auth/logout", Some(&a2.token), json!({})).await?;
    assert!(s.is_success(), "{r}");
    assert_eq!(w.expect_close().await?, 4003);

    // Revoking a device from another device, through node 1.
    let a3 = n1.login("alice").await?;
    let mut w = WsClient::connect(&n2, &a3).await?;
    let (s, r) = n1.delete(&format!("/api/v1/auth/devices/{}", a3.device_id), &a.token).await?;
    assert!(s.is_success(), "{r}");
    assert_eq!(w.expect_close().await?, 4003);

    // An admin kick sent to node 1 closes the session on node 2 (4004 kicked).
    let mut w = WsClient::connect(&n2, &a).await?;
    let (s, r) = n1.post(&format!("/admin/v1/users/{}/kick", a.id), Some(ADMIN), json!({})).await?;
    assert!(s.is_success(), "{r}");
    assert_eq!(w.expect_close().await?, 4004);

    // The same device connecting on node 1 replaces its session on node 2 (4001).
    let mut old = WsClient::connect(&n2, &a).await?;
    c.wait_admin(0, &format!("/admin/v1/users/{}/sessions", a.id), |v| {
        v["sessions"].as_array().is_some_and(|s| s.iter().any(|s| s["node"] == "node-2"))
    })
    .await?;
    let _new = WsClient::connect(&n1, &a).await?;
    assert_eq!(old.expect_close().await?, 4001);
    let v = c
        .wait_admin(1, &format!("/admin/v1/users/{}/sessions", a.id), |v| {
            v["sessions"].as_array().is_some_and(|s| s.len() == 1 && s[0]["node"] == "node-1")
        })
        .await?;
    assert_eq!(v["sessions"][0]["device_id"], a.device_id);
    Ok(())
}

#[actix_rt::test]
async fn concurrent_sends_from_two_nodes_get_unique_increasing_seqs_and_dedup_anywhere() -> TestResult {
    let c = Cluster::start(2, false).await?;
    let (n1, n2) = (c.node(0), c.node(1));
    let (a, b) = friends(&n1, "alice", "bob").await?;
    let conv = conv_of(&a, &b);
    let mut wa = WsClient::connect(&n1, &a).await?;
    let mut wb = WsClient::connect(&n2, &b).await?;
    const N: usize = 100;

    // Both sides fire N messages without waiting, at the same time, through different nodes.
    async fn blast(w: &mut WsClient, conv: &str, tag: &str) -> TestResult<Vec<i64>> {
        for i in 0..N {
            w.send(json!({"type": "send", "id": format!("{tag}{i}"), "conv": conv, "body": format!("{tag} {i}")}))
                .await?;
        }
        // Acks are matched by id (a burst may complete in any order); the seqs follow send order.
        let mut acks = std::collections::HashMap::new();
        while acks.len() < N {
            let v = w.expect("ack").await?;
            acks.insert(v["id"].as_str().unwrap_or_default().to_owned(), v["seq"].as_i64().unwrap_or(0));
        }
        (0..N)
            .map(|i| acks.get(&format!("{tag}{i}")).copied().ok_or_else(|| format!("no ack for {tag}{i}").into()))
            .collect()
    }
    let (sa, sb) = futures_util::future::join(blast(&mut wa, &conv, "a"), blast(&mut wb, &conv, "b")).await;
    let (sa, sb) = (sa?, sb?);
    assert!(sa.windows(2).all(|w| w[0] < w[1]), "alice's seqs increase: {sa:?}");
    assert!(sb.windows(2).all(|w| w[0] < w[1]), "bob's seqs increase: {sb:?}");
    let all: HashSet<i64> = sa.iter().chain(&sb).copied().collect();
    assert_eq!(all.len(), 2 * N, "no seq given twice across nodes");

    // The store holds each message once, in seq order.
    let mut fresh = WsClient::connect(&n2, &n2.login("bob").await?).await?;
    let page = fresh.sync(&conv, 0, 500).await?;
    let got = seqs(&page);
    assert_eq!(got.len(), 2 * N, "{page}");
    assert!(got.windows(2).all(|w| w[0] < w[1]));

    // A resend of an acked id through the other node is answered with the original seq.
    let mut wa2 = WsClient::connect(&n2, &n2.login("alice").await?).await?;
    let dup = wa2.say(&conv, "a7", "a 7").await?;
    assert_eq!(dup["seq"], sa[7], "dedup across nodes: {dup}");
    let page = fresh.sync(&conv, 0, 500).await?;
    assert_eq!(ids(&page).iter().filter(|i| i.as_str() == "a7").count(), 1);
    Ok(())
}

#[actix_rt::test]
async fn admin_api_sees_the_whole_cluster() -> TestResult {
    let mut c = Cluster::start(2, false).await?;
    let (n1, n2) = (c.node(0), c.node(1));
    let a = n1.user("alice").await?;
    let b = n1.user("bob").await?;
    let _wa = WsClient::connect(&n1, &a).await?;
    let mut wb = WsClient::connect(&n2, &b).await?;

    let v = c
        .wait_admin(0, "/admin/v1/nodes", |v| {
            v["nodes"]
                .as_array()
                .is_some_and(|n| n.len() == 2 && n.iter().all(|n| n["alive"] == true && n["sessions"] == 1))
        })
        .await?;
    assert_eq!(v["nodes"][1]["id"], "node-2", "{v}");
    let (_, s) = n1.get("/admin/v1/stats", ADMIN).await?;
    assert_eq!(s["sessions"], 2, "{s}");
    let (_, s) = n1.get(&format!("/admin/v1/users/{}/sessions", b.id), ADMIN).await?;
    assert_eq!(s["sessions"][0]["node"], "node-2", "{s}");
    assert_eq!(s["sessions"][0]["device_id"], b.device_id, "{s}");

    // A broadcast sent to node 1 reaches Bob on node 2.
    let (st, r) = n1.post("/admin/v1/broadcast", Some(ADMIN), json!({"text": "maintenance at noon"})).await?;
    assert!(st.is_success(), "{r}");
    let n = wb.expect("notice").await?;
    assert_eq!(n["text"], "maintenance at noon");

    // Draining node 2 from node 1: its clients are told to reconnect, it stops being ready.
    let (st, r) = n1.post("/admin/v1/nodes/node-2/drain", Some(ADMIN), json!({})).await?;
    assert!(st.is_success(), "{r}");
    assert_eq!(wb.expect_close().await?, 1012);
    let (st, r) = n2.call(actix_web::http::Method::GET, "/readyz", None, None).await?;
    assert_eq!((st.as_u16(), r["status"].as_str()), (503, Some("draining")), "{r}");
    let (st, _) = n1.post("/admin/v1/nodes/node-9/drain", Some(ADMIN), json!({})).await?;
    assert_eq!(st.as_u16(), 404);

    // A node that stops with SIGTERM leaves the cluster cleanly.
    assert!(c.terminate(1).await?, "node 2 exits cleanly on SIGTERM");
    let v = c.wait_admin(0, "/admin/v1/nodes", |v| v["nodes"].as_array().is_some_and(|n| n.len() == 1)).await?;
    assert_eq!(v["nodes"][0]["id"], "node-1");
    let _ = n2;
    Ok(())
}
