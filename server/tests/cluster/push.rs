//! Push across nodes: three `im-server` processes push to one receiving gateway the test runs.
//! A message to a user with no session anywhere pushes exactly once, whichever node the sender
//! is on (the conversation's owner decides, and the Redis claim of (target, notification)
//! keeps any second decision from sending); none when the user is online on another node.

use std::collections::BTreeMap;
use std::time::Duration;

use awc::http::StatusCode;
use serde_json::{json, Value};

use crate::harness::Cluster;
use crate::helpers::TestResult;
use crate::push_receiver::{gateway_pushes, Receiver};
use crate::ws_client::{conv_of, WsClient};

const QUIET: Duration = Duration::from_millis(1500);

/// The pushes to `pushkey` counted by notification id.
fn by_event(rx: &Receiver, pushkey: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for n in gateway_pushes(rx, pushkey) {
        *out.entry(n["event_id"].as_str().unwrap_or_default().to_owned()).or_insert(0) += 1;
    }
    out
}

#[actix_rt::test]
async fn a_message_to_an_offline_user_pushes_once_whichever_node_sends_it() -> TestResult {
    let rx = Receiver::start().await?;
    let gateway = rx.gateway_url();
    let c = Cluster::start_with(
        3,
        false,
        &[
            ("IM__PUSH__ENABLED", "true"),
            ("IM__PUSH__GATEWAY_URL", gateway.as_str()),
            ("IM__PUSH__COALESCE_MS", "0"),
            ("IM__PUSH__RETRY_BASE_MS", "50"),
        ],
    )
    .await?;
    let nodes = [c.node(0), c.node(1), c.node(2)];
    let (alice, bob) = (nodes[0].user("alice").await?, nodes[0].user("bob").await?);
    nodes[0].befriend(&alice, &bob).await?;
    let (s, t) = nodes[1]
        .post(
            &format!("/api/v1/devices/{}/push", bob.device_id),
            Some(&bob.token),
            json!({"kind": "gateway", "app_id": "com.example.im", "pushkey": "pk-bob"}),
        )
        .await?;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let conv = conv_of(&alice, &bob);

    // Alice sends from each node in turn (a device of hers on each); Bob has no session.
    let mut sent = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let device = node.login("alice").await?;
        let mut w = WsClient::connect(node, &device).await?;
        for k in 0..3 {
            let ack = w.say(&conv, &format!("n{i}-{k}"), &format!("from node {} #{k}", i + 1)).await?;
            sent.push(format!("{conv}/{}", ack["seq"].as_i64().ok_or("no seq")?));
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while by_event(&rx, "pk-bob").len() < sent.len() {
        assert!(std::time::Instant::now() < deadline, "pushes: {:?}, sent {sent:?}", by_event(&rx, "pk-bob"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(QUIET).await;
    let want: BTreeMap<String, usize> = sent.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(by_event(&rx, "pk-bob"), want, "each message exactly once");
    let accepted = gateway_pushes(&rx, "pk-bob").len();
    assert_eq!(accepted, sent.len());

    // Bob comes online on the second node: messages sent through the first and third do not
    // push (his presence is in Redis, whichever node decides).
    let mut wb = WsClient::connect(&nodes[1], &bob).await?;
    let mut quiet = Vec::new();
    for i in [0, 2] {
        let device = nodes[i].login("alice").await?;
        let mut w = WsClient::connect(&nodes[i], &device).await?;
        let ack = w.say(&conv, &format!("on{i}"), "you are online").await?;
        quiet.push(ack["seq"].clone());
        let m: Value = wb.expect("msg").await?;
        assert_eq!(m["body"], "you are online", "{m}");
    }
    tokio::time::sleep(QUIET).await;
    assert_eq!(gateway_pushes(&rx, "pk-bob").len(), accepted, "pushed while Bob was online: {quiet:?}");

    // Offline again: pushes resume (the check above could fail).
    drop(wb);
    let device = nodes[2].login("alice").await?;
    let mut w = WsClient::connect(&nodes[2], &device).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut k = 0;
    while gateway_pushes(&rx, "pk-bob").len() == accepted {
        assert!(std::time::Instant::now() < deadline, "no push once Bob left");
        w.say(&conv, &format!("after{k}"), "gone?").await?;
        k += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    Ok(())
}

/// Benchmark (run by hand, see docs/BENCHMARKS.md, "Offline push"): one node (a real
/// `im-server` process with Redis, so every push is claimed there as in a cluster), a group of
/// 1,000 members with a gateway target each, everyone offline; the owner sends one message and
/// the receiver counts arrivals. Prints pushes per second from the send to the last arrival.
///
/// `cargo test -p server --test cluster bench_offline_group_push -- --ignored --nocapture`
#[actix_rt::test]
#[ignore = "benchmark: run by hand"]
async fn bench_offline_group_push() -> TestResult {
    const MEMBERS: usize = 1_000;
    let rx = Receiver::start().await?;
    let gateway = rx.gateway_url();
    let c = Cluster::start_with(
        1,
        false,
        &[("IM__PUSH__ENABLED", "true"), ("IM__PUSH__GATEWAY_URL", gateway.as_str()), ("IM__PUSH__COALESCE_MS", "0")],
    )
    .await?;
    let n = c.node(0);
    let owner = n.user("owner").await?;
    let setup = std::time::Instant::now();
    let mut members = Vec::new();
    for chunk in (0..MEMBERS).collect::<Vec<_>>().chunks(25) {
        let made = futures_util::future::join_all(chunk.iter().map(|i| {
            let (n, owner) = (n.clone(), owner.clone());
            async move {
                let u = n.user(&format!("member{i}")).await?;
                n.befriend(&owner, &u).await?;
                Ok::<_, Box<dyn std::error::Error>>(u)
            }
        }))
        .await;
        for u in made {
            members.push(u?);
        }
    }
    let ids: Vec<i64> = members.iter().map(|u| u.id).collect();
    let (s, g) = n.post("/api/v1/groups", Some(&owner.token), json!({"name": "Everyone", "member_ids": ids})).await?;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let conv = format!("g:{}", g["id"].as_i64().ok_or("group id")?);
    for chunk in members.chunks(25) {
        let done = futures_util::future::join_all(chunk.iter().map(|u| {
            let n = n.clone();
            async move {
                n.post(
                    &format!("/api/v1/devices/{}/push", u.device_id),
                    Some(&u.token),
                    json!({"kind": "gateway", "app_id": "com.example.im", "pushkey": format!("pk-{}", u.id)}),
                )
                .await
            }
        }))
        .await;
        for r in done {
            assert_eq!(r?.0, StatusCode::CREATED);
        }
    }
    eprintln!("bench: {MEMBERS} members with a gateway target each, set up in {:?}", setup.elapsed());
    tokio::time::sleep(QUIET).await;
    let before = rx.got().len();

    let mut w = WsClient::connect(&n, &owner).await?;
    let t0 = std::time::Instant::now();
    w.say(&conv, "bench", "everyone: lunch at noon").await?;
    let acked = t0.elapsed();
    let mut first = None;
    let deadline = t0 + Duration::from_secs(120);
    loop {
        let got = rx.got().len() - before;
        if got > 0 && first.is_none() {
            first = Some(t0.elapsed());
        }
        if got >= MEMBERS {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{got} of {MEMBERS} pushes arrived");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let all = t0.elapsed();
    let message_pushes = rx.got()[before..].iter().filter(|g| g.json()["notification"]["type"] == "message").count();
    assert_eq!(message_pushes, MEMBERS);
    eprintln!(
        "bench: 1 message to {MEMBERS} offline members: ack {acked:?}, first push {:?}, all {MEMBERS} in {all:?}: {:.0} pushes/s",
        first.unwrap_or_default(),
        MEMBERS as f64 / all.as_secs_f64()
    );
    Ok(())
}
