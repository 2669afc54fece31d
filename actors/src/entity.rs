//! One owner per conversation in the whole cluster: the node's entity registry.
//!
//! Every conversation (1:1 or group) is one actor, its *owner*, running on exactly one node at a
//! time. A command for it (a message, a receipt, a group change) goes to the registry of the node
//! where it arose ([`Entities::route`]), which finds the owner and passes the command on: to a
//! local owner through its mailbox, to one on another node as a request over Redis
//! ([`Envelope::Request`]), whose answer comes back on this node's channel. Where there is no
//! owner, the registry makes one: on a single node at once; in a cluster it places the
//! conversation on a live node (rendezvous hashing), and the chosen node claims the owner record
//! in Redis and raises the conversation's fencing epoch in SQL ([`Directory`]) before the actor
//! starts.
//!
//! The registry is sharded: one [`Shard`] actor per chat arbiter (thread), each holding the
//! conversations hashed to it, their owners running on the same thread. Commands for one
//! conversation from one sender keep their order all the way: one shard, one mailbox, and in a
//! cluster one publisher queue and one subscriber connection per node.
//!
//! Owners stop in a handshake ([`OwnerEvent::Idle`], then [`Stop`]): once an owner says it is
//! idle, the shard routes nothing more to it and queues what arrives for the conversation until
//! the owner has stopped (and, in a cluster, deleted its record); then it finds a new owner for
//! the queued commands. No command ever reaches an owner that is stopping. The same path hands
//! conversations over when the node drains, when its lease lapses, or when a write of an owner
//! was fenced because another node took the conversation over.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use schema::ConvId;
use tokio::sync::oneshot;

use crate::cluster::directory::{Claim, Directory};
use crate::cluster::envelope::{Answer, Envelope};
use crate::cluster::outbox::Outbox;
use crate::cluster::view::Lease;
use crate::command::{ChatError, Command, Outcome, Reply as Done};
use crate::metrics::{inc, Metrics};

/// How often a command may be bounced between nodes (each says another owns it) before it is
/// answered `unavailable`.
pub const MAX_HOPS: u8 = 3;

/// How long a shard remembers where a conversation's remote owner runs without using it.
pub const REMOTE_CACHE_IDLE: Duration = Duration::from_secs(300);

/// Where the answer to a command goes.
pub enum Reply {
    /// A caller on this node.
    Local(oneshot::Sender<Outcome>),
    /// Request `id` of node `node` (answered on its channel).
    Remote { node: String, id: u64, outbox: Outbox },
    /// Nobody waits for it.
    Ignore,
}

impl Reply {
    /// Answers the command.
    pub fn send(self, outcome: Outcome) {
        self.answer(Answer::Ran { outcome });
    }

    fn answer(self, answer: Answer) {
        match self {
            Reply::Local(tx) => {
                let outcome = match answer {
                    Answer::Ran { outcome } => outcome,
                    Answer::NotOwner { .. } => Err(ChatError::unavailable("no owner for the conversation")),
                };
                let _ = tx.send(outcome);
            }
            Reply::Remote { node, id, outbox } => outbox.to_node(&node, &Envelope::Reply { id, answer }, &[]),
            Reply::Ignore => {}
        }
    }

    fn is_remote(&self) -> bool {
        matches!(self, Reply::Remote { .. })
    }
}

/// A command for a running owner, and where its answer goes.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Exec {
    pub cmd: Command,
    pub reply: Reply,
}

/// Why an owner is told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// It said it was idle.
    Idle,
    /// The node drains: the conversation moves to another node.
    Handover,
    /// The node's lease lapsed: another node may take the conversation over now.
    LeaseLost,
    /// The node's lease is back: an owner that ran under SQL fencing alone makes way for one
    /// placed normally.
    LeaseBack,
    /// One of its writes was fenced: another node owns the conversation.
    Fenced,
}

/// Stop once what was accepted is done (no new command will arrive).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Stop(pub StopReason);

/// What an owner tells its shard.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum OwnerEvent {
    /// Nothing in flight and no traffic for a while: ready to stop.
    Idle { conv: ConvId, instance: u64 },
    /// A write was fenced (another node owns the conversation): stop routing here.
    Fenced { conv: ConvId, instance: u64 },
    /// The owner stopped (told to, or it failed to start).
    Stopped { conv: ConvId, instance: u64 },
}

/// How an owner holds its conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tenure {
    /// A single node: nothing else could own it.
    Alone,
    /// Under the node's lease, with a record in Redis and an epoch in SQL.
    Leased,
    /// The node lost its lease (Redis unreachable): under its SQL epoch alone, which fences
    /// whoever else may act for the conversation meanwhile.
    Fenced,
}

/// What an owner is given when it starts.
pub struct OwnerCtx {
    pub conv: ConvId,
    /// Tells this owner apart from earlier and later ones of the same conversation.
    pub instance: u64,
    /// The epoch every write is made under (`None` alone).
    pub epoch: Option<i64>,
    pub tenure: Tenure,
    /// The previous owner did not hand over (it died, paused past its lease, or this owner
    /// runs under SQL fencing alone): clients may have missed live frames and are told to sync.
    pub takeover: bool,
    /// Its shard.
    pub registry: Recipient<OwnerEvent>,
    /// The node's lease (in a cluster): a leased owner writes only while it holds.
    pub lease: Option<Arc<Lease>>,
}

/// A running owner's mailboxes.
#[derive(Clone)]
pub struct Owner {
    pub exec: Recipient<Exec>,
    pub stop: Recipient<Stop>,
}

/// Starts the owner of a conversation on an arbiter; `None` when the id names no conversation.
pub type Spawner = Arc<dyn Fn(OwnerCtx, &ArbiterHandle) -> Option<Owner> + Send + Sync>;

/// What shards need in a cluster.
#[derive(Clone)]
pub struct ClusterEnv {
    pub directory: Directory,
    pub outbox: Outbox,
    pub lease: Arc<Lease>,
    /// How long a command waits for an owner on another node.
    pub request_timeout: Duration,
}

/// Requests this node sent to owners on other nodes, waiting for their answer.
#[derive(Default)]
pub struct Pending {
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, (String, oneshot::Sender<Answer>)>>,
}

impl Pending {
    fn register(&self, node: &str) -> (u64, oneshot::Receiver<Answer>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiting.lock() {
            w.insert(id, (node.to_owned(), tx));
        }
        (id, rx)
    }

    fn forget(&self, id: u64) {
        if let Ok(mut w) = self.waiting.lock() {
            w.remove(&id);
        }
    }

    /// The answer to request `id` arrived.
    pub fn answer(&self, id: u64, answer: Answer) {
        let tx = self.waiting.lock().ok().and_then(|mut w| w.remove(&id));
        if let Some((_, tx)) = tx {
            let _ = tx.send(answer);
        }
    }

    /// Node `node` is gone: its requests will not be answered (their callers get
    /// `unavailable` at once instead of after the timeout).
    pub fn fail_node(&self, node: &str) {
        if let Ok(mut w) = self.waiting.lock() {
            w.retain(|_, (n, _)| n != node);
        }
    }

    /// Requests waiting now.
    pub fn len(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or(0)
    }

    /// True when none waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

struct Env {
    me: String,
    draining: Box<dyn Fn() -> bool + Send + Sync>,
    spawner: Spawner,
    cluster: Option<ClusterEnv>,
    metrics: Arc<Metrics>,
    pending: Arc<Pending>,
}

/// The node's entity registry: a handle over its shards; cheap to clone.
#[derive(Clone)]
pub struct Entities {
    shards: Arc<Vec<Addr<Shard>>>,
    env: Arc<Env>,
}

/// Route a command to the owner of `conv`.
#[derive(Message)]
#[rtype(result = "()")]
struct Route {
    conv: ConvId,
    cmd: Command,
    reply: Reply,
}

impl Entities {
    /// Starts one shard on each of `arbiters`. `draining` tells whether this node drains.
    pub fn start(
        arbiters: &[ArbiterHandle],
        me: String,
        draining: impl Fn() -> bool + Send + Sync + 'static,
        spawner: Spawner,
        cluster: Option<ClusterEnv>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let env =
            Arc::new(Env { me, draining: Box::new(draining), spawner, cluster, metrics, pending: Arc::default() });
        let shards = arbiters
            .iter()
            .map(|a| {
                let (env, arbiter) = (env.clone(), a.clone());
                Shard::start_in_arbiter(a, move |_| Shard {
                    env,
                    arbiter,
                    entries: HashMap::new(),
                    next_instance: 1,
                    next_n: 0,
                    drain_waiters: Vec::new(),
                })
            })
            .collect();
        Entities { shards: Arc::new(shards), env }
    }

    fn shard(&self, conv: &ConvId) -> &Addr<Shard> {
        &self.shards[conv.slot(self.shards.len())]
    }

    /// Runs `cmd` at the owner of `conv` (starting one if needed and the command does). The
    /// command is queued when this is called, not when the future is first polled, so commands
    /// routed one after the other keep their order.
    pub fn route(&self, conv: ConvId, cmd: Command) -> impl std::future::Future<Output = Outcome> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        self.shard(&conv).do_send(Route { conv, cmd, reply: Reply::Local(tx) });
        async move { rx.await.unwrap_or_else(|_| Err(ChatError::unavailable("the conversation's owner stopped; retry"))) }
    }

    /// Runs `cmd` at the owner of `conv` without waiting for the answer.
    pub fn tell(&self, conv: ConvId, cmd: Command) {
        self.shard(&conv).do_send(Route { conv, cmd, reply: Reply::Ignore });
    }

    /// Tells the owner of `conv` on node `node` something that needs no answer (where members
    /// are online); dropped there if that node does not own it any more.
    pub fn notify(&self, node: &str, conv: ConvId, cmd: Command) {
        if let Some(c) = &self.env.cluster {
            c.outbox.to_node(node, &Envelope::Request { id: 0, conv, cmd }, &[]);
        }
    }

    /// Request `id` of node `node` for `conv` arrived (from the subscriber).
    pub fn request(&self, conv: ConvId, cmd: Command, node: String, id: u64) {
        let outbox = self.env.cluster.as_ref().map(|c| c.outbox.clone()).unwrap_or_default();
        self.shard(&conv).do_send(Route { conv, cmd, reply: Reply::Remote { node, id, outbox } });
    }

    /// The answer to request `id` arrived (from the subscriber).
    pub fn answer(&self, id: u64, answer: Answer) {
        self.env.pending.answer(id, answer);
    }

    /// The live nodes changed (heartbeat): forget owners on nodes that are gone, and fail the
    /// requests waiting for them.
    pub fn nodes_changed(&self, gone: Vec<String>) {
        for node in &gone {
            self.env.pending.fail_node(node);
        }
        for s in self.shards.iter() {
            s.do_send(NodesGone { nodes: gone.clone() });
        }
    }

    /// The node's lease was lost (`false`) or is held again (`true`).
    pub fn lease_changed(&self, held: bool) {
        for s in self.shards.iter() {
            s.do_send(LeaseChanged { held });
        }
    }

    /// Hands every conversation this node owns over (drain): resolves once all owners stopped
    /// (and deleted their records), so that commands arriving afterwards go to other nodes.
    pub async fn hand_over(&self) {
        let all: Vec<_> = self.shards.iter().map(|s| s.send(HandOver)).collect();
        for r in all {
            let _ = r.await;
        }
    }

    /// The conversations owned here and their epochs.
    pub async fn owned(&self) -> Vec<(ConvId, Option<i64>)> {
        let mut out = Vec::new();
        for s in self.shards.iter() {
            out.extend(s.send(ListOwned).await.unwrap_or_default());
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// How many conversations this node owns now.
    pub async fn count(&self) -> usize {
        let mut n = 0;
        for s in self.shards.iter() {
            n += s.send(ListOwned).await.map(|v| v.len()).unwrap_or(0);
        }
        n
    }

    /// Requests waiting for an owner on another node.
    pub fn waiting(&self) -> usize {
        self.env.pending.len()
    }
}

/// A command waiting for its owner. `n` is its arrival order in the shard, so that commands
/// bounced back by another node go before those that arrived after them.
struct Queued {
    n: u64,
    cmd: Command,
    reply: Reply,
    hops: u8,
}

enum Entry {
    /// The owner runs here.
    Owned(Owned),
    /// Looking for the owner (or becoming it); commands wait, in arrival order.
    Resolving(VecDeque<Queued>),
    /// The owner runs on that node (as of the last look); `used` is when a command last went
    /// there (entries unused for [`REMOTE_CACHE_IDLE`] are forgotten).
    Remote(String, Instant),
    /// The owner here is stopping; commands wait until it has, then go to the next owner.
    Stopping { instance: u64, queue: VecDeque<Queued>, release: Option<i64> },
}

struct Owned {
    owner: Owner,
    instance: u64,
    epoch: Option<i64>,
    tenure: Tenure,
}

/// How a conversation without a known owner was resolved.
enum Resolution {
    /// This node owns it now.
    Here {
        epoch: Option<i64>,
        tenure: Tenure,
        takeover: bool,
    },
    /// Another live node holds it.
    Held(String),
    /// Nobody holds it; placement says that node (which will claim it).
    Placed(String),
    /// Nobody holds it and the commands do not start an owner.
    Nobody,
    /// This node drains and nobody holds it: it goes to `placement`, if any live node takes it.
    Draining(Option<String>),
    Failed(String),
}

/// One shard of the registry: the conversations hashed to its arbiter.
pub struct Shard {
    env: Arc<Env>,
    arbiter: ArbiterHandle,
    entries: HashMap<ConvId, Entry>,
    next_instance: u64,
    next_n: u64,
    drain_waiters: Vec<oneshot::Sender<()>>,
}

impl Actor for Shard {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.run_interval(REMOTE_CACHE_IDLE / 5, |act, _| {
            act.entries.retain(|_, e| !matches!(e, Entry::Remote(_, used) if used.elapsed() >= REMOTE_CACHE_IDLE));
        });
    }
}

fn insert_ordered(queue: &mut VecDeque<Queued>, q: Queued) {
    let at = queue.iter().position(|x| x.n > q.n).unwrap_or(queue.len());
    queue.insert(at, q);
}

impl Shard {
    fn dispatch(&mut self, conv: ConvId, q: Queued, ctx: &mut Context<Self>) {
        match self.entries.get_mut(&conv) {
            Some(Entry::Owned(o)) => o.owner.exec.do_send(Exec { cmd: q.cmd, reply: q.reply }),
            Some(Entry::Resolving(queue)) | Some(Entry::Stopping { queue, .. }) => insert_ordered(queue, q),
            Some(Entry::Remote(node, used)) => {
                *used = Instant::now();
                let node = node.clone();
                if q.reply.is_remote() {
                    // Commands are routed once: a node asked by another answers for itself.
                    q.reply.answer(Answer::NotOwner { holder: Some(node), draining: false });
                } else {
                    self.forward(conv, node, q, ctx);
                }
            }
            None => {
                if self.env.cluster.is_none() {
                    // A single node owns every conversation.
                    if q.cmd.activates() {
                        self.entries.insert(conv.clone(), Entry::Resolving(VecDeque::from([q])));
                        self.resolved(
                            conv,
                            Resolution::Here { epoch: None, tenure: Tenure::Alone, takeover: false },
                            ctx,
                        );
                    } else {
                        q.reply.send(Ok(Done::Done));
                    }
                    return;
                }
                self.entries.insert(conv.clone(), Entry::Resolving(VecDeque::from([q])));
                self.resolve(conv, ctx);
            }
        }
    }

    fn resolve(&mut self, conv: ConvId, ctx: &mut Context<Self>) {
        let Some(Entry::Resolving(queue)) = self.entries.get(&conv) else { return };
        let activates = queue.iter().any(|q| q.cmd.activates());
        // A node asked by another claims a conversation nobody holds instead of placing it
        // elsewhere again, so two nodes with different views of the cluster do not bounce it.
        let claim_free = queue.iter().any(|q| q.reply.is_remote());
        let env = self.env.clone();
        let c = conv.clone();
        ctx.spawn(
            async move { resolve(&env, &c, activates, claim_free).await }
                .into_actor(self)
                .map(move |res, act, ctx| act.resolved(conv, res, ctx)),
        );
    }

    fn resolved(&mut self, conv: ConvId, res: Resolution, ctx: &mut Context<Self>) {
        let Some(Entry::Resolving(mut queue)) = self.entries.remove(&conv) else { return };
        match res {
            Resolution::Here { epoch, tenure, takeover } => {
                let instance = self.next_instance;
                self.next_instance += 1;
                let octx = OwnerCtx {
                    conv: conv.clone(),
                    instance,
                    epoch,
                    tenure,
                    takeover,
                    registry: ctx.address().recipient(),
                    lease: self.env.cluster.as_ref().map(|c| c.lease.clone()),
                };
                let Some(owner) = (self.env.spawner)(octx, &self.arbiter) else {
                    for q in queue {
                        q.reply.send(Err(ChatError::UnknownConversation));
                    }
                    return;
                };
                inc(&self.env.metrics.activations);
                if takeover {
                    inc(&self.env.metrics.takeovers);
                    log::info!(conv = conv.as_str(); "node {} took conversation {conv} over (epoch {epoch:?}, {tenure:?})", self.env.me);
                }
                for q in queue {
                    owner.exec.do_send(Exec { cmd: q.cmd, reply: q.reply });
                }
                self.entries.insert(conv, Entry::Owned(Owned { owner, instance, epoch, tenure }));
            }
            Resolution::Held(node) | Resolution::Placed(node) => {
                self.entries.insert(conv.clone(), Entry::Remote(node.clone(), Instant::now()));
                for q in queue {
                    if q.reply.is_remote() {
                        q.reply.answer(Answer::NotOwner { holder: Some(node.clone()), draining: false });
                    } else {
                        self.forward(conv.clone(), node.clone(), q, ctx);
                    }
                }
            }
            Resolution::Nobody => {
                // Only commands that start no owner were waiting when the look began; any that
                // do and came meanwhile need a look of their own.
                let (start, done): (VecDeque<Queued>, VecDeque<Queued>) =
                    queue.drain(..).partition(|q| q.cmd.activates());
                for q in done {
                    q.reply.send(Ok(Done::Done));
                }
                if !start.is_empty() {
                    self.entries.insert(conv.clone(), Entry::Resolving(start));
                    self.resolve(conv, ctx);
                }
            }
            Resolution::Draining(placement) => {
                for q in queue {
                    match (&placement, q.reply.is_remote()) {
                        (_, true) => q.reply.answer(Answer::NotOwner { holder: None, draining: true }),
                        (Some(node), false) => self.forward(conv.clone(), node.clone(), q, ctx),
                        (None, false) => {
                            q.reply.send(Err(ChatError::unavailable("no live node takes the conversation")))
                        }
                    }
                }
            }
            Resolution::Failed(e) => {
                log::debug!("conversation {conv}: no owner found ({e})");
                for q in queue {
                    q.reply.send(Err(ChatError::unavailable(format!("no owner for {conv} right now; retry"))));
                }
            }
        }
    }

    /// Sends a command to the owner on `node` and relays its answer.
    fn forward(&mut self, conv: ConvId, node: String, q: Queued, ctx: &mut Context<Self>) {
        let Some(cluster) = &self.env.cluster else {
            return q.reply.send(Err(ChatError::unavailable("no cluster")));
        };
        inc(&self.env.metrics.routed_remote);
        let (id, rx) = self.env.pending.register(&node);
        cluster.outbox.to_node(&node, &Envelope::Request { id, conv: conv.clone(), cmd: q.cmd.clone() }, &[]);
        let timeout = cluster.request_timeout;
        let pending = self.env.pending.clone();
        ctx.spawn(async move { tokio::time::timeout(timeout, rx).await }.into_actor(self).map(move |res, act, ctx| {
            match res {
                Ok(Ok(Answer::Ran { outcome })) => q.reply.send(outcome),
                Ok(Ok(Answer::NotOwner { draining, .. })) => {
                    if draining {
                        if let Some(c) = &act.env.cluster {
                            c.directory.mark_draining(&node);
                        }
                    }
                    act.bounced(conv, &node, q, ctx);
                }
                Ok(Err(_)) | Err(_) => {
                    // No answer: the node died or did not answer in time. The command may or
                    // may not have run; the client resends (dedup makes that safe).
                    pending.forget(id);
                    inc(&act.env.metrics.route_failures);
                    if matches!(act.entries.get(&conv), Some(Entry::Remote(n, _)) if *n == node) {
                        act.entries.remove(&conv);
                    }
                    q.reply.send(Err(ChatError::unavailable(format!("the owner of {conv} on {node} did not answer"))));
                }
            }
        }));
    }

    /// `node` said it does not own `conv`: look again.
    fn bounced(&mut self, conv: ConvId, node: &str, mut q: Queued, ctx: &mut Context<Self>) {
        q.hops += 1;
        if q.hops > MAX_HOPS {
            inc(&self.env.metrics.route_failures);
            return q.reply.send(Err(ChatError::unavailable(format!("no node owns {conv} right now; retry"))));
        }
        match self.entries.get_mut(&conv) {
            Some(Entry::Remote(n, _)) if n == node => {
                self.entries.insert(conv.clone(), Entry::Resolving(VecDeque::from([q])));
                self.resolve(conv, ctx);
            }
            Some(Entry::Resolving(queue)) | Some(Entry::Stopping { queue, .. }) => insert_ordered(queue, q),
            Some(Entry::Owned(o)) => o.owner.exec.do_send(Exec { cmd: q.cmd, reply: q.reply }),
            Some(Entry::Remote(..)) => self.dispatch(conv, q, ctx),
            None => {
                self.entries.insert(conv.clone(), Entry::Resolving(VecDeque::from([q])));
                self.resolve(conv, ctx);
            }
        }
    }

    /// Tells the owner of `conv` (if it runs here and is `filter`'s) to stop.
    fn stop_owner(&mut self, conv: &ConvId, reason: StopReason) {
        let Some(Entry::Owned(o)) = self.entries.get(conv) else { return };
        // Only an owner that stops of its own accord or hands over deletes its record: one whose
        // lease lapsed cannot reach Redis, and one that was fenced holds nothing any more.
        let release = match (reason, o.tenure) {
            (StopReason::Idle | StopReason::Handover, Tenure::Leased) => o.epoch,
            _ => None,
        };
        o.owner.stop.do_send(Stop(reason));
        let instance = o.instance;
        self.entries.insert(conv.clone(), Entry::Stopping { instance, queue: VecDeque::new(), release });
    }

    fn stopped(&mut self, conv: ConvId, instance: u64, ctx: &mut Context<Self>) {
        match self.entries.get(&conv) {
            Some(Entry::Stopping { instance: i, release, .. }) if *i == instance => {
                inc(&self.env.metrics.passivations);
                match (release, &self.env.cluster) {
                    (Some(epoch), Some(cluster)) => {
                        let (dir, c, epoch) = (cluster.directory.clone(), conv.clone(), *epoch);
                        ctx.spawn(async move { dir.release(&c, epoch).await }.into_actor(self).map(
                            move |res, act, ctx| {
                                if let Err(e) = res {
                                    log::warn!("conversation {conv}: owner record not deleted ({e}); it expires with this node's lease");
                                }
                                act.after_stop(conv, ctx);
                            },
                        ));
                    }
                    _ => self.after_stop(conv, ctx),
                }
            }
            Some(Entry::Owned(o)) if o.instance == instance => {
                // It stopped by itself (it failed to start): what was in its mailbox is lost and
                // answered `unavailable` by the callers' dropped channels.
                self.entries.remove(&conv);
                self.wake_drain();
            }
            _ => {}
        }
    }

    fn after_stop(&mut self, conv: ConvId, ctx: &mut Context<Self>) {
        if let Some(Entry::Stopping { queue, .. }) = self.entries.remove(&conv) {
            if !queue.is_empty() {
                self.entries.insert(conv.clone(), Entry::Resolving(queue));
                self.resolve(conv, ctx);
            }
        }
        self.wake_drain();
    }

    fn owns_any(&self) -> bool {
        self.entries.values().any(|e| matches!(e, Entry::Owned(_) | Entry::Stopping { .. }))
    }

    fn wake_drain(&mut self) {
        if !self.drain_waiters.is_empty() && !self.owns_any() {
            for w in self.drain_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }
}

/// Finds who owns `conv`, or makes this node its owner (see the module documentation).
async fn resolve(env: &Env, conv: &ConvId, activates: bool, claim_free: bool) -> Resolution {
    let Some(cl) = &env.cluster else {
        return if activates {
            Resolution::Here { epoch: None, tenure: Tenure::Alone, takeover: false }
        } else {
            Resolution::Nobody
        };
    };
    if cl.lease.lapsed() {
        // Redis cannot be reached (nor the owners on other nodes, whose leases lapsed too if
        // Redis is down for everyone): own the conversation under its SQL epoch alone. Whoever
        // else still acts for it is fenced by the new epoch.
        if !activates {
            return Resolution::Nobody;
        }
        return match cl.directory.take(conv).await {
            Ok(epoch) => Resolution::Here { epoch: Some(epoch), tenure: Tenure::Fenced, takeover: true },
            Err(e) => Resolution::Failed(e),
        };
    }
    if !cl.lease.valid() {
        return Resolution::Failed("this node has not joined the cluster yet".into());
    }
    let holder = match cl.directory.holder(conv).await {
        Ok(h) => h,
        Err(e) => return Resolution::Failed(e),
    };
    if let Some(h) = &holder {
        if h.node != env.me && cl.directory.alive(&h.node) {
            return Resolution::Held(h.node.clone());
        }
    }
    if !activates {
        return Resolution::Nobody;
    }
    if (env.draining)() {
        return Resolution::Draining(cl.directory.placement(conv));
    }
    if !claim_free {
        match cl.directory.placement(conv) {
            Some(p) if p != env.me => return Resolution::Placed(p),
            Some(_) => {}
            None => return Resolution::Failed("no live node".into()),
        }
    }
    let previous = match cl.directory.claim(conv).await {
        Ok(Claim::Won { previous }) => previous,
        Ok(Claim::Held(h)) => return Resolution::Held(h.node),
        Err(e) => return Resolution::Failed(e),
    };
    let epoch = match cl.directory.take(conv).await {
        Ok(e) => e,
        Err(e) => {
            let _ = cl.directory.release(conv, 0).await;
            return Resolution::Failed(e);
        }
    };
    if let Err(e) = cl.directory.publish(conv, epoch).await {
        // The record still names this node (epoch 0): ownership holds, only the epoch is not
        // shown to other nodes.
        log::warn!("conversation {conv}: epoch {epoch} not published ({e})");
    }
    // A record that named a node (a dead one, or this one before a restart) means the previous
    // owner did not hand over.
    Resolution::Here { epoch: Some(epoch), tenure: Tenure::Leased, takeover: previous.is_some() }
}

impl Handler<Route> for Shard {
    type Result = ();

    fn handle(&mut self, r: Route, ctx: &mut Context<Self>) {
        let n = self.next_n;
        self.next_n += 1;
        self.dispatch(r.conv, Queued { n, cmd: r.cmd, reply: r.reply, hops: 0 }, ctx);
    }
}

impl Handler<OwnerEvent> for Shard {
    type Result = ();

    fn handle(&mut self, ev: OwnerEvent, ctx: &mut Context<Self>) {
        match ev {
            OwnerEvent::Idle { conv, instance } => {
                if matches!(self.entries.get(&conv), Some(Entry::Owned(o)) if o.instance == instance) {
                    self.stop_owner(&conv, StopReason::Idle);
                }
            }
            OwnerEvent::Fenced { conv, instance } => {
                if matches!(self.entries.get(&conv), Some(Entry::Owned(o)) if o.instance == instance) {
                    log::warn!(conv = conv.as_str(); "conversation {conv}: a write was fenced; another node owns it now");
                    self.stop_owner(&conv, StopReason::Fenced);
                }
            }
            OwnerEvent::Stopped { conv, instance } => self.stopped(conv, instance, ctx),
        }
    }
}

/// Nodes that left the live set.
#[derive(Message)]
#[rtype(result = "()")]
struct NodesGone {
    nodes: Vec<String>,
}

impl Handler<NodesGone> for Shard {
    type Result = ();

    fn handle(&mut self, msg: NodesGone, _: &mut Context<Self>) {
        self.entries.retain(|_, e| !matches!(e, Entry::Remote(n, _) if msg.nodes.contains(n)));
    }
}

/// The node's lease was lost or is back.
#[derive(Message)]
#[rtype(result = "()")]
struct LeaseChanged {
    held: bool,
}

impl Handler<LeaseChanged> for Shard {
    type Result = ();

    fn handle(&mut self, msg: LeaseChanged, _: &mut Context<Self>) {
        let (from, reason) =
            if msg.held { (Tenure::Fenced, StopReason::LeaseBack) } else { (Tenure::Leased, StopReason::LeaseLost) };
        let convs: Vec<ConvId> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Owned(o) if o.tenure == from))
            .map(|(c, _)| c.clone())
            .collect();
        for c in convs {
            self.stop_owner(&c, reason);
        }
        // Owners elsewhere may have changed while the lease was away.
        if msg.held {
            self.entries.retain(|_, e| !matches!(e, Entry::Remote(..)));
        }
    }
}

/// Hand every owner of this shard over (drain).
#[derive(Message)]
#[rtype(result = "()")]
struct HandOver;

impl Handler<HandOver> for Shard {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: HandOver, _: &mut Context<Self>) -> Self::Result {
        let convs: Vec<ConvId> =
            self.entries.iter().filter(|(_, e)| matches!(e, Entry::Owned(_))).map(|(c, _)| c.clone()).collect();
        for c in convs {
            self.stop_owner(&c, StopReason::Handover);
        }
        self.entries.retain(|_, e| !matches!(e, Entry::Remote(..)));
        if !self.owns_any() {
            return Box::pin(async {});
        }
        let (tx, rx) = oneshot::channel();
        self.drain_waiters.push(tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// The conversations owned by this shard.
#[derive(Message)]
#[rtype(result = "Vec<(ConvId, Option<i64>)>")]
struct ListOwned;

impl Handler<ListOwned> for Shard {
    type Result = Vec<(ConvId, Option<i64>)>;

    fn handle(&mut self, _: ListOwned, _: &mut Context<Self>) -> Self::Result {
        self.entries
            .iter()
            .filter_map(|(c, e)| match e {
                Entry::Owned(o) => Some((c.clone(), o.epoch)),
                _ => None,
            })
            .collect()
    }
}
