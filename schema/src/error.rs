//! [`ErrorCode`]: every stable error code a client can see, over HTTP (`{"error": "<code>", ...}`)
//! and over the WebSocket (`{"type": "error", "code": "<code>", ...}`), in one enum.
//!
//! Each code has its snake_case wire name (its serde name, [`ErrorCode::as_str`]), the HTTP
//! status it is answered with ([`ErrorCode::status`]) and where it is used ([`Surface`]). The
//! server builds HTTP errors (`server::error::ApiError`), chat refusals
//! (`actors::command::ChatError::code`) and WebSocket `error` frames from it, the OpenAPI document
//! and the frames' JSON Schema list its values, and tests check it against the code tables of
//! `docs/API.md` and `docs/PROTOCOL.md`. Wire names never change: clients match on them.
//!
//! Three codes keep a second HTTP status in one context each, as they always have (the
//! endpoints that answer them say so in the OpenAPI document): `not_friends` is `404` from
//! `/friends/{user_id}` and `422` for group invitees who are not the caller's friends;
//! `group_dissolved` is `410` for an invite link of a dissolved group; `invite_revoked` is `409`
//! when revoking a link revoked already.

use serde::{Deserialize, Serialize};

/// Where a code is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// HTTP responses only.
    Http,
    /// WebSocket `error` frames only.
    Ws,
    /// Both.
    Both,
}

macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $code:literal, $status:literal, $surface:ident;)+) => {
        /// A stable error code. Serialised as its snake_case wire name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ #[serde(rename = $code)] $variant,)+
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The wire name (the same string serde writes).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                }
            }

            /// The HTTP status this code is answered with. For codes used only on the WebSocket
            /// it is the status the same refusal would have over HTTP (never sent).
            pub const fn status(self) -> u16 {
                match self {
                    $(ErrorCode::$variant => $status,)+
                }
            }

            /// Where the code is used: HTTP, WebSocket or both.
            pub const fn surface(self) -> Surface {
                match self {
                    $(ErrorCode::$variant => Surface::$surface,)+
                }
            }
        }
    };
}

error_codes! {
    /// A JSON body that does not parse: malformed, wrong types, missing or unknown fields.
    InvalidJson = "invalid_json", 400, Http;
    /// A query string that does not parse, or a search `q` out of bounds.
    InvalidQuery = "invalid_query", 400, Http;
    /// `page` out of range (paged lists), or a bad history page (`after_seq` / `before_seq`).
    InvalidPage = "invalid_page", 400, Http;
    /// `size` out of range (paged lists).
    InvalidSize = "invalid_size", 400, Http;
    /// `limit` out of range (conversation history).
    InvalidLimit = "invalid_limit", 400, Http;
    /// An upload without bytes or a good `name`, a voice note that is not audio, an image that
    /// does not decode.
    InvalidUpload = "invalid_upload", 400, Http;
    /// Login with both or neither of `username` and `phone`.
    InvalidLogin = "invalid_login", 400, Http;
    /// An unknown `direction` of the friend-request list.
    InvalidDirection = "invalid_direction", 400, Http;
    /// An unknown `status` filter of the friend-request list.
    InvalidStatus = "invalid_status", 400, Http;
    /// An unknown `action` when answering a friend request.
    InvalidAction = "invalid_action", 400, Http;
    /// A friend request to oneself.
    CannotFriendSelf = "cannot_friend_self", 400, Http;
    /// Blocking oneself.
    CannotBlockSelf = "cannot_block_self", 400, Http;
    /// Deleting the default friend category.
    CannotDeleteDefault = "cannot_delete_default", 400, Http;
    /// Opening a conversation with oneself.
    CannotChatSelf = "cannot_chat_self", 400, Http;
    /// `GET /ws` with a valid token but no WebSocket upgrade.
    WebsocketHandshake = "websocket_handshake", 400, Http;
    /// No valid token (or admin token).
    Unauthorized = "unauthorized", 401, Http;
    /// Wrong username, phone or password.
    InvalidCredentials = "invalid_credentials", 401, Http;
    /// The account is banned.
    UserBanned = "user_banned", 403, Http;
    /// The two users are not friends (`404` from `/friends/{user_id}`, `422` for invitees).
    NotFriends = "not_friends", 403, Both;
    /// The caller's group role does not allow this.
    NotAllowed = "not_allowed", 403, Http;
    /// Someone else's message (recall, readers).
    NotYourMessage = "not_your_message", 403, Both;
    /// The sender is muted in the group.
    Muted = "muted", 403, Ws;
    /// `@all` from a plain member.
    MentionAllForbidden = "mention_all_forbidden", 403, Ws;
    /// An unknown route, a method a path does not have, a non-numeric path id; the admin API
    /// when it is off.
    NotFound = "not_found", 404, Http;
    /// No such user.
    UserNotFound = "user_not_found", 404, Http;
    /// No such live node (admin drain).
    NodeNotFound = "node_not_found", 404, Http;
    /// No such live device of the caller's.
    DeviceNotFound = "device_not_found", 404, Http;
    /// No such push target of the device.
    PushTargetNotFound = "push_target_not_found", 404, Http;
    /// This server does not send pushes of that kind: Web Push is off (`push.webpush`), or no
    /// `push.gateway_url` is set for `gateway` targets (and `GET /push/vapid` without Web Push).
    PushNotConfigured = "push_not_configured", 404, Http;
    /// No such friend request addressed to the caller.
    RequestNotFound = "request_not_found", 404, Http;
    /// No such friend category of the caller's.
    CategoryNotFound = "category_not_found", 404, Http;
    /// No such conversation of the caller's (HTTP conversation routes).
    ConversationNotFound = "conversation_not_found", 404, Http;
    /// Not a conversation id, or not one of the caller's (chat).
    UnknownConversation = "unknown_conversation", 404, Both;
    /// No message with that seq (visible to the caller).
    MessageNotFound = "message_not_found", 404, Both;
    /// No such group, or the caller is not (or no longer) a member.
    GroupNotFound = "group_not_found", 404, Http;
    /// The target user is not a member of the group.
    MemberNotFound = "member_not_found", 404, Http;
    /// No such invite link.
    InviteNotFound = "invite_not_found", 404, Http;
    /// No such upload of the sender's (`send`), or none the caller may download (unknown,
    /// removed, or not in a message the caller can read).
    UploadNotFound = "upload_not_found", 404, Both;
    /// The username is taken.
    UsernameTaken = "username_taken", 409, Http;
    /// The phone number belongs to another account.
    PhoneTaken = "phone_taken", 409, Http;
    /// A friend request to a friend.
    AlreadyFriends = "already_friends", 409, Http;
    /// A friend request to a user the caller blocked (told only to the blocker: unblock first).
    BlockedByYou = "blocked_by_you", 409, Http;
    /// Answering a request that is no longer pending.
    RequestNotPending = "request_not_pending", 409, Http;
    /// A category of that name exists.
    CategoryExists = "category_exists", 409, Http;
    /// The group is at `chat.max_group_members`.
    GroupFull = "group_full", 409, Http;
    /// The group was dissolved (`410` for its invite links).
    GroupDissolved = "group_dissolved", 409, Both;
    /// The owner must transfer ownership or dissolve the group first.
    OwnerCannotLeave = "owner_cannot_leave", 409, Http;
    /// Joining a group one is a member of.
    AlreadyMember = "already_member", 409, Http;
    /// Recall after `chat.recall_window_secs`.
    RecallWindowPassed = "recall_window_passed", 409, Ws;
    /// Recall of a recalled message.
    AlreadyRecalled = "already_recalled", 409, Ws;
    /// An edit after `chat.edit_window_secs` (or with edits off).
    EditWindowPassed = "edit_window_passed", 409, Ws;
    /// A new emoji on a message that has `chat.max_reactions_per_message` different ones.
    TooManyReactions = "too_many_reactions", 409, Ws;
    /// The invite link was revoked (`409` when revoking it again).
    InviteRevoked = "invite_revoked", 410, Http;
    /// The invite link expired.
    InviteExpired = "invite_expired", 410, Http;
    /// The invite link reached its `max_uses`.
    InviteUsedUp = "invite_used_up", 410, Http;
    /// A body over `server.max_body_bytes`.
    PayloadTooLarge = "payload_too_large", 413, Http;
    /// An upload over the limit of its kind (`uploads.max_*_bytes`).
    UploadTooLarge = "upload_too_large", 413, Http;
    /// A body that is not `application/json`; an upload whose sniffed type is not allowed.
    UnsupportedMediaType = "unsupported_media_type", 415, Http;
    /// A download's `Range` that starts past the end of the file.
    RangeNotSatisfiable = "range_not_satisfiable", 416, Http;
    /// Registration: a bad username.
    InvalidUsername = "invalid_username", 422, Http;
    /// Registration: a bad password.
    InvalidPassword = "invalid_password", 422, Http;
    /// Registration: a phone number not in E.164 form.
    InvalidPhone = "invalid_phone", 422, Http;
    /// A bad nickname.
    InvalidNickname = "invalid_nickname", 422, Http;
    /// Login: a device name over 64 characters.
    InvalidDeviceName = "invalid_device_name", 422, Http;
    /// An avatar URL that is not http(s) or too long.
    InvalidAvatarUrl = "invalid_avatar_url", 422, Http;
    /// A bio over 500 characters.
    InvalidBio = "invalid_bio", 422, Http;
    /// A friend request's message over 200 characters.
    InvalidMessage = "invalid_message", 422, Http;
    /// A remark over 64 characters.
    InvalidRemark = "invalid_remark", 422, Http;
    /// A category or group name out of bounds.
    InvalidName = "invalid_name", 422, Http;
    /// A group announcement over 2000 characters.
    InvalidAnnouncement = "invalid_announcement", 422, Http;
    /// An invite policy other than `members` and `admins`.
    InvalidInvitePolicy = "invalid_invite_policy", 422, Http;
    /// A mute `until` not in the future.
    InvalidUntil = "invalid_until", 422, Http;
    /// An invite lifetime out of bounds.
    InvalidExpiresIn = "invalid_expires_in", 422, Http;
    /// An invite `max_uses` out of bounds.
    InvalidMaxUses = "invalid_max_uses", 422, Http;
    /// An admin ban reason over 500 characters.
    InvalidReason = "invalid_reason", 422, Http;
    /// An admin broadcast text out of bounds.
    InvalidText = "invalid_text", 422, Http;
    /// An admin broadcast `user_ids` list out of bounds.
    InvalidUserIds = "invalid_user_ids", 422, Http;
    /// A push target whose kind is unknown or whose data does not fit its kind (an endpoint
    /// that is not an https URL, keys that are not base64url P-256 / 16 bytes, an empty pushkey).
    InvalidPushTarget = "invalid_push_target", 422, Http;
    /// A mentioned user is not a member of the group.
    InvalidMentions = "invalid_mentions", 422, Ws;
    /// A client frame that does not decode.
    InvalidFrame = "invalid_frame", 400, Ws;
    /// A binary frame (only JSON text frames are accepted).
    UnsupportedFrame = "unsupported_frame", 400, Ws;
    /// A `send` id that is empty, over 64 characters or has control characters.
    InvalidId = "invalid_id", 422, Ws;
    /// A `send` body that is empty or only whitespace.
    EmptyMessage = "empty_message", 422, Ws;
    /// A `send` body over `chat.max_message_chars`.
    MessageTooLong = "message_too_long", 422, Ws;
    /// `mentions` or `mention_all` in a 1:1 chat.
    MentionsNotAllowed = "mentions_not_allowed", 422, Ws;
    /// An edit of a message that is not a text message of one's own writing (a forward, a
    /// system message).
    NotEditable = "not_editable", 422, Ws;
    /// A `reply_to` that is not a seq of the conversation the sender may read.
    InvalidReply = "invalid_reply", 422, Ws;
    /// A `send` with both `forward` and a body or an attachment.
    InvalidForward = "invalid_forward", 422, Ws;
    /// A reaction that is not one of `chat.reactions` (`GET /api/v1/limits`).
    InvalidReaction = "invalid_reaction", 422, Ws;
    /// A second friend request to the same user within the cooldown.
    RequestTooSoon = "request_too_soon", 429, Http;
    /// Frames over the session's rate; logins or registrations over `[throttle]`'s limits
    /// (HTTP, with `Retry-After`).
    RateLimited = "rate_limited", 429, Both;
    /// An unexpected failure, logged in full on the server.
    InternalError = "internal_error", 500, Http;
    /// Storage, or the owner of a conversation, could not be reached; retry.
    Unavailable = "unavailable", 503, Both;
    /// `GET /ws` on a draining node.
    Draining = "draining", 503, Http;
    /// Too many sends of one connection await their ack; resend later.
    Overloaded = "overloaded", 503, Ws;
}

impl ErrorCode {
    /// Whether HTTP responses use this code.
    pub const fn http(self) -> bool {
        matches!(self.surface(), Surface::Http | Surface::Both)
    }

    /// Whether WebSocket `error` frames use this code.
    pub const fn ws(self) -> bool {
        matches!(self.surface(), Surface::Ws | Surface::Both)
    }

    /// The codes WebSocket `error` frames use.
    pub fn ws_codes() -> impl Iterator<Item = ErrorCode> {
        Self::ALL.iter().copied().filter(|c| c.ws())
    }

    /// The codes HTTP responses use.
    pub fn http_codes() -> impl Iterator<Item = ErrorCode> {
        Self::ALL.iter().copied().filter(|c| c.http())
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl schemars::JsonSchema for ErrorCode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ErrorCode".into()
    }

    /// The codes of WebSocket `error` frames (the only place frames carry one).
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let codes: Vec<&str> = Self::ws_codes().map(ErrorCode::as_str).collect();
        schemars::json_schema!({
            "type": "string",
            "description": "A stable error code (docs/PROTOCOL.md#error-codes).",
            "enum": codes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_the_serde_names_and_unique_snake_case() -> Result<(), serde_json::Error> {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(c)?, serde_json::Value::String(c.as_str().to_owned()));
            assert_eq!(serde_json::from_value::<ErrorCode>(serde_json::to_value(c)?)?, *c);
            assert!(c.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{c}");
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert!((400..600).contains(&c.status()), "{c}");
        }
        Ok(())
    }
}
