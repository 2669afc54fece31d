//! `ConversationRegistry` and `ConversationActor`: one actor per active 1:1 conversation on this
//! node. The actor checks that the sender may post, drops resent client ids by answering with the
//! original ack, assigns the next seq, hands the message to the [`MessageWriter`] and, once it is
//! durable, acks the sender and delivers it to every device of both users. It also keeps the
//! read/delivered marks and performs recalls.
//!
//! The registry (one per node, for 1:1 conversations and for groups) starts actors on demand, forgets them when they stop (idle) and starts a fresh
//! one (re-seeded from the store) when a stopped or failed actor is asked for again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use schema::db::{conversations, friends, DbError};
use schema::message::{MessageKind, MessageRecord};
use schema::protocol::{ServerFrame, WireMessage};
use schema::{Clock, ConvId, ConvKind, DeviceId, UserId};

use crate::cluster::bus::{BusOut, ClusterBus};
use crate::cluster::seq::SeqSource;
use crate::db::Db;
use crate::group::GroupActor;
use crate::hub::ChatSettings;
use crate::registry::{DeliverToUser, SessionRegistry};
use crate::sequencer::{load_tail, post, replay, stop_when_idle, Sequenced, Sequencer};
use crate::store::MessageStore;
use crate::writer::MessageWriter;

/// How often coalesced delivered marks are written.
pub const MARK_FLUSH: Duration = Duration::from_millis(500);

/// A refusal or failure of a chat operation, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    /// Only friends may chat 1:1.
    #[error("only friends can chat")]
    NotFriends,
    /// Not a conversation of the caller, or not a valid id.
    #[error("no such conversation")]
    UnknownConversation,
    /// No message with that seq.
    #[error("no such message")]
    MessageNotFound,
    /// Recall of someone else's message.
    #[error("only the sender can recall a message")]
    NotYourMessage,
    /// Recall after the window.
    #[error("the recall window has passed")]
    RecallWindowPassed,
    /// The message was recalled already.
    #[error("the message was recalled already")]
    AlreadyRecalled,
    /// The group was dissolved: nothing new can be posted.
    #[error("the group was dissolved")]
    GroupDissolved,
    /// The sender is muted (personally or by mute-all).
    #[error("you are muted in this group")]
    Muted,
    /// `@all` is for the owner and admins.
    #[error("only the owner and admins can mention everyone")]
    MentionAllForbidden,
    /// A mentioned user is not a member.
    #[error("mentions must name members of the group")]
    InvalidMentions,
    /// The caller's role does not allow this.
    #[error("your role does not allow this")]
    NotAllowed,
    /// The owner must transfer ownership or dissolve the group first.
    #[error("the owner cannot leave; transfer ownership or dissolve the group")]
    OwnerCannotLeave,
    /// The group is at its size limit.
    #[error("the group is full")]
    GroupFull,
    /// The target user is not a member.
    #[error("that user is not a member")]
    NotMember,
    /// The invite link was used up by others meanwhile.
    #[error("the link has been used up")]
    InviteUsedUp,
    /// Invitees must be the inviter's friends.
    #[error("you can only invite your friends")]
    InviteesNotFriends,
    /// Storage failed; the client should retry (with the same client id).
    #[error("storage unavailable, retry")]
    Unavailable(String),
}

impl ChatError {
    /// The stable code clients see.
    pub fn code(&self) -> &'static str {
        match self {
            ChatError::NotFriends => "not_friends",
            ChatError::UnknownConversation => "unknown_conversation",
            ChatError::MessageNotFound => "message_not_found",
            ChatError::NotYourMessage => "not_your_message",
            ChatError::RecallWindowPassed => "recall_window_passed",
            ChatError::AlreadyRecalled => "already_recalled",
            ChatError::GroupDissolved => "group_dissolved",
            ChatError::Muted => "muted",
            ChatError::MentionAllForbidden => "mention_all_forbidden",
            ChatError::InvalidMentions => "invalid_mentions",
            ChatError::NotAllowed => "not_allowed",
            ChatError::OwnerCannotLeave => "owner_cannot_leave",
            ChatError::GroupFull => "group_full",
            ChatError::NotMember => "member_not_found",
            ChatError::InviteesNotFriends => "not_friends",
            ChatError::InviteUsedUp => "invite_used_up",
            ChatError::Unavailable(_) => "unavailable",
        }
    }
}

impl From<DbError> for ChatError {
    fn from(e: DbError) -> Self {
        ChatError::Unavailable(e.to_string())
    }
}

/// The ack of a durable message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub id: String,
    pub conv: ConvId,
    pub seq: i64,
    pub ts: i64,
}

/// Post a message.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Ack, ChatError>")]
pub struct PostMessage {
    pub sender: UserId,
    pub device: DeviceId,
    pub client_id: String,
    pub body: String,
    /// Mentioned members (groups only).
    pub mentions: Vec<UserId>,
    /// `@all` (groups only; owner and admins).
    pub mention_all: bool,
}

/// A device received everything up to `seq`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct MarkDelivered {
    pub user: UserId,
    pub seq: i64,
}

/// A user read everything up to `seq`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ChatError>")]
pub struct MarkRead {
    pub user: UserId,
    pub device: DeviceId,
    pub seq: i64,
}

/// Recall a message.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ChatError>")]
pub struct RecallMessage {
    pub user: UserId,
    pub seq: i64,
}

/// `user` is typing: forwarded to the peer's devices if the two are friends; never stored.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ChatError>")]
pub struct Typing {
    pub user: UserId,
}

/// Re-read friendship and do-not-disturb settings (they changed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Refresh;

/// What a conversation actor needs from the node.
#[derive(Clone)]
pub struct ConversationDeps {
    pub(crate) db: Db,
    pub(crate) store: Arc<dyn MessageStore>,
    pub(crate) clock: Clock,
    pub(crate) settings: Arc<ChatSettings>,
    pub(crate) sessions: Addr<SessionRegistry>,
    pub(crate) writer: MessageWriter,
    /// Seqs from Redis in a cluster; `None` on a single node.
    pub(crate) seqs: Option<SeqSource>,
    /// The cluster bus, once started (never on a single node).
    pub(crate) bus: Arc<std::sync::OnceLock<Addr<ClusterBus>>>,
    /// The node's metrics.
    pub(crate) metrics: Arc<crate::metrics::Metrics>,
}

impl ConversationDeps {
    /// Publishes to other nodes, if this node is in a cluster.
    pub(crate) fn publish(&self, msg: BusOut) {
        if let Some(bus) = self.bus.get() {
            bus.do_send(msg);
        }
    }

    /// Records how long a message took from acceptance to its hand-off to local sessions.
    pub(crate) fn observe_delivery(&self, accepted_ms: i64) {
        let ms = (self.clock.now_ms() - accepted_ms).max(0);
        self.metrics.delivery_latency.observe(ms as f64 / 1000.0);
    }
}

/// Friendship and notification settings of the pair, loaded at start and on [`Refresh`].
#[derive(Debug, Clone, Copy, Default)]
struct Policy {
    friends: bool,
    /// Whether each side silenced the other (friend dnd or conversation dnd): (a, b).
    silent: (bool, bool),
}

/// One active 1:1 conversation.
pub struct ConversationActor {
    conv: ConvId,
    a: UserId,
    b: UserId,
    deps: ConversationDeps,
    registry: Addr<ConversationRegistry>,
    instance: u64,
    seq: Sequencer,
    policy: Policy,
    delivered: HashMap<UserId, (i64, bool)>,
    last_active: Instant,
}

/// Loads the pair's policy from the database.
async fn load_policy(db: &Db, a: UserId, b: UserId, conv: ConvId) -> Result<Policy, DbError> {
    db.read(move |c| {
        let fa = friends::find_friend(c, a.0, b.0)?;
        let fb = friends::find_friend(c, b.0, a.0)?;
        let sa = conversations::state(c, a.0, conv.as_str())?;
        let sb = conversations::state(c, b.0, conv.as_str())?;
        Ok(Policy {
            friends: fa.is_some() && fb.is_some(),
            silent: (
                fa.as_ref().is_some_and(|f| f.0.dnd) || sa.is_some_and(|s| s.dnd),
                fb.as_ref().is_some_and(|f| f.0.dnd) || sb.is_some_and(|s| s.dnd),
            ),
        })
    })
    .await
}

impl ConversationActor {
    fn peer(&self, u: UserId) -> UserId {
        if u == self.a {
            self.b
        } else {
            self.a
        }
    }

    fn silent_for(&self, u: UserId) -> bool {
        if u == self.a {
            self.policy.silent.0
        } else {
            self.policy.silent.1
        }
    }

    fn to_user(&self, user: UserId, frame: &ServerFrame, except: Option<DeviceId>) {
        let msg = DeliverToUser { user, frame: frame.encode().into(), except };
        if self.deps.sessions.try_send(msg).is_err() {
            log::warn!("session registry overloaded; a frame for user {user} was dropped (clients catch up with sync)");
        }
    }

    fn flush_delivered(&mut self) {
        let dirty: Vec<(UserId, i64)> = self
            .delivered
            .iter_mut()
            .filter(|(_, (_, d))| *d)
            .map(|(u, (s, d))| {
                *d = false;
                (*u, *s)
            })
            .collect();
        if dirty.is_empty() {
            return;
        }
        let db = self.deps.db.clone();
        let conv = self.conv.clone();
        actix::spawn(async move {
            let res = db
                .write(move |c| {
                    for (u, s) in dirty {
                        conversations::mark_delivered(c, u.0, conv.as_str(), s)?;
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = res {
                log::warn!("delivered marks not stored: {e}");
            }
        });
    }
}

impl Sequenced for ConversationActor {
    fn sequencer(&mut self) -> &mut Sequencer {
        &mut self.seq
    }

    fn writer(&self) -> &MessageWriter {
        &self.deps.writer
    }

    fn seq_source(&self) -> Option<SeqSource> {
        self.deps.seqs.clone()
    }

    fn store(&self) -> Arc<dyn MessageStore> {
        self.deps.store.clone()
    }

    fn last_active(&self) -> Instant {
        self.last_active
    }

    fn deliver(&mut self, rec: &MessageRecord, origin: Option<DeviceId>) {
        self.deps.observe_delivery(rec.ts);
        let wire = WireMessage::from(rec);
        let peer = self.peer(rec.sender);
        let to_peer = ServerFrame::Msg { msg: wire.clone(), silent: self.silent_for(peer), mentioned: false };
        self.to_user(peer, &to_peer, None);
        let to_self = ServerFrame::Msg { msg: wire, silent: true, mentioned: false };
        self.to_user(rec.sender, &to_self, origin);
    }
}

impl Actor for ConversationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let deps = self.deps.clone();
        let (conv, a, b) = (self.conv.clone(), self.a, self.b);
        let load = async move {
            let now = deps.clock.now_ms();
            let policy = load_policy(&deps.db, a, b, conv.clone()).await.map_err(|e| e.to_string())?;
            if policy.friends {
                // Strangers get no conversation rows: a refused frame leaves no trace in lists.
                let c2 = conv.clone();
                deps.db
                    .write_retrying(move |c| {
                        conversations::ensure(c, c2.as_str(), &[(a.0, Some(b.0)), (b.0, Some(a.0))], now)
                    })
                    .await
                    .map_err(|e| e.to_string())?;
            }
            let (max, recent) = load_tail(deps.store.as_ref(), conv).await?;
            Ok::<_, String>((policy, max, recent))
        };
        ctx.wait(load.into_actor(self).map(|res, act, ctx| match res {
            Ok((policy, max, recent)) => {
                act.policy = policy;
                act.seq.seed(max, recent);
            }
            Err(e) => {
                log::error!("conversation {} failed to start: {e}", act.conv);
                ctx.stop();
            }
        }));
        stop_when_idle(ctx, self.deps.settings.conversation_idle);
        ctx.run_interval(MARK_FLUSH, |act, _| act.flush_delivered());
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.flush_delivered();
        self.registry.do_send(ConversationStopped { conv: self.conv.clone(), instance: self.instance });
    }
}

impl Handler<PostMessage> for ConversationActor {
    type Result = ResponseActFuture<Self, Result<Ack, ChatError>>;

    fn handle(&mut self, msg: PostMessage, _: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        if let Some(answer) = replay(self, msg.sender, &msg.client_id) {
            return answer;
        }
        if !self.policy.friends {
            return Box::pin(fut::ready(Err(ChatError::NotFriends)));
        }
        let rec = MessageRecord {
            conv: self.conv.clone(),
            seq: 0,
            sender: msg.sender,
            client_id: msg.client_id,
            kind: MessageKind::Text,
            body: Some(msg.body),
            mentions: Vec::new(),
            mention_all: false,
            ts: self.deps.clock.now_ms(),
            recalled_at: None,
        };
        post(self, rec, Some(msg.device))
    }
}

impl Handler<MarkDelivered> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: MarkDelivered, _: &mut Context<Self>) {
        self.last_active = Instant::now();
        let seq = msg.seq.min(self.seq.max_seq());
        if seq < 1 {
            return;
        }
        let entry = self.delivered.entry(msg.user).or_insert((0, false));
        if seq <= entry.0 {
            return;
        }
        *entry = (seq, true);
        let frame = ServerFrame::Delivered { conv: self.conv.clone(), seq, by: msg.user };
        self.to_user(self.peer(msg.user), &frame, None);
    }
}

impl Handler<Typing> for ConversationActor {
    type Result = Result<(), ChatError>;

    fn handle(&mut self, msg: Typing, _: &mut Context<Self>) -> Result<(), ChatError> {
        if !self.policy.friends {
            return Err(ChatError::NotFriends);
        }
        let frame = ServerFrame::Typing { conv: self.conv.clone(), from: msg.user };
        self.to_user(self.peer(msg.user), &frame, None);
        Ok(())
    }
}

impl Handler<MarkRead> for ConversationActor {
    type Result = ResponseActFuture<Self, Result<(), ChatError>>;

    fn handle(&mut self, msg: MarkRead, _: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        let max = self.seq.max_seq();
        let seq = msg.seq.min(max);
        let db = self.deps.db.clone();
        let conv = self.conv.clone();
        let user = msg.user;
        if seq < 1 {
            // Nothing to read (an empty conversation, or one that is not the caller's).
            return Box::pin(fut::ready(Ok(())));
        }
        let write = async move { db.write(move |c| conversations::mark_read(c, user.0, conv.as_str(), seq)).await };
        Box::pin(write.into_actor(self).map(move |res, act, _| {
            let (before, read) = res?;
            if read <= before {
                return Ok(());
            }
            let peer = act.peer(user);
            act.to_user(peer, &ServerFrame::Read { conv: act.conv.clone(), seq: read, by: user }, None);
            let mark = ServerFrame::ReadMark { conv: act.conv.clone(), seq: read, unread: (max - read).max(0) };
            act.to_user(user, &mark, Some(msg.device));
            Ok(())
        }))
    }
}

/// Recalls message `seq` of `conv` for `user` if it is theirs and within `window_ms`.
pub(crate) async fn recall(
    deps: &ConversationDeps,
    conv: ConvId,
    user: UserId,
    seq: i64,
    window_ms: i64,
) -> Result<(), ChatError> {
    let unavailable = |e: crate::store::StoreError| ChatError::Unavailable(e.to_string());
    let m = deps.store.get(conv.clone(), seq).await.map_err(unavailable)?.ok_or(ChatError::MessageNotFound)?;
    if m.sender != user || m.kind != MessageKind::Text {
        return Err(ChatError::NotYourMessage);
    }
    if m.recalled_at.is_some() {
        return Err(ChatError::AlreadyRecalled);
    }
    let now = deps.clock.now_ms();
    if now - m.ts > window_ms {
        return Err(ChatError::RecallWindowPassed);
    }
    if !deps.store.recall(conv.clone(), seq, now).await.map_err(unavailable)? {
        return Err(ChatError::AlreadyRecalled);
    }
    deps.db.write(move |c| conversations::recall_preview(c, conv.as_str(), seq)).await?;
    Ok(())
}

impl Handler<RecallMessage> for ConversationActor {
    type Result = ResponseActFuture<Self, Result<(), ChatError>>;

    fn handle(&mut self, msg: RecallMessage, _: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        let deps = self.deps.clone();
        let conv = self.conv.clone();
        let window = deps.settings.recall_window.as_millis() as i64;
        let work = async move { recall(&deps, conv, msg.user, msg.seq, window).await };
        Box::pin(work.into_actor(self).map(move |res, act, _| {
            res?;
            let frame = ServerFrame::Recalled { conv: act.conv.clone(), seq: msg.seq };
            act.to_user(act.a, &frame, None);
            act.to_user(act.b, &frame, None);
            Ok(())
        }))
    }
}

impl Handler<Refresh> for ConversationActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Refresh, _: &mut Context<Self>) -> Self::Result {
        let db = self.deps.db.clone();
        let now = self.deps.clock.now_ms();
        let (a, b, conv) = (self.a, self.b, self.conv.clone());
        let work = async move {
            let policy = load_policy(&db, a, b, conv.clone()).await?;
            if policy.friends {
                db.write_retrying(move |c| {
                    conversations::ensure(c, conv.as_str(), &[(a.0, Some(b.0)), (b.0, Some(a.0))], now)
                })
                .await?;
            }
            Ok::<_, DbError>(policy)
        };
        Box::pin(work.into_actor(self).map(|res, act, _| match res {
            Ok(p) => act.policy = p,
            Err(e) => log::warn!("conversation {}: policy not refreshed: {e}", act.conv),
        }))
    }
}

/// A conversation actor stopped (idle or failed).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct ConversationStopped {
    pub conv: ConvId,
    pub instance: u64,
}

/// The actor of a conversation, started if needed. Only for 1:1 conversation ids.
#[derive(Debug, Message)]
#[rtype(result = "Result<Addr<ConversationActor>, ChatError>")]
pub struct GetConversation {
    pub conv: ConvId,
}

/// Forward [`Refresh`] to the actor of `conv` if one runs; resolves once it has re-read. With
/// `cluster`, actors of `conv` on other nodes are told as well.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RefreshConversation {
    pub conv: ConvId,
    pub cluster: bool,
}

/// Another node assigned `seq` in `conv`: a running actor here learns it (read marks and
/// delivery receipts are bounded by the highest seq an actor knows).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Observe {
    pub conv: ConvId,
    pub seq: i64,
}

/// A durable group message published by another node: the group's actor here delivers it to
/// its members on this node.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteGroupMessage {
    pub record: MessageRecord,
    pub origin: Option<DeviceId>,
}

/// How many conversation actors run.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct CountConversations;

/// The registry of this node's conversation actors.
pub struct ConversationRegistry {
    deps: ConversationDeps,
    /// The threads conversation and group actors run on (one per core), chosen by id.
    arbiters: Vec<ArbiterHandle>,
    actors: HashMap<ConvId, (u64, Addr<ConversationActor>)>,
    groups: HashMap<ConvId, (u64, Addr<GroupActor>)>,
    next_instance: u64,
}

impl ConversationRegistry {
    /// Bundles what conversation actors need.
    pub fn deps(
        db: Db,
        store: Arc<dyn MessageStore>,
        clock: Clock,
        settings: Arc<ChatSettings>,
        sessions: Addr<SessionRegistry>,
        writer: MessageWriter,
    ) -> ConversationDeps {
        ConversationDeps {
            db,
            store,
            clock,
            settings,
            sessions,
            writer,
            seqs: None,
            bus: Default::default(),
            metrics: Arc::default(),
        }
    }

    /// An empty registry.
    pub fn new(deps: ConversationDeps) -> Self {
        let n = std::thread::available_parallelism().map(usize::from).unwrap_or(2).max(1);
        let arbiters = (0..n).map(|_| Arbiter::new().handle()).collect();
        ConversationRegistry { deps, arbiters, actors: HashMap::new(), groups: HashMap::new(), next_instance: 1 }
    }
}

impl Actor for ConversationRegistry {
    type Context = Context<Self>;
}

impl Handler<GetConversation> for ConversationRegistry {
    type Result = Result<Addr<ConversationActor>, ChatError>;

    fn handle(&mut self, msg: GetConversation, ctx: &mut Context<Self>) -> Self::Result {
        self.direct(msg.conv, ctx)
    }
}

/// Deliver `msg` to the actor of `conv` (1:1 or group), starting it if needed.
///
/// Messages routed through the registry reach each actor in the order the registry received
/// them, so one session's frames keep their order (seq follows send order per sender).
pub struct Route<M> {
    pub conv: ConvId,
    pub msg: M,
}

impl<M> Message for Route<M>
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    type Result = Result<M::Result, ChatError>;
}

impl<M> Handler<Route<M>> for ConversationRegistry
where
    M: Message + Send + 'static,
    M::Result: Send,
    ConversationActor: Handler<M>,
    GroupActor: Handler<M>,
{
    type Result = ResponseFuture<Result<M::Result, ChatError>>;

    fn handle(&mut self, r: Route<M>, ctx: &mut Context<Self>) -> Self::Result {
        let unavailable = |e: MailboxError| ChatError::Unavailable(e.to_string());
        match r.conv.kind() {
            Some(ConvKind::Group(_)) => match self.group(r.conv, ctx) {
                Ok(addr) => {
                    let req = addr.send(r.msg);
                    Box::pin(async move { req.await.map_err(unavailable) })
                }
                Err(e) => Box::pin(async move { Err(e) }),
            },
            _ => match self.direct(r.conv, ctx) {
                Ok(addr) => {
                    let req = addr.send(r.msg);
                    Box::pin(async move { req.await.map_err(unavailable) })
                }
                Err(e) => Box::pin(async move { Err(e) }),
            },
        }
    }
}

impl ConversationRegistry {
    /// The running actor of a 1:1 conversation, or a fresh one seeded from the store.
    fn direct(&mut self, conv: ConvId, ctx: &mut Context<Self>) -> Result<Addr<ConversationActor>, ChatError> {
        let msg = GetConversation { conv };
        let Some(ConvKind::Direct(a, b)) = msg.conv.kind() else {
            return Err(ChatError::UnknownConversation);
        };
        if let Some((_, addr)) = self.actors.get(&msg.conv) {
            if addr.connected() {
                return Ok(addr.clone());
            }
        }
        // Not running, stopped or failed: start a fresh actor, seeded from the store.
        let instance = self.next_instance;
        self.next_instance += 1;
        let actor = ConversationActor {
            conv: msg.conv.clone(),
            a,
            b,
            deps: self.deps.clone(),
            registry: ctx.address(),
            instance,
            seq: Sequencer::new(msg.conv.clone()),
            policy: Policy::default(),
            delivered: HashMap::new(),
            last_active: Instant::now(),
        };
        let arbiter = self.arbiter_for(&msg.conv);
        let addr = ConversationActor::start_in_arbiter(&arbiter, move |_| actor);
        self.actors.insert(msg.conv, (instance, addr.clone()));
        Ok(addr)
    }

    /// The arbiter (thread) a conversation's actor runs on: a stable hash of its id.
    fn arbiter_for(&self, conv: &ConvId) -> ArbiterHandle {
        self.arbiters[conv.slot(self.arbiters.len())].clone()
    }

    /// The running actor of a group, or a fresh one.
    fn group(&mut self, conv: ConvId, ctx: &mut Context<Self>) -> Result<Addr<GroupActor>, ChatError> {
        let Some(ConvKind::Group(g)) = conv.kind() else {
            return Err(ChatError::UnknownConversation);
        };
        if let Some((_, addr)) = self.groups.get(&conv) {
            if addr.connected() {
                return Ok(addr.clone());
            }
        }
        let instance = self.next_instance;
        self.next_instance += 1;
        let actor = GroupActor::new(g, self.deps.clone(), ctx.address(), instance);
        let arbiter = self.arbiter_for(&conv);
        let addr = GroupActor::start_in_arbiter(&arbiter, move |_| actor);
        self.groups.insert(conv, (instance, addr.clone()));
        Ok(addr)
    }
}

impl Handler<ConversationStopped> for ConversationRegistry {
    type Result = ();

    fn handle(&mut self, msg: ConversationStopped, _: &mut Context<Self>) {
        if self.actors.get(&msg.conv).is_some_and(|(i, _)| *i == msg.instance) {
            self.actors.remove(&msg.conv);
        }
        if self.groups.get(&msg.conv).is_some_and(|(i, _)| *i == msg.instance) {
            self.groups.remove(&msg.conv);
        }
    }
}

/// The actor of a group, started if needed (the group registry: same pattern as 1:1).
#[derive(Debug, Message)]
#[rtype(result = "Result<Addr<GroupActor>, ChatError>")]
pub struct GetGroup {
    pub conv: ConvId,
}

impl Handler<GetGroup> for ConversationRegistry {
    type Result = Result<Addr<GroupActor>, ChatError>;

    fn handle(&mut self, msg: GetGroup, ctx: &mut Context<Self>) -> Self::Result {
        self.group(msg.conv, ctx)
    }
}

impl Handler<RefreshConversation> for ConversationRegistry {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: RefreshConversation, _: &mut Context<Self>) -> Self::Result {
        if msg.cluster {
            self.deps.publish(BusOut::Refresh { conv: msg.conv.clone() });
        }
        let refresh = self.actors.get(&msg.conv).map(|(_, addr)| addr.send(Refresh));
        let refresh_group = self.groups.get(&msg.conv).map(|(_, addr)| addr.send(Refresh));
        Box::pin(async move {
            if let Some(r) = refresh {
                let _ = r.await;
            }
            if let Some(r) = refresh_group {
                let _ = r.await;
            }
        })
    }
}

impl Handler<Observe> for ConversationRegistry {
    type Result = ();

    fn handle(&mut self, msg: Observe, _: &mut Context<Self>) {
        if let Some((_, addr)) = self.actors.get(&msg.conv) {
            addr.do_send(msg);
        } else if let Some((_, addr)) = self.groups.get(&msg.conv) {
            addr.do_send(msg);
        }
    }
}

impl Handler<RemoteGroupMessage> for ConversationRegistry {
    type Result = ();

    fn handle(&mut self, msg: RemoteGroupMessage, ctx: &mut Context<Self>) {
        match self.group(msg.record.conv.clone(), ctx) {
            Ok(addr) => addr.do_send(msg),
            Err(e) => log::warn!("remote message for {} not delivered: {e}", msg.record.conv),
        }
    }
}

impl Handler<Observe> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: Observe, _: &mut Context<Self>) {
        self.seq.observe(msg.seq);
    }
}

impl Handler<CountConversations> for ConversationRegistry {
    type Result = usize;

    fn handle(&mut self, _: CountConversations, _: &mut Context<Self>) -> usize {
        self.actors.len() + self.groups.len()
    }
}
