CREATE INDEX messages_conv_ts_idx ON messages (conv_id, created_at);
