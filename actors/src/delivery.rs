//! What is said to and about WebSocket sessions: the frames pushed to them, kicks, and the
//! delivery requests the node's `SessionRegistry` serves (to one user, to many, to variants of a
//! group's fan-out), plus the session comings and goings presence hears of.
//!
//! A bottom module: messages only, no actor. Whoever sends these holds a `Recipient<_>` of the
//! message, not the address of the actor behind it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix::prelude::*;
use bytestring::ByteString;
use schema::{DeviceId, UserId};
use serde::{Deserialize, Serialize};

/// An encoded server frame, shared by every recipient (encoded once).
pub type Frame = ByteString;

/// Push a frame to a session.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Push(pub Frame);

/// Why a session is told to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// A device's session came or went on this node: what presence (and, in a cluster, Redis and
/// the owners of the user's groups) must hear of.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub enum SessionChange {
    /// A session registered; `first_local`: the user's first on this node.
    Up { user: UserId, device: DeviceId, since: i64, first_local: bool },
    /// A session closed; `last_local`: the user has none left on this node.
    Down { user: UserId, device: DeviceId, since: i64, last_local: bool },
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
/// node's sessions only.
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

/// One conversation's fan-out on this node: each frame goes to its users' sessions here, and the
/// sender's copy (if any) to the sender's sessions but the sending device. Answers the users
/// that have no session on this node (the owner stops sending their frames here).
#[derive(Debug, Message)]
#[rtype(result = "Vec<UserId>")]
pub struct Fanout {
    pub variants: Vec<(Frame, Vec<UserId>)>,
    pub sender: Option<SenderCopy>,
}

/// The sender's own copy of a message, for their other devices.
#[derive(Debug, Clone)]
pub struct SenderCopy {
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

/// The recipients conversation owners deliver through (the node's `SessionRegistry`).
#[derive(Clone)]
pub struct Sessions {
    pub to_user: Recipient<DeliverToUser>,
    pub to_users: Recipient<DeliverToUsers>,
    pub local: Recipient<DeliverLocal>,
    pub fanout: Recipient<Fanout>,
}

impl Sessions {
    /// A frame for every device of `user` on every node (but `except`). Dropped with a warning
    /// when the registry is overloaded: clients find the gap by seq and `sync`.
    pub fn to_user(&self, user: UserId, frame: Frame, except: Option<DeviceId>) {
        if self.to_user.try_send(DeliverToUser { user, frame, except }).is_err() {
            log::warn!("session registry overloaded; a frame for user {user} was dropped (clients catch up with sync)");
        }
    }

    /// This node's share of a fan-out (see [`Fanout`]); what it answers is not needed here.
    pub fn fanout_here(&self, variants: Vec<(Frame, Vec<UserId>)>, sender: Option<SenderCopy>) {
        if self.fanout.try_send(Fanout { variants, sender }).is_err() {
            log::warn!("session registry overloaded; a fan-out was dropped (clients catch up with sync)");
        }
    }
}

/// A user came online (first device anywhere) or went offline (last device anywhere): their
/// friends are told.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct PresenceChanged {
    pub user: UserId,
    pub online: bool,
}
