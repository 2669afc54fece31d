//! One owner per conversation and group across the cluster: live order on every device, group
//! changes serialised by the one owner, a paused owner that cannot write after a takeover,
//! draining that hands conversations over at once, and rolling restarts through nginx.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{seqs, Reliable};
use crate::harness::{Cluster, ADMIN};
use crate::helpers::{Http, TestResult, User};
use crate::ws_client::{conv_of, WsClient};

/// Asserts that `live` holds each seq once, in increasing order, and exactly the seqs of
/// `stored` from its first one on (nothing missed live, nothing out of order).
fn assert_live_in_order(who: &str, live: &[i64], stored: &[i64]) {
    assert!(live.windows(2).all(|w| w[0] < w[1]), "{who} got frames out of seq order: {live:?}");
    let from = live.first().copied().unwrap_or(i64::MAX);
    let expected: Vec<i64> = stored.iter().copied().filter(|s| *s >= from).collect();
    assert_eq!(live, expected.as_slice(), "{who} missed messages live (or got extra ones)");
}

async fn friends_with(http: &Http, a: &User, others: &[&User]) -> TestResult {
    for o in others {
        http.befriend(a, o).await?;
    }
    Ok(())
}

#[actix_rt::test]
async fn every_device_of_a_three_node_group_sees_every_message_live_in_seq_order() -> TestResult {
    let c = Cluster::start(3, false).await?;
    let (n1, n2, n3) = (c.node(0), c.node(1), c.node(2));
    let o = n1.user("owner").await?;
    let a = n1.user("alice").await?;
    let b = n1.user("bob").await?;
    let late = n1.user("late").await?;
    friends_with(&n1, &o, &[&a, &b, &late]).await?;
    // Everyone online first, on three nodes (the owner with a second device elsewhere).
    let wo = Reliable::connect(&n1, &o).await?;
    let mut wo2 = Reliable::connect(&n3, &n3.login("owner").await?).await?;
    let wa = Reliable::connect(&n2, &a).await?;
    let wb = Reliable::connect(&n3, &b).await?;
    let mut wl = Reliable::connect(&n2, &late).await?;

    // Created through node 2; its creator writes at once and the members answer at once, each
    // from their own node, all at the same time.
    let (s, g) = n2.post("/api/v1/groups", Some(&o.token), json!({"name": "Team", "member_ids": [a.id, b.id]})).await?;
    assert!(s.is_success(), "{g}");
    let gid = g["id"].as_i64().ok_or("group id")?;
    let conv = format!("g:{gid}");
    const N: usize = 25;
    let burst = |mut w: Reliable, tag: &'static str, conv: String| async move {
        for i in 0..N {
            w.send(&conv, &format!("{tag}{i}"), &format!("{tag} says {i}"), json!({})).await?;
        }
        Ok::<Reliable, Box<dyn std::error::Error>>(w)
    };
    let (ro, ra, rb) = futures_util::future::join3(
        burst(wo, "o", conv.clone()),
        burst(wa, "a", conv.clone()),
        burst(wb, "b", conv.clone()),
    )
    .await;
    let (mut wo, mut wa, mut wb) = (ro?, ra?, rb?);

    // Invited through node 3 while online on node 2: the next messages reach them live.
    let (s, r) =
        n3.post(&format!("/api/v1/groups/{gid}/members"), Some(&o.token), json!({"user_ids": [late.id]})).await?;
    assert!(s.is_success(), "{r}");
    for i in 0..5 {
        wa.send(&conv, &format!("after-join-{i}"), "welcome", json!({})).await?;
    }
    for w in [&mut wo, &mut wo2, &mut wa, &mut wb, &mut wl] {
        w.drain(Duration::from_millis(800)).await?;
    }
    let stored = seqs(&wo.history(&conv).await?);
    assert_eq!(stored.len(), 3 * N + 1 + 5, "every message and the join announcement are stored: {stored:?}");
    assert_eq!(stored, (1..=stored.len() as i64).collect::<Vec<_>>(), "one sequence without holes");
    // The sender's own messages come back to its other devices only.
    for (who, w) in [("owner's second device", &wo2), ("alice", &wa), ("bob", &wb)] {
        let mine: HashSet<i64> =
            w.frames.iter().filter(|f| f["type"] == "ack").filter_map(|f| f["seq"].as_i64()).collect();
        let all: Vec<i64> = stored.iter().copied().filter(|s| !mine.contains(s)).collect();
        assert_live_in_order(who, &w.live(&conv), &all);
        assert_eq!(w.live(&conv).first(), all.first(), "{who} hears the first message live");
    }
    let owner_live = wo.live(&conv);
    let owner_acks: HashSet<i64> =
        wo.frames.iter().filter(|f| f["type"] == "ack").filter_map(|f| f["seq"].as_i64()).collect();
    let others: Vec<i64> = stored.iter().copied().filter(|s| !owner_acks.contains(s)).collect();
    assert_live_in_order("the creator", &owner_live, &others);
    assert_eq!(owner_live.first(), others.first(), "the creator hears the first answer live");
    // The late member: from their `joined` announcement on, everything, in order.
    let joined = wl.live(&conv);
    assert_eq!(joined.first(), Some(&(3 * N as i64 + 1)), "the join announcement is the first they get: {joined:?}");
    assert_live_in_order("the invited member", &joined, &stored);
    Ok(())
}

#[actix_rt::test]
async fn two_senders_on_two_nodes_see_one_conversation_in_seq_order() -> TestResult {
    let c = Cluster::start(2, false).await?;
    let (n1, n2) = (c.node(0), c.node(1));
    let a = n1.user("alice").await?;
    let b = n1.user("bob").await?;
    n1.befriend(&a, &b).await?;
    let conv = conv_of(&a, &b);
    let mut wa = WsClient::connect(&n1, &a).await?;
    let mut wb = WsClient::connect(&n2, &b).await?;
    let mut wa2 = WsClient::connect(&n2, &n2.login("alice").await?).await?;
    const N: usize = 100;
    for i in 0..N {
        wa.send(json!({"type": "send", "id": format!("a{i}"), "conv": conv, "body": "x"})).await?;
        wb.send(json!({"type": "send", "id": format!("b{i}"), "conv": conv, "body": "y"})).await?;
    }
    let mut frames: HashMap<&str, Vec<Value>> = HashMap::new();
    for (name, w) in [("alice", &mut wa), ("bob", &mut wb), ("alice's second device", &mut wa2)] {
        let mut got = Vec::new();
        while let Some(v) = w.next_within(Duration::from_millis(1500)).await? {
            got.push(v);
        }
        frames.insert(name, got);
    }
    let live = |name: &str| -> Vec<i64> {
        frames[name].iter().filter(|f| f["type"] == "msg").filter_map(|f| f["seq"].as_i64()).collect()
    };
    let acks = |name: &str| -> usize { frames[name].iter().filter(|f| f["type"] == "ack").count() };
    assert_eq!((acks("alice"), acks("bob")), (N, N), "every send acked");
    let all: Vec<i64> = (1..=2 * N as i64).collect();
    // Each device sees the other side's messages (and the second device both sides'), in order.
    for name in ["alice", "bob", "alice's second device"] {
        let l = live(name);
        assert!(l.windows(2).all(|w| w[0] < w[1]), "{name}: out of order: {l:?}");
    }
    assert_eq!(live("alice's second device"), all, "the second device gets everything, in order");
    assert_eq!(live("alice").len() + live("bob").len(), 2 * N);
    Ok(())
}

#[actix_rt::test]
async fn concurrent_conflicting_group_changes_through_three_nodes_keep_one_owner_and_the_limit() -> TestResult {
    const LIMIT: usize = 6;
    let c = Cluster::start_with(3, false, &[("IM__CHAT__MAX_GROUP_MEMBERS", "6")]).await?;
    let nodes = [c.node(0), c.node(1), c.node(2)];
    let o = nodes[0].user("owner").await?;
    let a = nodes[0].user("admin_a").await?;
    let b = nodes[0].user("admin_b").await?;
    let mut guests = Vec::new();
    for i in 0..8 {
        let g = nodes[0].user(&format!("guest{i}")).await?;
        for x in [&o, &a, &b] {
            nodes[0].befriend(x, &g).await?;
        }
        guests.push(g);
    }
    friends_with(&nodes[0], &o, &[&a, &b]).await?;
    nodes[0].befriend(&a, &b).await?;
    let (s, g) =
        nodes[0].post("/api/v1/groups", Some(&o.token), json!({"name": "Race", "member_ids": [a.id, b.id]})).await?;
    assert!(s.is_success(), "{g}");
    let gid = g["id"].as_i64().ok_or("group id")?;
    for u in [&a, &b] {
        let (s, r) = nodes[0].put(&format!("/api/v1/groups/{gid}/admins/{}", u.id), &o.token, json!({})).await?;
        assert!(s.is_success(), "{r}");
    }
    // 100 changes at once through three nodes: transfers between the three leaders (only the
    // owner of the moment may), admin changes, invites past the limit, removals.
    let leaders = [&o, &a, &b];
    let mut calls = Vec::new();
    for i in 0..100usize {
        let via = nodes[i % 3].clone();
        let by = leaders[i % 3].clone();
        let other = leaders[(i + 1) % 3].clone();
        let guest = guests[i % guests.len()].clone();
        calls.push(async move {
            let (st, body) = match i % 5 {
                0 => {
                    via.post(&format!("/api/v1/groups/{gid}/transfer"), Some(&by.token), json!({"user_id": other.id}))
                        .await?
                }
                1 => via.put(&format!("/api/v1/groups/{gid}/admins/{}", other.id), &by.token, json!({})).await?,
                2 => via.delete(&format!("/api/v1/groups/{gid}/admins/{}", other.id), &by.token).await?,
                3 => via.delete(&format!("/api/v1/groups/{gid}/members/{}", guest.id), &by.token).await?,
                _ => {
                    via.post(&format!("/api/v1/groups/{gid}/members"), Some(&by.token), json!({"user_ids": [guest.id]}))
                        .await?
                }
            };
            assert!(st.is_success() || [403, 404, 409].contains(&st.as_u16()), "change {i} answered {st}: {body}");
            Ok::<bool, Box<dyn std::error::Error>>(st.is_success())
        });
    }
    let results = futures_util::future::join_all(calls).await;
    let ok = results.into_iter().collect::<Result<Vec<bool>, _>>()?.into_iter().filter(|s| *s).count();
    assert!(ok > 10, "some changes went through ({ok})");

    // Exactly one owner, never more members than the limit, and the roles as announced.
    let (_, members) = nodes[1].get(&format!("/api/v1/groups/{gid}/members?size=100"), &o.token).await?;
    let members = members["items"].as_array().cloned().unwrap_or_default();
    let owners: Vec<i64> =
        members.iter().filter(|m| m["role"] == "owner").filter_map(|m| m["user"]["id"].as_i64()).collect();
    assert_eq!(owners.len(), 1, "one owner: {members:?}");
    assert!(members.len() <= LIMIT, "{} members past the limit of {LIMIT}", members.len());
    let (_, details) = nodes[2].get(&format!("/api/v1/groups/{gid}"), &o.token).await?;
    assert_eq!(details["owner_id"].as_i64(), owners.first().copied(), "{details}");
    assert_eq!(details["member_count"].as_u64(), Some(members.len() as u64));

    let mut wo = Reliable::connect(&nodes[0], &nodes[0].login("owner").await?).await?;
    let history = wo.history(&format!("g:{gid}")).await?;
    let mut role: HashMap<i64, &str> = HashMap::from([(o.id, "owner"), (a.id, "admin"), (b.id, "admin")]);
    let mut count = 3i64;
    for m in history.iter().filter(|m| m["kind"] == "system") {
        let ev: Value = serde_json::from_str(m["body"].as_str().unwrap_or("{}"))?;
        let user = ev["user"].as_i64();
        match ev["event"].as_str() {
            Some("owner_changed") => {
                if let (Some(u), Some(by)) = (user, ev["by"].as_i64()) {
                    assert_eq!(role.get(&by).copied(), Some("owner"), "only the owner of the moment transfers: {ev}");
                    role.insert(by, "admin");
                    role.insert(u, "owner");
                }
            }
            Some("admin_added") => {
                role.insert(user.unwrap_or(0), "admin");
            }
            Some("admin_removed") => {
                role.insert(user.unwrap_or(0), "member");
            }
            Some("joined") => {
                for u in ev["users"].as_array().into_iter().flatten().filter_map(Value::as_i64) {
                    role.insert(u, "member");
                    count += 1;
                }
                assert!(count <= LIMIT as i64, "a join took the group past its limit: {ev}");
            }
            Some("removed") => {
                role.remove(&user.unwrap_or(0));
                count -= 1;
            }
            _ => {}
        }
    }
    assert_eq!(count, members.len() as i64, "the announcements add up to the members");
    for m in &members {
        let id = m["user"]["id"].as_i64().unwrap_or(0);
        assert_eq!(role.get(&id).copied(), m["role"].as_str(), "the last announcement about {id} says its role: {m}");
    }
    Ok(())
}

/// Reads `name` from node `i`'s `/metrics`.
async fn metric(c: &Cluster, i: usize, name: &str) -> TestResult<f64> {
    let (_, body) = c.node(i).raw_get("/metrics", ADMIN).await?;
    let text = String::from_utf8(body)?;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
        .ok_or_else(|| format!("no {name} in /metrics of node {i}").into())
}

#[actix_rt::test]
async fn a_paused_owner_does_not_write_after_another_node_took_over() -> TestResult {
    let c = Cluster::start(2, false).await?;
    let n1 = c.node(0);
    let a = n1.user("alice").await?;
    let b = n1.user("bob").await?;
    n1.befriend(&a, &b).await?;
    let conv = conv_of(&a, &b);
    let mut first = Reliable::connect(&n1, &a).await?;
    first.send(&conv, "before", "who owns this?", json!({})).await?;
    let (owner, epoch) = c.owner_of(0, &conv).await?;
    let p = c.index_of(&owner)?;
    let q = 1 - p;
    // Alice has a device on the owner's node, Bob on the other one.
    let mut on_p = WsClient::connect(&c.node(p), &c.node(p).login("alice").await?).await?;
    let mut on_q = Reliable::connect(&c.node(q), &c.node(q).login("bob").await?).await?;
    let written_by_p = metric(&c, p, "im_messages_persisted_total").await?;

    // The owner stops dead, its sockets open. A message sent to it now waits in its socket.
    c.pause(p).await?;
    on_p.send(json!({"type": "send", "id": "while-paused", "conv": conv, "body": "am I late?"})).await?;
    // Past its lease, the other node takes the conversation over and acks at once.
    actix_rt::time::sleep(Duration::from_secs(crate::harness::node_ttl_secs() + 1)).await;
    let mut q_seqs = Vec::new();
    for i in 0..5 {
        q_seqs.push(on_q.send(&conv, &format!("q{i}"), "the new owner", json!({})).await?);
    }
    let (now, new_epoch) = c.owner_of(q, &conv).await?;
    assert_eq!(now, c.nodes[q].id, "the other node owns it now");
    assert!(new_epoch > epoch, "its epoch {new_epoch} is above the paused owner's {epoch}");

    // Back: the old owner must not write what it was sent while paused; the client resends it
    // through the same socket until it is acked, by the new owner.
    c.resume(p).await?;
    let mut refused = false;
    let mut late_seq = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while late_seq.is_none() && Instant::now() < deadline {
        match on_p.next_within(Duration::from_secs(5)).await? {
            Some(v) if v["type"] == "ack" && v["id"] == "while-paused" => late_seq = v["seq"].as_i64(),
            Some(v) if v["type"] == "error" && v["id"] == "while-paused" => {
                assert_eq!(v["code"], "unavailable", "{v}");
                refused = true;
                actix_rt::time::sleep(Duration::from_millis(100)).await;
                on_p.send(json!({"type": "send", "id": "while-paused", "conv": conv, "body": "am I late?"})).await?;
            }
            Some(_) => {}
            None => {
                if on_p.closed.is_some() {
                    on_p = WsClient::connect(&c.node(p), &c.node(p).login("alice").await?).await?;
                }
                on_p.send(json!({"type": "send", "id": "while-paused", "conv": conv, "body": "am I late?"})).await?;
            }
        }
    }
    let late_seq = late_seq.ok_or("the message sent to the paused owner was never acked")?;
    assert!(refused, "the paused owner refused the message instead of writing it");
    assert!(late_seq > *q_seqs.iter().max().unwrap_or(&0), "acked by the new owner after its own: {late_seq}");
    assert_eq!(
        metric(&c, p, "im_messages_persisted_total").await?,
        written_by_p,
        "the paused owner wrote nothing after it resumed"
    );
    let (owner, _) = c.owner_of(p, &conv).await?;
    assert_eq!(owner, c.nodes[q].id, "ownership stays with the node that took it over");
    // Stored: each acked message once, in one increasing sequence.
    let history = on_q.history(&conv).await?;
    let ids: Vec<&str> = history.iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids, vec!["before", "q0", "q1", "q2", "q3", "q4", "while-paused"], "{history:?}");
    Ok(())
}

#[actix_rt::test]
async fn draining_hands_conversations_over_without_waiting_for_the_ttl() -> TestResult {
    // A TTL far longer than the test: a takeover by expiry could not happen in time.
    let mut c =
        Cluster::start_with(2, false, &[("IM__CLUSTER__NODE_TTL_SECS", "60"), ("IM__SERVER__DRAIN_GRACE_SECS", "3")])
            .await?;
    let n1 = c.node(0);
    let a = n1.user("alice").await?;
    let b = n1.user("bob").await?;
    n1.befriend(&a, &b).await?;
    let conv = conv_of(&a, &b);
    let mut w = Reliable::connect(&n1, &a).await?;
    w.send(&conv, "m0", "hello", json!({})).await?;
    let (owner, _) = c.owner_of(0, &conv).await?;
    let p = c.index_of(&owner)?;
    let q = 1 - p;
    let mut wq = Reliable::connect(&c.node(q), &c.node(q).login("bob").await?).await?;

    // SIGTERM the owner: while it drains, /readyz answers 503 `draining` (the listener stays open).
    let pid = c.pid(p)?;
    tokio::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut saw_draining = false;
    while Instant::now() < deadline && !saw_draining {
        if let Ok((st, v)) = c.node(p).call(actix_web::http::Method::GET, "/readyz", None, None).await {
            saw_draining = st.as_u16() == 503 && v["status"] == "draining";
        }
        if !saw_draining {
            actix_rt::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(saw_draining, "a draining node answers /readyz with 503 draining");
    // The other node owns the conversation now, long before any TTL.
    let started = Instant::now();
    let seq = wq.send(&conv, "after-drain", "still here", json!({})).await?;
    assert_eq!(seq, 2);
    let (now, _) = c.owner_of(q, &conv).await?;
    assert_eq!(now, c.nodes[q].id);
    assert!(started.elapsed() < Duration::from_secs(30), "handed over, not expired");
    assert!(c.wait_exit(p).await?, "the drained node exits cleanly");
    Ok(())
}

#[actix_rt::test]
async fn a_rolling_restart_behind_the_shipped_nginx_config_keeps_clients_chatting() -> TestResult {
    let mut c = Cluster::start(3, true).await?;
    let lb = c.lb()?;
    const PAIRS: usize = 12;
    let mut pairs = Vec::new();
    for i in 0..PAIRS {
        let s = lb.user(&format!("sender{i}")).await?;
        let r = lb.user(&format!("receiver{i}")).await?;
        lb.befriend(&s, &r).await?;
        pairs.push((s, r));
    }
    let mut senders = Vec::new();
    for (s, _) in &pairs {
        senders.push(Reliable::connect(&lb, s).await?);
    }
    let mut acked: Vec<Vec<String>> = vec![Vec::new(); PAIRS];
    for round in 0..3usize {
        // Node `round` restarts (SIGTERM: it drains, then exits; then it starts again on the same
        // port), and the next one follows as soon as it is back, as an orchestrator does it.
        assert!(c.terminate(round).await?, "node {round} exits cleanly");
        c.restart(round).await?;
        // Every client sends at once: those of the restarted node reconnect through nginx.
        let started = Instant::now();
        let sends = senders.iter_mut().zip(&pairs).enumerate().map(|(i, (snd, (s, r)))| {
            let id = format!("r{round}-{i}");
            let conv = conv_of(s, r);
            async move { snd.send(&conv, &id, "after a restart", json!({})).await.map(|_| id) }
        });
        let ids = futures_util::future::join_all(sends).await;
        let took = started.elapsed();
        for (i, id) in ids.into_iter().enumerate() {
            acked[i].push(id?);
        }
        // The failure this guards against: nginx keeping restarted nodes out of rotation
        // (max_fails) until no node was left, and clients locked out for about 20 s.
        assert!(took < Duration::from_secs(10), "round {round}: the clients needed {took:?} to get back");
    }
    let reconnects: usize = senders.iter().map(|s| s.reconnects).sum();
    assert!(reconnects >= PAIRS / 3, "clients of restarted nodes reconnected ({reconnects})");
    for (i, (s, r)) in pairs.iter().enumerate() {
        let mut w = Reliable::connect(&lb, &lb.login(&r.username).await?).await?;
        let history = w.history(&conv_of(s, r)).await?;
        let ids: Vec<String> = history.iter().filter_map(|m| m["id"].as_str().map(str::to_owned)).collect();
        assert_eq!(ids, acked[i], "pair {i}: every acked message once, in order");
    }
    Ok(())
}
