//! The sequencing core shared by conversation and group actors: the dedup window of recent
//! client ids, seq assignment, hand-off to the group-commit writer, and delivery in seq order.
//!
//! An actor owning a [`Sequencer`] implements [`Sequenced`] (where its deliveries go) and calls
//! [`persist`] for each accepted message; everything else (who may post, who receives) is the
//! actor's own policy.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use actix::prelude::*;
use schema::message::{Appended, MessageRecord};
use schema::{ConvId, DeviceId, UserId};
use tokio::sync::oneshot;

use crate::cluster::seq::SeqSource;
use crate::conversation::{Ack, ChatError};
use crate::store::MessageStore;
use crate::writer::MessageWriter;

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
///
/// Every accepted message takes a local *ticket* (in arrival order) and a seq: from the local
/// counter on a single node, from Redis in a cluster (where another node may take the seqs in
/// between). Deliveries leave in ticket order, once every earlier ticket is settled, so this
/// node's recipients see its messages in seq order even when one batch completes out of order.
pub struct Sequencer {
    conv: ConvId,
    /// The highest seq assigned here or seen from elsewhere (shared with the allocation task).
    max_seq: Arc<AtomicI64>,
    recent: HashMap<Key, Entry>,
    order: VecDeque<Key>,
    ready: BTreeMap<u64, Option<Delivery>>,
    next_ticket: u64,
    next_deliver: u64,
    /// Messages waiting for a seq from Redis, in ticket order.
    alloc: Arc<Mutex<Allocation>>,
}

/// Seq requests of one conversation waiting for Redis; one allocation runs at a time.
#[derive(Default)]
struct Allocation {
    queue: VecDeque<oneshot::Sender<i64>>,
    running: bool,
}

/// A message's place in this actor's arrival order.
pub type Ticket = u64;

impl Sequencer {
    /// An empty sequencer; call [`Sequencer::seed`] once the store has answered.
    pub fn new(conv: ConvId) -> Self {
        Sequencer {
            conv,
            max_seq: Arc::new(AtomicI64::new(0)),
            recent: HashMap::new(),
            order: VecDeque::new(),
            ready: BTreeMap::new(),
            next_ticket: 0,
            next_deliver: 0,
            alloc: Arc::default(),
        }
    }

    /// The conversation.
    pub fn conv(&self) -> &ConvId {
        &self.conv
    }

    /// Continues after the store's highest seq, remembering the client ids of `recent`.
    pub fn seed(&mut self, max_seq: i64, recent: Vec<MessageRecord>) {
        self.observe(max_seq);
        for m in recent {
            let ack = Ack { id: m.client_id.clone(), conv: m.conv.clone(), seq: m.seq, ts: m.ts };
            self.remember((m.sender, m.client_id), Entry::Acked(ack));
        }
    }

    /// The highest seq assigned here or known from elsewhere.
    pub fn max_seq(&self) -> i64 {
        self.max_seq.load(Ordering::Relaxed)
    }

    /// Learns that `seq` exists (assigned by another node, or found in the store).
    pub fn observe(&mut self, seq: i64) {
        self.max_seq.fetch_max(seq, Ordering::Relaxed);
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

    /// Marks a new message of `(sender, client_id)` in flight and gives it the next ticket.
    pub fn begin(&mut self, sender: UserId, client_id: &str) -> Ticket {
        let t = self.next_ticket;
        self.next_ticket += 1;
        self.remember((sender, client_id.to_owned()), Entry::InFlight(Vec::new()));
        t
    }

    /// The next local seq (single node, or Redis unreachable).
    pub fn next_local(&mut self) -> i64 {
        self.max_seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Settles `seq` with the writer's answer; returns the answer for the sender and the
    /// deliveries that are now in order.
    fn finish(
        &mut self,
        key: Key,
        ticket: Ticket,
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
        self.ready.insert(ticket, outcome);
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
    fn writer(&self) -> &MessageWriter;
    /// Where seqs come from in a cluster (`None`: the local counter).
    fn seq_source(&self) -> Option<SeqSource>;
    /// The message store (to re-learn the highest seq after a failed write in a cluster).
    fn store(&self) -> Arc<dyn MessageStore>;
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

/// Sequences and persists a new message `rec` (its `seq` is set here) through the writer, then
/// acks and delivers in order. The caller checked [`replay`] first.
///
/// In a cluster the seq comes from Redis. Allocations of one conversation never overlap: the
/// messages that arrive while one is in flight wait and then take one contiguous range together
/// (one round trip for a burst), handed out in arrival order — so seqs follow arrival order here,
/// and interleave with other nodes' seqs without ever repeating.
pub fn post<A: Sequenced>(
    act: &mut A,
    mut rec: MessageRecord,
    origin: Option<DeviceId>,
) -> ResponseActFuture<A, Result<Ack, ChatError>> {
    let ticket = act.sequencer().begin(rec.sender, &rec.client_id);
    let Some(source) = act.seq_source() else {
        rec.seq = act.sequencer().next_local();
        return write(act, rec, ticket, origin);
    };
    let (tx, rx) = oneshot::channel();
    let sq = act.sequencer();
    let start = match sq.alloc.lock() {
        Ok(mut a) => {
            a.queue.push_back(tx);
            !std::mem::replace(&mut a.running, true)
        }
        Err(_) => false,
    };
    if start {
        // A task of its own, not the actor's context: allocations must go on while the actor
        // is inside an atomic handler (a group change announcing its system messages).
        actix::spawn(allocate(sq.alloc.clone(), sq.max_seq.clone(), source, sq.conv.clone()));
    }
    Box::pin(rx.into_actor(act).then(move |seq, act, _| {
        rec.seq = match seq {
            Ok(s) => s,
            Err(_) => act.sequencer().next_local(),
        };
        write(act, rec, ticket, origin)
    }))
}

/// Serves the allocation queue of a conversation until it is empty: each round takes every
/// waiting request and one contiguous range for them.
async fn allocate(alloc: Arc<Mutex<Allocation>>, max: Arc<AtomicI64>, source: SeqSource, conv: ConvId) {
    loop {
        let waiters: Vec<oneshot::Sender<i64>> = match alloc.lock() {
            Ok(mut a) => {
                if a.queue.is_empty() {
                    a.running = false;
                    return;
                }
                a.queue.drain(..).collect()
            }
            Err(_) => return,
        };
        let n = waiters.len() as i64;
        let floor = max.load(Ordering::Relaxed);
        match source.next_n(&conv, floor, n).await {
            Some(last) => {
                max.fetch_max(last, Ordering::Relaxed);
                for (i, w) in waiters.into_iter().enumerate() {
                    let _ = w.send(last - n + 1 + i as i64);
                }
            }
            // Redis is unreachable: go on locally (a collision fails the write, not silently).
            None => {
                for w in waiters {
                    let _ = w.send(max.fetch_add(1, Ordering::Relaxed) + 1);
                }
            }
        }
    }
}

fn write<A: Sequenced>(
    act: &mut A,
    rec: MessageRecord,
    ticket: Ticket,
    origin: Option<DeviceId>,
) -> ResponseActFuture<A, Result<Ack, ChatError>> {
    let key = (rec.sender, rec.client_id.clone());
    let write = act.writer().persist(rec);
    Box::pin(write.into_actor(act).map(move |res, act, ctx| {
        let res = res.map_err(ChatError::Unavailable);
        if res.is_err() && act.seq_source().is_some() {
            // Maybe another node took this seq while Redis was away: re-learn the store's highest.
            let (store, conv) = (act.store(), act.sequencer().conv().clone());
            ctx.spawn(async move { store.max_seq(conv).await }.into_actor(act).map(|max, act, _| {
                if let Ok(max) = max {
                    act.sequencer().observe(max);
                }
            }));
        }
        let (answer, ready) = act.sequencer().finish(key, ticket, res, origin);
        for (rec, origin) in ready {
            act.deliver(&rec, origin);
        }
        answer
    }))
}
