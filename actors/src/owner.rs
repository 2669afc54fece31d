//! What both kinds of conversation owner share: the chat settings, their dependencies
//! ([`OwnerDeps`]), and their life cycle ([`Life`]): when an owner may write, when it is idle,
//! and how it stops (finishing what it accepted first).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use schema::Clock;

use crate::cluster::directory::{Directory, OWNER_RECORD_REFRESH};
use crate::cluster::outbox::Outbox;
use crate::cluster::presence::ClusterPresence;
use crate::db::Db;
use crate::delivery::Sessions;
use crate::entity::{OwnerCtx, OwnerEvent, StopReason, Tenure};
use crate::metrics::Metrics;
use crate::store::MessageStore;
use crate::writer::MessageWriter;

/// Chat rules and timings.
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// How long after sending a message its sender may recall it.
    pub recall_window: Duration,
    /// An owner with no traffic for this long stops (another starts on demand).
    pub conversation_idle: Duration,
    /// Name of this node (in `hello` frames).
    pub node_id: String,
    /// Most members a group may have.
    pub max_group_members: usize,
    /// Writer lanes (batches in flight at once); 0: half the pool. SQLite always gets one.
    pub writer_lanes: usize,
    /// How long after sending a text message its sender may edit it (zero: never).
    pub edit_window: Duration,
    /// Most different emoji one message may carry.
    pub max_reactions_per_message: usize,
}

/// What an owner needs in a cluster.
#[derive(Clone)]
pub struct OwnerCluster {
    /// This node's id.
    pub me: String,
    /// Envelopes for other nodes (group fan-out goes to the nodes of the members).
    pub outbox: Outbox,
    /// Where the members of a group are online.
    pub presence: ClusterPresence,
    /// Owner records (a long-lived owner refreshes its own).
    pub directory: Directory,
}

/// What an owner needs from the node.
#[derive(Clone)]
pub struct OwnerDeps {
    pub db: Db,
    pub store: Arc<dyn MessageStore>,
    pub clock: Clock,
    pub settings: Arc<ChatSettings>,
    pub sessions: Sessions,
    pub writer: MessageWriter,
    pub metrics: Arc<Metrics>,
    /// `None` on a single node.
    pub cluster: Option<OwnerCluster>,
    /// The node's push service (offline recipients' devices).
    pub push: crate::push::PushHook,
}

impl OwnerDeps {
    /// Records how long a message took from acceptance to its hand-off to sessions.
    pub fn observe_delivery(&self, accepted_ms: i64) {
        let ms = (self.clock.now_ms() - accepted_ms).max(0);
        self.metrics.delivery_latency.observe(ms as f64 / 1000.0);
    }
}

/// How often an owner looks whether it is idle.
pub const IDLE_CHECK: Duration = Duration::from_secs(10);

/// An owner's place in its life cycle.
pub struct Life {
    pub ctx: OwnerCtx,
    last_active: Instant,
    asked_idle: bool,
    /// Set once the shard told it to stop.
    pub stopping: Option<StopReason>,
    record_refreshed: Instant,
}

impl Life {
    /// The life of a new owner.
    pub fn new(ctx: OwnerCtx) -> Self {
        Life { ctx, last_active: Instant::now(), asked_idle: false, stopping: None, record_refreshed: Instant::now() }
    }

    /// Traffic arrived.
    pub fn touch(&mut self) {
        self.last_active = Instant::now();
    }

    /// Whether the owner may write now: a leased owner only while the node's lease holds (it
    /// stops acting before another node can take the conversation over); one under SQL fencing
    /// alone, or alone on its node, always (the store refuses its writes once it is fenced).
    pub fn may_write(&self) -> bool {
        match (self.ctx.tenure, &self.ctx.lease) {
            (Tenure::Leased, Some(lease)) => lease.valid(),
            _ => true,
        }
    }

    /// The epoch writes are made under.
    pub fn epoch(&self) -> Option<i64> {
        self.ctx.epoch
    }
}

/// An owner actor with a [`Life`].
pub trait Lifecycle: Actor<Context = Context<Self>> {
    /// Its life.
    fn life(&mut self) -> &mut Life;
    /// True while it has accepted work that is not finished (writes in flight, a group change).
    fn busy(&self) -> bool;
    /// Its dependencies.
    fn deps(&self) -> &OwnerDeps;
    /// The count of commands it runs that finish later ([`later`]).
    fn pending(&mut self) -> &mut usize;
}

/// Runs a command that finishes later: counted as pending (the owner does not stop meanwhile)
/// until `work` has answered `reply`.
pub fn later<A: Lifecycle>(
    act: &mut A,
    ctx: &mut Context<A>,
    reply: crate::entity::Reply,
    work: ResponseActFuture<A, crate::command::Outcome>,
) {
    *act.pending() += 1;
    ctx.spawn(work.map(move |res, act, ctx| {
        *act.pending() -= 1;
        reply.send(res);
        stop_if_done(act, ctx);
    }));
}

/// The shard told the owner to stop: it does once what it accepted is done.
pub fn stop<A: Lifecycle>(act: &mut A, reason: StopReason, ctx: &mut Context<A>) {
    act.life().stopping = Some(reason);
    stop_if_done(act, ctx);
}

/// Stores `user`'s read mark of `conv` (never lowering it): the mark before and after.
pub fn mark_read(
    deps: &OwnerDeps,
    conv: &schema::ConvId,
    user: schema::UserId,
    seq: i64,
) -> impl std::future::Future<Output = Result<(i64, i64), schema::db::DbError>> + 'static {
    let (db, conv) = (deps.db.clone(), conv.clone());
    async move { db.write(move |c| schema::db::conversations::mark_read(c, user.0, conv.as_str(), seq)).await }
}

/// Every [`IDLE_CHECK`]: an owner idle for `idle` asks its shard to stop it; a long-lived leased
/// owner refreshes its record in Redis.
pub fn watch_idle<A: Lifecycle>(ctx: &mut Context<A>, idle: Duration) {
    ctx.run_interval(IDLE_CHECK.min(idle), move |act, ctx| {
        let busy = act.busy();
        let dir = act.deps().cluster.as_ref().map(|c| c.directory.clone());
        let life = act.life();
        if life.stopping.is_some() {
            return;
        }
        if !life.asked_idle && !busy && life.last_active.elapsed() >= idle {
            life.asked_idle = true;
            life.ctx.registry.do_send(OwnerEvent::Idle { conv: life.ctx.conv.clone(), instance: life.ctx.instance });
        }
        if let (Some(dir), Tenure::Leased, Some(epoch)) = (dir, life.ctx.tenure, life.ctx.epoch) {
            if life.record_refreshed.elapsed() >= OWNER_RECORD_REFRESH {
                life.record_refreshed = Instant::now();
                let conv = life.ctx.conv.clone();
                ctx.spawn(async move { dir.refresh(&conv, epoch).await }.into_actor(act).map(|res, _, _| {
                    if let Err(e) = res {
                        log::warn!("owner record not refreshed: {e}");
                    }
                }));
            }
        }
    });
}

/// Stops the owner if it was told to and has nothing left to finish.
pub fn stop_if_done<A: Lifecycle>(act: &mut A, ctx: &mut Context<A>) {
    if act.life().stopping.is_some() && !act.busy() {
        ctx.stop();
    }
}

/// Tells the shard the owner stopped (from `Actor::stopped`).
pub fn report_stopped(life: &Life) {
    life.ctx.registry.do_send(OwnerEvent::Stopped { conv: life.ctx.conv.clone(), instance: life.ctx.instance });
}

/// Tells the shard a write was fenced.
pub fn report_fenced(life: &Life) {
    life.ctx.registry.do_send(OwnerEvent::Fenced { conv: life.ctx.conv.clone(), instance: life.ctx.instance });
}

/// An edit that may be written: the message it changes and when.
#[derive(Debug)]
pub struct EditPlan {
    /// The message as stored now.
    pub message: schema::message::MessageRecord,
    /// The new edit time (later than any stored edit of the message).
    pub at: i64,
    /// The edit was applied before (a resend): answer with its ack, write nothing.
    pub replay: bool,
}

/// Checks an edit of message `seq` by `user` (edit id `edit_id`) at `now`: the message must be
/// the user's own text message, not recalled, within `window` of its sending (zero: no edits).
/// The edit's time is `stamp` (from the owner's [`EventClock`], so that of two edits the one
/// that reached the owner later is the later one) or later than the stored edit.
pub async fn plan_edit(
    deps: &OwnerDeps,
    conv: schema::ConvId,
    user: schema::UserId,
    seq: i64,
    edit_id: &str,
    now: i64,
    stamp: i64,
) -> Result<EditPlan, crate::command::ChatError> {
    use crate::command::ChatError;
    let m = deps.store.get(conv, seq).await.map_err(ChatError::unavailable)?.ok_or(ChatError::MessageNotFound)?;
    if m.sender != user {
        return Err(ChatError::NotYourMessage);
    }
    if m.kind != schema::message::MessageKind::Text || m.forwarded_from.is_some() {
        return Err(ChatError::NotEditable);
    }
    if m.edit_id.as_deref() == Some(edit_id) {
        let at = m.edited_at.unwrap_or(now);
        return Ok(EditPlan { message: m, at, replay: true });
    }
    if m.recalled_at.is_some() {
        return Err(ChatError::AlreadyRecalled);
    }
    let window = deps.settings.edit_window.as_millis() as i64;
    if window == 0 || now - m.ts > window {
        return Err(ChatError::EditWindowPassed);
    }
    let at = stamp.max(m.edited_at.map_or(0, |e| e + 1));
    Ok(EditPlan { message: m, at, replay: false })
}

/// One edit for [`edit`].
pub struct EditRequest {
    pub conv: schema::ConvId,
    pub user: schema::UserId,
    pub seq: i64,
    /// The client id of the edit.
    pub edit_id: String,
    pub body: String,
    pub now: i64,
    /// From the owner's [`EventClock::next`].
    pub stamp: i64,
}

/// Checks and writes an edit (see [`plan_edit`]): `(at, fresh)`, fresh when the body changed
/// now and the readers must be told; not fresh for a resend of the latest edit, or for an edit
/// that a newer one overtook (last writer wins, as every reader sees). Both are acked. Run it in
/// the owner's turn ([`EventClock::turn`]).
pub async fn edit(deps: &OwnerDeps, req: EditRequest) -> Result<(i64, bool), crate::command::ChatError> {
    use crate::command::ChatError;
    let EditRequest { conv, user, seq, edit_id, body, now, stamp } = req;
    let plan = plan_edit(deps, conv.clone(), user, seq, &edit_id, now, stamp).await?;
    if plan.replay {
        return Ok((plan.at, false));
    }
    if deps.store.edit(conv.clone(), seq, body, plan.at, edit_id).await.map_err(ChatError::unavailable)? {
        return Ok((plan.at, true));
    }
    // Not written: recalled meanwhile, or a newer edit is stored.
    match deps.store.get(conv, seq).await.map_err(ChatError::unavailable)? {
        Some(m) if m.recalled_at.is_none() => Ok((plan.at, false)),
        Some(_) => Err(ChatError::AlreadyRecalled),
        None => Err(ChatError::MessageNotFound),
    }
}

/// Adds or removes a reaction after the checks every conversation makes: the message exists, is
/// not recalled, and (adding) carries fewer different emoji than the cap or this one already.
/// True when something changed.
pub async fn apply_reaction(
    deps: &OwnerDeps,
    conv: schema::ConvId,
    seq: i64,
    user: schema::UserId,
    emoji: String,
    on: bool,
    at: i64,
) -> Result<bool, crate::command::ChatError> {
    use crate::command::ChatError;
    let m =
        deps.store.get(conv.clone(), seq).await.map_err(ChatError::unavailable)?.ok_or(ChatError::MessageNotFound)?;
    if m.recalled_at.is_some() {
        return Err(ChatError::AlreadyRecalled);
    }
    if on {
        let all = deps.store.reactions(conv.clone(), vec![seq]).await.map_err(ChatError::unavailable)?;
        let kinds: std::collections::HashSet<&str> = all.iter().map(|r| r.emoji.as_str()).collect();
        if !kinds.contains(emoji.as_str()) && kinds.len() >= deps.settings.max_reactions_per_message {
            return Err(ChatError::TooManyReactions);
        }
    }
    deps.store.react(conv, seq, user, emoji, on, at).await.map_err(ChatError::unavailable)
}

/// Times of an owner's events (edits, reactions) that grow strictly within the conversation, so
/// that clients applying them by time end in the same state whatever order they arrive in; and
/// the turns those changes of stored messages (edits, reactions, recalls) take.
#[derive(Debug, Default)]
pub struct EventClock {
    last: i64,
    turns: Turns,
}

impl EventClock {
    /// A time at or after `now`, later than every one given before.
    pub fn next(&mut self, now: i64) -> i64 {
        self.last = now.max(self.last + 1);
        self.last
    }

    /// The next turn (see [`Turns`]).
    pub fn turn(&mut self) -> Turn {
        self.turns.take()
    }
}

/// Changes of stored messages run one after the other, in the order the owner took them in, so
/// that a reaction sent before a recall is applied before it, and the check and the write of one
/// edit never interleave with another's (whatever the store's own atomicity). Taking a turn is
/// synchronous (in the owner's handler); the work waits for every turn before it, and its own
/// turn ends when it is dropped (done, failed or abandoned, even before its turn came).
#[derive(Debug, Default)]
pub struct Turns {
    tail: Option<tokio::sync::oneshot::Receiver<Handoff>>,
}

/// What the end of a turn passes to the next: nothing (go), or, for a turn abandoned before it
/// came, what it was still waiting for.
#[derive(Debug)]
pub struct Handoff(Option<tokio::sync::oneshot::Receiver<Handoff>>);

impl Turns {
    /// A turn after every turn taken before.
    pub fn take(&mut self) -> Turn {
        let (done, next) = tokio::sync::oneshot::channel();
        Turn { before: self.tail.replace(next), done: Some(done) }
    }
}

/// One turn of [`Turns`]: hold it while the work runs.
#[derive(Debug)]
pub struct Turn {
    before: Option<tokio::sync::oneshot::Receiver<Handoff>>,
    done: Option<tokio::sync::oneshot::Sender<Handoff>>,
}

impl Turn {
    /// Waits until every earlier turn has ended.
    pub async fn ready(mut self) -> Self {
        while let Some(before) = self.before.as_mut() {
            // Waiting by reference: if this future is dropped here, `drop` hands `before` on.
            self.before = match before.await {
                Ok(Handoff(rest)) => rest,
                Err(_) => None,
            };
        }
        self
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let (Some(before), Some(done)) = (self.before.take(), self.done.take()) {
            let _ = done.send(Handoff(Some(before)));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    #[test]
    fn event_times_grow_strictly() {
        let mut c = EventClock::default();
        assert_eq!([c.next(10), c.next(10), c.next(5), c.next(20)], [10, 11, 12, 20]);
    }

    /// Work runs in the order the turns were taken, whatever order it is polled in; a turn
    /// dropped before it came, or abandoned while waiting, lets the later ones go only after the
    /// earlier ones.
    #[actix_rt::test]
    async fn turns_run_in_the_order_taken() {
        let mut turns = Turns::default();
        let order = Rc::new(RefCell::new(Vec::new()));
        let (release, held) = tokio::sync::oneshot::channel::<()>();
        let first = turns.take();
        let o = order.clone();
        let job0 = async move {
            let _turn = first.ready().await;
            let _ = held.await;
            o.borrow_mut().push(0);
        };
        let mut jobs = Vec::new();
        for i in 1..4 {
            let (turn, order) = (turns.take(), order.clone());
            jobs.push(async move {
                let _turn = turn.ready().await;
                actix_rt::task::yield_now().await;
                order.borrow_mut().push(i);
            });
        }
        let dropped = turns.take();
        let waiting = turns.take();
        let (last, o) = (turns.take(), order.clone());
        let tail = async move {
            let _turn = last.ready().await;
            o.borrow_mut().push(99);
        };
        drop(dropped);
        let set = tokio::task::LocalSet::new();
        set.spawn_local(tail);
        for j in jobs.into_iter().rev() {
            set.spawn_local(j);
        }
        set.spawn_local(job0);
        set.run_until(async {
            // Job 0 holds its turn: the one waiting behind it gives up.
            let gave_up = actix_rt::time::timeout(std::time::Duration::from_millis(50), waiting.ready()).await;
            assert!(gave_up.is_err(), "its turn cannot have come");
            assert!(order.borrow().is_empty());
            let _ = release.send(());
        })
        .await;
        set.await;
        assert_eq!(*order.borrow(), [0, 1, 2, 3, 99]);
    }
}
