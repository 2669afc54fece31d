//! The sequencing core shared by conversation and group actors: the dedup window of recent
//! client ids, seq assignment, hand-off to the group-commit writer, and delivery in seq order.
//!
//! An actor owning a [`Sequencer`] implements [`Sequenced`] (where its deliveries go) and calls
//! [`persist`] for each accepted message; everything else (who may post, who receives) is the
//! actor's own policy.

use std::collections::{BTreeMap, HashMap, VecDeque};

use actix::prelude::*;
use schema::message::{Appended, MessageRecord};
use schema::{ConvId, DeviceId, UserId};
use tokio::sync::oneshot;

use crate::conversation::{Ack, ChatError};
use crate::writer::{MessageWriter, Persist};

/// How many recent client ids an actor remembers (and preloads at start) for dedup. Older
/// resends are still stored once (the store's unique index) but cost a seq.
pub const DEDUP_WINDOW: usize = 4096;
/// Client ids preloaded from the store when an actor starts.
pub const DEDUP_PRELOAD: i64 = 512;

type Key = (UserId, String);

/// A durable message waiting for delivery, with the device that sent it (skipped).
type Delivery = (MessageRecord, Option<DeviceId>);

enum Entry {
    Acked(Ack),
    InFlight(Vec<oneshot::Sender<Result<Ack, ChatError>>>),
}

/// What the dedup window knows about a client id.
pub enum Lookup {
    /// Durable already: answer with this ack.
    Acked(Ack),
    /// Being written: wait for the first attempt's answer.
    Wait(oneshot::Receiver<Result<Ack, ChatError>>),
    /// Not seen: a new message.
    New,
}

/// Seq assignment, dedup window and ordered delivery of one conversation.
pub struct Sequencer {
    conv: ConvId,
    next_seq: i64,
    recent: HashMap<Key, Entry>,
    order: VecDeque<Key>,
    /// Outcomes waiting until every lower seq is settled, so recipients see seq order even when
    /// completions of one batch arrive out of order.
    ready: BTreeMap<i64, Option<Delivery>>,
    next_deliver: i64,
}

impl Sequencer {
    /// An empty sequencer; call [`Sequencer::seed`] once the store has answered.
    pub fn new(conv: ConvId) -> Self {
        Sequencer {
            conv,
            next_seq: 1,
            recent: HashMap::new(),
            order: VecDeque::new(),
            ready: BTreeMap::new(),
            next_deliver: 1,
        }
    }

    /// The conversation.
    pub fn conv(&self) -> &ConvId {
        &self.conv
    }

    /// Continues after the store's highest seq, remembering the client ids of `recent`.
    pub fn seed(&mut self, max_seq: i64, recent: Vec<MessageRecord>) {
        self.next_seq = max_seq + 1;
        self.next_deliver = max_seq + 1;
        for m in recent {
            let ack = Ack { id: m.client_id.clone(), conv: m.conv.clone(), seq: m.seq, ts: m.ts };
            self.remember((m.sender, m.client_id), Entry::Acked(ack));
        }
    }

    /// The highest seq assigned so far.
    pub fn max_seq(&self) -> i64 {
        self.next_seq - 1
    }

    /// True while a message is being written.
    pub fn busy(&self) -> bool {
        self.recent.values().any(|e| matches!(e, Entry::InFlight(_)))
    }

    /// What the dedup window knows about `(sender, client_id)`.
    pub fn lookup(&mut self, sender: UserId, client_id: &str) -> Lookup {
        match self.recent.get_mut(&(sender, client_id.to_owned())) {
            Some(Entry::Acked(ack)) => Lookup::Acked(ack.clone()),
            Some(Entry::InFlight(waiters)) => {
                let (tx, rx) = oneshot::channel();
                waiters.push(tx);
                Lookup::Wait(rx)
            }
            None => Lookup::New,
        }
    }

    /// Takes the next seq for a new message of `(sender, client_id)` and marks it in flight.
    pub fn assign(&mut self, sender: UserId, client_id: &str) -> i64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.remember((sender, client_id.to_owned()), Entry::InFlight(Vec::new()));
        seq
    }

    /// Settles `seq` with the writer's answer; returns the answer for the sender and the
    /// deliveries that are now in order.
    fn finish(
        &mut self,
        key: Key,
        seq: i64,
        res: Result<Appended, ChatError>,
        origin: Option<DeviceId>,
    ) -> (Result<Ack, ChatError>, Vec<Delivery>) {
        let waiters = match self.recent.remove(&key) {
            Some(Entry::InFlight(w)) => w,
            _ => Vec::new(),
        };
        let (answer, outcome) = match res {
            Ok(appended) => {
                let rec = appended.record();
                let ack = Ack { id: rec.client_id.clone(), conv: rec.conv.clone(), seq: rec.seq, ts: rec.ts };
                self.recent.insert(key, Entry::Acked(ack.clone()));
                match appended {
                    Appended::Stored(rec) => (Ok(ack), Some((rec, origin))),
                    // Stored long ago under another seq; this seq stays unused.
                    Appended::Duplicate(_) => (Ok(ack), None),
                }
            }
            Err(e) => {
                self.order.retain(|k| k != &key);
                (Err(e), None)
            }
        };
        for w in waiters {
            let _ = w.send(answer.clone());
        }
        self.ready.insert(seq, outcome);
        let mut out = Vec::new();
        while let Some(next) = self.ready.remove(&self.next_deliver) {
            out.extend(next);
            self.next_deliver += 1;
        }
        (answer, out)
    }

    fn remember(&mut self, key: Key, entry: Entry) {
        if self.recent.insert(key.clone(), entry).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > DEDUP_WINDOW {
            let Some(old) = self.order.pop_front() else { break };
            if matches!(self.recent.get(&old), Some(Entry::Acked(_))) {
                self.recent.remove(&old);
            } else {
                // Still in flight: keep it, look again later.
                self.order.push_back(old);
                break;
            }
        }
    }
}

/// An actor that sequences messages.
pub trait Sequenced: Actor<Context = Context<Self>> {
    /// Its sequencer.
    fn sequencer(&mut self) -> &mut Sequencer;
    /// The node's writer.
    fn writer(&self) -> Addr<MessageWriter>;
    /// Delivers a durable message to its recipients (`origin`: the sending device, skipped).
    fn deliver(&mut self, rec: &MessageRecord, origin: Option<DeviceId>);
    /// When the actor last handled traffic.
    fn last_active(&self) -> std::time::Instant;
}

/// How often an actor checks whether it is idle.
pub const IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// Stops the actor once nothing is in flight and it had no traffic for `idle`.
pub fn stop_when_idle<A: Sequenced>(ctx: &mut Context<A>, idle: std::time::Duration) {
    ctx.run_interval(IDLE_CHECK.min(idle), move |act, ctx| {
        if !act.sequencer().busy() && act.last_active().elapsed() >= idle {
            ctx.stop();
        }
    });
}

/// The store's highest seq of `conv` and its last [`DEDUP_PRELOAD`] messages, to seed a
/// [`Sequencer`].
pub async fn load_tail(
    store: &dyn crate::store::MessageStore,
    conv: ConvId,
) -> Result<(i64, Vec<MessageRecord>), String> {
    let max = store.max_seq(conv.clone()).await.map_err(|e| e.to_string())?;
    let recent =
        store.page(conv, schema::message::Page::Before(max + 1), 0, DEDUP_PRELOAD).await.map_err(|e| e.to_string())?;
    Ok((max, recent))
}

/// Answers a known client id from the dedup window, if it is known.
pub fn replay<A: Sequenced>(
    act: &mut A,
    sender: UserId,
    client_id: &str,
) -> Option<ResponseActFuture<A, Result<Ack, ChatError>>> {
    match act.sequencer().lookup(sender, client_id) {
        Lookup::Acked(ack) => Some(Box::pin(fut::ready(Ok(ack)))),
        Lookup::Wait(rx) => {
            let wait = async move { rx.await.unwrap_or_else(|_| Err(ChatError::Unavailable("stopped".into()))) };
            Some(Box::pin(wait.into_actor(act)))
        }
        Lookup::New => None,
    }
}

/// Persists `rec` (its seq from [`Sequencer::assign`]) through the writer, then acks and
/// delivers in seq order.
pub fn persist<A: Sequenced>(
    act: &mut A,
    rec: MessageRecord,
    origin: Option<DeviceId>,
) -> ResponseActFuture<A, Result<Ack, ChatError>> {
    let key = (rec.sender, rec.client_id.clone());
    let seq = rec.seq;
    let write = act.writer().send(Persist(rec));
    Box::pin(write.into_actor(act).map(move |res, act, _| {
        let res = match res {
            Ok(Ok(appended)) => Ok(appended),
            Ok(Err(e)) => Err(ChatError::Unavailable(e)),
            Err(e) => Err(ChatError::Unavailable(e.to_string())),
        };
        let (answer, ready) = act.sequencer().finish(key, seq, res, origin);
        for (rec, origin) in ready {
            act.deliver(&rec, origin);
        }
        answer
    }))
}
