//! `SessionRegistry`: the node's map of online sessions, user -> device -> session, and local
//! delivery to them.
//!
//! Delivery never grows memory without bound: frames go to sessions with `try_send` into their
//! bounded mailboxes, and a session whose mailbox is full is told to disconnect (the slow-consumer
//! rule); its messages stay durable and it catches up with `sync` after reconnecting.
//!
//! In a cluster a frame for a user also goes to the user's channel ([`Outbox::to_user`]) for
//! their sessions on other nodes, and sessions coming and going are reported as
//! [`SessionChange`]s (presence in Redis, the owners of the user's groups).

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use actix::prelude::*;
use schema::{DeviceId, UserId};

use crate::cluster::outbox::Outbox;
use crate::delivery::{
    BroadcastLocal, DeliverLocal, DeliverToUser, DeliverToUsers, Fanout, Frame, GetStats, Kick, KickAll, KickReason,
    KickUser, ListAllSessions, ListOnline, ListSessions, Push, Register, RegistryStats, SessionChange, SessionHandle,
    Sessions, Unregister,
};

/// Capacity of the registry's own mailbox.
pub const REGISTRY_MAILBOX: usize = 65_536;

/// The registry of this node's sessions.
pub struct SessionRegistry {
    users: HashMap<UserId, HashMap<DeviceId, SessionHandle>>,
    changes: Recipient<SessionChange>,
    outbox: Outbox,
    dropped_slow: u64,
}

impl SessionRegistry {
    /// A registry that reports sessions coming and going to `changes` and publishes frames for
    /// other nodes through `outbox` ([`Outbox::none`] on a single node).
    pub fn new(changes: Recipient<SessionChange>, outbox: Outbox) -> Self {
        SessionRegistry { users: HashMap::new(), changes, outbox, dropped_slow: 0 }
    }

    /// The recipients owners deliver through.
    pub fn sessions(addr: &Addr<SessionRegistry>) -> Sessions {
        Sessions {
            to_user: addr.clone().recipient(),
            to_users: addr.clone().recipient(),
            local: addr.clone().recipient(),
            fanout: addr.clone().recipient(),
        }
    }

    /// Pushes `frame` to the sessions of `user` here (but `except`); false when the user has none.
    fn send_to(&mut self, user: UserId, frame: &Frame, except: Option<DeviceId>) -> bool {
        let Some(devices) = self.users.get_mut(&user) else { return false };
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
                log::warn!(user = user.0, device = device.0;
                    "user {user} device {device}: session mailbox full; disconnecting a slow consumer");
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
            let last_local = last && i + 1 == gone.len();
            self.changes.do_send(SessionChange::Down { user, device: *device, since: *since, last_local });
        }
        true
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
        let first_local = devices.is_empty();
        let since = msg.session.since;
        if let Some(old) = devices.insert(msg.device, msg.session) {
            old.kick.do_send(Kick(KickReason::Replaced));
        }
        self.changes.do_send(SessionChange::Up { user: msg.user, device: msg.device, since, first_local });
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
        let last_local = devices.is_empty();
        if last_local {
            self.users.remove(&msg.user);
        }
        self.changes.do_send(SessionChange::Down { user: msg.user, device: msg.device, since: s.since, last_local });
    }
}

impl Handler<DeliverToUser> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: DeliverToUser, _: &mut Context<Self>) {
        self.send_to(msg.user, &msg.frame, msg.except);
        self.outbox.to_user(msg.user, &msg.frame, msg.except);
    }
}

impl Handler<DeliverToUsers> for SessionRegistry {
    type Result = ();

    fn handle(&mut self, msg: DeliverToUsers, _: &mut Context<Self>) {
        for u in &msg.users {
            self.send_to(*u, &msg.frame, None);
            if msg.cluster {
                self.outbox.to_user(*u, &msg.frame, None);
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

impl Handler<Fanout> for SessionRegistry {
    type Result = Vec<UserId>;

    fn handle(&mut self, msg: Fanout, _: &mut Context<Self>) -> Vec<UserId> {
        let mut absent = Vec::new();
        for (frame, users) in &msg.variants {
            for u in users {
                if !self.send_to(*u, frame, None) {
                    absent.push(*u);
                }
            }
        }
        if let Some(s) = msg.sender {
            if !self.send_to(s.user, &s.frame, s.except) {
                absent.push(s.user);
            }
        }
        absent
    }
}

impl Handler<KickUser> for SessionRegistry {
    type Result = usize;

    fn handle(&mut self, msg: KickUser, _: &mut Context<Self>) -> usize {
        if msg.cluster {
            self.outbox.kick(msg.user, msg.device, msg.reason);
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
