DROP INDEX messages_body_trgm_idx;
DROP TABLE user_blocks;
