//! Blocking across nodes: a block made through one node holds at once for the blocked user's
//! devices on the other nodes, whichever node owns the conversation, and an unblock lets them
//! befriend and talk again.

use std::time::Duration;

use awc::http::StatusCode;
use serde_json::{json, Value};

use crate::harness::Cluster;
use crate::helpers::TestResult;
use crate::ws_client::{conv_of, WsClient};

const QUIET: Duration = Duration::from_millis(1500);

/// The refusal of a `send` without the client id it repeats.
fn code_of(e: &Value) -> Option<&str> {
    e["code"].as_str()
}

#[actix_rt::test]
async fn a_block_made_through_one_node_refuses_the_blocked_user_on_every_node() -> TestResult {
    // No cooldown between two requests to the same user: they befriend again after the unblock.
    let c = Cluster::start_with(3, false, &[("IM__FRIENDS__REQUEST_COOLDOWN_SECS", "0")]).await?;
    let (n1, n2, n3) = (c.node(0), c.node(1), c.node(2));
    let (alice, bob) = (n1.user("alice").await?, n1.user("bob").await?);
    n1.befriend(&alice, &bob).await?;
    let conv = conv_of(&alice, &bob);
    let bob_phone = n3.login("bob").await?;
    let mut wa = WsClient::connect(&n1, &alice).await?;
    let mut wb = WsClient::connect(&n2, &bob).await?;
    let mut wb3 = WsClient::connect(&n3, &bob_phone).await?;
    // Both talk first, so the conversation's owner is active and has let Bob write.
    wb.say(&conv, "b1", "hi alice").await?;
    assert_eq!(wa.expect("msg").await?["id"], "b1");
    wb3.say(&conv, "b1p", "from my phone").await?;
    assert_eq!(wa.expect("msg").await?["id"], "b1p");
    wa.say(&conv, "a1", "hello bob").await?;
    // Bob's first device sees his phone's message (multi-device sync), then Alice's.
    assert_eq!(wb.expect("msg").await?["id"], "b1p");
    assert_eq!(wb.expect("msg").await?["id"], "a1");

    // What the talk left (receipts, Alice's presence as Bob's devices connected) is read off
    // first, so that what follows is only what the block lets through.
    for w in [&mut wa, &mut wb, &mut wb3] {
        while w.next_within(Duration::from_millis(300)).await?.is_some() {}
    }

    // Alice blocks Bob through the third node, where neither has this session.
    let (s, v) = n3.put(&format!("/api/v1/blocks/{}", bob.id), &alice.token, json!({})).await?;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");

    // At once, from both of Bob's nodes: refused as a stranger is, and nothing reaches Alice.
    for (w, id) in [(&mut wb, "b2"), (&mut wb3, "b3")] {
        w.send(json!({"type": "send", "id": id, "conv": conv, "body": "still there?"})).await?;
        let e = w.expect("error").await?;
        assert_eq!((code_of(&e), e["id"].as_str()), (Some("not_friends"), Some(id)), "{e}");
        w.send(json!({"type": "react", "conv": conv, "seq": 1, "emoji": "👍"})).await?;
        let e = w.expect("error").await?;
        assert_eq!(code_of(&e), Some("not_friends"), "{e}");
    }
    wa.expect_no("msg", QUIET).await?;
    wa.expect_no("reaction", Duration::from_millis(50)).await?;
    // Bob's friend request through any node reaches Alice on none.
    let (s, r) = n2.post("/api/v1/friend/request", Some(&bob.token), json!({"to_user_id": alice.id})).await?;
    assert_eq!((s, r["status"].as_str()), (StatusCode::CREATED, Some("pending")), "{r}");
    let (_, inc) = n1.get("/api/v1/friend/requests", &alice.token).await?;
    let items = inc["items"].as_array().ok_or("items")?;
    assert!(!items.iter().any(|x| x["from_user_id"] == bob.id), "{inc}");
    // Alice coming online again through another node tells Bob's devices nothing.
    drop(wa);
    let mut wa = WsClient::connect(&n2, &alice).await?;
    wb.expect_no("presence", QUIET).await?;
    wb3.expect_no("presence", Duration::from_millis(50)).await?;

    // Unblocked through node 1, befriended again through node 3: they talk across nodes again,
    // in the same conversation and its seq order.
    let (s, v) = n1.delete(&format!("/api/v1/blocks/{}", bob.id), &alice.token).await?;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    n3.befriend(&alice, &bob).await?;
    let again = wb.say(&conv, "b4", "friends again").await?;
    let got = wa.expect("msg").await?;
    assert_eq!((got["id"].as_str(), got["seq"].as_i64()), (Some("b4"), again["seq"].as_i64()), "{got}");
    assert!(again["seq"].as_i64() > Some(3), "the conversation's seqs go on: {again}");
    // Nothing about the refused sends was stored: Alice's history has b1, b1p, a1, b4 only.
    let (_, page) = n3.get(&format!("/api/v1/conversations/{conv}/messages"), &alice.token).await?;
    let mut stored: Vec<(i64, &str)> = page["messages"]
        .as_array()
        .ok_or("messages")?
        .iter()
        .filter_map(|m| Some((m["seq"].as_i64()?, m["id"].as_str()?)))
        .collect();
    stored.sort_unstable();
    let ids: Vec<&str> = stored.into_iter().map(|(_, id)| id).collect();
    assert_eq!(ids, ["b1", "b1p", "a1", "b4"], "{page}");
    Ok(())
}
