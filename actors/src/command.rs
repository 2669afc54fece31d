//! What conversation owners are asked to do and what they answer: the one [`Command`] enum both
//! kinds of conversation (1:1 and group) execute, its [`Reply`], the [`ChatError`] refusals with
//! their stable codes (`schema::error::ErrorCode`), and the group changes ([`GroupOp`]).
//!
//! A bottom module: it imports no actor. Commands cross nodes (a session on one node talks to
//! the owner on another), so everything here is serde.

use schema::db::groups::GroupUpdate;
use schema::error::ErrorCode;
use schema::message::Attachment;
use schema::{ConvId, DeviceId, UserId};
use serde::{Deserialize, Serialize};

/// A refusal or failure of a chat operation, with a stable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", content = "cause", rename_all = "snake_case")]
pub enum ChatError {
    /// Only friends may chat 1:1.
    #[error("only friends can chat")]
    NotFriends,
    /// Not a conversation of the caller, or not a valid id.
    #[error("no such conversation")]
    UnknownConversation,
    /// No message with that seq.
    #[error("no such message")]
    MessageNotFound,
    /// Recall or edit of someone else's message or of a system message, or another member asking
    /// who read a message.
    #[error("only its sender can do that to a message")]
    NotYourMessage,
    /// Recall after the window.
    #[error("the recall window has passed")]
    RecallWindowPassed,
    /// The message was recalled already.
    #[error("the message was recalled already")]
    AlreadyRecalled,
    /// The group was dissolved: nothing new can be posted.
    #[error("the group was dissolved")]
    GroupDissolved,
    /// The sender is muted (personally or by mute-all).
    #[error("you are muted in this group")]
    Muted,
    /// `@all` is for the owner and admins.
    #[error("only the owner and admins can mention everyone")]
    MentionAllForbidden,
    /// A mentioned user is not a member.
    #[error("mentions must name members of the group")]
    InvalidMentions,
    /// The caller's role does not allow this.
    #[error("your role does not allow this")]
    NotAllowed,
    /// The owner must transfer ownership or dissolve the group first.
    #[error("the owner cannot leave; transfer ownership or dissolve the group")]
    OwnerCannotLeave,
    /// The group is at its size limit.
    #[error("the group is full")]
    GroupFull,
    /// The target user is not a member.
    #[error("that user is not a member")]
    NotMember,
    /// The invite link was used up by others meanwhile.
    #[error("the link has been used up")]
    InviteUsedUp,
    /// Invitees must be the inviter's friends.
    #[error("you can only invite your friends")]
    InviteesNotFriends,
    /// Edit after the edit window (or editing is off).
    #[error("the edit window has passed")]
    EditWindowPassed,
    /// Only text messages can be edited or reacted to this way.
    #[error("that message cannot be edited")]
    NotEditable,
    /// The message has as many different reactions as it may have.
    #[error("the message has too many different reactions")]
    TooManyReactions,
    /// A reply names a message the sender cannot read.
    #[error("the message replied to is not one you can read")]
    InvalidReply,
    /// No upload of the caller's with that id (or it was removed).
    #[error("no such upload of yours")]
    UploadNotFound,
    /// Storage or the owner of the conversation could not be reached; the client should retry
    /// (with the same client id).
    #[error("storage unavailable, retry")]
    Unavailable(String),
}

impl ChatError {
    /// The stable code clients see (in `error` frames and HTTP errors).
    pub fn code(&self) -> ErrorCode {
        match self {
            ChatError::NotFriends => ErrorCode::NotFriends,
            ChatError::UnknownConversation => ErrorCode::UnknownConversation,
            ChatError::MessageNotFound => ErrorCode::MessageNotFound,
            ChatError::NotYourMessage => ErrorCode::NotYourMessage,
            ChatError::RecallWindowPassed => ErrorCode::RecallWindowPassed,
            ChatError::AlreadyRecalled => ErrorCode::AlreadyRecalled,
            ChatError::GroupDissolved => ErrorCode::GroupDissolved,
            ChatError::Muted => ErrorCode::Muted,
            ChatError::MentionAllForbidden => ErrorCode::MentionAllForbidden,
            ChatError::InvalidMentions => ErrorCode::InvalidMentions,
            ChatError::NotAllowed => ErrorCode::NotAllowed,
            ChatError::OwnerCannotLeave => ErrorCode::OwnerCannotLeave,
            ChatError::GroupFull => ErrorCode::GroupFull,
            ChatError::NotMember => ErrorCode::MemberNotFound,
            ChatError::InviteesNotFriends => ErrorCode::NotFriends,
            ChatError::InviteUsedUp => ErrorCode::InviteUsedUp,
            ChatError::EditWindowPassed => ErrorCode::EditWindowPassed,
            ChatError::NotEditable => ErrorCode::NotEditable,
            ChatError::TooManyReactions => ErrorCode::TooManyReactions,
            ChatError::InvalidReply => ErrorCode::InvalidReply,
            ChatError::UploadNotFound => ErrorCode::UploadNotFound,
            ChatError::Unavailable(_) => ErrorCode::Unavailable,
        }
    }

    /// The HTTP status of this refusal: its code's, except for invitees who are not friends
    /// (`422 not_friends`: a bad field of the request, not a refused chat).
    pub fn status(&self) -> u16 {
        match self {
            ChatError::InviteesNotFriends => 422,
            other => other.code().status(),
        }
    }

    /// `Unavailable` with a cause for the log.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        ChatError::Unavailable(cause.to_string())
    }
}

impl From<schema::db::DbError> for ChatError {
    fn from(e: schema::db::DbError) -> Self {
        ChatError::Unavailable(e.to_string())
    }
}

/// The ack of a durable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub id: String,
    pub conv: ConvId,
    pub seq: i64,
    pub ts: i64,
}

/// A change to a group, requested over HTTP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum GroupOp {
    /// Name, announcement, avatar, mute-all, invite policy (owner and admins).
    Update(GroupUpdate),
    /// Dissolve (owner).
    Dissolve,
    /// Add friends of the caller (members, or admins only under policy `admins`).
    Invite { users: Vec<UserId> },
    /// The caller joins through an invite link (its token; the route checked that it exists
    /// and is live; the use is counted with the join).
    JoinByInvite { token: String },
    /// Remove a member (owner: anyone; admins: plain members).
    Remove { user: UserId },
    /// The caller leaves (not the owner).
    Leave,
    /// Hand ownership to a member (owner).
    Transfer { user: UserId },
    /// Make a member admin or plain member again (owner).
    SetAdmin { user: UserId, on: bool },
    /// Mute a member until the time given, or unmute with `None` (owner; admins for plain
    /// members).
    Mute { user: UserId, until: Option<i64> },
}

/// What a conversation's owner is asked to do. Every command names its conversation in the
/// envelope that carries it ([`crate::entity::Route`]); both kinds of conversation answer every
/// command, refusing those that do not apply to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "c", rename_all = "snake_case")]
pub enum Command {
    /// Post a message (answered with its ack once it is durable).
    Post {
        sender: UserId,
        device: DeviceId,
        client_id: String,
        body: String,
        /// Mentioned members (groups only).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<UserId>,
        /// `@all` (groups only; owner and admins).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        mention_all: bool,
        /// The seq of the message of this conversation it replies to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<i64>,
        /// The file it carries (an upload of the sender's, checked by the session).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attachment: Option<Attachment>,
        /// A forward: the original's sender (the session copied the original's text and file).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forwarded_from: Option<UserId>,
    },
    /// Replace the body of `user`'s text message `seq` (edit `client_id`, idempotent like a post).
    Edit { user: UserId, client_id: String, seq: i64, body: String },
    /// Add (`on`) or remove `user`'s reaction `emoji` to message `seq`.
    React { user: UserId, seq: i64, emoji: String, on: bool },
    /// A device of `user` received everything up to `seq` (1:1 only; groups ignore it).
    Delivered { user: UserId, seq: i64 },
    /// `user` read everything up to `seq`.
    Read { user: UserId, device: DeviceId, seq: i64 },
    /// Recall one of `user`'s messages.
    Recall { user: UserId, seq: i64 },
    /// `user` is typing: forwarded, never stored.
    Typing { user: UserId },
    /// A change to a group by `by` (groups only).
    Change { by: UserId, op: GroupOp },
    /// Settings changed (friendship, do-not-disturb, ...): re-read them. Never starts an owner.
    Refresh,
    /// Members of a group have sessions on node `node` now (its first session of each):
    /// the owner sends them the group's frames from now on. Never starts an owner.
    Online { node: String, users: Vec<UserId> },
    /// Members of a group have no session on node `node` any more (the node found none for a
    /// fan-out): the owner stops sending their frames there. Never starts an owner.
    Offline { node: String, users: Vec<UserId> },
}

impl Command {
    /// Whether this command starts an owner when none runs. Those that do not are about state
    /// only a running owner holds (re-reading settings, the nodes its members are on): with no
    /// owner, the next one reads it fresh.
    pub fn activates(&self) -> bool {
        !matches!(self, Command::Refresh | Command::Online { .. } | Command::Offline { .. })
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Post { .. } => "post",
            Command::Edit { .. } => "edit",
            Command::React { .. } => "react",
            Command::Delivered { .. } => "delivered",
            Command::Read { .. } => "read",
            Command::Recall { .. } => "recall",
            Command::Typing { .. } => "typing",
            Command::Change { .. } => "change",
            Command::Refresh => "refresh",
            Command::Online { .. } => "online",
            Command::Offline { .. } => "offline",
        }
    }
}

/// What a command answers when it succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
pub enum Reply {
    /// A posted message is durable.
    Acked(Ack),
    /// Done (nothing to return).
    Done,
}

/// The answer to a command.
pub type Outcome = Result<Reply, ChatError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_and_outcomes_cross_nodes_unchanged() {
        let cmds = vec![
            Command::Post {
                sender: UserId(1),
                device: DeviceId(2),
                client_id: "c-1".into(),
                body: "hi\nthere \"x\"".into(),
                mentions: vec![UserId(3)],
                mention_all: true,
                reply_to: Some(4),
                attachment: None,
                forwarded_from: None,
            },
            Command::Change { by: UserId(1), op: GroupOp::Mute { user: UserId(4), until: Some(9) } },
            Command::Change {
                by: UserId(1),
                op: GroupOp::Update(GroupUpdate { announcement: Some(None), ..GroupUpdate::default() }),
            },
            Command::Online { node: "node-2".into(), users: vec![UserId(5)] },
            Command::Refresh,
        ];
        for c in cmds {
            let back: Command = serde_json::from_str(&serde_json::to_string(&c).unwrap_or_default())
                .unwrap_or(Command::Typing { user: UserId(0) });
            assert_eq!(back, c);
        }
        let outs: Vec<Outcome> = vec![
            Ok(Reply::Acked(Ack { id: "a".into(), conv: ConvId("d:1:2".into()), seq: 3, ts: 4 })),
            Ok(Reply::Done),
            Err(ChatError::GroupFull),
            Err(ChatError::Unavailable("db down".into())),
        ];
        for o in outs {
            let back: Outcome =
                serde_json::from_str(&serde_json::to_string(&o).unwrap_or_default()).unwrap_or(Ok(Reply::Done));
            assert_eq!(back, o);
        }
    }

    #[test]
    fn only_state_commands_never_start_an_owner() {
        assert!(!Command::Refresh.activates());
        assert!(!Command::Online { node: "n".into(), users: vec![] }.activates());
        assert!(Command::Typing { user: UserId(1) }.activates());
    }
}
