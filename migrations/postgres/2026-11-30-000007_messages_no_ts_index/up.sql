-- Nothing reads messages by (conversation, time): pages, sync and dedup go by seq and client id.
-- The index cost a B-tree leaf written per message and conversation on every batch.
DROP INDEX IF EXISTS messages_conv_ts_idx;
