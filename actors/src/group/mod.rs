//! `GroupActor`: the owner of one group, the only one in the cluster. It caches the members,
//! their roles and mute state, decides who may post and who may change what ([`plan`]),
//! assigns the group conversation's seqs through the shared [`Sequencer`], and fans each
//! message out to every member's online devices, on every node: frames are encoded once per
//! variant (silent / mentioned), not once per recipient; this node's members get them through
//! its `SessionRegistry`, and each other node with members online gets one envelope listing its
//! members per variant.
//!
//! The owner knows on which nodes its members are online: at start it reads their presence from
//! Redis, members who connect elsewhere later are announced to it (`Command::Online`, sent by the
//! node they connect to), and nodes that find no session for a listed member say so
//! (`Command::Offline`). All fan-out decisions are the owner's, so join and leave points are
//! exact on every node.
//!
//! Changes go through the owner too and are announced by system messages in the group's
//! sequence. While a change is planned, written and announced the owner admits nothing else
//! (later commands wait in order), so concurrent changes see each other's results and no message
//! takes a seq between a change and its announcement; writes already accepted go on meanwhile.

pub mod plan;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};

use actix::prelude::*;
use schema::db::groups::{self as q, role};
use schema::db::models::{Group, GroupMember};
use schema::db::{conversations, friends, owners, DbError};
use schema::message::{MessageKind, MessageRecord};
use schema::protocol::{Quote, ServerFrame, WireMessage};
use schema::{ConvId, GroupId, UserId};
use serde_json::json;

use self::plan::{GroupState, Member, Plan};
use crate::cluster::envelope::Envelope;
use crate::command::{Ack, ChatError, Command, GroupOp, Reply};
use crate::conversation::resync_frame;
use crate::delivery::{Frame, SenderCopy};
use crate::entity::{Exec, OwnerCtx, Reply as Answer, Stop};
use crate::owner::{
    apply_reaction, edit, later, mark_read, report_fenced, report_stopped, stop, stop_if_done, watch_idle, EditRequest,
    EventClock, Life, Lifecycle, OwnerDeps,
};
use crate::sequencer::{load_tail, post, replay, Carry, Sequenced, Sequencer};

static SYSTEM_IDS: AtomicU64 = AtomicU64::new(1);

/// The owner of one group.
pub struct GroupActor {
    group: GroupId,
    conv: ConvId,
    deps: OwnerDeps,
    life: Life,
    seq: Sequencer,
    state: GroupState,
    /// Members who set do-not-disturb on the group conversation.
    quiet: HashSet<UserId>,
    /// Members who left or were removed, with their leave point, until every message up to it
    /// has been delivered (messages still being written when they left reach them).
    departed: HashMap<UserId, i64>,
    /// Other nodes and the members online there (cluster only).
    online: HashMap<String, HashSet<UserId>>,
    /// A change is being planned, written and announced: commands wait in `parked`.
    changing: bool,
    parked: VecDeque<Exec>,
    /// Reads, recalls and re-reads being done.
    pending: usize,
    /// Times of reactions.
    events: EventClock,
}

type Loaded = (Option<Group>, Vec<GroupMember>, HashSet<UserId>);

/// Reads a group, its active members and who of them silenced it.
async fn load_state(db: crate::db::Db, group: GroupId, conv: ConvId) -> Result<Loaded, DbError> {
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
    /// The owner of group `group` (state loaded when it starts).
    pub fn new(group: GroupId, ctx: OwnerCtx, deps: OwnerDeps) -> Self {
        let conv = ConvId::group(group);
        GroupActor {
            group,
            seq: Sequencer::new(conv.clone()),
            conv,
            state: GroupState { max_members: deps.settings.max_group_members, ..GroupState::default() },
            deps,
            life: Life::new(ctx),
            quiet: HashSet::new(),
            departed: HashMap::new(),
            online: HashMap::new(),
            changing: false,
            parked: VecDeque::new(),
            pending: 0,
            events: EventClock::default(),
        }
    }

    fn set_state(&mut self, info: Option<Group>, members: Vec<GroupMember>, quiet: HashSet<UserId>) {
        let fresh: HashMap<UserId, Member> = members
            .into_iter()
            .map(|m| (UserId(m.user_id), Member { role: m.role, muted_until: m.muted_until, joined_seq: m.joined_seq }))
            .collect();
        self.state.info = info;
        self.state.members = fresh;
        self.quiet = quiet;
    }

    /// Sends frame variants to their users on every node: this node's sessions directly, each
    /// other node with one of them online one envelope (listing its users per variant).
    fn send(&mut self, variants: Vec<(Frame, Vec<UserId>)>, sender: Option<SenderCopy>) {
        if let Some(cluster) = &self.deps.cluster {
            let mut variant_of: HashMap<UserId, usize> = HashMap::new();
            for (i, (_, users)) in variants.iter().enumerate() {
                for u in users {
                    variant_of.insert(*u, i);
                }
            }
            for (node, here) in &self.online {
                let mut lists: Vec<Vec<UserId>> = vec![Vec::new(); variants.len()];
                for u in here {
                    if let Some(i) = variant_of.get(u) {
                        lists[*i].push(*u);
                    }
                }
                let own = sender.as_ref().filter(|s| here.contains(&s.user));
                if lists.iter().all(Vec::is_empty) && own.is_none() {
                    continue;
                }
                let (mut frames, mut users): (Vec<&str>, Vec<Vec<UserId>>) = (Vec::new(), Vec::new());
                for ((frame, _), list) in variants.iter().zip(lists) {
                    if !list.is_empty() {
                        frames.push(frame);
                        users.push(list);
                    }
                }
                if let Some(s) = own {
                    frames.push(&s.frame);
                }
                let e = Envelope::Fanout { conv: self.conv.clone(), users, sender: own.map(|s| (s.user, s.except)) };
                log::debug!("group {}: fan-out to {node}: {e:?}", self.group);
                cluster.outbox.to_node(node, &e, &frames);
            }
        }
        self.deps.sessions.fanout_here(variants, sender);
    }

    /// One frame for some members, on every node.
    fn send_to_users(&mut self, users: Vec<UserId>, frame: &ServerFrame) {
        if !users.is_empty() {
            self.send(vec![(frame.encode().into(), users)], None);
        }
    }

    /// Delivers a durable message to the members whose history includes it.
    fn fan_out(&mut self, rec: &MessageRecord, carry: &Carry) {
        let origin = carry.origin;
        self.deps.observe_delivery(rec.ts);
        let wire = WireMessage::from(rec);
        // A reply's quote, for those who may read the quoted message and for those who may not
        // (they joined after it).
        let quote = rec.reply_to.map(|q| (q, Quote::of(q, carry.quoted.as_ref(), 0, i64::MAX, false)));
        // Exactly the members whose history includes this seq: joined before it, not left before it.
        let recipients: Vec<UserId> = self
            .state
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
        let mut by_variant: HashMap<(bool, bool, bool), Vec<UserId>> = HashMap::new();
        for u in recipients.iter().copied().filter(|u| *u != rec.sender) {
            let silent = self.quiet.contains(&u) && !mentioned.contains(&u);
            let sees_quote =
                quote.as_ref().is_none_or(|(q, _)| self.state.members.get(&u).is_none_or(|m| m.joined_seq < *q));
            by_variant.entry((silent, mentioned.contains(&u), sees_quote)).or_default().push(u);
        }
        let with_quote = |sees: bool| {
            let mut w = wire.clone();
            w.reply = quote.as_ref().map(
                |(q, visible)| {
                    if sees {
                        visible.clone()
                    } else {
                        Quote::of(*q, None, 0, i64::MAX, false)
                    }
                },
            );
            w
        };
        let variants: Vec<(Frame, Vec<UserId>)> = by_variant
            .into_iter()
            .map(|((silent, m, sees), users)| {
                (ServerFrame::Msg { msg: with_quote(sees), silent, mentioned: m }.encode().into(), users)
            })
            .collect();
        // The sender's other devices (or all of them for system messages).
        let sender = recipients.contains(&rec.sender).then(|| SenderCopy {
            user: rec.sender,
            frame: ServerFrame::Msg { msg: with_quote(true), silent: true, mentioned: false }.encode().into(),
            except: origin,
        });
        self.send(variants, sender);
        if rec.kind == MessageKind::Text && self.deps.push.installed() {
            // Push hook: every recipient but the sender; the service keeps the offline ones.
            let to: Vec<crate::push::PushRecipient> = recipients
                .iter()
                .filter(|u| **u != rec.sender)
                .map(|u| crate::push::PushRecipient {
                    user: *u,
                    quiet: self.quiet.contains(u),
                    mentioned: mentioned.contains(u),
                })
                .collect();
            self.deps.push.notify(crate::push::message_notice(rec, Some(self.group.0), to));
        }
        if !mentioned.is_empty() && rec.kind == MessageKind::Text {
            let (db, conv, seq) = (self.deps.db.clone(), self.conv.clone(), rec.seq);
            let users: Vec<i64> = mentioned.iter().filter(|u| **u != rec.sender).map(|u| u.0).collect();
            actix::spawn(async move {
                if let Err(e) = db.write(move |c| q::mark_mentioned(c, conv.as_str(), &users, seq)).await {
                    log::warn!(seq = seq; "mention marks not stored: {e}");
                }
            });
        }
    }

    /// Learns on which other nodes `users` are online (from Redis presence), in a cluster.
    fn locate(&mut self, users: Vec<UserId>, ctx: &mut Context<Self>) {
        let Some(cluster) = self.deps.cluster.clone() else { return };
        if users.is_empty() {
            return;
        }
        self.pending += 1;
        let find = async move { cluster.presence.nodes_of(&users).await };
        ctx.wait(find.into_actor(self).map(|res, act, ctx| {
            act.pending -= 1;
            match res {
                Ok(found) => act.add_online(found),
                Err(e) => log::warn!("group {}: where members are online not known ({e})", act.group),
            }
            stop_if_done(act, ctx);
        }));
    }

    fn add_online(&mut self, found: Vec<(UserId, String)>) {
        log::debug!("group {}: online elsewhere: {found:?}", self.group);
        let me = self.deps.cluster.as_ref().map(|c| c.me.clone()).unwrap_or_default();
        for (u, node) in found {
            if node != me && (self.state.members.contains_key(&u) || self.departed.contains_key(&u)) {
                self.online.entry(node).or_default().insert(u);
            }
        }
    }

    /// A system message (part of the group's sequence) caused by `by`; the future persists and
    /// delivers it.
    fn system(&mut self, by: UserId, body: serde_json::Value) -> ResponseActFuture<Self, ()> {
        let client_id = format!("sys-{}-{}", self.deps.clock.now_ms(), SYSTEM_IDS.fetch_add(1, Ordering::Relaxed));
        let rec = MessageRecord {
            conv: self.conv.clone(),
            sender: by,
            client_id,
            kind: MessageKind::System,
            body: Some(body.to_string()),
            ts: self.deps.clock.now_ms(),
            ..MessageRecord::default()
        };
        Box::pin(post(self, rec, None).map(|res, act, _| {
            if let Err(e) = res {
                log::warn!(group = act.group.0; "group {}: system message not stored: {e}", act.group);
            }
        }))
    }

    fn exec(&mut self, exec: Exec, ctx: &mut Context<Self>) {
        if self.changing {
            self.parked.push_back(exec);
            return;
        }
        let Exec { cmd, reply } = exec;
        let now = self.deps.clock.now_ms();
        match cmd {
            Command::Post {
                sender,
                device,
                client_id,
                body,
                mut mentions,
                mention_all,
                reply_to,
                attachment,
                forwarded_from,
            } => {
                let joined = match self.state.member(sender) {
                    Ok(m) => m.joined_seq,
                    Err(e) => return reply.send(Err(e)),
                };
                if let Some(answer) = replay(self, sender, &client_id) {
                    return later(self, ctx, reply, Box::pin(answer.map(|r, _, _| r.map(Reply::Acked))));
                }
                if let Err(e) = self.state.check_post(sender, &mentions, mention_all, now) {
                    return reply.send(Err(e));
                }
                if reply_to.is_some_and(|r| r <= joined || r > self.seq.max_seq()) {
                    return reply.send(Err(ChatError::InvalidReply));
                }
                mentions.sort();
                mentions.dedup();
                let rec = MessageRecord {
                    conv: self.conv.clone(),
                    sender,
                    client_id,
                    kind: MessageKind::Text,
                    body: Some(body),
                    mentions,
                    mention_all,
                    ts: now,
                    reply_to,
                    attachment,
                    forwarded_from,
                    ..MessageRecord::default()
                };
                let work = post(self, rec, Some(device));
                later(self, ctx, reply, Box::pin(work.map(|r, _, _| r.map(Reply::Acked))));
            }
            // Per-message delivery receipts are a 1:1 feature; groups keep read marks only.
            Command::Delivered { .. } => reply.send(Ok(Reply::Done)),
            Command::Read { user, device, seq } => {
                if let Err(e) = self.state.member(user) {
                    return reply.send(Err(e));
                }
                let max = self.seq.max_seq();
                let seq = seq.min(max);
                if seq < 1 {
                    return reply.send(Ok(Reply::Done));
                }
                let work = mark_read(&self.deps, &self.conv, user, seq).into_actor(self).map(move |res, act, _| {
                    let (before, read) = res?;
                    if read > before {
                        let mark =
                            ServerFrame::ReadMark { conv: act.conv.clone(), seq: read, unread: (max - read).max(0) };
                        act.deps.sessions.to_user(user, mark.encode().into(), Some(device));
                    }
                    Ok(Reply::Done)
                });
                later(self, ctx, reply, Box::pin(work));
            }
            Command::Recall { user, seq } => {
                if let Err(e) = self.state.member(user) {
                    return reply.send(Err(e));
                }
                let deps = self.deps.clone();
                let conv = self.conv.clone();
                let window = deps.settings.recall_window.as_millis() as i64;
                let turn = self.events.turn();
                let work = async move {
                    let _turn = turn.ready().await;
                    crate::conversation::recall(&deps, conv, user, seq, window).await
                };
                let work = work.into_actor(self).map(move |res, act, _| {
                    res?;
                    let frame = ServerFrame::Recalled { conv: act.conv.clone(), seq };
                    let readers = act.readers_of(seq);
                    act.send_to_users(readers, &frame);
                    Ok(Reply::Done)
                });
                later(self, ctx, reply, Box::pin(work));
            }
            Command::Typing { user } => {
                let check = self.state.member(user).map(|_| ()).and_then(|_| self.state.live().map(|_| ()));
                if let Err(e) = check {
                    return reply.send(Err(e));
                }
                let others = self.state.members.keys().copied().filter(|u| *u != user).collect();
                self.send_to_users(others, &ServerFrame::Typing { conv: self.conv.clone(), from: user });
                reply.send(Ok(Reply::Done));
            }
            Command::Refresh => {
                // Only do-not-disturb settings change outside the owner (everything else about
                // the group is changed here): re-read them.
                let load = load_state(self.deps.db.clone(), self.group, self.conv.clone());
                let work = load.into_actor(self).map(|res, act, _| {
                    match res {
                        Ok((_, _, quiet)) => act.quiet = quiet,
                        Err(e) => log::warn!("group {}: not refreshed: {e}", act.group),
                    }
                    Ok(Reply::Done)
                });
                later(self, ctx, reply, Box::pin(work));
            }
            Command::Online { node, users } => {
                self.add_online(users.into_iter().map(|u| (u, node.clone())).collect());
                reply.send(Ok(Reply::Done));
            }
            Command::Offline { node, users } => {
                if let Some(here) = self.online.get_mut(&node) {
                    for u in users {
                        here.remove(&u);
                    }
                    if here.is_empty() {
                        self.online.remove(&node);
                    }
                }
                reply.send(Ok(Reply::Done));
            }
            Command::Change { by, op } => self.change(by, op, reply, ctx),
            Command::Edit { user, client_id, seq, body } => {
                if let Err(e) = self.may_touch(user, seq, now) {
                    return reply.send(Err(e));
                }
                let (deps, conv) = (self.deps.clone(), self.conv.clone());
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
                        let readers = act.readers_of(seq);
                        act.send_to_users(readers, &frame);
                    }
                    Ok(Reply::Acked(Ack { id: client_id, conv: act.conv.clone(), seq, ts: at }))
                });
                later(self, ctx, reply, Box::pin(work));
            }
            Command::React { user, seq, emoji, on } => {
                if let Err(e) = self.may_touch(user, seq, now) {
                    return reply.send(Err(e));
                }
                let (at, turn) = (self.events.next(now), self.events.turn());
                let (deps, conv) = (self.deps.clone(), self.conv.clone());
                let e = emoji.clone();
                let work = async move {
                    let _turn = turn.ready().await;
                    apply_reaction(&deps, conv, seq, user, e, on, at).await
                }
                .into_actor(self)
                .map(move |res, act, _| {
                    // A change goes to every reader; one that changed nothing confirms the
                    // state to the reacting member's devices only.
                    let changed = res?;
                    let frame = ServerFrame::Reaction { conv: act.conv.clone(), seq, user, emoji, on, at };
                    let readers = if changed { act.readers_of(seq) } else { vec![user] };
                    act.send_to_users(readers, &frame);
                    Ok(Reply::Done)
                });
                later(self, ctx, reply, Box::pin(work));
            }
        }
    }

    /// Whether `user` may edit or react to message `seq` now: a member who can read it, not
    /// muted, in a group that is not dissolved.
    fn may_touch(&self, user: UserId, seq: i64, now: i64) -> Result<(), ChatError> {
        let joined = self.state.member(user)?.joined_seq;
        self.state.check_post(user, &[], false, now)?;
        if seq <= joined || seq > self.seq.max_seq() {
            return Err(ChatError::MessageNotFound);
        }
        Ok(())
    }

    /// The members whose history includes `seq`.
    fn readers_of(&self, seq: i64) -> Vec<UserId> {
        self.state.members.iter().filter(|(_, m)| m.joined_seq < seq).map(|(u, _)| *u).collect()
    }

    fn unpark(&mut self, ctx: &mut Context<Self>) {
        while !self.changing {
            let Some(e) = self.parked.pop_front() else { break };
            self.exec(e, ctx);
        }
    }

    /// Plans, writes and announces a change; nothing else is admitted until it is done.
    fn change(&mut self, by: UserId, op: GroupOp, reply: Answer, ctx: &mut Context<Self>) {
        let now = self.deps.clock.now_ms();
        let plan = match self.state.plan(by, &op, now) {
            Ok(p) => p,
            Err(e) => return reply.send(Err(e)),
        };
        if !self.life.may_write() {
            return reply.send(Err(ChatError::unavailable("this node lost its lease; retry")));
        }
        self.changing = true;
        // Nothing is admitted meanwhile, so the next seq is the first announcement's: the exact
        // join point of new members (they read what comes after the seq before it) and the
        // exact leave point of a leaving member (their announcement is the last they read).
        let next = self.seq.max_seq() + 1;
        let (db, group, epoch) = (self.deps.db.clone(), self.group, self.life.epoch());
        let invite = match &op {
            GroupOp::JoinByInvite { token } => Some(token.clone()),
            _ => None,
        };
        let (add, remove, friends_of) = (plan.add.clone(), plan.remove, plan.must_be_friends_of);
        let written_op = op.clone();
        let conv = self.conv.clone();
        let write = async move {
            db.write(move |c| {
                if let Some(e) = epoch {
                    if !owners::stale(c, &[(conv.as_str(), e)])?.is_empty() {
                        return Ok(Err(None));
                    }
                }
                // The link is used only by a join the group accepts.
                if let Some(token) = &invite {
                    if !add.is_empty() && !q::use_invite(c, token, now)? {
                        return Ok(Err(Some(ChatError::InviteUsedUp)));
                    }
                }
                if let Some(inviter) = friends_of {
                    let mine = friends::friend_ids(c, inviter.0)?;
                    if add.iter().any(|u| !mine.contains(&u.0)) {
                        return Ok(Err(Some(ChatError::InviteesNotFriends)));
                    }
                }
                match &written_op {
                    GroupOp::Update(u) => q::update(c, group.0, u, now)?,
                    GroupOp::Dissolve => q::dissolve(c, group.0, now)?,
                    GroupOp::Transfer { user } => q::transfer(c, group.0, by.0, user.0)?,
                    GroupOp::SetAdmin { user, on } => {
                        q::set_role(c, group.0, user.0, if *on { role::ADMIN } else { role::MEMBER })?
                    }
                    GroupOp::Mute { user, until } => q::set_mute(c, group.0, user.0, until.filter(|t| *t > now))?,
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
        let kicked = matches!(op, GroupOp::Remove { .. });
        let work = write.into_actor(self).then(
            move |res: Result<Result<Option<Group>, Option<ChatError>>, DbError>, act, ctx| {
                let info = match res {
                    Ok(Ok(info)) => info,
                    Ok(Err(Some(e))) => return Box::pin(fut::ready(Err(e))) as ResponseActFuture<Self, _>,
                    Ok(Err(None)) => {
                        // Another node owns the group now.
                        report_fenced(&act.life);
                        return Box::pin(fut::ready(Err(ChatError::unavailable(
                            "the group moved to another node; retry",
                        ))));
                    }
                    Err(e) => return Box::pin(fut::ready(Err(e.into()))),
                };
                act.state.info = info;
                act.state.apply(by, &op, &plan, next - 1, now);
                // Where the new members are online, before their first message goes out.
                act.locate(plan.add.clone(), ctx);
                act.announce(by, plan, next, kicked)
            },
        );
        self.pending += 1;
        ctx.spawn(work.map(move |res, act, ctx| {
            act.pending -= 1;
            act.changing = false;
            reply.send(res.map(|()| Reply::Done));
            act.unpark(ctx);
            stop_if_done(act, ctx);
        }));
    }

    /// Announces a written change in order and resolves once the announcements are durable, so
    /// a `sync` right after the answer sees them. A removed member still gets their `removed`
    /// message, then nothing more.
    fn announce(
        &mut self,
        by: UserId,
        plan: Plan,
        next: i64,
        kicked: bool,
    ) -> ResponseActFuture<Self, Result<(), ChatError>> {
        let mut chain: ResponseActFuture<Self, ()> = Box::pin(fut::ready(()));
        for ev in plan.events {
            let step = self.system(by, ev);
            chain = Box::pin(chain.then(move |_, _, _| step));
        }
        let removed = plan.remove;
        // The leaving member is out of the fan-out from the next seq on; their leave point is
        // their announcement (`departed` keeps them until it is delivered).
        if let Some(r) = removed {
            self.state.members.remove(&r);
            self.departed.insert(r, next);
        }
        Box::pin(chain.map(move |_, act, _| {
            if let (Some(r), true) = (removed, kicked) {
                let frame = ServerFrame::Event { event: "group_removed".into(), data: json!({"group_id": act.group}) };
                act.deps.sessions.to_user(r, frame.encode().into(), None);
            }
            Ok(())
        }))
    }
}

impl Lifecycle for GroupActor {
    fn life(&mut self) -> &mut Life {
        &mut self.life
    }

    fn busy(&self) -> bool {
        self.changing || self.pending > 0 || !self.parked.is_empty() || self.seq.busy()
    }

    fn deps(&self) -> &OwnerDeps {
        &self.deps
    }

    fn pending(&mut self) -> &mut usize {
        &mut self.pending
    }
}

impl Sequenced for GroupActor {
    fn sequencer(&mut self) -> &mut Sequencer {
        &mut self.seq
    }

    fn deliver(&mut self, rec: &MessageRecord, carry: &Carry) {
        self.fan_out(rec, carry);
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
            let online = match &deps.cluster {
                Some(c) => {
                    let users: Vec<UserId> = members.iter().map(|m| UserId(m.user_id)).collect();
                    c.presence.nodes_of(&users).await.unwrap_or_else(|e| {
                        log::warn!("group {group}: where members are online not known ({e})");
                        Vec::new()
                    })
                }
                None => Vec::new(),
            };
            Ok::<_, String>((info, members, quiet, max, recent, online))
        };
        // Nothing else is handled until the state is loaded: commands wait in the mailbox.
        ctx.wait(load.into_actor(self).map(|res, act, ctx| match res {
            Ok((info, members, quiet, max, recent, online)) => {
                act.seq.seed(max, recent);
                act.set_state(info, members, quiet);
                act.add_online(online);
                if act.life.ctx.takeover {
                    let all = act.state.members.keys().copied().collect();
                    let frame = resync_frame(&act.conv);
                    act.send_to_users(all, &frame);
                }
            }
            Err(e) => {
                log::error!(group = act.group.0; "group {} failed to start: {e}", act.group);
                ctx.stop();
            }
        }));
        watch_idle(ctx, self.deps.settings.conversation_idle);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        report_stopped(&self.life);
    }
}

impl Handler<Exec> for GroupActor {
    type Result = ();

    fn handle(&mut self, msg: Exec, ctx: &mut Context<Self>) {
        self.life.touch();
        self.exec(msg, ctx);
    }
}

impl Handler<Stop> for GroupActor {
    type Result = ();

    fn handle(&mut self, msg: Stop, ctx: &mut Context<Self>) {
        stop(self, msg.0, ctx);
    }
}

/// The leave ceiling and join floor of a user in a group conversation, from the database:
/// `None` when the user never belonged to the group.
pub async fn access(db: &crate::db::Db, group: GroupId, user: UserId) -> Result<Option<(i64, Option<i64>)>, DbError> {
    let m = db.read(move |c| q::member(c, group.0, user.0)).await?;
    Ok(m.map(|m| (m.joined_seq, m.left_seq)))
}
