//! Helpers shared by the actors crate's integration tests.

use schema::message::{MessageKind, MessageRecord};
use schema::{ConvId, UserId};

/// The timestamp of seq 0 in test messages (a message's `ts` is `TS0 + seq`).
pub const TS0: i64 = 1_764_000_000_000;

/// A text message with the ordinary defaults.
pub fn text(conv: &ConvId, seq: i64, sender: i64, client_id: &str, body: &str) -> MessageRecord {
    MessageRecord {
        conv: conv.clone(),
        seq,
        sender: UserId(sender),
        client_id: client_id.to_owned(),
        kind: MessageKind::Text,
        body: Some(body.to_owned()),
        mentions: Vec::new(),
        mention_all: false,
        ts: TS0 + seq,
        recalled_at: None,
        ..MessageRecord::default()
    }
}
