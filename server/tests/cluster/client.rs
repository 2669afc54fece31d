//! A client that behaves like a real one under faults: it resends an unacked message with the
//! same id when the server says `unavailable` (or `overloaded`) or when its connection breaks,
//! reconnecting through the same address (a node, or nginx), and it keeps every frame it gets.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::{Http, TestResult, User};
use crate::ws_client::WsClient;

/// How long a message may take to be acked, resends included.
pub const ACK_DEADLINE: Duration = Duration::from_secs(60);

/// One device that resends until acked.
pub struct Reliable {
    pub http: Http,
    pub user: User,
    ws: Option<WsClient>,
    /// Every frame received, in order (across reconnects).
    pub frames: Vec<Value>,
    /// How often the connection was made again.
    pub reconnects: usize,
    /// How often a message was sent again.
    pub resends: usize,
}

impl Reliable {
    /// Connects `user` through `http`.
    pub async fn connect(http: &Http, user: &User) -> TestResult<Self> {
        let mut r = Reliable {
            http: http.clone(),
            user: user.clone(),
            ws: None,
            frames: Vec::new(),
            reconnects: 0,
            resends: 0,
        };
        r.ensure().await?;
        Ok(r)
    }

    async fn ensure(&mut self) -> TestResult<&mut WsClient> {
        let deadline = Instant::now() + ACK_DEADLINE;
        while self.ws.is_none() {
            match WsClient::connect(&self.http, &self.user).await {
                Ok(w) => self.ws = Some(w),
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    actix_rt::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e),
            }
        }
        self.ws.as_mut().ok_or_else(|| "not connected".into())
    }

    /// Sends `send` frame fields `extra` (`{"mentions": ..}`) with `id` until it is acked;
    /// returns the ack's seq.
    pub async fn send(&mut self, conv: &str, id: &str, body: &str, extra: Value) -> TestResult<i64> {
        let mut frame = json!({"type": "send", "id": id, "conv": conv, "body": body});
        if let (Some(f), Some(x)) = (frame.as_object_mut(), extra.as_object()) {
            f.extend(x.clone());
        }
        let deadline = Instant::now() + ACK_DEADLINE;
        let mut first = true;
        while Instant::now() < deadline {
            if !first {
                self.resends += 1;
            }
            first = false;
            if self.ws.is_none() {
                self.reconnects += 1;
            }
            let ws = self.ensure().await?;
            if ws.send(frame.clone()).await.is_err() {
                self.ws = None;
                continue;
            }
            match self.answer(id).await {
                Some(Ok(seq)) => return Ok(seq),
                Some(Err(())) => actix_rt::time::sleep(Duration::from_millis(50)).await,
                None => self.ws = None,
            }
        }
        Err(format!("{} never got an ack for {id}", self.user.username).into())
    }

    /// Waits for the answer to `id`: its seq, `Err` for a refusal to retry, `None` when the
    /// connection broke.
    async fn answer(&mut self, id: &str) -> Option<Result<i64, ()>> {
        loop {
            let ws = self.ws.as_mut()?;
            let v = match ws.next_within(Duration::from_secs(15)).await {
                Ok(Some(v)) => v,
                _ => return None,
            };
            self.frames.push(v.clone());
            match v["type"].as_str() {
                Some("ack") if v["id"] == id => return v["seq"].as_i64().map(Ok),
                Some("error") if v["id"] == id => {
                    let code = v["code"].as_str().unwrap_or_default();
                    assert!(matches!(code, "unavailable" | "overloaded"), "{} refused {id}: {v}", self.user.username);
                    return Some(Err(()));
                }
                _ => {}
            }
        }
    }

    /// Keeps reading for `wait` (what arrives goes to `frames`); reconnects if the connection
    /// broke.
    pub async fn drain(&mut self, wait: Duration) -> TestResult {
        let until = Instant::now() + wait;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            let Some(ws) = self.ws.as_mut() else {
                self.reconnects += 1;
                self.ensure().await?;
                continue;
            };
            match ws.next_within(left).await {
                Ok(Some(v)) => self.frames.push(v),
                Ok(None) if ws.closed.is_some() => self.ws = None,
                Ok(None) => break,
                Err(_) => self.ws = None,
            }
        }
        Ok(())
    }

    /// The seqs of the `msg` frames received for `conv`, in arrival order.
    pub fn live(&self, conv: &str) -> Vec<i64> {
        self.frames
            .iter()
            .filter(|f| f["type"] == "msg" && f["conv"] == conv)
            .filter_map(|f| f["seq"].as_i64())
            .collect()
    }

    /// The whole conversation `conv` as stored: (seq, id, kind, body).
    pub async fn history(&mut self, conv: &str) -> TestResult<Vec<Value>> {
        let mut out = Vec::new();
        let mut after = 0;
        let ws = self.ensure().await?;
        loop {
            let page = ws.sync(conv, after, 200).await?;
            let msgs = page["messages"].as_array().cloned().unwrap_or_default();
            let Some(last) = msgs.last().and_then(|m| m["seq"].as_i64()) else { break };
            after = last;
            out.extend(msgs);
        }
        Ok(out)
    }
}

/// Seqs of a history.
pub fn seqs(history: &[Value]) -> Vec<i64> {
    history.iter().filter_map(|m| m["seq"].as_i64()).collect()
}
