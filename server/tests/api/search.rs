//! Message search over the running server, on every message store: English and Chinese text, a
//! two-character query (below the trigram index's three), the access rules (a stranger, a group's
//! join and leave points, delete-for-me, cleared history), recalled and edited messages,
//! highlights and paging.

use actix_web::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{assert_error, items, TestApp, TestResult, User};
use crate::store_tests;
use crate::ws_client::{conv_of, WsClient};

store_tests!(search_finds_text_in_any_script, search_respects_what_i_may_read, search_pages_newest_first,);

/// `GET /search/messages` with `query` (already URL-encoded) as `who`.
async fn search(app: &TestApp, who: &User, query: &str) -> TestResult<Value> {
    let (s, v) = app.get(&format!("/api/v1/search/messages?{query}"), &who.token).await?;
    assert_eq!(s, StatusCode::OK, "{query}: {v}");
    Ok(v)
}

/// The bodies of a page of hits, in order.
fn bodies(v: &Value) -> TestResult<Vec<String>> {
    Ok(items(v)?.iter().map(|h| h["message"]["body"].as_str().unwrap_or("<none>").to_owned()).collect())
}

fn enc(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

async fn search_finds_text_in_any_script(app: TestApp) -> TestResult {
    let (a, b) = (app.user("alice").await?, app.user("bob").await?);
    app.befriend(&a, &b).await?;
    let conv = conv_of(&a, &b);
    let mut wa = WsClient::connect(&app, &a).await?;
    wa.say(&conv, "1", "Hello World, hello again").await?;
    wa.say(&conv, "2", "我们明天见，明天下午三点").await?;
    wa.say(&conv, "3", "ok then").await?;
    wa.say(&conv, "4", "the typo").await?;
    wa.say(&conv, "5", "secret plan").await?;
    wa.say(&conv, "6", "100% _sure_").await?;

    // English, any case, with every occurrence highlighted (character offsets).
    let v = search(&app, &b, "q=HELLO").await?;
    assert_eq!(bodies(&v)?, vec!["Hello World, hello again"]);
    assert_eq!(items(&v)?[0]["highlights"], json!([[0, 5], [13, 18]]));
    assert_eq!(items(&v)?[0]["message"]["conv"], conv.as_str());
    // Chinese without word splitting: three characters (the trigram index) and two (a scan).
    let v = search(&app, &b, &format!("q={}", enc("明天见"))).await?;
    assert_eq!(bodies(&v)?, vec!["我们明天见，明天下午三点"]);
    assert_eq!(items(&v)?[0]["highlights"], json!([[2, 5]]));
    let v = search(&app, &b, &format!("q={}", enc("明天"))).await?;
    assert_eq!(items(&v)?[0]["highlights"], json!([[2, 4], [6, 8]]));
    // A two-character Latin query, and LIKE's wildcards taken literally.
    assert_eq!(bodies(&search(&app, &a, "q=ok").await?)?, vec!["ok then"]);
    assert_eq!(bodies(&search(&app, &a, &format!("q={}", enc("0%"))).await?)?, vec!["100% _sure_"]);
    assert!(items(&search(&app, &a, &format!("q={}", enc("_s_"))).await?)?.is_empty());
    assert!(items(&search(&app, &a, "q=nothing").await?)?.is_empty());

    // An edit: the latest body is found, the old one no more.
    wa.send(json!({"type": "edit", "id": "e1", "conv": conv, "seq": 4, "body": "the fixed text"})).await?;
    wa.expect("ack").await?;
    assert!(items(&search(&app, &b, "q=typo").await?)?.is_empty());
    let v = search(&app, &b, "q=fixed").await?;
    assert_eq!(bodies(&v)?, vec!["the fixed text"]);
    assert!(items(&v)?[0]["message"]["edited_at"].as_i64().is_some());
    // A recall: gone from search.
    assert_eq!(bodies(&search(&app, &b, "q=secret").await?)?, vec!["secret plan"]);
    wa.send(json!({"type": "recall", "conv": conv, "seq": 5})).await?;
    wa.expect("recalled").await?;
    assert!(items(&search(&app, &b, "q=secret").await?)?.is_empty());
    assert!(items(&search(&app, &b, "q=se").await?)?.is_empty());

    // Bad queries.
    for q in ["q=", "q=%20%20", &format!("q={}", "x".repeat(101))] {
        let got = app.get(&format!("/api/v1/search/messages?{q}"), &a.token).await?;
        assert_error(&got, StatusCode::BAD_REQUEST, "invalid_query");
    }
    let got = app.get("/api/v1/search/messages?q=ok&limit=0", &a.token).await?;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_limit");
    let got = app.get("/api/v1/search/messages?q=ok&before=nonsense", &a.token).await?;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_query");
    Ok(())
}

async fn search_respects_what_i_may_read(app: TestApp) -> TestResult {
    let (a, b, s) = (app.user("alice").await?, app.user("bob").await?, app.user("sam").await?);
    app.befriend(&a, &b).await?;
    let ab = conv_of(&a, &b);
    let mut wa = WsClient::connect(&app, &a).await?;
    wa.say(&ab, "1", "needle one").await?;
    wa.say(&ab, "2", "needle two").await?;
    // A stranger finds nothing, and may not name the conversation.
    assert!(items(&search(&app, &s, "q=needle").await?)?.is_empty());
    let got = app.get(&format!("/api/v1/search/messages?q=needle&conv={}", enc(&ab)), &s.token).await?;
    assert_error(&got, StatusCode::NOT_FOUND, "conversation_not_found");
    // Delete-for-me hides a match from me only.
    let (st, _) = app.delete(&format!("/api/v1/conversations/{ab}/messages/1"), &b.token).await?;
    assert_eq!(st, StatusCode::NO_CONTENT);
    assert_eq!(bodies(&search(&app, &b, "q=needle").await?)?, vec!["needle two"]);
    assert_eq!(bodies(&search(&app, &a, "q=needle").await?)?, vec!["needle two", "needle one"]);
    // Cleared history: nothing up to the watermark.
    let (st, _) = app.delete(&format!("/api/v1/conversations/{ab}/messages"), &a.token).await?;
    assert_eq!(st, StatusCode::OK);
    assert!(items(&search(&app, &a, "q=needle").await?)?.is_empty());
    wa.say(&ab, "3", "needle three").await?;
    assert_eq!(bodies(&search(&app, &a, "q=needle").await?)?, vec!["needle three"]);

    // A group: Sam joins after the first message and leaves before the last.
    app.befriend(&a, &s).await?;
    let (st, g) = app.post("/api/v1/groups", Some(&a.token), json!({"name": "G", "member_ids": [b.id]})).await?;
    assert_eq!(st, StatusCode::CREATED, "{g}");
    let gid = g["id"].as_i64().ok_or("id")?;
    let gc = format!("g:{gid}");
    wa.say(&gc, "g1", "group needle before").await?;
    let (st, _) =
        app.post(&format!("/api/v1/groups/{gid}/members"), Some(&a.token), json!({"user_ids": [s.id]})).await?;
    assert_eq!(st, StatusCode::OK);
    wa.say(&gc, "g2", "group needle during").await?;
    let (st, _) = app.post(&format!("/api/v1/groups/{gid}/leave"), Some(&s.token), json!({})).await?;
    assert_eq!(st, StatusCode::NO_CONTENT);
    wa.say(&gc, "g3", "group needle after").await?;
    assert_eq!(bodies(&search(&app, &s, "q=group%20needle").await?)?, vec!["group needle during"]);
    let v = search(&app, &b, &format!("q=needle&conv={}", enc(&gc))).await?;
    assert_eq!(bodies(&v)?, vec!["group needle after", "group needle during", "group needle before"]);
    // System messages (joined, left) are not searched.
    assert!(items(&search(&app, &b, &format!("q={}", enc("joined"))).await?)?.is_empty());
    Ok(())
}

async fn search_pages_newest_first(app: TestApp) -> TestResult {
    let (a, b, c) = (app.user("alice").await?, app.user("bob").await?, app.user("carol").await?);
    app.befriend(&a, &b).await?;
    app.befriend(&a, &c).await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    let (ab, ac) = (conv_of(&a, &b), conv_of(&a, &c));
    for i in 1..=5 {
        let conv = if i % 2 == 0 { &ab } else { &ac };
        wa.say(conv, &format!("m{i}"), &format!("page item {i}")).await?;
    }
    let mut seen = Vec::new();
    let mut query = "q=page%20item&limit=2".to_owned();
    let mut pages = 0;
    loop {
        let v = search(&app, &a, &query).await?;
        pages += 1;
        seen.extend(bodies(&v)?);
        match v["next_before"].as_str() {
            Some(next) => query = format!("q=page%20item&limit=2&before={}", enc(next)),
            None => break,
        }
        assert!(pages < 5, "too many pages");
    }
    let want: Vec<String> = (1..=5).rev().map(|i| format!("page item {i}")).collect();
    assert_eq!((seen, pages), (want, 3));
    // One conversation only.
    let v = search(&app, &a, &format!("q=item&conv={}", enc(&ab))).await?;
    assert_eq!(bodies(&v)?, vec!["page item 4", "page item 2"]);
    Ok(())
}
