-- Blocks: `user_id` blocked `blocked_id` at `created_at`. One row per pair and direction; the
-- friendship ends when the block is made (docs/ARCHITECTURE.md, "Blocking").
CREATE TABLE user_blocks (
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, blocked_id)
);
CREATE INDEX user_blocks_blocked_idx ON user_blocks (blocked_id, user_id);

-- Message search: an FTS5 index of message bodies with the trigram tokenizer (any substring of
-- three or more characters matches, in any script: Chinese needs no word splitting). External
-- content (the bodies are not stored twice), keyed by the messages table's rowid and kept in step
-- by triggers on every insert, body change (edit, recall) and delete. VACUUM may renumber the
-- rowids of `messages`: after one, run INSERT INTO messages_fts(messages_fts) VALUES ('rebuild').
CREATE VIRTUAL TABLE messages_fts USING fts5(body, content = 'messages', content_rowid = 'rowid', tokenize = 'trigram');
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.rowid, new.body);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.rowid, old.body);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.rowid, old.body);
    INSERT INTO messages_fts (rowid, body) VALUES (new.rowid, new.body);
END;
