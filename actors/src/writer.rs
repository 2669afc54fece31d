//! `MessageWriter`: group commit. Conversation and group actors hand it sequenced messages; it
//! persists them in batches (one store append and one summary update per batch, one commit) and
//! answers each message once its batch is durable.
//!
//! Messages are split into *lanes* by conversation ([`ConvId::slot`](schema::ConvId::slot)). Each
//! lane has one batch in flight at a time: while it is being written, new messages of that lane
//! queue up and form its next batch. At low load a message is written alone at once; under load
//! batches grow up to [`MAX_BATCH`], so throughput does not pay one round trip per message. One
//! lane's batches complete in order; lanes write in parallel on separate connections
//! (PostgreSQL), and as no two lanes touch the same conversation's rows, their transactions never
//! wait for each other or deadlock. SQLite has one writer at a time, so it gets one lane.
//! Conversation actors deliver in seq order whatever order batches complete in (tickets,
//! `sequencer.rs`).
//!
//! The writer is not an actor of its own: a lane's queue sits behind a mutex, and the actor whose
//! message finds the lane idle starts the lane's task on its own arbiter. That task writes batch
//! after batch until the queue is empty and answers the waiters itself, so a message goes from
//! its conversation's thread to a store worker and back (PostgreSQL, MongoDB), or is written on
//! that thread itself (a SQLite file, [`Database::local_writes`]), with no stop on a central
//! thread on either way (each is one more wake-up, which is what the ack's tail is made of).
//!
//! [`Database::local_writes`]: schema::db::Database::local_writes

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use schema::message::{Appended, Fence, MessageRecord};
use tokio::sync::oneshot;

use crate::db::Db;
use crate::metrics::{inc, Metrics};
use crate::store::{last_messages, MessageStore};

/// Largest batch written at once (well below the SQL parameter limits).
pub const MAX_BATCH: usize = 512;

/// Totals since start.
#[derive(Debug, Clone, Copy, Default)]
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
    queue: VecDeque<(MessageRecord, Option<i64>, Waiter)>,
    /// A task is writing this lane's batches.
    flushing: bool,
}

struct Inner {
    store: Arc<dyn MessageStore>,
    db: Db,
    lanes: Vec<Mutex<Lane>>,
    /// The node's metrics; the writer is the only one counting persisted messages, store
    /// failures and batch latencies, so [`MessageWriter::stats`] reads its totals there.
    metrics: Arc<Metrics>,
    /// Answered when every lane is idle ([`MessageWriter::flush`]). Lock order: this, then lanes.
    idle_waiters: Mutex<Vec<oneshot::Sender<()>>>,
}

/// The group-commit writer of a node; cheap to clone (all clones share the lanes).
#[derive(Clone)]
pub struct MessageWriter {
    inner: Arc<Inner>,
}

/// A lock that survives a panic elsewhere (the queues stay consistent: every change under the
/// lock is a single push, drain or flag write).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MessageWriter {
    /// A writer over `store` with `lanes` batches in flight at most (at least one), keeping
    /// conversation summaries in `db`.
    pub fn new(store: Arc<dyn MessageStore>, db: Db, metrics: Arc<Metrics>, lanes: usize) -> Self {
        MessageWriter {
            inner: Arc::new(Inner {
                store,
                db,
                lanes: (0..lanes.max(1)).map(|_| Mutex::new(Lane::default())).collect(),
                metrics,
                idle_waiters: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Queues one message, sequenced under owner epoch `epoch` (`None` on a single node, where
    /// nothing is fenced); the future resolves when it is durable, fenced (its conversation has
    /// a newer owner: [`Appended::Fenced`], not stored) or its batch failed. Must be
    /// called on an actix arbiter (an actor's thread): an idle lane's task starts there and lives
    /// on that arbiter (the node's chat arbiters run as long as the node). Should that arbiter
    /// stop first, the lane's queued messages are answered with an error and the lane restarts
    /// with the next message ([`LaneGuard`]).
    pub fn persist(
        &self,
        rec: MessageRecord,
        epoch: Option<i64>,
    ) -> impl Future<Output = Result<Appended, String>> + 'static {
        let (tx, rx) = oneshot::channel();
        let lane = rec.conv.slot(self.inner.lanes.len());
        let start = {
            let mut l = lock(&self.inner.lanes[lane]);
            l.queue.push_back((rec, epoch, tx));
            !std::mem::replace(&mut l.flushing, true)
        };
        if start {
            actix::spawn(run_lane(self.inner.clone(), lane));
        }
        async move { rx.await.unwrap_or_else(|_| Err("message writer stopped".into())) }
    }

    /// Resolves once everything queued so far is written (shutdown drains through it).
    pub async fn flush(&self) {
        let rx = {
            let mut waiters = lock(&self.inner.idle_waiters);
            if self.inner.idle() {
                return;
            }
            let (tx, rx) = oneshot::channel();
            waiters.push(tx);
            rx
        };
        let _ = rx.await;
    }

    /// Totals since start, and the messages queued now.
    pub fn stats(&self) -> WriterStats {
        let (i, m) = (&self.inner, &self.inner.metrics);
        WriterStats {
            persisted: m.messages_persisted.load(Ordering::Relaxed),
            batches: m.store_latency.count(),
            failures: m.store_failures.load(Ordering::Relaxed),
            queued: i.lanes.iter().map(|l| lock(l).queue.len()).sum(),
        }
    }
}

impl Inner {
    fn idle(&self) -> bool {
        self.lanes.iter().all(|l| {
            let l = lock(l);
            !l.flushing && l.queue.is_empty()
        })
    }

    fn wake_idle_waiters(&self) {
        let mut waiters = lock(&self.idle_waiters);
        if !waiters.is_empty() && self.idle() {
            for w in waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }
}

/// Resets a lane whose task was dropped before its queue was empty (its arbiter stopped): the
/// queued messages are answered "message writer stopped" (their senders retry, and dedup makes
/// that safe whether or not the interrupted batch was committed), and the next message starts a
/// new task instead of waiting behind one that no longer runs.
struct LaneGuard {
    inner: Arc<Inner>,
    lane: usize,
    /// The task emptied the queue and marked the lane idle itself (another task may own the
    /// lane by now: the guard must not touch it).
    finished: bool,
}

impl Drop for LaneGuard {
    fn drop(&mut self) {
        if !self.finished {
            let mut l = lock(&self.inner.lanes[self.lane]);
            l.flushing = false;
            l.queue.clear();
        }
        self.inner.wake_idle_waiters();
    }
}

/// Writes lane `lane`'s batches, one at a time, until its queue is empty. The guard is made
/// here, not inside the future, so that it also resets the lane if the task is dropped before
/// it ever ran.
fn run_lane(inner: Arc<Inner>, lane: usize) -> impl Future<Output = ()> {
    lane_batches(LaneGuard { inner, lane, finished: false })
}

async fn lane_batches(mut guard: LaneGuard) {
    let (inner, lane) = (guard.inner.clone(), guard.lane);
    loop {
        let queued: Vec<(MessageRecord, Option<i64>, Waiter)> = {
            let mut l = lock(&inner.lanes[lane]);
            if l.queue.is_empty() {
                l.flushing = false;
                guard.finished = true;
                break;
            }
            let n = l.queue.len().min(MAX_BATCH);
            l.queue.drain(..n).collect()
        };
        let (records, fences, waiters) = fence_batch(queued);
        let n = records.len();
        inner.metrics.store_batch_size.observe(n as f64);
        let last = last_messages(&records);
        let started = std::time::Instant::now();
        let res = inner.store.append_with_summaries(records, last, fences, inner.db.clone()).await;
        inner.metrics.store_latency.observe(started.elapsed().as_secs_f64());
        match res {
            Ok(results) => {
                let stored = results.iter().filter(|r| matches!(r, Appended::Stored(_))).count() as u64;
                let fenced = results.iter().filter(|r| matches!(r, Appended::Fenced(_))).count() as u64;
                inner.metrics.messages_persisted.fetch_add(stored, Ordering::Relaxed);
                inner.metrics.fenced_writes.fetch_add(fenced, Ordering::Relaxed);
                for (w, r) in waiters.into_iter().zip(results) {
                    let _ = w.send(Ok(r));
                }
            }
            Err(e) => {
                inc(&inner.metrics.store_failures);
                let e = e.to_string();
                log::error!("message batch of {n} not persisted: {e}");
                for w in waiters {
                    let _ = w.send(Err(e.clone()));
                }
            }
        }
        // Let the arbiter run its other tasks before the next batch: the actors just answered
        // (their acks and deliveries), and new messages for the queue. A SQLite batch is written
        // on this thread without a pause in between (`append_with_summaries`).
        tokio::task::yield_now().await;
    }
    // `guard` wakes the idle waiters as it goes out of scope.
}

/// Splits queued messages into the batch, its fences (one epoch per conversation) and the
/// waiters. Should one conversation's messages carry two epochs (a message of an owner that was
/// replaced on this node, queued behind its successor's), the newest epoch is the batch's, and
/// the older messages are answered `Fenced` at once without being written.
fn fence_batch(queued: Vec<(MessageRecord, Option<i64>, Waiter)>) -> (Vec<MessageRecord>, Vec<Fence>, Vec<Waiter>) {
    let mut newest: HashMap<schema::ConvId, i64> = HashMap::new();
    for (rec, epoch, _) in &queued {
        if let Some(e) = epoch {
            let slot = newest.entry(rec.conv.clone()).or_insert(*e);
            *slot = (*slot).max(*e);
        }
    }
    let mut records = Vec::with_capacity(queued.len());
    let mut waiters = Vec::with_capacity(queued.len());
    for (rec, epoch, w) in queued {
        if epoch.is_some_and(|e| newest.get(&rec.conv).is_some_and(|n| *n > e)) {
            let _ = w.send(Ok(Appended::Fenced(rec)));
            continue;
        }
        records.push(rec);
        waiters.push(w);
    }
    let fences = newest.into_iter().map(|(conv, epoch)| Fence { conv, epoch }).collect();
    (records, fences, waiters)
}
