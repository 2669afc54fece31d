//! `GroupActor`: one actor per active group on this node. It caches the members, their roles and
//! mute state, decides who may post and who may change what, assigns the group conversation's
//! seqs through the shared [`Sequencer`], and fans out each message to every member's online
//! devices: frames are encoded once per variant (silent / mentioned), not once per recipient,
//! and go into bounded session mailboxes so a slow member cannot delay the others.
//!
//! Membership and settings changes go through the actor too (it is the one writer of a group's
//! state on a node) and are announced by system messages in the group's sequence, so members
//! who were offline see them on `sync`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use schema::db::groups::{self as q, role, GroupUpdate};
use schema::db::models::Group;
use schema::db::{conversations, friends, DbError};
use schema::message::{MessageKind, MessageRecord};
use schema::protocol::{ServerFrame, WireMessage};
use schema::{ConvId, DeviceId, GroupId, UserId};
use serde_json::json;

use crate::cluster::bus::BusOut;
use crate::cluster::seq::SeqSource;
use crate::conversation::{
    Ack, ChatError, ConversationDeps, ConversationRegistry, ConversationStopped, MarkDelivered, MarkRead, Observe,
    PostMessage, RecallMessage, Refresh, RemoteGroupMessage, Typing,
};
use crate::registry::{DeliverLocal, DeliverToUser, DeliverToUsers};
use crate::sequencer::{load_tail, post, replay, stop_when_idle, Sequenced, Sequencer};
use crate::store::MessageStore;
use crate::writer::MessageWriter;

static SYSTEM_IDS: AtomicU64 = AtomicU64::new(1);

/// A member as the actor caches it.
#[derive(Debug, Clone)]
struct Member {
    role: String,
    muted_until: Option<i64>,
    /// Receives messages with a seq above this (their join point).
    joined_seq: i64,
}

impl Member {
    fn is_admin(&self) -> bool {
        self.role == role::OWNER || self.role == role::ADMIN
    }
}

/// A change to a group, requested over HTTP by `by`.
#[derive(Debug, Clone)]
pub enum GroupOp {
    /// Name, announcement, avatar, mute-all, invite policy (owner and admins).
    Update(GroupUpdate),
    /// Dissolve (owner).
    Dissolve,
    /// Add friends of `by` (members, or admins only under policy `admins`).
    Invite(Vec<UserId>),
    /// `by` joins through an invite link (its token; the caller checked that it exists and is
    /// live; the use is counted with the join).
    JoinByInvite(String),
    /// Remove a member (owner: anyone; admins: plain members).
    Remove(UserId),
    /// `by` leaves (not the owner).
    Leave,
    /// Hand ownership to a member (owner).
    Transfer(UserId),
    /// Make a member admin or plain member again (owner).
    SetAdmin(UserId, bool),
    /// Mute a member until the time given, or unmute with `None` (owner; admins for plain members).
    Mute(UserId, Option<i64>),
}

/// Run a [`GroupOp`].
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ChatError>")]
pub struct GroupCommand {
    pub by: UserId,
    pub op: GroupOp,
}

/// One active group.
pub struct GroupActor {
    group: GroupId,
    conv: ConvId,
    deps: ConversationDeps,
    registry: Addr<ConversationRegistry>,
    instance: u64,
    seq: Sequencer,
    info: Option<Group>,
    members: HashMap<UserId, Member>,
    /// Members who set do-not-disturb on the group conversation.
    quiet: HashSet<UserId>,
    /// Members who left or were removed, with their leave point, until every message up to it
    /// has been delivered (messages still being written when they left reach them).
    departed: HashMap<UserId, i64>,
    last_active: Instant,
}

type Loaded = (Option<Group>, Vec<schema::db::models::GroupMember>, HashSet<UserId>, i64, Vec<MessageRecord>);

impl GroupActor {
    /// A group actor (state loaded when it starts).
    pub(crate) fn new(
        group: GroupId,
        deps: ConversationDeps,
        registry: Addr<ConversationRegistry>,
        instance: u64,
    ) -> Self {
        let conv = ConvId::group(group);
        GroupActor {
            group,
            seq: Sequencer::new(conv.clone()),
            conv,
            deps,
            registry,
            instance,
            info: None,
            members: HashMap::new(),
            quiet: HashSet::new(),
            departed: HashMap::new(),
            last_active: Instant::now(),
        }
    }

    fn member(&self, u: UserId) -> Result<&Member, ChatError> {
        if self.info.is_none() {
            return Err(ChatError::UnknownConversation);
        }
        self.members.get(&u).ok_or(ChatError::UnknownConversation)
    }

    fn live(&self) -> Result<&Group, ChatError> {
        let g = self.info.as_ref().ok_or(ChatError::UnknownConversation)?;
        if g.dissolved_at.is_some() {
            return Err(ChatError::GroupDissolved);
        }
        Ok(g)
    }

    /// A frame for `users` on every node: local sessions directly, other nodes through one
    /// envelope on the group's channel.
    fn to_users(&self, users: Vec<UserId>, frame: &ServerFrame) {
        if users.is_empty() {
            return;
        }
        let frame: crate::registry::Frame = frame.encode().into();
        self.deps.publish(BusOut::GroupFrame { conv: self.conv.clone(), users: users.clone(), frame: frame.clone() });
        self.to_local_users(users, frame);
    }

    fn to_local_users(&self, users: Vec<UserId>, frame: crate::registry::Frame) {
        let msg = DeliverToUsers { users, frame, cluster: false };
        if self.deps.sessions.try_send(msg).is_err() {
            log::warn!("session registry overloaded; a group frame was dropped (clients catch up with sync)");
        }
    }

    /// A system message (part of the group's sequence) caused by `by`, with its seq assigned;
    /// the future persists and delivers it.
    fn system(&mut self, by: UserId, body: serde_json::Value) -> ResponseActFuture<Self, ()> {
        let client_id = format!("sys-{}-{}", self.deps.clock.now_ms(), SYSTEM_IDS.fetch_add(1, Ordering::Relaxed));
        let rec = MessageRecord {
            conv: self.conv.clone(),
            seq: 0,
            sender: by,
            client_id,
            kind: MessageKind::System,
            body: Some(body.to_string()),
            mentions: Vec::new(),
            mention_all: false,
            ts: self.deps.clock.now_ms(),
            recalled_at: None,
        };
        Box::pin(post(self, rec, None).map(|res, act, _| {
            if let Err(e) = res {
                log::warn!("group {}: system message not stored: {e}", act.group);
            }
        }))
    }

    /// Checks a change and returns the DB work it needs and the system message it announces.
    fn plan(&self, by: UserId, op: &GroupOp, now: i64) -> Result<Plan, ChatError> {
        let g = self.live()?;
        let me = self.member(by).cloned();
        let admin = me.as_ref().is_ok_and(Member::is_admin);
        let owner = me.as_ref().is_ok_and(|m| m.role == role::OWNER);
        let target = |u: &UserId| self.members.get(u).cloned().ok_or(ChatError::NotMember);
        Ok(match op {
            GroupOp::Update(u) => {
                me?;
                if !admin {
                    return Err(ChatError::NotAllowed);
                }
                let mut events = Vec::new();
                if let Some(n) = &u.name {
                    if n != &g.name {
                        events.push(json!({"event": "renamed", "by": by, "name": n}));
                    }
                }
                if let Some(a) = &u.announcement {
                    if a != &g.announcement {
                        events.push(json!({"event": "announcement", "by": by, "announcement": a}));
                    }
                }
                if let Some(m) = u.mute_all {
                    if m != g.mute_all {
                        events.push(json!({"event": if m { "muted_all" } else { "unmuted_all" }, "by": by}));
                    }
                }
                if u.invite_policy.as_ref().is_some_and(|p| p != &g.invite_policy) {
                    events.push(json!({"event": "invite_policy", "by": by, "invite_policy": u.invite_policy}));
                }
                Plan { events, ..Plan::default() }
            }
            GroupOp::Dissolve => {
                me?;
                if !owner {
                    return Err(ChatError::NotAllowed);
                }
                Plan { events: vec![json!({"event": "dissolved", "by": by})], ..Plan::default() }
            }
            GroupOp::Invite(ids) => {
                me?;
                if g.invite_policy == "admins" && !admin {
                    return Err(ChatError::NotAllowed);
                }
                let new: Vec<UserId> = ids.iter().copied().filter(|u| !self.members.contains_key(u)).collect();
                if self.members.len() + new.len() > self.deps.settings.max_group_members {
                    return Err(ChatError::GroupFull);
                }
                Plan {
                    add: new.clone(),
                    must_be_friends_of: Some(by),
                    events: if new.is_empty() {
                        vec![]
                    } else {
                        vec![json!({"event": "joined", "by": by, "users": new})]
                    },
                    ..Plan::default()
                }
            }
            GroupOp::JoinByInvite(_) => {
                if self.members.contains_key(&by) {
                    return Ok(Plan::default());
                }
                if self.members.len() >= self.deps.settings.max_group_members {
                    return Err(ChatError::GroupFull);
                }
                Plan {
                    add: vec![by],
                    events: vec![json!({"event": "joined", "by": by, "users": [by], "via": "invite"})],
                    ..Plan::default()
                }
            }
            GroupOp::Remove(u) => {
                me?;
                let t = target(u)?;
                if *u == by || t.role == role::OWNER || !(owner || (admin && t.role == role::MEMBER)) {
                    return Err(ChatError::NotAllowed);
                }
                Plan {
                    remove: Some(*u),
                    events: vec![json!({"event": "removed", "by": by, "user": u})],
                    ..Plan::default()
                }
            }
            GroupOp::Leave => {
                me?;
                if owner {
                    return Err(ChatError::OwnerCannotLeave);
                }
                Plan { remove: Some(by), events: vec![json!({"event": "left", "user": by})], ..Plan::default() }
            }
            GroupOp::Transfer(u) => {
                me?;
                target(u)?;
                if !owner || *u == by {
                    return Err(ChatError::NotAllowed);
                }
                Plan { events: vec![json!({"event": "owner_changed", "by": by, "user": u})], ..Plan::default() }
            }
            GroupOp::SetAdmin(u, on) => {
                me?;
                let t = target(u)?;
                if !owner || t.role == role::OWNER {
                    return Err(ChatError::NotAllowed);
                }
                let event = if *on { "admin_added" } else { "admin_removed" };
                Plan { events: vec![json!({"event": event, "by": by, "user": u})], ..Plan::default() }
            }
            GroupOp::Mute(u, until) => {
                me?;
                let t = target(u)?;
                if *u == by || t.role == role::OWNER || !(owner || (admin && t.role == role::MEMBER)) {
                    return Err(ChatError::NotAllowed);
                }
                let event = match until {
                    Some(t) if *t > now => json!({"event": "muted", "by": by, "user": u, "until": t}),
                    _ => json!({"event": "unmuted", "by": by, "user": u}),
                };
                Plan { events: vec![event], ..Plan::default() }
            }
        })
    }
}

/// What a group change does.
#[derive(Debug, Default)]
struct Plan {
    add: Vec<UserId>,
    remove: Option<UserId>,
    must_be_friends_of: Option<UserId>,
    events: Vec<serde_json::Value>,
}

impl Sequenced for GroupActor {
    fn sequencer(&mut self) -> &mut Sequencer {
        &mut self.seq
    }

    fn writer(&self) -> &MessageWriter {
        &self.deps.writer
    }

    fn last_active(&self) -> Instant {
        self.last_active
    }

    fn seq_source(&self) -> Option<SeqSource> {
        self.deps.seqs.clone()
    }

    fn store(&self) -> Arc<dyn MessageStore> {
        self.deps.store.clone()
    }

    fn deliver(&mut self, rec: &MessageRecord, origin: Option<DeviceId>) {
        // One envelope for every other node with members online, then this node's members.
        self.deps.publish(BusOut::Group { record: rec.clone(), origin });
        self.fan_out(rec, origin, false);
    }
}

impl GroupActor {
    /// Delivers a durable message to the members online on this node. `remote`: it was
    /// sequenced by another node (which also did the once-only side effects).
    fn fan_out(&mut self, rec: &MessageRecord, origin: Option<DeviceId>, remote: bool) {
        self.deps.observe_delivery(rec.ts);
        let wire = WireMessage::from(rec);
        // Exactly the members whose history includes this seq: joined before it, not left before it.
        let recipients: Vec<UserId> = self
            .members
            .iter()
            .filter(|(_, m)| m.joined_seq < rec.seq)
            .map(|(u, _)| *u)
            .chain(self.departed.iter().filter(|(_, left)| rec.seq <= **left).map(|(u, _)| *u))
            .collect();
        self.departed.retain(|_, left| *left > rec.seq);
        let mentioned: HashSet<UserId> =
            if rec.mention_all { recipients.iter().copied().collect() } else { rec.mentions.iter().copied().collect() };
        // One encoding per variant, shared by every recipient of that variant.
        let mut variants: HashMap<(bool, bool), Vec<UserId>> = HashMap::new();
        for u in recipients.iter().copied().filter(|u| *u != rec.sender) {
            let silent = self.quiet.contains(&u) && !mentioned.contains(&u);
            variants.entry((silent, mentioned.contains(&u))).or_default().push(u);
        }
        for ((silent, m), users) in variants {
            self.to_local_users(users, ServerFrame::Msg { msg: wire.clone(), silent, mentioned: m }.encode().into());
        }
        // The sender's other devices (or all of them for system messages).
        let own = ServerFrame::Msg { msg: wire, silent: true, mentioned: false };
        let frame = DeliverLocal { user: rec.sender, frame: own.encode().into(), except: origin };
        if recipients.contains(&rec.sender) && self.deps.sessions.try_send(frame).is_err() {
            log::warn!("session registry overloaded; a group frame was dropped");
        }
        if !remote && !mentioned.is_empty() && rec.kind == MessageKind::Text {
            let (db, conv, seq) = (self.deps.db.clone(), self.conv.clone(), rec.seq);
            let users: Vec<i64> = mentioned.iter().filter(|u| **u != rec.sender).map(|u| u.0).collect();
            actix::spawn(async move {
                if let Err(e) = db.write(move |c| q::mark_mentioned(c, conv.as_str(), &users, seq)).await {
                    log::warn!("mention marks not stored: {e}");
                }
            });
        }
    }
}

impl Actor for GroupActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let deps = self.deps.clone();
        let (group, conv) = (self.group, self.conv.clone());
        let load = async move {
            let (info, members, quiet) =
                load_state(deps.db.clone(), group, conv.clone()).await.map_err(|e| e.to_string())?;
            let (max, recent) = load_tail(deps.store.as_ref(), conv).await?;
            Ok::<Loaded, String>((info, members, quiet, max, recent))
        };
        ctx.wait(load.into_actor(self).map(|res, act, ctx| match res {
            Ok((info, members, quiet, max, recent)) => {
                act.seq.seed(max, recent);
                act.set_state(info, members, quiet);
            }
            Err(e) => {
                log::error!("group {} failed to start: {e}", act.group);
                ctx.stop();
            }
        }));
        stop_when_idle(ctx, self.deps.settings.conversation_idle);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.registry.do_send(ConversationStopped { conv: self.conv.clone(), instance: self.instance });
    }
}

impl Handler<PostMessage> for GroupActor {
    type Result = ResponseActFuture<Self, Result<Ack, ChatError>>;

    fn handle(&mut self, msg: PostMessage, _: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        let now = self.deps.clock.now_ms();
        let check = (|| {
            let me = self.member(msg.sender)?.clone();
            if let Some(answer) = replay(self, msg.sender, &msg.client_id) {
                return Ok(Some(answer));
            }
            let g = self.live()?;
            if !me.is_admin() && (g.mute_all || me.muted_until.is_some_and(|t| t > now)) {
                return Err(ChatError::Muted);
            }
            if msg.mention_all && !me.is_admin() {
                return Err(ChatError::MentionAllForbidden);
            }
            if msg.mentions.iter().any(|u| !self.members.contains_key(u)) {
                return Err(ChatError::InvalidMentions);
            }
            Ok(None)
        })();
        match check {
            Ok(Some(answer)) => return answer,
            Ok(None) => {}
            Err(e) => return Box::pin(fut::ready(Err(e))),
        }
        let mut mentions = msg.mentions;
        mentions.sort();
        mentions.dedup();
        let rec = MessageRecord {
            conv: self.conv.clone(),
            seq: 0,
            sender: msg.sender,
            client_id: msg.client_id,
            kind: MessageKind::Text,
            body: Some(msg.body),
            mentions,
            mention_all: msg.mention_all,
            ts: now,
            recalled_at: None,
        };
        post(self, rec, Some(msg.device))
    }
}

impl Handler<MarkDelivered> for GroupActor {
    type Result = ();

    /// Per-message delivery receipts are a 1:1 feature; groups keep read marks only.
    fn handle(&mut self, _: MarkDelivered, _: &mut Context<Self>) {
        self.last_active = Instant::now();
    }
}

impl Handler<MarkRead> for GroupActor {
    type Result = ResponseActFuture<Self, Result<(), ChatError>>;

    fn handle(&mut self, msg: MarkRead, _: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        if let Err(e) = self.member(msg.user) {
            return Box::pin(fut::ready(Err(e)));
        }
        let max = self.seq.max_seq();
        let seq = msg.seq.min(max);
        if seq < 1 {
            return Box::pin(fut::ready(Ok(())));
        }
        let (db, conv, user) = (self.deps.db.clone(), self.conv.clone(), msg.user);
        let write = async move { db.write(move |c| conversations::mark_read(c, user.0, conv.as_str(), seq)).await };
        Box::pin(write.into_actor(self).map(move |res, act, _| {
            let (before, read) = res?;
            if read > before {
                let mark = ServerFrame::ReadMark { conv: act.conv.clone(), seq: read, unread: (max - read).max(0) };
                let frame = DeliverToUser { user, frame: mark.encode().into(), except: Some(msg.device) };
                let _ = act.deps.sessions.try_send(frame);
            }
            Ok(())
        }))
    }
}

impl Handler<RecallMessage> for GroupActor {
    type Result = ResponseActFuture<Self, Result<(), ChatError>>;

    fn handle(&mut self, msg: RecallMessage, _: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        if let Err(e) = self.member(msg.user) {
            return Box::pin(fut::ready(Err(e)));
        }
        let deps = self.deps.clone();
        let conv = self.conv.clone();
        let window = deps.settings.recall_window.as_millis() as i64;
        let work = async move { crate::conversation::recall(&deps, conv, msg.user, msg.seq, window).await };
        Box::pin(work.into_actor(self).map(move |res, act, _| {
            res?;
            let frame = ServerFrame::Recalled { conv: act.conv.clone(), seq: msg.seq };
            act.to_users(act.members.keys().copied().collect(), &frame);
            Ok(())
        }))
    }
}

impl Handler<Typing> for GroupActor {
    type Result = Result<(), ChatError>;

    fn handle(&mut self, msg: Typing, _: &mut Context<Self>) -> Result<(), ChatError> {
        self.member(msg.user)?;
        self.live()?;
        let others = self.members.keys().copied().filter(|u| *u != msg.user).collect();
        self.to_users(others, &ServerFrame::Typing { conv: self.conv.clone(), from: msg.user });
        Ok(())
    }
}

impl Handler<Refresh> for GroupActor {
    /// Atomic: nothing is delivered while the group is being re-read.
    type Result = AtomicResponse<Self, ()>;

    /// Re-reads the group, its members and their do-not-disturb settings (a setting changed
    /// here, or a change made through another node).
    fn handle(&mut self, _: Refresh, _: &mut Context<Self>) -> Self::Result {
        let load = load_state(self.deps.db.clone(), self.group, self.conv.clone());
        AtomicResponse::new(Box::pin(load.into_actor(self).map(|res, act, _| match res {
            Ok((info, members, quiet)) => act.set_state(info, members, quiet),
            Err(e) => log::warn!("group {}: not refreshed: {e}", act.group),
        })))
    }
}

impl Handler<Observe> for GroupActor {
    type Result = ();

    fn handle(&mut self, msg: Observe, _: &mut Context<Self>) {
        self.seq.observe(msg.seq);
    }
}

impl Handler<RemoteGroupMessage> for GroupActor {
    type Result = AtomicResponse<Self, ()>;

    /// A message another node sequenced: delivered to this node's members. A system message may
    /// change who they are, so the group is re-read first.
    fn handle(&mut self, msg: RemoteGroupMessage, _: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        self.seq.observe(msg.record.seq);
        if msg.record.kind != MessageKind::System {
            self.fan_out(&msg.record, msg.origin, true);
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        let load = load_state(self.deps.db.clone(), self.group, self.conv.clone());
        AtomicResponse::new(Box::pin(load.into_actor(self).map(move |res, act, _| {
            match res {
                Ok((info, members, quiet)) => act.set_state(info, members, quiet),
                Err(e) => log::warn!("group {}: not refreshed: {e}", act.group),
            }
            act.fan_out(&msg.record, msg.origin, true);
        })))
    }
}

type State = (Option<Group>, Vec<schema::db::models::GroupMember>, HashSet<UserId>);

/// Reads a group, its active members and who of them silenced it.
async fn load_state(db: crate::db::Db, group: GroupId, conv: ConvId) -> Result<State, DbError> {
    db.read(move |c| {
        let info = q::find(c, group.0)?;
        let members = q::active_members(c, group.0)?;
        let quiet = conversations::states(c, conv.as_str())?
            .into_iter()
            .filter(|s| s.dnd)
            .map(|s| UserId(s.user_id))
            .collect::<HashSet<_>>();
        Ok((info, members, quiet))
    })
    .await
}

impl GroupActor {
    fn set_state(
        &mut self,
        info: Option<Group>,
        members: Vec<schema::db::models::GroupMember>,
        quiet: HashSet<UserId>,
    ) {
        self.info = info;
        let fresh: HashMap<UserId, Member> = members
            .into_iter()
            .map(|m| (UserId(m.user_id), Member { role: m.role, muted_until: m.muted_until, joined_seq: m.joined_seq }))
            .collect();
        // Members gone since the last read keep receiving up to their leave point (the
        // announcing message), which the database has; here the highest seq known is the bound.
        for u in self.members.keys() {
            if !fresh.contains_key(u) {
                self.departed.entry(*u).or_insert(self.seq.max_seq());
            }
        }
        self.members = fresh;
        self.quiet = quiet;
    }
}

impl Handler<GroupCommand> for GroupActor {
    /// Atomic: while a change is checked, written and announced, the actor handles nothing else,
    /// so concurrent changes see each other's results and no message slips between a change and
    /// its announcement (the leave point of a removed member is exactly their `removed` message).
    type Result = AtomicResponse<Self, Result<(), ChatError>>;

    fn handle(&mut self, cmd: GroupCommand, _: &mut Context<Self>) -> Self::Result {
        self.last_active = Instant::now();
        let now = self.deps.clock.now_ms();
        let plan = match self.plan(cmd.by, &cmd.op, now) {
            Ok(p) => p,
            Err(e) => return AtomicResponse::new(Box::pin(fut::ready(Err(e)))),
        };
        // The leave point of a removed member is the seq of the message announcing it.
        let next = self.seq.max_seq() + 1;
        let (db, group, op, by) = (self.deps.db.clone(), self.group, cmd.op.clone(), cmd.by);
        let invite = match &cmd.op {
            GroupOp::JoinByInvite(token) => Some(token.clone()),
            _ => None,
        };
        let add = plan.add.clone();
        let remove = plan.remove;
        let friends_of = plan.must_be_friends_of;
        let write = async move {
            db.write(move |c| {
                // The link is used only by a join the group accepts.
                if let Some(token) = &invite {
                    if !add.is_empty() && !q::use_invite(c, token, now)? {
                        return Ok(Err(ChatError::InviteUsedUp));
                    }
                }
                if let Some(inviter) = friends_of {
                    let mine = friends::friend_ids(c, inviter.0)?;
                    if add.iter().any(|u| !mine.contains(&u.0)) {
                        return Ok(Err(ChatError::InviteesNotFriends));
                    }
                }
                match &op {
                    GroupOp::Update(u) => q::update(c, group.0, u, now)?,
                    GroupOp::Dissolve => q::dissolve(c, group.0, now)?,
                    GroupOp::Transfer(to) => q::transfer(c, group.0, by.0, to.0)?,
                    GroupOp::SetAdmin(u, on) => {
                        q::set_role(c, group.0, u.0, if *on { role::ADMIN } else { role::MEMBER })?
                    }
                    GroupOp::Mute(u, until) => q::set_mute(c, group.0, u.0, until.filter(|t| *t > now))?,
                    _ => {}
                }
                let ids: Vec<i64> = add.iter().map(|u| u.0).collect();
                q::add_members(c, group.0, &ids, role::MEMBER, next - 1, now)?;
                if let Some(r) = remove {
                    q::remove_member(c, group.0, r.0, next)?;
                }
                Ok(Ok(q::find(c, group.0)?))
            })
            .await
        };
        AtomicResponse::new(Box::pin(write.into_actor(self).then(
            move |res: Result<Result<Option<Group>, ChatError>, DbError>, act, _| {
                let info = match res {
                    Ok(Ok(info)) => info,
                    Ok(Err(e)) => return Box::pin(fut::ready(Err(e))) as ResponseActFuture<Self, _>,
                    Err(e) => return Box::pin(fut::ready(Err(e.into()))),
                };
                act.info = info;
                // Actors of this group on other nodes re-read it before the announcements reach
                // them (one publisher, so envelopes keep their order), and the nodes of joining or
                // leaving members adjust their subscriptions.
                act.deps.publish(BusOut::Refresh { conv: act.conv.clone() });
                for u in &plan.add {
                    act.deps.publish(BusOut::GroupInterest { user: *u, conv: act.conv.clone(), add: true });
                }
                if let Some(r) = plan.remove {
                    act.deps.publish(BusOut::GroupInterest { user: r, conv: act.conv.clone(), add: false });
                }
                for u in &plan.add {
                    act.members
                        .insert(*u, Member { role: role::MEMBER.into(), muted_until: None, joined_seq: next - 1 });
                }
                match &cmd.op {
                    GroupOp::Transfer(to) => {
                        if let Some(m) = act.members.get_mut(to) {
                            m.role = role::OWNER.into();
                        }
                        if let Some(m) = act.members.get_mut(&cmd.by) {
                            m.role = role::ADMIN.into();
                        }
                    }
                    GroupOp::SetAdmin(u, on) => {
                        if let Some(m) = act.members.get_mut(u) {
                            m.role = if *on { role::ADMIN } else { role::MEMBER }.into();
                        }
                    }
                    GroupOp::Mute(u, until) => {
                        if let Some(m) = act.members.get_mut(u) {
                            m.muted_until = until.filter(|t| *t > now);
                        }
                    }
                    _ => {}
                }
                // Announce in order and answer once the announcements are durable and delivered,
                // so a `sync` right after sees them. A removed member still gets their `removed`
                // message, then nothing more.
                let mut chain: ResponseActFuture<Self, ()> = Box::pin(fut::ready(()));
                for ev in plan.events {
                    let step = act.system(cmd.by, ev);
                    chain = Box::pin(chain.then(move |_, _, _| step));
                }
                let removed = plan.remove;
                let kicked = matches!(cmd.op, GroupOp::Remove(_));
                Box::pin(chain.map(move |_, act, _| {
                    if let Some(r) = removed {
                        act.members.remove(&r);
                        act.departed.insert(r, next);
                        if kicked {
                            let data = json!({"group_id": act.group});
                            let frame = ServerFrame::Event { event: "group_removed".into(), data }.encode();
                            let _ = act.deps.sessions.try_send(DeliverToUser {
                                user: r,
                                frame: frame.into(),
                                except: None,
                            });
                        }
                    }
                    Ok(())
                }))
            },
        )))
    }
}

/// The leave ceiling and join floor of a user in a group conversation, from the database:
/// `None` when the user never belonged to the group.
pub async fn access(
    deps_db: &crate::db::Db,
    group: GroupId,
    user: UserId,
) -> Result<Option<(i64, Option<i64>)>, DbError> {
    let m = deps_db.read(move |c| q::member(c, group.0, user.0)).await?;
    Ok(m.map(|m| (m.joined_seq, m.left_seq)))
}
