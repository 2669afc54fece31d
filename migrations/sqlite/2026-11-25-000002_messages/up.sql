-- The SQL message store: one row per message of any conversation (1:1 or group).
-- A recalled message keeps its row (seq stays taken) with body NULL and recalled_at set.
CREATE TABLE messages (
    conv_id      TEXT NOT NULL,
    seq          BIGINT NOT NULL,
    sender_id    BIGINT NOT NULL,
    client_id    TEXT NOT NULL,
    kind         TEXT NOT NULL,
    body         TEXT,
    mentions     TEXT,
    mention_all  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT NOT NULL,
    recalled_at  BIGINT,
    PRIMARY KEY (conv_id, seq)
);
-- Dedup of resent client ids.
CREATE UNIQUE INDEX messages_dedup_idx ON messages (conv_id, sender_id, client_id);
CREATE INDEX messages_conv_ts_idx ON messages (conv_id, created_at);
