//! One WebSocket connection as the generator drives it: a reader task that never waits on
//! anything but the socket (it hands every text frame to a callback with its arrival time and
//! answers pings), and a writer task fed through an unbounded queue, so a scenario can schedule
//! sends without ever blocking on the network.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use awc::ws::{CloseCode, CloseReason, Frame, Message};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::api::Api;

/// Largest frame the generator accepts from the server.
const MAX_FRAME: usize = 16 * 1024 * 1024;

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The close code the server sent; `None` when the socket ended without a close frame.
    pub code: Option<u16>,
    /// The close reason, or the transport error.
    pub reason: String,
    /// When.
    pub at: Instant,
}

impl Closed {
    /// A short label for counting: `1008 slow_consumer`, `no close frame`, ...
    pub fn label(&self) -> String {
        match self.code {
            Some(c) => format!("{c} {}", self.reason).trim().to_owned(),
            None => format!("no close frame: {}", self.reason),
        }
    }
}

/// The writing half of a connection and how it ended.
#[derive(Clone)]
pub struct Socket {
    tx: mpsc::UnboundedSender<Message>,
    closed: Rc<RefCell<Option<Closed>>>,
    /// When we closed it ourselves (closes after this are expected).
    closing: Rc<RefCell<bool>>,
}

impl Socket {
    /// Queues a text frame; false if the connection is gone.
    pub fn send_text(&self, text: String) -> bool {
        self.tx.send(Message::Text(text.into())).is_ok()
    }

    /// How the connection ended, if it did.
    pub fn closed(&self) -> Option<Closed> {
        self.closed.borrow().clone()
    }

    /// True once [`Socket::close`] was called.
    pub fn closing(&self) -> bool {
        *self.closing.borrow()
    }

    /// Sends a normal close frame; the writer then stops.
    pub fn close(&self) {
        *self.closing.borrow_mut() = true;
        let _ = self.tx.send(Message::Close(Some(CloseReason { code: CloseCode::Normal, description: None })));
    }
}

/// The fields of a server frame the generator looks at (the frames are
/// `schema::protocol::ServerFrame`; decoding only these keeps the generator's CPU low).
#[derive(Debug, Deserialize)]
pub struct FrameView<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    pub id: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    pub seq: Option<i64>,
    #[serde(default)]
    pub from: Option<i64>,
    #[serde(default, borrow)]
    pub code: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    pub user_id: Option<i64>,
    /// `reaction`: who reacted.
    #[serde(default)]
    pub user: Option<i64>,
    /// `msg` and `edited`: the text.
    #[serde(default, borrow)]
    pub body: Option<std::borrow::Cow<'a, str>>,
}

/// Connects `token`'s device to `/ws`, reads `hello`, and starts the reader and writer tasks
/// (on the current actix system). `on_text` gets every later text frame with its arrival time.
/// Returns the socket and the `hello` frame's `user_id`.
pub async fn connect<F>(api: &Api, token: &str, timeout: Duration, mut on_text: F) -> anyhow::Result<(Socket, i64)>
where
    F: FnMut(&[u8], Instant) + 'static,
{
    let connecting = api.client().ws(api.ws_url()).max_frame_size(MAX_FRAME).bearer_auth(token).connect();
    let (_, mut conn) = actix_rt::time::timeout(timeout, connecting)
        .await
        .map_err(|_| anyhow!("ws connect: timed out"))?
        .map_err(|e| anyhow!("ws connect: {e}"))?;
    let user_id = loop {
        match actix_rt::time::timeout(timeout, conn.next()).await {
            Err(_) => bail!("no hello within {timeout:?}"),
            Ok(None) => bail!("connection closed before hello"),
            Ok(Some(Err(e))) => bail!("before hello: {e}"),
            Ok(Some(Ok(Frame::Text(b)))) => {
                let v: FrameView<'_> = serde_json::from_slice(&b)?;
                if v.kind != "hello" {
                    bail!("first frame is {} not hello", v.kind);
                }
                break v.user_id.ok_or_else(|| anyhow!("hello without user_id"))?;
            }
            Ok(Some(Ok(Frame::Close(r)))) => bail!("closed before hello: {r:?}"),
            Ok(Some(Ok(_))) => {}
        }
    };
    let (mut sink, mut stream) = conn.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    let closed = Rc::new(RefCell::new(None));
    let closing = Rc::new(RefCell::new(false));

    let pong = tx.clone();
    let closed_r = closed.clone();
    actix_rt::spawn(async move {
        let mut end = None;
        while let Some(item) = stream.next().await {
            let at = Instant::now();
            match item {
                Ok(Frame::Text(b)) => on_text(&b, at),
                Ok(Frame::Ping(p)) => {
                    let _ = pong.send(Message::Pong(p));
                }
                Ok(Frame::Close(r)) => {
                    end = Some(Closed {
                        code: Some(r.as_ref().map(|r| u16::from(r.code)).unwrap_or(1005)),
                        reason: r.and_then(|r| r.description).unwrap_or_default(),
                        at,
                    });
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    end = Some(Closed { code: None, reason: e.to_string(), at });
                    break;
                }
            }
        }
        let end = end.unwrap_or_else(|| Closed { code: None, reason: "eof".into(), at: Instant::now() });
        *closed_r.borrow_mut() = Some(end);
    });

    actix_rt::spawn(async move {
        while let Some(m) = rx.recv().await {
            let last = matches!(m, Message::Close(_));
            if sink.feed(m).await.is_err() {
                return;
            }
            let mut stop = last;
            while !stop {
                match rx.try_recv() {
                    Ok(m) => {
                        stop = matches!(m, Message::Close(_));
                        if sink.feed(m).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            if sink.flush().await.is_err() || stop {
                break;
            }
        }
        let _ = sink.close().await;
    });
    Ok((Socket { tx, closed, closing }, user_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use schema::protocol::{ServerFrame, WireMessage};
    use schema::{ConvId, UserId};

    /// The view decodes what the server encodes.
    #[test]
    fn view_reads_server_frames() -> anyhow::Result<()> {
        let conv = ConvId("d:1:2".into());
        let ack = ServerFrame::Ack { id: "lg0-7".into(), conv: conv.clone(), seq: 9, ts: 1 }.encode();
        let v: FrameView<'_> = serde_json::from_str(&ack)?;
        assert_eq!((v.kind.as_ref(), v.id.as_deref(), v.seq), ("ack", Some("lg0-7"), Some(9)));
        let msg = WireMessage {
            conv,
            seq: 3,
            from: UserId(1),
            id: "lg0-8".into(),
            kind: "text".into(),
            body: Some("a \"quoted\" body".into()),
            ts: 2,
            mentions: vec![],
            mention_all: false,
            recalled: false,
            ..WireMessage::default()
        };
        let m = ServerFrame::Msg { msg, silent: false, mentioned: false }.encode();
        let v: FrameView<'_> = serde_json::from_str(&m)?;
        assert_eq!((v.kind.as_ref(), v.id.as_deref(), v.seq, v.from), ("msg", Some("lg0-8"), Some(3), Some(1)));
        let e = ServerFrame::error(schema::error::ErrorCode::RateLimited, "slow down", Some("x\"y".into())).encode();
        let v: FrameView<'_> = serde_json::from_str(&e)?;
        assert_eq!(
            (v.kind.as_ref(), v.code.as_deref(), v.id.as_deref()),
            ("error", Some("rate_limited"), Some("x\"y"))
        );
        let h = ServerFrame::Hello { user_id: UserId(5), device_id: 1, node: "n".into(), heartbeat_secs: 15 }.encode();
        let v: FrameView<'_> = serde_json::from_str(&h)?;
        assert_eq!(v.user_id, Some(5));
        Ok(())
    }
}
