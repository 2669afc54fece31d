//! Acked means stored: the real `im-server` is killed with SIGKILL again and again while clients
//! send as fast as their in-flight window allows, and after every restart each client resends
//! what had no ack (same ids), then every message ever acked must be in its conversation
//! exactly once, with the seq its ack gave. On SQLite (at both `database.sqlite_synchronous`
//! levels: both survive a killed process) and on PostgreSQL.
//!
//! A kill cannot show what `full` adds over `normal` (surviving a power loss): that needs the
//! machine to lose its page cache, which a test cannot do. docs/ARCHITECTURE.md (Durability)
//! says what each level guarantees.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Http, TestResult, User};
use crate::process::ServerProc;
use crate::ws_client::{conv_of, WsClient};

/// Sends of one client waiting for their ack at once.
const WINDOW: usize = 32;
/// How long a client waits for the acks of its resends after a restart.
const RESEND_WAIT: Duration = Duration::from_secs(20);

/// One sending device and what it knows.
struct Sender {
    user: User,
    conv: String,
    next: u64,
    /// Sent, no ack seen: resent after every reconnect.
    pending: BTreeSet<String>,
    /// Ack seen: id -> seq.
    acked: HashMap<String, i64>,
}

impl Sender {
    fn body(id: &str) -> String {
        format!("crash test message {id}")
    }

    async fn send(&mut self, ws: &mut WsClient, id: String) -> TestResult {
        ws.send(json!({"type": "send", "id": id, "conv": self.conv, "body": Self::body(&id)})).await?;
        self.pending.insert(id);
        Ok(())
    }

    /// Takes one frame (waiting at most `wait`); an ack moves its id from pending to acked.
    async fn take(&mut self, ws: &mut WsClient, wait: Duration) -> TestResult {
        let Some(v) = ws.next_within(wait).await? else { return Ok(()) };
        match v["type"].as_str() {
            Some("ack") => {
                let id = v["id"].as_str().ok_or("ack without id")?.to_owned();
                let seq = v["seq"].as_i64().ok_or("ack without seq")?;
                if let Some(before) = self.acked.insert(id.clone(), seq) {
                    assert_eq!(before, seq, "{id} acked twice with different seqs");
                }
                self.pending.remove(&id);
            }
            Some("error") => return Err(format!("error frame: {v}").into()),
            _ => {}
        }
        Ok(())
    }

    /// Sends new messages, keeping `WINDOW` in flight, until `deadline`.
    async fn load(&mut self, ws: &mut WsClient, deadline: Instant) -> TestResult {
        while Instant::now() < deadline {
            while self.pending.len() < WINDOW {
                let id = format!("u{}-{}", self.user.id, self.next);
                self.next += 1;
                self.send(ws, id).await?;
            }
            self.take(ws, Duration::from_millis(2)).await?;
        }
        Ok(())
    }

    /// After a restart: resends every unacked id and waits for all their acks.
    async fn resend(&mut self, ws: &mut WsClient) -> TestResult<usize> {
        let ids: Vec<String> = self.pending.iter().cloned().collect();
        for id in &ids {
            ws.send(json!({"type": "send", "id": id, "conv": self.conv, "body": Self::body(id)})).await?;
        }
        let deadline = Instant::now() + RESEND_WAIT;
        while !self.pending.is_empty() {
            let left = deadline.checked_duration_since(Instant::now()).ok_or("resent messages not acked in time")?;
            self.take(ws, left.min(Duration::from_millis(100))).await?;
        }
        Ok(ids.len())
    }
}

/// Every message of `conv`, as (client id, seq), paged with `sync`.
async fn messages_of(ws: &mut WsClient, conv: &str) -> TestResult<Vec<(String, i64)>> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = ws.sync(conv, after, 1000).await?;
        let msgs = page["messages"].as_array().ok_or("synced without messages")?;
        for m in msgs {
            let id = m["id"].as_str().ok_or("message without id")?.to_owned();
            let seq = m["seq"].as_i64().ok_or("message without seq")?;
            out.push((id, seq));
            after = seq;
        }
        if page["has_more"] != true || msgs.is_empty() {
            return Ok(out);
        }
    }
}

/// `kills` rounds of: load from every sender, SIGKILL, restart, resend, check.
async fn crash_loop(backend: &str, extra: &[(&str, &str)], kills: u64) -> TestResult {
    let b = backend.to_owned();
    let db = tokio::task::spawn_blocking(move || schema::db::scratch::ScratchDb::of(&b)).await??;
    let mut env =
        vec![("IM__WS__FRAMES_PER_SEC", "100000"), ("IM__WS__BURST", "100000"), ("IM__CHAT__MAX_PAGE", "1000")];
    env.extend_from_slice(extra);
    let mut server = ServerProc::start(&db.url, &env).await?;
    let http = Http::new(&server.base);
    // Three 1:1 conversations; in the first both sides send (two writers in one conversation).
    let mut senders = Vec::new();
    for i in 0..3 {
        let (a, b) = (http.user(&format!("crash_a{i}")).await?, http.user(&format!("crash_b{i}")).await?);
        http.befriend(&a, &b).await?;
        let conv = conv_of(&a, &b);
        if i == 0 {
            senders.push(Sender {
                user: b,
                conv: conv.clone(),
                next: 0,
                pending: BTreeSet::new(),
                acked: HashMap::new(),
            });
        }
        senders.push(Sender { user: a, conv, next: 0, pending: BTreeSet::new(), acked: HashMap::new() });
    }
    let mut resent_total = 0;
    for round in 0..kills {
        // Load, then SIGKILL with up to WINDOW sends of every client in flight; the moment moves
        // from round to round (60-300 ms of load).
        let http = Http::new(&server.base);
        let mut conns = Vec::new();
        for s in &senders {
            conns.push(WsClient::connect(&http, &s.user).await?);
        }
        let deadline = Instant::now() + Duration::from_millis(60 + (round * 53) % 240);
        let loads = senders.iter_mut().zip(conns.iter_mut()).map(|(s, ws)| s.load(ws, deadline));
        for r in futures_util::future::join_all(loads).await {
            r?;
        }
        server.kill().await?;
        drop(conns);

        server = ServerProc::start(&db.url, &env).await?;
        let http = Http::new(&server.base);
        let mut conns = Vec::new();
        for s in senders.iter_mut() {
            let mut ws = WsClient::connect(&http, &s.user).await?;
            resent_total += s.resend(&mut ws).await?;
            conns.push(ws);
        }
        // Every acked message exactly once, at its acked seq, in every conversation.
        for (i, s) in senders.iter().enumerate() {
            if senders[..i].iter().any(|o| o.conv == s.conv) {
                continue;
            }
            let stored = messages_of(&mut conns[i], &s.conv).await?;
            let mut seen = HashMap::new();
            for (id, seq) in &stored {
                assert!(seen.insert(id.clone(), *seq).is_none(), "round {round}: {id} stored twice in {}", s.conv);
            }
            let acked: Vec<(&String, &i64)> =
                senders.iter().filter(|o| o.conv == s.conv).flat_map(|o| o.acked.iter()).collect();
            for (id, seq) in &acked {
                assert_eq!(seen.get(*id), Some(*seq), "round {round}: acked {id} (seq {seq}) not stored as acked");
            }
            assert_eq!(stored.len(), acked.len(), "round {round}: {} holds messages nobody saw acked", s.conv);
            assert!(stored.windows(2).all(|w| w[0].1 < w[1].1), "round {round}: seqs out of order in {}", s.conv);
        }
    }
    let acked: usize = senders.iter().map(|s| s.acked.len()).sum();
    // The load was real: hundreds of messages, and sends in flight at the kills.
    assert!(acked as u64 >= kills * 20, "only {acked} messages acked over {kills} kills");
    assert!(resent_total > 0, "no send was in flight at any of the {kills} kills");
    server.kill().await?;
    Ok(())
}

#[actix_rt::test]
async fn sqlite_full_keeps_every_acked_message_through_20_sigkills() -> TestResult {
    crash_loop("sqlite", &[("IM__DATABASE__SQLITE_SYNCHRONOUS", "full")], 20).await
}

#[actix_rt::test]
async fn sqlite_normal_keeps_every_acked_message_through_10_sigkills() -> TestResult {
    crash_loop("sqlite", &[("IM__DATABASE__SQLITE_SYNCHRONOUS", "normal")], 10).await
}

#[actix_rt::test]
async fn postgres_keeps_every_acked_message_through_20_sigkills() -> TestResult {
    crash_loop("postgres", &[], 20).await
}
