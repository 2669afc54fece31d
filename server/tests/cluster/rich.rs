//! Edits, reactions and recalls of one conversation sent at the same time through different
//! nodes: the conversation's one owner orders them, every device that applies the live frames
//! by their times ends in the state that `sync` returns from any node.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::Cluster;
use crate::helpers::{Http, TestResult, User};
use crate::ws_client::{conv_of, WsClient};

const EMOJI: [&str; 3] = ["👍", "❤️", "🎉"];
/// How long a device must hear nothing for its frames to count as all in.
const QUIET: Duration = Duration::from_millis(1500);

/// What one device knows of a conversation, from a first `sync` and then the live frames,
/// applied as PROTOCOL.md says: the latest `edited_at` wins, per (message, user, emoji) the
/// latest `at` wins, a recall is final.
#[derive(Default)]
struct View {
    viewer: i64,
    body: HashMap<i64, String>,
    edited_at: HashMap<i64, i64>,
    recalled: HashSet<i64>,
    reactions: HashMap<(i64, i64, String), (bool, i64)>,
    acks: HashSet<String>,
    errors: Vec<String>,
}

impl View {
    fn from_sync(viewer: i64, page: &Value) -> TestResult<Self> {
        let mut v = View { viewer, ..View::default() };
        for m in page["messages"].as_array().ok_or("messages")? {
            let seq = m["seq"].as_i64().ok_or("seq")?;
            if m["recalled"] == true {
                v.recalled.insert(seq);
            }
            if let Some(b) = m["body"].as_str() {
                v.body.insert(seq, b.to_owned());
            }
            if let Some(e) = m["edited_at"].as_i64() {
                v.edited_at.insert(seq, e);
            }
            assert!(m.get("reactions").is_none(), "no reactions before the storm: {m}");
        }
        Ok(v)
    }

    fn apply(&mut self, f: &Value) -> TestResult {
        let seq = f["seq"].as_i64().unwrap_or_default();
        match f["type"].as_str().unwrap_or_default() {
            "ack" => {
                self.acks.insert(f["id"].as_str().ok_or("ack id")?.to_owned());
            }
            "error" => self.errors.push(f["code"].as_str().unwrap_or_default().to_owned()),
            "recalled" => {
                self.recalled.insert(seq);
                self.body.remove(&seq);
            }
            "edited" => {
                let at = f["edited_at"].as_i64().ok_or("edited_at")?;
                if !self.recalled.contains(&seq) && self.edited_at.get(&seq).is_none_or(|&e| at > e) {
                    self.edited_at.insert(seq, at);
                    self.body.insert(seq, f["body"].as_str().ok_or("body")?.to_owned());
                }
            }
            "reaction" => {
                let key = (seq, f["user"].as_i64().ok_or("user")?, f["emoji"].as_str().ok_or("emoji")?.to_owned());
                let (on, at) = (f["on"].as_bool().ok_or("on")?, f["at"].as_i64().ok_or("at")?);
                if self.reactions.get(&key).is_none_or(|&(_, last)| at > last) {
                    self.reactions.insert(key, (on, at));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Reads frames until the device has heard nothing for [`QUIET`].
    async fn drain(&mut self, w: &mut WsClient) -> TestResult {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while let Some(f) = w.next_within(QUIET).await? {
            self.apply(&f)?;
            assert!(std::time::Instant::now() < deadline, "frames never stopped");
        }
        Ok(())
    }

    /// Asserts that this view is what `page` (a `sync` by the same user) says.
    fn assert_matches(&self, who: &str, page: &Value) -> TestResult {
        for m in page["messages"].as_array().ok_or("messages")? {
            let seq = m["seq"].as_i64().ok_or("seq")?;
            assert_eq!(m["recalled"] == true, self.recalled.contains(&seq), "{who}: recall of {seq}: {m}");
            assert_eq!(m["body"].as_str(), self.body.get(&seq).map(String::as_str), "{who}: body of {seq}: {m}");
            assert_eq!(m["edited_at"].as_i64(), self.edited_at.get(&seq).copied(), "{who}: edited_at of {seq}");
            let mut stored: Vec<(String, i64, bool)> = m["reactions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| {
                            (
                                r["emoji"].as_str().unwrap_or_default().to_owned(),
                                r["count"].as_i64().unwrap_or(0),
                                r["mine"] == true,
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            stored.sort();
            let mut live: HashMap<String, (i64, bool)> = HashMap::new();
            if !self.recalled.contains(&seq) {
                for ((s, user, emoji), (on, _)) in &self.reactions {
                    if *s == seq && *on {
                        let e = live.entry(emoji.clone()).or_default();
                        e.0 += 1;
                        e.1 |= *user == self.viewer;
                    }
                }
            }
            let mut live: Vec<(String, i64, bool)> = live.into_iter().map(|(e, (c, m))| (e, c, m)).collect();
            live.sort();
            assert_eq!(stored, live, "{who}: reactions of {seq}");
        }
        Ok(())
    }
}

/// One device in the storm: its socket, whose it is, and what it has seen.
struct Device {
    name: &'static str,
    ws: WsClient,
    view: View,
}

async fn device(name: &'static str, node: &Http, user: &User, conv: &str) -> TestResult<Device> {
    let mut ws = WsClient::connect(node, user).await?;
    let page = ws.sync(conv, 0, 100).await?;
    Ok(Device { name, view: View::from_sync(user.id, &page)?, ws })
}

/// Every device fires `rounds` rounds of reactions (some on, some off) at `targets` without
/// waiting; the devices in `editors` also edit `targets[0]` every fifth round, and `recaller`
/// recalls `targets[last]` half way through. Then each device drains, and its view must match a
/// `sync` by a fresh device of the same user on another node.
async fn storm(
    devices: &mut [Device],
    conv: &str,
    targets: &[i64],
    editors: &[usize],
    recaller: usize,
    check: &[(Http, User)],
) -> TestResult {
    const ROUNDS: usize = 30;
    let recalled = *targets.last().ok_or("targets")?;
    let mut edits: Vec<(usize, String)> = Vec::new();
    for round in 0..ROUNDS {
        for (i, d) in devices.iter_mut().enumerate() {
            let seq = targets[(round + i) % targets.len()];
            let emoji = EMOJI[(round + 2 * i) % EMOJI.len()];
            let on = (round / 3 + i) % 2 == 0;
            d.ws.send(json!({"type": "react", "conv": conv, "seq": seq, "emoji": emoji, "on": on})).await?;
            if editors.contains(&i) && round % 5 == i % 5 {
                let id = format!("{}-e{round}", d.name);
                let body = format!("edited by {} in round {round}", d.name);
                d.ws.send(json!({"type": "edit", "id": id, "conv": conv, "seq": targets[0], "body": body})).await?;
                edits.push((i, id));
            }
            if i == recaller && round == ROUNDS / 2 {
                d.ws.send(json!({"type": "recall", "conv": conv, "seq": recalled})).await?;
            }
        }
    }
    for d in devices.iter_mut() {
        d.view.drain(&mut d.ws).await?;
    }
    for (i, id) in &edits {
        assert!(devices[*i].view.acks.contains(id), "{}: edit {id} acked", devices[*i].name);
    }
    for d in devices.iter() {
        assert!(d.view.recalled.contains(&recalled), "{}: heard the recall", d.name);
        // Reactions on the recalled message after its recall are refused; nothing else is.
        assert!(d.view.errors.iter().all(|e| e == "already_recalled"), "{}: {:?}", d.name, d.view.errors);
        assert!(d.view.reactions.len() > 2, "{}: heard the reactions", d.name);
    }
    // Every live view equals what a fresh device of the same user reads through another node.
    for d in devices.iter() {
        let (node, user) = check.iter().find(|(_, u)| u.id == d.view.viewer).ok_or("checker")?;
        let fresh = node.login(&user.username).await?;
        let mut w = WsClient::connect(node, &fresh).await?;
        let page = w.sync(conv, 0, 100).await?;
        d.view.assert_matches(d.name, &page)?;
        let (status, history) = node.get(&format!("/api/v1/conversations/{conv}/messages"), &fresh.token).await?;
        assert!(status.is_success(), "{history}");
        d.view.assert_matches(d.name, &history)?;
    }
    Ok(())
}

#[actix_rt::test]
async fn concurrent_edits_reactions_and_a_recall_through_three_nodes_end_alike_everywhere() -> TestResult {
    let c = Cluster::start(3, false).await?;
    let (n1, n2, n3) = (c.node(0), c.node(1), c.node(2));
    let (a, b) = (n1.user("alice").await?, n1.user("bob").await?);
    n1.befriend(&a, &b).await?;
    let conv = conv_of(&a, &b);
    let mut wa = WsClient::connect(&n1, &a).await?;
    let mut targets = Vec::new();
    for i in 0..4 {
        targets.push(wa.say(&conv, &format!("m{i}"), &format!("message {i}")).await?["seq"].as_i64().ok_or("seq")?);
    }
    // A reply made through node 2 quotes what node 1's owner stored.
    let mut wb = WsClient::connect(&n2, &b).await?;
    wb.send(json!({"type": "send", "id": "r0", "conv": conv, "body": "re", "reply_to": targets[0]})).await?;
    wb.expect("ack").await?;
    let m = wa.expect("msg").await?;
    assert_eq!(m["reply"]["state"], "visible", "{m}");
    assert_eq!(m["reply"]["preview"], "message 0", "{m}");
    drop((wa, wb));

    let a_phone = n3.login("alice").await?;
    let mut devices = vec![
        device("alice-laptop", &n1, &a, &conv).await?,
        device("bob", &n2, &b, &conv).await?,
        device("alice-phone", &n3, &a_phone, &conv).await?,
    ];
    // Alice edits from both her devices at once, through two nodes; she recalls from the laptop.
    storm(&mut devices, &conv, &targets, &[0, 2], 0, &[(n2.clone(), a.clone()), (n3.clone(), b.clone())]).await?;
    // The reply's quote follows the edits: a fresh read shows the latest body.
    let (_, page) = n2.get(&format!("/api/v1/conversations/{conv}/messages"), &b.token).await?;
    let reply = page["messages"].as_array().ok_or("messages")?.iter().find(|m| m["id"] == "r0").ok_or("r0")?;
    let latest = devices[1].view.body.get(&targets[0]).ok_or("body")?;
    assert_eq!(reply["reply"]["preview"].as_str(), Some(latest.as_str()), "{reply}");
    Ok(())
}

#[actix_rt::test]
async fn a_group_s_members_on_three_nodes_end_in_one_state_after_concurrent_reactions_and_edits() -> TestResult {
    let c = Cluster::start(3, false).await?;
    let (n1, n2, n3) = (c.node(0), c.node(1), c.node(2));
    let o = n1.user("owner").await?;
    let (m1, m2) = (n1.user("member1").await?, n1.user("member2").await?);
    n1.befriend(&o, &m1).await?;
    n1.befriend(&o, &m2).await?;
    let (s, g) =
        n1.post("/api/v1/groups", Some(&o.token), json!({"name": "Team", "member_ids": [m1.id, m2.id]})).await?;
    assert!(s.is_success(), "{g}");
    let conv = format!("g:{}", g["id"].as_i64().ok_or("group id")?);
    let mut wo = WsClient::connect(&n2, &o).await?;
    let mut targets = Vec::new();
    for i in 0..4 {
        targets
            .push(wo.say(&conv, &format!("g{i}"), &format!("group message {i}")).await?["seq"].as_i64().ok_or("seq")?);
    }
    drop(wo);
    let mut devices = vec![
        device("owner", &n1, &o, &conv).await?,
        device("member1", &n2, &m1, &conv).await?,
        device("member2", &n3, &m2, &conv).await?,
    ];
    storm(
        &mut devices,
        &conv,
        &targets,
        &[0],
        0,
        &[(n3.clone(), o.clone()), (n1.clone(), m1.clone()), (n2.clone(), m2.clone())],
    )
    .await
}
