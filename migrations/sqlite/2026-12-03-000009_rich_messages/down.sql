DROP TABLE uploads;
DROP TABLE reactions;
DROP INDEX messages_attachment_idx;
ALTER TABLE messages DROP COLUMN edit_id;
ALTER TABLE messages DROP COLUMN edited_at;
ALTER TABLE messages DROP COLUMN attachment_id;
ALTER TABLE messages DROP COLUMN extra;
