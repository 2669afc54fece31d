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
pub async fn plan_edit(
    deps: &OwnerDeps,
    conv: schema::ConvId,
    user: schema::UserId,
    seq: i64,
    edit_id: &str,
    now: i64,
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
    let at = now.max(m.edited_at.map_or(0, |e| e + 1));
    Ok(EditPlan { message: m, at, replay: false })
}

/// Checks and writes an edit (see [`plan_edit`]). `Some(at)` when the body changed now and the
/// readers must be told; `None` for a resend of the latest edit, or for an edit that a newer one
/// overtook on the way to the store (last writer wins, as every reader sees). Both are acked.
pub async fn edit(
    deps: &OwnerDeps,
    conv: schema::ConvId,
    user: schema::UserId,
    seq: i64,
    edit_id: String,
    body: String,
    now: i64,
) -> Result<(i64, bool), crate::command::ChatError> {
    use crate::command::ChatError;
    let plan = plan_edit(deps, conv.clone(), user, seq, &edit_id, now).await?;
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
/// that clients applying them by time end in the same state whatever order they arrive in.
#[derive(Debug, Default)]
pub struct EventClock {
    last: i64,
}

impl EventClock {
    /// A time at or after `now`, later than every one given before.
    pub fn next(&mut self, now: i64) -> i64 {
        self.last = now.max(self.last + 1);
        self.last
    }
}
