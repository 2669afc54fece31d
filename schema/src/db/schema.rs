//! The portable Diesel schema shared by the SQLite and PostgreSQL backends.
//!
//! Written by hand to match `migrations/sqlite` and `migrations/postgres` (which create the same
//! tables with backend-specific id types). Times are `BigInt` milliseconds since the Unix epoch.

diesel::table! {
    users (id) {
        id -> BigInt,
        username -> Text,
        username_lower -> Text,
        password_hash -> Text,
        phone -> Nullable<Text>,
        nickname -> Text,
        nickname_lower -> Text,
        avatar_url -> Nullable<Text>,
        bio -> Nullable<Text>,
        banned_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        ban_reason -> Nullable<Text>,
    }
}

diesel::table! {
    devices (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        token_hash -> Text,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        expires_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    messages (conv_id, seq) {
        conv_id -> Text,
        seq -> BigInt,
        sender_id -> BigInt,
        client_id -> Text,
        kind -> Text,
        body -> Nullable<Text>,
        mentions -> Nullable<Text>,
        mention_all -> Bool,
        created_at -> BigInt,
        recalled_at -> Nullable<BigInt>,
        extra -> Nullable<Text>,
        attachment_id -> Nullable<Text>,
        edited_at -> Nullable<BigInt>,
        edit_id -> Nullable<Text>,
    }
}

diesel::table! {
    friend_categories (id) {
        id -> BigInt,
        user_id -> BigInt,
        name -> Text,
        name_lower -> Text,
        is_default -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    friend_requests (id) {
        id -> BigInt,
        from_user_id -> BigInt,
        to_user_id -> BigInt,
        message -> Text,
        status -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    friendships (user_id, friend_id) {
        user_id -> BigInt,
        friend_id -> BigInt,
        category_id -> BigInt,
        remark -> Nullable<Text>,
        dnd -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    conversations (conv_id) {
        conv_id -> Text,
        last_seq -> BigInt,
        last_ts -> BigInt,
        last_sender_id -> Nullable<BigInt>,
        last_preview -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    conversation_states (user_id, conv_id) {
        user_id -> BigInt,
        conv_id -> Text,
        peer_id -> Nullable<BigInt>,
        read_seq -> BigInt,
        delivered_seq -> BigInt,
        cleared_seq -> BigInt,
        hidden_seq -> BigInt,
        pinned -> Bool,
        dnd -> Bool,
        created_at -> BigInt,
        mention_seq -> BigInt,
    }
}

diesel::table! {
    groups (id) {
        id -> BigInt,
        name -> Text,
        announcement -> Nullable<Text>,
        avatar_url -> Nullable<Text>,
        owner_id -> BigInt,
        mute_all -> Bool,
        invite_policy -> Text,
        dissolved_at -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    group_members (group_id, user_id) {
        group_id -> BigInt,
        user_id -> BigInt,
        role -> Text,
        nickname -> Nullable<Text>,
        muted_until -> Nullable<BigInt>,
        joined_seq -> BigInt,
        joined_at -> BigInt,
        left_seq -> Nullable<BigInt>,
    }
}

diesel::table! {
    group_invites (token) {
        token -> Text,
        group_id -> BigInt,
        created_by -> BigInt,
        expires_at -> Nullable<BigInt>,
        max_uses -> Nullable<BigInt>,
        uses -> BigInt,
        revoked_at -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}

diesel::table! {
    message_hides (user_id, conv_id, seq) {
        user_id -> BigInt,
        conv_id -> Text,
        seq -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    entity_owners (conv_id) {
        conv_id -> Text,
        epoch -> BigInt,
        node_id -> Text,
        acquired_at -> BigInt,
    }
}

diesel::table! {
    reactions (conv_id, seq, user_id, emoji) {
        conv_id -> Text,
        seq -> BigInt,
        user_id -> BigInt,
        emoji -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    uploads (id) {
        id -> Text,
        owner_id -> BigInt,
        kind -> Text,
        mime -> Text,
        name -> Text,
        size -> BigInt,
        width -> Nullable<BigInt>,
        height -> Nullable<BigInt>,
        has_thumb -> Bool,
        storage_key -> Text,
        created_at -> BigInt,
        attached_at -> Nullable<BigInt>,
        removed_at -> Nullable<BigInt>,
    }
}

diesel::joinable!(devices -> users (user_id));
diesel::joinable!(conversation_states -> conversations (conv_id));
diesel::joinable!(group_members -> groups (group_id));
diesel::table! {
    user_blocks (user_id, blocked_id) {
        user_id -> BigInt,
        blocked_id -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    push_targets (id) {
        id -> BigInt,
        user_id -> BigInt,
        device_id -> BigInt,
        kind -> Text,
        endpoint -> Text,
        app_id -> Nullable<Text>,
        p256dh -> Nullable<Text>,
        auth -> Nullable<Text>,
        previews -> Nullable<Bool>,
        created_at -> BigInt,
    }
}

diesel::table! {
    push_settings (user_id) {
        user_id -> BigInt,
        previews -> Bool,
        mentions_break_mute -> Bool,
        updated_at -> BigInt,
    }
}

diesel::table! {
    server_keys (name) {
        name -> Text,
        value -> Text,
        created_at -> BigInt,
    }
}

diesel::joinable!(push_targets -> devices (device_id));
diesel::joinable!(friendships -> friend_categories (category_id));
diesel::allow_tables_to_appear_in_same_query!(
    users,
    devices,
    messages,
    friend_categories,
    friend_requests,
    friendships,
    conversations,
    conversation_states,
    message_hides,
    groups,
    group_members,
    group_invites,
    entity_owners,
    reactions,
    uploads,
    user_blocks,
    push_targets,
    push_settings,
    server_keys,
);
