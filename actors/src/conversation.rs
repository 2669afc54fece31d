//! `ConversationActor`: the owner of one 1:1 conversation, the only one in the cluster. It checks
//! that the sender may post, drops resent client ids by answering with the original ack,
//! assigns the next seq, hands the message to the [`MessageWriter`] and, once it is durable,
//! acks the sender and delivers it to every device of both users. It also keeps the
//! read/delivered marks and performs recalls.
//!
//! It is started, found and stopped by the node's entity registry ([`crate::entity`]), which
//! sends it [`Exec`] commands and, when it is idle or must hand over, [`Stop`].

use std::collections::HashMap;
use std::time::Duration;

use actix::prelude::*;
use schema::db::{conversations, friends, DbError};
use schema::message::{MessageKind, MessageRecord};
use schema::protocol::{Quote, ServerFrame, WireMessage};
use schema::{ConvId, DeviceId, UserId};

use crate::command::{Ack, ChatError, Command, Reply};
use crate::entity::{Exec, OwnerCtx, Stop};
use crate::owner::{
    apply_reaction, edit, later, mark_read, report_stopped, stop, watch_idle, EditRequest, EventClock, Life, Lifecycle,
    OwnerDeps,
};
use crate::sequencer::{load_tail, post, replay, Carry, Sequenced, Sequencer};

/// How often coalesced delivered marks are written.
pub const MARK_FLUSH: Duration = Duration::from_millis(500);

/// Friendship and notification settings of the pair, loaded at start and on `Refresh`.
#[derive(Debug, Clone, Copy, Default)]
struct Policy {
    friends: bool,
    /// Whether each side silenced the other (friend dnd or conversation dnd): (a, b).
    silent: (bool, bool),
}

/// The owner of one 1:1 conversation.
pub struct ConversationActor {
    conv: ConvId,
    a: UserId,
    b: UserId,
    deps: OwnerDeps,
    life: Life,
    seq: Sequencer,
    policy: Policy,
    delivered: HashMap<UserId, (i64, bool)>,
    /// Reads and recalls being written.
    pending: usize,
    /// Times of reactions.
    events: EventClock,
}

/// Loads the pair's policy from the database.
async fn load_policy(db: &crate::db::Db, a: UserId, b: UserId, conv: ConvId) -> Result<Policy, DbError> {
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

/// Loads the policy and, for friends, makes sure the conversation's rows exist (strangers get
/// none: a refused frame leaves no trace in the lists).
async fn load_and_ensure(deps: &OwnerDeps, a: UserId, b: UserId, conv: ConvId) -> Result<Policy, DbError> {
    let policy = load_policy(&deps.db, a, b, conv.clone()).await?;
    if policy.friends {
        let now = deps.clock.now_ms();
        deps.db
            .write_retrying(move |c| {
                conversations::ensure(c, conv.as_str(), &[(a.0, Some(b.0)), (b.0, Some(a.0))], now)
            })
            .await?;
    }
    Ok(policy)
}

impl ConversationActor {
    /// The owner of 1:1 conversation `ctx.conv` between `a` and `b` (state loaded when it starts).
    pub fn new(a: UserId, b: UserId, ctx: OwnerCtx, deps: OwnerDeps) -> Self {
        ConversationActor {
            conv: ctx.conv.clone(),
            a,
            b,
            seq: Sequencer::new(ctx.conv.clone()),
            deps,
            life: Life::new(ctx),
            policy: Policy::default(),
            delivered: HashMap::new(),
            pending: 0,
            events: EventClock::default(),
        }
    }

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

    /// Push hook: a text message may push to the peer's offline devices.
    fn push_message(&self, rec: &MessageRecord, peer: UserId) {
        if rec.kind != MessageKind::Text || !self.deps.push.installed() {
            return;
        }
        let quiet = self.silent_for(peer);
        self.deps.push.notify(crate::push::message_notice(
            rec,
            None,
            vec![crate::push::PushRecipient { user: peer, quiet, mentioned: false }],
        ));
    }

    fn to_user(&self, user: UserId, frame: &ServerFrame, except: Option<DeviceId>) {
        self.deps.sessions.to_user(user, frame.encode().into(), except);
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

    fn exec(&mut self, cmd: Command, reply: crate::entity::Reply, ctx: &mut Context<Self>) {
        match cmd {
            Command::Post { sender, device, client_id, body, reply_to, attachment, forwarded_from, .. } => {
                if let Some(answer) = replay(self, sender, &client_id) {
                    return later(self, ctx, reply, Box::pin(answer.map(|r, _, _| r.map(Reply::Acked))));
                }
                if !self.policy.friends {
                    return reply.send(Err(ChatError::NotFriends));
                }
                if reply_to.is_some_and(|r| r < 1 || r > self.seq.max_seq()) {
                    return reply.send(Err(ChatError::InvalidReply));
                }
                let rec = MessageRecord {
                    conv: self.conv.clone(),
                    sender,
                    client_id,
                    kind: MessageKind::Text,
                    body: Some(body),
                    ts: self.deps.clock.now_ms(),
                    reply_to,
                    attachment,
                    forwarded_from,
                    ..MessageRecord::default()
                };
                let work = post(self, rec, Some(device));
                later(self, ctx, reply, Box::pin(work.map(|r, _, _| r.map(Reply::Acked))));
            }
            Command::Delivered { user, seq } => {
                let seq = seq.min(self.seq.max_seq());
                if seq >= 1 {
                    let entry = self.delivered.entry(user).or_insert((0, false));
                    if seq > entry.0 {
                        *entry = (seq, true);
                        let frame = ServerFrame::Delivered { conv: self.conv.clone(), seq, by: user };
                        self.to_user(self.peer(user), &frame, None);
                    }
                }
                reply.send(Ok(Reply::Done));
            }
            Command::Typing { user } => {
                if !self.policy.friends {
                    return reply.send(Err(ChatError::NotFriends));
                }
                self.to_user(self.peer(user), &ServerFrame::Typing { conv: self.conv.clone(), from: user }, None);
                reply.send(Ok(Reply::Done));
            }
            Command::Read { user, device, seq } => {
                let max = self.seq.max_seq();
                let seq = seq.min(max);
                if seq < 1 {
                    // Nothing to read (an empty conversation).
                    return reply.send(Ok(Reply::Done));
                }
                let work = mark_read(&self.deps, &self.conv, user, seq).into_actor(self).map(move |res, act, _| {
                    let (before, read) = res?;
                    if read > before {
                        let peer = act.peer(user);
                        act.to_user(peer, &ServerFrame::Read { conv: act.conv.clone(), seq: read, by: user }, None);
                        let mark =
                            ServerFrame::ReadMark { conv: act.conv.clone(), seq: read, unread: (max - read).max(0) };
                        act.to_user(user, &mark, Some(device));
                    }
                    Ok(Reply::Done)
                });
                later(self, ctx, reply, Box::pin(work));
            }
            Command::Recall { user, seq } => {
                let deps = self.deps.clone();
                let conv = self.conv.clone();
                let window = deps.settings.recall_window.as_millis() as i64;
                let turn = self.events.turn();
                let work = async move {
                    let _turn = turn.ready().await;
                    recall(&deps, conv, user, seq, window).await
                }
                .into_actor(self)
                .map(move |res, act, _| {
                    res?;
                    let frame = ServerFrame::Recalled { conv: act.conv.clone(), seq };
                    act.to_user(act.a, &frame, None);
                    act.to_user(act.b, &frame, None);
                    Ok(Reply::Done)
                });
                later(self, ctx, reply, Box::pin(work));
            }
            Command::Refresh => {
                let deps = self.deps.clone();
                let (a, b, conv) = (self.a, self.b, self.conv.clone());
                let work =
                    async move { load_and_ensure(&deps, a, b, conv).await }.into_actor(self).map(|res, act, _| {
                        match res {
                            Ok(p) => act.policy = p,
                            Err(e) => log::warn!(conv = act.conv.as_str(); "conversation {}: policy not refreshed: {e}", act.conv),
                        }
                        Ok(Reply::Done)
                    });
                later(self, ctx, reply, Box::pin(work));
            }
            Command::Edit { user, client_id, seq, body } => {
                if !self.policy.friends {
                    return reply.send(Err(ChatError::NotFriends));
                }
                let (deps, conv, now) = (self.deps.clone(), self.conv.clone(), self.deps.clock.now_ms());
                let (stamp, turn) = (self.events.next(now), self.events.turn());
                let work = async move {
                    let _turn = turn.ready().await;
                    let req =
                        EditRequest { conv, user, seq, edit_id: client_id.clone(), body: body.clone(), now, stamp };
                    edit(&deps, req).await.map(|r| (r, client_id, body))
                };
                let work = work.into_actor(self).map(move |res, act, _| {
                    let ((at, fresh), client_id, body) = res?;
                    if fresh {
                        let frame = ServerFrame::Edited { conv: act.conv.clone(), seq, body, edited_at: at };
                        act.to_user(act.a, &frame, None);
                        act.to_user(act.b, &frame, None);
                    }
                    Ok(Reply::Acked(Ack { id: client_id, conv: act.conv.clone(), seq, ts: at }))
                });
                later(self, ctx, reply, Box::pin(work));
            }
            Command::React { user, seq, emoji, on } => {
                if !self.policy.friends {
                    return reply.send(Err(ChatError::NotFriends));
                }
                if seq < 1 || seq > self.seq.max_seq() {
                    return reply.send(Err(ChatError::MessageNotFound));
                }
                let (at, turn) = (self.events.next(self.deps.clock.now_ms()), self.events.turn());
                let (deps, conv) = (self.deps.clone(), self.conv.clone());
                let e = emoji.clone();
                let work = async move {
                    let _turn = turn.ready().await;
                    apply_reaction(&deps, conv, seq, user, e, on, at).await
                }
                .into_actor(self)
                .map(move |res, act, _| {
                    // A change goes to both users; one that changed nothing (adding a reaction
                    // I have, removing one I have not) confirms the state to my devices only.
                    let changed = res?;
                    let frame = ServerFrame::Reaction { conv: act.conv.clone(), seq, user, emoji, on, at };
                    act.to_user(user, &frame, None);
                    if changed {
                        act.to_user(if user == act.a { act.b } else { act.a }, &frame, None);
                    }
                    Ok(Reply::Done)
                });
                later(self, ctx, reply, Box::pin(work));
            }
            Command::Change { .. } => reply.send(Err(ChatError::UnknownConversation)),
            Command::Online { .. } | Command::Offline { .. } => reply.send(Ok(Reply::Done)),
        }
    }
}

impl Lifecycle for ConversationActor {
    fn life(&mut self) -> &mut Life {
        &mut self.life
    }

    fn busy(&self) -> bool {
        self.pending > 0 || self.seq.busy()
    }

    fn deps(&self) -> &OwnerDeps {
        &self.deps
    }

    fn pending(&mut self) -> &mut usize {
        &mut self.pending
    }
}

impl Sequenced for ConversationActor {
    fn sequencer(&mut self) -> &mut Sequencer {
        &mut self.seq
    }

    fn deliver(&mut self, rec: &MessageRecord, carry: &Carry) {
        let origin = carry.origin;
        self.deps.observe_delivery(rec.ts);
        let mut wire = WireMessage::from(rec);
        if let Some(q) = rec.reply_to {
            wire.reply = Some(Quote::of(q, carry.quoted.as_ref(), 0, i64::MAX, false));
        }
        let peer = self.peer(rec.sender);
        let to_peer = ServerFrame::Msg { msg: wire.clone(), silent: self.silent_for(peer), mentioned: false };
        self.to_user(peer, &to_peer, None);
        self.push_message(rec, peer);
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
            let policy = load_and_ensure(&deps, a, b, conv.clone()).await.map_err(|e| e.to_string())?;
            let (max, recent) = load_tail(deps.store.as_ref(), conv).await?;
            Ok::<_, String>((policy, max, recent))
        };
        // Nothing else is handled until the state is loaded: commands wait in the mailbox.
        ctx.wait(load.into_actor(self).map(|res, act, ctx| match res {
            Ok((policy, max, recent)) => {
                act.policy = policy;
                act.seq.seed(max, recent);
                if act.life.ctx.takeover {
                    // The previous owner did not hand over: live frames may have been lost.
                    let frame = resync_frame(&act.conv);
                    act.to_user(act.a, &frame, None);
                    act.to_user(act.b, &frame, None);
                }
            }
            Err(e) => {
                log::error!(conv = act.conv.as_str(); "conversation {} failed to start: {e}", act.conv);
                ctx.stop();
            }
        }));
        watch_idle(ctx, self.deps.settings.conversation_idle);
        ctx.run_interval(MARK_FLUSH, |act, _| act.flush_delivered());
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.flush_delivered();
        report_stopped(&self.life);
    }
}

/// The `resync` event for one conversation: sync it from the last seq you have.
pub fn resync_frame(conv: &ConvId) -> ServerFrame {
    ServerFrame::Event { event: "resync".into(), data: serde_json::json!({ "conv": conv }) }
}

impl Handler<Exec> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: Exec, ctx: &mut Context<Self>) {
        self.life.touch();
        self.exec(msg.cmd, msg.reply, ctx);
    }
}

impl Handler<Stop> for ConversationActor {
    type Result = ();

    fn handle(&mut self, msg: Stop, ctx: &mut Context<Self>) {
        stop(self, msg.0, ctx);
    }
}

/// Recalls message `seq` of `conv` for `user` if it is theirs and within `window_ms`.
pub(crate) async fn recall(
    deps: &OwnerDeps,
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
