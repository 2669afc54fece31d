//! Events pushed to users' online devices ("you have a friend request", "accepted", "removed").
//!
//! HTTP handlers call [`Events::push`] once per event and recipient; nothing else is needed to
//! reach users. Until WebSocket sessions exist the events are only logged at debug level.

use schema::UserId;
use serde::Serialize;
use serde_json::Value;

/// An event for one user's devices.
#[derive(Debug, Clone, Serialize)]
pub struct UserEvent {
    /// Event name, such as `friend_request`.
    pub event: &'static str,
    /// Event payload.
    pub data: Value,
}

/// The event sink.
#[derive(Clone, Default)]
pub struct Events {}

impl Events {
    /// Pushes `event` with `data` to every online device of `to`.
    pub fn push(&self, to: UserId, event: &'static str, data: Value) {
        let ev = UserEvent { event, data };
        log::debug!("event for user {to}: {}", serde_json::to_string(&ev).unwrap_or_default());
    }
}
