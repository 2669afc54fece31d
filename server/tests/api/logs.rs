//! Structured logs (`log.format = "json"`), read from the real binary's stderr: every line is a
//! JSON object, the access line of a request carries the id it came with (`X-Request-Id`), and
//! the chat line of an acked message carries its user, conversation and seq.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{Http, TestResult};
use crate::process::ServerProc;
use crate::ws_client::{conv_of, WsClient};

/// Waits until a log line satisfies `pred`; returns it parsed.
async fn wait_for(server: &ServerProc, what: &str, pred: impl Fn(&Value) -> bool) -> TestResult<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = server.log().iter().filter_map(|l| serde_json::from_str::<Value>(l).ok()).find(|v| pred(v));
        if let Some(v) = found {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("no log line {what} in {:#?}", server.log()).into());
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn json_lines_carry_request_ids_and_chat_fields() -> TestResult {
    let db = schema::db::scratch::ScratchDb::sqlite();
    let env = [("IM__LOG__FORMAT", "json"), ("RUST_LOG", "info,im::chat=debug")];
    let server = ServerProc::start(&db.url, &env).await?;
    let http = Http::new(&server.base);
    let (a, b) = (http.user("logan").await?, http.user("lucy").await?);
    http.befriend(&a, &b).await?;

    // A request that comes with an id (as from nginx) is logged under it.
    let resp = awc::Client::default()
        .get(format!("{}/api/v1/users/me", server.base))
        .insert_header(("Authorization", format!("Bearer {}", a.token)))
        .insert_header(("X-Request-Id", "req-from-nginx-42"))
        .send()
        .await?;
    assert_eq!(resp.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("req-from-nginx-42"));
    let access = wait_for(&server, "for the request", |v| v["request_id"] == "req-from-nginx-42").await?;
    assert_eq!(access["target"], "im::http");
    assert_eq!(access["method"], "GET");
    assert_eq!(access["path"], "/api/v1/users/me");
    assert_eq!(access["status"], 200);
    assert_eq!(access["client"], "127.0.0.1");
    assert!(access["duration_ms"].is_number(), "{access}");
    // The query string (browsers' `?token=`) never reaches the log.
    let _ = awc::Client::default().get(format!("{}/healthz?token=secret-token-value", server.base)).send().await?;
    wait_for(&server, "for /healthz", |v| v["path"] == "/healthz").await?;

    let conv = conv_of(&a, &b);
    let mut ws = WsClient::connect(&http, &a).await?;
    let ack = ws.say(&conv, "log-1", "hello logs").await?;
    let chat = wait_for(&server, "for the ack", |v| v["target"] == "im::chat" && v["id"] == "log-1").await?;
    assert_eq!(chat["user"], a.id);
    assert_eq!(chat["conv"], conv.as_str());
    assert_eq!(chat["seq"], ack["seq"]);
    assert_eq!(chat["level"], "DEBUG");

    // Every line is one JSON object with the line's own keys.
    let lines = server.log();
    assert!(lines.len() > 5, "{lines:#?}");
    for l in &lines {
        let v: Value = serde_json::from_str(l).map_err(|e| format!("{e}: {l}"))?;
        for key in ["ts", "level", "target", "msg"] {
            assert!(v[key].is_string(), "no {key} in {l}");
        }
        assert!(!l.contains("secret-token-value"), "a token in the log: {l}");
    }
    server.kill().await?;
    Ok(())
}
