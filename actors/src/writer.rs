//! `MessageWriter`: group commit. Conversation actors hand it sequenced messages; it persists
//! them in batches (one store append and one summary update per batch) and answers each message
//! once its batch is durable.
//!
//! One batch is in flight at a time: while it is being written, new messages queue up and form
//! the next batch. At low load a message is written alone at once; under load batches grow up
//! to [`MAX_BATCH`], so throughput does not pay one round trip per message. Batches complete in
//! order, so acks and deliveries keep seq order.

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

/// The group-commit writer of a node.
pub struct MessageWriter {
    store: Arc<dyn MessageStore>,
    db: Db,
    queue: VecDeque<(MessageRecord, Waiter)>,
    flushing: bool,
    stats: WriterStats,
    metrics: Arc<Metrics>,
    idle_waiters: Vec<oneshot::Sender<()>>,
}

impl MessageWriter {
    /// A writer over `store`, keeping conversation summaries in `db`.
    pub fn new(store: Arc<dyn MessageStore>, db: Db, metrics: Arc<Metrics>) -> Self {
        MessageWriter {
            store,
            db,
            queue: VecDeque::new(),
            flushing: false,
            stats: WriterStats::default(),
            metrics,
            idle_waiters: Vec::new(),
        }
    }

    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing {
            return;
        }
        if self.queue.is_empty() {
            for w in self.idle_waiters.drain(..) {
                let _ = w.send(());
            }
            return;
        }
        self.flushing = true;
        let n = self.queue.len().min(MAX_BATCH);
        let (records, waiters): (Vec<MessageRecord>, Vec<Waiter>) = self.queue.drain(..n).unzip();
        let last = last_messages(&records);
        let store = self.store.clone();
        let db = self.db.clone();
        self.metrics.store_batch_size.observe(n as f64);
        let started = std::time::Instant::now();
        let fut = async move {
            let res = store.append(records).await.map_err(|e| e.to_string());
            if res.is_ok() {
                // The messages are durable; a failed summary update only makes the list stale.
                if let Err(e) = db.write(move |c| conversations::record_last(c, &last)).await {
                    log::warn!("conversation summaries not updated: {e}");
                }
            }
            res
        };
        ctx.spawn(fut.into_actor(self).map(move |res, act, ctx| {
            act.flushing = false;
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
            act.flush(ctx);
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
        self.queue.push_back((msg.0, tx));
        self.flush(ctx);
        Box::pin(async move { rx.await.unwrap_or_else(|_| Err("message writer stopped".into())) })
    }
}

impl Handler<Flush> for MessageWriter {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) -> Self::Result {
        let (tx, rx) = oneshot::channel();
        self.idle_waiters.push(tx);
        self.flush(ctx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<GetWriterStats> for MessageWriter {
    type Result = WriterStats;

    fn handle(&mut self, _: GetWriterStats, _: &mut Context<Self>) -> WriterStats {
        WriterStats { queued: self.queue.len(), ..self.stats }
    }
}
