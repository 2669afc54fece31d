//! The sequencing core shared by conversation and group owners: the dedup window of recent client
//! ids, seq assignment, hand-off to the group-commit writer, and delivery in seq order.
//!
//! An owner is the one activation of its conversation in the whole cluster
//! ([`crate::entity`]), so it assigns seqs alone, from memory: the store's highest seq when it
//! started, plus one per accepted message. No round trip per message, and no other node can
//! take a seq in between.
//!
//! [`Sequencer`] is plain state with no actor in it (unit-tested below); an owner implements
//! [`Sequenced`] (on top of its [`Lifecycle`]) and calls [`post`] for each accepted message.

use std::collections::{BTreeMap, HashMap, VecDeque};

use actix::prelude::*;
use schema::message::{Appended, MessageRecord};
use schema::{ConvId, DeviceId, UserId};
use tokio::sync::oneshot;

use crate::command::{Ack, ChatError};
use crate::owner::Lifecycle;
use crate::store::MessageStore;

/// How many recent client ids an owner remembers (and preloads at start) for dedup. Older
/// resends are still stored once (the store's unique index) but cost a seq.
pub const DEDUP_WINDOW: usize = 4096;
/// Client ids preloaded from the store when an owner starts.
pub const DEDUP_PRELOAD: i64 = 512;

type Key = (UserId, String);

/// What travels with a message to its delivery.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Carry {
    /// The device that sent it (skipped).
    pub origin: Option<DeviceId>,
    /// For a reply, the message it quotes (as stored when the reply was accepted), if it exists.
    pub quoted: Option<MessageRecord>,
}

/// A durable message waiting for delivery, with what it carries.
pub type Delivery = (MessageRecord, Carry);

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

/// A message's place in its owner's arrival order.
pub type Ticket = u64;

/// What settling a message gives: the answer for its sender, the messages that can now be
/// delivered (in seq order), and whether the write was fenced (a newer owner holds the
/// conversation: this one must stop).
#[derive(Debug)]
pub struct Settled {
    pub answer: Result<Ack, ChatError>,
    pub ready: Vec<Delivery>,
    pub fenced: bool,
}

/// Seq assignment, dedup window and ordered delivery of one conversation.
///
/// Every accepted message takes a *ticket* and the next seq, both in arrival order. Writes of
/// one conversation complete in order (one writer lane), but a message may also fail, or turn
/// out to be a resend of an old one; deliveries leave strictly in ticket order, once every
/// earlier ticket is settled, so recipients never see seq 7 before seq 6.
pub struct Sequencer {
    conv: ConvId,
    /// The highest seq assigned or stored.
    max_seq: i64,
    recent: HashMap<Key, Entry>,
    order: VecDeque<Key>,
    ready: BTreeMap<Ticket, Option<Delivery>>,
    next_ticket: Ticket,
    next_deliver: Ticket,
}

impl Sequencer {
    /// An empty sequencer; call [`Sequencer::seed`] once the store has answered.
    pub fn new(conv: ConvId) -> Self {
        Sequencer {
            conv,
            max_seq: 0,
            recent: HashMap::new(),
            order: VecDeque::new(),
            ready: BTreeMap::new(),
            next_ticket: 0,
            next_deliver: 0,
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

    /// The highest seq assigned or stored.
    pub fn max_seq(&self) -> i64 {
        self.max_seq
    }

    /// Learns that `seq` exists (found in the store).
    pub fn observe(&mut self, seq: i64) {
        self.max_seq = self.max_seq.max(seq);
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

    /// Accepts a new message of `(sender, client_id)`: marks it in flight and gives it the next
    /// ticket and the next seq.
    pub fn begin(&mut self, sender: UserId, client_id: &str) -> (Ticket, i64) {
        let t = self.next_ticket;
        self.next_ticket += 1;
        self.max_seq += 1;
        self.remember((sender, client_id.to_owned()), Entry::InFlight(Vec::new()));
        (t, self.max_seq)
    }

    /// Settles ticket `ticket` (the message of `key`) with the writer's answer.
    pub fn finish(
        &mut self,
        key: (UserId, String),
        ticket: Ticket,
        res: Result<Appended, ChatError>,
        carry: Carry,
    ) -> Settled {
        let waiters = match self.recent.remove(&key) {
            Some(Entry::InFlight(w)) => w,
            _ => Vec::new(),
        };
        let mut fenced = false;
        let (answer, outcome) = match res {
            Ok(Appended::Fenced(_)) => {
                // Another node owns the conversation now: not stored (or not ours to ack). The
                // client resends to the new owner, which knows what is stored.
                fenced = true;
                self.order.retain(|k| k != &key);
                (Err(ChatError::Unavailable("the conversation moved to another node; resend".into())), None)
            }
            Ok(appended) => {
                let rec = appended.record();
                let ack = Ack { id: rec.client_id.clone(), conv: rec.conv.clone(), seq: rec.seq, ts: rec.ts };
                self.recent.insert(key, Entry::Acked(ack.clone()));
                match appended {
                    Appended::Stored(rec) => (Ok(ack), Some((rec, carry))),
                    // Stored long ago under another seq; this seq stays unused.
                    _ => (Ok(ack), None),
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
        let mut ready = Vec::new();
        while let Some(next) = self.ready.remove(&self.next_deliver) {
            ready.extend(next);
            self.next_deliver += 1;
        }
        Settled { answer, ready, fenced }
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

/// An owner that sequences messages: its writer, store and epoch come with its [`Lifecycle`].
pub trait Sequenced: Lifecycle {
    /// Its sequencer.
    fn sequencer(&mut self) -> &mut Sequencer;
    /// Delivers a durable message to its recipients (`carry.origin`: the sending device,
    /// skipped; `carry.quoted`: the message a reply quotes).
    fn deliver(&mut self, rec: &MessageRecord, carry: &Carry);
}

/// The store's highest seq of `conv` and its last [`DEDUP_PRELOAD`] messages, to seed a
/// [`Sequencer`].
pub async fn load_tail(store: &dyn MessageStore, conv: ConvId) -> Result<(i64, Vec<MessageRecord>), String> {
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
            let wait = async move { rx.await.unwrap_or_else(|_| Err(ChatError::unavailable("stopped"))) };
            Some(Box::pin(wait.into_actor(act)))
        }
        Lookup::New => None,
    }
}

/// Sequences and persists a new message `rec` (its `seq` is set here) through the writer, then
/// acks and delivers in order. The caller checked [`replay`] first. A reply's quoted message is
/// read from the store before the write (the seq is taken at once, so one sender's messages keep
/// their order; delivery waits for it in ticket order).
pub fn post<A: Sequenced>(
    act: &mut A,
    mut rec: MessageRecord,
    origin: Option<DeviceId>,
) -> ResponseActFuture<A, Result<Ack, ChatError>> {
    if !act.life().may_write() {
        // Another node may own the conversation by now: nothing is sequenced here.
        return Box::pin(fut::ready(Err(ChatError::unavailable("this node lost its lease; resend"))));
    }
    let (ticket, seq) = act.sequencer().begin(rec.sender, &rec.client_id);
    rec.seq = seq;
    let key = (rec.sender, rec.client_id.clone());
    let epoch = act.life().epoch();
    let writer = act.deps().writer.clone();
    let quote = rec.reply_to.map(|q| {
        let (store, conv) = (act.deps().store.clone(), rec.conv.clone());
        async move { store.get(conv, q).await.ok().flatten() }
    });
    let write = async move {
        let quoted = match quote {
            Some(q) => q.await,
            None => None,
        };
        (writer.persist(rec, epoch).await, quoted)
    };
    Box::pin(write.into_actor(act).map(move |(res, quoted), act, ctx| {
        let res = res.map_err(ChatError::Unavailable);
        if res.is_err() {
            // A store that refused the seq (MongoDB: taken by a message that landed while the
            // conversation changed hands) is asked for its highest again.
            let (store, conv) = (act.deps().store.clone(), act.sequencer().conv().clone());
            ctx.spawn(async move { store.max_seq(conv).await }.into_actor(act).map(|max, act, _| {
                if let Ok(max) = max {
                    act.sequencer().observe(max);
                }
            }));
        }
        let settled = act.sequencer().finish(key, ticket, res, Carry { origin, quoted });
        for (rec, carry) in settled.ready {
            act.deliver(&rec, &carry);
        }
        if settled.fenced {
            crate::owner::report_fenced(act.life());
        }
        settled.answer
    }))
}

#[cfg(test)]
mod tests {
    use schema::message::MessageKind;

    use super::*;

    fn rec(seq: i64, id: &str) -> MessageRecord {
        MessageRecord {
            conv: ConvId("d:1:2".into()),
            seq,
            sender: UserId(1),
            client_id: id.into(),
            kind: MessageKind::Text,
            body: Some(id.into()),
            mentions: vec![],
            mention_all: false,
            ts: 10,
            recalled_at: None,
            ..MessageRecord::default()
        }
    }

    fn key(id: &str) -> (UserId, String) {
        (UserId(1), id.to_owned())
    }

    #[test]
    fn seqs_continue_after_the_store_and_follow_arrival() {
        let mut s = Sequencer::new(ConvId("d:1:2".into()));
        s.seed(41, vec![rec(41, "old")]);
        assert_eq!(s.begin(UserId(1), "a"), (0, 42));
        assert_eq!(s.begin(UserId(2), "b"), (1, 43));
        assert_eq!(s.max_seq(), 43);
        assert!(s.busy());
    }

    #[test]
    fn deliveries_leave_in_ticket_order_when_writes_finish_out_of_order() {
        let mut s = Sequencer::new(ConvId("d:1:2".into()));
        let (t1, _) = s.begin(UserId(1), "m1");
        let (t2, q2) = s.begin(UserId(1), "m2");
        let (t3, q3) = s.begin(UserId(1), "m3");
        // The third finishes first: nothing may be delivered yet.
        let third = s.finish(key("m3"), t3, Ok(Appended::Stored(rec(q3, "m3"))), Carry::default());
        assert_eq!(third.answer.as_ref().map(|a| a.seq), Ok(3));
        assert!(third.ready.is_empty());
        // The first fails: it is settled (its seq stays unused), and nothing after it is ready.
        let first = s.finish(key("m1"), t1, Err(ChatError::unavailable("db")), Carry::default());
        assert!(first.answer.is_err() && first.ready.is_empty());
        // The second completes: it and the third leave, in order.
        let carry = Carry { origin: Some(DeviceId(9)), quoted: None };
        let second = s.finish(key("m2"), t2, Ok(Appended::Stored(rec(q2, "m2"))), carry);
        let seqs: Vec<i64> = second.ready.iter().map(|(r, _)| r.seq).collect();
        assert_eq!(seqs, vec![q2, q3]);
        assert_eq!(second.ready[0].1.origin, Some(DeviceId(9)), "the sending device travels with its message");
        assert!(!s.busy());
    }

    #[test]
    fn a_resend_is_answered_from_the_window_or_waits_for_the_first_attempt() {
        let mut s = Sequencer::new(ConvId("d:1:2".into()));
        s.seed(5, vec![rec(5, "known")]);
        assert!(matches!(s.lookup(UserId(1), "known"), Lookup::Acked(a) if a.seq == 5));
        assert!(matches!(s.lookup(UserId(2), "known"), Lookup::New), "client ids are per sender");
        let (t, q) = s.begin(UserId(1), "fresh");
        let Lookup::Wait(mut rx) = s.lookup(UserId(1), "fresh") else { panic!("an in-flight id must wait") };
        let done = s.finish(key("fresh"), t, Ok(Appended::Stored(rec(q, "fresh"))), Carry::default());
        assert_eq!(done.answer.as_ref().map(|a| a.seq), Ok(6));
        assert_eq!(rx.try_recv().ok().and_then(|r| r.ok()).map(|a| a.seq), Some(6), "the resend gets the same ack");
        assert!(matches!(s.lookup(UserId(1), "fresh"), Lookup::Acked(a) if a.seq == 6));
    }

    #[test]
    fn a_duplicate_is_acked_with_the_original_and_not_delivered_again() {
        let mut s = Sequencer::new(ConvId("d:1:2".into()));
        s.seed(100, vec![]);
        let (t, _) = s.begin(UserId(1), "ancient");
        let done = s.finish(key("ancient"), t, Ok(Appended::Duplicate(rec(3, "ancient"))), Carry::default());
        assert_eq!(done.answer.map(|a| a.seq), Ok(3));
        assert!(done.ready.is_empty());
    }

    #[test]
    fn a_fenced_write_is_not_acked_and_stops_the_owner() {
        let mut s = Sequencer::new(ConvId("d:1:2".into()));
        let (t, q) = s.begin(UserId(1), "late");
        let done = s.finish(key("late"), t, Ok(Appended::Fenced(rec(q, "late"))), Carry::default());
        assert!(done.fenced);
        assert!(matches!(done.answer, Err(ChatError::Unavailable(_))));
        assert!(done.ready.is_empty());
        assert!(matches!(s.lookup(UserId(1), "late"), Lookup::New), "a resend is not answered from here");
    }

    #[test]
    fn the_window_forgets_the_oldest_acked_ids_but_never_one_in_flight() {
        let mut s = Sequencer::new(ConvId("d:1:2".into()));
        let (t0, q0) = s.begin(UserId(1), "first");
        for i in 0..DEDUP_WINDOW + 10 {
            let id = format!("m{i}");
            let (t, q) = s.begin(UserId(1), &id);
            s.finish(key(&id), t, Ok(Appended::Stored(rec(q, &id))), Carry::default());
        }
        assert!(matches!(s.lookup(UserId(1), "first"), Lookup::Wait(_)), "still in flight, still known");
        s.finish(key("first"), t0, Ok(Appended::Stored(rec(q0, "first"))), Carry::default());
        assert!(matches!(s.lookup(UserId(1), "m0"), Lookup::New), "the oldest acked ids are forgotten");
        let last = format!("m{}", DEDUP_WINDOW + 9);
        assert!(matches!(s.lookup(UserId(1), &last), Lookup::Acked(_)));
    }
}
