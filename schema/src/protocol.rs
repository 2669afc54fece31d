//! The WebSocket wire protocol: JSON text frames, one serde enum per direction tagged by `type`.
//!
//! Documented frame by frame in `docs/PROTOCOL.md`. The protocol only grows by adding variants or
//! optional fields. [`frames_schema`] is the JSON Schema of both directions, generated from these
//! types (the server serves it at `GET /api/v1/ws-schema.json`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::ids::{ConvId, UserId};

/// The JSON Schema (draft 2020-12) of the WebSocket frames: `$defs/ClientFrame` (what a client
/// sends), `$defs/ServerFrame` (what the server sends) and the types they use; the document as a
/// whole accepts a frame of either direction.
pub fn frames_schema() -> serde_json::Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    let client = generator.subschema_for::<ClientFrame>();
    let server = generator.subschema_for::<ServerFrame>();
    let defs = generator.take_definitions(true);
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "IM-Server WebSocket frames",
        "description": "JSON text frames on /ws (docs/PROTOCOL.md): ClientFrame from client to server, \
                        ServerFrame from server to client, each tagged by `type`.",
        "anyOf": [client, server],
        "$defs": defs,
    })
}

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// Post a message. `id` is the client's id for dedup of resends.
    Send {
        id: String,
        conv: ConvId,
        /// The text (with an attachment: its caption, may be empty; with `forward`: empty).
        #[serde(default)]
        body: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<UserId>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        mention_all: bool,
        /// The seq of the message of `conv` this one replies to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<i64>,
        /// An upload of mine (`POST /api/v1/uploads`) the message carries.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attachment: Option<String>,
        /// A message I can read, of any conversation, to forward here (its text and file).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forward: Option<MessageRef>,
    },
    /// Replace the body of one of my text messages (within the edit window). `id` is the
    /// client's id of this edit: a resend is acked again without a second `edited`.
    Edit { id: String, conv: ConvId, seq: i64, body: String },
    /// Add (`on`, the default) or remove my reaction `emoji` on a message.
    React {
        conv: ConvId,
        seq: i64,
        emoji: String,
        #[serde(default = "yes")]
        on: bool,
    },
    /// This device has received everything up to `seq`.
    Delivered { conv: ConvId, seq: i64 },
    /// The user has read everything up to `seq`.
    Read { conv: ConvId, seq: i64 },
    /// Recall one of my messages (within the recall window).
    Recall { conv: ConvId, seq: i64 },
    /// Hide one message for me only.
    Delete { conv: ConvId, seq: i64 },
    /// I am typing (ephemeral, never stored).
    Typing { conv: ConvId },
    /// Messages with seq > `after_seq`, oldest first, at most `limit`.
    Sync {
        conv: ConvId,
        after_seq: i64,
        #[serde(default)]
        limit: Option<i64>,
    },
    /// Application-level ping; answered with `pong`.
    Ping {
        #[serde(default)]
        nonce: Option<String>,
    },
}

fn yes() -> bool {
    true
}

/// A message of a conversation, named by its place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageRef {
    pub conv: ConvId,
    pub seq: i64,
}

/// What a reader sees of the message a reply quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QuoteState {
    /// It can be read: `from` and `preview` are set (preview `null` for an attachment without text).
    Visible,
    /// Its sender recalled it.
    Recalled,
    /// The reader deleted it for themselves.
    Deleted,
    /// It is outside what the reader may read (before they joined the group, or history they
    /// cleared).
    NotVisible,
}

/// The quoted message of a reply, as one reader sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct Quote {
    pub seq: i64,
    pub state: QuoteState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<UserId>,
    /// The first characters of its text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// The kind of file it carries, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<crate::message::AttachmentKind>,
}

/// Reactions to a message with one emoji.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: i64,
    /// The reader reacted with it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mine: bool,
}

/// A message as delivered to clients.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct WireMessage {
    pub conv: ConvId,
    pub seq: i64,
    pub from: UserId,
    /// The sender's client id.
    pub id: String,
    /// `text` or `system`.
    pub kind: String,
    /// Absent once recalled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub ts: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mention_all: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recalled: bool,
    /// The message this one replies to, as this reader sees it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<Quote>,
    /// A forward: who sent the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_from: Option<UserId>,
    /// The file it carries (absent once recalled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachment: Option<crate::message::Attachment>,
    /// When its body was last edited (the body is the latest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    /// Reactions per emoji (in history and `sync`; live changes come as `reaction` frames).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<ReactionCount>,
}

impl From<&crate::message::MessageRecord> for WireMessage {
    fn from(m: &crate::message::MessageRecord) -> Self {
        WireMessage {
            conv: m.conv.clone(),
            seq: m.seq,
            from: m.sender,
            id: m.client_id.clone(),
            kind: m.kind.as_str().to_owned(),
            body: m.body.clone(),
            ts: m.ts,
            mentions: m.mentions.clone(),
            mention_all: m.mention_all,
            recalled: m.recalled_at.is_some(),
            reply: m.reply_to.map(|seq| Quote {
                seq,
                state: QuoteState::NotVisible,
                from: None,
                preview: None,
                attachment: None,
            }),
            forwarded_from: m.forwarded_from,
            attachment: m.attachment.clone().filter(|_| m.recalled_at.is_none()),
            edited_at: m.edited_at,
            reactions: Vec::new(),
        }
    }
}

impl Quote {
    /// The quote of `quoted` (the message a reply names, if it exists) for a reader who may read
    /// seqs above `floor` up to `ceiling` and deleted `hidden` for themselves.
    pub fn of(
        seq: i64,
        quoted: Option<&crate::message::MessageRecord>,
        floor: i64,
        ceiling: i64,
        hidden: bool,
    ) -> Self {
        let mut q = Quote { seq, state: QuoteState::NotVisible, from: None, preview: None, attachment: None };
        let Some(m) = quoted else { return q };
        if seq <= floor || seq > ceiling {
            return q;
        }
        if hidden {
            q.state = QuoteState::Deleted;
            return q;
        }
        if m.recalled_at.is_some() {
            q.state = QuoteState::Recalled;
            q.from = Some(m.sender);
            return q;
        }
        q.state = QuoteState::Visible;
        q.from = Some(m.sender);
        q.preview = m.body.as_deref().filter(|b| !b.is_empty()).map(crate::db::conversations::preview);
        q.attachment = m.attachment.as_ref().map(|a| a.kind);
        q
    }
}

/// Frames the server sends.
// A frame is built to be encoded at once and never kept in numbers, so the size of its largest
// variant (`msg`) costs nothing worth a box per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// First frame of a connection.
    Hello { user_id: UserId, device_id: i64, node: String, heartbeat_secs: u64 },
    /// A `send` is durable: its seq and server time.
    Ack { id: String, conv: ConvId, seq: i64, ts: i64 },
    /// A new message (to recipients and the sender's other devices).
    Msg {
        #[serde(flatten)]
        msg: WireMessage,
        /// Do-not-disturb: show without sound or notification.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        silent: bool,
        /// This recipient is mentioned (or `@all`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        mentioned: bool,
    },
    /// Receipt to the sender: a device of `by` received everything up to `seq`.
    Delivered { conv: ConvId, seq: i64, by: UserId },
    /// Receipt to the sender: `by` read everything up to `seq`.
    Read { conv: ConvId, seq: i64, by: UserId },
    /// To the reader's other devices: the new read mark and what is still unread.
    ReadMark { conv: ConvId, seq: i64, unread: i64 },
    /// A message was recalled; drop its body.
    Recalled { conv: ConvId, seq: i64 },
    /// To my other devices: I hid this message.
    Deleted { conv: ConvId, seq: i64 },
    /// A message's body was edited: replace it (apply only if `edited_at` is newer than the one
    /// you have).
    Edited { conv: ConvId, seq: i64, body: String, edited_at: i64 },
    /// `user` added (`on`) or removed a reaction `emoji` on a message. `at` grows with every
    /// reaction change of the conversation: apply one only if it is newer than the last you
    /// applied for the same (message, user, emoji).
    Reaction { conv: ConvId, seq: i64, user: UserId, emoji: String, on: bool, at: i64 },
    /// `from` is typing.
    Typing { conv: ConvId, from: UserId },
    /// Answer to `sync`.
    Synced { conv: ConvId, messages: Vec<WireMessage>, has_more: bool, max_seq: i64 },
    /// A user's online state changed (sent to their friends).
    Presence { user_id: UserId, online: bool },
    /// An event about the friend graph or a group (`friend_request`, `friend_accepted`, ...).
    Event { event: String, data: serde_json::Value },
    /// Answer to `ping`.
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    /// A notice from the operators (admin broadcast): shown to the user, never stored.
    Notice { text: String, ts: i64 },
    /// A refused frame: stable `code`; `id` repeats the client id of a refused `send`.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
}

impl ServerFrame {
    /// The frame as JSON text (serialising these types cannot fail).
    pub fn encode(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|_| String::from(r#"{"type":"error","code":"internal_error","message":"encoding failed"}"#))
    }

    /// An error frame.
    pub fn error(code: ErrorCode, message: impl Into<String>, id: Option<String>) -> Self {
        ServerFrame::Error { code, message: message.into(), id }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_are_tagged_by_type() -> Result<(), serde_json::Error> {
        let f: ClientFrame = serde_json::from_str(r#"{"type":"send","id":"c1","conv":"d:1:2","body":"hi"}"#)?;
        assert_eq!(
            f,
            ClientFrame::Send {
                id: "c1".into(),
                conv: ConvId("d:1:2".into()),
                body: "hi".into(),
                mentions: vec![],
                mention_all: false,
                reply_to: None,
                attachment: None,
                forward: None,
            }
        );
        let f: ClientFrame = serde_json::from_str(r#"{"type":"sync","conv":"d:1:2","after_seq":5}"#)?;
        assert_eq!(f, ClientFrame::Sync { conv: ConvId("d:1:2".into()), after_seq: 5, limit: None });
        // No body: a message with an attachment or a forward has none (the session refuses a
        // plain one as `empty_message`).
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"send","id":"c1","conv":"d:1:2"}"#).is_ok());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"send","conv":"d:1:2","body":"x"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"explode"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"read","conv":"d:1:2","seq":1,"x":1}"#).is_err());
        Ok(())
    }

    #[test]
    fn server_frames_flatten_messages() -> Result<(), serde_json::Error> {
        let m = WireMessage {
            conv: ConvId("d:1:2".into()),
            seq: 3,
            from: UserId(1),
            id: "c".into(),
            kind: "text".into(),
            body: Some("hi".into()),
            ts: 9,
            mentions: vec![],
            mention_all: false,
            recalled: false,
            ..WireMessage::default()
        };
        let s = ServerFrame::Msg { msg: m.clone(), silent: true, mentioned: false }.encode();
        assert_eq!(
            s,
            r#"{"type":"msg","conv":"d:1:2","seq":3,"from":1,"id":"c","kind":"text","body":"hi","ts":9,"silent":true}"#
        );
        let back: ServerFrame = serde_json::from_str(&s)?;
        assert_eq!(back, ServerFrame::Msg { msg: m, silent: true, mentioned: false });
        Ok(())
    }

    #[test]
    fn notices_are_tagged() -> Result<(), serde_json::Error> {
        let n = ServerFrame::Notice { text: "maintenance at 22:00".into(), ts: 7 };
        let s = n.encode();
        assert_eq!(s, r#"{"type":"notice","text":"maintenance at 22:00","ts":7}"#);
        assert_eq!(serde_json::from_str::<ServerFrame>(&s)?, n);
        Ok(())
    }
}
