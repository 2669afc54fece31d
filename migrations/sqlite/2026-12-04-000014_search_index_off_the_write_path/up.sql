-- The FTS5 search index off the write path (issue 19: the insert trigger cost a third of the
-- instructions of every stored message). New rows are indexed in batches by the indexer
-- (schema/src/db/search_index.rs); `messages_fts_state.indexed_rowid` is the highest rowid it has
-- indexed, and search covers the rows above it with a `LIKE` scan, so a message is findable the
-- moment it is stored.
--
-- Invariants the triggers keep:
--   - a row is in the index exactly when its rowid is <= indexed_rowid (edits and deletes touch
--     the index only for such rows; an unindexed row is indexed with its body of that moment);
--   - indexed_rowid never exceeds the highest rowid in `messages`: SQLite gives a new row the
--     highest rowid + 1, so a rowid freed by deleting the last row and then reused is above the
--     mark, and gets indexed.
CREATE TABLE messages_fts_state (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_rowid  BIGINT NOT NULL
);
-- Migration 000011 indexed every row there is.
INSERT INTO messages_fts_state (id, indexed_rowid) SELECT 1, coalesce(max(rowid), 0) FROM messages;

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body)
        SELECT 'delete', old.rowid, old.body
        WHERE old.rowid <= (SELECT indexed_rowid FROM messages_fts_state);
    UPDATE messages_fts_state SET indexed_rowid = (SELECT coalesce(max(rowid), 0) FROM messages)
        WHERE indexed_rowid > (SELECT coalesce(max(rowid), 0) FROM messages);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages
    WHEN old.rowid <= (SELECT indexed_rowid FROM messages_fts_state) BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.rowid, old.body);
    INSERT INTO messages_fts (rowid, body) VALUES (new.rowid, new.body);
END;
