//! `MessageWriter`: group commit. Conversation actors hand it sequenced messages; it persists
//! them in batches (one store append and one summary update per batch) and answers each message
//! once its batch is durable.
//!
//! Messages are split into *lanes* by conversation (a stable hash of its id). Each lane has one
//! batch in flight at a time: while it is being written, new messages of that lane queue up and
//! form its next batch. At low load a message is written alone at once; under load batches grow
//! up to [`MAX_BATCH`], so throughput does not pay one round trip per message. One lane's
//! batches complete in order; lanes write in parallel on separate connections (PostgreSQL), and
//! as no two lanes touch the same conversation's rows, their transactions never wait for each
//! other or deadlock. SQLite has one writer at a time, so it gets one lane. Conversation actors
//! deliver in seq order whatever order batches complete in (tickets, `sequencer.rs`).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use actix::prelude::*;
use schema::db::conversations::{self, LastMessage};
use schema::message::{Appended, MessageKind, MessageRecord};
use tokio::sync::oneshot;

use crate::db::Db;
use crate::metrics::{inc, Metrics};
use crate::store::MessageStore;

/// Largest batch written at once (well below the SQL parameter limits).
pub const MAX_BATCH: usize = 512;

/// Persist one message; resolves when it is durable.
#[derive(Debug, Message)]
#[rtype(result = "Result<Appended, String>")]
pub struct Persist(pub MessageRecord);

/// Resolves once everything queued so far is written (shutdown drains through it).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Flush;

/// Writer statistics.
#[derive(Debug, Message)]
#[rtype(result = "WriterStats")]
pub struct GetWriterStats;

/// Totals since start.
#[derive(Debug, Clone, Copy, Default, MessageResponse)]
pub struct WriterStats {
    pub persisted: u64,
    pub batches: u64,
    pub failures: u64,
    pub queued: usize,
}

type Waiter = oneshot::Sender<Result<Appended, String>>;

/// One lane: the messages of its conversations waiting for the next batch.
#[derive(Default)]
struct Lane {
    queue: VecDeque<(MessageRecord, Waiter)>,
    flushing: bool,
}

/// The group-commit writer of a node.
pub struct MessageWriter {
    store: Arc<dyn MessageStore>,
    db: Db,
    lanes: Vec<Lane>,
    stats: WriterStats,
    metrics: Arc<Metrics>,
    idle_waiters: Vec<oneshot::Sender<()>>,
}

impl MessageWriter {
    /// A writer over `store` with `lanes` batches in flight at most (at least one), keeping
    /// conversation summaries in `db`.
    pub fn new(store: Arc<dyn MessageStore>, db: Db, metrics: Arc<Metrics>, lanes: usize) -> Self {
        MessageWriter {
            store,
            db,
            lanes: (0..lanes.max(1)).map(|_| Lane::default()).collect(),
            stats: WriterStats::default(),
            metrics,
            idle_waiters: Vec::new(),
        }
    }

    fn idle(&self) -> bool {
        self.lanes.iter().all(|l| !l.flushing && l.queue.is_empty())
    }

    fn flush(&mut self, lane: usize, ctx: &mut Context<Self>) {
        let l = &mut self.lanes[lane];
        if l.flushing {
            return;
        }
        if l.queue.is_empty() {
            if self.idle() {
                for w in self.idle_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
            return;
        }
        l.flushing = true;
        let n = l.queue.len().min(MAX_BATCH);
        let (records, waiters): (Vec<MessageRecord>, Vec<Waiter>) = l.queue.drain(..n).unzip();
        let last = last_messages(&records);
        let store = self.store.clone();
        let db = self.db.clone();
        self.metrics.store_batch_size.observe(n as f64);
        let started = std::time::Instant::now();
        let fut = async move { store.append_with_summaries(records, last, db).await.map_err(|e| e.to_string()) };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.lanes[lane].flushing = false;
            act.stats.batches += 1;
            act.metrics.store_latency.observe(started.elapsed().as_secs_f64());
            match res {
                Ok(results) => {
                    let stored = results.iter().filter(|r| matches!(r, Appended::Stored(_))).count() as u64;
                    act.stats.persisted += stored;
                    act.metrics.messages_persisted.fetch_add(stored, std::sync::atomic::Ordering::Relaxed);
                    for (w, r) in waiters.into_iter().zip(results) {
                        let _ = w.send(Ok(r));
                    }
                }
                Err(e) => {
                    act.stats.failures += 1;
                    inc(&act.metrics.store_failures);
                    log::error!("message batch of {n} not persisted: {e}");
                    for w in waiters {
                        let _ = w.send(Err(e.clone()));
                    }
                }
            }
            act.flush(lane, ctx);
        }));
    }
}

/// The newest message of each conversation in a batch.
fn last_messages(records: &[MessageRecord]) -> Vec<LastMessage> {
    let mut by_conv: HashMap<&str, &MessageRecord> = HashMap::new();
    for r in records {
        let e = by_conv.entry(r.conv.as_str()).or_insert(r);
        if r.seq > e.seq {
            *e = r;
        }
    }
    by_conv
        .into_values()
        .map(|r| LastMessage {
            conv: r.conv.0.clone(),
            seq: r.seq,
            ts: r.ts,
            sender: r.sender.0,
            preview: match r.kind {
                MessageKind::Text => r.body.as_deref().map(conversations::preview),
                MessageKind::System => None,
            },
        })
        .collect()
}

impl Actor for MessageWriter {
    type Context = Context<Self>;
}

impl Handler<Persist> for MessageWriter {
    type Result = ResponseFuture<Result<Appended, String>>;

    fn handle(&mut self, msg: Persist, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        let lane = msg.0.conv.slot(self.lanes.len());
        self.lanes[lane].queue.push_back((msg.0, tx));
        self.flush(lane, ctx);
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err("message writer stopped".into())) })
    }
}

impl Handler<Flush> for MessageWriter {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.idle_waiters.push(tx);
        for lane in 0..self.lanes.len() {
            self.flush(lane, ctx);
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<GetWriterStats> for MessageWriter {
    type Result = WriterStats;

    fn handle(&mut self, _: GetWriterStats, _: &mut Context<Self>) -> WriterStats {
        WriterStats { queued: self.lanes.iter().map(|l| l.queue.len()).sum(), ..self.stats }
    }
}
