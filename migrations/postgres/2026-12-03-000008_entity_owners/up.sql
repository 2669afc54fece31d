-- The fencing epoch of each conversation's owner in a cluster (1:1 and groups alike): a node
-- that takes a conversation over raises its epoch here, and every write of the conversation's
-- messages and group state checks, in its own transaction, that the epoch it was made under is
-- still the current one. So an owner that lost the conversation (paused, partitioned, its lease
-- expired) can never write again. Single nodes do not use it.
CREATE TABLE entity_owners (
    conv_id      TEXT PRIMARY KEY NOT NULL,
    epoch        BIGINT NOT NULL,
    node_id      TEXT NOT NULL,
    acquired_at  BIGINT NOT NULL
);
