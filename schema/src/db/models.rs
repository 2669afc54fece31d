//! Rows of the SQL tables as Rust structs (one `Queryable` per table, `Insertable`s beside them).

use diesel::prelude::*;

use super::schema::{devices, friend_categories, friend_requests, friendships, users};

/// A row of `users`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub username_lower: String,
    pub password_hash: String,
    pub phone: Option<String>,
    pub nickname: String,
    pub nickname_lower: String,
    pub avatar_url: Option<String>,
    pub bio: Option<String>,
    pub banned_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Why the user was banned (set with `banned_at`; migration 000006, hence the last column).
    pub ban_reason: Option<String>,
}

/// A user to insert (registration).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub username: String,
    pub username_lower: String,
    pub password_hash: String,
    pub phone: Option<String>,
    pub nickname: String,
    pub nickname_lower: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A row of `devices`: one logged-in device and the hash of its token.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = devices)]
pub struct Device {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub token_hash: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
}

/// A device to insert (login).
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = devices)]
pub struct NewDevice {
    pub user_id: i64,
    pub name: String,
    pub token_hash: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

/// A row of `friend_categories`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = friend_categories)]
pub struct Category {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub name_lower: String,
    pub is_default: bool,
    pub created_at: i64,
}

/// A category to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = friend_categories)]
pub struct NewCategory {
    pub user_id: i64,
    pub name: String,
    pub name_lower: String,
    pub is_default: bool,
    pub created_at: i64,
}

/// A row of `friend_requests`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = friend_requests)]
pub struct FriendRequest {
    pub id: i64,
    pub from_user_id: i64,
    pub to_user_id: i64,
    pub message: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A request to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = friend_requests)]
pub struct NewFriendRequest {
    pub from_user_id: i64,
    pub to_user_id: i64,
    pub message: String,
    pub status: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A row of `friendships` (one per side of a friendship).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = friendships)]
pub struct Friendship {
    pub user_id: i64,
    pub friend_id: i64,
    pub category_id: i64,
    pub remark: Option<String>,
    pub dnd: bool,
    pub created_at: i64,
}

/// A row of `conversations`: the summary the conversation list shows.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::conversations)]
pub struct Conversation {
    pub conv_id: String,
    pub last_seq: i64,
    pub last_ts: i64,
    pub last_sender_id: Option<i64>,
    pub last_preview: Option<String>,
    pub created_at: i64,
}

/// A row of `conversation_states`: one member's marks and settings in a conversation.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::conversation_states)]
pub struct ConversationState {
    pub user_id: i64,
    pub conv_id: String,
    pub peer_id: Option<i64>,
    pub read_seq: i64,
    pub delivered_seq: i64,
    pub cleared_seq: i64,
    pub hidden_seq: i64,
    pub pinned: bool,
    pub dnd: bool,
    pub created_at: i64,
    pub mention_seq: i64,
}

/// A row of `groups`.
#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = super::schema::groups)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub announcement: Option<String>,
    pub avatar_url: Option<String>,
    pub owner_id: i64,
    pub mute_all: bool,
    pub invite_policy: String,
    pub dissolved_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A group to insert.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = super::schema::groups)]
pub struct NewGroup {
    pub name: String,
    pub owner_id: i64,
    pub invite_policy: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A row of `group_members` (also kept after leaving, with `left_seq` set).
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::group_members)]
pub struct GroupMember {
    pub group_id: i64,
    pub user_id: i64,
    pub role: String,
    pub nickname: Option<String>,
    pub muted_until: Option<i64>,
    pub joined_seq: i64,
    pub joined_at: i64,
    pub left_seq: Option<i64>,
}

/// A row of `group_invites`.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = super::schema::group_invites)]
pub struct GroupInvite {
    pub token: String,
    pub group_id: i64,
    pub created_by: i64,
    pub expires_at: Option<i64>,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub revoked_at: Option<i64>,
    pub created_at: i64,
}
