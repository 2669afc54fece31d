//! `SessionRegistry`: the node's map of online sessions, user -> device -> session, and local
//! delivery to them.
//!
//! Delivery never grows memory without bound: frames go to sessions with `try_send` into their
//! bounded mailboxes, and a session whose mailbox is full is told to disconnect (the slow-consumer
//! rule); its messages stay durable and it catches up with `sync` after reconnecting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use bytestring::ByteString;
use schema::{DeviceId, UserId};

use crate::cluster::bus::{BusOut, ClusterBus};
use crate::presence::{Presence, PresenceChanged};

/// Capacity of the registry's own mailbox.
pub const REGISTRY_MAILBOX: usize = 65_536;

/// An encoded server frame, shared by every recipient (encoded once).
pub type Frame = ByteString;

/// Push a frame to a session.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Push(pub Frame);

/// Why a session is told to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KickReason {
    /// The same device connected again.
    Replaced,
    /// Its mailbox was full: the client does not read fast enough.
    SlowConsumer,
    /// Its token was revoked (logout, device removed, ban).
    Revoked,
    /// An admin kicked it.
    Admin,
    /// The node is shutting down; reconnect elsewhere.
    Restarting,
}

/// Tell a session to close.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Kick(pub KickReason);

/// How the registry reaches one session.
#[derive(Clone)]
pub struct SessionHandle {
    /// Unique per connection on this node.
    pub id: u64,
    /// Frames.
    pub push: Recipient<Push>,
    /// Control.
    pub kick: Recipient<Kick>,
    /// When it connected (ms since the epoch).
    pub since: i64,
    /// Set when the session fell behind: it must drop what is still queued and close at once,
    /// so the client never sees a stream with a hole in it (it reconnects and syncs instead).
    pub dropped: Arc<AtomicBool>,
}

/// A session connected.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Register {
    pub user: UserId,
    pub device: DeviceId,
    pub session: SessionHandle,
}

/// A session closed.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Unregister {
    pub user: UserId,
    pub device: DeviceId,
    pub session_id: u64,
}

/// Deliver a frame to every online device of `user` (but `except`), on every node: local
/// sessions get it at once and, in a cluster, it is published on the user's channel.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DeliverToUser {
    pub user: UserId,
    pub frame: Frame,
    pub except: Option<DeviceId>,
}

/// Deliver a frame to every online device of several users. `cluster: false` reaches this
/// node's sessions only (group fan-out publishes once per group instead of once per member).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DeliverToUsers {
    pub users: Vec<UserId>,
    pub frame: Frame,
    pub cluster: bool,
}

/// A frame that arrived from another node for `user`: delivered to local sessions only.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct DeliverLocal {
    pub user: UserId,
    pub frame: Frame,
    pub except: Option<DeviceId>,
}

/// Kick sessions of a user: one device, or all when `device` is `None`. With `cluster` the kick
/// is also published to the nodes holding the user's other sessions. Returns the number of
/// local sessions told to close.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct KickUser {
    pub user: UserId,
    pub device: Option<DeviceId>,
    pub reason: KickReason,
    pub cluster: bool,
}

/// Delivers a frame to every local session (`users: None`) or to the local sessions of `users`.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct BroadcastLocal {
    pub users: Option<Vec<UserId>>,
    pub frame: Frame,
}

/// The local sessions of a user: (device, connected since ms).
#[derive(Debug, Message)]
#[rtype(result = "Vec<(DeviceId, i64)>")]
pub struct ListSessions {
    pub user: UserId,
}

/// Every local session: (user, device, connected since ms).
#[derive(Debug, Message)]
#[rtype(result = "Vec<(UserId, DeviceId, i64)>")]
pub struct ListAllSessions;

/// Connects the registry to the cluster bus (once, at start-up).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetBus(pub Addr<ClusterBus>);

/// Kick every session of this node (drain at shutdown); returns how many.
#[derive(Debug, Message)]
#[rtype(result = "usize")]
pub struct KickAll {
    pub reason: KickReason,
}

/// Which of `users` have a session here.
#[derive(Debug, Message)]
#[rtype(result = "Vec<UserId>")]
pub struct ListOnline {
    pub users: Vec<UserId>,
}

/// Counts for metrics and admin views.
#[derive(Debug, Message)]
#[rtype(result = "RegistryStats")]
pub struct GetStats;

/// Session and user counts.
#[derive(Debug, Clone, Copy, Default, MessageResponse)]
pub struct RegistryStats {
    pub sessions: usize,
    pub users: usize,
    pub dropped_slow: u64,
}

/// The registry of this node's sessions.
pub struct SessionRegistry {
    users: HashMap<UserId, HashMap<DeviceId, SessionHandle>>,
    presence: Addr<Presence>,
    bus: Option<Addr<ClusterBus>>,
    dropped_slow: u64,
}

impl SessionRegistry {
    /// A registry that reports online/offline transitions to `presence`.
    pub fn new(presence: Addr<Presence>) -> Self {
        SessionRegistry { users: HashMap::new(), presence, bus: None, dropped_slow: 0 }
    }

    fn send_to(&mut self, user: UserId, frame: &Frame, except: Option<DeviceId>) {
        let Some(devices) = self.users.get_mut(&user) else { return };
        let mut slow = Vec::new();
        for (device, s) in devices.iter() {
            if Some(*device) == except {
                continue;
            }
            if s.push.try_send(Push(frame.clone())).is_err() {
                slow.push(*device);
            }
        }
        let mut gone = Vec::new();
        for device in slow {
            // It missed a frame: it gets no more (it will reconnect and sync).
            if let Some(s) = devices.remove(&device) {
                self.dropped_slow += 1;
                log::warn!("user {user} device {device}: session mailbox full; disconnecting a slow consumer");
                s.dropped.store(true, Ordering::Relaxed);
                s.kick.do_send(Kick(KickReason::SlowConsumer));
                gone.push((device, s.since));
            }
        }
        let last = devices.is_empty();
        if last {
            self.users.remove(&user);
        }
        for (i, (device, since)) in gone.iter().enumerate() {
            self.device_down(user, *device, *since, last && i + 1 == gone.len());
        }
    }

    /// A device's session went away; `last`: the user has no other session here.
    fn device_down(&self, user: UserId, device: DeviceId, since: i64, last: bool) {
        match &self.bus {
            Some(bus) => bus.do_send(BusOut::DeviceDown { user, device, since, last_local: last }),
            None if last => self.presence.do_send(PresenceChanged { user, online: false }),
            None => {}
        }
    }

    fn kick_local(&self, user: UserId, device: Option<DeviceId>, reason: KickReason) -> usize {
        let Some(devices) = self.users.get(&user) else { return 0 };
        let mut n = 0;
        for (d, s) in devices {
            if device.is_none_or(|x| x == *d) {
                s.kick.do_send(Kick(reason));
                n += 1;
            }
        }
        n
    }
}

impl Actor for SessionRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(REGISTRY_MAILBOX);
    }
}

impl Handler<Register> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Register, _: &mut Context<Self>) {
        let devices = self.users.entry(msg.user).or_default();
        let first = devices.is_empty();
        let since = msg.session.since;
        if let Some(old) = devices.insert(msg.device, msg.session) {
            old.kick.do_send(Kick(KickReason::Replaced));
        }
        match &self.bus {
            Some(bus) => {
                bus.do_send(BusOut::DeviceUp { user: msg.user, device: msg.device, since, first_local: first })
            }
            None if first => self.presence.do_send(PresenceChanged { user: msg.user, online: true }),
            None => {}
        }
    }
}

impl Handler<Unregister> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: Unregister, _: &mut Context<Self>) {
        let Some(devices) = self.users.get_mut(&msg.user) else { return };
        if devices.get(&msg.device).is_none_or(|s| s.id != msg.session_id) {
            return;
        }
        let Some(s) = devices.remove(&msg.device) else { return };
        let last = devices.is_empty();
        if last {
            self.users.remove(&msg.user);
        }
        self.device_down(msg.user, msg.device, s.since, last);
    }
}

impl Handler<DeliverToUser> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: DeliverToUser, _: &mut Context<Self>) {
        self.send_to(msg.user, &msg.frame, msg.except);
        if let Some(bus) = &self.bus {
            bus.do_send(BusOut::ToUser { user: msg.user, frame: msg.frame, except: msg.except });
        }
    }
}

impl Handler<DeliverToUsers> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: DeliverToUsers, _: &mut Context<Self>) {
        for u in &msg.users {
            self.send_to(*u, &msg.frame, None);
        }
        if let (true, Some(bus)) = (msg.cluster, &self.bus) {
            for user in msg.users {
                bus.do_send(BusOut::ToUser { user, frame: msg.frame.clone(), except: None });
            }
        }
    }
}

impl Handler<DeliverLocal> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: DeliverLocal, _: &mut Context<Self>) {
        self.send_to(msg.user, &msg.frame, msg.except);
    }
}

impl Handler<KickUser> for SessionRegistry {
    type Result = usize;

    fn handle(&mut self, msg: KickUser, _: &mut Context<Self>) -> usize {
        if let (true, Some(bus)) = (msg.cluster, &self.bus) {
            bus.do_send(BusOut::Kick { user: msg.user, device: msg.device, reason: msg.reason });
        }
        self.kick_local(msg.user, msg.device, msg.reason)
    }
}

impl Handler<BroadcastLocal> for SessionRegistry {
    type Result = usize;

    fn handle(&mut self, msg: BroadcastLocal, _: &mut Context<Self>) -> usize {
        let users: Vec<UserId> = match msg.users {
            Some(u) => u,
            None => self.users.keys().copied().collect(),
        };
        let mut n = 0;
        for u in users {
            n += self.users.get(&u).map_or(0, HashMap::len);
            self.send_to(u, &msg.frame, None);
        }
        n
    }
}

impl Handler<ListSessions> for SessionRegistry {
    type Result = Vec<(DeviceId, i64)>;

    fn handle(&mut self, msg: ListSessions, _: &mut Context<Self>) -> Vec<(DeviceId, i64)> {
        let mut v: Vec<(DeviceId, i64)> =
            self.users.get(&msg.user).map(|d| d.iter().map(|(d, s)| (*d, s.since)).collect()).unwrap_or_default();
        v.sort_unstable();
        v
    }
}

impl Handler<ListAllSessions> for SessionRegistry {
    type Result = Vec<(UserId, DeviceId, i64)>;

    fn handle(&mut self, _: ListAllSessions, _: &mut Context<Self>) -> Vec<(UserId, DeviceId, i64)> {
        self.users.iter().flat_map(|(u, d)| d.iter().map(move |(d, s)| (*u, *d, s.since))).collect()
    }
}

impl Handler<SetBus> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: SetBus, _: &mut Context<Self>) {
        self.bus = Some(msg.0);
    }
}

impl Handler<KickAll> for SessionRegistry {
    type Result = usize;

    fn handle(&mut self, msg: KickAll, _: &mut Context<Self>) -> usize {
        let mut n = 0;
        for s in self.users.values().flat_map(HashMap::values) {
            s.kick.do_send(Kick(msg.reason));
            n += 1;
        }
        n
    }
}

impl Handler<ListOnline> for SessionRegistry {
    type Result = Vec<UserId>;

    fn handle(&mut self, msg: ListOnline, _: &mut Context<Self>) -> Vec<UserId> {
        msg.users.into_iter().filter(|u| self.users.contains_key(u)).collect()
    }
}

impl Handler<GetStats> for SessionRegistry {
    type Result = RegistryStats;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> RegistryStats {
        RegistryStats {
            sessions: self.users.values().map(HashMap::len).sum(),
            users: self.users.len(),
            dropped_slow: self.dropped_slow,
        }
    }
}
