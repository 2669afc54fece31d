//! Rich messages over real WebSocket clients: replies and what each reader sees of the quoted
//! message, edits, reactions, forwards, the rules on who may do them, and a device that syncs
//! after being offline ending in the same state as one that saw every event live.

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::groups::group_of;
use crate::helpers::{TestApp, TestResult, User};
use crate::store_tests;
use crate::ws_client::{conv_of, WsClient};

store_tests!(
    replies_quote_what_each_reader_may_see,
    edits_reach_every_device_and_history,
    reactions_once_per_user_and_emoji,
    forwards_carry_the_text_and_the_first_sender,
    offline_sync_ends_in_the_live_state,
    muted_and_later_members_in_groups,
);

mod rules {
    use super::*;
    crate::backend_tests!(tune = tight; edits_off_and_reaction_cap);
}

/// Edits switched off, at most two different emoji per message.
fn tight(s: &mut server::config::Settings) {
    s.chat.edit_window_secs = 0;
    s.chat.max_reactions_per_message = 2;
}

const QUIET: Duration = Duration::from_millis(300);

async fn pair(app: &TestApp) -> TestResult<(User, User, String)> {
    let (a, b) = (app.user("alice").await?, app.user("bob").await?);
    app.befriend(&a, &b).await?;
    let conv = conv_of(&a, &b);
    Ok((a, b, conv))
}

/// The message `seq` of a `synced` answer.
fn message(synced: &Value, seq: i64) -> TestResult<Value> {
    synced["messages"]
        .as_array()
        .and_then(|v| v.iter().find(|m| m["seq"] == seq))
        .cloned()
        .ok_or_else(|| format!("no message {seq} in {synced}").into())
}

/// `[(emoji, count, mine)]` of a message.
fn reactions(m: &Value) -> Vec<(String, i64, bool)> {
    m["reactions"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|r| {
                    let emoji = r["emoji"].as_str().unwrap_or_default().to_owned();
                    (emoji, r["count"].as_i64().unwrap_or(-1), r["mine"].as_bool().unwrap_or(false))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `msg` frame of `seq` (skipping earlier ones, e.g. system messages).
async fn expect_msg(w: &mut WsClient, seq: i64) -> TestResult<Value> {
    loop {
        let m = w.expect("msg").await?;
        if m["seq"] == seq {
            return Ok(m);
        }
    }
}

async fn expect_error(w: &mut WsClient, code: &str) -> TestResult<Value> {
    let e = w.expect("error").await?;
    assert_eq!(e["code"], code, "{e}");
    Ok(e)
}

async fn replies_quote_what_each_reader_may_see(app: TestApp) -> TestResult {
    // 1:1: the quote names the sender and starts the text.
    let (a, b, conv) = pair(&app).await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    let long = "x".repeat(300);
    wa.say(&conv, "a1", &long).await?;
    wb.expect("msg").await?;
    wb.send(json!({"type": "send", "id": "b1", "conv": conv, "body": "agreed", "reply_to": 1})).await?;
    assert_eq!(wb.expect("ack").await?["seq"], 2);
    let m = wa.expect("msg").await?;
    assert_eq!((m["reply"]["seq"].as_i64(), m["reply"]["state"].as_str()), (Some(1), Some("visible")), "{m}");
    assert_eq!(m["reply"]["from"], a.id);
    let preview = m["reply"]["preview"].as_str().ok_or("preview")?;
    assert!(preview.len() < long.len() && long.starts_with(preview.trim_end_matches('…')), "{preview}");
    // A reply to a seq that does not exist (yet), or to nothing at all: refused, nothing stored.
    for bad in [json!(3), json!(0), json!(-1)] {
        wb.send(json!({"type": "send", "id": "b-bad", "conv": conv, "body": "?", "reply_to": bad})).await?;
        let e = expect_error(&mut wb, "invalid_reply").await?;
        assert_eq!(e["id"], "b-bad");
    }
    wb.send(json!({"type": "send", "id": "b-bad", "conv": conv, "body": "?", "reply_to": "one"})).await?;
    expect_error(&mut wb, "invalid_frame").await?;
    assert_eq!(wb.sync(&conv, 0, 50).await?["max_seq"], 2);

    // Deleting the quoted message for myself: my view of the quote says so, the peer's does not.
    wa.send(json!({"type": "delete", "conv": conv, "seq": 1})).await?;
    wa.expect("deleted").await?;
    assert_eq!(message(&wa.sync(&conv, 0, 50).await?, 2)?["reply"]["state"], "deleted");
    assert_eq!(message(&wb.sync(&conv, 0, 50).await?, 2)?["reply"]["state"], "visible");
    // Recalling it: everyone sees "recalled", with no text.
    wa.send(json!({"type": "recall", "conv": conv, "seq": 1})).await?;
    wb.expect("recalled").await?;
    let q = message(&wb.sync(&conv, 0, 50).await?, 2)?["reply"].clone();
    assert_eq!((q["state"].as_str(), q.get("preview")), (Some("recalled"), None), "{q}");
    let (s, page) = app.get(&format!("/api/v1/conversations/{conv}/messages?limit=10"), &b.token).await?;
    assert_eq!(s, StatusCode::OK);
    let item = page["messages"].as_array().and_then(|v| v.iter().find(|m| m["seq"] == 2)).ok_or("http history")?;
    assert_eq!(item["reply"]["state"], "recalled", "HTTP history quotes like sync: {item}");

    // A group member who joined after the quoted message must not read it in the quote, live or
    // in history; the others do.
    let (gid, gconv, o, m) = group_of(&app, &["anna"]).await?;
    let mut wo = WsClient::connect(&app, &o).await?;
    let mut wanna = WsClient::connect(&app, &m[0]).await?;
    wo.say(&gconv, "o1", "before cleo joined").await?;
    let cleo = app.user("cleo").await?;
    app.befriend(&o, &cleo).await?;
    let (s, _) =
        app.post(&format!("/api/v1/groups/{gid}/members"), Some(&o.token), json!({"user_ids": [cleo.id]})).await?;
    assert_eq!(s, StatusCode::OK);
    let mut wc = WsClient::connect(&app, &cleo).await?;
    let quoted = wo.sync(&gconv, 0, 50).await?["max_seq"].as_i64().ok_or("max_seq")?;
    let first = message(&wo.sync(&gconv, 0, 50).await?, 1)?;
    assert_eq!(first["body"], "before cleo joined");
    wanna.send(json!({"type": "send", "id": "n1", "conv": gconv, "body": "re", "reply_to": 1})).await?;
    let seq = wanna.expect("ack").await?["seq"].as_i64().ok_or("seq")?;
    assert!(seq > quoted);
    let live_o = expect_msg(&mut wo, seq).await?;
    assert_eq!(
        (live_o["reply"]["state"].as_str(), live_o["reply"]["preview"].as_str()),
        (Some("visible"), Some("before cleo joined"))
    );
    let live_c = expect_msg(&mut wc, seq).await?;
    assert_eq!(live_c["reply"]["state"], "not_visible", "{live_c}");
    assert!(live_c["reply"].get("preview").is_none() && live_c["reply"].get("from").is_none(), "{live_c}");
    let synced = wc.sync(&gconv, 0, 50).await?;
    let hist = message(&synced, seq)?;
    assert_eq!(hist["reply"]["state"], "not_visible", "{hist}");
    assert!(hist["reply"].get("preview").is_none(), "{hist}");
    // Cleo cannot reply to what she cannot read either.
    wc.send(json!({"type": "send", "id": "c1", "conv": gconv, "body": "?", "reply_to": 1})).await?;
    expect_error(&mut wc, "invalid_reply").await?;
    Ok(())
}

async fn edits_reach_every_device_and_history(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let a2 = app.login("alice").await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wa2 = WsClient::connect(&app, &a2).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    wa.say(&conv, "a1", "teh typo").await?;
    wb.expect("msg").await?;
    wa2.expect("msg").await?;

    wa.send(json!({"type": "edit", "id": "e1", "conv": conv, "seq": 1, "body": "the typo"})).await?;
    let ack = wa.expect("ack").await?;
    assert_eq!((ack["id"].as_str(), ack["seq"].as_i64()), (Some("e1"), Some(1)));
    let at = ack["ts"].as_i64().ok_or("ts")?;
    for w in [&mut wa, &mut wa2, &mut wb] {
        let e = w.expect("edited").await?;
        assert_eq!(
            (e["conv"].as_str(), e["seq"].as_i64(), e["body"].as_str()),
            (Some(conv.as_str()), Some(1), Some("the typo"))
        );
        assert_eq!(e["edited_at"], at);
    }
    // A resend of the same edit is acked again with the same time, and nobody is told twice.
    wa.send(json!({"type": "edit", "id": "e1", "conv": conv, "seq": 1, "body": "the typo"})).await?;
    assert_eq!(wa.expect("ack").await?["ts"], at);
    wb.expect_no("edited", QUIET).await?;
    // History and sync give the latest body and when it was edited.
    let m = message(&wb.sync(&conv, 0, 10).await?, 1)?;
    assert_eq!((m["body"].as_str(), m["edited_at"].as_i64()), (Some("the typo"), Some(at)));
    // A second edit is later than the first.
    wa.send(json!({"type": "edit", "id": "e2", "conv": conv, "seq": 1, "body": "the typo, fixed"})).await?;
    let at2 = wa.expect("ack").await?["ts"].as_i64().ok_or("ts")?;
    assert!(at2 > at);
    assert_eq!(wb.expect("edited").await?["edited_at"], at2);

    // Not mine, no such seq, a stranger's conversation, empty: refused with the edit's id.
    wb.send(json!({"type": "edit", "id": "x1", "conv": conv, "seq": 1, "body": "hijack"})).await?;
    assert_eq!(expect_error(&mut wb, "not_your_message").await?["id"], "x1");
    wa.send(json!({"type": "edit", "id": "x2", "conv": conv, "seq": 9, "body": "?"})).await?;
    expect_error(&mut wa, "message_not_found").await?;
    let (c, d) = (app.user("carol").await?, app.user("dave").await?);
    app.befriend(&c, &d).await?;
    let mut wc = WsClient::connect(&app, &c).await?;
    wc.say(&conv_of(&c, &d), "c1", "ours").await?;
    wa.send(json!({"type": "edit", "id": "x3", "conv": conv_of(&c, &d), "seq": 1, "body": "mine now"})).await?;
    let e = wa.expect("error").await?;
    assert_eq!(e["id"], "x3");
    assert!(e["code"] == "unknown_conversation" || e["code"] == "not_allowed", "{e}");
    wa.send(json!({"type": "edit", "id": "x4", "conv": conv, "seq": 1, "body": "  "})).await?;
    expect_error(&mut wa, "empty_message").await?;
    wa.send(json!({"type": "edit", "id": "x5", "conv": conv, "seq": 1, "body": "y".repeat(4001)})).await?;
    expect_error(&mut wa, "message_too_long").await?;
    let m = message(&wb.sync(&conv, 0, 10).await?, 1)?;
    assert_eq!(m["body"], "the typo, fixed", "nothing refused was stored");

    // Recalled messages cannot be edited; the window closes after 15 minutes by default.
    wa.say(&conv, "a2", "to recall").await?;
    wa.send(json!({"type": "recall", "conv": conv, "seq": 2})).await?;
    wa.expect("recalled").await?;
    wa.send(json!({"type": "edit", "id": "x6", "conv": conv, "seq": 2, "body": "back"})).await?;
    expect_error(&mut wa, "already_recalled").await?;
    app.clock.advance(15 * 60 * 1000 + 1);
    wa.send(json!({"type": "edit", "id": "x7", "conv": conv, "seq": 1, "body": "too late"})).await?;
    expect_error(&mut wa, "edit_window_passed").await?;
    // ...but a resend of an edit that was applied is still acked.
    wa.send(json!({"type": "edit", "id": "e2", "conv": conv, "seq": 1, "body": "the typo, fixed"})).await?;
    assert_eq!(wa.expect("ack").await?["ts"], at2);
    Ok(())
}

async fn reactions_once_per_user_and_emoji(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let a2 = app.login("alice").await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wa2 = WsClient::connect(&app, &a2).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    wa.say(&conv, "a1", "lunch?").await?;
    wb.expect("msg").await?;

    wb.send(json!({"type": "react", "conv": conv, "seq": 1, "emoji": "👍"})).await?;
    let mut last = 0;
    for w in [&mut wa, &mut wa2, &mut wb] {
        let r = w.expect("reaction").await?;
        assert_eq!(
            (r["seq"].as_i64(), r["user"].as_i64(), r["emoji"].as_str(), r["on"].as_bool()),
            (Some(1), Some(b.id), Some("👍"), Some(true))
        );
        last = r["at"].as_i64().ok_or("at")?;
    }
    // The same reaction again changes nothing: the peer hears nothing, and the reacting user's
    // devices get the state confirmed (a later `at`, still on).
    wb.send(json!({"type": "react", "conv": conv, "seq": 1, "emoji": "👍", "on": true})).await?;
    let r = wb.expect("reaction").await?;
    assert_eq!((r["emoji"].as_str(), r["on"].as_bool()), (Some("👍"), Some(true)));
    assert!(r["at"].as_i64().ok_or("at")? > last);
    last = r["at"].as_i64().ok_or("at")?;
    wa.expect_no("reaction", QUIET).await?;
    wa.send(json!({"type": "react", "conv": conv, "seq": 1, "emoji": "👍"})).await?;
    wa.send(json!({"type": "react", "conv": conv, "seq": 1, "emoji": "🎉"})).await?;
    for _ in 0..2 {
        let at = wb.expect("reaction").await?["at"].as_i64().ok_or("at")?;
        assert!(at > last, "reaction times grow within the conversation");
        last = at;
        // Every device of the reacting user hears of it too.
        assert_eq!(wa.expect("reaction").await?["at"], at);
        assert_eq!(wa2.expect("reaction").await?["at"], at);
    }
    let m = message(&wa.sync(&conv, 0, 10).await?, 1)?;
    assert_eq!(reactions(&m), [("👍".to_owned(), 2, true), ("🎉".to_owned(), 1, true)]);
    let m = message(&wb.sync(&conv, 0, 10).await?, 1)?;
    assert_eq!(reactions(&m), [("👍".to_owned(), 2, true), ("🎉".to_owned(), 1, false)]);
    // Removing: once; a second removal is a no-op.
    wa.send(json!({"type": "react", "conv": conv, "seq": 1, "emoji": "🎉", "on": false})).await?;
    let r = wb.expect("reaction").await?;
    assert_eq!((r["emoji"].as_str(), r["on"].as_bool()), (Some("🎉"), Some(false)));
    assert_eq!(wa.expect("reaction").await?["on"], false);
    assert_eq!(wa2.expect("reaction").await?["on"], false);
    wa.send(json!({"type": "react", "conv": conv, "seq": 1, "emoji": "🎉", "on": false})).await?;
    assert_eq!(wa.expect("reaction").await?["on"], false, "the no-op removal is confirmed to me");
    assert_eq!(wa2.expect("reaction").await?["on"], false);
    wb.expect_no("reaction", QUIET).await?;
    assert_eq!(reactions(&message(&wb.sync(&conv, 0, 10).await?, 1)?), [("👍".to_owned(), 2, true)]);

    // Outside the allowed set, unknown seq, malformed, a recalled message, a stranger.
    for emoji in ["💩", "👍👍", "", "a"] {
        wa.send(json!({"type": "react", "conv": conv, "seq": 1, "emoji": emoji})).await?;
        expect_error(&mut wa, "invalid_reaction").await?;
    }
    wa.send(json!({"type": "react", "conv": conv, "seq": 5, "emoji": "👍"})).await?;
    expect_error(&mut wa, "message_not_found").await?;
    wa.send(json!({"type": "react", "conv": conv, "seq": "1", "emoji": "👍"})).await?;
    expect_error(&mut wa, "invalid_frame").await?;
    wa.say(&conv, "a2", "oops").await?;
    wa.send(json!({"type": "recall", "conv": conv, "seq": 2})).await?;
    wb.expect("recalled").await?;
    wb.send(json!({"type": "react", "conv": conv, "seq": 2, "emoji": "😂"})).await?;
    expect_error(&mut wb, "already_recalled").await?;
    let eve = app.user("eve").await?;
    let mut we = WsClient::connect(&app, &eve).await?;
    we.send(json!({"type": "react", "conv": conv, "seq": 1, "emoji": "👎"})).await?;
    let e = we.expect("error").await?;
    assert!(e["code"] == "unknown_conversation" || e["code"] == "not_allowed", "{e}");
    wa.expect_no("reaction", QUIET).await?;
    assert_eq!(reactions(&message(&wb.sync(&conv, 0, 10).await?, 1)?), [("👍".to_owned(), 2, true)]);

    // After an unfriending, the pair can no more react than write.
    app.delete(&format!("/api/v1/friends/{}", b.id), &a.token).await?;
    wb.send(json!({"type": "react", "conv": conv, "seq": 1, "emoji": "🎉"})).await?;
    expect_error(&mut wb, "not_friends").await?;
    Ok(())
}

async fn forwards_carry_the_text_and_the_first_sender(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let (gid, gconv, o, m) = group_of(&app, &["anna"]).await?;
    app.befriend(&o, &a).await?;
    let (s, _) =
        app.post(&format!("/api/v1/groups/{gid}/members"), Some(&o.token), json!({"user_ids": [a.id]})).await?;
    assert_eq!(s, StatusCode::OK);
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    let mut wanna = WsClient::connect(&app, &m[0]).await?;
    wb.say(&conv, "b1", "party at 8").await?;
    wa.expect("msg").await?;
    wa.send(json!({"type": "react", "conv": conv, "seq": 1, "emoji": "🎉"})).await?;
    wb.expect("reaction").await?;

    // Alice forwards Bob's message into the group: Anna sees Bob's text, marked forwarded from
    // Bob, sent by Alice, with none of the original's reactions.
    wa.send(json!({"type": "send", "id": "f1", "conv": gconv, "forward": {"conv": conv, "seq": 1}})).await?;
    let seq = wa.expect("ack").await?["seq"].as_i64().ok_or("seq")?;
    let got = wanna.expect("msg").await?;
    assert_eq!(
        (got["seq"].as_i64(), got["from"].as_i64(), got["body"].as_str()),
        (Some(seq), Some(a.id), Some("party at 8"))
    );
    assert_eq!(got["forwarded_from"], b.id);
    let hist = message(&wanna.sync(&gconv, 0, 50).await?, seq)?;
    assert_eq!((hist["forwarded_from"].as_i64(), reactions(&hist).len()), (Some(b.id), 0), "{hist}");
    // A forward of the forward still names Bob; it cannot be edited.
    let (c, d) = (m[0].clone(), app.user("dora").await?);
    app.befriend(&c, &d).await?;
    let cd = conv_of(&c, &d);
    wanna.send(json!({"type": "send", "id": "f2", "conv": cd, "forward": {"conv": gconv, "seq": seq}})).await?;
    wanna.expect("ack").await?;
    assert_eq!(message(&wanna.sync(&cd, 0, 10).await?, 1)?["forwarded_from"], b.id);
    wa.send(json!({"type": "edit", "id": "fe", "conv": gconv, "seq": seq, "body": "party at 9"})).await?;
    expect_error(&mut wa, "not_editable").await?;

    // What I cannot read I cannot forward: someone else's conversation, a seq that does not exist,
    // a recalled message, one I deleted for myself, a group's past before I joined.
    wanna.send(json!({"type": "send", "id": "f3", "conv": cd, "forward": {"conv": conv, "seq": 1}})).await?;
    assert_eq!(wanna.expect("error").await?["id"], "f3");
    wa.send(json!({"type": "send", "id": "f4", "conv": gconv, "forward": {"conv": conv, "seq": 7}})).await?;
    expect_error(&mut wa, "message_not_found").await?;
    wb.say(&conv, "b2", "nevermind").await?;
    wb.send(json!({"type": "recall", "conv": conv, "seq": 2})).await?;
    wa.expect("recalled").await?;
    wa.send(json!({"type": "send", "id": "f5", "conv": gconv, "forward": {"conv": conv, "seq": 2}})).await?;
    expect_error(&mut wa, "message_not_found").await?;
    wa.send(json!({"type": "delete", "conv": conv, "seq": 1})).await?;
    wa.expect("deleted").await?;
    wa.send(json!({"type": "send", "id": "f6", "conv": gconv, "forward": {"conv": conv, "seq": 1}})).await?;
    expect_error(&mut wa, "message_not_found").await?;
    // Into a conversation I cannot write to: Eve is nobody's friend.
    let eve = app.user("eve").await?;
    wb.send(json!({"type": "send", "id": "f7", "conv": conv_of(&b, &eve), "forward": {"conv": conv, "seq": 1}}))
        .await?;
    assert_eq!(wb.expect("error").await?["id"], "f7");
    // Malformed reference.
    wa.send(json!({"type": "send", "id": "f8", "conv": gconv, "forward": {"conv": conv}})).await?;
    expect_error(&mut wa, "invalid_frame").await?;
    let max = wanna.sync(&gconv, 0, 50).await?["max_seq"].as_i64();
    assert_eq!(max, Some(seq), "nothing refused was stored");
    Ok(())
}

/// What a device knows of a conversation: per seq, (body, edited_at, recalled, reactions as
/// emoji -> users).
type View = BTreeMap<i64, (Option<String>, Option<i64>, bool, BTreeMap<String, i64>)>;

/// Applies live frames to a view the way a client does: `edited` if newer, `reaction` by time per
/// (seq, user, emoji).
#[derive(Default)]
struct LiveDevice {
    view: View,
    reacted: BTreeMap<(i64, i64, String), (i64, bool)>,
}

impl LiveDevice {
    fn apply(&mut self, f: &Value) {
        let seq = f["seq"].as_i64().unwrap_or_default();
        match f["type"].as_str() {
            Some("msg") => {
                let body = f["body"].as_str().map(str::to_owned);
                self.view.insert(seq, (body, None, false, BTreeMap::new()));
            }
            Some("edited") => {
                if let Some(m) = self.view.get_mut(&seq) {
                    let at = f["edited_at"].as_i64();
                    if m.1 < at {
                        m.0 = f["body"].as_str().map(str::to_owned);
                        m.1 = at;
                    }
                }
            }
            Some("recalled") => {
                if let Some(m) = self.view.get_mut(&seq) {
                    m.0 = None;
                    m.2 = true;
                }
            }
            Some("reaction") => {
                let key =
                    (seq, f["user"].as_i64().unwrap_or_default(), f["emoji"].as_str().unwrap_or_default().to_owned());
                let (at, on) = (f["at"].as_i64().unwrap_or_default(), f["on"].as_bool().unwrap_or(false));
                if self.reacted.get(&key).is_none_or(|(seen, _)| *seen < at) {
                    self.reacted.insert(key, (at, on));
                }
            }
            _ => {}
        }
    }

    fn state(&self) -> View {
        let mut v = self.view.clone();
        for ((seq, _, emoji), (_, on)) in &self.reacted {
            if let (true, Some(m)) = (*on, v.get_mut(seq)) {
                if !m.2 {
                    *m.3.entry(emoji.clone()).or_default() += 1;
                }
            }
        }
        v
    }
}

fn synced_view(synced: &Value) -> View {
    let mut v = View::new();
    for m in synced["messages"].as_array().into_iter().flatten() {
        let counts = reactions(m).into_iter().map(|(e, n, _)| (e, n)).collect();
        v.insert(
            m["seq"].as_i64().unwrap_or_default(),
            (
                m["body"].as_str().map(str::to_owned),
                m["edited_at"].as_i64(),
                m["recalled"].as_bool().unwrap_or(false),
                counts,
            ),
        );
    }
    v
}

async fn offline_sync_ends_in_the_live_state(app: TestApp) -> TestResult {
    let (gid, conv, o, m) = group_of(&app, &["anna", "ben"]).await?;
    let _ = gid;
    let o2 = app.login("owner").await?;
    let mut live = WsClient::connect(&app, &o2).await?;
    let mut wo = WsClient::connect(&app, &o).await?;
    let mut wa = WsClient::connect(&app, &m[0]).await?;
    let mut wb = WsClient::connect(&app, &m[1]).await?;
    let mut device = LiveDevice::default();
    // Sends, edits, reactions from three users, some toggled, a recall of a reacted message,
    // an edit overtaken by a later one; both devices then compare.
    for i in 0..6 {
        let w = match i % 3 {
            0 => &mut wo,
            1 => &mut wa,
            _ => &mut wb,
        };
        w.say(&conv, &format!("m{i}"), &format!("message {i}")).await?;
    }
    let base = live.sync(&conv, 0, 50).await?["max_seq"].as_i64().ok_or("max_seq")? - 6;
    let s = |i: i64| base + 1 + i;
    let frames = [
        (0usize, json!({"type": "react", "conv": conv, "seq": s(1), "emoji": "👍"})),
        (1, json!({"type": "react", "conv": conv, "seq": s(1), "emoji": "👍"})),
        (2, json!({"type": "react", "conv": conv, "seq": s(1), "emoji": "❤️"})),
        (1, json!({"type": "edit", "id": "e1", "conv": conv, "seq": s(1), "body": "message 1, edited"})),
        (1, json!({"type": "edit", "id": "e2", "conv": conv, "seq": s(1), "body": "message 1, edited twice"})),
        (0, json!({"type": "react", "conv": conv, "seq": s(1), "emoji": "👍", "on": false})),
        (2, json!({"type": "react", "conv": conv, "seq": s(2), "emoji": "😂"})),
        (2, json!({"type": "recall", "conv": conv, "seq": s(2)})),
        (0, json!({"type": "react", "conv": conv, "seq": s(3), "emoji": "🔥"})),
        (2, json!({"type": "react", "conv": conv, "seq": s(3), "emoji": "🔥"})),
        (0, json!({"type": "edit", "id": "e3", "conv": conv, "seq": s(0), "body": "message 0, edited"})),
        (0, json!({"type": "react", "conv": conv, "seq": s(3), "emoji": "🔥", "on": true})),
    ];
    for (who, f) in frames {
        let w = match who {
            0 => &mut wo,
            1 => &mut wa,
            _ => &mut wb,
        };
        w.send(f).await?;
    }
    // Every frame the live device got, applied as they came, until the conversation is quiet.
    let mut got = 0;
    while let Some(f) = live.next_within(Duration::from_millis(1500)).await? {
        device.apply(&f);
        got += 1;
    }
    assert!(got >= 6 + 10, "the live device saw the events ({got} frames)");
    for w in [&mut wo, &mut wa, &mut wb] {
        w.expect_no("error", Duration::from_millis(50)).await?;
    }
    let live_state: View = device.state().into_iter().filter(|(seq, _)| *seq > base).collect();
    // A device that was offline the whole time.
    let o3 = app.login("owner").await?;
    let mut late = WsClient::connect(&app, &o3).await?;
    let synced: View = synced_view(&late.sync(&conv, base, 50).await?);
    assert_eq!(synced, live_state);
    assert_eq!(synced.get(&s(1)).map(|m| m.0.as_deref()), Some(Some("message 1, edited twice")));
    assert_eq!(synced.get(&s(3)).map(|m| m.3.get("🔥").copied()), Some(Some(2)));
    assert!(synced.get(&s(2)).is_some_and(|m| m.2 && m.3.is_empty()), "a recalled message shows no reactions");
    Ok(())
}

async fn muted_and_later_members_in_groups(app: TestApp) -> TestResult {
    let (gid, conv, o, m) = group_of(&app, &["anna", "ben"]).await?;
    let path = format!("/api/v1/groups/{gid}");
    let mut wo = WsClient::connect(&app, &o).await?;
    let mut wa = WsClient::connect(&app, &m[0]).await?;
    let mut wb = WsClient::connect(&app, &m[1]).await?;
    let first = wa.say(&conv, "a1", "hello team").await?["seq"].as_i64().ok_or("seq")?;
    // A muted member can neither react nor edit; the ban ends with the mute.
    let until = app.clock.now_ms() + 60_000;
    let (s, _) = app.put(&format!("{path}/members/{}/mute", m[0].id), &o.token, json!({"until": until})).await?;
    assert_eq!(s, StatusCode::NO_CONTENT);
    wa.send(json!({"type": "react", "conv": conv, "seq": first, "emoji": "👍"})).await?;
    expect_error(&mut wa, "muted").await?;
    wa.send(json!({"type": "edit", "id": "e1", "conv": conv, "seq": first, "body": "hello all"})).await?;
    expect_error(&mut wa, "muted").await?;
    app.delete(&format!("{path}/members/{}/mute", m[0].id), &o.token).await?;
    // Mute-all: plain members neither; the owner still may.
    app.patch(&path, &o.token, json!({"mute_all": true})).await?;
    wb.send(json!({"type": "react", "conv": conv, "seq": first, "emoji": "👍"})).await?;
    expect_error(&mut wb, "muted").await?;
    wo.send(json!({"type": "react", "conv": conv, "seq": first, "emoji": "👍"})).await?;
    assert_eq!(wa.expect("reaction").await?["user"], o.id);
    app.patch(&path, &o.token, json!({"mute_all": false})).await?;

    // A member who joined later: earlier messages are not theirs to react to, and they are not
    // told about reactions or edits on them; later ones they are.
    let cleo = app.user("cleo").await?;
    app.befriend(&o, &cleo).await?;
    app.post(&format!("{path}/members"), Some(&o.token), json!({"user_ids": [cleo.id]})).await?;
    let mut wc = WsClient::connect(&app, &cleo).await?;
    wc.send(json!({"type": "react", "conv": conv, "seq": first, "emoji": "👍"})).await?;
    expect_error(&mut wc, "message_not_found").await?;
    wa.send(json!({"type": "edit", "id": "e2", "conv": conv, "seq": first, "body": "hello all"})).await?;
    wa.expect("ack").await?;
    wo.expect("edited").await?;
    wb.send(json!({"type": "react", "conv": conv, "seq": first, "emoji": "🎉"})).await?;
    wo.expect("reaction").await?;
    wa.expect("reaction").await?;
    wc.expect_no("edited", QUIET).await?;
    wc.expect_no("reaction", QUIET).await?;
    let later = wa.say(&conv, "a2", "welcome cleo").await?["seq"].as_i64().ok_or("seq")?;
    wc.expect("msg").await?;
    wc.send(json!({"type": "react", "conv": conv, "seq": later, "emoji": "🙏"})).await?;
    assert_eq!(wa.expect("reaction").await?["user"], cleo.id);
    assert_eq!(wc.expect("reaction").await?["emoji"], "🙏");
    // Someone who left is out.
    let (s, _) = app.post(&format!("{path}/leave"), Some(&m[1].token), json!({})).await?;
    assert!(s.is_success(), "{s}");
    wb.send(json!({"type": "react", "conv": conv, "seq": later, "emoji": "👍"})).await?;
    let e = wb.expect("error").await?;
    assert!(
        ["not_allowed", "unknown_conversation", "member_not_found"].contains(&e["code"].as_str().unwrap_or_default()),
        "{e}"
    );
    Ok(())
}

async fn edits_off_and_reaction_cap(app: TestApp) -> TestResult {
    let (a, b, conv) = pair(&app).await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    wa.say(&conv, "a1", "fixed forever").await?;
    wa.send(json!({"type": "edit", "id": "e1", "conv": conv, "seq": 1, "body": "changed"})).await?;
    expect_error(&mut wa, "edit_window_passed").await?;
    // Two different emoji per message at most; more of the same emoji are fine.
    wa.send(json!({"type": "react", "conv": conv, "seq": 1, "emoji": "👍"})).await?;
    wb.send(json!({"type": "react", "conv": conv, "seq": 1, "emoji": "❤️"})).await?;
    wb.send(json!({"type": "react", "conv": conv, "seq": 1, "emoji": "👍"})).await?;
    for _ in 0..3 {
        wa.expect("reaction").await?;
    }
    wb.send(json!({"type": "react", "conv": conv, "seq": 1, "emoji": "🎉"})).await?;
    expect_error(&mut wb, "too_many_reactions").await?;
    let (_, limits) = app.get("/api/v1/limits", &a.token).await?;
    assert_eq!(
        (limits["edit_window_secs"].as_i64(), limits["max_reactions_per_message"].as_i64()),
        (Some(0), Some(2)),
        "{limits}"
    );
    assert_eq!(limits["reactions"].as_array().map(Vec::len), Some(12), "{limits}");
    let m = message(&wa.sync(&conv, 0, 10).await?, 1)?;
    assert_eq!(reactions(&m), [("👍".to_owned(), 2, true), ("❤️".to_owned(), 1, false)]);
    Ok(())
}
