-- Blocks: `user_id` blocked `blocked_id` at `created_at`. One row per pair and direction; the
-- friendship ends when the block is made (docs/ARCHITECTURE.md, "Blocking").
CREATE TABLE user_blocks (
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, blocked_id)
);
CREATE INDEX user_blocks_blocked_idx ON user_blocks (blocked_id, user_id);
