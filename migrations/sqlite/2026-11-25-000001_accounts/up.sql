-- Accounts and devices. Times are integer milliseconds since the Unix epoch.
CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    username        TEXT NOT NULL,
    username_lower  TEXT NOT NULL UNIQUE,
    password_hash   TEXT NOT NULL,
    phone           TEXT UNIQUE,
    nickname        TEXT NOT NULL,
    nickname_lower  TEXT NOT NULL,
    avatar_url      TEXT,
    bio             TEXT,
    banned_at       BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX users_nickname_lower_idx ON users (nickname_lower, id);

CREATE TABLE devices (
    id            INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX devices_user_idx ON devices (user_id, id);
