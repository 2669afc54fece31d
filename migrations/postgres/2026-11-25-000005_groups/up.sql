-- Groups, their members (a row stays after leaving, to keep the leave point) and invite links.
CREATE TABLE groups (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT NOT NULL,
    announcement   TEXT,
    avatar_url     TEXT,
    owner_id       BIGINT NOT NULL REFERENCES users (id),
    mute_all       BOOLEAN NOT NULL DEFAULT FALSE,
    invite_policy  TEXT NOT NULL DEFAULT 'members',
    dissolved_at   BIGINT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id     BIGINT NOT NULL REFERENCES groups (id),
    user_id      BIGINT NOT NULL REFERENCES users (id),
    role         TEXT NOT NULL,
    nickname     TEXT,
    muted_until  BIGINT,
    joined_seq   BIGINT NOT NULL DEFAULT 0,
    joined_at    BIGINT NOT NULL,
    left_seq     BIGINT,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user_idx ON group_members (user_id, group_id);

CREATE TABLE group_invites (
    token       TEXT PRIMARY KEY NOT NULL,
    group_id    BIGINT NOT NULL REFERENCES groups (id),
    created_by  BIGINT NOT NULL,
    expires_at  BIGINT,
    max_uses    BIGINT,
    uses        BIGINT NOT NULL DEFAULT 0,
    revoked_at  BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX group_invites_group_idx ON group_invites (group_id);

-- Mentions: the highest seq that mentioned the member (shown until read).
ALTER TABLE conversation_states ADD COLUMN mention_seq BIGINT NOT NULL DEFAULT 0;
