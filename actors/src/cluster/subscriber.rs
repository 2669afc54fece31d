//! The subscribing side of the cluster bus: one dedicated pub/sub connection per node (a pool
//! cannot hold a subscriber) and the dispatch of what arrives.
//!
//! A node subscribes to its own channel (requests and answers for conversation owners, fan-outs
//! of groups, drain), to the cluster-wide channel (admin broadcasts) and to the channel of each
//! user with a session here ([`Interest`], kept by the presence task); it unsubscribes when the
//! user's last session here goes. After a lost connection it reconnects with backoff,
//! subscribes to everything again and tells local clients to `sync` (what was published
//! meanwhile did not reach them live; it is all in the store). A node also receives what it
//! publishes on channels it subscribes to, and skips it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use deadpool_redis::redis;
use futures_util::StreamExt;
use schema::protocol::ServerFrame;
use schema::UserId;
use tokio::sync::mpsc;

use super::envelope::{decode, Decoded, Envelope};
use super::view::NodeView;
use super::{set_redis_state, NodeSelf, RedisState};
use crate::command::Command;
use crate::delivery::{BroadcastLocal, DeliverLocal, Fanout, Frame, KickAll, KickReason, KickUser, SenderCopy};
use crate::entity::Entities;
use crate::metrics::{inc, Metrics};

/// Most channels per SUBSCRIBE when re-subscribing.
const SUBSCRIBE_CHUNK: usize = 1000;
/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

enum SubCmd {
    Subscribe(String),
    Unsubscribe(String),
}

/// The channels this node follows, counted (a channel is subscribed while its count is above
/// zero), and the queue of subscription changes for the subscriber task.
#[derive(Clone)]
pub struct Interest {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    tx: mpsc::UnboundedSender<SubCmd>,
}

/// The subscriber task's end of [`Interest`].
pub struct InterestRx(mpsc::UnboundedReceiver<SubCmd>);

impl Interest {
    /// No interest yet.
    pub fn new() -> (Self, InterestRx) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Interest { counts: Arc::default(), tx }, InterestRx(rx))
    }

    /// One more reason to follow `channel`.
    pub fn add(&self, channel: &str) {
        let first = self.counts.lock().map(|mut m| {
            let n = m.entry(channel.to_owned()).or_insert(0);
            *n += 1;
            *n == 1
        });
        if first.unwrap_or(false) {
            let _ = self.tx.send(SubCmd::Subscribe(channel.to_owned()));
        }
    }

    /// One reason less to follow `channel`.
    pub fn remove(&self, channel: &str) {
        let last = self.counts.lock().map(|mut m| match m.get_mut(channel) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                m.remove(channel);
                true
            }
            None => false,
        });
        if last.unwrap_or(false) {
            let _ = self.tx.send(SubCmd::Unsubscribe(channel.to_owned()));
        }
    }

    fn channels(&self) -> Vec<String> {
        self.counts.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default()
    }
}

/// Where inbound envelopes go.
#[derive(Clone)]
pub struct Inbound {
    pub me: Arc<NodeSelf>,
    pub view: Arc<NodeView>,
    pub local: Recipient<DeliverLocal>,
    pub fanout: Recipient<Fanout>,
    pub kick: Recipient<KickUser>,
    pub broadcast: Recipient<BroadcastLocal>,
    pub kick_all: Recipient<KickAll>,
    pub entities: Entities,
    pub metrics: Arc<Metrics>,
}

/// Starts the subscriber task: this node's channel and the cluster-wide one, then whatever
/// [`Interest`] asks for.
pub fn start(client: redis::Client, interest: Interest, rx: InterestRx, inbound: Inbound) {
    interest.add(&inbound.me.keys.all());
    interest.add(&inbound.me.keys.node_channel(&inbound.me.id));
    actix::spawn(subscriber(client, interest, rx.0, inbound));
}

/// Keeps the subscriber connection up: connects, subscribes to every channel of interest,
/// dispatches envelopes; reconnects with backoff when the connection fails.
async fn subscriber(
    client: redis::Client,
    interest: Interest,
    mut cmds: mpsc::UnboundedReceiver<SubCmd>,
    inb: Inbound,
) {
    let mut backoff = BACKOFF_MIN;
    let mut connected_before = false;
    loop {
        match connect(&client, &interest).await {
            Ok((mut sink, mut stream)) => {
                set_redis_state(&inb.metrics, RedisState::Up);
                backoff = BACKOFF_MIN;
                if connected_before {
                    inc(&inb.metrics.redis_reconnects);
                    log::info!("bus: reconnected to Redis and re-subscribed; telling local clients to sync");
                    let frame = ServerFrame::Event { event: "resync".into(), data: serde_json::json!({}) }.encode();
                    inb.broadcast.do_send(BroadcastLocal { users: None, frame: frame.into() });
                } else {
                    log::info!("bus: connected to Redis");
                }
                connected_before = true;
                loop {
                    tokio::select! {
                        m = stream.next() => match m {
                            Some(m) => dispatch(&inb, m.get_channel_name(), m.get_payload_bytes()),
                            None => break,
                        },
                        c = cmds.recv() => {
                            let res = match c {
                                Some(SubCmd::Subscribe(ch)) => sink.subscribe(ch).await,
                                Some(SubCmd::Unsubscribe(ch)) => sink.unsubscribe(ch).await,
                                None => return,
                            };
                            if let Err(e) = res {
                                log::warn!("bus: subscription change failed: {e}");
                                break;
                            }
                        }
                    }
                }
                log::warn!("bus: lost the Redis subscriber connection; the node is degraded until it reconnects");
            }
            Err(e) => log::warn!("bus: cannot reach Redis ({e}); retrying in {backoff:?}"),
        }
        set_redis_state(&inb.metrics, RedisState::Down);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn connect(
    client: &redis::Client,
    interest: &Interest,
) -> redis::RedisResult<(redis::aio::PubSubSink, redis::aio::PubSubStream)> {
    let pubsub = tokio::time::timeout(Duration::from_secs(5), client.get_async_pubsub())
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
    let (mut sink, stream) = pubsub.split();
    for chunk in interest.channels().chunks(SUBSCRIBE_CHUNK) {
        sink.subscribe(chunk).await?;
    }
    Ok((sink, stream))
}

fn dispatch(inb: &Inbound, channel: &str, raw: &[u8]) {
    let Some(Decoded { origin, envelope, frames }) = decode(raw) else {
        log::warn!("bus: undecodable envelope on {channel}");
        return;
    };
    if origin == inb.me.id {
        return;
    }
    inc(&inb.metrics.bus_received);
    let frame = |i: usize| frames.get(i).map(|f| Frame::from((*f).to_owned()));
    match envelope {
        Envelope::Frame { user, except } => {
            if let Some(frame) = frame(0) {
                inb.local.do_send(DeliverLocal { user, frame, except });
            }
        }
        Envelope::Kick { user, device, reason } => {
            inb.kick.do_send(KickUser { user, device, reason, cluster: false });
        }
        Envelope::Fanout { conv, users, sender } => {
            let variants: Vec<(Frame, Vec<UserId>)> =
                users.into_iter().enumerate().filter_map(|(i, u)| Some((frame(i)?, u))).collect();
            let sender = match (sender, frame(variants.len())) {
                (Some((user, except)), Some(frame)) => Some(SenderCopy { user, frame, except }),
                _ => None,
            };
            // Members the owner lists here but who have no session here any more: the owner
            // stops listing them.
            let (fanout, entities, me) = (inb.fanout.clone(), inb.entities.clone(), inb.me.id.clone());
            actix::spawn(async move {
                if let Ok(absent) = fanout.send(Fanout { variants, sender }).await {
                    if !absent.is_empty() {
                        entities.notify(&origin, conv, Command::Offline { node: me, users: absent });
                    }
                }
            });
        }
        Envelope::Request { id, conv, cmd } => {
            if id == 0 {
                // A hint that wants no answer.
                inb.entities.tell(conv, cmd);
            } else {
                inb.entities.request(conv, cmd, origin, id);
            }
        }
        Envelope::Reply { id, answer } => inb.entities.answer(id, answer),
        Envelope::Broadcast { users } => {
            if let Some(frame) = frame(0) {
                inb.broadcast.do_send(BroadcastLocal { users, frame });
            }
        }
        Envelope::Drain => {
            if inb.me.start_draining() {
                log::warn!("node {} draining on request of node {origin}", inb.me.id);
                inb.view.mark_draining(&inb.me.id);
            }
            inb.kick_all.do_send(KickAll { reason: KickReason::Restarting });
            let entities = inb.entities.clone();
            actix::spawn(async move { entities.hand_over().await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interest_subscribes_on_the_first_reason_and_unsubscribes_on_the_last() {
        let (i, mut rx) = Interest::new();
        i.add("a");
        i.add("a");
        i.remove("a");
        i.remove("a");
        i.remove("a");
        let mut got = Vec::new();
        while let Ok(c) = rx.0.try_recv() {
            got.push(match c {
                SubCmd::Subscribe(ch) => format!("+{ch}"),
                SubCmd::Unsubscribe(ch) => format!("-{ch}"),
            });
        }
        assert_eq!(got, vec!["+a", "-a"]);
        assert!(i.channels().is_empty());
    }
}
