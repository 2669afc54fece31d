//! A WebSocket test client over a real socket (awc).

use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

use actix_codec::Framed;
use awc::ws::{self, Frame};
use awc::BoxedSocket;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::helpers::{Http, TestResult, User};

/// How long a test waits for an expected frame.
pub const WAIT: Duration = Duration::from_secs(10);

/// One connected device.
pub struct WsClient {
    conn: Framed<BoxedSocket, ws::Codec>,
    /// Frames received while waiting for another type.
    pub backlog: VecDeque<Value>,
    /// The close code, once the server closed.
    pub closed: Option<u16>,
    /// The kinds (`type`) of the frames received so far.
    pub seen: BTreeSet<String>,
    /// Validators of the frames' schema, as the server serves it.
    schema: &'static (jsonschema::Validator, jsonschema::Validator),
}

impl WsClient {
    /// Connects `user`'s device with a bearer header and reads `hello`. Every frame received
    /// from then on is checked against `/api/v1/ws-schema.json`.
    pub async fn connect(app: &Http, user: &User) -> TestResult<Self> {
        let schema = crate::conformance::frame_validators(app).await?;
        let url = format!("{}/ws", app.base.replace("http://", "ws://"));
        let (_, conn) = awc::Client::new()
            .ws(url)
            .max_frame_size(16 * 1024 * 1024)
            .bearer_auth(&user.token)
            .connect()
            .await
            .map_err(|e| format!("ws connect: {e}"))?;
        let mut c = WsClient { conn, backlog: VecDeque::new(), closed: None, seen: BTreeSet::new(), schema };
        let hello = c.expect("hello").await?;
        assert_eq!(hello["user_id"], user.id);
        Ok(c)
    }

    /// Sends a JSON frame.
    pub async fn send(&mut self, v: Value) -> TestResult {
        self.conn.send(ws::Message::Text(v.to_string().into())).await?;
        Ok(())
    }

    /// Sends raw text or bytes.
    pub async fn send_raw(&mut self, m: ws::Message) -> TestResult {
        self.conn.send(m).await?;
        Ok(())
    }

    /// The next JSON frame from the server (answering pings), or `None` if closed or nothing came
    /// within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> TestResult<Option<Value>> {
        if let Some(v) = self.backlog.pop_front() {
            return Ok(Some(v));
        }
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let item = match actix_rt::time::timeout(left, self.conn.next()).await {
                Err(_) => return Ok(None),
                Ok(None) => return Ok(None),
                Ok(Some(item)) => item?,
            };
            match item {
                Frame::Text(b) => {
                    let v: Value = serde_json::from_slice(&b)?;
                    crate::conformance::check_server_frame(self.schema, &v)?;
                    self.seen.insert(v["type"].as_str().unwrap_or_default().to_owned());
                    return Ok(Some(v));
                }
                Frame::Ping(p) => self.conn.send(ws::Message::Pong(p)).await?,
                Frame::Close(reason) => {
                    self.closed = Some(reason.map(|r| u16::from(r.code)).unwrap_or(1005));
                    return Ok(None);
                }
                _ => {}
            }
        }
    }

    /// Waits for a frame of `kind`, keeping others in the backlog.
    pub async fn expect(&mut self, kind: &str) -> TestResult<Value> {
        let mut skipped = Vec::new();
        let deadline = std::time::Instant::now() + WAIT;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Some(v) = self.next_within(left).await? else { break };
            if v["type"] == kind {
                for s in skipped.into_iter().rev() {
                    self.backlog.push_front(s);
                }
                return Ok(v);
            }
            skipped.push(v);
        }
        Err(format!("no {kind} frame (closed: {:?}); got {skipped:?}", self.closed).into())
    }

    /// Asserts that no frame of `kind` arrives within `wait` (others are kept).
    pub async fn expect_no(&mut self, kind: &str, wait: Duration) -> TestResult {
        let mut kept = Vec::new();
        while let Some(v) = self.next_within(wait).await? {
            assert_ne!(v["type"], kind, "unexpected {v}");
            kept.push(v);
        }
        self.backlog.extend(kept);
        Ok(())
    }

    /// Waits until the server closes the connection; returns the close code.
    pub async fn expect_close(&mut self) -> TestResult<u16> {
        let deadline = std::time::Instant::now() + WAIT;
        while self.closed.is_none() {
            let left = deadline.checked_duration_since(std::time::Instant::now()).ok_or("not closed in time")?;
            if self.next_within(left).await?.is_none() && self.closed.is_none() {
                return Err("connection ended without a close frame".into());
            }
        }
        self.closed.ok_or_else(|| "not closed".into())
    }

    /// Sends a text message and waits for its ack.
    pub async fn say(&mut self, conv: &str, id: &str, body: &str) -> TestResult<Value> {
        self.send(json!({"type": "send", "id": id, "conv": conv, "body": body})).await?;
        let ack = self.expect("ack").await?;
        assert_eq!(ack["id"], id, "{ack}");
        Ok(ack)
    }

    /// Sends `sync` and returns the `synced` answer.
    pub async fn sync(&mut self, conv: &str, after: i64, limit: i64) -> TestResult<Value> {
        self.send(json!({"type": "sync", "conv": conv, "after_seq": after, "limit": limit})).await?;
        self.expect("synced").await
    }
}

/// The 1:1 conversation id of two users.
pub fn conv_of(a: &User, b: &User) -> String {
    let (lo, hi) = if a.id < b.id { (a.id, b.id) } else { (b.id, a.id) };
    format!("d:{lo}:{hi}")
}
