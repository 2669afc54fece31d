-- Blocks: `user_id` blocked `blocked_id` at `created_at`. One row per pair and direction; the
-- friendship ends when the block is made (docs/ARCHITECTURE.md, "Blocking").
CREATE TABLE user_blocks (
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, blocked_id)
);
CREATE INDEX user_blocks_blocked_idx ON user_blocks (blocked_id, user_id);

-- Message search: a pg_trgm GIN index of message bodies, which `body ILIKE '%q%'` uses for
-- queries of three or more characters (any script: Chinese needs no word splitting). The index
-- is maintained by PostgreSQL itself on every insert, edit and recall. pg_trgm ships with
-- PostgreSQL (contrib); creating it needs a role that may create extensions.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX messages_body_trgm_idx ON messages USING gin (body gin_trgm_ops);
