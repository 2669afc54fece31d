//! The hook through which conversation owners hand push notifications to the node's push
//! service (`server::push`). The owner of a conversation is the one activation in the cluster,
//! so what it hands over is decided once per message, whichever node the sender is on; the
//! service then keeps only the recipients with no online session anywhere, applies their
//! settings, coalesces and delivers.
//!
//! [`PushHook`] is empty until the server installs its service ([`PushHook::install`]): an
//! owner with no service installed (tests of the actors alone, a node with push off) pushes
//! nothing.

use std::sync::{Arc, OnceLock};

use schema::{ConvId, UserId};

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// A message in a 1:1 or group conversation.
    Message,
    /// A friend request.
    FriendRequest,
    /// Being added to a group.
    GroupInvite,
}

impl NoticeKind {
    /// The wire name (`type` of the pushed JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Message => "message",
            NoticeKind::FriendRequest => "friend_request",
            NoticeKind::GroupInvite => "group_invite",
        }
    }
}

/// One recipient of a notice, with what the owner knows of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushRecipient {
    pub user: UserId,
    /// The user silenced this conversation or its sender (conversation or friend
    /// do-not-disturb, a muted group).
    pub quiet: bool,
    /// The user is `@`-mentioned (or `@all`).
    pub mentioned: bool,
}

/// One event that may push to its recipients' devices.
#[derive(Debug, Clone, PartialEq)]
pub struct PushNotice {
    pub kind: NoticeKind,
    /// The notification id, unique per event (`<conv>/<seq>` for a message): the idempotency
    /// key of its deliveries.
    pub id: String,
    /// The conversation it belongs to (coalescing is per device and conversation).
    pub conv: Option<ConvId>,
    pub sender: UserId,
    /// The message body (sent only to recipients who allowed previews).
    pub body: Option<String>,
    /// The group, for group messages and invites.
    pub group: Option<i64>,
    /// The message's sequence number in its conversation (0 for other notices): coalescing
    /// keeps the newest.
    pub seq: i64,
    pub recipients: Vec<PushRecipient>,
    /// When the event happened (ms since the epoch).
    pub ts: i64,
}

/// Where notices go.
pub trait PushSink: Send + Sync {
    /// Takes a notice; must not block (the service queues it).
    fn notify(&self, notice: PushNotice);
}

/// The push service of the node, once installed; shared by every owner.
#[derive(Clone, Default)]
pub struct PushHook(Arc<OnceLock<Arc<dyn PushSink>>>);

impl PushHook {
    /// Installs the service (the first call wins).
    pub fn install(&self, sink: Arc<dyn PushSink>) {
        let _ = self.0.set(sink);
    }

    /// Hands `notice` to the service, if one is installed and it has recipients.
    pub fn notify(&self, notice: PushNotice) {
        if notice.recipients.is_empty() {
            return;
        }
        if let Some(sink) = self.0.get() {
            sink.notify(notice);
        }
    }

    /// Whether a service is installed.
    pub fn installed(&self) -> bool {
        self.0.get().is_some()
    }
}

/// The notice of a durable text message `rec` (of group `group`, if one) for `recipients`.
pub fn message_notice(
    rec: &schema::message::MessageRecord,
    group: Option<i64>,
    recipients: Vec<PushRecipient>,
) -> PushNotice {
    PushNotice {
        kind: NoticeKind::Message,
        id: format!("{}/{}", rec.conv, rec.seq),
        conv: Some(rec.conv.clone()),
        sender: rec.sender,
        body: rec.body.clone(),
        group,
        seq: rec.seq,
        recipients,
        ts: rec.ts,
    }
}
