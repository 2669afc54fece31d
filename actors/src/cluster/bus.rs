//! `ClusterBus`: envelopes between nodes over Redis pub/sub.
//!
//! - Publishing goes through a deadpool-redis pool, from one task that drains a queue and sends
//!   what has accumulated as one pipeline (one round trip per burst, not per envelope).
//! - Subscribing runs on its own dedicated connection. The node subscribes to the channel of each
//!   user with a local session, of each group with a local online member, of itself, and the
//!   cluster-wide channel; it unsubscribes when the last local interest goes. After a lost
//!   connection it reconnects with backoff, re-subscribes everything and tells local clients to
//!   `sync` (what was published meanwhile did not reach them live; it is all in the store).
//! - Envelopes a node publishes come back to it when it also subscribes: it skips its own.
//!
//! Wire format of an envelope: one line of JSON ([`Header`]), `\n`, then the payload (an encoded
//! server frame, or a message record for group envelopes).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use deadpool_redis::redis;
use futures_util::StreamExt;
use schema::db::groups as gq;
use schema::message::MessageRecord;
use schema::protocol::ServerFrame;
use schema::{ConvId, DeviceId, UserId};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::presence::{PresenceOp, PresenceTracker};
use super::{set_redis_state, NodeSelf, RedisState};
use crate::conversation::{ConversationRegistry, Observe, RefreshConversation, RemoteGroupMessage};
use crate::db::Db;
use crate::metrics::{inc, Metrics};
use crate::registry::{
    BroadcastLocal, DeliverLocal, DeliverToUsers, Frame, KickAll, KickReason, KickUser, SessionRegistry,
};

/// Most envelopes sent in one pipeline.
const MAX_PIPELINE: usize = 512;
/// Most channels per SUBSCRIBE when re-subscribing.
const SUBSCRIBE_CHUNK: usize = 1000;
/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What the node's actors ask the bus to do.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum BusOut {
    /// A frame for every session of `user` on other nodes (local ones were served already).
    ToUser { user: UserId, frame: Frame, except: Option<DeviceId> },
    /// Close sessions of `user` on other nodes.
    Kick { user: UserId, device: Option<DeviceId>, reason: KickReason },
    /// A local session connected (`first_local`: the user's first on this node).
    DeviceUp { user: UserId, device: DeviceId, since: i64, first_local: bool },
    /// A local session closed (`last_local`: the user's last on this node).
    DeviceDown { user: UserId, device: DeviceId, since: i64, last_local: bool },
    /// A durable group message, for the members on other nodes (published once per message).
    Group { record: MessageRecord, origin: Option<DeviceId> },
    /// A frame for some members of a group (recall, typing), one envelope on the group's channel.
    GroupFrame { conv: ConvId, users: Vec<UserId>, frame: Frame },
    /// `user` joined (`add`) or left a group: nodes holding the user adjust their subscriptions.
    GroupInterest { user: UserId, conv: ConvId, add: bool },
    /// A conversation's settings changed: actors on other nodes re-read them.
    Refresh { conv: ConvId },
    /// A frame for everyone online (`users: None`) or for `users`, on every node.
    Broadcast { users: Option<Vec<UserId>>, frame: Frame },
    /// Tell node `node` to drain.
    Drain { node: String },
}

/// Envelope kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Frame,
    Kick,
    Group,
    GroupFrame,
    GroupInterest,
    Refresh,
    Broadcast,
    Drain,
}

/// The first line of an envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Header {
    /// Origin node.
    o: String,
    k: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<i64>,
    /// A device: the one to skip (frames, groups) or the one to kick.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    d: Option<i64>,
    /// Kick reason, or "add"/"remove" for group interest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
    /// Conversation (refresh, group interest; for frames: the message's conversation, if any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<String>,
    /// The message's seq (frames carrying a message: lets local actors learn of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<i64>,
    /// Broadcast recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    us: Option<Vec<i64>>,
}

impl Header {
    fn new(origin: &str, k: Kind) -> Self {
        Header { o: origin.to_owned(), k, u: None, d: None, r: None, c: None, s: None, us: None }
    }

    fn encode(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = serde_json::to_vec(self).unwrap_or_default();
        out.push(b'\n');
        out.extend_from_slice(payload);
        out
    }
}

fn decode(raw: &[u8]) -> Option<(Header, &[u8])> {
    let nl = raw.iter().position(|b| *b == b'\n')?;
    let h: Header = serde_json::from_slice(&raw[..nl]).ok()?;
    Some((h, &raw[nl + 1..]))
}

fn reason_name(r: KickReason) -> &'static str {
    match r {
        KickReason::Replaced => "replaced",
        KickReason::SlowConsumer => "slow_consumer",
        KickReason::Revoked => "revoked",
        KickReason::Admin => "admin",
        KickReason::Restarting => "restarting",
    }
}

fn reason_from(s: &str) -> KickReason {
    match s {
        "replaced" => KickReason::Replaced,
        "slow_consumer" => KickReason::SlowConsumer,
        "admin" => KickReason::Admin,
        "restarting" => KickReason::Restarting,
        _ => KickReason::Revoked,
    }
}

/// The seq and conversation of a `msg` frame, read without decoding its body.
fn msg_position(frame: &str) -> Option<(String, i64)> {
    if !frame.starts_with("{\"type\":\"msg\"") {
        return None;
    }
    #[derive(Deserialize)]
    struct M {
        conv: String,
        seq: i64,
    }
    let m: M = serde_json::from_str(frame).ok()?;
    Some((m.conv, m.seq))
}

/// A subscription change for the subscriber task.
#[derive(Debug)]
enum SubCmd {
    Subscribe(String),
    Unsubscribe(String),
}

/// Local interest in channels: a channel is subscribed while its count is above zero.
type Interest = Arc<Mutex<HashMap<String, usize>>>;

/// Where inbound envelopes go.
#[derive(Clone)]
struct Inbound {
    me: Arc<NodeSelf>,
    sessions: Addr<SessionRegistry>,
    conversations: Addr<ConversationRegistry>,
    bus: Addr<ClusterBus>,
    metrics: Arc<Metrics>,
}

/// The bus actor of a node.
pub struct ClusterBus {
    me: Arc<NodeSelf>,
    db: Db,
    metrics: Arc<Metrics>,
    client: redis::Client,
    publish: mpsc::UnboundedSender<(String, Vec<u8>)>,
    publish_rx: Option<mpsc::UnboundedReceiver<(String, Vec<u8>)>>,
    pool: deadpool_redis::Pool,
    interest: Interest,
    subs: mpsc::UnboundedSender<SubCmd>,
    subs_rx: Option<mpsc::UnboundedReceiver<SubCmd>>,
    /// Group channels counted for each local user (`None` while the user's groups load).
    user_groups: HashMap<UserId, Option<Vec<String>>>,
    presence: PresenceTracker,
    sessions: Addr<SessionRegistry>,
    conversations: Addr<ConversationRegistry>,
}

impl ClusterBus {
    /// A bus for node `me` over `pool` (publishing) and `client` (the subscriber connection).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: Arc<NodeSelf>,
        db: Db,
        metrics: Arc<Metrics>,
        client: redis::Client,
        pool: deadpool_redis::Pool,
        presence: PresenceTracker,
        sessions: Addr<SessionRegistry>,
        conversations: Addr<ConversationRegistry>,
    ) -> Self {
        let (publish, publish_rx) = mpsc::unbounded_channel();
        let (subs, subs_rx) = mpsc::unbounded_channel();
        ClusterBus {
            me,
            db,
            metrics,
            client,
            publish,
            publish_rx: Some(publish_rx),
            pool,
            interest: Arc::new(Mutex::new(HashMap::new())),
            subs,
            subs_rx: Some(subs_rx),
            user_groups: HashMap::new(),
            presence,
            sessions,
            conversations,
        }
    }

    fn send(&self, channel: String, header: &Header, payload: &[u8]) {
        let _ = self.publish.send((channel, header.encode(payload)));
    }

    fn header(&self, k: Kind) -> Header {
        Header::new(&self.me.id, k)
    }

    /// Adds (`+1`) or removes (`-1`) local interest in `channel`.
    fn interest(&self, channel: &str, add: bool) {
        let Ok(mut map) = self.interest.lock() else { return };
        if add {
            let n = map.entry(channel.to_owned()).or_insert(0);
            *n += 1;
            if *n == 1 {
                let _ = self.subs.send(SubCmd::Subscribe(channel.to_owned()));
            }
        } else if let Some(n) = map.get_mut(channel) {
            *n -= 1;
            if *n == 0 {
                map.remove(channel);
                let _ = self.subs.send(SubCmd::Unsubscribe(channel.to_owned()));
            }
        }
    }

    fn user_online(&mut self, user: UserId, ctx: &mut Context<Self>) {
        self.interest(&self.me.keys.user_channel(user), true);
        self.user_groups.insert(user, None);
        let uid = user.0;
        let db = self.db.clone();
        let load = async move { db.read(move |c| gq::of_user(c, uid)).await };
        ctx.spawn(load.into_actor(self).map(move |res, act, _| {
            let groups: Vec<String> = match res {
                Ok(rows) => rows
                    .into_iter()
                    .filter(|(g, _)| g.dissolved_at.is_none())
                    .map(|(g, _)| act.me.keys.group_channel(&gq::conv_id(g.id)))
                    .collect(),
                Err(e) => {
                    log::warn!("bus: groups of user {uid} not loaded: {e}");
                    Vec::new()
                }
            };
            if let Some(None) = act.user_groups.get(&user) {
                for g in &groups {
                    act.interest(g, true);
                }
                act.user_groups.insert(user, Some(groups));
            }
        }));
    }

    fn user_offline(&mut self, user: UserId) {
        self.interest(&self.me.keys.user_channel(user), false);
        if let Some(Some(groups)) = self.user_groups.remove(&user) {
            for g in groups {
                self.interest(&g, false);
            }
        }
    }

    fn group_interest_local(&mut self, user: UserId, conv: &ConvId, add: bool) {
        let channel = self.me.keys.group_channel(conv.as_str());
        let Some(Some(groups)) = self.user_groups.get_mut(&user) else { return };
        let has = groups.contains(&channel);
        if add && !has {
            groups.push(channel.clone());
            self.interest(&channel, true);
        } else if !add && has {
            groups.retain(|g| g != &channel);
            self.interest(&channel, false);
        }
    }
}

impl Actor for ClusterBus {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.interest(&self.me.keys.all(), true);
        self.interest(&self.me.keys.node_channel(&self.me.id), true);
        if let Some(rx) = self.publish_rx.take() {
            actix::spawn(publisher(self.pool.clone(), rx, self.metrics.clone()));
        }
        if let Some(rx) = self.subs_rx.take() {
            let inbound = Inbound {
                me: self.me.clone(),
                sessions: self.sessions.clone(),
                conversations: self.conversations.clone(),
                bus: ctx.address(),
                metrics: self.metrics.clone(),
            };
            actix::spawn(subscriber(self.client.clone(), self.interest.clone(), rx, inbound));
        }
    }
}

impl Handler<BusOut> for ClusterBus {
    type Result = ();

    fn handle(&mut self, msg: BusOut, ctx: &mut Context<Self>) {
        match msg {
            BusOut::ToUser { user, frame, except } => {
                let mut h = self.header(Kind::Frame);
                h.u = Some(user.0);
                h.d = except.map(|d| d.0);
                if let Some((c, s)) = msg_position(&frame) {
                    h.c = Some(c);
                    h.s = Some(s);
                }
                self.send(self.me.keys.user_channel(user), &h, frame.as_bytes());
            }
            BusOut::Kick { user, device, reason } => {
                let mut h = self.header(Kind::Kick);
                h.u = Some(user.0);
                h.d = device.map(|d| d.0);
                h.r = Some(reason_name(reason).into());
                self.send(self.me.keys.user_channel(user), &h, b"");
            }
            BusOut::DeviceUp { user, device, since, first_local } => {
                if first_local {
                    self.user_online(user, ctx);
                }
                self.presence.push(PresenceOp::Up { user, device, since });
            }
            BusOut::DeviceDown { user, device, since, last_local } => {
                if last_local {
                    self.user_offline(user);
                }
                self.presence.push(PresenceOp::Down { user, device, since, last_local });
            }
            BusOut::Group { record, origin } => {
                let mut h = self.header(Kind::Group);
                h.d = origin.map(|d| d.0);
                let payload = serde_json::to_vec(&record).unwrap_or_default();
                self.send(self.me.keys.group_channel(record.conv.as_str()), &h, &payload);
            }
            BusOut::GroupFrame { conv, users, frame } => {
                let mut h = self.header(Kind::GroupFrame);
                h.us = Some(users.into_iter().map(|u| u.0).collect());
                self.send(self.me.keys.group_channel(conv.as_str()), &h, frame.as_bytes());
            }
            BusOut::GroupInterest { user, conv, add } => {
                self.group_interest_local(user, &conv, add);
                let mut h = self.header(Kind::GroupInterest);
                h.u = Some(user.0);
                h.c = Some(conv.0);
                h.r = Some(if add { "add" } else { "remove" }.into());
                self.send(self.me.keys.user_channel(user), &h, b"");
            }
            BusOut::Refresh { conv } => {
                let mut h = self.header(Kind::Refresh);
                h.c = Some(conv.0);
                self.send(self.me.keys.all(), &h, b"");
            }
            BusOut::Broadcast { users, frame } => {
                let mut h = self.header(Kind::Broadcast);
                h.us = users.map(|u| u.into_iter().map(|u| u.0).collect());
                self.send(self.me.keys.all(), &h, frame.as_bytes());
            }
            BusOut::Drain { node } => {
                let h = self.header(Kind::Drain);
                self.send(self.me.keys.node_channel(&node), &h, b"");
            }
        }
    }
}

/// Group interest that arrived from another node (applied locally only).
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct RemoteGroupInterest {
    user: UserId,
    conv: ConvId,
    add: bool,
}

impl Handler<RemoteGroupInterest> for ClusterBus {
    type Result = ();

    fn handle(&mut self, msg: RemoteGroupInterest, _: &mut Context<Self>) {
        self.group_interest_local(msg.user, &msg.conv, msg.add);
    }
}

/// Sends queued envelopes, a pipeline per burst.
async fn publisher(
    pool: deadpool_redis::Pool,
    mut rx: mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    metrics: Arc<Metrics>,
) {
    let mut batch: Vec<(String, Vec<u8>)> = Vec::with_capacity(MAX_PIPELINE);
    let mut failing = false;
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < MAX_PIPELINE {
            match rx.try_recv() {
                Ok(x) => batch.push(x),
                Err(_) => break,
            }
        }
        let n = batch.len() as u64;
        let mut pipe = redis::pipe();
        for (channel, payload) in batch.drain(..) {
            pipe.cmd("PUBLISH").arg(channel).arg(payload).ignore();
        }
        let res = match pool.get().await {
            Ok(mut conn) => pipe.query_async::<()>(&mut conn).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match res {
            Ok(()) => {
                metrics.bus_published.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                if failing {
                    log::info!("bus: publishing to Redis again");
                    failing = false;
                }
            }
            Err(e) => {
                metrics.bus_publish_errors.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                if !failing {
                    // Messages are durable already; remote clients catch up with sync.
                    log::warn!("bus: publish to Redis failed ({e}); {n} envelope(s) not sent");
                    failing = true;
                }
            }
        }
    }
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
                    inb.sessions.do_send(BroadcastLocal { users: None, frame: frame.into() });
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
    let channels: Vec<String> = interest.lock().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    for chunk in channels.chunks(SUBSCRIBE_CHUNK) {
        sink.subscribe(chunk).await?;
    }
    Ok((sink, stream))
}

fn dispatch(inb: &Inbound, channel: &str, raw: &[u8]) {
    let Some((h, payload)) = decode(raw) else {
        log::warn!("bus: undecodable envelope on {channel}");
        return;
    };
    if h.o == inb.me.id {
        return;
    }
    inc(&inb.metrics.bus_received);
    let text = || std::str::from_utf8(payload).ok().map(|s| Frame::from(s.to_owned()));
    match h.k {
        Kind::Frame => {
            let (Some(u), Some(frame)) = (h.u, text()) else { return };
            if let (Some(c), Some(s)) = (h.c, h.s) {
                inb.conversations.do_send(Observe { conv: ConvId(c), seq: s });
            }
            inb.sessions.do_send(DeliverLocal { user: UserId(u), frame, except: h.d.map(DeviceId) });
        }
        Kind::Kick => {
            let Some(u) = h.u else { return };
            let reason = reason_from(h.r.as_deref().unwrap_or(""));
            inb.sessions.do_send(KickUser { user: UserId(u), device: h.d.map(DeviceId), reason, cluster: false });
        }
        Kind::Group => match serde_json::from_slice::<MessageRecord>(payload) {
            Ok(record) => {
                inb.conversations.do_send(RemoteGroupMessage { record, origin: h.d.map(DeviceId) });
            }
            Err(e) => log::warn!("bus: bad group envelope: {e}"),
        },
        Kind::GroupFrame => {
            let (Some(users), Some(frame)) = (h.us, text()) else { return };
            let users = users.into_iter().map(UserId).collect();
            inb.sessions.do_send(DeliverToUsers { users, frame, cluster: false });
        }
        Kind::GroupInterest => {
            let (Some(u), Some(c)) = (h.u, h.c) else { return };
            let add = h.r.as_deref() == Some("add");
            inb.bus.do_send(RemoteGroupInterest { user: UserId(u), conv: ConvId(c), add });
        }
        Kind::Refresh => {
            if let Some(c) = h.c {
                inb.conversations.do_send(RefreshConversation { conv: ConvId(c), cluster: false });
            }
        }
        Kind::Broadcast => {
            let Some(frame) = text() else { return };
            let users = h.us.map(|v| v.into_iter().map(UserId).collect());
            inb.sessions.do_send(BroadcastLocal { users, frame });
        }
        Kind::Drain => {
            if inb.me.start_draining() {
                log::warn!("node {} draining on request of node {}", inb.me.id, h.o);
            }
            inb.sessions.do_send(KickAll { reason: KickReason::Restarting });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let mut h = Header::new("node-a", Kind::Frame);
        h.u = Some(7);
        h.d = Some(3);
        let raw = h.encode(b"{\"type\":\"x\"}\nwith newline");
        let Some((back, payload)) = decode(&raw) else { panic!("the envelope does not decode") };
        assert_eq!(back.o, "node-a");
        assert_eq!(back.k, Kind::Frame);
        assert_eq!((back.u, back.d, back.c), (Some(7), Some(3), None));
        assert_eq!(payload, b"{\"type\":\"x\"}\nwith newline");
        assert!(decode(b"no header").is_none());
        assert!(decode(b"{bad json}\npayload").is_none());
    }

    #[test]
    fn message_frames_reveal_their_position() {
        let wire = schema::protocol::WireMessage {
            conv: ConvId("d:1:2".into()),
            seq: 42,
            from: UserId(1),
            id: "c1".into(),
            kind: "text".into(),
            body: Some("hi".into()),
            ts: 1,
            mentions: Vec::new(),
            mention_all: false,
            recalled: false,
        };
        let f = ServerFrame::Msg { msg: wire, silent: false, mentioned: false }.encode();
        let f = f.as_str();
        assert_eq!(msg_position(f), Some(("d:1:2".into(), 42)));
        assert_eq!(msg_position(r#"{"type":"typing","conv":"d:1:2"}"#), None);
    }

    #[test]
    fn kick_reasons_round_trip() {
        for r in [KickReason::Replaced, KickReason::Revoked, KickReason::Admin, KickReason::Restarting] {
            assert_eq!(reason_from(reason_name(r)), r);
        }
    }
}
