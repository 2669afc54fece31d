//! The stored message: one shape for every message store (SQL rows and MongoDB documents).

use serde::{Deserialize, Serialize};

use crate::ids::{ConvId, UserId};

/// What a message is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// Text written by a user (with an attachment, the text is its caption and may be empty).
    #[default]
    Text,
    /// A system message in a group's sequence (joined, left, renamed, ...); `body` holds JSON.
    System,
}

impl MessageKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::System => "system",
        }
    }

    /// Parses a stored name; unknown names read as text rather than failing a whole page.
    pub fn parse(s: &str) -> Self {
        match s {
            "system" => MessageKind::System,
            _ => MessageKind::Text,
        }
    }
}

/// What an attachment is (each kind has its own size limit).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    /// A picture (it has a width and a height, and a thumbnail).
    Image,
    /// A voice note.
    Voice,
    /// Any other file.
    #[default]
    File,
}

impl AttachmentKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            AttachmentKind::Image => "image",
            AttachmentKind::Voice => "voice",
            AttachmentKind::File => "file",
        }
    }

    /// Parses a stored name (unknown names read as `file`).
    pub fn parse(s: &str) -> Self {
        match s {
            "image" => AttachmentKind::Image,
            "voice" => AttachmentKind::Voice,
            _ => AttachmentKind::File,
        }
    }
}

/// An uploaded file a message carries (a copy of the upload's facts at send time).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct Attachment {
    /// The upload's id (`GET /api/v1/uploads/{id}` serves it to the conversation's members).
    pub id: String,
    pub kind: AttachmentKind,
    /// The file name, sanitised.
    pub name: String,
    /// The content type, sniffed from the bytes.
    pub mime: String,
    /// Bytes.
    pub size: i64,
    /// Pixels (images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<i64>,
    /// A thumbnail exists (`GET /api/v1/uploads/{id}/thumb`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thumb: bool,
}

/// A message as persisted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// The conversation.
    pub conv: ConvId,
    /// Position in the conversation, from 1, increasing.
    pub seq: i64,
    /// Who sent it (0 for system messages without an actor).
    pub sender: UserId,
    /// The sender's id for dedup of resends (unique per conversation and sender).
    pub client_id: String,
    /// Text or system.
    pub kind: MessageKind,
    /// The text; `None` once recalled.
    pub body: Option<String>,
    /// Mentioned users (groups).
    #[serde(default)]
    pub mentions: Vec<UserId>,
    /// `@all` (groups, owner and admins only).
    #[serde(default)]
    pub mention_all: bool,
    /// Server time of acceptance, ms since the Unix epoch.
    pub ts: i64,
    /// When it was recalled, if it was.
    pub recalled_at: Option<i64>,
    /// The seq of the message of the same conversation it replies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<i64>,
    /// A forward: who sent the message it copies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_from: Option<UserId>,
    /// The file it carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<Attachment>,
    /// When its body was last edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    /// The client id of the edit that wrote the body (a resent edit is recognised by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_id: Option<String>,
}

/// One user's reaction to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    pub seq: i64,
    pub user: UserId,
    pub emoji: String,
    /// When it was added.
    pub at: i64,
}

/// The outcome of appending one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Stored as given.
    Stored(MessageRecord),
    /// The same (conv, sender, client id) was stored before; this is that message.
    Duplicate(MessageRecord),
    /// Not stored (or, on a store without transactions, stored but not to be acked): the
    /// conversation has a newer owner than the one that wrote it ([`Fence`]). This is the
    /// message as it was given.
    Fenced(MessageRecord),
}

impl Appended {
    /// The message this outcome is about: for `Stored` and `Duplicate` the one that is durable
    /// for its client id.
    pub fn record(&self) -> &MessageRecord {
        match self {
            Appended::Stored(m) | Appended::Duplicate(m) | Appended::Fenced(m) => m,
        }
    }
}

/// The owner epoch a batch's messages of one conversation were sequenced under. The store
/// writes them only while that is still the conversation's epoch in the SQL database
/// (`entity_owners`), in the same transaction as the check, so an owner that lost the
/// conversation to another node (paused, partitioned, its lease expired) can never write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The conversation.
    pub conv: ConvId,
    /// The writer's epoch for it.
    pub epoch: i64,
}

/// Which page of a conversation to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// Messages with seq > n, oldest first.
    After(i64),
    /// Messages with seq < n, returned oldest first (the page just before n).
    Before(i64),
}

/// One conversation a search may read, and the seqs of it its reader may see: `(floor, ceiling]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchScope {
    /// The conversation.
    pub conv: ConvId,
    /// Seqs at or below this are not the reader's (cleared history, before they joined).
    pub floor: i64,
    /// Seqs above this are not the reader's (after they left).
    pub ceiling: i64,
}

/// Where a page of search results starts: strictly older than this message in the results' order
/// (`ts` descending, then conversation id, then seq, both descending).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchCursor {
    /// The last result's `ts`.
    pub ts: i64,
    /// Its conversation.
    pub conv: ConvId,
    /// Its seq.
    pub seq: i64,
}

/// Fewest characters a query needs to be looked up in a trigram index; shorter ones are scanned.
pub const TRIGRAM_MIN_CHARS: usize = 3;

/// `q` as a `LIKE` pattern matching it anywhere, with `\` as the escape character.
pub fn like_pattern(q: &str) -> String {
    let mut p = String::with_capacity(q.len() + 2);
    p.push('%');
    for ch in q.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}
