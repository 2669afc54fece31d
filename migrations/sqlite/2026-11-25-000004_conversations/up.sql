-- Conversation summaries and each member's state in a conversation.
CREATE TABLE conversations (
    conv_id         TEXT PRIMARY KEY NOT NULL,
    last_seq        BIGINT NOT NULL DEFAULT 0,
    last_ts         BIGINT NOT NULL DEFAULT 0,
    last_sender_id  BIGINT,
    last_preview    TEXT,
    created_at      BIGINT NOT NULL
);

-- One row per member: read/delivered marks, the clear-history watermark, list settings.
-- The conversation shows in the member's list while last_seq > hidden_seq.
CREATE TABLE conversation_states (
    user_id        BIGINT NOT NULL,
    conv_id        TEXT NOT NULL,
    peer_id        BIGINT,
    read_seq       BIGINT NOT NULL DEFAULT 0,
    delivered_seq  BIGINT NOT NULL DEFAULT 0,
    cleared_seq    BIGINT NOT NULL DEFAULT 0,
    hidden_seq     BIGINT NOT NULL DEFAULT -1,
    pinned         BOOLEAN NOT NULL DEFAULT FALSE,
    dnd            BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     BIGINT NOT NULL,
    PRIMARY KEY (user_id, conv_id)
);
CREATE INDEX conversation_states_conv_idx ON conversation_states (conv_id);

-- Delete-for-me: messages one user hid.
CREATE TABLE message_hides (
    user_id     BIGINT NOT NULL,
    conv_id     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, conv_id, seq)
);
