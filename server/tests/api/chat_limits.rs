//! Session limits and faults: flooding, slow readers, silent connections, and a server killed
//! between a send and its ack.

use std::process::Stdio;
use std::time::Duration;

use actix_web::http::StatusCode;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{Http, TestApp, TestResult};
use crate::ws_client::{conv_of, WsClient};

#[actix_rt::test]
async fn flooding_is_refused_then_closed() -> TestResult {
    let app = TestApp::spawn_tuned("sqlite", |s| {
        s.ws.frames_per_sec = 5;
        s.ws.burst = 5;
        s.ws.max_refusals = 20;
    })
    .await?;
    let a = app.user("alice").await?;
    let mut wa = WsClient::connect(&app, &a).await?;
    for i in 0..10 {
        wa.send(json!({"type": "ping", "nonce": i.to_string()})).await?;
    }
    let (mut pongs, mut limited) = (0, 0);
    for _ in 0..10 {
        match wa.next_within(Duration::from_secs(5)).await? {
            Some(v) if v["type"] == "pong" => pongs += 1,
            Some(v) if v["type"] == "error" && v["code"] == "rate_limited" => limited += 1,
            other => return Err(format!("unexpected {other:?}").into()),
        }
    }
    assert!(pongs >= 5 && limited >= 3, "pongs {pongs}, rate_limited {limited}");
    // Keep flooding: the connection is closed with 1008.
    for i in 0..40 {
        if wa.send(json!({"type": "ping", "nonce": i.to_string()})).await.is_err() {
            break;
        }
    }
    assert_eq!(wa.expect_close().await?, 1008);
    Ok(())
}

#[actix_rt::test]
async fn sends_beyond_the_in_flight_limit_are_refused_not_queued() -> TestResult {
    let app = TestApp::spawn_tuned("sqlite", |s| s.ws.max_in_flight = 1).await?;
    let (a, b) = (app.user("alice").await?, app.user("bob").await?);
    app.befriend(&a, &b).await?;
    let conv = conv_of(&a, &b);
    let mut wa = WsClient::connect(&app, &a).await?;
    // One text frame carrying nothing but sends would be one frame; send 30 back to back.
    for i in 0..30 {
        wa.send(json!({"type": "send", "id": format!("f{i}"), "conv": conv, "body": "x"})).await?;
    }
    let (mut acked, mut refused) = (Vec::new(), Vec::new());
    while acked.len() + refused.len() < 30 {
        let v = wa.next_within(Duration::from_secs(10)).await?.ok_or("no answer")?;
        match v["type"].as_str() {
            Some("ack") => acked.push(v["id"].as_str().unwrap_or_default().to_owned()),
            Some("error") if v["code"] == "overloaded" => refused.push(v["id"].as_str().unwrap_or_default().to_owned()),
            _ => return Err(format!("unexpected {v}").into()),
        }
    }
    assert!(!acked.is_empty() && !refused.is_empty(), "acked {acked:?} refused {refused:?}");
    // A refused send was not stored: resending it later succeeds with a new seq.
    let again = wa.say(&conv, &refused[0], "x").await?;
    assert_eq!(again["seq"].as_i64(), Some(acked.len() as i64 + 1));
    Ok(())
}

#[actix_rt::test]
async fn a_slow_reader_is_disconnected_and_loses_nothing() -> TestResult {
    let app = TestApp::spawn_tuned("sqlite", |s| {
        s.ws.frames_per_sec = 100_000;
        s.ws.burst = 100_000;
        s.ws.mailbox = 16;
        s.ws.max_outbound_bytes = 64 * 1024;
        s.ws.max_in_flight = 100_000;
    })
    .await?;
    let (a, b) = (app.user("alice").await?, app.user("bob").await?);
    app.befriend(&a, &b).await?;
    let conv = conv_of(&a, &b);
    let mut wa = WsClient::connect(&app, &a).await?;
    // Bob connects and then never reads.
    let silent_bob = WsClient::connect(&app, &b).await?;
    let body = "z".repeat(4000);
    const N: usize = 1500;
    for i in 0..N {
        wa.send(json!({"type": "send", "id": format!("m{i}"), "conv": conv, "body": body})).await?;
    }
    for _ in 0..N {
        wa.expect("ack").await?;
    }
    // The server let Bob go instead of buffering megabytes for him.
    let mut online = true;
    for _ in 0..100 {
        let on =
            app.state.hub.sessions.send(actors::delivery::ListOnline { users: vec![schema::UserId(b.id)] }).await?;
        if on.is_empty() {
            online = false;
            break;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!online, "a client that does not read must be disconnected");
    drop(silent_bob);
    // Everything is durable: Bob catches up with sync.
    let mut wb = WsClient::connect(&app, &b).await?;
    let mut after = 0;
    let mut got = 0;
    loop {
        let page = wb.sync(&conv, after, 200).await?;
        let msgs = page["messages"].as_array().ok_or("messages")?;
        got += msgs.len();
        after = msgs.last().and_then(|m| m["seq"].as_i64()).unwrap_or(after);
        if page["has_more"] != true {
            break;
        }
    }
    assert_eq!(got, N);
    Ok(())
}

#[actix_rt::test]
async fn silent_connections_are_closed_by_the_heartbeat() -> TestResult {
    let app = TestApp::spawn_tuned("sqlite", |s| {
        s.ws.heartbeat_interval_secs = 1;
        s.ws.client_timeout_secs = 2;
    })
    .await?;
    let a = app.user("alice").await?;
    let b = app.user("bob").await?;
    let mut silent = WsClient::connect(&app, &a).await?;
    let mut lively = WsClient::connect(&app, &b).await?;
    // The lively client answers pings while it waits; the silent one does not read at all.
    assert!(lively.next_within(Duration::from_millis(3500)).await?.is_none());
    assert_eq!(lively.closed, None);
    assert_eq!(silent.expect_close().await?, 1001);
    lively.send(json!({"type": "ping"})).await?;
    lively.expect("pong").await?;
    Ok(())
}

/// A server process of our own (the real binary) on a scratch SQLite file.
struct Proc {
    child: tokio::process::Child,
    base: String,
}

impl Proc {
    async fn start(db_url: &str) -> TestResult<Self> {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_im-server"))
            .env("IM__SERVER__BIND", "127.0.0.1:0")
            .env("IM__DATABASE__URL", db_url)
            .env("IM__AUTH__BCRYPT_COST", "4")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            let line = actix_rt::time::timeout(Duration::from_secs(30), lines.next_line())
                .await??
                .ok_or("server exited before listening")?;
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.trim().to_owned();
            }
        };
        // Keep draining the log so the child never blocks on a full pipe.
        actix_rt::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Proc { child, base })
    }

    async fn kill(mut self) -> TestResult {
        self.child.start_kill()?;
        self.child.wait().await?;
        Ok(())
    }
}

#[actix_rt::test]
async fn a_server_killed_between_send_and_ack_loses_and_doubles_nothing() -> TestResult {
    let db = schema::db::scratch::ScratchDb::sqlite();
    let p = Proc::start(&db.url).await?;
    let http = Http::checked(&p.base);
    let (a, b) = (http.user("alice").await?, http.user("bob").await?);
    http.befriend(&a, &b).await?;
    let conv = conv_of(&a, &b);
    let mut p = Some(p);
    let mut sent = Vec::new();
    for round in 0..6 {
        let proc_ = p.take().ok_or("no server")?;
        let http = Http::checked(&proc_.base);
        let mut wa = WsClient::connect(&http, &a).await?;
        let id = format!("kill-{round}");
        wa.send(json!({"type": "send", "id": id, "conv": conv, "body": format!("round {round}")})).await?;
        // Odd rounds wait for the ack first; even rounds kill at once, racing the write.
        let acked = if round % 2 == 1 { Some(wa.expect("ack").await?) } else { None };
        proc_.kill().await?;
        sent.push(id.clone());
        let next = Proc::start(&db.url).await?;
        let http = Http::checked(&next.base);
        let mut wa = WsClient::connect(&http, &a).await?;
        // The client never trusts an unacked send: it resends with the same id.
        let ack = wa.say(&conv, &id, &format!("round {round}")).await?;
        if let Some(first) = acked {
            assert_eq!(first["seq"], ack["seq"], "an acked message keeps its seq");
        }
        p = Some(next);
    }
    let http = Http::checked(&p.as_ref().ok_or("no server")?.base);
    let mut wb = WsClient::connect(&http, &b).await?;
    let page = wb.sync(&conv, 0, 100).await?;
    let ids: Vec<String> = page["messages"]
        .as_array()
        .ok_or("messages")?
        .iter()
        .filter_map(|m| m["id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(ids, sent, "each message exactly once, in order");
    if let Some(p) = p {
        p.kill().await?;
    }
    Ok(())
}

/// The running conversation and group actors, from `/metrics`.
async fn conversation_actors(app: &TestApp) -> TestResult<u64> {
    let (status, body) = app.raw_get("/metrics", "admin-secret").await?;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body)?;
    let line = text.lines().find(|l| l.starts_with("im_conversation_actors ")).ok_or("no im_conversation_actors")?;
    Ok(line.split_whitespace().nth(1).ok_or("no value")?.parse()?)
}

/// A session keeps the addresses of the actors it talks to. When an actor stops (idle), the
/// session's next frame finds a fresh one through the registry: acked, delivered, seqs going on.
#[actix_rt::test]
async fn a_stopped_conversation_actor_is_found_again_by_the_next_frame() -> TestResult {
    let app = TestApp::spawn_tuned("sqlite", |s| {
        s.chat.conversation_idle_secs = 1;
        s.admin.token = "admin-secret".into();
    })
    .await?;
    let (a, b) = (app.user("alice").await?, app.user("bob").await?);
    app.befriend(&a, &b).await?;
    let conv = conv_of(&a, &b);
    let mut wa = WsClient::connect(&app, &a).await?;
    let mut wb = WsClient::connect(&app, &b).await?;
    assert_eq!(wa.say(&conv, "m1", "before the nap").await?["seq"], 1);
    assert_eq!(wb.expect("msg").await?["seq"], 1);
    assert!(conversation_actors(&app).await? >= 1);
    // Idle for 1 s, checked every second: gone within a few seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while conversation_actors(&app).await? > 0 {
        assert!(std::time::Instant::now() < deadline, "the idle conversation actor never stopped");
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    // Same sessions, so both hold the stopped actor's address.
    assert_eq!(wa.say(&conv, "m2", "after the nap").await?["seq"], 2);
    let m = wb.expect("msg").await?;
    assert_eq!((m["seq"].as_i64(), m["body"].as_str()), (Some(2), Some("after the nap")));
    assert_eq!(wb.say(&conv, "r1", "welcome back").await?["seq"], 3);
    assert_eq!(wa.expect("msg").await?["seq"], 3);
    assert_eq!(conversation_actors(&app).await?, 1);
    Ok(())
}
