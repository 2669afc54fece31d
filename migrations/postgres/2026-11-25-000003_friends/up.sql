-- The friend graph: categories, requests and friendships (one row per side).
CREATE TABLE friend_categories (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    name_lower  TEXT NOT NULL,
    is_default  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX friend_categories_name_idx ON friend_categories (user_id, name_lower);

CREATE TABLE friend_requests (
    id            BIGSERIAL PRIMARY KEY,
    from_user_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    to_user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    message       TEXT NOT NULL,
    status        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX friend_requests_to_idx ON friend_requests (to_user_id, created_at);
CREATE INDEX friend_requests_from_idx ON friend_requests (from_user_id, created_at);
CREATE INDEX friend_requests_pair_idx ON friend_requests (from_user_id, to_user_id, created_at);
CREATE INDEX friend_requests_status_idx ON friend_requests (status, created_at);

CREATE TABLE friendships (
    user_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    friend_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    category_id  BIGINT NOT NULL REFERENCES friend_categories (id),
    remark       TEXT,
    dnd          BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (user_id, friend_id)
);
CREATE INDEX friendships_category_idx ON friendships (user_id, category_id, friend_id);

-- At most one pending request per direction and pair; a lost race shows as a unique violation.
CREATE UNIQUE INDEX friend_requests_one_pending_idx ON friend_requests (from_user_id, to_user_id) WHERE status = 'pending';
