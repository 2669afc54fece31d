//! Events pushed to users' online devices ("you have a friend request", "accepted", "removed"),
//! and the hook that tells a conversation's owner that a friendship or a setting changed.
//!
//! HTTP handlers call [`Events::push`] once per event and recipient; nothing else is needed to
//! reach users on every device.

use actix::Recipient;
use actors::command::Command;
use actors::delivery::DeliverToUser;
use actors::entity::Entities;
use schema::protocol::ServerFrame;
use schema::{ConvId, UserId};
use serde_json::Value;

/// The event sink.
#[derive(Clone)]
pub struct Events {
    deliver: Recipient<DeliverToUser>,
    entities: Entities,
}

impl Events {
    /// Events delivered through the node's session registry; settings changes reach owners
    /// through its entity registry.
    pub fn new(deliver: Recipient<DeliverToUser>, entities: Entities) -> Self {
        Events { deliver, entities }
    }

    /// Pushes `event` with `data` to every online device of `to`.
    pub fn push(&self, to: UserId, event: &'static str, data: Value) {
        let frame = ServerFrame::Event { event: event.to_owned(), data }.encode();
        if self.deliver.try_send(DeliverToUser { user: to, frame: frame.into(), except: None }).is_err() {
            log::warn!("session registry overloaded; event {event} for user {to} dropped");
        }
    }

    /// A member's settings of a group conversation changed: resolves once its owner (on
    /// whichever node) re-read them.
    pub async fn conversation_changed(&self, conv: ConvId) {
        if let Err(e) = self.entities.route(conv, Command::Refresh).await {
            log::warn!("conversation not refreshed: {e}");
        }
    }

    /// The friendship of `a` and `b`, or a setting of their conversation, changed: resolves once
    /// a running owner of their conversation has re-read it, so the caller's answer happens
    /// after it.
    pub async fn pair_changed(&self, a: UserId, b: UserId) {
        if let Err(e) = self.entities.route(ConvId::direct(a, b), Command::Refresh).await {
            log::warn!("conversation of {a} and {b} not refreshed: {e}");
        }
    }
}
