-- Rich messages: replies, forwards and attachments (`extra`, JSON: reply_to, forwarded_from,
-- attachment), the upload an attachment refers to (`attachment_id`, indexed: who may download an
-- upload is decided by the messages that carry it), and edits (the latest body stays in `body`;
-- `edited_at` and the client id of the edit that wrote it).
ALTER TABLE messages ADD COLUMN extra TEXT;
ALTER TABLE messages ADD COLUMN attachment_id TEXT;
ALTER TABLE messages ADD COLUMN edited_at BIGINT;
ALTER TABLE messages ADD COLUMN edit_id TEXT;
CREATE INDEX messages_attachment_idx ON messages (attachment_id) WHERE attachment_id IS NOT NULL;

-- One row per (message, user, emoji) reacted.
CREATE TABLE reactions (
    conv_id     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    user_id     BIGINT NOT NULL,
    emoji       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (conv_id, seq, user_id, emoji)
);

-- Uploaded files (the bytes are in the blob store under `storage_key`). An upload no message
-- refers to (`attached_at` NULL) is removed after a grace period.
CREATE TABLE uploads (
    id           TEXT PRIMARY KEY NOT NULL,
    owner_id     BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    mime         TEXT NOT NULL,
    name         TEXT NOT NULL,
    size         BIGINT NOT NULL,
    width        BIGINT,
    height       BIGINT,
    has_thumb    BOOLEAN NOT NULL DEFAULT FALSE,
    storage_key  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    attached_at  BIGINT,
    removed_at   BIGINT
);
CREATE INDEX uploads_unattached_idx ON uploads (created_at) WHERE attached_at IS NULL AND removed_at IS NULL;
